//! Epochs (calendar months in UTC) and the acceptance window.
//!
//! Nothing here reads a clock: "now" is always a parameter, so the window can
//! be tested at any instant and demonstrated with `MEDCRYPT_NOW`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, TimeZone, Utc};

/// How long the previous month's key is still accepted after a month begins.
pub const GRACE_PERIOD: TimeDelta = TimeDelta::days(7);

/// How early a message of the next month is accepted, for a sender whose
/// clock runs ahead of ours.
pub const CLOCK_SKEW_ALLOWANCE: TimeDelta = TimeDelta::minutes(10);

/// Earliest and latest years an epoch may name (four digits in `YYYY-MM`).
const MIN_YEAR: u16 = 2000;
const MAX_YEAR: u16 = 9999;

/// One calendar month in UTC: the period during which one epoch key is used
/// to encrypt. Displayed and parsed as `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch {
    year: u16,
    month: u8,
}

/// An epoch that cannot exist (month outside 1–12, year outside 2000–9999).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid epoch {0:?}: expected a month YYYY-MM between 2000-01 and 9999-12")]
pub struct InvalidEpoch(pub String);

impl Epoch {
    /// The epoch with the given year and month (1–12).
    ///
    /// # Errors
    /// [`InvalidEpoch`] when the month is not 1–12 or the year not 2000–9999.
    pub fn new(year: u16, month: u8) -> Result<Self, InvalidEpoch> {
        if !(1..=12).contains(&month) || !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(InvalidEpoch(format!("{year:04}-{month:02}")));
        }
        Ok(Self { year, month })
    }

    /// The epoch that contains the instant `at` (taken in UTC).
    ///
    /// Instants before 2000 map to 2000-01 and after 9999 to 9999-12; no real
    /// clock is there, and the clamping keeps this function total.
    pub fn containing(at: DateTime<Utc>) -> Self {
        let year = at.year().clamp(i32::from(MIN_YEAR), i32::from(MAX_YEAR));
        let month = if at.year() != year {
            if at.year() < year { 1 } else { 12 }
        } else {
            u8::try_from(at.month()).unwrap_or(1)
        };
        // Both are in range by construction.
        Self {
            year: u16::try_from(year).unwrap_or(MIN_YEAR),
            month,
        }
    }

    /// The calendar year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month of the year, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The first instant of this epoch: the 1st of the month, 00:00:00 UTC.
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(i32::from(self.year), u32::from(self.month), 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The following month, or `None` after 9999-12.
    pub fn next(self) -> Option<Self> {
        if self.month == 12 {
            Self::new(self.year.checked_add(1)?, 1).ok()
        } else {
            Some(Self {
                year: self.year,
                month: self.month + 1,
            })
        }
    }

    /// The preceding month, or `None` before 2000-01.
    pub fn prev(self) -> Option<Self> {
        if self.month == 1 {
            Self::new(self.year.checked_sub(1)?, 12).ok()
        } else {
            Some(Self {
                year: self.year,
                month: self.month - 1,
            })
        }
    }

    /// Number of months from `self` to `later` (negative if `later` is earlier).
    pub fn months_until(self, later: Self) -> i32 {
        (i32::from(later.year) - i32::from(self.year)) * 12 + i32::from(later.month)
            - i32::from(self.month)
    }

    /// The instant at which this epoch's key stops being accepted and is
    /// destroyed: 7 × 24 h after the start of the following month.
    pub fn destruction_time(self) -> DateTime<Utc> {
        match self.next() {
            Some(next) => next.start() + GRACE_PERIOD,
            None => DateTime::<Utc>::MAX_UTC,
        }
    }

    /// The three-byte wire encoding: year (u16, big-endian), month (u8).
    pub fn to_bytes(self) -> [u8; 3] {
        let [y0, y1] = self.year.to_be_bytes();
        [y0, y1, self.month]
    }

    /// Decodes [`Epoch::to_bytes`].
    ///
    /// # Errors
    /// [`InvalidEpoch`] when the bytes name no valid month.
    pub fn from_bytes(bytes: [u8; 3]) -> Result<Self, InvalidEpoch> {
        Self::new(u16::from_be_bytes([bytes[0], bytes[1]]), bytes[2])
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Epoch {
    type Err = InvalidEpoch;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidEpoch(s.to_owned());
        let bytes = s.as_bytes();
        if bytes.len() != 7 || bytes[4] != b'-' || !s.is_ascii() {
            return Err(bad());
        }
        let digits = |part: &str| -> Result<u16, InvalidEpoch> {
            if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let year = digits(&s[..4])?;
        let month = u8::try_from(digits(&s[5..])?).map_err(|_| bad())?;
        Self::new(year, month).map_err(|_| bad())
    }
}

/// Why a message's epoch is outside the acceptance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowViolation {
    /// The epoch's grace period is over; its key is (or must be) destroyed.
    Expired {
        /// The epoch of the message.
        epoch: Epoch,
        /// When the key stopped being accepted.
        destroyed_at: DateTime<Utc>,
    },
    /// The epoch has not begun, even allowing for clock skew.
    NotYetValid {
        /// The epoch of the message.
        epoch: Epoch,
        /// When the epoch begins.
        begins_at: DateTime<Utc>,
    },
}

/// Decides whether a message of `epoch` is acceptable at `now`.
///
/// Accepted: the epoch of `now`; the previous epoch until 7 × 24 h after the
/// start of the epoch of `now`; the next epoch from 10 minutes before it
/// begins. Everything else is rejected.
///
/// # Errors
/// [`WindowViolation`] naming whether the epoch is expired or not yet valid.
pub fn check_window(epoch: Epoch, now: DateTime<Utc>) -> Result<(), WindowViolation> {
    let current = Epoch::containing(now);
    if epoch == current {
        return Ok(());
    }
    if epoch < current {
        let destroyed_at = epoch.destruction_time();
        if now < destroyed_at {
            return Ok(());
        }
        return Err(WindowViolation::Expired {
            epoch,
            destroyed_at,
        });
    }
    let begins_at = epoch.start();
    if now >= begins_at - CLOCK_SKEW_ALLOWANCE {
        Ok(())
    } else {
        Err(WindowViolation::NotYetValid { epoch, begins_at })
    }
}

/// Parses an RFC 3339 instant (any offset) into UTC.
///
/// # Errors
/// `None` when the text is not RFC 3339.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// An instant from RFC 3339 text known to be valid (vectors and tests).
pub(crate) fn utc(text: &str) -> DateTime<Utc> {
    parse_utc(text).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Formats an instant as RFC 3339 in UTC, to the second (for messages,
/// the store and the spec).
pub fn format_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Epoch {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        assert_eq!(ep("2026-11").to_string(), "2026-11");
        for bad in [
            "2026-13", "2026-00", "1999-12", "2026-1", "2026/11", "+026-11", "2026-1a",
        ] {
            assert!(bad.parse::<Epoch>().is_err(), "{bad}");
        }
    }

    #[test]
    fn next_and_prev_cross_year_boundary() {
        assert_eq!(ep("2026-12").next(), Some(ep("2027-01")));
        assert_eq!(ep("2027-01").prev(), Some(ep("2026-12")));
        assert_eq!(ep("2000-01").prev(), None);
        assert_eq!(ep("9999-12").next(), None);
        assert_eq!(ep("2026-11").months_until(ep("2027-02")), 3);
    }

    #[test]
    fn containing_uses_utc() {
        let late_local = DateTime::parse_from_rfc3339("2026-11-30T23:30:00-02:00")
            .unwrap()
            .with_timezone(&Utc); // 01:30 UTC on Dec 1
        assert_eq!(Epoch::containing(late_local), ep("2026-12"));
        assert_eq!(ep("2026-12").start(), utc("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn window_previous_month_for_seven_days() {
        let nov = ep("2026-11");
        assert!(check_window(nov, utc("2026-12-05T12:00:00Z")).is_ok());
        assert!(check_window(nov, utc("2026-12-07T23:59:59Z")).is_ok());
        assert_eq!(
            check_window(nov, utc("2026-12-08T00:00:00Z")),
            Err(WindowViolation::Expired {
                epoch: nov,
                destroyed_at: utc("2026-12-08T00:00:00Z")
            })
        );
        assert!(matches!(
            check_window(ep("2026-10"), utc("2026-12-01T00:00:00Z")),
            Err(WindowViolation::Expired { .. })
        ));
    }

    #[test]
    fn window_next_month_only_within_skew() {
        let jan = ep("2027-01");
        assert!(check_window(jan, utc("2026-12-31T23:50:00Z")).is_ok());
        assert!(matches!(
            check_window(jan, utc("2026-12-31T23:49:59Z")),
            Err(WindowViolation::NotYetValid { .. })
        ));
        assert!(matches!(
            check_window(ep("2027-02"), utc("2027-01-31T23:00:00Z")),
            Err(WindowViolation::NotYetValid { .. })
        ));
    }

    #[test]
    fn wire_bytes_round_trip_and_reject_bad_months() {
        let e = ep("2027-01");
        assert_eq!(Epoch::from_bytes(e.to_bytes()), Ok(e));
        assert!(Epoch::from_bytes([0x07, 0xea, 13]).is_err());
    }
}
