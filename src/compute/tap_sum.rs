//! Convolutions as a sum of matrix products over the kernel's taps: the 1-D
//! ones of the Piper voice's decoder half (its HiFi-GAN's long, narrow ones
//! and its flows' short, wide ones) and of AudioLDM2's HiFi-GAN vocoder,
//! and, through [`TapSumConv2d`], AudioLDM2's VAE decoder's 3x3 ones.
//!
//! tract runs a convolution as im2col and one matrix product with
//! `k = channels × taps`. For a HiFi-GAN's last stages (32 or 64 channels,
//! 10⁴–10⁵ samples) its lazy im2col gathers every column of that product
//! through an offset table, and the product ran at about a third of the
//! machine's peak (`vivid bench tts --profile`: 86 % of the voice's time).
//! Here the output is built chunk by chunk of time: for each tap `j` the
//! chunk gets `W_j · X[:, t + j·d − pad]`, a plain strided product on the
//! input itself (ndarray's, on matrixmultiply's packed kernels), so there
//! is no im2col at all, zero padding is a narrower column range instead of
//! a padded copy, and the chunk stays in cache while its taps add up.
//!
//! [`use_tap_sum_convolutions`] swaps the ops in for tract's `Conv` in a
//! typed model before tract optimizes it; tract still runs everything else.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::tract_ndarray::linalg::general_mat_mul;
use tract_onnx::prelude::tract_ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Ix3, Ix4, s};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Output samples per chunk: the chunk of every output channel and the
/// input rows it reads stay in L2 while the taps add up.
const CHUNK: usize = 512;

/// Below this many output channels a matrix product wastes its tile; each
/// channel is then a sum of scaled input rows (the decoder's `conv_post`,
/// one channel out).
const MIN_PRODUCT_CHANNELS: usize = 4;

/// A stride-1, group-1 f32 convolution over the last axis of `[N, C, T]`.
#[derive(Debug, Clone)]
pub(crate) struct TapSumConv1d {
    input_channels: usize,
    output_channels: usize,
    /// Where each tap reads, relative to the output sample (before
    /// padding): `j · dilation` for a 1-D kernel, `dy · row + dx` for a 2-D
    /// one over a padded, flattened plane (see [`TapSumConv2d`]).
    offsets: Arc<Vec<usize>>,
    pad_before: usize,
    pad_after: usize,
    /// `[taps][output_channels][input_channels]`: tap `j`'s matrix is
    /// contiguous, rows by output channel.
    weights: Arc<Vec<f32>>,
    /// One value per output channel.
    bias: Arc<Vec<f32>>,
}

impl PartialEq for TapSumConv1d {
    fn eq(&self, other: &Self) -> bool {
        self.geometry() == other.geometry()
            && self.weights == other.weights
            && self.bias == other.bias
    }
}

impl Eq for TapSumConv1d {}

impl TapSumConv1d {
    /// A convolution from an `[output, input, taps]` (OIHW) kernel and a
    /// bias of one value per output channel (or one for all).
    #[cfg(test)]
    pub fn new(
        kernel: &[f32],
        kernel_shape: [usize; 3],
        bias: &[f32],
        dilation: usize,
        pad_before: usize,
        pad_after: usize,
    ) -> TractResult<TapSumConv1d> {
        let offsets = (0..kernel_shape[2]).map(|j| j * dilation.max(1)).collect();
        Self::with_offsets(kernel, kernel_shape, bias, offsets, pad_before, pad_after)
    }

    /// A convolution whose taps read at `offsets` (one per tap, in the
    /// kernel's order).
    pub(crate) fn with_offsets(
        kernel: &[f32],
        kernel_shape: [usize; 3],
        bias: &[f32],
        offsets: Vec<usize>,
        pad_before: usize,
        pad_after: usize,
    ) -> TractResult<TapSumConv1d> {
        let [output_channels, input_channels, taps] = kernel_shape;
        ensure!(
            offsets.len() == taps,
            "{} offsets for {taps} taps",
            offsets.len()
        );
        ensure!(
            kernel.len() == output_channels * input_channels * taps && taps > 0,
            "kernel of {} values is not {kernel_shape:?}",
            kernel.len()
        );
        let bias = match bias.len() {
            1 => vec![bias[0]; output_channels],
            n if n == output_channels => bias.to_vec(),
            n => bail!("bias of {n} values for {output_channels} output channels"),
        };
        let mut weights = vec![0.0; kernel.len()];
        for o in 0..output_channels {
            for c in 0..input_channels {
                for j in 0..taps {
                    weights[(j * output_channels + o) * input_channels + c] =
                        kernel[(o * input_channels + c) * taps + j];
                }
            }
        }
        Ok(TapSumConv1d {
            input_channels,
            output_channels,
            offsets: Arc::new(offsets),
            pad_before,
            pad_after,
            weights: Arc::new(weights),
            bias: Arc::new(bias),
        })
    }

