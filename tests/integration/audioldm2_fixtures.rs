//! The committed AudioLDM2 fixtures (made by quantize/fixtures.sh): the
//! tiny bundles match their bundle.toml, every graph loads and runs in
//! tract, and the VAE decoder and vocoder reproduce diffusers' own run
//! (quantize/reference.py) without PyTorch. The full engine and its parity
//! on every intermediate are the AudioLDM2 engine's work (issue #6).

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audioldm2")
}

fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|d| *d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn bundle_toml(bundle: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(bundle.join("bundle.toml")).unwrap()).unwrap()
}

#[test]
fn bundles_match_their_bundle_toml() {
    for name in ["tiny-fp32", "tiny-int8"] {
        let bundle = fixtures().join(name);
        let meta = bundle_toml(&bundle);
        let components = meta["component"].as_table().unwrap();
        assert_eq!(components.len(), 7, "{name}: seven graphs");
        for (component, entry) in components {
            let file = bundle.join(entry["file"].as_str().unwrap());
            let size = std::fs::metadata(&file).unwrap().len();
            assert_eq!(
                size as i64,
                entry["bytes"].as_integer().unwrap(),
                "{component}"
            );
            let sha = vivid::models::sha256_file(&file).unwrap();
            assert_eq!(sha, entry["sha256"].as_str().unwrap(), "{name}/{component}");
        }
        for key in ["clap_tokenizer", "t5_tokenizer", "scheduler"] {
            assert!(
                bundle.join(meta[key].as_str().unwrap()).is_file(),
                "{name}: {key}"
            );
        }
    }
}

/// (name, dtype, shape) of each input of a bundle.toml component entry; a
/// free axis (-1, the UNet's batch) is taken as 2, the batch the GPU runs.
fn declared_inputs(entry: &toml::Value) -> Vec<(String, String, Vec<usize>)> {
    entry["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| {
            let shape = input["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| match d.as_integer().unwrap() {
                    -1 => 2,
                    d => d as usize,
                })
                .collect();
            (
                input["name"].as_str().unwrap().to_owned(),
                input["dtype"].as_str().unwrap().to_owned(),
                shape,
            )
        })
        .collect()
}

/// Loads a bundle graph with tract at the shapes its bundle.toml gives and
/// runs it on `inputs`.
fn run_graph(bundle: &Path, component: &str, inputs: TVec<TValue>) -> Vec<f32> {
    let meta = bundle_toml(bundle);
    let entry = &meta["component"][component];
    let mut model = tract_onnx::onnx()
        .model_for_path(bundle.join(entry["file"].as_str().unwrap()))
        .unwrap();
    for (index, (_, _, shape)) in declared_inputs(entry).into_iter().enumerate() {
        model = model
            .with_input_fact(index, f32::fact(shape).into())
            .unwrap();
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let outputs = plan.run(inputs).unwrap();
    outputs[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn tensor(shape: &[usize], data: Vec<f32>) -> TValue {
    tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data)
        .unwrap()
        .into_tensor()
        .into()
}

/// Max abs difference relative to the reference's peak, and correlation.
fn compare(ours: &[f32], reference: &[f32]) -> (f32, f64) {
    let c = crate::common::compare(ours, reference);
    (c.relative_diff(), c.correlation)
}

#[test]
fn vae_decoder_and_vocoder_reproduce_diffusers() {
    for case in ["ddim_negative", "dpm_plain"] {
        let reference = fixtures().join("reference").join(case);
        let (z_shape, z) = npy_f32(&reference.join("latents_final_scaled.npy"));
        let (mel_shape, mel) = npy_f32(&reference.join("mel.npy"));
        let (_, waveform) = npy_f32(&reference.join("waveform.npy"));
        for (bundle, bound) in [("tiny-fp32", 1e-4f32), ("tiny-int8", 2e-2)] {
            let bundle = fixtures().join(bundle);
            let ours_mel = run_graph(&bundle, "vae_decoder", tvec![tensor(&z_shape, z.clone())]);
            let (diff, corr) = compare(&ours_mel, &mel);
            assert!(
                diff <= bound && corr >= 0.999,
                "{case} vae_decoder: {diff} of peak, correlation {corr}"
            );
            // The vocoder takes the mel without its channel axis; the
            // pipeline trims the waveform to the requested length.
            let frames_bins = [1, mel_shape[2], mel_shape[3]];
            let ours_wave = run_graph(&bundle, "vocoder", tvec![tensor(&frames_bins, mel.clone())]);
            assert!(ours_wave.len() >= waveform.len());
            let (diff, corr) = compare(&ours_wave[..waveform.len()], &waveform);
            assert!(
                diff <= bound && corr >= 0.999,
                "{case} vocoder: {diff} of peak, correlation {corr}"
            );
            eprintln!("{case}: mel and waveform within {diff:.1e} of peak");
        }
    }
}

#[test]
fn every_tiny_graph_runs_in_tract() {
    // Zeros of the declared shapes (masks of ones): loading, optimizing
    // and running every graph is what the engine will rely on.
    let bundle = fixtures().join("tiny-fp32");
    let meta = bundle_toml(&bundle);
    for (component, entry) in meta["component"].as_table().unwrap() {
        let mut model = tract_onnx::onnx()
            .model_for_path(bundle.join(entry["file"].as_str().unwrap()))
            .unwrap();
        let mut inputs: TVec<TValue> = tvec![];
        for (index, (name, dtype, shape)) in declared_inputs(entry).into_iter().enumerate() {
            let len = shape.iter().product();
            let value: TValue = if dtype == "i64" {
                let fill: i64 = if name.contains("mask") {
                    1
                } else if name == "timestep" {
                    500
                } else {
                    3
                };
                model = model
                    .with_input_fact(index, i64::fact(shape.clone()).into())
                    .unwrap();
                tract_ndarray::ArrayD::from_shape_vec(shape, vec![fill; len])
                    .unwrap()
                    .into_tensor()
                    .into()
            } else {
                model = model
                    .with_input_fact(index, f32::fact(shape.clone()).into())
                    .unwrap();
                tensor(&shape, vec![0.1; len])
            };
            inputs.push(value);
        }
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let outputs = plan
            .run(inputs)
            .unwrap_or_else(|e| panic!("{component}: {e:#}"));
        let out = outputs[0].cast_to::<f32>().unwrap();
        let view = out.to_plain_array_view::<f32>().unwrap();
        assert!(
            view.iter().all(|v| v.is_finite()),
            "{component}: finite outputs"
        );
    }
}

#[test]
fn schedulers_reproduce_diffusers_from_its_noise_predictions() {
    use vivid::background::audioldm2::scheduler::{
        Ddim, DpmSolverPlusPlus, Scheduler, SchedulerConfig,
    };
    let bundle = fixtures().join("tiny-fp32");
    let config: SchedulerConfig =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("scheduler.json")).unwrap())
            .unwrap();
    let scaling = bundle_toml(&bundle)["vae_scaling_factor"]
        .as_float()
        .unwrap() as f32;
    for case in ["ddim_negative", "ddim_plain", "dpm_negative", "dpm_plain"] {
        let reference = fixtures().join("reference").join(case);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(reference.join("case.json")).unwrap())
                .unwrap();
        let steps = meta["steps"].as_u64().unwrap() as usize;
        let guidance = meta["guidance_scale"].as_f64().unwrap() as f32;
        let mut scheduler: Box<dyn Scheduler> = if case.starts_with("ddim") {
            Box::new(Ddim::new(&config, steps).unwrap())
        } else {
            Box::new(DpmSolverPlusPlus::new(&config, steps).unwrap())
        };
        let bytes = std::fs::read(reference.join("timesteps.npy")).unwrap();
        let expected: Vec<i64> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
        let ours: Vec<i64> = scheduler.timesteps().iter().map(|&t| t as i64).collect();
        assert_eq!(ours, expected, "{case} timesteps");

        let (_, mut latents) = npy_f32(&reference.join("latents_init.npy"));
        for step in 0..steps {
            // eps holds the unconditional and the conditional prediction.
            let (_, eps) = npy_f32(&reference.join(format!("eps_{step:02}.npy")));
            let half = eps.len() / 2;
            let guided: Vec<f32> = eps[..half]
                .iter()
                .zip(&eps[half..])
                .map(|(u, c)| u + guidance * (c - u))
                .collect();
            latents = scheduler.step(step, &guided, &latents);
        }
        let (_, decoded_input) = npy_f32(&reference.join("latents_final_scaled.npy"));
        let expected: Vec<f32> = decoded_input.iter().map(|z| z * scaling).collect();
        let (diff, corr) = compare(&latents, &expected);
        assert!(
            diff <= 1e-5 && corr >= 0.999_999,
            "{case}: final latents {diff} of peak, correlation {corr}"
        );
        eprintln!("{case}: final latents within {diff:.1e} of peak");
    }
}

