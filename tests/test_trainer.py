"""Tests for the trainer: config, dataset rows, the LoRA loop (tiny random model), publishing and
resuming, and that the real smollm2-135m learns to match a small synthetic repository."""
from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch

from indexer.build import index
from indexer.store import Store
from indexer.text import words
from inference.models import DEFAULT_MODEL, load_base, load_tokenizer, resolve, tiny_random_model
from inference.prompt import build_prompt, parse_completion
from trainer.config import TrainConfig
from trainer.dataset import CandidateSource, build_dataset, read_jsonl
from inference.modelstore import CURRENT, ModelStore
from trainer.train import add_lora, collate, completion_loss, encode_row, train

CACHE = Path(os.environ.get("MODMATCH_TEST_CACHE", Path.home() / ".cache" / "modmatch-tests"))

MODS = {
    "audio": ("Audio playback and recording: decode sound files, mix channels, control speaker volume.",
              [("decode_wav", "Decode a WAV sound file into PCM samples."),
               ("set_volume", "Change the speaker volume level."),
               ("mix_channels", "Mix stereo audio channels into mono."),
               ("record_microphone", "Record sound from the microphone.")]),
    "network": ("Networking: HTTP requests, sockets, connection retries and timeouts.",
                [("http_get", "Send an HTTP GET request to a server."),
                 ("open_socket", "Open a TCP socket connection to a host."),
                 ("retry_connection", "Retry a dropped network connection with backoff."),
                 ("set_timeout", "Set the request timeout in seconds.")]),
    "storage": ("Storage: save and load records in the database, disk cache and file persistence.",
                [("save_record", "Save a record to the database table."),
                 ("load_record", "Load a record from the database by key."),
                 ("clear_cache", "Delete all entries from the disk cache."),
                 ("migrate_schema", "Migrate the database schema to a new version.")]),
    "ui": ("User interface: windows, buttons, menus, dark theme and screen layout.",
           [("draw_button", "Draw a clickable button on the screen."),
            ("open_window", "Open a new application window."),
            ("apply_theme", "Apply the dark or light color theme."),
            ("show_menu", "Show the context menu at the cursor.")]),
    "crypto": ("Cryptography: encrypt and decrypt data, hash passwords, sign and verify keys.",
               [("encrypt_data", "Encrypt data with an AES key."),
                ("hash_password", "Hash a user password with a salt."),
                ("verify_signature", "Verify a digital signature with a public key."),
                ("generate_key", "Generate a new random encryption key.")]),
}

# Phrasings written by hand, never produced by the dataset templates.
HELD_OUT = [
    ("The speaker is silent when a song plays", "audio"),
    ("Microphone capture sounds distorted", "audio"),
    ("Server calls hang forever on a slow link", "network"),
    ("TCP connection drops and does not come back", "network"),
    ("Rows written to the table disappear after restart", "storage"),
    ("The on-disk cache keeps growing", "storage"),
    ("The menu is unreadable in dark mode", "ui"),
    ("Clicking the button does nothing on the main window", "ui"),
    ("Passwords are stored without a salt", "crypto"),
    ("Invalid signatures are accepted as valid", "crypto"),
]


# Chinese phrasings of the held-out questions (the synthetic repository's code and docs are English only).
HELD_OUT_ZH = [
    ("播放歌曲时扬声器没有声音", "audio"),
    ("麦克风录音失真", "audio"),
    ("网络请求超时后一直卡住", "network"),
    ("数据库表里的记录重启后丢失", "storage"),
    ("深色主题下菜单看不清", "ui"),
    ("密码保存时没有加盐", "crypto"),
]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "synth"
    root.mkdir()
    for mod, (doc, funcs) in MODS.items():
        d = root / mod
        d.mkdir()
        body = f'"""{doc}"""\n\n' + "\n\n".join(f'def {n}(*args):\n    """{ds}"""\n    return None\n' for n, ds in funcs)
        (d / "__init__.py").write_text(body)
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "init")
    g = index(root, Store(tmp_path_factory.mktemp("store") / "db.sqlite")).graph
    assert sorted(g.leaf_ids()) == sorted(MODS)
    return g


class FixedMatcher:
    """A stand-in retrieval matcher that always proposes the same (mostly wrong) modules."""

    name = "fixed"

    def __init__(self, ids):
        self.ids = ids

    def match(self, text, k=5):
        from inference.base import Match

        return [Match(m, 1.0 - i / 10, 0.5) for i, m in enumerate(self.ids[:k])]


@pytest.fixture(scope="module")
def cands(graph):
    return CandidateSource(graph, matcher=FixedMatcher(["ui", "crypto", "storage"]))


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(DEFAULT_MODEL, CACHE)


# --- config ------------------------------------------------------------------------------------------

