//! Tenant settings: the sending window. No message is sent outside it; a send that falls
//! due outside it moves to the next opening.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::FieldError;

pub const HOLIDAYS_MAX: usize = 366;
/// How far ahead the next opening is looked for: every day of the week can be closed by
/// at most `HOLIDAYS_MAX` holidays, so an allowed day always comes within this bound.
const SEARCH_DAYS: u32 = HOLIDAYS_MAX as u32 + 8;

/// Settings as the API reads and writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub timezone: String,
    pub window_start: String,
    pub window_end: String,
    pub days: Vec<String>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// A checked sending window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingWindow {
    pub timezone: Tz,
    pub start: NaiveTime,
    /// `None`: the window runs to the midnight that ends the day (`24:00`), so a window
    /// from `00:00` on every day is always open.
    pub end: Option<NaiveTime>,
    /// Days of the week on which sends happen, Monday first.
    pub days: [bool; 7],
    pub holidays: BTreeSet<NaiveDate>,
}

const DAY_CODES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Default for SendingWindow {
    /// Europe/Paris, 09:00–19:00, Monday to Saturday, no holidays.
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Europe::Paris,
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(19, 0, 0),
            days: [true, true, true, true, true, true, false],
            holidays: BTreeSet::new(),
        }
    }
}

fn parse_hhmm(field: &str, value: &str) -> Result<NaiveTime, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            "invalid_time",
            format!("{field} must be a local time HH:MM"),
        )
    };
    if value.len() != 5 || value.as_bytes()[2] != b':' {
        return Err(bad());
    }
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| bad())
}

/// `window_end` also takes `24:00`, the end of the day.
fn parse_end(value: &str) -> Result<Option<NaiveTime>, FieldError> {
    if value == END_OF_DAY {
        return Ok(None);
    }
    parse_hhmm("window_end", value).map(Some).map_err(|_| {
        FieldError::new(
            "window_end",
            "invalid_time",
            "window_end must be a local time HH:MM, or 24:00 for the end of the day",
        )
    })
}

const END_OF_DAY: &str = "24:00";

impl SettingsInput {
    pub fn validate(self) -> Result<SendingWindow, FieldError> {
        let timezone = Tz::from_str(&self.timezone).map_err(|_| {
            FieldError::new(
                "timezone",
                "invalid_timezone",
                "timezone must be an IANA time zone name such as Europe/Paris",
            )
        })?;
        let start = parse_hhmm("window_start", &self.window_start)?;
        let end = parse_end(&self.window_end)?;
        if end.is_some_and(|end| end <= start) {
            return Err(FieldError::new(
                "window_end",
                "invalid_window",
                "window_end must be later than window_start on the same day",
            ));
        }
        if self.days.is_empty() {
            return Err(FieldError::new(
                "days",
                "empty",
                "days must name at least one day",
            ));
        }
        let mut days = [false; 7];
        for (i, day) in self.days.iter().enumerate() {
            let index = DAY_CODES
                .iter()
                .position(|code| code == day)
                .ok_or_else(|| {
                    FieldError::new(
                        format!("days[{i}]"),
                        "invalid_day",
                        "days are mon, tue, wed, thu, fri, sat or sun",
                    )
                })?;
            days[index] = true;
        }
        if self.holidays.len() > HOLIDAYS_MAX {
            return Err(FieldError::new(
                "holidays",
                "too_long",
                format!("holidays holds at most {HOLIDAYS_MAX} dates"),
            ));
        }
        let mut holidays = BTreeSet::new();
        for (i, date) in self.holidays.iter().enumerate() {
            let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .ok()
                .filter(|_| date.len() == 10)
                .ok_or_else(|| {
                    FieldError::new(
                        format!("holidays[{i}]"),
                        "invalid_date",
                        "holidays are dates YYYY-MM-DD",
                    )
                })?;
            holidays.insert(parsed);
        }
        Ok(SendingWindow {
            timezone,
            start,
            end,
            days,
            holidays,
        })
    }
}

impl From<&SendingWindow> for SettingsInput {
    fn from(window: &SendingWindow) -> Self {
        SettingsInput {
            timezone: window.timezone.name().to_owned(),
            window_start: window.start.format("%H:%M").to_string(),
            window_end: window.end.map_or_else(
                || END_OF_DAY.to_owned(),
                |end| end.format("%H:%M").to_string(),
            ),
            days: DAY_CODES
                .iter()
                .zip(window.days)
                .filter(|(_, on)| *on)
                .map(|(code, _)| (*code).to_owned())
                .collect(),
            holidays: window
                .holidays
                .iter()
                .map(|d| d.format("%Y-%m-%d").to_string())
                .collect(),
        }
    }
}

/// The instant of a local wall-clock time. A time that a daylight-saving change skips
/// resolves to the first instant after the gap; a repeated one to its first occurrence.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut candidate = local;
    // Gaps last at most a few hours; step forward minute by minute to the first valid time.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => candidate += chrono::Duration::minutes(1),
        }
    }
    // Unreachable for real zones; fall back to reading the time as UTC.
    Utc.from_utc_datetime(&local)
}

/// `instant` moved by `days` calendar days in `tz`, keeping the local time of day.
pub fn add_local_days(tz: Tz, instant: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let local = instant.with_timezone(&tz).naive_local();
    local_instant(tz, local + Days::new(u64::from(days)))
}

