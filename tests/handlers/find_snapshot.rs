use refresh_core::RefreshError;
use refresh_core::request::{SourceMode, ValidationErrors};
use refresh_tests::{World, fixture, secret_reads};
use serde_json::json;

use crate::{error_name, find};

/// The engines a request may name are the stack's: another address, even with a token
/// secret the stack may read, is refused before any secret is read and before the engine
/// is called.
#[tokio::test]
async fn an_engine_the_stack_does_not_list_is_refused_before_any_secret_is_read() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let (token_reads, password_reads) = (secret_reads(&w.token_arn).await, secret_reads(&w.password_arn).await);
    for dblab in [
        json!({"engine": "prod-engine"}),
        json!({"apiEndpoint": "https://attacker.example:2345", "tokenSecretArn": w.token_arn}),
        json!({"engine": w.engine, "tokenSecretArn": w.password_arn}),
    ] {
        let mut request = w.request("rds", &source);
        request["dblab"] = json!({"pollInterval": "1s", "timeout": "1m"});
        for (key, value) in dblab.as_object().unwrap() {
            request["dblab"][key] = value.clone();
        }
        let err = find(&w, &request).await.unwrap_err();
        assert_eq!(err.name(), "InvalidRequest", "{dblab}: {err}");
        assert!(err.to_string().contains("DblabEngines") || err.to_string().contains("token secret"), "{err}");
    }
    let mut request = w.request("rds", &source);
    request["source"]["passwordSecretArn"] = json!(w.token_arn);
    let err = find(&w, &request).await.unwrap_err();
    assert!(err.to_string().contains("source.passwordSecretArn"), "{err}");
    assert_eq!((secret_reads(&w.token_arn).await, secret_reads(&w.password_arn).await), (token_reads, password_reads));
    assert_eq!(w.emulator.view().config_updates, 0);
    // The same request naming the world's engine reads both.
    find(&w, &w.request("rds", &source)).await.unwrap();
    assert!(secret_reads(&w.token_arn).await > token_reads, "the read recorder is blind");
}

/// Marks the newest automated snapshot of an instance as still being taken.
async fn newest_in_progress(w: &World, instance: &str) {
    let mut pages = w
        .rds
        .describe_db_snapshots()
        .db_instance_identifier(instance)
        .snapshot_type("automated")
        .into_paginator()
        .send();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().db_snapshots().to_vec());
    }
    let newest = all.iter().max_by_key(|s| s.snapshot_create_time().map(|t| t.as_nanos())).unwrap();
    fixture("rds/snapshot-status", json!({"snapshot": newest.db_snapshot_identifier(), "status": "creating"})).await;
}

#[tokio::test]
async fn picks_the_newest_available_automated_snapshot_across_pages() {
    let w = World::new().await;
    let source = w.rds_source().await;
    // Oldest first, so the newest available lands on the last page of five.
    let made =
        fixture("rds/automated-snapshots", json!({"instance": source, "daysAgo": [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]}))
            .await;
    newest_in_progress(&w, &source).await;
    let snapshot = find(&w, &w.request("rds", &source)).await.unwrap();
    assert_eq!(snapshot.identifier, made["created"][10].as_str().unwrap());
    assert!(snapshot.identifier.starts_with("rds:"));
    assert_eq!(snapshot.snapshot_type, "automated");
    assert_eq!(snapshot.engine, "postgres");
    let age = time::OffsetDateTime::now_utc() - snapshot.data_as_of;
    assert!(age > time::Duration::hours(23) && age < time::Duration::hours(25), "data as of {}", snapshot.data_as_of);
}

#[tokio::test]
async fn picks_the_newest_aurora_cluster_snapshot_across_pages() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let made = fixture("rds/automated-snapshots", json!({"cluster": source, "daysAgo": [9, 8, 7, 6, 5, 4, 3]})).await;
    let mut pages = w
        .rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(&source)
        .snapshot_type("automated")
        .into_paginator()
        .send();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().db_cluster_snapshots().to_vec());
    }
    assert_eq!(all.len(), 8, "moto's own snapshot plus seven");
    let own = all
        .iter()
        .find(|s| !made["created"].as_array().unwrap().iter().any(|m| m.as_str() == s.db_cluster_snapshot_identifier()))
        .unwrap();
    fixture(
        "rds/snapshot-status",
        json!({"clusterSnapshot": own.db_cluster_snapshot_identifier(), "status": "creating"}),
    )
    .await;
    let snapshot = find(&w, &w.request("aurora-cluster", &source)).await.unwrap();
    assert_eq!(snapshot.identifier, made["created"][6].as_str().unwrap());
    assert_eq!(snapshot.engine, "aurora-postgresql");
}

