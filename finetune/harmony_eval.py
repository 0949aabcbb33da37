"""How well the harmoniser chooses chords, measured on tunes that carry a musician's chords.

Each tune's chords are stripped, the melody is harmonised by :func:`agent.harmony.harmonise`,
and the chords chosen are compared bar by bar with the musician's: does the root of the chord
sounding at the start of each bar agree? Two baselines run on the same tunes: the tonic chord
on every bar, and the best-fitting I, IV or V triad per bar (no look at neighbours). Also
reported: tunes with a chord at least every two bars, tunes ending on the tonic (or the mode's
final), tunes whose melody came back byte for byte, tunes with one chord throughout, and the
share of melody notes on beats that are tones of the chord in force (ours beside the
musicians').

The tunes: the held-out split (``finetune/splits/test.jsonl``) stores melodies without chords
(the training data builder drops them), and none of the corpus tunes behind it carries chord
symbols, so the held-out set here is every tune of music21's bundled corpus that carries chord
symbols: its ABC tunebooks (tunes with at least ``min_chords`` chord names) and its two
lead sheets in MusicXML (``leadSheet/``): 4 tunes, about 100 bars. Nothing in the harmoniser
is fit to them. A larger chord-labelled collection can be given with ``--abc`` (for example
the Nottingham Music Database, about 1,000 folk tunes with chords, GPL-3, so kept outside the
repository); the harmoniser's hand-set costs were checked on the tunes at even positions of
its files, so measure on the others with ``--abc-half odd``.

Run: ``python -m finetune.harmony_eval`` (prints a Markdown table; ``--json PATH`` also
writes the numbers), or ``python -m finetune.harmony_eval --no-corpus --abc-half odd --abc
FILE.abc ...`` for an outside collection.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from agent.abc_text import Kind, parse_tune, tokenize_body
from agent.harmony import (
    BarChords, HarmonyConfig, MelodyEvent, chord_in_force, chord_vocabulary, chords_in,
    harmonise, harmonise_events, is_chord_name, parse_chord, slots_per_bar, strip_chords,
    _read, _strength, _slot_fit, MODE_STEPS, best_simple_triads,
)

LEAD_SHEETS = ("leadSheet/fosterBrownHair.mxl", "leadSheet/berlinAlexandersRagtime.mxl")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of the harmony benchmark."""

    min_chords: int = field(default=8, metadata={
        "help": "least chord symbols a corpus ABC tune needs to count as chord-bearing"})
    abc: tuple[str, ...] = field(default=(), metadata={
        "help": "extra ABC files whose tunes carry chords"})
    lead_sheets: bool = field(default=True, metadata={
        "help": "include music21's two MusicXML lead sheets"})
    abc_half: str = field(default="all", metadata={
        "help": "which tunes of the --abc files: 'odd' or 'even' positions in each file, or "
                "'all' (a collection used to set the costs by hand is split so: set on one "
                "half, measured on the other)"})
    corpus: bool = field(default=True, metadata={
        "help": "include music21's chord-bearing corpus tunes"})


@dataclass
class TuneScore:
    """One tune's numbers."""

    name: str
    bars: int = 0
    agree: int = 0
    agree_tonic: int = 0
    agree_triads: int = 0
    every_two_bars: bool = True
    ends_on_tonic: bool = False
    melody_unchanged: bool = True
    one_chord: bool = False
    strong_notes: int = 0
    strong_ours: int = 0
    strong_theirs: int = 0
    error: str = ""


# --------------------------------------------------------------------------------------------
# Tunes


def chord_bearing_corpus_tunes(min_chords: int) -> list[tuple[str, str]]:
    """(id, ABC text) of each music21 corpus ABC tune with at least ``min_chords`` chord names."""
    from finetune.corpus import raw_tunes

    found = []
    for raw in raw_tunes():
        try:
            tune = parse_tune(raw.text)
        except Exception:  # a tune the reader refuses is not one to measure on
            continue
        tokens = tokenize_body(tune.body, tune)
        names = [t for t in tokens if t.kind is Kind.CHORD_SYMBOL and is_chord_name(t.text[1:-1])]
        if len(names) >= min_chords:
            found.append((raw.tune_id, raw.text))
    return found


def held_out_with_chords() -> int:
    """How many tunes of the held-out split carry chord symbols (in its stored text)."""
    path = Path(__file__).parent / "splits" / "test.jsonl"
    count = 0
    for line in path.read_text().splitlines():
        abc = json.loads(line)["abc"]
        tune = parse_tune(abc)
        if any(t.kind is Kind.CHORD_SYMBOL for t in tokenize_body(tune.body, tune)):
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Scoring one ABC tune


