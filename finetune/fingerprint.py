"""Melody fingerprints that ignore transposition: for finding the same tune in two books, and
for telling whether a generated tune copies one it was trained on.

A melody is reduced to its notes as (MIDI pitch, length in quarter notes), chord symbols and grace
notes left out, tied notes joined, chords read by their top note. Two fingerprints come from it:

- :func:`melody_fingerprint`: the intervals and lengths of the first notes, hashed. Two versions
  of a tune in different keys (or from two collections) get the same one.
- :func:`bar_fingerprints`: one hash per bar, of its notes' pitches relative to the bar's first
  note and their lengths (rests included). Bars a generated tune shares with a known one are its
  copied bars, whatever the key.

>>> a = "X:1\\nM:4/4\\nL:1/8\\nK:D\\nDFAd fdAF|GBdg fdAF|\\n"
>>> b = "X:1\\nM:4/4\\nL:1/8\\nK:G\\nGBdg bgdB|cegc' bgdB|\\n"
>>> melody_fingerprint(melody_notes(parse_abc(a))) == melody_fingerprint(melody_notes(parse_abc(b)))
True
>>> bar_fingerprints(a) == bar_fingerprints(b)
True
>>> shared_bar_fraction(bar_fingerprints(a), bar_fingerprints(b))
1.0
>>> melody_fingerprint([])
Traceback (most recent call last):
...
ValueError: a melody fingerprint needs at least 2 notes
"""
from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any, Iterable, Sequence

Note = tuple[int, Fraction]  # MIDI pitch, quarter-note length

FINGERPRINT_NOTES = 20  # the first notes of a tune that identify it
MIN_BAR_NOTES = 3  # shorter bars ("A4 A4") are too common to count as copies


def parse_abc(abc: str) -> Any:
    """A music21 score of one ABC tune, read by the app's reader (ABC 2.1 rules)."""
    from agent.abc_reader import read_tune

    return read_tune(abc).score


def _top_pitch(element: Any) -> int:
    return max(p.midi for p in element.pitches)


def _events(stream: Any) -> list[tuple[int | None, Fraction, bool]]:
    """(pitch or None for a rest, length, tied-to-next) for the notes and rests of ``stream``."""
    from music21 import harmony

    events = []
    for element in stream.recurse().notesAndRests:
        if isinstance(element, harmony.ChordSymbol) or element.duration.isGrace:
            continue
        length = Fraction(element.quarterLength).limit_denominator(96)
        if element.isRest:
            events.append((None, length, False))
            continue
        tied = element.tie is not None and element.tie.type in ("start", "continue")
        events.append((_top_pitch(element), length, tied))
    return events


def melody_notes(score: Any) -> list[Note]:
    """The sounding notes of the top voice, ties joined (rests left out)."""
    parts = list(getattr(score, "parts", [])) or [score]
    notes: list[Note] = []
    tie_open = False
    for pitch, length, tied in _events(parts[0]):
        if pitch is None:
            tie_open = False
            continue
        if tie_open and notes and notes[-1][0] == pitch:
            notes[-1] = (pitch, notes[-1][1] + length)
        else:
            notes.append((pitch, length))
        tie_open = tied
    return notes


def _digest(items: Iterable[Any]) -> str:
    return hashlib.sha1(repr(tuple(items)).encode()).hexdigest()[:16]


def melody_fingerprint(notes: Sequence[Note], count: int = FINGERPRINT_NOTES) -> str:
    """Hash of the intervals and lengths of the first ``count`` notes; the same in any key."""
    if len(notes) < 2:
        raise ValueError("a melody fingerprint needs at least 2 notes")
    head = notes[:count]
    return _digest((b[0] - a[0], a[1]) for a, b in zip(head, head[1:]))


def score_bar_fingerprints(score: Any) -> list[str]:
    """One hash per bar of ``score``'s top part (see :func:`bar_fingerprints`)."""
    parts = list(getattr(score, "parts", [])) or [score]
    prints = []
    for measure in parts[0].getElementsByClass("Measure"):
        events = [(p, length) for p, length, _ in _events(measure)]
        pitches = [p for p, _ in events if p is not None]
        if len(pitches) < MIN_BAR_NOTES:
            continue
        first = pitches[0]
        prints.append(_digest((None if p is None else p - first, length) for p, length in events))
    return prints


def bar_fingerprints(abc: str) -> list[str]:
    """Transposition-invariant hashes of the bars of an ABC tune, in order.

    Bars with fewer than three notes are left out: they say too little to mark a copy.
    """
    return score_bar_fingerprints(parse_abc(abc))


def shared_bar_fraction(candidate: Sequence[str], known: Iterable[str]) -> float:
    """The fraction of ``candidate``'s distinct bars that also occur in ``known`` (0 when empty)."""
    mine = set(candidate)
    if not mine:
        return 0.0
    return len(mine & set(known)) / len(mine)
