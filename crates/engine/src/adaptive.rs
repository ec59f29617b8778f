//! Adaptive request concurrency per integration (AIMD, as vector's sinks do it): find
//! how many calls in flight an instance takes before it slows down, and stay there.
//!
//! Once per window (one mean round trip), the window's answers decide:
//! - back pressure (a 429, a 5xx or timeout) or round trips clearly slower than the
//!   long-run mean → multiply the limit by [`DECREASE`] (at least 1 less);
//! - otherwise, if the limit was reached in the window and round trips held → one more;
//! - otherwise (the limit was not used up) → unchanged: there is nothing to learn.
//!
//! A ServiceNow instance runs API requests on a fixed number of semaphore slots and
//! queues the rest; queued requests take longer, which is the signal to back off before
//! the queue fills and the instance answers 429.

use std::time::Duration;

use tokio::time::Instant;

/// Multiplicative decrease.
const DECREASE: f64 = 0.9;
/// Weight of a new window in the long-run mean and deviation.
const EWMA_ALPHA: f64 = 0.4;
/// Slower than the fastest recent round trip by this share, plus [`DEVIATION_SCALE`]
/// deviations of the instance's jitter, counts as the instance queueing. Measured
/// against the fastest, not the mean: a mean follows a slow climb one step at a time
/// and never sees the queue grow.
const QUEUE_MARGIN: f64 = 0.1;
/// …and by at least this much: against a sub-millisecond instance a busy host's own
/// scheduling noise is larger than any queue, and must not read as back pressure.
const QUEUE_MIN: f64 = 0.005;
const DEVIATION_SCALE: f64 = 2.5;
/// The fastest round trip is forgotten slowly (this share per window), so an instance
/// that became slower for good becomes the new normal within a minute or so.
const BASELINE_RELAX: f64 = 0.001;
/// Round trips are measured in whole milliseconds; below this the queueing signal is
/// lost in rounding and host noise, so only back pressure (429, 5xx) lowers the limit.
const MIN_MEASURABLE: f64 = 0.010;
/// Windows shorter than this would decide on too few answers.
const MIN_WINDOW: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub(crate) struct Aimd {
    limit: usize,
    ceiling: usize,
    mean_rtt: Option<f64>,
    deviation: f64,
    fastest_rtt: Option<f64>,
    window: Window,
}

#[derive(Debug, Clone, Default)]
struct Window {
    ends: Option<Instant>,
    rtt_sum: f64,
    rtt_squares: f64,
    answers: u32,
    pressure: bool,
    saturated: bool,
}

