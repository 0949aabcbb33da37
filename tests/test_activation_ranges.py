"""Tests of agent/activation_ranges.py and the portable path's smoothed int8 weights.

Smoothing must leave every product unchanged in exact arithmetic (checked in float64 on random
tensors shaped like a grouped-attention layer), and the portable path with ranges beside the
model must say so, run its layers' products in int8 (token by token or a prompt whole), stay
close to float32, rewind, and repeat a seed. The model is the tiny random Llama of test_model.py; the
shipped adapter's loss on each path is the slow test in test_model.py.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from test_model import make_tiny_base
from test_step_decoder import check_rewinds_like_a_fresh_decoder, check_the_composer_repeats_a_seed

from agent.activation_ranges import (PRODUCTS, RANGES_FILE, SmoothingConfig, load_ranges, range_name,
                                     ranges_fit, record_ranges, save_ranges, smooth_layer)
from agent.model import ModelConfig, describe_model, load_model
from agent.step_decoder import Float16Linear, TokenInt8Linear, open_decoder

TUNE = "X:1\nT:Test\nM:3/4\nL:1/8\nK:Dm\nA2 d2 f2|e4 d2|c2 A2 F2|G6|A2 d2 f2|a4 g2|f2 e2 d2|d6|]\n"
TUNES = [TUNE, TUNE.replace("K:Dm", "K:G").replace("d6", "g6"), "X:2\nM:6/8\nK:D\nAFD DFA|dAF A3|]\n"]


def _layer_output(x, norm_1, qkv, out, norm_2, gate_up, down, heads, kv_heads):
    """One decoder layer's products on ``x`` (rows of tokens, no attention mixing: each row
    attends to itself only, which is all smoothing has to preserve), in float64."""
    import torch

    def rms(v, weight):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * weight

    head_dim = qkv.shape[0] // (heads + 2 * kv_heads)
    rows = rms(x, norm_1) @ qkv.T
    values = rows[:, (heads + kv_heads) * head_dim:].view(-1, kv_heads, head_dim)
    attention = values.repeat_interleave(heads // kv_heads, dim=1).reshape(x.shape[0], -1)
    x = x + attention @ out.T
    both = rms(x, norm_2) @ gate_up.T
    half = both.shape[1] // 2
    return rows[:, :(heads + kv_heads) * head_dim], x + (torch.nn.functional.silu(both[:, :half]) * both[:, half:]) @ down.T


def test_smoothing_changes_no_product_in_exact_arithmetic():
    import torch

    g = torch.Generator().manual_seed(1)
    heads, kv_heads, head_dim, width, inner = 4, 2, 4, 16, 24
    t = (lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64))
    tensors = dict(norm_1=t(width).abs() + 0.5, qkv=t((heads + 2 * kv_heads) * head_dim, width),
                   out=t(width, heads * head_dim), norm_2=t(width).abs() + 0.5,
                   gate_up=t(2 * inner, width), down=t(width, inner))
    ranges = {range_name(0, p): t(inner if p == "down" else width).abs() * 50 for p in PRODUCTS}
    smoothed = smooth_layer(**tensors, ranges=ranges, layer=0, heads=heads, kv_heads=kv_heads,
                            config=SmoothingConfig(int8=PRODUCTS))  # every product smoothed
    for name in ("qkv", "out", "gate_up", "down"):  # it did move something everywhere
        assert not torch.allclose(getattr(smoothed, name).double(), tensors[name])
    x = t(5, width)
    before = _layer_output(x, **tensors, heads=heads, kv_heads=kv_heads)
    after = _layer_output(x, **{k: getattr(smoothed, k).double() for k in tensors}, heads=heads,
                          kv_heads=kv_heads)
    for want, got in zip(before, after):
        assert torch.allclose(want, got, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """The tiny base, with activation ranges measured on a few tunes kept in its folder."""
    base = make_tiny_base(tmp_path_factory.mktemp("tiny-calibrated"), hidden=64)
    reference = load_model(ModelConfig(base=str(base), cpu_path="float32",
                                       cache_dir=str(tmp_path_factory.mktemp("cache-f32"))))
    ranges = record_ranges(reference.int8_llama, [reference.tokenizer.encode(tune) for tune in TUNES])
    assert ranges_fit(ranges, 2, 64, 128)
    assert float(ranges[range_name(1, "down")].max()) > 0
    save_ranges(ranges, base)
    return base


@pytest.fixture(scope="module")
def smoothed(calibrated, tmp_path_factory):
    return load_model(ModelConfig(base=str(calibrated), cpu_path="portable", smoothed_int8=True,
                                  cache_dir=str(tmp_path_factory.mktemp("cache-portable"))))


def test_ranges_beside_the_model_give_smoothed_int8_and_the_log_says_so(smoothed, calibrated, tmp_path):
    layer = smoothed.int8_llama.layers[0]
    assert isinstance(layer.qkv, TokenInt8Linear) and isinstance(layer.gate_up, TokenInt8Linear)
    assert isinstance(layer.down, Float16Linear)  # its inputs' outliers cost too much in int8
    assert isinstance(smoothed.int8_llama.head, Float16Linear)
    assert smoothed.quantize == "int8-smoothed"
    assert "portable path (int8 and float16 weights, smoothed activations)" in describe_model(smoothed)
    # the next start reads the weight cache without transformers, and builds the same weights
    import dataclasses

    import torch

    again = load_model(dataclasses.replace(smoothed.config))
    assert again.quantize == smoothed.quantize
    ids = smoothed.tokenizer.encode(TUNE)[:30]
    with torch.inference_mode():
        first, second = open_decoder(smoothed, 8), open_decoder(again, 8)
        assert torch.equal(first.feed(ids), second.feed(ids))
        assert torch.equal(first.feed(ids[:1]), second.feed(ids[:1]))


def test_smoothed_int8_stays_close_to_float32_token_by_token_or_whole(smoothed, calibrated, tmp_path):
    import torch

    reference = load_model(ModelConfig(base=str(calibrated), dtype="float32"))
    ids = smoothed.tokenizer.encode(TUNE)[:40]
    with torch.inference_mode():
        want = reference.model(input_ids=torch.tensor([ids])).logits[0].float()
        decoder = open_decoder(smoothed, 4)
        stepped = torch.stack([decoder.feed([token]) for token in ids])
        whole = open_decoder(smoothed, 4).feed(ids, every=True)
    top = want.topk(2, dim=-1).values
    for got in (whole, stepped):
        kl = torch.nn.functional.kl_div(got.log_softmax(-1), want.log_softmax(-1), log_target=True,
                                        reduction="batchmean")
        assert 1e-6 < float(kl) < 0.02, float(kl)  # rounded, but not far
        # the best token is float32's wherever float32's best leads its second by more than
        # the rounding moved the logits (a random model has near ties)
        clear = (top[:, 0] - top[:, 1]) > 2 * (got - want).abs().amax(dim=-1)
        assert int(clear.sum()) >= 10
        assert torch.equal(got.argmax(-1)[clear], want.argmax(-1)[clear])


def test_smoothed_int8_rewinds_and_repeats_a_seed(smoothed):
    check_rewinds_like_a_fresh_decoder(smoothed)
    check_the_composer_repeats_a_seed(smoothed)


def test_smoothed_int8_is_asked_for_and_foreign_ranges_are_refused(calibrated, tmp_path, caplog):
    off = load_model(ModelConfig(base=str(calibrated), cpu_path="portable", cache_dir=str(tmp_path / "a")))
    assert off.quantize == "float16-weight"
    assert isinstance(off.int8_llama.layers[0].qkv, Float16Linear)
    other = tmp_path / "other"
    shutil.copytree(calibrated, other)
    ranges = load_ranges(other)
    ranges.pop(range_name(1, "down"))
    save_ranges(ranges, other)
    with caplog.at_level(logging.WARNING, logger="agent.model"):
        loaded = load_model(ModelConfig(base=str(other), cpu_path="portable", smoothed_int8=True,
                                        cache_dir=str(tmp_path / "b")))
    assert loaded.quantize == "float16-weight"
    assert f"{RANGES_FILE} was measured on another model" in caplog.text
