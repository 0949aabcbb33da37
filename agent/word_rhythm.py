"""Changing a melody's rhythm, a little, so that given words sing: stresses on strong beats.

The user's words are set as they are: we cannot change a word, only where it goes and the rhythm
under it. :func:`agent.prosody.place_syllables` already chooses the note each syllable starts
on; when a line has as many syllables as notes it has no choice left, and a word such as
"JEAN-nie" or "re-MEM-ber" may land against its stress. This module gives the placement room by
changing the rhythm of the notes the words go on, the way a songwriter fits a verse to a tune:

- **split** a note into two of the same pitch (a half note becomes two quarters), so a syllable
  gains a note to start on, e.g. an unstressed pickup before a downbeat;
- **merge** two neighbouring notes of the same pitch in a bar into one, so a syllable is not
  forced onto the weak half of them.

Every change keeps the bar's length exactly and the pitch contour (a split repeats a pitch; only
notes of one pitch are merged), and no new note is shorter than a syllable can be sung on at the
tempo. The choice is a small beam search: from the written rhythm, try each single change,
keep the few best (most words with the stress on their strongest beat, then fewest syllables on
notes too short, then fewest changes), and go on while the words get better, up to
:attr:`RhythmConfig.max_changes` changes a line. Where the words have more syllables than the
line has notes, the first changes are the splits they need (longest notes first), chosen by the
same measure. A change is kept only when it sets more words right (or is needed to fit), so a
line that already sings is left as written.

Why our own code: no library re-times a melody to words. music21 gives the beat strengths (via
:mod:`agent.prosody`); the ABC is edited in place, note by note, as :mod:`agent.lyrics` does.

>>> tune = "X:1\\nM:2/4\\nL:1/8\\nQ:1/4=80\\nK:G\\nG2 B2|d4|c2 A2|G4|]\\n"
>>> line = note_slots(tune)[0]
>>> fit = fit_rhythm(tune, line.slots, ["the sun is shining on the hill"])
>>> fit.fits[0].text, fit.details  # 8 syllables, 6 notes: "shin-" on a downbeat
('the sun is shin-ing on the hill', ('bar 1: B2 -> BB', 'bar 3: A2 -> AA'))
>>> fit.summary(), fit.abc.splitlines()[-1]
('I split two notes so the words fit (bars 1 and 3).', 'G2 BB|d4|c2 AA|G4|]')
>>> fit_rhythm(tune, line.slots, ["one two three four five six seven eight nine ten"],
...            shortest=Fraction(1, 4)).reason  # ("seven" has two syllables) no note under a quarter
'11 syllables for 6 notes, and only 2 more notes can be made by splitting'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

from agent.abc_text import Meter, parse_tune
from agent.lyric_fit import LineSlots, NoteSlot, _strength_of, note_slots, tune_qpm
from agent.notation import NOTE_RE, length_multiplier, length_text
from agent.prosody import PlaceConfig, Placement, Slot, meter_text, place_syllables
from agent.syllables import Word, split_text

__all__ = ["Change", "Retimed", "RhythmConfig", "RhythmFit", "fit_rhythm", "retime_lines",
           "singable_split"]


@dataclass(frozen=True)
class RhythmConfig:
    """How far the rhythm under a line of words may be changed."""

    max_changes: int = field(
        default=3, metadata={"help": "most splits or merges made for the stresses alone, per "
                             "line (splits the words need to fit come on top)"})
    beam: int = field(default=4, metadata={"help": "rhythms kept at each step of the search"})
    merge: bool = field(default=True, metadata={"help": "allow merging two notes of one pitch"})
    place: PlaceConfig = field(default_factory=PlaceConfig,
                               metadata={"help": "costs of the syllable placement"})


@dataclass(frozen=True)
class Change:
    """One rhythm change: ``kind`` "split" or "merge", in ``bar``, the notes ``before`` and
    ``after`` as ABC."""

    kind: str
    bar: int
    before: str
    after: str

    @property
    def detail(self) -> str:
        return f"bar {self.bar}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class RhythmFit:
    """Words set on a line whose rhythm may have changed.

    ``abc`` is the whole tune with the changes (unchanged when there are none), ``slots`` the
    line's notes after them, ``fits`` one :class:`~agent.prosody.Placement` per verse on those
    notes. ``needed`` counts the changes made to fit more syllables than notes, ``changes``
    all of them; ``fixed`` the words that now sing with their stress on the beat and did not
    (or could not be set) before. ``reason`` says why the words cannot be set.
    """

    abc: str
    slots: tuple[NoteSlot, ...] = ()
    fits: tuple[Placement, ...] = ()
    changes: tuple[Change, ...] = ()
    needed: int = 0
    fixed: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def details(self) -> tuple[str, ...]:
        return tuple(c.detail for c in self.changes)

    def summary(self) -> str:
        """What changed, as a musician would say it ('' when nothing did).

        >>> RhythmFit("", changes=(Change("split", 3, "B2", "BB"),), fixed=("remember",)).summary()
        "I split one note so 'remember' lands with its stress on the beat (bar 3)."
        >>> RhythmFit("").summary()
        ''
        """
        if not self.changes:
            return ""
        splits = sum(c.kind == "split" for c in self.changes)
        merges = len(self.changes) - splits
        done = []
        if splits:
            done.append(f"split {_count(splits)} note{'s' if splits != 1 else ''}")
        if merges:
            done.append(f"joined {_count(merges)} pair{'s' if merges != 1 else ''} of repeated "
                        "notes")
        bars = _bar_list(sorted({c.bar for c in self.changes}))
        why = "so the words fit" if self.needed else ""
        if self.fixed:
            words = _quoted(self.fixed)
            verb = "lands" if len(self.fixed) == 1 else "land"
            their = "its" if len(self.fixed) == 1 else "their"
            why = (why + " and " if why else "so ") + f"{words} {verb} with {their} stress on the beat"
        return f"I {' and '.join(done)} {why} ({bars})."


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _count(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def _bar_list(bars: Sequence[int]) -> str:
    if len(bars) == 1:
        return f"bar {bars[0]}"
    return "bars " + ", ".join(map(str, bars[:-1])) + f" and {bars[-1]}"


def _quoted(words: Sequence[str]) -> str:
    shown = [f"'{w}'" for w in dict.fromkeys(words)]
    if len(shown) > 3:
        shown = shown[:3] + ["others"]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def singable_split(abc: str) -> Fraction:
    """The shortest note a change may make (whole notes): the shortest division of the meter a
    syllable can be sung on at the tune's tempo, at least a sixteenth.

    >>> singable_split("X:1\\nM:4/4\\nQ:1/4=120\\nK:C\\nC\\n"), singable_split("X:1\\nM:none\\nK:C\\nC\\n")
    (Fraction(1, 8), Fraction(1, 16))
    """
    from agent.singable import singable_length  # singable reads whole tunes; only this is needed

    tune = parse_tune(abc)
    if tune.meter.is_free:
        return Fraction(1, 16)
    return max(Fraction(1, 16), singable_length(tune.meter, 240.0 / tune_qpm(abc)))


# --------------------------------------------------------------------------------------------
# The search

# A rhythm: per note of the line as written, the lengths (in L: units) it is now sung as; an
# empty tuple for a note merged into the one before it.
_Rhythm = tuple[tuple[Fraction, ...], ...]


def _plain(value: Fraction) -> bool:
    """A length written without a tuplet: 1, 3 or 7 times a power of two... (dotted at most
    once): numerator 1 or 3."""
    return value > 0 and value.numerator in (1, 3) and (value.denominator & (value.denominator - 1)) == 0


def _splits_of(piece: Fraction, unit: Fraction, shortest: Fraction) -> list[tuple[Fraction, Fraction]]:
    """Ways to cut a note of ``piece`` units in two, as a songwriter would, none shorter than
    ``shortest`` (whole notes): in halves; a dotted note into its plain part and the dot, either
    way round; a long plain note also into a dotted note and a short one (no syncopation).

    >>> [tuple(map(str, c)) for c in _splits_of(Fraction(3), Fraction(1, 4), Fraction(1, 8))]
    [('2', '1'), ('1', '2')]
    >>> [tuple(map(str, c)) for c in _splits_of(Fraction(4), Fraction(1, 8), Fraction(1, 8))]
    [('2', '2'), ('3', '1')]
    >>> _splits_of(Fraction(1), Fraction(1, 8), Fraction(1, 8))  # an eighth cannot be cut
    []
    """
    if piece.numerator % 3 == 0:
        options = [(piece * 2 / 3, piece / 3), (piece / 3, piece * 2 / 3)]
    else:
        options = [(piece / 2, piece / 2), (piece * 3 / 4, piece / 4)]
    return [(a, b) for a, b in options
            if min(a, b) * unit >= shortest and _plain(a * unit) and _plain(b * unit)]


@dataclass(frozen=True)
class _Line:
    slots: tuple[NoteSlot, ...]
    heads: tuple[str | None, ...]  # the note's pitch text when it may change, else None
    lengths: tuple[Fraction, ...]  # in L: units
    mergeable: tuple[bool, ...]  # note i and i + 1 may merge
    unit: Fraction
    meter: Meter
    shortest: Fraction


def _line_of(abc: str, slots: Sequence[NoteSlot], shortest: Fraction) -> _Line:
    tune = parse_tune(abc)
    unit = tune.unit_length
    inline_meter = re.search(r"\[M:|^M:", tune.body, re.MULTILINE) is not None
    heads: list[str | None] = []
    lengths: list[Fraction] = []
    for slot in slots:
        match = NOTE_RE.fullmatch(slot.text)
        multiplier = length_multiplier(*match.group(4, 5, 6)) if match else Fraction(0)
        editable = (match is not None and not inline_meter and not slot.tied
                    and abc[slot.end:].lstrip(" \t")[:1] != "-"
                    and multiplier * unit == slot.duration)
        heads.append(slot.text[:match.end(3)] if editable else None)
        lengths.append(multiplier if editable else slot.duration / unit)
    mergeable = tuple(
        i + 1 < len(slots) and heads[i] is not None and heads[i + 1] is not None
        and heads[i] == heads[i + 1] and slots[i].bar == slots[i + 1].bar
        and not abc[slots[i].end:slots[i + 1].start].strip()
        and _plain((lengths[i] + lengths[i + 1]) * unit)
        for i in range(len(slots)))
    return _Line(tuple(slots), tuple(heads), tuple(lengths), mergeable, unit, tune.meter, shortest)


def _slots_of(line: _Line, rhythm: _Rhythm) -> list[Slot]:
    out: list[Slot] = []
    for slot, pieces in zip(line.slots, rhythm):
        onset = slot.onset
        for k, piece in enumerate(pieces):
            strength = (slot.strength if k == 0 and slot.strength is not None
                        else _strength_of(onset, line.meter))
            out.append(Slot(onset, piece * line.unit, slot.tied and k == 0, strength))
            onset += piece * line.unit
    return out


def _neighbours(line: _Line, rhythm: _Rhythm, merges: bool) -> list[tuple[_Rhythm, str]]:
    out: list[tuple[_Rhythm, str]] = []
    for i, pieces in enumerate(rhythm):
        if line.heads[i] is None or not pieces:
            continue
        for k, piece in enumerate(pieces):
            for a, b in _splits_of(piece, line.unit, line.shortest):
                new = pieces[:k] + (a, b) + pieces[k + 1:]
                out.append((rhythm[:i] + (new,) + rhythm[i + 1:], "split"))
        if (merges and line.mergeable[i] and len(pieces) == 1 and i + 1 < len(rhythm)
                and len(rhythm[i + 1]) == 1):
            joined = (pieces[0] + rhythm[i + 1][0],)
            out.append((rhythm[:i] + (joined, ()) + rhythm[i + 2:], "merge"))
    return out


def _changes_in(rhythm: _Rhythm) -> int:
    """Splits and merges in a rhythm: each merge empties a note, each split adds a piece."""
    return sum(len(p) - 1 if p else 1 for p in rhythm)


def _last_split(rhythm: _Rhythm) -> int:
    """1 when the line's last note is split or merged."""
    last = max((i for i, p in enumerate(rhythm) if p), default=0)
    return int(len(rhythm[last]) != 1 or last != len(rhythm) - 1)


