"""Tests for agent.render: every file it writes is read back and checked against the score.

MIDI is read with pretty_midi, MusicXML with ElementTree, SVG as text, PDF with pypdf and WAV with
the standard ``wave`` module, so no check trusts the library that wrote the file. The tunes are
a hand-written 32-bar song with lyrics (tests/data/render/) and real tunes from music21's corpus:
one with two repeated halves, and one whose repeats music21 cannot expand.
"""
from __future__ import annotations

import io
import re
import string
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import music21
import numpy as np
import pretty_midi
import pypdf
import pytest
from music21 import converter, harmony, instrument, tempo

from agent import render
from agent.abc_reader import read_tune
from agent.errors import AbcError, RenderError
from agent.render import FILE_NAMES, FORMATS, RenderConfig, render_all

DATA = Path(__file__).parent / "data" / "render"
CORPUS = Path(music21.__file__).parent / "corpus"
SONG = DATA / "autumn_lantern.abc"  # 32 bars of 3/4, Q:1/4=96, %%MIDI program 73, w: lyrics
REPEATED_HALVES = CORPUS / "ryansMammoth" / "7thRegimentReel.abc"  # |: A :| |: B :|
BROKEN_REPEATS = CORPUS / "ryansMammoth" / "BossJig.abc"  # music21 raises ExpanderException
ONEILLS_BOOK = CORPUS / "oneills1850" / "0001-0050.abc"  # tune 1: graces, a pickup mid-tune
TWO_VOICES = (
    "X:1\nT:Two voices\nM:4/4\nL:1/4\nQ:1/4=100\n%%MIDI program 40\nK:G\n"
    "V:1\nGABc|d4|]\nV:2 clef=bass\nG,,2D,2|G,,4|]\n"
)
GRACES = (
    "X:1\nT:Graces\nM:4/4\nL:1/4\nQ:1/4=120\nK:C\n"
    '{d}C D E- E|[CE] F "Am"G {ga}A|B c d e {f}|z {g}z c2|]\n'
)

PUNCTUATION = string.punctuation + "\u2019"


# --------------------------------------------------------------------------- helpers


def syllables_of(abc_text: str) -> list[str]:
    """The syllables of the tune's ``w:`` lines, in order (the test song uses only spaces and
    ``-`` between syllables, no ``_``, ``*`` or ``|``)."""
    found = []
    for line in abc_text.splitlines():
        if line.startswith("w:"):
            for word in line[2:].split():
                found.extend(part.strip(PUNCTUATION) for part in word.split("-"))
    return found


def bare(texts: list[str]) -> list[str]:
    return [text.strip(PUNCTUATION) for text in texts]


def score_syllables(score) -> list[str]:
    return [n.lyrics[0].text for n in score.recurse().notes if n.lyrics]


def read(abc_text: str):
    """The score as the app reads it: the project's reader attaches ``w:`` syllables as lyrics
    and sets the tempo from ``Q:`` (music21's own ABC import drops ``w:`` lines)."""
    return read_tune(abc_text).score


def quarter_bpm(score) -> float:
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    return marks[0].getQuarterBPM() if marks else 120.0  # music21 plays 120 when Q: is missing


def expected_notes(score, expand: bool = True) -> list[tuple[int, float, float]]:
    """(MIDI pitch, start s, end s) of every sounding note, ties joined, at the score's tempo."""
    has_bars = any(part.hasMeasures() for part in score.parts)
    played = score.expandRepeats() if expand and has_bars else score
    seconds_per_quarter = 60.0 / quarter_bpm(score)
    out = []
    for part in played.parts:
        for element in part.stripTies().flatten().notes:
            if isinstance(element, harmony.ChordSymbol) or element.duration.isGrace:
                continue
            start = float(element.offset) * seconds_per_quarter
            end = start + float(element.quarterLength) * seconds_per_quarter
            out.extend((p.midi, round(start, 3), round(end, 3)) for p in element.pitches)
    return sorted(out)


def assert_played_with_graces(found, expected, graces: int) -> None:
    """Every written note sounds to its written end, starting at most 1/4 s late (its grace
    notes take their time from its start); what is left over are the grace notes, each short."""
    left = list(found)
    for pitch, start, end in expected:
        match = next((n for n in left if n[0] == pitch and n[2] == end and 0 <= n[1] - start <= 0.25), None)
        assert match is not None, f"no MIDI note for pitch {pitch} from {start} s to {end} s"
        left.remove(match)
    assert len(left) <= graces
    assert all(end - start <= 0.0625 + 0.001 for _, start, end in left), left  # rounding to 1 ms


