"""Run a vivid AudioLDM2 bundle with onnxruntime, numpy and tokenizers only
(no torch, no diffusers): the executable spec of the Rust engine, and a
second reference for benchmarks.

Usage: python quantize/runner.py BUNDLE "CAPTION" OUT.wav [--negative N]
           [--steps 5] [--scheduler ddim|dpm] [--guidance 3.5]
           [--init-latents FILE.npy] [--check REFERENCE_CASE_DIR]

With --check, every intermediate is compared with a reference case written
by quantize/reference.py (diffusers' own pipeline) and the worst
differences are printed; exit status 1 when the waveform is off.

How the graphs reproduce diffusers' variable lengths:
- T5 runs on the prompt's tokens; the negative prompt is padded or cut to
  the prompt's token count, as diffusers does. Where the bundle fixes T5's
  length (-1 in bundle.toml is free), the tokens are padded to it with mask
  0 (T5's outputs at real tokens do not change) and only the real tokens
  are kept.
- The projection model works token by token, so it runs on the sequence
  padded to its fixed length and the padded rows are cut out again: [SOS,
  CLAP, EOS, SOS_1, T5 tokens, EOS_1].
- GPT-2 is causal: each of the 8 generation passes runs on the sequence so
  far (right-padded with mask 0 where the graph's length is fixed), and the
  hidden state at the last real position is the new embedding. Positions
  stay 0..n-1 as in diffusers (which keeps the projection mask's zeros as
  attention mask only).
- The UNet's T5 input is padded to the bundle's length with mask 0, which
  masked cross-attention ignores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


class Bundle:
    def __init__(self, path: Path):
        self.path = path
        self.meta = tomllib.loads((path / "bundle.toml").read_text())
        self.sessions = {}
        self.scheduler = json.loads((path / self.meta["scheduler"]).read_text())

    def run(self, component, **feed):
        if component not in self.sessions:
            entry = self.meta["component"][component]
            self.sessions[component] = ort.InferenceSession(
                str(self.path / entry["file"]), providers=["CPUExecutionProvider"]
            )
        return self.sessions[component].run(None, feed)

    def shape(self, component, input_name):
        for v in self.meta["component"][component]["inputs"]:
            if v["name"] == input_name:
                return v["shape"]
        raise KeyError(input_name)


def clap_tokens(bundle: Bundle, text: str):
    tok = Tokenizer.from_file(str(bundle.path / bundle.meta["clap_tokenizer"]))
    n = bundle.meta["clap_max_tokens"]
    ids = tok.encode(text).ids[:n]
    # RoBERTa truncation keeps </s> last.
    if len(ids) == n:
        ids[-1] = tok.token_to_id("</s>")
    mask = [1] * len(ids) + [0] * (n - len(ids))
    ids = ids + [bundle.meta["clap_pad_id"]] * (n - len(ids))
    return np.array([ids], np.int64), np.array([mask], np.int64)


def t5_tokens(bundle: Bundle, text: str, length: int | None = None):
    """The prompt's tokens (length None) or the negative prompt padded or cut
    to `length`, as diffusers tokenizes them."""
    tok = Tokenizer.from_file(str(bundle.path / bundle.meta["t5_tokenizer"]))
    ids = tok.encode(text).ids
    limit = bundle.meta["t5_max_tokens"] if length is None else length
    if len(ids) > limit:
        ids = ids[: limit - 1] + [ids[-1]]
    real = len(ids)
    if length is not None:
        ids = ids + [bundle.meta["t5_pad_id"]] * (length - len(ids))
    return ids, real


def encode(bundle: Bundle, text: str, t5_length: int | None, rec: dict, tag: str):
    ids, mask = clap_tokens(bundle, text)
    clap = bundle.run("clap_text", input_ids=ids, attention_mask=mask)[0]
    clap_embeds = clap[:, None, :]
    rec[f"clap_input_ids_{tag}"] = ids
    rec[f"clap_embeds_{tag}"] = clap_embeds

    t5_ids, real = t5_tokens(bundle, text, t5_length)
    length = len(t5_ids)
    padded = bundle.shape("projection", "t5_states")[1]
    t5_run = bundle.shape("t5_encoder", "input_ids")[1]
    t5_run = length if t5_run < 0 else t5_run
    states = bundle.run(
        "t5_encoder",
        input_ids=np.array([t5_ids + [bundle.meta["t5_pad_id"]] * (t5_run - length)], np.int64),
        attention_mask=np.array([[1] * real + [0] * (t5_run - real)], np.int64),
    )[0]
    rec[f"t5_input_ids_{tag}"] = np.array([t5_ids], np.int64)
    rec[f"t5_states_{tag}"] = states[:, :length]
    t5_full = np.zeros((1, padded, states.shape[2]), np.float32)
    t5_full[:, :length] = states[:, :length]
    t5_mask = [1] * real + [0] * (padded - real)

    proj, proj_mask = bundle.run(
        "projection",
        clap_embeds=clap_embeds.astype(np.float32),
        clap_mask=np.ones((1, 1), np.int64),
        t5_states=t5_full,
        t5_mask=np.array([t5_mask], np.int64),
    )
    keep = list(range(4 + length)) + [4 + padded]
    proj, proj_mask = proj[:, keep], proj_mask[:, keep]
    rec[f"projection_states_{tag}"] = proj
    rec[f"projection_mask_{tag}"] = proj_mask

    gpt_fixed = bundle.shape("gpt2", "inputs_embeds")[1]
    seq, seq_mask = proj, proj_mask.astype(np.int64)
    for _ in range(bundle.meta["gpt2_new_tokens"]):
        n = seq.shape[1]
        gpt_len = n if gpt_fixed < 0 else gpt_fixed
        x = np.zeros((1, gpt_len, seq.shape[2]), np.float32)
        x[:, :n] = seq
        m = np.zeros((1, gpt_len), np.int64)
        m[:, :n] = seq_mask
        hidden = bundle.run("gpt2", inputs_embeds=x, attention_mask=m)[0]
        seq = np.concatenate([seq, hidden[:, n - 1 : n]], axis=1)
        seq_mask = np.concatenate([seq_mask, np.ones((1, 1), np.int64)], axis=1)
    generated = seq[:, -bundle.meta["gpt2_new_tokens"] :]
    rec[f"gpt2_embeds_{tag}"] = generated

    unet_mask = np.zeros((1, padded), np.int64)
    unet_mask[:, :real] = 1
    return generated, t5_full, unet_mask, length


def alphas_cumprod(config):
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5,
                        config["num_train_timesteps"], dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def ddim_timesteps(config, steps):
    ratio = config["num_train_timesteps"] // steps
    return (np.arange(0, steps) * ratio).round()[::-1].astype(np.int64) + config["steps_offset"]


def dpm_timesteps(config, steps):
    last = config["num_train_timesteps"]
    ratio = last // (steps + 1)
    return (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].astype(np.int64) + config["steps_offset"]


class Ddim:
    def __init__(self, config, steps):
        self.ac = alphas_cumprod(config)
        self.final = self.ac[0]
        self.timesteps = ddim_timesteps(config, steps)
        self.ratio = config["num_train_timesteps"] // steps

    def step(self, i, t, eps, x):
        prev = t - self.ratio
        a_t = self.ac[t]
        a_prev = self.ac[prev] if prev >= 0 else self.final
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        return (np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps).astype(np.float32)


class DpmSolverPP:
    """DPM-Solver++ multistep, order 2, midpoint, lower order at the final
    step (diffusers' defaults for fewer than 15 steps), final sigma 0."""

    def __init__(self, config, steps):
        ac = alphas_cumprod(config)
        self.timesteps = dpm_timesteps(config, steps)
        sig = np.sqrt((1 - ac) / ac)
        self.sigmas = np.append(sig[self.timesteps], 0.0)
        self.steps = steps
        self.prev_x0 = None

    def _alpha_sigma(self, sigma):
        alpha = 1.0 / np.sqrt(sigma**2 + 1.0)
        return alpha, sigma * alpha

    def step(self, i, t, eps, x):
        a_s, s_s = self._alpha_sigma(self.sigmas[i])
        a_t, s_t = self._alpha_sigma(self.sigmas[i + 1])
        x0 = (x - s_s * eps) / a_s
        lam_s = np.log(a_s) - np.log(s_s)
        lam_t = np.log(a_t) - np.log(s_t) if s_t > 0 else np.inf
        h = lam_t - lam_s
        first_order = self.prev_x0 is None or (i == self.steps - 1 and self.steps < 15)
        if first_order:
            out = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * x0
        else:
            a_p, s_p = self._alpha_sigma(self.sigmas[i - 1])
            lam_p = np.log(a_p) - np.log(s_p)
            r0 = (lam_s - lam_p) / h
            d1 = (x0 - self.prev_x0) / r0
            out = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * x0 - 0.5 * a_t * (np.exp(-h) - 1.0) * d1
        self.prev_x0 = x0
        return out.astype(np.float32)


def generate(bundle, caption, negative, steps, scheduler, guidance, latents, rec):
    # diffusers encodes the prompt first (index 0), then the negative (1).
    pos_gen, pos_t5, pos_mask, length = encode(bundle, caption, None, rec, "0")
    neg_gen, neg_t5, neg_mask, _ = encode(bundle, negative or "", length, rec, "1")
    config = bundle.scheduler
    sched = Ddim(config, steps) if scheduler == "ddim" else DpmSolverPP(config, steps)
    rec["timesteps"] = sched.timesteps
    x = latents.astype(np.float32)
    for i, t in enumerate(sched.timesteps):
        ts = np.array([t], np.int64)
        e_neg = bundle.run("unet", sample=x, timestep=ts, gpt_states=neg_gen, t5_states=neg_t5,
                           t5_mask=neg_mask)[0]
        e_pos = bundle.run("unet", sample=x, timestep=ts, gpt_states=pos_gen, t5_states=pos_t5,
                           t5_mask=pos_mask)[0]
        rec[f"eps_{i:02d}"] = np.concatenate([e_neg, e_pos])
        eps = e_neg + guidance * (e_pos - e_neg) if guidance > 1 else e_pos
        x = sched.step(i, int(t), eps, x)
    z = x / bundle.meta["vae_scaling_factor"]
    rec["latents_final_scaled"] = z
    mel = bundle.run("vae_decoder", latents=z.astype(np.float32))[0]
    rec["mel"] = mel
    wave_ = bundle.run("vocoder", mel=mel[:, 0])[0][0]
    n = int(round(bundle.meta["seconds"] * bundle.meta["sample_rate"]))
    rec["waveform"] = wave_[:n]
    return wave_[:n]


def check(rec: dict, reference: Path, tolerance: float) -> bool:
    ok = True
    peak_all = None
    for name in sorted(rec):
        path = reference / f"{name}.npy"
        if not path.exists():
            continue
        ref = np.load(path)
        ours = rec[name]
        if ours.shape != ref.shape:
            print(f"{name}: shape {ours.shape} vs reference {ref.shape}")
            ok = False
            continue
        if ref.dtype.kind in "iu":
            same = bool((ours == ref).all())
            print(f"{name}: {'equal' if same else 'DIFFERENT'}")
            ok &= same
            continue
        peak = float(np.abs(ref).max()) or 1.0
        diff = float(np.abs(ours.astype(np.float64) - ref).max())
        print(f"{name}: max abs diff {diff:.2e} ({diff / peak:.2e} of peak)")
        if name == "waveform":
            peak_all = diff / peak
    if peak_all is None or peak_all > tolerance:
        print(f"waveform differs by more than {tolerance:g} of its peak")
        ok = False
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("caption")
    parser.add_argument("out", type=Path)
    parser.add_argument("--negative")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scheduler", choices=["ddim", "dpm"], default="ddim")
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--init-latents", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest waveform difference accepted by --check, as a share of peak")
    args = parser.parse_args()

    bundle = Bundle(args.bundle)
    if args.init_latents:
        latents = np.load(args.init_latents)
    else:
        latents = np.random.default_rng(args.seed).standard_normal(
            bundle.meta["latent_shape"]).astype(np.float32)
    rec: dict = {}
    audio = generate(bundle, args.caption, args.negative, args.steps, args.scheduler,
                     args.guidance, latents, rec)
    with wave.open(str(args.out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(bundle.meta["sample_rate"])
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    print(f"wrote {args.out}: {len(audio)} samples")
    if args.check and not check(rec, args.check, args.tolerance):
        sys.exit(1)


if __name__ == "__main__":
    main()
