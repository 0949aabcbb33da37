"""How many of a tune's notes are written shorter than the unit length, by style and by meter.

    .venv/bin/python scripts/measure_short_notes.py [--data data/build] [--tunes 8000]

Reads the compose examples of ``DATA/train.jsonl`` (every tune there is written with L:1/8, so a
note shorter than L: is a sixteenth or shorter), and prints, per ``R:`` style and per meter, the
median, 75th and 90th percentile over tunes of the share of notes, rests and chords written with
a length below L: (a ``/`` in the length). The 90th percentiles are the ``short_notes`` of
``agent.styles.STYLES`` and ``SHORT_NOTES_BY_METER``, which the composer's rhythm prior reads.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.abc_text import Kind, parse_tune, tokenize_body  # noqa: E402
from agent.errors import AbcError  # noqa: E402

TIMED = (Kind.NOTE, Kind.REST, Kind.CHORD)


def short_share(abc: str) -> tuple[str, str, float] | None:
    """(style, meter, share of notes written shorter than L:) of one tune, or None."""
    try:
        tune = parse_tune(abc)
        timed = [t for t in tokenize_body(tune.body, tune) if t.kind in TIMED]
    except AbcError:
        return None
    if len(timed) < 16:
        return None
    short = sum("/" in re.sub(r'"[^"]*"', "", t.text) for t in timed)
    style = (tune.get("R") or "-").strip().lower()
    return style, f"{tune.meter.numerator}/{tune.meter.denominator}", short / len(timed)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/build")
    parser.add_argument("--tunes", type=int, default=8000)
    args = parser.parse_args(argv)
    path = Path(args.data) / "train.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    tunes = [r["messages"][-1]["content"] for r in rows if r["task"] == "compose"]
    random.Random(0).shuffle(tunes)
    by_style, by_meter = defaultdict(list), defaultdict(list)
    for abc in tunes[:args.tunes]:
        found = short_share(abc)
        if found:
            by_style[found[0]].append(found[2])
            by_meter[found[1]].append(found[2])
    for label, groups in (("style", by_style), ("meter", by_meter)):
        print(f"\n| {label} | tunes | median | p75 | p90 |\n|---|---|---|---|---|")
        for name, values in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            if len(values) >= 20:
                print(f"| {name} | {len(values)} | {percentile(values, .5)} | "
                      f"{percentile(values, .75)} | {percentile(values, .9)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
