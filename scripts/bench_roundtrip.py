"""Round trip of real ABC tunes through the ABC writer: read, write, read again, compare.

Each tune from music21's bundled ABC corpus is read, written back with
:func:`agent.abc_writer.write_abc`, and the result is read by the same reader. The two scores
must agree bar by bar: every note, chord and rest (offset in the bar, MIDI pitches, quarter
length) and every lyric syllable. The script prints the pass rate and the failures grouped by
cause (the first differing bar and why); ``--out`` keeps everything as JSON.

Two more things are counted but do not decide a pass: repeats and endings (``|:`` ``:|``
``[1`` ``[2`` on the same bar lines) and chord symbols (same names at the same offsets).

Few ABC tunes of the corpus have lyrics, so ``--songs N`` also takes N MusicXML scores with
lyrics from the corpus (mostly Bach chorales), writes them as ABC and compares what the reader
reads back with the score: notes and lyrics.

    nice .venv/bin/python scripts/bench_roundtrip.py --limit 1000 --seed 0 --songs 100 \\
        --out roundtrip.json

The reader is :func:`agent.abc_reader.read_tune` when that module is present, else music21's
``converter.parse``; the output says which.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from agent.abc_text import split_tunebook  # noqa: E402
from agent.abc_writer import first_difference, write_abc  # noqa: E402
from agent.errors import AbcError, TunesmithError  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one round-trip run."""

    limit: int = field(default=1000, metadata={"help": "how many tunes to try (0: all)"})
    seed: int = field(default=0, metadata={"help": "seed for picking the tunes"})
    out: str | None = field(default=None, metadata={"help": "write the results here as JSON"})
    songs: int = field(
        default=0,
        metadata={"help": "also round-trip this many MusicXML songs with lyrics (0: none)"},
    )
    show: int = field(default=12, metadata={"help": "failure groups to print"})
    reader: str = field(
        default="auto",
        metadata={
            "help": "auto (agent.abc_reader when present, else music21), project or music21"
        },
    )


@dataclass(frozen=True)
class CorpusTune:
    """One tune of the corpus: ``name`` is file path (under music21/corpus) and X: number."""

    name: str
    text: str


@dataclass
class Outcome:
    """What happened to one tune."""

    name: str
    status: str  # "pass", "fail" or "skip" (the original could not be read)
    cause: str = ""
    detail: str = ""
    repeats_kept: bool | None = None
    chord_symbols_kept: bool | None = None
    seconds: float = 0.0


