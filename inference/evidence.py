"""Evidence the graph gives beyond bags of words: exact mentions, and how much of a text this repository knows.

`MentionIndex` maps what a module defines to the module: file names (`ConvSimdGroupShader.hpp`, and the stem
when it is distinctive), symbols (`LlmStatus`, `evict_lru`), module paths (`src/layer/vulkan`), and any path into
a module's folder (a file added since the index, a GitHub link, a diff header: its longest folder prefix). A
requirement that names one of them exactly points at its module. Only distinctive names count: defined in at most
`MAX_OWNERS` modules, at least `MIN_LEN` characters, and shaped like an identifier (CamelCase, snake_case, a
digit or a file extension) rather than an English word, since "Buffer" or "test" name nothing in particular.
Neither do the file names every project has (`pyproject.toml`, `package.json`, `CMakeLists.txt`: in an issue they
are the reporter's own). A test's name counts where it is at least `TEST_MIN_LEN` characters long and the text does
not define it: "TestOpenWithMaxIndex fails on main" names this repository's test (in etcd's issues, 10 of 11 such
names were in the module of the fix), while `def test_it():` is a reporter's reproduction. A path written from the
root of a file system (`/bin/sh`, `/usr/local/bin/node`) is the reporter's machine, not a folder of this repository,
though a file name in it still counts (`/home/me/ncnn/src/cpu.cpp` names `cpu.cpp`).

`Coverage` says how much of a text the repository's own vocabulary knows: each informative word weighs its
inverse document frequency over the module documents (a word the repository never uses weighs the most), and
the coverage is the weight of the known words over the weight of all. Texts of another project, support
questions and noise score far below the repository's own change texts; the hybrid's confidence uses it, read on
the text's subject (`Coverage.subject`): its first line, or first lines up to `SUBJECT_WORDS` words.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

from indexer.graph import ModuleGraph
from indexer.text import glossary, has_han, words

MAX_OWNERS = 2
MIN_LEN = 4
TEST_MIN_LEN = 12  # a shorter test name (`test_it`, `test_player`) is as likely a reporter's own
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
# a file name with hyphens (`BUG-BOUNTY.md`, `html-tree-validation.js`), which _IDENT cuts at each hyphen
_HYPHEN_FILE = re.compile(r"[A-Za-z0-9_][\w.]*(?:-[\w.]+)+\.[A-Za-z0-9]+")
_SHAPED = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]|_|[0-9]|\.")
_URL_PATH = re.compile(r"/(?:blob|tree)/[^/]+/")
# a name the text itself defines (`def test_it(`, `func TestFoo(`, `void testFoo(`): the reporter's own code
_DEFINED = re.compile(r"\b(?:def|func|fn|function|void|class|fun)\s+([A-Za-z_]\w*)")


# Names every project of a kind has: in an issue they name the reporter's own file, not this repository's module.
GENERIC_FILES = frozenset("""
readme.md readme.rst readme.txt readme changelog.md changes.md license license.md contributing.md setup.py setup.cfg
pyproject.toml tox.ini conftest.py requirements.txt __init__.py __main__.py main.py manage.py package.json tsconfig.json
package-lock.json yarn.lock index.js index.ts main.js main.ts vite.config.js vite.config.ts webpack.config.js
makefile cmakelists.txt configure go.mod go.sum main.go cargo.toml cargo.lock lib.rs main.rs mod.rs build.rs
pom.xml build.gradle build.gradle.kts settings.gradle settings.gradle.kts gradle.properties dockerfile
docker-compose.yml .gitignore .editorconfig
""".split())


def _distinctive(name: str) -> bool:
    return len(name) >= MIN_LEN and bool(_SHAPED.search(name.strip("_")))


def _absolute(path: str) -> bool:
    """A path from the root of someone's file system (`/bin/sh`, `/home/me/app/src`), not a GitHub link's path
    (`//github.com/o/r/blob/main/src/a.c`, `/o/r/tree/main/src`): its first folder is theirs, not this repository's,
    even where the names agree (dune's `bin`, Homebrew's `Library`)."""
    return path.startswith("/") and not path.startswith("//") and not _URL_PATH.search(path)


def _test_name(name: str) -> bool:
    """A test function or class (`test_it`, `TestFoo`)."""
    return name.lower().startswith("test")


class MentionIndex:
    def __init__(self, graph: ModuleGraph, ids: list[str]):
        owners: dict[str, set[str]] = defaultdict(set)
        tests: set[str] = set()
        for mid in ids:
            m = graph.modules[mid]
            for f in m.files:
                base = f.rsplit("/", 1)[-1]
                if base.lower() in GENERIC_FILES:
                    continue
                owners[base.lower()].add(mid)
                stem = base.rsplit(".", 1)[0]
                if _distinctive(stem):
                    owners[stem.lower()].add(mid)
            for s in m.symbols:
                if not _distinctive(s.name):
                    continue
                if _test_name(s.name):
                    if len(s.name) < TEST_MIN_LEN:
                        continue
                    tests.add(s.name.lower())
                owners[s.name.lower()].add(mid)
            if "/" in mid:
                owners[mid.lower()].add(mid)
            for p in m.paths:
                if p and "/" in p:
                    owners[p.lower().rstrip("/")].add(mid)
        self.owners = {k: tuple(sorted(v)) for k, v in owners.items() if len(v) <= MAX_OWNERS and len(k) >= MIN_LEN}
        self.test_names = frozenset(k for k in tests if k in self.owners)
        # folder -> module, for paths the index does not know by name (a file added since, a folder inside a module)
        self.dirs = {p.lower(): mid for mid in ids for p in graph.modules[mid].paths if p.endswith("/")}

    def find(self, text: str) -> dict[str, list[str]]:
        """module -> the names of it the text mentions."""
        hits: dict[str, list[str]] = defaultdict(list)
        # test names a text defines are its reproduction's (an index pickled before test names were kept has none)
        defined = {n.lower() for n in _DEFINED.findall(text)} & getattr(self, "test_names", frozenset())
        forms: dict[str, list[str]] = defaultdict(list)  # one name as the text writes it: `gradlew`, `./gradlew`
        for raw in (set(_IDENT.findall(text)) | set(_HYPHEN_FILE.findall(text))
                    | set(re.findall(r"[\w./-]+/[\w./-]+", text))):
            forms[raw.lower().strip("./")].append(raw)
        # in a fixed order, and a name counts where any of its forms does: the first form met used to decide, and
        # the set's order, which changes with each process's hash seed, changed the answer (okhttp's "Run all the
        # tests in CI ... ./gradlew test" answered `(root)` or `.github`)
        for key in sorted(forms):
            raws = sorted(forms[key])
            if key in defined:
                continue
            if "/" in key:  # `/bin/sh`, `/usr/bin/git`, `/Library/Caches`: the reporter's machine, not this repository
                raws = [r for r in raws if not _absolute(r)]
                if not raws:
                    continue
            mods = self.owners.get(key)
            if mods is None:
                mid = self._folder_module(key) if "/" in key else None
                if mid is not None:
                    hits[mid].append(raws[0])
                continue
            if "/" not in key and "." not in key:
                raws = [r for r in raws if _distinctive(r)]
                if not raws:
                    continue  # a plain word in the text ("buffer") is not a mention of `Buffer`
            for mid in mods:
                hits[mid].append(raws[0])
        return dict(hits)

    def _folder_module(self, path: str) -> str | None:
        """The module whose folder holds `path` (its longest folder prefix among the modules'), for a path of this
        repository as texts write it: from the repository root, or after a diff's `a/` / `b/` or a GitHub
        `blob/<ref>/` / `tree/<ref>/` URL. None for a path that starts elsewhere (a reporter's own `/home/...`)."""
        m = _URL_PATH.search(path)
        if m:
            path = path[m.end():]
        parts = path.split("/")
        if len(parts) > 2 and parts[0] in ("a", "b") and parts[1] + "/" in self.dirs:
            parts = parts[1:]
        for end in range(len(parts) - 1, 0, -1):
            mid = self.dirs.get("/".join(parts[:end]) + "/")
            if mid is not None:
                return mid
        return None

    def distribution(self, text: str, index: dict[str, int], size: int) -> np.ndarray | None:
        """A distribution over the answerable modules from the text's mentions (None when it mentions nothing)."""
        hits = self.find(text)
        if not hits:
            return None
        p = np.zeros(size)
        for mid, names in hits.items():
            i = index.get(mid)
            if i is not None:  # a name two modules define counts half for each
                p[i] += sum(1.0 / len(self.owners.get(n.lower().strip("./"), (mid,))) for n in set(names))
        tot = p.sum()
        return p / tot if tot > 0 else None


class Coverage:
    """IDF-weighted share of a text's informative words that the repository's module documents use.

    `claim=True` reads it for the claim that a text is not about this repository (`RankCalibrator.abstains`), not
    for the confidences: in a repository that does not write Chinese, a Chinese word the glossary cannot
    put in English counts neither way there (no language of this repository could know it). Chinese issue titles of
    English repositories were said not to be about them for such words (36 of 168 hand-translated titles of four
    repositories; "横屏模式下睡眠屏幕的封面没对齐", a koreader title, is 3 % known). The confidences keep reading
    such words as unknown: counted neither way there too, the calibrator (fitted on English change texts) was too
    sure of Chinese titles (labels 15 of 15 right became 23 of 29).

    The other way round, in a repository that writes Chinese, an English word the documents do not use is known
    where a Chinese word it stands for is (`bilingual`: the history part's `Bilingual`, glossary and learned pairs;
    "switching" → 切换): English titles of 1Panel's Chinese issues were said not to be about it for such words."""

    def __init__(self, docs: list[list[str]], chinese: bool | None = None, bilingual=None):
        df: Counter = Counter()
        for d in docs:
            df.update(set(d))
        n = max(1, len(docs))
        self.idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}
        self.unknown = math.log((n + 1) / 0.5)  # a word no module uses: the rarest of all
        # whether this repository writes Chinese (`writes_chinese` of its history; None: read off the documents)
        self.chinese = self._documents_chinese() if chinese is None else chinese
        self.bilingual = bilingual if self.chinese else None

    def _documents_chinese(self) -> bool:
        return any(has_han(w) for w in self.idf)

    def _chinese(self) -> bool:
        if "chinese" not in self.__dict__:  # pickled by an earlier modmatch (served while this one builds)
            self.chinese = self._documents_chinese()
        return self.chinese

    def __call__(self, text: str, claim: bool = False) -> float:
        ws = set(words(text))
        if not ws:
            return 0.0
        gloss = glossary()
        neutral = claim and not self._chinese()
        known = unknown = 0.0
        for w in ws:
            if w in self.idf:
                known += self.idf[w]
                continue
            # a Chinese word the documents hold in English (卷积 → conv) is known: Chinese questions about an
            # English repository are not foreign text
            eq = [self.idf[e] for e in gloss.get(w, ()) if e in self.idf]
            if not eq and (bi := self.__dict__.get("bilingual")) is not None:  # an English word, Chinese here
                eq = [self.idf[z] for z in bi.chinese([w], known=self.idf)]
            if eq:
                known += max(eq)
            elif not (neutral and self._unreadable(w, gloss)):
                unknown += self.unknown
        total = known + unknown
        if total <= 0:  # no word, or (claim) none this repository could know in any language: nothing to claim on
            return 1.0 if neutral else 0.0
        return known / total

    def unread(self, text: str, limit: int = 8) -> list[str]:
        """The Chinese words of `text` that this repository cannot read in any language (in the order written, at
        most `limit`): in a repository that does not write Chinese, those the glossary cannot put in English.
        Shown to the person asking, who can rephrase them ("发票金额不对" against an English repository reads
        nothing)."""
        if not has_han(text) or self._chinese():
            return []
        gloss = glossary()
        ws = list(dict.fromkeys(words(text)))
        long = [w for w in ws if len(w) > 2 and has_han(w)]
        out: list[str] = []
        for w in ws:
            # the segmenter's search mode also yields the pieces of a long word (数据库: 数据, 据库; 艺术家: 艺术,
            # 术家): a piece is not a word the person wrote, and the whole is read or named itself
            if self._unreadable(w, gloss) and w not in NOT_NAMED and not any(w != o and w in o for o in long):
                out.append(w)
                if len(out) >= limit:
                    break
        return out

    def _unreadable(self, w: str, gloss: dict) -> bool:
        """A Chinese word that neither the documents nor the glossary hold."""
        return w not in self.idf and w not in gloss and has_han(w)

    def subject(self, text: str, claim: bool = False) -> float:
        """The coverage of `text`'s subject (`subject_of`). The whole text's coverage falls with its length (every
        log line, version or name of the reporter's own code is a word the repository does not use), so a
        calibrator fitted on commit subjects read real issues as foreign: pytest and svelte issues (title and
        description) had a median coverage of 0.66 and 0.46 against 1.00 for their held-out commits; their titles,
        1.00 and 0.74."""
        return self(subject_of(text), claim)


# Words of how a problem is reported, which say nothing of where it lies: a person told that 导致 (cause) or 不起作用
# (does not work) was not read would rephrase for nothing. Still matched where a repository writes Chinese; only not
# named (the most frequent of the unread words of 464 Chinese issue titles; glossing them in English cost 2 first
# answers, bench/README.md, stop 47).
NOT_NAMED = frozenset("""
导致 出现 不起作用 出错 遇到 困惑 开始 完成 工作 生效 某些 或许 额外 单独 当作 加上 保留 接受 要求 代替 大量 清楚
不够 足够
""".split())


SUBJECT_WORDS = 4  # a first line with fewer words ("Hi team,", "Bug") is read with the lines after it


_BODY_OPENERS = ("#", "<!--", "```", "~~~")


def subject_of(text: str, min_words: int = SUBJECT_WORDS) -> str:
    """The first line of `text`, or its first lines until they hold `min_words` words (a commit's subject, an
    issue's title, a question's opening sentence). A line that opens a Markdown heading, an HTML comment or a code
    fence starts the body (an issue template's "## error log | 日志或报错信息" under a short title), so it ends the
    subject."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    out: list[str] = []
    n = 0
    for ln in lines:
        if out and ln.lstrip().startswith(_BODY_OPENERS):
            break
        out.append(ln)
        n += len(words(ln))
        if n >= min_words:
            break
    return "\n".join(out)


# --- subject tags ---------------------------------------------------------------------------------
# How issues and Slack questions read: the same change text without the leading subject tags of
# commit messages. Applied repeatedly at the very start of the text (the subject line) only:
#   1. a bracketed tag: `[OpenCL:Bugfix]`, `[skip ci]`, `[LANG-1234]`, `【优化】` (up to 60 characters,
#      no line break), with an optional `:`, `-`, `–` or `|` after it;
#   2. a prefix tag ending in a colon: one token of ASCII letters, digits and `_ . / + * # @ { } < > -`
#      (or a comma-separated list of such tokens: `io, net`), optionally a conventional-commit scope
#      `(ssr)` and `!`, at most 40 characters, then `:` or `：` followed by whitespace (`IoUring: x`,
#      `net/http: x`, `fix(ssr): x`, `*: x`, `LANG-1234: x`); a full-width `：` or a conventional-commit
#      type (`fix`, `feat`, `docs`, `chore`, ...) needs no space after it (`fix:fix CI`).
#   3. an emoji or a gitmoji code before a space: `✨ feat(im): x`, `🐞 fix:x`, `:wrench: use x` (yudao-vue3 begins
#      most of its subjects so; its conventional tag after the emoji was not read).
# A colon after a space-separated phrase ("Fix the parser: it crashes") is kept, as are `::`, `://`
# and `10:30`; tokens with non-ASCII letters never count as a tag (a Chinese sentence has no spaces).
# If nothing but tags was there, the result is empty.
_TAG_TOKEN = r"[A-Za-z0-9_./+*#@{}<>\-]+"
_CONVENTIONAL = ("feat|feature|fix|bugfix|hotfix|docs?|style|refactor|perf|tests?|build|ci|chore|revert|"
                 "opt|optimi[sz]e|deps|release|wip")
_BRACKET_TAG_RE = re.compile(r"^\s*(?:\[[^\[\]\n]{1,60}\]|【[^【】\n]{1,60}】)[ \t]*[:：\-–|]?\s*")
_PREFIX_TAG_RE = re.compile(
    rf"^\s*(?P<tag>{_TAG_TOKEN}(?:[ \t]*,[ \t]*{_TAG_TOKEN})*(?:\([^()\n]{{0,40}}\))?!?)[ \t]*(?P<colon>[:：])(?P<space>\s*)")
_EMOJI_TAG_RE = re.compile(r"^\s*(?::[a-z0-9_+\-]{1,30}:|[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff]"
                           r"[\ufe0f\u200d\u2600-\u27bf\U0001f000-\U0001faff]*)[ \t]+(?=\S)")
_CONVENTIONAL_RE = re.compile(rf"^(?:{_CONVENTIONAL})(?:\(.*\))?!?$", re.IGNORECASE)


def _prefix_tag_end(text: str) -> int:
    """Where a leading `tag:` ends (0: there is none)."""
    m = _PREFIX_TAG_RE.match(text)
    if not m or len(m.group("tag")) > 40:
        return 0
    if m.group("colon") == "：" or m.group("space") or m.end() == len(text):
        return m.end()
    nxt = text[m.end()]
    if nxt in ":/" or nxt.isdigit() or not _CONVENTIONAL_RE.match(m.group("tag")):
        return 0  # `std::x`, `https://`, `10:30`, `Foo:bar`
    return m.end()


def strip_subject_tags(text: str) -> str:
    """`text` without its leading subject tags (the rule is written above; bench/README.md repeats it).

    `[OpenCL:Bugfix] fix x` -> `fix x`; `fix(ssr): x` -> `x`; `IoUring: x` -> `x`; `net/http: x` -> `x`;
    `[skip ci] io, net: x` -> `x`; `Fix the parser: it crashes` stays as it is.
    """
    out = text
    while True:
        m = _BRACKET_TAG_RE.match(out) or _EMOJI_TAG_RE.match(out)
        end = m.end() if m else _prefix_tag_end(out)
        if not end:
            break
        out = out[end:]
    return text if out is text else out.strip()


def subject_tag(text: str) -> str | None:
    """The leading subject tags of `text` as one key (`Proxy: fix x` -> `proxy`, `[OpenCL:Bugfix] x` ->
    `[opencl:bugfix]`, `fix(ssr): x` -> `fix(ssr)`): lower-cased, spaces collapsed, the separator after the last tag
    dropped. None when the text has none (`strip_subject_tags` removes nothing) or is nothing but tags."""
    head = text.strip().split("\n", 1)[0].strip()
    rest = strip_subject_tags(head)
    if rest == head or not rest:
        return None
    tag = head[: head.rfind(rest)]  # the rest is what follows the tags
    tag = re.sub(r"\s+", " ", tag.strip().rstrip(":：-–|").strip().lower())
    return tag or None


# A team's subject tags ("Proxy:", "[OpenCL:Bugfix]", "fix(ssr):") are its jargon for where a change goes. A tag
# votes when at least MIN_TAG_CHANGES past changes carried it.
MIN_TAG_CHANGES = 5


class TagIndex:
    """What the past changes that carried each subject tag touched: per tag, its modules, each change split over
    the modules it touched and counted whatever its age (a person's correction counts as `FEEDBACK_WEIGHT` changes,
    as in the history classifier). The classifier sees a tag as one word among the text's, and weighs changes by
    recency; here the tag speaks alone, for the whole history. On nginx, whose every change is tagged by area
    ("Proxy:", "Upstream:", "Dav:"), the classifier learned a burst of QUIC changes to `src/event` and answered it
    for texts tagged otherwise (bench/README.md, "What a burst of recent changes teaches")."""

    def __init__(self, graph: ModuleGraph, ids: list[str]):
        from .history_clf import change_weight

        index = {m: i for i, m in enumerate(ids)}
        mass: dict[str, np.ndarray] = {}
        seen: Counter = Counter()
        for h in graph.history:
            tag = subject_tag(h.subject)
            mods = [index[m] for m in h.modules if m in index]
            if tag is None or not mods:
                continue
            seen[tag] += 1
            row = mass.setdefault(tag, np.zeros(len(ids)))
            row[mods] += change_weight(h, None) / len(mods)  # undated: no decay
        self.tags = {t: v / v.sum() for t, v in mass.items() if seen[t] >= MIN_TAG_CHANGES and v.sum() > 0}

    def __len__(self) -> int:
        return len(self.tags)

    def distribution(self, text: str) -> np.ndarray | None:
        """What the past changes carrying `text`'s subject tag touched (None: no tag, or one seen too rarely)."""
        tag = subject_tag(text)
        return None if tag is None else self.tags.get(tag)


# --- translations ----------------------------------------------------------------------------------
# A text about translations or the documentation (in any language the glossary's users write, and the gitmoji of
# i18n): where it is not, a module of a translation (`indexer.modules.translation_modules`) is no answer for the
# language the text is written in.
_ABOUT_TRANSLATION = re.compile(
    r"translat|i18n|l10n|locali[sz]|\blocales?\b|\blanguages?\b|\bdocs?\b|documentation|\bwording\b|\btypos?\b|"
    r"chinese|japanese|korean|german|french|spanish|portuguese|russian|turkish|ukrainian|hindi|"
    r"文档|翻译|译文|本地化|多语言|国际化|中文|日文|日语|韩文|韩语|英文|错别字|"
    r"日本語|한국어|\U0001F310", re.I)


def about_translation(text: str) -> bool:
    """Whether `text` is about translations or the documentation ("🌐 Add Chinese translation for …", "中文文档里
    … 有错别字", "typo in the docs")."""
    return bool(_ABOUT_TRANSLATION.search(text))
