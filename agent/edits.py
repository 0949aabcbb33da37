"""Exact edits on ABC text: transpose, tempo, mode, instrument, title, repeats, length, one bar.

Each edit is a pure function ``(abc_text, op) -> EditResult`` working on the tune's text
through :mod:`agent.abc_text` (tokens with offsets and MIDI pitches, bars with text spans), so
an edit changes exactly what it is about and leaves every other byte as it was: decorations,
spacing, line breaks, comments and lyrics stay identical, and so does every bar the edit does
not touch. No model is involved; every change can be checked note by note. (music21 can
transpose its own score objects, but it has no ABC writer, and rewriting the whole tune from
a score would lose the person's spelling, spacing and ornaments: hence edits on the text.)

The operations are the dataclasses of :mod:`agent.understand` (``Transpose``, ``SetTempo``,
``ChangeMode``, ...). :func:`apply_edit` dispatches on them. A request that cannot be done
(bar 99 of 16, a mode the tune is already in) raises :class:`agent.errors.InputError`; a tune
that cannot be read raises :class:`agent.errors.AbcError`.

>>> tune = "X:1\\nT:Scale\\nM:2/4\\nL:1/8\\nK:D\\nDEFG|ABcd|]\\n"
>>> result = apply_edit(tune, Transpose(semitones=2))
>>> print(result.abc, end="")
X:1
T:Scale
M:2/4
L:1/8
K:E
EFGA|Bcde|]
>>> result.summary
'Transposed up a whole step (2 semitones), from D major to E major.'
>>> apply_edit(tune, ReplaceBar(bar=5, abc="d4"))
Traceback (most recent call last):
...
agent.errors.InputError: there is no bar 5: the tune has 2 bars
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Callable

from agent.abc_text import (
    LETTER_SEMITONES, LETTERS, Bar, Context, Key, Kind, Token, TuneText, parse_key, parse_tune,
    scan_body, split_bars, strip_comment, tokenize_body,
)
from agent.errors import AbcError, InputError
from agent.notation import (
    ACCIDENTAL_TEXT, KEY_ACCIDENTAL_RE, MODE_START, MODE_STEPS, MODE_SUFFIX,
    NOTE_HEAD, NOTE_RE, TONIC_RE, canonical_mode, tonic_pitch_class,
)
from agent.ops import (
    ChangeLength, ChangeMode, RepeatPart, ReplaceBar, SetInstrument, SetTempo, SetTitle, Span,
    Transpose,
)
from agent.understand import clean_line
from agent.validate import first_score_number, instrument_range

# --------------------------------------------------------------------------------------------
# Tables

INTERVAL_NAMES = {
    0: "a unison", 1: "a half step", 2: "a whole step", 3: "a minor third", 4: "a major third",
    5: "a fourth", 6: "a tritone", 7: "a fifth", 8: "a minor sixth", 9: "a major sixth",
    10: "a minor seventh", 11: "a major seventh", 12: "an octave", 24: "two octaves",
}

# Metronome marks (Maelzel): tempo changes land on one of these.
METRONOME_MARKS = (40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 63, 66, 69, 72, 76, 80, 84, 88,
                   92, 96, 100, 104, 108, 112, 116, 120, 126, 132, 138, 144, 152, 160, 168,
                   176, 184, 192, 200, 208, 216, 224, 232, 240)


@dataclass(frozen=True)
class EditConfig:
    """Settings of the exact edits."""

    default_quarter_bpm: int = field(default=120, metadata={
        "help": "speed assumed for a tune without Q: (quarter notes per minute, what music21 "
                "and abc2midi play such a tune at)"})
    min_bpm: int = field(default=20, metadata={"help": "slowest tempo an edit may set"})
    max_bpm: int = field(default=400, metadata={"help": "fastest tempo an edit may set"})
    ending_bars: int = field(default=4, metadata={
        "help": "bars meant by 'the ending' / 'the beginning' when no number is given"})


DEFAULT_EDIT_CONFIG = EditConfig()


@dataclass(frozen=True)
class EditResult:
    """The edited tune's text and one sentence saying what changed, for the reply."""

    abc: str
    summary: str


# --------------------------------------------------------------------------------------------
# Reading the tune


class _Tune:
    """A parsed tune with its tokens; its bars (of the first voice) are split when asked for."""

    def __init__(self, text: str, tune: TuneText, tokens: list[Token]):
        self.text, self.tune, self.tokens = text, tune, tokens
        self.voices = tuple(dict.fromkeys(t.voice for t in tokens if t.is_timed)) or ("",)

    @cached_property
    def bars(self) -> list[Bar]:
        return [bar for bar in split_bars(self.tokens, self.tune) if bar.voice == self.voices[0]]

    @cached_property
    def first_shown(self) -> int:
        """The number the engraved score gives the first bar: 0 for a pickup (a short first
        bar; scores number an anacrusis 0 and count on from the next bar), else 1. People read
        bar numbers off the score, so edits take and give them so; inside, bars are numbered
        as written (``Bar.number``, from 1)."""
        return first_score_number(self.bars)

    def written(self, shown: int) -> int:
        """The written bar number (from 1) of the bar the score shows as ``shown``."""
        return shown - self.first_shown + 1

    def shown(self, written: int) -> int:
        """The score's number of written bar ``written``."""
        return written + self.first_shown - 1

    def no_such_bar(self, shown: int) -> InputError:
        last = self.shown(len(self.bars))
        if self.first_shown == 0:
            return InputError(f"there is no bar {shown}: the score numbers its bars 0 (the pickup) to {last}")
        return InputError(f"there is no bar {shown}: the tune has {last} bars")


def _read(abc_text: str) -> _Tune:
    if not isinstance(abc_text, str) or not abc_text.strip():
        raise InputError("there is no tune to edit (the ABC text is empty)")
    tune = parse_tune(abc_text)
    return _Tune(abc_text, tune, tokenize_body(tune.body, tune))


def _assemble(t: _Tune, header_lines: dict[int, str | None] | None = None,
              body_changes: list[tuple[int, int, str]] | None = None,
              insert_before_key: list[str] | None = None) -> str:
    """The tune's text with header lines replaced (None deletes), lines inserted before the
    K: line, and body spans replaced; everything else is kept byte for byte."""
    tune = t.tune
    header = t.text[:tune.body_offset]
    body = tune.body
    rest = t.text[tune.body_offset + len(body):]
    for start, end, new in sorted(body_changes or [], key=lambda change: change[0], reverse=True):
        body = body[:start] + new + body[end:]
    lines = header.splitlines(keepends=True)
    key_line = _header_field(t, "K").line - 1
    for index, new_line in (header_lines or {}).items():
        ending = lines[index][len(lines[index].rstrip("\r\n")):]
        lines[index] = "" if new_line is None else new_line + (ending or "\n")
    if insert_before_key:
        newline = "\r\n" if lines[key_line].endswith("\r\n") else "\n"
        lines[key_line] = "".join(line + newline for line in insert_before_key) + lines[key_line]
    return "".join(lines) + body + rest


def _header_field(t: _Tune, name: str):
    for fld in t.tune.fields:
        if fld.name == name:
            return fld
    return None


def _header_line(t: _Tune, line_number: int) -> str:
    return t.text.splitlines()[line_number - 1]


# --------------------------------------------------------------------------------------------
# Keys and spelling


def _signature(tonic: str, mode: str) -> tuple[int, ...] | None:
    """Alterations of C..B for a key, or None when it would need more than 7 accidentals."""
    try:
        return parse_key(tonic + MODE_SUFFIX[mode]).alterations
    except AbcError:
        return None


def _spellings(pitch_class: int) -> list[str]:
    """Every tonic name with at most one sharp or flat for a pitch class ("F#", "Gb")."""
    names = []
    for letter in LETTERS:
        alteration = (pitch_class - LETTER_SEMITONES[letter] + 6) % 12 - 6
        if abs(alteration) <= 1:
            names.append(letter + {0: "", 1: "#", -1: "b"}[alteration])
    return names


def _best_tonic(pitch_class: int, mode: str, prefer_flats: bool) -> str:
    """The spelling of a tonic whose key signature has the fewest accidentals."""
    scored = []
    for name in _spellings(pitch_class):
        signature = _signature(name, mode)
        if signature is not None:
            sharps = sum(signature)
            scored.append((abs(sharps), (sharps > 0) if prefer_flats else (sharps < 0), name))
    return min(scored)[2]


