//! Watching inside one invocation: a check handler looks again every poll interval until
//! something the state machine must act on happens or its time is up.
//!
//! Each round of the state machine's poll loop (Wait, check Task, Choice) costs three
//! state transitions and nine history events. Looking at the clone or the engine every
//! 30 s from the state machine alone would take about 1,700 transitions for a 4-hour
//! refresh. Watching for minutes per invocation keeps the same reaction time (one poll
//! interval, which is what bounds how long a clone outlives its use) with a few dozen.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use crate::error::RefreshError;

/// Time kept back from the Lambda deadline to answer, so a watch never times the function out.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// When watching stops: no look is started that would end after it.
    until: Option<Instant>,
    /// When the invocation must have answered by: no call may run past it.
    deadline: Option<Instant>,
    /// What a look's longest duration is divided by when planning the next one.
    time_scale: u32,
}

impl Watch {
    /// A single look (direct calls, the CLI, handler tests).
    pub fn once() -> Self {
        Self { until: None, deadline: None, time_scale: 1 }
    }

    /// Watch until `window` from now, every call within it.
    pub fn for_window(window: Duration) -> Self {
        let until = Instant::now().checked_add(window);
        Self { until, deadline: until, time_scale: 1 }
    }

    /// The watch of one Lambda invocation: until the deadline less a margin, capped by
    /// `cap` when given (the cap shortens the watch, never the calls' budget); a look's
    /// longest time is divided by `time_scale` when planning the next. A deadline that has
    /// already passed when the invocation starts is no deadline (`cargo lambda watch` sends
    /// its 600 s timeout as the deadline, in 1970): that leaves the cap, or a single look
    /// without one.
    pub fn for_invocation(deadline: SystemTime, cap: Option<Duration>, time_scale: u32) -> Self {
        Self { time_scale: time_scale.max(1), ..Self::capped(deadline, cap) }
    }

    fn capped(deadline: SystemTime, cap: Option<Duration>) -> Self {
        let left = deadline.duration_since(SystemTime::now()).ok().map(|left| left.saturating_sub(DEADLINE_MARGIN));
        let deadline = left.and_then(|left| Instant::now().checked_add(left));
        let window = match (left, cap) {
            (Some(left), Some(cap)) => Some(left.min(cap)),
            (Some(window), None) | (None, Some(window)) => Some(window),
            (None, None) => None,
        };
        Self { until: window.and_then(|w| Instant::now().checked_add(w)), deadline, time_scale: 1 }
    }

    /// When this invocation must have answered by: what every call in it must fit in.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether another look `every` from now, taking up to `look_time`, still fits.
    fn allows(&self, every: Duration, look_time: Duration) -> bool {
        let look_time = look_time / self.time_scale;
        self.until.is_some_and(|until| Instant::now() + every + look_time <= until)
    }

