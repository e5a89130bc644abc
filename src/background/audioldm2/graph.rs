//! One graph of a bundle on tract: checked against bundle.toml, loaded at
//! its fixed shapes, optimized once, and run with its inputs checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use tract_onnx::prelude::*;

use super::BackgroundError;
use super::bundle::{BundleMeta, TensorMeta, verify_component};

pub struct Graph {
    component: String,
    path: PathBuf,
    plan: Box<dyn tract_onnx::tract_core::runtime::Runnable>,
    /// The inputs, with a free batch axis (-1 in bundle.toml) resolved.
    inputs: Vec<TensorMeta>,
    batch: usize,
    load_s: f64,
    /// Runs and their total seconds, for benchmarks.
    runs: std::sync::Mutex<(u64, f64)>,
}

/// Time a graph took to load and to run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GraphTiming {
    pub component: String,
    pub(crate) load_s: f64,
    pub runs: u64,
    pub(crate) run_s: f64,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("component", &self.component)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Where the graphs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    /// tract's CPU runtime (every build).
    #[default]
    Cpu,
    /// tract's CUDA runtime (builds with the `cuda-background` feature;
    /// the CUDA libraries are loaded at run time).
    Cuda,
}

impl std::str::FromStr for ComputeDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda),
            other => Err(format!("unknown device \"{other}\" (cpu or cuda)")),
        }
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComputeDevice::Cpu => "cpu",
            ComputeDevice::Cuda => "cuda",
        })
    }
}

impl ComputeDevice {
    /// Whether this build can run on the device.
    pub(crate) fn built_in(self) -> bool {
        match self {
            ComputeDevice::Cpu => true,
            ComputeDevice::Cuda => cfg!(feature = "cuda-background"),
        }
    }
}

/// Optimizes a graph for tract's CPU runtime, with vivid's own ops in place
/// of the chains tract runs slowly: the vocoder's 1-D and the VAE's 3x3
/// convolutions ([`crate::compute::tap_sum`]) and the UNet's multi-head
/// attention ([`crate::compute::attention`]).
fn prepare_cpu(model: InferenceModel, component: &str) -> TractResult<Arc<TypedRunnableModel>> {
    prepare_typed_cpu(model.into_typed()?.into_decluttered()?, component)
}

/// [`prepare_cpu`] from the decluttered graph.
fn prepare_typed_cpu(
    mut model: TypedModel,
    component: &str,
) -> TractResult<Arc<TypedRunnableModel>> {
    let convolutions = crate::compute::tap_sum::use_tap_sum_convolutions(
        &mut model,
        &crate::compute::tap_sum::SharedKernels::default(),
    )?;
    let attentions = crate::compute::attention::use_fused_attention(&mut model)?;
    tracing::debug!(
        component,
        convolutions,
        attentions,
        "vivid's CPU ops swapped in"
    );
    model.into_optimized()?.into_runnable()
}

/// Tensors of the shapes and types `inputs` declare, for timing runs and
/// tests: seeded noise for float inputs, timestep 500, masks of ones, and
/// token ids from a fixed pattern; a free axis (-1) is 1.
pub fn sample_tensors(inputs: &[TensorMeta]) -> Result<Vec<Tensor>, BackgroundError> {
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let shape = input.dims(1);
            let count: usize = shape.iter().product();
            if input.dtype == "i64" {
                let values: Vec<i64> = match input.name.as_str() {
                    "timestep" => vec![500; count],
                    name if name.contains("mask") => vec![1; count],
                    _ => (0..count as i64).map(|i| (i * 7 + 3) % 50).collect(),
                };
                i64_tensor(&shape, &values)
            } else {
                f32_tensor(&shape, &super::noise::gaussian_latents(index as u64, count))
            }
        })
        .collect()
}

impl Graph {
    /// Verifies, loads and optimizes `component` of the bundle in `dir`
    /// for `device`, at batch 1 where its batch axis is free.
    pub fn load(
        dir: &Path,
        meta: &BundleMeta,
        component: &str,
        device: ComputeDevice,
    ) -> Result<Graph, BackgroundError> {
        Graph::load_batched(dir, meta, component, device, 1)
    }

