//! Rules for single values: target names, RDS identifiers, secret ARNs, instance
//! classes, the engine's endpoint.

/// A target's name: what the request's `target` may be, and every command that names one.
pub fn check_target(target: &str) -> Result<(), String> {
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

/// An AWS account id: exactly 12 digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A secret's full ARN: Secrets Manager ends the name with `-` and six random characters.
/// GetSecretValue also finds a secret by its partial ARN (without them), but IAM matches
/// the stack's `SecretArns` against the full one, so a run named that way would be denied
/// where validation passed (Secrets Manager User Guide, "Resource: secret ARN").
pub(crate) fn check_secret_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let valid = parts.len() == 7
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "secretsmanager"
        && !parts[3].is_empty()
        && is_account_id(parts[4])
        && parts[5] == "secret"
        && !parts[6].is_empty();
    if !valid {
        return Err(format!(
            "{arn:?} is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)"
        ));
    }
    match parts[6].rsplit_once('-') {
        Some((name, s)) if !name.is_empty() && s.len() == 6 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(()),
        _ => Err(format!(
            "{arn:?} is a partial ARN: give the secret's full ARN, ending in the six characters Secrets Manager \
             added to its name (as `aws secretsmanager describe-secret` shows it); IAM denies a partial one"
        )),
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

pub(crate) fn check_endpoint(endpoint: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{endpoint:?} must start with https:// or http://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{endpoint:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the token comes from the engine's token secret".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{endpoint:?} must not have a query or fragment"));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_class_is_db_a_family_and_a_size() {
        for class in ["db.r6g.large", "db.t4g.medium", "db.serverless", "db.x2iedn.16xlarge"] {
            assert!(is_instance_class(class), "{class}");
        }
        for class in
            ["r6g.large", "rds.r6g.large", "db", "db.", "db..large", "db.r6g.", "db.r_6g.large", "db.r6g.x-large"]
        {
            assert!(!is_instance_class(class), "{class}");
        }
    }

    #[test]
    fn an_endpoint_is_a_bare_http_or_https_address() {
        assert_eq!(check_endpoint("https://dblab.internal:2345/").unwrap(), "https://dblab.internal:2345");
        assert_eq!(check_endpoint("http://10.0.0.5:2345/api").unwrap(), "http://10.0.0.5:2345/api");
        for bad in [
            "dblab.internal:2345",
            "ftp://dblab.internal",
            "https://user:pw@dblab.internal",
            "https://user@dblab.internal",
            "https://dblab.internal/?token=x",
            "https://dblab.internal/#x",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
