"""Tests for agent.abc_text: header fields, tokens with pitches and durations, bars.

Runs on every file in tests/data/abc (real tunes from music21's corpus, the hard list and the
malformed folder) and on a sample of music21's ABC corpus.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import FrozenInstanceError
from fractions import Fraction
from pathlib import Path

import pytest

from agent.abc_text import (Context, Kind, Token, default_unit_length, parse_key,
                            parse_meter, parse_tempo, parse_tune, parse_unit_length, scan_body,
                            split_bars, split_tunebook, tokenize_body, tunebook_sources)
from agent.errors import AbcError

DATA = Path(__file__).parent / "data" / "abc"
ALL_FILES = sorted(DATA.rglob("*.abc"))
TEXT_FILES = [p for p in ALL_FILES if p.name not in ("non_utf8.abc", "random_bytes.abc")]


def _id(path: Path) -> str:
    return str(path.relative_to(DATA))


def _tune(body: str, header: str = "M:4/4\nL:1/8\nK:C") -> tuple:
    tune = parse_tune(f"X:1\nT:test\n{header}\n{body}\n")
    return tune, tokenize_body(tune.body, tune)


def _notes(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind in (Kind.NOTE, Kind.CHORD)]


def corpus_sources(count: int, seed: int = 0) -> list[tuple[str, object]]:
    """A reproducible sample of (file, TuneSource) from music21's bundled ABC corpus."""
    from music21 import corpus

    root = Path(corpus.__file__).parent
    tunes = []
    for path in sorted(root.rglob("*.abc")):
        for source in tunebook_sources(path.read_text(encoding="utf-8", errors="replace")):
            tunes.append((str(path.relative_to(root)), source))
    random.Random(seed).shuffle(tunes)
    return tunes[:count]


# --------------------------------------------------------------------------------------------
# Every data file


@pytest.mark.parametrize("path", TEXT_FILES, ids=_id)
def test_tokens_cover_the_body_exactly(path: Path):
    """Tokens tile the body: their texts joined give it back byte for byte, with positions."""
    text = path.read_text(encoding="utf-8")
    sources = tunebook_sources(text)
    if not sources:
        assert not text.strip()
        return
    for source in sources:
        try:
            tune = parse_tune(source.text, first_line=source.first_line,
                              inherited=source.header)
        except AbcError as error:
            assert "malformed" in path.parts and str(error)
            continue
        tokens = tokenize_body(tune.body, tune)
        assert "".join(t.text for t in tokens) == tune.body
        position = 0
        lines = tune.body.split("\n")
        for token in tokens:
            assert token.start == position and token.end == position + len(token.text)
            position = token.end
            if token.kind is not Kind.LINE_BREAK:
                line_text = lines[token.line - tune.body_line]
                assert line_text[token.col - 1:token.col - 1 + len(token.text)] == token.text
            if token.kind in (Kind.NOTE, Kind.CHORD, Kind.GRACE):
                assert token.pitches and len(token.pitches) == len(token.names)
            else:
                assert not token.pitches
            assert (token.duration is not None) == (
                token.kind in (Kind.NOTE, Kind.CHORD) or token.kind is Kind.REST
                and not (token.text[0] in "ZX" and tune.meter.is_free))


@pytest.mark.parametrize("path", TEXT_FILES, ids=_id)
def test_bars_can_be_replaced_one_at_a_time(path: Path):
    """Replacing one bar's span changes that bar only; every other byte stays identical."""
    text = path.read_text(encoding="utf-8")
    for source in tunebook_sources(text):
        try:
            tune = parse_tune(source.text, first_line=source.first_line,
                              inherited=source.header)
        except AbcError:
            continue
        tokens = tokenize_body(tune.body, tune)
        bars = split_bars(tokens, tune)
        previous_end = -1
        for bar in bars:
            assert bar.start < bar.end and bar.start >= previous_end or bar.voice != bars[0].voice
            previous_end = bar.end
            edited = tune.body[:bar.start] + "z8" + tune.body[bar.end:]
            assert edited[:bar.start] == tune.body[:bar.start]
            assert edited[bar.start + 2:] == tune.body[bar.end:]
            retokenized = split_bars(tokenize_body(edited, tune), tune)
            assert len(retokenized) == len(bars)
            assert retokenized[bar.index].text_in(edited) == "z8"


