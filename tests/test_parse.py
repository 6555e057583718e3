"""Tests for the tree-sitter parsing layer (indexer.languages, indexer.parse, queries)."""
from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
from tree_sitter import Query

from indexer.languages import LANGUAGES, SFC, get_language, get_parser, language_for
from indexer.parse import INCLUDE_RE, QUERY_FILE, get_query, parse_file, query_source
from indexer.records import FileRecord

FIXTURES = Path(__file__).parent / "fixtures" / "langs"


def parse_fixture(name: str) -> FileRecord:
    data = (FIXTURES / name).read_bytes()
    return parse_file(f"src/{name}", data, "0" * 40)


def kinds(rec: FileRecord) -> dict[str, str]:
    return {s.name: s.kind for s in rec.symbols}


def doc(rec: FileRecord, name: str) -> str:
    return next(s.doc for s in rec.symbols if s.name == name)


# (fixture, language, {name: kind}, {name: doc}, imports, header startswith)
CASES = [
    (
        "sample.c",
        "c",
        {"ring_buffer": "struct", "ring_state": "enum", "ring_size_t": "type", "ring_push": "function",
         "ring_reset": "function"},
        {"ring_push": "Push one byte into the ring buffer. Returns 0 on success.",
         "ring_buffer": "A fixed-size ring buffer.", "ring_state": "Possible states of the buffer."},
        ["stdio.h", "ring/buffer.h"],
        "sample.c - ring buffer utilities for the audio backend.",
    ),
    (
        "sample.cpp",
        "cpp",
        {"gpu": "namespace", "PipelineCache": "class", "get": "method", "Stage": "enum", "Options": "struct",
         "PipelineCache_clear": "function", "size": "method"},
        {"PipelineCache": "Caches compiled compute pipelines by shader hash.",
         "get": "Look up a pipeline, compiling it on a miss.", "PipelineCache_clear": "Clears all cached pipelines."},
        ["vector", "gpu/vulkan/pipeline.hpp"],
        "sample.cpp - Vulkan compute pipeline cache.",
    ),
    (
        "sample.h",
        "cpp",
        {"TensorPool": "class", "allocate": "method", "allocator_t": "type", "allocator_create": "function"},
        {"allocate": "Allocate a block of at least `size` bytes.",
         "allocator_create": "Create a new allocator with the given alignment."},
        ["stddef.h"],
        "sample.h - public interface of the tensor allocator.\nInclude this header from backends only.",
    ),
    (
        "sample.m",
        "objc",
        {"CameraSession": "class", "start": "method", "default_frame_rate": "function"},
        {"CameraSession": "Wraps an AVCaptureSession.", "start": "Start streaming frames.",
         "default_frame_rate": "Returns the default frame rate."},
        ["Foundation/Foundation.h", "capture_config.h"],
        "sample.m - camera capture session for iOS.",
    ),
    (
        "sample.py",
        "python",
        {"Tokenizer": "class", "encode": "method", "decode": "method", "build_tokenizer": "function",
         "decorated": "function"},
        {"Tokenizer": "Byte-pair encoding tokenizer.", "encode": "Encode text into token ids.",
         "decode": "Decode a list of ids.", "build_tokenizer": "Build a tokenizer from a vocab file.",
         "decorated": "A decorated function."},
        ["os", "collections", ".vocab"],
        "Tokenizer utilities for the inference server.\nHandles BPE merges and special tokens.",
    ),
    (
        "sample.go",
        "go",
        {"Cache": "struct", "Store": "interface", "Get": "method", "New": "function"},
        {"Get": "Get returns the cached value for key.", "New": "New creates a cache holding at most n items.",
         "Cache": "Cache is a fixed-size LRU cache."},
        ["container/list", "sync"],
        "Package cache implements an LRU cache for blob storage.",
    ),
    (
        "sample.java",
        "java",
        {"PaymentService": "class", "charge": "method", "ChargeResult": "interface", "ok": "method",
         "Currency": "enum"},
        {"PaymentService": "Processes payments against the gateway.", "charge": "Charge the given card.",
         "ChargeResult": "Result of a charge."},
        ["java.util.List", "java.util.Objects.requireNonNull"],
        "PaymentService.java - processes card payments.",
    ),
    (
        "sample.kt",
        "kotlin",
        {"SyncEngine": "class", "push": "method", "Remote": "interface", "fetch": "method",
         "defaultEngine": "function", "Registry": "object"},
        {"SyncEngine": "Synchronises local notes with the server.", "push": "Push pending changes.",
         "defaultEngine": "Create a default engine."},
        ["kotlinx.coroutines.flow.Flow", "com.example.db.NoteDao"],
        "sample.kt - sync engine for the offline notes app.",
    ),
    (
        "sample.js",
        "javascript",
        {"SocketClient": "class", "connect": "method", "formatMessage": "function", "parseFrame": "function"},
        {"SocketClient": "A reconnecting websocket client.", "connect": "Open the connection.",
         "formatMessage": "Format a message for display.", "parseFrame": "Arrow function helper."},
        ["events", "fs"],
        "sample.js - websocket client for the dashboard.",
    ),
    (
        "sample.ts",
        "typescript",
        {"RetryOptions": "interface", "Backoff": "type", "Mode": "enum", "RetryPolicy": "class", "run": "method",
         "delayFor": "function", "jitter": "function"},
        {"RetryOptions": "Options controlling retries.", "RetryPolicy": "Executes requests with retries.",
         "run": "Run the request, retrying on failure.", "delayFor": "Compute the delay for an attempt."},
        ["./http/agent", "path"],
        "sample.ts - retry policy for HTTP requests.",
    ),
    (
        "sample.tsx",
        "tsx",
        {"SettingsProps": "interface", "SettingsPage": "class", "render": "method", "Toggle": "function"},
        {"SettingsPage": "Settings page container.", "render": "Render the page.",
         "Toggle": "A small toggle widget."},
        ["react"],
        "sample.tsx - settings page component.",
    ),
    (
        "sample.rs",
        "rust",
        {"Scheduler": "struct", "Policy": "enum", "Schedulable": "interface", "deadline": "method",
         "new": "method", "next_request": "function", "RequestId": "type", "tests": "module"},
        {"Scheduler": "A deadline-based I/O scheduler.", "new": "Create an empty scheduler.",
         "next_request": "Pick the next request to serve."},
        ["std::collections::HashMap", "crate::io::{Request, Queue}"],
        "sample.rs - block device scheduler.\nOrders I/O requests by deadline.",
    ),
    (
        "sample.swift",
        "swift",
        {"ImageCache": "class", "image": "method", "DecodeOptions": "struct", "ImageLoader": "interface",
         "load": "method", "CacheError": "enum", "resize": "function"},
        {"ImageCache": "Caches decoded images in memory.", "image": "Look up an image by key.",
         "resize": "Resize an image to the given width."},
        ["UIKit"],
        "sample.swift - image cache for the photo browser.",
    ),
    (
        "sample.cs",
        "csharp",
        {"RequestRunner": "class", "SendAsync": "method", "IRunner": "interface", "Run": "method",
         "Endpoint": "struct", "Verb": "enum", "Header": "class", "Completed": "type"},
        {"RequestRunner": "Runs requests through the handlers.", "SendAsync": "Send a request and wait for the answer.",
         "IRunner": "Something that runs."},
        ["System.Text", "Acme.Http.Handlers"],
        "sample.cs - the HTTP request pipeline.",
    ),
    (
        "sample.rb",
        "ruby",
        {"Routing": "module", "RouteSet": "class", "draw": "method", "match": "method", "empty": "method",
         "print_routes": "function"},
        {"RouteSet": "Builds and matches routes.", "draw": "Draw the routes from a block.",
         "empty": "Build an empty route set.", "print_routes": "Print the routes of an application."},
        ["rack/utils", "./support/helpers"],
        "sample.rb - the router that maps paths to controllers.",
    ),
    (
        "sample.php",
        "php",
        {"Repository": "class", "get": "method", "Store": "interface", "put": "method", "Macroable": "interface",
         "macro": "method", "Driver": "enum", "cache_repository": "function"},
        {"Repository": "Stores items with an expiry.", "get": "Get an item, or the default.",
         "Store": "The store the repository writes to.", "cache_repository": "Build a repository for a driver."},
        ["Acme/Contracts/Cache/Store", "Closure", "./helpers.php"],
        "sample.php - the cache repository.",
    ),
    (
        "sample.scala",
        "scala",
        {"Router": "class", "select": "method", "Routee": "interface", "send": "method", "Routers": "object",
         "apply": "method", "RoundRobin": "class", "defaultRouter": "function", "Selector": "type"},
        {"Router": "Routes messages to its routees.", "select": "Pick the routee for a message.",
         "defaultRouter": "Build a router with default settings."},
        ["scala.concurrent.Future", "akka.util.Timeout", "akka.util.ByteString", "akka.dispatch"],
        "sample.scala - actors for the message router.",
    ),
    (
        "sample.ex",
        "elixir",
        {"Acme.Channel": "module", "join": "function", "push": "function", "__internal__": "function",
         "encode": "function", "__using__": "function", "is_topic": "function", "Reply": "module",
         "Acme.Serializer": "interface", "encode!": "function"},
        {"Acme.Channel": "Joins topics and pushes messages to the clients of a socket.",
         "join": "Join a topic with its parameters.",  # an @spec between the @doc and the def
         "push": "Push an event to the client.", "__internal__": "",  # @doc false
         "Reply": "A reply to a pushed message.", "encode!": "Encode a term for the wire."},
        ["Acme.Socket.Broadcast", "Acme.Socket.Message", "Acme.Router", "Logger"],
        "sample.ex - channels over a socket.",
    ),
    (
        "sample.lua",
        "lua",
        {"Button": "class", "init": "method", "setText": "function", "private_helper": "function",
         "fromSpec": "function"},  # `clamp`, local to `init`, is no symbol
        {"Button": "A tappable button.",  # LDoc's `---`, its `@table` line dropped
         "init": "Lay the button out.", "setText": "Set the label.", "fromSpec": "Make a button from a spec."},
        ["ui/widget/container/inputcontainer", "ui.font"],
        "sample.lua - a button that runs a callback when tapped.",
    ),
    (
        "sample.dart",
        "dart",
        {"SpriteBatch": "class", "length": "method", "add": "method", "empty": "method", "Drawable": "class",
         "draw": "method", "HasGameRef": "class", "Squares": "extension", "squared": "method", "BlendMode": "enum",
         "TickCallback": "type", "loadAll": "function"},  # `helper` and `inner`, local to a body, are no symbols
        {"SpriteBatch": "Draws many sprites with one call.",  # the dartdoc's code example dropped
         "add": "Adds a sprite at [offset].",  # `@override` between the doc and the method
         "length": "The number of sprites.", "Squares": "Extra helpers on numbers.",
         "TickCallback": "A callback for every tick.", "loadAll": "Loads all images of a folder."},
        ["dart:math", "package:flame/components.dart", "../cache/images.dart", "src/sprite_batch_item.dart",
         "sprite_batch_stats.dart"],
        "sample.dart - sprites drawn in one batch.",
    ),
    (
        "sample.zig",
        "zig",
        {"IO": "struct", "flush": "method", "DirectIO": "enum", "Error": "type", "TreeType": "function",
         "lookup": "method", "Value": "struct", "buffer_limit": "function"},  # a test's local `Fixture` is none
        {"IO": "A ring of submissions.", "flush": "Submits every queued operation.", "Error": "What can go wrong.",
         "lookup": "Looks a key up.",  # a method of the struct a generic function returns
         "Value": ""},
        ["std", "stdx", "../vsr.zig"],
        "sample.zig - the event loop over io_uring and kqueue.",  # the file's `//!` doc
    ),
    (
        "sample.hs",
        "haskell",
        {"ReportState": "type", "Width": "type", "Renderable": "interface", "render": "method", "Env": "type",
         "writeReport": "function", "totalWidth": "function"},  # `helper` and `local` are local; instances none
        {"ReportState": "The state of the writer.",  # the grammar leaves it at the end of the imports
         "render": "Render it.", "writeReport": "Write a report as a spreadsheet.",
         "totalWidth": "Sum of the widths.", "Env": ""},
        ["Data.Map", "Acme.Class", "Acme.Writers.Report.Types"],
        "sample.hs - renders a report as a spreadsheet.",  # the Haddock header without its fields
    ),
    (
        "sample.ml",
        "ocaml",
        {"Info": "module", "mode": "type", "artifact": "type", "Cycle": "type", "compile": "function",
         "loop": "function", "Archive": "module", "make": "function", "S": "interface", "printer": "class",
         "now": "function"},  # `helper`, local to `compile`, is none
        {"mode": "The mode a library is built in.", "compile": "Compile [lib] for [mode].",
         "make": "Make an archive.", "loop": ""},
        ["Import", "Stdune"],
        "sample.ml - building rules for a library.",
    ),
    (
        "sample.mli",
        "ocaml_interface",
        {"mode": "type", "compile": "function", "Archive": "module", "make": "function", "Cycle": "type",
         "now": "function"},
        {"compile": "Compile [lib] for [mode].", "Archive": "Everything about archives.", "make": "Make an archive."},
        ["Stdune"],
        "sample.mli - what building a library offers.",
    ),
]


