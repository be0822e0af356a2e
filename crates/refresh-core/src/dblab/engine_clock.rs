//! The engine's clock, read from the `Date` header Go's `net/http` server writes on every
//! answer (`net/http/server.go`: "If the Date header is not set, the server sets it"), so
//! that times the engine stamps (`lastRefresh`, a snapshot's `createdAt`) are compared with
//! times of ours converted to its clock, never with ours directly: an engine minutes ahead
//! or behind then neither fails a real refresh nor passes an old snapshot. A proxy in front
//! of the engine may write its own `Date` (nginx does): the proxy's clock is then the one
//! read, usually the same host's.

use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// How far a converted time may be off beyond half the call's round trip: the header's
/// second (it is truncated), the engine's own truncation of `lastRefresh` to the second, and
/// a margin.
pub(crate) const READ_ERROR: Duration = Duration::seconds(3);

/// With no `Date` header to read, how far the engine's clock is assumed to be from ours.
pub(crate) const UNREAD_SKEW: Duration = Duration::seconds(60);

/// RFC 9110's IMF-fixdate, the only form `net/http` writes (`http.TimeFormat`).
const IMF_FIXDATE: &[FormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// The engine's clock against ours, from one answer: `None` when it sent no readable `Date`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineClock {
    /// Milliseconds the engine's clock is ahead of ours (negative: behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead_ms: Option<i64>,
    /// Half the round trip of the call it was read from: when in it the engine wrote the
    /// header is not known.
    #[serde(default)]
    pub half_trip_ms: i64,
    /// The `Date` itself: the engine's own clock when it answered, truncated to the second
    /// (it read a time in `[answered, answered + 1 s)`), free of any conversion's error.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub answered: Option<OffsetDateTime>,
}

impl EngineClock {
    /// From the `Date` of an answer asked at `sent` and received at `received` (our clock).
    /// The header is truncated to its second: the engine's time was in `[date, date + 1 s)`,
    /// taken as the middle of that second against the middle of the call.
    pub fn read(date: Option<&str>, sent: OffsetDateTime, received: OffsetDateTime) -> Self {
        let parsed = date.and_then(|d| PrimitiveDateTime::parse(d.trim(), IMF_FIXDATE).ok()).map(|d| d.assume_utc());
        let half_trip: Duration = (received - sent) / 2;
        let ahead_ms = parsed.map(|engine: OffsetDateTime| {
            let ahead: Duration = (engine + Duration::milliseconds(500)) - (sent + half_trip);
            i64::try_from(ahead.whole_milliseconds()).unwrap_or(i64::MAX)
        });
        Self {
            ahead_ms,
            half_trip_ms: i64::try_from(half_trip.whole_milliseconds()).unwrap_or(i64::MAX),
            answered: parsed,
        }
    }

    fn ahead(&self) -> Option<Duration> {
        self.ahead_ms.map(Duration::milliseconds)
    }

    fn error(&self) -> Duration {
        READ_ERROR + Duration::milliseconds(self.half_trip_ms.max(0))
    }

    /// The earliest the engine's clock may have read when ours read `ours`: a time the
    /// engine stamps at or after that moment is never before this.
    pub fn earliest(&self, ours: OffsetDateTime) -> OffsetDateTime {
        match self.ahead() {
            Some(ahead) => ours + ahead - self.error(),
            None => ours - UNREAD_SKEW,
        }
    }

    /// The latest the engine's clock may have read when ours read `ours`: a time the engine
    /// stamps after this is surely after that moment.
    pub fn latest(&self, ours: OffsetDateTime) -> OffsetDateTime {
        match self.ahead() {
            Some(ahead) => ours + ahead + self.error(),
            None => ours + UNREAD_SKEW,
        }
    }

    /// For the logs and the history: how the engine's clock stands, if known.
    pub fn describe(&self) -> String {
        match self.ahead_ms {
            Some(ms) if ms.abs() < 1_000 => "in step with ours".into(),
            Some(ms) if ms > 0 => format!("{:.1} s ahead of ours", ms as f64 / 1_000.0),
            Some(ms) => format!("{:.1} s behind ours", -ms as f64 / 1_000.0),
            None => "unknown (no Date header)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SENT: OffsetDateTime = datetime!(2026-12-07 10:00:00.000 UTC);
    const RECEIVED: OffsetDateTime = datetime!(2026-12-07 10:00:00.200 UTC);

    #[test]
    fn an_engine_minutes_off_is_read_from_its_date_header() {
        let ahead = EngineClock::read(Some("Mon, 07 Dec 2026 10:05:00 GMT"), SENT, RECEIVED);
        assert_eq!((ahead.ahead_ms, ahead.half_trip_ms), (Some(300_400), 100));
        assert_eq!(ahead.answered, Some(datetime!(2026-12-07 10:05:00 UTC)), "the engine's own stamp, as it wrote it");
        let t = datetime!(2026-12-07 10:00:00 UTC);
        assert!(ahead.earliest(t) <= datetime!(2026-12-07 10:05:00 UTC));
        assert!(ahead.earliest(t) > datetime!(2026-12-07 10:04:55 UTC));
        assert!(ahead.latest(t) >= datetime!(2026-12-07 10:05:01 UTC));
        let behind = EngineClock::read(Some("Mon, 07 Dec 2026 09:55:00 GMT"), SENT, RECEIVED);
        assert_eq!(behind.ahead_ms, Some(-299_600));
        assert!(behind.earliest(t) <= datetime!(2026-12-07 09:55:00 UTC));
        assert_eq!(behind.describe(), "299.6 s behind ours");
        assert_eq!(ahead.describe(), "300.4 s ahead of ours");
        let second = |ms| EngineClock { ahead_ms: Some(ms), half_trip_ms: 0, answered: None }.describe();
        assert_eq!((second(999), second(-999)), ("in step with ours".into(), "in step with ours".into()));
        assert_eq!((second(1_000), second(-1_000)), ("1.0 s ahead of ours".into(), "1.0 s behind ours".into()));
    }

    #[test]
    fn a_slow_answer_widens_the_reading() {
        let slow = EngineClock::read(Some("Mon, 07 Dec 2026 10:00:05 GMT"), SENT, SENT + Duration::seconds(10));
        let t = datetime!(2026-12-07 10:00:00 UTC);
        // The header was written somewhere in those ten seconds: five either way, plus the error.
        assert_eq!(slow.latest(t) - slow.earliest(t), Duration::seconds(16));
    }

    #[test]
    fn without_a_readable_date_the_skew_is_assumed() {
        for date in [None, Some("yesterday"), Some("2026-12-07T10:00:00Z")] {
            let clock = EngineClock::read(date, SENT, RECEIVED);
            assert_eq!(clock.ahead_ms, None, "{date:?}");
            assert_eq!(clock.earliest(SENT), SENT - UNREAD_SKEW);
            assert_eq!(clock.latest(SENT), SENT + UNREAD_SKEW);
        }
    }

    #[test]
    fn an_engine_in_step_reads_within_the_read_error() {
        let clock = EngineClock::read(Some("Mon, 07 Dec 2026 10:00:00 GMT"), SENT, RECEIVED);
        let ms = clock.ahead_ms.unwrap();
        assert!(ms.abs() <= 1_000, "{ms}");
        assert_eq!(clock.describe(), "in step with ours");
    }
}
