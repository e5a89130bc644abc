//! The AudioLDM2 engine against diffusers' own runs of the tiny bundle
//! (tests/fixtures/audioldm2/reference, written by quantize/reference.py):
//! every intermediate, DDIM and DPM-Solver++, with and without a negative
//! prompt, from the same initial latents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vivid::background::audioldm2::{Engine, MemoryMode, Request, SchedulerKind};
use vivid::background::{Observer, Record, Stage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audioldm2")
}

/// Keeps every intermediate the engine reports.
#[derive(Default)]
struct Recorder {
    floats: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    ints: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    stages: Vec<Stage>,
    steps: usize,
}

impl Observer for Recorder {
    fn stage(&mut self, _clip: usize, stage: Stage) {
        self.stages.push(stage);
    }
    fn step(&mut self, _clip: usize, done: usize, _total: usize) {
        self.steps = done;
    }
    fn wants_records(&self) -> bool {
        true
    }
    fn record(&mut self, name: &str, value: Record<'_>) {
        match value {
            Record::F32(shape, data) => {
                self.floats
                    .insert(name.to_owned(), (shape.to_vec(), data.to_vec()));
            }
            Record::I64(shape, data) => {
                self.ints
                    .insert(name.to_owned(), (shape.to_vec(), data.to_vec()));
            }
        }
    }
}

fn read_npy(path: &Path) -> npyz::NpyFile<std::io::Cursor<Vec<u8>>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npyz::NpyFile::new(std::io::Cursor::new(bytes)).unwrap()
}

struct Case {
    name: String,
    request: Request,
}

fn case(name: &str) -> Case {
    let dir = fixtures().join("reference").join(name);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let latents: Vec<f32> = read_npy(&dir.join("latents_init.npy")).into_vec().unwrap();
    Case {
        name: name.to_owned(),
        request: Request {
            caption: meta["prompt"].as_str().unwrap().to_owned(),
            // diffusers uses "" when there is no negative prompt.
            negative: meta["negative_prompt"].as_str().unwrap_or("").to_owned(),
            steps: meta["steps"].as_u64().unwrap() as usize,
            scheduler: meta["scheduler"].as_str().unwrap().parse().unwrap(),
            guidance: meta["guidance_scale"].as_f64().unwrap() as f32,
            seed: 0,
            init_latents: Some(latents),
        },
    }
}

const CASES: [&str; 4] = ["ddim_negative", "ddim_plain", "dpm_negative", "dpm_plain"];

/// Compares every recorded intermediate with the reference; returns the
/// worst relative difference per name.
fn compare_with_reference(case: &str, recorder: &Recorder) -> BTreeMap<String, f32> {
    let dir = fixtures().join("reference").join(case);
    let mut worst = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "npy") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        // Inputs to the engine and what it does not report (the attention
        // masks are part of the token checks, the per-call timestep is the
        // schedule's).
        if name == "latents_init"
            || name.contains("attention_mask")
            || name.starts_with("unet_timestep")
        {
            continue;
        }
        let npy = read_npy(&path);
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        if let Some((our_shape, ours)) = recorder.ints.get(&name) {
            let theirs: Vec<i64> = npy.into_vec().unwrap();
            assert_eq!(our_shape, &shape, "{case}/{name}: shape");
            assert_eq!(ours, &theirs, "{case}/{name}");
            worst.insert(name, 0.0);
        } else if let Some((our_shape, ours)) = recorder.floats.get(&name) {
            let theirs: Vec<f32> = npy.into_vec().unwrap();
            assert_eq!(our_shape, &shape, "{case}/{name}: shape");
            let c = crate::common::compare(ours, &theirs);
            worst.insert(name, c.relative_diff());
        } else {
            panic!("{case}: the engine reported no `{name}`");
        }
    }
    worst
}

