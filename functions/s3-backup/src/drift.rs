//! Is the bucket still as the template made it? A hand edit can silently stop retention (a deleted
//! lifecycle rule keeps every backup forever; a suspended versioning loses overwritten ones; another
//! key or none changes who can read them). Each backup run compares and reports what differs.

use openclaw_ops_shared::error::Failure;
use serde::Serialize;

/// What `template.yaml` sets on `BackupBucket` (the daily retention is a stack parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub prefix: String,
    pub daily_days: i32,
    /// The stack's key; `None` accepts any SSE-KMS key.
    pub kms_key: Option<String>,
}

pub const MONTHLY_DAYS: i32 = 365;
pub const MONTHLY_TRANSITION: (i32, &str) = (30, "STANDARD_IA");
pub const NONCURRENT_DAYS: i32 = 7;
pub const ABORT_UPLOAD_DAYS: i32 = 1;

/// What the bucket says, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `Enabled`, `Suspended`, or `None` when versioning was never turned on.
    pub versioning: Result<Option<String>, Failure>,
    /// Default encryption rules (empty when there is none).
    pub encryption: Result<Vec<Encryption>, Failure>,
    /// `None` when the bucket has no lifecycle configuration at all.
    pub lifecycle: Result<Option<Vec<Rule>>, Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    pub algorithm: String,
    pub kms_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    /// The rule's prefix (filter or legacy field); empty for the whole bucket.
    pub prefix: String,
    pub expiration_days: Option<i32>,
    pub transitions: Vec<(i32, String)>,
    pub noncurrent_days: Option<i32>,
    pub abort_upload_days: Option<i32>,
}

/// One difference, said so an operator knows what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub setting: &'static str,
    pub finding: String,
}

fn drift(setting: &'static str, finding: String) -> Drift {
    Drift { setting, finding }
}

pub fn check(observed: &Observed, expected: &Expected) -> Vec<Drift> {
    let mut out = Vec::new();
    match &observed.versioning {
        Ok(Some(status)) if status == "Enabled" => {}
        Ok(status) => out.push(drift(
            "versioning",
            format!(
                "versioning is {}, not Enabled: an overwritten or deleted backup cannot be recovered",
                status.as_deref().unwrap_or("off")
            ),
        )),
        Err(e) => out.push(drift("versioning", format!("could not be read: {e}"))),
    }
    match &observed.encryption {
        Ok(rules) => match rules.first() {
            None => out.push(drift("encryption", "no default encryption".into())),
            Some(e) if e.algorithm != "aws:kms" && e.algorithm != "aws:kms:dsse" => out.push(drift(
                "encryption",
                format!("default encryption is {}, not SSE-KMS with the stack's key", e.algorithm),
            )),
            Some(e) => {
                if let Some(want) = &expected.kms_key
                    && !same_key(e.kms_key.as_deref(), want)
                {
                    out.push(drift(
                        "encryption",
                        format!(
                            "default encryption uses the key {}, not the stack's {want}",
                            e.kms_key.as_deref().unwrap_or("aws/s3")
                        ),
                    ));
                }
            }
        },
        Err(e) => out.push(drift("encryption", format!("could not be read: {e}"))),
    }
    match &observed.lifecycle {
        Ok(None) => out.push(drift("lifecycle", "no lifecycle rules: backups are never expired".into())),
        Ok(Some(rules)) => out.extend(lifecycle(rules, expected)),
        Err(e) => out.push(drift("lifecycle", format!("could not be read: {e}"))),
    }
    out
}

fn lifecycle(rules: &[Rule], expected: &Expected) -> Vec<Drift> {
    let enabled: Vec<&Rule> = rules.iter().filter(|r| r.enabled).collect();
    let mut out = Vec::new();
    let daily = format!("{}daily/", expected.prefix);
    match enabled.iter().find(|r| r.prefix == daily) {
        Some(r) if r.expiration_days == Some(expected.daily_days) => {}
        Some(r) => out.push(drift(
            "lifecycle",
            format!("{daily} expires after {}, not {} days", days(r.expiration_days), expected.daily_days),
        )),
        None => {
            out.push(drift("lifecycle", format!("no enabled rule expires {daily}: daily backups are kept forever")))
        }
    }
    let monthly = format!("{}monthly/", expected.prefix);
    match enabled.iter().find(|r| r.prefix == monthly) {
        Some(r) => {
            if r.expiration_days != Some(MONTHLY_DAYS) {
                out.push(drift(
                    "lifecycle",
                    format!("{monthly} expires after {}, not {MONTHLY_DAYS} days", days(r.expiration_days)),
                ));
            }
            let (after, class) = MONTHLY_TRANSITION;
            if !r.transitions.iter().any(|(d, c)| *d == after && c == class) {
                out.push(drift("lifecycle", format!("{monthly} no longer moves to {class} after {after} days")));
            }
        }
        None => {
            out.push(drift("lifecycle", format!("no enabled rule expires {monthly}: monthly backups are kept forever")))
        }
    }
    let whole_bucket = |r: &&&Rule| r.prefix.is_empty() || expected.prefix.starts_with(&r.prefix);
    if !enabled.iter().filter(whole_bucket).any(|r| r.noncurrent_days == Some(NONCURRENT_DAYS)) {
        out.push(drift(
            "lifecycle",
            format!(
                "no rule expires noncurrent versions after {NONCURRENT_DAYS} days: old versions are kept and billed"
            ),
        ));
    }
    if !enabled.iter().filter(whole_bucket).any(|r| r.abort_upload_days == Some(ABORT_UPLOAD_DAYS)) {
        out.push(drift(
            "lifecycle",
            format!("no rule aborts incomplete uploads after {ABORT_UPLOAD_DAYS} day: broken uploads are billed"),
        ));
    }
    out
}

