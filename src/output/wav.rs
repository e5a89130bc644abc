//! WAV files, written atomically: a reader (or a power cut) never sees a
//! half-written file under the final name.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::fsutil::AtomicFile;

/// A WAV file that could not be written. hound's own errors are kept as
/// I/O errors so that a full disk stays recognisable (`ErrorKind::StorageFull`).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct WavError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn hound_io(e: hound::Error) -> std::io::Error {
    match e {
        hound::Error::IoError(io) => io,
        other => std::io::Error::other(other),
    }
}

/// A 16-bit WAV file written piece by piece, so a long narration is
/// never held whole in memory; it appears under its name on `finish`.
pub struct WavStream {
    path: PathBuf,
    file: AtomicFile,
    writer: hound::WavWriter<BufWriter<File>>,
    samples: u64,
    sample_rate: u32,
    channels: u16,
}

impl WavStream {
    /// A mono file.
    pub fn create(path: &Path, sample_rate: u32) -> Result<WavStream, WavError> {
        Self::create_channels(path, sample_rate, 1)
    }

    /// A file of `channels` interleaved channels.
    pub(crate) fn create_channels(
        path: &Path,
        sample_rate: u32,
        channels: u16,
    ) -> Result<WavStream, WavError> {
        let err = |source: std::io::Error| WavError {
            path: path.to_path_buf(),
            source,
        };
        let mut file = AtomicFile::create(path).map_err(err)?;
        // hound needs to own a seekable writer; a second handle to the same
        // open file shares its offset, and `file` keeps the commit logic.
        let handle = file.as_file().try_clone().map_err(err)?;
        let spec = hound::WavSpec {
            channels: channels.max(1),
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::new(BufWriter::new(handle), spec).map_err(|e| err(hound_io(e)))?;
        Ok(WavStream {
            path: path.to_path_buf(),
            file,
            writer,
            samples: 0,
            sample_rate,
            channels: channels.max(1),
        })
    }

    /// Appends samples in [-1, 1] (interleaved frames).
    pub fn write(&mut self, samples: &[f32]) -> Result<(), WavError> {
        for s in samples {
            // Same conversion as piper-tts: scale by 32767 and clip.
            let v = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
            self.writer.write_sample(v).map_err(|e| WavError {
                path: self.path.clone(),
                source: hound_io(e),
            })?;
        }
        self.samples += samples.len() as u64;
        Ok(())
    }

    /// Appends `seconds` of silence.
    pub fn write_silence(&mut self, seconds: f32) -> Result<(), WavError> {
        let n = (seconds.max(0.0) * self.sample_rate as f32).round() as usize;
        self.write(&vec![0.0; n * usize::from(self.channels)])
    }

    /// Seconds written so far.
    pub fn duration(&self) -> f64 {
        self.samples as f64 / f64::from(self.channels) / f64::from(self.sample_rate)
    }

    /// Completes the header, flushes to disk and moves the file into place.
    pub fn finish(self) -> Result<(), WavError> {
        let err = |source: std::io::Error| WavError {
            path: self.path.clone(),
            source,
        };
        self.writer.finalize().map_err(|e| err(hound_io(e)))?;
        self.file.commit().map_err(err)
    }
}

/// Writes samples in [-1, 1] (interleaved frames of `channels`) as a
/// 16-bit WAV file in one go.
pub fn write_wav_i16(
    path: &Path,
    samples: &[f32],
    sample_rate: u32,
    channels: u16,
) -> Result<(), WavError> {
    let mut wav = WavStream::create_channels(path, sample_rate, channels)?;
    wav.write(samples)?;
    wav.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_readable_wav_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.wav");
        let mut wav = WavStream::create(&path, 22050).unwrap();
        wav.write(&[0.0, 0.5, -1.0, 2.0]).unwrap();
        wav.write_silence(0.001).unwrap();
        assert!(!path.exists());
        wav.finish().unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 22050);
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(&samples[..4], &[0, 16383, -32767, 32767]);
        assert_eq!(samples.len(), 4 + 22);
    }
}
