//! `cron` (Dapr's `bindings.cron`): an input binding that fires on a
//! schedule. `schedule` takes what Dapr's takes: `@every 15s` (Go
//! durations), `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`,
//! `@yearly` (`@annually`), and cron expressions of five fields (minute
//! hour day-of-month month day-of-week) or six (seconds first), with `*`,
//! `?`, lists, ranges, steps and month/day names; day-of-week 0 is Sunday.
//! Times are UTC. Each firing is an event with no data and the metadata
//! `timeZone` and `readTimeUTC`, as Dapr sends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Metadata, Result, settings};
use serde::Deserialize;

use crate::input::{BindingEvent, BindingHandler, InputBinding};

#[derive(Deserialize)]
struct CronSettings {
    #[serde(default)]
    schedule: Option<String>,
}

pub struct CronBinding {
    name: String,
    schedule: Schedule,
}

impl CronBinding {
    pub const TYPE: &'static str = "cron";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn InputBinding>> {
        let s: CronSettings = ctx.settings()?;
        let describe = ctx.describe();
        let raw = s
            .schedule
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::config(format!("{describe}: metadata 'schedule' is required")))?;
        let schedule = Schedule::parse(&raw)
            .map_err(|why| Error::config(format!("{describe}: metadata 'schedule': {why}")))?;
        Ok(Arc::new(Self { name: ctx.name, schedule }))
    }
}

#[async_trait]
impl InputBinding for CronBinding {
    async fn read(&self, handler: Arc<dyn BindingHandler>) -> Result<()> {
        let mut last = now_unix();
        loop {
            let Some(next) = self.schedule.next_after(last) else {
                return Err(Error::invalid_argument(format!(
                    "cron binding '{}': the schedule never fires again",
                    self.name
                )));
            };
            let wait = next.saturating_sub(now_unix());
            tokio::time::sleep(wait).await;
            last = next;
            let fired = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let metadata = Metadata::from([
                ("timeZone".to_owned(), "UTC".to_owned()),
                ("readTimeUTC".to_owned(), rfc3339(fired)),
            ]);
            if let Err(e) = handler.on_event(BindingEvent { data: Vec::new(), metadata }).await {
                tracing::warn!(binding = %self.name, error = %e, "the app did not take the cron event");
            }
            // An app slower than the schedule skips firings rather than catching up in a burst.
            if now_unix() > last + Duration::from_secs(1) {
                last = now_unix();
            }
        }
    }
}

fn now_unix() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
enum Schedule {
    Every(Duration),
    Cron(Box<Fields>),
}

#[derive(Debug, Clone, PartialEq)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month or day-of-week was `*`: then both must match, else either.
    any_day_star: bool,
}

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if let Some(every) = text.strip_prefix("@every ") {
            let every = settings::parse_duration(every.trim())?;
            if every < Duration::from_millis(1) {
                return Err("'@every' needs a duration of at least 1ms".into());
            }
            return Ok(Self::Every(every));
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            other if other.starts_with('@') => return Err(format!("unknown descriptor '{other}'")),
            other => other,
        };
        let mut fields: Vec<&str> = expanded.split_whitespace().collect();
        match fields.len() {
            5 => fields.insert(0, "0"),
            6 => {}
            n => return Err(format!("a cron expression has 5 or 6 fields, '{text}' has {n}")),
        }
        let day_field = fields[3];
        let weekday_field = fields[5];
        Ok(Self::Cron(Box::new(Fields {
            seconds: field(fields[0], 0, 59, &[], "seconds")?,
            minutes: field(fields[1], 0, 59, &[], "minutes")?,
            hours: field(fields[2], 0, 23, &[], "hours")?,
            days: field(day_field, 1, 31, &[], "day of month")?,
            months: field(fields[4], 1, 12, &MONTHS, "month")?,
            weekdays: field(weekday_field, 0, 6, &WEEKDAYS, "day of week")?,
            any_day_star: day_field.starts_with('*')
                || day_field == "?"
                || weekday_field.starts_with('*')
                || weekday_field == "?",
        })))
    }

    /// The first firing strictly after `after` (time since the epoch).
    fn next_after(&self, after: Duration) -> Option<Duration> {
        match self {
            Self::Every(every) => Some(after + *every),
            Self::Cron(fields) => fields.next_after(after.as_secs()).map(Duration::from_secs),
        }
    }
}