impl Aimd {
    pub fn new(initial: usize, ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        Aimd {
            limit: initial.clamp(1, ceiling),
            ceiling,
            mean_rtt: None,
            deviation: 0.0,
            fastest_rtt: None,
            window: Window::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Every slot of the limit is taken: an increase now would be used.
    pub fn saturated(&mut self) {
        self.window.saturated = true;
    }

    /// One answer (or failure) after `rtt`; returns the new limit when it changed.
    pub fn observe(&mut self, now: Instant, rtt: Duration, pressure: bool) -> Option<usize> {
        let window = &mut self.window;
        window.rtt_sum += rtt.as_secs_f64();
        window.rtt_squares += rtt.as_secs_f64().powi(2);
        window.answers += 1;
        window.pressure |= pressure;
        let ends = *window
            .ends
            .get_or_insert_with(|| now + window_length(self.mean_rtt));
        if now < ends && !pressure {
            return None;
        }
        let window = std::mem::take(&mut self.window);
        let answers = f64::from(window.answers);
        let rtt = window.rtt_sum / answers;
        // Jitter is the spread of answers within a window; the spread between windows
        // is mostly our own doing (each change of the limit moves the round trip).
        let spread = (window.rtt_squares / answers - rtt * rtt).max(0.0).sqrt();
        let before = self.limit;
        let slower = self.fastest_rtt.is_some_and(|fastest| {
            fastest >= MIN_MEASURABLE
                && rtt
                    > fastest
                        + (fastest * QUEUE_MARGIN).max(QUEUE_MIN)
                        + DEVIATION_SCALE * self.deviation
        });
        if window.pressure || slower {
            let decreased = (self.limit as f64 * DECREASE).floor() as usize;
            self.limit = decreased.min(self.limit - 1).max(1);
        } else if window.saturated {
            self.limit = (self.limit + 1).min(self.ceiling);
        }
        // A window with back pressure measured failures, not the instance's pace.
        if !window.pressure {
            self.fastest_rtt = Some(match self.fastest_rtt {
                None => rtt,
                Some(fastest) => (fastest * (1.0 + BASELINE_RELAX)).min(rtt),
            });
            match self.mean_rtt {
                None => self.mean_rtt = Some(rtt),
                Some(mean) => {
                    self.deviation = (1.0 - EWMA_ALPHA) * self.deviation + EWMA_ALPHA * spread;
                    self.mean_rtt = Some((1.0 - EWMA_ALPHA) * mean + EWMA_ALPHA * rtt);
                }
            }
        }
        (self.limit != before).then_some(self.limit)
    }
}

fn window_length(mean_rtt: Option<f64>) -> Duration {
    mean_rtt
        .map(Duration::from_secs_f64)
        .unwrap_or_default()
        .max(MIN_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(80);

    /// Drives `aimd` against an instance with `slots` semaphore slots and a queue:
    /// `limit` calls in flight take RTT each while they fit, longer once they queue.
    fn run(aimd: &mut Aimd, slots: usize, windows: usize, now: &mut Instant) {
        for _ in 0..windows {
            let limit = aimd.limit();
            let rtt = if limit <= slots {
                RTT
            } else {
                RTT.mul_f64(limit as f64 / slots as f64)
            };
            aimd.saturated();
            for _ in 0..limit {
                aimd.observe(*now, rtt, false);
            }
            *now += rtt;
            aimd.observe(*now, rtt, false);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_grows_while_the_instance_keeps_pace_and_stops_at_the_ceiling() {
        let mut aimd = Aimd::new(8, 16);
        let mut now = Instant::now();
        run(&mut aimd, 1000, 40, &mut now);
        assert_eq!(aimd.limit(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_settles_near_the_instances_slots_once_it_queues() {
        let mut aimd = Aimd::new(8, 256);
        let mut now = Instant::now();
        run(&mut aimd, 64, 400, &mut now);
        let mut seen = Vec::new();
        for _ in 0..100 {
            run(&mut aimd, 64, 1, &mut now);
            seen.push(aimd.limit());
        }
        let (low, high) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
        assert!(
            low >= 52 && high <= 72,
            "limit wandered over {low}..={high}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn back_pressure_cuts_the_limit_at_once() {
        let mut aimd = Aimd::new(40, 64);
        let now = Instant::now();
        assert_eq!(aimd.observe(now, RTT, true), Some(36));
        assert_eq!(aimd.observe(now, RTT, true), Some(32));
        let mut small = Aimd::new(2, 64);
        assert_eq!(small.observe(now, RTT, true), Some(1));
        assert_eq!(small.observe(now, RTT, true), None, "never below one");
    }

    #[tokio::test(start_paused = true)]
    async fn scheduling_noise_against_an_instant_instance_is_not_back_pressure() {
        let mut aimd = Aimd::new(8, 64);
        let mut now = Instant::now();
        for round in 0..200u64 {
            aimd.saturated();
            for answer in 0..aimd.limit() as u64 {
                // 0.3 ms answers with an occasional 3 ms hiccup of the host.
                let rtt = if (round + answer) % 7 == 0 {
                    3_000
                } else {
                    300
                };
                aimd.observe(now, Duration::from_micros(rtt), false);
            }
            now += MIN_WINDOW;
            aimd.observe(now, Duration::from_micros(300), false);
        }
        assert_eq!(aimd.limit(), 64);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_limit_does_not_grow() {
        let mut aimd = Aimd::new(8, 64);
        let mut now = Instant::now();
        for _ in 0..50 {
            aimd.observe(now, RTT, false);
            now += RTT;
        }
        assert_eq!(aimd.limit(), 8);
    }
}
