"""One SQLite database per indexed repository: parse cache, graph, history, runs.

A graph is written in one transaction, so an interrupted index or refresh leaves the previous
graph intact. A database that cannot be read (corrupt, not a database) is moved aside and
rebuilt; the cache is only a cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .errors import NotIndexedError
from .graph import ModuleGraph
from .migrations import migrate
from .records import FileRecord, HistoryExample, Module, Symbol

log = logging.getLogger(__name__)


def db_path_for(home: str | Path, repo_root: str | Path) -> Path:
    """`<home>/repos/<name>-<hash of the absolute path>.db`."""
    root = Path(repo_root).resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name or "repo")[:40]
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return Path(home) / "repos" / f"{name}-{digest}.db"


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        return str(e)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows)[:500]


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class GraphChanges:
    """What a refresh changed (same modules, same paths), so that save_graph writes only that."""

    files: set[str] = field(default_factory=set)  # paths whose rows are rewritten (no path comes or goes)
    modules: set[str] = field(default_factory=set)  # modules whose record, fingerprint and terms are rewritten
    keywords: set[str] = field(default_factory=set)  # modules whose keywords (or parent) are rewritten
    edges: set[tuple[str, str]] = field(default_factory=set)  # dependency edges whose weight changed (or are gone)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def quarantined(path: str | Path) -> list[Path]:
    """The damaged copies of the database at `path` that were moved aside, oldest first."""
    p = Path(path)
    return sorted(p.parent.glob(f"{p.stem}.corrupt-*"))


class Store:
    """`Store(path, check=True)` also runs SQLite's quick_check on open (cost grows with the file: use it where a
    damaged file must be caught before it is trusted, such as the service's start and a full index)."""

    def __init__(self, path: str | Path, check: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recovered: str | None = None  # why the file was moved aside while opening, if it was
        self.conn = self._open(check)

    def _connect(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        if fresh:
            try:
                os.chmod(self.path, 0o600)  # commit texts and feedback: not for every local user
            except OSError:
                pass
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _open(self, check: bool) -> sqlite3.Connection:
        conn = None
        try:
            conn = self._connect()
            if check:
                problem = integrity_problem(conn)
                if problem:
                    raise sqlite3.DatabaseError(problem)
            migrate(conn)
            return conn
        except sqlite3.DatabaseError as e:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            self._move_aside(str(e))
            conn = self._connect()
            migrate(conn)
            return conn

    def _move_aside(self, reason: str) -> Path:
        bad = self.path.with_suffix(f".corrupt-{datetime.now().strftime('%Y%m%d%H%M%S%f')}")
        log.warning("store.corrupt path=%s error=%s moved_to=%s", self.path, reason[:300], bad)
        if self.path.exists():
            self.path.rename(bad)
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            if side.exists():
                side.unlink()
        self.recovered = f"{reason[:300]} (moved to {bad.name})"
        return bad

    def quarantine(self, reason: str) -> Path:
        """The file is damaged: move it aside and start an empty one (the graph is rebuilt from git)."""
        try:
            self.conn.close()
        except Exception:
            pass
        bad = self._move_aside(reason)
        self.conn = self._connect()
        migrate(self.conn)
        return bad

    def integrity(self) -> str | None:
        """None when SQLite's quick_check passes, else what it found."""
        return integrity_problem(self.conn)

    def close(self) -> None:
        self.conn.close()

    # --- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- parse cache --------------------------------------------------------------------------
    def cached_records(self, keys: Iterable[tuple[str, str]], parser: str) -> dict[tuple[str, str], FileRecord]:
        """(blob, language) -> record (with the path of whoever cached it)."""
        out: dict[tuple[str, str], FileRecord] = {}
        keys = list(keys)
        with closing(self.conn.cursor()) as cur:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                blobs = list({b for b, _ in chunk})
                q = f"SELECT blob, language, record FROM parse_cache WHERE parser=? AND blob IN ({','.join('?' * len(blobs))})"
                wanted = set(chunk)
                for blob, lang, rec in cur.execute(q, [parser, *blobs]):
                    if (blob, lang) in wanted:
                        try:
                            out[(blob, lang)] = FileRecord.from_dict(json.loads(rec))
                        except (ValueError, TypeError, KeyError):
                            continue  # a corrupt row is a cache miss
        return out

    def cache_records(self, records: Iterable[FileRecord], parser: str) -> None:
        rows = [(r.blob, r.language, parser, json.dumps(r.to_dict(), separators=(",", ":"))) for r in records]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO parse_cache VALUES (?, ?, ?, ?)", rows)

    # --- graph ---------------------------------------------------------------------------------
    def save_graph(self, graph: ModuleGraph, files: dict[str, tuple[str, list[str], list[str]]],
                   fingerprints: dict[str, str], terms: dict[str, dict], history: list[HistoryExample],
                   *, replace_history: bool, meta: dict[str, str] | None = None,
                   changes: GraphChanges | None = None) -> None:
        """Write graph, file table, history and meta in one transaction.

        `files`: path -> (blob, imports, resolved targets). Module rows whose fingerprint is unchanged keep their
        stored record and terms; only parent and keywords are updated. With `changes` (a refresh that knows what it
        changed) only those rows are written: `files` and `terms` then need only the changed paths and modules.
        """
        with self.conn:
            c = self.conn
            if changes is None:
                old = dict(c.execute("SELECT id, fingerprint FROM modules"))
                c.execute("DELETE FROM files")
                upsert = sorted(files)
                gone = [mid for mid in old if mid not in graph.modules]
                fresh = [mid for mid in graph.modules if old.get(mid) != fingerprints[mid]]
                kept = [mid for mid in graph.modules if old.get(mid) == fingerprints[mid]]
            else:
                upsert = sorted(changes.files)
                gone, fresh, kept = [], sorted(changes.modules), sorted(changes.keywords - changes.modules)
            c.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                          [(p, files[p][0], graph.module_of(p), json.dumps(files[p][1]), json.dumps(files[p][2]))
                           for p in upsert])
            c.executemany("DELETE FROM modules WHERE id=?", [(mid,) for mid in gone])
            c.executemany("DELETE FROM terms WHERE module=?", [(mid,) for mid in gone + fresh])
            rows = []
            for mid in fresh:
                m = graph.modules[mid]
                d = m.to_record()
                d.pop("keywords"), d.pop("parent")
                rows.append((mid, m.parent, fingerprints[mid], json.dumps(d, separators=(",", ":")), json.dumps(m.keywords)))
            c.executemany("INSERT OR REPLACE INTO modules VALUES (?, ?, ?, ?, ?)", rows)
            c.executemany("INSERT INTO terms VALUES (?, ?, ?)", [(mid, w, v) for mid in fresh for w, v in terms[mid].items()])
            c.executemany("UPDATE modules SET parent=?, keywords=? WHERE id=?",
                          [(graph.modules[mid].parent, json.dumps(graph.modules[mid].keywords), mid) for mid in kept])
            if changes is None:
                c.execute("DELETE FROM edges")
                c.executemany("INSERT INTO edges VALUES (?, ?, ?, ?)",
                              [(a, b, "depends", w) for (a, b), w in graph.depends.items()]
                              + [(m.parent, m.id, "contains", 1) for m in graph.modules.values() if m.parent])
            else:  # the module layout is the same: containment stays, dependency edges change by their delta
                c.executemany("DELETE FROM edges WHERE src=? AND dst=? AND kind='depends'",
                              [e for e in sorted(changes.edges) if e not in graph.depends])
                c.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, 'depends', ?)",
                              [(a, b, graph.depends[(a, b)]) for a, b in sorted(changes.edges) if (a, b) in graph.depends])
            c.execute("INSERT OR REPLACE INTO graph VALUES (1, ?, ?, ?, ?)", (graph.version, graph.commit, _now(), "{}"))
            if replace_history:
                c.execute("DELETE FROM history")
            c.executemany(
                "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(h.commit, h.kind, h.date, h.subject, h.body, json.dumps(list(h.files)), json.dumps(list(h.modules)))
                 for h in history],
            )
            for k, v in (meta or {}).items():
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def module_rows(self) -> dict[str, tuple[str, str | None, list[str], str]]:
        """id -> (fingerprint, parent, keywords, record JSON) of the stored graph."""
        return {mid: (fp, parent, json.loads(k), rec)
                for mid, fp, parent, k, rec in self.conn.execute("SELECT id, fingerprint, parent, keywords, record FROM modules")}

    def module_terms(self, ids: Iterable[str] | None = None) -> dict[str, Counter]:
        """id -> term weights, of the modules `ids` (all when None)."""
        out: dict[str, Counter] = {}
        if ids is None:
            rows = self.conn.execute("SELECT module, word, weight FROM terms")
        else:
            rows = (r for chunk in _chunks(sorted(ids)) for r in self.conn.execute(
                f"SELECT module, word, weight FROM terms WHERE module IN ({','.join('?' * len(chunk))})", chunk))
        for mid, w, v in rows:
            out.setdefault(mid, Counter())[w] = v
        if ids is not None:
            for mid in ids:
                out.setdefault(mid, Counter())
        return out

    def modules_with_words(self, words: Iterable[str]) -> set[str]:
        return {mid for chunk in _chunks(sorted(words)) for (mid,) in self.conn.execute(
            f"SELECT DISTINCT module FROM terms WHERE word IN ({','.join('?' * len(chunk))})", chunk)}

    def document_frequencies(self, words: Iterable[str]) -> Counter:
        """word -> how many stored modules have it among their terms."""
        return Counter({w: n for chunk in _chunks(sorted(words)) for w, n in self.conn.execute(
            f"SELECT word, COUNT(*) FROM terms WHERE word IN ({','.join('?' * len(chunk))}) GROUP BY word", chunk)})

    def file_index(self) -> dict[str, tuple[str, str]]:
        """path -> (blob, module) of the stored file table, in path order."""
        return {p: (b, m) for p, b, m in self.conn.execute("SELECT path, blob, module FROM files ORDER BY path")}

    def file_rows(self, paths: Iterable[str] | None = None) -> dict[str, tuple[str, list[str], list[str]]]:
        """path -> (blob, imports, resolved targets), of `paths` (all when None)."""
        if paths is None:
            rows = self.conn.execute("SELECT path, blob, imports, targets FROM files")
        else:
            rows = (r for chunk in _chunks(sorted(paths)) for r in self.conn.execute(
                f"SELECT path, blob, imports, targets FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk))
        return {p: (b, json.loads(i), json.loads(t)) for p, b, i, t in rows}

    def depends(self) -> dict[tuple[str, str], int]:
        return {(a, b): w for a, b, w in self.conn.execute("SELECT src, dst, weight FROM edges WHERE kind='depends'")}

    def load_graph(self, with_history: bool = True) -> ModuleGraph:
        """The stored graph; each module's record is decoded when it is first read (Module.stored)."""
        row = self.conn.execute("SELECT version, [commit] FROM graph WHERE id=1").fetchone()
        if not row:
            raise NotIndexedError("this repository has not been indexed yet: run `modmatch index` first")
        mods = {mid: Module.stored(mid, parent, json.loads(kws), rec)
                for mid, parent, rec, kws in self.conn.execute("SELECT id, parent, record, keywords FROM modules")}
        g = ModuleGraph(mods, self.depends(), commit=row[1], version=row[0])
        if with_history:
            g.history = self.history()
        return g

    def has_graph(self) -> bool:
        return self.conn.execute("SELECT 1 FROM graph WHERE id=1").fetchone() is not None

    def module_ids(self) -> list[str]:
        """The stored modules' IDs, without decoding their records."""
        return [r[0] for r in self.conn.execute("SELECT id FROM modules ORDER BY id")]

    def graph_info(self) -> dict:
        row = self.conn.execute("SELECT version, [commit], built_at FROM graph WHERE id=1").fetchone()
        return {"version": row[0], "commit": row[1], "built_at": row[2]} if row else {}

    def files(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT path, blob FROM files"))

    def history(self) -> list[HistoryExample]:
        rows = self.conn.execute(
            "SELECT [commit], date, subject, body, files, modules, kind FROM history ORDER BY date, [commit]")
        return [HistoryExample(c, d, s, b, tuple(json.loads(f)), tuple(json.loads(m)), k) for c, d, s, b, f, m, k in rows]

    # --- feedback -----------------------------------------------------------------------------
    def add_feedback(self, text: str, modules: list[str], source: str, key: str | None = None) -> bool:
        """Store an example; False when `key` was already recorded (idempotent)."""
        try:
            with self.conn:
                self.conn.execute("INSERT INTO feedback (created_at, source, text, modules, key) VALUES (?, ?, ?, ?, ?)",
                                  (_now(), source, text, json.dumps(modules), key))
            return True
        except sqlite3.IntegrityError:
            return False

    def feedback(self) -> list[HistoryExample]:
        rows = self.conn.execute("SELECT id, created_at, text, modules, source FROM feedback ORDER BY id")
        return [HistoryExample(f"feedback-{i}", d, t.split("\n", 1)[0], t.split("\n", 1)[1] if "\n" in t else "",
                               (), tuple(json.loads(m)), "feedback") for i, d, t, m, s in rows]

    # --- runs ---------------------------------------------------------------------------------
    def start_run(self, kind: str) -> int:
        with self.conn:
            cur = self.conn.execute("INSERT INTO runs (kind, started_at, status) VALUES (?, ?, 'running')", (kind, _now()))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, detail: dict | str = "") -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished_at=?, status=?, detail=? WHERE id=?",
                              (_now(), status, json.dumps(detail) if not isinstance(detail, str) else detail, run_id))

    def runs(self, limit: int = 20) -> list[dict]:
        rows = self.conn.execute("SELECT id, kind, started_at, finished_at, status, detail FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(zip(("id", "kind", "started_at", "finished_at", "status", "detail"), r)) for r in rows]


__all__ = ["GraphChanges", "Store", "db_path_for", "Symbol"]
