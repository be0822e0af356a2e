//! The rules of a refresh request: which fields each part has, their ranges, and how
//! they must agree with one another. The request as a whole and its source are here; the
//! clone's rules are `clone`, the engine's `dblab`.

mod clone;
mod dblab;

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::checks::*;
use super::fields as f;
use super::model::*;
use super::reader::Reader;
use crate::duration;

impl Reader {
    pub(super) fn request(&mut self, doc: &Value) -> Option<RefreshRequest> {
        let mut root = self.object(doc, "")?;
        let target = self.text(&mut root, &f::TARGET);
        self.check(f::TARGET.key, target.as_ref(), check_target);
        let source = match self.field(&mut root, "source") {
            Some(v) => self.source(v),
            None => {
                self.err("source", "is required");
                None
            }
        };
        let clone = match self.field(&mut root, "clone") {
            Some(v) => self.clone_spec(v, source.as_ref().map(|s| s.kind)),
            None => {
                self.err("clone", "is required (at least clone.instanceClass)");
                None
            }
        };
        let dblab = match self.field(&mut root, "dblab") {
            Some(v) => self.dblab(v),
            None => {
                self.err("dblab", "is required");
                None
            }
        };
        let freshness_max_age = match self.field(&mut root, "freshness") {
            Some(v) => self.freshness(v),
            None => None,
        };
        self.finish(root);
        let (target, source, clone, dblab) = (target?, source?, clone?, dblab?);
        self.cross_checks(&clone, &dblab);
        Some(RefreshRequest { target, source, clone, dblab, freshness_max_age })
    }

    /// `freshness.maxAge`: past it, the target's data is stale (the fleet view and alarm).
    fn freshness(&mut self, value: &Value) -> Option<Duration> {
        let mut obj = self.object(value, "freshness")?;
        if self.value(&mut obj, &f::FRESHNESS_MAX_AGE).is_none() {
            self.err(f::FRESHNESS_MAX_AGE.key, "is required (e.g. \"36h\")");
        }
        // Zero: not given, or invalid (and reported).
        let max_age = self.period_or(&mut obj, &f::FRESHNESS_MAX_AGE, Duration::ZERO);
        self.finish(obj);
        (!max_age.is_zero()).then_some(max_age)
    }

    pub(super) fn cross_checks(&mut self, clone: &CloneSpec, dblab: &DblabSpec) {
        let (run_limit, parts) = longest_run(clone, dblab);
        if clone.max_age <= run_limit {
            self.err(
                f::CLONE_MAX_AGE.key,
                format!(
                    "{} must be longer than the longest a run can last, {}: {parts}",
                    duration::format(clone.max_age),
                    duration::format(run_limit)
                ),
            );
        }
        if run_limit > EXECUTION_TIMEOUT {
            self.err(
                f::DBLAB_TIMEOUT.key,
                format!(
                    "these timeouts let a run last {}, longer than the {} an execution may: {parts}; shorten dblab.timeout, clone.restoreTimeout or clone.deletionTimeout",
                    duration::format(run_limit),
                    duration::format(EXECUTION_TIMEOUT)
                ),
            );
        }
        let polls = clone.restore_timeout.as_secs() / clone.poll_interval.as_secs().max(1)
            + dblab.timeout.as_secs() / dblab.poll_interval.as_secs().max(1);
        if polls > MAX_POLLS_PER_RUN {
            self.err(
                f::DBLAB_POLL_INTERVAL.key,
                format!(
                    "these timeouts and poll intervals allow {polls} polls, more than the {MAX_POLLS_PER_RUN} an execution history can hold; poll less often (clone.pollInterval, dblab.pollInterval) or shorten the timeouts"
                ),
            );
        }
    }

