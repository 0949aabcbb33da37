"""Write beside an adapter the tokens it writes tune bodies in, for the ort path's fast output layer.

    tunesmith finetune body-tokens --adapter models/tunesmith-smollm2-135m [--data data/build]

The tunes are the answers of the training data's compose and edit examples (``train.jsonl``),
split into tokens by the adapter's tokenizer as training split them
(``agent.sampler.body_vocabulary``); the ids go to ``body_tokens.json`` in the adapter's folder
(``agent.model.write_body_tokens``), with the pairs of tokens most often followed by one token
(:func:`common_follows`: the composer's guesses where a tune has none of its own yet).
``tunesmith finetune train`` writes the file with every adapter it saves; this stage writes it
for an adapter trained before.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

LOG = logging.getLogger("tunesmith.body_tokens")
#: the tasks whose answers are whole tunes (a lyrics answer is words)
TUNE_TASKS = ("compose", "edit")
#: a pair of tokens must come this often, and one token after it this share of the time, for
#: the composer to guess that token there (agent.compose: 50% of such guesses were right on the
#: whole suite's tunes, where the tune itself had no guess yet)
FOLLOW_LEAST, FOLLOW_SHARE = 5, 0.5


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


def common_follows(bodies: Iterable[Sequence[int]], least: int = FOLLOW_LEAST,
                   share: float = FOLLOW_SHARE) -> list[tuple[int, int, int]]:
    """``(a, b, c)``: after the tokens ``a, b``, at least ``least`` times in ``bodies``, the
    token ``c`` came at least ``share`` of the time (the composer guesses it there).

    >>> common_follows([[1, 2, 3], [1, 2, 3], [1, 2, 4], [5, 6, 7]], least=3, share=0.6)
    [(1, 2, 3)]
    """
    after: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for body in bodies:
        for a, b, c in zip(body, body[1:], body[2:]):
            after[(a, b)][c] += 1
    follows = []
    for (a, b), counts in sorted(after.items()):
        total = sum(counts.values())
        token, count = counts.most_common(1)[0]
        if total >= least and count >= share * total:
            follows.append((a, b, token))
    return follows


@dataclass(frozen=True)
class BodyTokens:
    """What ``body_tokens.json`` keeps: the body vocabulary, how many tunes it was learnt
    from, and the common follows."""

    ids: list[int]
    tunes: int
    follows: list[tuple[int, int, int]]

    def write(self, folder: str | Path) -> Path:
        """Keep these in ``folder`` (``agent.model.write_body_tokens``); the file's path."""
        from agent.model import write_body_tokens

        return write_body_tokens(folder, self.ids, self.tunes, self.follows)


def learn_body_tokens(tokenizer: Any, records: Iterable[dict[str, Any]]) -> BodyTokens:
    """The body vocabulary and the common follows of the training ``records``' tunes, each
    tune split into tokens once."""
    from agent.sampler import body_token_lists, body_vocabulary

    tunes = answer_tunes(records)
    bodies = body_token_lists(tokenizer, tunes)
    return BodyTokens(body_vocabulary(tokenizer, bodies), len(tunes), common_follows(bodies))


def run(config: BodyTokensConfig) -> int:
    from agent.tokenizer import FastTokenizer

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = Path(config.data) / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build the data first (tunesmith finetune data)")
    with path.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    learnt = learn_body_tokens(FastTokenizer.from_folder(config.adapter), records)
    written = learnt.write(config.adapter)
    LOG.info("%d body tokens and %d common follows from %d training tunes written to %s",
             len(learnt.ids), len(learnt.follows), learnt.tunes, written)
    return 0
