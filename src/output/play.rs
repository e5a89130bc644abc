//! Playback through ALSA: one small [`Sink`] trait, an ALSA sink that
//! negotiates the device's rate, sample format and channels, recovers from
//! underruns and reopens a device that disappeared (a USB speaker pulled
//! out) with backoff, and a player thread fed by the [`Transport`]'s queue
//! (the service's play queue), which pauses, resumes and cuts with a fade.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

pub use super::transport::{Control, Transport, TransportStatus};
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlayError {
    #[error(
        "cannot open sound device \"{device}\": {reason} (check `aplay -L` and playback.device; `vivid doctor` tests it)"
    )]
    Open { device: String, reason: String },
    #[error("sound device \"{device}\" failed and did not come back within {seconds} s: {reason}")]
    Gone {
        device: String,
        seconds: u64,
        reason: String,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("resampling for the device failed: {0}")]
    Resample(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackSettings {
    /// ALSA PCM name.
    pub device: String,
    /// Linear gain, 0 to 1.
    pub volume: f32,
    /// How long to keep trying to reopen a device that failed.
    pub(crate) reopen_for: Duration,
}

impl Default for PlaybackSettings {
    fn default() -> Self {
        Self {
            device: "default".into(),
            volume: 1.0,
            reopen_for: Duration::from_secs(30),
        }
    }
}

/// Where audio goes.
pub trait Sink {
    /// Plays `samples` (interleaved frames of `channels`) at `rate`,
    /// returning when all are queued.
    fn write(&mut self, samples: &[f32], rate: u32, channels: u16) -> Result<(), PlayError>;
    /// Waits until everything queued has been played.
    fn finish(&mut self) -> Result<(), PlayError>;
}

/// What the device accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub rate: u32,
    pub channels: u32,
    pub format: SampleFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    S16,
    S32,
    F32,
}

pub struct AlsaSink {
    settings: PlaybackSettings,
    pcm: Option<(PCM, Negotiated)>,
    counters: Arc<PlaybackCounters>,
    /// Asked between periods, when a player drives the sink.
    transport: Option<Arc<Transport>>,
}

/// What went wrong with the sound device since the player started, for
/// the service's metrics.
#[derive(Debug, Default)]
pub struct PlaybackCounters {
    /// Underruns recovered from (playback fell behind the device).
    pub underruns: AtomicU64,
    /// Times the device was opened again after it failed mid-play.
    pub reopens: AtomicU64,
}

/// Frames written per call.
const PERIOD_FRAMES: usize = 2048;

impl AlsaSink {
    pub fn new(settings: PlaybackSettings) -> Self {
        Self::counted(settings, Arc::default())
    }

    /// A sink that counts its underruns and reopenings into `counters`.
    pub fn counted(settings: PlaybackSettings, counters: Arc<PlaybackCounters>) -> Self {
        Self {
            settings,
            pcm: None,
            counters,
            transport: None,
        }
    }

    /// A sink that pauses and cuts as `transport` says between periods.
    pub(crate) fn controlled(mut self, transport: Arc<Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Between two periods: what the transport says, with a pause waited
    /// out here. Returns the position to go on from, or None to end the
    /// narration (after writing its fade-out).
    fn obey_transport(&mut self, audio: &[f32], position: usize, channels: usize) -> Option<usize> {
        let Some(transport) = self.transport.clone() else {
            // Not driven by a player: nothing can interrupt.
            return Some(position);
        };
        let mut control = transport.control();
        let mut position = position;
        if control == Control::Pause {
            // Stop at once; what the device still held is played again
            // on resume, so nothing is skipped.
            if let Some((pcm, _)) = &self.pcm {
                let held = pcm.delay().unwrap_or(0).max(0) as usize;
                let _ = pcm.drop();
                position = position.saturating_sub(held);
            }
            tracing::info!("playback paused");
            control = transport.wait_while_paused();
            if let Some((pcm, _)) = &self.pcm {
                let _ = pcm.prepare();
            }
            if let Control::Cut(_) = control {
                // Paused, then stopped: nothing sounds, no fade needed.
                return None;
            }
            tracing::info!("playback resumed");
        }
        match control {
            Control::Go | Control::Pause => Some(position),
            Control::Cut(fade) => {
                self.write_fade(audio, position, channels, fade);
                None
            }
        }
    }

    /// Writes the next `fade` of `audio` fading to silence (the end of an
    /// interrupted narration). A device error here only ends it sooner.
    fn write_fade(&mut self, audio: &[f32], position: usize, channels: usize, fade: Duration) {
        let Some((pcm, negotiated)) = &self.pcm else {
            return;
        };
        let frames_left = audio.len() / channels - position;
        let fade_frames =
            ((fade.as_secs_f64() * f64::from(negotiated.rate)) as usize).min(frames_left);
        let mut tail = audio[position * channels..(position + fade_frames) * channels].to_vec();
        super::transport::fade_out(&mut tail, channels, fade_frames);
        let mut written = 0;
        while written < fade_frames {
            let chunk =
                &tail[written * channels..(written + PERIOD_FRAMES).min(fade_frames) * channels];
            match Self::write_frames(pcm, *negotiated, chunk, &self.counters) {
                Ok(frames) => written += frames,
                Err(_) => return,
            }
        }
        tracing::info!(fade_ms = fade.as_millis(), "narration interrupted");
    }

    /// The device's accepted parameters, once open.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.pcm.as_ref().map(|(_, n)| *n)
    }