def _spell(midi: int, letter_index: int) -> tuple[int, int, int]:
    """(letter index, octave, alteration) writing ``midi`` with that letter; when that would
    need more than a double accidental, the nearest letter that needs less."""
    for candidate in (letter_index, (letter_index + 1) % 7, (letter_index - 1) % 7):
        natural = LETTER_SEMITONES[LETTERS[candidate]]
        octave = round((midi - natural - 12) / 12)
        alteration = midi - (12 * (octave + 1) + natural)
        if abs(alteration) <= 2:
            return candidate, octave, alteration
    raise AbcError(f"cannot spell MIDI pitch {midi}")  # unreachable: some letter is within 1


def _note_text(letter_index: int, octave: int, accidental: str) -> str:
    letter = LETTERS[letter_index]
    if octave >= 5:
        return accidental + letter.lower() + "'" * (octave - 5)
    return accidental + letter + "," * (4 - octave)


@dataclass
class _Section:
    """How notes move while one key is in force: ``move(midi, letter_index)`` gives the new
    pitch and letter; ``old``/``new`` are the key signatures before and after; ``chord``,
    when set, adjusts a moved chord symbol's quality: ``chord(old_text, moved_text)``."""

    move: Callable[[int, int], tuple[int, int]]
    old: tuple[int, ...]
    new: tuple[int, ...]
    chord: Callable[[str, str], str] | None = None


class _Writer:
    """Rewrites notes under ABC 2.1 accidental rules: an accidental is written where the new
    pitch differs from what the bar (or the key signature) already implies, and wherever the
    original had one (courtesy accidentals stay)."""

    def __init__(self, propagation: str):
        self.propagation = propagation
        self.bar: dict[object, int] = {}

    def reset(self) -> None:
        self.bar.clear()

    def note(self, text: str, midi: int, section: _Section) -> str:
        match = _NOTE_PARTS.fullmatch(text)
        if not match:
            raise AbcError(f"cannot read the note {text!r}")
        accidental, letter, _marks, length = match.groups()
        new_midi, new_letter = section.move(midi, LETTERS.index(letter.upper()))
        if not 0 <= new_midi <= 127:
            raise InputError("the edit would take a note outside the MIDI range (0-127)")
        letter_index, octave, alteration = _spell(new_midi, new_letter)
        memo = letter_index if self.propagation == "pitch" else (letter_index, octave)
        implied = self.bar.get(memo, section.new[letter_index])
        if self.propagation == "not":
            implied = section.new[letter_index]
        written = ""
        if accidental is not None or alteration != implied:
            written = ACCIDENTAL_TEXT[alteration]
            if self.propagation != "not":
                self.bar[memo] = alteration
        return _note_text(letter_index, octave, written) + length


_NOTE_PARTS = re.compile(NOTE_HEAD + r"(.*)", re.DOTALL)
_DECORATION_IN_GROUP = re.compile(r"!([^!\n]*)!|\+([A-Za-z0-9.<>()]+)\+")


def _rewrite_chord(text: str, pitches: tuple[int, ...], writer: _Writer, section: _Section,
                   decorations: frozenset[str]) -> str:
    """A chord token with its notes rewritten; read exactly as the tokenizer reads chords."""
    out, cursor, index = ["["], 1, 0
    while cursor < len(text) and text[cursor] != "]":
        ch = text[cursor]
        if ch == " " or ch == "-" or ch in decorations:
            out.append(ch)
            cursor += 1
            continue
        if ch in "!+":
            match = _DECORATION_IN_GROUP.match(text, cursor)
            if match:
                out.append(match.group(0))
                cursor = match.end()
                continue
        if ch == '"':
            end = text.find('"', cursor + 1)
            if end > 0:
                out.append(text[cursor:end + 1])
                cursor = end + 1
                continue
        match = NOTE_RE.match(text, cursor)
        if not match or index >= len(pitches):
            raise AbcError(f"cannot read the chord {text!r}")
        out.append(writer.note(match.group(0), pitches[index], section))
        index += 1
        cursor = match.end()
    if index != len(pitches):
        raise AbcError(f"cannot read the chord {text!r}")
    return "".join(out) + text[cursor:]


def _rewrite_grace(text: str, pitches: tuple[int, ...], writer: _Writer,
                   section: _Section) -> str:
    """A grace group with its notes rewritten; read exactly as the tokenizer reads them."""
    out, cursor, index = ["{"], 1, 0
    end = len(text) - 1
    while cursor < end:
        match = NOTE_RE.match(text, cursor)
        if match and match.end() <= end:
            if index >= len(pitches):
                raise AbcError(f"cannot read the grace notes {text!r}")
            out.append(writer.note(match.group(0), pitches[index], section))
            index += 1
            cursor = match.end()
        else:
            out.append(text[cursor])
            cursor += 1
    if index != len(pitches):
        raise AbcError(f"cannot read the grace notes {text!r}")
    return "".join(out) + "}"


_CHORD_ROOT = re.compile(r"(?<![A-Za-z])([A-G])([#b]?)")
# What a chord symbol may look like ("Am", "Bbmaj7", "G7(b9)", "D/F#"); anything else in
# quotes ("D.C.", "Fine") is text and is left alone.
_CHORD_SYMBOL_TEXT = re.compile(r"\(?[A-G][#b]?(?:[mMajinduags]|[0-9#b+°ø^Δ(),-])*"
                                r"(?:/[A-G][#b]?)?\)?")


def _move_name(letter: str, accidental: str, section: _Section) -> str:
    """A note name (chord root or bass) moved like the notes of ``section``; a double sharp
    or flat is respelled (sharps in sharp keys, flats in flat keys)."""
    midi = 60 + LETTER_SEMITONES[letter] + {"": 0, "#": 1, "b": -1}[accidental]
    new_midi, new_letter = section.move(midi, LETTERS.index(letter))
    letter_index, _octave, alteration = _spell(new_midi, new_letter)
    if abs(alteration) > 1:
        names = _spellings(new_midi % 12)
        return names[-1] if sum(section.new) < 0 else names[0]
    return LETTERS[letter_index] + {0: "", 1: "#", -1: "b"}[alteration]


def _rewrite_chord_symbol(text: str, section: _Section) -> str:
    """A quoted chord symbol ("Am", "D7/F#") with its root and bass moved (and its quality
    adjusted by ``section.chord`` when set)."""
    inner = text[1:-1]
    if not _CHORD_SYMBOL_TEXT.fullmatch(inner):
        return text
    out = _CHORD_ROOT.sub(lambda m: _move_name(m.group(1), m.group(2), section), inner)
    if section.chord is not None:
        out = section.chord(inner, out)
    return '"' + out + '"'


# --------------------------------------------------------------------------------------------
# K: values


_MODE_WORD = re.compile(r"(maj|min|ion|aeo|dor|phr|lyd|mix|loc)[a-z]*$", re.IGNORECASE)


def _key_words(value: str) -> tuple[str, str, str | None, list[str]] | None:
    """Split a K: value: (tonic, glued mode text, separate mode word, other words).

    None when the value names no tonic (``none``, ``HP``, a clef only)."""
    words = strip_comment(value).split()
    if not words:
        return None
    match = TONIC_RE.fullmatch(words[0])
    if not match or words[0].lower() in ("none", "bass", "alto", "tenor", "treble", "perc") \
            or "=" in words[0] or words[0] == "HP":
        return None
    letter, accidental, glued = match.groups()
    rest = words[1:]
    mode_word = None
    if not glued and rest and _MODE_WORD.fullmatch(rest[0]):
        mode_word, rest = rest[0], rest[1:]
    return letter.upper() + accidental, glued, mode_word, rest


def _key_value(tonic: str, glued: str, mode_word: str | None, others: list[str],
               signature: tuple[int, ...], standard: tuple[int, ...], explicit: bool) -> str:
    """A K: value: tonic and mode as the original wrote them, accidentals as needed, then the
    other words (clef, middle=, ...) unchanged."""
    words = [tonic + glued] + ([mode_word] if mode_word else [])
    kept = [w for w in others if not KEY_ACCIDENTAL_RE.fullmatch(w) and w.lower() != "exp"]
    if explicit:
        words.append("exp")
        words += [ACCIDENTAL_TEXT[a] + LETTERS[i].lower() for i, a in enumerate(signature) if a]
    else:
        words += [ACCIDENTAL_TEXT[a] + LETTERS[i].lower()
                  for i, (a, s) in enumerate(zip(signature, standard)) if a != s]
    return " ".join(words + kept)