@pytest.mark.parametrize("fixture,lang,expected,docs,imports,header", CASES, ids=[c[0] for c in CASES])
def test_fixture(fixture, lang, expected, docs, imports, header):
    rec = parse_fixture(fixture)
    assert rec.language == lang
    assert rec.error == ""
    assert rec.path == f"src/{fixture}"
    assert kinds(rec) == expected
    for name, d in docs.items():
        assert doc(rec, name) == d, name
    assert rec.imports == imports
    assert rec.header == header
    assert rec.text == ""
    for s in rec.symbols:
        assert s.path == rec.path
        assert s.line >= 1
    # no duplicates
    assert len({(s.name, s.kind) for s in rec.symbols}) == len(rec.symbols)


def test_symbol_lines_are_one_based():
    rec = parse_fixture("sample.py")
    lines = {s.name: s.line for s in rec.symbols}
    assert lines["Tokenizer"] == 10
    assert lines["encode"] == 13
    assert lines["build_tokenizer"] == 23


def test_every_fixture_covered():
    names = {p.name for p in FIXTURES.iterdir()}
    assert names == {c[0] for c in CASES}


# --------------------------------------------------------------------------- languages and queries


def test_language_for():
    assert language_for("a/b/foo.py") == "python"
    assert language_for("foo.PY") == "python"
    assert language_for("x.h") == "cpp"
    assert language_for("x.c") == "c"
    assert language_for("k.cu") == "cpp"
    assert language_for("App.tsx") == "tsx"
    assert language_for("index.d.ts") == "typescript"
    assert language_for("view.mm") == "objc"
    assert language_for("build.gradle.kts") == "kotlin"
    assert [language_for(p) for p in ("a.dart", "b.zig", "C.hs", "d.ml", "d.mli", "E.vue", "F.svelte")] == \
        ["dart", "zig", "haskell", "ocaml", "ocaml_interface", "vue", "svelte"]
    assert language_for("README.md") == ""
    assert language_for("Makefile") == ""
    assert language_for(".gitignore") == ""