def _root(name: str | None) -> int | None:
    return None if name is None else parse_chord(name).root


def score_abc(name: str, abc: str) -> TuneScore:
    """Strip the tune's chords, harmonise it, and compare with the musician's chords.

    >>> s = score_abc("t", 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A"cea|"D"d3|]\\n')
    >>> s.bars, s.agree, s.agree_tonic, s.agree_triads, s.melody_unchanged
    (4, 4, 2, 4, True)
    >>> score_abc("free", 'X:1\\nM:none\\nL:1/4\\nK:D\\n"D"DFA GBd|]\\n')
    Traceback (most recent call last):
    ...
    agent.harmony.HarmonyError: the tune is in free meter (no bars of equal length), so there is no harmonic rhythm to follow
    """
    score = TuneScore(name)
    theirs = chord_in_force(chords_in(abc))
    plain = strip_chords(abc)
    result = harmonise(plain, HarmonyConfig())
    ours_bars = chords_in(result.abc)
    ours = chord_in_force(ours_bars)
    score.melody_unchanged = strip_chords(result.abc) == plain
    melody = _read(plain)
    tonics = [_root(tonic or melody.tune.key.tonic) for tonic, _ in melody.keys]
    triads = best_simple_triads(plain)
    for index, (mine, their) in enumerate(zip(ours, theirs)):
        if their is None or index in melody.pickups:
            continue
        score.bars += 1
        score.agree += _root(mine) == _root(their)
        score.agree_tonic += tonics[index] == _root(their)  # the key in force at the bar
        triad = triads[index] if triads[index] is not None else None
        score.agree_triads += _root(triad) == _root(their)
    _common_checks(score, ours_bars, tonics[-1], melody.pickups)
    _strong_beats(score, melody, ours_bars, chords_in(abc))
    return score


def _common_checks(score: TuneScore, bars: list[BarChords], tonic_pc: int,
                   pickups: frozenset[int]) -> None:
    gap = 0
    names = set()
    for index, bar in enumerate(bars):
        if index in pickups:
            continue
        gap = 0 if bar.chords else gap + 1
        if gap >= 2:
            score.every_two_bars = False
        names.update(n for _, n in bar.chords)
    last = [n for bar in bars for _, n in bar.chords]
    score.ends_on_tonic = bool(last) and parse_chord(last[-1]).root == tonic_pc
    score.one_chord = len(names) <= 1


def _chord_at(bars: list[BarChords], index: int, onset: Fraction, carried: str | None) -> str | None:
    current = carried
    for at, name in bars[index].chords:
        if at <= onset:
            current = name
    return current


def _strong_beats(score: TuneScore, melody, ours: list[BarChords], theirs: list[BarChords]) -> None:
    meter = melody.tune.meter
    carried_ours = carried_theirs = None
    for index, events in enumerate(melody.events):
        for event in events:
            if not event.pitches:
                continue
            if _strength(event.onset, meter.bar_length, meter.beat_length) >= 0.45:
                mine = _chord_at(ours, index, event.onset, carried_ours)
                their = _chord_at(theirs, index, event.onset, carried_theirs)
                if mine is None or their is None:
                    continue
                pc = event.pitches[0] % 12
                score.strong_notes += 1
                score.strong_ours += pc in parse_chord(mine).pitch_classes
                score.strong_theirs += pc in parse_chord(their).pitch_classes
        if ours[index].chords:
            carried_ours = ours[index].chords[-1][1]
        if theirs[index].chords:
            carried_theirs = theirs[index].chords[-1][1]


# --------------------------------------------------------------------------------------------
# Scoring one lead sheet (MusicXML)