# --------------------------------------------------------------------------------------------
# Header fields


def test_parse_tune_fields_lines_and_body():
    text = "%abc-2.1\nX:7\nT:Title % a comment\nT:Subtitle\nM:6/8\nL:1/8\nK:Ador\nABc|\n"
    tune = parse_tune(text, first_line=10)
    assert [(f.name, f.value, f.line) for f in tune.fields] == [
        ("X", "7", 11), ("T", "Title", 12), ("T", "Subtitle", 13), ("M", "6/8", 14),
        ("L", "1/8", 15), ("K", "Ador", 16)]
    assert tune.get("T") == "Title" and tune.get_all("T") == ["Title", "Subtitle"]
    assert tune.body == "ABc|\n" and tune.body_line == 17
    assert text[tune.body_offset:] == tune.body
    assert tune.key.mode == "dorian" and tune.key.tonic == "A"


@pytest.mark.parametrize("text, message", [
    ("", "the tune is empty"),
    ("X:1\nT:t\nM:4/4\n", "no K: (key) field"),
    ("X:1\nT:t\nABC|\nK:C\n", "the music starts before the K: (key) field"),
    ("X:1\nT:t\n\nK:C\nC\n", "a blank line ends the header"),
    ("X:1\nM:4/4/4\nK:C\nC\n", "cannot read the meter"),
    ("X:1\nL:fast\nK:C\nC\n", "cannot read the unit note length"),
    ("X:1\nK:Gfoo\nC\n", "unknown mode"),
    ("X:1\nK:G#\nC\n", "ABC key signatures have at most 7"),
])
def test_parse_tune_refuses_bad_headers(text: str, message: str):
    with pytest.raises(AbcError, match=re.escape(message)):
        parse_tune(text)


def test_file_header_is_inherited_and_free_text_dropped():
    book = ("%abc-2.1\nM:6/8\nL:1/8\n\nThis is free text about the book.\n\n"
            "X:1\nT:One\nK:G\nGAB|\n\nSome words between tunes.\n\nX:2\nT:Two\nM:3/4\nK:D\nD2E|\n")
    sources = tunebook_sources(book)
    assert [s.first_line for s in sources] == [7, 14]
    first = parse_tune(sources[0].text, first_line=7, inherited=sources[0].header)
    second = parse_tune(sources[1].text, first_line=14, inherited=sources[1].header)
    assert str(first.meter) == "6/8" and str(second.meter) == "3/4"
    assert first.body == "GAB|\n"
    assert "Some words" in first.trailing  # after a blank line: not part of the tune
    texts = split_tunebook(book)
    assert len(texts) == 2 and texts[0].startswith("M:6/8\nL:1/8\nX:1")


@pytest.mark.parametrize("value, bar, groups, symbol", [
    ("4/4", Fraction(1), (), None), ("C", Fraction(1), (), "C"), ("C|", Fraction(1), (), "C|"),
    ("6/8", Fraction(3, 4), (), None), ("2+3+2/8", Fraction(7, 8), (2, 3, 2), None),
    ("3/8+3/8+2/8", Fraction(1), (3, 3, 2), None), ("(3+2)/4", Fraction(5, 4), (3, 2), None),
    ("none", None, (), None), ("", None, (), None),
])
def test_meters(value: str, bar, groups, symbol):
    meter = parse_meter(value)
    assert meter.bar_length == bar and meter.groups == groups and meter.symbol == symbol


