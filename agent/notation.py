"""The facts of ABC notation that every other module shares, each written once.

This module holds what a note looks like in text, how a length is written and read, the modes
and their key signatures, pitch classes of tonic names, and the ``%%MIDI`` directives a tune
carries. It knows nothing of tunes as a whole: :mod:`agent.abc_text` tokenizes tunes with these
rules (and owns bars, parts and the bar count); editors, the composer, the lyric fitter and the
training-data builders import from here instead of keeping their own copies.

The rules follow ABC 2.1 (https://abcnotation.com/wiki/abc:standard:v2.1):

* A note is an optional accidental (``^^ ^ __ _ =``), a letter (``C`` is middle C, ``c`` the
  octave above) and octave marks (``'`` up, ``,`` down), section 4.1-4.2.
* A length is a multiplier of ``L:`` after the note: ``2``, ``/`` (half), ``3/2``, ``/4``,
  section 4.3. ``//`` (a quarter) is legal ABC but the composer's grammar does not accept it,
  so :func:`length_text` writes ``/4``: one form that ABC 2.1, music21 and the grammar read.
* A key is a tonic and a mode; the mode shifts the major key's signature (section 3.1.14,
  where only the first three letters of a mode name count).
* ``%%MIDI name args`` lines are abc2midi's instructions (program, gchord, chordprog,
  bassprog, chordvol, bassvol, ...); ABC 2.1 section 11 lets any ``%%`` directive stand in a
  header or body.

>>> NOTE_HEAD_RE.fullmatch("^f'").groups()
('^', 'f', "'")
>>> length_text(Fraction(1, 4)), length_multiplier("", "//", "")
('/4', Fraction(1, 4))
>>> tonic_pitch_class("Bb"), MODE_SUFFIX["dorian"]
(10, 'dor')
"""
from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from agent.errors import AbcError

__all__ = [
    "NOTE_HEAD", "NOTE_HEAD_RE", "NOTE_RE", "TONIC_RE", "KEY_ACCIDENTAL_RE", "LETTERS",
    "LETTER_SEMITONES", "ACCIDENTAL_STEPS", "ACCIDENTAL_TEXT", "MODES", "MODE_SHARPS",
    "MODE_PREFIX", "MODE_SUFFIX", "MODE_STEPS", "MODE_ALIASES", "MODE_START", "MINOR_THIRD_MODES",
    "canonical_mode",
    "mode_name", "tonic_pitch_class", "length_multiplier", "length_text", "midi_directives",
    "midi_program_number",
]

# --------------------------------------------------------------------------------------------
# Notes

#: Semitones above C of each natural note letter.
LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
#: Order of letters in a key-signature tuple.
LETTERS = "CDEFGAB"
#: Semitones each written accidental adds.
ACCIDENTAL_STEPS = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}
#: The written accidental for each alteration.
ACCIDENTAL_TEXT = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}

#: A written note without its length: (accidental, letter, octave marks).
NOTE_HEAD = r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)"
NOTE_HEAD_RE = re.compile(NOTE_HEAD)
#: A written length: (digits, slashes, divisor), all possibly empty.
LENGTH = r"(\d*)(/*)(\d*)"
#: A note with its length: (accidental, letter, marks, digits, slashes, divisor).
NOTE_RE = re.compile(NOTE_HEAD + LENGTH)
#: The tonic word of a ``K:`` value: (letter, ``#``/``b``, whatever is glued to it).
TONIC_RE = re.compile(r"([A-Ga-g])([#b]?)(.*)")
#: An accidental listed after a ``K:`` tonic (``K:D ^c``): (accidental, letter).
KEY_ACCIDENTAL_RE = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")

# --------------------------------------------------------------------------------------------
# Modes

MODES = ("major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "locrian")
#: Sharps a mode adds to the major key of the same tonic.
MODE_SHARPS = {"major": 0, "minor": -3, "dorian": -2, "phrygian": -4, "lydian": 1,
               "mixolydian": -1, "locrian": -5}
#: The three-letter prefixes ABC 2.1 reads as mode names (and ``m`` for minor).
MODE_PREFIX = {"maj": "major", "ion": "major", "min": "minor", "aeo": "minor", "m": "minor",
               "dor": "dorian", "phr": "phrygian", "lyd": "lydian", "mix": "mixolydian",
               "loc": "locrian"}
#: What follows the tonic in a ``K:`` value for each mode name, spoken aliases included.
MODE_SUFFIX = {"major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "dor",
               "phrygian": "phr", "lydian": "lyd", "mixolydian": "mix", "locrian": "loc"}
#: Semitones above the tonic of each scale degree (1..7) in each mode.
MODE_STEPS = {
    "major": (0, 2, 4, 5, 7, 9, 11), "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10), "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10), "minor": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}
#: The modes (aliases included) whose third is minor: they sound dark or sad, as a minor key does.
MINOR_THIRD_MODES = frozenset({"minor", "aeolian", "dorian", "phrygian", "locrian"})
#: Spoken mode names that are the same scale as one of :data:`MODES`.
MODE_ALIASES = {"ionian": "major", "aeolian": "minor"}
#: The degree of the major scale each mode starts on (0 = the major key's own tonic).
MODE_START = {"major": 0, "dorian": 1, "phrygian": 2, "lydian": 3, "mixolydian": 4,
              "minor": 5, "locrian": 6}


