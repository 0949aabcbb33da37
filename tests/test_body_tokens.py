"""Tests of the body vocabulary: agent.sampler.body_vocabulary and `tunesmith finetune body-tokens`.

The shipped adapter's tokenizer splits real O'Neill tunes; the vocabulary must hold every token
of their bodies as training split them, and nothing of their titles.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_model import corpus_tunes

from agent.conversation import DEFAULT_ADAPTER
from agent.decoding import BODY_CHARS
from agent.model import BODY_TOKENS_FILE, ModelConfig, read_body_follows, read_body_tokens
from agent.sampler import body_token_lists, body_vocabulary, token_table
from agent.tokenizer import FastTokenizer
from finetune.body_tokens import BodyTokensConfig, run


@pytest.fixture(scope="module")
def tokenizer():
    return FastTokenizer.from_folder(DEFAULT_ADAPTER)


def test_the_body_vocabulary_holds_every_body_token_and_no_title(tokenizer):
    tunes = corpus_tunes(30)
    ids = set(body_vocabulary(tokenizer, body_token_lists(tokenizer, tunes)))
    texts = token_table(tokenizer).texts
    for tune in tunes:  # the body's tokens as the whole tune splits (the first two may merge)
        body = tune[tune.index("\n", tune.index("\nK:") + 1) + 1:]
        inside = tokenizer.encode(tune, add_special_tokens=False)[-len(tokenizer.encode(body, add_special_tokens=False)) + 2:]
        assert {i for i in inside if texts[i] is not None} <= ids
    assert all(texts[i] is not None for i in ids)  # nothing that cannot stand in a body
    bodies = set()
    for tune in tunes:
        bodies.update(tokenizer.encode(tune[tune.index("\nK:"):], add_special_tokens=False))
    titles = {i for tune in tunes for line in tune.splitlines() if line.startswith("T:")
              for i in tokenizer.encode(line[2:], add_special_tokens=False)}
    words = {i for i in titles - bodies if texts[i] is not None and len(texts[i]) > 1}  # " Green"
    assert words and not words & ids, sorted(texts[i] for i in words & ids)
    for char in BODY_CHARS:  # one-character tokens: any body can be spelled
        single = tokenizer.encode(char, add_special_tokens=False)
        assert len(single) != 1 or single[0] in ids, repr(char)


def test_the_restricted_table_maps_positions_to_the_vocabulary(tokenizer):
    ids = body_vocabulary(tokenizer, body_token_lists(tokenizer, corpus_tunes(5)))
    whole, part = token_table(tokenizer), token_table(tokenizer, ids)
    assert part is token_table(tokenizer, ids)  # built once
    assert part.size == len(ids) and [part.texts[i] for i in range(len(ids))] == [whole.texts[i] for i in ids]


def test_the_shipped_adapter_lists_its_body_tokens():
    ids = read_body_tokens(ModelConfig(adapter=DEFAULT_ADAPTER), "/nonexistent")
    assert ids is not None and 300 < len(ids) < 2000


def test_the_stage_writes_the_file_beside_an_adapter(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(DEFAULT_ADAPTER) / name, adapter / name)
    tunes = corpus_tunes(3)
    records = [{"task": "compose", "messages": [{"role": "assistant", "content": tune}]} for tune in tunes]
    records.append({"task": "lyrics", "messages": [{"role": "assistant", "content": "Dublin Sheela"}]})
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run(BodyTokensConfig(adapter=str(adapter), data=str(data))) == 0
    kept = json.loads((adapter / BODY_TOKENS_FILE).read_text())
    assert kept["tunes"] == 3
    tokenizer = FastTokenizer.from_folder(adapter)
    assert kept["ids"] == body_vocabulary(tokenizer, body_token_lists(tokenizer, tunes))
    assert kept["follows"] and all(len(f) == 3 for f in kept["follows"])  # 3 tunes repeat their figures
    config = ModelConfig(adapter=str(adapter))
    assert read_body_follows(config, "/nonexistent") == {(a, b): c for a, b, c in kept["follows"]}
    with pytest.raises(FileNotFoundError, match="build the data first"):
        run(BodyTokensConfig(adapter=str(adapter), data=str(tmp_path / "none")))
