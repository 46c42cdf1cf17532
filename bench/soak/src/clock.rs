//! The simulated clock and the pacing of real time against it.
//!
//! Simulated time starts at the UTC midnight of `now - sim_days` and moves on by one commit
//! interval per commit, so the simulated week ends at (or just before) the real today and no
//! generated `created_at` is ever in the real future. Commit `i` (0-based) happens at
//! simulated `start + (i + 1) * interval` and is due in real time at
//! `real_start + i * interval / C`. The driver sleeps when it is ahead and never skips a
//! commit when it is behind; how far behind it was is recorded as the commit's lag.

use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveTime, Utc};

/// Simulated seconds per day.
pub const DAY_SECS: i64 = 86_400;

/// The simulated clock of one run.
#[derive(Debug, Clone)]
pub struct SimClock {
    /// Simulated start (Unix seconds, a UTC midnight).
    start: i64,
    /// Simulated seconds between commits.
    interval: i64,
    /// Real start of the run (commit 0 is due then).
    real_start: Instant,
    /// Compression factor: simulated seconds per real second.
    compression: f64,
}

impl SimClock {
    /// A clock whose simulated time starts at the UTC midnight `sim_days` before `now`.
    pub fn new(now: DateTime<Utc>, sim_days: u32, interval: Duration, compression: f64) -> Self {
        let midnight = now
            .checked_sub_days(Days::new(u64::from(sim_days)))
            .unwrap_or(now)
            .with_time(NaiveTime::MIN)
            .single()
            .unwrap_or(now);
        SimClock {
            start: midnight.timestamp(),
            interval: interval.as_secs().max(1) as i64,
            real_start: Instant::now(),
            compression,
        }
    }

    /// Simulated start, Unix seconds.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Simulated seconds per commit.
    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// Commits in `sim_days` simulated days.
    pub fn commits_in(&self, sim_days: u32) -> u64 {
        (i64::from(sim_days) * DAY_SECS / self.interval) as u64
    }

    /// Simulated time of commit `i` (the end of the interval it carries), Unix seconds.
    pub fn sim_time(&self, i: u64) -> i64 {
        self.start + (i as i64 + 1) * self.interval
    }

    /// Real instant at which commit `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        let secs = i as f64 * self.interval as f64 / self.compression;
        self.real_start + Duration::from_secs_f64(secs)
    }

    /// Wait until commit `i` is due; returns how late it starts (zero when on time).
    pub async fn pace(&self, i: u64) -> Duration {
        let due = self.due(i);
        let now = Instant::now();
        if now < due {
            tokio::time::sleep_until(due.into()).await;
            Duration::ZERO
        } else {
            now - due
        }
    }

    /// A simulated duration expressed in real time (divided by the compression factor).
    pub fn to_real(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64(sim.as_secs_f64() / self.compression)
    }
}

/// `YYYY-MM-DD` of a Unix-seconds instant (UTC).
pub fn day_of(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// RFC 3339 of a Unix-seconds instant (UTC), for the records.
pub fn iso(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A time-based table property scaled by the compression factor, as Delta writes it:
/// `interval N seconds` (at least one second).
pub fn scaled_interval(real: Duration, compression: f64) -> (Duration, String) {
    let secs = (real.as_secs_f64() / compression).round().max(1.0) as u64;
    (
        Duration::from_secs(secs),
        format!("interval {secs} seconds"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_midnight_and_ends_before_now() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T22:05:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let c = SimClock::new(now, 7, Duration::from_secs(30), 168.0);
        assert_eq!(iso(c.start()), "2026-11-20T00:00:00Z");
        assert_eq!(c.commits_in(7), 20_160);
        assert!(c.sim_time(c.commits_in(7) - 1) <= now.timestamp());
    }

    #[test]
    fn scaled_retention() {
        let week = Duration::from_secs(7 * DAY_SECS as u64);
        let (d, text) = scaled_interval(week, 168.0);
        assert_eq!(d, Duration::from_secs(3600));
        assert_eq!(text, "interval 3600 seconds");
    }
}
