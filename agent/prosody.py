"""Prosody: do a song's words fall on its music the way a singer would say them?

Two things live here, the measure and the rule that follows from it.

**The measure** (:func:`stress_alignment`). In speech a word of two or more syllables leans on
one of them ("mu-sic", "a-way"); in a song that syllable belongs on a beat at least as strong as
the word's other syllables. For every sung word of two or more syllables whose dictionary
stresses (CMUdict through ``pronouncing``) match its sung syllables, the measure asks whether
the primary-stressed syllable starts on a beat at least as strong as each of the others. Beat
strength is music21's ``beatStrength`` (its time signature's accent weights: 1.0 on the
downbeat, 0.5 on the middle of a 4/4 bar, 0.25 on the other beats, and so on down). Words
CMUdict does not know are cut and stressed by :mod:`agent.syllables`'s spelling rules and
counted separately. The same report gives what else makes words singable: the share of sung
syllables that start on a note shorter than 0.15 s at the tune's tempo (no singer articulates a
syllable that fast), the melody's range in semitones, and the longest melisma (notes sung on
one syllable).

**The rule** (:func:`place_syllables`). Given a line of words and the notes of a phrase, choose
the note each syllable starts on so that stressed syllables land on strong beats and unstressed
ones on weak beats or pickups, no syllable starts on a note too short to sing when that can be
helped, and no syllable is held over more than three notes unless the words are much shorter
than the music (the placement then says so). A dynamic programme over (word, note) finds the
placement of least cost; each word's own syllables are placed together, so the measure's
word-level rule (the stressed syllable on the word's strongest beat) is costed exactly. The
costs are in :class:`PlaceConfig`.

Why our own code: neither music21 nor any other library sets words to notes. music21 gives the
beat strengths (through its ``TimeSignature``, imported only when a strength is first needed)
and reads the MusicXML and Humdrum songs the yardstick is measured on
(:mod:`finetune.prosody_eval`).

>>> song = "X:1\\nM:3/4\\nL:1/4\\nQ:1/4=100\\nK:C\\nC E G|c2 G|E2 D|C3|]\\nw:Love is a mel-o-dy, sung_ to you\\n"
>>> report = stress_alignment(song)
>>> report.words, report.stressed_right, report.range_semitones, report.short_syllables
(1, 1, 12, 0)
>>> words = "over the hills and far away"
>>> slots = note_slots_of("X:1\\nM:6/8\\nL:1/8\\nK:G\\nG2A B2G|d3 B2d|e2d B2G|A6|]\\n")
>>> placement = place_syllables(words, slots, "6/8")
>>> placement.text, placement.words_right, placement.words_checked
('o-ver the_ hills_ and far__ a-way', 2, 2)
>>> place_syllables("one two three four five", slots[:3], "6/8").reason
'5 syllables for 3 notes: 2 too many'
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

from agent import abc_lyrics
from agent.abc_text import (Kind, Meter, TuneText, parse_meter, parse_tempo, parse_tune,
                            split_bars, tokenize_body)
from agent.errors import AbcError
from agent.syllables import Word, core_of, split_text, split_word

__all__ = [
    "DEFAULT_QPM",
    "MAX_NOTES_PER_SYLLABLE",
    "MAX_SKIPPED_PICKUP",
    "MAX_UNSUNG_LEAD",
    "SHORT_SECONDS",
    "PlaceConfig",
    "Placement",
    "ProsodyConfig",
    "ProsodyReport",
    "Slot",
    "SungNote",
    "beat_strength",
    "measure_notes",
    "meter_text",
    "note_slots_of",
    "place_syllables",
    "rank_lines",
    "seconds_per_whole",
    "stress_alignment",
    "sung_notes",
    "word_stresses",
]

#: A syllable that starts on a note shorter than this many seconds cannot be articulated.
SHORT_SECONDS = 0.15
#: Quarter notes per minute when a tune gives no tempo (music21's default too).
DEFAULT_QPM = 120.0
#: Most notes one syllable is held over, unless the words are much shorter than the music.
MAX_NOTES_PER_SYLLABLE = 3
#: Most notes too short to sing that a phrase's words may leave unsung at its start.
MAX_SKIPPED_PICKUP = 2
#: Most further notes a line may leave unsung at its start so that its first stress lands on a
#: strong beat ("a-LONG" after a downbeat: the singer comes in on the beat after it).
MAX_UNSUNG_LEAD = 2

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


# --------------------------------------------------------------------------------------------
# Beat strength and tempo


def meter_text(meter: Meter | str) -> str:
    """A meter as music21's ``TimeSignature`` reads it ("C" is 4/4, "C|" 2/2).

    >>> meter_text("C|"), meter_text(parse_meter("3/8+3/8+2/8")), meter_text("6/8")
    ('2/2', '3+3+2/8', '6/8')
    >>> meter_text("none")
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: a free meter has no beats to measure stress against
    """
    if isinstance(meter, str):
        meter = parse_meter(meter)
    if meter.is_free:
        raise AbcError("a free meter has no beats to measure stress against")
    if meter.groups:
        return "+".join(str(g) for g in meter.groups) + f"/{meter.denominator}"
    return f"{meter.numerator}/{meter.denominator}"


@functools.lru_cache(maxsize=64)
def _time_signature(text: str) -> Any:
    from music21 import meter as m21meter

    return m21meter.TimeSignature(text)


@functools.lru_cache(maxsize=4096)
def _strength(text: str, onset: Fraction) -> float:
    quarters = float(onset * 4)
    return float(_time_signature(text).getAccentWeight(
        quarters, forcePositionMatch=True, permitMeterModulus=False))


def beat_strength(onset: Fraction, meter: Meter | str) -> float:
    """music21's ``beatStrength`` of a note starting ``onset`` (a fraction of a whole note)
    after the bar's downbeat.

    >>> [beat_strength(Fraction(i, 4), "4/4") for i in range(4)]
    [1.0, 0.25, 0.5, 0.25]
    >>> [beat_strength(Fraction(i, 8), "6/8") for i in range(6)]
    [1.0, 0.25, 0.25, 0.5, 0.25, 0.25]
    >>> beat_strength(Fraction(5, 4), "4/4")  # an overfull bar goes on counting from 1
    0.25
    """
    text = meter_text(meter)
    bar = Fraction(_time_signature(text).barDuration.quarterLength) / 4
    return _strength(text, Fraction(onset) % bar)  # past the bar's end: music21's modulus


def seconds_per_whole(tune: TuneText, default_qpm: float = DEFAULT_QPM) -> float:
    """Seconds a whole note lasts: at the ``Q:`` tempo; without one, at the usual speed of the
    style the tune names (its ``R:`` field or a word of its title: "reel", "waltz", ...); else
    at ``default_qpm`` quarter notes a minute. (A style only suggested by the meter is not
    used: any 4/4 tune would be played as a reel.)

    >>> seconds_per_whole(parse_tune("X:1\\nQ:3/8=80\\nK:C\\nC\\n"))
    2.0
    >>> seconds_per_whole(parse_tune("X:1\\nM:4/4\\nK:C\\nC\\n"))
    2.0
    >>> round(seconds_per_whole(parse_tune("X:1\\nR:reel\\nM:2/4\\nK:C\\nC\\n")), 3)  # 208
    1.154
    """
    from agent.styles import style_for, usual_tempo

    tempo = tune.tempo
    if tempo is None or not tempo.bpm or not tempo.beat:
        meter = str(tune.meter) if not tune.meter.is_free else ""
        named = " ".join((tune.get("R", "") or "", tune.title or "")).lower()
        style = style_for(rhythm=tune.get("R", "") or "", title=tune.title or "", meter=meter)
        if style is None or not meter or not any(word in named for word in style.keywords):
            return 240.0 / default_qpm
        tempo = parse_tempo(usual_tempo(style, meter))
    return 60.0 / (tempo.bpm * float(tempo.beat))


# --------------------------------------------------------------------------------------------
# Words and their stresses


@functools.lru_cache(maxsize=50_000)
def _cmu_patterns(word: str) -> tuple[tuple[int, ...], ...]:
    import pronouncing

    return tuple(tuple(int(d) for d in pronouncing.stresses(p))
                 for p in pronouncing.phones_for_word(word))


def word_stresses(text: str, sung: int) -> tuple[tuple[int, ...], str] | None:
    """The stresses of a sung word of ``sung`` syllables (1 primary, 2 secondary, 0 none) and
    where they come from: the first CMUdict pronunciation with that many syllables
    ("cmudict"), else the spelling rules of :mod:`agent.syllables` ("rules"). None when
    neither gives ``sung`` syllables.

    >>> word_stresses("Away,", 2), word_stresses("snowdrift", 2), word_stresses("away", 3)
    (((0, 1), 'cmudict'), ((1, 0), 'rules'), None)
    """
    core = core_of(text.translate(_APOSTROPHES)).lower().strip("'")
    if not core:
        return None
    patterns = _cmu_patterns(core)
    if patterns:
        match = next((p for p in patterns if len(p) == sung), None)
        return (match, "cmudict") if match else None
    try:
        rules = split_word(core).stresses
    except ValueError:
        return None
    return (tuple(rules), "rules") if len(rules) == sung else None


def _primary(stresses: Sequence[int]) -> int | None:
    if 1 in stresses:
        return list(stresses).index(1)
    if 2 in stresses:
        return list(stresses).index(2)
    return None


# --------------------------------------------------------------------------------------------
# The measure


@dataclass(frozen=True)
class ProsodyConfig:
    """How the prosody of a song is measured."""

    short_seconds: float = field(
        default=SHORT_SECONDS,
        metadata={"help": "a syllable starting on a note shorter than this (seconds) is too short"})
    default_qpm: float = field(
        default=DEFAULT_QPM, metadata={"help": "quarter notes a minute when the tune has no Q:"})


@dataclass(frozen=True)
class SungNote:
    """One note of the sung line as the measure reads it.

    ``pitch`` is a MIDI number (None for a rest), ``strength`` music21's beat strength of its
    onset, ``seconds`` how long it sounds (with the notes tied on to it), ``tied`` True when it
    continues a tie. ``lyrics`` holds per verse the syllable sung on it, as (text, syllabic)
    with syllabic one of single/begin/middle/end, or None. ``held`` says per verse, where the
    source tells, whether a note without a syllable is sung on the one before (a ``_`` or a
    ``-`` in a ``w:`` line) rather than left without words (``*``, or after the words end).
    """

    pitch: int | None
    strength: float
    seconds: float
    tied: bool = False
    lyrics: tuple[tuple[str, str] | None, ...] = ()
    held: tuple[bool, ...] = ()


@dataclass(frozen=True)
class ProsodyReport:
    """How a song's words sit on its notes.

    ``words`` counts the polysyllabic sung words whose dictionary syllables match the sung
    ones, ``stressed_right`` those whose stressed syllable starts on a beat at least as strong
    as each of their other syllables, ``unknown_words`` those of them stressed by spelling
    rules (not in CMUdict), ``skipped_words`` polysyllabic words whose syllables did not match.
    ``misplaced`` lists the words sung against their stress, as sung ("a-WAY" style: the
    syllables joined with ``-``). ``syllables`` counts sung syllables (every verse) and
    ``short_syllables`` those on notes shorter than the short limit.
    """

    words: int = 0
    stressed_right: int = 0
    unknown_words: int = 0
    skipped_words: int = 0
    syllables: int = 0
    short_syllables: int = 0
    range_semitones: int | None = None
    longest_melisma: int = 0
    misplaced: tuple[str, ...] = ()

    @property
    def stress_share(self) -> float | None:
        """Share of checked words with the stress on the word's strongest beat."""
        return self.stressed_right / self.words if self.words else None

    @property
    def short_share(self) -> float | None:
        """Share of sung syllables that start on a note too short to sing."""
        return self.short_syllables / self.syllables if self.syllables else None

    def __add__(self, other: "ProsodyReport") -> "ProsodyReport":
        ranges = [r for r in (self.range_semitones, other.range_semitones) if r is not None]
        return ProsodyReport(
            self.words + other.words, self.stressed_right + other.stressed_right,
            self.unknown_words + other.unknown_words, self.skipped_words + other.skipped_words,
            self.syllables + other.syllables, self.short_syllables + other.short_syllables,
            max(ranges) if ranges else None, max(self.longest_melisma, other.longest_melisma),
            self.misplaced + other.misplaced)


