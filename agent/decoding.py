"""Constrained decoding of ABC tune bodies: every bar the model writes is exactly full.

A small model does not count beats, and it does not stop. This module makes both impossible to
get wrong: while the model writes a tune body, an incremental automaton (:class:`BodyState`)
follows the text character by character and answers, for every candidate token, "can the text
still be completed into a valid body?". The sampler (:func:`agent.sampler.choose_token`) keeps
only tokens for which the answer is yes.

What the automaton enforces (the *canonical body grammar*: what the project's ABC writer
produces, so a model trained on its output is not fought by the mask):

* Elements: notes (``^^ ^ __ _ =`` accidentals, letters ``A-G a-g``, up to two ``,`` or ``'``
  octave marks, a length such as ``2``, ``3/2``, ``/2``, ``/``), rests ``z``, chords ``[CEG]2``
  (2-4 notes, the length after the bracket), tuplets ``(2`` ``(3`` ``(4`` whose notes share one
  written length, ties ``-`` (the next note must spell the same pitch with the accidental it
  sounds with; a tied chord is followed by the same chord), broken rhythm ``A>B`` / ``A<B``.
* Before an element: chord symbols ``"Am"`` (a fixed vocabulary, see
  :data:`CHORD_SYMBOL_QUALITIES`), decorations ``.`` and ``!trill!`` (:data:`DECORATIONS`),
  grace groups ``{ag}``, slur starts ``(``; after it: a grace group and slur ends ``)``. Slurs
  may run over bar lines and are all closed by the end. One element takes at most one chord
  symbol, one grace group before it and one after, one slur start and two decorations; a bar
  takes one dynamic mark (``!mf!``). ``ornaments=False`` leaves out slurs, grace notes and
  decorations.
* At most ``max_accidentals_per_bar`` accidentals in a bar; ``^^`` and ``__`` only with
  ``double_accidentals``.
* Lengths live on a grid of ``1/subdivision`` of ``L:`` (sixteenth notes for ``L:1/8``); a bar
  line may only come when the bar is exactly full, and a full bar must close.
* Single spaces between beam groups (also inside tuplets); no space at the start of a bar,
  after a chord symbol, decoration or tuplet mark, or around ``>``.
* Bar lines come from a :class:`FormPlan`: plain ``|`` inside a part, ``|:`` ``:|`` around
  repeated parts, ``[1`` ``[2`` endings, ``|]`` at the end, and a line break after every
  ``bars_per_line`` bars and at every part end. The last bar ends the tune.
* Nothing else: no inline fields, no ``w:`` lines (lyrics are written by another module), no
  comments, and no character outside :data:`BODY_CHARS` (ASCII only).

On 40 random tunes of music21's corpus as the ABC writer spells them, 91% of the bars are in
this grammar, each read on its own (``scripts/bench_decoding.py`` measures it, 2026-12-02); most
of the rest carry more than the two decorations a bar may hold (staccato dots on every note,
bowing marks), a few close slurs the writer left open.

Pickups: with ``allow_pickup=False`` every bar is full. With ``allow_pickup=True`` (what the
composer asks for: most dance tunes of the corpus begin each part with one) the tune may open
with an anacrusis, a short bar closed by a plain ``|`` that is not one of the plan's bars. Its
length P then holds for the whole tune, as players expect when a part repeats: every later
section opens with a pickup of exactly P, and every bar that closes a section (``:|``, ``||``,
``|]``) holds a full bar minus P, so that it makes a full bar with the pickup it leads back or
on to. The plan's bar count is the count of musical bars, as the validator and the benchmark
count them (a pickup with the bar that completes it).

Repetition (a tiny model loops on one bar, or one note): a bar may repeat the bar before it
at most ``max_repeats_in_a_row`` times, a run of ``block_ngram`` bars may not copy an earlier
run, at most ``max_pitch_run`` notes in a row sit on one pitch, and a bar holds at most
``max_ties_per_bar`` ties. Repeated sections are written with repeat signs, so these rules
leave the repetition music has. The bar rules are checked before a bar fills, so they do not
leave the decoder without a move; if a state ever has no way forward under them,
:func:`agent.sampler.choose_token` lifts them for that bar and says so in its result.

The same grammar, minus what a context-free grammar of bars cannot say (tie pitches, slur
balance, repetition), is emitted as EBNF by :func:`grammar_ebnf` for a serving engine's guided
decoding (xgrammar, llama.cpp GBNF, vLLM). xgrammar 0.2.8 compiles it and accepts the bodies
this automaton writes.

Why a hand-written automaton rather than xgrammar or outlines: the bar arithmetic needs
durations (with tuplets and broken rhythm) rather than characters, and the repetition and tie
rules need the bars and notes written so far; both are a few lines here and cannot be said in a
context-free grammar. Measured on 2 CPU cores (``scripts/bench_decoding.py``): one candidate
check takes about 2 µs, and the whole constrained step (penalty, about 40 checks, sampling)
about 1 ms per token, 1-3% of SmolLM2-135M's forward pass (88 ms float32, 29 ms int8).
xgrammar 0.2.8 (installed without its dependencies) needed about 6 ms per token to fill its
token mask for this grammar on the same machine when it was busy, where this step took 2-3 ms;
its Linux wheel also pulls in triton.

:mod:`agent.abc_text` reads finished ABC; the decoder needs to judge *unfinished* text (a note
whose length digits may still follow), so this module keeps its own character-level automaton
and reuses ``abc_text`` for the header fields (``parse_meter``, ``parse_unit_length``) and for
splitting existing tunes into bars.

>>> spec = body_spec("3/4", "1/8", FormPlan.through(2))
>>> state = start_state(spec)
>>> state.feed("A2 B2 c2 | d6 |]").is_complete
True
>>> state.feed("A2 B2 c2 d |") is None   # the bar is already full: d cannot come
True
>>> state.feed("A2 B2 |") is None        # the bar is not full yet
True
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple, Sequence

from agent.abc_text import parse_meter, parse_unit_length
from agent.errors import TunesmithError

__all__ = [
    "DecodingError",
    "Part",
    "FormPlan",
    "Boundary",
    "plan_boundaries",
    "RepetitionRules",
    "BodySpec",
    "BodyState",
    "body_spec",
    "start_state",
    "normalize_bar",
    "grammar_rules",
    "grammar_ebnf",
    "Literal",
]

# --------------------------------------------------------------------------------------------
# The alphabet of the canonical body grammar

NOTE_LETTERS = frozenset("ABCDEFGabcdefg")
ACCIDENTALS = ("^^", "^", "__", "_", "=")
LENGTH_CHARS = frozenset("0123456789/")
#: Tuplets allowed: p notes in the time of q (ABC 2.1 section 4.13; q does not depend on the
#: meter for these three).
TUPLETS = {2: 3, 3: 2, 4: 3}
MAX_OCTAVE_MARKS = 2
MAX_CHORD_NOTES = 4
CHORD_SYMBOL_ROOTS = tuple(r + a for r in "ABCDEFG" for a in ("", "#", "b"))
#: Chord-symbol qualities the composer may write after a root (and before an optional /bass).
CHORD_SYMBOL_QUALITIES = (
    "", "m", "7", "m7", "maj7", "dim", "dim7", "o", "o7", "aug", "+", "sus2", "sus4", "7sus4",
    "6", "m6", "9", "m9", "add9", "m7b5",
)
#: Decorations written between ``!`` (those the project's ABC writer uses); ``.`` is staccato.
DYNAMICS = frozenset({"pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "ffff", "sfz"})
DECORATIONS = frozenset({
    "accent", "tenuto", "upbow", "downbow", "fermata", "trill", "mordent", "uppermordent", "turn",
}) | DYNAMICS
#: Bowing marks: performance instructions of fiddle studies rather than of a tune.
BOWINGS = frozenset({"upbow", "downbow"})
#: What a composed tune may carry by default: the ornaments, without bowings and dynamics. In
#: the corpus those come with fiddle studies written mostly in sixteenths; a model that opens
#: with one follows them there (on 24 suite tunes, half the sixteenths came with them).
ORNAMENT_MARKS = DECORATIONS - DYNAMICS - BOWINGS


def _prefixes(names: frozenset[str]) -> frozenset[str]:
    """Every prefix of every name (the empty one included): what may be typed on the way."""
    return frozenset(d[:cut] for d in names for cut in range(len(d) + 1))


#: Lengths a grace note may have.
GRACE_LENGTHS = frozenset({"", "/", "/2", "/4", "/8", "2", "3", "4", "3/2", "3/4"})
_GRACE_LENGTH_PREFIXES = _prefixes(GRACE_LENGTHS)
MAX_GRACE_NOTES = 4
MAX_SLURS = 8  # slurs open at once (long slurs in the corpus nest several deep)
MAX_DECORATIONS = 2  # decorations on one element, besides one dynamic mark
BAR_CHARS = frozenset("|:")
#: Every character a body token may contain.
BODY_CHARS = frozenset(
    "ABCDEFGabcdefgz^_=,'0123456789/[]()\"-<>|: \n#.!{}"
    + "".join(sorted({c for q in CHORD_SYMBOL_QUALITIES for c in q}))
    + "".join(sorted({c for d in DECORATIONS for c in d}))
)

# Modes of the automaton
(_BOUNDARY, _START, _AFTER, _ACC, _NOTE, _REST, _CHORD, _CHORD_LEN, _SYMBOL, _PAREN, _DECO, _GRACE,
 _FINAL) = range(13)


class DecodingError(TunesmithError):
    """The constrained decoder found no way to go on (a bug in the grammar, never the model's
    fault), or was set up with a plan it cannot follow."""


# --------------------------------------------------------------------------------------------
# Form plans and bar lines


@dataclass(frozen=True)
class Part:
    """One section of a tune: ``bars`` written bars the first time through (endings included),
    played twice when ``repeat``; ``ending_bars`` > 0 writes first and second endings of that
    many bars (the second ending adds ``ending_bars`` written bars)."""

    bars: int
    repeat: bool = False
    ending_bars: int = 0

    @property
    def written_bars(self) -> int:
        return self.bars + self.ending_bars


@dataclass(frozen=True)
class FormPlan:
    """The sections of a tune and how many bars go on a line.

    >>> FormPlan.dance(8).total_bars, FormPlan.through(12).total_bars
    (16, 12)
    >>> FormPlan((Part(8, repeat=True, ending_bars=2),)).total_bars
    10
    >>> FormPlan((Part(4, ending_bars=1),))
    Traceback (most recent call last):
    ...
    agent.decoding.DecodingError: a part with endings must repeat
    """

    parts: tuple[Part, ...]
    bars_per_line: int = 4

    def __post_init__(self) -> None:
        if not self.parts:
            raise DecodingError("a form plan needs at least one part")
        for part in self.parts:
            if part.bars < 1:
                raise DecodingError("every part needs at least one bar")
            if part.ending_bars and not part.repeat:
                raise DecodingError("a part with endings must repeat")
            if part.ending_bars < 0 or part.ending_bars >= part.bars:
                raise DecodingError("endings must be shorter than their part")
        if self.bars_per_line < 1:
            raise DecodingError("bars_per_line must be at least 1")

    @property
    def total_bars(self) -> int:
        return sum(part.written_bars for part in self.parts)

    @classmethod
    def through(cls, bars: int, bars_per_line: int = 4) -> "FormPlan":
        """One section, no repeats."""
        return cls((Part(bars),), bars_per_line)

    @classmethod
    def dance(cls, bars_per_part: int = 8, parts: int = 2, bars_per_line: int = 4) -> "FormPlan":
        """AABB...: ``parts`` repeated sections, the usual shape of reels, jigs and hornpipes."""
        return cls(tuple(Part(bars_per_part, repeat=True) for _ in range(parts)), bars_per_line)


@dataclass(frozen=True)
class Boundary:
    """What may be written between two bars (or before the first): every allowed spelling.

    ``plain`` means an ordinary bar line inside a section, the only kind a tie may cross;
    ``final`` ends the body.
    """

    texts: tuple[str, ...]
    plain: bool = False
    final: bool = False
    section_end: bool = False  # the bar before it closes a section (with a pickup it is short)
    section_start: bool = False  # the bar after it opens a section (a pickup may come first)


#: The bar line after a pickup: plain, though no tie may cross it.
PICKUP_BAR_LINE = Boundary(("|", "| "))


def _boundary(close: str, opening: str, line_break: bool, final: bool) -> Boundary:
    """All spellings of one bar line: the closing sign, then a line break or an optional space,
    then the opening sign (``|:``, ``[1``, ``[2``) and an optional space. The space before the
    closing sign is the automaton's business (it belongs to the bar)."""
    if final:
        return Boundary((close,), final=True)
    if line_break:
        texts = [close + "\n" + opening] + ([close + "\n" + opening + " "] if opening else [])
    elif not opening:
        texts = [close, close + " "]
    else:
        joins = (" ",) if opening.startswith("|") else ("", " ")
        texts = [close + j + opening + t for j in joins for t in ("", " ")]
        if (close, opening) == (":|", "|:"):
            texts += ["::", ":: "]
    return Boundary(tuple(texts), plain=(close == "|" and not opening))


def plan_boundaries(plan: FormPlan) -> tuple[Boundary, ...]:
    """The boundary before bar 1 and after every bar of ``plan`` (``total_bars + 1`` of them).

    >>> [b.texts[0] for b in plan_boundaries(FormPlan.dance(2, bars_per_line=2))]
    ['', '|', ':|\\n|:', '|', ':|']
    >>> plan_boundaries(FormPlan.dance(2))[0].texts
    ('', '|:', '|: ')
    """
    first = plan.parts[0]
    bounds = [Boundary(("", "|:", "|: ") if first.repeat else ("",), section_start=True)]
    for index, part in enumerate(plan.parts):
        following = plan.parts[index + 1] if index + 1 < len(plan.parts) else None
        opening_next = "|:" if following is not None and following.repeat else ""
        common = part.bars - part.ending_bars
        for bar in range(1, part.written_bars + 1):
            final = following is None and bar == part.written_bars
            line_break = bar % plan.bars_per_line == 0
            close, opening = "|", ""
            if part.ending_bars and bar == common:
                opening = "[1"
            elif part.ending_bars and bar == part.bars:
                close, opening = ":|", "[2"
            elif bar == part.written_bars:
                line_break = True
                close = ":|" if part.repeat and not part.ending_bars else ("|]" if final else "||")
                opening = opening_next
            boundary = _boundary(close, opening, line_break, final)
            if close != "|":  # a part (or a first ending) ends here
                boundary = replace(boundary, section_end=True,
                                   section_start=not final and opening != "[2")
            bounds.append(boundary)
    return tuple(bounds)


@dataclass(frozen=True)
class RepetitionRules:
    """Repetition control for bars and notes (0 switches a rule off)."""

    max_repeats_in_a_row: int = field(
        default=1, metadata={"help": "how often in a row a bar may repeat the bar just before it"}
    )
    block_ngram: int = field(
        default=2, metadata={"help": "a run of this many bars may not copy an earlier run"}
    )
    max_pitch_run: int = field(
        default=4,
        metadata={"help": "most notes in a row on one letter and octave (a tie's second note "
                  "does not count)"},
    )
    max_ties_per_bar: int = field(default=1, metadata={"help": "most ties written in one bar"})


def normalize_bar(text: str) -> str:
    """A bar's text as the repetition rules compare it: without blanks.

    >>> normalize_bar(" A2 B c ")
    'A2Bc'
    """
    return "".join(text.split())


# --------------------------------------------------------------------------------------------
# The body specification: everything fixed for one decoding run


def _length_table(subdivision: int, max_ticks: int) -> dict[str, int]:
    """Every length suffix the grammar allows, with its duration in ticks (1/subdivision of L).

    Canonical spellings as the project's writer uses them: ``""`` for one unit, ``"2"``,
    ``"3/2"``, ``"/2"`` or ``"/"`` for half a unit, ``"/4"``; no ``"1"``, no ``"//"``.
    """
    table: dict[str, int] = {}
    for ticks in range(1, max_ticks + 1):
        units = Fraction(ticks, subdivision)
        if units.denominator == 1:
            table["" if units == 1 else str(units.numerator)] = ticks
        elif units.numerator == 1:
            table[f"/{units.denominator}"] = ticks
            if units.denominator == 2:
                table["/"] = ticks
        else:
            table[f"{units.numerator}/{units.denominator}"] = ticks
    return table


def _prefix_table(lengths: dict[str, int]) -> dict[str, tuple[tuple[int, str], ...]]:
    """Each prefix of a length suffix -> its completions (ticks, full text), shortest first."""
    found: dict[str, list[tuple[int, str]]] = {}
    for text, ticks in lengths.items():
        for cut in range(len(text) + 1):
            found.setdefault(text[:cut], []).append((ticks, text))
    return {prefix: tuple(sorted(items)) for prefix, items in found.items()}


@lru_cache(maxsize=1)
def _chord_symbols() -> tuple[frozenset[str], frozenset[str]]:
    """The chord-symbol texts allowed between quotes, and all their prefixes."""
    bases = [root + quality for root in CHORD_SYMBOL_ROOTS for quality in CHORD_SYMBOL_QUALITIES]
    full = set(bases) | {f"{b}/{bass}" for b in bases for bass in CHORD_SYMBOL_ROOTS}
    prefixes = {text[:cut] for text in full for cut in range(len(text) + 1)}
    return frozenset(full), frozenset(prefixes)


@dataclass(frozen=True)
class BodySpec:
    """Everything that stays fixed while one body (or one span of bars) is decoded.

    Build it with :func:`body_spec` (a new tune) or ``agent.compose`` (a span of an existing
    tune). Bars are numbered from 1 as :func:`agent.abc_text.split_bars` numbers them.
    """

    bar_ticks: int  # a full bar, in ticks
    subdivision: int  # ticks per L: unit
    unit_length: Fraction  # L:, as a fraction of a whole note
    boundaries: tuple[Boundary, ...]  # index b: what comes after bar b (0: before bar 1)
    first_bar: int = 1  # the bar decoding starts at
    last_bar: int = 0  # the bar decoding ends with (0: the last bar of ``boundaries``)
    span_end: bool = False  # True: stop when ``last_bar`` is full; the rest of the tune follows
    capacities: tuple[tuple[int, int], ...] = ()  # (bar, ticks) for bars that are not full bars
    allow_pickup: bool = False
    repetition: RepetitionRules = RepetitionRules()
    history: tuple[str, ...] = ()  # normalized texts of the bars before ``first_bar``
    tie_in: str | None = None  # the pitch the first note must spell (a tie from the bar before)
    ornaments: bool = True  # slurs, grace notes and decorations (. !trill! ...) allowed
    max_accidentals_per_bar: int = 4  # accidentals written in one bar (0: no limit)
    double_accidentals: bool = False  # ^^ and __ allowed
    slurs_in: int = 0  # slurs open when decoding starts
    slurs_out: int = 0  # slurs that must be open when it ends
    #: bar lines a slur this decode must close may cross (0: no limit); such slurs never nest.
    #: In the training tunes 95 % of slurs close in the bar they open in and 1 % cross one bar
    #: line; an unchecked model opened slurs it never closed and the end of the tune closed
    #: them all at once, ")))))))".
    slur_bars: int = 1
    max_range_steps: int = 0  # lowest to highest single note, in diatonic steps (0: no limit)
    #: the lowest and highest staff step (:func:`staff_step`) a note may take: the instrument's
    #: range (None: no bounds)
    pitch_steps: tuple[int, int] | None = None
    max_decorations_per_bar: int = 2  # staccato dots and !...! marks in one bar (0: no limit)
    #: !...! marks (trills, rolls, fermatas: not dynamics or staccato dots) in the whole decode:
    #: at most 1 plus this many per bar begun (0: no limit). In the training tunes 83% have
    #: none and 98% fewer than 0.4 a bar; a model that has written two trills copies them, and
    #: one jig in twenty came out with 22 in 16 bars, a trill on every other note.
    ornaments_per_bar: float = 0.25
    decorations: frozenset = DECORATIONS  # the !...! marks allowed (dynamics among them)
    lengths: dict = field(default=None, compare=False, repr=False)
    length_prefixes: dict = field(default=None, compare=False, repr=False)
    decoration_prefixes: frozenset = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.bar_ticks < 1:
            raise DecodingError("a bar must last at least one tick")
        if not self.last_bar:
            object.__setattr__(self, "last_bar", len(self.boundaries) - 1)
        if not 1 <= self.first_bar <= self.last_bar < len(self.boundaries):
            raise DecodingError(f"bars {self.first_bar}..{self.last_bar} are not in the plan")
        longest = max([self.bar_ticks, *(ticks for _, ticks in self.capacities)])
        lengths = _length_table(self.subdivision, longest)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "length_prefixes", _prefix_table(lengths))
        if not self.decorations <= DECORATIONS:
            raise DecodingError(f"unknown decorations: {sorted(self.decorations - DECORATIONS)}")
        object.__setattr__(self, "decoration_prefixes", _prefixes(self.decorations))

    def capacity(self, bar: int, pickup: int = 0) -> int:
        """Ticks that bar number ``bar`` must hold (in a tune with a pickup of ``pickup`` ticks,
        a bar that closes a section holds what completes the pickup)."""
        for number, ticks in self.capacities:
            if number == bar:
                return ticks
        if pickup and self.boundaries[bar].section_end:
            return self.bar_ticks - pickup
        return self.bar_ticks


def body_spec(
    meter: str,
    unit_length: str = "1/8",
    plan: FormPlan | None = None,
    *,
    subdivision: int = 2,
    allow_pickup: bool = False,
    repetition: RepetitionRules = RepetitionRules(),
    ornaments: bool = True,
    max_accidentals_per_bar: int = 4,
    double_accidentals: bool = False,
    max_range_steps: int = 0,
    decorations: frozenset[str] = DECORATIONS,
    pitch_steps: tuple[int, int] | None = None,
) -> BodySpec:
    """The spec for a new tune body in ``meter`` (an ``M:`` value) with ``L:`` = ``unit_length``.

    ``subdivision`` is how many ticks a unit splits into: 2 allows sixteenths under ``L:1/8``.
    ``ornaments=False`` leaves out slurs, grace notes and decorations; a bar holds at most
    ``max_accidentals_per_bar`` accidentals, double sharps and flats only when
    ``double_accidentals``; the melody's notes span at most ``max_range_steps`` diatonic steps
    (7 is an octave; 0: no limit) and lie within ``pitch_steps`` (lowest and highest
    :func:`staff_step`, an instrument's range); ``decorations`` names the ``!...!`` marks allowed.

    >>> spec = body_spec("6/8", "1/8", FormPlan.dance(8))
    >>> spec.bar_ticks, spec.last_bar
    (12, 16)
    >>> body_spec("none")
    Traceback (most recent call last):
    ...
    agent.decoding.DecodingError: constrained decoding needs a meter with a bar length, not 'none'
    """
    bar_length = parse_meter(meter).bar_length
    if bar_length is None:
        raise DecodingError(f"constrained decoding needs a meter with a bar length, not {meter!r}")
    unit = parse_unit_length(unit_length)
    ticks = bar_length / unit * subdivision
    if ticks.denominator != 1:
        raise DecodingError(
            f"a {meter} bar is not a whole number of 1/{subdivision} units of {unit}")
    plan = plan or FormPlan.through(16)
    return BodySpec(
        bar_ticks=int(ticks),
        subdivision=subdivision,
        unit_length=unit,
        boundaries=plan_boundaries(plan),
        allow_pickup=allow_pickup,
        repetition=repetition,
        ornaments=ornaments,
        max_accidentals_per_bar=max_accidentals_per_bar,
        double_accidentals=double_accidentals,
        max_range_steps=max_range_steps,
        decorations=decorations,
        pitch_steps=pitch_steps,
    )


def playable_steps(lowest: int, highest: int, alterations: Sequence[int] = (0,) * 7
                   ) -> tuple[int, int]:
    """The lowest and highest staff steps (:func:`staff_step`) whose notes, as the key
    signature's ``alterations`` (semitones for C D E F G A B) sound them, lie within MIDI
    ``lowest``..``highest``. An accidental written at the very edge is left to the validator.

    >>> playable_steps(60, 96)  # a flute in C: middle C to c''
    (28, 49)
    >>> playable_steps(60, 96, (1, 0, 0, 1, 0, 0, 0))  # in D major c'' is C sharp: up to b'
    (28, 48)
    """
    def midi(step: int) -> int:
        return 12 * (step // 7 + 1) + (0, 2, 4, 5, 7, 9, 11)[step % 7] + alterations[step % 7]

    low = next(step for step in range(0, 80) if midi(step) >= lowest)
    high = next(step for step in range(80, 0, -1) if midi(step) <= highest)
    return low, high


def staff_step(name: str) -> int:
    """A note name (letter and octave marks, no accidental) as a diatonic step: C (middle C) is
    28, c 35, each ' or , one octave (7 steps) up or down.

    >>> staff_step("C"), staff_step("c"), staff_step("B,"), staff_step("d'")
    (28, 35, 27, 43)
    """
    letter = name[0]
    octave = (4 if letter.isupper() else 5) + name.count("'") - name.count(",")
    return 7 * octave + "CDEFGAB".index(letter.upper())


# --------------------------------------------------------------------------------------------
# The automaton


class BodyState:
    """Where the decoder is in the body: a character-level automaton over the canonical grammar.

    States are cheap to copy; :meth:`feed` returns a new state (or None when the text cannot be
    part of a valid body), :meth:`advance` changes this one. ``bars_done`` counts completed
    bars; ``bar_lines`` counts the bar lines begun (a pickup's included); ``elements`` the notes,
    rests and chords written, ``short_elements`` those written shorter than ``L:``;
    ``remaining`` is what the current bar still needs, in ticks.

    >>> s = start_state(body_spec("4/4", "1/8", FormPlan.through(1)))
    >>> s = s.feed("c")            # a note whose length may still follow ("c3", "c/2")
    >>> s.feed("9") is not None    # "c9/2" would still fit the bar
    True
    >>> s.feed("9 ") is None       # but "c9" alone is longer than the bar
    True
    >>> s.feed("6 (d2) |]").is_complete
    True
    """

    # The fields are set by :func:`start_state`. A state is copied once per candidate token,
    # so it keeps its fields in the instance dict: copying a dict is one fast C call.

    def copy(self) -> "BodyState":
        new = BodyState.__new__(BodyState)
        new.__dict__ = self.__dict__.copy()
        return new

    # ---- public questions ------------------------------------------------------------------

    def feed(self, text: str) -> "BodyState | None":
        """The state after ``text``, or None if ``text`` cannot continue a valid body."""
        new = self.copy()
        return new if new.advance(text) else None

    def advance(self, text: str) -> bool:
        """Consume ``text`` in place; False (and a state to throw away) if it is not viable."""
        for ch in text:
            if not self._step(ch):
                return False
        return True

    @property
    def is_complete(self) -> bool:
        """The body (or span) is finished: the end-of-turn token, or the rest of the tune, may
        follow."""
        if self.mode == _FINAL:
            return True
        if self.mode == _BOUNDARY:
            return self.boundary.final and self.typed in self.boundary.texts
        if self.spec.span_end and self.bars_done == self.spec.last_bar - 1:
            probe = self.copy()
            return (probe._finish_element() and probe.mode == _AFTER and probe.remaining == 0
                    and not probe.tuplet_left and probe.tie_req is None
                    and probe.slurs == self.spec.slurs_out)
        return False

    @property
    def bar_number(self) -> int:
        """The bar being written (1-based)."""
        return self.bars_done + 1

    @property
    def must_close_bar(self) -> bool:
        """The current bar is full: only its bar line (or the end of a span) may follow."""
        return self.mode in (_AFTER, _START) and self.remaining == 0 and not self.tuplet_left

    def relaxed(self) -> "BodyState":
        """A copy with the bar repetition rules lifted until the current bar closes."""
        new = self.copy()
        new.repetition_on = False
        return new

    # ---- the step function ------------------------------------------------------------------

    def _step(self, ch: str) -> bool:  # noqa: C901 - one flat dispatch on the mode
        mode = self.mode
        if mode == _AFTER:
            return self._after(ch)
        if mode == _NOTE:
            return self._note(ch)
        if mode == _START:
            return self._start(ch)
        if mode == _BOUNDARY:
            return self._boundary_char(ch)
        if mode == _ACC:
            return self._accidental(ch)
        if mode == _REST or mode == _CHORD_LEN:
            return self._length_char(ch)
        if mode == _CHORD:
            return self._chord(ch)
        if mode == _SYMBOL:
            return self._symbol(ch)
        if mode == _PAREN:
            return self._paren(ch)
        if mode == _DECO:
            return self._decoration(ch)
        if mode == _GRACE:
            return self._grace(ch)
        if mode == _FINAL:
            if ch == "\n" and not self.newline_done:
                self.newline_done = True
                return True
            return False
        return False

    # ---- between elements -------------------------------------------------------------------

    def _start(self, ch: str) -> bool:
        """Where an element must begin: at the start of a bar, after a space, after ``>``, or
        after a chord symbol, decoration, slur, grace group or tuplet mark."""
        if ch == " ":
            return False
        if ch in BAR_CHARS:
            return self.after_space and self._open_boundary(ch)
        self.after_space = False
        return self._begin_element(ch)

    def _after(self, ch: str) -> bool:
        """Right after a complete note, rest or chord, or after what may follow it: a tie, a
        trailing grace group, slur ends."""
        if ch == " ":
            if self.remaining == 0 and not self.tuplet_left and not self._can_close():
                return False
            self.mode, self.after_space = _START, True
            return True
        if ch in BAR_CHARS:
            return self._open_boundary(ch)
        if ch == ")":
            if self.slurs <= self.spec.slurs_out:  # those the rest of the tune closes stay open
                return False
            self.slurs -= 1
            self.extras = True
            self.bar_text += ch
            return True
        if ch == "-":
            return not self.extras and self._tie()
        if ch == ">" or ch == "<":
            return not self.extras and self._broken(ch)
        if ch == "{":  # grace notes after the element, once, before its slur ends
            return self.spec.ornaments and not self.extras and self._open_grace(_AFTER)
        return self._begin_element(ch)

    def _tie(self) -> bool:
        """A tie: the next note (chord) must spell the same pitch (chord). It may cross a plain
        bar line only."""
        if self.tie_req is not None or self.last_kind not in ("note", "chord") or self.tuplet_left:
            return False
        limit = self.spec.repetition.max_ties_per_bar
        if limit and self.ties >= limit:
            return False
        if self.remaining == 0:
            bar = self.bars_done + 1
            if self.lead or bar >= self.spec.last_bar or not self.spec.boundaries[bar].plain:
                return False
            if not self._repetition_ok(self.bar_text + "-"):
                return False
        self.tie_req = self.last_pitch
        self.ties += 1
        self.bar_text += "-"
        return True

    def _broken(self, ch: str) -> bool:
        if (self.tuplet_left or self.broken is not None or self.last_was_second
                or self.last_in_tuplet or self.tie_req is not None or self.last_ticks % 2):
            return False
        half = self.last_ticks // 2
        if ch == ">":
            if self.remaining - half < 1:  # the second note gets at least one tick
                return False
            self.remaining -= half
        else:
            if self.remaining + half < 3:  # the second note gets three halves of two ticks
                return False
            self.remaining += half
        self.broken = ch
        self.mode, self.after_space = _START, False
        self.bar_text += ch
        return True

    def _room(self) -> bool:
        """Whether another element fits: the bar has ticks left, or a tuplet is under way."""
        return self.remaining > 0 or self.tuplet_left > 0

    def _begin_element(self, ch: str) -> bool:  # noqa: C901 - one case per starting character
        if ch in NOTE_LETTERS:
            return self._begin_note("", ch)
        if not self._room():
            return False
        tie = self.tie_req
        if ch in "^_=":
            if tie is not None and not tie.startswith(ch):
                return False
            if tie is None and not self._accidental_ok():
                return False
            self.mode, self.pitch = _ACC, ch
        elif ch == "z":
            # A rest takes a chord symbol, a dynamic or a fermata; an ornament (staccato, trill,
            # accent ...) or a grace note has no note to sound on.
            if tie is not None or "d" in self.items or "g" in self.items:
                return False
            self.mode, self.length, self.items = _REST, "", ""
            self.bar_text += ch
            return self._length_viable("")
        elif ch == "[":
            if tie is not None and not tie.startswith("["):
                return False
            self.mode, self.chord_pitch, self.chord_notes, self.chord_text = _CHORD, "", 0, "["
        elif ch == '"':
            if "s" in self.items:  # one chord symbol per element
                return False
            self.mode, self.symbol = _SYMBOL, ""
        elif ch == "(":  # a slur, or a tuplet if a digit follows
            if not (self._slur_ok() or self._tuplet_ok(min(TUPLETS.values()))):
                return False
            self.mode = _PAREN
        elif not self.spec.ornaments:
            return False
        elif ch == ".":  # staccato
            if self._decorations_here() >= MAX_DECORATIONS or not self._bar_decoration_ok():
                return False
            self.bar_text += ch
            self.bar_decorations += 1
            return self._item_done("d")
        elif ch == "!":
            self.mode, self.decoration = _DECO, ""
            if not self._decoration_possible():
                return False
        elif ch == "{":
            return "g" not in self.items and self._open_grace(_START)
        else:
            return False
        self.bar_text += ch
        return True

    def _begin_note(self, accidental: str, letter: str) -> bool:
        pitch = accidental + letter
        if self.tie_req is not None and not self.tie_req.startswith(pitch):
            return False
        self.mode, self.pitch, self.length, self.marks = _NOTE, pitch, "", 0
        self.bar_text += letter
        self.items = ""
        return self._pitch_possible() and self._length_viable("")

    def _note_name(self) -> str:
        """The note being written: its letter and octave marks (no accidental)."""
        return self.pitch[len(self.pitch) - 1 - self.marks:]

    def _range_ok(self, step: int | None = None) -> bool:
        """The note being written (or ``step``) lies within ``pitch_steps`` and keeps the melody
        within ``max_range_steps``."""
        bounds = self.spec.pitch_steps
        if bounds is not None:
            step = staff_step(self._note_name()) if step is None else step
            if not bounds[0] <= step <= bounds[1]:
                return False
        limit = self.spec.max_range_steps
        if not limit or self.low_step is None:
            return True
        step = staff_step(self._note_name()) if step is None else step
        return max(self.high_step, step) - min(self.low_step, step) <= limit

    def _pitch_possible(self) -> bool:
        """Some spelling of the note being written keeps both the pitch-run limit and the range:
        as it is, or with more octave marks (commas take a capital letter down, apostrophes a
        small letter up)."""
        name = self._note_name()
        mark, direction = ("," , -7) if name[0].isupper() else ("'", 7)
        step = staff_step(name)
        return any(self._run_ok(name + mark * k) and self._range_ok(step + direction * k)
                   for k in range(MAX_OCTAVE_MARKS - self.marks + 1))

    def _run_ok(self, name: str | None = None) -> bool:
        """Whether the note being written, as it is now (or spelt ``name``), keeps the limit on
        notes in a row at one pitch (its letter and octave marks)."""
        limit = self.spec.repetition.max_pitch_run
        if not limit or self.tie_req is not None:
            return True
        name = self._note_name() if name is None else name
        return name != self.run_pitch or self.run_length < limit

    def _accidental_ok(self) -> bool:
        """Another accidental fits the bar's limit (a tie's second note is not counted)."""
        limit = self.spec.max_accidentals_per_bar
        if limit and self.accidental_count >= limit:
            return False
        self.accidental_count += 1
        return True

    def _accidental(self, ch: str) -> bool:
        if ch == self.pitch and ch in "^_":
            if self.tie_req is not None and not self.tie_req.startswith(ch + ch):
                return False
            if self.tie_req is None and not self.spec.double_accidentals:
                return False
            self.pitch += ch
            self.bar_text += ch
            return True
        if ch in NOTE_LETTERS:
            return self._begin_note(self.pitch, ch)
        return False

    # ---- notes, rests, chords: lengths ------------------------------------------------------

    def _note(self, ch: str) -> bool:
        if (ch == "," or ch == "'") and not self.length:
            letter = self.pitch[-1 - self.marks]
            if self.marks >= MAX_OCTAVE_MARKS or (ch == ",") != letter.isupper():
                return False
            pitch = self.pitch + ch
            if self.tie_req is not None and not self.tie_req.startswith(pitch):
                return False
            self.pitch, self.marks = pitch, self.marks + 1
            self.bar_text += ch
            return self._pitch_possible() and self._length_viable("")
        if ch in LENGTH_CHARS:
            if ((self.tie_req is not None and self.pitch != self.tie_req) or not self._run_ok()
                    or not self._range_ok()):
                return False
            return self._extend_length(ch)
        return self._finish_element() and self._after(ch)

    def _length_char(self, ch: str) -> bool:
        if ch in LENGTH_CHARS:
            return self._extend_length(ch)
        return self._finish_element() and self._after(ch)

    def _extend_length(self, ch: str) -> bool:
        new = self.length + ch
        if new not in self.spec.length_prefixes:
            return False
        self.length = new
        self.bar_text += ch
        return self._length_viable(new)

    def _contribution(self, ticks: int) -> int | None:
        """Ticks an element of written length ``ticks`` adds to the bar, or None if it may not
        have that length here (tuplet notes share one length; broken pairs need even lengths)."""
        if self.tuplet_left:
            if self.tuplet_ticks is None:
                return self.tuplet_q * ticks
            return 0 if ticks == self.tuplet_ticks else None
        if self.broken is None:
            return ticks
        if ticks % 2:
            return None
        return ticks // 2 if self.broken == ">" else 3 * ticks // 2

    def _fits(self, ticks: int, text: str) -> bool:
        """Whether the current element may end with length ``text`` (``ticks`` long)."""
        added = self._contribution(ticks)
        if added is None or added > self.remaining:
            return False
        if added == self.remaining and self.tuplet_left <= 1:  # this element fills the bar
            return self._repetition_ok(self.bar_text + text[len(self.length):])
        return True

    def _length_viable(self, prefix: str) -> bool:
        """Some completion of the length ``prefix`` fits."""
        for ticks, text in self.spec.length_prefixes.get(prefix, ()):
            if self._fits(ticks, text):
                return True
        return False

    def _finish_element(self) -> bool:
        """Close the note, rest or chord being written (its length can no longer grow)."""
        mode = self.mode
        if mode not in (_NOTE, _REST, _CHORD_LEN):
            return mode == _AFTER or mode == _START  # nothing under way
        ticks = self.spec.lengths.get(self.length)
        if ticks is None or not self._fits(ticks, self.length):
            return False
        if mode == _NOTE:
            if ((self.tie_req is not None and self.pitch != self.tie_req) or not self._run_ok()
                    or not self._range_ok()):
                return False
            self._note_accidental()
            self.last_kind = "note"
            name = self._note_name()
            step = staff_step(name)
            self.low_step = step if self.low_step is None else min(self.low_step, step)
            self.high_step = step if self.high_step is None else max(self.high_step, step)
            if self.tie_req is None:  # a tie's second note continues the same sound
                same = name == self.run_pitch
                self.run_pitch, self.run_length = name, self.run_length + 1 if same else 1
        elif mode == _CHORD_LEN:
            if self.tie_req is not None and self.chord_text != self.tie_req:
                return False
            self.last_kind, self.last_pitch = "chord", self.chord_text
            self.run_pitch, self.run_length = "", 0
        else:
            self.last_kind = "rest"
            self.run_pitch, self.run_length = "", 0
        self.tie_req = None
        self.remaining -= self._contribution(ticks)
        self.last_in_tuplet = self.tuplet_left > 0
        if self.tuplet_left:
            if self.tuplet_ticks is None:
                self.tuplet_ticks = ticks
            self.tuplet_left -= 1
            if not self.tuplet_left:
                self.tuplet_ticks = None
        self.last_was_second = self.broken is not None
        self.broken = None
        self.last_ticks = ticks
        self.elements += 1
        self.short_elements += ticks < self.spec.subdivision
        self.mode, self.extras = _AFTER, False
        return True

    def _note_accidental(self) -> None:
        """Record the note's accidental for the rest of the bar, and the pitch a tie from this
        note must reach: the same letter and octave marks with the accidental it sounds with."""
        letter_at = len(self.pitch) - 1 - self.marks
        accidental, letter = self.pitch[:letter_at], self.pitch[letter_at]
        if accidental:
            self.accidentals = self.accidentals + ((letter.upper(), accidental),)
        else:
            for name, carried in reversed(self.accidentals):
                if name == letter.upper():
                    accidental = carried
                    break
        self.last_pitch = accidental + self.pitch[letter_at:]

    def _chord(self, ch: str) -> bool:
        """Inside ``[...]``: 2 to 4 notes, each an optional accidental, a letter, octave marks."""
        current = self.chord_pitch
        has_letter = any(c in NOTE_LETTERS for c in current)
        if ch in "^_=":
            free = self.tie_req is None  # a tied chord repeats its accidentals
            if current in ("^", "_") and ch == current:
                if free and not self.spec.double_accidentals:
                    return False
                self.chord_pitch += ch
            elif not current or has_letter:
                if not self._chord_note_in_range(exact=True):
                    return False
                self._chord_note_done()
                if self.chord_notes >= MAX_CHORD_NOTES or (free and not self._accidental_ok()):
                    return False
                self.chord_pitch = ch
            else:
                return False
        elif ch in NOTE_LETTERS:
            if current and not has_letter:
                self.chord_pitch += ch
            else:
                if not self._chord_note_in_range(exact=True):
                    return False
                self._chord_note_done()
                if self.chord_notes >= MAX_CHORD_NOTES:
                    return False
                self.chord_pitch = ch
            if not self._chord_note_in_range(exact=False):
                return False
        elif ch == "," or ch == "'":
            letters = [c for c in current if c in NOTE_LETTERS]
            marks = len(current) - current.index(letters[0]) - 1 if letters else 0
            if not letters or marks >= MAX_OCTAVE_MARKS or (ch == ",") != letters[0].isupper():
                return False
            self.chord_pitch += ch
            if not self._chord_note_in_range(exact=False):
                return False
        elif ch == "]":
            if not has_letter or not self._chord_note_in_range(exact=True):
                return False
            self._chord_note_done()
            if self.chord_notes < 2:
                return False
        else:
            return False
        self.chord_text += ch
        if self.tie_req is not None and not self.tie_req.startswith(self.chord_text):
            return False
        self.bar_text += ch
        if ch == "]":
            self.mode, self.length, self.items = _CHORD_LEN, "", ""
            return self._length_viable("")
        return True

    def _chord_note_in_range(self, exact: bool) -> bool:
        """The chord note being written lies within ``pitch_steps`` as it is (``exact``), or
        could with more octave marks."""
        bounds = self.spec.pitch_steps
        current = self.chord_pitch
        first = next((i for i, c in enumerate(current) if c in NOTE_LETTERS), None)
        if bounds is None or first is None:
            return True
        name = current[first:]
        step = staff_step(name)
        more = 0 if exact else MAX_OCTAVE_MARKS - (len(name) - 1)
        direction = -7 if name[0].isupper() else 7
        return any(bounds[0] <= step + direction * k <= bounds[1] for k in range(more + 1))

    def _chord_note_done(self) -> None:
        """Count the chord note just written (if any) and record its accidental for the bar."""
        if self.chord_pitch:
            self.chord_notes += 1
            accidental = self.chord_pitch.rstrip(",'")[:-1]
            if accidental:
                letter = self.chord_pitch.rstrip(",'")[-1].upper()
                self.accidentals = self.accidentals + ((letter, accidental),)
            self.chord_pitch = ""

    # ---- what may stand before (or after) an element -----------------------------------------

    def _item_done(self, kind: str) -> bool:
        """Something was written before an element (``kind``: ``s`` chord symbol, ``d``
        decoration, ``f`` fermata, ``y`` dynamic, ``g`` grace group, ``(`` slur start, ``t``
        tuplet mark): the element must follow. Each element takes one of each, and two
        decorations."""
        self.items += kind
        self.mode, self.after_space = _START, False
        return True

    def _symbol(self, ch: str) -> bool:
        full, prefixes = _chord_symbols()
        self.bar_text += ch
        if ch == '"':
            return self.symbol in full and self._item_done("s")
        self.symbol += ch
        return self.symbol in prefixes

    def _decoration_possible(self) -> bool:
        """Some decoration allowed here starts with what was typed after ``!``."""
        typed = self.decoration
        if typed not in self.spec.decoration_prefixes:
            return False
        more = (self._decorations_here() < MAX_DECORATIONS and self._bar_decoration_ok()
                and self._tune_ornament_ok())
        return any(name.startswith(typed) and (not self.bar_dynamic if name in DYNAMICS else more)
                   for name in self.spec.decorations)

    def _decoration(self, ch: str) -> bool:
        self.bar_text += ch
        if ch != "!":
            self.decoration += ch
            return self._decoration_possible()
        if self.decoration not in self.spec.decorations:
            return False
        if self.decoration in DYNAMICS:  # one dynamic mark a bar at most
            if self.bar_dynamic:
                return False
            self.bar_dynamic = True
            return self._item_done("y")
        if not (self._decorations_here() < MAX_DECORATIONS
                and self._bar_decoration_ok() and self._tune_ornament_ok()):
            return False
        self.bar_decorations += 1
        self.tune_ornaments += 1
        return self._item_done("f" if self.decoration == "fermata" else "d")

    def _decorations_here(self) -> int:
        """Decorations written before this element (``f`` is a fermata, which a rest may take)."""
        return self.items.count("d") + self.items.count("f")

    def _bar_decoration_ok(self) -> bool:
        """Another decoration fits the bar's limit (in the corpus 99.3% of bars have at most
        two staccato dots; a small model left alone writes one on every note)."""
        limit = self.spec.max_decorations_per_bar
        return not limit or self.bar_decorations < limit

    def _tune_ornament_ok(self) -> bool:
        """Another !...! mark fits the decode's budget (``BodySpec.ornaments_per_bar``)."""
        per_bar = self.spec.ornaments_per_bar
        begun = self.bars_done - (self.spec.first_bar - 1) + 1
        return not per_bar or self.tune_ornaments < 1 + per_bar * begun

    def _slur_ok(self) -> bool:
        if self.spec.slur_bars and self.slurs > self.spec.slurs_out:
            return False  # one slur of our own at a time
        return self.spec.ornaments and self.slurs < MAX_SLURS and "(" not in self.items

    def _tuplet_ok(self, q: int) -> bool:
        return (not self.tuplet_left and self.tie_req is None and self.broken is None
                and "t" not in self.items and self.remaining >= q)

    def _paren(self, ch: str) -> bool:
        """After ``(``: a digit makes a tuplet mark, anything else starts a slur."""
        if ch.isdigit():
            p = int(ch)
            if p not in TUPLETS or not self._tuplet_ok(TUPLETS[p]):
                return False
            self.tuplet_left, self.tuplet_q, self.tuplet_ticks = p, TUPLETS[p], None
            self.bar_text += ch
            return self._item_done("t")
        if not self._slur_ok():
            return False
        if self.slurs <= self.spec.slurs_out:
            self.slur_lines = 0  # bar lines this slur has crossed
        self.slurs += 1
        self._item_done("(")
        return self._start(ch)

    def _open_grace(self, back: int) -> bool:
        """``{`` starts a group of grace notes (they take no time), before an element or after
        one."""
        self.mode, self.grace_back, self.grace_notes = _GRACE, back, 0
        self.grace_pitch, self.grace_length = "", ""
        self.bar_text += "{"
        return True

    def _grace(self, ch: str) -> bool:
        """Inside ``{...}``: 1 to 4 notes, each with an optional short length."""
        pitch, length = self.grace_pitch, self.grace_length
        has_letter = any(c in NOTE_LETTERS for c in pitch)
        complete = has_letter and length in GRACE_LENGTHS
        if ch in "^_=" or ch in NOTE_LETTERS:
            if pitch in ("^", "_") and ch == pitch:
                self.grace_pitch += ch
            elif ch in NOTE_LETTERS and pitch and not has_letter:
                self.grace_pitch += ch
            elif (complete or not pitch) and self.grace_notes < MAX_GRACE_NOTES:
                self.grace_notes += 1
                self.grace_pitch, self.grace_length = ch, ""
            else:
                return False
        elif ch == "," or ch == "'":
            letters = [c for c in pitch if c in NOTE_LETTERS]
            marks = len(pitch) - pitch.index(letters[0]) - 1 if letters else 0
            if (not letters or length or marks >= MAX_OCTAVE_MARKS
                    or (ch == ",") != letters[0].isupper()):
                return False
            self.grace_pitch += ch
        elif ch in LENGTH_CHARS:
            if not has_letter or length + ch not in _GRACE_LENGTH_PREFIXES:
                return False
            self.grace_length += ch
        elif ch == "}":
            if not complete:
                return False
            self.bar_text += ch
            if self.grace_back == _START:
                return self._item_done("g")
            self.mode, self.extras = _AFTER, True
            return True
        else:
            return False
        self.bar_text += ch
        return True

    # ---- bar lines ---------------------------------------------------------------------------

    def _can_close(self) -> bool:
        """Whether the current bar may end here."""
        if self.tuplet_left or self.broken is not None or self.items:
            return False
        if self._closing_pickup:
            return self.tie_req is None and not self._slur_must_close
        bar = self.bars_done + 1
        if self.spec.span_end and bar == self.spec.last_bar:
            return False  # the rest of the tune, bar line included, follows the span
        if self.remaining:
            return False
        boundary = self.spec.boundaries[bar]
        if self.tie_req is not None and (not boundary.plain or bar >= self.spec.last_bar):
            return False
        if boundary.final and self.slurs != self.spec.slurs_out:
            return False
        if self._slur_must_close:
            return False
        return self._repetition_ok(self.bar_text)

    @property
    def _slur_must_close(self) -> bool:
        """A slur of our own has crossed as many bar lines as it may."""
        limit = self.spec.slur_bars
        return bool(limit) and self.slurs > self.spec.slurs_out and self.slur_lines >= limit

    def _repetition_ok(self, text: str) -> bool:
        """Whether closing the current bar with ``text`` keeps the repetition rules."""
        rules = self.spec.repetition
        if not self.repetition_on or not (rules.max_repeats_in_a_row or rules.block_ngram):
            return True
        history = self.history
        if rules.max_repeats_in_a_row:
            run = 0
            for previous in reversed(history):
                if previous != text:
                    break
                run += 1
            if run > rules.max_repeats_in_a_row:
                return False
        n = rules.block_ngram
        if n and len(history) >= n:
            tail = history[len(history) - n + 1:] + (text,)
            for start in range(len(history) - n + 1):
                if history[start:start + n] == tail:
                    return False
        return True

    @property
    def _closing_pickup(self) -> bool:
        """A pickup is being written and may close now: the tune's first (any length short of
        a full bar) or a later section's (exactly as long as the first)."""
        if not self.lead:
            return False
        if self.pickup:
            return self.remaining == 0
        return 0 < self.remaining < self.spec.capacity(self.bars_done + 1)

    def _open_boundary(self, ch: str) -> bool:
        """The current bar ends here: record it, then start typing its bar line."""
        if not self._finish_element() or not self._can_close():
            return False
        bar = self.bars_done + 1
        self.bar_lines += 1
        self.slur_lines += 1
        if self._closing_pickup:  # not one of the plan's bars: the same bar comes next, full
            if not self.pickup:
                self.pickup = self.spec.capacity(bar) - self.remaining
            self.lead = False
            self.boundary = PICKUP_BAR_LINE
            self.remaining = self.spec.capacity(bar, self.pickup)
        else:
            self.lead = False
            self.history = self.history + (self.bar_text,)
            self.bars_done = bar
            self.boundary = self.spec.boundaries[bar]
            self.remaining = self.spec.capacity(bar + 1, self.pickup) if bar < self.spec.last_bar else 0
            if self.pickup and self.boundary.section_start and bar < self.spec.last_bar:
                self.lead, self.remaining = True, self.pickup  # the next section's pickup
        self.typed = ""
        self.bar_text, self.accidentals, self.ties = "", (), 0
        self.accidental_count, self.bar_dynamic, self.bar_decorations = 0, False, 0
        self.last_kind, self.last_was_second, self.last_in_tuplet = None, False, False
        self.repetition_on = True
        self.mode = _BOUNDARY
        return self._boundary_char(ch)

    def _boundary_char(self, ch: str) -> bool:
        typed = self.typed + ch
        if any(text.startswith(typed) for text in self.boundary.texts):
            self.typed = typed
            return True
        if self.typed not in self.boundary.texts:
            return False
        if self.boundary.final:
            self.mode = _FINAL
        else:
            self.mode, self.after_space = _START, False
        return self._step(ch)


def start_state(
    spec: BodySpec, *, leading: tuple[str, ...] | None = None
) -> BodyState:
    """The automaton at the start of bar ``spec.first_bar``.

    ``leading`` lists what may be written before the first element (default: the spec's
    boundary before that bar, e.g. an optional ``|:`` before bar 1; a span uses it to force the
    separator that was cut off its prompt).

    >>> spec = body_spec("3/4", "1/8", FormPlan.dance(2))
    >>> start_state(spec).feed("|: A6 |").bars_done
    1
    >>> start_state(spec).feed(":|") is None
    True
    """
    state = BodyState.__new__(BodyState)
    state.spec = spec
    state.mode = _BOUNDARY
    state.bars_done = spec.first_bar - 1
    state.bar_lines = 0
    state.slur_lines = 0
    state.elements = state.short_elements = 0  # notes, rests, chords; those shorter than L:
    state.tune_ornaments = 0  # !...! marks other than dynamics
    state.pickup = 0
    state.lead = spec.allow_pickup and spec.first_bar == 1 and spec.boundaries[0].section_start
    state.remaining = spec.capacity(spec.first_bar)
    state.bar_text = ""
    state.history = spec.history
    state.accidentals = ()
    state.tie_req = spec.tie_in
    state.ties = 0
    state.tuplet_left, state.tuplet_q, state.tuplet_ticks = 0, 0, None
    state.broken = None
    state.after_space = False
    state.pitch, state.length, state.marks = "", "", 0
    state.chord_pitch, state.chord_notes, state.chord_text = "", 0, ""
    state.symbol, state.decoration = "", ""
    state.grace_back, state.grace_notes, state.grace_pitch, state.grace_length = _START, 0, "", ""
    state.items, state.extras, state.slurs = "", False, spec.slurs_in
    state.accidental_count, state.bar_dynamic, state.bar_decorations = 0, False, 0
    texts = leading if leading is not None else spec.boundaries[spec.first_bar - 1].texts
    state.boundary = Boundary(tuple(texts))
    state.typed = ""
    state.last_ticks, state.last_kind, state.last_pitch = 0, None, ""
    state.last_was_second = state.last_in_tuplet = False
    state.repetition_on = True
    state.newline_done = False
    state.run_pitch, state.run_length = "", 0
    state.low_step = state.high_step = None
    return state


# --------------------------------------------------------------------------------------------
# The grammar as data, for a serving engine's guided decoding


class Literal(NamedTuple):
    """A terminal of :func:`grammar_rules`: text written as it is."""

    text: str


Rules = dict  # rule name -> list of alternatives, each a tuple of rule names and Literals


def _alphabet_rules(ornaments: bool) -> Rules:
    """Pitches, chords, chord symbols, decorations, grace groups and the optional space,
    shared by every body grammar."""
    letters = [(Literal(letter + marks),) for letter in "CDEFGAB" for marks in ("", ",", ",,")]
    letters += [(Literal(letter + marks),) for letter in "cdefgab" for marks in ("", "'", "''")]
    qualities = [(Literal(q),) if q else () for q in CHORD_SYMBOL_QUALITIES]
    return {
        "pitch": [("accidental", "letter"), ("letter",)],
        "accidental": [(Literal(a),) for a in ACCIDENTALS],
        "letter": letters,
        "chord": [(Literal("["),) + ("pitch",) * n + (Literal("]"),)
                  for n in range(2, MAX_CHORD_NOTES + 1)],
        "symbol": [(Literal('"'), "symbol_root", "quality", "bass", Literal('"'))],
        "symbol_root": [(Literal(r),) for r in CHORD_SYMBOL_ROOTS],
        "quality": qualities,
        "bass": [(Literal("/"), "symbol_root"), ()],
        "decoration": [(Literal("."),)] + [(Literal(f"!{d}!"),) for d in sorted(DECORATIONS)],
        "grace": [(Literal("{"),) + ("grace_note",) * n + (Literal("}"),)
                  for n in range(1, MAX_GRACE_NOTES + 1)],
        "grace_note": [("pitch", "grace_length")],
        "grace_length": [(Literal(g),) if g else () for g in sorted(GRACE_LENGTHS)],
        # What may stand before a note, rest or chord, and after it (slurs are not balanced
        # here: a context-free grammar of bars cannot follow a slur across bar lines).
        "prefix": [("symbol", "prefix"), ("decoration", "prefix"), ("grace", "prefix"),
                   (Literal("("), "prefix"), ()] if ornaments else [("symbol", "prefix"), ()],
        "suffix": [(Literal(")"), "suffix"), ("grace", "suffix"), ()] if ornaments else [()],
        "space": [(Literal(" "),), ()],
    }


def grammar_rules(spec: BodySpec) -> Rules:
    """The body grammar of ``spec`` as a context-free grammar: ``{name: [alternative, ...]}``,
    each alternative a tuple of rule names and :class:`Literal` texts; ``"root"`` is the body.

    It carries the automaton's bar arithmetic (tuplets and broken rhythm included), bar lines,
    bar count and alphabet. What a context-free grammar of bars cannot say is left out: that a
    tied note's partner spells the same pitch, that slurs are balanced, the repetition and
    note-level rules, and pickups (full bars only). ``bar_T`` is a bar holding exactly T ticks;
    ``el_T`` one element (or tuplet, or broken pair) adding T ticks; ``item_T`` a note, rest or
    chord written T ticks long with what may stand before it.

    >>> rules = grammar_rules(body_spec("3/4", "1/8", FormPlan.through(2)))
    >>> rules["root"][0][:3]
    ('start', 'bar_12', 'after_1')
    >>> rules["len_2"]
    [(Literal(text=''),)]
    """
    rules = _alphabet_rules(spec.ornaments)
    top = max(spec.capacity(bar) for bar in range(spec.first_bar, spec.last_bar + 1))
    for ticks in range(1, top + 1):
        length = f"len_{ticks}"
        rules[length] = [(Literal(t),) for t, v in spec.lengths.items() if v == ticks]
        rules[f"item_{ticks}"] = [("prefix", "pitch", length), ("prefix", Literal("z"), length),
                                  ("prefix", "chord", length)]
        rules[f"end_{ticks}"] = [(f"item_{ticks}", "suffix"),
                                 ("prefix", "pitch", length, Literal("-"), "suffix"),
                                 ("prefix", "chord", length, Literal("-"), "suffix")]
    for total in range(1, top + 1):
        alternatives: list[tuple] = [(f"end_{total}",)]
        for p, q in TUPLETS.items():
            if total % q == 0:
                note = f"item_{total // q}"
                alternatives.append(("prefix", Literal(f"({p}"), note, "suffix")
                                    + ("space", note, "suffix") * (p - 1))
        for first in range(2, top + 1, 2):
            for second in range(2, top + 1, 2):
                pairs = ((">", (3 * first + second) // 2), ("<", (first + 3 * second) // 2))
                for sign, size in pairs:
                    if size == total:
                        alternatives.append((f"item_{first}", Literal(sign), f"end_{second}"))
        rules[f"el_{total}"] = alternatives
        rules[f"bar_{total}"] = [(f"el_{total}",)] + [
            (f"el_{ticks}", "space", f"bar_{total - ticks}") for ticks in range(1, total)]
    start = spec.boundaries[spec.first_bar - 1]
    rules["start"] = [(Literal(t),) if t else () for t in start.texts]
    root: list[str] = ["start"]
    for bar in range(spec.first_bar, spec.last_bar + 1):
        root.append(f"bar_{spec.capacity(bar)}")
        if spec.span_end and bar == spec.last_bar:
            break
        rules[f"after_{bar}"] = [("space", Literal(t)) for t in spec.boundaries[bar].texts]
        root.append(f"after_{bar}")
    rules["root"] = [tuple(root)]
    return rules


def _ebnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def grammar_ebnf(spec: BodySpec) -> str:
    """:func:`grammar_rules` written as GBNF-style EBNF (``name ::= alt | alt``), the format
    xgrammar, llama.cpp and vLLM's guided decoding read. ``root`` comes first.

    >>> text = grammar_ebnf(body_spec("2/4", "1/8", FormPlan.through(1)))
    >>> text.splitlines()[0]
    'root ::= start bar_8 after_1'
    >>> 'len_1 ::= "/2" | "/"' in text
    True
    """
    rules = grammar_rules(spec)
    lines = []
    for name in ["root"] + [n for n in rules if n != "root"]:
        alternatives = []
        for alt in rules[name]:
            items = [_ebnf_literal(i.text) if isinstance(i, Literal) else i for i in alt]
            alternatives.append(" ".join(items) if items else '""')
        lines.append(f"{name} ::= " + " | ".join(alternatives))
    return "\n".join(lines) + "\n"
