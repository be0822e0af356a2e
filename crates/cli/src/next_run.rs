//! When an EventBridge Scheduler expression fires next: `cron(...)` (six fields: minutes,
//! hours, day of month, month, day of week, year), `rate(N unit)` and `at(...)`, in the
//! schedule's time zone. Scheduler's API does not say; `schedule list` and `status` do.
//! Cron's `L`, `W` and `#` are not computed: such a schedule's next run is unknown (`None`).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// The set of values a cron field allows, as a bitmask over `min..=max`.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    allowed: Vec<bool>,
    min: u32,
    /// `?` or `*` in a day field: it does not restrict.
    any: bool,
}

impl Field {
    fn contains(&self, value: u32) -> bool {
        value >= self.min && self.allowed.get((value - self.min) as usize).copied().unwrap_or(false)
    }
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(text: &str, min: u32, names: &[&str]) -> Option<u32> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return u32::try_from(i).ok().map(|i| i + min);
    }
    text.parse().ok()
}

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Option<Field> {
    let mut allowed = vec![false; (max - min + 1) as usize];
    let any = text == "*" || text == "?";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, min, names)?, value(b, min, names)?),
                None => {
                    let v = value(r, min, names)?;
                    (v, if step > 1 { max } else { v })
                }
            },
        };
        if from < min || to > max || from > to {
            return None;
        }
        for v in (from..=to).step_by(step as usize) {
            allowed[(v - min) as usize] = true;
        }
    }
    Some(Field { allowed, min, any })
}

struct Cron {
    minutes: Field,
    hours: Field,
    days: Field,
    months: Field,
    weekdays: Field,
    years: Field,
}

