"""Measure an adapter's activation ranges, so the portable path can decode with int8 products.

    tunesmith finetune calibrate --adapter models/tunesmith-smollm2-135m [--data data/build]
                                 [--tunes 16] [--check 6] [--alphas 0.4,0.5,0.6]

The merged model (float32) reads ``--tunes`` training examples, and the largest |input| of every
product's input channels is written beside the adapter (``agent.activation_ranges``). With
``--check N`` the portable path is then loaded both ways and the loss per answer token compared
on the first N validation compose examples, fed as decoding feeds them: the request and the
header whole, then the answer one token at a time (the int8 kernels serve only one-token steps).
With ``--alphas`` each smoothing strength is first scored on training examples held out of the
calibration, and the best is reported (the shipped default is ``SmoothingConfig.alpha``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from agent.activation_ranges import RANGES_FILE, SmoothingConfig, record_ranges, save_ranges
from agent.model import SMOOTHED_INT8

LOG = logging.getLogger("tunesmith.calibrate")


@dataclass
class CalibrateConfig:
    """What to calibrate on, and what to check afterwards."""

    adapter: str = field(default="models/tunesmith-smollm2-135m",
                         metadata={"help": "the adapter folder; the ranges are written into it"})
    base: str = field(default="smollm2-135m", metadata={"help": "the base the adapter was trained on"})
    data: str = field(default="data/build", metadata={"help": "built training data (train/valid.jsonl)"})
    tunes: int = field(default=16, metadata={"help": "training examples the ranges are measured on"})
    check: int = field(default=6, metadata={"help": "validation compose examples for the loss check (0: none)"})
    alphas: str = field(default="", metadata={"help": "comma-separated smoothing strengths to score on "
                                                      "held-out training examples (empty: none)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 means one per core"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for item in dataclasses.fields(CalibrateConfig):
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=type(item.default),
                            default=item.default, help=item.metadata["help"])


def config_from_args(args: argparse.Namespace) -> CalibrateConfig:
    return CalibrateConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CalibrateConfig)})


def read_examples(data: str | Path, split: str, count: int, task: str | None = None,
                  skip: int = 0) -> list[dict[str, Any]]:
    """The first ``count`` examples of ``split`` (after ``skip``), of one ``task`` or any.

    >>> read_examples("/nonexistent", "train", 1)
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/train.jsonl is missing: build the data first (tunesmith finetune data)
    """
    path = Path(data) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the data first (tunesmith finetune data)")
    found: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            example = json.loads(line)
            if task is None or example["task"] == task:
                found.append(example)
                if len(found) >= skip + count:
                    break
    return found[skip:]


def decoding_loss(loaded: Any, examples: Sequence[dict[str, Any]]) -> float:
    """Mean cross-entropy per answer token, with the examples fed as the composer feeds them:
    everything before the answer at once, then the answer one token at a time."""
    import torch
    import torch.nn.functional as F

    from agent.prompts import training_ids
    from agent.step_decoder import open_decoder

    total, count = 0.0, 0
    for example in examples:
        ids, labels = training_ids(loaded.tokenizer, example["messages"], example["prefill"])
        start = next(i for i, label in enumerate(labels) if label != -100)  # first answer token
        with torch.inference_mode():
            decoder = open_decoder(loaded, len(ids))
            logits = [decoder.feed(ids[:start])]
            logits += [decoder.feed([token]) for token in ids[start:-1]]
        targets = torch.tensor(labels[start:])
        total += float(F.cross_entropy(torch.stack(logits), targets, ignore_index=-100, reduction="sum"))
        count += int((targets != -100).sum())
    return total / count


def _load(config: CalibrateConfig, path: str, **settings: Any) -> Any:
    from agent.model import ModelConfig, load_model

    return load_model(ModelConfig(base=config.base, adapter=config.adapter, cpu_path=path,
                                  threads=config.threads, **settings))


def _sequences(loaded: Any, examples: Sequence[dict[str, Any]]) -> list[list[int]]:
    from agent.prompts import training_ids

    return [training_ids(loaded.tokenizer, e["messages"], e["prefill"])[0] for e in examples]


def _with_alpha(loaded: Any, ranges: dict[str, Any], alpha: float) -> Any:
    """``loaded`` (the portable path) with its step weights rebuilt at smoothing ``alpha``."""
    from agent.step_decoder import step_weights_from_state

    model = loaded.model
    weights = step_weights_from_state(model.state_dict(), model.config.to_dict(), "portable", ranges,
                                      SmoothingConfig(alpha=alpha))
    return dataclasses.replace(loaded, int8_llama=weights)


def run(config: CalibrateConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    reference = _load(config, "float32")
    training = read_examples(config.data, "train", config.tunes)
    ranges = record_ranges(reference.int8_llama, _sequences(reference, training), progress=True)
    path = save_ranges(ranges, config.adapter)
    LOG.info("activation ranges of %d products from %d training examples written to %s (%.0f s)",
             len(ranges), len(training), path, time.perf_counter() - started)
    if config.alphas:
        held_out = read_examples(config.data, "train", 6, task="compose", skip=config.tunes)
        portable = _load(config, "portable")
        float16 = decoding_loss(portable, held_out)
        for alpha in (float(a) for a in config.alphas.split(",")):
            loss = decoding_loss(_with_alpha(portable, ranges, alpha), held_out)
            LOG.info("alpha %.2f: %.4f nats per token on %d held-out training tunes (float16 %.4f, %+.4f)",
                     alpha, loss, len(held_out), float16, loss - float16)
    if config.check:
        validation = read_examples(config.data, "valid", config.check, task="compose")
        rows = {"float32": decoding_loss(reference, validation)}
        rows["portable, float16"] = decoding_loss(_load(config, "portable"), validation)
        steps = _load(config, "portable", smoothed_int8=True)
        if steps.quantize != SMOOTHED_INT8:
            LOG.error("the portable path did not take the smoothed int8 weights: see the log above")
            return 1
        rows["portable, smoothed int8"] = decoding_loss(steps, validation)
        for name, loss in rows.items():
            LOG.info("%-24s %.4f nats per answer token (%+.4f against float32), %d validation tunes",
                     name, loss, loss - rows["float32"], len(validation))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(config_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["CalibrateConfig", "RANGES_FILE", "decoding_loss", "read_examples", "run"]
