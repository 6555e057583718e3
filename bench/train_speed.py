"""Training speed of a base model + LoRA on this machine: tokens/s and minutes per epoch.

Compares the trainer's loss (hidden states from the base model, lm_head only at completion
positions) with the naive loss (full logits over every position), in fp32 and with bf16 autocast, and, with
LoRA on the top layers only, the trainer's later epochs (`cached-fp32`: the frozen layers' output is cached).

    python bench/train_speed.py [--steps 6] [--batch 8] [--seq 160] [--rows 1000] [--threads N]
        [--base smollm2-135m|gemma3-270m|PATH] [--lora-layers N]
"""
from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=160, help="tokens per row (prompt + completion)")
    ap.add_argument("--completion", type=int, default=12, help="completion tokens per row")
    ap.add_argument("--rows", type=int, default=1000, help="rows per epoch, for minutes per epoch")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--base", default="smollm2-135m", help="a base model name of inference.models, or a folder")
    ap.add_argument("--lora-layers", type=int, default=0, help=">0: LoRA on the top N layers only")
    ap.add_argument("--modes", default="custom-fp32,naive-fp32",
                    help="comma-separated: custom-fp32, naive-fp32, custom-bf16, naive-bf16 (bf16 is emulated, slow, "
                         "on CPUs without AVX512-BF16/AMX), cached-fp32 (with --lora-layers: an epoch after the first, "
                         "the frozen layers' output cached)")
    a = ap.parse_args()

    from inference.config import cpu_threads
    from inference.models import load_base
    from trainer.config import TrainConfig
    from trainer.train import FrozenPrefix, add_lora, completion_loss, full_logits_loss

    cfg = TrainConfig(threads=a.threads, lora_layers=a.lora_layers)
    torch.set_num_threads(cpu_threads(cfg.threads))
    model, tok = load_base(a.base, a.cache_dir)
    model = add_lora(model, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, min(40000, len(tok)), (a.batch, a.seq), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -a.completion:] = ids[:, -a.completion:]
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    where = f"the top {a.lora_layers}" if a.lora_layers else "all"
    print(f"{a.base} + LoRA r={cfg.lora_r} on {where} layers ({sum(p.numel() for p in params)/1e6:.2f}M trainable), "
          f"threads={torch.get_num_threads()}, batch={a.batch} x {a.seq} tokens ({a.completion} completion)")
    prefix = FrozenPrefix.maybe(model, cfg, "cpu")
    rows = list(range(a.batch))
    for mode in a.modes.split(","):
        if mode.startswith("cached") and prefix is None:
            raise SystemExit("cached-*: needs --lora-layers N (fewer than the model's layers)")
        fn = (lambda m, b: prefix.loss(rows, b)) if mode.startswith("cached") else \
            completion_loss if mode.startswith("custom") else full_logits_loss
        bf16 = mode.endswith("bf16")

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = fn(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # warm-up (cached-*: fills the frozen layers' cache, so the timed steps are later epochs' steps)
        t = time.time()
        for _ in range(a.steps):
            step()
        dt = (time.time() - t) / a.steps
        tps = a.batch * a.seq / dt
        mins = a.rows * a.seq / tps / 60
        print(f"{mode:12s} {dt:6.2f} s/step  {tps:8.0f} tokens/s  {mins:6.1f} min/epoch of {a.rows} rows x {a.seq} tokens",
              flush=True)


if __name__ == "__main__":
    main()
