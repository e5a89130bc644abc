//! The service's metrics for Prometheus, as a file in node_exporter's
//! textfile-collector folder (`service.metrics_file`): no socket, so the
//! hardened unit keeps `PrivateNetwork`. The file is rewritten whole and
//! atomically after each job and every minute while idle; node_exporter
//! never reads half of it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::render::{FileRecord, RenderReport};

/// Upper bounds (seconds) of the stage-duration histogram buckets: from a
/// quick mix to a long AudioLDM2 background on a small board.
const STAGE_BUCKETS_S: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The stages a render reports, in order.
const STAGES: [&str; 5] = ["describe", "speak", "background", "mix", "write"];

/// A cumulative histogram, as Prometheus keeps one.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at or under each of [`STAGE_BUCKETS_S`].
    counts: [u64; STAGE_BUCKETS_S.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in STAGE_BUCKETS_S.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// One model the service has loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// voice, describer or background.
    pub role: &'static str,
    pub path: String,
    pub sha256: String,
}

/// What changes only with the moment: read when the file is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gauges {
    pub(crate) queue_length: usize,
    pub waiting_for_disk: bool,
    /// Bytes the waiting job needs on the spool's file system.
    pub(crate) disk_needed_bytes: u64,
    pub(crate) disk_available_bytes: u64,
    pub cache_bytes: u64,
    pub(crate) playback_underruns: u64,
    pub(crate) playback_reopens: u64,
}

/// Counters since the service started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    started_unix: u64,
    done: u64,
    failed: u64,
    requeued_for_disk: u64,
    stages: [Histogram; STAGES.len()],
    last_job_end_unix: Option<u64>,
    cache_hits: u64,
    cache_misses: u64,
    models: Vec<ModelInfo>,
}

impl Metrics {
    pub fn new(started_unix: u64) -> Self {
        Self {
            started_unix,
            ..Self::default()
        }
    }

    /// The models loaded.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The models now loaded (again after a reload).
    pub(crate) fn set_models(&mut self, models: Vec<ModelInfo>) {
        self.models = models;
    }

    /// A finished job: its stage times, its backgrounds' cache use and the
    /// models it was made with.
    pub(crate) fn job_done(&mut self, report: &RenderReport, end_unix: u64) {
        self.done += 1;
        self.last_job_end_unix = Some(end_unix);
        let s = &report.seconds;
        for (histogram, seconds) in
            self.stages
                .iter_mut()
                .zip([s.describe, s.speak, s.background, s.mix, s.write])
        {
            histogram.observe(seconds);
        }
        for scene in &report.scenes {
            match scene.background_from_cache {
                Some(true) => self.cache_hits += 1,
                Some(false) => self.cache_misses += 1,
                None => {}
            }
        }
        let mut models = vec![model("voice", &report.voice)];
        models.extend(
            report
                .describer_model
                .as_ref()
                .map(|m| model("describer", m)),
        );
        models.extend(
            self.models
                .iter()
                .filter(|m| m.role == "background" || m.role == "embedder")
                .cloned(),
        );
        self.models = models;
    }

    pub(crate) fn job_failed(&mut self, end_unix: u64) {
        self.failed += 1;
        self.last_job_end_unix = Some(end_unix);
    }

    /// A job put back in the queue because the disk was full.
    pub(crate) fn job_requeued_for_disk(&mut self) {
        self.requeued_for_disk += 1;
    }

