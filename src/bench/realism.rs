//! `vivid bench realism`: each soundscape source against real recordings
//! of the sound it names. A folder of references holds one sub-folder a
//! class (`rain/`, `hooves/`, ...) of WAV, FLAC or Ogg files. Every
//! recording and every render is cut into windows of up to
//! [`WINDOW_S`] and profiled ([`Profile`]); the profiles are put on one
//! scale (each value's mean and spread over the references), and a sound
//! belongs to the class whose nearest reference windows lie nearest.
//!
//! The references are checked first: each file, held out, must be told to
//! its own class by the others, or the descriptors could not judge vivid
//! either. Then vivid renders each class's caption as a user would get it
//! (`vivid background CAPTION`: its sources over its place's bed), three
//! seeds, and the render is judged against every class.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::audio::decode::decode_file;
use crate::background::soundscape::catalog::Catalog;
use crate::background::soundscape::descriptors::mono;
use crate::background::soundscape::plan::plan;
use crate::background::soundscape::profile::{FEATURES, Profile, distance};
use crate::background::soundscape::{SceneInput, render};

/// Longest window profiled, seconds.
pub(crate) const WINDOW_S: f64 = 4.0;
/// Most windows taken from one reference file (long ambiences would
/// otherwise outvote short ones).
const MAX_WINDOWS: usize = 10;
/// Nearest reference windows averaged into a class's distance.
const NEAREST: usize = 3;
/// Longest reference file read, seconds.
const LONGEST_REFERENCE_S: f64 = 600.0;
/// Seconds of each render, and its seeds.
pub(crate) const RENDER_S: f64 = 16.0;
pub(crate) const SEEDS: [u64; 3] = [1, 2, 3];
const RATE: u32 = 48_000;

/// The classes the bench knows, with the caption vivid renders for each
/// (what a describer would say of a scene of that sound).
pub(crate) const CLASSES: [(&str, &str); 12] = [
    ("rain", "steady rain falling"),
    ("wind", "a strong wind blowing"),
    ("river", "a river flowing"),
    ("surf", "waves breaking on the shore"),
    ("thunder", "thunder rolling in the distance"),
    ("birds", "songbirds singing"),
    ("crickets", "crickets chirping"),
    ("fire", "a crackling fire"),
    ("anvil", "a blacksmith hammering on an anvil"),
    ("footsteps", "footsteps on stone"),
    ("hooves", "a horse trotting on cobbles"),
    ("bells", "a church bell ringing"),
];

/// One profiled window of a sound.
struct Window {
    class: String,
    /// The file (or render) it came from.
    origin: String,
    profile: Profile,
}

/// One class's result.
#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub class: String,
    pub caption: String,
    pub reference_files: usize,
    pub(crate) reference_windows: usize,
    /// Reference files of this class that the others tell to this class.
    pub references_recognized: usize,
    /// The reference files the others tell to another class, and which.
    pub(crate) references_misjudged: Vec<(String, String)>,
    /// The class vivid's render lies nearest.
    pub vivid_nearest: String,
    /// Distance of vivid's render to its own class and to the nearest
    /// other class.
    pub own_distance: f64,
    pub nearest_other: String,
    pub other_distance: f64,
    /// The descriptors where vivid's render differs most from this class's
    /// references (name, difference in spreads; positive: vivid's higher).
    pub largest_gaps: Vec<(String, f64)>,
    /// Each descriptor's mean over the real recordings and over vivid's
    /// render, in the descriptor's own unit (in [`FEATURES`]' order).
    pub(crate) real_descriptors: Vec<f64>,
    pub(crate) vivid_descriptors: Vec<f64>,
    /// The render's sources, as played.
    pub sources: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RealismReport {
    pub features: Vec<String>,
    pub classes: Vec<ClassResult>,
}

/// `x` without the near-silence (50 dB under its loudest 10 ms) that
/// game sound files pad their one-shots with: the padding is not part of
/// the sound.
fn trimmed(x: &[f32]) -> &[f32] {
    let hop = (RATE / 100) as usize;
    let levels: Vec<f32> = x
        .chunks(hop)
        .map(|c| c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32)
        .collect();
    let loudest = levels.iter().copied().fold(0.0, f32::max);
    let floor = loudest * 1e-5;
    let first = levels.iter().position(|l| *l > floor).unwrap_or(0);
    let last = levels.iter().rposition(|l| *l > floor).unwrap_or(0);
    &x[first * hop..((last + 1) * hop).min(x.len())]
}