def test_config_from_toml_and_overrides():
    cfg = TrainConfig.from_toml({"lora_r": 8, "epochs": 3, "target-modules": "q_proj, v_proj"}, epochs=1.5,
                                base_model=None)
    assert cfg.lora_r == 8 and cfg.epochs == 1.5 and cfg.target_modules == ("q_proj", "v_proj")
    assert cfg.base_model == "smollm2-135m" and cfg.max_seq_len <= 256
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_toml({"lora_rank": 8})
    with pytest.raises(ValueError, match="wrong type"):
        TrainConfig.from_toml({"lora_r": "big"})
    with pytest.raises(ValueError, match="reasoning_ratio"):
        TrainConfig.from_toml({"reasoning_ratio": 2})
    with pytest.raises(ValueError, match="micro_tokens"):
        TrainConfig.from_toml({"micro_tokens": -1})
    assert TrainConfig.from_toml({"micro-tokens": 0}).micro_tokens == 0
    # lora_layers: -1 (the default) is the top CPU_LORA_LAYERS on the CPU and every layer elsewhere; set, it stays
    from trainer.config import CPU_LORA_LAYERS

    assert TrainConfig().lora_layers == -1 and TrainConfig().for_device("cpu").lora_layers == CPU_LORA_LAYERS
    assert TrainConfig().for_device("cuda").lora_layers == 0 and TrainConfig().for_device("mps").lora_layers == 0
    assert TrainConfig.from_toml({"lora_layers": 0}).for_device("cpu").lora_layers == 0
    assert TrainConfig.from_toml({"lora_layers": 4}).for_device("cuda").lora_layers == 4
    with pytest.raises(ValueError, match="lora_layers"):
        TrainConfig.from_toml({"lora_layers": -2})
    from inference.config import cpu_threads

    assert cpu_threads(cfg.threads) >= 1 and cpu_threads(3) == 3  # 0: the one thread policy; >0: as configured


# --- dataset -----------------------------------------------------------------------------------------

def test_dataset_ratio_groups_thinking_and_jsonl(graph, cands, tmp_path):
    ds = build_dataset(graph, repo="synth", seed=1, candidate_source=cands)
    rows = ds.train + ds.val
    assert len(ds.train) > 100 and ds.val
    # 1:1 reasoning ratio (exact per split, so at most one off overall)
    n_r = sum(r.mode == "reasoning" for r in rows)
    assert abs(n_r - (len(rows) - n_r)) <= 2
    # no group leaks between train and validation
    assert not ({r.group for r in ds.train} & {r.group for r in ds.val})
    # several phrasings per source sentence, and all three sources kinds of graph text are used
    assert max(sum(r.group == g for r in rows) for g in {r.group for r in rows}) >= 3
    assert {"graph:description", "graph:keywords", "graph:symbol"} <= {r.source for r in rows}
    leaves = set(graph.leaf_ids())
    for r in rows:
        mods, thinking = parse_completion(r.completion, leaves)
        assert mods == r.modules and mods[0] in leaves
        assert r.prompt.endswith("Answer:") and r.text in r.prompt
        if r.mode == "reasoning":
            assert thinking.startswith("key terms:") and f"level: {r.modules[0]} (depth 1)" in thinking
            terms = thinking.split(";")[0].removeprefix("key terms:").strip()
            text_words = set(words(r.text))
            kws = set(graph.modules[r.modules[0]].keywords) | set(graph.keyword_index)
            for t in filter(None, (x.strip() for x in terms.split(","))):
                assert t == "none" or (t in text_words and t in kws), (t, r.text)
        else:
            assert not thinking
    # candidates: gold inserted at varying positions in training rows, never in validation rows
    with_c = [r for r in ds.train if r.candidates]
    assert with_c and all(r.modules[0] in r.candidates for r in with_c)
    assert len({r.candidates.index(r.modules[0]) for r in with_c}) >= 3
    assert any(not r.candidates for r in ds.train)
    assert all(r.candidates == [c for c in ["ui", "crypto", "storage"]] for r in ds.val if r.candidates)
    paths = ds.write(tmp_path)
    back = read_jsonl(paths["train"])
    assert [r.to_dict() for r in back] == [r.to_dict() for r in ds.train]
    assert set(json.loads(paths["val"].read_text().splitlines()[0])) >= {
        "prompt", "completion", "modules", "source", "group", "mode"}
    assert ds.hash() == build_dataset(graph, repo="synth", seed=1, candidate_source=cands).hash()


def test_dataset_history_feedback_and_ratio(graph, cands, tmp_path):
    from indexer.records import HistoryExample

    hist = [HistoryExample(f"c{i}", "2025-01-01T00:00:00Z", f"Fix volume glitch {i}", "The speaker clicks.",
                           ("audio/__init__.py",), ("audio",)) for i in range(4)]
    fb = tmp_path / "fb.jsonl"
    fb.write_text(json.dumps({"text": "Keys rotate too rarely", "gold_modules": ["crypto"]}) + "\n")
    ds = build_dataset(graph, repo="synth", history=hist, feedback=fb, reasoning_ratio=0.25,
                       candidate_source=cands)
    rows = ds.train + ds.val
    assert {"history", "feedback"} <= {r.source for r in rows}
    assert any(r.modules == ["crypto"] and "Keys rotate" in r.text for r in rows)
    n_r = sum(r.mode == "reasoning" for r in rows)
    assert abs(n_r - 0.25 * len(rows)) <= 2


def test_training_rows_come_from_the_most_recent_changes(graph, cands, tok, tmp_path):
    from indexer.records import HistoryExample

    mods = ["audio", "network", "storage", "ui", "crypto"]
    hist = [HistoryExample(f"c{i:02d}", f"2025-01-{i + 1:02d}T00:00:00Z", f"Change number {i} of the code", "",
                           (f"{mods[i % 5]}/__init__.py",), (mods[i % 5],)) for i in range(12)]
    model, tok = tiny_random_model(tok)
    res = train(graph, tmp_path, _small_cfg(history_limit=3, max_steps=1, checkpoint_every=0), repo="synth",
                history=list(reversed(hist)), model_and_tokenizer=(model, tok), candidate_source=cands,
                publish_run=False)
    rows = read_jsonl(res.run_dir / "data" / "train.jsonl") + read_jsonl(res.run_dir / "data" / "val.jsonl")
    used = {r.group.split("|", 1)[1] for r in rows if r.group.startswith("history|")}
    assert used == {"c09", "c10", "c11"}  # the three newest, whatever order the caller gave
    with pytest.raises(ValueError, match="history_limit"):
        TrainConfig(history_limit=-1).validate()



