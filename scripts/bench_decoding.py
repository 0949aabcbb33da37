"""What constrained decoding costs and what it gives, on the real SmolLM2 base.

    .venv/bin/python scripts/bench_decoding.py [--runs 3] [--bars 16] [--quantize none,int8-dynamic]
                                               [--corpus 40] [--quick] [--out FILE.json]

Measures, for each quantization of the base (float32, int8 dynamic):

* tokens/s of the raw model (no grammar) through the composer's own KV-cache loop and through
  ``model.generate()`` (same greedy prompt and token count): is the own loop as fast?
* tokens/s with the grammar, the constraint's cost per token (microseconds, automaton and
  sampler) against the model's forward pass per token (milliseconds), how often the top-k held
  no viable token, and the median seconds to compose a ``--bars`` tune (AABB, 4/4), with the
  validity of each tune and its share of distinct bars;
* as a yardstick, the share of distinct bars in real tunes from music21's corpus, and how many
  of their bars, written by the project's ABC writer, the body grammar accepts.

Prints a Markdown table and writes the numbers as JSON (``--out``). Timings depend on what else
the machine is doing: the load average is recorded with them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from agent.compose import ComposeConfig, compose_tune, decode_body, distinct_bar_share  # noqa: E402
from agent.decoding import Boundary, BodySpec, FormPlan, RepetitionRules, start_state  # noqa: E402
from agent.model import ModelConfig, load_model  # noqa: E402
from agent.prompts import abc_header, chat_prompt_ids, compose_messages  # noqa: E402

REQUEST = "a lively reel in D major"
HEADER = abc_header(title="Morning Reel", meter="4/4", tempo="1/4=120", key="D", style="reel")


def raw_loop_speed(loaded, tokens: int, rounds: int = 3) -> dict:
    """Greedy, no grammar: the composer's own loop and generate(), the same token count,
    taken in turns ``rounds`` times (medians), so a change in the machine's load hits both."""
    import torch

    prompt = chat_prompt_ids(loaded.tokenizer, compose_messages(REQUEST), prefill=HEADER)
    config = ComposeConfig(temperature=0.0, repetition_penalty=1.0, constrained=False)
    own, hf, forward, sampler = [], [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        decoded = decode_body(loaded, prompt, None, config, None, budget=tokens)
        count = decoded.stats.tokens
        own.append(count / (time.perf_counter() - started))
        forward.append(1e3 * decoded.stats.forward_seconds / count)
        sampler.append(1e6 * decoded.stats.constraint_seconds / count)
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            started = time.perf_counter()
            out = loaded.model.generate(ids, max_new_tokens=count, min_new_tokens=count,
                                        do_sample=False, pad_token_id=loaded.tokenizer.eos_token_id)
            hf.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - started))
    median = statistics.median
    return {"tokens": count, "own_loop_tok_s": median(own), "generate_tok_s": median(hf),
            "forward_ms_per_token": median(forward), "sampler_us_per_token": median(sampler)}