#[test]
fn every_intermediate_matches_diffusers() {
    let bundle = fixtures().join("tiny-fp32");
    let mut engine = Engine::open(&bundle, MemoryMode::Resident).expect("tiny bundle opens");
    engine.preload(&mut Recorder::default()).unwrap();
    let mut overall = 0f32;
    for name in CASES {
        let case = case(name);
        let mut recorder = Recorder::default();
        let waveform = engine.clip(&case.request, 0, &mut recorder).unwrap();
        assert_eq!(waveform.len(), engine.clip_samples());
        assert_eq!(recorder.steps, case.request.steps);
        assert_eq!(
            recorder.stages,
            [Stage::Conditioning, Stage::Denoising, Stage::Decoding],
            "resident: nothing loaded during a generation"
        );
        let worst = compare_with_reference(&case.name, &recorder);
        for required in [
            "clap_input_ids_0",
            "clap_embeds_1",
            "t5_input_ids_1",
            "t5_states_0",
            "projection_states_1",
            "projection_mask_0",
            "gpt2_embeds_0",
            "gpt2_embeds_1",
            "timesteps",
            "eps_00",
            "eps_04",
            "latents_final_scaled",
            "mel",
            "waveform",
        ] {
            assert!(worst.contains_key(required), "{name}: {required} compared");
        }
        for (key, diff) in &worst {
            // 1e-4 of each signal's peak: float32 rounding through a
            // different kernel library, not a different computation.
            assert!(*diff <= 1e-4, "{name}/{key}: {diff:.2e} of peak");
            overall = overall.max(*diff);
        }
        eprintln!(
            "{name}: worst intermediate {:.1e} of peak, waveform {:.1e}",
            worst.values().fold(0f32, |m, d| m.max(*d)),
            worst["waveform"]
        );
    }
    eprintln!("all cases: worst {overall:.1e} of peak");
}

#[test]
fn int8_bundle_stays_close_to_diffusers_fp32() {
    // Dynamic int8 weights change the numbers; the bound says how much.
    let bundle = fixtures().join("tiny-int8");
    let mut engine = Engine::open(&bundle, MemoryMode::Resident).expect("tiny int8 bundle opens");
    for name in ["ddim_negative", "dpm_plain"] {
        let case = case(name);
        let mut recorder = Recorder::default();
        engine.clip(&case.request, 0, &mut recorder).unwrap();
        let worst = compare_with_reference(name, &recorder);
        let waveform = worst["waveform"];
        let reference: Vec<f32> =
            read_npy(&fixtures().join("reference").join(name).join("waveform.npy"))
                .into_vec()
                .unwrap();
        let c = crate::common::compare(&recorder.floats["waveform"].1, &reference);
        eprintln!(
            "int8 {name}: waveform {waveform:.1e} of peak, correlation {:.4}",
            c.correlation
        );
        assert!(waveform <= 0.1, "{name}: {waveform} of peak");
        assert!(
            c.correlation >= 0.99,
            "{name}: correlation {}",
            c.correlation
        );
    }
}

#[test]
fn low_memory_mode_gives_the_same_audio() {
    let bundle = fixtures().join("tiny-fp32");
    let case = case("dpm_negative");
    let mut resident = Engine::open(&bundle, MemoryMode::Resident).unwrap();
    let expected = resident
        .clip(&case.request, 0, &mut Recorder::default())
        .unwrap();
    let mut low = Engine::open(&bundle, MemoryMode::Low).unwrap();
    let mut recorder = Recorder::default();
    let ours = low.clip(&case.request, 0, &mut recorder).unwrap();
    assert_eq!(ours, expected);
    // Each group is loaded for its stage.
    assert_eq!(
        recorder.stages,
        [
            Stage::Loading,
            Stage::Conditioning,
            Stage::Loading,
            Stage::Denoising,
            Stage::Loading,
            Stage::Decoding
        ]
    );
}

#[test]
fn a_profile_names_the_ops_that_ran() {
    // `vivid bench background --profile`: the tiny UNet timed op by op on
    // the CPU shows vivid's fused attention next to tract's products.
    use vivid::background::audioldm2::graph::{ComputeDevice, Graph};
    let bundle = fixtures().join("tiny-fp32");
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(&bundle).unwrap();
    let graph = Graph::load(&bundle, &meta, "unet", ComputeDevice::Cpu).unwrap();
    let times = graph
        .profile(graph.sample_inputs().unwrap())
        .unwrap()
        .expect("a CPU plan can be profiled");
    assert!(
        times.iter().any(|(op, _)| op == "FusedAttention"),
        "{times:?}"
    );
    assert!(times.iter().any(|(op, _)| op == "OptMatMul"), "{times:?}");
    assert!(times.windows(2).all(|w| w[0].1 >= w[1].1), "most first");
}

/// Sees the stages only, as the CLI's progress display does (no records).
#[derive(Default)]
struct StageLog(Vec<Stage>);