def test_validation_holds_the_latest_past_changes(graph, cands):
    """With enough history the model is judged on what comes next: the validation rows are the newest changes
    (whatever order the caller gives), no graph-made sentence among them, and no phrasing of them is trained on.
    With little history, validation is a random share of every kind of row, as before."""
    from indexer.records import HistoryExample

    mods = ["audio", "network", "storage", "ui", "crypto"]
    hist = [HistoryExample(f"c{i:03d}", f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}T00:00:00Z",
                           f"Change number {i} of the {mods[i % 5]} code", "", (f"{mods[i % 5]}/__init__.py",),
                           (mods[i % 5],)) for i in range(200)]
    ds = build_dataset(graph, repo="synth", history=list(reversed(hist)), variants_per_source=2,
                       candidate_source=cands)
    val_groups = {r.group for r in ds.val}
    assert val_groups == {f"history|c{i:03d}" for i in range(170, 200)}
    assert not val_groups & {r.group for r in ds.train}
    assert any(r.group.startswith("history|c169") for r in ds.train)

    few = build_dataset(graph, repo="synth", history=hist[:40], variants_per_source=2, candidate_source=cands)
    assert any(not r.group.startswith("history|") for r in few.val)  # too little history: a random share


def test_dataset_deadline_keeps_validation_and_cuts_training_rows(graph, cands):
    """Rows with candidates cost a retrieval call each: past a deadline the validation rows are all made and the
    training rows stop (at least one), in a random order so that every kind of source still comes; the count
    left out is recorded."""
    import time as _time

    full = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    assert full.not_built == 0 and full.stats()["not_built"] == 0
    calls = []

    class Slow(CandidateSource):
        def __call__(self, text, k):
            calls.append(text)
            _time.sleep(0.02)
            return super().__call__(text, k)

    slow = Slow(graph, matcher=FixedMatcher(["ui", "crypto", "storage"]))
    cut = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=slow,
                        deadline=_time.time() + 0.3)
    assert [r.prompt for r in cut.val] == [r.prompt for r in build_dataset(
        graph, repo="synth", variants_per_source=2, candidate_source=cands).val]
    assert 1 <= len(cut.train) < len(full.train)
    assert cut.not_built == len(full.train) - len(cut.train) and cut.stats()["not_built"] == cut.not_built
    assert len(calls) < len(full.train) + len(full.val)

def test_chinese_templates_when_repo_has_cjk(graph, cands):
    import copy

    g = copy.deepcopy(graph)
    g.modules["audio"].aliases = ["音频模块"]
    ds = build_dataset(g, repo="synth", candidate_source=cands)
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in r.text) for r in ds.train + ds.val)


# --- the loop on a tiny random model -----------------------------------------------------------------

def _small_cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=8, max_steps=6, checkpoint_every=2, eval_rows=8, lr=5e-3, variants=2,
                max_seq_len=128, threads=2)
    base.update(kw)
    return TrainConfig(**base)


