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

/// The reference of every key a pipeline file may use: the top level, its tables, every kind
/// of stage, and then every table nested in them (`pagination`, `retry`, ...), each once, with
/// the keys that lead to it.
pub fn markdown() -> String {
    render().0
}

/// The reference, and the definitions of nested tables written in it.
fn render() -> (String, Vec<String>) {
    let schema: Value =
        serde_json::from_str(&super::json_schema()).expect("the generated schema is JSON");
    let empty = Map::new();
    let mut writer = Writer {
        defs: schema["$defs"].as_object().unwrap_or(&empty),
        out: String::new(),
        nested: Vec::new(),
    };
    writer.out.push_str("### Top level\n\n");
    writer.paragraph(&schema["description"]);
    writer.table(&schema, "the top level");
    for (def, heading) in TABLES {
        writer.out.push_str(&format!("\n### {heading}\n\n"));
        let def = &writer.defs[*def];
        writer.paragraph(&def["description"]);
        writer.table(def, heading);
    }
    for (def, heading) in SECTIONS {
        writer.out.push_str(&format!("\n### {heading}\n"));
        writer.variants(def, "####", |kind| {
            format!("the `{kind}` {}", kind_noun(def))
        });
    }
    writer.out.push_str(
        "\n### Nested tables\n\nTables inside the ones above, each with the keys that lead to it.\n",
    );
    // Nested tables may nest more: they are written in the order they are first met.
    let mut written = 0;
    while written < writer.nested.len() {
        let (def, keys) = writer.nested[written].clone();
        written += 1;
        let keys = keys.join(", ");
        writer.out.push_str(&format!("\n#### {keys}\n\n"));
        let target = &writer.defs[def.as_str()];
        if is_tagged(target) {
            writer.paragraph(&target["description"]);
            writer.variants(&def, "#####", |kind| format!("`type = \"{kind}\"`"));
        } else {
            writer.paragraph(&target["description"]);
            writer.table(target, &keys);
        }
    }
    let nested = writer.nested.into_iter().map(|(def, _)| def).collect();
    (writer.out, nested)
}

/// What a section's kinds are called in the places they are met: "source", "format", ...
fn kind_noun(def: &str) -> &'static str {
    match def {
        "SourceConfig" => "source",
        "TransformConfig" => "transform",
        "SinkConfig" => "sink",
        "FormatConfig" => "format",
        _ => "notification",
    }
}

/// Whether a definition is a table told apart by its `type` (`{ type = "cursor", ... }`).
fn is_tagged(def: &Value) -> bool {
    def["oneOf"].as_array().is_some_and(|variants| {
        variants
            .iter()
            .all(|v| v["properties"]["type"]["const"].is_string())
    })
}

/// Whether a definition is a table of fixed keys.
fn is_table(def: &Value) -> bool {
    def["properties"].is_object() && def["type"] == "object"
}

struct Writer<'s> {
    defs: &'s Map<String, Value>,
    out: String,
    /// The nested tables met so far: their definition, and the keys that lead to them (with
    /// where each key is, `` `retry` of the `http` source``).
    nested: Vec<(String, Vec<String>)>,
}