def test_every_language_has_a_query_file():
    qdir = importlib.resources.files("indexer") / "queries"
    files = {p.name for p in qdir.iterdir() if p.name.endswith(".scm")}
    own = {f"{QUERY_FILE.get(lang, lang)}.scm" for lang in LANGUAGES}
    included = {name for f in own for name in INCLUDE_RE.findall((qdir / f).read_text(encoding="utf-8"))}
    assert files == own | included  # every file is some language's query or a part one includes
    assert not included & own


def test_a_query_includes_a_shared_part_in_place():
    ml, mli = query_source("ocaml"), query_source("ocaml_interface")
    assert not INCLUDE_RE.search(ml) and not INCLUDE_RE.search(mli)
    for src in (ml, mli):  # the shared patterns, between each file's own ones
        assert "(type_definition" in src and "(class_definition" in src and "(external" in src
    assert ml.index("(value_definition") < ml.index("(type_definition") < ml.index("(open_module")
    assert "(value_specification" in mli and "(value_definition" not in mli
    src = "type t = A\nexception Oops of string\nmodule M = struct end\nlet run x = x\n"
    rec = parse_file("lib/a.ml", src.encode(), "b1")
    assert {s.name for s in rec.symbols} >= {"t", "Oops", "M", "run"}
    rec = parse_file("lib/a.mli", b"type t\nexception Oops of string\nval run : t -> t\n", "b2")
    assert {s.name for s in rec.symbols} >= {"t", "Oops", "run"}


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_query_compiles(lang):
    src = query_source(lang)  # its own file, or the one it shares (tsx: typescript.scm)
    q = Query(get_language(lang), src)
    assert q.pattern_count > 0
    names = {q.capture_name(i) for i in range(q.capture_count)}
    assert "import" in names
    assert any(n.startswith("definition.") for n in names)
    assert get_query(lang) is get_query(lang)
    assert get_parser(lang) is get_parser(lang)


