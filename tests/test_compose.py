"""The composer with a tiny random llama model (fast) and the real SmolLM2 base (slow).

The tiny model has random weights and the real SmolLM2 tokenizer: its text is noise, which is
the point. Whatever it prefers, the constrained decoder must turn it into a valid tune with the
bars and bar lines asked for, and :func:`agent.validate.validate_abc` must agree.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from agent.abc_text import Kind, parse_tune, split_bars, tokenize_body
from agent.compose import (
    ComposeConfig,
    compose_tune,
    distinct_bar_share,
    edit_span,
    repair_tune,
    strip_lyrics,
)
from agent.decoding import FormPlan
from agent.model import ModelConfig, load_model
from agent.prompts import abc_header
from agent.validate import validate_abc
from ui_helpers import tiny_loaded_model

TEMPO = {"3/4": "1/4=100", "6/8": "3/8=110", "4/4": "1/4=120", "5/4": "1/4=100", "9/8": "3/8=100"}


@pytest.fixture(scope="module")
def tiny():
    """A two-layer llama with random weights over SmolLM2's real tokenizer (49k tokens)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model runs fastest on one thread, and the CPU is shared
    yield tiny_loaded_model()
    torch.set_num_threads(threads)


def header(meter: str, key: str = "D") -> str:
    return abc_header(title="Test", meter=meter, tempo=TEMPO[meter], key=key)


def bars_of(abc: str):
    tune = parse_tune(abc)
    return tune, split_bars(tokenize_body(tune.body, tune), tune)


def bar_texts(abc: str) -> list[str]:
    tune, bars = bars_of(abc)
    return [bar.text_in(tune.body) for bar in bars]


@pytest.fixture(scope="module")
def jig(tiny):
    return compose_tune(tiny, "a jig", header("6/8"), FormPlan.dance(4), ComposeConfig(seed=3))


@pytest.mark.parametrize("meter", ["3/4", "6/8", "4/4", "5/4", "9/8"])
def test_constrained_tunes_are_valid_with_the_bars_asked_for(tiny, meter):
    seen = []
    result = compose_tune(tiny, f"a tune in {meter}", header(meter), FormPlan.dance(4),
                          ComposeConfig(seed=1), on_progress=lambda *event: seen.append(event))
    report = validate_abc(result.abc)
    assert result.valid and report.valid, [str(d) for d in report.diagnostics]
    assert result.attempts == 1 and result.bars == 8
    tune, bars = bars_of(result.abc)
    assert all(bar.duration == bar.expected for bar in bars)
    assert result.abc.startswith(header(meter))
    assert sum(bar.ends_repeat for bar in bars) == 2
    counts = [bars_written for stage, bars_written, _ in seen if stage == "compose"]
    assert counts == sorted(counts) and counts[-1] == 8 and set(range(1, 9)) <= set(counts)
    assert seen[-1][0] == "done" and seen[-1][2] == result.abc
    assert result.tokens > 8 and result.tokens_per_second > 0
    assert result.stats.constraint_seconds > 0 and result.stats.forward_seconds > 0


class _EagerBarLines:
    """A stand-in model that puts most of its probability on " |" at every step, the rest on a
    few notes: it wants to close every bar after its first note, which the grammar refuses."""

    class _Cache:
        def crop(self, count: int) -> None:
            pass

    def __init__(self, tokenizer) -> None:
        self.vocabulary = len(tokenizer)
        self.bar_line = tokenizer.encode(" |")
        self.notes = [tokenizer.encode(text) for text in ("A", "B", "c", "d", " A", " B")]
        assert len(self.bar_line) == 1 and all(len(ids) == 1 for ids in self.notes)

    def __call__(self, input_ids, **_ignored):
        logits = torch.full((1, input_ids.shape[1], self.vocabulary), -10.0)
        logits[..., [ids[0] for ids in self.notes]] = 0.0
        logits[..., self.bar_line[0]] = 5.0
        return SimpleNamespace(logits=logits, past_key_values=self._Cache())


