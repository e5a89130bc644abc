//! The benchmarks as commands: each measures, then prints its table.
//! `vivid bench …` maps its arguments onto the options here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::describe::Method;

/// `vivid bench render`.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// AudioLDM2 bundle for the background (default: the config's).
    pub bundle: Option<PathBuf>,
}

/// `vivid bench background`.
#[derive(Debug, Clone)]
pub struct BackgroundOptions {
    pub engine: crate::background::EngineChoice,
    pub bundle: Option<PathBuf>,
    pub steps: usize,
    pub ddim_steps: usize,
    pub low_memory: bool,
    pub python: Option<String>,
    pub pipeline: Option<PathBuf>,
    pub device: crate::background::audioldm2::graph::ComputeDevice,
    pub profile: bool,
    pub unet_batch: Option<u8>,
}

/// `vivid bench compare`.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub bundle: PathBuf,
    pub graph: String,
    pub device: crate::background::audioldm2::graph::ComputeDevice,
    pub input: Vec<PathBuf>,
    pub tolerance: f32,
    pub all: bool,
}

/// `vivid bench describe`.
#[derive(Debug, Clone, Default)]
pub struct DescribeOptions {
    pub model: Vec<PathBuf>,
    pub captions: bool,
    /// Measure this one model in this process and print JSON (the parent
    /// runs each model in its own process so its peak memory is its own).
    pub single: Option<PathBuf>,
    /// With `single`: which describer to measure.
    pub variant: DescribeVariant,
    /// Also measure free captions (for AudioLDM2).
    pub free: bool,
    /// Write every text's evidence to this JSON-lines file (for tuning).
    pub dump: Option<PathBuf>,
}

/// What one measurement process runs: catalog mode with all its evidence
/// or with a part left out, or free captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DescribeVariant {
    #[default]
    Full,
    NoModel,
    NoMeaning,
    NoSetting,
    WordsOnly,
    Free,
}

