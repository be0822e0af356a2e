//! Every field of a refresh request, once: its key, whether it is required, its kind with
//! its bounds and default, and the line people read about it. The validator reads each
//! field through its entry here, and the reference in `docs/request.md` is generated from
//! this table (a test holds the two together; `make docs` rewrites it).

use std::time::Duration;

#[cfg(test)]
use crate::duration;

pub struct Field {
    /// The JSON path, e.g. `clone.maxAge`.
    pub key: &'static str,
    pub required: bool,
    pub kind: Kind,
    /// What applies when the field is not given, in words, where the kind does not say it
    /// (a flag is `false`, a period has its default).
    pub unset: &'static str,
    pub doc: &'static str,
}

pub enum Kind {
    Text,
    /// One of these words.
    Choice(&'static [&'static str]),
    Flag,
    /// A duration such as `30s`, `1h30m`; `default` applies when it is not given.
    Period {
        default: Option<Duration>,
        least: Duration,
        most: Duration,
    },
    Whole {
        least: u64,
        most: u64,
    },
    /// Aurora capacity units, in steps of 0.5, up to 256.
    Acus {
        least: f64,
    },
    SecurityGroups,
    Tags,
    /// A field that must never be given (a secret in clear), and why.
    Refused(&'static str),
    /// A flag whose setting moved out of the request: `false` is accepted (requests written
    /// before still read), `true` is refused, saying where it went.
    Moved(&'static str),
}

/// Aurora Serverless v2's largest capacity.
pub(crate) const MOST_ACUS: f64 = 256.0;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const HOUR: u64 = 3_600;

const fn period(default: Option<Duration>, least: Duration, most: Duration) -> Kind {
    Kind::Period { default, least, most }
}

pub const TARGET: Field = Field {
    key: "target",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "Names the DBLab instance in history, locks and clone names: 1-63 letters, digits, `-`, `_`, `.`, starting with a letter or digit",
};
pub const FRESHNESS_MAX_AGE: Field = Field {
    key: "freshness.maxAge",
    required: false,
    kind: period(None, secs(HOUR), secs(90 * 24 * HOUR)),
    unset: "the stack's `StaleAfterHours`",
    doc: "This target's data is stale (`dblab-refresh status`, the stale-target alarm) once older than this. Required when `freshness` is given",
};
pub(crate) const SOURCE_TYPE: Field = Field {
    key: "source.type",
    required: true,
    kind: Kind::Choice(&["rds", "aurora-cluster"]),
    unset: "",
    doc: "An RDS instance or an Aurora cluster",
};
pub(crate) const SOURCE_IDENTIFIER: Field = Field {
    key: "source.identifier",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "The production instance or cluster. Only described, never modified",
};
pub(crate) const SOURCE_ACCOUNT: Field = Field {
    key: "source.account",
    required: false,
    kind: Kind::Text,
    unset: "this stack's account",
    doc: "The 12-digit account production lives in, when it is not this one: the clone is restored from the newest available snapshot of `source.identifier` that account shares with this one (mode `snapshot`), or, for an Aurora cluster it shares through AWS RAM, cloned copy-on-write (mode `fast-clone`); nothing else of that account is described. See [Production in another account](deploying.md#production-in-another-account)",
};
pub(crate) const SOURCE_MAX_SNAPSHOT_AGE: Field = Field {
    key: "source.maxSnapshotAge",
    required: false,
    kind: period(None, secs(HOUR), secs(30 * 24 * HOUR)),
    unset: "no bound",
    doc: "Mode `snapshot` only: refuse, at the preflight, a snapshot whose data is older than this (`NoSnapshotAvailable`, saying how old the newest is), e.g. when the production account stopped sharing",
};
pub(crate) const SOURCE_MODE: Field = Field {
    key: "source.mode",
    required: false,
    kind: Kind::Choice(&["snapshot", "latest-point", "point-in-time", "fast-clone"]),
    unset: "`snapshot`",
    doc: "What the clone is restored from; `fast-clone` is Aurora only. See [Source modes](#source-modes)",
};
pub(crate) const SOURCE_SNAPSHOT_IDENTIFIER: Field = Field {
    key: "source.snapshotIdentifier",
    required: false,
    kind: Kind::Text,
    unset: "the newest available automated snapshot",
    doc: "Mode `snapshot` only: an explicit snapshot (id or ARN); it must exist, be `available`, and be a snapshot of `source.identifier`",
};
pub(crate) const SOURCE_RESTORE_TIME: Field = Field {
    key: "source.restoreTime",
    required: false,
    kind: Kind::Text,
    unset: "required with `point-in-time`",
    doc: "Mode `point-in-time` only: an RFC 3339 time, e.g. `2026-11-22T03:00:00Z`, inside the source's restorable window",
};
pub(crate) const SOURCE_DB_NAME: Field = Field {
    key: "source.dbName",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "Database DBLab dumps (at most 63 characters)",
};
pub(crate) const SOURCE_USERNAME: Field = Field {
    key: "source.username",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "User DBLab connects as (at most 63 characters)",
};
pub(crate) const SOURCE_PASSWORD: Field = Field {
    key: "source.password",
    required: false,
    kind: Kind::Refused(
        "plain passwords are not accepted: they would be stored in the execution history; put the password in Secrets Manager and give its ARN as source.passwordSecretArn",
    ),
    unset: "",
    doc: "",
};
pub(crate) const SOURCE_PASSWORD_SECRET_ARN: Field = Field {
    key: "source.passwordSecretArn",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "That user's password: a plain secret, or JSON with a `password` field (as RDS-managed secrets are). Its full ARN, ending in the six characters Secrets Manager adds to the name: IAM denies a partial one",
};
pub(crate) const CLONE_INSTANCE_CLASS: Field = Field {
    key: "clone.instanceClass",
    required: true,
    kind: Kind::Text,
    unset: "",
    doc: "Class of the temporary clone (e.g. `db.r6g.xlarge`); dump parallelism is half its vCPUs. `db.serverless` (Aurora Serverless v2) only for an `aurora-cluster` source",
};
pub(crate) const CLONE_MIN_CAPACITY: Field = Field {
    key: "clone.minCapacity",
    required: false,
    kind: Kind::Acus { least: 0.0 },
    unset: "the source cluster's",
    doc: "With `db.serverless`, together with `clone.maxCapacity`: the clone's capacity range. Unset, the source cluster's Serverless v2 scaling configuration is copied; a source without one is refused at the preflight. The preflight checks the range against the source's engine version (a minimum of 0, auto-pause, only on versions that pause)",
};
pub(crate) const CLONE_MAX_CAPACITY: Field = Field {
    key: "clone.maxCapacity",
    required: false,
    kind: Kind::Acus { least: 1.0 },
    unset: "the source cluster's",
    doc: "With `db.serverless`: the top of the range (above 128 only on versions that scale to 256)",
};
pub(crate) const CLONE_SUBNET_GROUP: Field = Field {
    key: "clone.subnetGroup",
    required: false,
    kind: Kind::Text,
    unset: "the source's default",
    doc: "DB subnet group of the clone",
};
pub(crate) const CLONE_SECURITY_GROUPS: Field = Field {
    key: "clone.securityGroups",
    required: false,
    kind: Kind::SecurityGroups,
    unset: "the default VPC group",
    doc: "List of `sg-...` ids; DBLab must reach the clone through them",
};
pub(crate) const CLONE_PUBLICLY_ACCESSIBLE: Field = Field {
    key: "clone.publiclyAccessible",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Give the clone a public address",
};
pub(crate) const CLONE_TAGS: Field = Field {
    key: "clone.tags",
    required: false,
    kind: Kind::Tags,
    unset: "none",
    doc: "Extra tags as RDS allows them: keys of 1-128 and values of up to 256 letters, digits, spaces and `_ . : / = + - @`, neither starting with `aws:` or `rds:`. `ManagedBy`, `DeleteAfter` and `dblab-refresh:*` are the orchestrator's own",
};
pub(crate) const CLONE_PARAMETER_GROUP: Field = Field {
    key: "clone.parameterGroup",
    required: false,
    kind: Kind::Text,
    unset: "the engine's default",
    doc: "DB parameter group (Aurora: of the writer instance)",
};
pub(crate) const CLONE_OPTION_GROUP: Field = Field {
    key: "clone.optionGroup",
    required: false,
    kind: Kind::Text,
    unset: "the engine's default",
    doc: "RDS only",
};
pub(crate) const CLONE_CLUSTER_PARAMETER_GROUP: Field = Field {
    key: "clone.clusterParameterGroup",
    required: false,
    kind: Kind::Text,
    unset: "the engine's default",
    doc: "Aurora only",
};
pub(crate) const CLONE_PORT: Field = Field {
    key: "clone.port",
    required: false,
    kind: Kind::Whole { least: 1150, most: 65535 },
    unset: "the snapshot's",
    doc: "Port of the clone",
};
pub(crate) const CLONE_STORAGE_TYPE: Field = Field {
    key: "clone.storageType",
    required: false,
    kind: Kind::Text,
    unset: "the snapshot's",
    doc: "`gp2`, `gp3`, `io1`, `io2`, `standard` (RDS); `aurora`, `aurora-iopt1` (Aurora)",
};
pub(crate) const CLONE_IOPS: Field = Field {
    key: "clone.iops",
    required: false,
    kind: Kind::Whole { least: 1000, most: 256_000 },
    unset: "required with `io1`, `io2`; `gp3`: its baseline",
    doc: "Provisioned IOPS of an RDS clone: required with `storageType` `io1` or `io2` (1000-256000, and 0.5 to 50 per GiB for `io1`, 0.5 to 1000 for `io2`); with `gp3` optional, 12000-64000, and only on 400 GiB or more (PostgreSQL), as RDS allows. The storage is checked at the preflight",
};
pub(crate) const CLONE_ENABLE_IAM_AUTH: Field = Field {
    key: "clone.enableIAMAuth",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Turn on IAM database authentication on the clone",
};
pub(crate) const CLONE_DELETION_PROTECTION: Field = Field {
    key: "clone.deletionProtection",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Turned off again before the clone is deleted",
};
pub(crate) const CLONE_DELETE_AFTER_DUMP: Field = Field {
    key: "clone.deleteAfterDump",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Delete the clone as soon as DBLab has dumped from it, while DBLab restores and snapshots (see [below](#deleting-the-clone-after-the-dump)). Refused if the engine has `immediateRestore` on",
};
pub(crate) const CLONE_MAX_AGE: Field = Field {
    key: "clone.maxAge",
    required: false,
    kind: period(Some(secs(48 * HOUR)), secs(60), secs(30 * 24 * HOUR)),
    unset: "",
    doc: "The clone's `DeleteAfter` tag: past it the orphan sweep deletes the clone. Must be longer than the longest a run can last: `clone.restoreTimeout` + `dblab.timeout` + one `clone.pollInterval` and one `dblab.pollInterval` + 15m for the preflight and the patch + `clone.deletionTimeout` + one more `clone.pollInterval`",
};
pub(crate) const CLONE_RESTORE_TIMEOUT: Field = Field {
    key: "clone.restoreTimeout",
    required: false,
    kind: period(Some(secs(2 * HOUR)), secs(1), secs(12 * HOUR)),
    unset: "",
    doc: "Give up on a clone not `available` by then",
};
pub(crate) const CLONE_POLL_INTERVAL: Field = Field {
    key: "clone.pollInterval",
    required: false,
    kind: period(Some(secs(30)), secs(1), secs(HOUR)),
    unset: "",
    doc: "Time between two looks at the clone",
};
pub const CLONE_DELETION_TIMEOUT: Field = Field {
    key: "clone.deletionTimeout",
    required: false,
    kind: period(Some(secs(HOUR)), secs(1), secs(12 * HOUR)),
    unset: "",
    doc: "How long the clone's deletion is followed (on success and on failure). A clone still being deleted then is left to the orphan sweep; a refresh that worked is still recorded as a success, saying so",
};
pub(crate) const DBLAB_ENGINE: Field = Field {
    key: "dblab.engine",
    required: false,
    kind: Kind::Text,
    unset: "required, or `dblab.apiEndpoint`",
    doc: "The engine to refresh, by its name in the stack's `DblabEngines` list, which gives its address, its token secret and whether plain HTTP or an unverified certificate is allowed for it. A request cannot name an engine the stack does not list: it is refused before any secret is read",
};
pub(crate) const DBLAB_API_ENDPOINT: Field = Field {
    key: "dblab.apiEndpoint",
    required: false,
    kind: Kind::Text,
    unset: "the engine's, from the list",
    doc: "The engine by its address instead: it must be the address of an engine in `DblabEngines` (another spelling of it, such as a trailing slash or the default port, is the same), and with `dblab.engine`, that engine's",
};
pub(crate) const DBLAB_TOKEN: Field = Field {
    key: "dblab.token",
    required: false,
    kind: Kind::Refused(
        "plain tokens are not accepted: they would be stored in the execution history; the token comes from the engine's secret in the stack's DblabEngines",
    ),
    unset: "",
    doc: "",
};
pub(crate) const DBLAB_TOKEN_SECRET_ARN: Field = Field {
    key: "dblab.tokenSecretArn",
    required: false,
    kind: Kind::Text,
    unset: "the engine's, from the list",
    doc: "If given, it must be the engine's own token secret in `DblabEngines` (its full ARN): a token is never sent to another engine than its own",
};
pub(crate) const DBLAB_INSECURE: Field = Field {
    key: "dblab.insecure",
    required: false,
    kind: Kind::Moved(
        "an unverified certificate is the stack's choice, not the request's: add `insecure` to the engine's entry in DblabEngines (or trust its CA with dblab.caCertificate)",
    ),
    unset: "",
    doc: "",
};
pub(crate) const DBLAB_ALLOW_PLAINTEXT: Field = Field {
    key: "dblab.allowPlaintext",
    required: false,
    kind: Kind::Moved(
        "plain HTTP is the stack's choice, not the request's: add `plaintext` to the engine's entry in DblabEngines",
    ),
    unset: "",
    doc: "",
};
pub(crate) const DBLAB_ALLOW_IGNORED_ERRORS: Field = Field {
    key: "dblab.allowIgnoredErrors",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Accept an engine configured to ignore restore (or dump) errors (`ignoreErrors: true`), whose refreshes can finish with tables missing; the row and notification then say so. Without it such an engine is refused at the preflight",
};
pub(crate) const DBLAB_ALLOW_LVM: Field = Field {
    key: "dblab.allowLvm",
    required: false,
    kind: Kind::Flag,
    unset: "",
    doc: "Accept an engine whose pools are on LVM. LVM keeps no snapshots (the engine lists one technical snapshot stamped with the time of the call), so a refresh's success then rests on the engine's `finished` alone, not on a new snapshot of its pool; the row and notification say so. Without it such an engine is refused at the preflight",
};
pub(crate) const DBLAB_CA_CERTIFICATE: Field = Field {
    key: "dblab.caCertificate",
    required: false,
    kind: Kind::Text,
    unset: "none",
    doc: "PEM certificate(s) to trust for the engine, in addition to the system roots; not for an engine the stack lists as `insecure`",
};
pub(crate) const DBLAB_POLL_INTERVAL: Field = Field {
    key: "dblab.pollInterval",
    required: false,
    kind: period(Some(secs(30)), secs(1), secs(HOUR)),
    unset: "",
    doc: "Time between two looks at the engine",
};
pub(crate) const DBLAB_TIMEOUT: Field = Field {
    key: "dblab.timeout",
    required: false,
    kind: period(Some(secs(4 * HOUR)), secs(1), secs(2 * 24 * HOUR)),
    unset: "",
    doc: "Give up on a refresh without an outcome by then",
};
pub(crate) const DBLAB_START_TIMEOUT: Field = Field {
    key: "dblab.startTimeout",
    required: false,
    kind: period(Some(secs(5 * 60)), secs(1), secs(2 * 24 * HOUR)),
    unset: "",
    doc: "Give up on a refresh the engine accepted but was never seen running by then (`RefreshNotStarted`). Unset: 5m, but at least three polls and at most half of `dblab.timeout`; when set, at least two polls and at most half of `dblab.timeout`",
};
pub(crate) const DBLAB_RESTORE_PARALLEL_JOBS: Field = Field {
    key: "dblab.restoreParallelJobs",
    required: false,
    kind: Kind::Whole { least: 1, most: 128 },
    unset: "the engine's own",
    doc: "pg_restore jobs: the DBLab host's CPUs (never the Lambda's). The key must exist in the engine's `server.yml`; the run fails with `DblabConfigNotApplied` otherwise",
};

/// The whole request, in the order of the reference.
#[cfg(test)]
pub(crate) const FIELDS: &[&Field] = &[
    &TARGET,
    &FRESHNESS_MAX_AGE,
    &SOURCE_TYPE,
    &SOURCE_IDENTIFIER,
    &SOURCE_ACCOUNT,
    &SOURCE_MODE,
    &SOURCE_SNAPSHOT_IDENTIFIER,
    &SOURCE_MAX_SNAPSHOT_AGE,
    &SOURCE_RESTORE_TIME,
    &SOURCE_DB_NAME,
    &SOURCE_USERNAME,
    &SOURCE_PASSWORD_SECRET_ARN,
    &SOURCE_PASSWORD,
    &CLONE_INSTANCE_CLASS,
    &CLONE_MIN_CAPACITY,
    &CLONE_MAX_CAPACITY,
    &CLONE_SUBNET_GROUP,
    &CLONE_SECURITY_GROUPS,
    &CLONE_PUBLICLY_ACCESSIBLE,
    &CLONE_TAGS,
    &CLONE_PARAMETER_GROUP,
    &CLONE_OPTION_GROUP,
    &CLONE_CLUSTER_PARAMETER_GROUP,
    &CLONE_PORT,
    &CLONE_STORAGE_TYPE,
    &CLONE_IOPS,
    &CLONE_ENABLE_IAM_AUTH,
    &CLONE_DELETION_PROTECTION,
    &CLONE_DELETE_AFTER_DUMP,
    &CLONE_MAX_AGE,
    &CLONE_RESTORE_TIMEOUT,
    &CLONE_POLL_INTERVAL,
    &CLONE_DELETION_TIMEOUT,
    &DBLAB_ENGINE,
    &DBLAB_API_ENDPOINT,
    &DBLAB_TOKEN_SECRET_ARN,
    &DBLAB_TOKEN,
    &DBLAB_INSECURE,
    &DBLAB_CA_CERTIFICATE,
    &DBLAB_ALLOW_PLAINTEXT,
    &DBLAB_POLL_INTERVAL,
    &DBLAB_TIMEOUT,
    &DBLAB_START_TIMEOUT,
    &DBLAB_ALLOW_IGNORED_ERRORS,
    &DBLAB_ALLOW_LVM,
    &DBLAB_RESTORE_PARALLEL_JOBS,
];

impl Field {
    /// The key inside its object (`maxAge` of `clone.maxAge`).
    pub fn name(&self) -> &'static str {
        self.key.rsplit_once('.').map_or(self.key, |(_, name)| name)
    }

    /// The default of a period; zero for a period without one (`freshness.maxAge`,
    /// read with its own fallback).
    pub const fn default_period(&self) -> Duration {
        match self.kind {
            Kind::Period { default: Some(d), .. } => d,
            _ => Duration::ZERO,
        }
    }

    #[cfg(test)]
    fn unset_words(&self) -> String {
        match self.kind {
            _ if self.required => "required".into(),
            Kind::Refused(_) => "refused".into(),
            Kind::Flag | Kind::Moved(_) => "`false`".into(),
            Kind::Period { default: Some(d), .. } => format!("`{}`", duration::format(d)),
            _ => self.unset.into(),
        }
    }

    #[cfg(test)]
    fn accepts(&self) -> String {
        match self.kind {
            Kind::Text => "text".into(),
            Kind::Choice(words) => words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", "),
            Kind::Flag => "`true` or `false`".into(),
            Kind::Period { least, most, .. } => {
                format!("a duration, `{}` to `{}`", duration::format(least), duration::format(most))
            }
            Kind::Whole { least, most } => format!("a whole number, {least} to {most}"),
            Kind::Acus { least } => format!("ACUs, {least} to {MOST_ACUS} in steps of 0.5"),
            Kind::SecurityGroups => "a list of security group ids".into(),
            Kind::Tags => format!("an object of strings, at most {}", crate::tags::MAX_USER_TAGS),
            Kind::Refused(_) => "never".into(),
            Kind::Moved(_) => "`false` only".into(),
        }
    }

    #[cfg(test)]
    fn meaning(&self) -> &'static str {
        match self.kind {
            Kind::Refused(why) | Kind::Moved(why) => why,
            _ => self.doc,
        }
    }
}

