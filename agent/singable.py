"""A singable version of an instrumental tune: a voice's range, notes long enough for words,
and held notes where a singer breathes.

A fiddle tune makes a poor song as it stands: it runs over two octaves, it moves in sixteenth
notes no singer can put a syllable on, and it never stops for breath. :func:`make_singable`
rewrites the melody, deterministically, keeping its contour, its bars and its harmony:

1. **Range.** The whole tune moves by the octaves that put most of its notes inside the voice's
   comfortable window (:data:`VOICE_WINDOWS`; a middle voice, A3-E5, by default); then only the
   passages still outside (a bar at a time, bars joined by a tie together, so the shape of the
   line inside a bar is kept) move in by an octave, and, while the melody spans more than
   ``max_range`` semitones (16: an octave and a fourth), the passage at its highest or lowest
   point moves an octave inwards too.
2. **Rhythm.** The singable length is the shortest note value of the meter's divisions (eighth,
   quarter, dotted quarter in 6/8, ...) lasting at least ``min_seconds`` at the tune's tempo (an
   eighth at a quarter = 120). In a bar with shorter notes, each stretch of that length takes the
   note sounding at its start, the note on the stronger beat, and the notes after it in that
   stretch are merged into it. A note that started off the grid and is still sounding on it is
   moved onto it. Every bar keeps its exact length.
3. **Breath.** The last bar of each phrase (2 or 4 bars, and every bar that closes a part) holds
   the note sounding at its middle to the bar's end.

Only the melody's bars change, and only those that need to: a bar whose notes only moved by an
octave keeps every other character, and every other bar, the header and the chord symbols stay
byte for byte (a chord symbol in a rewritten bar stands before the note that now sounds where
it was). The result is read back and checked note by note before it is returned.

Why our own code: music21 can transpose but has no notion of singability, and it cannot write
ABC; this module edits the text the way :mod:`agent.edits` does, through the offsets of
:mod:`agent.abc_text`.

>>> tune = "X:1\\nT:Run\\nM:2/4\\nL:1/16\\nQ:1/4=120\\nK:C\\nCDEF GABc|d4 c4|B2A2 G2F2|E8|]\\n"
>>> result = make_singable(tune)
>>> print(result.abc.split("K:C\\n")[1], end="")
C2E2 G2B2|d4 c4|B2A2 G2F2|E8|]
>>> result.summary
'I simplified the running notes in bar 1 into eighth notes, so every note is long enough to sing a syllable on.'
>>> make_singable("X:1\\nK:C\\n")
Traceback (most recent call last):
...
agent.errors.InputError: the tune has no notes to make singable
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from statistics import median

from agent import abc_lyrics
from agent.abc_text import (Bar, Kind, Meter, Token, TuneText, parse_tune, split_bars,
                            tokenize_body)
from agent.errors import AbcError, InputError
from agent.notation import ACCIDENTAL_TEXT, NOTE_HEAD_RE, length_text
from agent.prosody import seconds_per_whole

__all__ = ["VOICE_WINDOWS", "BarChange", "SingableConfig", "SingableResult", "make_singable",
           "singable_for_words", "singable_length", "singing_problems", "tempo_of"]

#: Comfortable sounding range (MIDI low, high) of each voice.
VOICE_WINDOWS: dict[str, tuple[int, int]] = {
    "middle": (57, 76),   # A3-E5: most untrained voices, men an octave lower by ear
    "soprano": (60, 79),  # C4-G5
    "alto": (55, 74),     # G3-D5
    "tenor": (48, 67),    # C3-G4
    "bass": (41, 62),     # F2-D4
    "low": (53, 72),      # F3-C5
    "high": (62, 81),     # D4-A5
}
#: One break in the melody's shape (an octave fold between neighbouring notes) weighs as much
#: as this many semitones, summed over the notes, sung outside the voice's window.
SEAM_SEMITONES = 8
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve")
_SECTION_END = re.compile(r"\|\]|\|\||:\||::")
_NAME = re.compile(r"([A-G])([#-]*)(-?\d+)$")
_VALUE_WORDS = {Fraction(1, 16): "sixteenth notes", Fraction(1, 8): "eighth notes",
                Fraction(1, 4): "quarter notes", Fraction(3, 8): "dotted quarter notes",
                Fraction(1, 2): "half notes", Fraction(3, 4): "dotted half notes"}


@dataclass(frozen=True)
class SingableConfig:
    """How a tune is made singable."""

    voice: str = field(default="middle", metadata={
        "help": "whose range: " + ", ".join(VOICE_WINDOWS)})
    max_range: int = field(default=16, metadata={
        "help": "widest melody in semitones (16: an octave and a fourth)"})
    min_seconds: float = field(default=0.15, metadata={
        "help": "shortest note, in seconds at the tune's tempo, that a syllable is sung on"})
    phrase_bars: int | None = field(default=None, metadata={
        "help": "bars per phrase (2 or 4); None: 4 when the tune has 8 full bars or more"})
    default_qpm: float = field(default=120.0, metadata={
        "help": "quarter notes a minute when the tune has no Q: field"})
    fold_range: bool = field(default=True, metadata={"help": "bring the melody into the voice"})
    simplify_rhythm: bool = field(default=True, metadata={"help": "merge notes too short to sing"})
    hold_phrase_ends: bool = field(default=True, metadata={"help": "hold each phrase's last note"})

    def __post_init__(self) -> None:
        if self.voice not in VOICE_WINDOWS:
            raise InputError(f"unknown voice {self.voice!r}; choose from "
                             + ", ".join(VOICE_WINDOWS))
        if self.phrase_bars not in (None, 2, 4):
            raise InputError("phrases are 2 or 4 bars long")


@dataclass(frozen=True)
class BarChange:
    """What changed in one bar: its number as engraved (a pickup is bar 0), its text before
    and after, and the changes in words."""

    bar: int
    before: str
    after: str
    changes: tuple[str, ...]


@dataclass(frozen=True)
class SingableResult:
    """A singable tune: the new ABC, what changed in a musician's words (``summary``) and per
    bar (``bars``), the whole-tune move in semitones, and the range and shortest note (seconds)
    before and after."""

    abc: str
    summary: str
    bars: tuple[BarChange, ...]
    shift: int
    range_before: int
    range_after: int
    shortest_before: float
    shortest_after: float
    singable_length: Fraction

    @property
    def changed(self) -> bool:
        return bool(self.bars)


@dataclass
class _Event:
    """A note, chord or rest of the melody: where it sounds in its bar and what it is."""

    token: Token
    onset: Fraction
    duration: Fraction
    names: tuple[str, ...]  # music21 spellings ('F#4'); empty for a rest
    tied: bool = False      # a tie follows it

    @property
    def end(self) -> Fraction:
        return self.onset + self.duration


# --------------------------------------------------------------------------------------------
# Tempo and the singable length


def tempo_of(tune: TuneText, default_qpm: float = 120.0) -> float:
    """Seconds a whole note lasts, by the rule of :func:`agent.prosody.seconds_per_whole`
    (``Q:``, else the named style's usual speed, else ``default_qpm``).

    >>> tempo_of(parse_tune("X:1\\nM:2/4\\nQ:1/4=120\\nK:C\\nC\\n"))
    2.0
    >>> round(tempo_of(parse_tune("X:1\\nR:reel\\nM:2/4\\nK:C\\nC\\n")), 3)  # 208 a minute
    1.154
    """
    return seconds_per_whole(tune, default_qpm)


def _divisions(meter: Meter) -> list[Fraction]:
    beat = meter.beat_length
    if meter.is_compound:
        unit = Fraction(1, meter.denominator)
        return [unit / 2, unit, beat, beat * 2]
    return [beat / 4, beat / 2, beat, beat * 2, beat * 4]


def singable_length(meter: Meter, seconds_per_whole: float, min_seconds: float = 0.15
                    ) -> Fraction:
    """The shortest division of the meter that lasts at least ``min_seconds``.

    >>> from agent.abc_text import parse_meter
    >>> singable_length(parse_meter("4/4"), 2.0), singable_length(parse_meter("6/8"), 4.0)
    (Fraction(1, 8), Fraction(1, 16))
    >>> singable_length(parse_meter("6/8"), 0.8)  # a fast jig: the dotted quarter
    Fraction(3, 8)
    """
    for value in _divisions(meter):
        if float(value) * seconds_per_whole >= min_seconds - 1e-9:
            return value
    return _divisions(meter)[-1]


# --------------------------------------------------------------------------------------------
# Reading the melody


def _melody_bars(tune: TuneText, tokens: list[Token]) -> tuple[str, list[Bar]]:
    voice = next((t.voice for t in tokens if t.is_note), "")
    return voice, [b for b in split_bars(tokens, tune) if b.voice == voice]


def _events(bar: Bar, first: bool) -> list[_Event]:
    """The bar's notes, chords and rests with their metrical onsets (a first short bar is a
    pickup ending on the downbeat)."""
    position = Fraction(0)
    if first and bar.expected and bar.duration < bar.expected:
        position = bar.expected - bar.duration
    out: list[_Event] = []
    for token in bar.tokens:
        if token.kind is Kind.TIE and out:
            out[-1].tied = True
        if token.duration is None or not token.is_timed:
            continue
        names = token.names if token.is_note else ()
        out.append(_Event(token, position, token.duration, names))
        position += token.duration
    return out


def _top(event: _Event) -> int | None:
    return max(event.token.pitches) if event.token.is_note and event.token.pitches else None


# --------------------------------------------------------------------------------------------
# Range


def _octave_shift(pitches: list[int], window: tuple[int, int]) -> int:
    """The whole-tune move (a multiple of 12) putting most notes in the window, the middle
    of the melody nearest the window's middle."""
    low, high = window
    centre = (low + high) / 2
    middle = median(pitches)
    return min(range(-36, 37, 12), key=lambda s: (
        sum(1 for p in pitches if not low <= p + s <= high), abs(middle + s - centre), abs(s)))