impl Writer<'_> {
    fn paragraph(&mut self, description: &Value) {
        let text = one_line(text(description));
        if !text.is_empty() {
            self.out.push_str(&text);
            self.out.push_str("\n\n");
        }
    }

    /// A heading, description and table for each kind (`type = "..."`) of the tagged `def`;
    /// `place` names a kind as the nested tables it leads to say where their key is.
    fn variants(&mut self, def: &str, level: &str, place: impl Fn(&str) -> String) {
        let defs = self.defs;
        for variant in defs[def]["oneOf"].as_array().into_iter().flatten() {
            let kind = text(&variant["properties"]["type"]["const"]);
            if !self.out.ends_with("\n\n") {
                self.out.push('\n');
            }
            self.out
                .push_str(&format!("{level} `type = \"{kind}\"`\n\n"));
            self.paragraph(&variant["description"]);
            self.table(variant, &place(kind));
        }
    }

    /// The keys of `object` (`place` says where it is, for the nested tables it leads to).
    fn table(&mut self, object: &Value, place: &str) {
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
            let shown = if required.contains(&key.as_str()) {
                format!("`{key}` (required)")
            } else {
                format!("`{key}`")
            };
            let description = one_line(text(&property["description"])).replace('|', "\\|");
            let type_name = self.type_name(property, key, place);
            rows.push_str(&format!("| {shown} | {type_name} | {description} |\n"));
        }
        if rows.lines().count() == 2 {
            self.out.push_str("No other keys.\n");
        } else {
            self.out.push_str(&rows);
        }
    }

    /// The type of `key`'s value as people read it; a nested table is noted to be written
    /// later, under the keys that lead to it.
    fn type_name(&mut self, property: &Value, key: &str, place: &str) -> String {
        // An optional table is `anyOf: [{$ref}, {type: null}]`.
        if let Some(inner) = property["anyOf"]
            .as_array()
            .and_then(|options| options.iter().find(|o| o["$ref"].is_string()))
        {
            return self.type_name(inner, key, place);
        }
        // A table of names the user chooses, each with a value of one type (`schema`).
        if property["additionalProperties"]["$ref"].is_string() {
            let entry = format!("{key}.NAME");
            let values = self.type_name(&property["additionalProperties"], &entry, place);
            return format!("table of names to ({values})");
        }
        let Some(reference) = property["$ref"]
            .as_str()
            .or(property["items"]["$ref"].as_str())
        else {
            return plain_type(property);
        };
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let target = &self.defs[name];
        let is_section = SECTIONS.iter().any(|(def, _)| *def == name);
        let top_table = TABLES.iter().find(|(def, _)| *def == name);
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
        } else if let Some((_, heading)) = top_table {
            format!("table (see {heading})")
        } else if is_section {
            format!("table with `type` (a {})", kind_noun(name))
        } else if is_tagged(target) || is_table(target) {
            self.note_nested(name, format!("`{key}` of {place}"));
            if is_tagged(target) {
                format!("table with `type` (see `{key}` below)")
            } else {
                format!("table (see `{key}` below)")
            }
        } else if let Some(options) = target["anyOf"].as_array() {
            // An untagged enum: one of several types (`sheet = "Orders"` or `sheet = 2`).
            options
                .iter()
                .map(|option| match option["$ref"].is_string() {
                    true => self.type_name(option, key, place),
                    false => text(&option["type"]).to_string(),
                })
                .collect::<Vec<_>>()
                .join(" or ")
        } else {
            text(&target["type"]).to_string()
        };
        if property["items"]["$ref"].is_string() {
            format!("list of ({shown})")
        } else {
            shown
        }
    }

    fn note_nested(&mut self, def: &str, key: String) {
        match self.nested.iter_mut().find(|(d, _)| d == def) {
            Some((_, keys)) => {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            None => self.nested.push((def.to_string(), vec![key])),
        }
    }
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

/// A type that is no definition of its own: `string`, `list of string`, `integer or string`.
fn plain_type(property: &Value) -> String {
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

    /// Every table the loader accepts is written, and with it every key: each definition of
    /// the schema that has keys or kinds is a section, a top-level table or a nested table.
    #[test]
    fn every_key_the_loader_accepts_is_in_the_reference() {
        let schema: Value = serde_json::from_str(&super::super::json_schema()).unwrap();
        let (reference, nested) = render();
        let mut keys = Vec::new();
        let mut collect = |object: &Value, place: &str| {
            for key in object["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|p| p.0)
            {
                keys.push((place.to_string(), key.clone()));
            }
        };
        collect(&schema, "top level");
        for (name, def) in schema["$defs"].as_object().unwrap() {
            collect(def, name);
            for variant in def["oneOf"].as_array().into_iter().flatten() {
                collect(variant, name);
            }
        }
        assert!(keys.len() > 150, "{} keys", keys.len());
        for (place, key) in &keys {
            assert!(
                reference.contains(&format!("| `{key}`")) || key == "type",
                "`{key}` of {place} is not in the reference"
            );
        }
        let written = |name: &str| {
            TABLES.iter().chain(SECTIONS).any(|(def, _)| *def == name)
                || nested.iter().any(|def| def == name)
        };
        for (name, def) in schema["$defs"].as_object().unwrap() {
            if is_table(def) || is_tagged(def) {
                assert!(written(name), "{name} is not written");
            }
        }
        // The keys API users need most, deep in `pagination`, `auth` and `incremental`.
        for deep in [
            "offset_param",
            "token_url",
            "lag_secs",
            "requests_per_minute",
            "poll_secs",
        ] {
            assert!(reference.contains(&format!("| `{deep}`")), "{deep}");
        }
    }

    /// A default lives in the code (`#[serde(default = ...)]`, which the schema carries); the
    /// docs that state it must state that one.
    #[test]
    fn every_default_the_docs_state_is_the_codes() {
        fn check(value: &Value, place: &str, wrong: &mut Vec<String>) {
            for (key, property) in value["properties"].as_object().into_iter().flatten() {
                let Some(default) = property.get("default") else {
                    continue;
                };
                let docs = one_line(text(&property["description"])).to_lowercase();
                let Some(at) = docs.find("default") else {
                    wrong.push(format!("{place}.{key}: the docs do not say the default"));
                    continue;
                };
                let shown = match default {
                    Value::Null => continue,
                    Value::Array(a) if a.is_empty() => continue,
                    Value::Object(o) if o.is_empty() => continue,
                    Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                        format!("{}", n.as_f64().unwrap_or_default() as i64)
                    }
                    Value::Array(items) => {
                        let items: Vec<String> = items.iter().map(Value::to_string).collect();
                        format!("[{}]", items.join(", "))
                    }
                    other => other.to_string(),
                };
                if !mentions(&docs[at..], &shown.to_lowercase()) {
                    wrong.push(format!("{place}.{key}: the code's default is {shown}"));
                }
            }
            for (name, inner) in value.as_object().into_iter().flatten() {
                match inner {
                    Value::Object(_) => check(inner, &format!("{place}/{name}"), wrong),
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            check(item, &format!("{place}/{name}[{i}]"), wrong);
                        }
                    }
                    _ => {}
                }
            }
        }
        /// Whether `text` holds `value` as a whole: `10` is not in `100`, `1.10` or `1.5`'s `1`.
        fn mentions(text: &str, value: &str) -> bool {
            text.match_indices(value).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = &text[at + value.len()..];
                let number_goes_on = after.starts_with(|c: char| c.is_ascii_alphanumeric())
                    || (after.starts_with('.')
                        && after[1..].starts_with(|c: char| c.is_ascii_digit()));
                !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !number_goes_on
            })
        }
        assert!(mentions("default 10 (ten)", "10") && !mentions("default 100", "10"));
        assert!(!mentions("default 1.10", "10") && !mentions("default 1.5", "1"));
        assert!(mentions("default `\"x\"`.", "\"x\""));
        let schema: Value = serde_json::from_str(&super::super::json_schema()).unwrap();
        let mut wrong = Vec::new();
        check(&schema, "", &mut wrong);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
