"""Resolve imports / includes to repository files, and files to module dependencies.

Resolution is by path suffix, which works across languages without a build system:
``#include "core/tensor.h"`` resolves to any file ending in ``/core/tensor.h`` (the one closest to
the including file wins); ``from pkg.sub import x`` to ``pkg/sub.py`` or ``pkg/sub/__init__.py``;
a Go, Java, Kotlin or Scala import to the folder or file whose path ends with it; a C# namespace to its
folder; a PHP ``use Foo\\Bar`` to ``Foo/Bar.php`` (the PSR-4 layout); a Ruby ``require "a/b"`` to ``a/b.rb``; an
Elixir ``alias Foo.BarBaz`` to ``foo/bar_baz.ex``; a Haskell ``import Text.Pandoc.Class`` to
``Text/Pandoc/Class.hs``; an OCaml ``open Stdune`` to the one ``stdune.ml``; a Lua ``require "a.b"`` to
``a/b.lua``; a Dart ``import 'package:p/x.dart'`` to ``p/lib/x.dart`` (or the root's ``lib/x.dart``); a relative
JS/TS import, ``require_relative``, ``require __DIR__ . '/x.php'``, Dart ``import 'src/x.dart'`` or Zig
``@import("x.zig")`` against the importing file's folder; a JS/TS/Vue ``import '@/api/user'`` against the ``src``
folder the file is under.
Unresolved imports (the standard library, third-party packages) are simply not edges.
"""
from __future__ import annotations

import posixpath
import re
from collections import Counter, defaultdict

from .records import FileRecord

JS_FAMILY = frozenset({"javascript", "typescript", "tsx", "vue", "svelte"})
CODE_EXTS = ("", ".py", ".pyi", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".h", ".hpp", ".hh", ".c", ".cc",
             ".cpp", ".go", ".java", ".kt", ".rs", ".swift", ".m", ".mm", ".rb", ".php", ".cs", ".scala")


