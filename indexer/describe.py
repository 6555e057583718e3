"""Module descriptions and keywords, from what the files say about themselves.

Description: the module's README / markdown (first paragraphs), else header comments and
docstrings, followed by its most public symbol names. Keywords: the words of a module's
path, symbols, headers and docs with the highest TF-IDF against all modules, so they tell a module
apart from its siblings. The keyword → modules dictionary inverts them for the whole repository.
"""
from __future__ import annotations

import math
import posixpath
import re
from collections import Counter, defaultdict

from .parse import ART_PREFIX_RE
from .records import FileRecord, Module
from .text import has_cjk, path_words, words

README_RE = re.compile(r"(^|/)(readme(\.[a-z]+)?|(index|overview|about)\.(md|rst|txt|adoc|markdown))$", re.I)
DOC_EXT = (".md", ".rst", ".txt", ".adoc", ".markdown")
REQUIREMENTS_RE = re.compile(r"(?:^|/|[._-])(?:requirements|constraints)(?:[._-][\w.-]*)?\.txt$", re.I)
MAX_DESC = 600
N_KEYWORDS = 12
MAX_MODULE_TERMS = 300


HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
MULTILINE_BADGE_RE = re.compile(r"\[?!\[[^\]\n]*\n[^\]]*\]\([^)\s]*\)(?:\]\([^)\s]*\))?")
FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.S)
# the README a project generator writes (Vue CLI, Create React App, Vite's templates): how to run the scaffold,
# nothing about the code (Arthas's `labs/arthas-grpc-web-proxy/ui`: "Compiles and hot-reloads for development ...")
SCAFFOLD_README_RE = re.compile(
    r"compiles and hot-reloads for development|bootstrapped with \[?create react app|"
    r"this template should help get you started developing with|this template provides a minimal setup to get react|"
    r"this starter template is using vue 3",
    re.I)
# sections that say how to get, license or contribute to a package, not what it is: Excalidraw's packages/common and
# packages/element were described by "If you prefer Yarn over npm, use this command to install ..."
ASIDE_HEADING_RE = re.compile(r"^(?:install|installation|installing|setup|set up|licen[sc]e|contributing|"
                              r"安装|许可|许可证|开源协议|贡献)\b", re.I)
# a setting, not prose: `key=value`, or `a.key: value` (a commented-out line of a properties or YAML file)
SETTING_RE = re.compile(r"^[\w.\-]+\s*=\s*\S*$|^[\w\-]+(?:[._][\w\-]+)+\s*:\s*\S*$")


# a README's menu of its translations: "English · 中文(简体) · 日本語", "[ English | 中文 ]"
LANGUAGE_NAME_RE = re.compile(r"english|中文|简体|繁體|日本語|한국어|español|português|русский|deutsch|français|"
                              r"italiano|türkçe|tiếng việt|bahasa|polski|العربية|فارسی|हिन्दी", re.I)


def _language_menu(line: str) -> bool:
    parts = [p.strip(" []()") for p in re.split(r"\s[·|•/]\s|\s?[·|•]\s?", line) if p.strip(" []()")]
    return len(parts) >= 2 and all(len(p) <= 30 for p in parts) and sum(
        bool(LANGUAGE_NAME_RE.search(p)) for p in parts) >= max(2, len(parts) - 1)


def _wordy(text: str) -> bool:
    """Whether most of a paragraph's visible characters are letters or digits (not an ASCII-art banner)."""
    visible = [c for c in text if not c.isspace()]
    return 2 * sum(c.isalnum() for c in visible) >= len(visible)


def _clean_markdown(text: str) -> str:
    text = FRONT_MATTER_RE.sub("", text)  # a static site's or an issue template's YAML (`name: Feature request`)
    # what the author commented out is not shown: Sa-Token's README hid a badge and a line so, and its description
    # read "--> --> 学习测试请拉取 master 分支"
    text = HTML_COMMENT_RE.sub("", text)
    # a badge whose alt text breaks over lines (pandoc's "[![github\nrelease](…svg)](…releases)"), which the
    # line-by-line rules below cannot see whole
    text = MULTILINE_BADGE_RE.sub("", text)
    lines = []
    in_code = False
    aside = 0  # the level of the aside section (`ASIDE_HEADING_RE`) being skipped, 0 where none
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```") or s.startswith("~~~"):
            in_code = not in_code
            continue
        heading = None if in_code else re.match(r"^(#{1,6})\s*(.*)$", s)
        if heading:
            level = len(heading.group(1))
            if aside and level > aside:
                continue
            aside = level if ASIDE_HEADING_RE.match(heading.group(2)) else 0
        if aside:
            continue
        if in_code or not s:
            lines.append("")
            continue
        if re.match(r"^(\[!\[|!\[|<img|<p|</p|<a |<div|</div|\.\. |:[a-z]+:|=+$|-+$|\*+$|\|)", s):
            continue
        s = re.sub(r"^#+\s*", "", s)
        s = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", s)  # images first: a badge is a link around one (`[![npm](svg)](url)`)
        s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
        if _language_menu(s):
            continue
        s = re.sub(r"<[^>]+>", "", s)
        s = re.sub(r"[*_`]{1,3}", "", s)
        lines.append(s)
    paras = [" ".join(p.split()) for p in "\n".join(lines).split("\n\n")]
    return " ".join(p for p in paras if len(p) > 20 and _wordy(p))[:MAX_DESC]