def test_default_unit_length_follows_abc_21():
    assert default_unit_length(parse_meter("2/4")) == Fraction(1, 16)
    assert default_unit_length(parse_meter("3/4")) == Fraction(1, 8)
    assert default_unit_length(parse_meter("6/8")) == Fraction(1, 8)
    assert default_unit_length(parse_meter("none")) == Fraction(1, 8)
    assert parse_tune("X:1\nM:2/4\nK:C\nC\n").unit_length == Fraction(1, 16)
    assert parse_tune("X:1\nK:C\nC\n").unit_length == Fraction(1, 8)
    assert parse_unit_length("1/4") == Fraction(1, 4)


@pytest.mark.parametrize("value, sharps, mode", [
    ("C", 0, "major"), ("Am", 0, "minor"), ("A minor", 0, "minor"), ("Gmix", 0, "mixolydian"),
    ("D Dorian", 0, "dorian"), ("E phr", 0, "phrygian"), ("F Lydian", 0, "lydian"),
    ("B loc", 0, "locrian"), ("Bb", -2, "major"), ("F#m", 3, "minor"), ("Ebdor", -5, "dorian"),
    ("C#loc", 2, "locrian"), ("Gb", -6, "major"), ("Cb", -7, "major"), ("EMin", 1, "minor"),
])
def test_every_mode_gets_its_signature(value: str, sharps: int, mode: str):
    key = parse_key(value)
    assert key.sharps == sharps and key.mode == mode


def test_explicit_and_modified_key_signatures():
    assert parse_key("D exp _b ^f").signature == {"F": 1, "B": -1}
    assert parse_key("D phr ^f").signature == {"E": -1, "F": 1, "B": -1}
    assert parse_key("none").signature == {} and parse_key("none").tonic is None
    assert parse_key("G treble8").clef == "treble8"
    assert parse_key("clef=bass", previous=parse_key("D")).sharps == 2
    assert parse_key("E phr -8va").extras == ("-8va",)


def test_tempo_forms():
    assert parse_tempo("1/4=120") .bpm == 120 and parse_tempo("3/8=80").beat == Fraction(3, 8)
    assert parse_tempo('"Allegro"').text == "Allegro" and parse_tempo('"Allegro"').bpm is None
    assert parse_tempo("1/8 3/8=40").beat == Fraction(1, 2)
    assert parse_tempo("120", Fraction(1, 16)).beat == Fraction(1, 16)


# --------------------------------------------------------------------------------------------
# Pitches


def test_accidentals_carry_to_the_end_of_the_bar_in_every_octave():
    _, tokens = _tune("^F f F, =F F | F ^^G g __A a =A a | c'")
    assert [t.names[0] for t in _notes(tokens)] == [
        "F#4", "F#5", "F#3", "F4", "F4", "F4", "G##4", "G##5", "A--4", "A--5", "A4", "A5", "C6"]


def test_propagation_directive_octave_and_not():
    _, octave = _tune("^F f F", "M:4/4\nL:1/8\n%%propagate-accidentals octave\nK:C")
    _, no_carry = _tune("^F F", "M:4/4\nL:1/8\nI:propagate-accidentals not\nK:C")
    assert [t.names[0] for t in _notes(octave)] == ["F#4", "F5", "F#4"]
    assert [t.names[0] for t in _notes(no_carry)] == ["F#4", "F4"]


def test_key_signature_and_middle_c():
    _, tokens = _tune("C c c' C, B b", "M:4/4\nL:1/8\nK:F")
    assert [t.pitches[0] for t in _notes(tokens)] == [60, 72, 84, 48, 70, 82]


def test_tie_over_a_bar_line_keeps_the_pitch_but_not_for_the_rest_of_the_bar():
    _, tokens = _tune("^c4 z2 c2- | c2 c2 [^FA]2 [FA]2 | F")
    assert [t.names for t in _notes(tokens)] == [
        ("C#5",), ("C#5",), ("C#5",), ("C5",), ("F#4", "A4"), ("F#4", "A4"), ("F4",)]


