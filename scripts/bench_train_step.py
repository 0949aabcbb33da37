"""Time one LoRA training step on the CPU in float32 and under bfloat16 autocast.

Builds the model exactly as ``tunesmith finetune train`` does (``finetune.train.build_model``)
and times forward + backward + optimizer step over one batch of random token ids (the cost does
not depend on which tokens they are). The first step warms up and is left out.

    .venv/bin/python scripts/bench_train_step.py --freeze-layers 12 --steps 4
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def time_steps(precision: str, freeze_layers: int, steps: int, batch: int, length: int, threads: int) -> float:
    """Best tokens per second over ``steps`` timed steps (after one warm-up step)."""
    import torch

    from finetune.train import TrainConfig, batch_loss, build_model

    model, _ = build_model(TrainConfig(freeze_layers=freeze_layers, threads=threads), "cpu")
    ids = torch.randint(0, 49_000, (batch, length), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, : length // 3] = -100  # the prompt part takes no loss, as in training
    inputs = dict(input_ids=ids, position_ids=torch.arange(length).repeat(batch, 1), labels=labels)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, count = batch_loss(model, inputs)
        (loss / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    return batch * length / min(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--freeze-layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for precision in ("fp32", "bf16"):
        rate = time_steps(precision, args.freeze_layers, args.steps, args.batch, args.length, args.threads)
        print(f"{precision}: {rate:.0f} tokens/s")


if __name__ == "__main__":
    main()
