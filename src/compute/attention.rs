//! Multi-head attention as one op: `softmax(Q·Kᵀ)·V` a block of queries
//! at a time, for the self-attention layers of AudioLDM2's UNet.
//!
//! As exported, each of those layers is three tract ops: a matrix product
//! that writes every score (8 heads × 1024 × 1024 floats, 32 MiB, at the
//! UNet's second level), a softmax that reads and writes them again, and a
//! product that packs and reads them a third time. The first product has
//! an inner dimension of only 32 (the head size), so it is bound by that
//! traffic, not by arithmetic: timed node by node, the three took 0.80 s of
//! a 2.59 s pass of the real-size UNet on one thread. Here a block of
//! queries gets its scores, their softmax and its share of the output while
//! the scores stay in the core's cache, the softmax's normalization is
//! applied to the `D`-wide output rows instead of the `N`-wide score rows,
//! and the blocks of all heads run in parallel on tract's executor (0.37 s
//! of a 2.28 s pass).
//!
//! [`use_fused_attention`] swaps the op in for the three nodes in a typed,
//! decluttered model, before tract optimizes it.

use tract_linalg::element_wise::ElementWise;
use tract_linalg::routines::Func;
use tract_onnx::prelude::tract_ndarray::linalg::general_mat_mul;
use tract_onnx::prelude::tract_ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Ix3};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

/// Scores kept per block of queries: 128 Ki floats (512 KiB) stay in L2
/// (measured: 64 Ki, 128 Ki and 256 Ki floats took 19.9, 17.6 and
/// 17.1 ms for one 8-head 1024-query attention on one Zen 4 core).
const BLOCK_SCORES: usize = 1 << 17;

/// `softmax(Q·Kᵀ)·V` per head, with `Q` `[M, H, D]`, `K` `[N, H, D]`, `V`
/// `[N, H, Dv]` and the output `[M, H, Dv]` (the layout the UNet's
/// attention has between its reshapes). Any scaling of the scores is
/// already in `Q` and `K`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FusedAttention;

impl FusedAttention {
    /// Computes the attention of `q`, `k`, `v` into `output`.
    pub(crate) fn attend(
        &self,
        q: tract_ndarray::ArrayView3<f32>,
        k: tract_ndarray::ArrayView3<f32>,
        v: tract_ndarray::ArrayView3<f32>,
        mut output: tract_ndarray::ArrayViewMut3<f32>,
    ) -> TractResult<()> {
        let (m, heads, d) = q.dim();
        let (n, _, dv) = v.dim();
        ensure!(
            k.dim() == (n, heads, d),
            "keys {:?} for queries {:?}",
            k.dim(),
            q.dim()
        );
        ensure!(v.dim().1 == heads, "values {:?} for {heads} heads", v.dim());
        ensure!(output.dim() == (m, heads, dv), "output {:?}", output.dim());
        ensure!(n > 0, "attention over no keys");
        let block = (BLOCK_SCORES / n).clamp(8, 256);
        let mut items: Vec<(usize, usize, ArrayViewMut2<f32>)> = Vec::new();
        for (head, rows) in output.axis_iter_mut(Axis(1)).enumerate() {
            for (first, block) in super::row_blocks(rows, block) {
                items.push((head, first, block));
            }
        }
        let exp = Func::Exp.ew_f32()?;
        let run = |(head, first, out): (usize, usize, ArrayViewMut2<f32>)| -> TractResult<()> {
            let q = q.index_axis(Axis(1), head);
            let q = q.slice(tract_ndarray::s![first..first + out.nrows(), ..]);
            attend_block(
                q,
                k.index_axis(Axis(1), head),
                v.index_axis(Axis(1), head),
                out,
                exp.as_ref(),
            )
        };
        super::run_items(super::tract_thread_pool().as_deref(), items, run)
    }
}