#[test]
fn prompts_tokenize_exactly_as_diffusers() {
    use vivid::background::audioldm2::bundle::BundleMeta;
    use vivid::background::audioldm2::tokens::PromptTokenizer;
    let bundle = fixtures().join("tiny-fp32");
    let meta = BundleMeta::load(&bundle).unwrap();
    let tokenizer = PromptTokenizer::load(&bundle, &meta).unwrap();
    let npy_i64 = |path: &Path| -> Vec<i64> {
        let bytes = std::fs::read(path).unwrap();
        npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
    };
    for case in ["ddim_negative", "dpm_plain"] {
        let reference = fixtures().join("reference").join(case);
        let case_meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(reference.join("case.json")).unwrap())
                .unwrap();
        let prompt = case_meta["prompt"].as_str().unwrap();
        // diffusers uses "" when there is no negative prompt.
        let negative = case_meta["negative_prompt"].as_str().unwrap_or("");
        let clap = tokenizer.clap(prompt);
        assert_eq!(clap.ids, npy_i64(&reference.join("clap_input_ids_0.npy")));
        assert_eq!(
            clap.mask,
            npy_i64(&reference.join("clap_attention_mask_0.npy"))
        );
        let clap_negative = tokenizer.clap(negative);
        assert_eq!(
            clap_negative.ids,
            npy_i64(&reference.join("clap_input_ids_1.npy"))
        );
        let t5 = tokenizer.t5_prompt(prompt);
        assert_eq!(t5.ids, npy_i64(&reference.join("t5_input_ids_0.npy")));
        assert_eq!(t5.mask, npy_i64(&reference.join("t5_attention_mask_0.npy")));
        let t5_negative = tokenizer.t5_negative(negative, t5.ids.len());
        assert_eq!(
            t5_negative.ids,
            npy_i64(&reference.join("t5_input_ids_1.npy")),
            "{case}"
        );
        assert_eq!(
            t5_negative.mask,
            npy_i64(&reference.join("t5_attention_mask_1.npy"))
        );
    }
    // A prompt longer than CLAP's limit is cut with </s> kept last.
    let long = "rain ".repeat(200);
    let clap = tokenizer.clap(&long);
    assert_eq!(clap.ids.len(), meta.clap_max_tokens);
    assert!(clap.mask.iter().all(|&m| m == 1));
}
