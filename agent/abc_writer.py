"""Write a music21 score as ABC 2.1 text.

music21 reads ABC but has no ABC writer, so this module is the way back from a score to the
text the model reads and writes. It turns a :class:`music21.stream.Score` (or one Part) into
one ABC tune: a header (``X T C R M L Q K``), then the body, a few bars per line, with
``w:`` lyric lines under each music line and ``V:`` voices when the score has several parts.

What it writes: notes and rests with lengths relative to ``L:``, dotted notes, broken rhythm
(``A>B``), tuplets (``(3abc``, ``(p:q:r``), ties (also across bar lines), chords ``[CEG]2``,
quoted chord symbols, grace notes ``{g}``, octave marks, accidentals, bar lines, repeats,
first and second endings, pickups, key / meter / tempo changes, slurs, the common
articulations, ornaments and dynamics (``.``, ``!fermata!``, ``!trill!``, ``!p!``, ...) and
lyrics. Spaces group notes by beat, the way an engraver beams them.

Accidentals follow the ABC 2.1 rule that an accidental lasts to the end of the bar. Readers
disagree on the details (does ``^f`` also raise a later ``F`` an octave below? does an
accidental inside a chord or a grace group carry?), so the writer adds an accidental wherever
any of those readings would otherwise give a different pitch, and leaves out the ones that
every reading already implies. A ``%abc-2.1`` first line tells readers such as music21 to
apply the 2.1 rules rather than the older 1.3 ones.

A bar longer than its meter gets a meter change of its own length (``M:3/4`` for three
quarters in 2/4): readers such as music21 would otherwise split it in two.

Not written: text expressions, other decorations, clef changes inside a part,
octave-transposing clefs, and the ``x`` invisible rest (gaps inside a bar are filled with
``z`` rests). A part with two voices inside one bar, a key or meter change inside a bar, and
a score without notes raise :class:`~agent.errors.AbcError`.

>>> from music21 import converter
>>> score = converter.parse("X:1\\nT:Tiny\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d2B2|G4|]", format="abc")
>>> print(write_abc(score))
%abc-2.1
X:1
T:Tiny
M:2/4
L:1/8
K:G
GA Bc | d2 B2 | G4 |]
<BLANKLINE>
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from music21 import (articulations, bar, chord, clef, dynamics, expressions, harmony, key, meter,
                     note, pitch, spanner, stream, tempo)
from music21 import duration as m21duration

from agent.errors import AbcError
from agent.harmony import chord_name_of_figure
from agent.notation import MODE_SUFFIX, length_text

__all__ = ["WriterConfig", "write_abc", "BarDifference", "first_difference", "score_bars"]


@dataclass(frozen=True)
class WriterConfig:
    """How :func:`write_abc` lays out a tune."""

    reference_number: int = field(default=1, metadata={"help": "the X: number of the tune"})
    unit_length: Fraction | None = field(
        default=None,
        metadata={
            "help": "the L: unit note length as a fraction of a whole note; None picks 1/8, "
            "or 1/16 when that makes the body shorter"
        },
    )
    bars_per_line: int = field(default=4, metadata={"help": "bars on each music line"})
    version_line: bool = field(
        default=True,
        metadata={"help": "start with %abc-2.1 so readers apply ABC 2.1 accidental rules"},
    )
    broken_rhythm: bool = field(
        default=True, metadata={"help": "write a dotted pair such as 3/2 + 1/2 units as A>B"}
    )
    rhythm: str | None = field(
        default=None,
        metadata={"help": "R: field (reel, jig, ...) when the score's metadata has none"},
    )


# ---------------------------------------------------------------------------------------------
# Public entry point


def write_abc(
    score: stream.Score | stream.Part,
    *,
    reference_number: int = 1,
    unit_length: Fraction | str | None = None,
    bars_per_line: int = 4,
    config: WriterConfig | None = None,
) -> str:
    """Return ``score`` as the text of one ABC tune, ending with a newline.

    ``unit_length`` is the ``L:`` field ("1/8" or ``Fraction(1, 8)``); by default the writer
    takes 1/8, or 1/16 when that makes the text shorter. Pass ``config`` instead of the
    keywords for the less common settings (:class:`WriterConfig`).

    >>> from music21 import converter
    >>> tune = converter.parse("X:1\\nT:Jig\\nM:6/8\\nL:1/8\\nK:Dmix\\n|:A>Bc d2e|f3 =f3|d6:|",
    ...                        format="abc")
    >>> print(write_abc(tune, reference_number=7))
    %abc-2.1
    X:7
    T:Jig
    M:6/8
    L:1/8
    K:Dmix
    |: A>Bc d2e | f3 =f3 | d6 :|
    <BLANKLINE>

    A score without notes cannot be written:

    >>> from music21 import stream
    >>> write_abc(stream.Score())
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: the score has no notes to write
    """
    if config is None:
        config = WriterConfig(
            reference_number=reference_number,
            unit_length=_parse_unit(unit_length),
            bars_per_line=bars_per_line,
        )
    elif (reference_number, unit_length, bars_per_line) != (1, None, 4):
        raise ValueError("give either config or the keyword settings, not both")
    if config.bars_per_line < 1:
        raise ValueError("bars_per_line must be at least 1")

    parts = _parts_with_notes(score)
    chosen_unit = _parse_unit(config.unit_length)
    if chosen_unit is not None:
        unit, body = chosen_unit, _body_lines(parts, chosen_unit, config)
    else:
        unit, body = _shorter_body(parts, config)
    lines = ["%abc-2.1"] if config.version_line else []
    lines += _header_lines(score, parts[0], unit, config)
    return "\n".join(lines + body) + "\n"


def _body_lines(parts: list[stream.Stream], unit: Fraction, config: WriterConfig) -> list[str]:
    header_state = _initial_state(parts[0])
    lines: list[str] = []
    for index, part in enumerate(parts):
        if len(parts) > 1:
            lines.append(_voice_line(part, index))
        lines += _part_lines(part, unit, config, header_state)
    return lines


def _shorter_body(parts: list[stream.Stream], config: WriterConfig) -> tuple[Fraction, list[str]]:
    """Write the body with L:1/8 and with L:1/16; keep 1/16 only when it is shorter."""
    eighths = _body_lines(parts, Fraction(1, 8), config)
    sixteenths = _body_lines(parts, Fraction(1, 16), config)
    if sum(map(len, sixteenths)) < sum(map(len, eighths)):
        return Fraction(1, 16), sixteenths
    return Fraction(1, 8), eighths


def _parse_unit(unit: Fraction | str | None) -> Fraction | None:
    if unit is None:
        return None
    value = Fraction(unit)
    if value <= 0 or value > 1 or value.numerator != 1 or value.denominator & (
        value.denominator - 1
    ):
        raise ValueError(f"unit_length must be 1/1, 1/2, 1/4 ... 1/64, not {unit}")
    return value


# ---------------------------------------------------------------------------------------------
# What to write: parts, measures, events


def _parts_with_notes(score: stream.Stream) -> list[stream.Stream]:
    """The parts of ``score`` that hold notes (a Part or a part-less Score counts as one)."""
    if isinstance(score, stream.Opus):
        raise AbcError("an Opus holds several tunes; write each score on its own")
    if not isinstance(score, stream.Stream):
        raise AbcError(f"cannot write {type(score).__name__} as ABC: give a music21 Score")
    parts = list(score.parts) if isinstance(score, stream.Score) else []
    if not parts:
        parts = [score]
    # A part without notes (an empty V: declaration, say) carries nothing to write.
    parts = [p for p in parts if any(not _is_chord_symbol(n) for n in p.recurse().notes)]
    if not parts:
        raise AbcError("the score has no notes to write")
    return parts


def _is_chord_symbol(element) -> bool:
    return isinstance(element, harmony.Harmony)


def _bars_of(part: stream.Stream) -> list[stream.Stream]:
    """The measures of a part, or the part itself when it has no bar lines."""
    measures = list(part.getElementsByClass(stream.Measure))
    return measures or [part]


def _bar_contents(container: stream.Stream, number: int | None) -> stream.Stream:
    """The stream holding the notes of a bar: the bar itself or its single voice."""
    voices = [v for v in container.getElementsByClass(stream.Voice) if v.notesAndRests]
    if len(voices) > 1:
        raise AbcError("a bar with several voices cannot be written as one ABC voice", bar=number)
    return voices[0] if voices else container


@dataclass
class _Event:
    """One note, chord or rest as it will be written, with what goes in front of it."""

    element: note.GeneralNote | None  # None: a rest that fills a gap in the bar
    offset: Fraction
    length: Fraction  # quarter notes
    ratio: tuple[int, int] | None = None  # tuplet: p notes in the time of q
    symbols: list[str] = field(default_factory=list)  # chord symbols, quoted
    decorations: list[str] = field(default_factory=list)  # "!fermata!", ".", "!p!"
    inline_fields: str = ""  # "[Q:1/4=90]": a tempo change inside the bar
    slurs_opened: int = 0  # slurs that start on this note: "("
    slurs_closed: int = 0  # slurs that end on it: ")"
    graces: list[note.GeneralNote] = field(default_factory=list)
    trailing_graces: list[note.GeneralNote] = field(default_factory=list)  # after the note
    tuplet_marker: str = ""
    tuplet_member: bool = False  # in a tuplet group, after its first note
    broken: str = ""  # ">" or "<" between this event and the next
    after_broken: bool = False  # the second note of a broken-rhythm pair
    joined: bool = False  # no space before: beamed to the previous event

    @property
    def is_rest(self) -> bool:
        return self.element is None or isinstance(self.element, note.Rest)


def _frac(value) -> Fraction:
    return Fraction(value).limit_denominator(1 << 20)


def _tuplet_ratio(element: note.GeneralNote) -> tuple[int, int] | None:
    tuplets = element.duration.tuplets
    if not tuplets:
        return None
    actual = math.prod(t.numberNotesActual for t in tuplets)
    normal = math.prod(t.numberNotesNormal for t in tuplets)
    return None if actual == normal else (actual, normal)


def _bar_events(
    container: stream.Stream, number: int | None, full: Fraction | None = None
) -> list[_Event]:
    """The events of one bar in time order, chord symbols and grace notes attached.

    Gaps between notes become rests, and so does an empty bar (``full`` is the length of a
    full bar, when the meter gives one); notes that overlap cannot be written in one voice.
    """
    contents = _bar_contents(container, number)
    events: list[_Event] = []
    symbols: list[tuple[Fraction, str]] = []
    graces: list[note.GeneralNote] = []
    cursor = Fraction(0)
    for element in contents.notesAndRests:
        offset = _frac(element.offset)
        if _is_chord_symbol(element):
            symbols.append((offset, _chord_symbol_text(element)))
            continue
        if element.duration.isGrace:
            graces.append(element)
            continue
        length = _frac(element.duration.quarterLength)
        if length <= 0:
            raise AbcError(f"a {element.classes[0]} without length cannot be written", bar=number)
        if offset < cursor:
            raise AbcError(
                "notes overlap in one part; ABC needs one voice per part", bar=number
            )
        if offset > cursor:
            events.append(_Event(None, cursor, offset - cursor))
        event = _Event(element, offset, length, _tuplet_ratio(element), graces=graces)
        event.decorations = _decorations_of(element)
        graces = []
        events.append(event)
        cursor = offset + length
    if not events and graces:
        raise AbcError("a bar holds grace notes but no note to lean on", bar=number)
    if not events:
        if not full:
            raise AbcError("an empty bar without a meter cannot be written", bar=number)
        events.append(_Event(None, Fraction(0), full))
    if graces:  # grace notes after the bar's last note, as in "E2{F}|"
        events[-1].trailing_graces = graces
    _attach_chord_symbols(events, symbols)
    for mark in contents.getElementsByClass(dynamics.Dynamic):
        if mark.value in _DYNAMICS:
            _event_at(events, _frac(mark.offset)).decorations.insert(0, f"!{mark.value}!")
    for mark in contents.getElementsByClass(tempo.MetronomeMark):
        text = _tempo_field(mark)
        if _frac(mark.offset) > 0 and text:  # a change at the bar's start is a Q: line
            _event_at(events, _frac(mark.offset)).inline_fields += f"[Q:{text}]"
    return events


def _event_at(events: list[_Event], offset: Fraction) -> _Event:
    """The first event starting at or after ``offset``, else the last one."""
    return next((e for e in events if e.offset >= offset), events[-1])


def _attach_chord_symbols(events: list[_Event], symbols: list[tuple[Fraction, str]]) -> None:
    """Put each chord symbol on the first event starting at or after it (else the last)."""
    for offset, text in symbols:
        if events:
            _event_at(events, offset).symbols.append(text)


# Articulations and ornaments written as ABC 2.1 decorations; the long !name! forms, since
# music21 misreads some one-letter ones (H before a note can swallow it).
_DECORATION_TEXT = {
    articulations.Staccato: ".",
    articulations.Accent: "!accent!",
    articulations.Tenuto: "!tenuto!",
    articulations.UpBow: "!upbow!",
    articulations.DownBow: "!downbow!",
    expressions.Fermata: "!fermata!",
    expressions.Trill: "!trill!",
    expressions.Mordent: "!mordent!",
    expressions.InvertedMordent: "!uppermordent!",
    expressions.Turn: "!turn!",
}
_DYNAMICS = ("pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "ffff", "sfz")


def _decorations_of(element: note.GeneralNote) -> list[str]:
    """The decorations for a note's articulations and ornaments (others are not written)."""
    found = []
    for mark in list(element.expressions) + list(getattr(element, "articulations", [])):
        text = _DECORATION_TEXT.get(type(mark))
        if text and text not in found:
            found.append(text)
    return found


