"""Edit examples built from real tunes: the target is always the real tune, and the tune the
request starts from is derived from it by a documented degradation.

======================  =================================================  =======================
kind                    the starting tune (what the degradation does)      instruction
======================  =================================================  =======================
``add_part``            the first part only (the real second part cut off)  "Write a B part ..."
``end_on_tonic``        the final note moved a step off the tonic           "Make it end on the tonic"
``vary_bar``            one bar flattened: each beat becomes its first      "Vary bar N"
                        note held for the whole beat
``livelier_half``       every flattenable bar of the second half flattened  "Make the second half
                                                                            livelier"
======================  =================================================  =======================

Only bars made of plain notes and rests (no tuplets, broken rhythm, chords, ties, grace notes)
are flattened, so every starting tune still has full bars. Bars are numbered as the app numbers
them (:class:`agent.abc_text.Bar`: a pickup is bar 1). The answer's prefill is the target up to
the first bar that changes, so training takes loss only on the part that is new.

>>> tune = "X:1\\nT:t\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:D\\nDFAF|GBdB|AFDF|E2D2|]\\n"
>>> flatten_bar_text(tune, 2)
'X:1\\nT:t\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:D\\nDFAF|G2 d2|AFDF|E2D2|]\\n'
>>> edit_prefill(flatten_bar_text(tune, 2), tune)
'X:1\\nT:t\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:D\\nDFAF|'
>>> flatten_bar_text(tune, 9)
Traceback (most recent call last):
...
ValueError: the tune has no bar 9
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction

from agent.abc_text import Bar, Kind, parse_tune, split_bars, tokenize_body
from agent.notation import NOTE_HEAD, NOTE_HEAD_RE, length_text, tonic_pitch_class
from finetune.phrasing import edit_instruction, key_phrase

EDIT_KINDS = ("add_part", "end_on_tonic", "vary_bar", "livelier_half")
_PLAIN_KINDS = {Kind.NOTE, Kind.REST, Kind.SPACE, Kind.DECORATION}
_NOTE_TEXT = re.compile(rf"(?P<head>{NOTE_HEAD}|[zx])(?P<length>\d*/*\d*)")
_DIATONIC = "CDEFGAB"


@dataclass(frozen=True)
class EditPair:
    """One edit example: the starting tune, the instruction, the target and its prefill."""

    kind: str
    source: str
    instruction: str
    target: str
    prefill: str
    facts: dict


def flattened(bar: Bar, beat: Fraction, unit: Fraction) -> str | None:
    """The bar with each beat reduced to its first note (or rest) held for the beat, or None
    when the bar is not plain, not full, or would not change."""
    if not bar.is_full or any(t.kind not in _PLAIN_KINDS for t in bar.tokens):
        return None
    timed = [t for t in bar.tokens if t.is_timed]
    pieces = []
    position = Fraction(0)
    for token in timed:
        if position % beat == 0:
            match = _NOTE_TEXT.fullmatch(token.text)
            if match is None:
                return None
            pieces.append((match.group("head"), position))
        position += token.duration
    if len(pieces) == len(timed) or position != bar.expected:
        return None
    out = []
    for index, (head, start) in enumerate(pieces):
        end = pieces[index + 1][1] if index + 1 < len(pieces) else position
        out.append(head + length_text((end - start) / unit))
    return " ".join(out)


def flatten_bar_text(abc: str, number: int) -> str:
    """``abc`` with bar ``number`` flattened (see :func:`flattened`); ValueError when it cannot be."""
    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    if not 1 <= number <= len(bars):
        raise ValueError(f"the tune has no bar {number}")
    bar = bars[number - 1]
    new = flattened(bar, tune.meter.beat_length, tune.unit_length)
    if new is None:
        raise ValueError(f"bar {number} cannot be flattened")
    start = tune.body_offset
    return abc[:start + bar.start] + new + abc[start + bar.end:]


def _flatten_many(abc: str, numbers: list[int]) -> tuple[str, list[int]]:
    """Flatten each bar it can among ``numbers``; returns the text and the bars changed."""
    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    changed = []
    text = abc
    for number in sorted(numbers, reverse=True):  # from the end, so offsets stay valid
        bar = bars[number - 1]
        new = flattened(bar, tune.meter.beat_length, tune.unit_length)
        if new is not None:
            start = tune.body_offset
            text = text[:start + bar.start] + new + text[start + bar.end:]
            changed.append(number)
    return text, sorted(changed)


def edit_prefill(source: str, target: str) -> str:
    """The target up to the first bar that differs from the source, ending on a bar line (or
    a line break) that both share."""
    limit = 0
    while limit < min(len(source), len(target)) and source[limit] == target[limit]:
        limit += 1
    for position in range(limit, 0, -1):  # back to just after a whole bar line or line break
        following = target[position:position + 1]
        if target[position - 1] in "|\n" and following not in (":", "|", "]") and not following.isdigit():
            return target[:position]
    return ""


def _step(note_head: str, steps: int) -> str:
    """A note name moved by diatonic ``steps``, its accidental dropped (the key decides)."""
    _, letter, marks = NOTE_HEAD_RE.fullmatch(note_head).groups()
    octave = (1 if letter.islower() else 0) + marks.count("'") - marks.count(",")
    index = _DIATONIC.index(letter.upper()) + 7 * octave + steps
    octave, position = divmod(index, 7)
    name = _DIATONIC[position]
    if octave >= 1:
        return name.lower() + "'" * (octave - 1)
    return name + "," * (-octave)


def add_part_pair(abc: str, rng: random.Random) -> EditPair | None:
    """First part -> first two parts, when the tune has a second part of at least 4 bars."""
    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    ends = [i for i, bar in enumerate(bars)  # part ends, a first ending's repeat excluded
            if bar.ends_part
            and (i + 1 == len(bars) or bars[i + 1].ending is None)]
    if len(ends) < 2 or ends[0] < 3 or ends[1] - ends[0] < 4:
        return None
    first_end = bars[ends[0]].bar_line.end
    second_end = bars[ends[1]].bar_line.end
    body = tune.body
    head = abc[:tune.body_offset]
    source = head + body[:first_end].rstrip() + "\n"
    target = head + body[:second_end].rstrip() + "\n"
    prefill = target[:len(source)] if target.startswith(source) else edit_prefill(source, target)
    instruction = edit_instruction("add_part", rng)
    return EditPair("add_part", source, instruction, target, prefill, {"bars_added": ends[1] - ends[0]})


def end_on_tonic_pair(abc: str, tonic: str, mode: str, rng: random.Random) -> EditPair | None:
    """The real ending on the tonic <- the same tune whose final note is a step away."""
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    notes = [t for t in tokens if t.kind is Kind.NOTE]
    if not notes or tune.key.tonic is None:
        return None
    last = notes[-1]
    if last.pitches[0] % 12 != tonic_pitch_class(tonic):
        return None
    match = _NOTE_TEXT.fullmatch(last.text)
    if match is None:
        return None
    new_head = _step(match.group("head"), rng.choice((1, -1)))
    start = tune.body_offset + last.start
    source = abc[:start] + new_head + match.group("length") + abc[tune.body_offset + last.end:]
    instruction = edit_instruction("end_on_tonic", rng, tonic=key_phrase(tonic, "major"))
    return EditPair("end_on_tonic", source, instruction, abc, edit_prefill(source, abc),
                    {"tonic": tonic, "mode": mode})


def vary_bar_pair(abc: str, rng: random.Random) -> EditPair | None:
    """A real bar <- that bar flattened; the instruction names the bar."""
    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    candidates = [b.number for b in bars[:-1]
                  if flattened(b, tune.meter.beat_length, tune.unit_length) is not None]
    if not candidates:
        return None
    number = rng.choice(candidates)
    source = flatten_bar_text(abc, number)
    instruction = edit_instruction("vary_bar", rng, bar=number)
    return EditPair("vary_bar", source, instruction, abc, edit_prefill(source, abc), {"bar": number})


def livelier_half_pair(abc: str, rng: random.Random) -> EditPair | None:
    """The real second half <- its flattenable bars flattened (at least three of them)."""
    tune = parse_tune(abc)
    bars = split_bars(tokenize_body(tune.body, tune), tune)
    half = len(bars) // 2
    source, changed = _flatten_many(abc, [b.number for b in bars[half:-1]])
    if len(changed) < 3:
        return None
    instruction = edit_instruction("livelier_half", rng)
    return EditPair("livelier_half", source, instruction, abc, edit_prefill(source, abc),
                    {"bars": changed})


def make_edit(kind: str, abc: str, attributes: dict, rng: random.Random) -> EditPair | None:
    """An edit pair of ``kind`` from the tune ``abc``, or None when the tune does not allow it."""
    if kind == "add_part":
        return add_part_pair(abc, rng)
    if kind == "end_on_tonic":
        return end_on_tonic_pair(abc, attributes["tonic"], attributes["mode"], rng)
    if kind == "vary_bar":
        return vary_bar_pair(abc, rng)
    if kind == "livelier_half":
        return livelier_half_pair(abc, rng)
    raise ValueError(f"unknown edit kind: {kind!r}")
