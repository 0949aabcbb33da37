"""ABC tunes as text, exactly as written: header fields, tokens with pitches and durations, bars.

This module reads ABC 2.1 (https://abcnotation.com/wiki/abc:standard:v2.1) at the level of
characters. Every token keeps its offsets into the tune body, so an editor can replace one bar
and leave every other byte identical, and a decoder can re-tokenize the bar it is writing.
It is pure Python (no music21) and fast: a 32-bar tune tokenizes in about a millisecond.

Why our own tokenizer: music21's ABC reader works on whole tunes, keeps no source offsets,
and differs from ABC 2.1 in places (it applies the ABC 1.3 accidental rule without a
``%abc-2.1`` line, ignores inline ``[K:]``/``[M:]`` fields and gets locrian keys wrong: see
:mod:`agent.abc_reader`, which corrects them); no other maintained Python library tokenizes ABC
with offsets.

The ABC 2.1 rules applied here:

* Pitch: ``C`` is middle C (MIDI 60), ``c`` the octave above, ``'`` and ``,`` shift octaves.
  The key signature applies unless a note has an accidental; an accidental carries to the end
  of the bar for every note with the same letter, in all octaves (ABC 2.1 section 11.3, default
  ``%%propagate-accidentals pitch``, which abc2midi also applies). ``%%propagate-accidentals``
  or ``I:propagate-accidentals`` with ``not`` / ``octave`` / ``pitch`` changes that. A note
  tied over a bar line keeps the pitch it is tied from (as abc2midi and abcm2ps play it).
* Length: ``L:`` (or the default from ``M:``), the note's multiplier, tuplets ``(p:q:r`` and
  broken rhythm ``>`` / ``<``. Chords last as long as their first note. Grace notes take no time.
* Inline fields ``[K:]``, ``[L:]``, ``[M:]``, ``[V:]`` and field lines in the body take effect
  where they stand; each voice keeps its own key, unit length and meter.
* Anything that is not ABC becomes an ``unknown`` token; nothing is guessed into a note.

The tokenizer never raises: malformed inline fields are kept as tokens and left for
:mod:`agent.validate` to report.

>>> tune = parse_tune("X:1\\nT:Scale\\nM:2/4\\nL:1/8\\nK:D\\nDEFG|ABcd|]\\n")
>>> tokens = tokenize_body(tune.body, tune)
>>> [t.pitches[0] for t in tokens if t.kind == Kind.NOTE]
[62, 64, 66, 67, 69, 71, 73, 74]
>>> [(bar.number, str(bar.duration), str(bar.expected)) for bar in split_bars(tokens, tune)]
[(1, '1/2', '1/2'), (2, '1/2', '1/2')]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from fractions import Fraction

from agent.errors import AbcError
from agent.notation import (
    ACCIDENTAL_STEPS, KEY_ACCIDENTAL_RE, LETTER_SEMITONES, LETTERS, MODE_SHARPS, NOTE_RE, TONIC_RE,
    length_multiplier, mode_name,
)

__all__ = [
    "Field", "TuneText", "TuneSource", "Meter", "Key", "Tempo", "Context", "Kind", "Token",
    "Bar", "split_tunebook", "tunebook_sources", "parse_tune", "parse_meter",
    "parse_unit_length", "default_unit_length", "parse_key", "parse_tempo", "tokenize_body",
    "scan_body", "split_bars", "sounding_bars", "strip_comment", "bar_count", "length_in_bars",
]

# --------------------------------------------------------------------------------------------
# Constants of the notation

#: Field letters ABC 2.1 defines (section 3), plus ``+`` for field continuation.
KNOWN_FIELDS = frozenset("ABCDFGHIKLMmNOPQRrSsTUVWwXZ+")
#: Field letters that may stand on their own line inside a tune body (section 3.2).
BODY_FIELDS = frozenset("IKLMmNPQRrsTUVWw+")
#: Fields that may also appear inline, in square brackets, inside a music line.
INLINE_FIELDS = frozenset("IKLMmNPQRrUVw")

_SHARP_ORDER = "FCGDAEB"
_FLAT_ORDER = "BEADGCF"
# Position of each letter on the circle of fifths relative to C major (sharps of its major key).
_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_CLEF_WORDS = frozenset({
    "treble", "bass", "alto", "tenor", "perc", "none", "treble8", "treble+8", "treble-8",
    "bass8", "bass+8", "bass-8", "bass3", "bass4", "alto1", "alto2", "alto3", "alto4",
    "tenor8", "tenor-8", "baritone", "soprano", "mezzosoprano", "+8", "-8",
})

#: Decoration symbols that ABC 2.1 defines by default (section 4.14); ``U:`` can add more.
DEFAULT_DECORATIONS = frozenset(".~HLMOPSTuv")
# Letters that ``U:`` may redefine; any other letter outside A-G/a-g is not ABC.
_REDEFINABLE = frozenset("HIJKLMNOPQRSTUVWhijklmnopqrstuvw~")


# --------------------------------------------------------------------------------------------
# Header data


@dataclass(frozen=True)
class Field:
    """One information field: ``name`` is its letter, ``value`` the text after the colon."""

    name: str
    value: str
    line: int


@dataclass(frozen=True)
class Meter:
    """The ``M:`` field: bar length and beat grouping.

    ``numerator``/``denominator`` are 0 for free meter (``M:none``), where ``bar_length`` is
    None. ``groups`` holds the parts of an additive meter (``3/8+3/8+2/8`` -> (3, 3, 2)).

    >>> m = parse_meter("6/8")
    >>> m.bar_length, m.beat_length, m.beats_per_bar, m.is_compound
    (Fraction(3, 4), Fraction(3, 8), Fraction(2, 1), True)
    >>> parse_meter("C|").bar_length
    Fraction(1, 1)
    """

    text: str
    numerator: int
    denominator: int
    symbol: str | None = None
    groups: tuple[int, ...] = ()

    @property
    def is_free(self) -> bool:
        return self.denominator == 0

    @property
    def bar_length(self) -> Fraction | None:
        """Length of a full bar as a fraction of a whole note; None in free meter."""
        if self.is_free:
            return None
        return Fraction(self.numerator, self.denominator)

    @property
    def is_compound(self) -> bool:
        """6/8, 9/8, 12/8 ...: beats are dotted notes of three pulses each."""
        return (not self.groups and self.numerator > 3 and self.numerator % 3 == 0
                and self.denominator >= 4)

    @property
    def beat_length(self) -> Fraction | None:
        """The beat a musician counts: a dotted quarter in 6/8, a half note in C|."""
        if self.is_free:
            return None
        if self.is_compound:
            return Fraction(3, self.denominator)
        return Fraction(1, self.denominator)

    @property
    def beats_per_bar(self) -> Fraction | None:
        if self.is_free:
            return None
        return self.bar_length / self.beat_length

    def __str__(self) -> str:
        if self.is_free:
            return "free meter"
        if self.symbol:
            return self.symbol
        if self.groups:
            return "+".join(f"{g}/{self.denominator}" for g in self.groups)
        return f"{self.numerator}/{self.denominator}"


FREE_METER = Meter("none", 0, 0)


@dataclass(frozen=True)
class Key:
    """The ``K:`` field: tonic, mode and the key signature it implies.

    ``alterations`` holds the signature's semitone alteration for C D E F G A B. ``tonic`` and
    ``mode`` are None for ``K:none`` and ``K:HP``. ``extras`` lists words of the field that
    were not understood (they are ignored, and reported by validation).

    >>> k = parse_key("B locrian")
    >>> k.tonic, k.mode, k.signature, k.sharps
    ('B', 'locrian', {}, 0)
    >>> parse_key("D exp _b ^f").signature
    {'F': 1, 'B': -1}
    """

    tonic: str | None
    mode: str | None
    alterations: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0)
    explicit: bool = False
    clef: str | None = None
    text: str = ""
    extras: tuple[str, ...] = ()
    modified: bool = False

    @property
    def signature(self) -> dict[str, int]:
        """Letters the key signature alters, e.g. ``{'F': 1, 'C': 1}`` for D major."""
        return {letter: alt for letter, alt in zip(LETTERS, self.alterations) if alt}

    @property
    def sharps(self) -> int | None:
        """Number of sharps (negative: flats) when the signature is a standard one, else None."""
        for count in range(-7, 8):
            if _signature_from_sharps(count) == self.alterations:
                return count
        return None

    def __str__(self) -> str:
        if self.tonic is None:
            return "no key signature" if self.mode is None else self.text
        return f"{self.tonic} {self.mode}"


C_MAJOR = Key("C", "major", text="C")


@dataclass(frozen=True)
class Tempo:
    """The ``Q:`` field: ``bpm`` beats of length ``beat`` per minute, and an optional text."""

    beat: Fraction | None
    bpm: float | None
    text: str | None = None


@dataclass(frozen=True)
class TuneText:
    """One tune as text: header fields through ``K:``, and the body after it.

    ``body`` is ``text[body_offset:]`` up to the first blank line (a blank line ends a tune in
    ABC); ``trailing`` is whatever follows that blank line. ``body_line`` is the 1-based source
    line where the body starts, counted from ``first_line`` (the line of the tune's first
    character in its file). ``inherited`` are file-header fields that apply to this tune.
    """

    text: str
    fields: tuple[Field, ...]
    body: str
    body_offset: int
    body_line: int
    meter: Meter
    unit_length: Fraction
    key: Key
    trailing: str = ""
    trailing_line: int = 0
    inherited: tuple[Field, ...] = ()
    directives: tuple[tuple[str, int], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field ``name`` in the header (or the file header), else default.

        >>> parse_tune("X:1\\nT:Morrison's\\nK:Em\\nEB\\n").get("T")
        "Morrison's"
        >>> parse_tune("X:1\\nK:Em\\nEB\\n").get("C", "unknown")
        'unknown'
        """
        for fld in self.fields:
            if fld.name == name:
                return fld.value
        for fld in self.inherited:
            if fld.name == name:
                return fld.value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name`` in the header, in order (file header first)."""
        return [f.value for f in (*self.inherited, *self.fields) if f.name == name]

    @property
    def title(self) -> str | None:
        return self.get("T")

    @property
    def tempo(self) -> Tempo | None:
        """The header's ``Q:`` field, or None when absent or unreadable."""
        value = self.get("Q")
        if value is None:
            return None
        try:
            return parse_tempo(value, self.unit_length)
        except AbcError:
            return None

    @property
    def propagation(self) -> str:
        """How far accidentals carry: ``pitch`` (ABC 2.1 default), ``octave`` or ``not``."""
        mode = "pitch"
        for text, _line in self.directives:
            found = _propagation_setting(text)
            if found:
                mode = found
        return mode


