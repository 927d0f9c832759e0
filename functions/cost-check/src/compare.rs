//! The comparison, as a pure function: costs by service and usage type against the estimate's lines,
//! thresholds, the lines that drive an overrun, and the seed's savings options that fit.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::estimate::{Estimate, Saving};

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
}

/// Money and percentages to the cent, half away from zero.
pub fn cents(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineResult {
    pub name: String,
    /// The estimate for the period compared (pro-rated for a month to date).
    pub estimate: Decimal,
    pub actual: Decimal,
    pub difference: Decimal,
    pub pct: Option<Decimal>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub option: String,
    pub saves: String,
    pub trade_off: String,
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
    pub lines: Vec<LineResult>,
    pub not_in_estimate: Vec<Cost>,
    pub total: LineResult,
    pub forecast: Option<ForecastResult>,
    /// Lines (and costs outside the estimate) over their estimate, largest overrun first.
    pub drivers: Vec<String>,
    pub suggestions: Vec<Suggestion>,
}

/// Compares the costs of `[start, end)` with the estimate scaled to that part of the month.
pub fn compare(
    estimate: &Estimate,
    costs: &[Cost],
    thresholds: &Thresholds,
    (start, end): (NaiveDate, NaiveDate),
    days_in_month: u32,
    forecast: Option<Forecast>,
) -> Comparison {
    let days = (end - start).num_days().max(0) as u32;
    let fraction = (Decimal::from(days) / Decimal::from(days_in_month.max(1))).min(Decimal::ONE);

    let mut actual_by_line = vec![Decimal::ZERO; estimate.lines.len()];
    let mut not_in_estimate: Vec<Cost> = Vec::new();
    for cost in costs.iter().filter(|c| !c.amount.is_zero()) {
        match estimate.lines.iter().position(|l| l.matchers.iter().any(|m| m.matches(&cost.service, &cost.usage_type)))
        {
            Some(i) => actual_by_line[i] += cost.amount,
            None => not_in_estimate.push(Cost { amount: cents(cost.amount), ..cost.clone() }),
        }
    }
    not_in_estimate.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.service.cmp(&b.service)));

    let lines: Vec<LineResult> = estimate
        .lines
        .iter()
        .zip(&actual_by_line)
        .map(|(line, actual)| result(&line.name, cents(line.monthly * fraction), cents(*actual), thresholds))
        .collect();
    let outside: Decimal = not_in_estimate.iter().map(|c| c.amount).sum();
    let total_actual = lines.iter().map(|l| l.actual).sum::<Decimal>() + outside;
    let total = result("Total", cents(estimate.total() * fraction), total_actual, thresholds);

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

    let mut over: Vec<(Decimal, String)> = lines
        .iter()
        .filter(|l| l.difference > Decimal::ZERO && l.status != Status::Ok)
        .map(|l| (l.difference, l.name.clone()))
        .chain(
            not_in_estimate.iter().map(|c| (c.amount, format!("not in the estimate: {} {}", c.service, c.usage_type))),
        )
        .collect();
    over.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let drivers = over.into_iter().map(|(_, name)| name).collect();

    let mut suggestions = Vec::new();
    for (line, result) in estimate.lines.iter().zip(&lines) {
        if result.status == Status::Ok {
            continue;
        }
        match line.saving {
            Some(Saving::Ec2) => suggestions.extend(ec2_savings(result.actual, &line.name)),
            Some(Saving::Nat) => suggestions.push(Suggestion {
                option: "Remove the NAT Gateway (VPC endpoints for AWS services, instance in a public subnet with strict security groups)".into(),
                saves: "−$32/month".into(),
                trade_off: "Reduced security".into(),
            }),
            None => {}
        }
    }

    Comparison {
        period_start: start,
        period_end: end,
        fraction,
        lines,
        not_in_estimate,
        total,
        forecast,
        drivers,
        suggestions,
    }
}

fn result(name: &str, estimate: Decimal, actual: Decimal, thresholds: &Thresholds) -> LineResult {
    let (status, pct) = thresholds.status(actual, estimate);
    LineResult { name: name.to_owned(), estimate, actual, difference: actual - estimate, pct, status }
}