    fn geometry(&self) -> ([usize; 4], &[usize]) {
        let sizes = [
            self.input_channels,
            self.output_channels,
            self.pad_before,
            self.pad_after,
        ];
        (sizes, &self.offsets)
    }

    /// Output length for an input of `len` samples; an error when the
    /// padded input is shorter than the kernel.
    pub(crate) fn output_len(&self, len: usize) -> TractResult<usize> {
        (len + self.pad_before + self.pad_after)
            .checked_sub(self.offsets.iter().copied().max().unwrap_or(0))
            .with_context(|| format!("{len} samples are shorter than the kernel"))
    }

    /// Convolves one `[input_channels, len]` signal into
    /// `[output_channels, output_len]`.
    pub(crate) fn convolve(
        &self,
        input: ArrayView2<f32>,
        mut output: ArrayViewMut2<f32>,
    ) -> TractResult<()> {
        let len = input.ncols();
        let out_len = self.output_len(len)?;
        ensure!(input.nrows() == self.input_channels);
        ensure!(output.dim() == (self.output_channels, out_len));
        let threads = super::tract_thread_pool();
        // Work items: chunks of time, and when there are too few of those
        // to keep every thread busy (the flows' short, wide convolutions),
        // blocks of output channels as well.
        let column_chunks = out_len.div_ceil(CHUNK).max(1);
        let row_blocks = match &threads {
            Some(pool) if column_chunks < 2 * pool.current_num_threads() => {
                (2 * pool.current_num_threads()).div_ceil(column_chunks)
            }
            _ => 1,
        };
        let rows_per_block = self
            .output_channels
            .div_ceil(row_blocks)
            .next_multiple_of(8);
        let mut items: Vec<(usize, usize, ArrayViewMut2<f32>)> = Vec::new();
        for (i, columns) in output.axis_chunks_iter_mut(Axis(1), CHUNK).enumerate() {
            for (row, block) in super::row_blocks(columns, rows_per_block) {
                items.push((row, i * CHUNK, block));
            }
        }
        super::run_items(threads.as_deref(), items, |(row, start, out)| {
            self.block(input, row, start, out);
            Ok(())
        })
    }

    /// One block of the output: the channels from `row` and the columns
    /// from `start` on, as many as `out` has.
    fn block(&self, input: ArrayView2<f32>, row: usize, start: usize, mut out: ArrayViewMut2<f32>) {
        let (cin, cout) = (self.input_channels, self.output_channels);
        let rows = row..row + out.nrows();
        let len = input.ncols();
        let end = start + out.ncols();
        for (mut row, bias) in out.rows_mut().into_iter().zip(&self.bias[rows.clone()]) {
            row.fill(*bias);
        }
        for (j, &offset) in self.offsets.iter().enumerate() {
            // Output column t reads input column t + shift; outside the
            // input the (zero) padding adds nothing, so the tap's columns
            // are only those that land inside it.
            let shift = offset as isize - self.pad_before as isize;
            let first = start.max((-shift).max(0) as usize);
            let last = end.min((len as isize - shift).max(0) as usize);
            if first >= last {
                continue;
            }
            let source = (first as isize + shift) as usize;
            let x = input.slice(s![.., source..source + (last - first)]);
            let mut y = out.slice_mut(s![.., first - start..last - start]);
            let weights = &self.weights[(j * cout + rows.start) * cin..(j * cout + rows.end) * cin];
            if cout < MIN_PRODUCT_CHANNELS {
                for (mut y, w) in y.rows_mut().into_iter().zip(weights.chunks_exact(cin)) {
                    for (x, w) in x.rows().into_iter().zip(w) {
                        y.scaled_add(*w, &x);
                    }
                }
            } else if let Ok(w) = ArrayView2::from_shape((rows.len(), cin), weights) {
                // ndarray hands this to matrixmultiply's packed kernels,
                // strided views and all; beta = 1 adds to the bias and the
                // earlier taps.
                general_mat_mul(1.0, &w, &x, 1.0, &mut y);
            }
        }
    }
}