@dataclass(frozen=True)
class TuneSource:
    """A tune's text inside a tunebook: ``first_line`` is the file line of its ``X:``."""

    text: str
    first_line: int
    header: tuple[Field, ...] = ()
    header_text: str = ""


# --------------------------------------------------------------------------------------------
# Field values


def strip_comment(value: str) -> str:
    """Drop a ``%`` comment from a field value (``\\%`` is a literal percent sign).

    >>> strip_comment("Glyd % two sharps in the book")
    'Glyd'
    >>> strip_comment("100\\\\% sure")
    '100\\\\% sure'
    """
    index = value.find("%")
    while index > 0 and value[index - 1] == "\\":
        index = value.find("%", index + 1)
    return (value if index < 0 else value[:index]).strip()


_FRACTION_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*$")
_METER_TERM_RE = re.compile(r"\(?\s*(\d+(?:\s*\+\s*\d+)*)\s*\)?\s*/\s*(\d+)")


def parse_meter(value: str) -> Meter:
    """Read an ``M:`` value: ``3/4``, ``C``, ``C|``, ``none``, or additive ``3/8+3/8+2/8``.

    An additive meter is read as its sum, with the parts kept as ``groups``.

    >>> parse_meter("3/8+3/8+2/8").bar_length, parse_meter("3/8+3/8+2/8").groups
    (Fraction(1, 1), (3, 3, 2))
    >>> parse_meter("(2+3)/8").numerator
    5
    >>> parse_meter("none").is_free
    True
    >>> parse_meter("waltz")
    Traceback (most recent call last):
    agent.errors.AbcError: cannot read the meter 'waltz' (expected e.g. 3/4, 6/8, C, C| or none)
    """
    text = strip_comment(value)
    compact = text.replace(" ", "")
    if compact.lower() in ("", "none"):
        return replace(FREE_METER, text=text or "none")
    if compact == "C":
        return Meter(text, 4, 4, symbol="C")
    if compact == "C|":
        return Meter(text, 2, 2, symbol="C|")
    terms = compact.split("+")
    match = _METER_TERM_RE.fullmatch(compact)
    if match:  # 3/4, (2+3)/8 or 2+3/8: one denominator
        parts = tuple(int(p) for p in match.group(1).split("+"))
        denominator = int(match.group(2))
        if denominator and all(parts):
            return Meter(text, sum(parts), denominator, groups=parts if len(parts) > 1 else ())
    elif all(_FRACTION_RE.fullmatch(t) for t in terms):  # 3/8+3/8+2/8, 2/4+3/8
        fractions = [tuple(map(int, _FRACTION_RE.fullmatch(t).groups())) for t in terms]
        if all(num and den for num, den in fractions):
            denominator = max(den for _, den in fractions)
            if all(denominator % den == 0 for _, den in fractions):
                parts = tuple(num * denominator // den for num, den in fractions)
                return Meter(text, sum(parts), denominator, groups=parts)
    raise AbcError(f"cannot read the meter {text!r} (expected e.g. 3/4, 6/8, C, C| or none)")


def parse_unit_length(value: str) -> Fraction:
    """Read an ``L:`` value such as ``1/8`` into a fraction of a whole note.

    >>> parse_unit_length("1/16")
    Fraction(1, 16)
    >>> parse_unit_length("1")
    Fraction(1, 1)
    >>> parse_unit_length("eighth")
    Traceback (most recent call last):
    agent.errors.AbcError: cannot read the unit note length 'eighth' (expected e.g. L:1/8)
    """
    text = strip_comment(value)
    match = _FRACTION_RE.fullmatch(text)
    if match and int(match.group(1)) and int(match.group(2)):
        return Fraction(int(match.group(1)), int(match.group(2)))
    if text.isdigit() and int(text):
        return Fraction(int(text))
    raise AbcError(f"cannot read the unit note length {text!r} (expected e.g. L:1/8)")


def default_unit_length(meter: Meter | None) -> Fraction:
    """ABC 2.1 default for a missing ``L:``: 1/16 when the meter is below 3/4, else 1/8.

    Free meter and no meter give 1/8.

    >>> default_unit_length(parse_meter("2/4")), default_unit_length(parse_meter("3/4"))
    (Fraction(1, 16), Fraction(1, 8))
    >>> default_unit_length(None)
    Fraction(1, 8)
    """
    if meter is None or meter.is_free:
        return Fraction(1, 8)
    return Fraction(1, 16) if meter.bar_length < Fraction(3, 4) else Fraction(1, 8)


def _signature_from_sharps(sharps: int) -> tuple[int, ...]:
    alterations = dict.fromkeys(LETTERS, 0)
    if sharps > 0:
        for letter in _SHARP_ORDER[:sharps]:
            alterations[letter] = 1
    else:
        for letter in _FLAT_ORDER[:-sharps]:
            alterations[letter] = -1
    return tuple(alterations[letter] for letter in LETTERS)


def parse_key(value: str, previous: Key | None = None) -> Key:
    """Read a ``K:`` value: tonic, mode (any church mode, locrian included), accidentals.

    ``K:D ^c`` modifies the D major signature; ``K:D exp _b ^f`` gives exactly the listed
    accidentals. Clef words (``bass``, ``clef=alto``, ``treble8``) are kept in ``clef``.
    A ``K:`` with only a clef keeps ``previous`` (C major when None).

    >>> k = parse_key("F# Dorian")
    >>> k.tonic, k.mode, k.sharps
    ('F#', 'dorian', 4)
    >>> parse_key("Am").signature, parse_key("Hp").signature
    ({}, {'C': 1, 'F': 1})
    >>> parse_key("Gquux")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    agent.errors.AbcError: unknown mode 'quux' in K:Gquux (use major, minor, dorian, ...)
    """
    text = strip_comment(value)
    words = text.split()
    tonic: str | None = None
    mode: str | None = None
    alterations: tuple[int, ...] | None = None
    clef = None
    extras: list[str] = []
    rest = words
    if not words:
        return previous or replace(C_MAJOR, text=text)
    first = words[0]
    if first.lower() == "none":
        alterations, rest = (0,) * 7, words[1:]
    elif first == "HP":
        alterations, rest = (0,) * 7, words[1:]
    elif first == "Hp":
        tonic, mode, rest = "A", "mixolydian", words[1:]
    elif first.lower() not in _CLEF_WORDS and "=" not in first and TONIC_RE.fullmatch(first):
        letter, accidental, glued = TONIC_RE.fullmatch(first).groups()
        tonic = letter.upper() + accidental
        rest = words[1:]
        if glued:
            mode = mode_name(glued)
            if mode is None:
                raise AbcError(f"unknown mode {glued!r} in K:{text} (use major, minor, dorian, "
                               "phrygian, lydian, mixolydian or locrian)")
        elif rest and mode_name(rest[0]) and not KEY_ACCIDENTAL_RE.fullmatch(rest[0]):
            mode, rest = mode_name(rest[0]), rest[1:]
        else:
            mode = "major"
    if tonic is not None:
        sharps = _FIFTHS[tonic[0]] + 7 * {"": 0, "#": 1, "b": -1}[tonic[1:]]
        sharps += MODE_SHARPS[mode]
        if not -7 <= sharps <= 7:
            raise AbcError(f"K:{text} needs {abs(sharps)} {'sharps' if sharps > 0 else 'flats'};"
                           " ABC key signatures have at most 7")
        alterations = _signature_from_sharps(sharps)
    explicit = False
    modifications: dict[str, int] = {}
    for word in rest:
        lower = word.lower()
        if lower == "exp":
            explicit = True
        elif KEY_ACCIDENTAL_RE.fullmatch(word):
            sign, letter = KEY_ACCIDENTAL_RE.fullmatch(word).groups()
            modifications[letter.upper()] = ACCIDENTAL_STEPS[sign]
        elif lower in _CLEF_WORDS:
            clef = lower
        elif lower.startswith("clef="):
            clef = lower[5:]
        elif "=" in word:
            continue  # middle=, transpose=, octave=, stafflines=, ...: no effect on pitch here
        else:
            extras.append(word)
    if alterations is None:  # only a clef and/or accidentals
        if previous is not None and not modifications and not explicit:
            return replace(previous, clef=clef or previous.clef, text=text,
                           extras=tuple(extras))
        base = previous or C_MAJOR
        tonic, mode, alterations = base.tonic, base.mode, base.alterations
    if explicit:
        alterations = (0,) * 7
    if modifications:
        alterations = tuple(modifications.get(letter, alt)
                            for letter, alt in zip(LETTERS, alterations))
    return Key(tonic, mode, alterations, explicit=explicit, clef=clef, text=text,
               extras=tuple(extras), modified=bool(modifications))


_TEMPO_BEAT_RE = re.compile(r"(\d+/\d+(?:\s+\d+/\d+)*)\s*=\s*(\d+(?:\.\d+)?)")


def parse_tempo(value: str, unit_length: Fraction = Fraction(1, 8)) -> Tempo:
    """Read a ``Q:`` value: ``1/4=120``, ``"Allegro" 3/8=100``, the old ``120`` (unit lengths).

    >>> parse_tempo('"Allegro" 1/4=132')
    Tempo(beat=Fraction(1, 4), bpm=132.0, text='Allegro')
    >>> parse_tempo("96", Fraction(1, 8)).beat
    Fraction(1, 8)
    >>> parse_tempo("fast")
    Traceback (most recent call last):
    agent.errors.AbcError: cannot read the tempo 'fast' (expected e.g. Q:1/4=120)
    """
    text = strip_comment(value)
    quoted = re.findall(r'"([^"]*)"', text)
    label = " ".join(quoted) or None
    bare = re.sub(r'"[^"]*"', " ", text).strip()
    match = _TEMPO_BEAT_RE.fullmatch(bare)
    if match:
        beat = sum((Fraction(part) for part in match.group(1).split()), Fraction(0))
        return Tempo(beat, float(match.group(2)), label)
    old = re.fullmatch(r"(?:C\d*\s*=\s*)?(\d+(?:\.\d+)?)", bare)
    if old:
        return Tempo(unit_length, float(old.group(1)), label)
    if not bare and label:
        return Tempo(None, None, label)
    raise AbcError(f"cannot read the tempo {text!r} (expected e.g. Q:1/4=120)")


def _propagation_setting(text: str) -> str | None:
    match = re.match(r"\s*(?:%%|I:)\s*propagate-accidentals\s+(not|octave|pitch)\b", text)
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------
# Tunes and tunebooks

_FIELD_LINE_RE = re.compile(r"([A-Za-z+]):(.*)")
_X_LINE_RE = re.compile(r"^X:", re.MULTILINE)


def tunebook_sources(text: str) -> list[TuneSource]:
    """Tunes of a tunebook with the file line where each starts, and the file header.

    Tunes start at ``X:`` lines. Text before the first ``X:`` is dropped, except the file
    header (the first block of field and ``%%`` lines, ABC 2.1 section 2.2.2), whose fields
    every tune inherits. A text without any ``X:`` line is one tune.

    >>> book = "%abc-2.1\\nM:6/8\\n\\nSome notes\\n\\nX:1\\nK:G\\nGAB\\n\\nX:2\\nK:D\\nDEF\\n"
    >>> [(s.first_line, [f.name for f in s.header]) for s in tunebook_sources(book)]
    [(6, ['M']), (10, ['M'])]
    >>> tunebook_sources("")
    []
    """
    starts = [m.start() for m in _X_LINE_RE.finditer(text)]
    if not starts:
        return [TuneSource(text, 1)] if text.strip() else []
    header_lines: list[str] = []
    header: list[Field] = []
    preamble = text[:starts[0]]
    line_number = 0
    for line in preamble.splitlines():
        line_number += 1
        stripped = line.strip()
        if not stripped:
            if header_lines:
                break
            continue
        match = _FIELD_LINE_RE.match(stripped)
        if stripped.startswith("%%"):
            header_lines.append(line)
        elif stripped.startswith("%"):
            continue
        elif match and match.group(1) in KNOWN_FIELDS and match.group(1) != "+":
            header_lines.append(line)
            header.append(Field(match.group(1), strip_comment(match.group(2)), line_number))
        else:
            break  # free text: the header has ended (or never started)
    header_text = "".join(line + "\n" for line in header_lines)
    sources = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        first_line = text.count("\n", 0, start) + 1
        sources.append(TuneSource(text[start:end], first_line, tuple(header), header_text))
    return sources


def split_tunebook(text: str) -> list[str]:
    """The tunes of a tunebook as separate texts, each starting at its ``X:`` line.

    File-header lines (fields and ``%%`` directives before the first tune) are copied in
    front of every tune so that each text stands alone; free text is dropped.

    >>> split_tunebook("X:1\\nT:One\\nK:C\\nCDE\\n\\nX:2\\nT:Two\\nK:G\\nGAB\\n")
    ['X:1\\nT:One\\nK:C\\nCDE\\n\\n', 'X:2\\nT:Two\\nK:G\\nGAB\\n']
    >>> split_tunebook("just some words")
    ['just some words']
    """
    return [source.header_text + source.text for source in tunebook_sources(text)]


def parse_tune(text: str, *, first_line: int = 1, inherited: tuple[Field, ...] = ()) -> TuneText:
    """Split one tune into header fields (through ``K:``) and body.

    Lines before the header that are comments, ``%%`` directives or blank are skipped.
    ``first_line`` numbers the lines (use the file line of the tune's first character);
    ``inherited`` are file-header fields, used when the tune itself lacks them.

    >>> tune = parse_tune("X:1\\nT:Kesh\\nM:6/8\\nL:1/8\\nK:G\\n|:GAG GAB|ABA ABd:|\\n")
    >>> [f.name for f in tune.fields], tune.body_line, tune.key.signature
    (['X', 'T', 'M', 'L', 'K'], 6, {'F': 1})
    >>> tune.body
    '|:GAG GAB|ABA ABd:|\\n'
    >>> parse_tune("X:1\\nT:No key\\nM:4/4\\nCDEF|\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    agent.errors.AbcError: line 4: the music starts before the K: (key) field; ...
    >>> parse_tune("  \\n")
    Traceback (most recent call last):
    agent.errors.AbcError: the tune is empty
    """
    if not text.strip():
        raise AbcError("the tune is empty")
    fields: list[Field] = []
    directives: list[tuple[str, int]] = []
    offset = 0
    line = first_line
    key_field: Field | None = None
    for raw in text.splitlines(keepends=True):
        stripped = raw.strip()
        if not stripped:
            if fields:
                raise AbcError("a blank line ends the header before the K: (key) field",
                               line=line)
        elif stripped.startswith("%"):
            if stripped.startswith("%%"):
                directives.append((stripped, line))
        else:
            match = _FIELD_LINE_RE.match(stripped)
            if not match:
                raise AbcError("the music starts before the K: (key) field; the header "
                               "must end with K:", line=line)
            name, value = match.groups()
            if name == "+" and fields:
                previous = fields[-1]
                fields[-1] = Field(previous.name, f"{previous.value} {strip_comment(value)}",
                                   previous.line)
            else:
                fields.append(Field(name, value.strip() if name in "wW" else
                                    strip_comment(value), line))
            if name == "I":
                directives.append((stripped, line))
            if name == "K":
                key_field = fields[-1]
        offset, line = offset + len(raw), line + 1
        if key_field is not None:
            break
    if key_field is None:
        raise AbcError("the tune has no K: (key) field; the header must end with K:")
    body, trailing, trailing_line = _split_at_blank_line(text[offset:], line)
    everything = (*inherited, *fields)
    meter_field = next((f for f in reversed(everything) if f.name == "M"), None)
    unit_field = next((f for f in reversed(everything) if f.name == "L"), None)
    meter = FREE_METER
    if meter_field is not None:
        meter = _located(parse_meter, meter_field)
    unit = default_unit_length(meter if meter_field else None)
    if unit_field is not None:
        unit = _located(parse_unit_length, unit_field)
    key = _located(parse_key, key_field)
    return TuneText(text=text, fields=tuple(fields), body=body, body_offset=offset,
                    body_line=line, meter=meter, unit_length=unit, key=key, trailing=trailing,
                    trailing_line=trailing_line, inherited=tuple(inherited),
                    directives=tuple(directives))


def _located(parser, fld: Field):
    """Run ``parser`` on a field's value; an AbcError gets the field's line number."""
    try:
        return parser(fld.value)
    except AbcError as error:
        raise AbcError(error.message, line=fld.line) from None


def _split_at_blank_line(body: str, line: int) -> tuple[str, str, int]:
    """Cut the body at its first blank line: (body, the text after it, the line it starts)."""
    position = 0
    for raw in body.splitlines(keepends=True):
        if not raw.strip():
            rest = body[position:]
            if not rest.strip():
                return body[:position], "", 0
            return body[:position], rest, line
        position += len(raw)
        line += 1
    return body, "", 0


# --------------------------------------------------------------------------------------------
# Tokens


class Kind(StrEnum):
    """What a token is. Values are plain strings, handy for JSON."""

    NOTE = "note"
    REST = "rest"                  # z, x (invisible), Z and X (whole bars)
    CHORD = "chord"                # [CEG]
    BAR = "bar"                    # | || |] [| |: :| :: .|
    ENDING = "ending"              # [1  |2  :|1,3 (the number part)
    TUPLET = "tuplet"              # (3  (3:2:3
    BROKEN = "broken"              # > >> < <<
    TIE = "tie"                    # -
    SLUR = "slur"                  # ( or )
    GRACE = "grace"                # {gAg} or {/g}
    DECORATION = "decoration"      # !trill! +trill+ . ~ H T u v ...
    CHORD_SYMBOL = "chord_symbol"  # "Am"
    ANNOTATION = "annotation"      # "^text" or other quoted text
    INLINE_FIELD = "inline_field"  # [K:D]
    FIELD = "field"                # a field line in the body, e.g. K:G or T:Part two
    LYRICS = "lyrics"              # a w: line
    SPACE = "space"                # blanks, ` and $
    SPACER = "spacer"              # y
    LINE_BREAK = "line_break"
    CONTINUATION = "continuation"  # \ at the end of a line
    OVERLAY = "overlay"            # &
    COMMENT = "comment"            # % ... and %% directives
    UNKNOWN = "unknown"            # not ABC; never turned into notes


TIMED_KINDS = frozenset({Kind.NOTE, Kind.REST, Kind.CHORD})
TRIVIA_KINDS = frozenset({Kind.SPACE, Kind.LINE_BREAK, Kind.COMMENT, Kind.CONTINUATION,
                          Kind.FIELD, Kind.LYRICS})


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of the tune body, as written.

    ``start``/``end`` are offsets into the body, ``line``/``col`` 1-based source positions.
    ``duration`` (notes, rests, chords) is a fraction of a whole note after ``L:``, tuplets and
    broken rhythm; None for everything else (grace notes take no time). ``pitches`` are MIDI
    numbers (notes, chords, grace groups) and ``names`` the same pitches spelled the music21
    way (``'F#4'``, ``'B-3'``). ``voice`` is the ``V:`` id in force ('' when none).
    """

    kind: Kind
    text: str
    start: int
    end: int
    line: int
    col: int
    duration: Fraction | None = None
    pitches: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    voice: str = ""

    @property
    def is_timed(self) -> bool:
        return self.kind in TIMED_KINDS

    @property
    def is_note(self) -> bool:
        """A note or chord: what a lyric syllable can fall on."""
        return self.kind is Kind.NOTE or self.kind is Kind.CHORD


@dataclass(frozen=True)
class Context:
    """What the tokenizer needs to know before the body starts.

    Build one with :meth:`from_tune`, or by hand when re-tokenizing a piece of a body (the
    state at a bar line is just key, meter and unit length: accidentals end with the bar).
    """

    key: Key = C_MAJOR
    meter: Meter = FREE_METER
    unit: Fraction = Fraction(1, 8)
    line: int = 1
    propagation: str = "pitch"
    voice: str = ""
    decorations: frozenset[str] = DEFAULT_DECORATIONS

    @classmethod
    def from_tune(cls, tune: TuneText) -> "Context":
        decorations = set(DEFAULT_DECORATIONS)
        for value in tune.get_all("U"):
            symbol = value.split("=", 1)[0].strip()
            if len(symbol) == 1 and symbol in _REDEFINABLE:
                decorations.add(symbol)
        voices = tune.get_all("V")
        return cls(key=tune.key, meter=tune.meter, unit=tune.unit_length, line=tune.body_line,
                   propagation=tune.propagation,
                   voice=voices[0].split()[0] if voices and voices[0].split() else "",
                   decorations=frozenset(decorations))


@dataclass
class _VoiceState:
    key: Key
    meter: Meter
    unit: Fraction


@dataclass(slots=True)
class _Scanner:
    """Mutable tokenizer state; lives only inside :func:`scan_body`."""

    body: str
    context: Context
    tokens: list[Token] = field(default_factory=list)
    line: int = 1
    line_start: int = 0
    key: Key = C_MAJOR
    meter: Meter = FREE_METER
    unit: Fraction = Fraction(1, 8)
    propagation: str = "pitch"
    voice: str = ""
    decorations: frozenset[str] = DEFAULT_DECORATIONS
    bar_accidentals: dict = field(default_factory=dict)
    tuplet_left: int = 0
    tuplet_factor: Fraction = Fraction(1)
    broken_next: Fraction | None = None
    last_timed: int = -1
    voices: dict = field(default_factory=dict)
    tied: dict | None = None  # (letter, octave) -> alteration of the note(s) a tie comes from
    lengths: dict = field(default_factory=dict)  # written length -> duration, for this unit


_REST_RE = re.compile(r"([zx])(\d*)(/*)(\d*)")
_BAR_RE = re.compile(r"\.\||:*\[\|\]?:*|:*\|+\]?:*|:{2,}")
_ENDING_RE = re.compile(r"\[?(\d+(?:[-,]\d+)*)")
_INLINE_FIELD_RE = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")
_TUPLET_RE = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
_SPACE_RE = re.compile(r"[ \t`$]+")
_LENGTH_RE = re.compile(r"(\d*)(/*)(\d*)")
_CHORD_SYMBOL_RE = re.compile(r"[A-G][#b]?|\(")
_DIRECTIVE_DECORATION_RE = re.compile(r"!([^!\s|]{1,40})!|\+([A-Za-z0-9.<>()]{1,40})\+")

def scan_body(body: str, context: Context | TuneText) -> tuple[list[Token], Context]:
    """Tokenize ``body`` and also return the context in force at its end.

    The returned context (key, meter, unit length and voice after every field in the body)
    lets a caller tokenize a continuation of the text on its own.

    >>> tune = parse_tune("X:1\\nM:3/4\\nL:1/4\\nK:C\\nCDE|[K:G][L:1/8]F2G2A2|\\n")
    >>> tokens, after = scan_body(tune.body, tune)
    >>> str(after.key), after.unit
    ('G major', Fraction(1, 8))
    """
    if isinstance(context, TuneText):
        context = Context.from_tune(context)
    scanner = _Scanner(body=body, context=context, line=context.line, key=context.key,
                       meter=context.meter, unit=context.unit, propagation=context.propagation,
                       voice=context.voice, decorations=context.decorations)
    _scan(scanner)
    after = replace(context, key=scanner.key, meter=scanner.meter, unit=scanner.unit,
                    line=scanner.line, propagation=scanner.propagation, voice=scanner.voice,
                    decorations=scanner.decorations)
    return scanner.tokens, after


def tokenize_body(body: str, context: Context | TuneText) -> list[Token]:
    """Tokenize a tune body into :class:`Token` objects, with pitches and durations.

    ``context`` is the parsed tune (its header gives key, meter and unit length) or a
    :class:`Context`. Never raises: what is not ABC becomes ``unknown`` tokens.

    >>> tune = parse_tune("X:1\\nM:4/4\\nL:1/8\\nK:G\\n^c c C (3efg a>b !trill!c'2|\\n")
    >>> tokens = tokenize_body(tune.body, tune)
    >>> [(t.text, t.names[0], str(t.duration)) for t in tokens if t.kind == "note"]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('^c', 'C#5', '1/8'), ('c', 'C#5', '1/8'), ('C', 'C#4', '1/8'), ('e', 'E5', '1/12'),
     ('f', 'F#5', '1/12'), ('g', 'G5', '1/12'), ('a', 'A5', '3/16'), ('b', 'B5', '1/16'),
     ("c'2", 'C#6', '1/4')]
    >>> [t.text for t in tokenize_body("A # B", Context()) if t.kind == "unknown"]
    ['#']
    """
    return scan_body(body, context)[0]


def _emit(s: _Scanner, kind: Kind, start: int, end: int, duration: Fraction | None = None,
          pitches: tuple[int, ...] = (), names: tuple[str, ...] = ()) -> None:
    s.tokens.append(Token(kind, s.body[start:end], start, end, s.line, start - s.line_start + 1,
                          duration, pitches, names, s.voice))


@lru_cache(maxsize=256)
def _written(letter: str, marks: str) -> tuple[str, int]:
    """Letter (upper case) and octave of a written note: ``c'`` is ('C', 6)."""
    upper = letter.upper()
    return upper, (4 if letter == upper else 5) + marks.count("'") - marks.count(",")


