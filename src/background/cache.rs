//! Finished backgrounds stored by everything that made them, so a repeated
//! job (the same text on a kiosk every day) reuses the file instead of
//! running the UNet again.
//!
//! Each entry is `KEY.wav` (32-bit float, exactly what the engine made) and
//! `KEY.json` (what it was made from, for people). KEY is the sha256 of the
//! bundle's identity and every generation setting. A hit refreshes the
//! file's modification time; when the folder grows past its byte limit the
//! least recently used entries are removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BackgroundError;
use crate::fsutil::AtomicFile;

/// Everything that decides a background's samples.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheKey {
    /// The engine's identity (a bundle's id).
    pub engine: String,
    /// The engine's recipe for the scene.
    pub recipe: serde_json::Value,
    pub seconds: f64,
    /// Bumped when the engine's output for the same settings changes.
    pub(crate) engine_version: u32,
}

/// The engine version the cache keys carry.
pub(crate) const ENGINE_VERSION: u32 = 2;

impl CacheKey {
    pub(crate) fn digest(&self) -> String {
        // serde_json writes struct fields in declaration order; this is a
        // stable, unambiguous encoding of the key.
        let encoded = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&encoded))
    }
}

#[derive(Debug, Clone)]
pub struct BackgroundCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl BackgroundCache {
    /// A cache in `dir` holding at most `max_bytes` (0 turns it off).
    pub fn new(dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            max_bytes,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wav_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.wav", key.digest()))
    }

    /// The stored background for `key` (samples, rate, channels), if
    /// there is a readable one.
    pub fn get(&self, key: &CacheKey) -> Option<(Vec<f32>, u32, u16)> {
        if !self.enabled() {
            return None;
        }
        let path = self.wav_path(key);
        if !path.is_file() {
            return None;
        }
        let read = hound::WavReader::open(&path).and_then(|reader| {
            let spec = reader.spec();
            let samples: Result<Vec<f32>, _> = reader.into_samples::<f32>().collect();
            samples.map(|s| (s, spec.sample_rate, spec.channels))
        });
        match read {
            Ok((samples, rate, channels)) => {
                // Refreshing the time is what makes eviction least recently
                // *used*; failing to is harmless.
                if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                tracing::info!(file = %path.display(), "background taken from the cache");
                Some((samples, rate, channels))
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), "unreadable cache entry removed: {e}");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a background and evicts old entries past the limit.
    pub(crate) fn put(
        &self,
        key: &CacheKey,
        samples: &[f32],
        rate: u32,
        channels: u16,
    ) -> Result<PathBuf, BackgroundError> {
        let path = self.wav_path(key);
        if !self.enabled() {
            return Ok(path);
        }
        let fail = |path: &Path, source: std::io::Error| BackgroundError::Cache {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = std::io::Cursor::new(Vec::with_capacity(samples.len() * 4 + 64));
        {
            let spec = hound::WavSpec {
                channels: channels.max(1),
                sample_rate: rate,
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
            };
            let mut writer = hound::WavWriter::new(&mut bytes, spec)
                .map_err(|e| fail(&path, std::io::Error::other(e)))?;
            for &s in samples {
                writer
                    .write_sample(s)
                    .map_err(|e| fail(&path, std::io::Error::other(e)))?;
            }
            writer
                .finalize()
                .map_err(|e| fail(&path, std::io::Error::other(e)))?;
        }
        let write = |target: &Path, data: &[u8]| -> Result<(), BackgroundError> {
            let mut file = AtomicFile::create(target).map_err(|e| fail(target, e))?;
            file.write_all(data).map_err(|e| fail(target, e))?;
            file.commit().map_err(|e| fail(target, e))
        };
        write(&path, bytes.get_ref())?;
        let description = serde_json::to_vec_pretty(key).unwrap_or_default();
        write(&path.with_extension("json"), &description)?;
        self.evict(&path);
        Ok(path)
    }

    /// Bytes the cache's files take now.
    pub(crate) fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir).map_or(0, |entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
    }

    /// Removes least recently used entries until the folder is within its
    /// limit, never `keep`.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut wavs: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            total += meta.len();
            if path.extension().is_some_and(|e| e == "wav") {
                let sidecar = std::fs::metadata(path.with_extension("json")).map_or(0, |m| m.len());
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                wavs.push((used, meta.len() + sidecar, path));
            }
        }
        wavs.sort_by_key(|(used, _, _)| *used);
        for (_, bytes, path) in wavs {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                let _ = std::fs::remove_file(path.with_extension("json"));
                total = total.saturating_sub(bytes);
                tracing::debug!(file = %path.display(), "evicted from the background cache");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(caption: &str) -> CacheKey {
        CacheKey {
            engine: "b".into(),
            recipe: serde_json::json!({ "caption": caption, "seed": 1, "steps": 25 }),
            seconds: 1.0,
            engine_version: ENGINE_VERSION,
        }
    }

    #[test]
    fn every_setting_changes_the_key() {
        let base = key("rain");
        let mut variants = vec![key("rain ")];
        let mut k = base.clone();
        k.recipe["seed"] = serde_json::json!(2);
        variants.push(k);
        let mut k = base.clone();
        k.seconds = 1.5;
        variants.push(k);
        let mut k = base.clone();
        k.engine = "c".into();
        variants.push(k);
        for v in variants {
            assert_ne!(v.digest(), base.digest(), "{v:?}");
        }
        assert_eq!(base.digest(), key("rain").digest());
    }

    #[test]
    fn hits_return_the_samples_and_old_entries_are_evicted() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about two 1000-sample entries.
        let cache = BackgroundCache::new(dir.path(), 9_000);
        let samples: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin()).collect();
        assert!(cache.get(&key("a")).is_none());
        cache.put(&key("a"), &samples, 16_000, 1).unwrap();
        let (back, rate, _) = cache.get(&key("a")).unwrap();
        assert_eq!((back, rate), (samples.clone(), 16_000));
        let stereo = cache.put(&key("s"), &samples, 48_000, 2).unwrap();
        assert_eq!(
            cache.get(&key("s")).map(|(_, r, c)| (r, c)),
            Some((48_000, 2))
        );
        std::fs::remove_file(&stereo).unwrap();
        std::fs::remove_file(stereo.with_extension("json")).unwrap();
        let set_age = |k: &CacheKey, secs: u64| {
            let f = std::fs::File::options()
                .append(true)
                .open(cache.wav_path(k))
                .unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        cache.put(&key("b"), &samples, 16_000, 1).unwrap();
        set_age(&key("a"), 1000);
        set_age(&key("b"), 2000);
        // "a" is used again: now "b" is the least recently used.
        assert!(cache.get(&key("a")).is_some());
        cache.put(&key("c"), &samples, 16_000, 1).unwrap();
        assert!(
            cache.get(&key("b")).is_none(),
            "least recently used evicted"
        );
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("c")).is_some());
        // A damaged entry is a miss, and is removed.
        std::fs::write(cache.wav_path(&key("c")), b"RIFF junk").unwrap();
        assert!(cache.get(&key("c")).is_none());
        assert!(!cache.wav_path(&key("c")).exists());
    }
}
