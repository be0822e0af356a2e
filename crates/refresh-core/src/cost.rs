//! The price table: the one place list prices live, with the date they were read.
//!
//! Used by the benchmark's bill of a refresh. Prices are on-demand list prices for one
//! region; a class or region not listed has no estimate rather than a guessed one.

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
    fn orchestration_adds_its_three_parts() {
        // 1,000 transitions, 1M requests, 8,000 s at 128 MB.
        let bill = orchestration(1_000, 1_000_000, 8_000.0);
        assert!((bill - (0.025 + 0.20 + 1_000.0 * 0.000_013_333_4)).abs() < 1e-9, "{bill}");
    }
}
