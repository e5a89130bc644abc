//! Kiosk mode: every finished narration played in rounds while the inbox
//! is empty.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::spool::Spool;
use crate::config::Config;

/// Kiosk mode: rounds of every finished narration while the inbox is
/// empty. Playback failures are logged by the player and never touch the
/// jobs.
#[derive(Default)]
pub(super) struct Kiosk {
    /// Items sent to the player and not yet reported played.
    queued: usize,
    last_round: Option<Instant>,
}

impl Kiosk {
    /// A narration sent to the player (`queued`: whether it took it).
    pub(super) fn enqueued(&mut self, queued: bool) {
        self.queued += usize::from(queued);
    }

    pub(super) fn settle(
        &mut self,
        played: &std::sync::mpsc::Receiver<crate::output::play::Played>,
    ) {
        self.queued = self.queued.saturating_sub(played.try_iter().count());
    }

    pub(super) fn maybe_play(
        &mut self,
        config: &Config,
        spool: &Spool,
        player: &crate::output::play::Player,
    ) {
        let interval = config.service.kiosk_interval_s;
        if interval == 0 || self.queued > 0 {
            return;
        }
        if self
            .last_round
            .is_some_and(|t| t.elapsed() < Duration::from_secs(interval))
        {
            return;
        }
        let mut wavs: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&spool.dirs().done)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "wav"))
                    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
                    .collect()
            })
            .unwrap_or_default();
        if wavs.is_empty() {
            return;
        }
        wavs.sort();
        self.last_round = Some(Instant::now());
        for (_, wav) in wavs {
            self.queued += usize::from(player.enqueue(wav));
        }
    }
}
