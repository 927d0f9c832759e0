//! The comparison, as a pure function: costs by service and usage type against the estimate's lines
//! (with their unpriced parts), what the gateway stack and the suite add, thresholds, the costs that
//! drive an overrun and, for each, the options that address it (savings.rs).

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use openclaw_ops_shared::tags::TagFilter;

use crate::estimate::{Block, Estimate, Place, Saving};
use crate::prices::PriceTable;
use crate::savings;

/// One Cost Explorer group: a service and usage type with its unblended cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub service: String,
    pub usage_type: String,
    pub amount: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub warn_pct: Decimal,
    pub alert_pct: Decimal,
    /// An unpriced part of a seed line ("+ data", "+ LCU"), or anything expected at $0, warns above
    /// this many dollars a month...
    pub part_warn_usd: Decimal,
    /// ... and alerts above this many.
    pub part_alert_usd: Decimal,
}

impl Thresholds {
    fn status(&self, actual: Decimal, estimate: Decimal) -> (Status, Option<Decimal>) {
        if estimate.is_zero() {
            return (if actual > Decimal::ZERO { Status::Warn } else { Status::Ok }, None);
        }
        let pct = cents((actual - estimate) / estimate * Decimal::ONE_HUNDRED);
        let status = if pct > self.alert_pct {
            Status::Alert
        } else if pct > self.warn_pct {
            Status::Warn
        } else {
            Status::Ok
        };
        (status, Some(pct))
    }

    /// A cost with no price of its own, against the dollar thresholds pro-rated to the period.
    fn dollars(&self, actual: Decimal, fraction: Decimal) -> Status {
        if actual > cents(self.part_alert_usd * fraction) {
            Status::Alert
        } else if actual > cents(self.part_warn_usd * fraction) {
            Status::Warn
        } else {
            Status::Ok
        }
    }

    /// Priced: by percent; expected at $0: by the dollar thresholds.
    fn judge(&self, actual: Decimal, estimate: Decimal, fraction: Decimal) -> (Status, Option<Decimal>) {
        if estimate.is_zero() { (self.dollars(actual, fraction), None) } else { self.status(actual, estimate) }
    }
}

/// Money and percentages to the cent, half away from zero.
pub fn cents(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// An unpriced part of a seed line, as measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartResult {
    pub name: String,
    /// The seed's words for it ("+ data").
    pub seed: String,
    pub actual: Decimal,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineResult {
    pub name: String,
    /// The seed's figure for the period (0 for a line the seed lacks).
    pub seed: Decimal,
    /// What is expected for the period: the seed's figure plus what the stack and suite add inside
    /// this line (pro-rated for a month to date).
    pub estimate: Decimal,
    /// Without the unpriced parts, which are judged on their own.
    pub actual: Decimal,
    pub difference: Decimal,
    pub pct: Option<Decimal>,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartResult>,
    /// The additions inside this line ("stack: root volume (20 GB gp3)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
}

/// One thing the stack or the suite adds, as expected and (where Cost Explorer can tell) as measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockItem {
    pub name: String,
    pub resource: String,
    pub expected: Decimal,
    /// Measured by its own usage types; `None` when it is inside a seed line's.
    pub actual: Option<Decimal>,
    /// The seed line whose usage types it is paid through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inside: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockResult {
    /// Everything the block is expected to cost in the period.
    pub expected: Decimal,
    /// What Cost Explorer measured of it: by the suite's tag, or the items with usage types of their own.
    pub measured: Decimal,
    /// The expected figure of what was measured (to compare `measured` with).
    pub measured_expected: Decimal,
    pub measured_by: String,
    pub items: Vec<BlockItem>,
    /// With the suite's tag: its costs by service and usage type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tagged: Vec<Cost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub option: String,
    pub saves: String,
    pub trade_off: String,
}

/// A cost over what was expected, largest first, with the options that address it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Driver {
    pub name: String,
    /// Dollars over the expected figure (the whole amount for an unpriced part or unknown cost).
    pub over: Decimal,
    pub actual: Decimal,
    pub status: Status,
    pub savings: Vec<Suggestion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub mean: Decimal,
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForecastResult {
    /// The month's expected total: spent so far plus Cost Explorer's forecast of the rest.
    pub forecast: Forecast,
    pub estimate: Decimal,
    pub pct: Option<Decimal>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// Share of the month the period covers (1 for a whole month).
    pub fraction: Decimal,
    /// The seed's figure for the period.
    pub seed: Decimal,
    pub lines: Vec<LineResult>,
    /// What the deployed gateway stack adds beyond the seed's table (`None`: not deployed by this stack).
    pub stack: Option<BlockResult>,
    /// What the ops suite itself costs.
    pub suite: BlockResult,
    pub not_in_estimate: Vec<Cost>,
    pub total: LineResult,
    pub forecast: Option<ForecastResult>,
    pub drivers: Vec<Driver>,
}

