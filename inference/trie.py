"""The token trie of the current graph's module IDs: constrained decoding can only walk real IDs.

Each ID is tokenized *in context*, exactly as it appears in a completion (``" modules: <id>;"`` and
``" modules: <id>\\n"``): the ID's span is what follows the tokens of ``" modules:"``. Both terminal
variants (``SEP`` and ``END``) are kept as separate paths that end in the same ID, so a prefix
(``src/layer``) and a longer ID (``src/layer/vulkan``) are told apart by the token after the prefix
(``;`` / ``\\n`` versus ``/``). Every path is checked to decode back to `` <id><terminal>``.

    trie = IdTrie(graph.leaf_ids(), tokenizer)
    node = trie.root; node.children  # {token: Node}; node.ends: IDs completed at this node
"""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

from .prompt import END, MODULES_TAG, SEP

log = logging.getLogger(__name__)


class Node:
    __slots__ = ("children", "ends", "index")

    def __init__(self, index: int):
        self.children: dict[int, Node] = {}
        self.ends: list[str] = []  # IDs whose token sequence (incl. terminal) ends here
        self.index = index  # dense number, for per-node tables

    def __repr__(self) -> str:
        return f"Node({self.index}, children={len(self.children)}, ends={self.ends})"


class IdTrie:
    def __init__(self, ids: Iterable[str], tokenizer, terminals: Sequence[str] = (SEP, END)):
        self.tokenizer = tokenizer
        self.terminals = tuple(terminals)
        self.nodes: list[Node] = [Node(0)]
        self.root = self.nodes[0]
        self.sequences: dict[str, list[tuple[int, ...]]] = {}
        self.skipped: list[str] = []  # IDs that could not be encoded faithfully (never produced)
        uniq = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i.strip()))
        for mid, seqs in _encode_ids(uniq, tokenizer, self.terminals).items():
            if not seqs:
                self.skipped.append(mid)
                continue
            self.sequences[mid] = seqs
            for seq in seqs:
                self._insert(seq, mid)
        if self.skipped:
            log.warning("%d module IDs cannot be tokenized faithfully and are left out: %s",
                        len(self.skipped), ", ".join(self.skipped[:5]))
        self.ids: list[str] = list(self.sequences)

    def _insert(self, seq: tuple[int, ...], mid: str) -> None:
        node = self.root
        for t in seq:
            nxt = node.children.get(t)
            if nxt is None:
                nxt = Node(len(self.nodes))
                self.nodes.append(nxt)
                node.children[t] = nxt
            node = nxt
        if mid not in node.ends:
            node.ends.append(mid)

    # --- queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.sequences)

    def __contains__(self, mid: str) -> bool:
        return mid in self.sequences

    def walk(self, tokens: Sequence[int]) -> Node | None:
        node = self.root
        for t in tokens:
            node = node.children.get(t)
            if node is None:
                return None
        return node

    def allowed(self, tokens: Sequence[int]) -> list[int]:
        """Tokens that may follow `tokens` (a prefix of some ID's sequence)."""
        node = self.walk(tokens)
        return list(node.children) if node is not None else []

    def max_depth(self) -> int:
        return max((len(s) for seqs in self.sequences.values() for s in seqs), default=0)

    def subset(self, ids: Iterable[str]) -> "IdTrie":
        """A trie over some of these IDs (reuses the encodings, no tokenizer calls)."""
        sub = IdTrie.__new__(IdTrie)
        sub.tokenizer, sub.terminals = self.tokenizer, self.terminals
        sub.nodes = [Node(0)]
        sub.root = sub.nodes[0]
        sub.sequences, sub.skipped = {}, []
        for mid in dict.fromkeys(ids):
            seqs = self.sequences.get(mid)
            if seqs is None:
                continue
            sub.sequences[mid] = seqs
            for s in seqs:
                sub._insert(s, mid)
        sub.ids = list(sub.sequences)
        return sub


def _encode_ids(ids: list[str], tokenizer, terminals: Sequence[str]) -> dict[str, list[tuple[int, ...]]]:
    """{id: [token sequence per terminal]}; an empty list when no faithful encoding exists."""
    out: dict[str, list[tuple[int, ...]]] = {mid: [] for mid in ids}
    if not ids:
        return out
    prefix = list(_enc(tokenizer, [MODULES_TAG])[0])
    texts = [MODULES_TAG + " " + mid + term for mid in ids for term in terminals]
    encs = _enc(tokenizer, texts)
    i = 0
    for mid in ids:
        for term in terminals:
            full = encs[i]
            i += 1
            want = " " + mid + term
            seq: tuple[int, ...] | None = None
            if full[:len(prefix)] == prefix and _dec(tokenizer, full[len(prefix):]) == want:
                seq = tuple(full[len(prefix):])
            else:  # the tag and the ID merged: encode the ID on its own, as it follows a space
                alone = _enc(tokenizer, [want])[0]
                if _dec(tokenizer, alone) == want:
                    seq = tuple(alone)
            if seq and seq not in out[mid]:
                out[mid].append(seq)
        if len(out[mid]) < len(terminals) and not out[mid]:
            log.debug("cannot encode module id %r", mid)
    return out


def _enc(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _dec(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
