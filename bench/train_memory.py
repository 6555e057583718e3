"""Peak resident memory and speed of one training step by `micro_tokens` (issue 12: a 135M model trains in < 2 GB).

    .venv/bin/python bench/train_memory.py                               # smollm2-135m, all layers, 0/1024/512/256
    .venv/bin/python bench/train_memory.py --micro 0 256 --lora-layers 10 [--base gemma3-270m] [--rows 8 --tokens 210]

Each setting runs in a fresh process (peak RSS, VmHWM, is per process and never falls): load the base, add LoRA
(r 16, the default targets), then two backward passes over one batch of `--rows` rows of about `--tokens` tokens
with a short completion, through `trainer.train.batch_backward` (the trainer's own step), on one thread. Prints
the RSS before the step, the peak, and tokens/s. No optimizer state is held (AdamW's is 2 × the LoRA parameters:
a few MB).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    return 0


def one(base: str, micro: int, lora_layers: int, rows: int, tokens: int, checkpoint: bool = False) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from inference.models import load_base
    from trainer.config import TrainConfig
    from trainer.train import add_lora, batch_backward, encode_row

    torch.set_num_threads(1)
    model, tok = load_base(base)
    model = add_lora(model, TrainConfig(lora_layers=lora_layers, grad_checkpoint=checkpoint))
    model.train()
    batch = [encode_row(tok, "word " * tokens, "modules: src/foo", tokens + 32) for _ in range(rows)]
    before = _status("VmRSS")
    t0 = time.time()
    n = 0
    for _ in range(2):
        n += batch_backward(model, batch, list(range(rows)), tok.pad_token_id, "cpu", micro_tokens=micro)[1]
    dt = time.time() - t0
    return {"base": base, "micro_tokens": micro, "lora_layers": lora_layers, "rows": rows,
            "tokens_per_row": len(batch[0][0]), "checkpoint": checkpoint, "rss_before_mb": before, "peak_mb": _status("VmHWM"),
            "tokens_per_s": round(n / dt, 1), "seconds_per_batch": round(dt / 2, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--micro", type=int, nargs="*", default=[0, 1024, 512, 256])
    ap.add_argument("--lora-layers", type=int, default=0)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--checkpoint", action="store_true", help="gradient checkpointing (grad_checkpoint in [trainer])")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(one(a.base, a.one, a.lora_layers, a.rows, a.tokens, a.checkpoint)))
        return 0
    print("| base | lora_layers | checkpointing | micro_tokens | RSS before (MB) | peak (MB) | tokens/s |")
    print("|---|---|---|---|---|---|---|")
    for m in a.micro:
        out = subprocess.run([sys.executable, __file__, "--one", str(m), "--base", a.base, "--lora-layers",
                              str(a.lora_layers), "--rows", str(a.rows), "--tokens", str(a.tokens)]
                             + (["--checkpoint"] if a.checkpoint else []),
                             capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['base']} | {r['lora_layers'] or 'all'} | {'yes' if r['checkpoint'] else 'no'} | {r['micro_tokens'] or 'whole batch'} "
              f"({r['rows']} × {r['tokens_per_row']}) | {r['rss_before_mb']} | {r['peak_mb']} | {r['tokens_per_s']} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