@lru_cache(maxsize=1024)
def _spelled(upper: str, octave: int, alteration: int) -> tuple[int, str]:
    """MIDI number and music21-style name: ('F', 4, 1) is (66, 'F#4')."""
    midi = 12 * (octave + 1) + LETTER_SEMITONES[upper] + alteration
    name = upper + ("#" * alteration if alteration > 0 else "-" * -alteration) + str(octave)
    return midi, name


def _pitch(s: _Scanner, accidental: str | None, letter: str, marks: str) -> tuple[int, str]:
    """MIDI number and spelled name of one written note, updating the bar's accidentals."""
    upper, octave = _written(letter, marks)
    memo = upper if s.propagation == "pitch" else (upper, octave)
    if accidental is None and s.tied is not None and (upper, octave) in s.tied:
        # a note tied over a bar line keeps the pitch it is tied from, without carrying
        # that accidental to the rest of the bar (as abc2midi and abcm2ps/abc2svg play it)
        alteration = s.tied[(upper, octave)]
    elif accidental is not None:
        alteration = ACCIDENTAL_STEPS[accidental]
        if s.propagation != "not":
            s.bar_accidentals[memo] = alteration
    else:
        alteration = s.bar_accidentals.get(memo)
        if alteration is None:
            alteration = s.key.alterations[LETTERS.index(upper)]
    return _spelled(upper, octave, alteration)


