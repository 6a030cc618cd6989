//! Time windows, the times of day a policy applies: clock times, zones and the window. Zones
//! are fixed offsets only, as the core carries no time zone database (see [`Timezone`]).

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// Why a time window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTimeWindow {
    #[error("time_window times must be HH:MM, from 00:00 to 23:59")]
    Time,
    #[error(
        "time_window timezone must be UTC or a fixed offset such as +02:00 or -05:30; named time zones such as Europe/Paris are not supported"
    )]
    UnsupportedTimezone,
    #[error("time_window after and before must differ")]
    Empty,
}

/// A time of day to the minute, `HH:MM` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "09:00")]
pub struct ClockTime(u16);

impl ClockTime {
    /// Parses exactly `HH:MM` (24-hour clock, two digits each).
    pub fn parse(text: &str) -> Result<Self, InvalidTimeWindow> {
        let (hours, minutes) = two_digit_pair(text).ok_or(InvalidTimeWindow::Time)?;
        if hours > 23 || minutes > 59 {
            return Err(InvalidTimeWindow::Time);
        }
        Ok(Self(hours * 60 + minutes))
    }

    /// Minutes since midnight, `0..1440`.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl TryFrom<String> for ClockTime {
    type Error = InvalidTimeWindow;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The time zone of a window: `UTC` (or `Etc/UTC`) or a fixed offset from it, `+02:00` or
/// `-05:30`, up to `±23:59`.
///
/// Named zones such as `Europe/Paris` are refused rather than guessed at: their offsets
/// change with daylight saving and with law, which needs a time zone database, and the core
/// carries none (it would weigh on the Worker's size). A window meant to follow daylight
/// saving has to be written with the offset in force and updated when it changes.
// No `ToSchema` derive, as for `Cidr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Timezone {
    /// As given, so a client reads back what it wrote.
    text: String,
    offset_minutes: i16,
}

impl Timezone {
    /// Parses `UTC`, `Etc/UTC`, `+HH:MM` or `-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, InvalidTimeWindow> {
        let offset_minutes = match text {
            "UTC" | "Etc/UTC" => 0,
            _ => {
                let (sign, rest) = match text.split_at_checked(1) {
                    Some(("+", rest)) => (1, rest),
                    Some(("-", rest)) => (-1, rest),
                    _ => return Err(InvalidTimeWindow::UnsupportedTimezone),
                };
                let (hours, minutes) =
                    two_digit_pair(rest).ok_or(InvalidTimeWindow::UnsupportedTimezone)?;
                if hours > 23 || minutes > 59 {
                    return Err(InvalidTimeWindow::UnsupportedTimezone);
                }
                // At most 23 * 60 + 59 = 1439: fits an i16.
                sign * i16::try_from(hours * 60 + minutes)
                    .map_err(|_| InvalidTimeWindow::UnsupportedTimezone)?
            }
        };
        Ok(Self {
            text: text.to_owned(),
            offset_minutes,
        })
    }

    /// The zone's text, as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Minutes east of UTC.
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }
}

impl TryFrom<String> for Timezone {
    type Error = InvalidTimeWindow;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for Timezone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// `HH:MM` as two numbers, digits only.
fn two_digit_pair(text: &str) -> Option<(u16, u16)> {
    let (hours, minutes) = text.split_once(':')?;
    let number = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    Some((number(hours)?, number(minutes)?))
}

/// The times of day a policy applies, in one zone: from `after` (included) to `before`
/// (excluded), to the minute. When `after` is later than `before` the window wraps midnight:
/// `22:00`-`06:00` is the night. `after == before` is refused, as it is ambiguous between
/// never and always.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "TimeWindowFields")]
pub struct TimeWindow {
    after: ClockTime,
    before: ClockTime,
    #[schema(value_type = String, example = "+02:00")]
    timezone: Timezone,
}

/// What a time window is read from, before `after != before` is checked.
#[derive(Deserialize)]
struct TimeWindowFields {
    after: ClockTime,
    before: ClockTime,
    timezone: Timezone,
}

impl TryFrom<TimeWindowFields> for TimeWindow {
    type Error = InvalidTimeWindow;