    /// As [`Graph::load`], with a free batch axis (-1 in bundle.toml: the
    /// UNet's, since export.py leaves it free) fixed to `batch`: tract runs
    /// best at concrete shapes.
    pub(crate) fn load_batched(
        dir: &Path,
        meta: &BundleMeta,
        component: &str,
        device: ComputeDevice,
        batch: usize,
    ) -> Result<Graph, BackgroundError> {
        Graph::load_shaped(dir, meta, component, device, batch, None)
    }

    /// As [`Graph::load_batched`]; a free sequence axis (T5's and GPT-2's,
    /// any axis but the first) is fixed to `sequence`, or with None stays
    /// free: tract then optimizes the graph once for a symbolic length and
    /// runs it at each caption's own.
    pub fn load_shaped(
        dir: &Path,
        meta: &BundleMeta,
        component: &str,
        device: ComputeDevice,
        batch: usize,
        sequence: Option<usize>,
    ) -> Result<Graph, BackgroundError> {
        let entry = meta.component(dir, component)?;
        let inputs: Vec<TensorMeta> = entry
            .inputs
            .iter()
            .map(|input| input.resolved(batch, sequence))
            .collect();
        let started = Instant::now();
        let path = verify_component(dir, entry)?;
        let bad = |reason: String| BackgroundError::Graph {
            path: path.clone(),
            reason,
        };
        let model = read_graph(&path, &inputs).map_err(bad)?;
        let device = if device == ComputeDevice::Cuda && kept_on_cpu(component) {
            tracing::info!(component, "kept on the CPU (VIVID_CPU_GRAPHS)");
            ComputeDevice::Cpu
        } else {
            device
        };
        let plan: Box<dyn tract_onnx::tract_core::runtime::Runnable> = match device {
            ComputeDevice::Cpu => Box::new(
                prepare_cpu(model, component)
                    .map_err(|e| bad(format!("tract cannot prepare it: {e:#}")))?,
            ),
            ComputeDevice::Cuda => {
                prepare_cuda(model, component).map_err(|reason| BackgroundError::Device {
                    path: path.clone(),
                    reason,
                })?
            }
        };
        tracing::info!(
            component,
            megabytes = entry.bytes / 1_000_000,
            seconds = format!("{:.1}", started.elapsed().as_secs_f32()),
            "loaded background graph"
        );
        Ok(Graph {
            component: component.to_owned(),
            path,
            plan,
            inputs,
            batch,
            load_s: started.elapsed().as_secs_f64(),
            runs: std::sync::Mutex::new((0, 0.0)),
        })
    }

    pub(crate) fn timing(&self) -> GraphTiming {
        let (runs, run_s) = *self.runs.lock().unwrap_or_else(|p| p.into_inner());
        GraphTiming {
            component: self.component.clone(),
            load_s: self.load_s,
            runs,
            run_s,
        }
    }

    pub(crate) fn reset_timing(&self) {
        *self.runs.lock().unwrap_or_else(|p| p.into_inner()) = (0, 0.0);
    }