def _chord_symbol_text(symbol: harmony.Harmony) -> str:
    """ "Am", "Bb7", "N.C." — music21 spells flats with '-', ABC with 'b'."""
    if isinstance(symbol, harmony.NoChord):
        return '"N.C."'
    figure = symbol.figure or ""
    figure = chord_name_of_figure(figure).replace('"', "")
    return f'"{figure}"'


# ---------------------------------------------------------------------------------------------
# Lengths


def _written_units(event: _Event, unit_ql: Fraction) -> Fraction:
    """The length written in the text: a tuplet note is written at its untupleted length."""
    length = event.length
    if event.ratio:
        length = length * event.ratio[0] / event.ratio[1]
    return length / unit_ql


def _grace_units(grace: note.GeneralNote, unit_ql: Fraction) -> Fraction | None:
    kind = grace.duration.type
    if kind in ("zero", "complex", "inexpressible"):
        return None
    return _frac(m21duration.Duration(type=kind, dots=grace.duration.dots).quarterLength) / unit_ql


# ---------------------------------------------------------------------------------------------
# Tuplets, beams and broken rhythm


# The q that "(p" implies when only p is written (ABC 2.1 section 4.13), where it does not
# depend on the meter; for 5, 7 and 9 it does, so those are always written in full.
_TUPLET_DEFAULT_Q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}