def _notes(rhythm: _Rhythm, line: _Line) -> int:
    return sum(len(p) for i, p in enumerate(rhythm) if not (line.slots[i].tied and p))


def fit_rhythm(
    abc: str, slots: Sequence[NoteSlot], verses: Sequence[str | Sequence[Word]], *,
    qpm: float | None = None, shortest: Fraction | None = None,
    config: RhythmConfig = RhythmConfig(),
) -> RhythmFit:
    """Set each verse's words on the notes ``slots`` (a line or phrase of
    :func:`agent.lyric_fit.note_slots`), changing the rhythm there (splits, merges of repeated
    notes) where that puts more stresses on strong beats or is needed to fit the syllables.

    ``qpm`` is the tempo (default: the tune's), ``shortest`` the shortest note a split may make
    in whole notes (default :func:`singable_split`). Returns the new tune, the placements and
    what changed; the tune is unchanged when no change helps.

    >>> tune = "X:1\\nM:4/4\\nL:1/4\\nQ:1/4=90\\nK:C\\nc2 B A|G4|]\\n"
    >>> slots = note_slots(tune)[0].slots
    >>> fit_rhythm(tune, slots, ["I wander home"]).changes  # already sings: left as written
    ()
    >>> fit = fit_rhythm(tune, slots, ["away we go"])  # as written "a-" would be on the downbeat
    >>> fit.fits[0].text, fit.details, fit.abc.splitlines()[-1]
    ('* a-way we go', ('bar 1: c2 -> cc',), 'cc B A|G4|]')
    >>> fit.summary()
    "I split one note so 'away' lands with its stress on the beat (bar 1)."
    >>> fit_rhythm(tune, slots, [""]).reason
    'no words to set'
    """
    words = [split_text(v) if isinstance(v, str) else list(v) for v in verses]
    if not words or not any(words):
        return RhythmFit(abc, tuple(slots), reason="no words to set")
    qpm = tune_qpm(abc) if qpm is None else qpm
    shortest = singable_split(abc) if shortest is None else shortest
    line = _line_of(abc, slots, shortest)
    meter = meter_text(line.meter) if not line.meter.is_free else "4/4"
    syllables = max(sum(w.count for w in ws) for ws in words)

    def place(rhythm: _Rhythm) -> tuple[Placement, ...]:
        laid = _slots_of(line, rhythm)
        return tuple(place_syllables(ws, laid, meter, qpm=qpm, config=config.place)
                     for ws in words)

    def key(rhythm: _Rhythm, fits: tuple[Placement, ...]) -> tuple:
        if not all(f.ok for f in fits):
            # not enough notes yet: more notes first, then the longest notes split
            return (0, _notes(rhythm, line), 0, 0, 0, -_last_split(rhythm), 0,
                    min(min(p) for p in rhythm if p), 0.0, 0)
        # then stressed one-syllable words not below an unstressed neighbour ("hills" not
        # on a weaker beat than "and"), the line's last note kept whole (the phrase comes to rest there), plain rhythms
        # (notes split in equal halves), long notes split rather than short ones, the
        # placement's cost, and later notes split (the line's opening kept as written)
        uneven = sum(1 for p in rhythm if len(set(p)) > 1)
        later = sum(i for i, p in enumerate(rhythm) if len(p) != 1)
        shortest_piece = min((min(p) for p in rhythm if len(p) > 1), default=Fraction(0))
        laid = _slots_of(line, rhythm)
        against = sum(_monosyllables_against(ws, f, laid) for ws, f in zip(words, fits))
        return (1, sum(f.words_right for f in fits), -sum(f.short_syllables for f in fits),
                -_changes_in(rhythm), -against, -_last_split(rhythm), -uneven, shortest_piece,
                round(-sum(f.cost for f in fits), 6), later)

    start: _Rhythm = tuple((length,) for length in line.lengths)
    start_fits = place(start)
    best = (key(start, start_fits), start, start_fits)
    needed = max(0, syllables - _notes(start, line))
    if needed:
        room = _room(line, start)
        if room < needed:
            return RhythmFit(abc, tuple(slots), reason=(
                f"{syllables} syllables for {_notes(start, line)} notes, and only {room} more "
                "notes can be made by splitting"))
    frontier = [start]
    seen = {start}
    baseline = best  # the best rhythm with only the changes the words need to fit
    for step in range(needed + config.max_changes):
        if step == needed:
            baseline = best
        if best[0][0] == 1 and all(f.words_right == f.words_checked for f in best[2]):
            break
        scored = []
        for rhythm in frontier:
            for new, kind in _neighbours(line, rhythm, config.merge):
                if new in seen:
                    continue
                seen.add(new)
                fits = place(new)
                scored.append((key(new, fits), new, fits))
        if not scored:
            break
        scored.sort(key=lambda item: item[0], reverse=True)
        if scored[0][0] > best[0]:
            best = scored[0]
        # a step that improves nothing is still taken from the best few: a merge and a split
        # together can move a syllable where neither alone does
        frontier = [item[1] for item in scored[:config.beam]]
    _, rhythm, fits = best
    if not all(f.ok for f in fits):
        bad = next(f for f in fits if not f.ok)
        return RhythmFit(abc, tuple(slots), fits=fits, reason=bad.reason)
    if rhythm == start:
        return RhythmFit(abc, tuple(slots), fits=fits)
    new_abc, changes = _rewrite(abc, line, rhythm)
    new_slots = _new_slots(new_abc, line, len(_slots_of(line, rhythm)))
    if needed and baseline[0][0] != 1:
        baseline = best
    fixed = _fixed_words(words, baseline[2], _slots_of(line, baseline[1]), fits,
                         _slots_of(line, rhythm))
    return RhythmFit(new_abc, new_slots, fits, changes,
                     needed=needed, fixed=fixed)