def _underscore(name: str) -> str:
    """Elixir's `Macro.underscore` of one alias part: `LiveView` -> `live_view`, `HTTPClient` -> `http_client`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class Resolver:
    def __init__(self, paths: list[str]):
        self.paths = set(paths)
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        self.dirs: dict[str, list[str]] = defaultdict(list)  # dir suffix -> files in that dir
        for p in sorted(paths):
            parts = p.split("/")
            for i in range(max(0, len(parts) - 4), len(parts)):
                self.by_suffix["/".join(parts[i:])].append(p)
            d = parts[:-1]
            for i in range(max(0, len(d) - 4), len(d)):
                key = "/".join(d[i:])
                if len(self.dirs[key]) < 1:
                    self.dirs[key].append(p)

    def _closest(self, cands: list[str], src: str) -> str | None:
        if not cands:
            return None
        if len(cands) == 1:
            return cands[0]
        sdir = src.rsplit("/", 1)[0] if "/" in src else ""

        def common(c: str) -> int:
            return len(posixpath.commonprefix([c, sdir]))

        return max(cands, key=lambda c: (common(c), -len(c), c))

    def _suffix(self, suffix: str, src: str) -> str | None:
        suffix = suffix.strip("/")
        if not suffix:
            return None
        key = "/".join(suffix.split("/")[-4:])  # the table holds suffixes of up to four components
        return self._closest([c for c in self.by_suffix.get(key, []) if c == suffix or c.endswith("/" + suffix)], src)

    def _beside(self, imp: str, sdir: str) -> str | None:
        """The file `imp` names relative to the importing file's folder `sdir`, exactly as written."""
        target = posixpath.normpath(posixpath.join(sdir, imp))
        return target if target in self.paths else None

    def _file_or_index(self, target: str) -> str | None:
        """`target` as written or with a code extension, else its folder's index file (widgets -> widgets/index.ts)."""
        for ext in CODE_EXTS:
            if target + ext in self.paths:
                return target + ext
        for ext in (".ts", ".tsx", ".js", ".jsx"):
            if f"{target}/index{ext}" in self.paths:
                return f"{target}/index{ext}"
        return None

    def _only_file(self, name: str) -> str | None:
        """The one file called `name` anywhere in the repository, else None (none, or several: which is meant is
        not known)."""
        named = self.by_suffix.get(name, [])
        return named[0] if len(named) == 1 else None

    def _elixir(self, imp: str, src: str) -> str | None:
        """An Elixir module to its file by the convention `Phoenix.Socket.Message` -> `phoenix/socket/message.ex`
        (`Macro.underscore`), else the file of its nearest enclosing module (`Phoenix.Socket.InvalidMessageError`
        is defined in `phoenix/socket.ex`), else the one file named after its last part (a Phoenix app's
        `MyAppWeb.UserController` lives in `my_app_web/controllers/user_controller.ex`). A one-part name
        (`Logger`, `Enum`) is the standard library's or a dependency's: no file."""
        parts = [_underscore(p) for p in imp.split(".")]
        if len(parts) < 2 or not all(parts):
            return None
        for end in range(len(parts), 1, -1):
            hit = self._suffix("/".join(parts[:end]) + ".ex", src)
            if hit:
                return hit
        return self._only_file(parts[-1] + ".ex")

    def resolve(self, imp: str, src: str, lang: str) -> str | None:
        """The repository file an import / include in `src` (written in `lang`) refers to."""
        imp = imp.strip().strip("\"'<>")
        if not imp or len(imp) > 300:
            return None
        sdir = src.rsplit("/", 1)[0] if "/" in src else ""
        if imp.startswith("."):
            if lang == "python":
                dots = len(imp) - len(imp.lstrip("."))
                base = sdir
                for _ in range(dots - 1):
                    base = base.rsplit("/", 1)[0] if "/" in base else ""
                rest = imp.lstrip(".").replace(".", "/")
                target = posixpath.join(base, rest) if rest else base
                for cand in (target + ".py", target + "/__init__.py"):
                    if cand in self.paths:
                        return cand
                return None
            return self._file_or_index(posixpath.normpath(posixpath.join(sdir, imp)))
        if lang in JS_FAMILY and imp.startswith(("@/", "~/")):
            # the bundlers' alias for the package's source folder (Vite, Vue CLI, Nuxt): the `src` the importing
            # file is under (apps/web/src in a monorepo), else the root's
            parts = src.split("/")[:-1]
            base = "/".join(parts[: parts.index("src") + 1]) if "src" in parts else "src"
            return self._file_or_index(posixpath.normpath(posixpath.join(base, imp[2:])))
        if lang in ("c", "cpp", "objc", "swift") or imp.endswith((".h", ".hpp", ".hh", ".inl", ".inc")):
            if lang == "swift":
                return self.dirs.get(imp, [None])[0]
            return self._suffix(imp, src)
        if lang == "python":
            base = imp.replace(".", "/")
            return self._suffix(base + ".py", src) or self._suffix(base + "/__init__.py", src) \
                or (self._suffix(base.rsplit("/", 1)[0] + ".py", src) if "/" in base else None) \
                or self.dirs.get(base, [None])[0]  # a namespace package (a folder without __init__.py)
        if lang == "ruby":
            return self._suffix(imp if imp.endswith(".rb") else imp + ".rb", src)
        if lang == "php":
            if imp.endswith((".php", ".inc")):
                return self._suffix(imp, src)
            parts = imp.split("/")  # a class: the file of that name, under as much of its namespace as matches
            if len(parts) < 2:
                return None  # `use Closure`: a global class, not a file of the repository
            for i in range(min(len(parts), 4), 0, -1):  # down to the file alone: PSR-4 maps a vendor prefix to src/
                hit = self._suffix("/".join(parts[-i:]) + ".php", src)
                if hit:
                    return hit
            return None
        if lang == "csharp":  # a namespace: its folder, the whole name first (`Acme.Http.Pipeline` -> a project
            # folder Acme.Http/Pipeline or Acme/Http/Pipeline), then shorter tails (Http/Pipeline)
            parts = imp.split(".")
            keys = [imp] + [".".join(parts[:i]) + "/" + "/".join(parts[i:]) for i in range(len(parts) - 1, 0, -1)]
            keys += ["/".join(parts[-i:]) for i in range(min(len(parts), 4), 1, -1)]
            for key in keys:
                hit = self.dirs.get("/".join(key.split("/")[-4:]))
                if hit:
                    return hit[0]
            return None
        if lang in ("java", "kotlin", "scala"):
            base = imp.rstrip(".*").replace(".", "/")
            for ext in (".java", ".kt", ".scala"):
                hit = self._suffix(base + ext, src)
                if hit:
                    return hit
            parts = base.split("/")
            for i in range(min(len(parts), 4), 0, -1):
                hit = self.dirs.get("/".join(parts[-i:]))
                if hit:
                    return hit[0]
            return None
        if lang == "go":
            parts = imp.split("/")
            for i in range(min(len(parts), 4), 0, -1):
                hit = self.dirs.get("/".join(parts[-i:]))
                if hit and i >= min(2, len(parts)):
                    return hit[0]
            return None
        if lang == "elixir":
            return self._elixir(imp, src)
        if lang == "lua":  # `require "ui/widget/button"` or `require "a.b"`: a.b.lua or a/b/init.lua on the path
            base = imp if "/" in imp else imp.replace(".", "/")
            return self._suffix(base + ".lua", src) or self._suffix(base + "/init.lua", src)
        if lang == "dart":  # `package:flame/src/game.dart`: that package's lib/ (packages/flame/lib/... in a
            # monorepo; the root's lib/... in a one-package repository, whose own name its folders do not say);
            # `src/x.dart` without a scheme: beside the file
            if imp.startswith("dart:"):
                return None
            if imp.startswith("package:"):
                name, _, rest = imp[len("package:"):].partition("/")
                if not rest:
                    return None
                hit = self._suffix(f"{name}/lib/{rest}", src)
                return hit or (f"lib/{rest}" if f"lib/{rest}" in self.paths else None)
            return self._beside(imp, sdir)
        if lang == "zig":  # `@import("lsm/tree.zig")`: beside the file; a package of build.zig (`@import("stdx")`):
            # the one file of that name (src/stdx/stdx.zig), if one; `root` and `builtin` are the compiler's
            if not imp.endswith(".zig"):
                return self._only_file(imp + ".zig") if imp not in ("root", "builtin") else None
            return self._beside(imp, sdir)
        if lang == "haskell":  # `import Text.Pandoc.Class`: Text/Pandoc/Class.hs under a source folder
            return self._suffix(imp.replace(".", "/") + ".hs", src) if "." in imp or imp[:1].isupper() else None
        if lang in ("ocaml", "ocaml_interface"):  # `open Stdune`, `include Foo.Bar`: the one file of that module
            name = imp.split(".")[0]
            return self._only_file(name[:1].lower() + name[1:] + ".ml")
        if lang == "rust":
            parts = [p for p in imp.split("::") if p not in ("crate", "self", "super", "*") and p[:1].islower()]
            while parts:
                base = "/".join(parts)
                hit = self._suffix(base + ".rs", src) or self._suffix(base + "/mod.rs", src)
                if hit:
                    return hit
                parts.pop()
            return None
        return None


def file_targets(resolver: Resolver, path: str, lang: str, imports: list[str]) -> list[str]:
    """The repository files one file imports (resolved, in order, repeats kept for weights)."""
    out = []
    for imp in imports:
        t = resolver.resolve(imp, path, lang)
        if t and t != path:
            out.append(t)
    return out


def edges_from_targets(targets: dict[str, list[str]], module_of) -> dict[tuple[str, str], int]:
    """(from module, to module) -> number of resolved imports between them."""
    edges: Counter = Counter()
    for path, ts in targets.items():
        src_mod = module_of(path)
        for t in ts:
            dst_mod = module_of(t)
            if dst_mod != src_mod:
                edges[(src_mod, dst_mod)] += 1
    return dict(sorted(edges.items()))


def module_edges(records: list[FileRecord], module_of) -> dict[tuple[str, str], int]:
    resolver = Resolver([r.path for r in records])
    return edges_from_targets({r.path: file_targets(resolver, r.path, r.language, r.imports) for r in records},
                              module_of)
