"""Turn a score into the files a person downloads: ABC, MIDI, MusicXML, SVG, PDF and WAV.

Each format has its own function, data in and data out, so the app, the command line, the tests
and the benchmark all drive the same code:

- :func:`to_midi` plays the music21 score: repeats expanded (or, where music21 cannot expand
  them, the music as written plus a warning), grace notes as short notes, the tempo from its
  ``MetronomeMark``. The instrument is the ABC's ``%%MIDI program N`` line (see
  :func:`midi_program`): it lives in the tune's text, so it survives saving and editing.
- :func:`to_musicxml` is music21's exporter: title, key, meter, tempo and lyrics under their notes.
- :func:`to_svg_pages` engraves that MusicXML with verovio, one SVG per page. Verovio's own ABC
  import mishandles ``w:`` lyric lines, so it reads the MusicXML instead.
- :func:`to_pdf` turns whole-page SVGs into one PDF page each (cairosvg, joined with pypdf).
- :func:`to_wav` synthesises the MIDI offline with tinysoundfont and a General MIDI SoundFont.

:func:`render_all` writes them as ``score.abc``, ``score.mid``, ``score.musicxml``,
``score.svg``, ``score.pdf`` and ``score.wav``. ``score.svg`` holds every page stacked top to
bottom in one document, each page cut to the height of its music (for the screen), with the
fonts verovio measured its text with embedded; ``score.pdf`` keeps whole A4 pages (for print).
Everything is rendered in memory first, then each file is written to a temporary file in the
output folder and renamed: a file that cannot be rendered leaves the folder as it was, and no
file is ever seen half-written.

Heavy libraries (verovio, cairosvg, tinysoundfont, numpy and music21's exporters) are imported
inside the functions that need them.
"""
from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import hashlib
import importlib.util
import io
import logging
import os
import re
import tempfile
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from agent.accompaniment import full_score, is_backing, shows_accompaniment
from agent.errors import RenderError
from agent.notation import midi_directives, midi_program_number

__all__ = [
    "FORMATS",
    "FILE_NAMES",
    "MidiRender",
    "RenderConfig",
    "RenderedFiles",
    "default_soundfont",
    "midi_program",
    "midi_seconds",
    "render_all",
    "render_score_text",
    "stack_svg_pages",
    "to_midi",
    "to_musicxml",
    "to_pdf",
    "to_png",
    "to_svg_pages",
    "to_wav",
    "warm_up",
    "warm_up_in_background",
]

log = logging.getLogger(__name__)

FORMATS = ("abc", "midi", "musicxml", "svg", "pdf", "wav")
FILE_NAMES = {
    "abc": "score.abc",
    "midi": "score.mid",
    "musicxml": "score.musicxml",
    "svg": "score.svg",
    "pdf": "score.pdf",
    "wav": "score.wav",
}

# A grace note sounds for a 32nd note (or less, see _sound_grace_notes), stolen from its main note.
GRACE_QUARTERS = 0.125
# A <style> element that only embeds fonts (verovio adds its SMuFL text font, and Liberation Serif).
_CSS_FONT_FACE = re.compile(r"<style[^>]*>(?:\s*@font-face\s*\{[^}]*\})+\s*</style>")
# Verovio pages are laid out in tenths of a millimetre, so 254 of its pixels make one inch.
_VEROVIO_UNITS_PER_INCH = 254


def default_soundfont() -> Path:
    """The General MIDI SoundFont shipped inside the ``pretty_midi`` package (TimGM6mb.sf2).

    >>> default_soundfont().name
    'TimGM6mb.sf2'
    """
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise RenderError("pretty_midi is not installed, so there is no default SoundFont")
    return Path(spec.submodule_search_locations[0]) / "TimGM6mb.sf2"