def test_lora_changes_adapter_not_base(graph, cands, tok):
    model, tok = tiny_random_model(tok)
    cfg = _small_cfg()
    model = add_lora(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    items = [encode_row(tok, r.prompt, r.completion, 128) for r in ds.train[:16]]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for i in range(3):
        b = collate(items[i * 4:(i + 1) * 4], tok.pad_token_id, "cpu")
        loss = completion_loss(model, b)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    changed_lora = [n for n, p in model.named_parameters() if "lora_" in n and not torch.equal(p, before[n])]
    changed_base = [n for n, p in model.named_parameters() if "lora_" not in n and not torch.equal(p, before[n])]
    assert changed_lora and not changed_base
    # the loss only covers completion tokens: labels are IGNORE on the prompt
    ids, labels = encode_row(tok, ds.train[0].prompt, ds.train[0].completion, 256)
    n_prompt = len(tok(ds.train[0].prompt, add_special_tokens=False)["input_ids"])
    assert all(l == -100 for l in labels[:n_prompt]) and labels[-1] == tok.eos_token_id


def test_train_publish_metadata_and_refusal(graph, cands, tok, tmp_path):
    model, tok = tiny_random_model(tok)
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    res = train(graph, tmp_path, _small_cfg(), repo="synth", dataset=ds, model_and_tokenizer=(model, tok),
                candidate_source=cands)
    run = res.run_dir
    assert res.published and (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "merged" / "config.json").is_file() and (run / "data" / "train.jsonl").is_file()
    assert not (run / "checkpoint").exists()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["module_ids"] == graph.leaf_ids() and meta["ids_hash"] == graph.ids_hash()
    assert meta["graph_version"] == graph.version and meta["dataset_hash"] == ds.hash()
    assert meta["config"]["lora_r"] == 16 and meta["metrics"]["steps"] == 6
    assert 0.0 <= meta["metrics"]["accuracy"] <= 1.0 and meta["metrics"]["rows"] > 0
    assert meta["published"] is True
    cal = meta["calibration"]  # fitted through the serving decoder on validation rows
    assert cal["pairs"] > 0 and len(cal["xs"]) == len(cal["ys"]) and all(0.0 <= y <= 1.0 for y in cal["ys"])
    repo_dir = tmp_path / "synth"
    store = ModelStore(repo_dir)
    cur = store.current()
    assert cur["run"] == os.path.relpath(run, repo_dir)
    # the merged model loads through the registry
    assert resolve(str(run)).kind == "local"

    # a worse run is refused; the current pointer and the previous model stay
    worse = repo_dir / "runs" / "worse"
    (worse / "merged").mkdir(parents=True)
    (worse / "merged" / "config.json").write_text("{}")
    wmeta = dict(meta, metrics=dict(meta["metrics"], accuracy=meta["metrics"]["accuracy"] - 0.01))
    (worse / "metadata.json").write_text(json.dumps(wmeta))
    ok, why = store.publish(worse, wmeta)
    assert not ok and "below" in why and store.current()["run"] == cur["run"]
    # an incomplete run is never published
    (worse / "merged" / "config.json").unlink()
    assert store.publish(worse, dict(meta))[0] is False
    # an equal one is published atomically (no temp files left), a changed module set always is
    (worse / "merged" / "config.json").write_text("{}")
    assert store.publish(worse, dict(meta))[0] is True
    assert store.current()["run"] == "runs/worse" and store.current()["previous"] == cur["run"]
    assert store.current_run() == worse.resolve() and store.runs() == sorted([run, worse])
    assert sorted(p.name for p in repo_dir.iterdir()) == [CURRENT, "runs"]


def test_resume_after_interruption_and_max_minutes(graph, cands, tok, tmp_path):
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    cfg = _small_cfg(max_steps=7, checkpoint_every=2)

    class Boom(Exception):
        pass

    def crash(stage, done, total, info):
        if stage == "train" and done == 5:
            raise Boom

    model, tok = tiny_random_model(tok)
    with pytest.raises(Boom):
        train(graph, tmp_path, cfg, repo="synth", dataset=ds, model_and_tokenizer=(model, tok), progress=crash,
              candidate_source=cands)
    runs = list((tmp_path / "synth" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoint" / "state.json").is_file()
    assert json.loads((runs[0] / "checkpoint" / "state.json").read_text())["step"] == 4
    assert ModelStore(tmp_path / "synth").current() is None

    seen = []
    model, tok = tiny_random_model(tok, seed=1)
    res = train(graph, tmp_path, cfg, repo="synth", model_and_tokenizer=(model, tok), resume=True,
                progress=lambda s, d, t, i: seen.append(d) if s == "train" else None, candidate_source=cands)
    assert res.run_dir == runs[0] and seen == [5, 6, 7]
    assert res.metrics["steps"] == 7 and res.published

    # --max-minutes stops cleanly and still evaluates and writes
    model, tok = tiny_random_model(tok)
    res2 = train(graph, tmp_path, _small_cfg(max_minutes=1e-9), repo="synth", dataset=ds,
                 model_and_tokenizer=(model, tok), candidate_source=cands)
    assert res2.metrics["stopped_early"] == "max_minutes" and res2.metrics["steps"] == 0
    assert (res2.run_dir / "metadata.json").is_file() and (res2.run_dir / "merged" / "config.json").is_file()

    # the budget counts from when the command began (`started_at`): minutes spent before train() was called
    # (loading the graph and the retrieval matcher) leave less of it, and no held-out retrieval is rebuilt
    import time as _time

    model, tok = tiny_random_model(tok)
    res3 = train(graph, tmp_path, _small_cfg(max_minutes=1.0), repo="synth", dataset=ds,
                 model_and_tokenizer=(model, tok), candidate_source=cands, started_at=_time.time() - 50)
    assert res3.metrics["stopped_early"] == "max_minutes" and res3.metrics["steps"] == 0
    assert res3.metrics["fusion_retrieval"].startswith("skipped")
    assert res3.metadata["calibration"]["lm_weight"] is None  # no retrieval to tune the fusion against
    from trainer.config import CPU_LORA_LAYERS

    assert res3.metadata["config"]["lora_layers"] == CPU_LORA_LAYERS  # the default, made concrete for the CPU


def test_a_run_the_budget_cuts_short_still_anneals(graph, cands, tok, tmp_path, monkeypatch):
    """Far more steps planned than the budget allows: the schedule's horizon follows the pace, so the rate decays
    by the deadline instead of stopping near its peak, and never rises again after the warm-up. The trainer's
    clock ticks 150 ms per reading, so the run takes as many steps on a loaded machine as on an idle one."""
    import time as _time

    import trainer.train as tt

    class Clock:
        now = _time.time()

        def time(self):
            Clock.now += 0.15
            return Clock.now

        def __getattr__(self, name):
            return getattr(_time, name)

    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    monkeypatch.setattr(tt, "time", Clock())
    cfg = _small_cfg(epochs=500, max_steps=0, max_minutes=0.25, checkpoint_every=0)
    rates = []
    model, tok = tiny_random_model(tok)
    res = train(graph, tmp_path, cfg, repo="synth", dataset=ds, model_and_tokenizer=(model, tok),
                candidate_source=cands, progress=lambda s, d, t, i: rates.append(i["lr"]) if s == "train" else None)
    assert res.metrics["stopped_early"] == "max_minutes"
    assert 15 <= len(rates) and res.metrics["planned_steps"] > 20 * len(rates), (len(rates), res.metrics["steps"])
    peak = max(rates)
    after = rates[rates.index(peak):]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    # past its peak and down to a tenth: before, a cut run stopped near the peak
    assert rates[-1] <= 0.1 * peak and res.metrics["last_lr"] == rates[-1]


# --- the real smollm2-135m learns ---------------------------------------------------------------------

def _accuracy(model, tok, leaves, held_out=HELD_OUT) -> tuple[float, list[str]]:
    """Top-1 of the held-out texts as `lm` serves them: the constrained decoder scoring every ID of the trie."""
    from inference.decode import ConstrainedDecoder
    from inference.trie import IdTrie

    decoder, trie = ConstrainedDecoder(model, tok), IdTrie(leaves, tok)
    hits, misses = 0, []
    for text, gold in held_out:
        top = decoder.rank(build_prompt(text, "synth"), trie, 1, method="score").ranked[0].module
        hits += top == gold
        if top != gold:
            misses.append(f"{text!r}: {top} (gold {gold})")
    return hits / len(held_out), misses


def test_smollm2_learns_the_synthetic_repository(graph, tmp_path):
    t0 = time.time()
    torch.manual_seed(0)
    model, tok = load_base(DEFAULT_MODEL, CACHE)
    leaves = graph.leaf_ids()
    no_cands = CandidateSource(graph, matcher=FixedMatcher([]))
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps=24, lr=3e-3, lora_r=8, lora_alpha=16, lora_layers=8,
                      variants=3, reasoning_ratio=0.0, candidates_ratio=0.0, max_seq_len=64, eval_rows=5,
                      checkpoint_every=0, threads=0, warmup_steps=3)
    ds = build_dataset(graph, repo="synth", variants_per_source=3, reasoning_ratio=0.0, candidates_ratio=0.0,
                       candidate_source=no_cands)
    before, _ = _accuracy(model, tok, leaves)
    res = train(graph, tmp_path, cfg, repo="synth", dataset=ds, model_and_tokenizer=(model, tok),
                candidate_source=no_cands, publish_run=False)
    after, misses = _accuracy(model, tok, leaves)  # the merged model (train() merges LoRA in place)
    after_zh, _ = _accuracy(model, tok, leaves, HELD_OUT_ZH)  # English-only: for comparison with gemma3-270m
    print(f"\nsmollm2-135m held-out top-1: before {before:.2f}, after {after:.2f}, Chinese {after_zh:.2f}; "
          f"validation {res.metrics['accuracy']:.2f}; loss {res.metrics['train_loss_first']:.3f} -> "
          f"{res.metrics['train_loss_last']:.3f}; {res.metrics['tokens_per_s']} tokens/s; {time.time() - t0:.0f}s; misses: {misses}")
    assert res.metrics["train_loss_last"] < res.metrics["train_loss_first"]
    assert after >= before + 0.3 and after >= 0.8



def test_gemma3_multilingual_base_learns_the_synthetic_repository(graph, tmp_path):
    """The offline multilingual base (Gemma 3 270M from its PyPI chunk packages) loads through the registry, cuts
    Chinese into words, trains with LoRA on the top layers (frozen layers cached) and learns the repository."""
    from inference.models import MULTILINGUAL_MODEL, cached_path

    t0 = time.time()
    torch.manual_seed(0)
    model, tok = load_base(MULTILINGUAL_MODEL, CACHE)
    assert type(model).__name__.startswith("Gemma3") and getattr(model, "hf_quantizer", None) is None
    assert (cached_path(resolve(MULTILINGUAL_MODEL), CACHE) / "config.json").is_file()
    smol = load_tokenizer(DEFAULT_MODEL, CACHE)
    for zh in ("播放歌曲时扬声器没有声音", "数据库表里的记录重启后丢失"):  # words, not bytes: 8 and 7 tokens vs 28 and 20
        assert len(tok(zh, add_special_tokens=False).input_ids) * 2 < len(smol(zh, add_special_tokens=False).input_ids)
    leaves = graph.leaf_ids()
    no_cands = CandidateSource(graph, matcher=FixedMatcher([]))
    cfg = TrainConfig(base_model=MULTILINGUAL_MODEL, epochs=2, batch_size=8, max_steps=24, lr=3e-3, lora_r=8,
                      lora_alpha=16, lora_layers=6, variants=3, reasoning_ratio=0.0, candidates_ratio=0.0,
                      max_seq_len=64, eval_rows=5, checkpoint_every=0, threads=0, warmup_steps=3)
    ds = build_dataset(graph, repo="synth", variants_per_source=3, reasoning_ratio=0.0, candidates_ratio=0.0,
                       candidate_source=no_cands)
    before, _ = _accuracy(model, tok, leaves)
    res = train(graph, tmp_path, cfg, repo="synth", dataset=ds, model_and_tokenizer=(model, tok),
                candidate_source=no_cands, publish_run=False)
    after, misses = _accuracy(model, tok, leaves)
    after_zh, misses_zh = _accuracy(model, tok, leaves, HELD_OUT_ZH)
    print(f"\ngemma3-270m held-out top-1: before {before:.2f}, after {after:.2f}, Chinese {after_zh:.2f}; "
          f"loss {res.metrics['train_loss_first']:.3f} -> {res.metrics['train_loss_last']:.3f}; "
          f"{res.metrics['tokens_per_s']} tokens/s; {time.time() - t0:.0f}s; misses: {misses + misses_zh}")
    assert res.metrics["train_loss_last"] < res.metrics["train_loss_first"]
    assert after >= before + 0.3 and after >= 0.8
    assert after_zh >= 0.8  # Chinese questions reach modules whose code and docs are English
    # served through the lean forward (fp16-packed weights) it ranks as the transformers forward does
    from inference.decode import ConstrainedDecoder
    from inference.trie import IdTrie

    fast, slow = ConstrainedDecoder(model, tok), ConstrainedDecoder(model, tok, fast=False)
    assert fast.fast is not None
    trie = IdTrie(leaves, tok)
    for text, _ in HELD_OUT[:3] + HELD_OUT_ZH[:3]:
        a = slow.rank(build_prompt(text, "synth"), trie, 3, method="beam")
        b = fast.rank(build_prompt(text, "synth"), trie, 3, method="beam")
        assert [x.module for x in a.ranked] == [x.module for x in b.ranked]
        assert all(abs(x.prob - y.prob) < 1e-2 for x, y in zip(a.ranked, b.ranked))


def test_fusion_is_tuned_against_retrieval_that_never_saw_the_validation_changes(graph):
    from trainer.dataset import Row
    from trainer.train import held_out_retrieval

    class Source:
        class matcher:  # noqa: N801 - stands in for a built retrieval matcher
            name = "lexical"

    import copy

    from indexer.records import HistoryExample

    g = copy.copy(graph)
    g.history = list(graph.history) + [HistoryExample("f" * 40, "2026-01-01T00:00:00+00:00", "Fix the audio mixer",
                                                      "", ("audio/mix.c",), ("audio",))]
    val = [Row("p", "c", [g.history[0].modules[0]], "history", f"history|{g.history[0].commit}", "plain")]
    m = held_out_retrieval(g, val, Source())
    assert m is not None and g.history[0].commit not in {h.commit for h in m.graph.history}
    assert len(m.graph.history) == len(g.history) - 1 == 1  # the caller's graph is untouched
    assert held_out_retrieval(g, val, None) is None


def test_lm_calibration_is_fitted_on_the_path_lm_serves(graph, cands, tok):
    """The `lm` calibrator sees what `lm` serves: the plain prompt over every leaf module (not the rows'
    candidate lists); the lm-hybrid fusion is tuned on the candidate prompts."""
    from inference.calibration import expected_calibration_error
    from inference.decode import ConstrainedDecoder
    from inference.prompt import build_prompt
    from inference.trie import IdTrie
    from trainer.train import calibrate_serving

    model, tok = tiny_random_model(tok, seed=4)
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    rows = [r for r in ds.train + ds.val if r.candidates][:12]
    assert rows and all(len(r.candidates) < len(graph.leaf_ids()) for r in rows)
    cal = calibrate_serving(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), retrieval=cands.matcher)
    dec = ConstrainedDecoder(model, tok)
    trie = IdTrie(graph.leaf_ids(), tok)
    tops = [dec.rank(build_prompt(r.text, "synth"), trie, 5).ranked[0] for r in rows]
    ok = [t.module in r.modules for t, r in zip(tops, rows)]
    assert cal["pairs"] == len(rows)
    assert cal["raw_accuracy"] == pytest.approx(sum(ok) / len(ok))
    assert cal["ece_before"] == pytest.approx(expected_calibration_error([t.prob for t in tops], ok), abs=1e-6)
    assert str(len(graph.leaf_ids())) in cal["fitted_on"]
    assert cal["fusion_rows"] == len(rows) and 0.0 <= cal["lm_weight"] <= 1.0
    assert cal["fusion_cv_top1"] <= cal["fusion_top1"]  # the weight picked on the rows it scores is the optimist
    assert cal["fusion_cv_gains"] + cal["fusion_cv_losses"] <= len(rows)


def test_lm_hybrid_is_calibrated_on_the_candidates_it_will_be_shown(graph, cands, tok):
    """With the graph, every validation row is asked as lm-hybrid serves it: the (held-out) retrieval's own answers
    listed in the prompt, not the list the row was made with (by a retrieval that had learned it, with the gold
    slipped in for training rows), and rows made without candidates count too."""
    from trainer.train import calibrate_serving

    model, tok = tiny_random_model(tok, seed=4)
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    allr = ds.train + ds.val
    rows = [r for r in allr if not r.candidates][:4] + [r for r in allr if r.candidates][:8]
    assert len(rows) == 12 and all(set(r.candidates) <= {"ui", "crypto", "storage", *r.modules} for r in rows)
    shown = FixedMatcher(["network", "audio"])
    cal = calibrate_serving(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), retrieval=shown, graph=graph)
    assert cal["fusion_rows"] == len(rows)
    assert cal["retrieval_only_top1"] == pytest.approx(sum("network" in r.modules for r in rows) / len(rows))
    own = calibrate_serving(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), retrieval=shown)
    assert own["fusion_rows"] == 8  # without the graph: the rows' own candidate lists, as before


