//! The mock account's clock: real wall time in the account timezone, or (while an account is
//! being generated) a simulated clock that steps forward, so a seed gives the same account.

use chrono::{Duration as ChronoDuration, NaiveDateTime, Timelike};
use chrono_tz::Tz;

/// Where change times come from.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Account timezone (`createdAt` values are wall time there).
    pub tz: Tz,
    /// `(now, largest step in seconds)` while generating; `None`: the real clock.
    sim: Option<(NaiveDateTime, i64)>,
}

impl Clock {
    /// The real clock of `tz`.
    pub fn real(tz: Tz) -> Self {
        Clock { tz, sim: None }
    }

    /// The current wall time: real, or the simulated one.
    pub fn now(&self) -> NaiveDateTime {
        match self.sim {
            Some((t, _)) => t,
            None => real_now(self.tz),
        }
    }

    /// Moves the simulated clock (if any) by `step_secs` (at most its largest step) and returns
    /// the new time; the real clock just tells the time.
    pub fn tick(&mut self, step_secs: i64) -> NaiveDateTime {
        if let Some((t, max)) = &mut self.sim {
            *t += ChronoDuration::seconds(step_secs.clamp(1, *max));
        }
        self.now()
    }

    /// From now on, time starts at `at` and moves at most `step_secs` per change.
    pub fn simulate(&mut self, at: NaiveDateTime, step_secs: i64) {
        self.sim = Some((at, step_secs.max(1)));
    }

    /// Back to the real clock.
    pub fn use_real(&mut self) {
        self.sim = None;
    }
}

/// Real wall time in `tz`, to the second.
pub fn real_now(tz: Tz) -> NaiveDateTime {
    let t = chrono::Utc::now().with_timezone(&tz).naive_local();
    t.with_nanosecond(0).unwrap_or(t)
}

/// The start of the current hour in `tz`: what generated accounts end at (so two mocks built
/// from one seed within the same hour are identical).
pub fn hour_anchor(tz: Tz) -> NaiveDateTime {
    let t = real_now(tz);
    t.with_minute(0).and_then(|t| t.with_second(0)).unwrap_or(t)
}

/// Parses an IANA timezone name, `Europe/Moscow` when unknown.
pub fn parse_tz(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::Europe::Moscow)
}