/// Profiles windows of a mono sound.
fn windows_of(x: &[f32], class: &str, origin: &str, limit: usize) -> Vec<Window> {
    let x = trimmed(x);
    let size = (WINDOW_S * f64::from(RATE)) as usize;
    let count = (x.len() / size).clamp(1, limit);
    (0..count)
        .filter_map(|i| {
            let end = if count == 1 { x.len() } else { (i + 1) * size };
            Profile::of(&x[i * size..end.min(x.len())], RATE)
        })
        .map(|profile| Window {
            class: class.to_string(),
            origin: origin.to_string(),
            profile,
        })
        .collect()
}

/// Every reference recording under `dir`, profiled.
fn load_references(dir: &Path) -> Result<Vec<Window>> {
    let known: Vec<&str> = CLASSES.iter().map(|(c, _)| *c).collect();
    let mut windows = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the references folder {}", dir.display()))?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let class = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !known.contains(&class.as_str()) {
            bail!(
                "{}: `{class}` is not a class the bench knows (use one of {})",
                folder.display(),
                known.join(", ")
            );
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let decoded = decode_file(&file, LONGEST_REFERENCE_S)?.at_rate(RATE)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            windows.extend(windows_of(&decoded.mono(), &class, &name, MAX_WINDOWS));
        }
    }
    if windows.is_empty() {
        bail!(
            "{} holds no recordings: it needs one folder a class (rain/, wind/, ...) of WAV, FLAC or Ogg files (tests/references DIR fetches a set)",
            dir.display()
        );
    }
    Ok(windows)
}

/// Each value's mean and spread over the references.
struct Scale {
    mean: Vec<f64>,
    spread: Vec<f64>,
}

impl Scale {
    fn of(windows: &[Window]) -> Scale {
        let n = windows.len().max(1) as f64;
        let mean: Vec<f64> = (0..FEATURES.len())
            .map(|f| windows.iter().map(|w| w.profile.values[f]).sum::<f64>() / n)
            .collect();
        let spread = (0..FEATURES.len())
            .map(|f| {
                let var = windows
                    .iter()
                    .map(|w| (w.profile.values[f] - mean[f]).powi(2))
                    .sum::<f64>()
                    / n;
                var.sqrt().max(1e-6)
            })
            .collect();
        Scale { mean, spread }
    }

    fn standard(&self, p: &Profile) -> Vec<f64> {
        p.values
            .iter()
            .enumerate()
            .map(|(f, v)| (v - self.mean[f]) / self.spread[f])
            .collect()
    }
}

/// A sound's distance to each class: for each of its windows, the mean
/// distance to the class's [`NEAREST`] nearest windows (leaving out the
/// windows of `exclude`), averaged over the sound's windows.
fn class_distances(
    sound: &[Vec<f64>],
    references: &[(String, String, Vec<f64>)],
    exclude: Option<&str>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let classes: std::collections::BTreeSet<&String> =
        references.iter().map(|(c, _, _)| c).collect();
    for class in classes {
        let mut total = 0.0;
        for window in sound {
            let mut d: Vec<f64> = references
                .iter()
                .filter(|(c, o, _)| c == class && Some(o.as_str()) != exclude)
                .map(|(_, _, r)| distance(window, r))
                .collect();
            if d.is_empty() {
                total = f64::INFINITY;
                break;
            }
            d.sort_by(f64::total_cmp);
            let k = d.len().min(NEAREST);
            total += d[..k].iter().sum::<f64>() / k as f64;
        }
        out.insert(class.clone(), total / sound.len().max(1) as f64);
    }
    out
}

fn nearest(distances: &BTreeMap<String, f64>, except: Option<&str>) -> (String, f64) {
    distances
        .iter()
        .filter(|(c, _)| Some(c.as_str()) != except)
        .fold((String::new(), f64::INFINITY), |best, (c, d)| {
            if *d < best.1 { (c.clone(), *d) } else { best }
        })
}

