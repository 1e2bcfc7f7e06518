//! References in pipeline files: `${env:NAME}`, `${env:NAME:-default}`, `${var:NAME}` (given
//! with `--var NAME=VALUE`) and `${file:PATH}`, anywhere in any string value. Cron jobs and
//! containers configure pipelines through their environment, so one pipeline file serves test
//! and production; a reference that cannot be resolved is a problem `validate` reports at its
//! position, never text sent as it is.
//!
//! The rules, in one place (the README repeats them):
//! - `${env:NAME}` is the environment variable NAME; unset, it is an error.
//! - `${env:NAME:-default}` is `default` when NAME is unset or empty.
//! - `${var:NAME}` and `${var:NAME:-default}` are the same for `--var NAME=VALUE`.
//! - `${file:PATH}` is the file's contents without a trailing newline; a relative PATH starts
//!   at the pipeline file's folder.
//! - `$${` is a literal `${`. Any other `${…}` is an error.
//! - A value is read once, where it is written: a referenced value is never read for
//!   references again.
//!
//! Secret options (tokens, passwords) keep their references until the run needs the value
//! ([`super::Secret`]), so that messages show the reference and never the value.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The values of `--var NAME=VALUE`.
pub type Variables = BTreeMap<String, String>;

/// A string as written in a pipeline file: text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Env {
        name: String,
        default: Option<String>,
    },
    Var {
        name: String,
        default: Option<String>,
    },
    File(String),
}

/// A reference that cannot be resolved. Names the reference, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("environment variable {} is not set (or not UTF-8)", shown_name(.0))]
    MissingEnv(String),
    #[error("`--var {0}=…` is not given (`${{var:{0}}}` has no default)")]
    MissingVar(String),
    #[error("cannot read {}: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
}

/// A name as messages show it: conventional names (`VENDOR_TOKEN`) in full; anything else might
/// be a token pasted into `${env:…}` by mistake, so it is not repeated.
fn shown_name(name: &str) -> String {
    let conventional = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if conventional {
        format!("`{name}`")
    } else {
        "named in `${env:…}`".to_string()
    }
}

/// Where references are resolved: the environment, `--var` values, and the folder relative
/// `${file:…}` paths start from.
pub struct Resolver<'a> {
    pub vars: &'a Variables,
    pub base_dir: &'a Path,
}

impl Template {
    /// Parses `text`. The error says what is wrong without repeating the text (which may be a
    /// secret written in the wrong place).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            if rest[..at].ends_with('$') {
                // `$${`: a literal `${`.
                literal.push_str(&rest[..at - 1]);
                literal.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            literal.push_str(&rest[..at]);
            let inner = &rest[at + 2..];
            let Some(end) = inner.find('}') else {
                return Err("`${` without its closing `}` (write `$${` for a literal `${`)".into());
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::parse(&inner[..end])?);
            rest = &inner[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Whether it holds a reference (else it is plain text).
    pub fn has_references(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The text with every reference resolved.
    pub fn render(&self, resolver: &Resolver) -> Result<String, ReferenceError> {
        let mut text = String::new();
        for part in &self.parts {
            text.push_str(&part.resolve(resolver)?);
        }
        Ok(text)
    }

    /// The values of its references alone, resolved (for a secret written as `Token
    /// ${env:T}`, the token itself: it may show up without its `Token `).
    pub fn referenced_values(&self, resolver: &Resolver) -> Result<Vec<String>, ReferenceError> {
        self.parts
            .iter()
            .filter(|part| !matches!(part, Part::Text(_)))
            .map(|part| part.resolve(resolver).map(Cow::into_owned))
            .collect()
    }

    /// The template as written, with its text parts replaced by `***` (for secrets: a
    /// reference can be shown, text beside it may be the secret itself).
    pub fn shown_without_text(&self) -> String {
        let shown: Vec<String> = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Text(_) => "***".to_string(),
                Part::Env { name, .. } => format!("${{env:{name}}}"),
                Part::Var { name, .. } => format!("${{var:{name}}}"),
                Part::File(path) => format!("${{file:{path}}}"),
            })
            .collect();
        shown.concat()
    }
}

