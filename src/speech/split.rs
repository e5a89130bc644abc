//! The VITS graph cut in two where the duration-expanded latent enters the
//! flow: an encoder half (phoneme ids → `z_p`, `y_mask`, and the speaker
//! embedding of a multi-speaker voice) and a decoder half (those → audio).
//!
//! Why: the decoder's frame count is only known after the durations are
//! predicted, so in one graph tract plans the decoder's convolutions for a
//! symbolic length (eager im2col, unfused bias adds): most of the run time.
//! Cut in two, the decoder half gets concrete frame counts: the latent is
//! right-padded with zero frames (mask 0) to a frame bucket, which changes
//! the audio of the true frames by less than 1e-4 (the flow and decoder
//! convolutions see only zeros past the end), and the padded tail is cut
//! off the output.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

/// The tensors Piper's export feeds into the flow from outside it: found as
/// the inputs of `/flow/...` nodes produced by named nodes outside the flow
/// and the decoder (unnamed nodes are pieces of the flow itself).
pub(crate) fn find_cut(graph: &pb::GraphProto) -> Option<Vec<String>> {
    let inside = |name: &str| name.starts_with("/flow/") || name.starts_with("/dec/");
    let producer: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut cut: Vec<String> = Vec::new();
    for node in graph.node.iter().filter(|n| n.name.starts_with("/flow/")) {
        for input in &node.input {
            let Some(from) = producer.get(input.as_str()) else {
                continue;
            };
            if from.name.starts_with('/') && !inside(&from.name) && !cut.contains(input) {
                cut.push(input.clone());
            }
        }
    }
    if cut.is_empty() {
        return None;
    }
    // The decoder half must need nothing but the cut and constants.
    let (_, reached_inputs) = closure(graph, &graph_output_names(graph), &cut);
    reached_inputs.is_empty().then_some(cut)
}

fn graph_output_names(graph: &pb::GraphProto) -> Vec<String> {
    graph.output.iter().map(|o| o.name.clone()).collect()
}

/// Nodes needed to compute `targets`, stopping at `stop` tensors, in graph
/// order; and the graph inputs that were reached.
fn closure(
    graph: &pb::GraphProto,
    targets: &[String],
    stop: &[String],
) -> (Vec<usize>, HashSet<String>) {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut needed = HashSet::new();
    let mut reached_inputs = HashSet::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = targets.iter().map(String::as_str).collect();
    while let Some(tensor) = stack.pop() {
        if tensor.is_empty()
            || !seen.insert(tensor)
            || stop.iter().any(|s| s == tensor)
            || initializers.contains(tensor)
        {
            continue;
        }
        match producer.get(tensor) {
            Some(&index) => {
                if needed.insert(index) {
                    stack.extend(graph.node[index].input.iter().map(String::as_str));
                }
            }
            None => {
                reached_inputs.insert(tensor.to_owned());
            }
        }
    }
    let mut nodes: Vec<usize> = needed.into_iter().collect();
    nodes.sort_unstable();
    (nodes, reached_inputs)
}

/// The encoder half: the same inputs, the cut tensors as outputs.
pub(crate) fn encoder_graph(graph: &pb::GraphProto, cut: &[String]) -> pb::GraphProto {
    let (nodes, _) = closure(graph, cut, &[]);
    let mut half = graph.clone();
    half.node = nodes.iter().map(|&i| graph.node[i].clone()).collect();
    half.output = cut.iter().map(|name| float_value(name)).collect();
    keep_used_initializers(&mut half);
    half
}

/// The decoder half: the cut tensors as inputs, the audio as output.
pub(crate) fn decoder_graph(graph: &pb::GraphProto, cut: &[String]) -> pb::GraphProto {
    let (nodes, _) = closure(graph, &graph_output_names(graph), cut);
    let mut half = graph.clone();
    half.node = nodes.iter().map(|&i| graph.node[i].clone()).collect();
    half.input = cut.iter().map(|name| float_value(name)).collect();
    keep_used_initializers(&mut half);
    half
}

fn keep_used_initializers(graph: &mut pb::GraphProto) {
    let used: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let kept: Vec<pb::TensorProto> = graph
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    graph.initializer = kept;
}

/// A float tensor of unknown shape; the shape is given as an input fact or
/// inferred.
fn float_value(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Frame counts the decoder half is planned for: steps of 2^¼, so the
/// padding costs at most ~19 % (about 9 % on average) of the decoder's time.
/// Measured on the benchmark: √2 steps gave 2.50× onnxruntime's time on
/// one thread, 2^¼ steps 2.13× for ~130 MiB more plans; the plans kept
/// are capped ([`MAX_DECODER_PLANS`]).
pub(crate) fn frame_bucket(frames: usize) -> usize {
    // 128, 152, 181, 215, 256, 304, 362, ...: 128 · 2^(k/4), rounded.
    (0..)
        .map(|k: i32| (128.0 * 2f64.powf(f64::from(k) / 4.0)).round() as usize)
        .find(|&bucket| bucket >= frames)
        .unwrap_or(frames)
}

/// Most decoder plans kept at once (each ~20 MiB); the least recently used
/// one is dropped for a new one. Speech of ordinary sentences uses a
/// handful.
pub(crate) const MAX_DECODER_PLANS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_buckets_grow_by_a_fourth_octave_and_fit() {
        assert_eq!(frame_bucket(1), 128);
        assert_eq!(frame_bucket(128), 128);
        assert_eq!(frame_bucket(129), 152);
        assert_eq!(frame_bucket(1000), 1024);
        for frames in [1, 200, 777, 5000, 40_000] {
            let b = frame_bucket(frames);
            assert!(b >= frames && (b as f64) < (frames.max(128) as f64) * 1.19 + 1.0);
        }
    }
}
