"""The module graph, end to end, on real git repositories made in temp folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import build as build_mod
from indexer.build import index, refresh
from indexer.config import parse_config
from indexer.errors import ConfigError, IndexerError, NotIndexedError, SourceError
from indexer.modules import ROOT_ID
from indexer.parse import parse_file
from indexer.store import Store
from conftest import GitRepo

FIXTURES = Path(__file__).parent / "fixtures" / "langs"

# one module per language family, made from the per-language fixtures
LAYOUT = {
    "audio": ["sample.c", "sample.h"],
    "gpu": ["sample.cpp"],
    "ios": ["sample.m", "sample.swift"],
    "core": ["sample.py"],
    "server": ["sample.go"],
    "android": ["sample.java", "sample.kt"],
    "web": ["sample.js", "sample.ts", "sample.tsx"],
    "engine": ["sample.rs"],
}


def polyglot_files() -> dict[str, str]:
    files = {}
    for folder, names in LAYOUT.items():
        for n in names:
            files[f"{folder}/{n}"] = (FIXTURES / n).read_text()
    files["README.md"] = "# Demo\n\nA demo repository with many languages.\n"
    files["audio/README.md"] = "# Audio\n\nThe audio backend: ring buffers, resampling and mixing of PCM streams.\n"
    files["core/util.py"] = '"""Shared helpers."""\n\ndef clamp(x, lo, hi):\n    """Clamp x."""\n    return max(lo, min(hi, x))\n'
    files["server/handler.py"] = "from core import util\nfrom core.util import clamp\n\ndef handle(x):\n    return clamp(x, 0, 1)\n"
    files["gpu/render.c"] = '#include "audio/sample.h"\n#include <stdio.h>\n\nvoid render(void) {}\n'
    return files


def store_for(tmp_path: Path, name: str = "db") -> Store:
    return Store(tmp_path / f"{name}.sqlite")


def test_descriptions_skip_badges_pragmas_and_dead_code(git_repo, tmp_path):
    """What vuejs/core and xxl-job showed: a README heading of badges, tool pragmas and commented-out code stood
    first in their modules' descriptions ("![npm](https://...)", "@vitest-environment jsdom eslint-disable ...",
    "package com.xxl...; import ...")."""
    git_repo.commit("initial import", {
        "README.md": "# demo [![npm](https://img.shields.io/npm/v/demo.svg)](https://npmjs.com/demo) "
                     "[![ci](https://x/badge.svg)](https://x)\n\nA demo of reactive [state](https://demo.dev) for "
                     "single page applications.\n",
        "dom/index.ts": "/* eslint-disable no-restricted-globals */\n// @vitest-environment jsdom\n"
                        "// Renders virtual nodes into the browser DOM.\nexport function render(): void {}\n",
        "jobs/CookieUtil.java": "//package com.demo.jobs;\n//\n//import java.util.Map;\n//public class Old {\n//}\n"
                                "public class CookieUtil {}\n",
        "jobs/Cleaner.java": "/**\n * Created by dev on 17/5/10.\n */\npublic class Cleaner {}\n",
        # ripgrep: an issue template's YAML front matter described `.github` ("name: Feature request about: ...")
        ".github/ISSUE_TEMPLATE/feature_request.md": "---\nname: Feature request\nabout: Suggest a feature\n---\n\n"
                                                     "Describe the feature you would like to see added here.\n",
        ".github/workflows/test.yml": "name: 'Tests'\non: [push]\njobs: {}\n",
        ".github/workflows/docs.yaml": "on: [push]\njobs: {}\n",
        "scripts/copy-examples": "cp -r examples /tmp\n",
    })
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    root = g.modules[ROOT_ID].description
    assert root.startswith("A demo of reactive state for single page applications"), root
    assert "![" not in root and "https://" not in root
    assert g.modules["dom"].description.startswith("Renders virtual nodes into the browser DOM."), g.modules["dom"]
    jobs = g.modules["jobs"].description
    assert "package" not in jobs and "import" not in jobs and "Created by" not in jobs, jobs
    # `.github` says what it holds, not its templates' words ("Describe the feature …" read like every request)
    assert g.modules[".github"].description == "GitHub settings: CI workflows (docs, Tests); issue templates.", \
        g.modules[".github"].description
    assert g.modules["scripts"].description == "Holds copy-examples."  # not "1 files" beside the tree's "1 files"


def test_descriptions_skip_banners_settings_scaffolds_and_decompiler_notes(git_repo, tmp_path):
    """What alibaba/arthas showed: its modules were described by an ASCII-art logo, a commented-out setting
    ("arthas.config.overrideAll=true"; then "seconds", the unit a comment below gives a setting), a Vue CLI README
    ("Compiles and hot-reloads for development"), a TypeScript reference directive and IntelliJ's decompiler note;
    jumpserver's root by its README's menu of translations ("English · 中文(简体) · 日本語 …"); SDWebImage's Xcode
    projects by the encoding marker atop every project.pbxproj ("!$*UTF8*$!"); emqx's `.ci` by a pip requirements
    file ("arrow==1.2.3 --hash=sha256:…") and a test cluster's folder by its public key; AntennaPod's `gradle` by the
    date atop its wrapper's properties; Jekyll's `docs/_data` by a ruler of dashes; Sa-Token's root by what its README
    had commented out ("--> --> 学习测试请拉取 master 分支") and its exceptions by Javadoc's markup ("<p> … </p>")."""
    logo = "  ,---.  ,------. ,--------.\n /  O  \\ |  .--. ''--.  .--'\n|  .-.  ||  '--'.'   |  |\n"
    git_repo.commit("initial import", {
        "res/logo.txt": logo,
        "README.md": "# tool\n\n<!-- <a href=\"x\"><img src=\"y.svg\"></a> -->\n<!-- <p align=\"center\">Clone the "
                     "master branch to learn and test</p> -->\nEnglish · [中文(简体)](README_zh.md) · [日本語](README_ja.md)\n\nA diagnostic tool for "
                     "running services.\n",
        "conf/app.properties": "#app.config.overrideAll=true\nserver.port=8080\n\n# seconds\nsession.timeout=10800\n",
        "conf/extra.properties": "# Overrides the defaults of the agent when it attaches.\n#app.mode=fast\nx=1\n",
        "ui/README.md": "# ui\n\n## Project setup\n```\nnpm install\n```\n\n### Compiles and hot-reloads for "
                        "development\n```\nnpm run serve\n```\n\n### Lints and fixes files\n```\nnpm run lint\n```\n",
        "ui/env.d.ts": '/// <reference types="vite/client" />\n',
        "ui/main.ts": "export function mount(): void {}\n",
        "App.xcodeproj/project.pbxproj": "// !$*UTF8*$!\n{\n\tarchiveVersion = 1;\n\tobjectVersion = 54;\n}\n",
        "lint/gitlint.requirements.txt": "arrow==1.2.3 \\\n    --hash=sha256:5a49ab92e3b7b71d96cd6bfcc4df14efefc9dfa9\n",
        "keys/cluster_public_key.txt": "PrxbCTr+6Uj5IU7hAtAdljH03c3xLVbca4uxICaIISCc=\n",
        "keys/notes.txt": "Keys for the cluster tests, made with make-keys.sh.\n",
        "util/Checks.java": "//\n// Source code recreated from a .class file by IntelliJ IDEA\n// (powered by Fernflower "
                            "decompiler)\n//\n\n/** Checks of arguments. */\npublic class Checks {}\n",
        # chatgpt-on-wechat's `channel`: the README of one of its chat apps is no description of them all
        "channel/channel.py": "class Channel:\n    pass\n",
        "channel/feishu/README.md": "# Feishu\n\nThe Feishu channel receives events by webhook or long connection. "
                                    "Configure the app id in config.json.\n",
        "channel/feishu/feishu.py": "def feishu_send():\n    pass\n",
        "channel/dingtalk/dingtalk.py": "def dingtalk_send():\n    pass\n",
        "channel/web/web.py": "def web_send():\n    pass\n",
        "docs/guide/README.md": "# Guide\n\nHow to install the tool and run it as a service.\n",
        "docs/guide/install.md": "# Install\n",
        "gradle/wrapper/gradle-wrapper.properties": "#Sun Aug 17 17:07:23 CEST 2025\ndistributionBase=GRADLE_USER_HOME\n",
        "data/filters.yml": "#\n# ----------------------------------------\n# List of the filters the docs describe.\n#\n"
                            "- name: slugify\n",
        "exc/ApiDisabledException.java": "/**\n * An exception: the API is disabled\n *\n * <p> Thrown when a {@link "
                                         "Store} method is called after the jwt module took over &lt;T&gt; </p>\n */\n"
                                         "public class ApiDisabledException extends RuntimeException {}\n",
        # vnpy's `docs/community`: a Sphinx index that is only a toctree, beside pages that say what they are
        "book/index.rst": "Community\n~~~~~~~~~\n\n.. toctree::\n   :maxdepth: 2\n\n   info/index\n",
        "book/info/intro.md": "# Introduction\n\nA framework for writing trading programs in Python, from the data to "
                              "the orders.\n",
        "book/info/faq.md": "# FAQ\n\nQuestions people ask about installing it.\n",
        # vnpy's `docs/elite`: "Holds elite_algotrading.md, elite_algotrading.md"
        # fzf's `shell`: a logo atop each script, its last line the script's name ("/_/   /___/_/ completion.nu")
        "shell/completion.nu": "#     ____      ____\n#    / __/___  / __/\n#  / __/ / /_/ __/\n# /_/   /___/_/ "
                               "completion.nu\n#\n# Example completers for the Nushell integration.\n\nexport def x [] {}\n",
        # Excalidraw's packages/common: a README that only says how to install it and under which license
        "pkgs/util/README.md": "# @x/util\n\n## Install\n\n```bash\nnpm i @x/util\n```\n\nIf you prefer Yarn over npm, "
                               "use this command to install the utils package:\n\n### With pnpm\n\nThe same with pnpm "
                               "works as well, of course.\n\n## License\n\nMIT licensed, see the LICENSE file.\n",
        "pkgs/util/index.ts": "export function clamp(): void {}\n",
        # pandoc's README: badges whose alt text breaks over lines
        "conv/README.md": "# Conv\n\n[![github\nrelease](https://img.shields.io/r.svg?label=current+release)](https://"
                          "github.com/o/r/releases)\n[![CI\ntests](https://x/badge.svg)](https://x/actions)\n\nThe "
                          "universal markup converter for documents.\n",
        "conv/main.py": "def convert():\n    pass\n",
        "runs/x/run.sh": "set -e\nmake\n", "runs/y/run.sh": "set -e\nmake test\n", "runs/y/clean.sh": "rm -rf out\n",
    })
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    assert g.modules["res"].description == "Holds logo.txt.", g.modules["res"].description
    assert g.modules["App.xcodeproj"].description == "Holds project.pbxproj.", g.modules["App.xcodeproj"].description
    assert g.modules["lint"].description == "Holds gitlint.requirements.txt.", g.modules["lint"].description
    assert g.modules["keys"].description.startswith("Keys for the cluster tests"), g.modules["keys"].description
    assert g.modules[ROOT_ID].description.startswith("A diagnostic tool"), g.modules[ROOT_ID].description
    assert g.modules["conf"].description.startswith("Overrides the defaults of the agent"), g.modules["conf"]
    ui = g.modules["ui"].description
    assert "hot-reloads" not in ui and "reference" not in ui and "mount" in ui, ui
    util = g.modules["util"].description
    assert "IntelliJ" not in util and "Fernflower" not in util and util.startswith("Checks of arguments"), util
    channel = g.modules["channel"].description
    assert channel.startswith("feishu: The Feishu channel receives events") and "config.json" not in channel, channel
    assert g.modules["docs"].description.startswith("How to install the tool"), g.modules["docs"].description
    assert g.modules["gradle"].description == "Holds gradle-wrapper.properties.", g.modules["gradle"].description
    assert g.modules["data"].description.startswith("List of the filters"), g.modules["data"].description
    assert "-->" not in g.modules[ROOT_ID].description and "Clone" not in g.modules[ROOT_ID].description
    assert g.modules["book"].description == "Questions people ask about installing it.", g.modules["book"].description
    assert g.modules["runs"].description == "Holds clean.sh, run.sh.", g.modules["runs"].description
    assert g.modules["shell"].description == "Example completers for the Nushell integration.", g.modules["shell"]
    assert g.modules["pkgs"].description == "Defines clamp.", g.modules["pkgs"].description
    assert g.modules["conv"].description.startswith("The universal markup converter"), g.modules["conv"].description
    exc = g.modules["exc"].description
    assert exc.startswith("An exception: the API is disabled Thrown when a Store method is called after the jwt module "
                          "took over <T>"), exc