impl SendingWindow {
    fn open_on(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&date)
    }

    /// The first instant at or after `instant` inside the window.
    pub fn next_opening(&self, instant: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = instant.with_timezone(&self.timezone).date_naive();
        for _ in 0..SEARCH_DAYS {
            if self.open_on(date) {
                let open = local_instant(self.timezone, date.and_time(self.start));
                let close = match self.end {
                    Some(end) => local_instant(self.timezone, date.and_time(end)),
                    None => local_instant(
                        self.timezone,
                        (date + Days::new(1)).and_time(NaiveTime::MIN),
                    ),
                };
                // A window that a DST gap swallows whole is closed that day.
                if open < close {
                    if instant < open {
                        return open;
                    }
                    if instant < close {
                        return instant;
                    }
                }
            }
            date = date.succ_opt().unwrap_or(date);
        }
        // Validation makes this unreachable (at least one day open, bounded holidays).
        instant
    }

    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.next_opening(instant) == instant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> SendingWindow {
        SendingWindow::default()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn inside_the_window_stays_put() {
        // Tuesday 2026-12-08 10:30 in Paris is 09:30Z.
        let t = utc("2026-12-08T09:30:00Z");
        assert_eq!(window().next_opening(t), t);
    }

    #[test]
    fn before_opening_moves_to_opening_the_same_day() {
        assert_eq!(
            window().next_opening(utc("2026-12-08T05:00:00Z")),
            utc("2026-12-08T08:00:00Z")
        );
    }

    #[test]
    fn after_closing_and_on_sunday_move_to_the_next_open_day() {
        // Saturday 19:30 Paris → Monday 09:00 Paris.
        assert_eq!(
            window().next_opening(utc("2026-12-12T18:30:00Z")),
            utc("2026-12-14T08:00:00Z")
        );
        // Closing time itself is outside: the window is [start, end).
        assert_eq!(
            window().next_opening(utc("2026-12-08T18:00:00Z")),
            utc("2026-12-09T08:00:00Z")
        );
    }

    #[test]
    fn holidays_are_skipped() {
        let mut w = window();
        w.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap());
        // Friday 25 December is closed, Saturday 26 opens.
        assert_eq!(
            w.next_opening(utc("2026-12-25T10:00:00Z")),
            utc("2026-12-26T08:00:00Z")
        );
    }

    #[test]
    fn a_window_to_24_00_is_open_until_midnight() {
        let all_day = SettingsInput {
            timezone: "Europe/Paris".into(),
            window_start: "00:00".into(),
            window_end: "24:00".into(),
            days: DAY_CODES.iter().map(|d| (*d).to_owned()).collect(),
            holidays: vec![],
        }
        .validate()
        .unwrap();
        assert_eq!(SettingsInput::from(&all_day).window_end, "24:00");
        // 23:59:30 in Paris, the last minute of the day, is inside; so is midnight.
        for t in ["2026-12-08T22:59:30Z", "2026-12-08T23:00:00Z"] {
            assert!(all_day.contains(utc(t)), "{t}");
        }
        // Evenings only, Monday: Monday 23:30 stays, Tuesday 00:30 waits for Tuesday 18:00.
        let evenings = SendingWindow {
            start: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            end: None,
            ..all_day
        };
        assert!(evenings.contains(utc("2026-12-07T22:30:00Z")));
        assert_eq!(
            evenings.next_opening(utc("2026-12-07T23:30:00Z")),
            utc("2026-12-08T17:00:00Z")
        );
    }

    #[test]
    fn opening_follows_daylight_saving_time() {
        // Paris is UTC+1 in winter and UTC+2 from 2027-03-28: 09:00 local is 07:00Z.
        assert_eq!(
            window().next_opening(utc("2027-03-29T03:00:00Z")),
            utc("2027-03-29T07:00:00Z")
        );
    }

    #[test]
    fn adding_days_keeps_the_local_time_across_dst() {
        let tz = chrono_tz::Europe::Paris;
        // Saturday 27 March 2027 10:00 CET → Sunday 28 March 10:00 CEST.
        assert_eq!(
            add_local_days(tz, utc("2027-03-27T09:00:00Z"), 1),
            utc("2027-03-28T08:00:00Z")
        );
    }

    #[test]
    fn skipped_local_times_resolve_after_the_gap() {
        let tz = chrono_tz::Europe::Paris;
        let gap = NaiveDate::from_ymd_opt(2027, 3, 28)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_instant(tz, gap), utc("2027-03-28T01:00:00Z")); // 03:00 CEST
        let repeated = NaiveDate::from_ymd_opt(2026, 10, 25)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_instant(tz, repeated), utc("2026-10-25T00:30:00Z")); // first 02:30, CEST
    }

    #[test]
    fn validation_names_fields() {
        let ok = SettingsInput::from(&window());
        assert_eq!(ok.clone().validate().unwrap(), window());
        let bad = |f: fn(&mut SettingsInput)| {
            let mut s = ok.clone();
            f(&mut s);
            s.validate().unwrap_err().field
        };
        assert_eq!(bad(|s| s.timezone = "Mars/Olympus".into()), "timezone");
        assert_eq!(bad(|s| s.window_start = "9:00".into()), "window_start");
        assert_eq!(bad(|s| s.window_end = "24:01".into()), "window_end");
        assert_eq!(bad(|s| s.window_end = "00:00".into()), "window_end");
        assert_eq!(bad(|s| s.window_end = "08:00".into()), "window_end");
        assert_eq!(bad(|s| s.days = vec![]), "days");
        assert_eq!(
            bad(|s| s.days = vec!["mon".into(), "lundi".into()]),
            "days[1]"
        );
        assert_eq!(
            bad(|s| s.holidays = vec!["2026-02-30".into()]),
            "holidays[0]"
        );
    }
}
