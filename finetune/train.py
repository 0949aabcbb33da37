"""LoRA fine-tuning of the composer model on the chats that ``finetune/data.py`` writes.

One file, read top to bottom: settings, data, the LoRA wrap, the loop, checkpoints, saving.

    tunesmith finetune train --data data/build --out runs/lora               # CPU, fp32
    tunesmith finetune train --config my-run.json --lr 5e-4                  # file, then flags
    tunesmith finetune train --device cuda --qlora --base HuggingFaceTB/SmolLM2-1.7B-Instruct
    accelerate launch -m finetune.train --device cuda ...                    # several GPUs
    torchrun --standalone --nproc-per-node 2 -m finetune.train --device cpu ... # several CPU processes

Data: ``DATA/train.jsonl`` and ``DATA/valid.jsonl``, one chat per line
(``{"id", "messages", "prefill"}``); the last message is the assistant's answer, which starts with
the prefill (the ABC header the agent writes itself). Token ids come from
:func:`agent.prompts.training_ids`, the same code that builds prompts at generation time; the loss
covers the answer after the prefill and the end-of-turn marker, nothing else.

Batches: examples are packed into rows of ``max_length`` tokens (position ids restart at each
example, so transformers keeps the examples from attending to each other), or, with
``--packing bucket``, grouped by length and padded.

Checkpoints (``OUT/checkpoint-STEP/``, every ``checkpoint_minutes`` and at the end) hold the
adapter, optimizer, scheduler, RNG states, step, data position, best validation loss, the config
and a hash of the data; they are written under a temporary name and renamed, so a machine killed
at any moment leaves the previous checkpoint intact. A run started again in the same ``OUT``
continues from the newest checkpoint and ends exactly where an uninterrupted run would have.
The best adapter by validation loss is kept in ``OUT/best/`` (PEFT format, with tokenizer and a
model card), the last one in ``OUT/final/``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from agent.errors import InputError, ModelError
from finetune.body_tokens import learn_body_tokens

# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

PACKING_CHOICES = ("pack", "bucket", "none")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are the CPU recipe for SmolLM2-135M."""

    # what to train on, where to write
    base: str = field(
        default="smollm2-135m",
        metadata={"help": "base model: smollm2-135m, gemma3-270m, a Hugging Face id or a local folder"},
    )
    data: str = field(default="data/build", metadata={"help": "folder with train.jsonl and valid.jsonl"})
    out: str = field(default="runs/lora", metadata={"help": "folder for checkpoints, logs and adapters"})
    cache_dir: str | None = field(
        default=None, metadata={"help": "cache of converted bases (default: $TUNESMITH_CACHE or ~/.cache/tunesmith)"}
    )
    # the adapter
    rank: int = field(default=16, metadata={"help": "LoRA rank r"})
    alpha: float = field(default=32.0, metadata={"help": "LoRA alpha; the update is scaled by alpha / rank"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: str = field(
        default="all-linear",
        metadata={"help": "comma-separated module names (q_proj,v_proj,...) or all-linear"},
    )
    freeze_layers: int = field(
        default=0,
        metadata={"help": "leave the lowest N decoder layers without LoRA (backward stops above them)"},
    )
    # optimisation
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "the cosine ends at lr * min_lr_ratio"})
    warmup_steps: int = field(default=30, metadata={"help": "optimizer steps of linear warm-up from 0"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on the LoRA weights"})
    grad_clip: float = field(default=1.0, metadata={"help": "clip the gradient norm to this; 0 = off"})
    batch_size: int = field(
        default=4,
        metadata={"help": "sequences per micro-batch (packed rows of max_length tokens, or examples)"},
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_length: int = field(
        default=512, metadata={"help": "longest sequence in tokens; longer examples are left out and counted"}
    )
    packing: str = field(
        default="pack",
        metadata={"help": "pack: several examples per row; bucket: one per row, grouped by length; none"},
    )
    epochs: float = field(default=1.0, metadata={"help": "passes over the training data (used when max_steps is 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps in all; 0 = from epochs"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward: less memory, ~30%% slower"}
    )
    # watching and saving
    log_interval: int = field(default=10, metadata={"help": "optimizer steps between log lines"})
    eval_interval: int = field(default=200, metadata={"help": "optimizer steps between validation runs"})
    eval_batches: int = field(default=20, metadata={"help": "validation micro-batches per run; 0 = all"})
    checkpoint_minutes: float = field(default=10.0, metadata={"help": "minutes between checkpoints"})
    keep_checkpoints: int = field(default=2, metadata={"help": "newest checkpoints kept on disk"})
    resume: str = field(
        default="auto",
        metadata={
            "help": "auto: continue from the newest checkpoint in --out if there is one; latest: the "
            "same, an error if there is none; or a checkpoint folder"
        },
    )
    warm_start: str | None = field(
        default=None,
        metadata={
            "help": "when --out holds no checkpoint: start from this saved adapter (best/, final/ or a "
            "shipped one with its progress.json) at the step, data position and schedule it reached; "
            "the optimizer's moments start afresh and the learning rate warms up again"
        },
    )
    eval_only: bool = field(default=False, metadata={"help": "only report the validation loss, then stop"})
    # where it runs
    seed: int = field(default=1234, metadata={"help": "seeds the LoRA initialisation, dropout and data order"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 = one per core"})
    device: str = field(default="auto", metadata={"help": "auto (cuda when present), cpu or cuda"})
    qlora: bool = field(
        default=False, metadata={"help": "CUDA only: load the base in 4-bit (bitsandbytes nf4), train LoRA on top"}
    )

    def __post_init__(self) -> None:
        if self.packing not in PACKING_CHOICES:
            raise InputError(f"packing must be one of {', '.join(PACKING_CHOICES)}, not {self.packing!r}")
        if self.device not in DEVICE_CHOICES:
            raise InputError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {self.device!r}")
        for name in ("rank", "batch_size", "grad_accum", "max_length", "log_interval", "eval_interval"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise InputError("give a positive number of epochs or max_steps")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings that may change between a checkpoint and its resumption without changing the result.
RESUMABLE_CHANGES = {
    "out", "data", "cache_dir", "log_interval", "eval_interval", "eval_batches",
    "checkpoint_minutes", "keep_checkpoints", "resume", "eval_only", "threads", "warm_start",
}

PROGRESS_FILE = "progress.json"  # written beside every saved adapter: where the run stood


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per :class:`TrainConfig` field, plus ``--config FILE.json``.

    Options left out keep the value from the file, else the default.
    """
    parser.add_argument("--config", type=Path, default=None, help="JSON file of settings; flags override it")
    for item in dataclasses.fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        helptext = item.metadata.get("help", "") + f" (default: {item.default})"
        if item.name == "resume":
            parser.add_argument(flag, nargs="?", const="latest", default=argparse.SUPPRESS, help=helptext)
        elif item.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=helptext)
        else:
            kind = {"int": int, "float": float}.get(str(item.type), str)
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=helptext)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the ``--config`` file, then the flags given.

    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> config_from_args(parser.parse_args(["--lr", "5e-4", "--qlora"])).lr
    0.0005
    >>> config_from_args(parser.parse_args(["--packing", "tight"]))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: packing must be one of pack, bucket, none, not 'tight'
    """
    names = {item.name for item in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        try:
            from_file = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read config file {args.config}: {exc}") from None
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise InputError(f"unknown settings in {args.config}: {', '.join(unknown)}")
        values.update(from_file)
    values.update({name: value for name, value in vars(args).items() if name in names})
    return TrainConfig(**values)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The chats in one split file, checked for the fields training needs."""
    if not path.is_file():
        raise InputError(f"training data {path} not found (build it with: tunesmith finetune data)")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                messages, prefill = record["messages"], record.get("prefill", "")
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{number}: not a chat record with 'messages'") from None
            if not messages or messages[-1].get("role") != "assistant":
                raise InputError(f"{path}:{number}: the last message must be the assistant's answer")
            if not messages[-1]["content"].startswith(prefill):
                raise InputError(f"{path}:{number}: the answer does not start with the prefill")
            records.append(record)
    if not records:
        raise InputError(f"{path} holds no examples")
    return records


def split_hash(data_dir: Path) -> str:
    """A short hash of the training and validation files: what a checkpoint was trained on.

    >>> split_hash(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: training data /nonexistent/train.jsonl not found (build it with: tunesmith finetune data)
    """
    digest = hashlib.sha256()
    for name in ("train.jsonl", "valid.jsonl"):
        path = data_dir / name
        if not path.is_file():
            raise InputError(f"training data {path} not found (build it with: tunesmith finetune data)")
        digest.update(name.encode())
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


Encoded = tuple[list[int], list[int]]  # input ids, labels (-100 where no loss is taken)


def encode_records(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> tuple[list[Encoded], int]:
    """Token ids and labels of each chat; examples longer than ``max_length`` are left out.

    Returns the examples kept and how many were left out.
    """
    from tqdm import tqdm

    from agent.prompts import training_ids

    kept, too_long = [], 0
    for record in tqdm(records, desc="tokenizing", unit="ex", leave=False, mininterval=2):
        ids, labels = training_ids(tokenizer, record["messages"], record.get("prefill", ""))
        if len(ids) > max_length:
            too_long += 1
            continue
        kept.append((ids, labels))
    return kept, too_long


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Group example indices into rows of at most ``capacity`` tokens (best fit, longest first).

    >>> pack_rows([5, 3, 4, 2, 6], capacity=8)
    [[4, 3], [0, 1], [2]]
    >>> pack_rows([9], capacity=8)
    Traceback (most recent call last):
    ...
    ValueError: example 0 has 9 tokens, more than a row of 8
    """
    import bisect

    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row number), sorted
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        size = lengths[index]
        if size > capacity:
            raise ValueError(f"example {index} has {size} tokens, more than a row of {capacity}")
        spot = bisect.bisect_left(free, (size, -1))
        if spot == len(free):
            rows.append([index])
            room, row = capacity - size, len(rows) - 1
        else:
            room, row = free.pop(spot)
            rows[row].append(index)
            room -= size
        if room > 0:
            bisect.insort(free, (room, row))
    return rows


def plan_items(examples: list[Encoded], config: TrainConfig) -> list[list[int]]:
    """The sequences a batch is made of, each a list of example indices (one, unless packing)."""
    if config.packing == "pack":
        return pack_rows([len(ids) for ids, _ in examples], config.max_length)
    return [[index] for index in range(len(examples))]


def epoch_batches(items: list[list[int]], examples: list[Encoded], config: TrainConfig, epoch: int) -> list[list[int]]:
    """The micro-batches of one epoch, as lists of item indices; a pure function of the seed
    and the epoch, so a resumed run sees the same order.

    >>> config = TrainConfig(batch_size=2, packing="none")
    >>> examples = [([1] * n, [1] * n) for n in (3, 9, 4, 8)]
    >>> items = plan_items(examples, config)
    >>> epoch_batches(items, examples, config, 0) == epoch_batches(items, examples, config, 0)
    True
    >>> sorted(sum(epoch_batches(items, examples, config, 1), []))
    [0, 1, 2, 3]
    """
    rng = random.Random(config.seed * 1_000_003 + epoch)
    order = list(range(len(items)))
    rng.shuffle(order)
    if config.packing == "bucket":
        # Sort within windows of 50 batches so each batch holds examples of similar length.
        window = 50 * config.batch_size
        size = lambda i: sum(len(examples[e][0]) for e in items[i])  # noqa: E731
        order = [i for start in range(0, len(order), window) for i in sorted(order[start:start + window], key=size)]
    batches = [order[start:start + config.batch_size] for start in range(0, len(order), config.batch_size)]
    if config.packing == "bucket":
        rng.shuffle(batches)
    return batches


def validation_batches(items: list[list[int]], config: TrainConfig) -> list[list[int]]:
    """A fixed sample of validation micro-batches, the same at every evaluation."""
    order = list(range(len(items)))
    random.Random(config.seed).shuffle(order)
    batches = [order[start:start + config.batch_size] for start in range(0, len(order), config.batch_size)]
    return batches[: config.eval_batches] if config.eval_batches else batches


class FixedBatches:
    """A batch sampler that yields a given list of batches (what :func:`epoch_batches` made)."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def collate(examples: list[Encoded], batch: list[list[int]], pad_id: int) -> dict[str, Any]:
    """Tensors for one micro-batch, given as rows of example indices. Each row concatenates its
    examples; position ids restart at each example, which tells transformers to keep them apart;
    labels are already shifted (``labels[t]`` is the token that should follow ``input_ids[t]``).

    >>> examples = [([5, 6, 7], [-100, 6, 7]), ([8, 9], [-100, 9]), ([4], [4])]
    >>> out = collate(examples, [[0, 1], [2]], pad_id=0)
    >>> out["input_ids"].tolist(), out["position_ids"].tolist()
    ([[5, 6, 7, 8, 9], [4, 0, 0, 0, 0]], [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]])
    >>> out["labels"].tolist(), out["tokens"]
    ([[6, 7, -100, 9, -100], [-100, -100, -100, -100, -100]], 6)
    >>> collate(examples, [], pad_id=0)
    Traceback (most recent call last):
    ...
    ValueError: an empty micro-batch
    """
    import torch

    if not batch:
        raise ValueError("an empty micro-batch")
    rows = []
    for row in batch:
        ids, positions, labels = [], [], []
        for index in row:
            example_ids, example_labels = examples[index]
            ids += example_ids
            positions += range(len(example_ids))
            labels += example_labels[1:] + [-100]
        rows.append((ids, positions, labels))
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for row, (ids, positions, targets) in enumerate(rows):
        size = len(ids)
        input_ids[row, :size] = torch.tensor(ids)
        # padding continues the last example's positions, so it forms no example of its own
        position_ids[row] = torch.arange(width) - size + positions[-1] + 1
        position_ids[row, :size] = torch.tensor(positions)
        labels[row, :size] = torch.tensor(targets)
    tokens = sum(len(ids) for ids, _, _ in rows)
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels, "tokens": tokens}


# --------------------------------------------------------------------------------------------
# Model and LoRA
# --------------------------------------------------------------------------------------------


def _decoder_layers(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)


def linear_module_names(model: Any) -> list[str]:
    """The names of the linear layers inside the decoder (what ``all-linear`` means to PEFT)."""
    import torch

    output = model.get_output_embeddings()
    return sorted({
        name.rsplit(".", 1)[-1] for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not output
    })


def build_model(config: TrainConfig, device: str) -> tuple[Any, Any]:
    """The base (frozen; 4-bit with --qlora) wrapped with a fresh LoRA adapter, and the tokenizer."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from agent.model import ModelConfig, base_identity, load_model

    on_cuda = device.startswith("cuda")
    if config.qlora and not on_cuda:
        raise ModelError("--qlora needs a CUDA GPU (4-bit bitsandbytes); on CPU train without it")
    loaded = load_model(
        ModelConfig(
            base=config.base,
            cache_dir=config.cache_dir,
            dtype="bfloat16" if on_cuda else "float32",
            device=device,
            threads=config.threads,
            quantize="nf4" if config.qlora else "none",
        )
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    if config.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    layers = _decoder_layers(model)
    if not 0 <= config.freeze_layers < layers:
        raise InputError(f"freeze_layers must be between 0 and {layers - 1} for this base, not {config.freeze_layers}")
    targets: str | list[str] = config.target_modules.strip()
    if targets != "all-linear":
        targets = [name.strip() for name in targets.split(",") if name.strip()]
    elif config.freeze_layers:  # PEFT takes a layer range only with named modules
        targets = linear_module_names(model)
    try:
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=targets,
            layers_to_transform=list(range(config.freeze_layers, layers)) if config.freeze_layers else None,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise InputError(f"cannot put LoRA on {config.target_modules!r}: {exc}") from None
    # Record the base by the name the loader knows it by, so the adapter loads back anywhere.
    model.peft_config["default"].base_model_name_or_path = base_identity(config.base)
    model.train()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def trainable_summary(model: Any) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)"


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """The learning rate at ``step`` as a fraction of ``config.lr``: linear warm-up, then cosine.

    >>> config = TrainConfig(warmup_steps=9, min_lr_ratio=0.1)
    >>> [round(lr_factor(s, config, 109), 3) for s in (0, 4, 9, 59, 109)]
    [0.1, 0.5, 1.0, 0.55, 0.1]
    """
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine


def warm_lr_factor(step: int, config: TrainConfig, total_steps: int, warm_start_step: int | None) -> float:
    """:func:`lr_factor`, ramped up again over ``warmup_steps`` after a warm start.

    A warm start brings the adapter's weights but not Adam's moment estimates; the first updates
    of a fresh Adam are as large as the learning rate itself, so they get the warm-up a new run gets.

    >>> config = TrainConfig(warmup_steps=9, min_lr_ratio=0.1)
    >>> [round(warm_lr_factor(s, config, 109, 59), 3) for s in (59, 63, 68, 109)]
    [0.055, 0.247, 0.424, 0.1]
    """
    factor = lr_factor(step, config, total_steps)
    if warm_start_step is None:
        return factor
    return factor * min(1.0, (step - warm_start_step + 1) / (config.warmup_steps + 1))


def batch_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over the target tokens of a micro-batch, and how many there were."""
    import torch.nn.functional as F

    # No cache: with one, transformers would ignore the packing in the position ids.
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    labels = batch["labels"]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
    return loss, int((labels != -100).sum())


# --------------------------------------------------------------------------------------------
# Checkpoints: written under a temporary name, then renamed
# --------------------------------------------------------------------------------------------

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_dir(tmp: Path, final: Path) -> None:
    """Put a finished folder ``tmp`` at ``final`` (replacing what was there) without a moment in
    which a reader could find a half-written ``final``."""
    _fsync_tree(tmp)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    descriptor = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if old.exists():
        shutil.rmtree(old)


def recover_dirs(out: Path) -> None:
    """Undo what a kill in the middle of :func:`replace_dir` left: restore a moved-aside folder,
    drop unfinished temporary ones."""
    for old in out.glob(".*.old"):
        final = out / old.name[1:-len(".old")]
        if final.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, final)
    for tmp in out.glob(".*.tmp"):
        shutil.rmtree(tmp)


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints in ``out``, oldest first."""
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))]
    return [path for _, path in sorted(found) if (path / "state.pt").is_file()]


def rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_adapter(model: Any, tokenizer: Any, folder: Path, card: str | None = None) -> None:
    """An adapter in PEFT format (adapter_config.json + adapter_model.safetensors) with the tokenizer."""
    model.save_pretrained(folder, save_embedding_layers=False)  # LoRA never touches the embeddings
    tokenizer.save_pretrained(folder)
    if card is not None:
        (folder / "README.md").write_text(card, encoding="utf-8")


def write_progress(folder: Path, progress: "Progress", config: TrainConfig, data_hash: str) -> None:
    """progress.json beside a saved adapter, so that a later run can warm-start from it."""
    record = {"progress": dataclasses.asdict(progress), "config": config.to_dict(), "data_hash": data_hash}
    (folder / PROGRESS_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def read_warm_start(config: TrainConfig, data_hash: str, world: int) -> tuple[Path, "Progress", str]:
    """The adapter folder named by ``--warm-start``, where its run stood (checked against this
    run), and the split hash of the data it was trained on. On other data its best validation
    loss is forgotten: it was measured on other validation examples."""
    folder = Path(config.warm_start or "")
    if not (folder / "adapter_model.safetensors").is_file():
        raise InputError(f"--warm-start: {folder} holds no adapter_model.safetensors")
    if not (folder / PROGRESS_FILE).is_file():
        raise InputError(f"--warm-start: {folder} has no {PROGRESS_FILE} (saved by an older version?)")
    saved = json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8"))
    saved.setdefault("world_size", 1)
    # Unlike a checkpoint, an adapter may continue on rebuilt data: the weights are what it brings.
    _check_compatible({**saved, "data_hash": data_hash}, config, data_hash, world, folder)
    progress = Progress(**saved["progress"])
    progress.warm_start_step = progress.step
    if saved["data_hash"] != data_hash:
        progress.best_val = float("inf")
    return folder, progress, saved["data_hash"]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch the data position is in
    batch_in_epoch: int = 0  # micro-batches of that epoch already used (by this process)
    tokens: int = 0  # tokens seen, all processes
    targets: int = 0  # tokens the loss was taken on, all processes
    best_val: float = float("inf")
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "train_loss"|"val_loss"}
    seconds: float = 0.0  # training time, summed over resumed runs
    warm_start_step: int | None = None  # the step a warm start began at (fresh optimizer moments)


@dataclass
class TrainResult:
    """What :func:`train` returns: the losses logged and where things were written."""

    progress: Progress
    out: Path
    best_adapter: Path | None
    final_adapter: Path | None
    stopped_early: bool
    model: Any = None  # the trained PEFT model (in train mode), for use right after training


def _machine() -> str:
    import torch

    where = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        where += f", {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return where


def model_card(config: TrainConfig, progress: Progress, data_hash: str, command: str | None, kind: str) -> str:
    """The README.md written beside a saved adapter."""
    train_losses = [h for h in progress.history if "train_loss" in h]
    val_losses = [h for h in progress.history if "val_loss" in h]
    last_train = f"{train_losses[-1]['train_loss']:.4f} (step {train_losses[-1]['step']})" if train_losses else "-"
    last_val = f"{val_losses[-1]['val_loss']:.4f} (step {val_losses[-1]['step']})" if val_losses else "-"
    lines = [
        f"# tunesmith LoRA adapter ({kind})",
        "",
        "A LoRA adapter that teaches the base model to write tunes in ABC notation, trained with",
        "`finetune/train.py`. Load it with `agent.model.load_model(ModelConfig(base=..., adapter=...))`.",
        "",
        "| | |",
        "|---|---|",
        f"| base | `{config.base}` |",
        f"| data | `{config.data}`, split hash `{data_hash}` |",
        f"| steps | {progress.step} |",
        f"| tokens seen | {progress.tokens:,} ({progress.targets:,} with loss) |",
        f"| last train loss | {last_train} |",
        f"| last validation loss | {last_val} |",
        f"| best validation loss | {progress.best_val:.4f} |" if math.isfinite(progress.best_val) else "| best validation loss | - |",
        f"| LoRA | r={config.rank}, alpha={config.alpha}, dropout={config.dropout}, modules {config.target_modules}, "
        f"lowest {config.freeze_layers} layers frozen |",
        f"| training time | {progress.seconds / 3600:.2f} h |",
        f"| command | `{command or 'finetune.train.train(config) from Python'}` |",
        f"| date | {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} |",
        f"| machine | {_machine()} |",
        "",
        "Resolved settings:",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def _resume_path(config: TrainConfig, out: Path) -> Path | None:
    if config.resume in ("auto", "latest"):
        found = checkpoints(out)
        if not found and config.resume == "latest":
            raise InputError(f"--resume: no checkpoint in {out}")
        return found[-1] if found else None
    path = Path(config.resume)
    if not (path / "state.pt").is_file():
        raise InputError(f"--resume: {path} is not a checkpoint folder (no state.pt)")
    return path


def _check_compatible(saved: dict[str, Any], config: TrainConfig, data_hash: str, world: int, path: Path) -> None:
    if saved["data_hash"] != data_hash:
        raise InputError(
            f"{path} was trained on other data (split hash {saved['data_hash']}, now {data_hash}); "
            "use another --out to start over"
        )
    if saved.get("world_size", 1) != world:
        raise InputError(f"{path} was written by {saved['world_size']} processes, this run has {world}")
    current = config.to_dict()
    changed = sorted(
        name for name, value in saved["config"].items()
        if name not in RESUMABLE_CHANGES and current.get(name) != value
    )
    if changed:
        raise InputError(
            f"cannot resume {path} with changed settings ({', '.join(changed)}); "
            "use another --out to start over"
        )


class _Log:
    """One line per event to stdout (through tqdm, so the bar stays put) and to OUT/train.log."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        tqdm.write(line)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(f"{datetime.datetime.now().isoformat(timespec='seconds')} {line}\n")


def train(config: TrainConfig, *, stop_after: int | None = None, command: str | None = None) -> TrainResult:
    """Train a LoRA adapter as ``config`` says; continue from a checkpoint in ``config.out``.

    ``stop_after`` ends the run after that many optimizer steps, writing a checkpoint as a
    machine stopped there would have (the schedule still runs to the full length).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.data_loader import prepare_data_loader, skip_first_batches
    from accelerate.utils import broadcast_object_list, gather_object, set_seed
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    # --- where it runs
    want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but torch sees no CUDA GPU")
    accelerator = Accelerator(cpu=not want_cuda, mixed_precision="bf16" if want_cuda else "no")
    device, main, world = str(accelerator.device), accelerator.is_main_process, accelerator.num_processes
    out = Path(config.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        recover_dirs(out)
    accelerator.wait_for_everyone()
    log = _Log(out / "train.log", main)

    # --- data
    data_dir = Path(config.data)
    data_hash = split_hash(data_dir)
    set_seed(config.seed)
    model, tokenizer = build_model(config, device)  # also sets torch's CPU threads
    train_records = read_jsonl(data_dir / "train.jsonl")
    train_examples, train_dropped = encode_records(tokenizer, train_records, config.max_length)
    body_tokens = learn_body_tokens(tokenizer, train_records)  # written with each adapter
    del train_records
    valid_examples, valid_dropped = encode_records(tokenizer, read_jsonl(data_dir / "valid.jsonl"), config.max_length)
    if not train_examples or not valid_examples:
        raise InputError(f"no example in {data_dir} fits in max_length={config.max_length} tokens")
    train_items, valid_items = plan_items(train_examples, config), plan_items(valid_examples, config)
    pad_id = tokenizer.pad_token_id

    def loader(examples: list[Encoded], items: list[list[int]], batches: list[list[int]]) -> Any:
        plain = DataLoader(
            items,  # a batch of item indices arrives in collate as the items: rows of example indices
            batch_sampler=FixedBatches(batches),
            collate_fn=lambda rows: collate(examples, rows, pad_id),
            generator=torch.Generator().manual_seed(config.seed),  # leaves the global RNG alone
        )
        # accelerate hands each process its share of the batches (all of them when alone)
        return prepare_data_loader(plain, device=accelerator.device, put_on_device=True)

    batches_per_epoch = math.ceil(len(epoch_batches(train_items, train_examples, config, 0)) / world)
    steps_per_epoch = max(1, batches_per_epoch // config.grad_accum)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    valid_loader = loader(valid_examples, valid_items, validation_batches(valid_items, config))

    # --- optimizer and schedule
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)

    # --- resume from a checkpoint, or warm-start from a saved adapter
    progress = Progress()
    resume_from = _resume_path(config, out)
    saved_rng = None
    if resume_from is None and config.warm_start:
        warm_from, progress, saved_hash = read_warm_start(config, data_hash, world)
        weights = load_file(str(warm_from / "adapter_model.safetensors"))
        set_peft_model_state_dict(accelerator.unwrap_model(model), weights)
        log(f"warm start from {warm_from} at step {progress.step} (fresh optimizer moments)")
        if saved_hash != data_hash:
            log(f"warm start: the data differ from the saved run's (split hash {saved_hash}, now {data_hash}); "
                f"the run continues at the same position of the new data's order, and the best "
                f"validation loss is measured afresh")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warm_lr_factor(step, config, total_steps, progress.warm_start_step)
    )
    if resume_from is None and progress.step:
        scheduler.last_epoch = progress.step - 1
        with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()  # sets each group's lr for the step the run continues at
    if resume_from is not None:
        saved = torch.load(resume_from / "state.pt", weights_only=True)
        _check_compatible(saved, config, data_hash, world, resume_from)
        weights = load_file(str(resume_from / "adapter" / "adapter_model.safetensors"))
        set_peft_model_state_dict(accelerator.unwrap_model(model), weights)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        progress = Progress(**saved["progress"])
        saved_rng = saved["rng"][accelerator.process_index]
        log(f"resumed from {resume_from} at step {progress.step}")
    if main:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")

    def evaluate() -> float:
        model.eval()
        total = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
        with torch.no_grad():
            for batch in valid_loader:
                loss, count = batch_loss(model, batch)
                total += torch.tensor([loss.item(), count], device=accelerator.device, dtype=torch.float64)
        model.train()
        total = accelerator.reduce(total, "sum")
        return float(total[0] / max(1.0, float(total[1])))

    def save_checkpoint() -> Path:
        states = gather_object([rng_state()])
        final = out / f"checkpoint-{progress.step}"
        if main:
            tmp = out / f".{final.name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            save_adapter(accelerator.unwrap_model(model), tokenizer, tmp / "adapter")
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "progress": dataclasses.asdict(progress),
                "rng": states,
                "config": config.to_dict(),
                "data_hash": data_hash,
                "world_size": world,
            }
            torch.save(state, tmp / "state.pt")
            (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")
            replace_dir(tmp, final)
            for stale in checkpoints(out)[: -config.keep_checkpoints]:
                shutil.rmtree(stale)
        accelerator.wait_for_everyone()
        return final

    def save_named(name: str) -> Path:
        path = out / name
        if main:
            tmp = out / f".{name}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            card = model_card(config, progress, data_hash, command, name)
            save_adapter(accelerator.unwrap_model(model), tokenizer, tmp, card)
            write_progress(tmp, progress, config, data_hash)
            body_tokens.write(tmp)
            replace_dir(tmp, path)
        accelerator.wait_for_everyone()
        return path

    if main:
        log(f"{trainable_summary(model)}; device {device} x{world}")
        log(
            f"data {data_dir} (hash {data_hash}): {len(train_examples)} train examples in {len(train_items)} "
            f"sequences, {len(valid_examples)} valid; left out as longer than {config.max_length} tokens: "
            f"{train_dropped} train, {valid_dropped} valid; {total_steps} steps of "
            f"{config.batch_size}x{config.grad_accum}x{world} sequences"
        )
    if config.eval_only:
        val = evaluate()
        log(f"eval only: val loss {val:.4f}")
        progress.history.append({"step": progress.step, "val_loss": val})
        return TrainResult(progress, out, None, None, False, accelerator.unwrap_model(model))

    # --- the data stream: micro-batches, epoch after epoch, from the saved position
    def stream(epoch: int, skip: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
        while True:
            shard = loader(train_examples, train_items, epoch_batches(train_items, train_examples, config, epoch))
            if skip:
                shard = skip_first_batches(shard, skip)
            for position, batch in enumerate(shard, start=skip + 1):
                yield epoch, position, batch
            epoch, skip = epoch + 1, 0

    micro_batches = stream(progress.epoch, progress.batch_in_epoch)
    if saved_rng is not None:
        set_rng_state(saved_rng)

    # --- the loop
    bar = tqdm(total=total_steps, initial=progress.step, desc="training", unit="step", disable=not main, dynamic_ncols=True)
    last_checkpoint = time.monotonic()
    window_loss, window_targets, window_tokens = 0.0, 0, 0
    window_start, window_cpu = time.monotonic(), time.process_time()
    end = total_steps if stop_after is None else min(total_steps, stop_after)
    stopped_early = end < total_steps
    while progress.step < end:
        group = []
        for _ in range(config.grad_accum):
            epoch, position, batch = next(micro_batches)
            group.append(batch)
        counts = torch.tensor([sum(int((b["labels"] != -100).sum()) for b in group), sum(b["tokens"] for b in group)],
                              device=accelerator.device)
        global_targets, global_tokens = (int(v) for v in accelerator.reduce(counts.clone(), "sum"))
        step_loss = 0.0
        for index, batch in enumerate(group):
            # gradients are averaged over processes: scale so the step's loss is the mean over all
            # of its target tokens, wherever they were
            sync = index == len(group) - 1
            context = contextlib.nullcontext() if sync else accelerator.no_sync(model)
            with context:
                loss, _ = batch_loss(model, batch)
                accelerator.backward(loss * world / max(1, global_targets))
            step_loss += loss.item()
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        progress.epoch, progress.batch_in_epoch = epoch, position
        progress.tokens += global_tokens
        progress.targets += global_targets
        step_loss_tensor = accelerator.reduce(torch.tensor(step_loss, device=accelerator.device), "sum")
        window_loss += float(step_loss_tensor)
        window_targets += global_targets
        window_tokens += global_tokens
        bar.update(1)

        if progress.step % config.log_interval == 0 or progress.step == end:
            elapsed = time.monotonic() - window_start
            mean = window_loss / max(1, window_targets)
            rate = window_tokens / max(elapsed, 1e-9)
            # tokens per CPU-second of this process: on a shared machine, what it would do alone
            cpu_rate = window_tokens / world / max(time.process_time() - window_cpu, 1e-9)
            progress.seconds += elapsed
            progress.history.append({"step": progress.step, "train_loss": mean})
            bar.set_postfix(loss=f"{mean:.3f}", tok_s=f"{rate:.0f}")
            log(
                f"step {progress.step} | loss {mean:.4f} | lr {scheduler.get_last_lr()[0]:.2e} | "
                f"{rate:.0f} tok/s ({cpu_rate:.0f} per CPU-s) | epoch {epoch} | {progress.tokens:,} tokens"
            )
            window_loss, window_targets, window_tokens = 0.0, 0, 0
            window_start, window_cpu = time.monotonic(), time.process_time()

        if progress.step % config.eval_interval == 0 or progress.step == total_steps:
            val = evaluate()
            progress.history.append({"step": progress.step, "val_loss": val})
            improved = val < progress.best_val
            if improved:
                progress.best_val = val
                save_named("best")
            log(f"eval step {progress.step} | val loss {val:.4f} | best {progress.best_val:.4f}"
                + (" (saved to best/)" if improved else ""))
            window_start, window_cpu = time.monotonic(), time.process_time()

        due = time.monotonic() - last_checkpoint >= config.checkpoint_minutes * 60
        due = broadcast_object_list([due])[0] if world > 1 else due
        if due or progress.step == end:
            path = save_checkpoint()
            log(f"checkpoint {path}")
            last_checkpoint = time.monotonic()
            window_start, window_cpu = time.monotonic(), time.process_time()
    bar.close()

    final = None if stopped_early else save_named("final")
    best = out / "best" if (out / "best").is_dir() else None
    return TrainResult(progress, out, best, final, stopped_early, accelerator.unwrap_model(model))


def run(config: TrainConfig) -> int:
    """Entry point of ``tunesmith finetune train``: train, print where the adapter is."""
    result = train(config, command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    if result.best_adapter:
        print(json.dumps({"best_adapter": str(result.best_adapter), "best_val_loss": result.progress.best_val,
                          "steps": result.progress.step}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m finetune.train [options]`` (also under ``accelerate launch`` / ``torchrun``)."""
    parser = argparse.ArgumentParser(prog="finetune.train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(config_from_args(args))
    except (InputError, ModelError) as exc:
        print(f"finetune.train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
