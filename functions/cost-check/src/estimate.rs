//! The architecture's cost estimate, as data (estimate.json): the seed's itemised tables, each line
//! mapped to the Cost Explorer service / usage-type patterns that make it up, with
//!
//! * the unpriced parts of a seed line ("+ data", "+ LCU"), matched by their own usage types;
//! * what the deployed gateway stack and the suite itself add, priced from the dated price table
//!   (prices.json): inside a seed line's usage types (a second volume, the suite's key) or with usage
//!   types of their own (public IPv4, WAF, Flow Logs, snapshots, Lambda, Cost Explorer).
//!
//! `COST_ESTIMATE` (JSON) overrides lines by name or adds new ones.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::prices::PriceTable;

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

/// The option that addresses a cost when it drives an overrun (savings.rs says what each offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Saving {
    Ec2,
    Ebs,
    Nat,
    NatData,
    Alb,
    Lcu,
    PublicIpv4,
    Waf,
    VendedLogs,
    S3,
    Snapshots,
    DataTransfer,
}

/// Who adds a cost beyond the seed's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// The gateway stack this project deploys (stacks/gateway.yaml).
    Stack,
    /// The ops suite itself (template.yaml's functions, keys, alarms, backups).
    Suite,
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

fn any_match(matchers: &[Matcher], service: &str, usage_type: &str) -> bool {
    matchers.iter().any(|m| m.matches(service, usage_type))
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

/// A price from the table times a quantity (hours, GB-months, keys...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Priced {
    pub price: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
}

/// Something the gateway stack or the suite adds beyond the seed's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addition {
    pub block: Block,
    pub name: String,
    /// The template resources that cost this.
    pub resource: String,
    /// The seed's line already pays for it (the seed's S3 line is the backups): it counts in its
    /// block's figure, not again in the line's.
    #[serde(default)]
    pub in_seed: bool,
    #[serde(default)]
    pub cost: Vec<Priced>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Usage types of its own; empty for an addition inside a seed line's usage types.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Saving>,
    /// The monthly figure, from the price table (or the seed's line when `in_seed`).
    #[serde(skip_deserializing, with = "rust_decimal::serde::str")]
    pub expected: Decimal,
}

/// An unpriced part of a seed line ("+ data", "+ LCU"): its own usage types and its own threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub name: String,
    /// The seed's words for it.
    pub seed: String,
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Saving>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub name: String,
    /// The seed's figure (0 for a line the seed's table lacks).
    #[serde(with = "rust_decimal::serde::str")]
    pub monthly: Decimal,
    /// False for a line the seed's table does not have (the budget tier's KMS keys).
    #[serde(default = "yes")]
    pub in_seed: bool,
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<Saving>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Additions paid through this line's usage types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adds: Vec<Addition>,
}

impl Line {
    /// The seed's figure plus what the stack and the suite add inside this line.
    pub fn expected(&self) -> Decimal {
        self.monthly + self.adds.iter().filter(|a| !a.in_seed).map(|a| a.expected).sum::<Decimal>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    #[serde(default)]
    pub description: String,
    pub lines: Vec<Line>,
    /// Additions with usage types of their own.
    #[serde(default)]
    pub additions: Vec<Addition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltIn {
    full: Estimate,
    budget: Estimate,
    suite: Vec<Addition>,
}

/// `COST_ESTIMATE`: lines to replace (same name) or add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    lines: Vec<Line>,
}

/// Where one cost belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Addition(usize),
    Part(usize, usize),
    Line(usize),
}

impl Estimate {
    /// The tier's estimate; what the gateway stack adds only when this project deployed it.
    pub fn built_in(tier: Tier, gateway_stack: bool, prices: &PriceTable) -> Estimate {
        let all: BuiltIn = serde_json::from_str(BUILT_IN).expect("estimate.json is valid (a unit test checks it)");
        let mut estimate = match tier {
            Tier::Full => all.full,
            Tier::Budget => all.budget,
        };
        estimate.additions.extend(all.suite);
        let keep = |a: &Addition| a.block == Block::Suite || gateway_stack;
        estimate.additions.retain(keep);
        for line in &mut estimate.lines {
            line.adds.retain(keep);
        }
        estimate.resolve(prices);
        estimate
    }

    fn resolve(&mut self, prices: &PriceTable) {
        let price = |a: &Addition| a.cost.iter().map(|c| prices.usd(&c.price) * c.quantity).sum::<Decimal>();
        for line in &mut self.lines {
            let seed = line.monthly;
            for add in &mut line.adds {
                add.expected = crate::plan::cents(if add.in_seed { seed } else { price(add) });
            }
        }
        for add in &mut self.additions {
            add.expected = crate::plan::cents(price(add));
        }
    }

