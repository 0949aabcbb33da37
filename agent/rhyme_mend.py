"""Mending a rhyme: when no line the model proposed rhymes with its partner, the last word of one
line is swapped for a word that rhymes, sings the same and reads naturally where it stands.

A songwriter does this all the time: "the moon is shining in the sky" does not rhyme with "night",
"the moon is shining in the light" does. Here:

- the candidates come from CMUdict (through ``pronouncing``): words that rhyme with the partner's
  last word (:func:`agent.syllables.rhymes`: no identical rhyme, no word rhymed with itself), with
  the same syllables and stresses as the word they replace, so the line sits on its notes as
  before (:func:`rhyme_candidates`). CMUdict also holds surnames and abbreviations ("boone",
  "a.d."), so a candidate must also be a word the language model knows whole (one piece of its
  vocabulary): a rough test for a common word that needs no word-frequency list;
- which candidate reads best is the language model's judgement, in the context the line was
  asked for (the lyrics request and the stanza's lines before it): the log-probability of the
  word and of the line ending after it (:class:`EndingScorer`). A swap may make the ending at
  most :attr:`MendConfig.max_surprise` nats less likely than the line's own ending; otherwise
  the rhyme stays missed and is reported as before.

No library offers rhyme-constrained word substitution, so it is written here.

>>> with_last_word("The moon is shining in the sky.", "light")
'The moon is shining in the light.'
>>> is_known = lambda word: word in {"light", "bright", "delight", "tonight"}
>>> rhyme_candidates("sky", "night", is_known)
['bright', 'light']
>>> rhyme_candidates("above", "night", is_known)  # "tonight" on "night" is the same rhyme
['delight']
>>> rhyme_candidates("", "night", is_known)
[]
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from agent.syllables import FUNCTION_WORDS, core_of, last_word, rhymes, split_word

__all__ = ["EndingScorer", "Mend", "MendConfig", "mend_line", "rhyme_candidates", "with_last_word"]

#: Words a song written today does not end a line on (kept in step with agent.lyrics.OLD_WORDS,
#: which that module checks on the whole line anyway).
_ODD_ENDINGS = frozenset("thee thou thy thine doth dost hath hast shalt wilt ye yon yonder".split())


@dataclass(frozen=True)
class MendConfig:
    """How a missed rhyme is mended."""

    max_surprise: float = field(
        default=3.0,
        metadata={"help": "how many nats less likely than the line's own ending the new ending "
                  "may be (the model's log-probability of the word and of the line ending "
                  "there); above it the rhyme stays missed"})
    keep: int = field(
        default=10,
        metadata={"help": "candidates, the likeliest by their first piece, that get the full "
                  "score (word and line end); the rest are not considered"})
    lines_tried: int = field(
        default=3, metadata={"help": "lines per stanza position whose last word may be swapped"})


class EndingScorer(Protocol):
    """What the mending asks of a language model (``agent.lyrics.ModelText`` is one)."""

    def knows_word(self, word: str) -> bool:
        """Whether the model's vocabulary holds ``word`` whole (after a space)."""

    def score_endings(self, messages: list[dict], prefix: str, own: str, words: Sequence[str],
                      keep: int) -> tuple[float, list[float]]:
        """The log-probability that the answer to ``messages``, already reading ``prefix``, goes
        on with " own" and ends its line there, and the same per word of ``words`` (``-inf`` for
        words whose first piece is not among the ``keep`` likeliest); the context is fed once."""


@dataclass(frozen=True)
class Mend:
    """One swap: the line as mended, the word swapped out and in, and how much less likely the
    new ending is than the old (nats; 0 or less is as likely or likelier)."""

    text: str
    replaced: str
    word: str
    surprise: float


def with_last_word(text: str, word: str) -> str:
    """``text`` with its last word (:func:`agent.syllables.last_word`) replaced by ``word``,
    the punctuation after it kept.

    >>> with_last_word("over the hills and far away!", "today")
    'over the hills and far today!'
    >>> with_last_word("...", "day")
    Traceback (most recent call last):
    ...
    ValueError: no last word in '...'
    """
    old = last_word(text)
    if not old:
        raise ValueError(f"no last word in {text!r}")
    at = text.rfind(old)
    return text[:at] + word + text[at + len(old):]


