//! Sync schedules as Quartz cron expressions, the syntax Atlassian admins know
//! (`0 0 * * * ?` = every hour): 6 or 7 fields (seconds, minutes, hours, day-of-month, month,
//! day-of-week, optional year), with `?` in exactly one of day-of-month / day-of-week.
//! Validation errors name the field and the fix; evaluation is done by `croner`.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Zoned;

/// An invalid schedule: which field, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}; fix: {fix}", field.map(|f| format!("{f} field: ")).unwrap_or_default())]
pub struct ScheduleError {
    /// The offending field (`seconds`, `minutes`, `hours`, `day-of-month`, `month`,
    /// `day-of-week`, `year`), when one is to blame.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

impl ScheduleError {
    fn new(
        field: Option<&'static str>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            field,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// The fields in order: name, largest value (to bound steps; none for the year), and what the
/// field accepts (for the fix in error messages).
const FIELDS: [(&str, Option<u32>, &str); 7] = [
    ("seconds", Some(59), "0-59"),
    ("minutes", Some(59), "0-59"),
    ("hours", Some(23), "0-23"),
    ("day-of-month", Some(31), "1-31, `L`, `LW` or `15W`"),
    ("month", Some(12), "1-12 or JAN-DEC"),
    (
        "day-of-week",
        Some(7),
        "1-7 (1 = Sunday) or SUN-SAT, `5L` or `6#3`",
    ),
    ("year", None, "e.g. 2026"),
];

const EXAMPLE: &str = "`0 0 * * * ?` (every hour) or `0 30 2 ? * MON-FRI` (02:30 on weekdays)";

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Optional)
        .alternative_weekdays(true)
        // Quartz writes `0/15` for "from 0, every 15".
        .sloppy_ranges(true)
        .build()
}

impl Schedule {
    /// Parses and validates a Quartz cron expression.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let parts = quartz_shape(expression)?;
        let cron = parser()
            .parse(expression.trim())
            .map_err(|e| blame_field(&parts, &e.to_string()))?;
        Ok(Self {
            expression: expression.trim().to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first run strictly after `after`, in `after`'s time zone. `None` when the schedule
    /// never fires again (e.g. a past year).
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        self.cron.find_next_occurrence(after, false).ok()
    }

    /// [`Schedule::next_after`] on unix milliseconds, evaluated in `tz`.
    pub fn next_after_ms(&self, after_ms: i64, tz: &jiff::tz::TimeZone) -> Option<i64> {
        let ts = jiff::Timestamp::from_millisecond(after_ms).ok()?;
        self.next_after(&ts.to_zoned(tz.clone()))
            .map(|z| z.timestamp().as_millisecond())
    }
}

/// Validates a schedule expression (see [`Schedule::parse`]).
pub fn validate_schedule(expression: &str) -> Result<(), ScheduleError> {
    Schedule::parse(expression).map(|_| ())
}

/// The Quartz rules croner does not check, so they are checked here; values, ranges, names
/// and `L`/`W`/`#` are left to croner's parser. croner accepts 5 fields (Unix cron: here the
/// user gets told to add seconds), a `?` in both or neither day field (it reads `?` as `*`;
/// Quartz needs exactly one), empty list entries (`1,,2`) and steps larger than the field.
fn quartz_shape(expression: &str) -> Result<Vec<&str>, ScheduleError> {
    let parts: Vec<&str> = expression.split_whitespace().collect();
    match parts.len() {
        6 | 7 => {}
        5 => {
            return Err(ScheduleError::new(
                None,
                "5 fields is Unix cron; usersync uses Quartz cron (as Atlassian products do), which starts with a seconds field",
                format!(
                    "add the seconds first and use `?` for day-of-week, e.g. `0 {} {} {} {} ?`",
                    parts[0], parts[1], parts[2], parts[3]
                ),
            ));
        }
        n => {
            return Err(ScheduleError::new(
                None,
                format!(
                    "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found {n}"
                ),
                format!("write e.g. {EXAMPLE}"),
            ));
        }
    }
    for (i, (part, (name, max, _))) in parts.iter().zip(FIELDS).enumerate() {
        if part.contains('?') && i != 3 && i != 5 {
            return Err(ScheduleError::new(
                Some(name),
                "`?` is only allowed in day-of-month and day-of-week",
                "use `*`",
            ));
        }
        if part.split(',').any(str::is_empty) {
            return Err(ScheduleError::new(
                Some(name),
                format!("empty list entry in {part:?}"),
                "separate values with single commas, e.g. `1,15,30`",
            ));
        }
        for step in part.split(',').filter_map(|item| item.split_once('/')) {
            if let (Some(max), Ok(n)) = (max, step.1.parse::<u32>())
                && n > max
            {
                return Err(ScheduleError::new(
                    Some(name),
                    format!("step {n} is larger than the field's largest value, {max}"),
                    format!("use a step from 1 to {max}"),
                ));
            }
        }
    }
    let (dom, dow) = (parts[3], parts[5]);
    match (dom == "?", dow == "?") {
        (true, true) => Err(ScheduleError::new(
            Some("day-of-week"),
            "`?` may be used in day-of-month or day-of-week, not both",
            "put `*` in day-of-month: `… * * ?`",
        )),
        (false, false) => Err(ScheduleError::new(
            Some("day-of-week"),
            format!("Quartz needs `?` in day-of-month or day-of-week (found {dom:?} and {dow:?})"),
            if dow == "*" {
                "write `?` as the day-of-week, e.g. `0 0 * * * ?`".to_string()
            } else {
                format!("write `?` as the day-of-month, e.g. `… ? * {dow}`")
            },
        )),
        _ => Ok(parts),
    }
}

/// croner's errors do not say which field is wrong: find it by parsing each field alone in an
/// otherwise valid expression.
fn blame_field(parts: &[&str], message: &str) -> ScheduleError {
    let p = parser();
    for (i, part) in parts.iter().enumerate() {
        let mut probe = ["0", "0", "0", "*", "*", "?", "*"];
        if i == 5 {
            probe[3] = "?";
        }
        probe[i] = part;
        if p.parse(&probe.join(" ")).is_err() {
            let (name, _, values) = FIELDS[i];
            return ScheduleError::new(
                Some(name),
                format!("{part:?} is not valid ({message})"),
                format!("use values {values}, `*`, ranges `a-b`, lists `a,b` and steps `*/n`"),
            );
        }
    }
    ScheduleError::new(
        None,
        message.to_string(),
        format!("use Quartz syntax, e.g. {EXAMPLE}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Zoned {
        s.parse::<jiff::Timestamp>()
            .expect("ts")
            .to_zoned(jiff::tz::TimeZone::UTC)
    }

    #[test]
    fn atlassian_hourly() {
        let s = Schedule::parse("0 0 * * * ?").expect("valid");
        let next = s.next_after(&utc("2026-01-01T10:15:00Z")).expect("next");
        assert_eq!(next.timestamp().to_string(), "2026-01-01T11:00:00Z");
    }

    #[test]
    fn quartz_weekdays_and_year() {
        // 2026-01-03 is a Saturday; MON-FRI → Monday the 5th. Quartz 2 = Monday.
        let s = Schedule::parse("0 30 2 ? * MON-FRI").expect("valid");
        assert_eq!(
            s.next_after(&utc("2026-01-03T00:00:00Z"))
                .expect("next")
                .timestamp()
                .to_string(),
            "2026-01-05T02:30:00Z"
        );
        let s = Schedule::parse("0 30 2 ? * 2 2026").expect("valid");
        assert_eq!(
            s.next_after(&utc("2026-01-03T00:00:00Z"))
                .expect("next")
                .timestamp()
                .to_string(),
            "2026-01-05T02:30:00Z"
        );
        assert_eq!(
            s.next_after_ms(
                utc("2026-01-03T00:00:00Z").timestamp().as_millisecond(),
                &jiff::tz::TimeZone::UTC
            ),
            Some(utc("2026-01-05T02:30:00Z").timestamp().as_millisecond())
        );
    }

    #[test]
    fn errors_name_field_and_fix() {
        let e = Schedule::parse("0 * * * *").unwrap_err();
        assert!(e.to_string().contains("seconds"), "{e}");
        let e = Schedule::parse("0 0 25 * * ?").unwrap_err();
        assert_eq!(e.field, Some("hours"));
        assert!(e.to_string().contains("0-23"), "{e}");
        let e = Schedule::parse("0 0 * * * *").unwrap_err();
        assert_eq!(e.field, Some("day-of-week"));
        assert!(e.fix.contains('?'));
        let e = Schedule::parse("0 ? * * * ?").unwrap_err();
        assert_eq!(e.field, Some("minutes"));
        let e = Schedule::parse("0 0 0 1 13 ?").unwrap_err();
        assert_eq!(e.field, Some("month"));
        assert!(Schedule::parse("0 0/15 * * * ?").is_ok());
        assert!(Schedule::parse("0 0 0 L * ?").is_ok());
        assert!(Schedule::parse("0 0 0 ? * 6#3").is_ok());
    }

    /// Each invalid expression names the field at fault.
    #[test]
    fn every_invalid_field_is_named() {
        for (expr, field) in [
            ("60 0 * * * ?", "seconds"),
            ("0 60 * * * ?", "minutes"),
            ("0 0 24 * * ?", "hours"),
            ("0 0 0 32 * ?", "day-of-month"),
            ("0 0 0 0 * ?", "day-of-month"),
            ("0 0 0 * 0 ?", "month"),
            ("0 0 0 * FOO ?", "month"),
            ("0 0 0 ? * 8", "day-of-week"),
            ("0 0 0 ? * XYZ", "day-of-week"),
            ("0 0 0 * * ? abc", "year"),
            ("0 30-10 * * * ?", "minutes"),
            ("0 0/75 * * * ?", "minutes"),
            ("0 0/0 * * * ?", "minutes"),
            ("0 1,,2 * * * ?", "minutes"),
            ("0 0 ? * * ?", "hours"),
        ] {
            let Err(e) = Schedule::parse(expr) else {
                panic!("{expr} should be rejected");
            };
            assert_eq!(e.field, Some(field), "{expr}: {e}");
            assert!(!e.fix.is_empty(), "{expr}");
        }
        for ok in [
            "0 0 12 ? * mon-fri",
            "0 0 0 LW * ?",
            "0 0 0 15W * ?",
            "0 0 0 ? * 5L",
            "0 0 0 1 JAN-MAR ? 2026",
            "*/10 * * * * ?",
        ] {
            assert!(
                Schedule::parse(ok).is_ok(),
                "{ok}: {:?}",
                Schedule::parse(ok)
            );
        }
    }
}
