//! The sound library: a museum's own recordings in place of (or beside)
//! the recipes. Each folder in `[background.library] dirs` holds sound
//! files and a `library.toml` that says which source each serves:
//!
//! ```toml
//! [[sound]]
//! id = "rain-light"            # a catalog source, or a new one (below)
//! files = ["rain-garden.flac"]
//! as = "bed"                   # looped from seeded offsets, crossfaded
//!
//! [[sound]]
//! id = "gate-bell"             # new: needs a phrase and a category
//! phrase = "the museum's gate bell"
//! category = "bells"
//! keywords = ["gate", "bell"]
//! files = ["bell-1.wav", "bell-2.wav"]
//! as = "events"                # one-shots on the source's timing
//! ```
//!
//! Everything is checked when the library loads (and by `vivid library
//! check`): a file that cannot serve is named with the fix, and its source
//! falls back to its recipe; nothing half-loaded ever plays. Audio is
//! decoded once, at 48 kHz, normalized to the catalog's calibration, and
//! shared by every scene; its total size is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Category, Recipe, Source, Timing};
use super::descriptors::active_level_db;
use super::dsp::{RATE, db_to_gain};
use crate::audio::decode::decode_file;

/// The file in each library folder.
pub(crate) const LIBRARY_TOML: &str = "library.toml";
/// Longest sound file read, seconds.
const LONGEST_FILE_S: f64 = 600.0;
/// Longest one-shot for `as = "events"`, seconds.
const LONGEST_EVENT_S: f64 = 20.0;
/// Lowest sample rate accepted.
const LOWEST_RATE: u32 = 16_000;
/// Active level a recording is brought to, dBFS: with the renderer's
/// master gain it plays at the -26 dBFS the recipes are calibrated to.
const CALIBRATED_DB: f64 = -20.0;
/// Under this active level a file counts as silent, dBFS.
const SILENT_DB: f64 = -60.0;
/// Under this it is quiet enough that normalizing lifts its noise.
const QUIET_DB: f64 = -45.0;
/// A file clips when this share of its samples sits at full scale.
const CLIPPED_SHARE: f64 = 0.001;

/// How a library sound plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    /// Looped from seeded offsets with equal-power crossfades.
    Bed,
    /// One-shots on the source's timing, with seeded level, pitch, pan.
    Events,
}

/// One `[[sound]]` of a `library.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub files: Vec<PathBuf>,
    #[serde(rename = "as")]
    pub use_as: Use,
    /// Level relative to the calibration, dB.
    #[serde(default)]
    pub gain_db: f32,
    /// A new source's phrase, category and words (a catalog id needs none).
    pub phrase: Option<String>,
    pub category: Option<Category>,
    #[serde(default)]
    pub synonyms: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub scenes: Vec<String>,
    /// Events: when they sound (default: the catalog source's timing, or
    /// one every 4 s).
    pub(crate) timing: Option<Timing>,
    /// Events: random level change (dB), pitch change (cents) and
    /// scatter around the source's position (0..1).
    #[serde(default = "three")]
    pub(crate) vary_db: f32,
    #[serde(default = "fifty")]
    pub(crate) vary_cents: f32,
    #[serde(default = "half")]
    pub(crate) spread: f32,
    /// Beds: the crossfade between loop segments, seconds.
    #[serde(default = "two")]
    pub(crate) crossfade_s: f32,
}

fn three() -> f32 {
    3.0
}
fn fifty() -> f32 {
    50.0
}
fn half() -> f32 {
    0.5
}
fn two() -> f32 {
    2.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryToml {
    #[serde(default)]
    sound: Vec<Entry>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file (or the whole entry) is not used.
    Error,
    /// Used, but worth fixing.
    Warning,
}

/// Something wrong with a library file, and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    pub severity: Severity,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.file.display(), self.message)
    }
}

/// One decoded recording, at 48 kHz, calibrated.
#[derive(Debug)]
pub struct Clip {
    pub path: PathBuf,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
}

