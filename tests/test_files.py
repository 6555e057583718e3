"""Where in a big module to look: the files of an answered module that a text points at (`inference.files`).

One real git repository laid out like Valkey: the server is one flat folder of C files (one module), and its history
says in the team's words which file each kind of change went to."""
from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from inference.base import create
from inference.files import FileRanker
from indexer.build import index
from indexer.store import Store
from conftest import GitRepo

# file -> (its code, the words of its past changes: none of them in a file name or a symbol)
SERVER = {
    "replication.c": ("void syncWithPrimary(void) {}\nvoid feedBacklog(void) {}\n",
                      ["replica falls behind", "partial resync offset", "failover handshake", "stale replica"]),
    "networking.c": ("void readQueryFromClient(void) {}\nvoid writeToClient(void) {}\n",
                     ["query buffer grows", "client output limit", "reply is truncated", "pipelined request"]),
    "aof.c": ("void feedAppendOnlyFile(void) {}\nvoid rewriteAppendOnlyFile(void) {}\n",
              ["fsync every second", "rewrite in background", "truncated log on restart", "log loading"]),
    "rdb.c": ("void rdbSave(void) {}\nvoid rdbLoad(void) {}\n",
              ["snapshot to disk", "dump file checksum", "saving on shutdown", "bgsave child"]),
    "t_hash.c": ("void hsetCommand(void) {}\nvoid hgetCommand(void) {}\n",
                 ["field expiry", "listpack encoding of small maps", "hrandfield count", "field names"]),
    "cluster.c": ("void clusterCron(void) {}\nvoid clusterSendPing(void) {}\n",
                  ["slot migration", "gossip message", "node marked failing", "shard topology"]),
    "acl.c": ("void aclCheckCommand(void) {}\nvoid aclSetUser(void) {}\n",
              ["user permissions", "password rules", "denied category", "selector syntax"]),
    "sentinel.c": ("void sentinelTimer(void) {}\nvoid sentinelVoteLeader(void) {}\n",
                   ["quorum of monitors", "leader election", "down after milliseconds", "monitor config"]),
    "db.c": ("void lookupKey(void) {}\nvoid dbDelete(void) {}\n",
             ["key lookup", "keyspace scan", "expired keys", "flushall async"]),
    "acl.h": ("void aclInit(void);\n", []),
    "server.c": ("int main(void) { return 0; }\nvoid serverCron(void) {}\n", []),
    "server.h": ("void serverCron(void);\n", []),
}
NOISE = ["fix", "when", "after", "sometimes", "wrong", "again", "under load", "on arm"]