impl Op for TapSumConv1d {
    fn name(&self) -> StaticName {
        "TapSumConv1d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, taps at {:?}, padding {}+{}",
            self.input_channels,
            self.output_channels,
            self.offsets,
            self.pad_before,
            self.pad_after
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for TapSumConv1d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[batch, channels, len] = input.shape() else {
            bail!("TapSumConv1d takes [N, C, T], got {:?}", input.shape());
        };
        ensure!(channels == self.input_channels);
        let out_len = self.output_len(len)?;
        let mut output = Tensor::zero::<f32>(&[batch, self.output_channels, out_len])?;
        let x = input
            .to_plain_array_view::<f32>()?
            .into_dimensionality::<Ix3>()?;
        let mut y = output
            .to_plain_array_view_mut::<f32>()?
            .into_dimensionality::<Ix3>()?;
        for (x, y) in x.outer_iter().zip(y.outer_iter_mut()) {
            self.convolve(x, y)?;
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for TapSumConv1d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        ensure!(input.datum_type == f32::datum_type() && input.rank() == 3);
        let len = input.shape[2]
            .to_usize()
            .context("TapSumConv1d needs a concrete length")?;
        let out_len = self.output_len(len)?;
        Ok(tvec!(f32::fact([
            input.shape[0].clone(),
            self.output_channels.into(),
            out_len.into()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        let points: TDim = out[0].shape.iter().product();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            points * (self.input_channels * self.offsets.len())
        )))
    }

    as_op!();
}

/// The convolutions already built, by node name, so that the plans of one
/// graph for several input lengths share one copy of each kernel.
#[derive(Debug, Default)]
pub struct SharedKernels(std::sync::Mutex<HashMap<String, TapSumConv1d>>);

/// Replaces every convolution of `model` that [`TapSumConv1d`] or
/// [`TapSumConv2d`] runs (f32, concrete sizes, stride 1, one group,
/// constant kernel and bias; in 2-D, kernels wider than 1x1 without
/// dilation over planes at least 16 wide); returns how many.
/// Run it on a typed, decluttered model, before `into_optimized`.
pub fn use_tap_sum_convolutions(
    model: &mut TypedModel,
    shared: &SharedKernels,
) -> TractResult<usize> {
    let mut replaced = 0;
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<Conv>())
        .map(|n| n.id)
        .collect();
    for id in candidates {
        let node = model.node(id);
        let Some(op) = tap_sum_for(model, node, shared)? else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The tap-sum op for a `Conv` node ([`TapSumConv1d`] or [`TapSumConv2d`]),
/// or None where tract's stays; the kernel in `shared` when an earlier plan
/// built it already.
fn tap_sum_for(
    model: &TypedModel,
    node: &TypedNode,
    shared: &SharedKernels,
) -> TractResult<Option<Box<dyn TypedOp>>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let spatial = spec.kernel_shape.len();
    let input = model.outlet_fact(node.inputs[0])?;
    if conv.q_params.is_some()
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || !(1..=2).contains(&spatial)
        || spec.strides().iter().any(|s| *s != 1)
        || input.datum_type != f32::datum_type()
        || input.rank() != 2 + spatial
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    if kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || kernel.rank() != 2 + spatial
    {
        return Ok(None);
    }
    let padding = match &spec.padding {
        PaddingSpec::Valid
        | PaddingSpec::Explicit(..)
        | PaddingSpec::ExplicitOnnxPool(_, _, false) => spec.computed_padding(&shape[2..]),
        _ => return Ok(None),
    };
    let dilations = spec.dilations();
    let (o, i) = (kernel.shape()[0], kernel.shape()[1]);
    let taps: usize = kernel.shape()[2..].iter().product();
    let (offsets, pad_before, pad_after): (Vec<usize>, usize, usize) = if spatial == 1 {
        let offsets = (0..taps).map(|j| j * dilations[0]).collect();
        (offsets, padding[0].pad_before, padding[0].pad_after)
    } else {
        // A 1x1 kernel is already a plain product in tract; a narrow plane
        // would spend too much on its padding columns.
        if taps == 1 || dilations.iter().any(|d| *d != 1) || shape[3] < MIN_PLANE_WIDTH {
            return Ok(None);
        }
        let row = shape[3] + padding[1].pad_before + padding[1].pad_after;
        let kw = kernel.shape()[3];
        let offsets = (0..taps).map(|j| (j / kw) * row + j % kw).collect();
        (offsets, 0, 0)
    };
    let mut kernels = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    let core = match kernels.get(&node.name) {
        Some(known) if known.geometry() == ([i, o, pad_before, pad_after], &offsets[..]) => {
            known.clone()
        }
        _ => {
            let built = TapSumConv1d::with_offsets(
                kernel.try_as_plain_ram()?.as_slice::<f32>()?,
                [o, i, taps],
                bias.try_as_plain_ram()?.as_slice::<f32>()?,
                offsets,
                pad_before,
                pad_after,
            )?;
            kernels.insert(node.name.clone(), built.clone());
            built
        }
    };
    if spatial == 1 {
        if core.output_len(shape[2]).ok() != Some(padding[0].convoluted) {
            return Ok(None);
        }
        return Ok(Some(Box::new(core)));
    }
    let op = TapSumConv2d {
        core,
        kernel_hw: [kernel.shape()[2], kernel.shape()[3]],
        pads: [
            padding[0].pad_before,
            padding[0].pad_after,
            padding[1].pad_before,
            padding[1].pad_after,
        ],
    };
    if op.output_hw(shape[2], shape[3]) != Some((padding[0].convoluted, padding[1].convoluted)) {
        return Ok(None);
    }
    Ok(Some(Box::new(op)))
}

/// Planes narrower than this stay with tract's convolution: the 2-D op
/// computes `kernel width - 1` padding columns per row for nothing.
const MIN_PLANE_WIDTH: usize = 16;

/// A stride-1, group-1 f32 2-D convolution of `[N, C, H, W]`, as a
/// [`TapSumConv1d`] over each zero-padded plane laid out flat: tap
/// `(dy, dx)` reads `dy · padded_width + dx` samples further on, so each
/// tap is again one strided product over the whole plane. The output rows
/// come out `padded_width` apart, and the `kernel width - 1` columns
/// between them, which straddle two rows, are dropped. For the AudioLDM2
/// VAE decoder's 3x3 convolutions over planes 16 to 64 wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TapSumConv2d {
    /// Taps at `dy · padded_width + dx`, no padding of its own.
    core: TapSumConv1d,
    kernel_hw: [usize; 2],
    /// Zero padding: top, bottom, left, right.
    pads: [usize; 4],
}

impl TapSumConv2d {
    /// Output height and width for an `h × w` plane, None when the padded
    /// plane is smaller than the kernel.
    fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let [top, bottom, left, right] = self.pads;
        let [kh, kw] = self.kernel_hw;
        Some((
            (h + top + bottom + 1).checked_sub(kh)?,
            (w + left + right + 1).checked_sub(kw)?,
        ))
    }
}