def test_polyglot_modules_symbols_and_edges(git_repo, tmp_path):
    git_repo.commit("initial import", polyglot_files())
    res = index(git_repo.root, store_for(tmp_path), full=True)
    g = res.graph
    assert set(LAYOUT) <= set(g.modules)
    assert ROOT_ID in g.modules and g.modules["audio"].parent == ROOT_ID
    for folder in LAYOUT:
        m = g.modules[folder]
        assert m.symbols, f"no symbols found in {folder}"
        assert m.description
        assert m.keywords
    langs = {}
    for folder, names in LAYOUT.items():
        for n in names:
            langs[n] = {s.path for s in g.modules[folder].symbols}
    assert all(any(p.endswith(n) for p in paths) for n, paths in langs.items()), langs
    # description comes from the folder's README first
    assert g.modules["audio"].description.startswith("The audio backend")
    # dependencies from resolved imports / includes, weighted by count
    deps = dict(g.dependencies("server"))
    assert deps.get("core") == 2
    assert dict(g.dependencies("gpu")).get("audio") == 1
    assert ("core", 2) in g.dependents("core") or ("server", 2) in g.dependents("core")
    # the keyword dictionary points back to modules
    assert any("audio" in mods for mods in g.keyword_index.values())
    # node-link JSON round trip
    data = g.to_json()
    assert {"nodes", "links"} <= set(data)
    again = type(g).from_json(json.loads(json.dumps(data)))
    assert again.version == g.version


