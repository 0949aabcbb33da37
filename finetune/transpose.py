"""Transposing a tune's ABC text into another key, spelled as a musician would write it.

Only the note names and the ``K:`` field change; every other character (bar lines, lengths,
decorations, line breaks) stays as it was. Pitches come from the app's tokenizer
(:mod:`agent.abc_text`, which applies the key signature and ABC 2.1's carrying accidentals), each
is moved by one music21 interval (so spelling follows the new key), and accidentals are written
only where the new key signature and the accidentals already in the bar do not give the pitch.
music21 can transpose a score, but turning it back into text would lose the tune's own layout;
no library rewrites ABC text in place, hence this module.

Chord symbols (``"Am"``, ``"D7/F#"``) move with the notes: their root and bass are moved by the
same interval; any other quoted text ("Fine") is left alone.

Why not :func:`agent.edits.transpose` (the chat's transposer): the two promise different text.
The chat edit keeps every accidental the person wrote (courtesy ones too), keeps the ``K:``
value's own words ("E Minor") and moves chord symbols; the training copies are written with
only the accidentals the new key needs and the builder's ``K:`` form, so that every copy of a
tune reads alike. On the tunes of tests/data/abc moved to F, Bb, E and C#, 8 of 32 copies
differ between the two beyond chord symbols. Note names, modes and pitch classes come from
:mod:`agent.notation`, as in the chat's transposer.

>>> tune = "X:1\\nT:t\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:D\\nDF^GA|d2=c2|]\\n"
>>> print(transpose_abc(tune, "Eb", "major"), end="")
X:1
T:t
M:2/4
L:1/8
Q:1/4=100
K:Eb
EG=AB|e2_d2|]
>>> print(transpose_abc(tune, "A", "major").splitlines()[-1])
A,C^DE|A2=G2|]
>>> print(transpose_abc('X:1\\nK:G\\n"G"G2 "D7/F#"F2|"Em"E4|]\\n', "A", "major").splitlines()[-1])
"A"A2 "E7/G#"G2|"F#m"F4|]
>>> TONIC_SPELLING["minor"][1], TONIC_SPELLING["major"][6]
('C#', 'F#')
>>> transpose_abc("X:1\\nK:D\\nD[K:G]G|\\n", "E", "major")
Traceback (most recent call last):
...
ValueError: tunes that change key cannot be transposed here
"""
from __future__ import annotations

import re

from agent.abc_text import Kind, parse_key, parse_tune, tokenize_body
from agent.notation import ACCIDENTAL_TEXT, MODE_SUFFIX, NOTE_HEAD_RE, tonic_pitch_class

# The tonic name to use for each pitch class (C=0) and mode: the spelling with the fewer
# sharps or flats in its signature (no seven-sharp keys).
TONIC_SPELLING = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
    "dorian": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
    "mixolydian": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "lydian": ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"),
    "phrygian": ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"),
}


def semitone_shift(old_tonic: str, new_tonic: str) -> int:
    """The smallest move from one tonic to another, in semitones (-6 to 5; a tritone goes down).

    >>> semitone_shift("E", "C"), semitone_shift("A", "D"), semitone_shift("C", "F#")
    (-4, 5, -6)
    """
    shift = (tonic_pitch_class(new_tonic) - tonic_pitch_class(old_tonic)) % 12
    return shift if shift <= 5 else shift - 12


def _abc_head(step: str, octave: int, alter: int | None) -> str:
    """ABC for a note (letter, octave 4 = middle C's), with this accidental written (None: none)."""
    letter = step if octave <= 4 else step.lower()
    marks = "," * (4 - octave) if octave < 4 else "'" * (octave - 5) if octave > 5 else ""
    return ("" if alter is None else ACCIDENTAL_TEXT[alter]) + letter + marks


_CHORD_NAME = re.compile(r"(?<![A-Za-z])([A-G])([#b]?)")


def _moved_chord_symbol(text: str, move) -> str:
    """A quoted chord symbol with its root and bass moved by the music21 interval ``move``;
    a name that would need a double sharp or flat is respelled by its simpler enharmonic."""
    from music21 import pitch

    def moved(match: re.Match[str]) -> str:
        new = pitch.Pitch(match.group(1) + match.group(2).replace("b", "-")).transpose(move)
        if abs(new.alter) > 1:
            new = new.getEnharmonic()
        return new.name.replace("-", "b")

    return _CHORD_NAME.sub(moved, text)


def transpose_abc(abc: str, tonic: str, mode: str) -> str:
    """``abc`` moved to the key of ``tonic`` (same mode), by the interval between the tonics
    that moves the melody least (a tritone goes down)."""
    from music21 import interval, pitch

    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    if any(t.kind in (Kind.INLINE_FIELD, Kind.FIELD) and t.text.lstrip("[")[:2] == "K:" for t in tokens):
        raise ValueError("tunes that change key cannot be transposed here")
    old_tonic = tune.key.tonic
    if old_tonic is None:
        raise ValueError("the tune has no tonic")
    start = pitch.Pitch(old_tonic.replace("b", "-") + "4")
    target = start.midi + semitone_shift(old_tonic, tonic)
    end = next(p for p in (pitch.Pitch(tonic.replace("b", "-") + str(o)) for o in (3, 4, 5))
               if p.midi == target)
    move = interval.Interval(noteStart=start, noteEnd=end)
    new_key = parse_key(tonic + MODE_SUFFIX[mode])
    signature = dict(zip("CDEFGAB", new_key.alterations))
    pieces = []
    cursor = 0
    state = dict(signature)
    for token in tokens:
        if token.kind is Kind.BAR:
            state = dict(signature)
            continue
        if token.kind is Kind.CHORD_SYMBOL:
            pieces.append(tune.body[cursor:token.start] + _moved_chord_symbol(token.text, move))
            cursor = token.end
            continue
        if token.kind not in (Kind.NOTE, Kind.CHORD, Kind.GRACE) or not token.names:
            continue
        names = iter(token.names)
        rewritten = []
        position = 0
        for match in NOTE_HEAD_RE.finditer(token.text):
            name = next(names, None)
            if name is None:
                break
            new = pitch.Pitch(name).transpose(move)
            alter = int(new.alter)
            if alter not in ACCIDENTAL_TEXT:
                raise ValueError(f"{new.nameWithOctave} needs a triple accidental")
            written = None if state[new.step] == alter else alter
            state[new.step] = alter
            rewritten.append(token.text[position:match.start()] + _abc_head(new.step, new.octave, written))
            position = match.end()
        rewritten.append(token.text[position:])
        pieces.append(tune.body[cursor:token.start] + "".join(rewritten))
        cursor = token.end
    pieces.append(tune.body[cursor:])
    header = abc[:tune.body_offset]
    header = re.sub(r"(?m)^K:.*$", "K:" + tonic + MODE_SUFFIX[mode], header, count=1)
    return header + "".join(pieces)
