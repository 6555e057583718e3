"""Per-query latency (warm p50/p95) and peak memory of constrained decoding with the real smollm2-135m.

    python bench/latency.py [--queries 6] [--sizes 100,500,2000] [--ks 1,5] [--methods beam,score]

Synthetic, path-like module IDs (``src/layer/vulkan/conv``); the untrained base model (latency does not
depend on training). "score" ranks every ID, so its cost grows with the number of IDs; configurations
whose first query exceeds --max-seconds are reported as skipped.
"""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from inference.decode import ConstrainedDecoder  # noqa: E402
from inference.device import configure_cpu_threads, select_device  # noqa: E402
from inference.models import load_base  # noqa: E402
from inference.prompt import build_prompt  # noqa: E402
from inference.trie import IdTrie  # noqa: E402

TOP = ["src", "lib", "tools", "python", "docs", "tests", "examples", "benchmark", "cmake", "platform"]
MID = ["layer", "gpu", "vulkan", "arm", "x86", "mips", "riscv", "loongarch", "io", "net", "core", "util", "model",
       "runtime", "kernel", "shader", "convert", "quantize", "onnx", "caffe", "pnnx", "android", "ios", "webassembly",
       "allocator", "pipeline", "command", "simple", "tensor", "graph", "parser", "ops", "math", "image", "audio"]
LEAF = ["conv", "pooling", "relu", "softmax", "gemm", "innerproduct", "deconvolution", "batchnorm", "reshape",
        "concat", "slice", "padding", "interp", "lstm", "gru", "attention", "layernorm", "eltwise", "crop", "flatten",
        "binaryop", "unaryop", "cast", "dequantize", "requantize", "shufflechannel", "yolov3", "detection", "priorbox"]

QUERIES = [
    "crash in the vulkan conv shader when the input has odd width",
    "add int8 quantization support for the gemm layer on arm",
    "the onnx converter drops the layernorm epsilon attribute",
    "memory leak in the allocator after many pipeline creations",
    "softmax gives wrong results for large negative inputs on x86",
    "document how to build for webassembly with simd enabled",
    "lstm layer is slow on riscv, vectorize it",
    "android demo fails to load the model from assets",
]


def synthetic_ids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        depth = rng.choice([1, 2, 2, 3, 3, 3, 4])
        parts = [rng.choice(TOP)] + [rng.choice(MID) for _ in range(max(0, depth - 2))]
        if depth > 1:
            parts.append(rng.choice(LEAF + MID))
        out.add("/".join(parts))
    return sorted(out)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=6)
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--ks", default="1,5")
    ap.add_argument("--methods", default="beam,score")
    ap.add_argument("--max-seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=0, help="0: device.configure_cpu_threads()")
    ap.add_argument("--score-max-ids", type=int, default=100, help="skip 'score' above this many IDs (too slow)")
    a = ap.parse_args()
    choice = select_device()
    if choice.device == "cpu":
        configure_cpu_threads(a.threads or None)
    print(f"device: {choice.device} {choice.dtype} ({choice.reason}); threads {torch.get_num_threads()}")
    load_base("smollm2-135m")  # converts the GGUF once (not timed)
    t = time.perf_counter()
    model, tok = load_base("smollm2-135m", dtype=choice.dtype)
    model.to(choice.device).eval()
    load_s = time.perf_counter() - t
    print(f"model load (cached safetensors): {load_s:.2f} s; rss after load {peak_rss_mb():.0f} MB")
    dec = ConstrainedDecoder(model, tok)
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        ids = synthetic_ids(n)
        t = time.perf_counter()
        trie = IdTrie(ids, tok)
        trie_s = time.perf_counter() - t
        print(f"{n} ids: trie built in {trie_s * 1e3:.0f} ms, {len(trie.nodes)} nodes, depth {trie.max_depth()}")
        for method in a.methods.split(","):
            if method == "score" and n > a.score_max_ids:
                rows.append((n, 0, method, float("nan"), float("nan"), 0, peak_rss_mb(), "skipped (ranks every ID)"))
                continue
            for k in [int(x) for x in a.ks.split(",")]:
                lat, skipped = [], False
                dec.rank(build_prompt(QUERIES[-1], "ncnn"), trie, k, method=method)  # warm-up
                for i in range(a.queries):
                    q = QUERIES[i % len(QUERIES)]
                    t = time.perf_counter()
                    r = dec.rank(build_prompt(q, "ncnn"), trie, k, method=method)
                    lat.append(time.perf_counter() - t)
                    assert all(x.module in trie for x in r.ranked)
                    if lat[-1] > a.max_seconds:
                        skipped = True
                        break
                row = (n, k, method, statistics.median(lat) * 1e3, pct(lat, 0.95) * 1e3, len(lat), peak_rss_mb(),
                       "stopped early (too slow)" if skipped else "")
                rows.append(row)
                print(f"  {method:5s} k={k}: p50 {row[3]:8.0f} ms  p95 {row[4]:8.0f} ms  ({len(lat)} queries) {row[7]}",
                      flush=True)
                if method == "score":
                    break  # score ranks every ID: k does not change its cost
    print()
    print(f"{'ids':>5} {'k':>2} {'method':>6} {'p50 ms':>8} {'p95 ms':>8} {'n':>3} {'peak RSS MB':>11}")
    for n, k, m, p50, p95, cnt, rss, note in rows:
        print(f"{n:>5} {k:>2} {m:>6} {p50:>8.0f} {p95:>8.0f} {cnt:>3} {rss:>11.0f} {note}")
    print(f"model load: {load_s:.2f} s")


if __name__ == "__main__":
    main()
