"""Tests of agent.edits on real tunes: every edit is checked note by note and bar by bar.

Tunes come from tests/data/abc/ when it has any, and from music21's bundled ABC corpus
(O'Neill's 1850, Ryan's Mammoth Collection, Aird's Airs, Essen folk songs), read as raw text.
Pitches are read back with agent.abc_text's tokenizer and, for a sample, with music21
(told to read ABC 2.1, so accidentals carry through the bar as the standard says).
"""
from __future__ import annotations

import functools
import statistics
import time
from fractions import Fraction
from pathlib import Path

import music21
import pytest

from agent.abc_text import (
    LETTER_SEMITONES, LETTERS, Kind, parse_key, parse_tune, split_bars, tokenize_body,
    tunebook_sources,
)
from agent.edits import (
    MODE_STEPS, EditConfig, apply_edit, apply_edits, change_length, change_mode, moved_degrees,
    replace_bar, repeat_part, resolve_span, set_instrument, set_tempo, set_title, transpose,
)
from agent.errors import AbcError, InputError
from agent.ops import (
    ChangeLength, ChangeMode, KeyName, RepeatPart, ReplaceBar, SetInstrument, SetTempo, SetTitle,
    Span, Transpose,
)
from agent.understand import understand
from agent.validate import validate_abc

CORPUS = Path(music21.__file__).parent / "corpus"
BOOKS = ("oneills1850/0001-0050.abc", "oneills1850/0201-0300.abc", "oneills1850/1001-1031.abc",
         "airdsAirs/book1.abc", "airdsAirs/book3.abc", "essenFolksong/han1.abc",
         "essenFolksong/ballad10.abc", "essenFolksong/irl.abc", "miscFolk/americanfifeopus.abc",
         "miscFolk/northumbrianminstrelsyopus.abc")
# Ryan's Mammoth Collection is one tune per file: every 100th file.
RYANS_STRIDE = 100
LOCAL = Path(__file__).parent / "data" / "abc"
PITCHED = (Kind.NOTE, Kind.CHORD, Kind.GRACE)


