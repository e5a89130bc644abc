//! A background's progress on a terminal bar. The library reports progress
//! through [`Observer`]; drawing it is the command line's business.

use indicatif::{ProgressBar, ProgressStyle};
use vivid::background::{Observer, Stage};

/// A bar styled by `template`, falling back to indicatif's default bar
/// when the template does not parse.
pub(crate) fn bar(template: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// Draws a background's clips, stages and denoising steps on a bar.
pub(crate) struct BackgroundBar {
    bar: ProgressBar,
    clips: usize,
}

impl BackgroundBar {
    pub(crate) fn new(bar: ProgressBar) -> Self {
        Self { bar, clips: 1 }
    }
}

impl Observer for BackgroundBar {
    fn clips(&mut self, count: usize) {
        self.clips = count.max(1);
    }

    fn stage(&mut self, clip: usize, stage: Stage) {
        self.bar.set_message(format!(
            "clip {}/{}: {}",
            clip + 1,
            self.clips,
            stage.label()
        ));
    }

    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.bar.set_length((total * self.clips) as u64);
        self.bar.set_position((clip * total + done) as u64);
        self.bar.set_message(format!(
            "clip {}/{}: denoising step {done}/{total}",
            clip + 1,
            self.clips
        ));
    }
}