def _replace_field_value(line: str, name: str, new_value: str) -> str:
    """A field line (``K:G % comment``) with its value replaced, the comment kept."""
    match = re.match(rf"(\s*\[?{name}:\s*)(.*?)(\s*(?<!\\)%.*|\])?$", line, re.DOTALL)
    prefix, _old, tail = match.groups()
    return prefix + new_value + (tail or "")


# --------------------------------------------------------------------------------------------
# Rewriting every note by a rule


def _key_fields(t: _Tune) -> list[Token]:
    """K: fields in the body (field lines and inline fields), in order."""
    return [tok for tok in t.tokens
            if (tok.kind is Kind.FIELD and tok.text.startswith("K:"))
            or (tok.kind is Kind.INLINE_FIELD and tok.text.startswith("[K:"))]


def _field_token_value(token: Token) -> str:
    return token.text[3:-1] if token.kind is Kind.INLINE_FIELD else token.text[2:]


def _rewrite(t: _Tune, plan: Callable[[Key, str], tuple[_Section, str | None]]) -> str:
    """Apply ``plan(key, K: value) -> (section, new K: value or None)`` to the header key and
    to every key change in the body, and rewrite every note, chord, grace group and chord
    symbol by the section in force. Returns the new text."""
    tune = t.tune
    decorations = Context.from_tune(tune).decorations
    header_section, header_value = plan(tune.key, _header_field(t, "K").value)
    sections: dict[str, _Section] = {}
    keys: dict[str, Key] = {}
    writer = _Writer(tune.propagation)
    changes: list[tuple[int, int, str]] = []
    voice = None
    for token in t.tokens:
        if token.voice != voice:
            voice = token.voice
            sections.setdefault(voice, header_section)
            keys.setdefault(voice, tune.key)
            writer.reset()
        section = sections[voice]
        kind = token.kind
        if kind is Kind.BAR:
            writer.reset()
        elif kind is Kind.NOTE:
            new = writer.note(token.text, token.pitches[0], section)
            if new != token.text:
                changes.append((token.start, token.end, new))
        elif kind is Kind.CHORD:
            new = _rewrite_chord(token.text, token.pitches, writer, section, decorations)
            if new != token.text:
                changes.append((token.start, token.end, new))
        elif kind is Kind.GRACE and token.pitches:
            new = _rewrite_grace(token.text, token.pitches, writer, section)
            if new != token.text:
                changes.append((token.start, token.end, new))
        elif kind is Kind.CHORD_SYMBOL:
            new = _rewrite_chord_symbol(token.text, section)
            if new != token.text:
                changes.append((token.start, token.end, new))
        elif (kind is Kind.FIELD and token.text.startswith("K:")) or (
                kind is Kind.INLINE_FIELD and token.text.startswith("[K:")):
            value = _field_token_value(token)
            previous = keys[voice]
            try:
                key = parse_key(value, previous=previous)
            except AbcError:
                continue  # an unreadable key change is left as written (validation reports it)
            keys[voice] = key
            if _key_words(value) is None and (key.tonic, key.alterations) == (
                    previous.tonic, previous.alterations):
                continue  # a clef only: the key goes on
            sections[voice], new_value = plan(key, value)
            writer.reset()
            if new_value is not None:
                changes.append((token.start, token.end,
                                _replace_field_value(token.text, "K", new_value)))
    header_lines = {}
    if header_value is not None:
        key_field = _header_field(t, "K")
        header_lines[key_field.line - 1] = _replace_field_value(
            _header_line(t, key_field.line), "K", header_value)
    return _assemble(t, header_lines, changes)


def _transposition_plan(semitones: int, first_tonic: str | None = None):
    """The plan moving every note by ``semitones``, each key's new tonic spelled with the
    fewest accidentals (the header's as ``first_tonic`` when the person named it)."""
    state = {"first": first_tonic}

    def plan(key: Key, value: str):
        words = _key_words(value)
        if key.tonic is None or words is None:
            # no tonic (K:none): letters move as C would, the signature stays empty
            target = _best_tonic(semitones % 12, "major", semitones < 0)
            shift = (LETTERS.index(target[0])) % 7
            section = _Section(_mover(semitones, shift), key.alterations, key.alterations)
            return section, None
        tonic, glued, mode_word, others = words
        mode = key.mode or "major"
        target_class = (tonic_pitch_class(key.tonic) + semitones) % 12
        if state["first"] and tonic_pitch_class(state["first"]) == target_class \
                and _signature(state["first"], mode) is not None:
            new_tonic = state["first"]
        else:
            new_tonic = _best_tonic(target_class, mode, prefer_flats=(key.sharps or 0) < 0)
        state["first"] = None
        shift = (LETTERS.index(new_tonic[0]) - LETTERS.index(key.tonic[0])) % 7
        standard = _signature(new_tonic, mode)
        moved = _moved_signature(key.alterations, semitones, shift)
        section = _Section(_mover(semitones, shift), key.alterations, moved)
        new_value = _key_value(new_tonic, glued, mode_word, others, moved, standard,
                               key.explicit)
        return section, new_value

    return plan


def _mover(semitones: int, shift: int):
    def move(midi: int, letter_index: int) -> tuple[int, int]:
        return midi + semitones, (letter_index + shift) % 7
    return move


def _moved_signature(alterations: tuple[int, ...], semitones: int, shift: int) -> tuple[int, ...]:
    """A key signature moved by ``semitones``, letters moved by ``shift``."""
    moved = [0] * 7
    for index, alteration in enumerate(alterations):
        target = (index + shift) % 7
        pitch_class = LETTER_SEMITONES[LETTERS[index]] + alteration + semitones
        moved[target] = (pitch_class - LETTER_SEMITONES[LETTERS[target]] + 6) % 12 - 6
    return tuple(moved)


# --------------------------------------------------------------------------------------------
# Transpose


def _interval_words(semitones: int) -> str:
    """ "up a fifth (7 semitones)", "down an octave and a whole step (14 semitones)"."""
    size = abs(semitones)
    octaves, rest = divmod(size, 12)
    if size in INTERVAL_NAMES:
        name = INTERVAL_NAMES[size]
    else:
        name = ("an octave" if octaves == 1 else f"{octaves} octaves") + (
            f" and {INTERVAL_NAMES[rest]}" if rest else "")
    unit = "semitone" if size == 1 else "semitones"
    return f"{'up' if semitones > 0 else 'down'} {name} ({size} {unit})"


def _key_words_for(tonic: str | None, mode: str | None) -> str:
    if tonic is None:
        return "no key"
    return f"{tonic} {mode or 'major'}"


def transpose(abc_text: str, op: Transpose) -> EditResult:
    """Move every note by ``op.semitones``, or to the key ``op.to_key``.

    The K: field (and every key change in the body) names the new key, spelled with the
    fewest accidentals unless the person named it; notes, chords, grace notes and chord
    symbols are respelled for the new key under ABC 2.1 bar rules: an accidental is written
    where the new key signature or an earlier accidental in the bar would otherwise give the
    wrong pitch (so naturals are added or dropped as needed), and kept wherever the original
    had one. Octave marks follow the new pitch. Nothing else in the text changes.

    ``to_key`` moves by the smallest interval (at most a tritone, down for a tritone). When
    it names another mode ("to E minor" from G major), the tune is moved to the new tonic
    and then changed to that mode as :func:`change_mode` does (parallel).

    >>> print(transpose("X:1\\nK:G\\nB^cd=c|\\n", Transpose(semitones=-2)).abc, end="")
    X:1
    K:F
    A=Bc_B|
    >>> transpose("X:1\\nK:G\\nB|\\n", Transpose()).summary
    Traceback (most recent call last):
    ...
    agent.errors.InputError: say how far to transpose (an interval) or to which key
    """
    t = _read(abc_text)
    key = t.tune.key
    target_mode = None
    first_tonic = None
    if op.to_key is not None:
        if key.tonic is None:
            raise InputError("the tune has no key (K:none), so it cannot be moved to a key; "
                             "transpose it by an interval instead")
        target = op.to_key.tonic
        if not re.fullmatch(r"[A-G][#b]?", target):
            raise InputError(f"not a key: {target!r}")
        difference = (tonic_pitch_class(target) - tonic_pitch_class(key.tonic)) % 12
        semitones = difference if difference < 6 else difference - 12
        first_tonic = target
        if op.to_key.mode and canonical_mode(op.to_key.mode) != canonical_mode(key.mode):
            target_mode = canonical_mode(op.to_key.mode)
    elif op.semitones is not None:
        semitones = op.semitones
    else:
        raise InputError("say how far to transpose (an interval) or to which key")
    if not isinstance(semitones, int) or abs(semitones) > 48:
        raise InputError(f"cannot transpose by {semitones!r} semitones (at most four octaves)")
    if semitones == 0 and target_mode is None:
        raise InputError(f"the tune is already in {_key_words_for(key.tonic, key.mode)}")
    text = abc_text
    summary = ""
    if semitones:
        text = _rewrite(t, _transposition_plan(semitones, first_tonic))
        new_key = parse_tune(text).key
        summary = (f"Transposed {_interval_words(semitones)}, from "
                   f"{_key_words_for(key.tonic, key.mode)} to "
                   f"{_key_words_for(new_key.tonic, new_key.mode)}.")
    if target_mode is not None:
        changed = change_mode(text, ChangeMode(target_mode, "parallel"))
        text = changed.abc
        summary = (summary + " " if summary else "") + changed.summary
    return EditResult(text, summary)


