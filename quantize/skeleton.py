"""A bundle's skeleton: its graphs without their weights, a few MB that can
travel where the weights cannot (a GPU machine with no network, a Jetson
on a slow link), and the real-size bundle grown back from it there.

Usage: python quantize/skeleton.py strip BUNDLE_DIR SKELETON_DIR
       python quantize/skeleton.py grow SKELETON_DIR BUNDLE_DIR [--seed N]

`strip` keeps every graph's structure, its small tensors and the
tokenizers, scheduler config and bundle.toml; each large float weight is
replaced by its mean and standard deviation (skeleton.json). `grow` draws
those weights again (normal, same mean and deviation, seeded) and rewrites
bundle.toml's sha256 and byte counts for the new files.

For benchmarks only: the grown weights are random, like the real-size
random-weight bundle they came from (quantize/realsize.py), so speed and
memory are those of the real graphs but the audio is noise. Needs onnx and
numpy, not torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

# Tensors up to this many elements stay in the skeleton as they are
# (shapes, indices, masks, norms of small layers).
KEEP_ELEMENTS = 4096
FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}


def large_float_tensors(model: onnx.ModelProto):
    """Initializers and Constant-node values worth stripping."""
    for tensor in model.graph.initializer:
        yield tensor
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    yield attribute.t


def strippable(tensor: onnx.TensorProto) -> bool:
    return (tensor.data_type in FLOAT_TYPES
            and int(np.prod(tensor.dims, dtype=np.int64)) > KEEP_ELEMENTS)


def strip(bundle: Path, skeleton: Path) -> None:
    skeleton.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict[str, list[float]]] = {}
    for item in bundle.iterdir():
        if item.suffix != ".onnx":
            shutil.copy2(item, skeleton / item.name)
            continue
        model = onnx.load(str(item))
        graph_stats = {}
        for index, tensor in enumerate(large_float_tensors(model)):
            if not strippable(tensor):
                continue
            values = numpy_helper.to_array(tensor).astype(np.float64)
            if not np.isfinite(values).all():
                continue  # a mask with -inf: keep it as it is
            # Unnamed Constant values are keyed by their order.
            key = tensor.name or f"#{index}"
            graph_stats[key] = [float(values.mean()), float(values.std())]
            for field in ("raw_data", "float_data", "int32_data"):
                tensor.ClearField(field)
        stats[item.name] = graph_stats
        onnx.save(model, str(skeleton / item.name))
        print(f"{item.name}: {len(graph_stats)} tensors stripped")
    (skeleton / "skeleton.json").write_text(json.dumps(stats, indent=1))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def grow(skeleton: Path, bundle: Path, seed: int) -> None:
    bundle.mkdir(parents=True, exist_ok=True)
    stats = json.loads((skeleton / "skeleton.json").read_text())
    rng = np.random.default_rng(seed)
    files = {}
    for item in sorted(skeleton.iterdir()):
        if item.name == "skeleton.json":
            continue
        if item.suffix != ".onnx":
            shutil.copy2(item, bundle / item.name)
            continue
        model = onnx.load(str(item))
        graph_stats = stats.get(item.name, {})
        for index, tensor in enumerate(large_float_tensors(model)):
            key = tensor.name or f"#{index}"
            if key not in graph_stats:
                continue
            mean, std = graph_stats[key]
            dtype = FLOAT_TYPES[tensor.data_type]
            count = int(np.prod(tensor.dims, dtype=np.int64))
            values = rng.standard_normal(count, dtype=np.float32) * std + mean
            tensor.raw_data = values.astype(dtype).tobytes()
        out = bundle / item.name
        onnx.save(model, str(out))
        files[item.name] = (sha256(out), out.stat().st_size)
        print(f"{item.name}: {len(graph_stats)} tensors grown, {out.stat().st_size >> 20} MiB")
    rewrite_bundle_toml(bundle / "bundle.toml", files)


def rewrite_bundle_toml(path: Path, files: dict[str, tuple[str, int]]) -> None:
    """New sha256 and byte counts for each component's file, line by line
    (export.py writes bundle.toml in one fixed layout)."""
    lines = path.read_text().splitlines()
    current = None
    for number, line in enumerate(lines):
        if line.startswith("["):
            current = None
        match = re.fullmatch(r'file = "(.+)"', line)
        if match:
            current = match.group(1)
        if current in files:
            digest, size = files[current]
            if line.startswith("sha256 = "):
                lines[number] = f'sha256 = "{digest}"'
            elif line.startswith("bytes = "):
                lines[number] = f"bytes = {size}"
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    strip_args = sub.add_parser("strip")
    strip_args.add_argument("bundle", type=Path)
    strip_args.add_argument("skeleton", type=Path)
    grow_args = sub.add_parser("grow")
    grow_args.add_argument("skeleton", type=Path)
    grow_args.add_argument("bundle", type=Path)
    grow_args.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "strip":
        strip(args.bundle, args.skeleton)
    else:
        grow(args.skeleton, args.bundle, args.seed)


if __name__ == "__main__":
    main()
