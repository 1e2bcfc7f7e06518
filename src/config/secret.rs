//! Secrets by reference. A pipeline file names where a secret lives (`${env:VENDOR_TOKEN}`,
//! `${file:/run/secrets/key}`) instead of holding it, so pipeline files can be committed. The
//! value is read only when the run needs it, and neither `Debug` nor `Display` ever shows it.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

/// A reference to a secret, as written in a pipeline file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Secret {
    /// `${env:NAME}`: the environment variable NAME.
    Env(String),
    /// `${file:PATH}`: the contents of the file at PATH, without a trailing newline.
    File(PathBuf),
    /// Any other text: the secret itself, written into the pipeline file (discouraged).
    Literal(String),
}

impl TryFrom<String> for Secret {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let Some(reference) = text.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
            if text.contains("${") {
                return Err(
                    "a secret reference must be the whole value: `${env:NAME}` or `${file:PATH}`"
                        .into(),
                );
            }
            return Ok(Secret::Literal(text));
        };
        match reference.split_once(':') {
            Some(("env", name)) if is_env_name(name) => Ok(Secret::Env(name.to_string())),
            Some(("env", name)) => Err(format!(
                "`{name}` is not an environment variable name (letters, digits and `_`)"
            )),
            Some(("file", path)) if !path.is_empty() => Ok(Secret::File(expand_home(path))),
            _ => Err("unknown secret reference: write `${env:NAME}` or `${file:PATH}`".to_string()),
        }
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shows the reference, never a value: `${env:NAME}`, `${file:PATH}` or `***`.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "${{env:{name}}}"),
            Secret::File(path) => write!(f, "${{file:{}}}", path.display()),
            Secret::Literal(_) => f.write_str("***"),
        }
    }
}

/// Why a secret could not be read. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set (or not UTF-8)")]
    MissingEnv(String),
    #[error("cannot read secret file {}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Secret {
    /// Reads the secret's value now.
    pub fn resolve(&self) -> Result<SecretValue, SecretError> {
        match self {
            Secret::Env(name) => std::env::var(name)
                .map(SecretValue)
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|text| SecretValue(text.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                }),
            Secret::Literal(value) => Ok(SecretValue(value.clone())),
        }
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret by reference: `${env:NAME}` reads an environment variable, `${file:PATH}` a file (trailing newline removed). Resolved at run time, shown as `***` in logs and errors."
        })
    }
}

/// A resolved secret. Prints as `***`; only [`SecretValue::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Secret, String> {
        Secret::try_from(text.to_string())
    }

    #[test]
    fn references_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse("${env:API_TOKEN}"),
            Ok(Secret::Env("API_TOKEN".into()))
        );
        assert_eq!(
            parse("${file:/run/secrets/key}"),
            Ok(Secret::File("/run/secrets/key".into()))
        );
        assert_eq!(parse("hunter2"), Ok(Secret::Literal("hunter2".into())));
        assert!(parse("${env:}").is_err());
        assert!(parse("${env:1X}").is_err());
        assert!(
            parse("${vault:x}")
                .unwrap_err()
                .contains("unknown secret reference")
        );
        assert!(
            parse("Bearer ${env:T}")
                .unwrap_err()
                .contains("whole value")
        );
    }

    #[test]
    fn values_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secret = Secret::File(path);
        let value = secret.resolve().unwrap();
        assert_eq!(value.expose(), "s3cr3t");
        assert_eq!(format!("{value} {value:?}"), "*** ***");
        let literal = parse("s3cr3t").unwrap();
        assert_eq!(format!("{literal} {literal:?}"), "*** ***");
    }

    #[test]
    fn a_missing_variable_is_named_without_a_value() {
        let err = Secret::Env("LONGSHORE_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `LONGSHORE_TEST_SURELY_UNSET` is not set (or not UTF-8)"
        );
    }
}
