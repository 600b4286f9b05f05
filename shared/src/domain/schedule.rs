//! Schedule arithmetic. Reminder k is due `k × frequency_days` calendar days after
//! attachment (local time of day kept across DST), the end-of-cycle step one period later,
//! each moved into the sending window. A step is never due sooner than `frequency_days`
//! after the previous send, so a late run or an outage never bunches reminders.

use chrono::{DateTime, Duration, Utc};

use super::settings::{SendingWindow, add_local_days};

/// When step `step` (1-based; `max_sends + 1` is the end of the cycle) falls due.
/// `previous_send` is when the step before it was sent, if it was.
pub fn due_date(
    window: &SendingWindow,
    attached_at: DateTime<Utc>,
    frequency_days: u32,
    step: u32,
    previous_send: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let nominal = add_local_days(
        window.timezone,
        attached_at,
        step.saturating_mul(frequency_days),
    );
    let not_bunched = previous_send
        .map(|sent| add_local_days(window.timezone, sent, frequency_days))
        .map_or(nominal, |earliest| earliest.max(nominal));
    window.next_opening(not_bunched)
}

/// The due dates of a whole cycle when every step is sent as soon as it is due:
/// `max_sends` reminders, then the end-of-cycle step.
pub fn plan(
    window: &SendingWindow,
    attached_at: DateTime<Utc>,
    frequency_days: u32,
    max_sends: u32,
) -> Vec<DateTime<Utc>> {
    let mut dates: Vec<DateTime<Utc>> = Vec::with_capacity(max_sends as usize + 1);
    for step in 1..=max_sends + 1 {
        let previous = dates.last().copied();
        dates.push(due_date(
            window,
            attached_at,
            frequency_days,
            step,
            previous,
        ));
    }
    dates
}

/// Delay before retrying a step after its `attempt`-th transient failure: 5 minutes,
/// doubling each time, at most 4 hours.
pub fn retry_delay(attempt: u32) -> Duration {
    let minutes = 5_i64.saturating_mul(1_i64 << attempt.saturating_sub(1).min(10));
    Duration::minutes(minutes.min(240))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reminders_follow_the_frequency_inside_the_window() {
        // Attached Monday 2026-12-07 10:00 Paris, every 2 days, 3 reminders.
        let dates = plan(&SendingWindow::default(), utc("2026-12-07T09:00:00Z"), 2, 3);
        assert_eq!(
            dates,
            [
                utc("2026-12-09T09:00:00Z"), // Wed 10:00
                utc("2026-12-11T09:00:00Z"), // Fri 10:00
                utc("2026-12-14T08:00:00Z"), // Sun → Mon 09:00
                utc("2026-12-16T08:00:00Z"), // end: not before Mon + 2 days
            ]
        );
    }

    #[test]
    fn late_send_pushes_the_next_step() {
        let window = SendingWindow::default();
        let attached = utc("2026-12-07T09:00:00Z");
        // Reminder 1 was due Wed 10:00 but went out Thu 15:00 after an outage.
        let next = due_date(&window, attached, 2, 2, Some(utc("2026-12-10T14:00:00Z")));
        assert_eq!(next, utc("2026-12-12T14:00:00Z")); // Sat 15:00, two days after the send
    }

    #[test]
    fn dst_change_keeps_the_local_time() {
        // Attached Friday 2027-03-26 10:00 CET, daily. Clocks go forward on Sunday 28.
        let dates = plan(&SendingWindow::default(), utc("2027-03-26T09:00:00Z"), 1, 2);
        assert_eq!(
            dates,
            [
                utc("2027-03-27T09:00:00Z"), // Saturday 10:00 CET
                utc("2027-03-29T07:00:00Z"), // Sunday is closed: Monday 09:00 CEST
                utc("2027-03-30T07:00:00Z"), // a day after Monday's send: Tuesday 09:00 CEST
            ]
        );
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::minutes(5));
        assert_eq!(retry_delay(2), Duration::minutes(10));
        assert_eq!(retry_delay(4), Duration::minutes(40));
        assert_eq!(retry_delay(30), Duration::minutes(240));
    }

    fn arb_window() -> impl Strategy<Value = SendingWindow> {
        let zones = prop::sample::select(vec![
            chrono_tz::Europe::Paris,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe, // 30-minute DST shift
            chrono_tz::Asia::Kolkata,
            chrono_tz::Pacific::Chatham,
            chrono_tz::America::Santiago, // DST starts at midnight: some days have no 00:00
            chrono_tz::UTC,
        ]);
        (
            zones,
            0u32..23 * 60,
            1u32..=12 * 60,
            prop::array::uniform7(any::<bool>()),
            prop::collection::vec(0u32..800, 0..40),
        )
            .prop_filter("at least one day open", |(_, _, _, days, _)| {
                days.iter().any(|d| *d)
            })
            .prop_map(|(timezone, start_min, length, days, holiday_offsets)| {
                let start_min = start_min.min(24 * 60 - 2);
                let end_min = (start_min + length).min(24 * 60);
                let hm = |m: u32| chrono::NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap();
                let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
                SendingWindow {
                    timezone,
                    start: hm(start_min),
                    // Windows that reach midnight end at `24:00`.
                    end: (end_min < 24 * 60).then(|| hm(end_min.max(start_min + 1))),
                    days,
                    holidays: holiday_offsets
                        .into_iter()
                        .map(|d| base + chrono::Days::new(u64::from(d)))
                        .collect::<BTreeSet<_>>(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn cycles_respect_the_window_increase_and_skip_nothing(
            window in arb_window(),
            attached_secs in 1_767_225_600i64..1_830_297_600, // 2026..2028
            frequency in 1u32..=30,
            max_sends in 1u32..=12,
        ) {
            let attached = Utc.timestamp_opt(attached_secs, 0).unwrap();
            let dates = plan(&window, attached, frequency, max_sends);
            // None skipped: every reminder and the end step has a date.
            prop_assert_eq!(dates.len() as u32, max_sends + 1);
            for (i, date) in dates.iter().enumerate() {
                // Never outside the window.
                prop_assert!(window.contains(*date), "step {} at {} is outside the window", i + 1, date);
                // Never before its nominal date.
                let nominal = add_local_days(window.timezone, attached, (i as u32 + 1) * frequency);
                prop_assert!(*date >= nominal);
            }
            // Strictly increasing, at least a period apart (no bunching).
            for pair in dates.windows(2) {
                prop_assert!(pair[1] > pair[0]);
                prop_assert!(pair[1] >= add_local_days(window.timezone, pair[0], frequency));
            }
        }

        #[test]
        fn next_opening_is_the_first_instant_inside(window in arb_window(), secs in 1_767_225_600i64..1_830_297_600) {
            let t = Utc.timestamp_opt(secs, 0).unwrap();
            let open = window.next_opening(t);
            prop_assert!(open >= t);
            prop_assert!(window.contains(open));
            // Nothing between t and the opening is inside the window (sampled each 15 min).
            let mut probe = t;
            while probe + Duration::minutes(15) < open {
                prop_assert!(!window.contains(probe));
                probe += Duration::minutes(15);
            }
        }
    }
}