/// What the comparison is given besides the account's costs.
pub struct Inputs<'a> {
    pub estimate: &'a Estimate,
    pub prices: &'a PriceTable,
    pub thresholds: &'a Thresholds,
    pub period: (NaiveDate, NaiveDate),
    pub days_in_month: u32,
    pub forecast: Option<Forecast>,
    /// The costs carrying the suite's cost-allocation tag, when it is set and was read.
    pub suite_tagged: Option<(&'a TagFilter, Vec<Cost>)>,
    pub gateway_stack: bool,
}

/// Compares the costs of the period with everything expected of it, scaled to that part of the month.
pub fn compare(input: Inputs<'_>, costs: &[Cost]) -> Comparison {
    let Inputs {
        estimate,
        prices,
        thresholds,
        period: (start, end),
        days_in_month,
        forecast,
        suite_tagged,
        gateway_stack,
    } = input;
    let days = (end - start).num_days().max(0) as u32;
    let fraction = (Decimal::from(days) / Decimal::from(days_in_month.max(1))).min(Decimal::ONE);
    let scaled = |x: Decimal| cents(x * fraction);

    let mut by_line = vec![Decimal::ZERO; estimate.lines.len()];
    let mut by_part: Vec<Vec<Decimal>> = estimate.lines.iter().map(|l| vec![Decimal::ZERO; l.parts.len()]).collect();
    let mut by_addition = vec![Decimal::ZERO; estimate.additions.len()];
    let mut not_in_estimate: Vec<Cost> = Vec::new();
    for cost in costs.iter().filter(|c| !c.amount.is_zero()) {
        match estimate.place(&cost.service, &cost.usage_type) {
            Some(Place::Line(i)) => by_line[i] += cost.amount,
            Some(Place::Part(i, p)) => by_part[i][p] += cost.amount,
            Some(Place::Addition(i)) => by_addition[i] += cost.amount,
            None => not_in_estimate.push(Cost { amount: cents(cost.amount), ..cost.clone() }),
        }
    }
    not_in_estimate.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.service.cmp(&b.service)));

    let mut drivers: Vec<(Driver, Option<Saving>)> = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in estimate.lines.iter().enumerate() {
        let parts: Vec<PartResult> = line
            .parts
            .iter()
            .zip(&by_part[i])
            .map(|(part, actual)| PartResult {
                name: part.name.clone(),
                seed: part.seed.clone(),
                actual: cents(*actual),
                status: thresholds.dollars(cents(*actual), fraction),
            })
            .collect();
        let mut result = result(&line.name, scaled(line.expected()), cents(by_line[i]), thresholds, fraction);
        result.seed = scaled(line.monthly);
        result.includes =
            line.adds.iter().filter(|a| !a.in_seed).map(|a| format!("{}: {}", block_name(a.block), a.name)).collect();
        if result.difference > Decimal::ZERO && result.status != Status::Ok {
            drivers.push((driver(&line.name, result.difference, result.actual, result.status), line.saving));
        }
        for (part, spec) in parts.iter().zip(&line.parts) {
            if part.status != Status::Ok {
                let name = format!("{} {} (the seed's '{}')", line.name, part.name, part.seed);
                drivers.push((driver(&name, part.actual, part.actual, part.status), spec.saving));
            }
        }
        result.parts = parts;
        lines.push(result);
    }

    let mut block = |which: Block| -> Vec<BlockItem> {
        let mut items = Vec::new();
        for line in &estimate.lines {
            for add in line.adds.iter().filter(|a| a.block == which) {
                items.push(BlockItem {
                    name: add.name.clone(),
                    resource: add.resource.clone(),
                    expected: scaled(add.expected),
                    actual: None,
                    inside: Some(line.name.clone()),
                    status: None,
                    note: add.note.clone(),
                });
            }
        }
        for (add, actual) in estimate.additions.iter().zip(&by_addition).filter(|(a, _)| a.block == which) {
            let actual = cents(*actual);
            let (status, _) = thresholds.judge(actual, scaled(add.expected), fraction);
            if status != Status::Ok && actual > scaled(add.expected) {
                let name = format!("{}: {}", block_name(which), add.name);
                drivers.push((driver(&name, actual - scaled(add.expected), actual, status), add.saving));
            }
            items.push(BlockItem {
                name: add.name.clone(),
                resource: add.resource.clone(),
                expected: scaled(add.expected),
                actual: Some(actual),
                inside: None,
                status: Some(status),
                note: add.note.clone(),
            });
        }
        items
    };
    let stack_items = block(Block::Stack);
    let suite_items = block(Block::Suite);
    // Measured by usage type: only the items with usage types of their own; by tag: everything tagged.
    let summarise = |items: Vec<BlockItem>, measured_by: String, tagged: Option<Vec<Cost>>| {
        let expected = items.iter().map(|i| i.expected).sum();
        let (measured, measured_expected, tagged) = match tagged {
            Some(tagged) => (cents(tagged.iter().map(|c| c.amount).sum()), expected, tagged),
            None => {
                let own = items.iter().filter(|i| i.actual.is_some());
                (own.clone().filter_map(|i| i.actual).sum(), own.map(|i| i.expected).sum(), Vec::new())
            }
        };
        BlockResult { expected, measured, measured_expected, measured_by, items, tagged }
    };
    let stack = gateway_stack.then(|| summarise(stack_items, "usage type".into(), None));
    let suite = match suite_tagged {
        Some((tag, mut tagged)) => {
            tagged.retain(|c| !c.amount.is_zero());
            tagged.iter_mut().for_each(|c| c.amount = cents(c.amount));
            tagged.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.service.cmp(&b.service)));
            summarise(
                suite_items,
                format!("tag {}={} (counted from the tag's activation on)", tag.key, tag.value),
                Some(tagged),
            )
        }
        None => summarise(suite_items, "usage type".into(), None),
    };

    let outside: Decimal = not_in_estimate.iter().map(|c| c.amount).sum();
    for c in &not_in_estimate {
        let status = thresholds.dollars(c.amount, fraction).max(Status::Warn);
        drivers.push((
            driver(&format!("not in the estimate: {} {}", c.service, c.usage_type), c.amount, c.amount, status),
            None,
        ));
    }
    let total_actual =
        lines.iter().map(|l| l.actual + l.parts.iter().map(|p| p.actual).sum::<Decimal>()).sum::<Decimal>()
            + cents(by_addition.iter().sum())
            + outside;
    let mut total = result("Total", scaled(estimate.total()), total_actual, thresholds, fraction);
    total.seed = scaled(estimate.seed_total());

    // Cost Explorer forecasts the rest of the month; the month ends at what is spent plus that.
    let forecast = forecast.map(|rest| {
        let month_end = Forecast {
            mean: cents(total_actual + rest.mean),
            low: rest.low.map(|l| cents(total_actual + l)),
            high: rest.high.map(|h| cents(total_actual + h)),
        };
        let (status, pct) = thresholds.status(month_end.mean, estimate.total());
        ForecastResult { forecast: month_end, estimate: estimate.total(), pct, status }
    });

    drivers.sort_by(|a, b| b.0.over.cmp(&a.0.over).then_with(|| a.0.name.cmp(&b.0.name)));
    let drivers = drivers
        .into_iter()
        .map(|(mut d, saving)| {
            d.savings = saving.map(|s| savings::for_driver(s, &d, estimate, prices)).unwrap_or_default();
            d
        })
        .collect();

    Comparison {
        period_start: start,
        period_end: end,
        fraction,
        seed: scaled(estimate.seed_total()),
        lines,
        stack,
        suite,
        not_in_estimate,
        total,
        forecast,
        drivers,
    }
}