def _words_of_verse(notes: Sequence[SungNote], verse: int) -> list[tuple[list[str], list[int]]]:
    """The words of one verse: their syllables and the notes they start on."""
    words: list[tuple[list[str], list[int]]] = []
    open_word: tuple[list[str], list[int]] | None = None
    for index, note in enumerate(notes):
        lyric = note.lyrics[verse] if verse < len(note.lyrics) else None
        if lyric is None:
            continue
        text, syllabic = lyric
        if open_word is None or syllabic in ("single", "begin"):
            if open_word is not None:
                words.append(open_word)
            open_word = ([], [])
        open_word[0].append(text)
        open_word[1].append(index)
        if syllabic in ("single", "end"):
            words.append(open_word)
            open_word = None
    if open_word is not None:
        words.append(open_word)
    return words


def _melisma(notes: Sequence[SungNote], verse: int, start: int) -> int:
    """Notes sung on the syllable that starts at ``start``: up to the next syllable or rest
    (tied continuations are one note with the note they continue)."""
    count = 1
    for note in notes[start + 1:]:
        lyric = note.lyrics[verse] if verse < len(note.lyrics) else None
        if note.pitch is None or lyric is not None:
            break
        if note.held and not (verse < len(note.held) and note.held[verse]):
            break  # left without words, not held
        if not note.tied:
            count += 1
    return count


