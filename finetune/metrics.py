"""The benchmark's measures: plain functions from ABC text (and what was asked) to numbers.

Four groups, each used by :mod:`finetune.evaluate` on every generated tune:

- **Control**: does the final ABC honour a prompt's ``expect`` (key and mode, meter, tempo,
  length, instrument, lyrics on a theme)? :func:`attribute_checks`.
- **Lyrics**: syllable fit, rhyme rate, stress on strong beats (:func:`lyrics_measures`, built on
  :mod:`agent.lyrics`).
- **Edits**: did a scripted turn do what it should? :func:`check_turn` evaluates one turn's
  checks on the score before and after it (a transposition moves every pitch by the interval,
  a lyric edit changes no note, undo restores the earlier ABC byte for byte).
- **Music**: statistics of a set of tunes (pitch classes relative to the tonic, melodic
  intervals, note lengths, range, cadential bar endings, distinct bars), compared between sets
  with the Jensen-Shannon divergence (:func:`music_profile`, :func:`compare_profiles`; within
  each meter or mode class, :func:`compare_by`), how surely one set is closer than another
  answering the same prompts (:func:`paired_bootstrap`), how close real tunes of the kinds
  asked would come (:func:`matched_yardstick`), and copying of training tunes in any key
  (:func:`copy_index`, :func:`copied_bars`).

Everything reads ABC with the project's text-level tokenizer (:mod:`agent.abc_text`), which
gives MIDI pitches and exact lengths in about a millisecond per tune: the training set (some
ten thousand tunes) is profiled in seconds, where music21 would take minutes on two cores.

>>> tune = "X:1\\nT:t\\nM:3/4\\nL:1/8\\nQ:1/4=90\\nK:Dm\\nD2 F2 A2|d4 A2|F2 E2 D2|D6|]\\n"
>>> attribute_checks(tune, {"tonic": "D", "mode": "minor", "meter": "3/4", "bars": 4})
{'key': True, 'meter': True, 'bars': True}
>>> attribute_checks(tune, {"tonic": "E", "mode": "minor"})
{'key': False}
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Sequence

from agent.abc_text import (
    Kind,
    Token,
    bar_count as musical_bar_count,
    parse_meter,
    parse_tune,
    split_bars,
    tokenize_body,
)
from agent.errors import AbcError
from agent.notation import MINOR_THIRD_MODES, mode_name, tonic_pitch_class

__all__ = [
    "COPY_BARS",
    "Event",
    "Melody",
    "MusicProfile",
    "attribute_checks",
    "bar_count",
    "check_turn",
    "compare_by",
    "compare_by_meter",
    "compare_by_mode",
    "compare_profiles",
    "copied_bars",
    "copy_index",
    "jensen_shannon",
    "lyric_lines",
    "lyrics_measures",
    "matched_yardstick",
    "melody",
    "meter_of",
    "mode_class_of",
    "music_profile",
    "notes_of",
    "paired_bootstrap",
    "pitch_class_of",
    "profile_and_index",
    "profiles_by",
    "profiles_by_meter",
    "profiles_by_mode",
    "requested_attributes",
    "same_notes",
    "transposed_by",
    "tune_kind",
    "tune_statistics",
]

#: A generated tune copies a training tune when it holds this many consecutive bars of it
#: (the benchmark's rule: more than 4), in any transposition.
COPY_BARS = 5
#: Windows with fewer notes than this are too plain to call a copy (five bars of one long note).
MIN_COPY_NOTES = 8
#: Intervals wider than this (semitones) share one bin per direction.
MAX_INTERVAL = 12

# Modes with a minor third above the tonic, and the one with a diminished fifth.
# The 24 major and minor triads as (root, pitch classes), for a bar's implied harmony.
_TRIADS = tuple((root, frozenset({root % 12, (root + third) % 12, (root + 7) % 12}))
                for root in range(12) for third in (4, 3))


# --------------------------------------------------------------------------------------------
# Reading a melody


@dataclass(frozen=True)
class Event:
    """A note or rest of the melody: MIDI ``pitch`` (None for a rest; a chord's top note),
    ``length`` and ``onset`` in the bar in whole notes, ``tied`` when it continues a tie."""

    pitch: int | None
    length: Fraction
    onset: Fraction
    tied: bool = False


@dataclass(frozen=True)
class Melody:
    """A tune's melody (its first voice with notes), bar by bar as written, and its key."""

    tonic: int | None  # pitch class, None for K:none
    mode: str | None
    beat: Fraction | None  # the meter's beat in whole notes, None in free meter
    bars: tuple[tuple[Event, ...], ...]
    bar_texts: tuple[str, ...]

    def notes(self) -> list[tuple[int, Fraction]]:
        """(pitch, length) of each sounding note, tied notes joined, rests left out."""
        joined: list[tuple[int, Fraction]] = []
        for bar in self.bars:
            for event in bar:
                if event.pitch is None:
                    continue
                if event.tied and joined and joined[-1][0] == event.pitch:
                    joined[-1] = (event.pitch, joined[-1][1] + event.length)
                else:
                    joined.append((event.pitch, event.length))
        return joined


def pitch_class_of(tonic: str) -> int:
    """The pitch class (C = 0) of a tonic as ABC or a request spells it: ``Bb``, ``e flat``,
    ``F♯`` (:func:`agent.notation.tonic_pitch_class` with the spoken signs read first).

    >>> pitch_class_of("e flat"), pitch_class_of(" F♯ "), pitch_class_of("Bb")
    (3, 6, 10)
    >>> pitch_class_of("H sharp")
    Traceback (most recent call last):
    ...
    ValueError: not a tonic: 'H sharp'
    """
    match = re.fullmatch(r"\s*(\S)\s*(#|sharp|b|flat|♯|♭)?\s*", tonic or "")
    sign = {"sharp": "#", "♯": "#", "flat": "b", "♭": "b"}.get(match.group(2), match.group(2) or "") \
        if match else ""
    try:
        return tonic_pitch_class(match.group(1) + sign)
    except (AttributeError, ValueError):
        raise ValueError(f"not a tonic: {tonic!r}") from None


def _normal_mode(mode: str | None) -> str | None:
    if mode is None:
        return None
    mode = mode.strip().lower()
    return mode_name(mode) or mode


def _melody_voice(tokens: list[Token]) -> str:
    return next((t.voice for t in tokens if t.is_note), "")


def melody(abc: str) -> Melody:
    """The melody of ``abc`` read by the project's tokenizer.

    >>> m = melody("X:1\\nM:2/4\\nL:1/8\\nK:G\\nG2 B2-|B2 z2|\\n")
    >>> m.tonic, m.mode, [[(e.pitch, str(e.length), e.tied) for e in bar] for bar in m.bars]
    (7, 'major', [[(67, '1/4', False), (71, '1/4', False)], [(71, '1/4', True), (None, '1/4', False)]])
    >>> m.notes()
    [(67, Fraction(1, 4)), (71, Fraction(1, 2))]
    >>> melody("X:1\\nK:C\\n").bars
    ()
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice = _melody_voice(tokens)
    bars, texts = [], []
    tie_open = False
    for bar in split_bars(tokens, tune):
        if bar.voice != voice:
            continue
        events: list[Event] = []
        onset = Fraction(0)
        if not bars and bar.expected and bar.duration < bar.expected:
            onset = bar.expected - bar.duration  # a pickup leads to the next downbeat
        for token in bar.tokens:
            if token.kind is Kind.TIE:
                tie_open = True
            elif token.kind in (Kind.NOTE, Kind.CHORD, Kind.REST) and token.duration is not None:
                pitch = max(token.pitches) if token.pitches else None
                events.append(Event(pitch, token.duration, onset, tie_open and pitch is not None))
                onset += token.duration
                tie_open = False
        if events:
            bars.append(tuple(events))
            texts.append(bar.text_in(tune.body))
    key = tune.key
    tonic = pitch_class_of(key.tonic) if key.tonic else None
    beat = tune.meter.beat_length if not tune.meter.is_free else None
    return Melody(tonic, _normal_mode(key.mode), beat, tuple(bars), tuple(texts))


def bar_count(abc: str) -> int:
    """Bars of the melody as written, where short bars that make up a full one between them
    (a pickup and the bar that closes its part) count once: full bars, plus the short bars'
    lengths in bars, rounded. In free meter every bar counts.

    >>> bar_count("X:1\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GABc|]\\n")
    2
    >>> bar_count("X:1\\nM:2/4\\nL:1/8\\nK:C\\nC|DEFG|ABc|]\\n")
    2
    >>> bar_count("X:1\\nK:C\\n")
    0
    """
    return musical_bar_count(parse_tune(abc))


def notes_of(abc: str) -> list[tuple[str, tuple[int, ...], Fraction | None]]:
    """Every note, chord and grace group of the tune in order, as (kind, MIDI pitches, length):
    what a transposition moves and a lyric edit must leave alone.

    >>> notes_of("X:1\\nL:1/4\\nK:C\\n{g}C [EG]|\\nw:la la\\n")
    [('grace', (79,), None), ('note', (60,), Fraction(1, 4)), ('chord', (64, 67), Fraction(1, 4))]
    """
    tune = parse_tune(abc)
    kinds = (Kind.NOTE, Kind.CHORD, Kind.GRACE)
    return [(str(t.kind), t.pitches, t.duration) for t in tokenize_body(tune.body, tune)
            if t.kind in kinds]


# --------------------------------------------------------------------------------------------
# Control: attributes a prompt asked for


def _tempo_bpm(abc: str) -> float | None:
    tempo = parse_tune(abc).tempo
    return tempo.bpm if tempo else None


def _meter_equal(written: str | None, wanted: str) -> bool:
    if not written:
        return False
    try:
        a, b = parse_meter(written), parse_meter(wanted)
    except AbcError:
        return False
    return (a.numerator, a.denominator, a.groups) == (b.numerator, b.denominator, b.groups)


def _instrument_program(name: str) -> int | None:
    from agent.vocabulary import INSTRUMENTS

    return INSTRUMENTS.get(name.lower())


def lyric_lines(abc: str, max_line_syllables: int | None = None) -> list[str]:
    """The first verse of the tune's words as lyric lines: each music line, or each part of a
    long one, as :func:`agent.lyrics.lyric_phrases` cuts it (the lines the words were written as).

    >>> lyric_lines("X:1\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GABc|\\nw:the moon is high a-bove the sky\\n")
    ['the moon is high above the sky']
    >>> lyric_lines("X:1\\nK:C\\nCDEF|\\n")
    []
    """
    from agent import abc_lyrics
    from agent.lyric_fit import lyric_phrases, note_slots
    from agent.lyrics import LyricsConfig

    limit = max_line_syllables or LyricsConfig().max_line_syllables
    tune = parse_tune(abc)
    aligned = abc_lyrics.align_lyrics(tokenize_body(tune.body, tune))
    if not aligned.verses:
        return []
    sung = {tune.body_offset + note.start: syllable
            for note, syllable in zip(aligned.notes, aligned.verses[0]) if syllable is not None}
    lines = []
    for phrase in lyric_phrases(note_slots(abc), limit):
        words = abc_lyrics.join_syllables(
            sung[slot.start] for slot in phrase.slots if slot.start in sung and not slot.tied)
        if words:
            lines.append(" ".join(words))
    return lines


def _on_theme(lines: Sequence[str], theme: str) -> bool:
    from agent.theme import theme_presence

    return bool(lines) and theme_presence(lines, theme).theme_word_used


def requested_attributes(expect: Mapping[str, object]) -> list[str]:
    """The names :func:`attribute_checks` reports for ``expect``, in its order.

    >>> requested_attributes({"tonic": "D", "tempo_range": [40, 90], "lyrics_theme": "sea"})
    ['key', 'tempo', 'lyrics']
    """
    names = {"tonic": "key", "mode": "key", "meter": "meter", "tempo_bpm": "tempo",
             "tempo_range": "tempo", "bars": "bars", "instrument": "instrument",
             "lyrics_theme": "lyrics", "style": "style"}
    order = ["key", "meter", "tempo", "bars", "instrument", "lyrics", "style"]
    wanted = {names[k] for k in expect if k in names}
    return [name for name in order if name in wanted]


def attribute_checks(abc: str, expect: Mapping[str, object]) -> dict[str, bool]:
    """Which requested attributes the tune honours; only those ``expect`` names are checked.

    ``key``: tonic (any spelling of the pitch) and mode where given (aeolian = minor);
    ``meter``; ``tempo``: ``tempo_bpm`` exactly or within ``tempo_range``, in the ``Q:``
    field's beats a minute; ``bars``: bars as written (:func:`bar_count`); ``instrument``: the
    ``%%MIDI program`` is that instrument's; ``lyrics``: there are words and a line uses a
    word of ``lyrics_theme``; ``style``: the ``R:`` field names it.

    >>> tune = "X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=100\\n%%MIDI program 73\\nK:Am\\nA6|]\\n"
    >>> attribute_checks(tune, {"tonic": "A", "mode": "aeolian", "tempo_range": [40, 90],
    ...                         "instrument": "flute", "bars": 16, "lyrics_theme": "moon",
    ...                         "style": "waltz"})
    {'key': True, 'tempo': False, 'bars': False, 'instrument': True, 'lyrics': False, 'style': True}
    """
    tune = parse_tune(abc)
    checks: dict[str, bool] = {}
    if "tonic" in expect or "mode" in expect:
        key = tune.key
        ok = True
        if "tonic" in expect:
            ok = key.tonic is not None and pitch_class_of(key.tonic) == pitch_class_of(str(expect["tonic"]))
        if "mode" in expect:
            ok = ok and _normal_mode(key.mode) == _normal_mode(str(expect["mode"]))
        checks["key"] = ok
    if "meter" in expect:
        checks["meter"] = _meter_equal(tune.get("M"), str(expect["meter"]))
    if "tempo_bpm" in expect or "tempo_range" in expect:
        bpm = _tempo_bpm(abc)
        if bpm is None:
            checks["tempo"] = False
        elif "tempo_bpm" in expect:
            checks["tempo"] = round(bpm) == int(expect["tempo_bpm"])
        else:
            low, high = expect["tempo_range"]
            checks["tempo"] = low <= bpm <= high
    if "bars" in expect:
        checks["bars"] = bar_count(abc) == int(expect["bars"])
    if "instrument" in expect:
        from agent.render import midi_program

        wanted = _instrument_program(str(expect["instrument"]))
        checks["instrument"] = wanted is not None and midi_program(abc) == wanted
    if "lyrics_theme" in expect:
        checks["lyrics"] = _on_theme(lyric_lines(abc), str(expect["lyrics_theme"]))
    if "style" in expect:
        rhythm = (tune.get("R") or "").strip().lower()
        checks["style"] = rhythm == str(expect["style"]).lower()
    return checks


def lyrics_measures(abc: str, rhyme_scheme: str | None = None) -> dict[str, float | None]:
    """Syllable fit (share of ``w:`` lines that take exactly their notes), rhyme rate (share of
    the line pairs the scheme asks to rhyme that do), the share of stressed syllables on strong
    beats, and the prosody measures of :func:`agent.prosody.stress_alignment`: the share of
    words of two or more syllables whose stressed syllable is on the word's strongest beat
    (``stress_alignment``), the share of sung syllables on notes shorter than 0.15 s at the
    tempo (``short_syllables``) and the melody's range in semitones (``song_range``); None where
    the tune has nothing to measure.

    >>> tune = "X:1\\nM:4/4\\nL:1/4\\nK:C\\nC D E F|\\nw:moon in the sky\\nG A B c|\\nw:bright a-bove me\\n"
    >>> lyrics_measures(tune)  # doctest: +NORMALIZE_WHITESPACE
    {'syllable_fit': 1.0, 'rhyme_rate': 0.0, 'stress_on_strong': 0.75, 'stress_alignment': 1.0,
     'short_syllables': 0.0, 'song_range': 12}
    >>> lyrics_measures(tune.replace("bright a-bove me", "bright and high"))["syllable_fit"]
    0.5
    >>> lyrics_measures("X:1\\nK:C\\nCDEF|\\n")  # doctest: +NORMALIZE_WHITESPACE
    {'syllable_fit': None, 'rhyme_rate': None, 'stress_on_strong': None, 'stress_alignment': None,
     'short_syllables': None, 'song_range': None}
    """
    from agent.lyrics import LyricsConfig, rhyme_rate, stress_on_strong_beats, syllable_fit
    from agent.prosody import stress_alignment

    scheme = rhyme_scheme or LyricsConfig().rhyme_scheme
    lines = lyric_lines(abc)
    report = stress_alignment(abc)
    sung = report.syllables > 0
    return {"syllable_fit": syllable_fit(abc).rate,
            "rhyme_rate": rhyme_rate(lines, scheme) if lines else None,
            "stress_on_strong": stress_on_strong_beats(abc),
            "stress_alignment": report.stress_share,
            "short_syllables": report.short_syllables / report.syllables if sung else None,
            "song_range": report.range_semitones if sung else None}


# --------------------------------------------------------------------------------------------
# Edits: the checks of a scripted turn


def transposed_by(before: str, after: str, semitones: int) -> bool:
    """True when ``after`` has the same notes as ``before``, each moved by ``semitones``.

    >>> transposed_by("X:1\\nK:D\\nDFA|\\n", "X:1\\nK:E\\nEGB|\\n", 2)
    True
    >>> transposed_by("X:1\\nK:D\\nDFA|\\n", "X:1\\nK:E\\nEGc|\\n", 2)
    False
    """
    old, new = notes_of(before), notes_of(after)
    if len(old) != len(new) or not old:
        return False
    for (kind_a, pitches_a, length_a), (kind_b, pitches_b, length_b) in zip(old, new):
        if kind_a != kind_b or length_a != length_b or len(pitches_a) != len(pitches_b):
            return False
        if any(b - a != semitones for a, b in zip(sorted(pitches_a), sorted(pitches_b))):
            return False
    return True


def same_notes(before: str, after: str) -> bool:
    """True when both tunes have the same notes, chords and grace notes (pitch and length).

    >>> same_notes("X:1\\nK:C\\nCDEF|\\n", "X:1\\nK:C\\nCDEF|\\nw:la la la la\\n")
    True
    >>> same_notes("X:1\\nK:C\\nCDEF|\\n", "X:1\\nK:C\\nCDEG|\\n")
    False
    """
    return notes_of(before) == notes_of(after)


def _lyrics_present(abc: str) -> bool:
    from agent.lyric_fit import read_lyrics

    return any(any(text.strip() for text in verses) for verses in read_lyrics(abc))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _first_half_same(before: str, after: str) -> bool:
    old, new = melody(before).bar_texts, melody(after).bar_texts
    half = len(old) // 2
    return len(new) >= half > 0 and [b.split() for b in old[:half]] == [b.split() for b in new[:half]]


def check_turn(check: Mapping[str, object], before: str | None, after: str | None, *,
               changed: bool, undo_target: str | None = None) -> dict[str, bool]:
    """Evaluate one scripted turn: each named check on the score ``before`` and ``after`` it.

    ``changed`` is whether the turn made a new score; ``undo_target`` the score an ``undo``
    must bring back byte for byte (the one before the previous turn). A check that needs a
    score fails when there is none. The checks: ``tempo_change`` (faster/slower than before),
    ``transpose_semitones`` (every note, chord and grace note moved by that many semitones,
    lengths kept), ``tonic``, ``mode``, ``undo``, ``unchanged`` (the same ABC), ``changed``
    (the turn made a new score, or not), ``instrument``, ``lyrics_theme`` (words present, one
    line uses a theme word), ``notes_unchanged`` (the same notes, pitch and length),
    ``notes_kept_or_made_singable`` (the same notes, or a melody a voice could not sing made
    singable: same bars),
    ``no_lyrics``, ``tempo_bpm``, ``title``, ``empty`` (no score), ``first_half_unchanged``
    (the first half of the bars as they were), ``first_lyric_line`` (the words under the
    first music line) and ``lyric_lines_kept`` (the words under those music lines as they were,
    the others' changed).

    >>> a = "X:1\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:D\\nDFAd|]\\n"
    >>> b = "X:1\\nM:2/4\\nL:1/8\\nQ:1/4=120\\nK:D\\nDFAd|]\\n"
    >>> check_turn({"tempo_change": "faster", "notes_unchanged": True}, a, b, changed=True)
    {'tempo_change': True, 'notes_unchanged': True}
    >>> check_turn({"undo": True}, b, a, changed=True, undo_target=a)
    {'undo': True}
    >>> check_turn({"undo": True}, b, a + " ", changed=True, undo_target=a)
    {'undo': False}
    >>> check_turn({"colour": "red"}, a, b, changed=True)
    Traceback (most recent call last):
    ...
    ValueError: unknown check 'colour'
    """
    results: dict[str, bool] = {}
    for name, wanted in check.items():
        if name not in _CHECKS:
            raise ValueError(f"unknown check {name!r}")
        results[name] = bool(_CHECKS[name](wanted, before, after, changed, undo_target))
    return results


def _needs(*scores: str | None) -> bool:
    return all(s is not None for s in scores)


def _tempo_change(wanted, before, after, changed, target) -> bool:
    if not _needs(before, after):
        return False
    old, new = _tempo_bpm(before), _tempo_bpm(after)
    if old is None or new is None:
        return False
    return new > old if wanted == "faster" else new < old


def _transpose(wanted, before, after, changed, target) -> bool:
    return _needs(before, after) and transposed_by(before, after, int(wanted))


def _tonic(wanted, before, after, changed, target) -> bool:
    return _needs(after) and attribute_checks(after, {"tonic": wanted})["key"]


def _mode(wanted, before, after, changed, target) -> bool:
    return _needs(after) and attribute_checks(after, {"mode": wanted})["key"]


def _undo(wanted, before, after, changed, target) -> bool:
    return after == target


def _unchanged(wanted, before, after, changed, target) -> bool:
    return after == before


def _changed(wanted, before, after, changed, target) -> bool:
    return changed == bool(wanted)


def _instrument(wanted, before, after, changed, target) -> bool:
    return _needs(after) and attribute_checks(after, {"instrument": wanted})["instrument"]


def _lyrics_theme(wanted, before, after, changed, target) -> bool:
    return _needs(after) and attribute_checks(after, {"lyrics_theme": wanted})["lyrics"]


def _notes_unchanged(wanted, before, after, changed, target) -> bool:
    return _needs(before, after) and same_notes(before, after)


def _notes_kept_or_made_singable(wanted, before, after, changed, target) -> bool:
    """Words added to a tune: its notes stay as they were, unless a voice could not sing them
    (then the melody may be made singable first: same bar count, and nothing left unsingable).

    >>> a = "X:1\\nM:3/4\\nL:1/4\\nQ:1/4=90\\nK:G\\nG A B|c B A|G3|]\\n"
    >>> _notes_kept_or_made_singable(True, a, a + "w:one two three four five six sev-en\\n", True, None)
    True
    >>> _notes_kept_or_made_singable(True, a, a.replace("c B A", "c d e"), True, None)
    False
    """
    from agent.abc_text import bar_count
    from agent.singable import singing_problems

    if not _needs(before, after):
        return False
    if same_notes(before, after):
        return True
    return (bool(singing_problems(before)) and not singing_problems(after)
            and bar_count(parse_tune(before)) == bar_count(parse_tune(after)))


def _no_lyrics(wanted, before, after, changed, target) -> bool:
    return _needs(after) and not _lyrics_present(after)


def _tempo_bpm_check(wanted, before, after, changed, target) -> bool:
    return _needs(after) and attribute_checks(after, {"tempo_bpm": wanted})["tempo"]


def _title(wanted, before, after, changed, target) -> bool:
    return _needs(after) and (parse_tune(after).title or "") == wanted


def _empty(wanted, before, after, changed, target) -> bool:
    return after is None


def _first_half_unchanged(wanted, before, after, changed, target) -> bool:
    return _needs(before, after) and _first_half_same(before, after)


def _first_lyric_line(wanted, before, after, changed, target) -> bool:
    """The words under the first music line (first verse) are ``wanted``."""
    from agent.lyric_fit import read_lyrics

    if not _needs(after):
        return False
    blocks = read_lyrics(after)
    return bool(blocks and blocks[0]) and _words(blocks[0][0]) == _words(str(wanted))


def _lyric_lines_kept(wanted, before, after, changed, target) -> bool:
    """The words under each music line named in ``wanted`` (1-based) are as they were, and the
    words under the other lines changed.

    >>> a = "X:1\\nM:2/4\\nL:1/4\\nK:C\\nC D|\\nw:one two\\nE F|\\nw:three four\\n"
    >>> _lyric_lines_kept([1], a, a.replace("three four", "five six"), True, None)
    True
    >>> _lyric_lines_kept([1], a, a.replace("one two", "five six"), True, None)
    False
    """
    from agent.lyric_fit import read_lyrics

    if not _needs(before, after):
        return False
    old, new = read_lyrics(before), read_lyrics(after)
    if len(old) != len(new) or not old:
        return False
    kept = {int(n) - 1 for n in wanted}
    return all((old[i] == new[i]) == (i in kept) for i in range(len(old)) if old[i])


_CHECKS = {
    "tempo_change": _tempo_change,
    "transpose_semitones": _transpose,
    "tonic": _tonic,
    "mode": _mode,
    "undo": _undo,
    "unchanged": _unchanged,
    "changed": _changed,
    "instrument": _instrument,
    "lyrics_theme": _lyrics_theme,
    "notes_unchanged": _notes_unchanged,
    "notes_kept_or_made_singable": _notes_kept_or_made_singable,
    "lyric_lines_kept": _lyric_lines_kept,
    "no_lyrics": _no_lyrics,
    "tempo_bpm": _tempo_bpm_check,
    "title": _title,
    "empty": _empty,
    "first_half_unchanged": _first_half_unchanged,
    "first_lyric_line": _first_lyric_line,
}


# --------------------------------------------------------------------------------------------
# Music: statistics of a set of tunes


def _interval_bin(step: int) -> str:
    if step > MAX_INTERVAL:
        return f">{MAX_INTERVAL}"
    if step < -MAX_INTERVAL:
        return f"<-{MAX_INTERVAL}"
    return str(step)


def _triad_of_tonic(tonic: int, mode: str | None) -> frozenset[int]:
    third = 3 if mode in MINOR_THIRD_MODES else 4
    fifth = 6 if mode == "locrian" else 7
    return frozenset({tonic, (tonic + third) % 12, (tonic + fifth) % 12})


def _implied_triad(bar: Sequence[Event], beat: Fraction | None) -> frozenset[int]:
    """The major or minor triad covering most of the bar's notes on the beat (by length; all
    its notes when none falls on a beat); ties go to the lowest root."""
    notes = [e for e in bar if e.pitch is not None]
    if beat:
        on_beat = [e for e in notes if (e.onset / beat).denominator == 1]
        notes = on_beat or notes
    weight: Counter = Counter()
    for event in notes:
        weight[event.pitch % 12] += event.length
    return max(_TRIADS, key=lambda t: (sum(weight[p] for p in t[1]), -t[0]))[1]


def tune_statistics(abc: str) -> dict:
    """The statistics of one tune that :func:`music_profile` pools: histograms (pitch class
    relative to the tonic, melodic interval in semitones, note length in whole notes), range in
    semitones, bars ending on a chord tone (of the tonic triad or the bar's implied triad) and
    the share of distinct bars.

    >>> stats = tune_statistics("X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|GABc|G4|]\\n")
    >>> stats["pitch_classes"], stats["range"], stats["cadence_bars"], stats["distinct_bars"]
    ({'0': 3, '2': 2, '4': 2, '5': 2, '7': 1}, 7, (2, 4), 0.75)
    >>> tune_statistics("X:1\\nK:C\\n")
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: the tune has no notes
    """
    return _statistics(melody(abc))


def _statistics(tune: Melody) -> dict:
    notes = tune.notes()
    if not notes:
        raise AbcError("the tune has no notes")
    tonic = tune.tonic if tune.tonic is not None else 0
    pitches = [p for p, _ in notes]
    tonic_triad = _triad_of_tonic(tonic, tune.mode)
    cadences = 0
    full_bars = 0
    for bar in tune.bars:
        sounding = [e for e in bar if e.pitch is not None]
        if not sounding:
            continue
        full_bars += 1
        last = sounding[-1].pitch % 12
        cadences += last in tonic_triad or last in _implied_triad(bar, tune.beat)
    texts = ["".join(t.split()) for t in tune.bar_texts]
    return {
        "pitch_classes": dict(Counter(str((p - tonic) % 12) for p in pitches)),
        "intervals": dict(Counter(_interval_bin(b - a) for a, b in zip(pitches, pitches[1:]))),
        "lengths": dict(Counter(str(length) for _, length in notes)),
        "range": max(pitches) - min(pitches),
        "cadence_bars": (cadences, full_bars),
        "distinct_bars": len(set(texts)) / len(texts),
    }


@dataclass
class MusicProfile:
    """Pooled statistics of a set of tunes."""

    tunes: int = 0
    pitch_classes: Counter = field(default_factory=Counter)
    intervals: Counter = field(default_factory=Counter)
    lengths: Counter = field(default_factory=Counter)
    ranges: list[int] = field(default_factory=list)
    cadences: int = 0
    bars: int = 0
    distinct: list[float] = field(default_factory=list)
    unreadable: int = 0

    def summary(self) -> dict:
        """The scalar measures: mean range, share of cadential bar endings, mean distinct-bar share."""
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)  # noqa: E731
        return {"tunes": self.tunes, "unreadable": self.unreadable,
                "range_semitones": mean(self.ranges),
                "cadence_share": self.cadences / self.bars if self.bars else None,
                "distinct_bar_share": mean(self.distinct)}


def music_profile(tunes: Iterable[str]) -> MusicProfile:
    """Pool :func:`tune_statistics` over ``tunes``; tunes that cannot be read are counted.

    >>> profile = music_profile(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n", "X:1\\nK:C\\n"])
    >>> profile.tunes, profile.unreadable, profile.summary()["range_semitones"]
    (1, 1, 7.0)
    """
    return profile_and_index(tunes, copy_bars=0)[0]


def profile_and_index(tunes: Iterable[str], copy_bars: int = COPY_BARS) -> tuple[MusicProfile, set[str]]:
    """:func:`music_profile` and :func:`copy_index` of ``tunes`` in one reading of each tune
    (``copy_bars=0``: no index). For the training set, where reading is most of the time.

    >>> profile, index = profile_and_index(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|dcBA|GABc|dcBA|G4|]\\n"])
    >>> profile.tunes, len(index)
    (1, 1)
    """
    profile = MusicProfile()
    index: set[str] = set()
    for abc in tunes:
        try:
            tune = melody(abc)
            stats = _statistics(tune)
        except (AbcError, ValueError):
            profile.unreadable += 1
            continue
        if copy_bars:
            index.update(_windows(tune, copy_bars))
        profile.tunes += 1
        profile.pitch_classes.update(stats["pitch_classes"])
        profile.intervals.update(stats["intervals"])
        profile.lengths.update(stats["lengths"])
        profile.ranges.append(stats["range"])
        profile.cadences += stats["cadence_bars"][0]
        profile.bars += stats["cadence_bars"][1]
        profile.distinct.append(stats["distinct_bars"])
    return profile, index


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence of two histograms (counts, normalised here), base 2: 0 for the
    same distribution, 1 for disjoint ones.

    >>> jensen_shannon({"a": 2, "b": 2}, {"a": 5, "b": 5})
    0.0
    >>> jensen_shannon({"a": 1}, {"b": 1})
    1.0
    >>> jensen_shannon({}, {"a": 1})
    Traceback (most recent call last):
    ...
    ValueError: a histogram is empty
    """
    total_p, total_q = sum(p.values()), sum(q.values())
    if total_p <= 0 or total_q <= 0:
        raise ValueError("a histogram is empty")
    divergence = 0.0
    for key in set(p) | set(q):
        a, b = p.get(key, 0) / total_p, q.get(key, 0) / total_q
        m = (a + b) / 2
        if a:
            divergence += a * math.log2(a / m) / 2
        if b:
            divergence += b * math.log2(b / m) / 2
    return round(max(0.0, divergence), 6)


def compare_profiles(generated: MusicProfile, reference: MusicProfile) -> dict[str, float | None]:
    """Jensen-Shannon divergences of the three histograms of ``generated`` from ``reference``.

    >>> same = music_profile(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n"])
    >>> compare_profiles(same, same)
    {'js_pitch_class': 0.0, 'js_interval': 0.0, 'js_length': 0.0}
    """
    def divergence(a: Counter, b: Counter) -> float | None:
        return jensen_shannon(a, b) if a and b else None

    return {"js_pitch_class": divergence(generated.pitch_classes, reference.pitch_classes),
            "js_interval": divergence(generated.intervals, reference.intervals),
            "js_length": divergence(generated.lengths, reference.lengths)}


def meter_of(abc: str) -> str | None:
    """The tune's meter as ``numerator/denominator`` (``C`` reads as 4/4, ``C|`` as 2/2), or
    None for free meter or a tune that cannot be read.

    >>> meter_of("X:1\\nM:C|\\nK:D\\nA4|\\n"), meter_of("X:1\\nM:6/8\\nK:D\\nA3|\\n")
    ('2/2', '6/8')
    """
    try:
        meter = parse_tune(abc).meter
    except AbcError:
        return None
    return f"{meter.numerator}/{meter.denominator}" if meter.numerator else None


def mode_class_of(abc: str) -> str | None:
    """``minor`` for a tune whose mode has a minor third (minor, dorian, phrygian, locrian),
    ``major`` for the others (a key without a mode is major), None for ``K:none`` or a tune that
    cannot be read. Pitch classes relative to the tonic are compared within a class: a minor
    tune's third and sixth are not a major tune's.

    >>> mode_class_of("X:1\\nK:Ador\\nA4|\\n"), mode_class_of("X:1\\nK:G\\nG4|\\n")
    ('minor', 'major')
    """
    try:
        key = parse_tune(abc).key
    except AbcError:
        return None
    if not key.tonic:
        return None
    return "minor" if _normal_mode(key.mode) in MINOR_THIRD_MODES else "major"


def profiles_by(tunes: Iterable[str], kind_of: Callable[[str], str | None]) -> dict[str, MusicProfile]:
    """:func:`music_profile` of ``tunes`` grouped by ``kind_of`` (tunes of kind None left out)."""
    groups: dict[str, list[str]] = {}
    for abc in tunes:
        kind = kind_of(abc)
        if kind is not None:
            groups.setdefault(kind, []).append(abc)
    return {kind: music_profile(group) for kind, group in groups.items()}


def profiles_by_meter(tunes: Iterable[str]) -> dict[str, MusicProfile]:
    """:func:`music_profile` of ``tunes`` grouped by :func:`meter_of`."""
    return profiles_by(tunes, meter_of)


def profiles_by_mode(tunes: Iterable[str]) -> dict[str, MusicProfile]:
    """:func:`music_profile` of ``tunes`` grouped by :func:`mode_class_of`."""
    return profiles_by(tunes, mode_class_of)


def compare_by(tunes: Iterable[str], reference: Mapping[str, MusicProfile],
               kind_of: Callable[[str], str | None], kind: str) -> dict[str, float | int | None]:
    """The divergences of :func:`compare_profiles`, each tune compared with the reference tunes
    of its own kind (``kind_of``; ``kind`` names it in the keys, ``js_length_same_meter``): per
    kind, the pooled histograms of the tunes in it against the reference's, then the mean over
    kinds weighted by the tunes' notes. A jig is then measured against jigs, a minor air against
    minor tunes, rather than against a mix where the reference's commonest kind weighs most.
    Tunes of a kind the reference lacks are left out (``{kind}_matched_tunes`` counts the others).

    >>> ref = profiles_by_meter(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n"])
    >>> compare_by(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n"], ref, meter_of, "meter")["js_length_same_meter"]
    0.0
    """
    generated = profiles_by(tunes, kind_of)
    totals: dict[str, float] = {}
    weight, matched = 0, 0
    for group, profile in generated.items():
        if group not in reference or not profile.tunes or not reference[group].tunes:
            continue
        notes = sum(profile.lengths.values())
        for name, value in compare_profiles(profile, reference[group]).items():
            if value is not None:
                totals[name] = totals.get(name, 0.0) + value * notes
        weight += notes
        matched += profile.tunes
    result: dict[str, float | int | None] = {
        f"{name}_same_{kind}": (round(totals[name] / weight, 6) if weight and name in totals else None)
        for name in ("js_pitch_class", "js_interval", "js_length")}
    result[f"{kind}_matched_tunes"] = matched
    return result


def compare_by_meter(tunes: Iterable[str], reference: Mapping[str, MusicProfile]
                     ) -> dict[str, float | int | None]:
    """:func:`compare_by` meter (note lengths depend on it: a jig's against jigs')."""
    return compare_by(tunes, reference, meter_of, "meter")


def compare_by_mode(tunes: Iterable[str], reference: Mapping[str, MusicProfile]
                    ) -> dict[str, float | int | None]:
    """:func:`compare_by` :func:`mode_class_of` (pitch classes depend on it)."""
    return compare_by(tunes, reference, mode_class_of, "mode")


def tune_kind(abc: str) -> tuple[str, str | None, str | None]:
    """What a request fixes about a tune: its style (``R:``, lower case, "" without one),
    :func:`meter_of` and :func:`mode_class_of`.

    >>> tune_kind("X:1\\nR:Jig\\nM:6/8\\nK:Em\\nE3|\\n")
    ('jig', '6/8', 'minor')
    """
    try:
        style = (parse_tune(abc).get("R") or "").strip().lower()
    except AbcError:
        style = ""
    return style, meter_of(abc), mode_class_of(abc)


def matched_yardstick(generated: Sequence[str], pool: Sequence[str], reference: MusicProfile,
                      by_mode: Mapping[str, MusicProfile], by_meter: Mapping[str, MusicProfile],
                      draws: int = 20, seed: int = 0) -> dict[str, float | int] | None:
    """How far real tunes of the kinds asked for are from the reference, in the same number as
    ``generated``: for each generated tune a tune of ``pool`` (the training tunes) of the same
    :func:`tune_kind` (or of the same meter and mode class when no tune has its style), the
    picks compared as :func:`compare_profiles`, :func:`compare_by_mode` and
    :func:`compare_by_meter` compare generated tunes, averaged over ``draws`` draws.

    This is the distance a model that wrote exactly like the corpus would reach on these
    requests: the requests' mix of meters, modes and styles is not the reference's, and a
    handful of tunes is a small sample, so it is not 0. Returns None when nothing matches.

    >>> pool = ["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n"]
    >>> matched_yardstick(pool, pool, music_profile(pool), profiles_by_mode(pool), profiles_by_meter(pool),
    ...                   draws=2)["js_pitch_class"]
    0.0
    """
    import random

    by_kind: dict[tuple, list[str]] = {}
    by_meter_mode: dict[tuple, list[str]] = {}
    for abc in pool:
        kind = tune_kind(abc)
        by_kind.setdefault(kind, []).append(abc)
        by_meter_mode.setdefault(kind[1:], []).append(abc)
    wanted = [tune_kind(abc) for abc in generated]
    choices = [by_kind.get(kind) or by_meter_mode.get(kind[1:]) for kind in wanted]
    choices = [c for c in choices if c]
    if not choices:
        return None
    rng = random.Random(seed)
    totals: dict[str, float] = {}
    for _ in range(draws):
        picks = [rng.choice(c) for c in choices]
        measured = compare_profiles(music_profile(picks), reference)
        measured.update(compare_by_mode(picks, by_mode))
        measured.update(compare_by_meter(picks, by_meter))
        for key, value in measured.items():
            if key.startswith("js_") and value is not None:
                totals[key] = totals.get(key, 0.0) + value
    result: dict[str, float | int] = {key: round(value / draws, 6) for key, value in totals.items()}
    result.update(tunes=len(choices), draws=draws)
    return result


def paired_bootstrap(first: Sequence[str], second: Sequence[str],
                     reference: Mapping[str, MusicProfile], histogram: str,
                     kind_of: Callable[[str], str | None] | None = None,
                     draws: int = 2000, seed: int = 0) -> dict[str, float | int] | None:
    """How surely ``first`` is closer to the reference than ``second`` in one histogram:
    ``first[i]`` and ``second[i]`` answer the same prompt (two configurations), and the pairs
    are drawn again with replacement ``draws`` times, both sides pooled over the same draw.

    ``histogram`` is ``pitch_classes``, ``intervals`` or ``lengths``. Without ``kind_of`` the
    pooled histograms are compared with ``reference["all"]``; with it, as :func:`compare_by`
    does, each kind's tunes with the reference of its kind, weighted by their notes. Returns
    ``difference`` (first's divergence minus second's on the pairs as they are; below 0 when
    first is closer), ``low`` and ``high`` (the 5th and 95th percentiles of the difference over
    the draws) and ``closer_share`` (the share of draws where first is closer); None when no
    pair can be read. A pair where either tune cannot be read is left out.

    >>> ref = {"all": music_profile(["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|GABc|B4|]\\n"])}
    >>> near = ["X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]\\n", "X:1\\nM:2/4\\nL:1/8\\nK:D\\nDEFG|A4|]\\n"]
    >>> far = ["X:1\\nM:2/4\\nL:1/8\\nK:G\\nF2F2|F4|]\\n", "X:1\\nM:2/4\\nL:1/8\\nK:D\\nC2C2|C4|]\\n"]
    >>> result = paired_bootstrap(near, far, ref, "pitch_classes", draws=200)
    >>> result["difference"] < 0, result["high"] < 0, result["closer_share"]
    (True, True, 1.0)
    """
    import numpy as np

    if histogram not in ("pitch_classes", "intervals", "lengths"):
        raise ValueError(f"not a histogram: {histogram!r}")
    kind_of = kind_of or (lambda abc: "all")
    rows: list[tuple[dict, dict, str]] = []
    for a, b in zip(first, second, strict=True):
        try:
            stats_a, stats_b = tune_statistics(a), tune_statistics(b)
        except (AbcError, ValueError):
            continue
        kind_a, kind_b = kind_of(a), kind_of(b)
        if kind_a is not None and kind_a == kind_b and kind_a in reference and reference[kind_a].tunes:
            rows.append((stats_a, stats_b, kind_a))
    if not rows:
        return None
    bins = sorted({key for a, b, _ in rows for key in (*a[histogram], *b[histogram])}
                  | {key for profile in reference.values() for key in getattr(profile, histogram)})
    column = {key: i for i, key in enumerate(bins)}

    def matrix(side: int) -> "np.ndarray":
        out = np.zeros((len(rows), len(bins)))
        for i, row in enumerate(rows):
            for key, count in row[side][histogram].items():
                out[i, column[key]] = count
        return out

    def notes(side: int) -> "np.ndarray":
        return np.array([float(sum(row[side]["lengths"].values())) for row in rows])

    kinds = np.array([row[2] for row in rows])
    targets = {}
    for kind in set(kinds.tolist()):
        target = np.zeros(len(bins))
        for key, count in getattr(reference[kind], histogram).items():
            target[column[key]] = count
        targets[kind] = target / target.sum()

    def divergence(weights: "np.ndarray", counts: "np.ndarray", sizes: "np.ndarray") -> "np.ndarray":
        """The notes-weighted mean over kinds of each draw's JS divergence (draws x tunes weights)."""
        total, weight = np.zeros(len(weights)), np.zeros(len(weights))
        for kind, target in targets.items():
            mask = kinds == kind
            pooled = weights[:, mask] @ counts[mask]
            share = pooled / np.maximum(pooled.sum(axis=1, keepdims=True), 1e-300)
            middle = (share + target) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                js = (np.where(share > 0, share * np.log2(share / middle), 0).sum(axis=1)
                      + np.where(target > 0, target * np.log2(target / middle), 0).sum(axis=1)) / 2
            kind_notes = weights[:, mask] @ sizes[mask]
            total += np.maximum(js, 0) * kind_notes
            weight += kind_notes
        return total / np.maximum(weight, 1e-300)

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), size=(draws, len(rows)))
    weights = np.zeros((draws, len(rows)))
    np.add.at(weights, (np.arange(draws)[:, None], picks), 1.0)
    everything = np.ones((1, len(rows)))
    first_m, second_m = matrix(0), matrix(1)
    first_n, second_n = notes(0), notes(1)
    difference = (divergence(everything, first_m, first_n) - divergence(everything, second_m, second_n))[0]
    drawn = divergence(weights, first_m, first_n) - divergence(weights, second_m, second_n)
    return {"difference": round(float(difference), 6), "low": round(float(np.percentile(drawn, 5)), 6),
            "high": round(float(np.percentile(drawn, 95)), 6),
            "closer_share": round(float((drawn < 0).mean()), 4), "pairs": len(rows)}


# --------------------------------------------------------------------------------------------
# Copying


def _windows(tune: Melody, size: int) -> Iterable[str]:
    """One hash per run of ``size`` consecutive bars: its notes' pitches relative to the run's
    first note, and their lengths, bar lines included; runs with too few notes are skipped.

    ``finetune.fingerprint.bar_fingerprints`` hashes single bars, each relative to its own first
    note; a run of those would also match bars taken from different transpositions, so runs are
    hashed whole here (and read with the text tokenizer, which is fast enough for the whole
    training set)."""
    for start in range(len(tune.bars) - size + 1):
        window = tune.bars[start:start + size]
        pitched = [e.pitch for bar in window for e in bar if e.pitch is not None and not e.tied]
        if len(pitched) < MIN_COPY_NOTES or len(set(pitched)) < 2:
            continue
        first = pitched[0]
        shape = tuple(tuple((None if e.pitch is None else e.pitch - first, e.length, e.tied) for e in bar)
                      for bar in window)
        yield hashlib.sha1(repr(shape).encode()).hexdigest()[:16]


def copy_index(tunes: Iterable[str], size: int = COPY_BARS) -> set[str]:
    """The hashes of every run of ``size`` bars in ``tunes`` (any key), for :func:`copied_bars`.
    Tunes that cannot be read are skipped.

    >>> len(copy_index(["X:1\\nK:C\\n"]))
    0
    """
    index: set[str] = set()
    for abc in tunes:
        try:
            index.update(_windows(melody(abc), size))
        except (AbcError, ValueError):
            continue
    return index


def copied_bars(abc: str, index: set[str], size: int = COPY_BARS) -> bool:
    """True when ``abc`` holds ``size`` consecutive bars of a tune in ``index``, in any key.

    >>> known = "X:1\\nM:2/4\\nL:1/8\\nK:D\\nDFAF|GBdB|AFDF|E2 A2|DFAd|]\\n"
    >>> up = "X:1\\nM:2/4\\nL:1/8\\nK:E\\nEGBG|Acec|BGEG|F2 B2|EGBe|]\\n"
    >>> copied_bars(up, copy_index([known]))
    True
    >>> copied_bars("X:1\\nM:2/4\\nL:1/8\\nK:D\\nDFAF|GBdB|AFDF|E2 A2|DFAf|]\\n", copy_index([known]))
    False
    """
    return any(h in index for h in _windows(melody(abc), size))
