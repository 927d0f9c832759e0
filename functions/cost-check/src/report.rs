//! What a check tells the owner: the notification (a compact table telegram-notify renders), EMF
//! metrics and the JSON response with every line.

use chrono::NaiveDate;
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity, Table};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::FUNCTION;
use crate::ce::Unavailable;
use crate::compare::{Comparison, Status, cents};
use crate::estimate::Tier;
use crate::event::Kind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub check: Kind,
    pub as_of: NaiveDate,
    pub tier: Tier,
    pub estimate_description: String,
    /// Cost Explorer requests made ($0.01 each).
    pub requests: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Why there is no forecast (early in the month, new account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_forecast: Option<String>,
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
                    "Cost check: Cost Explorer is not enabled".to_owned(),
                    format!(
                        "Enable Cost Explorer once in the Billing and Cost Management console (Cost Explorer → Launch). \
                         Data appears within 24 hours; the next check will use it. ({detail})"
                    ),
                ),
                Unavailable::AccessDenied(detail) => (
                    "Cost check: access to Cost Explorer denied".to_owned(),
                    format!(
                        "The function's role needs ce:GetCostAndUsage and ce:GetCostForecast (the stack grants them); \
                         an organisation's SCP or a member account without billing access can still deny them. ({detail})"
                    ),
                ),
                Unavailable::TooManyPages(n) => (
                    "Cost check: more cost data than the request budget".to_owned(),
                    format!("Stopped after {n} Cost Explorer requests ($0.01 each) without reading every page."),
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
                "AWS cost for {}: {} of {} estimated ({})",
                month_name(c.period_start),
                dollars(c.total.actual),
                dollars(c.total.estimate),
                pct(c.total.pct)
            ),
            Kind::Weekly => match &c.forecast {
                Some(f) => format!(
                    "AWS cost forecast for {}: {} of {} estimated ({})",
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
        if !c.drivers.is_empty() {
            text.push(format!("Driving the overrun: {}.", c.drivers.join("; ")));
        }
        for s in &c.suggestions {
            text.push(format!("Option: {} — {} (trade-off: {}).", s.option, s.saves, s.trade_off));
        }
        text.push(format!(
            "Compared with {} ({} tier).",
            self.estimate_description,
            serde_json::to_value(self.tier).unwrap().as_str().unwrap_or_default()
        ));

        let mut rows: Vec<Vec<String>> =
            c.lines.iter().map(|l| vec![l.name.clone(), dollars(l.estimate), dollars(l.actual), pct(l.pct)]).collect();
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
                    columns: vec!["line".into(), "estimate".into(), "actual".into(), "vs estimate".into()],
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