def _line_score(order: list[tuple[int, int]], moves: dict[int, int], window: tuple[int, int],
                max_range: int) -> tuple[int, int, int, int]:
    """How well a melody (passage, pitch) sits with each passage moved by ``moves``, lower is
    better: semitones beyond ``max_range`` first; then the seams (neighbouring notes moved
    apart by an octave: the line's shape breaks there), each weighing as much as
    ``SEAM_SEMITONES`` semitones sung outside the window, plus those semitones (how far each
    note lies outside, summed); then the passages moved."""
    low, high = window
    sounding = [p + moves[g] for g, p in order]
    excess = max(0, max(sounding) - min(sounding) - max_range)
    seams = sum(1 for (g, _), (h, _) in zip(order, order[1:]) if moves[g] != moves[h])
    outside = sum(max(0, low - p, p - high) for p in sounding)
    return excess, SEAM_SEMITONES * seams + outside, 0, sum(1 for e in moves.values() if e)


def _fold(passages: dict[int, list[tuple[int, int]]], window: tuple[int, int], max_range: int
          ) -> dict[int, int]:
    """The octaves (in semitones) each note moves by, given each passage's (note id, pitch)
    pairs in order, after the whole-tune move. The result maps ``-1 - passage`` to the
    passage's move, and a note id to its own move where that differs.

    Passages move an octave at a time while that improves :func:`_line_score`: first the
    melody's width, then the places where its shape breaks, then the notes outside the window.
    Moving whole passages keeps the line's shape inside them. If the melody is still too wide,
    the notes at its highest or lowest pitch, whichever are fewer, move an octave inwards.

    >>> moves = _fold({0: [(1, 60), (2, 64)], 1: [(3, 79), (4, 83)], 2: [(5, 62)]}, (57, 76), 16)
    >>> moves[-1], moves[-2], moves[-3]
    (0, -12, 0)
    >>> moves = _fold({0: [(1, 60), (2, 62), (3, 79)]}, (55, 79), 16)  # one note too high
    >>> moves[-1], moves[3]
    (0, -12)
    """
    order = [(g, p) for g, notes in passages.items() for _, p in notes]
    moves = {g: 0 for g in passages}
    best = _line_score(order, moves, window, max_range)
    improved = True
    while improved:
        improved = False
        for g in passages:
            for move in (-12, 12):
                trial = dict(moves)
                trial[g] += move
                if abs(trial[g]) > 24:
                    continue
                value = _line_score(order, trial, window, max_range)
                if value < best:
                    moves, best, improved = trial, value, True
    result = {-1 - g: e for g, e in moves.items()}
    notes = {i: p + moves[g] for g, ns in passages.items() for i, p in ns}
    own = {i: 0 for i in notes}
    for _ in range(4 * len(notes)):
        sounding = {i: p + own[i] for i, p in notes.items()}
        top, bottom = max(sounding.values()), min(sounding.values())
        if top - bottom <= max_range:
            break
        highest = [i for i, p in sounding.items() if p == top]
        lowest = [i for i, p in sounding.items() if p == bottom]
        for i in (highest if len(highest) <= len(lowest) else lowest):
            own[i] += -12 if top == sounding[i] else 12
    for g, ns in passages.items():
        for i, _ in ns:
            if own[i]:
                result[i] = moves[g] + own[i]
    return result


