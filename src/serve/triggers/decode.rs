//! Turning raw input into activations: key presses from evdev events, and
//! debounced, active-low-aware edges from a GPIO line, each then gated by
//! a hold-off. Pure functions of the event stream and its timestamps, so
//! they are tested on recorded streams without the devices.

use std::time::Duration;

use crate::config::Edge;

/// evdev's event type for keys and buttons (`EV_KEY`).
pub(crate) const EV_KEY: u16 = 1;

/// Whether an evdev event is a press of `code`: value 1. A release (0)
/// and the keyboard's auto-repeat of a held key (2) are not presses, so a
/// button held down acts once.
pub(crate) fn is_press(event_type: u16, code: u16, value: i32, want: u16) -> bool {
    event_type == EV_KEY && code == want && value == 1
}

/// A GPIO line's edges, debounced: a level counts once the line has held
/// it for the debounce time (contacts bounce for a few milliseconds).
/// Active-low lines (a button to ground with a pull-up) are inverted first.
#[derive(Debug, Clone)]
pub(crate) struct LineDecoder {
    edge: Edge,
    active_low: bool,
    debounce_ns: u64,
    /// The settled logical level.
    stable: bool,
    /// The logical level after the last edge, and when it came.
    latest: bool,
    latest_ns: u64,
}

impl LineDecoder {
    /// `physical_level` is the line's level when watching starts.
    pub fn new(edge: Edge, active_low: bool, debounce: Duration, physical_level: bool) -> Self {
        let level = physical_level != active_low;
        LineDecoder {
            edge,
            active_low,
            debounce_ns: debounce.as_nanos().min(u128::from(u64::MAX)) as u64,
            stable: level,
            latest: level,
            latest_ns: 0,
        }
    }

    /// A physical edge at `at_ns` (the kernel's timestamp). Without a
    /// debounce time it may act at once.
    pub(crate) fn edge(&mut self, physical_rising: bool, at_ns: u64) -> bool {
        self.latest = physical_rising != self.active_low;
        self.latest_ns = at_ns;
        self.debounce_ns == 0 && self.settle(at_ns)
    }

    /// Time has passed to `now_ns` with no edge: true when the line has
    /// now settled into a level that acts.
    pub(crate) fn settle(&mut self, now_ns: u64) -> bool {
        if self.latest == self.stable || now_ns.saturating_sub(self.latest_ns) < self.debounce_ns {
            return false;
        }
        self.stable = self.latest;
        match self.edge {
            Edge::Rising => self.stable,
            Edge::Falling => !self.stable,
            Edge::Both => true,
        }
    }

    /// When [`LineDecoder::settle`] may next act, if a change is pending.
    pub(crate) fn deadline_ns(&self) -> Option<u64> {
        (self.latest != self.stable).then(|| self.latest_ns + self.debounce_ns)
    }
}

/// At most one activation per `min_interval`, counted from the last one
/// that acted: a visitor standing before a presence sensor, or a stuck
/// button, does not restart the narration again and again.
#[derive(Debug, Clone)]
pub(crate) struct HoldOff {
    min_interval_ns: u64,
    last_ns: Option<u64>,
}

impl HoldOff {
    pub fn new(min_interval: Duration) -> Self {
        HoldOff {
            min_interval_ns: min_interval.as_nanos().min(u128::from(u64::MAX)) as u64,
            last_ns: None,
        }
    }

