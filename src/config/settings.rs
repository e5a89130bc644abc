//! The one place that turns a resolved config into each stage's settings:
//! commands, the renderer and the service all take their settings from here.

use super::{Config, PromptChoice, VocabularyChoice};

impl Config {
    /// The describer's settings.
    pub fn describe_settings(&self) -> crate::describe::DescribeSettings {
        use crate::describe::{DescribeSettings, PromptStyle, SceneBounds};
        let d = &self.describe;
        DescribeSettings {
            method: d.method,
            model: self.describer_model.clone(),
            prompt: match d.prompt {
                PromptChoice::Auto => None,
                PromptChoice::Chat => Some(PromptStyle::Chat),
                PromptChoice::Completion => Some(PromptStyle::Completion),
            },
            caption: Some(d.caption.clone()).filter(|c| !c.trim().is_empty()),
            seed: d.seed,
            temperature: d.temperature,
            timeout: std::time::Duration::from_secs_f32(d.timeout_s),
            scenes: SceneBounds {
                min_chars: d.min_scene_chars,
                max_chars: d.max_scene_chars,
            },
            vocabulary: self.describe_vocabulary(),
            embedder: Some(self.embedder_paths()),
            evidence: crate::describe::EvidenceParts::default(),
            threads: if self.system.threads == 0 {
                crate::compute::available_cores()
            } else {
                self.system.threads
            },
        }
    }

    /// The sentence-embedding model's files, and where its embedded
    /// catalog is kept: `describe` beside the background cache.
    pub fn embedder_paths(&self) -> crate::describe::EmbedderPaths {
        crate::describe::EmbedderPaths {
            weights: self.embedder_model.clone(),
            tokenizer: self.embedder_model.with_extension("tokenizer.json"),
            cache_dir: Some(self.background_cache_dir.with_file_name("describe")),
        }
    }

    /// The background engines' settings.
    pub fn background_settings(&self) -> crate::background::BackgroundSettings {
        use crate::background::audioldm2::{Audioldm2Settings, MemoryMode};
        let b = &self.background;
        let a = &b.audioldm2;
        crate::background::BackgroundSettings {
            engine: b.engine,
            seed: b.seed,
            limits: crate::background::LengthLimits {
                max_seconds: b.max_seconds,
            },
            cache_dir: self.background_cache_dir.clone(),
            cache_max_bytes: b.cache_max_mb * 1024 * 1024,
            audioldm2: Audioldm2Settings {
                bundle: self.background_bundle.clone(),
                negative: a.negative.clone(),
                steps: a.steps,
                scheduler: a.scheduler,
                guidance: a.guidance,
                variations: a.variations,
                memory: if a.low_memory {
                    MemoryMode::Low
                } else {
                    MemoryMode::Resident
                },
                device: a.device,
            },
            library: crate::background::soundscape::library::LibrarySettings {
                dirs: self.library_dirs.clone(),
                max_mb: b.library.max_mb,
            },
        }
    }

    /// The mix's settings.
    pub fn mix_settings(&self) -> crate::mix::MixSettings {
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

    /// How the voice speaks: speaker and rate (the sampling noise is the
    /// voice's own).
    pub fn speak_options(&self) -> crate::speech::SpeakOptions {
        crate::speech::SpeakOptions {
            speaker: Some(self.speech.speaker),
            rate: Some(self.speech.rate),
            ..crate::speech::SpeakOptions::default()
        }
    }

    /// The control socket's settings.
    pub fn control_settings(&self) -> crate::serve::control::ControlSettings {
        crate::serve::control::ControlSettings {
            socket: self.control_socket.clone(),
            interrupt: self.control.interrupt,
            fade: std::time::Duration::from_secs_f32(self.control.fade_s),
        }
    }

    /// The player's settings.
    pub fn playback_settings(&self) -> crate::output::play::PlaybackSettings {
        crate::output::play::PlaybackSettings {
            device: self.playback.device.clone(),
            volume: self.playback.volume,
            reopen_for: std::time::Duration::from_secs(self.playback.reopen_s),
        }
    }

    /// The catalog vocabulary when the describer chooses from it: always
    /// for `catalog`, for `auto` when the background is the soundscape.
    pub fn describe_vocabulary(&self) -> Option<crate::describe::Vocabulary> {
        let catalog = match self.describe.vocabulary {
            VocabularyChoice::Catalog => true,
            VocabularyChoice::Free => false,
            VocabularyChoice::Auto => {
                crate::background::engine_for(&self.background_settings())
                    == crate::background::EngineKind::Soundscape
            }
        };
        catalog.then(|| catalog_vocabulary_with(&self.library_dirs))
    }
}

/// The soundscape catalog's places and sources as the describer's
/// vocabulary.
pub fn catalog_vocabulary() -> crate::describe::Vocabulary {
    catalog_vocabulary_with(&[])
}

/// [`catalog_vocabulary`] with the new sources that the sound library in
/// `library_dirs` declares.
pub fn catalog_vocabulary_with(library_dirs: &[std::path::PathBuf]) -> crate::describe::Vocabulary {
    use crate::background::soundscape::library::new_sources_declared;
    use crate::describe::vocabulary::{Entry, Vocabulary};
    let builtin = crate::background::soundscape::catalog::Catalog::builtin();
    let mut catalog = builtin.clone();
    catalog
        .sources
        .extend(new_sources_declared(library_dirs, builtin));
    Vocabulary {
        places: catalog
            .places
            .iter()
            .map(|p| Entry {
                id: p.id.clone(),
                phrase: p.phrase.clone(),
                synonyms: Vec::new(),
                keywords: p.keywords.clone(),
                scenes: p.scenes.clone(),
            })
            .collect(),
        sources: catalog
            .sources
            .iter()
            .map(|s| Entry {
                id: s.id.clone(),
                phrase: s.phrase.clone(),
                synonyms: s.synonyms.clone(),
                keywords: s.keywords.clone(),
                scenes: s.scenes.clone(),
            })
            .collect(),
    }
}
