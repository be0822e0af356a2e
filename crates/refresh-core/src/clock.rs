//! Time as it crosses the edges: RFC 3339 in the state and the history, and the AWS SDK's
//! own `DateTime` both ways.

use time::OffsetDateTime;

/// A time as the state and the history write it (RFC 3339); empty for a time RFC 3339
/// cannot express (a year beyond 9999).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A time the SDK gave (a describe's creation time, an event's timestamp).
pub fn from_aws(dt: &aws_smithy_types::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(dt.as_nanos()).ok()
}

/// A time for the SDK (a restore time).
pub(crate) fn to_aws(t: OffsetDateTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(t.unix_timestamp_nanos())
        .unwrap_or(aws_smithy_types::DateTime::from_secs(t.unix_timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_cross_to_the_sdk_and_back_unchanged() {
        let t = datetime!(2026-12-05 03:10:20.123456789 UTC);
        assert_eq!(from_aws(&to_aws(t)), Some(t));
        assert_eq!(rfc3339(t), "2026-12-05T03:10:20.123456789Z");
    }
}