def _same_passages_together(passage: dict[int, int], kept: list[_Event]) -> dict[int, int]:
    """Passages whose kept notes are the same pitches (a repeated bar) share the first one's
    number, so they move together and a repeat still sounds like one."""
    content: dict[int, list[int]] = {}
    for event in kept:
        content.setdefault(passage[event.token.start], []).append(_top(event))
    first: dict[tuple[int, ...], int] = {}
    same = {g: first.setdefault(tuple(ps), g) for g, ps in content.items()}
    return {start: same.get(g, g) for start, g in passage.items()}


def _place_in_voice(kept: list[_Event], passage: dict[int, int], window: tuple[int, int],
                    max_range: int) -> tuple[int, dict[int, int]]:
    """The whole-tune move and the folds after it (see :func:`_fold`). The whole-tune octave
    that puts most notes in the window comes first; the octaves either side of it are tried
    too, and the one whose folded melody scores best (:func:`_line_score`, and the fewest
    single notes moved) wins."""
    first = _octave_shift([_top(e) for e in kept], window)
    options = []
    for shift in (first, first - 12, first + 12):
        pitches_of: dict[int, list[tuple[int, int]]] = {}
        for event in kept:
            pitches_of.setdefault(passage[event.token.start], []).append(
                (event.token.start, _top(event) + shift))
        folded = _fold(pitches_of, window, max_range)
        own = {e.token.start: folded.get(e.token.start, folded[-1 - passage[e.token.start]])
               for e in kept}
        order = [(e.token.start, _top(e) + shift) for e in kept]
        excess, seams, outside, _ = _line_score(order, own, window, max_range)
        singles = sum(1 for e in kept if e.token.start in folded)
        options.append(((excess, seams, outside, singles, shift != first), shift, folded))
    _, shift, folded = min(options, key=lambda o: o[0])
    return shift, folded


def _kept_notes(events: list[list[_Event]], plans: dict[int, "_Plan"]) -> list[_Event]:
    """The notes that sound in the new rhythm (a merged note is gone)."""
    kept: list[_Event] = []
    for index, bar_events in enumerate(events):
        if index in plans:
            sources = sorted({s for _, _, s in plans[index].cells})
            kept += [bar_events[s] for s in sources if bar_events[s].names]
        else:
            kept += [e for e in bar_events if e.names]
    return kept


