//! One graph of a bundle on tract: checked against bundle.toml, loaded at
//! its fixed shapes, optimized once, and run with its inputs checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;

use super::BackgroundError;
use super::bundle::{BundleMeta, TensorMeta, verify_component};

pub struct Graph {
    component: String,
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<TensorMeta>,
    load_s: f64,
    /// Runs and their total seconds, for benchmarks.
    runs: std::sync::Mutex<(u64, f64)>,
}

/// Time a graph took to load and to run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GraphTiming {
    pub component: String,
    pub load_s: f64,
    pub runs: u64,
    pub run_s: f64,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("component", &self.component)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// Verifies, loads and optimizes `component` of the bundle in `dir`.
    pub fn load(dir: &Path, meta: &BundleMeta, component: &str) -> Result<Graph, BackgroundError> {
        let entry = meta.component(dir, component)?;
        let started = Instant::now();
        let path = verify_component(dir, entry)?;
        let bad = |reason: String| BackgroundError::Graph {
            path: path.clone(),
            reason,
        };
        let mut model = tract_onnx::onnx()
            .model_for_path(&path)
            .map_err(|e| bad(format!("not a readable ONNX graph: {e}")))?;
        let names: Vec<String> = model
            .input_outlets()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|outlet| model.node(outlet.node).name.clone())
            .collect();
        for input in &entry.inputs {
            let index = names.iter().position(|n| *n == input.name).ok_or_else(|| {
                bad(format!(
                    "the graph has no input `{}` (it has {names:?}); it does not belong to this bundle.toml",
                    input.name
                ))
            })?;
            let shape: Vec<usize> = input.shape.iter().map(|&d| d.max(0) as usize).collect();
            let fact: InferenceFact = match input.dtype.as_str() {
                "f32" => f32::fact(&shape).into(),
                "i64" => i64::fact(&shape).into(),
                other => return Err(bad(format!("input `{}` has dtype {other}", input.name))),
            };
            model = model
                .with_input_fact(index, fact)
                .map_err(|e| bad(e.to_string()))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| bad(format!("tract cannot prepare it: {e:#}")))?;
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
            inputs: entry.inputs.clone(),
            load_s: started.elapsed().as_secs_f64(),
            runs: std::sync::Mutex::new((0, 0.0)),
        })
    }

    pub fn timing(&self) -> GraphTiming {
        let (runs, run_s) = *self.runs.lock().unwrap_or_else(|p| p.into_inner());
        GraphTiming {
            component: self.component.clone(),
            load_s: self.load_s,
            runs,
            run_s,
        }
    }

    pub fn reset_timing(&self) {
        *self.runs.lock().unwrap_or_else(|p| p.into_inner()) = (0, 0.0);
    }

    /// The matrix-multiplication kernels tract chose for this graph, with
    /// how many matmul nodes use each (benchmarks report them: int8 is fast
    /// only where a dot-product kernel exists).
    pub fn kernels(&self) -> std::collections::BTreeMap<String, usize> {
        use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
        let mut kernels = std::collections::BTreeMap::new();
        for node in self.plan.model().nodes() {
            if let Some(op) = node.op_as::<OptMatMul>() {
                for mmm in &op.mmm {
                    *kernels.entry(mmm.name().to_owned()).or_insert(0) += 1;
                }
            }
        }
        kernels
    }

    pub fn component(&self) -> &str {
        &self.component
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
            let expected: Vec<usize> = meta.shape.iter().map(|&d| d.max(0) as usize).collect();
            if tensor.shape() != expected.as_slice() {
                return Err(fail(format!(
                    "input `{}` has shape {:?}, the graph takes {:?}",
                    meta.name,
                    tensor.shape(),
                    expected
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
            Ok(Ok(outputs)) => Ok(outputs.into_iter().map(|v| v.into_tensor()).collect()),
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
    let fail = |e: TractError| BackgroundError::Inference {
        component: component.to_owned(),
        reason: format!("unexpected output: {e}"),
    };
    let cast = tensor.cast_to::<f32>().map_err(fail)?;
    let view = cast.to_plain_array_view::<f32>().map_err(fail)?;
    Ok(view.iter().copied().collect())
}

/// A graph output's values as i64.
pub fn i64_values(component: &str, tensor: &Tensor) -> Result<Vec<i64>, BackgroundError> {
    let fail = |e: TractError| BackgroundError::Inference {
        component: component.to_owned(),
        reason: format!("unexpected output: {e}"),
    };
    let cast = tensor.cast_to::<i64>().map_err(fail)?;
    let view = cast.to_plain_array_view::<i64>().map_err(fail)?;
    Ok(view.iter().copied().collect())
}