def test_fusion_cv_picks_the_share_on_other_rows():
    """The in-sample fused top-1 can never fall below retrieval's (weight 0 is on the grid); with the model's
    share chosen on the other fold, a model that only fits noise scores below retrieval, one that helps does not."""
    from trainer.train import fusion_cv

    grid = [0.0, 0.5, 1.0]

    def scores(hits: dict[float, list[bool]]):
        return {w: (sum(h) / len(h), [0.0] * len(h), h) for w, h in hits.items()}

    # retrieval right on rows 0-5 of 8; the model's weight helps on row 6 (even) and hurts on row 1 (odd)
    noise = scores({0.0: [True] * 6 + [False] * 2,
                    0.5: [True, False, True, True, True, True, True, False],
                    1.0: [True, False, True, True, True, True, True, False]})
    in_sample = max(v[0] for v in noise.values())
    cv = fusion_cv(noise, grid)
    assert in_sample == 0.75 and cv["fusion_cv_top1"] == 0.625
    assert (cv["fusion_cv_gains"], cv["fusion_cv_losses"]) == (0, 1)  # row 1 turned wrong; row 6 kept at weight 0
    # a model that fixes retrieval's misses in both folds keeps its gain
    helps = fusion_cv(scores({0.0: [True] * 4 + [False] * 4, 0.5: [True] * 8, 1.0: [True] * 6 + [False] * 2}), grid)
    assert helps == {"fusion_cv_top1": 1.0, "fusion_cv_gains": 4, "fusion_cv_losses": 0}
    # ties go to the smaller share: no gain anywhere means retrieval's own top-1
    flat = fusion_cv(scores({w: [True, False] * 4 for w in grid}), grid)
    assert flat == {"fusion_cv_top1": 0.5, "fusion_cv_gains": 0, "fusion_cv_losses": 0}


