"""Read ABC into a music21 score the way ABC 2.1 says, with lyrics attached.

music21's ABC reader does the parsing; this module prepares its input and corrects its output
where it departs from ABC 2.1 (each departure below was checked against what abc2midi plays
for the same text, and has a test in tests/test_abc_reader.py):

* accidentals carry to the end of the bar: the input gets a ``%abc-2.1`` version line, without
  which music21 applies the ABC 1.3 rule (``^F F`` read as F# F natural);
* inline ``[K:]``, ``[M:]`` fields, which music21 ignores, become field lines at bar lines;
  ``L:`` changes are applied to the note lengths (a field line inside a bar would make music21
  start a new measure); broken rhythms are written out as lengths, since music21 loses them
  when a slur or space stands between the notes;
* locrian keys and explicit key signatures (``K:D exp _b ^f``), which music21 gets wrong, and
  key changes, where music21 sets pitches but shows no new key signature, get the right
  :class:`music21.key.Key` / :class:`~music21.key.KeySignature` objects; clefs (``K:G bass``)
  are set on the part without moving pitches, as ABC 2.1 says (music21 moves them down);
* additive meters (``M:3/8+3/8+2/8``), on which music21 raises, are read as their sum and
  get a grouped :class:`~music21.meter.TimeSignature`;
* symbols that are not ABC are left out and reported as warnings (music21 would invent notes),
  decorations are taken out of music21's way and the common ones (fermata, trill, staccato,
  accent, bowings, mordents, dynamics) put back on their notes;
* ``V:`` voices are parsed one at a time and become the parts of the score (music21 opens a
  new part at every ``V:`` line, or merges ``[V:]`` voices into one);
* every note's pitch is then checked against :mod:`agent.abc_text`, which implements ABC 2.1
  independently; where the two differ (music21 carries accidentals into chords and over tied
  notes differently, and cannot know of a key change inside a bar), the ABC 2.1 pitch is used
  and a warning says so. On 500 corpus tunes, 2 of 34,462 notes needed it;
* ``w:`` syllables are attached as ``note.lyrics`` (number = verse, with ``syllabic``), so a
  MusicXML export carries them; title, composer and tempo (``Q:``) are set on the score.

>>> abc = "X:1\\nT:Air\\nM:3/4\\nL:1/4\\nQ:1/4=90\\nK:D\\n^c c d|[K:F]B3|]\\nw:la la la lo\\n"
>>> read = read_tune(abc)
>>> [p.nameWithOctave for p in read.score.pitches]
['C#5', 'C#5', 'D5', 'B-4']
>>> read.score.metadata.title, read.score.recurse().notes[0].lyric
('Air', 'la')
>>> read_tune("X:1\\nT:No key\\nCDE\\n")  # doctest: +ELLIPSIS
Traceback (most recent call last):
agent.errors.AbcError: line 3: the music starts before the K: (key) field; ...
"""
from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from agent.abc_lyrics import align_lyrics
from agent.abc_text import (Context, Key, Kind, Meter, Token, TuneText, parse_key, parse_meter,
                            parse_tempo, parse_tune, parse_unit_length, scan_body,
                            strip_comment, tunebook_sources)
from agent.errors import AbcError, InputError
from agent.notation import length_multiplier, length_text

__all__ = ["CleanResult", "ReadTune", "ReaderSettings", "clean_abc", "read_tune",
           "read_tunebook", "read_text_file"]

if TYPE_CHECKING:  # music21 itself is imported lazily, when a tune is read
    import music21

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderSettings:
    """Limits of the reader."""

    max_file_bytes: int = field(default=1_000_000, metadata={
        "help": "largest ABC file read_text_file accepts"})
    max_body_chars: int = field(default=200_000, metadata={
        "help": "longest tune body given to music21 (it is slow on huge inputs)"})
    max_note_wholes: int = field(default=8, metadata={
        "help": "longest note or rest accepted, in whole notes (music21 stalls on notes "
                "hundreds of whole notes long); multi-bar rests Z/X are not limited"})


@dataclass(frozen=True)
class CleanResult:
    """ABC text ready for music21, and a line for each thing that was dropped or changed."""

    text: str
    removed: list[str]


@dataclass
class ReadTune:
    """A tune read into music21.

    ``score`` is the music21 score, ``tune`` the tune's text fields, ``warnings`` what the
    user should know (symbols left out, notes music21 read differently, lyrics that do not
    fit). ``events`` pairs every note, chord, rest and grace-note token of the text with the
    music21 element(s) it became (several when music21 split a note over a bar line);
    ``corrected`` counts the notes whose pitch music21 got wrong and the reader set right.
    """

    score: "music21.stream.Score"
    tune: TuneText
    warnings: list[str] = field(default_factory=list)
    events: list[tuple[Token, list]] = field(default_factory=list)
    corrected: int = 0


