//! spot-recovery: the gateway survives an EC2 Spot interruption on its own.
//!
//! observe (the event's instance, its replacement if any, the gateway's volumes, the suite's
//! snapshots) → plan ([`plan::plan`], pure) → apply (skipped in dry-run) → report (JSON response,
//! one log line, EMF metrics, a notification with the recovery's timeline).

pub mod config;
pub mod event;
pub mod plan;

pub use crate::config::Config;

pub const FUNCTION: &str = "spot-recovery";
