"""Reference half of `vivid bench background`: the same AudioLDM2 work timed
in diffusers (PyTorch fp32) or in onnxruntime (quantize/runner.py on the
bundle), on this CPU, in the same run. Prints one JSON object.

Usage: python audioldm2_reference.py diffusers PIPELINE_DIR THREADS STEPS
       python audioldm2_reference.py diffusers-cuda PIPELINE_DIR THREADS STEPS
       python audioldm2_reference.py ort BUNDLE_DIR THREADS STEPS

Figures: load_s; unet_step_s (one classifier-free-guidance step: the UNet
on the unconditional and the conditional input, median of 3); clip_s (a
whole clip: text encoders, GPT-2, STEPS DPM-Solver++ steps, VAE,
vocoder); seconds (audio per clip); peak_rss_kb.
"""

import json
import resource
import statistics
import sys
import time
from pathlib import Path

CAPTION = "Waves lapping against boats, seagulls calling and ropes creaking in a harbour."
NEGATIVE = "Low quality."


def peak_rss_kb() -> int:
    # VmHWM, not getrusage: ru_maxrss survives exec on Linux and would
    # report the parent's (vivid's) peak.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def median_time(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_diffusers(pipeline: Path, threads: int, steps: int, device: str = "cpu") -> dict:
    import torch
    from diffusers import AudioLDM2Pipeline, DPMSolverMultistepScheduler

    torch.set_num_threads(threads)
    # GPU work is asynchronous: a timer must wait for it.
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    pipe = AudioLDM2Pipeline.from_pretrained(str(pipeline), torch_dtype=torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe = pipe.to(device)
    sync()
    load_s = time.perf_counter() - t0
    seconds = 10.24
    hop = 160  # AudioLDM2's mel hop at 16 kHz
    frames = int(round(seconds * pipe.vocoder.config.sampling_rate / hop))
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    shape = (2, pipe.unet.config.in_channels, frames // scale,
             pipe.vocoder.config.model_in_dim // scale)
    with torch.no_grad():
        sample = torch.randn(*shape, device=device)
        # The UNet's first cross-attention takes GPT-2's states, the second T5's.
        gpt = torch.randn(2, 8, pipe.language_model.config.n_embd, device=device)
        t5_dim = pipe.text_encoder_2.config.d_model
        t5 = torch.randn(2, 20, t5_dim, device=device)
        t5_mask = torch.ones(2, 20, dtype=torch.long, device=device)

        def step():
            pipe.unet(sample, torch.tensor(500, device=device), encoder_hidden_states=gpt,
                      encoder_hidden_states_1=t5, encoder_attention_mask_1=t5_mask)
            sync()

        step()  # warm-up
        unet_step_s = median_time(step)
        clip = lambda: pipe(CAPTION, negative_prompt=NEGATIVE, num_inference_steps=steps,
                            audio_length_in_s=seconds, guidance_scale=3.5,
                            generator=torch.Generator().manual_seed(0),
                            output_type="np").audios[0]
        if device == "cuda":
            clip()  # warm-up: cuBLAS and cuDNN choose their kernels on first use
        t0 = time.perf_counter()
        audio = clip()
        sync()
        clip_s = time.perf_counter() - t0
    return {"load_s": load_s, "unet_step_s": unet_step_s, "clip_s": clip_s,
            "seconds": len(audio) / pipe.vocoder.config.sampling_rate,
            "peak_rss_kb": peak_rss_kb()}


def bench_ort(bundle_dir: Path, threads: int, steps: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    # runner.py sits beside this script when vivid runs it, and in
    # quantize/ of the repository.
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parents[1] / "quantize")]
    import runner

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1

    class TimedBundle(runner.Bundle):
        def run(self, component, **feed):
            if component not in self.sessions:
                entry = self.meta["component"][component]
                self.sessions[component] = ort.InferenceSession(
                    str(self.path / entry["file"]), sess_options=options,
                    providers=["CPUExecutionProvider"])
            return self.sessions[component].run(None, feed)

    bundle = TimedBundle(bundle_dir)
    t0 = time.perf_counter()
    for component in bundle.meta["component"]:
        entry = bundle.meta["component"][component]
        bundle.sessions[component] = ort.InferenceSession(
            str(bundle.path / entry["file"]), sess_options=options,
            providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    meta = bundle.meta
    shape = meta["latent_shape"]
    gpt_width = bundle.shape("unet", "gpt_states")[2]
    t5_len, t5_width = bundle.shape("unet", "t5_states")[1:]
    feed = {
        "sample": np.random.default_rng(0).standard_normal(shape).astype(np.float32),
        "timestep": np.array([500], np.int64),
        "gpt_states": np.zeros((1, 8, gpt_width), np.float32),
        "t5_states": np.zeros((1, t5_len, t5_width), np.float32),
        "t5_mask": np.ones((1, t5_len), np.int64),
    }
    step = lambda: (bundle.run("unet", **feed), bundle.run("unet", **feed))
    step()
    unet_step_s = median_time(step)
    latents = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t0 = time.perf_counter()
    audio = runner.generate(bundle, CAPTION, NEGATIVE, steps, "dpm", 3.5, latents, {})
    clip_s = time.perf_counter() - t0
    return {"load_s": load_s, "unet_step_s": unet_step_s, "clip_s": clip_s,
            "seconds": len(audio) / meta["sample_rate"], "peak_rss_kb": peak_rss_kb()}


def main() -> None:
    kind, path, threads, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if kind == "ort":
        result = bench_ort(path, threads, steps)
    else:
        result = bench_diffusers(path, threads, steps, "cuda" if kind == "diffusers-cuda" else "cpu")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
