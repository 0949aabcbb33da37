"""Tests of finetune/train.py on a tiny llama built in the test (no weights needed).

The chats are real O'Neill tunes from music21's corpus, in the format ``finetune/data.py`` writes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent.errors import InputError, ModelError
from agent.model import ModelConfig, load_model
from agent.prompts import compose_messages, training_ids
from finetune.train import (
    TrainConfig,
    add_arguments,
    checkpoints,
    collate,
    config_from_args,
    main,
    recover_dirs,
    replace_dir,
    train,
)
from test_model import corpus_tunes, make_tiny_base


def chat_record(number: int, tune: str) -> dict:
    """One training chat: the request, and the tune with its header as the prefill."""
    header, body = tune.split("\nK:", 1)
    key, body = body.split("\n", 1)
    prefill = f"{header}\nK:{key}\n"
    title = next((line[2:].strip() for line in tune.splitlines() if line.startswith("T:")), "a tune")
    messages = compose_messages(f"an Irish air called {title}")
    messages.append({"role": "assistant", "content": prefill + body})
    return {"id": f"oneills-{number}", "messages": messages, "prefill": prefill}


def write_split(folder: Path, tunes: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", tunes[:16]), ("valid", tunes[16:20]), ("test", tunes[20:22])):
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            for number, tune in enumerate(part):
                out.write(json.dumps(chat_record(number, tune)) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(base folder, data folder)."""
    root = tmp_path_factory.mktemp("train")
    return make_tiny_base(root / "base"), write_split(root / "data", corpus_tunes(22))


def settings(tiny, out: Path, **overrides) -> TrainConfig:
    base, data = tiny
    values = dict(
        base=str(base), data=str(data), out=str(out), rank=4, alpha=16, dropout=0.1, lr=1e-2, warmup_steps=2,
        batch_size=2, max_length=512, max_steps=12, log_interval=1, eval_interval=4, eval_batches=0,
        checkpoint_minutes=60, threads=1, device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def train_losses(result) -> list[float]:
    return [h["train_loss"] for h in result.progress.history if "train_loss" in h]


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_loss_is_taken_after_the_prefill_only(tiny):
    base, data = tiny
    tokenizer = load_model(ModelConfig(base=str(base))).tokenizer
    record = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    ids, labels = training_ids(tokenizer, record["messages"], record["prefill"])
    targets = [token for token in labels if token != -100]
    answer = record["messages"][-1]["content"]
    assert tokenizer.decode(targets) == answer[len(record["prefill"]):] + "<|im_end|>"
    assert labels[: len(ids) - len(targets)] == [-100] * (len(ids) - len(targets))


def test_packed_examples_do_not_see_each_other(tiny):
    import torch

    base, data = tiny
    loaded = load_model(ModelConfig(base=str(base), dtype="float32"))  # as training runs it
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()[:2]]
    examples = [training_ids(loaded.tokenizer, r["messages"], r["prefill"]) for r in records]
    packed = collate(examples, [[0, 1]], pad_id=0)
    together = loaded.model(
        input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
    ).logits[0]
    first = len(examples[0][0])
    for ids, part in ((examples[0][0], together[:first]), (examples[1][0], together[first:])):
        alone = loaded.model(input_ids=torch.tensor([ids])).logits[0]
        assert torch.allclose(alone, part, atol=1e-5)


def test_loss_falls_and_adapters_are_saved(tiny, tmp_path):
    result = train(settings(tiny, tmp_path / "run", max_steps=24, eval_interval=8))
    losses = train_losses(result)
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses
    vals = [h["val_loss"] for h in result.progress.history if "val_loss" in h]
    assert len(vals) == 3 and vals[-1] < vals[0]
    for name in ("best", "final"):
        folder = tmp_path / "run" / name
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md",
                "body_tokens.json"} <= {p.name for p in folder.iterdir()}
        assert json.loads((folder / "body_tokens.json").read_text())["tunes"] > 0
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    assert "split hash" in card and f"{result.progress.best_val:.4f}" in card
    log = (tmp_path / "run" / "train.log").read_text()
    assert "step 24 | loss" in log and "tok/s" in log and "eval step 24" in log
    assert json.loads((tmp_path / "run" / "config.json").read_text())["rank"] == 4


