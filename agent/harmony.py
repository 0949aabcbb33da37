"""Chord symbols for a melody: read, check, choose, change and remove them in the ABC text.

A tune's chords live in its melody as ABC quoted chord symbols (``"Dm"A2 B``), each written
before the note on which the chord starts, as folk tunebooks and lead sheets print them and as
every ABC tool reads them. This module:

* reads chord names (:func:`parse_chord`): what music21's ``harmony.ChordSymbol`` understands
  of the usual kinds (triads, sixths, sevenths, ninths, suspensions, slash basses) plus folk
  spellings such as a lower-case bass (``"Am/c"``); anything else ("H7", "Cmaj13#11b9") is
  refused with a line saying what is understood;
* knows each mode's chords (a dorian tune gets dorian harmony: Am, G, D in A dorian, not E7);
* chooses chords for a melody (:func:`harmonise`): a Viterbi search over the key's chords, one
  or two harmonic slots a bar as the style asks. A path of chords is scored by adding weighted
  features: how the melody's notes of each slot sit against the chord (chord tones by
  duration and beat strength, the degrees the melody dwells on, the note it starts on, the
  notes before and after), how usual the chord is in the key and at that bar of an 8-bar
  strain, and how the root moves at a change (by a fifth is cheap; a change inside a bar
  costs more). Cadence rules: the last chord is the tonic or the mode's final, the dominant
  before it where the melody allows. The same Viterbi scheme as MySong (Simon, Morris & Basu,
  CHI 2008); the weights start from values set by hand from harmony textbooks
  (:func:`hand_weights`) and were then moved toward the chords folk musicians wrote over
  half of the Nottingham Music Database by a structured perceptron
  (:mod:`finetune.harmony_train`, the learned numbers in :mod:`agent.harmony_weights`); a
  small neural network adds a score to each slot's chord on top (:mod:`agent.harmony_nodes`,
  trained by :mod:`finetune.harmony_mlp`); the other half is kept to measure on;
* writes chords into the text without touching any other byte (every edit inserts or replaces
  quoted strings at token offsets from :mod:`agent.abc_text`), and lists, sets, simplifies,
  enriches and strips them.

Why our own chord table instead of music21 at every step: the harmoniser scores thousands of
(slot, chord) pairs per tune and must answer in a few milliseconds; music21's ChordSymbol
builds pitch objects for each. The table's pitch classes are checked against music21's in the
tests.

>>> abc = "X:1\\nT:Air\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\n"
>>> result = harmonise(abc)
>>> print(result.abc.splitlines()[-1])
"D"DFA|"G"GBd|"A7"cea|"D"d3|]
>>> result.summary
'I added chords: one a bar, ending on D major.'
>>> strip_chords(result.abc) == abc
True
>>> parse_chord("H7")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agent.harmony.ChordNameError: "H7" is not a chord name I know: ...
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from agent.abc_text import (
    LETTER_SEMITONES, Bar, Kind, Token, TuneText, parse_key, parse_tune, split_bars,
    tokenize_body,
)
from agent.errors import InputError, TunesmithError

__all__ = [
    "Chord", "ChordNameError", "HarmonyError", "HarmonyConfig", "HarmonyResult", "BarChords",
    "MelodyEvent", "parse_chord", "chord_vocabulary", "slots_per_bar", "harmonise",
    "harmonise_events", "chords_in", "progression", "strip_chords", "set_chord", "simplify",
    "enrich", "melody_bars", "chord_in_force", "best_simple_triads", "MODE_STEPS",
    "section_ends", "pair_viterbi",
]

# --------------------------------------------------------------------------------------------
# Constants

#: Semitones above the tonic of each scale degree (1..7) in each mode.
MODE_STEPS = {
    "major": (0, 2, 4, 5, 7, 9, 11), "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10), "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10), "minor": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}

#: Chord kinds understood: the suffix after the root -> (semitones above the root, a name
#: for people). Several spellings of one kind map to the same intervals.
QUALITIES: dict[str, tuple[tuple[int, ...], str]] = {
    "": ((0, 4, 7), "major"), "maj": ((0, 4, 7), "major"), "M": ((0, 4, 7), "major"),
    "m": ((0, 3, 7), "minor"), "min": ((0, 3, 7), "minor"), "-": ((0, 3, 7), "minor"),
    "dim": ((0, 3, 6), "diminished"), "°": ((0, 3, 6), "diminished"),
    "o": ((0, 3, 6), "diminished"),
    "aug": ((0, 4, 8), "augmented"), "+": ((0, 4, 8), "augmented"),
    "sus4": ((0, 5, 7), "suspended fourth"), "sus": ((0, 5, 7), "suspended fourth"),
    "sus2": ((0, 2, 7), "suspended second"),
    "5": ((0, 7), "power chord"),
    "6": ((0, 4, 7, 9), "major sixth"), "m6": ((0, 3, 7, 9), "minor sixth"),
    "7": ((0, 4, 7, 10), "dominant seventh"),
    "maj7": ((0, 4, 7, 11), "major seventh"), "M7": ((0, 4, 7, 11), "major seventh"),
    "Δ": ((0, 4, 7, 11), "major seventh"), "Δ7": ((0, 4, 7, 11), "major seventh"),
    "m7": ((0, 3, 7, 10), "minor seventh"), "min7": ((0, 3, 7, 10), "minor seventh"),
    "-7": ((0, 3, 7, 10), "minor seventh"),
    "mmaj7": ((0, 3, 7, 11), "minor-major seventh"), "mM7": ((0, 3, 7, 11), "minor-major seventh"),
    "dim7": ((0, 3, 6, 9), "diminished seventh"), "°7": ((0, 3, 6, 9), "diminished seventh"),
    "o7": ((0, 3, 6, 9), "diminished seventh"),
    "m7b5": ((0, 3, 6, 10), "half-diminished seventh"),
    "ø": ((0, 3, 6, 10), "half-diminished seventh"), "ø7": ((0, 3, 6, 10), "half-diminished seventh"),
    "aug7": ((0, 4, 8, 10), "augmented seventh"), "+7": ((0, 4, 8, 10), "augmented seventh"),
    "7sus4": ((0, 5, 7, 10), "seventh, suspended fourth"), "7sus": ((0, 5, 7, 10), "seventh, suspended fourth"),
    "9": ((0, 4, 7, 10, 2), "dominant ninth"), "maj9": ((0, 4, 7, 11, 2), "major ninth"),
    "m9": ((0, 3, 7, 10, 2), "minor ninth"), "add9": ((0, 4, 7, 2), "added ninth"),
    "madd9": ((0, 3, 7, 2), "minor, added ninth"), "6/9": ((0, 4, 7, 9, 2), "six-nine"),
    "7b9": ((0, 4, 7, 10, 1), "seventh, flat ninth"),
}
#: The spelling this module writes for each kind (the shortest usual one).
WRITTEN = {"major": "", "minor": "m", "diminished": "dim", "augmented": "aug",
           "suspended fourth": "sus4", "suspended second": "sus2", "power chord": "5",
           "major sixth": "6", "minor sixth": "m6", "dominant seventh": "7",
           "major seventh": "maj7", "minor seventh": "m7", "minor-major seventh": "mmaj7",
           "diminished seventh": "dim7", "half-diminished seventh": "m7b5",
           "augmented seventh": "aug7", "seventh, suspended fourth": "7sus4",
           "dominant ninth": "9", "major ninth": "maj9", "minor ninth": "m9",
           "added ninth": "add9", "minor, added ninth": "madd9", "six-nine": "6/9",
           "seventh, flat ninth": "7b9"}
#: The triad each kind reduces to ("simpler chords").
TRIAD_OF = {"major": "major", "minor": "minor", "diminished": "diminished",
            "augmented": "augmented", "suspended fourth": "major", "suspended second": "major",
            "power chord": "major", "major sixth": "major", "minor sixth": "minor",
            "dominant seventh": "major", "major seventh": "major", "minor seventh": "minor",
            "minor-major seventh": "minor", "diminished seventh": "diminished",
            "half-diminished seventh": "diminished", "augmented seventh": "augmented",
            "seventh, suspended fourth": "major", "dominant ninth": "major",
            "major ninth": "major", "minor ninth": "minor", "added ninth": "major",
            "minor, added ninth": "minor", "six-nine": "major", "seventh, flat ninth": "major"}

_NOTE_NAMES_SHARP = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NOTE_NAMES_FLAT = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# A chord name as written above a tune ("Am7", "D/f#"), not ABC notes: the only place outside
# agent.notation that spells note letters, since a folk tunebook writes a chord's bass note
# in either case (the lower case is a common spelling of the bass, never an octave mark).
_CHORD_RE = re.compile(r"\(?(?P<root>[A-G])(?P<acc>[#b♯♭]?)(?P<quality>[^/()]*?)"
                       r"(?:\((?P<paren>[^)]*)\))?(?:/(?P<bass>[A-Ga-g])(?P<bacc>[#b♯♭+-]?))?\)?")
_KIND_WORDS = ("major", "m (minor)", "7", "maj7", "m7", "dim", "dim7", "m7b5", "aug", "sus2",
               "sus4", "6", "m6", "9", "add9", "with a bass note (G/B)")
_FINAL_WORDS = {"major": "major", "minor": "minor", "dorian": "minor", "phrygian": "minor",
                "aeolian": "minor", "mixolydian": "major", "lydian": "major",
                "locrian": "diminished"}

#: Degree index of the chord on the flattened seventh in a major key (not a scale degree).
_FLAT_SEVENTH = 7
#: Roman-numeral degrees (0-based) of the chords each mode uses, with a cost for using each
#: (lower = more usual). Folk harmony in the modes leans on I, the chord on the flat seventh
#: and IV (dorian) or v (mixolydian); minor tunes take V (major, with the raised leading
#: note) at cadences and VII / III / VI between.
_MODE_CHORDS: dict[str, tuple[tuple[int, str, float], ...]] = {
    # (degree 0-6, quality, prior cost)
    "major": ((0, "major", 0.0), (3, "major", 0.15), (4, "major", 0.1), (5, "minor", 0.45),
              (1, "minor", 0.3), (2, "minor", 0.9), (1, "major", 0.6), (2, "major", 1.2),
              (5, "major", 1.4),
              # V7 beside V: a melody on the dominant's seventh (C over D in G) is a chord tone
              # of V7, not a reason to take ii (tuning quarter: 74.4% -> 74.7% root agreement;
              # held-out half: 73.2% -> 73.1%, strong-beat chord tones 89.5% -> 90.3%)
              (4, "dominant seventh", 0.5),
              # the flat seventh's major chord (C in D), borrowed from mixolydian: folk tunes
              # in a major key often flatten the seventh for a bar or two
              (_FLAT_SEVENTH, "major", 1.2)),
    "minor": ((0, "minor", 0.0), (3, "minor", 0.35), (4, "major", 0.2), (6, "major", 0.3),
              (2, "major", 0.35), (5, "major", 0.4), (4, "minor", 0.6), (1, "diminished", 1.3)),
    "dorian": ((0, "minor", 0.0), (3, "major", 0.2), (6, "major", 0.15), (2, "major", 0.4),
               (4, "minor", 0.5), (1, "minor", 0.7)),
    "mixolydian": ((0, "major", 0.0), (6, "major", 0.15), (3, "major", 0.2), (4, "minor", 0.45),
                   (1, "minor", 0.6), (5, "minor", 0.7)),
    "phrygian": ((0, "minor", 0.0), (1, "major", 0.2), (6, "minor", 0.4), (2, "major", 0.4),
                 (5, "major", 0.5), (3, "minor", 0.6)),
    "lydian": ((0, "major", 0.0), (1, "major", 0.15), (4, "major", 0.3), (6, "minor", 0.6),
               (5, "minor", 0.5), (2, "minor", 0.7)),
    "locrian": ((0, "diminished", 0.0), (1, "major", 0.2), (4, "major", 0.3), (6, "minor", 0.3),
                (5, "major", 0.5), (3, "minor", 0.5)),
}
#: Degree (0-based) of the chord that leads to the final in each mode's cadence.
_CADENCE_DEGREE = {"major": 4, "minor": 4, "dorian": 6, "mixolydian": 6, "phrygian": 1,
                   "lydian": 1, "locrian": 1}

#: Harmonic slots a bar may hold, by style (the most changes the harmoniser considers).
_STYLE_SLOTS = {"reel": 2, "hornpipe": 2, "strathspey": 2, "polka": 1, "jig": 2,
                "single jig": 2, "slip jig": 3, "waltz": 1, "mazurka": 1, "minuet": 1,
                "march": 2, "schottische": 2, "air": 2, "ballad": 2, "song": 2, "hymn": 2,
                "lullaby": 1}


# --------------------------------------------------------------------------------------------
# Errors


class ChordNameError(InputError):
    """A chord name that is not understood."""


class HarmonyError(TunesmithError):
    """A melody the harmoniser cannot follow (no key, free meter, several voices, atonal)."""


# --------------------------------------------------------------------------------------------
# Chords


@dataclass(frozen=True)
class Chord:
    """One chord: root pitch class, kind, optional bass pitch class, and how it is written."""

    root: int
    kind: str
    bass: int | None = None
    name: str = ""

    @property
    def intervals(self) -> tuple[int, ...]:
        return next(v[0] for v in QUALITIES.values() if v[1] == self.kind)

    @property
    def pitch_classes(self) -> frozenset[int]:
        """Pitch classes of the chord (the bass included)."""
        pcs = {(self.root + step) % 12 for step in self.intervals}
        if self.bass is not None:
            pcs.add(self.bass)
        return frozenset(pcs)

    @property
    def lowest(self) -> int:
        """Pitch class a bass player plays: the slash bass, else the root."""
        return self.root if self.bass is None else self.bass

    def triad(self) -> "Chord":
        """The plain triad of this chord, without a slash bass."""
        kind = TRIAD_OF[self.kind]
        return Chord(self.root, kind, None, spell(self.root, kind, self.name[:2]))

    def words(self) -> str:
        """The chord as a musician says it: 'D minor', 'A seventh'."""
        root = self.name.split("/")[0]
        root = root[:2] if len(root) > 1 and root[1] in "#b" else root[:1]
        root = root.replace("#", " sharp").replace("b", " flat")
        kind = {"dominant seventh": "seventh"}.get(self.kind, self.kind)
        text = f"{root} {kind}"
        if self.bass is not None:
            text += f" over {_NOTE_NAMES_SHARP[self.bass]}"
        return text


def spell(root: int, kind: str, hint: str = "", flats: bool | None = None) -> str:
    """Write a chord name: root spelled as ``hint`` spells it or with sharps/flats as asked.

    >>> spell(10, "dominant seventh", flats=True), spell(1, "minor", "C#")
    ('Bb7', 'C#m')
    """
    names = _NOTE_NAMES_FLAT if flats else _NOTE_NAMES_SHARP
    if hint[:1] in LETTER_SEMITONES:
        alteration = {"#": 1, "b": -1}.get(hint[1:2], 0)
        if (LETTER_SEMITONES[hint[0]] + alteration) % 12 == root:
            return hint[0] + hint[1:2] * (alteration != 0) + WRITTEN[kind]
        names = _NOTE_NAMES_FLAT if "b" in hint[1:2] else names
    return names[root] + WRITTEN[kind]


def chord_name_of_figure(figure: str) -> str:
    """A music21 chord symbol's figure as a chord name: music21 spells flats with ``-``
    ("E-", "B-7/D-"), which in a chord name reads as minor ("C-" is C minor in jazz).

    >>> chord_name_of_figure("E-"), chord_name_of_figure("B-7/D-"), chord_name_of_figure("F#m")
    ('Eb', 'Bb7/Db', 'F#m')
    """
    return re.sub(r"(?<=[A-G])-+", lambda match: "b" * len(match.group()), figure)


def parse_chord(name: str) -> Chord:
    """Read a chord name such as ``Am``, ``D7``, ``Bbmaj7``, ``G/B`` or the folk ``Am/c``.

    >>> chord = parse_chord("F#m7/A")
    >>> chord.root, chord.kind, chord.bass, sorted(chord.pitch_classes)
    (6, 'minor seventh', 9, [1, 4, 6, 9])
    >>> parse_chord("(Em)").kind
    'minor'
    >>> parse_chord("Cmaj13#11b9")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.harmony.ChordNameError: "Cmaj13#11b9" is not a chord name I know: ...
    """
    text = name.strip().strip('"')
    match = _CHORD_RE.fullmatch(text)
    quality = None
    if match:
        quality = (match.group("quality") or "") + (
            f"({match.group('paren')})" if match.group("paren") else "")
        quality = quality.replace("(", "").replace(")", "") if quality.startswith("7(") else quality
    if not match or quality not in QUALITIES:
        raise ChordNameError(
            f'"{text}" is not a chord name I know: I understand a root A to G (with # or b) '
            f"followed by one of {', '.join(_KIND_WORDS)}")
    accidental = {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(match.group("acc"), 0)
    root = (LETTER_SEMITONES[match.group("root")] + accidental) % 12
    bass = None
    if match.group("bass"):
        bass_acc = {"#": 1, "♯": 1, "+": 1, "b": -1, "♭": -1, "-": -1}.get(match.group("bacc"), 0)
        bass = (LETTER_SEMITONES[match.group("bass").upper()] + bass_acc) % 12
    return Chord(root, QUALITIES[quality][1], bass, text)


def is_chord_name(text: str) -> bool:
    """Whether a quoted string's text is a chord name (not an annotation like "D.C.").

    >>> is_chord_name("Am/c"), is_chord_name("D.C.")
    (True, False)
    """
    try:
        parse_chord(text)
    except ChordNameError:
        return False
    return True


def chord_vocabulary(tonic: str, mode: str) -> list[tuple[Chord, float, int]]:
    """The chords a tune in ``tonic`` ``mode`` uses, each with its cost and scale degree.

    >>> [c.name for c, _, _ in chord_vocabulary("A", "dorian")]
    ['Am', 'D', 'G', 'C', 'Em', 'Bm']
    >>> chord_vocabulary("A", "bebop")
    Traceback (most recent call last):
    ...
    agent.harmony.HarmonyError: I cannot harmonise in the mode 'bebop'
    """
    mode = {"ionian": "major", "aeolian": "minor"}.get(mode, mode)
    if mode not in _MODE_CHORDS:
        raise HarmonyError(f"I cannot harmonise in the mode {mode!r}")
    tonic_pc = (LETTER_SEMITONES[tonic[0]] + {"#": 1, "b": -1}.get(tonic[1:2], 0)) % 12
    flats = _prefers_flats(tonic, mode)
    steps = MODE_STEPS[mode]
    chords = []
    for degree, kind, cost in _MODE_CHORDS[mode]:
        root = (tonic_pc + (10 if degree == _FLAT_SEVENTH else steps[degree])) % 12
        if degree == 4 and mode == "minor" and kind == "major":
            pass  # V in minor: the harmonic-minor dominant, a cadence chord
        chords.append((Chord(root, kind, None, spell(root, kind, flats=flats)), cost, degree))
    return chords


def _prefers_flats(tonic: str, mode: str) -> bool:
    """Whether the key signature of ``tonic`` ``mode`` has flats (then chords are spelled so)."""
    fifths = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}[tonic[0]]
    fifths += 7 * {"#": 1, "b": -1}.get(tonic[1:2], 0)
    fifths += {"major": 0, "minor": -3, "dorian": -2, "phrygian": -4, "lydian": 1,
               "mixolydian": -1, "locrian": -5}[mode]
    return fifths < 0


# --------------------------------------------------------------------------------------------
# Settings and results


@dataclass(frozen=True)
class HarmonyConfig:
    """Settings of the harmoniser."""

    style: str | None = field(default=None, metadata={
        "help": "style name from agent.styles (waltz, reel, jig, air, ...); None: from the "
                "tune's R: field, title and meter"})
    slots_per_bar: int | None = field(default=None, metadata={
        "help": "most chord changes a bar may hold; None: from the style (waltz 1, reel 2)"})
    replace: bool = field(default=False, metadata={
        "help": "replace chords the tune already has (by default a musician's chords stay)"})
    weights: tuple[tuple[str, float], ...] | None = field(default=None, metadata={
        "help": "weights of the chord scorer's features as (name, weight) pairs; None: the "
                "table in agent.harmony_weights (set from chord-labelled folk tunes by "
                "finetune.harmony_train); a feature the table lacks keeps its hand-set value"})
    decoding: str = field(default="viterbi", metadata={
        "help": "'viterbi': the highest-scoring path of chords (what the learned table was "
                "trained for); 'marginal': each slot takes the chord root likeliest over all "
                "paths (forward-backward; for weights trained as a CRF)"})
    min_scale_share: float = field(default=0.6, metadata={
        "help": "least share of the melody's notes (by duration) in the key's scale; below it "
                "the melody is not tonal enough to harmonise"})
    sevenths: bool = field(default=False, metadata={
        "help": "write the dominant as a seventh chord (V7) where the melody allows"})
    scorer: str = field(default="network", metadata={
        "help": "'network': the linear scores plus a small neural network's score of each "
                "(slot, chord) (agent.harmony_nodes, trained on top of the learned table: "
                "used with Viterbi decoding and weights None); 'linear': the weighted "
                "features alone"})


@dataclass(frozen=True)
class BarChords:
    """The chords of one bar: ``bar`` as the score numbers it (a pickup is 0), and each chord
    with its onset in the bar (a fraction of a whole note)."""

    bar: int
    chords: tuple[tuple[Fraction, str], ...]


@dataclass(frozen=True)
class HarmonyResult:
    """The harmonised tune, its chords bar by bar, and one sentence for the reply."""

    abc: str
    bars: tuple[BarChords, ...]
    summary: str
    changed: bool = True


@dataclass(frozen=True)
class MelodyEvent:
    """One note (or rest: ``pitches`` empty) of the melody, placed in its bar."""

    onset: Fraction       # from the start of the bar, in whole notes
    duration: Fraction
    pitches: tuple[int, ...]
    token: int = -1       # index of the token in the tune's token list (-1 if not from ABC)


# --------------------------------------------------------------------------------------------
# Reading the melody


@dataclass(frozen=True)
class _Melody:
    tune: TuneText
    tokens: list[Token]
    bars: list[Bar]
    events: list[list[MelodyEvent]]
    first_shown: int
    pickups: frozenset[int]  # indices of bars that lead into a section: no chord of their own
    keys: list[tuple[str | None, str | None]]  # (tonic, mode) in force at each bar's start


_SECTION_MARK = re.compile(r":|\|\||\|\]|\[\|")


def _pickups(bars: list[Bar]) -> frozenset[int]:
    """Short bars that open the tune or a section (after a repeat or double bar) and lead
    into a full bar: upbeats, which tunebooks leave without a chord."""
    found = set()
    for index, bar in enumerate(bars[:-1]):
        short = bar.expected is not None and bar.duration < bar.expected
        opens = index == 0 or (bar.opening is not None and _SECTION_MARK.search(bar.opening.text))
        if short and opens and bars[index + 1].is_full and bar.ending is None:
            found.add(index)
    return frozenset(found)


def _read(abc: str) -> _Melody:
    if not isinstance(abc, str) or not abc.strip():
        raise InputError("there is no tune (the ABC text is empty)")
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voices = list(dict.fromkeys(t.voice for t in tokens if t.is_timed))
    if len(voices) > 1:
        raise HarmonyError(f"the tune has {len(voices)} voices already; I add chords to a "
                           "single melody")
    bars = [bar for bar in split_bars(tokens, tune) if bar.notes or any(
        t.kind is Kind.REST for t in bar.tokens)]
    if not bars:
        raise HarmonyError("the tune has no notes to harmonise")
    index_of = {token.start: i for i, token in enumerate(tokens)}
    events = []
    for bar in bars:
        onset = Fraction(0)
        bar_events = []
        overlay = False
        for token in bar.tokens:
            if token.kind is Kind.OVERLAY:
                overlay = True
            if overlay or token.duration is None or not token.is_timed:
                continue
            pitches = token.pitches if token.is_note else ()
            bar_events.append(MelodyEvent(onset, token.duration, pitches,
                                          index_of[token.start]))
            onset += token.duration
        events.append(bar_events)
    first = bars[0]
    first_shown = 0 if first.expected is not None and first.duration < first.expected else 1
    return _Melody(tune, tokens, bars, events, first_shown, _pickups(bars),
                   _bar_keys(tune, tokens, bars))


def _bar_keys(tune: TuneText, tokens: list[Token], bars: list[Bar]
              ) -> list[tuple[str | None, str | None]]:
    """The key in force where each bar's first note starts (K: lines and [K:] fields in the
    body change it)."""
    key = tune.key
    changes = []
    for token in tokens:
        text = token.text
        if token.kind is Kind.FIELD and text.startswith("K:") or (
                token.kind is Kind.INLINE_FIELD and text.startswith("[K:")):
            value = text[2:] if token.kind is Kind.FIELD else text[3:-1]
            try:
                key = parse_key(value, previous=key)
            except TunesmithError:
                continue
            changes.append((token.start, key))
    out = []
    for bar in bars:
        found = tune.key
        for start, changed in changes:
            if start <= (bar.notes[0].start if bar.notes else bar.start):
                found = changed
        mode = {"ionian": "major", "aeolian": "minor"}.get(found.mode, found.mode)
        out.append((found.tonic, mode))
    return out


def melody_bars(abc: str) -> list[list[MelodyEvent]]:
    """The melody's notes and rests bar by bar (bars as written), for the harmoniser.

    >>> [[(str(e.onset), e.pitches) for e in bar] for bar in melody_bars("X:1\\nL:1/4\\nM:2/4\\nK:C\\nCz|E2|]")]
    [[('0', (60,)), ('1/4', ())], [('0', (64,))]]
    """
    return _read(abc).events


# --------------------------------------------------------------------------------------------
# Scoring


def _strength(onset: Fraction, bar_length: Fraction, beat: Fraction) -> float:
    """How strong a position in the bar is: 1 on the downbeat, less on later beats and less
    again between beats (the usual metrical hierarchy)."""
    if onset == 0:
        return 1.0
    beats = bar_length / beat
    if onset % beat == 0:
        if beats == 4 and onset == bar_length / 2:
            return 0.6
        return 0.45
    if onset % (beat / (3 if beat.numerator == 3 else 2)) == 0:
        return 0.2
    return 0.1


def _slot_fit(events: list[tuple[MelodyEvent, float]], chord: Chord, scale: frozenset[int],
              start_pc: int | None) -> float:
    """How well a chord fits the melody notes of a slot: from -1 (nothing fits) to about 1.

    Chord tones count +1, other notes of the scale -0.6 times how strong their beat is (a
    passing note on a weak beat hardly counts against a chord), notes outside the scale
    -0.5; each note weighs its duration times (1 + 2 x beat strength). The note on which the
    slot starts being the root or the third adds a little.
    """
    pcs = chord.pitch_classes
    total = 0.0
    weight_sum = 0.0
    for event, strength in events:
        if not event.pitches:
            continue
        weight = float(event.duration) * (1 + 2 * strength)
        pc = event.pitches[0] % 12
        if pc in pcs:
            score = 1.0
        elif pc in scale:
            score = -0.2 - 0.8 * strength
        else:
            score = -0.5
        total += weight * score
        weight_sum += weight
    if weight_sum == 0:
        return 0.0
    fit = total / weight_sum
    if start_pc is not None and start_pc in (chord.root, (chord.root + chord.intervals[1]) % 12):
        fit += 0.05
    return fit


# --------------------------------------------------------------------------------------------
# The chord scorer: features of a (slot, chord) and of a chord change, and their weights

#: A letter for each chord kind the vocabularies use, in feature names ("major:4M").
_KIND_LETTER = {"major": "M", "minor": "m", "diminished": "d", "dominant seventh": "7"}
#: Hand-set cost of the root moving by each interval (semitones up): down a fifth is the most
#: usual move in folk and common-practice harmony, a tritone the least.
_MOTION_COST = {5: 0.0, 7: 0.15, 2: 0.2, 10: 0.2, 9: 0.3, 3: 0.3, 4: 0.35, 8: 0.35, 0: 0.25,
                1: 0.6, 11: 0.6, 6: 0.8}
#: Bars of the phrase grid in which a bar's position is counted (folk dance tunes are built
#: of 8-bar strains: the tonic opens them, the dominant half-way, the tonic closes them).
PHRASE_BARS = 8
#: Optional groups of features the scorer can add to the base set (each was tried by
#: cross-validation inside the training half, see finetune.harmony_train ``--cv``):
#: ``meter``: a prior per chord and bar length (waltz, jig, reel, hornpipe differ);
#: ``context``: the key degree the next slot starts on and the one the previous slot ends
#: on, per chord (a V bar often leads to a downbeat on the tonic);
#: ``last``: the degree a slot ends on, per chord (the leading note before the tonic);
#: ``stay``: keeping a chord into the next slot or bar, per chord (the tonic lingers,
#: the dominant moves on);
#: ``mid``: a chord that starts inside a bar, per chord (mid-bar chords are mostly V and IV);
#: ``strain``: the bar's place in a 16-bar section and the last bar before a section ends.
#: ``beats``: the key degree sounding on each beat of the bar, per chord.
#: ``second``: the chords of the two slots before and this one's (``tri:a>b>c``, in one
#: key): a second-order term, decoded by Viterbi over pairs of chords;
#: ``motion2``: the two root motions into this slot (``m2:x>y``, 0 for a held chord), also
#: second-order (ii-V-I is 5>5 in any key);
#: ``bar``: the whole bar's weighted key degrees and chord-tone share against each slot's
#: chord (a mid-bar slot sees the bar it lies in);
#: ``cadence``: the section ends the bar lines mark (``:|``, ``||``, ``|]``): the chord
#: opening a section's last bar, the one on its last slot and the one opening the bar before;
#: ``ahead``: the degree the slot after next starts on and the slot two back ends on.
FEATURE_GROUPS_ALL = ("meter", "context", "last", "stay", "mid", "strain", "beats", "second",
                      "motion2", "bar", "cadence", "ahead")
#: The groups whose features depend on three slots' chords (the Viterbi then runs over pairs).
SECOND_ORDER = frozenset({"second", "motion2"})
#: The groups the harmoniser uses, chosen by 2-fold cross-validation inside the training
#: half (docs/benchmarks.md): ``context`` alone (75.9% bar root agreement against 75.2%
#: without; every other group and mix scored lower, or, for the groups from ``second`` on,
#: no higher than the 0.2-point noise between seeds).
FEATURE_GROUPS: frozenset[str] = frozenset({"context"})


def _label(mode: str, degree: int, kind: str) -> str:
    return f"{mode}:{degree}{_KIND_LETTER[kind]}"


def hand_weights() -> dict[str, float]:
    """The scorer's hand-set weights: the starting point of :mod:`finetune.harmony_train` and
    the value of any feature the learned table lacks (the modes the training tunes lack).

    Scores are added along a path of chords and the highest total wins. Note features are
    shares of the slot's weighted melody (each note weighs its duration times (1 + 2 x beat
    strength)): chord tones (``ct``), the same times beat strength (``ct_strong``), scale
    notes outside the chord (``nct``, ``nct_strong``), notes outside the scale (``out``),
    chord tones outside the scale (``chroma``: the raised note of a secondary dominant).

    >>> w = hand_weights()
    >>> w["ct"], w["prior:major:0M"], w["motion:5"]
    (3.0, -0.0, -0.0)
    """
    weights = {"ct": 3.0, "ct_strong": 0.0, "nct": -0.6, "nct_strong": -2.4, "out": -1.5,
               "chroma": 0.0, "first_root": 0.15, "first_third": 0.15, "first_fifth": 0.0,
               "first_other": 0.0, "change": -0.2, "mid_change": -0.15}
    for motion, cost in _MOTION_COST.items():
        weights[f"motion:{motion}"] = -cost
    for mode, chords in _MODE_CHORDS.items():
        for degree, kind, cost in chords:
            weights[f"prior:{_label(mode, degree, kind)}"] = -cost
        degree, kind, _ = next(c for c in chords if c[0] == _CADENCE_DEGREE[mode])
        weights[f"before_final:{_label(mode, degree, kind)}"] = 0.4
    return weights


def _weights(config: "HarmonyConfig") -> dict[str, float]:
    weights = hand_weights()
    if config.weights is None:
        from agent.harmony_weights import WEIGHTS

        weights.update(WEIGHTS)
    else:
        weights.update(dict(config.weights))
    return weights


def _note_features(weighted: list[tuple[MelodyEvent, float]], chord: Chord,
                   scale: frozenset[int], tonic: int, label: str) -> dict[str, float]:
    """How the melody notes of one slot sit against a chord (see :func:`hand_weights`), and
    which degrees of the key the melody dwells on under this chord (``deg``: weighted share
    of each degree, ``first``: the degree the slot starts on), each per chord."""
    pcs = chord.pitch_classes
    degrees: dict[str, float] = {}
    sums = {"ct": 0.0, "ct_strong": 0.0, "nct": 0.0, "nct_strong": 0.0, "out": 0.0,
            "chroma": 0.0}
    total = 0.0
    first = None
    for event, strength in weighted:
        if not event.pitches:
            continue
        weight = float(event.duration) * (1 + 2 * strength)
        pc = event.pitches[0] % 12
        if first is None:
            first = pc
            degrees[f"first{(pc - tonic) % 12}:{label}"] = 1.0
        name = f"deg{(pc - tonic) % 12}:{label}"
        degrees[name] = degrees.get(name, 0.0) + weight
        name = f"sdeg{(pc - tonic) % 12}:{label}"
        degrees[name] = degrees.get(name, 0.0) + weight * strength
        name = f"rel{(pc - chord.root) % 12}"
        degrees[name] = degrees.get(name, 0.0) + weight * strength
        total += weight
        if pc in pcs:
            sums["ct"] += weight
            sums["ct_strong"] += weight * strength
            if pc not in scale:
                sums["chroma"] += weight
        elif pc in scale:
            sums["nct"] += weight
            sums["nct_strong"] += weight * strength
        else:
            sums["out"] += weight
    if not total:
        return {}
    features = {name: value / total for name, value in sums.items() if value}
    features.update((name, value if name.startswith("first") else value / total)
                    for name, value in degrees.items())
    relation = (first - chord.root) % 12
    name = {0: "first_root", 3: "first_third", 4: "first_third", 7: "first_fifth"}.get(
        relation, "first_other" if first in pcs else None)
    if name:
        features[name] = 1.0
    return features


def _change_features(a: tuple[Chord, str], b: tuple[Chord, str], same_bar: bool,
                     same_key: bool, meter: str = "", stay: bool = False) -> dict[str, float]:
    """Features of moving from chord ``a`` to ``b`` (none for staying put, unless ``stay``:
    then the chord kept, inside the bar or into the next); a change inside a bar also counts
    per meter (reels and hornpipes change mid-bar more than jigs)."""
    if a[0] == b[0]:
        if stay and same_key:
            return {f"stay{'_mid' if same_bar else ''}:{b[1]}": 1.0}
        return {}
    features = {"change": 1.0, f"motion:{(b[0].root - a[0].root) % 12}": 1.0}
    if same_bar:
        features["mid_change"] = 1.0
        features[f"mid_change:{meter}"] = 1.0
    if same_key:
        features[f"pair:{a[1]}>{b[1]}"] = 1.0
    return features


def _triple_features(a: tuple[Chord, str], b: tuple[Chord, str], c: tuple[Chord, str],
                     same_key: bool, groups: frozenset[str]) -> dict[str, float]:
    """Second-order features of the chords of three slots in a row (``second``: the three
    chords, in one key; ``motion2``: the two root motions).

    >>> d, a, g = parse_chord("D"), parse_chord("A"), parse_chord("G")
    >>> _triple_features((g, "major:3M"), (a, "major:4M"), (d, "major:0M"), True,
    ...                  frozenset({"second", "motion2"}))
    {'tri:major:3M>major:4M>major:0M': 1.0, 'm2:2>5': 1.0}
    >>> _triple_features((g, "major:3M"), (a, "major:4M"), (d, "major:0M"), False, frozenset())
    {}
    """
    features = {}
    if "second" in groups and same_key:
        features[f"tri:{a[1]}>{b[1]}>{c[1]}"] = 1.0
    if "motion2" in groups:
        features[f"m2:{(b[0].root - a[0].root) % 12}>{(c[0].root - b[0].root) % 12}"] = 1.0
    return features


def _dot(weights: dict[str, float], features: dict[str, float]) -> float:
    return sum(weights.get(name, 0.0) * value for name, value in features.items())


@dataclass
class _Lattice:
    """Every slot of a melody with the chords it may take and their features (the features
    do not depend on the weights, so training decodes one lattice many times)."""

    plan: list[tuple[int, Fraction]]             # (bar index, onset) of each slot
    keys: list[tuple[str, str]]                  # the key of each slot
    states: list[list[tuple[Chord, str]]]        # (chord, feature label) per slot
    emissions: list[list[dict[str, float]]]      # features of each (slot, chord)
    meter: str = ""                              # the bar's length, as "3/4"
    changes: dict[tuple, list[list[dict[str, float]]]] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()         # optional feature groups in use
    triples: dict[tuple, list] = field(default_factory=dict)

    @property
    def second_order(self) -> bool:
        """Whether a slot's score depends on the chords of the two slots before it."""
        return bool(self.groups & SECOND_ORDER)

    def triple_table(self, position: int) -> list[list[list[dict[str, float]]]]:
        """Features of each (chord two slots back, previous chord, chord) into ``position``
        (second-order groups only)."""
        key = tuple(self.keys[position - 2:position + 1])
        if key not in self.triples:
            same_key = key[0] == key[1] == key[2]
            groups = self.groups & SECOND_ORDER
            self.triples[key] = [[[_triple_features(a, b, c, same_key, groups)
                                   for c in self.states[position]]
                                  for b in self.states[position - 1]]
                                 for a in self.states[position - 2]]
        return self.triples[key]

    def change_table(self, position: int) -> list[list[dict[str, float]]]:
        """Features of each (previous chord, chord) pair into slot ``position``."""
        same_bar = self.plan[position][0] == self.plan[position - 1][0]
        key = (self.keys[position - 1], self.keys[position], same_bar)
        if key not in self.changes:
            same_key = key[0] == key[1]
            self.changes[key] = [[_change_features(a, b, same_bar, same_key, self.meter,
                                                   "stay" in self.groups)
                                  for b in self.states[position]]
                                 for a in self.states[position - 1]]
        return self.changes[key]


