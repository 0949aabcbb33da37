"""Write beside an adapter the tokens it writes tune bodies in, for the ort path's fast output layer.

    tunesmith finetune body-tokens --adapter models/tunesmith-smollm2-135m [--data data/build]

The tunes are the answers of the training data's compose and edit examples (``train.jsonl``),
split into tokens by the adapter's tokenizer as training split them
(``agent.sampler.body_vocabulary``); the ids go to ``body_tokens.json`` in the adapter's folder
(``agent.model.write_body_tokens``). ``tunesmith finetune train`` writes the file with every
adapter it saves; this stage writes it for an adapter trained before.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

LOG = logging.getLogger("tunesmith.body_tokens")
#: the tasks whose answers are whole tunes (a lyrics answer is words)
TUNE_TASKS = ("compose", "edit")


@dataclass
class BodyTokensConfig:
    """Which adapter, learnt from which data."""

    adapter: str = field(default="models/tunesmith-smollm2-135m",
                         metadata={"help": "the adapter folder (its tokenizer is used; the file is written there)"})
    data: str = field(default="data/build", metadata={"help": "built training data (train.jsonl)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for item in dataclasses.fields(BodyTokensConfig):
        parser.add_argument(f"--{item.name.replace('_', '-')}", default=item.default,
                            help=item.metadata["help"])


def config_from_args(args: argparse.Namespace) -> BodyTokensConfig:
    return BodyTokensConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BodyTokensConfig)})


def answer_tunes(records: Iterable[dict[str, Any]]) -> list[str]:
    """The tunes the model learns to write: the answers of compose and edit examples (of a
    record without a task, an answer with a ``K:`` line).

    >>> answer_tunes([{"task": "compose", "messages": [{"role": "assistant", "content": "K:C\\nC|"}]},
    ...               {"task": "lyrics", "messages": [{"role": "assistant", "content": "la la"}]},
    ...               {"messages": [{"role": "assistant", "content": "X:1\\nK:G\\nG|"}]}])
    ['K:C\\nC|', 'X:1\\nK:G\\nG|']
    """
    tunes = []
    for record in records:
        answer = record["messages"][-1]["content"]
        task = record.get("task")
        if task in TUNE_TASKS or (task is None and (answer.startswith("K:") or "\nK:" in answer)):
            tunes.append(answer)
    return tunes


def write_for_adapter(folder: str | Path, tokenizer: Any, records: Iterable[dict[str, Any]]) -> Path:
    """Write ``folder``'s ``body_tokens.json`` from the training ``records``; the file's path."""
    from agent.model import write_body_tokens
    from agent.sampler import body_vocabulary

    tunes = answer_tunes(records)
    return write_body_tokens(folder, body_vocabulary(tokenizer, tunes), len(tunes))


def run(config: BodyTokensConfig) -> int:
    from agent.tokenizer import FastTokenizer

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = Path(config.data) / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the data first (tunesmith finetune data)")
    with path.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    written = write_for_adapter(config.adapter, FastTokenizer.from_folder(config.adapter), records)
    kept = json.loads(written.read_text(encoding="utf-8"))
    LOG.info("%d body tokens from %d training tunes written to %s", len(kept["ids"]), kept["tunes"], written)
    return 0
