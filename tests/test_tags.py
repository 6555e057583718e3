"""A team's subject tags ("Proxy:", "[OpenCL:Bugfix]") as evidence: what the past changes carrying a tag touched.

One real git repository with five modules and 240 past changes, each tagged with its team's jargon for the module
("Pager:" for storage), whose words point at the right module only half of the time."""
from __future__ import annotations

import os
import random
import subprocess

import numpy as np
import pytest

from inference.base import create
from inference.calibration import with_history
from inference.evidence import MIN_TAG_CHANGES, TagIndex, subject_tag
from indexer.build import index
from indexer.store import Store

VOCAB = {
    "storage": ["disk cache", "page eviction", "compaction", "fsync", "btree page"],
    "network": ["tls handshake", "http client", "socket timeout", "retry backoff", "dns lookup"],
    "ui": ["dark theme", "button", "menu", "window resize", "tooltip"],
    "crypto": ["signature", "rsa key", "hash digest", "certificate chain", "cipher"],
    "parser": ["syntax error", "token stream", "grammar rule", "ast node", "lexer"],
}
TAGS = {"storage": "Pager", "network": "Wire", "ui": "Paint", "crypto": "Seal", "parser": "Syntax"}
NOISE = ["crash", "slow", "wrong", "when", "after", "sometimes", "breaks", "regression"]


@pytest.mark.parametrize("text,want", [
    ("Proxy: fixed segfault", "proxy"),
    ("[OpenCL:Bugfix] fix the conv kernel", "[opencl:bugfix]"),
    ("fix(ssr): hydrate", "fix(ssr)"),
    ("[skip ci] io, net: x\nthe body", "[skip ci] io, net"),
    ("✨ feat(im): 修一批", "✨ feat(im)"),
    ("Fix the parser: it crashes", None),  # a sentence, not a tag
    ("Proxy:", None),  # nothing but a tag
    ("no tag at all", None),
    ("", None),
])
def test_a_subject_tag_is_read_as_one_key(text, want):
    assert subject_tag(text) == want


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    root = tmp_path_factory.mktemp("tags") / "repo"
    root.mkdir()

    def git(*args, date=None):
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else None
        subprocess.run(["git", "-C", str(root), "-c", "user.name=d", "-c", "user.email=d@e", *args], check=True,
                       capture_output=True, env=env)

    git("init", "-q", "-b", "main")
    for mod, vocab in VOCAB.items():
        (root / mod).mkdir()
        for j, phrase in enumerate(vocab[:2]):
            name = phrase.replace(" ", "_")
            (root / mod / f"{name}.py").write_text(f'"""{phrase}."""\n\n\ndef {name}_{j}():\n    pass\n')
    git("add", "-A")
    git("commit", "-qm", "initial layout", date="2023-12-01T12:00:00+00:00")
    rnd = random.Random(11)
    for i in range(240):
        mod = rnd.choice(list(VOCAB))
        f = rnd.choice(sorted((root / mod).glob("*.py")))
        f.write_text(f.read_text() + f"# change {i}\n")
        about = mod if rnd.random() < 0.5 else rnd.choice([m for m in VOCAB if m != mod])
        text = f"{TAGS[mod]}: " + " ".join([rnd.choice(VOCAB[about])] + rnd.sample(NOISE, 2))
        git("add", "-A")
        git("commit", "-qm", text, date=f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T12:00:00+00:00")
    g = index(root, Store(tmp_path_factory.mktemp("store") / "db.sqlite")).graph
    return g, create("hybrid", g)


def test_the_tag_index_learns_what_each_tag_touched(tagged):
    g, m = tagged
    tags = TagIndex(g, m.ids)
    assert set(tags.tags) == {t.lower() for t in TAGS.values()}
    for mod, tag in TAGS.items():
        d = tags.distribution(f"{tag}: something went wrong\nwith a body")
        assert d is not None and d.sum() == pytest.approx(1.0)
        assert m.ids[int(np.argmax(d))] == mod and d.max() > 0.9
    assert tags.distribution("no tag here") is None
    assert tags.distribution("Unknown: never seen before") is None
    # a tag carried by fewer than MIN_TAG_CHANGES past changes says nothing
    thin = TagIndex(with_history(g, sorted(g.history, key=lambda h: h.date)[:MIN_TAG_CHANGES - 1]), m.ids)
    assert len(thin) == 0


def test_the_tag_share_is_chosen_on_the_held_out_slice(tagged):
    from inference.hybrid import TAG_CHOICES

    _, m = tagged
    note = [n for n in m.notes if n.startswith("subject tags' share")]
    assert len(note) == 1 and "held-out changes carry a tag seen before" in note[0], m.notes
    assert m.tag_weight in TAG_CHOICES
    assert (m.tags is not None) == (m.tag_weight > 0)


def test_a_tag_outweighs_misleading_words_where_it_votes(tagged):
    g, m = tagged
    # the words and a file of network, the tag of storage
    text = "Pager: tls_handshake_0 in network/tls_handshake.py: tls handshake socket timeout, dns lookup, http client"
    old = (m.tags, m.tag_weight)
    try:
        m.tags, m.tag_weight = None, 0.0
        assert m.match(text, k=1)[0].module == "network"
        m.tags, m.tag_weight = TagIndex(g, m.ids), 0.6
        first = m.match(text, k=3)[0]
        assert first.module == "storage"
        assert any(e.startswith("subject tag: ") for e in first.evidence), first.evidence
        # the vote is evidence the confidence weighs, as every vote
        assert m.votes(text)["tag"] is not None
    finally:
        m.tags, m.tag_weight = old


def test_a_matcher_pickled_before_tags_still_serves(tagged):
    _, m = tagged
    state = dict(m.__dict__)
    state.pop("tags"), state.pop("tag_weight")
    loaded = type(m).__new__(type(m))
    loaded.__setstate__(state)  # what unpickling a matcher written before tags does
    got = loaded.match("Seal: rsa key signature wrong", k=3)
    assert len(got) == 3 and loaded.tag_weight == 0.0 and loaded.votes("Seal: x")["tag"] is None


def test_an_update_after_a_push_keeps_the_tag_vote_and_learns_new_tags(tagged):
    import dataclasses

    g, built = tagged
    m = built._clone()  # served with a tag vote of 0.3, whatever the fixture's slice chose
    m.tags, m.tag_weight = TagIndex(g, m.ids), 0.3
    last = max(g.history, key=lambda h: h.date)
    fresh = [dataclasses.replace(last, commit=f"{i:040x}", subject=f"Lamp: button menu {i}", modules=("ui",),
                                 date=last.date) for i in range(MIN_TAG_CHANGES)]
    assert m.tags.distribution("Lamp: a new tag") is None
    up = m.updated(with_history(g, list(g.history) + fresh))
    assert up is not None and up.tag_weight == 0.3
    d = up.tags.distribution("Lamp: a new tag")
    assert d is not None and up.ids[int(np.argmax(d))] == "ui"