impl Part {
    fn parse(reference: &str) -> Result<Part, String> {
        let (kind, rest) = reference.split_once(':').unwrap_or((reference, ""));
        let named = |what: &str| -> Result<(String, Option<String>), String> {
            let (name, default) = match rest.split_once(":-") {
                Some((name, default)) => (name, Some(default.to_string())),
                None => (rest, None),
            };
            if is_name(name) {
                Ok((name.to_string(), default))
            } else {
                // Not echoed: it may be a secret pasted in the wrong place.
                Err(format!(
                    "`${{{what}:…}}` must name a variable (letters, digits and `_`), optionally with a default: `${{{what}:NAME:-default}}`"
                ))
            }
        };
        match kind {
            "env" => named("env").map(|(name, default)| Part::Env { name, default }),
            "var" => named("var").map(|(name, default)| Part::Var { name, default }),
            "file" if !rest.is_empty() => Ok(Part::File(rest.to_string())),
            _ => Err(
                "unknown reference: write `${env:NAME}`, `${var:NAME}` or `${file:PATH}` (and `$${` for a literal `${`)"
                    .into(),
            ),
        }
    }

    fn resolve<'a>(&'a self, resolver: &Resolver) -> Result<Cow<'a, str>, ReferenceError> {
        let or_default = |value: Option<String>, default: &'a Option<String>, missing| match (
            value.filter(|v| !v.is_empty()),
            default,
        ) {
            (Some(value), _) => Ok(Cow::Owned(value)),
            (None, Some(default)) => Ok(Cow::Borrowed(default.as_str())),
            (None, None) => Err(missing),
        };
        match self {
            Part::Text(text) => Ok(Cow::Borrowed(text)),
            Part::Env { name, default } => {
                let value = std::env::var(name).ok();
                // An empty variable is a value unless a default is written (`:-`).
                if default.is_none() && value.as_deref() == Some("") {
                    return Ok(Cow::Borrowed(""));
                }
                or_default(value, default, ReferenceError::MissingEnv(name.clone()))
            }
            Part::Var { name, default } => {
                let value = resolver.vars.get(name).cloned();
                if default.is_none() && value.as_deref() == Some("") {
                    return Ok(Cow::Borrowed(""));
                }
                or_default(value, default, ReferenceError::MissingVar(name.clone()))
            }
            Part::File(path) => {
                let path = crate::config::join_clean(resolver.base_dir, path);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Cow::Owned(text.trim_end_matches(['\r', '\n']).to_string())),
                    Err(e) => Err(ReferenceError::File {
                        path,
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `NAME=VALUE` (the argument of `--var`).
pub fn parse_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if is_name(name) => Ok((name.to_string(), value.to_string())),
        _ => Err(format!(
            "`{text}` is not NAME=VALUE (NAME of letters, digits and `_`)"
        )),
    }
}

/// What the loader shares with [`super::Secret`] while a pipeline file is deserialized.
#[derive(Default)]
struct Deserializing {
    /// Each string that held references, by the text it was resolved to: a secret given a
    /// resolved text takes its references back from here, so that it resolves them itself
    /// when the run needs the value.
    written: HashMap<String, String>,
    /// The secrets written into the file as they are, for a warning.
    literal_secrets: Vec<String>,
}

thread_local! {
    static DESERIALIZING: std::cell::RefCell<Option<Deserializing>> = Default::default();
}

/// Runs `deserialize` with `written` (resolved text -> text as written) known to secrets;
/// returns its result and the secrets written into the file as they are.
pub(crate) fn with_written<T>(
    written: HashMap<String, String>,
    deserialize: impl FnOnce() -> T,
) -> (T, Vec<String>) {
    DESERIALIZING.with(|cell| {
        *cell.borrow_mut() = Some(Deserializing {
            written,
            literal_secrets: Vec::new(),
        })
    });
    let result = deserialize();
    let done = DESERIALIZING.with(|cell| cell.borrow_mut().take());
    (result, done.map(|d| d.literal_secrets).unwrap_or_default())
}

/// The text as written in the pipeline file of a string that was resolved to `text`, if it
/// held references.
pub(super) fn as_written(text: &str) -> Option<String> {
    DESERIALIZING.with(|cell| cell.borrow().as_ref()?.written.get(text).cloned())
}

/// Notes a secret written into the pipeline file as it is (no reference).
pub(super) fn note_literal_secret(text: &str) {
    DESERIALIZING.with(|cell| {
        if let Some(deserializing) = cell.borrow_mut().as_mut() {
            deserializing.literal_secrets.push(text.to_string());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
        let vars: Variables = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let resolver = Resolver {
            vars: &vars,
            base_dir: Path::new("."),
        };
        Template::parse(text)?
            .render(&resolver)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn references_resolve_anywhere_in_a_string() {
        // SAFETY: tests of this module are the only readers of these variables.
        unsafe {
            std::env::set_var("LONGSHORE_TEST_INTERPOLATE_HOST", "api.test");
            std::env::set_var("LONGSHORE_TEST_INTERPOLATE_EMPTY", "");
        }
        assert_eq!(
            render(
                "https://${env:LONGSHORE_TEST_INTERPOLATE_HOST}/v1?from=${var:from}",
                &[("from", "2024-01-01")]
            )
            .as_deref(),
            Ok("https://api.test/v1?from=2024-01-01")
        );
        assert_eq!(
            render(
                "${env:LONGSHORE_TEST_INTERPOLATE_UNSET:-prod}/${var:x:-}",
                &[]
            )
            .as_deref(),
            Ok("prod/")
        );
        assert_eq!(
            render("${env:LONGSHORE_TEST_INTERPOLATE_EMPTY:-fallback}|${env:LONGSHORE_TEST_INTERPOLATE_EMPTY}", &[]).as_deref(),
            Ok("fallback|")
        );
        assert_eq!(
            render("cost: $$${x} and $${env:X}", &[]).as_deref(),
            Ok("cost: $${x} and ${env:X}")
        );
        assert_eq!(
            render("no references: {cursor} $5", &[]).as_deref(),
            Ok("no references: {cursor} $5")
        );
    }

    #[test]
    fn unresolvable_references_are_errors_that_do_not_repeat_values() {
        assert_eq!(
            render("${env:LONGSHORE_TEST_INTERPOLATE_UNSET}", &[]),
            Err(
                "environment variable `LONGSHORE_TEST_INTERPOLATE_UNSET` is not set (or not UTF-8)"
                    .into()
            )
        );
        assert_eq!(
            render("${var:from}", &[]),
            Err("`--var from=…` is not given (`${var:from}` has no default)".into())
        );
        let unknown = render("${vault:secret/hunter2}", &[]).unwrap_err();
        assert!(unknown.starts_with("unknown reference"), "{unknown}");
        assert!(!unknown.contains("hunter2"), "{unknown}");
        let pasted = render("${env:hunter2 is my password}", &[]).unwrap_err();
        assert!(!pasted.contains("hunter2"), "{pasted}");
        assert!(
            render("a ${env:X", &[])
                .unwrap_err()
                .contains("without its closing")
        );
        assert_eq!(
            parse_variable("from=2024-01-01=x"),
            Ok(("from".into(), "2024-01-01=x".into()))
        );
        assert!(parse_variable("2x=1").is_err());
    }

    #[test]
    fn secrets_show_references_not_text() {
        let template = Template::parse("Token ${env:API_TOKEN}").unwrap();
        assert_eq!(template.shown_without_text(), "***${env:API_TOKEN}");
        assert!(template.has_references());
        assert!(!Template::parse("plain").unwrap().has_references());
    }
}