impl DescribeVariant {
    pub const ALL: [(&'static str, DescribeVariant); 6] = [
        ("full", DescribeVariant::Full),
        ("no-model", DescribeVariant::NoModel),
        ("no-meaning", DescribeVariant::NoMeaning),
        ("no-setting", DescribeVariant::NoSetting),
        ("words", DescribeVariant::WordsOnly),
        ("free", DescribeVariant::Free),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("full", |(n, _)| n)
    }

    /// The evidence this variant weighs, in catalog mode.
    fn parts(self) -> crate::describe::EvidenceParts {
        let all = crate::describe::EvidenceParts::default();
        match self {
            DescribeVariant::Full | DescribeVariant::Free => all,
            DescribeVariant::NoModel => crate::describe::EvidenceParts {
                model: false,
                ..all
            },
            DescribeVariant::NoMeaning => crate::describe::EvidenceParts {
                meaning: false,
                ..all
            },
            DescribeVariant::NoSetting => crate::describe::EvidenceParts {
                setting: false,
                ..all
            },
            DescribeVariant::WordsOnly => crate::describe::EvidenceParts {
                meaning: false,
                setting: false,
                model: false,
            },
        }
    }
}

/// `vivid bench tts`.
#[derive(Debug, Clone)]
pub struct TtsOptions {
    pub voice: Option<PathBuf>,
    pub python: String,
    pub profile: bool,
}

/// Mixing and resampling per minute of audio, and a whole render split
/// by stage.
pub fn render(config: &Config, options: RenderOptions) -> Result<ExitCode> {
    let (resample_s, mix_s) = crate::bench::time_mix_per_minute()?;
    println!(
        "one minute of narration: resampling 22.05 -> 48 kHz {:.3} s, whole mix (resampling, ducking, loudness, limiter) {:.3} s",
        resample_s, mix_s
    );
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("narration.txt");
    std::fs::write(&input, crate::bench::RENDER_TEXT)?;
    struct Quiet;
    impl crate::background::Observer for Quiet {}
    impl crate::render::RenderObserver for Quiet {}
    let started = std::time::Instant::now();
    let settings = config.render_settings(&crate::config::Overrides {
        // The engine the config chooses, with this bundle.
        engine: Some(config.background.engine),
        bundle: options.bundle,
        // The benchmark generates its backgrounds: no cache.
        no_cache: true,
        ..crate::config::Overrides::default()
    });
    let report = crate::render::render(&settings, &input, &dir.path().join("out.wav"), &mut Quiet)?;
    let total = started.elapsed().as_secs_f64();
    let s = &report.seconds;
    println!(
        "render of a {:.1} s narration ({} scenes, background: {} {}): {total:.1} s = describe {:.2} + speak {:.2} + background {:.2} + mix {:.2} + write {:.2} (+ loading and hashing)",
        report.mix.speech_s,
        report.scenes.len(),
        report.background.engine.as_str(),
        report.background.details,
        s.describe,
        s.speak,
        s.background,
        s.mix,
        s.write
    );
    println!(
        "peak RSS {:.0} MiB",
        crate::compute::peak_rss_kb() as f64 / 1024.0
    );
    Ok(ExitCode::SUCCESS)
}

/// `vivid bench background --engine soundscape`.
pub fn soundscape() -> Result<ExitCode> {
    use crate::bench::{soundscape_scenes, time_fundsp_reverb, time_soundscape};
    // The renderer runs on one thread; everything here is one core's work.
    let scenes = soundscape_scenes();
    let (_, busy) = scenes.last().expect("three scenes");
    // Memory first, before anything else raises the peak: a stream of 60 s,
    // then of 600 s, of the busy scene.
    time_soundscape(busy, 60.0);
    let after_minute = crate::compute::peak_rss_kb();
    time_soundscape(busy, 600.0);
    let after_ten = crate::compute::peak_rss_kb();
    println!(
        "peak RSS streaming the busy scene: {:.1} MiB after 60 s, {:.1} MiB after 600 s (+{:.2} MiB)",
        after_minute as f64 / 1024.0,
        after_ten as f64 / 1024.0,
        after_ten.saturating_sub(after_minute) as f64 / 1024.0
    );
    let seconds = 120.0;
    let reference = time_fundsp_reverb(seconds);
    println!(
        "reference, same run: fundsp reverb_stereo alone, {seconds:.0} s at 48 kHz: {:.2} s ({:.0}x real time)",
        reference,
        seconds / reference
    );
    for (name, plan) in &scenes {
        let spent = time_soundscape(plan, seconds);
        let layers: Vec<&str> = plan.layers.iter().map(|l| l.source.as_str()).collect();
        println!(
            "{name}: {seconds:.0} s of 48 kHz stereo in {spent:.2} s on one core = {:.0}x real time ({:.2}x the fundsp reverb's time); layers: {}",
            seconds / spent,
            spent / reference,
            layers.join(", ")
        );
    }
    time_library_scene(busy, seconds, reference)?;
    println!(
        "peak RSS {:.0} MiB",
        crate::compute::peak_rss_kb() as f64 / 1024.0
    );
    print_source_descriptors();
    Ok(ExitCode::SUCCESS)
}

/// The busy scene with two of its sources served by a sound library (the
/// gulls as recorded calls, the lapping water as a looped recording).
fn time_library_scene(
    busy: &crate::background::soundscape::ScenePlan,
    seconds: f64,
    reference: f64,
) -> Result<()> {
    use crate::background::soundscape::{Sounds, library::LibrarySettings};
    let dir = tempfile::tempdir().context("making a folder for the benchmark's library")?;
    crate::bench::write_bench_library(dir.path())?;
    let sounds = Sounds::load(&LibrarySettings {
        dirs: vec![dir.path().to_path_buf()],
        max_mb: 256,
    });
    if let Some(finding) = sounds.library.findings.first() {
        bail!("the benchmark's library: {finding}");
    }
    let spent = crate::bench::time_sounds(&sounds, busy, seconds);
    println!(
        "busy harbour, gulls and water from a sound library: {seconds:.0} s in {spent:.2} s on one core = {:.0}x real time ({:.2}x the fundsp reverb's time)",
        seconds / spent,
        spent / reference,
    );
    Ok(())
}

/// Every catalog source alone for 20 s, measured as its tests measure it:
/// the level it plays at while it sounds (the catalog's gain_db brings
/// each to -26 dBFS), frame flatness, centroid, band shares, onsets.
fn print_source_descriptors() {
    use crate::background::soundscape::{alone, catalog::Catalog, descriptors as d, render};
    println!(
        "{:<18} {:>9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>7}",
        "source", "level dB", "flatness", "centroid", "<1 kHz", "3-7 kHz", "onsets/s", "swell"
    );
    for source in &Catalog::builtin().sources {
        let x = d::mono(&render(&alone(&source.id), 20.0), 2);
        let spectrum = d::Spectrum::of(&x, 48_000, 4096);
        println!(
            "{:<18} {:>9.1} {:>8.3} {:>9.0} {:>7.2} {:>7.2} {:>9.1} {:>7.2}",
            source.id,
            d::active_level_db(&x, 48_000),
            d::frame_flatness(&x, 48_000),
            spectrum.centroid(),
            spectrum.band_share(20.0, 1000.0),
            spectrum.band_share(3000.0, 7000.0),
            d::onset_rate(&x, 48_000, 6.0),
            d::slow_modulation_share(&x, 48_000, 0.35),
        );
    }
}

pub fn background(options: BackgroundOptions) -> Result<ExitCode> {
    if options.engine == crate::background::EngineChoice::Soundscape {
        return soundscape();
    }
    let Some(bundle) = options.bundle.clone() else {
        anyhow::bail!("bench background --engine audioldm2 needs --bundle DIR");
    };
    use crate::background::audioldm2::MemoryMode;
    use crate::background::audioldm2::graph::ComputeDevice;
    use crate::bench::{self, ReferenceBackgroundRun};
    if options.profile {
        return profile_background(&bundle);
    }
    let cores = crate::compute::available_cores();
    let device = options.device;
    let on_gpu = device == ComputeDevice::Cuda;
    // On the GPU the thread count only matters for the few CPU nodes.
    // The UNet step at 1, 2, 4, ... threads and at every core: how tract's
    // executor scales on this host.
    let threads: Vec<usize> = if cores > 1 && !on_gpu {
        let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| Some(n * 2))
            .take_while(|&n| n < cores)
            .collect();
        counts.push(cores);
        counts
    } else {
        vec![cores]
    };
    let mode = if options.low_memory {
        MemoryMode::Low
    } else {
        MemoryMode::Resident
    };
    let ours = bench::run_vivid_background(
        &bundle,
        options.steps,
        &threads,
        mode,
        device,
        options.unet_batch.map(|n| n == 2),
    )?;
    let mut references: Vec<(&str, ReferenceBackgroundRun)> = Vec::new();
    if let Some(python) = &options.python {
        if let Some(pipeline) = &options.pipeline {
            let kind = if on_gpu {
                "diffusers-cuda"
            } else {
                "diffusers"
            };
            references.push((
                "diffusers",
                bench::run_reference_background(python, kind, pipeline, cores, options.steps)?,
            ));
        }
        if !on_gpu {
            references.push((
                "onnxruntime",
                bench::run_reference_background(python, "ort", &bundle, cores, options.steps)?,
            ));
        }
    }
    let meta = crate::background::audioldm2::bundle::BundleMeta::load(&bundle)?;
    println!(
        "background benchmark: {} ({}, {:.2} s clips, UNet batch {}), {}, {cores} cores, {} mode",
        bundle.display(),
        meta.precision,
        ours.seconds,
        ours.unet_batch,
        if on_gpu { "CUDA" } else { "CPU" },
        if options.low_memory {
            "low-memory"
        } else {
            "resident"
        }
    );
    print_background_table(&ours, &references, cores, options.ddim_steps);
    Ok(ExitCode::SUCCESS)
}