    fn open(&self, rate: u32, channels: u16) -> Result<(PCM, Negotiated), PlayError> {
        let fail = |reason: String| PlayError::Open {
            device: self.settings.device.clone(),
            reason,
        };
        let pcm = PCM::new(&self.settings.device, Direction::Playback, false)
            .map_err(|e| fail(e.to_string()))?;
        // Ask for ~200 ms of buffer in ~50 ms periods. Some devices (JACK,
        // for one) cannot make that buffer from whole periods: they get
        // the device's own buffer size instead of no sound at all.
        let format = Self::set_hw_params(&pcm, rate, channels, true)
            .or_else(|first| {
                tracing::debug!("the device refused a 200 ms buffer ({first}); using its own");
                Self::set_hw_params(&pcm, rate, channels, false)
            })
            .map_err(fail)?;
        // Read back what the device settled on: the `_near` setters can
        // report the value asked for while the device keeps its own (a
        // fixed-rate device behind an ALSA plugin does), and playing at a
        // rate the device is not running at changes the pitch.
        let (negotiated, buffer_frames) = {
            let current = pcm
                .hw_params_current()
                .map_err(|e| fail(format!("reading back its parameters: {e}")))?;
            let negotiated = Negotiated {
                rate: current.get_rate().map_err(|e| fail(e.to_string()))?,
                channels: current.get_channels().map_err(|e| fail(e.to_string()))?,
                format,
            };
            (negotiated, current.get_buffer_size().unwrap_or(0))
        };
        let buffer_ms = buffer_frames as f64 * 1000.0 / f64::from(negotiated.rate.max(1));
        tracing::info!(
            device = %self.settings.device,
            rate = negotiated.rate,
            channels = negotiated.channels,
            format = ?negotiated.format,
            buffer_ms = buffer_ms.round(),
            "sound device open"
        );
        Ok((pcm, negotiated))
    }

    /// Chooses access, sample format, channels, rate and (with
    /// `small_buffer`) the buffer size, and applies them.
    fn set_hw_params(
        pcm: &PCM,
        rate: u32,
        channels: u16,
        small_buffer: bool,
    ) -> Result<SampleFormat, String> {
        let hw = HwParams::any(pcm).map_err(|e| e.to_string())?;
        hw.set_access(Access::RWInterleaved)
            .map_err(|e| format!("interleaved access: {e}"))?;
        // The first format the device takes, best first.
        let format = [
            (Format::s16(), SampleFormat::S16),
            (Format::s32(), SampleFormat::S32),
            (Format::float(), SampleFormat::F32),
        ]
        .into_iter()
        .find(|(f, _)| hw.test_format(*f).is_ok())
        .ok_or_else(|| "it takes none of S16, S32 or FLOAT samples".to_string())?;
        hw.set_format(format.0).map_err(|e| e.to_string())?;
        hw.set_channels_near(u32::from(channels.max(1)))
            .map_err(|e| e.to_string())?;
        hw.set_rate_near(rate, ValueOr::Nearest)
            .map_err(|e| e.to_string())?;
        if small_buffer {
            hw.set_period_time_near(50_000, ValueOr::Nearest)
                .map_err(|e| e.to_string())?;
            hw.set_buffer_time_near(200_000, ValueOr::Nearest)
                .map_err(|e| e.to_string())?;
        }
        pcm.hw_params(&hw).map_err(|e| e.to_string())?;
        Ok(format.1)
    }

