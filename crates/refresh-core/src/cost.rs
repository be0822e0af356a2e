//! The price table: the one place list prices live, with the date they were read.
//!
//! Every finished run's history row carries an estimate made from it, and the benchmark's
//! bill of a refresh uses it too. Prices are on-demand list prices; a class or region not
//! listed has no clone price rather than a guessed one.

use serde::{Deserialize, Serialize};

/// When the prices below were entered from the AWS pricing pages. Check them before
/// relying on an estimate: AWS changes prices, and this table does not follow.
pub const PRICES_AS_OF: &str = "2026-11-22";

/// Step Functions standard workflows, per state transition.
pub const STEP_FUNCTIONS_PER_TRANSITION: f64 = 0.025 / 1_000.0;
/// Lambda on arm64 (Graviton), per GB-second, and per request.
pub const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
/// Every function is deployed with 128 MB.
pub const LAMBDA_MEMORY_GB: f64 = 0.125;

/// Which price list an instance class is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    RdsPostgres,
    AuroraPostgres,
}

/// On-demand, single-AZ, PostgreSQL, per instance-hour, US East (N. Virginia).
const US_EAST_1: &[(Engine, &str, f64)] = &[
    (Engine::RdsPostgres, "db.t4g.medium", 0.065),
    (Engine::RdsPostgres, "db.r6g.large", 0.225),
    (Engine::RdsPostgres, "db.r6g.xlarge", 0.45),
    (Engine::RdsPostgres, "db.r6g.2xlarge", 0.899),
    (Engine::RdsPostgres, "db.r6g.4xlarge", 1.798),
    (Engine::AuroraPostgres, "db.r6g.large", 0.26),
    (Engine::AuroraPostgres, "db.r6g.xlarge", 0.519),
    (Engine::AuroraPostgres, "db.r6g.2xlarge", 1.038),
    (Engine::AuroraPostgres, "db.r6g.4xlarge", 2.076),
];

/// The list price of one clone instance-hour, when this table knows it.
pub fn instance_hour(engine: Engine, class: &str, region: &str) -> Option<f64> {
    if region != "us-east-1" {
        return None;
    }
    US_EAST_1.iter().find(|(e, c, _)| *e == engine && *c == class).map(|(_, _, price)| *price)
}

/// The orchestration's part of a bill: transitions, Lambda requests and GB-seconds.
pub fn orchestration(transitions: u64, invocations: u64, lambda_seconds: f64) -> f64 {
    transitions as f64 * STEP_FUNCTIONS_PER_TRANSITION
        + invocations as f64 * LAMBDA_PER_REQUEST
        + lambda_seconds * LAMBDA_MEMORY_GB * LAMBDA_ARM_PER_GB_SECOND
}

/// RDS bills at least ten minutes after an instance is created.
pub const MINIMUM_BILLED_SECONDS: i64 = 600;

/// What one execution used of Step Functions and Lambda, read from its history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub transitions: u64,
    pub lambda_invocations: u64,
    pub lambda_seconds: f64,
}

/// The estimated cost of one run, at the list prices of `prices_as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub prices_as_of: String,
    pub region: String,
    pub clone_class: Option<String>,
    pub clone_hours: f64,
    /// Unknown when the table does not list the class in the region.
    pub clone_hourly_usd: Option<f64>,
    pub clone_usd: Option<f64>,
    /// Unknown when the execution's history could not be read.
    pub usage: Option<Usage>,
    pub orchestration_usd: Option<f64>,
    /// The sum, when both parts are known.
    pub total_usd: Option<f64>,
    /// What the estimate leaves out, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_included: Option<String>,
}

impl Estimate {
    /// `clone_seconds` is how long the clone existed (0 without a clone).
    pub fn new(engine: Engine, class: Option<&str>, region: &str, clone_seconds: i64, usage: Option<Usage>) -> Self {
        let billed = if clone_seconds > 0 { clone_seconds.max(MINIMUM_BILLED_SECONDS) } else { 0 };
        let clone_hours = billed as f64 / 3_600.0;
        let clone_hourly_usd = match class {
            Some(class) => instance_hour(engine, class, region),
            None => Some(0.0),
        };
        let clone_usd = clone_hourly_usd.map(|price| price * clone_hours);
        let orchestration_usd = usage.map(|u| orchestration(u.transitions, u.lambda_invocations, u.lambda_seconds));
        Self {
            prices_as_of: PRICES_AS_OF.into(),
            region: region.into(),
            clone_class: class.map(str::to_string),
            clone_hours,
            clone_hourly_usd,
            clone_usd,
            usage,
            orchestration_usd,
            total_usd: clone_usd.zip(orchestration_usd).map(|(c, o)| c + o),
            // Aurora Standard bills storage I/O per request, and a full logical dump reads
            // the whole volume: on a large database that can cost more than the instance.
            not_included: (engine == Engine::AuroraPostgres && class.is_some())
                .then(|| "Aurora storage I/O (billed per request on Aurora Standard)".to_string()),
        }
    }