def measure_notes(notes: Sequence[SungNote], config: ProsodyConfig = ProsodyConfig()
                  ) -> ProsodyReport:
    """The prosody report of a sung line given as :class:`SungNote` s (every verse).

    >>> n = lambda p, s, text=None, syl="single": SungNote(p, s, 0.5, lyrics=((text, syl),) if text else ())
    >>> line = [n(60, 0.25, "a", "begin"), n(62, 1.0, "way", "end"), n(64, 0.5, "home")]
    >>> r = measure_notes(line)
    >>> r.words, r.stressed_right, r.range_semitones
    (1, 1, 4)
    >>> measure_notes([]).stress_share is None
    True
    """
    verses = max((len(n.lyrics) for n in notes), default=0)
    pitches = [n.pitch for n in notes if n.pitch is not None]
    words = right = unknown = skipped = syllables = short = melisma = 0
    misplaced: list[str] = []
    for verse in range(verses):
        for pieces, starts in _words_of_verse(notes, verse):
            syllables += len(starts)
            short += sum(1 for i in starts if notes[i].seconds < config.short_seconds - 1e-9)
            melisma = max([melisma] + [_melisma(notes, verse, i) for i in starts])
            if len(starts) < 2:
                continue
            found = word_stresses("".join(pieces), len(starts))
            primary = _primary(found[0]) if found else None
            if found is None or primary is None:
                skipped += 1
                continue
            words += 1
            unknown += found[1] == "rules"
            strengths = [notes[i].strength for i in starts]
            if all(strengths[primary] >= s - 1e-9 for s in strengths):
                right += 1
            else:
                misplaced.append("-".join(p.upper() if k == primary else p
                                          for k, p in enumerate(pieces)))
    return ProsodyReport(words, right, unknown, skipped, syllables, short,
                         max(pitches) - min(pitches) if pitches else None, melisma,
                         tuple(misplaced))