    pub fn with_override(mut self, json: &str, prices: &PriceTable) -> Result<Estimate, String> {
        let extra: Override = serde_json::from_str(json).map_err(|e| format!("COST_ESTIMATE: {e}"))?;
        for line in extra.lines {
            for add in &line.adds {
                if let Some(c) = add.cost.iter().find(|c| !prices.prices.contains_key(&c.price)) {
                    return Err(format!(
                        "COST_ESTIMATE: line {:?}: no price {:?} in the price table",
                        line.name, c.price
                    ));
                }
            }
            match self.lines.iter_mut().find(|l| l.name == line.name) {
                Some(existing) => *existing = line,
                None => self.lines.push(line),
            }
        }
        self.resolve(prices);
        self.description.push_str(" (with COST_ESTIMATE)");
        Ok(self)
    }

    /// The seed's total.
    pub fn seed_total(&self) -> Decimal {
        self.lines.iter().map(|l| l.monthly).sum()
    }

    /// Everything expected: the seed's lines, what the stack and suite add inside them and beside them.
    pub fn total(&self) -> Decimal {
        self.lines.iter().map(Line::expected).sum::<Decimal>()
            + self.additions.iter().map(|a| a.expected).sum::<Decimal>()
    }

    /// Every addition of one block, with the line it is inside of (if any).
    pub fn block(&self, block: Block) -> Vec<(Option<&Line>, &Addition)> {
        let inside = self.lines.iter().flat_map(|l| l.adds.iter().map(move |a| (Some(l), a)));
        inside.chain(self.additions.iter().map(|a| (None, a))).filter(|(_, a)| a.block == block).collect()
    }

    /// Where a cost belongs: an addition with usage types of its own first (they are narrower than
    /// the seed's lines: Flow Logs inside CloudWatch), then a line's unpriced part, then the line.
    pub fn place(&self, service: &str, usage_type: &str) -> Option<Place> {
        if let Some(i) = self.additions.iter().position(|a| any_match(&a.matchers, service, usage_type)) {
            return Some(Place::Addition(i));
        }
        for (l, line) in self.lines.iter().enumerate() {
            if let Some(p) = line.parts.iter().position(|p| any_match(&p.matchers, service, usage_type)) {
                return Some(Place::Part(l, p));
            }
        }
        self.lines.iter().position(|l| any_match(&l.matchers, service, usage_type)).map(Place::Line)
    }

