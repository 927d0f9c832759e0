//! Restoring: which gateway, which backups to try (newest first), and where the copy goes — pure
//! functions of what was asked and what was listed. The handler verifies the candidates in this
//! order and restores the first that verifies.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::Error;
use serde::Serialize;

use crate::event::Which;
use crate::layout;
use crate::plan::Gateway;

/// The gateway named by its Name tag or instance id, among the running ones.
pub fn pick_gateway(gateways: &[Gateway], wanted: &str) -> Result<Gateway, Error> {
    if let Some(by_id) = gateways.iter().find(|g| g.instance_id == wanted) {
        return Ok(by_id.clone());
    }
    let named: Vec<&Gateway> = gateways.iter().filter(|g| g.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let known: Vec<String> = gateways.iter().map(|g| format!("{} ({})", g.name, g.instance_id)).collect();
            Err(Error::Input(format!(
                "no running gateway is named or has the id {wanted:?}; running gateways: [{}]",
                known.join(", ")
            )))
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|g| g.instance_id.as_str()).collect();
            Err(Error::Input(format!(
                "{} running gateways are named {wanted:?} ({}); name one by its instance id",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

/// Where to look for `which`: the gateway's daily and monthly history for "latest", else the key's
/// manifest. A key outside `BACKUP_PREFIX`, or one that is not a backup's, is refused.
pub fn search_prefixes(prefix: &str, gateway: &Gateway, which: &Which) -> Result<Vec<String>, Error> {
    match which {
        Which::Latest => Ok(layout::history(prefix, &gateway.name).into()),
        Which::Key(key) => {
            if !key.starts_with(prefix) || key.split('/').any(|part| part == ".." || part == ".") {
                return Err(Error::Input(format!("the backup {key:?} is not under the backup prefix {prefix:?}")));
            }
            let manifest = layout::manifest_for(key).ok_or_else(|| {
                Error::Input(format!("{key:?} is not a backup: expected a key ending in .tar.gz or .manifest.json"))
            })?;
            Ok(vec![manifest])
        }
    }
}

/// The manifests to try, newest first (by the time in their name; a daily backup before its monthly
/// copy). For a named key, exactly that manifest, and an error when it is not in the bucket.
pub fn candidates(which: &Which, listed: &[String]) -> Result<Vec<String>, Error> {
    if let Which::Key(key) = which {
        let manifest = layout::manifest_for(key).unwrap_or_default();
        if !listed.contains(&manifest) {
            return Err(Error::Input(format!("there is no backup {key:?} (no manifest {manifest:?} in the bucket)")));
        }
        return Ok(vec![manifest]);
    }
    let mut manifests: Vec<(DateTime<Utc>, bool, &String)> = listed
        .iter()
        .filter(|k| k.ends_with(".manifest.json"))
        .filter_map(|k| layout::made_at(k).map(|at| (at, k.contains("/monthly/"), k)))
        .collect();
    manifests.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    Ok(manifests.into_iter().map(|(_, _, k)| k.clone()).collect())
}

/// A new directory beside the live one, named for the time of the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub dir: String,
    pub stamp: String,
}

pub fn target(state_dir: &str, now: DateTime<Utc>) -> Target {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    Target { dir: format!("{}.restored-{stamp}", state_dir.trim_end_matches('/')), stamp }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(id: &str, name: &str) -> Gateway {
        Gateway { instance_id: id.into(), name: name.into() }
    }

    #[test]
    fn a_gateway_is_named_by_id_or_name_and_never_guessed() {
        let gateways = [gw("i-1", "openclaw-gateway"), gw("i-2", "staging"), gw("i-3", "staging")];
        assert_eq!(pick_gateway(&gateways, "i-2").unwrap(), gw("i-2", "staging"));
        assert_eq!(pick_gateway(&gateways, "openclaw-gateway").unwrap(), gw("i-1", "openclaw-gateway"));
        let ambiguous = pick_gateway(&gateways, "staging").unwrap_err().to_string();
        assert!(ambiguous.contains("i-2, i-3"), "{ambiguous}");
        let unknown = pick_gateway(&gateways, "prod").unwrap_err();
        assert!(matches!(unknown, Error::Input(_)));
        assert!(unknown.to_string().contains("openclaw-gateway (i-1)"));
        assert!(pick_gateway(&[], "i-1").is_err());
    }

    #[test]
    fn latest_searches_the_gateways_daily_and_monthly_history() {
        let p = search_prefixes("openclaw/", &gw("i-1", "my gw"), &Which::Latest).unwrap();
        assert_eq!(p, ["openclaw/daily/my-gw/", "openclaw/monthly/my-gw/"]);
    }

    #[test]
    fn a_named_key_must_be_a_backup_under_the_prefix() {
        let g = gw("i-1", "gw");
        let key = |k: &str| search_prefixes("openclaw/", &g, &Which::Key(k.into()));
        assert_eq!(
            key("openclaw/daily/old-gw/2026/11/20/openclaw-20261120T023000Z.tar.gz").unwrap(),
            ["openclaw/daily/old-gw/2026/11/20/openclaw-20261120T023000Z.manifest.json"]
        );
        for bad in ["other/daily/x.tar.gz", "openclaw/../secrets/x.tar.gz", "openclaw/daily/notes.txt"] {
            assert!(matches!(key(bad), Err(Error::Input(_))), "{bad}");
        }
    }

    #[test]
    fn candidates_are_newest_first_daily_before_its_monthly_copy() {
        let listed: Vec<String> = [
            "p/daily/gw/2026/11/24/openclaw-20261124T023000Z.tar.gz",
            "p/daily/gw/2026/11/24/openclaw-20261124T023000Z.manifest.json",
            "p/daily/gw/2026/11/25/openclaw-20261125T023000Z.manifest.json",
            "p/monthly/gw/2026/11/openclaw-20261101T023000Z.manifest.json",
            "p/daily/gw/2026/11/01/openclaw-20261101T023000Z.manifest.json",
            "p/daily/gw/2026/11/25/stray.manifest.json",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            candidates(&Which::Latest, &listed).unwrap(),
            [
                "p/daily/gw/2026/11/25/openclaw-20261125T023000Z.manifest.json",
                "p/daily/gw/2026/11/24/openclaw-20261124T023000Z.manifest.json",
                "p/daily/gw/2026/11/01/openclaw-20261101T023000Z.manifest.json",
                "p/monthly/gw/2026/11/openclaw-20261101T023000Z.manifest.json",
            ]
        );
        assert!(candidates(&Which::Latest, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_named_key_that_is_not_in_the_bucket_is_refused() {
        let listed = vec!["p/daily/gw/2026/11/24/openclaw-20261124T023000Z.manifest.json".to_owned()];
        let named = Which::Key("p/daily/gw/2026/11/24/openclaw-20261124T023000Z.tar.gz".into());
        assert_eq!(candidates(&named, &listed).unwrap(), [listed[0].clone()]);
        let missing = Which::Key("p/daily/gw/2026/11/23/openclaw-20261123T023000Z.tar.gz".into());
        assert!(matches!(candidates(&missing, &listed), Err(Error::Input(_))));
    }

    #[test]
    fn the_target_is_a_new_sibling_of_the_live_state() {
        let t = target("/home/openclaw/data/openclaw/", "2026-11-25T09:30:00Z".parse().unwrap());
        assert_eq!(t.dir, "/home/openclaw/data/openclaw.restored-20261125T093000Z");
        assert_eq!(t.stamp, "20261125T093000Z");
    }
}