#[tokio::test]
async fn an_explicit_snapshot_is_used_as_given() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let manual = format!("manual-{}", w.id);
    w.rds.create_db_snapshot().db_instance_identifier(&source).db_snapshot_identifier(&manual).send().await.unwrap();
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!(manual);
    let snapshot = find(&w, &request).await.unwrap();
    assert_eq!(snapshot.identifier, manual);
    assert_eq!(snapshot.snapshot_type, "manual");
}

#[tokio::test]
async fn a_copied_snapshots_data_is_as_old_as_the_original() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let made = fixture("rds/automated-snapshots", json!({"instance": source, "daysAgo": [3]})).await;
    let original = made["created"][0].as_str().unwrap();
    let copy = format!("copy-{}", w.id);
    w.rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(original)
        .target_db_snapshot_identifier(&copy)
        .send()
        .await
        .unwrap();
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!(copy);
    let snapshot = find(&w, &request).await.unwrap();
    assert_eq!(snapshot.identifier, copy);
    // The copy was made just now; its data is the original's, three days old.
    let age = time::OffsetDateTime::now_utc() - snapshot.data_as_of;
    assert!(age > time::Duration::hours(71) && age < time::Duration::hours(73), "data as of {}", snapshot.data_as_of);
}

#[tokio::test]
async fn an_explicit_snapshot_of_another_database_is_refused() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let elsewhere = format!("other-db-{}", w.id);
    w.rds
        .create_db_instance()
        .db_instance_identifier(&elsewhere)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("other-password")
        .allocated_storage(20)
        .send()
        .await
        .unwrap();
    let manual = format!("other-snap-{}", w.id);
    w.rds.create_db_snapshot().db_instance_identifier(&elsewhere).db_snapshot_identifier(&manual).send().await.unwrap();
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!(manual);
    let err = find(&w, &request).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    let text = err.to_string();
    assert!(text.contains("source.snapshotIdentifier") && text.contains(&elsewhere), "{text}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty());
}

#[tokio::test]
async fn a_missing_explicit_snapshot_fails() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!("no-such-snapshot");
    assert_eq!(error_name(find(&w, &request).await), "SnapshotNotFound");
}

#[tokio::test]
async fn an_explicit_snapshot_that_is_not_available_fails() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let manual = format!("manual-{}", w.id);
    w.rds.create_db_snapshot().db_instance_identifier(&source).db_snapshot_identifier(&manual).send().await.unwrap();
    fixture("rds/snapshot-status", json!({"snapshot": manual, "status": "creating"})).await;
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!(manual);
    let err = find(&w, &request).await.unwrap_err();
    assert_eq!(err.name(), "SnapshotNotAvailable");
    assert!(err.to_string().contains("creating"));
}

#[tokio::test]
async fn no_available_automated_snapshot_fails() {
    let w = World::new().await;
    let source = w.rds_source().await;
    newest_in_progress(&w, &source).await;
    assert_eq!(error_name(find(&w, &w.request("rds", &source)).await), "NoSnapshotAvailable");
}

#[tokio::test]
async fn a_missing_source_fails_for_both_types() {
    let w = World::new().await;
    assert_eq!(error_name(find(&w, &w.request("rds", "no-such-db")).await), "SourceNotFound");
    assert_eq!(error_name(find(&w, &w.request("aurora-cluster", "no-such-cluster")).await), "SourceNotFound");
}

#[tokio::test]
async fn an_aurora_member_given_as_rds_is_explained() {
    let w = World::new().await;
    let cluster = w.aurora_source().await;
    let member = format!("member-{}", w.id);
    w.rds
        .create_db_instance()
        .db_instance_identifier(&member)
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.large")
        .send()
        .await
        .unwrap();
    let err = find(&w, &w.request("rds", &member)).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(err.to_string().contains("source.type") && err.to_string().contains(&cluster), "{err}");
}