def _mark_tuplets(events: list[_Event]) -> None:
    """Give the first event of each tuplet group its "(p:q:r" marker.

    A group is a run of events with the same ratio. Where the score marks where tuplets
    start and stop (MusicXML does), those marks cut the run; otherwise (ABC does not) a group
    ends as soon as it is complete: its untupleted lengths add up to p notes of one value at
    least as long as its longest note, as in (3ABc or (3:2:4A/A/AA. Any cut gives the right
    durations; this one gives the groups a person would write.
    """
    index = 0
    while index < len(events):
        ratio = events[index].ratio
        if ratio is None:
            index += 1
            continue
        p, q = ratio
        marked = _tuplet_edge(events[index], "start")
        end, nominal = index, []
        while end < len(events) and events[end].ratio == ratio:
            if end > index and _tuplet_edge(events[end], "start"):
                break
            nominal.append(events[end].length * p / q)
            end += 1
            if _tuplet_edge(events[end - 1], "stop"):
                break
            if not marked and _complete_tuplet(nominal, p):
                break
        count = end - index
        for member in events[index + 1 : end]:
            member.tuplet_member = True
        if _TUPLET_DEFAULT_Q.get(p) == q and count == p:
            events[index].tuplet_marker = f"({p}"
        else:
            events[index].tuplet_marker = f"({p}:{q}:{count}"
        index = end


def _complete_tuplet(nominal: list[Fraction], p: int) -> bool:
    """True when untupleted lengths make p notes of one power-of-two value, no shorter than
    the longest of them.

    >>> _complete_tuplet([Fraction(1, 2)] * 3, 3), _complete_tuplet([Fraction(1, 2)] * 2, 3)
    (True, False)
    >>> _complete_tuplet([Fraction(1, 2)], 2)  # half a duplet is not a duplet
    False
    """
    value = sum(nominal) / p
    power_of_two = (value.numerator & (value.numerator - 1)) == 0 and (
        value.denominator & (value.denominator - 1)
    ) == 0
    one_value = value.numerator == 1 or value.denominator == 1
    return power_of_two and one_value and value >= max(nominal)


def _tuplet_edge(event: _Event, kind: str) -> bool:
    tuplets = event.element.duration.tuplets if event.element is not None else ()
    return any(t.type == kind for t in tuplets)


def _mark_beams(
    events: list[_Event], time_signature: meter.TimeSignature | None, start: Fraction
) -> None:
    """Decide which events are written without a space before them: the beam groups.

    Groups follow the meter, as an engraver beams: a dotted quarter in 6/8, 9/8, 12/8 (where
    "A2B" is one group), a quarter in 2/4 and 3/4, half a bar of eighths in 4/4 and 2/2.
    Notes a quarter long or longer (in compound meters: a beat long) and rests stand alone;
    a tuplet is one word. ``start`` is where the bar's first event falls in a full bar (a
    pickup starts late). The score's own beams are not used: music21 invents them on import.
    """
    compound = _is_compound(time_signature)
    edges = _group_edges(events, time_signature, start)
    longest = _beat(time_signature) if compound else Fraction(1)
    for previous, current in zip(events, events[1:]):
        if current.graces or current.symbols or current.decorations or current.inline_fields:
            continue
        if current.tuplet_member:
            current.joined = True
            continue
        if current.tuplet_marker or current.is_rest or previous.is_rest:
            continue
        if previous.length >= longest or current.length >= longest:
            continue
        previous_group = _group_of(previous.offset + start, edges)
        same_group = previous_group == _group_of(current.offset + start, edges)
        current.joined = same_group and previous.offset + start + previous.length <= edges[
            previous_group + 1
        ]


def _is_compound(time_signature: meter.TimeSignature | None) -> bool:
    """6/8, 9/8, 12/8, 3/8, 6/16, ...: beats of three notes."""
    return (
        time_signature is not None
        and time_signature.denominator >= 8
        and time_signature.numerator % 3 == 0
    )


def _beat(time_signature: meter.TimeSignature | None) -> Fraction:
    """The beam-group length of a meter, in quarter notes (before 4/4's half bars)."""
    if time_signature is None:
        return Fraction(1)
    note_value = Fraction(4, time_signature.denominator)
    if _is_compound(time_signature):
        return 3 * note_value
    return max(note_value, Fraction(1)) if time_signature.denominator >= 8 else note_value


