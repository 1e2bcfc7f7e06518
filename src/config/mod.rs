//! What every stage's config is built from: [`Validate`] and its [`Invalid`] findings,
//! [`Secret`]s, and `${env:…}`/`${var:…}`/`${file:…}` references ([`interpolate`]). The
//! pipeline file as a whole is [`crate::pipeline`]'s; this layer sits below the stages so that
//! each stage can own its config type.

pub mod interpolate;
pub mod secret;

use std::path::{Component, Path, PathBuf};

pub use interpolate::{Resolver, Variables};
pub use secret::{Secret, SecretUrl, SecretValue};

/// A problem a config value has on its own, found without I/O: the key it is about (a dotted
/// path within the stage's table, e.g. `format.delimiter`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `key: message`, as tests and single-line listings show a problem.
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Checks a config value needs beyond its types (pure: no files or network touched).
pub trait Validate {
    fn problems(&self) -> Vec<Invalid>;
}

/// `path` with `~/` expanded, joined to `base` when relative, `.` and `..` removed lexically.
pub(crate) fn join_clean(base: &Path, path: &str) -> PathBuf {
    let expanded = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    };
    let joined = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    let mut clean = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(clean.components().next_back(), Some(Component::Normal(_))) =>
            {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}
