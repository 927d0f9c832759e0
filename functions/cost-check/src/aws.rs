//! The clients the function uses, built once per container, and the Cost Explorer reads. Each
//! request costs $0.01, so a run makes at most three and counts them.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::error::ProvideErrorMetadata;
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, Metric, TagValues,
};
use chrono::NaiveDate;
use openclaw_ops_shared::error::Failure;
use openclaw_ops_shared::tags::TagFilter;
use rust_decimal::Decimal;
use tokio::time::Instant;

use crate::plan::{Cost, Forecast};

/// Cost Explorer (one endpoint, in us-east-1, whatever the stack's region) and SNS.
pub struct Clients {
    pub ce: Client,
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let ce = aws_sdk_costexplorer::config::Builder::from(sdk).region(aws_config::Region::new("us-east-1")).build();
        Clients { ce: Client::from_conf(ce), sns: aws_sdk_sns::Client::new(sdk) }
    }
}

pub const MAX_REQUESTS: usize = 3;

/// Why Cost Explorer gave no answer, in terms of what the owner should do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Unavailable {
    /// Never enabled in this account: the owner enables it once (AWS answers AccessDeniedException
    /// "User not enabled for cost explorer access").
    NotEnabled(String),
    /// Enabled, but no data for the period yet (up to a day after enabling).
    NoData(String),
    /// The role (or an SCP, or the organisation's settings) denies the call: fix the permissions.
    AccessDenied(String),
    /// More pages than the request budget allows.
    TooManyPages(usize),
    /// Cost Explorer had not answered when the run had to stop to report (AWS's answers take
    /// seconds; a hung connection would otherwise last until Lambda kills the run unreported).
    OutOfTime(String),
    Other(String),
}

pub struct CostExplorer {
    client: Client,
    requests: AtomicUsize,
    /// When the run must stop waiting for Cost Explorer to still report in time.
    deadline: Instant,
}

