"""A backing part from a tune's chord symbols, in the style's pattern, and its ABC settings.

The accompaniment's settings live in the tune's header as abc2midi's ``%%MIDI`` directives,
so every ABC tool that follows abc2midi plays the same backing from the same text:

* ``%%MIDI gchord PATTERN``: one bar of accompaniment, each character an equal share of the
  bar (a digit after a character lengthens it): ``f`` the bass (fundamental), ``c`` the chord,
  ``b`` both, ``z`` silence, ``g h i j`` single notes of the chord from the lowest up (for
  arpeggios), ``G H I J`` the same an octave lower;
* ``%%MIDI chordprog N`` / ``%%MIDI bassprog N``: General MIDI programs (0-based) of chords
  and bass; ``%%MIDI chordvol N`` / ``%%MIDI bassvol N``: their loudness (MIDI velocity);
* ``%%MIDI gchordoff`` / ``%%MIDI gchordon``: the backing silenced or played;
* ``%%accompaniment show``: the sheet music engraves the backing's staff under the melody
  (without it the sheet shows the melody with chord names above it). ABC 2.1 asks every tool
  to ignore a ``%%`` directive it does not know, so the tune stays readable everywhere.

:func:`backing_parts` turns the chords (the melody part's ``ChordSymbol`` objects as music21
reads them from the ABC) and the pattern into real parts that a player would accept: each
chord voiced close to the one before (chord tones between E3 and D5), the bass between E2 and
D3 nearest its last note, a second bass note in a bar taking the chord's fifth (the usual
oom-pah walk), measures, pickups, meter changes and repeat signs mirrored from the melody so
music21 expands repeats in both parts alike. abc2midi's own expansion voices every chord in
one fixed position; this reads better and sounds smoother.

>>> abc = 'X:1\\nT:W\\nR:waltz\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"A7"cea|"D"d3|]\\n'
>>> accompaniment_of(abc).pattern, accompaniment_of(abc).style, accompaniment_of(abc).instrument
('fcc', 'waltz', 'piano')
>>> print(set_accompaniment(abc, instrument="guitar").splitlines()[4:8])
['L:1/4', '%%MIDI chordprog 25', '%%MIDI bassprog 32', 'K:D']
>>> set_accompaniment(abc, style="tango")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agent.errors.InputError: I know no accompaniment style 'tango'; I can play ...
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction

from agent.abc_text import parse_tune
from agent.errors import InputError
from agent.harmony import Chord, ChordNameError, chord_name_of_figure, parse_chord

__all__ = ["AccompanimentSettings", "INSTRUMENTS", "PATTERNS", "accompaniment_of",
           "set_accompaniment", "pattern_for", "backing_parts", "backing_part",
           "with_accompaniment", "without_chord_symbols", "expand_pattern",
           "shows_accompaniment", "is_backing", "BACKING_ID", "show_accompaniment", "full_score", "describe_backing"]

# --------------------------------------------------------------------------------------------
# Constants

#: Instruments the backing can be played on: (chord program, bass program), General MIDI,
#: 0-based as abc2midi writes them.
INSTRUMENTS = {"piano": (0, 0), "guitar": (25, 32), "accordion": (21, 21),
               "strings": (48, 42), "organ": (19, 19), "harp": (46, 46)}

#: One bar of accompaniment per style and meter, in abc2midi's gchord letters.
PATTERNS: dict[str, dict[str, str]] = {
    "waltz": {"3/4": "fcc", "3/8": "fcc", "6/8": "fzcfzc"},
    "jig": {"6/8": "fzcfzc", "12/8": "fzcfzcfzcfzc", "9/8": "fzcfzcfzc"},
    "reel": {"4/4": "fcfc", "C": "fcfc", "2/2": "fcfc", "C|": "fcfc", "2/4": "fcfc"},
    "hornpipe": {"4/4": "fzczfzcz", "C": "fzczfzcz", "2/2": "fzczfzcz", "C|": "fzczfzcz",
                 "2/4": "fzcz"},
    "polka": {"2/4": "fcfc", "4/4": "fcfcfcfc"},
    "march": {"2/4": "fc", "6/8": "fzzczz", "4/4": "fcfc", "C": "fcfc", "2/2": "fc",
              "C|": "fc"},
    "air": {"3/4": "ghi", "4/4": "ghih", "C": "ghih", "2/4": "ghih", "6/8": "ghighi",
            "9/8": "ghighighi", "3/8": "ghi", "2/2": "ghih", "C|": "ghih"},
    "block": {"2/4": "bb", "3/4": "bbb", "4/4": "bbbb", "C": "bbbb", "2/2": "bb", "C|": "bb",
              "6/8": "bzzbzz", "9/8": "bzzbzzbzz", "12/8": "bzzbzzbzzbzz", "3/8": "bzz"},
}
#: Style names of agent.styles that take another style's pattern.
_STYLE_PATTERN = {"slip jig": "jig", "single jig": "jig", "strathspey": "reel",
                  "schottische": "hornpipe", "mazurka": "waltz", "minuet": "waltz",
                  "ballad": "air", "lullaby": "air", "song": "block", "hymn": "block",
                  "slow air": "air", "arpeggio": "air", "chords": "block"}

#: Each backing part's id starts with this (the renderer leaves those parts' instruments be).
BACKING_ID = "accompaniment"
DEFAULT_CHORD_VOLUME = 60
DEFAULT_BASS_VOLUME = 68
BASS_RANGE = (40, 51)    # E2 to E♭3: every pitch class once (a bass on E♭ had no note)
CHORD_RANGE = (52, 74)   # E3 to D5: chord tones stay between these
_DIRECTIVE = re.compile(r"^[ \t]*%%MIDI[ \t]+(gchord|chordprog|bassprog|chordvol|bassvol|"
                        r"gchordoff|gchordon)\b[ \t]*([^\r\n%]*)", re.MULTILINE)
_PATTERN_RE = re.compile(r"(?:[fcbzghijGHIJ]\d*)+")
_SHOW_RE = re.compile(r"^[ \t]*%%accompaniment[ \t]+(show|hide)\b[^\r\n]*(?:\r?\n)?",
                      re.MULTILINE)
#: How each style's backing is named in a reply.
_STYLE_WORDS = {"waltz": "a waltz (oom-pah-pah)", "jig": "a jig", "reel": "a reel",
                "hornpipe": "a hornpipe", "polka": "a polka", "march": "a march",
                "air": "an arpeggiated", "block": "a block-chord", "custom": "your own"}


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class AccompanimentSettings:
    """The backing as the tune's ``%%MIDI`` lines set it (defaults by style where absent)."""

    on: bool = True
    pattern: str = "bbbb"
    style: str = "block"
    instrument: str = "piano"
    chord_program: int = 0
    bass_program: int = 0
    chord_volume: int = DEFAULT_CHORD_VOLUME
    bass_volume: int = DEFAULT_BASS_VOLUME
    from_text: bool = field(default=False, metadata={
        "help": "whether the pattern was written in the tune (else chosen by style)"})