def corpus_tunes() -> list[CorpusTune]:
    """Every tune of the ABC files bundled with music21, in a fixed order."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    tunes = []
    for path in sorted(root.rglob("*.abc")):
        book = path.read_text(encoding="latin-1")
        for text in split_tunebook(book):
            number = re.match(r"X:\s*(\S*)", text)
            label = number.group(1) if number else "?"
            tunes.append(CorpusTune(f"{path.relative_to(root)}#{label}", text))
    return tunes


def pick_tunes(tunes: list[CorpusTune], limit: int, seed: int) -> list[CorpusTune]:
    """``limit`` tunes drawn with ``seed`` (all of them when ``limit`` is 0), in corpus order."""
    if not limit or limit >= len(tunes):
        return list(tunes)
    chosen = set(random.Random(seed).sample(range(len(tunes)), limit))
    return [tune for index, tune in enumerate(tunes) if index in chosen]


def choose_reader(which: str = "auto") -> tuple[str, Callable[[str], object]]:
    """The project's reader (``project``), music21's own (``music21``), or the project's
    when it is installed (``auto``)."""
    if which in ("auto", "project"):
        try:
            from agent.abc_reader import read_tune
        except ImportError:
            if which == "project":
                raise
        else:
            return "agent.abc_reader.read_tune", lambda text: read_tune(text).score
    if which not in ("auto", "music21"):
        raise SystemExit(f"unknown reader {which!r}: use auto, project or music21")
    from music21 import converter

    return "music21.converter.parse", lambda text: converter.parse(text, format="abc")


def round_trip(tune: CorpusTune, read: Callable[[str], object]) -> Outcome:
    """Read, write, read again and compare one tune."""
    started = time.perf_counter()
    try:
        original = read(tune.text)
        first_difference(original, original)  # the original must have notes to compare
    except Exception as error:  # an unreadable original is not the writer's failure
        return Outcome(tune.name, "skip", "original unreadable", str(error))
    outcome = write_and_compare(tune.name, original, read)
    outcome.seconds = time.perf_counter() - started
    return outcome


def write_and_compare(
    name: str, original, read: Callable[[str], object], lyrics: bool = True
) -> Outcome:
    """Write a score as ABC, read the text back and compare it with the score (its lyrics
    too, unless ``lyrics`` is False)."""
    outcome = Outcome(name, "fail")
    try:
        written = write_abc(original)
    except TunesmithError as error:
        message = error.message if isinstance(error, AbcError) else str(error)
        outcome.cause, outcome.detail = f"write refused: {message}", str(error)
        return outcome
    except Exception as error:
        outcome.cause, outcome.detail = "write crashed", f"{type(error).__name__}: {error}"
        return outcome
    try:
        again = read(written)
    except Exception as error:
        outcome.cause, outcome.detail = "output unreadable", f"{type(error).__name__}: {error}"
        return outcome
    difference = first_difference(original, again, lyrics=lyrics)
    if difference is None:
        outcome.status = "pass"
    else:
        outcome.cause, outcome.detail = _diagnose(original, difference), str(difference)
    outcome.repeats_kept = _repeats(original) == _repeats(again)
    outcome.chord_symbols_kept = _chord_symbols(original) == _chord_symbols(again)
    return outcome


def songs_with_lyrics() -> list[Path]:
    """The MusicXML files of music21's corpus that carry lyrics (Bach chorales, songs)."""
    import zipfile

    import music21

    root = Path(music21.__file__).parent / "corpus"
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".mxl":
            with zipfile.ZipFile(path) as archive:
                text = b"".join(archive.read(n) for n in archive.namelist() if "META" not in n)
        elif path.suffix in (".xml", ".musicxml"):
            text = path.read_bytes()
        else:
            continue
        if b"<lyric" in text:
            found.append(path)
    return found


def song_round_trip(path: Path, read: Callable[[str], object], lyrics: bool = True) -> Outcome:
    """Parse a MusicXML song, then write, read back and compare it (with its lyrics unless
    ``lyrics`` is False: music21's own reader leaves w: lines out)."""
    import music21

    started = time.perf_counter()
    name = str(path.relative_to(Path(music21.__file__).parent / "corpus"))
    try:
        original = music21.converter.parse(path)
    except Exception as error:
        return Outcome(name, "skip", "original unreadable", str(error))
    outcome = write_and_compare(name, original, read, lyrics)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _diagnose(original, difference) -> str:
    """The cause of a difference, named more closely where a known pattern explains it."""
    from music21 import meter, stream

    if difference.cause in ("note count", "length", "offset", "bar count"):
        parts = [p for p in original.parts if p.recurse().notes]
        measures = list(parts[difference.part].getElementsByClass(stream.Measure))
        if difference.bar < len(measures):
            measure = measures[difference.bar]
            signature = measure.getContextByClass(meter.TimeSignature)
            if signature is not None and (
                measure.duration.quarterLength > signature.barDuration.quarterLength
            ):
                return f"{difference.cause}: the original bar is longer than its meter"
    return difference.cause


def _repeats(score) -> list:
    """Per bar line: does a repeat end there, does one start, and which ending follows.

    Taken per bar line rather than per bar, since music21 may hang a repeat sign on either
    of the two bars it separates."""
    from music21 import bar, spanner, stream

    def repeat(barline, direction):
        return isinstance(barline, bar.Repeat) and barline.direction == direction

    facts = []
    for part in score.parts:
        labels = {}
        for bracket in part.getElementsByClass(spanner.RepeatBracket):
            spanned = bracket.getSpannedElements()
            if spanned:
                labels[id(spanned[0])] = str(bracket.number)
        measures = list(part.getElementsByClass(stream.Measure))
        for before, after in zip([None] + measures, measures + [None]):
            right = before.rightBarline if before is not None else None
            left = after.leftBarline if after is not None else None
            facts.append(
                (
                    repeat(right, "end") or repeat(left, "end"),
                    repeat(left, "start") or repeat(right, "start"),
                    labels.get(id(after)),
                )
            )
    return facts


def _chord_symbols(score) -> list:
    from music21 import harmony

    return [
        (float(cs.getOffsetInHierarchy(score)), cs.figure)
        for cs in score.recurse().getElementsByClass(harmony.Harmony)
    ]


