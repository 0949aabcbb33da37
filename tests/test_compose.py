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
    probability: each bar is written again ``bar_retries`` times, then the likeliest try is kept.
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



def test_guessing_ahead_keeps_tunes_valid_and_seeded(tiny):
    """Each token is run with a guess of the next (what followed the same two tokens before);
    the tunes stay valid and a seed gives the same tune again, with the guesses counted."""
    config = ComposeConfig(seed=4)
    first = compose_tune(tiny, "a reel", header("4/4"), FormPlan.dance(4), config)
    again = compose_tune(tiny, "a reel", header("4/4"), FormPlan.dance(4), config)
    plain = compose_tune(tiny, "a reel", header("4/4"), FormPlan.dance(4),
                         dataclasses.replace(config, guess_ahead=False))
    assert first.valid and plain.valid and first.abc == again.abc
    assert first.stats.guesses > 0 and plain.stats.guesses == 0
    assert first.stats.guesses_taken <= first.stats.guesses

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
    prior its bars are resampled more and the kept ones hold fewer sixteenths (seeds 0-5: most
    of this model's bars end with the likeliest try, so the effect is small and 3 seeds did not
    always show it)."""
    model = SimpleNamespace(model=_HalfSixteenths(tiny.tokenizer), tokenizer=tiny.tokenizer,
                            config=SimpleNamespace(adapter=None), device="cpu")
    air = abc_header(title="Test", meter="3/4", tempo="1/4=80", key="D", style="air")
    config = ComposeConfig(allow_pickup=False, repetition_penalty=1.0, max_repeats_in_a_row=0,
                           block_ngram=0, max_pitch_run=0, bar_retries=4)
    runs = {}
    for prior in (0.0, config.rhythm_prior):
        results = [compose_tune(model, "an air", air, 8, dataclasses.replace(config, seed=seed,
                                                                             rhythm_prior=prior))
                   for seed in range(6)]
        assert all(r.valid for r in results)
        runs[prior] = (sum(_short_share(r.abc) for r in results) / len(results),
                       sum(r.stats.resampled_bars for r in results))
    (free_share, free_resampled), (held_share, held_resampled) = runs.values()
    assert free_share > 0.5  # most of its notes are sixteenths
    assert held_share < free_share and held_resampled > free_resampled, runs


def test_ornaments_stay_valid(tiny):
    # A bare base gets no slurs, grace notes or decorations by default; asked for, they come
    # (the tiny model's noise is full of them) and the tune still validates.
    plain = compose_tune(tiny, "a jig", header("6/8"), FormPlan.dance(4), ComposeConfig(seed=6))
    ornate = compose_tune(tiny, "a jig", header("6/8"), FormPlan.dance(4),
                          ComposeConfig(seed=6, ornaments=True))
    assert plain.valid and ornate.valid and validate_abc(ornate.abc).valid
    body = lambda abc: abc.split("K:D\n", 1)[1]  # noqa: E731
    assert not set("{}!.") & set(body(plain.abc))
    assert set("{}!.()") & set(body(ornate.abc))


def test_same_seed_same_tune_other_seed_other_tune(tiny, jig):
    again = compose_tune(tiny, "a jig", header("6/8"), FormPlan.dance(4), ComposeConfig(seed=3))
    other = compose_tune(tiny, "a jig", header("6/8"), FormPlan.dance(4), ComposeConfig(seed=4))
    assert again.abc == jig.abc
    assert other.abc != jig.abc and other.valid


def test_repair_rewrites_only_the_broken_bar(tiny, jig):
    tune, bars = bars_of(jig.abc)
    body = tune.body
    broken_body = body[:bars[2].start] + "A2 B2 c2 d2" + body[bars[2].end:]  # 8/8 in a 6/8 bar
    broken = jig.abc[:tune.body_offset] + broken_body
    report = validate_abc(broken)
    assert not report.valid and {d.bar for d in report.diagnostics if d.severity == "error"} == {3}

    fixed = repair_tune(tiny, broken, "a jig", ComposeConfig(seed=5))
    assert fixed.valid and validate_abc(fixed.abc).valid
    assert fixed.attempts == 1  # one resampling decode
    before, after = bar_texts(broken), bar_texts(fixed.abc)
    assert len(after) == len(before)
    assert after[2] != before[2]
    assert [t for i, t in enumerate(after) if i != 2] == [t for i, t in enumerate(before) if i != 2]
    assert fixed.abc[:tune.body_offset] == broken[:tune.body_offset]


def test_repair_that_cannot_succeed_says_so(tiny):
    bad = "X:1\nT:t\nM:3/4\nL:1/8\nK:C\n|: A6 | B6 |\n"  # a repeat never closed
    result = repair_tune(tiny, bad, "a tune", ComposeConfig(seed=1, max_attempts=2))
    assert not result.valid and result.attempts == 2
    assert any(d.code == "repeat" for d in result.diagnostics)


def test_edit_span_keeps_every_other_bar_byte_identical(tiny, jig):
    with_lyrics = jig.abc + "w: la la la\n"
    result = edit_span(tiny, with_lyrics, "make bars 5 and 6 livelier", 5, 6, ComposeConfig(seed=10))
    assert result.valid and result.lyrics_removed and "w:" not in result.abc
    old_tune, old_bars = bars_of(jig.abc)
    new_tune, new_bars = bars_of(result.abc)
    assert len(new_bars) == len(old_bars)
    old, new = old_tune.body, new_tune.body
    assert new[:new_bars[4].start] == old[:old_bars[4].start]
    assert new[new_bars[5].end:] == old[old_bars[5].end:]
    assert bar_texts(result.abc)[4:6] != bar_texts(jig.abc)[4:6]
    assert all(bar.duration == bar.expected for bar in new_bars)


def test_edit_span_keeps_a_pickup_and_a_tie(tiny):
    abc = "X:1\nT:t\nM:3/4\nL:1/8\nK:G\nD | G2 A2 B2- | B2 A2 G2 | c2 B2 A2 | G5 |]\n"
    first = edit_span(tiny, abc, "new opening", 1, 1, ComposeConfig(seed=2))
    tune, bars = bars_of(first.abc)
    assert first.valid and bars[0].duration == bars_of(abc)[1][0].duration
    second = edit_span(tiny, abc, "change bar 3", 3, 3, ComposeConfig(seed=2))
    tune, bars = bars_of(second.abc)
    assert second.valid and bars[2].text_in(tune.body).startswith("B")  # B2- ties into it


def test_edit_span_keeps_slurs_balanced(tiny):
    abc = "X:1\nT:t\nM:3/4\nL:1/8\nK:G\nG2 A2 B2 | c2 (d2 e2 | f2) g2 a2 | b6 |]\n"
    for first, last in ((2, 2), (3, 3), (1, 4)):
        result = edit_span(tiny, abc, "vary it", first, last, ComposeConfig(seed=first))
        tune, bars = bars_of(result.abc)
        assert result.valid and len(bars) == 4
        slurs = [t.text for t in tokenize_body(tune.body, tune) if t.kind is Kind.SLUR]
        assert slurs.count("(") == slurs.count(")")
        if last < 4:  # the slur over the bar line between bars 2 and 3 is kept
            assert slurs.count("(") >= 1


def test_budget_that_runs_out_is_retried_then_reported(tiny):
    config = ComposeConfig(seed=1, max_new_tokens=5)
    result = compose_tune(tiny, "a waltz", header("3/4"), 16, config)
    assert not result.valid and result.attempts == config.max_attempts
    assert result.tokens == 5 * config.max_attempts  # every attempt spent its whole budget
    assert result.diagnostics[0].code == "decoding" and "3 times" in result.diagnostics[0].message


def test_a_decode_out_of_tokens_is_sampled_again(tiny):
    # at this temperature seed 0 spends its 14 tokens before the 2 bars end, then a later
    # sample fits (no bar is taken back, so that every token counted is one of the budget's)
    result = compose_tune(tiny, "a waltz", header("3/4"), 2,
                          ComposeConfig(seed=0, temperature=0.9, top_p=0.95, max_new_tokens=14,
                                        allow_pickup=False, bar_retries=0))
    assert result.valid and result.attempts in (2, 3)
    assert 14 * (result.attempts - 1) < result.tokens <= 14 * result.attempts
    assert len(bars_of(result.abc)[1]) == 2


def test_unconstrained_baseline_runs_the_raw_model(tiny):
    result = compose_tune(tiny, "a waltz", header("3/4"), 8,
                          ComposeConfig(seed=1, constrained=False, max_new_tokens=20))
    assert result.attempts == 1 and 1 <= result.tokens <= 20
    assert result.abc.startswith(header("3/4"))


def test_distinct_bar_share_and_lyrics_helpers(jig):
    assert 0 < distinct_bar_share(jig.abc) <= 1
    assert strip_lyrics("K:C\nw:a\nCD|\n") == ("K:C\nCD|\n", True)


@pytest.mark.slow
def test_real_smollm2_base_writes_a_valid_16_bar_tune():
    loaded = load_model(ModelConfig(adapter=None))
    result = compose_tune(loaded, "a lively reel in D major", header("4/4"), FormPlan.dance(8),
                          ComposeConfig(seed=0))
    assert result.valid, [str(d) for d in result.diagnostics]
    assert result.bars == 16 and validate_abc(result.abc).valid
    assert distinct_bar_share(result.abc) >= 0.5