/// One block of queries of one head: scores, their softmax, the output.
///
/// The scores are kept transposed, a row per key and a column per query:
/// the softmax then runs down the columns with every step a contiguous,
/// vectorized pass over the block's queries, and the product with `V`
/// reads them as a column-major matrix, which matrixmultiply packs with
/// plain copies. Kept the other way round, packing them gathered one float
/// at a time and took as long as the arithmetic (`perf`: 46 % of the op).
fn attend_block(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    mut out: ArrayViewMut2<f32>,
    exp: &dyn ElementWise<f32>,
) -> TractResult<()> {
    let queries = q.nrows();
    let mut scores = Array2::<f32>::zeros((k.nrows(), queries));
    general_mat_mul(1.0, &k, &q.t(), 0.0, &mut scores);
    let flat = scores
        .as_slice_mut()
        .context("the block's scores are not contiguous")?;
    let mut top = vec![f32::NEG_INFINITY; queries];
    for row in flat.chunks_exact(queries) {
        for (top, score) in top.iter_mut().zip(row) {
            *top = top.max(*score);
        }
    }
    for row in flat.chunks_exact_mut(queries) {
        for (score, top) in row.iter_mut().zip(&top) {
            *score -= top;
        }
    }
    exp.run(flat)?;
    let mut sums = vec![0f32; queries];
    for row in flat.chunks_exact(queries) {
        for (sum, weight) in sums.iter_mut().zip(row) {
            *sum += weight;
        }
    }
    general_mat_mul(1.0, &scores.t(), &v, 0.0, &mut out);
    for (mut row, sum) in out.rows_mut().into_iter().zip(sums) {
        row *= sum.recip();
    }
    Ok(())
}

impl Op for FusedAttention {
    fn name(&self) -> StaticName {
        "FusedAttention".into()
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for FusedAttention {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, k, v) = args_3!(inputs);
        fn view(t: &TValue) -> TractResult<tract_ndarray::ArrayView3<'_, f32>> {
            Ok(t.to_plain_array_view::<f32>()?
                .into_dimensionality::<Ix3>()?)
        }
        let (q, k, v) = (view(&q)?, view(&k)?, view(&v)?);
        let mut output = Tensor::zero::<f32>(&[q.dim().0, q.dim().1, v.dim().2])?;
        let out = output
            .to_plain_array_view_mut::<f32>()?
            .into_dimensionality::<Ix3>()?;
        self.attend(q, k, v, out)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for FusedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3 && inputs.iter().all(|f| f.rank() == 3));
        ensure!(inputs.iter().all(|f| f.datum_type == f32::datum_type()));
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            inputs[0].shape[1].clone(),
            inputs[2].shape[2].clone()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let (q, v) = (&inputs[0].shape, &inputs[2].shape);
        let per_pair = q[2].clone() + v[2].clone();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            q[0].clone() * q[1].clone() * v[0].clone() * per_pair
        )))
    }

    as_op!();
}