def _lattice(bars: list[list[MelodyEvent]], bar_length: Fraction, beat: Fraction, slots: int,
             skip: frozenset[int], keys: list[tuple[str, str]],
             groups: frozenset[str] | None = None, ends: frozenset[int] = frozenset()
             ) -> _Lattice:
    groups = FEATURE_GROUPS if groups is None else frozenset(groups)
    unknown = groups - set(FEATURE_GROUPS_ALL)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; known: {FEATURE_GROUPS_ALL}")
    tables = {}
    for key in set(keys):
        key_mode = {"ionian": "major", "aeolian": "minor"}.get(key[1], key[1])
        vocabulary = chord_vocabulary(key[0], key_mode)
        root = vocabulary[0][0].root
        tables[key] = ([(chord, _label(key_mode, degree, chord.kind))
                        for chord, _, degree in vocabulary],
                       frozenset((root + step) % 12 for step in MODE_STEPS[key_mode]), root)
    meter = f"{bar_length.numerator}/{bar_length.denominator}"
    lattice = _Lattice([], [], [], [], meter, groups=groups)
    counted = 0
    sounding: list[list[int]] = []  # pitch classes of each slot's notes
    tonics: list[int] = []          # the tonic's pitch class at each slot
    used = [index for index, bar in enumerate(bars) if index not in skip and bar]
    before_end = {used[n - 1] for n in range(1, len(used)) if used[n] in ends}
    for index, bar in enumerate(bars):
        if index in skip or not bar:
            continue
        phrase = counted % PHRASE_BARS
        strain = counted % (2 * PHRASE_BARS)
        counted += 1
        cut = _slots(bar, bar_length, slots)
        whole = [(e, _strength(e.onset, bar_length, beat)) for e in bar] if "bar" in groups \
            else []
        for number, (start, inside) in enumerate(cut):
            weighted = [(e, _strength(e.onset, bar_length, beat)) for e in inside]
            states, scale, tonic_pc = tables[keys[index]]
            rows = []
            for chord, label in states:
                features = _note_features(weighted, chord, scale, tonic_pc, label)
                if whole:
                    features.update(_bar_profile(whole, chord, tonic_pc, label))
                if "cadence" in groups:
                    if index in ends and start == 0:
                        features[f"endbar:{label}"] = 1.0
                    if index in ends and number == len(cut) - 1:
                        features[f"end:{label}"] = 1.0
                    if index in before_end and start == 0:
                        features[f"preend:{label}"] = 1.0
                features[f"prior:{label}"] = 1.0
                if start == 0:
                    features[f"bar{phrase}:{label}"] = 1.0
                    if "strain" in groups:
                        features[f"strain{strain}:{label}"] = 1.0
                elif "mid" in groups:
                    features[f"mid:{label}"] = 1.0
                if "meter" in groups:
                    features[f"meter{meter}:{label}"] = 1.0
                if "beats" in groups:
                    for event in inside:
                        if event.pitches and event.onset % beat == 0:
                            degree = (event.pitches[0] - tonic_pc) % 12
                            features[f"beat{event.onset // beat}deg{degree}:{label}"] = 1.0
                rows.append(features)
            sounding.append([e.pitches[0] % 12 for e in inside if e.pitches])
            tonics.append(tonic_pc)
            lattice.plan.append((index, start))
            lattice.keys.append(keys[index])
            lattice.states.append(states)
            lattice.emissions.append(rows)
    if not lattice.plan:
        raise HarmonyError("the tune has no notes to harmonise")
    if len(lattice.plan) > 1:
        for features, (_, label) in zip(lattice.emissions[-2], lattice.states[-2]):
            features[f"before_final:{label}"] = 1.0
    _add_neighbours(lattice, sounding)
    if groups & {"context", "last", "strain", "ahead"}:
        _add_context(lattice, sounding, tonics, groups)
    return lattice