# --------------------------------------------------------------------------------------------
# Writing notes


def _pitch_text(name: str, octaves: int, alteration_state: dict[str, int] | None) -> str:
    """ABC for a music21 pitch name moved by ``octaves``. With ``alteration_state`` (letter ->
    alteration in force in the bar) the accidental is written only where it is needed;
    without it, always."""
    match = _NAME.match(name)
    if not match:
        raise AbcError(f"cannot spell the pitch {name!r}")
    letter, marks, octave = match.group(1), match.group(2), int(match.group(3)) + octaves
    alteration = marks.count("#") - marks.count("-")
    accidental = ACCIDENTAL_TEXT.get(alteration, "")
    if alteration_state is not None:
        if alteration_state.get(letter, 0) == alteration:
            accidental = ""
        else:
            alteration_state[letter] = alteration
    if octave >= 5:
        return accidental + letter.lower() + "'" * (octave - 5)
    return accidental + letter + "," * (4 - octave)


def _moved_head(match: re.Match, octaves: int) -> str:
    accidental, letter, marks = match.group(1) or "", match.group(2), match.group(3)
    octave = (5 if letter.islower() else 4) + marks.count("'") - marks.count(",") + octaves
    if octave >= 5:
        return accidental + letter.lower() + "'" * (octave - 5)
    return accidental + letter.upper() + "," * (4 - octave)


def _move_text(text: str, octaves: int) -> str:
    """A note, chord or grace group's text with every pitch moved by ``octaves``.

    >>> _move_text("^f'2", -1), _move_text("[CEg]2", 1), _move_text("{ag}", -1)
    ('^f2', "[ceg']2", '{AG}')
    """
    if octaves == 0:
        return text
    return NOTE_HEAD_RE.sub(lambda m: _moved_head(m, octaves), text)


def _plain(length: Fraction) -> bool:
    """Whether ``length`` (whole notes) can be written as plain or dotted notes: a power of
    two below it (a third of a beat, from a triplet, cannot)."""
    return length > 0 and not length.denominator & (length.denominator - 1)


def _pieces(length: Fraction, unit: Fraction) -> list[Fraction]:
    """A length as notes a reader prints plainly (plain or dotted values), longest first.

    >>> _pieces(Fraction(3, 8), Fraction(1, 8)), _pieces(Fraction(5, 8), Fraction(1, 8))
    ([Fraction(3, 8)], [Fraction(1, 2), Fraction(1, 8)])
    >>> _pieces(Fraction(1, 12), Fraction(1, 8))  # a triplet's share: not a plain value
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: a length of 1/12 cannot be written as plain notes
    """
    if not _plain(length):  # halving would never reach it
        raise AbcError(f"a length of {length} cannot be written as plain notes")
    out: list[Fraction] = []
    left = length
    while left > 0:
        value = Fraction(1)
        while value > left:
            value /= 2
        if value * 3 / 2 <= left and (value * 3 / 2) / unit >= Fraction(1, 16):
            value = value * 3 / 2
        out.append(value)
        left -= value
    return out


def _event_text(event: _Event, duration: Fraction, unit: Fraction, octaves: int,
                state: dict[str, int] | None) -> str:
    pieces = _pieces(duration, unit)
    if not event.names:
        return " ".join(event.token.text[0] + length_text(p / unit) for p in pieces)
    texts = []
    for piece in pieces:
        heads = [_pitch_text(name, octaves, state) for name in event.names]
        head = heads[0] if len(heads) == 1 else "[" + "".join(heads) + "]"
        texts.append(head + length_text(piece / unit))
    return "-".join(texts)


# --------------------------------------------------------------------------------------------
# Rewriting one bar


@dataclass(frozen=True)
class _Plan:
    bar: Bar
    events: list[_Event]
    cells: list[tuple[Fraction, Fraction, int]]  # (start, end, index of the source event)
    merged: int
    held: bool
    simplified: bool


def _points(events: list[_Event], grid: Fraction | None, hold_from: Fraction | None
            ) -> list[Fraction]:
    start, end = events[0].onset, events[-1].end
    if grid is None:
        points = {e.onset for e in events}
    else:
        points = {start}
        k = start // grid + 1
        while grid * k < end:
            points.add(grid * k)
            k += 1
    points.add(end)
    if hold_from is not None and start < hold_from < end:
        points = {p for p in points if p <= hold_from} | {hold_from, end}
    return sorted(points)


def _sounding(events: list[_Event], at: Fraction) -> int:
    return next(i for i, e in enumerate(events) if e.onset <= at < e.end)