    /// The first line whose patterns take this cost.
    pub fn line_for(&self, service: &str, usage_type: &str) -> Option<&Line> {
        match self.place(service, usage_type)? {
            Place::Line(i) => Some(&self.lines[i]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn built_in(tier: Tier, stack: bool) -> Estimate {
        Estimate::built_in(tier, stack, &PriceTable::built_in())
    }

    #[test]
    fn the_seeds_tables_add_up_to_its_totals() {
        assert_eq!(built_in(Tier::Full, false).seed_total(), d("71.23"));
        assert_eq!(built_in(Tier::Budget, true).seed_total(), d("22.54"));
    }

    #[test]
    fn the_stack_and_the_suite_add_what_the_price_table_says() {
        let full = built_in(Tier::Full, true);
        let sum = |b| full.block(b).iter().map(|(_, a)| a.expected).sum::<Decimal>();
        // Root volume 1.60, trail bucket 0.02, public IPv4 3 × 730 h × 0.005 = 10.95, WAF 5 + 1, logs 0.50.
        assert_eq!(sum(Block::Stack), d("19.07"));
        // Secret 0.40, backups (the seed's S3 line) 0.50, alarms 0.90, metrics 0.39, key 1.00,
        // snapshots 1.00, Lambda 0.00, Cost Explorer 0.10: the README's normal month.
        assert_eq!(sum(Block::Suite), d("4.29"));
        assert_eq!(full.total(), d("71.23") + d("19.07") + d("4.29") - d("0.50"), "the backups are the seed's S3 line");
        let without_stack = built_in(Tier::Full, false);
        assert!(without_stack.block(Block::Stack).is_empty());
        assert_eq!(without_stack.block(Block::Suite).iter().map(|(_, a)| a.expected).sum::<Decimal>(), d("4.29"));
        let budget = built_in(Tier::Budget, true);
        assert_eq!(budget.block(Block::Suite).iter().map(|(_, a)| a.expected).sum::<Decimal>(), d("4.29"));
        // Root volume 1.60, trail bucket 0.02, Flow Logs 0.50, the gateway's key 1.00.
        assert_eq!(budget.block(Block::Stack).iter().map(|(_, a)| a.expected).sum::<Decimal>(), d("3.12"));
    }

    #[test]
    fn the_readme_states_the_suites_normal_month_and_the_stacks_additions_as_computed() {
        let readme = include_str!("../../../README.md");
        let sum = |e: &Estimate, b| e.block(b).iter().map(|(_, a)| a.expected).sum::<Decimal>();
        let full = built_in(Tier::Full, true);
        let budget = built_in(Tier::Budget, true);
        for claim in [
            format!("**The suite's expected normal month: ${}**", sum(&full, Block::Suite)),
            format!("**What the gateway stack adds**: full tier ${}", sum(&full, Block::Stack)),
            format!("budget tier ${}", sum(&budget, Block::Stack)),
        ] {
            assert!(readme.contains(&claim), "README.md does not say {claim:?}");
        }
    }

    #[test]
    fn every_addition_is_priced_or_in_the_seed_and_is_measurable_or_inside_a_line() {
        let prices = PriceTable::built_in();
        for tier in [Tier::Full, Tier::Budget] {
            let e = built_in(tier, true);
            for line in &e.lines {
                for add in &line.adds {
                    assert!(add.matchers.is_empty(), "{}: inside {} by its usage types", add.name, line.name);
                    assert_eq!(add.in_seed, add.cost.is_empty(), "{}: priced, or the seed's line", add.name);
                }
            }
            for add in &e.additions {
                assert!(!add.matchers.is_empty() && !add.cost.is_empty() && !add.in_seed, "{}", add.name);
            }
            for add in e.lines.iter().flat_map(|l| &l.adds).chain(&e.additions) {
                for c in &add.cost {
                    assert!(prices.prices.contains_key(&c.price), "{}: {}", add.name, c.price);
                }
            }
        }
    }

    #[test]
    fn costs_go_to_additions_then_parts_then_lines() {
        let full = built_in(Tier::Full, true);
        let place = |s, u| full.place(s, u);
        let name = |s, u| full.line_for(s, u).map(|l| l.name.as_str());
        assert_eq!(name("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small"), Some("EC2 t3.small"));
        assert_eq!(name("EC2 - Other", "EUC1-NatGateway-Hours"), Some("NAT Gateway"));
        assert_eq!(place("EC2 - Other", "EUC1-NatGateway-Bytes"), Some(Place::Part(2, 0)), "the seed's '+ data'");
        assert_eq!(place("Amazon Elastic Load Balancing", "EUC1-LCUUsage"), Some(Place::Part(3, 0)), "'+ LCU'");
        assert!(matches!(place("EC2 - Other", "EUC1-EBS:SnapshotUsage"), Some(Place::Addition(_))));
        assert!(matches!(
            place("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress"),
            Some(Place::Addition(_))
        ));
        assert!(
            matches!(place("AmazonCloudWatch", "EUC1-VendedLog-Bytes"), Some(Place::Addition(_))),
            "not the CloudWatch line"
        );
        assert_eq!(name("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage"), Some("CloudWatch"));
        assert_eq!(name("AWS Key Management Service", "EUC1-KMS-Keys"), Some("KMS"));
        assert_eq!(place("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium"), None);
        let no_stack = built_in(Tier::Full, false);
        assert_eq!(no_stack.place("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress"), None);
        let budget = built_in(Tier::Budget, true);
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
        let prices = PriceTable::built_in();
        let json = r#"{"lines": [
            {"name": "EC2 t3.small", "monthly": "18.40", "match": [{"service": "Amazon Elastic Compute Cloud - Compute"}], "saving": "ec2"},
            {"name": "Data transfer", "monthly": "0.80", "match": [{"service": "AWS Data Transfer"}]}
        ]}"#;
        let e = built_in(Tier::Full, false).with_override(json, &prices).unwrap();
        assert_eq!(e.lines.len(), 9);
        assert_eq!(e.seed_total(), d("75.10"));
        assert!(built_in(Tier::Full, false).with_override(r#"{"lines": [{"name": "x"}]}"#, &prices).is_err());
        assert!(built_in(Tier::Full, false).with_override(r#"{"lines": [], "extra": 1}"#, &prices).is_err());
        let unpriced = r#"{"lines": [{"name": "x", "monthly": "1", "match": [], "adds": [{"block": "suite", "name": "y", "resource": "z", "cost": [{"price": "gold", "quantity": "1"}]}]}]}"#;
        assert!(built_in(Tier::Full, false).with_override(unpriced, &prices).unwrap_err().contains("gold"));
    }
}