# --------------------------------------------------------------------------------------------
# Mode


def moved_degrees(source: str, target: str) -> dict[int, int]:
    """Scale degrees (1-7) that differ between two modes on the same tonic, and by how many
    semitones they move.

    >>> moved_degrees("major", "minor")
    {3: -1, 6: -1, 7: -1}
    >>> moved_degrees("minor", "dorian"), moved_degrees("major", "mixolydian")
    ({6: 1}, {7: -1})
    >>> moved_degrees("major", "hypodorian")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: unknown mode 'hypodorian' (use major, minor, dorian, ...
    """
    steps = []
    for mode in (source, target):
        name = canonical_mode(mode)
        if name not in MODE_STEPS:
            raise InputError(f"unknown mode {mode!r} (use major, minor, dorian, mixolydian, "
                             "lydian, phrygian or locrian)")
        steps.append(MODE_STEPS[name])
    return {degree + 1: b - a for degree, (a, b) in enumerate(zip(*steps)) if a != b}


_QUALITY = re.compile(r"^(?P<root>[A-G][#b]?)(?P<quality>m(?!aj)|min|dim|°|\+|aug)?(?P<seventh>7)?"
                      r"(?P<bass>/[A-G][#b]?)?$")


def _triad_quality(steps: tuple[int, ...], degree: int) -> str:
    third = (steps[(degree + 2) % 7] - steps[degree]) % 12
    fifth = (steps[(degree + 4) % 7] - steps[degree]) % 12
    return {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "+"}.get((third, fifth), "")


def _mode_plan(target: str):
    """The plan of a parallel mode change: each key's tonic stays, its mode becomes
    ``target``; diatonic notes move to the same degree of the new mode, chromatic notes stay."""
    new_steps = MODE_STEPS[target]

    def plan(key: Key, value: str):
        words = _key_words(value)
        if key.tonic is None or words is None:
            section = _Section(lambda midi, letter: (midi, letter), key.alterations,
                               key.alterations)
            return section, None
        tonic, _glued, _mode_word, others = words
        old_steps = MODE_STEPS[canonical_mode(key.mode)]
        tonic_class = tonic_pitch_class(key.tonic)
        tonic_letter = LETTERS.index(key.tonic[0])

        def move(midi: int, letter_index: int) -> tuple[int, int]:
            degree = (letter_index - tonic_letter) % 7
            if (midi - tonic_class - old_steps[degree]) % 12 == 0:
                return midi + new_steps[degree] - old_steps[degree], letter_index
            return midi, letter_index

        standard = _signature(key.tonic, target)
        if standard is None:
            raise InputError(f"{key.tonic} {target} would need more than 7 sharps or flats; "
                             "transpose the tune first")
        moved = list(key.alterations)
        for index in range(7):
            degree = (index - tonic_letter) % 7
            moved[index] += new_steps[degree] - old_steps[degree]
        chord = _mode_chord_quality(key.tonic, canonical_mode(key.mode), target)
        section = _Section(move, key.alterations, tuple(moved), chord)
        new_value = _key_value(tonic, MODE_SUFFIX[target], None, others, tuple(moved),
                               standard, key.explicit)
        return section, new_value

    return plan


#: A seventh chord's symbol from its triad's quality and its seventh (semitones over the root).
_SEVENTH_SYMBOL = {("", 10): "7", ("", 11): "maj7", ("m", 10): "m7", ("m", 11): "mmaj7",
                   ("dim", 10): "m7b5", ("dim", 9): "dim7", ("+", 10): "+7"}


def _mode_chord_quality(tonic: str, old_mode: str, new_mode: str) -> Callable[[str, str], str]:
    """Chord-symbol quality for a parallel mode change on ``tonic``: a plain triad or
    diatonic seventh symbol on a scale degree takes the new mode's chord on that degree
    (in D minor: Gm, F, Bb, C, and Bbmaj7 for Bm7), except the dominant going into minor,
    which stays major as musicians play it (A and A7 in D minor: harmonic minor's V).

    >>> adjust = _mode_chord_quality("D", "major", "minor")  # (old, with its root moved)
    >>> [adjust(*c) for c in (("A7", "A7"), ("G", "G"), ("F#m", "Fm"), ("Bm7", "Bbm7"),
    ...                       ("Em", "Em"), ("D7", "D7"), ("Gmaj7", "Gmaj7"))]
    ['A7', 'Gm', 'F', 'Bbmaj7', 'Edim', 'D7', 'Gmaj7']
    """
    old_steps, new_steps = MODE_STEPS[old_mode], MODE_STEPS[new_mode]
    tonic_class, tonic_letter = tonic_pitch_class(tonic), LETTERS.index(tonic[0])

    def seventh(steps: tuple[int, ...], degree: int) -> int:
        return (steps[(degree + 6) % 7] - steps[degree]) % 12

    def adjust(old: str, moved: str) -> str:
        o, m = _QUALITY.match(old), _QUALITY.match(moved)
        if not (o and m):
            return moved
        degree = (LETTERS.index(o.group("root")[0]) - tonic_letter) % 7
        if (tonic_pitch_class(o.group("root")) - tonic_class - old_steps[degree]) % 12:
            return moved  # a chromatic chord: keep its quality
        quality = o.group("quality") or ""
        quality = {"min": "m", "°": "dim", "aug": "+"}.get(quality, quality)
        if quality != _triad_quality(old_steps, degree):
            return moved
        has_seventh = bool(o.group("seventh"))
        if has_seventh and (quality, seventh(old_steps, degree)) not in (
                ("", 10), ("m", 10), ("dim", 9), ("+", 10)):
            return moved  # a seventh outside the old scale (D7 in D major): keep it
        if new_mode == "minor" and degree == 4 and quality == "":
            return moved  # the dominant stays major in minor (harmonic minor's V and V7)
        new_quality = _triad_quality(new_steps, degree)
        symbol = new_quality
        if has_seventh:
            symbol = _SEVENTH_SYMBOL.get((new_quality, seventh(new_steps, degree)),
                                         new_quality + "7")
        return m.group("root") + symbol + (m.group("bass") or "")

    return adjust