def _bar_onsets(bars: Sequence[Any], section_pickups: bool = False
                ) -> dict[int, tuple[Fraction, Meter | None]]:
    """Where each timed token of the melody starts in its bar (offsets into the body).

    A short first bar is a pickup: it ends on the next downbeat. Other short bars start on one,
    as music21 reads them; with ``section_pickups`` a short bar right after a section's closing
    bar line (``:|``, ``||``, ``|]``) is a pickup too, as a musician reads a part's upbeat.
    """
    onsets: dict[int, tuple[Fraction, Meter | None]] = {}
    for index, bar in enumerate(bars):
        position = Fraction(0)
        opening = bar.opening.text if bar.opening is not None else ""
        starts_part = index == 0 or section_pickups and any(
            mark in opening for mark in (":|", "||", "|]", "::"))
        if starts_part and bar.expected and bar.duration < bar.expected:
            position = bar.expected - bar.duration
        for token in bar.tokens:
            if token.duration is not None:
                onsets[token.start] = (position, bar.meter)
                position += token.duration
    return onsets


def sung_notes(abc: str, config: ProsodyConfig = ProsodyConfig()) -> list[SungNote]:
    """The melody (the first voice with notes) of an ABC tune with its ``w:`` syllables.

    >>> notes = sung_notes("X:1\\nM:2/4\\nL:1/8\\nQ:1/4=60\\nK:C\\nz C D2-|D4|]\\nw:sing-ing\\n")
    >>> [(n.pitch, n.strength, n.seconds, n.tied, n.lyrics) for n in notes]
    ... # doctest: +NORMALIZE_WHITESPACE
    [(None, 1.0, 0.5, False, ()), (60, 0.25, 0.5, False, (('sing', 'begin'),)),
     (62, 0.5, 3.0, False, (('ing', 'end'),)), (62, 1.0, 2.0, True, (None,))]
    >>> stress_alignment("X:1\\nM:2/4\\nL:1/4\\nK:C\\nC D|E F|G A|\\nw:la_ * * la\\n").longest_melisma
    2
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice = next((t.voice for t in tokens if t.is_note), "")
    bars = [b for b in split_bars(tokens, tune) if b.voice == voice]
    onsets = _bar_onsets(bars)
    per_whole = seconds_per_whole(tune, config.default_qpm)
    aligned = abc_lyrics.align_lyrics(tokens)
    verse_of: dict[int, tuple[tuple[str, str] | None, ...]] = {}
    for index, token in enumerate(aligned.notes):
        verse_of[token.start] = tuple(
            (s.text, s.syllabic) if (s := verse[index]) is not None else None
            for verse in aligned.verses)
    held_of = _held_flags(tokens, aligned)
    timed = [t for t in tokens if t.voice == voice and (t.is_timed or t.kind is Kind.TIE)]
    notes: list[SungNote] = []
    tie_pending = False
    for token in timed:
        if token.kind is Kind.TIE:
            tie_pending = True
            continue
        onset, meter = onsets.get(token.start, (Fraction(0), None))
        strength = beat_strength(onset, meter) if meter is not None and not meter.is_free else 1.0
        seconds = float(token.duration or 0) * per_whole
        if token.kind is Kind.REST:
            notes.append(SungNote(None, strength, seconds))
            tie_pending = False
            continue
        tied = tie_pending
        tie_pending = False
        notes.append(SungNote(max(token.pitches), strength, seconds, tied,
                              verse_of.get(token.start, ()), held_of.get(token.start, ())))
    return _with_ties(notes)


def _held_flags(tokens: list[Any], aligned: abc_lyrics.Lyrics) -> dict[int, tuple[bool, ...]]:
    """Per note (token start), per verse: True when the ``w:`` line holds the syllable before
    over it (``_``, or a ``-`` of its own), False when it has a syllable, is skipped (``*``)
    or is not reached. The same walk as :func:`agent.abc_lyrics.align_lyrics`, kept here
    because that function reports syllables only."""
    bar_of: dict[int, int] = {}
    bars: dict[str, int] = {}
    for token in tokens:
        if token.kind is Kind.BAR:
            bars[token.voice] = bars.get(token.voice, 0) + 1
        elif token.is_note:
            bar_of[token.start] = bars.get(token.voice, 0)
    verses = len(aligned.verses)
    flags = {t.start: [False] * verses for t in aligned.notes}
    for line in aligned.lines:
        voice = aligned.notes[line.first_note].voice if line.first_note < len(aligned.notes) else ""
        notes = [t for t in aligned.notes[line.first_note:line.last_note] if t.voice == voice]
        cursor, last_bar = 0, None
        for event in line.events:
            if event.kind == "bar":
                if last_bar is not None:
                    while cursor < len(notes) and bar_of[notes[cursor].start] <= last_bar:
                        cursor += 1
                continue
            if cursor >= len(notes):
                break
            note = notes[cursor]
            if event.kind in ("hold", "hyphen"):
                flags[note.start][line.verse - 1] = True
            last_bar = bar_of[note.start]
            cursor += 1
    return {start: tuple(f) for start, f in flags.items()}


def _with_ties(notes: list[SungNote]) -> list[SungNote]:
    """Each note's ``seconds`` with the notes tied on to it added."""
    out = list(notes)
    for index in range(len(out) - 1, 0, -1):
        note = out[index]
        before = out[index - 1]
        if note.tied and before.pitch is not None:
            out[index - 1] = SungNote(before.pitch, before.strength, before.seconds + note.seconds,
                                      before.tied, before.lyrics, before.held)
    return out


