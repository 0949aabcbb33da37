"""A mood said with exact edits of its own cues ("make it sadder and slower", "happier, faster
and louder") is one exact edit through the chat's own path, never a rewrite; and a happier tune's
staccato sits only on the light notes of its running passages.

The tunes are held-out corpus tunes (finetune/splits/test.jsonl) and a jig from tests/data/abc;
every result is read back with the app's ABC reader (music21) and its MusicXML writer.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.abc_reader import read_tune
from agent.abc_text import parse_tune, tokenize_body
from agent.conversation import Composer, take_turn
from agent.mood import measure_cues, set_articulation
from agent.mood_turn import Louder, mood_with_edits
from agent.render import to_musicxml
from agent.session import Session, add_version, current_abc
from agent.understand import understand
from finetune.data import load_test_split

WALTZ = "essenFolksong/lux.abc#393"  # a held-out waltz in G
JIG = "oneills1850/0001-0050.abc#7"  # a held-out tune used by the mood suite's "more cheerful"


@pytest.fixture(scope="module")
def held_out() -> dict[str, str]:
    return {row["id"]: row["abc"] for row in load_test_split()}


def turn(abc: str, message: str):
    done = take_turn(add_version(Session(), abc, "the tune"), message, Composer.unavailable())
    return done, current_abc(done.session)


def notes(abc: str) -> list[tuple[str, ...]]:
    tune = parse_tune(abc)
    return [tuple(t.pitches) for t in tokenize_body(tune.body, tune) if t.is_note]


@pytest.mark.parametrize("message, intent, edits", [
    ("make it sadder and slower", "mood_edit", "SetTempo"),
    ("make it happier and faster", "mood_edit", "SetTempo"),
    ("make it happier, faster and louder", "mood_edit", "SetTempo Louder"),
    ("calmer and an octave lower", "mood_edit", "Transpose"),
    ("sadder and softer", "mood_edit", "Louder"),
    ("make it sadder and add a counter-melody", None, None),
    ("make the second half sadder and slower", None, None),
    ("make it faster", None, None),
])
def test_which_messages_are_one_mood_edit(message, intent, edits):
    request = mood_with_edits(understand(message, has_score=True))
    if intent is None:
        assert request is None
        return
    assert request.intent == intent and request.mood_change is not None
    assert " ".join(type(op).__name__ for op in request.edits) == edits


def test_sadder_and_slower_is_one_exact_edit_slower_than_sadder(held_out):
    tune = held_out[WALTZ]
    sadder, sadder_abc = turn(tune, "make it sadder")
    both, both_abc = turn(tune, "make it sadder and slower")
    assert both.intent == "mood_edit" and both.changed, both.reply
    before, after, alone = measure_cues(tune), measure_cues(both_abc), measure_cues(sadder_abc)
    assert after.quarter_bpm < alone.quarter_bpm < before.quarter_bpm
    assert after.dynamics == alone.dynamics == "p"
    # the same notes, moved together by the octave a sad tune goes down: no bar rewritten
    assert len(notes(both_abc)) == len(notes(tune))
    shift = {p - q for p, q in zip(read_pitches(both_abc), read_pitches(tune))}
    assert shift == {-12}
    assert f"({before.bpm:g} → {after.bpm:g})" in both.reply and "rewrote" not in both.reply


def test_happier_and_faster_with_louder_and_a_contrary_tempo(held_out):
    tune = held_out[JIG]
    before = measure_cues(tune)
    faster, faster_abc = turn(tune, "make it happier, faster and louder")
    up = measure_cues(faster_abc)
    assert faster.intent == "mood_edit" and up.quarter_bpm > before.quarter_bpm
    assert up.dynamics == "ff" and notes(faster_abc) and len(notes(faster_abc)) == len(notes(tune))
    # what is said outright wins over the mood's own move
    slower, slower_abc = turn(tune, "make it happier but slower")
    down = measure_cues(slower_abc)
    assert slower.intent == "mood_edit" and down.quarter_bpm < before.quarter_bpm
    assert down.dynamics == "f"
    quieter, quieter_abc = turn(tune, "make it happier but softer")
    assert measure_cues(quieter_abc).dynamics == "mp" and "softer (mf → mp)" in quieter.reply


def read_pitches(abc: str) -> list[int]:
    from music21 import harmony

    return [p.midi for n in read_tune(abc).score.parts[0].recurse().notes
            if not isinstance(n, harmony.ChordSymbol) for p in n.pitches]


def staccato_notes(abc: str) -> list[tuple[float, float]]:
    """(offset in its bar in quarters, a pickup bar counted from its end, and length in
    quarters) of every note music21 reads with a staccato."""
    from music21 import articulations, harmony, stream

    score = read_tune(abc).score
    found = []
    for bar in score.parts[0].getElementsByClass(stream.Measure):
        for n in bar.notes:
            if isinstance(n, harmony.ChordSymbol):
                continue
            if any(isinstance(a, articulations.Staccato) for a in n.articulations):
                found.append((float(n.offset + bar.paddingLeft), float(n.quarterLength)))
    return found


@pytest.mark.parametrize("tune_id", [WALTZ, JIG, "oneills1850/0351-0400.abc#375"])
def test_happier_staccato_only_on_off_beat_running_notes(held_out, tune_id):
    tune = set_articulation(held_out[tune_id], "legato")[0]  # the tune's own dots taken off
    lighter, count = set_articulation(tune, "staccato")
    assert count > 0
    meter = parse_tune(tune).meter
    beat = float(meter.beat_length) * 4  # in quarters
    played = staccato_notes(lighter)
    assert len(played) == count
    all_notes = len(read_pitches(tune))
    assert count <= all_notes * 0.4, "dots on the notes leading into a beat only"
    for offset, length in played:
        assert length <= beat / 2 + 1e-9, (offset, length)
        assert offset % beat > 1e-9, f"a dot on the beat at {offset}"
        assert abs((offset + length) % beat) < 1e-9 or abs((offset + length) % beat - beat) < 1e-9
    xml = to_musicxml(read_tune(lighter).score).decode("utf-8")
    assert len(re.findall(r"<staccato\b", xml)) == count
    # the dots are all that changed
    assert lighter.replace(".", "") == tune.replace(".", "") or count == 0


def test_a_waltz_of_quarter_notes_gets_no_dots_and_the_reply_says_only_what_moved():
    tune = "X:1\nT:Air\nR:waltz\nM:3/4\nL:1/8\nQ:1/4=120\nK:G\nB2 A2 G2|A2 F2 D2|G2 B2 d2|g6|]\n"
    done, abc = turn(tune, "make it happier and faster")
    assert "." not in abc.split("K:G")[1] and "staccato" not in done.reply
    assert measure_cues(abc).quarter_bpm > 120 and measure_cues(abc).dynamics == "f"


def test_louder_is_carried_as_a_step():
    assert mood_with_edits(understand("happier and a bit louder", has_score=True)).edits == (
        Louder(1),)