def change_mode(abc_text: str, op: ChangeMode) -> EditResult:
    """Change the tune's mode, keeping its tonic (parallel) or its notes (relative).

    **Parallel** (D major -> D minor): the tonic stays. Every note on a degree of the old
    mode's scale moves to the same degree of the new mode; the degrees whose size differs
    between the two modes move by a semitone: major -> minor (natural minor) lowers degrees
    3, 6 and 7; minor -> major raises them; major -> dorian lowers 3 and 7; major ->
    mixolydian lowers 7; major -> lydian raises 4; minor -> dorian raises 6; minor ->
    phrygian lowers 2 (see :func:`moved_degrees`). Notes outside the old scale (a raised
    leading note in minor, a borrowed flat seventh) keep their pitch. Plain chord symbols on a
    scale degree take the new mode's chord ("Bm" in D major becomes "Bb" in D minor, "Bm7"
    becomes "Bbmaj7"), except that the dominant stays major going into minor ("A7" stays
    "A7", harmonic minor's V7, as musicians play it); other chord symbols keep their quality.

    **Relative** (G major -> E minor): every pitch and every written note stays as it is
    (the key signature is the same); only the K: fields change to the key of the new mode
    with that signature. The melody still centres on its old tonic until its phrases and
    ending are rewritten (a creative edit).

    Key changes inside the tune change the same way.

    >>> print(change_mode("X:1\\nK:D\\nDEFA|Bc^cd|\\n", ChangeMode("minor")).abc, end="")
    X:1
    K:Dm
    DEFA|Bc=cd|
    >>> change_mode("X:1\\nK:G\\nGABc|\\n", ChangeMode("minor", "relative")).abc.split("\\n")[1]
    'K:Em'
    >>> change_mode("X:1\\nK:Dm\\nD|\\n", ChangeMode("minor"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune is already in D minor
    """
    t = _read(abc_text)
    key = t.tune.key
    target = canonical_mode(op.target)
    moved_degrees("major", target)  # checks the name
    if key.tonic is None or _key_words(_header_field(t, "K").value) is None:
        raise InputError(f"the tune's K:{_header_field(t, 'K').value} names no key, so its "
                         "mode cannot be changed")
    current = canonical_mode(key.mode)
    if current == target:
        raise InputError(f"the tune is already in {key.tonic} {op.target}")
    if op.relation == "relative":
        return _relative_mode(t, target)
    if op.relation != "parallel":
        raise InputError(f"a mode change is 'parallel' or 'relative', not {op.relation!r}")
    if _signature(key.tonic, target) is None:
        # Db minor would need 8 flats: respell the tune in C# first (no pitch changes)
        enharmonic = next(name for name in _spellings(tonic_pitch_class(key.tonic))
                          if name != key.tonic and _signature(name, target) is not None)
        respelled = _rewrite(t, _transposition_plan(0, enharmonic))
        result = change_mode(respelled, op)
        return EditResult(result.abc, result.summary.replace(
            "Changed from", f"Respelled {key.tonic} as {enharmonic} and changed from", 1))
    text = _rewrite(t, _mode_plan(target))
    moves = moved_degrees(current, target)
    moved_words = ", ".join(f"{'raised' if d > 0 else 'lowered'} degree {n}"
                            for n, d in moves.items())
    summary = (f"Changed from {key.tonic} {key.mode} to {key.tonic} {target} "
               f"(parallel: {moved_words}).")
    return EditResult(text, summary)


def _relative_mode(t: _Tune, target: str) -> EditResult:
    """K: fields renamed to the mode ``target`` with the same key signature."""
    def relative_tonic(key: Key) -> str:
        # the letter of the major scale with this signature, then the letter where ``target``
        # starts on it; its alteration is the signature's
        parent_letter = (LETTERS.index(key.tonic[0]) - MODE_START[canonical_mode(key.mode)]) % 7
        target_letter = (parent_letter + MODE_START[target]) % 7
        alteration = key.alterations[target_letter]
        return LETTERS[target_letter] + {0: "", 1: "#", -1: "b"}.get(alteration, "")

    changes: dict[int, str] = {}
    body_changes = []
    key_field = _header_field(t, "K")
    header_key = t.tune.key
    new_tonic = relative_tonic(header_key)
    words = _key_words(key_field.value)
    others = words[3]
    new_value = " ".join([new_tonic + MODE_SUFFIX[target]] + others)
    if parse_key(new_value).alterations != header_key.alterations:
        raise InputError("the tune's key signature is not a standard one; its relative key "
                         "cannot be named")
    changes[key_field.line - 1] = _replace_field_value(_header_line(t, key_field.line), "K",
                                                       new_value)
    previous = header_key
    for token in _key_fields(t):
        value = _field_token_value(token)
        parts = _key_words(value)
        try:
            key = parse_key(value, previous=previous)
        except AbcError:
            continue
        previous = key
        if parts is None or key.tonic is None:
            continue
        body_value = " ".join([relative_tonic(key) + MODE_SUFFIX[target]] + parts[3])
        body_changes.append((token.start, token.end,
                             _replace_field_value(token.text, "K", body_value)))
    text = _assemble(t, changes, body_changes)
    summary = (f"Changed from {header_key.tonic} {header_key.mode} to its relative "
               f"{new_tonic} {target}: same key signature, every note as it was.")
    return EditResult(text, summary)


# --------------------------------------------------------------------------------------------
# Tempo


def _faster_or_slower(current: float, factor: float) -> int:
    """The metronome mark nearest ``current * factor`` among those really faster (factor > 1)
    or slower than ``current``; outside the marks' range, the rounded product."""
    direction = 1 if factor > 1 else -1
    target = current * factor
    beyond = [mark for mark in METRONOME_MARKS if direction * (mark - current) > 0]
    if beyond and METRONOME_MARKS[0] <= target <= METRONOME_MARKS[-1]:
        return min(beyond, key=lambda mark: abs(mark - target))
    new = int(round(target))
    return new if direction * (new - current) > 0 else int(round(current)) + direction


def set_tempo(abc_text: str, op: SetTempo, config: EditConfig = DEFAULT_EDIT_CONFIG
              ) -> EditResult:
    """Set the ``Q:`` tempo to ``op.bpm`` beats per minute, or multiply it by ``op.factor``.

    The beat is the tune's ``Q:`` beat, or the meter's natural beat (a dotted quarter in 6/8)
    when the tune has no ``Q:``; such a tune is taken to be playing at 120 quarter notes a
    minute (what music21 and abc2midi assume). A factor lands on the nearest metronome mark
    (…, 108, 112, 116, 120, 126, 132, …) that is really faster or slower. Tempo changes
    inside the tune (``[Q:…]``) scale by the same ratio. A ``Q:`` line is added before ``K:``
    when there is none.

    >>> tune = "X:1\\nM:3/4\\nQ:1/4=100\\nK:G\\nGAB|\\n"
    >>> set_tempo(tune, SetTempo(factor=1.2)).abc.split("\\n")[2]
    'Q:1/4=120'
    >>> set_tempo("X:1\\nM:6/8\\nK:G\\nGAB|\\n", SetTempo(bpm=110)).abc.split("\\n")[2]
    'Q:3/8=110'
    >>> set_tempo(tune, SetTempo(bpm=1000))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: a tempo of 1000 bpm is out of range (20-400)
    """
    t = _read(abc_text)
    tune = t.tune
    meter = tune.meter
    beat = meter.beat_length if meter.bar_length is not None else Fraction(1, 4)
    tempo = tune.tempo
    q_field = _header_field(t, "Q")
    if tempo is not None and tempo.beat is not None and tempo.bpm:
        beat, current = tempo.beat, tempo.bpm
    else:
        current = config.default_quarter_bpm * Fraction(1, 4) / beat
    if op.bpm is not None:
        new = op.bpm
    elif op.factor is not None:
        if not op.factor > 0:
            raise InputError(f"a tempo factor must be positive, not {op.factor}")
        if op.factor == 1:
            raise InputError("a tempo factor of 1 changes nothing")
        new = _faster_or_slower(float(current), op.factor)
    else:
        raise InputError("say how fast (a bpm number) or how much faster or slower")
    if not config.min_bpm <= new <= config.max_bpm:
        raise InputError(f"a tempo of {new} bpm is out of range "
                         f"({config.min_bpm}-{config.max_bpm})")
    ratio = Fraction(new) / Fraction(current).limit_denominator(1000)
    beat_text = f"{beat.numerator}/{beat.denominator}"
    header_lines: dict[int, str | None] = {}
    insert = None
    if q_field is not None and tempo is not None and tempo.beat is not None and tempo.bpm:
        line = _header_line(t, q_field.line)
        header_lines[q_field.line - 1] = _set_q_number(line, new)
    elif q_field is not None:
        label = f'"{tempo.text}" ' if tempo is not None and tempo.text else ""
        header_lines[q_field.line - 1] = f"Q:{label}{beat_text}={new}"
    else:
        insert = [f"Q:{beat_text}={new}"]
    body_changes = []
    for token in t.tokens:
        if (token.kind is Kind.INLINE_FIELD and token.text.startswith("[Q:")) or (
                token.kind is Kind.FIELD and token.text.startswith("Q:")):
            number = re.search(r"=\s*(\d+(?:\.\d+)?)", token.text)
            if number:
                scaled = int(round(float(number.group(1)) * ratio))
                body_changes.append((token.start, token.end, _set_q_number(token.text, scaled)))
    text = _assemble(t, header_lines, body_changes, insert)
    summary = f"Tempo {float(current):g} -> {new} beats a minute ({beat_text} notes)."
    if q_field is None:
        summary += " The tune had no tempo mark, so it was playing at the default."
    return EditResult(text, summary)


