"""Tests for agent.abc_reader: music21 scores that follow ABC 2.1, with lyrics attached.

Each ABC 2.1 correction is shown twice: what music21 alone does, and what the reader gives.
"""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from music21 import converter, corpus, key, meter, tempo

from agent.abc_reader import ReaderSettings, clean_abc, read_text_file, read_tune, read_tunebook
from agent.abc_text import Kind, parse_tune, tokenize_body, tunebook_sources
from agent.errors import AbcError, InputError

DATA = Path(__file__).parent / "data" / "abc"
ALL_FILES = sorted(DATA.rglob("*.abc"))
BINARY = {"non_utf8.abc", "random_bytes.abc"}


def _id(path: Path) -> str:
    return str(path.relative_to(DATA))


def _music21_alone(text: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.parse(text, format="abc", forceSource=True)


def _melody(score) -> list[str]:
    return [n.nameWithOctave for n in score.recurse().notes
            if "Harmony" not in n.classes and not n.isChord and not n.duration.isGrace]


def _tune(body: str, header: str = "M:4/4\nL:1/8\nK:C") -> str:
    return f"X:1\nT:test\n{header}\n{body}\n"


def _assert_events_match_tokens(read) -> None:
    """Every note of the text became music21 notes of exactly its ABC 2.1 pitch and length."""
    for token, elements in read.events:
        if token.kind in (Kind.NOTE, Kind.CHORD):
            for element in elements:
                assert sorted(p.midi for p in element.pitches) == sorted(token.pitches)
            total = sum(float(e.quarterLength) for e in elements)
            assert abs(total - float(token.duration * 4)) < 1e-6, token


# --------------------------------------------------------------------------------------------
# Every data file


@pytest.mark.parametrize("path", ALL_FILES, ids=_id)
def test_data_files_read_or_fail_cleanly(path: Path):
    """A file is read, or refused with InputError/AbcError and a one-line message."""
    try:
        text = read_text_file(path)
    except InputError as error:
        assert path.name in BINARY and "\n" not in str(error)
        return
    assert path.name not in BINARY
    try:
        results = read_tunebook(text)
    except AbcError as error:
        assert "malformed" in path.parts and str(error) and "\n" not in str(error)
        return
    assert results or not text.strip()
    for read in results:
        notes = [t for t in tokenize_body(read.tune.body, read.tune)
                 if t.kind in (Kind.NOTE, Kind.CHORD)]
        assert len(read.score.parts) >= 1
        if not any("could not be matched" in w for w in read.warnings):
            assert sum(1 for t, _ in read.events if t.kind in (Kind.NOTE, Kind.CHORD)) == len(
                notes)
            _assert_events_match_tokens(read)


# --------------------------------------------------------------------------------------------
# ABC 2.1 corrections


def test_accidentals_carry_through_the_bar():
    text = _tune("^F F f =F F | F")
    assert _melody(_music21_alone(text)) == ["F#4", "F4", "F5", "F4", "F4", "F4"]
    assert _melody(read_tune(text).score) == ["F#4", "F#4", "F#5", "F4", "F4", "F4"]


def test_inline_key_and_length_fields_take_effect():
    text = _tune("B2 [K:F] B2 [L:1/4] B B | B4 |")
    alone = _music21_alone(text)
    assert _melody(alone) == ["B4"] * 5
    read = read_tune(text)
    assert _melody(read.score) == ["B4", "B-4", "B-4", "B-4", "B-4"]
    assert [n.quarterLength for n in read.score.recurse().notes] == [1, 1, 1, 1, 4]
    keys = list(read.score.recurse().getElementsByClass(key.KeySignature))
    assert [k.sharps for k in keys] == [0, -1]
    assert keys[1].getContextByClass("Measure").number == keys[0].getContextByClass(
        "Measure").number


def test_body_key_change_shows_a_new_key_signature():
    read = read_tune((DATA / "hard" / "key_change_blue_stocking_clog.abc").read_text())
    keys = list(read.score.recurse().getElementsByClass(key.KeySignature))
    assert [k.sharps for k in keys] == [-2, -1]
    _assert_events_match_tokens(read)


def test_body_meter_line_before_notes_bars_the_next_bars_in_the_new_meter():
    # music21 alone cuts the first 4/4 bar into 3 + 1 beats (it skips the last field line
    # before a note); the reader's guard line keeps every bar whole.
    text = _tune("GABc d2|e2 d2 B2|\nM:4/4\nA2 B2 c2 d2|e4 d4|\nM:3/4\nG2 A2 B2|]", "M:3/4\nL:1/8\nK:G")
    read = read_tune(text)
    measures = list(read.score.parts[0].getElementsByClass("Measure"))
    assert [m.duration.quarterLength for m in measures] == [3.0, 3.0, 4.0, 4.0, 3.0]
    assert [m.timeSignature.ratioString for m in measures if m.timeSignature] == ["3/4", "4/4", "3/4"]
    _assert_events_match_tokens(read)


def test_locrian_and_explicit_signatures():
    text = _tune("B c d e f g a b | [K:D exp _b ^f] B c f b |", "M:4/4\nL:1/8\nK:Bloc")
    assert _music21_alone(text).recurse().getElementsByClass(key.KeySignature)[0].sharps == 5
    read = read_tune(text)
    first, second = read.score.recurse().getElementsByClass(key.KeySignature)
    assert (first.tonic.name, first.mode, first.sharps) == ("B", "locrian", 0)
    assert sorted(p.name for p in second.alteredPitches) == ["B-", "F#"]
    assert _melody(read.score) == ["B4", "C5", "D5", "E5", "F5", "G5", "A5", "B5", "B-4",
                                   "C5", "F#5", "B-5"]


def test_additive_meter_is_read_as_its_sum_with_groups():
    text = _tune("DFA dAF A2 | DFA dAF A2 |", "M:3/8+3/8+2/8\nL:1/8\nK:D")
    with pytest.raises(Exception):
        _music21_alone(text)
    read = read_tune(text)
    signature = read.score.recurse().getElementsByClass(meter.TimeSignature)[0]
    assert signature.ratioString == "3/8+3/8+2/8" and signature.barDuration.quarterLength == 4


def test_unknown_symbols_are_warnings_not_notes():
    text = _tune("C # D @ E ; F |")
    read = read_tune(text)
    assert _melody(read.score) == ["C4", "D4", "E4", "F4"]
    assert any("'#' is not ABC" in w for w in read.warnings)
    assert len(_melody(_music21_alone(_tune("!trill!C +fermata+D HE F |")))) != 4
    decorated = read_tune(_tune("!trill!C +fermata+D HE .F |"))
    notes = list(decorated.score.recurse().notes)
    assert _melody(decorated.score) == ["C4", "D4", "E4", "F4"]
    assert [type(e).__name__ for n in notes for e in n.expressions] == ["Trill", "Fermata",
                                                                        "Fermata"]
    assert type(notes[3].articulations[0]).__name__ == "Staccato"


def test_clef_does_not_move_pitches():
    read = read_tune(_tune("C, D, E, F, |", "M:4/4\nL:1/4\nK:G bass"))
    assert _melody(read.score) == ["C3", "D3", "E3", "F#3"]
    assert type(read.score.recurse().getElementsByClass("Clef")[0]).__name__ == "BassClef"


def test_ties_over_bar_lines_and_chords_follow_abc21():
    read = read_tune((DATA / "hard" / "accidentals_and_ties.abc").read_text())
    assert read.corrected > 0  # music21 alone carries tied accidentals too far
    _assert_events_match_tokens(read)


def test_invisible_and_multi_bar_rests_keep_their_time():
    read = read_tune(_tune("C2 x2 C4 | Z2 | C8 |"))
    rests = list(read.score.recurse().getElementsByClass("Rest"))
    assert [r.quarterLength for r in rests] == [1, 4, 4]
    assert rests[0].style.hideObjectOnPrint and not rests[1].style.hideObjectOnPrint
    assert len(read.score.parts[0].getElementsByClass("Measure")) == 4


def test_voices_become_parts():
    read = read_tune((DATA / "hard" / "voices_invisible_rests_mullindough.abc").read_text())
    assert [p.id for p in read.score.parts] == ["1", "2"]
    hidden = [r for r in read.score.parts[1].recurse().getElementsByClass("Rest")
              if r.style.hideObjectOnPrint]
    assert len(hidden) > 10
    _assert_events_match_tokens(read)


def test_metadata_and_tempo():
    read = read_tune("X:3\nT:The Title\nT:Subtitle\nC:A. Composer\nM:6/8\nL:1/8\n"
                     "Q:\"Lively\" 3/8=112\nK:G\nGAB c2d|\n")
    assert read.score.metadata.title == "The Title"
    assert read.score.metadata.composer == "A. Composer"
    mark = read.score.recurse().getElementsByClass(tempo.MetronomeMark)[0]
    assert (mark.number, mark.referent.quarterLength, mark.text) == (112, 1.5, "Lively")


# --------------------------------------------------------------------------------------------
# Lyrics


def test_lyrics_are_attached_with_verse_numbers_and_syllabic():
    read = read_tune((DATA / "hard" / "lyrics_verses_twinkle.abc").read_text())
    notes = [n for n in read.score.recurse().notes]
    first = notes[0].lyrics
    assert [(l.number, l.text, l.syllabic) for l in first] == [(1, "Twin", "begin"),
                                                               (2, "When", "single")]
    assert [(l.text, l.syllabic) for l in notes[1].lyrics] == [("kle,", "end"), ("the", "single")]
    assert not read.warnings


def test_musicxml_export_carries_the_lyrics(tmp_path: Path):
    read = read_tune((DATA / "hard" / "lyrics_melisma_rules.abc").read_text())
    path = Path(read.score.write("musicxml", fp=tmp_path / "song.musicxml"))
    xml = path.read_text(encoding="utf-8")
    assert xml.count("<lyric") == 17 and "<text>so-called</text>" in xml
    back = converter.parse(path)
    assert [n.lyric for n in back.recurse().notes if n.lyric][:4] == ["Oh,", "the", "lone", "ly"]


# --------------------------------------------------------------------------------------------
# clean_abc, files, tunebooks


def test_clean_abc_keeps_every_note_and_closes_repeats():
    text = (DATA / "malformed" / "unclosed_repeat.abc").read_text()
    result = clean_abc(text)
    assert result.text.rstrip().endswith(":|")
    assert "end of tune: closed the repeat left open by |:" in result.removed
    original = [t.pitches for t in tokenize_body(parse_tune(text).body, parse_tune(text))
                if t.kind is Kind.NOTE]
    cleaned = parse_tune(result.text)
    assert [t.pitches for t in tokenize_body(cleaned.body, cleaned) if t.kind is Kind.NOTE] \
        == original
    read = read_tune(text)
    assert len(read.score.expandRepeats().recurse().notes) == 2 * len(original)


@pytest.mark.parametrize("path", [p for p in ALL_FILES if "malformed" not in p.parts], ids=_id)
def test_clean_abc_output_is_read_by_music21_with_every_note(path: Path):
    for text in [s.header_text + s.text for s in tunebook_sources(path.read_text())]:
        tune = parse_tune(text)
        if len({t.voice for t in tokenize_body(tune.body, tune) if t.is_timed}) > 1:
            continue  # music21 splits V: voices its own way; read_tune parses them one by one
        cleaned = clean_abc(text)
        notes = [t for t in tokenize_body(tune.body, tune) if t.kind in (Kind.NOTE, Kind.CHORD)]
        parsed = _music21_alone(cleaned.text)
        melody = [n for n in parsed.recurse().notes
                  if "Harmony" not in n.classes and not n.duration.isGrace]
        assert len(melody) >= len(notes)  # more only where music21 splits a note at a bar line


def test_clean_abc_rewrites_inline_fields_and_special_rests():
    result = clean_abc(_tune("C [K:G] F x2 Z2 y .|"))
    assert "\nK:G\n" in result.text and "x2" not in result.text and "z8 | z8" in result.text
    assert not any("is not ABC" in line for line in result.removed)


def test_absurdly_long_notes_are_refused_before_music21():
    with pytest.raises(AbcError, match="C lasts 148 whole notes"):
        read_tune(_tune("C D E F |", "M:4/4\nL:148\nK:C"))


def test_read_text_file_refuses_what_is_not_abc_text(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        read_text_file(tmp_path / "missing.abc")
    with pytest.raises(InputError, match="not a file"):
        read_text_file(tmp_path)
    big = tmp_path / "big.abc"
    big.write_text("X:1\nK:C\n" + "C" * 2000)
    with pytest.raises(InputError, match="files up to 1,000 bytes"):
        read_text_file(big, ReaderSettings(max_file_bytes=1000))
    bom = tmp_path / "bom.abc"
    bom.write_bytes("\ufeffX:1\nK:C\nC|\n".encode("utf-8"))
    assert read_text_file(bom) == "X:1\nK:C\nC|\n"


def test_read_tune_refuses_several_tunes_and_tunebook_names_the_tune():
    book = (DATA / "hard" / "lyrics_verses_twinkle.abc").read_text() + "\n" + \
        (DATA / "hard" / "modes_and_key_signatures.abc").read_text()
    with pytest.raises(AbcError, match="holds 2 tunes"):
        read_tune(book)
    assert [r.tune.get("X") for r in read_tunebook(book)] == ["1", "3"]
    with pytest.raises(AbcError, match=r"line 19: tune X:2: the music starts before"):
        read_tunebook(book.replace("X:3\n", "X:2\nG|\n"))


# --------------------------------------------------------------------------------------------
# Agreement with the tokenizer on real tunes


def _corpus_sources(count: int, seed: int):
    root = Path(corpus.__file__).parent
    tunes = []
    for path in sorted(root.rglob("*.abc")):
        for source in tunebook_sources(path.read_text(encoding="utf-8", errors="replace")):
            tunes.append(source)
    random.Random(seed).shuffle(tunes)
    return tunes[:count]


def _agreement(count: int, seed: int) -> dict:
    """Read ``count`` corpus tunes; count notes music21 read as our tokenizer does."""
    stats = {"tunes": 0, "refused": 0, "unmatched": 0, "notes": 0, "corrected": 0}
    for source in _corpus_sources(count, seed):
        try:
            read = read_tunebook(source.header_text + source.text)[0]
        except AbcError:
            stats["refused"] += 1
            continue
        stats["tunes"] += 1
        if any("could not be matched" in w for w in read.warnings):
            stats["unmatched"] += 1
            continue
        _assert_events_match_tokens(read)
        stats["notes"] += sum(1 for t, _ in read.events if t.kind in (Kind.NOTE, Kind.CHORD))
        stats["corrected"] += read.corrected
    return stats


def test_music21_agrees_with_the_tokenizer_on_a_corpus_sample():
    stats = _agreement(25, seed=3)
    assert stats["tunes"] >= 24 and stats["unmatched"] <= 1, stats
    assert stats["corrected"] <= stats["notes"] * 0.001, stats


def _music21_alone_agreement(count: int, seed: int) -> dict:
    """The same comparison for music21 alone on the unprepared text (the 'before' number)."""
    from agent.abc_reader import _align

    stats = {"tunes": 0, "raised": 0, "unmatched": 0, "notes": 0, "pitch_differs": 0,
             "length_differs": 0}
    for source in _corpus_sources(count, seed):
        try:
            tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
        except AbcError:
            continue
        tokens = tokenize_body(tune.body, tune)
        if len({t.voice for t in tokens if t.is_timed}) != 1:
            continue
        stats["tunes"] += 1
        try:
            alone = _music21_alone(source.header_text + source.text)
        except Exception:  # music21 raises many kinds of exceptions on real tunes
            stats["raised"] += 1
            continue
        pairs = _align(alone.parts[0] if alone.parts else alone, tokens)
        if pairs is None:
            stats["unmatched"] += 1
            continue
        for token, elements in pairs:
            if token.kind in (Kind.NOTE, Kind.CHORD):
                stats["notes"] += 1
                pitches = [sorted(p.midi for p in e.pitches) for e in elements]
                stats["pitch_differs"] += any(p != sorted(token.pitches) for p in pitches)
                total = sum(float(e.quarterLength) for e in elements)
                stats["length_differs"] += abs(total - float(token.duration * 4)) > 1e-6
    return stats


@pytest.mark.slow
def test_music21_agrees_with_the_tokenizer_on_500_corpus_tunes():
    stats = _agreement(500, seed=1)
    print("\nreader (prepared text, then checked) over 500 corpus tunes:", stats)
    print("music21 alone over the same tunes:", _music21_alone_agreement(500, seed=1))
    assert stats["unmatched"] <= 5 and stats["corrected"] <= stats["notes"] * 0.001, stats


def test_a_low_melody_with_no_clef_stays_in_the_treble_clef_as_abc_says():
    """music21 guesses a clef from the notes' height; a song in a middle voice (A3-A4) went to
    the bass clef. ABC's default is treble; a clef the text names is kept."""
    from music21 import clef

    from agent.render import to_musicxml

    low = ("X:1\nT:Sea\nM:2/4\nL:1/8\nK:D\n"
           '|:"D"A,>B, A,A, | "D"A,>B, A,A | "D"AA GF | "Em"A,B, "A7"G,2 :|\n')
    clefs = [type(c) for c in read_tune(low).score.recurse().getElementsByClass(clef.Clef)]
    assert clefs == [clef.TrebleClef]
    assert b"<sign>G</sign>" in to_musicxml(read_tune(low).score)
    named = read_tune(low.replace("K:D", "K:D bass"))
    assert [type(c) for c in named.score.recurse().getElementsByClass(clef.Clef)] == [clef.BassClef]
    voices = read_tune("X:1\nM:2/4\nL:1/8\nK:D\nV:1\nDFAF|GBdB|]\nV:2 clef=bass\nD,4|G,4|]\n")
    assert [[type(c) for c in part.recurse().getElementsByClass(clef.Clef)]
            for part in voices.score.parts] == [[clef.TrebleClef], [clef.BassClef]]
