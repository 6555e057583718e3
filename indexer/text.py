"""Words from code and prose: identifier splitting, stop words, CJK-safe tokenising.

Shared by the indexer (keywords, descriptions) and by the matchers (inference imports this).
CJK text is kept: each run of Han / Kana / Hangul characters yields its single characters and
its bigrams, so Chinese requirements match Chinese docs without a segmenter.
"""
from __future__ import annotations

import re

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TOKEN = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

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


def split_identifier(word: str) -> list[str]:
    """`getHTTPResponse_code2` -> ['get', 'http', 'response', 'code', '2']."""
    out = []
    for part in word.split("_"):
        if not part:
            continue
        out.extend(m.group(0).lower() for m in _CAMEL.finditer(part))
    return out


def words(text: str, *, keep_stopwords: bool = False, min_len: int = 2) -> list[str]:
    """Lower-case word tokens: identifiers split into parts (and also kept whole), CJK as
    characters + bigrams."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if _CJK.match(tok):
            out.extend(tok)
            out.extend(tok[i : i + 2] for i in range(len(tok) - 1))
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


def path_words(path: str) -> list[str]:
    out = []
    for comp in path.replace("\\", "/").split("/"):
        comp = comp.rsplit(".", 1)[0] if "." in comp[1:] else comp
        out.extend(words(comp))
    return out