impl Op for TapSumConv2d {
    fn name(&self) -> StaticName {
        "TapSumConv2d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, {:?} kernel, padding {:?}",
            self.core.input_channels, self.core.output_channels, self.kernel_hw, self.pads
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for TapSumConv2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[batch, channels, h, w] = input.shape() else {
            bail!("TapSumConv2d takes [N, C, H, W], got {:?}", input.shape());
        };
        ensure!(channels == self.core.input_channels);
        let (oh, ow) = self
            .output_hw(h, w)
            .with_context(|| format!("a {h}x{w} plane is smaller than the kernel"))?;
        let [top, bottom, left, right] = self.pads;
        let width = w + left + right;
        let flat_len = self.core.output_len((h + top + bottom) * width)?;
        let mut output = Tensor::zero::<f32>(&[batch, self.core.output_channels, oh, ow])?;
        let x = input
            .to_plain_array_view::<f32>()?
            .into_dimensionality::<Ix4>()?;
        let mut y = output
            .to_plain_array_view_mut::<f32>()?
            .into_dimensionality::<Ix4>()?;
        // The padding stays zero: only the interior is written, per item.
        let mut padded = Array2::<f32>::zeros((channels, (h + top + bottom) * width));
        let mut flat = Array2::<f32>::zeros((self.core.output_channels, flat_len));
        for (x, mut y) in x.outer_iter().zip(y.outer_iter_mut()) {
            for (plane, mut row) in x.outer_iter().zip(padded.rows_mut()) {
                for (r, line) in plane.outer_iter().enumerate() {
                    let start = (r + top) * width + left;
                    row.slice_mut(s![start..start + w]).assign(&line);
                }
            }
            self.core.convolve(padded.view(), flat.view_mut())?;
            for (mut plane, flat) in y.outer_iter_mut().zip(flat.rows()) {
                for (r, mut line) in plane.outer_iter_mut().enumerate() {
                    line.assign(&flat.slice(s![r * width..r * width + ow]));
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for TapSumConv2d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        ensure!(input.datum_type == f32::datum_type() && input.rank() == 4);
        let (Some(h), Some(w)) = (input.shape[2].as_i64(), input.shape[3].as_i64()) else {
            bail!("TapSumConv2d needs a concrete plane size");
        };
        let (oh, ow) = self
            .output_hw(h as usize, w as usize)
            .context("the plane is smaller than the kernel")?;
        Ok(tvec!(f32::fact([
            input.shape[0].clone(),
            self.core.output_channels.into(),
            oh.into(),
            ow.into()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        let points: TDim = out[0].shape.iter().product();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            points * (self.core.input_channels * self.core.offsets.len())
        )))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time.
    fn reference(
        kernel: &[f32],
        [cout, cin, taps]: [usize; 3],
        bias: &[f32],
        dilation: usize,
        pad_before: usize,
        input: &[f32],
        out_len: usize,
    ) -> Vec<f32> {
        let len = input.len() / cin;
        let mut out = vec![0.0f32; cout * out_len];
        for o in 0..cout {
            for t in 0..out_len {
                let mut sum = f64::from(bias[o % bias.len()]);
                for c in 0..cin {
                    for j in 0..taps {
                        let at = (t + j * dilation) as isize - pad_before as isize;
                        if at >= 0 && (at as usize) < len {
                            sum += f64::from(kernel[(o * cin + c) * taps + j])
                                * f64::from(input[c * len + at as usize]);
                        }
                    }
                }
                out[o * out_len + t] = sum as f32;
            }
        }
        out
    }

    fn view(values: &[f32], rows: usize) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((rows, values.len() / rows), values).unwrap()
    }

    fn view_mut(values: &mut [f32], rows: usize) -> ArrayViewMut2<'_, f32> {
        let cols = values.len().checked_div(rows).unwrap_or(0);
        ArrayViewMut2::from_shape((rows, cols), values).unwrap()
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / 16_777_216.0 - 0.5
            })
            .collect()
    }

    #[test]
    fn tap_sums_equal_the_definition_across_chunks_padding_and_dilation() {
        // (out, in, taps, dilation, pad before, pad after, length): the
        // decoder's resblock shapes, a one-channel output, uneven padding,
        // a length that leaves a partial chunk, no padding, and a dilated
        // kernel wider than a chunk's edge.
        let cases = [
            (8, 6, 3, 1, 1, 1, 1500),
            (8, 6, 7, 12, 36, 36, 1100),
            (1, 5, 7, 1, 3, 3, 700),
            (6, 4, 5, 2, 0, 7, 513),
            (4, 3, 2, 1, 0, 0, 2000),
            (5, 2, 3, 300, 300, 300, 600),
        ];
        for (seed, &(cout, cin, taps, dilation, before, after, len)) in cases.iter().enumerate() {
            let kernel = values(cout * cin * taps, seed as u32 + 1);
            let bias = values(cout, seed as u32 + 100);
            let input = values(cin * len, seed as u32 + 200);
            let op = TapSumConv1d::new(&kernel, [cout, cin, taps], &bias, dilation, before, after)
                .unwrap();
            let out_len = op.output_len(len).unwrap();
            assert_eq!(out_len, len + before + after - dilation * (taps - 1));
            let mut out = vec![f32::NAN; cout * out_len];
            op.convolve(view(&input, cin), view_mut(&mut out, cout))
                .unwrap();
            let expected = reference(
                &kernel,
                [cout, cin, taps],
                &bias,
                dilation,
                before,
                &input,
                out_len,
            );
            let worst = out
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "case {seed}: max difference {worst}");
        }
    }