def _set_q_number(text: str, bpm: int) -> str:
    """A Q: field's text with its beats-per-minute number replaced."""
    replaced, count = re.subn(r"(=\s*)\d+(?:\.\d+)?", rf"\g<1>{bpm}", text, count=1)
    if count:
        return replaced
    return re.sub(r"(?<![\d/])\d+(?:\.\d+)?(?![\d/])", str(bpm), text, count=1)


# --------------------------------------------------------------------------------------------
# Instrument and title


_MIDI_PROGRAM = re.compile(r"^(\s*%%MIDI\s+program\s+)(?:(\d+)\s+)?(\d+)(.*)$")


def set_instrument(abc_text: str, op: SetInstrument) -> EditResult:
    """Play the tune on General MIDI program ``op.program`` with a ``%%MIDI program N`` line.

    Every ``%%MIDI program`` line (header or body) gets the new program (a channel number in
    the line is kept); a tune without one gets the line just before ``K:``.

    >>> print(set_instrument("X:1\\nT:A\\nK:G\\nGAB|\\n", SetInstrument(73, "flute")).abc, end="")
    X:1
    T:A
    %%MIDI program 73
    K:G
    GAB|
    >>> set_instrument("X:1\\nK:G\\nG|\\n", SetInstrument(128, "nothing"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: General MIDI programs are 0-127, not 128
    """
    if not isinstance(op.program, int) or not 0 <= op.program <= 127:
        raise InputError(f"General MIDI programs are 0-127, not {op.program}")
    t = _read(abc_text)
    lines = t.text[:t.tune.body_offset].splitlines()
    header_lines = {}
    for index, line in enumerate(lines):
        match = _MIDI_PROGRAM.match(line)
        if match:
            channel = f"{match.group(2)} " if match.group(2) else ""
            header_lines[index] = f"{match.group(1)}{channel}{op.program}{match.group(4)}"
    body_changes = []
    for token in t.tokens:
        if token.kind is Kind.COMMENT:
            match = _MIDI_PROGRAM.match(token.text)
            if match:
                channel = f"{match.group(2)} " if match.group(2) else ""
                body_changes.append((token.start, token.end,
                                     f"{match.group(1)}{channel}{op.program}{match.group(4)}"))
    insert = None if header_lines or body_changes else [f"%%MIDI program {op.program}"]
    text = _assemble(t, header_lines, body_changes, insert)
    summary = f"Instrument set to {op.name} (General MIDI program {op.program})."
    shift = _octaves_into_range(t, op.program)
    if shift:
        text = transpose(text, Transpose(semitones=12 * shift)).abc
        summary += f" The tune moved {_interval_words(12 * shift)} to lie within the {op.name}'s range."
    return EditResult(text, summary)


def _octaves_into_range(t: _Tune, program: int) -> int:
    """How many octaves (up > 0) bring every note of the tune within the playable range of
    ``program`` (validate.instrument_range) by the smallest move: 0 when it already fits, when
    the program has no listed range, or when the tune spans more than the instrument does (the
    validator then names the notes out of range). A player moves a tune by octaves to suit
    the instrument; the key and every interval stay as written.

    >>> _octaves_into_range(_read("X:1\\nK:G\\nG,A,B,C|\\n"), 73)  # below the flute
    1
    >>> _octaves_into_range(_read("X:1\\nK:G\\nG,A,B,C|g'|\\n"), 73)  # wider than its range
    0
    """
    limits = instrument_range(program)
    pitches = [midi for token in t.tokens if token.kind in (Kind.NOTE, Kind.CHORD)
               for midi in token.pitches]
    if limits is None or not pitches:
        return 0
    low, high, _name = limits
    lowest, highest = min(pitches), max(pitches)
    if low <= lowest and highest <= high:
        return 0
    fits = [k for k in range(-4, 5) if low <= lowest + 12 * k and highest + 12 * k <= high]
    return min(fits, key=abs) if fits else 0


def set_title(abc_text: str, op: SetTitle) -> EditResult:
    """Replace the first ``T:`` line with ``op.title`` (one line, no '%', no field syntax);
    a tune without a title gets one after ``X:``.

    >>> set_title("X:1\\nT:Old\\nK:G\\nG|\\n", SetTitle("The Long Road")).abc
    'X:1\\nT:The Long Road\\nK:G\\nG|\\n'
    >>> set_title("X:1\\nK:G\\nG|\\n", SetTitle("%%"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the title is empty once '%' and field syntax are removed
    """
    title = clean_line(op.title or "", 80)
    if not title:
        raise InputError("the title is empty once '%' and field syntax are removed")
    t = _read(abc_text)
    t_field = _header_field(t, "T")
    if t_field is not None:
        line = _header_line(t, t_field.line)
        new_line = re.match(r"\s*T:\s*", line).group(0) + title
        text = _assemble(t, {t_field.line - 1: new_line})
        return EditResult(text, f"Title changed from \"{t_field.value}\" to \"{title}\".")
    x_field = _header_field(t, "X")
    lines = t.text.splitlines(keepends=True)
    index = x_field.line if x_field is not None else 0
    lines.insert(index, f"T:{title}\n")
    return EditResult("".join(lines), f"Title set to \"{title}\".")


# --------------------------------------------------------------------------------------------
# Bars: spans, repeats, length, replacing one bar


def _bars_for_edit(t: _Tune, what: str) -> list[Bar]:
    if len(t.voices) > 1:
        raise InputError(f"{what} works on tunes with one voice; this one has "
                         f"{len(t.voices)}")
    if not t.bars:
        raise InputError("the tune has no bars")
    return t.bars


def _sections(bars: list[Bar]) -> list[tuple[int, int]]:
    """Parts of the tune as (first, last) bar numbers: a part ends at a repeat sign, a
    double bar or the end; a part starts at ``|:``."""
    parts: list[tuple[int, int]] = []
    start = 1
    for bar in bars:
        closes = bar.ends_part
        next_starts_repeat = bar.bar_line is not None and bar.bar_line.text.endswith(":") \
            and not bar.bar_line.text.startswith(":")
        if (closes or next_starts_repeat) and bar.ending is None:
            parts.append((start, bar.number))
            start = bar.number + 1
        elif closes and bar.ending is not None and bar.bar_line.text in ("|]", "||", "::"):
            parts.append((start, bar.number))
            start = bar.number + 1
    if start <= len(bars):
        parts.append((start, len(bars)))
    return [(a, b) for a, b in parts if b - a >= 1 or len(bars) <= 2]


def resolve_span(abc_text: str, span: Span, config: EditConfig = DEFAULT_EDIT_CONFIG
                 ) -> tuple[int, int]:
    """The bars (first, last; as written, from 1, inclusive) a :class:`Span` means in this tune.

    A "bars" span is read as the engraved score numbers bars (a pickup is bar 0, the first full
    bar 1); :func:`shown_bars` turns written numbers back. Parts (A, B, ...) are the sections
    between repeat signs or double bars; a tune without them is split in halves.
    "ending"/"beginning" are the last/first four bars (or the number given), "middle" the four
    around the centre.

    >>> tune = "X:1\\nM:2/4\\nL:1/4\\nK:G\\n|:GA|Bc|dB|AG:|\\n|:de|fg|ed|cB:|\\n"
    >>> resolve_span(tune, Span("part", part="B")), resolve_span(tune, Span("ending", end=2))
    ((5, 8), (7, 8))
    >>> resolve_span(tune, Span("bars", 7, 12))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: there is no bar 12: the tune has 8 bars
    """
    return _span_bars(_read(abc_text), span, config)


def shown_bars(abc_text: str, first: int, last: int) -> tuple[int, int]:
    """Written bar numbers (from 1) as the engraved score numbers them: one less when the tune
    opens with a pickup (bar 0).

    >>> shown_bars("X:1\\nM:2/4\\nL:1/8\\nK:G\\nD|GABc|d4|]\\n", 2, 3)
    (1, 2)
    >>> shown_bars("X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n", 1, 2)
    (1, 2)
    """
    t = _read(abc_text)
    return t.shown(first), t.shown(last)