def test_serving_verdict_judges_what_is_served():
    from inference.modelstore import serving_verdict

    cal = {"lm_weight": 0.2, "fusion_rows": 80, "retrieval_only_top1": 0.70}
    ok, why = serving_verdict({"calibration": {**cal, "fusion_cv_top1": 0.80, "fusion_cv_gains": 10,
                                               "fusion_cv_losses": 2}})
    assert ok and "10 turned right, 2 turned wrong" in why  # 8 >= 2 * sqrt(12) = 6.9
    ok, why = serving_verdict({"calibration": {**cal, "fusion_cv_top1": 0.75, "fusion_cv_gains": 9,
                                               "fusion_cv_losses": 3}})
    assert not ok and "beyond chance" in why  # 6 < 2 * sqrt(12)
    assert not serving_verdict({"calibration": {**cal, "fusion_cv_top1": 0.725, "fusion_cv_gains": 2,
                                                "fusion_cv_losses": 0}})[0]  # 2 < 2 * sqrt(2) = 2.8
    assert not serving_verdict({"calibration": {**cal, "lm_weight": 0.0, "fusion_cv_top1": 0.70,
                                                "fusion_cv_gains": 0, "fusion_cv_losses": 0}})[0]
    # runs without the fusion's measurement keep their rule (the model alone against retrieval)
    assert serving_verdict({"metrics": {"accuracy": 0.8, "retrieval_accuracy": 0.7}, "calibration": None})[0]
    assert not serving_verdict({"metrics": {"accuracy": 0.6, "retrieval_accuracy": 0.7},
                                "calibration": {"lm_weight": None}})[0]


