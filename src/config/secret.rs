//! Secrets by reference. A pipeline file names where a secret lives (`${env:VENDOR_TOKEN}`,
//! `${file:/run/secrets/key}`) instead of holding it, so pipeline files can be committed. The
//! value is read only when the run needs it, and neither `Debug` nor `Display` ever shows it.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

pub use super::interpolate::ReferenceError as SecretError;
use super::interpolate::{self, Resolver, Template};

/// A secret as written in a pipeline file: references (`${env:NAME}`, `${file:PATH}`,
/// `${var:NAME}`), possibly inside text (`"Token ${env:API_TOKEN}"`), or the secret itself
/// written in (discouraged).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    template: Template,
}

impl TryFrom<String> for Secret {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        // A pipeline file's strings arrive resolved; a secret takes its references back, to
        // resolve them only when the run needs the value.
        let written = interpolate::as_written(&text);
        let template = Template::parse(written.as_deref().unwrap_or(&text))?;
        if !template.has_references() && !text.is_empty() {
            interpolate::note_literal_secret(&text);
        }
        Ok(Secret { template })
    }
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

/// Shows the references, never a value or text: `${env:NAME}`, `***${env:NAME}`, `***`.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template.shown_without_text())
    }
}

impl Secret {
    /// Reads the secret's value now; a relative `${file:…}` path is taken from the pipeline
    /// file's directory.
    pub fn resolve(&self, references: &Resolver) -> Result<SecretValue, SecretError> {
        self.template.render(references).map(SecretValue)
    }

    /// Reads the secret's value now, with the values of its references alone: every one of
    /// them is a secret to keep out of messages (`Token ${env:T}` gives the token too).
    pub fn resolve_all(
        &self,
        references: &Resolver,
    ) -> Result<(SecretValue, Vec<String>), SecretError> {
        let value = self.template.render(references).map(SecretValue)?;
        Ok((value, self.template.referenced_values(references)?))
    }

    /// Whether the value is written in the pipeline file, with no reference.
    pub fn is_literal(&self) -> bool {
        !self.template.has_references()
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret by reference: `${env:NAME}` reads an environment variable, `${file:PATH}` a file (trailing newline removed), `${var:NAME}` a `--var`; references may stand inside text (`Token ${env:API_TOKEN}`). Resolved at run time, shown as `***` in logs and errors."
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
        let shown = |text: &str| parse(text).map(|secret| secret.to_string());
        assert_eq!(shown("${env:API_TOKEN}").as_deref(), Ok("${env:API_TOKEN}"));
        assert_eq!(
            shown("${file:/run/secrets/key}").as_deref(),
            Ok("${file:/run/secrets/key}")
        );
        assert_eq!(shown("Token ${env:T}").as_deref(), Ok("***${env:T}"));
        assert_eq!(shown("hunter2").as_deref(), Ok("***"));
        assert!(parse("hunter2").unwrap().is_literal());
        assert!(!parse("Token ${env:T}").unwrap().is_literal());
        assert!(parse("${env:}").is_err());
        assert!(parse("${env:1X}").is_err());
        assert!(
            parse("${vault:x}")
                .unwrap_err()
                .contains("unknown reference")
        );
    }

    /// References as a run of a pipeline file in `base_dir` resolves them.
    fn context(base_dir: &std::path::Path) -> Resolver<'_> {
        static NO_VARS: std::sync::LazyLock<interpolate::Variables> =
            std::sync::LazyLock::new(interpolate::Variables::default);
        Resolver {
            vars: &NO_VARS,
            base_dir,
        }
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
        let err = parse("${env:LONGSHORE_TEST_SURELY_UNSET}")
            .unwrap()
            .resolve(&cx)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `LONGSHORE_TEST_SURELY_UNSET` is not set (or not UTF-8)"
        );
        let err = parse("Token ${env:ghp_16C7e42F292c6912E7710c838347Ae178B4a}")
            .unwrap()
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

/// A URL that may be a secret in full (a Slack or Teams webhook holds its token in the path):
/// resolved when the pipeline is loaded, like any string, but messages show it as written in
/// the pipeline file (`${env:SLACK_WEBHOOK_URL}`), so a value that came from a reference is
/// never shown; one written out in full is shown with its query values hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    value: String,
    shown: String,
}

impl SecretUrl {
    /// The URL to send to.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The URL as messages show it.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        let written = interpolate::as_written(&value);
        let shown = crate::redact::redact_url(written.as_deref().unwrap_or(&value));
        SecretUrl { value, shown }
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretUrl::from)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl JsonSchema for SecretUrl {
    fn schema_name() -> Cow<'static, str> {
        "SecretUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A URL, best by reference when it holds a token (`${env:SLACK_WEBHOOK_URL}`): messages show it as written."
        })
    }
}