    /// The file's text, in Prometheus' text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        self.render_jobs(&mut family, gauges);
        self.render_stages(&mut family);
        self.render_device_and_cache(&mut family, gauges);
        out
    }

    /// The jobs, the queue and the spool's disk.
    fn render_jobs(
        &self,
        family: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
        gauges: &Gauges,
    ) {
        let plain = |v: u64| vec![(String::new(), v.to_string())];
        family(
            "vivid_jobs_total",
            "counter",
            "Jobs finished since the service started, by result.",
            &[
                (r#"{result="done"}"#.into(), self.done.to_string()),
                (r#"{result="failed"}"#.into(), self.failed.to_string()),
            ],
        );
        family(
            "vivid_jobs_requeued_for_disk_total",
            "counter",
            "Jobs put back in the queue because the disk or quota was full.",
            &plain(self.requeued_for_disk),
        );
        family(
            "vivid_queue_length",
            "gauge",
            "Inputs waiting in the inbox.",
            &plain(gauges.queue_length as u64),
        );
        family(
            "vivid_waiting_for_disk",
            "gauge",
            "1 while the service waits for free space on the spool's file system.",
            &plain(u64::from(gauges.waiting_for_disk)),
        );
        family(
            "vivid_disk_needed_bytes",
            "gauge",
            "Space the next job needs on the spool's file system while waiting for it (0 otherwise).",
            &plain(if gauges.waiting_for_disk {
                gauges.disk_needed_bytes
            } else {
                0
            }),
        );
        family(
            "vivid_disk_available_bytes",
            "gauge",
            "Free space on the spool's file system.",
            &plain(gauges.disk_available_bytes),
        );
    }

    /// When the service started and last finished a job, the sound
    /// device, the background cache and the models.
    fn render_device_and_cache(
        &self,
        family: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
        gauges: &Gauges,
    ) {
        let plain = |v: u64| vec![(String::new(), v.to_string())];
        family(
            "vivid_last_job_end_timestamp_seconds",
            "gauge",
            "When the last job ended (done or failed), Unix time; 0 before the first.",
            &plain(self.last_job_end_unix.unwrap_or(0)),
        );
        family(
            "vivid_start_time_seconds",
            "gauge",
            "When the service started, Unix time.",
            &plain(self.started_unix),
        );
        family(
            "vivid_playback_underruns_total",
            "counter",
            "Sound device underruns (playback fell behind) since the start.",
            &plain(gauges.playback_underruns),
        );
        family(
            "vivid_playback_device_reopens_total",
            "counter",
            "Times the sound device was opened again after it failed.",
            &plain(gauges.playback_reopens),
        );
        family(
            "vivid_background_cache_requests_total",
            "counter",
            "Backgrounds looked up in the cache, by result.",
            &[
                (r#"{result="hit"}"#.into(), self.cache_hits.to_string()),
                (r#"{result="miss"}"#.into(), self.cache_misses.to_string()),
            ],
        );
        family(
            "vivid_background_cache_bytes",
            "gauge",
            "Bytes in the background cache folder.",
            &plain(gauges.cache_bytes),
        );
        let models: Vec<(String, String)> = self
            .models
            .iter()
            .map(|m| {
                (
                    format!(
                        r#"{{role="{}",path="{}",sha256="{}"}}"#,
                        escape(m.role),
                        escape(&m.path),
                        escape(&m.sha256)
                    ),
                    "1".to_owned(),
                )
            })
            .collect();
        family(
            "vivid_model_info",
            "gauge",
            "The models loaded, with their files and sha256.",
            &models,
        );
    }

    /// The stage-duration histogram family.
    fn render_stages(&self, family: &mut impl FnMut(&str, &str, &str, &[(String, String)])) {
        let mut samples = Vec::new();
        for (stage, histogram) in STAGES.iter().zip(&self.stages) {
            for (bound, count) in STAGE_BUCKETS_S.iter().zip(histogram.counts) {
                samples.push((
                    format!(r#"_bucket{{stage="{stage}",le="{bound}"}}"#),
                    count.to_string(),
                ));
            }
            samples.push((
                format!(r#"_bucket{{stage="{stage}",le="+Inf"}}"#),
                histogram.count.to_string(),
            ));
            samples.push((
                format!(r#"_sum{{stage="{stage}"}}"#),
                format!("{:.6}", histogram.sum),
            ));
            samples.push((
                format!(r#"_count{{stage="{stage}"}}"#),
                histogram.count.to_string(),
            ));
        }
        family(
            "vivid_stage_duration_seconds",
            "histogram",
            "Seconds each render stage took, per job.",
            &samples,
        );
    }
}

fn model(role: &'static str, record: &FileRecord) -> ModelInfo {
    ModelInfo {
        role,
        path: record.path.display().to_string(),
        sha256: record.sha256.clone(),
    }
}

/// A label value as the exposition format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// Writes the metrics file whole: a temporary file beside it, then a
/// rename. The folder is node_exporter's and is not created here: a
/// missing one means node_exporter is not installed (or the path is
/// wrong), which the warning says.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !folder.is_dir()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the folder {} does not exist", folder.display()),
        ));
    }
    let mut file = crate::fsutil::AtomicFile::create(path)?;
    file.write_all(text.as_bytes())?;
    file.commit()
}

/// Whether the metrics file can be written where the config puts it: the
/// reason when not (a warning at start and in `vivid doctor`; the service
/// runs on without metrics).
pub(crate) fn check_folder(path: &Path) -> Result<(), String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "the metrics folder {} does not exist (install prometheus-node-exporter, or point service.metrics_file elsewhere)",
            folder.display()
        ));
    }
    let probe = tempfile::Builder::new()
        .prefix(".vivid-metrics-probe")
        .tempfile_in(folder);
    match probe {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "cannot write into the metrics folder {}: {e} (give the vivid user write access, see deploy/install.sh)",
            folder.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::default();
        for s in [0.05, 0.3, 0.3, 7.0, 1000.0] {
            h.observe(s);
        }
        assert_eq!(h.counts[0], 1, "≤ 0.1");
        assert_eq!(h.counts[2], 3, "≤ 0.5");
        assert_eq!(h.counts[6], 4, "≤ 10");
        assert_eq!(h.counts[11], 4, "≤ 600: 1000 s is only in +Inf");
        assert_eq!(h.count, 5);
        assert!((h.sum - 1007.65).abs() < 1e-9);
    }

    #[test]
    fn text_has_every_family_and_escaped_labels() {
        let mut m = Metrics::new(1_700_000_000);
        m.set_models(vec![ModelInfo {
            role: "voice",
            path: "/models/a \"b\"\\c.onnx".into(),
            sha256: "ab".into(),
        }]);
        m.job_failed(1_700_000_100);
        let text = m.render(&Gauges {
            queue_length: 3,
            waiting_for_disk: true,
            disk_needed_bytes: 42,
            ..Gauges::default()
        });
        for needed in [
            "vivid_jobs_total{result=\"done\"} 0",
            "vivid_jobs_total{result=\"failed\"} 1",
            "vivid_queue_length 3",
            "vivid_waiting_for_disk 1",
            "vivid_disk_needed_bytes 42",
            "vivid_stage_duration_seconds_bucket{stage=\"mix\",le=\"+Inf\"} 0",
            "vivid_last_job_end_timestamp_seconds 1700000100",
            r#"vivid_model_info{role="voice",path="/models/a \"b\"\\c.onnx",sha256="ab"} 1"#,
        ] {
            assert!(text.contains(needed), "{needed} in:\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 14);
    }

    #[test]
    fn missing_folder_is_named() {
        let err = check_folder(Path::new("/nonexistent-vivid/metrics/vivid.prom")).unwrap_err();
        assert!(err.contains("/nonexistent-vivid/metrics"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        assert!(check_folder(&tmp.path().join("vivid.prom")).is_ok());
    }
}