impl Clip {
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    fn bytes(&self) -> usize {
        (self.left.len() + self.right.len()) * std::mem::size_of::<f32>()
    }
}

/// A source the library serves.
#[derive(Debug, Clone)]
pub struct LibrarySource {
    pub entry: Entry,
    /// The folder's `library.toml`.
    pub origin: PathBuf,
    pub clips: Vec<Arc<Clip>>,
}

/// The measurements of one file, for `vivid library check`.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    pub id: String,
    pub rate: u32,
    pub channels: usize,
    pub seconds: f64,
    pub active_level_db: f64,
    pub clipped_share: f64,
}

/// Every library folder, loaded.
#[derive(Debug, Default, Clone)]
pub struct Library {
    pub sources: BTreeMap<String, LibrarySource>,
    pub findings: Vec<Finding>,
    pub files: Vec<FileReport>,
    /// Decoded audio held, bytes.
    pub bytes: usize,
}

/// Where the library is and how much audio it may hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LibrarySettings {
    pub dirs: Vec<PathBuf>,
    /// Most decoded audio held, MiB.
    pub(crate) max_mb: u64,
}

impl Library {
    /// Loads every folder; problems become findings, never a failure.
    pub fn load(settings: &LibrarySettings, catalog: &Catalog) -> Library {
        let mut library = Library::default();
        let budget = settings.max_mb.saturating_mul(1 << 20) as usize;
        for dir in &settings.dirs {
            library.load_dir(dir, catalog, budget);
        }
        library
    }

    fn error(&mut self, file: &Path, message: String) {
        self.findings.push(Finding {
            file: file.to_path_buf(),
            severity: Severity::Error,
            message,
        });
    }

    fn warn(&mut self, file: &Path, message: String) {
        self.findings.push(Finding {
            file: file.to_path_buf(),
            severity: Severity::Warning,
            message,
        });
    }

    fn load_dir(&mut self, dir: &Path, catalog: &Catalog, budget: usize) {
        let toml_path = dir.join(LIBRARY_TOML);
        let entries = match read_library_toml(&toml_path) {
            Ok(entries) => entries,
            Err(message) => return self.error(&toml_path, message),
        };
        for entry in entries {
            if let Some(message) = self.entry_problem(&entry, catalog) {
                self.error(&toml_path, message);
                continue;
            }
            let clips: Vec<Arc<Clip>> = entry
                .files
                .iter()
                .filter_map(|file| self.load_file(&dir.join(file), &entry, budget))
                .collect();
            if clips.is_empty() {
                self.error(
                    &toml_path,
                    format!(
                        "`{}` has no file that can play: it falls back to {}",
                        entry.id,
                        fallback(&entry.id, catalog)
                    ),
                );
                continue;
            }
            self.sources.insert(
                entry.id.clone(),
                LibrarySource {
                    entry,
                    origin: toml_path.clone(),
                    clips,
                },
            );
        }
    }

    /// Why an entry cannot be used at all, if it cannot.
    fn entry_problem(&self, entry: &Entry, catalog: &Catalog) -> Option<String> {
        if let Some(other) = self.sources.get(&entry.id) {
            return Some(format!(
                "`{}` is served twice (also by {}): keep one [[sound]] for it, with all its files",
                entry.id,
                other.origin.display()
            ));
        }
        let known = catalog.source(&entry.id).is_some();
        if !known && (entry.phrase.is_none() || entry.category.is_none()) {
            return Some(format!(
                "`{}` is not a catalog source (`vivid sounds` lists them): to add it as a new one, give it a phrase and a category",
                entry.id
            ));
        }
        if entry.files.is_empty() {
            return Some(format!("`{}` lists no files", entry.id));
        }
        if !(0.0..=30.0).contains(&entry.crossfade_s) {
            return Some(format!(
                "`{}`: crossfade_s {} is out of range (0 to 30 s)",
                entry.id, entry.crossfade_s
            ));
        }
        None
    }

