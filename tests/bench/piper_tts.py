"""Reference half of `vivid bench tts`: piper-tts 1.8 on onnxruntime, timed
on the same texts, in the same run. Prints one JSON object.

Arguments: MODEL.onnx THREADS TEXTS.json (a list of sentences) PARAGRAPH
"""

import json
import resource
import sys
import time

import onnxruntime
from piper import PiperVoice, SynthesisConfig


def peak_rss_kb() -> int:
    # VmHWM, not getrusage: ru_maxrss survives exec on Linux and would
    # report the parent's (vivid's) peak.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    model, threads, texts_path, paragraph = sys.argv[1:5]
    threads = int(threads)
    texts = json.load(open(texts_path, encoding="utf-8"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    t0 = time.perf_counter()
    voice = PiperVoice.load(model, config_path=model + ".json")
    voice.session = onnxruntime.InferenceSession(
        model, sess_options=options, providers=["CPUExecutionProvider"]
    )
    load_s = time.perf_counter() - t0
    syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    for chunk in voice.synthesize(texts[0], syn_config=syn):  # warm-up
        pass
    audio_s = 0.0
    t0 = time.perf_counter()
    for text in texts:
        for chunk in voice.synthesize(text, syn_config=syn):
            audio_s += len(chunk.audio_float_array) / voice.config.sample_rate
    compute_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first_audio_s = None
    for chunk in voice.synthesize(paragraph, syn_config=syn):
        first_audio_s = time.perf_counter() - t0
        break
    print(
        json.dumps(
            {
                "load_s": load_s,
                "audio_s": audio_s,
                "compute_s": compute_s,
                "first_audio_s": first_audio_s,
                "peak_rss_kb": peak_rss_kb(),
                "onnxruntime": onnxruntime.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