    /// Opens the device, retrying with backoff until `reopen_for` has passed.
    fn open_with_backoff(&mut self, rate: u32, channels: u16) -> Result<(), PlayError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(250);
        loop {
            match self.open(rate, channels) {
                Ok(opened) => {
                    self.pcm = Some(opened);
                    return Ok(());
                }
                Err(e) if started.elapsed() + wait > self.settings.reopen_for => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!("{e}; trying again in {:.1} s", wait.as_secs_f32());
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(4));
                }
            }
        }
    }

    /// Writes interleaved frames (already in the device's channels),
    /// recovering from underruns; a device error other than an underrun
    /// closes the device (the caller reopens).
    fn write_frames(
        pcm: &PCM,
        n: Negotiated,
        interleaved: &[f32],
        counters: &PlaybackCounters,
    ) -> Result<usize, alsa::Error> {
        let written = match n.format {
            SampleFormat::S16 => {
                let data: Vec<i16> = interleaved
                    .iter()
                    // The inverse of reading 16-bit WAV samples (v / 32768),
                    // so a 16-bit file reaches a 16-bit device unchanged.
                    .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
                    .collect();
                pcm.io_i16()?.writei(&data)
            }
            SampleFormat::S32 => {
                let data: Vec<i32> = interleaved
                    .iter()
                    .map(|s| {
                        (f64::from(*s) * 2_147_483_647.0).clamp(-2_147_483_648.0, 2_147_483_647.0)
                            as i32
                    })
                    .collect();
                pcm.io_i32()?.writei(&data)
            }
            SampleFormat::F32 => pcm.io_f32()?.writei(interleaved),
        };
        match written {
            Ok(frames) => Ok(frames),
            Err(e) => {
                // EPIPE (underrun: playback fell behind the device) and
                // ESTRPIPE (suspend) are recoverable; the frames are
                // written again from where they were.
                pcm.try_recover(e, true)?;
                counters.underruns.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("sound device underrun ({e}): playback fell behind; recovered");
                Ok(0)
            }
        }
    }
}

