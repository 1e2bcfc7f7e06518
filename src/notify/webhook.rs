//! placeholder
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Validate};

/// placeholder
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {}

impl Validate for WebhookConfig {
    fn problems(&self) -> Vec<Invalid> {
        Vec::new()
    }
}