def _corpus_tunes(per_book: int = 8) -> list[tuple[str, str]]:
    """(id, text) of readable single-voice tunes with at least 8 bars, a fixed sample."""
    tunes = []
    sources = [(p.stem, p.read_text(encoding="latin-1")) for p in sorted(LOCAL.glob("*.abc"))]
    paths = [CORPUS / book for book in BOOKS]
    paths += sorted((CORPUS / "ryansMammoth").glob("*.abc"))[::RYANS_STRIDE]
    for path in paths:
        if path.exists():
            sources.append((path.stem, path.read_text(encoding="latin-1")))
    for name, text in sources:
        taken = 0
        found = tunebook_sources(text)
        stride = max(1, len(found) // per_book)
        for index, source in enumerate(found[::stride]):
            tune_text = source.header_text + source.text
            try:
                tune = parse_tune(tune_text)
            except AbcError:
                continue
            tokens = tokenize_body(tune.body, tune)
            voices = {t.voice for t in tokens if t.is_timed}
            if len(voices) != 1 or len(split_bars(tokens, tune)) < 8:
                continue
            tunes.append((f"{name}-{index * stride}", tune_text))
            taken += 1
            if taken == per_book:
                break
    return tunes


TUNES = _corpus_tunes()
IDS = [name for name, _ in TUNES]


def _tokens(text: str):
    tune = parse_tune(text)
    return tune, tokenize_body(tune.body, tune)


def _bar_texts(text: str) -> list[str]:
    tune, tokens = _tokens(text)
    return [bar.text_in(tune.body) for bar in split_bars(tokens, tune)]


def _header_lines(text: str, skip: str) -> list[str]:
    tune = parse_tune(text)
    return [line for line in text[:tune.body_offset].splitlines() if not line.startswith(skip)]


@functools.lru_cache(maxsize=256)
def _music21_pitches(text: str) -> list[int]:
    """MIDI pitches of every note music21 reads, chord symbols left out."""
    score = music21.converter.parse("%abc-2.1\n" + text, format="abc")
    pitches = []
    for element in score.recurse().notes:
        if isinstance(element, music21.harmony.ChordSymbol):
            continue
        pitches += [p.midi for p in element.pitches]
    return pitches


def test_corpus_sample_is_real():
    assert len(TUNES) >= 40, "the music21 corpus sample should hold at least 40 tunes"


# --------------------------------------------------------------------------------------------
# Transposition


@pytest.mark.parametrize("semitones", [2, -5, 7, -12, 1])
@pytest.mark.parametrize("name,text", TUNES, ids=IDS)
def test_transpose_moves_every_pitch_and_nothing_else(name, text, semitones):
    result = transpose(text, Transpose(semitones=semitones))
    old_tune, old = _tokens(text)
    new_tune, new = _tokens(result.abc)
    assert [t.kind for t in new] == [t.kind for t in old]
    for before, after in zip(old, new):
        if before.kind in PITCHED:
            assert after.pitches == tuple(p + semitones for p in before.pitches), (before, after)
        elif before.kind is Kind.CHORD_SYMBOL:
            continue
        elif before.kind in (Kind.FIELD, Kind.INLINE_FIELD) and "K:" in before.text[:3]:
            continue
        else:
            assert after.text == before.text
    assert _header_lines(result.abc, "K:") == _header_lines(text, "K:")
    assert result.abc[len(result.abc) - len(new_tune.trailing):] == old_tune.trailing
    # the new key signature is what the K: names, and it moved by the interval
    if old_tune.key.tonic and old_tune.key.sharps is not None:
        assert (new_tune.key.sharps - old_tune.key.sharps) % 12 == (7 * semitones) % 12


def _hard_tunes() -> list[tuple[str, str]]:
    tunes = []
    for path in sorted((LOCAL / "hard").glob("*.abc")):
        for index, source in enumerate(tunebook_sources(path.read_text(encoding="utf-8"))):
            tunes.append((f"{path.stem}-{index}", source.header_text + source.text))
    return tunes


HARD = _hard_tunes()


@pytest.mark.parametrize("semitones", [3, -4])
@pytest.mark.parametrize("name,text", HARD, ids=[n for n, _ in HARD])
def test_transpose_hard_tunes(name, text, semitones):
    """Voices, inline key and meter changes, ties, tuplets, lyrics: every pitch moves."""
    result = transpose(text, Transpose(semitones=semitones))
    _, old = _tokens(text)
    _, new = _tokens(result.abc)
    assert [t.kind for t in new] == [t.kind for t in old]
    for before, after in zip(old, new):
        if before.kind in PITCHED:
            assert after.pitches == tuple(p + semitones for p in before.pitches), (before, after)
        elif before.kind in (Kind.LYRICS, Kind.COMMENT, Kind.DECORATION, Kind.BAR, Kind.SPACE):
            assert after.text == before.text


MALFORMED = sorted((LOCAL / "malformed").glob("*.abc"))


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_tunes_give_clear_errors(path):
    from agent.errors import TunesmithError

    text = path.read_bytes().decode("utf-8", errors="replace")
    for op in (Transpose(semitones=2), ChangeMode("minor"), SetTempo(factor=1.2),
               SetTitle("x"), ReplaceBar(1, "A2"), ChangeLength(delta=-1), RepeatPart(None)):
        try:
            result = apply_edit(text, op)
        except TunesmithError as error:
            assert str(error).strip()
        else:
            assert isinstance(result.abc, str) and result.summary


MUSIC21_SAMPLE = TUNES[::6]


@pytest.mark.parametrize("semitones", [3, -2])
@pytest.mark.parametrize("name,text", MUSIC21_SAMPLE, ids=[n for n, _ in MUSIC21_SAMPLE])
def test_transpose_agrees_with_music21(name, text, semitones):
    before = _music21_pitches(text)
    tokenizer = [p for t in _tokens(text)[1] if t.kind in PITCHED for p in t.pitches]
    if before != tokenizer:  # e.g. old "!" line breaks, read as decorations by ABC 2.1
        pytest.skip("music21 and the ABC 2.1 tokenizer read the original differently")
    after = _music21_pitches(transpose(text, Transpose(semitones=semitones)).abc)
    assert before, "music21 read no notes"
    assert after == [p + semitones for p in before]


def test_music21_and_the_tokenizer_agree_on_most_of_the_sample():
    agree = sum(_music21_pitches(text) == [p for t in _tokens(text)[1] if t.kind in PITCHED
                                           for p in t.pitches] for _, text in MUSIC21_SAMPLE)
    assert agree >= len(MUSIC21_SAMPLE) - 3, f"only {agree} of {len(MUSIC21_SAMPLE)} agree"


@pytest.mark.parametrize("text,op,expected_key,expected_body", [
    # naturals added: C# in G becomes B natural in F
    ("X:1\nL:1/8\nK:G\n^c c F f|\n", Transpose(semitones=-2), "F", "=B B E e|\n"),
    # naturals dropped: B natural in F becomes C# in G
    ("X:1\nL:1/8\nK:F\n=B B E e|\n", Transpose(semitones=2), "G", "^c c F f|\n"),
    # octave marks and letter case follow the pitch
    ("X:1\nL:1/8\nK:C\nC, B c' b|\n", Transpose(semitones=1), "Db", "D, c d' c'|\n"),
    ("X:1\nL:1/8\nK:C\nC, B c' b|\n", Transpose(semitones=-12), "C", "C,, B, c B|\n"),
    # chords, grace notes and chord symbols move; decorations, lyrics, comments stay
    ('X:1\nL:1/8\nK:D\n"D"!trill![DFA]2 {g}f>e % keep me\nw: la la\n', Transpose(semitones=2),
     "E", '"E"!trill![EGB]2 {a}g>f % keep me\nw: la la\n'),
    # to a key by name, the spelling the person gave
    ("X:1\nL:1/8\nK:Dm\nDEFA|^c2d2|\n", Transpose(to_key=KeyName("E", "minor")), "Em",
     "EFGB|^d2e2|\n"),
    ("X:1\nL:1/8\nK:G\nGABc|\n", Transpose(to_key=KeyName("F#")), "F#", "FGAB|\n"),
    ("X:1\nL:1/8\nK:G\nGABc|\n", Transpose(to_key=KeyName("Gb")), "Gb", "GABc|\n"),
])
def test_transpose_spelling(text, op, expected_key, expected_body):
    result = transpose(text, op)
    tune = parse_tune(result.abc)
    assert _header_field_value(result.abc, "K") == expected_key
    assert tune.body == expected_body


def _header_field_value(text: str, name: str) -> str:
    tune = parse_tune(text)
    return next(f.value for f in tune.fields if f.name == name)


def test_transpose_inline_key_changes_and_modified_keys():
    text = "X:1\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|[K:G]GABc d2 =f2|\nK:Am\nABcd e2^g2|]\n"
    result = transpose(text, Transpose(semitones=2))
    _, old = _tokens(text)
    _, new = _tokens(result.abc)
    assert [t.pitches for t in new if t.kind is Kind.NOTE] == [
        tuple(p + 2 for p in t.pitches) for t in old if t.kind is Kind.NOTE]
    assert "[K:A]" in result.abc and "\nK:Bm\n" in result.abc
    no_key = "X:1\nL:1/8\nK:D\nDEF|\nK:none\nDEF|[K:Bb]B=Bc|\nK: clef=bass\nBcd|\n"
    result = transpose(no_key, Transpose(semitones=2))
    assert [t.pitches[0] for t in _tokens(result.abc)[1] if t.kind is Kind.NOTE] == [
        t.pitches[0] + 2 for t in _tokens(no_key)[1] if t.kind is Kind.NOTE]
    assert "\nK:none\n" in result.abc and "\nK: clef=bass\n" in result.abc
    modified = "X:1\nL:1/8\nK:D ^g\nDEFG|\n"
    result = transpose(modified, Transpose(semitones=2))
    assert _header_field_value(result.abc, "K") == "E ^a"
    assert [t.pitches[0] for t in _tokens(result.abc)[1] if t.kind is Kind.NOTE] == [64, 66, 68, 70]


def test_transpose_to_another_mode_changes_mode_after_moving():
    text = "X:1\nL:1/8\nK:G\nGABc dBGB|\n"
    result = transpose(text, Transpose(to_key=KeyName("E", "minor")))
    assert _header_field_value(result.abc, "K") == "Em"
    pitches = [t.pitches[0] for t in _tokens(result.abc)[1] if t.kind is Kind.NOTE]
    # G major down to E major (-3), then E major to E minor: G#->G, C#->C, D#->D
    assert pitches == [64, 66, 67, 69, 71, 67, 64, 67]
    assert "minor third" in result.summary and "parallel" in result.summary


def test_transpose_errors():
    text = "X:1\nK:G\nG|\n"
    with pytest.raises(InputError, match="already in G major"):
        transpose(text, Transpose(to_key=KeyName("G")))
    with pytest.raises(InputError, match="at most four octaves"):
        transpose(text, Transpose(semitones=60))
    with pytest.raises(InputError, match="MIDI range"):
        transpose("X:1\nK:C\nc''''|\n", Transpose(semitones=48))
    with pytest.raises(AbcError):
        transpose("X:1\nT:no key\nCDE|\n", Transpose(semitones=2))
    with pytest.raises(InputError, match="empty"):
        transpose("  ", Transpose(semitones=2))


# --------------------------------------------------------------------------------------------
# Mode


def _degree_rule(tune, before_tokens, target):
    """The pitches a parallel mode change must give: diatonic degrees move, others stay."""
    old, new = MODE_STEPS[_mode(tune.key.mode)], MODE_STEPS[target]
    tonic = tune.key.tonic
    letter = LETTERS.index(tonic[0])
    tonic_class = (LETTER_SEMITONES[tonic[0]] + {"": 0, "#": 1, "b": -1}[tonic[1:]]) % 12
    expected = []
    for token in before_tokens:
        if token.kind not in PITCHED:
            continue
        moved = []
        for pitch, name in zip(token.pitches, token.names):
            degree = (LETTERS.index(name[0]) - letter) % 7
            diatonic = (pitch - tonic_class - old[degree]) % 12 == 0
            moved.append(pitch + new[degree] - old[degree] if diatonic else pitch)
        expected.append(tuple(moved))
    return expected


def _mode(mode: str) -> str:
    return {"ionian": "major", "aeolian": "minor"}.get(mode, mode)


@pytest.mark.parametrize("name,text", TUNES[::2], ids=IDS[::2])
def test_parallel_mode_change_per_note(name, text):
    tune, before = _tokens(text)
    if tune.key.tonic is None or any(
            t.kind in (Kind.FIELD, Kind.INLINE_FIELD) and "K:" in t.text[:3] for t in before):
        pytest.skip("no tonic, or key changes inside (covered by a tune of its own)")
    current = _mode(tune.key.mode)
    for target in ("minor", "major", "dorian"):
        if target == current:
            continue
        result = change_mode(text, ChangeMode(target))
        new_tune, after = _tokens(result.abc)
        assert new_tune.key.tonic == tune.key.tonic and _mode(new_tune.key.mode) == target
        assert [t.pitches for t in after if t.kind in PITCHED] == _degree_rule(tune, before, target)
        assert _bar_count(result.abc) == _bar_count(text)


def _bar_count(text: str) -> int:
    tune, tokens = _tokens(text)
    return len(split_bars(tokens, tune))


@pytest.mark.parametrize("name,text", TUNES[::3], ids=IDS[::3])
def test_relative_mode_change_keeps_every_note(name, text):
    tune = parse_tune(text)
    if tune.key.tonic is None or tune.key.text.strip() in ("H", "Hp", "HP"):
        pytest.skip("no tonic")
    target = "minor" if _mode(tune.key.mode) != "minor" else "major"
    result = change_mode(text, ChangeMode(target, "relative"))
    new = parse_tune(result.abc)
    assert _without_keys(new.body) == _without_keys(tune.body)
    assert new.key.alterations == tune.key.alterations
    old_keys = [t for t in _tokens(text)[1] if t.kind is Kind.FIELD and t.text.startswith("K:")]
    new_keys = [t for t in _tokens(result.abc)[1]
                if t.kind is Kind.FIELD and t.text.startswith("K:")]
    for before, after in zip(old_keys, new_keys):
        assert parse_key(after.text[2:]).alterations == parse_key(before.text[2:]).alterations
    assert _mode(new.key.mode) == target


def _without_keys(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.startswith("K:"))


def test_mode_change_examples_and_chord_symbols():
    text = 'X:1\nL:1/8\nK:D\n"D"DEFG "Bm"ABcd|"G"B2"A7"A2 ^A2d2|]\n'
    result = change_mode(text, ChangeMode("minor"))
    assert parse_tune(result.abc).body == '"Dm"DEFG "Bb"ABcd|"Gm"B2"A7"A2 ^A2d2|]\n'
    assert "lowered degree 3, lowered degree 6, lowered degree 7" in result.summary
    assert moved_degrees("major", "lydian") == {4: 1}
    relative = change_mode("X:1\nK:D\nK:G\nD|\n", ChangeMode("minor", "relative"))
    assert relative.abc.startswith("X:1\nK:Bm\n")
    score = music21.converter.parse("%abc-2.1\n" + result.abc, format="abc")
    assert score.recurse().getElementsByClass("KeySignature")[0].sharps == -1


def test_mode_change_errors():
    with pytest.raises(InputError, match="already in D minor"):
        change_mode("X:1\nK:Dm\nD|\n", ChangeMode("minor"))
    with pytest.raises(InputError, match="unknown mode"):
        change_mode("X:1\nK:D\nD|\n", ChangeMode("hypoaeolian"))
    with pytest.raises(InputError, match="names no key"):
        change_mode("X:1\nK:none\nD|\n", ChangeMode("minor"))


# --------------------------------------------------------------------------------------------
# Tempo, instrument, title


def test_tempo_factor_lands_on_a_metronome_mark():
    text = "X:1\nT:t\nM:3/4\nL:1/8\nQ:1/4=100\nK:G\nG6|\n"
    faster = set_tempo(text, SetTempo(factor=1.2))
    assert parse_tune(faster.abc).tempo.bpm == 120
    slower = set_tempo(text, SetTempo(factor=1 / 1.2))
    assert parse_tune(slower.abc).tempo.bpm == 84
    tiny = set_tempo(text, SetTempo(factor=1.01))
    assert parse_tune(tiny.abc).tempo.bpm == 104  # really faster, the next mark up
    assert faster.abc.replace("Q:1/4=120", "Q:1/4=100") == text


def test_tempo_set_inserted_and_inline():
    jig = "X:1\nT:t\nM:6/8\nL:1/8\nK:D\nDFA dAF|[Q:3/8=100]DFA d3|\n"
    result = set_tempo(jig, SetTempo(bpm=110))
    tune = parse_tune(result.abc)
    assert (tune.tempo.beat, tune.tempo.bpm) == (Fraction(3, 8), 110)
    assert "[Q:3/8=138]" in result.abc  # 100 x 110/80: the untempoed tune played at 80 (120 q)
    old_style = set_tempo("X:1\nL:1/8\nQ:180\nK:D\nD|\n", SetTempo(factor=0.8))
    assert "Q:144" in old_style.abc
    labelled = set_tempo('X:1\nQ:"Allegro" 1/4=132\nK:D\nD|\n', SetTempo(bpm=120))
    assert 'Q:"Allegro" 1/4=120' in labelled.abc
    with pytest.raises(InputError, match="out of range"):
        set_tempo(jig, SetTempo(bpm=5))
    with pytest.raises(InputError, match="positive"):
        set_tempo(jig, SetTempo(factor=-1))


@pytest.mark.parametrize("name,text", TUNES[:12], ids=IDS[:12])
def test_tempo_instrument_title_leave_the_music_alone(name, text):
    for op in (SetTempo(factor=1.2), SetTempo(bpm=90), SetInstrument(73, "flute"),
               SetTitle("New Name")):
        result = apply_edit(text, op)
        assert parse_tune(result.abc).body == parse_tune(text).body
        assert _bar_texts(result.abc) == _bar_texts(text)


def test_instrument_line():
    result = set_instrument("X:1\nT:t\n%%MIDI program 1 40\nK:G\nG|\n%%MIDI program 21\nA|\n",
                            SetInstrument(73, "flute"))
    assert "%%MIDI program 1 73\n" in result.abc and "%%MIDI program 73\nA|" in result.abc
    assert "General MIDI program 73" in result.summary


def _token_pitches(text: str) -> list[int]:
    _tune, tokens = _tokens(text)
    return [midi for token in tokens if token.kind in (Kind.NOTE, Kind.CHORD) for midi in token.pitches]


def test_instrument_moves_a_tune_by_octaves_into_its_range():
    name, original = TUNES[0]
    low = transpose(original, Transpose(semitones=-12)).abc  # now below the flute's lowest C
    assert min(_music21_pitches(low)) < 60, name

    def range_errors(text: str) -> list[str]:
        return [d.message for d in validate_abc(text).errors if d.code == "range"]

    flute_line = "%%MIDI program 73\nK:"
    assert range_errors(low.replace("K:", flute_line, 1))  # left low, the flute could not play it
    result = set_instrument(low, SetInstrument(73, "flute"))
    assert "up an octave" in result.summary and "flute's range" in result.summary
    assert _token_pitches(result.abc) == [p + 12 for p in _token_pitches(low)]
    assert _music21_pitches(result.abc) == _music21_pitches(original)  # back where it was
    assert min(_music21_pitches(result.abc)) >= 60
    assert parse_tune(result.abc).key == parse_tune(low).key
    assert range_errors(result.abc) == []
    # A tune wider than the instrument is left where it is; the validator names the notes.
    wide = "X:1\nM:4/4\nL:1/8\nK:G\nG,A,B,C DEFG|abc'd' e'f'g'a'|]\n"
    kept = set_instrument(wide, SetInstrument(74, "recorder"))
    assert "moved" not in kept.summary
    assert _token_pitches(kept.abc) == _token_pitches(wide)
    assert any("too low for a recorder" in message for message in range_errors(kept.abc))


def test_title_is_cleaned_and_inserted():
    result = set_title("X:1\nT:Old\nT:Subtitle\nK:G\nG|\n", SetTitle("The New\nK:C %x"))
    assert result.abc == "X:1\nT:The New\nT:Subtitle\nK:G\nG|\n"
    assert set_title("X:1\nK:G\nG|\n", SetTitle("Fresh")).abc == "X:1\nT:Fresh\nK:G\nG|\n"


# --------------------------------------------------------------------------------------------
# Bars: spans, repeats, length, replacement


TWO_PARTS = ("X:1\nT:Two parts\nM:4/4\nL:1/8\nK:G\n"
             "|:GABc dBGB|cBAG FDFA|GABc dBGB|cAFA G4:|\n"
             "|:gfed cBAG|FGAB cdef|gfed cBAG|FAdc B2G2:|\n")


def test_resolve_span():
    assert resolve_span(TWO_PARTS, Span("part", part="A")) == (1, 4)
    assert resolve_span(TWO_PARTS, Span("part", part="B")) == (5, 8)
    assert resolve_span(TWO_PARTS, Span("half", part="second")) == (5, 8)
    assert resolve_span(TWO_PARTS, Span("ending")) == (5, 8)
    assert resolve_span(TWO_PARTS, Span("beginning", end=2)) == (1, 2)
    with pytest.raises(InputError, match="no C part"):
        resolve_span(TWO_PARTS, Span("part", part="C"))


def test_repeat_part_changes_only_bar_lines():
    plain = TWO_PARTS.replace("|:", "|").replace(":|", "|")
    result = repeat_part(plain, RepeatPart(Span("bars", 5, 8)))
    assert _bar_texts(result.abc) == _bar_texts(plain)
    tune, tokens = _tokens(result.abc)
    bars = split_bars(tokens, tune)
    assert bars[4].starts_repeat and bars[7].ends_repeat
    assert not any(b.starts_repeat or b.ends_repeat for b in bars[:4])
    part = music21.converter.parse("%abc-2.1\n" + result.abc, format="abc").parts[0]
    assert len(part.expandRepeats().getElementsByClass("Measure")) == 12
    both = repeat_part(plain, RepeatPart(None))
    assert _bar_texts(both.abc) == _bar_texts(plain)
    assert "bars 1-4 and bars 5-8" in both.summary
    with pytest.raises(InputError, match="already repeated"):
        repeat_part(TWO_PARTS, RepeatPart(Span("part", part="B")))
    with pytest.raises(InputError, match="overlap the repeated bars 1-4"):
        repeat_part(TWO_PARTS, RepeatPart(Span("bars", 2, 3)))
    with pytest.raises(InputError, match="overlap the repeated bars 1-2"):
        repeat_part("X:1\nM:2/4\nL:1/8\nK:G\nGABc|dBAG:|Bcde|G4|]\n",
                    RepeatPart(Span("bars", 2, 3)))


@pytest.mark.parametrize("name,text", TUNES[::4], ids=IDS[::4])
def test_shorten_and_lengthen_keep_bars_identical(name, text):
    before = _bar_texts(text)
    try:
        short = change_length(text, ChangeLength(delta=-2))
    except InputError as error:  # a repeat sign or an ending in the way: said clearly
        assert "repeat" in str(error) or "ending" in str(error) or "lyrics" in str(error)
    else:
        after = _bar_texts(short.abc)
        assert after == before[:-3] + before[-1:]
    try:
        long = change_length(text, ChangeLength(delta=2))
    except InputError as error:
        assert "ending" in str(error) or "lyrics" in str(error) or "change" in str(error)
    else:
        after = _bar_texts(long.abc)
        assert len(after) == len(before) + 2
        assert after[:len(before) - 1] == before[:-1]
        assert after[-1] == before[-1]


def test_length_examples_and_errors():
    text = "X:1\nM:2/4\nL:1/8\nK:G\nGABc|dBAG|Bcde|dBAG|G4|]\n"
    assert change_length(text, ChangeLength(bars=3)).abc.endswith("GABc|dBAG|G4|]\n")
    assert _bar_texts(change_length(text, ChangeLength(factor=2)).abc) == (
        _bar_texts(text) + _bar_texts(text))
    pickup = "X:1\nM:2/4\nL:1/8\nK:G\nD|GABc|dBAG|Bcde|dBA|]\n"
    longer = change_length(pickup, ChangeLength(delta=2))
    assert _bar_texts(longer.abc) == ["D", "GABc", "dBAG", "Bcde", "dBAG", "Bcde", "dBA"]
    with pytest.raises(InputError, match="repeat sign"):
        change_length(TWO_PARTS, ChangeLength(delta=-5))
    inside = change_length(TWO_PARTS, ChangeLength(delta=-3))  # bars 5-7, inside the B part
    assert _bar_texts(inside.abc) == _bar_texts(TWO_PARTS)[:4] + _bar_texts(TWO_PARTS)[-1:]
    with pytest.raises(InputError, match="lyrics"):
        change_length(text.replace("G4|]\n", "G4|]\nw: la la la la\n"), ChangeLength(delta=1))
    with pytest.raises(InputError, match="already has 5 bars"):
        change_length(text, ChangeLength(bars=5))


REEL = ("X:1\nT:Reel\nM:4/4\nL:1/8\nK:D\n"
        "|:A2FA DAFA|B2GB dBGB|A2FA DAFA|BcdB AFD2:|\n"
        "|:d2fd adfd|e2ge bege|d2fd adfd|efge fdd2:|\n")


def test_replace_bar_leaves_other_bars_byte_identical():
    result = replace_bar(REEL, ReplaceBar(6, "e2 ^g2 b2 a2"))
    before, after = _bar_texts(REEL), _bar_texts(result.abc)
    assert after[5] == "e2 ^g2 b2 a2"
    assert after[:5] == before[:5] and after[6:] == before[6:]
    assert result.abc.replace("e2 ^g2 b2 a2", "e2ge bege") == REEL
    pitches = [t.pitches[0] for t in _tokens(result.abc)[1] if t.kind is Kind.NOTE]
    assert 80 in pitches  # the sharp of ^g is read in the bar's own key


def _measure_pitches(abc: str, tmp_path: Path) -> dict[str, list[str]]:
    """The engraved score's measures (MusicXML number -> the notes' steps and octaves)."""
    import re

    from agent.render import render_score_text

    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    xml = render_score_text(abc, folder, formats=["musicxml"])["musicxml"].read_text(encoding="utf-8")
    return {number: re.findall(r"<step>(\w)</step>\s*(?:<alter>-?\d</alter>\s*)?<octave>(\d)</octave>", body)
            for number, body in re.findall(r'<measure[^>]* number="(\d+)"[^>]*>(.*?)</measure>', xml, re.S)}


def test_bar_numbers_in_edits_are_the_engraved_scores(tmp_path):
    """O'Neill's jig opens with a pickup, which the score numbers 0: "bar 3" is the third full
    bar in the engraving, and a span, a repeat and a replaced bar all count so."""
    jig = (LOCAL / "oneills_darby_the_driver.abc").read_text(encoding="utf-8")
    before = _measure_pitches(jig, tmp_path)
    assert before["0"] == [("A", "4"), ("G", "4")]  # the pickup A/G/
    result = replace_bar(jig, ReplaceBar(3, "c3 e3"))
    after = _measure_pitches(result.abc, tmp_path)
    assert after["3"] == [("C", "5"), ("E", "5")]
    assert {n: m for n, m in after.items() if n != "3"} == {n: m for n, m in before.items() if n != "3"}
    assert result.summary.startswith("Bar 3 is now")
    assert resolve_span(jig, Span("bars", 0, 2)) == (1, 3)  # written bars: the pickup is the first
    assert resolve_span(jig, Span("beginning", end=2)) == (1, 3)  # the pickup and two full bars
    with pytest.raises(InputError, match="numbers its bars 0 \\(the pickup\\) to"):
        replace_bar(jig, ReplaceBar(99, "A6"))
    plain = TWO_PARTS.replace("|:", "|").replace(":|", "|")
    assert repeat_part(plain, RepeatPart(Span("bars", 5, 8))).summary.endswith("bars 5-8 now play twice.")


@pytest.mark.parametrize("op,message", [
    (ReplaceBar(99, "A8"), "there is no bar 99: the tune has 8 bars"),
    (ReplaceBar(0, "A8"), "there is no bar 0: the tune has 8 bars"),
    (ReplaceBar(2, "A4"), "bar 2 must last 4 beats (the meter is 4/4); 'A4' lasts 2 beats"),
    (ReplaceBar(2, "A4 B4 c2"),
     "bar 2 must last 4 beats (the meter is 4/4); 'A4 B4 c2' lasts 5 beats"),
    (ReplaceBar(2, "hello world"), "not ABC notes"),
    (ReplaceBar(2, "A4|B4"), "one bar of notes only"),
    (ReplaceBar(2, ""), "the new bar is empty"),
])
def test_replace_bar_errors(op, message):
    with pytest.raises(InputError) as error:
        replace_bar(REEL, op)
    assert message in str(error.value)


def test_every_exact_edit_keeps_untouched_bars():
    before = _bar_texts(REEL)
    for op, touched in ((ReplaceBar(3, "d8"), {2}), (SetTempo(factor=1.2), set()),
                        (SetTitle("x"), set()), (SetInstrument(21, "accordion"), set())):
        after = _bar_texts(apply_edit(REEL, op).abc)
        assert len(after) == len(before)
        assert [a for i, a in enumerate(after) if i not in touched] == [
            b for i, b in enumerate(before) if i not in touched]


# --------------------------------------------------------------------------------------------
# From words to an edited tune, speed


def test_message_to_edit_round_trip():
    request = understand("transpose it up a fifth and make it a bit faster", has_score=True)
    result = apply_edits(REEL, request.edits)
    tune, tokens = _tokens(result.abc)
    assert str(tune.key) == "A major"
    old = [t.pitches[0] for t in _tokens(REEL)[1] if t.kind is Kind.NOTE]
    assert [t.pitches[0] for t in tokens if t.kind is Kind.NOTE] == [p + 7 for p in old]
    assert tune.tempo.bpm == 132  # no Q: means 120; a bit faster (x1.1) is 132
    assert "Transposed up a fifth" in result.summary


def test_apply_edit_rejects_other_operations():
    with pytest.raises(InputError, match="not an exact edit"):
        apply_edit(REEL, Span("ending"))


THIRTY_TWO_BARS = ("X:1\nT:Long\nM:4/4\nL:1/8\nQ:1/4=112\nK:D\n" + (
    '|:"D"A2FA {g}DAFA|"G"B2GB dBGB|"D"A2FA ~DAFA|"A7"BcdB AFD2:|\n'
    '|:"D"d2fd adfd|"A"e2ge bege|"D"d2fd adfd|"A"efge fdd2:|\n') * 4)


def test_edits_are_fast_on_a_32_bar_tune():
    assert _bar_count(THIRTY_TWO_BARS) == 32
    ops = [Transpose(semitones=5), Transpose(to_key=KeyName("E", "minor")), SetTempo(factor=1.2),
           ChangeMode("minor"), ChangeMode("minor", "relative"), SetInstrument(73, "flute"),
           SetTitle("Fast"), ReplaceBar(9, "d8"), ChangeLength(delta=-2), ChangeLength(delta=4),
           RepeatPart(Span("bars", 1, 2))]
    plain = THIRTY_TWO_BARS.replace("|:", "|").replace(":|", "|")
    for op in ops:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            apply_edit(plain if isinstance(op, RepeatPart) else THIRTY_TWO_BARS, op)
            times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.1, (op, times)


def test_config_default_tempo():
    result = set_tempo("X:1\nM:4/4\nK:D\nD|\n", SetTempo(factor=2.0),
                       EditConfig(default_quarter_bpm=60))
    assert parse_tune(result.abc).tempo.bpm == 120