    /// The matrix-multiplication kernels tract chose for this graph, with
    /// how many matmul nodes use each (benchmarks report them: int8 is fast
    /// only where a dot-product kernel exists), and how many of vivid's own
    /// CPU ops run in it.
    pub fn kernels(&self) -> std::collections::BTreeMap<String, usize> {
        use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
        let mut kernels = std::collections::BTreeMap::new();
        let Some(model) = self.plan.typed_model() else {
            return kernels;
        };
        for node in model.nodes() {
            if let Some(op) = node.op_as::<OptMatMul>() {
                for mmm in &op.mmm {
                    *kernels.entry(mmm.name().to_owned()).or_insert(0) += 1;
                }
            } else if node.op_is::<crate::compute::attention::FusedAttention>() {
                *kernels.entry("vivid_fused_attention".into()).or_insert(0) += 1;
            } else if node.op_is::<crate::compute::tap_sum::TapSumConv1d>() {
                *kernels.entry("vivid_tap_sum_conv1d".into()).or_insert(0) += 1;
            } else if node.op_is::<crate::compute::tap_sum::TapSumConv2d>() {
                *kernels.entry("vivid_tap_sum_conv2d".into()).or_insert(0) += 1;
            }
        }
        kernels
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    /// The size the free batch axis was fixed to (1 where there is none).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The length (axis 1) of input `input`, None where it is free.
    pub fn fixed_length(&self, input: &str) -> Option<usize> {
        self.inputs
            .iter()
            .find(|i| i.name == input)
            .and_then(|i| i.shape.get(1))
            .and_then(|&d| usize::try_from(d).ok())
    }

    /// Inputs of the declared shapes for timing runs (see
    /// [`sample_tensors`]).
    pub fn sample_inputs(&self) -> Result<Vec<Tensor>, BackgroundError> {
        sample_tensors(&self.inputs)
    }

    /// Runs the graph once with every node timed and returns the seconds
    /// spent in each kind of op, most first (`vivid bench background
    /// --profile`); None where it does not run on tract's CPU runtime.
    pub fn profile(
        &self,
        inputs: Vec<Tensor>,
    ) -> Result<Option<Vec<(String, f64)>>, BackgroundError> {
        // A CPU plan is the optimized model itself; the GPU's is not.
        let Some(plan) = self.plan.downcast_ref::<Arc<TypedRunnableModel>>() else {
            return Ok(None);
        };
        let fail = |e: TractError| BackgroundError::Inference {
            component: self.component.clone(),
            reason: format!("{e:#}"),
        };
        let mut times: std::collections::HashMap<String, f64> = Default::default();
        let inputs = inputs.into_iter().map(TValue::from).collect();
        crate::compute::run_timed(plan, inputs, &mut times).map_err(fail)?;
        let mut times: Vec<(String, f64)> = times.into_iter().collect();
        times.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Some(times))
    }

    /// Runs the graph on inputs in bundle.toml's order and returns its
    /// outputs.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<TVec<Tensor>, BackgroundError> {
        let fail = |reason: String| BackgroundError::Inference {
            component: self.component.clone(),
            reason,
        };
        if inputs.len() != self.inputs.len() {
            return Err(fail(format!(
                "{} inputs given, the graph takes {}",
                inputs.len(),
                self.inputs.len()
            )));
        }
        for (tensor, meta) in inputs.iter().zip(&self.inputs) {
            if !meta.accepts(tensor.shape()) {
                return Err(fail(format!(
                    "input `{}` has shape {:?}, the graph takes {:?} (-1: any size)",
                    meta.name,
                    tensor.shape(),
                    meta.shape
                )));
            }
        }
        let values: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
        // tract panics on some bad data (an index past an embedding table)
        // instead of returning an error; a panic here must fail this
        // background, not the service.
        let plan = &self.plan;
        let started = Instant::now();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || plan.run(values)));
        if let Ok(mut runs) = self.runs.lock() {
            runs.0 += 1;
            runs.1 += started.elapsed().as_secs_f64();
        }
        match outcome {
            Ok(Ok(outputs)) => {
                let outputs: TVec<Tensor> = outputs.into_iter().map(|v| v.into_tensor()).collect();
                // A NaN here would only surface stages later (as a silent
                // or broken clip); name the graph that made it.
                for output in &outputs {
                    if output.datum_type() != f32::datum_type() {
                        continue;
                    }
                    if let Ok(values) = output.to_plain_array_view::<f32>() {
                        let bad = values.iter().filter(|v| !v.is_finite()).count();
                        if bad > 0 {
                            return Err(fail(format!(
                                "{bad} of its {} output values are not finite numbers (NaN or infinity)",
                                values.len()
                            )));
                        }
                    }
                }
                Ok(outputs)
            }
            Ok(Err(e)) => Err(fail(format!("{e:#}"))),
            Err(panic) => Err(fail(format!(
                "tract panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            ))),
        }
    }
}

/// Reads the ONNX graph at `path` with its inputs fixed to the shapes and
/// types `inputs` declare (tract runs best at concrete shapes). A free
/// first axis is 1; the other free axes share one symbol, the sequence
/// length, which tract resolves at each run.
fn read_graph(path: &Path, inputs: &[TensorMeta]) -> Result<InferenceModel, String> {
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| format!("not a readable ONNX graph: {e}"))?;
    let names: Vec<String> = model
        .input_outlets()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|outlet| model.node(outlet.node).name.clone())
        .collect();
    for input in inputs {
        let index = names.iter().position(|n| *n == input.name).ok_or_else(|| {
            format!(
                "the graph has no input `{}` (it has {names:?}); it does not belong to this bundle.toml",
                input.name
            )
        })?;
        let shape: TVec<TDim> = input
            .shape
            .iter()
            .enumerate()
            .map(|(axis, &d)| match (usize::try_from(d), axis) {
                (Ok(d), _) => d.to_dim(),
                (Err(_), 0) => 1.to_dim(),
                (Err(_), _) => model.symbols.sym("S").into(),
            })
            .collect();
        let dtype = match input.dtype.as_str() {
            "f32" => f32::datum_type(),
            "i64" => i64::datum_type(),
            other => return Err(format!("input `{}` has dtype {other}", input.name)),
        };
        let fact = InferenceFact::dt_shape(dtype, shape);
        model = model
            .with_input_fact(index, fact)
            .map_err(|e| e.to_string())?;
    }
    Ok(model)
}