@functools.lru_cache(maxsize=1)
def _words_by_rhyme() -> dict[str, tuple[str, ...]]:
    """CMUdict's plain words by the sound they rhyme on (built once, about a second)."""
    import pronouncing

    pronouncing.init_cmu()
    index: dict[str, list[str]] = {}
    plain = re.compile(r"[a-z]+")
    for word, phones in pronouncing.pronunciations:
        if plain.fullmatch(word):
            index.setdefault(_rhyming_part(phones), []).append(word)
    return {sound: tuple(dict.fromkeys(words)) for sound, words in index.items()}


def _rhyming_part(phones: str) -> str:
    """The phones from the last stressed vowel on (what ``pronouncing.rhyming_part`` gives,
    without its regular expression per call: the index above takes 135,000 of them).

    >>> _rhyming_part("N AY1 T"), _rhyming_part("T AH0 N AY1 T"), _rhyming_part("DH AH0")
    ('AY1 T', 'AY1 T', 'DH AH0')
    """
    parts = phones.split()
    for at in range(len(parts) - 1, -1, -1):
        if parts[at][-1] in "12":
            return " ".join(parts[at:])
    return phones


def _rhyming_words(partner: str) -> tuple[str, ...]:
    import pronouncing

    index = _words_by_rhyme()
    return tuple(dict.fromkeys(w for phones in pronouncing.phones_for_word(partner)
                               for w in index.get(_rhyming_part(phones), ())))


def _sound(word: str) -> tuple[int, tuple[bool, ...]]:
    sung = split_word(word)
    return sung.count, sung.sung_stress


def rhyme_candidates(replaced: str, partner: str, is_known: Callable[[str], bool]) -> list[str]:
    """Words that could stand for ``replaced`` at a line's end and rhyme with ``partner``: the
    same syllables and sung stresses, not a function word nor an old form, ``is_known`` by the
    model; sorted."""
    replaced, partner = core_of(replaced).lower(), core_of(partner).lower()
    if not replaced or not partner:
        return []
    sound = _sound(replaced)
    return sorted(w for w in _rhyming_words(partner)
                  if w != replaced and w not in FUNCTION_WORDS and w not in _ODD_ENDINGS
                  and rhymes(w, partner) and is_known(w) and _sound(w) == sound)


def mend_line(text: str, partner: str, scorer: EndingScorer, messages: list[dict], before: str,
              config: MendConfig = MendConfig()) -> list[Mend]:
    """The ways to make ``text`` rhyme with the line ``partner`` by swapping its last word, the
    least surprising first, each within ``config.max_surprise`` of the line's own ending.
    ``messages`` and ``before`` (the answer's lines before this one, each ended by a newline)
    are the context the line was asked for. Other words of the line are not used again.

    >>> class Fake:
    ...     def knows_word(self, word): return True
    ...     def score_endings(self, messages, prefix, own, words, keep):
    ...         table = {"sky": -2.0, "light": -3.0, "bright": -9.0}
    ...         return table[own], [table.get(w, -20.0) for w in words]
    >>> [m.text for m in mend_line("The moon is shining in the sky", "all through the night",
    ...                            Fake(), [], "")]
    ['The moon is shining in the light']
    """
    old = last_word(text)
    end = core_of(last_word(partner))
    if not old or not end:
        return []
    in_line = {core_of(w).lower() for w in text.split()}
    words = [w for w in rhyme_candidates(old, end, scorer.knows_word) if w not in in_line]
    if not words:
        return []
    prefix = before + text[:text.rfind(old)].rstrip()
    own, scores = scorer.score_endings(messages, prefix, old, words, config.keep)
    mends = [Mend(with_last_word(text, w), old, w, own - score) for w, score in zip(words, scores)
             if own - score <= config.max_surprise]
    return sorted(mends, key=lambda m: m.surprise)
