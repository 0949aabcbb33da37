"""Model steps per tune: the composer's loop with and without its savers, in one run.

    .venv/bin/python scripts/bench_compose_steps.py [--seeds 3] [--rounds 2] [--cpu-path ort]
        [--variants '{"plain": {"guess_ahead": false, "stop_refused_tries": false}, "default": {}}']

Four 16-bar dance tunes (a waltz in D minor, a jig, a reel, a hornpipe: two 8-bar parts with
repeats) are composed with seeds 0.. under every variant (a set of
:class:`agent.compose.ComposeConfig` overrides), on one loaded model, the variants taking turns
round by round (the order reversed every other round) so a busy machine slows each alike. Printed
per variant: the median and total seconds of ``compose_tune``, tokens decoded (taken-back tries
included), bars taken back, guesses run and taken, and the model's milliseconds per token.
The savers (``stop_refused_tries``, ``guess_ahead``, ``lazy_checks``; ``body_vocabulary`` within
0.03% a step) keep the tunes' distribution (``agent.compose.decode_body``), so the same seed
gives another tune under each variant: compare totals over many tunes, not tune by tune.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.compose import ComposeConfig, compose_tune  # noqa: E402
from agent.conversation import resolve_adapter  # noqa: E402
from agent.decoding import FormPlan  # noqa: E402
from agent.model import ModelConfig, load_model  # noqa: E402

REQUESTS = (
    ("a sad waltz in D minor", "X:1\nT:Waltz\nR:waltz\nM:3/4\nL:1/8\nQ:1/4=96\nK:Dm\n"),
    ("a jig in G", "X:1\nT:Jig\nR:jig\nM:6/8\nL:1/8\nQ:3/8=116\nK:G\n"),
    ("a reel in D", "X:1\nT:Reel\nR:reel\nM:4/4\nL:1/8\nQ:1/2=100\nK:D\n"),
    ("a hornpipe in A", "X:1\nT:Hornpipe\nR:hornpipe\nM:4/4\nL:1/8\nQ:1/2=84\nK:A\n"),
)
DEFAULT_VARIANTS = ('{"plain": {"guess_ahead": false, "stop_refused_tries": false, '
                    '"lazy_checks": false, "body_vocabulary": false}, '
                    '"stop": {"guess_ahead": false, "lazy_checks": false, "body_vocabulary": false}, '
                    '"default": {}}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help="JSON: {name: {ComposeConfig field: value}}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu-path", default="auto", help="the model's CPU path (agent.model)")
    args = parser.parse_args(argv)

    variants = json.loads(args.variants)
    loaded = load_model(ModelConfig(adapter=resolve_adapter(None), cpu_path=args.cpu_path))
    rows: dict[str, list] = {name: [] for name in variants}
    for round_number in range(args.rounds):
        order = list(variants) if round_number % 2 == 0 else list(variants)[::-1]
        for name in order:
            for seed in range(args.seeds):
                for request, header in REQUESTS:
                    started = time.perf_counter()
                    result = compose_tune(loaded, request, header, FormPlan.dance(8, 2),
                                          ComposeConfig(seed=seed, **variants[name]))
                    rows[name].append((time.perf_counter() - started, result))
            print(f"round {round_number + 1}: {name} done", file=sys.stderr, flush=True)
    print("| variant | tunes (valid) | median s | total s | tokens | bars taken back | guesses (taken) "
          "| model ms per token |")
    print("|---|---|---|---|---|---|---|---|")
    for name, done in rows.items():
        stats = [result.stats for _, result in done]
        tokens = sum(s.tokens for s in stats)
        model = sum(s.forward_seconds for s in stats)
        print(f"| {name} | {len(done)} ({sum(r.valid for _, r in done)}) "
              f"| {statistics.median(s for s, _ in done):.2f} | {sum(s for s, _ in done):.1f} | {tokens} "
              f"| {sum(s.resampled_bars for s in stats)} | {sum(s.guesses for s in stats)} "
              f"({sum(s.guesses_taken for s in stats)}) | {1000 * model / tokens:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
