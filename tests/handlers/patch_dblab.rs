use dblab_emulator::{Settings, Version};
use refresh_core::RefreshError;
use refresh_core::dblab::Refresh;
use refresh_core::poll::PollStatus;
use refresh_core::run::{CloneInstance, Execution};
use refresh_core::watch::Watch;
use refresh_tests::World;
use serde_json::Value;

use crate::{patch_deps, ready_clone};

pub async fn patch(
    w: &World,
    request: &Value,
    execution: &Execution,
    clone: &CloneInstance,
) -> Result<Refresh, RefreshError> {
    // The lock the run took on the engine the preflight found (record's lockEngine).
    let instance_id = w.emulator.settings().instance_id;
    let engine_lock =
        refresh_core::history::engine_lock(instance_id.as_deref(), &w.emulator.url()).expect("an engine lock");
    w.hold_locks(execution, &[request["target"].as_str().unwrap_or_default(), &engine_lock.key]).await;
    let input = ::patch_dblab::Input {
        execution: execution.clone(),
        request: crate::typed(request),
        clone: clone.clone(),
        engine_lock: Some(engine_lock),
    };
    ::patch_dblab::handle(&patch_deps(w), input, Watch::once()).await
}

async fn world_with_clone(settings: Settings) -> (World, Value, Execution, CloneInstance) {
    let w = World::with_engine(settings).await;
    let (_, request, execution) = w.rds_case().await;
    let clone = ready_clone(&w, &request, &execution).await;
    (w, request, execution, clone)
}

#[tokio::test]
async fn points_the_engine_at_the_clone_and_starts_the_refresh() {
    let (w, request, execution, clone) = world_with_clone(Settings { dump_ms: 5_000, ..Settings::default() }).await;
    let before = w.emulator.view();
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();

    let engine = w.emulator.view();
    let endpoint = clone.endpoint.clone().unwrap();
    let source = &engine.dump_sources[0];
    assert_eq!(engine.refreshes_started, 1);
    assert_eq!(
        (source.host.as_str(), source.port.as_str()),
        (endpoint.address.as_str(), endpoint.port.to_string().as_str())
    );
    assert_eq!((source.dbname.as_str(), source.username.as_str()), ("app", "dblab"));
    assert_eq!(source.parallel_jobs, "2", "db.r6g.xlarge has 4 vCPUs: 2 dump jobs");
    assert_eq!(engine.password.as_deref(), Some(w.password.as_str()), "the password arrives byte for byte");

    assert_eq!(refresh.previous_last_refresh, before.last_refresh);
    assert_eq!(refresh.dump_parallel_jobs, 2);
    assert_eq!(refresh.status, PollStatus::Pending);
    assert!(!refresh.seen_start);
    let deadline = refresh.deadline - refresh.triggered_at;
    assert_eq!(deadline, time::Duration::minutes(1), "dblab.timeout");
    w.assert_no_secret(&serde_json::to_string(&refresh).unwrap());
}

#[tokio::test]
async fn a_key_missing_from_the_engine_config_is_reported() {
    let (w, request, execution, clone) =
        world_with_clone(Settings { missing_keys: vec!["dbname".into()], ..Settings::default() }).await;
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabConfigNotApplied");
    assert!(err.to_string().contains("dbname is missing"), "{err}");
    assert_eq!(w.emulator.view().refreshes_started, 0, "no refresh from a half-applied config");
}