fn cron(text: &str) -> Option<Cron> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [m, h, dom, mon, dow, year] = parts.as_slice() else { return None };
    Some(Cron {
        minutes: field(m, 0, 59, &[])?,
        hours: field(h, 0, 23, &[])?,
        days: field(dom, 1, 31, &[])?,
        months: field(mon, 1, 12, &MONTHS)?,
        weekdays: field(dow, 1, 7, &DAYS)?,
        years: field(year, 1970, 2199, &[])?,
    })
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        // 1 = Sunday, as in AWS cron.
        let weekday = u32::from(date.weekday().to_sunday_one_offset().unsigned_abs());
        let month = u32::from(date.month().unsigned_abs());
        let day = u32::from(date.day().unsigned_abs());
        let year = u32::try_from(date.year()).unwrap_or(0);
        let day_ok = match (self.days.any, self.weekdays.any) {
            (true, true) => true,
            (false, true) => self.days.contains(day),
            (true, false) => self.weekdays.contains(weekday),
            (false, false) => self.days.contains(day) && self.weekdays.contains(weekday),
        };
        day_ok && self.months.contains(month) && self.years.contains(year)
    }

    fn next(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone().clone();
        let mut date = after.date();
        // Five years of days: far enough for any yearly schedule.
        for _ in 0..(5 * 366) {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hours.contains(*h)) {
                    for minute in (0..60).filter(|m| self.minutes.contains(*m)) {
                        let at = DateTime::new(
                            date.year(),
                            date.month(),
                            date.day(),
                            i8::try_from(hour).ok()?,
                            i8::try_from(minute).ok()?,
                            0,
                            0,
                        )
                        .ok()?;
                        if let Ok(zoned) = at.to_zoned(tz.clone())
                            && zoned > *after
                        {
                            return Some(zoned);
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// The next time `expression` fires after `now`, in `timezone` (UTC when empty).
pub fn next_run(expression: &str, timezone: Option<&str>, start: Option<Timestamp>, now: Timestamp) -> Option<Zoned> {
    let tz = match timezone.filter(|t| !t.is_empty()) {
        Some(name) => TimeZone::get(name).ok()?,
        None => TimeZone::UTC,
    };
    let now_zoned = now.to_zoned(tz.clone());
    let expression = expression.trim();
    if let Some(body) = expression.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
        return cron(body)?.next(&now_zoned);
    }
    if let Some(body) = expression.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
        let (n, unit) = body.trim().split_once(' ')?;
        let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
        let seconds = match unit.trim().trim_end_matches('s') {
            "minute" => n * 60,
            "hour" => n * 3_600,
            "day" => n * 86_400,
            _ => return None,
        };
        // Rates count from the schedule's start (or its creation, which the API does not
        // give: then from now).
        let origin = start.unwrap_or(now);
        let elapsed = now.as_second() - origin.as_second();
        let periods = if elapsed < 0 { 0 } else { elapsed / seconds + 1 };
        let next = origin.checked_add((periods * seconds).seconds()).ok()?;
        return Some(next.to_zoned(tz));
    }
    if let Some(body) = expression.strip_prefix("at(").and_then(|b| b.strip_suffix(')')) {
        let at: DateTime = body.trim().parse().ok()?;
        let zoned = at.to_zoned(tz).ok()?;
        return (zoned > now_zoned).then_some(zoned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(expression: &str, tz: Option<&str>, now: &str) -> Option<String> {
        next_run(expression, tz, None, at(now)).map(|z| z.timestamp().to_string())
    }

    #[test]
    fn daily_cron_in_utc_and_in_a_zone_with_summer_time() {
        assert_eq!(next("cron(0 3 * * ? *)", None, "2026-12-01T02:59:00Z").as_deref(), Some("2026-12-01T03:00:00Z"));
        assert_eq!(next("cron(0 3 * * ? *)", None, "2026-12-01T03:00:00Z").as_deref(), Some("2026-12-02T03:00:00Z"));
        // 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
        assert_eq!(
            next("cron(0 3 * * ? *)", Some("Europe/Berlin"), "2026-12-01T12:00:00Z").as_deref(),
            Some("2026-12-02T02:00:00Z")
        );
        assert_eq!(
            next("cron(0 3 * * ? *)", Some("Europe/Berlin"), "2026-07-01T12:00:00Z").as_deref(),
            Some("2026-07-02T01:00:00Z")
        );
    }

    #[test]
    fn weekdays_lists_ranges_and_steps() {
        // 2026-12-05 is a Saturday: the next weekday run is Monday the 7th.
        assert_eq!(
            next("cron(30 4 ? * MON-FRI *)", None, "2026-12-05T00:00:00Z").as_deref(),
            Some("2026-12-07T04:30:00Z")
        );
        assert_eq!(next("cron(0/15 * * * ? *)", None, "2026-12-01T10:16:00Z").as_deref(), Some("2026-12-01T10:30:00Z"));
        assert_eq!(next("cron(0 1,13 1 * ? *)", None, "2026-12-01T02:00:00Z").as_deref(), Some("2026-12-01T13:00:00Z"));
        assert_eq!(
            next("cron(0 0 1 JAN ? 2027)", None, "2026-12-01T00:00:00Z").as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(next("cron(0 0 1 JAN ? 2025)", None, "2026-12-01T00:00:00Z"), None, "in the past");
    }

    #[test]
    fn rates_at_and_what_is_not_computed() {
        let start = Some(at("2026-12-01T00:00:00Z"));
        let r = next_run("rate(6 hours)", None, start, at("2026-12-01T07:00:00Z")).unwrap();
        assert_eq!(r.timestamp().to_string(), "2026-12-01T12:00:00Z");
        assert_eq!(
            next("at(2026-12-24T18:00:00)", None, "2026-12-01T00:00:00Z").as_deref(),
            Some("2026-12-24T18:00:00Z")
        );
        assert_eq!(next("cron(0 3 L * ? *)", None, "2026-12-01T00:00:00Z"), None, "L is not computed");
        assert_eq!(next("cron(0 3 * *)", None, "2026-12-01T00:00:00Z"), None, "five fields");
        assert_eq!(next("cron(0 3 * * ? *)", Some("Mars/Olympus"), "2026-12-01T00:00:00Z"), None);
    }
}