/// One node's output computed by tract's CPU runtime and by another
/// (`vivid bench compare`).
#[derive(Debug, Clone)]
pub(crate) struct NodeComparison {
    pub node: String,
    pub op: String,
    pub shape: Vec<usize>,
    /// Largest magnitude among the finite values, on each side.
    pub(crate) cpu_peak: f32,
    pub(crate) other_peak: f32,
    /// Values that are NaN or infinite, on each side.
    pub(crate) cpu_not_finite: usize,
    pub(crate) other_not_finite: usize,
    /// Largest difference where both are finite, over the CPU's peak.
    pub relative_diff: f32,
}

/// Runs `component` on `inputs` (in bundle.toml's order) with tract's CPU
/// runtime and with `device`'s, every node's output kept, and compares the
/// two node by node in the graph's order. Where a runtime goes wrong (a
/// NaN, an overflow, a kernel off by more than rounding), the first node
/// that parts names the op. Both sides get the graph as the GPU does
/// ([`typed_for_gpu`]; an op kept on the CPU is named `OnCpu(...)`, which
/// tells `tests/bench/gpu.sh` not to add it to `VIVID_CPU_OPS` again). On
/// the CPU the other side is vivid's own CPU preparation (its fused and
/// tap-sum ops, where keeping every output still lets them apply).
pub(crate) fn compare_devices(
    dir: &Path,
    meta: &BundleMeta,
    component: &str,
    device: ComputeDevice,
    inputs: Vec<Tensor>,
) -> Result<Vec<NodeComparison>, BackgroundError> {
    use tract_onnx::tract_core::ops::konst::Const;
    let entry = meta.component(dir, component)?;
    let path = verify_component(dir, entry)?;
    let bad = |reason: String| BackgroundError::Graph {
        path: path.clone(),
        reason,
    };
    let failed = |e: TractError| bad(format!("{e:#}"));
    if inputs.len() != entry.inputs.len() {
        return Err(bad(format!(
            "{} inputs given, the graph takes {}",
            inputs.len(),
            entry.inputs.len()
        )));
    }
    // The graph at the shapes of the given inputs (a free batch axis too).
    let declared: Vec<TensorMeta> = entry
        .inputs
        .iter()
        .zip(&inputs)
        .map(|(meta, tensor)| TensorMeta {
            shape: tensor.shape().iter().map(|&d| d as i64).collect(),
            ..meta.clone()
        })
        .collect();
    let model = read_graph(&path, &declared).map_err(bad)?;
    let (mut typed, _) = typed_for_gpu(model).map_err(failed)?;
    let mut kept = Vec::new();
    for node in typed.nodes() {
        if node.inputs.is_empty() || node.op_is::<Const>() || node.outputs.is_empty() {
            continue;
        }
        let outlet = OutletId::new(node.id, 0);
        let fact = typed.outlet_fact(outlet).map_err(failed)?;
        if fact.datum_type == f32::datum_type() && fact.shape.as_concrete().is_some() {
            kept.push((outlet, node.name.clone(), node.op().name().to_string()));
        }
    }
    let outlets: Vec<OutletId> = kept.iter().map(|(outlet, _, _)| *outlet).collect();
    typed.select_output_outlets(&outlets).map_err(failed)?;
    let cpu = typed
        .clone()
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(failed)?;
    let other: Box<dyn tract_onnx::tract_core::runtime::Runnable> = match device {
        ComputeDevice::Cpu => Box::new(prepare_typed_cpu(typed, component).map_err(failed)?),
        ComputeDevice::Cuda => cuda_plan(typed).map_err(|reason| BackgroundError::Device {
            path: path.clone(),
            reason,
        })?,
    };
    let values: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
    let run_failed = |e: TractError| BackgroundError::Inference {
        component: component.to_owned(),
        reason: format!("{e:#}"),
    };
    let on_cpu = cpu.run(values.clone()).map_err(run_failed)?;
    let on_other = other.run(values).map_err(run_failed)?;
    let mut comparisons = Vec::with_capacity(kept.len());
    for ((_, node, op), (a, b)) in kept.into_iter().zip(on_cpu.iter().zip(on_other.iter())) {
        let a = a.to_plain_array_view::<f32>().map_err(run_failed)?;
        let b = b.to_plain_array_view::<f32>().map_err(run_failed)?;
        let peak = |v: &tract_ndarray::ArrayViewD<f32>| {
            v.iter()
                .filter(|x| x.is_finite())
                .fold(0f32, |m, x| m.max(x.abs()))
        };
        let cpu_peak = peak(&a);
        let largest = a
            .iter()
            .zip(b.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        comparisons.push(NodeComparison {
            node,
            op,
            shape: a.shape().to_vec(),
            cpu_peak,
            other_peak: peak(&b),
            cpu_not_finite: a.iter().filter(|x| !x.is_finite()).count(),
            other_not_finite: b.iter().filter(|x| !x.is_finite()).count(),
            relative_diff: largest / cpu_peak.max(f32::MIN_POSITIVE),
        });
    }
    Ok(comparisons)
}

/// Whether `component` is named in `VIVID_CPU_GRAPHS` (a comma-separated
/// list of bundle components, e.g. `t5_encoder,gpt2`): a diagnostic that
/// keeps those graphs on the CPU when the others run on the GPU, to find
/// or work around a graph the GPU runtime gets wrong.
fn kept_on_cpu(component: &str) -> bool {
    std::env::var("VIVID_CPU_GRAPHS")
        .map(|list| list.split(',').any(|name| name.trim() == component))
        .unwrap_or(false)
}

/// The ops named in `VIVID_CPU_OPS` (a comma-separated list of tract op
/// names, e.g. `RmsNorm,Softmax`): every node of them stays on the CPU when
/// a graph goes to the GPU ([`crate::compute::on_cpu`]), a diagnostic and a
/// workaround for a GPU kernel that `vivid bench compare` finds wrong.
fn ops_kept_on_cpu() -> Vec<String> {
    std::env::var("VIVID_CPU_OPS")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Replaces every element-wise node whose op `matches` by what `wire`
/// builds from its input (the patch, the node's name, the input outlet and
/// its fact); returns how many were replaced. The shared mechanism of the
/// rewrites tract-cuda needs.
fn rewrite_element_wise(
    model: &mut TypedModel,
    matches: impl Fn(&dyn tract_onnx::tract_core::ops::element_wise::ElementWiseMiniOp) -> bool,
    wire: impl Fn(&mut TypedModelPatch, &str, OutletId, &TypedFact) -> TractResult<OutletId>,
) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    let found: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_as::<ElementWiseOp>().is_some_and(|e| matches(&*e.0)))
        .map(|n| n.id)
        .collect();
    for &id in &found {
        let node = &model.nodes()[id];
        let name = node.name.clone();
        let input = node.inputs[0];
        let fact = model.outlet_fact(input)?.clone();
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let out = wire(&mut patch, &name, x, &fact)?;
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
    }
    Ok(found.len())
}

