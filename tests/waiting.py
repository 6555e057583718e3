"""Polling helper for tests that wait on background work (hooks, job queues, threads)."""
from __future__ import annotations

import time


def wait_for(fn, timeout: float = 30.0, what: str = "the condition"):
    """Call `fn` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