@dataclass(frozen=True)
class RenderConfig:
    """Settings for every output format; the defaults are what the app and the CLI use."""

    formats: tuple[str, ...] = field(
        default=FORMATS,
        metadata={"help": f"formats render_all writes, any of {', '.join(FORMATS)}"},
    )
    sample_rate: int = field(default=44100, metadata={"help": "WAV sample rate in Hz"})
    channels: int = field(default=2, metadata={"help": "WAV channels: 1 (mono) or 2 (stereo)"})
    soundfont: Path | None = field(
        default=None,
        metadata={"help": "SoundFont (.sf2) for the WAV; None means the TimGM6mb.sf2 in pretty_midi"},
    )
    release_seconds: float = field(
        default=1.0, metadata={"help": "silence kept after the music so the last note can ring out"}
    )
    peak_dbfs: float | None = field(
        default=-1.0,
        metadata={
            "help": "scale the WAV so its loudest sample sits here (dB full scale); None keeps "
            "the synthesiser's level"
        },
    )
    max_seconds: float = field(
        default=900.0, metadata={"help": "refuse to synthesise music longer than this (memory guard)"}
    )
    page_width: int = field(default=2100, metadata={"help": "page width in tenths of a mm (A4: 2100)"})
    page_height: int = field(default=2970, metadata={"help": "page height in tenths of a mm (A4: 2970)"})
    page_margin: int = field(default=80, metadata={"help": "margin on every side, tenths of a mm"})
    scale: int = field(default=100, metadata={"help": "size of the music on the page, percent"})
    breaks: str = field(
        default="auto", metadata={"help": "verovio line breaking: auto, encoded, line, smart, none"}
    )
    music_font: str = field(default="Leipzig", metadata={"help": "verovio's SMuFL music font"})
    embed_text_font: bool = field(
        default=True,
        metadata={
            "help": "embed verovio's Liberation Serif (Times metrics) in the SVG, so lyrics keep the "
            "spacing verovio measured on machines without Times; about 400 kB, once in score.svg"
        },
    )
    crop_screen_pages: bool = field(
        default=True,
        metadata={"help": "cut each screen SVG page to its music's height (the PDF keeps whole pages)"},
    )
    verovio_options: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={"help": "extra verovio options, applied last (e.g. {'spacingLinear': 0.3})"},
    )
    parallel: bool = field(
        default=False,
        metadata={
            "help": "draw the PDF in a second thread while the MIDI, WAV and screen SVG are made "
            "(cairo and the synthesiser work outside Python's lock). Off: on 2 busy cores it "
            "gained nothing (all six files 1.10 s against 1.02 s one thread at a time, load 9); "
            "measure on your machine with scripts/bench_render.py --parallel"
        },
    )


class RenderedFiles(dict):
    """What :func:`render_all` wrote: format name -> path, plus ``warnings`` (things the person
    should know, e.g. repeats played as written), ``seconds`` (time spent per format) and
    ``problems`` (format -> why it could not be made, when rendering went on without it).

    >>> files = RenderedFiles({"abc": Path("out/score.abc")}, warnings=["a warning"])
    >>> files["abc"].name, files.warnings, files.problems
    ('score.abc', ('a warning',), {})
    """

    def __init__(
        self,
        paths: dict[str, Path],
        warnings: Iterable[str] = (),
        seconds: dict[str, float] | None = None,
        problems: dict[str, str] | None = None,
    ):
        super().__init__(paths)
        self.warnings = tuple(warnings)
        self.seconds = dict(seconds or {})
        self.problems = dict(problems or {})


@dataclass(frozen=True)
class MidiRender:
    """A Standard MIDI File in memory and what was noticed while playing the score."""

    data: bytes
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- ABC directives


def midi_program(abc_text: str) -> int | None:
    """The General MIDI program (0-127) named by the first ``%%MIDI program`` line, or None.

    This directive is how a tune names its instrument: it lives in the ABC text, so it survives
    saving and editing. It applies to every voice of the tune.

    >>> midi_program("X:1\\nT:Air\\n%%MIDI program 73\\nK:C\\nCDEF|")
    73
    >>> midi_program("X:1\\n%%MIDI program 1 40\\nK:C\\nC") # channel 1, program 40
    40
    >>> midi_program("X:1\\nK:C\\nCDEF|") is None
    True
    >>> midi_program("%%MIDI program 200")
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: %%MIDI program 200: the program must be a number from 0 to 127
    """
    programs = (midi_program_number(args) for name, args in midi_directives(abc_text)
                if name == "program")
    value = next((number for number in programs if number is not None), None)
    if value is None:
        return None
    if not value.isdigit() or not 0 <= int(value) <= 127:
        raise RenderError(f"%%MIDI program {value}: the program must be a number from 0 to 127")
    return int(value)


# --------------------------------------------------------------------------- MIDI


def _check_score(score: Any) -> None:
    from music21 import stream

    if isinstance(score, stream.Opus):
        raise RenderError(f"the ABC holds {len(score.scores)} tunes; render one tune at a time")
    if not isinstance(score, (stream.Score, stream.Part)):
        raise RenderError(f"expected a music21 Score or Part to render, got {type(score).__name__}")
    if not any(_is_played(n) for n in score.recurse().notes):
        raise RenderError("the score has no notes to render")


def _is_played(element: Any) -> bool:
    """True for notes and chords that sound (chord symbols are annotations, grace notes have no
    duration of their own)."""
    from music21 import harmony

    return not isinstance(element, harmony.ChordSymbol) and element.duration.quarterLength > 0


def _has_measures(score: Any) -> bool:
    from music21 import stream

    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    return any(part.hasMeasures() for part in parts)


