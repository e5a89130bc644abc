"""int8 weights for a vivid AudioLDM2 bundle: dynamic quantization of the
MatMul/Gemm weights (optionally Conv) per component with onnxruntime's
quantizer, skipping components that lose too much, and a report of size
and accuracy against the fp32 bundle.

Usage: python quantize/quantize.py FP32_BUNDLE OUT_BUNDLE [--conv] [--skip NAME ...]

The projection model is skipped by default (tiny, and its output feeds
every later stage). tract runs DynamicQuantizeLinear + MatMulInteger, which
is what dynamic quantization of MatMul produces; it does not run
QLinearAdd, which this never produces.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import describe_graph, write_bundle_toml  # noqa: E402

COMPONENTS = ["clap_text", "t5_encoder", "projection", "gpt2", "unet", "vae_decoder", "vocoder"]


def random_feed(session, seed: int):
    rng = np.random.default_rng(seed)
    feed = {}
    for value in session.get_inputs():
        # A free axis: the batch (first) is 1, a sequence 16 tokens.
        shape = [d if isinstance(d, int) else (1 if i == 0 else 16)
                 for i, d in enumerate(value.shape)]
        if value.type == "tensor(int64)":
            if "mask" in value.name:
                feed[value.name] = np.ones(shape, dtype=np.int64)
            elif value.name == "timestep":
                feed[value.name] = np.full(shape, 500, dtype=np.int64)
            else:
                feed[value.name] = rng.integers(3, 50, size=shape, dtype=np.int64)
        else:
            feed[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


def compare(fp32: Path, int8: Path):
    import onnxruntime as ort

    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    feed = random_feed(a, 0)
    ya = a.run(None, feed)[0].astype(np.float32)
    yb = b.run(None, feed)[0].astype(np.float32)
    peak = float(np.abs(ya).max()) or 1.0
    diff = float(np.abs(ya - yb).max())
    corr = float(np.corrcoef(ya.ravel(), yb.ravel())[0, 1]) if ya.size > 1 else 1.0
    return diff / peak, corr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--conv", action="store_true", help="quantize Conv weights too")
    parser.add_argument("--skip", nargs="*", default=["projection"])
    parser.add_argument("--min-correlation", type=float, default=0.99,
                        help="keep fp32 for a component whose int8 output correlates less")
    args = parser.parse_args()

    import tomllib
    from onnxruntime.quantization import QuantType, quantize_dynamic

    meta = tomllib.loads((args.bundle / "bundle.toml").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for extra in ("clap_tokenizer.json", "t5_tokenizer.json", "scheduler.json"):
        shutil.copy(args.bundle / extra, args.out / extra)
    ops = ["MatMul", "Gemm"] + (["Conv"] if args.conv else [])
    report = ["| component | fp32 bytes | int8 bytes | max diff / peak | correlation | kept |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name in COMPONENTS:
        src = args.bundle / f"{name}.onnx"
        dst = args.out / f"{name}.onnx"
        kept = "fp32 (skipped)"
        diff, corr = 0.0, 1.0
        if name not in args.skip:
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops,
                             weight_type=QuantType.QInt8, per_channel=False)
            diff, corr = compare(src, dst)
            if corr >= args.min_correlation:
                kept = "int8"
            else:
                kept = f"fp32 (int8 correlation {corr:.4f} too low)"
        if not kept.startswith("int8"):
            shutil.copy(src, dst)
        report.append(f"| {name} | {src.stat().st_size} | {dst.stat().st_size} | "
                      f"{diff:.2e} | {corr:.5f} | {kept} |")
    graphs = {name: describe_graph(args.out / f"{name}.onnx") for name in COMPONENTS}
    top = {k: v for k, v in meta.items() if k not in ("component", "schema")}
    top["precision"] = "int8 (dynamic MatMul/Gemm" + (", Conv" if args.conv else "") + ")"
    write_bundle_toml(args.out, top, graphs)
    text = "\n".join(report) + "\n"
    (args.out / "QUANTIZATION.md").write_text(
        f"# int8 bundle from {args.bundle}\n\nPer component, on random inputs:\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
