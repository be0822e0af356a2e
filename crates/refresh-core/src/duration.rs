//! Human durations in requests: `30s`, `15m`, `4h`, `2d`, or a sum such as `1h30m`.

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; write a duration such as \"30s\", \"4h\" or \"2d\"".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(format!("{text:?} has an unknown unit {ch:?}; use s, m, h or d")),
        };
        if digits.is_empty() {
            return Err(format!("{text:?} has a unit without a number before it"));
        }
        let value: u64 = digits.parse().map_err(|_| format!("{text:?} is too large"))?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?} ends without a unit; write e.g. \"{digits}s\""));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest text that `parse` reads back as the same duration.
pub fn format(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("4h"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "30", "h", "4x", "1.5h", "-3s", "99999999999999999999d"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [0, 1, 59, 60, 3_600, 5_400, 90_061, 172_800] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(5_400)), "1h30m");
    }
}