def test_resumed_run_equals_an_uninterrupted_one(tiny, tmp_path):
    import torch

    straight = train(settings(tiny, tmp_path / "straight"))
    first_half = train(settings(tiny, tmp_path / "split"), stop_after=5)
    assert first_half.stopped_early and first_half.progress.step == 5
    assert [p.name for p in checkpoints(tmp_path / "split")] == ["checkpoint-5"]
    second_half = train(settings(tiny, tmp_path / "split"))  # resumes from the checkpoint by itself
    # the checkpoint carries the history, so the resumed run reports all twelve steps
    assert train_losses(first_half) == train_losses(straight)[:5]
    assert train_losses(second_half) == train_losses(straight)
    assert second_half.progress.best_val == straight.progress.best_val
    a, b = adapter_weights(tmp_path / "straight" / "final"), adapter_weights(tmp_path / "split" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings_or_data(tiny, tmp_path):
    train(settings(tiny, tmp_path / "run"), stop_after=2)
    with pytest.raises(InputError, match=r"changed settings \(rank\)"):
        train(settings(tiny, tmp_path / "run", rank=8))
    other_data = write_split(tmp_path / "other", corpus_tunes(26)[4:])
    with pytest.raises(InputError, match="trained on other data"):
        train(settings(tiny, tmp_path / "run", data=str(other_data)))
    with pytest.raises(InputError, match="no checkpoint"):
        train(settings(tiny, tmp_path / "empty", resume="latest"))


def test_warm_start_continues_from_a_saved_adapter(tiny, tmp_path):
    """With no checkpoint left (a new machine), a run continues from best/ and its progress.json."""
    straight = train(settings(tiny, tmp_path / "straight", eval_interval=6))
    first = train(settings(tiny, tmp_path / "first", eval_interval=6), stop_after=6)
    saved = json.loads((tmp_path / "first" / "best" / "progress.json").read_text())
    assert saved["progress"]["step"] == 6 and saved["data_hash"]
    warm = train(settings(tiny, tmp_path / "second", eval_interval=6, warm_start=str(tmp_path / "first" / "best")))
    assert warm.progress.step == 12 and warm.progress.warm_start_step == 6
    # the same data position as an unbroken run, and the earlier losses carried over
    assert warm.progress.batch_in_epoch == straight.progress.batch_in_epoch
    assert train_losses(warm)[:6] == train_losses(first)
    # the adapter's weights came along: its first step beats the first step of a fresh start
    assert train_losses(warm)[6] < 0.8 * train_losses(straight)[0]
    # the learning rate warms up again over warmup_steps=2, then follows the unbroken run's schedule
    def logged_lrs(run: str) -> list[float]:
        log = (tmp_path / run / "train.log").read_text()
        return [float(line.split("| lr ")[1].split(" ")[0]) for line in log.splitlines() if "| lr " in line]

    assert "warm start from" in (tmp_path / "second" / "train.log").read_text()
    warm_lrs, straight_lrs = logged_lrs("second"), logged_lrs("straight")[6:]
    assert warm_lrs[0] < warm_lrs[1] and warm_lrs[0] < straight_lrs[0]
    assert warm_lrs[2:] == straight_lrs[2:]


def test_warm_start_refuses_other_settings_or_a_folder_without_progress(tiny, tmp_path):
    train(settings(tiny, tmp_path / "first", eval_interval=2), stop_after=2)
    best = tmp_path / "first" / "best"
    with pytest.raises(InputError, match=r"changed settings \(rank\)"):
        train(settings(tiny, tmp_path / "second", rank=8, warm_start=str(best)))
    # rebuilt data: allowed (the weights are what counts); the best loss is measured afresh
    other_data = write_split(tmp_path / "other", corpus_tunes(26)[4:])
    train(settings(tiny, tmp_path / "rebuilt", data=str(other_data), eval_interval=2, warm_start=str(best)),
          stop_after=4)
    assert "measured afresh" in (tmp_path / "rebuilt" / "train.log").read_text()
    assert json.loads((tmp_path / "rebuilt" / "best" / "progress.json").read_text())["progress"]["step"] == 4
    (best / "progress.json").unlink()
    with pytest.raises(InputError, match="no progress.json"):
        train(settings(tiny, tmp_path / "third", warm_start=str(best)))


def test_adapter_loads_back_with_the_same_logits(tiny, tmp_path):
    import torch

    base, _ = tiny
    result = train(settings(tiny, tmp_path / "run", max_steps=6))
    trained = result.model.eval()
    adapter = str(tmp_path / "run" / "final")
    loaded = load_model(ModelConfig(base=str(base), adapter=adapter, dtype="float32"))
    merged = load_model(ModelConfig(base=str(base), adapter=adapter, merge_adapter=True, dtype="float32"))
    bare = load_model(ModelConfig(base=str(base), dtype="float32"))
    ids = torch.tensor([loaded.tokenizer.encode("X:1\nT:Test\nM:6/8\nK:G\nGAB d2e|")])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
    assert torch.equal(loaded.model(ids).logits, expected)
    assert torch.allclose(merged.model(ids).logits, expected, atol=1e-5)
    assert not torch.allclose(bare.model(ids).logits, expected, atol=1e-3)


def test_bfloat16_on_cpu_merges_the_adapter_in_float32_first(tiny, tmp_path):
    import torch

    from agent.model import cpu_has_bfloat16

    base, _ = tiny
    train(settings(tiny, tmp_path / "run", max_steps=6))
    adapter = str(tmp_path / "run" / "final")
    exact = load_model(ModelConfig(base=str(base), adapter=adapter, merge_adapter=True, dtype="float32"))
    half = load_model(ModelConfig(base=str(base), adapter=adapter, dtype="bfloat16"))
    assert half.dtype == "bfloat16" and exact.dtype == "float32"
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    assert not hasattr(half.model, "peft_config")  # merged: no LoRA layers left to run
    ids = torch.tensor([exact.tokenizer.encode("X:1\nT:Test\nM:6/8\nK:G\nGAB d2e|")])
    with torch.no_grad():
        want, got = exact.model(ids).logits, half.model(ids).logits.float()
    assert (got - want).abs().max() < 0.02 * want.abs().max()
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
    auto = load_model(ModelConfig(base=str(base), adapter=adapter))
    assert auto.dtype == ("bfloat16" if cpu_has_bfloat16() else "float32")
    int8 = load_model(ModelConfig(base=str(base), adapter=adapter, quantize="int8-dynamic"))
    assert int8.dtype == "float32"


def test_adapter_on_another_base_is_refused(tiny, tmp_path):
    train(settings(tiny, tmp_path / "run", max_steps=1))
    other = make_tiny_base(tmp_path / "other-base", seed=1)
    with pytest.raises(ModelError, match="was trained on base"):
        load_model(ModelConfig(base=str(other), adapter=str(tmp_path / "run" / "final")))


def test_freezing_lower_layers_puts_lora_only_above(tiny, tmp_path):
    result = train(settings(tiny, tmp_path / "run", max_steps=1, freeze_layers=1, target_modules="q_proj,v_proj"))
    names = [name for name, p in result.model.named_parameters() if p.requires_grad]
    assert names and all(".layers.1." in name for name in names)
    assert {name.split(".")[-4] for name in names} == {"q_proj", "v_proj"}
    every = train(settings(tiny, tmp_path / "all", max_steps=1, freeze_layers=1, target_modules="all-linear"))
    names = [name for name, p in every.model.named_parameters() if p.requires_grad]
    assert all(".layers.1." in name for name in names)
    assert {name.split(".")[-4] for name in names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_bucketing_trains_on_the_same_examples(tiny, tmp_path):
    result = train(settings(tiny, tmp_path / "run", packing="bucket", max_steps=0, epochs=1))
    assert result.progress.step == 8  # 16 examples, 2 per micro-batch
    assert result.progress.tokens == train(settings(tiny, tmp_path / "packed", max_steps=0, epochs=1)).progress.tokens


def test_settings_from_file_then_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"rank": 8, "lr": 5e-4, "qlora": False}))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--config", str(path), "--lr", "1e-3", "--no-qlora", "--resume"]))
    assert (config.rank, config.lr, config.qlora, config.resume) == (8, 1e-3, False, "latest")
    assert TrainConfig(**json.loads(json.dumps(config.to_dict()))) == config
    path.write_text(json.dumps({"rnk": 8}))
    with pytest.raises(InputError, match="unknown settings.*rnk"):
        config_from_args(parser.parse_args(["--config", str(path)]))