def _timed(s: _Scanner, kind: Kind, start: int, end: int, duration: Fraction,
           pitches: tuple[int, ...] = (), names: tuple[str, ...] = ()) -> None:
    """Emit a note, rest or chord, applying the tuplet and broken rhythm in force."""
    if s.tuplet_left > 0:
        duration = duration * s.tuplet_factor
        s.tuplet_left -= 1
    if s.broken_next is not None:
        duration = duration * s.broken_next
        s.broken_next = None
    _emit(s, kind, start, end, duration, pitches, names)
    s.last_timed = len(s.tokens) - 1
    s.tied = None


def _apply_field(s: _Scanner, name: str, value: str) -> None:
    """Let a body field line or inline field change key, unit, meter, voice or settings."""
    try:
        if name == "K":
            s.key = parse_key(value, previous=s.key)
            s.bar_accidentals.clear()
        elif name == "L":
            s.unit = parse_unit_length(value)
            s.lengths.clear()
        elif name == "M":
            s.meter = parse_meter(value)
        elif name == "V":
            _switch_voice(s, (strip_comment(value).split() or [""])[0])
        elif name == "I":
            setting = _propagation_setting("I:" + value)
            if setting:
                s.propagation = setting
        elif name == "U":
            symbol = value.split("=", 1)[0].strip()
            if len(symbol) == 1 and symbol in _REDEFINABLE:
                s.decorations = s.decorations | {symbol}
    except AbcError:
        pass  # left as written; agent.validate reports it


