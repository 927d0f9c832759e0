//! The two schedules pass `{"check": "monthly"}` and `{"check": "weekly"}`; a person may add
//! `"as_of": "YYYY-MM-DD"` to run a check as on that day (say, last month's report again).

use chrono::{Datelike, Months, NaiveDate};
use openclaw_ops_shared::Error;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The previous month's actuals; always reported.
    Monthly,
    /// Month to date and the forecast to month end; reported when the forecast crosses a threshold.
    Weekly,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub check: Kind,
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
}

/// The dates a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// `[start, end)` of the costs to read.
    pub costs: (NaiveDate, NaiveDate),
    pub days_in_month: u32,
    /// `[start, end)` to forecast (weekly only; none on a month's last day).
    pub forecast: Option<(NaiveDate, NaiveDate)>,
}

/// The days a check may be run as on: four-digit years. chrono parses `+262142-12-15`, and a month
/// before or after a date near its limits does not exist; Cost Explorer has nothing outside these
/// years either (it keeps 14 months, or 38 with multi-year data turned on).
pub const AS_OF_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

impl Event {
    pub fn parse(payload: Value) -> Result<Self, Error> {
        if !payload.is_object() {
            return Err(Error::Input("expected {\"check\": \"monthly\" | \"weekly\"}".into()));
        }
        let check: Event = serde_json::from_value(payload).map_err(|e| {
            Error::Input(format!("{e}; expected {{\"check\": \"monthly\" | \"weekly\", \"as_of\"?: \"YYYY-MM-DD\"}}"))
        })?;
        if let Some(day) = check.as_of
            && !AS_OF_YEARS.contains(&day.year())
        {
            return Err(Error::Input(format!(
                "as_of {day}: expected a day in the years {}-{}",
                AS_OF_YEARS.start(),
                AS_OF_YEARS.end()
            )));
        }
        Ok(check)
    }

    /// For `today` within `AS_OF_YEARS` (what `parse` lets through, and any clock the function runs on).
    pub fn periods(&self, today: NaiveDate) -> Periods {
        let first = today.with_day(1).expect("day 1 exists");
        let next_first = first + Months::new(1);
        match self.check {
            Kind::Monthly => {
                let previous = first - Months::new(1);
                Periods {
                    costs: (previous, first),
                    days_in_month: (first - previous).num_days() as u32,
                    forecast: None,
                }
            }
            Kind::Weekly => Periods {
                costs: (first, today),
                days_in_month: (next_first - first).num_days() as u32,
                forecast: (today < next_first).then_some((today, next_first)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn monthly_covers_the_previous_month_even_across_a_year() {
        let c = Event::parse(json!({"check": "monthly"})).unwrap();
        let p = c.periods(day(2027, 1, 2));
        assert_eq!(p.costs, (day(2026, 12, 1), day(2027, 1, 1)));
        assert_eq!(p.days_in_month, 31);
        assert_eq!(p.forecast, None);
    }

    #[test]
    fn weekly_covers_the_month_to_date_and_forecasts_the_rest() {
        let c = Event::parse(json!({"check": "weekly", "as_of": "2026-02-16"})).unwrap();
        assert_eq!(c.as_of, Some(day(2026, 2, 16)));
        let p = c.periods(day(2026, 2, 16));
        assert_eq!(p.costs, (day(2026, 2, 1), day(2026, 2, 16)));
        assert_eq!(p.days_in_month, 28);
        assert_eq!(p.forecast, Some((day(2026, 2, 16), day(2026, 3, 1))));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            json!({}),
            json!({"check": "daily"}),
            json!({"check": "weekly", "extra": 1}),
            json!("weekly"),
            json!({"check": "weekly", "as_of": "soon"}),
        ] {
            assert!(matches!(Event::parse(bad.clone()), Err(Error::Input(_))), "{bad}");
        }
    }

    #[test]
    fn an_absurd_as_of_is_refused_not_a_panic() {
        for far in ["+262142-12-15", "-262143-01-01", "+10000-01-01", "1999-12-31", "0001-01-01"] {
            for kind in ["monthly", "weekly"] {
                let got = Event::parse(json!({"check": kind, "as_of": far}));
                assert!(matches!(&got, Err(Error::Input(m)) if m.contains("as_of")), "{far}: {got:?}");
            }
        }
        for edge in ["2000-01-01", "9999-12-31"] {
            for kind in ["monthly", "weekly"] {
                let c = Event::parse(json!({"check": kind, "as_of": edge})).unwrap();
                c.periods(c.as_of.unwrap());
            }
        }
    }

    #[test]
    fn sample_events_are_accepted_or_refused_as_named() {
        let samples = openclaw_ops_shared::samples::samples(env!("CARGO_MANIFEST_DIR"), "cost-check");
        assert!(samples.len() >= 3);
        for sample in samples {
            let value: Value = serde_json::from_str(&sample.text).unwrap();
            assert_eq!(Event::parse(value).is_err(), sample.refused, "{}", sample.name);
        }
    }
}
