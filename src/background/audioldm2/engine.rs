//! The AudioLDM2 pipeline over a loaded bundle: conditioning, the denoising
//! loop with classifier-free guidance, VAE and vocoder. One call makes one
//! clip at the bundle's native length (its graphs have fixed shapes);
//! [`super::long`] fits clips to the length a narration needs.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tract_linalg::multithread::Executor;

use super::bundle::{BundleMeta, bundle_id};
use super::conditioning::{Conditioning, TextStages, first};
use super::graph::{Graph, f32_tensor, f32_values, i64_tensor};
use super::noise::gaussian_latents;
use super::scheduler::{Ddim, DpmSolverPlusPlus, Scheduler, SchedulerConfig};
use super::tokens::PromptTokenizer;
use super::{BackgroundError, Observer, Record, Stage, Unobserved};

/// The denoising schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// DDIM, eta 0: AudioLDM2's own (about 200 steps for full quality).
    Ddim,
    /// DPM-Solver++ multistep: comparable quality in 20–25 steps.
    Dpm,
}

impl SchedulerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Dpm => "dpm",
        }
    }
}

impl std::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ddim" => Ok(SchedulerKind::Ddim),
            "dpm" => Ok(SchedulerKind::Dpm),
            other => Err(format!("unknown scheduler \"{other}\" (ddim or dpm)")),
        }
    }
}

/// Whether every graph stays loaded between generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// All graphs loaded once and kept: fastest.
    Resident,
    /// Each group of graphs (text encoders and GPT-2; UNet; VAE and
    /// vocoder) is loaded when its stage runs and dropped after it, so the
    /// peak is the largest group rather than the sum (8 GB boards). Every
    /// generation pays the loading time again.
    Low,
}

/// One clip to generate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub caption: String,
    /// What the background should not sound like; empty for none (then
    /// diffusers conditions the unconditional half on "").
    pub negative: String,
    pub steps: usize,
    pub scheduler: SchedulerKind,
    /// Classifier-free guidance scale; guidance is used only above 1.
    pub guidance: f32,
    pub seed: u64,
    /// Initial latents instead of the seeded noise (parity checks).
    #[serde(skip)]
    pub init_latents: Option<Vec<f32>>,
}

struct Decoders {
    vae: Graph,
    vocoder: Graph,
}

/// A bundle ready to generate.
pub struct Engine {
    dir: PathBuf,
    meta: BundleMeta,
    id: String,
    tokenizer: PromptTokenizer,
    scheduler_config: SchedulerConfig,
    mode: MemoryMode,
    device: super::graph::ComputeDevice,
    text: Option<TextStages>,
    unet: Option<Graph>,
    decoders: Option<Decoders>,
    /// The last clip's conditioning: the next clip of a longer background
    /// (same caption, another seed) reuses it instead of running CLAP, T5
    /// and GPT-2's 16 passes again (4.4 s on 2 cores for the real-size
    /// bundle, plus loading them again in low-memory mode).
    last_conditioning: Option<ConditioningMemo>,
    /// Both guidance halves in one UNet run (a bundle whose UNet has a
    /// free batch axis); None: on the GPU only (see [`Engine::load_unet`]).
    guidance_in_one_batch: Option<bool>,
}

