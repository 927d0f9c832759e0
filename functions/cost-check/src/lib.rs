//! cost-check: the AWS bill against the architecture's itemised estimate, line by line.
//!
//! observe (Cost Explorer: costs by service and usage type, with `COST_SUITE_TAG` the suite's tagged
//! costs too, and the forecast; at most 3 requests) → plan ([`plan::compare`], pure, with
//! [`savings`] per driver) → report (JSON, log line, EMF, notification). It changes nothing in AWS, so
//! there is no apply step.

pub mod aws;
pub mod config;
pub mod estimate;
pub mod event;
pub mod plan;
pub mod prices;
pub mod report;
pub mod savings;

use aws_config::SdkConfig;
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::Env;
use openclaw_ops_shared::invocation;
use openclaw_ops_shared::notification::Publisher;
use openclaw_ops_shared::run;
use openclaw_ops_shared::{Error, Function};
use serde_json::Value;

pub use crate::aws::Clients;
use crate::aws::CostExplorer;
pub use crate::config::Config;
use crate::event::{Event, Kind};
use crate::report::Report;

pub const FUNCTION: &str = "cost-check";
/// Kept back from the invocation's deadline to notify and report after the last read.
const RESERVE: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Handler {
    config: Config,
    ce: aws_sdk_costexplorer::Client,
    publisher: Publisher,
}

impl Handler {
    pub fn new(config: Config, clients: Clients) -> Self {
        let publisher = Publisher::new(clients.sns, &config.topic_arn);
        Handler { config, ce: clients.ce, publisher }
    }
}

impl Function for Handler {
    type Output = Report;

    fn init(env: &impl Env, sdk: &SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let clients = Clients::new(sdk);
        Ok(Handler::new(config, clients))
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Report, Error> {
        let check = Event::parse(event.payload)?;
        let as_of = check.as_of.unwrap_or_else(|| Utc::now().date_naive());
        let periods = check.periods(as_of);
        let ce = CostExplorer::new(self.ce.clone(), invocation::deadline(&event.context, RESERVE));
        let tag = self.config.tag.as_ref();

        // Requests, in order: the costs, the suite's tagged costs, the forecast. Each read leaves
        // room for those after it, so paging never eats the forecast's request.
        let forecast_period = match check.check {
            Kind::Weekly => periods.forecast,
            Kind::Monthly => None,
        };
        let suite_tag = self.config.suite_tag.as_ref();
        let reserve = usize::from(forecast_period.is_some()) + usize::from(suite_tag.is_some());
        let mut report = Report {
            function: FUNCTION,
            check: check.check,
            as_of,
            tier: self.config.tier,
            estimate_description: self.config.estimate.description.clone(),
            prices_region: self.config.prices.region.clone(),
            prices_read: self.config.prices.read.clone(),
            requests: 0,
            comparison: None,
            no_forecast: None,
            no_suite_tag: None,
            unavailable: None,
            notified: false,
        };
        match ce.costs(periods.costs, tag, reserve).await {
            Err(why) => report.unavailable = Some(why),
            Ok(costs) => {
                let suite_tagged = match suite_tag {
                    None => None,
                    Some(suite) => {
                        match ce.costs(periods.costs, Some(suite), usize::from(forecast_period.is_some())).await {
                            Ok(tagged) => Some((suite, tagged)),
                            Err(why) => {
                                report.no_suite_tag = Some(format!("{why:?}"));
                                None
                            }
                        }
                    }
                };
                let forecast = match (check.check, forecast_period) {
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
                report.comparison = Some(plan::compare(
                    plan::Inputs {
                        estimate: &self.config.estimate,
                        prices: &self.config.prices,
                        thresholds: &self.config.thresholds,
                        period: periods.costs,
                        days_in_month: periods.days_in_month,
                        forecast,
                        suite_tagged,
                        gateway_stack: self.config.gateway_stack,
                    },
                    &costs,
                ));
            }
        }
        report.requests = ce.requests();

        report.notified = report.notification().is_some();
        run::finish(report, &self.publisher).await
    }
}

#[cfg(test)]
mod tests;