def _switch_voice(s: _Scanner, voice: str) -> None:
    if voice == s.voice:
        return
    s.voices[s.voice] = _VoiceState(s.key, s.meter, s.unit)
    state = s.voices.get(voice) or _VoiceState(s.context.key, s.context.meter, s.context.unit)
    s.key, s.meter, s.unit, s.voice = state.key, state.meter, state.unit, voice
    s.lengths.clear()
    s.bar_accidentals.clear()
    s.tuplet_left, s.broken_next, s.last_timed = 0, None, -1


def _scan(s: _Scanner) -> None:  # noqa: C901 - one flat dispatch on the next character
    body = s.body
    n = len(body)
    pos = 0
    at_line_start = True
    while pos < n:
        ch = body[pos]
        if at_line_start:
            at_line_start = False
            if ch != "\n":
                match = _FIELD_LINE_RE.match(body, pos)
                if match and match.group(1) in BODY_FIELDS:
                    end = body.find("\n", pos)
                    end = n if end < 0 else end
                    if body[end - 1:end] == "\r":
                        end -= 1
                    name = match.group(1)
                    _emit(s, Kind.LYRICS if name == "w" else Kind.FIELD, pos, end)
                    _apply_field(s, name, body[match.start(2):end])
                    pos = end
                    continue
        if ch == "\n":
            _emit(s, Kind.LINE_BREAK, pos, pos + 1)
            pos += 1
            s.line += 1
            s.line_start = pos
            at_line_start = True
            continue
        if ch in "ABCDEFGabcdefg^_=":
            match = NOTE_RE.match(body, pos)
            if match:
                accidental, letter, marks, digits, slashes, divisor = match.groups()
                midi, name = _pitch(s, accidental, letter, marks)
                written = (digits, slashes, divisor)
                duration = s.lengths.get(written)
                if duration is None:
                    duration = s.lengths[written] = s.unit * length_multiplier(*written)
                _timed(s, Kind.NOTE, pos, match.end(), duration, (midi,), (name,))
                pos = match.end()
                continue
            pos = _unknown(s, pos)
            continue
        if ch == "\r" and body.startswith("\r\n", pos):
            _emit(s, Kind.LINE_BREAK, pos, pos + 2)
            pos += 2
            s.line += 1
            s.line_start = pos
            at_line_start = True
            continue
        if ch == " " or ch == "\t" or ch == "`" or ch == "$" or ch == "\r":
            end = _SPACE_RE.match(body, pos).end() if ch != "\r" else pos + 1
            _emit(s, Kind.SPACE, pos, end)
            pos = end
            continue
        if ch == "|" or ch == ":" or (ch == "[" and body[pos + 1:pos + 2] == "|") or (
                ch == "." and body[pos + 1:pos + 2] == "|"):
            match = _BAR_RE.match(body, pos)
            if match:
                _emit(s, Kind.BAR, pos, match.end())
                s.bar_accidentals.clear()
                s.tuplet_left, s.broken_next, s.last_timed = 0, None, -1
                pos = match.end()
                ending = _ENDING_RE.match(body, pos)
                if ending and not _INLINE_FIELD_RE.match(body, pos):
                    _emit(s, Kind.ENDING, pos, ending.end())
                    pos = ending.end()
                continue
            pos = _unknown(s, pos)
            continue
        if ch == "[":
            pos = _bracket(s, pos)
            continue
        if ch == "z" or ch == "x":
            match = _REST_RE.match(body, pos)
            _, digits, slashes, divisor = match.groups()
            _timed(s, Kind.REST, pos, match.end(), s.unit * length_multiplier(digits, slashes, divisor))
            pos = match.end()
            continue
        if ch == "Z" or ch == "X":
            end = pos + 1
            while end < n and body[end].isdigit():
                end += 1
            bars = int(body[pos + 1:end]) if end > pos + 1 else 1
            bar_length = s.meter.bar_length
            _emit(s, Kind.REST, pos, end, bar_length * bars if bar_length else None)
            s.last_timed = len(s.tokens) - 1
            pos = end
            continue
        if ch == "(":
            match = _TUPLET_RE.match(body, pos)
            if match:
                _start_tuplet(s, *match.groups())
                _emit(s, Kind.TUPLET, pos, match.end())
                pos = match.end()
            else:
                _emit(s, Kind.SLUR, pos, pos + 1)
                pos += 1
            continue
        if ch == ")":
            _emit(s, Kind.SLUR, pos, pos + 1)
            pos += 1
            continue
        if ch == "-":
            if s.last_timed >= 0 and s.last_timed == len(s.tokens) - 1:
                s.tied = _tie_sources(s.tokens[-1])
            _emit(s, Kind.TIE, pos, pos + 1)
            pos += 1
            continue
        if ch == ">" or ch == "<":
            end = pos
            while end < n and body[end] == ch and end - pos < 3:
                end += 1
            _broken(s, ch, end - pos)
            _emit(s, Kind.BROKEN, pos, end)
            pos = end
            continue
        if ch == '"':
            end = body.find('"', pos + 1)
            newline = body.find("\n", pos + 1)
            if end < 0 or (0 <= newline < end):
                pos = _unknown(s, pos, newline if newline >= 0 else n)
                continue
            inner = body[pos + 1:end]
            kind = (Kind.CHORD_SYMBOL if _CHORD_SYMBOL_RE.match(inner) else Kind.ANNOTATION)
            _emit(s, kind, pos, end + 1)
            pos = end + 1
            continue
        if ch == "!" or ch == "+":
            match = _DIRECTIVE_DECORATION_RE.match(body, pos)
            if match and (ch == "!" or match.group(2)):
                _emit(s, Kind.DECORATION, pos, match.end())
                pos = match.end()
            else:
                pos = _unknown(s, pos)
            continue
        if ch == "{":
            pos = _grace(s, pos)
            continue
        if ch == "%":
            end = body.find("\n", pos)
            end = n if end < 0 else end
            if body[end - 1:end] == "\r":
                end -= 1
            _emit(s, Kind.COMMENT, pos, end)
            setting = _propagation_setting(body[pos:end])
            if setting:
                s.propagation = setting
            pos = end
            continue
        if ch == "\\":
            rest = body[pos + 1:body.find("\n", pos) if "\n" in body[pos:] else n]
            if not rest.strip() or rest.lstrip().startswith("%"):
                _emit(s, Kind.CONTINUATION, pos, pos + 1)
                pos += 1
            else:
                pos = _unknown(s, pos)
            continue
        if ch == "&":
            _emit(s, Kind.OVERLAY, pos, pos + 1)
            s.tuplet_left, s.broken_next = 0, None
            pos += 1
            continue
        if ch == "y":
            _emit(s, Kind.SPACER, pos, pos + 1)
            pos += 1
            continue
        if ch in s.decorations:
            _emit(s, Kind.DECORATION, pos, pos + 1)
            pos += 1
            continue
        pos = _unknown(s, pos)


