"""Tests of agent/step_decoder.py: the compact Llama decoder against transformers' own forward.

The model is the tiny random Llama of test_model.py. On the bf16 path (int8 weights, bfloat16
activations; ``quantize="int8-weight"``, which needs a CPU that computes in bfloat16) the two
decoders differ only in the precision of attention (float32 here, bfloat16 in transformers), so
their logits agree closely and their greedy choices agree; the tests feed the prompt in one
piece, token by token, in several pieces, and past the cache's first capacity. The portable
path (float16 weights, float32 activations through fbgemm) and the float32 path run on any CPU:
they are checked against transformers' float32 model, and the composer runs on the portable
path with a seed that reproduces its tune.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from test_model import make_tiny_base

from agent.model import ModelConfig, cpu_has_bfloat16, load_model
from agent.step_decoder import (
    DynamicInt8Linear,
    Float16Linear,
    Float32Linear,
    Int8LlamaDecoder,
    LlamaStepDecoder,
    TransformersDecoder,
    int8_llama_weights,
    open_decoder,
)


TUNE = "X:1\nT:Test\nM:3/4\nL:1/8\nK:Dm\nA2 d2 f2|e4 d2|c2 A2 F2|G6|A2 d2 f2|a4 g2|f2 e2 d2|d6|]\n"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    # hidden 64: 4 heads of 16, 2 key/value heads, so attention is grouped as in SmolLM2
    return make_tiny_base(tmp_path_factory.mktemp("tiny-base"), hidden=64)


@pytest.fixture(scope="module")
def loaded(tiny_base):
    if not cpu_has_bfloat16():
        pytest.skip("the bf16 path needs a bfloat16 CPU")
    return load_model(ModelConfig(base=str(tiny_base), quantize="int8-weight"))


def _reference_logits(loaded, ids: list[int]):
    """transformers' logits after each prefix of ``ids`` (one full forward, no cache)."""
    import torch

    with torch.inference_mode():
        return loaded.model(input_ids=torch.tensor([ids])).logits[0].float()


def _close(got, want) -> bool:
    """Within 3 % of the logits' scale, with the same best token wherever transformers' best
    leads its second by more than the difference (a random model has near ties)."""
    difference = float((got - want).abs().max())
    top = want.topk(2).values
    clear = float(top[0] - top[1]) > 2 * difference
    return difference <= 0.03 * float(want.abs().max()) and (
        not clear or int(got.argmax()) == int(want.argmax()))


def test_the_loader_prepares_the_int8_llama_decoder_and_open_decoder_picks_it(loaded, tiny_base):
    assert loaded.int8_llama is not None
    assert isinstance(open_decoder(loaded, 16), Int8LlamaDecoder)
    plain = load_model(ModelConfig(base=str(tiny_base), quantize="int8-weight", decoder="transformers"))
    assert plain.int8_llama is None
    assert isinstance(open_decoder(plain, 16), TransformersDecoder)
    floating = load_model(ModelConfig(base=str(tiny_base), dtype="float32"))
    assert floating.int8_llama is None and int8_llama_weights(floating.model) is None


def test_fused_projections_leave_the_model_itself_unchanged(tiny_base, loaded):
    import torch

    other = load_model(ModelConfig(base=str(tiny_base), quantize="int8-weight", decoder="transformers"))
    ids = loaded.tokenizer.encode(TUNE)
    with torch.inference_mode():
        assert torch.equal(loaded.model(input_ids=torch.tensor([ids])).logits,
                           other.model(input_ids=torch.tensor([ids])).logits)
    attention = loaded.model.model.layers[0].self_attn
    fused = loaded.int8_llama.layers[0].qkv.weight
    assert attention.k_proj.weight_int8.data_ptr() != fused.data_ptr()  # a view into it
    assert attention.q_proj.weight_int8.data_ptr() == fused.data_ptr()


