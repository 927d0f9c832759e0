//! OpenClaw state backups in S3: where they live ([`layout`]) and the script that makes one on the
//! gateway ([`script`]). s3-backup runs it daily and by hand; spot-recovery runs it on a Spot warning.

pub mod layout;
pub mod script;
