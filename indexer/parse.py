"""Parse one file into a :class:`FileRecord` with tree-sitter.

``parse_file(path, data, blob)`` never raises. For files a grammar handles (see
:mod:`indexer.languages`) it extracts definitions (with their doc comment or
docstring), imports and the file's header comment; for other files it keeps a
capped excerpt of the text.

Queries live in ``indexer/queries/<lang>.scm`` (package data; a shared part is pulled in by a
``; include: part.scm`` line, see :func:`query_source`). Capture names:
``@definition.<kind>`` on the definition node, ``@name`` on its name, ``@import``
on an imported module / included header. Parsers and compiled queries are cached
per language (per process; they are not thread-safe, use processes to go wide).
"""
from __future__ import annotations

import functools
import importlib.resources
import inspect
import re

from tree_sitter import Node, Query, QueryCursor

from .languages import LANGUAGES, SFC, get_language, get_parser, language_for
from .records import FileRecord, Symbol

MAX_DOC = 300
MAX_HEADER = 500
MAX_TEXT = 4000
MAX_SYMBOLS = 5000
BINARY_SNIFF = 8192

_COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment", "multiline_comment",
                            "documentation_comment",  # dart's `///`
                            "haddock"})  # haskell's `-- |` and `{- | -}`

# Nodes that wrap a definition: its doc comment precedes the wrapper, not the definition.
_WRAPPERS = frozenset(
    {
        "decorated_definition",  # python
        "export_statement",  # js / ts
        "ambient_declaration",  # ts `declare`
        "lexical_declaration",  # js / ts `const f = () => ...`
        "variable_declaration",
        "template_declaration",  # c++
        "type_declaration",  # go `type X struct` (single spec)
        "declaration",  # c `struct s {...};` / `typedef` wrappers
        "linkage_specification",  # c++ extern "C"
        "method_signature",  # dart: a method's signature (its body is the next sibling)
    }
)

# Function-like nodes: definitions nested inside these are local and dropped.
_FUNCTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "lambda"}),
    "c": frozenset({"function_definition"}),
    "cpp": frozenset({"function_definition", "lambda_expression"}),
    "objc": frozenset({"function_definition", "method_definition", "block_literal"}),
    "go": frozenset({"function_declaration", "method_declaration", "func_literal"}),
    "java": frozenset({"method_declaration", "constructor_declaration", "lambda_expression", "static_initializer"}),
    "kotlin": frozenset({"function_declaration", "lambda_literal", "anonymous_function", "anonymous_initializer"}),
    "javascript": frozenset(
        {"function_declaration", "function_expression", "arrow_function", "method_definition",
         "generator_function_declaration", "generator_function"}
    ),
    "rust": frozenset({"function_item", "closure_expression"}),
    "swift": frozenset({"function_declaration", "lambda_literal", "init_declaration", "computed_property"}),
    "csharp": frozenset({"method_declaration", "constructor_declaration", "local_function_statement",
                         "lambda_expression", "anonymous_method_expression", "accessor_declaration"}),
    # not Ruby's blocks: `included do ... def x` and spec blocks define real methods
    "ruby": frozenset({"method", "singleton_method", "lambda"}),
    "php": frozenset({"function_definition", "method_declaration", "anonymous_function", "arrow_function"}),
    "scala": frozenset({"function_definition", "lambda_expression"}),
    "lua": frozenset({"function_declaration", "function_definition"}),
    "dart": frozenset({"function_body", "local_function_declaration", "lambda_expression"}),
    # not Zig's functions: a generic type is a function that returns a struct, whose methods are real methods
    "zig": frozenset({"test_declaration"}),
    # a function's `where` and `let` bindings, and an instance's equations (its class says what they are)
    "haskell": frozenset({"function", "bind", "instance_declarations"}),
    "ocaml": frozenset({"let_binding", "object_expression"}),  # `let ... in`, a class's methods
}
_FUNCTIONS["typescript"] = _FUNCTIONS["tsx"] = _FUNCTIONS["javascript"]