def _lead_sheet_bars(path: str):
    """Melody events, the musician's chords and the key of a corpus lead sheet."""
    from music21 import corpus, harmony, note

    score = corpus.parse(path)
    part = score.parts[0]
    measures = list(part.getElementsByClass("Measure"))
    events, theirs = [], []
    for measure in measures:
        bar_events, bar_chords = [], []
        for element in measure.recurse().notesAndRests:
            onset = Fraction(element.getOffsetInHierarchy(measure)).limit_denominator(96) / 4
            if isinstance(element, harmony.ChordSymbol):
                if element.root() is not None:
                    name = element.root().name.replace("-", "b")
                    bar_chords.append((onset, name + ("m" if element.quality == "minor" else "")))
                continue
            if element.duration.isGrace:
                continue
            length = Fraction(element.quarterLength).limit_denominator(96) / 4
            pitches = () if isinstance(element, note.Rest) else tuple(
                p.midi for p in element.pitches)[-1:]
            bar_events.append(MelodyEvent(onset, length, pitches))
        events.append(sorted(bar_events, key=lambda e: e.onset))
        theirs.append(BarChords(len(theirs), tuple(sorted(bar_chords))))
    # both lead sheets are written without a key signature (every flat is an accidental), so
    # the key is music21's analysis of the melody; both come out in a major key
    found = part.analyze("key")
    tonic = found.tonic.name.replace("-", "b")
    meter = part.recurse().getElementsByClass("TimeSignature").first()
    bar_length = Fraction(meter.barDuration.quarterLength).limit_denominator(96) / 4
    beat = Fraction(meter.beatDuration.quarterLength).limit_denominator(96) / 4
    return events, theirs, tonic, bar_length, beat, meter.ratioString


def score_lead_sheet(path: str) -> TuneScore:
    """Harmonise a lead sheet's melody and compare with its printed chords."""
    events, theirs, tonic, bar_length, beat, meter_text = _lead_sheet_bars(path)
    score = TuneScore(path)
    pickups = frozenset({0}) if sum(e.duration for e in events[0]) < bar_length else frozenset()
    chosen = harmonise_events(events, tonic, "major", bar_length, beat,
                              slots_per_bar(None, meter_text), HarmonyConfig(), skip=pickups)
    ours_bars = [BarChords(i, tuple((o, c.name) for o, c in bar)) for i, bar in enumerate(chosen)]
    ours, their = chord_in_force(ours_bars), chord_in_force(theirs)
    tonic_pc = parse_chord(tonic).root
    vocabulary = chord_vocabulary(tonic, "major")
    triads = [vocabulary[i][0] for i in (0, 1, 2)]  # I, IV, V
    scale = frozenset((tonic_pc + s) % 12 for s in MODE_STEPS["major"])
    for index, (mine, musician) in enumerate(zip(ours, their)):
        if musician is None or index in pickups:
            continue
        score.bars += 1
        score.agree += _root(mine) == _root(musician)
        score.agree_tonic += tonic_pc == _root(musician)
        weighted = [(e, _strength(e.onset, bar_length, beat)) for e in events[index]]
        best = max(triads, key=lambda c: _slot_fit(weighted, c, scale, None))
        score.agree_triads += best.root == _root(musician)
    _common_checks(score, ours_bars, tonic_pc, pickups)

    class _M:  # the shape _strong_beats reads
        pass

    melody = _M()
    melody.events = events
    melody.tune = type("T", (), {"meter": type("Mt", (), {"bar_length": bar_length,
                                                          "beat_length": beat})()})()
    _strong_beats(score, melody, ours_bars, theirs)
    return score


# --------------------------------------------------------------------------------------------
# Report


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


def summarise(scores: list[TuneScore]) -> dict:
    """Totals over the tunes (bars pooled for the agreement shares)."""
    good = [s for s in scores if not s.error]
    bars = sum(s.bars for s in good)
    strong = sum(s.strong_notes for s in good)
    return {
        "tunes": len(good), "failed": len(scores) - len(good), "bars": bars,
        "root_agreement": sum(s.agree for s in good) / bars if bars else None,
        "root_agreement_tonic": sum(s.agree_tonic for s in good) / bars if bars else None,
        "root_agreement_triads": sum(s.agree_triads for s in good) / bars if bars else None,
        "chord_every_two_bars": sum(s.every_two_bars for s in good),
        "ends_on_tonic": sum(s.ends_on_tonic for s in good),
        "melody_unchanged": sum(s.melody_unchanged for s in good),
        "one_chord_throughout": sum(s.one_chord for s in good),
        "strong_beat_chord_tones_ours": sum(s.strong_ours for s in good) / strong if strong else None,
        "strong_beat_chord_tones_musicians": sum(s.strong_theirs for s in good) / strong if strong else None,
    }


