"""The model's input and output contract, shared by training and serving so they cannot drift.

Prompt (plain text, no chat template, so any causal LM works the same)::

    Task: match the requirement to modules of the repository ncnn.
    Candidates:
    - src/layer/vulkan: Vulkan compute shaders for layers
    - src/gpu: GPU device and pipeline management
    Requirement: crash in the vulkan conv shader
    Answer:

Completion, in "plain" mode::

     modules: src/layer/vulkan; src/gpu
    <eos>

and in "reasoning" mode a short thinking line comes first::

     thinking: key terms: vulkan, shader, conv; area: GPU compute; level: src/layer/vulkan (depth 3)
    modules: src/layer/vulkan
    <eos>

Module IDs are separated by ``SEP``; ``END`` closes the list. At serving time everything after
``MODULES_TAG`` is decoded under the module-ID trie.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PROMPT_HEAD = "Task: match the requirement to modules of the repository {repo}."
CANDIDATES_HEAD = "Candidates:"
REQUIREMENT_TAG = "Requirement:"
ANSWER_TAG = "Answer:"
THINKING_TAG = " thinking:"
MODULES_TAG = " modules:"
SEP = ";"
END = "\n"
MAX_REQUIREMENT_CHARS = 1200  # longer requirements keep their start and end
MAX_THINKING_TOKENS = 48


@dataclass(frozen=True)
class Candidate:
    module: str
    summary: str = ""


MAX_SUMMARY_CHARS = 60


def candidate_summary(module) -> str:
    """The one-line summary of a candidate module in prompts: its most distinctive keywords
    (short, so ten candidates stay cheap to read), else the start of its description."""
    if module is None:
        return ""
    kws = [k for k in module.keywords if k not in module.id.lower()][:5]
    text = " ".join(kws) if kws else module.description
    return " ".join(text.split())[:MAX_SUMMARY_CHARS]


def truncate_requirement(text: str, limit: int = MAX_REQUIREMENT_CHARS) -> str:
    """Keep the start (usually the title) and the end (often the concrete ask) of long text."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + " … " + text[-(limit - head - 3):]


def candidates_prompt(requirement: str, repo: str, graph, ids) -> str:
    """The prompt listing these modules of `graph` as candidates, each with its summary: what lm-hybrid asks, what
    the trainer calibrates it on, and its candidate rows (no IDs: the plain prompt)."""
    return build_prompt(requirement, repo, [Candidate(m, candidate_summary(graph.modules.get(m))) for m in ids] or None)


def build_prompt(requirement: str, repo: str, candidates: list[Candidate] | None = None) -> str:
    lines = [PROMPT_HEAD.format(repo=repo or "this repository")]
    if candidates:
        lines.append(CANDIDATES_HEAD)
        for c in candidates:
            summary = " ".join(c.summary.split())[:MAX_SUMMARY_CHARS]
            lines.append(f"- {c.module}: {summary}" if summary else f"- {c.module}")
    lines.append(f"{REQUIREMENT_TAG} {truncate_requirement(requirement)}")
    lines.append(ANSWER_TAG)
    return "\n".join(lines)


_HEAD_RE = re.compile("^" + re.escape(PROMPT_HEAD).replace(re.escape("{repo}"), "(.*)") + "$")


def prompt_repo(prompt: str) -> str | None:
    """The repository name in a build_prompt text's head (None when the text is not such a prompt)."""
    m = _HEAD_RE.match(prompt.split("\n", 1)[0])
    return m.group(1) if m else None


def format_modules(modules: list[str]) -> str:
    return MODULES_TAG + " " + f"{SEP} ".join(modules) + END


def build_completion(modules: list[str], thinking: str | None = None) -> str:
    """The target text after the prompt (the tokenizer's EOS is appended by the trainer)."""
    out = ""
    if thinking:
        out += THINKING_TAG + " " + " ".join(thinking.split()) + "\n"
        return out + format_modules(modules).lstrip(" ")
    return format_modules(modules)


_MODULES_RE = re.compile(r"modules:\s*(.*)")
_THINK_RE = re.compile(r"thinking:\s*(.*)")


def parse_completion(text: str, valid: set[str] | None = None) -> tuple[list[str], str]:
    """(module IDs in order, thinking). Unknown IDs are dropped when `valid` is given."""
    thinking = ""
    m = _THINK_RE.search(text)
    if m:
        thinking = m.group(1).split("\n")[0].strip()
    mods: list[str] = []
    m = _MODULES_RE.search(text)
    if m:
        for part in m.group(1).split("\n")[0].split(SEP):
            mid = part.strip()
            if mid and mid not in mods and (valid is None or mid in valid):
                mods.append(mid)
    return mods, thinking
