"""Tests of agent/ort_decoder.py: the ort CPU path, one ONNX Runtime graph per token.

The model is the tiny random Llama of test_model.py (hidden 64: 4 heads of 16, 2 key/value
heads, so attention is grouped as in SmolLM2). The graph is checked two ways: with the weights
dequantized and multiplied in float32 (``accuracy_level`` 0) it computes what transformers
computes on the same dequantized weights, to float32 rounding, so norms, rotary embedding,
attention and the cache are exact; as shipped (8-bit weights, int8 products) it stays close to
float32's distribution. Then the decoder contract the composer relies on: a prompt fed whole,
in pieces or one token at a time, rewinds, seeds that reproduce, and the composer's tune.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_model import make_tiny_base
from test_step_decoder import TUNE, check_rewinds_like_a_fresh_decoder, check_the_composer_repeats_a_seed

from agent.model import ModelConfig, describe_model, load_model
from agent.ort_decoder import OrtConfig, OrtStepDecoder, OrtStepWeights, ort_files_ready, quantize_blocks
from agent.step_decoder import open_decoder, sample_continuations

#: the ort path's largest mean KL divergence from float32's next-token distribution on the tiny
#: random model (measured 0.0021-0.0024 nats whole, in pieces or token by token)
KL_TOLERANCE = 0.01
#: the least share of positions whose best token is float32's (measured 0.95-0.975; a random
#: model has near ties)
SAME_BEST = 0.9


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base(tmp_path_factory.mktemp("tiny-base"), hidden=64)


@pytest.fixture(scope="module")
def reference(tiny_base):
    """transformers' float32 model, as it loads the tiny base."""
    return load_model(ModelConfig(base=str(tiny_base), dtype="float32"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ort_loaded(tiny_base, cache_dir):
    return load_model(ModelConfig(base=str(tiny_base), cpu_path="ort", cache_dir=str(cache_dir), threads=1))


def _reference_logits(loaded, ids: list[int]):
    import torch

    with torch.inference_mode():
        return loaded.model(input_ids=torch.tensor([ids])).logits[0].float()


def _agreement(got, want) -> tuple[float, float]:
    import torch

    kl = torch.nn.functional.kl_div(got.log_softmax(-1), want.log_softmax(-1), log_target=True,
                                    reduction="batchmean")
    return float(kl), float((got.argmax(-1) == want.argmax(-1)).float().mean())


def test_the_graph_is_exact_on_dequantized_weights(tiny_base, reference):
    """accuracy_level 0 multiplies the dequantized weights in float32: transformers' float32
    forward on the same dequantized weights gives the same logits, however the tokens are fed."""
    import copy

    import numpy as np
    import torch

    config = json.loads((tiny_base / "config.json").read_text())
    weights = OrtStepWeights.build(reference.model.state_dict(), config, 1, OrtConfig(accuracy_level=0))
    rounded = copy.deepcopy(reference.model)
    with torch.no_grad():
        for module in rounded.modules():
            if isinstance(module, torch.nn.Linear):
                weight = module.weight.detach().float().numpy()
                codes, scales = quantize_blocks(weight)
                values = (codes.astype(np.float32) - 128) * scales.reshape(*codes.shape[:2], 1)
                module.weight = torch.nn.Parameter(torch.from_numpy(
                    values.reshape(len(weight), -1)[:, :weight.shape[1]].copy()))
    ids = reference.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(type("L", (), {"model": rounded})(), ids)
    whole = weights.decoder(8).feed(ids, every=True)
    stepper = weights.decoder(4)  # grows past its first capacity
    steps = torch.stack([stepper.feed([token]) for token in ids])
    pieces = weights.decoder(8)
    first = pieces.feed(ids[:20], every=True)
    rest = torch.cat([pieces.feed(ids[20:33], every=True), pieces.feed(ids[33:], every=True)])
    for got in (whole, steps, torch.cat([first, rest])):
        assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())


def test_the_ort_path_stays_close_to_float32(ort_loaded, reference):
    """8-bit weights and int8 products: a prompt fed whole, then one token at a time, stays
    within KL_TOLERANCE nats of float32's next-token distribution."""
    import torch

    ids = ort_loaded.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(reference, ids)
    decoder = open_decoder(ort_loaded, 48)
    assert isinstance(decoder, OrtStepDecoder)
    prompt = decoder.feed(ids[:24], every=True)
    last = open_decoder(ort_loaded, 48).feed(ids[:24])
    steps = torch.stack([decoder.feed([token]) for token in ids[24:]])
    got = torch.cat([prompt, steps])
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(last, prompt[-1], atol=1e-5)  # the last row alone is the same row
    kl, same = _agreement(got, want)
    assert kl < KL_TOLERANCE and same >= SAME_BEST, (kl, same)


def test_rewind_then_feed_is_a_fresh_decoder(ort_loaded):
    check_rewinds_like_a_fresh_decoder(ort_loaded)
    decoder = open_decoder(ort_loaded, 4)
    decoder.feed([5, 6, 7])
    with pytest.raises(ValueError, match="cannot rewind to 4 tokens: 3 are cached"):
        decoder.rewind(4)
    with pytest.raises(ValueError, match="feed needs at least one token"):
        decoder.feed([])


def test_the_same_seed_gives_the_same_continuations(ort_loaded):
    prompt = ort_loaded.tokenizer.encode("X:1\nT:A sad waltz\nM:3/4\nK:Dm\n")
    first = sample_continuations(ort_loaded, prompt, samples=2, max_new_tokens=20, seed=7)
    again = sample_continuations(ort_loaded, prompt, samples=2, max_new_tokens=20, seed=7)
    other = sample_continuations(ort_loaded, prompt, samples=2, max_new_tokens=20, seed=8)
    assert first == again and len(first) == 2 and all(len(row) == 20 for row in first)
    assert other != first


def test_the_composer_on_the_ort_path_writes_a_valid_tune_and_repeats_a_seed(ort_loaded):
    check_the_composer_repeats_a_seed(ort_loaded)


def test_the_built_graph_is_kept_and_a_second_start_opens_it(ort_loaded, tiny_base, cache_dir):
    import torch

    entries = [path for path in (cache_dir / "merged").iterdir() if "-ort-" in path.name]
    assert len(entries) == 1 and ort_files_ready(entries[0])
    again = load_model(ModelConfig(base=str(tiny_base), cpu_path="ort", cache_dir=str(cache_dir), threads=1))
    ids = ort_loaded.tokenizer.encode(TUNE)[:12]
    assert torch.equal(open_decoder(again, 12).feed(ids), open_decoder(ort_loaded, 12).feed(ids))
    assert "ort path (ONNX Runtime, 8-bit weights" in describe_model(again)
    assert again.model.config.model_type == "llama"  # transformers' model, built when asked for


def test_auto_picks_the_ort_path_on_every_cpu_and_another_for_other_bases(tiny_base, tmp_path,
                                                                           monkeypatch):
    import agent.model
    from agent.errors import ModelError

    monkeypatch.setenv("TUNESMITH_CPU_PATH", "auto")
    config = ModelConfig(base=str(tiny_base), quantize="auto", cache_dir=str(tmp_path), threads=1)
    monkeypatch.setattr(agent.model, "cpu_has_bfloat16", lambda: True)
    assert load_model(config).cpu_path == "ort"
    monkeypatch.setattr(agent.model, "cpu_has_bfloat16", lambda: False)
    assert load_model(config).cpu_path == "ort"
    monkeypatch.setattr(agent.model, "config_fits", lambda shape: False)  # a base it cannot run
    assert load_model(config).cpu_path == "portable"
    with pytest.raises(ModelError, match="the ort path runs Llama models only"):
        load_model(ModelConfig(base=str(tiny_base), cpu_path="ort", cache_dir=str(tmp_path)))


def test_the_thread_count_changes_no_logit(tiny_base, reference):
    """One thread or two give the same logits bit for bit, so a seed gives the same tune on a
    2-core laptop as on a 1-core run (the shipped model's tunes for seeds 0-3 were also equal
    across 1 and 2 threads, docs/benchmarks.md)."""
    import torch

    config = json.loads((tiny_base / "config.json").read_text())
    ids = reference.tokenizer.encode(TUNE)[:24]
    got = [OrtStepWeights.build(reference.model.state_dict(), config, threads).decoder(32)
           for threads in (1, 2)]
    prompts = [decoder.feed(ids[:20], every=True) for decoder in got]
    steps = [torch.stack([decoder.feed([token]) for token in ids[20:]]) for decoder in got]
    assert torch.equal(prompts[0], prompts[1]) and torch.equal(steps[0], steps[1])


def test_an_unreadable_cached_graph_is_rebuilt(tiny_base, tmp_path, caplog):
    import torch

    config = ModelConfig(base=str(tiny_base), cpu_path="ort", cache_dir=str(tmp_path), threads=1)
    first = load_model(config)
    entry = next(path for path in (tmp_path / "merged").iterdir() if "-ort-" in path.name)
    (entry / "decoder.onnx").write_bytes(b"not a graph")
    again = load_model(config)
    assert "rebuilding the unreadable ort decoder" in caplog.text and ort_files_ready(entry)
    ids = first.tokenizer.encode(TUNE)[:12]
    assert torch.equal(open_decoder(again, 12).feed(ids), open_decoder(first, 12).feed(ids))


@pytest.fixture(scope="module")
def body_base(tiny_base, tmp_path_factory) -> Path:
    """The tiny base with a body vocabulary beside it, learnt from corpus tunes."""
    import shutil

    from test_model import corpus_tunes

    from agent.model import write_body_tokens
    from agent.sampler import body_token_lists, body_vocabulary
    from agent.tokenizer import FastTokenizer
    from finetune.body_tokens import common_follows

    folder = tmp_path_factory.mktemp("body-base") / "tiny"
    shutil.copytree(tiny_base, folder)
    tunes = corpus_tunes(40)
    tokenizer = FastTokenizer.from_folder(folder)
    bodies = body_token_lists(tokenizer, tunes)
    write_body_tokens(folder, body_vocabulary(tokenizer, bodies), len(tunes), common_follows(bodies, least=2))
    return folder


def _composed(loaded, seed: int = 3, **settings) -> str:
    from agent.compose import ComposeConfig, compose_tune
    from agent.prompts import abc_header

    header = abc_header(title="Test Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    result = compose_tune(loaded, "a waltz in D minor", header, 4, ComposeConfig(seed=seed, **settings))
    assert result.valid and result.bars == 4, result.abc
    return result.abc


def test_the_body_output_layer_gives_the_whole_layers_numbers_for_its_tokens(body_base, tmp_path):
    """The graph's body head is the same rows of the same 8-bit output layer: bit for bit the
    whole vocabulary's logits at those ids, fed whole or token by token."""
    import torch

    loaded = load_model(ModelConfig(base=str(body_base), cpu_path="ort", cache_dir=str(tmp_path), threads=1))
    body = loaded.int8_llama.body_ids
    assert body is not None and 0 < len(body) < len(loaded.tokenizer)
    ids = loaded.tokenizer.encode(TUNE)[:30]
    whole, part = open_decoder(loaded, 8), open_decoder(loaded, 8)
    assert part.body_ids == body
    assert torch.equal(whole.feed(ids[:20], every=True)[:, list(body)], part.feed(ids[:20], every=True, body=True))
    for token in ids[20:]:
        assert torch.equal(whole.feed([token])[list(body)], part.feed([token], body=True))
    plain = OrtStepWeights.build(loaded.model.state_dict(), json.loads((body_base / "config.json").read_text()), 1)
    assert plain.body_ids is None
    with pytest.raises(ValueError, match="no body output layer"):
        plain.decoder(4).feed(ids[:3], body=True)


def test_the_composer_writes_in_the_body_vocabulary_and_repeats_a_seed(body_base, tmp_path):
    """On a body vocabulary of one-character tokens alone any body can still be spelled: the
    composer writes a valid tune, the same for a seed, and not the tune the whole vocabulary
    gives (it decodes other tokens)."""
    from agent.model import write_body_tokens
    from agent.sampler import body_vocabulary
    from agent.tokenizer import FastTokenizer

    config = ModelConfig(base=str(body_base), cpu_path="ort", cache_dir=str(tmp_path), threads=1)
    learnt = load_model(config)
    assert _composed(learnt) == _composed(learnt)
    singles = body_vocabulary(FastTokenizer.from_folder(body_base), [])
    kept = (body_base / "body_tokens.json").read_bytes()
    write_body_tokens(body_base, singles, 0)
    try:
        spelled = load_model(config)  # a new cache entry: the body's tokens are in its key
        assert spelled.int8_llama.body_ids == tuple(singles)
        assert len([p for p in (tmp_path / "merged").iterdir() if "-ort-" in p.name]) == 2
        by_letter = _composed(spelled)
        assert by_letter == _composed(spelled)
        assert by_letter != _composed(spelled, body_vocabulary=False)
    finally:
        (body_base / "body_tokens.json").write_bytes(kept)


def test_the_training_tunes_common_follows_are_guessed_too(body_base, tmp_path):
    """Where a tune has no guess of its own yet, the composer guesses what mostly followed the
    same two tokens in the training tunes: more guesses, the same kind of tune, a seed kept."""
    from agent.compose import ComposeConfig, compose_tune
    from agent.prompts import abc_header

    loaded = load_model(ModelConfig(base=str(body_base), cpu_path="ort", cache_dir=str(tmp_path), threads=1))
    assert loaded.body_follows and all(len(key) == 2 for key in loaded.body_follows)
    header = abc_header(title="Test Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    runs = {common: [compose_tune(loaded, "a waltz", header, 4, ComposeConfig(seed=seed, common_guesses=common))
                     for seed in range(3)] for common in (False, True)}
    assert all(r.valid for results in runs.values() for r in results)
    assert sum(r.stats.guesses for r in runs[True]) > sum(r.stats.guesses for r in runs[False])
    assert [r.abc for r in runs[True]] == [compose_tune(loaded, "a waltz", header, 4, ComposeConfig(seed=seed)).abc
                                           for seed in range(3)]


def test_body_tokens_outside_the_vocabulary_are_refused(body_base, tmp_path):
    import shutil

    from agent.errors import ModelError
    from agent.model import write_body_tokens

    folder = tmp_path / "base"
    shutil.copytree(body_base, folder)
    write_body_tokens(folder, [1, 2, 10 ** 6], 1)
    with pytest.raises(ModelError, match="not all in the vocabulary"):
        load_model(ModelConfig(base=str(folder), cpu_path="ort", threads=1))
    (folder / "body_tokens.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot read the body's tokens"):
        load_model(ModelConfig(base=str(folder), cpu_path="ort", threads=1))
    (folder / "body_tokens.json").write_text('{"ids": [1, 2], "follows": [[1, 2]]}')
    with pytest.raises(ModelError, match="three token ids each"):
        load_model(ModelConfig(base=str(folder), cpu_path="ort", threads=1))