#[tokio::test]
async fn an_invalid_request_names_every_field() {
    let w = World::new().await;
    let mut request = w.request("rds", "prod");
    request["source"]["password"] = json!("plaintext");
    request["clone"]["instanceClas"] = json!("db.t3.micro");
    let err = find(&w, &request).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(text.contains("source.password") && text.contains("clone.instanceClas"), "{text}");
    assert!(!text.contains("plaintext"));
}

#[tokio::test]
async fn an_unreadable_password_secret_fails_before_anything_is_created() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    request["source"]["passwordSecretArn"] =
        json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf");
    let err = find(&w, &request).await.unwrap_err();
    assert_eq!(err.name(), "SecretUnavailable");
    assert!(err.to_string().contains("missing-AbCdEf"));
}

mod dblab_preflight {
    use dblab_emulator::{PoolSetting, Settings, Version};
    use refresh_tests::World;
    use serde_json::json;

    use crate::{error_name, find};

    async fn preflight_error(settings: Settings) -> &'static str {
        let w = World::with_engine(settings).await;
        let source = w.rds_source().await;
        let name = error_name(find(&w, &w.request("rds", &source)).await);
        assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty());
        assert_eq!(w.emulator.view().config_updates, 0, "nothing may be changed on the engine");
        name
    }

    #[tokio::test]
    async fn token_rejected() {
        assert_eq!(preflight_error(Settings { reject_token: true, ..Settings::default() }).await, "DblabUnauthorized");
    }

    #[tokio::test]
    async fn busy_engine() {
        for status in ["refreshing", "snapshotting", "renewed", "pending"] {
            assert_eq!(
                preflight_error(Settings { status: status.into(), ..Settings::default() }).await,
                "DblabBusy",
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn physical_mode() {
        assert_eq!(
            preflight_error(Settings { mode: "physical".into(), ..Settings::default() }).await,
            "DblabNotLogical"
        );
    }

    #[tokio::test]
    async fn an_engine_that_refuses_config_changes() {
        for version in [Version::V41, Version::V42] {
            let settings = Settings { version, config_modification: false, ..Settings::default() };
            assert_eq!(preflight_error(settings).await, "DblabMisconfigured");
        }
    }

    #[tokio::test]
    async fn an_engine_with_its_own_timetable() {
        for version in [Version::V41, Version::V42] {
            let settings = Settings { version, timetable: "0 0 * * 1".into(), ..Settings::default() };
            assert_eq!(preflight_error(settings).await, "DblabMisconfigured");
        }
    }

    #[tokio::test]
    async fn an_engine_whose_every_pool_has_clones_is_refused_with_them_named() {
        for version in [Version::V41, Version::V42] {
            let pools = vec![
                PoolSetting { clones: vec!["dev-1".into(), "dev-2".into()], ..PoolSetting::free("pool_a") },
                PoolSetting { clones: vec!["qa-1".into()], ..PoolSetting::free("pool_b") },
            ];
            let w = World::with_engine(Settings { version, pools, ..Settings::default() }).await;
            let source = w.rds_source().await;
            let err = find(&w, &w.request("rds", &source)).await.unwrap_err();
            assert_eq!(err.name(), "DblabNoFreePool", "{version:?}");
            let text = err.to_string();
            assert!(text.contains("pool pool_a has clones dev-1, dev-2; pool pool_b has clones qa-1"), "{text}");
            assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone paid for");
            // One pool free is enough: the engine refreshes that one.
            w.emulator.set_pool_clones("pool_b", &[]);
            find(&w, &w.request("rds", &source)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_engine_without_its_snapshot_job_is_refused_naming_it() {
        for version in [Version::V41, Version::V42] {
            let w = World::with_engine(Settings { version, no_snapshot_job: true, ..Settings::default() }).await;
            let source = w.rds_source().await;
            let err = find(&w, &w.request("rds", &source)).await.unwrap_err();
            assert_eq!(err.name(), "DblabMisconfigured", "{version:?}");
            assert!(err.to_string().contains("no logical snapshot job"), "{err}");
            assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone paid for");
        }
    }

    #[tokio::test]
    async fn an_engine_on_lvm_is_refused_unless_the_request_accepts_its_finished_alone() {
        let pools = vec![PoolSetting { lvm: true, ..PoolSetting::free("lvm_pool") }];
        let w = World::with_engine(Settings { pools, ..Settings::default() }).await;
        let source = w.rds_source().await;
        let mut request = w.request("rds", &source);
        let err = find(&w, &request).await.unwrap_err();
        assert_eq!(err.name(), "DblabMisconfigured");
        assert!(err.to_string().contains("on LVM (lvm_pool)") && err.to_string().contains("dblab.allowLvm"), "{err}");
        assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone paid for");
        request["dblab"]["allowLvm"] = json!(true);
        find(&w, &request).await.unwrap();
    }

    #[tokio::test]
    async fn a_pool_whose_clones_the_engine_cannot_list_is_not_taken_for_free() {
        // The engine walks its pools from the back and stops at one it cannot list: no
        // pool is refreshed, although pool_a is free.
        let pools = vec![PoolSetting::free("pool_a"), PoolSetting { unlistable: true, ..PoolSetting::free("pool_b") }];
        let w = World::with_engine(Settings { pools, ..Settings::default() }).await;
        let source = w.rds_source().await;
        let err = find(&w, &w.request("rds", &source)).await.unwrap_err();
        assert_eq!(err.name(), "DblabNoFreePool");
        let text = err.to_string();
        assert!(text.contains("could not list the clones of pool pool_b"), "{text}");
        assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone paid for");
    }

    #[tokio::test]
    async fn an_engine_that_ignores_restore_errors_is_refused_unless_the_request_accepts_it() {
        for version in [Version::V41, Version::V42] {
            for (restore, dump) in [(true, false), (false, true)] {
                let settings = Settings {
                    version,
                    restore_ignore_errors: restore,
                    dump_ignore_errors: dump,
                    ..Settings::default()
                };
                let w = World::with_engine(settings).await;
                let source = w.rds_source().await;
                let mut request = w.request("rds", &source);
                let err = find(&w, &request).await.unwrap_err();
                assert_eq!(err.name(), "DblabMisconfigured", "{version:?}");
                let key = if restore { "logicalRestore" } else { "logicalDump" };
                assert!(err.to_string().contains(&format!("{key}.options.ignoreErrors: true")), "{err}");
                request["dblab"]["allowIgnoredErrors"] = json!(true);
                find(&w, &request).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn immediate_restore_refuses_delete_after_dump_on_both_versions() {
        for version in [Version::V41, Version::V42] {
            let w = World::with_engine(Settings { version, immediate_restore: true, ..Settings::default() }).await;
            let source = w.rds_source().await;
            let mut request = w.request("rds", &source);
            request["clone"]["deleteAfterDump"] = json!(true);
            let err = find(&w, &request).await.unwrap_err();
            assert_eq!(err.name(), "InvalidRequest", "{version:?}");
            assert!(err.to_string().contains("clone.deleteAfterDump"), "{err}");
            request["clone"]["deleteAfterDump"] = json!(false);
            find(&w, &request).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_missing_security_group_is_refused_before_the_clone() {
        let w = World::new().await;
        let source = w.rds_source().await;
        let mut request = w.request("rds", &source);
        request["clone"]["securityGroups"] = json!(["sg-0000000000deadbee"]);
        let err = find(&w, &request).await.unwrap_err();
        assert_eq!(err.name(), "InvalidRequest");
        assert!(err.to_string().contains("clone.securityGroups") && err.to_string().contains("sg-0000000000deadbee"));
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        let w = World::with_engine(Settings { http500: true, ..Settings::default() }).await;
        let source = w.rds_source().await;
        let err = find(&w, &w.request("rds", &source)).await.unwrap_err();
        assert_eq!(err.name(), "DblabUnavailable");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn unreachable_engine() {
        let w = World::new().await;
        let source = w.rds_source().await;
        // The listed engine nothing answers for (port 1).
        let mut request = w.request("rds", &source);
        request["dblab"]["engine"] = json!(refresh_tests::engines::DOWN);
        let err = find(&w, &request).await.unwrap_err();
        assert_eq!(err.name(), "DblabUnavailable");
        assert!(err.to_string().contains("connection"), "{err}");
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn latest_point_pins_the_source_latest_restorable_time() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    request["source"]["mode"] = json!("latest-point");
    let before = time::OffsetDateTime::now_utc();
    let point = find(&w, &request).await.unwrap();
    assert_eq!(point.mode, SourceMode::LatestPoint);
    assert_eq!(point.identifier, source);
    assert!(point.arn.ends_with(&format!(":db:{source}")), "{}", point.arn);
    assert_eq!(point.snapshot_type, "latest-point");
    assert_eq!(point.engine, "postgres");
    // moto's latest restorable time is "now": data minutes old becomes data seconds old.
    let lag = (point.data_as_of - before).abs();
    assert!(lag < time::Duration::seconds(30), "data as of {} read at {}", point.data_as_of, before);
    // Strictly before the latest restorable time, as RDS requires, on a whole second.
    let latest = w.rds.describe_db_instances().db_instance_identifier(&source).send().await.unwrap().db_instances()[0]
        .latest_restorable_time()
        .and_then(refresh_core::clock::from_aws)
        .unwrap();
    assert!(point.data_as_of < latest, "{} is not before {latest}", point.data_as_of);
    assert_eq!(point.data_as_of.nanosecond(), 0);
}

#[tokio::test]
async fn point_in_time_inside_the_window_is_used_as_given_and_outside_it_is_refused() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let created = w.rds.describe_db_instances().db_instance_identifier(&source).send().await.unwrap().db_instances()[0]
        .instance_create_time()
        .and_then(refresh_core::clock::from_aws)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let mut request = w.request("rds", &source);
    request["source"]["mode"] = json!("point-in-time");
    let inside = created + time::Duration::seconds(1);
    request["source"]["restoreTime"] = json!(rfc3339(inside));
    let point = find(&w, &request).await.unwrap();
    assert_eq!((point.mode, point.data_as_of), (SourceMode::PointInTime, inside));

    // Before the instance existed, and in the future: both outside, named by field.
    for outside in [created - time::Duration::days(2), time::OffsetDateTime::now_utc() + time::Duration::hours(1)] {
        request["source"]["restoreTime"] = json!(rfc3339(outside));
        match find(&w, &request).await {
            Err(RefreshError::InvalidRequest(ValidationErrors(errors))) => {
                assert_eq!(errors[0].path, "source.restoreTime");
                assert!(errors[0].message.contains("outside the restorable window"), "{}", errors[0].message);
                assert!(errors[0].message.contains(&source), "{}", errors[0].message);
            }
            other => panic!("{outside}: expected InvalidRequest, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn without_an_automated_backup_record_the_window_follows_the_retention_rule() {
    let w = World::new().await;
    let (source, mut request, _) = w.rds_case().await;
    // AWS answers DBInstanceAutomatedBackupNotFound for an instance without that record.
    let fault = json!({"action": "DescribeDBInstanceAutomatedBackups", "match": source, "status": 404,
                       "code": "DBInstanceAutomatedBackupNotFound", "times": 5});
    refresh_tests::fixture("faults", fault).await;
    request["source"]["mode"] = json!("latest-point");
    let point = find(&w, &request).await;
    refresh_tests::fixture("faults/clear", json!({"match": source})).await;
    assert_eq!(point.unwrap().mode, SourceMode::LatestPoint, "the retention rule applied, not a terminal error");
}

#[tokio::test]
async fn point_modes_need_automated_backups() {
    let w = World::new().await;
    let source = format!("nobackup-{}", w.id);
    w.rds
        .create_db_instance()
        .db_instance_identifier(&source)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("production-password")
        .allocated_storage(20)
        .backup_retention_period(0)
        .send()
        .await
        .unwrap();
    let mut request = w.request("rds", &source);
    request["source"]["mode"] = json!("latest-point");
    match find(&w, &request).await {
        Err(RefreshError::InvalidRequest(ValidationErrors(errors))) => {
            assert_eq!(errors[0].path, "source.mode");
            assert!(errors[0].message.contains("backup retention 0"), "{}", errors[0].message);
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn an_aurora_fast_clone_is_of_the_live_cluster() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let mut request = w.request("aurora-cluster", &source);
    request["source"]["mode"] = json!("fast-clone");
    let point = find(&w, &request).await.unwrap();
    assert_eq!(point.mode, SourceMode::FastClone);
    assert_eq!(point.engine, "aurora-postgresql");
    assert!(point.arn.ends_with(&format!(":cluster:{source}")), "{}", point.arn);
    assert_eq!(point.describe(), format!("copy-on-write clone of {source}"));
}

/// A production instance encrypted with `key`.
async fn encrypted_source(w: &World, label: &str, key: &str) -> String {
    let id = format!("prod-{label}-{}", w.id);
    refresh_tests::create_source_instance(&w.rds, &id, Some(key)).await;
    id
}

#[tokio::test]
async fn an_encrypted_source_needs_a_key_the_stack_allows() {
    let w = World::new().await;
    let allowed = encrypted_source(&w, "allowed", refresh_tests::stack::ALLOWED_KMS_KEY).await;
    let chosen = find(&w, &w.request("rds", &allowed)).await.unwrap();
    assert_eq!(chosen.kms_key_id.as_deref(), Some(refresh_tests::stack::ALLOWED_KMS_KEY), "the snapshot's key");

    let other = "arn:aws:kms:us-east-1:123456789012:key/9a8b7c6d-not-listed";
    let refused = encrypted_source(&w, "other", other).await;
    let err = find(&w, &w.request("rds", &refused)).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    let text = err.to_string();
    assert!(text.contains(other) && text.contains("SourceKmsKeyArns"), "{text}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "nothing was created");

    let mut point = w.request("rds", &refused);
    point["source"]["mode"] = json!("latest-point");
    let err = find(&w, &point).await.unwrap_err();
    assert!(err.to_string().contains(other), "the source's own key, in a point mode: {err}");
}

#[tokio::test]
async fn an_explicit_automated_snapshot_is_found_with_its_type() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let made = fixture("rds/automated-snapshots", json!({"instance": source, "daysAgo": [2]})).await;
    let automated = made["created"][0].as_str().unwrap().to_string();
    assert!(automated.starts_with("rds:"), "{automated}");
    let mut request = w.request("rds", &source);
    request["source"]["snapshotIdentifier"] = json!(automated);
    let snapshot = find(&w, &request).await.unwrap();
    assert_eq!((snapshot.identifier.as_str(), snapshot.snapshot_type.as_str()), (automated.as_str(), "automated"));

    let cluster = w.aurora_source().await;
    let made = fixture("rds/automated-snapshots", json!({"cluster": cluster, "daysAgo": [2]})).await;
    let automated = made["created"][0].as_str().unwrap().to_string();
    let mut request = w.request("aurora-cluster", &cluster);
    request["source"]["snapshotIdentifier"] = json!(automated);
    let snapshot = find(&w, &request).await.unwrap();
    assert_eq!(snapshot.identifier, automated);
}

#[tokio::test]
async fn a_source_under_the_aws_managed_key_needs_no_listing() {
    let w = World::new().await;
    let kms = aws_sdk_kms::Client::new(&w.config);
    let key = |description: &'static str| {
        let kms = kms.clone();
        async move {
            let made = kms.create_key().description(description).send().await.unwrap();
            made.key_metadata().unwrap().arn().unwrap().to_string()
        }
    };
    // aws/rds: the default of most RDS databases; the stack lists no key at all for it.
    let managed = key("aws/rds").await;
    let id = managed.rsplit('/').next().unwrap();
    fixture("kms/aws-managed", json!({"key": id})).await;
    let source = encrypted_source(&w, "managed", &managed).await;
    let chosen = find(&w, &w.request("rds", &source)).await.unwrap();
    assert_eq!(chosen.kms_key_id.as_deref(), Some(managed.as_str()));

    // A customer-managed key must be listed, whoever's it is.
    let customer = key("a team's key").await;
    let source = encrypted_source(&w, "customer", &customer).await;
    let err = find(&w, &w.request("rds", &source)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("a customer-managed key") && text.contains("SourceKmsKeyArns"), "{text}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn an_identifier_in_upper_case_names_the_database_rds_keeps_in_lower_case() {
    let w = World::new().await;
    let source = w.rds_source().await;
    // RDS (and the launcher) keep and answer identifiers in lower case, whatever was asked.
    let described = w.rds.describe_db_instances().db_instance_identifier(source.to_uppercase()).send().await.unwrap();
    assert_eq!(described.db_instances()[0].db_instance_identifier(), Some(source.as_str()));
    let snapshot = find(&w, &w.request("rds", &source.to_uppercase())).await.unwrap();
    assert_eq!(snapshot.source_identifier, source);
    assert_eq!(snapshot.snapshot_type, "automated");
}