def test_inline_and_body_fields_take_effect_where_they_stand():
    tune, tokens = _tune("B B [K:F] B [L:1/4] B |\nK:D\nF [M:3/4] F |", "M:4/4\nL:1/8\nK:C")
    notes = _notes(tokens)
    assert [t.names[0] for t in notes] == ["B4", "B4", "B-4", "B-4", "F#4", "F#4"]
    assert [t.duration for t in notes] == [Fraction(1, 8)] * 3 + [Fraction(1, 4)] * 3
    bars = split_bars(tokens, tune)
    assert [str(b.meter) for b in bars] == ["4/4", "4/4"]
    _, after = scan_body(tune.body, tune)
    assert str(after.meter) == "3/4" and str(after.key) == "D major"


def test_voices_keep_their_own_state():
    tune, tokens = _tune("V:1\n[K:F] B2 B2|\nV:2\nB2 B2|\nV:1\nB2 B2|", "M:2/4\nL:1/8\nK:C")
    by_voice = {}
    for token in _notes(tokens):
        by_voice.setdefault(token.voice, []).append(token.names[0])
    assert by_voice == {"1": ["B-4"] * 4, "2": ["B4", "B4"]}
    assert [b.voice for b in split_bars(tokens, tune)] == ["1", "2", "1"]


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize("body, lengths", [
    ("A A2 A/ A// A3/2 A/4", ["1/8", "1/4", "1/16", "1/32", "3/16", "1/32"]),
    ("(3ABc d", ["1/12", "1/12", "1/12", "1/8"]),
    ("(3:2:4A B c d e", ["1/12", "1/12", "1/12", "1/12", "1/8"]),
    ("(5:4:5ABcde", ["1/10"] * 5),
    ("(2AB", ["3/16", "3/16"]),
    ("A>B A<B A>>B", ["3/16", "1/16", "1/16", "3/16", "7/32", "1/32"]),
    ("(3A>Bc", ["1/8", "1/24", "1/12"]),
    ("[CEG]2 [C2E]/ [CE]", ["1/4", "1/8", "1/8"]),
    ("{ga}A {/g}B", ["1/8", "1/8"]),
])
def test_durations(body: str, lengths: list[str]):
    _, tokens = _tune(body)
    assert [str(t.duration) for t in _notes(tokens)] == lengths


def test_rests_and_multi_bar_rests():
    tune, tokens = _tune("z2 x | Z4 | X |", "M:3/4\nL:1/8\nK:C")
    rests = [t for t in tokens if t.kind is Kind.REST]
    assert [t.duration for t in rests] == [Fraction(1, 4), Fraction(1, 8), Fraction(3),
                                           Fraction(3, 4)]
    bars = split_bars(tokens, tune)
    assert [(b.rest_bars, b.expected, b.is_full) for b in bars] == [
        (1, Fraction(3, 4), False), (4, Fraction(3), True), (1, Fraction(3, 4), True)]


def test_grace_notes_take_no_time_and_compound_tuplets():
    tune, tokens = _tune("{/g}A3 (4ABcd|", "M:6/8\nL:1/8\nK:C")
    grace = [t for t in tokens if t.kind is Kind.GRACE][0]
    assert grace.duration is None and grace.names == ("G5",)
    assert split_bars(tokens, tune)[0].duration == Fraction(3, 4)


# --------------------------------------------------------------------------------------------
# Unknown text is never a note


@pytest.mark.parametrize("body, unknown", [
    ("A # B @ c", ["#", "@"]),
    ('A "unclosed chord symbol B c', ['"unclosed chord symbol B c']),
    ("A [CE B", ["["]),
    ("A {unclosed grace", ["{unclosed grace"]),
    ("A J B", ["J"]),
    ("A 7 B", ["7"]),
    ("A ! B c", ["!"]),
])
def test_unknown_symbols_become_unknown_tokens(body: str, unknown: list[str]):
    _, tokens = _tune(body)
    assert [t.text for t in tokens if t.kind is Kind.UNKNOWN] == unknown
    assert all(not t.pitches for t in tokens if t.kind is Kind.UNKNOWN)


