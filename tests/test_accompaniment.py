"""The backing part on real tunes: its ABC settings, its notes against the chords in force,
MIDI (own track and channel, read back with mido and pretty_midi) and MusicXML."""
from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path

import mido
import pretty_midi
import pytest
from music21 import harmony as m21harmony

from agent.abc_reader import read_tune
from agent.accompaniment import (
    BASS_RANGE, INSTRUMENTS, accompaniment_of, backing_part, backing_parts, set_accompaniment,
    with_accompaniment, without_chord_symbols,
)
from agent.errors import InputError
from agent.harmony import harmonise, parse_chord, strip_chords
from agent.render import to_midi, to_musicxml

DATA = Path(__file__).parent / "data"
WALTZ = DATA / "render" / "autumn_lantern.abc"
REEL = DATA / "abc" / "nottingham_reel.abc"          # a musician's chords, a pickup, repeats
ENDINGS = DATA / "abc" / "hard" / "endings_all_the_rage.abc"  # first and second endings


@pytest.fixture(scope="module")
def waltz():
    abc = harmonise(WALTZ.read_text()).abc
    return abc, read_tune(abc).score


def _chords_at(score) -> list[tuple[float, frozenset[int]]]:
    """(offset in the score, pitch classes) of each chord symbol of the melody, in order."""
    found = []
    for symbol in score.parts[0].recurse().getElementsByClass(m21harmony.ChordSymbol):
        chord = parse_chord(symbol.figure)
        found.append((float(symbol.getOffsetInHierarchy(score.parts[0])), chord.pitch_classes))
    return sorted(found, key=lambda item: item[0])


def _in_force(chords, offset: float) -> frozenset[int]:
    current = None
    for at, pcs in chords:
        if at <= offset + 1e-6:
            current = pcs
    return current


def test_settings_read_and_written_only_in_the_header():
    abc = WALTZ.read_text()
    assert accompaniment_of(abc).pattern == "fcc" and accompaniment_of(abc).style == "waltz"
    changed = set_accompaniment(abc, style="air", instrument="strings", volume=40, on=True)
    settings = accompaniment_of(changed)
    assert (settings.pattern, settings.instrument, settings.chord_volume) == ("ghi", "strings", 40)
    assert (settings.chord_program, settings.bass_program) == INSTRUMENTS["strings"]
    added = [line for line in changed.splitlines() if line not in abc.splitlines()]
    assert added and all(line.startswith("%%MIDI ") for line in added)
    assert [l for l in changed.splitlines() if not l.startswith("%%MIDI")] == [
        l for l in abc.splitlines() if not l.startswith("%%MIDI")]
    off = set_accompaniment(changed, on=False)
    assert not accompaniment_of(off).on and "%%MIDI gchordoff" in off
    assert accompaniment_of(set_accompaniment(off, on=True)).on
    again = set_accompaniment(changed, style="waltz")  # replaces, never duplicates
    assert again.count("%%MIDI gchord ") == 1 and accompaniment_of(again).pattern == "fcc"
    quieter = set_accompaniment(again, volume="quieter")
    assert accompaniment_of(quieter).chord_volume == 24
    with pytest.raises(InputError):
        set_accompaniment(abc, instrument="theremin")


def test_backing_notes_belong_to_the_chord_in_force(waltz):
    abc, score = waltz
    part = backing_part(score, abc)
    chords = _chords_at(score)
    notes = list(part.recurse().notes)
    assert len(notes) >= 3 * 30  # bass and two chords in (nearly) every bar
    for element in notes:
        offset = float(element.getOffsetInHierarchy(part))
        pcs = _in_force(chords, offset)
        assert {p.pitchClass for p in element.pitches} <= pcs, offset


def test_waltz_pattern_voice_leading_and_ranges(waltz):
    abc, score = waltz
    bass_part, = [p for p in backing_parts(score, set_accompaniment(abc, instrument="guitar"))
                  if p.partName == "Bass"]
    for measure in list(bass_part.getElementsByClass("Measure"))[:8]:
        bass = list(measure.notes)
        assert [float(n.offset) for n in bass] == [0.0]  # oom-pah-pah: bass on 1
        assert BASS_RANGE[0] <= bass[0].pitch.midi <= BASS_RANGE[1]
    chord_part = backing_parts(score, set_accompaniment(abc, instrument="guitar"))[0]
    voicings = [tuple(p.midi for p in c.pitches) for c in chord_part.recurse().notes]
    moves = [sum(abs(a - b) for a, b in zip(x, y)) for x, y in zip(voicings, voicings[1:])]
    assert max(moves) <= 7  # each chord voiced close to the last
    assert all(48 <= min(v) and max(v) <= 74 for v in voicings)


@pytest.mark.parametrize("path", [REEL, ENDINGS], ids=lambda p: p.stem)
def test_repeats_endings_and_pickups_follow_the_melody(path):
    abc = path.read_text()
    if abc == strip_chords(abc):
        abc = harmonise(abc).abc
    score = read_tune(abc).score
    full = with_accompaniment(score, abc)
    assert len(full.parts) == 2
    melody, backing = full.parts[0], full.parts[1]
    assert len(melody.getElementsByClass("Measure")) == len(backing.getElementsByClass("Measure"))
    for old, new in zip(melody.getElementsByClass("Measure"), backing.getElementsByClass("Measure")):
        assert new.duration.quarterLength == old.duration.quarterLength  # pickups too
    expanded = full.expandRepeats()
    lengths = {round(p.highestTime, 3) for p in expanded.parts}
    assert len(lengths) == 1  # both parts play the repeats alike