/// A conditioning and the text it was made from.
struct ConditioningMemo {
    caption: String,
    negative: Option<String>,
    positive: Conditioning,
    negative_conditioning: Option<Conditioning>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the bundle in `dir`: reads bundle.toml, the tokenizers and
    /// the scheduler config. The graphs are verified, loaded and optimized
    /// when first needed (or now, with [`Engine::preload`]); in
    /// [`MemoryMode::Low`] they are dropped again after their stage.
    pub fn open(dir: &Path, mode: MemoryMode) -> Result<Engine, BackgroundError> {
        let meta = BundleMeta::load(dir)?;
        for name in super::bundle::COMPONENTS {
            meta.component(dir, name)?;
        }
        let tokenizer = PromptTokenizer::load(dir, &meta)?;
        let scheduler_path = dir.join(&meta.scheduler);
        let scheduler_text = std::fs::read_to_string(&scheduler_path).map_err(|cause| {
            super::bundle::BundleError::Read {
                path: scheduler_path.clone(),
                cause,
            }
        })?;
        let scheduler_config: SchedulerConfig =
            serde_json::from_str(&scheduler_text).map_err(|e| {
                super::bundle::BundleError::Invalid {
                    path: scheduler_path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let id = bundle_id(dir, &meta)?;
        Ok(Engine {
            dir: dir.to_path_buf(),
            meta,
            id,
            tokenizer,
            scheduler_config,
            mode,
            device: super::graph::ComputeDevice::Cpu,
            text: None,
            unet: None,
            decoders: None,
            last_conditioning: None,
            guidance_in_one_batch: None,
        })
    }

    /// Loads every graph now, so that a damaged bundle is found at start
    /// and the first background does not wait (resident mode; in low-memory
    /// mode this only checks every graph loads).
    pub fn preload(&mut self, observer: &mut dyn Observer) -> Result<(), BackgroundError> {
        observer.stage(0, Stage::Loading);
        let text = self.load_text()?;
        let unet = self.load_unet()?;
        let decoders = self.load_decoders()?;
        if self.mode == MemoryMode::Resident {
            self.text = Some(text);
            self.unet = Some(unet);
            self.decoders = Some(decoders);
        }
        Ok(())
    }

    /// Runs the graphs on `device` from now on (graphs already loaded are
    /// dropped). Fails when this build cannot use the device.
    pub(crate) fn set_device(
        &mut self,
        device: super::graph::ComputeDevice,
    ) -> Result<(), BackgroundError> {
        if !device.built_in() {
            return Err(BackgroundError::Request(
                "background.device = \"cuda\" needs a vivid built with `--features cuda-background` (or `cuda`)"
                    .into(),
            ));
        }
        if device != self.device {
            self.device = device;
            self.text = None;
            self.unet = None;
            self.decoders = None;
        }
        Ok(())
    }

    fn load_text(&self) -> Result<TextStages, BackgroundError> {
        TextStages::load(&self.dir, &self.meta, self.device)
    }

    /// Runs both halves of classifier-free guidance as one UNet run of
    /// batch 2 (`Some(true)`), as two of batch 1 (`Some(false)`), or as
    /// fits the device (`None`, the default). Needs a bundle whose UNet
    /// has a free batch axis; others always run batch 1.
    pub fn set_guidance_in_one_batch(&mut self, one_batch: Option<bool>) {
        if one_batch != self.guidance_in_one_batch {
            self.guidance_in_one_batch = one_batch;
            self.unet = None;
        }
    }

    /// Forgets the last clip's conditioning, so that the next clip runs
    /// the text stages again (a benchmark times whole clips).
    pub(crate) fn forget_conditioning(&mut self) {
        self.last_conditioning = None;
    }

    /// The loaded UNet's batch (2: both guidance halves in one run).
    pub fn unet_batch(&self) -> Option<usize> {
        self.unet.as_ref().map(Graph::batch)
    }

    /// The UNet at batch 2 where its batch axis is free and both guidance
    /// halves should run as one: by default on the GPU, where one run of
    /// batch 2 keeps it busier than two of batch 1 and halves the kernel
    /// launches. On the CPU the halves run side by side on half the
    /// threads each instead (`guidance_executors`).
    fn load_unet(&self) -> Result<Graph, BackgroundError> {
        let free_batch = self
            .meta
            .input_shape("unet", "sample")
            .and_then(|shape| shape.first())
            .is_some_and(|&d| d < 0);
        let one_batch = self
            .guidance_in_one_batch
            .unwrap_or(self.device == super::graph::ComputeDevice::Cuda);
        let batch = if free_batch && one_batch { 2 } else { 1 };
        Graph::load_batched(&self.dir, &self.meta, "unet", self.device, batch)
    }

    fn load_decoders(&self) -> Result<Decoders, BackgroundError> {
        Ok(Decoders {
            vae: Graph::load(&self.dir, &self.meta, "vae_decoder", self.device)?,
            vocoder: Graph::load(&self.dir, &self.meta, "vocoder", self.device)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn meta(&self) -> &BundleMeta {
        &self.meta
    }

    /// The bundle's identity (see [`bundle_id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sample_rate(&self) -> u32 {
        self.meta.sample_rate
    }

    /// Samples in one clip.
    pub fn clip_samples(&self) -> usize {
        (self.meta.seconds * f64::from(self.meta.sample_rate)).round() as usize
    }

    pub fn latent_shape(&self) -> &[usize] {
        &self.meta.latent_shape
    }

    /// True when the bundle holds random weights (a test fixture or a
    /// benchmark bundle): it makes noise, not a soundscape.
    pub fn is_random_weights(&self) -> bool {
        self.meta.source.contains("random weights")
    }

    /// Load and run times of the loaded graphs, in pipeline order.
    pub fn timings(&self) -> Vec<super::graph::GraphTiming> {
        self.graphs().iter().map(|g| g.timing()).collect()
    }

    pub(crate) fn reset_timings(&self) {
        for graph in self.graphs() {
            graph.reset_timing();
        }
    }

    /// The matmul kernels of each loaded graph.
    pub fn kernels(&self) -> Vec<(String, std::collections::BTreeMap<String, usize>)> {
        self.graphs()
            .iter()
            .map(|g| (g.component().to_owned(), g.kernels()))
            .collect()
    }

    fn graphs(&self) -> Vec<&Graph> {
        let mut graphs = Vec::new();
        if let Some(text) = &self.text {
            graphs.extend(text.graphs());
        }
        graphs.extend(self.unet.iter());
        if let Some(d) = &self.decoders {
            graphs.extend([&d.vae, &d.vocoder]);
        }
        graphs
    }

    /// Seconds one classifier-free-guidance step of the UNet takes (two
    /// runs), median of `repeats`, on zero conditioning of the right shapes
    /// (the time does not depend on the values). For benchmarks.
    pub(crate) fn time_unet_step(&mut self, repeats: usize) -> Result<f64, BackgroundError> {
        if self.unet.is_none() {
            self.unet = Some(self.load_unet()?);
        }
        let unet = self
            .unet
            .as_ref()
            .ok_or_else(|| BackgroundError::Internal("UNet not loaded".into()))?;
        let count = |input: &str| -> usize {
            self.meta
                .input_shape("unet", input)
                .map_or(0, |s| s.iter().map(|&d| d.max(1) as usize).product())
        };
        let zeros = Conditioning {
            gpt_states: vec![0.0; count("gpt_states")],
            t5_states: vec![0.0; count("t5_states")],
            t5_mask: vec![1; count("t5_mask")],
            t5_length: count("t5_mask"),
        };
        let latents = gaussian_latents(0, count("sample"));
        let halves = self.guidance_executors();
        let mut times = Vec::new();
        for _ in 0..repeats.max(1) {
            let started = std::time::Instant::now();
            self.unet_pair(unet, halves.as_ref(), &latents, 500, &zeros, &zeros)?;
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    fn check(&self, request: &Request) -> Result<(), BackgroundError> {
        if request.caption.trim().is_empty() {
            return Err(BackgroundError::Request(
                "the caption is empty: say what the background should sound like".into(),
            ));
        }
        if !(request.guidance.is_finite() && (0.0..=50.0).contains(&request.guidance)) {
            return Err(BackgroundError::Request(format!(
                "guidance scale {} is outside 0 to 50 (3.5 is AudioLDM2's default)",
                request.guidance
            )));
        }
        if let Some(latents) = &request.init_latents {
            let expected: usize = self.meta.latent_shape.iter().product();
            if latents.len() != expected {
                return Err(BackgroundError::Request(format!(
                    "{} initial latent values given, the bundle takes {:?}",
                    latents.len(),
                    self.meta.latent_shape
                )));
            }
        }
        for (what, text) in [
            ("caption", &request.caption),
            ("negative", &request.negative),
        ] {
            if let Some(note) = self.tokenizer.truncation(text) {
                tracing::warn!("the {what} is too long for the text encoders: {note}");
            }
        }
        Ok(())
    }

    /// Generates one clip of the bundle's native length (clip number
    /// `clip` of a longer background, for progress reports).
    pub fn clip(
        &mut self,
        request: &Request,
        clip: usize,
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        self.check(request)?;
        let guided = request.guidance > 1.0;
        let mut scheduler: Box<dyn Scheduler> = match request.scheduler {
            SchedulerKind::Ddim => Box::new(Ddim::new(&self.scheduler_config, request.steps)?),
            SchedulerKind::Dpm => Box::new(DpmSolverPlusPlus::new(
                &self.scheduler_config,
                request.steps,
            )?),
        };

        // In low-memory mode the text graphs are loaded for this and
        // dropped when it returns, before the UNet is loaded.
        let (positive, negative) = self.condition(request, guided, clip, observer)?;

        let latent_shape = self.meta.latent_shape.clone();
        let latent_len: usize = latent_shape.iter().product();
        let mut latents = match &request.init_latents {
            Some(given) => given.clone(),
            None => gaussian_latents(request.seed, latent_len),
        };
        let unet = match self.unet.take() {
            Some(unet) => unet,
            None => {
                observer.stage(clip, Stage::Loading);
                self.load_unet()?
            }
        };
        let result = self.denoise(
            &unet,
            &positive,
            negative.as_ref(),
            scheduler.as_mut(),
            request.guidance,
            &mut latents,
            clip,
            observer,
        );
        if self.mode == MemoryMode::Resident {
            self.unet = Some(unet);
        } else {
            drop(unet);
        }
        result?;

        let decoders = match self.decoders.take() {
            Some(decoders) => decoders,
            None => {
                observer.stage(clip, Stage::Loading);
                self.load_decoders()?
            }
        };
        observer.stage(clip, Stage::Decoding);
        let waveform = self.decode(&decoders, &latents, observer);
        if self.mode == MemoryMode::Resident {
            self.decoders = Some(decoders);
        }
        waveform
    }

    /// The conditioning of the request's caption (and negative, when
    /// `guided`), the last clip's when it was made from the same text. A
    /// parity check that records intermediates always gets it made afresh.
    fn condition(
        &mut self,
        request: &Request,
        guided: bool,
        clip: usize,
        observer: &mut dyn Observer,
    ) -> Result<(Conditioning, Option<Conditioning>), BackgroundError> {
        let negative = guided.then(|| request.negative.clone());
        if let Some(memo) = &self.last_conditioning
            && !observer.wants_records()
            && memo.caption == request.caption
            && memo.negative == negative
        {
            tracing::debug!(clip, "the caption's conditioning is the last clip's");
            return Ok((memo.positive.clone(), memo.negative_conditioning.clone()));
        }
        self.last_conditioning = None;
        let (positive, negative_conditioning) =
            self.make_conditioning(request, guided, clip, observer)?;
        self.last_conditioning = Some(ConditioningMemo {
            caption: request.caption.clone(),
            negative,
            positive: positive.clone(),
            negative_conditioning: negative_conditioning.clone(),
        });
        Ok((positive, negative_conditioning))
    }

    fn make_conditioning(
        &mut self,
        request: &Request,
        guided: bool,
        clip: usize,
        observer: &mut dyn Observer,
    ) -> Result<(Conditioning, Option<Conditioning>), BackgroundError> {
        let loaded;
        let text = match self.mode {
            MemoryMode::Resident => {
                if self.text.is_none() {
                    observer.stage(clip, Stage::Loading);
                    self.text = Some(self.load_text()?);
                }
                self.text
                    .as_ref()
                    .ok_or_else(|| BackgroundError::Internal("text graphs not loaded".into()))?
            }
            MemoryMode::Low => {
                observer.stage(clip, Stage::Loading);
                loaded = self.load_text()?;
                &loaded
            }
        };
        observer.stage(clip, Stage::Conditioning);
        let (meta, tokenizer) = (&self.meta, &self.tokenizer);
        let halves = self.guidance_executors();
        match halves {
            // The two prompts side by side, each on half the threads, as
            // the UNet's guidance halves run (GPT-2's 8 passes per prompt
            // are most of the time). A parity check records intermediates
            // in diffusers' order instead.
            Some((first_half, second_half)) if guided && !observer.wants_records() => {
                use tract_linalg::multithread::multithread_tract_scope;
                let prompt_length = tokenizer.t5_prompt(&request.caption).ids.len();
                std::thread::scope(|scope| {
                    let negative = scope.spawn(|| {
                        multithread_tract_scope(second_half, || {
                            let negative = &request.negative;
                            let length = Some(prompt_length);
                            text.encode(meta, tokenizer, negative, length, "1", &mut Unobserved)
                        })
                    });
                    let positive = multithread_tract_scope(first_half, || {
                        text.encode(
                            meta,
                            tokenizer,
                            &request.caption,
                            None,
                            "0",
                            &mut Unobserved,
                        )
                    });
                    let negative = negative.join().unwrap_or_else(|_| {
                        Err(BackgroundError::Internal(
                            "conditioning on the negative prompt panicked".into(),
                        ))
                    });
                    Ok((positive?, Some(negative?)))
                })
            }
            _ => {
                // diffusers encodes the prompt first (tag 0), then the
                // negative (1).
                let positive =
                    text.encode(meta, tokenizer, &request.caption, None, "0", observer)?;
                let negative = if guided {
                    Some(text.encode(
                        meta,
                        tokenizer,
                        &request.negative,
                        Some(positive.t5_length),
                        "1",
                        observer,
                    )?)
                } else {
                    None
                };
                Ok((positive, negative))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn denoise(
        &self,
        unet: &Graph,
        positive: &Conditioning,
        negative: Option<&Conditioning>,
        scheduler: &mut dyn Scheduler,
        guidance: f32,
        latents: &mut Vec<f32>,
        clip: usize,
        observer: &mut dyn Observer,
    ) -> Result<(), BackgroundError> {
        let shape = &self.meta.latent_shape;
        let timesteps: Vec<i64> = scheduler.timesteps().iter().map(|&t| t as i64).collect();
        if observer.wants_records() {
            observer.record("timesteps", Record::I64(&[timesteps.len()], &timesteps));
        }
        observer.stage(clip, Stage::Denoising);
        let total = timesteps.len();
        let halves = negative.and(self.guidance_executors());
        for (index, &t) in timesteps.iter().enumerate() {
            let eps = match negative {
                Some(negative) => {
                    let (unconditional, conditional) =
                        self.unet_pair(unet, halves.as_ref(), latents, t, negative, positive)?;
                    if observer.wants_records() {
                        let both = [unconditional.as_slice(), conditional.as_slice()].concat();
                        let mut batch = shape.clone();
                        batch[0] = 2;
                        observer.record(&format!("eps_{index:02}"), Record::F32(&batch, &both));
                    }
                    unconditional
                        .iter()
                        .zip(&conditional)
                        .map(|(u, c)| u + guidance * (c - u))
                        .collect()
                }
                None => {
                    let conditional = self.unet_eps(unet, latents, t, positive)?;
                    if observer.wants_records() {
                        observer
                            .record(&format!("eps_{index:02}"), Record::F32(shape, &conditional));
                    }
                    conditional
                }
            };
            *latents = scheduler.step(index, &eps, latents);
            observer.step(clip, index + 1, total);
            if let Some(reason) = observer.cancelled() {
                return Err(BackgroundError::Cancelled(reason));
            }
        }
        Ok(())
    }

    /// The UNet's noise prediction for one sample and conditioning.
    fn unet_eps(
        &self,
        unet: &Graph,
        sample: &[f32],
        t: i64,
        c: &Conditioning,
    ) -> Result<Vec<f32>, BackgroundError> {
        let mut predictions = self.unet_run(unet, sample, t, &[c])?;
        predictions
            .pop()
            .ok_or_else(|| BackgroundError::Internal("the UNet returned no prediction".into()))
    }

    /// The UNet's noise predictions for one sample under each of
    /// `conditionings` (at most the graph's batch), in one run: a batch
    /// larger than the conditionings repeats the last (no guidance on a
    /// batch-2 UNet).
    fn unet_run(
        &self,
        unet: &Graph,
        sample: &[f32],
        t: i64,
        conditionings: &[&Conditioning],
    ) -> Result<Vec<Vec<f32>>, BackgroundError> {
        let batch = unet.batch();
        let (Some(model), true) = (conditionings.first(), conditionings.len() <= batch) else {
            return Err(BackgroundError::Internal(format!(
                "{} conditionings for a UNet of batch {batch}",
                conditionings.len()
            )));
        };
        let tokens = self.meta.gpt2_new_tokens.max(1);
        let gpt_width = model.gpt_states.len() / tokens;
        let padded = model.t5_mask.len().max(1);
        let t5_width = model.t5_states.len() / padded;
        let mut samples = Vec::with_capacity(sample.len() * batch);
        let mut gpt_states = Vec::with_capacity(model.gpt_states.len() * batch);
        let mut t5_states = Vec::with_capacity(model.t5_states.len() * batch);
        let mut t5_mask = Vec::with_capacity(padded * batch);
        for item in 0..batch {
            let c = conditionings[item.min(conditionings.len() - 1)];
            if c.t5_mask.len() != model.t5_mask.len()
                || c.gpt_states.len() != model.gpt_states.len()
            {
                return Err(BackgroundError::Internal(
                    "the guidance halves are conditioned at different lengths".into(),
                ));
            }
            samples.extend_from_slice(sample);
            gpt_states.extend_from_slice(&c.gpt_states);
            t5_states.extend_from_slice(&c.t5_states);
            t5_mask.extend_from_slice(&c.t5_mask);
        }
        let mut sample_shape = self.meta.latent_shape.clone();
        sample_shape[0] *= batch;
        let out = unet.run(vec![
            f32_tensor(&sample_shape, &samples)?,
            i64_tensor(&[1], &[t])?,
            f32_tensor(&[batch, tokens, gpt_width], &gpt_states)?,
            f32_tensor(&[batch, padded, t5_width], &t5_states)?,
            i64_tensor(&[batch, padded], &t5_mask)?,
        ])?;
        let predictions = f32_values("unet", first(&out, "unet")?)?;
        if predictions.len() != sample.len() * batch {
            return Err(BackgroundError::Inference {
                component: "unet".into(),
                reason: format!(
                    "{} predicted values for {batch} samples of {}",
                    predictions.len(),
                    sample.len()
                ),
            });
        }
        Ok(predictions
            .chunks(sample.len())
            .take(conditionings.len())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Two executors that split the compute threads, for running the two
    /// halves of classifier-free guidance side by side; `None` with one
    /// thread. tract's kernels scale sublinearly with threads (1.47x from
    /// 1 to 2 on the real-size UNet); two independent runs side by side
    /// scale nearly linearly.
    /// On the GPU the halves run one after the other: the GPU is busy
    /// with each alone, and tract-cuda's streams are per thread.
    fn guidance_executors(&self) -> Option<(Executor, Executor)> {
        let threads = crate::compute::compute_threads();
        (threads >= 2 && self.device == super::graph::ComputeDevice::Cpu).then(|| {
            (
                crate::compute::executor(threads / 2),
                crate::compute::executor(threads - threads / 2),
            )
        })
    }

    /// The unconditional and the conditional noise prediction, side by
    /// side when `halves` are given.
    fn unet_pair(
        &self,
        unet: &Graph,
        halves: Option<&(Executor, Executor)>,
        sample: &[f32],
        t: i64,
        negative: &Conditioning,
        positive: &Conditioning,
    ) -> Result<(Vec<f32>, Vec<f32>), BackgroundError> {
        use tract_linalg::multithread::multithread_tract_scope;
        if unet.batch() >= 2 {
            let mut both = self.unet_run(unet, sample, t, &[negative, positive])?;
            let conditional = both.pop();
            let unconditional = both.pop();
            return unconditional.zip(conditional).ok_or_else(|| {
                BackgroundError::Internal("the UNet returned fewer than two predictions".into())
            });
        }
        let Some((first_half, second_half)) = halves else {
            return Ok((
                self.unet_eps(unet, sample, t, negative)?,
                self.unet_eps(unet, sample, t, positive)?,
            ));
        };
        std::thread::scope(|scope| {
            let conditional = scope.spawn(|| {
                multithread_tract_scope(second_half.clone(), || {
                    self.unet_eps(unet, sample, t, positive)
                })
            });
            let unconditional = multithread_tract_scope(first_half.clone(), || {
                self.unet_eps(unet, sample, t, negative)
            });
            let conditional = conditional.join().unwrap_or_else(|_| {
                Err(BackgroundError::Internal(
                    "the conditional UNet run panicked".into(),
                ))
            });
            Ok((unconditional?, conditional?))
        })
    }

    fn decode(
        &self,
        decoders: &Decoders,
        latents: &[f32],
        observer: &mut dyn Observer,
    ) -> Result<Vec<f32>, BackgroundError> {
        let shape = &self.meta.latent_shape;
        let scale = 1.0 / self.meta.vae_scaling_factor as f32;
        let scaled: Vec<f32> = latents.iter().map(|z| z * scale).collect();
        if observer.wants_records() {
            observer.record("latents_final_scaled", Record::F32(shape, &scaled));
        }
        let mel = decoders.vae.run(vec![f32_tensor(shape, &scaled)?])?;
        let mel_tensor = first(&mel, "vae_decoder")?;
        let mel_shape = mel_tensor.shape().to_vec();
        let mel = f32_values("vae_decoder", mel_tensor)?;
        if observer.wants_records() {
            observer.record("mel", Record::F32(&mel_shape, &mel));
        }
        // The vocoder takes the mel without its channel axis.
        let frames_bins: Vec<usize> = mel_shape.iter().copied().filter(|&d| d != 1).collect();
        let mut vocoder_shape = vec![1];
        vocoder_shape.extend(frames_bins);
        let waveform = decoders
            .vocoder
            .run(vec![f32_tensor(&vocoder_shape, &mel)?])?;
        let mut waveform = f32_values("vocoder", first(&waveform, "vocoder")?)?;
        let samples = self.clip_samples();
        if waveform.len() < samples {
            return Err(BackgroundError::Inference {
                component: "vocoder".into(),
                reason: format!("{} samples for a {samples}-sample clip", waveform.len()),
            });
        }
        waveform.truncate(samples);
        if observer.wants_records() {
            observer.record("waveform", Record::F32(&[samples], &waveform));
        }
        if let Some(bad) = waveform.iter().position(|v| !v.is_finite()) {
            return Err(BackgroundError::Inference {
                component: "vocoder".into(),
                reason: format!("sample {bad} is not a finite number"),
            });
        }
        Ok(waveform)
    }
}