def constrained_runs(loaded, runs: int, bars: int) -> dict:
    """Compose ``runs`` tunes with the grammar (seeds 0..runs-1) and time them."""
    rows = []
    for seed in tqdm(range(runs), desc="compose", leave=False):
        plan = FormPlan.dance(bars // 2)
        result = compose_tune(loaded, REQUEST, HEADER, plan, ComposeConfig(seed=seed))
        stats = result.stats
        rows.append({
            "seed": seed, "valid": result.valid, "attempts": result.attempts, "bars": result.bars,
            "seconds": result.seconds, "tokens": result.tokens,
            "tok_s": result.tokens_per_second,
            "forward_ms_per_token": 1e3 * stats.forward_seconds / max(stats.tokens, 1),
            "constraint_us_per_token": 1e6 * stats.constraint_seconds / max(stats.tokens, 1),
            "checked_per_token": stats.checked / max(stats.tokens, 1),
            "widened_share": stats.widened / max(stats.tokens, 1),
            "relaxed": stats.relaxed,
            "distinct_bar_share": distinct_bar_share(result.abc) if result.bars else 0.0,
            "abc": result.abc,
        })
    summary = {key: statistics.median(r[key] for r in rows)
               for key in ("seconds", "tok_s", "forward_ms_per_token", "constraint_us_per_token",
                           "checked_per_token", "widened_share", "distinct_bar_share")}
    summary["valid"] = sum(r["valid"] for r in rows)
    summary["runs"] = len(rows)
    return {"summary": summary, "runs": rows}


def corpus_yardstick(count: int, seed: int = 0) -> dict:
    """Distinct-bar share of real corpus tunes, and the grammar's coverage of their bars as the
    project's writer spells them (repetition and note-level rules off: those are for sampling)."""
    from music21 import converter, corpus

    from agent.abc_text import parse_tune, split_bars, tokenize_body
    from agent.abc_writer import write_abc

    paths = sorted(str(p) for p in corpus.getPaths(fileExtensions=["abc"]))
    rng = random.Random(seed)
    shares, accepted, total, tunes = [], 0, 0, 0
    for path in tqdm(rng.sample(paths, min(len(paths), count)), desc="corpus", leave=False):
        try:
            score = converter.parse(path, format="abc", forceSource=True)
            if hasattr(score, "scores"):  # a tunebook: take its first tune
                score = score.scores[0]
            abc = write_abc(score)
            tune = parse_tune(abc)
            bars = split_bars(tokenize_body(tune.body, tune), tune)
        except Exception:  # noqa: BLE001 - a yardstick skips what the reader or writer refuses
            continue
        if len(bars) < 4:
            continue
        tunes += 1
        shares.append(distinct_bar_share(abc))
        unit, depth = tune.unit_length, 0
        for bar in bars:
            total += 1
            text = bar.text_in(tune.body)
            slurs_in = depth  # slurs may run over bar lines
            depth += len(re.findall(r"\((?!\d)", text)) - text.count(")")
            ticks = bar.duration / unit * 2
            if ticks.denominator != 1 or ticks <= 0:
                continue
            spec = BodySpec(bar_ticks=int(ticks), subdivision=2, unit_length=unit,
                            boundaries=(Boundary(("",)), Boundary(("",))), span_end=True,
                            repetition=RepetitionRules(0, 0, 0, 0), slurs_in=slurs_in,
                            slurs_out=depth)
            state = start_state(spec).feed(text)
            accepted += state is not None and state.is_complete
    return {"tunes": tunes,
            "distinct_bar_share_median": statistics.median(shares) if shares else None,
            "bars": total, "bars_in_grammar": accepted,
            "grammar_coverage": accepted / total if total else None}


def automaton_speed(samples: int = 20000) -> float:
    """Microseconds per candidate token check, on typical tokens from a mid-bar state."""
    spec = BodySpec(bar_ticks=16, subdivision=2, unit_length=Fraction(1, 8),
                    boundaries=(Boundary(("",)),) + (Boundary(("|", "| "), plain=True),) * 15
                    + (Boundary(("|]",), final=True),))
    state = start_state(spec).feed("A2B c2d ef | e>fg a2 ")
    tokens = [" A", "B", "c2", " |", "d", "e3", "/", ">", " [CE", "G]", "(3", "abc", "z", "'", "2"]
    started = time.perf_counter()
    for i in range(samples):
        state.feed(tokens[i % len(tokens)])
    return 1e6 * (time.perf_counter() - started) / samples


def table(results: dict) -> str:
    lines = ["| model | raw tok/s (own loop) | raw tok/s (generate) | constrained tok/s | "
             "forward ms/token | constraint µs/token | widened | 16-bar tune s (median) | "
             "valid | distinct bars |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["models"].items():
        raw, con = row["raw"], row["constrained"]["summary"]
        lines.append(
            f"| {name} | {raw['own_loop_tok_s']:.1f} | {raw['generate_tok_s']:.1f} | "
            f"{con['tok_s']:.1f} | {con['forward_ms_per_token']:.1f} | "
            f"{con['constraint_us_per_token']:.0f} | {100 * con['widened_share']:.0f}% | "
            f"{con['seconds']:.1f} | {con['valid']}/{con['runs']} | "
            f"{con['distinct_bar_share']:.2f} |")
    corpus = results.get("corpus")
    if corpus:
        lines.append("")
        lines.append(f"Corpus yardstick: {corpus['tunes']} tunes, median distinct-bar share "
                     f"{corpus['distinct_bar_share_median']:.2f}; the grammar accepts "
                     f"{corpus['bars_in_grammar']}/{corpus['bars']} of their bars "
                     f"({100 * corpus['grammar_coverage']:.1f}%) as the ABC writer spells them.")
    lines.append(f"Automaton: {results['automaton_us_per_check']:.1f} µs per candidate check. "
                 f"Torch threads: {results['threads']}. Load average at start: "
                 f"{tuple(round(x, 1) for x in results['load_average'])}, at the end: "
                 f"{tuple(round(x, 1) for x in results['load_average_end'])}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="tunes composed per model")
    parser.add_argument("--bars", type=int, default=16, help="bars per tune (AABB)")
    parser.add_argument("--raw-tokens", type=int, default=128, help="tokens for the raw-speed runs")
    parser.add_argument("--quantize", default="none,int8-dynamic", help="comma-separated variants")
    parser.add_argument("--corpus", type=int, default=40,
                        help="corpus tunes for the yardstick (0: skip)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: one per core; 1 is faster on a busy machine)")
    parser.add_argument("--quick", action="store_true",
                        help="1 run, 8 bars, 32 raw tokens, 10 corpus tunes")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.bars, args.raw_tokens, args.corpus = 1, 8, 32, 10
    results: dict = {"load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
                     "threads": args.threads or os.cpu_count(), "command": " ".join(sys.argv),
                     "automaton_us_per_check": automaton_speed(), "models": {}}
    for quantize in args.quantize.split(","):
        loaded = load_model(ModelConfig(quantize=quantize, threads=args.threads))
        results["models"][quantize] = {
            "raw": raw_loop_speed(loaded, args.raw_tokens),
            "constrained": constrained_runs(loaded, args.runs, args.bars),
        }
        del loaded
    if args.corpus:
        results["corpus"] = corpus_yardstick(args.corpus)
    results["load_average_end"] = os.getloadavg()
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