    /// Looks, then again after `every(last result)`, until `done` holds for the result or the watch is
    /// over. A look that could take `look_time` is started only if it would end in time:
    /// an overrun would be a Lambda timeout, which the state machine treats as a failure.
    /// Each look gets the previous result, so counters and deadlines carry through.
    /// A failing first look is the invocation's error; a later one ends the watch with the
    /// last good result, so the next invocation looks again from there.
    pub async fn run<T, F, Fut>(
        &self,
        first: T,
        every: impl Fn(&T) -> Duration,
        look_time: Duration,
        mut look: F,
        done: impl Fn(&T) -> bool,
    ) -> Result<T, RefreshError>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<T, RefreshError>>,
        T: Clone,
    {
        let mut current = look(first).await?;
        while !done(&current) && self.allows(every(&current), look_time) {
            tokio::time::sleep(every(&current)).await;
            match look(current.clone()).await {
                Ok(next) => current = next,
                Err(e) => {
                    warn!(error = e.name(), reason = %e, "look failed; ending this watch with the last result");
                    break;
                }
            }
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const EVERY: Duration = Duration::from_millis(10);

    fn down() -> RefreshError {
        RefreshError::DblabUnavailable { endpoint: "http://dblab".into(), message: "down".into() }
    }

    #[tokio::test]
    async fn once_looks_exactly_once() {
        let n =
            Watch::once().run(0u32, |_| EVERY, Duration::ZERO, |n| async move { Ok(n + 1) }, |_| false).await.unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn stops_as_soon_as_done() {
        let w = Watch::for_window(Duration::from_secs(10));
        let n = w.run(0u32, |_| EVERY, Duration::ZERO, |n| async move { Ok(n + 1) }, |n| *n == 3).await.unwrap();
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn stops_when_the_window_is_over() {
        let w = Watch::for_window(Duration::from_millis(55));
        let n = w.run(0u32, |_| EVERY, Duration::ZERO, |n| async move { Ok(n + 1) }, |_| false).await.unwrap();
        // Looks at 0, 10, 20, 30, 40 ms and never starts one that would end past 55 ms.
        assert!((2..=6).contains(&n), "{n} looks");
    }

    #[tokio::test]
    async fn a_failing_first_look_is_the_error() {
        let w = Watch::for_window(Duration::from_secs(10));
        let e = w.run(0u32, |_| EVERY, Duration::ZERO, |_| async { Err(down()) }, |_| false).await.unwrap_err();
        assert_eq!(e.name(), "DblabUnavailable");
    }

    #[tokio::test]
    async fn a_later_failure_ends_the_watch_with_the_last_result() {
        let calls = AtomicU32::new(0);
        let w = Watch::for_window(Duration::from_secs(10));
        let n = w
            .run(
                0u32,
                |_| EVERY,
                Duration::ZERO,
                |n| {
                    let call = calls.fetch_add(1, Ordering::SeqCst);
                    async move { if call == 2 { Err(down()) } else { Ok(n + 1) } }
                },
                |_| false,
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_invocation_keeps_a_margin_before_its_deadline() {
        let w = Watch::for_invocation(SystemTime::now() + Duration::from_secs(10), None, 1);
        assert!(!w.allows(Duration::ZERO, Duration::ZERO), "10 s left is inside the 15 s margin");
        let w = Watch::for_invocation(SystemTime::now() + Duration::from_secs(60), None, 1);
        assert!(w.allows(Duration::from_secs(30), Duration::ZERO));
        assert!(!w.allows(Duration::from_secs(50), Duration::ZERO));
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        assert!(
            !Watch::for_invocation(past, None, 1).allows(Duration::ZERO, Duration::ZERO),
            "no deadline, no cap: one look"
        );
        assert!(Watch::for_invocation(past, None, 1).deadline().is_none(), "and no bound on its calls");
    }

    #[test]
    fn a_scaled_world_scales_the_look_bound_too() {
        // The benchmark's 1:60 world: a 10 s watch stands for 10 min, 1 s polls for 60 s;
        // a 40 s look bound stands for 40 s of AWS, i.e. 0.67 s here.
        let w = Watch { time_scale: 60, ..Watch::for_window(Duration::from_secs(10)) };
        assert!(w.allows(Duration::from_secs(1), Duration::from_secs(40)));
        assert!(!w.allows(Duration::from_secs(9), Duration::from_secs(61)), "9 s + 61/60 s passes the window");
        let unscaled = Watch::for_window(Duration::from_secs(10));
        assert!(!unscaled.allows(Duration::from_secs(1), Duration::from_secs(40)));
        // An invocation takes the scale it is given, and its deadline bounds its calls.
        let invocation = Watch::for_invocation(SystemTime::now() + Duration::from_secs(60), None, 60);
        assert!(invocation.allows(Duration::from_secs(1), Duration::from_secs(50)), "50 s of AWS is 0.83 s here");
        let unscaled = Watch::for_invocation(SystemTime::now() + Duration::from_secs(60), None, 1);
        assert!(!unscaled.allows(Duration::from_secs(1), Duration::from_secs(50)), "past the 45 s left");
        assert!(invocation.deadline().is_some_and(|d| d > Instant::now() + Duration::from_secs(40)));
    }

    #[test]
    fn the_cap_shortens_the_watch_not_the_calls_budget() {
        let w = Watch::capped(SystemTime::now() + Duration::from_secs(120), Some(Duration::from_secs(3)));
        let (until, deadline) = (w.until.unwrap(), w.deadline.unwrap());
        assert!(until <= Instant::now() + Duration::from_secs(3), "the watch stops at the cap");
        assert!(deadline > Instant::now() + Duration::from_secs(100), "calls may run to the deadline less the margin");
        assert!(deadline <= Instant::now() + Duration::from_secs(105));
        let w = Watch::capped(SystemTime::UNIX_EPOCH, Some(Duration::from_secs(3)));
        assert!(w.until.is_some() && w.deadline.is_none(), "no deadline: the cap alone, calls unbounded");
    }

    #[tokio::test]
    async fn a_look_that_could_outlast_the_window_is_not_started() {
        // 60 s left: a 30 s wait leaves room for a 20 s look, not for a 40 s one.
        let w = Watch::for_window(Duration::from_secs(60));
        assert!(w.allows(Duration::from_secs(30), Duration::from_secs(20)));
        assert!(!w.allows(Duration::from_secs(30), Duration::from_secs(40)));
        let looks = AtomicU32::new(0);
        let w = Watch::for_window(Duration::from_millis(100));
        w.run(
            0u32,
            |_| EVERY,
            Duration::from_millis(200),
            |n| {
                looks.fetch_add(1, Ordering::SeqCst);
                async move { Ok(n + 1) }
            },
            |_| false,
        )
        .await
        .unwrap();
        assert_eq!(looks.load(Ordering::SeqCst), 1, "only the first look: a second could not end in time");
    }
}