fn ec2_savings(actual: Decimal, line: &str) -> Vec<Suggestion> {
    let pct = |p: i64| format!("−30 % on EC2 (≈ −${})", cents(actual * Decimal::new(p, 2)));
    let mut out = vec![
        Suggestion { option: "Reserved Instance (1 year)".into(), saves: pct(30), trade_off: "Commitment".into() },
        Suggestion {
            option: "Spot Instance".into(),
            saves: pct(60).replace("−30 %", "−60 %"),
            trade_off: "Interruption risk (spot-recovery replaces the instance)".into(),
        },
    ];
    if line.contains("t3.small") {
        out.push(Suggestion {
            option: "Use t3.micro".into(),
            saves: "−$7/month".into(),
            trade_off: "Less headroom".into(),
        });
    }
    out
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

    const T: Thresholds = Thresholds { warn_pct: Decimal::TEN, alert_pct: Decimal::from_parts(25, 0, 0, false, 0) };

    fn cost(service: &str, usage: &str, amount: &str) -> Cost {
        Cost { service: service.into(), usage_type: usage.into(), amount: d(amount) }
    }

    fn on_budget() -> Vec<Cost> {
        vec![
            cost("Amazon Elastic Compute Cloud - Compute", "EUC1-BoxUsage:t3.small", "15.33"),
            cost("EC2 - Other", "EUC1-EBS:VolumeUsage.gp3", "1.60"),
            cost("EC2 - Other", "EUC1-NatGateway-Hours", "32.40"),
            cost("Amazon Elastic Load Balancing", "EUC1-LoadBalancerUsage", "16.20"),
            cost("AWS Secrets Manager", "EUC1-AWSSecretsManager-Secrets", "1.20"),
            cost("Amazon Simple Storage Service", "EUC1-TimedStorage-ByteHrs", "0.50"),
            cost("AmazonCloudWatch", "EUC1-CW:AlarmMonitorUsage", "3.00"),
            cost("AWS Key Management Service", "EUC1-KMS-Keys", "1.00"),
        ]
    }

    #[test]
    fn a_month_on_budget_is_ok_everywhere() {
        let c = compare(&Estimate::built_in(Tier::Full), &on_budget(), &T, (day(10, 1), day(11, 1)), 31, None);
        assert_eq!(c.fraction, Decimal::ONE);
        assert_eq!(c.total.actual, d("71.23"));
        assert_eq!(c.total.status, Status::Ok);
        assert!(c.drivers.is_empty() && c.suggestions.is_empty() && c.not_in_estimate.is_empty());
    }

    #[test]
    fn a_nat_overrun_names_the_line_and_the_seeds_option() {
        let mut costs = on_budget();
        costs[2].amount = d("45.00");
        let c = compare(&Estimate::built_in(Tier::Full), &costs, &T, (day(10, 1), day(11, 1)), 31, None);
        let nat = c.lines.iter().find(|l| l.name == "NAT Gateway").unwrap();
        assert_eq!((nat.difference, nat.pct, nat.status), (d("12.60"), Some(d("38.89")), Status::Alert));
        assert_eq!(c.total.status, Status::Warn, "83.83 is 17.69 % over 71.23");
        assert_eq!(c.drivers, ["NAT Gateway"]);
        assert_eq!(c.suggestions[0].saves, "−$32/month");
        assert_eq!(c.suggestions[0].trade_off, "Reduced security");
    }

    #[test]
    fn costs_outside_the_estimate_are_listed_and_drive_the_total() {
        let mut costs = on_budget();
        costs.push(cost("EC2 - Other", "EUC1-NatGateway-Bytes", "9.004"));
        costs.push(cost("Amazon SageMaker", "EUC1-Notebk:ml.t3.medium", "20.00"));
        costs.push(cost("Tax", "", "0"));
        let c = compare(&Estimate::built_in(Tier::Full), &costs, &T, (day(10, 1), day(11, 1)), 31, None);
        assert_eq!(c.not_in_estimate.len(), 2, "zero amounts are left out");
        assert_eq!(c.not_in_estimate[0].service, "Amazon SageMaker");
        assert_eq!(c.not_in_estimate[1].amount, d("9.00"));
        assert_eq!(c.total.actual, d("100.23"));
        assert_eq!(c.total.status, Status::Alert);
        assert_eq!(c.drivers[0], "not in the estimate: Amazon SageMaker EUC1-Notebk:ml.t3.medium");
    }

    #[test]
    fn ec2_overruns_suggest_reserved_spot_and_a_smaller_instance() {
        let mut costs = on_budget();
        costs[0].amount = d("30.66");
        let c = compare(&Estimate::built_in(Tier::Full), &costs, &T, (day(10, 1), day(11, 1)), 31, None);
        let options: Vec<_> = c.suggestions.iter().map(|s| s.option.as_str()).collect();
        assert_eq!(options, ["Reserved Instance (1 year)", "Spot Instance", "Use t3.micro"]);
        assert_eq!(c.suggestions[0].saves, "−30 % on EC2 (≈ −$9.20)");
        assert_eq!(c.suggestions[1].saves, "−60 % on EC2 (≈ −$18.40)");
    }

    #[test]
    fn month_to_date_is_compared_with_the_pro_rated_estimate_and_the_forecast_with_the_whole() {
        let costs: Vec<Cost> = on_budget().into_iter().map(|c| Cost { amount: c.amount / d("2"), ..c }).collect();
        let f = Forecast { mean: d("54.38"), low: Some(d("44.38")), high: Some(d("64.38")) };
        let c = compare(&Estimate::built_in(Tier::Full), &costs, &T, (day(11, 1), day(11, 16)), 30, Some(f));
        assert_eq!(c.fraction, d("0.5"));
        assert_eq!(c.total.estimate, d("35.62"), "71.23 / 2, to the cent");
        assert_eq!(c.total.status, Status::Ok);
        let forecast = c.forecast.unwrap();
        assert_eq!(forecast.forecast.mean, d("90.00"), "35.62 spent + 54.38 forecast for the rest");
        assert_eq!((forecast.forecast.low, forecast.forecast.high), (Some(d("80.00")), Some(d("100.00"))));
        assert_eq!((forecast.pct, forecast.status), (Some(d("26.35")), Status::Alert));
    }

    #[test]
    fn thresholds_are_strictly_above() {
        assert_eq!(T.status(d("110"), d("100")).0, Status::Ok);
        assert_eq!(T.status(d("110.01"), d("100")).0, Status::Warn);
        assert_eq!(T.status(d("125.01"), d("100")).0, Status::Alert);
        assert_eq!(T.status(d("1"), Decimal::ZERO), (Status::Warn, None));
    }

    #[test]
    fn an_empty_period_compares_nothing_with_nothing() {
        let c = compare(&Estimate::built_in(Tier::Budget), &[], &T, (day(11, 1), day(11, 1)), 30, None);
        assert_eq!(c.total.estimate, Decimal::ZERO);
        assert_eq!(c.total.status, Status::Ok);
    }
}
