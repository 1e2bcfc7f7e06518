//! Output path templates: `out/{pipeline}-{run_date}.csv`. Parsed when the pipeline is loaded,
//! so a misspelt placeholder is a `validate` error rather than a file named `{run_dat}`.
//!
//! `{source_stem}` comes from a name a partner chose, so it is rendered as one safe file name
//! ([`safe_stem`]): it can never add a directory level, climb out of the destination (`..`) or
//! put a control character into a path.

use chrono::{DateTime, Local};

/// The placeholders a path template may use, with what they stand for.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("pipeline", "the pipeline's name"),
    ("run_date", "the run's start date, local time, `2024-08-01`"),
    (
        "run_ts",
        "the run's start time, local time, `20240801T020500`",
    ),
    (
        "source_stem",
        "the source file's name without its last extension, made one safe file name (`/`, `\\` and control characters percent-encoded, only dots made underscores); one output file per source file",
    ),
    (
        "part",
        "the number of the output file, 1, 2, ..., when `max_records_per_file` or `max_bytes_per_file` splits the output (uploads to a server)",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Pipeline,
    RunDate,
    RunTs,
    SourceStem,
    FileNumber,
}

/// A parsed path template. `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
}

/// The values placeholders are replaced with.
pub struct TemplateValues<'a> {
    pub pipeline: &'a str,
    pub started_at: DateTime<Local>,
    pub source_stem: Option<&'a str>,
    /// The output file's number, from 1.
    pub part: u32,
}

/// A piece of a template with `{name}` placeholders, where `{{` and `}}` stand for literal
/// braces: path templates and the `http` sink's URL templates both read theirs with
/// [`pieces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    /// The text between `{` and the next `}`, as written (checked by the caller).
    Placeholder(String),
}

/// Why a template's braces do not balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unbalanced {
    /// A `}` that closes nothing.
    LoneClose,
    /// A `{` that nothing closes.
    Unclosed,
}

/// `template` as text and placeholders, in order; adjacent text is one piece.
pub(crate) fn pieces(template: &str) -> Result<Vec<Piece>, Unbalanced> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            text.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(Unbalanced::LoneClose);
        }
        let end = tail.find('}').ok_or(Unbalanced::Unclosed)?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Placeholder(tail[1..end].to_string()));
        rest = &tail[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let pieces = pieces(template).map_err(|unbalanced| match unbalanced {
            Unbalanced::LoneClose => {
                "unmatched `}` in path (write `}}` for a literal brace)".to_string()
            }
            Unbalanced::Unclosed => {
                "unclosed `{` in path (write `{{` for a literal brace)".to_string()
            }
        })?;
        let mut parts = Vec::new();
        for piece in pieces {
            parts.push(match piece {
                Piece::Text(text) => Part::Text(text),
                Piece::Placeholder(name) => match name.as_str() {
                    "pipeline" => Part::Pipeline,
                    "run_date" => Part::RunDate,
                    "run_ts" => Part::RunTs,
                    "source_stem" => Part::SourceStem,
                    "part" => Part::FileNumber,
                    unknown => {
                        let known: Vec<String> = PLACEHOLDERS
                            .iter()
                            .map(|(n, _)| format!("{{{n}}}"))
                            .collect();
                        return Err(format!(
                            "unknown placeholder `{{{unknown}}}` in path; known: {}",
                            known.join(", ")
                        ));
                    }
                },
            });
        }
        Ok(PathTemplate { parts })
    }

    /// A template that is exactly `path`, braces and all.
    pub fn literal(path: &str) -> Self {
        PathTemplate {
            parts: vec![Part::Text(path.to_string())],
        }
    }

    /// Whether every source file gets its own output.
    pub fn uses_source_stem(&self) -> bool {
        self.parts.contains(&Part::SourceStem)
    }

    /// Whether the output's files are numbered (`{part}`).
    pub fn uses_part(&self) -> bool {
        self.parts.contains(&Part::FileNumber)
    }

    /// The template with every placeholder replaced; `{source_stem}` becomes `source` when
    /// there is no source file (the source does not read files).
    pub fn render(&self, values: &TemplateValues) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Pipeline => out.push_str(values.pipeline),
                Part::RunDate => out.push_str(&values.started_at.format("%Y-%m-%d").to_string()),
                Part::RunTs => out.push_str(&values.started_at.format("%Y%m%dT%H%M%S").to_string()),
                Part::SourceStem => {
                    out.push_str(&safe_stem(values.source_stem.unwrap_or("source")))
                }
                Part::FileNumber => out.push_str(&values.part.to_string()),
            }
        }
        out
    }
}

/// `stem` as a safe part of a file name: control characters and path separators (`/`, `\`)
/// percent-encoded byte by byte (`%0A`, `%2F`), and a stem that is empty or only dots (`..`
/// from a file named `...csv`) made of as many underscores (at least one), so that it cannot
/// name the directory itself or its parent.
pub fn safe_stem(stem: &str) -> String {
    if stem.chars().all(|c| c == '.') {
        return "_".repeat(stem.len().max(1));
    }
    let mut safe = String::with_capacity(stem.len());
    for c in stem.chars() {
        if c.is_control() || c == '/' || c == '\\' {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                safe.push_str(&format!("%{byte:02X}"));
            }
        } else {
            safe.push(c);
        }
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renders_placeholders_and_escapes() {
        let template =
            PathTemplate::parse("out/{pipeline}/{run_date}/{source_stem}-{run_ts}{{x}}.csv")
                .unwrap();
        assert!(template.uses_source_stem());
        let values = TemplateValues {
            pipeline: "orders",
            started_at: Local.with_ymd_and_hms(2024, 8, 1, 2, 5, 0).unwrap(),
            source_stem: Some("day1"),
            part: 1,
        };
        assert_eq!(
            template.render(&values),
            "out/orders/2024-08-01/day1-20240801T020500{x}.csv"
        );
    }

    #[test]
    fn a_source_stem_stays_one_file_name_inside_the_directory() {
        assert_eq!(safe_stem(".."), "__");
        assert_eq!(safe_stem("."), "_");
        assert_eq!(safe_stem(""), "_");
        assert_eq!(safe_stem("x\n.profile\ny"), "x%0A.profile%0Ay");
        assert_eq!(safe_stem("../etc/passwd"), "..%2Fetc%2Fpasswd");
        assert_eq!(safe_stem("a\\b\u{85}"), "a%5Cb%C2%85");
        assert_eq!(safe_stem(".hidden"), ".hidden");
        assert_eq!(safe_stem("März 2024"), "März 2024");
        let template = PathTemplate::parse("out/{source_stem}/x.csv").unwrap();
        let values = TemplateValues {
            pipeline: "orders",
            started_at: Local::now(),
            source_stem: Some(".."),
            part: 1,
        };
        assert_eq!(template.render(&values), "out/__/x.csv");
    }

    #[test]
    fn unknown_and_unbalanced_placeholders_are_errors() {
        assert_eq!(
            PathTemplate::parse("out/{run_dat}.csv").unwrap_err(),
            "unknown placeholder `{run_dat}` in path; known: {pipeline}, {run_date}, {run_ts}, {source_stem}, {part}"
        );
        assert!(PathTemplate::parse("out/{run_date.csv").is_err());
        assert!(PathTemplate::parse("out/}.csv").is_err());
        assert!(!PathTemplate::parse("out/a.csv").unwrap().uses_source_stem());
    }
}
