"""Languages the indexer parses with tree-sitter, and their grammars.

Grammars come from the per-language ``tree-sitter-*`` wheels that are installed with
the package; nothing is downloaded at run time.

Note on ``.h``: C and C++ share the ``.h`` extension. We map ``.h`` to ``cpp``
because the C++ grammar is (almost) a superset of C and parses plain C headers
fine, while the C grammar produces errors on C++ headers (classes, namespaces,
templates). Objective-C headers also use ``.h``; the C++ grammar still yields
their C-level declarations and ``#import``/``#include`` lines.
"""
from __future__ import annotations

import functools
import importlib
import os

from tree_sitter import Language, Parser

#: language name -> file extensions (lower case, with the dot)
LANGUAGES: dict[str, tuple[str, ...]] = {
    "c": (".c",),
    "cpp": (".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".h", ".cu", ".cuh", ".inl", ".ipp", ".tpp"),
    "objc": (".m", ".mm"),
    "python": (".py", ".pyi"),
    "go": (".go",),
    "java": (".java",),
    "kotlin": (".kt", ".kts"),
    "javascript": (".js", ".jsx", ".mjs", ".cjs"),
    "typescript": (".ts", ".mts", ".cts"),
    "tsx": (".tsx",),
    "rust": (".rs",),
    "swift": (".swift",),
    "csharp": (".cs",),
    "ruby": (".rb", ".rake"),
    "php": (".php",),
    "scala": (".scala", ".sc"),
    "elixir": (".ex", ".exs"),
    "lua": (".lua",),
    "dart": (".dart",),
    "zig": (".zig",),
    "haskell": (".hs",),
    "ocaml": (".ml",),
    "ocaml_interface": (".mli",),
}

_BY_EXT: dict[str, str] = {ext: lang for lang, exts in LANGUAGES.items() for ext in exts}

#: single-file components: markup with the code in `<script>` blocks, which the JavaScript or TypeScript grammar
#: reads (``indexer.parse``); the language name is the component format's
SFC: dict[str, str] = {".vue": "vue", ".svelte": "svelte"}


def language_for(path: str) -> str:
    """The language name for ``path`` by its extension, or "" if no grammar handles it."""
    base = os.path.basename(path)
    _, ext = os.path.splitext(base)
    if not ext:
        return ""
    if ext == ".C":  # upper-case .C is C++ by convention
        return "cpp"
    # ``.d.ts`` etc. fall out naturally (the last suffix is .ts)
    return _BY_EXT.get(ext.lower(), "") or SFC.get(ext.lower(), "")


#: extensions of code in languages without a grammar here: their files are read as text, with no symbols
NO_GRAMMAR: dict[str, str] = {
    ".erl": "Erlang", ".hrl": "Erlang",
    ".clj": "Clojure", ".cljs": "Clojure", ".r": "R",
    ".jl": "Julia", ".pl": "Perl", ".pm": "Perl", ".nim": "Nim", ".groovy": "Groovy",
    ".fs": "F#", ".vb": "Visual Basic", ".f90": "Fortran", ".f": "Fortran",
    ".cr": "Crystal", ".elm": "Elm", ".pas": "Pascal", ".sv": "SystemVerilog",
    ".vhd": "VHDL", ".sol": "Solidity", ".ps1": "PowerShell",
}


def no_grammar_note(paths: list[str], *, min_files: int = 20, min_share: float = 0.1) -> str:
    """A sentence for the index's notes when much of the code is in languages without a grammar, else ""."""
    counts: dict[str, int] = {}
    for p in paths:
        lang = NO_GRAMMAR.get(os.path.splitext(p)[1].lower())
        if lang:
            counts[lang] = counts.get(lang, 0) + 1
    n = sum(counts.values())
    code = n + sum(1 for p in paths if language_for(p))
    if n < min_files or n < min_share * code:
        return ""
    top = ", ".join(f"{lang} {k}" for lang, k in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:4])
    return (f"{n} of {code} code files are in languages without a grammar here ({top}): their text is read, "
            "but no symbols, so a text naming their classes or functions is matched by words only")


#: language -> (the grammar wheel's module, the function that gives its grammar); imported on first use
_GRAMMARS: dict[str, tuple[str, str]] = {
    "c": ("tree_sitter_c", "language"), "cpp": ("tree_sitter_cpp", "language"),
    "objc": ("tree_sitter_objc", "language"), "python": ("tree_sitter_python", "language"),
    "go": ("tree_sitter_go", "language"), "java": ("tree_sitter_java", "language"),
    "kotlin": ("tree_sitter_kotlin", "language"), "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "rust": ("tree_sitter_rust", "language"), "swift": ("tree_sitter_swift", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"), "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),  # PHP with its HTML around it, as files are written
    "scala": ("tree_sitter_scala", "language"), "elixir": ("tree_sitter_elixir", "language"),
    "lua": ("tree_sitter_lua", "language"), "dart": ("tree_sitter_dart", "language"),
    "zig": ("tree_sitter_zig", "language"), "haskell": ("tree_sitter_haskell", "language"),
    "ocaml": ("tree_sitter_ocaml", "language_ocaml"),
    "ocaml_interface": ("tree_sitter_ocaml", "language_ocaml_interface"),
}


def _raw_language(lang: str):
    if lang not in _GRAMMARS:
        raise KeyError(f"no grammar for language {lang!r}")
    module, function = _GRAMMARS[lang]
    return getattr(importlib.import_module(module), function)()


@functools.lru_cache(maxsize=None)
def get_language(lang: str) -> Language:
    """The tree-sitter ``Language`` for ``lang`` (cached). Raises KeyError if unknown."""
    return Language(_raw_language(lang))


@functools.lru_cache(maxsize=None)
def get_parser(lang: str) -> Parser:
    """A (cached, reused) tree-sitter ``Parser`` for ``lang``. Not thread-safe."""
    return Parser(get_language(lang))
