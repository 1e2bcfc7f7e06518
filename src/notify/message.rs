//! What a notification says, filled from the run report: the `{placeholder}` texts an email
//! subject and a webhook body use, and the body shapes chat tools and notification APIs
//! want (Slack's `{"text": …}`, a Teams card, a `/notifications/send` API's own fields). A
//! body is built as JSON values, never by pasting text into JSON, so an error message with
//! quotes or line breaks cannot break it.

use serde_json::Value;

use super::Notice;
use crate::config::Invalid;
use crate::template::{Piece, Unbalanced, pieces};

/// The placeholders a notification's texts may use, with what they stand for.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("pipeline", "the pipeline's name"),
    ("event", "why it is sent: `failure`, `success` or `stale`"),
    (
        "outcome",
        "how the run ended: `success`, `nothing_new` or `failure`",
    ),
    ("run_id", "the run's id, `20240801T020500Z-3f9a1c`"),
    ("started_at", "the run's start, RFC 3339 with offset"),
    ("duration_secs", "the run's length in seconds, `12.3`"),
    ("records_read", "the records read from the source"),
    ("rejects", "the records set aside as rejects"),
    ("files_written", "the number of files published"),
    (
        "error",
        "why the run failed, each cause after a `: ` (empty unless it failed)",
    ),
    ("warnings", "the run's warnings, `; ` between them"),
    (
        "summary",
        "one line for people: `orders-sync: failure after 3.2 s, 120 records read: <error>`",
    ),
    (
        "report",
        "the run report as JSON (a body string that is only `{report}` becomes the report object itself)",
    ),
];

/// The value of placeholder `name`, or `None` when there is no such placeholder.
fn value(name: &str, notice: &Notice) -> Option<String> {
    let report = notice.report;
    Some(match name {
        "pipeline" => report.pipeline.clone(),
        "event" => notice.event.as_str().to_string(),
        "outcome" => report.outcome.as_str().to_string(),
        "run_id" => report.run_id.clone(),
        "started_at" => report.started_at.clone(),
        "duration_secs" => format!("{:.1}", report.duration_secs),
        "records_read" => report.records_read.to_string(),
        "rejects" => report.rejects.total.to_string(),
        "files_written" => report.files_written.len().to_string(),
        "error" => report.error.join(": "),
        "warnings" => report.warnings.join("; "),
        "summary" => summary(notice),
        "report" => notice.json.trim_end().to_string(),
        _ => return None,
    })
}

/// One line for people: what ran, how it ended, and why it failed or is sent.
pub fn summary(notice: &Notice) -> String {
    let report = notice.report;
    let mut line = format!(
        "{}: {} after {:.1} s, {} records read",
        report.pipeline,
        report.outcome.as_str(),
        report.duration_secs,
        report.records_read
    );
    if report.rejects.total > 0 {
        line.push_str(&format!(", {} rejected", report.rejects.total));
    }
    if notice.event == super::Event::Stale {
        line.push_str("; stale: no new records for longer than the pipeline allows");
    }
    if !report.error.is_empty() {
        line.push_str(&format!(": {}", report.error.join(": ")));
    }
    line
}

/// `template` with its placeholders replaced; `{{` and `}}` are literal braces. An unknown
/// placeholder (which [`problems`] refuses) is left as written.
pub fn fill(template: &str, notice: &Notice) -> String {
    let Ok(pieces) = pieces(template) else {
        return template.to_string();
    };
    pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => text,
            Piece::Placeholder(name) => {
                value(&name, notice).unwrap_or_else(|| format!("{{{name}}}"))
            }
        })
        .collect()
}