def summarize(outcomes: list[Outcome]) -> dict:
    """Counts, the pass rate over readable tunes, and failures grouped by cause."""
    tried = [o for o in outcomes if o.status != "skip"]
    passed = [o for o in tried if o.status == "pass"]
    groups = collections.Counter(o.cause for o in tried if o.status == "fail")
    examples = {}
    for o in tried:
        if o.status == "fail":
            examples.setdefault(o.cause, []).append(f"{o.name}: {o.detail}")
    checked = [o for o in tried if o.repeats_kept is not None]
    return {
        "tunes": len(outcomes),
        "skipped_unreadable": len(outcomes) - len(tried),
        "tried": len(tried),
        "passed": len(passed),
        "pass_rate": len(passed) / len(tried) if tried else 0.0,
        "repeats_kept_rate": _rate(checked, "repeats_kept"),
        "chord_symbols_kept_rate": _rate(checked, "chord_symbols_kept"),
        "failure_causes": dict(groups.most_common()),
        "failure_examples": {cause: found[:5] for cause, found in examples.items()},
    }


def _rate(outcomes: list[Outcome], attribute: str) -> float:
    return sum(getattr(o, attribute) for o in outcomes) / len(outcomes) if outcomes else 0.0


def run(config: BenchConfig) -> dict:
    reader_name, read = choose_reader(config.reader)
    tunes = pick_tunes(corpus_tunes(), config.limit, config.seed)
    started = time.perf_counter()
    outcomes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns freely about the corpus' quirks
        for tune in tqdm(tunes, desc="round trip", unit="tune"):
            outcomes.append(round_trip(tune, read))
    summary = summarize(outcomes)
    summary.update(
        reader=reader_name,
        config=dataclasses.asdict(config),
        seconds=round(time.perf_counter() - started, 1),
        outcomes=[dataclasses.asdict(o) for o in outcomes],
    )
    if config.songs:
        paths = songs_with_lyrics()
        chosen = sorted(random.Random(config.seed).sample(paths, min(config.songs, len(paths))))
        song_outcomes = []
        with_lyrics = reader_name != "music21.converter.parse"  # music21 drops w: lines
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path in tqdm(chosen, desc="songs with lyrics", unit="song"):
                song_outcomes.append(song_round_trip(path, read, lyrics=with_lyrics))
        summary["songs"] = summarize(song_outcomes)
        summary["songs"]["lyrics_compared"] = with_lyrics
        summary["songs"]["outcomes"] = [dataclasses.asdict(o) for o in song_outcomes]
    return summary


def report(summary: dict, show: int) -> str:
    lines = [f"reader: {summary['reader']}", "ABC tunes of the corpus:"]
    lines += _report_block(summary, show)
    lines.append(f"seconds: {summary['seconds']}")
    if "songs" in summary:
        compared = "notes and lyrics" if summary["songs"]["lyrics_compared"] else "notes only"
        lines.append(f"MusicXML songs with lyrics ({compared} compared):")
        lines += _report_block(summary["songs"], show)
    return "\n".join(lines)


def _report_block(summary: dict, show: int) -> list[str]:
    lines = [
        f"  read: {summary['tunes']} ({summary['skipped_unreadable']} unreadable originals "
        "skipped)",
        f"  pass: {summary['passed']}/{summary['tried']} = {100 * summary['pass_rate']:.2f}%",
        f"  repeats and endings kept: {100 * summary['repeats_kept_rate']:.2f}%",
        f"  chord symbols kept: {100 * summary['chord_symbols_kept_rate']:.2f}%",
    ]
    if summary["failure_causes"]:
        lines.append("  failures by cause (first differing bar):")
    for cause, count in list(summary["failure_causes"].items())[:show]:
        lines.append(f"  {count:5d}  {cause}")
        for example in summary["failure_examples"][cause][:2]:
            lines.append(f"         e.g. {example[:160]}")
    return lines


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for item in dataclasses.fields(BenchConfig):
        kind = int if item.type in ("int", int) else str
        parser.add_argument(
            f"--{item.name}", type=kind, default=item.default, help=item.metadata["help"]
        )
    return BenchConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    summary = run(config)
    print(report(summary, config.show))
    if config.out:
        Path(config.out).write_text(json.dumps(summary, indent=1, default=str) + "\n")
        print(f"results: {os.path.abspath(config.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