def midi_notes_from_bytes(data: bytes) -> list[tuple[int, float, float]]:
    """(pitch, start s, end s) of every note in a MIDI file, rounded to the millisecond."""
    midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted(
        (n.pitch, round(n.start, 3), round(n.end, 3)) for inst in midi.instruments for n in inst.notes
    )


def midi_notes(path: Path) -> list[tuple[int, float, float]]:
    return midi_notes_from_bytes(path.read_bytes())


def written_notes(score) -> int:
    return sum(
        len(n.pitches)
        for n in score.recurse().notes
        if not isinstance(n, harmony.ChordSymbol) and not n.duration.isGrace
    )


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".part")]


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2, "16-bit PCM"
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return frames.reshape(-1, wav.getnchannels()) / 32768.0, wav.getframerate(), wav.getnchannels()


def svg_texts(svg: str) -> list[str]:
    return [text.strip() for text in re.findall(r">([^<>]+)</tspan>", svg) if text.strip()]


def svg_syllables(svg: str) -> list[str]:
    """The lyric syllables verovio engraved, in order (each sits in a ``<g class="syl">``)."""
    return [
        text.strip()
        for block in re.findall(r'<g [^>]*class="syl"[^>]*>(.*?)</g>', svg, flags=re.S)
        for text in re.findall(r">([^<>]+)</tspan>", block)
        if text.strip()
    ]


# --------------------------------------------------------------------------- renders shared by tests


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    abc = SONG.read_text(encoding="utf-8")
    score = read(abc)
    out = tmp_path_factory.mktemp("song")
    return abc, score, render_all(abc, score, out), out


@pytest.fixture(scope="module")
def reel(tmp_path_factory):
    abc = REPEATED_HALVES.read_text(encoding="utf-8")
    score = read(abc)
    out = tmp_path_factory.mktemp("reel")
    return abc, score, render_all(abc, score, out, formats=["midi", "wav"]), out


# --------------------------------------------------------------------------- all formats


def test_song_writes_all_six_files(song):
    _, _, files, out = song
    assert list(files) == list(FORMATS)
    for name, path in files.items():
        assert path == out / FILE_NAMES[name]
        assert path.stat().st_size > 0
    assert no_temp_files(out)
    assert files.warnings == ()
    assert set(files.seconds) == set(FORMATS)


def test_render_score_text_reads_and_renders(tmp_path):
    abc = SONG.read_text(encoding="utf-8")
    files = render.render_score_text(abc, tmp_path, formats=["abc", "musicxml"])
    assert list(files) == ["abc", "musicxml"]
    texts = re.findall(r"<text>([^<]*)</text>", files["musicxml"].read_text(encoding="utf-8"))
    assert bare(texts) == syllables_of(abc)
    with pytest.raises(AbcError):
        render.render_score_text("X:1\nT:No key\nCDE\n", tmp_path)


def test_abc_file_is_the_text(song):
    abc, _, files, _ = song
    assert files["abc"].read_text(encoding="utf-8") == abc.rstrip("\n") + "\n"


# --------------------------------------------------------------------------- MIDI


def test_song_midi_notes_equal_the_score(song):
    _, score, files, _ = song
    found = midi_notes(files["midi"])
    assert len(found) == 80
    assert found == expected_notes(score)


def test_song_midi_tempo_and_instrument(song):
    _, _, files, _ = song
    midi = pretty_midi.PrettyMIDI(str(files["midi"]))
    _, tempi = midi.get_tempo_changes()
    assert list(np.round(tempi, 3)) == [96.0]
    assert [inst.program for inst in midi.instruments if inst.notes] == [73]  # %%MIDI program 73: flute


def test_reel_repeats_are_played(reel):
    _, score, files, _ = reel
    found = midi_notes(files["midi"])
    # Both halves of this reel repeat, so every written note sounds twice.
    assert len(found) == 2 * written_notes(score)
    assert found == expected_notes(score)
    midi = pretty_midi.PrettyMIDI(str(files["midi"]))
    assert [inst.program for inst in midi.instruments if inst.notes] == [0]  # no directive: piano