impl Sink for AlsaSink {
    fn write(&mut self, samples: &[f32], rate: u32, channels: u16) -> Result<(), PlayError> {
        if self.pcm.is_none() {
            self.open_with_backoff(rate, channels)?;
        }
        let Some((_, negotiated)) = &self.pcm else {
            return Ok(());
        };
        let negotiated = *negotiated;
        let channels = usize::from(channels.max(1));
        let planar: Vec<Vec<f32>> = (0..channels)
            .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
            .collect();
        let mut planar = if negotiated.rate == rate {
            planar
        } else {
            planar
                .iter()
                .map(|p| crate::audio::resample::resample(p, rate, negotiated.rate))
                .collect::<Result<_, _>>()
                .map_err(|e| PlayError::Resample(e.to_string()))?
        };
        let volume = self.settings.volume.clamp(0.0, 1.0);
        if volume < 1.0 {
            planar.iter_mut().flatten().for_each(|s| *s *= volume);
        }
        let device_channels = negotiated.channels.max(1) as usize;
        let audio = crate::audio::channels::to_device_channels(&planar, device_channels);
        let frames = audio.len() / device_channels;
        let mut position = 0;
        let mut failing_since: Option<Instant> = None;
        let mut retry_wait = Duration::from_millis(100);
        while position < frames {
            match self.obey_transport(&audio, position, device_channels) {
                Some(go_on_from) => position = go_on_from,
                None => return Ok(()),
            }
            let end = (position + PERIOD_FRAMES).min(frames);
            let chunk = &audio[position * device_channels..end * device_channels];
            let result = match &self.pcm {
                Some((pcm, n)) if n.channels as usize == device_channels => {
                    Self::write_frames(pcm, *n, chunk, &self.counters)
                }
                Some(_) => Err(alsa::Error::unsupported(
                    "device reopened with other channels",
                )),
                None => Err(alsa::Error::unsupported("device closed")),
            };
            match result {
                Ok(written) => {
                    position += written;
                    failing_since = None;
                    retry_wait = Duration::from_millis(100);
                }
                Err(e) => {
                    // The device went away: close it and reopen, resuming
                    // where playback stopped.
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    self.pcm = None;
                    if since.elapsed() > self.settings.reopen_for {
                        return Err(PlayError::Gone {
                            device: self.settings.device.clone(),
                            seconds: self.settings.reopen_for.as_secs(),
                            reason: e.to_string(),
                        });
                    }
                    tracing::warn!(
                        device = %self.settings.device,
                        "sound device failed ({e}); reopening in {:.1} s",
                        retry_wait.as_secs_f32()
                    );
                    // A device that opens but fails every write must not
                    // be retried in a tight loop.
                    std::thread::sleep(retry_wait);
                    retry_wait = (retry_wait * 2).min(Duration::from_secs(4));
                    self.open_with_backoff(negotiated.rate, negotiated.channels as u16)?;
                    self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), PlayError> {
        if let Some((pcm, _)) = &self.pcm {
            // A drain error means the device went away at the very end;
            // nothing is left to play, so it is only logged. The device
            // stays open (prepared) for the next item of a queue.
            let ready = pcm.drain().and_then(|()| pcm.prepare());
            if let Err(e) = ready {
                tracing::warn!("draining the sound device: {e}");
                self.pcm = None;
            }
        }
        Ok(())
    }
}

/// A WAV file's samples (interleaved, in [-1, 1]), rate and channels.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32, u16), PlayError> {
    let fail = |source: hound::Error| PlayError::Read {
        path: path.to_path_buf(),
        source,
    };
    let reader = hound::WavReader::open(path).map_err(fail)?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(fail)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(fail)?
        }
    };
    Ok((interleaved, spec.sample_rate, spec.channels.max(1)))
}

/// Plays a WAV file on `sink` to the end.
pub fn play_file(sink: &mut dyn Sink, path: &Path) -> Result<(), PlayError> {
    let (samples, rate, channels) = read_wav(path)?;
    sink.write(&samples, rate, channels)?;
    sink.finish()
}

/// The outcome of one queued item.
#[derive(Debug)]
pub struct Played {
    pub path: PathBuf,
    pub result: Result<(), PlayError>,
}

/// A player thread that plays the [`Transport`]'s queue in order; a
/// failure is reported and the next item plays.
pub struct Player {
    transport: Arc<Transport>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<PlaybackCounters>,
}

impl Player {
    /// Starts the thread; each finished item is sent to `done`.
    pub fn spawn(settings: PlaybackSettings, done: mpsc::Sender<Played>) -> Player {
        let transport = Arc::new(Transport::default());
        let counters = Arc::new(PlaybackCounters::default());
        let counted = Arc::clone(&counters);
        let queue = Arc::clone(&transport);
        let thread = std::thread::Builder::new()
            .name("vivid-player".into())
            .spawn(move || {
                let mut sink = AlsaSink::counted(settings, counted).controlled(Arc::clone(&queue));
                while let Some(path) = queue.next_item() {
                    let result = play_file(&mut sink, &path);
                    queue.finished(&path);
                    if let Err(e) = &result {
                        tracing::warn!(
                            "playback of {} failed: {}",
                            path.display(),
                            crate::error_chain(e)
                        );
                    }
                    if done.send(Played { path, result }).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Player {
            transport,
            thread,
            counters,
        }
    }

    /// Underruns and reopenings so far.
    pub(crate) fn counters(&self) -> &PlaybackCounters {
        &self.counters
    }

    /// The queue and controls, for the control socket.
    pub(crate) fn transport(&self) -> Arc<Transport> {
        Arc::clone(&self.transport)
    }

    /// Queues a file; false when the queue is full or the player stopped.
    pub fn enqueue(&self, path: PathBuf) -> bool {
        self.transport.enqueue(path)
    }

    /// Plays what is queued, then stops the thread.
    pub fn finish(mut self) {
        self.transport.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        // The thread plays what is queued, then ends by itself.
        self.transport.close();
    }
}