def _strip_repeats(score: Any) -> Any:
    """A copy of ``score`` with every repeat barline, repeat bracket and repeat expression
    (D.C., segno, coda...) made plain, so it plays straight through as written."""
    import copy

    from music21 import bar, repeat, spanner

    plain = copy.deepcopy(score)
    for measure in plain.recurse().getElementsByClass("Measure"):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("regular")
    for element in list(plain.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        element.activeSite.remove(element)
    return plain


def _playable(score: Any) -> tuple[Any, list[str]]:
    """The score as it should sound: a copy with repeats expanded. Where music21 cannot expand
    them (e.g. a ``|:`` that is never closed) the copy plays as written and a warning says so."""
    import copy

    from music21.exceptions21 import Music21Exception

    if not _has_measures(score):
        return copy.deepcopy(score), []
    try:
        return score.expandRepeats(), []
    except Music21Exception as err:
        warning = (
            f"the repeats could not be expanded ({err}); "
            "MIDI and audio play the music once, as written"
        )
        return _strip_repeats(score), [warning]


def _sound_grace_notes(score: Any, grace_quarters: float) -> None:
    """Give grace notes (changed in place) a real duration taken from the start of the note they
    ornament, at most half of it. music21 writes a grace note as a note-on without a matching
    note-off, which leaves it ringing until the next note of that pitch, so a grace note with
    no note after it in its bar is dropped."""
    from music21 import duration, note

    for container in list(score.recurse(streamsOnly=True, includeSelf=True)):
        events = sorted(
            container.getElementsByClass(note.GeneralNote), key=lambda e: (e.offset, not e.duration.isGrace)
        )
        pending: list[Any] = []
        for event in events:
            if event.duration.isGrace:
                pending.append(event)
                continue
            if pending:
                if isinstance(event, note.Rest):
                    for grace in pending:
                        container.remove(grace)
                else:
                    each = min(grace_quarters, event.quarterLength / 2 / len(pending))
                    start = event.offset
                    for index, grace in enumerate(pending):
                        grace.duration = duration.Duration(each)
                        container.setElementOffset(grace, start + index * each)
                    container.setElementOffset(event, start + len(pending) * each)
                    event.quarterLength -= len(pending) * each
                pending = []
        for grace in pending:
            container.remove(grace)


def _drop_chord_symbols(score: Any) -> None:
    """Take chord symbols out of ``score`` (changed in place): music21 would play each one as a
    chord in the melody's track; the accompaniment part plays the chords instead."""
    from music21 import harmony

    for symbol in list(score.recurse().getElementsByClass(harmony.ChordSymbol)):
        symbol.activeSite.remove(symbol)


def _unshare_elements(score: Any) -> None:
    """Give each place an element appears in ``score`` (changed in place) its own object.
    music21's ABC import can put one TimeSignature object in two bars (around a mid-tune
    pickup), and its MIDI writer then fails moving it into the conductor track twice."""
    import copy

    seen: set[int] = set()
    for container in list(score.recurse(streamsOnly=True, includeSelf=True)):
        for element in list(container.elements):
            if id(element) in seen and not element.isStream:
                container.replace(element, copy.deepcopy(element))
            seen.add(id(element))


def _set_program(score: Any, program: int) -> None:
    """Make the tune's own parts (changed in place) play General MIDI ``program``; an
    accompaniment part keeps its own instrument."""
    from music21 import instrument, stream

    parts = [part for part in score.parts if not is_backing(part)] \
        if isinstance(score, stream.Score) else [score]
    for part in parts:
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        chosen = instrument.Instrument()
        chosen.midiProgram = program
        part.insert(0, chosen)


def _pad_to_end(midi_data: bytes, end_quarters: float) -> bytes:
    """Move each track's end-of-track marker to the end of the music, so a closing rest is kept
    (music21 ends the file at the last note-off)."""
    import mido

    midi = mido.MidiFile(file=io.BytesIO(midi_data))
    end_tick = round(end_quarters * midi.ticks_per_beat)
    for track in midi.tracks:
        elapsed = sum(message.time for message in track)
        last = track[-1] if track else None
        if last is not None and last.type == "end_of_track" and elapsed < end_tick:
            track[-1] = last.copy(time=last.time + end_tick - elapsed)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def to_midi(score: Any, abc_text: str = "") -> MidiRender:
    """A Standard MIDI File that plays ``score``: repeats expanded, tempo and pitches as written,
    the instrument from ``abc_text``'s ``%%MIDI program`` line (default: music21's piano).
    ``score`` is not changed.

    >>> from music21 import converter
    >>> abc = "X:1\\nM:4/4\\nL:1/4\\nQ:1/4=120\\nK:C\\n|:CDEF|GABc:|cBAG|FEDC|]"
    >>> midi = to_midi(converter.parse(abc, format="abc"), abc)
    >>> midi.data[:4], midi.warnings, midi_seconds(midi.data)
    (b'MThd', (), 12.0)
    >>> to_midi("CDEF")
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: expected a music21 Score or Part to render, got str
    """
    from music21.midi import translate

    _check_score(score)
    program = midi_program(abc_text)
    playable, warnings = _playable(score)
    _drop_chord_symbols(playable)
    _unshare_elements(playable)
    _sound_grace_notes(playable, GRACE_QUARTERS)
    if program is not None:
        _set_program(playable, program)
    try:
        midi_file = translate.music21ObjectToMidiFile(playable, addEndDelay=False)
        data = midi_file.writestr()
    except Exception as err:  # music21 raises many kinds; the caller needs one
        raise RenderError(f"music21 could not write the MIDI file: {err}") from err
    return MidiRender(_pad_to_end(data, float(playable.highestTime)), tuple(warnings))


def midi_seconds(midi_data: bytes) -> float:
    """How long a MIDI file plays, in seconds, tempo changes included.

    >>> midi_seconds(b"not midi")
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: not a readable MIDI file: MThd not found. Probably not a MIDI file
    """
    import mido

    try:
        return float(mido.MidiFile(file=io.BytesIO(midi_data)).length)
    except EOFError as err:
        raise RenderError("not a readable MIDI file: it ends too early") from err
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise RenderError(f"not a readable MIDI file: {err}") from err


# --------------------------------------------------------------------------- MusicXML


def to_musicxml(score: Any) -> bytes:
    """MusicXML (UTF-8) for ``score`` from music21's exporter: title, key, meter, tempo and
    every note's lyrics. ``score`` is not changed.

    >>> from music21 import converter
    >>> xml = to_musicxml(converter.parse("X:1\\nT:Air\\nK:G\\nL:1/4\\nGABc|dcBA|", format="abc"))
    >>> b"<work-title>Air</work-title>" in xml, b"<fifths>1</fifths>" in xml
    (True, True)
    >>> b"Music21" in to_musicxml(converter.parse("X:1\\nK:G\\nL:1/4\\nGABc|dcBA|", format="abc"))
    False
    >>> to_musicxml(None)
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: expected a music21 Score or Part to render, got NoneType
    """
    from music21.musicxml import m21ToXml

    _check_score(score)
    try:
        xml = m21ToXml.GeneralObjectExporter(score).parse()
    except Exception as err:  # music21 raises many kinds; the caller needs one
        raise RenderError(f"music21 could not write MusicXML: {err}") from err
    return _without_placeholders(xml, score.metadata)


def _first_part_only(xml: bytes) -> bytes:
    """The MusicXML with only its first part (the melody, chord names included): what the
    sheet engraves when the tune does not ask to show its accompaniment.

    >>> x = (b'<part-list><score-part id="P1"/><score-part id="P2"><a/></score-part></part-list>'
    ...      b'<part id="P1"><m/></part><part id="P2"><m/></part>')
    >>> _first_part_only(x)
    b'<part-list><score-part id="P1"/></part-list><part id="P1"><m/></part>'
    """
    first = re.search(rb'<score-part id="([^"]+)"', xml)
    if first is None:
        return xml
    keep = re.escape(first.group(1))
    xml = re.sub(rb'\s*<score-part id="(?!' + keep + rb'")[^"]+".*?</score-part>', b"", xml,
                 flags=re.S)
    xml = re.sub(rb'\s*<part-group\b[^>]*/>', b"", xml)
    return re.sub(rb'\s*<part id="(?!' + keep + rb'")[^"]+">.*?</part>', b"", xml, flags=re.S)


def _without_placeholders(xml: bytes, metadata: Any) -> bytes:
    """Drop the title "Music21 Fragment" and composer "Music21" that music21 writes for a
    score without them, so an untitled tune is engraved untitled."""
    if not (metadata and metadata.title):
        xml = re.sub(rb"\s*<movement-title>Music21 Fragment</movement-title>", b"", xml, count=1)
    if not (metadata and metadata.composer):
        xml = re.sub(rb'\s*<creator type="composer">Music21</creator>', b"", xml, count=1)
    return xml


# --------------------------------------------------------------------------- SVG


def _verovio_options(config: RenderConfig, whole_pages: bool) -> dict[str, Any]:
    options = {
        "inputFrom": "musicxml",
        "pageWidth": config.page_width,
        "pageHeight": config.page_height,
        "pageMarginTop": config.page_margin,
        "pageMarginBottom": config.page_margin,
        "pageMarginLeft": config.page_margin,
        "pageMarginRight": config.page_margin,
        "scale": config.scale,
        "scaleToPageSize": True,  # the page keeps its size; `scale` sizes the music on it
        "adjustPageHeight": config.crop_screen_pages and not whole_pages,
        "breaks": config.breaks,
        "font": config.music_font,
        # The PDF's cairo finds Liberation Serif under "Times" (see _register_fonts_for_cairo).
        "fontTextLiberation": config.embed_text_font and not whole_pages,
        "footer": "none",
        "svgViewBox": True,
        "svgFormatRaw": True,  # no indentation: a smaller file, read faster
    }
    options.update(config.verovio_options)
    return options


def _with_size(svg: str) -> str:
    """Give a page that only has a viewBox matching width and height attributes, so it keeps
    its size in converters yet still scales with CSS in a browser."""
    root = re.search(r"<svg\b[^>]*>", svg)
    if root is None or " width=" in root.group(0):
        return svg
    box = re.search(r'viewBox="([\d.\-]+) ([\d.\-]+) ([\d.]+) ([\d.]+)"', root.group(0))
    if box is None:
        return svg
    sized = root.group(0).replace("<svg ", f'<svg width="{box.group(3)}px" height="{box.group(4)}px" ', 1)
    return svg[: root.start()] + sized + svg[root.end() :]


def _verovio_toolkit():
    """A verovio toolkit that finds its fonts in any thread.

    verovio 6.4 keeps its resource path per thread and sets it only in the thread that imported
    it; a toolkit made in another thread (the app renders in worker threads) has no fonts.
    """
    from importlib.resources import files

    import verovio

    verovio.setDefaultResourcePath(str(files("verovio") / "data"))
    return verovio.toolkit()


def to_svg_pages(
    musicxml: bytes | str, config: RenderConfig = RenderConfig(), whole_pages: bool = False
) -> list[str]:
    """Engrave MusicXML with verovio: one SVG document per page, title and lyrics included.

    Pages are cut to the height of their music when ``config.crop_screen_pages`` is set, unless
    ``whole_pages`` asks for full pages (the PDF does).

    >>> from music21 import converter
    >>> xml = to_musicxml(converter.parse("X:1\\nT:Air\\nK:G\\nL:1/4\\nGABc|dcBA|", format="abc"))
    >>> pages = to_svg_pages(xml)
    >>> len(pages), pages[0].startswith("<svg"), "Air" in pages[0]
    (1, True, True)
    >>> to_svg_pages("<html/>")
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: not MusicXML: no <score-partwise> or <score-timewise> element
    """
    import verovio

    text = musicxml.decode("utf-8") if isinstance(musicxml, bytes) else musicxml
    if not re.search(r"<score-(partwise|timewise)\b", text):
        raise RenderError("not MusicXML: no <score-partwise> or <score-timewise> element")
    # Verovio's log level is process-wide. Its warnings describe details of its MusicXML import
    # ("unsupported bar-style") a person cannot act on; errors still show.
    verovio.enableLog(verovio.LOG_ERROR)
    toolkit = _verovio_toolkit()
    toolkit.setOptions(_verovio_options(config, whole_pages))
    if not toolkit.loadData(text) or toolkit.getPageCount() < 1:
        raise RenderError("verovio could not read the MusicXML")
    pages = [_with_size(toolkit.renderToSVG(page)) for page in range(1, toolkit.getPageCount() + 1)]
    if not any('class="measure' in page for page in pages):
        raise RenderError("verovio found no music in the MusicXML")
    return pages


def _svg_size(svg: str) -> tuple[float, float]:
    root = re.search(r"<svg\b[^>]*>", svg)
    width = re.search(r'\swidth="([\d.]+)(?:px)?"', root.group(0)) if root else None
    height = re.search(r'\sheight="([\d.]+)(?:px)?"', root.group(0)) if root else None
    if width is None or height is None:
        raise RenderError("an SVG page has no width and height")
    return float(width.group(1)), float(height.group(1))


def stack_svg_pages(pages: list[str], gap: float = 40.0) -> str:
    """One SVG with ``pages`` stacked top to bottom, ``gap`` units apart; a single page comes back
    as it is. Verovio gives every page of a score the same document id (used in glyph ids and in
    its CSS), so each page after the first gets its own.

    >>> page = '<svg width="100px" height="50px" id="abc"><use href="#E050-abc"/></svg>'
    >>> print(stack_svg_pages([page, page], gap=10).replace(" xmlns", "\\n  xmlns"))
    <svg
      xmlns="http://www.w3.org/2000/svg"
      xmlns:xlink="http://www.w3.org/1999/xlink" width="100px" height="110px" viewBox="0 0 100 110">
    <svg x="0" y="0" width="100px" height="50px" id="abc"><use href="#E050-abc"/></svg>
    <svg x="0" y="60" width="100px" height="50px" id="abc-p2"><use href="#E050-abc-p2"/></svg>
    </svg>
    >>> stack_svg_pages([])
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: no SVG pages to stack
    """
    if not pages:
        raise RenderError("no SVG pages to stack")
    if len(pages) == 1:
        return pages[0]
    sizes = [_svg_size(page) for page in pages]
    width = max(w for w, _ in sizes)
    height = sum(h for _, h in sizes) + gap * (len(pages) - 1)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:g}px" height="{height:g}px" viewBox="0 0 {width:g} {height:g}">'
    ]
    top = 0.0
    fonts_seen: set[str] = set()
    for number, (page, (_, page_height)) in enumerate(zip(pages, sizes), start=1):
        page = re.sub(r"<\?xml[^>]*\?>\s*", "", page).strip()
        # A CSS font applies to the whole document: keep the first copy of each.
        for style in _CSS_FONT_FACE.findall(page):
            if style in fonts_seen:
                page = page.replace(style, "", 1)
            fonts_seen.add(style)
        doc_id = re.search(r'<svg\b[^>]*\sid="([^"]+)"', page)
        if number > 1 and doc_id:
            page = re.sub(rf"\b{re.escape(doc_id.group(1))}\b", f"{doc_id.group(1)}-p{number}", page)
        parts.append(page.replace("<svg ", f'<svg x="0" y="{top:g}" ', 1))
        top += page_height + gap
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- PDF


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tunesmith" / "fonts"