def test_qlora_on_cpu_is_a_clear_error(tiny, tmp_path):
    assert main(["--base", str(tiny[0]), "--data", str(tiny[1]), "--out", str(tmp_path), "--qlora",
                 "--device", "cpu"]) == 2


def test_main_runs_from_the_command_line(tiny, tmp_path, capsys):
    code = main(["--base", str(tiny[0]), "--data", str(tiny[1]), "--out", str(tmp_path / "run"), "--max-steps", "2",
                 "--eval-interval", "1", "--threads", "1", "--rank", "2", "--device", "cpu"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2


def test_killed_while_replacing_a_folder_recovers(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "weights").write_text("old")
    (tmp_path / ".best.tmp").mkdir()
    (tmp_path / ".best.tmp" / "weights").write_text("new")
    replace_dir(tmp_path / ".best.tmp", tmp_path / "best")
    assert (tmp_path / "best" / "weights").read_text() == "new"
    # the moment between moving the old folder aside and renaming the new one into place
    (tmp_path / "best").rename(tmp_path / ".best.old")
    (tmp_path / ".checkpoint-7.tmp").mkdir()
    recover_dirs(tmp_path)
    assert (tmp_path / "best" / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


@pytest.mark.slow
def test_two_steps_on_smollm2_give_an_adapter_that_loads_back(tiny, tmp_path):
    import torch

    _, data = tiny
    config = TrainConfig(base="smollm2-135m", data=str(data), out=str(tmp_path / "run"), max_steps=2, batch_size=1,
                         eval_batches=1, log_interval=1, device="cpu")
    result = train(config)
    assert result.progress.step == 2 and all(loss < 10 for loss in train_losses(result))
    adapter = json.loads((tmp_path / "run" / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2-135m"
    loaded = load_model(ModelConfig(base="smollm2-135m", adapter=str(tmp_path / "run" / "final"),
                                    dtype="float32"))
    ids = torch.tensor([loaded.tokenizer.encode("X:1\nM:6/8\nK:G\nGAB")])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, result.model.eval()(input_ids=ids).logits)
