"""Tests for agent.validate: diagnostics for people and for the repair loop."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from music21 import corpus

from agent.abc_reader import read_text_file
from agent.abc_text import tunebook_sources
from agent.errors import AbcError, InputError
from agent.validate import Report, ValidateSettings, validate_abc

DATA = Path(__file__).parent / "data" / "abc"
FAST = ValidateSettings(music21=False)

# What each data file must give: InputError, or (valid, the error codes reported).
EXPECTED: dict[str, object] = {
    "airds_braes_of_busbie.abc": (False, {"unknown-symbol"}),
    "essen_dongjia_chimi.abc": (False, {"missing-bar-line"}),
    "essen_kaisari.abc": (False, {"missing-bar-line"}),
    "nottingham_reel.abc": (True, set()),
    "oneills_darby_the_driver.abc": (False, {"bar-length"}),
    "oneills_maid_without_a_gown.abc": (False, {"bar-length"}),
    "ryans_acacia_reel.abc": (True, set()),
    "ryans_ypsilanti_hornpipe.abc": (True, set()),
    "hard/accidentals_and_ties.abc": (True, set()),
    "hard/additive_meter_and_tuplets.abc": (True, set()),
    "hard/broken_rhythm_slurs_airds.abc": (True, set()),
    "hard/chords_split_across_lines_duke_of_york.abc": (False, {"unknown-symbol", "bar-length"}),
    "hard/endings_all_the_rage.abc": (False, {"unknown-symbol"}),
    "hard/inline_key_oneills.abc": (True, set()),
    "hard/inline_meter_rum_and_onions.abc": (False, {"bar-length"}),
    "hard/inline_unit_length_oneills.abc": (True, set()),
    "hard/key_change_blue_stocking_clog.abc": (True, set()),
    "hard/lyrics_melisma_rules.abc": (True, set()),
    "hard/lyrics_verses_twinkle.abc": (True, set()),
    "hard/modes_and_key_signatures.abc": (True, set()),
    "hard/tie_over_bar_close_to_the_floor.abc": (True, set()),
    "hard/tuplet_grace_lady_behind_the_boat.abc": (True, set()),
    "hard/voices_invisible_rests_mullindough.abc": (True, set()),
    "malformed/bad_inline_field.abc": (False, {"field"}),
    "malformed/bad_meter.abc": (False, {"parse"}),
    "malformed/blank_line_in_tune.abc": (False, {"blank-line"}),
    "malformed/empty.abc": (False, {"empty"}),
    "malformed/header_only.abc": (False, {"no-notes"}),
    "malformed/lyrics_too_many.abc": (False, {"lyrics"}),
    "malformed/no_key.abc": (False, {"parse"}),
    "malformed/non_utf8.abc": InputError,
    "malformed/out_of_range.abc": (False, {"range"}),
    "malformed/overfull_bar.abc": (False, {"bar-length"}),
    "malformed/random_bytes.abc": InputError,
    "malformed/unclosed_repeat.abc": (False, {"repeat"}),
    "malformed/unknown_symbols.abc": (False, {"unknown-symbol"}),
}
ALL_FILES = sorted(DATA.rglob("*.abc"))


def _id(path: Path) -> str:
    return str(path.relative_to(DATA))


def _codes(text: str, settings: ValidateSettings = FAST) -> list[str]:
    return [d.code for d in validate_abc(text, settings).diagnostics]


def _tune(body: str, header: str = "M:4/4\nL:1/8\nK:C") -> str:
    return f"X:1\nT:test\n{header}\n{body}\n"


def test_every_data_file_has_an_expectation():
    assert sorted(_id(p) for p in ALL_FILES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", ALL_FILES, ids=_id)
def test_data_files(path: Path):
    """Each file gives its expected verdict; problems come with a clear one-line message."""
    expected = EXPECTED[_id(path)]
    if expected is InputError:
        with pytest.raises(InputError) as caught:
            read_text_file(path)
        assert "\n" not in str(caught.value)
        return
    valid, codes = expected
    report = validate_abc(read_text_file(path))
    assert report.valid is valid, report.format_text()
    assert {d.code for d in report.errors} == codes, report.format_text()
    for diagnostic in report.diagnostics:
        assert diagnostic.message and "\n" not in diagnostic.message
        assert diagnostic.severity in ("error", "warning")
        assert diagnostic.line is not None or diagnostic.code == "empty"
    json.dumps(report.to_dict())


# --------------------------------------------------------------------------------------------
# Bar lengths


def test_pickup_and_the_closing_bar_that_completes_it_are_fine():
    text = _tune("A | B4 C4 | D8 | E6 F ::\nde | f8 | g4 a4 | b6 :|", "M:4/4\nL:1/8\nK:G")
    assert validate_abc(text, FAST).valid


def test_short_bar_in_the_middle_is_an_error_with_beats():
    report = validate_abc(_tune("C2 D2 E2 F2 | G2 A2 B2 | c8 |]"), FAST)
    assert [str(d) for d in report.diagnostics] == [
        "line 6, bar 2: error bar-length: bar 2 has 3 beats; the meter 4/4 has 4 (1 missing)"]


def test_compound_meters_count_eighths():
    report = validate_abc(_tune("GAB c2d | e3 d2 | B3 G3 |]", "M:6/8\nL:1/8\nK:G"), FAST)
    assert report.errors[0].message == "bar 2 has 5 eighths; the meter 6/8 has 6 (1 missing)"


def test_a_closing_bar_that_does_not_complete_the_pickup_is_an_error():
    report = validate_abc(_tune("A | B8 | c8 | d4 |]"), FAST)
    assert [(d.code, d.bar) for d in report.errors] == [("bar-length", 4)]
    assert report.errors[0].message.startswith("the last bar has 2 beats")


def test_missing_bar_line_at_a_line_end():
    report = validate_abc(_tune("C2D2 | E2F2\nG2A2 | B4 |]", "M:2/4\nL:1/8\nK:C"), FAST)
    assert [(d.code, d.line, d.bar) for d in report.errors] == [("missing-bar-line", 6, 2)]
    assert "line 6 ends without a bar line" in report.errors[0].message


def test_multi_bar_rests_and_free_meter():
    assert validate_abc(_tune("Z4 | C8 |]"), FAST).valid
    assert validate_abc(_tune("CDEFGABcdefg |]", "M:none\nL:1/8\nK:C"), FAST).valid


def test_voices_are_checked_separately():
    text = _tune("V:1\nC4 | D8 |]\nV:2\nC8 | D4 |]")
    report = validate_abc(text, FAST)
    assert [(d.code, d.bar) for d in report.errors] == [("bar-length", 2)]
    assert report.errors[0].message.startswith("voice 2: the last bar")


# --------------------------------------------------------------------------------------------
# Other checks


def test_repeats_and_endings():
    assert _codes(_tune("|: C8 | D8 :| E8 | F8 :|")) == []
    assert _codes(_tune("|: C8 |: D8 :|")) == ["repeat"]
    assert _codes(_tune("|: C8 |1 D8 :|2 E8 |]")) == []
    assert _codes(_tune("|: C8 |2 D8 :|1 E8 |]")) == ["ending"]


def test_header_warnings():
    text = "X:1\nY:what\nK:C treble-ish\nC8|\n"
    report = validate_abc(text, FAST)
    assert report.valid
    assert [d.code for d in report.warnings] == ["unknown-field", "missing-title", "no-meter",
                                                 "key"]


def test_absurd_note_lengths_are_errors_without_asking_music21():
    report = validate_abc(_tune("C D E F |", "M:4/4\nL:148\nK:C"))
    assert [(d.code, d.message) for d in report.errors if d.code == "note-length"] == [
        ("note-length", "C lasts 148 whole notes; at most 8 are allowed (and 3 more notes as "
                        "long)")]
    assert "music21" not in {d.code for d in report.diagnostics}


def test_prose_around_the_tune_and_missing_x():
    report = validate_abc("Here is your tune:\n\n" + _tune("C8 |]"), FAST)
    assert report.valid and [(d.code, d.line) for d in report.warnings] == [
        ("text-before-tune", 1)]
    bare = validate_abc("T:No number\nM:4/4\nL:1/8\nK:C\nC8 |]\n", FAST)
    assert bare.valid and [d.code for d in bare.warnings] == ["missing-x"]


def test_lyrics_errors_and_warnings():
    assert _codes(_tune("C8 | D8 |]\nw:one two three")) == ["lyrics"]
    report = validate_abc(_tune("C2D2E2F2 | D8 |]\nw:one two"), FAST)
    assert report.valid and [d.severity for d in report.diagnostics] == ["warning"]


def test_range_depends_on_the_instrument():
    low = _tune("C,,, D7 |]")
    assert _codes(low) == ["range"]
    flute = _tune("%%MIDI program 73\nG,8 |]")
    assert "too low for a flute" in validate_abc(flute, FAST).errors[0].message
    assert _codes(_tune("%%MIDI program 73\nc8 |]")) == []
    # the bar is named, so the composer's repair rewrites that bar alone
    high = validate_abc(_tune("%%MIDI program 73\nc8 | e''8 |]"), FAST).errors[0]
    assert (high.code, high.bar, high.score_bar) == ("range", 2, 2)


def test_ties_between_different_pitches_are_warned():
    report = validate_abc(_tune("C4- D4 | C4- C4 |"), FAST)
    assert report.valid and [d.code for d in report.warnings] == ["tie"]


def test_tunebook_reports_file_lines_and_tune_numbers():
    book = _tune("C8 |]") + "\n" + _tune("C8 | D4 |]").replace("X:1", "X:2")
    report = validate_abc(book, FAST)
    assert report.tunes == 2 and report.bars == 3
    assert [(d.tune, d.line, d.bar) for d in report.errors] == [("2", 13, 2)]
    assert str(report.errors[0]).startswith("tune X:2, line 13, bar 2: error bar-length")


def test_report_serialises_and_formats():
    report = validate_abc(_tune("C8 | C # D4 | E8 |"), FAST)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["valid"] is False and data["errors"] == 2
    assert data["diagnostics"][0] == {"severity": "error", "code": "unknown-symbol",
                                      "message": "'#' is not ABC (column 8)", "line": 6,
                                      "bar": None, "tune": None, "score_bar": None}
    text = report.format_text()
    assert text.splitlines()[0] == "invalid: 1 tune, 3 bars, 2 errors"
    assert isinstance(report, Report)


def test_music21_is_consulted_and_its_failures_reported(monkeypatch: pytest.MonkeyPatch):
    assert not validate_abc(_tune("C8 |]")).diagnostics

    def refuse(abc: str, line: int):
        raise AbcError("music21 could not read the tune: ValueError: boom", line=line)

    monkeypatch.setattr("agent.abc_reader._parse_with_music21", refuse)
    report = validate_abc(_tune("C8 |]"))
    assert [(d.code, d.line) for d in report.errors] == [("music21", 6)]
    assert validate_abc(_tune("C8 |]"), FAST).valid


def test_mangled_tunes_never_raise_anything_but_our_errors():
    """Random edits of the data files: a report or a TunesmithError, never a traceback."""
    from agent.errors import TunesmithError

    texts = [p.read_text(encoding="utf-8") for p in ALL_FILES
             if EXPECTED[_id(p)] is not InputError and p.stat().st_size]
    alphabet = "ABCDEFGabcdefg^_=,'/2345|:[]{}()<>-!+\"%\\&zxZXy.~HTuv \nKLMQVw:#@*;$`"
    chance = random.Random(5)
    for _ in range(300):
        chars = list(chance.choice(texts))
        for _ in range(chance.randint(1, 12)):
            at = chance.randrange(len(chars))
            action = chance.random()
            if action < 0.4:
                chars.insert(at, chance.choice(alphabet))
            elif action < 0.7:
                del chars[at]
            else:
                chars[at] = chance.choice(alphabet)
        try:
            report = validate_abc("".join(chars), FAST)
        except TunesmithError:
            continue
        assert all(d.message for d in report.diagnostics)


# --------------------------------------------------------------------------------------------
# The corpus


def _corpus_texts(count: int, seed: int) -> list[tuple[str, str]]:
    root = Path(corpus.__file__).parent
    tunes = []
    for path in sorted(root.rglob("*.abc")):
        for source in tunebook_sources(path.read_text(encoding="utf-8", errors="replace")):
            tunes.append((path.relative_to(root).parts[0], source.header_text + source.text))
    random.Random(seed).shuffle(tunes)
    return tunes[:count]


def _corpus_summary(count: int, seed: int, settings: ValidateSettings) -> dict:
    valid = Counter()
    total = Counter()
    reasons = Counter()
    for collection, text in _corpus_texts(count, seed):
        report = validate_abc(text, settings)
        total[collection] += 1
        valid[collection] += report.valid
        reasons.update({d.code for d in report.errors})
    return {"valid": sum(valid.values()), "total": sum(total.values()),
            "by_collection": {c: (valid[c], total[c]) for c in total}, "reasons": reasons}


def test_corpus_sample_validates_mostly_clean_outside_essen():
    summary = _corpus_summary(200, seed=4, settings=FAST)
    folk = [summary["by_collection"][c] for c in summary["by_collection"] if c != "essenFolksong"]
    valid, total = sum(v for v, _ in folk), sum(t for _, t in folk)
    assert total >= 40 and valid / total > 0.75, summary
    assert set(summary["reasons"]) <= {"bar-length", "missing-bar-line", "unknown-symbol",
                                       "repeat", "parse", "tie", "range", "field"}, summary


@pytest.mark.slow
def test_corpus_1000_tunes_summary():
    summary = _corpus_summary(1000, seed=3, settings=ValidateSettings())
    print("validation of 1000 corpus tunes:", summary)
    assert summary["total"] == 1000 and "music21" not in summary["reasons"]


def test_bar_numbers_in_messages_are_the_engraved_scores(tmp_path):
    """O'Neill's "Darby the Driver" opens with a pickup, which the score numbers 0; its last bar
    does not complete the second part's pickup. The message names that bar as the MusicXML
    numbers it, while ``bar`` keeps the written count the repair loop resamples by."""
    import re

    from agent.render import render_score_text

    jig = (DATA / "oneills_darby_the_driver.abc").read_text(encoding="utf-8")
    [error] = validate_abc(jig).errors
    assert (error.bar, error.score_bar) == (18, 17)
    assert str(error).startswith("line 13, bar 17: error bar-length")
    xml = render_score_text(jig, tmp_path, formats=["musicxml"])["musicxml"].read_text(encoding="utf-8")
    measures = dict(re.findall(r'<measure[^>]* number="(\d+)"[^>]*>(.*?)</measure>', xml, re.S))
    assert re.findall(r"<step>(\w)</step>", measures["17"]) == ["B", "A", "A", "A"]  # "BAA A:|"


def test_a_bar_named_in_a_message_counts_from_the_pickup_as_zero():
    report = validate_abc(_tune("A | B4 C4 | D6 | E8 |]"), FAST)
    assert [(d.bar, d.score_bar, d.message) for d in report.errors] == [
        (3, 2, "bar 2 has 3 beats; the meter 4/4 has 4 (1 missing)")]
