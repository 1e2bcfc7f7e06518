//! The waits between tries of something that may work the next time (a request, a token, a
//! webhook, a server connection, an export's status): each wait `factor` times the one before,
//! up to a cap. One helper, so that every retry loop grows its waits the same way.

use std::time::Duration;

/// Waits that grow: `first` as given, then `factor` times the last, never more than `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    factor: f64,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, factor: f64, max: Duration) -> Self {
        Backoff {
            next: first,
            factor,
            max,
        }
    }

    /// Waits that double: `first`, twice that, ..., at most `max`.
    pub fn doubling(first: Duration, max: Duration) -> Self {
        Backoff::new(first, 2.0, max)
    }

    /// The wait before the next try; the one after it is longer (up to the cap).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.mul_f64(self.factor).min(self.max);
        wait
    }
}

/// `wait` give or take up to 25%, so that clients that failed together do not retry together.
pub fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_by_the_factor_up_to_the_cap() {
        let ms = Duration::from_millis;
        let mut doubling = Backoff::doubling(ms(500), ms(3000));
        let waits: Vec<Duration> = (0..5).map(|_| doubling.next_wait()).collect();
        assert_eq!(waits, [ms(500), ms(1000), ms(2000), ms(3000), ms(3000)]);
        let mut slower = Backoff::new(ms(100), 1.5, ms(1000));
        assert_eq!([slower.next_wait(), slower.next_wait()], [ms(100), ms(150)]);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(4));
            assert!(wait >= Duration::from_secs(3) && wait <= Duration::from_secs(5));
        }
    }
}
