//! The tags that mark a clone as ours. Deletion trusts nothing else: a resource is deleted
//! only when it carries `ManagedBy=dblab-refresh` AND has the clone name prefix.

use std::collections::BTreeMap;

use crate::naming::CLONE_PREFIX;

pub const MANAGED_BY_KEY: &str = "ManagedBy";
pub const MANAGED_BY_VALUE: &str = "dblab-refresh";
pub const TARGET_KEY: &str = "dblab-refresh:target";
pub const EXECUTION_KEY: &str = "dblab-refresh:execution";
pub const EXECUTION_ARN_KEY: &str = "dblab-refresh:execution-arn";
pub const DELETE_AFTER_KEY: &str = "DeleteAfter";
/// On a snapshot copy: what it is a copy of (the publisher's copies, and a run's local copy of a share).
pub const COPY_OF_KEY: &str = "dblab-refresh:copy-of";
/// On the publisher's copies: when the copied snapshot's data is from (RFC 3339). A
/// cluster snapshot carries no original time, and its copy's own time is the copy's.
pub(crate) const DATA_AS_OF_KEY: &str = "dblab-refresh:data-as-of";
/// On a clone of a cluster another account shares through RAM: that cluster's ARN.
pub(crate) const CLONE_OF_KEY: &str = "dblab-refresh:clone-of";

const RESERVED: &[&str] = &[MANAGED_BY_KEY, DELETE_AFTER_KEY];
const RESERVED_PREFIX: &str = "dblab-refresh:";

/// RDS allows 50 tags per resource; ours take at most six (a clone of a RAM-shared
/// cluster, or a copy-in snapshot, carries one more than the five every clone has).
pub(crate) const MAX_USER_TAGS: usize = 44;

/// Why a request's tag cannot be put on the clone: ours are reserved, and RDS refuses the
/// rest of what `rds_tag_problem` names.
pub(crate) fn check_user_tag(key: &str, value: &str) -> Result<(), String> {
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(key)) || key.starts_with(RESERVED_PREFIX) {
        return Err(format!("{key:?} is set by the orchestrator itself and cannot be given"));
    }
    match rds_tag_problem(key, value) {
        Some(problem) => Err(format!("RDS refuses this tag: {problem}")),
        None => Ok(()),
    }
}

/// What the orchestrator writes on every resource it creates.
pub struct Ownership<'a> {
    pub target: &'a str,
    pub execution_name: &'a str,
    pub execution_arn: Option<&'a str>,
    /// RFC 3339, UTC.
    pub delete_after: &'a str,
}

/// User tags first, then ours: ours always win (validation already refuses collisions).
pub fn clone_tags(user: &BTreeMap<String, String>, owner: &Ownership<'_>) -> Vec<(String, String)> {
    let mut tags: BTreeMap<String, String> = user.clone();
    tags.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
    tags.insert(TARGET_KEY.into(), owner.target.into());
    tags.insert(EXECUTION_KEY.into(), owner.execution_name.into());
    if let Some(arn) = owner.execution_arn {
        tags.insert(EXECUTION_ARN_KEY.into(), arn.into());
    }
    tags.insert(DELETE_AFTER_KEY.into(), owner.delete_after.into());
    tags.into_iter().collect()
}

/// Why RDS would refuse a tag, if it would: keys of 1 to 128 and values of up to 256
/// characters, only letters, digits, white space and `_ . : / = + - @`, neither starting
/// with `aws:` or `rds:` (RDS API reference, "Tag").
pub(crate) fn rds_tag_problem(key: &str, value: &str) -> Option<String> {
    // RDS's white space is Unicode's separators: not tabs or line breaks.
    let allowed = |c: char| c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c);
    let reserved =
        |t: &str| ["aws:", "rds:"].iter().any(|p| t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p)));
    let (key_len, value_len) = (key.chars().count(), value.chars().count());
    if !(1..=128).contains(&key_len) || value_len > 256 {
        return Some(format!("a key of 1 to 128 and a value of up to 256 characters, not {key_len} and {value_len}"));
    }
    if let Some(c) = key.chars().chain(value.chars()).find(|c| !allowed(*c)) {
        return Some(format!("{c:?} is not a letter, digit, space or one of _ . : / = + - @"));
    }
    if reserved(key) || reserved(value) {
        return Some("neither key nor value may start with aws: or rds:".into());
    }
    None
}

pub fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether these tags say the resource was made by this execution: its name, and its ARN
/// when both are known (names are unique only within one state machine).
pub fn made_by(tags: &[(String, String)], execution_name: &str, execution_arn: Option<&str>) -> bool {
    let name_matches = get(tags, EXECUTION_KEY) == Some(execution_name);
    let arn_conflicts =
        matches!((get(tags, EXECUTION_ARN_KEY), execution_arn), (Some(tagged), Some(arn)) if tagged != arn);
    name_matches && !arn_conflicts
}

