//! What a check tells the owner: the notification (a compact table telegram-notify renders), EMF
//! metrics and the JSON response with every line.

use chrono::NaiveDate;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity, Table};
use openclaw_ops_shared::run::RunReport;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::FUNCTION;
use crate::aws::Unavailable;
use crate::estimate::Tier;
use crate::event::Kind;
use crate::plan::{BlockResult, Comparison, Status, cents};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub check: Kind,
    pub as_of: NaiveDate,
    pub tier: Tier,
    pub estimate_description: String,
    /// The price table's region and the date its prices were read.
    pub prices_region: String,
    pub prices_read: String,
    /// Cost Explorer requests made ($0.01 each).
    pub requests: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Why there is no forecast (early in the month, new account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_forecast: Option<String>,
    /// Why the suite's costs were not read by its tag (they are then attributed by usage type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_suite_tag: Option<String>,
    /// Why there is no comparison at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
    pub notified: bool,
}

fn dollars(x: Decimal) -> String {
    format!("${:.2}", cents(x))
}

fn pct(p: Option<Decimal>) -> String {
    match p {
        Some(p) if p > Decimal::ZERO => format!("+{p:.2} %"),
        Some(p) => format!("{p:.2} %"),
        None => "—".into(),
    }
}

fn month_name(d: NaiveDate) -> String {
    d.format("%B %Y").to_string()
}

/// One block in a sentence: expected, measured, and what Cost Explorer cannot separate.
fn block_summary(what: &str, b: &BlockResult) -> String {
    let inside: Vec<String> = b
        .items
        .iter()
        .filter(|i| i.inside.is_some() && b.tagged.is_empty())
        .map(|i| format!("{} {} in {}", i.name, dollars(i.expected), i.inside.as_deref().unwrap_or_default()))
        .collect();
    let mut out = format!(
        "{what} {} expected; measured by {}: {} of {} expected",
        dollars(b.expected),
        b.measured_by,
        dollars(b.measured),
        dollars(b.measured_expected)
    );
    if !inside.is_empty() {
        out.push_str(&format!("; inside the seed's lines, not separable by usage type: {}", inside.join(", ")));
    }
    for note in b.items.iter().filter_map(|i| i.note.as_deref()) {
        out.push_str(&format!("; {note}"));
    }
    out.push('.');
    out
}

impl Report {
    /// Monthly: always. Weekly: when the forecast (or, without one, the month to date) crosses a
    /// threshold. Cost Explorer unavailable: always, with what to do.
    pub fn should_notify(&self) -> bool {
        if self.unavailable.is_some() {
            return true;
        }
        let Some(c) = &self.comparison else { return false };
        match self.check {
            Kind::Monthly => true,
            Kind::Weekly => match &c.forecast {
                Some(f) => f.status != Status::Ok,
                None => c.total.status != Status::Ok,
            },
        }
    }