# Type-like nodes: a function directly inside one of these is a method.
_CLASSES: dict[str, frozenset[str]] = {
    "python": frozenset({"class_definition"}),
    "c": frozenset(),
    "cpp": frozenset({"class_specifier", "struct_specifier", "union_specifier"}),
    "objc": frozenset({"class_interface", "class_implementation", "protocol_declaration"}),
    "go": frozenset(),
    "java": frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}),
    "kotlin": frozenset({"class_declaration", "object_declaration", "companion_object"}),
    "javascript": frozenset({"class_declaration", "class"}),
    "typescript": frozenset({"class_declaration", "class", "abstract_class_declaration", "interface_declaration"}),
    "rust": frozenset({"impl_item", "trait_item"}),
    "swift": frozenset({"class_declaration", "protocol_declaration"}),
    "csharp": frozenset({"class_declaration", "struct_declaration", "interface_declaration", "record_declaration"}),
    "ruby": frozenset({"class", "module", "singleton_class"}),
    "php": frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
    "scala": frozenset({"class_definition", "trait_definition", "object_definition", "enum_definition"}),
    "dart": frozenset({"class_body", "extension_body", "enum_body"}),
    "zig": frozenset({"struct_declaration", "union_declaration", "enum_declaration", "opaque_declaration"}),
    "haskell": frozenset({"class_declarations"}),
}
_CLASSES["tsx"] = _CLASSES["typescript"]

# Keyword captured as @kind -> symbol kind.
_KIND_WORDS = {
    "class": "class", "actor": "class", "struct": "struct", "enum": "enum", "extension": "extension",
    "protocol": "interface", "interface": "interface", "object": "object",
}

_C_FAMILY = frozenset({"c", "cpp", "objc"})
_C_DECLARATORS = frozenset(
    {"pointer_declarator", "reference_declarator", "parenthesized_declarator", "attributed_declarator"}
)
_C_FUNCTION_HOLDERS = frozenset({"function_definition", "declaration", "field_declaration"})

# Nodes allowed before the header comment (the header may follow them).
_PREAMBLE = frozenset(
    {"package_clause", "package_declaration", "package_header", "preproc_call", "preproc_def", "shebang_line",
     "php_tag", "pragma"}
)
_GUARDS = frozenset({"preproc_ifdef", "preproc_if"})

_LICENSE_RE = re.compile(
    r"licen[sc]ed under|permission is hereby granted|redistribution and use|gnu (?:lesser |affero )?general public"
    r"|apache license|without warranties|warranty|mozilla public license|this program is free software"
    r"|you may not use this file",
    re.I,
)
_COPYRIGHT_LINE_RE = re.compile(
    r"^(?:copyright\b|\(c\)|©|spdx-license-identifier|spdx-filecopyrighttext|all rights reserved|.*(?:版权|著作权))",
    re.I,
)
_DECOR_LINE_RE = re.compile(r"^[\s=\-*#/_~+<>.!]*$")
# the last line of an ASCII-art banner, with the file's name beside it: fzf's shell scripts begin with a logo whose
# last line is "/_/   /___/_/ completion.bash", and its `shell` folder was described as "/_/ /___/_/ completion…"
ART_PREFIX_RE = re.compile(r"^[/\\_|]+(?:[ \t]+[/\\_|]+)+[ \t]+(?=\w)")
# an editor's mode line, or a source encoding declaration alone on its line (`~*~ coding: utf-8 ~*~`, PEP 263)
_MODELINE_RE = re.compile(r"-\*-.*-\*-|^vim?:|^ex:|^[~*\-\s]*(?:en)?coding[:=]\s*[-\w.]+[~*\-\s]*$")
_RUBY_MAGIC_RE = re.compile(r"^(?:frozen_string_literal|(?:en)?coding|typed|warn_indent|shareable_constant_value):")
# Lua: a comment's dashes (`--`, LDoc's `---`, a block's `--[[` / `--[==[`) and a block's closing `]]`
_LUA_COMMENT_RE = re.compile(r"^\s*--+(?:\[=*\[)?-*\s*")
_LUA_CLOSE_RE = re.compile(r"\s*(?:--)?\]=*\]\s*$")
_OCAML_OPEN_RE = re.compile(r"^\s*\(\*+")
_OCAML_CLOSE_RE = re.compile(r"\*+\)\s*$")
_HASKELL_COMMENT_RE = re.compile(r"^\s*(?:\{-+|--+)\s*[|^*$]?\s?")
_HASKELL_CLOSE_RE = re.compile(r"\s*-+\}\s*$")
_HADDOCK_FIELD_RE = re.compile(r"^\s*(?:Module|Copyright|License|Maintainer|Stability|Portability)\s*:", re.I)
# C# XML documentation: the tags around the text go, a parameter's or exception's line goes as a whole
_XML_DOC_TAG_RE = re.compile(r"</?(?:summary|remarks|para|returns|value|example|c|code|inheritdoc|see|seealso)\b[^>]*>")
_XML_DOC_LINE_RE = re.compile(r"^<(?:param|typeparam|exception|include)\b")
# Javadoc's and JSDoc's markup: HTML tags around the text (`<p>`, `<code>`, `<ul><li>`) and inline tags
# (`{@link SaSession}`, `{@code null}`) keep their text; Sa-Token's exceptions were described as
# "一个异常：代表 API 已被禁用 <p> 一般在 API 不合适调用的时候抛出 ... </p>"
_DOC_HTML_RE = re.compile(r"</?(?:p|br|hr|b|i|u|s|em|strong|code|pre|tt|kbd|var|samp|sup|sub|small|big|ul|ol|li|dl|dt"
                          r"|dd|h[1-6]|blockquote|table|thead|tbody|tr|td|th|caption|div|span|a|font|center)\b[^<>]*>",
                          re.I)