def test_unexpandable_repeats_play_as_written_with_a_warning(tmp_path):
    abc = BROKEN_REPEATS.read_text(encoding="utf-8")
    score = read(abc)
    with pytest.raises(music21.repeat.ExpanderException):
        score.expandRepeats()
    files = render_all(abc, score, tmp_path, formats=["midi"])
    assert len(files.warnings) == 1 and "repeats could not be expanded" in files.warnings[0]
    graces = sum(1 for n in score.recurse().notes if n.duration.isGrace)
    assert_played_with_graces(midi_notes(files["midi"]), expected_notes(score, expand=False), graces)
    assert render.midi_seconds(files["midi"].read_bytes()) == pytest.approx(float(score.highestTime) * 0.5)


def test_grace_notes_are_short_and_never_left_ringing():
    score = read(GRACES)
    found = midi_notes_from_bytes(render.to_midi(score, GRACES).data)
    # C, then E tied over two beats, the chord, and the grace notes before C and A play as 32nds.
    assert (74, 0.0, 0.062) in found and (60, 0.062, 0.5) in found
    assert (79, 3.5, 3.562) in found and (81, 3.562, 3.625) in found and (69, 3.625, 4.0) in found
    assert (64, 1.0, 2.0) in found and (60, 2.0, 2.5) in found and (64, 2.0, 2.5) in found
    # Grace notes with no note after them in their bar are dropped, and nothing rings on.
    assert max(end - start for _, start, end in found) <= 1.0
    assert len(found) == 16


def test_corpus_tune_with_graces_and_a_mid_tune_pickup(tmp_path):
    # Read by music21 alone on purpose: it puts one TimeSignature object in two bars of this
    # tune, which its own MIDI writer cannot handle; the render must still play every note.
    book = ONEILLS_BOOK.read_text(encoding="utf-8")
    abc = next(tune for tune in re.split(r"\n(?=X:)", book) if re.match(r"\s*X: *1\n", tune))
    score = converter.parse(abc, format="abc")
    files = render_all(abc, score, tmp_path)
    assert list(files) == list(FORMATS) and files.warnings == ()
    graces = sum(1 for n in score.recurse().notes if n.duration.isGrace)
    assert graces > 5
    assert_played_with_graces(midi_notes(files["midi"]), expected_notes(score), graces)
    svg = files["svg"].read_text(encoding="utf-8")
    assert "The Enchanted Valley" in svg_texts(svg)
    assert svg.count('class="notehead"') == written_notes(score) + graces


def test_two_voices_share_the_instrument(tmp_path):
    score = read(TWO_VOICES)
    files = render_all(TWO_VOICES, score, tmp_path, formats=["midi", "musicxml"])
    midi = pretty_midi.PrettyMIDI(str(files["midi"]))
    assert sorted(len(inst.notes) for inst in midi.instruments) == [3, 5]
    assert {inst.program for inst in midi.instruments} == {40}  # violin
    assert midi_notes(files["midi"]) == expected_notes(score)
    assert len(ET.parse(files["musicxml"]).getroot().findall("part")) == 2


def test_a_tunebook_is_refused(tmp_path):
    tunes = re.split(r"\n(?=X:)", ONEILLS_BOOK.read_text(encoding="utf-8"))
    book = "\n".join(tune for tune in tunes if re.match(r"\s*X: *[12]\n", tune))
    with pytest.raises(RenderError, match="render one tune at a time"):
        render_all(book, converter.parse(book, format="abc"), tmp_path)


def test_a_closing_rest_is_part_of_the_music():
    abc = "X:1\nM:4/4\nL:1/4\nQ:1/4=60\nK:C\nCDEF|GABc|z4|]\n"
    score = read(abc)
    assert render.midi_seconds(render.to_midi(score, abc).data) == pytest.approx(12.0)


def test_rendering_leaves_the_score_as_it_was(song, tmp_path):
    abc, score, _, _ = song
    before = [(n.offset, n.quarterLength, n.lyric) for n in score.recurse().notes]
    render_all(abc, score, tmp_path, formats=["midi", "musicxml"])
    assert [(n.offset, n.quarterLength, n.lyric) for n in score.recurse().notes] == before
    assert not list(score.recurse().getElementsByClass(instrument.Instrument))


# --------------------------------------------------------------------------- MusicXML