@pytest.mark.parametrize("pieces", [(1,), "tokens", (5, 1, 7), (3,)])
def test_logits_match_transformers_however_the_context_is_fed(loaded, pieces):
    """The prompt fed whole, one token at a time, in uneven pieces (a piece after cached
    tokens takes the causal mask path), and past a capacity of 4 tokens (the cache grows)."""
    import torch

    ids = loaded.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(loaded, ids)
    sizes = [1] * len(ids) if pieces == "tokens" else list(pieces)
    if pieces == (1,):
        sizes = [len(ids)]
    decoder = Int8LlamaDecoder(loaded.int8_llama, capacity=4)
    position = 0
    with torch.inference_mode():
        while position < len(ids):
            size = sizes.pop(0) if sizes else 1
            got = decoder.feed(ids[position:position + size])
            position += size
            assert got.dtype == torch.float32 and got.shape == want[0].shape
            assert _close(got, want[min(position, len(ids)) - 1]), position
    assert decoder.length == len(ids) and decoder.capacity >= len(ids)


def test_a_continuation_steps_as_the_transformers_decoder_does(loaded):
    """Both decoders fed the int8 decoder's own greedy continuation, step by step, through
    their caches: the logits agree at every step."""
    import torch

    prompt = loaded.tokenizer.encode(TUNE)[:12]
    ours, theirs = Int8LlamaDecoder(loaded.int8_llama, 16), TransformersDecoder(loaded.model)
    with torch.inference_mode():
        got, want = ours.feed(prompt), theirs.feed(prompt)
        for step in range(30):
            assert _close(got, want), step
            token = [int(got.argmax())]
            got, want = ours.feed(token), theirs.feed(token)


def test_sessions_do_not_share_a_cache(loaded):
    import torch

    ids = loaded.tokenizer.encode(TUNE)[:20]
    with torch.inference_mode():
        first = open_decoder(loaded, 32)
        alone = first.feed(ids).clone()
        second = open_decoder(loaded, 32)
        second.feed(ids[:5])
        second.feed(ids[5:])
        again = open_decoder(loaded, 32).feed(ids)
    assert torch.equal(alone, again)
    with pytest.raises(ValueError, match="at least one token"):
        first.feed([])


@pytest.mark.parametrize("kind", ["int8-llama", "transformers"])
def test_rewind_forgets_the_tokens_after_it(loaded, kind):
    """A bar taken back: the tokens after the rewind point are gone, as if never fed."""
    import torch

    def fresh():
        if kind == "int8-llama":
            return Int8LlamaDecoder(loaded.int8_llama, 8)
        return TransformersDecoder(loaded.model)

    ids = loaded.tokenizer.encode(TUNE)[:30]
    decoder = fresh()
    with torch.inference_mode():
        decoder.feed(ids[:20])
        decoder.feed(ids[20:25])
        decoder.rewind(20)
        assert decoder.length == 20
        got = decoder.feed(ids[25:30])
        want = fresh().feed(ids[:20] + ids[25:30])
    assert decoder.length == 25
    assert _close(got, want)
    with pytest.raises(ValueError, match="cannot rewind to 26 tokens: 25 are cached"):
        decoder.rewind(26)


# --- the portable and float32 paths: any CPU ---------------------------------------------------


@pytest.fixture(scope="module")
def reference(tiny_base):
    """transformers' float32 model, as it loads the tiny base."""
    return load_model(ModelConfig(base=str(tiny_base), dtype="float32"))


@pytest.fixture(scope="module")
def portable(tiny_base, tmp_path_factory):
    return load_model(ModelConfig(base=str(tiny_base), cpu_path="portable",
                                  cache_dir=str(tmp_path_factory.mktemp("cache"))))


def _agreement(got, want) -> tuple[float, float]:
    """Mean KL divergence from transformers' next-token distribution, and how often the best
    token is the same."""
    import torch

    kl = torch.nn.functional.kl_div(got.log_softmax(-1), want.log_softmax(-1), log_target=True,
                                    reduction="batchmean")
    return float(kl), float((got.argmax(-1) == want.argmax(-1)).float().mean())


def test_the_float32_path_computes_what_transformers_does(tiny_base, reference, tmp_path):
    import torch

    loaded = load_model(ModelConfig(base=str(tiny_base), cpu_path="float32", cache_dir=str(tmp_path)))
    assert isinstance(open_decoder(loaded, 8), LlamaStepDecoder)
    assert isinstance(loaded.int8_llama.layers[0].qkv, Float32Linear)
    ids = loaded.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(reference, ids)
    decoder = open_decoder(loaded, 8)
    with torch.inference_mode():
        steps = torch.stack([decoder.feed([token]) for token in ids])
        whole = open_decoder(loaded, 8).feed(ids, every=True)
        own = loaded.model(input_ids=torch.tensor([ids])).logits[0]
    assert torch.allclose(whole, want, atol=1e-4) and torch.allclose(steps, want, atol=1e-4)
    assert torch.equal(own, want)  # the model's layers, now views of the fused weights