fn interval((start, end): (NaiveDate, NaiveDate)) -> DateInterval {
    DateInterval::builder().start(start.to_string()).end(end.to_string()).build().expect("start and end are set")
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(operation: &'static str, err: &E) -> Unavailable {
    classify_code(err.code(), err.message().unwrap_or_default(), Failure::from_sdk(operation, err).detail())
}

/// AWS tells "never enabled" and "denied" apart only by the message of one error code.
fn classify_code(code: Option<&str>, message: &str, text: String) -> Unavailable {
    let not_enabled = message.to_ascii_lowercase().contains("not enabled for cost explorer");
    match code {
        Some(code) if code.contains("AccessDenied") && not_enabled => Unavailable::NotEnabled(text),
        Some(code) if code.contains("AccessDenied") || code == "UnauthorizedOperation" => {
            Unavailable::AccessDenied(text)
        }
        Some("DataUnavailableException" | "BillExpirationException") => Unavailable::NoData(text),
        _ => Unavailable::Other(text),
    }
}

fn tag_filter(tag: &TagFilter) -> Expression {
    Expression::builder().tags(TagValues::builder().key(&tag.key).values(&tag.value).build()).build()
}

fn amount(raw: Option<&str>) -> Decimal {
    raw.and_then(|a| Decimal::from_str(a).ok()).unwrap_or_default()
}

impl CostExplorer {
    pub fn new(client: Client, deadline: Instant) -> Self {
        CostExplorer { client, requests: AtomicUsize::new(0), deadline }
    }

    /// A request's answer, or [`Unavailable::OutOfTime`] once the deadline has come.
    #[tracing::instrument(skip_all, fields(operation = %operation))]
    async fn in_time<T>(&self, operation: &str, request: impl Future<Output = T>) -> Result<T, Unavailable> {
        tokio::time::timeout_at(self.deadline, request).await.map_err(|_| {
            Unavailable::OutOfTime(format!(
                "{operation} had not answered when the run had to stop to report in time (request {})",
                self.requests()
            ))
        })
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn spend(&self) -> Result<(), Unavailable> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_REQUESTS {
            self.requests.fetch_sub(1, Ordering::SeqCst);
            return Err(Unavailable::TooManyPages(n));
        }
        Ok(())
    }

    /// Unblended cost of `[start, end)` by service and usage type, optionally for one cost-allocation tag.
    #[tracing::instrument(skip_all)]
    pub async fn costs(
        &self,
        period: (NaiveDate, NaiveDate),
        tag: Option<&TagFilter>,
        reserve: usize,
    ) -> Result<Vec<Cost>, Unavailable> {
        let mut costs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            if self.requests() + reserve >= MAX_REQUESTS {
                return Err(Unavailable::TooManyPages(self.requests()));
            }
            self.spend()?;
            let mut request = self
                .client
                .get_cost_and_usage()
                .time_period(interval(period))
                .granularity(Granularity::Monthly)
                .metrics("UnblendedCost")
                .group_by(GroupDefinition::builder().r#type(GroupDefinitionType::Dimension).key("SERVICE").build())
                .group_by(GroupDefinition::builder().r#type(GroupDefinitionType::Dimension).key("USAGE_TYPE").build())
                .set_next_page_token(token.clone());
            if let Some(tag) = tag {
                request = request.filter(tag_filter(tag));
            }
            let out = self
                .in_time("GetCostAndUsage", request.send())
                .await?
                .map_err(|e| classify("ce:GetCostAndUsage", &e))?;
            for by_time in out.results_by_time() {
                for group in by_time.groups() {
                    let keys = group.keys();
                    let metric = group.metrics().and_then(|m| m.get("UnblendedCost"));
                    costs.push(Cost {
                        service: keys.first().cloned().unwrap_or_default(),
                        usage_type: keys.get(1).cloned().unwrap_or_default(),
                        amount: amount(metric.and_then(|m| m.amount())),
                    });
                }
            }
            token = out.next_page_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                return Ok(costs);
            }
        }
    }

    /// The forecast of `[start, end)` with its 80 % prediction interval; `None` when AWS has none yet
    /// (early in a month, or a new account).
    #[tracing::instrument(skip_all)]
    pub async fn forecast(
        &self,
        period: (NaiveDate, NaiveDate),
        tag: Option<&TagFilter>,
    ) -> Result<Result<Forecast, String>, Unavailable> {
        self.spend()?;
        let mut request = self
            .client
            .get_cost_forecast()
            .time_period(interval(period))
            .granularity(Granularity::Monthly)
            .metric(Metric::UnblendedCost)
            .prediction_interval_level(80);
        if let Some(tag) = tag {
            request = request.filter(tag_filter(tag));
        }
        match self.in_time("GetCostForecast", request.send()).await? {
            Ok(out) => {
                let total = out.total();
                let mean = amount(total.and_then(|t| t.amount()));
                let interval = out.forecast_results_by_time().first();
                Ok(Ok(Forecast {
                    mean,
                    low: interval.and_then(|i| i.prediction_interval_lower_bound()).map(|a| amount(Some(a))),
                    high: interval.and_then(|i| i.prediction_interval_upper_bound()).map(|a| amount(Some(a))),
                }))
            }
            Err(e) if e.code() == Some("DataUnavailableException") => {
                Ok(Err(Failure::from_sdk("ce:GetCostForecast", &e).detail()))
            }
            Err(e) => Err(classify("ce:GetCostForecast", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str, message: &str) -> Unavailable {
        classify_code(Some(code), message, String::new())
    }

    #[test]
    fn never_enabled_is_not_access_denied() {
        // What AWS answers an account that never enabled Cost Explorer.
        assert_eq!(
            kind("AccessDeniedException", "User not enabled for cost explorer access"),
            Unavailable::NotEnabled(String::new())
        );
        assert_eq!(
            kind(
                "AccessDeniedException",
                "User: arn:aws:sts::1:assumed-role/x is not authorized to perform: ce:GetCostAndUsage"
            ),
            Unavailable::AccessDenied(String::new())
        );
        assert_eq!(kind("DataUnavailableException", "Data is not available."), Unavailable::NoData(String::new()));
        assert_eq!(kind("ValidationException", "bad"), Unavailable::Other(String::new()));
    }
}