@functools.lru_cache(maxsize=None)
def _register_fonts_for_cairo(font_sets: tuple[str, ...]) -> bool:
    """Give cairo (which draws the PDF) the fonts verovio's SVG names but cairo cannot load.

    Verovio lays text out with Times metrics and writes the note of a tempo mark ("quarter = 96")
    in its SMuFL font, which it embeds in the SVG as CSS; cairo reads neither CSS fonts nor,
    on a machine without Times, anything with Times metrics. Verovio ships both as base64 WOFF2 in
    ``data/<name>.css`` (Liberation Serif is metric-compatible with Times, and fontconfig's
    standard aliases send "Times" to it). Written to files, fontconfig registers them for this
    process. No library does this, hence these few lines. Returns False, and logs why, where
    fontconfig is missing (e.g. on Windows): lyrics may then be set too close in the PDF and the
    tempo note shows as a box.
    """
    import verovio

    library = ctypes.util.find_library("fontconfig")
    if library is None:
        log.warning("fontconfig not found: PDF text may be spaced badly and tempo notes show as boxes")
        return False
    fontconfig = ctypes.CDLL(library)
    fontconfig.FcConfigAppFontAddFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    fontconfig.FcConfigAppFontAddFile.restype = ctypes.c_int
    resources = Path(_verovio_toolkit().getResourcePath())
    registered = True
    for name in font_sets:
        try:
            css = (resources / f"{name}.css").read_text(encoding="utf-8")
        except OSError as err:
            log.warning("cannot read verovio's %s font: %s", name, err)
            registered = False
            continue
        for encoded in re.findall(r"base64,([A-Za-z0-9+/=]+)", css):
            data = base64.b64decode(encoded)
            font_file = _cache_dir() / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}.woff2"
            try:
                if not font_file.exists():
                    _write_atomic(font_file, data)
            except OSError:
                font_file = Path(tempfile.gettempdir()) / font_file.name
                _write_atomic(font_file, data)
            if not fontconfig.FcConfigAppFontAddFile(None, os.fsencode(font_file)):
                log.warning("fontconfig refused the font file %s", font_file)
                registered = False
    return registered