    fn try_from(fields: TimeWindowFields) -> Result<Self, Self::Error> {
        Self::new(fields.after, fields.before, fields.timezone)
    }
}

impl TimeWindow {
    /// A window from its parts.
    pub fn new(
        after: ClockTime,
        before: ClockTime,
        timezone: Timezone,
    ) -> Result<Self, InvalidTimeWindow> {
        if after == before {
            return Err(InvalidTimeWindow::Empty);
        }
        Ok(Self {
            after,
            before,
            timezone,
        })
    }

    /// Parses a window from its three wire strings.
    pub fn parse(after: &str, before: &str, timezone: &str) -> Result<Self, InvalidTimeWindow> {
        Self::new(
            ClockTime::parse(after)?,
            ClockTime::parse(before)?,
            Timezone::parse(timezone)?,
        )
    }

    /// Start of the window (included).
    pub fn after(&self) -> ClockTime {
        self.after
    }

    /// End of the window (excluded).
    pub fn before(&self) -> ClockTime {
        self.before
    }

    /// The zone the times are in.
    pub fn timezone(&self) -> &Timezone {
        &self.timezone
    }

    /// Whether the instant `now_unix` (seconds since the epoch) falls in the window.
    pub fn contains(&self, now_unix: i64) -> bool {
        let offset_seconds = i64::from(self.timezone.offset_minutes) * 60;
        let seconds_of_day = now_unix.saturating_add(offset_seconds).rem_euclid(86_400);
        let minute = seconds_of_day / 60;
        let (after, before) = (i64::from(self.after.0), i64::from(self.before.0));
        if after < before {
            after <= minute && minute < before
        } else {
            minute >= after || minute < before
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::fixtures::{at, window};

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let office = window("09:00", "17:00", "UTC");
        assert!(!office.contains(at(8, 59) + 59));
        assert!(office.contains(at(9, 0)));
        assert!(office.contains(at(16, 59) + 59));
        assert!(!office.contains(at(17, 0)));
        assert!(!office.contains(at(23, 0)));
    }

    #[test]
    fn a_window_whose_start_is_after_its_end_wraps_midnight() {
        let night = window("22:00", "06:00", "UTC");
        assert!(night.contains(at(22, 0)));
        assert!(night.contains(at(23, 59)));
        assert!(night.contains(at(0, 0)));
        assert!(night.contains(at(5, 59)));
        assert!(!night.contains(at(6, 0)));
        assert!(!night.contains(at(12, 0)));
        assert!(!night.contains(at(21, 59)));
    }

    #[test]
    fn a_window_is_read_in_its_own_fixed_offset() {
        // 09:00-17:00 at +02:00 is 07:00-15:00 UTC.
        let paris_summer = window("09:00", "17:00", "+02:00");
        assert!(!paris_summer.contains(at(6, 59)));
        assert!(paris_summer.contains(at(7, 0)));
        assert!(paris_summer.contains(at(14, 59)));
        assert!(!paris_summer.contains(at(15, 0)));
        // 09:00-17:00 at -05:30 is 14:30-22:30 UTC.
        let west = window("09:00", "17:00", "-05:30");
        assert!(!west.contains(at(14, 29)));
        assert!(west.contains(at(14, 30)));
        assert!(west.contains(at(22, 29)));
        assert!(!west.contains(at(22, 30)));
        // The offset can move the window across UTC midnight: 01:00-03:00 at +05:00 is
        // 20:00-22:00 UTC the day before.
        let east = window("01:00", "03:00", "+05:00");
        assert!(east.contains(at(20, 0)));
        assert!(!east.contains(at(1, 0)));
    }

    #[test]
    fn etc_utc_is_utc_and_instants_before_1970_still_work() {
        let office = window("09:00", "17:00", "Etc/UTC");
        assert_eq!(office.timezone().offset_minutes(), 0);
        assert!(office.contains(-86_400 + 10 * 3600));
        assert!(!office.contains(-86_400 + 20 * 3600));
        // The extremes neither overflow nor panic, whatever the offset.
        for zone in ["UTC", "+23:59", "-23:59"] {
            let wide = window("00:00", "23:59", zone);
            let _ = (wide.contains(i64::MIN), wide.contains(i64::MAX));
        }
    }

    #[test]
    fn named_time_zones_other_than_utc_are_refused_with_a_clear_error() {
        for zone in [
            "Europe/Paris",
            "America/New_York",
            "CET",
            "GMT",
            "utc",
            "Z",
            "+2",
            "+02",
            "+0200",
            "+24:00",
            "+02:60",
            " +02:00",
        ] {
            assert_eq!(
                Timezone::parse(zone),
                Err(InvalidTimeWindow::UnsupportedTimezone),
                "{zone:?}"
            );
        }
        let message = InvalidTimeWindow::UnsupportedTimezone.to_string();
        assert!(message.contains("UTC") && message.contains("+02:00"));
        assert!(message.contains("not supported"));
    }

    #[test]
    fn clock_times_are_exactly_hh_mm() {
        assert_eq!(ClockTime::parse("00:00").unwrap().minutes(), 0);
        assert_eq!(ClockTime::parse("23:59").unwrap().minutes(), 1439);
        for bad in [
            "24:00", "12:60", "9:00", "09:0", "0900", "09:00:00", "+9:00", "aa:bb", "",
        ] {
            assert_eq!(
                ClockTime::parse(bad),
                Err(InvalidTimeWindow::Time),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_window_that_starts_where_it_ends_is_refused() {
        assert_eq!(
            TimeWindow::parse("09:00", "09:00", "UTC"),
            Err(InvalidTimeWindow::Empty)
        );
    }

    #[test]
    fn a_window_reads_and_writes_its_three_strings() {
        let json = r#"{"after":"22:00","before":"06:30","timezone":"-05:30"}"#;
        let parsed: TimeWindow = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, window("22:00", "06:30", "-05:30"));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        assert!(
            serde_json::from_str::<TimeWindow>(
                r#"{"after":"09:00","before":"09:00","timezone":"UTC"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<TimeWindow>(
                r#"{"after":"09:00","before":"10:00","timezone":"Europe/Berlin"}"#
            )
            .is_err()
        );
    }

    // Property tests of what a policy is read from, over any text a tenant can send.
    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // Times and zones: what parses prints back as given, within a day.
        #[test]
        fn an_accepted_time_or_zone_prints_back_as_given(
            text in prop_oneof![
                crate::any_text(),
                "[+-]?[0-9+]{1,3}:[0-9+-]{1,3}",
                Just("UTC".to_owned()),
                Just("Etc/UTC".to_owned()),
            ],
        ) {
            if let Ok(time) = ClockTime::parse(&text) {
                prop_assert!(time.minutes() < 1440);
                prop_assert_eq!(time.to_string(), text.clone());
            }
            if let Ok(zone) = Timezone::parse(&text) {
                prop_assert_eq!(zone.as_str(), text.as_str());
                prop_assert!((-1439..=1439).contains(&zone.offset_minutes()));
                if let Some(clock) = text.strip_prefix(['+', '-']) {
                    let minutes = ClockTime::parse(clock).map(ClockTime::minutes);
                    let minutes = i16::try_from(minutes.unwrap_or(u16::MAX)).unwrap_or(i16::MAX);
                    let sign = if text.starts_with('-') { -1 } else { 1 };
                    prop_assert_eq!(zone.offset_minutes(), sign * minutes);
                }
            }
        }

        // Any window at any instant: no overflow at the ends of time, and a window and the
        // rest of the day split every minute between them.
        #[test]
        fn a_window_and_its_complement_split_every_instant(
            after in 0u16..1440,
            before in 0u16..1440,
            offset in -1439i16..=1439,
            now in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
        ) {
            let clock = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
            let sign = if offset < 0 { '-' } else { '+' };
            let zone = format!("{sign}{}", clock(offset.unsigned_abs()));
            let window = TimeWindow::parse(&clock(after), &clock(before), &zone);
            prop_assert_eq!(window.is_err(), after == before);
            let rest = TimeWindow::parse(&clock(before), &clock(after), &zone);
            if let (Ok(window), Ok(rest)) = (window, rest) {
                prop_assert_ne!(window.contains(now), rest.contains(now));
                // A week later, the same answer (away from the ends of time, which saturate).
                let shift = i64::from(offset) * 60;
                let week_later = now
                    .checked_add(7 * 86_400)
                    .filter(|later| later.checked_add(shift).is_some())
                    .filter(|_| now.checked_add(shift).is_some());
                if let Some(later) = week_later {
                    prop_assert_eq!(window.contains(later), window.contains(now));
                }
            }
        }
    }
}