/// `body` with every string filled ([`fill`]); a string that is only `{report}` becomes the
/// report object.
pub fn shape(body: &Value, notice: &Notice) -> Value {
    match body {
        Value::String(text) if text == "{report}" => {
            serde_json::from_str(notice.json).unwrap_or_else(|_| Value::String(text.clone()))
        }
        Value::String(text) => Value::String(fill(text, notice)),
        Value::Array(items) => Value::Array(items.iter().map(|v| shape(v, notice)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (fill(name, notice), shape(value, notice)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What is wrong with `template` (the value of `key`): unbalanced braces, unknown
/// placeholders.
pub fn problems(key: &str, template: &str) -> Vec<Invalid> {
    let known = || {
        PLACEHOLDERS
            .iter()
            .map(|(name, _)| format!("`{{{name}}}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pieces(template) {
        Err(Unbalanced::LoneClose) => vec![Invalid::new(
            key,
            format!("`{template}`: a lone `}}` (a literal brace is `}}}}`)"),
        )],
        Err(Unbalanced::Unclosed) => vec![Invalid::new(
            key,
            format!("`{template}`: a placeholder is `{{name}}` (a literal brace is `{{{{`)"),
        )],
        Ok(pieces) => pieces
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Placeholder(name)
                    if !PLACEHOLDERS.iter().any(|(known, _)| *known == name) =>
                {
                    Some(Invalid::new(
                        key,
                        format!("unknown placeholder `{{{name}}}`: use {}", known()),
                    ))
                }
                _ => None,
            })
            .collect(),
    }
}

/// The problems of every string in `body` (keys included), under `key`.
pub fn body_problems(key: &str, body: &Value) -> Vec<Invalid> {
    match body {
        Value::String(text) => problems(key, text),
        Value::Array(items) => items.iter().flat_map(|v| body_problems(key, v)).collect(),
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(name, value)| {
                let mut found = problems(key, name);
                found.extend(body_problems(key, value));
                found
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Event;
    use crate::state::report::{Outcome, RunReport};

    fn report() -> RunReport {
        let mut report = RunReport::new(
            "orders-sync",
            "20240801T020500Z-3f9a1c",
            "2024-08-01T02:05:00+02:00",
        );
        report.outcome = Outcome::Failure;
        report.duration_secs = 3.25;
        report.records_read = 120;
        report.error = vec![
            "source: GET https://api.example.com/orders".into(),
            "HTTP 500: \"down\"\nfor now".into(),
        ];
        report
    }

    #[test]
    fn texts_are_filled_and_bodies_stay_valid_json_whatever_the_error_says() {
        let report = report();
        let json = report.to_json();
        let notice = Notice {
            event: Event::Failure,
            report: &report,
            json: &json,
        };
        assert_eq!(
            fill("[{pipeline}] {event} {{literal}} {nope}", &notice),
            "[orders-sync] failure {literal} {nope}"
        );
        let body: Value = serde_json::json!({
            "text": "{summary}",
            "blocks": [{"type": "section", "run": "{run_id}", "n": 3}],
            "payload": "{report}",
        });
        let shaped = shape(&body, &notice);
        assert_eq!(
            shaped["text"],
            "orders-sync: failure after 3.2 s, 120 records read: source: GET https://api.example.com/orders: HTTP 500: \"down\"\nfor now"
        );
        assert_eq!(shaped["blocks"][0]["run"], "20240801T020500Z-3f9a1c");
        assert_eq!(shaped["blocks"][0]["n"], 3);
        assert_eq!(shaped["payload"]["pipeline"], "orders-sync");
        assert_eq!(shaped["payload"]["records_read"], 120);
    }

    #[test]
    fn unknown_placeholders_and_lone_braces_are_refused() {
        let said = |template: &str| -> Vec<String> {
            problems("body", template)
                .into_iter()
                .map(|p| p.message)
                .collect()
        };
        assert!(said("{pipeline} {records_read} {{x}}").is_empty());
        assert!(
            said("{pipelin}")[0]
                .starts_with("unknown placeholder `{pipelin}`: use `{pipeline}`, `{event}`")
        );
        assert_eq!(
            said("a } b"),
            ["`a } b`: a lone `}` (a literal brace is `}}`)"]
        );
        let body = serde_json::json!({"text": "{runid}", "{x}": 1});
        assert_eq!(body_problems("body", &body).len(), 2);
    }
}
