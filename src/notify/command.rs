//! placeholder
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Validate};

/// placeholder
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {}

impl Validate for CommandConfig {
    fn problems(&self) -> Vec<Invalid> {
        Vec::new()
    }
}