def test_csharp_ruby_php_and_scala_give_symbols_and_dependency_edges(git_repo, tmp_path):
    """The four later grammars, end to end: each module's symbols, and an edge for each language's own way of naming
    another file (a C# namespace, a Ruby require, a PHP `use` of a PSR-4 class, a Scala import)."""
    files = {f"{folder}/{n}": (FIXTURES / n).read_text()
             for folder, n in [("dotnet", "sample.cs"), ("rails", "sample.rb"), ("shop", "sample.php"),
                               ("actors", "sample.scala")]}
    files["handlers/Acme.Http/Handlers/Retry.cs"] = "namespace Acme.Http.Handlers { public class Retry { } }\n"
    files["rack/lib/rack/utils.rb"] = "module Rack\n  module Utils\n    def self.escape(s) = s\n  end\nend\n"
    files["rails/support/helpers.rb"] = "def helper = 1\n"
    files["contracts/Contracts/Cache/Store.php"] = "<?php\nnamespace Acme\\Contracts\\Cache;\ninterface Store {}\n"
    files["akka-util/src/main/scala/akka/util/Timeout.scala"] = "package akka.util\ncase class Timeout(ms: Long)\n"
    git_repo.commit("initial import", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    names = {mid: {s.name for s in g.modules[mid].symbols} for mid in ("dotnet", "rails", "shop", "actors")}
    assert {"RequestRunner", "SendAsync", "IRunner"} <= names["dotnet"]
    assert {"RouteSet", "draw", "print_routes"} <= names["rails"]
    assert {"Repository", "Macroable", "cache_repository"} <= names["shop"]
    assert {"Router", "select", "RoundRobin"} <= names["actors"]
    assert dict(g.dependencies("dotnet")) == {"handlers": 1}
    assert dict(g.dependencies("rails")) == {"rack": 1}  # rails/support/helpers.rb is its own file: no edge
    assert dict(g.dependencies("shop")) == {"contracts": 1}
    assert dict(g.dependencies("actors")) == {"akka-util": 1}


def index_parsed(git_repo, tmp_path, files: dict[str, str]):
    """Commit `files`, index them, check that every code file had a grammar: -> (graph, {symbol name: module})."""
    git_repo.commit("initial import", files)
    res = index(git_repo.root, store_for(tmp_path), full=True)
    assert not any("without a grammar" in n for n in res.notes)
    return res.graph, {s.name: mid for mid, m in res.graph.modules.items() for s in m.symbols}


def test_elixir_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """An Elixir project, end to end: each module's symbols with their @doc / @moduledoc, the module's description
    from them, and an edge from an `alias` to the module that defines the aliased name."""
    files = {"channels/lib/acme/channel.ex": (FIXTURES / "sample.ex").read_text(),
             "wire/lib/acme/socket/message.ex": 'defmodule Acme.Socket.Message do\n  @moduledoc "A message on the wire."\n'
                                           "  defstruct [:topic, :payload]\nend\n",
             "routing/lib/acme/router.ex": "defmodule Acme.Router do\n  def route(path), do: path\nend\n",
             "mix.exs": "defmodule Acme.MixProject do\n  use Mix.Project\n  def project, do: [app: :acme]\nend\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"Acme.Channel", "join", "push", "Acme.Serializer", "Acme.Socket.Message", "route"} <= set(owner)
    chan, msg = owner["Acme.Channel"], owner["Acme.Socket.Message"]
    assert chan != msg and dict(g.dependencies(chan)).get(msg) == 1
    doc = {s.name: s.doc for s in g.modules[chan].symbols}
    assert doc["join"] == "Join a topic with its parameters."
    assert g.modules[msg].description.startswith("A message on the wire.")  # no header comment: its @moduledoc


def test_lua_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """A Lua application, end to end: its classes, methods and functions with their LDoc comments, and an edge for
    a `require` of another module's file."""
    files = {"frontend/ui/widget/button.lua": (FIXTURES / "sample.lua").read_text(),
             "frontend/ui/widget/container/inputcontainer.lua":
                 "--- Handles taps.\nlocal InputContainer = {}\nfunction InputContainer:onTap() end\n"
                 "return InputContainer\n",
             "plugins/wiki.koplugin/main.lua": 'local Button = require("ui/widget/button")\n'
                                               "local function lookupWord(w) return Button end\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"Button", "init", "fromSpec", "onTap", "lookupWord"} <= set(owner)
    assert owner["lookupWord"] != owner["init"]
    assert dict(g.dependencies(owner["lookupWord"])).get(owner["init"]) == 1
    assert {s.name: s.doc for s in g.modules[owner["init"]].symbols}["init"] == "Lay the button out."


def test_dart_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """A Dart repository of two packages (as cfug/dio lays them out), end to end: classes, mixins and methods
    with their dartdoc, and edges for a `package:` import of another package's library and for a library's `export` of its own src/ file."""
    files = {"flame/lib/src/sprite_batch.dart": (FIXTURES / "sample.dart").read_text(),
             "flame/lib/components.dart": "export 'src/sprite_batch.dart';\nexport 'src/anchor.dart';\n",
             "flame/lib/src/anchor.dart": "/// Where a component is pinned.\nclass Anchor {}\n",
             "flame_tiled/lib/src/tiled_component.dart":
                 "import 'package:flame/components.dart';\nimport 'package:flutter/widgets.dart';\n\n"
                 "/// A map made in Tiled.\nclass TiledComponent extends SpriteBatch {\n"
                 "  /// Renders the map's layers.\n  void renderTree() {}\n}\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"SpriteBatch", "HasGameRef", "add", "Anchor", "TiledComponent", "renderTree"} <= set(owner)
    tiled, flame = owner["TiledComponent"], owner["SpriteBatch"]
    assert tiled != flame
    assert dict(g.dependencies(tiled)).get(owner["SpriteBatch"]) == 1  # flutter's widgets.dart is no file here
    assert {s.name: s.doc for s in g.modules[tiled].symbols}["renderTree"] == "Renders the map's layers."


def test_zig_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """A Zig program, end to end: containers and functions with their doc comments, the methods of a generic
    type, and edges for a relative `@import` and for a build.zig package imported by name."""
    files = {"io/io.zig": (FIXTURES / "sample.zig").read_text(),
             "vsr.zig": "//! Viewstamped replication.\n/// A replica of the cluster.\npub const Replica = struct {};\n",
             "stdx/stdx.zig": "//! What the standard library lacks.\npub fn maybe(ok: bool) void {\n    _ = ok;\n}\n",
             "lsm/tree.zig": 'const stdx = @import("stdx");\nconst IO = @import("../io/io.zig").IO;\n\n'
                                 "/// Compacts the levels.\npub fn compact() void {}\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"IO", "flush", "TreeType", "lookup", "Replica", "maybe", "compact"} <= set(owner)
    assert len({owner["IO"], owner["Replica"], owner["maybe"], owner["compact"]}) == 4
    assert dict(g.dependencies(owner["compact"])) == {owner["IO"]: 1, owner["maybe"]: 1}
    assert dict(g.dependencies(owner["IO"])) == {owner["Replica"]: 1, owner["maybe"]: 1}  # `std` is no file
    assert {s.name: s.doc for s in g.modules[owner["lookup"]].symbols}["lookup"] == "Looks a key up."


def test_haskell_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """A Haskell library, end to end: types, classes and functions with their Haddock comments, and an edge for a
    module imported by its dotted name."""
    files = {"src/Acme/Writers/Report.hs": (FIXTURES / "sample.hs").read_text(),
             "src/Acme/Class.hs": "-- | The monad every writer runs in.\nmodule Acme.Class where\n\n"
                                  "-- | Effects a writer needs.\nclass Monad m => AcmeMonad m where\n"
                                  "  -- | Read a file.\n  readFileStrict :: FilePath -> m ByteString\n",
             "app/Main.hs": "module Main where\n\nimport Acme.Writers.Report (writeReport)\n\n"
                            "-- | The command line.\nmain :: IO ()\nmain = pure ()\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"writeReport", "ReportState", "AcmeMonad", "readFileStrict", "main"} <= set(owner)
    assert owner["main"] != owner["writeReport"]
    assert dict(g.dependencies(owner["main"])).get(owner["writeReport"]) == 1
    assert {s.name: s.doc for s in g.modules[owner["readFileStrict"]].symbols}["readFileStrict"] == "Read a file."


def test_ocaml_gives_symbols_docs_and_dependency_edges(git_repo, tmp_path):
    """An OCaml project, end to end: an implementation and its interface, whose doc comments are read, and an edge
    for an `open` of another library's module, found by its file's name."""
    files = {"src/rules/build.ml": (FIXTURES / "sample.ml").read_text(),
             "src/rules/build.mli": (FIXTURES / "sample.mli").read_text(),
             "otherlibs/stdune/stdune.ml":
                 "(** The standard library, extended. *)\n\n(** A path. *)\nmodule Path = struct end\n",
             "app/main.ml": "open Stdune\n\n(** The command line. *)\nlet main () = ()\n"}
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"compile", "Archive", "Path", "main"} <= set(owner)
    assert len({owner["compile"], owner["Path"], owner["main"]}) == 3
    assert dict(g.dependencies(owner["main"])).get(owner["Path"]) == 1
    assert dict(g.dependencies(owner["compile"])).get(owner["Path"]) == 2  # the .ml and the .mli open it
    assert {s.name: s.doc for s in g.modules[owner["main"]].symbols}["main"] == "The command line."


def test_code_without_a_grammar_is_read_as_text_and_said_in_the_notes(git_repo, tmp_path):
    """A repository written mostly in a language with no grammar here is still indexed, module by module,
    and the index says that its symbols are missing; a few such scripts beside parsed code are no news."""
    files = {f"game/ai_{i}.erl": f"%% enemy behaviour {i}\n-module(ai_{i}).\nchase_player(E) -> E.\n"
             for i in range(24)}
    files["tools/build.py"] = "def main():\n    pass\n"
    git_repo.commit("initial", files)
    res = index(git_repo.root, store_for(tmp_path), full=True)
    note = next(n for n in res.notes if "without a grammar" in n)
    assert note.startswith("24 of 25 code files") and "Erlang 24" in note
    assert "game" in res.graph.modules and len(res.graph.modules["game"].files) == 24
    git_repo.commit("one more enemy", {"game/ai_boss.erl": "-module(ai_boss).\nboss(E) -> E.\n"})
    assert not any("without a grammar" in n for n in refresh(git_repo.root, store_for(tmp_path)).notes)  # said once

    git_repo.commit("more python", {f"tools/t{i}.py": f"def tool_{i}():\n    pass\n" for i in range(300)})
    res = index(git_repo.root, store_for(tmp_path), full=True)
    assert not any("without a grammar" in n for n in res.notes)  # 24 of 325: a few scripts


def test_formatting_commits_are_dropped_but_a_feature_that_prettifies_is_not():
    """alibaba/arthas's prettier action commits "Prettified Code!" after doc edits (29 times): formatting, like
    "Run clang-format"; "hardware: prettify config output" (Homebrew) is a feature, and so is a subject that begins
    with "Format" and says what it formats ("raft: Format node IDs as hex")."""
    from indexer.history import drop_reason

    for subject in ("Prettified Code!", "Dockerfile: autoformat.", "terminalwriter: auto-format", "Run clang-format",
                    "Formatting (#23053)", "Format source code", "format nits", "chore: format build_loop.ml",
                    "run black on test_source_multiline_block.py", "Black formatting.", "formatting. add proxy",
                    "Whitespace", "signal: Run rustfmt 0.4.2"):
        assert drop_reason(subject, "dev", "dev@example.com", 1, 5) == "formatting", subject
    # features whose subject begins with the word (etcd, dune, tigerbeetle, koreader), kept in the history
    for subject in ("hardware: prettify config output on 6/8-core CPUs", "Prettify the code listing of the docs",
                    "raft: Format node IDs as hex in DescribeMessage.", "Format printenv output (#1867)",
                    "black box tests for .install file generation", "format: format superblock after wal",
                    "fix: format error should not trigger circuit breaker in sqlx (#3437)",
                    "ReaderCropping: prettier bottom buttons (#6900)"):
        assert drop_reason(subject, "dev", "dev@example.com", 1, 5) is None, subject


def test_history_of_a_vanished_subfolder_does_not_teach_the_module_left_behind(git_repo, tmp_path):
    """alibaba/arthas rewrote its documentation sources `site/src/site` elsewhere; 308 past changes to them mapped
    to `site`, which now holds a few build files, so `site` answered documentation questions it has nothing to do
    with. A module whose changes through vanished folders alone outnumber its other changes no longer counts them;
    a module that lost a subfolder among many changes of its own keeps them."""
    code = {f"core/engine{i}.py": f"def run_{i}():\n    return {i}\n" for i in range(4)}
    git_repo.commit("initial", {"site/package.json": '{"name": "site"}\n', "site/src/site/index.md": "# Docs\n",
                                "core/old/legacy.py": "def legacy():\n    pass\n", **code,
                                "docs/guide.md": "# Guide\n"})
    for i in range(12):
        git_repo.commit(f"docs: explain the watch command, part {i}", {f"site/src/site/page{i}.md": f"# Page {i}\n"})
    for i in range(3):
        git_repo.commit(f"legacy engine fix {i}", {"core/old/legacy.py": f"def legacy():\n    return {i}\n"})
    for i in range(6):
        git_repo.commit(f"engine: faster run {i}", {"core/engine0.py": f"def run_0():\n    return {i}\n"})
    git_repo.commit("site: bump the site builder", {"site/package.json": '{"name": "site", "v": 2}\n'})
    git_repo.commit("remove the old docs and the legacy engine",
                    delete=[f"site/src/site/page{i}.md" for i in range(12)] + ["site/src/site/index.md",
                                                                              "core/old/legacy.py"])
    res = index(git_repo.root, store_for(tmp_path), full=True)
    by_subject = {h.subject: h.modules for h in res.graph.history}
    assert "site" in res.graph.modules and "core" in res.graph.modules
    assert not any(s.startswith("docs: explain the watch command") for s in by_subject)
    assert by_subject["site: bump the site builder"] == ("site",)
    assert by_subject["legacy engine fix 0"] == ("core",)  # 3 changes through core/old against core's 7 others
    assert any("no longer counts for site (13 changes)" in n for n in res.notes), res.notes


def test_history_of_a_ci_pipeline_that_moved_teaches_where_ci_lives_now(git_repo, tmp_path):
    """SDWebImage ran its CI on Travis (`.travis.yml` at the root, 77 changes) until it moved to GitHub Actions, so
    the root learned every CI word and "[github action] Bumped to macos-14" was answered `(root)` at 71 %, `.github`
    third. A past change to a pipeline that no longer exists counts for the module where the repository's CI lives
    today; a pipeline that still exists, and a template's `.travis.yml` below the code, keep their modules."""
    git_repo.commit("initial", {"README.md": "# imagekit\n", "src/cache.m": "void cache(void) {}\n",
                                "src/decode.m": "void decode(void) {}\n", "src/download.m": "void download(void) {}\n",
                                ".travis.yml": "language: objective-c\nosx_image: xcode9\n",
                                "src/stubs/.travis.yml": "language: objective-c\n"})
    for i in range(4):
        git_repo.commit(f"Travis CI: use the Xcode {10 + i} image", {".travis.yml": f"language: objective-c\nosx_image: xcode{10 + i}\n"})
    git_repo.commit("Stub pipeline for new plugins", {"src/stubs/.travis.yml": "language: objective-c\nscript: make\n"})
    git_repo.commit("Release notes for 2.0", {"README.md": "# imagekit\n\n2.0\n"})
    git_repo.commit("apply github actions", {".github/workflows/CI.yml": "name: CI\non: push\njobs:\n  test:\n"
                                                                           "    runs-on: macos-12\n"},
                    delete=[".travis.yml"])
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    by_subject = {h.subject: h.modules for h in g.history}
    assert by_subject["Travis CI: use the Xcode 12 image"] == (".github",)
    assert by_subject["apply github actions"] == (".github",)
    assert by_subject["Stub pipeline for new plugins"] == ("src",)  # a template below the code, still there
    assert by_subject["Release notes for 2.0"] == ("(root)",)


def test_history_of_a_moved_folder_counts_where_it_went_even_when_part_of_it_was_deleted_since(git_repo, tmp_path):
    """alibaba/nacos moved its datasource code from `config` into a new `persistence` module and later deleted part
    of it: the changes made before the move are that module's history (most of it), not history of a vanished
    folder."""
    git_repo.commit("initial", {"config/server/app.py": "def serve():\n    pass\n",
                                "config/datasource/pool.py": "def pool():\n    pass\n",
                                "config/datasource/embedded/derby.py": "def derby():\n    pass\n",
                                "docs/guide.md": "# Guide\n"})
    for i in range(12):
        git_repo.commit(f"derby: embedded storage fix {i}",
                        {"config/datasource/embedded/derby.py": f"def derby():\n    return {i}\n"})
    git_repo.git("mv", "config/datasource", "persistence")
    git_repo.commit("move the datasource code into its own module")
    git_repo.commit("drop the embedded derby storage", delete=["persistence/embedded/derby.py"])
    git_repo.commit("persistence: pool sizes", {"persistence/pool.py": "def pool():\n    return 8\n"})
    res = index(git_repo.root, store_for(tmp_path), full=True)
    by_subject = {h.subject: h.modules for h in res.graph.history}
    assert "persistence" in res.graph.modules
    assert by_subject["derby: embedded storage fix 0"] == ("persistence",)
    assert not any("no longer counts" in n for n in res.notes), res.notes


def test_history_rules(git_repo, tmp_path):
    git_repo.commit("initial import", polyglot_files())
    git_repo.commit("Fix crash in ring buffer wraparound\n\nThe read index overflowed.\n\nSigned-off-by: A <a@b.c>\nCo-authored-by: B <b@c.d>",
                    {"audio/sample.c": (FIXTURES / "sample.c").read_text() + "\n// fixed\n"})
    git_repo.commit("Bump version to 1.2.3", {"core/version.py": "V = '1.2.3'\n"})
    git_repo.commit("Update deps", {"web/sample.js": "// x\n"}, author="dependabot[bot]", email="bot@github.com")
    git_repo.commit('Revert "Fix crash"', {"audio/sample.c": "// reverted\n"})
    git_repo.commit("Run clang-format", {"gpu/sample.cpp": "// formatted\n"})
    many = {f"{d}/touch.txt": "x\n" for d in LAYOUT}
    git_repo.commit("Touch everything", many)
    # a merged pull request
    git_repo.git("checkout", "-q", "-b", "feature")
    git_repo.commit("wip", {"engine/extra.rs": "/// Physics step.\npub fn step() {}\n"})
    git_repo.git("checkout", "-q", "main")
    git_repo.git("merge", "--no-ff", "-q", "feature", "-m", "Merge pull request #7 from dev/feature\n\nAdd a physics step to the engine")
    git_repo.git("checkout", "-q", "-b", "other")
    git_repo.commit("other work", {"server/other.go": "package server\n"})
    git_repo.git("checkout", "-q", "main")
    git_repo.git("merge", "--no-ff", "-q", "other", "-m", "Merge branch 'other'")
    # a pull request merged by GitHub's merge queue: the merge commit is named by the PR's title and number
    git_repo.git("checkout", "-q", "-b", "queued")
    git_repo.commit("address review", {"net/retry.go": "package net\n\n// Retry with backoff.\nfunc Retry() {}\n"})
    git_repo.git("checkout", "-q", "main")
    git_repo.git("merge", "--no-ff", "-q", "queued", "-m", "fix(net): retry with backoff (#42)\n\nFixes #41.")
    # a pull request cherry-picked onto a release branch by a backport script: a commit, not a merge
    git_repo.commit("Backport pull request #9 from dev/release-1.x\n\nFix subtitle burn-in for HDR videos\n\n"
                    "Original-merge: abc", {"gpu/hdr.cpp": "// tone mapping\n"})
    # fixes merged from a security advisory's private fork: GitHub's fixed subject, the squashed titles (if any) below
    git_repo.commit("Merge commit from fork\n\n* fix(net): reject oversized headers\n\n* added a test",
                    {"net/limits.go": "package net\n\n// Header limits.\nfunc Limit() {}\n"})
    git_repo.commit("Merge commit from fork", {"server/guard.go": "package server\n\nfunc Guard() {}\n"})

    res = index(git_repo.root, store_for(tmp_path), full=True)
    hist = res.graph.history
    subjects = [h.subject for h in hist]
    assert "Fix crash in ring buffer wraparound" in subjects
    fix = next(h for h in hist if h.subject.startswith("Fix crash"))
    assert fix.modules == ("audio",)
    assert "Signed-off-by" not in fix.body and "Co-authored-by" not in fix.body
    assert "The read index overflowed." in fix.body
    assert fix.date.startswith("2024-") and len(fix.commit) == 40
    for dropped in ("Bump version to 1.2.3", "Update deps", 'Revert "Fix crash"', "Run clang-format", "Touch everything",
                    "Merge branch 'other'"):
        assert dropped not in subjects
    pr = {h.subject: h for h in hist if h.kind == "pr"}
    assert set(pr) == {"Add a physics step to the engine", "fix(net): retry with backoff (#42)"}
    assert pr["Add a physics step to the engine"].modules == ("engine",)
    queued = pr["fix(net): retry with backoff (#42)"]
    assert queued.files == ("net/retry.go",) and queued.body == "Fixes #41."
    assert "wip" in subjects and "other work" in subjects
    backport = next(h for h in hist if h.modules == ("gpu",) and "hdr" in h.body + h.subject.lower())
    assert backport.subject == "Fix subtitle burn-in for HDR videos" and backport.kind == "commit"
    advisory = next(h for h in hist if h.files == ("net/limits.go",))
    assert (advisory.subject, advisory.body, advisory.modules) == ("fix(net): reject oversized headers", "* added a test",
                                                                   ("net",))
    assert "Merge commit from fork" not in subjects and not any(h.files == ("server/guard.go",) for h in hist)


def test_refresh_equals_full_index(git_repo, tmp_path):
    git_repo.commit("initial import", polyglot_files())
    store = store_for(tmp_path, "incremental")
    index(git_repo.root, store, full=True)
    # modify, add, delete and rename files; add a new module
    git_repo.commit("Add resampler and move helpers", {
        "audio/resample.c": "/* Polyphase resampler. */\n#include \"sample.h\"\nint resample(int x) { return x; }\n",
        "core/sample.py": (FIXTURES / "sample.py").read_text() + "\n\ndef extra():\n    \"\"\"Extra.\"\"\"\n",
        "crypto/aes.go": "// Package crypto implements AES.\npackage crypto\n\n// Encrypt encrypts.\nfunc Encrypt() {}\n",
        "crypto/sha.go": "package crypto\n\nfunc Sum() {}\n",
    }, delete=["engine/sample.rs"])
    git_repo.git("mv", "web/sample.ts", "web/renamed.ts")
    git_repo.commit("Rename the web entry point")
    res = refresh(git_repo.root, store)
    assert not res.full and res.history_rebuilt  # the module layout changed, so history is re-mapped
    assert res.parsed == 4  # only the new / changed contents (the rename re-uses the cached parse)
    assert "crypto" in res.added_modules and "engine" in res.removed_modules
    assert "audio" in res.changed_modules
    fresh = index(git_repo.root, store_for(tmp_path, "fresh"), full=True)
    assert res.graph.to_json(include_history=False) == fresh.graph.to_json(include_history=False)
    assert res.graph.version == fresh.graph.version
    assert [h.to_dict() for h in res.graph.history] == [h.to_dict() for h in fresh.graph.history]
    # nothing changed: a second refresh parses nothing
    again = refresh(git_repo.root, store)
    assert again.parsed == 0 and again.changed_modules == [] and again.graph.version == fresh.graph.version
    assert not again.history_rebuilt
    # a change inside one module appends history instead of re-mining it, with the same result
    git_repo.commit("Tune the resampler filter", {"audio/resample.c": "/* Polyphase resampler, 64 taps. */\nint resample(int x) { return 2 * x; }\n"})
    inc = refresh(git_repo.root, store)
    assert not inc.history_rebuilt and inc.parsed == 1 and inc.history_added == 1 and inc.changed_modules == ["audio"]
    fresh = index(git_repo.root, store_for(tmp_path, "fresh2"), full=True)
    assert inc.graph.version == fresh.graph.version
    assert [h.to_dict() for h in inc.graph.history] == [h.to_dict() for h in fresh.graph.history]


def test_release_notes_are_not_where_a_change_touched_the_code(git_repo, tmp_path):
    """hutool edits CHANGELOG.md in half its changes and svelte adds a `.changeset/*.md` to three in four: their notes'
    module was taught as touched by every such change, and answered for questions about the code. A change to the
    notes alone still counts for their module; so does the same in the temporal split's gold."""
    from indexer.history import is_changelog
    from inference.evaluate import history_split

    files = polyglot_files()
    files.update({"CHANGELOG.md": "# Changes\n", "docs/guide.md": "# Guide\n\nHow to use the audio backend.\n",
                  ".changeset/config.json": "{}\n", "changelog/_template.rst": "notes\n"})
    git_repo.commit("initial import", files)
    git_repo.commit("Fix crash in ring buffer wraparound", {
        "audio/sample.c": (FIXTURES / "sample.c").read_text() + "\n// fixed\n",
        "CHANGELOG.md": "# Changes\n- ring buffer crash\n", ".changeset/brave-cats-sing.md": "fix ring buffer\n",
        "changelog/123.bugfix.rst": "Fixed the ring buffer.\n"}, date="2024-02-01T12:00:00+00:00")
    git_repo.commit("Document the 1.2 highlights", {"CHANGELOG.md": "# Changes\n- 1.2 highlights\n"},
                    date="2024-02-02T12:00:00+00:00")
    git_repo.commit("CHANGELOG: note the 1.2 mixer, and hide a debug flag", {
        "server/handler.py": "def handle(x):\n    return x\n", "CHANGELOG.md": "# Changes\n- mixer\n"},
        date="2024-02-03T12:00:00+00:00")  # a change that says it is about its notes keeps them
    git_repo.commit("Clamp negative gains in the mixer", {
        "core/util.py": files["core/util.py"] + "\n# negative gains\n", "CHANGELOG.md": "# Changes\n- gains\n"},
        date="2024-06-02T12:00:00+00:00")
    # Seata's "add a compatible module" (#6283): a new top-level folder and its note. The cut-off's map holds no module
    # for the folder, so the change is not scored at all; it used to be scored as a change to the notes alone.
    git_repo.commit("Add a compatible module for the old package names", {
        "compat/legacy.py": "def old_name():\n    return 1\n", "CHANGELOG.md": "# Changes\n- compat\n"},
        date="2024-06-03T12:00:00+00:00")

    hist = index(git_repo.root, store_for(tmp_path), full=True).graph.history
    by = {h.subject: h.modules for h in hist}
    assert by["Fix crash in ring buffer wraparound"] == ("audio",)
    assert by["Document the 1.2 highlights"] == (ROOT_ID,)  # the notes alone: their module
    assert set(by["CHANGELOG: note the 1.2 mixer, and hide a debug flag"]) == {ROOT_ID, "server"}
    split = history_split(git_repo.root, "2024-03-01", tmp_path / "split")
    case = next(c for c in split.cases if c.text.startswith("Clamp negative gains"))
    assert case.gold == ("core",)
    assert not any(c.text.startswith("Add a compatible module") for c in split.cases)
    assert not is_changelog("src/changes/Diff.java") and not is_changelog("lib/history.py")
    assert not is_changelog("src/main/resources/db/changelog/db.changelog-master.yaml")  # Liquibase's migrations
    assert is_changelog("src/changes/changes.xml") and is_changelog("newsfragments/45.feature")


def test_history_follows_moved_files_to_their_module_today(git_repo, tmp_path):
    """A reorganised tree keeps its history: changes to files that were moved since count for the module
    the files live in now (renames followed forward, a deleted file by where its folder went), not for
    the old parent folder, and not dropped."""
    old = {f"lib/src/main/net/{n}.kt": f"// {n}\nclass {n.title()} {{ fun run{n}() {{}} }}\n"
           for n in ("dispatcher", "connection", "cache")}
    old.update({"lib/src/main/net/legacy.kt": "// legacy\nclass Legacy {}\n",
                "lib/src/android/net/Platform.kt": "// platform\nclass Platform {}\n",
                "docs/README.md": "# Docs\n",
                ".modmatch.toml": "[[module]]\nid = 'common'\npath = ['lib/src/common']\n"
                                  "[[module]]\nid = 'android'\npath = ['lib/src/android']\n"})
    git_repo.commit("initial import", old)
    git_repo.commit("Dispatcher runs calls in order", {"lib/src/main/net/dispatcher.kt": "// v2\nclass Dispatcher {}\n"})
    git_repo.commit("Legacy helper for old clients", {"lib/src/main/net/legacy.kt": "// v2\nclass Legacy { }\n"})
    git_repo.commit("Drop the legacy helper", delete=["lib/src/main/net/legacy.kt"])
    (git_repo.root / "lib/src/common/net").mkdir(parents=True)
    for n in ("dispatcher", "connection", "cache"):
        git_repo.git("mv", f"lib/src/main/net/{n}.kt", f"lib/src/common/net/{n}.kt")
    git_repo.commit("Move to the common source set")
    git_repo.commit("Platform hook for Android", {"lib/src/android/net/Platform.kt": "// v2\nclass Platform { }\n"})

    res = index(git_repo.root, store_for(tmp_path), full=True)
    mods = {h.subject: h.modules for h in res.graph.history}
    common = res.graph.module_of("lib/src/common/net/dispatcher.kt")
    assert (common, res.graph.module_of("lib/src/android/net/Platform.kt")) == ("common", "android")
    assert mods["Dispatcher runs calls in order"] == (common,)      # renamed file: followed to its place today
    assert mods["Legacy helper for old clients"] == (common,)       # deleted file: its folder moved there
    assert mods["Platform hook for Android"] == (res.graph.module_of("lib/src/android/net/Platform.kt"),)
    # an incremental refresh after another move agrees with a full index
    git_repo.git("mv", "lib/src/common/net/cache.kt", "lib/src/android/net/cache.kt")
    git_repo.commit("Cache lives with the platform code")
    store = store_for(tmp_path, "inc")
    index(git_repo.root, store, full=True)
    assert {h.subject: h.modules for h in index(git_repo.root, store).graph.history} == \
        {h.subject: h.modules for h in index(git_repo.root, store_for(tmp_path, "full"), full=True).graph.history}


def test_parser_pool_stops_inside_a_process_that_handles_sigterm(git_repo):
    """`modmatch serve` handles SIGTERM (uvicorn); the forked parsers must not inherit that, or an index cut short
    (its pool terminated) waits for ever on workers that ignore the pool's SIGTERM."""
    import subprocess
    import sys

    git_repo.commit("many files", {f"pkg/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(450)})
    script = f"""
import signal, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
signal.signal(signal.SIGTERM, lambda *a: None)  # what a web server does
from indexer.build import _parse_all
from indexer.source import GitSource, git
root = {str(git_repo.root)!r}
src = GitSource(root, git(root, "rev-parse", "HEAD").strip())
todo = src.entries()
assert len(todo) >= 400
gen = _parse_all(src, todo, 1_000_000, workers=2)
next(gen)
gen.close()  # the index stops early: the pool is terminated and joined
print("stopped")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "stopped" in proc.stdout, proc.stderr[-2000:]


def test_force_push_falls_back_to_full_history(git_repo, tmp_path):
    a = git_repo.commit("initial import", polyglot_files())
    git_repo.commit("Audio tweak", {"audio/sample.c": "// tweak\nint f(void);\n"})
    store = store_for(tmp_path)
    index(git_repo.root, store, full=True)
    git_repo.git("reset", "-q", "--hard", a)
    git_repo.commit("Server tweak", {"server/sample.go": "package main\n\n// Serve serves.\nfunc Serve() {}\n"})
    res = refresh(git_repo.root, store)
    fresh = index(git_repo.root, store_for(tmp_path, "fresh"), full=True)
    subjects = [h.subject for h in res.graph.history]
    assert "Audio tweak" not in subjects and "Server tweak" in subjects
    assert [h.to_dict() for h in res.graph.history] == [h.to_dict() for h in fresh.graph.history]
    assert res.graph.version == fresh.graph.version


def test_modmatch_toml(git_repo, tmp_path):
    files = polyglot_files()
    files[".modmatch.toml"] = """
[modules]
exclude = ["web/**"]

[[module]]
id = "media/audio"
path = ["audio"]
name = "Audio backend"
description = "Everything that makes sound."
aliases = ["snd", "mixer"]
"""
    git_repo.commit("initial import", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    assert "media/audio" in g.modules and "audio" not in g.modules and "web" not in g.modules
    m = g.modules["media/audio"]
    assert m.explicit and m.aliases == ["snd", "mixer"] and m.description == "Everything that makes sound."
    assert "audio/sample.c" in m.files and g.module_of("audio/sample.c") == "media/audio"
    assert "media/audio" in g.keyword_index["snd"]
    assert dict(g.dependencies("gpu")).get("media/audio") == 1
    with pytest.raises(ConfigError):
        parse_config("[[module]]\nid = 'x'\n")  # no path
    with pytest.raises(ConfigError):
        parse_config("[[module]]\nid='a'\npath='a'\n[[module]]\nid='a'\npath='b'\n")  # duplicate
    with pytest.raises(ConfigError):
        parse_config("[modules\n")


def test_auto_rule_splits_big_and_folds_small(git_repo, tmp_path):
    files = {}
    for i in range(30):
        files[f"src/layer/conv_{i}.c"] = f"int conv_{i}(void) {{ return {i}; }}\n"
    for i in range(30):
        files[f"src/layer/pool_{i}.c"] = f"int pool_{i}(void) {{ return {i}; }}\n"
    for i in range(25):
        files[f"src/layer/relu_{i}.c"] = f"int relu_{i}(void) {{ return {i}; }}\n"
    for sub in ("vulkan", "arm"):
        for i in range(5):
            files[f"src/layer/{sub}/k{i}.c"] = "int k(void) { return 0; }\n"
    files["src/layer/tiny/one.c"] = "int one(void) { return 1; }\n"
    files["src/main.c"] = "int main(void) { return 0; }\n"
    files["node_modules/x/index.js"] = "module.exports = 1;\n"
    files["third_party/lib.c"] = "int lib(void) { return 0; }\n"
    git_repo.commit("initial", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    ids = set(g.modules)
    assert {"src", "src/layer", "src/layer/vulkan", "src/layer/arm", "src/layer/conv", "src/layer/pool",
            "src/layer/relu"} <= ids
    assert "src/layer/tiny" not in ids and g.module_of("src/layer/tiny/one.c") == "src/layer"
    assert g.module_of("src/layer/conv_3.c") == "src/layer/conv"
    assert not any(i.startswith(("node_modules", "third_party")) for i in ids)
    assert g.modules["src/layer/conv"].parent == "src/layer"


def test_a_folder_holding_a_third_of_the_repository_splits_however_few_its_files():
    """vnpy: its package `vnpy` held 75 of 173 files, under `max_files`, and was one module where its team works in
    `vnpy/trader`, `vnpy/rpc` and `vnpy/chart`. A repository no bigger than one module keeps its folders whole."""
    from indexer.config import RepoConfig
    from indexer.modules import plan_modules

    def ids(paths):
        return {s.id for s in plan_modules(paths, RepoConfig())}

    pkg = ([f"vnpy/trader/m{i}.py" for i in range(40)] + [f"vnpy/rpc/r{i}.py" for i in range(5)]
           + [f"vnpy/chart/c{i}.py" for i in range(5)] + ["vnpy/event/engine.py", "vnpy/event/__init__.py"]
           + [f"vnpy/x{i}.py" for i in range(8)])
    rest = [f"docs/d{i}.md" for i in range(30)] + [f"examples/e{i}/run.py" for i in range(2)] \
        + [f"tests/t{i}.py" for i in range(60)]
    got = ids(pkg + rest)  # 60 of 152 files
    assert {"vnpy", "vnpy/trader", "vnpy/rpc", "vnpy/chart"} <= got and "vnpy/event" not in got, got
    assert "docs" in got and not any(i.startswith("docs/") for i in got)
    small = [f"vnpy/trader/m{i}.py" for i in range(20)] + [f"vnpy/rpc/r{i}.py" for i in range(5)] + ["README.md"]
    assert ids(small) == {ROOT_ID, "vnpy"}  # 26 files: one module's worth


def test_a_flat_folder_of_capitalised_names_splits_into_modules_that_own_their_files(git_repo, tmp_path):
    """SDWebImage keeps 120 files in `SDWebImage/Core`, nearly all named `SD…` or `UI…`. The flat split read their
    first word in lower case (`s`, `u`) and made modules `SDWebImage/Core/s` and `…/u` that owned no file, since no
    name begins with a lower-case `s`; laravel's `tests/Database/database` likewise. A name's first word is read as
    written, a run of capitals is one word (`UI`), and a word glued to a capitalised one that begins most names is a
    namespace: those names are grouped by two words (`SDImage`, `SDWeb`)."""
    classes = {"SDImageCoder": 36, "SDWebImageLoader": 34, "SDCallback": 4}
    files = {f"Core/{c}{i}.m": f"@implementation {c}{i}\n@end\n" for c, n in classes.items() for i in range(n)}
    files |= {f"Core/UIImage+Extra{i}.m": f"@implementation UIImage (Extra{i})\n@end\n" for i in range(20)}
    # a family of lower-case names is grouped by its first word, as before
    files |= {f"Core/conv_{i}.c": f"int conv_{i}(void) {{ return {i}; }}\n" for i in range(12)}
    git_repo.commit("initial", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    assert {"Core/SDImage", "Core/SDWeb", "Core/UI", "Core/conv"} <= set(g.modules)
    assert all(m.files for mid, m in g.modules.items() if mid.startswith("Core/"))
    assert g.module_of("Core/SDImageCoder3.m") == "Core/SDImage"
    assert g.module_of("Core/SDWebImageLoader3.m") == "Core/SDWeb"
    assert g.module_of("Core/UIImage+Extra3.m") == "Core/UI"
    assert g.module_of("Core/SDCallback1.m") == "Core"  # too few to be a module
    assert g.module_of("Core/conv_3.c") == "Core/conv"


def test_a_committed_minified_bundle_is_generated_not_a_module(git_repo, tmp_path):
    """alibaba/nacos commits its console's built `main.js` and `main.css` beside `index.html` and rebuilds them with
    every console change, so the bundle's folder learned every UI change and answered UI questions. A JavaScript or
    CSS file whose lines average over 110 characters is generated (linguist's rule): not indexed, and its changes
    count for no module; a repository that says otherwise in `.gitattributes` is believed."""
    bundle = ("!function(e){var t={};function n(r){if(t[r])return t[r].exports;var o=t[r]={i:r,l:!1,exports:{}};"
              "return e[r].call(o.exports,o,o.exports,n),o.l=!0,o.exports}n.m=e,n.c=t}([]);" * 40 + "\n") * 10
    files = {
        "console/static/js/main.js": bundle, "console/static/css/main.css": ".a{color:red;margin:0 auto}" * 2000,
        "console/static/index.html": "<html><body><div id=root></div></body></html>\n",
        "console/static/login.html": "<html><body>login</body></html>\n",
        "console/static/favicon.svg": "<svg></svg>\n",
        "console-ui/src/pages/ConfigList.js": "// The list of configurations.\nexport function ConfigList() {}\n",
        "console-ui/src/pages/ServiceList.js": "// The list of services.\nexport function ServiceList() {}\n",
        "console-ui/src/pages/Login.js": "// The login page.\nexport function Login() {}\n",
        "console-ui/src/locales/en.js": "export default { config: 'Configuration' };\n" + "// a long line " * 200 + "\n",
        "server/app.py": "def serve():\n    pass\n",
    }
    git_repo.commit("initial", files)
    for i in range(4):
        git_repo.commit(f"console: show the config list page by page {i}",
                        {"console-ui/src/pages/ConfigList.js": f"// The list of configurations.\n// {i}\n",
                         "console/static/js/main.js": bundle + f"//{i}\n"})
    res = index(git_repo.root, store_for(tmp_path), full=True)
    g = res.graph
    indexed = {f for m in g.modules.values() for f in m.files}
    assert "console/static/js/main.js" not in indexed and "console/static/css/main.css" not in indexed
    assert "console/static/index.html" in indexed and "console-ui/src/locales/en.js" in indexed  # short: read
    assert any("2 minified files" in n and "console/static/js/main.js" in n for n in res.notes), res.notes
    change = next(h for h in g.history if h.subject.startswith("console: show the config list"))
    assert all(not m.startswith("console/static") for m in change.modules) and change.modules
    # the repository's own word wins: a bundle it says is its own is indexed
    git_repo.commit("we write this one", {".gitattributes": "console/static/js/main.js linguist-generated=false\n"})
    res = index(git_repo.root, store_for(tmp_path / "again"), full=True)
    assert "console/static/js/main.js" in {f for m in res.graph.modules.values() for f in m.files}
    # a plain folder (no git) is read by the same rule
    plain = tmp_path / "plain"
    for rel, text in files.items():
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        (plain / rel).write_text(text)
    res = index(plain, store_for(tmp_path / "plain-db"), full=True)
    indexed = {f for m in res.graph.modules.values() for f in m.files}
    assert "console/static/js/main.js" not in indexed and "console/static/css/main.css" not in indexed
    assert "console/static/index.html" in indexed and "console-ui/src/locales/en.js" in indexed
    assert any("2 minified files" in n for n in res.notes), res.notes


def test_tracked_files_in_folders_named_like_build_output_are_kept(git_repo, tmp_path):
    """A repository's command line in bin/, an API folder named out/ and a parser folder named obj/ are code
    someone committed; only the untracked files of such folders (what a build wrote) stay out, in a plain folder
    and in a repository with no commits alike."""
    code = {"bin/main.ml": "let () = Cli.run ()\n", "bin/cli.ml": "let run () = print_endline \"dune\"\n",
            "src/api/sale/out/order.ts": "export function getSaleOutPage() { return 1 }\n",
            "lib/parser/obj/obj_parser.py": "def parse_obj(text):\n    return text.split()\n",
            "src/core.py": "def core():\n    pass\n"}
    git_repo.commit("initial", {**code, "dist/bundle.js": "function b() {}\n"})

    def indexed(root, name):
        g = index(root, store_for(tmp_path, name), full=True).graph
        return g, {f for m in g.modules.values() for f in m.files}

    g, files = indexed(git_repo.root, "repo")
    assert set(code) <= files and "dist/bundle.js" not in files  # a published bundle stays out, tracked or not
    assert "bin" in g.modules and "run" in {s.name for s in g.modules["bin"].symbols}

    plain = tmp_path / "plain"  # no git: nothing says bin/ and obj/ were written by people
    for rel, text in {**code, "bin/Debug/App.cs": "class App {}\n", "obj/Gen.cs": "class Gen {}\n"}.items():
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        (plain / rel).write_text(text)
    _, files = indexed(plain, "plain")
    assert "src/core.py" in files and not any(f.startswith(("bin/", "obj/")) for f in files)
    assert "src/api/sale/out/order.ts" not in files

    fresh = GitRepo(tmp_path / "fresh")  # a repository with no commits: its staged bin/ file counts, not the rest
    fresh.write({"bin/tool.py": "def tool():\n    pass\n", "bin/Release/out.py": "x = 1\n", "a/x.py": "y = 2\n"})
    fresh.git("add", "bin/tool.py")
    _, files = indexed(fresh.root, "fresh")
    assert {"bin/tool.py", "a/x.py"} <= set(files) and "bin/Release/out.py" not in files


def test_a_folder_named_like_vendored_code_is_indexed_where_the_history_shows_the_team_writing_it(git_repo, tmp_path,
                                                                                                 monkeypatch):
    """Kyuubi keeps its engines in `externals/`: changed with the server, they are its own code and get modules,
    and their changes teach the history. A `vendor/` brought in with its licence and updated alone stays out, as
    does a `deps/` with too little history to tell; `.modmatch.toml` can call a folder the repository's own."""
    git_repo.commit("initial", {
        "server/main.scala": "object Server { def start(): Unit = () }\n",
        "vendor/zlib/LICENSE": "zlib licence\n", "vendor/zlib/inflate.c": "int inflate(void) { return 0; }\n",
        "deps/tool/run.py": "def run():\n    pass\n"})
    for i in range(6):
        git_repo.commit(f"Support option {i} in the Spark engine", {
            f"externals/spark-engine/Option{i}.scala": f"object Option{i} {{ def apply(): Int = {i} }}\n",
            "server/main.scala": f"object Server {{ def start(): Unit = () }} // {i}\n",
            f"tests/fixtures/vendor/pkg/Fake{i}.scala": f"object Fake{i}\n"})  # a fixture imitating vendored code
        git_repo.commit(f"Update zlib to 1.{i}", {"vendor/zlib/inflate.c": f"int inflate(void) {{ return {i}; }}\n"})
    res = index(git_repo.root, store_for(tmp_path), full=True)
    g = res.graph
    files = {f for m in g.modules.values() for f in m.files}
    assert "externals/spark-engine/Option3.scala" in files and "externals" in g.modules
    assert not any(f.startswith(("vendor/", "deps/", "tests/fixtures/vendor/")) for f in files)
    assert [set(h.modules) for h in g.history if "Spark engine" in h.subject] == [{"externals", "server"}] * 6
    assert not [h for h in g.history if h.subject.startswith("Update zlib")]  # touched only what is skipped
    said = " ".join(res.notes)
    assert "externals/ is named like vendored code: indexed as the repository's own code (6 of its latest 6" in said
    assert "vendor/ is named like vendored code: skipped" not in said  # 2 files: not worth a line
    git_repo.commit("Start the server faster", {"server/main.scala": "object Server { def start(): Unit = () }\n"})
    assert not any("vendored" in n for n in refresh(git_repo.root, store_for(tmp_path)).notes)  # said once

    from bot.cli import cli  # as an operator meets it: `modmatch index`, then `modmatch doctor`

    monkeypatch.setenv("MODMATCH_REPOS", f"engines={git_repo.root}")
    r = CliRunner().invoke(cli, ["index", str(git_repo.root), "--no-matcher"])
    assert r.exit_code == 0 and "externals/ is named like vendored code: indexed" in " ".join(r.output.split()), r.output
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    repo = next(c for c in json.loads(r.stdout) if c["name"] == "repo engines")
    assert repo["message"].endswith("indexed as its own code though named like vendored code: externals/")

    git_repo.commit("call deps our own", {".modmatch.toml": '[modules]\nown = ["deps"]\n'})
    files = {f for m in index(git_repo.root, store_for(tmp_path, "own"), full=True).graph.modules.values()
             for f in m.files}
    assert "deps/tool/run.py" in files and "vendor/zlib/inflate.c" not in files


def test_jvm_source_layout_gives_package_modules(git_repo, tmp_path):
    """A single-artifact Maven project: the layout folders (src/main/java, org/example) are not architecture, so
    the packages below them become the modules, and no layout folder is a module. A small artifact stays one module.
    A package's tests (src/test/java/...) are one module with its code, as Go's or Rust's beside it are; a test
    package with no code of its name stays a module; `tests_apart = true` keeps them apart."""
    files = {"pom.xml": "<project/>\n", "lib-small/pom.xml": "<project/>\n"}
    for pkg, n in (("time", 30), ("text", 30), ("reflect", 25)):
        for i in range(n):
            cls = f"{pkg.title()}{i}"
            files[f"src/main/java/org/example/lang/{pkg}/{cls}.java"] = \
                f"package org.example.lang.{pkg};\npublic class {cls} {{ }}\n"
            files[f"src/test/java/org/example/lang/{pkg}/{cls}Test.java"] = \
                f"package org.example.lang.{pkg};\npublic class {cls}Test {{ }}\n"
    for i in range(5):
        files[f"src/main/java/org/example/lang/Util{i}.java"] = f"package org.example.lang;\npublic class Util{i} {{ }}\n"
        files[f"lib-small/src/main/java/org/example/small/S{i}.java"] = f"package org.example.small;\nclass S{i} {{ }}\n"
        files[f"src/test/java/org/example/lang/fixtures/F{i}.java"] = f"package org.example.lang.fixtures;\nclass F{i} {{ }}\n"
    files["src/main/resources/app.properties"] = "a=1\n"
    git_repo.commit("initial", files)
    store = store_for(tmp_path)
    g = index(git_repo.root, store, full=True).graph
    main, test = "src/main/java/org/example/lang", "src/test/java/org/example/lang"
    assert {main, f"{main}/time", f"{main}/text", f"{main}/reflect", f"{test}/fixtures", "lib-small"} <= set(g.modules)
    assert not {f"{test}/time", f"{test}/text", f"{test}/reflect"} & set(g.modules)
    assert g.module_of(f"{main}/time/Time3.java") == g.module_of(f"{test}/time/Time3Test.java") == f"{main}/time"
    assert f"{test}/time/Time3Test.java" in g.modules[f"{main}/time"].files
    assert g.module_of(f"{main}/Util1.java") == main
    assert g.module_of("lib-small/src/main/java/org/example/small/S1.java") == "lib-small"
    layout = {"src", "src/main", "src/main/java", "src/main/java/org", "src/main/java/org/example", "src/test/java"}
    assert not layout & set(g.modules)
    assert g.modules[f"{main}/time"].parent == main
    # the depth limit counts architecture, not layout: with depth 2, the packages are still modules
    (git_repo.root / ".modmatch.toml").write_text("[modules]\ndepth = 2\n")
    git_repo.commit("config", {".modmatch.toml": "[modules]\ndepth = 2\n"})
    g = refresh(git_repo.root, store).graph
    assert f"{main}/time" in g.modules
    git_repo.commit("tests apart", {".modmatch.toml": "[modules]\ntests_apart = true\n"})
    g = refresh(git_repo.root, store).graph
    assert {f"{main}/time", f"{test}/time"} <= set(g.modules)
    assert g.module_of(f"{test}/time/Time3Test.java") == f"{test}/time"


def test_package_folders_are_layout_beside_another_package_or_a_file(git_repo, tmp_path):
    """alibaba/arthas: `core/src/main/java` holds `com/taobao/arthas/core/...`, a second package `one/profiler`
    and a `logback.xml`. The folders `com`, `com/taobao` and `com/taobao/arthas` lead to one folder each and are
    layout all the same, so the depth limit is not spent on them: the commands and the shell are modules, not one
    module of every file of the artifact."""
    pkg = "core/src/main/java/com/acme/tool/core"
    files = {"pom.xml": "<project/>\n", "core/pom.xml": "<project/>\n",
             "core/src/main/java/logback.xml": "<configuration/>\n", f"{pkg}/Tool.java": "class Tool { }\n"}
    for sub, n in (("command/monitor", 45), ("command/basic", 45), ("shell", 25)):
        for i in range(n):
            cls = f"{sub.rsplit('/', 1)[-1].title()}{i}"
            files[f"{pkg}/{sub}/{cls}.java"] = f"package com.acme.tool.core.{sub.replace('/', '.')};\nclass {cls} {{ }}\n"
    for i in range(3):
        files[f"core/src/main/java/one/profiler/P{i}.java"] = f"package one.profiler;\nclass P{i} {{ }}\n"
    git_repo.commit("initial", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    assert {pkg, f"{pkg}/command/monitor", f"{pkg}/command/basic", f"{pkg}/shell"} <= set(g.modules)
    assert g.module_of(f"{pkg}/command/monitor/Monitor3.java") == f"{pkg}/command/monitor"
    assert not {"core/src/main/java/com", "core/src/main/java/com/acme", "core/src/main/java/com/acme/tool"} \
        & set(g.modules)
    assert g.module_of("core/src/main/java/one/profiler/P1.java") == "core/src/main/java/one"
    assert g.module_of("core/src/main/java/logback.xml") == "core"


def test_dart_package_layout_gives_the_folders_of_lib_src_as_modules(git_repo, tmp_path):
    """A Dart package keeps its code in lib/src and its public libraries in lib: neither folder is architecture, so
    the folders of lib/src become the modules (as its tests' folders do), and lib/src's own files go to the package.
    A lib/src without a pubspec.yaml beside it is an ordinary folder."""
    files = {"packages/game/pubspec.yaml": "name: game\n", "packages/game/lib/game.dart": "export 'src/sprite.dart';\n",
             "packages/game/lib/src/sprite.dart": "/// A picture.\nclass Sprite {}\n"}
    for folder, n in (("components", 30), ("effects", 30), ("collisions", 25)):
        for i in range(n):
            files[f"packages/game/lib/src/{folder}/{folder}_{i}.dart"] = f"class {folder.title()}{i} {{}}\n"
            files[f"packages/game/test/{folder}/{folder}_{i}_test.dart"] = f"void main{i}() {{}}\n"
    for i in range(90):
        files[f"tools/lib/src/part{i % 3}/t{i}.dart"] = f"class T{i} {{}}\n"
    git_repo.commit("initial", files)
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    src = "packages/game/lib/src"
    assert {f"{src}/components", f"{src}/effects", f"{src}/collisions", "packages/game/test/effects"} <= set(g.modules)
    assert not {"packages/game/lib", src} & set(g.modules)
    assert g.module_of(f"{src}/effects/effects_3.dart") == f"{src}/effects"
    assert g.module_of(f"{src}/sprite.dart") == g.module_of("packages/game/lib/game.dart") == "packages/game"
    assert g.modules[f"{src}/effects"].parent == "packages/game"
    assert {"tools/lib", "tools/lib/src", "tools/lib/src/part1"} <= set(g.modules)  # no pubspec.yaml: folders


def test_bad_input_never_crashes(git_repo, tmp_path):
    files = polyglot_files()
    files["core/broken.py"] = "def ok():\n    '''fine'''\n    return 1\n\ndef broken(:\n    pass\n"
    git_repo.commit("initial", files)
    git_repo.write({"assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary\x00data" * 20,
                    "core/latin1.py": "# caf\xe9\ndef f():\n    return 1\n".encode("latin-1"),
                    "data/huge.txt": "x" * 2_000_000})
    git_repo.commit("binary, latin-1 and huge files")
    # a submodule (gitlink) entry
    sub = git_repo.root.parent / "sub"
    sub.mkdir()
    os.system(f"cd {sub} && git init -q && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m x")
    git_repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendorsub")
    git_repo.commit("add submodule")
    res = index(git_repo.root, store_for(tmp_path), full=True)
    g = res.graph
    recs = {f: m for m in g.modules.values() for f in m.files}
    assert "core/broken.py" in recs and any(s.name == "ok" for s in g.modules["core"].symbols)
    assert "assets/logo.png" in recs and "data/huge.txt" in recs
    assert not any(f.startswith("vendorsub") for f in recs)
    assert parse_file("x.bin", b"\x00\x01\x02", "0" * 40).error == "binary"


def test_folder_without_git_and_symlink_loop(tmp_path):
    root = tmp_path / "plain"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text('"""Plain module."""\ndef hello():\n    """Say hello."""\n')
    (root / "pkg" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "self")  # a dangling self-loop
    res = index(root, store_for(tmp_path), full=True)
    assert "pkg" in res.graph.modules and res.graph.history == []
    assert any("without history" in n for n in res.notes)


def test_empty_and_commitless_repositories(git_repo, tmp_path):
    res = index(git_repo.root, store_for(tmp_path), full=True)  # no commits, no files
    assert list(res.graph.modules) == [ROOT_ID] and res.files == 0
    git_repo.write({"a/x.py": "def f():\n    pass\n"})
    res = index(git_repo.root, store_for(tmp_path, "two"), full=True)  # files but still no commit
    assert "a" in res.graph.modules and res.graph.commit is None
    with pytest.raises(SourceError):
        index(tmp_path / "missing", store_for(tmp_path, "three"))
    with pytest.raises(SourceError):
        index(git_repo.root, store_for(tmp_path, "four"), rev="no-such-commit")
    with pytest.raises(NotIndexedError):
        store_for(tmp_path, "five").load_graph()


def test_interrupted_refresh_keeps_previous_graph(git_repo, tmp_path, monkeypatch):
    git_repo.commit("initial", polyglot_files())
    store = store_for(tmp_path)
    before = index(git_repo.root, store, full=True).graph
    git_repo.commit("more", {"newmod/a.py": "def a():\n    pass\n"})

    def boom(*a, **k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(build_mod.Store, "save_graph", lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("power cut")))
    with pytest.raises(IndexerError):
        refresh(git_repo.root, store)
    monkeypatch.undo()
    kept = Store(store.path).load_graph()
    assert kept.version == before.version and "newmod" not in kept.modules
    assert refresh(git_repo.root, Store(store.path)).graph.modules.get("newmod") is not None


def test_corrupt_database_is_rebuilt(git_repo, tmp_path):
    git_repo.commit("initial", polyglot_files())
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    res = index(git_repo.root, Store(path), full=True)
    assert "audio" in res.graph.modules
    assert list(tmp_path.glob("bad.corrupt-*"))


def test_cli_index_modules_show(git_repo, tmp_path):
    from bot.cli import cli

    git_repo.commit("Fix audio glitch", polyglot_files())
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(git_repo.root), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["modules"] >= len(LAYOUT)
    r = runner.invoke(cli, ["modules", str(git_repo.root), "--json"])
    assert r.exit_code == 0 and any(n["id"] == "audio" for n in json.loads(r.stdout)["nodes"])
    r = runner.invoke(cli, ["show", "audio", "--path", str(git_repo.root)])
    assert r.exit_code == 0 and "ring" in r.stdout.lower()
    r = runner.invoke(cli, ["show", "nope", "--path", str(git_repo.root)])
    assert r.exit_code != 0 and "no module 'nope'" in r.output
    r = runner.invoke(cli, ["refresh", str(git_repo.root), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["parsed"] == 0


def test_index_and_refresh_leave_the_default_matcher_ready(git_repo):
    """No silent wait after `index`: the default matcher of the new graph is built into the cache, so the first
    `ask` loads it; `--no-matcher` leaves that to the first answer; a refresh that changes the graph prepares the new
    one."""
    from bot.cli import cli
    from bot.state import RepoState

    git_repo.commit("Fix audio glitch", polyglot_files())
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(git_repo.root), "--no-matcher", "--json"])
    assert r.exit_code == 0, r.output
    assert RepoState("r", git_repo.root).cold()
    r = runner.invoke(cli, ["index", str(git_repo.root), "--json"])
    assert r.exit_code == 0, r.output
    assert not RepoState("r", git_repo.root).cold()
    git_repo.commit("Resampler for the audio mixer", {"audio/resample.c": "/* Resample PCM. */\nint resample(void) { return 0; }\n"})
    r = runner.invoke(cli, ["refresh", str(git_repo.root)])
    assert r.exit_code == 0 and "matcher ready" in r.output, r.output
    repo = RepoState("r", git_repo.root)
    assert not repo.cold() and repo.match("audio resampling of PCM streams").matches[0].module == "audio"


def test_stored_symbols_migrate_to_rows_and_load_the_same(git_repo, tmp_path):
    """m004: module records written with symbol objects (before) are rewritten as rows; the graph loads
    the same either way."""
    import sqlite3

    from indexer.migrations import m004_compact_symbols

    git_repo.commit("initial import", polyglot_files())
    store = Store(tmp_path / "g.db")
    res = index(git_repo.root, store)
    before = {mid: m.to_dict() for mid, m in store.load_graph().modules.items()}
    assert any(m["symbols"] for m in before.values())
    conn = sqlite3.connect(tmp_path / "g.db")
    rows = conn.execute("SELECT id, record FROM modules").fetchall()
    assert all(isinstance(s, list) for _, r in rows for s in json.loads(r)["symbols"])  # written as rows
    with conn:  # put the old form back, then migrate it again
        for mid, r in rows:
            d = json.loads(r)
            d["symbols"] = [dict(zip(("name", "kind", "path", "line", "doc"), s)) for s in d["symbols"]]
            conn.execute("UPDATE modules SET record=? WHERE id=?", (json.dumps(d), mid))
    assert {mid: m.to_dict() for mid, m in Store(tmp_path / "g.db").load_graph().modules.items()} == before
    with conn:
        m004_compact_symbols(conn)
    assert all(isinstance(s, list) for (r,) in conn.execute("SELECT record FROM modules")
               for s in json.loads(r)["symbols"])
    assert {mid: m.to_dict() for mid, m in Store(tmp_path / "g.db").load_graph().modules.items()} == before
    assert store.load_graph().version == res.graph.version


def test_reused_keywords_equal_recomputed_ones():
    """A refresh reuses an unchanged module's keywords only when none of its words changed document
    frequency: on random edits the result always equals computing everything again."""
    import random
    from collections import Counter

    from indexer.describe import keywords

    rng = random.Random(7)
    vocab = [f"word{i:03d}" for i in range(120)]

    def module_terms():
        return Counter({w: rng.randint(1, 9) for w in rng.sample(vocab, rng.randint(5, 40))})

    for trial in range(40):
        old = {f"m{i}": module_terms() for i in range(25)}
        new = dict(old)
        edited = set(rng.sample(sorted(old), rng.randint(1, 4)))
        for mid in edited:
            new[mid] = module_terms()
        if trial % 5 == 0:  # a module added and one removed: the count stays, everything may move
            del new[sorted(new)[0]]
            new["m-new"] = module_terms()
            edited |= {"m-new"}
        unchanged = {mid for mid in new if mid not in edited and mid in old}
        reused = keywords(new, previous=(old, keywords(old), unchanged))
        assert reused == keywords(new), trial


def test_deep_imports_resolve():
    """Imports of five or more path components (Java packages, deep C includes) resolve, on a component boundary."""
    from indexer.deps import Resolver

    paths = ["src/main/java/org/apache/commons/lang3/StringUtils.java",
             "src/main/java/xorg/apache/commons/lang3/Other.java",
             "src/main/java/org/apache/commons/lang3/text/WordUtils.java",
             "include/vendor/sdk/v2/core/api.h"]
    r = Resolver(paths)
    src = "src/main/java/org/apache/commons/lang3/text/WordUtils.java"
    assert r.resolve("org.apache.commons.lang3.StringUtils", src, "java") == paths[0]
    assert r.resolve("org.apache.commons.lang3.Other", src, "java") is None  # only under xorg/: not this package
    assert r.resolve("vendor/sdk/v2/core/api.h", "src/x.c", "c") == paths[3]


def test_php_ruby_csharp_and_scala_imports_resolve():
    from indexer.deps import Resolver

    paths = ["src/Client.php", "src/Exception/RequestException.php", "src/helpers.php", "lib/rack/utils.rb",
             "lib/rack/request.rb", "Src/Acme.Http/Pipeline/Runner.cs", "core/src/main/scala/akka/util/Timeout.scala",
             "Src/Acme.Http/Pipeline/Stages/Retry.cs", "Src/Acme.Http.Tests/Pipeline/Stages/RetryTests.cs"]
    r = Resolver(paths)
    assert r.resolve("GuzzleHttp/Client", "src/Pool.php", "php") == "src/Client.php"  # PSR-4: `GuzzleHttp\` is src/
    assert r.resolve("GuzzleHttp/Exception/RequestException", "src/Pool.php", "php") == paths[1]
    assert r.resolve("Closure", "src/Pool.php", "php") is None  # a global class
    assert r.resolve("./helpers.php", "src/Pool.php", "php") == "src/helpers.php"  # require __DIR__ . '/helpers.php'
    assert r.resolve("rack/utils", "test/spec_utils.rb", "ruby") == "lib/rack/utils.rb"
    assert r.resolve("./request", "lib/rack/utils.rb", "ruby") == "lib/rack/request.rb"  # require_relative "request"
    assert r.resolve("Acme.Http.Pipeline", "Src/Acme.Http/Client.cs", "csharp") == paths[5]
    # the project folder Acme.Http, not the tests' Acme.Http.Tests that shares the tail Pipeline/Stages
    assert r.resolve("Acme.Http.Pipeline.Stages", "Src/Acme.Http/Client.cs", "csharp") == paths[7]
    assert r.resolve("System.Text", "Src/Acme.Http/Client.cs", "csharp") is None
    assert r.resolve("akka.util.Timeout", "core/src/main/scala/akka/actor/A.scala", "scala") == paths[6]


def test_elixir_aliases_resolve_by_the_underscore_convention():
    from indexer.deps import Resolver

    paths = ["lib/phoenix/socket.ex", "lib/phoenix/socket/message.ex", "lib/phoenix/live_view.ex",
             "lib/my_app_web/controllers/user_controller.ex", "lib/phoenix/logger.ex", "lib/a/router.ex",
             "lib/b/router.ex"]
    r = Resolver(paths)
    assert r.resolve("Phoenix.Socket.Message", "lib/phoenix/channel.ex", "elixir") == paths[1]
    assert r.resolve("Phoenix.LiveView", "lib/phoenix/channel.ex", "elixir") == paths[2]
    # a module defined inside its parent's file
    assert r.resolve("Phoenix.Socket.InvalidMessageError", "lib/phoenix/channel.ex", "elixir") == paths[0]
    # a Phoenix app's controller lives in a folder its name does not say: the one file of its name
    assert r.resolve("MyAppWeb.UserController", "lib/my_app_web/router.ex", "elixir") == paths[3]
    assert r.resolve("Other.Router", "lib/phoenix/channel.ex", "elixir") is None  # two files of that name
    assert r.resolve("Logger", "lib/phoenix/channel.ex", "elixir") is None  # Elixir's, not lib/phoenix/logger.ex
    assert r.resolve("Plug.Conn", "lib/phoenix/channel.ex", "elixir") is None  # a dependency


def test_lua_requires_resolve_on_the_module_path():
    from indexer.deps import Resolver

    paths = ["frontend/ui/widget/button.lua", "frontend/ui/font.lua", "lua/telescope/init.lua",
             "frontend/device.lua"]
    r = Resolver(paths)
    assert r.resolve("ui/widget/button", "frontend/apps/reader.lua", "lua") == paths[0]
    assert r.resolve("ui.font", "frontend/apps/reader.lua", "lua") == paths[1]
    assert r.resolve("telescope", "lua/telescope/builtin.lua", "lua") == paths[2]  # a package's init.lua
    assert r.resolve("device", "frontend/apps/reader.lua", "lua") == paths[3]
    assert r.resolve("ffi/blitbuffer", "frontend/apps/reader.lua", "lua") is None  # another repository's


def test_dart_imports_resolve_to_a_package_lib_or_beside_the_file():
    from indexer.deps import Resolver

    paths = ["packages/flame/lib/components.dart", "packages/flame/lib/src/game/game.dart",
             "packages/flame/lib/widgets.dart", "packages/flame/lib/src/cache/images.dart", "lib/screens/home.dart",
             "lib/main.dart"]
    r = Resolver(paths)
    src = "packages/flame/lib/src/game/game_widget.dart"
    assert r.resolve("'package:flame/components.dart'", src, "dart") == paths[0]
    assert r.resolve("package:flame/src/game/game.dart", "packages/flame_tiled/lib/x.dart", "dart") == paths[1]
    assert r.resolve("game.dart", "packages/flame/lib/src/game/game_widget.dart", "dart") == paths[1]  # beside it
    assert r.resolve("../cache/images.dart", src, "dart") == paths[3]
    assert r.resolve("package:flutter/widgets.dart", src, "dart") is None  # Flutter's, not flame's widgets.dart
    assert r.resolve("package:my_app/screens/home.dart", "lib/main.dart", "dart") == paths[4]  # the root package
    assert r.resolve("dart:math", src, "dart") is None


def test_zig_imports_resolve_beside_the_file_or_to_the_package_of_that_name():
    from indexer.deps import Resolver

    paths = ["src/vsr.zig", "src/stdx/stdx.zig", "src/lsm/tree.zig", "src/io/root.zig", "lib/root.zig"]
    r = Resolver(paths)
    assert r.resolve("../vsr.zig", "src/lsm/tree.zig", "zig") == paths[0]
    assert r.resolve("lsm/tree.zig", "src/vsr.zig", "zig") == paths[2]
    assert r.resolve("stdx", "src/lsm/tree.zig", "zig") == paths[1]  # a build.zig module, by its file's name
    assert r.resolve("std", "src/lsm/tree.zig", "zig") is None  # the standard library's
    assert r.resolve("root", "src/lsm/tree.zig", "zig") is None  # the compiler's name for the root file
    assert r.resolve("tree.zig", "src/vsr.zig", "zig") is None  # not beside src/vsr.zig


def test_js_ts_and_vue_imports_resolve_the_src_alias():
    from indexer.deps import Resolver

    paths = ["src/api/mall/product/brand/index.ts", "src/utils/dict.ts", "src/components/UploadImg.vue",
             "apps/web/src/api/user.ts", "src/api/user.ts"]
    r = Resolver(paths)
    view = "src/views/mall/product/brand/BrandForm.vue"
    assert r.resolve("@/api/mall/product/brand", view, "vue") == paths[0]  # a folder's index.ts
    assert r.resolve("@/utils/dict", "src/store/modules/app.ts", "typescript") == paths[1]
    assert r.resolve("~/components/UploadImg.vue", view, "vue") == paths[2]
    assert r.resolve("@/api/user", "apps/web/src/views/home.vue", "vue") == paths[3]  # this package's src
    assert r.resolve("@/api/user", "vite.config.ts", "typescript") == paths[4]  # the root's src
    assert r.resolve("@/api/user", "src/main.py", "python") is None
    assert r.resolve("@vueuse/core", view, "vue") is None  # a package
    assert r.resolve("../../components/UploadImg.vue", "src/views/mall/Brand.vue", "vue") == paths[2]


def test_vue_components_give_symbols_and_dependency_edges(git_repo, tmp_path):
    """A Vue application, end to end: a component's script functions become its module's symbols, and its imports
    through the `@/` alias become dependency edges; .vue files are not reported as code without a grammar."""
    files = {f"src/views/mall/Brand{i}.vue":
             "<!-- 商品品牌 -->\n<template><div /></template>\n<script setup lang=\"ts\">\n"
             f"import {{ getBrand{i} }} from '@/api/mall'\n/** Loads brand {i}. */\nconst loadBrand{i} = () => getBrand{i}()\n"
             "</script>\n" for i in range(85)}  # enough for src to split into its folders
    files["src/api/mall/index.ts"] = "/** Fetches a brand. */\nexport function getBrand0() {}\n"
    files["src/api/system.ts"] = "export function getUser() {}\n"
    files["src/api/infra.ts"] = "export function getConfig() {}\n"
    g, owner = index_parsed(git_repo, tmp_path, files)
    assert {"loadBrand0", "loadBrand84", "getBrand0", "getUser"} <= set(owner)
    assert owner["loadBrand3"] != owner["getBrand0"]
    assert dict(g.dependencies(owner["loadBrand3"])).get(owner["getBrand0"]) == 85
    assert {s.name: s.doc for s in g.modules[owner["loadBrand3"]].symbols}["loadBrand3"] == "Loads brand 3."


def test_the_parser_version_follows_the_queries_the_parser_and_the_import_resolution(tmp_path, monkeypatch):
    """A refresh keeps unchanged files' parses and resolved imports while the parser version is the same: a change
    to how imports resolve (deps.py) must change it too, or an upgrade would keep old, unresolved imports; and so
    must a change to a file's words (describe.py's `file_terms`, cached with the parse), and to how text is cut into
    words (text.py, and the glossary whose terms the Chinese segmenter holds: 主线程 was cut 主线 程 before stop 56)."""
    import shutil
    from importlib import resources

    pkg = resources.files("indexer")
    copy = tmp_path / "indexer"
    shutil.copytree(pkg / "queries", copy / "queries")
    for name in ("parse.py", "languages.py", "deps.py", "describe.py", "text.py", "zh_terms.tsv"):
        shutil.copy(pkg / name, copy / name)
    monkeypatch.setattr(build_mod.resources, "files", lambda _name: copy)
    versions = [build_mod.parser_version()]
    for name in ("deps.py", "parse.py", "queries/dart.scm", "describe.py", "text.py", "zh_terms.tsv"):
        with open(copy / name, "a") as fh:
            fh.write("\n# changed\n")
        versions.append(build_mod.parser_version())
    assert len(set(versions)) == 7



def test_haskell_imports_resolve_to_the_module_file():
    from indexer.deps import Resolver

    paths = ["src/Text/Pandoc/Class.hs", "src/Text/Pandoc/Writers/Docx.hs", "app/Main.hs"]
    r = Resolver(paths)
    assert r.resolve("Text.Pandoc.Class", "src/Text/Pandoc/Writers/Docx.hs", "haskell") == paths[0]
    assert r.resolve("Text.Pandoc.Writers.Docx", "app/Main.hs", "haskell") == paths[1]
    assert r.resolve("Data.Map", "app/Main.hs", "haskell") is None  # a library's



def test_ocaml_opens_resolve_to_the_one_file_of_the_module():
    from indexer.deps import Resolver

    paths = ["otherlibs/stdune/stdune.ml", "src/dune_rules/import.ml", "src/dune_engine/import.ml",
             "src/dune_rules/lib_info.ml"]
    r = Resolver(paths)
    assert r.resolve("Stdune", "bin/main.ml", "ocaml") == paths[0]
    assert r.resolve("Lib_info.Status", "src/dune_rules/lib.mli", "ocaml_interface") == paths[3]
    assert r.resolve("Import", "src/dune_rules/lib.ml", "ocaml") is None  # two modules of that name
    assert r.resolve("List", "bin/main.ml", "ocaml") is None  # the standard library's


ATTRS_ROOT = """# linguist's attributes, and others that say nothing of vendored or generated code
*.pb.go linguist-generated
Sources/CNIOSHA1/* linguist-vendored
Sources/CNIOLinux/ifaddrs-* linguist-vendored=true
docs/** linguist-documentation
vendor/** -linguist-vendored
gen/**/*.rbi linguist-generated
**/fixtures/*.json linguist-vendored
/top.c linguist-vendored
lib/**/mid/*.c linguist-generated
lib/x?.h linguist-generated
lib/[a-c]*.js linguist-vendored
lib/[!a-c]*.ts linguist-generated=false
.github/ linguist-vendored
*.txt linguist-vendored
keep.txt !linguist-vendored
data/*.csv linguist-vendored=false
*.lock binary
**/**/**/gen/*.h linguist-generated
"""
ATTRS_NESTED = """*.c linguist-generated
inner/*.h -linguist-generated
/only-here.py linguist-vendored
"""
PROBE_PATHS = [
    "api/user.pb.go", "api/v1/deep/user.pb.go", "api/user.go", "Sources/CNIOSHA1/c_nio_sha1.c",
    "Sources/CNIOSHA1/include/CNIOSHA1.h", "Sources/CNIOLinux/ifaddrs-android.c", "Sources/CNIOLinux/shim.c",
    "docs/index.md", "vendor/lib/a.go", "vendor/x.go", "gen/a.rbi", "gen/b/c/d.rbi", "gen/a.rb", "fixtures/x.json",
    "a/b/fixtures/x.json", "a/b/fixtures/c/x.json", "top.c", "sub/top.c", "lib/mid/a.c", "lib/a/b/mid/c.c",
    "lib/a/mid/sub/c.c", "lib/xy.h", "lib/xyz.h", "lib/x/.h", "lib/apple.js", "lib/dog.js", "lib/dog.ts", "lib/cat.ts",
    ".github/workflows/ci.yml", "notes.txt", "a/keep.txt", "keep.txt", "data/a.csv", "data/b/a.csv", "Cargo.lock",
    "nested/x.c", "nested/inner/y.h", "nested/inner/y.c", "nested/deeper/z.c", "nested/only-here.py",
    "nested/sub/only-here.py", "only-here.py", "plain/file.py", "gen/a.h", "p/q/r/s/t/u/v/w/gen/a.h",
    "p/q/r/s/t/u/v/w/gen/x/a.h"]


def test_gitattributes_patterns_are_read_as_git_reads_them(git_repo):
    """The rules of `.gitattributes` files (root and nested; name patterns, path patterns, `**`, classes, set, unset,
    forgotten, valued) say of each path what `git check-attr` says, git itself being the reference."""
    import subprocess

    from indexer.attributes import marks, sort_rules

    git_repo.commit("attributes", {".gitattributes": ATTRS_ROOT, "nested/.gitattributes": ATTRS_NESTED})
    out = subprocess.run(["git", "check-attr", "-z", "--stdin", "linguist-vendored", "linguist-generated"],
                         cwd=git_repo.root, input="\0".join(PROBE_PATHS) + "\0", capture_output=True, text=True,
                         check=True).stdout.split("\0")
    git_says: dict[str, dict[str, bool]] = {p: {} for p in PROBE_PATHS}
    for path, attr, value in zip(out[0::3], out[1::3], out[2::3]):
        if value != "unspecified":
            git_says[path][attr] = value not in ("unset", "false")
    rules = sort_rules({".gitattributes": ATTRS_ROOT, "nested/.gitattributes": ATTRS_NESTED})
    ours = {p: marks(rules, p) for p in PROBE_PATHS}
    assert ours == git_says
    assert sum(any(v.values()) for v in ours.values()) >= 15 and sum(False in v.values() for v in ours.values()) >= 5


def test_files_a_repository_marks_vendored_or_generated_are_not_indexed(git_repo, tmp_path):
    """swift-nio marks the C code it copied in `linguist-vendored`; Homebrew marks its generated type stubs
    `linguist-generated`. Those files get no module and their updates teach the history nothing, while a folder named
    like vendored code that the attributes un-mark is the repository's own. A change of the attributes is read on
    the next refresh."""
    git_repo.commit("initial", {
        ".gitattributes": "Sources/CNIOSHA1/* linguist-vendored\n**/*.pb.go linguist-generated\n"
                          "vendor/** -linguist-vendored\n",
        "Sources/NIOCore/channel.swift": "public final class Channel { func write() {} }\n",
        "Sources/CNIOSHA1/sha1.c": "void sha1_update(void) {}\n", "Sources/CNIOSHA1/sha1.h": "void sha1_update(void);\n",
        "Sources/CNIOSHA1/include/shim.h": "void shim(void);\n",  # `*` stays within the folder
        "api/user.go": "package api\nfunc Login() {}\n", "api/user.pb.go": "package api\nfunc Marshal() {}\n",
        "vendor/acme/client.go": "package acme\nfunc Dial() {}\n"})
    for i in range(3):
        git_repo.commit(f"Update the vendored SHA-1 to {i}", {"Sources/CNIOSHA1/sha1.c": f"void sha1_update(void) {{}} // {i}\n"})
        git_repo.commit(f"Regenerate protobufs {i}", {"api/user.pb.go": f"package api\nfunc Marshal() {{}} // {i}\n"})
    git_repo.commit("Let channels write vectors", {"Sources/NIOCore/channel.swift": "public final class Channel {}\n",
                                                   "Sources/CNIOSHA1/sha1.h": "void sha1_update(int);\n"})
    store = store_for(tmp_path)
    res = index(git_repo.root, store, full=True)
    files = {f for m in res.graph.modules.values() for f in m.files}
    assert {"Sources/NIOCore/channel.swift", "api/user.go", "vendor/acme/client.go",
            "Sources/CNIOSHA1/include/shim.h"} <= files
    assert not files & {"Sources/CNIOSHA1/sha1.c", "Sources/CNIOSHA1/sha1.h", "api/user.pb.go"}
    assert not [h for h in res.graph.history if h.subject.startswith(("Update the vendored", "Regenerate"))]
    assert [h.modules for h in res.graph.history if h.subject == "Let channels write vectors"] == [("Sources",)]
    assert any(".gitattributes marks 3 files as vendored or generated" in n for n in res.notes)
    assert not any("vendor/ is named like vendored code" in n for n in res.notes)  # the attributes said it

    git_repo.commit("stop marking protobufs", {".gitattributes": "Sources/CNIOSHA1/* linguist-vendored\n"})
    res = refresh(git_repo.root, store)
    files = {f for m in res.graph.modules.values() for f in m.files}
    assert "api/user.pb.go" in files and "vendor/acme/client.go" not in files
    assert [h for h in res.graph.history if h.subject.startswith("Regenerate")]
    assert any(".gitattributes marks 2 files" in n for n in res.notes)


def test_what_a_ci_workflow_runs_makes_its_module_the_answer_to_ci_questions(git_repo, tmp_path):
    """alibaba/nacos: "fix: upgrade upload-artifact version" went to `(root)` and "Update action workflow java
    version" half to `(root)`: no grammar reads a workflow, so `.github` had no word of what its pipelines run. Its
    values count now (each word once, the schema's keys not at all), and its description says which actions its
    workflows use and on which runners."""
    from inference.lexical import LexicalMatcher

    workflow = """name: "Continuous Integration"
on:
  push:
    branches: [ develop ]
jobs:
  ci:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-java@v4
        with:
          distribution: zulu
          java-version: 17
      - run: mvn -B clean verify
      - uses: actions/upload-artifact@v3
        with:
          name: coverage
          path: target/site/jacoco
"""
    git_repo.commit("initial", {
        ".github/workflows/ci.yml": workflow,
        "server/Upload.java": "/** Uploads a configuration file to the server. */\n"
                              "public class Upload { public void upload(String version) {} }\n",
        "client/Version.java": "/** The client's version. */\npublic class Version { String java; }\n",
        "pom.xml": "<project><version>1.0</version></project>\n",
    })
    g = index(git_repo.root, store_for(tmp_path), full=True).graph
    gh = g.modules[".github"]
    assert "actions used: checkout, setup-java, upload-artifact" in gh.description and "ubuntu-latest" in gh.description
    assert {"checkout", "coverage"} <= set(gh.keywords) and not {"uses", "steps", "runs"} & set(gh.keywords)
    lex = LexicalMatcher(g)
    for text in ("upgrade upload-artifact to v4 in the workflow", "run the build on ubuntu-latest with the zulu jdk 17"):
        assert lex.match(text, k=1)[0].module == ".github", (text, lex.match(text, k=3))
