//! cost-check: the AWS bill against the architecture's itemised estimate, line by line.
//!
//! observe (Cost Explorer: costs by service and usage type, the forecast; at most 3 requests) →
//! plan ([`compare::compare`], pure) → report (JSON, log line, EMF, notification). It changes nothing
//! in AWS, so there is no apply step.

pub mod ce;
pub mod compare;
pub mod config;
pub mod estimate;
pub mod event;
pub mod report;

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::Error;
use openclaw_ops_shared::notification::Publisher;
use serde_json::Value;

use crate::ce::CostExplorer;
pub use crate::config::Config;
use crate::event::{Check, Kind};
use crate::report::Report;

pub const FUNCTION: &str = "cost-check";

pub struct Handler {
    config: Config,
    ce: aws_sdk_costexplorer::Client,
    publisher: Publisher,
}

impl Handler {
    pub fn new(config: Config, ce: aws_sdk_costexplorer::Client, sns: aws_sdk_sns::Client) -> Self {
        let publisher = Publisher::new(sns, &config.topic_arn);
        Handler { config, ce, publisher }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Report, Error> {
        let check = Check::parse(event.payload)?;
        let as_of = check.as_of.unwrap_or_else(|| Utc::now().date_naive());
        let periods = check.periods(as_of);
        let ce = CostExplorer::new(self.ce.clone());
        let tag = self.config.tag.as_ref();

        let reserve = usize::from(periods.forecast.is_some());
        let mut report = Report {
            function: FUNCTION,
            check: check.check,
            as_of,
            tier: self.config.tier,
            estimate_description: self.config.estimate.description.clone(),
            requests: 0,
            comparison: None,
            no_forecast: None,
            unavailable: None,
            notified: false,
        };
        match ce.costs(periods.costs, tag, reserve).await {
            Err(why) => report.unavailable = Some(why),
            Ok(costs) => {
                let forecast = match (check.check, periods.forecast) {
                    (Kind::Weekly, Some(period)) => match ce.forecast(period, tag).await {
                        Ok(Ok(f)) => Some(f),
                        Ok(Err(why)) => {
                            report.no_forecast = Some(why);
                            None
                        }
                        Err(why) => {
                            report.no_forecast = Some(format!("{why:?}"));
                            None
                        }
                    },
                    (Kind::Weekly, None) => {
                        report.no_forecast = Some("the month ends today".into());
                        None
                    }
                    (Kind::Monthly, _) => None,
                };
                report.comparison = Some(compare::compare(
                    &self.config.estimate,
                    &costs,
                    &self.config.thresholds,
                    periods.costs,
                    periods.days_in_month,
                    forecast,
                ));
            }
        }
        report.requests = ce.requests();

        let notification = report.notification();
        report.notified = notification.is_some();
        let json = serde_json::to_string(&report).expect("a report always serialises");
        tracing::info!(requests = report.requests, notified = report.notified, report = %json, "cost-check {:?} as of {as_of}", check.check);
        for metrics in report.metrics() {
            metrics.emit(Utc::now());
        }
        if let Some(n) = notification {
            self.publisher.publish(&n).await?;
        }
        Ok(report)
    }
}