def markdown(scores: list[TuneScore], totals: dict) -> str:
    """The per-tune table and the totals, as Markdown."""
    lines = ["| tune | bars | harmoniser | tonic every bar | best I/IV/V per bar | chord ≤2 bars "
             "| ends on tonic | melody unchanged |", "|---|---|---|---|---|---|---|---|"]
    for s in scores:
        if s.error:
            lines.append(f"| {s.name} | failed: {s.error} |||||||")
            continue
        lines.append(f"| {s.name} | {s.bars} | {_share(s.agree, s.bars)} | "
                     f"{_share(s.agree_tonic, s.bars)} | {_share(s.agree_triads, s.bars)} | "
                     f"{'yes' if s.every_two_bars else 'no'} | "
                     f"{'yes' if s.ends_on_tonic else 'no'} | "
                     f"{'yes' if s.melody_unchanged else 'n/a (MusicXML)' if s.name.endswith('.mxl') else 'no'} |")
    t = totals
    n = t["tunes"]

    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    lines += ["", "| measure (all tunes, bars pooled) | value |", "|---|---|",
              f"| tunes (failed) | {n} ({t['failed']}) |",
              f"| bars compared | {t['bars']} |",
              f"| root agreement, harmoniser | {pct(t['root_agreement'])} |",
              f"| root agreement, tonic every bar | {pct(t['root_agreement_tonic'])} |",
              f"| root agreement, best I/IV/V per bar | {pct(t['root_agreement_triads'])} |",
              f"| a chord at least every 2 bars | {t['chord_every_two_bars']}/{n} |",
              f"| final chord the tonic | {t['ends_on_tonic']}/{n} |",
              f"| one chord throughout | {t['one_chord_throughout']}/{n} |",
              f"| strong-beat melody notes that are chord tones, harmoniser | "
              f"{pct(t['strong_beat_chord_tones_ours'])} |",
              f"| the same, musicians' chords | {pct(t['strong_beat_chord_tones_musicians'])} |"]
    return "\n".join(lines)


def per_file(scores: list[TuneScore]) -> str:
    """Root agreement per source file (a tunebook of one style: jigs, reels, waltzes...),
    as Markdown; the three files of reels (or any files named alike) pooled.

    >>> print(per_file([TuneScore("a/jigs.abc#1", bars=10, agree=8, agree_tonic=5),
    ...                 TuneScore("a/reelsa-c.abc#2", bars=4, agree=1)]))
    | file | tunes | bars | harmoniser | tonic every bar | best I/IV/V per bar |
    |---|---|---|---|---|---|
    | jigs | 1 | 10 | 80.0% | 50.0% | 0.0% |
    | reels | 1 | 4 | 25.0% | 0.0% | 0.0% |
    """
    groups: dict[str, list[TuneScore]] = {}
    for score in scores:
        if score.error or "#" not in score.name:
            continue
        stem = Path(score.name.split("#")[0]).stem
        stem = stem[:5] if stem.startswith("reels") else stem
        groups.setdefault(stem, []).append(score)
    lines = ["| file | tunes | bars | harmoniser | tonic every bar | best I/IV/V per bar |",
             "|---|---|---|---|---|---|"]
    for stem, group in sorted(groups.items()):
        bars = sum(s.bars for s in group)
        lines.append(f"| {stem} | {len(group)} | {bars} | "
                     f"{_share(sum(s.agree for s in group), bars)} | "
                     f"{_share(sum(s.agree_tonic for s in group), bars)} | "
                     f"{_share(sum(s.agree_triads for s in group), bars)} |")
    return "\n".join(lines)


def run(config: EvalConfig, progress: bool = True) -> tuple[list[TuneScore], dict]:
    """Score every chord-bearing tune; returns the per-tune scores and the totals."""
    from tqdm import tqdm

    from agent.abc_text import split_tunebook

    tunes = chord_bearing_corpus_tunes(config.min_chords) if config.corpus else []
    for path in config.abc:
        text = Path(path).read_text(encoding="latin-1")
        for position, tune in enumerate(split_tunebook(text)):
            if config.abc_half == "all" or (position % 2 == 1) == (config.abc_half == "odd"):
                tunes.append((f"{path}#{position + 1}", tune))
    jobs = [("abc", name, text) for name, text in tunes]
    if config.lead_sheets:
        jobs += [("mxl", path, None) for path in LEAD_SHEETS]
    scores = []
    for kind, name, text in tqdm(jobs, disable=not progress, desc="harmonising", file=sys.stderr):
        try:
            scores.append(score_abc(name, text) if kind == "abc" else score_lead_sheet(name))
        except Exception as error:  # one failed tune is reported, not fatal to the run
            scores.append(TuneScore(name, error=f"{type(error).__name__}: {error}"))
    return scores, summarise(scores)