/// Replaces every `EinSum("mhd,nhd->hmn") → Softmax(last) →
/// EinSum("hmn,nhe->mhe")` chain of `model` (f32, each result used only by
/// the next) by one [`FusedAttention`]; returns how many. Run it on a
/// typed, decluttered model, before `into_optimized`.
pub fn use_fused_attention(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<EinSum>())
        .map(|n| n.id)
        .collect();
    for id in candidates {
        let Some((inputs, last)) = attention_chain(model, id)? else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let taps = inputs
            .iter()
            .map(|&outlet| patch.tap_model(model, outlet))
            .collect::<TractResult<TVec<_>>>()?;
        let name = format!("{}.fused_attention", model.node(id).name);
        let fused = patch.wire_node(name, FusedAttention, &taps)?;
        patch.shunt_outside(model, OutletId::new(last, 0), fused[0])?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// For the `EinSum` node `id`, the `[Q, K, V]` outlets and the last node of
/// an attention chain that starts there, or None.
fn attention_chain(model: &TypedModel, id: usize) -> TractResult<Option<([OutletId; 3], usize)>> {
    let scores_node = model.node(id);
    let Some(scores) = scores_node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if !plain_f32(model, scores_node, scores)?
        || !einsum_is(scores, |i, o| {
            // i0 = m h d, i1 = n h d, o = h m n
            i[0][1] == i[1][1] && i[0][2] == i[1][2] && o == [i[0][1], i[0][0], i[1][0]]
        })
    {
        return Ok(None);
    }
    let Some(softmax_node) = sole_successor(model, id) else {
        return Ok(None);
    };
    let Some(softmax) = softmax_node.op_as::<Softmax>() else {
        return Ok(None);
    };
    if softmax.kind != SoftmaxKind::Softmax
        || softmax.quant_output_dt.is_some()
        || softmax.axes.as_slice() != [2]
    {
        return Ok(None);
    }
    let Some(output_node) = sole_successor(model, softmax_node.id) else {
        return Ok(None);
    };
    let Some(output) = output_node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if output_node.inputs.first() != Some(&OutletId::new(softmax_node.id, 0))
        || !plain_f32(model, output_node, output)?
        || !einsum_is(output, |i, o| {
            // i0 = h m n, i1 = n h e, o = m h e
            i[1][0] == i[0][2] && i[1][1] == i[0][0] && o == [i[0][1], i[0][0], i[1][2]]
        })
    {
        return Ok(None);
    }
    let (q, k, v) = (
        scores_node.inputs[0],
        scores_node.inputs[1],
        output_node.inputs[1],
    );
    let shape = |outlet: OutletId| -> TractResult<Option<TVec<usize>>> {
        Ok(model
            .outlet_fact(outlet)?
            .shape
            .as_concrete()
            .map(|s| s.into()))
    };
    let (Some(qs), Some(ks), Some(vs)) = (shape(q)?, shape(k)?, shape(v)?) else {
        return Ok(None);
    };
    if ks[..] != [ks[0], qs[1], qs[2]] || vs[..] != [ks[0], qs[1], vs[2]] {
        return Ok(None);
    }
    Ok(Some(([q, k, v], output_node.id)))
}

/// Whether an einsum is a plain f32 product of two rank-3 inputs.
fn plain_f32(model: &TypedModel, node: &TypedNode, op: &EinSum) -> TractResult<bool> {
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return Ok(false);
    }
    for input in &node.inputs {
        let fact = model.outlet_fact(*input)?;
        if fact.datum_type != f32::datum_type() || fact.rank() != 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the einsum's axis letters, as `[input][position]` and the
/// output's, fit `pattern` (two rank-3 inputs, one rank-3 output).
fn einsum_is(op: &EinSum, pattern: impl Fn(&[[char; 3]; 2], [char; 3]) -> bool) -> bool {
    let (inputs, outputs) = op.axes.to_strs();
    let letters = |s: &String| -> Option<[char; 3]> {
        let chars: Vec<char> = s.chars().collect();
        chars.try_into().ok()
    };
    let (Some(a), Some(b), Some(o)) = (
        inputs.first().and_then(letters),
        inputs.get(1).and_then(letters),
        outputs.first().and_then(letters),
    ) else {
        return false;
    };
    inputs.len() == 2 && outputs.len() == 1 && pattern(&[a, b], o)
}

/// The only node that reads `id`'s single output, if there is exactly one.
fn sole_successor(model: &TypedModel, id: usize) -> Option<&TypedNode> {
    let node = model.node(id);
    if node.outputs.len() != 1 || model.output_outlets().ok()?.contains(&OutletId::new(id, 0)) {
        return None;
    }
    match node.outputs[0].successors.as_slice() {
        [only] => Some(model.node(only.node)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_ndarray::Array3;

    /// The definition, one query at a time, in f64.
    fn reference(q: &Array3<f32>, k: &Array3<f32>, v: &Array3<f32>) -> Array3<f32> {
        let (m, heads, d) = q.dim();
        let (n, _, dv) = v.dim();
        let mut out = Array3::<f32>::zeros((m, heads, dv));
        for h in 0..heads {
            for i in 0..m {
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[[i, h, c]] as f64 * k[[j, h, c]] as f64)
                            .sum()
                    })
                    .collect();
                let top = scores.iter().cloned().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = weights.iter().sum();
                for e in 0..dv {
                    let value: f64 = (0..n).map(|j| weights[j] * v[[j, h, e]] as f64).sum();
                    out[[i, h, e]] = (value / total) as f32;
                }
            }
        }
        out
    }

    fn pseudo_random(shape: (usize, usize, usize), seed: usize, scale: f32) -> Array3<f32> {
        Array3::from_shape_fn(shape, |(a, b, c)| {
            let x = (a * 7919 + b * 104729 + c * 1299709 + seed * 15485863) % 2003;
            (x as f32 / 1001.5 - 1.0) * scale
        })
    }

    fn attend(q: &Array3<f32>, k: &Array3<f32>, v: &Array3<f32>) -> Array3<f32> {
        let mut out = Array3::<f32>::zeros((q.dim().0, q.dim().1, v.dim().2));
        FusedAttention
            .attend(q.view(), k.view(), v.view(), out.view_mut())
            .expect("attention runs");
        out
    }

    #[test]
    fn matches_the_definition() {
        // Several blocks of queries (block = 65536 / 300 = 218), uneven
        // sizes, scores large enough for the softmax to be peaked.
        for (m, n, heads, d, dv) in [(500, 300, 3, 8, 5), (7, 1, 2, 4, 4), (33, 9, 1, 16, 3)] {
            let q = pseudo_random((m, heads, d), 1, 2.0);
            let k = pseudo_random((n, heads, d), 2, 2.0);
            let v = pseudo_random((n, heads, dv), 3, 1.0);
            let got = attend(&q, &k, &v);
            let want = reference(&q, &k, &v);
            let worst = (&got - &want).iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(worst < 2e-5, "{m}x{n}, {heads} heads: off by {worst}");
        }
    }

    #[test]
    fn threads_give_the_same_result() {
        let q = pseudo_random((600, 4, 8), 4, 1.0);
        let k = pseudo_random((401, 4, 8), 5, 1.0);
        let v = pseudo_random((401, 4, 6), 6, 1.0);
        let serial = attend(&q, &k, &v);
        let threaded =
            tract_linalg::multithread::multithread_tract_scope(crate::compute::executor(2), || {
                attend(&q, &k, &v)
            });
        assert_eq!(serial, threaded);
    }

    #[test]
    fn a_graph_of_the_three_ops_becomes_one_and_computes_the_same() -> TractResult<()> {
        let (m, n, heads, d, dv) = (40, 24, 2, 8, 8);
        let mut model = TypedModel::default();
        let q = model.add_source("q", f32::fact([m, heads, d]))?;
        let k = model.add_source("k", f32::fact([n, heads, d]))?;
        let v = model.add_source("v", f32::fact([n, heads, dv]))?;
        let scores = model.wire_node(
            "scores",
            EinSum::new("mbk,nbk->bmn".parse()?, f32::datum_type()),
            &[q, k],
        )?;
        let softmax = model.wire_node(
            "softmax",
            Softmax::new(tvec![2], None, SoftmaxKind::Softmax),
            &scores,
        )?;
        let out = model.wire_node(
            "out",
            EinSum::new("bmk,kbn->mbn".parse()?, f32::datum_type()),
            &[softmax[0], v],
        )?;
        model.select_output_outlets(&out)?;
        let inputs: TVec<TValue> = tvec![
            pseudo_random((m, heads, d), 7, 1.5).into_tensor().into(),
            pseudo_random((n, heads, d), 8, 1.5).into_tensor().into(),
            pseudo_random((n, heads, dv), 9, 1.0).into_tensor().into(),
        ];
        let before = model.clone().into_runnable()?.run(inputs.clone())?;
        let mut fused = model.into_decluttered()?;
        assert_eq!(use_fused_attention(&mut fused)?, 1);
        let fused = fused.into_optimized()?;
        assert!(fused.nodes().iter().any(|n| n.op_is::<FusedAttention>()));
        assert!(!fused.nodes().iter().any(|n| n.op_is::<Softmax>()));
        let after = fused.into_runnable()?.run(inputs)?;
        before[0].close_enough(&after[0], Approximation::Approximate)?;
        Ok(())
    }
}
