"""From a list of file paths to modules: the skip rule, the automatic rule, and assignment.

The skip rule (files that never belong to any module):
  * folders named like vendored code, published bundles, caches or test data (``SKIP_DIRS``,
    plus ``bazel-*``, ``cmake-build-*`` and ``*.egg-info``), and hidden folders other than ``.github``. Of
    these, the names that are also words of a repository's own domain (``VENDOR_WORDS``: Kyuubi's
    ``externals`` holds its engines, yudao's ``src/views/mes/md/vendor`` its suppliers' page) are skipped
    except in the folders the configuration calls the repository's own (``RepoConfig.own``: written in
    ``.modmatch.toml`` or found in the history, ``indexer.build.own_folders``);
  * folders named like build output (``OUTPUT_DIRS``: ``bin``, ``build``, ``out``, ``target``, ...) only where
    their files are untracked (``indexer.source`` never lists them): files a git repository tracks there were
    committed on purpose (dune's command line in ``bin/``, yudao's ``src/api/erp/sale/out``, an OBJ parser
    in ``parser/obj``);
  * lock files and minified bundles (``SKIP_FILES``, ``*.min.js``, ``*.map``);
  * files the repository's ``.gitattributes`` marks ``linguist-vendored`` or ``linguist-generated``
    (``indexer.attributes``); a file they un-mark (``-linguist-vendored``, ``linguist-generated=false``) is not
    skipped for the name of a folder it lies in (``VENDOR_WORDS``, ``GENERATED_DIRS``);
  * files excluded (or not included) by ``.modmatch.toml``.

The automatic rule, applied from the repository root down:
  * the root always splits into its top-level folders (each one a module, however small);
  * a folder whose subtree holds at most ``max_files`` files (and, in a repository of more than ``max_files``
    files, at most a third of them: ``BIG_SHARE``), or which sits at the depth limit (``depth``, or a
    ``depth_overrides`` entry for its prefix), is one module;
  * otherwise each subfolder with at least ``min_files`` files becomes a module of its own
    (recursively) and smaller subfolders fold into the folder;
  * a folder that still owns more than ``max_files`` files directly is split flat: files sharing
    the first word of their name (``conv_x86.cc``, ``conv_arm.cc`` → ``conv``) form a sub-module
    when there are at least ``max(min_files, max_files // 8)`` of them (10 by default);
  * the folders of the JVM source layout (``_layout_folders``: ``src/main/java`` and the package folders that
    lead to one folder only) and of a Dart package (``lib`` and ``lib/src`` beside a ``pubspec.yaml``) do not
    count toward the depth, and are no modules when a split goes through them;
  * a package of a JVM test source set is one module with the same package of the code (``_tests_with_their_code``;
    ``tests_apart = true`` keeps them apart).

Explicit modules from ``.modmatch.toml`` own their path prefixes; a file belongs to the module with
the longest matching prefix. Module IDs are the folder paths (``src/layer/vulkan``), the root is
``(root)``.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from .attributes import marks
from .config import RepoConfig

ROOT_ID = "(root)"

SKIP_DIRS = frozenset({
    "node_modules", "bower_components", "vendor", "vendors", "third_party", "third-party", "thirdparty",
    "3rdparty", "3rd_party", "external", "externals", "extern", "deps",
    "dist", "_build",
    "__pycache__", ".venv", "venv", "site-packages", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".gradle", ".idea", ".vscode", ".git", ".hg", ".svn",
    "generated", "__generated__", "autogen",
    "testdata", "test_data", "test-data", "__snapshots__",
})
# names of SKIP_DIRS that a repository may use for its own code (decided per folder: `RepoConfig.own`)
VENDOR_WORDS = frozenset({"vendor", "vendors", "external", "externals", "extern", "deps"})
GENERATED_DIRS = frozenset({"generated", "__generated__", "autogen"})
OUTPUT_DIRS = frozenset({"build", "builds", "out", "target", "bin", "obj", "site", "coverage", "htmlcov"})
SKIP_FILES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "go.sum", "Cargo.lock", "poetry.lock",
    "Pipfile.lock", "uv.lock", "composer.lock", "Gemfile.lock", ".DS_Store",
})
# A folder holding more than this share of a repository's files says little about where to look, however few they
# are: vnpy's package `vnpy` (75 of 173 files, under `max_files`) was one module, where its team works in
# `vnpy/trader`, `vnpy/alpha`, `vnpy/rpc` and `vnpy/chart`.
BIG_SHARE = 1 / 3
KEEP_HIDDEN = frozenset({".github", ".gitlab", ".circleci", ".ci"})
JVM_SOURCE_ROOTS = frozenset({"java", "kotlin", "scala", "groovy"})


def skip_dir_name(name: str) -> bool:
    if name in SKIP_DIRS or name.startswith(("bazel-", "cmake-build-")) or name.endswith(".egg-info"):
        return True
    return name.startswith(".") and name not in KEEP_HIDDEN


def skipped(path: str, config: RepoConfig) -> bool:
    said = marks(config.marks, path) if config.marks else {}
    if said.get("linguist-vendored") or said.get("linguist-generated"):
        return True
    parts = path.split("/")
    for i, p in enumerate(parts[:-1]):
        if skip_dir_name(p) and not (p in VENDOR_WORDS and ("/".join(parts[:i + 1]) in config.own
                                                          or said.get("linguist-vendored") is False)
                                     or p in GENERATED_DIRS and said.get("linguist-generated") is False):
            return True
    name = parts[-1]
    if name in SKIP_FILES or name.endswith((".min.js", ".min.css", ".map")):
        return True
    return not config.selected(path)


@dataclass(frozen=True)
class ModuleSpec:
    id: str
    prefixes: tuple[str, ...]  # "dir/" for folders, "dir/word" for flat groups, "" for the root
    explicit: bool = False


def _dir_prefix(d: str) -> str:
    return d + "/" if d else ""


# a word of a file name as written: a run of capitals before a capitalised word or the end (`SD` of `SDImageCache`,
# `UI` of `UIImage+WebCache`), a word, or digits
_WORD = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z]|[^A-Za-z]|$)|[A-Za-z][a-z]*|[0-9]+")


def _name_prefix(filename: str, n: int = 1) -> str:
    """`filename` up to the end of its first `n` words, as written, so that it is a prefix of the name (`conv_3.c`:
    `conv`; `SDImageCache.h`: `SD`, two words `SDImage`); "" where the name has fewer words."""
    stem = filename.split(".", 1)[0]
    found = list(_WORD.finditer(stem))[:n]
    return stem[:found[-1].end()] if len(found) == n else ""


def _name_groups(names: list[str]) -> Counter[str]:
    """A flat folder's file names grouped by their first word (`conv_3.c`, `conv_5x5.c`: `conv`). Where more than
    half of the names begin with one word glued to a capitalised next one, the word is a namespace, not a family:
    SDWebImage's `SDImageCache.h`, `SDWebImageManager.h` and `SDAnimatedImage.h` in one folder of 120 files, laravel's
    `DatabaseEloquentBuilderTest.php`; those names are grouped by their first two words (`SDImage`, `SDWeb`,
    `DatabaseEloquent`)."""
    firsts = [_name_prefix(n) for n in names]
    spaces = {w for w, k in Counter(firsts).items() if w and k * 2 > len(names)}
    groups: Counter[str] = Counter()
    for n, w in zip(names, firsts):
        two = _name_prefix(n, 2) if w in spaces else ""
        groups[two if len(two) > len(w) and two[len(w)].isupper() else w] += 1
    return groups


def _layout_folders(children: dict[str, set[str]], direct: dict[str, list[str]]) -> set[str]:
    """The folders of the Maven / Gradle source layout: ``src``, ``src/<set>`` and ``src/<set>/<lang>`` above a JVM
    source root (``src/main/java``, ``src/jvmTest/kotlin``), and the package folders below it that own no file and
    lead to one folder only (``org/apache``); and a Dart package's ``lib`` and ``lib/src``. They say how a build
    tool finds the code, not how it is organised."""
    out: set[str] = set()
    for d, files in direct.items():  # a Dart package: its code is in lib/src, its public libraries in lib
        lib = f"{d}/lib" if d else "lib"
        if f"{lib}/src" in children.get(lib, ()) and any(f.rsplit("/", 1)[-1] == "pubspec.yaml" for f in files):
            out.update((lib, f"{lib}/src"))
    for d in children:
        parts = d.split("/")
        if len(parts) < 3 or parts[-3] != "src" or parts[-1] not in JVM_SOURCE_ROOTS:
            continue
        out.update(("/".join(parts[:-2]), "/".join(parts[:-1]), d))
        # the package folders: down from the source root through folders that own no file, each one that leads to
        # one folder only (`com/taobao/arthas` beside `one/profiler`, or below a root that holds `logback.xml`)
        todo = [c for c in children.get(d, ()) if not direct.get(c)]
        while todo:
            c = todo.pop()
            if len(children.get(c, ())) == 1:
                out.add(c)
            todo.extend(x for x in children.get(c, ()) if not direct.get(x))
    return out


def plan_modules(paths: list[str], config: RepoConfig) -> list[ModuleSpec]:
    """Decide the modules for a set of (already filtered) file paths. Deterministic."""
    specs: dict[str, ModuleSpec] = {ROOT_ID: ModuleSpec(ROOT_ID, ("",))}
    for em in config.modules:
        specs[em.id] = ModuleSpec(em.id, tuple(_explicit_prefix(p, paths) for p in em.paths), True)
    explicit_prefixes = [p for s in specs.values() if s.explicit for p in s.prefixes]

    # Only files not owned by an explicit module take part in the automatic rule.
    auto_files = [p for p in paths if not any(p.startswith(e) or p == e.rstrip("/") for e in explicit_prefixes)]
    subtree: Counter[str] = Counter()
    children: dict[str, set[str]] = defaultdict(set)
    direct: dict[str, list[str]] = defaultdict(list)
    for p in auto_files:
        parts = p.split("/")
        direct["/".join(parts[:-1])].append(p)
        for i in range(len(parts)):
            d = "/".join(parts[:i])
            subtree[d] += 1
            if i < len(parts) - 1:
                children[d].add("/".join(parts[: i + 1]))

    layout = _layout_folders(children, direct)

    total = subtree[""]

    def splits(d: str, depth: int) -> bool:
        # the root always splits into its top-level folders; deeper folders only when big, or when they hold more
        # than a third of a repository bigger than one module (`BIG_SHARE`)
        big = subtree[d] > config.max_files or (total > config.max_files and subtree[d] > total * BIG_SHARE)
        return (big or d == "") and depth < config.depth_for(d)

    def visit(d: str, depth: int) -> None:
        if not splits(d, depth):
            return
        for c in sorted(children.get(d, ())):
            if subtree[c] >= (1 if d == "" else config.min_files):  # smaller ones fold into `d`
                c_depth = depth if c in layout else depth + 1
                if c not in layout or not splits(c, c_depth):  # a layout folder split through is no module
                    specs.setdefault(c, ModuleSpec(c, (_dir_prefix(c),)))
                visit(c, c_depth)
        # flat split of a folder that still owns too many files directly
        own_direct = direct.get(d, [])
        if len(own_direct) > config.max_files:
            groups = _name_groups([p.rsplit("/", 1)[-1] for p in own_direct])
            for word, n in sorted(groups.items()):
                mid = f"{d}/{word}" if d else word
                if word and n >= max(config.min_files, config.max_files // 8) and mid not in specs \
                        and n < len(own_direct):
                    specs[mid] = ModuleSpec(mid, (_dir_prefix(d) + word,))

    if subtree[""] > 0:
        visit("", 0)
    if not config.tests_apart:
        _tests_with_their_code(specs)
    return sorted(specs.values(), key=lambda s: s.id)


# A JVM source set and its package below the source root: `core/src/test/java/org/x/time` -> ("core/src/", "test",
# "/java/org/x/time")
_JVM_SET_RE = re.compile(r"^((?:.*/)?src/)([^/]+)(/(?:" + "|".join(sorted(JVM_SOURCE_ROOTS)) + r")(?:/.*)?)$")


def _test_set(name: str) -> bool:
    """A source set of tests: `test`, `testFixtures`, `jvmTest`, `androidUnitTest`, `integrationTest`."""
    return name.startswith("test") or name.endswith("Test")


def _tests_with_their_code(specs: dict[str, ModuleSpec]) -> None:
    """A package of a JVM test source set joins the same package of the artifact's code (`src/test/java/org/x/time`
    into `src/main/java/org/x/time`; `main` first where several sets have it): the Maven / Gradle layout keeps a
    package's tests in a parallel tree, where Go, Rust or Python keep them beside the code, and as two modules of
    the same words the code and its tests were each other's runner-up (commons-lang: `…/lang3/time` 76 %, its tests
    72 %). A test package with no such twin stays a module; explicit modules are left as they are."""
    sets = {mid: m for mid, spec in specs.items() if not spec.explicit and (m := _JVM_SET_RE.match(mid))}
    code: dict[tuple[str, str], list[tuple[bool, str]]] = defaultdict(list)  # (not `main`, module): `main` first
    for mid, m in sets.items():
        if not _test_set(m.group(2)):
            code[(m.group(1), m.group(3))].append((m.group(2) != "main", mid))
    for mid, m in sorted(sets.items()):
        twins = code.get((m.group(1), m.group(3)))
        if _test_set(m.group(2)) and twins:
            twin = min(twins)[1]
            specs[twin] = ModuleSpec(twin, specs[twin].prefixes + specs.pop(mid).prefixes)


def _explicit_prefix(p: str, paths: list[str]) -> str:
    """An explicit module path is a folder ("dir/") unless it names a file or a name prefix."""
    p = p.strip("/")
    if not p:
        return ""
    if any(x == p for x in paths):
        return p
    if any(x.startswith(p + "/") for x in paths):
        return p + "/"
    return p  # a name prefix (or nothing yet): keep as written


class Assigner:
    """Longest-prefix assignment of files to modules, in O(path depth) per file."""

    def __init__(self, specs: list[ModuleSpec]):
        explicit = {s.id for s in specs if s.explicit}
        pairs = sorted(((prefix, s.id) for s in specs for prefix in s.prefixes),
                       key=lambda x: (-len(x[0]), x[1] not in explicit, x[1]))  # explicit wins a tie
        self._dirs: dict[str, str] = {}  # "a/b/" (or "" for the root) -> module
        self._names: dict[str, list[tuple[str, str]]] = defaultdict(list)  # "a/b/" -> [("a/b/conv", module)]
        for prefix, mid in pairs:
            if prefix == "" or prefix.endswith("/"):
                self._dirs.setdefault(prefix, mid)
            else:
                d = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
                if all(p != prefix for p, _ in self._names[d]):
                    self._names[d].append((prefix, mid))  # already longest first

    def module_of(self, path: str) -> str:
        end = len(path)
        while True:
            cut = path.rfind("/", 0, end)
            d = path[: cut + 1] if cut >= 0 else ""
            for prefix, mid in self._names.get(d, ()):
                if path.startswith(prefix):
                    return mid
            mid = self._dirs.get(d)
            if mid is not None:
                return mid
            if cut < 0:
                return ROOT_ID
            end = cut


def parent_of(mid: str, ids: set[str]) -> str | None:
    if mid == ROOT_ID:
        return None
    parts = mid.split("/")
    for i in range(len(parts) - 1, 0, -1):
        cand = "/".join(parts[:i])
        if cand in ids:
            return cand
    return ROOT_ID


# --- translations --------------------------------------------------------------------------------
# Language tags a repository names its translations' folders by (`docs/zh`, `docs/zh-hant`, `locales/pt-BR`): ISO
# 639-1 codes, with a script or region after them. Codes that are also common folder names (`it`: integration tests,
# `id`, `is`, `ml`, `os`, `ts`, ...) are left out; a folder counts as a set of translations only when at least
# `MIN_LOCALES` of its subfolders are tags of at least two languages, and a tag of no set is an ordinary name.
LANGUAGE_CODES = frozenset("""
af ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gl gu he hi hr hu hy ja ka kk km kn ko ky lo lt lv
mk mn mr ne nl nb nn pa pl ps pt ro ru sk sl sq sr sv sw ta te tg th tk tl tr uk ur uz vi yo zh zu
""".split())
_LOCALE_RE = re.compile(r"^([a-z]{2})(?:[-_](?:[A-Za-z]{4}|[A-Za-z]{2}|\d{3}))?$")
MIN_LOCALES = 3
SOURCE_LANGUAGE = "en"  # the language translations are made from, where a set holds it


def locale_tag(name: str) -> str | None:
    """The language of a folder named by a language tag (`zh-hant` -> `zh`), else None."""
    m = _LOCALE_RE.match(name)
    return m.group(1) if m and m.group(1) in LANGUAGE_CODES else None


def translation_modules(ids) -> dict[str, str]:
    """module -> the language of the translation it lies in: modules below a folder that is one of a set of sibling
    folders named by language tags (at least `MIN_LOCALES`, of two languages or more), other than the source
    language's (`SOURCE_LANGUAGE`, where the set holds it). FastAPI keeps its documentation in `docs/en` and its
    translations in `docs/zh`, `docs/ja`, `docs/de`, ...: a module of `docs/zh` holds the Chinese words of the
    documentation, so any question asked in Chinese reads like it."""
    children: dict[str, set[str]] = defaultdict(set)
    for mid in ids:
        parts = mid.split("/")
        for i in range(1, len(parts) + 1):
            children["/".join(parts[:i - 1])].add(parts[i - 1])
    sets = {}
    for parent, names in children.items():
        langs = {n: locale_tag(n) for n in names}
        tagged = {n: lang for n, lang in langs.items() if lang}
        if len(tagged) >= MIN_LOCALES and len(set(tagged.values())) >= 2:
            source = SOURCE_LANGUAGE if SOURCE_LANGUAGE in tagged.values() else None
            sets[parent] = {n: lang for n, lang in tagged.items() if lang != source}
    out = {}
    for mid in ids:
        parts = mid.split("/")
        for i in range(len(parts)):
            lang = sets.get("/".join(parts[:i]), {}).get(parts[i])
            if lang:
                out[mid] = lang
                break
    return out


def translation_folders(ids) -> list[str]:
    """The folders of the translations `translation_modules` finds (`docs/zh`, `docs/ja`), sorted."""
    out = set()
    for mid, lang in translation_modules(ids).items():
        parts = mid.split("/")
        i = next(i for i, p in enumerate(parts) if locale_tag(p) == lang)
        out.add("/".join(parts[:i + 1]))
    return sorted(out)
