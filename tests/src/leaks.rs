//! The one check that no secret leaked. It reads the real data, never a `Debug` text (the
//! SDK's `Debug` of a history event prints `*** Sensitive Data Redacted ***` for every
//! input, output, error and cause, so a scan of it could never fail): each history
//! event's fields through the SDK's accessors, DynamoDB items attribute by attribute, SNS
//! messages as delivered, log files line by line. And it looks for every form a secret
//! takes on its way through JSON, URLs and encodings, written here independently of the
//! product's own redaction so that one cannot hide the other's mistake.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::HistoryEvent;

/// One secret found somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub secret: &'static str,
    pub form: &'static str,
    pub place: String,
}

/// The secrets to look for, each in every form.
pub struct Scanner {
    secrets: Vec<(&'static str, Vec<(&'static str, String)>)>,
}

fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

fn percent_encoded(text: &str, hex: fn(u8) -> String) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { hex(b) })
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// JSON-escaped as Go's `json.Marshal` writes it: HTML-safe (`<`, `>`, `&`, U+2028, U+2029
/// as `\u` escapes), as the engine's answers are.
fn go_json_escaped(text: &str) -> String {
    json_escaped(text)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Every form of `secret` worth looking for, named.
pub fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let once = json_escaped(secret);
    let go_once = go_json_escaped(secret);
    let padded = base64(secret.as_bytes());
    let unpadded = padded.trim_end_matches('=').to_string();
    let mut out = vec![
        ("plain", secret.to_string()),
        ("json-escaped twice", json_escaped(&once)),
        ("json-escaped by Go, then again", json_escaped(&go_once)),
        ("json-escaped by Go twice", go_json_escaped(&go_once)),
        ("json-escaped", once),
        ("json-escaped by Go (HTML-safe)", go_once),
        ("url-encoded", percent_encoded(secret, |b| format!("%{b:02X}"))),
        ("url-encoded (lower-case hex)", percent_encoded(secret, |b| format!("%{b:02x}"))),
        ("base64", padded.clone()),
        ("base64 (URL-safe)", unpadded.replace('+', "-").replace('/', "_")),
        ("base64 (unpadded)", unpadded),
    ];
    // A form identical to a shorter-named one says nothing new.
    let mut seen = Vec::new();
    out.retain(|(_, f)| {
        !seen.contains(f) && {
            seen.push(f.clone());
            true
        }
    });
    out
}

impl Scanner {
    pub fn new(secrets: &[(&'static str, &str)]) -> Self {
        Self { secrets: secrets.iter().map(|(name, value)| (*name, forms(value))).collect() }
    }

    /// Every secret, in any form, in `text`; `place` says where the text came from.
    pub fn text(&self, place: &str, text: &str) -> Vec<Leak> {
        let mut out = Vec::new();
        for (secret, forms) in &self.secrets {
            for (form, value) in forms {
                if text.contains(value.as_str()) {
                    out.push(Leak { secret, form, place: place.to_string() });
                }
            }
        }
        out
    }

    /// Every field of every event that carries execution data: inputs, outputs,
    /// parameters, errors and causes, read through the SDK's accessors.
    pub fn events(&self, place: &str, events: &[HistoryEvent]) -> Vec<Leak> {
        let mut out = Vec::new();
        for event in events {
            for (field, text) in event_fields(event) {
                out.extend(self.text(&format!("{place}: event {} {field}", event.id()), text));
            }
        }
        out
    }

    /// Every attribute of a DynamoDB item, nested ones included.
    pub fn item(&self, place: &str, item: &HashMap<String, AttributeValue>) -> Vec<Leak> {
        let mut out = Vec::new();
        for (name, value) in item {
            attribute_texts(value, &mut |text| out.extend(self.text(&format!("{place}.{name}"), text)));
        }
        out
    }

    /// Every line of a file (a log). A file that cannot be read, or is empty, fails the
    /// test: a scan of nothing proves nothing.
    pub fn file(&self, place: &str, path: &std::path::Path) -> Vec<Leak> {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{place} {}: {e}", path.display()));
        assert!(!bytes.is_empty(), "{place} {} is empty: nothing to scan", path.display());
        let text = String::from_utf8_lossy(&bytes);
        text.lines().enumerate().flat_map(|(n, line)| self.text(&format!("{place}:{}", n + 1), line)).collect()
    }
}

fn attribute_texts(value: &AttributeValue, found: &mut dyn FnMut(&str)) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => found(s),
        AttributeValue::Ss(list) | AttributeValue::Ns(list) => list.iter().for_each(|s| found(s)),
        AttributeValue::B(blob) => found(&String::from_utf8_lossy(blob.as_ref())),
        AttributeValue::L(list) => list.iter().for_each(|v| attribute_texts(v, found)),
        AttributeValue::M(map) => map.values().for_each(|v| attribute_texts(v, found)),
        _ => {}
    }
}

