"""Module labels: `prefix + module ID`, within GitHub's limits (name 50 characters, description 100)."""
from __future__ import annotations

import hashlib

NAME_MAX = 50
DESCRIPTION_MAX = 100


def label_for(module_id: str, prefix: str) -> str:
    name = prefix + module_id
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha1(module_id.encode()).hexdigest()[:6]
    keep = NAME_MAX - len(prefix) - len(digest) - 1
    return prefix + module_id[:max(0, keep)] + "~" + digest


def modules_by_label(module_ids, prefix: str) -> dict[str, str]:
    """label name (lower-cased: GitHub label names are case-insensitive) → module ID."""
    return {label_for(m, prefix).lower(): m for m in module_ids}


def description_for(description: str, module_id: str) -> str:
    text = " ".join((description or f"modmatch module {module_id}").split())
    return text if len(text) <= DESCRIPTION_MAX else text[:DESCRIPTION_MAX - 1].rstrip() + "…"


def color_for(module_id: str) -> str:
    """A stable, light colour per module."""
    h = hashlib.sha1(module_id.encode()).digest()
    return "".join(f"{0x80 + b // 2:02x}" for b in h[:3])