# --------------------------------------------------------------------------------------------
# Files


def read_text_file(path: str | Path, settings: ReaderSettings = ReaderSettings()) -> str:
    """Read an ABC file as UTF-8 text; refuse binary files, other encodings and huge files.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("wb", suffix=".abc", delete=False) as f:
    ...     _ = f.write(b"X:1\\nK:C\\nCDE|\\n")
    >>> read_text_file(f.name)
    'X:1\\nK:C\\nCDE|\\n'
    >>> with open(f.name, "wb") as out:
    ...     _ = out.write(b"X:1\\nT:Caf\\xe9\\nK:C\\n")
    >>> read_text_file(f.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    agent.errors.InputError: ...is not UTF-8 text (byte 0xe9 at offset 9); save it as UTF-8
    >>> os.unlink(f.name)
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    size = path.stat().st_size
    if size > settings.max_file_bytes:
        raise InputError(f"{path}: the file is {size:,} bytes; ABC files up to "
                         f"{settings.max_file_bytes:,} bytes are accepted")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InputError(f"{path}: this is a binary file, not ABC text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                         f"{error.start}); save it as UTF-8") from None
    text = text.removeprefix("\ufeff")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(2, len(text) // 100):
        raise InputError(f"{path}: this looks like a binary file ({controls} control "
                         "characters), not ABC text")
    return text


# --------------------------------------------------------------------------------------------
# Cleaning: ABC that music21 reads the ABC 2.1 way

_FINGERING_RE = re.compile(r'"[0-5]"|![0-5]!')
_BAR_FOR_MUSIC21 = {".|": "|", "[|]": "|", "[|": "||", "::": ":|:", "::|": ":|", "|::": "|:"}


def clean_abc(text: str) -> CleanResult:
    """Rewrite one tune so that music21 reads it as ABC 2.1 does; keep every note.

    Dropped, because they are not notes and music21 mishandles them:

    * decorations: ``!trill!``, ``+fermata+`` and the one-letter ones (``.~HLMOPSTuv`` and
      letters defined by ``U:``): music21 reads the letters inside ``!..!`` and ``+..+`` as
      notes and ``H`` before a note can swallow the note; this includes fingerings
      (``!1!``..``!5!``) and bowings (``u``, ``v``);
    * annotations (``"^text"``, and quoted fingerings such as ``"0"``..``"5"``), which music21
      reads as chord symbols;
    * symbols that are not ABC, which music21 turns into invented notes;
    * the spacer ``y`` and ``w:``/``W:``/``s:`` lines, which music21 ignores
      (:func:`read_tune` attaches ``w:`` lyrics itself);
    * decorations and annotations inside chords.

    Changed, with the same music:

    * inline fields ``[K:..]``, ``[M:..]``, ``[Q:..]``, ``[V:..]`` become field lines (music21
      ignores inline fields); other inline fields are dropped; ``L:`` changes (inline or
      not) are applied to the note lengths after them, which are then written in the
      header's unit (a field line inside a bar makes music21 start a new measure);
    * invisible rests ``x`` become rests ``z`` (music21 drops ``x``, losing its time;
      :func:`read_tune` hides them again), and ``X``/``Z`` multi-bar rests become one ``z``
      rest per bar (music21 drops them);
    * bar lines music21 does not know (``.|``, ``[|]``) become ``|``;
    * a ``|:`` never closed is closed where the next ``|:`` opens or at the end (music21's
      repeat expansion raises on it);
    * a ``%abc-2.1`` line is put first, so that accidentals carry to the end of the bar.

    * ``K:`` values music21 misreads are written as a key with the same signature (``K:Bloc``
      as ``K:C``; explicit accidentals as the major key with as many sharps or flats, or
      ``K:C`` when the signature is not a standard one: music21 then gets those pitches wrong,
      which :func:`read_tune` corrects); clef words are dropped, because music21 moves the
      notes of a ``bass`` clef two octaves down; additive meters (``M:3/8+3/8+2/8``, on
      which music21 raises) are written as their sum (``M:8/8``).

    Other header fields are kept as written.

    >>> result = clean_abc("X:1\\nK:C\\n|:!p!HC D \\"^slow\\"E [K:G]F|G # A:|\\n")
    >>> print(result.text)
    %abc-2.1
    X:1
    K:C
    |:C D E
    K:G
    F|G  A:|
    <BLANKLINE>
    >>> result.removed  # doctest: +NORMALIZE_WHITESPACE
    ['line 3: decoration !p!', 'line 3: decoration H', 'line 3: annotation "^slow"',
     'line 3: # is not ABC']
    >>> clean_abc("X:1\\n")
    Traceback (most recent call last):
    agent.errors.AbcError: the tune has no K: (key) field; the header must end with K:
    """
    tune = parse_tune(text)
    tokens = scan_body(tune.body, tune)[0]
    body, removed = _rewrite_body(tune, tokens, voice=None, for_music21=False)
    lines = tune.text[:tune.body_offset].splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"\s*([KM]):(.*)", line)
        if not match:
            continue
        name, value = match.groups()
        new = (_music21_key(parse_key(value)) if name == "K"
               else _music21_meter(parse_meter(value)))
        if new != strip_comment(value):
            lines[index] = f"{name}:{new}"
            removed.append(f"header: {name}:{strip_comment(value)} written as {name}:{new}")
    if not lines or not lines[0].startswith("%abc-2"):
        lines.insert(0, "%abc-2.1")
    return CleanResult("\n".join(lines) + "\n" + body, removed)


def _music21_key(key: Key) -> str:
    """A K: value music21 reads with the same key signature (clef left to the caller)."""
    if key.tonic is None or key.sharps is None:
        return "C"
    if key.mode == "locrian":
        return {-7: "Cb", -6: "Gb", -5: "Db", -4: "Ab", -3: "Eb", -2: "Bb", -1: "F", 0: "C",
                1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#"}[key.sharps]
    if key.modified or key.explicit:
        return _music21_key(Key("C", "locrian", key.alterations))  # same count, plain major
    suffix = {"major": "", "minor": "m", "dorian": "dor", "phrygian": "phr", "lydian": "lyd",
              "mixolydian": "mix"}[key.mode]
    return key.tonic + suffix


def _music21_meter(meter: Meter) -> str:
    if meter.is_free:
        return "none"
    return f"{meter.numerator}/{meter.denominator}"


def _rewrite_body(tune: TuneText, tokens: list[Token], voice: str | None,
                  for_music21: bool) -> tuple[str, list[str]]:
    """The body with everything music21 mishandles dropped or rewritten (see clean_abc).

    ``voice`` keeps only that voice's tokens (None: all). ``K:``/``M:`` values are written in
    forms music21 reads. ``for_music21`` (the text :func:`read_tune` parses) also drops
    ``Q:``, ``V:`` and ``%%`` lines, and ``K:``/``M:`` changes in the middle of a bar (music21
    would start a new measure there; the reader puts key signature and pitches right after).
    Lengths are always written in the header's unit: a ``L:`` change rescales the notes after
    it instead of becoming a field line (which would also start a new measure in music21).
    """
    out: list[str] = []
    removed: list[str] = []
    unit = tune.unit_length
    scale = Fraction(1)                          # current unit length / the header's
    meter = tune.meter
    key = tune.key
    bar_has_music = False
    repeat_open = False
    last_bar_index: int | None = None
    last_timed: tuple[int, Token] | None = None  # (index in out, token) of the last note/rest
    stretch_next: Fraction | None = None         # broken rhythm waiting for its second note
    open_tuplet: int | None = None               # index in out of a tuplet with no note yet

    def field_line(name: str, value: str) -> None:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(f"{name}:{value}\n")

    for token in tokens:
        if voice is not None and token.voice != voice:
            continue
        kind = token.kind
        where = f"line {token.line}"
        if kind in (Kind.NOTE, Kind.CHORD) or (kind is Kind.REST and token.text[0] in "zx"):
            text = _clean_chord(token.text) if kind is Kind.CHORD else token.text
            if kind is Kind.REST:
                text = "z" + text[1:]
            if scale != 1:
                text = _stretched(text, scale)
            if stretch_next is not None:
                text, stretch_next = _stretched(text, stretch_next), None
            last_timed = (len(out), token)
            open_tuplet = None
            bar_has_music = True
            out.append(text)
        elif kind is Kind.BROKEN and for_music21:
            # music21 loses a broken rhythm when a slur or space stands in between: write
            # both lengths out instead (a>b is a3/2b/2)
            long, short = Fraction(2) - Fraction(1, 2 ** len(token.text)), \
                Fraction(1, 2 ** len(token.text))
            first, stretch_next = (long, short) if token.text[0] == ">" else (short, long)
            if last_timed is not None:
                out[last_timed[0]] = _stretched(out[last_timed[0]], first)
        elif kind is Kind.TUPLET:
            open_tuplet = len(out)
            out.append(token.text)
        elif kind in (Kind.BROKEN, Kind.TIE, Kind.SLUR, Kind.ENDING, Kind.CHORD_SYMBOL):
            out.append(token.text)
        elif kind is Kind.GRACE:
            grace = re.sub(r"[^\^_=A-Ga-g',/\d{}\[\]]", "", token.text)
            if open_tuplet is not None and for_music21:
                out.insert(open_tuplet, grace)  # music21 counts a grace note into a tuplet
                open_tuplet += 1
            else:
                out.append(grace)
        elif kind is Kind.REST:
            out.append(_rest_text(token, meter, tune.unit_length, removed, where))
        elif kind is Kind.BAR:
            text = _BAR_FOR_MUSIC21.get(token.text, token.text)
            opens = text.rstrip("]").endswith(":")
            closes = text.lstrip("[").startswith(":")
            if opens and repeat_open and not closes:
                text = ":" + text
                removed.append(f"{where}: closed the repeat left open before this |:")
            repeat_open = opens or (repeat_open and not closes)
            last_bar_index = len(out)
            last_timed, stretch_next, bar_has_music = None, None, False
            out.append(text)
        elif kind is Kind.SPACE:
            out.append(re.sub(r"[`$]", "", token.text))
        elif kind is Kind.LINE_BREAK:
            out.append("\n")
        elif kind in (Kind.FIELD, Kind.INLINE_FIELD):
            name = token.text[1] if kind is Kind.INLINE_FIELD else token.text[0]
            value = token.text[3:-1] if kind is Kind.INLINE_FIELD else token.text[2:]
            try:
                if name == "L":
                    unit = parse_unit_length(value)
                    scale = unit / tune.unit_length
                    continue
                if name == "M":
                    meter = parse_meter(value)
                    value = _music21_meter(meter)
                elif name == "K":
                    key = parse_key(value, previous=key)
                    value = _music21_key(key)
            except AbcError as error:
                removed.append(f"{where}: field {name}:{value.strip()} left out ({error.message})")
                continue
            if name in "KM" and for_music21 and bar_has_music:
                continue  # set right after parsing (see _fix_signatures and _fix_notes)
            if name in "KM" or (name in "QV" and not for_music21):
                field_line(name, value.strip())
                if name in "KM" and for_music21:
                    # music21 applies a K:/M: line only when another field line follows before
                    # the notes (without one, a 4/4 bar after M:3/4 is cut into 3 + 1 beats).
                    # An L: line in the header's unit is that guard and changes nothing else.
                    field_line("L", str(tune.unit_length))
            elif kind is Kind.INLINE_FIELD:
                removed.append(f"{where}: inline field {token.text}")
        elif kind is Kind.DECORATION:
            removed.append(f"{where}: decoration {token.text}")
        elif kind is Kind.ANNOTATION:
            removed.append(f"{where}: annotation {token.text}")
        elif kind is Kind.UNKNOWN:
            removed.append(f"{where}: {token.text} is not ABC")
        elif kind is Kind.OVERLAY:
            out.append("&")
        elif kind is Kind.COMMENT and token.text.startswith("%%") and not for_music21:
            out.append(token.text)
        # lyrics, comments, continuations and spacers are left out
    if repeat_open:
        if last_bar_index is not None and not "".join(out[last_bar_index + 1:]).strip():
            out[last_bar_index] = ":|"
        else:
            out.append(" :|")
        removed.append("end of tune: closed the repeat left open by |:")
    body = re.sub(r"[ \t]+\n", "\n", "".join(out))
    body = re.sub(r"\n+", "\n", body).lstrip("\n")
    return body if body.endswith("\n") else body + "\n", removed


_LENGTH_SUFFIX_RE = re.compile(r"(\d*)(/*)(\d*)$")


def _stretched(text: str, factor: Fraction) -> str:
    """A note, rest or chord with its length multiplied: ``_stretched("A2", 3/2)`` is A3."""
    match = _LENGTH_SUFFIX_RE.search(text)
    multiplier = length_multiplier(*match.groups())
    if not multiplier:
        return text  # a length like A/0 is reported by validation; nothing to scale
    return text[:match.start()] + length_text(multiplier * factor)


def _clean_chord(text: str) -> str:
    """A chord without the decorations or annotations written inside it."""
    inner_end = text.rindex("]")
    inner = re.sub(r'"[^"]*"|![^!]*!|\+[^+]*\+', "", text[1:inner_end])
    inner = re.sub(r"[^\^_=A-Ga-g',/\d\- ]", "", inner)
    return "[" + inner + "]" + text[inner_end + 1:]


def _rest_text(token: Token, meter: Meter, unit: Fraction, removed: list[str],
               where: str) -> str:
    """``x`` becomes ``z``; ``Z4``/``X4`` become four one-bar ``z`` rests."""
    first = token.text[0]
    if first in "zx":
        return "z" + token.text[1:]
    bars = int(token.text[1:] or 1)
    if meter.is_free:
        removed.append(f"{where}: multi-bar rest {token.text} left out (free meter)")
        return ""
    one_bar = "z" + length_text(meter.bar_length / unit)
    return " | ".join([one_bar] * bars)


# --------------------------------------------------------------------------------------------
# Reading


def read_tunebook(text: str, settings: ReaderSettings = ReaderSettings()) -> list[ReadTune]:
    """Every tune of a tunebook, read with :func:`read_tune`.

    A tune that cannot be read raises AbcError naming its ``X:`` number and file line.

    >>> book = "X:1\\nT:One\\nK:C\\nCDEC|\\n\\nX:2\\nT:Two\\nK:G\\nGABG|\\n"
    >>> [r.score.metadata.title for r in read_tunebook(book)]
    ['One', 'Two']
    >>> read_tunebook("X:1\\nT:Bad\\nM:9\\nK:C\\nC|\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    agent.errors.AbcError: line 3: tune X:1: cannot read the meter '9' (expected e.g. 3/4, ...)
    """
    results = []
    for source in tunebook_sources(text):
        try:
            tune = parse_tune(source.text, first_line=source.first_line,
                              inherited=source.header)
            results.append(_read(tune, settings))
        except AbcError as error:
            number = source.text.split("\n", 1)[0].strip()
            raise AbcError(f"tune {number}: {error.message}", line=error.line,
                           bar=error.bar) from None
    return results


def read_tune(text: str, settings: ReaderSettings = ReaderSettings()) -> ReadTune:
    """Read one tune into a music21 score (ABC 2.1 semantics, lyrics attached).

    ``text`` may start with file-header lines; a text holding several tunes is an error
    (use :func:`read_tunebook`).
    """
    sources = tunebook_sources(text)
    if not sources:
        raise AbcError("the tune is empty")
    if len(sources) > 1:
        raise AbcError(f"the text holds {len(sources)} tunes; read it as a tunebook",
                       line=sources[1].first_line)
    source = sources[0]
    tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
    return _read(tune, settings)


def _read(tune: TuneText, settings: ReaderSettings = ReaderSettings()) -> ReadTune:
    from music21 import metadata, stream

    if len(tune.body) > settings.max_body_chars:
        raise AbcError(f"the tune body has {len(tune.body):,} characters; at most "
                       f"{settings.max_body_chars:,} are read", line=tune.body_line)
    tokens, _ = scan_body(tune.body, tune)
    if not any(t.is_timed for t in tokens):
        raise AbcError("the tune has no notes", line=tune.body_line)
    for token in tokens:
        if (token.duration is not None and token.duration > settings.max_note_wholes
                and token.text[0] not in "ZX"):
            raise AbcError(f"{token.text} lasts {token.duration} whole notes; notes longer "
                           f"than {settings.max_note_wholes} whole notes are not read",
                           line=token.line)
    warnings_out: list[str] = []
    for token in tokens:
        if token.kind is Kind.UNKNOWN:
            warnings_out.append(f"line {token.line}: {token.text!r} is not ABC and was left out")
    voices: list[str] = []
    for token in tokens:
        if token.is_timed and token.voice not in voices:
            voices.append(token.voice)
    score = stream.Score()
    elements_of: dict[int, list] = {}
    events: list[tuple[Token, list]] = []
    corrected = 0
    for voice in voices:
        try:
            part, pairs, fixed = _read_voice(tune, tokens, voice, warnings_out)
        except AbcError:
            raise
        except Exception as error:  # a bug here must not reach the user as a traceback
            log.exception("reading voice %r failed", voice)
            raise AbcError(f"internal error while reading the tune ({type(error).__name__}: "
                           f"{error}); please report it", line=tune.body_line) from error
        elements_of.update({id(token): elements for token, elements in pairs})
        events.extend(pairs)
        corrected += fixed
        if voice:
            part.id = voice
            part.partName = voice
        score.insert(0, part)
    score.metadata = metadata.Metadata()
    score.metadata.title = tune.title or ""
    if tune.get("C"):
        score.metadata.composer = tune.get("C")
    _attach_lyrics(tokens, elements_of, warnings_out)
    order = {id(token): index for index, token in enumerate(tokens)}
    events.sort(key=lambda pair: order[id(pair[0])])
    return ReadTune(score, tune, warnings_out, events, corrected)


def _music21_text(tune: TuneText, tokens: list[Token], voice: str) -> str:
    header = ["%abc-2.1", "X:1", f"M:{_music21_meter(tune.meter)}",
              f"L:{tune.unit_length.numerator}/{tune.unit_length.denominator}"]
    if tune.propagation != "pitch":
        header.append(f"%%propagate-accidentals {tune.propagation}")
    header.append(f"K:{_music21_key(tune.key)}")
    body, _ = _rewrite_body(tune, tokens, voice=voice, for_music21=True)
    return "\n".join(header) + "\n" + body


def _parse_with_music21(abc: str, line: int) -> "music21.stream.Score":
    from music21 import converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return converter.parse(abc, format="abc", forceSource=True)
        except Exception as error:  # music21 raises many kinds; report them all the same way
            raise AbcError(f"music21 could not read the tune: {type(error).__name__}: "
                           f"{error}".strip(), line=line) from None


def _read_voice(tune: TuneText, tokens: list[Token], voice: str, warnings_out: list[str]):
    """Parse one voice with music21 and correct it; returns the part and the token pairs."""
    from music21 import stream

    abc = _music21_text(tune, tokens, voice)
    parsed = _parse_with_music21(abc, tune.body_line)
    parts = list(parsed.parts) or [parsed]
    part = parts[0]
    if len(parts) > 1:
        for extra in parts[1:]:  # should not happen for one voice; keep every note anyway
            for element in extra.recurse().notesAndRests:
                part.append(element)
    if not isinstance(part, stream.Part):
        wrapped = stream.Part()
        for element in part.elements:
            wrapped.append(element)
        part = wrapped
    voice_tokens = [t for t in tokens if t.voice == voice]
    pairs = _align(part, voice_tokens)
    if pairs is None:
        warnings_out.append(
            f"voice {voice or 1}: music21's notes could not be matched to the text one for "
            "one; pitches are music21's own and lyrics were not attached")
        return part, [], 0
    corrected = _fix_notes(pairs, warnings_out)
    _fix_signatures(part, pairs, voice_tokens, tune, voice)
    _add_decorations(pairs, voice_tokens)
    return part, pairs, corrected


def _expected_events(token: Token) -> list[str]:
    """The music21 events one token should become: 'note', 'chord', 'rest', 'grace'."""
    if token.kind is Kind.NOTE:
        return ["note"]
    if token.kind is Kind.CHORD:
        return ["chord"]
    if token.kind is Kind.GRACE:
        return ["grace"] * len(token.pitches)
    if token.kind is Kind.REST:
        if token.text[0] in "ZX":
            return ["rest"] * int(token.text[1:] or 1) if token.duration is not None else []
        return ["rest"]
    return []


def _event_kind(element) -> str | None:
    if "Harmony" in element.classes:
        return None
    if element.duration.isGrace:
        return "grace"
    if element.isRest:
        return "rest"
    if element.isChord:
        return "chord"
    return "note"


def _align(part, tokens: list[Token]):
    """Pair each timed token with the music21 element(s) it became, or None if impossible.

    music21 re-bars an overfull bar and splits a note that crosses its new bar line into
    tied notes; such pieces are gathered back onto the one token they came from.
    """
    events = [e for e in part.recurse().notesAndRests if _event_kind(e) is not None]
    pairs = []
    index = 0
    for token in tokens:
        expected = _expected_events(token)
        if not expected:
            continue
        elements = []
        for kind in expected:
            if index >= len(events):
                return None
            element = events[index]
            actual = _event_kind(element)
            if actual != kind and not (kind == "chord" and actual == "note"):
                return None
            elements.append(element)
            index += 1
            if kind != "grace" and len(expected) == 1 and token.duration is not None:
                index = _gather_pieces(events, index, element, float(token.duration * 4),
                                       elements)
        pairs.append((token, elements))
    if index != len(events):
        return None
    return pairs


def _gather_pieces(events: list, index: int, first, wanted: float, elements: list) -> int:
    """Append the tied continuations of ``first`` until they make up ``wanted`` quarters."""
    got = float(first.quarterLength)
    previous = first
    while got < wanted - 1e-6 and index < len(events):
        piece = events[index]
        if _event_kind(piece) != _event_kind(first):
            break
        if not first.isRest:
            tied = previous.tie is not None and previous.tie.type in ("start", "continue")
            if not tied or [p.midi for p in piece.pitches] != [p.midi for p in first.pitches]:
                break
        elements.append(piece)
        got += float(piece.quarterLength)
        previous = piece
        index += 1
    return index


def _fix_notes(pairs, warnings_out: list[str]) -> int:
    """Give every note its ABC 2.1 pitch (from agent.abc_text); hide ``x`` rests again."""
    from music21 import pitch as m21pitch

    changed: list[int] = []
    for token, elements in pairs:
        if token.kind is Kind.NOTE or token.kind is Kind.CHORD:
            wrong = [e for e in elements if sorted(p.midi for p in e.pitches)
                     != sorted(token.pitches)]
            if wrong:
                changed.append(token.line)
            for element in wrong:
                if element.isChord:
                    element.pitches = [m21pitch.Pitch(name) for name in token.names]
                else:
                    element.pitch = m21pitch.Pitch(token.names[0])
        elif token.kind is Kind.GRACE:
            for element, midi, name in zip(elements, token.pitches, token.names):
                if not element.isChord and element.pitch.midi != midi:
                    changed.append(token.line)  # each grace note counts as a note
                    element.pitch = m21pitch.Pitch(name)
        elif token.kind is Kind.REST and token.text.startswith("x"):
            for element in elements:
                element.style.hideObjectOnPrint = True
    if changed:
        lines = sorted(set(changed))
        shown = ", ".join(map(str, lines[:5])) + (" ..." if len(lines) > 5 else "")
        warnings_out.append(f"music21 read {len(changed)} note(s) differently from ABC 2.1 "
                            f"(lines {shown}); the ABC 2.1 pitches were used")
    return len(changed)


def _key_object(key: Key):
    from music21 import key as m21key

    if key.tonic is not None and not key.modified and not key.explicit:
        return m21key.Key(key.tonic.replace("b", "-"), key.mode)
    if key.sharps is not None:
        return m21key.KeySignature(key.sharps)
    signature = m21key.KeySignature(0)
    signature.alteredPitches = [letter + ("#" if alt > 0 else "-") * abs(alt)
                                for letter, alt in key.signature.items()]
    return signature


def _clef_object(name: str | None):
    from music21 import clef

    table = {"treble": clef.TrebleClef, "bass": clef.BassClef, "alto": clef.AltoClef,
             "tenor": clef.TenorClef, "treble8": clef.Treble8vbClef,
             "treble-8": clef.Treble8vbClef, "perc": clef.PercussionClef}
    factory = table.get(name or "")
    return factory() if factory else None


_CLEF_WORDS = ("treble", "bass", "alto", "tenor", "treble8", "treble-8", "perc")


def _voice_clef(tune: TuneText, voice: str) -> str | None:
    """The clef a ``V:`` line names for ``voice`` (``clef=bass`` or a bare ``bass``), if any.

    >>> tune = parse_tune("X:1\\nK:D\\nV:1\\nDFAF|\\nV:2 clef=bass\\nD,4|\\n")
    >>> _voice_clef(tune, "1"), _voice_clef(tune, "2")
    (None, 'bass')
    """
    fields = list(tune.get_all("V")) + [line[2:] for line in tune.body.splitlines()
                                         if line.startswith("V:")]
    for value in fields:
        words = strip_comment(value).split()
        if words and words[0] == voice:
            for word in (w.lower() for w in words[1:]):
                name = word[5:] if word.startswith("clef=") else word
                if name in _CLEF_WORDS:
                    return name
    return None


def _fix_signatures(part, pairs, tokens: list[Token], tune: TuneText, voice: str = "") -> None:
    """Put the right key signatures, clefs, time signatures and tempo marks on the part. A tune
    or voice that names no clef gets the treble clef, ABC's default (music21 would otherwise
    guess one from the notes' average height: a song in a middle voice went to the bass clef)."""
    from music21 import key as m21key
    from music21 import meter as m21meter
    from music21 import tempo as m21tempo

    stale = list(part.recurse().getElementsByClass(
        (m21key.KeySignature, m21meter.TimeSignature, m21tempo.MetronomeMark)))
    part.remove(stale, recurse=True)
    first_element = {id(token): elements[0] for token, elements in pairs}
    changes: list[tuple[Token | None, object]] = []
    context = Context.from_tune(tune)
    changes.append((None, _key_object(context.key)))
    clef = _clef_object(context.key.clef or _voice_clef(tune, voice) or "treble")
    if clef is not None:
        changes.append((None, clef))
    if not tune.meter.is_free:
        changes.append((None, _time_signature(tune.meter)))
    if tune.tempo is not None and tune.tempo.bpm:
        changes.append((None, _metronome(tune.tempo)))
    pending: list[object] = []
    key = context.key
    for token in tokens:
        if token.kind in (Kind.FIELD, Kind.INLINE_FIELD):
            name = token.text[1] if token.kind is Kind.INLINE_FIELD else token.text[0]
            value = token.text[3:-1] if token.kind is Kind.INLINE_FIELD else token.text[2:]
            try:
                if name == "K":
                    key = parse_key(value, previous=key)
                    pending.append(_key_object(key))
                    new_clef = _clef_object(key.clef)
                    if new_clef is not None:
                        pending.append(new_clef)
                elif name == "M":
                    found = parse_meter(value)
                    if not found.is_free:
                        pending.append(_time_signature(found))
                elif name == "Q":
                    found = parse_tempo(value, tune.unit_length)
                    if found.bpm:
                        pending.append(_metronome(found))
            except AbcError:
                continue
        elif id(token) in first_element and pending:
            for item in pending:
                changes.append((token, item))
            pending = []
    for token, item in changes:
        if token is None:
            anchor = part.getElementsByClass("Measure").first() or part
            offset = 0.0
        else:
            element = first_element[id(token)]
            anchor = element.activeSite
            offset = element.offset
        if "Clef" in item.classes:
            for old in anchor.getElementsByClass("Clef"):
                if old.offset == offset:
                    anchor.remove(old)
        anchor.insert(offset, item)


def _time_signature(meter: Meter):
    from music21 import meter as m21meter

    if meter.groups:
        return m21meter.TimeSignature("+".join(f"{g}/{meter.denominator}"
                                               for g in meter.groups))
    if meter.symbol == "C":
        signature = m21meter.TimeSignature("4/4")
        signature.symbol = "common"
        return signature
    if meter.symbol == "C|":
        signature = m21meter.TimeSignature("2/2")
        signature.symbol = "cut"
        return signature
    return m21meter.TimeSignature(f"{meter.numerator}/{meter.denominator}")


def _metronome(tempo):
    from music21 import duration, tempo as m21tempo

    beat = duration.Duration(float(tempo.beat * 4))
    return m21tempo.MetronomeMark(text=tempo.text, number=tempo.bpm, referent=beat)


_DECORATIONS = {
    ".": "staccato", "staccato": "staccato", "H": "fermata", "fermata": "fermata",
    "T": "trill", "trill": "trill", "L": "accent", "accent": "accent", ">": "accent",
    "emphasis": "accent", "u": "upbow", "upbow": "upbow", "v": "downbow",
    "downbow": "downbow", "M": "mordent", "lowermordent": "mordent", "mordent": "mordent",
    "P": "invertedmordent", "uppermordent": "invertedmordent", "pralltriller":
    "invertedmordent", "tenuto": "tenuto",
}
_DYNAMICS = frozenset({"pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "ffff", "sfz"})


def _add_decorations(pairs, tokens: list[Token]) -> None:
    """Put the common decorations back on the notes they precede (fermata, trill, ...)."""
    from music21 import articulations, dynamics, expressions

    factories = {
        "staccato": articulations.Staccato, "accent": articulations.Accent,
        "upbow": articulations.UpBow, "downbow": articulations.DownBow,
        "tenuto": articulations.Tenuto, "fermata": expressions.Fermata,
        "trill": expressions.Trill, "mordent": expressions.Mordent,
        "invertedmordent": expressions.InvertedMordent,
    }
    element_of = {id(token): elements for token, elements in pairs}
    waiting: list[str] = []
    for token in tokens:
        if token.kind is Kind.DECORATION:
            waiting.append(token.text.strip("!+"))
        elif token.kind is Kind.BAR:
            waiting = []
        elif id(token) in element_of and token.kind is not Kind.GRACE:
            element = element_of[id(token)][0]
            for name in waiting:
                kind = _DECORATIONS.get(name)
                if kind in ("staccato", "accent", "upbow", "downbow", "tenuto"):
                    if not element.isRest:
                        element.articulations.append(factories[kind]())
                elif kind is not None:
                    if not element.isRest or kind == "fermata":
                        element.expressions.append(factories[kind]())
                elif name in _DYNAMICS and element.activeSite is not None:
                    element.activeSite.insert(element.offset, dynamics.Dynamic(name))
            waiting = []


def _attach_lyrics(tokens: list[Token], elements_of: dict[int, list],
                   warnings_out: list[str]) -> None:
    """Attach every verse's syllables to the notes (``note.lyrics``, number = verse)."""
    from music21 import note

    lyrics = align_lyrics(tokens)
    if not lyrics.has_lyrics:
        return
    missing = 0
    for verse_number, verse in enumerate(lyrics.verses, start=1):
        for token, syllable in zip(lyrics.notes, verse):
            if syllable is None:
                continue
            elements = elements_of.get(id(token))
            if not elements:
                missing += 1
                continue
            elements[0].lyrics.append(note.Lyric(text=syllable.text, number=verse_number,
                                                 syllabic=syllable.syllabic))
    for issue in lyrics.issues:
        warnings_out.append(issue.message)
    if missing:
        warnings_out.append(f"{missing} syllable(s) could not be attached to notes")