impl Observer for StageLog {
    fn stage(&mut self, _clip: usize, stage: Stage) {
        self.0.push(stage);
    }
}

#[test]
fn a_second_clip_of_the_same_caption_reuses_its_conditioning() {
    // A long background is several clips of one caption with other seeds:
    // the second must not load and run the text graphs again, and must
    // sound exactly as if it had.
    use Stage::{Conditioning, Decoding, Denoising, Loading};
    let bundle = fixtures().join("tiny-fp32");
    let mut request = case("dpm_negative").request;
    request.init_latents = None;
    let mut low = Engine::open(&bundle, MemoryMode::Low).unwrap();
    let mut first = StageLog::default();
    let a = low.clip(&request, 0, &mut first).unwrap();
    request.seed += 1;
    let mut second = StageLog::default();
    let b = low.clip(&request, 1, &mut second).unwrap();
    assert_eq!(
        first.0,
        [Loading, Conditioning, Loading, Denoising, Loading, Decoding]
    );
    assert_eq!(second.0, [Loading, Denoising, Loading, Decoding]);
    let mut fresh = Engine::open(&bundle, MemoryMode::Low).unwrap();
    let c = fresh.clip(&request, 1, &mut StageLog::default()).unwrap();
    assert_eq!(b, c, "the same as conditioned afresh");
    assert_ne!(a, b);
    // Another caption, or another negative, is conditioned anew.
    request.caption.push_str(" and wind");
    let mut third = StageLog::default();
    low.clip(&request, 2, &mut third).unwrap();
    assert!(third.0.contains(&Conditioning));
    request.negative = "Noise.".into();
    let mut fourth = StageLog::default();
    low.clip(&request, 3, &mut fourth).unwrap();
    assert!(fourth.0.contains(&Conditioning));
}

#[test]
fn a_seed_gives_the_same_audio_and_seeds_differ() {
    let bundle = fixtures().join("tiny-fp32");
    let mut engine = Engine::open(&bundle, MemoryMode::Resident).unwrap();
    let mut request = case("dpm_plain").request;
    request.init_latents = None;
    request.seed = 11;
    let a = engine.clip(&request, 0, &mut Recorder::default()).unwrap();
    let b = engine.clip(&request, 0, &mut Recorder::default()).unwrap();
    assert_eq!(a, b);
    request.seed = 12;
    let c = engine.clip(&request, 0, &mut Recorder::default()).unwrap();
    assert_ne!(a, c);
    // Guidance 1 runs the UNet once per step, on the prompt alone.
    request.guidance = 1.0;
    let mut recorder = Recorder::default();
    let d = engine.clip(&request, 0, &mut recorder).unwrap();
    assert!(!recorder.floats.contains_key("gpt2_embeds_1"));
    assert_ne!(c, d);
    assert_eq!(request.scheduler, SchedulerKind::Dpm);
}

#[test]
fn damaged_bundles_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = crate::common::copy_of_tiny_bundle(tmp.path());
    let open = |dir: &Path| {
        Engine::open(dir, MemoryMode::Resident)
            .and_then(|mut engine| engine.preload(&mut Recorder::default()))
    };
    // A flipped byte in the UNet: the sha256 check catches it.
    let unet = copy.join("unet.onnx");
    let mut bytes = std::fs::read(&unet).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&unet, &bytes).unwrap();
    let err = open(&copy).unwrap_err().to_string();
    assert!(err.contains("unet.onnx") && err.contains("sha256"), "{err}");
    // A truncated one: the size check.
    std::fs::write(&unet, &bytes[..1000]).unwrap();
    let err = open(&copy).unwrap_err().to_string();
    assert!(err.contains("unet.onnx") && err.contains("bytes"), "{err}");
    // A missing one.
    std::fs::remove_file(&unet).unwrap();
    let err = open(&copy).unwrap_err().to_string();
    assert!(
        err.contains("unet.onnx") && err.contains("cannot open"),
        "{err}"
    );
    // A broken bundle.toml.
    std::fs::write(copy.join("bundle.toml"), "schema = 1\nsource = 3\n").unwrap();
    let err = open(&copy).unwrap_err().to_string();
    assert!(err.contains("bundle.toml"), "{err}");
    // No bundle at all.
    let err = open(&tmp.path().join("nothing")).unwrap_err().to_string();
    assert!(err.contains("nothing/bundle.toml"), "{err}");
}

