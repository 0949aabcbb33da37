"""The training script run data-parallel by ``torchrun`` with two CPU processes.

(``accelerate launch --cpu`` always starts a single process; torchrun is how several CPU
processes are started, and accelerate inside the script picks them up from its environment.)
Slow tier (two Python processes start, each loads torch and the tiny model): the same
``finetune/train.py`` with no code of its own for distribution must split each epoch's
batches between the processes, keep the adapters in step, and write one adapter.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.model import ModelConfig, load_model
from test_model import corpus_tunes, make_tiny_base
from test_train import write_split

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def launch(processes: int, base: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
        "-m", "finetune.train",
        "--base", str(base), "--data", str(data), "--out", str(out), "--device", "cpu", "--threads", "1",
        "--rank", "4", "--alpha", "16", "--lr", "1e-2", "--warmup-steps", "1", "--batch-size", "1",
        "--packing", "bucket", "--epochs", "1", "--eval-interval", "4", "--eval-batches", "2",
        "--log-interval", "1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_two_cpu_processes_share_the_batches_and_write_one_adapter(tmp_path):
    import torch

    base = make_tiny_base(tmp_path / "base")
    data = write_split(tmp_path / "data", corpus_tunes(22))
    done = launch(2, base, data, tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]

    log = (tmp_path / "run" / "train.log").read_text()
    assert re.search(r"device cpu(:0)? x2", log), log  # both processes joined one run
    # 16 training tunes, one per batch: one process takes 16 steps for the epoch, two take 8
    single = launch(1, base, data, tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    steps = {name: [line for line in (tmp_path / name / "train.log").read_text().splitlines()
                    if re.match(r"\S+ step \d+ \|", line)] for name in ("run", "single")}
    assert (len(steps["single"]), len(steps["run"])) == (16, 8), steps

    # one adapter, written once, that loads back onto the base and changes its output
    config = json.loads((tmp_path / "run" / "final" / "adapter_config.json").read_text())
    assert config["r"] == 4
    plain = load_model(ModelConfig(base=str(base), adapter=None, threads=1))
    tuned = load_model(ModelConfig(base=str(base), adapter=str(tmp_path / "run" / "final"), threads=1))
    ids = torch.tensor([plain.tokenizer.encode("X:1\nM:6/8\nK:G\nGAB")])
    with torch.no_grad():
        assert not torch.equal(plain.model(ids).logits, tuned.model(ids).logits)