# the date a tool wrote atop what it generated: Gradle's wrapper properties begin `#Sun Aug 17 17:07:23 CEST 2025`
# (AntennaPod's `gradle` folder was described by that date), Java's Properties.store the same
STAMP_RE = re.compile(r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} "
                      r"\d{1,2}:\d{2}:\d{2}(?: [A-Z]{2,5}[+-]?\d*)? \d{4}$")


def _leading_comment(text: str, name: str = "") -> str:
    """The block of `#` / `//` / `;` comment lines a script or config begins with (after a shebang; settings in it,
    commented-out, skipped): a comment further down says what a setting below it means, not what the file is."""
    out = []
    for line in text.splitlines()[:40]:
        s = line.strip()
        if s.startswith("#!") and not out:
            continue
        m = re.match(r"^(#+|//+|;+)\s?(.*)$", s)
        if m:
            c = ART_PREFIX_RE.sub("", m.group(2).strip())  # a banner's last line, the name beside it
            # a commented-out setting is no prose, nor a tool's date stamp, nor a ruler (`# -----`, atop Jekyll's data)
            if c and c != name and not SETTING_RE.match(c) and not STAMP_RE.match(c) and re.search(r"[^\W_]", c):
                out.append(c)
        elif out or (s and s != "---" and not s.startswith("<?xml")):
            break  # the comment block ended, or the file began with no comment (`# seconds` below `port=3658`)
    text = " ".join(out)
    if not _prose(text):
        return ""  # a marker, not prose: Xcode's `// !$*UTF8*$!` atop every project.pbxproj
    return "" if re.search(r"copyright|license|SPDX", text, re.I) else text


_PROSE_WORD_RE = re.compile(r"[(\"'`]?[^\W\d_]{2,}[.,:;!?)\"'`]*")


def _prose(text: str) -> bool:
    """Whether `text` reads as words: two of its first 40 tokens are words, or it holds Chinese (not a marker such as
    `!$*UTF8*$!`, a key, or `arrow==1.2.3 --hash=sha256:...`)."""
    return sum(1 for t in text.split()[:40] if _PROSE_WORD_RE.fullmatch(t)) >= 2 or has_cjk(text)


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.{20,}?[.!?。])(\s|$)", text)
    s = m.group(1) if m else text
    return s[:limit]


WORKFLOW_NAME_RE = re.compile(r"^name:\s*['\"]?(.+?)['\"]?\s*$", re.M)
# what a workflow runs (`uses: actions/upload-artifact@v4`: upload-artifact; a local `./.github/actions/x` too) and on
# which runner (`runs-on: ubuntu-latest`; a matrix expression is no name)
WORKFLOW_USES_RE = re.compile(r"^\s*(?:-\s*)?uses:\s*['\"]?([\w./-]+?)(?:@[\w.-]+)?['\"]?\s*(?:#.*)?$", re.M)
WORKFLOW_RUNNER_RE = re.compile(r"^\s*runs-on:\s*['\"]?([\w.-]+)['\"]?\s*(?:#.*)?$", re.M)


def _some(items: list[str], n: int) -> str:
    """The first `n` distinct `items`, with an ellipsis where there are more."""
    shown = list(dict.fromkeys(items))
    return ", ".join(shown[:n]) + (", …" if len(shown) > n else "")