/// The AudioLDM2 benchmark's table: vivid against each reference, stage
/// by stage, then vivid's own breakdown by graph and kernel.
fn print_background_table(
    ours: &crate::bench::BackgroundBench,
    references: &[(&str, crate::bench::ReferenceBackgroundRun)],
    cores: usize,
    ddim_steps: usize,
) {
    use crate::bench::ReferenceBackgroundRun;
    let mut header = format!("{:<34} {:>12}", "", "vivid");
    for (name, _) in references {
        header.push_str(&format!(
            " {name:>12} {:>10}",
            format!("vivid/{}", &name[..4])
        ));
    }
    println!("{header}");
    let row = |label: &str, ours: f64, theirs: &dyn Fn(&ReferenceBackgroundRun) -> f64| {
        let mut line = format!("{label:<34} {ours:>12.2}");
        for (_, reference) in references {
            let value = theirs(reference);
            line.push_str(&format!(" {value:>12.2} {:>9.2}x", ours / value));
        }
        println!("{line}");
    };
    row("load (s)", ours.load_s, &|r| r.load_s);
    for (n, seconds) in &ours.unet_step_s {
        if *n == cores {
            row(&format!("UNet CFG step, {n} threads (s)"), *seconds, &|r| {
                r.unet_step_s
            });
        } else {
            println!(
                "{:<34} {seconds:>12.2}",
                format!(
                    "UNet CFG step, {n} thread{} (s)",
                    if *n == 1 { "" } else { "s" }
                )
            );
        }
    }
    row(
        &format!("clip, {} DPM steps (s)", ours.steps),
        ours.clip_s,
        &|r| r.clip_s,
    );
    let outside_loop = ours.clip_s - ours.denoising_s;
    let per_step = ours.denoising_s / ours.steps.max(1) as f64;
    println!(
        "{:<34} {:>12.2}",
        format!("clip, {} DDIM steps (s, projected)", ddim_steps),
        outside_loop + per_step * ddim_steps as f64
    );
    row("peak RSS (MiB)", ours.peak_rss_kb as f64 / 1024.0, &|r| {
        r.peak_rss_kb as f64 / 1024.0
    });
    println!(
        "vivid clip by stage: conditioning {:.2} s, denoising {:.2} s ({per_step:.2} s/step), decoding {:.2} s",
        ours.conditioning_s, ours.denoising_s, ours.decoding_s
    );
    println!("vivid by graph (load and optimize, runs, run time):");
    for t in &ours.timings {
        println!(
            "  {:<12} load {:>7.2} s  {:>4} runs {:>8.2} s",
            t.component, t.load_s, t.runs, t.run_s
        );
    }
    println!("matmul kernels tract chose, and vivid's own ops (name: nodes):");
    for (component, kernels) in &ours.kernels {
        let list: Vec<String> = kernels.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  {component:<12} {}", list.join(", "));
    }
}

