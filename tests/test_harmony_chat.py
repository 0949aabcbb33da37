"""Chords and accompaniment end to end: through the conversation (no model needed), the
renderer (MIDI, MusicXML, SVG read back) and the command line."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pretty_midi
import pytest

from agent import conversation
from agent import session as sessions
from agent.abc_reader import read_tune
from agent.accompaniment import accompaniment_of, shows_accompaniment
from agent.conversation import AgentConfig, Composer, take_turn
from agent.harmony import chords_in, parse_chord, strip_chords
from agent.harmony_chat import melody_text
from agent.render import render_score_text
from agent.session import Session

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
# real tunes the validator accepts: two with a musician's chords (taken off here), one song
CORPUS = ["nottingham_reel.abc", "ryans_acacia_reel.abc", "ryans_ypsilanti_hornpipe.abc"]
SONG = DATA / "render" / "autumn_lantern.abc"
REQUESTS = ["add chords", "harmonise it", "re-harmonise", "give it a guitar accompaniment",
            "accompaniment on piano, quieter", "louder accompaniment", "a waltz accompaniment",
            "simpler chords", "jazzier chords", "change the chord in bar 5 to G7",
            "no accompaniment", "show the accompaniment", "hide the accompaniment",
            "remove the chords"]


def bare(name: str) -> str:
    return strip_chords((DATA / "abc" / name).read_text(encoding="utf-8"))


def chat(abc: str, *messages: str) -> tuple[Session, list]:
    """Paste ``abc``, then say each message; the turns after the paste."""
    composer = Composer.unavailable()  # none of these turns may need the model
    session = take_turn(Session(), abc, composer).session
    assert sessions.current_abc(session) is not None
    turns = []
    for message in messages:
        turn = take_turn(session, message, composer)
        session = turn.session
        turns.append(turn)
    return session, turns


def w_lines(abc: str) -> list[str]:
    return [line for line in abc.splitlines() if line.startswith("w:")]


@pytest.mark.parametrize("name", CORPUS)
def test_add_chords_leaves_every_other_byte(name):
    abc = bare(name)
    session, (turn,) = chat(abc, "add chords")
    after = sessions.current_abc(session)
    assert turn.changed and turn.intent == "harmony", turn.reply
    assert strip_chords(after) == sessions.current_abc(chat(abc)[0])  # only chords were added
    assert sum(len(bar.chords) for bar in chords_in(after)) >= len(chords_in(after)) // 2


@pytest.mark.parametrize("message", REQUESTS)
def test_chord_requests_keep_the_melody_and_words(message):
    song = sessions.current_abc(chat(SONG.read_text(encoding="utf-8"))[0])  # as pasted
    session, turns = chat(song, "add chords", message)
    after = sessions.current_abc(session)
    assert "internal_error" not in turns[-1].details, turns[-1].reply
    assert turns[-1].intent == "harmony", turns[-1].reply
    assert melody_text(after) == melody_text(song)
    assert w_lines(after) == w_lines(song) and w_lines(song)


def test_a_tune_with_chords_is_not_harmonised_twice():
    song = SONG.read_text(encoding="utf-8")
    session, (first, second) = chat(song, "add chords", "add chords")
    assert first.changed and not second.changed
    assert "re-harmonise" in second.reply


def test_bar_numbers_and_chord_names_are_checked():
    song = SONG.read_text(encoding="utf-8")
    session, turns = chat(song, "add chords", "change the chord in bar 99 to G",
                          "change the chord in bar 3 to H7", "change the chord in bar 3 to Bb7",
                          "what chords are in bar 3?")
    assert "there is no bar 99: the tune has bars 1 to 32" in turns[1].reply
    assert not turns[1].changed and not turns[2].changed
    assert '"H7" is not a chord name I know' in turns[2].reply and "maj7" in turns[2].reply
    assert turns[3].changed and turns[4].reply.startswith("Bar 3 has Bb7 (")


def test_transpose_through_the_chat_moves_every_chord():
    abc = bare("nottingham_reel.abc")
    session, turns = chat(abc, "add chords", "guitar accompaniment", "transpose up a tone")
    before = sessions.current_abc(turns[1].session)
    after = sessions.current_abc(session)
    old = [parse_chord(name) for bar in chords_in(before) for _, name in bar.chords]
    new = [parse_chord(name) for bar in chords_in(after) for _, name in bar.chords]
    assert len(old) == len(new) > 8
    assert all((b.root - a.root) % 12 == 2 and a.kind == b.kind for a, b in zip(old, new))
    assert accompaniment_of(after).instrument == "guitar"


def test_questions_about_chords():
    abc = bare("nottingham_reel.abc")
    _, turns = chat(abc, "what's the progression?", "add chords", "what's the progression?")
    assert "no chords yet" in turns[0].reply and "add chords" in turns[0].reply
    assert turns[2].reply.startswith("The progression, bar by bar: ")
    assert turns[2].reply.rstrip(".").split(": ")[1].split(" | ")[-1] == "D"


def test_show_and_hide_toggle_the_header_line():
    abc = bare("nottingham_reel.abc")
    session, turns = chat(abc, "add chords", "show the accompaniment")
    shown = sessions.current_abc(session)
    assert shows_accompaniment(shown)
    session, _ = chat(shown, "hide the accompaniment")
    assert not shows_accompaniment(sessions.current_abc(session))


def _chord_times(score) -> list[tuple[float, frozenset[int]]]:
    """(offset in quarters, pitch classes) of each chord symbol in the melody part."""
    from music21 import harmony

    melody = score.parts[0].flatten()
    return [(float(s.offset), parse_chord(s.figure.replace("-", "b")).pitch_classes)
            for s in melody.getElementsByClass(harmony.ChordSymbol)]


def test_midi_has_a_backing_track_playing_the_chord_in_force(tmp_path):
    song = SONG.read_text(encoding="utf-8")
    session, _ = chat(song, "add chords")
    abc = sessions.current_abc(session)
    assert "|:" not in abc and ":|" not in abc  # no repeats: score time is MIDI time
    files = render_score_text(abc, tmp_path, formats=["midi", "musicxml"])
    midi = pretty_midi.PrettyMIDI(str(files["midi"]))
    assert len(midi.instruments) == 2
    melody, backing = midi.instruments
    assert {n.pitch for n in melody.notes} and len(backing.notes) > 32
    times = _chord_times(read_tune(abc).score)
    seconds_per_quarter = 60 / 96  # Q:1/4=96
    wrong = 0
    for note in backing.notes:
        quarter = note.start / seconds_per_quarter
        in_force = [pcs for at, pcs in times if at <= quarter + 1e-6][-1]
        wrong += note.pitch % 12 not in in_force
    assert wrong == 0
    xml = files["musicxml"].read_text(encoding="utf-8")
    assert xml.count("<harmony") == len(times) and xml.count("<score-part ") == 2
    assert "<part-name>Accompaniment</part-name>" in xml


def test_backing_switched_off_is_heard_nowhere(tmp_path):
    session, _ = chat(SONG.read_text(encoding="utf-8"), "add chords", "no accompaniment")
    files = render_score_text(sessions.current_abc(session), tmp_path, formats=["midi", "musicxml"])
    assert len(pretty_midi.PrettyMIDI(str(files["midi"])).instruments) == 1
    xml = files["musicxml"].read_text(encoding="utf-8")
    assert xml.count("<score-part ") == 1 and "<harmony" in xml


def test_midi_program_sets_the_melody_only(tmp_path):
    song = SONG.read_text(encoding="utf-8")  # %%MIDI program 73: a flute
    session, _ = chat(song, "add chords", "guitar accompaniment")
    files = render_score_text(sessions.current_abc(session), tmp_path, formats=["midi"])
    programs = [(i.program, i.is_drum) for i in pretty_midi.PrettyMIDI(str(files["midi"])).instruments]
    assert programs[0] == (73, False) and {p for p, _ in programs[1:]} <= {25, 32}


def test_sheet_shows_chord_names_and_the_staff_when_asked(tmp_path):
    session, _ = chat(bare("nottingham_reel.abc"), "add chords")
    abc = sessions.current_abc(session)
    plain = render_score_text(abc, tmp_path / "a", formats=["svg"])
    svg = plain["svg"].read_text(encoding="utf-8")
    assert svg.count('class="harm') >= 16
    session, _ = chat(abc, "show the accompaniment")
    shown = render_score_text(sessions.current_abc(session), tmp_path / "b", formats=["svg"])
    staves = shown["svg"].read_text(encoding="utf-8").count('class="staff')
    assert staves == 2 * svg.count('class="staff')


def test_composed_tunes_get_chords_unless_asked_not_to(monkeypatch):
    tune = ("X:1\nT:Test\nR:waltz\nM:3/4\nL:1/4\nQ:1/4=120\nK:D\n"
            "DFA|GBd|cea|d2A|BGE|FDF|EAc|d3|]\n")
    fake = SimpleNamespace(abc=tune, valid=True, attempts=1, diagnostics=[],
                           summary=lambda: {"attempts": 1}, lyrics_removed=False)
    monkeypatch.setattr(conversation, "compose_tune", lambda *args, **kwargs: fake)
    composer = Composer(AgentConfig(), loader=lambda config: object())
    turn = take_turn(Session(), "a waltz in D", composer, AgentConfig())
    abc = sessions.current_abc(turn.session)
    assert "with chords, one a bar, ending on D major, and a waltz (oom-pah-pah) " \
           "accompaniment on piano" in turn.reply
    assert "%%MIDI gchord fcc" in abc and strip_chords(abc).endswith(tune.split("K:D\n")[1])
    plain = take_turn(Session(), "a waltz in D", composer, AgentConfig(chords=False))
    assert not any(b.chords for b in chords_in(sessions.current_abc(plain.session)))


def test_converse_starts_from_a_given_tune(tmp_path):
    score = tmp_path / "reel.abc"
    score.write_text(bare("nottingham_reel.abc"), encoding="utf-8")
    script = tmp_path / "chat.txt"
    script.write_text("add chords\nchange the chord in bar 99 to G\n", encoding="utf-8")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "tunesmith", "converse", "--score", str(score),
                             "--script", str(script), "--out", str(out), "--adapter", "none"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    transcript = json.loads((out / "transcript.json").read_text(encoding="utf-8"))
    assert [t["changed"] for t in transcript] == [True, False]
    assert transcript[0]["assistant"].startswith("I added chords")
    assert "there is no bar 99" in transcript[1]["assistant"]
    harmonised = (out / "turn-01" / "score.abc").read_text(encoding="utf-8")
    assert strip_chords(harmonised).rstrip("\n") == score.read_text().rstrip("\n")
    assert (out / "turn-02" / "score.abc").read_text() == harmonised
    assert re.search(r'"[A-G]', harmonised) and (out / "turn-01" / "score.mid").stat().st_size


def test_converse_refuses_a_broken_tune(tmp_path):
    score = tmp_path / "bad.abc"
    score.write_text("X:1\nM:4/4\nK:G\nGABc|d|]\n", encoding="utf-8")
    script = tmp_path / "chat.txt"
    script.write_text("add chords\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "tunesmith", "converse", "--score", str(score),
                             "--script", str(script), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("tunesmith converse: the given tune has problems")


def test_eval_section_checks_composed_tunes():
    from finetune.harmony_eval import EvalConfig, benchmark_section

    composed = {"default": [sessions.current_abc(chat(bare("nottingham_reel.abc"), "add chords")[0]),
                            bare("ryans_ypsilanti_hornpipe.abc")]}
    # the musician-chord table on one NMD reel (the whole music21 corpus scan takes 30 s)
    section = benchmark_section(composed, EvalConfig(
        abc=(str(DATA / "abc" / "nottingham_reel.abc"),), corpus=False, lead_sheets=False))
    assert section.startswith("## Harmony and accompaniment")
    assert "| tunes (failed) | 1 (0) |" in section and "| root agreement, harmoniser |" in section
    assert "| default | 2 | 1/2 | 2/2 | 2/2 | 2/2 | 0/2 |" in section


def test_tempo_and_mode_edits_keep_the_chords_and_the_backing():
    abc = bare("nottingham_reel.abc")
    session, turns = chat(abc, "add chords", "guitar accompaniment", "make it faster",
                          "make it minor")
    chorded, faster, minor = (sessions.current_abc(t.session) for t in turns[1:])
    assert turns[2].changed and turns[3].changed
    assert chords_in(faster) == chords_in(chorded)
    assert [len(b.chords) for b in chords_in(minor)] == [len(b.chords) for b in chords_in(chorded)]
    header = [line for line in chorded.splitlines() if line.startswith("%%MIDI")]
    assert header and all(line in minor.splitlines() for line in header)


def test_a_rewritten_span_gets_chords_again(monkeypatch):
    """The model writes bare notes; bars it rewrote get the harmoniser's chords, the others
    keep theirs."""
    abc = bare("nottingham_reel.abc")
    session, _ = chat(abc, "add chords")
    chorded = sessions.current_abc(session)
    bars = chords_in(chorded)

    def rewrite(loaded, current, instruction, first, last, config, on_progress=None):
        # the notes of bars 3 and 4 as written, their chord symbols gone (what the model gives)
        from agent.harmony import _read

        melody = _read(current)
        start, end = melody.bars[3].start, melody.bars[4].end
        offset = parse_tune_offset(current)
        body = current[offset:]
        middle = re.sub(r'"[^"]*"', "", body[start:end])
        return SimpleNamespace(abc=current[:offset] + body[:start] + middle + body[end:],
                               valid=True, attempts=1, diagnostics=[], lyrics_removed=False)

    monkeypatch.setattr(conversation, "edit_span", rewrite)
    composer = Composer(AgentConfig(), loader=lambda config: object())
    turn = take_turn(session, "rewrite bars 3-4", composer, AgentConfig())
    after = chords_in(sessions.current_abc(turn.session))
    assert turn.changed and "New chords for the rewritten bars 3, 4." in turn.reply, turn.reply
    assert all(b.chords for b in after if b.bar in (3, 4))
    assert [b for b in after if b.bar not in (3, 4)] == [b for b in bars if b.bar not in (3, 4)]


def parse_tune_offset(abc: str) -> int:
    from agent.abc_text import parse_tune

    return parse_tune(abc).body_offset


def test_a_style_that_does_not_fit_the_meter_says_so():
    session, turns = chat(bare("nottingham_reel.abc"), "add chords", "a waltz accompaniment")
    assert "The waltz pattern does not fit 4/4, so I used block chords." in turns[1].reply
    assert accompaniment_of(sessions.current_abc(session)).style == "block"