fn days(d: Option<i32>) -> String {
    d.map_or_else(|| "never".to_owned(), |d| format!("{d} days"))
}

/// A key may be named by id, ARN or alias ARN; ids and ARNs of the same key are the same key.
fn same_key(got: Option<&str>, want: &str) -> bool {
    let id = |k: &str| k.rsplit_once("key/").map_or(k, |(_, id)| id).to_owned();
    got.is_some_and(|got| id(got) == id(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn expected() -> Expected {
        Expected { prefix: "openclaw/".into(), daily_days: 30, kms_key: Some(KEY.into()) }
    }

    /// The bucket exactly as template.yaml makes it.
    fn as_deployed() -> Observed {
        Observed {
            versioning: Ok(Some("Enabled".into())),
            encryption: Ok(vec![Encryption { algorithm: "aws:kms".into(), kms_key: Some(KEY.into()) }]),
            lifecycle: Ok(Some(vec![
                Rule {
                    id: "daily-backups".into(),
                    enabled: true,
                    prefix: "openclaw/daily/".into(),
                    expiration_days: Some(30),
                    ..Rule::default()
                },
                Rule {
                    id: "monthly-backups".into(),
                    enabled: true,
                    prefix: "openclaw/monthly/".into(),
                    expiration_days: Some(365),
                    transitions: vec![(30, "STANDARD_IA".into())],
                    ..Rule::default()
                },
                Rule {
                    id: "old-versions-and-uploads".into(),
                    enabled: true,
                    noncurrent_days: Some(7),
                    abort_upload_days: Some(1),
                    ..Rule::default()
                },
            ])),
        }
    }

    fn findings(o: &Observed) -> Vec<String> {
        check(o, &expected()).into_iter().map(|d| format!("{}: {}", d.setting, d.finding)).collect()
    }

    #[test]
    fn the_bucket_as_deployed_has_no_drift() {
        assert!(findings(&as_deployed()).is_empty());
        let mut by_id = as_deployed();
        by_id.encryption = Ok(vec![Encryption {
            algorithm: "aws:kms".into(),
            kms_key: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        }]);
        assert!(findings(&by_id).is_empty(), "the key named by id is the same key");
    }

    #[test]
    fn versioning_suspended_or_never_on() {
        let mut o = as_deployed();
        o.versioning = Ok(Some("Suspended".into()));
        assert_eq!(
            findings(&o),
            ["versioning: versioning is Suspended, not Enabled: an overwritten or deleted backup cannot be recovered"]
        );
        o.versioning = Ok(None);
        assert!(findings(&o)[0].contains("versioning is off"));
    }

    #[test]
    fn encryption_gone_weakened_or_with_another_key() {
        let mut o = as_deployed();
        o.encryption = Ok(vec![]);
        assert_eq!(findings(&o), ["encryption: no default encryption"]);
        o.encryption = Ok(vec![Encryption { algorithm: "AES256".into(), kms_key: None }]);
        assert!(findings(&o)[0].contains("default encryption is AES256"));
        o.encryption = Ok(vec![Encryption { algorithm: "aws:kms".into(), kms_key: None }]);
        assert!(findings(&o)[0].contains("uses the key aws/s3"));
        let mut any_key = expected();
        any_key.kms_key = None;
        assert!(check(&o, &any_key).is_empty());
    }

    #[test]
    fn lifecycle_rules_removed_changed_or_disabled() {
        let mut o = as_deployed();
        o.lifecycle = Ok(None);
        assert_eq!(findings(&o), ["lifecycle: no lifecycle rules: backups are never expired"]);

        let mut o = as_deployed();
        let rules = o.lifecycle.as_mut().unwrap().as_mut().unwrap();
        rules[0].expiration_days = Some(90);
        rules[1].transitions.clear();
        rules[2].enabled = false;
        assert_eq!(
            findings(&o),
            [
                "lifecycle: openclaw/daily/ expires after 90 days, not 30 days",
                "lifecycle: openclaw/monthly/ no longer moves to STANDARD_IA after 30 days",
                "lifecycle: no rule expires noncurrent versions after 7 days: old versions are kept and billed",
                "lifecycle: no rule aborts incomplete uploads after 1 day: broken uploads are billed",
            ]
        );

        let mut o = as_deployed();
        let rules = o.lifecycle.as_mut().unwrap().as_mut().unwrap();
        rules.remove(1);
        rules[0].expiration_days = None;
        assert_eq!(
            findings(&o),
            [
                "lifecycle: openclaw/daily/ expires after never, not 30 days",
                "lifecycle: no enabled rule expires openclaw/monthly/: monthly backups are kept forever",
            ]
        );
    }

    #[test]
    fn a_rule_scoped_to_another_prefix_does_not_cover_ours() {
        let mut o = as_deployed();
        o.lifecycle.as_mut().unwrap().as_mut().unwrap()[2].prefix = "elsewhere/".into();
        assert_eq!(findings(&o).len(), 2);
        o.lifecycle.as_mut().unwrap().as_mut().unwrap()[2].prefix = "openclaw/".into();
        assert!(findings(&o).is_empty(), "a rule over the whole backup prefix covers it");
    }

    #[test]
    fn what_cannot_be_read_is_reported_not_ignored() {
        let o = Observed {
            versioning: Err("AccessDenied".into()),
            encryption: Err("AccessDenied".into()),
            lifecycle: Err("AccessDenied".into()),
        };
        assert_eq!(
            findings(&o),
            [
                "versioning: could not be read: AccessDenied",
                "encryption: could not be read: AccessDenied",
                "lifecycle: could not be read: AccessDenied",
            ]
        );
    }
}