_NAME_RE = re.compile(r"([A-G])([#-]*)(-?\d+)$")


def _tie_sources(token: Token) -> dict[tuple[str, int], int]:
    """(letter, octave) -> alteration for each note of a note or chord that a tie follows."""
    sources = {}
    for name in token.names:
        letter, accidentals, octave = _NAME_RE.match(name).groups()
        sources[(letter, int(octave))] = accidentals.count("#") - accidentals.count("-")
    return sources


def _unknown(s: _Scanner, pos: int, end: int | None = None) -> int:
    """Emit an unknown token; consecutive unknown characters are joined into one."""
    body = s.body
    if end is None:
        end = pos + 1
        while end < len(body) and _is_unknown_char(s, body[end]):
            end += 1
    if (s.tokens and s.tokens[-1].kind is Kind.UNKNOWN and s.tokens[-1].end == pos
            and "\n" not in body[pos:end]):
        previous = s.tokens.pop()
        s.tokens.append(replace(previous, text=body[previous.start:end], end=end))
    else:
        _emit(s, Kind.UNKNOWN, pos, end)
    return end


def _is_unknown_char(s: _Scanner, ch: str) -> bool:
    """Characters that cannot start any ABC token (used to join runs of unknown text)."""
    return not (ch.isspace() or ch in "ABCDEFGabcdefg^_=|:[](){}<>-\"!+%\\&zxZXy.~"
                or ch in s.decorations)


