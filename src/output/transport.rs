//! The player's transport: its queue and what it is told between two
//! periods of sound (pause, resume, cut with a fade). Shared by the player
//! thread, the service and the control socket, so a request takes effect
//! within one period (about 40 ms), even while the service is busy
//! rendering.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

/// Most narrations waiting at once: a flood of requests (a stuck button,
/// a script in a loop) is refused past this, the queue never grows
/// without bound.
pub(crate) const MAX_QUEUE: usize = 16;

/// What the sound loop does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Go on playing.
    Go,
    /// Stop writing and wait for resume (or a cut).
    Pause,
    /// End the current narration now, fading out over this long.
    Cut(Duration),
}

/// What plays and waits, as `vivid control status` and `status.json` show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TransportStatus {
    /// The narration playing (its file), if any.
    pub playing: Option<PathBuf>,
    pub paused: bool,
    /// Waiting to play, in order.
    pub queued: Vec<PathBuf>,
    /// The narration that played last (for next and previous).
    pub last: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct State {
    status: TransportStatus,
    queue: VecDeque<PathBuf>,
    cut: Option<Duration>,
    closed: bool,
}

/// The shared queue and controls (see the module comment).
#[derive(Debug, Default)]
pub struct Transport {
    state: Mutex<State>,
    changed: Condvar,
}

impl Transport {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a state that is still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let result = change(&mut state);
        state.status.queued = state.queue.iter().cloned().collect();
        drop(state);
        self.changed.notify_all();
        result
    }

    /// Adds a narration at the end of the queue; false when the queue is
    /// full or the player has stopped.
    pub fn enqueue(&self, path: PathBuf) -> bool {
        self.update(|s| {
            if s.closed || s.queue.len() >= MAX_QUEUE {
                return false;
            }
            s.queue.push_back(path);
            true
        })
    }

    /// Plays `path` next: what plays now is cut with a `fade`; the rest
    /// of the queue waits behind it.
    pub(crate) fn play_now(&self, path: PathBuf, fade: Duration) -> bool {
        self.update(|s| {
            if s.closed {
                return false;
            }
            // The same narration asked for again while it waits: once.
            s.queue.retain(|p| p != &path);
            s.queue.truncate(MAX_QUEUE - 1);
            s.queue.push_front(path);
            if s.status.playing.is_some() {
                s.cut = Some(fade);
            }
            s.status.paused = false;
            true
        })
    }

    /// Empties the queue and fades out what plays; true when something
    /// was playing.
    pub fn stop(&self, fade: Duration) -> bool {
        self.update(|s| {
            s.queue.clear();
            s.status.paused = false;
            let playing = s.status.playing.is_some();
            if playing {
                s.cut = Some(fade);
            }
            playing
        })
    }

    /// Pauses what plays; false when nothing does.
    pub fn pause(&self) -> bool {
        self.update(|s| {
            s.status.paused = s.status.playing.is_some();
            s.status.paused
        })
    }

    /// Resumes a paused narration; false when none is paused.
    pub fn resume(&self) -> bool {
        self.update(|s| std::mem::take(&mut s.status.paused))
    }

    pub fn status(&self) -> TransportStatus {
        self.lock().status.clone()
    }

    /// Ends the queue: the player plays what waits, then stops.
    pub fn close(&self) {
        self.update(|s| s.closed = true);
    }

    /// The player thread's next narration, waiting for one; None once
    /// closed and empty.
    pub(super) fn next_item(&self) -> Option<PathBuf> {
        let mut state = self.lock();
        loop {
            if let Some(path) = state.queue.pop_front() {
                state.status.queued = state.queue.iter().cloned().collect();
                state.status.playing = Some(path.clone());
                state.cut = None;
                return Some(path);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The player thread is done with `path`.
    pub(super) fn finished(&self, path: &Path) {
        self.update(|s| {
            s.status.playing = None;
            s.status.paused = false;
            s.status.last = Some(path.to_path_buf());
            s.cut = None;
        });
    }

    /// Asked by the sound loop between periods.
    pub(super) fn control(&self) -> Control {
        let state = self.lock();
        match (state.cut, state.status.paused) {
            (Some(fade), _) => Control::Cut(fade),
            (None, true) => Control::Pause,
            (None, false) => Control::Go,
        }
    }

    /// Waits while paused; returns what to do then (go on, or a cut).
    pub(super) fn wait_while_paused(&self) -> Control {
        let mut state = self.lock();
        while state.status.paused && state.cut.is_none() && !state.closed {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        match state.cut {
            Some(fade) => Control::Cut(fade),
            None => Control::Go,
        }
    }
}

/// A linear fade from full level to silence over `frames` frames of
/// interleaved `channels`, applied in place.
pub(crate) fn fade_out(samples: &mut [f32], channels: usize, frames: usize) {
    let channels = channels.max(1);
    let frames = frames.max(1);
    for (frame, chunk) in samples.chunks_mut(channels).enumerate() {
        let gain = 1.0 - (frame as f32 + 1.0) / frames as f32;
        chunk.iter_mut().for_each(|s| *s *= gain.max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_play_request_cuts_what_plays_and_goes_first() {
        let t = Transport::default();
        assert!(t.enqueue("a.wav".into()));
        assert!(t.enqueue("b.wav".into()));
        assert_eq!(t.next_item(), Some(PathBuf::from("a.wav")));
        assert_eq!(t.control(), Control::Go);
        assert!(t.play_now("c.wav".into(), Duration::from_millis(300)));
        assert_eq!(t.control(), Control::Cut(Duration::from_millis(300)));
        t.finished(Path::new("a.wav"));
        assert_eq!(t.next_item(), Some(PathBuf::from("c.wav")));
        assert_eq!(t.control(), Control::Go, "the new one is not cut");
        assert_eq!(t.status().queued, vec![PathBuf::from("b.wav")]);
        assert_eq!(t.status().last, Some(PathBuf::from("a.wav")));
    }

    #[test]
    fn a_flood_of_requests_never_grows_the_queue_past_its_bound() {
        let t = Transport::default();
        for i in 0..1000 {
            t.enqueue(PathBuf::from(format!("{i}.wav")));
            t.play_now(PathBuf::from(format!("p{}.wav", i % 3)), Duration::ZERO);
        }
        assert!(t.status().queued.len() <= MAX_QUEUE);
        // A stuck button asking for one narration: it waits once.
        let waiting = t.status().queued;
        let p0 = waiting
            .iter()
            .filter(|p| p == &&PathBuf::from("p0.wav"))
            .count();
        assert_eq!(p0, 1, "{waiting:?}");
    }

    #[test]
    fn pause_resume_and_stop() {
        let t = Transport::default();
        assert!(!t.pause(), "nothing plays");
        t.enqueue("a.wav".into());
        t.enqueue("b.wav".into());
        t.next_item();
        assert!(t.pause());
        assert_eq!(t.control(), Control::Pause);
        assert!(t.resume());
        assert_eq!(t.control(), Control::Go);
        t.pause();
        assert!(t.stop(Duration::from_millis(100)));
        // A stop while paused ends the wait with the cut.
        assert_eq!(
            t.wait_while_paused(),
            Control::Cut(Duration::from_millis(100))
        );
        assert!(t.status().queued.is_empty());
    }

    #[test]
    fn the_fade_falls_to_silence_steadily() {
        let mut samples = vec![1.0f32; 2 * 100];
        fade_out(&mut samples, 2, 100);
        let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
        assert!(left.windows(2).all(|w| w[1] < w[0]));
        assert_eq!(left[99], 0.0);
        assert!(left[0] > 0.98);
    }
}
