//! The price table: the one place list prices live, with the date they were read.
//!
//! Every finished run's history row carries an estimate made from it, and the benchmark's
//! bill of a refresh uses it too. Prices are on-demand list prices; a class or region not
//! listed has no clone price rather than a guessed one.

use serde::{Deserialize, Serialize};

/// When the prices below were entered from the AWS pricing pages. Check them before
/// relying on an estimate: AWS changes prices, and this table does not follow.
pub const PRICES_AS_OF: &str = "2026-11-22";

/// Where each figure below was read (US East (N. Virginia), on-demand).
pub(crate) const RDS_POSTGRES_PRICES: &str =
    "https://aws.amazon.com/rds/postgresql/pricing/ (On-Demand, Single-AZ deployment)";
pub(crate) const AURORA_STANDARD_PRICES: &str =
    "https://aws.amazon.com/rds/aurora/pricing/ (PostgreSQL-Compatible, On-Demand, Aurora Standard)";
pub(crate) const AURORA_IO_OPTIMIZED_PRICES: &str =
    "https://aws.amazon.com/rds/aurora/pricing/ (PostgreSQL-Compatible, On-Demand, Aurora I/O-Optimized)";

/// Step Functions standard workflows, per state transition
/// (https://aws.amazon.com/step-functions/pricing/, Standard workflows).
pub const STEP_FUNCTIONS_PER_TRANSITION: f64 = 0.025 / 1_000.0;
/// Lambda on arm64 (Graviton), per GB-second, and per request
/// (https://aws.amazon.com/lambda/pricing/, Arm).
pub(crate) const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;
pub(crate) const LAMBDA_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
/// Every function is deployed with 128 MB.
pub(crate) const LAMBDA_MEMORY_GB: f64 = 0.125;
/// Aurora Standard storage I/O, per request ([`AURORA_STANDARD_PRICES`]).
pub(crate) const AURORA_STANDARD_PER_IO: f64 = 0.20 / 1_000_000.0;

/// Backup storage (manual snapshots, such as a shared snapshot copied in), per GB-month
/// in US East (N. Virginia) ([`RDS_POSTGRES_PRICES`], "Backup Storage"); AWS prorates a
/// month as 730 hours.
pub(crate) const SNAPSHOT_STORAGE_PER_GB_MONTH: f64 = 0.095;
const HOURS_PER_MONTH: f64 = 730.0;

/// A snapshot copied in for the clone: its size (unknown when RDS did not say) and how long
/// it was kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CopyUse {
    pub gb: Option<i32>,
    pub seconds: i64,
}

/// What keeping `copy` cost, when its size and the region's price are known.
pub(crate) fn copy_storage(copy: CopyUse, region: &str) -> Option<f64> {
    let gb = f64::from(copy.gb?);
    (region == "us-east-1")
        .then(|| gb * SNAPSHOT_STORAGE_PER_GB_MONTH * copy.seconds as f64 / 3_600.0 / HOURS_PER_MONTH)
}

/// Which price list an instance class is read from. Aurora's two storage configurations
/// price the same class differently: I/O-Optimized charges more per hour and nothing per
/// I/O request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    RdsPostgres,
    AuroraStandard,
    AuroraIoOptimized,
}

impl Engine {
    /// Aurora's storage configuration from the cluster's `StorageType` (`aurora-iopt1`
    /// is I/O-Optimized; `aurora`, or nothing, is Standard).
    pub fn aurora(storage_type: Option<&str>) -> Self {
        if storage_type == Some("aurora-iopt1") { Self::AuroraIoOptimized } else { Self::AuroraStandard }
    }

    /// The page this engine's instance prices were read from.
    pub(crate) fn price_source(self) -> &'static str {
        match self {
            Self::RdsPostgres => RDS_POSTGRES_PRICES,
            Self::AuroraStandard => AURORA_STANDARD_PRICES,
            Self::AuroraIoOptimized => AURORA_IO_OPTIMIZED_PRICES,
        }
    }
}

