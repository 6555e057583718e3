"""Pick where the model runs: CUDA, Apple MPS or the CPU, each with the dtype that suits it.

    choice = select_device()            # DeviceChoice(device="cpu", dtype=torch.float32, reason="...")
    model.to(choice.device, choice.dtype)

- cuda: bfloat16 where the GPU supports it, else float16;
- mps: float16;
- cpu: bfloat16 only where the CPU has native bf16 (AVX512-BF16 / AMX) *and* a forward-sized matmul
  measures faster in bf16 than in fp32; otherwise float32. (On AVX2-only CPUs bf16 is emulated and a
  135M-parameter forward pass runs ~3x slower than fp32, measured.)

`select_device(device, dtype)` forces a device ("cpu", "cuda", "cuda:1", "mps") and a dtype ("fp32", "bf16",
"fp16"): the settings `device` and `dtype`, passed in by bot/ (`ComputeConfig.select()`). A forced device that
is absent falls back to the automatic choice, with a warning, rather than failing.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import torch

from .config import ComputeConfig, cpu_threads

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16, "half": torch.float16}


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: torch.dtype
    reason: str

    def __iter__(self):  # (device, dtype, reason) = select_device()
        return iter((self.device, self.dtype, self.reason))


def _cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver must not break the CPU path
        return False


def _mps_available() -> bool:
    try:
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    except Exception:
        return False


def _cuda_dtype() -> tuple[torch.dtype, str]:
    try:
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16 supported"
    except Exception:
        pass
    return torch.float16, "no bf16 support, fp16"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    flags = _cpu_flags()
    if flags & {"avx512_bf16", "amx_bf16"}:
        return True
    try:  # macOS arm64 / other platforms: torch's own probe where present
        cap = str(torch.backends.cpu.get_cpu_capability()).upper()
        return "BF16" in cap or "AMX" in cap
    except Exception:
        return False


def _time_linear(dtype: torch.dtype, tokens: int = 32, hidden: int = 576, inner: int = 1536, reps: int = 6) -> float:
    """Seconds for an MLP block shaped like a 135M model's, in `dtype` (best of `reps`)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, hidden, generator=g).to(dtype)
    w1 = torch.randn(inner, hidden, generator=g).to(dtype)
    w2 = torch.randn(hidden, inner, generator=g).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(reps):
            t = time.perf_counter()
            torch.nn.functional.linear(torch.nn.functional.silu(torch.nn.functional.linear(x, w1)), w2)
            best = min(best, time.perf_counter() - t)
    return best


@functools.lru_cache(maxsize=1)
def cpu_dtype() -> tuple[torch.dtype, str]:
    """bf16 only where the CPU has it natively and it measures faster than fp32."""
    if not cpu_has_native_bf16():
        return torch.float32, "no native bf16 on this CPU (bf16 would be emulated, ~3x slower): fp32"
    try:
        t32 = _time_linear(torch.float32)
        t16 = _time_linear(torch.bfloat16)
    except Exception as e:  # pragma: no cover - exotic builds
        return torch.float32, f"bf16 probe failed ({e}): fp32"
    if t16 < t32 * 0.9:
        return torch.bfloat16, f"native bf16 measured faster ({t16 * 1e3:.2f} ms vs fp32 {t32 * 1e3:.2f} ms)"
    return torch.float32, f"native bf16 not faster ({t16 * 1e3:.2f} ms vs fp32 {t32 * 1e3:.2f} ms): fp32"


def _auto() -> DeviceChoice:
    if _cuda_available():
        dt, why = _cuda_dtype()
        return DeviceChoice("cuda", dt, f"CUDA available; {why}")
    if _mps_available():
        return DeviceChoice("mps", torch.float16, "Apple MPS available; fp16")
    dt, why = cpu_dtype()
    return DeviceChoice("cpu", dt, f"no CUDA or MPS; CPU with {why}")


def select_device(override: str | None = None, dtype: str | torch.dtype | None = None) -> DeviceChoice:
    """The best device present and its dtype. `override` forces a device ("auto" or None: choose), `dtype` a
    dtype; an unusable override falls back to the automatic choice."""
    want = (override or "").strip().lower()
    want_dtype = (dtype.strip().lower() or None) if isinstance(dtype, str) else dtype
    choice: DeviceChoice | None = None
    if want and want != "auto":
        kind = want.split(":", 1)[0]
        if kind == "cuda" and _cuda_available():
            dt, why = _cuda_dtype()
            choice = DeviceChoice(want, dt, f"forced {want}; {why}")
        elif kind == "mps" and _mps_available():
            choice = DeviceChoice("mps", torch.float16, "forced mps; fp16")
        elif kind == "cpu":
            dt, why = cpu_dtype()
            choice = DeviceChoice("cpu", dt, f"forced cpu; {why}")
        else:
            auto = _auto()
            log.warning("device %s is not available here; falling back to %s", want, auto.device)
            choice = DeviceChoice(auto.device, auto.dtype, f"requested {want!r} is not available; {auto.reason}")
    if choice is None:
        choice = _auto()
    if want_dtype:
        dt = want_dtype if isinstance(want_dtype, torch.dtype) else _DTYPES.get(str(want_dtype))
        if dt is None:
            log.warning("unknown dtype %r; keeping %s", want_dtype, choice.dtype)
        else:
            choice = DeviceChoice(choice.device, dt, f"{choice.reason}; dtype forced to {dt}")
    log.info("model device: %s (%s): %s", choice.device, str(choice.dtype).replace("torch.", ""), choice.reason)
    return choice


def select(compute: ComputeConfig) -> DeviceChoice:
    """The device and dtype a ComputeConfig asks for."""
    return select_device(compute.device, compute.dtype)


def configure_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: `n` (the threads setting) when positive, else `config.cpu_threads()`'s
    policy. Serving, asking, evaluating and training all go through here."""
    n = cpu_threads(n)
    torch.set_num_threads(n)
    log.info("CPU threads: %d", n)
    return n