/// Rewrites every fused exact GELU (`GeluExact`, which tract's declutter
/// makes from the exported `x * 0.5 * (1 + erf(x / sqrt 2))`) back into
/// its Mul/Erf/Add form. tract-cuda 0.23.9 has no kernel for `GeluExact`:
/// each one would run on the CPU with copies both ways (107 ms per UNet
/// step on an H200 instead of 37 ms). Returns how many were rewritten.
pub fn unfuse_exact_gelu(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::math::{add, erf, mul};
    use tract_onnx::tract_core::ops::nn::GeluExact;
    rewrite_element_wise(
        model,
        |op| op.is::<GeluExact>(),
        |patch, name, x, fact| {
            let constant = |value: f32| -> TractResult<Tensor> {
                tensor0(value)
                    .cast_to_dt(fact.datum_type)?
                    .into_owned()
                    .broadcast_into_rank(fact.rank())
            };
            let inv_sqrt2 =
                patch.add_const(format!("{name}.inv_sqrt2"), constant(0.5f32.sqrt())?)?;
            let one = patch.add_const(format!("{name}.one"), constant(1.0)?)?;
            let half = patch.add_const(format!("{name}.half"), constant(0.5)?)?;
            let scaled = patch.wire_node(format!("{name}.scale"), mul(), &[x, inv_sqrt2])?[0];
            let erfed = patch.wire_node(format!("{name}.erf"), erf(), &[scaled])?[0];
            let one_plus = patch.wire_node(format!("{name}.one_plus"), add(), &[erfed, one])?[0];
            let half_x = patch.wire_node(format!("{name}.half_x"), mul(), &[x, half])?[0];
            Ok(patch.wire_node(format!("{name}.gelu"), mul(), &[half_x, one_plus])?[0])
        },
    )
}