/// The reference table of `docs/request.md`, generated from [`FIELDS`].
#[cfg(test)]
pub(crate) fn reference_table() -> String {
    let mut out = String::from("| field | unset | accepts | meaning |\n|---|---|---|---|\n");
    for field in FIELDS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            field.key,
            field.unset_words(),
            field.accepts(),
            field.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str =
        "<!-- request-fields: generated from crates/refresh-core/src/request/fields.rs by `make docs` -->\n";
    const END: &str = "<!-- request-fields: end -->";

    #[test]
    fn the_docs_reference_is_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/request.md");
        let text = std::fs::read_to_string(path).expect("docs/request.md");
        let (before, rest) = text.split_once(START).expect("the start marker in docs/request.md");
        let (table, after) = rest.split_once(END).expect("the end marker in docs/request.md");
        let expected = reference_table();
        if table != expected {
            if std::env::var_os("UPDATE_DOCS").is_some() {
                std::fs::write(path, format!("{before}{START}{expected}{END}{after}")).expect("write docs");
                return;
            }
            panic!("docs/request.md's field table is not the code's: run `make docs`\n--- expected:\n{expected}");
        }
    }

    #[test]
    fn each_field_says_what_applies_when_it_is_unset() {
        for field in FIELDS {
            let derived = field.required
                || matches!(
                    field.kind,
                    Kind::Flag | Kind::Refused(_) | Kind::Moved(_) | Kind::Period { default: Some(_), .. }
                );
            assert_eq!(
                field.unset.is_empty(),
                derived,
                "{}: `unset` is given exactly when nothing else says it",
                field.key
            );
            assert_eq!(
                field.doc.is_empty(),
                matches!(field.kind, Kind::Refused(_) | Kind::Moved(_)),
                "{}: a doc line",
                field.key
            );
        }
    }

    #[test]
    fn the_longest_run_in_the_max_age_line_is_the_code_s() {
        let allowance = duration::format(super::super::PREFLIGHT_AND_PATCH_ALLOWANCE);
        assert!(CLONE_MAX_AGE.doc.contains(&format!("+ {allowance} for the preflight")), "{}", CLONE_MAX_AGE.doc);
    }

    /// The validator reads exactly the table's fields: none the reference would not show,
    /// and none of the table left unread.
    #[test]
    fn the_validator_reads_every_field_of_the_table_and_no_other() {
        let doc = serde_json::json!({
            "target": "t",
            "freshness": { "maxAge": "36h" },
            "source": { "type": "aurora-cluster", "identifier": "prod", "mode": "snapshot",
                "snapshotIdentifier": "snap", "maxSnapshotAge": "26h", "dbName": "app", "username": "u",
                "passwordSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p-AbCdEf" },
            "clone": { "instanceClass": "db.serverless", "minCapacity": 0.5, "maxCapacity": 4,
                "subnetGroup": "s", "securityGroups": ["sg-1"], "publiclyAccessible": false,
                "tags": { "team": "db" }, "parameterGroup": "p", "optionGroup": "o", "clusterParameterGroup": "c",
                "port": 5432, "storageType": "aurora", "enableIAMAuth": false, "deletionProtection": false,
                "deleteAfterDump": false, "maxAge": "48h", "restoreTimeout": "2h", "pollInterval": "30s",
                "deletionTimeout": "1h" },
            "dblab": { "engine": "staging", "apiEndpoint": "https://dblab:2345", "tokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbCdEf",
                "insecure": false, "allowPlaintext": false, "pollInterval": "30s", "timeout": "4h",
                "startTimeout": "5m", "allowIgnoredErrors": false, "allowLvm": false,
                "restoreParallelJobs": 4 }
        });
        let mut reader = super::super::reader::Reader::default();
        assert!(reader.request(&doc).is_some());
        assert_eq!(reader.errors, vec![], "the full document is valid");
        let mut asked = reader.asked.clone();
        asked.sort_unstable();
        asked.dedup();
        let mut table: Vec<_> = FIELDS.iter().map(|f| f.key).collect();
        table.sort_unstable();
        assert_eq!(asked, table);
    }

    #[test]
    fn keys_are_unique() {
        let mut keys: Vec<_> = FIELDS.iter().map(|f| f.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), FIELDS.len());
    }
}
