//! Secret values: read from Secrets Manager, held in a type that never prints them.

use std::fmt;

use aws_sdk_secretsmanager::Client;
use serde_json::Value;

use crate::error::RefreshError;

/// A secret value. `Debug` and `Display` are redacted, and it has no `Serialize`, so it
/// cannot leak into a log line or a handler output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

pub struct SecretReader {
    client: Client,
}

impl SecretReader {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The value of a secret. A JSON secret (as RDS creates them: `{"username", "password"}`)
    /// yields its `field`; any other secret is the value itself.
    pub async fn read(&self, arn: &str, field: &str) -> Result<Secret, RefreshError> {
        let unavailable = |reason: String| RefreshError::SecretUnavailable { arn: arn.to_string(), reason };
        let out =
            self.client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                match RefreshError::from_aws("GetSecretValue", e) {
                    transient @ RefreshError::AwsTransient { .. } => transient,
                    other => unavailable(other.to_string()),
                }
            })?;
        let raw = out.secret_string().ok_or_else(|| unavailable("it holds binary data, not a string".into()))?;
        extract(raw, field).map(Secret::new).map_err(unavailable)
    }
}

/// What a secret is replaced with in any text that is passed on.
pub const REDACTED: &str = "***";

/// The forms a secret takes on its way through the texts an engine or a tool may send
/// back: as written; JSON-escaped (once, and twice for JSON inside a JSON string); URL-
/// encoded (a DSN's userinfo, either hex case, `+` for a space); base64 (standard and
/// URL-safe, padded or not). Longest first, so a longer form is replaced whole.
pub fn forms(secret: &str) -> Vec<String> {
    let json = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
    };
    let once = json(secret);
    let base64 = aws_smithy_types::base64::encode(secret);
    let url_safe = base64.replace('+', "-").replace('/', "_");
    let mut out = vec![
        secret.to_string(),
        json(&once),
        once,
        url_encoded(secret, false),
        url_encoded(secret, true),
        url_encoded(secret, false).replace("%20", "+"),
        base64.trim_end_matches('=').to_string(),
        url_safe.trim_end_matches('=').to_string(),
        base64,
        url_safe,
    ];
    out.retain(|f| !f.is_empty());
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out.dedup();
    out
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn url_encoded(text: &str, lower: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `text` with every form of `secret` replaced by `REDACTED`.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    forms(secret).iter().fold(text.to_string(), |t, form| t.replace(form.as_str(), REDACTED))
}

fn extract(raw: &str, field: &str) -> Result<String, String> {
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => match map.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(format!("its JSON field {field:?} is not a string")),
            None => return Err(format!("it is a JSON object without a {field:?} field")),
        },
        _ => raw.to_string(),
    };
    if value.is_empty() {
        return Err("it is empty".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let secret = "p$ss\"w0rd\\ é/+ x";
        let planted = [
            format!("plain {secret} end"),
            format!(r#"json {{"password":{}}}"#, serde_json::to_string(secret).unwrap()),
            format!(
                "twice {}",
                serde_json::to_string(&serde_json::json!({"cause": format!("pw={secret}")}).to_string()).unwrap()
            ),
            "dsn postgres://dblab:p%24ss%22w0rd%5C%20%C3%A9%2F%2B%20x@clone:5432/app".to_string(),
            "lower postgres://dblab:p%24ss%22w0rd%5c%20%c3%a9%2f%2b%20x@clone".to_string(),
            "form password=p%24ss%22w0rd%5C+%C3%A9%2F%2B+x&user=dblab".to_string(),
            format!("basic {}", aws_smithy_types::base64::encode(secret)),
        ];
        for text in planted {
            let out = redact(&text, secret);
            assert!(out.contains(REDACTED), "nothing redacted in {text}");
            for form in forms(secret) {
                assert!(!out.contains(&form), "{form} left in {out}");
            }
            assert!(!out.contains("w0rd"), "{out}");
        }
        assert_eq!(redact("nothing here", secret), "nothing here");
        assert_eq!(redact("keep", ""), "keep");
    }

    #[test]
    fn plain_and_json_secrets() {
        assert_eq!(extract("p@ss$word", "password").unwrap(), "p@ss$word");
        assert_eq!(extract(r#"{"username":"u","password":"p$1"}"#, "password").unwrap(), "p$1");
        assert!(extract(r#"{"username":"u"}"#, "password").unwrap_err().contains("without"));
        assert!(extract("", "password").is_err());
        assert!(extract(r#"{"password":""}"#, "password").is_err());
    }
}