    pub fn notification(&self) -> Option<Notification> {
        if !self.should_notify() {
            return None;
        }
        let check = match self.check {
            Kind::Monthly => "monthly",
            Kind::Weekly => "weekly",
        };
        if let Some(why) = &self.unavailable {
            let (title, text) = match why {
                Unavailable::NotEnabled(detail) => (
                    "Cost check: Cost Explorer is not enabled in this account".to_owned(),
                    format!(
                        "Nothing is wrong with the stack: Cost Explorer has never been enabled here. To enable it, once: \
                         1. sign in as the root user or an IAM user with billing access (in an organisation, the \
                         management account); 2. open Billing and Cost Management → Cost Explorer and choose \
                         \"Launch Cost Explorer\"; 3. in a member account, the management account must also allow \
                         member accounts access (Cost Management preferences). Data for the last 13 months appears \
                         within 24 hours; the next scheduled check uses it. ({detail})"
                    ),
                ),
                Unavailable::NoData(detail) => (
                    "Cost check: no cost data yet".to_owned(),
                    format!(
                        "Cost Explorer is enabled but has no data for this period yet (it appears within 24 hours of \
                         enabling). Nothing to do; the next check will use it. ({detail})"
                    ),
                ),
                Unavailable::AccessDenied(detail) => (
                    "Cost check: access to Cost Explorer denied".to_owned(),
                    format!(
                        "Cost Explorer is enabled, but this function may not read it: fix the role. It needs \
                         ce:GetCostAndUsage and ce:GetCostForecast on \"*\" (the stack's ReadCosts statement grants \
                         them; check it was not removed), no SCP of the organisation may deny ce:*, and a member \
                         account needs the management account's permission for member accounts. ({detail})"
                    ),
                ),
                Unavailable::TooManyPages(n) => (
                    "Cost check: more cost data than the request budget".to_owned(),
                    format!("Stopped after {n} Cost Explorer requests ($0.01 each) without reading every page."),
                ),
                Unavailable::OutOfTime(detail) => (
                    "Cost check: Cost Explorer did not answer in time".to_owned(),
                    format!(
                        "Cost Explorer was still answering when the run had to stop ({detail}). The run ends as \
                         failed so that Lambda tries it again (twice, within minutes); if this repeats, look for a \
                         Cost Explorer event on the AWS Health Dashboard."
                    ),
                ),
                Unavailable::Other(detail) => ("Cost check: Cost Explorer failed".to_owned(), detail.clone()),
            };
            return Some(
                Notification::new(
                    FUNCTION,
                    format!("{FUNCTION}:{check}:{}:unavailable", self.as_of),
                    Severity::Warning,
                    title,
                )
                .text(text),
            );
        }
        let c = self.comparison.as_ref()?;
        let status = c
            .forecast
            .as_ref()
            .filter(|_| self.check == Kind::Weekly)
            .map_or(c.total.status, |f| f.status.max(c.total.status));
        let severity = match status {
            Status::Ok => Severity::Info,
            Status::Warn => Severity::Warning,
            Status::Alert => Severity::Critical,
        };
        let title = match self.check {
            Kind::Monthly => format!(
                "AWS cost for {}: {} of {} expected ({})",
                month_name(c.period_start),
                dollars(c.total.actual),
                dollars(c.total.estimate),
                pct(c.total.pct)
            ),
            Kind::Weekly => match &c.forecast {
                Some(f) => format!(
                    "AWS cost forecast for {}: {} of {} expected ({})",
                    month_name(c.period_start),
                    dollars(f.forecast.mean),
                    dollars(f.estimate),
                    pct(f.pct)
                ),
                None => format!(
                    "AWS cost so far in {}: {} ({})",
                    month_name(c.period_start),
                    dollars(c.total.actual),
                    pct(c.total.pct)
                ),
            },
        };

        let mut text = Vec::new();
        if let Some(f) = &c.forecast {
            let range = match (f.forecast.low, f.forecast.high) {
                (Some(low), Some(high)) => format!(" (80 % interval {}–{})", dollars(low), dollars(high)),
                _ => String::new(),
            };
            text.push(format!(
                "Forecast to month end: {}{range}; so far {} of a pro-rated {}.",
                dollars(f.forecast.mean),
                dollars(c.total.actual),
                dollars(c.total.estimate)
            ));
        }
        if let Some(why) = &self.no_forecast {
            text.push(format!("No forecast yet: {why}"));
        }
        text.push(format!(
            "Expected {}: the seed's table {}, what the gateway stack adds {}, the ops suite {}.",
            dollars(c.total.estimate),
            dollars(c.seed),
            match &c.stack {
                Some(b) => dollars(b.expected),
                None => "— (not deployed by this stack)".into(),
            },
            dollars(c.suite.expected),
        ));
        if !c.drivers.is_empty() {
            let named: Vec<String> =
                c.drivers.iter().map(|d| format!("{} {} (+{})", d.name, dollars(d.actual), dollars(d.over))).collect();
            text.push(format!("Driving the overrun: {}.", named.join("; ")));
        }
        for d in &c.drivers {
            for s in &d.savings {
                text.push(format!("For {}: {} — saves {} (trade-off: {}).", d.name, s.option, s.saves, s.trade_off));
            }
        }
        for line in &c.lines {
            for part in line.parts.iter().filter(|p| !p.actual.is_zero()) {
                text.push(format!(
                    "{}: hours {} {}, {} {} — the seed's '{}'.",
                    line.name,
                    dollars(line.actual),
                    if line.status == Status::Ok {
                        "as estimated".to_owned()
                    } else {
                        format!("of {} expected", dollars(line.estimate))
                    },
                    part.name,
                    dollars(part.actual),
                    part.seed
                ));
            }
        }
        if let Some(b) = &c.stack {
            text.push(block_summary("The gateway stack adds", b));
        }
        text.push(block_summary("The ops suite itself costs", &c.suite));
        if let Some(why) = &self.no_suite_tag {
            text.push(format!("The suite's tag could not be read ({why}); its costs are attributed by usage type."));
        }
        text.push(format!(
            "Compared with {} ({} tier); prices beyond the seed's from the price table ({}, read {}).",
            self.estimate_description,
            serde_json::to_value(self.tier).unwrap().as_str().unwrap_or_default(),
            self.prices_region,
            self.prices_read,
        ));

        let mut rows: Vec<Vec<String>> = Vec::new();
        for l in &c.lines {
            let name = if l.includes.is_empty() {
                l.name.clone()
            } else {
                format!("{} (+ {})", l.name, l.includes.join(", "))
            };
            rows.push(vec![name, dollars(l.estimate), dollars(l.actual), pct(l.pct)]);
            for p in &l.parts {
                rows.push(vec![
                    format!("{} {} (seed: {})", l.name, p.name, p.seed),
                    "—".into(),
                    dollars(p.actual),
                    format!("{:?}", p.status).to_lowercase(),
                ]);
            }
        }
        for (label, block) in [("stack", c.stack.as_ref()), ("suite", Some(&c.suite))] {
            for i in block.into_iter().flat_map(|b| &b.items).filter(|i| i.inside.is_none()) {
                rows.push(vec![
                    format!("{label}: {}", i.name),
                    dollars(i.expected),
                    i.actual.map_or("—".into(), dollars),
                    i.status.map_or("—".into(), |s| format!("{s:?}").to_lowercase()),
                ]);
            }
        }
        rows.extend(c.not_in_estimate.iter().map(|n| {
            vec![
                format!("{} {} (not in estimate)", n.service, n.usage_type).trim().to_owned(),
                "—".into(),
                dollars(n.amount),
                "—".into(),
            ]
        }));
        rows.push(vec!["Total".into(), dollars(c.total.estimate), dollars(c.total.actual), pct(c.total.pct)]);

        Some(
            Notification::new(FUNCTION, format!("{FUNCTION}:{check}:{}", c.period_start), severity, title)
                .text(text.join("\n"))
                .field("period", format!("{} to {}", c.period_start, c.period_end))
                .field("Cost Explorer requests", self.requests.to_string())
                .table(Table {
                    columns: vec!["line".into(), "expected".into(), "actual".into(), "vs expected".into()],
                    rows,
                }),
        )
    }