def test_extensions_are_unique():
    seen: dict[str, str] = {}
    for lang, exts in LANGUAGES.items():
        for ext in exts:
            assert ext.startswith(".") and ext == ext.lower()
            assert ext not in seen, (ext, lang, seen.get(ext))
            seen[ext] = lang


# --------------------------------------------------------------------------- bad input


def test_binary():
    data = b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4
    rec = parse_file("bin/tool.py", data, "b1")
    assert rec.error == "binary"
    assert rec.symbols == [] and rec.text == "" and rec.header == ""
    assert rec.size == len(data) and rec.blob == "b1"


def test_non_utf8_still_parsed():
    rec = parse_file("m.py", b"def f():\n    return '\xff'\n", "b2")
    assert rec.error == "not utf-8"
    assert kinds(rec) == {"f": "function"}


def test_non_utf8_text_file():
    rec = parse_file("notes.txt", b"caf\xe9 latin-1 text\n", "b3")
    assert rec.error == "not utf-8"
    assert rec.text.startswith("caf\ufffd latin-1")


def test_python_syntax_error_keeps_good_definitions():
    src = b'''"""Module doc."""

def good_one():
    """First."""
    return 1


def broken(:
    pass


class StillHere:
    def method(self):
        return 2
'''
    rec = parse_file("bad.py", src, "b4")
    assert rec.error == "syntax errors"
    k = kinds(rec)
    assert k["good_one"] == "function"
    assert k["StillHere"] == "class"
    assert doc(rec, "good_one") == "First."
    assert rec.header == "Module doc."


