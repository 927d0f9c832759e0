//! For each cost that drives an overrun, the options that address that cost, with what they save
//! and their trade-off. Nothing is offered for a cost it does not address: a driver without a
//! known option gets none.

use rust_decimal::Decimal;

use crate::estimate::{Estimate, Saving};
use crate::plan::{Driver, Suggestion, cents};
use crate::prices::PriceTable;

fn s(option: impl Into<String>, saves: impl Into<String>, trade_off: impl Into<String>) -> Suggestion {
    Suggestion { option: option.into(), saves: saves.into(), trade_off: trade_off.into() }
}

fn usd(x: Decimal) -> String {
    format!("${:.2}", cents(x))
}

/// A unit price as the table gives it ($0.045, not $0.05).
fn unit(x: Decimal) -> String {
    format!("${}", x.normalize())
}

const HOURS: i64 = 730;

/// The options for one driver.
pub fn for_driver(saving: Saving, driver: &Driver, estimate: &Estimate, prices: &PriceTable) -> Vec<Suggestion> {
    let over = driver.over;
    let remove_nat = || {
        s(
            "Remove the NAT Gateway (the seed's option: VPC endpoints for AWS services, instance in a public subnet with strict security groups)",
            "−$32/month of hours, and all of its data processing",
            "Reduced security",
        )
    };
    match saving {
        Saving::Ec2 => {
            let pct = |p: i64| format!("−{p} % on EC2 (≈ −{})", usd(driver.actual * Decimal::new(p, 2)));
            let mut out = vec![
                s("Reserved Instance (1 year)", pct(30), "Commitment"),
                s("Spot Instance", pct(60), "Interruption risk (spot-recovery replaces the instance)"),
            ];
            if estimate.lines.iter().any(|l| l.name.contains("t3.small")) {
                out.push(s("Use t3.micro", "−$7/month", "Less headroom"));
            }
            out
        }
        Saving::Ebs => vec![s(
            "Delete volumes that are neither the gateway's root nor its data volume (unattached ones: `aws ec2 describe-volumes --filters Name=status,Values=available`)",
            format!("the {} over, at $0.08/GB-month of gp3", usd(over)),
            "None for a volume nobody uses; snapshot it first if unsure",
        )],
        Saving::Nat => vec![
            s(
                "Delete NAT Gateways beyond the stack's one (`aws ec2 describe-nat-gateways`): hours above the expected figure mean more than one ran",
                format!("the {} over", usd(over)),
                "None, unless another workload routes through it",
            ),
            remove_nat(),
        ],
        Saving::NatData => {
            let nat_gb = prices.usd("nat_gateway_gb");
            let gb = (driver.actual / nat_gb).round();
            let endpoint_month = prices.usd("vpc_interface_endpoint_hour") * Decimal::from(HOURS);
            let break_even = (endpoint_month / (nat_gb - prices.usd("vpc_interface_endpoint_gb"))).round();
            vec![
                s(
                    "An S3 gateway endpoint on the private route table (free): the instance's backups and restores reach S3 without the NAT",
                    format!(
                        "the S3 share of this month's {gb} GB ({} at {}/GB processed); traffic to Anthropic, Telegram and package registries stays on the NAT whatever endpoints exist, and the bill does not say which share is which: the stack's VPC Flow Logs do (README, cost-check: the Logs Insights query)",
                        usd(driver.actual),
                        unit(nat_gb)
                    ),
                    "None in cost; give the endpoint a policy that allows only the suite's buckets",
                ),
                s(
                    "Interface endpoints for the AWS APIs the instance calls (Secrets Manager, SSM, CloudWatch Logs, KMS)",
                    format!(
                        "worth it only above {break_even} GB a month through each ({}/month per endpoint and AZ plus {}/GB, against the NAT's {}/GB)",
                        usd(endpoint_month),
                        unit(prices.usd("vpc_interface_endpoint_gb")),
                        unit(nat_gb)
                    ),
                    format!("{} a month for each endpoint even when idle", usd(endpoint_month)),
                ),
                remove_nat(),
            ]
        }
        Saving::Alb => vec![
            s(
                "Delete load balancers beyond the stack's one (`aws elbv2 describe-load-balancers`): hours above the expected figure mean more than one ran",
                format!("the {} over", usd(over)),
                "None, unless another workload uses it",
            ),
            budget_tier(),
        ],
        Saving::Lcu => {
            let lcu_hours = (driver.actual / prices.usd("alb_lcu_hour")).round();
            vec![
                s(
                    "A lower per-client WAF rate limit (RateLimit), or a geo-block (GeoBlockCountries), if one client or region caused the LCUs (the ALB's ConsumedLCUs and NewConnectionCount metrics show when)",
                    format!(
                        "part of this month's {lcu_hours} LCU-hours ({} at {}/LCU-hour)",
                        usd(driver.actual),
                        unit(prices.usd("alb_lcu_hour"))
                    ),
                    "Legitimate bursts are throttled too",
                ),
                budget_tier(),
            ]
        }
        Saving::PublicIpv4 => {
            let per = prices.usd("public_ipv4_hour") * Decimal::from(HOURS);
            let extra = (over / per).round().max(Decimal::ONE);
            let needs = if estimate.lines.iter().any(|l| l.name == "Elastic IP") {
                "the budget tier needs exactly one: the instance's Elastic IP that the DNS record points to"
            } else {
                "the full tier needs three: the NAT Gateway's Elastic IP and the ALB's address in each of its two subnets"
            };
            vec![s(
                format!(
                    "Release public IPv4 addresses the tier does not need (`aws ec2 describe-addresses`; AWS charges {}/month for every public IPv4 address, attached or idle); {needs}",
                    usd(per)
                ),
                format!("{} a month per address; the overrun is about {extra} address(es)", usd(per)),
                "None for an address nothing uses",
            )]
        }
        Saving::Waf => vec![s(
            "Remove web ACLs and rules beyond the stack's one ACL and rate-limit rule (plus geo-block when set)",
            format!("$5/month per web ACL, $1 per rule; the {} over", usd(over)),
            "Less filtering in front of the gateway",
        )],
        Saving::VendedLogs => vec![s(
            "Flow Logs of rejected traffic only (TrafficType REJECT), or shorter WAF logging",
            format!("most of the {} over ($0.50/GB ingested)", usd(over)),
            "No record of accepted connections: the NAT-data share analysis needs them",
        )],
        Saving::S3 => vec![s(
            "Expire noncurrent backup versions sooner (the backup bucket's lifecycle) or keep fewer backups",
            format!(
                "the {} over; Cost Explorer does not split current from noncurrent versions (S3 Storage Lens or `aws s3api list-object-versions` does)",
                usd(over)
            ),
            "Fewer restore points",
        )],
        Saving::Snapshots => vec![
            s(
                "Untag a volume that should not be snapshotted (a forgotten large volume carrying the snapshot tag); its snapshots then expire by retention",
                format!("the {} over, at $0.05/GB-month of snapshot", usd(over)),
                "That volume is no longer backed up",
            ),
            s("Shorter snapshot retention (the Retention* parameters)", "part of the overrun", "Fewer restore points"),
        ],
        Saving::DataTransfer => vec![s(
            "Find what the instance sends out (the stack's VPC Flow Logs, bytes by destination) and stop what should not leave",
            format!(
                "the {} of data transfer out (the first 100 GB a month of the account are free)",
                usd(driver.actual)
            ),
            "None for traffic nobody needs",
        )],
    }
}

fn budget_tier() -> Suggestion {
    s(
        "The budget tier: no ALB, nginx with Let's Encrypt on the instance",
        "−$16.20/month and every LCU",
        "The instance is in a public subnet and AWS WAF cannot attach to it (nginx rate limit instead)",
    )
}