#[tokio::test]
async fn a_missing_port_is_the_engines_default_not_a_mismatch() {
    // The engine dumps from 5432 when server.yml has no port, and the clone listens there.
    let (w, request, execution, clone) =
        world_with_clone(Settings { missing_keys: vec!["port".into()], dump_ms: 5_000, ..Settings::default() }).await;
    assert_eq!(clone.endpoint.as_ref().unwrap().port, 5432);
    patch(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!(w.emulator.view().dump_sources[0].port, "5432");
}

#[tokio::test]
async fn the_job_count_recorded_is_the_one_the_engine_uses() {
    // No parallelJobs key: the POST cannot set it and the engine dumps with one job.
    let (w, request, execution, clone) =
        world_with_clone(Settings { missing_keys: vec!["parallelJobs".into()], dump_ms: 5_000, ..Settings::default() })
            .await;
    assert_eq!(clone.instance_class, "db.r6g.xlarge", "a class that would get two jobs");
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!(refresh.dump_parallel_jobs, 1);
    assert_eq!(w.emulator.view().dump_sources[0].parallel_jobs, "1");
}

#[tokio::test]
async fn a_refresh_someone_else_started_is_never_taken_as_this_runs() {
    for version in VERSIONS {
        // An operator starts a refresh just as this run changes the config: its jobs are
        // built with the source configured before, and this run's trigger is refused.
        let (w, request, execution, clone) = world_with_clone(Settings {
            version,
            foreign_refresh_on_config: true,
            dump_ms: 5_000,
            ..Settings::default()
        })
        .await;
        let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
        assert_eq!(err.name(), "DblabBusy", "{version:?}: {err}");
        let text = err.to_string();
        assert!(text.contains("a refresh this run did not start is running"), "{text}");
        let engine = w.emulator.view();
        assert_eq!(engine.refreshes_started, 1, "only the other one");
        assert!(engine.dump_sources[0].foreign && engine.dump_sources[0].host == "old-source.internal");
    }
}

#[tokio::test]
async fn an_rds_iam_engine_dumps_from_the_instance_it_names() {
    for version in VERSIONS {
        // The host field is not where an rdsIam dump connects: an engine whose file has none is fine.
        let (w, request, execution, clone) = world_with_clone(Settings {
            version,
            source_type: "rdsIam".into(),
            missing_keys: vec!["host".into()],
            dump_ms: 5_000,
            ..Settings::default()
        })
        .await;
        let endpoint = clone.endpoint.clone().unwrap();
        let instance = clone.instance_id().to_string();
        w.emulator.configure(|s| {
            s.rds_endpoints.insert(instance.clone(), format!("{}:{}", endpoint.address, endpoint.port));
            s.rds_endpoints.insert("old-source-instance".into(), "prod.internal:5432".into());
        });
        patch(&w, &request, &execution, &clone).await.unwrap();
        let dumped = &w.emulator.view().dump_sources[0];
        assert_eq!(dumped.rds_instance.as_deref(), Some(instance.as_str()), "{version:?}");
        assert_eq!(dumped.host, endpoint.address);
    }
}

#[tokio::test]
async fn an_rds_iam_instance_that_cannot_be_set_stops_the_run() {
    // The file's rdsIam section has no dbInstanceIdentifier: the POST skips it silently.
    let (w, request, execution, clone) = world_with_clone(Settings {
        source_type: "rdsIam".into(),
        missing_keys: vec!["dbInstanceIdentifier".into()],
        ..Settings::default()
    })
    .await;
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabConfigNotApplied");
    assert!(err.to_string().contains("source.rdsIam.dbInstanceIdentifier is missing"), "{err}");
    assert_eq!(w.emulator.view().refreshes_started, 0);
}

#[tokio::test]
async fn a_pool_taken_by_clones_since_the_preflight_is_refused_before_the_config_changes() {
    let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
    w.emulator.set_pool_clones("dblab_pool", &["dev-clone-1"]);
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabNoFreePool");
    assert!(err.to_string().contains("pool dblab_pool has clones dev-clone-1"), "{err}");
    assert_eq!(w.emulator.view().config_updates, 0);
}

#[tokio::test]
async fn an_engine_that_ignores_restore_errors_needs_the_requests_consent() {
    let (w, mut request, execution, clone) = world_with_clone(Settings::default()).await;
    // Changed since the preflight (which refuses it too).
    w.emulator.restart(Settings { restore_ignore_errors: true, dump_ms: 5_000, ..Settings::default() });
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabMisconfigured");
    assert!(err.to_string().contains("logicalRestore.options.ignoreErrors"), "{err}");
    assert_eq!(w.emulator.view().config_updates, 0);
    request["dblab"]["allowIgnoredErrors"] = serde_json::json!(true);
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    assert!(refresh.ignored_errors.as_deref().is_some_and(|s| s.contains("tables may be missing")), "{refresh:?}");
}

const VERSIONS: [Version; 2] = [Version::V41, Version::V42];

#[tokio::test]
async fn immediate_restore_is_read_from_the_whole_file_and_forces_one_dump_job() {
    for version in VERSIONS {
        // `/admin/config` never shows immediateRestore: only `/admin/config.yaml` does.
        let (w, request, execution, clone) =
            world_with_clone(Settings { version, immediate_restore: true, dump_ms: 5_000, ..Settings::default() })
                .await;
        let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
        assert_eq!(refresh.dump_parallel_jobs, 1, "{version:?}");
        let engine = w.emulator.view();
        assert_eq!(engine.refreshes_started, 1, "{version:?}: two jobs would not even start: {:?}", engine.log);
        assert_eq!(engine.dump_sources[0].parallel_jobs, "1");
    }
}

#[tokio::test]
async fn a_stale_connection_string_cannot_send_the_dump_elsewhere() {
    let stale =
        "postgresql://admin@prod.abc.rds.amazonaws.com:5432/app?sslmode=verify-full&sslrootcert=%2Fcerts%2Frds.pem";
    for version in VERSIONS {
        let (w, request, execution, clone) = world_with_clone(Settings {
            version,
            connection_string: Some(stale.into()),
            dump_ms: 5_000,
            ..Settings::default()
        })
        .await;
        let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
        assert_eq!(refresh.engine.as_ref().unwrap().api.as_str(), if version == Version::V42 { "4.2" } else { "4.1" });
        let engine = w.emulator.view();
        let endpoint = clone.endpoint.clone().unwrap();
        let dumped = &engine.dump_sources[0];
        assert_eq!((dumped.host.as_str(), dumped.port.clone()), (endpoint.address.as_str(), endpoint.port.to_string()));
        assert_eq!((dumped.dbname.as_str(), dumped.username.as_str()), ("app", "dblab"));
        let kept = engine.config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connectionString"]
            .as_str()
            .unwrap()
            .to_string();
        match version {
            // 4.2 dumps through the string: its TLS options stay, pointed at the clone.
            Version::V42 => {
                let via = dumped.connection_string.as_deref().unwrap();
                assert!(via.contains(&endpoint.address) && via.contains("sslmode=verify-full"), "{via}");
                assert!(via.contains("sslrootcert=%2Fcerts%2Frds.pem") && !via.contains("prod."), "{via}");
                assert_eq!(kept, via);
                w.assert_no_secret(via);
            }
            // 4.1 ignores the key, in the POST and in the file.
            Version::V41 => {
                assert_eq!(dumped.connection_string, None);
                assert_eq!(kept, stale);
            }
        }
    }
}

#[tokio::test]
async fn a_connection_string_without_options_is_cleared() {
    let (w, request, execution, clone) = world_with_clone(Settings {
        version: Version::V42,
        connection_string: Some("host=prod.internal port=5432 dbname=app user=dblab".into()),
        dump_ms: 5_000,
        ..Settings::default()
    })
    .await;
    patch(&w, &request, &execution, &clone).await.unwrap();
    let engine = w.emulator.view();
    assert_eq!(engine.config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connectionString"], "");
    assert_eq!(engine.dump_sources[0].host, clone.endpoint.unwrap().address);
    assert_eq!(engine.dump_sources[0].connection_string, None);
}

#[tokio::test]
async fn a_connection_string_that_stays_pointed_elsewhere_stops_the_run() {
    let (w, request, execution, clone) = world_with_clone(Settings {
        version: Version::V42,
        connection_string: Some("host=prod.internal port=5432 dbname=app user=dblab sslmode=require".into()),
        keep_connection_string: true,
        ..Settings::default()
    })
    .await;
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabConfigNotApplied");
    assert!(err.to_string().contains("source.connectionString host is \"prod.internal\""), "{err}");
    assert_eq!(w.emulator.view().refreshes_started, 0, "production is never dumped");
}

#[tokio::test]
async fn a_lost_answer_to_the_trigger_is_adopted_on_retry() {
    for version in VERSIONS {
        let (w, request, execution, clone) =
            world_with_clone(Settings { version, lose_refresh_replies: 1, dump_ms: 5_000, ..Settings::default() })
                .await;
        let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
        assert_eq!(err.name(), "DblabUnavailable", "{version:?}: retried by the state machine");
        assert_eq!(w.emulator.view().status, "refreshing", "the engine took it all the same");
        let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
        assert!(refresh.adopted && refresh.seen_start, "{refresh:?}");
        assert_eq!(w.emulator.view().refreshes_started, 1, "adopted, not started twice");
    }
}

/// Adoption needs proof of time: the record of when this run's config change was answered,
/// and a refresh the engine built in a later second. Without the answer's record (an
/// attempt that ended inside the POST), or with a change answered no earlier than the
/// refresh was built, the refresh under way is not this run's.
#[tokio::test]
async fn a_refresh_is_adopted_only_when_its_start_is_proven_after_the_runs_config_change() {
    let (w, request, execution, clone) =
        world_with_clone(Settings { lose_refresh_replies: 1, dump_ms: 20_000, ..Settings::default() }).await;
    assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "DblabUnavailable");
    let history = refresh_core::history::History::new(w.dynamodb.clone(), w.history_table());
    let target = request["target"].as_str().unwrap();
    let recorded = history.config_post(target, &execution.name).await.unwrap();
    let (posting, posted) = (recorded.posting_at.unwrap(), recorded.posted_by.unwrap());
    let started = time::OffsetDateTime::parse(
        &w.emulator.view().last_refresh.unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(started >= posted + refresh_core::dblab::trigger::PROOF_GAP, "the trigger waits out the proof's gap");

    // The answer never recorded: when the change landed is not known.
    history.config_posting(target, &execution.name, posting).await.unwrap();
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabBusy", "{err}");
    assert!(err.to_string().contains("answer never came back"), "{err}");
    // Answered in the second the refresh was built: it may predate the change.
    history.config_posted(target, &execution.name, started).await.unwrap();
    assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "DblabBusy");
    // The answer as the first attempt recorded it: proven.
    history.config_posted(target, &execution.name, posted).await.unwrap();
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    assert!(refresh.adopted, "{refresh:?}");
    assert_eq!(w.emulator.view().refreshes_started, 1, "adopted, not started twice");
}

#[tokio::test]
async fn a_lost_answer_to_a_refresh_that_already_ended_starts_it_again() {
    let (w, request, execution, clone) = world_with_clone(Settings {
        version: Version::V42,
        lose_refresh_replies: 1,
        dump_ms: 50,
        restore_ms: 50,
        snapshot_ms: 50,
        ..Settings::default()
    })
    .await;
    assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "DblabUnavailable");
    for _ in 0..100 {
        if w.emulator.view().status == "finished" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Over already, its pool no longer shown: not adopted (nothing says which pool it
    // refreshed), but started again from the clone.
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    assert!(!refresh.adopted, "{refresh:?}");
    assert_eq!(w.emulator.view().refreshes_started, 2, "started again");
    let mut look = refresh;
    for _ in 0..50 {
        look = crate::poll_refresh::poll(&w, &request, &execution, &look).await.unwrap();
        if look.status != PollStatus::Pending {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(look.status, PollStatus::Ready, "{look:?}");
}

#[tokio::test]
async fn an_engine_that_locks_its_config_or_schedules_itself_is_refused() {
    for version in VERSIONS {
        let (w, request, execution, clone) = world_with_clone(Settings { version, ..Settings::default() }).await;
        // Changed since the preflight.
        w.emulator.restart(Settings { version, config_modification: false, ..Settings::default() });
        assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "DblabMisconfigured");
        w.emulator.restart(Settings { version, timetable: "0 3 * * *".into(), ..Settings::default() });
        assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "DblabMisconfigured");
        assert_eq!(w.emulator.view().config_updates, 0);
    }
}

#[tokio::test]
async fn an_engine_that_became_busy_is_not_touched() {
    let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
    // Another refresh started while the clone was being made.
    w.engine_call(reqwest::Method::POST, "/full-refresh", None).await;
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabBusy");
    assert_eq!(w.emulator.view().config_updates, 0);
}

#[tokio::test]
async fn an_engine_that_went_pending_is_busy() {
    let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
    // The preflight passed; the engine went to `pending` (waiting for config) afterwards.
    w.emulator.restart(Settings { status: "pending".into(), dump_ms: 5_000, ..Settings::default() });
    // `pending` is busy for a new run: patch-dblab refuses rather than guess.
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabBusy");
    assert_eq!(w.emulator.view().config_updates, 0);
}

#[tokio::test]
async fn an_engine_echoing_the_password_cannot_leak_it() {
    let (w, request, execution, clone) =
        world_with_clone(Settings { reject_config_echoing_dsn: true, ..Settings::default() }).await;
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabRejected");
    let text = err.to_string();
    assert!(text.contains("postgres://dblab:***@"), "the engine's message is kept, the secret is not: {text}");
    assert!(text.contains(r#""password":"***""#), "the JSON-escaped echo is redacted too: {text}");
    // As written, URL-encoded and JSON-escaped, none gets through.
    w.assert_no_secret(&text);
}

#[tokio::test]
async fn a_clone_that_is_not_ready_is_refused() {
    let (w, request, execution, mut clone) = world_with_clone(Settings::default()).await;
    clone.status = PollStatus::Pending;
    assert_eq!(patch(&w, &request, &execution, &clone).await.unwrap_err().name(), "InvalidInput");
}

#[tokio::test]
async fn a_rejected_token_is_terminal() {
    let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
    w.emulator.configure(|s| s.reject_token = true);
    let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabUnauthorized");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn restore_jobs_come_from_the_request_and_are_left_alone_without_it() {
    let (w, mut request, execution, clone) = world_with_clone(Settings { dump_ms: 5_000, ..Settings::default() }).await;
    let restore_jobs =
        |w: &World| w.emulator.view().config.pointer("/retrieval/spec/logicalRestore/options/parallelJobs").cloned();
    patch(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!(restore_jobs(&w), Some(serde_json::json!(2)), "the engine's own value stays");
    w.emulator.restart(Settings { dump_ms: 5_000, ..Settings::default() });
    request["dblab"]["restoreParallelJobs"] = serde_json::json!(16);
    patch(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!(restore_jobs(&w), Some(serde_json::json!(16)), "the DBLab host's CPUs, from the request");
}

#[tokio::test]
async fn a_clone_the_engine_cannot_read_stops_the_run_before_any_pool_or_config_changes() {
    type Case = (&'static str, fn(&mut Settings, &str), &'static str);
    let cases: [Case; 3] = [
        ("wrong password", |s, _| s.expected_password = Some("the-real-one".into()), "password authentication failed"),
        ("clone unreachable", |s, host| s.dead_sources = vec![host.to_string()], "connection refused"),
        ("extension the image lacks", |s, _| s.missing_extensions = vec!["postgis".into()], "missing_extension"),
    ];
    for (case, fault, said) in cases {
        let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
        let host = clone.endpoint.clone().unwrap().address;
        w.emulator.configure(|s| fault(s, &host));
        let before = w.emulator.view();
        let err = patch(&w, &request, &execution, &clone).await.unwrap_err();
        assert_eq!(err.name(), "DblabSourceRefused", "{case}: {err}");
        assert!(err.to_string().contains(said), "{case}: {err}");
        w.assert_no_secret(&err.to_string());
        let after = w.emulator.view();
        assert_eq!((after.config_updates, after.refreshes_started), (0, 0), "{case}: nothing changed");
        assert_eq!((after.config, after.password), (before.config, before.password), "{case}");
        assert_eq!((after.pools, after.snapshots), (before.pools, before.snapshots), "{case}: no pool touched");
    }
}

#[tokio::test]
async fn another_engine_at_the_runs_endpoint_is_not_touched() {
    let (w, request, execution, clone) = world_with_clone(Settings::default()).await;
    let lock = refresh_core::history::engine_lock(w.emulator.settings().instance_id.as_deref(), "")
        .expect("the engine's own lock");
    w.hold_locks(&execution, &[request["target"].as_str().unwrap(), &lock.key]).await;
    // A DNS or load-balancer switch: another engine answers at the same address.
    w.emulator.configure(|s| s.instance_id = Some("rebuilt-engine".into()));
    let input = ::patch_dblab::Input {
        execution: execution.clone(),
        request: crate::typed(&request),
        clone: clone.clone(),
        engine_lock: Some(lock),
    };
    let err = ::patch_dblab::handle(&crate::patch_deps(&w), input, Watch::once()).await.unwrap_err();
    assert_eq!(err.name(), "DblabEngineChanged", "{err}");
    assert!(err.to_string().contains("instance rebuilt-engine answers now"), "{err}");
    let engine = w.emulator.view();
    assert_eq!((engine.config_updates, engine.refreshes_started), (0, 0), "nothing changed on it");
}
