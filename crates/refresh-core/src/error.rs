//! The error taxonomy. Each variant has a stable name that the state machine's Retry/Catch
//! match on (the Lambda error type, `lambda_adapter::diagnostic`) and that history rows and notifications record.
//! Messages never carry secret values.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::{ErrorMetadata, ProvideErrorMetadata};

/// One problem with a request, at its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path from the request's root, e.g. `source.identifier` or `clone.securityGroups[1]`.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl ValidationErrors {
    /// One problem at one path, found by a check beyond the document itself.
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldError { path: path.into(), message: message.into() }])
    }
}

/// Declares each name once: its constant, and its place in a list of every such name.
macro_rules! names {
    ($list:ident: $( $(#[$doc:meta])* $constant:ident = $name:literal ),* $(,)?) => {
        $( $(#[$doc])* pub const $constant: &str = $name; )*
        pub const $list: &[&str] = &[$($constant),*];
    };
}

/// The stable error names, each written once here: the state machines, the error
/// tables of docs/handlers.md (held to these by a test) and every row and notification use them.
pub mod names {
    // Every name a handler can return, for checks that Retry/Catch name only real errors.
    names! { ALL:
        INVALID_REQUEST = "InvalidRequest",
        INVALID_INPUT = "InvalidInput",
        TARGET_LOCKED = "TargetLocked",
        SOURCE_NOT_FOUND = "SourceNotFound",
        SNAPSHOT_NOT_FOUND = "SnapshotNotFound",
        SNAPSHOT_NOT_AVAILABLE = "SnapshotNotAvailable",
        NO_SNAPSHOT_AVAILABLE = "NoSnapshotAvailable",
        CLONE_CONFLICT = "CloneConflict",
        DELETE_REFUSED = "DeleteRefused",
        SECRET_UNAVAILABLE = "SecretUnavailable",
        AWS_TRANSIENT = "AwsTransient",
        AWS_REQUEST_FAILED = "AwsRequestFailed",
        DBLAB_UNAVAILABLE = "DblabUnavailable",
        DBLAB_UNAUTHORIZED = "DblabUnauthorized",
        DBLAB_NOT_LOGICAL = "DblabNotLogical",
        DBLAB_BUSY = "DblabBusy",
        DBLAB_REJECTED = "DblabRejected",
        DBLAB_CONFIG_NOT_APPLIED = "DblabConfigNotApplied",
        DBLAB_MISCONFIGURED = "DblabMisconfigured",
        /// Every pool of the engine has clones: it would refuse the refresh.
        DBLAB_NO_FREE_POOL = "DblabNoFreePool",
        /// The engine's own check of the clone (`POST /admin/test-db-source`) failed.
        DBLAB_SOURCE_REFUSED = "DblabSourceRefused",
        /// Another engine answers at the run's endpoint than the one its lock holds.
        DBLAB_ENGINE_CHANGED = "DblabEngineChanged",
        DBLAB_PROTOCOL = "DblabProtocolError",
        /// A call that was in flight when its execution was stopped came back after the
        /// clean-up recorded the run: it takes back what it took and writes nothing.
        RUN_ENDED = "RunEnded",
        /// The execution no longer holds a lock it took (its run was cleaned up and it was
        /// redriven, or the lock expired and was taken over): it creates and changes nothing.
        LOCK_LOST = "LockLost",
        /// The publisher's own settings (its stack's parameters) are unusable.
        PUBLISHER_MISCONFIGURED = "PublisherMisconfigured",
        INTERNAL = "InternalError",
    }

    /// The names worth retrying: the same call may succeed a little later.
    pub const TRANSIENT: &[&str] = &[AWS_TRANSIENT, DBLAB_UNAVAILABLE];

    // How a run failed when no handler failed: a poll's verdict, or how it ended. History
    // rows, notifications and the execution's own error name these too.
    names! { OUTCOMES:
        CLONE_FAILED = "CloneFailed",
        CLONE_TIMED_OUT = "CloneTimedOut",
        REFRESH_FAILED = "RefreshFailed",
        REFRESH_TIMED_OUT = "RefreshTimedOut",
        /// The engine accepted the refresh but never started it within `dblab.startTimeout`.
        REFRESH_NOT_STARTED = "RefreshNotStarted",
        /// The engine said `finished` but made no snapshot of the refreshed pool.
        REFRESH_WITHOUT_SNAPSHOT = "RefreshWithoutSnapshot",
        INCOMPLETE = "RunIncomplete",
        /// Set by the clean-up state machine for an execution stopped by hand or by its timeout.
        EXECUTION_STOPPED = "ExecutionStopped",
        /// The clean-up state machine could not send a run's notification either.
        NOTIFICATION_FAILED = "NotificationFailed",
    }

    /// The names the state machine files set themselves (in Pass and Fail states).
    pub const SET_BY_STATE_MACHINES: &[&str] = &[EXECUTION_STOPPED, REFRESH_FAILED, NOTIFICATION_FAILED];
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh request is invalid: {0}")]
    InvalidRequest(#[from] ValidationErrors),
    #[error("the handler input is malformed: {0}")]
    InvalidInput(String),
    #[error("target {target:?} is already being refreshed by execution {owner:?}")]
    TargetLocked { target: String, owner: String },
    #[error("the DBLab Engine ({engine}) is already being refreshed by execution {owner:?}")]
    EngineLocked { engine: String, owner: String },
    #[error("source {kind} {identifier:?} does not exist")]
    SourceNotFound { kind: String, identifier: String },
    #[error("snapshot {identifier:?} does not exist")]
    SnapshotNotFound { identifier: String },
    #[error("snapshot {identifier:?} is {status:?}, not available")]
    SnapshotNotAvailable { identifier: String, status: String },
    #[error("no available automated snapshot of {kind} {identifier:?}")]
    NoSnapshotAvailable { kind: String, identifier: String },
    /// No snapshot fit: none shared by production's account, or the newest too old.
    #[error("{0}")]
    NoSuitableSnapshot(String),
    #[error("{0}")]
    CloneConflict(String),
    #[error("refusing to delete {identifier:?}: {reason}")]
    DeleteRefused { identifier: String, reason: String },
    #[error("secret {arn} could not be used: {reason}")]
    SecretUnavailable { arn: String, reason: String },
    #[error("AWS {operation} failed transiently: {message}")]
    AwsTransient { operation: String, message: String },
    #[error("AWS {operation} failed: {message}")]
    AwsRequestFailed { operation: String, message: String },
    #[error("DBLab Engine at {endpoint} is unavailable: {message}")]
    DblabUnavailable { endpoint: String, message: String },
    #[error("DBLab Engine rejected the verification token: {0}")]
    DblabUnauthorized(String),
    #[error("DBLab Engine retrieval mode is {mode:?}; refreshing from a clone needs \"logical\"")]
    DblabNotLogical { mode: String },
    /// `detail`, when not empty, starts with "; " and says whose work it is.
    #[error("DBLab Engine is busy: retrieval status is {status:?}{detail}")]
    DblabBusy { status: String, detail: String },
    #[error("DBLab Engine rejected {call}: {message}")]
    DblabRejected { call: String, message: String },
    #[error("DBLab Engine did not apply the source connection: {0}")]
    DblabConfigNotApplied(String),
    #[error("DBLab Engine cannot be refreshed from outside as configured: {0}")]
    DblabMisconfigured(String),
    #[error("DBLab Engine has no pool to refresh: {0}")]
    DblabNoFreePool(String),
    #[error("DBLab Engine's own check of the clone failed, before any pool was touched: {0}")]
    DblabSourceRefused(String),
    #[error("another DBLab Engine answers at {endpoint} than the one this run locked: {message}")]
    DblabEngineChanged { endpoint: String, message: String },
    #[error("DBLab Engine answered {call} unexpectedly: {message}")]
    DblabProtocol { call: String, message: String },
    #[error("execution {execution:?} has ended and its run is recorded: nothing more is done for it")]
    RunEnded { execution: String },
    #[error(
        "execution {execution:?} no longer holds {lock}{}: it creates and changes nothing (a run cleaned up and redriven, or a lock that expired and was taken over)",
        holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default()
    )]
    LockLost { execution: String, lock: String, holder: Option<String> },
    #[error("the publisher is misconfigured: {0}")]
    PublisherMisconfigured(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RefreshError {
    /// A request that is invalid at one field, found out by a check beyond the document.
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self::InvalidRequest(ValidationErrors::at(path, message))
    }

    pub fn name(&self) -> &'static str {
        use names::*;
        match self {
            Self::InvalidRequest(_) => INVALID_REQUEST,
            Self::InvalidInput(_) => INVALID_INPUT,
            Self::TargetLocked { .. } | Self::EngineLocked { .. } => TARGET_LOCKED,
            Self::SourceNotFound { .. } => SOURCE_NOT_FOUND,
            Self::SnapshotNotFound { .. } => SNAPSHOT_NOT_FOUND,
            Self::SnapshotNotAvailable { .. } => SNAPSHOT_NOT_AVAILABLE,
            Self::NoSnapshotAvailable { .. } | Self::NoSuitableSnapshot(_) => NO_SNAPSHOT_AVAILABLE,
            Self::CloneConflict(_) => CLONE_CONFLICT,
            Self::DeleteRefused { .. } => DELETE_REFUSED,
            Self::SecretUnavailable { .. } => SECRET_UNAVAILABLE,
            Self::AwsTransient { .. } => AWS_TRANSIENT,
            Self::AwsRequestFailed { .. } => AWS_REQUEST_FAILED,
            Self::DblabUnavailable { .. } => DBLAB_UNAVAILABLE,
            Self::DblabUnauthorized(_) => DBLAB_UNAUTHORIZED,
            Self::DblabNotLogical { .. } => DBLAB_NOT_LOGICAL,
            Self::DblabBusy { .. } => DBLAB_BUSY,
            Self::DblabRejected { .. } => DBLAB_REJECTED,
            Self::DblabConfigNotApplied(_) => DBLAB_CONFIG_NOT_APPLIED,
            Self::DblabMisconfigured(_) => DBLAB_MISCONFIGURED,
            Self::DblabNoFreePool(_) => DBLAB_NO_FREE_POOL,
            Self::DblabSourceRefused(_) => DBLAB_SOURCE_REFUSED,
            Self::DblabEngineChanged { .. } => DBLAB_ENGINE_CHANGED,
            Self::DblabProtocol { .. } => DBLAB_PROTOCOL,
            Self::RunEnded { .. } => RUN_ENDED,
            Self::LockLost { .. } => LOCK_LOST,
            Self::PublisherMisconfigured(_) => PUBLISHER_MISCONFIGURED,
            Self::Internal(_) => INTERNAL,
        }
    }

    /// The same error with every occurrence of a secret value replaced, in any form it may
    /// take (`redaction::forms`): for errors whose text comes from the engine or a tool,
    /// which may echo what it was sent, quoted into JSON or a URL.
    pub(crate) fn redact(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let r = |text: String| crate::redaction::redact(&text, secret);
        match self {
            Self::DblabUnavailable { endpoint, message } => Self::DblabUnavailable { endpoint, message: r(message) },
            Self::DblabUnauthorized(message) => Self::DblabUnauthorized(r(message)),
            Self::DblabRejected { call, message } => Self::DblabRejected { call, message: r(message) },
            Self::DblabConfigNotApplied(message) => Self::DblabConfigNotApplied(r(message)),
            Self::DblabMisconfigured(message) => Self::DblabMisconfigured(r(message)),
            Self::DblabSourceRefused(message) => Self::DblabSourceRefused(r(message)),
            Self::DblabProtocol { call, message } => Self::DblabProtocol { call, message: r(message) },
            other => other,
        }
    }

    pub fn is_transient(&self) -> bool {
        names::TRANSIENT.contains(&self.name())
    }

    /// Classifies an AWS SDK error: throttling, 5xx, timeouts and connection failures are
    /// transient; everything else (access denied, invalid parameters...) is terminal.
    pub fn from_aws<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let meta: ErrorMetadata = match &err {
            SdkError::ServiceError(service) => service.err().meta().clone(),
            _ => ErrorMetadata::default(),
        };
        let message = aws_error_message(&err, &meta);
        let transient = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
            SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                status.is_some_and(|s| s >= 500 || s == 429) || meta.code().is_some_and(is_throttling_code)
            }
            _ => false,
        };
        if transient {
            Self::AwsTransient { operation: operation.to_string(), message }
        } else {
            Self::AwsRequestFailed { operation: operation.to_string(), message }
        }
    }
}

