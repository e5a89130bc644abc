//! Loads ONNX graphs with tract the way vivid does (fixed input shapes from
//! the file, value info ignored), optimizes and runs each once on
//! deterministic inputs, and prints what happened: a quick check that an
//! exported graph (quantize/export.py) is tract-friendly.
//!
//! cargo run --profile ci --example tract_check -- FILE.onnx...

use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

fn check(path: &str) -> TractResult<()> {
    let started = Instant::now();
    let model = tract_onnx::onnx().model_for_path(path)?;
    let mut inputs = TVec::new();
    let mut typed = model.clone();
    for (index, outlet) in model.input_outlets()?.iter().enumerate() {
        let fact = model.outlet_fact(*outlet)?;
        // Masks are all ones (a mask of other values sends position ids out
        // of range, and tract's Gather panics on that instead of failing).
        let is_mask = model.node(outlet.node).name.contains("mask");
        let shape: Vec<usize> = fact
            .shape
            .as_concrete_finite()?
            .ok_or_else(|| anyhow::anyhow!("input {index} has no fixed shape"))?
            .to_vec();
        let dt = fact
            .datum_type
            .concretize()
            .ok_or_else(|| anyhow::anyhow!("input {index} has no type"))?;
        let _: DatumType = dt;
        let len: usize = shape.iter().product();
        let tensor =
            if dt == i64::datum_type() && !is_mask && model.node(outlet.node).name == "timestep" {
                tract_ndarray::ArrayD::from_shape_vec(shape.clone(), vec![500i64; len])?
                    .into_tensor()
            } else if dt == i64::datum_type() {
                tract_ndarray::ArrayD::from_shape_vec(
                    shape.clone(),
                    (0..len as i64)
                        .map(|i| if is_mask { 1 } else { 3 + i % 50 })
                        .collect(),
                )?
                .into_tensor()
            } else {
                tract_ndarray::ArrayD::from_shape_vec(
                    shape.clone(),
                    (0..len)
                        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                        .collect(),
                )?
                .into_tensor()
            };
        typed = typed.with_input_fact(index, InferenceFact::dt_shape(dt, shape))?;
        inputs.push(tensor.into());
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    let loaded = started.elapsed();
    let started = Instant::now();
    let outputs = plan.run(inputs)?;
    for (index, output) in outputs.iter().enumerate() {
        let stats = output.cast_to::<f32>().ok().and_then(|t| {
            t.to_plain_array_view::<f32>()
                .ok()
                .map(|v| v.iter().fold(0f32, |m, x| m.max(x.abs())))
        });
        println!(
            "{path}: output {index} {:?} max |x| {:?}",
            output.shape(),
            stats
        );
    }
    println!(
        "{path}: load+optimize {loaded:?}, run {:?}",
        started.elapsed()
    );
    Ok(())
}

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        if let Err(e) = check(&path) {
            println!("{path}: FAILED: {e:#}");
            failed = true;
        }
    }
    std::process::exit(i32::from(failed));
}
