"""Words for a melody: written by the model, given by the user, or revised, as ABC ``w:`` lines.

A song's words live in the score as ``w:`` lines under each music line (ABC 2.1 section 5.1), one
syllable per note, so they print under the notes in the MusicXML, SVG and PDF. The notes the words
are set to and the setting of one line come from :mod:`agent.lyric_fit`; the words that show a
theme from :mod:`agent.theme`. This module:

- asks the model for lines on a theme and checks every line before it goes in
  (:func:`write_lyrics`, :func:`add_verse`); sets the user's own words (:func:`set_words`); and
  revises what is there (:func:`replace_line`, :func:`replace_word`, :func:`rewrite_lines`,
  :func:`remove_lyrics`);
- measures lyrics for the benchmark (:func:`syllable_fit`, :func:`rhyme_rate`,
  :func:`stress_on_strong_beats`).

The model is called through one function, ``generate_text(messages, settings) -> str``, so tests
and the benchmark can pass a stand-in; :func:`model_text_generator` wraps a loaded model.

Every edit here works on the ABC text line by line: only the ``w:`` lines concerned change, and
every note and every other line stays byte-identical (:func:`set_words` is the one exception: it
may split a note in two when the words have more syllables than the melody has notes, or where
that puts a word's stress on the beat, and says so; see :mod:`agent.word_rhythm`).

>>> tune = "X:1\\nT:Twinkle\\nM:4/4\\nL:1/4\\nK:C\\nC C G G|A A G2|\\n"
>>> new_abc, report = set_words(tune, "Twinkle, twinkle, little star")
>>> new_abc.splitlines()[-1]
'w:Twin-kle, twin-kle, lit-tle star'
>>> set_words("X:1\\nK:C\\nz4|\\n", "one")
Traceback (most recent call last):
...
agent.errors.AbcError: the tune has no notes to set words to
"""
from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Callable, Iterable, Sequence

from agent import abc_lyrics
from agent.abc_text import Kind, parse_tune, tokenize_body
from agent.errors import AbcError, InputError
from agent.line_sense import old_forms, sense_problems, sense_score
from agent.lyric_fit import (FitConfig, LineFit, LineSlots, NoteSlot, Phrase, block_texts, fit_line,
                             lyric_phrases, melody_tokens, note_slots, rewrite_blocks, sung_text,
                             tune_qpm, words_of_w)
from agent.prompts import lyrics_messages
from agent.rhyme_mend import EndingScorer, MendConfig, mend_line
from agent.word_rhythm import RhythmConfig, retime_lines, singable_split
from agent.syllables import FUNCTION_WORDS, Word, core_of, last_word, rhymes, split_text
from agent.theme import ThemeLexicon, ThemePresence, theme_lexicon, theme_presence, theme_words

__all__ = [
    "EditReport", "GenerationSettings", "LineCheck", "LineReport", "LyricsConfig", "LyricsReport",
    "LyricsResult", "ModelText", "SharedModelText", "SyllableFit", "WordsReport", "add_verse",
    "check_line", "chorus_lines", "model_text_generator", "parse_model_lines", "quote_lines",
    "remove_lyrics", "replace_line", "replace_word",
    "rewrite_lines", "rhyme_rate", "set_words", "stress_on_strong_beats", "syllable_fit",
    "syllable_range", "write_lyrics",
]

#: Words of old verse that a song written today does not use (the verse corpus the model learnt
#: lyrics from is public-domain poetry, full of them).
OLD_WORDS = frozenset(
    "thee thou thy thine doth dost hath hast shalt wilt o'er 'tis 'twas 'twere e'er ne'er ere "
    "ye oft 'neath twixt betwixt whither hither thither yon yonder wherefore methinks mayhap "
    "perchance forsooth lo nay yea whilst unto".split())
#: A theme that asks for old diction.
_OLD_STYLE = re.compile(r"\b(?:old[- ]fashioned|archaic|olden|olde|medieval|biblical|hymn|psalm|"
                        r"shakespear\w*|elizabethan)\b", re.IGNORECASE)

