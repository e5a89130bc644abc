//! Keeps chosen nodes of a graph on the CPU when the rest goes to a GPU
//! runtime: a diagnostic and a workaround for a GPU kernel that computes
//! one op wrongly (`VIVID_CPU_OPS=RmsNorm,...`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Wraps an op under a name no GPU runtime knows, so that tract-cuda's
/// transform leaves the node on the CPU (copying its inputs and output
/// across) and the wrapped op computes it as tract's CPU runtime would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnCpu(pub Box<dyn TypedOp>);

impl Op for OnCpu {
    fn name(&self) -> StaticName {
        format!("OnCpu({})", self.0.name()).into()
    }

    op_as_typed_op!();
}

impl EvalOp for OnCpu {
    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(ctx, inputs)
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        self.0.eval_out_of_plan(inputs)
    }

    fn forwards_input(&self) -> Option<usize> {
        self.0.forwards_input()
    }

    fn state(&self, ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        self.0.state(ctx)
    }

    fn drop_session(&self, session: SessionId, node_id: usize) {
        self.0.drop_session(session, node_id)
    }
}

impl TypedOp for OnCpu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Wraps every node of `model` whose op is named in `op_names` (tract's
/// names, as `vivid bench compare` prints them: `RmsNorm`, `Softmax`, ...)
/// in [`OnCpu`]; returns how many.
pub(crate) fn keep_ops_on_cpu(model: &mut TypedModel, op_names: &[String]) -> TractResult<usize> {
    let mut wrapped = 0;
    for id in 0..model.nodes().len() {
        let node = &model.nodes()[id];
        if node.op_is::<OnCpu>() || !op_names.iter().any(|n| *n == node.op().name()) {
            continue;
        }
        let op = OnCpu(node.op.clone());
        model.node_mut(id).op = Box::new(op);
        wrapped += 1;
    }
    Ok(wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math::{add, square};

    #[test]
    fn a_wrapped_node_computes_the_same_and_is_renamed() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4])).unwrap();
        let squared = model.wire_node("sq", square(), &[x]).unwrap();
        let sum = model.wire_node("sum", add(), &[squared[0], x]).unwrap();
        model.select_output_outlets(&sum).unwrap();
        let input = tensor1(&[1f32, -2.0, 3.0, 0.5]);
        let expected = model
            .clone()
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into_tvalue()))
            .unwrap();
        let names: Vec<String> = model
            .nodes()
            .iter()
            .map(|n| n.op().name().to_string())
            .collect();
        let target = names.iter().find(|n| n.contains("Square")).unwrap().clone();
        assert_eq!(
            keep_ops_on_cpu(&mut model, std::slice::from_ref(&target)).unwrap(),
            1
        );
        assert_eq!(
            keep_ops_on_cpu(&mut model, std::slice::from_ref(&target)).unwrap(),
            0,
            "wrapped once"
        );
        assert!(
            model
                .nodes()
                .iter()
                .any(|n| n.op().name() == format!("OnCpu({target})"))
        );
        let got = model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(got[0], expected[0]);
    }
}