def _room(line: _Line, rhythm: _Rhythm) -> int:
    """How many more notes splitting could make on the line, at most."""
    total = 0
    for i, pieces in enumerate(rhythm):
        if line.heads[i] is None:
            continue
        for piece in pieces:
            total += max(0, int(piece * line.unit / line.shortest) - 1)
    return total


def _fixed_words(words: Sequence[Sequence[Word]], before: Sequence[Placement],
                 old_slots: Sequence[Slot], after: Sequence[Placement],
                 new_slots: Sequence[Slot]) -> tuple[str, ...]:
    """Words stressed right after the change that were not before (none when the words could
    not be set before: the change was needed to fit them)."""
    if not all(p.ok for p in before):
        return ()
    out: list[str] = []
    for ws, old, new in zip(words, before, after):
        for index in sorted(_right_words(ws, new, new_slots) - _right_words(ws, old, old_slots)):
            out.append(ws[index].text.strip(".,;:!?\"'()").lower())
    return tuple(out)


def _monosyllables_against(words: Sequence[Word], placement: Placement,
                           slots: Sequence[Slot]) -> int:
    """Stressed one-syllable words ("hills", "far") that start on a weaker beat than an
    unstressed syllable next to them ("and", "-ver"): the prosody measure checks only longer
    words, but a singer hears these too."""
    if not placement.ok:
        return 0
    stressed = [flag for word in words for flag in word.sung_stress]
    single = [word.count == 1 for word in words for _ in range(word.count)]
    strengths = [slots[i].strength or 0.0 for i in placement.starts]
    count = 0
    for k, (flag, alone) in enumerate(zip(stressed, single)):
        if not (flag and alone):
            continue
        neighbours = [j for j in (k - 1, k + 1) if 0 <= j < len(stressed) and not stressed[j]]
        count += any(strengths[j] > strengths[k] + 1e-9 for j in neighbours)
    return count