def stress_alignment(abc: str, config: ProsodyConfig = ProsodyConfig()) -> ProsodyReport:
    """The prosody report of an ABC song (its ``w:`` lines on its melody).

    >>> r = stress_alignment("X:1\\nM:4/4\\nL:1/4\\nK:C\\nC D E F|G4|]\\nw:a-way to-mor-row\\n")
    >>> r.words, r.stressed_right, r.misplaced, r.longest_melisma
    (2, 0, ('a-WAY', 'to-MOR-row'), 1)
    >>> stress_alignment("X:1\\nM:4/4\\nL:1/4\\nK:C\\nCDEF|\\n").words
    0
    """
    return measure_notes(sung_notes(abc, config), config)


# --------------------------------------------------------------------------------------------
# The rule: which note each syllable starts on


@dataclass(frozen=True)
class PlaceConfig:
    """Costs for placing syllables on notes (lower total wins)."""

    stressed_per_level: float = field(
        default=0.6, metadata={"help": "cost per metric level a stressed syllable sits below "
                               "the downbeat (downbeat 0, half bar 1, beat 2, ...)"})
    unstressed_on_strong: float = field(
        default=0.8, metadata={"help": "cost per level an unstressed syllable of a longer word "
                               "sits above the beat level (on a downbeat: twice this)"})
    function_on_strong: float = field(
        default=0.4, metadata={"help": "the same for a function word such as 'the' or 'and'"})
    misstressed_word: float = field(
        default=4.0, metadata={"help": "cost of a word whose stressed syllable is not on its "
                               "strongest beat (what the prosody measure counts)"})
    short_note: float = field(
        default=5.0, metadata={"help": "cost of a syllable starting on a note too short to sing"})
    hold: float = field(default=0.3, metadata={"help": "cost of each extra note a syllable is "
                                               "held over"})
    hold_over_stronger: float = field(
        default=1.0, metadata={"help": "cost of holding a syllable (not the line's last) over "
                               "a beat stronger than the one it started on"})
    inner_hold: float = field(
        default=0.5, metadata={"help": "cost of a hold inside a word rather than at its end"})
    final_hold: float = field(
        default=-0.4, metadata={"help": "reward (negative cost) per note the line's last "
                                "syllable is held over: phrases end on long notes"})
    max_notes_per_syllable: int = field(
        default=MAX_NOTES_PER_SYLLABLE,
        metadata={"help": "most notes one syllable is held over, unless the words are much "
                  "shorter than the music"})
    short_seconds: float = field(default=SHORT_SECONDS,
                                 metadata={"help": "a note shorter than this is too short"})
    unsung_lead: float = field(
        default=1.5, metadata={"help": "cost per note the line leaves without words at its start "
                               "(the singer comes in after it, as on a pickup)"})
    max_unsung_lead: int = field(
        default=MAX_UNSUNG_LEAD, metadata={"help": "most notes a line may leave without words at "
                                           "its start when the words leave notes to spare"})