def test_too_large():
    data = b"x = 1\n" * 100
    rec = parse_file("big.py", data, "b5", max_bytes=100)
    assert rec.error == "too large"
    assert rec.path == "big.py" and rec.size == len(data)
    assert rec.symbols == [] and rec.text == "" and rec.imports == []


def test_empty_files():
    for path in ("empty.py", "empty.c", "empty.md", "empty"):
        rec = parse_file(path, b"", "e")
        assert rec.error == ""
        assert rec.symbols == [] and rec.imports == [] and rec.header == "" and rec.text == ""


def test_markdown_keeps_text():
    md = "# FastTok\n\nA fast tokenizer.\n\n" + "Lorem ipsum dolor. " * 500
    rec = parse_file("docs/README.md", md.encode(), "b6")
    assert rec.language == ""
    assert rec.error == ""
    assert rec.text.startswith("# FastTok\n\nA fast tokenizer.")
    assert 3000 <= len(rec.text) <= 4000
    assert rec.symbols == []


def test_unknown_config_keeps_text():
    rec = parse_file("CMakeLists.txt", b"project(foo)\nadd_library(foo src/a.c)\n", "b7")
    assert rec.text.startswith("project(foo)")


def test_garbage_never_raises():
    import random

    rnd = random.Random(0)
    for lang, exts in [*LANGUAGES.items(), *((lang, (ext,)) for ext, lang in SFC.items())]:
        for _ in range(5):
            data = bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(0, 400)))
            if lang in SFC.values():  # a component's script block holds the garbage
                data = b'<template><p>x</p></template>\n<script lang="ts">' + data + b"</script>\n"
            rec = parse_file(f"g{exts[0]}", data, "g")
            assert isinstance(rec, FileRecord)
            assert not rec.error.startswith("parse failed"), rec.error


