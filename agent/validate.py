"""Check ABC text and explain every problem in words a musician understands.

:func:`validate_abc` returns a :class:`Report` of :class:`Diagnostic` objects, each naming the
line and bar. Errors make a tune invalid; warnings do not. The same report serves people (the
``tunesmith validate`` command prints :meth:`Report.format_text`), the repair loop (which feeds
diagnostics back to the model) and the benchmark (``to_dict()`` is JSON-ready).

Checks, with their codes:

* ``missing-x``, ``text-before-tune`` (warnings): no ``X:`` line; prose before the tune;
* ``parse`` (error): the tune cannot be read (no ``K:``, bad ``M:``/``L:``/``K:`` value, ...);
  ``music21`` (error): music21 cannot read what we could;
* ``empty`` / ``no-notes`` (error): nothing to play;
* ``bar-length`` (error): a bar longer or shorter than the meter, counted as written in the
  text; a short first bar (pickup) is fine, and so is a short bar that ends a section when it
  makes a full bar with a pickup; ``missing-bar-line`` (error): the same, caused by a line that
  ends without a bar line; ``note-length`` (error): a note of length zero or longer than
  8 whole notes (music21 is not consulted then: it stalls on such notes);
* ``field`` (error): an inline or body field that cannot be read; ``unknown-field`` (warning);
  ``missing-title``, ``no-meter`` (warnings); ``key`` (warning): words in ``K:`` not understood;
  ``tempo`` (warning): a ``Q:`` that cannot be read;
* ``repeat`` (error): a ``|:`` never closed; ``ending`` (warning): numbered endings out of order;
* ``lyrics``: a ``w:`` line with more syllables than notes (error) or fewer (warning);
* ``range`` (error): notes outside what the instrument (``%%MIDI program``) can play,
  MIDI 28..108 when none is set;
* ``unknown-symbol`` (error): text in the music that is not ABC;
* ``blank-line`` (error): a blank line inside the tune, which ends it in ABC: music after it
  would be lost; ``tie`` (warning): a tie between different pitches; ``overlay`` (warning).

>>> report = validate_abc("X:1\\nT:Waltz\\nM:3/4\\nL:1/4\\nK:G\\nG A B|c2 B A|G3|]\\n")
>>> report.valid, [str(d) for d in report.diagnostics]
(False, ['line 6, bar 2: error bar-length: bar 2 has 4 beats; the meter 3/4 has 3 (1 too many)'])
>>> validate_abc("X:1\\nT:Waltz\\nM:3/4\\nL:1/4\\nK:G\\nD|G A B|c2 B|A2|]\\n").valid
True
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

from agent.abc_lyrics import align_lyrics
from agent.abc_text import (KNOWN_FIELDS, Bar, Kind, Meter, Token, TuneText, parse_key,
                            parse_meter, parse_tempo, parse_tune, parse_unit_length, scan_body,
                            split_bars, tunebook_sources)
from agent.errors import AbcError
from agent.notation import midi_program

__all__ = ["Diagnostic", "Report", "ValidateSettings", "validate_abc", "validate_tune",
           "describe_length"]


@dataclass(frozen=True)
class ValidateSettings:
    """What validation checks and how strictly."""

    music21: bool = field(default=True, metadata={
        "help": "also read the tune with music21 (agent.abc_reader) and report its failures"})
    lowest: int = field(default=28, metadata={
        "help": "lowest MIDI note accepted when the tune names no instrument"})
    highest: int = field(default=108, metadata={
        "help": "highest MIDI note accepted when the tune names no instrument"})


#: Longest note or rest (in whole notes) that validation accepts; the reader refuses longer.
LONGEST_NOTE = 8

#: Playable MIDI ranges of General MIDI programs (0-based), used when a tune sets
#: ``%%MIDI program N``; programs not listed use the default range.
INSTRUMENT_RANGES: dict[range, tuple[int, int, str]] = {
    range(0, 8): (21, 108, "piano"),
    range(16, 24): (36, 96, "organ or accordion"),
    range(24, 32): (40, 88, "guitar"),
    range(32, 40): (28, 67, "bass"),
    range(40, 41): (55, 103, "violin"),
    range(41, 42): (48, 91, "viola"),
    range(42, 43): (36, 84, "cello"),
    range(43, 44): (28, 67, "double bass"),
    range(56, 57): (54, 86, "trumpet"),
    range(57, 58): (40, 77, "trombone"),
    range(64, 68): (49, 81, "saxophone"),
    range(68, 69): (58, 91, "oboe"),
    range(70, 71): (34, 75, "bassoon"),
    range(71, 72): (50, 94, "clarinet"),
    range(72, 73): (74, 108, "piccolo"),
    range(73, 74): (60, 96, "flute"),
    range(74, 75): (60, 86, "recorder"),
    range(75, 80): (60, 96, "pipe or whistle"),
    range(109, 110): (57, 81, "bagpipe"),
}


@dataclass(frozen=True)
class Diagnostic:
    """One problem: ``severity`` 'error' or 'warning', a short ``code``, a ``message`` for a
    musician, and where it is: ``line`` (1-based, in the text given), ``bar`` (1-based count of
    bars of that voice as written, a pickup being bar 1: what the repair loop counts),
    ``score_bar`` (the number the engraved score gives that bar, a pickup being bar 0: what a
    musician reads, and what the message says), ``tune`` (the ``X:`` number in a tunebook)."""

    severity: str
    code: str
    message: str
    line: int | None = None
    bar: int | None = None
    tune: str | None = None
    score_bar: int | None = None

    @property
    def shown_bar(self) -> int | None:
        """The bar number to show: the score's when known, else the written count.

        >>> Diagnostic("error", "bar-length", "…", bar=3, score_bar=2).shown_bar
        2
        """
        return self.score_bar if self.score_bar is not None else self.bar

    def to_dict(self) -> dict:
        """A JSON-ready dict.

        >>> data = Diagnostic("warning", "no-meter", "no M: field", line=2).to_dict()
        >>> data["severity"], data["code"], data["line"], data["bar"]
        ('warning', 'no-meter', 2, None)
        """
        return asdict(self)

    def __str__(self) -> str:
        where = ", ".join(part for part in (
            f"tune X:{self.tune}" if self.tune else "", f"line {self.line}" if self.line else "",
            f"bar {self.shown_bar}" if self.shown_bar is not None else "") if part)
        return f"{where + ': ' if where else ''}{self.severity} {self.code}: {self.message}"


@dataclass(frozen=True)
class Report:
    """Result of :func:`validate_abc`: ``valid`` is True when there is no error."""

    valid: bool
    diagnostics: tuple[Diagnostic, ...]
    tunes: int = 0
    bars: int = 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def to_dict(self) -> dict:
        """JSON-ready: validity, counts and every diagnostic."""
        return {"valid": self.valid, "tunes": self.tunes, "bars": self.bars,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "diagnostics": [d.to_dict() for d in self.diagnostics]}

    def format_text(self) -> str:
        """A short human-readable summary, one diagnostic per line.

        >>> print(validate_abc("X:1\\nT:t\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GABc|]\\n").format_text())
        valid: 1 tune, 2 bars, no problems
        >>> print(validate_abc("X:1\\nT:t\\nK:C\\nC#D|\\n", ValidateSettings(music21=False)
        ...                    ).format_text())  # doctest: +NORMALIZE_WHITESPACE
        invalid: 1 tune, 1 bar, 1 error, 1 warning
        line 4: error unknown-symbol: '#' is not ABC (column 2)
        line 3: warning no-meter: there is no M: field, so bar lengths cannot be checked
        """
        counts = [f"{self.tunes} tune{'s' * (self.tunes != 1)}",
                  f"{self.bars} bar{'s' * (self.bars != 1)}"]
        problems = []
        if self.errors:
            problems.append(f"{len(self.errors)} error{'s' * (len(self.errors) != 1)}")
        if self.warnings:
            problems.append(f"{len(self.warnings)} warning{'s' * (len(self.warnings) != 1)}")
        head = f"{'valid' if self.valid else 'invalid'}: " + ", ".join(
            counts + (problems or ["no problems"]))
        ordered = self.errors + self.warnings
        return "\n".join([head] + [str(d) for d in ordered])


# --------------------------------------------------------------------------------------------


def validate_abc(text: str, settings: ValidateSettings = ValidateSettings()) -> Report:
    """Check an ABC text (one tune or a tunebook) and explain every problem found.

    >>> validate_abc("X:1\\nT:No key\\nM:4/4\\nCDEF|\\n").errors[0].message
    'the music starts before the K: (key) field; the header must end with K:'
    >>> validate_abc("").errors[0].code
    'empty'
    """
    sources = tunebook_sources(text)
    if not sources:
        diagnostic = Diagnostic("error", "empty", "there is no ABC here: the text is empty")
        return Report(False, (diagnostic,))
    diagnostics: list[Diagnostic] = []
    first_x = re.search(r"^X:", text, re.MULTILINE)
    if first_x:
        stray = [number for number, line in enumerate(text[:first_x.start()].splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("%")
                 and not re.match(r"[A-Za-z+]:", line.strip())]
        if stray:
            diagnostics.append(Diagnostic("warning", "text-before-tune", "the text before the "
                                          "first X: line is not ABC and was ignored", stray[0]))
    bars = 0
    several = len(sources) > 1
    for source in sources:
        number = None
        match = re.match(r"X:\s*(\S+)", source.text)
        if several and match:
            number = match.group(1)
        found, counted = _check_source(source, settings)
        bars += counted
        diagnostics.extend(replace(d, tune=number) for d in found)
    valid = not any(d.severity == "error" for d in diagnostics)
    return Report(valid, tuple(diagnostics), len(sources), bars)


def validate_tune(tune: TuneText, settings: ValidateSettings = ValidateSettings()
                  ) -> list[Diagnostic]:
    """Diagnostics for one parsed tune (what :func:`validate_abc` runs on each tune).

    >>> tune = parse_tune("X:1\\nT:t\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GAB|]\\n")
    >>> [d.code for d in validate_tune(tune, ValidateSettings(music21=False))]
    ['bar-length']
    """
    return _check_tune(tune, settings)[0]


def _check_source(source, settings: ValidateSettings) -> tuple[list[Diagnostic], int]:
    try:
        tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
    except AbcError as error:
        return [Diagnostic("error", "parse", error.message, error.line, error.bar)], 0
    return _check_tune(tune, settings)


def _check_tune(tune: TuneText, settings: ValidateSettings) -> tuple[list[Diagnostic], int]:
    out: list[Diagnostic] = []
    out.extend(_check_header(tune))
    tokens, _ = scan_body(tune.body, tune)
    timed = [t for t in tokens if t.is_timed]
    if not timed:
        out.append(Diagnostic("error", "no-notes", "the tune has no notes or rests",
                              tune.body_line))
        return out, 0
    out.extend(_check_tokens(tokens))
    bars = split_bars(tokens, tune)
    out.extend(_check_bars(bars, tokens))
    out.extend(_check_repeats(bars))
    out.extend(_check_range(tune, tokens, settings, bars))
    out.extend(_check_lyrics(tokens))
    out.extend(_check_trailing(tune))
    if settings.music21 and not any(d.severity == "error" and d.code in ("parse", "note-length")
                                    for d in out):
        out.extend(_check_music21(tune))
    return out, len(bars)


# --------------------------------------------------------------------------------------------
# Header and fields


def _check_header(tune: TuneText) -> list[Diagnostic]:
    out = []
    if tune.get("X") is None:
        out.append(Diagnostic("warning", "missing-x", "the tune does not start with an X: "
                              "(reference number) line, which ABC programs look for",
                              tune.fields[0].line if tune.fields else None))
    for fld in tune.fields:
        if fld.name not in KNOWN_FIELDS:
            out.append(Diagnostic("warning", "unknown-field",
                                  f"{fld.name}: is not an ABC field", fld.line))
    if not tune.get("T"):
        out.append(Diagnostic("warning", "missing-title", "the tune has no T: (title) field",
                              tune.fields[0].line if tune.fields else None))
    if tune.get("M") is None:
        out.append(Diagnostic("warning", "no-meter", "there is no M: field, so bar lengths "
                              "cannot be checked", _line_of(tune, "K")))
    key_line = _line_of(tune, "K")
    if tune.key.extras:
        out.append(Diagnostic("warning", "key", f"K:{tune.key.text} has words that are not "
                              f"understood: {' '.join(tune.key.extras)}", key_line))
    if tune.get("Q") is not None:
        try:
            parse_tempo(tune.get("Q"), tune.unit_length)
        except AbcError as error:
            out.append(Diagnostic("warning", "tempo", error.message, _line_of(tune, "Q")))
    return out


def _line_of(tune: TuneText, name: str) -> int | None:
    for fld in tune.fields:
        if fld.name == name:
            return fld.line
    return None


_FIELD_PARSERS = {"K": parse_key, "M": parse_meter, "L": parse_unit_length}


def _check_tokens(tokens: list[Token]) -> list[Diagnostic]:
    out = []
    overlay_reported = False
    long_notes: list[Token] = []
    for index, token in enumerate(tokens):
        kind = token.kind
        if kind is Kind.UNKNOWN:
            out.append(Diagnostic("error", "unknown-symbol", f"{token.text!r} is not ABC "
                                  f"(column {token.col})", token.line))
        elif kind in (Kind.FIELD, Kind.INLINE_FIELD):
            name = token.text[1] if kind is Kind.INLINE_FIELD else token.text[0]
            value = token.text[3:-1] if kind is Kind.INLINE_FIELD else token.text[2:]
            parser = _FIELD_PARSERS.get(name)
            try:
                if parser:
                    parser(value)
                elif name == "Q":
                    parse_tempo(value)
            except AbcError as error:
                out.append(Diagnostic("error", "field", f"{name}:{value.strip()}: "
                                      f"{error.message}", token.line))
            if name == "K" and parser:
                try:
                    extras = parse_key(value).extras
                except AbcError:
                    extras = ()
                if extras:
                    out.append(Diagnostic("warning", "key", f"K:{value.strip()} has words that "
                                          f"are not understood: {' '.join(extras)}", token.line))
        elif kind is Kind.NOTE or kind is Kind.CHORD or kind is Kind.REST:
            if token.duration == 0:
                out.append(Diagnostic("error", "note-length", f"{token.text} has no length",
                                      token.line))
            elif (token.duration is not None and token.duration > LONGEST_NOTE
                  and token.text[0] not in "ZX"):
                long_notes.append(token)
        elif kind is Kind.TIE:
            out.extend(_check_tie(tokens, index))
        elif kind is Kind.OVERLAY and not overlay_reported:
            overlay_reported = True
            out.append(Diagnostic("warning", "overlay", "voice overlays (&) are played one "
                                  "after the other by music21, not together", token.line))
    if long_notes:
        first = long_notes[0]
        more = f" (and {len(long_notes) - 1} more notes as long)" if len(long_notes) > 1 else ""
        out.append(Diagnostic("error", "note-length", f"{first.text} lasts {first.duration} "
                              f"whole notes; at most {LONGEST_NOTE} are allowed{more}",
                              first.line))
    return out


def _check_tie(tokens: list[Token], index: int) -> list[Diagnostic]:
    """A tie must join two notes of the same pitch."""
    before = next((t for t in reversed(tokens[:index]) if t.is_timed or t.kind is Kind.BAR),
                  None)
    after = next((t for t in tokens[index + 1:] if t.is_timed), None)
    if before is None or before.kind is not Kind.NOTE or after is None:
        return []
    if after.kind is Kind.NOTE and after.pitches != before.pitches:
        return [Diagnostic("warning", "tie", f"the tie after {before.text} joins "
                           f"{before.names[0]} to {after.names[0]}, a different pitch",
                           before.line)]
    return []


# --------------------------------------------------------------------------------------------
# Bars


def describe_length(length: Fraction, meter: Meter) -> str:
    """A length in words, counted in the meter's beats where that is exact.

    >>> describe_length(Fraction(5, 4), parse_meter("3/4"))
    '5 beats'
    >>> describe_length(Fraction(7, 8), parse_meter("6/8"))
    '7 eighths'
    >>> describe_length(Fraction(5, 8), parse_meter("2/4"))
    '2½ beats'
    """
    name, counts = _in_units([length], meter)
    return f"{counts[0]} {_plural(name, counts[0])}"


_UNITS = ((Fraction(1, 8), "eighth"), (Fraction(1, 16), "sixteenth"),
          (Fraction(1, 32), "thirty-second"), (Fraction(1, 64), "sixty-fourth"))


def _in_units(lengths: list[Fraction], meter: Meter) -> tuple[str, list[str]]:
    """One unit all ``lengths`` can be counted in (beats if possible), and the counts."""
    beat = meter.beat_length or Fraction(1, 4)
    if not meter.is_compound and not meter.groups:
        counts = [length / beat for length in lengths]
        if all(c.denominator in (1, 2) for c in counts):
            return "beat", [_count_text(c) for c in counts]
    for unit, name in _UNITS:
        counts = [length / unit for length in lengths]
        if all(c.denominator == 1 for c in counts):
            return name, [str(c.numerator) for c in counts]
    return "whole note", [str(length) for length in lengths]


def _count_text(count: Fraction) -> str:
    if count.denominator == 1:
        return str(count.numerator)
    whole = count.numerator // 2
    return f"{whole}½" if whole else "½"


def _plural(name: str, count: str) -> str:
    return name if count in ("1", "½") else name + "s"


def _check_bars(bars: list[Bar], tokens: list[Token]) -> list[Diagnostic]:
    out = []
    by_voice: dict[str, list[Bar]] = {}
    for bar in bars:
        by_voice.setdefault(bar.voice, []).append(bar)
    several = len(by_voice) > 1
    for voice, voice_bars in by_voice.items():
        pickups = _pickups(voice_bars)
        first = first_score_number(voice_bars)
        for number, bar in enumerate(voice_bars, start=1):
            if bar.expected is None or bar.duration == bar.expected:
                continue
            problem = _bar_problem(bar, number, voice_bars, pickups, shown=number - 1 + first)
            if problem is None:
                continue
            code, message = problem
            if several:
                message = f"voice {voice}: {message}"
            out.append(Diagnostic("error", code, message, bar.line, number,
                                  score_bar=number - 1 + first))
    return out


def first_score_number(bars: list[Bar]) -> int:
    """The number the engraved score gives the first of ``bars`` (one voice): 0 when it is
    short (a pickup; music21 and verovio number an anacrusis 0 and count on from the next
    bar), else 1. Musicians read bar numbers off the score, so messages give these.

    >>> from agent.abc_text import parse_tune, split_bars, tokenize_body
    >>> tune = parse_tune("X:1\\nM:2/4\\nL:1/8\\nK:G\\nD|GABc|d4|]\\n")
    >>> first_score_number(split_bars(tokenize_body(tune.body, tune), tune))
    0
    """
    first = bars[0] if bars else None
    return 0 if first is not None and first.expected is not None \
        and first.duration < first.expected else 1


def short_bars_allowed(bars: list[Bar]) -> set[int]:
    """Numbers (1-based) of the bars of one voice that are short on purpose: pickups and the
    section-closing bars that complete them. An edit keeps their lengths.

    >>> from agent.abc_text import parse_tune, split_bars, tokenize_body
    >>> tune = parse_tune("X:1\\nM:2/4\\nL:1/8\\nK:G\\n|:D|GABc|dBA:|\\n|:d|gfed|cBA:|\\n")
    >>> sorted(short_bars_allowed(split_bars(tokenize_body(tune.body, tune), tune)))
    [1, 3, 4, 6]
    """
    pickups = _pickups(bars)
    return {number for number, bar in enumerate(bars, start=1)
            if bar.expected is not None and 0 < bar.duration < bar.expected
            and _bar_problem(bar, number, bars, pickups) is None}


def _starts_section(bar: Bar) -> bool:
    opening = bar.opening.text if bar.opening is not None else None
    return opening is None or ":" in opening or "||" in opening or "]" in opening \
        or "[" in opening


def _ends_section(bar: Bar, following: Bar | None) -> bool:
    closing = bar.bar_line.text if bar.bar_line is not None else None
    if closing is None or following is None:
        return True
    return ":" in closing or "||" in closing or "]" in closing or "[" in closing \
        or following.ending is not None and following.ending != bar.ending


def _pickups(bars: list[Bar]) -> set[Fraction]:
    """Lengths of the short bars that open the tune or a section (anacruses)."""
    found = set()
    for index, bar in enumerate(bars):
        following = bars[index + 1] if index + 1 < len(bars) else None
        if bar.expected is None or bar.duration >= bar.expected or bar.ending is not None:
            continue
        if (index == 0 or _starts_section(bar)) and not (following is None and index > 0):
            found.add(bar.duration)
    return found


def _bar_problem(bar: Bar, number: int, bars: list[Bar], pickups: set[Fraction],
                 shown: int | None = None) -> tuple[str, str] | None:
    """What is wrong with the length of written bar ``number`` (from 1), or None; the message
    calls it ``shown`` (the score's number, :func:`first_score_number`)."""
    index = number - 1
    shown = number if shown is None else shown
    following = bars[index + 1] if index + 1 < len(bars) else None
    meter = bar.meter
    unit, (have, full, delta) = _in_units(
        [bar.duration, bar.expected, abs(bar.expected - bar.duration)], meter)
    have = f"{have} {_plural(unit, have)}"
    if bar.duration > bar.expected:
        if bar.opening is None and bar.bar_line is None and bar.duration > 2 * bar.expected:
            return "bar-length", (f"the tune has no bar lines: all {have} are one bar; the "
                                  f"meter {meter} has {full} a bar")
        split = _missing_bar_line(bar)
        if split is not None:
            return "missing-bar-line", (
                f"bar {shown} has {have}; the meter {meter} has {full}: line {split} ends "
                "without a bar line, so two bars run together")
        return "bar-length", (f"bar {shown} has {have}; the meter {meter} has {full} "
                              f"({delta} too many)")
    if bar.duration in pickups and (index == 0 or _starts_section(bar)) and bar.ending is None:
        return None  # a pickup
    if _ends_section(bar, following) and any(bar.duration + p == bar.expected for p in pickups):
        return None  # closes a section begun with a pickup
    if index == 0 and bar.duration < bar.expected:
        return None  # a pickup whose closing bar is checked on its own
    where = "the last bar" if following is None else f"bar {shown}"
    return "bar-length", (f"{where} has {have}; the meter {meter} has {full} "
                          f"({delta} missing)")


def _missing_bar_line(bar: Bar) -> int | None:
    """The line that ends inside an overfull bar exactly where a full bar is complete."""
    total = Fraction(0)
    for token in bar.tokens:
        if token.kind is Kind.LINE_BREAK:
            if total == bar.meter.bar_length:
                return token.line
        elif token.duration is not None and token.kind is not Kind.GRACE:
            total += token.duration
    return None


def _check_repeats(bars: list[Bar]) -> list[Diagnostic]:
    """``|:`` must be closed by ``:|``; numbered endings must come in order."""
    out = []
    by_voice: dict[str, list[Bar]] = {}
    for bar in bars:
        by_voice.setdefault(bar.voice, []).append(bar)
    for voice_bars in by_voice.values():
        open_at: tuple[int, int, int] | None = None
        previous_label: str | None = None
        last_number = 0
        first = first_score_number(voice_bars)
        for number, bar in enumerate(voice_bars, start=1):
            opening = bar.opening.text if bar.opening is not None else ""
            if bar.starts_repeat:
                if open_at is not None and not opening.lstrip("[").startswith(":"):
                    out.append(_unclosed(open_at))
                open_at = (bar.opening.line, number, number - 1 + first)
                last_number = 0
            if bar.ending and bar.ending != previous_label:
                numbers = [int(n) for n in re.findall(r"\d+", bar.ending)]
                if numbers[0] not in (1, last_number + 1):
                    out.append(Diagnostic("warning", "ending", f"ending [{bar.ending} follows "
                                          f"ending {last_number or 'none'}", bar.line, number,
                                          score_bar=number - 1 + first))
                last_number = numbers[-1]
            previous_label = bar.ending
            if bar.ends_repeat:
                open_at = None
        if open_at is not None:
            out.append(_unclosed(open_at))
    return out


def _unclosed(where: tuple[int, int, int]) -> Diagnostic:
    line, bar, shown = where
    return Diagnostic("error", "repeat", f"the repeat that starts at bar {shown} (|:) is never "
                      "closed with :|", line, bar, score_bar=shown)


# --------------------------------------------------------------------------------------------
# Range, lyrics, trailing text, music21


def _program(tune: TuneText, tokens: list[Token]) -> int | None:
    texts = [text for text, _ in tune.directives]
    texts += [t.text for t in tokens if t.kind is Kind.COMMENT]
    return midi_program("\n".join(texts))


def instrument_range(program: int) -> tuple[int, int, str] | None:
    """The lowest and highest MIDI note and the name of General MIDI ``program``'s instrument
    (:data:`INSTRUMENT_RANGES`), or None for a program not listed.

    >>> instrument_range(73), instrument_range(120)
    ((60, 96, 'flute'), None)
    """
    return next((limits for programs, limits in INSTRUMENT_RANGES.items() if program in programs), None)


def _bar_of(token: Token, bars: list[Bar]) -> tuple[int | None, int | None]:
    """The bar number in its voice (1-based) and the engraved score's number of the bar that
    holds ``token``, so a repair can rewrite that bar alone; (None, None) outside every bar."""
    by_voice: dict[str, list[Bar]] = {}
    for bar in bars:
        by_voice.setdefault(bar.voice, []).append(bar)
    for voice_bars in by_voice.values():
        for number, bar in enumerate(voice_bars, start=1):
            if bar.start <= token.start <= bar.end:
                return number, number - 1 + first_score_number(voice_bars)
    return None, None


def _check_range(tune: TuneText, tokens: list[Token], settings: ValidateSettings,
                 bars: list[Bar] = ()) -> list[Diagnostic]:
    program = _program(tune, tokens)
    low, high, name = settings.lowest, settings.highest, None
    listed = instrument_range(program) if program is not None else None
    if listed:
        low, high, name = listed
    out = []
    for token in tokens:
        if token.kind is not Kind.NOTE and token.kind is not Kind.CHORD:
            continue
        for midi, pitch_name in zip(token.pitches, token.names):
            if low <= midi <= high:
                continue
            where = "too low" if midi < low else "too high"
            playable = f"a {name}" if name else "the default range"
            number, shown = _bar_of(token, bars)
            out.append(Diagnostic("error", "range", f"{token.text} ({pitch_name}, MIDI {midi}) "
                                  f"is {where} for {playable} (MIDI {low}..{high})",
                                  token.line, number, score_bar=shown))
            break
        if len(out) >= 10:
            break
    return out


def _check_lyrics(tokens: list[Token]) -> list[Diagnostic]:
    lyrics = align_lyrics(tokens)
    return [Diagnostic("error" if issue.kind == "too-many" else "warning", "lyrics",
                       issue.message, issue.line) for issue in lyrics.issues]


def _check_trailing(tune: TuneText) -> list[Diagnostic]:
    """Music after a blank line is not part of the tune in ABC."""
    if not tune.trailing.strip():
        return []
    tokens, _ = scan_body(tune.trailing, tune)
    notes = sum(1 for t in tokens if t.is_note)
    bar_lines = sum(1 for t in tokens if t.kind is Kind.BAR)
    if notes >= 3 and bar_lines >= 1:
        return [Diagnostic("error", "blank-line", f"line {tune.trailing_line - 1} is blank, "
                           "which ends the tune in ABC: the music after it "
                           f"({notes} notes) would be lost; remove the blank line",
                           tune.trailing_line - 1)]
    return []


def _check_music21(tune: TuneText) -> list[Diagnostic]:
    from agent.abc_reader import _read

    try:
        read = _read(tune)
    except AbcError as error:
        return [Diagnostic("error", "music21", error.message, error.line, error.bar)]
    return [Diagnostic("warning", "music21", message, tune.body_line)
            for message in read.warnings if "could not be matched" in message]
