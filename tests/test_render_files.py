"""Tests for the faster render paths: the PDF drawn in a second thread, partial renders that keep
what could be made, and the app's files of a version (agent.version_files) read from one
reading of the score, MIDI with the slow files and the WAV from the MIDI already written.

Every file is read back with a library other than the one that wrote it (pretty_midi, pypdf,
ElementTree, ``wave``) and compared with the score.
"""
from __future__ import annotations

import io
import re
import wave
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pretty_midi
import pypdf
import pytest

from agent import abc_reader
from agent.render import FILE_NAMES, FORMATS, RenderConfig, render_all
from agent.version_files import QUICK_FORMATS, SLOW_FORMATS, render_files, version_folder

DATA = Path(__file__).parent / "data" / "render"
SONG = DATA / "autumn_lantern.abc"  # 32 bars of 3/4, lyrics, %%MIDI program 73
WALTZ_WITH_CHORDS = (
    "X:1\nT:Chords\nR:waltz\nM:3/4\nL:1/8\nQ:1/4=96\nK:G\n"
    '"G"B2 A2 G2|"D"A4 F2|"C"E2 G2 c2|"G"B6|"Em"e2 d2 B2|"Am"c4 A2|"D"F2 A2 d2|"G"G6|]\n'
)


def melody_pitches(abc: str) -> list[int]:
    from music21 import harmony

    return [p.midi for n in abc_reader.read_tune(abc).score.parts[0].recurse().notes
            if not isinstance(n, harmony.ChordSymbol) for p in n.pitches]


def midi_notes(data: bytes) -> list[tuple[int, float, float]]:
    midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted((n.pitch, round(n.start, 3), round(n.end, 3))
                  for inst in midi.instruments for n in inst.notes)


def lyric_texts(xml: bytes) -> list[str]:
    root = ET.fromstring(xml)
    return [text.text for text in root.iter("text")]


def xml_pitches(xml: bytes) -> list[str]:
    root = ET.fromstring(xml)
    return [pitch.findtext("step") + pitch.findtext("octave") for pitch in root.iter("pitch")]


def svg_words(svg: bytes) -> list[str]:
    return [w for w in re.findall(r">([^<>]+)</tspan>", svg.decode("utf-8")) if w.strip()]


@pytest.fixture(scope="module")
def song_text() -> str:
    return SONG.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def both_ways(song_text, tmp_path_factory):
    """The song rendered to every format with the PDF in its own thread, and in one thread."""
    score = abc_reader.read_tune(song_text).score
    out = {}
    for parallel in (True, False):
        folder = tmp_path_factory.mktemp("parallel" if parallel else "serial")
        files = render_all(song_text, score, folder, replace(RenderConfig(), parallel=parallel))
        out[parallel] = {name: path.read_bytes() for name, path in files.items()}
    return out


def test_parallel_render_makes_the_same_files(both_ways):
    together, alone = both_ways[True], both_ways[False]
    assert sorted(together) == sorted(alone) == sorted(FORMATS)
    assert together["abc"] == alone["abc"] and together["midi"] == alone["midi"]
    # MusicXML and SVG carry generated ids; what they say is the same
    assert lyric_texts(together["musicxml"]) == lyric_texts(alone["musicxml"])
    assert xml_pitches(together["musicxml"]) == xml_pitches(alone["musicxml"])
    assert svg_words(together["svg"]) == svg_words(alone["svg"])
    pages = [len(pypdf.PdfReader(io.BytesIO(files["pdf"])).pages) for files in (together, alone)]
    assert pages[0] == pages[1] >= 1
    text = pypdf.PdfReader(io.BytesIO(together["pdf"])).pages[0].extract_text()
    assert "Autumn" in text


def test_parallel_render_plays_and_prints_the_song(both_ways, song_text):
    files = both_ways[True]
    assert [n[0] for n in midi_notes(files["midi"])] != []
    assert sorted({n[0] for n in midi_notes(files["midi"])}) == sorted(set(melody_pitches(song_text)))
    assert len(lyric_texts(files["musicxml"])) == 80
    with wave.open(io.BytesIO(files["wav"])) as audio:
        assert audio.getnframes() > 44100 * 30