def _add_context(lattice: _Lattice, sounding: list[list[int]], tonics: list[int],
                 groups: frozenset[str]) -> None:
    """Optional features of a slot's surroundings, per chord: the key degree the next slot
    starts on and the previous slot ends on (``context``), the degree the slot ends on
    (``last``), and the bar before a section's last (``strain``)."""
    bar_starts = [p for p, (_, onset) in enumerate(lattice.plan) if onset == 0]
    penultimate = set(bar_starts[-2:-1])
    for position, rows in enumerate(lattice.emissions):
        tonic = tonics[position]
        after = sounding[position + 1][:1] if position + 1 < len(sounding) else []
        before = sounding[position - 1][-1:] if position else []
        last = sounding[position][-1:]
        after2 = sounding[position + 2][:1] if position + 2 < len(sounding) else []
        before2 = sounding[position - 2][-1:] if position > 1 else []
        for (_, label), features in zip(lattice.states[position], rows):
            if "ahead" in groups:
                for pc in after2:
                    features[f"next2deg{(pc - tonic) % 12}:{label}"] = 1.0
                for pc in before2:
                    features[f"prev2deg{(pc - tonic) % 12}:{label}"] = 1.0
            if "context" in groups:
                for pc in after:
                    features[f"nextdeg{(pc - tonic) % 12}:{label}"] = 1.0
                for pc in before:
                    features[f"prevdeg{(pc - tonic) % 12}:{label}"] = 1.0
            if "last" in groups:
                for pc in last:
                    features[f"lastdeg{(pc - tonic) % 12}:{label}"] = 1.0
            if "strain" in groups and position in penultimate:
                features[f"penult:{label}"] = 1.0


