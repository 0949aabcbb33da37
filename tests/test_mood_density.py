"""A new tune written to a mood gets the notes a beat the mood asks for: whole beats of plain
notes rewritten in the tune's own pitches (agent.mood.change_density), on held-out waltzes and
jigs (finetune/splits/test.jsonl), read back with the app's ABC reader (music21) and validator.
"""
from __future__ import annotations

import pytest

from agent.abc_reader import read_tune
from agent.mood import HELD_OUT_NOTES_PER_BEAT_BY_STYLE, change_density, compose_plan, density_target, measure_cues
from agent.mood_turn import finish_new_tune
from agent.validate import validate_abc
from finetune.data import load_test_split


@pytest.fixture(scope="module")
def tunes() -> list[tuple[str, str]]:
    rows = load_test_split()
    return [(row["attributes"]["style"], row["abc"]) for row in rows
            if (row.get("attributes") or {}).get("style") in ("waltz", "jig")]


def bar_lengths(abc: str) -> list[float]:
    from music21 import stream

    part = read_tune(abc).score.parts[0]
    return [float(m.duration.quarterLength) for m in part.getElementsByClass(stream.Measure)]


def pitch_set(abc: str) -> set[int]:
    from music21 import harmony

    return {p.midi for n in read_tune(abc).score.recurse().notes
            if not isinstance(n, harmony.ChordSymbol) for p in n.pitches}


@pytest.mark.parametrize("way", [-1, 1])
def test_density_moves_the_asked_way_and_keeps_bars_and_pitches(tunes, way):
    moved = 0
    for style, abc in tunes[::2]:  # every other tune: four music21 readings each
        target = density_target(style, way)
        out, beats = change_density(abc, way, target)
        if not beats:
            assert out == abc
            continue
        moved += 1
        before, after = measure_cues(abc), measure_cues(out)
        assert (after.notes_per_beat - before.notes_per_beat) * way > 0
        assert validate_abc(out).valid, out
        assert bar_lengths(out) == bar_lengths(abc)
        assert pitch_set(out) <= pitch_set(abc)  # no new pitch: the tune's own notes
        assert after.notes - before.notes == pytest.approx(way * beats, abs=beats)
    assert moved >= len(tunes[::2]) // 3


@pytest.mark.parametrize("mood, way", [("sad", -1), ("peaceful", -1), ("joyful", 1), ("angry", 1)])
def test_a_new_tune_lands_on_the_moods_side_of_its_style(tunes, mood, way):
    sides = []
    for style, abc in tunes:
        plan = compose_plan(mood, style, measure_cues(abc).meter)
        out, said = finish_new_tune(abc, plan)
        density = measure_cues(out).notes_per_beat
        sides.append((density - HELD_OUT_NOTES_PER_BEAT_BY_STYLE[style]) * way > 0)
        if measure_cues(abc).notes != measure_cues(out).notes:
            assert ("fewer notes" if way < 0 else "more notes") in said
        if said:  # one sentence a musician reads: "To sound sad it is written with ..., marked p."
            assert said.startswith(f"To sound {mood} it is ") and said.endswith(".")
            assert " it is written marked" not in said and " it is an octave" not in said
    assert sum(sides) / len(sides) >= 0.75, f"{sum(sides)}/{len(sides)}"


def test_tied_slurred_and_triplet_beats_are_left_alone():
    abc = "X:1\nM:3/4\nL:1/8\nK:G\n(BA) G-G (3ABc|B2 A2 G2|]\n"
    assert change_density(abc, -1, 0.5) == (abc, 0)
    assert change_density(abc, 1, 3.0)[0].splitlines()[-1] == "(BA) G-G (3ABc|BB AA GG|]"
