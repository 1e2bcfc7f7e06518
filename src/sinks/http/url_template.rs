//! URLs filled from a record (`https://api.example.com/orders/{id}/`): values are
//! percent-encoded, and a placeholder may never choose the scheme, host or port.

use url::Url;

use crate::net::config::url_problem;
use crate::record::Record;
use crate::template::{Piece, Unbalanced, pieces};

/// A URL with `{field}` placeholders after its origin, filled from a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    /// Literal text and field names, alternating as they come.
    parts: Vec<UrlPart>,
    /// The origin every rendered URL must keep.
    origin: url::Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlPart {
    Text(String),
    Field(String),
}

impl UrlTemplate {
    /// Parses `template`; a placeholder may not stand in the scheme, host or port (a record
    /// must never choose where the credentials go).
    pub fn parse(template: &str) -> Result<Self, String> {
        let shown = crate::redact::redact_url(template);
        let pieces = pieces(template).map_err(|unbalanced| match unbalanced {
            Unbalanced::LoneClose => {
                format!("`{shown}`: a lone `}}` (a literal brace is `}}}}`)")
            }
            Unbalanced::Unclosed => format!(
                "`{shown}`: a placeholder is `{{field}}` (a literal brace is `{{{{` or `}}}}`)"
            ),
        })?;
        let mut parts = Vec::new();
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(more) => text.push_str(&more),
                Piece::Placeholder(field) => {
                    if field.is_empty() || field.contains('{') {
                        return Err(format!(
                            "`{shown}`: a placeholder is `{{field}}` (a literal brace is `{{{{` or `}}}}`)"
                        ));
                    }
                    if parts.is_empty() && !origin_is_whole(&text) {
                        return Err(format!(
                            "`{shown}`: placeholders go after the host (`https://api.example.com/orders/{{id}}`)"
                        ));
                    }
                    parts.push(UrlPart::Text(std::mem::take(&mut text)));
                    parts.push(UrlPart::Field(field));
                }
            }
        }
        parts.push(UrlPart::Text(text));
        let sample: String = parts
            .iter()
            .map(|part| match part {
                UrlPart::Text(text) => text.as_str(),
                UrlPart::Field(_) => "x",
            })
            .collect();
        if let Some(problem) = url_problem(&sample) {
            return Err(problem);
        }
        let origin = Url::parse(&sample).map_err(|e| e.to_string())?.origin();
        Ok(UrlTemplate { parts, origin })
    }

    /// The fields its placeholders name, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                UrlPart::Field(name) => Some(name.as_str()),
                UrlPart::Text(_) => None,
            })
            .collect()
    }

    /// The URL for `record`, or why it has none (a field it lacks, null or empty).
    pub fn render(&self, record: &Record) -> Result<Url, String> {
        let mut url = String::new();
        for part in &self.parts {
            match part {
                UrlPart::Text(text) => url.push_str(text),
                UrlPart::Field(name) => {
                    let value = record
                        .get(name)
                        .ok_or_else(|| format!("the record has no `{name}` for the URL"))?;
                    let text = value
                        .to_text()
                        .filter(|text| !text.is_empty())
                        .ok_or_else(|| format!("the record's `{name}` is empty: no URL"))?;
                    if text == "." || text == ".." {
                        // A URL parser takes them (encoded or not) as "this" or "up" a level.
                        return Err(format!("the record's `{name}` is `{text}`: no URL"));
                    }
                    percent_encode(&text, &mut url);
                }
            }
        }
        let url = Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        // Percent-encoding keeps every value inside its path segment or query value.
        debug_assert!(url.origin() == self.origin);
        Ok(url)
    }
}

/// Whether `text` (what comes before the first placeholder) holds a whole origin:
/// `scheme://host[:port]/` or `...?`.
fn origin_is_whole(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(_, rest)| rest.find(['/', '?', '#']).is_some_and(|end| end > 0))
}

/// Appends `value` with everything but RFC 3986's unreserved characters percent-encoded: a
/// value never adds a path segment, a query parameter or a fragment.
fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_filled_from_the_record_percent_encoded() {
        use crate::record::Value;
        let template =
            UrlTemplate::parse("https://api.example.com/o/{id}/lines/{line}?v={{1}}").unwrap();
        assert_eq!(template.fields(), ["id", "line"]);
        let mut record = Record::new();
        record.push("id".into(), Value::String("a/b ?#é".into()));
        record.push("line".into(), Value::Integer(7));
        assert_eq!(
            template.render(&record).unwrap().as_str(),
            "https://api.example.com/o/a%2Fb%20%3F%23%C3%A9/lines/7?v={1}"
        );
        record.insert("id".into(), Value::String("..".into()));
        assert_eq!(
            template.render(&record).unwrap_err(),
            "the record's `id` is `..`: no URL"
        );
        record.insert("id".into(), Value::Null);
        assert_eq!(
            template.render(&record).unwrap_err(),
            "the record's `id` is empty: no URL"
        );
        record.remove("line");
        record.insert("id".into(), Value::Integer(1));
        assert_eq!(
            template.render(&record).unwrap_err(),
            "the record has no `line` for the URL"
        );
        for bad in [
            "https://{host}/x",
            "https://api.example.com{path}",
            "{base}/x",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
