"""Numbered schema migrations for a repository's SQLite database.

Each ``mNNN_name(conn)`` runs once and is recorded in the ``_migrations`` table. Add new ones at the
end; never edit one that has shipped.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone


def m001_initial(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE parse_cache (
            blob TEXT NOT NULL, language TEXT NOT NULL, parser TEXT NOT NULL, record TEXT NOT NULL,
            PRIMARY KEY (blob, language, parser)
        );
        CREATE TABLE files (path TEXT PRIMARY KEY, blob TEXT NOT NULL, module TEXT);
        CREATE TABLE modules (id TEXT PRIMARY KEY, parent TEXT, record TEXT NOT NULL);
        CREATE TABLE edges (
            src TEXT NOT NULL, dst TEXT NOT NULL, kind TEXT NOT NULL, weight INTEGER NOT NULL,
            PRIMARY KEY (src, dst, kind)
        );
        CREATE TABLE graph (id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, [commit] TEXT,
                            built_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE TABLE history (
            [commit] TEXT NOT NULL, kind TEXT NOT NULL, date TEXT NOT NULL, subject TEXT NOT NULL,
            body TEXT NOT NULL, files TEXT NOT NULL, modules TEXT NOT NULL,
            PRIMARY KEY ([commit], kind)
        );
        CREATE INDEX history_date ON history(date);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started_at TEXT NOT NULL,
            finished_at TEXT, status TEXT NOT NULL, detail TEXT
        );
        """
    )


def m002_feedback(conn: sqlite3.Connection) -> None:
    """Examples that people (or the bot) provide: text → modules."""
    conn.executescript(
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, source TEXT NOT NULL,
            text TEXT NOT NULL, modules TEXT NOT NULL, key TEXT UNIQUE
        );
        """
    )


def m003_incremental(conn: sqlite3.Connection) -> None:
    """Per-module fingerprints and per-file imports, so a refresh only recomputes what changed.
    The graph is now assembled from the modules and edges tables; stored graphs are rebuilt."""
    conn.executescript(
        """
        DROP TABLE modules;
        CREATE TABLE modules (
            id TEXT PRIMARY KEY, parent TEXT, fingerprint TEXT NOT NULL, record TEXT NOT NULL,
            terms TEXT NOT NULL, keywords TEXT NOT NULL
        );
        DROP TABLE files;
        CREATE TABLE files (path TEXT PRIMARY KEY, blob TEXT NOT NULL, module TEXT, imports TEXT NOT NULL,
                            targets TEXT NOT NULL);
        DELETE FROM graph;
        DELETE FROM meta WHERE key IN ('commit', 'layout');
        """
    )


def m004_compact_symbols(conn: sqlite3.Connection) -> None:
    """Module records store each symbol as a [name, kind, path, line, doc] row instead of an object
    (Module.to_record): loading a graph parses a third less JSON. Existing rows are rewritten."""
    import json

    rows = conn.execute("SELECT id, record FROM modules").fetchall()
    out = []
    for mid, rec in rows:
        d = json.loads(rec)
        d["symbols"] = [[s["name"], s["kind"], s["path"], s["line"], s.get("doc", "")] if isinstance(s, dict) else s
                        for s in d.get("symbols", [])]
        out.append((json.dumps(d, separators=(",", ":")), mid))
    conn.executemany("UPDATE modules SET record=? WHERE id=?", out)


def m005_term_rows(conn: sqlite3.Connection) -> None:
    """Module terms move from a JSON column to rows (module, word, weight) indexed by word: a refresh reads and
    writes only the terms of the modules that changed, and the document frequency of a word is a count over its
    rows. Existing terms are moved as they are."""
    import json

    if not conn.in_transaction:
        conn.execute("BEGIN")  # with its record in _migrations, all or nothing
    conn.execute("CREATE TABLE terms (module TEXT NOT NULL, word TEXT NOT NULL, weight REAL NOT NULL, "
                 "PRIMARY KEY (module, word)) WITHOUT ROWID")
    conn.execute("CREATE INDEX terms_word ON terms(word)")
    for mid, terms in conn.execute("SELECT id, terms FROM modules").fetchall():
        conn.executemany("INSERT INTO terms VALUES (?, ?, ?)", [(mid, w, v) for w, v in json.loads(terms).items()])
    conn.execute("ALTER TABLE modules DROP COLUMN terms")


MIGRATIONS = [m001_initial, m002_feedback, m003_incremental, m004_compact_symbols, m005_term_rows]


def migrate(conn: sqlite3.Connection) -> list[str]:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with conn:
            fn(conn)
            conn.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, datetime.now(timezone.utc).isoformat()))
        applied.append(fn.__name__)
    return applied