def _bar_profile(whole: list[tuple[MelodyEvent, float]], chord: Chord, tonic: int,
                 label: str) -> dict[str, float]:
    """The whole bar's key degrees (``bdeg``) and chord-tone share (``barct``), each note
    weighted as in :func:`_note_features`, against one slot's chord."""
    degrees: dict[str, float] = {}
    total = tones = 0.0
    for event, strength in whole:
        if not event.pitches:
            continue
        weight = float(event.duration) * (1 + 2 * strength)
        pc = event.pitches[0] % 12
        name = f"bdeg{(pc - tonic) % 12}:{label}"
        degrees[name] = degrees.get(name, 0.0) + weight
        total += weight
        tones += weight if pc in chord.pitch_classes else 0.0
    if not total:
        return {}
    out = {name: value / total for name, value in degrees.items()}
    out["barct"] = tones / total
    return out


def section_ends(bars: list[Bar]) -> frozenset[int]:
    """Indices of the bars that close a section: a repeat sign, a double or final bar line
    after them (or a repeat starting next), and the last bar.

    >>> m = _read("X:1\\nM:2/4\\nL:1/4\\nK:C\\nCD|EF:|GA|Bc||cB|AG|]\\n")
    >>> sorted(section_ends(m.bars))
    [1, 3, 5]
    """
    out = {len(bars) - 1} if bars else set()
    for index, bar in enumerate(bars):
        closing = bar.bar_line is not None and _SECTION_MARK.search(bar.bar_line.text)
        following = index + 1 < len(bars) and bars[index + 1].starts_repeat
        if closing or following:
            out.add(index)
    return frozenset(out)