    #[test]
    fn threads_give_the_same_output_as_one() {
        // Long: split in time only. Short and wide: in output channels too.
        for (cout, len) in [(8, 5000), (40, 300)] {
            let (cin, taps) = (8, 5);
            let op = TapSumConv1d::new(
                &values(cout * cin * taps, 7),
                [cout, cin, taps],
                &values(cout, 8),
                3,
                6,
                6,
            )
            .unwrap();
            let input = values(cin * len, 9);
            let out_len = op.output_len(len).unwrap();
            let mut serial = vec![0.0; cout * out_len];
            op.convolve(view(&input, cin), view_mut(&mut serial, cout))
                .unwrap();
            let mut parallel = vec![0.0; cout * out_len];
            tract_linalg::multithread::multithread_tract_scope(
                tract_linalg::multithread::Executor::multithread(3),
                || op.convolve(view(&input, cin), view_mut(&mut parallel, cout)),
            )
            .unwrap();
            assert_eq!(serial, parallel, "{cout} channels, {len} samples");
        }
    }

    #[test]
    fn an_input_shorter_than_the_kernel_is_an_error_not_a_panic() {
        let op = TapSumConv1d::new(&values(2 * 2 * 5, 1), [2, 2, 5], &[0.0], 2, 0, 0).unwrap();
        let input = values(2 * 4, 2);
        let mut out = vec![];
        let err = op
            .convolve(view(&input, 2), view_mut(&mut out, 0))
            .unwrap_err();
        assert!(err.to_string().contains("shorter than the kernel"), "{err}");
    }
    #[test]
    fn plane_tap_sums_equal_the_definition() -> TractResult<()> {
        // (out, in, kernel h, kernel w, pads top/bottom/left/right, h, w):
        // the VAE's 3x3 with one pixel of padding, an uneven padding with a
        // wide kernel, and no padding at all; two items in the batch.
        let cases = [
            (5, 3, 3, 3, [1, 1, 1, 1], 9, 16),
            (4, 2, 2, 5, [0, 1, 2, 1], 7, 17),
            (3, 3, 3, 3, [0, 0, 0, 0], 6, 16),
        ];
        for (seed, &(cout, cin, kh, kw, pads, h, w)) in cases.iter().enumerate() {
            let kernel = values(cout * cin * kh * kw, seed as u32 + 11);
            let bias = values(cout, seed as u32 + 21);
            let input = values(2 * cin * h * w, seed as u32 + 31);
            let row = w + pads[2] + pads[3];
            let offsets = (0..kh * kw).map(|j| (j / kw) * row + j % kw).collect();
            let core =
                TapSumConv1d::with_offsets(&kernel, [cout, cin, kh * kw], &bias, offsets, 0, 0)?;
            let op = TapSumConv2d {
                core,
                kernel_hw: [kh, kw],
                pads,
            };
            let (oh, ow) = op.output_hw(h, w).context("output size")?;
            let tensor = Tensor::from_shape(&[2, cin, h, w], &input)?;
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([2, cin, h, w]))?;
            let y = model.wire_node("conv", op, &[x])?;
            model.select_output_outlets(&y)?;
            let got = model.into_runnable()?.run(tvec!(tensor.into_tvalue()))?;
            let got = got[0].try_as_plain_ram()?;
            let got = got.as_slice::<f32>()?;
            assert_eq!(got.len(), 2 * cout * oh * ow);
            for n in 0..2 {
                for o in 0..cout {
                    for y in 0..oh {
                        for x in 0..ow {
                            let mut sum = f64::from(bias[o]);
                            for c in 0..cin {
                                for dy in 0..kh {
                                    for dx in 0..kw {
                                        let (iy, ix) = (
                                            (y + dy) as isize - pads[0] as isize,
                                            (x + dx) as isize - pads[2] as isize,
                                        );
                                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w
                                        {
                                            continue;
                                        }
                                        let value = input
                                            [((n * cin + c) * h + iy as usize) * w + ix as usize];
                                        sum +=
                                            f64::from(kernel[((o * cin + c) * kh + dy) * kw + dx])
                                                * f64::from(value);
                                    }
                                }
                            }
                            let at = ((n * cout + o) * oh + y) * ow + x;
                            assert!(
                                (got[at] - sum as f32).abs() < 1e-5,
                                "case {seed}: {} vs {sum} at {n},{o},{y},{x}",
                                got[at]
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
