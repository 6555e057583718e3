"""Where files come from: a commit of a git repository, or a plain folder.

Both give the same thing: a list of ``Entry(path, blob, size)`` and a way to read blobs.
``blob`` is git's blob id (sha1 of ``b"blob %d\\0" + content``) in both cases, so the parse
cache is shared and a file's identity is its content.

Reading a commit straight from git's object store never touches the user's checkout; it is
how the indexer builds the graph "as of" an older commit for the temporal evaluation split.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .errors import SourceError
from .modules import OUTPUT_DIRS

GIT_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


class Entry(NamedTuple):
    path: str
    blob: str
    size: int


def blob_id(data: bytes) -> str:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def git(root: str | Path, *args: str, check: bool = True, input: bytes | None = None) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            env=GIT_ENV,
            input=input,
        )
    except FileNotFoundError as e:  # pragma: no cover - git missing entirely
        raise SourceError("git is not installed") from e
    if check and proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"git {' '.join(args[:2])} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout.decode("utf-8", "replace")


def work_tree_top(root: str | Path) -> Path | None:
    """The top folder of the git work tree `root` lies in, or None outside one."""
    p = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, env=GIT_ENV
    )
    top = p.stdout.decode().strip() if p.returncode == 0 else ""
    try:
        return Path(top).resolve() if top else None
    except OSError:
        return None


def is_git_repo(root: str | Path) -> bool:
    top = work_tree_top(root)
    try:
        return top is not None and top == Path(root).resolve()
    except OSError:
        return False


def head_commit(root: str | Path) -> str | None:
    """The commit HEAD points to, or None for a repository with no commits."""
    out = git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    return out or None


def resolve_commit(root: str | Path, rev: str) -> str | None:
    out = git(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).strip()
    return out or None


class Source:
    """A readable snapshot of a repository."""

    root: Path
    commit: str | None

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        raise NotImplementedError


class GitSource(Source):
    """The tree of one commit, read with `git ls-tree` and `git cat-file --batch`."""

    def __init__(self, root: str | Path, commit: str):
        self.root = Path(root)
        self.commit = commit

    def entries(self) -> list[Entry]:
        out = git(self.root, "ls-tree", "-r", "-l", "-z", "--full-tree", self.commit)
        result = []
        for rec in out.split("\0"):
            if not rec:
                continue
            meta, _, path = rec.partition("\t")
            parts = meta.split()
            if len(parts) < 4:
                continue
            mode, kind, sha, size = parts[0], parts[1], parts[2], parts[3]
            # 120000: symlinks (never followed), 160000: submodules (kind "commit")
            if kind != "blob" or mode == "120000":
                continue
            result.append(Entry(path, sha, int(size) if size.isdigit() else 0))
        return result

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        entries = list(entries)
        if not entries:
            return
        proc = subprocess.Popen(
            ["git", "-C", str(self.root), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=GIT_ENV,
        )
        assert proc.stdin and proc.stdout
        import threading

        def feed() -> None:
            try:
                for e in entries:
                    proc.stdin.write(e.blob.encode() + b"\n")
                proc.stdin.close()
            except BrokenPipeError:  # pragma: no cover
                pass

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        try:
            for e in entries:
                header = proc.stdout.readline().split()
                if len(header) < 3 or header[1] == b"missing":
                    yield e, b""
                    continue
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # trailing newline
                yield e, data
        finally:
            t.join(timeout=5)
            proc.stdout.close()
            proc.wait()


class FolderSource(Source):
    """A plain folder (not a git repository, or a repository with no commits).

    Symlinks are never followed, so symlink loops cannot trap the walk. Folders named like build output
    (``OUTPUT_DIRS``) are not entered: nothing says their files were written by people, as tracking does in a
    repository. In a repository with no commits, its staged files there are listed, the others are not.
    """

    def __init__(self, root: str | Path, skip_dir=None):
        self.root = Path(root)
        self.commit = None
        self._skip_dir = skip_dir or (lambda name: name == ".git" or name in OUTPUT_DIRS)
        self._cache: dict[str, bytes] = {}
        self._entries: list[Entry] | None = None  # listed once: the configuration and the build read the same list

    def _git_listed(self) -> list[str] | None:
        """In a git repository with no commits, the files git would track (.gitignore applies)."""
        if not is_git_repo(self.root):
            return None
        staged = git(self.root, "ls-files", "-c", "-z", check=False).split("\0")
        others = git(self.root, "ls-files", "-o", "--exclude-standard", "-z", check=False).split("\0")
        others = [p for p in others if not any(self._skip_dir(d) for d in p.split("/")[:-1])]
        return sorted({p for p in staged + others if p})

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = self._list()
        return self._entries

    def _list(self) -> list[Entry]:
        result = []
        root = str(self.root)
        listed = self._git_listed()
        if listed is not None:
            for rel in listed:
                full = os.path.join(root, rel)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                try:
                    with open(full, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                self._cache[rel] = data
                result.append(Entry(rel, blob_id(data), len(data)))
            return result
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not self._skip_dir(d))
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                if os.path.islink(full):
                    continue
                try:
                    st = os.stat(full)
                    with open(full, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self._cache[rel] = data
                result.append(Entry(rel, blob_id(data), st.st_size))
        return result

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        for e in entries:
            data = self._cache.get(e.path)
            if data is None:
                try:
                    data = (self.root / e.path).read_bytes()
                except OSError:
                    data = b""
            yield e, data


def open_source(root: str | Path, rev: str | None = None) -> Source:
    """A git repository's HEAD (or `rev`), or the folder itself when there is no commit."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"not a folder: {root}")
    if is_git_repo(root):
        commit = resolve_commit(root, rev) if rev else head_commit(root)
        if rev and not commit:
            raise SourceError(f"no such commit: {rev}")
        if commit:
            return GitSource(root, commit)
    elif rev:
        raise SourceError(f"{root} is not a git repository, so it has no commit {rev}")
    return FolderSource(root)