@dataclass(frozen=True)
class Slot:
    """A note a syllable may be sung on: ``onset`` in its bar and ``duration`` (fractions of a
    whole note), ``tied`` when it continues a tie (sung on the note before), and its beat
    ``strength`` (music21's, from the meter when None)."""

    onset: Fraction
    duration: Fraction
    tied: bool = False
    strength: float | None = None


@dataclass(frozen=True)
class Placement:
    """Words set to the notes of one phrase.

    ``starts`` gives, per syllable, the slot (index into the slots given) it starts on, as
    :func:`agent.lyrics.fit_line` places them; ``text`` is the ``w:`` text (without ``w:``).
    ``words_checked`` and ``words_right`` are the prosody measure on this placement;
    ``short_syllables`` counts syllables on notes too short to sing and ``longest_melisma`` the
    most notes one syllable takes. ``stretched`` is True when the words are so much shorter
    than the music that some syllable had to be held over more than the usual limit; ``note``
    then says so in words. ``ok`` is False (with ``reason``) when the words cannot be set.
    """

    ok: bool
    starts: tuple[int, ...] = ()
    text: str = ""
    syllables: int = 0
    notes: int = 0
    cost: float = 0.0
    words_checked: int = 0
    words_right: int = 0
    short_syllables: int = 0
    longest_melisma: int = 0
    stretched: bool = False
    note: str = ""
    reason: str = ""

    @property
    def stress_share(self) -> float | None:
        return self.words_right / self.words_checked if self.words_checked else None


@dataclass(frozen=True)
class _WordPlan:
    pieces: tuple[str, ...]
    stresses: tuple[int, ...]
    primary: int | None
    content: bool  # a monosyllable that is sung stressed (not a function word)


def _plans(words: Sequence[Word]) -> list[_WordPlan]:
    plans = []
    for word in words:
        if word.count == 1:
            plans.append(_WordPlan(word.syllables, (1,), None, word.sung_stress[0]))
        else:
            plans.append(_WordPlan(word.syllables, tuple(word.stresses),
                                   _primary(word.stresses), True))
    return plans


def _level(strength: float) -> float:
    return -math.log2(max(strength, 1e-6))


def note_slots_of(abc: str) -> list[Slot]:
    """The melody's notes as :class:`Slot` s, in order (for tests and quick settings; the lyric
    writer passes :func:`agent.lyrics.note_slots` lines, which carry the same onsets).

    >>> [(str(s.onset), s.tied) for s in note_slots_of("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC|D2-D|]\\n")]
    [('1/2', False), ('0', False), ('1/2', True)]
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice = next((t.voice for t in tokens if t.is_note), "")
    onsets = _bar_onsets([b for b in split_bars(tokens, tune) if b.voice == voice])
    slots: list[Slot] = []
    tie_pending = False
    for token in tokens:
        if token.voice != voice:
            continue
        if token.kind is Kind.TIE:
            tie_pending = True
        elif token.is_note:
            onset, meter = onsets.get(token.start, (Fraction(0), None))
            strength = beat_strength(onset, meter) if meter and not meter.is_free else 1.0
            slots.append(Slot(onset, token.duration or Fraction(0), tie_pending, strength))
            tie_pending = False
        elif token.kind is Kind.REST:
            tie_pending = False
    return slots


def _escape(text: str) -> str:
    return text.replace("-", "\\-").replace(" ", "~")


def _w_text(pieces: Sequence[tuple[str, bool]], starts: Sequence[int], total: int) -> str:
    """The ``w:`` text for syllables (text, last in its word) starting at slot ``starts`` of a
    line of ``total`` slots: ``-`` between a word's syllables, ``_`` for each note held after a
    word's end, an extra ``-`` for each held inside a word, ``*`` for notes before the first."""
    out = "* " * starts[0]
    ends = list(starts[1:]) + [total]
    for k, (text, last) in enumerate(pieces):
        held = ends[k] - starts[k] - 1
        if last:
            out += _escape(text) + "_" * held + (" " if k + 1 < len(pieces) else "")
        else:
            out += _escape(text) + "-" * (1 + held)
    return out


