//! OpenClaw state backups in S3: where they live ([`layout`]) and the scripts that make one on the
//! gateway ([`script`]) and restore one beside the live state ([`restore`]), both as the state
//! directory's owner ([`owner`]). s3-backup runs it daily and by hand; spot-recovery runs it on a Spot warning.

pub mod layout;
pub mod owner;
pub mod restore;
pub mod script;