/// On-demand, single-AZ, PostgreSQL, per instance-hour, US East (N. Virginia); each row's
/// page is its engine's [`Engine::price_source`].
const US_EAST_1: &[(Engine, &str, f64)] = &[
    (Engine::RdsPostgres, "db.t4g.medium", 0.065),
    (Engine::RdsPostgres, "db.r6g.large", 0.225),
    (Engine::RdsPostgres, "db.r6g.xlarge", 0.45),
    (Engine::RdsPostgres, "db.r6g.2xlarge", 0.899),
    (Engine::RdsPostgres, "db.r6g.4xlarge", 1.798),
    (Engine::AuroraStandard, "db.r6g.large", 0.26),
    (Engine::AuroraStandard, "db.r6g.xlarge", 0.519),
    (Engine::AuroraStandard, "db.r6g.2xlarge", 1.038),
    (Engine::AuroraStandard, "db.r6g.4xlarge", 2.076),
    (Engine::AuroraIoOptimized, "db.r6g.large", 0.338),
    (Engine::AuroraIoOptimized, "db.r6g.xlarge", 0.675),
    (Engine::AuroraIoOptimized, "db.r6g.2xlarge", 1.349),
    (Engine::AuroraIoOptimized, "db.r6g.4xlarge", 2.699),
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
pub(crate) const MINIMUM_BILLED_SECONDS: i64 = 600;

/// What one execution used of Step Functions and Lambda, read from its history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub transitions: u64,
    pub lambda_invocations: u64,
    pub lambda_seconds: f64,
}

/// The clone's part of a run, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CloneUse<'a> {
    /// No clone was made.
    None,
    /// A clone existed for `seconds`; its class may be unknown (a purge found a clone that
    /// never reached the state): then its price is unknown too, never 0.
    Billed { class: Option<&'a str>, seconds: i64 },
}

/// The estimated cost of one run, at the list prices of `prices_as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub prices_as_of: String,
    pub region: String,
    pub clone_class: Option<String>,
    pub clone_hours: f64,
    /// Unknown when the table does not list the class in the region, or the class is unknown.
    pub clone_hourly_usd: Option<f64>,
    pub clone_usd: Option<f64>,
    /// The page the clone's hourly price was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_price_source: Option<String>,
    /// Unknown when the execution's history could not be read.
    pub usage: Option<Usage>,
    pub orchestration_usd: Option<f64>,
    /// The sum, when both parts are known.
    pub total_usd: Option<f64>,
    /// What the estimate leaves out, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_included: Option<String>,
    /// The storage of a shared snapshot copied in for the clone, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_copy: Option<CopyCost>,
}

/// A snapshot copy's storage: GB-hours, and their price (each unknown when the copy's
/// size, or the region's price, is).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyCost {
    pub gb_hours: Option<f64>,
    pub usd: Option<f64>,
}

impl Estimate {
    pub(crate) fn new(engine: Engine, clone: CloneUse<'_>, region: &str, usage: Option<Usage>) -> Self {
        let (class, billed, clone_hourly_usd) = match clone {
            CloneUse::None => (None, 0, Some(0.0)),
            CloneUse::Billed { class, seconds } => (
                class,
                if seconds > 0 { seconds.max(MINIMUM_BILLED_SECONDS) } else { 0 },
                class.and_then(|class| instance_hour(engine, class, region)),
            ),
        };
        let clone_hours = billed as f64 / 3_600.0;
        let clone_usd = clone_hourly_usd.map(|price| price * clone_hours);
        let orchestration_usd = usage.map(|u| orchestration(u.transitions, u.lambda_invocations, u.lambda_seconds));
        let had_clone = matches!(clone, CloneUse::Billed { .. });
        Self {
            prices_as_of: PRICES_AS_OF.into(),
            region: region.into(),
            clone_class: class.map(str::to_string),
            clone_hours,
            clone_hourly_usd,
            clone_usd,
            clone_price_source: (had_clone && clone_hourly_usd.is_some()).then(|| engine.price_source().to_string()),
            usage,
            orchestration_usd,
            total_usd: clone_usd.zip(orchestration_usd).map(|(c, o)| c + o),
            // Aurora Standard bills storage I/O per request, and a full logical dump reads
            // every table page once: on a large database that can cost more than the
            // instance. Nothing here knows how many pages were read.
            not_included: (engine == Engine::AuroraStandard && had_clone).then(|| {
                format!(
                    "Aurora storage I/O (Aurora Standard bills ${:.2} per million requests; a full dump reads every \
                     table page once)",
                    AURORA_STANDARD_PER_IO * 1_000_000.0
                )
            }),
            snapshot_copy: None,
        }
    }

    /// Adds the storage of the snapshot copied in for the clone, if there was one: the
    /// total is then known only when that part is.
    pub(crate) fn with_copy(mut self, copy: Option<CopyUse>) -> Self {
        let Some(copy) = copy else { return self };
        let usd = copy_storage(copy, &self.region);
        let gb_hours = copy.gb.map(|gb| f64::from(gb) * copy.seconds as f64 / 3_600.0);
        self.snapshot_copy = Some(CopyCost { gb_hours, usd });
        self.total_usd = self.total_usd.zip(usd).map(|(t, c)| t + c);
        self
    }

