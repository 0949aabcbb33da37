"""The fast start of a cached CPU path: the compact decoder's weights read straight from the
weight cache and the tokenizer from its files, with transformers neither imported nor built
until something asks for its model. Everything here must give what the ordinary load gives."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.model import ModelConfig, load_model, load_tokenizer, prepare_base
from agent.prompts import chat_prompt_ids, compose_messages, end_of_turn_text, stop_token_ids
from agent.tokenizer import FastTokenizer
from test_model import make_tiny_base

ROOT = Path(__file__).resolve().parents[1]
TUNES = sorted((ROOT / "tests" / "data" / "abc").glob("*.abc"))[:12]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_base(tmp_path_factory.mktemp("fast-start-base"))


@pytest.fixture(scope="module")
def real_tokenizers():
    """The shipped base's tokenizer both ways: transformers' and the fast start's."""
    config = ModelConfig()
    return load_tokenizer(config), FastTokenizer.from_folder(prepare_base(config))


def test_the_fast_tokenizer_gives_transformers_ids_and_texts(real_tokenizers):
    slow, fast = real_tokenizers
    tunes = [path.read_text(encoding="utf-8") for path in TUNES]
    assert tunes, "corpus tunes expected in tests/data/abc"
    for tune in tunes + ["w: ov-er the hills ☃ é 1984", ""]:
        assert fast.encode(tune, add_special_tokens=False) == slow.encode(tune, add_special_tokens=False)
        assert fast.encode(tune) == slow.encode(tune)
    for request in ("a sad waltz in D minor", "write a song about the sea, with two verses"):
        messages = compose_messages(request)
        assert chat_prompt_ids(fast, messages, prefill="X:1\n") == chat_prompt_ids(slow, messages, prefill="X:1\n")
        for generation in (True, False):
            assert (fast.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)
                    == slow.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False))
    assert end_of_turn_text(fast) == end_of_turn_text(slow)
    assert stop_token_ids(fast) == stop_token_ids(slow)
    assert (fast.eos_token, fast.eos_token_id, fast.pad_token_id) == (slow.eos_token, slow.eos_token_id,
                                                                       slow.pad_token_id)
    assert fast.all_special_ids == slow.all_special_ids
    assert len(fast) == len(slow)
    every = [[index] for index in range(len(slow))]
    assert fast.batch_decode(every) == slow.batch_decode(every, clean_up_tokenization_spaces=False)
    ids = fast.encode(tunes[0])
    assert fast.decode(ids, skip_special_tokens=True) == slow.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("path", ["portable", "float32"])
def test_a_cached_path_starts_without_building_transformers_model(tiny_base, tmp_path, path):
    """The second load decodes from the cache alone; asking for ``model`` builds it then."""
    import torch

    from agent.step_decoder import open_decoder

    config = ModelConfig(base=str(tiny_base), cpu_path=path, cache_dir=str(tmp_path))
    first = load_model(config)
    second = load_model(config)
    assert isinstance(second.tokenizer, FastTokenizer)
    assert second.__dict__.get("_model") is None and second.build_model is not None
    ids = first.tokenizer.encode("X:1\nM:3/4\nK:D\nA2 d2 f2|")
    assert second.tokenizer.encode("X:1\nM:3/4\nK:D\nA2 d2 f2|") == ids
    with torch.inference_mode():
        assert torch.equal(open_decoder(second, 8).feed(ids, every=True),
                           open_decoder(first, 8).feed(ids, every=True))
        built = second.model  # built now, from the same cache
        assert not built.training and not any(p.requires_grad for p in built.parameters())
        assert torch.equal(built(torch.tensor([ids])).logits, first.model(torch.tensor([ids])).logits)
    assert second.end_token_ids == (json.loads((tiny_base / "config.json").read_text())["eos_token_id"],)


def test_a_cached_start_never_imports_transformers(tiny_base, tmp_path):
    """The point of the fast start, checked in a fresh process: load and decode a few tokens."""
    config = ModelConfig(base=str(tiny_base), cpu_path="portable", cache_dir=str(tmp_path))
    load_model(config)  # writes the cache
    script = (
        "import sys\n"
        "from agent.model import ModelConfig, load_model\n"
        "from agent.step_decoder import sample_continuations\n"
        f"loaded = load_model(ModelConfig(base={str(tiny_base)!r}, cpu_path='portable', "
        f"cache_dir={str(tmp_path)!r}))\n"
        "ids = loaded.tokenizer.encode('X:1\\nK:D\\n')\n"
        "rows = sample_continuations(loaded, ids, max_new_tokens=4, temperature=0)\n"
        "print(len(rows[0]), 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "False"]


def test_a_model_the_fast_start_cannot_read_takes_the_ordinary_load(tiny_base, tmp_path):
    """A scaled rotary embedding is not the compact decoder's: the cache is still used, through
    transformers' model."""
    import shutil

    scaled = tmp_path / "scaled-base"
    shutil.copytree(tiny_base, scaled)
    settings = json.loads((scaled / "config.json").read_text())
    settings["rope_parameters"] = {"rope_type": "linear", "factor": 2.0,
                                   "rope_theta": settings.get("rope_parameters", {}).get("rope_theta", 10000.0)}
    (scaled / "config.json").write_text(json.dumps(settings))
    config = ModelConfig(base=str(scaled), cpu_path="portable", cache_dir=str(tmp_path / "cache"))
    load_model(config)
    again = load_model(config)
    assert again.__dict__.get("_model") is not None and again.build_model is None
    assert not isinstance(again.tokenizer, FastTokenizer)
