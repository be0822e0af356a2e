//! Starting a refresh: what `patch-dblab` decides from what the engine shows, before it
//! changes the engine's config and after the engine refuses the trigger. (Following the
//! refresh afterwards is `progress`.)

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use tracing::warn;

use super::client::DblabClient;
use super::config::{Api, SourceConnection};
use super::status::{InstanceStatus, Retrieving};
use crate::clock::rfc3339;
use crate::error::RefreshError;

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
/// `pool_known`: the engine shows the pool it refreshes. `posted_by`: the latest the
/// engine's clock may have read when an earlier attempt's config change was answered, as
/// it recorded (`history::ConfigPost`). A refresh is followed only when it is provably this
/// run's (`is_ours`); one over already is not followed but started again (its pool is not
/// known), and a running one that cannot be proven is someone else's.
pub fn found(
    retrieving: &Retrieving,
    pool_known: bool,
    config_is_ours: bool,
    posted_by: Option<OffsetDateTime>,
) -> Found {
    if retrieving.status.is_running()
        && is_ours(retrieving.last_refresh.as_deref(), pool_known, config_is_ours, posted_by)
    {
        Found::OursUnderWay
    } else if retrieving.status.is_busy() {
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

/// How much later than the second of a config change's answer a refresh must be stamped to
/// be provably built after it: one second for the stamp's truncation, one for a clock
/// between the engine and us (a proxy writing its own `Date`) a second behind the engine's.
/// `patch-dblab` triggers this long after the answer, so its own refresh always passes.
pub const PROOF_GAP: time::Duration = time::Duration::seconds(2);

/// Whether a refresh the engine runs is this run's: only if its jobs read this run's clone
/// (`config_is_ours`), which is so only if they were built after this run's config change
/// reached the engine, and the engine shows the pool it refreshes. `lastRefresh` is
/// stamped when the jobs are built, truncated to the second; `posted_by` is the latest the
/// engine's clock read when the change was answered (its `Date`, or `EngineClock::latest`),
/// recorded durably. A refresh stamped less than `PROOF_GAP` after that second may have been
/// built before the change, from the previous source (often production), and without the
/// record nothing proves when the change landed: neither is ever taken as this run's.
pub(crate) fn is_ours(
    last_refresh: Option<&str>,
    pool_known: bool,
    config_is_ours: bool,
    posted_by: Option<OffsetDateTime>,
) -> bool {
    let started = last_refresh.and_then(|started| OffsetDateTime::parse(started, &Rfc3339).ok());
    let (Some(posted_by), Some(started)) = (posted_by, started) else {
        return false;
    };
    let posted_second = posted_by.replace_nanosecond(0).unwrap_or(posted_by);
    config_is_ours && pool_known && started >= posted_second + PROOF_GAP
}

/// Why a busy engine's refresh is not taken as this run's, from what an earlier attempt of
/// this run recorded of its config change (`history::ConfigPost`): asked at `posting_at`,
/// answered by `posted_by` (engine clock). Nothing to add when the config is not this run's.
pub fn busy_detail(
    config_is_ours: bool,
    posting_at: Option<OffsetDateTime>,
    posted_by: Option<OffsetDateTime>,
) -> String {
    match (config_is_ours, posted_by, posting_at) {
        (true, None, Some(at)) => format!(
            "; an earlier attempt of this run posted the engine's config at about {} and its answer never came back: \
             nothing proves the refresh under way was built after that change, so it is not taken as this run's",
            rfc3339(at)
        ),
        (true, Some(by), _) => format!(
            "; the refresh under way cannot be proven this run's: it must have been built after this run's config \
             change was answered ({}, engine clock) and the engine must show its pool",
            rfc3339(by)
        ),
        _ => String::new(),
    }
}

/// What the engine's refusal of this run's trigger (`refused`, a `DblabRejected`) turns out
/// to be, from the engine read again. Not busy: the refusal stands, or the pool it names
/// as taken. Busy with a refresh this run's config change started by itself (only a
/// `pending` engine does, and then its jobs read this run's clone: `is_ours`): the status
/// to follow it from. Busy with anyone else's: `DblabBusy`, whose jobs may have been built
/// with the source configured before (often production).
pub async fn after_refusal(
    client: &DblabClient,
    refused: RefreshError,
    api: Api,
    connection: &SourceConnection,
    posted_by: OffsetDateTime,
    config_posted_at: OffsetDateTime,
) -> Result<InstanceStatus, RefreshError> {
    let now = client.instance_status().await?;
    if !now.retrieving.status.is_busy() {
        now.free_pool()?;
        return Err(refused);
    }
    let last_refresh = now.retrieving.last_refresh.clone();
    let ours_now = client.config_file().await?.effective_source(api).is_ok_and(|s| s.is(connection));
    if is_ours(last_refresh.as_deref(), now.refreshing_pool().is_some(), ours_now, Some(posted_by)) {
        let last_refresh = last_refresh.as_deref().unwrap_or("null");
        warn!(status = %now.retrieving.status, %last_refresh, "the engine started the refresh on the config change; following it");
        return Ok(now);
    }
    Err(RefreshError::DblabBusy {
        status: now.retrieving.status.to_string(),
        detail: format!(
            "; a refresh this run did not start is running (lastRefresh {}, this run changed the engine's config at \
             {}): its jobs may have been built with the source configured before, so it is not taken as this run's \
             refresh; run again once it is over",
            last_refresh.unwrap_or_else(|| "null".to_string()),
            rfc3339(config_posted_at)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dblab::status::Retrieving;

    #[test]
    fn a_busy_engine_is_explained_by_what_this_run_recorded_of_its_config_change() {
        let at = time::macros::datetime!(2026-11-22 04:59:58 UTC);
        let lost = busy_detail(true, Some(at), None);
        assert!(
            lost.contains("posted the engine's config at about 2026-11-22T04:59:58Z and its answer never came back")
        );
        let answered = busy_detail(true, Some(at), Some(NOW));
        assert!(answered.contains("answered (2026-11-22T05:00:00.4Z, engine clock)"), "{answered}");
        assert_eq!(busy_detail(false, Some(at), Some(NOW)), "", "another source's refresh: nothing of ours to say");
        assert_eq!(busy_detail(true, None, None), "", "no change posted yet");
    }

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
    fn a_refresh_is_followed_only_when_it_is_provably_this_runs() {
        let posted = Some(NOW);
        let after = Some("2026-11-22T05:00:02Z");
        for status in ["refreshing", "snapshotting", "renewed"] {
            assert_eq!(found(&engine(status, after), true, true, posted), Found::OursUnderWay, "{status}");
            assert_eq!(found(&engine(status, after), true, false, posted), Found::Busy, "{status}: not ours");
            assert_eq!(found(&engine(status, after), false, true, posted), Found::Busy, "{status}: pool unknown");
            assert_eq!(found(&engine(status, after), true, true, None), Found::Busy, "{status}: no record of the post");
            let close = engine(status, Some("2026-11-22T05:00:01Z"));
            assert_eq!(found(&close, true, true, posted), Found::Busy, "{status}: within the proof's gap");
        }
        // Over already: started again, not followed (its pool is not known).
        assert_eq!(found(&engine("finished", after), true, true, posted), Found::Free);
        assert_eq!(found(&engine("pending", None), true, true, posted), Found::Busy, "pending takes no trigger");
        assert_eq!(found(&engine("failed", None), false, false, None), Found::Free);
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
        let posted = Some(NOW);
        assert!(!is_ours(Some("2026-11-22T05:00:00Z"), true, true, posted), "same second: maybe built before");
        assert!(!is_ours(Some("2026-11-22T05:00:01Z"), true, true, posted), "a clock a second behind could hide it");
        assert!(!is_ours(Some("2026-11-22T04:59:59Z"), true, true, posted));
        assert!(is_ours(Some("2026-11-22T05:00:02Z"), true, true, posted));
        assert!(!is_ours(Some("2026-11-22T05:00:02Z"), true, false, posted), "the config names another source");
        assert!(!is_ours(Some("2026-11-22T05:00:02Z"), false, true, posted), "the pool is not known");
        assert!(!is_ours(Some("2026-11-22T05:00:02Z"), true, true, None), "nothing proves when the change landed");
        assert!(is_ours(Some("2026-11-22T07:00:02+02:00"), true, true, posted), "any zone");
        assert!(!is_ours(Some("2026-11-22T07:00:01+02:00"), true, true, posted));
        assert!(!is_ours(None, true, true, posted) && !is_ours(Some("soon"), true, true, posted));
    }
}