def _known_style(style: str) -> str:
    name = style.strip().lower()
    name = _STYLE_PATTERN.get(name, name)
    if name not in PATTERNS:
        raise InputError(f"I know no accompaniment style {style!r}; I can play "
                         f"{', '.join(PATTERNS)} (or a pattern in abc2midi's letters)")
    return name


def pattern_for(style: str, meter: str) -> str:
    """The gchord pattern of ``style`` in ``meter``; a meter the style lacks gets block chords
    on its beats.

    >>> pattern_for("waltz", "3/4"), pattern_for("reel", "2/2"), pattern_for("jig", "5/4")
    ('fcc', 'fcfc', 'bbbbb')
    """
    name = _known_style(style)
    if meter in PATTERNS[name]:
        return PATTERNS[name][meter]
    if meter in PATTERNS["block"]:
        return PATTERNS["block"][meter]
    match = re.fullmatch(r"(\d+)/(\d+)", meter)
    beats = int(match.group(1)) if match else 4
    if match and beats % 3 == 0 and beats > 3 and int(match.group(2)) >= 8:
        return "bzz" * (beats // 3)
    return "b" * beats


def _style_of(abc_tune) -> str:
    from agent.styles import style_for

    found = style_for(rhythm=abc_tune.get("R") or "", title=abc_tune.title or "",
                      meter=str(abc_tune.meter))
    name = found.name if found else "block"
    return _STYLE_PATTERN.get(name, name) if _STYLE_PATTERN.get(name, name) in PATTERNS else "block"


def accompaniment_of(abc: str) -> AccompanimentSettings:
    """The backing a tune asks for: its header's ``%%MIDI`` lines, else its style's defaults.

    >>> s = accompaniment_of("X:1\\nM:4/4\\n%%MIDI gchord fzcz\\n%%MIDI chordprog 21\\nK:G\\nGABc|")
    >>> s.pattern, s.style, s.instrument, s.on
    ('fzcz', 'custom', 'accordion', True)
    >>> accompaniment_of("X:1\\nR:jig\\nM:6/8\\n%%MIDI gchord fzcfzc\\nK:G\\nGAB cde|").style
    'jig'
    >>> accompaniment_of("X:1\\nM:4/4\\n%%MIDI gchord fqz\\nK:G\\nGABc|")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: %%MIDI gchord fqz: a pattern uses only f c b z g h i j G H I J (and lengths)
    """
    tune = parse_tune(abc)
    header = abc[:tune.body_offset]
    meter = str(tune.meter)
    style = _style_of(tune)
    settings = AccompanimentSettings(style=style, pattern=pattern_for(style, meter))
    programs_set = {}
    for name, value in ((m.group(1), m.group(2).strip()) for m in _DIRECTIVE.finditer(header)):
        if name == "gchordoff":
            settings = replace(settings, on=False)
        elif name == "gchordon":
            settings = replace(settings, on=True)
        elif name == "gchord":
            if not _PATTERN_RE.fullmatch(value):
                raise InputError(f"%%MIDI gchord {value}: a pattern uses only f c b z g h i j "
                                 "G H I J (and lengths)")
            # several styles share a pattern (a 6/8 waltz and a jig: fzcfzc): the tune's own
            # style names it when it matches, else the first style that plays it
            fits = [s for s, table in PATTERNS.items() if table.get(meter) == value]
            named = style if style in fits else (fits[0] if fits else "custom")
            settings = replace(settings, pattern=value, style=named, from_text=True)
        else:
            if not value.isdigit() or not 0 <= int(value) <= 127:
                raise InputError(f"%%MIDI {name} {value}: give a number from 0 to 127")
            programs_set[name] = int(value)
    settings = replace(
        settings,
        chord_program=programs_set.get("chordprog", settings.chord_program),
        bass_program=programs_set.get("bassprog", programs_set.get("chordprog",
                                                                   settings.bass_program)),
        chord_volume=programs_set.get("chordvol", settings.chord_volume),
        bass_volume=programs_set.get("bassvol", settings.bass_volume))
    instrument = next((name for name, (chord, _) in INSTRUMENTS.items()
                       if chord == settings.chord_program), f"program {settings.chord_program}")
    return replace(settings, instrument=instrument)


def set_accompaniment(abc: str, *, style: str | None = None, instrument: str | None = None,
                      volume: int | str | None = None, on: bool | None = None) -> str:
    """The tune with its ``%%MIDI`` accompaniment lines set; every other line stays as it was.

    ``style``: a style name (waltz, jig, reel, hornpipe, polka, march, air, block, ...) or a
    pattern in abc2midi's letters; ``instrument``: piano, guitar, accordion, strings, organ,
    harp; ``volume``: 0-127 for the chords (the bass a little louder), or "quieter" /
    "louder"; ``on``: False silences the backing (``gchordoff``), True plays it.

    >>> abc = "X:1\\nM:6/8\\nK:G\\nGAB c2d|]\\n"
    >>> print(set_accompaniment(abc, style="jig", volume="quieter"), end="")
    X:1
    M:6/8
    %%MIDI gchord fzcfzc
    %%MIDI chordvol 44
    %%MIDI bassvol 52
    K:G
    GAB c2d|]
    >>> set_accompaniment(abc, instrument="kazoo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: I cannot play the backing on 'kazoo'; I can use piano, guitar, ...
    """
    tune = parse_tune(abc)
    current = accompaniment_of(abc)
    wanted: dict[str, str | None] = {}
    if style is not None:
        if _PATTERN_RE.fullmatch(style.strip()) and style.strip().lower() not in PATTERNS:
            wanted["gchord"] = style.strip()
        else:
            wanted["gchord"] = pattern_for(style, str(tune.meter))
    if instrument is not None:
        name = instrument.strip().lower()
        if name not in INSTRUMENTS:
            raise InputError(f"I cannot play the backing on {instrument!r}; I can use "
                             f"{', '.join(INSTRUMENTS)}")
        wanted["chordprog"], wanted["bassprog"] = (str(p) for p in INSTRUMENTS[name])
    if volume is not None:
        if isinstance(volume, str):
            step = {"quieter": -16, "softer": -16, "louder": 16}.get(volume.strip().lower())
            if step is None:
                raise InputError(f"say 'quieter', 'louder' or a level from 0 to 127, not {volume!r}")
            chord = current.chord_volume + step
        else:
            chord = int(volume)
        chord = max(0, min(127, chord))
        wanted["chordvol"] = str(chord)
        wanted["bassvol"] = str(max(0, min(127, chord + 8)))
    if on is not None:
        wanted["gchordoff"] = None if on else ""
    return _write_directives(abc, tune, wanted)


def _write_directives(abc: str, tune, wanted: dict[str, str | None]) -> str:
    """Replace or add ``%%MIDI`` lines in the header (before ``K:``); ``None`` removes one."""
    header = abc[:tune.body_offset]
    lines = header.splitlines(keepends=True)
    done = set()
    out = []
    for line in lines:
        match = _DIRECTIVE.match(line)
        name = match.group(1) if match else None
        if name in ("gchordon", "gchordoff") and "gchordoff" in wanted:
            name = "gchordoff"
        if name in wanted:
            value = wanted[name]
            ending = line[len(line.rstrip("\r\n")):]
            if value is not None and name not in done:
                out.append(f"%%MIDI {name}" + (f" {value}" if value else "") + ending)
            done.add(name)
            continue
        out.append(line)
    key_index = max(i for i, line in enumerate(out) if re.match(r"\s*K:", line))
    newline = "\r\n" if out[key_index].endswith("\r\n") else "\n"
    order = ("gchordoff", "gchord", "chordprog", "bassprog", "chordvol", "bassvol")
    added = [f"%%MIDI {name}" + (f" {wanted[name]}" if wanted[name] else "") + newline
             for name in order if name in wanted and name not in done and wanted[name] is not None]
    out[key_index:key_index] = added
    return "".join(out) + abc[tune.body_offset:]


# --------------------------------------------------------------------------------------------
# The backing part


def expand_pattern(pattern: str) -> list[tuple[str, Fraction]]:
    """Each letter of a gchord pattern with its start as a share of the bar.

    >>> [(c, str(at)) for c, at in expand_pattern("f2cc")]
    [('f', '0'), ('c', '1/2'), ('c', '3/4')]
    """
    pieces = [(m.group(1), int(m.group(2) or 1))
              for m in re.finditer(r"([fcbzghijGHIJ])(\d*)", pattern)]
    total = sum(length for _, length in pieces)
    out, at = [], 0
    for letter, length in pieces:
        out.append((letter, Fraction(at, total)))
        at += length
    return out


def _bass_note(chord: Chord, previous: int | None, fifth: bool) -> int:
    pc = (chord.root + 7) % 12 if fifth else chord.lowest
    low, high = BASS_RANGE
    choices = [n for n in range(low, high + 1) if n % 12 == pc]
    target = previous if previous is not None else 45
    return min(choices, key=lambda n: (abs(n - target), n))


def _voicing(chord: Chord, previous: tuple[int, ...] | None) -> tuple[int, ...]:
    """Chord tones (no doubled bass, at most four) in close position, as near as possible to
    the previous voicing (smallest total movement), inside CHORD_RANGE."""
    tones = [(chord.root + step) % 12 for step in chord.intervals][:4]
    if len(tones) == 4 and chord.kind not in ("diminished seventh",):
        tones = [t for i, t in enumerate(tones) if i != 2]  # drop the fifth of a seventh chord
    low, high = CHORD_RANGE
    candidates = []
    for rotation in range(len(tones)):
        order = tones[rotation:] + tones[:rotation]
        for start in range(low, high + 1):
            if start % 12 != order[0]:
                continue
            notes = [start]
            for pc in order[1:]:
                nxt = notes[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                notes.append(nxt)
            if notes[-1] <= high:
                candidates.append(tuple(notes))
    reference = previous or (60, 64, 67)

    def distance(notes: tuple[int, ...]) -> float:
        size = min(len(notes), len(reference))
        return sum(abs(a - b) for a, b in zip(notes[:size], reference[:size])) + abs(
            sum(notes) / len(notes) - sum(reference) / len(reference))

    return min(candidates, key=distance)


_LETTERS = "CDEFGAB"
_NATURAL = (0, 2, 4, 5, 7, 9, 11)
# letter steps above the root of each chord tone, by semitones above the root
_LETTER_STEPS = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 4, 7: 4, 8: 4, 9: 5, 10: 6, 11: 6}


def _pitch(midi: int, chord: Chord):
    """A music21 Pitch for ``midi`` spelled as a tone of ``chord`` (Bb in Gm, not A#).

    Spelled here because music21's own choice for a bare MIDI number runs an enharmonic
    search that takes milliseconds per chord."""
    from music21 import pitch

    root_letter = _LETTERS.index(chord.name[0]) if chord.name[:1] in _LETTERS else None
    if root_letter is None:
        return pitch.Pitch(midi=midi)
    above = (midi - chord.root) % 12
    letter = (root_letter + _LETTER_STEPS[above]) % 7
    alteration = (midi % 12 - _NATURAL[letter] + 6) % 12 - 6
    if abs(alteration) > 2:
        return pitch.Pitch(midi=midi)
    octave = (midi - alteration) // 12 - 1
    made = pitch.Pitch(_LETTERS[letter] + {-2: "--", -1: "-", 0: "", 1: "#", 2: "##"}[alteration]
                       + str(octave))
    return made


def _fill_rests(measure, length: float) -> None:
    """Rests in the gaps of ``measure`` (changed in place) up to ``length`` quarters
    (music21's makeRests does the same but re-spells every chord on the way)."""
    from music21 import note

    at = 0.0
    for element in sorted(measure.notes, key=lambda e: e.offset):
        if element.offset > at + 1e-9:
            measure.insert(at, note.Rest(quarterLength=element.offset - at))
        at = max(at, element.offset + element.quarterLength)
    if length > at + 1e-9:
        measure.insert(at, note.Rest(quarterLength=length - at))


def _measures(part) -> list:
    return list(part.getElementsByClass("Measure"))


def _chords_by_measure(melody) -> list[list[tuple[float, Chord]]]:
    from music21 import harmony

    out = []
    for measure in _measures(melody):
        found = []
        for symbol in measure.recurse().getElementsByClass(harmony.ChordSymbol):
            try:
                chord = parse_chord(chord_name_of_figure(symbol.figure))  # E- is E flat
            except ChordNameError:
                continue
            found.append((float(symbol.getOffsetInHierarchy(measure)), chord))
        out.append(sorted(found, key=lambda item: item[0]))
    return out


def _empty_measure_like(measure):
    from music21 import stream

    new = stream.Measure(number=measure.number)
    new.paddingLeft = measure.paddingLeft
    new.paddingRight = measure.paddingRight
    if measure.timeSignature is not None:
        new.timeSignature = copy.deepcopy(measure.timeSignature)
    if measure.keySignature is not None:
        new.keySignature = copy.deepcopy(measure.keySignature)
    if measure.leftBarline is not None:
        new.leftBarline = copy.deepcopy(measure.leftBarline)
    if measure.rightBarline is not None:
        new.rightBarline = copy.deepcopy(measure.rightBarline)
    return new


def _realise(settings: AccompanimentSettings, melody) -> tuple[list, list]:
    """Chord part measures and bass part measures, mirroring the melody's measures."""
    from music21 import note, chord as m21chord, clef

    chords_by_measure = _chords_by_measure(melody)
    chord_measures, bass_measures = [], []
    current: Chord | None = None
    voicing: tuple[int, ...] | None = None
    bass: int | None = None
    bar_quarters = None
    letters = expand_pattern(settings.pattern)
    for index, measure in enumerate(_measures(melody)):
        chord_m, bass_m = _empty_measure_like(measure), _empty_measure_like(measure)
        if index == 0:
            chord_m.insert(0, clef.BassClef())
            bass_m.insert(0, clef.BassClef())
        if measure.timeSignature is not None:
            bar_quarters = float(measure.timeSignature.barDuration.quarterLength)
        if bar_quarters is None:
            bar_quarters = float(measure.barDuration.quarterLength)
        length = float(measure.duration.quarterLength) or bar_quarters
        padding = float(measure.paddingLeft or 0.0)
        in_bar = chords_by_measure[index]
        bass_count = 0
        bass_chord = None
        for position, (letter, share) in enumerate(letters):
            start = float(share) * bar_quarters - padding
            end_share = letters[position + 1][1] if position + 1 < len(letters) else Fraction(1)
            end = float(end_share) * bar_quarters - padding
            if end <= 0 or start >= length - 1e-9:
                continue
            start, end = max(start, 0.0), min(end, length)
            sounding = current
            for at, chord in in_bar:
                if at <= start + 1e-9:
                    sounding = chord
            if sounding is None or letter == "z":
                continue
            if sounding != bass_chord:
                bass_chord, bass_count = sounding, 0
            duration = end - start
            if letter in "fb":
                bass = _bass_note(sounding, bass, fifth=bass_count % 2 == 1 and sounding.bass is None)
                bass_count += 1
                played = note.Note(bass, quarterLength=duration)
                played.volume.velocity = settings.bass_volume
                played.pitch = _pitch(bass, sounding)
                bass_m.insert(start, played)
            if letter in "cb":
                voicing = _voicing(sounding, voicing)
                played = m21chord.Chord([_pitch(n, sounding) for n in voicing],
                                        quarterLength=duration)
                played.volume.velocity = settings.chord_volume
                chord_m.insert(start, played)
            if letter in "ghijGHIJ":
                voicing = _voicing(sounding, voicing)
                position_in_chord = "ghij".index(letter.lower())
                pitch = voicing[position_in_chord] if position_in_chord < len(voicing) \
                    else voicing[0] + 12
                if letter.isupper():
                    pitch -= 12
                played = note.Note(_pitch(pitch, sounding), quarterLength=duration)
                played.volume.velocity = settings.chord_volume
                chord_m.insert(start, played)
        for _, chord in in_bar:
            current = chord
        for new in (chord_m, bass_m):
            _fill_rests(new, length)
        chord_measures.append(chord_m)
        bass_measures.append(bass_m)
    return chord_measures, bass_measures


def _assemble(measures: list, melody, program: int, name: str):
    from music21 import instrument, spanner, stream

    part = stream.Part(id=f"{BACKING_ID}-{name.lower()}")
    part.partName = name
    chosen = instrument.Instrument()
    chosen.midiProgram = program
    chosen.instrumentName = name
    part.insert(0, chosen)
    originals = _measures(melody)
    offset = 0.0
    for original, new in zip(originals, measures):
        part.insert(original.offset, new)
    mapping = {id(old): new for old, new in zip(originals, measures)}
    for bracket in melody.spanners.getElementsByClass(spanner.RepeatBracket):
        targets = [mapping[id(m)] for m in bracket.getSpannedElements() if id(m) in mapping]
        if targets:
            copied = spanner.RepeatBracket(targets, number=bracket.number)
            part.insert(0, copied)
    return part


def backing_parts(score, abc: str, settings: AccompanimentSettings | None = None) -> list:
    """The accompaniment of ``score`` (the tune ``abc`` read by :mod:`agent.abc_reader`) as
    music21 parts: the chords, and the bass as its own part when it has its own instrument.
    Empty when the backing is off or the tune has no chords.

    >>> from agent.abc_reader import read_tune
    >>> abc = 'X:1\\nR:waltz\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"A7"cea|"D"d3|]\\n'
    >>> parts = backing_parts(read_tune(abc).score, abc)
    >>> [[p.nameWithOctave for p in n.pitches] for n in parts[0].recurse().notes][:3]
    [['D3'], ['A3', 'D4', 'F#4'], ['A3', 'D4', 'F#4']]
    """
    settings = settings or accompaniment_of(abc)
    melody = score.parts[0]
    if not melody.hasMeasures():  # music21 leaves some short tunes without bars
        melody = melody.makeMeasures()
    if not settings.on or not any(_chords_by_measure(melody)):
        return []
    chord_measures, bass_measures = _realise(settings, melody)
    if settings.bass_program == settings.chord_program:
        merged = []
        for chord_m, bass_m in zip(chord_measures, bass_measures):
            merged.append(_merge(chord_m, bass_m))
        return [_assemble(merged, melody, settings.chord_program, "Accompaniment")]
    return [_assemble(chord_measures, melody, settings.chord_program, "Accompaniment"),
            _assemble(bass_measures, melody, settings.bass_program, "Bass")]


def _merge(chord_m, bass_m):
    """One measure holding bass and chord notes (a bass note sounding with a chord joins it)."""
    from music21 import chord as m21chord, note

    merged = _empty_measure_like(chord_m)
    for element in chord_m.getElementsByClass(("Clef",)):
        merged.insert(0, copy.deepcopy(element))
    events: dict[float, list] = {}
    for source in (bass_m, chord_m):
        for element in source.notes:
            events.setdefault(float(element.offset), []).append(element)
    for offset, elements in sorted(events.items()):
        pitches = sorted({p.midi: p for e in elements for p in e.pitches}.items())
        length = min(e.quarterLength for e in elements)
        velocity = max(e.volume.velocity or 0 for e in elements)
        made = note.Note(copy.deepcopy(pitches[0][1]), quarterLength=length) \
            if len(pitches) == 1 else m21chord.Chord([copy.deepcopy(p) for _, p in pitches],
                                                     quarterLength=length)
        made.volume.velocity = velocity
        merged.insert(offset, made)
    _fill_rests(merged, float(chord_m.duration.quarterLength))
    return merged


def backing_part(score, abc: str, settings: AccompanimentSettings | None = None):
    """The whole accompaniment (bass and chords) as one music21 part, or None when there is
    none (backing off, or no chords)."""
    settings = settings or accompaniment_of(abc)
    parts = backing_parts(score, abc, replace(settings, bass_program=settings.chord_program))
    return parts[0] if parts else None


def with_accompaniment(score, abc: str, settings: AccompanimentSettings | None = None):
    """A copy of ``score`` with the accompaniment appended as its own part(s); the melody part
    keeps its chord symbols (MusicXML prints them as ``<harmony>``). For MIDI, pass the result
    through :func:`without_chord_symbols` first, so the chord names do not also sound in the
    melody's track. The score itself is not changed.

    >>> from agent.abc_reader import read_tune
    >>> abc = 'X:1\\nM:2/4\\nL:1/8\\nK:G\\n"G"GABc|"D7"dcBA|"G"G4|]\\n'
    >>> [p.partName for p in with_accompaniment(read_tune(abc).score, abc).parts][1:]
    ['Accompaniment']
    """
    full = copy.deepcopy(score)
    melody = full.parts[0]
    if not melody.hasMeasures():  # both parts in bars, so repeats and MIDI treat them alike
        measured = melody.makeMeasures()
        full.replace(melody, measured)
    for part in backing_parts(full, abc, settings):
        full.insert(0, part)
    return full


def without_chord_symbols(score):
    """A copy of ``score`` with no ChordSymbol objects (music21 writes them to MIDI as
    zero-length chords in the melody's track)."""
    from music21 import harmony

    plain = copy.deepcopy(score)
    for symbol in list(plain.recurse().getElementsByClass(harmony.ChordSymbol)):
        symbol.activeSite.remove(symbol)
    return plain


# --------------------------------------------------------------------------------------------
# Showing the backing, the score to render, and the backing in words


def shows_accompaniment(abc: str) -> bool:
    """Whether the tune asks for the backing's staff on the sheet (``%%accompaniment show``).

    >>> shows_accompaniment("X:1\\n%%accompaniment show\\nK:G\\nGABc|")
    True
    >>> shows_accompaniment("X:1\\nK:G\\n%%accompaniment show\\nGABc|")  # body lines do not count
    False
    """
    tune = parse_tune(abc)
    found = [m.group(1) for m in _SHOW_RE.finditer(abc[:tune.body_offset])]
    return bool(found) and found[-1] == "show"


def show_accompaniment(abc: str, shown: bool) -> str:
    """The tune with its ``%%accompaniment show`` line added (``shown``) or removed; every
    other line stays as it was.

    >>> print(show_accompaniment("X:1\\nM:3/4\\nK:D\\nDFA|", True), end="")
    X:1
    M:3/4
    %%accompaniment show
    K:D
    DFA|
    >>> show_accompaniment(show_accompaniment("X:1\\nK:D\\nDFA|", True), False)
    'X:1\\nK:D\\nDFA|'
    """
    tune = parse_tune(abc)
    header = _SHOW_RE.sub("", abc[:tune.body_offset])
    if shown:
        lines = header.splitlines(keepends=True)
        key_index = max(i for i, line in enumerate(lines) if re.match(r"\s*K:", line))
        newline = "\r\n" if lines[key_index].endswith("\r\n") else "\n"
        lines.insert(key_index, "%%accompaniment show" + newline)
        header = "".join(lines)
    return header + abc[tune.body_offset:]


def full_score(score, abc: str):
    """``score`` with its backing part(s) when the tune has chords and the backing is on;
    ``score`` itself (not copied) otherwise, so a tune without chords costs nothing.

    >>> from agent.abc_reader import read_tune
    >>> plain = read_tune("X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n").score
    >>> full_score(plain, "X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n") is plain
    True
    """
    from music21 import harmony

    if not abc or not any(True for _ in score.recurse().getElementsByClass(harmony.ChordSymbol)):
        return score
    if not accompaniment_of(abc).on:
        return score
    return with_accompaniment(score, abc)


def describe_backing(abc: str) -> str:
    """The backing in a musician's words, for a reply.

    >>> describe_backing("X:1\\nR:waltz\\nM:3/4\\n%%MIDI chordprog 25\\nK:D\\nDFA|")
    'a waltz (oom-pah-pah) accompaniment on guitar'
    >>> describe_backing("X:1\\nM:3/4\\n%%MIDI gchordoff\\nK:D\\nDFA|")
    'no accompaniment (it is switched off)'
    """
    settings = accompaniment_of(abc)
    if not settings.on:
        return "no accompaniment (it is switched off)"
    words = _STYLE_WORDS.get(settings.style, f"a {settings.style}")
    level = ""
    if settings.chord_volume < DEFAULT_CHORD_VOLUME - 8:
        level = ", quietly"
    elif settings.chord_volume > DEFAULT_CHORD_VOLUME + 8:
        level = ", loudly"
    return f"{words} accompaniment on {settings.instrument}{level}"


def is_backing(part) -> bool:
    """Whether a music21 part is an accompaniment part made here (not one of the tune's voices).

    >>> from music21 import stream
    >>> is_backing(stream.Part(id="accompaniment-bass")), is_backing(stream.Part(id="P1"))
    (True, False)
    """
    return str(part.id).startswith(BACKING_ID)