    /// Whether an activation at `at_ns` acts (and if so, it is the new
    /// last one).
    pub(crate) fn allow(&mut self, at_ns: u64) -> bool {
        let allowed = self
            .last_ns
            .is_none_or(|last| at_ns.saturating_sub(last) >= self.min_interval_ns);
        if allowed {
            self.last_ns = Some(at_ns);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    /// Feeds a recorded stream of (physical level after the edge, time)
    /// and returns the times at which the decoder acted, polling as the
    /// GPIO thread does (at each edge and at each pending deadline).
    fn run_line(decoder: &mut LineDecoder, edges: &[(bool, u64)], end_ns: u64) -> Vec<u64> {
        let mut acted = Vec::new();
        let mut events = edges.iter().peekable();
        let mut now = 0;
        loop {
            let next_edge = events.peek().map(|(_, t)| *t);
            let deadline = decoder.deadline_ns();
            let step = match (next_edge, deadline) {
                (Some(e), Some(d)) => e.min(d),
                (Some(e), None) => e,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            if step > end_ns {
                break;
            }
            now = now.max(step);
            if deadline == Some(step) && decoder.settle(now) {
                acted.push(now);
            }
            if next_edge == Some(step) {
                let (level, t) = events.next().copied().unwrap_or((false, now));
                if decoder.edge(level, t) {
                    acted.push(t);
                }
            }
        }
        acted
    }

    #[test]
    fn a_bouncing_button_presses_once_and_releases_once() {
        // Pressed at 100 ms: 6 bounces over 3 ms, then held until 900 ms,
        // released with 4 bounces. Active-low: pressed pulls the line low.
        let mut edges = vec![];
        for i in 0..6 {
            edges.push((i % 2 == 1, 100 * MS + i * MS / 2));
        }
        edges.push((false, 103 * MS));
        for i in 0..4 {
            edges.push((i % 2 == 0, 900 * MS + i * MS / 2));
        }
        edges.push((true, 902 * MS));
        let mut rising = LineDecoder::new(Edge::Rising, true, Duration::from_millis(20), true);
        assert_eq!(run_line(&mut rising, &edges, 2 * S), vec![123 * MS]);
        let mut both = LineDecoder::new(Edge::Both, true, Duration::from_millis(20), true);
        assert_eq!(run_line(&mut both, &edges, 2 * S), vec![123 * MS, 922 * MS]);
        let mut falling = LineDecoder::new(Edge::Falling, true, Duration::from_millis(20), true);
        assert_eq!(run_line(&mut falling, &edges, 2 * S), vec![922 * MS]);
        // Without debouncing, every bounce that lands active acts.
        let mut raw = LineDecoder::new(Edge::Rising, true, Duration::ZERO, true);
        assert!(run_line(&mut raw, &edges, 2 * S).len() >= 3);
    }

    #[test]
    fn a_glitch_shorter_than_the_debounce_time_does_nothing() {
        // Active-high line: a 5 ms spike of interference.
        let edges = [(true, 10 * MS), (false, 15 * MS)];
        let mut decoder = LineDecoder::new(Edge::Rising, false, Duration::from_millis(20), false);
        assert!(run_line(&mut decoder, &edges, S).is_empty());
    }

    #[test]
    fn a_presence_sensor_with_a_hold_off_plays_once_per_interval() {
        // A PIR sensor re-fires every 2 s for 5 minutes while a visitor
        // stands in front of it (high 1 s, low 1 s).
        let mut edges = vec![];
        let mut t = 0;
        while t < 300 * S {
            edges.push((true, t + S));
            edges.push((false, t + 2 * S));
            t += 2 * S;
        }
        let mut decoder = LineDecoder::new(Edge::Rising, false, Duration::from_millis(50), false);
        let activations = run_line(&mut decoder, &edges, 400 * S);
        assert_eq!(activations.len(), 150, "the sensor fired 150 times");
        let mut hold_off = HoldOff::new(Duration::from_secs(120));
        let played: Vec<u64> = activations
            .into_iter()
            .filter(|t| hold_off.allow(*t))
            .collect();
        // At 1 s, 121 s and 241 s: three plays in five minutes, not 150.
        assert_eq!(
            played,
            vec![S + 50 * MS, 121 * S + 50 * MS, 241 * S + 50 * MS]
        );
    }

    #[test]
    fn a_stuck_key_and_a_flood_of_presses_are_bounded() {
        // A recorded evdev stream: (type, code, value, time). EV_SYN
        // reports (type 0) between. KEY_ENTER is 28; BTN_0 is 256.
        let mut stream = vec![(1, 28, 1, 0), (0, 0, 0, 0)];
        // Held down: auto-repeat every 33 ms for 10 s, then released.
        for i in 1..300 {
            stream.push((1, 28, 2, 250 * MS + i * 33 * MS));
        }
        stream.push((1, 28, 0, 10 * S));
        // Another key pressed and a button mashed 50 times in 5 s.
        stream.push((1, 30, 1, 11 * S));
        for i in 0..50 {
            stream.push((1, 256, 1, 12 * S + i * 100 * MS));
            stream.push((1, 256, 0, 12 * S + i * 100 * MS + 50 * MS));
        }
        let presses = |code| -> Vec<u64> {
            stream
                .iter()
                .filter(|(ty, c, v, _)| is_press(*ty, *c, *v, code))
                .map(|e| e.3)
                .collect()
        };
        assert_eq!(presses(28), vec![0], "held down: one press");
        assert_eq!(presses(256).len(), 50);
        let mut hold_off = HoldOff::new(Duration::from_secs(1));
        let acted = presses(256)
            .into_iter()
            .filter(|t| hold_off.allow(*t))
            .count();
        assert_eq!(acted, 5, "mashing for 5 s acts once a second");
    }
}
