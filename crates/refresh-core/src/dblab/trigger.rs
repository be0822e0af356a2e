//! Starting a refresh: what `patch-dblab` decides from what the engine shows, before it
//! changes the engine's config and after the engine refuses the trigger. (Following the
//! refresh afterwards is `progress`.)

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::progress::started_after;
use super::status::{BUSY_STATUSES, RUNNING_STATUSES, Retrieving};

/// What to do with the engine as found before the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The engine runs, or has run since the clone existed, a refresh from this run's clone:
    /// an earlier attempt of this run started it and its answer was lost. Follow it.
    OursUnderWay,
    /// Busy with a refresh this run did not start.
    Busy,
    /// Free: patch the config and trigger.
    Free,
}

/// `config_is_ours`: the engine's effective dump source is this run's clone, which only
/// an attempt of this run can have configured (the clone's host is unique to the run).
/// `clone_since`: the earliest the engine's clock may have read when the clone existed.
pub fn found(retrieving: &Retrieving, config_is_ours: bool, clone_since: OffsetDateTime) -> Found {
    let running = RUNNING_STATUSES.contains(&retrieving.status.as_str());
    if config_is_ours && (running || started_after(retrieving.last_refresh(), clone_since)) {
        Found::OursUnderWay
    } else if BUSY_STATUSES.contains(&retrieving.status.as_str()) {
        Found::Busy
    } else {
        Found::Free
    }
}

/// Dump jobs for a clone class: half its vCPUs, at least one.
pub fn dump_parallel_jobs(instance_class: &str) -> u32 {
    let size = instance_class.rsplit('.').next().unwrap_or_default();
    let vcpus = match size {
        "micro" | "small" | "medium" | "large" => 2,
        "xlarge" => 4,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<u32>().ok()).map_or(2, |n| n * 4),
    };
    (vcpus / 2).max(1)
}

/// How the dump runs: with how many jobs, and whether the clone is released once it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpPlan {
    pub jobs: u32,
    pub release_after_dump: bool,
}

/// The engine refuses a parallel dump with `immediateRestore`, and then dumps and restores
/// at once: the end of the dump cannot be told, so the clone stays to the end.
pub fn dump_plan(instance_class: &str, immediate_restore: bool, delete_after_dump: bool) -> DumpPlan {
    DumpPlan {
        jobs: if immediate_restore { 1 } else { dump_parallel_jobs(instance_class) },
        release_after_dump: delete_after_dump && !immediate_restore,
    }
}

/// Whether a refresh the engine runs although this run's trigger was refused can be this
/// run's: only if its jobs read this run's clone (`config_is_ours`), which is so only if
/// they were built after this run's config change. `lastRefresh` is stamped when the jobs
/// are built, truncated to the second; `posted_by` is the latest the engine's clock may
/// have read when the change was posted (`EngineClock::latest`). A refresh stamped in that
/// second or earlier may have been built before the change, from the previous source, and
/// is never taken as this run's.
pub fn refused_but_ours(config_is_ours: bool, last_refresh: &str, posted_by: OffsetDateTime) -> bool {
    let Ok(started) = OffsetDateTime::parse(last_refresh, &Rfc3339) else { return false };
    let posted_second = posted_by.replace_nanosecond(0).unwrap_or(posted_by);
    config_is_ours && started >= posted_second + time::Duration::seconds(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dblab::status::Retrieving;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-22 05:00:00.400 UTC);

    fn engine(status: &str, last_refresh: Option<&str>) -> Retrieving {
        serde_json::from_value(serde_json::json!({"mode": "logical", "status": status, "lastRefresh": last_refresh}))
            .expect("a retrieval state")
    }

    #[test]
    fn dump_jobs_follow_the_class() {
        assert_eq!(dump_parallel_jobs("db.t3.medium"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.large"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.xlarge"), 2);
        assert_eq!(dump_parallel_jobs("db.r6g.2xlarge"), 4);
        assert_eq!(dump_parallel_jobs("db.r6g.16xlarge"), 32);
        assert_eq!(dump_parallel_jobs("db.serverless"), 1);
    }

    #[test]
    fn a_refresh_is_followed_only_when_it_reads_this_runs_clone() {
        let clone_since = NOW;
        for status in ["refreshing", "snapshotting", "renewed"] {
            assert_eq!(found(&engine(status, None), true, clone_since), Found::OursUnderWay, "{status}");
            assert_eq!(found(&engine(status, None), false, clone_since), Found::Busy, "{status}: not ours");
        }
        // Over since the clone existed, from this run's config: an earlier attempt's.
        let ended = engine("finished", Some("2026-11-22T05:01:00Z"));
        assert_eq!(found(&ended, true, clone_since), Found::OursUnderWay);
        assert_eq!(found(&ended, false, clone_since), Found::Free);
        // Over before the clone existed: another run's, whatever the config says now.
        let old = engine("finished", Some("2026-11-21T05:00:00Z"));
        assert_eq!(found(&old, true, clone_since), Found::Free);
        assert_eq!(found(&engine("pending", None), true, clone_since), Found::Busy, "pending takes no trigger");
        assert_eq!(found(&engine("failed", None), false, clone_since), Found::Free);
    }

    #[test]
    fn immediate_restore_dumps_with_one_job_and_keeps_the_clone() {
        let plan = |immediate, delete| dump_plan("db.r6g.2xlarge", immediate, delete);
        assert_eq!(plan(false, true), DumpPlan { jobs: 4, release_after_dump: true });
        assert_eq!(plan(false, false), DumpPlan { jobs: 4, release_after_dump: false });
        assert_eq!(plan(true, true), DumpPlan { jobs: 1, release_after_dump: false });
        assert_eq!(plan(true, false), DumpPlan { jobs: 1, release_after_dump: false });
    }

    #[test]
    fn only_a_refresh_stamped_after_the_config_changes_second_can_be_this_runs() {
        let posted = NOW;
        assert!(!refused_but_ours(true, "2026-11-22T05:00:00Z", posted), "same second: maybe built before");
        assert!(!refused_but_ours(true, "2026-11-22T04:59:59Z", posted));
        assert!(refused_but_ours(true, "2026-11-22T05:00:01Z", posted));
        assert!(!refused_but_ours(false, "2026-11-22T05:00:01Z", posted), "the config names another source");
        assert!(refused_but_ours(true, "2026-11-22T07:00:01+02:00", posted), "any zone");
        assert!(!refused_but_ours(true, "2026-11-22T06:59:59+02:00", posted));
        assert!(!refused_but_ours(true, "", posted) && !refused_but_ours(true, "soon", posted));
    }
}