def test_bom_and_backslash_paths():
    rec = parse_file("pkg\\mod.py", b"\xef\xbb\xbf# Header line.\ndef f():\n    pass\n", "b8")
    assert rec.path == "pkg/mod.py"
    assert rec.error == ""
    assert rec.header == "Header line."
    assert rec.symbols[0].path == "pkg/mod.py"


# --------------------------------------------------------------------------- details


def test_nested_functions_are_dropped_and_relative_imports():
    src = b"from . import x, y as z\nimport os.path as p\n\ndef outer():\n    def inner():\n        pass\n"
    rec = parse_file("a.py", src, "n")
    assert kinds(rec) == {"outer": "function"}
    assert rec.imports == [".x", ".y", "os.path"]


def test_license_header_skipped_and_include_guard():
    src = b"""/*
 * Copyright 2020 Foo Inc.
 * Licensed under the Apache License, Version 2.0 (the "License");
 */
#ifndef FOO_BAR_H
#define FOO_BAR_H

/* Bar: quantised matrix multiply kernels. */

#include "foo/base.h"

/// Multiply two numbers.
int bar_mul(int a, int b);
typedef void (*bar_cb)(int);

#endif
"""
    rec = parse_file("include/bar.h", src, "h")
    assert rec.header == "Bar: quantised matrix multiply kernels."
    assert rec.imports == ["foo/base.h"]
    k = kinds(rec)
    assert k["bar_mul"] == "function"
    assert doc(rec, "bar_mul") == "Multiply two numbers."
    assert "a" not in k and "b" not in k  # parameters are not functions


def test_shebang_encoding_and_generator_stamps_are_no_header():
    """jumpserver: its modules were described as "/usr/bin/env python", "~*~ coding: utf-8 ~*~" and "Generated by
    Django 4.1.13 on 2024-05-09 03:16" (a shebang, an encoding declaration, a migration's stamp)."""
    head = b"#!/usr/bin/env python\n# ~*~ coding: utf-8 ~*~\n#\n# Vault backends of the accounts.\nimport os\n"
    assert parse_file("apps/accounts/backends.py", head, "s").header == "Vault backends of the accounts."
    assert parse_file("apps/manage.py", b"#!/usr/bin/env python\nimport os\n", "m").header == ""
    mig = b"# Generated by Django 4.1.13 on 2024-05-09 03:16\n\nfrom django.db import migrations\n"
    assert parse_file("apps/acls/migrations/0001_initial.py", mig, "g").header == ""
    gen = b"// Code generated by protoc-gen-go. DO NOT EDIT.\n// source: api.proto\n\npackage api\n"
    assert "generated" not in parse_file("api/api.pb.go", gen, "p").header.lower()
    gen = b"//go:generate mockgen -package mon -destination x_mock.go\n// Inserts collections in bulk.\npackage mon\n"
    assert parse_file("mon/bulk.go", gen, "b").header == "Inserts collections in bulk."
    gen = b"// This file was auto-generated by tb_client_header.zig\n// Do not manually modify.\n\nint x;\n"
    assert parse_file("tb_client.h", gen, "t").header == ""
    # prose that only mentions a coding or a generator stays
    prose = b"# Decoding: the frames are read in order.\nimport os\n"
    assert parse_file("codec.py", prose, "c").header == "Decoding: the frames are read in order."


