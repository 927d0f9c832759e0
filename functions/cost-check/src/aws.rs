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

    mod requests {
        use std::time::Duration;

        use aws_sdk_costexplorer::error::ErrorMetadata;
        use aws_sdk_costexplorer::operation::get_cost_and_usage::{GetCostAndUsageError, GetCostAndUsageOutput};
        use aws_sdk_costexplorer::operation::get_cost_forecast::{GetCostForecastError, GetCostForecastOutput};
        use aws_sdk_costexplorer::types::{ForecastResult, Group, MetricValue, ResultByTime};
        use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

        use super::super::*;

        const NOVEMBER: (&str, &str) = ("2026-11-01", "2026-12-01");

        fn period() -> (NaiveDate, NaiveDate) {
            (NOVEMBER.0.parse().unwrap(), NOVEMBER.1.parse().unwrap())
        }

        fn group(service: &str, usage_type: &str, amount: &str) -> Group {
            Group::builder()
                .keys(service)
                .keys(usage_type)
                .metrics("UnblendedCost", MetricValue::builder().amount(amount).unit("USD").build())
                .build()
        }

        fn page(groups: Vec<Group>, next: Option<&str>) -> GetCostAndUsageOutput {
            GetCostAndUsageOutput::builder()
                .results_by_time(ResultByTime::builder().set_groups(Some(groups)).build())
                .set_next_page_token(next.map(str::to_owned))
                .build()
        }

        fn explorer(rules: &[&Rule]) -> CostExplorer {
            let client = mock_client!(aws_sdk_costexplorer, RuleMode::Sequential, rules.iter().copied());
            CostExplorer::new(client, Instant::now() + Duration::from_secs(60))
        }

        /// The month's costs: `[start, end)` with the end exclusive (the first of the next month),
        /// monthly, unblended, by service then usage type, for the whole account.
        #[tokio::test]
        async fn costs_are_asked_for_the_period_by_service_and_usage_type() {
            let rule = mock!(Client::get_cost_and_usage)
                .match_requests(|r| {
                    let period = r.time_period().unwrap();
                    let groups: Vec<_> = r.group_by().iter().map(|g| (g.r#type().cloned(), g.key())).collect();
                    (period.start(), period.end()) == NOVEMBER
                        && r.granularity() == Some(&Granularity::Monthly)
                        && r.metrics() == ["UnblendedCost"]
                        && groups
                            == [
                                (Some(GroupDefinitionType::Dimension), Some("SERVICE")),
                                (Some(GroupDefinitionType::Dimension), Some("USAGE_TYPE")),
                            ]
                        && r.filter().is_none()
                        && r.next_page_token().is_none()
                })
                .then_output(|| {
                    page(
                        vec![
                            group("Amazon Elastic Compute Cloud - Compute", "EU-SpotUsage:t4g.medium", "7.25"),
                            group("Amazon Simple Storage Service", "EU-TimedStorage-ByteHrs", "0.0231"),
                        ],
                        None,
                    )
                });
            let ce = explorer(&[&rule]);

            let costs = ce.costs(period(), None, 0).await.unwrap();
            assert_eq!(
                costs,
                [
                    Cost {
                        service: "Amazon Elastic Compute Cloud - Compute".into(),
                        usage_type: "EU-SpotUsage:t4g.medium".into(),
                        amount: "7.25".parse().unwrap(),
                    },
                    Cost {
                        service: "Amazon Simple Storage Service".into(),
                        usage_type: "EU-TimedStorage-ByteHrs".into(),
                        amount: "0.0231".parse().unwrap(),
                    },
                ]
            );
            assert_eq!((ce.requests(), rule.num_calls()), (1, 1));
        }

        #[tokio::test]
        async fn a_configured_tag_filters_the_costs_and_the_forecast() {
            let is_tagged = |filter: Option<&Expression>| {
                filter.and_then(|f| f.tags()).is_some_and(|t| t.key() == Some("app") && t.values() == ["openclaw"])
            };
            let costs = mock!(Client::get_cost_and_usage)
                .match_requests(move |r| is_tagged(r.filter()))
                .then_output(|| page(vec![], None));
            let forecast = mock!(Client::get_cost_forecast)
                .match_requests(move |r| is_tagged(r.filter()))
                .then_output(|| GetCostForecastOutput::builder().build());
            let ce = explorer(&[&costs, &forecast]);
            let tag: TagFilter = "app=openclaw".parse().unwrap();

            assert!(ce.costs(period(), Some(&tag), 1).await.unwrap().is_empty());
            ce.forecast(period(), Some(&tag)).await.unwrap().unwrap();
            assert_eq!((costs.num_calls(), forecast.num_calls()), (1, 1));
        }

        #[tokio::test]
        async fn pages_are_followed_with_their_token() {
            let first = mock!(Client::get_cost_and_usage)
                .match_requests(|r| r.next_page_token().is_none())
                .then_output(|| page(vec![group("A", "a", "1")], Some("page-2")));
            let second = mock!(Client::get_cost_and_usage)
                .match_requests(|r| r.next_page_token() == Some("page-2"))
                .then_output(|| page(vec![group("B", "b", "2")], Some("")));
            let ce = explorer(&[&first, &second]);

            let services: Vec<_> = ce.costs(period(), None, 0).await.unwrap().into_iter().map(|c| c.service).collect();
            assert_eq!(services, ["A", "B"]);
            assert_eq!(ce.requests(), 2);
        }

        /// Each request costs $0.01: endless pages stop at the budget, leaving the reserved
        /// requests for what comes after.
        #[tokio::test]
        async fn paging_never_spends_more_than_the_budget_or_the_reserve() {
            let endless = mock!(Client::get_cost_and_usage)
                .sequence()
                .output(|| page(vec![group("A", "a", "1")], Some("more")))
                .repeatedly()
                .build();
            let ce = explorer(&[&endless]);
            assert_eq!(ce.costs(period(), None, 1).await, Err(Unavailable::TooManyPages(2)));
            assert_eq!((ce.requests(), endless.num_calls()), (2, 2));

            let ce = explorer(&[&endless]);
            assert_eq!(ce.costs(period(), None, 0).await, Err(Unavailable::TooManyPages(MAX_REQUESTS)));
            assert_eq!(ce.requests(), MAX_REQUESTS);
            assert_eq!(endless.num_calls(), 2 + MAX_REQUESTS);
        }

        #[tokio::test]
        async fn the_forecast_is_refused_once_the_budget_is_spent() {
            let costs =
                mock!(Client::get_cost_and_usage).sequence().output(|| page(vec![], Some("more"))).repeatedly().build();
            let forecast = mock!(Client::get_cost_forecast).then_output(|| GetCostForecastOutput::builder().build());
            let ce = explorer(&[&costs, &forecast]);

            assert!(ce.costs(period(), None, 0).await.is_err());
            assert_eq!(ce.forecast(period(), None).await, Err(Unavailable::TooManyPages(MAX_REQUESTS)));
            assert_eq!(forecast.num_calls(), 0);
        }

        #[tokio::test]
        async fn the_forecast_reads_its_mean_and_80_percent_interval() {
            let rule = mock!(Client::get_cost_forecast)
                .match_requests(|r| {
                    let period = r.time_period().unwrap();
                    (period.start(), period.end()) == NOVEMBER
                        && r.metric() == Some(&Metric::UnblendedCost)
                        && r.granularity() == Some(&Granularity::Monthly)
                        && r.prediction_interval_level() == Some(80)
                })
                .then_output(|| {
                    GetCostForecastOutput::builder()
                        .total(MetricValue::builder().amount("12.5").build())
                        .forecast_results_by_time(
                            ForecastResult::builder()
                                .prediction_interval_lower_bound("10")
                                .prediction_interval_upper_bound("15.75")
                                .build(),
                        )
                        .build()
                });
            let ce = explorer(&[&rule]);

            let forecast = ce.forecast(period(), None).await.unwrap().unwrap();
            assert_eq!(
                forecast,
                Forecast {
                    mean: "12.5".parse().unwrap(),
                    low: Some(Decimal::TEN),
                    high: Some("15.75".parse().unwrap())
                }
            );
        }

        /// No forecast yet (early in a month, a new account) is said in the report, not a failure.
        #[tokio::test]
        async fn a_forecast_without_data_is_reported_not_fatal() {
            let rule = mock!(Client::get_cost_forecast).then_error(|| {
                GetCostForecastError::generic(
                    ErrorMetadata::builder().code("DataUnavailableException").message("Insufficient data").build(),
                )
            });
            let ce = explorer(&[&rule]);

            let why = ce.forecast(period(), None).await.unwrap().unwrap_err();
            assert!(why.contains("DataUnavailableException"), "{why}");
        }

        #[tokio::test]
        async fn an_account_that_never_enabled_cost_explorer_is_told_so() {
            let rule = mock!(Client::get_cost_and_usage).then_error(|| {
                GetCostAndUsageError::generic(
                    ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .message("User not enabled for cost explorer access")
                        .build(),
                )
            });
            let ce = explorer(&[&rule]);

            let why = ce.costs(period(), None, 0).await.unwrap_err();
            assert!(matches!(&why, Unavailable::NotEnabled(text) if text.contains("AccessDeniedException")), "{why:?}");
            assert_eq!(ce.requests(), 1);
        }
    }
}
