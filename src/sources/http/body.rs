//! What an answer's body says besides its records: the values paging and the `error` check
//! read in it, an error that came with a success status, and, for an answer read as one JSON
//! document, whether the object it is was meant as one record.

use super::config::BodyError;
use super::sparse::sparse;
use super::{HttpError, Redactor};
use crate::codecs::FormatConfig;
use crate::codecs::json::json_error;
use crate::error::{CodecError, Malformed, StageError};
use crate::net::client;
use crate::record::{Record, Value};

/// Whether answers in `format` are one JSON document (which `error` can look into).
pub(super) fn is_json_document(format: &FormatConfig) -> bool {
    matches!(format, FormatConfig::Json(_) | FormatConfig::JsonArray(_))
}

/// Whether `format` reads a JSON answer's whole document (no `records` pointer): then an
/// object there is one record.
pub(super) fn reads_whole_document(format: &FormatConfig) -> bool {
    matches!(format, FormatConfig::Json(options) if options.records.is_empty())
}

/// Fields that hold the records of an envelope, by the names APIs give them.
const ENVELOPE_FIELDS: [&str; 9] = [
    "results", "data", "items", "records", "rows", "entries", "hits", "value", "objects",
];

/// Fields of an API's error report.
const ERROR_REPORT_FIELDS: [&str; 13] = [
    "success",
    "ok",
    "error",
    "errors",
    "message",
    "msg",
    "code",
    "detail",
    "details",
    "status",
    "error_code",
    "error_description",
    "title",
];

/// Checks the first record of an answer read as a whole JSON document (`records` unset),
/// whose body starts with `beginning`. When the document is one object, it is one record:
/// right for `GET /orders/123/`, but a list's page that is an object is an envelope whose
/// `records` was forgotten (an error), an object that says it failed and has nothing but an
/// error report's fields is an error report (an error; with other fields, a warning), and an
/// object holding an array of objects under an envelope's name (`results`) was probably meant
/// as its records (a warning, returned). `errors_checked`: `error` decides what is an error.
pub(super) fn check_single_object(
    records: &[Record],
    beginning: &std::sync::Mutex<Vec<u8>>,
    paged: bool,
    errors_checked: bool,
) -> Result<Option<String>, String> {
    let starts_with_object = client::lock(beginning)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'{');
    let Some(record) = records.first().filter(|_| starts_with_object) else {
        return Ok(None);
    };
    let failed = ["success", "ok"]
        .iter()
        .any(|flag| matches!(record.get(flag), Some(Value::Bool(false))))
        || ["error", "errors"]
            .iter()
            .any(|name| match record.get(name) {
                None | Some(Value::Null | Value::Bool(false) | Value::Integer(0)) => false,
                Some(Value::String(text)) => !text.is_empty(),
                Some(Value::Array(items)) => !items.is_empty(),
                Some(Value::Object(fields)) => !fields.is_empty(),
                Some(_) => true,
            });
    if failed && !errors_checked {
        let mut json = Vec::new();
        crate::record::json::write_record(&mut json, record, &mut Default::default());
        let detail = serde_json::from_slice(&json)
            .ok()
            .as_ref()
            .and_then(client::json_error_detail)
            .unwrap_or_else(|| client::one_line(&String::from_utf8_lossy(&json)));
        let report_only = record
            .names()
            .all(|name| ERROR_REPORT_FIELDS.contains(&name.as_ref()));
        if report_only {
            return Err(format!(
                "the answer is an error report, not a record: {detail}. If the API reports errors in successful answers, set `error` (e.g. `error = {{ at = \"/success\", is = false }}`)"
            ));
        }
        return Ok(Some(format!(
            "the answer, read as one record, looks like an error report: {detail}. If it is one, set `error` (e.g. `error = {{ at = \"/success\", is = false }}`) so that it fails the run"
        )));
    }
    let envelope = ENVELOPE_FIELDS
        .iter()
        .find_map(|name| match record.get(name) {
            Some(Value::Array(items)) if matches!(items.first(), Some(Value::Object(_))) => {
                Some((*name, items.len()))
            }
            _ => None,
        });
    if paged {
        let hint = envelope.map_or_else(
            || "the pointer of its array of records".to_string(),
            |(name, _)| format!("`\"/{name}\"`"),
        );
        return Err(format!(
            "a page of the list is one JSON object, not an array of records: set the format's `records` to {hint}"
        ));
    }
    Ok(envelope.map(|(name, count)| {
        format!(
            "the answer is one JSON object, read as one record, and its `{name}` holds {count} objects: if those are the records, set the format's `records = \"/{name}\"`"
        )
    }))
}