def to_pdf(svg_pages: list[str], config: RenderConfig = RenderConfig()) -> bytes:
    """A PDF with one page per SVG page (made by :func:`to_svg_pages` with ``whole_pages=True``),
    converted by cairosvg and joined by pypdf. A page ``config.page_width`` wide comes out at
    that size in millimetres / 10 (A4 by default).

    >>> to_pdf([])
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: no SVG pages to turn into a PDF
    """
    import cairosvg
    import pypdf

    if not svg_pages:
        raise RenderError("no SVG pages to turn into a PDF")
    _register_fonts_for_cairo((config.music_font, "Liberation"))
    writer = pypdf.PdfWriter()
    for number, page in enumerate(svg_pages, start=1):
        # Cairo cannot use fonts embedded as CSS (the fonts above replace them); skip parsing them.
        page = _CSS_FONT_FACE.sub("", page)
        try:
            single = cairosvg.svg2pdf(bytestring=page.encode("utf-8"), dpi=_VEROVIO_UNITS_PER_INCH)
        except Exception as err:  # cairosvg raises XML, value and cairo errors
            raise RenderError(f"cairosvg could not convert SVG page {number} to PDF: {err}") from err
        writer.append(pypdf.PdfReader(io.BytesIO(single)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def to_png(svg_page: str, width: int = 1200, config: RenderConfig = RenderConfig()) -> bytes:
    """One SVG page as a PNG ``width`` pixels wide on white, drawn by cairosvg with the fonts
    :func:`to_pdf` uses, so a tempo mark keeps its note and, for a page engraved without the
    embedded text font (``embed_text_font=False`` or ``whole_pages``), lyrics keep the spacing
    verovio measured.

    >>> to_png("<svg")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: cairosvg could not convert the SVG page to PNG: ...
    """
    import cairosvg

    _register_fonts_for_cairo((config.music_font, "Liberation"))
    page = _CSS_FONT_FACE.sub("", svg_page)
    try:
        return cairosvg.svg2png(bytestring=page.encode("utf-8"), output_width=width,
                                background_color="white")
    except Exception as err:  # cairosvg raises XML, value and cairo errors
        raise RenderError(f"cairosvg could not convert the SVG page to PNG: {err}") from err


# --------------------------------------------------------------------------- WAV


def to_wav(midi_data: bytes, config: RenderConfig = RenderConfig()) -> bytes:
    """A 16-bit PCM WAV of ``midi_data`` played by tinysoundfont with ``config.soundfont``:
    as long as the MIDI file plus ``config.release_seconds``, peak-normalised to
    ``config.peak_dbfs``.

    >>> to_wav(b"MThd broken")
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: not a readable MIDI file: it ends too early
    """
    import numpy as np
    import tinysoundfont
    from tinysoundfont.midi import load_memory

    if config.channels not in (1, 2):
        raise RenderError(f"WAV channels must be 1 or 2, not {config.channels}")
    seconds = midi_seconds(midi_data) + config.release_seconds
    if seconds > config.max_seconds:
        raise RenderError(
            f"the music lasts {seconds:.0f} s, longer than the {config.max_seconds:.0f} s allowed"
        )
    soundfont = Path(config.soundfont) if config.soundfont else default_soundfont()
    if not soundfont.is_file():
        raise RenderError(f"SoundFont not found: {soundfont}")

    synth = tinysoundfont.Synth(samplerate=config.sample_rate)
    try:
        synth.sfload(str(soundfont))
    except Exception as err:  # the C++ loader raises a bare RuntimeError or SoundFontException
        raise RenderError(f"cannot load the SoundFont {soundfont}: {err}") from err
    sequencer = tinysoundfont.Sequencer(synth)
    # Non-persistent events leave the queue once played, so sequencing stays linear in the notes.
    sequencer.add(load_memory(midi_data, persistent=False))
    frames = int(round(seconds * config.sample_rate))
    samples = np.frombuffer(synth.generate(frames), dtype=np.float32).reshape(-1, 2)
    if config.channels == 1:
        samples = samples.mean(axis=1, keepdims=True)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if config.peak_dbfs is not None and peak > 0:
        samples = samples * (10 ** (config.peak_dbfs / 20) / peak)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(config.channels)
        wav.setsampwidth(2)
        wav.setframerate(config.sample_rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


# --------------------------------------------------------------------------- warming up


def warm_up(config: RenderConfig = RenderConfig()) -> None:
    """Load what the first render of a process would otherwise load on the spot: verovio and
    its fonts, cairosvg (its cairo bindings are parsed from C declarations at import, about
    half a second), the synthesiser and music21's MIDI and MusicXML writers.

    >>> warm_up()  # a second call costs nothing
    """
    import cairosvg  # noqa: F401
    import mido  # noqa: F401
    import numpy  # noqa: F401
    import pypdf  # noqa: F401
    import tinysoundfont  # noqa: F401
    from music21.midi import translate  # noqa: F401
    from music21.musicxml import m21ToXml  # noqa: F401

    _verovio_toolkit()
    _register_fonts_for_cairo((config.music_font, "Liberation"))


def warm_up_in_background(config: RenderConfig = RenderConfig()):
    """Run :func:`warm_up` in a daemon thread (while the model writes a tune, say) and return
    the thread; a failure is logged, and the render that follows meets it again and says so.
    """
    import threading

    def run() -> None:
        try:
            warm_up(config)
        except Exception as err:  # the render itself reports what is missing
            log.warning("warming up the renderers failed: %s: %s", type(err).__name__, err)

    thread = threading.Thread(target=run, name="render-warm-up", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    ``path`` is either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_name = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.part"
    # os.open with mode 0o666 honours the umask, as a plain open() would (mkstemp gives 0o600).
    handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _selected_formats(formats: Iterable[str] | None, config: RenderConfig) -> list[str]:
    chosen = list(config.formats if formats is None else formats)
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise RenderError(f"unknown output format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if not chosen:
        raise RenderError("no output formats asked for")
    return [name for name in FORMATS if name in chosen]


class _Background:
    """Runs one piece of work in a thread of its own (when ``enabled``) while the caller goes
    on; ``run`` returns a function that waits for the result and raises what the work raised.
    Leaving the ``with`` block waits for the thread, so no work outlives the call.

    >>> with _Background(True) as background:
    ...     result = background.run(lambda: 6 * 7)
    >>> result()
    42
    >>> with _Background(False) as background:
    ...     failed = background.run(lambda: 1 / 0)
    >>> failed()
    Traceback (most recent call last):
    ...
    ZeroDivisionError: division by zero
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._pool = None

    def __enter__(self) -> "_Background":
        if self.enabled:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def run(self, work):
        """Start ``work()``; the function returned gives its result (or raises its error)."""
        if self._pool is not None:
            return self._pool.submit(work).result
        try:
            value = work()
        except Exception as err:  # kept, and raised where the result is asked for
            return functools.partial(_raise, err)
        return lambda: value


def _raise(error: Exception) -> None:
    raise error


def render_all(
    abc_text: str,
    score: Any,
    out_dir: Path,
    config: RenderConfig = RenderConfig(),
    formats: Iterable[str] | None = None,
    midi_data: bytes | None = None,
    partial: bool = False,
) -> RenderedFiles:
    """Render ``score`` (read from ``abc_text``) into ``out_dir`` as the files in
    :data:`FILE_NAMES`, for ``formats`` (default ``config.formats``; leave out "wav" for a fast
    edit). Every file is rendered before any is written, so a render failure raises
    :class:`RenderError` and changes nothing in ``out_dir``; a write failure (a full disk)
    raises it too, and leaves each file either old or new, never half-written.
    ``midi_data`` is a MIDI file already made from this score (an earlier call's
    ``score.mid``): a WAV asked for without "midi" plays it instead of making it again.
    With ``config.parallel`` the PDF is drawn in a second thread. With ``partial`` a format
    that cannot be rendered is left out (the others are written) and its error is in the
    result's ``problems``.

    >>> import tempfile
    >>> from music21 import converter
    >>> abc = "X:1\\nT:Air\\nM:4/4\\nL:1/4\\nK:C\\nCDEF|GABc|"
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = render_all(abc, converter.parse(abc, format="abc"), Path(folder), formats=["abc", "midi"])
    ...     sorted(path.name for path in files.values())
    ['score.abc', 'score.mid']
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = render_all(abc, converter.parse(abc, format="abc"), Path(folder),
    ...                        formats=["abc", "wav"], midi_data=b"not midi", partial=True)
    ...     sorted(files), files.problems
    (['abc'], {'wav': 'not a readable MIDI file: MThd not found. Probably not a MIDI file'})
    >>> render_all(abc, None, Path("unused"), formats=["mp3"])
    Traceback (most recent call last):
    ...
    agent.errors.RenderError: unknown output format(s) mp3; choose from abc, midi, musicxml, svg, pdf, wav
    """
    chosen = _selected_formats(formats, config)
    _check_score(score)
    if "abc" in chosen and not abc_text.strip():
        raise RenderError("there is no ABC text to write")

    contents: dict[str, bytes] = {}
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    problems: dict[str, str] = {}

    def timed(name: str, make, needs: tuple[str, ...] = ()):
        """``make()`` timed under ``name``; with ``partial``, None (and the problem kept) when
        it, or a step it ``needs``, failed."""
        failed = next((problems[step] for step in needs if step in problems), None)
        if failed is not None:
            problems[name] = failed
            return None
        started = time.perf_counter()
        try:
            result = make()
        except Exception as err:  # anything unexpected still reaches the caller as one error
            error = err if isinstance(err, RenderError) else RenderError(
                f"could not render the {name}: {err}")
            if not partial:
                raise error from (None if error is err else err)
            problems[name] = str(error)
            return None
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        return result

    if "abc" in chosen:
        contents["abc"] = timed("abc", lambda: (abc_text.rstrip("\n") + "\n").encode("utf-8"))
    # the backing (agent.accompaniment): its own part in MIDI, WAV and MusicXML; on the sheet
    # only when the tune asks for it (chord names above the melody either way)
    needs_score = [name for name in ("midi", "musicxml") if name in chosen or (
        name == "midi" and "wav" in chosen and midi_data is None) or (
        name == "musicxml" and {"svg", "pdf"} & set(chosen))]
    full = timed("score", lambda: full_score(score, abc_text)) if needs_score else score
    if needs_score and "score" in seconds:  # counted where it was counted before
        seconds[needs_score[0]] = seconds.pop("score")
    engraved = None
    if {"musicxml", "svg", "pdf"} & set(chosen):
        engraved = contents["musicxml"] = timed("musicxml", lambda: to_musicxml(full), ("score",))
    if engraved and full is not score and not shows_accompaniment(abc_text):
        engraved = timed("musicxml", lambda: _first_part_only(engraved))
    # The PDF needs only the MusicXML bytes, so its thread shares no music21 object.
    with _Background(config.parallel and "pdf" in chosen and len(chosen) > 2) as background:
        if "pdf" in chosen:
            pdf = background.run(lambda: timed(
                "pdf", lambda: to_pdf(to_svg_pages(engraved, config, whole_pages=True), config),
                ("musicxml",)))
        if "midi" in chosen or ("wav" in chosen and midi_data is None):
            midi = timed("midi", lambda: to_midi(full, abc_text), ("score",))
            if midi is not None:
                warnings.extend(midi.warnings)
                midi_data = contents["midi"] = midi.data
        if "svg" in chosen:
            contents["svg"] = timed("svg", lambda: stack_svg_pages(
                to_svg_pages(engraved, config)).encode("utf-8"), ("musicxml",))
        if "wav" in chosen:
            contents["wav"] = timed("wav", lambda: to_wav(midi_data, config), ("midi",))
        if "pdf" in chosen:
            contents["pdf"] = pdf()

    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for name in chosen:
        if contents.get(name) is None:
            continue
        path = out_dir / FILE_NAMES[name]
        try:
            _write_atomic(path, contents[name])
        except OSError as err:
            raise RenderError(f"cannot write {path}: {err.strerror or err}") from err
        paths[name] = path
    return RenderedFiles(paths, warnings, seconds,
                         {name: problems[name] for name in chosen if name in problems})


def render_score_text(
    abc_text: str,
    out_dir: Path,
    config: RenderConfig = RenderConfig(),
    formats: Iterable[str] | None = None,
) -> RenderedFiles:
    """Read ``abc_text`` with the project's ABC reader and :func:`render_all` it; the reader's
    warnings come first in the result's ``warnings``. Unreadable ABC raises ``AbcError``."""
    from agent.abc_reader import read_tune

    tune = read_tune(abc_text)
    files = render_all(abc_text, tune.score, out_dir, config, formats)
    return RenderedFiles(files, [*map(str, tune.warnings), *files.warnings], files.seconds,
                         files.problems)