def test_midi_has_the_accompaniment_on_its_own_track_and_channel(waltz):
    abc, score = waltz
    full = without_chord_symbols(with_accompaniment(score, set_accompaniment(abc, volume=50)))
    data = to_midi(full).data
    midi = mido.MidiFile(file=io.BytesIO(data))
    tracks = [[m for m in t if m.type == "note_on" and m.velocity > 0] for t in midi.tracks]
    tracks = [t for t in tracks if t]
    assert len(tracks) == 2
    melody_channels = {m.channel for m in tracks[0]}
    backing_channels = {m.channel for m in tracks[1]}
    assert melody_channels.isdisjoint(backing_channels)
    assert max(m.velocity for m in tracks[1]) < min(m.velocity for m in tracks[0])
    # pretty_midi: every backing note belongs to the chord sounding when it starts
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    melody_notes = [n for i in pm.instruments for n in i.notes if n.velocity >= 80]
    backing = [n for i in pm.instruments for n in i.notes if n.velocity < 80]
    assert len(melody_notes) == len([n for n in score.parts[0].recurse().notes
                                     if not isinstance(n, m21harmony.ChordSymbol)])
    chords = _chords_at(score)
    seconds_per_quarter = 60 / 96  # Q:1/4=96
    for played in backing:
        pcs = _in_force(chords, played.start / seconds_per_quarter)
        assert played.pitch % 12 in pcs


def test_musicxml_has_harmony_and_a_second_part(waltz):
    abc, score = waltz
    xml = to_musicxml(with_accompaniment(score, abc))
    assert xml.count(b"<harmony") == len(_chords_at(score)) > 20
    assert xml.count(b"<score-part ") == 2 and xml.count(b"<part ") == 2


def test_no_backing_when_off_or_without_chords():
    plain = WALTZ.read_text()
    assert backing_parts(read_tune(plain).score, plain) == []
    abc = set_accompaniment(harmonise(plain).abc, on=False)
    assert backing_part(read_tune(abc).score, abc) is None


def test_harmonise_and_backing_of_32_bars_within_half_a_second():
    abc = WALTZ.read_text()
    score = read_tune(harmonise(abc).abc).score  # reading the tune is the renderer's work
    started = time.perf_counter()
    chords = harmonise(abc).abc
    backing_parts(score, chords)
    assert time.perf_counter() - started < 0.5


def test_a_tune_music21_leaves_without_bars_still_gets_its_backing():
    abc = harmonise(strip_chords((DATA / "abc" / "malformed" / "lyrics_too_many.abc").read_text())).abc
    full = with_accompaniment(read_tune(abc).score, abc)
    assert len(full.parts) == 2 and all(p.hasMeasures() for p in full.parts)
    midi = mido.MidiFile(file=io.BytesIO(to_midi(without_chord_symbols(full)).data))
    assert sum(1 for t in midi.tracks if any(m.type == "note_on" for m in t)) == 2


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian: abcmidi) not installed")
def test_abc2midi_plays_the_same_settings(tmp_path):
    abc = set_accompaniment(harmonise(WALTZ.read_text()).abc, style="waltz", instrument="guitar",
                            volume=50)
    (tmp_path / "tune.abc").write_text(abc)
    subprocess.run(["abc2midi", str(tmp_path / "tune.abc"), "-o", str(tmp_path / "tune.mid")],
                   check=True, capture_output=True, timeout=60)
    midi = mido.MidiFile(tmp_path / "tune.mid")
    programs = {m.program for t in midi.tracks for m in t if m.type == "program_change"}
    velocities = {m.velocity for t in midi.tracks for m in t if m.type == "note_on" and m.velocity}
    assert {25, 32} <= programs and {50, 58} <= velocities


def test_a_backing_has_a_bass_note_for_every_root_and_slash_bass():
    """Twelve roots, plain and over another bass (E♭ had no note in the bass range, so a tune
    in B♭ or E♭ with an E♭ chord could not be rendered)."""
    from music21 import converter

    names = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    bars = " | ".join(f'"{name}"B4 | "{name}7/{names[(i + 3) % 12]}"B4' for i, name in enumerate(names))
    abc = f"X:1\nT:Roots\nM:2/4\nL:1/8\nK:Bb\n{bars} |]\n"
    part, = backing_parts(converter.parse(abc, format="abc"), set_accompaniment(abc, style="march"))
    sounding = [n for n in part.recurse().notes]
    basses = [min(n.pitches, key=lambda p: p.midi) for n in sounding if len(n.pitches) == 1]
    assert len(basses) >= 24
    assert {p.pitchClass for p in basses} == set(range(12))
    assert all(BASS_RANGE[0] <= p.midi <= BASS_RANGE[1] for p in basses)
    chords = [{p.pitchClass for p in n.pitches} for n in sounding if len(n.pitches) > 1]
    assert {3, 7, 10} in chords  # E flat major sounds as E flat, G, B flat (not E minor)
