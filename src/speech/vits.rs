//! The Piper VITS graph on tract: load the stock `.onnx`, fix what tract
//! cannot run as exported, and run it with concrete input lengths.
//!
//! Two fixes are applied to the ONNX protobuf at load time, so any stock
//! voice loads without pre-conversion:
//! 1. int64 constants outside the i32 range (`INT64_MAX` slice ends) are
//!    clamped to it; tract's shape arithmetic works in i32-sized dims.
//! 2. The duration path: the output length is the sum of the predicted
//!    durations, so a `Range` there has a data-dependent length. tract 0.23.9
//!    runs that `Range` itself (its length becomes a symbol bound at run
//!    time), but a second `Range` whose length is read back with
//!    `Shape`/`Gather`/`Cast` from a tensor of that size (the attention
//!    path in `generate_path`) gets folded into a constant holding the
//!    symbol, which tract evaluates before the symbol is bound ("Undetermined
//!    symbol in expression"). Such a `Range` is rewritten to compute the
//!    same values from the tensor itself,
//!    `CumSum(ReduceMax(T * 0 + 1, other axes)) + start - 1`, so its length
//!    comes from data tract has already computed. (Rewriting the first
//!    `Range` as `CumSum(ConstantOfShape(n))` does not load in tract 0.23.9:
//!    its ConstantOfShape needs a constant shape.)
//!
//! tract cannot reason about the symbolic phoneme count, so the input is
//! padded to a fixed length bucket (the true length goes in
//! `input_lengths`, which masks the padding out) and each bucket's plan is
//! optimized once, on first use, and cached. The graph is also cut in two
//! before the flow ([`super::split`]), so the decoder runs on concrete,
//! bucketed frame counts instead of a symbolic length.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::SpeechError;
use super::split;

/// Input lengths (in phoneme ids) for which plans are built. A sentence
/// longer than the largest is split at clause boundaries by the caller.
pub const DEFAULT_BUCKETS: &[usize] = &[64, 96, 128, 192, 256, 384, 512];

const ONNX_FLOAT: i32 = 1;
const ONNX_INT64: i32 = 7;

type Plan = Arc<TypedRunnableModel>;

/// What the graph fixes changed, for the load log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GraphFixes {
    pub(crate) clamped_constants: usize,
    pub(crate) rewritten_ranges: usize,
    /// Random ops (the VITS noise) given a seed.
    pub(crate) seeded_noise_ops: usize,
}

pub struct VitsModel {
    path: PathBuf,
    /// The whole graph, or its encoder half when the graph could be cut
    /// (see [`super::split`]); planned per id bucket.
    model: InferenceModel,
    /// The decoder half, planned per frame bucket, when the graph was cut.
    decoder: Option<InferenceModel>,
    /// Decoder plans by frame bucket, with the run count of their last use.
    decoder_plans: Mutex<HashMap<usize, (Plan, u64)>>,
    decoder_runs: std::sync::atomic::AtomicU64,
    /// The decoder's convolution kernels, shared by its plans.
    shared_kernels: crate::compute::tap_sum::SharedKernels,
    has_speaker_input: bool,
    buckets: Vec<usize>,
    plans: Mutex<HashMap<usize, Plan>>,
    pub(crate) fixes: GraphFixes,
    /// Rows of the phoneme embedding, where the graph names it.
    pub(crate) embedding_symbols: Option<usize>,
}

impl std::fmt::Debug for VitsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VitsModel")
            .field("path", &self.path)
            .field("buckets", &self.buckets)
            .field("fixes", &self.fixes)
            .finish_non_exhaustive()
    }
}

