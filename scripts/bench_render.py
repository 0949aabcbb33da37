"""Time agent.render on a 32-bar song with lyrics: all six files, per format, as a Markdown row.

    .venv/bin/python scripts/bench_render.py [--runs 7] [--abc tests/data/render/autumn_lantern.abc]

The first render in a fresh process also pays for importing verovio, cairosvg and tinysoundfont
and for loading fonts; it is reported apart ("cold"). The other runs give the median wall time,
the median CPU time of this process (steadier than wall time on a busy machine; "load" is the
1-minute load average when the runs end) and the median of each format. Pass ``--header`` to
print the table header too; ``--parallel`` draws the PDF in a second thread
(:attr:`agent.render.RenderConfig.parallel`); ``--warm-up --wait 4`` starts the renderers'
warm-up thread and waits 4 s (a model writing a tune) before the cold render, as a compose does.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataclasses import replace  # noqa: E402

from agent.render import FORMATS, RenderConfig, render_all, warm_up_in_background  # noqa: E402

DEFAULT_ABC = ROOT / "tests" / "data" / "render" / "autumn_lantern.abc"


def read_score(abc_text: str):
    """The score with its lyrics, as the app reads it."""
    from agent.abc_reader import read_tune

    return read_tune(abc_text).score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--abc", type=Path, default=DEFAULT_ABC, help="the tune to render")
    parser.add_argument("--runs", type=int, default=7, help="timed runs after the cold one")
    parser.add_argument("--header", action="store_true", help="print the Markdown table header first")
    parser.add_argument("--parallel", action="store_true", help="draw the PDF in a second thread")
    parser.add_argument("--warm-up", action="store_true", help="start agent.render's warm-up "
                        "thread first (what a compose does while the model writes)")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait before the first "
                        "render, as the model's writing would (the cold render then shows what "
                        "the warm-up saved)")
    args = parser.parse_args()

    if args.warm_up:
        warm_up_in_background()
    time.sleep(args.wait)
    abc_text = args.abc.read_text(encoding="utf-8")
    started = time.perf_counter()
    score = read_score(abc_text)
    read_seconds = time.perf_counter() - started
    bars = len(score.parts[0].getElementsByClass("Measure"))
    lyrics = sum(1 for n in score.recurse().notes if n.lyrics)

    config = replace(RenderConfig(), parallel=args.parallel)
    totals, cpu, per_format = [], [], {name: [] for name in FORMATS}
    with tempfile.TemporaryDirectory() as folder:
        for run in range(args.runs + 1):
            started, started_cpu = time.perf_counter(), time.process_time()
            files = render_all(abc_text, score, Path(folder), config)
            total = time.perf_counter() - started
            if run == 0:
                cold = total
                continue
            totals.append(total)
            cpu.append(time.process_time() - started_cpu)
            for name in FORMATS:
                per_format[name].append(files.seconds[name])

    if args.header:
        columns = ["tune", "bars", "syllables", "threads", "cores", "load", "cold s", "median s",
                   "CPU s"]
        columns += [f"{n} s" for n in FORMATS]
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
    cells = [
        args.abc.name,
        str(bars),
        str(lyrics),
        "2" if args.parallel else "1",
        str(len(os.sched_getaffinity(0))),
        f"{os.getloadavg()[0]:.1f}",
        f"{cold:.2f}",
        f"{statistics.median(totals):.2f}",
        f"{statistics.median(cpu):.2f}",
    ] + [f"{statistics.median(per_format[name]):.3f}" for name in FORMATS]
    print("| " + " | ".join(cells) + " |")
    print(f"(read {read_seconds:.2f} s; {args.runs} timed runs after one cold run)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