/// Rewrites every cube (`PowConst` with exponent 3, which tract makes of
/// the exported `Pow(x, 3)` in the tanh-approximated GELU of T5's gated
/// feed-forward and of GPT-2) as `Square(x) · x`. tract-cuda 0.23.9 has
/// kernels for `Square` and `Mul` but none for `PowConst`: on an H200 the
/// 24 in T5 and 12 in GPT-2 ran on the CPU with copies both ways. (`x ^ 2`
/// is already `Square` after declutter.) Returns how many were rewritten.
pub fn expand_cubes(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::math::{PowConst, mul, square};
    rewrite_element_wise(
        model,
        |op| {
            op.downcast_ref::<PowConst>()
                .is_some_and(|p| p.exponent == 3.0)
        },
        |patch, name, x, _| {
            let squared = patch.wire_node(format!("{name}.square"), square(), &[x])?[0];
            Ok(patch.wire_node(format!("{name}.cube"), mul(), &[squared, x])?[0])
        },
    )
}

/// How many nodes [`typed_for_gpu`] rewrote.
struct GpuRewrites {
    gelus: usize,
    cubes: usize,
    kept_on_cpu: usize,
}

/// The graph as it goes to tract's CUDA runtime (and as `vivid bench
/// compare` checks it): decluttered, the exact GELUs unfused and the cubes
/// expanded into ops the runtime has kernels for, and the ops named in
/// `VIVID_CPU_OPS` wrapped to stay on the CPU.
fn typed_for_gpu(model: InferenceModel) -> TractResult<(TypedModel, GpuRewrites)> {
    let mut typed = model.into_typed()?.into_decluttered()?;
    let gelus = unfuse_exact_gelu(&mut typed)?;
    let cubes = expand_cubes(&mut typed)?;
    let kept_on_cpu = crate::compute::on_cpu::keep_ops_on_cpu(&mut typed, &ops_kept_on_cpu())?;
    Ok((
        typed,
        GpuRewrites {
            gelus,
            cubes,
            kept_on_cpu,
        },
    ))
}

