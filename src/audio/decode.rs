//! Sound files into samples, with symphonia: WAV, FLAC and Ogg Vorbis, any
//! sample format and channel count, decoded whole into planar `f32`.
//! Damage is an error, never a shorter sound: a file that ends before the
//! length its header gives, or a packet that does not decode, is named.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::AudioError;
use super::resample::resample;

/// A decoded sound: one `Vec` per channel, all the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub rate: u32,
    pub channels: Vec<Vec<f32>>,
}

impl Decoded {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.rate.max(1))
    }

    /// The channels averaged into one.
    pub fn mono(&self) -> Vec<f32> {
        let count = self.channels.len().max(1) as f32;
        (0..self.frames())
            .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / count)
            .collect()
    }

    /// The same sound at `rate` Hz.
    pub fn at_rate(self, rate: u32) -> Result<Decoded, AudioError> {
        if self.rate == rate {
            return Ok(self);
        }
        let channels = self
            .channels
            .iter()
            .map(|c| resample(c, self.rate, rate))
            .collect::<Result<_, _>>()?;
        Ok(Decoded { rate, channels })
    }
}

/// Reads `path` whole; refuses files longer than `limit_s` seconds before
/// decoding them (their header's length), so memory stays bounded.
pub fn decode_file(path: &Path, limit_s: f64) -> Result<Decoded, AudioError> {
    let mut track = open_track(path)?;
    if let Some(frames) = track.expected_frames {
        let seconds = frames as f64 / f64::from(track.rate);
        if seconds > limit_s {
            return Err(AudioError::TooLong {
                path: path.to_path_buf(),
                seconds,
                limit_s,
            });
        }
    }
    let channels = decode_track(path, &mut track, limit_s)?;
    check_decoded(path, &track, &channels)?;
    Ok(Decoded {
        rate: track.rate,
        channels,
    })
}

/// An opened file's audio track, ready to decode.
struct Track {
    format: Box<dyn symphonia::core::formats::FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    id: u32,
    rate: u32,
    /// The length its header gives, when it gives one.
    expected_frames: Option<u64>,
}

fn format_error(path: &Path, reason: String) -> AudioError {
    AudioError::Format {
        path: path.to_path_buf(),
        reason,
    }
}

fn damaged(path: &Path, reason: String) -> AudioError {
    AudioError::Damaged {
        path: path.to_path_buf(),
        reason,
    }
}

/// Opens `path` and finds its first audio track and a decoder for it.
fn open_track(path: &Path) -> Result<Track, AudioError> {
    let file = File::open(path).map_err(|source| AudioError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format_error(path, e.to_string()))?;
    let format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| format_error(path, "no audio track".into()))?;
    let (id, params) = (track.id, track.codec_params.clone());
    let rate = params
        .sample_rate
        .ok_or_else(|| format_error(path, "no sample rate".into()))?;
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| format_error(path, e.to_string()))?;
    Ok(Track {
        format,
        decoder,
        id,
        rate,
        expected_frames: params.n_frames,
    })
}

/// Decodes the track to planar samples, stopping past `limit_s` seconds.
fn decode_track(path: &Path, track: &mut Track, limit_s: f64) -> Result<Vec<Vec<f32>>, AudioError> {
    let limit_frames = (limit_s * f64::from(track.rate)) as usize;
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match track.format.next_packet() {
            Ok(packet) => packet,
            // The normal end of a stream.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(damaged(path, e.to_string())),
        };
        if packet.track_id() != track.id {
            continue;
        }
        let decoded = track
            .decoder
            .decode(&packet)
            .map_err(|e| damaged(path, e.to_string()))?;
        let spec = *decoded.spec();
        let count = spec.channels.count().max(1);
        let buffer =
            buffer.get_or_insert_with(|| SampleBuffer::<f32>::new(decoded.capacity() as u64, spec));
        if buffer.capacity() < decoded.capacity() * count {
            *buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        }
        buffer.copy_interleaved_ref(decoded);
        if channels.len() != count {
            channels = vec![Vec::new(); count];
        }
        for frame in buffer.samples().chunks_exact(count) {
            for (channel, sample) in channels.iter_mut().zip(frame) {
                channel.push(*sample);
            }
        }
        if channels[0].len() > limit_frames {
            return Err(AudioError::TooLong {
                path: path.to_path_buf(),
                seconds: channels[0].len() as f64 / f64::from(track.rate),
                limit_s,
            });
        }
    }
    Ok(channels)
}

/// Refuses what decoded to nothing, ends before its header's length, or
/// holds samples that are not numbers.
fn check_decoded(path: &Path, track: &Track, channels: &[Vec<f32>]) -> Result<(), AudioError> {
    let frames = channels.first().map_or(0, Vec::len);
    if frames == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let rate = track.rate;
    // A file cut short: fewer frames than its header promised (a few
    // frames of codec delay aside).
    if let Some(expected) = track.expected_frames
        && (frames as u64) + u64::from(rate / 10) < expected
    {
        return Err(damaged(
            path,
            format!(
                "it ends after {:.2} s of the {:.2} s its header gives (truncated?)",
                frames as f64 / f64::from(rate),
                expected as f64 / f64::from(rate)
            ),
        ));
    }
    if channels.iter().flatten().any(|v| !v.is_finite()) {
        return Err(damaged(
            path,
            "it holds samples that are not numbers".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, frames: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            let v = (0.5 * (i as f32 * 0.05).sin() * 32_767.0) as i16;
            for _ in 0..channels {
                writer.write_sample(v).unwrap();
            }
        }
        writer.finalize().unwrap();
    }

    #[test]
    fn reads_a_wav_and_converts_its_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        write_wav(&path, 22_050, 2, 22_050);
        let decoded = decode_file(&path, 60.0).unwrap();
        assert_eq!((decoded.rate, decoded.channels.len()), (22_050, 2));
        assert_eq!(decoded.frames(), 22_050);
        let peak = decoded.channels[0].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.01, "peak {peak}");
        let at48 = decoded.at_rate(48_000).unwrap();
        assert_eq!(at48.frames(), 48_000);
    }

    #[test]
    fn damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            decode_file(&empty, 60.0),
            Err(AudioError::Empty { .. })
        ));
        let text = dir.path().join("notes.wav");
        std::fs::write(&text, b"this is not a sound file at all, just words").unwrap();
        assert!(matches!(
            decode_file(&text, 60.0),
            Err(AudioError::Format { .. })
        ));
        let long = dir.path().join("long.wav");
        write_wav(&long, 8_000, 1, 8_000 * 5);
        assert!(matches!(
            decode_file(&long, 2.0),
            Err(AudioError::TooLong { .. })
        ));
        let cut = dir.path().join("cut.wav");
        let bytes = std::fs::read(&long).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = decode_file(&cut, 60.0).unwrap_err();
        assert!(matches!(err, AudioError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("cut.wav"), "{err}");
    }
}
