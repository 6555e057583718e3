"""Training hyper-parameters: defaults, the repository's `[trainer]` table, and CLI overrides.

    [trainer]                      # in .modmatch.toml
    base_model = "smollm2-135m"
    epochs = 2
    lora_r = 16
    max_minutes = 30

Precedence: dataclass defaults < `[trainer]` table < explicit overrides (the CLI's options).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any

# LoRA on the top 10 of SmolLM2-135M's 30 layers, against all of them, in the same 20-minute `modmatch train` on a
# hutool checkout (2 cores, bench/README.md): 73.1 against 45.9 tokens/s, 49 against 30 steps, validation top-1
# 0.41 against 0.32 (about 90 rows each), peak RSS 1.97 against 2.35 GB. On a GPU, speed is not what runs out.
CPU_LORA_LAYERS = 10
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    base_model: str = "smollm2-135m"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    # LoRA only on the top N layers (the backward pass stops there, and on the CPU the frozen layers below run once
    # per row); 0: every layer; -1 (auto): the top CPU_LORA_LAYERS on the CPU, every layer on a GPU
    lora_layers: int = -1
    cache_frozen: bool = True  # with lora_layers on the CPU: run the frozen layers below once per row, not per epoch
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    epochs: float = 2.0
    batch_size: int = 8
    grad_accum: int = 1
    # padded tokens per forward pass (0: the whole batch at once): a batch is run in pieces of at most this many
    # tokens, each piece's loss weighted by its share of the batch's completion tokens, so the update is the
    # batch's; the activations kept for the backward pass shrink with the piece. Measured on SmolLM2-135M, all
    # layers, 8 rows of 210 tokens, one thread (bench/README.md): the whole batch peaked at 6.7 GB (44 tokens/s),
    # 512 at 2.4 GB (42), 256 (a row at a time) at 1.7 GB (40)
    micro_tokens: int = 256
    # gradient checkpointing: each decoder layer keeps only its input for the backward pass and recomputes the
    # rest there (transformers' activation checkpointing, non-reentrant; the peft backend only: unsloth
    # checkpoints its own way); less memory for more compute
    grad_checkpoint: bool = False
    max_seq_len: int = 256  # tokens; prompts are short on purpose (CPU training)
    max_steps: int = 0  # 0 = no limit beyond epochs
    max_minutes: float = 0.0  # 0 = no limit; when reached, training stops cleanly and still evaluates
    seed: int = 0
    reasoning_ratio: float = 0.5  # share of rows with a thinking line (reference: 1:1)
    candidates_ratio: float = 0.7  # share of rows whose prompt lists retrieval candidates
    candidates_k: int = 5
    variants: int = 4  # phrasings per source sentence
    # the most recent past changes made into rows (0: all): on a CPU budget several epochs over recent history
    # teach more than a fraction of one over all of it, and every row costs a retrieval call to build
    history_limit: int = 1500
    val_fraction: float = 0.15
    bf16: str = "auto"  # "auto" | "yes" | "no": autocast to bfloat16 (auto: only where measured faster)
    threads: int = 0  # 0 = the setting threads, else inference.config.cpu_threads()' policy
    checkpoint_every: int = 50  # steps; 0 = no checkpoints
    eval_rows: int = 120  # validation rows scored for the metrics (cap, for time)
    eval_max_ids: int = 64  # scoring ranks all leaf IDs up to this many, else the row's candidates
    backend: str = "auto"  # "auto" | "unsloth" | "peft"

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, table: dict[str, Any] | None, **overrides) -> "TrainConfig":
        """From the `[trainer]` table (unknown keys raise ValueError), then non-None overrides."""
        cfg = cls()
        known = {f.name: f for f in fields(cls)}
        merged = dict(table or {})
        merged.update({k: v for k, v in overrides.items() if v is not None})
        for k, v in merged.items():
            key = k.replace("-", "_")
            if key not in known:
                raise ValueError(f"[trainer]: unknown setting {k!r}; known: {', '.join(sorted(known))}")
            setattr(cfg, key, _coerce(known[key], v, k))
        cfg.validate()
        return cfg

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> None:
        if not 0.0 <= self.reasoning_ratio <= 1.0:
            raise ValueError("reasoning_ratio must be within [0, 1]")
        if not 0.0 <= self.candidates_ratio <= 1.0:
            raise ValueError("candidates_ratio must be within [0, 1]")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError("val_fraction must be within (0, 1)")
        if self.history_limit < 0:
            raise ValueError("history_limit must be 0 (all) or positive")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "max_seq_len", "variants"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.lora_layers < -1:
            raise ValueError("lora_layers must be -1 (auto), 0 (every layer) or positive")
        if self.micro_tokens < 0:
            raise ValueError("micro_tokens must be 0 (the whole batch) or positive")
        if self.max_seq_len < 32:
            raise ValueError("max_seq_len must be at least 32 tokens")
        if self.lr <= 0 or self.epochs <= 0:
            raise ValueError("lr and epochs must be positive")
        if self.bf16 not in ("auto", "yes", "no"):
            raise ValueError('bf16 must be "auto", "yes" or "no"')
        if self.backend not in ("auto", "unsloth", "peft"):
            raise ValueError('backend must be "auto", "unsloth" or "peft"')

    def for_device(self, device: str) -> "TrainConfig":
        """This config with `lora_layers = -1` (auto) made concrete for `device`."""
        if self.lora_layers >= 0:
            return self
        return dataclasses.replace(self, lora_layers=CPU_LORA_LAYERS if device == "cpu" else 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


def _coerce(f: dataclasses.Field, value: Any, key: str) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else None
    try:
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if isinstance(default, str):
            return str(value).lower() if key.replace("-", "_") in ("bf16", "backend") else str(value)
    except (TypeError, ValueError):
        raise ValueError(f"[trainer]: {key} = {value!r} has the wrong type") from None
    return value
