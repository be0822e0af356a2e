//! The Lambda side of every handler's `main`: JSON logs Lambda's logging controls read,
//! required environment variables, and `serve`, which turns a typed handler over
//! `refresh_core` into a Lambda function whose failures carry stable error names.

use std::future::Future;
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use refresh_core::RefreshError;
use refresh_core::request::RefreshRequest;
use refresh_core::watch::Watch;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span};

/// Logs on stdout as Lambda's logging controls expect them: JSON lines (or plain text
/// when `AWS_LAMBDA_LOG_FORMAT` is `Text`), each with an RFC 3339 `timestamp` and a
/// `level` Lambda recognises, at the level of `AWS_LAMBDA_LOG_LEVEL` (`FATAL` counts as
/// error) or `RUST_LOG` (default info). Each line carries the current span, which holds
/// the execution name and the request id.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let filter = log_filter(level.as_deref(), std::env::var("RUST_LOG").ok().as_deref());
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    if text {
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false).init();
    } else {
        tracing::subscriber::set_global_default(json_logs(filter, std::io::stdout))
            .unwrap_or_else(|e| eprintln!("logging not set up: {e}"));
    }
}

/// Lambda's level (`TRACE` to `FATAL`; anything else is info), else a `RUST_LOG`
/// directive, else info.
fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let directive = match lambda_level.map(|l| l.trim().to_ascii_lowercase()) {
        // tracing has no level above error: FATAL must not fall back to the default, info.
        Some(l) if l == "fatal" => "error".to_string(),
        Some(l) if matches!(l.as_str(), "trace" | "debug" | "info" | "warn" | "error") => l,
        Some(_) => "info".to_string(),
        None => rust_log.map_or_else(|| "info".to_string(), str::to_string),
    };
    tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

fn json_logs<W>(filter: tracing_subscriber::EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// A required environment variable (set by the template), or a clear error.
pub fn env(name: &str) -> Result<String, lambda_runtime::Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// The execution name in a raw event, for the log span (before the input is parsed):
/// beside the request, or inside the whole state (`record` finish, `notify`).
fn execution_name(event: &Value) -> &str {
    ["/execution/name", "/state/execution/name"]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str))
        .unwrap_or("-")
}

/// Reads the event as the handler's input type. A request that fails validation is
/// `InvalidRequest` listing every problem with its path; any other malformed input is
/// `InvalidInput` naming the JSON path that failed.
pub fn read_input<In: DeserializeOwned>(event: Value) -> Result<In, RefreshError> {
    let request = event.get("request").cloned();
    serde_path_to_error::deserialize(event).map_err(|e| {
        if let Some(Err(problems)) = request.as_ref().map(RefreshRequest::from_document) {
            return RefreshError::InvalidRequest(problems);
        }
        let path = e.path().to_string();
        RefreshError::InvalidInput(format!("{}: {}", if path == "." { "input".into() } else { path }, e.inner()))
    })
}

/// Runs a handler under the Lambda runtime until the runtime stops.
pub async fn serve<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(In) -> Fut,
    Fut: Future<Output = Result<Out, RefreshError>>,
{
    serve_watching(|input, _| handler(input)).await
}

/// Caps the watch of one invocation, in seconds (tests use a few seconds); without it an
/// invocation watches until shortly before its Lambda timeout.
pub const WATCH_SECONDS_ENV: &str = "WATCH_SECONDS";

/// For a world whose durations are this many times shorter than AWS's (the benchmark's
/// 1:60 refresh): the time a look may take is divided by it, as the poll interval and the
/// watch already are, so an invocation holds as many looks as it would in AWS. Unset: 1.
pub const TIME_SCALE_ENV: &str = "WATCH_TIME_SCALE";

/// The watch's cap and time scale from `WATCH_SECONDS` and `WATCH_TIME_SCALE`: a value
/// that is not a whole number (or a scale of 0) is as if unset.
fn watch_settings(seconds: Option<&str>, time_scale: Option<&str>) -> (Option<Duration>, u32) {
    let number = |s: Option<&str>| s.and_then(|s| s.trim().parse::<u64>().ok());
    let scale = number(time_scale).and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).unwrap_or(1);
    (number(seconds).map(Duration::from_secs), scale)
}

/// Runs a check handler, which may watch until shortly before each invocation's deadline.
pub async fn serve_watching<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(In, Watch) -> Fut,
    Fut: Future<Output = Result<Out, RefreshError>>,
{
    let handler = &handler;
    let (cap, time_scale) =
        watch_settings(std::env::var(WATCH_SECONDS_ENV).ok().as_deref(), std::env::var(TIME_SCALE_ENV).ok().as_deref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = info_span!("invocation", execution = %execution_name(&event.payload), request_id = %event.context.request_id);
        let watch = Watch::for_invocation(event.context.deadline(), cap, time_scale);
        async move {
            let result = match read_input::<In>(event.payload) {
                // Boxed: the handlers' futures nest deeply enough to exceed the compiler's
                // layout depth when inlined into the runtime's.
                Ok(input) => Box::pin(handler(input, watch)).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(_) => info!("done"),
                Err(e) => error!(error = e.name(), transient = e.is_transient(), reason = %e, "failed"),
            }
            result.map_err(|e| diagnostic(&e))
        }
        .instrument(span)
        .await
    }))
    .await
}

/// The error as the Lambda runtime reports it: its stable name is the error type a Step
/// Functions Retry or Catch matches.
pub fn diagnostic(err: &RefreshError) -> Diagnostic {
    Diagnostic { error_type: err.name().to_string(), error_message: err.to_string() }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_watch_settings_are_whole_numbers_and_a_scale_of_zero_is_none() {
        assert_eq!(watch_settings(Some(" 3 "), Some("60")), (Some(Duration::from_secs(3)), 60));
        assert_eq!(watch_settings(None, None), (None, 1));
        assert_eq!(watch_settings(Some("3s"), Some("0")), (None, 1));
        assert_eq!(watch_settings(Some("-1"), Some("x")), (None, 1));
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(level: Option<&str>, emit: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing::subscriber::with_default(json_logs(log_filter(level, None), move || writer.clone()), || {
            let span = info_span!("invocation", execution = "exec-1", request_id = "req-1");
            let _entered = span.enter();
            emit();
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn json_lines_carry_a_timestamp_the_level_and_the_invocation() {
        let lines = logged(Some("INFO"), || error!(error = "DblabBusy", "failed"));
        let line = &lines[0];
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(), "{stamp}");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(
            (line["span"]["execution"].as_str(), line["span"]["request_id"].as_str()),
            (Some("exec-1"), Some("req-1"))
        );
    }

    #[test]
    fn lambda_levels_filter_as_lambda_means_them() {
        let emit = || {
            info!("routine");
            tracing::warn!("odd");
            error!("broken");
        };
        assert_eq!(logged(Some("FATAL"), emit).len(), 1, "FATAL keeps errors only, never falls back to info");
        assert_eq!(logged(Some("WARN"), emit).len(), 2);
        assert_eq!(logged(None, emit).len(), 3);
        assert_eq!(logged(Some("LOUD"), emit).len(), 3, "an unknown level is info");
    }

    #[test]
    fn a_failure_carries_its_stable_name() {
        let d = diagnostic(&RefreshError::DblabNotLogical { mode: "physical".into() });
        assert_eq!(d.error_type, "DblabNotLogical");
        assert!(d.error_message.contains("physical"));
    }
}