fn aws_error_message<E, R>(err: &SdkError<E, R>, meta: &ErrorMetadata) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (meta.code(), meta.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => {
            // The Display of SdkError is terse ("dispatch failure"); the source chain says why.
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "SlowDown"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError"
            | "InternalServiceError"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_name_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for name in names::ALL {
            assert!(seen.insert(*name), "{name} listed twice");
        }
        let samples = [
            RefreshError::InvalidInput("x".into()),
            RefreshError::Internal("x".into()),
            RefreshError::DblabBusy { status: "refreshing".into(), detail: String::new() },
            RefreshError::AwsTransient { operation: "op".into(), message: "m".into() },
        ];
        for err in samples {
            assert!(names::ALL.contains(&err.name()));
        }
    }

    #[test]
    fn the_documented_error_tables_list_exactly_these_names() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/handlers.md")).unwrap();
        let section = readme.split("\n## Error names").nth(1).unwrap().split("\n## ").next().unwrap();
        let listed: std::collections::BTreeSet<&str> =
            section.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next()).collect();
        let known: std::collections::BTreeSet<&str> = names::ALL.iter().chain(names::OUTCOMES).copied().collect();
        assert_eq!(listed, known, "docs/handlers.md's error tables and `names`");
    }

    #[test]
    fn the_readme_lists_exactly_these_names_and_which_are_retried() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let section = readme.split("\n## Error names").nth(1).unwrap().split("\n## ").next().unwrap();
        let names_in = |line: &str| -> Vec<String> { line.split('`').skip(1).step_by(2).map(str::to_string).collect() };
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| ") && l.contains('`')).collect();
        let listed: std::collections::BTreeSet<String> = rows.iter().flat_map(|l| names_in(l)).collect();
        let known: std::collections::BTreeSet<String> =
            names::ALL.iter().chain(names::OUTCOMES).map(|n| n.to_string()).collect();
        assert_eq!(listed, known, "the README's error names and `names`");
        let transient = rows.iter().find(|l| l.starts_with("| transient")).map(|l| names_in(l)).unwrap_or_default();
        assert_eq!(transient, [names::AWS_TRANSIENT, names::DBLAB_UNAVAILABLE], "the README's retried names");
    }

    #[test]
    fn only_transient_names_are_transient() {
        assert!(RefreshError::AwsTransient { operation: "a".into(), message: "b".into() }.is_transient());
        assert!(RefreshError::DblabUnavailable { endpoint: "e".into(), message: "m".into() }.is_transient());
        assert!(!RefreshError::DblabBusy { status: "refreshing".into(), detail: String::new() }.is_transient());
        assert!(!RefreshError::AwsRequestFailed { operation: "a".into(), message: "b".into() }.is_transient());
    }

    type Sdk = SdkError<ErrorMetadata, HttpResponse>;

    fn answered(status: u16, code: Option<&str>, message: Option<&str>) -> Sdk {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap();
        SdkError::service_error(meta.build(), HttpResponse::new(status, aws_smithy_types::body::SdkBody::empty()))
    }

    fn transient(err: Sdk) -> bool {
        RefreshError::from_aws("Op", err).is_transient()
    }

    #[test]
    fn throttling_server_errors_timeouts_and_lost_connections_are_transient() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        assert!(transient(answered(500, Some("InternalFailure"), None)));
        assert!(transient(answered(503, None, None)), "a 5xx, whatever its code");
        assert!(transient(answered(429, None, None)));
        assert!(transient(answered(400, Some("ThrottlingException"), Some("Rate exceeded"))), "throttling by its code");
        assert!(transient(answered(400, Some("RequestLimitExceeded"), None)));
        assert!(transient(Sdk::timeout_error("no answer in 10 s")));
        assert!(transient(Sdk::dispatch_failure(ConnectorError::io("connection reset".into()))));
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap();
        let garbled = HttpResponse::new(status, aws_smithy_types::body::SdkBody::empty());
        assert!(transient(Sdk::response_error("unreadable body", garbled)));
    }

    #[test]
    fn refusals_of_the_request_itself_are_terminal() {
        assert!(!transient(answered(400, Some("AccessDeniedException"), None)));
        assert!(!transient(answered(400, Some("ValidationException"), Some("bad parameter"))));
        assert!(!transient(answered(404, None, None)));
        assert!(!transient(answered(499, None, None)));
        assert!(!transient(Sdk::construction_failure("no region")));
        assert_eq!(
            RefreshError::from_aws("GetItem", answered(400, Some("AccessDeniedException"), None)).name(),
            names::AWS_REQUEST_FAILED
        );
    }

    #[test]
    fn an_aws_error_says_its_code_and_message_or_else_its_causes() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let message = |err: Sdk| RefreshError::from_aws("DescribeDBInstances", err).to_string();
        assert_eq!(
            message(answered(400, Some("AccessDenied"), Some("not authorized"))),
            "AWS DescribeDBInstances failed: AccessDenied: not authorized"
        );
        assert_eq!(message(answered(400, Some("AccessDenied"), None)), "AWS DescribeDBInstances failed: AccessDenied");
        let dispatch = message(Sdk::dispatch_failure(ConnectorError::io("connection refused".into())));
        assert!(
            dispatch.starts_with("AWS DescribeDBInstances failed transiently: dispatch failure")
                && dispatch.ends_with(": connection refused"),
            "{dispatch}"
        );
    }

    #[test]
    fn validation_errors_read_as_one_line_path_by_path() {
        let errors = ValidationErrors(vec![
            FieldError { path: "target".into(), message: "is required".into() },
            FieldError { path: "clone.maxAge".into(), message: "is too short".into() },
        ]);
        assert_eq!(errors.to_string(), "target: is required; clone.maxAge: is too short");
        assert_eq!(ValidationErrors::at("source", "m").to_string(), "source: m");
        let err = RefreshError::at("dblab.engine", "is not listed");
        assert_eq!(
            (err.name(), err.to_string().as_str()),
            ("InvalidRequest", "the refresh request is invalid: dblab.engine: is not listed")
        );
    }

    #[test]
    fn a_lock_refusal_is_target_locked_whichever_lock_it_is() {
        let engine = RefreshError::EngineLocked { engine: "engine instance abc".into(), owner: "run-1".into() };
        assert_eq!(engine.name(), "TargetLocked");
        assert_eq!(RefreshError::Internal("x".into()).name(), "InternalError");
    }

    #[test]
    fn redaction_removes_an_echoed_secret() {
        let echoed = RefreshError::DblabRejected {
            call: "POST /admin/config".into(),
            message: "cannot connect to postgres://dblab:s3cr$t@clone:5432/app".into(),
        };
        let text = echoed.redact("s3cr$t").to_string();
        assert!(!text.contains("s3cr$t") && text.contains("dblab:***@clone"), "{text}");
        let untouched = RefreshError::SourceNotFound { kind: "x".into(), identifier: "s3cr$t".into() };
        assert!(untouched.redact("s3cr$t").to_string().contains("s3cr$t"), "only engine texts are scrubbed");
    }
}