def _plan_bar(bar: Bar, events: list[_Event], grid: Fraction | None,
              hold_from: Fraction | None) -> _Plan | None:
    if hold_from is not None and not events[0].onset < hold_from < events[-1].end:
        hold_from = None  # a bar that ends by the middle: its last note is the held one
    if grid is None and hold_from is None:
        return None
    points = _points(events, grid, hold_from)
    cells = [(a, b) for a, b in zip(points, points[1:])]
    if grid is not None:
        # a stretch shorter than the singable length (at a bar's edge, or before the held
        # note) joins the one before it (the first joins the one after)
        while len(cells) > 1:
            short = next((k for k, (a, b) in enumerate(cells) if b - a < grid), None)
            if short is None:
                break
            k = max(short, 1)
            cells[k - 1:k + 1] = [(cells[k - 1][0], cells[k][1])]
    sourced = [(a, b, _sounding(events, a)) for a, b in cells]
    if hold_from is not None:
        index = _sounding(events, hold_from)
        if events[index].names == ():
            hold_from = None  # a rest already gives the singer a breath
        else:
            sourced = [(a, b, index if a >= hold_from else s) for a, b, s in sourced]
    joined: list[tuple[Fraction, Fraction, int]] = []
    for a, b, s in sourced:
        if joined and joined[-1][2] == s:
            joined[-1] = (joined[-1][0], b, s)
        else:
            joined.append((a, b, s))
    same = len(joined) == len(events) and all(
        (a, b) == (e.onset, e.end) and s == i
        for (a, b, s), (i, e) in zip(joined, enumerate(events)))
    if same or not all(_plain(b - a) for a, b, _ in joined):
        return None  # nothing to change, or a share of a triplet left: the bar stays as written
    kept = {s for _, _, s in joined}
    merged = sum(1 for i, e in enumerate(events) if i not in kept and e.names)
    return _Plan(bar, events, joined, merged, hold_from is not None, grid is not None)


_PREFIX_KINDS = frozenset({Kind.CHORD_SYMBOL, Kind.ANNOTATION, Kind.INLINE_FIELD})
_ATTACHED_KINDS = frozenset({Kind.DECORATION, Kind.GRACE})


