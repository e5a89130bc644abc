"""Export a diffusers AudioLDM2Pipeline to the ONNX files vivid runs on
tract: one graph per component, legacy exporter, opset 17. Shapes are
fixed except the UNet's batch (both guidance halves in one run on a GPU)
and the sequence axis of T5 and GPT-2 (run at the caption's own length).

Usage: python quantize/export.py PIPELINE_DIR_OR_HUB_ID OUT_DIR [--seconds S]

Writes the seven graphs (each checked against torch with onnxruntime), the
two tokenizers as tokenizer.json, the scheduler config and bundle.toml
(files with sha256, inputs and outputs with shapes and dtypes, and what the
engine needs to know). Not yet: graph fixes for tract beyond what the
legacy exporter gives (all seven load in tract 0.23.9 as they are), see
quantize/README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

OPSET = 17


class ClapText(torch.nn.Module):
    """CLAP's text branch with projection and L2 normalisation, as
    `ClapModel.get_text_features` computes it."""

    def __init__(self, clap):
        super().__init__()
        self.clap = clap

    def forward(self, input_ids, attention_mask):
        out = self.clap.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        features = out if torch.is_tensor(out) else out.pooler_output
        return torch.nn.functional.normalize(features, dim=-1)


class T5Encoder(torch.nn.Module):
    def __init__(self, t5):
        super().__init__()
        self.t5 = t5

    def forward(self, input_ids, attention_mask):
        return self.t5(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Projection(torch.nn.Module):
    def __init__(self, projection):
        super().__init__()
        self.projection = projection

    def forward(self, clap_embeds, clap_mask, t5_states, t5_mask):
        out = self.projection(
            hidden_states=clap_embeds,
            hidden_states_1=t5_states,
            attention_mask=clap_mask,
            attention_mask_1=t5_mask,
        )
        return out.hidden_states, out.attention_mask


class Gpt2Body(torch.nn.Module):
    """GPT-2 from input embeddings to the last hidden state, no KV cache:
    the pipeline's 8 generation steps become 8 full passes.

    Written out block by block over GPT-2's own modules rather than calling
    `GPT2Model`, whose mask preparation exports to an Expand that tract
    cannot run at a free sequence length. Positions are 0..n-1 and the
    attention mask only hides keys, as in diffusers' generation loop; the
    export checks it against `GPT2Model` itself."""

    def __init__(self, lm):
        super().__init__()
        config = lm.config
        if config.scale_attn_by_inverse_layer_idx or config.reorder_and_upcast_attn:
            raise SystemExit("GPT-2 attention variants other than the standard one are not exported")
        self.body = lm.transformer
        self.heads = config.n_head
        self.width = config.n_embd
        self.scale = config.scale_attn_weights

    def forward(self, inputs_embeds, attention_mask):
        body = self.body
        positions = torch.arange(inputs_embeds.shape[1]).unsqueeze(0)
        hidden = inputs_embeds + body.wpe(positions)
        index = torch.arange(inputs_embeds.shape[1]).float()
        # Additive biases, [query, key]: a later key (key - query > 0) and a
        # masked one get -1e9, which softmax turns into an exact 0. Made by
        # arithmetic, not comparisons: tract 0.23.9's declutter rewrites a
        # comparison of two ranges into constant regions and gets their
        # sizes wrong at a free length.
        later = torch.clamp(index.unsqueeze(0) - index.unsqueeze(1), 0.0, 1.0)
        masked = 1.0 - attention_mask.float().clamp(0.0, 1.0)
        hidden_bias = (later.unsqueeze(0).unsqueeze(0) + masked.unsqueeze(1).unsqueeze(1)) * -1e9
        head = self.width // self.heads
        for block in body.h:
            x = block.ln_1(hidden)
            q, k, v = block.attn.c_attn(x).split(self.width, dim=2)
            q = q.reshape(1, -1, self.heads, head).transpose(1, 2)
            k = k.reshape(1, -1, self.heads, head).transpose(1, 2)
            v = v.reshape(1, -1, self.heads, head).transpose(1, 2)
            scores = q @ k.transpose(-1, -2)
            if self.scale:
                scores = scores / float(head) ** 0.5
            weights = torch.softmax(scores + hidden_bias, dim=-1)
            attended = (weights @ v).transpose(1, 2).reshape(1, -1, self.width)
            hidden = hidden + block.attn.c_proj(attended)
            hidden = hidden + block.mlp(block.ln_2(hidden))
        return body.ln_f(hidden)


def check_gpt2_body(lm, lengths=(5, 19)):
    """Gpt2Body against GPT2Model at two lengths, with a masked stretch in
    the middle as a padded negative prompt has."""
    wrapped = Gpt2Body(lm).eval()
    worst = 0.0
    for n in lengths:
        embeds = torch.randn(1, n, lm.config.n_embd)
        mask = torch.ones(1, n, dtype=torch.long)
        mask[:, n // 2 : n // 2 + 2] = 0
        with torch.no_grad():
            ours = wrapped(embeds, mask)
            theirs = lm.transformer(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        keep = mask[0].bool()
        diff = (ours[0, keep] - theirs.last_hidden_state[0, keep]).abs().max().item()
        worst = max(worst, diff)
    if worst > 1e-4:
        raise SystemExit(f"Gpt2Body differs from GPT2Model by {worst:.2e}")
    print(f"gpt2 body: max abs diff vs GPT2Model {worst:.2e}")


class Unet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, gpt_states, t5_states, t5_mask):
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=gpt_states,
            encoder_hidden_states_1=t5_states,
            encoder_attention_mask_1=t5_mask,
            return_dict=False,
        )[0]


class VaeDecoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents).sample


def export_one(module, inputs, names, outputs, path: Path, batch_free=(), sequence_free=(),
               also_at=None):
    """Exports `module` at the shapes of `inputs`. The first axis of the
    inputs and outputs named in `batch_free` stays free (the UNet: the two
    halves of classifier-free guidance in one run on a GPU, or one at a
    time on a CPU), and so does the second axis of those in
    `sequence_free` (T5 and GPT-2 run at the caption's own length), so
    reshapes follow them instead of baking the traced size in. `also_at`
    (inputs of another sequence length) checks the free axis too."""
    module.eval()
    dynamic = {name: {0: "batch"} for name in batch_free}
    for name in sequence_free:
        dynamic.setdefault(name, {})[1] = "sequence"
    torch.onnx.export(
        module,
        tuple(inputs),
        str(path),
        input_names=names,
        output_names=outputs,
        opset_version=OPSET,
        dynamo=False,
        dynamic_axes=dynamic or None,
    )
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for feed_inputs in [inputs] + ([also_at] if also_at is not None else []):
        with torch.no_grad():
            expected = module(*feed_inputs)
        feed = {n: t.numpy() for n, t in zip(names, feed_inputs)}
        got = session.run(None, feed)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for e, g in zip(expected, got):
            e = e.detach().float().numpy()
            worst = max(worst, float(np.abs(e - g.astype(np.float32)).max()))
    print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, max abs diff vs torch {worst:.2e}")
    return worst


def sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ONNX_TYPES = {1: "f32", 7: "i64", 6: "i32", 10: "f16", 11: "f64", 9: "bool"}


def describe_graph(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def values(items):
        out = []
        for v in items:
            t = v.type.tensor_type
            out.append(
                {
                    "name": v.name,
                    "dtype": ONNX_TYPES.get(t.elem_type, str(t.elem_type)),
                    "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim],
                }
            )
        return out

    return {
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "inputs": values(model.graph.input),
        "outputs": values(model.graph.output),
    }


def write_bundle_toml(out: Path, meta: dict, graphs: dict):
    """bundle.toml by hand (no TOML writer in the standard library)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["# AudioLDM2 bundle for vivid, written by quantize/export.py", "schema = 1"]
    for key, v in meta.items():
        lines.append(f"{key} = {value(v)}")
    for name, graph in graphs.items():
        lines.append("")
        lines.append(f"[component.{name}]")
        for key in ("file", "sha256", "bytes"):
            lines.append(f"{key} = {value(graph[key])}")
        for kind in ("inputs", "outputs"):
            for v in graph[kind]:
                lines.append(f"[[component.{name}.{kind}]]")
                for key in ("name", "dtype", "shape"):
                    lines.append(f"{key} = {value(v[key])}")
    (out / "bundle.toml").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=1.28)
    parser.add_argument("--source", help="what to record as the source (default: PIPELINE)")
    parser.add_argument(
        "--license",
        default="CC-BY-NC-SA-4.0",
        help="licence of the weights (cvssp/audioldm2*: CC-BY-NC-SA-4.0)",
    )
    args = parser.parse_args()

    from diffusers import AudioLDM2Pipeline

    pipe = AudioLDM2Pipeline.from_pretrained(args.pipeline)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    clap_len = pipe.tokenizer.model_max_length
    t5_len = min(pipe.tokenizer_2.model_max_length, 128)
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    mel_bins = pipe.vocoder.config.model_in_dim
    hop = int(np.prod(pipe.vocoder.config.upsample_rates))
    frames = int(round(args.seconds * pipe.vocoder.config.sampling_rate / hop))
    frames = int(np.ceil(frames / vae_scale) * vae_scale)
    latent_shape = (1, pipe.unet.config.in_channels, frames // vae_scale, mel_bins // vae_scale)
    gpt_dim = pipe.language_model.config.n_embd
    t5_dim = pipe.text_encoder_2.config.d_model
    clap_dim = pipe.text_encoder.config.projection_dim
    max_new = pipe.language_model.config.max_new_tokens
    projected_len = 1 + 1 + 1 + 1 + t5_len + 1  # SOS, CLAP, EOS, SOS_1, T5..., EOS_1

    ids = torch.randint(3, len(pipe.tokenizer), (1, clap_len))
    mask = torch.ones(1, clap_len, dtype=torch.long)
    export_one(ClapText(pipe.text_encoder), [ids, mask], ["input_ids", "attention_mask"],
               ["text_embeds"], args.out / "clap_text.onnx")
    ids2 = torch.randint(3, len(pipe.tokenizer_2), (1, t5_len))
    mask2 = torch.ones(1, t5_len, dtype=torch.long)
    short = 11  # a second length, to check the free sequence axis
    export_one(T5Encoder(pipe.text_encoder_2), [ids2, mask2], ["input_ids", "attention_mask"],
               ["last_hidden_state"], args.out / "t5_encoder.onnx",
               sequence_free=("input_ids", "attention_mask", "last_hidden_state"),
               also_at=[ids2[:, :short], mask2[:, :short]])
    export_one(
        Projection(pipe.projection_model),
        [torch.randn(1, 1, clap_dim), torch.ones(1, 1, dtype=torch.long),
         torch.randn(1, t5_len, t5_dim), mask2],
        ["clap_embeds", "clap_mask", "t5_states", "t5_mask"],
        ["hidden_states", "attention_mask"],
        args.out / "projection.onnx",
    )
    gpt_len = projected_len + max_new - 1
    check_gpt2_body(pipe.language_model)
    gpt_mask = torch.ones(1, gpt_len, dtype=torch.long)
    gpt_mask[:, 10:14] = 0
    export_one(
        Gpt2Body(pipe.language_model),
        [torch.randn(1, gpt_len, gpt_dim), gpt_mask],
        ["inputs_embeds", "attention_mask"],
        ["last_hidden_state"],
        args.out / "gpt2.onnx",
        sequence_free=("inputs_embeds", "attention_mask", "last_hidden_state"),
        also_at=[torch.randn(1, short, gpt_dim), torch.ones(1, short, dtype=torch.long)],
    )
    export_one(
        Unet(pipe.unet),
        [torch.randn(*latent_shape), torch.tensor([500], dtype=torch.long),
         torch.randn(1, max_new, gpt_dim), torch.randn(1, t5_len, t5_dim), mask2],
        ["sample", "timestep", "gpt_states", "t5_states", "t5_mask"],
        ["noise_pred"],
        args.out / "unet.onnx",
        batch_free=("sample", "gpt_states", "t5_states", "t5_mask", "noise_pred"),
    )
    export_one(VaeDecoder(pipe.vae), [torch.randn(*latent_shape)], ["latents"], ["mel"],
               args.out / "vae_decoder.onnx")
    export_one(pipe.vocoder, [torch.randn(1, frames, mel_bins)], ["mel"], ["waveform"],
               args.out / "vocoder.onnx")

    # Tokenizers as tokenizer.json, for the `tokenizers` crate.
    pipe.tokenizer.backend_tokenizer.save(str(args.out / "clap_tokenizer.json"))
    pipe.tokenizer_2.backend_tokenizer.save(str(args.out / "t5_tokenizer.json"))
    import json

    scheduler = dict(pipe.scheduler.config)
    scheduler["_class_name"] = type(pipe.scheduler).__name__
    (args.out / "scheduler.json").write_text(json.dumps(scheduler, indent=2, default=str) + "\n")

    names = ["clap_text", "t5_encoder", "projection", "gpt2", "unet", "vae_decoder", "vocoder"]
    graphs = {name: describe_graph(args.out / f"{name}.onnx") for name in names}
    meta = {
        "source": args.source or str(args.pipeline),
        "license": args.license,
        "precision": "fp32",
        "sample_rate": int(pipe.vocoder.config.sampling_rate),
        "seconds": args.seconds,
        "mel_frames": frames,
        "mel_bins": mel_bins,
        "hop_length": hop,
        "vae_scaling_factor": float(pipe.vae.config.scaling_factor),
        "vae_scale": vae_scale,
        "latent_shape": list(latent_shape),
        "clap_max_tokens": clap_len,
        "t5_max_tokens": t5_len,
        "gpt2_new_tokens": max_new,
        "clap_pad_id": int(pipe.tokenizer.pad_token_id),
        "t5_pad_id": int(pipe.tokenizer_2.pad_token_id),
        "clap_tokenizer": "clap_tokenizer.json",
        "t5_tokenizer": "t5_tokenizer.json",
        "scheduler": "scheduler.json",
    }
    write_bundle_toml(args.out, meta, graphs)
    print(f"bundle written to {args.out}")


if __name__ == "__main__":
    main()
