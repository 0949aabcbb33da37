"""Tests for agent.abc_lyrics: ABC 2.1 section 5 lyric alignment, verses and budgets."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.abc_lyrics import align_lyrics, note_slots_per_line, parse_lyric_line, slots_used
from agent.abc_text import Kind, parse_tune, tokenize_body, tunebook_sources
from agent.errors import AbcError

DATA = Path(__file__).parent / "data" / "abc"
TEXT_FILES = [p for p in sorted(DATA.rglob("*.abc"))
              if p.name not in ("non_utf8.abc", "random_bytes.abc")]


def _lyrics(body: str, header: str = "M:4/4\nL:1/4\nK:C"):
    tune = parse_tune(f"X:1\nT:test\n{header}\n{body}\n")
    return align_lyrics(tokenize_body(tune.body, tune))


def _texts(verse) -> list:
    return [s.text if s else None for s in verse]


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_every_data_file_aligns(path: Path):
    """Alignment never fails; every verse has one entry per note and syllables in order."""
    for source in tunebook_sources(path.read_text(encoding="utf-8")):
        try:
            tune = parse_tune(source.text, first_line=source.first_line, inherited=source.header)
        except AbcError:
            continue
        tokens = tokenize_body(tune.body, tune)
        lyrics = align_lyrics(tokens)
        note_count = sum(1 for t in tokens if t.kind in (Kind.NOTE, Kind.CHORD))
        assert len(lyrics.notes) == note_count
        for verse in lyrics.verses:
            assert len(verse) == note_count
        for slots in note_slots_per_line(tokens):
            assert slots.notes == sum(slots.per_bar)


def test_parse_rules():
    events = parse_lyric_line(r"Hap-py birth-day_ to~you * | gra- - - tum A\-men")
    assert [(e.kind, e.syllable.text if e.syllable else None,
             e.syllable.syllabic if e.syllable else None) for e in events] == [
        ("syllable", "Hap", "begin"), ("syllable", "py", "end"),
        ("syllable", "birth", "begin"), ("syllable", "day", "end"), ("hold", None, None),
        ("syllable", "to you", "single"), ("skip", None, None), ("bar", None, None),
        ("syllable", "gra", "begin"), ("hyphen", None, None), ("hyphen", None, None),
        ("syllable", "tum", "end"), ("syllable", "A-men", "single")]
    assert slots_used(r"Hap-py birth-day_ to~you * | gra- - - tum A\-men") == 12
    assert parse_lyric_line("la % a comment") == parse_lyric_line("la")


def test_middle_syllables():
    syllables = [e.syllable for e in parse_lyric_line("ha-lle-lu-jah") if e.syllable]
    assert [s.syllabic for s in syllables] == ["begin", "middle", "middle", "end"]


def test_verses_and_blocks_follow_their_music_lines():
    lyrics = _lyrics("C D E F|\nw:one two three four\nw:un deux trois quatre\n"
                     "G A B c|\nw:five six se-ven")
    assert len(lyrics.verses) == 2
    assert _texts(lyrics.verses[0]) == ["one", "two", "three", "four", "five", "six", "se",
                                        "ven"]
    assert _texts(lyrics.verses[1]) == ["un", "deux", "trois", "quatre"] + [None] * 4
    assert [(line.verse, line.first_note, line.last_note) for line in lyrics.lines] == [
        (1, 0, 4), (2, 0, 4), (1, 4, 8)]
    assert lyrics.issues == ()


def test_rests_and_grace_notes_take_no_syllable_and_tied_notes_do():
    lyrics = _lyrics("{g}C z D2- | D E z F |\nw:a b c d e")
    assert _texts(lyrics.verses[0]) == ["a", "b", "c", "d", "e"]
    assert [t.text for t in lyrics.notes] == ["C", "D2", "D", "E", "F"]


def test_hold_extends_and_bar_jumps():
    lyrics = _lyrics("C D E F | G A B c | d4 |\nw:long_ _ word | next | end")
    verse = lyrics.verses[0]
    assert _texts(verse) == ["long", None, None, "word", "next", None, None, None, "end"]
    assert verse[0].extends and not verse[3].extends
    assert lyrics.issues == ()


def test_too_many_and_too_few_are_reported_as_data():
    many = _lyrics("C D | E2 |]\nw:a b c d e").issues
    few = _lyrics("C D | E F |]\nw:a b").issues
    assert [(i.kind, i.extra, i.notes, i.line) for i in many] == [("too-many", 2, 3, 7)]
    assert [(i.kind, i.extra, i.notes) for i in few] == [("too-few", 2, 4)]
    assert "2 syllables more than the 3 notes" in many[0].message
    assert "2 notes have no syllable" in few[0].message


def test_words_after_the_tune_are_not_aligned():
    lyrics = _lyrics("C D E F|\nW:These words are printed after the tune")
    assert not lyrics.has_lyrics and lyrics.verses == ()


def test_continuation_lines_join_the_verse():
    lyrics = _lyrics("C D E F|\nw:one two\n+:three four")
    assert _texts(lyrics.verses[0]) == ["one", "two", "three", "four"]


def test_voices_have_separate_lyrics():
    lyrics = _lyrics("V:1\nC D E F|\nw:a b c d\nV:2\nG A B c|\nw:e f g h\nV:1\nC D E F|\n"
                     "w:i j k l")
    assert _texts(lyrics.verses[0]) == list("abcdefghijkl")


def test_twinkle_file_two_verses_per_line():
    tune = parse_tune((DATA / "hard" / "lyrics_verses_twinkle.abc").read_text())
    tokens = tokenize_body(tune.body, tune)
    lyrics = align_lyrics(tokens)
    assert len(lyrics.verses) == 2 and lyrics.issues == ()
    assert _texts(lyrics.verses[0])[:7] == ["Twin", "kle,", "twin", "kle,", "lit", "tle",
                                            "star,"]
    assert _texts(lyrics.verses[1])[28:] == _texts(lyrics.verses[0])[28:]
    assert [s.syllabic for s in lyrics.verses[0][:2]] == ["begin", "end"]
    assert [(s.notes, s.per_bar) for s in note_slots_per_line(tokens)] == [
        (14, (4, 3, 4, 3))] * 3


def test_melisma_file_places_every_rule():
    tune = parse_tune((DATA / "hard" / "lyrics_melisma_rules.abc").read_text())
    lyrics = align_lyrics(tokenize_body(tune.body, tune))
    assert lyrics.issues == ()
    verse = lyrics.verses[0]
    assert _texts(verse) == ["Oh,", "the", "lone", "ly", None, "road", "goes", "on", "and", "on",
                             None, "A", "las my", "love,", "fare", "thee", "well,", "so-called",
                             None, None, "home."]
    assert verse[3].extends and verse[9].extends and verse[17].extends