def _bar_text(plan: _Plan, unit: Fraction, shift_of: dict[int, int], beat: Fraction,
              key_state: dict[str, int] | None) -> str:
    """The new text of a planned bar."""
    events = plan.events
    onset_of = {e.token.start: e.onset for e in events}
    # where each non-timed token belongs: the onset of the next timed token
    before: dict[Fraction, list[str]] = {}
    attached: dict[int, list[str]] = {}
    opens: dict[Fraction, int] = {}
    closes: dict[Fraction, int] = {}
    position = events[0].onset
    pending_attached: list[str] = []
    slur_open_in_bar = 0
    for token in plan.bar.tokens:
        if token.start in onset_of:
            attached[token.start] = pending_attached
            pending_attached = []
            position = onset_of[token.start] + (token.duration or 0)
            continue
        if token.kind in _PREFIX_KINDS:
            before.setdefault(position, []).append(token.text)
        elif token.kind in _ATTACHED_KINDS:
            pending_attached.append(token.text)
        elif token.kind is Kind.SLUR and token.text == "(":
            opens[position] = opens.get(position, 0) + 1
            slur_open_in_bar += 1
        elif token.kind is Kind.SLUR:
            if slur_open_in_bar:
                slur_open_in_bar -= 1
                # a slur begun and ended in this bar: dropped with the notes it joined
                for where in sorted(opens, reverse=True):
                    if opens[where]:
                        opens[where] -= 1
                        break
            else:
                closes[position] = closes.get(position, 0) + 1
    state = dict(key_state) if key_state is not None else None
    out: list[str] = []
    for number, (start, end, source) in enumerate(plan.cells):
        event = events[source]
        text = ""
        last = number == len(plan.cells) - 1
        for where in sorted(before):
            if start <= where < end or (number == 0 and where < start) or (last and where >= end):
                text += "".join(before[where])
        text += "(" * sum(n for where, n in opens.items() if start <= where < end)
        if event.onset == start:
            octaves = shift_of.get(event.token.start, 0)
            text += "".join(_move_text(t, octaves // 12)
                            for t in attached.get(event.token.start, []))
        octaves = shift_of.get(event.token.start, 0) // 12
        text += _event_text(event, end - start, unit, octaves, state)
        if event.tied and end == event.end:
            text += "-"
        text += ")" * sum(n for where, n in closes.items() if start < where <= end)
        if out and start % beat == 0:
            out.append(" ")
        out.append(text)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Words


def _count(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def _spans(numbers: list[int]) -> str:
    """Bar numbers in words, runs of three or more as ranges.

    >>> _spans([3, 4, 5, 6, 9]), _spans([0, 1, 4, 5]), _spans([7])
    ('bars 3–6 and 9', 'bars 0, 1, 4 and 5', 'bar 7')
    """
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    items: list[str] = []
    for run in runs:
        items += [f"{run[0]}–{run[-1]}"] if len(run) > 2 else [str(n) for n in run]
    text = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return ("bars " if len(set(numbers)) > 1 else "bar ") + text


def _summary(shift: int, rhythm_bars: list[int], grid: Fraction, up: list[int], down: list[int],
             held: list[int], range_before: int, range_after: int, kept_rhythm: str) -> str:
    parts = []
    if shift:
        octaves = abs(shift) // 12
        parts.append(f"moved the whole tune {'up' if shift > 0 else 'down'} "
                     f"{'an octave' if octaves == 1 else _count(octaves) + ' octaves'}")
    if rhythm_bars:
        value = _VALUE_WORDS.get(grid, "longer notes")
        parts.append(f"simplified the running notes in {_spans(rhythm_bars)} into {value}")
    if down:
        parts.append(f"moved the highest notes in {_spans(down)} down an octave")
    if up:
        parts.append(f"moved the lowest notes in {_spans(up)} up an octave")
    if held:
        parts.append("held the last note of each phrase")
    if not parts:
        sentence = "The tune is singable as it is: nothing needed changing."
    elif len(parts) == 1:
        sentence = f"I {parts[0]}"
    else:
        sentence = "I " + ", ".join(parts[:-1]) + " and " + parts[-1]
    if parts:
        reasons = []
        if rhythm_bars:
            reasons.append("every note is long enough to sing a syllable on")
        if shift or up or down:
            was = f" (it spanned {range_before})" if range_after != range_before else ""
            reasons.append(f"the melody spans {range_after} semitones{was}")
        sentence += (", so " + " and ".join(reasons) if reasons else "") + "."
    if kept_rhythm:
        sentence += " " + kept_rhythm
    return sentence


# --------------------------------------------------------------------------------------------
# The whole tune


def _passages(bars: list[list[_Event]]) -> dict[int, int]:
    """Token start of each note -> its passage: the index of its bar, bars joined by a tie
    over the bar line counting as one."""
    passage: dict[int, int] = {}
    current = -1
    tied_in = False
    for index, events in enumerate(bars):
        if not tied_in:
            current = index
        for event in events:
            if event.names:
                passage[event.token.start] = current
        tied_in = bool(events) and events[-1].tied and bool(events[-1].names)
    return passage


def _phrase_ends(bars: list[Bar], phrase: int | None) -> set[int]:
    """Indices of the bars that end a phrase: every 2nd or 4th bar of each part (counted from
    the part's first full bar; a short bar closing a part counts, its upbeat does not), and
    every bar that closes a part."""
    closes = [b.bar_line is not None and bool(_SECTION_END.search(b.bar_line.text))
              for b in bars]
    full = [b.expected is None or b.duration >= b.expected for b in bars]
    counted = [full[i] or closes[i] for i in range(len(bars))]
    size = phrase or (4 if sum(counted) >= 8 else 2)
    ends: set[int] = set()
    count = 0
    for index, bar in enumerate(bars):
        if counted[index]:
            count += 1
            if count % size == 0:
                ends.add(index)
        if closes[index]:
            ends.add(index)
            count = 0
    if bars:
        ends.add(len(bars) - 1)
    return ends


def _ends_held(events: list[_Event], meter: Meter | None) -> bool:
    """Whether a bar already ends on a note (or rest) of a beat or longer, starting on a beat:
    a phrase ending there already gives the singer time."""
    if meter is None or meter.is_free or not events:
        return True
    last = events[-1]
    return last.duration >= meter.beat_length and last.onset % meter.beat_length == 0


def _hold_from(meter: Meter | None) -> Fraction | None:
    if meter is None or meter.is_free:
        return None
    beats = int(meter.beats_per_bar) if meter.beats_per_bar == int(meter.beats_per_bar) else 1
    return meter.beat_length * (beats // 2)


def _engraved_numbers(bars: list[Bar]) -> list[int]:
    first_short = (bool(bars) and bars[0].expected is not None
                   and bars[0].duration < bars[0].expected)
    return [i if first_short else i + 1 for i in range(len(bars))]


def _simple_bar(bar: Bar) -> bool:
    """A bar that can be rewritten from its events: nothing but music inside it."""
    blocked = {Kind.LINE_BREAK, Kind.FIELD, Kind.LYRICS, Kind.COMMENT, Kind.CONTINUATION,
               Kind.OVERLAY, Kind.UNKNOWN, Kind.SPACER}
    return not any(t.kind in blocked for t in bar.tokens)


def singing_problems(abc: str, config: SingableConfig = SingableConfig(),
                     most_short: float = 0.02) -> tuple[str, ...]:
    """What keeps a melody from being sung, in words (empty when nothing does): a range wider
    than ``config.max_range``, or more than ``most_short`` of its notes shorter than
    ``config.min_seconds`` at its tempo. The chat asks this before putting words on a tune.

    >>> singing_problems("X:1\\nM:2/4\\nL:1/16\\nQ:1/4=120\\nK:C\\nCDEF GABc|d'8|]\\n")
    ('the melody spans 26 semitones (a voice is comfortable within 16)', '8 of 9 notes are too short to sing a syllable on at this speed')
    >>> singing_problems("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC E G|c3|]\\n")
    ()
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    _, bars = _melody_bars(tune, tokens)
    notes = [t for b in bars for t in b.notes if t.duration]
    if not notes:
        return ()
    per_whole = tempo_of(tune, config.default_qpm)
    pitches = [max(t.pitches) for t in notes]
    short = sum(1 for t in notes if float(t.duration) * per_whole < config.min_seconds - 1e-9)
    problems = []
    if max(pitches) - min(pitches) > config.max_range:
        problems.append(f"the melody spans {max(pitches) - min(pitches)} semitones (a voice is "
                        f"comfortable within {config.max_range})")
    if short > most_short * len(notes):
        problems.append(f"{short} of {len(notes)} notes are too short to sing a syllable on at "
                        "this speed")
    return tuple(problems)


def singable_for_words(abc: str, config: SingableConfig = SingableConfig()
                       ) -> tuple[str, str]:
    """The melody to put words on: ``abc`` itself when a voice can sing it, else its singable
    version (:func:`make_singable`); and what changed, in a musician's words ('' when nothing
    did). The chat calls this before writing or setting words.

    >>> reel = "X:1\\nM:2/4\\nL:1/16\\nQ:1/4=120\\nK:C\\nCDEF GABc|d4 c4|]\\n"
    >>> new, said = singable_for_words(reel)
    >>> new.splitlines()[-1], said.split(",")[0]
    ('C2E2 G2B2|d4 c4|]', 'I simplified the running notes in bar 1 into eighth notes')
    >>> singable_for_words("X:1\\nM:3/4\\nL:1/4\\nK:C\\nC E G|c3|]\\n")[1]
    ''
    """
    if not singing_problems(abc, config):
        return abc, ""
    result = make_singable(abc, config)
    return (result.abc, result.summary) if result.changed else (abc, "")


def make_singable(abc: str, config: SingableConfig = SingableConfig()) -> SingableResult:
    """A singable version of ``abc`` (see the module's description); what changed in words.

    >>> tune = "X:1\\nM:4/4\\nL:1/8\\nQ:1/4=100\\nK:G\\n\\"G\\"g2 b2 d'2 b2|\\"D\\"a2 f2 d4|]\\n"
    >>> result = make_singable(tune)
    >>> result.abc.splitlines()[-1], result.shift, result.range_after
    ('"G"G2 B2 d2 B2|"D"A2 F2 D4|]', -12, 12)
    >>> result.summary
    'I moved the whole tune down an octave, so the melody spans 12 semitones.'
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice, bars = _melody_bars(tune, tokens)
    if not any(b.notes for b in bars):
        raise InputError("the tune has no notes to make singable")
    has_words = abc_lyrics.align_lyrics(tokens).has_lyrics
    unit_changes = any(t.kind in (Kind.FIELD, Kind.INLINE_FIELD) and t.text.lstrip("[")[:2] in
                       ("L:", "K:", "M:") for t in tokens)
    per_whole = tempo_of(tune, config.default_qpm)
    meter = tune.meter
    grid = singable_length(meter, per_whole, config.min_seconds) if not meter.is_free else None
    events = [_events(bar, index == 0) for index, bar in enumerate(bars)]
    notes = [e for es in events for e in es if e.names]
    pitches = [_top(e) for e in notes]
    range_before = max(pitches) - min(pitches)
    shortest_before = min(float(e.duration) for e in notes) * per_whole

    # 1 and 2. rhythm and breath
    kept_rhythm = ""
    blocked: list[int] = []
    plans: dict[int, _Plan] = {}
    ends = _phrase_ends(bars, config.phrase_bars)
    rhythm_allowed = (config.simplify_rhythm or config.hold_phrase_ends) and grid is not None
    if has_words and rhythm_allowed:
        kept_rhythm = ("I kept the rhythm as it is, because the tune already has words under "
                       "its notes.")
        rhythm_allowed = False
    if unit_changes and rhythm_allowed:
        kept_rhythm = ("I kept the rhythm as it is, because the tune changes its key, meter or "
                       "note length on the way.")
        rhythm_allowed = False
    if rhythm_allowed:
        for index, (bar, bar_events) in enumerate(zip(bars, events)):
            if not bar_events:
                continue
            short = config.simplify_rhythm and any(e.duration < grid for e in bar_events)
            if not _simple_bar(bar):
                if short:
                    blocked.append(index)
                continue
            hold = None
            if config.hold_phrase_ends and index in ends and not _ends_held(bar_events,
                                                                             bar.meter):
                hold = _hold_from(bar.meter)
            if not short and hold is None:
                continue
            plan = _plan_bar(bar, bar_events, grid if short else None, hold)
            if plan is not None:
                plans[index] = plan

    # 3. range, on the notes the new rhythm keeps
    shift = 0
    shift_of: dict[int, int] = {}
    up: list[int] = []
    down: list[int] = []
    numbers = _engraved_numbers(bars)
    if config.fold_range:
        window = VOICE_WINDOWS[config.voice]
        kept = _kept_notes(events, plans)
        passage = _same_passages_together(_passages(events), kept)
        shift, folded = _place_in_voice(kept, passage, window, config.max_range)
        for event in notes:
            shift_of[event.token.start] = shift + folded.get(
                event.token.start, folded.get(-1 - passage[event.token.start], 0))
        for index, bar_events in enumerate(events):
            extras = {shift_of[e.token.start] - shift for e in bar_events if e.names}
            if any(x < 0 for x in extras):
                down.append(numbers[index])
            if any(x > 0 for x in extras):
                up.append(numbers[index])

    # the new body, bar by bar from the end (earlier offsets stay valid)
    body = tune.body
    key_state = dict(tune.key.signature)
    changes: list[BarChange] = []
    rhythm_bars: list[int] = []
    held_bars: list[int] = []
    for index in range(len(bars) - 1, -1, -1):
        bar = bars[index]
        before = bar.text_in(tune.body)
        what: list[str] = []
        if index in plans:
            plan = plans[index]
            new = _bar_text(plan, tune.unit_length, shift_of, meter.beat_length, key_state)
            if plan.simplified:
                what.append(f"merged {_count(plan.merged)} short note"
                            f"{'s' * (plan.merged != 1)} into the notes on the stronger beats"
                            if plan.merged else "moved notes onto the beat")
                rhythm_bars.append(numbers[index])
            if plan.held:
                what.append("held the phrase's last note")
                held_bars.append(numbers[index])
        else:
            new = _moved_bar(tune.body, bar, events[index], shift_of)
        moved_here = [shift_of[e.token.start] - shift for e in _kept_notes([events[index]],
                      {0: plans[index]} if index in plans else {}) if e.names]
        if any(moved_here):
            count = sum(1 for m in moved_here if m)
            direction = "down" if min(moved_here) < 0 else "up"
            which = ("the bar" if count == len(moved_here)
                     else f"{_count(count)} note{'s' * (count != 1)}")
            what.append(f"moved {which} {direction} an octave to stay in the voice's range")
        if new != before:
            body = body[:bar.start] + new + body[bar.end:]
            changes.append(BarChange(numbers[index], before, new, tuple(what)))
    new_abc = abc[:tune.body_offset] + body + abc[tune.body_offset + len(tune.body):]
    changes.reverse()
    expected = _expected_melody(events, plans, shift_of)
    _check(new_abc, expected, voice)
    new_tune = parse_tune(new_abc)
    new_tokens = tokenize_body(new_tune.body, new_tune)
    _, new_bars = _melody_bars(new_tune, new_tokens)
    new_events = [e for index, bar in enumerate(new_bars) for e in _events(bar, index == 0)
                  if e.names]
    new_pitches = [_top(e) for e in new_events]
    range_after = max(new_pitches) - min(new_pitches)
    shortest_after = min(float(e.duration) for e in new_events) * per_whole
    if blocked:
        kept_rhythm = (f"I left the rhythm of {_spans([numbers[i] for i in blocked])} as it was: "
                       "a line break or a symbol I cannot read stands inside "
                       f"{'them' if len(blocked) > 1 else 'it'}.")
    summary = _summary(shift if any(c for c in changes) else 0, sorted(set(rhythm_bars)), grid,
                       up, down, held_bars, range_before, range_after, kept_rhythm)
    return SingableResult(new_abc, summary, tuple(changes), shift, range_before, range_after,
                          shortest_before, shortest_after, grid or Fraction(0))


def _moved_bar(body: str, bar: Bar, events: list[_Event], shift_of: dict[int, int]) -> str:
    """The bar with its notes (and the grace notes before them) moved by their octaves, every
    other character kept."""
    text = body[bar.start:bar.end]
    edits: list[tuple[int, int, str]] = []
    pending_grace: list[Token] = []
    for token in bar.tokens:
        if token.kind is Kind.GRACE:
            pending_grace.append(token)
            continue
        if token.is_note:
            octaves = shift_of.get(token.start, 0) // 12
            if octaves:
                for t in pending_grace + [token]:
                    edits.append((t.start - bar.start, t.end - bar.start,
                                  _move_text(t.text, octaves)))
            pending_grace = []
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _expected_melody(events: list[list[_Event]], plans: dict[int, _Plan],
                     shift_of: dict[int, int]) -> list[tuple[tuple[int, ...], Fraction]]:
    """The melody the new text must read as: (pitches, total length) per bar element."""
    out: list[tuple[tuple[int, ...], Fraction]] = []
    for index, bar_events in enumerate(events):
        if index in plans:
            for start, end, source in plans[index].cells:
                event = bar_events[source]
                shift = shift_of.get(event.token.start, 0)
                out.append((tuple(p + shift for p in event.token.pitches), end - start))
        else:
            for event in bar_events:
                shift = shift_of.get(event.token.start, 0)
                out.append((tuple(p + shift for p in event.token.pitches), event.duration))
    return out


def _check(abc: str, expected: list[tuple[tuple[int, ...], Fraction]], voice: str) -> None:
    """Read the new tune back: its melody must be the one planned (a piece split into tied
    notes of the same pitch counts as one)."""
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    read = [(tuple(t.pitches) if t.is_note else (), t.duration) for t in tokens
            if t.voice == voice and t.is_timed and t.duration is not None]
    if _lengths_by_pitch(read) != _lengths_by_pitch(expected):
        raise AbcError("the singable version did not read back as planned; the tune is kept")


def _lengths_by_pitch(items: list[tuple[tuple[int, ...], Fraction]]
                      ) -> list[tuple[tuple[int, ...], Fraction]]:
    """Consecutive items of the same pitches joined (tied pieces, split rests), for comparing."""
    out: list[tuple[tuple[int, ...], Fraction]] = []
    for pitches, length in items:
        if out and out[-1][0] == pitches:
            out[-1] = (pitches, out[-1][1] + length)
        else:
            out.append((pitches, length))
    return out
