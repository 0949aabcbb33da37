"""Composer settings side by side: the music of suite prompts composed under each, in one run.

    .venv/bin/python scripts/bench_compose_variants.py \\
        --variants '{"no retries": {"bar_retries": 0}, "default": {}}' \\
        [--prompts p05,p07,p12,p32,p41,p52,p02,p01,p39,p65] [--seeds 2]

Each variant is a set of :class:`agent.compose.ComposeConfig` overrides. Every prompt of the
benchmark suite (``finetune/suite/prompts.jsonl``) is understood as the agent understands it and
composed with seeds 0.. under every variant, on one loaded model (the shipped adapter unless
``--adapter``). Printed per variant: valid tunes, seconds, the Jensen-Shannon divergences of the
pooled pitch-class, interval and note-length histograms from the held-out test tunes (pooled, each
tune against its own meter's, and pitch classes against its own mode class's), the share of
distinct bars, the commonest note lengths, the bars sampled again, and each tune's own length
divergence. A quicker, narrower look than
``tunesmith eval``, for choosing a setting; the suite's numbers come from ``tunesmith eval``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.compose import ComposeConfig, compose_tune  # noqa: E402
from agent.conversation import form_plan, header_for, resolve_adapter  # noqa: E402
from agent.model import ModelConfig, load_model  # noqa: E402
from agent.understand import UnderstandConfig, resolve, understand  # noqa: E402
from finetune import metrics  # noqa: E402
from finetune.data import load_test_split  # noqa: E402
from finetune.evaluate import SUITE_DIR, EvalConfig  # noqa: E402

DEFAULT_PROMPTS = "p05,p07,p12,p32,p41,p52,p02,p01,p39,p65"


def shares(counts) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 2) for k, v in counts.most_common(4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", required=True, help="JSON: {name: {ComposeConfig field: value}}")
    parser.add_argument("--prompts", default=DEFAULT_PROMPTS, help="suite prompt ids")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--adapter", default=None, help="adapter folder, or none (default: shipped)")
    args = parser.parse_args(argv)

    variants = json.loads(args.variants)
    suite = {item["id"]: item["prompt"] for item in map(json.loads, (SUITE_DIR / "prompts.jsonl").open())}
    tests = [item["abc"] for item in load_test_split(EvalConfig().test_split)]
    held_out, by_meter = metrics.music_profile(tests), metrics.profiles_by_meter(tests)
    by_mode = metrics.profiles_by_mode(tests)
    loaded = load_model(ModelConfig(adapter=resolve_adapter(args.adapter), quantize="auto"))
    understanding = UnderstandConfig()
    requests = []
    for prompt_id in args.prompts.split(","):
        request = understand(suite[prompt_id], has_score=False, config=understanding)
        requests.append((prompt_id, request.text, resolve(request.attributes, understanding)))
    for name, overrides in variants.items():
        started, tunes, each, resampled = time.perf_counter(), [], [], 0
        for prompt_id, text, attrs in requests:
            for seed in range(args.seeds):
                config = ComposeConfig(seed=seed, **overrides)
                result = compose_tune(loaded, text, header_for(attrs), form_plan(attrs), config)
                resampled += result.stats.resampled_bars
                if not result.valid:
                    continue
                tunes.append(result.abc)
                alone = metrics.music_profile([result.abc])
                if alone.tunes:
                    each.append(f"{prompt_id}:{metrics.jensen_shannon(alone.lengths, held_out.lengths):.2f}")
        profile = metrics.music_profile(tunes)
        pooled = metrics.compare_profiles(profile, held_out)
        matched = metrics.compare_by_meter(tunes, by_meter)
        same_mode = metrics.compare_by_mode(tunes, by_mode)["js_pitch_class_same_mode"]
        summary = profile.summary()
        print(f"{name}: valid {len(tunes)}/{len(requests) * args.seeds}, "
              f"{time.perf_counter() - started:.0f} s, JS pitch/interval/length "
              f"{pooled['js_pitch_class']:.3f}/{pooled['js_interval']:.3f}/{pooled['js_length']:.3f}, "
              f"same meter {matched['js_pitch_class_same_meter']:.3f}/"
              f"{matched['js_interval_same_meter']:.3f}/{matched['js_length_same_meter']:.3f}, "
              f"pitch same mode {same_mode:.3f}, distinct {summary['distinct_bar_share']:.2f}, "
              f"range {summary['range_semitones']:.1f}, cadence {summary['cadence_share']:.2f}, "
              f"lengths {shares(profile.lengths)}, "
              f"bars resampled {resampled}", flush=True)
        print("   per tune, JS length:", " ".join(each), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