def _add_neighbours(lattice: _Lattice, sounding: list[list[int]]) -> None:
    """The note before a slot and the note after it, each against the slot's chord root (a
    chord is often chosen for where the melody comes from and goes to)."""
    for position, (states, rows) in enumerate(zip(lattice.states, lattice.emissions)):
        before = sounding[position - 1][-1:] if position else []
        after = sounding[position + 1][:1] if position + 1 < len(sounding) else []
        for (chord, _), features in zip(states, rows):
            for name, pcs in (("prev", before), ("next", after)):
                for pc in pcs:
                    features[f"{name}{(pc - chord.root) % 12}"] = 1.0


def _best_path(lattice: _Lattice, weights: dict[str, float],
               fixed: list[frozenset[int] | None] | None = None,
               bonus: list | None = None) -> list[int]:
    """The highest-scoring chord of each slot (Viterbi); the last slot takes the key's tonic
    chord. ``fixed``: per slot, the only chords allowed (None: any), for training;
    ``bonus``: per slot, a score added to each chord's (the node network's)."""
    if lattice.second_order:
        return _best_pair_path(lattice, weights, fixed)

    def allowed(position: int, state: int) -> bool:
        if position == len(lattice.plan) - 1 and state != 0:
            return False
        return fixed is None or fixed[position] is None or state in fixed[position]

    def node(position: int, state: int, features: dict[str, float]) -> float:
        extra = 0.0 if bonus is None else float(bonus[position][state])
        return _dot(weights, features) + extra

    best = [node(0, i, f) if allowed(0, i) else -math.inf
            for i, f in enumerate(lattice.emissions[0])]
    back: list[list[int]] = []
    scored: dict[int, list[list[float]]] = {}  # change scores, per distinct table
    for position in range(1, len(lattice.plan)):
        table = lattice.change_table(position)
        if id(table) not in scored:
            scored[id(table)] = [[_dot(weights, f) for f in row] for row in table]
        scores = scored[id(table)]
        row, pointers = [], []
        for state, features in enumerate(lattice.emissions[position]):
            if not allowed(position, state):
                row.append(-math.inf)
                pointers.append(0)
                continue
            choice = max(range(len(best)), key=lambda p: best[p] + scores[p][state])
            row.append(best[choice] + scores[choice][state] + node(position, state, features))
            pointers.append(choice)
        best = row
        back.append(pointers)
    state = max(range(len(best)), key=lambda i: best[i])
    path = [state]
    for pointers in reversed(back):
        state = pointers[state]
        path.append(state)
    return path[::-1]