def _span_bars(t: _Tune, span: Span, config: EditConfig) -> tuple[int, int]:
    bars = _bars_for_edit(t, "choosing bars")
    count = len(bars)
    if span.kind == "bars":  # as the score numbers them
        first = 1 if span.start is None else span.start
        last = first if span.end is None else span.end
        for number in (first, last):
            if not 1 <= t.written(number) <= count:
                raise t.no_such_bar(number)
        return t.written(first), t.written(last)
    if span.kind == "half":
        middle = count // 2
        return (1, middle) if span.part == "first" else (middle + 1, count)
    if span.kind == "part":
        parts = _sections(bars)
        if len(parts) < 2:
            middle = count // 2
            parts = [(1, middle), (middle + 1, count)]
        if span.part == "last":
            return parts[-1]
        index = ord((span.part or "A").upper()) - ord("A")
        if not 0 <= index < len(parts):
            raise InputError(f"the tune has no {span.part} part (it has {len(parts)} parts)")
        return parts[index]
    size = min(span.end or config.ending_bars, count)
    if span.kind == "ending":
        return count - size + 1, count
    if span.kind == "beginning":  # a pickup and the first ``size`` full bars
        return 1, min(count, size + 1 - t.first_shown)
    if span.kind == "middle":
        start = max(1, count // 2 - size // 2 + 1)
        return start, min(count, start + size - 1)
    raise InputError(f"unknown part of a tune: {span.kind!r}")


def repeat_part(abc_text: str, op: RepeatPart) -> EditResult:
    """Put repeat signs around a span of bars (``|:`` before, ``:|`` after); only bar lines
    change, every bar's text stays identical.

    With no span: a tune without repeats gets each half repeated (AABB) when it has an even
    number of bars (8 or more), else the whole tune repeated.

    >>> print(repeat_part("X:1\\nM:2/4\\nL:1/4\\nK:G\\nGA|Bc|dB|AG|]\\n",
    ...                   RepeatPart(Span("bars", 3, 4))).abc, end="")
    X:1
    M:2/4
    L:1/4
    K:G
    GA|Bc|:dB|AG:|]
    >>> repeat_part("X:1\\nM:2/4\\nL:1/4\\nK:G\\n|:GA|Bc:|\\n", RepeatPart(Span("bars", 1, 2)))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: bars 1-2 are already repeated
    """
    t = _read(abc_text)
    bars = _bars_for_edit(t, "adding repeats")
    if op.span is None:
        if any(b.starts_repeat or b.ends_repeat for b in bars):
            raise InputError("the tune already has repeats; say which part to repeat")
        count = len(bars)
        ranges = [(1, count // 2), (count // 2 + 1, count)] if count >= 8 and count % 2 == 0 \
            else [(1, count)]
    else:
        ranges = [_span_bars(t, op.span, DEFAULT_EDIT_CONFIG)]
    changes: list[tuple[int, int, str]] = []
    for first, last in ranges:
        changes += _repeat_changes(t, bars, first, last)
    merged: dict[tuple[int, int], str] = {}
    for start, end, new in changes:
        key = (start, end)
        if key in merged and start != end:
            # the closing :| of one range and the opening |: of the next: one :: bar line
            merged[key] = "::"
        else:
            merged[key] = new if key not in merged else merged[key] + new
    text = _assemble(t, body_changes=[(s, e, n) for (s, e), n in merged.items()])
    words = " and ".join(f"bars {t.shown(a)}-{t.shown(b)}" for a, b in ranges)
    return EditResult(text, f"Added repeat signs: {words} now play twice.")


def _repeated_regions(bars: list[Bar]) -> list[tuple[int, int]]:
    """Bars (first, last) already inside repeat signs; a ``:|`` with no ``|:`` before it
    repeats from the start of the tune (or from the last ``:|``)."""
    regions, start = [], 1
    for bar in bars:
        if bar.starts_repeat:
            start = bar.number
        if bar.ends_repeat:
            regions.append((start, bar.number))
            start = bar.number + 1
    return regions


def _repeat_changes(t: _Tune, bars: list[Bar], first: int, last: int) -> list[tuple[int, int, str]]:
    opening_bar, closing_bar = bars[first - 1], bars[last - 1]
    named = f"bars {t.shown(first)}-{t.shown(last)}"  # as the score numbers them
    for start, end in _repeated_regions(bars):
        if (start, end) == (first, last):
            raise InputError(f"{named} are already repeated")
        if start <= last and first <= end:
            raise InputError(f"{named} overlap the repeated bars {t.shown(start)}-{t.shown(end)}; "
                             "repeats cannot be nested or overlap")
    inner = bars[first - 1:last]
    for bar in inner:
        if bar.ending is not None:
            raise InputError(f"{named} contain a first/second ending; repeat the "
                             "whole part instead")
        if bar is not closing_bar and (bar.ends_repeat or (
                bar.bar_line is not None and bar.bar_line.text.endswith(":"))):
            raise InputError(f"{named} already contain a repeat sign")
        if bar is not opening_bar and bar.starts_repeat:
            raise InputError(f"{named} already contain a repeat sign")
    changes = []
    opening = opening_bar.opening
    if opening is None:
        changes.append((opening_bar.start, opening_bar.start, "|:"))
    elif not opening_bar.starts_repeat:
        text = opening.text
        new = {"|": "|:", "||": "||:", "[|": "[|:", ":|": "::", "|]": "|] |:"}.get(text, text + ":")
        changes.append((opening.start, opening.end, new))
    closing = closing_bar.bar_line
    if closing is None:
        changes.append((closing_bar.end, closing_bar.end, ":|"))
    elif not closing_bar.ends_repeat:
        text = closing.text
        new = {"|": ":|", "||": ":|", "|]": ":|]", "|:": "::", "[|": ":|"}.get(text, ":" + text)
        changes.append((closing.start, closing.end, new))
    return changes


def _has_lyrics(t: _Tune) -> bool:
    return any(token.kind is Kind.LYRICS for token in t.tokens)


def change_length(abc_text: str, op: ChangeLength) -> EditResult:
    """Make the tune longer or shorter by whole bars, keeping its ending.

    **Shorter** by k bars: the k bars just before the final bar are removed, so the tune still
    ends with its own last bar (and final bar line). **Longer** by k bars: the last k bars are
    played once more: a copy of them (repeat signs left out) follows the final bar, whose bar
    line becomes a plain ``|`` (a repeat sign there is kept), and the copy ends with the old
    final bar line. When the last bar is incomplete (it completes a pickup), the k full bars
    before it are copied in front of it instead. Every bar of the original stays
    byte-identical. ``bars`` sets the length to that many bars; ``factor=2`` doubles it.

    Removing bars through a repeat sign, an ending, or a key or meter change, and any
    change to a tune with lyrics (their syllables would no longer line up), is refused.

    >>> tune = "X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|dBAG|Bcde|dBAG|G4|]\\n"
    >>> print(change_length(tune, ChangeLength(delta=-2)).abc, end="")
    X:1
    M:2/4
    L:1/8
    K:G
    GABc|dBAG|G4|]
    >>> print(change_length(tune, ChangeLength(delta=2)).abc, end="")
    X:1
    M:2/4
    L:1/8
    K:G
    GABc|dBAG|Bcde|dBAG|G4|dBAG|G4|]
    >>> change_length("X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n", ChangeLength(delta=-2))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune has 2 bars; it cannot lose 2 and keep its ending
    """
    t = _read(abc_text)
    bars = _bars_for_edit(t, "changing the length")
    count = len(bars)
    if op.bars is not None:
        delta = op.bars - count
    elif op.factor is not None:
        delta = count * (op.factor - 1)
    elif op.delta is not None:
        delta = op.delta
    else:
        raise InputError("say how many bars to add or remove, or how long the tune should be")
    if delta == 0:
        raise InputError(f"the tune already has {count} bars")
    if _has_lyrics(t):
        raise InputError("the tune has lyrics; adding or removing bars would misalign them "
                         "(remove the lyrics first, or rewrite the part as a creative edit)")
    if delta < 0:
        return _shorten(t, bars, -delta)
    return _lengthen(t, bars, delta)


def _shorten(t: _Tune, bars: list[Bar], k: int) -> EditResult:
    count = len(bars)
    if k >= count - 1:
        raise InputError(f"the tune has {count} bars; it cannot lose {k} and keep its ending")
    first, final = bars[count - 1 - k], bars[count - 1]
    removed = [tok for tok in t.tokens if first.start <= tok.start < final.start]
    for token in removed:
        if token.kind is Kind.BAR and (":" in token.text or "[" in token.text):
            raise InputError(f"removing bars {first.number}-{final.number - 1} would cut "
                             "through a repeat sign; choose fewer bars")
        if token.kind is Kind.ENDING:
            raise InputError(f"removing bars {first.number}-{final.number - 1} would cut "
                             "through a first/second ending")
        if token.kind in (Kind.FIELD, Kind.INLINE_FIELD) and token.text.lstrip("[")[:2] in (
                "K:", "M:", "L:", "V:"):
            raise InputError(f"removing bars {first.number}-{final.number - 1} would remove "
                             f"a {token.text.strip('[]')} change")
    text = _assemble(t, body_changes=[(first.start, final.start, "")])
    return EditResult(text, f"Removed bars {first.number}-{final.number - 1} ({k} bars); "
                            f"the tune now has {count - k} bars and ends as before.")


_REPEAT_COLONS = re.compile(r":")


def _lengthen(t: _Tune, bars: list[Bar], k: int) -> EditResult:
    count = len(bars)
    if k > count:
        raise InputError(f"the tune has {count} bars; it can grow by at most {count} bars at "
                         "a time")
    body = t.tune.body
    final = bars[-1]
    incomplete = final.expected is not None and final.duration < final.expected
    if incomplete and k > count - 1:
        raise InputError(f"the tune has {count} bars and a short last bar; it can grow by at "
                         f"most {count - 1} bars at a time")
    copied = bars[count - 1 - k:count - 1] if incomplete else bars[count - k:]
    for bar in copied:
        if bar.ending is not None:
            raise InputError("the bars to repeat contain a first/second ending; add a part as "
                             "a creative edit instead")
        for token in bar.tokens:
            if token.kind in (Kind.FIELD, Kind.INLINE_FIELD) and token.text.lstrip("[")[:2] in (
                    "K:", "M:", "L:", "V:"):
                raise InputError("the bars to repeat contain a key or meter change")
    pieces = []
    for index, bar in enumerate(copied):
        pieces.append(bar.text_in(body))
        if index < len(copied) - 1:
            line = bar.bar_line.text if bar.bar_line is not None else "|"
            pieces.append(_REPEAT_COLONS.sub("", line).replace("[", "") or "|")
    copy = "".join(pieces)
    if incomplete:
        text = _assemble(t, body_changes=[(final.start, final.start, copy + "|")])
        words = f"bars {copied[0].number}-{copied[-1].number}"
        return EditResult(text, f"Added {k} bars: {words} play once more before the last bar.")
    closing = final.bar_line
    if closing is None:
        text = _assemble(t, body_changes=[(final.end, final.end, "|" + copy)])
    else:
        old = closing.text
        middle = old if old.startswith(":") else "|"
        end_line = old if not old.startswith(":") else "|]"
        text = _assemble(t, body_changes=[(closing.start, closing.end,
                                           middle + copy + end_line)])
    words = f"bars {copied[0].number}-{copied[-1].number}"
    return EditResult(text, f"Added {k} bars: {words} play once more at the end; "
                            f"the tune now has {count + k} bars.")


def _beats(duration: Fraction, t: _Tune, bar: Bar) -> str:
    meter = bar.meter
    beat = meter.beat_length if meter is not None and meter.beat_length else Fraction(1, 4)
    value = duration / beat
    words = f"{value.numerator}" if value.denominator == 1 else f"{float(value):g}"
    return f"{words} beat{'s' if value != 1 else ''}"


def replace_bar(abc_text: str, op: ReplaceBar) -> EditResult:
    """Replace bar ``op.bar`` (as the score numbers it: a pickup is bar 0) with ``op.abc``.

    The new bar is read in the key, meter and unit length in force at that bar and must last
    a full bar of the meter (or as long as the bar it replaces, for a pickup or a short last
    bar); only that bar's text changes.

    >>> tune = "X:1\\nM:3/4\\nL:1/8\\nK:D\\nD2F2A2|d4c2|B6|]\\n"
    >>> print(replace_bar(tune, ReplaceBar(2, "d2 c2 B2")).abc, end="")
    X:1
    M:3/4
    L:1/8
    K:D
    D2F2A2|d2 c2 B2|B6|]
    >>> replace_bar(tune, ReplaceBar(2, "d2c2"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: bar 2 must last 3 beats (the meter is 3/4); 'd2c2' lasts 2 beats
    """
    t = _read(abc_text)
    bars = _bars_for_edit(t, "replacing a bar")
    count = len(bars)
    if not isinstance(op.bar, int) or not 1 <= t.written(op.bar) <= count:
        raise t.no_such_bar(op.bar)
    new_text = (op.abc or "").strip().strip("|").strip()
    if not new_text:
        raise InputError("the new bar is empty")
    if "\n" in new_text or "|" in new_text or re.search(r"(^|\s)[A-Za-z]:", new_text):
        raise InputError("give one bar of notes only (no bar lines, no fields)")
    bar = bars[t.written(op.bar) - 1]
    body = t.tune.body
    _before, context = scan_body(body[:bar.start], t.tune)
    tokens = tokenize_body(new_text, context)
    unknown = [tok.text for tok in tokens if tok.kind is Kind.UNKNOWN]
    if unknown:
        raise InputError(f"not ABC notes: {' '.join(unknown)!r} in {new_text!r}")
    new_bars = split_bars(tokens, context)
    if len(new_bars) != 1:
        raise InputError(f"give one bar of notes: {new_text!r} is not one bar")
    duration = new_bars[0].duration
    wanted = [bar.expected] if bar.expected is not None else []
    if bar.duration != bar.expected and bar.duration:
        wanted.append(bar.duration)
    if wanted and duration not in wanted:
        meter_text = bar.meter.text if bar.meter is not None else "free"
        need = _beats(wanted[0], t, bar)
        if len(wanted) > 1:
            need += f" (or {_beats(wanted[1], t, bar)}, as the bar it replaces)"
        raise InputError(f"bar {op.bar} must last {need} (the meter is {meter_text}); "
                         f"{new_text!r} lasts {_beats(duration, t, bar)}")
    text = _assemble(t, body_changes=[(bar.start, bar.end, new_text)])
    summary = f"Bar {op.bar} is now {new_text}."
    if _has_lyrics(t) and len(new_bars[0].notes) != len(bar.notes):
        summary += " It has a different number of notes, so the lyrics under it may need adjusting."
    return EditResult(text, summary)


# --------------------------------------------------------------------------------------------
# Dispatch


def apply_edit(abc_text: str, op, config: EditConfig = DEFAULT_EDIT_CONFIG) -> EditResult:
    """Apply one exact edit (an operation dataclass from :mod:`agent.understand`)."""
    if isinstance(op, Transpose):
        return transpose(abc_text, op)
    if isinstance(op, SetTempo):
        return set_tempo(abc_text, op, config)
    if isinstance(op, ChangeMode):
        return change_mode(abc_text, op)
    if isinstance(op, SetInstrument):
        return set_instrument(abc_text, op)
    if isinstance(op, SetTitle):
        return set_title(abc_text, op)
    if isinstance(op, RepeatPart):
        return repeat_part(abc_text, op)
    if isinstance(op, ChangeLength):
        return change_length(abc_text, op)
    if isinstance(op, ReplaceBar):
        return replace_bar(abc_text, op)
    raise InputError(f"not an exact edit: {type(op).__name__}")


def apply_edits(abc_text: str, ops, config: EditConfig = DEFAULT_EDIT_CONFIG) -> EditResult:
    """Apply several exact edits in order; the summary joins theirs.

    >>> tune = "X:1\\nM:2/4\\nK:G\\nGA|Bc|]\\n"
    >>> print(apply_edits(tune, [Transpose(semitones=12), SetTitle("High")]).abc, end="")
    X:1
    T:High
    M:2/4
    K:G
    ga|bc'|]
    >>> apply_edits(tune, [])
    Traceback (most recent call last):
    ...
    agent.errors.InputError: no edit to apply
    """
    ops = list(ops)
    if not ops:
        raise InputError("no edit to apply")
    summaries = []
    for op in ops:
        result = apply_edit(abc_text, op, config)
        abc_text = result.abc
        summaries.append(result.summary)
    return EditResult(abc_text, " ".join(summaries))