    /// One EMF document for the totals, one per line with its overrun (dimension `Line`).
    pub fn metrics(&self) -> Vec<Metrics> {
        let f = |d: Decimal| d.to_f64().unwrap_or_default();
        let mut out = Vec::new();
        let mut totals = Metrics::new(FUNCTION).count("CostExplorerRequests", self.requests);
        if let Some(c) = &self.comparison {
            let name = match self.check {
                Kind::Monthly => "CostLastMonth",
                Kind::Weekly => "CostMonthToDate",
            };
            totals = totals.value(name, f(c.total.actual), "None").value("CostEstimate", f(c.total.estimate), "None");
            if let Some(forecast) = &c.forecast {
                totals = totals.value("CostForecast", f(forecast.forecast.mean), "None");
            }
            for line in &c.lines {
                out.push(Metrics::new(FUNCTION).with_dimension("Line", &line.name).value(
                    "CostOverrun",
                    f(line.difference),
                    "None",
                ));
            }
        }
        out.insert(0, totals);
        out
    }
}

impl RunReport for Report {
    fn summary(&self) -> String {
        format!("cost-check {:?} as of {}", self.check, self.as_of)
    }

    fn metrics(&self) -> Vec<Metrics> {
        Report::metrics(self)
    }

    fn notifications(&self) -> Vec<Notification> {
        self.notification().into_iter().collect()
    }

    /// Out of time is worth Lambda's retries of the scheduled run; the others (no data, no access)
    /// are not: they are in the report and its notification.
    fn failure(&self) -> Option<String> {
        match &self.unavailable {
            Some(Unavailable::OutOfTime(why)) => Some(why.clone()),
            _ => None,
        }
    }
}