    pub(super) fn source(&mut self, value: &Value) -> Option<SourceSpec> {
        let mut obj = self.object(value, "source")?;
        let kind = self
            .choice(&mut obj, &f::SOURCE_TYPE)
            .and_then(|word| [SourceType::Rds, SourceType::AuroraCluster].into_iter().find(|t| t.as_str() == word));
        // RDS stores identifiers in lower case and answers with them so: lowered here, once,
        // everything after compares what RDS answers with what was asked.
        let identifier = self.text(&mut obj, &f::SOURCE_IDENTIFIER).map(|i| i.to_ascii_lowercase());
        self.check(f::SOURCE_IDENTIFIER.key, identifier.as_ref(), check_rds_identifier);
        let mode = self
            .choice(&mut obj, &f::SOURCE_MODE)
            .and_then(|word| SourceMode::ALL.into_iter().find(|m| m.as_str() == word))
            .unwrap_or_default();
        if mode == SourceMode::FastClone && kind == Some(SourceType::Rds) {
            self.err(
                f::SOURCE_MODE.key,
                "\"fast-clone\" (copy-on-write) exists only for Aurora: use source.type \"aurora-cluster\", or \"latest-point\" for an RDS instance",
            );
        }
        let account = self.text(&mut obj, &f::SOURCE_ACCOUNT);
        self.check(f::SOURCE_ACCOUNT.key, account.as_ref(), |a| {
            if is_account_id(a) { Ok(()) } else { Err(format!("{a:?} is not an AWS account id (12 digits)")) }
        });
        // What another account can share: snapshots, or an Aurora cluster through AWS RAM
        // (cloned copy-on-write); a point in time would need its backups.
        if account.is_some() && !matches!(mode, SourceMode::Snapshot | SourceMode::FastClone) {
            self.err(
                f::SOURCE_ACCOUNT.key,
                format!(
                    "another account's production can be restored only from the snapshots it shares (source.mode \"snapshot\") or, for an Aurora cluster it shares through AWS RAM, by a fast clone (\"fast-clone\"), not {:?}: a point in time would need its backups",
                    mode.as_str()
                ),
            );
        }
        // Zero: not given, or invalid (and reported).
        let max_snapshot_age =
            Some(self.period_or(&mut obj, &f::SOURCE_MAX_SNAPSHOT_AGE, Duration::ZERO)).filter(|age| !age.is_zero());
        if max_snapshot_age.is_some() && mode != SourceMode::Snapshot {
            self.err(
                f::SOURCE_MAX_SNAPSHOT_AGE.key,
                format!("applies only to source.mode \"snapshot\", not {:?}", mode.as_str()),
            );
        }
        let snapshot_identifier = self.text(&mut obj, &f::SOURCE_SNAPSHOT_IDENTIFIER).map(|i| i.to_ascii_lowercase());
        if let (Some(account), Some(id)) = (&account, &snapshot_identifier)
            && !id.starts_with("arn:")
        {
            self.err(
                f::SOURCE_SNAPSHOT_IDENTIFIER.key,
                format!("with source.account, name the shared snapshot by its ARN (arn:aws:rds:REGION:{account}:snapshot:NAME), not {id:?}"),
            );
        }
        if snapshot_identifier.is_some() && mode != SourceMode::Snapshot {
            self.err(
                f::SOURCE_SNAPSHOT_IDENTIFIER.key,
                format!("applies only to source.mode \"snapshot\", not {:?}", mode.as_str()),
            );
        }
        let restore_time = match self.text(&mut obj, &f::SOURCE_RESTORE_TIME) {
            Some(text) if mode != SourceMode::PointInTime => {
                self.err(
                    f::SOURCE_RESTORE_TIME.key,
                    format!("applies only to source.mode \"point-in-time\" (got {text:?} with {:?})", mode.as_str()),
                );
                None
            }
            Some(text) => match OffsetDateTime::parse(&text, &Rfc3339) {
                Ok(t) => Some(t.to_offset(time::UtcOffset::UTC)),
                Err(_) => {
                    self.err(
                        f::SOURCE_RESTORE_TIME.key,
                        format!("{text:?} is not an RFC 3339 time such as \"2026-11-22T03:00:00Z\""),
                    );
                    None
                }
            },
            None if mode == SourceMode::PointInTime => {
                self.err(f::SOURCE_RESTORE_TIME.key, "is required with source.mode \"point-in-time\"");
                None
            }
            None => None,
        };
        self.check(f::SOURCE_SNAPSHOT_IDENTIFIER.key, snapshot_identifier.as_ref(), |s| {
            if s.len() > 1024 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("must be a snapshot identifier or ARN without spaces".into())
            } else {
                Ok(())
            }
        });
        let db_name = self.text(&mut obj, &f::SOURCE_DB_NAME);
        let username = self.text(&mut obj, &f::SOURCE_USERNAME);
        for (key, value) in [(f::SOURCE_DB_NAME.key, &db_name), (f::SOURCE_USERNAME.key, &username)] {
            self.check(key, value.as_ref(), |v| {
                if v.len() > 63 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    Err("must be at most 63 characters without spaces".into())
                } else {
                    Ok(())
                }
            });
        }
        self.refused(&mut obj, &f::SOURCE_PASSWORD);
        let password_secret_arn = self.text(&mut obj, &f::SOURCE_PASSWORD_SECRET_ARN);
        self.check(f::SOURCE_PASSWORD_SECRET_ARN.key, password_secret_arn.as_ref(), check_secret_arn);
        self.finish(obj);
        Some(SourceSpec {
            kind: kind?,
            identifier: identifier?,
            mode,
            account,
            snapshot_identifier,
            max_snapshot_age,
            restore_time,
            db_name: db_name?,
            username: username?,
            password_secret_arn: password_secret_arn?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RefreshError;
    use crate::error::{FieldError, ValidationErrors};
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "target": "staging",
            "source": {
                "type": "rds",
                "identifier": "prod-db",
                "dbName": "app",
                "username": "dblab",
                "passwordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-pw-AbCdEf"
            },
            "clone": {"instanceClass": "db.r6g.xlarge"},
            "dblab": {
                "apiEndpoint": "https://dblab.internal:2345/",
                "tokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dblab-token-AbCdEf"
            }
        })
    }

    fn errors(doc: &Value) -> Vec<FieldError> {
        match RefreshRequest::from_document(doc) {
            Err(ValidationErrors(e)) => e,
            Ok(r) => panic!("expected InvalidRequest, got {r:?}"),
        }
    }

    fn paths(doc: &Value) -> Vec<String> {
        errors(doc).into_iter().map(|e| e.path).collect()
    }

    /// The paths a document is refused at; none for a valid one.
    fn refused_at(doc: &Value) -> Vec<String> {
        RefreshRequest::from_document(doc).err().map(|e| e.0.into_iter().map(|e| e.path).collect()).unwrap_or_default()
    }

    #[test]
    fn another_accounts_production_is_read_only_through_its_shared_snapshots() {
        let mut doc = valid();
        doc["source"]["account"] = json!("111111111111");
        doc["source"]["maxSnapshotAge"] = json!("26h");
        let request = RefreshRequest::from_document(&doc).unwrap();
        assert_eq!(request.source.account.as_deref(), Some("111111111111"));
        assert_eq!(request.source.max_snapshot_age, Some(Duration::from_secs(26 * 3_600)));
        for bad in [json!("11111111111"), json!("1111111111111"), json!("11111111111a")] {
            doc["source"]["account"] = bad.clone();
            assert_eq!(paths(&doc), ["source.account"], "{bad}");
        }
        doc["source"]["account"] = json!("111111111111");
        doc["source"]["snapshotIdentifier"] = json!("rds:prod-db-2026-12-05");
        assert_eq!(paths(&doc), ["source.snapshotIdentifier"], "a shared snapshot is named by its ARN");
        doc["source"]["snapshotIdentifier"] = json!("arn:aws:rds:us-east-1:111111111111:snapshot:prod-copy");
        assert!(RefreshRequest::from_document(&doc).is_ok());
        let mut doc = valid();
        doc["source"]["account"] = json!("111111111111");
        doc["source"]["mode"] = json!("latest-point");
        assert_eq!(paths(&doc), ["source.account"], "a point in time needs production's backups");
        doc["source"]["mode"] = json!("point-in-time");
        doc["source"]["restoreTime"] = json!("2026-12-05T03:00:00Z");
        assert_eq!(paths(&doc), ["source.account"]);
        let mut doc = valid();
        doc["source"]["account"] = json!("111111111111");
        doc["source"]["type"] = json!("aurora-cluster");
        doc["source"]["mode"] = json!("fast-clone");
        assert!(RefreshRequest::from_document(&doc).is_ok(), "a cluster shared through RAM is cloned");
        let mut doc = valid();
        doc["source"]["mode"] = json!("latest-point");
        doc["source"]["maxSnapshotAge"] = json!("26h");
        assert_eq!(paths(&doc), ["source.maxSnapshotAge"]);
        let mut doc = valid();
        doc["source"]["maxSnapshotAge"] = json!("59m");
        assert_eq!(paths(&doc), ["source.maxSnapshotAge"]);
    }

    #[test]
    fn source_modes_and_the_fields_each_allows() {
        let with = |source: Value| {
            let mut doc = valid();
            for (k, v) in source.as_object().unwrap() {
                doc["source"][k] = v.clone();
            }
            doc
        };
        let ok = |doc: Value| RefreshRequest::from_document(&doc).unwrap().source;
        assert_eq!(ok(valid()).mode, SourceMode::Snapshot);
        assert_eq!(ok(with(json!({"mode": "latest-point"}))).mode, SourceMode::LatestPoint);
        let pit = ok(with(json!({"mode": "point-in-time", "restoreTime": "2026-11-22T05:30:00+02:00"})));
        assert_eq!(pit.restore_time, Some(time::macros::datetime!(2026-11-22 03:30 UTC)));
        let fast = ok(with(json!({"type": "aurora-cluster", "mode": "fast-clone"})));
        assert_eq!(fast.mode, SourceMode::FastClone);

        assert_eq!(paths(&with(json!({"mode": "pitr"}))), vec!["source.mode"]);
        assert!(errors(&with(json!({"mode": "pitr"})))[0].message.contains("\"point-in-time\""));
        assert_eq!(paths(&with(json!({"mode": "fast-clone"}))), vec!["source.mode"], "fast-clone of an RDS instance");
        assert_eq!(paths(&with(json!({"mode": "point-in-time"}))), vec!["source.restoreTime"], "time required");
        assert_eq!(
            paths(&with(json!({"mode": "point-in-time", "restoreTime": "yesterday 3am"}))),
            vec!["source.restoreTime"]
        );
        assert_eq!(paths(&with(json!({"restoreTime": "2026-11-22T03:00:00Z"}))), vec!["source.restoreTime"]);
        assert_eq!(
            paths(&with(json!({"mode": "latest-point", "snapshotIdentifier": "rds:prod-db-2026-11-21"}))),
            vec!["source.snapshotIdentifier"]
        );
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let r = RefreshRequest::from_document(&valid()).unwrap();
        assert_eq!(r.target, "staging");
        assert_eq!(r.source.kind, SourceType::Rds);
        assert_eq!(r.dblab.api_endpoint.as_deref(), Some("https://dblab.internal:2345"));
        assert_eq!(r.dblab.poll_interval, Duration::from_secs(30));
        assert_eq!(r.dblab.timeout, Duration::from_secs(4 * 3_600));
        assert_eq!(r.clone.max_age, Duration::from_secs(48 * 3_600));
        assert!(!r.clone.publicly_accessible);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut doc = valid();
        doc["source"]["type"] = json!("mysql");
        doc["source"]["identifier"] = json!("1bad--id");
        doc["clone"] = json!({"instanceClas": "db.t3.micro"});
        doc["dblab"]["pollInterval"] = json!("5x");
        doc["extra"] = json!(1);
        let found = paths(&doc);
        for expected in [
            "source.type",
            "source.identifier",
            "clone.instanceClass",
            "clone.instanceClas",
            "dblab.pollInterval",
            "extra",
        ] {
            assert!(found.contains(&expected.to_string()), "{expected} missing from {found:?}");
        }
    }

    #[test]
    fn misspelt_fields_get_a_suggestion() {
        let mut doc = valid();
        doc["clone"]["instanceClas"] = json!("db.t3.micro");
        let e = errors(&doc);
        let typo = e.iter().find(|e| e.path == "clone.instanceClas").unwrap();
        assert!(typo.message.contains("instanceClass"), "{}", typo.message);
    }

    #[test]
    fn plain_secrets_are_rejected_with_the_reason() {
        let mut doc = valid();
        doc["source"]["password"] = json!("hunter2");
        doc["dblab"]["token"] = json!("tok");
        let e = errors(&doc);
        let pw = e.iter().find(|e| e.path == "source.password").unwrap();
        assert!(pw.message.contains("Secrets Manager"));
        assert!(!pw.message.contains("hunter2"));
        assert!(e.iter().any(|e| e.path == "dblab.token"));
        assert!(!RefreshError::InvalidRequest(ValidationErrors(e)).to_string().contains("hunter2"));
    }

    #[test]
    fn secret_arns_must_be_arns() {
        let mut doc = valid();
        doc["source"]["passwordSecretArn"] = json!("my-password");
        assert_eq!(paths(&doc), vec!["source.passwordSecretArn"]);
        for partial in [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-pw",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-pw-AbCdE",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:AbCdEf",
            "arn:aws:secretsmanager:us-east-1:1234:secret:prod-pw-AbCdEf",
        ] {
            doc["source"]["passwordSecretArn"] = json!(partial);
            assert_eq!(paths(&doc), vec!["source.passwordSecretArn"], "{partial}");
        }
        doc["source"]["passwordSecretArn"] = json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-pw");
        assert!(errors(&doc)[0].message.contains("partial ARN"), "{:?}", errors(&doc));
        doc["source"]["passwordSecretArn"] =
            json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:team/prod-pw-x1Y2z3");
        assert_eq!(refused_at(&doc), Vec::<String>::new());
    }

    #[test]
    fn reserved_and_aws_tags_are_refused() {
        let mut doc = valid();
        doc["clone"]["tags"] = json!({"ManagedBy": "me", "aws:x": "y", "team": "db", "n": 3});
        let found = paths(&doc);
        assert!(found.contains(&"clone.tags.ManagedBy".to_string()));
        assert!(found.contains(&"clone.tags.aws:x".to_string()));
        assert!(found.contains(&"clone.tags.n".to_string()));
        assert!(!found.contains(&"clone.tags.team".to_string()));
    }

    #[test]
    fn a_request_past_its_size_bound_is_refused_as_a_whole() {
        let mut doc = valid();
        // As large as a real request gets: forty tags of 200 characters.
        let tags: serde_json::Map<_, _> = (0..40).map(|i| (format!("k{i}"), json!("v".repeat(200)))).collect();
        doc["clone"]["tags"] = json!(tags);
        assert_eq!(refused_at(&doc), Vec::<String>::new(), "{} bytes", doc.to_string().len());
        // Exactly at the bound, then a byte past it (the unknown field is refused either way).
        doc["note"] = json!("");
        let pad = super::super::MAX_REQUEST_BYTES - doc.to_string().len();
        doc["note"] = json!("x".repeat(pad));
        assert_eq!(doc.to_string().len(), super::super::MAX_REQUEST_BYTES);
        assert!(!refused_at(&doc).contains(&"request".to_string()), "at the bound");
        doc["note"] = json!("x".repeat(pad + 1));
        let found = refused_at(&doc);
        assert_eq!(found.first().map(String::as_str), Some("request"), "{found:?}");
    }

    #[test]
    fn identifiers_are_read_as_rds_stores_them() {
        let mut doc = valid();
        doc["source"]["identifier"] = json!("Prod-DB");
        doc["source"]["snapshotIdentifier"] = json!("Nightly-2026-12-01");
        let request = RefreshRequest::from_document(&doc).unwrap();
        assert_eq!(request.source.identifier, "prod-db");
        assert_eq!(request.source.snapshot_identifier.as_deref(), Some("nightly-2026-12-01"));
    }

    #[test]
    fn provisioned_storage_needs_iops_within_its_type_bounds() {
        let mut doc = valid();
        for st in ["io1", "io2"] {
            doc["clone"]["storageType"] = json!(st);
            let problems = errors(&doc);
            assert_eq!(paths(&doc), ["clone.iops"], "{st}");
            assert!(problems[0].message.contains("is required"), "{problems:?}");
        }
        doc["clone"]["storageType"] = json!("gp3");
        assert_eq!(refused_at(&doc), Vec::<String>::new(), "gp3 takes its baseline without IOPS");
        let cases = [("io1", 1000, true), ("io2", 256_000, true), ("io1", 999, false), ("gp3", 12_000, true)];
        let more = [("gp3", 11_999, false), ("gp3", 64_000, true), ("gp3", 64_001, false), ("io2", 256_001, false)];
        for (st, iops, ok) in cases.into_iter().chain(more) {
            doc["clone"]["storageType"] = json!(st);
            doc["clone"]["iops"] = json!(iops);
            let expected: &[&str] = if ok { &[] } else { &["clone.iops"] };
            assert_eq!(refused_at(&doc), expected, "{st} {iops}");
        }
        doc["clone"]["storageType"] = json!("io1");
        doc["clone"]["iops"] = json!(5000);
        assert_eq!(RefreshRequest::from_document(&doc).unwrap().clone.iops, Some(5000));
        for st in [Some("gp2"), Some("standard"), None] {
            doc["clone"]["storageType"] = st.map_or(serde_json::Value::Null, |s| json!(s));
            assert_eq!(paths(&doc), ["clone.iops"], "{st:?}");
        }
    }

    #[test]
    fn tags_rds_would_refuse_are_refused_naming_the_tag() {
        let mut doc = valid();
        for (key, value) in
            [("rds:owner", "me"), ("team", "rds:db"), ("team", "AWS:x"), ("cost#centre", "1"), ("team", "a,b")]
        {
            doc["clone"]["tags"] = json!({ key: value });
            let problems = errors(&doc);
            assert_eq!(paths(&doc), [format!("clone.tags.{key}")], "{key}={value}");
            assert!(problems[0].message.contains("RDS refuses this tag"), "{problems:?}");
        }
        doc["clone"]["tags"] = json!({"Team": "Data Platform @ HQ", "cost-centre": "a/b=c+d:e_f.g"});
        assert_eq!(refused_at(&doc), Vec::<String>::new());
    }

    #[test]
    fn freshness_max_age_is_optional_and_checked() {
        let mut doc = valid();
        assert_eq!(RefreshRequest::from_document(&doc).unwrap().freshness_max_age, None);
        doc["freshness"] = json!({"maxAge": "36h"});
        assert_eq!(
            RefreshRequest::from_document(&doc).unwrap().freshness_max_age,
            Some(Duration::from_secs(36 * 3_600))
        );
        doc["freshness"] = json!({"maxAge": "10m"});
        assert_eq!(paths(&doc), vec!["freshness.maxAge"]);
        doc["freshness"] = json!({});
        assert_eq!(paths(&doc), vec!["freshness.maxAge"]);
        doc["freshness"] = json!({"maxAge": "2d", "colour": "red"});
        assert_eq!(paths(&doc), vec!["freshness.colour"]);
    }

    #[test]
    fn max_age_must_outlive_the_run_with_every_part_of_it() {
        let mut doc = valid();
        doc["clone"]["maxAge"] = json!("5h");
        assert_eq!(paths(&doc), vec!["clone.maxAge"]);
        // Defaults: 2h + 4h + 30s + 30s + 15m + (1h + 30s) = 7h16m30s.
        doc["clone"]["maxAge"] = json!("7h16m30s");
        let errors = errors(&doc);
        assert_eq!(errors.len(), 1, "the boundary itself is too short");
        assert!(
            errors[0].message.contains("7h16m30s") && errors[0].message.contains("for the deletion"),
            "{}",
            errors[0].message
        );
        doc["clone"]["maxAge"] = json!("7h17m");
        assert!(RefreshRequest::from_document(&doc).is_ok(), "just past it is enough");
    }

    #[test]
    fn the_start_window_defaults_sensibly_and_is_bounded() {
        let start = |dblab: Value| {
            let mut doc = valid();
            for (k, v) in dblab.as_object().unwrap() {
                doc["dblab"][k] = v.clone();
            }
            RefreshRequest::from_document(&doc).map(|r| r.dblab.start_timeout)
        };
        assert_eq!(start(json!({})).unwrap(), Duration::from_secs(300), "five minutes by default");
        assert_eq!(start(json!({"pollInterval": "5m"})).unwrap(), Duration::from_secs(900), "at least three polls");
        assert_eq!(start(json!({"timeout": "4m", "pollInterval": "30s"})).unwrap(), Duration::from_secs(120));
        assert_eq!(start(json!({"timeout": "3s", "pollInterval": "1s"})).unwrap(), Duration::from_secs(3));
        assert_eq!(start(json!({"startTimeout": "2m"})).unwrap(), Duration::from_secs(120));
        for bad in [json!({"startTimeout": "45s"}), json!({"startTimeout": "3h"})] {
            let err = start(bad.clone()).unwrap_err().to_string();
            assert!(err.contains("dblab.startTimeout"), "{bad}: {err}");
        }
        // The bounds themselves: two polls exactly, half the timeout exactly.
        assert_eq!(start(json!({"startTimeout": "60s"})).unwrap(), Duration::from_secs(60));
        assert!(start(json!({"startTimeout": "59s"})).unwrap_err().to_string().contains("must allow two polls"));
        assert_eq!(start(json!({"startTimeout": "2h"})).unwrap(), Duration::from_secs(7_200));
        assert!(
            start(json!({"startTimeout": "2h1s"})).unwrap_err().to_string().contains("at most half of dblab.timeout")
        );
        // A default of exactly two polls stands; under that, the whole timeout is the window.
        assert_eq!(start(json!({"timeout": "4s", "pollInterval": "1s"})).unwrap(), Duration::from_secs(2));
        assert_eq!(start(json!({"timeout": "8m", "pollInterval": "2m"})).unwrap(), Duration::from_secs(240));
    }

    #[test]
    fn serverless_is_aurora_only_and_its_capacity_has_limits() {
        let mut doc = valid();
        doc["clone"]["instanceClass"] = json!("db.serverless");
        assert_eq!(paths(&doc), ["clone.instanceClass"], "an RDS instance cannot be serverless");
        doc["source"]["type"] = json!("aurora-cluster");
        assert_eq!(RefreshRequest::from_document(&doc).unwrap().clone.serverless_capacity, None, "copied later");
        doc["clone"]["minCapacity"] = json!(0.5);
        doc["clone"]["maxCapacity"] = json!(8);
        let capacity = RefreshRequest::from_document(&doc).unwrap().clone.serverless_capacity.unwrap();
        assert_eq!((capacity.min_capacity, capacity.max_capacity), (0.5, 8.0));
        for (min, max, path) in [
            (json!(0.3), json!(8), "clone.minCapacity"),
            (json!(4), json!(300), "clone.maxCapacity"),
            (json!(8), json!(4), "clone.minCapacity"),
            (json!(1), json!(0), "clone.maxCapacity"),
        ] {
            doc["clone"]["minCapacity"] = min.clone();
            doc["clone"]["maxCapacity"] = max.clone();
            assert_eq!(paths(&doc), [path], "{min} {max}");
        }
        // Equal capacities are a fixed size, not an error.
        doc["clone"]["minCapacity"] = json!(4);
        doc["clone"]["maxCapacity"] = json!(4);
        assert_eq!(refused_at(&doc), Vec::<String>::new());
        doc["clone"].as_object_mut().unwrap().remove("maxCapacity");
        doc["clone"]["minCapacity"] = json!(1);
        assert_eq!(paths(&doc), ["clone.maxCapacity"], "the two go together");
        let mut provisioned = valid();
        provisioned["clone"]["minCapacity"] = json!(1);
        provisioned["clone"]["maxCapacity"] = json!(2);
        assert_eq!(paths(&provisioned), ["clone.minCapacity"]);
    }

    #[test]
    fn the_engine_is_named_and_its_transport_is_the_stacks() {
        let mut doc = valid();
        doc["dblab"] = json!({"tokenSecretArn": doc["dblab"]["tokenSecretArn"]});
        let e = errors(&doc);
        assert_eq!(e.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["dblab.engine"]);
        assert!(e[0].message.contains("DblabEngines"), "{}", e[0].message);
        doc["dblab"]["engine"] = json!("staging");
        assert!(RefreshRequest::from_document(&doc).is_ok(), "by name alone");
        doc["dblab"]["engine"] = json!("no spaces");
        assert_eq!(paths(&doc), ["dblab.engine"]);
        let mut doc = valid();
        doc["dblab"]["insecure"] = json!(false);
        doc["dblab"]["allowPlaintext"] = json!(false);
        assert!(RefreshRequest::from_document(&doc).is_ok(), "false, as requests said before, still reads");
        doc["dblab"]["insecure"] = json!(true);
        doc["dblab"]["allowPlaintext"] = json!(true);
        let e = errors(&doc);
        assert_eq!(e.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["dblab.insecure", "dblab.allowPlaintext"]);
        assert!(e.iter().all(|e| e.message.contains("DblabEngines")), "{e:?}");
        doc["dblab"]["insecure"] = json!("yes");
        assert!(paths(&doc).contains(&"dblab.insecure".to_string()));
    }

    #[test]
    fn every_bound_is_where_it_says() {
        let with = |pointer: &str, value: Value| {
            let mut doc = valid();
            *doc.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
            refused_at(&doc)
        };
        let none: Vec<String> = Vec::new();
        assert_eq!(with("/source/dbName", json!("d".repeat(63))), none);
        assert_eq!(with("/source/dbName", json!("d".repeat(64))), ["source.dbName"]);
        assert_eq!(with("/source/username", json!("u".repeat(64))), ["source.username"]);
        assert_eq!(with("/source/username", json!("dblab reader")), ["source.username"]);
        let mut doc = valid();
        doc["source"]["snapshotIdentifier"] = json!("s".repeat(1024));
        assert_eq!(refused_at(&doc), none);
        doc["source"]["snapshotIdentifier"] = json!("s".repeat(1025));
        assert_eq!(refused_at(&doc), ["source.snapshotIdentifier"]);
        doc["source"]["snapshotIdentifier"] = json!("rds:prod\u{7}");
        assert_eq!(refused_at(&doc), ["source.snapshotIdentifier"]);
        doc["source"]["snapshotIdentifier"] = json!("rds: prod");
        assert_eq!(refused_at(&doc), ["source.snapshotIdentifier"]);
        doc["clone"]["port"] = json!(1150);
        doc["source"]["snapshotIdentifier"] = json!("rds:prod");
        assert_eq!(refused_at(&doc), none);
        assert_eq!(RefreshRequest::from_document(&doc).unwrap().clone.port, Some(1150));
        for port in [json!(1149), json!(65536), json!("5432")] {
            doc["clone"]["port"] = port.clone();
            assert_eq!(refused_at(&doc), ["clone.port"], "{port}");
        }
        doc["clone"]["port"] = json!(65535);
        assert_eq!(refused_at(&doc), none);
        let mut doc = valid();
        doc["clone"]["maxAge"] = json!("30d");
        assert_eq!(refused_at(&doc), none);
        doc["clone"]["maxAge"] = json!("30d1s");
        assert_eq!(refused_at(&doc), ["clone.maxAge"]);
        let mut doc = valid();
        doc["clone"]["deletionTimeout"] = json!("12h");
        assert_eq!(refused_at(&doc), none);
        doc["clone"]["deletionTimeout"] = json!("12h1s");
        assert_eq!(refused_at(&doc), ["clone.deletionTimeout"]);
    }

    #[test]
    fn a_run_planned_to_outlast_the_execution_is_refused() {
        let mut doc = valid();
        doc["clone"]["maxAge"] = json!("30d");
        doc["clone"]["restoreTimeout"] = json!("12h");
        doc["clone"]["pollInterval"] = json!("1h");
        doc["dblab"]["pollInterval"] = json!("1h");
        doc["clone"]["deletionTimeout"] = json!("9h");
        // 12h + 48h + 1h + 1h + 15m + 9h + 1h = 72h15m.
        doc["dblab"]["timeout"] = json!("2d");
        let problems = errors(&doc);
        assert_eq!(paths(&doc), ["dblab.timeout"], "{problems:?}");
        assert!(problems[0].message.contains("longer than the 3d an execution may"), "{problems:?}");
        doc["dblab"]["timeout"] = json!("47h45m");
        assert!(RefreshRequest::from_document(&doc).is_ok(), "72h exactly fits");
    }

    #[test]
    fn tags_have_a_count_and_a_value_length_limit() {
        let mut doc = valid();
        let tags = |n: usize| serde_json::Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
        doc["clone"]["tags"] = tags(crate::tags::MAX_USER_TAGS);
        assert_eq!(refused_at(&doc), Vec::<String>::new());
        doc["clone"]["tags"] = tags(crate::tags::MAX_USER_TAGS + 1);
        assert_eq!(refused_at(&doc), ["clone.tags"]);
        doc["clone"]["tags"] = json!({"team": "x".repeat(256)});
        assert_eq!(refused_at(&doc), Vec::<String>::new());
        doc["clone"]["tags"] = json!({"team": "x".repeat(257)});
        assert_eq!(refused_at(&doc), ["clone.tags.team"]);
    }

    #[test]
    fn a_security_group_is_an_sg_id_with_something_after_the_prefix() {
        let mut doc = valid();
        doc["clone"]["securityGroups"] = json!(["sg-1", "sg-", "web"]);
        assert_eq!(refused_at(&doc), ["clone.securityGroups[1]", "clone.securityGroups[2]"]);
    }

    #[test]
    fn the_polls_a_request_allows_are_counted_and_capped() {
        let mut doc = valid();
        doc["clone"]["restoreTimeout"] = json!("1000s");
        doc["clone"]["pollInterval"] = json!("1s");
        doc["dblab"]["timeout"] = json!("1000s");
        doc["dblab"]["pollInterval"] = json!("1s");
        assert_eq!(refused_at(&doc), Vec::<String>::new(), "2,000 polls: the most allowed");
        doc["dblab"]["timeout"] = json!("1001s");
        assert_eq!(refused_at(&doc), ["dblab.pollInterval"]);
        let err = RefreshRequest::from_document(&doc).unwrap_err().to_string();
        assert!(err.contains("allow 2001 polls"), "{err}");
        doc["clone"]["pollInterval"] = json!("2s");
        assert_eq!(refused_at(&doc), Vec::<String>::new(), "500 + 1001");
    }

    #[test]
    fn ignored_errors_are_refused_unless_allowed() {
        let mut doc = valid();
        assert!(!RefreshRequest::from_document(&doc).unwrap().dblab.allow_ignored_errors);
        doc["dblab"]["allowIgnoredErrors"] = json!(true);
        assert!(RefreshRequest::from_document(&doc).unwrap().dblab.allow_ignored_errors);
        doc["dblab"]["allowIgnoredErrors"] = json!("yes");
        assert_eq!(paths(&doc), vec!["dblab.allowIgnoredErrors"]);
    }

    #[test]
    fn restore_parallel_jobs_is_a_cpu_count() {
        let mut doc = valid();
        doc["dblab"]["restoreParallelJobs"] = json!(8);
        assert_eq!(RefreshRequest::from_document(&doc).unwrap().dblab.restore_parallel_jobs, Some(8));
        doc["dblab"]["restoreParallelJobs"] = json!(0);
        assert_eq!(paths(&doc), vec!["dblab.restoreParallelJobs"]);
        doc["dblab"]["restoreParallelJobs"] = json!("8");
        assert_eq!(paths(&doc), vec!["dblab.restoreParallelJobs"]);
    }

    #[test]
    fn too_many_polls_are_refused() {
        let mut doc = valid();
        doc["dblab"]["pollInterval"] = json!("1s");
        assert_eq!(paths(&doc), vec!["dblab.pollInterval"]);
    }

    #[test]
    fn cluster_options_follow_the_source_type() {
        let mut doc = valid();
        doc["clone"]["clusterParameterGroup"] = json!("pg");
        doc["clone"]["storageType"] = json!("aurora");
        let found = paths(&doc);
        assert_eq!(found, vec!["clone.clusterParameterGroup", "clone.storageType"]);
        doc["source"]["type"] = json!("aurora-cluster");
        assert!(RefreshRequest::from_document(&doc).is_ok());
    }

    #[test]
    fn endpoint_must_be_http_without_credentials() {
        for bad in ["ftp://x", "not a url", "https://user:pw@host", "https://host/?q=1"] {
            let mut doc = valid();
            doc["dblab"]["apiEndpoint"] = json!(bad);
            assert_eq!(paths(&doc), vec!["dblab.apiEndpoint"], "{bad}");
        }
    }

    #[test]
    fn a_ca_must_be_pem() {
        let mut doc = valid();
        doc["dblab"]["caCertificate"] = json!("not a pem");
        assert_eq!(paths(&doc), ["dblab.caCertificate"]);
    }

    #[test]
    fn missing_sections_and_wrong_types() {
        assert_eq!(paths(&json!([])), vec!["request"]);
        let found = paths(&json!({"target": 5}));
        assert_eq!(found, vec!["target", "source", "clone", "dblab"]);
        let mut doc = valid();
        doc["clone"]["port"] = json!(80);
        doc["clone"]["securityGroups"] = json!(["sg-1", "default"]);
        doc["clone"]["publiclyAccessible"] = json!("yes");
        assert_eq!(paths(&doc), vec!["clone.securityGroups[1]", "clone.publiclyAccessible", "clone.port"]);
    }

    #[test]
    fn rds_identifier_rules() {
        assert!(check_rds_identifier("prod-db-1").is_ok());
        for bad in ["", "1db", "a--b", "ab-", "a_b", &"a".repeat(64)] {
            assert!(check_rds_identifier(bad).is_err(), "{bad}");
        }
    }
}