def place_syllables(
    words: str | Sequence[Word], slots: Sequence[Any], meter: Meter | str, *,
    qpm: float = DEFAULT_QPM, config: PlaceConfig = PlaceConfig(),
) -> Placement:
    """Choose the note each syllable of a line starts on.

    ``slots`` are the phrase's notes in order: :class:`Slot` s, or anything with ``onset``,
    ``duration`` and (optionally) ``tied`` and ``strength``, such as the slots of
    :func:`agent.lyrics.note_slots`. Tied continuations never start a syllable. The first
    syllable starts on the first free note, or (when the words leave notes to spare) up to
    ``config.max_unsung_lead`` notes later, at a cost, so that a line opening on an unstressed
    syllable can come in after a downbeat; the last is held to the end of the phrase.
    ``qpm`` is the tempo in quarter notes a minute (for the too-short rule).

    >>> slots = note_slots_of("X:1\\nM:4/4\\nL:1/8\\nK:C\\nG|c2 de f2 g2|c'8|]\\n")
    >>> p = place_syllables("Remember me", slots, "4/4")  # "mem" on the downbeat
    >>> p.text, p.starts, p.words_right
    ('Re-mem-ber_ me__', (0, 1, 2, 4), 1)
    >>> quick = note_slots_of("X:1\\nM:2/4\\nL:1/16\\nK:C\\nD|G4 A4|B8|]\\n")
    >>> place_syllables("Come home", quick, "2/4").text  # a sixteenth pickup is left unsung
    '* Come_ home'
    >>> place_syllables("", slots, "4/4").reason
    'no words to set'
    """
    word_list = split_text(words) if isinstance(words, str) else list(words)
    plans = _plans(word_list)
    free = [i for i, s in enumerate(slots) if not getattr(s, "tied", False)]
    n, m = sum(len(p.pieces) for p in plans), len(free)
    if n == 0:
        return Placement(False, notes=m, reason="no words to set")
    if n > m:
        return Placement(False, syllables=n, notes=m,
                         reason=f"{n} syllables for {m} notes: {n - m} too many")
    text_of_meter = meter_text(meter)
    strengths = [getattr(slots[i], "strength", None) for i in free]
    strengths = [s if s is not None else beat_strength(slots[free[k]].onset, text_of_meter)
                 for k, s in enumerate(strengths)]
    per_whole = 240.0 / qpm
    seconds = []
    for k, i in enumerate(free):
        end = free[k + 1] if k + 1 < m else len(slots)
        seconds.append(float(sum((slots[j].duration for j in range(i, end)), Fraction(0)))
                       * per_whole)
    # a phrase opening on notes too short to sing (a reel's quick pickup) starts on the first
    # note a syllable can be sung on, when the words leave notes to spare; the skipped notes are
    # written "*"
    skip = 0
    while (skip < MAX_SKIPPED_PICKUP and m - skip > n
           and seconds[skip] < config.short_seconds - 1e-9):
        skip += 1
    span = config.max_notes_per_syllable
    stretched = m - skip > n * span
    if stretched:
        span = math.ceil((m - skip) / n) + 1
    plan = _best_plan(plans, strengths[skip:], seconds[skip:], span, config)
    if plan is None:
        return Placement(False, syllables=n, notes=m, reason="no placement fits the notes")
    cost, positions = plan
    positions = [p + skip for p in positions]
    starts = tuple(free[p] for p in positions)
    pieces = [(piece, j == len(p.pieces) - 1) for p in plans for j, piece in enumerate(p.pieces)]
    text = _w_text(pieces, starts, len(slots))
    checked = right = 0
    k = 0
    for p in plans:
        if len(p.pieces) > 1 and p.primary is not None:
            own = [strengths[positions[k + j]] for j in range(len(p.pieces))]
            checked += 1
            right += all(own[p.primary] >= s - 1e-9 for s in own)
        k += len(p.pieces)
    ends = list(positions[1:]) + [m]
    melisma = max(b - a for a, b in zip(positions, ends))
    short = sum(1 for p in positions if seconds[p] < config.short_seconds - 1e-9)
    note = ""
    if stretched:
        note = (f"the words have {n} syllables for {m} notes, so some syllables are held over "
                f"up to {melisma} notes; they would sit better on fewer bars")
    return Placement(True, starts, text, n, m, round(cost, 6), checked, right, short, melisma,
                     stretched, note)


