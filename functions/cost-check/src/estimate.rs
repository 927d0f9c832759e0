//! The architecture's cost estimate, as data: the seed's itemised tables (estimate.json), each line
//! mapped to the Cost Explorer service / usage-type patterns that make it up. `COST_ESTIMATE` (JSON)
//! overrides lines by name or adds new ones.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const BUILT_IN: &str = include_str!("estimate.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Full,
    Budget,
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Tier::Full),
            "budget" => Ok(Tier::Budget),
            other => Err(format!("unknown tier {other:?} (full or budget)")),
        }
    }
}

/// Which of the seed's savings options applies when a line runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Saving {
    Ec2,
    Nat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub service: String,
    /// A pattern with `*` wildcards; absent matches every usage type of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_type: Option<String>,
}

impl Matcher {
    pub fn matches(&self, service: &str, usage_type: &str) -> bool {
        self.service == service && self.usage_type.as_deref().is_none_or(|p| glob(p, usage_type))
    }
}

/// `*` matches any run of characters; everything else is literal.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub name: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub monthly: Decimal,
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Saving>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    #[serde(default)]
    pub description: String,
    pub lines: Vec<Line>,
}

/// `COST_ESTIMATE`: lines to replace (same name) or add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    lines: Vec<Line>,
}

impl Estimate {
    pub fn built_in(tier: Tier) -> Estimate {
        let mut all: std::collections::BTreeMap<String, Estimate> =
            serde_json::from_str(BUILT_IN).expect("estimate.json is valid (a unit test checks it)");
        let key = match tier {
            Tier::Full => "full",
            Tier::Budget => "budget",
        };
        all.remove(key).expect("both tiers are in estimate.json")
    }

    pub fn with_override(mut self, json: &str) -> Result<Estimate, String> {
        let extra: Override = serde_json::from_str(json).map_err(|e| format!("COST_ESTIMATE: {e}"))?;
        for line in extra.lines {
            match self.lines.iter_mut().find(|l| l.name == line.name) {
                Some(existing) => *existing = line,
                None => self.lines.push(line),
            }
        }
        self.description.push_str(" (with COST_ESTIMATE)");
        Ok(self)
    }

    pub fn total(&self) -> Decimal {
        self.lines.iter().map(|l| l.monthly).sum()
    }

    /// The first line whose patterns take this cost.
    pub fn line_for(&self, service: &str, usage_type: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.matchers.iter().any(|m| m.matches(service, usage_type)))
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn the_seeds_tables_add_up_to_its_totals() {
        assert_eq!(Estimate::built_in(Tier::Full).total(), Decimal::from_str("71.23").unwrap());
        assert_eq!(Estimate::built_in(Tier::Budget).total(), Decimal::from_str("22.54").unwrap());
    }

    #[test]
    fn patterns_match_services_and_usage_types() {
        let full = Estimate::built_in(Tier::Full);
        let name = |s, u| full.line_for(s, u).map(|l| l.name.as_str());
        assert_eq!(name("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small"), Some("EC2 t3.small"));
        assert_eq!(name("EC2 - Other", "EUC1-NatGateway-Hours"), Some("NAT Gateway"));
        assert_eq!(name("EC2 - Other", "EUC1-NatGateway-Bytes"), None, "NAT data is not in the estimate");
        assert_eq!(name("EC2 - Other", "EUC1-EBS:SnapshotUsage"), None);
        assert_eq!(name("AWS Key Management Service", "EUC1-KMS-Keys"), Some("KMS"));
        assert_eq!(name("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress"), None);
        let budget = Estimate::built_in(Tier::Budget);
        assert_eq!(
            budget.line_for("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress").unwrap().name,
            "Elastic IP"
        );
    }

    #[test]
    fn globs() {
        assert!(glob("*BoxUsage*", "EUC1-BoxUsage:t3.small"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abde"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn overrides_replace_by_name_and_add() {
        let json = r#"{"lines": [
            {"name": "EC2 t3.small", "monthly": "18.40", "match": [{"service": "Amazon Elastic Compute Cloud - Compute"}], "saving": "ec2"},
            {"name": "Snapshots", "monthly": "0.80", "match": [{"service": "EC2 - Other", "usage_type": "*SnapshotUsage*"}]}
        ]}"#;
        let e = Estimate::built_in(Tier::Full).with_override(json).unwrap();
        assert_eq!(e.lines.len(), 9);
        assert_eq!(e.total(), Decimal::from_str("75.10").unwrap());
        assert!(Estimate::built_in(Tier::Full).with_override(r#"{"lines": [{"name": "x"}]}"#).is_err());
        assert!(Estimate::built_in(Tier::Full).with_override(r#"{"lines": [], "extra": 1}"#).is_err());
    }
}