def test_decorations_symbols_and_annotations():
    tune = "X:1\nU:W=!fermata!\nK:C\n!trill!A +fermata+B .c ~d He Wf \"Am7\"g \"^slow\"a \"0\"b"
    parsed = parse_tune(tune)
    tokens = tokenize_body(parsed.body, parsed)
    kinds = [(t.kind.value, t.text) for t in tokens if t.kind not in (Kind.NOTE, Kind.SPACE,
                                                                     Kind.LINE_BREAK)]
    assert kinds == [("decoration", "!trill!"), ("decoration", "+fermata+"),
                     ("decoration", "."), ("decoration", "~"), ("decoration", "H"),
                     ("decoration", "W"), ("chord_symbol", '"Am7"'),
                     ("annotation", '"^slow"'), ("annotation", '"0"')]
    assert len(_notes(tokens)) == 9


def test_tokens_are_frozen():
    _, tokens = _tune("A")
    with pytest.raises(FrozenInstanceError):
        tokens[0].text = "B"


# --------------------------------------------------------------------------------------------
# Bars


def test_bars_with_pickup_endings_and_repeats():
    tune, tokens = _tune("A | B4 C4 |: D8 |1 E8 :|2 F4 G4 ||\n[K:G] G8 |]")
    bars = split_bars(tokens, tune)
    assert [b.text_in(tune.body) for b in bars] == ["A", "B4 C4", "D8", "E8", "F4 G4", "[K:G] G8"]
    assert [b.ending for b in bars] == [None, None, None, "1", "2", None]
    assert [b.starts_repeat for b in bars] == [False, False, True, False, False, False]
    assert [b.ends_repeat for b in bars] == [False, False, False, True, False, False]
    assert [b.number for b in bars] == [1, 2, 3, 4, 5, 6]
    assert bars[-1].line == 7 and [len(b.notes) for b in bars] == [1, 2, 1, 1, 2, 1]


def test_overlay_notes_do_not_count_twice():
    tune, tokens = _tune("A2 B2 c4 & C8 |")
    assert split_bars(tokens, tune)[0].duration == Fraction(1)


def test_split_bars_without_context_uses_body_meter_only():
    tokens = tokenize_body("CDEF|[M:2/4]GA|", Context(unit=Fraction(1, 4)))
    assert [b.expected for b in split_bars(tokens)] == [None, Fraction(1, 2)]


# --------------------------------------------------------------------------------------------
# Speed and the corpus


def test_a_32_bar_tune_tokenizes_in_a_few_milliseconds():
    line = "|:\"G\"GABc dedB|\"C\"cege \"D\"fgaf|(3gfe dB GBdB|1 cBAG FGAF:|2 cBAG G4|]\n"
    tune = parse_tune("X:1\nT:speed\nM:4/4\nL:1/8\nK:G\n" + line * 7 + "w:la la la\n")
    context = Context.from_tune(tune)
    assert len(split_bars(tokenize_body(tune.body, context), context)) >= 32
    runs = []
    for _ in range(5):  # best of five, in CPU time: the machine is shared
        start = time.process_time()
        for _ in range(20):
            split_bars(tokenize_body(tune.body, context), context)
        runs.append((time.process_time() - start) / 20)
    assert min(runs) < 0.010, f"{min(runs) * 1000:.1f} ms for 32 bars"


def test_corpus_sample_tokenizes_and_bars_add_up():
    """300 real tunes: every token stream tiles its body, most bars match their meter."""
    full = total = 0
    for _name, source in corpus_sources(300, seed=11):
        try:
            tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
        except AbcError:
            continue
        tokens = tokenize_body(tune.body, tune)
        assert "".join(t.text for t in tokens) == tune.body
        for bar in split_bars(tokens, tune):
            if bar.expected is not None:
                total += 1
                full += bar.is_full
    assert total > 3000 and full / total > 0.7, (full, total)


@pytest.mark.slow
def test_whole_corpus_tokenizes():
    failures = 0
    for _name, source in corpus_sources(100_000):
        try:
            tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
        except AbcError:
            failures += 1
            continue
        tokens = tokenize_body(tune.body, tune)
        assert "".join(t.text for t in tokens) == tune.body
        split_bars(tokens, tune)
    assert failures < 30
