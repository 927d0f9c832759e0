//! OpenClaw state backups in S3: where they live ([`layout`]), the scripts that make one on the
//! gateway ([`script`]) and restore one beside the live state ([`restore`]), both as the state
//! directory's owner ([`owner`]), and the bucket as the functions use it ([`store`]: pre-signed
//! URLs, read-back verification, Object Lock, records). s3-backup runs them daily and by hand;
//! spot-recovery runs the backup on a Spot warning.

pub mod layout;
pub mod owner;
pub mod restore;
pub mod script;
pub mod settings;
#[cfg(feature = "s3")]
pub mod store;