# Syllables that carry no meaning; a line made mostly of them is filler.
_VOCABLES = frozenset("la la-la na oh ooh ah aah hey yeah mm hmm doo da dee di lo fa tra".split())


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class GenerationSettings:
    """What ``generate_text`` is asked to honour for one request."""

    seed: int = field(default=0, metadata={"help": "seed of this request's sampling"})
    temperature: float = field(default=0.8, metadata={"help": "0 means greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=160, metadata={"help": "most tokens in the answer"})
    samples: int = field(default=1, metadata={"help": "answers to sample for the same request"})


@dataclass(frozen=True)
class LyricsConfig:
    """How lyrics are written and checked."""

    rhyme_scheme: str = field(
        default="AABB", metadata={"help": "AABB or ABAB (any letters; lines with one letter rhyme)"}
    )
    max_line_syllables: int = field(
        default=12,
        metadata={"help": "a music line with more notes is split at a bar line into lyric lines"},
    )
    max_melisma: float = field(
        default=0.34,
        metadata={"help": "share of a line's notes that may hold a syllable (fewer syllables)"},
    )
    requests_per_stanza: int = field(
        default=4, metadata={"help": "model requests per stanza (the first and the rewrites)"}
    )
    samples_per_request: int = field(
        default=3,
        metadata={"help": "answers sampled together for each request (one batch): more lines to "
                  "choose rhyming pairs from, at a fraction of the cost of separate requests"},
    )
    min_theme_lines: int = field(
        default=1,
        metadata={"help": "lines per stanza that must hold a theme word or a close image"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the first request; each next +1"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    tokens_per_line: int = field(
        default=24, metadata={"help": "new tokens allowed per requested line (a line is ~10)"}
    )
    fit: FitConfig = field(default_factory=FitConfig, metadata={"help": "syllable placement"})
    mend: MendConfig = field(
        default_factory=MendConfig,
        metadata={"help": "swapping a line's last word for one that rhymes, where no proposed "
                  "line rhymes (agent.rhyme_mend; needs a model that scores endings)"})
    old_words: bool = field(
        default=False,
        metadata={"help": "allow old-fashioned words (thee, thou, doth, o'er, 'tis); on when the "
                  "theme asks for them (old-fashioned, archaic, hymn, ballad of old)"})

    def __post_init__(self) -> None:
        if not self.rhyme_scheme.isalpha():
            raise ValueError(f"rhyme_scheme must be letters such as AABB, not {self.rhyme_scheme!r}")
        if self.requests_per_stanza < 1 or self.samples_per_request < 1:
            raise ValueError("requests_per_stanza and samples_per_request must be at least 1")


#: The model as lyrics see it: messages and settings in; one answer, or a list of
#: ``settings.samples`` answers, out. A ``generate_text`` that also has the methods of
#: :class:`agent.rhyme_mend.EndingScorer` (:class:`ModelText` does) lets the writer mend a rhyme
#: that no proposed line gives; without them (a stand-in in tests) missed rhymes are reported.
GenerateText = Callable[[list[dict], GenerationSettings], "str | list[str]"]


# --------------------------------------------------------------------------------------------
# Checking the model's lines

# A line of words: letters (Latin, accented too), apostrophes and ordinary punctuation only.
_LETTER = "A-Za-z\u00C0-\u017F'\u2019"
_PLAIN_WORDS = re.compile(rf"^[{_LETTER}][{_LETTER} ,.;:!?\-\u2014\u2013\"\u201C\u201D()]*$")
# "1.", "2)", "-", "Line 3:" in front of a line of a model's answer.
_NUMBERING = re.compile(
    r"^\s*(?:\d+\s*[.):]|[-*\u2022]|(?:line|verse)\s*\d+\s*[:.)-])\s*", re.IGNORECASE)


_DASHES = re.compile(r"-{2,}|[\u2013\u2014]")


def parse_model_lines(text: str) -> list[str]:
    """The lines of a model answer, without list numbering, bullets or surrounding quotes; a
    dash written as punctuation ("away--", "sea \u2014 and") becomes a space, since a hyphen
    in sung words joins syllables.

    >>> parse_model_lines('1. "The moon is high,"\\n\\n2) Over the hill\\n- so')
    ['The moon is high,', 'Over the hill', 'so']
    >>> parse_model_lines("The song away-- and gone \u2014 now")
    ['The song away and gone now']
    """
    lines = []
    for raw in text.splitlines():
        line = _NUMBERING.sub("", raw).strip().strip("\"\u201C\u201D").strip()
        line = " ".join(_DASHES.sub(" ", line).split())
        if line:
            lines.append(line)
    return lines


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@dataclass(frozen=True)
class LineCheck:
    """What is wrong with a proposed lyric line (nothing, when ``ok``)."""

    text: str
    syllables: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def syllable_range(notes: int, max_melisma: float) -> tuple[int, int]:
    """Fewest and most syllables a line of ``notes`` notes takes: a share may be held.

    >>> syllable_range(8, 0.34)
    (6, 8)
    """
    return max(1, notes - math.floor(notes * max_melisma)), notes


def check_line(
    text: str, notes: int, config: LyricsConfig = LyricsConfig(), partner: str | None = None,
    taken: Iterable[str] = (),
) -> LineCheck:
    """Check one proposed line for a phrase of ``notes`` notes.

    Problems: not plain words (digits, ABC, symbols); too many or too few syllables (at most one
    per note, at least ``notes`` less the allowed melismas); filler (mostly "la la", or one word
    over and over); old-fashioned words (:data:`OLD_WORDS`, unless ``config.old_words``); the
    same as a line already taken; not rhyming with ``partner``.

    >>> check_line("The moon is riding high", 6).ok
    True
    >>> check_line("la la la la la la", 6, partner="sky").problems
    ('filler: la la la la la la', "does not rhyme with 'sky'")
    >>> check_line("|: C D E F :|", 6).problems
    ('not plain words',)
    >>> check_line("I sing to thee o'er the sea", 7).problems
    ("old-fashioned words: thee, o'er",)
    >>> check_line("I sing to thee o'er the sea", 7, LyricsConfig(old_words=True)).ok
    True
    """
    problems: list[str] = []
    if not _PLAIN_WORDS.match(text):
        return LineCheck(text, 0, ("not plain words",))
    words = split_text(text)
    cores = [core_of(w.text).lower() for w in words if core_of(w.text)]
    known = sum(1 for w in words if w.source == "cmudict")
    if any(len(c) == 1 and c not in "aio" for c in cores) or known * 5 < len(words) * 3:
        return LineCheck(text, 0, ("not plain words",))  # "C D E F", or mostly unknown words
    count = sum(w.count for w in words)
    low, high = syllable_range(notes, config.max_melisma)
    if count > high:
        problems.append(f"{count} syllables, the phrase has {notes} notes")
    elif count < low:
        problems.append(f"{count} syllables, the phrase needs at least {low} of its {notes} notes")
    if cores:
        vocables = sum(1 for c in cores if c in _VOCABLES)
        most = Counter(cores).most_common(1)[0][1]
        repetitive = len(cores) >= 4 and len(set(cores)) * 2 < len(cores)
        if vocables * 2 > len(cores) or most >= 3 or repetitive:
            problems.append(f"filler: {text}")
    old = [c for c in cores if c.replace("\u2019", "'") in OLD_WORDS] + old_forms(text)
    if old and not config.old_words:
        problems.append(f"old-fashioned words: {', '.join(dict.fromkeys(old))}")
    problems += sense_problems(text)  # a fragment ("... in the land and") is not a line
    if _normal(text) in {_normal(t) for t in taken}:
        problems.append(f"repeats the line {text!r}")
    if partner is not None and not rhymes(last_word(text), last_word(partner)):
        problems.append(f"does not rhyme with {last_word(partner)!r}")
    return LineCheck(text, count, tuple(problems))


# --------------------------------------------------------------------------------------------
# Writing lyrics with the model


@dataclass(frozen=True)
class LineReport:
    """One lyric line as written: its phrase, the words and how they sit on the notes."""

    line: int  # music line index
    notes: int
    text: str
    fit: LineFit | None
    rhymes_with: int | None = None  # index of the lyric line it must rhyme with
    rhymed: bool | None = None
    theme: str | None = None  # 'theme', 'image' or None


@dataclass(frozen=True)
class LyricsReport:
    """What writing lyrics did and how well it went. ``problems`` is empty exactly when ok."""

    problems: tuple[str, ...]
    lines: tuple[LineReport, ...]
    requests: int
    theme: ThemePresence
    rhyme_rate: float | None
    stress_share: float | None
    notes: tuple[str, ...] = ()
    unrhymed: tuple[str, ...] = ()  # rhymes the scheme asks for that no proposed line gave

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class LyricsResult:
    """New lyrics. ``abc`` has them only when every check passed; otherwise it is the tune as
    given, and ``draft_abc`` holds the best attempt when all its lines at least fit the notes."""

    abc: str
    lines: tuple[str, ...]
    report: LyricsReport
    draft_abc: str | None = None

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.report.problems


def _group_scheme(scheme: str, size: int) -> str:
    """The scheme for a stanza of ``size`` lines (a short last stanza takes the scheme's start),
    with letters renamed from A in order of first use."""
    letters = scheme[:size] if size <= len(scheme) else (scheme * size)[:size]
    names: dict[str, str] = {}
    return "".join(names.setdefault(ch, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[len(names)]) for ch in letters)


def _line_score(text: str, notes: int, lexicon: ThemeLexicon, config: LyricsConfig) -> float:
    """How good a usable line is for a phrase of ``notes`` notes: it names the theme (2) or a
    close image (1), it takes most of the notes (a quarter point off per note left over), and it
    reads as a whole (:func:`agent.line_sense.sense_score`: half a point off per sign of a
    fragment)."""
    kind = lexicon.classify(text)
    closeness = -0.25 * (notes - check_line(text, notes, config).syllables)
    return {"theme": 2.0, "image": 1.0}.get(kind or "", 0.0) + closeness + sense_score(text)


@dataclass(frozen=True)
class _Issue:
    """Something wrong with a stanza position. A soft issue (a pair the scheme asks to rhyme
    that does not) makes the lines be asked for again, but when the requests run out the lines
    are used and the miss is reported; any other issue keeps the lyrics out of the score."""

    text: str
    soft: bool = False


@dataclass
class _Stanza:
    """Choosing lines for one stanza from every line the model has proposed so far.

    ``hints`` maps a proposed line (normalised) to the stanza positions it was asked for.
    """

    positions: list[int]
    scheme: str
    notes: list[int]
    config: LyricsConfig
    lexicon: ThemeLexicon
    slots: list[tuple[NoteSlot, ...]] = field(default_factory=list)  # each position's notes
    #: True while no earlier stanza of the verse holds a word of the theme itself (an image
    #: is not enough for the verse: it must name its theme somewhere)
    needs_theme_word: bool = False
    qpm: float = 120.0  # the tune's speed in quarter notes a minute (too-short notes)
    #: a mended line -> the proposed line it was made from (both count as used)
    mended_from: dict[str, str] = field(default_factory=dict)
    _stress: dict = field(default_factory=dict, repr=False)  # (text, position) -> score

    def choose(self, pool: list[str], taken: set[str], hints: dict[str, set[int]]
               ) -> tuple[dict[int, str], dict[int, list[_Issue]]]:
        """The best line per position, and what is still wrong per position.

        First every group of positions that must rhyme gets the best rhyming set; then the
        positions left get a usable line, the ones proposed for them first. A position with an
        empty problem list is the rhyme partner of a line that is missing or does not rhyme:
        both are asked for again, as a rhyming set (lines already proposed stay in the pool).
        """
        used = {_normal(t) for t in taken}
        chosen: dict[int, str] = {}
        options = {i: [t for t in pool if check_line(t, self.notes[i], self.config).ok]
                   for i in range(len(self.scheme))}
        for letter in dict.fromkeys(self.scheme):
            group = [i for i, ch in enumerate(self.scheme) if ch == letter]
            if len(group) > 1:
                for i, text in self._rhyming_set(group, options, used, hints).items():
                    chosen[i] = text
                    used.add(_normal(text))
        for hinted_only in (True, False):  # first the lines asked for here that sing well
            for i in range(len(self.scheme)):
                free = [t for t in options[i] if _normal(t) not in used
                        and (not hinted_only or (i in hints.get(_normal(t), ())
                                                 and self._stress_share(t, i) >= _SINGS_WELL))]
                if i not in chosen and free:
                    chosen[i] = max(free, key=lambda t: self._score(t, i, hints))
                    used.add(_normal(chosen[i]))
        return chosen, self._problems(chosen, pool, taken)

    def _problems(self, chosen: dict[int, str], pool: list[str], taken: set[str]
                  ) -> dict[int, list[_Issue]]:
        problems: dict[int, list[_Issue]] = {}
        for i in range(len(self.scheme)):
            if i not in chosen:
                low, high = syllable_range(self.notes[i], self.config.max_melisma)
                why = Counter(p for t in pool
                              for p in check_line(t, self.notes[i], self.config, taken=taken).problems)
                common = "; ".join(p[:60] for p, _ in why.most_common(2))
                problems[i] = [_Issue(f"no usable line of {low}-{high} syllables among "
                                      f"{len(pool)} proposed ({common})")]
                for partner, letter in enumerate(self.scheme):  # asked again as a rhyming set
                    if letter == self.scheme[i] and partner != i:
                        problems.setdefault(partner, [])
        for letter in dict.fromkeys(self.scheme):
            rhymed = [i for i, ch in enumerate(self.scheme) if ch == letter and i in chosen]
            for i in rhymed[1:]:
                if not rhymes(last_word(chosen[i]), last_word(chosen[rhymed[0]])):
                    word, partner = last_word(chosen[i]), last_word(chosen[rhymed[0]])
                    problems.setdefault(i, []).append(
                        _Issue(f"{word!r} does not rhyme with {partner!r}", soft=True))
                    problems.setdefault(rhymed[0], [])
        if self.config.min_theme_lines and chosen:
            kinds = [self.lexicon.classify(t) for t in chosen.values()]
            if sum(1 for kind in kinds if kind) < min(self.config.min_theme_lines, len(self.scheme)):
                for i in range(len(self.scheme)):
                    problems.setdefault(i, []).append(_Issue("no line in this stanza shows the theme"))
            elif self.needs_theme_word and "theme" not in kinds:
                for i in range(len(self.scheme)):
                    problems.setdefault(i, []).append(
                        _Issue(f"no line names the theme ({', '.join(self.lexicon.words)})"))
        return problems

    def _score(self, text: str, i: int, hints: dict[str, set[int]]) -> float:
        asked = 1.5 if i in hints.get(_normal(text), ()) else 0.0
        return (_line_score(text, self.notes[i], self.lexicon, self.config) + asked
                + self._stress_share(text, i))

    def _stress_share(self, text: str, i: int) -> float:
        """How well the line sings on its notes, as :func:`agent.prosody.rank_lines` orders
        lines: twice the share of its words stressed on their strongest beat (a point off below
        :data:`GOOD_STRESS_SHARE`), a point off when a syllable must be held over more than three
        notes, half a point per syllable on a note too short to sing. Between lines that are
        otherwise as good, the one that sings naturally wins."""
        if i >= len(self.slots):
            return 0.0
        key = (text, i)
        if key not in self._stress:
            fit = fit_line(sung_text(text)[0], self.slots[i], self.config.fit, qpm=self.qpm)
            self._stress[key] = _sung_score(fit)
        return self._stress[key]

    def mend(self, chosen: dict[int, str], pool: list[str], taken: set[str],
             hints: dict[str, set[int]], scorer: EndingScorer, messages: list[dict]
             ) -> dict[int, str]:
        """``chosen`` with missed rhymes mended where the model finds a natural swap
        (:func:`agent.rhyme_mend.mend_line`): per rhyme group, each line that does not rhyme with
        the group's first takes a rhyming last word, or, in a pair, the first line takes one
        that rhymes with the second; tried on the chosen line and the next best usable lines
        of its position, and the best mend by the line's score less its surprise wins."""
        chosen = dict(chosen)
        for letter in dict.fromkeys(self.scheme):
            group = [i for i, ch in enumerate(self.scheme) if ch == letter and i in chosen]
            head = group[0] if group else -1
            for member in group[1:]:
                if rhymes(last_word(chosen[member]), last_word(chosen[head])):
                    continue
                ways = [(member, head)] + ([(head, member)] if len(group) == 2 else [])
                found = [mend for position, partner in ways
                         if (mend := self._best_mend(position, chosen[partner], chosen, pool, taken,
                                                     hints, scorer, messages))]
                if found:
                    value, position, text, base = max(found)
                    chosen[position] = text
                    self.mended_from[text] = base
        return chosen

    def _best_mend(self, position: int, partner: str, chosen: dict[int, str], pool: list[str],
                   taken: set[str], hints: dict[str, set[int]], scorer: EndingScorer,
                   messages: list[dict]) -> tuple[float, int, str, str] | None:
        """The best line for ``position`` made to rhyme with ``partner`` by a swap: (value,
        position, line, the proposed line it came from), or None."""
        others = {_normal(t) for t in taken} | {
            _normal(self.mended_from.get(t, t)) for i, t in chosen.items() if i != position}
        before = "".join(chosen[i] + "\n" for i in sorted(chosen) if i < position)
        best = None
        for base in self._bases(position, chosen[position], pool, others, hints):
            for mend in mend_line(base, partner, scorer, messages, before, self.config.mend):
                if (_normal(mend.text) in others
                        or not check_line(mend.text, self.notes[position], self.config).ok):
                    continue
                asked = {**hints, _normal(mend.text): hints.get(_normal(base), set())}
                value = self._score(mend.text, position, asked) - mend.surprise
                if best is None or value > best[0]:
                    best = (value, position, mend.text, base)
        return best

    def _bases(self, position: int, current: str, pool: list[str], others: set[str],
               hints: dict[str, set[int]]) -> list[str]:
        """The lines whose last word may be swapped at ``position``: the chosen one, then the
        best other usable lines there."""
        usable = [t for t in pool if _normal(t) not in others and _normal(t) != _normal(current)
                  and check_line(t, self.notes[position], self.config).ok]
        usable.sort(key=lambda t: -self._score(t, position, hints))
        return [current] + usable[:self.config.mend.lines_tried - 1]

    def _rhyming_set(self, group: list[int], options: dict[int, list[str]], used: set[str],
                     hints: dict[str, set[int]]) -> dict[int, str]:
        """The best lines for positions that must rhyme with each other, or {} if none rhyme."""
        head, rest = group[0], group[1:]
        best: tuple[float, dict[int, str]] | None = None
        for first in options[head]:
            if _normal(first) in used:
                continue
            picks = {head: first}
            total = self._score(first, head, hints)
            for i in rest:
                partners = [t for t in options[i] if rhymes(last_word(t), last_word(first))
                            and _normal(t) not in used
                            and _normal(t) not in {_normal(p) for p in picks.values()}]
                if not partners:
                    break
                picks[i] = max(partners, key=lambda t: self._score(t, i, hints))
                total += self._score(picks[i], i, hints)
            else:
                if best is None or total > best[0]:
                    best = (total, picks)
        return best[1] if best else {}


#: A line whose words are stressed right this often (or more) sings naturally.
GOOD_STRESS_SHARE = 0.85


#: The sung score (:func:`_sung_score`) of a line stressed right at :data:`GOOD_STRESS_SHARE`.
_SINGS_WELL = 2.0 * GOOD_STRESS_SHARE - 1e-9


def _sung_score(fit: LineFit) -> float:
    """How well a fitted line sings (see :meth:`_Stanza._stress_share`); 0 when it does not fit.

    >>> _sung_score(LineFit(True, "a", 2, 2, stressed=2, stressed_on_strong=2))
    2.0
    >>> _sung_score(LineFit(True, "a", 2, 2, stressed=2, stressed_on_strong=1, short_syllables=1))
    -0.5
    """
    if not fit.ok:
        return 0.0
    share = fit.stress_share if fit.stress_share is not None else 1.0
    return (2.0 * share - (1.0 if share < GOOD_STRESS_SHARE else 0.0)
            - (1.0 if fit.stretched else 0.0) - 0.5 * fit.short_syllables)


def _request_lines(
    theme: str, notes: list[int], scheme: str, generate_text: GenerateText, config: LyricsConfig,
    request_no: int,
) -> list[list[str]]:
    """The lines of each answer the model gives to one request."""
    settings = GenerationSettings(seed=config.seed + request_no, temperature=config.temperature,
                                  max_new_tokens=config.tokens_per_line * len(notes) + 8,
                                  samples=config.samples_per_request)
    answers = generate_text(lyrics_messages(theme, notes, scheme), settings)
    return [parse_model_lines(a) for a in ([answers] if isinstance(answers, str) else answers)]


def _write_verse(
    theme: str, phrases: list[Phrase], generate_text: GenerateText, config: LyricsConfig,
    lexicon: ThemeLexicon, avoid: Iterable[str] = (), qpm: float = 120.0,
) -> tuple[list[str], list[str], list[str], int]:
    """Lines for every phrase: (lines, problems, rhymes missed, model requests made)."""
    notes = [p.notes for p in phrases]
    size = len(config.rhyme_scheme)
    lines = [""] * len(phrases)
    problems: list[str] = []
    unrhymed: list[str] = []
    requests = 0
    scorer = _ending_scorer(generate_text)
    taken = set(avoid)
    pool: list[str] = []
    for start in range(0, len(phrases), size):
        positions = list(range(start, min(start + size, len(phrases))))
        scheme = _group_scheme(config.rhyme_scheme, len(positions))
        named = any(lexicon.classify(t) == "theme" for t in lines if t)
        stanza = _Stanza(positions, scheme, [notes[p] for p in positions], config, lexicon,
                         [phrases[p].slots for p in positions], needs_theme_word=not named,
                         qpm=qpm)
        pending = list(range(len(positions)))
        chosen: dict[int, str] = {}
        wrong: dict[int, list[_Issue]] = {}
        hints: dict[str, set[int]] = {}
        for requests_made in range(config.requests_per_stanza):
            ask = [notes[positions[i]] for i in pending]
            ask_scheme = _group_scheme("".join(scheme[i] for i in pending), len(pending))
            answers = _request_lines(theme, ask, ask_scheme, generate_text, config, requests)
            requests += 1
            for proposed in answers:
                for i, text in zip(pending, proposed):
                    hints.setdefault(_normal(text), set()).add(i)
                pool += [t for t in proposed if _normal(t) not in {_normal(p) for p in pool}]
            chosen, wrong = stanza.choose(pool, taken, hints)
            last = requests_made == config.requests_per_stanza - 1
            if scorer is not None and wrong and (last or _only_rhymes_missed(wrong)):
                chosen = stanza.mend(chosen, pool, taken, hints, scorer,
                                     lyrics_messages(theme, stanza.notes, scheme))
                wrong = stanza._problems(chosen, pool, taken)
            if not wrong:
                break
            pending = sorted(wrong)
        for i, text in chosen.items():
            lines[positions[i]] = text
            taken.update({text, stanza.mended_from.get(text, text)})
        for i in sorted(wrong):
            for issue in wrong[i]:
                (unrhymed if issue.soft else problems).append(f"line {positions[i] + 1}: {issue.text}")
    return lines, problems, unrhymed, requests


def _ending_scorer(generate_text: GenerateText) -> EndingScorer | None:
    """``generate_text`` where it also judges line endings (:class:`ModelText` does), else None."""
    return generate_text if callable(getattr(generate_text, "score_endings", None)) else None


def _only_rhymes_missed(wrong: dict[int, list[_Issue]]) -> bool:
    """Whether every problem left in a stanza is a missed rhyme (a line and its partner)."""
    return all(issue.soft for issues in wrong.values() for issue in issues)


def _fit_phrases(phrases: list[Phrase], texts: list[str], config: FitConfig, qpm: float = 120.0
                 ) -> list[LineFit | None]:
    return [fit_line(t, p.slots, config, qpm=qpm) if t else None for p, t in zip(phrases, texts)]


def _w_texts(phrases: list[Phrase], fits: list[LineFit | None]) -> dict[int, str] | None:
    """One w: text per music line, from its phrases' fits; None when any phrase has no fit."""
    if any(f is None or not f.ok for f in fits):
        return None
    out: dict[int, list[str]] = {}
    for phrase, fit in zip(phrases, fits):
        out.setdefault(phrase.line, []).append(fit.text)
    return {line: " ".join(parts) for line, parts in out.items()}


def _rhyme_partners(count: int, scheme: str) -> list[int | None]:
    """For each of ``count`` lyric lines, the earlier line it must rhyme with (None: first of
    its rhyme)."""
    partners: list[int | None] = []
    first: dict[str, int] = {}
    for i, letter in enumerate(_scheme_letters(count, scheme)):
        partners.append(first.get(letter))
        first.setdefault(letter, i)
    return partners


def _compose(
    abc: str, theme: str, generate_text: GenerateText, config: LyricsConfig,
    lexicon: ThemeLexicon | None, verse: int, avoid_lines: Sequence[str] = (),
) -> LyricsResult:
    """Write one verse of lyrics (``verse`` 1 replaces all lyrics; above 1 adds a verse);
    ``avoid_lines`` are lines sung elsewhere in the song, not to be used again."""
    if not theme_words(theme):
        raise InputError(f"no theme to write about in {theme!r}")
    if _OLD_STYLE.search(theme):
        config = replace(config, old_words=True)
    lines = note_slots(abc)
    if not lines:
        raise AbcError("the tune has no notes to set words to")
    lexicon = lexicon or theme_lexicon(theme)
    phrases = lyric_phrases(lines, config.max_line_syllables)
    existing = [t for line in lines for t in block_texts(abc, line)] if verse > 1 else []
    avoid = [words_of_w(t) for t in existing] + list(avoid_lines)
    qpm = tune_qpm(abc)
    texts, problems, unrhymed, requests = _write_verse(theme, phrases, generate_text, config,
                                                       lexicon, avoid, qpm)
    fits = _fit_phrases(phrases, texts, config.fit, qpm)
    for i, fit in enumerate(fits):
        if fit is not None and not fit.ok:
            problems.append(f"line {i + 1}: {fit.reason}")
    presence = theme_presence([t for t in texts if t], lexicon)
    if not presence.theme_word_used:
        problems.append(f"no line uses a word of the theme ({', '.join(lexicon.words)})")
    partners = _rhyme_partners(len(texts), config.rhyme_scheme)
    reports = tuple(
        LineReport(p.line, p.notes, t, f, partner,
                   None if partner is None or not t or not texts[partner]
                   else rhymes(last_word(t), last_word(texts[partner])),
                   lexicon.classify(t) if t else None)
        for p, t, f, partner in zip(phrases, texts, fits, partners)
    )
    rated = [r.rhymed for r in reports if r.rhymed is not None]
    stressed = sum(f.stressed for f in fits if f)
    report_notes: list[str] = []
    w_texts = _w_texts(phrases, fits)
    draft = None
    if w_texts is not None:
        if verse == 1:
            blocks = {line.index: [w_texts[line.index]] for line in lines}
            if any(line.lyric_lines for line in lines):
                report_notes.append("replaced the lyrics that were there")
        else:
            blocks = {}
            for line in lines:
                have = block_texts(abc, line)
                padding = [" ".join(["*"] * len(line.slots))] * max(0, verse - 1 - len(have))
                if padding:
                    report_notes.append(f"music line {line.index + 1} had no verse {len(have) + 1}: "
                                        "filled with * (no words)")
                blocks[line.index] = have + padding + [w_texts[line.index]]
        draft = rewrite_blocks(abc, blocks, lines)
    report = LyricsReport(
        problems=tuple(problems), lines=reports, requests=requests, theme=presence,
        rhyme_rate=sum(rated) / len(rated) if rated else None,
        stress_share=sum(f.stressed_on_strong for f in fits if f) / stressed if stressed else None,
        notes=tuple(report_notes),
        unrhymed=tuple(unrhymed),
    )
    ok = report.ok and draft is not None
    return LyricsResult(abc=draft if ok else abc, lines=tuple(texts), report=report, draft_abc=draft)


def write_lyrics(
    abc: str, theme: str, generate_text: GenerateText, config: LyricsConfig = LyricsConfig(),
    lexicon: ThemeLexicon | None = None, avoid: Sequence[str] = (),
) -> LyricsResult:
    """Lyrics about ``theme`` for the tune, written by the model and checked line by line.

    Each lyric line gets a syllable budget from its notes (:func:`lyric_phrases`); the model is
    asked for a stanza at a time (``lyrics_messages`` with the rhyme scheme). Every line it
    proposes is checked (:func:`check_line`: syllables within budget, words not filler, not a
    repeat); rhyme partners must rhyme; each stanza must show the theme (its words or close
    images, :func:`theme_lexicon`), and the song must use a theme word. Lines that fail are asked
    for again (``requests_per_stanza`` requests of ``samples_per_request`` answers each, seeds
    ``seed``, ``seed+1``, ...), choosing from every line proposed so far. A rhyme still missing
    then is not a failure: the lines are used and the miss is listed in ``report.unrhymed`` (the
    benchmark's rhyme rate counts it). Anything else that still fails is reported: ``ok`` False
    with reasons, and the tune comes back unchanged (the attempt is in ``draft_abc``). Lines are
    never padded with filler. Existing lyrics are replaced. Lines in ``avoid`` (sung elsewhere
    in the song) are not used.

    >>> def fake(messages, settings):
    ...     return "The moon is bright tonight\\nShe sails across the night"
    >>> tune = "X:1\\nM:3/4\\nL:1/4\\nK:C\\nC D E|F G A|\\nG E C|D D C|\\n"
    >>> result = write_lyrics(tune, "the moon", fake, lexicon=ThemeLexicon("the moon", ("moon",)))
    >>> result.ok, result.lines
    (True, ('The moon is bright tonight', 'She sails across the night'))
    >>> result.abc.splitlines()[-3:]
    ['w:The moon is bright to-night', 'G E C|D D C|', 'w:She sails a-cross the night']
    >>> def junk(messages, settings):
    ...     return "|: C D E :|"
    >>> bad = write_lyrics(tune, "the moon", junk, lexicon=ThemeLexicon("the moon", ("moon",)))
    >>> bad.ok, bad.abc == tune, bad.reasons[0]
    (False, True, 'line 1: no usable line of 4-6 syllables among 1 proposed (not plain words)')
    """
    return _compose(abc, theme, generate_text, config, lexicon, verse=1, avoid_lines=avoid)


def add_verse(
    abc: str, theme: str, generate_text: GenerateText, config: LyricsConfig = LyricsConfig(),
    lexicon: ThemeLexicon | None = None, avoid: Sequence[str] = (),
) -> LyricsResult:
    """One more verse: a new ``w:`` line under every music line, after the ones there.

    Lines of the earlier verses, and lines in ``avoid``, are not repeated. Everything else in the tune stays as it is.
    Checks and reporting are those of :func:`write_lyrics`.

    >>> tune = "X:1\\nM:3/4\\nL:1/4\\nK:C\\nC D E|F G A|\\nw:The moon is bright to-night\\n"
    >>> lexicon = ThemeLexicon("the moon", ("moon",))
    >>> add_verse(tune, "the moon", lambda m, s: "A silver moon on high", lexicon=lexicon).abc
    'X:1\\nM:3/4\\nL:1/4\\nK:C\\nC D E|F G A|\\nw:The moon is bright to-night\\nw:A sil-ver moon on high\\n'
    >>> again = add_verse(tune, "the moon", lambda m, s: "The moon is bright tonight", lexicon=lexicon)
    >>> again.reasons[0]
    "line 1: no usable line of 4-6 syllables among 1 proposed (repeats the line 'The moon is bright tonight')"
    """
    lines = note_slots(abc)
    verses = max((len(block_texts(abc, line)) for line in lines), default=0)
    return _compose(abc, theme, generate_text, config, lexicon, verse=verses + 1,
                    avoid_lines=avoid)


def quote_lines(lines: Sequence[str]) -> str:
    """The words of a song as a reply shows them: quoted, lines joined by a slash.

    >>> quote_lines(["The moon is high", "", "up in the sky"])
    '“The moon is high / up in the sky”'
    >>> quote_lines([])
    ''
    """
    kept = [line.strip() for line in lines if line.strip()]
    return "“" + " / ".join(kept) + "”" if kept else ""


# --------------------------------------------------------------------------------------------
# The user's own words


@dataclass(frozen=True)
class WordsReport:
    """What :func:`set_words` did.

    ``placed`` lists (music line index, verse, words) as set; ``fits`` the matching line fits;
    ``splits`` the notes split in two to make room for syllables; ``removed`` characters dropped
    because a ``w:`` line cannot print them; ``unset`` music lines left without words.
    """

    placed: tuple[tuple[int, int, str], ...]
    fits: tuple[LineFit, ...]
    splits: tuple[str, ...] = ()
    removed: str = ""
    unset: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    rhythm: str = ""  # what the rhythm changes did, when some were made for the stresses

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def melismas(self) -> int:
        return sum(f.melismas for f in self.fits)

    @property
    def stretched(self) -> bool:
        """True when the words are so much shorter than the music that a syllable is held over
        more than three notes."""
        return any(f.stretched for f in self.fits)

    def summary(self) -> str:
        """What was done, as a musician would say it; the exact note changes come last.

        >>> WordsReport(((0, 1, "a b"), (1, 1, "c")), (), splits=("bar 1: E2 -> EE",
        ...     "bar 1: G2 -> GG", "bar 4: c2 -> cc")).summary()  # doctest: +NORMALIZE_WHITESPACE
        'I set your words under the melody, two lines. I split three notes so every syllable
         has its own note (bars 1 and 4). (Notes split: bar 1: E2 -> EE; bar 1: G2 -> GG;
         bar 4: c2 -> cc.)'
        """
        if self.problems:
            return "I could not set your words: " + "; ".join(self.problems) + "."
        lines = len(self.placed)
        parts = [f"I set your words under the melody, {_number_word(lines)} "
                 f"line{'s' if lines != 1 else ''}."]
        if self.rhythm:
            parts.append(self.rhythm)
        elif self.splits:
            bars = sorted({int(b) for b in re.findall(r"bar (\d+):", " ".join(self.splits))})
            count = len(self.splits)
            parts.append(f"I split {_number_word(count)} note{'s' if count != 1 else ''} so every "
                         f"syllable has its own note ({_bar_list(bars)}).")
        if self.stretched:
            most = max(f.longest_melisma for f in self.fits)
            parts.append(f"Your words are much shorter than the music, so some syllables are held "
                         f"over up to {most} notes; I can set them on fewer bars if you like.")
        elif self.melismas:
            count = self.melismas
            parts.append(f"Where there are more notes than syllables, a syllable is held over "
                         f"the extra note{'s' if count != 1 else ''} ({count}).")
        if self.removed:
            parts.append(f"I left out {self.removed!r}: a lyric line cannot print them.")
        if self.unset:
            numbers = ", ".join(str(i + 1) for i in self.unset)
            parts.append(f"Music line(s) {numbers} have no words.")
        parts += list(self.notes)
        if self.splits:
            parts.append("(Notes split: " + "; ".join(self.splits) + ".)")
        return " ".join(parts)


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")


def _number_word(n: int) -> str:
    """'four' for 4; digits above twelve.

    >>> _number_word(4), _number_word(13)
    ('four', '13')
    """
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _bar_list(bars: Sequence[int]) -> str:
    """'bar 3', 'bars 1 and 4', 'bars 1, 2 and 5'.

    >>> _bar_list([1, 4]), _bar_list([3]), _bar_list([1, 2, 5])
    ('bars 1 and 4', 'bar 3', 'bars 1, 2 and 5')
    """
    if len(bars) == 1:
        return f"bar {bars[0]}"
    return "bars " + ", ".join(map(str, bars[:-1])) + f" and {bars[-1]}"


def _text_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        lines += [part.strip() for part in raw.split(" / ")]
    return [line for line in lines if line and any(ch.isalnum() for ch in line)]


def _flow(words: list[Word], capacities: list[int]) -> list[list[Word]]:
    """Spread words over lines in proportion to their notes, never breaking a word.

    Where to break is chosen by a small dynamic programme: each line's syllables should be close
    to its share of the words, above its notes costs more (notes must be split), and a break is
    better after punctuation and worse after a word such as "the" or "and".
    """
    count, lines = len(words), len(capacities)
    total = sum(w.count for w in words)
    targets = [total * c / sum(capacities) for c in capacities]
    prefix = list(itertools.accumulate((w.count for w in words), initial=0))

    def break_cost(j: int) -> float:  # a line ending after word j - 1
        if j == count:
            return 0.0
        text = words[j - 1].text
        cost = 0.0 if text.rstrip()[-1:] in ".,;:!?" else 1.5
        return cost + (2.0 if core_of(text).lower() in FUNCTION_WORDS else 0.0)

    def line_cost(i: int, a: int, b: int) -> float:
        sung = prefix[b] - prefix[a]
        empty = 4.0 if sung == 0 else 0.0  # a music line left without words
        return (empty + (sung - targets[i]) ** 2 / max(1.0, targets[i])
                + 2.0 * max(0, sung - capacities[i]))

    best = [[math.inf] * (count + 1) for _ in range(lines + 1)]
    back = [[0] * (count + 1) for _ in range(lines + 1)]
    best[0][0] = 0.0
    for i in range(lines):
        for a in range(count + 1):
            if best[i][a] == math.inf:
                continue
            for b in range(a, count + 1):
                value = best[i][a] + line_cost(i, a, b) + (break_cost(b) if b > a else 0.0)
                if value < best[i + 1][b] - 1e-9:
                    best[i + 1][b], back[i + 1][b] = value, a
    cuts = [count]
    for i in range(lines, 0, -1):
        cuts.append(back[i][cuts[-1]])
    cuts = cuts[::-1]
    return [words[cuts[i]:cuts[i + 1]] for i in range(lines)]


def _placement(lines: list[LineSlots], text_lines: list[str]) -> list[tuple[int, int, list[Word]]]:
    """Which words go under which music line, in which verse."""
    count = len(lines)
    split = [split_text(t) for t in text_lines]
    syllables = [sum(w.count for w in ws) for ws in split]
    by_line = len(split) % count == 0 or (
        len(split) < count and all(s <= 1.5 * lines[i].notes for i, s in enumerate(syllables)))
    if by_line:
        return [(j % count, j // count + 1, ws) for j, ws in enumerate(split)]
    words = [w for ws in split for w in ws]
    total = sum(w.count for w in words)
    notes = sum(line.notes for line in lines)
    verses = max(1, math.ceil(total / (notes * 1.25)))
    placed: list[tuple[int, int, list[Word]]] = []
    share = total / verses
    chunks: list[list[Word]] = [[] for _ in range(verses)]
    sung = 0
    for word in words:
        chunks[min(verses - 1, int(sung // share))].append(word)
        sung += word.count
    for verse, chunk in enumerate(chunks, start=1):
        for index, part in enumerate(_flow(chunk, [line.notes for line in lines])):
            if part:
                placed.append((index, verse, part))
    return placed


#: Most verses a paste of the user's words is set in; longer texts are refused, not cut.
MAX_VERSES = 8


def _script_problem(text: str) -> str:
    """Why words cannot be sung from their spelling ('' when they can): syllables and stresses
    are read from English spelling and CMUdict, so letters outside the Latin alphabet, and
    numbers (is "1984" "nineteen eighty-four" or "one nine eight four"?), are refused.

    >>> _script_problem("Привет мой друг"), _script_problem("in 1984"), _script_problem("Día")
    ('words in Cyrillic script: I can set words written in the Latin alphabet', 'a number (1984): write it as words, as it is sung', '')
    """
    scripts = sorted({_script_name(unicodedata.name(ch, "?").split()[0]) for ch in text
                      if ch.isalpha() and not unicodedata.name(ch, "LATIN").startswith("LATIN")})
    if scripts:
        return (f"words in {' and '.join(scripts[:2])} script: I can set words written in the "
                "Latin alphabet")
    number = re.search(r"\d+", text)
    if number:
        return f"a number ({number.group(0)}): write it as words, as it is sung"
    return ""


def _script_name(first_word: str) -> str:
    return first_word if len(first_word) <= 3 else first_word.title()  # "CJK", "Cyrillic"


def _symbols(text: str) -> tuple[str, str]:
    """``text`` without emoji and other symbols nobody sings, and those removed.

    >>> _symbols("happy 🎵 days ♥")
    ('happy  days ', '🎵♥')
    """
    gone = "".join(dict.fromkeys(ch for ch in text if unicodedata.category(ch) in ("So", "Sk", "Cs", "Co")
                                 or ch in "\ufe0f\u200d"))
    return "".join(ch for ch in text if ch not in gone), gone


def set_words(
    abc: str, text: str, config: LyricsConfig = LyricsConfig(),
    shortest_split: Fraction | None = None,
) -> tuple[str, WordsReport]:
    """Set the user's own words to the melody, as they are.

    Lines of ``text`` (newlines, or `` / ``) go under the music lines in order; more lines than
    music lines become further verses. A text that does not match the lines (one paragraph, or
    lines far longer than the music lines) is spread over the music lines in proportion to their
    notes, without breaking words, in as many verses as it needs. Where a line has fewer
    syllables than notes, syllables are held (melisma, see :func:`fit_line`); where it has more,
    plain notes of that music line are split into two shorter notes of the same pitch, the
    longest first unless another split puts more stresses on the beat; a few notes may also be
    split (or repeated notes joined) only for the stresses (:func:`agent.word_rhythm.retime_lines`) (no note shorter than ``shortest_split``; by default the shortest note a syllable can
    be sung on at the tune's tempo, :func:`agent.singable.singable_length`). Words are never changed, dropped or cut;
    characters a ``w:`` line cannot print (``_ * ~ | \\ %``) are left out and reported. All
    previous lyrics are replaced. When the words cannot be fitted, the tune comes back unchanged
    and the report says why.

    >>> tune = "X:1\\nM:2/4\\nL:1/8\\nK:G\\nG2 A2|B4|\\n"
    >>> new_abc, report = set_words(tune, "Wandering far")
    >>> new_abc.splitlines()[-2:], report.splits
    (['G2 AA|B4|', 'w:Wan-der-ing far'], ('bar 1: A2 -> AA',))
    >>> set_words(tune, "  ")[1].problems
    ('no words given',)
    """
    clean_lines: list[str] = []
    text, removed = _symbols(text)
    problem = _script_problem(text)
    if problem:
        return abc, WordsReport((), (), problems=(problem,))
    for line in _text_lines(text):
        clean, gone = sung_text(line)
        clean_lines.append(clean)
        removed += "".join(ch for ch in gone if ch not in removed)
    lines = note_slots(abc)
    if not lines:
        raise AbcError("the tune has no notes to set words to")
    if not clean_lines:
        return abc, WordsReport((), (), problems=("no words given",))
    if shortest_split is None:
        shortest_split = singable_split(abc)
    words_given = [w for line in clean_lines for w in split_text(line)]
    notes_per_verse = sum(line.notes for line in lines)
    sung = sum(w.count for w in words_given)
    if sung > MAX_VERSES * notes_per_verse:
        return abc, WordsReport((), (), problems=(
            f"{len(words_given)} words ({sung} syllables) would take "
            f"{math.ceil(sung / notes_per_verse)} verses of this {notes_per_verse}-note tune; I set "
            f"at most {MAX_VERSES} verses: send fewer words",))
    placed = _placement(lines, clean_lines)
    # notes split (or repeated notes joined) where the words need them or where that puts
    # their stresses on the beat (agent.word_rhythm)
    by_line: dict[int, list[list[Word]]] = {}
    for index, _, words in placed:
        by_line.setdefault(index, []).append(words)
    retimed = retime_lines(abc, lines, by_line, shortest=shortest_split,
                           config=RhythmConfig(place=config.fit.place))
    new_abc, splits, problems = retimed.abc, list(retimed.details), list(retimed.problems)
    if problems:
        return abc, WordsReport(tuple((i, v, " ".join(w.text for w in ws)) for i, v, ws in placed),
                                (), removed=removed, problems=tuple(problems))
    lines = note_slots(new_abc)
    qpm = tune_qpm(new_abc)
    fits = [fit_line(words, lines[index], config.fit, qpm=qpm) for index, _, words in placed]
    bad = [f"music line {i + 1}, verse {v}: {f.reason}"
           for (i, v, _), f in zip(placed, fits) if not f.ok]
    if bad:
        return abc, WordsReport((), tuple(fits), problems=tuple(bad))
    verses: dict[int, dict[int, str]] = {}
    for (index, verse, _), fit in zip(placed, fits):
        verses.setdefault(index, {})[verse] = fit.text
    blocks: dict[int, list[str]] = {}
    for line in lines:
        have = verses.get(line.index, {})
        top = max(have, default=0)
        blocks[line.index] = [have.get(v, " ".join(["*"] * len(line.slots))) for v in range(1, top + 1)]
    notes = ["replaced the lyrics that were there"] if any(l.lyric_lines for l in lines) else []
    report = WordsReport(
        placed=tuple((i, v, " ".join(w.text for w in ws)) for i, v, ws in placed),
        fits=tuple(fits), splits=tuple(splits), removed=removed,
        unset=tuple(line.index for line in lines if line.index not in verses), notes=tuple(notes),
        rhythm=retimed.sentence)
    return rewrite_blocks(new_abc, blocks, lines), report


# --------------------------------------------------------------------------------------------
# Revising lyrics


@dataclass(frozen=True)
class EditReport:
    """What a lyric edit changed: the music lines whose words changed and their new fits."""

    changed: tuple[int, ...]
    fits: tuple[LineFit, ...]
    notes: tuple[str, ...] = ()


def _line_at(lines: list[LineSlots], line_no: int) -> LineSlots:
    if not 1 <= line_no <= len(lines):
        raise InputError(f"there is no line {line_no}: the tune has {len(lines)} music line(s)")
    return lines[line_no - 1]


def _fill_earlier(abc: str, lines: list[LineSlots], upto: int, blocks: dict[int, list[str]],
                  notes: list[str]) -> None:
    """A w: line covers every note since the w: line before it, so music lines above a new one
    that have no words get a line of ``*`` (a note without words each)."""
    for line in lines[:upto]:
        if line.index not in blocks and not block_texts(abc, line):
            blocks[line.index] = [" ".join(["*"] * len(line.slots))]
            notes.append(f"music line {line.index + 1} had no words: marked its notes as wordless")


def replace_line(
    abc: str, line_no: int, new_text: str, verse: int = 1, config: LyricsConfig = LyricsConfig()
) -> tuple[str, EditReport]:
    """Put ``new_text`` under music line ``line_no`` (1-based) in ``verse``; nothing else changes.

    Raises :class:`InputError` when the line does not exist or the words have more syllables
    than the line has notes (the tune is not touched).

    >>> tune = "X:1\\nM:2/4\\nL:1/4\\nK:C\\nC D|E2|\\nw:one two three\\nF G|c2|\\nw:four five six\\n"
    >>> new, report = replace_line(tune, 2, "Hold me")
    >>> new.splitlines()[-1], report.changed
    ('w:Hold me_', (1,))
    >>> replace_line(tune, 2, "this line is far too long to sing")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: line 2: 8 syllables for 3 notes: 5 too many
    """
    lines = note_slots(abc)
    line = _line_at(lines, line_no)
    have = block_texts(abc, line)
    if not 1 <= verse <= len(have) + 1:
        raise InputError(
            f"line {line_no} has {len(have)} verse(s); there is no verse {verse} to change")
    clean, _ = sung_text(new_text)
    fit = fit_line(clean, line, config.fit, qpm=tune_qpm(abc))
    if not fit.ok:
        raise InputError(f"line {line_no}: {fit.reason}")
    new = list(have)
    if verse > len(new):
        new.append(fit.text)
    else:
        new[verse - 1] = fit.text
    blocks = {line.index: new}
    notes: list[str] = []
    _fill_earlier(abc, lines, line.index, blocks, notes)
    return rewrite_blocks(abc, blocks, lines), EditReport((line.index,), (fit,), tuple(notes))


@dataclass(frozen=True)
class RewriteResult:
    """New words for some lines (:func:`rewrite_lines`). ``abc`` is the tune with them when
    ``ok``, else the tune as given; ``unrhymed`` lists rhymes the new lines miss."""

    abc: str
    lines: tuple[int, ...]  # the music lines rewritten, 1-based
    texts: tuple[str, ...]  # their new words, one text per music line
    requests: int
    problems: tuple[str, ...] = ()
    unrhymed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _scheme_letters(count: int, scheme: str) -> list[str]:
    """The rhyme letter of each of ``count`` lyric lines, stanza by stanza (letters of different
    stanzas are told apart by a stanza number)."""
    size = len(scheme)
    return [f"{start}{letter}" for start in range(0, count, size)
            for letter in _group_scheme(scheme, min(size, count - start))]


def _worded_phrases(abc: str, lines: list[LineSlots], config: LyricsConfig) -> list[Phrase]:
    worded = [line for line in lines if block_texts(abc, line)]
    return lyric_phrases(worded, config.max_line_syllables)


def chorus_lines(abc: str, config: LyricsConfig = LyricsConfig()) -> tuple[int, ...]:
    """The music lines (1-based) taken as the chorus: those of the last stanza of the words
    (a stanza is as many lyric lines as the rhyme scheme); all lines with words when the song
    has one stanza. ABC marks no chorus, so this is the usual song form's guess.

    >>> tune = "X:1\\nM:2/4\\nL:1/4\\nK:C\\n" + "C D|E2|\\nw:one two three\\n" * 6
    >>> chorus_lines(tune)
    (5, 6)
    """
    phrases = _worded_phrases(abc, note_slots(abc), config)
    if not phrases:
        return ()
    size = len(config.rhyme_scheme)
    start = ((len(phrases) - 1) // size) * size
    return tuple(sorted({p.line + 1 for p in phrases[start:]}))


def rewrite_lines(
    abc: str, line_numbers: Sequence[int], theme: str, generate_text: GenerateText,
    config: LyricsConfig = LyricsConfig(), lexicon: ThemeLexicon | None = None,
) -> RewriteResult:
    """New words by the model for music lines ``line_numbers`` (1-based, -1 the last), about
    ``theme``; every other line, every note and every other verse stays byte-identical.

    The lines are asked for as :func:`write_lyrics` asks (syllable budgets per phrase, the rhyme
    scheme among the lines asked for), ``samples_per_request`` answers at a time, up to
    ``requests_per_stanza`` requests. Each new line must pass :func:`check_line`, not repeat a
    line of the song, and one of them must show the theme; a new line whose rhyme partner is
    kept should rhyme with it (the partner's last word is known when it ends its music line),
    and a miss is reported in ``unrhymed`` rather than refused.

    >>> tune = ("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC D E|F G A|\\nw:The moon is bright to-night\\n"
    ...         "G E C|D D C|\\nw:She sails a-cross the night\\n")
    >>> fake = lambda messages, settings: "The sea is wide and bright"
    >>> lexicon = ThemeLexicon("the sea", ("sea",))
    >>> result = rewrite_lines(tune, [1], "the sea", fake, lexicon=lexicon)
    >>> result.ok, result.abc.splitlines()[5], result.abc.splitlines()[-1]
    (True, 'w:The sea is wide and bright', 'w:She sails a-cross the night')
    """
    lines = note_slots(abc)
    if not any(block_texts(abc, line) for line in lines):
        raise InputError("the tune has no words yet: ask for lyrics first")
    numbers = sorted({n if n > 0 else len(lines) + 1 + n for n in line_numbers})
    for number in numbers:
        if not block_texts(abc, _line_at(lines, number)):
            raise InputError(f"line {number} has no words to rewrite")
    lexicon = lexicon or theme_lexicon(theme)
    phrases = _worded_phrases(abc, lines, config)
    targets = {n - 1 for n in numbers}
    todo = [i for i, p in enumerate(phrases) if p.line in targets]
    letters = _scheme_letters(len(phrases), config.rhyme_scheme)
    kept_ends: dict[int, str] = {}  # phrase -> last word, for kept phrases that end their line
    for i, phrase in enumerate(phrases):
        ends_line = i + 1 == len(phrases) or phrases[i + 1].line != phrase.line
        if phrase.line not in targets and ends_line:
            kept_ends[i] = last_word(words_of_w(block_texts(abc, lines[phrase.line])[0]))
    song = [words_of_w(t) for line in lines for t in block_texts(abc, line)
            if line.index not in targets]
    ask_scheme = _group_scheme("".join(letters[i][-1] for i in todo), len(todo))
    pool: list[str] = []
    chosen: dict[int, str] = {}
    requests = 0
    scorer = _ending_scorer(generate_text)
    for _ in range(config.requests_per_stanza):
        for answer in _request_lines(theme, [phrases[i].notes for i in todo], ask_scheme,
                                     generate_text, config, requests):
            pool += [t for t in answer if _normal(t) not in {_normal(p) for p in pool}]
        requests += 1
        chosen, missing, unrhymed = _choose_rewrites(todo, phrases, letters, kept_ends, pool,
                                                     song, lexicon, config)
        if unrhymed and not missing and scorer is not None:
            messages = lyrics_messages(theme, [phrases[i].notes for i in todo], ask_scheme)
            chosen, unrhymed = _mend_rewrites(chosen, todo, phrases, letters, kept_ends, pool,
                                              song, config, scorer, messages)
        if not missing and not unrhymed and any(lexicon.classify(t) for t in chosen.values()):
            break
    problems = [f"line {phrases[i].line + 1}: no usable line of words among {len(pool)} proposed"
                for i in missing]
    if chosen and not any(lexicon.classify(t) for t in chosen.values()):
        problems.append(f"no new line is about {theme}")
    if problems:
        return RewriteResult(abc, tuple(numbers), (), requests, tuple(problems))
    texts = tuple(" ".join(chosen[i] for i in todo if phrases[i].line == n - 1) for n in numbers)
    new = abc
    try:
        for number, text in zip(numbers, texts):
            new, _ = replace_line(new, number, text, config=config)
    except InputError as err:
        return RewriteResult(abc, tuple(numbers), texts, requests, (str(err),))
    return RewriteResult(new, tuple(numbers), texts, requests, (), tuple(unrhymed))


def _choose_rewrites(
    todo: list[int], phrases: list[Phrase], letters: list[str], kept_ends: dict[int, str],
    pool: list[str], song: list[str], lexicon: ThemeLexicon, config: LyricsConfig,
) -> tuple[dict[int, str], list[int], list[str]]:
    """The best proposed line for each phrase to rewrite, in order: (choices, phrases with no
    usable line, rhymes missed)."""
    chosen: dict[int, str] = {}
    missing: list[int] = []
    unrhymed: list[str] = []
    for i in todo:
        mates = [j for j, letter in enumerate(letters) if letter == letters[i] and j != i]
        ends = [kept_ends[j] for j in mates if j in kept_ends]
        ends += [last_word(chosen[j]) for j in mates if j in chosen]
        taken = song + list(chosen.values())
        usable = [t for t in pool if check_line(t, phrases[i].notes, config, taken=taken).ok]
        if not usable:
            missing.append(i)
            continue

        def score(text: str) -> float:
            rhymed = 3.0 if ends and any(rhymes(last_word(text), end) for end in ends) else 0.0
            return rhymed + _line_score(text, phrases[i].notes, lexicon, config)

        chosen[i] = max(usable, key=score)
        if ends and not any(rhymes(last_word(chosen[i]), end) for end in ends):
            unrhymed.append(f"line {phrases[i].line + 1}: {last_word(chosen[i])!r} does not "
                            f"rhyme with {ends[0]!r}")
    return chosen, missing, unrhymed


def _mend_rewrites(
    chosen: dict[int, str], todo: list[int], phrases: list[Phrase], letters: list[str],
    kept_ends: dict[int, str], pool: list[str], song: list[str], config: LyricsConfig,
    scorer: EndingScorer, messages: list[dict],
) -> tuple[dict[int, str], list[str]]:
    """Rewritten lines whose rhyme is missed, mended as :meth:`_Stanza.mend` does (the chosen
    line or one of the next usable ones for its phrase, its last word swapped for a rhyme with
    a kept or rewritten partner); (choices, rhymes still missed)."""
    chosen = dict(chosen)
    unrhymed: list[str] = []
    for i in todo:
        mates = [j for j, letter in enumerate(letters) if letter == letters[i] and j != i]
        ends = [kept_ends[j] for j in mates if j in kept_ends]
        ends += [last_word(chosen[j]) for j in mates if j in chosen and j < i]
        if not ends or any(rhymes(last_word(chosen[i]), end) for end in ends):
            continue
        taken = song + [t for j, t in chosen.items() if j != i]
        usable = [t for t in pool if t != chosen[i]
                  and check_line(t, phrases[i].notes, config, taken=taken).ok]
        before = "".join(chosen[j] + "\n" for j in todo if j < i and j in chosen)
        mends = [m for base in [chosen[i]] + usable[:config.mend.lines_tried - 1]
                 for m in mend_line(base, ends[0], scorer, messages, before, config.mend)
                 if check_line(m.text, phrases[i].notes, config, taken=taken).ok]
        if mends:
            chosen[i] = min(mends, key=lambda m: m.surprise).text
        else:
            unrhymed.append(f"line {phrases[i].line + 1}: {last_word(chosen[i])!r} does not "
                            f"rhyme with {ends[0]!r}")
    return chosen, unrhymed


def replace_word(
    abc: str, old: str, new: str, config: LyricsConfig = LyricsConfig()
) -> tuple[str, EditReport]:
    """Replace a word (or words) wherever it is sung, re-setting only the lines that hold it.

    Case is ignored when matching; a capitalised word stays capitalised.

    >>> tune = "X:1\\nM:2/4\\nL:1/4\\nK:C\\nC D|E F|\\nw:Moon so bright_\\nF G|c c|\\nw:moon a-bove_\\n"
    >>> new_abc, report = replace_word(tune, "moon", "pale moon")
    >>> [l for l in new_abc.splitlines() if l.startswith("w:")], report.changed
    (['w:Pale moon so bright', 'w:pale moon a-bove'], (0, 1))
    >>> replace_word(tune, "sun", "star")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: 'sun' is not in the lyrics
    """
    old_clean = sung_text(old)[0]
    new_clean = sung_text(new)[0]
    if not old_clean:
        raise InputError("no word to replace")
    pattern = re.compile(rf"(?<![\w']){re.escape(old_clean)}(?![\w'])", re.IGNORECASE)

    def swap(match: re.Match) -> str:
        found = match.group(0)
        return new_clean[:1].upper() + new_clean[1:] if found[:1].isupper() else new_clean

    lines = note_slots(abc)
    blocks: dict[int, list[str]] = {}
    fits: list[LineFit] = []
    for line in lines:
        have = block_texts(abc, line)
        changed = False
        texts = list(have)
        for v, w_text in enumerate(have):
            words = words_of_w(w_text)
            if not pattern.search(words):
                continue
            fit = fit_line(pattern.sub(swap, words), line, config.fit, qpm=tune_qpm(abc))
            if not fit.ok:
                raise InputError(f"line {line.index + 1}: {fit.reason}")
            texts[v] = fit.text
            fits.append(fit)
            changed = True
        if changed:
            blocks[line.index] = texts
    if not blocks:
        raise InputError(f"{old!r} is not in the lyrics")
    return rewrite_blocks(abc, blocks, lines), EditReport(tuple(sorted(blocks)), tuple(fits))


def remove_lyrics(abc: str) -> tuple[str, int]:
    """The tune without its words: every ``w:`` line (with its ``+:`` continuations) and every
    ``W:`` line goes; all other lines stay byte for byte. Returns the text and the lines removed.

    >>> remove_lyrics("X:1\\nK:C\\nCDEF|\\nw:a b c d\\nG4|]\\nW:Words after the tune\\n")
    ('X:1\\nK:C\\nCDEF|\\nG4|]\\n', 2)
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    drop: set[int] = set()
    after_w = False
    for token in tokens:
        if token.kind is Kind.LYRICS or (token.kind is Kind.FIELD and token.text.startswith("W:")):
            drop.add(token.line)
            after_w = token.kind is Kind.LYRICS
        elif token.kind is Kind.FIELD and token.text.startswith("+:") and after_w:
            drop.add(token.line)
        elif token.kind not in (Kind.LINE_BREAK, Kind.SPACE, Kind.COMMENT):
            after_w = False
    for field_ in tune.fields:
        if field_.name == "W":
            drop.add(field_.line)
    text_lines = abc.splitlines(keepends=True)
    kept = [t for number, t in enumerate(text_lines, start=1) if number not in drop]
    return "".join(kept), len(drop)


# --------------------------------------------------------------------------------------------
# Measures for the benchmark


@dataclass(frozen=True)
class SyllableFit:
    """How many ``w:`` lines take exactly the notes they cover, and what is off in the others."""

    lines: int
    exact: int
    issues: tuple[str, ...] = ()

    @property
    def rate(self) -> float | None:
        return self.exact / self.lines if self.lines else None


def syllable_fit(abc: str) -> SyllableFit:
    """Per ``w:`` line (every verse), whether its syllables and holds match its notes one to one,
    read with the ABC 2.1 alignment of :mod:`agent.abc_lyrics`.

    >>> fit = syllable_fit("X:1\\nK:C\\nCDEF|\\nw:one two three four\\nG4|\\nw:too many\\n")
    >>> fit.lines, fit.exact, fit.rate
    (2, 1, 0.5)
    >>> len(fit.issues), "line 6" in fit.issues[0]
    (1, True)
    """
    _, tokens, _ = melody_tokens(abc)
    aligned = abc_lyrics.align_lyrics(tokens)
    return SyllableFit(len(aligned.lines), len(aligned.lines) - len(aligned.issues),
                       tuple(issue.message for issue in aligned.issues))


def rhyme_rate(lines: Sequence[str], scheme: str = "AABB") -> float | None:
    """Share of the line pairs the scheme asks to rhyme that do (None: no such pair).

    >>> rhyme_rate(["the moon is high", "up in the sky", "I sing to you", "the night is long"])
    0.5
    >>> rhyme_rate(["just one line"]) is None
    True
    """
    partners = _rhyme_partners(len(lines), scheme)
    pairs = [(i, p) for i, p in enumerate(partners) if p is not None]
    if not pairs:
        return None
    return sum(rhymes(last_word(lines[i]), last_word(lines[p])) for i, p in pairs) / len(pairs)


def stress_on_strong_beats(abc: str) -> float | None:
    """Share of stressed syllables (every verse) that start on a strong beat.

    Words are read back from the ``w:`` lines with the ABC alignment; a word whose written
    syllables do not match its syllables in :mod:`agent.syllables` is skipped (its stresses
    cannot be placed). None when the tune has no stressed syllable in its lyrics.

    >>> stress_on_strong_beats("X:1\\nM:4/4\\nL:1/4\\nK:C\\nC D E F|\\nw:Hap-py dog-gies\\n")
    1.0
    >>> stress_on_strong_beats("X:1\\nM:4/4\\nL:1/4\\nK:C\\nC D E F|\\nw:a hap-py dog\\n")
    0.0
    """
    tune, tokens, voice = melody_tokens(abc)
    aligned = abc_lyrics.align_lyrics(tokens)
    strong = {s.start: s.strong for line in note_slots(abc) for s in line.slots}
    stressed = on_strong = 0
    for verse in aligned.verses:
        word_text, word_notes = "", []
        for note, syllable in zip(aligned.notes, verse):
            if syllable is None:
                continue
            word_text += syllable.text
            word_notes.append(tune.body_offset + note.start)
            if syllable.syllabic in ("single", "end"):
                s, o = _stress_count(word_text, word_notes, strong)
                stressed, on_strong = stressed + s, on_strong + o
                word_text, word_notes = "", []
    return on_strong / stressed if stressed else None


def _stress_count(text: str, starts: list[int], strong: dict[int, bool]) -> tuple[int, int]:
    pieces = split_text(text)
    if len(pieces) != 1 or pieces[0].count != len(starts):
        return 0, 0
    flags = pieces[0].sung_stress
    stressed = [start for start, flag in zip(starts, flags) if flag]
    return len(stressed), sum(1 for start in stressed if strong.get(start))


# --------------------------------------------------------------------------------------------
# The model


def model_text_generator(loaded: Any) -> "ModelText":
    """A ``generate_text`` for :func:`write_lyrics` from a :class:`agent.model.LoadedModel`:
    called with (messages, settings) it samples ``settings.samples`` answers to the chat in one
    batch (seeded with ``settings.seed``) and returns their texts, each cut at the end of the
    assistant's turn. It is also the :class:`agent.rhyme_mend.EndingScorer` that mends rhymes."""
    return ModelText(loaded)


class SharedModelText:
    """:class:`ModelText` for a model shared with other work: every call takes the model through
    ``run`` (``agent.conversation.Composer.run``, which loads it on first use and holds it for
    the call)."""

    def __init__(self, run: Callable[[Callable[[Any], Any]], Any]) -> None:
        self.run = run
        self._text: tuple[Any, ModelText] | None = None

    def _of(self, loaded: Any) -> "ModelText":
        if self._text is None or self._text[0] is not loaded:
            self._text = (loaded, ModelText(loaded))
        return self._text[1]

    def __call__(self, messages: list[dict], settings: GenerationSettings) -> list[str]:
        return self.run(lambda loaded: self._of(loaded)(messages, settings))

    def knows_word(self, word: str) -> bool:
        return self.run(lambda loaded: self._of(loaded).knows_word(word))

    def score_endings(self, messages: list[dict], prefix: str, own: str, words: Sequence[str],
                      keep: int) -> tuple[float, list[float]]:
        return self.run(lambda loaded: self._of(loaded).score_endings(messages, prefix, own, words,
                                                                      keep))


#: What may end a lyric line after its last word: a new line, or punctuation (",", ".", "!"…)
_LINE_END = re.compile(r"^ *(?:\n|[,.!?;:]+[\s,.!?;:]*$)")


class ModelText:
    """The loaded model as the lyric writer uses it: it writes lines (``__call__``, the
    ``GenerateText`` contract) and judges line endings (``knows_word``, ``score_endings``, the
    :class:`agent.rhyme_mend.EndingScorer` contract)."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self._whole: dict[str, bool] = {}
        self._ends: list[int] | None = None

    def __call__(self, messages: list[dict], settings: GenerationSettings) -> list[str]:
        import torch

        from agent.prompts import chat_prompt_ids

        loaded, tokenizer = self.loaded, self.loaded.tokenizer
        ids = chat_prompt_ids(tokenizer, messages)
        inputs = torch.tensor([ids], device=loaded.device)
        if getattr(loaded, "int8_llama", None) is not None:  # the compact decoder of its CPU path
            from agent.step_decoder import sample_continuations

            rows = sample_continuations(loaded, ids, samples=settings.samples, temperature=settings.temperature,
                                        top_p=settings.top_p, max_new_tokens=settings.max_new_tokens,
                                        seed=settings.seed)
            return [tokenizer.decode(row, skip_special_tokens=True) for row in rows]
        torch.manual_seed(settings.seed)
        sampled = settings.temperature > 0
        with torch.no_grad():
            output = loaded.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), do_sample=sampled,
                temperature=settings.temperature if sampled else None,
                top_p=settings.top_p, max_new_tokens=settings.max_new_tokens,
                num_return_sequences=settings.samples if sampled else 1,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        return [tokenizer.decode(row[len(ids):], skip_special_tokens=True) for row in output]

    def knows_word(self, word: str) -> bool:
        """Whether " word" is one piece of the model's vocabulary (a common word)."""
        if word not in self._whole:
            pieces = self.loaded.tokenizer.encode(" " + word, add_special_tokens=False)
            self._whole[word] = len(pieces) == 1
        return self._whole[word]

    def _line_ends(self) -> list[int]:
        """The tokens that end a line: a new line, closing punctuation, the end of the turn."""
        if self._ends is None:
            from agent.step_decoder import _stop_tokens

            tokenizer = self.loaded.tokenizer
            texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            self._ends = sorted({i for i, t in enumerate(texts) if _LINE_END.match(t)}
                                | _stop_tokens(self.loaded))
        return self._ends

    def score_endings(self, messages: list[dict], prefix: str, own: str, words: Sequence[str],
                      keep: int) -> tuple[float, list[float]]:
        """log P(" own", then a line end | the chat, the answer so far ``prefix``), and the same
        per word of ``words``; of those only the ``keep`` with the likeliest first piece are
        scored in full, the rest get ``-inf``. The context is fed once, then one decoder feed per
        word scored in full."""
        import torch

        from agent.prompts import chat_prompt_ids
        from agent.step_decoder import open_decoder

        tokenizer = self.loaded.tokenizer
        ids = chat_prompt_ids(tokenizer, messages, prefill=prefix)
        pieces = [tokenizer.encode(" " + w, add_special_tokens=False) for w in [own, *words]]
        ends = torch.tensor(self._line_ends())
        decoder = open_decoder(self.loaded, len(ids) + max(len(p) for p in pieces) + 1)
        with torch.inference_mode():
            first = torch.log_softmax(decoder.feed(ids).float(), -1)
            starts = [float(first[p[0]]) for p in pieces]
            likeliest = sorted(range(1, len(pieces)), key=lambda i: -starts[i])[:keep]
            scores = [-math.inf] * len(pieces)
            for i in [0, *likeliest]:
                piece = pieces[i]
                decoder.rewind(len(ids))
                logits = torch.log_softmax(decoder.feed(piece, every=True).float(), -1)
                rest = sum(float(logits[j, piece[j + 1]]) for j in range(len(piece) - 1))
                scores[i] = starts[i] + rest + float(torch.logsumexp(logits[-1, ends], 0))
        return scores[0], scores[1:]
