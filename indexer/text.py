"""Words from code and prose: identifier splitting, stop words, Chinese word segmentation.

Shared by the indexer (keywords, descriptions) and by the matchers (inference imports this).
Runs of Han characters are cut into words by jieba (search mode: a long word also yields its dictionary
sub-words), with the software terms of `zh_terms.tsv` added to its dictionary; single characters and
Chinese stop words are dropped unless the glossary names them (慢 slow, 锁 lock). jieba is imported only
when a text holds Han characters (its dictionary loads in ~0.7 s, from a cache file after the first time).
Identifiers inside Chinese sentences stay whole and split exactly as in English text. Kana and Hangul
runs, which jieba does not cut, keep the older scheme: the run's bigrams.
"""
from __future__ import annotations

import logging
import re
import tempfile
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TOKEN = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

STOPWORDS = frozenset("""
a an the and or not no of to in on at for from by with without into onto over under as is are was were be been being
it its this that these those there here then than so such can could should would will shall may might must do does
did done have has had having if else when while where which who whom whose what why how all any some each every
both either neither few more most other same own only just also very too again further once about above below
between through during before after up down out off i we you he she they me us him her them my our your his their
use used using via per etc e g ie eg new add adds added adding fix fixes fixed fixing make makes made support
supports update updates updated change changes changed get gets set sets one two
self cls none true false null nil return returns void int char bool str string const static public private
protected def func fn function class struct let var val import include package
""".split())

# Chinese function words: particles, pronouns, demonstratives, conjunctions, adverbs of degree and time,
# modal verbs, politeness. Content words stay, even generic ones (修复 fix, 问题 problem, 导致 cause): on a
# Chinese-led repository's history (hutool, bench/README.md) dropping those too cost lexical 4 and hybrid
# 7 points of Acc@1 on the Chinese cases; a word that says nothing gets a low IDF or weight anyway.
CJK_STOPWORDS = frozenset("""
的 了 在 是 和 与 及 或 等 把 被 对 从 就 也 都 而 但 并 且 还 又 很 太 更 最 再 才 已 将 让 给 向 于 以 为 之 其 该 此 这 那
我 你 他 她 它 们 吗 吧 呢 啊 哦 嗯 个 些 种 次 下 上 中 里 内 外 时 后 前 能 会 要 可 不 没 无 有 用 做 来 去 到 过 着 得 地
需要 一个 一些 一下 一种 一直 一样 这个 那个 这些 那些 这样 那样 这里 那里 这种 那种 这次 我们 你们 他们 它们 大家
可以 可能 能够 不能 不会 不要 不是 没有 就是 还是 或者 以及 而且 并且 但是 因为 所以 如果 虽然 然后 然而 其中 其他 其它
已经 正在 目前 现在 当前 之前 之后 以前 以后 时候 的时候 同时 另外 此外 比如 例如 关于 对于 通过 根据 按照
一般 比较 非常 特别 很多 更多 所有 全部 每个 各种 任何 什么 怎么 怎样 如何 为什么 是否 有些 有点 有时 的话 之类
以下 以上 如下 如上 上述 下面 上面 感谢 谢谢 请问 麻烦 希望 应该 必须 尽量 直接
作为 由于 之间 至少 一起 好像 多个 两个 不再 重新 自己 还有 只有 里面 其实 前面 后面 同一个 具体 不同 给出 方式 情况
办法 每次
""".split())

# Words of jieba's dictionary that software text never means: "运行时报错" is 运行 / 时 / 报错 ("when run, reports an
# error"), but jieba cuts 时报 (a newspaper) first, and 报错 is lost.
_NOT_WORDS = ("时报",)

_GLOSSARY_FILE = "zh_terms.tsv"
_log = logging.getLogger(__name__)
_seg_lock = threading.Lock()
_segmenter = None
_cache_dir: Path | None = None


def split_identifier(word: str) -> list[str]:
    """`getHTTPResponse_code2` -> ['get', 'http', 'response', 'code', '2']."""
    out = []
    for part in word.split("_"):
        if not part:
            continue
        out.extend(m.group(0).lower() for m in _CAMEL.finditer(part))
    return out


