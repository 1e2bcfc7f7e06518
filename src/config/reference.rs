//! The pipeline-file reference in Markdown, generated from the JSON Schema (itself generated
//! from the config types and their `///` docs), so the README can never drift from the code: a
//! test compares the README's copy with this output.

use serde_json::{Map, Value};

/// The stage and format kinds, in the order the reference lists them: (`$defs` name, heading).
const SECTIONS: &[(&str, &str)] = &[
    ("SourceConfig", "Sources (`[source]`)"),
    ("TransformConfig", "Transforms (`[[transforms]]`)"),
    ("SinkConfig", "Sinks (`[[sinks]]`)"),
    ("FormatConfig", "Formats (`format = { type = ... }`)"),
    ("NotifyConfig", "Notifications (`[[notify]]`)"),
];

/// Plain tables of the top level: their definition and heading.
const TABLES: &[(&str, &str)] = &[
    ("StateConfig", "State (`[state]`)"),
    ("RejectsConfig", "Rejects (`[rejects]`)"),
    (
        "SftpServerConfig",
        "SFTP servers (`server` of the `sftp` source and sink)",
    ),
    (
        "FtpServerConfig",
        "FTP and FTPS servers (`server` of the `ftps` source and sink)",
    ),
];

/// The reference of every key a pipeline file may use.
pub fn markdown() -> String {
    let schema: Value =
        serde_json::from_str(&super::json_schema()).expect("the generated schema is JSON");
    let empty = Map::new();
    let defs = schema["$defs"].as_object().unwrap_or(&empty);
    let mut out = String::new();
    out.push_str("### Top level\n\n");
    out.push_str(&one_line(text(&schema["description"])));
    out.push_str("\n\n");
    out.push_str(&table(&schema, defs));
    for (def, heading) in TABLES {
        out.push_str(&format!("\n### {heading}\n\n"));
        out.push_str(&one_line(text(&defs[*def]["description"])));
        out.push_str("\n\n");
        out.push_str(&table(&defs[*def], defs));
    }
    for (def, heading) in SECTIONS {
        out.push_str(&format!("\n### {heading}\n"));
        for variant in defs[*def]["oneOf"].as_array().into_iter().flatten() {
            let kind = text(&variant["properties"]["type"]["const"]);
            out.push_str(&format!("\n#### `type = \"{kind}\"`\n\n"));
            out.push_str(&one_line(text(&variant["description"])));
            out.push_str("\n\n");
            out.push_str(&table(variant, defs));
        }
    }
    out
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Doc comments wrap at 100 columns; Markdown paragraphs and table cells want one line.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(object: &Value, defs: &Map<String, Value>) -> String {
    let required: Vec<&str> = object["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut rows = String::from("| key | type | description |\n|---|---|---|\n");
    let empty = Map::new();
    for (key, property) in object["properties"].as_object().unwrap_or(&empty) {
        if key == "type" {
            continue;
        }
        let key = if required.contains(&key.as_str()) {
            format!("`{key}` (required)")
        } else {
            format!("`{key}`")
        };
        let description = one_line(text(&property["description"])).replace('|', "\\|");
        rows.push_str(&format!(
            "| {key} | {} | {description} |\n",
            type_name(property, defs)
        ));
    }
    if rows.lines().count() == 2 {
        return "No other keys.\n".into();
    }
    rows
}

fn type_name(property: &Value, defs: &Map<String, Value>) -> String {
    // An optional table is `anyOf: [{$ref}, {type: null}]`.
    if let Some(inner) = property["anyOf"]
        .as_array()
        .and_then(|options| options.iter().find(|o| o["$ref"].is_string()))
    {
        return type_name(inner, defs);
    }
    if let Some(reference) = property["$ref"]
        .as_str()
        .or(property["items"]["$ref"].as_str())
    {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let target = &defs[name];
        let shown = if let Some(values) = target["enum"].as_array() {
            values
                .iter()
                .map(|v| format!("`\"{}\"`", text(v)))
                .collect::<Vec<_>>()
                .join(" \\| ")
        } else if let Some(options) = target["oneOf"].as_array()
            && options
                .iter()
                .all(|o| o["const"].is_string() || o["enum"].is_array())
        {
            // An enum some of whose values have docs of their own.
            options
                .iter()
                .flat_map(|o| match o["enum"].as_array() {
                    Some(values) => values.iter().map(text).collect(),
                    None => vec![text(&o["const"])],
                })
                .map(|value| format!("`\"{value}\"`"))
                .collect::<Vec<_>>()
                .join(" \\| ")
        } else if target["oneOf"].is_array() {
            "table with `type`".to_string()
        } else if let Some(options) = target["anyOf"].as_array() {
            // An untagged enum: one of several plain types (`sheet = "Orders"` or `sheet = 2`).
            options
                .iter()
                .map(|option| text(&option["type"]))
                .collect::<Vec<_>>()
                .join(" or ")
        } else {
            text(&target["type"]).to_string()
        };
        return if property["items"]["$ref"].is_string() {
            format!("list of ({shown})")
        } else {
            shown
        };
    }
    let types: Vec<&str> = match &property["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    match types.as_slice() {
        ["array"] => format!("list of {}", text(&property["items"]["type"])),
        ["object"] => "table".into(),
        [single] => (*single).into(),
        _ => types.join(" or "),
    }
}

/// Checks that `file` (relative to the crate root) holds `content` between the markers
/// `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`, or, with
/// `UPDATE_DOCS=1` in the environment, rewrites that block.
#[cfg(test)]
pub(crate) fn check_generated_block(file: &str, name: &str, content: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = format!("<!-- BEGIN GENERATED: {name} -->\n");
    let end = format!("<!-- END GENERATED: {name} -->");
    let start = text.find(&begin).expect("the begin marker is in the file") + begin.len();
    let stop = start + text[start..].find(&end).expect("the end marker follows");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{content}{}", &text[..start], &text[stop..]);
        std::fs::write(&path, updated).unwrap();
    } else {
        assert!(
            text[start..stop] == *content,
            "{file}: the generated block `{name}` is stale; run `UPDATE_DOCS=1 cargo test` and commit"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_pipeline_reference_is_current() {
        check_generated_block(
            "README.md",
            "pipeline-reference",
            &format!("\n{}\n", markdown()),
        );
    }

    #[test]
    fn committed_json_schema_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pipeline.schema.json");
        let schema = super::super::json_schema();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &schema).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == schema,
            "docs/pipeline.schema.json is stale; run `UPDATE_DOCS=1 cargo test` and commit"
        );
    }

    #[test]
    fn every_documented_key_has_a_description() {
        let reference = markdown();
        assert!(
            !reference.contains("|  |\n"),
            "a key lacks its `///` doc:\n{reference}"
        );
    }
}