    /// Decodes, checks and calibrates one file; `None` (with a finding)
    /// when it cannot serve.
    fn load_file(&mut self, path: &Path, entry: &Entry, budget: usize) -> Option<Arc<Clip>> {
        let decoded = match decode_file(path, LONGEST_FILE_S) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.error(path, format!("{e}"));
                return None;
            }
        };
        let (rate, channels, seconds) = (decoded.rate, decoded.channels.len(), decoded.seconds());
        if rate < LOWEST_RATE {
            self.error(path, format!("its rate, {rate} Hz, is too low (under {LOWEST_RATE} Hz): export it at 44.1 or 48 kHz"));
            return None;
        }
        if channels > 2 {
            self.error(
                path,
                format!("it has {channels} channels: export it as mono or stereo"),
            );
            return None;
        }
        let mono = decoded.mono();
        let level = active_level_db(&mono, rate);
        let clipped = decoded
            .channels
            .iter()
            .flatten()
            .filter(|v| v.abs() >= 0.999)
            .count() as f64
            / (decoded.frames() * channels).max(1) as f64;
        self.files.push(FileReport {
            file: path.to_path_buf(),
            id: entry.id.clone(),
            rate,
            channels,
            seconds,
            active_level_db: level,
            clipped_share: clipped,
        });
        if let Some(message) = shape_problem(entry, seconds, level) {
            self.error(path, message);
            return None;
        }
        if clipped > CLIPPED_SHARE {
            self.warn(path, format!("{:.2} % of its samples are at full scale (it clips): re-export it from the original at a lower level", clipped * 100.0));
        }
        if level < QUIET_DB {
            self.warn(path, format!("it is very quiet ({level:.0} dBFS while it sounds): vivid lifts it, and its noise with it; a recording at -30 to -12 dBFS is better"));
        }
        let seam_db = seam_step_db(&mono, rate);
        if entry.use_as == Use::Bed && seam_db > 6.0 {
            self.warn(path, format!("its start and end differ by {seam_db:.0} dB: vivid crossfades its loops, but a file cut where the sound is even loops more smoothly"));
        }
        let clip = calibrated(path, decoded, level)?;
        if self.bytes + clip.bytes() > budget {
            self.error(path, format!("the library would hold more than its {} MiB of decoded audio ([background.library] max_mb): raise it, or use shorter files", budget >> 20));
            return None;
        }
        self.bytes += clip.bytes();
        Some(Arc::new(clip))
    }

    /// The ids the library adds to the catalog, as catalog sources with no
    /// recipe (the library plays them).
    pub(crate) fn new_sources(&self, catalog: &Catalog) -> Vec<Source> {
        self.sources
            .values()
            .filter(|s| catalog.source(&s.entry.id).is_none())
            .filter_map(|s| {
                let e = &s.entry;
                Some(Source {
                    id: e.id.clone(),
                    phrase: e.phrase.clone()?,
                    category: e.category?,
                    synonyms: e.synonyms.clone(),
                    keywords: e.keywords.clone(),
                    scenes: e.scenes.clone(),
                    gain_db: 0.0,
                    layers: Vec::new(),
                    variants: Vec::new(),
                })
            })
            .collect()
    }

    /// The files that serve `id`, if the library serves it.
    pub(crate) fn files_of(&self, id: &str) -> Vec<PathBuf> {
        self.sources
            .get(id)
            .map(|s| s.clips.iter().map(|c| c.path.clone()).collect())
            .unwrap_or_default()
    }

    /// The events' timing for `id`: the entry's, else the catalog
    /// source's first event layer's, else one every 4 s.
    pub(crate) fn timing_of(source: &LibrarySource, catalog: &Catalog) -> Timing {
        if let Some(timing) = &source.entry.timing {
            return timing.clone();
        }
        catalog
            .source(&source.entry.id)
            .and_then(|s| s.layers.iter().find_map(Recipe::timing))
            .cloned()
            .unwrap_or(Timing {
                per_s: Some(0.25),
                period_s: None,
                beats: vec![0.0],
                accents_db: Vec::new(),
                pitches: Vec::new(),
                jitter_ms: 0.0,
                drift: 0.0,
                group: None,
                rest_s: None,
            })
    }
}