#[test]
fn bad_requests_are_refused() {
    let bundle = fixtures().join("tiny-fp32");
    let mut engine = Engine::open(&bundle, MemoryMode::Low).unwrap();
    let base = case("dpm_plain").request;
    let mut empty = base.clone();
    empty.caption = "  ".into();
    let err = engine
        .clip(&empty, 0, &mut Recorder::default())
        .unwrap_err();
    assert!(err.to_string().contains("caption is empty"), "{err}");
    let mut steps = base.clone();
    steps.steps = 0;
    let err = engine
        .clip(&steps, 0, &mut Recorder::default())
        .unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
    let mut latents = base.clone();
    latents.init_latents = Some(vec![0.0; 5]);
    let err = engine
        .clip(&latents, 0, &mut Recorder::default())
        .unwrap_err();
    assert!(err.to_string().contains("initial latent"), "{err}");
    let mut guidance = base;
    guidance.guidance = f32::NAN;
    let err = engine
        .clip(&guidance, 0, &mut Recorder::default())
        .unwrap_err();
    assert!(err.to_string().contains("guidance"), "{err}");
}

/// A tiny-bundle graph decluttered as for the GPU, run before and after
/// `rewrite` on the same inputs (token ids from a fixed pattern, masks 1,
/// timestep 500, float inputs seeded noise).
struct Rewritten {
    /// Nodes the rewrite replaced, and how many a second pass found.
    replaced: usize,
    left: usize,
    before: tract_onnx::prelude::Tensor,
    after: tract_onnx::prelude::Tensor,
}

#[test]
fn fused_attention_computes_the_same_on_the_cpu() {
    // The UNet's self-attention (scores, softmax, product) as one op a
    // block of queries at a time: the noise prediction within 1e-5 of the
    // peak of tract's own three ops.
    let r = rewrite_tiny_graph("unet", vivid::compute::attention::use_fused_attention);
    assert!(r.replaced > 0, "the UNet's attention chains");
    assert_eq!(r.left, 0, "none left");
    assert_within_of_peak(&r, 1e-5);
}

#[test]
fn tap_sum_convolutions_compute_the_same_on_the_cpu() {
    // The HiFi-GAN vocoder's 1-D convolutions and the VAE decoder's 3x3
    // ones as sums over taps: the waveform and the mel within 1e-5 of the
    // peak of tract's convolutions.
    for component in ["vocoder", "vae_decoder"] {
        let r = rewrite_tiny_graph(component, |model| {
            vivid::compute::tap_sum::use_tap_sum_convolutions(model, &Default::default())
        });
        assert!(r.replaced > 0, "the {component}'s convolutions");
        assert_eq!(r.left, 0, "none left");
        assert_within_of_peak(&r, 1e-5);
    }
}

/// The rewritten graph's output is within `share` of the original's peak.
fn assert_within_of_peak(r: &Rewritten, share: f32) {
    assert_eq!(r.before.shape(), r.after.shape());
    let c = crate::common::compare(&f32_vec(&r.after), &f32_vec(&r.before));
    assert!(c.reference_peak > 0.0, "the graph computes something");
    assert!(c.relative_diff() <= share, "{} of peak", c.relative_diff());
    eprintln!(
        "{} nodes rewritten; output within {:.1e} of peak",
        r.replaced,
        c.relative_diff()
    );
}

fn rewrite_tiny_graph(
    component: &str,
    rewrite: fn(&mut tract_onnx::prelude::TypedModel) -> tract_onnx::prelude::TractResult<usize>,
) -> Rewritten {
    use tract_onnx::prelude::*;
    let bundle = fixtures().join("tiny-fp32");
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(&bundle).unwrap();
    let entry = &meta.component[component];
    let mut model = tract_onnx::onnx()
        .model_for_path(bundle.join(&entry.file))
        .unwrap();
    let tensors = vivid::background::audioldm2::graph::sample_tensors(&entry.inputs).unwrap();
    let mut inputs: TVec<TValue> = tvec![];
    for (index, tensor) in tensors.into_iter().enumerate() {
        let fact = TypedFact::shape_and_dt_of(&tensor);
        model = model.with_input_fact(index, fact.into()).unwrap();
        inputs.push(tensor.into());
    }
    let decluttered = model.into_typed().unwrap().into_decluttered().unwrap();
    let original = decluttered.clone().into_runnable().unwrap();
    let mut changed = decluttered;
    let replaced = rewrite(&mut changed).unwrap();
    let left = rewrite(&mut changed).unwrap();
    let changed = changed.into_runnable().unwrap();
    let before = original
        .run(inputs.clone())
        .unwrap()
        .remove(0)
        .into_tensor();
    let after = changed.run(inputs).unwrap().remove(0).into_tensor();
    Rewritten {
        replaced,
        left,
        before,
        after,
    }
}