/// Why a resource must not be deleted, or `Ok` when it is provably ours.
pub(crate) fn check_managed(identifier: &str, tags: &[(String, String)]) -> Result<(), String> {
    if !identifier.starts_with(CLONE_PREFIX) {
        return Err(format!("its name does not start with {CLONE_PREFIX:?}"));
    }
    if get(tags, MANAGED_BY_KEY) != Some(MANAGED_BY_VALUE) {
        return Err(format!("it is not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_refuses_reserved_prefixes_and_other_characters() {
        for (key, value) in [
            ("ManagedBy", "dblab-refresh"),
            ("DeleteAfter", "2026-12-07T03:00:00Z"),
            ("k", ""),
            ("Team", "Data Platform @ HQ"),
            ("Équipe", "données\u{00A0}2026"),
        ] {
            assert_eq!(rds_tag_problem(key, value), None, "{key}={value}");
        }
        for (key, value) in [
            ("dblab-refresh:copy-of", "rds:prod-2026-12-05-03-10"),
            ("RDS:name", "x"),
            ("aws:x", "x"),
            ("k", "AWS:x"),
            ("", "x"),
            ("k", "a,b"),
            ("k;", "x"),
            ("k", "a\tb"),
            ("k", "a\nb"),
        ] {
            assert!(rds_tag_problem(key, value).is_some(), "{key}={value}");
        }
        assert!(rds_tag_problem(&"k".repeat(129), "").is_some());
        assert!(rds_tag_problem("k", &"v".repeat(257)).is_some());
        assert_eq!(rds_tag_problem(&"k".repeat(128), &"v".repeat(256)), None);
    }

    fn owner() -> Ownership<'static> {
        Ownership {
            target: "staging",
            execution_name: "run-1",
            execution_arn: Some("arn:aws:states:us-east-1:1:execution:sm:run-1"),
            delete_after: "2026-11-24T00:00:00Z",
        }
    }

    #[test]
    fn ours_are_added_beside_the_users() {
        let user = BTreeMap::from([("team".to_string(), "db".to_string())]);
        let tags = clone_tags(&user, &owner());
        assert_eq!(get(&tags, "team"), Some("db"));
        assert_eq!(get(&tags, MANAGED_BY_KEY), Some(MANAGED_BY_VALUE));
        assert_eq!(get(&tags, TARGET_KEY), Some("staging"));
        assert_eq!(get(&tags, EXECUTION_KEY), Some("run-1"));
        assert_eq!(get(&tags, DELETE_AFTER_KEY), Some("2026-11-24T00:00:00Z"));
        assert!(get(&tags, EXECUTION_ARN_KEY).is_some());
    }

    #[test]
    fn users_cannot_override_ours() {
        let user = BTreeMap::from([(MANAGED_BY_KEY.to_string(), "someone".to_string())]);
        assert_eq!(get(&clone_tags(&user, &owner()), MANAGED_BY_KEY), Some(MANAGED_BY_VALUE));
        for key in ["ManagedBy", "managedby", "DeleteAfter", "dblab-refresh:target", "aws:cloudformation:x", ""] {
            assert!(check_user_tag(key, "v").is_err(), "{key}");
        }
        assert!(check_user_tag("team", "db").is_ok());
    }

    #[test]
    fn made_by_needs_the_name_and_no_conflicting_arn() {
        let tags = clone_tags(&BTreeMap::new(), &owner());
        assert!(made_by(&tags, "run-1", Some("arn:aws:states:us-east-1:1:execution:sm:run-1")));
        assert!(made_by(&tags, "run-1", None));
        assert!(
            !made_by(&tags, "run-1", Some("arn:aws:states:us-east-1:1:execution:other-sm:run-1")),
            "same name, another state machine"
        );
        assert!(!made_by(&tags, "run-2", None));
        let without_arn: Vec<_> = tags.into_iter().filter(|(k, _)| k != EXECUTION_ARN_KEY).collect();
        assert!(made_by(&without_arn, "run-1", Some("arn:any")));
    }

    #[test]
    fn deletion_needs_both_name_and_tag() {
        let ours = clone_tags(&BTreeMap::new(), &owner());
        assert!(check_managed("dblab-refresh-staging-20261122-000000", &ours).is_ok());
        assert!(check_managed("prod-db", &ours).is_err());
        let theirs = vec![(MANAGED_BY_KEY.to_string(), "terraform".to_string())];
        assert!(check_managed("dblab-refresh-staging-20261122-000000", &theirs).is_err());
        assert!(check_managed("dblab-refresh-staging-20261122-000000", &[]).is_err());
    }
}
