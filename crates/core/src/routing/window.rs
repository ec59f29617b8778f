//! A rule's time window: days of the week and hours of the day in a named time zone.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::validate::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    fn of(weekday: Weekday) -> Day {
        Day::ALL[weekday.num_days_from_monday() as usize]
    }

    pub fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }
}

/// `{"days": ["mon", …], "from": "08:00", "to": "18:00", "time_zone": "Europe/Berlin"}`:
/// the rule matches from `from` (included) to `to` (excluded), local time, on the listed
/// days (all days when left out). A window with `to` before `from` runs past midnight and
/// belongs to the day it starts on (`fri 22:00–06:00` holds on Saturday 03:00); `from`
/// equal to `to` is the whole day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<Day>>,
    pub from: String,
    pub to: String,
    pub time_zone: String,
}

fn clock(text: &str) -> Option<NaiveTime> {
    // Exactly HH:MM: "8:00" or "08:00:30" would be read differently by different people.
    if text.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

impl TimeWindow {
    /// Whether `now` lies in the window. A window that no longer parses (it was checked
    /// when saved) holds never, so a broken rule does nothing rather than everything.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let (Some(from), Some(to), Ok(zone)) = (
            clock(&self.from),
            clock(&self.to),
            self.time_zone.parse::<Tz>(),
        ) else {
            return false;
        };
        let local = now.with_timezone(&zone);
        let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or(NaiveTime::MIN);
        let today = Day::of(local.weekday());
        let yesterday = Day::of(local.weekday().pred());
        let on = |day: Day| self.days.as_ref().is_none_or(|days| days.contains(&day));
        if from == to {
            on(today)
        } else if from < to {
            on(today) && from <= time && time < to
        } else {
            (on(today) && time >= from) || (on(yesterday) && time < to)
        }
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.days.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new(
                "when.time_window.days",
                "must list at least one day; leave it out for every day",
            ));
        }
        for (name, value) in [("from", &self.from), ("to", &self.to)] {
            if clock(value).is_none() {
                errors.push(FieldError::new(
                    format!("when.time_window.{name}"),
                    "expected a 24-hour time HH:MM, like 08:00",
                ));
            }
        }
        if self.time_zone.parse::<Tz>().is_err() {
            let shown: String = self.time_zone.chars().take(100).collect();
            errors.push(FieldError::new(
                "when.time_window.time_zone",
                format!("unknown time zone `{shown}`; use an IANA name like Europe/Berlin or UTC"),
            ));
        }
        errors
    }

    /// "mon–fri 08:00–18:00 Europe/Berlin".
    pub fn describe(&self) -> String {
        let days = match &self.days {
            Some(days) => days
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => "every day".to_owned(),
        };
        format!("{days} {}–{} {}", self.from, self.to, self.time_zone)
    }
}