def composed_tune_checks(abc: str) -> dict:
    """The chord checks on one composed tune: its own chords when the turn gave it some, else
    the harmoniser's on the spot. ``melody_unchanged``: harmonising the bare melody again gives
    it back byte for byte once the chords are taken off.

    >>> composed_tune_checks("X:1\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\n")
    {'chords_from_turn': False, 'chord_every_two_bars': True, 'ends_on_tonic': True, 'melody_unchanged': True, 'one_chord_throughout': False}
    """
    plain = strip_chords(abc)
    own = any(bar.chords for bar in chords_in(abc))
    chorded = abc if own else harmonise(plain, HarmonyConfig()).abc
    melody = _read(plain)
    score = TuneScore("composed")
    tonic = melody.keys[-1][0] or melody.tune.key.tonic
    _common_checks(score, chords_in(chorded), _root(tonic), melody.pickups)
    again = harmonise(plain, HarmonyConfig()).abc
    return {"chords_from_turn": own, "chord_every_two_bars": score.every_two_bars,
            "ends_on_tonic": score.ends_on_tonic, "melody_unchanged": strip_chords(again) == plain,
            "one_chord_throughout": score.one_chord}


def benchmark_section(composed: dict[str, list[str]], config: EvalConfig = EvalConfig()) -> str:
    """The "Harmony and accompaniment" section of ``tunesmith eval``: the harmoniser on music21's
    chord-bearing tunes (against the two baselines), then the checks on each configuration's
    composed tunes (``composed``: configuration name -> the ABC of its valid tunes)."""
    scores, totals = run(config, progress=False)
    lines = ["## Harmony and accompaniment", "",
             "The harmoniser on music21's chord-bearing tunes, the musicians' chords taken off "
             "(finetune/harmony_eval.py; an outside collection: `python -m finetune.harmony_eval "
             "--no-corpus --abc-half odd --abc FILE.abc`):", "", markdown(scores, totals), "",
             "Composed tunes (the suite's prompts): chords from the turn, or harmonised here "
             "when the configuration composes without them.", "",
             "| configuration | tunes | chords from the turn | chord ≤2 bars | ends on the "
             "tonic/final | melody unchanged | one chord throughout |", "|---|---|---|---|---|---|---|"]
    for name, tunes in composed.items():
        checks = []
        for abc in tunes:
            try:
                checks.append(composed_tune_checks(abc))
            except Exception as error:  # counted as failing every check
                checks.append({"error": f"{type(error).__name__}: {error}"})
        ok = [c for c in checks if "error" not in c]
        n = len(checks)

        def count(key: str) -> str:
            return f"{sum(bool(c.get(key)) for c in ok)}/{n}"

        lines.append(f"| {name} | {n} | {count('chords_from_turn')} | {count('chord_every_two_bars')}"
                     f" | {count('ends_on_tonic')} | {count('melody_unchanged')} | "
                     f"{count('one_chord_throughout')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-chords", type=int, default=EvalConfig.min_chords,
                        help=EvalConfig.__dataclass_fields__["min_chords"].metadata["help"])
    parser.add_argument("--abc", action="append", default=[],
                        help=EvalConfig.__dataclass_fields__["abc"].metadata["help"])
    parser.add_argument("--abc-half", choices=("all", "odd", "even"), default="all",
                        help=EvalConfig.__dataclass_fields__["abc_half"].metadata["help"])
    parser.add_argument("--no-lead-sheets", action="store_true",
                        help="leave out music21's two MusicXML lead sheets")
    parser.add_argument("--no-corpus", action="store_true",
                        help="leave out music21's chord-bearing corpus tunes and lead sheets")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config = EvalConfig(args.min_chords, tuple(args.abc),
                        not (args.no_lead_sheets or args.no_corpus), args.abc_half,
                        not args.no_corpus)
    started = time.perf_counter()
    scores, totals = run(config, progress=not args.quiet)
    print(f"Held-out split tunes carrying chord symbols: {held_out_with_chords()} of "
          f"{sum(1 for _ in (Path(__file__).parent / 'splits' / 'test.jsonl').open())}; "
          "measured on other chord-bearing tunes instead.\n")
    print(markdown(scores, totals))
    if config.abc:
        print("\n" + per_file(scores))
    print(f"\n{time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"config": asdict(config), "totals": totals,
                                         "tunes": [asdict(s) for s in scores]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
