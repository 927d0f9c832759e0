//! The suite's local test bed, from the Rust side: the emulator (moto + our additions), a local
//! Lambda Runtime API that runs a function's real `bootstrap`, IAM principals built from
//! template.yaml, and a small seeded OpenClaw account.

pub mod account;
pub mod backup_bucket;
pub mod costs;
pub mod emulator;
pub mod gateway_stack;
pub mod iam;
pub mod openclaw_state;
pub mod runtime;
pub mod schedule;
pub mod stack;
pub mod state_owner;
pub mod template;
pub mod tls_front;

use std::path::PathBuf;

/// The workspace root (where template.yaml and testbed/ live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}
