//! The one place that turns the config and an [`Overrides`] (a command's
//! flags, a job file's requests) into each stage's settings: commands, the
//! renderer and the service all take their settings from here.

use super::{Config, Overrides, PromptChoice};
use crate::render::{RenderSettings, SpeechSettings};

impl Config {
    /// Everything a render runs with.
    pub fn render_settings(&self, o: &Overrides) -> RenderSettings {
        RenderSettings {
            speech: self.speech_settings(o),
            describe: self.describe_settings(o),
            vocabulary: o.vocabulary.unwrap_or(self.describe.vocabulary),
            sounds: o.sounds.clone(),
            place: o.place.clone(),
            background: self.background_settings(o),
            mix: self.mix_settings(),
        }
    }

    /// The describer's settings, its vocabulary left to the renderer
    /// (`auto` depends on the engine that opens).
    fn describe_settings(&self, o: &Overrides) -> crate::describe::DescribeSettings {
        use crate::describe::{DescribeSettings, PromptStyle, SceneBounds};
        let d = &self.describe;
        DescribeSettings {
            method: o.method.unwrap_or(d.method),
            model: o
                .describer_model
                .clone()
                .unwrap_or_else(|| self.describer_model.clone()),
            prompt: match d.prompt {
                PromptChoice::Auto => None,
                PromptChoice::Chat => Some(PromptStyle::Chat),
                PromptChoice::Completion => Some(PromptStyle::Completion),
            },
            caption: o
                .caption
                .clone()
                .or_else(|| Some(d.caption.clone()))
                .filter(|c| !c.trim().is_empty()),
            seed: o.describe_seed.unwrap_or(d.seed),
            temperature: d.temperature,
            timeout: std::time::Duration::from_secs_f32(d.timeout_s),
            scenes: SceneBounds {
                min_chars: d.min_scene_chars,
                max_chars: d.max_scene_chars,
            },
            vocabulary: None,
            embedder: Some(self.embedder_paths(o)),
            evidence: crate::describe::EvidenceParts::default(),
            threads: if self.system.threads == 0 {
                crate::compute::available_cores()
            } else {
                self.system.threads
            },
        }
    }

    /// The describer's settings where no engine opens (`vivid describe`,
    /// the doctor): the vocabulary of the engine the settings would open.
    pub fn describer_settings(&self, o: &Overrides) -> crate::describe::DescribeSettings {
        let mut settings = self.describe_settings(o);
        let background = self.background_settings(o);
        settings.vocabulary = crate::render::describe_vocabulary(
            o.vocabulary.unwrap_or(self.describe.vocabulary),
            crate::background::engine_for(&background),
            &background.library.dirs,
        );
        settings
    }

    /// The sentence-embedding model's files, and where its embedded
    /// catalog is kept: `describe` beside the background cache.
    pub(crate) fn embedder_paths(&self, o: &Overrides) -> crate::describe::EmbedderPaths {
        let weights = o
            .embedder_model
            .clone()
            .unwrap_or_else(|| self.embedder_model.clone());
        crate::describe::EmbedderPaths {
            tokenizer: weights.with_extension("tokenizer.json"),
            weights,
            cache_dir: Some(self.background_cache_dir.with_file_name("describe")),
        }
    }

    /// The background engines' settings. A bundle asked for without an
    /// engine is a request for AudioLDM2.
    pub fn background_settings(&self, o: &Overrides) -> crate::background::BackgroundSettings {
        use crate::background::EngineChoice;
        use crate::background::audioldm2::{Audioldm2Settings, MemoryMode};
        let b = &self.background;
        let a = &b.audioldm2;
        let engine = match (o.engine, &o.bundle) {
            (Some(engine), _) => engine,
            (None, Some(_)) => EngineChoice::Audioldm2,
            (None, None) => b.engine,
        };
        crate::background::BackgroundSettings {
            engine,
            seed: o.background_seed.unwrap_or(b.seed),
            limits: crate::background::LengthLimits {
                max_seconds: b.max_seconds,
            },
            cache_dir: self.background_cache_dir.clone(),
            cache_max_bytes: if o.no_cache {
                0
            } else {
                b.cache_max_mb * 1024 * 1024
            },
            audioldm2: Audioldm2Settings {
                bundle: o
                    .bundle
                    .clone()
                    .unwrap_or_else(|| self.background_bundle.clone()),
                negative: o.negative.clone().unwrap_or_else(|| a.negative.clone()),
                steps: o.steps.unwrap_or(a.steps),
                scheduler: o.scheduler.unwrap_or(a.scheduler),
                guidance: o.guidance.unwrap_or(a.guidance),
                variations: a.variations,
                memory: if a.low_memory || o.low_memory {
                    MemoryMode::Low
                } else {
                    MemoryMode::Resident
                },
                device: a.device,
            },
            library: crate::background::soundscape::library::LibrarySettings {
                dirs: o
                    .library_dirs
                    .clone()
                    .unwrap_or_else(|| self.library_dirs.clone()),
                max_mb: b.library.max_mb,
            },
        }
    }

    /// The mix's settings.
    pub(crate) fn mix_settings(&self) -> crate::mix::MixSettings {
        let m = &self.mix;
        crate::mix::MixSettings {
            output_rate: m.output_rate,
            channels: m.channels,
            pre_roll_s: m.pre_roll_s,
            tail_s: m.tail_s,
            scene_crossfade_s: m.scene_crossfade_s,
            ducking: crate::mix::DuckingSettings {
                mode: m.ducking,
                speech_over_background_lu: m.speech_over_background_lu,
                pause_rise_db: m.pause_rise_db,
                ..crate::mix::DuckingSettings::default()
            },
            target_lufs: m.target_lufs,
            true_peak_dbtp: m.true_peak_dbtp,
        }
    }

    /// The voice and how it speaks. A voice named by a job is a file in
    /// the models folder's `voices/` (the job file's checks keep the name
    /// a plain file name).
    pub fn speech_settings(&self, o: &Overrides) -> SpeechSettings {
        let voice = match (&o.voice, &o.voice_name) {
            (Some(path), _) => path.clone(),
            (None, Some(name)) => self.models_dir.join("voices").join(name),
            (None, None) => self.voice.clone(),
        };
        SpeechSettings {
            voice,
            seed: o.speech_seed.unwrap_or(self.speech.seed),
            options: crate::speech::SpeakOptions {
                speaker: Some(o.speaker.unwrap_or(self.speech.speaker)),
                rate: Some(o.rate.unwrap_or(self.speech.rate)),
                ..crate::speech::SpeakOptions::default()
            },
            sentence_silence: self.speech.sentence_silence,
        }
    }

    /// The player's settings.
    pub fn playback_settings(&self, o: &Overrides) -> crate::output::play::PlaybackSettings {
        crate::output::play::PlaybackSettings {
            device: o
                .device
                .clone()
                .unwrap_or_else(|| self.playback.device.clone()),
            volume: o.volume.unwrap_or(self.playback.volume),
            reopen_for: std::time::Duration::from_secs(self.playback.reopen_s),
        }
    }
}
