"""Choosing the composer's next token: which vocabulary ids can ever stand in a tune body, and
sampling among the ones the bar automaton (:mod:`agent.decoding`) accepts next.

A token's text is decoded once per tokenizer (:func:`token_table`) and kept as a character tree,
so a search of the whole vocabulary walks the automaton along shared prefixes.
:func:`choose_token` runs the best-scored ids through the automaton, widens the search when
none fits (the next ``widen_k`` ids, then the whole vocabulary, then the bar rules lifted for
that bar) and samples among the viable ones with temperature and top-p. torch is imported
inside the functions that take its tensors, so reading a tune needs no torch.

>>> table = TokenTable(["A", "B2", "|", "\u00e9", ""], special_ids=[4])
>>> table.texts  # a non-ASCII text and a special token can never stand in a body
['A', 'B2', '|', None, None]
>>> sorted(table.musical)
[0, 1]
"""
from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Sequence

from agent.decoding import BODY_CHARS, NOTE_LETTERS, BodyState, DecodingError

__all__ = ["Choice", "SamplingSettings", "TokenTable", "body_token_lists", "body_vocabulary",
           "choose_token", "refused_mass", "token_table"]


class TokenTable:
    """Each vocabulary id's text, decoded once, and which ids can ever appear in a body.

    ``texts[i]`` is None for ids that are special tokens, empty, or contain a character
    outside :data:`BODY_CHARS` (non-ASCII included): those are never allowed in a body.
    ``trie`` holds the allowed texts as a character tree (``{char: subtree}``, the ids ending
    at a node under the key ``None``), so a search of the whole vocabulary walks the automaton
    along shared prefixes and drops a whole subtree at the first character it rejects.
    """

    def __init__(self, texts: Sequence[str], special_ids: Sequence[int] = ()):
        special = set(special_ids)
        self.size = len(texts)
        self.texts: list[str | None] = [
            text if i not in special and text and set(text) <= BODY_CHARS else None
            for i, text in enumerate(texts)
        ]
        self.trie: dict = {}
        for i, text in enumerate(self.texts):
            if text is not None:
                node = self.trie
                for ch in text:
                    node = node.setdefault(ch, {})
                node.setdefault(None, []).append(i)
        #: ids the repetition penalty applies to: tokens that name a pitch or a rest (not
        #: lengths, bar lines or blanks, which every tune repeats)
        pitched = NOTE_LETTERS | {"z"}
        self.musical = frozenset(
            i for i, text in enumerate(self.texts)
            if text is not None and not pitched.isdisjoint(text)
        )


    def restricted(self, ids: Sequence[int]) -> "TokenTable":
        """The table of the vocabulary ``ids`` alone: id ``i`` of the new table is ``ids[i]``
        here (the composer's body vocabulary, :func:`body_vocabulary`).

        >>> TokenTable(["A", "B2", "|", "é"]).restricted([2, 0, 3]).texts
        ['|', 'A', None]
        """
        return TokenTable([self.texts[i] or "" for i in ids])


_TABLES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def token_table(tokenizer: Any, ids: Sequence[int] | None = None) -> TokenTable:
    """The :class:`TokenTable` of a Hugging Face tokenizer, or of its vocabulary ``ids`` alone
    (:meth:`TokenTable.restricted`); decoded once per tokenizer object and remembered while the
    tokenizer lives (about a second for a 49k vocabulary)."""
    key = None if ids is None else tuple(ids)
    try:
        return _TABLES[tokenizer][key]
    except (KeyError, TypeError):
        pass
    if key is None:
        size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)], clean_up_tokenization_spaces=False)
        table = TokenTable(texts, getattr(tokenizer, "all_special_ids", ()))
    else:
        table = token_table(tokenizer).restricted(key)
    try:
        _TABLES.setdefault(tokenizer, {})[key] = table
    except TypeError:  # an object without weak references: no memo
        pass
    return table