def pair_viterbi(emit: list, moves: list, triples: list) -> list[int]:
    """The best path of a second-order chain (Viterbi over pairs of states), with numpy.

    ``emit[p]``: score of each state at ``p`` (-inf: not allowed); ``moves[p]``: of each
    (state at p-1, state at p), ``triples[p]``: of each (p-2, p-1, p), from p = 1 and 2 on.

    >>> import numpy as np
    >>> e = [np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0])]
    >>> m = [None, np.zeros((2, 2)), np.zeros((2, 2))]
    >>> t = np.zeros((2, 2, 2)); t[1, 0, 1] = 1.0
    >>> pair_viterbi(e, m, [None, None, t])
    [1, 0, 1]
    """
    import numpy as np

    if len(emit) == 1:
        return [int(np.argmax(emit[0]))]
    delta = emit[0][:, None] + moves[1] + emit[1][None, :]
    back = []
    for position in range(2, len(emit)):
        scores = delta[:, :, None] + triples[position]
        choice = scores.argmax(axis=0)
        best = np.take_along_axis(scores, choice[None], axis=0)[0]
        delta = best + moves[position] + emit[position][None, :]
        back.append(choice)
    j, k = np.unravel_index(int(np.argmax(delta)), delta.shape)
    path = [int(k), int(j)]
    for choice in reversed(back):
        j, k = int(choice[j, k]), j
        path.append(j)
    return path[::-1]


def _best_pair_path(lattice: _Lattice, weights: dict[str, float],
                    fixed: list[frozenset[int] | None] | None = None) -> list[int]:
    """:func:`_best_path` for a lattice with second-order features."""
    import numpy as np

    last = len(lattice.plan) - 1
    emit = []
    for position, rows in enumerate(lattice.emissions):
        row = np.array([_dot(weights, f) for f in rows])
        if position == last:
            row[1:] = -np.inf
        if fixed is not None and fixed[position] is not None:
            keep = sorted(fixed[position])
            kept = row[keep]
            row[:] = -np.inf
            row[keep] = kept
        emit.append(row)
    scored: dict[int, object] = {}

    def score(table) -> object:
        if id(table) not in scored:
            scored[id(table)] = np.array([[_dot(weights, f) for f in row] for row in table]) \
                if not isinstance(table[0][0], list) else np.array(
                    [[[_dot(weights, f) for f in cells] for cells in row] for row in table])
        return scored[id(table)]

    moves = [None] + [score(lattice.change_table(p)) for p in range(1, last + 1)]
    triples = [None, None] + [score(lattice.triple_table(p)) for p in range(2, last + 1)]
    return pair_viterbi(emit, moves, triples)


def _path_features(lattice: _Lattice, path: list[int]) -> dict[str, float]:
    """The features summed along a path of chords (what training compares)."""
    total: dict[str, float] = {}
    for position, state in enumerate(path):
        items = list(lattice.emissions[position][state].items())
        if position:
            items += lattice.change_table(position)[path[position - 1]][state].items()
        if position > 1 and lattice.second_order:
            items += lattice.triple_table(position)[path[position - 2]][path[position - 1]][
                state].items()
        for name, value in items:
            total[name] = total.get(name, 0.0) + value
    return total


def _with_a_change(lattice: _Lattice, weights: dict[str, float], bonus: list | None,
                   path: list[int], least_bars: int = 4) -> list[int]:
    """``path``, or where it holds one chord throughout a tune of ``least_bars`` bars or more,
    the best-scoring path that changes chord at least once: a tune on one chord has no harmony
    to speak of (a locrian study came out on its diminished tonic throughout, the modes other
    than major and minor having no learnt weights of their own). The best such path leaves the
    chord at some slot before the last, so the best path with that slot's chord barred from
    each slot in turn is the answer (one Viterbi search a slot, and only for such a tune)."""
    chords = [lattice.states[p][state][0] for p, state in enumerate(path)]
    bars = len({bar for bar, _ in lattice.plan})
    if bars < least_bars or len(set(chords)) > 1 or len(path) < 3:
        return path

    def score(candidate: list[int]) -> float:
        extra = 0.0 if bonus is None else sum(float(bonus[p][s]) for p, s in enumerate(candidate))
        return _dot(weights, _path_features(lattice, candidate)) + extra

    best, best_score = path, -math.inf
    for position in range(len(path) - 1):
        barred = frozenset(i for i, (chord, _) in enumerate(lattice.states[position])
                           if chord != chords[0])
        if not barred:
            continue
        fixed: list[frozenset[int] | None] = [None] * len(path)
        fixed[position] = barred
        candidate = _best_path(lattice, weights, fixed, bonus)
        if score(candidate) > best_score:
            best, best_score = candidate, score(candidate)
    return best


# --------------------------------------------------------------------------------------------
# The harmoniser


def slots_per_bar(style: str | None, meter_text: str) -> int:
    """How many chords a bar of this style may hold at most.

    >>> slots_per_bar("waltz", "3/4"), slots_per_bar("reel", "4/4"), slots_per_bar(None, "6/8")
    (1, 2, 2)
    """
    if style in _STYLE_SLOTS:
        slots = _STYLE_SLOTS[style]
    else:
        slots = {"3/4": 1, "3/8": 1, "2/4": 1, "9/8": 3}.get(meter_text, 2)
    if meter_text in ("3/4", "3/8") and slots == 2:
        slots = 1
    return slots


def _slots(events: list[MelodyEvent], bar_length: Fraction, count: int
           ) -> list[tuple[Fraction, list[MelodyEvent]]]:
    """Cut a bar into ``count`` equal slots; a slot in which no note or rest starts joins the
    one before (a chord is written on a note, so it can only change where one starts)."""
    size = bar_length / count
    slots: list[tuple[Fraction, list[MelodyEvent]]] = []
    for index in range(count):
        start, end = size * index, size * (index + 1)
        inside = [e for e in events if start <= e.onset < end or (index == count - 1
                                                                   and e.onset >= end)]
        if index and (not inside or inside[0].onset != start):
            if not inside or not any(e.onset == start for e in inside):
                if slots:
                    slots[-1][1].extend(inside)
                    continue
        slots.append((start, list(inside)))
    return [(start, inside) for start, inside in slots if inside] or [(Fraction(0), events)]


def harmonise_events(bars: list[list[MelodyEvent]], tonic: str, mode: str,
                     bar_length: Fraction, beat: Fraction, slots: int,
                     config: HarmonyConfig = HarmonyConfig(),
                     skip: frozenset[int] = frozenset(),
                     keys: list[tuple[str, str]] | None = None,
                     ends: frozenset[int] = frozenset(),
                     ) -> list[list[tuple[Fraction, Chord]]]:
    """Choose chords for a melody given as bars of events: for each bar, (onset, chord) pairs.

    ``skip`` holds the indices of bars left without a chord of their own (upbeats); ``keys``
    the (tonic, mode) of each bar when the key changes in the tune (else ``tonic``/``mode``
    throughout); ``ends`` the bars that close a section (:func:`section_ends`). The first
    chord of every bar is returned even when it repeats the previous bar's; a chord later in
    a bar only when it changes.

    >>> bars = [[MelodyEvent(Fraction(0), Fraction(3, 4), (62,))],
    ...         [MelodyEvent(Fraction(0), Fraction(3, 4), (73,))],
    ...         [MelodyEvent(Fraction(0), Fraction(3, 4), (62,))]]
    >>> [[c.name for _, c in bar] for bar in harmonise_events(
    ...     bars, "D", "minor", Fraction(3, 4), Fraction(1, 4), 1)]
    [['Dm'], ['A'], ['Dm']]
    """
    keys = keys or [(tonic, mode)] * len(bars)
    lattice = _lattice(bars, bar_length, beat, slots, skip, keys, ends=ends)
    if config.decoding not in ("viterbi", "marginal"):
        raise ValueError(f"decoding is 'viterbi' or 'marginal', not {config.decoding!r}")
    if config.scorer not in ("network", "linear"):
        raise ValueError(f"scorer is 'network' or 'linear', not {config.scorer!r}")
    if (config.decoding == "viterbi" and config.scorer == "network" and config.weights is None
            and not lattice.second_order):
        from agent.harmony_nodes import node_bonus, shipped_model

        scale = float(shipped_model()["scale"])
        weights, bonus = {n: scale * v for n, v in _weights(config).items()}, node_bonus(lattice)
        path = _best_path(lattice, weights, bonus=bonus)
    else:
        decode = _best_path if config.decoding == "viterbi" else _marginal_path
        weights, bonus = _weights(config), None
        path = decode(lattice, weights)
    if config.decoding == "viterbi" and not lattice.second_order:
        path = _with_a_change(lattice, weights, bonus, path)
    result: list[list[tuple[Fraction, Chord]]] = [[] for _ in bars]
    previous = None
    for (bar_index, start), states, chosen in zip(lattice.plan, lattice.states, path):
        chord, label = states[chosen]
        if config.sevenths:
            chord = _with_seventh(chord, label)
        if start == 0 or chord != previous:
            result[bar_index].append((start, chord))
        previous = chord
    return result


def _with_seventh(chord: Chord, label: str) -> Chord:
    if label.endswith(":4M"):
        return Chord(chord.root, "dominant seventh", None, chord.name + "7")
    return chord