    /// One line for people: "$2.03 (clone db.r6g.xlarge 4.50 h x $0.45/h; ...)".
    pub fn describe(&self) -> String {
        let clone = match (&self.clone_class, self.clone_hourly_usd) {
            (None, _) => "no clone".to_string(),
            (Some(class), Some(price)) => format!("clone {class} {:.2} h x ${price}/h", self.clone_hours),
            (Some(class), None) => {
                format!("clone {class} {:.2} h, no list price for it in {}", self.clone_hours, self.region)
            }
        };
        let orchestration = match (self.orchestration_usd, self.usage) {
            (Some(usd), Some(u)) => format!(
                "Step Functions and Lambda ${usd:.4}: {} transitions, {} invocations",
                u.transitions, u.lambda_invocations
            ),
            _ => "Step Functions and Lambda unknown".to_string(),
        };
        let total = self.total_usd.map_or_else(|| "partly unknown".to_string(), |t| format!("${t:.2}"));
        let left_out = self.not_included.as_deref().map(|n| format!("; {n} not included")).unwrap_or_default();
        format!("{total} ({clone}; {orchestration}{left_out}; list prices of {})", self.prices_as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_classes_have_a_price_and_others_none() {
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.r6g.xlarge", "us-east-1"), Some(0.45));
        assert_eq!(instance_hour(Engine::AuroraPostgres, "db.r6g.xlarge", "us-east-1"), Some(0.519));
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.r6g.xlarge", "eu-west-1"), None);
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.x2g.large", "us-east-1"), None);
    }

    #[test]
    fn an_estimate_bills_at_least_ten_minutes_and_says_what_it_does_not_know() {
        let usage = Usage { transitions: 100, lambda_invocations: 40, lambda_seconds: 1_000.0 };
        let e = Estimate::new(Engine::RdsPostgres, Some("db.r6g.xlarge"), "us-east-1", 4 * 3_600, Some(usage));
        assert!((e.clone_usd.unwrap() - 1.8).abs() < 1e-9);
        let total = 1.8 + orchestration(100, 40, 1_000.0);
        assert!((e.total_usd.unwrap() - total).abs() < 1e-9);
        assert!(e.describe().starts_with("$1.80 (clone db.r6g.xlarge 4.00 h x $0.45/h;"), "{}", e.describe());

        let short = Estimate::new(Engine::RdsPostgres, Some("db.r6g.xlarge"), "us-east-1", 60, None);
        assert!((short.clone_hours - 600.0 / 3_600.0).abs() < 1e-9);
        assert_eq!(short.total_usd, None);
        assert!(short.describe().contains("Step Functions and Lambda unknown"));

        let unlisted = Estimate::new(Engine::AuroraPostgres, Some("db.x2g.large"), "eu-west-1", 3_600, Some(usage));
        assert_eq!(unlisted.clone_usd, None);
        assert!(unlisted.describe().contains("no list price for it in eu-west-1"), "{}", unlisted.describe());

        // Serverless v2 bills by capacity used, which no list price per hour can say.
        let serverless = Estimate::new(Engine::AuroraPostgres, Some("db.serverless"), "us-east-1", 3_600, Some(usage));
        assert_eq!((serverless.clone_usd, serverless.total_usd), (None, None), "unknown, never 0");
        assert!(serverless.describe().contains("no list price"), "{}", serverless.describe());
        assert!(serverless.describe().contains("Aurora storage I/O"), "said, not hidden: {}", serverless.describe());
        let rds = Estimate::new(Engine::RdsPostgres, Some("db.r6g.xlarge"), "us-east-1", 3_600, Some(usage));
        assert!(!rds.describe().contains("not included"), "{}", rds.describe());

        let no_clone = Estimate::new(Engine::RdsPostgres, None, "us-east-1", 0, Some(usage));
        assert_eq!(no_clone.clone_hours, 0.0);
        assert!((no_clone.total_usd.unwrap() - orchestration(100, 40, 1_000.0)).abs() < 1e-12);
    }

    #[test]
    fn orchestration_adds_its_three_parts() {
        // 1,000 transitions, 1M requests, 8,000 s at 128 MB.
        let bill = orchestration(1_000, 1_000_000, 8_000.0);
        assert!((bill - (0.025 + 0.20 + 1_000.0 * 0.000_013_333_4)).abs() < 1e-9, "{bill}");
    }
}
