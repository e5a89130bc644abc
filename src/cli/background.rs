//! `vivid background` and `vivid sounds`.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vivid::config::Config;

#[derive(Debug, Args)]
pub(crate) struct BackgroundArgs {
    /// What the background should sound like, e.g. "Waves lapping against
    /// boats and seagulls calling in a harbour".
    pub(crate) caption: String,
    /// Length in seconds.
    #[arg(long, value_name = "S")]
    pub(crate) seconds: f64,
    /// auto, soundscape or audioldm2 (default: background.engine; --bundle
    /// implies audioldm2).
    #[arg(long, value_name = "ENGINE")]
    pub(crate) engine: Option<vivid::background::EngineChoice>,
    /// Seed (default: background.seed).
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Soundscape: the place (a preset id from `vivid sounds`, or a phrase
    /// such as "a harbour at dawn"); default: found in the caption.
    #[arg(long, value_name = "PLACE")]
    pub(crate) place: Option<String>,
    /// Soundscape: quiet, moderate or busy (default: moderate).
    #[arg(long, value_name = "LEVEL")]
    pub(crate) level: Option<vivid::background::Level>,
    /// Also draw a spectrogram and the plan's layers into this PNG.
    #[arg(long, value_name = "OUT.png")]
    pub(crate) plot: Option<PathBuf>,
    /// AudioLDM2: what it should not sound like (default:
    /// background.audioldm2.negative).
    #[arg(long, value_name = "TEXT")]
    pub(crate) negative: Option<String>,
    /// AudioLDM2: denoising steps.
    #[arg(long, value_name = "N")]
    pub(crate) steps: Option<usize>,
    /// AudioLDM2: ddim or dpm.
    #[arg(long, value_name = "NAME")]
    pub(crate) scheduler: Option<vivid::background::audioldm2::SchedulerKind>,
    /// AudioLDM2: classifier-free guidance scale.
    #[arg(long, value_name = "G")]
    pub(crate) guidance: Option<f32>,
    /// AudioLDM2: the bundle folder (default: background.audioldm2.bundle).
    #[arg(long, value_name = "DIR")]
    pub(crate) bundle: Option<PathBuf>,
    /// AudioLDM2: start from these latents (.npy) instead of seeded noise.
    #[arg(long, value_name = "FILE.npy")]
    pub(crate) init_latents: Option<PathBuf>,
    /// AudioLDM2: load each part of the model only while it runs.
    #[arg(long)]
    pub(crate) low_memory: bool,
    /// Neither use nor fill the background cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// AudioLDM2: write every intermediate (token ids, embeddings, each
    /// step's noise prediction, the final latents, the mel, the waveform)
    /// into DIR as .npy, named as diffusers' reference recordings
    /// (quantize/reference.py); implies --no-cache.
    #[arg(long, value_name = "DIR")]
    pub(crate) record: Option<PathBuf>,
    /// Output WAV file.
    #[arg(short, long, value_name = "OUT.wav")]
    pub(crate) output: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SoundsArgs {
    /// Show one source or place with its whole recipe.
    pub(crate) id: Option<String>,
    /// Print the catalog (or the one entry) as JSON, recipes included.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The config's background settings with the command's flags on top.
fn background_settings(
    config: &Config,
    args: &BackgroundArgs,
) -> vivid::background::BackgroundSettings {
    config.background_settings(&vivid::config::Overrides {
        engine: args.engine,
        bundle: args.bundle.clone(),
        background_seed: args.seed,
        // A recording wants every stage run, not read from the cache.
        no_cache: args.no_cache || args.record.is_some(),
        negative: args.negative.clone(),
        steps: args.steps,
        scheduler: args.scheduler,
        guidance: args.guidance,
        low_memory: args.low_memory,
        ..vivid::config::Overrides::default()
    })
}

/// The engine the settings choose; AudioLDM2 directly when the command
/// asks for what only it takes (initial latents, a recording).
fn open_generator(
    settings: &vivid::background::BackgroundSettings,
    args: &BackgroundArgs,
) -> Result<Box<dyn vivid::background::Generator>> {
    use vivid::background::{self as bg, EngineChoice};
    Ok(
        if settings.engine == EngineChoice::Soundscape
            || (settings.engine == EngineChoice::Auto
                && args.init_latents.is_none()
                && args.record.is_none())
        {
            bg::open(settings)?.generator
        } else {
            // AudioLDM2, with what only it takes (initial latents).
            let mut engine = bg::audioldm2::Audioldm2::open(&settings.audioldm2, settings.limits)
                .with_context(|| {
                format!(
                    "opening the AudioLDM2 bundle {} ({})",
                    settings.audioldm2.bundle.display(),
                    bg::audioldm2::MAKE_BUNDLE
                )
            })?;
            if engine.is_random_weights() {
                eprintln!(
                    "vivid: warning: {} holds random weights (a test or benchmark bundle): it makes noise, not a soundscape",
                    settings.audioldm2.bundle.display()
                );
            }
            if let Some(path) = &args.init_latents {
                let latents =
                    bg::audioldm2::noise::read_latents(path, engine.engine().latent_shape())?;
                engine.set_init_latents(Some(latents));
            }
            Box::new(engine)
        },
    )
}

pub(crate) fn background(config: &Config, args: BackgroundArgs) -> Result<ExitCode> {
    use vivid::background::{self as bg, SceneRequest};
    let started = std::time::Instant::now();
    let settings = background_settings(config, &args);
    let mut generator = open_generator(&settings, &args)?;
    if generator.kind() != bg::EngineKind::Soundscape
        && (args.place.is_some() || args.level.is_some())
    {
        anyhow::bail!("--place and --level are for the soundscape engine (--engine soundscape)");
    }
    if let Some(place) = &args.place {
        let catalog = bg::soundscape::catalog::Catalog::builtin();
        if bg::soundscape::plan::match_place(catalog, place).is_none() {
            anyhow::bail!(
                "unknown place `{place}`: use one of {} (or a phrase naming one, e.g. \"a harbour at dawn\")",
                catalog.place_ids().join(", ")
            );
        }
    }
    let request = SceneRequest {
        caption: args.caption,
        place: args.place,
        sounds: Vec::new(),
        level: args.level,
        bed_only: false,
        text: String::new(),
        seed: settings.seed,
    };
    let bar = super::progress::bar("{bar:30} {pos}/{len} steps {elapsed_precise} {msg}");
    let mut progress = super::progress::BackgroundBar::new(bar.clone());
    let mut recorder;
    let observer: &mut dyn bg::Observer = match &args.record {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the record folder {}", dir.display()))?;
            recorder = bg::RecordToDir::new(&mut progress, dir);
            &mut recorder
        }
        None => &mut progress,
    };
    let made = generator
        .make(&request, args.seconds, &settings.cache(), observer)
        .context("generating the background")?;
    bar.finish_and_clear();
    if let bg::SceneRecipe::Soundscape(plan) = &made.recipe {
        print_plan(plan);
    }
    vivid::output::wav::write_wav_i16(
        &args.output,
        &made.samples,
        made.sample_rate,
        made.channels,
    )?;
    eprintln!(
        "wrote {}: {:.2} s of {} background ({} Hz, {} channel{}){} in {:.1} s",
        args.output.display(),
        made.seconds(),
        generator.kind().as_str(),
        made.sample_rate,
        made.channels,
        if made.channels == 1 { "" } else { "s" },
        if made.cached == Some(true) {
            ", from the cache"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(png) = &args.plot {
        draw_background_plot(png, &made, &settings.library)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `vivid background --plot`: the spectrogram, and a row per layer of the
/// soundscape's plan (rendered again with each layer's level kept; the
/// same seed gives the same samples), or the whole AudioLDM2 clip.
pub(crate) fn draw_background_plot(
    png: &std::path::Path,
    made: &vivid::background::Background,
    library: &vivid::background::soundscape::library::LibrarySettings,
) -> Result<()> {
    use vivid::background::{SceneRecipe, soundscape};
    use vivid::mix::plot::LayerTrace;
    let hop = soundscape::TRACE_HOP_S;
    let (title, layers) = match &made.recipe {
        SceneRecipe::Soundscape(plan) => {
            // With the library's recordings, as the engine played them.
            let sounds = soundscape::Sounds::load(library);
            let (_, traces) = soundscape::render_traced(&sounds, plan, made.seconds());
            let layers = plan
                .layers
                .iter()
                .zip(traces)
                .map(|(layer, trace)| LayerTrace {
                    name: format!(
                        "{}{} ({}, {:.0} dB, pan {:+.1}, distance {:.1})",
                        layer.source,
                        if layer.variants.is_empty() {
                            String::new()
                        } else {
                            format!(" as {}", layer.variants.join(", "))
                        },
                        if layer.role == soundscape::Role::Bed {
                            "bed"
                        } else {
                            "source"
                        },
                        layer.gain_db,
                        layer.pan,
                        layer.distance
                    ),
                    hop_s: hop,
                    level_db: trace.level_db,
                })
                .collect();
            let title = format!(
                "soundscape: {} ({}), seed {}{}",
                plan.place,
                plan.level.as_str(),
                plan.seed,
                if plan.unmatched.is_empty() {
                    String::new()
                } else {
                    format!("; unmatched: {}", plan.unmatched.join(", "))
                }
            );
            (title, layers)
        }
        SceneRecipe::Audioldm2(clip) => {
            let mono = vivid::background::soundscape::descriptors::mono(
                &made.samples,
                usize::from(made.channels),
            );
            let level = vivid::background::soundscape::descriptors::envelope(
                &mono,
                made.sample_rate,
                hop as f32,
            )
            .iter()
            .map(|rms| 20.0 * rms.max(1e-9).log10())
            .collect();
            (
                format!("AudioLDM2: {}", clip.request.caption),
                vec![LayerTrace {
                    name: "the whole clip".into(),
                    hop_s: hop,
                    level_db: level,
                }],
            )
        }
    };
    vivid::mix::plot::draw_background(
        png,
        &made.samples,
        made.sample_rate,
        made.channels,
        &title,
        &layers,
    )
    .map_err(|e| anyhow::anyhow!("{e} (the background itself was written)"))?;
    eprintln!("drew the background into {}", png.display());
    Ok(())
}

/// The soundscape's plan, as a technician reads it.
pub(crate) fn print_plan(plan: &vivid::background::soundscape::ScenePlan) {
    eprintln!(
        "soundscape: {} ({}), seed {}",
        plan.place,
        plan.level.as_str(),
        plan.seed
    );
    for layer in &plan.layers {
        eprintln!(
            "  {:<18} {:<6} {:>6.1} dB  pan {:>5.2}  distance {:.2}",
            layer.source,
            match layer.role {
                vivid::background::soundscape::Role::Source => "source",
                vivid::background::soundscape::Role::Bed => "bed",
            },
            layer.gain_db,
            layer.pan,
            layer.distance
        );
        if !layer.variants.is_empty() {
            eprintln!("  {:<18} as {}", "", layer.variants.join(", "));
        }
        for recording in &layer.recordings {
            eprintln!("  {:<18} plays {}", "", recording.display());
        }
    }
    for phrase in &plan.unmatched {
        eprintln!("  unmatched: \"{phrase}\"");
    }
    if let Some(note) = &plan.note {
        eprintln!("  {note}");
    }
}

pub(crate) fn sounds(config: &Config, args: SoundsArgs) -> Result<ExitCode> {
    let loaded = vivid::background::soundscape::Sounds::load(
        &config
            .background_settings(&vivid::config::Overrides::default())
            .library,
    );
    for finding in &loaded.library.findings {
        eprintln!("library: {finding}");
    }
    let catalog = &loaded.catalog;
    let origin = |id: &str| match loaded.library.sources.get(id) {
        Some(s) => format!("library {}", s.origin.display()),
        None => "recipe".to_string(),
    };
    if let Some(id) = &args.id {
        let entry = match (catalog.source(id), catalog.place(id)) {
            (Some(source), _) => serde_json::to_value(source)?,
            (None, Some(place)) => serde_json::to_value(place)?,
            (None, None) => {
                let all: Vec<&str> = catalog
                    .sources
                    .iter()
                    .map(|s| s.id.as_str())
                    .chain(catalog.place_ids())
                    .collect();
                anyhow::bail!(
                    "no sound source or place `{id}` in the catalog; `vivid sounds` lists them: {}",
                    all.join(", ")
                );
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&entry)?);
        } else {
            print!("{}", toml::to_string_pretty(&entry)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "sources": catalog.sources,
                "places": catalog.places,
                "library": loaded.library.sources.iter().map(|(id, s)| (id.clone(), serde_json::json!({
                    "origin": s.origin,
                    "as": s.entry.use_as,
                    "files": s.clips.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
                }))).collect::<serde_json::Map<_, _>>(),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} sound sources:", catalog.sources.len());
    for source in &catalog.sources {
        let kinds: Vec<&str> = source.layers.iter().map(|l| l.kind()).collect();
        println!(
            "  {:<18} {:<11} {:<42} [{}] {}",
            source.id,
            format!("{:?}", source.category).to_lowercase(),
            source.phrase,
            kinds.join(", "),
            origin(&source.id)
        );
    }
    println!("{} places:", catalog.places.len());
    for place in &catalog.places {
        println!(
            "  {:<18} {:<24} room {:>4.0} m, {:.1} s; beds: {}",
            place.id,
            place.phrase,
            place.room.size_m,
            place.room.decay_s,
            place.beds.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