def test_scoring_after_training_stops_at_the_budget(graph, cands, tok):
    """--max-minutes bounds the whole run: validation and the served calibration stop at their deadline after
    MIN_EVAL_ROWS rows each, and without a deadline score every row."""
    from trainer.train import MIN_EVAL_ROWS, calibrate_serving, evaluate

    model, tok = tiny_random_model(tok, seed=5)
    ds = build_dataset(graph, repo="synth", variants_per_source=3, candidate_source=cands)
    rows = [r for r in ds.train + ds.val if r.candidates]
    assert len(rows) > MIN_EVAL_ROWS + 5
    past = time.time() - 1
    late = evaluate(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), cands=cands, deadline=past)
    full = evaluate(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), cands=cands)
    assert late["rows"] == MIN_EVAL_ROWS and full["rows"] == len(rows)
    cal = calibrate_serving(model, tok, rows, graph.leaf_ids(), max_rows=len(rows), retrieval=cands.matcher,
                            deadline=past)
    assert cal["pairs"] == MIN_EVAL_ROWS and cal["fusion_rows"] == MIN_EVAL_ROWS


def test_frozen_prefix_cache_gives_the_same_loss_and_gradients(tok):
    """With LoRA on the top layer only, the cached lower layers give the loss and LoRA gradients of a full pass."""
    from trainer.train import FrozenPrefix, add_lora, collate, completion_loss, encode_row

    model, tok = tiny_random_model(tok, layers=3)
    cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1)
    model = add_lora(model, cfg)
    model.train()
    prefix = FrozenPrefix.maybe(model, cfg, "cpu")
    assert prefix is not None and prefix.first == 2
    assert FrozenPrefix.maybe(model, cfg.replace(cache_frozen=False), "cpu") is None
    rows = [encode_row(tok, p, c, 64) for p, c in [("Where is the wav decoder?", "audio"),
                                                   ("TLS handshake fails on reconnect", "network/tls"),
                                                   ("the db migration is slow", "storage/db")]]
    params = [p for p in model.parameters() if p.requires_grad]
    for attempt in range(2):  # the second pass reads the cache
        batch = collate(rows, tok.pad_token_id, "cpu")
        full = completion_loss(model, batch)
        g_full = torch.autograd.grad(full, params)
        cached = prefix.loss([0, 1, 2], batch)
        g_cached = torch.autograd.grad(cached, params)
        assert abs(float(full.detach()) - float(cached.detach())) < 2e-3
        assert max(float((a - b).abs().max()) for a, b in zip(g_full, g_cached)) < 5e-3
        assert sum(float(g.abs().sum()) for g in g_cached) > 0
    assert len(prefix.rows) == 3 and prefix.used > 0
    # the model's own layers are back in place after a cached step
    assert not any(type(layer).__name__ == "_PassThrough" for layer in prefix.layers)
    # under bf16 autocast too (the CPU trainer's mode where the CPU has native bf16): the cache reads back what a
    # full bf16 pass computes, within bf16's precision
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = float(completion_loss(model, batch).detach())
        fresh = FrozenPrefix.maybe(model, cfg, "cpu")
        first, again = (float(fresh.loss([0, 1, 2], batch).detach()) for _ in range(2))
    assert len(fresh.rows) == 3 and abs(first - full) < 0.05 and abs(again - full) < 0.05