pub fn block_name(block: Block) -> &'static str {
    match block {
        Block::Stack => "stack",
        Block::Suite => "suite",
    }
}

fn driver(name: &str, over: Decimal, actual: Decimal, status: Status) -> Driver {
    Driver { name: name.to_owned(), over: cents(over), actual, status, savings: Vec::new() }
}

fn result(name: &str, estimate: Decimal, actual: Decimal, thresholds: &Thresholds, fraction: Decimal) -> LineResult {
    let (status, pct) = thresholds.judge(actual, estimate, fraction);
    LineResult {
        name: name.to_owned(),
        seed: estimate,
        estimate,
        actual,
        difference: actual - estimate,
        pct,
        status,
        parts: Vec::new(),
        includes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::estimate::Tier;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    const T: Thresholds = Thresholds {
        warn_pct: Decimal::TEN,
        alert_pct: Decimal::from_parts(25, 0, 0, false, 0),
        part_warn_usd: Decimal::from_parts(3, 0, 0, false, 0),
        part_alert_usd: Decimal::from_parts(15, 0, 0, false, 0),
    };

    fn cost(service: &str, usage: &str, amount: &str) -> Cost {
        Cost { service: service.into(), usage_type: usage.into(), amount: d(amount) }
    }

    /// The seed's full tier exactly as estimated, and the suite's own costs as expected.
    fn on_budget() -> Vec<Cost> {
        vec![
            cost("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small", "15.33"),
            cost("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "1.60"),
            cost("EC2 - Other", "EUC1-NatGateway-Hours", "32.40"),
            cost("Amazon Elastic Load Balancing", "EUC1-LoadBalancerUsage", "16.20"),
            cost("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "1.60"),
            cost("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.50"),
            cost("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "4.29"),
            cost("AWS Key Management Service", "EUC1-KMS-Keys", "2.00"),
            cost("EC2 - Other", "EUC1-EBS:SnapshotUsage", "1.00"),
            cost("AWS Cost Explorer", "USE1-APIRequest", "0.10"),
        ]
    }

    fn run(
        tier: Tier,
        stack: bool,
        costs: &[Cost],
        period: (NaiveDate, NaiveDate),
        days: u32,
        forecast: Option<Forecast>,
    ) -> Comparison {
        let prices = PriceTable::built_in();
        let estimate = Estimate::built_in(tier, stack, &prices);
        compare(
            Inputs {
                estimate: &estimate,
                prices: &prices,
                thresholds: &T,
                period,
                days_in_month: days,
                forecast,
                suite_tagged: None,
                gateway_stack: stack,
            },
            costs,
        )
    }

    fn october(costs: &[Cost]) -> Comparison {
        run(Tier::Full, false, costs, (day(10, 1), day(11, 1)), 31, None)
    }

    fn options(c: &Comparison, driver: &str) -> Vec<String> {
        let d = c
            .drivers
            .iter()
            .find(|d| d.name.starts_with(driver))
            .unwrap_or_else(|| panic!("no driver {driver}: {:?}", c.drivers));
        d.savings.iter().map(|s| s.option.clone()).collect()
    }

    #[test]
    fn a_month_on_budget_is_ok_everywhere() {
        let c = october(&on_budget());
        assert_eq!(c.fraction, Decimal::ONE);
        assert_eq!(c.seed, d("71.23"));
        assert_eq!(
            c.total.estimate,
            d("75.02"),
            "the seed's 71.23 and the suite's 4.29 less the backups in the seed's S3 line"
        );
        assert_eq!(c.total.actual, d("75.02"));
        assert_eq!(c.total.status, Status::Ok);
        assert!(c.drivers.is_empty() && c.not_in_estimate.is_empty() && c.stack.is_none(), "{:?}", c.drivers);
        assert_eq!(
            (c.suite.measured, c.suite.measured_expected),
            (d("1.10"), d("1.10")),
            "snapshots, Lambda, Cost Explorer"
        );
    }

    #[test]
    fn nat_data_is_the_nat_lines_own_part_with_its_own_threshold_and_the_endpoint_advice() {
        let mut costs = on_budget();
        costs.push(cost("EC2 - Other", "EUC1-NatGateway-Bytes", "31.75"));
        let c = october(&costs);
        let nat = c.lines.iter().find(|l| l.name == "NAT Gateway").unwrap();
        assert_eq!((nat.actual, nat.status), (d("32.40"), Status::Ok), "the hours are as estimated");
        assert_eq!(nat.parts[0].name, "data processing");
        assert_eq!((nat.parts[0].actual, nat.parts[0].status), (d("31.75"), Status::Alert));
        assert!(c.not_in_estimate.is_empty(), "the NAT's data is not foreign to the estimate");
        assert_eq!(c.drivers.len(), 1);
        assert_eq!(c.drivers[0].name, "NAT Gateway data processing (the seed's '+ data')");
        let opts = options(&c, "NAT Gateway data");
        assert!(opts[0].starts_with("An S3 gateway endpoint"), "{opts:?}");
        assert!(opts[1].starts_with("Interface endpoints"));
        assert!(c.drivers[0].savings[0].saves.contains("706 GB"), "31.75 / 0.045: {}", c.drivers[0].savings[0].saves);
        assert!(c.drivers[0].savings[0].saves.contains("Anthropic, Telegram and package registries"));
        assert!(c.drivers[0].savings[1].saves.contains("above 209 GB"), "7.30 / (0.045 - 0.01)");
        // A few dollars of data stay quiet; above the warn threshold it warns.
        let mut costs = on_budget();
        costs.push(cost("EC2 - Other", "EUC1-NatGateway-Bytes", "2.50"));
        assert!(october(&costs).drivers.is_empty());
        costs.last_mut().unwrap().amount = d("3.01");
        assert_eq!(october(&costs).lines[2].parts[0].status, Status::Warn);
    }

    #[test]
    fn nat_hours_over_the_estimate_name_the_line_and_the_seeds_option() {
        let mut costs = on_budget();
        costs[2].amount = d("45.00");
        let c = october(&costs);
        let nat = c.lines.iter().find(|l| l.name == "NAT Gateway").unwrap();
        assert_eq!((nat.difference, nat.pct, nat.status), (d("12.60"), Some(d("38.89")), Status::Alert));
        assert_eq!(c.drivers[0].name, "NAT Gateway");
        let opts = options(&c, "NAT Gateway");
        assert!(opts[0].starts_with("Delete NAT Gateways beyond"));
        assert!(opts[1].starts_with("Remove the NAT Gateway"));
        assert_eq!(c.drivers[0].savings[1].trade_off, "Reduced security");
    }

    #[test]
    fn an_lcu_spike_is_the_albs_part_and_offers_what_limits_lcus() {
        let mut costs = on_budget();
        costs.push(cost("Amazon Elastic Load Balancing", "EUC1-LCUUsage", "23.36"));
        let c = october(&costs);
        assert_eq!(c.drivers[0].name, "ALB LCUs (the seed's '+ LCU')");
        assert!(c.drivers[0].savings[0].saves.contains("2920 LCU-hours"), "{}", c.drivers[0].savings[0].saves);
        let opts = options(&c, "ALB LCUs");
        assert!(opts[0].contains("WAF rate limit") && opts[1].starts_with("The budget tier"));
        assert!(!opts.iter().any(|o| o.contains("NAT") || o.contains("Spot")), "nothing that does not address LCUs");
    }

    #[test]
    fn costs_outside_the_estimate_are_listed_and_drive_the_total_without_advice() {
        let mut costs = on_budget();
        costs.push(cost("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium", "20.00"));
        costs.push(cost("Tax", "", "0"));
        let c = october(&costs);
        assert_eq!(c.not_in_estimate.len(), 1, "zero amounts are left out");
        assert_eq!(c.total.actual, d("95.02"));
        assert_eq!(c.total.status, Status::Alert);
        assert_eq!(c.drivers[0].name, "not in the estimate: Amazon SageMaker EUC1-Notebk:ml.t3.medium");
        assert!(c.drivers[0].savings.is_empty(), "nothing is suggested for what the suite does not know");
    }

    #[test]
    fn ec2_overruns_suggest_reserved_spot_and_a_smaller_instance() {
        let mut costs = on_budget();
        costs[0].amount = d("30.66");
        let c = october(&costs);
        assert_eq!(options(&c, "EC2"), ["Reserved Instance (1 year)", "Spot Instance", "Use t3.micro"]);
        assert_eq!(c.drivers[0].savings[0].saves, "−30 % on EC2 (≈ −$9.20)");
        assert_eq!(c.drivers[0].savings[1].saves, "−60 % on EC2 (≈ −$18.40)");
    }

    #[test]
    fn the_stack_block_expects_its_extras_and_explains_public_ipv4() {
        let mut costs = on_budget();
        costs[1].amount = d("3.20");
        costs.push(cost("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "14.60"));
        costs.push(cost("AWS WAF", "EUC1-WebACL", "5.00"));
        costs.push(cost("AWS WAF", "EUC1-Rule", "1.00"));
        costs.push(cost("AmazonCloudWatch", "EUC1-VendedLog-Bytes", "0.45"));
        let c = run(Tier::Full, true, &costs, (day(10, 1), day(11, 1)), 31, None);
        let stack = c.stack.as_ref().unwrap();
        assert_eq!(stack.expected, d("19.07"));
        let ebs = c.lines.iter().find(|l| l.name == "EBS 20 GB gp3").unwrap();
        assert_eq!(
            (ebs.seed, ebs.estimate, ebs.status),
            (d("1.60"), d("3.20"), Status::Ok),
            "the root volume is expected"
        );
        let ipv4 = stack.items.iter().find(|i| i.name.starts_with("public IPv4")).unwrap();
        assert_eq!((ipv4.expected, ipv4.actual, ipv4.status), (d("10.95"), Some(d("14.60")), Some(Status::Alert)));
        assert_eq!(c.drivers.len(), 1, "{:?}", c.drivers);
        let advice = &c.drivers[0].savings[0];
        assert!(advice.option.contains("the full tier needs three"), "{}", advice.option);
        assert!(advice.saves.contains("about 1 address"), "{}", advice.saves);
        assert!(c.not_in_estimate.is_empty());
    }

    #[test]
    fn grown_snapshots_are_the_suites_and_the_advice_is_about_snapshots() {
        let mut costs = on_budget();
        costs[8].amount = d("26.00");
        let c = october(&costs);
        let snapshots = c.suite.items.iter().find(|i| i.name.starts_with("EBS snapshots")).unwrap();
        assert_eq!((snapshots.actual, snapshots.status), (Some(d("26.00")), Some(Status::Alert)));
        assert_eq!(c.drivers[0].name, "suite: EBS snapshots of the data volume");
        assert_eq!(c.drivers[0].over, d("25.00"));
        assert!(options(&c, "suite: EBS snapshots")[0].starts_with("Untag a volume"));
        assert_eq!(c.suite.measured, d("26.10"));
    }

    #[test]
    fn the_budget_tier_has_its_own_lines_and_no_nat_advice() {
        let costs = [
            cost("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.micro", "7.59"),
            cost("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "3.20"),
            cost("Amazon Virtual Private Cloud", "EUC1-PublicIPv4:InUseAddress", "7.30"),
            cost("AWS Key Management Service", "EUC1-KMS-Keys", "2.00"),
        ];
        let c = run(Tier::Budget, true, &costs, (day(10, 1), day(11, 1)), 31, None);
        let eip = c.lines.iter().find(|l| l.name == "Elastic IP").unwrap();
        assert_eq!(eip.status, Status::Alert);
        let opts = options(&c, "Elastic IP");
        assert_eq!(opts.len(), 1);
        assert!(opts[0].contains("the budget tier needs exactly one"));
        let kms = c.lines.iter().find(|l| l.name == "KMS").unwrap();
        assert_eq!((kms.seed, kms.estimate, kms.status), (Decimal::ZERO, d("2.00"), Status::Ok));
    }

    #[test]
    fn month_to_date_is_compared_with_the_pro_rated_estimate_and_the_forecast_with_the_whole() {
        let costs: Vec<Cost> = on_budget().into_iter().map(|c| Cost { amount: c.amount / d("2"), ..c }).collect();
        let f = Forecast { mean: d("54.38"), low: Some(d("44.38")), high: Some(d("64.38")) };
        let c = run(Tier::Full, false, &costs, (day(11, 1), day(11, 16)), 30, Some(f));
        assert_eq!(c.fraction, d("0.5"));
        assert_eq!(c.total.estimate, d("37.51"), "75.02 / 2, to the cent");
        assert_eq!(c.total.status, Status::Ok);
        let forecast = c.forecast.unwrap();
        assert_eq!(forecast.forecast.mean, d("91.90"), "37.52 spent (halves rounded per line) + 54.38 forecast");
        assert_eq!((forecast.pct, forecast.status), (Some(d("22.50")), Status::Warn));
    }

    #[test]
    fn thresholds_are_strictly_above() {
        assert_eq!(T.status(d("110"), d("100")).0, Status::Ok);
        assert_eq!(T.status(d("110.01"), d("100")).0, Status::Warn);
        assert_eq!(T.status(d("125.01"), d("100")).0, Status::Alert);
        assert_eq!(T.status(d("1"), Decimal::ZERO), (Status::Warn, None));
        assert_eq!(T.dollars(d("3.00"), Decimal::ONE), Status::Ok);
        assert_eq!(T.dollars(d("1.51"), d("0.5")), Status::Warn, "pro-rated for half a month");
        assert_eq!(T.dollars(d("15.01"), Decimal::ONE), Status::Alert);
    }

    #[test]
    fn an_empty_period_compares_nothing_with_nothing() {
        let c = run(Tier::Budget, false, &[], (day(11, 1), day(11, 1)), 30, None);
        assert_eq!(c.total.estimate, Decimal::ZERO);
        assert_eq!(c.total.status, Status::Ok);
    }
}