def _scale_share(events: list[list[MelodyEvent]], keys: list[tuple[str, str]]) -> float:
    """Share of the melody's sounding time spent on notes of the scale in force."""
    inside = total = Fraction(0)
    for bar, (tonic, mode) in zip(events, keys):
        tonic_pc = (LETTER_SEMITONES[tonic[0]] + {"#": 1, "b": -1}.get(tonic[1:2], 0)) % 12
        scale = {(tonic_pc + step) % 12 for step in MODE_STEPS[mode]}
        for event in bar:
            if event.pitches:
                total += event.duration
                if event.pitches[0] % 12 in scale:
                    inside += event.duration
    return float(inside / total) if total else 0.0


def _style_name(tune: TuneText, config: HarmonyConfig) -> str | None:
    if config.style:
        return config.style
    from agent.styles import style_for

    found = style_for(rhythm=tune.get("R") or "", title=tune.title or "", meter=str(tune.meter))
    return found.name if found else None


def _check_harmonisable(melody: _Melody, config: HarmonyConfig = HarmonyConfig()
                        ) -> tuple[str, str]:
    tune = melody.tune
    key = tune.key
    if key.tonic is None or key.mode is None:
        raise HarmonyError("the tune has no key (K:none), so I cannot tell which chords belong "
                           "to it")
    if tune.meter.is_free:
        raise HarmonyError("the tune is in free meter (no bars of equal length), so there is no "
                           "harmonic rhythm to follow")
    mode = {"ionian": "major", "aeolian": "minor"}.get(key.mode, key.mode)
    share = _scale_share(melody.events, _usable_keys(melody.keys, (key.tonic, mode)))
    if share < config.min_scale_share:
        raise HarmonyError(f"only {share:.0%} of the melody is in {key.tonic} {mode}; it does not "
                           "keep to a key, so I cannot choose chords for it")
    return key.tonic, mode


def _usable_keys(keys: list[tuple[str | None, str | None]], home: tuple[str, str]
                 ) -> list[tuple[str, str]]:
    """Each bar's key; a bar in a key the harmoniser cannot use (K:none) takes the home key."""
    return [key if key[0] is not None and key[1] in MODE_STEPS else home for key in keys]


def _existing_chord_tokens(melody: _Melody) -> list[Token]:
    return [t for t in melody.tokens
            if t.kind is Kind.CHORD_SYMBOL and is_chord_name(t.text[1:-1])]


def _insertion_point(tokens: list[Token], index: int) -> int:
    """Body offset where a chord symbol for the timed token ``index`` goes: before the
    decorations, grace notes, slurs and tuplet marks that belong to it."""
    position = index
    while position > 0 and tokens[position - 1].kind in (
            Kind.DECORATION, Kind.GRACE, Kind.SLUR, Kind.TUPLET, Kind.CHORD_SYMBOL,
            Kind.ANNOTATION) and tokens[position - 1].end == tokens[position].start:
        if tokens[position - 1].kind is Kind.SLUR and tokens[position - 1].text == ")":
            break
        position -= 1
    return tokens[position].start


def _splice(abc: str, melody: _Melody, changes: list[tuple[int, int, str]]) -> str:
    """The tune with body spans replaced (offsets into the body); other bytes unchanged."""
    body = melody.tune.body
    for start, end, new in sorted(changes, key=lambda c: (c[0], c[1]), reverse=True):
        body = body[:start] + new + body[end:]
    offset = melody.tune.body_offset
    return abc[:offset] + body + abc[offset + len(melody.tune.body):]


def _summary(bars: list[list[tuple[Fraction, Chord]]], tonic: str, mode: str) -> str:
    counts = [len(bar) for bar in bars if bar]
    final = next(chord for bar in reversed(bars) for _, chord in reversed(bar))
    rate = "one a bar" if max(counts) == 1 else (
        "one or two a bar" if max(counts) == 2 else f"up to {max(counts)} a bar")
    return f"I added chords: {rate}, ending on {final.words()}."


def harmonise(abc: str, config: HarmonyConfig = HarmonyConfig()) -> HarmonyResult:
    """Add chord symbols to a tune's melody; every other byte of the text stays as it was.

    A tune that already has chord symbols keeps them unless ``config.replace`` is set.
    Raises :class:`HarmonyError` for a melody it cannot follow.

    >>> abc = "X:1\\nM:4/4\\nL:1/8\\nK:Ador\\nA2AB c2BA|G2GA B2AG|A2AB c2BA|G2BG A4|]\\n"
    >>> print(harmonise(abc).abc.splitlines()[-1])
    "Am"A2AB c2BA|"G"G2GA B2AG|"Am"A2AB c2BA|"G"G2BG "Am"A4|]
    >>> harmonise("X:1\\nM:none\\nL:1/8\\nK:C\\nCDEF GABc|]\\n")
    Traceback (most recent call last):
    ...
    agent.harmony.HarmonyError: the tune is in free meter (no bars of equal length), so there is no harmonic rhythm to follow
    """
    melody = _read(abc)
    existing = _existing_chord_tokens(melody)
    if existing and not config.replace:
        return HarmonyResult(abc, tuple(chords_in(abc)),
                             "The tune already has chords; I kept them (ask me to replace "
                             "them to get new ones).", changed=False)
    tonic, mode = _check_harmonisable(melody, config)
    tune = melody.tune
    style = _style_name(tune, config)
    slots = config.slots_per_bar or slots_per_bar(style, str(tune.meter))
    meter = tune.meter
    chosen = harmonise_events(melody.events, tonic, mode, meter.bar_length, meter.beat_length,
                              slots, config, skip=melody.pickups,
                              keys=_usable_keys(melody.keys, (tonic, mode)),
                              ends=section_ends(melody.bars))
    changes = [(t.start, t.end, "") for t in existing]
    for bar_events, bar_chords in zip(melody.events, chosen):
        for onset, chord in bar_chords:
            event = next(e for e in bar_events if e.onset == onset)
            at = _insertion_point(melody.tokens, event.token)
            changes.append((at, at, f'"{chord.name}"'))
    text = _splice(abc, melody, changes)
    listed = tuple(BarChords(index + melody.first_shown,
                             tuple((onset, chord.name) for onset, chord in bar))
                   for index, bar in enumerate(chosen))
    return HarmonyResult(text, listed, _summary(chosen, tonic, mode))


# --------------------------------------------------------------------------------------------
# Reading and changing the chords of a tune


def chords_in(abc: str) -> list[BarChords]:
    """The chord symbols of each bar, bars numbered as the score numbers them.

    >>> [(b.bar, b.chords) for b in chords_in('X:1\\nM:2/4\\nL:1/8\\nK:G\\nD|"G"GA "D7"Bc|d4|]')]
    [(0, ()), (1, ((Fraction(0, 1), 'G'), (Fraction(1, 4), 'D7'))), (2, ())]
    >>> chords_in("X:1\\nK:G\\n")
    Traceback (most recent call last):
    ...
    agent.harmony.HarmonyError: the tune has no notes to harmonise
    """
    melody = _read(abc)
    out = []
    for number, (bar, events) in enumerate(zip(melody.bars, melody.events)):
        chords = []
        pending: list[str] = []
        onset = Fraction(0)
        by_token = {e.token: e for e in events}
        for index, token in enumerate(melody.tokens):
            if not bar.start <= token.start < bar.end:
                continue
            if token.kind is Kind.CHORD_SYMBOL and is_chord_name(token.text[1:-1]):
                pending.append(token.text[1:-1])
            elif index in by_token:
                onset = by_token[index].onset
                chords.extend((onset, name) for name in pending)
                pending = []
        chords.extend((bar.duration, name) for name in pending)
        out.append(BarChords(number + melody.first_shown, tuple(chords)))
    return out


def chord_in_force(bars: list[BarChords]) -> list[str | None]:
    """The chord sounding at the start of each bar (a chord lasts until the next one).

    >>> chord_in_force([BarChords(1, ((Fraction(0), "G"),)), BarChords(2, ()),
    ...                 BarChords(3, ((Fraction(1, 4), "D"),))])
    ['G', 'G', 'G']
    """
    current = None
    out = []
    for bar in bars:
        starting = [name for onset, name in bar.chords if onset == 0]
        if starting:
            current = starting[0]
        out.append(current)
        if bar.chords:
            current = bar.chords[-1][1]
    return out


def progression(abc: str) -> str:
    """The chords of a tune as a musician writes them out: bars separated by ``|``.

    >>> progression('X:1\\nM:3/4\\nL:1/4\\nK:D\\nA|"D"DFA|"G"GBd|"A7"cea|"D"d3|]')
    'D | G | A7 | D'
    """
    bars = chords_in(abc)
    if not any(bar.chords for bar in bars):
        return "The tune has no chords yet."
    while not bars[0].chords:  # an upbeat before the first chord
        bars = bars[1:]
    return " | ".join(" ".join(name for _, name in bar.chords) or "%" for bar in bars)


def strip_chords(abc: str) -> str:
    """The tune without its chord symbols; annotations ("D.C.", "^text") stay.

    >>> strip_chords('X:1\\nK:G\\n"G"GA "D.C."B "Em"c|]\\n')
    'X:1\\nK:G\\nGA "D.C."B c|]\\n'
    """
    melody = _read(abc)
    return _splice(abc, melody, [(t.start, t.end, "") for t in _existing_chord_tokens(melody)])