/// `vivid bench compare`: one graph on tract's CPU runtime against another
/// device, node by node.
/// The graph's inputs for `vivid bench compare`: sample tensors of the
/// declared shapes, with the files given in `--input` read in their place.
fn compare_inputs(
    options: &CompareOptions,
    declared: &[crate::background::audioldm2::bundle::TensorMeta],
) -> Result<Vec<tract_onnx::prelude::Tensor>> {
    let mut inputs = crate::background::audioldm2::graph::sample_tensors(declared)?;
    if options.input.len() > inputs.len() {
        anyhow::bail!(
            "{} takes {} inputs, {} given",
            options.graph,
            inputs.len(),
            options.input.len()
        );
    }
    for ((path, input), declared) in options.input.iter().zip(&mut inputs).zip(declared) {
        let shape = input.shape().to_vec();
        if declared.dtype != "f32" {
            anyhow::bail!(
                "input `{}` is {}, only f32 inputs can be given",
                declared.name,
                declared.dtype
            );
        }
        let values = crate::background::audioldm2::noise::read_latents(path, &shape)?;
        *input = crate::background::audioldm2::graph::f32_tensor(&shape, &values)?;
    }
    Ok(inputs)
}

/// Prints the node comparison (every node with `--all`, the first that
/// parts and the largest differences); returns the first node off by more
/// than the tolerance.
fn print_node_comparisons(
    nodes: &[crate::background::audioldm2::graph::NodeComparison],
    options: &CompareOptions,
) -> Option<usize> {
    use crate::background::audioldm2::graph::NodeComparison;
    let row = |n: &NodeComparison| {
        format!(
            "  {:<48} {:<22} {:<18} peak {:>10.3e} / {:>10.3e}  not finite {:>7} / {:>7}  diff {:>9.2e}",
            n.node.chars().take(48).collect::<String>(),
            n.op.chars().take(22).collect::<String>(),
            format!("{:?}", n.shape),
            n.cpu_peak,
            n.other_peak,
            n.cpu_not_finite,
            n.other_not_finite,
            n.relative_diff
        )
    };
    println!(
        "{} nodes compared, every output kept (tract CPU / {}):",
        nodes.len(),
        options.device
    );
    let parts = |n: &NodeComparison| {
        n.other_not_finite > n.cpu_not_finite || n.relative_diff > options.tolerance
    };
    if options.all {
        nodes.iter().for_each(|n| println!("{}", row(n)));
    }
    let first_bad = nodes
        .iter()
        .position(|n| n.other_not_finite > n.cpu_not_finite);
    let first_off = nodes.iter().position(parts);
    for (label, found) in [
        (
            "first node with values that are not finite only there",
            first_bad,
        ),
        (
            "first node off by more than the tolerance or not finite",
            first_off,
        ),
    ] {
        match found {
            Some(index) => {
                println!("{label}, with the 4 before it:");
                for n in &nodes[index.saturating_sub(4)..=index] {
                    println!("{}", row(n));
                }
            }
            None => println!("{label}: none"),
        }
    }
    // One line for scripts (tests/bench/gpu.sh retries with that op kept
    // on the CPU through VIVID_CPU_OPS).
    if let Some(index) = first_bad.or(first_off) {
        println!("first parting op: {}", nodes[index].op);
    }
    let mut worst: Vec<&NodeComparison> = nodes.iter().collect();
    worst.sort_by(|a, b| b.relative_diff.total_cmp(&a.relative_diff));
    println!("largest differences:");
    worst.iter().take(8).for_each(|n| println!("{}", row(n)));
    first_off
}