def body_token_lists(tokenizer: Any, tunes: Iterable[str]) -> list[list[int]]:
    """Each tune's body as training splits it: the tune is split into tokens whole, and the
    tokens from the one that holds the end of its ``K:`` line on are kept (that one may join
    the line's end to the first notes).

    >>> from agent.tokenizer import FastTokenizer
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> chars = sorted(BODY_CHARS | set("XK:C"))
    >>> backend = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="X"))
    >>> backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    >>> tokenizer = FastTokenizer(backend, {}, None)
    >>> [[chars[i] for i in body] for body in body_token_lists(tokenizer, ["X:1\\nK:C\\nCD|\\n"])]
    [['\\n', 'C', 'D', '|', '\\n']]
    >>> body_token_lists(tokenizer, ["no header"])
    Traceback (most recent call last):
    ...
    agent.decoding.DecodingError: a tune without a K: line has no body: 'no header'
    """
    from agent.abc_text import parse_tune
    from agent.errors import AbcError

    bodies = []
    for tune in tunes:
        try:
            end = parse_tune(tune).body_offset
        except AbcError:
            raise DecodingError(f"a tune without a K: line has no body: {tune[:40]!r}") from None
        header = tokenizer.encode(tune[:end], add_special_tokens=False)
        whole = tokenizer.encode(tune, add_special_tokens=False)
        bodies.append(whole[max(len(header) - 1, 0):])
    return bodies


def body_vocabulary(tokenizer: Any, bodies: Iterable[Sequence[int]]) -> list[int]:
    """The token ids a model writes tune bodies in, learnt from the ``bodies`` of the tunes it
    was trained on (:func:`body_token_lists`): every token of them, and every one-character
    token of :data:`BODY_CHARS`, so that any body the automaton accepts can still be spelled. Tokens
    the automaton refuses everywhere (a comment's ``%``, a character outside
    :data:`BODY_CHARS`) are left out.

    The composer's fast output layer computes these rows alone (``agent.ort_decoder``). The
    others are what a model trained on ABC gives almost nothing in a body: in 2,958 composing
    steps of the shipped model they held 0.46% of the probability on average, spread thin over
    tens of thousands of ids, and the chance a step leaves a bar (1 minus the mass the grammar
    refuses) moved by 0.03% on average, 1.5% at most (docs/benchmarks.md).

    >>> from agent.tokenizer import FastTokenizer
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> chars = sorted(BODY_CHARS | set("XKT:Cabc"))
    >>> backend = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)} | {"[?]": len(chars)},
    ...                                      unk_token="[?]"))
    >>> backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    >>> tokenizer = FastTokenizer(backend, {}, None)
    >>> ids = body_vocabulary(tokenizer, body_token_lists(tokenizer, ["X:1\\nK:C\\nCDE|\\n"]))
    >>> len(ids) == len({tokenizer.encode(c, add_special_tokens=False)[0] for c in BODY_CHARS})
    True
    >>> chars.index("K") in body_vocabulary(tokenizer, [[chars.index("K")]])  # never in a body
    False
    """
    ids = {token for body in bodies for token in body}
    for char in BODY_CHARS:
        single = tokenizer.encode(char, add_special_tokens=False)
        if len(single) == 1:
            ids.add(single[0])
    texts = token_table(tokenizer).texts  # a token the automaton always refuses is left out
    return sorted(i for i in ids if texts[i] is not None)