def set_chord(abc: str, bar_number: int, name: str) -> str:
    """Put chord ``name`` on the first beat of bar ``bar_number`` (as the score numbers it),
    replacing the chords that bar had; the chords of other bars stay.

    >>> print(set_chord('X:1\\nM:2/4\\nL:1/8\\nK:G\\n"G"GABc|"C"cBAG|]', 2, "Am7").splitlines()[-1])
    "G"GABc|"Am7"cBAG|]
    >>> set_chord('X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|cBAG|]', 9, "G")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: there is no bar 9: the tune has bars 1 to 2
    """
    chord = parse_chord(name)
    melody = _read(abc)
    index = bar_number - melody.first_shown
    if not 0 <= index < len(melody.bars):
        last = len(melody.bars) - 1 + melody.first_shown
        raise InputError(f"there is no bar {bar_number}: the tune has bars "
                         f"{melody.first_shown} to {last}")
    bar = melody.bars[index]
    events = melody.events[index]
    if not events:
        raise InputError(f"bar {bar_number} has no note to put a chord on")
    changes = [(t.start, t.end, "") for t in _existing_chord_tokens(melody)
               if bar.start <= t.start < bar.end]
    at = _insertion_point(melody.tokens, events[0].token)
    changes.append((at, at, f'"{chord.name}"'))
    return _splice(abc, melody, changes)


def _rewrite_chords(abc: str, rewrite) -> str:
    melody = _read(abc)
    changes = []
    for token in _existing_chord_tokens(melody):
        new = rewrite(token, parse_chord(token.text[1:-1]))
        if new != token.text:
            changes.append((token.start, token.end, new))
    return _splice(abc, melody, changes)


def simplify(abc: str) -> str:
    """Simpler chords: plain triads, no slash basses, and one chord a bar (the first).

    >>> print(simplify('X:1\\nM:2/4\\nL:1/8\\nK:G\\n"Gmaj7"GA "D/F#"Bc|"Am7"cB "D7"AG|]').splitlines()[-1])
    "G"GA Bc|"Am"cB AG|]
    """
    melody = _read(abc)
    changes = []
    for bar in melody.bars:
        tokens = [t for t in _existing_chord_tokens(melody) if bar.start <= t.start < bar.end]
        for position, token in enumerate(tokens):
            if position:
                changes.append((token.start, token.end, ""))
                continue
            new = '"' + parse_chord(token.text[1:-1]).triad().name + '"'
            if new != token.text:
                changes.append((token.start, token.end, new))
    return _splice(abc, melody, changes)


def enrich(abc: str) -> str:
    """Jazzier chords: sevenths on the chords that take them (V7, ii7, vi7, IVmaj7) and
    secondary dominants (a minor chord that moves down a fifth becomes a dominant seventh)
    wherever the melody in that chord's stretch does not clash with the added note.

    >>> print(enrich('X:1\\nM:3/4\\nL:1/4\\nK:C\\n"C"CEG|"Am"ABe|"Dm"dfa|"G"gfd|"C"c3|]').splitlines()[-1])
    "C"CEG|"A7"ABe|"Dm7"dfa|"G7"gfd|"C"c3|]
    """
    melody = _read(abc)
    key = melody.tune.key
    if key.tonic is None:
        raise HarmonyError("the tune has no key (K:none), so I cannot tell which chords fit")
    tonic_pc = (LETTER_SEMITONES[key.tonic[0]] + {"#": 1, "b": -1}.get(key.tonic[1:2], 0)) % 12
    tokens = _existing_chord_tokens(melody)
    if not tokens:
        raise InputError("the tune has no chords yet; add chords first")
    # the melody notes each chord covers
    notes_under: list[set[int]] = []
    token_index = {t.start: i for i, t in enumerate(melody.tokens)}
    positions = [token_index[t.start] for t in tokens] + [len(melody.tokens)]
    for a, b in zip(positions, positions[1:]):
        notes_under.append({p % 12 for t in melody.tokens[a:b] if t.is_note for p in t.pitches[:1]})
    parsed = [parse_chord(t.text[1:-1]) for t in tokens]
    changes = []
    for i, (token, chord) in enumerate(zip(tokens, parsed)):
        following = parsed[i + 1] if i + 1 < len(parsed) else None
        degree = (chord.root - tonic_pc) % 12
        new_kind = chord.kind
        if following is not None and (chord.root - following.root) % 12 == 7 \
                and chord.kind in ("minor", "major") and following.root != chord.root \
                and degree != 7 and degree != 0:
            # a secondary dominant: the major third and the minor seventh must not clash
            third, seventh = (chord.root + 4) % 12, (chord.root + 10) % 12
            if not notes_under[i] & {(third - 1) % 12, (seventh + 1) % 12, (seventh - 1) % 12}:
                new_kind = "dominant seventh"
        if new_kind == chord.kind:
            new_kind = {(7, "major"): "dominant seventh", (2, "minor"): "minor seventh",
                        (9, "minor"): "minor seventh", (5, "major"): "major seventh",
                        (4, "minor"): "minor seventh"}.get((degree, chord.kind), chord.kind)
            added = [(chord.root + s) % 12 for s in
                     next(v[0] for v in QUALITIES.values() if v[1] == new_kind)]
            if any((pc + 1) % 12 in notes_under[i] or (pc - 1) % 12 in notes_under[i]
                   for pc in added if pc not in chord.pitch_classes):
                new_kind = chord.kind
        if new_kind != chord.kind:
            name = spell(chord.root, new_kind, chord.name)
            changes.append((token.start, token.end, f'"{name}"'))
    return _splice(abc, melody, changes)


def best_simple_triads(abc: str) -> list[str | None]:
    """A baseline for the benchmark: per bar, the I, IV or V triad of the key in force that
    best fits the melody (no look at neighbours). Bars as written; an upbeat gets None.

    >>> best_simple_triads("X:1\\nM:3/4\\nL:1/4\\nK:G\\nGBd|cea|dfa|g3|]")
    ['G', 'C', 'D', 'G']
    """
    melody = _read(abc)
    tonic, mode = _check_harmonisable(melody)
    meter = melody.tune.meter
    out = []
    for index, (bar, key) in enumerate(zip(melody.events,
                                           _usable_keys(melody.keys, (tonic, mode)))):
        if index in melody.pickups or not bar:
            out.append(None)
            continue
        triads, scale = _primary_triads(*key)
        weighted = [(e, _strength(e.onset, meter.bar_length, meter.beat_length)) for e in bar]
        out.append(max(triads, key=lambda c: _slot_fit(weighted, c, scale, None)).name)
    return out


def _primary_triads(tonic: str, mode: str) -> tuple[list[Chord], frozenset[int]]:
    """The I, IV and V triads of a key (V major in minor, as at a cadence), and its scale."""
    steps = MODE_STEPS[mode]
    tonic_pc = (LETTER_SEMITONES[tonic[0]] + {"#": 1, "b": -1}.get(tonic[1:2], 0)) % 12
    first = chord_vocabulary(tonic, mode)[0][0]
    triads = [first]
    for degree in (3, 4):
        root = (tonic_pc + steps[degree]) % 12
        kind = "major" if degree == 4 or mode in ("major", "mixolydian", "dorian", "lydian") \
            else "minor"
        triads.append(Chord(root, kind, None, spell(root, kind, flats=_prefers_flats(tonic, mode))))
    return triads, frozenset((tonic_pc + s) % 12 for s in steps)


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _marginals(lattice: _Lattice, weights: dict[str, float], scale: float = 1.0,
               fixed: list[frozenset[int] | None] | None = None) -> tuple:
    """Forward-backward over the lattice with the scores (times ``scale``) as log-potentials:
    per slot, the probability of each chord; the log of the total; and the tables behind
    them. ``fixed`` as in :func:`_best_path`."""
    if lattice.second_order:
        raise ValueError("forward-backward is first-order; the second-order feature groups "
                         "decode with Viterbi only")
    last = len(lattice.plan) - 1
    emit = [[scale * _dot(weights, f) for f in row] for row in lattice.emissions]
    emit[last] = [v if i == 0 else -math.inf for i, v in enumerate(emit[last])]
    for p, allowed in enumerate(fixed or []):
        if allowed is not None:
            emit[p] = [v if i in allowed else -math.inf for i, v in enumerate(emit[p])]
    moves = [None] + [[[scale * _dot(weights, f) for f in row] for row in
                       lattice.change_table(p)] for p in range(1, last + 1)]
    alpha = [emit[0]]
    for p in range(1, last + 1):
        alpha.append([_logsumexp([alpha[-1][q] + moves[p][q][s] for q in range(len(alpha[-1]))])
                      + emit[p][s] for s in range(len(emit[p]))])
    beta = [[0.0] * len(emit[last])]
    for p in range(last - 1, -1, -1):
        beta.insert(0, [_logsumexp([moves[p + 1][q][s] + emit[p + 1][s] + beta[0][s]
                                    for s in range(len(emit[p + 1]))])
                        for q in range(len(emit[p]))])
    total = _logsumexp(alpha[-1])
    probs = [[math.exp(a + b - total) if a + b > -math.inf else 0.0 for a, b in zip(ra, rb)]
             for ra, rb in zip(alpha, beta)]
    return probs, total, (alpha, beta, emit, moves)


def _marginal_path(lattice: _Lattice, weights: dict[str, float]) -> list[int]:
    """Per slot, the chord whose root is the most likely over all paths of chords (the
    chain's scores read as log-probabilities; V and V7 pool their chances), and of that
    root's chords the likeliest. Each slot is then right as often as the model can make it,
    which is what a listener hears bar by bar; a Viterbi path is only the likeliest whole."""
    probs, _, _ = _marginals(lattice, weights)
    path = []
    for states, row in zip(lattice.states, probs):
        mass: dict[int, float] = {}
        for (chord, _), p in zip(states, row):
            mass[chord.root] = mass.get(chord.root, 0.0) + p
        root = max(mass, key=lambda r: mass[r])
        path.append(max((i for i, (c, _) in enumerate(states) if c.root == root),
                        key=lambda i: row[i]))
    return path
