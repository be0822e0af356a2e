//! Rules for single values: target names, RDS identifiers, secret ARNs, instance
//! classes, the engine's endpoint.

pub(super) fn check_target(target: &str) -> Result<(), String> {
    let valid = target.len() <= 63
        && target.starts_with(|c: char| c.is_ascii_alphanumeric())
        && target.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!("{target:?} must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"))
    }
}

/// RDS instance and cluster identifier rules.
pub fn check_rds_identifier(id: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not an RDS identifier: 1-63 letters, digits or hyphens, starting with a letter, no double or trailing hyphen"
        ))
    }
}

pub(super) fn check_secret_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let valid = parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "secretsmanager"
        && !parts[3].is_empty()
        && !parts[4].is_empty()
        && parts[5] == "secret"
        && !parts[6].is_empty();
    if valid {
        Ok(())
    } else {
        Err(format!("{arn:?} is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"))
    }
}

pub(super) fn is_instance_class(class: &str) -> bool {
    let mut parts = class.split('.');
    parts.next() == Some("db")
        && parts
            .next()
            .is_some_and(|family| !family.is_empty() && family.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        && class.split('.').count() >= 2
}

pub(super) fn check_endpoint(endpoint: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{endpoint:?} must start with https:// or http://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{endpoint:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the token comes from dblab.tokenSecretArn".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{endpoint:?} must not have a query or fragment"));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}