def test_a_banner_is_no_header():
    """A logo of slashes and underscores atop a file, its last line the file's name beside the art."""
    src = b"#     ____      ____\n#    / __/___  / __/\n# /_/   /___/_/ fzf.py\n#\n# Fuzzy matching of lines.\nimport os\n"
    assert parse_file("src/fzf.py", src, "f").header == "Fuzzy matching of lines."


def test_commented_out_code_and_ide_template_are_no_header():
    """xxl-job: a file whose first comment is its old code described its module as "package com.xxl...; import
    ...", and IntelliJ's "Created by xuxueli on 17/5/10." stood first in many descriptions."""
    dead = b"""//package com.xxl.job.admin.core.util;
//
//import java.util.Map;
//import org.slf4j.Logger;
//
//public class CookieUtil {
//}

/** Cookies of the admin pages. */
public class CookieUtil2 {}
"""
    rec = parse_file("CookieUtil.java", dead, "d")
    assert "package" not in rec.header and "import" not in rec.header
    templ = b"""/**
 * Created by xuxueli on 17/5/10.
 */
public class JobLogCleaner {
    /**
     * Created by xuxueli on 16/9/30.
     * Deletes the logs older than the retention days.
     */
    public void clean() {}
}
"""
    rec = parse_file("JobLogCleaner.java", templ, "t")
    assert "Created by" not in rec.header
    assert doc(rec, "clean") == "Deletes the logs older than the retention days."
    # JSLint's `/* global foo, bar */` is a directive; vuejs/core's "Global compile-time constants" is prose
    assert parse_file("g.ts", b"/* global __DEV__, __TEST__ */\n// Dev helpers.\nexport const a = 1\n", "g").header == "Dev helpers."
    assert parse_file("c.ts", b"// Global compile-time constants\nexport const a = 1\n", "c").header == (
        "Global compile-time constants")
    prose = b"""/*
 * Schedules jobs on the executors; see JobTrigger.
 * Retries a failed trigger twice.
 */
public class Scheduler {}
"""
    assert parse_file("Scheduler.java", prose, "p").header.startswith("Schedules jobs on the executors; see")


def test_kotlin_and_swift_kinds():
    kt = parse_file("a.kt", b"enum class Color { RED }\ndata class P(val x: Int)\ntypealias N = String\n", "k")
    assert kinds(kt) == {"Color": "enum", "P": "class", "N": "type"}
    sw = parse_file("a.swift", b"extension Foo {\n  func clear() {}\n}\nactor Counter {}\n", "s")
    assert kinds(sw) == {"Foo": "extension", "clear": "method", "Counter": "class"}


VUE_SFC = """<!-- 商品品牌的表单: create or edit a brand -->
<template>
  <el-form :model="formData">
    <el-form-item label="品牌名称" prop="name" />
  </el-form>
</template>

<script>
export default { name: 'BrandForm' }
</script>

<script setup lang="ts">
import { DICT_TYPE } from '@/utils/dict'
import * as BrandApi from '@/api/mall/product/brand'
import UploadImg from '../components/UploadImg.vue'

/** Opens the dialog for a brand. */
const open = async (type: string, id?: number) => {
  formType.value = type
}

/** Saves the brand. */
async function submitForm(): Promise<void> {
  await BrandApi.updateBrand(formData.value)
}

interface BrandVO { id: number }
</script>

<style scoped>
.el-form { width: 100%; }
</style>
"""


def test_a_vue_component_is_read_through_its_script_blocks():
    """A Vue single-file component: each `<script>` block parsed as TypeScript or JavaScript by its `lang`, the
    symbols' lines counted in the whole file, the imports of every block, a leading `<!-- -->` as the header, and the
    markup kept as text."""
    rec = parse_file("src/views/mall/brand/BrandForm.vue", VUE_SFC.encode(), "v")
    assert rec.language == "vue" and rec.error == ""
    assert kinds(rec) == {"open": "function", "submitForm": "function", "BrandVO": "interface"}  # TS: an interface
    lines = VUE_SFC.splitlines()
    for sym in rec.symbols:
        assert sym.name in lines[sym.line - 1], sym
    assert doc(rec, "open") == "Opens the dialog for a brand." and doc(rec, "submitForm") == "Saves the brand."
    assert rec.imports == ["@/utils/dict", "@/api/mall/product/brand", "../components/UploadImg.vue"]
    assert rec.header == "商品品牌的表单: create or edit a brand"
    assert "品牌名称" in rec.text


