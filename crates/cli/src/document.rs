//! Reading request documents (JSON or YAML) and converting DBLab's rds-refresh config.

use serde_json::{Map, Value, json};

/// A JSON or YAML file as a JSON value. YAML is only a syntax here: the values are taken
/// as written, with no environment expansion (rds-refresh mangles `$` in secrets that way).
pub fn parse(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_norway::from_str::<Value>(text)
            .map_err(|yaml_err| format!("neither JSON ({json_err}) nor YAML ({yaml_err})")),
    }
}

pub fn read(path: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse(&text).map_err(|e| format!("{path}: {e}"))
}

/// The secret ARNs that replace rds-refresh's plain secrets.
pub struct SecretArns<'a> {
    pub password: Option<&'a str>,
    pub token: Option<&'a str>,
}

const CLONE_FIELDS: &[&str] = &[
    "instanceClass",
    "subnetGroup",
    "securityGroups",
    "publiclyAccessible",
    "tags",
    "parameterGroup",
    "optionGroup",
    "clusterParameterGroup",
    "port",
    "enableIAMAuth",
    "storageType",
    "deletionProtection",
    "maxAge",
];

/// A refresh request from an rds-refresh config. Plain secrets are never carried over:
/// each must be replaced by a Secrets Manager ARN, or the conversion fails saying which.
pub fn from_rds_refresh(config: &Value, target: &str, arns: &SecretArns<'_>) -> Result<Value, Vec<String>> {
    let mut problems = Vec::new();
    let section = |name: &str| config.get(name).and_then(Value::as_object).cloned().unwrap_or_default();
    let (source, clone, dblab) = (section("source"), section("clone"), section("dblab"));

    let mut out_source = Map::new();
    for (from, to) in [
        ("type", "type"),
        ("identifier", "identifier"),
        ("snapshotIdentifier", "snapshotIdentifier"),
        ("dbName", "dbName"),
        ("username", "username"),
    ] {
        if let Some(v) = source.get(from).filter(|v| !is_empty(v)) {
            out_source.insert(to.into(), v.clone());
        }
    }
    match (arns.password, source.get("password").filter(|v| !is_empty(v))) {
        (Some(arn), _) => {
            out_source.insert("passwordSecretArn".into(), json!(arn));
        }
        (None, Some(_)) => problems.push(
            "source.password holds a plain password: store it in Secrets Manager and pass --password-secret ARN".into(),
        ),
        (None, None) => problems.push("no password: pass --password-secret ARN".into()),
    }

    let out_clone: Map<String, Value> = CLONE_FIELDS
        .iter()
        .filter_map(|k| clone.get(*k).filter(|v| !unset(k, v)).map(|v| (k.to_string(), v.clone())))
        .collect();

    // `insecure` is the stack's to say, in its engine's entry (`engine_entry`).
    let mut out_dblab = Map::new();
    for key in ["apiEndpoint", "pollInterval", "timeout"] {
        if let Some(v) = dblab.get(key).filter(|v| !is_empty(v)) {
            out_dblab.insert(key.into(), v.clone());
        }
    }
    match (arns.token, dblab.get("token").filter(|v| !is_empty(v))) {
        (Some(arn), _) => {
            out_dblab.insert("tokenSecretArn".into(), json!(arn));
        }
        (None, Some(_)) => problems
            .push("dblab.token holds a plain token: store it in Secrets Manager and pass --token-secret ARN".into()),
        (None, None) => problems.push("no DBLab token: pass --token-secret ARN".into()),
    }
    if problems.is_empty() {
        Ok(json!({"target": target, "source": out_source, "clone": out_clone, "dblab": out_dblab}))
    } else {
        Err(problems)
    }
}

/// The entry of the stack's `DblabEngines` the converted request's engine needs (named after
/// the target): its address, its token secret, and `plaintext` or `insecure` as the
/// config's endpoint and `insecure` say.
pub fn engine_entry(config: &Value, target: &str, token_arn: &str) -> Option<String> {
    let dblab = config.get("dblab")?;
    let endpoint = dblab.get("apiEndpoint").and_then(Value::as_str).filter(|e| !e.is_empty())?.trim_end_matches('/');
    let transport = if endpoint.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) {
        " plaintext"
    } else if dblab.get("insecure").and_then(Value::as_bool) == Some(true) {
        " insecure"
    } else {
        ""
    };
    Some(format!("{target} {endpoint} {token_arn}{transport}"))
}

/// rds-refresh leaves out a setting by an empty value, and the port by 0.
fn unset(key: &str, v: &Value) -> bool {
    is_empty(v) || (key == "port" && v.as_u64() == Some(0))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refresh_core::RefreshRequest;

    const CONFIG: &str = r#"
source:
  type: rds
  identifier: prod-db
  dbName: app
  username: dblab
  password: "p@ss$HOME word"
clone:
  instanceClass: db.r6g.xlarge
  securityGroups: [sg-0123abcd]
  subnetGroup: private
  tags: {team: data}
  maxAge: 48h
  port: 0
dblab:
  apiEndpoint: https://dblab.internal:2345
  token: "tok$en"
  pollInterval: 30s
  timeout: 4h
aws:
  region: eu-west-1
"#;
    const PW: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pw-AbCdEf";
    const TOKEN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tok-AbCdEf";

    #[test]
    fn converts_to_a_valid_request_without_the_secrets() {
        let config = parse(CONFIG).unwrap();
        let request =
            from_rds_refresh(&config, "staging", &SecretArns { password: Some(PW), token: Some(TOKEN) }).unwrap();
        let text = request.to_string();
        assert!(!text.contains("p@ss") && !text.contains("tok$en"), "{text}");
        assert_eq!(request["source"]["passwordSecretArn"], PW);
        assert_eq!(request["clone"]["securityGroups"][0], "sg-0123abcd");
        assert!(request["clone"].get("port").is_none(), "rds-refresh's port 0 means the default");
        RefreshRequest::from_document(&request).unwrap();
        let entry = engine_entry(&config, "staging", TOKEN).unwrap();
        assert_eq!(entry, format!("staging https://dblab.internal:2345 {TOKEN}"));
        refresh_core::dblab::EngineList::parse(&entry).unwrap();
    }

    #[test]
    fn the_engines_transport_goes_to_the_stacks_entry_not_the_request() {
        let mut config = parse(CONFIG).unwrap();
        config["dblab"]["insecure"] = json!(true);
        let arns = SecretArns { password: Some(PW), token: Some(TOKEN) };
        let request = from_rds_refresh(&config, "staging", &arns).unwrap();
        assert!(request["dblab"].get("insecure").is_none(), "{request}");
        assert!(engine_entry(&config, "staging", TOKEN).unwrap().ends_with(" insecure"));
        config["dblab"]["apiEndpoint"] = json!("http://10.0.0.5:2345/");
        let entry = engine_entry(&config, "staging", TOKEN).unwrap();
        assert_eq!(entry, format!("staging http://10.0.0.5:2345 {TOKEN} plaintext"));
        refresh_core::dblab::EngineList::parse(&entry).unwrap();
    }

    #[test]
    fn refuses_to_carry_plain_secrets_over() {
        let config = parse(CONFIG).unwrap();
        let problems = from_rds_refresh(&config, "staging", &SecretArns { password: None, token: None }).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("--password-secret") && problems[1].contains("--token-secret"));
    }

    #[test]
    fn dollar_signs_survive_yaml() {
        let v = parse("a: \"x$HOME${Y}\"").unwrap();
        assert_eq!(v["a"], "x$HOME${Y}");
    }
}
