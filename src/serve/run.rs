//! One job run: its input read, narrated with the loaded pipeline into
//! `processing/`, its progress told to the status, and moved to `done/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::inbox::read_input;
use super::spool::{Claimed, Outputs, Spool};
use super::status::StatusWriter;
use crate::config::Config;
use crate::render::{FileRecord, Job, RenderObserver, RenderStage, Renderer};

/// Reports render progress into the status, and stops a job past its
/// time bound.
struct JobObserver<'a> {
    status: &'a mut StatusWriter,
    progress: crate::background::ProgressLog,
    started: Instant,
    bound: Option<Duration>,
}

impl crate::background::Observer for JobObserver<'_> {
    fn clips(&mut self, count: usize) {
        self.progress.clips(count);
    }
    fn stage(&mut self, clip: usize, stage: crate::background::Stage) {
        self.progress.stage(clip, stage);
        self.status
            .status
            .set_stage(format!("background {}", self.progress.status()));
        self.status.write(false);
    }
    fn step(&mut self, clip: usize, done: usize, total: usize) {
        self.progress.step(clip, done, total);
        self.status
            .status
            .set_stage(format!("background {}", self.progress.status()));
        self.status.write(false);
    }
    fn cancelled(&self) -> Option<String> {
        let bound = self.bound?;
        (self.started.elapsed() > bound).then(|| {
            format!(
                "the job ran longer than service.job_timeout_s ({} s) and was stopped; a long text may need a larger bound, or split it into several files",
                bound.as_secs()
            )
        })
    }
}

impl RenderObserver for JobObserver<'_> {
    fn render_stage(&mut self, stage: RenderStage) {
        self.status.status.set_stage(stage.label().to_owned());
        self.status.write(true);
    }
}

/// A job narrated into done/.
pub(super) struct JobDone {
    pub(super) wav: PathBuf,
    /// Whether to play it now.
    pub(super) play: bool,
    pub(super) report: crate::render::RenderReport,
}

/// Narrates one claimed job into done/.
pub(super) fn run_job(
    spool: &Spool,
    config: &Config,
    renderer: &mut Renderer,
    claimed: &Claimed,
    companions: &mut Vec<Claimed>,
    status: &mut StatusWriter,
) -> Result<JobDone> {
    let (text, input_path, overrides) =
        read_input(spool, claimed, companions, config.service.max_input_bytes)?;
    let input: FileRecord = crate::render::file_record(&input_path)?;
    let stem = overrides.output.clone().unwrap_or_else(|| claimed.stem());
    let wav = spool.dirs().processing.join(format!(".{stem}.wav.out"));
    let report_path = crate::render::sidecar_path(&wav);
    let mut observer = JobObserver {
        status,
        progress: crate::background::ProgressLog::new(),
        started: Instant::now(),
        bound: (config.service.job_timeout_s > 0)
            .then(|| Duration::from_secs(config.service.job_timeout_s)),
    };
    let settings = config.render_settings(&overrides.render);
    let report = renderer.render(
        &Job {
            text: &text,
            input,
            settings: &settings,
        },
        &wav,
        &mut observer,
    )?;
    let named = Claimed {
        path: claimed.path.clone(),
        name: match &overrides.output {
            Some(output) => format!(
                "{output}.{}",
                Path::new(&claimed.name)
                    .extension()
                    .map_or("txt".into(), |e| e.to_string_lossy().into_owned())
            ),
            None => claimed.name.clone(),
        },
    };
    let final_wav = spool.complete(
        &named,
        Outputs {
            wav: &wav,
            report: &report_path,
        },
    )?;
    let play = overrides.play.unwrap_or(config.playback.enabled);
    Ok(JobDone {
        wav: final_wav,
        play,
        report,
    })
}