/// Whether an answer with `status` to the request that only confirms the end of a list (the
/// page after a short one) means there is no such page: APIs refuse a page past the end with
/// 400 (WordPress), 404 (DRF page numbers), 416 or 422.
pub(super) fn ends_a_list(status: u16) -> bool {
    matches!(status, 400 | 404 | 416 | 422)
}

/// The most bytes of an answer shown when its records cannot be found.
pub(super) const EXCERPT_BYTES: usize = 300;

/// `pointers` and those the `error` check reads.
pub(super) fn with_error_pointers<'a>(
    mut pointers: Vec<&'a str>,
    check: Option<&'a BodyError>,
) -> Vec<&'a str> {
    if let Some(check) = check {
        pointers.push(&check.at);
        pointers.extend(check.message.as_deref());
    }
    pointers
}

/// The values at the JSON pointers paging reads (`paging`) in a page read whole, once the
/// `error` check passed: an answer that says it failed is an error with its message. `None`
/// when nothing is read from the body.
pub(super) fn page_values(
    bytes: &[u8],
    paging: Vec<&str>,
    check: Option<&BodyError>,
    label: &str,
    redactor: &std::sync::Mutex<Redactor>,
) -> Result<Option<serde_json::Value>, StageError> {
    let pointers = with_error_pointers(paging, check);
    if pointers.is_empty() {
        return Ok(None);
    }
    // A page that does not parse is parsed again whole: serde_json's errors say more there
    // ("trailing comma" rather than "key must be a string").
    let json = match sparse(bytes, &pointers) {
        Ok(values) => values,
        Err(_) => parse_json(bytes, label)?,
    };
    if let Some(check) = check {
        let found = json.pointer(&check.at);
        if check.failed(found) {
            let message = body_error_message(check, Some(&json), bytes);
            return Err(HttpError::Request {
                method: "GET",
                url: label.to_string(),
                status: Some(200),
                // What an API echoes may hold a secret (`invalid key sk_live…`).
                message: client::lock(redactor).text(&format!(
                    "the API answered with an error (`{}` = {}): {message}",
                    check.at,
                    found.map_or_else(String::new, |v| v.to_string())
                )),
            }
            .into());
        }
    }
    Ok(Some(json))
}

/// What an answer that says it failed (`error`) gives as its message: at `message`, else in the
/// usual places, else the start of the answer.
fn body_error_message(
    check: &BodyError,
    sparse: Option<&serde_json::Value>,
    body: &[u8],
) -> String {
    if let Some(message) = check
        .message
        .as_deref()
        .and_then(|pointer| sparse?.pointer(pointer))
    {
        return message
            .as_str()
            .map_or_else(|| message.to_string(), str::to_string);
    }
    serde_json::from_slice(body)
        .ok()
        .as_ref()
        .and_then(client::json_error_detail)
        .unwrap_or_else(|| {
            client::one_line(&String::from_utf8_lossy(
                &body[..body.len().min(EXCERPT_BYTES)],
            ))
        })
}

/// Adds to `malformed` (the records are not where the format says, in an answer beginning
/// with `beginning`) what the answer says: it may be an error that came with a success status,
/// and what it says matters more than where the records should be.
pub(super) fn explain_missing_records(
    malformed: &mut Malformed,
    beginning: &std::sync::Mutex<Vec<u8>>,
    redactor: &std::sync::Mutex<Redactor>,
) {
    let excerpt = client::one_line(&String::from_utf8_lossy(&client::lock(beginning)));
    let detail = serde_json::from_str(&excerpt)
        .ok()
        .as_ref()
        .and_then(client::json_error_detail)
        .map(|detail| client::lock(redactor).text(&detail));
    // What an API echoes may hold a secret (`invalid key sk_live…`).
    let excerpt = client::lock(redactor).text(&excerpt);
    match detail {
        Some(detail) => {
            malformed.message = format!("{}; the API says: {detail}", malformed.message);
            malformed.hint = Some(
                "if the API reports errors in successful answers, set `error` (e.g. `error = { at = \"/success\", is = false }`) so that they fail with its message"
                    .into(),
            );
        }
        None => malformed.message = format!("{} (the answer: {excerpt})", malformed.message),
    }
}

/// A body paging reads values from, as JSON.
pub(super) fn parse_json(bytes: &[u8], label: &str) -> Result<serde_json::Value, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(label, &e, true))
}