def test_the_portable_path_stays_close_to_float32(portable, reference):
    """float16 weights, float32 activations: token by token or the prompt fed whole, the
    distributions stay within a ten-thousandth of a nat of float32's and the best token is
    float32's wherever float32's is clear; transformers' forward on the model's own portable
    layers gives the same logits."""
    import torch

    assert isinstance(portable.int8_llama.layers[0].gate_up, Float16Linear)
    assert isinstance(portable.int8_llama.head, Float16Linear)
    ids = portable.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(reference, ids)
    decoder = open_decoder(portable, 4)
    with torch.inference_mode():
        steps = torch.stack([decoder.feed([token]) for token in ids])
        whole = open_decoder(portable, 4).feed(ids, every=True)
        own = portable.model(input_ids=torch.tensor([ids])).logits[0]
    for got in (steps, whole):
        kl, _same = _agreement(got, want)
        assert kl < 1e-4, kl
        assert all(_close(got[i], want[i]) for i in range(len(ids)))
    assert torch.allclose(own, whole, atol=1e-4)  # transformers on the same float16 layers


def test_dynamic_int8_rounds_the_activations_and_drifts_further(tiny_base, reference):
    """The dynamic int8 kind (kept for measurements): int8 rows, activations rounded to 8 bits
    inside each product; further from float32 than the portable path's float16 weights."""
    import torch

    from agent.step_decoder import float_llama_weights

    model = load_model(ModelConfig(base=str(tiny_base), dtype="float32")).model
    weights = float_llama_weights(model, "int8-dynamic")
    assert isinstance(weights.layers[0].qkv, DynamicInt8Linear)
    ids = reference.tokenizer.encode(TUNE)[:40]
    want = _reference_logits(reference, ids)
    with torch.inference_mode():
        got = LlamaStepDecoder(weights, 4).feed(ids, every=True)
    kl, same = _agreement(got, want)
    assert 1e-4 < kl < 0.05 and same >= 0.75, (kl, same)


def check_rewinds_like_a_fresh_decoder(loaded) -> None:
    """Feeding, rewinding and feeding again gives what a fresh decoder fed the kept tokens gives."""
    import torch

    ids = loaded.tokenizer.encode(TUNE)[:30]
    decoder = open_decoder(loaded, 8)
    with torch.inference_mode():
        decoder.feed(ids[:20])
        decoder.feed(ids[20:25])
        decoder.rewind(20)
        got = decoder.feed(ids[25:30])
        again = open_decoder(loaded, 8)
        again.feed(ids[:20])
        want = again.feed(ids[25:30])
    assert torch.equal(got, want)