def canonical_mode(mode: str | None) -> str:
    """The mode name of :data:`MODES` for a mode name or alias (None is major).

    >>> canonical_mode("Aeolian"), canonical_mode(None), canonical_mode("dorian")
    ('minor', 'major', 'dorian')
    """
    mode = (mode or "major").lower()
    return MODE_ALIASES.get(mode, mode)


def mode_name(word: str) -> str | None:
    """The mode a ``K:`` mode word names (its first three letters count), or None.

    >>> mode_name("Dorian"), mode_name("m"), mode_name("mixo"), mode_name("xy")
    ('dorian', 'minor', 'mixolydian', None)
    """
    word = word.lower()
    if word == "m":
        return "minor"
    return MODE_PREFIX.get(word[:3]) if len(word) >= 3 else None


def tonic_pitch_class(tonic: str) -> int:
    """The pitch class (C = 0) of a tonic name: a letter with an optional ``#`` or ``b``.

    >>> tonic_pitch_class("F#"), tonic_pitch_class("Bb"), tonic_pitch_class("c")
    (6, 10, 0)
    >>> tonic_pitch_class("H")
    Traceback (most recent call last):
    ...
    ValueError: not a tonic: 'H'
    """
    if not tonic or tonic[0].upper() not in LETTER_SEMITONES or tonic[1:] not in ("", "#", "b"):
        raise ValueError(f"not a tonic: {tonic!r}")
    return (LETTER_SEMITONES[tonic[0].upper()] + {"": 0, "#": 1, "b": -1}[tonic[1:]]) % 12


# --------------------------------------------------------------------------------------------
# Lengths


@lru_cache(maxsize=512)
def length_multiplier(digits: str, slashes: str, divisor: str) -> Fraction:
    """The multiplier of ``L:`` a written length means: ``2`` -> 2, ``/`` -> 1/2, ``//`` ->
    1/4, ``3/2`` -> 3/2, ``/8`` -> 1/8. A zero divisor gives 0 (left for the validator).

    >>> [str(length_multiplier(*parts)) for parts in
    ...  [("2", "", ""), ("", "/", ""), ("", "//", ""), ("3", "/", "2"), ("", "/", "0")]]
    ['2', '1/2', '1/4', '3/2', '0']
    """
    numerator = int(digits) if digits else 1
    if divisor and not int(divisor):
        return Fraction(0)
    if not slashes:
        return Fraction(numerator)
    if divisor:
        return Fraction(numerator, int(divisor) * 2 ** (len(slashes) - 1))
    return Fraction(numerator, 2 ** len(slashes))


def length_text(multiplier: Fraction) -> str:
    """The length suffix of a note lasting ``multiplier`` units of ``L:`` (the one writer).

    1 is written as nothing, a half as ``/``, other fractions as ``n/d`` with a numerator of 1
    left out (``/4``, never ``//``: the composer's grammar reads no ``//``).

    >>> [length_text(Fraction(x)) for x in ("1", "2", "1/2", "3/2", "1/4", "3", "1/8")]
    ['', '2', '/', '3/2', '/4', '3', '/8']
    >>> length_text(Fraction(0))
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: cannot write a length of 0 units
    """
    if multiplier <= 0:
        raise AbcError(f"cannot write a length of {multiplier} units")
    if multiplier.denominator == 1:
        return "" if multiplier == 1 else str(multiplier.numerator)
    if multiplier.numerator == 1:
        return "/" if multiplier.denominator == 2 else f"/{multiplier.denominator}"
    return f"{multiplier.numerator}/{multiplier.denominator}"


# --------------------------------------------------------------------------------------------
# %%MIDI directives

_MIDI_LINE_RE = re.compile(r"^%%MIDI[ \t]+(\S+)[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_PROGRAM_ARGS_RE = re.compile(r"(?:(\d+)[ \t]+)?(\S+)")


def midi_directives(abc: str) -> list[tuple[str, str]]:
    """Every ``%%MIDI name args`` line of the text, in order, as (name in lower case, args).

    A trailing ``%`` comment is part of the arguments only when it is not one (abc2midi reads
    the line up to its end); the caller reads the arguments it knows.

    >>> midi_directives("X:1\\n%%MIDI program 73\\nK:C\\n%%MIDI gchord fzcz\\nCDEF|\\n")
    [('program', '73'), ('gchord', 'fzcz')]
    >>> midi_directives("X:1\\nK:C\\nCDEF|\\n")
    []
    """
    return [(m.group(1).lower(), m.group(2)) for m in _MIDI_LINE_RE.finditer(abc)]


def midi_program_number(args: str) -> str | None:
    """The program argument of a ``%%MIDI program`` line, as written: ``73`` or, with a
    channel first (abc2midi's ``program CHANNEL N``), the second number; None when empty.

    >>> midi_program_number("73"), midi_program_number("1 40"), midi_program_number("")
    ('73', '40', None)
    """
    match = _PROGRAM_ARGS_RE.match(args)
    return match.group(2) if match else None


def midi_program(abc: str) -> int | None:
    """The General MIDI program the first ``%%MIDI program`` line of the text names, or None.

    >>> midi_program("X:1\\n%%MIDI program 1 40\\nK:C\\n"), midi_program("X:1\\nK:C\\n")
    (40, None)
    """
    for name, args in midi_directives(abc):
        number = midi_program_number(args) if name == "program" else None
        if number is not None and number.isdigit():
            return int(number)
    return None