fn f32_vec(tensor: &tract_onnx::prelude::Tensor) -> Vec<f32> {
    tensor
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn gelu_unfused_for_the_gpu_computes_the_same_on_the_cpu() {
    // The rewrite the CUDA runtime needs (tract-cuda has no GeluExact
    // kernel), checked where it can be: on the CPU, against the fused plan.
    let r = rewrite_tiny_graph(
        "unet",
        vivid::background::audioldm2::graph::unfuse_exact_gelu,
    );
    assert!(r.replaced > 0, "the UNet's GEGLU blocks use exact GELU");
    assert_eq!(r.left, 0, "none left");
    assert_within_of_peak(&r, 1e-5);
}

#[test]
fn a_graph_that_returns_nan_fails_with_its_name() {
    // NaN states fed to the projection come out as NaN: the graph run must
    // fail and name the graph (on the GPU this is how a wrong kernel
    // shows), not hand NaN on to the next stage. The same graph on finite
    // input runs. (The VAE and vocoder are no test of this: tract's
    // activations there turn NaN into numbers.)
    use tract_onnx::prelude::*;
    use vivid::background::audioldm2::graph::{ComputeDevice, Graph};
    let bundle = fixtures().join("tiny-fp32");
    let meta = vivid::background::audioldm2::bundle::BundleMeta::load(&bundle).unwrap();
    let projection = Graph::load(&bundle, &meta, "projection", ComputeDevice::Cpu).unwrap();
    let inputs = |fill: f32| -> Vec<Tensor> {
        meta.component["projection"]
            .inputs
            .iter()
            .map(|input| {
                let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
                let count: usize = shape.iter().product();
                if input.dtype == "i64" {
                    Tensor::from_shape(&shape, &vec![1i64; count]).unwrap()
                } else {
                    Tensor::from_shape(&shape, &vec![fill; count]).unwrap()
                }
            })
            .collect()
    };
    assert!(projection.run(inputs(0.5)).is_ok());
    let error = projection.run(inputs(f32::NAN)).unwrap_err().to_string();
    assert!(error.contains("projection"), "{error}");
    assert!(error.contains("not finite"), "{error}");
}

#[test]
fn cubes_for_the_gpu_compute_the_same_on_the_cpu() {
    // T5's gated GELU (tanh form) cubes with Pow(x, 3): tract-cuda has
    // Square and Mul kernels but no PowConst one. x·x·x instead of powf(x,
    // 3) may differ in the last bit; the T5 states must stay within 1e-5.
    let r = rewrite_tiny_graph(
        "t5_encoder",
        vivid::background::audioldm2::graph::expand_cubes,
    );
    assert!(r.replaced > 0, "T5's GELU cubes with Pow");
    assert_eq!(r.left, 0, "none left");
    assert_within_of_peak(&r, 1e-5);
}

#[test]
fn both_guidance_halves_in_one_batch_match_diffusers() {
    // The tiny UNet, like every UNet export.py writes, has a free batch
    // axis: the GPU runs both guidance halves as one batch of two. Forced
    // here on the CPU, it must give what diffusers gives, and what two
    // runs of batch 1 give.
    let bundle = fixtures().join("tiny-fp32");
    let mut batched = Engine::open(&bundle, MemoryMode::Resident).unwrap();
    batched.set_guidance_in_one_batch(Some(true));
    let mut separate = Engine::open(&bundle, MemoryMode::Resident).unwrap();
    separate.set_guidance_in_one_batch(Some(false));
    for name in ["ddim_negative", "dpm_plain"] {
        let case = case(name);
        let mut recorder = Recorder::default();
        let ours = batched.clip(&case.request, 0, &mut recorder).unwrap();
        let worst = compare_with_reference(name, &recorder);
        for (key, diff) in &worst {
            assert!(*diff <= 1e-4, "batch 2, {name}/{key}: {diff:.2e} of peak");
        }
        let theirs = separate
            .clip(&case.request, 0, &mut Recorder::default())
            .unwrap();
        let c = crate::common::compare(&ours, &theirs);
        assert!(
            c.relative_diff() <= 1e-5,
            "{name}: batch 2 against batch 1: {:.2e} of peak",
            c.relative_diff()
        );
    }
    // Without guidance a batch-2 UNet runs the one conditioning (twice).
    let mut unguided = case("dpm_plain").request;
    unguided.guidance = 1.0;
    let ours = batched
        .clip(&unguided, 0, &mut Recorder::default())
        .unwrap();
    let theirs = separate
        .clip(&unguided, 0, &mut Recorder::default())
        .unwrap();
    let c = crate::common::compare(&ours, &theirs);
    assert!(
        c.relative_diff() <= 1e-5,
        "unguided: {:.2e}",
        c.relative_diff()
    );
    assert!(c.correlation > 0.999_999, "unguided: {}", c.correlation);
}

#[test]
fn text_graphs_at_a_free_length_match_them_padded_to_the_longest() {
    // T5 and GPT-2 run at the caption's length on the CPU, and padded with
    // mask 0 to the longest caption on the GPU (and in bundles exported
    // before the free axis). Both must give the same states at the real
    // positions: here the same graph, loaded both ways, on a 19-token
    // sequence whose last 3 tokens (T5) or a stretch in the middle
    // (GPT-2, as a padded negative prompt has) are masked.
    use vivid::background::audioldm2::bundle::BundleMeta;
    use vivid::background::audioldm2::graph::{
        ComputeDevice, Graph, f32_tensor, f32_values, i64_tensor,
    };
    let dir = crate::common::tiny_bundle();
    let meta = BundleMeta::load(&dir).unwrap();
    let n = 19;
    for (component, longest) in [("t5_encoder", 128), ("gpt2", 140)] {
        let free = Graph::load_shaped(&dir, &meta, component, ComputeDevice::Cpu, 1, None).unwrap();
        assert_eq!(
            free.fixed_length("attention_mask"),
            None,
            "{component} free"
        );
        let padded =
            Graph::load_shaped(&dir, &meta, component, ComputeDevice::Cpu, 1, Some(longest))
                .unwrap();
        assert_eq!(padded.fixed_length("attention_mask"), Some(longest));
        let mut mask = vec![1i64; n];
        let first_input = |len: usize| -> tract_onnx::prelude::Tensor {
            if component == "t5_encoder" {
                let ids: Vec<i64> = (0..len as i64).map(|i| (i * 7 + 3) % 40 + 3).collect();
                i64_tensor(&[1, len], &ids).unwrap()
            } else {
                let width = 24;
                let mut embeds =
                    vivid::background::audioldm2::noise::gaussian_latents(7, n * width);
                embeds.resize(len * width, 0.0);
                f32_tensor(&[1, len, width], &embeds).unwrap()
            }
        };
        if component == "t5_encoder" {
            mask[n - 3..].fill(0);
        } else {
            mask[8..11].fill(0);
        }
        let mut long_mask = mask.clone();
        long_mask.resize(longest, 0);
        let at_free = free
            .run(vec![first_input(n), i64_tensor(&[1, n], &mask).unwrap()])
            .unwrap();
        let at_longest = padded
            .run(vec![
                first_input(longest),
                i64_tensor(&[1, longest], &long_mask).unwrap(),
            ])
            .unwrap();
        let ours = f32_values(component, &at_free[0]).unwrap();
        let theirs = f32_values(component, &at_longest[0]).unwrap();
        let width = ours.len() / n;
        assert_eq!(theirs.len(), longest * width);
        // The real positions (GPT-2's masked stretch is never read; T5's
        // padding rows are cut by the engine).
        let real: Vec<usize> = (0..n).filter(|&i| mask[i] == 1).collect();
        let pick = |v: &[f32]| -> Vec<f32> {
            real.iter()
                .flat_map(|&i| v[i * width..(i + 1) * width].to_vec())
                .collect()
        };
        let c = crate::common::compare(&pick(&ours), &pick(&theirs));
        assert!(c.reference_peak > 0.0);
        assert!(
            c.relative_diff() <= 1e-5,
            "{component}: {} of peak",
            c.relative_diff()
        );
    }
}