def test_a_bf16_run_on_the_cpu_caches_the_frozen_layers(graph, cands, tok, tmp_path):
    """A CPU with native bf16 trains under bf16 autocast: its later epochs still skip the frozen layers."""
    ds = build_dataset(graph, repo="synth", variants_per_source=2, candidate_source=cands)
    model, tok = tiny_random_model(tok, layers=3)
    cfg = _small_cfg(bf16="yes", lora_layers=1, epochs=2, max_steps=0, checkpoint_every=0)
    res = train(graph, tmp_path, cfg, repo="synth", dataset=ds, model_and_tokenizer=(model, tok),
                candidate_source=cands, publish_run=False)
    assert res.metrics["frozen_cache_rows"] == len(ds.train) and res.metrics["frozen_cache_mb"] > 0


def test_batch_in_pieces_gives_the_batch_gradients(tok):
    """A batch run in pieces of a few tokens (`micro_tokens`) adds up to the loss and LoRA gradients of the whole
    batch at once, with and without the frozen-layer cache, although its rows' completions differ in length."""
    from trainer.train import FrozenPrefix, _pieces, batch_backward

    model, tok = tiny_random_model(tok, layers=3)
    cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1)
    model = add_lora(model, cfg)
    model.train()
    rows = [encode_row(tok, p, c, 64) for p, c in [("Where is the wav decoder?", "audio"),
                                                   ("TLS handshake fails on reconnect", "network/tls, storage/db"),
                                                   ("the db migration is slow", "storage/db"),
                                                   ("keys rotate too rarely", "crypto")]]
    params = [p for p in model.parameters() if p.requires_grad]
    longest = max(len(i) for i, _ in rows)
    assert len(_pieces([0, 1, 2, 3], {i: len(r[0]) for i, r in enumerate(rows)}, longest)) == 4
    assert _pieces([0, 1, 2, 3], {i: 9 for i in range(4)}, 0) == [[0, 1, 2, 3]]

    def grads(micro_tokens, prefix=None):
        for p in params:
            p.grad = None
        loss, n = batch_backward(model, rows, [0, 1, 2, 3], tok.pad_token_id, "cpu", prefix=prefix,
                                 micro_tokens=micro_tokens, scale=0.5)
        return loss, n, [p.grad.clone() for p in params]

    whole, n_whole, g_whole = grads(0)
    at_once = completion_loss(model, collate(rows, tok.pad_token_id, "cpu")).detach()
    assert whole == pytest.approx(0.5 * float(at_once), rel=1e-4)
    for prefix in (None, FrozenPrefix.maybe(model, cfg, "cpu")):
        piece, n_piece, g_piece = grads(longest, prefix)
        assert piece == pytest.approx(whole, rel=2e-3) and n_piece <= n_whole
        assert max(float((a - b).abs().max()) for a, b in zip(g_whole, g_piece)) < 5e-3
        assert sum(float(g.abs().sum()) for g in g_piece) > 0


def test_gradient_checkpointing_keeps_the_loss_and_gradients(tok):
    """`grad_checkpoint` recomputes each layer's activations in the backward pass instead of keeping them: the
    loss and LoRA gradients are those of the plain backward, with and without the frozen-layer cache."""
    from trainer.train import FrozenPrefix, batch_backward

    rows = [encode_row(tok, p, c, 64) for p, c in [("Where is the wav decoder?", "audio"),
                                                   ("TLS handshake fails on reconnect", "network/tls, storage/db")]]
    results = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        model, tok = tiny_random_model(tok, layers=3)
        cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=2, grad_checkpoint=checkpoint)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model = add_lora(model, cfg)
        assert not [w for w in seen if issubclass(w.category, FutureWarning)]  # nothing deprecated reaches users
        model.train()
        base = model.get_base_model()
        on = base.is_activation_checkpointing if hasattr(base, "is_activation_checkpointing") \
            else base.is_gradient_checkpointing
        assert on is checkpoint
        for p in model.parameters():
            if p.requires_grad:  # LoRA's B starts at zero: give it values so every LoRA weight gets a gradient
                torch.nn.init.normal_(p, std=0.02)
        params = [p for p in model.parameters() if p.requires_grad]
        out = []
        for prefix in (None, FrozenPrefix.maybe(model, cfg, "cpu")):
            for p in params:
                p.grad = None
            loss, _ = batch_backward(model, rows, [0, 1], tok.pad_token_id, "cpu", prefix=prefix, micro_tokens=0)
            out.append((loss, [p.grad.clone() for p in params]))
        results.append(out)
    for (plain_loss, plain_g), (ckpt_loss, ckpt_g) in zip(*results):
        assert ckpt_loss == pytest.approx(plain_loss, rel=1e-5)
        assert all(float(g.abs().sum()) > 0 for g in plain_g)
        assert max(float((a - b).abs().max()) for a, b in zip(plain_g, ckpt_g)) < 1e-5