def _syllable_cost(plan: _WordPlan, j: int, strength: float, config: PlaceConfig) -> float:
    level = _level(strength)
    if len(plan.pieces) == 1:
        if plan.content:
            return config.stressed_per_level * level
        return config.function_on_strong * max(0.0, 2.0 - level)
    stress = plan.stresses[j]
    if stress == 1:
        return config.stressed_per_level * level
    if stress == 2:
        return 0.5 * config.stressed_per_level * level
    return config.unstressed_on_strong * max(0.0, 2.0 - level)


def _hold_cost(start: int, end: int, strengths: Sequence[float], last_in_word: bool,
               last_in_line: bool, config: PlaceConfig) -> float:
    cost = 0.0
    for t in range(start + 1, end):
        if last_in_line:
            # the line's last syllable is held to the end, but it belongs on the phrase's
            # strongest beat, not before it ("Sing a song" on C D E|F3: "song" on F)
            cost += config.final_hold
            if strengths[t] > strengths[start] + 1e-9:
                cost += config.hold_over_stronger
            continue
        cost += config.hold
        if strengths[t] > strengths[start] + 1e-9:
            cost += config.hold_over_stronger
        if not last_in_word:
            cost += config.inner_hold
    return cost


def _best_plan(plans: list[_WordPlan], strengths: list[float], seconds: list[float], span: int,
               config: PlaceConfig) -> tuple[float, list[int]] | None:
    """Least-cost start positions (indices into the free notes), by a dynamic programme over
    (word, note the word starts on); each word's syllables are placed together."""
    m = len(strengths)
    count = len(plans)
    remaining = list(itertools.accumulate((len(p.pieces) for p in reversed(plans)), initial=0))
    remaining = remaining[::-1]  # remaining[w]: syllables of words w and after

    def syllable(plan: _WordPlan, j: int, at: int) -> float:
        cost = _syllable_cost(plan, j, strengths[at], config)
        if seconds[at] < config.short_seconds - 1e-9:
            cost += config.short_note
        return cost

    @functools.lru_cache(maxsize=None)
    def best(w: int, s: int) -> tuple[float, tuple[int, ...]] | None:
        plan = plans[w]
        size = len(plan.pieces)
        last_word = w == count - 1
        found: tuple[float, tuple[int, ...]] | None = None
        for gaps in itertools.product(range(1, span + 1), repeat=size):
            positions = [s]
            for g in gaps[:-1]:
                positions.append(positions[-1] + g)
            end = positions[-1] + gaps[-1]
            if last_word and end != m:
                continue
            if not last_word and (end >= m or m - end < remaining[w + 1]):
                continue
            cost = 0.0
            ends = positions[1:] + [end]
            for j, at in enumerate(positions):
                cost += syllable(plan, j, at)
                cost += _hold_cost(at, ends[j], strengths, j == size - 1,
                                   last_word and j == size - 1, config)
            if size > 1 and plan.primary is not None:
                own = [strengths[p] for p in positions]
                if any(own[plan.primary] < x - 1e-9 for x in own):
                    cost += config.misstressed_word
            if not last_word:
                after = best(w + 1, end)
                if after is None:
                    continue
                cost += after[0]
                tail = after[1]
            else:
                tail = ()
            if found is None or cost < found[0] - 1e-9:
                found = (cost, tuple(positions) + tail)
        return found

    result = None
    for lead in range(min(config.max_unsung_lead, m - remaining[0]) + 1):
        found = best(0, lead)
        if found is not None and (result is None
                                  or found[0] + lead * config.unsung_lead < result[0] - 1e-9):
            result = (found[0] + lead * config.unsung_lead, found[1])
    return (result[0], list(result[1])) if result else None


def rank_lines(candidates: Sequence[str], slots: Sequence[Any], meter: Meter | str, *,
               qpm: float = DEFAULT_QPM, config: PlaceConfig = PlaceConfig()
               ) -> list[tuple[str, Placement]]:
    """Candidate lines of words for one phrase, best sung first: lines that fit before lines
    that do not, lines set without overlong melismas before stretched ones, then by the share
    of words stressed right, then fewer syllables on notes too short, then the placement's
    cost.

    >>> slots = note_slots_of("X:1\\nM:4/4\\nL:1/4\\nK:C\\nC D E F|G4|]\\n")
    >>> [text for text, _ in rank_lines(["a-way we go", "morning comes now"], slots, "4/4")]
    ['morning comes now', 'a-way we go']
    >>> rank_lines([], slots, "4/4")
    []
    """
    placed = [(text, place_syllables(text, slots, meter, qpm=qpm, config=config))
              for text in candidates]

    def key(item: tuple[str, Placement]) -> tuple:
        p = item[1]
        share = p.stress_share if p.stress_share is not None else 1.0
        return (not p.ok, p.stretched, -share, p.short_syllables, p.cost)

    return sorted(placed, key=key)

