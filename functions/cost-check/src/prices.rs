//! The dated price table (prices.json) for what the seed's table does not price: the region, each
//! price, its source and the date it was read. Nothing here can fetch prices, so the table says when
//! and from where they were taken.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const BUILT_IN: &str = include_str!("prices.json");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(with = "rust_decimal::serde::str")]
    pub usd: Decimal,
    pub per: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub region: String,
    /// When the prices were read (YYYY-MM-DD).
    pub read: String,
    pub how: String,
    pub prices: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn built_in() -> PriceTable {
        serde_json::from_str(BUILT_IN).expect("prices.json is valid (a unit test checks it)")
    }

    /// A price by its key; the estimate refers to prices only by keys a unit test checks exist.
    pub fn usd(&self, key: &str) -> Decimal {
        self.prices.get(key).map(|p| p.usd).unwrap_or_else(|| panic!("no price {key:?} in prices.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_dated_and_sourced() {
        let t = PriceTable::built_in();
        assert_eq!(t.region, "us-east-1");
        assert!(chrono::NaiveDate::parse_from_str(&t.read, "%Y-%m-%d").is_ok());
        for (key, price) in &t.prices {
            assert!(price.source.starts_with("https://aws.amazon.com/"), "{key}");
            assert!(price.usd >= Decimal::ZERO && !price.per.is_empty(), "{key}");
        }
        // The seed's own figures follow from these prices (720 or 730 hours a month).
        assert_eq!(t.usd("public_ipv4_hour") * Decimal::from(730), Decimal::new(365, 2), "the seed's Elastic IP");
        assert_eq!(t.usd("ebs_gp3_gb_month") * Decimal::from(20), Decimal::new(160, 2), "the seed's EBS 20 GB");
    }
}
