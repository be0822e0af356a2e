//! The operator's command line, `dblab-refresh`: pure pieces here (documents, the live
//! view, the next scheduled run), the commands in `commands/`.

pub mod document;
pub mod next_run;
pub mod view;

/// A Step Functions execution name: readable, unique, 80 characters of `[A-Za-z0-9_-]`.
pub fn execution_name(target: &str, now: time::OffsetDateTime) -> String {
    let safe: String = target
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(50)
        .collect();
    let stamp =
        now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]")).unwrap_or_default();
    format!("{safe}-{stamp}-{:04x}", (now.unix_timestamp_nanos() / 1_000) % 0x1_0000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn execution_names_are_readable_and_valid() {
        let name = execution_name("staging.eu", datetime!(2026-11-22 05:00:07.123456 UTC));
        assert!(name.starts_with("staging-eu-20261122T050007-"), "{name}");
        assert!(name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