/// The data-carrying fields of one event, by name.
fn event_fields(e: &HistoryEvent) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, Option<&str>)> = Vec::new();
    macro_rules! fields {
        ($details:expr, $($field:ident),+) => {
            if let Some(d) = $details {
                $(out.push((stringify!($field), d.$field()));)+
            }
        };
    }
    fields!(e.execution_started_event_details(), input);
    fields!(e.execution_succeeded_event_details(), output);
    fields!(e.execution_failed_event_details(), error, cause);
    fields!(e.execution_aborted_event_details(), error, cause);
    fields!(e.execution_timed_out_event_details(), error, cause);
    fields!(e.state_entered_event_details(), input);
    fields!(e.state_exited_event_details(), output);
    if let Some(d) = e.task_scheduled_event_details() {
        out.push(("parameters", Some(d.parameters())));
    }
    fields!(e.task_succeeded_event_details(), output);
    fields!(e.task_submitted_event_details(), output);
    fields!(e.task_failed_event_details(), error, cause);
    fields!(e.task_start_failed_event_details(), error, cause);
    fields!(e.task_submit_failed_event_details(), error, cause);
    fields!(e.task_timed_out_event_details(), error, cause);
    fields!(e.lambda_function_scheduled_event_details(), input);
    fields!(e.lambda_function_succeeded_event_details(), output);
    fields!(e.lambda_function_failed_event_details(), error, cause);
    fields!(e.lambda_function_schedule_failed_event_details(), error, cause);
    fields!(e.lambda_function_start_failed_event_details(), error, cause);
    fields!(e.lambda_function_timed_out_event_details(), error, cause);
    fields!(e.activity_scheduled_event_details(), input);
    fields!(e.activity_succeeded_event_details(), output);
    fields!(e.activity_failed_event_details(), error, cause);
    fields!(e.activity_schedule_failed_event_details(), error, cause);
    fields!(e.activity_timed_out_event_details(), error, cause);
    fields!(e.map_run_failed_event_details(), error, cause);
    fields!(e.evaluation_failed_event_details(), error, cause);
    out.into_iter().filter_map(|(name, text)| Some((name, text?))).collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_sfn::primitives::DateTime;
    use aws_sdk_sfn::types::{
        HistoryEventType, LambdaFunctionFailedEventDetails, StateEnteredEventDetails, StateExitedEventDetails,
        TaskScheduledEventDetails,
    };

    use super::*;

    const SECRET: &str = "p$ss\"w0rd\\ é/+x";

    fn scanner() -> Scanner {
        Scanner::new(&[("password", SECRET), ("token", "tok-$HOME-1")])
    }

    #[test]
    fn every_form_is_found_and_named() {
        let s = scanner();
        let planted = [
            ("plain", format!("x {SECRET} y")),
            ("json-escaped", format!(r#"{{"password":{}}}"#, serde_json::to_string(SECRET).unwrap())),
            (
                "json-escaped twice",
                serde_json::to_string(
                    &serde_json::json!({"Cause": format!("{{\"m\":{}}}", serde_json::to_string(SECRET).unwrap())}),
                )
                .unwrap(),
            ),
            ("url-encoded", "postgres://u:p%24ss%22w0rd%5C%20%C3%A9%2F%2Bx@h/db".into()),
            ("url-encoded (lower-case hex)", "postgres://u:p%24ss%22w0rd%5c%20%c3%a9%2f%2bx@h/db".into()),
            ("base64", "Authorization: Basic cCRzcyJ3MHJkXCDDqS8reA==".into()),
        ];
        for (form, text) in planted {
            let found = s.text("here", &text);
            assert!(
                found.iter().any(|l| l.secret == "password" && l.form == form),
                "{form} not found in {text}: {found:?}"
            );
        }
        assert!(s.text("here", "nothing but tok-$HOME-2 and p$ss").is_empty());
        // Go's json.Marshal, as the engine writes: HTML-safe escapes, once and inside a cause.
        let html = Scanner::new(&[("password", "a<b>&c")]);
        let go = r"a\u003cb\u003e\u0026c";
        let found = html.text("here", &format!(r#"{{"message":"{go}"}}"#));
        assert!(found.iter().any(|l| l.form == "json-escaped by Go (HTML-safe)"), "{found:?}");
        let cause = serde_json::to_string(&format!(r#"{{"message":"{go}"}}"#)).unwrap();
        let found = html.text("here", &cause);
        assert!(found.iter().any(|l| l.form == "json-escaped by Go, then again"), "{found:?}");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    fn event(id: i64, kind: HistoryEventType) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
        HistoryEvent::builder().id(id).timestamp(DateTime::from_secs(id)).r#type(kind)
    }

    #[test]
    fn a_secret_in_any_event_field_is_found_where_debug_would_hide_it() {
        let url = "p%24ss%22w0rd%5C%20%C3%A9%2F%2Bx";
        let json = serde_json::to_string(SECRET).unwrap();
        let events = vec![
            event(1, HistoryEventType::TaskStateEntered)
                .state_entered_event_details(
                    StateEnteredEventDetails::builder().name("A").input(format!("{{\"p\":{json}}}")).build().unwrap(),
                )
                .build()
                .unwrap(),
            event(2, HistoryEventType::TaskStateExited)
                .state_exited_event_details(
                    StateExitedEventDetails::builder()
                        .name("A")
                        .output(format!("{{\"dsn\":\"u:{url}@h\"}}"))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            event(3, HistoryEventType::LambdaFunctionFailed)
                .lambda_function_failed_event_details(
                    LambdaFunctionFailedEventDetails::builder()
                        .error("DblabRejected")
                        .cause(format!("said {SECRET}"))
                        .build(),
                )
                .build()
                .unwrap(),
            event(4, HistoryEventType::TaskScheduled)
                .task_scheduled_event_details(
                    TaskScheduledEventDetails::builder()
                        .resource_type("lambda")
                        .resource("invoke")
                        .region("us-east-1")
                        .parameters("{\"token\":\"tok-$HOME-1\"}")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ];
        assert!(
            !format!("{events:?}").contains("w0rd"),
            "the SDK's Debug hides every field: a scan of it finds nothing"
        );
        let found = scanner().events("run", &events);
        let places: Vec<&str> = found.iter().map(|l| l.place.as_str()).collect();
        assert_eq!(
            places,
            ["run: event 1 input", "run: event 2 output", "run: event 3 cause", "run: event 4 parameters"]
        );
    }

    #[test]
    fn a_secret_deep_in_an_item_or_a_log_line_is_found() {
        let item = HashMap::from([
            ("target".to_string(), AttributeValue::S("staging".into())),
            (
                "error".to_string(),
                AttributeValue::M(HashMap::from([(
                    "message".to_string(),
                    AttributeValue::L(vec![AttributeValue::S(format!("x {}", base64(SECRET.as_bytes())))]),
                )])),
            ),
        ]);
        let found = scanner().item("row", &item);
        assert!(found.iter().all(|l| l.place == "row.error"), "{found:?}");
        assert!(found.iter().any(|l| l.form == "base64"), "{found:?}");
        let log = std::env::temp_dir().join(format!("leaks-self-test-{}.log", std::process::id()));
        std::fs::write(
            &log,
            format!("{{\"level\":\"INFO\"}}\n{{\"message\":\"dsn u:{}@h\"}}\n", "p%24ss%22w0rd%5C%20%C3%A9%2F%2Bx"),
        )
        .unwrap();
        let found = scanner().file("log", &log);
        let _ = std::fs::remove_file(&log);
        assert_eq!(found, [Leak { secret: "password", form: "url-encoded", place: "log:2".into() }]);
    }
}