def _start_tuplet(s: _Scanner, p: str, q: str | None, r: str | None) -> None:
    """``(p:q:r``: p notes in the time of q, for the next r notes (ABC 2.1 section 4.13)."""
    p_value = int(p)
    if p_value < 2:
        return
    if q and int(q):
        q_value = int(q)
    elif p_value in (2, 4, 8):
        q_value = 3
    elif p_value in (3, 6):
        q_value = 2
    else:
        q_value = 3 if s.meter.is_compound else 2
    s.tuplet_factor = Fraction(q_value, p_value)
    s.tuplet_left = int(r) if r else p_value


def _broken(s: _Scanner, direction: str, count: int) -> None:
    """``a>b``: the first note gains what the second loses (1/2, 1/4, 1/8 of its length)."""
    short = Fraction(1, 2 ** count)
    long = 2 - short
    first, second = (long, short) if direction == ">" else (short, long)
    if s.last_timed >= 0:
        previous = s.tokens[s.last_timed]
        s.tokens[s.last_timed] = replace(previous, duration=previous.duration * first)
    s.broken_next = second


def _bracket(s: _Scanner, pos: int) -> int:
    """``[``: an inline field, a numbered ending, or a chord."""
    body = s.body
    match = _INLINE_FIELD_RE.match(body, pos)
    if match:
        _emit(s, Kind.INLINE_FIELD, pos, match.end())
        _apply_field(s, match.group(1), match.group(2))
        return match.end()
    if pos + 1 < len(body) and body[pos + 1].isdigit():
        match = _ENDING_RE.match(body, pos)
        _emit(s, Kind.ENDING, pos, match.end())
        return match.end()
    return _chord(s, pos)


def _chord(s: _Scanner, pos: int) -> int:
    """``[CEG]2``: notes sounding together; lasts as long as its first note times the suffix."""
    body = s.body
    cursor = pos + 1
    saved = dict(s.bar_accidentals)
    pitches: list[int] = []
    names: list[str] = []
    first: Fraction | None = None
    n = len(body)
    while cursor < n and body[cursor] != "]":
        ch = body[cursor]
        if ch == " " or ch == "-" or ch in s.decorations:
            cursor += 1
            continue
        if ch == "!" or ch == "+":
            match = _DIRECTIVE_DECORATION_RE.match(body, cursor)
            if match:
                cursor = match.end()
                continue
        if ch == '"':
            end = body.find('"', cursor + 1)
            if 0 < end and "\n" not in body[cursor:end]:
                cursor = end + 1
                continue
        match = NOTE_RE.match(body, cursor)
        if not match:
            break
        accidental, letter, marks, digits, slashes, divisor = match.groups()
        midi, name = _pitch(s, accidental, letter, marks)
        pitches.append(midi)
        names.append(name)
        if first is None:
            first = length_multiplier(digits, slashes, divisor)
        cursor = match.end()
    if cursor >= n or body[cursor] != "]" or not pitches:
        s.bar_accidentals = saved
        return _unknown(s, pos, pos + 1)
    suffix = _LENGTH_RE.match(body, cursor + 1)
    end = suffix.end()
    duration = s.unit * first * length_multiplier(*suffix.groups())
    _timed(s, Kind.CHORD, pos, end, duration, tuple(pitches), tuple(names))
    return end


def _grace(s: _Scanner, pos: int) -> int:
    """``{gag}`` or ``{/g}``: grace notes, which take no time from the bar."""
    body = s.body
    end = body.find("}", pos)
    newline = body.find("\n", pos)
    if end < 0 or (0 <= newline < end):  # unclosed: the rest of the line is not music
        return _unknown(s, pos, newline if newline >= 0 else len(body))
    pitches: list[int] = []
    names: list[str] = []
    cursor = pos + 1
    while cursor < end:
        match = NOTE_RE.match(body, cursor)
        if match and match.end() <= end:
            midi, name = _pitch(s, match.group(1), match.group(2), match.group(3))
            pitches.append(midi)
            names.append(name)
            cursor = match.end()
        else:
            cursor += 1
    _emit(s, Kind.GRACE, pos, end + 1, None, tuple(pitches), tuple(names))
    return end + 1


# --------------------------------------------------------------------------------------------
# Bars


@dataclass(frozen=True)
class Bar:
    """One bar as written, between two bar lines.

    ``start``/``end`` are body offsets of the bar's content, from its first to its last
    non-blank token, bar lines excluded: ``body[:bar.start] + new + body[bar.end:]`` replaces
    this bar and keeps every other byte. ``duration`` is the sum of its notes, rests and chords
    (chords count once; grace notes and notes after an ``&`` overlay do not count);
    ``expected`` is the full-bar length of the meter in force (None in free meter; times
    ``rest_bars`` for a ``Z4`` multi-bar rest). ``ending`` is the variant-ending label ("1",
    "2", "1,3") for bars inside a numbered ending.
    """

    index: int
    voice: str
    start: int
    end: int
    line: int
    tokens: tuple[Token, ...]
    opening: Token | None
    bar_line: Token | None
    duration: Fraction
    meter: Meter | None
    expected: Fraction | None
    ending: str | None = None
    rest_bars: int = 1

    @property
    def number(self) -> int:
        """1-based position of the bar in the text (a pickup is bar 1)."""
        return self.index + 1

    @property
    def notes(self) -> tuple[Token, ...]:
        """The bar's notes and chords."""
        return tuple(t for t in self.tokens if t.kind is Kind.NOTE or t.kind is Kind.CHORD)

    @property
    def starts_repeat(self) -> bool:
        return self.opening is not None and self.opening.text.rstrip("]").endswith(":")

    @property
    def ends_repeat(self) -> bool:
        return self.bar_line is not None and self.bar_line.text.lstrip("[").startswith(":")

    @property
    def ends_part(self) -> bool:
        """Whether the bar line after this bar closes a part: ``|]``, ``||``, ``:|`` or ``::``
        (ABC 2.1 section 4.8); a numbered ending stops there too."""
        return self.bar_line is not None and _SECTION_CLOSE.search(self.bar_line.text) is not None

    @property
    def is_full(self) -> bool:
        return self.expected is not None and self.duration == self.expected

    def text_in(self, body: str) -> str:
        """This bar's text in ``body`` (the body it was tokenized from)."""
        return body[self.start:self.end]