@lru_cache(maxsize=1)
def glossary() -> dict[str, tuple[str, ...]]:
    """The built-in Chinese → English software terms (package data `zh_terms.tsv`)."""
    out: dict[str, tuple[str, ...]] = {}
    text = resources.files(__package__).joinpath(_GLOSSARY_FILE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        zh, _, en = line.partition("\t")
        if zh.strip() and en.strip():
            out[zh.strip()] = tuple(dict.fromkeys(en.split()))
    return out


def configure_segmenter(cache_dir: str | Path | None) -> None:
    """Where jieba keeps its dictionary cache (the CLI passes `<home>/cache`; default: the temp folder).
    Takes effect for a segmenter not yet loaded."""
    global _cache_dir
    _cache_dir = Path(cache_dir) if cache_dir else None


def segmenter():
    """The jieba tokenizer with the glossary's terms added; loaded once, on first use."""
    global _segmenter
    if _segmenter is not None:
        return _segmenter
    with _seg_lock:
        if _segmenter is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            cache = _cache_dir or Path(tempfile.gettempdir())
            try:
                cache.mkdir(parents=True, exist_ok=True)
                tok.tmp_dir = str(cache)
            except OSError as e:  # an unwritable cache only costs the cache
                _log.warning("segmenter.cache-unavailable", extra={"dir": str(cache), "error": str(e)})
            tok.initialize()
            for term in glossary():
                if len(term) > 1:
                    tok.add_word(term, freq=max(tok.suggest_freq(term, False), 1000))
            for word in _NOT_WORDS:
                tok.del_word(word)
            _segmenter = tok
    return _segmenter


# A long word's parts are words too (序列化 → 序列), as jieba's search mode reads them, but only its first and last
# two or three characters and only where the dictionary knows them as common words: search mode also gave every
# two characters inside it that the dictionary holds at all, 达式 of 表达式, 据库 of 数据库, 时任 ("then serving") of
# 定时任务, and matched them against other words.
SUB_WORD_FREQ = 100


def _search_words(tok, run: str):
    freq = tok.FREQ
    for w in tok.cut(run, HMM=True):
        for n in (2, 3):
            if len(w) > n:
                for g in dict.fromkeys((w[:n], w[-n:])):
                    if freq.get(g, 0) >= SUB_WORD_FREQ:
                        yield g
        yield w


@lru_cache(maxsize=200_000)
def _cut_han(run: str) -> tuple[str, ...]:
    """Meaningful words of one run of Han characters (stop words and stray characters dropped)."""
    gloss = glossary()
    out = []
    for w in _search_words(segmenter(), run):
        if w in CJK_STOPWORDS:
            continue
        if len(w) == 1 and w not in gloss:
            continue
        out.append(w)
    return tuple(out)


def cjk_words(run: str) -> list[str]:
    """Words of a run of CJK characters: Han segmented by jieba, Kana / Hangul as bigrams."""
    out: list[str] = []
    pos = 0
    for m in _HAN_RUN.finditer(run):
        out += _other_cjk(run[pos:m.start()])
        out += _cut_han(m.group(0))
        pos = m.end()
    out += _other_cjk(run[pos:])
    return out


def _other_cjk(run: str) -> list[str]:
    if len(run) < 2:
        return []
    return [run[i:i + 2] for i in range(len(run) - 1)]


def words(text: str, *, keep_stopwords: bool = False, min_len: int = 2) -> list[str]:
    """Lower-case word tokens: identifiers split into parts (and also kept whole), Chinese segmented into words."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if _CJK.match(tok):
            out.extend(cjk_words(tok))
            continue
        parts = split_identifier(tok)
        whole = tok.lower().strip("_")
        if len(parts) > 1 and whole and len(whole) >= min_len:
            out.append(whole)
        for p in parts:
            if len(p) >= min_len and (keep_stopwords or p not in STOPWORDS) and not p.isdigit():
                out.append(p)
    return out


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def has_han(text: str) -> bool:
    """Whether `text` holds Chinese characters (Han; not kana or Hangul)."""
    return bool(_HAN_RUN.search(text))


def path_words(path: str) -> list[str]:
    out = []
    for comp in path.replace("\\", "/").split("/"):
        comp = comp.rsplit(".", 1)[0] if "." in comp[1:] else comp
        out.extend(words(comp))
    return out


# --- template boilerplate ------------------------------------------------------------------------------
# Issue and pull-request templates wrap every text in the same words ("### Expected behavior", "<!-- Please be
# sure to check ... -->", "- [ ] a detailed description of the bug", a `pip list`): words that say nothing of
# the module and, repeated in every text, drown the few that do. Removed from requirements and from the bodies
# of past changes alike; the content under a template heading stays.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_CHECKBOX = re.compile(r"^\s*[-*+]\s*\[[ xX]?\]\s.*$", re.M)
_TEMPLATE_HEADING = re.compile(
    r"^\s{0,3}(?:#{1,6}\s*|\*\*)\s*(?:description|summary|problem|expected (?:behaviou?r|result)|actual "
    r"(?:behaviou?r|result)|current behaviou?r|steps to reproduce(?: the (?:bug|problem|issue))?|how to reproduce|"
    r"reproduction|to reproduce|minimal (?:reproducible )?example|environment|system (?:details|info(?:rmation)?)|"
    r"versions?|additional (?:context|information|notes)|motivation|modifications?|result|checklist|"
    r"what (?:does this pr do|changed|is the (?:problem|issue)|kind of change.*)|why|how|changes?|"
    r"related (?:issues?|prs?)|test plan|testing|screenshots?|context|possible solution|proposed solution|"
    r"alternatives?(?: considered)?|feature request|bug report|is your feature request related to a problem.*|"
    r"describe the (?:bug|solution|alternatives).*|"
    r"问题描述|期望(?:结果|行为)|实际(?:结果|行为)|复现步骤|重现步骤|环境(?:信息)?|版本(?:信息)?|补充(?:说明|信息)|描述)"
    r"\s*[:：]?\s*(?:\*\*)?\s*$", re.I | re.M)
# any markdown heading: where a text holds FORM_HEADINGS or more (outside code blocks), it is a filled-in form (a
# GitHub issue form renders each field's label as "### label": "Which github workflows are flaking?", "Anything
# else we need to know?") and its headings are the form's words, not the writer's
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}[ \t](.*)")
# an issue template's bold line is a heading too ("**Explain the problem.**", "**Pandoc version?**": pandoc's, and
# GitHub's default bug report's "**Describe the bug**"), and so is a bold lead-in with the answer on its line
# ("**Pandoc version?** 3.8 on macOS"): the bold part is the heading, what follows it the section's first line
BOLD_HEADING = re.compile(r"[ \t]{0,3}(?:\*\*|__)([^*_\n]{1,100}?)(?:\*\*|__)")
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")
FORM_HEADINGS = 2
# a link to a GitHub page that is no code (a workflow run, a pull request, an issue, a commit, a release) or to an
# uploaded image: its words ("github", "actions", "runs", "jobs", "pull", "user-images") name the `.github` module
# if anything. Links into the code (`/blob/`, `/tree/`) stay: the mention index reads their paths.
_GITHUB_PAGE_URL = re.compile(
    r"https?://(?:(?:www\.)?github\.com/[^/\s]+/[^/\s]+/(?:actions|runs|pull|pulls|issues|commit|commits|discussions|"
    r"compare|releases|labels|milestones?)\b|(?:user-images|private-user-images|avatars)\.githubusercontent\.com/|"
    r"github\.com/user-attachments/)[^\s)\]>]*")
# a `pip list` / `pip freeze` row, or a `name: version` line of an environment listing
_VERSION_ROW = re.compile(r"^\s*[A-Za-z][\w.\-]*(?:\s+|==|\s*:\s*)v?\d+(?:\.\d+)+\S*\s*(?:\S+\s*)?$", re.M)


def prose_headings(lines: list[str], bold: bool = False) -> dict[int, str]:
    """Line index -> text of each markdown heading among `lines` outside fenced code (a `# comment` in a code block
    is no heading); with `bold`, also each line that opens with a bold phrase (`BOLD_HEADING`)."""
    out: dict[int, str] = {}
    code = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            code = not code
        elif not code and (m := _HEADING.match(line) or (bold and BOLD_HEADING.match(line))):
            out[i] = m.group(1)
    return out


def _form_headings(text: str) -> str:
    """`text` without its markdown headings after the first line, where it holds at least FORM_HEADINGS of them
    outside fenced code; the content under them stays."""
    lines = text.split("\n")
    heads = prose_headings(lines)
    heads.pop(0, None)
    if len(heads) < FORM_HEADINGS:
        return text
    return "\n".join("" if i in heads else line for i, line in enumerate(lines))


def strip_boilerplate(text: str) -> str:
    """`text` without template boilerplate: HTML comments, checklist items, generic template headings, the
    headings of a filled-in form, links to GitHub pages that are no code and package-version rows. Returns the text
    unchanged when nothing else would be left."""
    out = _HTML_COMMENT.sub("", text)
    out = _CHECKBOX.sub("", out)
    out = _TEMPLATE_HEADING.sub("", out)
    out = _form_headings(out)
    out = _GITHUB_PAGE_URL.sub("", out)
    out = _VERSION_ROW.sub("", out)
    out = re.sub(r"\n[ \t]*(?:\n[ \t]*)+", "\n\n", out).strip()
    return out if out else text
