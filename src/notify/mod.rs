//! Notifications after a run (placeholder: being built).

pub mod command;
pub mod email;
pub mod webhook;