def _forge_settings(module: Module, records: list[FileRecord]) -> str:
    """What a `.github` / `.gitlab` folder holds, said plainly: its workflows by name, its templates, its bots. Its
    first document would be an issue or pull-request template ("Describe the bug … Steps to reproduce …": 20 of the
    26 dev repositories; a code of conduct, a licence or a contributing guide in most others), whose words read
    like every bug report."""
    forge = module.id.rsplit("/", 1)[-1]
    if forge not in (".github", ".gitlab"):
        return ""
    names: list[str] = []
    actions: list[str] = []
    runners: list[str] = []
    for r in sorted(records, key=lambda r: r.path):
        if "/workflows/" in r.path and r.path.endswith((".yml", ".yaml")) and r.text:
            m = WORKFLOW_NAME_RE.search(r.text)
            names.append(" ".join(m.group(1).split()) if m else r.path.rsplit("/", 1)[-1].rsplit(".", 1)[0])
            actions += [a.rsplit("/", 1)[-1] for a in WORKFLOW_USES_RE.findall(r.text)]
            runners += WORKFLOW_RUNNER_RE.findall(r.text)
    paths = [r.path.lower() for r in records]
    parts = []
    if names:
        parts.append("CI workflows (" + _some(names, 8) + ")")
    if actions:
        parts.append("actions used: " + _some(actions, 10))
    if runners:
        parts.append("runners: " + _some(runners, 4))
    if any("issue_template" in p for p in paths):
        parts.append("issue templates")
    if any("pull_request_template" in p or "merge_request_templates" in p for p in paths):
        parts.append("the pull-request template")
    if any(p.endswith(("dependabot.yml", "dependabot.yaml", "renovate.json")) for p in paths):
        parts.append("dependency update bots")
    if any(p.endswith("codeowners") for p in paths):
        parts.append("code owners")
    if not parts:
        return ""
    return ("GitHub" if forge == ".github" else "GitLab") + " settings: " + "; ".join(parts) + "."


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/" if "/" in path else ""


def _readme_description(module: Module, records: list[FileRecord], readmes: list[FileRecord]) -> str:
    """A README in the module's own folder describes the module, and so does one in the folder that holds all its
    files. READMEs of some of its subfolders each describe a part: their first sentences, each named by its folder
    (chatgpt-on-wechat's `channel`, the chat apps it talks to, was described by `feishu/README.md` alone; its `agent`
    by the README of one of its tools, the scheduler)."""
    top = _folder(readmes[0].path)
    if top in module.paths or not top or all(r.path.startswith(top) for r in records):
        return _clean_markdown(readmes[0].text)
    parts = []
    for r in readmes[:3]:
        text = _clean_markdown(r.text)
        if text:
            parts.append(f"{posixpath.basename(posixpath.dirname(r.path))}: {_first_sentence(text)}")
    return "; ".join(parts)


def describe(module: Module, records: list[FileRecord]) -> str:
    if module.description:
        return module.description
    forge = _forge_settings(module, records)
    if forge:
        return forge[:MAX_DESC]
    parts: list[str] = []
    records = [r for r in records if not (r.text and README_RE.search(r.path) and SCAFFOLD_README_RE.search(r.text))]
    readmes = sorted((r for r in records if README_RE.search(r.path) and r.text),
                     key=lambda r: (r.path.count("/"), r.path))
    readme = _readme_description(module, records, readmes) if readmes else ""
    if readme:  # one that says nothing (a Sphinx `index.rst` that is only a toctree) leaves room for the rest
        parts.append(readme)
    if not parts or len(parts[0]) < 40:
        heads = []
        for r in records:
            h = r.header.strip()
            if h and len(h) > 15 and not re.search(r"copyright|license|licence|SPDX|all rights reserved", h, re.I):
                heads.append(_first_sentence(h))
            if len(heads) >= 3:
                break
        if heads:
            parts.append(" ".join(dict.fromkeys(heads)))
    public = [s for r in records for s in r.symbols if not s.name.startswith("_")]
    kinds_first = sorted(public, key=lambda s: (s.kind not in ("class", "struct", "interface", "trait"), s.path, s.line))
    names = list(dict.fromkeys(s.name for s in kinds_first))[:12]
    if names:
        parts.append("Defines " + ", ".join(names) + ".")
    if not parts:  # the first document that reads as prose (a pip requirements file, a key in a .txt: no document)
        docs = (_clean_markdown(r.text) for r in records
                if r.path.endswith(DOC_EXT) and r.text and not REQUIREMENTS_RE.search(r.path))
        doc = next((d for d in docs if _prose(d)), "")
        if doc:
            parts.append(doc)
    if not parts:  # scripts and configs: their leading comment
        for r in records:
            c = _leading_comment(r.text, posixpath.basename(r.path))
            if c:
                parts.append(_first_sentence(c, 200))
                break
    desc = " ".join(p for p in parts if p).strip()
    if not desc and records:  # nothing says what they are: their names (the tree already gives how many)
        names = sorted({r.path.rsplit("/", 1)[-1] for r in records})  # a name in two subfolders is said once
        desc = "Holds " + ", ".join(names[:5]) + (f" and {len(names) - 5} more." if len(names) > 5 else ".")
    return desc[:MAX_DESC]


