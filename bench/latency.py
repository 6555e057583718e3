"""Per-query latency (warm p50/p95, wall and CPU), peak memory, model load and trie build time of
constrained decoding with a real base model (default smollm2-135m).

    python bench/latency.py [--queries 6] [--sizes 100,500,2000] [--ks 1,5] [--methods beam,score,hybrid]
        [--base smollm2-135m|gemma3-270m]

Synthetic, path-like module IDs (``src/layer/vulkan/conv``); the untrained base model (latency does not
depend on training). Methods:

- ``beam``: the `lm` matcher's path: the plain prompt, beam search over the whole trie;
- ``beam-noprefix``: the same with the prompt-prefix store disabled (every prompt prefilled in full);
- ``score``: every ID scored (cost grows with the number of IDs; skipped above --score-max-ids);
- ``hybrid``: the `lm-hybrid` path: 10 retrieval-like candidates (with summaries) in the prompt, the
  candidates' sub-trie scored (k is the number of candidates, so one row per size).

The machine may be shared: the load average is printed with every row, and CPU seconds per query
(``time.process_time``) are reported next to wall time, since they move much less with other jobs' load.
Configurations whose first query exceeds --max-seconds stop early.
"""
from __future__ import annotations

import argparse
import os
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
from inference.prompt import Candidate, build_prompt  # noqa: E402
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


def candidates_for(query: str, ids: list[str], n: int = 10) -> list[Candidate]:
    """Retrieval-like candidates: the IDs sharing most words with the query, with a summary each."""
    words = set(query.lower().split())
    scored = sorted(ids, key=lambda m: (-len(words & set(m.split("/"))), m))
    return [Candidate(m, f"{m.rsplit('/', 1)[-1]} sources and tests of the {m.split('/')[0]} part")
            for m in scored[:n]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def load_avg() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=6)
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--ks", default="1,5")
    ap.add_argument("--methods", default="beam,beam-noprefix,score,hybrid")
    ap.add_argument("--max-seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 0: device.configure_cpu_threads()")
    ap.add_argument("--no-fast", action="store_true", help="the transformers forward instead of the lean one")
    ap.add_argument("--score-max-ids", type=int, default=100, help="skip 'score' above this many IDs (too slow)")
    ap.add_argument("--base", default="smollm2-135m", help="a base model name of inference.models, or a folder")
    a = ap.parse_args()
    choice = select_device()
    if choice.device == "cpu":
        configure_cpu_threads(a.threads or None)
    print(f"device: {choice.device} {choice.dtype} ({choice.reason}); threads {torch.get_num_threads()}; "
          f"load avg {load_avg()}")
    load_base(a.base)  # converts a GGUF once (not timed)
    t = time.perf_counter()
    model, tok = load_base(a.base, dtype=choice.dtype)
    model.to(choice.device).eval()
    load_s = time.perf_counter() - t
    print(f"model load (cached safetensors): {load_s:.2f} s; rss after load {peak_rss_mb():.0f} MB")
    t = time.perf_counter()
    on = ConstrainedDecoder(model, tok, fast=False if a.no_fast else None)
    build_s = time.perf_counter() - t
    print(f"decoder: {'lean forward, ' + ('fp16' if on.fast.fp16_weights else 'model-dtype') + ' weights' if on.fast else 'transformers forward'}"
          f" (built in {build_s:.2f} s); rss {peak_rss_mb():.0f} MB")
    decs = {"on": on, "off": ConstrainedDecoder(model, tok, prefix_cache=0, fast=on.fast or False)}
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        ids = synthetic_ids(n)
        t = time.perf_counter()
        trie = IdTrie(ids, tok)
        trie_s = time.perf_counter() - t
        print(f"{n} ids: trie built in {trie_s * 1e3:.0f} ms, {len(trie.nodes)} nodes, depth {trie.max_depth()}",
              flush=True)
        for method in a.methods.split(","):
            if method == "score" and n > a.score_max_ids:
                rows.append((n, 0, method, float("nan"), float("nan"), float("nan"), 0, 0, peak_rss_mb(), load_avg(),
                             "skipped (ranks every ID)"))
                continue
            dec = decs["off" if method == "beam-noprefix" else "on"]
            decode_method = "score" if method in ("score", "hybrid") else "beam"
            for k in ([10] if method == "hybrid" else [int(x) for x in a.ks.split(",")]):
                def one(q: str):
                    if method == "hybrid":
                        cands = candidates_for(q, ids)
                        sub = trie.subset([c.module for c in cands])
                        return dec.rank(build_prompt(q, "ncnn", cands), sub, len(sub), method=decode_method), sub
                    return dec.rank(build_prompt(q, "ncnn"), trie, k, method=decode_method), trie

                one(QUERIES[-1])  # warm-up
                lat, cpu, ptoks, skipped = [], [], [], False
                for i in range(a.queries):
                    q = QUERIES[i % len(QUERIES)]
                    t, c = time.perf_counter(), time.process_time()
                    r, tr = one(q)
                    lat.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                    ptoks.append(r.prompt_tokens)
                    assert r.ranked and all(x.module in tr for x in r.ranked)
                    assert sum(x.prob for x in r.ranked) <= 1 + 1e-4
                    if lat[-1] > a.max_seconds:
                        skipped = True
                        break
                row = (n, k, method, statistics.median(lat) * 1e3, pct(lat, 0.95) * 1e3, statistics.median(cpu) * 1e3,
                       round(statistics.mean(ptoks)), len(lat), peak_rss_mb(), load_avg(),
                       "stopped early (too slow)" if skipped else "")
                rows.append(row)
                print(f"  {method:13s} k={k:<2d}: p50 {row[3]:6.0f} ms  p95 {row[4]:6.0f} ms  cpu p50 {row[5]:6.0f} ms  "
                      f"prompt {row[6]} tok  ({len(lat)} queries, load {row[9]}) {row[10]}", flush=True)
                if method == "score":
                    break  # score ranks every ID: k does not change its cost
    print()
    print(f"{'ids':>5} {'k':>2} {'method':>13} {'p50 ms':>7} {'p95 ms':>7} {'cpu p50':>7} {'prompt':>6} {'n':>2} "
          f"{'peak RSS MB':>11} {'load avg':>14}")
    for n, k, m, p50, p95, cp, pt, cnt, rss, la, note in rows:
        print(f"{n:>5} {k:>2} {m:>13} {p50:>7.0f} {p95:>7.0f} {cp:>7.0f} {pt:>6} {cnt:>2} {rss:>11.0f} {la:>14} {note}")
    print(f"model load: {load_s:.2f} s; threads {torch.get_num_threads()}; load avg at end {load_avg()}")


if __name__ == "__main__":
    main()