_DOC_INLINE_RE = re.compile(r"\{@(?:link|linkplain|code|literal|value|see)\s+([^{}]*)\}|\{@inheritDoc\}")
_DOC_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|nbsp|#(?:[1-9]\d{1,4}|[1-9]));")
_DOC_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&nbsp;": " "}
_TAG_LINE_RE = re.compile(
    r"^[@\\](?:param|tparam|return|returns|retval|throws|throw|exception|see|since|author|version|file|"
    r"date|ingroup|addtogroup|defgroup|license|copyright|sa)\b",
    re.I,
)
# an IDE's file template: "Created by xuxueli on 17/5/10.", "Created with IntelliJ IDEA.", "User: x", "Date: 2020/1/1",
# VS Code's koroFileHeader ("@LastEditors: x", "@LastEditTime: 2022-12-08", "@FilePath: \\server\\x.go", and its unset
# "@Description: 这是默认设置,请设置`customMade`"), a line that is only the file's path ("// server/api/v1/x.go");
# a decompiler's or a code generator's note ("Generated by Django 4.1 on ...", "Code generated by protoc-gen-go. DO NOT
# EDIT.", "This file was auto-generated by spec_parser")
_TEMPLATE_LINE_RE = re.compile(
    r"^(?:created (?:by|with|on|using)\b|(?:user|date|time|author|created|modified|creator)\s*[:：]"
    r"|@?(?:last ?editors?|last ?edit ?time|file ?path|last ?modified(?: ?by| ?time)?)\s*[:：]|.*\bcustomMade\b"
    r"|[\\/]?(?:[\w.-]+[\\/])+[\w-]+\.\w+$"
    r"|to change this (?:template|license header)|@?(?:date|time)\s+\d"
    r"|source code recreated from a \.class file|\(?powered by (?:fern|quilt|vine)flower"
    r"|(?:this (?:file|code) (?:is|was) )?(?:code |file |auto-?)?generated (?:by|from)\b"
    r"|.*\bdo not (?:manually )?(?:edit|modify)\b)",
    re.I,
)
# a tool's directive, not prose: linters, formatters, type checkers, coverage and test runners
_PRAGMA_LINE_RE = re.compile(
    r"^(?:eslint(?:-disable|-enable|-env)?\b|(?-i:global)\s+[\w$]+(?::\s*\w+)?(?:\s*,\s*[\w$]+(?::\s*\w+)?)*\s*$|jshint\b|jscs:|tslint:|prettier-ignore|biome-ignore|"
    r"@(?:ts-(?:nocheck|check|ignore|expect-error)|vitest-environment|jest-environment|flow|format|noflow|refresh)\b|"
    r"(?:istanbul|c8|v8) ignore|noinspection\b|NOLINT|clang-format\s+(?:on|off)|pylint:|mypy:|type:\s*ignore|"
    r"noqa\b|fmt:\s*(?:on|off|skip)|isort:|nosec\b|rubocop:|swiftlint:|ktlint-disable|@Suppress|cspell:|spell-checker:|"
    r"<reference\s+(?:types|path|lib|no-default-lib)\s*=|go:(?:generate|build|embed|linkname)\b|\+build\s)",
    re.I,
)
# a commented-out line of code: a package / import / include statement, or a line ending as a statement or block does
_CODE_LINE_RE = re.compile(r"^(?:(?:package|import|using|#include|#import|from \S+ import)\s|@[A-Z]\w*$)|[;{}]$")
_COMMENT_PREFIX_RE = re.compile(r"^\s*(?:/\*+!?|\*+/|///?!?<?|#+!?|\*+)")
_COMMENT_SUFFIX_RE = re.compile(r"\s*\*+/\s*$")
_STRING_RE = re.compile(r"^[rRuUbBfF]{0,2}(\"\"\"|'''|\"|')(.*)\1$", re.S)
_WS_RE = re.compile(r"\s+")


# --------------------------------------------------------------------------- caches


