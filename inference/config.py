"""What the engines are told by bot/settings.py: small typed configs, never read from the environment here.

    compute = ComputeConfig(device="cpu", threads=2)      # bot builds it once: settings.compute()
    rt = ModelRuntime(models_dir, compute=compute)         # where and how the fine-tuned model runs

Torch-free, so `modmatch ask` can build one without loading torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ComputeConfig:
    """Where and how the language model runs (settings device, dtype, threads, fast_lm, cpu_weights)."""

    device: str = "auto"  # auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps
    dtype: str | None = None  # fp32, bf16, fp16; None: the device's own choice
    threads: int | None = None  # torch's CPU threads; None: cpu_threads()' policy
    fast_lm: bool = True  # CPU decoding of Llama-family models through the lean forward (fastlm.py)
    cpu_weights: str = "fp16"  # the lean forward's CPU weights: fp16 (packed) or fp32

    @property
    def fp16_weights(self) -> bool | None:
        """For FastLM: False when fp32 weights are asked for, else None (fp16-packed where the CPU build allows)."""
        return False if self.cpu_weights.strip().lower() == "fp32" else None


def cpu_threads(configured: int | None = None) -> int:
    """The one thread policy for CPU work (serving, asking, evaluating, training): `configured` when positive;
    else the cores free now (cores minus the 1-minute load), and on small machines one core fewer than all
    (on a 2-core box shared with the service, 2 busy threads oversubscribe and a forward pass measured 5-15x
    slower than with 1 thread)."""
    if configured is not None and configured > 0:
        return int(configured)
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = 0.0
    cap = cores - 1 if cores <= 4 else cores
    return max(1, min(cap, round(cores - load)))
