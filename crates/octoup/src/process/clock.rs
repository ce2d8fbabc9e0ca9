//! Time for the engine: wall-clock stamps for the journal, deadlines, and polling that starts
//! fast (a simulator answers in milliseconds) and slows down (a real server is not hammered).

use std::time::Duration;

// tokio's clock: the real one in production; in tests with paused time it advances only
// while every task sleeps, so deadlines and poll intervals cost no wall time there.
use tokio::time::Instant;

use jiff::Timestamp;

/// Now, as the journal and report write it.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Seconds between two stamps (0 when `end` is before `start`).
pub fn seconds_between(start: Timestamp, end: Timestamp) -> f64 {
    let d = end.duration_since(start).as_secs_f64();
    if d.is_finite() && d > 0.0 { d } else { 0.0 }
}

/// Seconds as a duration. Negative or not a number (a clock set back between two journal
/// times) counts as zero: `Duration::from_secs_f64` would panic on those.
pub fn seconds(secs: f64) -> Duration {
    if secs.is_finite() && secs > 0.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// [`human_duration`] of a number of seconds (see [`seconds`]).
pub fn human_seconds(secs: f64) -> String {
    human_duration(seconds(secs))
}

/// `1h 02m`, `3m 05s`, `12s`, `0.4s` — durations for people.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs >= 10 || d.subsec_millis() == 0 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A point in time after which waiting stops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub(crate) fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The whole allowance this deadline was made with.
    pub(crate) fn total(&self) -> Duration {
        self.total
    }
}

/// Poll intervals: `first`, doubling up to `max`, never past a deadline.
#[derive(Debug, Clone)]
pub(crate) struct Poller {
    next: Duration,
    max: Duration,
}

impl Poller {
    /// 50 ms doubling to 2 s: a simulated node that starts in 60 ms is seen at once, a real
    /// one that takes minutes gets a request every 2 s.
    pub(crate) fn standard() -> Poller {
        Poller::new(Duration::from_millis(50), Duration::from_secs(2))
    }

    pub fn new(first: Duration, max: Duration) -> Poller {
        Poller { next: first, max }
    }

    /// Sleeps for the next interval (cut short by `deadline`).
    pub(crate) async fn wait(&mut self, deadline: Option<&Deadline>) {
        let mut d = self.next;
        if let Some(dl) = deadline {
            d = d.min(dl.remaining());
        }
        tokio::time::sleep(d).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_nan_seconds_are_zero_not_a_panic() {
        assert_eq!(seconds(-3.0), Duration::ZERO);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
        assert_eq!(human_seconds(-0.1), "0s");
        assert_eq!(human_seconds(65.0), "1m 05s");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_secs(3725)), "1h 02m");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30m 00s");
    }

    #[tokio::test]
    async fn poller_grows_and_respects_the_deadline() {
        let mut p = Poller::new(Duration::from_millis(1), Duration::from_millis(4));
        let dl = Deadline::after(Duration::from_millis(50));
        for _ in 0..5 {
            p.wait(Some(&dl)).await;
        }
        assert_eq!(p.next, Duration::from_millis(4));
        let expired = Deadline::after(Duration::ZERO);
        let start = Instant::now();
        Poller::new(Duration::from_secs(5), Duration::from_secs(5))
            .wait(Some(&expired))
            .await;
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(expired.expired());
    }
}