def test_bars_the_grammar_bent_are_written_again(tiny):
    """A model that wants each bar closed after one note gets every bar refused most of its
    probability: each bar is written again ``bar_retries`` times, then the last try is kept.
    ``bar_retries=0`` keeps every first try; the tune is valid and seeded either way."""
    eager = SimpleNamespace(model=_EagerBarLines(tiny.tokenizer), tokenizer=tiny.tokenizer,
                            config=SimpleNamespace(adapter=None), device="cpu")
    config = ComposeConfig(seed=2, allow_pickup=False, repetition_penalty=1.0, max_repeats_in_a_row=0,
                           block_ngram=0, max_pitch_run=0)
    again = compose_tune(eager, "a waltz", header("3/4"), 4, config)
    kept = compose_tune(eager, "a waltz", header("3/4"), 4, dataclasses.replace(config, bar_retries=0))
    assert again.valid and kept.valid and again.bars == kept.bars == 4
    assert again.stats.resampled_bars == config.bar_retries * 4
    assert kept.stats.resampled_bars == 0
    assert again.tokens > kept.tokens  # the taken-back tokens are counted as decoded
    assert compose_tune(eager, "a waltz", header("3/4"), 4, config).abc == again.abc
    # the random tiny model spreads its probability thinly: the refused top candidates hold
    # little of it, so its bars are kept (without the rhythm prior, which its noise would wake)
    plain = dataclasses.replace(config, rhythm_prior=0.0)
    assert compose_tune(tiny, "a waltz", header("3/4"), 4, plain).stats.resampled_bars == 0


class _HalfSixteenths(_EagerBarLines):
    """A stand-in model that follows a note with "/" (a sixteenth) more often than not."""

    def __call__(self, input_ids, **_ignored):
        out = super().__call__(input_ids)
        out.logits[..., self.bar_line[0]] = 0.0
        out.logits[..., self.slash[0]] = 2.5  # six notes at 0 against "/" at about log 12
        out.logits[0, input_ids[0] == self.slash[0], self.slash[0]] = -10.0  # no "//"
        return out

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.slash = tokenizer.encode("/")
        assert len(self.slash) == 1


def _short_share(abc: str) -> float:
    tune, bars = bars_of(abc)
    notes = [t for bar in bars for t in bar.tokens if t.kind in (Kind.NOTE, Kind.REST)]
    return sum("/" in t.text for t in notes) / len(notes)


def test_the_rhythm_prior_resamples_an_air_toward_fewer_sixteenths(tiny):
    """An air usually holds at most a third of its notes shorter than L: (agent.styles). A
    stand-in that writes most notes as sixteenths cannot be brought down to that, but with the
    prior its bars are resampled more and the kept ones hold fewer sixteenths (seeds 0-2)."""
    model = SimpleNamespace(model=_HalfSixteenths(tiny.tokenizer), tokenizer=tiny.tokenizer,
                            config=SimpleNamespace(adapter=None), device="cpu")
    air = abc_header(title="Test", meter="3/4", tempo="1/4=80", key="D", style="air")
    config = ComposeConfig(allow_pickup=False, repetition_penalty=1.0, max_repeats_in_a_row=0,
                           block_ngram=0, max_pitch_run=0, bar_retries=8)
    runs = {}
    for prior in (0.0, config.rhythm_prior):
        results = [compose_tune(model, "an air", air, 8, dataclasses.replace(config, seed=seed,
                                                                             rhythm_prior=prior))
                   for seed in range(3)]
        assert all(r.valid for r in results)
        runs[prior] = (sum(_short_share(r.abc) for r in results) / 3,
                       sum(r.stats.resampled_bars for r in results))
    (free_share, free_resampled), (held_share, held_resampled) = runs.values()
    assert free_share > 0.6
    assert held_share < free_share - 0.03 and held_resampled > free_resampled