QUERY_FILE = {"tsx": "typescript"}  # the tsx grammar shares TypeScript's node types, so its query too


INCLUDE_RE = re.compile(r"^; include: ([a-z_]+\.scm)$", re.M)  # a query's line standing for a shared part's text


@functools.lru_cache(maxsize=None)
def query_source(lang: str) -> str:
    """The text of ``indexer/queries/<lang>.scm`` (tsx: typescript.scm), each ``; include: part.scm`` line replaced by
    that file's text (one level: a part includes nothing; OCaml's .ml and .mli queries share their type, module and
    class patterns so)."""
    name = QUERY_FILE.get(lang, lang)
    qdir = importlib.resources.files("indexer") / "queries"
    return INCLUDE_RE.sub(lambda m: (qdir / m.group(1)).read_text(encoding="utf-8").rstrip("\n"),
                          (qdir / f"{name}.scm").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def get_query(lang: str) -> Query:
    """The compiled query for ``lang`` (cached)."""
    return Query(get_language(lang), query_source(lang))


# --------------------------------------------------------------------------- text helpers


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def _truncate(s: str, limit: int) -> str:
    if len(s) <= limit:
        return s
    cut = s[:limit]
    sp = cut.rfind(" ")
    if sp > limit * 0.6:
        cut = cut[:sp]
    return cut.rstrip() + "…"


def _clean_comment_lines(text: str, lang: str = "") -> list[str]:
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if lang == "dart" and line.lstrip(" /*").startswith("```"):
            fenced = not fenced  # a dartdoc example: code, not what the symbol is for
            continue
        if fenced:
            continue
        if lang in ("ocaml", "ocaml_interface"):  # `(** ... *)`, `(* ... *)`
            line = _OCAML_CLOSE_RE.sub("", _OCAML_OPEN_RE.sub("", line))
        if lang == "haskell":  # `-- |`, `-- ^`, `{- |` ... `-}`; a module header's Haddock fields
            line = _HASKELL_CLOSE_RE.sub("", _HASKELL_COMMENT_RE.sub("", line))
            if _HADDOCK_FIELD_RE.match(line):
                continue
        if lang == "lua":  # `--`, LDoc's `---`, a block's `--[[` / `--[==[` and its closing `]]`
            line = _LUA_COMMENT_RE.sub("", _LUA_CLOSE_RE.sub("", line))
            if line.startswith("@"):
                continue  # an LDoc tag line (`@param`, `@table`, `@module`)
        if line.lstrip().startswith("#!"):
            continue  # a shebang (`#!/usr/bin/env python`), whose `#!` the comment prefix would take off
        line = _COMMENT_SUFFIX_RE.sub("", line)
        line = _COMMENT_PREFIX_RE.sub("", line, count=1).strip()
        if line.startswith("--"):  # sql / lua style, harmless elsewhere
            line = line[2:].strip()
        line = ART_PREFIX_RE.sub("", line)
        if not line or _DECOR_LINE_RE.match(line) or _MODELINE_RE.search(line):
            continue
        if lang == "ruby" and _RUBY_MAGIC_RE.match(line):
            continue
        line = re.sub(r"^(?:[@\\]brief\s+|@description\s*[:：]?\s*)", "", line, flags=re.I)
        if lang != "csharp" and ("<" in line or "{@" in line or "&" in line):
            line = _doc_markup(line)
            if not line:
                continue
        if _TAG_LINE_RE.match(line) or _TEMPLATE_LINE_RE.match(line) or _PRAGMA_LINE_RE.match(line):
            continue
        if lang == "csharp":
            if _XML_DOC_LINE_RE.match(line):
                continue
            line = _XML_DOC_TAG_RE.sub("", line).strip()
            if not line:
                continue
        out.append(line)
    return out


def _doc_markup(line: str) -> str:
    """A doc comment's line without its HTML and inline tags, entities read (`&lt;T&gt;` is `<T>`)."""
    line = _DOC_INLINE_RE.sub(lambda m: (m.group(1) or "").strip(), line)
    line = _DOC_HTML_RE.sub(" ", line)
    line = _DOC_ENTITY_RE.sub(_entity, line)
    return " ".join(line.split())


def _entity(m: re.Match) -> str:
    e = m.group(0)
    return _DOC_ENTITIES[e] if e in _DOC_ENTITIES else chr(int(e[2:-1]))


def clean_comment(text: str, limit: int = MAX_DOC, lang: str = "") -> str:
    """Comment text without markers (``//``, ``/* */``, ``*``, ``#``), on one line."""
    return _truncate(_WS_RE.sub(" ", " ".join(_clean_comment_lines(text, lang))).strip(), limit)


def _string_value(node: Node) -> str | None:
    """The value of a Python string literal node, or None if it is not a plain string."""
    if node.type != "string":
        return None
    m = _STRING_RE.match(_text(node).strip())
    if not m:
        return None
    return inspect.cleandoc(m.group(2))


def clean_docstring(text: str, limit: int = MAX_DOC) -> str:
    return _truncate(_WS_RE.sub(" ", text).strip(), limit)


def _python_docstring(block: Node | None) -> str | None:
    if block is None:
        return None
    for child in block.named_children:
        if child.type in _COMMENT_TYPES:
            continue
        if child.type == "expression_statement" and child.named_child_count == 1:
            return _string_value(child.named_children[0])
        return None
    return None


# --------------------------------------------------------------------------- docs


def _preceding_comments(node: Node) -> list[Node]:
    """The comments directly above ``node`` (no blank line between), top to bottom."""
    comments: list[Node] = []
    expect_row = node.start_point.row
    sib = node.prev_named_sibling
    while sib is not None:
        if sib.type in ("attribute_item", "attribute", "attribute_list", "decorator", "annotation",
                        "marker_annotation"):
            expect_row = sib.start_point.row
            sib = sib.prev_named_sibling
            continue
        if sib.type not in _COMMENT_TYPES:
            break
        if sib.end_point.row < expect_row - 1:
            break  # blank line between the comment and what follows
        before = sib.prev_sibling
        if before is not None and before.type not in _COMMENT_TYPES and before.end_point.row == sib.start_point.row:
            break  # a trailing comment of the previous line of code
        comments.append(sib)
        expect_row = sib.start_point.row
        sib = sib.prev_named_sibling
    comments.reverse()
    return comments


def _elixir_string(node: Node | None) -> str:
    """The text of an Elixir string or sigil (`"..."`, `\"\"\"...\"\"\"`, `~S\"\"\"...\"\"\"`); "" for anything else
    (`@doc false`)."""
    if node is None or node.type not in ("string", "sigil"):
        return ""
    return "".join(_text(c) for c in node.named_children if c.type == "quoted_content")


def _elixir_attribute(node: Node) -> tuple[str, Node | None] | None:
    """(name, value) of a module attribute `@name value`, or None for any other node."""
    if node.type != "unary_operator" or not _text(node).startswith("@"):
        return None
    operand = node.child_by_field_name("operand")
    if operand is None or operand.type != "call":
        return None
    target = operand.child_by_field_name("target")
    args = next((c for c in operand.named_children if c.type == "arguments"), None)
    return (_text(target) if target is not None else "",
            args.named_children[0] if args is not None and args.named_child_count else None)


def _elixir_module(node: Node) -> bool:
    """A `defmodule` or `defprotocol` call."""
    target = node.child_by_field_name("target") if node.type == "call" else None
    return target is not None and _text(target) in ("defmodule", "defprotocol")


def _elixir_moduledoc(module: Node) -> str:
    """The `@moduledoc` of a `defmodule` / `defprotocol` call: among the first statements of its body."""
    body = next((c for c in module.named_children if c.type == "do_block"), None)
    for child in (body.named_children[:12] if body is not None else []):
        attr = _elixir_attribute(child)
        if attr is not None and attr[0] == "moduledoc":
            return inspect.cleandoc(_elixir_string(attr[1]))
    return ""


def _elixir_doc(def_node: Node) -> str:
    """A module's `@moduledoc`, or the `@doc` above a function (other attributes, `@spec` or `@impl`, may stand
    between them)."""
    if _elixir_module(def_node):
        return clean_docstring(_elixir_moduledoc(def_node))
    sib = def_node.prev_named_sibling
    while sib is not None:
        attr = _elixir_attribute(sib)
        if attr is None:
            break
        if attr[0] == "doc":
            return clean_docstring(inspect.cleandoc(_elixir_string(attr[1])))
        sib = sib.prev_named_sibling
    return ""


def _haskell_doc(node: Node) -> str:
    """The Haddock comment above the first declaration of a block, which the grammar leaves at the end of what comes
    before the block (the imports, or the class head): the comment that ends on the line above."""
    anchor = node
    while anchor.prev_named_sibling is None and anchor.parent is not None:
        before = anchor.parent.prev_named_sibling
        while before is not None and before.type != "haddock" and before.named_child_count:
            before = before.named_children[-1]  # the last thing inside what comes before
        if before is not None and before.type == "haddock" and before.end_point.row == node.start_point.row - 1:
            return _text(before)
        anchor = anchor.parent
    return ""


def _doc_for(lang: str, def_node: Node) -> str:
    if lang == "elixir":
        ds = _elixir_doc(def_node)
        if ds:
            return ds
    if lang == "python":
        ds = _python_docstring(def_node.child_by_field_name("body"))
        if ds:
            return clean_docstring(ds)
    if lang == "haskell":
        doc = _haskell_doc(def_node)
        if doc:
            return clean_comment(doc, lang=lang)
    anchor = def_node
    for _ in range(4):
        comments = _preceding_comments(anchor)
        if comments:
            return clean_comment("\n".join(_text(c) for c in comments), lang=lang)
        parent = anchor.parent
        if parent is not None and parent.type == "body_statement" and anchor.prev_named_sibling is None:
            anchor = parent  # ruby: the comment above a body's first definition sits before the body
            continue
        if parent is None or parent.type not in _WRAPPERS:
            break
        anchor = parent
    return ""


# --------------------------------------------------------------------------- header


def _header(lang: str, root: Node) -> str:
    children = list(root.named_children)
    if lang == "python":
        for child in children:
            if child.type in _COMMENT_TYPES:
                continue
            if child.type == "expression_statement" and child.named_child_count == 1:
                ds = _string_value(child.named_children[0])
                if ds:
                    return _header_text(ds.splitlines(), docstring=True)
            break
    groups: list[list[Node]] = []
    last_row = -2
    i = 0
    while i < len(children):
        child = children[i]
        i += 1
        if child.type in _COMMENT_TYPES:
            if groups and child.start_point.row <= last_row + 1:
                groups[-1].append(child)
            else:
                groups.append([child])
            last_row = child.end_point.row
            continue
        if child.type in _PREAMBLE:
            last_row = -2
            continue
        if child.type in _GUARDS and (i == len(children) or not groups):
            # include guard: look inside it
            children = [c for c in child.named_children if c != child.child_by_field_name("name")]
            i = 0
            last_row = -2
            continue
        break
    for group in groups:
        lines = _clean_comment_lines("\n".join(_text(c) for c in group), lang)
        h = _header_text(lines)
        if h:
            return h
    if lang == "elixir":  # no header comment: the first module's @moduledoc says what the file is
        first = next((c for c in root.named_children if _elixir_module(c)), None)
        doc = _elixir_moduledoc(first) if first is not None else ""
        return _header_text(doc.splitlines(), docstring=True) if doc else ""
    return ""


def _own_name_dropped(header: str, path: str) -> str:
    """A header without a first line that only names its file (`fzf.py`, beside a banner's last line)."""
    first, _, rest = header.partition("\n")
    return rest.strip() if first.strip() == path.rsplit("/", 1)[-1] else header


def _header_text(lines: list[str], docstring: bool = False) -> str:
    kept: list[str] = []
    for line in lines:
        line = line.strip()
        if not line or _COPYRIGHT_LINE_RE.match(line):
            continue
        if docstring and _DECOR_LINE_RE.match(line):
            continue
        kept.append(line)
    if kept and 2 * sum(1 for line in kept if _CODE_LINE_RE.search(line)) >= len(kept):
        return ""  # commented-out code (`// package com.x; import ...`) says nothing about the file
    text = "\n".join(kept)
    if not text or _LICENSE_RE.search(text):
        return ""
    return _truncate(text, MAX_HEADER)


# --------------------------------------------------------------------------- symbols


def _c_function(lang: str, decl: Node, name_node: Node) -> tuple[Node, str, str] | None:
    """For a C-family function_declarator: (definition node, name, kind) or None."""
    node = decl
    while node.parent is not None and node.parent.type in _C_DECLARATORS:
        node = node.parent
    holder = node.parent
    if holder is None or holder.type not in _C_FUNCTION_HOLDERS:
        return None  # a declarator in a parameter, a typedef, a cast, ...
    if holder.child_by_field_name("declarator") != node:
        return None
    kind = "function"
    name = _text(name_node)
    if name_node.type == "qualified_identifier":
        inner = name_node
        while inner.type == "qualified_identifier" and inner.child_by_field_name("name") is not None:
            inner = inner.child_by_field_name("name")
        name = _text(inner)
        kind = "method"  # out-of-line member definition (Foo::bar)
    elif name_node.type in ("field_identifier", "destructor_name"):
        kind = "method"
    if holder.type == "function_definition" and holder.child_by_field_name("type") is None and name.isupper():
        return None  # a macro invocation with a body, e.g. TEST(Suite, Name) { ... }
    return holder, name, kind


def _objc_method_name(node: Node) -> str:
    for child in node.named_children:
        if child.type == "identifier":
            return _text(child)
    return ""


def _context(lang: str, node: Node) -> str:
    """'nested' if inside a function, 'class' if directly in a type, else ''."""
    funcs = _FUNCTIONS.get(lang, frozenset())
    classes = _CLASSES.get(lang, frozenset())
    p = node.parent
    while p is not None:
        t = p.type
        if t in funcs:
            return "nested"
        if t in classes:
            return "class"
        p = p.parent
    return ""


def _extract(lang: str, path: str, root: Node) -> tuple[list[Symbol], list[str]]:
    query = get_query(lang)
    matches = QueryCursor(query).matches(root)
    imports: list[str] = []
    seen_imports: set[str] = set()
    by_node: dict[tuple[int, int], tuple[int, str, Node, Node | None]] = {}
    for pattern, caps in matches:
        imp = caps.get("import")
        if imp:
            for n in imp:
                for s in _clean_import(lang, n):
                    if s and s not in seen_imports:
                        seen_imports.add(s)
                        imports.append(s)
            continue
        for cname, nodes in caps.items():
            if cname.startswith("definition."):
                d = nodes[0]
                key = (d.start_byte, d.end_byte)
                prev = by_node.get(key)
                if prev is None or pattern < prev[0]:
                    names = caps.get("name")
                    kind = cname[len("definition."):]
                    kw = caps.get("kind")
                    if kw:  # e.g. swift: the declaration keyword decides the kind
                        kind = _KIND_WORDS.get(_text(kw[0]), kind)
                    by_node[key] = (pattern, kind, d, names[0] if names else None)
                break
    symbols: list[Symbol] = []
    index: dict[tuple[str, str], int] = {}
    for _pattern, kind, d, name_node in sorted(by_node.values(), key=lambda v: v[2].start_byte):
        if name_node is not None:
            name = _text(name_node)
        elif lang == "objc":
            name = _objc_method_name(d)
        else:
            n = d.child_by_field_name("name")
            name = _text(n) if n is not None else ""
        if lang in _C_FAMILY and d.type == "function_declarator" and name_node is not None:
            res = _c_function(lang, d, name_node)
            if res is None:
                continue
            d, name, kind = res
        name = _WS_RE.sub(" ", name).strip()
        if not name:
            continue
        ctx = _context(lang, d)
        if ctx == "nested":
            continue
        if ctx == "class" and kind == "function":
            kind = "method"
        k = (name, kind)
        at = index.get(k)
        if at is not None:
            old = symbols[at]
            if not old.doc:
                doc = _doc_for(lang, d)
                if doc:
                    symbols[at] = Symbol(old.name, old.kind, old.path, old.line, doc)
            continue
        index[k] = len(symbols)
        symbols.append(Symbol(name=name, kind=kind, path=path, line=d.start_point.row + 1, doc=_doc_for(lang, d)))
        if len(symbols) >= MAX_SYMBOLS:
            break
    return symbols, imports


def _clean_import(lang: str, node: Node) -> list[str]:
    s = _text(node).strip()
    if lang in _C_FAMILY or lang == "go":
        s = s.strip('"<>`')
    elif lang in ("javascript", "typescript", "tsx", "dart"):
        s = s.strip("\"'`")
    elif lang == "ruby":  # the path of `require "x/y"`; `require_relative "y"` is relative to the file
        call = node.parent.parent.parent if node.parent and node.parent.parent else None
        method = call.child_by_field_name("method") if call is not None else None
        if method is not None and _text(method) == "require_relative" and not s.startswith("."):
            s = "./" + s
    elif lang == "php":
        if node.type == "string_content":  # require __DIR__ . '/x.php': relative to the file
            return ["." + s if s.startswith("/") else s]
        return [s.replace("\\", "/").strip("/")]  # a namespaced name: Foo\Bar\Baz -> Foo/Bar/Baz
    elif lang == "elixir":  # `alias Phoenix.Socket.{Broadcast, Message}`: each module of the braces
        s = _WS_RE.sub("", s)
        m = re.fullmatch(r"([\w.]+)\.\{([^}]*)\}", s)
        return [f"{m.group(1)}.{x}" for x in m.group(2).split(",") if x] if m else [s]
    elif lang == "scala":  # `import a.b.{C, D => E}`, `import a.b._`, `import a.b.*`
        s = _WS_RE.sub("", s[len("import"):] if s.startswith("import") else s)
        s = re.sub(r"([\w.`]+)\{([^}]*)\}",
                   lambda m: ",".join(m.group(1) + x.split("=>", 1)[0] for x in m.group(2).split(",")), s)
        return [x.rstrip("._*").replace("`", "") for x in s.split(",") if x.rstrip("._*")]
    elif lang == "python" and s and not s.strip("."):
        # `from . import a, b`: the names are (usually) sibling modules
        parent = node.parent
        names = parent.children_by_field_name("name") if parent is not None else []
        out = []
        for n in names:
            if n.type == "aliased_import":
                n = n.child_by_field_name("name") or n
            out.append(s + _text(n))
        return out or [s]
    return [_WS_RE.sub(" ", s)]


# --------------------------------------------------------------------------- entry point


def _looks_minified(data: bytes) -> bool:
    n = len(data)
    return n > 20_000 and data.count(b"\n") < n // 1000


_SCRIPT_RE = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_SCRIPT_LANG_RE = re.compile(r"""\blang\s*=\s*["']?(tsx?|typescript)\b""", re.I)
_HTML_COMMENT_RE = re.compile(r"\s*<!--(.*?)-->", re.S)


def _parse_sfc(path: str, text: str) -> tuple[list[Symbol], list[str], str, list[str]]:
    """A Vue or Svelte single-file component: each `<script>` block (`<script setup lang="ts">`, Svelte's
    `<script context="module">`) read by the TypeScript or JavaScript grammar, its symbols' lines counted in the
    whole file. The header is the first block's header comment, else a leading `<!-- -->` comment.
    -> (symbols, imports, header, errors)"""
    symbols: list[Symbol] = []
    imports: list[str] = []
    header = ""
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for m in _SCRIPT_RE.finditer(text):
        lang_attr = _SCRIPT_LANG_RE.search(m.group(1))
        sub = "javascript" if lang_attr is None else "tsx" if lang_attr.group(1).lower() == "tsx" else "typescript"
        body = m.group(2)
        offset = text.count("\n", 0, m.start(2))
        root = get_parser(sub).parse(body.encode("utf-8")).root_node
        syms, imps = _extract(sub, path, root)
        for sym in syms:
            if (sym.name, sym.kind) not in seen:
                seen.add((sym.name, sym.kind))
                symbols.append(Symbol(sym.name, sym.kind, sym.path, sym.line + offset, sym.doc))
        imports += [i for i in imps if i not in imports]
        header = header or _header(sub, root)
        if root.has_error and "syntax errors" not in errors:
            errors.append("syntax errors")
    if not header:
        lead = _HTML_COMMENT_RE.match(text)
        if lead:
            header = _header_text(lead.group(1).splitlines())
    return symbols, imports, header, errors


def parse_file(path: str, data: bytes, blob: str, *, max_bytes: int = 1_000_000) -> FileRecord:
    """Parse ``data`` (the content of ``path``) into a FileRecord. Never raises.

    ``error`` says why a file was only partly read: "binary", "too large",
    "not utf-8" (decoded with replacement, still parsed), "syntax errors"
    (symbols are whatever the error-tolerant parse found), "minified" (no symbols),
    "parse failed: ..." (an unexpected failure). Several are joined with "; ".
    """
    path = path.replace("\\", "/")
    lang = language_for(path)
    rec = FileRecord(path=path, blob=blob, size=len(data), language=lang)
    try:
        if b"\x00" in data[:BINARY_SNIFF]:
            rec.error = "binary"
            return rec
        if len(data) > max_bytes:
            rec.error = "too large"
            return rec
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        errors: list[str] = []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            errors.append("not utf-8")
        if not lang:
            rec.text = text[:MAX_TEXT]
            rec.error = "; ".join(errors)
            return rec
        if lang in SFC.values():
            rec.text = text[:MAX_TEXT]  # the markup, as before: a component's labels are prose
            rec.symbols, rec.imports, rec.header, errs = _parse_sfc(path, text)
            rec.error = "; ".join(errors + errs)
            return rec
        if _looks_minified(data):
            errors.append("minified")
            rec.error = "; ".join(errors)
            return rec
        try:
            tree = get_parser(lang).parse(data)
            root = tree.root_node
            rec.symbols, rec.imports = _extract(lang, path, root)
            rec.header = _own_name_dropped(_header(lang, root), path)
            if root.has_error:
                errors.append("syntax errors")
        except Exception as e:  # noqa: BLE001 - never raise on any input
            errors.append(f"parse failed: {type(e).__name__}: {e}"[:200])
        rec.error = "; ".join(errors)
        return rec
    except Exception as e:  # noqa: BLE001
        rec.error = f"parse failed: {type(e).__name__}: {e}"[:200]
        return rec


def supported_languages() -> list[str]:
    return list(LANGUAGES)