pub fn compare(options: CompareOptions) -> Result<ExitCode> {
    use crate::background::audioldm2::graph::{Graph, compare_devices};
    let meta = crate::background::audioldm2::bundle::BundleMeta::load(&options.bundle)?;
    let entry = meta.component(&options.bundle, &options.graph)?;
    let inputs = compare_inputs(&options, &entry.inputs)?;
    // The graph as vivid runs it first: whether its output is finite.
    let plain = Graph::load(&options.bundle, &meta, &options.graph, options.device)
        .and_then(|graph| graph.run(inputs.clone()));
    println!(
        "{} on {} as vivid runs it: {}",
        options.graph,
        options.device,
        match &plain {
            Ok(_) => "finite output".to_owned(),
            Err(e) => e.to_string(),
        }
    );
    let nodes = compare_devices(
        &options.bundle,
        &meta,
        &options.graph,
        options.device,
        inputs,
    )?;
    let first_off = print_node_comparisons(&nodes, &options);
    Ok(if first_off.is_some() || plain.is_err() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `vivid bench background --profile`: where the time of the CPU's heavy
/// graphs goes, op by op, on one thread.
fn profile_background(bundle: &std::path::Path) -> Result<ExitCode> {
    use crate::background::audioldm2::graph::{ComputeDevice, Graph};
    let meta = crate::background::audioldm2::bundle::BundleMeta::load(bundle)?;
    crate::compute::set_compute_threads(1);
    println!(
        "background profile: {}, one thread, second run of each graph",
        bundle.display()
    );
    for component in ["unet", "vae_decoder", "vocoder"] {
        let graph = Graph::load(bundle, &meta, component, ComputeDevice::Cpu)?;
        graph.run(graph.sample_inputs()?)?;
        let Some(times) = graph.profile(graph.sample_inputs()?)? else {
            continue;
        };
        let total: f64 = times.iter().map(|(_, s)| s).sum();
        println!("{component}: {total:.3} s");
        for (op, seconds) in times.iter().take(10) {
            println!(
                "  {op:<32} {seconds:>8.3} s {:>5.1} %",
                100.0 * seconds / total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe(config: &Config, options: DescribeOptions) -> Result<ExitCode> {
    use crate::bench::{DescribeRun, run_describe_devset};
    let settings = config.describer_settings(&crate::config::Overrides::default());
    if let Some(model) = options.single {
        let variant = options.variant;
        let run = run_describe_devset(
            &format!("{} ({})", model.display(), variant.name()),
            crate::describe::DescribeSettings {
                method: Method::Llm,
                model,
                vocabulary: (variant != DescribeVariant::Free)
                    .then(crate::render::catalog_vocabulary),
                evidence: variant.parts(),
                ..settings
            },
            options.dump.is_some(),
        )?;
        println!("{}", serde_json::to_string(&run)?);
        return Ok(ExitCode::SUCCESS);
    }
    let models = if options.model.is_empty() {
        vec![settings.model.clone()]
    } else {
        options.model.clone()
    };
    let mut runs: Vec<DescribeRun> = Vec::new();
    for (index, model) in models.iter().enumerate() {
        // Every part's share is measured on the first model; others are
        // measured whole.
        let mut variants = if index == 0 {
            vec![
                DescribeVariant::Full,
                DescribeVariant::NoModel,
                DescribeVariant::NoMeaning,
                DescribeVariant::NoSetting,
                DescribeVariant::WordsOnly,
            ]
        } else {
            vec![DescribeVariant::Full]
        };
        if options.free {
            variants.push(DescribeVariant::Free);
        }
        for variant in variants {
            let dump = (index == 0 && variant == DescribeVariant::Full)
                .then_some(options.dump.as_deref())
                .flatten();
            runs.push(measure_describer(config, model, variant, dump)?);
        }
    }
    runs.push(run_describe_devset(
        "method 2 (the text itself)",
        crate::describe::DescribeSettings {
            method: Method::Text,
            ..settings.clone()
        },
        false,
    )?);
    print_describe_tables(&runs, &settings);
    if options.captions {
        print_captions(&runs);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one model and variant in its own process (so its peak memory and
/// cold start are its own) and reads its run.
fn measure_describer(
    config: &Config,
    model: &std::path::Path,
    variant: DescribeVariant,
    dump: Option<&std::path::Path>,
) -> Result<crate::bench::DescribeRun> {
    eprintln!("measuring {} ({}) ...", model.display(), variant.name());
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    if let Some(path) = config.source.path() {
        cmd.arg("--config").arg(path);
    }
    cmd.args([
        "-q",
        "bench",
        "describe",
        "--variant",
        variant.name(),
        "--single",
    ])
    .arg(model);
    if let Some(dump) = dump {
        cmd.arg("--dump").arg(dump);
    }
    let output = cmd.output().context("running the measurement process")?;
    if !output.status.success() {
        anyhow::bail!(
            "measuring {} failed: {}",
            model.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let run: crate::bench::DescribeRun =
        serde_json::from_str(line).with_context(|| format!("reading {line:?}"))?;
    if let Some(dump) = dump {
        let lines: Vec<String> = run
            .captions
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        std::fs::write(dump, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", dump.display()))?;
    }
    Ok(run)
}

/// Both sets side by side, a row per run; then the allusive set by
/// language, and speed.
fn print_describe_tables(
    runs: &[crate::bench::DescribeRun],
    settings: &crate::describe::DescribeSettings,
) {
    use crate::bench::SetName;
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.0}%", 100.0 * v));
    let Some(first) = runs.first() else {
        return;
    };
    let named = first.subset(|c| c.set == SetName::Named).captions.len();
    let allusive = first.subset(|c| c.set == SetName::Allusive);
    let english = allusive.subset(|c| c.lang == "en").captions.len();
    println!(
        "fits: texts whose soundscape plays a fitting foreground source (the place's bed alone \
         does not count); precision: sources played that fit; place: texts whose place fits; \
         wrong: sources played that the set calls wrong"
    );
    println!(
        "describer dev sets: named {named} texts, allusive {} ({english} English + {} in de, fr, es, zh); \
         {} threads, seed {}",
        allusive.captions.len(),
        allusive.captions.len() - english,
        settings.threads,
        settings.seed,
    );
    println!(
        "{:<40} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>5} | {:>7} {:>6} | {:>6} {:>6} {:>6} {:>7}",
        "",
        "named",
        "",
        "allus.",
        "(en)",
        "",
        "",
        "other",
        "lang.",
        "median",
        "p95",
        "cold",
        "peak"
    );
    println!(
        "{:<40} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>5} | {:>7} {:>6} | {:>6} {:>6} {:>6} {:>7}",
        "candidate",
        "fits",
        "prec.",
        "fits",
        "prec.",
        "place",
        "wrong",
        "fits",
        "prec.",
        "s",
        "s",
        "s",
        "MiB"
    );
    for run in runs {
        let n = run.subset(|c| c.set == SetName::Named);
        let a = run.subset(|c| c.set == SetName::Allusive && c.lang == "en");
        let o = run.subset(|c| c.set == SetName::Allusive && c.lang != "en");
        let cold = run.load_s + run.captions.first().map_or(0.0, |c| c.seconds);
        println!(
            "{:<40} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>5} | {:>7} {:>6} | {:>6.2} {:>6.2} {:>6.2} {:>7.0}",
            file_label(&run.label),
            pct(Some(n.fitting_share())),
            pct(n.played_precision().map(|p| p.0)),
            pct(Some(a.fitting_share())),
            pct(a.played_precision().map(|p| p.0)),
            pct(a.place_share()),
            a.captions.iter().map(|c| c.wrong_played).sum::<usize>(),
            pct(Some(o.fitting_share())),
            pct(o.played_precision().map(|p| p.0)),
            run.latency_quantile(0.5),
            run.latency_quantile(0.95),
            cold,
            run.peak_rss_kb as f64 / 1024.0
        );
        let fallbacks = run.captions.iter().filter(|c| !c.method_kept).count();
        if fallbacks > 0 {
            println!("  ({fallbacks} scenes fell back to another method)");
        }
    }
    println!("allusive set by language (fits / precision), first and last rows:");
    for run in [runs.first(), runs.last()].into_iter().flatten() {
        let by_lang: Vec<String> = ["en", "de", "fr", "es", "zh"]
            .iter()
            .map(|lang| {
                let l = run.subset(|c| c.set == SetName::Allusive && c.lang == *lang);
                format!(
                    "{lang} {} / {}",
                    pct(Some(l.fitting_share())),
                    pct(l.played_precision().map(|p| p.0))
                )
            })
            .collect();
        println!("  {:<38} {}", file_label(&run.label), by_lang.join(", "));
    }
}

/// Every caption of every run, with its played sources (+ fits, - not).
fn print_captions(runs: &[crate::bench::DescribeRun]) {
    for run in runs {
        println!("--- {}", run.label);
        for caption in &run.captions {
            let played: Vec<String> = caption
                .played
                .iter()
                .map(|p| {
                    let from = p
                        .from
                        .map(|f| format!("{f:?} ").to_lowercase())
                        .unwrap_or_default();
                    format!("{}{from}{}", if p.fits { "+" } else { "-" }, p.id)
                })
                .collect();
            let place = match caption.place_fits {
                Some(true) => format!(" +{}", caption.place),
                Some(false) => format!(" -{}", caption.place),
                None => String::new(),
            };
            println!(
                "{:?} {} {} [{}]{place}",
                caption.set,
                caption.lang,
                caption.caption,
                played.join(", ")
            );
        }
    }
}

/// A run's label for a table: the file name of a model path, else as is.
fn file_label(label: &str) -> String {
    std::path::Path::new(label)
        .file_name()
        .map_or(label.to_owned(), |n| n.to_string_lossy().into_owned())
}

pub fn tts(config: &Config, options: TtsOptions) -> Result<ExitCode> {
    use crate::bench;
    let model = config
        .speech_settings(&crate::config::Overrides {
            voice: options.voice,
            ..crate::config::Overrides::default()
        })
        .voice;
    let cores = crate::compute::available_cores();
    let bench::LoadedVoice {
        voice,
        load_s,
        optimize,
    } = bench::load_voice(&model)?;
    let texts = bench::sentences();
    println!(
        "tts benchmark: {} sentences and a 60-word paragraph, voice {}, {} cores",
        texts.len(),
        model.display(),
        cores
    );
    let mut rows = Vec::new();
    for threads in [1, cores] {
        let ours = bench::run_vivid_tts(&voice, threads, load_s)?;
        let theirs = bench::run_piper_tts(&options.python, &model, threads)?;
        rows.push((threads, ours, theirs));
    }
    println!(
        "{:<28} {:>14} {:>14} {:>12}",
        "", "vivid (tract)", "piper-tts/ort", "vivid/piper"
    );
    for (threads, ours, theirs) in &rows {
        let label = format!("RTF, {threads} thread(s)");
        println!(
            "{label:<28} {:>14.3} {:>14.3} {:>11.2}x",
            ours.rtf(),
            theirs.rtf(),
            ours.rtf() / theirs.rtf()
        );
        let label = format!("first audio, {threads} thr (s)");
        let (a, b) = (
            ours.first_audio_s.unwrap_or(f64::NAN),
            theirs.first_audio_s.unwrap_or(f64::NAN),
        );
        println!("{label:<28} {a:>14.3} {b:>14.3} {:>11.2}x", a / b);
    }
    let (_, ours, theirs) = &rows[rows.len() - 1];
    println!(
        "{:<28} {:>14.3} {:>14.3} {:>11.2}x",
        "model load (s)",
        ours.load_s,
        theirs.load_s,
        ours.load_s / theirs.load_s
    );
    let peak_ours = rows.iter().map(|r| r.1.peak_rss_kb).max().unwrap_or(0);
    let peak_theirs = rows.iter().map(|r| r.2.peak_rss_kb).max().unwrap_or(0);
    println!(
        "{:<28} {:>14.1} {:>14.1} {:>11.2}x",
        "peak RSS (MiB)",
        peak_ours as f64 / 1024.0,
        peak_theirs as f64 / 1024.0,
        peak_ours as f64 / peak_theirs.max(1) as f64
    );
    let optimize: Vec<String> = optimize
        .iter()
        .map(|(bucket, s)| format!("{bucket} ids {s:.2} s"))
        .collect();
    println!("plan optimize per bucket: {}", optimize.join(", "));
    println!("audio per run: {:.1} s", ours.audio_s);
    if options.profile {
        crate::compute::set_compute_threads(1);
        let sentence = &voice.prepare(bench::TTS_PARAGRAPH)?[0];
        let ids = voice.ids(&sentence.phonemes());
        let times = voice.profile_ids(&ids, &Default::default())?;
        let total: f64 = times.iter().map(|t| t.1).sum();
        println!(
            "time by op, one thread, one {}-id sentence ({total:.3} s):",
            ids.len()
        );
        for (op, seconds) in times.iter().take(12) {
            println!(
                "  {op:<24} {:>8.3} s {:>5.1}%",
                seconds,
                100.0 * seconds / total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vivid bench realism`: the table, or JSON; exit status 1 when a class's
/// render lies nearer another class than its own.
pub fn realism(references: &std::path::Path, json: bool) -> Result<ExitCode> {
    let report = crate::bench::realism::compare(references)?;
    let failed = report
        .classes
        .iter()
        .filter(|c| c.vivid_nearest != c.class)
        .count();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<10} {:>9} {:>8} {:<10} {:>6} {:<16} largest gaps (vivid minus real, in spreads)",
            "class", "refs", "held out", "vivid is", "own", "nearest other"
        );
        for c in &report.classes {
            let gaps: Vec<String> = c
                .largest_gaps
                .iter()
                .map(|(name, gap)| format!("{name} {gap:+.1}"))
                .collect();
            println!(
                "{:<10} {:>4}/{:<4} {:>3}/{:<4} {:<10} {:>6.2} {:<9} {:>6.2} {}",
                c.class,
                c.reference_files,
                c.reference_windows,
                c.references_recognized,
                c.reference_files,
                c.vivid_nearest,
                c.own_distance,
                c.nearest_other,
                c.other_distance,
                gaps.join(", ")
            );
        }
        println!("\ndescriptors, real recordings / vivid:");
        for (f, name) in report.features.iter().enumerate() {
            let row: Vec<String> = report
                .classes
                .iter()
                .map(|c| {
                    format!(
                        "{:>6.1}/{:<6.1}",
                        c.real_descriptors[f], c.vivid_descriptors[f]
                    )
                })
                .collect();
            println!("{name:<14} {}", row.join(" "));
        }
        let names: Vec<String> = report
            .classes
            .iter()
            .map(|c| format!("{:<13}", c.class))
            .collect();
        println!("{:<14} {}\n", "", names.join(" "));
        for c in &report.classes {
            for (file, judged) in &c.references_misjudged {
                println!("  reference {}/{file} lies nearer {judged}", c.class);
            }
        }
        println!(
            "{} of {} classes lie nearest their own real recordings ({}s renders, seeds {:?}; refs: files/windows of up to {} s)",
            report.classes.len() - failed,
            report.classes.len(),
            crate::bench::realism::RENDER_S,
            crate::bench::realism::SEEDS,
            crate::bench::realism::WINDOW_S
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