def check_the_composer_repeats_a_seed(loaded) -> None:
    from agent.compose import ComposeConfig, compose_tune
    from agent.prompts import abc_header

    header = abc_header(title="Test Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    first = compose_tune(loaded, "a waltz in D minor", header, 4, ComposeConfig(seed=3))
    second = compose_tune(loaded, "a waltz in D minor", header, 4, ComposeConfig(seed=3))
    assert first.valid and first.bars == 4, first.abc
    assert first.abc == second.abc


def test_the_portable_path_rewinds_and_repeats_itself(portable):
    check_rewinds_like_a_fresh_decoder(portable)


def test_the_composer_on_the_portable_path_repeats_a_seed(portable):
    check_the_composer_repeats_a_seed(portable)


def test_sampled_continuations_repeat_a_seed_and_greedy_is_generates(tiny_base, tmp_path):
    """The lyrics' sampler on the compact decoder: greedy gives what transformers' ``generate``
    gives on the same float32 weights; sampling repeats itself for a seed, differs across
    seeds, and stops at a stop token."""
    import torch

    from agent.lyrics import GenerationSettings, model_text_generator
    from agent.step_decoder import sample_continuations

    loaded = load_model(ModelConfig(base=str(tiny_base), cpu_path="float32", cache_dir=str(tmp_path)))
    prompt = loaded.tokenizer.encode(TUNE)[:20]
    with torch.inference_mode():
        want = loaded.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 20, dtype=torch.long),
                                     do_sample=False, max_new_tokens=12, min_new_tokens=12)[0, 20:].tolist()
    assert sample_continuations(loaded, prompt, temperature=0, max_new_tokens=12, stop=()) == [want]
    first = sample_continuations(loaded, prompt, samples=3, max_new_tokens=10, seed=5, stop=())
    assert len(first) == 3 and all(len(row) == 10 for row in first)
    assert first == sample_continuations(loaded, prompt, samples=3, max_new_tokens=10, seed=5, stop=())
    assert first != sample_continuations(loaded, prompt, samples=3, max_new_tokens=10, seed=6, stop=())
    stopped = sample_continuations(loaded, prompt, samples=3, max_new_tokens=10, seed=5, stop=[first[0][4]])
    assert stopped[0] == first[0][:first[0].index(first[0][4])]
    generate_text = model_text_generator(loaded)
    messages = [{"role": "user", "content": "Words for a waltz"}]
    texts = generate_text(messages, GenerationSettings(samples=2, seed=1, max_new_tokens=8))
    assert len(texts) == 2 and texts == generate_text(messages, GenerationSettings(samples=2, seed=1, max_new_tokens=8))


def _plain_steps(weights, prompt_keys, prompt_values, start: int, tokens: list[int]):
    """One-token steps written out plainly (queries and keys rotated by ``_rotate``, keys and
    values kept apart), from caches holding ``start`` tokens: the reference for the step
    decoder's fused layout."""
    import torch

    from agent.step_decoder import _rms_norm, _rotate

    w = weights
    end = start + len(tokens)
    cos, sin = w.rotary(torch.zeros(1, 1, w.head_dim), torch.arange(end)[None])
    keys, values = prompt_keys.clone(), prompt_values.clone()
    out = []
    for position, token in enumerate(tokens, start=start):
        x = w.embed[token:token + 1]
        for index, layer in enumerate(w.layers):
            rows = layer.qkv(_rms_norm(x, layer.norm_1, layer.eps_1)).view(-1, w.head_dim)
            query = _rotate(rows[:w.heads], cos[0, position], sin[0, position])
            keys[index, :, position] = _rotate(rows[w.heads:w.heads + w.kv_heads], cos[0, position],
                                               sin[0, position])
            values[index, :, position] = rows[w.heads + w.kv_heads:]
            attention = torch.nn.functional.scaled_dot_product_attention(
                query[None, :, None], keys[None, index, :, :position + 1],
                values[None, index, :, :position + 1], enable_gqa=True).view(1, -1)
            x = x + layer.out(attention)
            gate_up = layer.gate_up(_rms_norm(x, layer.norm_2, layer.eps_2))
            x = x + layer.down(torch.nn.functional.silu(gate_up[:, :w.intermediate])
                               * gate_up[:, w.intermediate:])
        out.append(w.head(_rms_norm(x, w.norm, w.eps))[0])
    return out


def test_one_token_steps_equal_the_plain_formula_bit_for_bit(portable):
    """The step's per-row rotary tables and its one copy of keys and values change no bit."""
    import torch

    ids = portable.tokenizer.encode(TUNE)[:24]
    decoder = LlamaStepDecoder(portable.int8_llama, capacity=12)  # grows while stepping
    with torch.inference_mode():
        decoder.feed(ids[:10])
        keys, values = decoder.keys.clone(), decoder.values.clone()
        stepped = [decoder.feed([token]) for token in ids[10:]]
        size = keys.shape[2] + len(ids)
        grown = [torch.zeros(*keys.shape[:2], size, keys.shape[3]) for _ in range(2)]
        grown[0][:, :, :10], grown[1][:, :, :10] = keys[:, :, :10], values[:, :, :10]
        plain = _plain_steps(portable.int8_llama, grown[0], grown[1], 10, ids[10:])
    assert len(stepped) == len(plain) == 14
    assert all(torch.equal(a, b) for a, b in zip(stepped, plain))