def test_partial_render_keeps_what_it_could_make(song_text, tmp_path):
    config = replace(RenderConfig(), soundfont=tmp_path / "missing.sf2")
    files = render_all(song_text, abc_reader.read_tune(song_text).score, tmp_path, config,
                       formats=["abc", "midi", "wav", "pdf"], partial=True)
    assert sorted(files) == ["abc", "midi", "pdf"]
    assert list(files.problems) == ["wav"] and "SoundFont not found" in files.problems["wav"]
    assert not (tmp_path / FILE_NAMES["wav"]).exists()


def test_without_partial_a_failure_writes_nothing(song_text, tmp_path):
    from agent.errors import RenderError

    config = replace(RenderConfig(), soundfont=tmp_path / "missing.sf2")
    with pytest.raises(RenderError, match="SoundFont not found"):
        render_all(song_text, abc_reader.read_tune(song_text).score, tmp_path, config,
                   formats=["abc", "pdf", "wav"])
    assert list(tmp_path.iterdir()) == []


def test_quick_files_are_the_sheet_and_the_text(tmp_path):
    assert set(QUICK_FORMATS) | set(SLOW_FORMATS) == set(FORMATS)
    assert "midi" not in QUICK_FORMATS and "svg" in QUICK_FORMATS
    rendered = render_files(WALTZ_WITH_CHORDS, str(tmp_path), QUICK_FORMATS)
    assert rendered.problems == [] and sorted(rendered.paths) == sorted(QUICK_FORMATS)
    svg = rendered.paths["svg"].read_text(encoding="utf-8")
    assert "Chords" in svg and 'class="measure' in svg


def test_version_files_read_the_score_once_and_wav_plays_the_midi(tmp_path, monkeypatch):
    reads = []
    real = abc_reader.read_tune
    melody = set(melody_pitches(WALTZ_WITH_CHORDS))
    monkeypatch.setattr(abc_reader, "read_tune", lambda text, *a: reads.append(text) or real(text, *a))
    quick = render_files(WALTZ_WITH_CHORDS, str(tmp_path), QUICK_FORMATS)
    assert len(reads) == 1
    done = render_files(WALTZ_WITH_CHORDS, str(tmp_path), SLOW_FORMATS, quick)
    assert len(reads) == 2 and done.problems == []
    assert sorted(done.paths) == sorted(FORMATS)
    midi = done.paths["midi"].read_bytes()
    played = midi_notes(midi)
    assert melody <= {n[0] for n in played}
    assert len(pretty_midi.PrettyMIDI(io.BytesIO(midi)).instruments) == 2  # melody and backing
    # the WAV asked for later plays the MIDI file already there: the same sound as made afresh
    done.paths["wav"].unlink()
    again = render_files(WALTZ_WITH_CHORDS, str(tmp_path), ("wav",))
    assert len(reads) == 3 and again.problems == []
    alone = render_all(WALTZ_WITH_CHORDS, real(WALTZ_WITH_CHORDS).score, tmp_path / "fresh",
                       formats=["wav"])
    assert again.paths["wav"].read_bytes() == alone["wav"].read_bytes()
    # undo and redo: every file is there, nothing is read again
    render_files(WALTZ_WITH_CHORDS, str(tmp_path), QUICK_FORMATS + SLOW_FORMATS)
    assert len(reads) == 3


def test_a_wav_needs_a_playable_midi(tmp_path):
    folder = version_folder(str(tmp_path), WALTZ_WITH_CHORDS)
    folder.mkdir(parents=True)
    (folder / FILE_NAMES["midi"]).write_bytes(b"not midi")
    rendered = render_files(WALTZ_WITH_CHORDS, str(tmp_path), ("wav",))
    assert "wav" not in rendered.paths
    assert rendered.problems == ["wav: not a readable MIDI file: MThd not found. Probably not a "
                                 "MIDI file"]


def test_warming_up_in_the_background_loads_the_renderers():
    import sys

    from agent.render import warm_up_in_background

    thread = warm_up_in_background()
    thread.join(timeout=120)
    assert not thread.is_alive() and thread.daemon
    assert {"verovio", "cairosvg", "tinysoundfont", "music21.musicxml.m21ToXml"} <= set(sys.modules)
