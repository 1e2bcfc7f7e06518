//! How the URL of a list is made: the configured `url` and `query`, with `{cursor}` and
//! `{until}` filled in (an export job's body is filled the same way), and the cursor's own
//! parameter.

use std::collections::BTreeMap;

use url::Url;

use super::config::HttpSourceConfig;
use crate::error::StageError;

/// How the URL of a list (the whole pull, or one time window) is made.
pub(super) struct ListRequest {
    url: String,
    query: BTreeMap<String, serde_json::Value>,
    /// `incremental.param`.
    cursor_param: Option<String>,
}

impl ListRequest {
    pub(super) fn new(config: &HttpSourceConfig) -> Self {
        ListRequest {
            url: config.url.clone(),
            query: config.query.clone(),
            cursor_param: config.incremental.as_ref().and_then(|i| i.param.clone()),
        }
    }

    /// The URL for the records from `cursor` until `until` (of export job `job`).
    pub(super) fn url(
        &self,
        cursor: Option<&str>,
        until: Option<&str>,
        job: Option<&str>,
    ) -> Result<Url, StageError> {
        let url = match job {
            Some(id) => self.url.replace("{id}", &encoded(id)),
            None => self.url.clone(),
        };
        let mut url = Url::parse(&url)
            .map_err(|e| StageError::Refused(format!("`url` is not a valid URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in &self.query {
                if let Some(value) = query_value(value, cursor, until) {
                    query.append_pair(name, &value);
                }
            }
            if let (Some(param), Some(cursor)) = (&self.cursor_param, cursor) {
                query.append_pair(param, cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }
}

/// A path segment or query value percent-encoded.
pub(super) fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A `query` value as sent: text as it is, a table or array as compact JSON, with `{cursor}`
/// and `{until}` replaced; `None` when it uses one of them and there is none.
fn query_value(
    value: &serde_json::Value,
    cursor: Option<&str>,
    until: Option<&str>,
) -> Option<String> {
    Some(match fill(value, cursor, until)? {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
}

/// `value` with `{cursor}` and `{until}` replaced in its strings; `None` when it uses one of
/// them and there is none.
pub(super) fn fill(
    value: &serde_json::Value,
    cursor: Option<&str>,
    until: Option<&str>,
) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    fn substitute(value: &J, cursor: Option<&str>, until: Option<&str>) -> Option<J> {
        Some(match value {
            J::String(text) => {
                let mut text = text.clone();
                if text.contains("{cursor}") {
                    text = text.replace("{cursor}", cursor?);
                }
                if text.contains("{until}") {
                    text = text.replace("{until}", until?);
                }
                J::String(text)
            }
            J::Array(items) => J::Array(
                items
                    .iter()
                    .map(|item| substitute(item, cursor, until))
                    .collect::<Option<_>>()?,
            ),
            J::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), substitute(v, cursor, until)?)))
                    .collect::<Option<_>>()?,
            ),
            other => other.clone(),
        })
    }
    substitute(value, cursor, until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_templated_and_json_built_from_tables() {
        let filter = serde_json::json!({"modifiedOn": {"operator": ">", "value": "{cursor}"}});
        assert_eq!(
            query_value(&filter, Some("2024-08-01T00:00:00"), None).as_deref(),
            Some(r#"{"modifiedOn":{"operator":">","value":"2024-08-01T00:00:00"}}"#)
        );
        assert_eq!(query_value(&filter, None, None), None);
        let text = serde_json::json!("updated_at");
        assert_eq!(
            query_value(&text, None, None).as_deref(),
            Some("updated_at")
        );
        let number = serde_json::json!(50);
        assert_eq!(query_value(&number, None, None).as_deref(), Some("50"));
        let range = serde_json::json!("{cursor}..{until}");
        assert_eq!(
            query_value(&range, Some("a"), Some("b")).as_deref(),
            Some("a..b")
        );
        assert_eq!(query_value(&range, Some("a"), None), None);
    }
}