# A CI pipeline's file: what it runs is written in its values (`uses: actions/upload-artifact@v4`, `runs-on:
# ubuntu-latest`, `java-version: 17`, `run: mvn -B verify`), which no grammar reads; a change text about CI names
# them ("upgrade upload-artifact version", "run on ubuntu-latest"). Its words count once each, the schema's own keys
# (`CI_KEYS`) not at all.
CI_FILE_RE = re.compile(r"(?:^|/)(?:\.github/workflows/[^/]+|\.gitlab-ci|\.circleci/config|azure-pipelines|\.travis"
                        r"|appveyor|\.drone|\.cirrus|bitbucket-pipelines|\.woodpecker(?:/[^/]+)?)\.ya?ml$")
CI_KEYS = frozenset("""
on jobs job steps step uses with run runs name env needs if strategy matrix permissions branches branch push pull
request target types paths ignore workflow workflows dispatch call inputs outputs secrets id shell working directory
default defaults continue error timeout minutes fail fast concurrency group cancel progress true false yes no
stage stages script before after only except variables image services cache key restore keys path artifacts
""".split())
CI_WEIGHT = 0.5


def file_terms(r: FileRecord, limit: int = 150) -> dict[str, float]:
    """Weighted words of one file's content (symbols, docs, header, prose; a CI pipeline's values). Computed once
    per content and cached with the parse, so a refresh never re-tokenises unchanged files."""
    c: Counter = Counter()
    if r.text and CI_FILE_RE.search(r.path):
        for w in dict.fromkeys(words(r.text[:4000])):
            if w not in CI_KEYS:
                c[w] += CI_WEIGHT
    for s in r.symbols:
        for w in words(s.name):
            c[w] += 1
        if s.doc:
            for w in words(s.doc[:200]):
                c[w] += 0.3
    if r.header:
        for w in words(r.header[:300]):
            c[w] += 0.5
    if r.text and r.path.endswith(DOC_EXT):
        for w in words(r.text[:1500]):
            c[w] += 0.2
    return {w: round(v, 2) for w, v in sorted(c.items(), key=lambda x: (-x[1], x[0]))[:limit]}


def module_terms(module: Module, records: list[FileRecord]) -> Counter:
    """Weighted bag of words that characterise a module (used for keywords)."""
    c: Counter = Counter()
    for w in path_words(module.id):
        c[w] += 3
    for a in module.aliases:
        for w in words(a):
            c[w] += 3
    for r in records:
        for w in path_words(r.path.rsplit("/", 1)[-1]):
            c[w] += 1
        c.update(r.terms)
    return Counter(dict(sorted(c.items(), key=lambda x: (-x[1], x[0]))[:MAX_MODULE_TERMS]))


def keywords(terms: dict[str, Counter], n: int = N_KEYWORDS, previous=None) -> dict[str, list[str]]:
    """Top TF-IDF words per module (ties broken alphabetically, so the result is stable).

    `previous` = (old terms of every module of the previous graph, its keywords, the modules whose terms
    are unchanged): a refresh then reuses the old keywords of every unchanged module none of whose words
    changed document frequency (same module count): its scores, hence its keywords, are the same."""
    df: Counter = Counter()
    for c in terms.values():
        df.update(c.keys())
    total = max(len(terms), 1)
    reuse: dict[str, list[str]] = {}
    if previous is not None:
        old_terms, old_keywords, unchanged = previous
        if len(old_terms) == len(terms):
            old_df = Counter(df)
            for mid in set(terms) - unchanged:
                old_df.subtract(terms[mid].keys())
            for mid in set(old_terms) - unchanged:
                old_df.update(old_terms[mid].keys())
            moved = {w for w, d in old_df.items() if d != df.get(w, 0)}
            reuse = {mid: old_keywords[mid] for mid in unchanged
                     if mid in old_keywords and mid in terms and terms[mid].keys().isdisjoint(moved)}
    out = keywords_given_df({mid: c for mid, c in terms.items() if mid not in reuse}, df, total, n)
    return {mid: list(reuse[mid]) if mid in reuse else out[mid] for mid in terms}


def keywords_given_df(terms: dict[str, Counter], df: dict[str, int], total: int, n: int = N_KEYWORDS) -> dict[str, list[str]]:
    """The keywords of the modules in `terms`, given every word's document frequency over all `total` modules (a
    refresh counts them in the store instead of holding every module's terms)."""
    log = math.log
    out = {}
    for mid, c in terms.items():
        scored = [(-(1 + log(tf)) * log(1 + max(total, 1) / df[w]), w)
                  for w, tf in c.items() if tf > 0 and len(w) >= 3 and not w.isdigit()]
        out[mid] = [w for _, w in sorted(scored)[:n]]
    return out


def keyword_index(mods: dict[str, Module]) -> dict[str, list[str]]:
    idx: dict[str, list[str]] = defaultdict(list)
    for mid in sorted(mods):
        m = mods[mid]
        for w in list(m.keywords) + [a.lower() for a in m.aliases]:
            if mid not in idx[w]:
                idx[w].append(mid)
    return dict(sorted(idx.items()))