def _group_edges(
    events: list[_Event], time_signature: meter.TimeSignature | None, start: Fraction
) -> list[Fraction]:
    """Where beam groups begin (offsets in a full bar), ending past the bar's end."""
    beat = _beat(time_signature)
    end = max([start + e.offset + e.length for e in events] + [start + beat])
    edges = [Fraction(0)]
    while edges[-1] < end:
        edges.append(edges[-1] + beat)
    if time_signature is not None and time_signature.ratioString == "4/4":
        # Half bars of eighths make one group, unless they hold shorter notes.
        shorter = {
            int((start + e.offset) // 2)
            for e in events
            if e.length < Fraction(1, 2) and not e.is_rest
        }
        edges = [edge for edge in edges if edge % 2 == 0 or int(edge // 2) in shorter]
    edges.append(max(edges[-1], end) + beat)  # past the end: every group has an end
    return edges


def _group_of(offset: Fraction, edges: list[Fraction]) -> int:
    return max(index for index, edge in enumerate(edges) if edge <= offset)


def _mark_broken_rhythm(events: list[_Event], unit_ql: Fraction) -> None:
    """Turn a dotted pair that adds up to two units (3/2 + 1/2) into A>B or A<B."""
    index = 0
    while index + 1 < len(events):
        first, second = events[index], events[index + 1]
        if _can_break(first, second) and first.length + second.length == 2 * unit_ql:
            if first.length == 3 * second.length:
                first.broken = ">"
            elif second.length == 3 * first.length:
                first.broken = "<"
        if first.broken:
            second.after_broken = True
            index += 2
        else:
            index += 1


def _can_break(first: _Event, second: _Event) -> bool:
    plain = all(
        e.element is not None and not e.is_rest and e.ratio is None and not e.broken
        for e in (first, second)
    )
    # music21 loses the rhythm of "B>(c" and "B)>c": no broken rhythm next to a slur mark
    slur_free = not first.slurs_closed and not second.slurs_opened
    return plain and slur_free and second.joined and not _is_tied(first.element)


def _is_tied(element: note.GeneralNote | None) -> bool:
    return _tie_text(element) != ""


def _tie_text(element: note.GeneralNote | None) -> str:
    """A tie written after a whole note or chord: "-" or nothing."""
    if element is None or isinstance(element, note.Rest):
        return ""
    if isinstance(element, chord.Chord):
        # music21 keeps a chord's ties on its notes; all tied: "[CEG]-", some: "[C-EG]".
        ties = [n.tie for n in element.notes]
        if ties and all(t is not None and t.type in ("start", "continue") for t in ties):
            return "-"
        return ""
    tie = element.tie
    return "-" if tie is not None and tie.type in ("start", "continue") else ""


# ---------------------------------------------------------------------------------------------
# Accidentals


@dataclass(frozen=True)
class _Reading:
    """One way a reader may apply ABC accidentals inside a bar (see the module docstring)."""

    octave_only: bool  # an accidental affects its own octave only, not the whole pitch class
    chord_marks_carry: bool  # an accidental inside [..] carries to later notes
    chords_inherit: bool  # notes inside [..] take accidentals carried from earlier notes
    grace_marks_carry: bool
    graces_inherit: bool


_READINGS = tuple(_Reading(*flags) for flags in itertools.product((False, True), repeat=5))


class _BarAccidentals:
    """Tracks, for every reading, which alteration an unmarked note would get in this bar."""

    def __init__(self, key_alters: dict[str, int]):
        self.key_alters = key_alters
        self.carried: list[dict[tuple[str, int | None], int]] = [{} for _ in _READINGS]

    @staticmethod
    def _slot(reading: _Reading, p: pitch.Pitch) -> tuple[str, int | None]:
        return (p.step, p.implicitOctave if reading.octave_only else None)

    def needs_mark(self, p: pitch.Pitch, where: str) -> bool:
        """True when some reading would not give ``p`` to the note written without a mark."""
        alter = _alter_of(p)
        for reading, carried in zip(_READINGS, self.carried):
            implied = self.key_alters.get(p.step, 0)
            inherits = {
                "chord": reading.chords_inherit,
                "grace": reading.graces_inherit,
            }.get(where, True)
            if inherits:
                implied = carried.get(self._slot(reading, p), implied)
            if implied != alter:
                return True
        return False

    def marked(self, p: pitch.Pitch, where: str) -> None:
        """Record that ``p`` was written with an explicit accidental."""
        for reading, carried in zip(_READINGS, self.carried):
            carries = {
                "chord": reading.chord_marks_carry,
                "grace": reading.grace_marks_carry,
            }.get(where, True)
            if carries:
                carried[self._slot(reading, p)] = _alter_of(p)


def _alter_of(p: pitch.Pitch) -> int:
    alter = p.alter
    if alter != int(alter) or abs(alter) > 2:
        raise AbcError(f"{p.nameWithOctave}: microtones cannot be written in ABC")
    return int(alter)


_ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


def _pitch_text(p: pitch.Pitch, accidentals: _BarAccidentals, where: str) -> str:
    """One pitch as ABC: accidental when needed, letter, octave marks.

    C4 (middle C) is ``C``, C5 ``c``, C6 ``c'``, C3 ``C,``.
    """
    mark = ""
    if accidentals.needs_mark(p, where):
        mark = _ACCIDENTAL_TEXT[_alter_of(p)]
        accidentals.marked(p, where)
    octave = p.implicitOctave  # the written octave, or music21's default of 4
    if octave >= 5:
        letter = p.step.lower() + "'" * (octave - 5)
    else:
        letter = p.step + "," * (4 - octave)
    return mark + letter


# ---------------------------------------------------------------------------------------------
# Writing one bar


def _event_text(event: _Event, unit_ql: Fraction, accidentals: _BarAccidentals) -> str:
    """One event: chord symbols, grace notes, tuplet marker, decorations, the note itself,
    its length, tie, and > or <."""
    parts = [event.inline_fields] + event.symbols
    if event.graces:
        parts.append(_grace_group(event.graces, unit_ql, accidentals))
    parts.append(event.tuplet_marker)
    parts.append("(" * event.slurs_opened)  # after "(3": music21 misreads "((3"
    parts.extend(event.decorations)
    # Both notes of a broken-rhythm pair are written one unit long: A>B.
    if event.broken or event.after_broken:
        units = Fraction(1)
    else:
        units = _written_units(event, unit_ql)
    element = event.element
    if event.is_rest:
        parts.append("z")
    elif isinstance(element, chord.Chord):
        whole_chord_tied = _tie_text(element) != ""
        inner = ""
        for sub in element.notes:
            inner += _pitch_text(sub.pitch, accidentals, "chord")
            if not whole_chord_tied and _tie_text(sub):
                inner += "-"
        parts.append(f"[{inner}]")
    elif isinstance(element, note.Note):
        parts.append(_pitch_text(element.pitch, accidentals, "note"))
    else:
        raise AbcError(f"cannot write a {type(element).__name__} in ABC")
    parts.append(length_text(units))
    parts.append(_tie_text(element))
    parts.append(event.broken)
    if event.trailing_graces:
        parts.append(_grace_group(event.trailing_graces, unit_ql, accidentals))
    parts.append(")" * event.slurs_closed)
    return "".join(parts)


def _slur_ends(part: stream.Stream) -> tuple[collections.Counter, collections.Counter]:
    """How many slurs start and end on each note of a part (by id).

    Only slurs between two different notes or chords of the part are written; any other
    (on a rest, a grace note, or a note not in the part) is left out so that every "("
    has its ")".
    """
    playable = {
        id(n) for n in part.recurse().notes if not n.duration.isGrace and not _is_chord_symbol(n)
    }
    opened: collections.Counter = collections.Counter()
    closed: collections.Counter = collections.Counter()
    for slur in part.spannerBundle.getByClass(spanner.Slur):
        first, last = slur.getFirst(), slur.getLast()
        if first is not last and id(first) in playable and id(last) in playable:
            opened[id(first)] += 1
            closed[id(last)] += 1
    return opened, closed


def _grace_group(
    graces: list[note.GeneralNote], unit_ql: Fraction, accidentals: _BarAccidentals
) -> str:
    return "{" + "".join(_grace_text(g, unit_ql, accidentals) for g in graces) + "}"


def _grace_text(grace: note.GeneralNote, unit_ql: Fraction, accidentals: _BarAccidentals) -> str:
    units = _grace_units(grace, unit_ql)
    length = length_text(units) if units else ""
    if isinstance(grace, chord.Chord):
        inner = "".join(_pitch_text(n.pitch, accidentals, "grace") for n in grace.notes)
        return f"[{inner}]{length}"
    if isinstance(grace, note.Note):
        return _pitch_text(grace.pitch, accidentals, "grace") + length
    raise AbcError(f"cannot write a grace {type(grace).__name__} in ABC")


def _bar_text(events: list[_Event], unit_ql: Fraction, key_alters: dict[str, int]) -> str:
    accidentals = _BarAccidentals(key_alters)
    text = ""
    for index, event in enumerate(events):
        if index and not event.joined:
            text += " "
        text += _event_text(event, unit_ql, accidentals)
    return text


# ---------------------------------------------------------------------------------------------
# Header fields, keys, meters, tempi

def _key_field(signature: key.KeySignature | None) -> tuple[str, dict[str, int]]:
    """The K: value for a key signature and the alterations ABC readers take from it.

    >>> from music21 import key
    >>> _key_field(key.Key("F#", "dorian"))[0], _key_field(key.Key("B", "locrian"))[0]
    ('F#dor', 'Bloc')
    >>> _key_field(key.KeySignature(-3))
    ('Eb', {'B': -1, 'E': -1, 'A': -1})
    """
    if signature is None:
        return "none", {}
    if _is_unusual(signature):
        # An unusual set of accidentals (K:D exp _b ^f): write no signature and mark every
        # note instead, which every reader understands.
        return "none", {}
    if abs(signature.sharps) > 7:
        raise AbcError(f"a key signature of {signature.sharps} sharps cannot be written")
    alters = {p.step: int(p.alter) for p in signature.alteredPitches}
    mode = getattr(signature, "mode", None)
    tonic = getattr(signature, "tonic", None)
    if tonic is not None and mode in MODE_SUFFIX:
        if key.Key(tonic.name, mode).sharps == signature.sharps:
            return _abc_name(tonic.name) + MODE_SUFFIX[mode], alters
    major = signature.asKey("major").tonic.name
    return _abc_name(major), alters


def _is_unusual(signature: key.KeySignature) -> bool:
    """True for accidentals no number of sharps or flats gives (music21 may still say 0)."""
    if signature.sharps is None:
        return True
    usual = key.KeySignature(signature.sharps).alteredPitches
    return sorted(p.name for p in signature.alteredPitches) != sorted(p.name for p in usual)


def _abc_name(name: str) -> str:
    """music21 pitch name to ABC key name: 'B-' -> 'Bb'."""
    return name.replace("-", "b")


def _meter_field(time_signature: meter.TimeSignature | None) -> str:
    if time_signature is None:
        return "none"
    if time_signature.symbol == "common":
        return "C"
    if time_signature.symbol == "cut":
        return "C|"
    return time_signature.ratioString


def _tempo_field(mark: tempo.MetronomeMark) -> str | None:
    """Q:1/4=120 for a metronome mark; Q:"Allegro" for a text-only one."""
    number = mark.number
    if number is None:
        if mark.text and not mark.textImplicit:
            return f'"{mark.text}"'
        return None
    beat = _frac(mark.referent.quarterLength) / 4
    bpm = int(number) if float(number).is_integer() else round(number)
    return f"{beat.numerator}/{beat.denominator}={bpm}"


def _unit_field(unit: Fraction) -> str:
    return f"{unit.numerator}/{unit.denominator}"


@dataclass(frozen=True)
class _State:
    """What is in force at a point of the tune: key, meter and tempo as ABC field values."""

    key: str
    meter: str
    tempo: str | None
    alters: tuple = ()  # the key's accidentals, to tell a new key from a new name for it


def _initial_state(part: stream.Stream) -> _State:
    opening = _bars_of(part)[0]
    signature = _first_at_start(part, opening, key.KeySignature)
    time_signature = _first_at_start(part, opening, meter.TimeSignature)
    mark = _first_at_start(part, opening, tempo.MetronomeMark)
    key_text, alters = _key_field(signature)
    return _State(
        key_text,
        _meter_field(time_signature),
        _tempo_field(mark) if mark is not None else None,
        tuple(sorted(alters.items())),
    )


def _first_at_start(part: stream.Stream, opening: stream.Stream, cls):
    """The object of class ``cls`` at the very start of a part (in the part or its bar 1)."""
    direct = [e for e in part.getElementsByClass(cls) if _frac(e.offset) == 0]
    if direct:
        return direct[0]
    if opening is part:
        return None
    inside = [e for e in opening.getElementsByClass(cls) if _frac(e.offset) == 0]
    return inside[0] if inside else None


def _header_lines(
    score: stream.Stream, first_part: stream.Stream, unit: Fraction, config: WriterConfig
) -> list[str]:
    state = _initial_state(first_part)
    info = score.metadata if score.metadata is not None else None
    title = info.title if info is not None else None
    if not title and info is not None and info.movementName:
        # music21 names a movement after its file when nothing better is known
        if not re.search(r"\.(mxl|xml|musicxml|krn|abc|midi?)$", info.movementName):
            title = info.movementName
    composer = info.composer if info is not None else None
    rhythm = config.rhythm
    if rhythm is None and info is not None:
        custom = info.getCustom("rhythm")
        rhythm = str(custom[0]) if custom else None
    lines = [f"X:{config.reference_number}"]
    lines += [f"T:{_one_line(title)}"] if title else []
    lines += [f"C:{_one_line(composer)}"] if composer else []
    lines += [f"R:{_one_line(rhythm)}"] if rhythm else []
    lines.append(f"M:{state.meter}")
    lines.append(f"L:{_unit_field(unit)}")
    lines += [f"Q:{state.tempo}"] if state.tempo else []
    lines.append(f"K:{state.key}")
    return lines


def _one_line(text) -> str:
    return " ".join(str(text).split())


_CLEF_NAMES = {clef.BassClef: "bass", clef.AltoClef: "alto", clef.TenorClef: "tenor"}


def _voice_line(part: stream.Stream, index: int) -> str:
    """V:2 clef=bass name="Bass" — the start of one voice in a several-part score."""
    words = [f"V:{index + 1}"]
    first_clef = _first_at_start(part, _bars_of(part)[0], clef.Clef)
    clef_name = _CLEF_NAMES.get(type(first_clef))
    if clef_name:
        words.append(f"clef={clef_name}")
    if part.partName:
        words.append(f'name="{_one_line(part.partName).replace(chr(34), "")}"')
    return " ".join(words)


# ---------------------------------------------------------------------------------------------
# Bar lines and endings

_BARLINE_TEXT = {
    "regular": "|",
    "double": "||",
    "light-light": "||",
    "final": "|]",
    "light-heavy": "|]",
    "heavy-light": "[|",
}  # dotted and dashed bar lines are written plain: music21 does not read ".|" reliably


def _is_repeat(barline, direction: str) -> bool:
    return isinstance(barline, bar.Repeat) and barline.direction == direction


def _boundary_text(before, after) -> str:
    """The one bar line written between two bars, from the right bar line of the bar before
    and the left bar line of the bar after (music21 may put the same bar line on both)."""
    # music21 sometimes hangs a repeat on the other side of the bar line than it belongs
    ends = _is_repeat(before, "end") or _is_repeat(after, "end")
    starts = _is_repeat(after, "start") or _is_repeat(before, "start")
    if ends and starts:
        return "::"
    if ends:
        return ":|"
    if starts:
        return "|:"
    for barline in (before, after):
        if isinstance(barline, bar.Barline) and barline.type in _BARLINE_TEXT:
            if barline.type != "regular":
                return _BARLINE_TEXT[barline.type]
    return "|"


def _ending_labels(part: stream.Stream, bars: list[stream.Stream]) -> dict[int, str]:
    """Bar index -> "[1" for each bar that opens a first/second ending."""
    labels: dict[int, str] = {}
    position = {id(b): i for i, b in enumerate(bars)}
    for bracket in part.getElementsByClass(spanner.RepeatBracket):
        spanned = [position[id(m)] for m in bracket.getSpannedElements() if id(m) in position]
        if spanned and bracket.number:
            labels[min(spanned)] = "[" + str(bracket.number).replace(" ", "")
    return labels


# ---------------------------------------------------------------------------------------------
# Lyrics


class _Syllable(NamedTuple):
    """A syllable as ABC writes it: its text and where it stands in its word."""

    text: str
    syllabic: str  # single, begin, middle or end


def _writable(text: str) -> str:
    """A syllable's text as a w: line can hold it.

    "~" is how a w: line writes a space (and how music21 joins elided syllables); "_", "*"
    and "|" have meanings there and no escape, so they are left out.

    >>> _writable(" dolce~amor* "), _writable("_")
    ('dolce amor', '')
    """
    text = re.sub(r"[_*|\\]", "", text or "").replace("~", " ")
    return " ".join(text.split())


def _has_text(lyric: note.Lyric) -> bool:
    return bool(_writable(lyric.text))


def _part_lyrics(part: stream.Stream) -> dict[int, dict[int, _Syllable]]:
    """id of each sung note or chord -> {verse: syllable}, for one part.

    Verses are counted 1, 2, ... in the order of the lyric numbers the part uses (a part
    whose only lyrics are numbered 2 has one verse). ABC has one hyphen between two
    syllables of a word, where music21 (and MusicXML) let each syllable say on its own
    whether it joins the one before and the one after; the two can disagree ("mich" single,
    then "hast" end). Here two syllables are joined when either says so, and each syllable's
    place in its word follows from that: what a w: line can say.
    """
    sung = [
        n for n in part.recurse().notes
        if not n.duration.isGrace and not _is_chord_symbol(n) and n.lyrics
    ]
    numbers = sorted({lyric.number or 1 for n in sung for lyric in n.lyrics if _has_text(lyric)})
    verse_of = {number: rank for rank, number in enumerate(numbers, start=1)}
    by_verse: dict[int, list[tuple[int, note.Lyric]]] = collections.defaultdict(list)
    for n in sung:
        for lyric in n.lyrics:
            if _has_text(lyric):
                by_verse[verse_of[lyric.number or 1]].append((id(n), lyric))
    result: dict[int, dict[int, _Syllable]] = collections.defaultdict(dict)
    for verse, sequence in by_verse.items():
        joins = [
            first.syllabic in ("begin", "middle") or second.syllabic in ("middle", "end")
            for (_, first), (_, second) in zip(sequence, sequence[1:])
        ] + [False]
        joined_before = False
        for (element_id, lyric), joined_after in zip(sequence, joins):
            place = _PLACE_IN_WORD[(joined_before, joined_after)]
            result[element_id][verse] = _Syllable(_writable(lyric.text), place)
            joined_before = joined_after
    return dict(result)


_PLACE_IN_WORD = {
    (False, False): "single",
    (False, True): "begin",
    (True, True): "middle",
    (True, False): "end",
}


def _lyric_slots(
    events: list[_Event], lyrics: dict[int, dict[int, _Syllable]]
) -> list[dict[int, _Syllable] | None]:
    """One slot per note or chord (rests and grace notes take no syllable): verse -> syllable.
    ``None`` marks a rest, which ends a held syllable."""
    return [None if e.is_rest else lyrics.get(id(e.element), {}) for e in events]


def _syllable_text(text: str) -> str:
    """A writable syllable (see ``_writable``) escaped for a w: line: "~" for a space,
    "\\-" for a hyphen inside the syllable, "\\%" for a percent sign."""
    return text.replace("%", "\\%").replace(" ", "~").replace("-", "\\-")


def _verse_text(slots: list[dict[int, _Syllable] | None], verse: int) -> str:
    """The w: line for one verse over one music line (ABC 2.1 section 5.1).

    Syllables of a word are joined by ``-``; a note without a syllable is ``-`` inside a
    word, ``_`` while the last syllable is held (up to a rest), ``*`` otherwise.

    >>> slots = [{1: _Syllable("a", "begin")}, {}, {1: _Syllable("ble", "end")}, {}, None, {},
    ...          {1: _Syllable("go", "single")}]
    >>> _verse_text(slots, 1)
    'a--ble_ * go'
    """
    text = ""
    joining = False  # the last syllable ends with a hyphen: its word goes on
    held = False  # the last syllable is held over the following notes
    for slot in slots:
        if slot is None:  # a rest: no syllable slot, but a held syllable ends
            held = False
            continue
        syllable = slot.get(verse)
        if syllable is not None:
            word = _syllable_text(syllable.text)
            if joining:
                text += "-" + word
            else:
                text += (" " if text else "") + word
            joining = syllable.syllabic in ("begin", "middle")
            held = True
        elif joining:
            text += "-"  # a hyphen after a hyphen: the syllable lasts one more note
        elif held:
            text += "_"
        else:
            text += (" " if text else "") + "*"
    if joining:
        text += "-"
    return text


# ---------------------------------------------------------------------------------------------
# Writing one part


@dataclass
class _Bar:
    """One bar ready to lay out: its text, the field lines due before it, its lyric slots."""

    text: str
    fields: list[str]
    slots: list
    before: object  # left bar line
    after: object  # right bar line
    label: str = ""
    pickup: bool = False


def _part_lines(
    part: stream.Stream, unit: Fraction, config: WriterConfig, header: _State
) -> list[str]:
    bars = _bars_of(part)
    labels = _ending_labels(part, bars)
    lyrics = _part_lyrics(part)
    slurs = _slur_ends(part)
    unit_ql = unit * 4
    state = header
    signature = None
    time_signature = None
    prepared: list[_Bar] = []
    for index, container in enumerate(bars):
        number = container.number if isinstance(container, stream.Measure) else None
        _refuse_mid_bar_changes(container)
        opening = _first_at_start if index == 0 else _starting_in
        found_key = opening(part, container, key.KeySignature)
        found_meter = opening(part, container, meter.TimeSignature)
        found_tempo = opening(part, container, tempo.MetronomeMark)
        signature = found_key if found_key is not None else signature
        time_signature = found_meter if found_meter is not None else time_signature
        full = _frac(time_signature.barDuration.quarterLength) if time_signature else None
        events = _bar_events(container, number, full)
        for event in events:
            event.slurs_opened = slurs[0][id(event.element)]
            event.slurs_closed = slurs[1][id(event.element)]
        meter_text = _written_meter(
            time_signature, sum(e.length for e in events), container is part
        )
        new_state = _next_state(state, found_key, meter_text, found_tempo, index == 0)
        fields = _changed_fields(state, new_state)
        state = new_state
        _mark_tuplets(events)
        _mark_beams(events, time_signature, _pickup_start(container, time_signature, index == 0))
        if config.broken_rhythm:
            _mark_broken_rhythm(events, unit_ql)
        key_alters = _key_field(signature)[1]
        if container is part:
            return _unbarred_lines(events, unit_ql, key_alters, config, fields, lyrics)
        prepared.append(
            _Bar(
                text=_bar_text(events, unit_ql, key_alters),
                fields=_close_field_block(fields, unit),
                slots=_lyric_slots(events, lyrics),
                before=container.leftBarline,
                after=container.rightBarline,
                label=labels.get(index, ""),
                # a short bar that opens the tune or a section is a pickup: it does not
                # count towards the bars of its line
                pickup=_is_short(container, time_signature)
                and (index == 0 or _boundary_text(bars[index - 1].rightBarline,
                                                  container.leftBarline) != "|"),
            )
        )
    return _layout(prepared, config.bars_per_line, sung=bool(lyrics))


def _next_state(
    state: _State,
    found_key: key.KeySignature | None,
    meter_text: str,
    found_tempo: tempo.MetronomeMark | None,
    first_bar: bool,
) -> _State:
    """The key, meter and tempo in force from a bar on, given what the bar starts with."""
    new_state = dataclasses.replace(
        state,
        meter=meter_text,
        tempo=_tempo_field(found_tempo) if found_tempo is not None else state.tempo,
    )
    if found_key is None:
        return new_state
    key_text, alters = _key_field(found_key)
    alters = tuple(sorted(alters.items()))
    # The same accidentals under another name are a new key inside a part (G major to
    # E minor), but not at the start of a voice: a chorale's alto may say F major where the
    # soprano, and the header, say D minor.
    renamed = not first_bar and isinstance(found_key, key.Key)
    if alters != state.alters or renamed:
        return dataclasses.replace(new_state, key=key_text, alters=alters)
    return new_state


def _written_meter(
    time_signature: meter.TimeSignature | None, content: Fraction, unbarred: bool = False
) -> str:
    """The M: value for a bar: its meter, or, for a bar longer than its meter, a meter of the
    bar's own length (6/4 for a bar of six quarters in 2/4).

    music21 splits a bar that is longer than its meter in two, so such a bar would not read
    back as one bar without a meter that fits it.

    >>> _written_meter(meter.TimeSignature("2/4"), Fraction(3)), _written_meter(None, Fraction(9))
    ('3/4', 'none')
    >>> _written_meter(meter.TimeSignature("6/8"), Fraction(7, 2))
    '7/8'
    """
    if time_signature is None:
        return "none"
    if unbarred or content <= _frac(time_signature.barDuration.quarterLength):
        return _meter_field(time_signature)
    denominator = time_signature.denominator
    while (content * denominator / 4).denominator != 1:
        denominator *= 2
    return f"{content * denominator / 4}/{denominator}"


def _changed_fields(before: _State, after: _State) -> list[str]:
    """Field lines that take the tune from one state to the next, in the order M: Q: K:."""
    fields = []
    if after.meter != before.meter:
        fields.append(f"M:{after.meter}")
    if after.tempo != before.tempo and after.tempo is not None:
        fields.append(f"Q:{after.tempo}")
    if after.key != before.key:
        fields.append(f"K:{after.key}")
    return fields


def _pickup_start(
    container: stream.Stream, time_signature: meter.TimeSignature | None, first: bool
) -> Fraction:
    """Where a bar's first note falls in a full bar: late in a pickup, else 0."""
    if not first or not isinstance(container, stream.Measure):
        return Fraction(0)
    if not _is_short(container, time_signature):
        return Fraction(0)
    if container.paddingLeft:
        return _frac(container.paddingLeft)
    full = _frac(time_signature.barDuration.quarterLength)
    return full - _frac(container.duration.quarterLength)


def _is_short(measure: stream.Stream, time_signature: meter.TimeSignature | None) -> bool:
    if time_signature is None:
        return False
    content = _frac(measure.duration.quarterLength)
    return 0 < content < _frac(time_signature.barDuration.quarterLength)


def _close_field_block(fields: list[str], unit: Fraction) -> list[str]:
    """Field lines due before a bar, ended by a repeat of L: (which changes nothing).

    music21 drops the last field line standing right before a note (it reads it as a bar
    boundary), which would lose a meter, key or tempo change; the L: line takes that place.
    """
    return fields + [f"L:{_unit_field(unit)}"] if fields else fields


def _starting_in(part: stream.Stream, container: stream.Stream, cls):
    """The last object of class ``cls`` at the start of a bar (not the first bar)."""
    found = [e for e in container.getElementsByClass(cls) if _frac(e.offset) == 0]
    return found[-1] if found else None


def _refuse_mid_bar_changes(container: stream.Stream) -> None:
    for cls in (key.KeySignature, meter.TimeSignature):
        for element in container.getElementsByClass(cls):
            if _frac(element.offset) != 0:
                number = container.number if isinstance(container, stream.Measure) else None
                raise AbcError(
                    f"a {cls.__name__} in the middle of a bar cannot be written", bar=number
                )


def _layout(bars: list[_Bar], bars_per_line: int, sung: bool) -> list[str]:
    """Music lines of ``bars_per_line`` bars (a pickup does not count), each followed by its
    w: lines; a line also ends before a key, meter or tempo change and after a repeat or
    double bar that closes a section."""
    lines: list[str] = []
    current: list[_Bar] = []
    counted = 0
    # The bar line that opens the next music line: a repeat sign split at a line break
    # ("|:" or "::" becomes "|" or ":|" at the end of one line and "|:" at the next).
    opening = _boundary_text(None, bars[0].before) if bars else "|"
    opening = opening if opening in ("|:", "[|") else ""

    def flush(closing: str) -> None:
        nonlocal current, counted, opening
        if not current:
            return
        lines.append(_music_line(current, opening, closing))
        lines.extend(_lyric_lines([b.slots for b in current], sung))
        current, counted = [], 0
        opening = "|:" if closing in ("|:", "::") else ""

    for index, item in enumerate(bars):
        if item.fields and current:
            flush(_boundary_text(bars[index - 1].after, item.before))
        lines.extend(item.fields)
        current.append(item)
        counted += 0 if item.pickup else 1
        following = bars[index + 1] if index + 1 < len(bars) else None
        closing = _boundary_text(item.after, following.before if following else None)
        section_end = closing != "|" and not (
            closing == ":|" and following is not None and following.label
        )
        # A full line still takes another bar while a word of the lyrics runs on into it.
        full = counted >= bars_per_line and (
            counted >= 2 * bars_per_line or not _word_runs_on([b.slots for b in current])
        )
        if following is None or full or section_end:
            flush(closing)
    return lines


def _word_runs_on(slot_lists: list[list]) -> bool:
    """True when, in some verse, the last syllable in these slots ends with a hyphen."""
    last: dict[int, _Syllable] = {}
    for slots in slot_lists:
        for slot in slots:
            for verse, lyric in (slot or {}).items():
                last[verse] = lyric
    return any(lyric.syllabic in ("begin", "middle") for lyric in last.values())


def _music_line(bars: list[_Bar], opening: str, closing: str) -> str:
    """One music line: the bars with the bar lines between them and the closing bar line."""
    first = bars[0]
    text = opening + first.label
    text += (" " if text else "") + first.text
    for previous, item in zip(bars, bars[1:]):
        text += " " + _boundary_text(previous.after, item.before) + item.label + " " + item.text
    closing = closing if closing != "::" else ":|"
    if closing == "|:":
        closing = "|"
    return text + " " + closing


def _lyric_lines(slot_lists: list[list], sung: bool) -> list[str]:
    """The w: lines under one music line, one per verse.

    In a part with lyrics (``sung``) every music line with notes gets at least a verse-1
    line, all ``*`` if need be: readers that align a w: line with all the music since the
    previous w: line then agree with those that take only the line above.
    """
    slots = [slot for bar_slots in slot_lists for slot in bar_slots]
    verses = sorted({verse for slot in slots if slot for verse in slot})
    if not verses and not (sung and any(slot is not None for slot in slots)):
        return []
    lines = []
    for verse in range(1, max(verses or [1]) + 1):
        lines.append(f"w:{_verse_text(slots, verse)}")
    return lines


def _unbarred_lines(
    events: list[_Event],
    unit_ql: Fraction,
    key_alters: dict[str, int],
    config: WriterConfig,
    fields: list[str],
    lyrics: dict[int, dict[int, _Syllable]],
) -> list[str]:
    """A part without bar lines: lines of about ``4 * bars_per_line`` beats, no bar lines.

    Accidentals never reset (there is no bar to end them), so one tracker covers it all.
    """
    accidentals = _BarAccidentals(key_alters)
    lines: list[str] = list(fields)
    chunk: list[_Event] = []
    span = Fraction(4 * config.bars_per_line)
    start = Fraction(0)

    def flush() -> None:
        text = ""
        for position, event in enumerate(chunk):
            if position and not event.joined:
                text += " "
            text += _event_text(event, unit_ql, accidentals)
        lines.append(text)
        lines.extend(_lyric_lines([_lyric_slots(chunk, lyrics)], bool(lyrics)))

    for event in events:
        long_enough = event.offset - start >= span and not event.joined and not event.ratio
        word_open = _word_runs_on([_lyric_slots(chunk, lyrics)])
        if chunk and long_enough and (not word_open or event.offset - start >= 2 * span):
            flush()
            chunk, start = [], event.offset
        chunk.append(event)
    if chunk:
        flush()
    return lines


# ---------------------------------------------------------------------------------------------
# Comparing scores bar by bar (the round-trip check)


@dataclass(frozen=True)
class BarDifference:
    """Where two scores first differ: part and bar (0-based indexes), a cause, the details."""

    part: int
    bar: int
    cause: str
    detail: str

    def __str__(self) -> str:
        return f"part {self.part + 1}, bar {self.bar + 1}: {self.cause}: {self.detail}"


def score_bars(score: stream.Stream) -> list[list[tuple]]:
    """The notes of each part with notes, bar by bar, as comparable tuples.

    Each note, chord or rest is ``(offset in bar, MIDI pitches, quarter length)``; grace
    notes have length 0; chord symbols are left out. A part without bar lines is one bar.

    >>> from music21 import converter
    >>> bars = score_bars(converter.parse("X:1\\nM:2/4\\nL:1/8\\nK:C\\nC2 z2|[CE]4|C4|]",
    ...                                   format="abc"))
    >>> [len(part) for part in bars], bars[0][1]
    ([3], ((Fraction(0, 1), (60, 64), Fraction(2, 1)),))
    """
    result = []
    for part in _parts_with_notes(score):
        bars = []
        for container in _bars_of(part):
            events = []
            for element in _bar_contents(container, None).notesAndRests:
                if _is_chord_symbol(element):
                    continue
                midis = tuple(sorted(p.midi for p in getattr(element, "pitches", ())))
                events.append(
                    (_frac(element.offset), midis, _frac(element.duration.quarterLength))
                )
            bars.append(tuple(events))
        result.append(bars)
    return result


def score_lyrics(score: stream.Stream) -> list[list[tuple]]:
    """Per part with notes, per bar, the lyrics: (offset, verse, text, syllabic) tuples.

    Verses are counted 1, 2, ... in the order of the lyric numbers the part uses, and a
    syllable's place in its word is taken as ABC can write it (see ``_part_lyrics``)."""
    result = []
    for part in _parts_with_notes(score):
        lyrics = _part_lyrics(part)
        bars = []
        for container in _bars_of(part):
            found = []
            for element in _bar_contents(container, None).notes:
                for verse, syllable in sorted(lyrics.get(id(element), {}).items()):
                    found.append((_frac(element.offset), verse, *syllable))
            bars.append(tuple(found))
        result.append(bars)
    return result


def first_difference(
    expected: stream.Stream, actual: stream.Stream, *, lyrics: bool = True
) -> BarDifference | None:
    """Compare two scores bar by bar: notes (offset, pitches, length) and lyrics.

    Returns ``None`` when they agree, else the first difference with a short cause
    ("pitch", "length", "offset", "bar count", ...) for grouping failures.

    >>> from music21 import converter
    >>> a = converter.parse("X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|F4|]", format="abc")
    >>> b = converter.parse("X:1\\nM:2/4\\nL:1/8\\nK:C\\nGABc|d4|F4|]", format="abc")
    >>> first_difference(a, a) is None
    True
    >>> print(first_difference(a, b))
    part 1, bar 3: pitch: expected F#4 (2 at 0), got F4 (2 at 0)
    """
    left, right = score_bars(expected), score_bars(actual)
    if len(left) != len(right):
        return BarDifference(0, 0, "part count", f"expected {len(left)} parts, got {len(right)}")
    for part_index, (bars_a, bars_b) in enumerate(zip(left, right)):
        for bar_index, (bar_a, bar_b) in enumerate(zip(bars_a, bars_b)):
            found = _bar_difference(bar_a, bar_b)
            if found:
                return BarDifference(part_index, bar_index, *found)
        if len(bars_a) != len(bars_b):
            return BarDifference(
                part_index,
                min(len(bars_a), len(bars_b)),
                "bar count",
                f"expected {len(bars_a)} bars, got {len(bars_b)}",
            )
    if lyrics:
        for part_index, (bars_a, bars_b) in enumerate(
            zip(score_lyrics(expected), score_lyrics(actual))
        ):
            for bar_index, (bar_a, bar_b) in enumerate(zip(bars_a, bars_b)):
                if bar_a != bar_b:
                    return BarDifference(
                        part_index, bar_index, "lyrics", f"expected {bar_a}, got {bar_b}"
                    )
    return None


def _bar_difference(bar_a: tuple, bar_b: tuple) -> tuple[str, str] | None:
    if (not bar_a or not bar_b) and _silent(bar_a) and _silent(bar_b):
        return None  # an empty bar is written as a bar's rest
    for event_a, event_b in zip(bar_a, bar_b):
        if event_a == event_b:
            continue
        offset_a, midis_a, length_a = event_a
        offset_b, midis_b, length_b = event_b
        if offset_a != offset_b:
            cause = "offset"
        elif midis_a != midis_b:
            cause = "pitch"
        else:
            cause = "length"
        return cause, f"expected {_show_event(event_a)}, got {_show_event(event_b)}"
    if len(bar_a) != len(bar_b):
        return "note count", f"expected {len(bar_a)} notes, got {len(bar_b)}"
    return None


def _silent(events: tuple) -> bool:
    """Only rests, or nothing at all."""
    return all(not midis for _, midis, _ in events)


def _show_event(event: tuple) -> str:
    offset, midis, length = event
    names = "+".join(pitch.Pitch(midi=m).nameWithOctave for m in midis) or "rest"
    return f"{names} ({length} at {offset})"
