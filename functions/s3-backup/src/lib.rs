//! s3-backup: application-consistent backups of OpenClaw's state directory to S3, made on the
//! instance by an SSM Run Command whose script this crate writes.
//!
//! Work in progress: the script (run for real in tests) and the object layout are here; the
//! handler (observe → plan → apply → verify → report) comes next.

pub mod layout;
pub mod script;