/// The new sources the library folders in `dirs` add, read from their
/// `library.toml` alone (no audio decoded): for the describer's
/// vocabulary. An entry whose files later fail to load is simply not
/// played (the scene reports it unmatched).
pub(crate) fn new_sources_declared(dirs: &[PathBuf], catalog: &Catalog) -> Vec<Source> {
    let mut seen = std::collections::BTreeSet::new();
    dirs.iter()
        .filter_map(|dir| read_library_toml(&dir.join(LIBRARY_TOML)).ok())
        .flatten()
        .filter(|e| catalog.source(&e.id).is_none() && seen.insert(e.id.clone()))
        .filter_map(|e| {
            Some(Source {
                phrase: e.phrase?,
                category: e.category?,
                id: e.id,
                synonyms: e.synonyms,
                keywords: e.keywords,
                scenes: e.scenes,
                gain_db: 0.0,
                layers: Vec::new(),
                variants: Vec::new(),
            })
        })
        .collect()
}

/// What a failing library id falls back to.
fn fallback(id: &str, catalog: &Catalog) -> &'static str {
    if catalog.source(id).is_some() {
        "its recipe"
    } else {
        "nothing (the new source is not added)"
    }
}

/// Reads a folder's `library.toml`.
fn read_library_toml(path: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("missing: every library folder needs a {LIBRARY_TOML} that says which source each file serves (see the README's \"Sound library\")")
        } else {
            format!("cannot read it: {e}")
        }
    })?;
    let parsed: LibraryToml = toml::from_str(&text).map_err(|e| format!("not valid: {e}"))?;
    Ok(parsed.sound)
}

/// Why a file's length or level rules it out for its use.
fn shape_problem(entry: &Entry, seconds: f64, level: f64) -> Option<String> {
    if level < SILENT_DB {
        return Some(format!(
            "it is silent ({level:.0} dBFS at its loudest): check the export"
        ));
    }
    match entry.use_as {
        Use::Bed if seconds < 2.0 * f64::from(entry.crossfade_s) + 1.0 => Some(format!(
            "as a bed it must be longer than twice its {:.1} s crossfade and a second ({seconds:.1} s): use a longer recording, a shorter crossfade_s, or play it as events",
            entry.crossfade_s
        )),
        Use::Events if seconds > LONGEST_EVENT_S => Some(format!(
            "as events each file is one sound, at most {LONGEST_EVENT_S:.0} s ({seconds:.0} s): cut it into single sounds, or play it as a bed"
        )),
        _ => None,
    }
}

/// The level step, dB, between a file's last and first half second: what
/// a plain loop would jump by.
fn seam_step_db(mono: &[f32], rate: u32) -> f64 {
    let half = (rate / 2) as usize;
    if mono.len() < 2 * half {
        return 0.0;
    }
    let rms = |x: &[f32]| {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).max(1e-20)
    };
    (10.0 * (rms(&mono[mono.len() - half..]) / rms(&mono[..half])).log10()).abs()
}

/// The decoded file at 48 kHz, stereo, brought to the calibration.
fn calibrated(path: &Path, decoded: crate::audio::decode::Decoded, level: f64) -> Option<Clip> {
    let decoded = decoded.at_rate(RATE as u32).ok()?;
    let gain = db_to_gain((CALIBRATED_DB - level) as f32);
    let scale = |c: &Vec<f32>| c.iter().map(|v| v * gain).collect::<Vec<f32>>();
    let left = scale(&decoded.channels[0]);
    let right = decoded.channels.get(1).map_or_else(|| left.clone(), scale);
    Some(Clip {
        path: path.to_path_buf(),
        left,
        right,
    })
}