@dataclass(frozen=True)
class SamplingSettings:
    """How one token is picked among the viable candidates."""

    temperature: float = field(
        default=0.9, metadata={"help": "0 picks the most likely viable token"})
    top_k: int = field(default=40, metadata={"help": "candidates checked first, and sampled among"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus cut among the viable candidates"})
    widen_k: int = field(
        default=512,
        metadata={"help": "second round of candidates when none of the top_k is viable"},
    )


class Choice(NamedTuple):
    """One decoding step: the token, the automaton after it, and what it took to find it."""

    token_id: int
    state: BodyState
    checked: int  # candidates run through the automaton
    widened: int  # 0: found among the top_k; 1: in the second round; 2: in the whole vocabulary
    relaxed: bool  # the repetition rules had to be lifted to find a way on
    #: the model's probability (softmax of the scores at the sampling temperature, 1 when
    #: greedy) on the top_k candidates the automaton refused: how far the grammar pushed it;
    #: None where a ``lazy`` choice did not need it
    refused_mass: float | None = 0.0
    #: a ``lazy`` choice's draw landed on a refused candidate: true with probability
    #: ``refused_mass``, whatever the token
    sank: bool = False


def _viable(ids: Sequence[int], state: BodyState, table: TokenTable, limit: int
            ) -> tuple[list, int]:
    """Up to ``limit`` viable (id, new state) pairs among ``ids``, in their order."""
    found = []
    checked = 0
    texts = table.texts
    for token in ids:
        text = texts[token] if token < table.size else None
        if text is None:
            continue
        checked += 1
        new = state.feed(text)
        if new is not None:
            found.append((token, new))
            if len(found) >= limit:
                break
    return found, checked


def _whole_vocabulary(state: BodyState, table: TokenTable, scores: Any, limit: int
                      ) -> tuple[list, int]:
    """The ``limit`` best-scoring viable (id, state) pairs of the whole vocabulary, found by
    walking the token trie with the automaton; also the number of trie nodes visited."""
    found: list[tuple[int, BodyState]] = []
    stack = [(table.trie, state)]
    visited = 0
    while stack:
        node, current = stack.pop()
        for ch, child in node.items():
            if ch is None:
                found.extend((token, current) for token in child)
                continue
            visited += 1
            following = current.feed(ch)
            if following is not None:
                stack.append((child, following))
    if len(found) > 1:
        import torch

        values = scores[torch.tensor([token for token, _ in found])]
        best = torch.topk(values, min(limit, len(found))).indices.tolist()
        return [found[i] for i in best], visited
    return found, visited


def choose_token(
    scores: Any,
    state: BodyState,
    table: TokenTable,
    settings: SamplingSettings,
    generator: Any = None,
    draft: int | None = None,
    lazy: bool = False,
) -> Choice:
    """Pick the next token from ``scores`` (1-D logits, already penalized) among those that
    keep the body valid.

    The top ``settings.top_k`` ids by score are run through the automaton; if none is viable,
    the next ``widen_k``, then the whole vocabulary (a walk of the token trie). Among the viable
    ones (at most ``top_k``, best first) the token is sampled with temperature and top-p using
    ``generator`` (a seeded ``torch.Generator``), or taken greedily at temperature 0. A
    ``draft`` (a guessed token the model has already been run on) is taken with the
    probability the sampler gives it, else a token is drawn from the rest: every token keeps
    its probability (speculative sampling with a guess for the draft).

    ``lazy`` (sampling at a temperature, no top-p cut) runs one candidate through the
    automaton instead of all ``top_k``: a token is drawn from the model's softmax; a viable one
    is taken. Where the draw lands on a refused candidate (``sank``) or outside the ``top_k``,
    the token is drawn as above. The token is then distributed exactly as without ``lazy``, and
    ``sank`` is true with probability ``refused_mass``, independently of it: what the composer's
    bar test needs, without the refused mass itself (about 40 automaton runs a step).
    """
    import torch

    sank = False
    if lazy and settings.temperature > 0 and settings.top_p >= 1.0:
        quick, sank = _first_draw(scores, state, table, settings, generator)
        if quick is not None:
            return quick
    top, found, checked = _top_viable(scores, state, table, settings)
    refused = _refused_mass(scores, top, found, settings.temperature)
    widened, relaxed = 0, False
    if not found:
        widened = 1
        wide = torch.topk(scores, min(settings.widen_k, scores.shape[-1])).indices.tolist()[len(top):]
        found, more = _viable(wide, state, table, settings.top_k)
        checked += more
    if not found:
        widened = 2
        found, more = _whole_vocabulary(state, table, scores, settings.top_k)
        checked += more
    if not found and state.repetition_on:
        relaxed = True
        found, more = _whole_vocabulary(state.relaxed(), table, scores, settings.top_k)
        checked += more
    if not found:
        raise DecodingError(f"no token can continue the body at bar {state.bar_number}")
    token, new = _sample(found, scores, settings, generator, draft)
    return Choice(token, new, checked, widened, relaxed, refused, sank)


def refused_mass(scores: Any, state: BodyState, table: TokenTable, settings: SamplingSettings) -> float:
    """The ``refused_mass`` :func:`choose_token` gives these ``scores`` in ``state`` (for a
    ``lazy`` choice that went without it).

    >>> import torch
    >>> from agent.decoding import FormPlan, body_spec, start_state
    >>> table = TokenTable(["A2", "A", "|", "x"])
    >>> state = start_state(body_spec("2/4", "1/8", FormPlan.through(1))).feed("A2 ")
    >>> round(refused_mass(torch.tensor([0.0, 0.0, 0.0, 0.0]), state, table, SamplingSettings(1.0, 4, 1.0)), 2)
    0.5
    """
    top, found, _ = _top_viable(scores, state, table, settings)
    return _refused_mass(scores, top, found, settings.temperature)


def _top_viable(scores: Any, state: BodyState, table: TokenTable, settings: SamplingSettings
                ) -> tuple[list[int], list, int]:
    """The ``top_k`` ids by score, the viable (id, state) pairs among them and how many were
    run through the automaton."""
    import torch

    top = torch.topk(scores, min(settings.top_k, scores.shape[-1])).indices.tolist()
    found, checked = _viable(top, state, table, settings.top_k)
    return top, found, checked


def _first_draw(scores: Any, state: BodyState, table: TokenTable, settings: SamplingSettings,
                generator: Any) -> tuple[Choice | None, bool]:
    """One token drawn from the softmax of ``scores`` over the whole vocabulary: the choice
    where it is among the ``top_k`` and viable, else None and whether it was refused (a draw
    beyond the ``top_k`` is not: the refused mass counts the ``top_k`` alone)."""
    import torch

    k = min(settings.top_k, scores.shape[-1])
    values, ids = torch.topk(scores, k)
    scaled = scores.double() / settings.temperature
    probs = torch.exp(values.double() / settings.temperature - torch.logsumexp(scaled, dim=0))
    draw = torch.rand((), generator=generator, dtype=torch.float64).item()
    index = bisect.bisect_right(torch.cumsum(probs, dim=0).tolist(), draw)
    if index >= k:
        return None, False
    token = int(ids[index])
    text = table.texts[token] if token < table.size else None
    new = state.feed(text) if text is not None else None
    if new is None:
        return None, True
    return Choice(token, new, 1, 0, False, None, False), False


def _refused_mass(scores: Any, candidates: list[int], found: list, temperature: float) -> float:
    """The probability the model puts on ``candidates`` that are not among ``found``."""
    import torch

    viable = {token for token, _ in found}
    refused = [token for token in candidates if token not in viable]
    if not refused:
        return 0.0
    probs = torch.softmax(scores.double() / (temperature if temperature > 0 else 1.0), dim=0)
    return float(probs[torch.tensor(refused)].sum())


def _sample(found: list, scores: Any, settings: SamplingSettings, generator: Any,
            draft: int | None = None) -> tuple[int, BodyState]:
    """Temperature and top-p sampling among viable (id, state) pairs, best score first; a
    ``draft`` is taken with its probability, else the draw is among the others."""
    import torch

    if settings.temperature <= 0 or len(found) == 1:
        return found[0]
    values = scores[torch.tensor([token for token, _ in found])].double() / settings.temperature
    probs = torch.softmax(values, dim=0)
    if settings.top_p < 1.0:
        cumulative = torch.cumsum(probs, dim=0)
        keep = int((cumulative < settings.top_p).sum().item()) + 1
        probs = probs[:keep] / probs[:keep].sum()
    guessed = next((i for i in range(len(probs)) if found[i][0] == draft), None)
    if guessed is not None:
        chance = float(probs[guessed])
        if torch.rand((), generator=generator, dtype=torch.float64).item() < chance:
            return found[guessed]
        probs = probs.clone()
        probs[guessed] = 0.0
        probs = probs / probs.sum()
    draw = torch.rand((), generator=generator, dtype=torch.float64).item()
    cumulative = torch.cumsum(probs, dim=0).tolist()
    for index, edge in enumerate(cumulative):
        if draw < edge:
            return found[index]
    return found[len(cumulative) - 1]