/// One cron field as a bit set of the values it allows.
fn field(text: &str, min: u64, max: u64, names: &[&str], what: &str) -> std::result::Result<u64, String> {
    let value = |s: &str| -> std::result::Result<u64, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u64 + min);
        }
        s.parse::<u64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("{what} field '{text}': '{s}' is not a value from {min} to {max}"))
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step = step.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{what} field '{text}': the step '{step}' is not a positive number")
                })?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` means from 5 to the end, every 15.
                None if step > 1 => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(format!("{what} field '{text}': the range {low}-{high} is backwards"));
        }
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

const DAY: u64 = 86_400;

impl Fields {
    fn day_matches(&self, day: u64, weekday: u64) -> bool {
        let (d, w) = (self.days & (1 << day) != 0, self.weekdays & (1 << weekday) != 0);
        if self.any_day_star { d && w } else { d || w }
    }

    /// Walks forward a field at a time (as robfig/cron, which Dapr uses),
    /// giving up after five years: a schedule like Feb 30 never fires.
    fn next_after(&self, after: u64) -> Option<u64> {
        let mut t = after + 1;
        let limit = after + 5 * 366 * DAY;
        while t < limit {
            let days = t / DAY;
            let (year, month, day) = civil_from_days(days);
            if self.months & (1 << month) == 0 {
                let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                t = days_from_civil(y, m, 1) * DAY;
                continue;
            }
            let weekday = (days + 4) % 7;
            if !self.day_matches(day, weekday) {
                t = (days + 1) * DAY;
                continue;
            }
            let in_day = t % DAY;
            let (hour, minute, second) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
            if self.hours & (1 << hour) == 0 {
                t = days * DAY + (hour + 1) * 3600;
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                t = days * DAY + hour * 3600 + (minute + 1) * 60;
                continue;
            }
            if self.seconds & (1 << second) == 0 {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / DAY);
    let in_day = secs % DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: u64, month: u64, day: u64, h: u64, m: u64, s: u64) -> u64 {
        days_from_civil(year, month, day) * DAY + h * 3600 + m * 60 + s
    }

    fn next(schedule: &str, after: u64) -> u64 {
        Schedule::parse(schedule).unwrap().next_after(Duration::from_secs(after)).unwrap().as_secs()
    }

    #[test]
    fn calendar_round_trips() {
        for days in [0, 59, 60, 365, 10_957, 19_358, 20_454, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(rfc3339(Duration::from_secs(at(2024, 2, 29, 23, 59, 58))), "2024-02-29T23:59:58.000000Z");
    }

    #[test]
    fn schedules_fire_when_robfig_cron_would() {
        let start = at(2026, 12, 2, 15, 41, 7); // a Wednesday
        assert_eq!(next("@every 15s", start), start + 15);
        assert_eq!(next("*/10 * * * * *", start), at(2026, 12, 2, 15, 41, 10));
        assert_eq!(next("0 30 * * * *", start), at(2026, 12, 2, 16, 30, 0));
        assert_eq!(next("15 9 * * *", start), at(2026, 12, 3, 9, 15, 0));
        assert_eq!(next("@hourly", start), at(2026, 12, 2, 16, 0, 0));
        assert_eq!(next("@daily", start), at(2026, 12, 3, 0, 0, 0));
        assert_eq!(next("@weekly", start), at(2026, 12, 6, 0, 0, 0));
        assert_eq!(next("@monthly", start), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(next("@yearly", start), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(next("0 0 12 * * MON-FRI", at(2026, 12, 4, 13, 0, 0)), at(2026, 12, 7, 12, 0, 0));
        assert_eq!(next("0 0 0 29 FEB ?", start), at(2028, 2, 29, 0, 0, 0));
        // Day of month and day of week both restricted: either one fires.
        assert_eq!(next("0 0 0 15 * SUN", start), at(2026, 12, 6, 0, 0, 0));
        assert_eq!(next("5/20 * * * * *", start), at(2026, 12, 2, 15, 41, 25));
        assert_eq!(next("0 0 8,17 * * *", start), at(2026, 12, 2, 17, 0, 0));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (bad, says) in [
            ("* * * *", "5 or 6 fields"),
            ("61 * * * * *", "seconds field"),
            ("* * * * * MOO", "day of week field"),
            ("*/0 * * * * *", "step"),
            ("@every soon", "duration"),
            ("@fortnightly", "unknown descriptor"),
            ("0 0 0 10-5 * *", "backwards"),
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(Schedule::parse("0 0 0 30 2 *").unwrap().next_after(Duration::from_secs(0)), None);
    }
}