@pytest.fixture(scope="module")
def valkey_like(tmp_path_factory):
    repo = GitRepo(tmp_path_factory.mktemp("files") / "repo")
    files = {f"src/{name}": code for name, (code, _) in SERVER.items()}
    files.update({f"docs/guide{i}.md": f"# Guide {i}\n\nHow to run the server, part {i}.\n" for i in range(3)})
    repo.commit("initial layout", files, date="2023-12-01T12:00:00+00:00")
    rnd = random.Random(5)
    talked = [n for n, (_, about) in SERVER.items() if about]
    for i in range(180):
        name = rnd.choice(talked)
        touched = [f"src/{name}"]
        if rnd.random() < 0.3:  # the server's main file is touched along with a third of the changes
            touched.append("src/server.c")
        if rnd.random() < 0.15:
            touched.append("docs/guide0.md")
        for path in touched:
            files[path] += f"/* change {i} */\n"
        text = " ".join([rnd.choice(SERVER[name][1])] + rnd.sample(NOISE, 2))
        repo.commit(text, {p: files[p] for p in touched}, date=f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T12:00:00+00:00")
    root = repo.root
    g = index(root, Store(tmp_path_factory.mktemp("store") / "db.sqlite")).graph
    return root, g, create("hybrid", g)


def test_a_big_module_answer_names_the_files_the_text_points_at(valkey_like):
    """A true answer `src` says little when `src` is the whole server: the answer names the file. From the team's
    words in past changes (none of them a file's or a symbol's name), and from a symbol the text names."""
    _, g, m = valkey_like
    assert set(g.modules) >= {"src", "docs"} and len(g.modules["src"].files) == len(SERVER)
    for text, want in (("the replica falls behind after the failover handshake", "src/replication.c"),
                       ("snapshot to disk fails when saving on shutdown", "src/rdb.c"),
                       ("password rules are not applied to a new user", "src/acl.c"),
                       ("feedAppendOnlyFile writes each command twice", "src/aof.c"),  # a symbol it defines
                       ("hsetCommand rejects an empty value", "src/t_hash.c")):
        first = m.match(text, k=3)[0]
        assert first.module == "src", text
        assert first.files and first.files[0] == want, (text, first.files)
        assert len(first.files) <= 3 and set(first.files) <= set(g.modules["src"].files)
        assert first.to_dict()["files"] == first.files
    # the module's most changed file (server.c) is no answer without evidence from the text
    ranker = FileRanker(g)
    assert ranker.rank("zzzz qqqq", "src") == [] and ranker.rank("", "src") == []
    assert ranker.rank("the replica falls behind", "docs") == []  # a small module is read whole


def test_where_to_look_reaches_the_operator_and_the_api(valkey_like, monkeypatch):
    """`modmatch ask` prints the files under the module, and its JSON (the HTTP API's form) carries them."""
    from bot.cli import cli

    root, _, _ = valkey_like
    monkeypatch.setenv("MODMATCH_REPOS", f"kv={root}")
    r = CliRunner().invoke(cli, ["index", str(root), "--no-matcher"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["ask", "--path", str(root), "--json", "the dump checksum is wrong after a bgsave child"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)["matches"][0]
    assert first["module"] == "src" and first["files"][0] == "src/rdb.c"
    r = CliRunner().invoke(cli, ["ask", "--path", str(root), "the dump checksum is wrong after a bgsave child"])
    assert r.exit_code == 0 and "files: src/rdb.c" in r.output, r.output


def test_a_module_that_kept_its_first_files_symbols_only_does_not_favour_them(git_repo, tmp_path):
    """The graph keeps a module's first 400 symbols: all of them from `a_util.c` here. Their words ("reset", "flag")
    would point every such text at `a_util.c`; only a symbol named whole counts there."""
    from indexer.graph import MAX_SYMBOLS_PER_MODULE

    files = {"src/a_util.c": "".join(f"void reset_flag_{i}(void) {{}}\n" for i in range(MAX_SYMBOLS_PER_MODULE + 20))}
    for name in ("defrag", "db", "dict", "evict", "expire", "lazyfree", "object", "sort", "tracking", "zmalloc"):
        files[f"src/{name}.c"] = f"void {name}Run(void) {{}}\n"
    git_repo.commit("initial", files)
    for i in range(6):
        git_repo.commit(f"Clear the pending item after a background pass {i}",
                        {"src/defrag.c": f"void defragRun(void) {{}} /* {i} */\n"})
    g = index(git_repo.root, Store(tmp_path / "db.sqlite"), full=True).graph
    m = g.modules["src"]
    assert m.stats["symbols"] > len(m.symbols) and {s.path for s in m.symbols} == {"src/a_util.c"}
    ranker = FileRanker(g)
    assert ranker.rank("reset the flag of the pending item after a background pass", "src")[0] == "src/defrag.c"
    assert ranker.rank("reset_flag_7 is called twice", "src")[0] == "src/a_util.c"  # named whole


def test_slack_and_the_github_comment_show_where_to_look(valkey_like):
    """Slack's answer lists the named files as the module's key files (not its first files by name), and the
    GitHub suggestions comment names them beside the module."""
    from bot.blocks import answer_blocks
    from bot.github.labeler import suggestions_comment
    from bot.state import Answer

    _, g, m = valkey_like
    answer = Answer(m.match("the dump checksum is wrong after a bgsave child", k=3), "hybrid", g.version)
    assert answer.matches[0].files[0] == "src/rdb.c"
    text = json.dumps(answer_blocks("the dump checksum is wrong", answer, g, repo="kv"))
    assert "*Key files:* `src/rdb.c`" in text and "`src/acl.c`, `src/acl.h`" not in text  # the first files by name
    comment = suggestions_comment(answer, "module:", 0.99)
    assert "1. `src` (files: `src/rdb.c`" in comment


def test_a_matcher_pickled_before_files_were_named_names_them_once_loaded(valkey_like):
    """A service that loads a matcher cached by older code (no file ranker in it: `inference.cache.stale_matcher`)
    builds the ranker from the live graph on its first answer."""
    import pickle

    from inference.cache import _attach
    from inference.hybrid import HybridMatcher

    _, g, m = valkey_like
    state = pickle.loads(pickle.dumps(m)).__dict__.copy()
    state.pop("files")
    old = object.__new__(HybridMatcher)
    old.__setstate__(state)
    _attach(old, g)
    assert old.files is None
    first = old.match("the replica falls behind after the failover handshake", k=1)[0]
    assert first.module == "src" and first.files[0] == "src/replication.c" and old.files is not None


def test_files_are_named_from_names_alone_without_history(tmp_path):
    """A plain folder (no git, no history): the names and symbols still point at a file."""
    from indexer.build import index

    root = tmp_path / "plain"
    (root / "src").mkdir(parents=True)
    for name, (code, _) in SERVER.items():
        (root / "src" / name).write_text(code)
    g = index(root, Store(tmp_path / "db.sqlite")).graph
    assert not g.history
    assert FileRanker(g).rank("sentinelVoteLeader picks two leaders", "src") == ["src/sentinel.c"]


def test_a_chinese_question_to_a_team_that_writes_english_names_the_file(valkey_like):
    """The repository's names and history are English; a question in Chinese is read with the glossary's English
    for its words (用户 user, 密码 password, 规则 rule), as the hybrid's parts read it."""
    from inference import files

    _, g, m = valkey_like
    ranker = FileRanker(g)
    assert ranker.chinese is False
    assert ranker.rank("新用户的密码规则没有生效", "src")[:1] == ["src/acl.c"]
    files.GLOSSARY = False  # without the glossary nothing in the repository reads Chinese
    try:
        assert ranker.rank("新用户的密码规则没有生效", "src") == []
    finally:
        files.GLOSSARY = True


def test_the_folders_below_a_module_name_its_files(tmp_path):
    """vuejs/core's `packages-private` holds several private packages (`sfc-playground/src/App.vue`,
    `template-explorer/src/index.ts`, `dts-test/*.test-d.ts`): "SFC playground shows the wrong error line" named a
    type test first, the words of a file's own name being all that was read. The folders below the module count too."""
    root = tmp_path / "plain"
    layout = {"sfc-playground/src": ["App.vue", "Header.vue", "VersionSelect.vue", "main.ts"],
              "template-explorer/src": ["index.ts", "options.ts", "theme.ts"],
              "dts-test": ["defineComponent.test-d.tsx", "errors.test-d.ts", "ref.test-d.ts", "watch.test-d.ts"]}
    for folder, names in layout.items():
        (root / "packages-private" / folder).mkdir(parents=True)
        for name in names:
            (root / "packages-private" / folder / name).write_text("export const x = 1\n")
    g = index(root, Store(tmp_path / "db.sqlite")).graph
    mid = next(m for m, mod in g.modules.items() if len(mod.files) >= 10)
    ranker = FileRanker(g)
    named = ranker.rank("SFC playground shows the wrong error line", mid)
    assert named and all("/sfc-playground/" in f for f in named), named
    assert ranker.rank("template explorer theme is unreadable", mid)[:1] == [
        "packages-private/template-explorer/src/theme.ts"]
