//! Secrets by reference. A pipeline file names where a secret lives (`${env:VENDOR_TOKEN}`,
//! `${file:/run/secrets/key}`) instead of holding it, so pipeline files can be committed. The
//! value is read only when the run needs it, and neither `Debug` nor `Display` ever shows it.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::stage::RunContext;

/// A reference to a secret, as written in a pipeline file.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `${env:NAME}`: the environment variable NAME.
    Env(String),
    /// `${file:PATH}`: the contents of the file at PATH (relative to the pipeline file's
    /// directory), without a trailing newline.
    File(String),
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
            // The text is not echoed: it may be a secret pasted in the wrong place.
            Some(("env", _)) => {
                Err("`${env:…}` must name an environment variable (letters, digits and `_`)".into())
            }
            Some(("file", path)) if !path.is_empty() => Ok(Secret::File(path.to_string())),
            _ => Err("unknown secret reference: write `${env:NAME}` or `${file:PATH}`".to_string()),
        }
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret is only ever a string. serde's own type errors quote the value they got
/// (`invalid type: integer `12345678``), which would print a password written as a number.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

const NOT_A_STRING: &str = "a secret must be a string: \"${env:NAME}\" or \"${file:PATH}\"";

impl Visitor<'_> for SecretVisitor {
    type Value = Secret;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Secret, E> {
        Secret::try_from(text.to_string()).map_err(E::custom)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(NOT_A_STRING))
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
            Secret::File(path) => write!(f, "${{file:{path}}}"),
            Secret::Literal(_) => f.write_str("***"),
        }
    }
}

/// Why a secret could not be read. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {} is not set (or not UTF-8)", shown_variable(.0))]
    MissingEnv(String),
    #[error("cannot read secret file {}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A variable name as messages show it: conventional names (`VENDOR_TOKEN`) in full; anything
/// else might be a token pasted into `${env:…}` by mistake, so it is not repeated.
fn shown_variable(name: &str) -> String {
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

impl Secret {
    /// Reads the secret's value now; a relative `${file:…}` path is taken from the pipeline
    /// file's directory.
    pub fn resolve(&self, cx: &RunContext) -> Result<SecretValue, SecretError> {
        match self {
            Secret::Env(name) => std::env::var(name)
                .map(SecretValue)
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            Secret::File(path) => {
                let path = cx.resolve(path);
                std::fs::read_to_string(&path)
                    .map(|text| SecretValue(text.trim_end_matches(['\r', '\n']).to_string()))
                    .map_err(|source| SecretError::File { path, source })
            }
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
    /// A secret that did not come from the pipeline file (a token an API handed out).
    pub fn new(secret: String) -> Self {
        SecretValue(secret)
    }

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

    fn context(base_dir: &std::path::Path) -> RunContext {
        RunContext::new("p", base_dir)
    }

    #[test]
    fn values_never_print() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cr3t\n").unwrap();
        // Relative to the pipeline file's directory, like every path in a pipeline file.
        let value = parse("${file:token}")
            .unwrap()
            .resolve(&context(dir.path()))
            .unwrap();
        assert_eq!(value.expose(), "s3cr3t");
        assert_eq!(format!("{value} {value:?}"), "*** ***");
        let literal = parse("s3cr3t").unwrap();
        assert_eq!(format!("{literal} {literal:?}"), "*** ***");
    }

    #[test]
    fn a_missing_variable_is_named_unless_it_looks_like_a_pasted_token() {
        let cx = context(std::path::Path::new("."));
        let err = Secret::Env("LONGSHORE_TEST_SURELY_UNSET".into())
            .resolve(&cx)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `LONGSHORE_TEST_SURELY_UNSET` is not set (or not UTF-8)"
        );
        let err = Secret::Env("ghp_16C7e42F292c6912E7710c838347Ae178B4a".into())
            .resolve(&cx)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable named in `${env:…}` is not set (or not UTF-8)"
        );
    }

    #[test]
    fn type_errors_do_not_repeat_the_value() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            #[allow(dead_code)]
            password: Secret,
        }
        // The pipeline loader shows serde's message (not toml's quote of the source line).
        let err = toml::from_str::<Config>("password = 12345678").unwrap_err();
        assert_eq!(
            err.message(),
            "a secret must be a string: \"${env:NAME}\" or \"${file:PATH}\""
        );
        let err = parse("${env:hunter2 is my password}").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
