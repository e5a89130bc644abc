"""Run diffusers' own AudioLDM2Pipeline on a pipeline directory with
explicit initial latents and record every intermediate, as the reference
the Rust engine (and the onnxruntime runner) must reproduce.

Usage: python quantize/reference.py PIPELINE_DIR OUT_DIR [--seconds S] [--steps N]

Cases: DDIM and DPM-Solver++ (multistep), each with and without a negative
prompt. For each case OUT_DIR/CASE/ holds .npy files:
  latents_init            the initial latents given to the pipeline
  clap_input_ids, clap_attention_mask      per CLAP call (prompt, negative)
  t5_input_ids, t5_attention_mask, t5_states   per T5 call
  clap_embeds             CLAP text embedding as the projection receives it
  projection_states, projection_mask       projection outputs
  gpt2_embeds             the 8 generated "language of audio" embeddings
  timesteps               the scheduler's timesteps
  eps_XX                  the UNet output at step XX (batch: negative, prompt)
  latents_final, mel, waveform
and case.json with the prompt, negative prompt, scheduler, steps, guidance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

PROMPT = "Rain falls on a tin roof while thunder rumbles in the distance"
NEGATIVE = "low quality"


def run_case(pipe, out: Path, scheduler_name: str, negative: str | None, steps: int,
             seconds: float, guidance: float, latents: torch.Tensor):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    base = dict(pipe.scheduler.config)
    if scheduler_name == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(base)
    else:
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(base, algorithm_type="dpmsolver++")
    out.mkdir(parents=True, exist_ok=True)
    rec: dict[str, list] = {}

    def keep(name, tensor):
        rec.setdefault(name, []).append(tensor.detach().cpu().numpy())

    hooks = []

    def clap_hook(module, args, kwargs, output):
        keep("clap_input_ids", kwargs.get("input_ids", args[0] if args else None))
        keep("clap_attention_mask", kwargs["attention_mask"])

    def t5_hook(module, args, kwargs, output):
        keep("t5_input_ids", kwargs.get("input_ids", args[0] if args else None))
        keep("t5_attention_mask", kwargs["attention_mask"])
        keep("t5_states", output[0])

    def projection_hook(module, args, kwargs, output):
        keep("clap_embeds", kwargs["hidden_states"])
        keep("projection_states", output.hidden_states)
        keep("projection_mask", output.attention_mask)

    def unet_hook(module, args, kwargs, output):
        keep("eps", output[0] if isinstance(output, tuple) else output.sample)
        keep("unet_timestep", torch.as_tensor(args[1] if len(args) > 1 else kwargs["timestep"]))

    hooks.append(pipe.text_encoder.text_model.register_forward_hook(clap_hook, with_kwargs=True))
    hooks.append(pipe.text_encoder_2.register_forward_hook(t5_hook, with_kwargs=True))
    hooks.append(pipe.projection_model.register_forward_hook(projection_hook, with_kwargs=True))
    hooks.append(pipe.unet.register_forward_hook(unet_hook, with_kwargs=True))

    generate = pipe.generate_language_model

    def generate_and_keep(*args, **kwargs):
        result = generate(*args, **kwargs)
        keep("gpt2_embeds", result)
        return result

    pipe.generate_language_model = generate_and_keep
    decode = pipe.vae.decode

    def decode_and_keep(z, *args, **kwargs):
        keep("latents_final_scaled", z)
        result = decode(z, *args, **kwargs)
        keep("mel", result.sample)
        return result

    pipe.vae.decode = decode_and_keep
    try:
        audio = pipe(
            PROMPT,
            negative_prompt=negative,
            num_inference_steps=steps,
            audio_length_in_s=seconds,
            guidance_scale=guidance,
            latents=latents.clone(),
            output_type="np",
        ).audios[0]
    finally:
        for hook in hooks:
            hook.remove()
        pipe.generate_language_model = generate
        pipe.vae.decode = decode

    np.save(out / "latents_init.npy", latents.numpy())
    np.save(out / "timesteps.npy", pipe.scheduler.timesteps.numpy())
    np.save(out / "waveform.npy", np.asarray(audio, dtype=np.float32))
    for name, values in rec.items():
        if name == "eps":
            for step, value in enumerate(values):
                np.save(out / f"eps_{step:02d}.npy", value)
        elif len(values) == 1:
            np.save(out / f"{name}.npy", values[0])
        else:
            for index, value in enumerate(values):
                np.save(out / f"{name}_{index}.npy", value)
    case = dict(prompt=PROMPT, negative_prompt=negative, scheduler=scheduler_name,
                steps=steps, guidance_scale=guidance, seconds=seconds,
                calls={k: len(v) for k, v in rec.items()})
    (out / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    print(f"{out.name}: {len(audio)} samples, peak {np.abs(audio).max():.4f}, "
          f"{len(rec.get('eps', []))} UNet steps")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=1.28)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--guidance", type=float, default=3.5)
    args = parser.parse_args()

    from diffusers import AudioLDM2Pipeline

    pipe = AudioLDM2Pipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    hop = int(np.prod(pipe.vocoder.config.upsample_rates))
    frames = int(np.ceil(args.seconds * pipe.vocoder.config.sampling_rate / hop / vae_scale))
    shape = (1, pipe.unet.config.in_channels, frames, pipe.vocoder.config.model_in_dim // vae_scale)
    # Initial latents from numpy's PCG64 with a fixed seed, saved with the
    # case so any runner can start from exactly these.
    latents = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    for scheduler in ("ddim", "dpm"):
        for negative in (NEGATIVE, None):
            name = f"{scheduler}_{'negative' if negative else 'plain'}"
            run_case(pipe, args.out / name, scheduler, negative, args.steps, args.seconds,
                     args.guidance, latents)


if __name__ == "__main__":
    main()