impl VitsModel {
    /// Loads and fixes a Piper voice model.
    ///
    /// `seed` seeds the graph's noise (the duration predictor's and the
    /// flow's `RandomNormalLike`): every run starts each noise op's
    /// generator afresh from it, so the same ids, scales and seed give the
    /// same samples, on any machine.
    pub fn load(path: &Path, buckets: &[usize], seed: u64) -> Result<VitsModel, SpeechError> {
        let bad = |reason: String| SpeechError::VoiceModel {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".to_owned()));
        }
        let onnx = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true);
        let mut proto = onnx.proto_model_for_path(path).map_err(|e| {
            bad(format!(
                "not a readable ONNX model (truncated, damaged or not ONNX): {e}"
            ))
        })?;
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| bad("the ONNX file holds no graph".to_owned()))?;
        let input_names: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
        for required in ["input", "input_lengths", "scales"] {
            if !input_names.contains(&required) {
                return Err(bad(format!(
                    "not a Piper VITS voice: it has no `{required}` input (inputs: {input_names:?})"
                )));
            }
        }
        let has_speaker_input = input_names.contains(&"sid");
        // The phoneme embedding: the table a Gather indexes with `input`.
        let embedding_symbols = graph
            .node
            .iter()
            .find(|n| n.op_type == "Gather" && n.input.get(1).is_some_and(|i| i == "input"))
            .and_then(|n| graph.initializer.iter().find(|t| t.name == n.input[0]))
            .filter(|t| t.dims.len() == 2)
            .map(|t| t.dims[0] as usize);
        let mut fixes = fix_graph(graph).map_err(bad)?;
        fixes.seeded_noise_ops = seed_noise(graph, seed);
        let load = |proto: &pb::ModelProto| {
            onnx.model_for_proto_model(proto)
                .map_err(|e| bad(format!("tract cannot load the graph: {e:#}")))
        };
        let cut = split::find_cut(graph);
        let (model, decoder) = match &cut {
            Some(cut) => {
                let halves = [
                    split::encoder_graph(graph, cut),
                    split::decoder_graph(graph, cut),
                ]
                .map(|half| pb::ModelProto {
                    graph: Some(half),
                    ..proto.clone()
                });
                let [encoder, decoder] = halves;
                (load(&encoder)?, Some(load(&decoder)?))
            }
            None => {
                tracing::debug!(path = %path.display(), "no flow/decoder cut found; running the whole graph");
                (load(&proto)?, None)
            }
        };
        let mut buckets = buckets.to_vec();
        buckets.sort_unstable();
        buckets.dedup();
        if buckets.is_empty() {
            return Err(bad("no length buckets configured".to_owned()));
        }
        tracing::debug!(path = %path.display(), ?fixes, "voice model loaded");
        Ok(VitsModel {
            path: path.to_path_buf(),
            model,
            decoder,
            decoder_plans: Mutex::new(HashMap::new()),
            decoder_runs: std::sync::atomic::AtomicU64::new(0),
            shared_kernels: Default::default(),
            has_speaker_input,
            buckets,
            plans: Mutex::new(HashMap::new()),
            fixes,
            embedding_symbols,
        })
    }

    /// The largest input (in ids) one run takes.
    pub fn max_ids(&self) -> usize {
        self.buckets.last().copied().unwrap_or(0)
    }

    /// True when the graph runs as encoder and decoder halves (the cut was
    /// found); false for a voice that runs as one graph.
    pub fn runs_in_halves(&self) -> bool {
        self.decoder.is_some()
    }

    pub(crate) fn has_speaker_input(&self) -> bool {
        self.has_speaker_input
    }

    /// The bucket a sequence of `len` ids runs in.
    pub(crate) fn bucket_for(&self, len: usize) -> Option<usize> {
        self.buckets.iter().copied().find(|b| *b >= len)
    }

    /// Builds (or returns the cached) plan for `bucket`.
    pub fn plan(&self, bucket: usize) -> Result<Plan, SpeechError> {
        if let Some(plan) = self.lock_plans().get(&bucket) {
            return Ok(plan.clone());
        }
        let started = Instant::now();
        let plan = self
            .build_plan(bucket)
            .map_err(|e| SpeechError::VoiceModel {
                path: self.path.clone(),
                reason: format!("cannot prepare the graph for {bucket} ids: {e:#}"),
            })?;
        tracing::debug!(
            bucket,
            elapsed = ?started.elapsed(),
            kernels = ?crate::compute::matmul_kernels(plan.model()),
            "voice plan optimized"
        );
        self.lock_plans().insert(bucket, plan.clone());
        Ok(plan)
    }

    fn lock_plans(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Plan>> {
        lock(&self.plans)
    }

    /// Builds (or returns the cached) decoder-half plan for `frames`
    /// frames, with the other dims of each input as in `shapes`.
    fn decoder_plan(
        &self,
        decoder: &InferenceModel,
        frames: usize,
        shapes: &[Vec<usize>],
    ) -> Result<Plan, SpeechError> {
        let run = self
            .decoder_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((plan, last_use)) = lock(&self.decoder_plans).get_mut(&frames) {
            *last_use = run;
            return Ok(plan.clone());
        }
        let started = Instant::now();
        let build = || -> TractResult<Plan> {
            let mut model = decoder.clone();
            for (index, shape) in shapes.iter().enumerate() {
                model = model.with_input_fact(index, f32::fact(shape).into())?;
            }
            // The decoder's convolutions (HiFi-GAN's long, narrow ones and
            // the flows') run as tap sums (see `compute::tap_sum`): with the
            // allocator change in `compute::keep_freed_memory`, 2.20x ->
            // 1.42x of onnxruntime's time on one thread.
            let mut model = model.into_typed()?.into_decluttered()?;
            let swapped = crate::compute::tap_sum::use_tap_sum_convolutions(
                &mut model,
                &self.shared_kernels,
            )?;
            tracing::debug!(frames, swapped, "decoder convolutions run as tap sums");
            model.into_optimized()?.into_runnable()
        };
        let plan = build().map_err(|e| SpeechError::VoiceModel {
            path: self.path.clone(),
            reason: format!("cannot prepare the decoder for {frames} frames: {e:#}"),
        })?;
        tracing::debug!(frames, elapsed = ?started.elapsed(), "voice decoder plan optimized");
        let mut plans = lock(&self.decoder_plans);
        if plans.len() >= split::MAX_DECODER_PLANS {
            let oldest = plans
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                plans.remove(&oldest);
            }
        }
        plans.insert(frames, (plan.clone(), run));
        Ok(plan)
    }

    /// Runs the decoder half on the encoder half's outputs: the frame axis
    /// (the last axis of every output as long as the mask's) zero-padded to
    /// a frame bucket, the padded tail cut off the audio.
    fn run_decoder(
        &self,
        decoder: &InferenceModel,
        encoded: TVec<TValue>,
        times: Option<&mut HashMap<String, f64>>,
    ) -> Result<Vec<f32>, SpeechError> {
        let frames = encoded
            .iter()
            .filter(|t| t.rank() == 3)
            .map(|t| t.shape()[2])
            .max()
            .unwrap_or(0);
        let bucket = split::frame_bucket(frames);
        let mut shapes = Vec::new();
        let mut inputs: TVec<TValue> = tvec![];
        for tensor in encoded {
            let tensor = tensor.into_tensor();
            if tensor.rank() == 3 && tensor.shape()[2] == frames && frames > 0 {
                let view = tensor
                    .to_plain_array_view::<f32>()
                    .map_err(inference_error)?;
                let (a, b) = (tensor.shape()[0], tensor.shape()[1]);
                let mut padded = tract_ndarray::Array3::<f32>::zeros((a, b, bucket));
                padded
                    .slice_mut(tract_ndarray::s![.., .., ..frames])
                    .assign(
                        &view
                            .into_dimensionality::<tract_ndarray::Ix3>()
                            .map_err(|e| SpeechError::Inference {
                                reason: e.to_string(),
                            })?,
                    );
                shapes.push(vec![a, b, bucket]);
                inputs.push(padded.into_tensor().into());
            } else {
                shapes.push(tensor.shape().to_vec());
                inputs.push(tensor.into());
            }
        }
        let plan = self.decoder_plan(decoder, bucket, &shapes)?;
        let outputs = run_plan(&plan, inputs, times)?;
        let mut audio = first_output(&outputs)?;
        // Samples per frame, from the padded run; the true frames' share.
        let keep = audio.len() / bucket.max(1) * frames;
        audio.truncate(keep);
        Ok(audio)
    }

    fn build_plan(&self, bucket: usize) -> TractResult<Plan> {
        let mut model = self
            .model
            .clone()
            .with_input_fact(0, i64::fact([1, bucket]).into())?
            .with_input_fact(1, i64::fact([1]).into())?
            .with_input_fact(2, f32::fact([3]).into())?;
        if self.has_speaker_input {
            model = model.with_input_fact(3, i64::fact([1]).into())?;
        }
        model.into_optimized()?.into_runnable()
    }

    /// Runs one sequence of ids like `infer` and returns the time spent in
    /// each kind of op (summed), most expensive first. For `vivid bench`.
    pub fn profile(
        &self,
        ids: &[i64],
        pad_id: i64,
        scales: [f32; 3],
        speaker: Option<i64>,
    ) -> Result<Vec<(String, f64)>, SpeechError> {
        let mut times: HashMap<String, f64> = HashMap::new();
        self.run(ids, pad_id, scales, speaker, Some(&mut times))?;
        let mut times: Vec<(String, f64)> = times.into_iter().collect();
        times.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(times)
    }

    /// The plan of the bucket `ids` fit in, and the padded inputs for it.
    fn prepare_run(
        &self,
        ids: &[i64],
        pad_id: i64,
        scales: [f32; 3],
        speaker: Option<i64>,
    ) -> Result<(Plan, TVec<TValue>), SpeechError> {
        let bucket = self
            .bucket_for(ids.len())
            .ok_or_else(|| SpeechError::Inference {
                reason: format!(
                    "{} ids exceed the largest bucket ({})",
                    ids.len(),
                    self.max_ids()
                ),
            })?;
        let plan = self.plan(bucket)?;
        let inputs = self
            .inputs(ids, bucket, pad_id, scales, speaker)
            .map_err(inference_error)?;
        Ok((plan, inputs))
    }

    fn inputs(
        &self,
        ids: &[i64],
        bucket: usize,
        pad_id: i64,
        scales: [f32; 3],
        speaker: Option<i64>,
    ) -> TractResult<TVec<TValue>> {
        let mut padded = ids.to_vec();
        padded.resize(bucket, pad_id);
        let mut inputs: TVec<TValue> = tvec![
            tract_ndarray::Array2::from_shape_vec((1, bucket), padded)?
                .into_tensor()
                .into(),
            tensor1(&[ids.len() as i64]).into(),
            tensor1(&scales).into(),
        ];
        if self.has_speaker_input {
            inputs.push(tensor1(&[speaker.unwrap_or(0)]).into());
        }
        Ok(inputs)
    }

    /// Runs one sequence of ids (at most `max_ids`), returning raw samples.
    pub fn infer(
        &self,
        ids: &[i64],
        pad_id: i64,
        scales: [f32; 3],
        speaker: Option<i64>,
    ) -> Result<Vec<f32>, SpeechError> {
        self.run(ids, pad_id, scales, speaker, None)
    }

    /// One run, through both halves when the graph was cut; with `times`,
    /// the time of every op is added up by op kind.
    fn run(
        &self,
        ids: &[i64],
        pad_id: i64,
        scales: [f32; 3],
        speaker: Option<i64>,
        mut times: Option<&mut HashMap<String, f64>>,
    ) -> Result<Vec<f32>, SpeechError> {
        let (plan, inputs) = self.prepare_run(ids, pad_id, scales, speaker)?;
        let outputs = run_plan(&plan, inputs, times.as_deref_mut())?;
        match &self.decoder {
            Some(decoder) => self.run_decoder(decoder, outputs, times),
            None => first_output(&outputs),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a map that is still valid.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a plan, timing every op by kind into `times` when given.
fn run_plan(
    plan: &Plan,
    inputs: TVec<TValue>,
    times: Option<&mut HashMap<String, f64>>,
) -> Result<TVec<TValue>, SpeechError> {
    let Some(times) = times else {
        return plan.run(inputs).map_err(inference_error);
    };
    crate::compute::run_timed(plan, inputs, times).map_err(inference_error)
}

/// The first output as plain f32 samples.
fn first_output(outputs: &TVec<TValue>) -> Result<Vec<f32>, SpeechError> {
    let view = outputs
        .first()
        .ok_or_else(|| SpeechError::Inference {
            reason: "the model produced no output".to_owned(),
        })?
        .to_plain_array_view::<f32>()
        .map_err(inference_error)?;
    Ok(view.iter().copied().collect())
}

fn inference_error(e: TractError) -> SpeechError {
    SpeechError::Inference {
        reason: format!("{e:#}"),
    }
}

/// Gives every random op of the graph its own seed derived from `seed`
/// (ONNX's `seed` attribute, a float; tract seeds its generator with the
/// float's bits). Without one, tract draws fresh entropy for each run and
/// the same text never sounds quite the same twice. Returns how many ops
/// were seeded.
pub(crate) fn seed_noise(graph: &mut pb::GraphProto, seed: u64) -> usize {
    let mut seeded = 0;
    for node in &mut graph.node {
        if !node.op_type.starts_with("Random") {
            continue;
        }
        // Distinct per op, so two noise tensors are not the same draw; an
        // integer below 2^24 so the float holds it exactly.
        let mixed = splitmix64(seed ^ splitmix64(seeded as u64));
        let op_seed = (mixed >> 40) as f32;
        node.attribute.retain(|a| a.name != "seed");
        node.attribute.push(pb::AttributeProto {
            name: "seed".to_owned(),
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            f: op_seed,
            ..Default::default()
        });
        seeded += 1;
    }
    seeded
}

/// One step of SplitMix64, a well-mixed 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Applies both graph fixes to an ONNX graph in place.
pub(crate) fn fix_graph(graph: &mut pb::GraphProto) -> Result<GraphFixes, String> {
    let mut fixes = GraphFixes::default();
    for tensor in &mut graph.initializer {
        fixes.clamped_constants += clamp_int64(tensor);
    }
    for node in &mut graph.node {
        if node.op_type == "Constant" {
            for attr in &mut node.attribute {
                if let Some(t) = attr.t.as_mut() {
                    fixes.clamped_constants += clamp_int64(t);
                }
            }
        }
    }
    fixes.rewritten_ranges = rewrite_dynamic_ranges(graph)?;
    Ok(fixes)
}

/// Clamps an int64 tensor's values into i32 range; returns how many moved.
fn clamp_int64(tensor: &mut pb::TensorProto) -> usize {
    if tensor.data_type != ONNX_INT64 {
        return 0;
    }
    let clamp = |v: i64| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    let mut changed = 0;
    for v in &mut tensor.int64_data {
        let c = clamp(*v);
        if c != *v {
            *v = c;
            changed += 1;
        }
    }
    for chunk in tensor.raw_data.chunks_exact_mut(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let v = i64::from_le_bytes(bytes);
        let c = clamp(v);
        if c != v {
            chunk.copy_from_slice(&c.to_le_bytes());
            changed += 1;
        }
    }
    changed
}

/// Value of a scalar int64 or float constant (initializer or Constant node).
fn scalar_constant(graph: &pb::GraphProto, name: &str) -> Option<(i32, f64)> {
    let tensor = graph
        .initializer
        .iter()
        .find(|t| t.name == name)
        .or_else(|| {
            graph
                .node
                .iter()
                .find(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
                .and_then(|n| n.attribute.iter().find_map(|a| a.t.as_ref()))
        })?;
    let value = match tensor.data_type {
        ONNX_INT64 => tensor.int64_data.first().copied().or_else(|| {
            let b: [u8; 8] = tensor.raw_data.get(..8)?.try_into().ok()?;
            Some(i64::from_le_bytes(b))
        })? as f64,
        ONNX_FLOAT => f64::from(tensor.float_data.first().copied().or_else(|| {
            let b: [u8; 4] = tensor.raw_data.get(..4)?.try_into().ok()?;
            Some(f32::from_le_bytes(b))
        })?),
        _ => return None,
    };
    Some((tensor.data_type, value))
}

/// The tensors whose shape depends on a data-dependent `Range`.
fn dynamic_shaped_tensors(graph: &pb::GraphProto) -> HashSet<&str> {
    // Tensors computable without looking at input values: constants, shapes
    // and anything computed only from those. ONNX lists nodes in
    // topological order, so one pass suffices.
    let mut static_tensors: HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Tensors whose shape depends on a data-dependent Range.
    let mut dynamic_shaped: HashSet<&str> = HashSet::new();
    for node in &graph.node {
        let is_static = node.op_type == "Constant"
            || node.op_type == "Shape"
            || (!node.input.is_empty()
                && node
                    .input
                    .iter()
                    .all(|i| i.is_empty() || static_tensors.contains(i.as_str())));
        if is_static {
            static_tensors.extend(node.output.iter().map(String::as_str));
        }
        let dynamic_range = node.op_type == "Range"
            && node
                .input
                .get(1)
                .is_some_and(|limit| !static_tensors.contains(limit.as_str()));
        if dynamic_range
            || (node.op_type != "Shape"
                && node
                    .input
                    .iter()
                    .any(|i| dynamic_shaped.contains(i.as_str())))
        {
            dynamic_shaped.extend(node.output.iter().map(String::as_str));
        }
    }
    dynamic_shaped
}

/// Rewrites every `Range` whose length is read off the shape of a tensor
/// sized by a data-dependent `Range` (see the module comment).
fn rewrite_dynamic_ranges(graph: &mut pb::GraphProto) -> Result<usize, String> {
    let dynamic_shaped = dynamic_shaped_tensors(graph);
    let producer: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let rank_of: HashMap<&str, usize> = graph
        .value_info
        .iter()
        .filter_map(|v| match v.r#type.as_ref()?.value.as_ref()? {
            pb::type_proto::Value::TensorType(t) => {
                Some((v.name.as_str(), t.shape.as_ref()?.dim.len()))
            }
        })
        .collect();

    // For each Range to rewrite: (range name, measured tensor, axis, rank, dtype, start).
    let mut plans = Vec::new();
    for node in &graph.node {
        if node.op_type != "Range" || node.input.len() != 3 {
            continue;
        }
        // limit = [Cast] Gather(Shape(T), k)
        let mut limit = producer.get(node.input[1].as_str()).copied();
        if let Some(cast) = limit.filter(|n| n.op_type == "Cast") {
            limit = producer.get(cast.input[0].as_str()).copied();
        }
        let Some(gather) = limit.filter(|n| n.op_type == "Gather" && n.input.len() == 2) else {
            continue;
        };
        let Some(shape) = producer
            .get(gather.input[0].as_str())
            .filter(|n| n.op_type == "Shape" && n.attribute.is_empty())
        else {
            continue;
        };
        let measured = shape.input[0].as_str();
        if !dynamic_shaped.contains(measured) {
            continue;
        }
        let name = &node.name;
        let (_, axis) = scalar_constant(graph, &gather.input[1])
            .ok_or_else(|| format!("Range {name}: the shape index is not a constant"))?;
        let rank = *rank_of
            .get(measured)
            .ok_or_else(|| format!("Range {name}: the rank of {measured} is not recorded"))?;
        let (dtype, start) = scalar_constant(graph, &node.input[0])
            .ok_or_else(|| format!("Range {name}: start is not a scalar constant"))?;
        let (_, delta) = scalar_constant(graph, &node.input[2])
            .ok_or_else(|| format!("Range {name}: delta is not a scalar constant"))?;
        if delta != 1.0 {
            return Err(format!(
                "Range {name}: only a step of 1 can be rewritten (found {delta})"
            ));
        }
        let axis = if axis < 0.0 {
            rank as i64 + axis as i64
        } else {
            axis as i64
        };
        plans.push((
            node.output[0].clone(),
            measured.to_owned(),
            axis,
            rank,
            dtype,
            start,
        ));
    }

    let rewritten = plans.len();
    for (out, measured, axis, rank, dtype, start) in plans {
        let index = graph
            .node
            .iter()
            .position(|n| n.output.first() == Some(&out))
            .ok_or_else(|| format!("Range producing {out} vanished"))?;
        let range = graph.node.remove(index);
        let (nodes, inits) = range_over_axis(&range, &measured, axis, rank, dtype, start);
        for (offset, n) in nodes.into_iter().enumerate() {
            graph.node.insert(index + offset, n);
        }
        graph.initializer.extend(inits);
    }
    Ok(rewritten)
}

/// `Range(start, T.shape[axis], 1)` computed from `T` itself, as
/// `CumSum(ReduceMax(T == T, all other axes)) + (start - 1)`: the same
/// values, with a length tract takes from `T` at run time. (`T == T` is 1
/// wherever T is a number; `T * 0 + 1` would be folded by tract into a
/// constant broadcast, losing the data dependency again.)
fn range_over_axis(
    range: &pb::NodeProto,
    measured: &str,
    axis: i64,
    rank: usize,
    dtype: i32,
    start: f64,
) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let prefix = format!("{}/vivid", range.name);
    let n = |suffix: &str| format!("{prefix}/{suffix}");
    let out = range.output[0].clone();
    let inits = vec![
        int64_tensor(&n("axis0"), &[], &[0]),
        scalar_tensor(&n("offset"), dtype, start - 1.0),
    ];
    let other_axes: Vec<i64> = (0..rank as i64).filter(|a| *a != axis).collect();
    let mut nodes = vec![
        node("Equal", &[measured, measured], &n("same"), vec![]),
        node(
            "Cast",
            &[&n("same")],
            &n("ones"),
            vec![int_attr("to", i64::from(ONNX_FLOAT))],
        ),
        node(
            "ReduceMax",
            &[&n("ones")],
            &n("line"),
            vec![ints_attr("axes", &other_axes), int_attr("keepdims", 0)],
        ),
    ];
    let line = if dtype == ONNX_FLOAT {
        n("line")
    } else {
        nodes.push(node(
            "Cast",
            &[&n("line")],
            &n("line_typed"),
            vec![int_attr("to", i64::from(dtype))],
        ));
        n("line_typed")
    };
    nodes.push(node("CumSum", &[&line, &n("axis0")], &n("cumsum"), vec![]));
    nodes.push(node("Add", &[&n("cumsum"), &n("offset")], &out, vec![]));
    (nodes, inits)
}

fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_owned(),
        name: output.to_owned(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.to_owned()],
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn ints_attr(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: ONNX_INT64,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn scalar_tensor(name: &str, dtype: i32, value: f64) -> pb::TensorProto {
    if dtype == ONNX_INT64 {
        int64_tensor(name, &[], &[value as i64])
    } else {
        pb::TensorProto {
            name: name.to_owned(),
            dims: vec![],
            data_type: ONNX_FLOAT,
            float_data: vec![value as f32],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_large_int64_in_both_encodings() {
        let mut t = int64_tensor("a", &[3], &[i64::MAX, 5, i64::MIN]);
        assert_eq!(clamp_int64(&mut t), 2);
        assert_eq!(
            t.int64_data,
            vec![i64::from(i32::MAX), 5, i64::from(i32::MIN)]
        );
        let mut raw = pb::TensorProto {
            data_type: ONNX_INT64,
            raw_data: [i64::MAX.to_le_bytes(), 7i64.to_le_bytes()].concat(),
            ..Default::default()
        };
        assert_eq!(clamp_int64(&mut raw), 1);
        assert_eq!(&raw.raw_data[..8], &i64::from(i32::MAX).to_le_bytes());
    }

    fn value_info(name: &str, elem_type: i32, rank: usize) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![Default::default(); rank],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The duration-path pattern in miniature: a data-dependent Range, a
    /// tensor sized by it, and a second Range over that tensor's shape. It
    /// runs on tract only after the rewrite, and gives what Range would.
    #[test]
    fn shape_derived_range_is_rewritten_and_runs() {
        let mut graph = pb::GraphProto {
            node: vec![
                node("Range", &["zero_i", "limit", "one_i"], "r", vec![]),
                node(
                    "Cast",
                    &["r"],
                    "rf",
                    vec![int_attr("to", i64::from(ONNX_FLOAT))],
                ),
                node("Unsqueeze", &["rf", "axes01"], "t", vec![]),
                node("Shape", &["t"], "t_shape", vec![]),
                node("Gather", &["t_shape", "two"], "t_len", vec![]),
                node(
                    "Cast",
                    &["t_len"],
                    "t_len_f",
                    vec![int_attr("to", i64::from(ONNX_FLOAT))],
                ),
                node("Range", &["start_f", "t_len_f", "one_f"], "y", vec![]),
            ],
            initializer: vec![
                scalar_tensor("zero_i", ONNX_INT64, 0.0),
                scalar_tensor("one_i", ONNX_INT64, 1.0),
                int64_tensor("axes01", &[2], &[0, 1]),
                int64_tensor("two", &[], &[2]),
                scalar_tensor("start_f", ONNX_FLOAT, 0.0),
                scalar_tensor("one_f", ONNX_FLOAT, 1.0),
            ],
            input: vec![value_info("limit", ONNX_INT64, 0)],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            value_info: vec![value_info("t", ONNX_FLOAT, 3)],
            ..Default::default()
        };
        let fixes = fix_graph(&mut graph).unwrap();
        assert_eq!(fixes.rewritten_ranges, 1, "only the shape-derived Range");
        assert_eq!(
            graph.node.iter().filter(|n| n.op_type == "Range").count(),
            1
        );
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 15,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .unwrap()
            .with_input_fact(0, i64::scalar_fact().into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        for n in [3i64, 6] {
            let out = model.run(tvec![tensor0(n).into()]).unwrap();
            let expected: Vec<f32> = (0..n).map(|v| v as f32).collect();
            let got: Vec<f32> = out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect();
            assert_eq!(got, expected);
        }
    }
}