def _right_words(words: Sequence[Word], placement: Placement, slots: Sequence[Slot]) -> set[int]:
    """Indices of the polysyllabic words a placement sets with the stress on their strongest
    beat."""
    right: set[int] = set()
    k = 0
    strengths = [slots[i].strength or 0.0 for i in placement.starts]
    for index, word in enumerate(words):
        if word.count > 1 and 1 in word.stresses:
            own = strengths[k:k + word.count]
            primary = list(word.stresses).index(1)
            if all(own[primary] >= s - 1e-9 for s in own):
                right.add(index)
        k += word.count
    return right


def _rewrite(abc: str, line: _Line, rhythm: _Rhythm) -> tuple[str, tuple[Change, ...]]:
    """The tune with the line's notes rewritten (from the end, so offsets stay valid)."""
    changes: list[Change] = []
    i = len(rhythm) - 1
    while i >= 0:
        pieces = rhythm[i]
        slot = line.slots[i]
        if i + 1 < len(rhythm) and not rhythm[i + 1]:
            after = line.heads[i] + length_text(pieces[0])
            nxt = line.slots[i + 1]
            changes.append(Change("merge", slot.bar, abc[slot.start:nxt.end], after))
            abc = abc[:slot.start] + after + abc[nxt.end:]
        elif pieces and pieces != (line.lengths[i],):
            after = "".join(line.heads[i] + length_text(p) for p in pieces)
            changes.append(Change("split", slot.bar, slot.text, after))
            abc = abc[:slot.start] + after + abc[slot.end:]
        i -= 1
    return abc, tuple(changes[::-1])


