"""`.modmatch.toml`: how a repository tells modmatch what its modules are.

    [modules]
    depth = 4                      # deepest automatic module level (path components)
    min_files = 3                  # smaller folders fold into their parent
    max_files = 80                 # bigger folders split into their subfolders
    depth_overrides = { "src/layer" = 2 }   # per path prefix
    include = ["src/**", "tools/**"]        # only these files (globs); default: everything
    exclude = ["docs/archive/**"]           # never these files
    own = ["externals"]            # folders named like vendored code (vendor, external(s), extern, deps) that are
                                   # this repository's own code (default: those its history changes with the rest)
    tests_apart = false            # true: a JVM test package (src/test/java/x) is a module apart from its code's

    [[module]]
    id = "backend/opencl"
    path = ["source/backend/opencl"]        # one or more path prefixes
    name = "OpenCL backend"
    description = "GPU execution through OpenCL kernels"
    aliases = ["cl backend", "gpu path"]

    [history]
    max_modules = 5                # changes touching more modules are dropped

Explicit modules own their prefixes; the automatic rule covers the rest of the tree.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

CONFIG_NAME = ".modmatch.toml"
ID_RE = re.compile(r"^[A-Za-z0-9_.\-+()]+(/[A-Za-z0-9_.\-+()]+)*$")


@dataclass(frozen=True)
class ExplicitModule:
    id: str
    paths: tuple[str, ...]
    name: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoConfig:
    depth: int = 4
    min_files: int = 3
    max_files: int = 80
    depth_overrides: tuple[tuple[str, int], ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    own: tuple[str, ...] = ()  # folders named like vendored code that are the repository's own (`modules.skipped`)
    marks: tuple = ()  # the repository's `.gitattributes` rules on vendored and generated files (`indexer.attributes`)
    modules: tuple[ExplicitModule, ...] = ()
    history_max_modules: int = 5
    max_file_bytes: int = 1_000_000
    tests_apart: bool = False  # a JVM test package stays apart from the same package of the code (`modules`)
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # other tables ([trainer], ...)

    def depth_for(self, dirpath: str) -> int:
        best, depth = -1, self.depth
        for prefix, d in self.depth_overrides:
            p = prefix.strip("/")
            if (dirpath == p or dirpath.startswith(p + "/") or p == "") and len(p) > best:
                best, depth = len(p), d
        return depth

    def selected(self, path: str) -> bool:
        if self.include and not any(_glob(path, g) for g in self.include):
            return False
        return not any(_glob(path, g) for g in self.exclude)

    def fingerprint(self) -> str:
        return repr((self.depth, self.min_files, self.max_files, self.depth_overrides, self.include,
                     self.exclude, self.modules, self.history_max_modules, self.max_file_bytes, self.own, self.marks,
                     self.tests_apart))


def _glob(path: str, pattern: str) -> bool:
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if pattern.endswith("/**"):
        base = pattern[:-3]
        return path == base or path.startswith(base + "/")
    return False


def _as_list(value, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(f"{CONFIG_NAME}: {what} must be a string or a list of strings")


def parse_config(text: str) -> RepoConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{CONFIG_NAME}: {e}") from e
    mods = data.get("modules", {})
    if not isinstance(mods, dict):
        raise ConfigError(f"{CONFIG_NAME}: [modules] must be a table")
    kw: dict = {}
    for key in ("depth", "min_files", "max_files"):
        if key in mods:
            v = mods[key]
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{CONFIG_NAME}: modules.{key} must be a non-negative integer")
            kw[key] = v
    overrides = mods.get("depth_overrides", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, int) for v in overrides.values()):
        raise ConfigError(f"{CONFIG_NAME}: modules.depth_overrides must map path prefixes to integers")
    kw["depth_overrides"] = tuple(sorted((k.strip("/"), v) for k, v in overrides.items()))
    kw["include"] = tuple(_as_list(mods.get("include"), "modules.include"))
    kw["exclude"] = tuple(_as_list(mods.get("exclude"), "modules.exclude"))
    kw["own"] = tuple(sorted({str(p).strip().strip("/") for p in _as_list(mods.get("own"), "modules.own")} - {""}))
    if "tests_apart" in mods:
        if not isinstance(mods["tests_apart"], bool):
            raise ConfigError(f"{CONFIG_NAME}: modules.tests_apart must be true or false")
        kw["tests_apart"] = mods["tests_apart"]
    explicit = []
    seen: set[str] = set()
    raw = data.get("module", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{CONFIG_NAME}: use [[module]] tables for explicit modules")
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "id" not in m or "path" not in m:
            raise ConfigError(f"{CONFIG_NAME}: module #{i + 1} needs an id and a path")
        mid = str(m["id"]).strip().strip("/")
        if not ID_RE.match(mid):
            raise ConfigError(f"{CONFIG_NAME}: module id {m['id']!r} is not a valid id (letters, digits, ._-+ and /)")
        if mid in seen:
            raise ConfigError(f"{CONFIG_NAME}: module id {mid!r} is declared twice")
        seen.add(mid)
        paths = tuple(p.strip().strip("/") for p in _as_list(m["path"], f"module {mid}: path"))
        if not paths:
            raise ConfigError(f"{CONFIG_NAME}: module {mid!r} has no path")
        explicit.append(ExplicitModule(
            id=mid, paths=paths, name=str(m.get("name", "")), description=str(m.get("description", "")),
            aliases=tuple(_as_list(m.get("aliases"), f"module {mid}: aliases")),
        ))
    kw["modules"] = tuple(explicit)
    hist = data.get("history", {})
    if isinstance(hist, dict) and "max_modules" in hist:
        kw["history_max_modules"] = int(hist["max_modules"])
    if isinstance(mods.get("max_file_bytes"), int):
        kw["max_file_bytes"] = mods["max_file_bytes"]
    kw["extra"] = {k: v for k, v in data.items() if k not in ("modules", "module", "history")}
    return RepoConfig(**kw)


def load_config(root: str | Path, text: str | None = None) -> RepoConfig:
    """Read `.modmatch.toml` from the repository (or from `text`, e.g. as of a commit)."""
    if text is None:
        p = Path(root) / CONFIG_NAME
        if not p.is_file():
            return RepoConfig()
        text = p.read_text(encoding="utf-8", errors="replace")
    return parse_config(text)
