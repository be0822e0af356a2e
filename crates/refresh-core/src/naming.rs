//! How the temporary clone is named.
//!
//! `dblab-refresh-<target>-<yyyymmdd-hhmmss>`, where the time is the EXECUTION's start
//! time, so a retried restore computes the same name and finds its own clone. The name is
//! a valid RDS identifier whatever the target looks like, and leaves room for the Aurora
//! writer instance's suffix.

use time::OffsetDateTime;
use time::macros::format_description;

pub const CLONE_PREFIX: &str = "dblab-refresh-";
pub(crate) const WRITER_SUFFIX: &str = "-writer";
/// RDS identifiers hold 63 characters; the writer instance adds its suffix to the name.
pub(crate) const MAX_CLONE_NAME: usize = 63 - WRITER_SUFFIX.len();
const STAMP_LEN: usize = "-yyyymmdd-hhmmss".len();
const MAX_TARGET_PART: usize = MAX_CLONE_NAME - CLONE_PREFIX.len() - STAMP_LEN;
const HASH_LEN: usize = 4;

pub fn clone_name(target: &str, started_at: OffsetDateTime) -> String {
    let utc = started_at.to_offset(time::UtcOffset::UTC);
    let stamp = utc
        .format(format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| format!("{}", utc.unix_timestamp()));
    format!("{CLONE_PREFIX}{}-{stamp}", target_part(target))
}

pub fn writer_instance_name(clone: &str) -> String {
    format!("{clone}{WRITER_SUFFIX}")
}

/// Lowercase letters, digits and single hyphens; too long a target is cut and given a
/// short hash of the full name so two long targets with one prefix stay apart.
fn target_part(target: &str) -> String {
    let mut part = String::new();
    for ch in target.chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_alphanumeric() {
            part.push(ch);
        } else if !part.is_empty() && !part.ends_with('-') {
            part.push('-');
        }
    }
    let mut part = part.trim_end_matches('-').to_string();
    if part.is_empty() {
        part = "target".into();
    }
    if part.len() > MAX_TARGET_PART {
        part.truncate(MAX_TARGET_PART - HASH_LEN - 1);
        let kept = part.trim_end_matches('-').len();
        part.truncate(kept);
        part.push_str(&format!("-{:0width$x}", fnv1a(target) & 0xffff, width = HASH_LEN));
    }
    part
}

/// A short, stable hash of a name (FNV-1a): names cut to fit stay apart.
pub(crate) fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, b| (hash ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::check_rds_identifier;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-11-22 04:56:52 UTC);

    #[test]
    fn plain_target() {
        assert_eq!(clone_name("staging", T), "dblab-refresh-staging-20261122-045652");
    }

    #[test]
    fn uses_utc_whatever_the_offset() {
        let local = datetime!(2026-11-22 06:56:52 +2);
        assert_eq!(clone_name("staging", local), "dblab-refresh-staging-20261122-045652");
    }

    #[test]
    fn sanitizes_any_target_into_a_valid_identifier() {
        for target in ["Prod_DB.eu", "rds:prod-db-2026-11-22-03-10", "--x--", "___", "a..b", &"x".repeat(63), "É-ü"] {
            let name = clone_name(target, T);
            assert!(check_rds_identifier(&name).is_ok(), "{target:?} gave {name:?}");
            assert!(name.len() <= MAX_CLONE_NAME, "{name}");
            assert!(check_rds_identifier(&writer_instance_name(&name)).is_ok());
        }
        assert_eq!(clone_name("Prod_DB.eu", T), "dblab-refresh-prod-db-eu-20261122-045652");
        assert_eq!(clone_name("___", T), "dblab-refresh-target-20261122-045652");
    }

    #[test]
    fn long_targets_with_one_prefix_stay_apart() {
        let a = clone_name(&format!("{}-alpha", "shared".repeat(6)), T);
        let b = clone_name(&format!("{}-bravo", "shared".repeat(6)), T);
        assert_ne!(a, b);
        assert_eq!(a.len(), MAX_CLONE_NAME);
    }

    #[test]
    fn a_clone_name_leaves_the_writer_suffix_room_in_rds_63_characters() {
        let name = clone_name(&"x".repeat(63), T);
        assert_eq!(name.len(), 56);
        assert_eq!(writer_instance_name(&name).len(), 63);
    }

    #[test]
    fn a_target_is_cut_only_past_26_characters_and_then_ends_in_its_hash() {
        let fits = "t".repeat(26);
        assert_eq!(clone_name(&fits, T), format!("dblab-refresh-{fits}-20261122-045652"));
        let long = "t".repeat(27);
        let hash = fnv1a(&long) & 0xffff;
        assert_eq!(clone_name(&long, T), format!("dblab-refresh-{}-{hash:04x}-20261122-045652", "t".repeat(21)));
        // A hyphen where the cut falls is dropped: no double hyphen before the hash.
        let at_hyphen = format!("{}-{}", "t".repeat(20), "u".repeat(10));
        let hash = fnv1a(&at_hyphen) & 0xffff;
        assert_eq!(target_part(&at_hyphen), format!("{}-{hash:04x}", "t".repeat(20)));
    }

    #[test]
    fn the_hash_is_32_bit_fnv_1a() {
        assert_eq!(fnv1a(""), 0x811c_9dc5, "the offset basis");
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(fnv1a("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn runs_of_other_characters_become_one_hyphen_and_none_at_the_ends() {
        assert_eq!(target_part("--x--"), "x");
        assert_eq!(target_part("a..b"), "a-b");
        assert_eq!(target_part("A_-_B"), "a-b");
        assert_eq!(target_part("É-ü"), "target");
    }

    #[test]
    fn same_execution_start_same_name() {
        assert_eq!(clone_name("staging", T), clone_name("staging", T));
    }
}
