"""The graph's records: small, frozen where possible, JSON-friendly.

Everything the other subsystems know about a repository arrives as these records.
Module IDs are stable strings (``backend/opencl``) and are the graph's node keys.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Symbol:
    """A definition found in a source file."""

    name: str
    kind: str  # class, struct, function, method, interface, enum, type, ...
    path: str  # repository-relative, forward slashes
    line: int  # 1-based
    doc: str = ""  # doc comment or docstring, trimmed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "line": self.line, "doc": self.doc}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Symbol":
        return cls(**d)


@dataclass
class FileRecord:
    """What the parser learned from one file. Cached by content hash (blob id)."""

    path: str
    blob: str  # git blob sha1 of the content (also for non-git folders)
    size: int
    language: str = ""  # "" for files no grammar handles
    lines: int = 0
    symbols: list[Symbol] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # raw import / include strings
    header: str = ""  # the file's leading comment or module docstring
    text: str = ""  # a capped excerpt of text (for files with no grammar: docs, configs)
    error: str = ""  # why the file was only partly read ("binary", "too large", "syntax errors", ...)
    terms: dict[str, float] = field(default_factory=dict)  # weighted words (for keywords), computed once

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["symbols"] = [s.to_dict() for s in self.symbols]
        d["imports"] = list(self.imports)
        d["terms"] = dict(self.terms)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FileRecord":
        d = dict(d)
        d["symbols"] = [Symbol.from_dict(s) for s in d.get("symbols", [])]
        return cls(**d)


@dataclass
class Module:
    """A node of the module graph."""

    id: str  # hierarchical, e.g. "src/layer/vulkan"
    paths: list[str]  # path prefixes owned by this module ("" is the repository root)
    # no plain defaults (`= ""`) below: a class attribute would answer for a stored module's undecoded field
    # (`stored`, `__getattr__`), so its name and description read first came back empty
    name: str = field(default_factory=str)
    description: str = field(default_factory=str)
    aliases: list[str] = field(default_factory=list)  # team jargon
    keywords: list[str] = field(default_factory=list)  # words that tell it apart from its siblings
    files: list[str] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    parent: str | None = None
    stats: dict[str, int] = field(default_factory=dict)  # files, lines, bytes, symbols
    explicit: bool = field(default_factory=bool)  # declared in .modmatch.toml

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("paths", "aliases", "keywords", "files"):
            d[key] = list(d[key])
        d["stats"] = dict(self.stats)
        d["symbols"] = [s.to_dict() for s in self.symbols]
        return d

    def to_record(self) -> dict[str, Any]:
        """to_dict with each symbol as a [name, kind, path, line, doc] row: the stored form (a third
        of the JSON to parse when a graph is loaded; from_dict reads both forms)."""
        d = self.to_dict()
        d["symbols"] = [[s.name, s.kind, s.path, s.line, s.doc] for s in self.symbols]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Module":
        d = dict(d)
        d["symbols"] = [Symbol(*s) if isinstance(s, list) else Symbol.from_dict(s) for s in d.get("symbols", [])]
        return cls(**d)

    @classmethod
    def stored(cls, mid: str, parent: str | None, keywords: list[str], record: str) -> "Module":
        """A module whose other fields stay in their stored JSON (`to_record` less parent and keywords) until one
        is first read: a refresh or a graph load decodes only the modules somebody looks at (620 unchanged
        modules' 89,641 symbols took 0.3 s of a 0.95 s refresh). Behaves as a plain Module otherwise."""
        m = cls.__new__(cls)
        m.__dict__.update(id=mid, parent=parent, keywords=keywords, _record=record)
        return m

    def __getattr__(self, name: str) -> Any:  # only for fields not yet decoded (see `stored`)
        d = self.__dict__
        record = d.get("_record")
        if record is None or name.startswith("__"):
            if name in d:  # decoded meanwhile by another thread
                return d[name]
            raise AttributeError(name)
        rec = json.loads(record)
        rec["symbols"] = [Symbol(*s) if isinstance(s, list) else Symbol.from_dict(s) for s in rec.get("symbols", [])]
        for f in fields(self):  # never over a field set since (parent, keywords) or by another thread
            d.setdefault(f.name, rec[f.name] if f.name in rec else (
                f.default if f.default_factory is MISSING else f.default_factory()))
        d.pop("_record", None)
        if name in d:
            return d[name]
        raise AttributeError(name)

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict() | {"symbols": list(self.symbols)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass(frozen=True)
class HistoryExample:
    """One past change: its text and the modules it touched."""

    commit: str
    date: str  # ISO 8601, committer date, UTC
    subject: str
    body: str
    files: tuple[str, ...]
    modules: tuple[str, ...]  # module IDs in the graph the example was mined against
    kind: str = "commit"  # commit | pr | feedback

    @property
    def text(self) -> str:
        return (self.subject + "\n\n" + self.body).strip()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = list(self.files)
        d["modules"] = list(self.modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HistoryExample":
        d = dict(d)
        d["files"] = tuple(d.get("files", ()))
        d["modules"] = tuple(d.get("modules", ()))
        return cls(**d)
