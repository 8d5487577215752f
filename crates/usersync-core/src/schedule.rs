//! Sync schedules as Quartz cron expressions, the syntax Atlassian admins know
//! (`0 0 * * * ?` = every hour): 6 or 7 fields (seconds, minutes, hours, day-of-month, month,
//! day-of-week, optional year), with `?` in exactly one of day-of-month / day-of-week.
//! Validation errors name the field and the fix; evaluation is done by `croner`.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Zoned;
use regex::Regex;
use std::sync::LazyLock;

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

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Accepted three-letter names, valued from `min`.
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 7] = [
    FieldSpec {
        name: "seconds",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "minutes",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "hours",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    FieldSpec {
        name: "day-of-week",
        min: 1,
        max: 7,
        names: DAYS,
    },
    FieldSpec {
        name: "year",
        min: 1970,
        max: 2099,
        names: &[],
    },
];

const EXAMPLE: &str = "`0 0 * * * ?` (every hour) or `0 30 2 ? * MON-FRI` (02:30 on weekdays)";

static DOM_SPECIAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(L(-\d{1,2})?|LW|\d{1,2}W)$").expect("valid regex"));
static DOW_SPECIAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([1-7]|[A-Z]{3})(L|#[1-5])$|^L$").expect("valid regex"));

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
}

impl Schedule {
    /// Parses and validates a Quartz cron expression.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        validate_fields(expression)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Optional)
            .alternative_weekdays(true)
            // Quartz writes `0/15` for "from 0, every 15".
            .sloppy_ranges(true)
            .build()
            .parse(expression.trim())
            .map_err(|e| {
                ScheduleError::new(
                    None,
                    e.to_string(),
                    format!("use Quartz syntax, e.g. {EXAMPLE}"),
                )
            })?;
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

fn validate_fields(expression: &str) -> Result<(), ScheduleError> {
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
    for (part, spec) in parts.iter().zip(FIELDS.iter()) {
        validate_field(&part.to_uppercase(), spec)?;
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
        _ => Ok(()),
    }
}

fn validate_field(field: &str, spec: &FieldSpec) -> Result<(), ScheduleError> {
    let fix_range = || {
        let names = if spec.names.is_empty() {
            String::new()
        } else {
            format!(" or {}-{}", spec.names[0], spec.names[spec.names.len() - 1])
        };
        format!(
            "use values {}-{}{names}, `*`, ranges `a-b`, lists `a,b` and steps `*/n`",
            spec.min, spec.max
        )
    };
    let err = |msg: String| ScheduleError::new(Some(spec.name), msg, fix_range());
    if field == "?" {
        return if matches!(spec.name, "day-of-month" | "day-of-week") {
            Ok(())
        } else {
            Err(ScheduleError::new(
                Some(spec.name),
                "`?` is only allowed in day-of-month and day-of-week",
                "use `*`",
            ))
        };
    }
    for item in field.split(',') {
        if item.is_empty() {
            return Err(err(format!("empty list entry in {field:?}")));
        }
        if spec.name == "day-of-month" && DOM_SPECIAL.is_match(item) {
            continue;
        }
        if spec.name == "day-of-week" && DOW_SPECIAL.is_match(item) {
            continue;
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= spec.max.max(1) => {}
                _ => {
                    return Err(err(format!(
                        "step {s:?} in {item:?} must be a number from 1 to {}",
                        spec.max
                    )));
                }
            }
        }
        if base == "*" || (base.is_empty() && step.is_some()) {
            continue;
        }
        let (lo, hi) = match base.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (base, None),
        };
        let lo_v = value(lo, spec).ok_or_else(|| err(format!("{lo:?} is not a valid value")))?;
        if let Some(hi) = hi {
            let hi_v =
                value(hi, spec).ok_or_else(|| err(format!("{hi:?} is not a valid value")))?;
            if hi_v < lo_v {
                return Err(err(format!("range {base:?} runs backwards")));
            }
        }
    }
    Ok(())
}

/// A value in a field: a number in range, or a name (`JAN`, `MON`).
fn value(s: &str, spec: &FieldSpec) -> Option<u32> {
    if let Some(pos) = spec.names.iter().position(|n| *n == s) {
        return Some(spec.min + pos as u32);
    }
    let v: u32 = s.parse().ok()?;
    (spec.min..=spec.max).contains(&v).then_some(v)
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
}