    /// One line for people: "$2.03 (clone db.r6g.xlarge 4.50 h x $0.45/h; ...)".
    pub fn describe(&self) -> String {
        let clone = match (&self.clone_class, self.clone_hourly_usd) {
            (None, Some(_)) => "no clone".to_string(),
            (None, None) => format!("clone of unknown class {:.2} h, price unknown", self.clone_hours),
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
        let copy = match self.snapshot_copy {
            None => String::new(),
            Some(CopyCost { gb_hours: Some(gb_hours), usd: Some(usd) }) => {
                format!("; snapshot copy {gb_hours:.1} GB-h x ${SNAPSHOT_STORAGE_PER_GB_MONTH}/GB-month = ${usd:.4}")
            }
            Some(CopyCost { gb_hours: Some(gb_hours), usd: None }) => {
                format!("; snapshot copy {gb_hours:.1} GB-h, no list price in {}", self.region)
            }
            Some(CopyCost { gb_hours: None, .. }) => "; snapshot copy of unknown size, price unknown".to_string(),
        };
        format!("{total} ({clone}{copy}; {orchestration}{left_out}; list prices of {})", self.prices_as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_copy_costs_its_storage_for_as_long_as_it_is_kept() {
        let day = CopyUse { gb: Some(730), seconds: 3_600 };
        let usd = copy_storage(day, "us-east-1").unwrap_or_default();
        assert!((usd - 0.095).abs() < 1e-12, "730 GB for one hour of a 730-hour month: {usd}");
        assert_eq!(copy_storage(day, "eu-west-1"), None);
        assert_eq!(copy_storage(CopyUse { gb: None, seconds: 3_600 }, "us-east-1"), None);
        let usage = Some(Usage { transitions: 0, lambda_invocations: 0, lambda_seconds: 0.0 });
        let base = Estimate::new(Engine::RdsPostgres, CloneUse::None, "us-east-1", usage);
        assert_eq!(base.clone().with_copy(None), base, "no copy, nothing added");
        let with = base.clone().with_copy(Some(day));
        assert!(with.total_usd.is_some_and(|t| (t - 0.095).abs() < 1e-12), "{with:?}");
        assert!(with.describe().contains("snapshot copy 730.0 GB-h"), "{}", with.describe());
        let unknown = base.with_copy(Some(CopyUse { gb: None, seconds: 60 }));
        assert_eq!(unknown.total_usd, None, "a part unknown leaves the total unknown");
        assert!(unknown.describe().contains("unknown size"), "{}", unknown.describe());
    }

    #[test]
    fn known_classes_have_a_price_and_others_none() {
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.r6g.xlarge", "us-east-1"), Some(0.45));
        assert_eq!(instance_hour(Engine::AuroraStandard, "db.r6g.xlarge", "us-east-1"), Some(0.519));
        assert_eq!(instance_hour(Engine::AuroraIoOptimized, "db.r6g.xlarge", "us-east-1"), Some(0.675));
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.r6g.xlarge", "eu-west-1"), None);
        assert_eq!(instance_hour(Engine::RdsPostgres, "db.x2g.large", "us-east-1"), None);
        assert_eq!(Engine::aurora(Some("aurora-iopt1")), Engine::AuroraIoOptimized);
        assert_eq!(Engine::aurora(Some("aurora")), Engine::AuroraStandard);
        assert_eq!(Engine::aurora(None), Engine::AuroraStandard);
    }

    fn billed(class: &str, seconds: i64) -> CloneUse<'_> {
        CloneUse::Billed { class: Some(class), seconds }
    }

    const USAGE: Usage = Usage { transitions: 100, lambda_invocations: 40, lambda_seconds: 1_000.0 };

    #[test]
    fn an_estimate_bills_at_least_ten_minutes_and_says_what_it_does_not_know() {
        let e = Estimate::new(Engine::RdsPostgres, billed("db.r6g.xlarge", 4 * 3_600), "us-east-1", Some(USAGE));
        assert!((e.clone_usd.unwrap() - 1.8).abs() < 1e-9);
        let total = 1.8 + orchestration(100, 40, 1_000.0);
        assert!((e.total_usd.unwrap() - total).abs() < 1e-9);
        assert!(e.describe().starts_with("$1.80 (clone db.r6g.xlarge 4.00 h x $0.45/h;"), "{}", e.describe());
        assert_eq!(e.clone_price_source.as_deref(), Some(RDS_POSTGRES_PRICES), "every figure says where it is from");

        let short = Estimate::new(Engine::RdsPostgres, billed("db.r6g.xlarge", 60), "us-east-1", None);
        assert!((short.clone_hours - 600.0 / 3_600.0).abs() < 1e-9);
        assert_eq!(short.total_usd, None);
        assert!(short.describe().contains("Step Functions and Lambda unknown"));

        let unlisted = Estimate::new(Engine::AuroraStandard, billed("db.x2g.large", 3_600), "eu-west-1", Some(USAGE));
        assert_eq!((unlisted.clone_usd, unlisted.clone_price_source.as_deref()), (None, None));
        assert!(unlisted.describe().contains("no list price for it in eu-west-1"), "{}", unlisted.describe());

        // Serverless v2 bills by capacity used, which no list price per hour can say.
        let serverless =
            Estimate::new(Engine::AuroraStandard, billed("db.serverless", 3_600), "us-east-1", Some(USAGE));
        assert_eq!((serverless.clone_usd, serverless.total_usd), (None, None), "unknown, never 0");
        assert!(serverless.describe().contains("no list price"), "{}", serverless.describe());
        assert!(serverless.describe().contains("Aurora storage I/O"), "said, not hidden: {}", serverless.describe());
        let rds = Estimate::new(Engine::RdsPostgres, billed("db.r6g.xlarge", 3_600), "us-east-1", Some(USAGE));
        assert!(!rds.describe().contains("not included"), "{}", rds.describe());

        let no_clone = Estimate::new(Engine::RdsPostgres, CloneUse::None, "us-east-1", Some(USAGE));
        assert_eq!(no_clone.clone_hours, 0.0);
        assert!((no_clone.total_usd.unwrap() - orchestration(100, 40, 1_000.0)).abs() < 1e-12);
        assert!(no_clone.describe().contains("(no clone;"), "{}", no_clone.describe());
    }

    #[test]
    fn a_clone_of_unknown_class_is_priced_unknown_never_zero() {
        let e = Estimate::new(
            Engine::RdsPostgres,
            CloneUse::Billed { class: None, seconds: 3_600 },
            "us-east-1",
            Some(USAGE),
        );
        assert_eq!((e.clone_hourly_usd, e.clone_usd, e.total_usd), (None, None, None));
        assert!(e.describe().contains("clone of unknown class 1.00 h, price unknown"), "{}", e.describe());
    }

    #[test]
    fn aurora_io_optimized_is_priced_from_its_own_column_with_no_io_left_out() {
        let standard = Estimate::new(Engine::AuroraStandard, billed("db.r6g.large", 3_600), "us-east-1", Some(USAGE));
        let optimized =
            Estimate::new(Engine::AuroraIoOptimized, billed("db.r6g.large", 3_600), "us-east-1", Some(USAGE));
        assert_eq!((standard.clone_hourly_usd, optimized.clone_hourly_usd), (Some(0.26), Some(0.338)));
        assert!(standard.describe().contains("$0.20 per million requests"), "{}", standard.describe());
        assert_eq!(optimized.not_included, None, "I/O-Optimized bills no I/O requests");
        assert_eq!(optimized.clone_price_source.as_deref(), Some(AURORA_IO_OPTIMIZED_PRICES));
    }

    #[test]
    fn the_line_for_people_names_every_part() {
        let e = Estimate::new(Engine::RdsPostgres, billed("db.r6g.xlarge", 2 * 3_600), "us-east-1", Some(USAGE));
        let orchestration = orchestration(100, 40, 1_000.0);
        assert_eq!(
            e.describe(),
            format!(
                "${:.2} (clone db.r6g.xlarge 2.00 h x $0.45/h; Step Functions and Lambda ${orchestration:.4}: 100 \
                 transitions, 40 invocations; list prices of {PRICES_AS_OF})",
                0.9 + orchestration
            )
        );
    }

    #[test]
    fn orchestration_adds_its_three_parts() {
        // 1,000 transitions, 1M requests, 8,000 s at 128 MB.
        let bill = orchestration(1_000, 1_000_000, 8_000.0);
        assert!((bill - (0.025 + 0.20 + 1_000.0 * 0.000_013_333_4)).abs() < 1e-9, "{bill}");
    }
}