def _new_slots(abc: str, line: _Line, count: int) -> tuple[NoteSlot, ...]:
    """The line's notes in the rewritten tune: ``count`` notes from where the line began."""
    first = line.slots[0].start
    every = [s for music in note_slots(abc) for s in music.slots]
    begin = next(i for i, s in enumerate(every) if s.start == first)
    return tuple(every[begin:begin + count])


# --------------------------------------------------------------------------------------------
# Several music lines at once (the user's words on a whole tune)


@dataclass(frozen=True)
class Retimed:
    """The rhythm changes made under the user's words on a whole tune.

    ``abc`` is the tune after them; ``details`` each change in ABC ("bar 3: B2 -> BB");
    ``sentence`` says in words what changed and why (empty when nothing changed, or only to
    fit more syllables than notes: ``for_stress`` is then False); ``problems`` the music lines
    whose words cannot be fitted.
    """

    abc: str
    details: tuple[str, ...] = ()
    sentence: str = ""
    for_stress: bool = False
    problems: tuple[str, ...] = ()


def retime_lines(abc: str, lines: Sequence[LineSlots], words: dict[int, list[Sequence[Word]]],
                 *, shortest: Fraction | None = None, config: RhythmConfig = RhythmConfig()
                 ) -> Retimed:
    """:func:`fit_rhythm` on each music line that takes words (``words``: music line index ->
    the words of each verse set under it), from the last line up so offsets stay valid.

    >>> tune = "X:1\\nM:4/4\\nL:1/4\\nQ:1/4=90\\nK:C\\nc2 B A|G4|\\nE2 F G|c4|]\\n"
    >>> done = retime_lines(tune, note_slots(tune), {0: [split_text("away we go")],
    ...                                              1: [split_text("remember me")]})
    >>> done.abc.splitlines()[-2:], done.details
    (['cc B A|G4|', 'EE F G|c4|]'], ('bar 1: c2 -> cc', 'bar 3: E2 -> EE'))
    >>> done.sentence
    "I split two notes so 'away' and 'remember' land with their stress on the beat (bars 1 and 3)."
    >>> many = split_text("one two three four five six seven eight")
    >>> retime_lines(tune, note_slots(tune), {0: [many]}, shortest=Fraction(1, 4)).problems
    ('music line 1: 9 syllables for 4 notes, and only 4 note(s) could be split',)
    """
    shortest = singable_split(abc) if shortest is None else shortest
    qpm = tune_qpm(abc)
    fits: list[RhythmFit] = []
    problems: list[str] = []
    new_abc = abc
    for index in sorted(words, reverse=True):
        line = lines[index]
        fit = fit_rhythm(new_abc, line.slots, words[index], qpm=qpm, shortest=shortest,
                         config=config)
        if not fit.ok:
            needed = max(sum(w.count for w in ws) for ws in words[index])
            shape = _line_of(new_abc, line.slots, shortest)
            room = _room(shape, tuple((length,) for length in shape.lengths))
            problems.append(f"music line {index + 1}: {needed} syllables for {line.notes} notes, "
                            f"and only {room} note(s) could be split")
            continue
        new_abc = fit.abc
        fits.insert(0, fit)
    if problems:
        return Retimed(abc, problems=tuple(problems[::-1]))
    changes = tuple(c for f in fits for c in f.changes)
    fixed = tuple(w for f in fits for w in f.fixed)
    combined = RhythmFit(new_abc, changes=changes, needed=sum(f.needed for f in fits),
                         fixed=fixed)
    return Retimed(new_abc, combined.details, combined.summary() if fixed else "",
                   bool(fixed))