/// Renders a class's caption as `vivid background` would, three seeds.
pub(crate) fn render_caption(caption: &str, seed: u64) -> (Vec<f32>, Vec<String>) {
    let input = SceneInput {
        caption: caption.to_string(),
        ..SceneInput::default()
    };
    let scene = plan(Catalog::builtin(), &input, seed);
    let sources = scene.layers.iter().map(|l| l.source.clone()).collect();
    (mono(&render(&scene, RENDER_S), 2), sources)
}

/// Runs the comparison over the references in `dir`.
pub fn compare(dir: &Path) -> Result<RealismReport> {
    let windows = load_references(dir)?;
    let scale = Scale::of(&windows);
    let references: Vec<(String, String, Vec<f64>)> = windows
        .iter()
        .map(|w| {
            (
                w.class.clone(),
                w.origin.clone(),
                scale.standard(&w.profile),
            )
        })
        .collect();
    let mut classes = Vec::new();
    for (class, caption) in CLASSES {
        let own: Vec<&(String, String, Vec<f64>)> =
            references.iter().filter(|(c, _, _)| c == class).collect();
        if own.is_empty() {
            continue;
        }
        let files: std::collections::BTreeSet<&String> = own.iter().map(|(_, o, _)| o).collect();
        let misjudged: Vec<(String, String)> = files
            .iter()
            .filter_map(|file| {
                let held: Vec<Vec<f64>> = own
                    .iter()
                    .filter(|(_, o, _)| o == *file)
                    .map(|(_, _, v)| v.clone())
                    .collect();
                let judged = nearest(&class_distances(&held, &references, Some(file)), None).0;
                (judged != class).then(|| ((*file).clone(), judged))
            })
            .collect();
        let mut rendered = Vec::new();
        let mut sources = Vec::new();
        for seed in SEEDS {
            let (audio, played) = render_caption(caption, seed);
            sources = played;
            rendered.extend(windows_of(&audio, class, "vivid", usize::MAX));
        }
        let sound: Vec<Vec<f64>> = rendered
            .iter()
            .map(|w| scale.standard(&w.profile))
            .collect();
        let distances = class_distances(&sound, &references, None);
        let (vivid_nearest, _) = nearest(&distances, None);
        let (nearest_other, other_distance) = nearest(&distances, Some(class));
        classes.push(ClassResult {
            class: class.to_string(),
            caption: caption.to_string(),
            reference_files: files.len(),
            reference_windows: own.len(),
            references_recognized: files.len() - misjudged.len(),
            references_misjudged: misjudged,
            vivid_nearest,
            own_distance: distances.get(class).copied().unwrap_or(f64::INFINITY),
            nearest_other,
            other_distance,
            largest_gaps: largest_gaps(&sound, &own),
            real_descriptors: mean_profile(windows.iter().filter(|w| w.class == class)),
            vivid_descriptors: mean_profile(rendered.iter()),
            sources,
        });
    }
    Ok(RealismReport {
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        classes,
    })
}

/// The three descriptors where the render's mean differs most from the
/// class's references' mean, in spreads.
fn largest_gaps(sound: &[Vec<f64>], own: &[&(String, String, Vec<f64>)]) -> Vec<(String, f64)> {
    let mean = |rows: &mut dyn Iterator<Item = &Vec<f64>>, f: usize| -> f64 {
        let values: Vec<f64> = rows.map(|r| r[f]).collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let mut gaps: Vec<(String, f64)> = (0..FEATURES.len())
        .map(|f| {
            let ours = mean(&mut sound.iter(), f);
            let theirs = mean(&mut own.iter().map(|(_, _, v)| v), f);
            (FEATURES[f].to_string(), ours - theirs)
        })
        .collect();
    gaps.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    gaps.truncate(3);
    gaps
}

/// Each descriptor's mean over some windows.
fn mean_profile<'w>(windows: impl Iterator<Item = &'w Window>) -> Vec<f64> {
    let mut sum = vec![0f64; FEATURES.len()];
    let mut count = 0usize;
    for w in windows {
        sum.iter_mut()
            .zip(&w.profile.values)
            .for_each(|(s, v)| *s += v);
        count += 1;
    }
    sum.iter().map(|s| s / count.max(1) as f64).collect()
}