/// Prepares a graph for tract's CUDA runtime: declutter, undo the GELU
/// fusion and the cubes the runtime has no kernels for, hand it to
/// the runtime, and log which nodes run where.
fn prepare_cuda(
    model: InferenceModel,
    component: &str,
) -> Result<Box<dyn tract_onnx::tract_core::runtime::Runnable>, String> {
    let (typed, rewrites) =
        typed_for_gpu(model).map_err(|e| format!("tract cannot prepare it: {e:#}"))?;
    if rewrites.kept_on_cpu > 0 {
        tracing::info!(
            component,
            nodes = rewrites.kept_on_cpu,
            "kept on the CPU (VIVID_CPU_OPS)"
        );
    }
    let runnable = cuda_plan(typed)?;
    if let Some(model) = runnable.typed_model() {
        let mut on_cpu: std::collections::BTreeMap<String, usize> = Default::default();
        let mut on_gpu = 0usize;
        for node in model.nodes() {
            let op = node.op().name();
            if op.starts_with("Cuda") || op.starts_with("Gpu") || op.starts_with("Device") {
                on_gpu += 1;
            } else if !node.inputs.is_empty() {
                *on_cpu.entry(op.to_string()).or_insert(0) += 1;
            }
        }
        tracing::info!(
            component,
            gelu_rewritten = rewrites.gelus,
            cubes_rewritten = rewrites.cubes,
            gpu_nodes = on_gpu,
            cpu_nodes = ?on_cpu,
            "graph placed on the GPU"
        );
    }
    Ok(runnable)
}

/// The decluttered, rewritten graph handed to tract's CUDA runtime.
#[cfg(feature = "cuda-background")]
fn cuda_plan(
    typed: TypedModel,
) -> Result<Box<dyn tract_onnx::tract_core::runtime::Runnable>, String> {
    // Linking tract-cuda registers its runtime.
    use tract_cuda as _;
    let runtime = tract_onnx::tract_core::runtime::runtime_for_name("cuda")
        .map_err(|e| format!("tract's CUDA runtime is not available: {e:#}"))?
        .ok_or("tract's CUDA runtime is not registered in this build")?;
    runtime
        .prepare_with_options(typed, &Default::default())
        .map_err(|e| {
            format!(
                "tract's CUDA runtime cannot prepare it (are the CUDA libraries installed, and the GPU visible?): {e:#}"
            )
        })
}

#[cfg(not(feature = "cuda-background"))]
fn cuda_plan(
    _typed: TypedModel,
) -> Result<Box<dyn tract_onnx::tract_core::runtime::Runnable>, String> {
    Err("this vivid was built without GPU support: build it with `--features cuda-background` (or `cuda`), or set background.device = \"cpu\"".into())
}

/// An f32 tensor from its shape and data.
pub fn f32_tensor(shape: &[usize], data: &[f32]) -> Result<Tensor, BackgroundError> {
    Tensor::from_shape(shape, data).map_err(|e| BackgroundError::Internal(e.to_string()))
}

/// An i64 tensor from its shape and data.
pub fn i64_tensor(shape: &[usize], data: &[i64]) -> Result<Tensor, BackgroundError> {
    Tensor::from_shape(shape, data).map_err(|e| BackgroundError::Internal(e.to_string()))
}

/// A graph output's values as f32, in row-major order.
pub fn f32_values(component: &str, tensor: &Tensor) -> Result<Vec<f32>, BackgroundError> {
    values(component, tensor)
}

/// A graph output's values as i64.
pub(crate) fn i64_values(component: &str, tensor: &Tensor) -> Result<Vec<i64>, BackgroundError> {
    values(component, tensor)
}

fn values<T: Datum + Copy>(component: &str, tensor: &Tensor) -> Result<Vec<T>, BackgroundError> {
    let fail = |e: TractError| BackgroundError::Inference {
        component: component.to_owned(),
        reason: format!("unexpected output: {e}"),
    };
    let cast = tensor.cast_to::<T>().map_err(fail)?;
    let view = cast.to_plain_array_view::<T>().map_err(fail)?;
    Ok(view.iter().copied().collect())
}