def test_musicxml_has_title_key_meter_tempo_and_lyrics(song):
    abc, score, files, _ = song
    root = ET.parse(files["musicxml"]).getroot()
    assert root.tag == "score-partwise"
    assert root.findtext("work/work-title") == "Autumn Lantern"
    assert root.findtext(".//key/fifths") == "-1" and root.findtext(".//key/mode") == "minor"
    assert (root.findtext(".//time/beats"), root.findtext(".//time/beat-type")) == ("3", "4")
    assert root.findtext(".//metronome/beat-unit") == "quarter"
    assert root.findtext(".//metronome/per-minute") in ("96", "96.0")
    lyrics = [el.findtext("lyric/text") for el in root.iter("note") if el.find("lyric") is not None]
    assert lyrics == score_syllables(score)
    assert bare(lyrics) == syllables_of(abc)
    syllabic = [el.text for el in root.iter("syllabic")]
    assert syllabic[:4] == ["single", "single", "begin", "end"]  # Leaves are fall-ing


# --------------------------------------------------------------------------- SVG


def test_svg_shows_title_lyrics_and_every_note(song):
    abc, score, files, _ = song
    svg = files["svg"].read_text(encoding="utf-8")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "Autumn Lantern" in svg_texts(svg)
    assert svg_syllables(svg) == score_syllables(score)
    assert bare(svg_syllables(svg)) == syllables_of(abc)
    assert svg.count('class="notehead"') == written_notes(score) == 80


def test_long_score_gives_several_pages_in_svg_and_pdf(song, tmp_path):
    abc, score, _, _ = song
    small_pages = RenderConfig(page_height=900)  # about two systems a page
    files = render_all(abc, score, tmp_path, small_pages, formats=["svg", "pdf"])
    musicxml = render.to_musicxml(score)
    whole_pages = render.to_svg_pages(musicxml, small_pages, whole_pages=True)
    assert len(whole_pages) >= 2
    assert len(pypdf.PdfReader(files["pdf"]).pages) == len(whole_pages)
    stacked = files["svg"].read_text(encoding="utf-8")
    screen_pages = render.to_svg_pages(musicxml, small_pages)
    assert stacked.count('class="definition-scale"') == len(screen_pages) == len(whole_pages)
    assert stacked.count('class="notehead"') == 80
    assert svg_syllables(stacked) == score_syllables(score)
    ids = re.findall(r'<svg [^>]*\bid="([^"]+)"', stacked)
    assert len(ids) == len(set(ids)) == len(screen_pages)
    # The text font (4 faces) is embedded once for all pages.
    assert stacked.count('font-family: "Liberation"') == 4


def test_screen_pages_are_cut_to_the_music(song):
    _, score, _, _ = song
    xml = render.to_musicxml(score)
    cut = render.to_svg_pages(xml)
    whole = render.to_svg_pages(xml, whole_pages=True)
    height = lambda svg: float(re.search(r'height="([\d.]+)px"', svg).group(1))  # noqa: E731
    assert len(cut) == len(whole) == 1
    assert height(whole[0]) == 2970 and height(cut[0]) < 2970


# --------------------------------------------------------------------------- PDF


def test_pdf_is_one_a4_page_with_the_lyrics(song):
    abc, _, files, _ = song
    reader = pypdf.PdfReader(files["pdf"])
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    text = reader.pages[0].extract_text()
    words = set(re.findall(r"[A-Za-z]+", text))
    assert set(syllables_of(abc)) <= words
    assert "Autumn" in words and "Lantern" in words
    fonts = {str(font["/BaseFont"]) for font in reader.pages[0]["/Resources"]["/Font"].values()}
    assert any("LiberationSerif" in font for font in fonts), fonts  # Times metrics, as verovio measured


def test_png_of_a_page_is_as_wide_as_asked_and_drawn(song):
    from PIL import Image

    abc, score, _, _ = song
    xml = render.to_musicxml(score)
    page = render.to_svg_pages(xml, RenderConfig(embed_text_font=False))[0]
    image = Image.open(io.BytesIO(render.to_png(page, width=600))).convert("L")
    assert image.size[0] == 600
    dark = sum(1 for value in image.getdata() if value < 128)
    assert 0.01 < dark / (image.size[0] * image.size[1]) < 0.5  # notes and words on white


# --------------------------------------------------------------------------- WAV


