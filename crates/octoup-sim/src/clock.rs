//! Simulated time: real time elapsed since the installation was created, divided by the
//! time scale (real seconds per simulated second).

use std::time::Duration;

use jiff::Timestamp;

/// Converts between real and simulated time for one installation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: Timestamp,
    time_scale: f64,
}

impl Clock {
    pub fn new(started: Timestamp, time_scale: f64) -> Self {
        // A zero or negative scale would make every wait instant and divide by zero.
        let time_scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        Clock {
            started,
            time_scale,
        }
    }

    /// Simulated seconds since the installation started.
    pub fn now_sim(&self) -> f64 {
        self.sim_at(Timestamp::now())
    }

    /// Simulated seconds at a given real instant.
    pub fn sim_at(&self, at: Timestamp) -> f64 {
        at.duration_since(self.started).as_secs_f64().max(0.0) / self.time_scale
    }

    /// The real instant of a simulated second (for timestamps in API bodies).
    pub fn real_at(&self, sim_seconds: f64) -> Timestamp {
        let real = jiff::SignedDuration::from_secs_f64(sim_seconds * self.time_scale);
        self.started.checked_add(real).unwrap_or(self.started)
    }

    /// How long `sim_seconds` of simulated time last in real time.
    pub fn real_duration(&self, sim_seconds: f64) -> Duration {
        Duration::from_secs_f64((sim_seconds.max(0.0) * self.time_scale).min(1.0e9))
    }

    /// Blocks the calling thread for `sim_seconds` of simulated time.
    pub fn sleep_sim(&self, sim_seconds: f64) {
        std::thread::sleep(self.real_duration(sim_seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_both_ways() {
        let start = Timestamp::now();
        let clock = Clock::new(start, 0.01);
        assert_eq!(clock.real_duration(60.0), Duration::from_millis(600));
        let later = start
            .checked_add(jiff::SignedDuration::from_secs(3))
            .unwrap();
        assert!((clock.sim_at(later) - 300.0).abs() < 1e-6);
        assert!((clock.sim_at(clock.real_at(42.0)) - 42.0).abs() < 1e-3);
        // Nonsense scales fall back to real time instead of dividing by zero.
        assert_eq!(
            Clock::new(start, 0.0).real_duration(5.0),
            Duration::from_secs(5)
        );
    }
}