def test_a_svelte_component_and_a_component_without_script():
    svelte = (b"<script context=\"module\">\n  // Preloads the page.\n  export function preload() {}\n</script>\n"
              b"<script>\n  import Nav from './Nav.svelte';\n  let count = 0;\n"
              b"  const inc = () => count++;\n</script>\n"
              b"<button on:click={inc}>{count}</button>\n")
    rec = parse_file("src/routes/Counter.svelte", svelte, "s")
    assert rec.language == "svelte" and rec.error == ""
    assert kinds(rec) == {"preload": "function", "inc": "function"}
    assert {s.name: s.line for s in rec.symbols} == {"preload": 3, "inc": 8}
    assert rec.imports == ["./Nav.svelte"]
    bare = parse_file("src/App.vue", b"<template><div>hello</div></template>\n", "b")
    assert bare.language == "vue" and bare.symbols == [] and bare.error == "" and "hello" in bare.text
    broken = parse_file("src/Bad.vue", b"<script setup lang=\"ts\">\nconst f = (: => {\nfunction ok() {}\n</script>\n",
                        "x")
    assert broken.error == "syntax errors" and "ok" in kinds(broken)


def test_js_require_and_reexport():
    rec = parse_file("a.js", b"export { foo } from './foo.js';\nconst x = require('lodash/fp');\n", "j")
    assert rec.imports == ["./foo.js", "lodash/fp"]


def test_minified_js_skipped():
    data = b"var a=" + b"1+" * 30000 + b"1;"
    rec = parse_file("dist/app.min.js", data, "m")
    assert rec.error == "minified"
    assert rec.symbols == []


def test_doc_is_capped():
    src = b"# " + b"word " * 200 + b"\ndef f():\n    pass\n"
    rec = parse_file("a.py", src, "c")
    assert 0 < len(doc(rec, "f")) <= 301
    assert len(rec.header) <= 501


def test_editor_file_templates_paths_and_chinese_copyright_lines_are_no_header():
    """flipped-aurora/gin-vue-admin: VS Code's koroFileHeader ("@LastEditors: 逆光飞翔 191180776@qq.com",
    "@LastEditTime", "@FilePath", an unset "@Description") described `server/initialize`, a comment holding only the
    file's own path described `server/api`, and a Chinese copyright notice ("此文件受版权保护……") `web/src/components`."""
    koro = """/*
 * @Author: 逆光飞翔 191180776@qq.com
 * @Date: 2022-12-08 17:25:49
 * @LastEditors: 逆光飞翔 191180776@qq.com
 * @LastEditTime: 2022-12-08 18:00:00
 * @FilePath: \\\\server\\\\initialize\\\\gorm_mssql.go
 * @Description: 这是默认设置,请设置`customMade`, 打开koroFileHeader查看配置 进行设置
 */
package initialize
""".encode()
    assert parse_file("server/initialize/gorm_mssql.go", koro, "k").header == ""
    said = koro.replace("这是默认设置,请设置`customMade`, 打开koroFileHeader查看配置 进行设置".encode(),
                        "Opens the SQL Server database with GORM.".encode())
    assert parse_file("server/initialize/gorm_mssql.go", said, "s").header == "Opens the SQL Server database with GORM."
    path = b"// server/api/v1/system/sys_timed_task.go\n// Timed tasks: list, create and run them.\npackage system\n"
    assert parse_file("server/api/v1/system/sys_timed_task.go", path, "p").header == "Timed tasks: list, create and run them."
    notice = """<!--
  此文件受版权保护，未经授权禁止修改！如果您尚未获得授权，请联系我们以购买授权。
  The page footer: version and links.
-->
<template><div class="footer"></div></template>
""".encode()
    header = parse_file("web/src/components/bottomInfo/bottomInfo.vue", notice, "n").header
    assert "版权" not in header and "footer" in header