def test_song_wav_is_audible_and_as_long_as_the_music(song):
    _, _, files, _ = song
    samples, rate, channels = read_wav(files["wav"])
    assert (rate, channels) == (44100, 2)
    music = 32 * 3 * 60 / 96  # 32 bars of 3/4 at 96 quarter notes a minute
    assert len(samples) / rate == pytest.approx(music + RenderConfig().release_seconds, abs=0.02)
    assert np.sqrt(np.mean(samples**2)) > 0.05
    assert np.abs(samples).max() == pytest.approx(10 ** (-1 / 20), abs=0.01)  # peak at -1 dBFS
    # Sound in every 2-second stretch of the music: nothing dropped out.
    window = 2 * rate
    for start in range(0, int(music * rate) - window, window):
        assert np.sqrt(np.mean(samples[start : start + window] ** 2)) > 0.01, start / rate


def test_reel_wav_covers_the_repeats(reel):
    _, score, files, _ = reel
    samples, rate, _ = read_wav(files["wav"])
    music = 2 * float(score.highestTime) * 0.5  # played twice, 120 quarter notes a minute
    assert len(samples) / rate == pytest.approx(music + 1.0, abs=0.02)
    assert np.sqrt(np.mean(samples**2)) > 0.05


def test_mono_wav_at_another_rate(song, tmp_path):
    abc, score, _, _ = song
    config = RenderConfig(sample_rate=22050, channels=1, release_seconds=0.5)
    files = render_all(abc, score, tmp_path, config, formats=["wav"])
    samples, rate, channels = read_wav(files["wav"])
    assert (rate, channels) == (22050, 1)
    assert len(samples) / rate == pytest.approx(60.5, abs=0.02)
    assert list(files) == ["wav"] and not (tmp_path / "score.mid").exists()


# --------------------------------------------------------------------------- choices and bad input


def test_formats_choose_the_files(song, tmp_path):
    abc, score, _, _ = song
    files = render_all(abc, score, tmp_path, formats=["svg", "abc"])
    assert list(files) == ["abc", "svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score.abc", "score.svg"]


def test_default_soundfont_is_the_one_in_pretty_midi():
    path = render.default_soundfont()
    assert path.is_file() and path.parent.name == "pretty_midi"


@pytest.mark.parametrize(
    "score_text, formats, message",
    [
        (None, None, "expected a music21 Score"),
        ("X:1\nM:4/4\nL:1/4\nK:C\nz4|z4|z4|]\n", None, "no notes"),
        ("X:1\n%%MIDI program 300\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|]\n", None, "program"),
        ("X:1\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|]\n", ["mp3"], "unknown output format"),
        ("X:1\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|]\n", [], "no output formats"),
    ],
    ids=["not-a-score", "only-rests", "bad-program", "unknown-format", "no-format"],
)
def test_bad_input_raises_and_keeps_the_old_files(song, tmp_path, score_text, formats, message):
    abc, score, _, _ = song
    render_all(abc, score, tmp_path, formats=["abc", "midi"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad_score = read(score_text) if score_text else None
    with pytest.raises(RenderError, match=message):
        render_all(score_text or abc, bad_score, tmp_path, formats=formats)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_missing_soundfont_is_a_render_error(song, tmp_path):
    abc, score, _, _ = song
    with pytest.raises(RenderError, match="SoundFont not found"):
        render_all(abc, score, tmp_path, RenderConfig(soundfont=tmp_path / "none.sf2"), formats=["wav"])
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_soundfont_is_a_render_error(song, tmp_path):
    abc, score, _, _ = song
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF not really a SoundFont")
    out = tmp_path / "out"
    with pytest.raises(RenderError, match="cannot load the SoundFont"):
        render_all(abc, score, out, RenderConfig(soundfont=fake), formats=["wav"])
    assert not out.exists()


def test_output_folder_that_is_a_file(song, tmp_path):
    abc, score, _, _ = song
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    with pytest.raises(RenderError, match="cannot write"):
        render_all(abc, score, blocker, formats=["abc"])


def test_failed_write_leaves_no_half_written_file(song, tmp_path, monkeypatch):
    abc, score, _, _ = song
    real_replace = render.os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(render.os, "replace", failing_replace)
    with pytest.raises(RenderError, match="No space left"):
        render_all(abc, score, tmp_path, formats=["abc", "midi", "musicxml"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score.abc"]  # whole, and nothing else


def test_not_musicxml_is_a_render_error():
    with pytest.raises(RenderError, match="not MusicXML"):
        render.to_svg_pages("<html><body>hello</body></html>")

