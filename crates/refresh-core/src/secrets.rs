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

    pub(crate) fn expose(&self) -> &str {
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
    fn prints_as_stars_so_a_log_shows_where_a_secret_was() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
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
