#!/usr/bin/env python3
"""Compares two 16-bit WAV files that should hold the same sound (the x86-64
and the arm64 build's output): same format and length, the largest sample
difference in 16-bit steps, and the correlation. Prints one line; exits 1
when a bound is broken. Standard library only.

usage: compare_wav.py A.wav B.wav --max-steps N --min-correlation C
"""
import argparse
import array
import math
import sys
import wave


def read(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: not a 16-bit WAV file")
        samples = array.array("h", w.readframes(w.getnframes()))
        if sys.byteorder == "big":
            samples.byteswap()
        return (w.getnchannels(), w.getframerate()), samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--min-correlation", type=float, required=True)
    args = parser.parse_args()
    (format_a, a), (format_b, b) = read(args.a), read(args.b)
    if format_a != format_b or len(a) != len(b):
        print(f"differ in format or length: {format_a} {len(a)} vs {format_b} {len(b)}")
        return 1
    steps = max((abs(x - y) for x, y in zip(a, b)), default=0)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    corr = cov / math.sqrt(var_a * var_b) if var_a > 0 and var_b > 0 else 0.0
    identical = sum(1 for x, y in zip(a, b) if x == y) / len(a)
    ok = steps <= args.max_steps and corr >= args.min_correlation
    print(
        f"{len(a)} samples, {identical:.1%} identical, largest difference {steps} "
        f"16-bit steps (bound {args.max_steps}), correlation {corr:.9f} "
        f"(bound {args.min_correlation})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