_SECTION_CLOSE = re.compile(r"\|\]|\|\||:\||::")


def split_bars(tokens: list[Token], context: Context | TuneText | None = None) -> list[Bar]:
    """Group tokens into bars. Bars of different voices are listed in text order.

    ``context`` gives the meter in force at the start (without it, only ``M:`` fields in the
    body set it). Stretches between two bar lines with no notes, rests or unknown symbols
    (e.g. between ``:|`` at the end of a line and ``|:`` at the start of the next) are not bars.

    >>> tune = parse_tune("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC|:EFG|[1A3:|[2B2c|]\\n")
    >>> bars = split_bars(tokenize_body(tune.body, tune), tune)
    >>> [(b.text_in(tune.body), str(b.duration), b.ending) for b in bars]
    [('C', '1/4', None), ('EFG', '3/4', None), ('A3', '3/4', '1'), ('B2c', '3/4', '2')]
    >>> split_bars([])
    []
    """
    if isinstance(context, TuneText):
        context = Context.from_tune(context)
    initial_meter = context.meter if context else None
    meters: dict[str, Meter | None] = {}
    voice = context.voice if context else ""
    meter = initial_meter
    bars: list[Bar] = []
    current: list[Token] = []
    opening: dict[str, Token | None] = {}
    ending: dict[str, str | None] = {}
    bar_meter = meter

    def close(bar_line: Token | None) -> None:
        nonlocal bar_meter
        content = [t for t in current if t.kind not in TRIVIA_KINDS]
        if any(t.is_timed or t.kind is Kind.UNKNOWN or t.kind is Kind.GRACE for t in content):
            label = ending.get(voice)
            for token in content:
                if token.kind is Kind.ENDING:
                    label = token.text.lstrip("[")
            ending[voice] = label
            duration = Fraction(0)
            rest_bars = 1
            overlay = False
            for token in content:
                if token.kind is Kind.OVERLAY:
                    overlay = True
                elif token.duration is not None and not overlay:
                    duration += token.duration
                    if token.kind is Kind.REST and token.text[:1] in "ZX":
                        rest_bars = max(1, int(token.text[1:] or 1))
            expected = None
            if bar_meter is not None and not bar_meter.is_free:
                expected = bar_meter.bar_length * rest_bars
            body_tokens = content
            while len(body_tokens) > 1 and body_tokens[0].kind is Kind.ENDING:
                body_tokens = body_tokens[1:]
            first, last = body_tokens[0], body_tokens[-1]
            bars.append(Bar(len(bars), voice, first.start, last.end, first.line, tuple(
                t for t in current if first.start <= t.start < last.end), opening.get(voice),
                bar_line, duration, bar_meter, expected, label, rest_bars))
            if bars[-1].ends_part:
                ending[voice] = None
        opening[voice] = bar_line
        current.clear()
        bar_meter = meter

    for token in tokens:
        if token.voice != voice:
            close(None) if any(t.kind not in TRIVIA_KINDS for t in current) else current.clear()
            meters[voice] = meter
            voice = token.voice
            meter = meters.get(voice, initial_meter)
            bar_meter = meter
        if token.kind is Kind.BAR:
            close(token)
            continue
        if token.kind in (Kind.FIELD, Kind.INLINE_FIELD) and _field_name(token) == "M":
            try:
                meter = parse_meter(_field_value(token))
            except AbcError:
                pass
            if not any(t.is_timed for t in current):
                bar_meter = meter
        current.append(token)
    if any(t.kind not in TRIVIA_KINDS for t in current):
        close(None)
    return bars



def sounding_bars(tune: TuneText, tokens: list[Token] | None = None) -> list[Bar]:
    """The bars of ``tune`` that hold notes: what a musician counts as the tune's bars.

    ``tokens`` saves tokenizing again when the caller has them.

    >>> len(sounding_bars(parse_tune("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC|:EFG|z3|[1A3:|[2B2c|]\\n")))
    4
    """
    tokens = tokenize_body(tune.body, tune) if tokens is None else tokens
    return [bar for bar in split_bars(tokens, tune) if bar.notes]


def bar_count(tune: TuneText, tokens: list[Token] | None = None) -> int:
    """Bars of the melody as a musician counts them: short bars that make a full one between
    them (a pickup and the bar that closes its part) count once, so the count is the full bars
    plus the short bars' lengths in bars, rounded. In free meter every bar counts.

    >>> bar_count(parse_tune("X:1\\nM:2/4\\nL:1/8\\nK:C\\nC|DEFG|ABc|]\\n"))
    2
    >>> bar_count(parse_tune("X:1\\nM:6/8\\nL:1/8\\nK:G\\n|:D|GAB d2B|cBA G2:|\\n|:B|dBG d2B|cBA G2:|\\n"))
    4
    """
    tokens = tokenize_body(tune.body, tune) if tokens is None else tokens
    voice = next((t.voice for t in tokens if t.is_note), "")
    full, short = 0, Fraction(0)
    for bar in split_bars(tokens, tune):
        if bar.voice != voice or not bar.notes and not any(t.kind is Kind.REST for t in bar.tokens):
            continue
        if bar.expected is None or bar.duration >= bar.expected:
            full += 1
        else:
            short += bar.duration / bar.expected
    return full + round(short)


def length_in_bars(tune: TuneText, tokens: list[Token] | None = None) -> int:
    """The written length of the music over the bar length, rounded (every bar of every voice
    counts; in free meter, the number of bars): the size the training data records for a tune.
    :func:`bar_count` is the count a musician gives: it counts the melody's voice only, and
    leaves out bars with neither notes nor rests.

    >>> length_in_bars(parse_tune("X:1\\nM:2/4\\nL:1/8\\nK:D\\nA|DFAF|GBdB|AFDF|E2D|]\\n"))
    4
    >>> two_voices = parse_tune("X:1\\nM:2/4\\nL:1/8\\nK:D\\nV:1\\nDFAF|GBdB|]\\nV:2\\nD4|G4|]\\n")
    >>> length_in_bars(two_voices), bar_count(two_voices)
    (4, 2)
    """
    tokens = tokenize_body(tune.body, tune) if tokens is None else tokens
    bars = split_bars(tokens, tune)
    total = sum((bar.duration for bar in bars), Fraction(0))
    length = tune.meter.bar_length
    return round(total / length) if length else len(bars)


def _field_name(token: Token) -> str:
    return token.text[1] if token.kind is Kind.INLINE_FIELD else token.text[0]


def _field_value(token: Token) -> str:
    """The value of a field token (after the colon, without the closing bracket)."""
    if token.kind is Kind.INLINE_FIELD:
        return token.text[3:-1]
    return token.text[2:]
