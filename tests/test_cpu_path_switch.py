"""The CPU path switch from the outside: ``--cpu-path`` on the command line, ``cpu_path`` in the
agent's settings and the benchmark's configurations, and the startup line naming the path.

The path itself (what each computes, how close to float32) is tested in test_step_decoder.py and
test_model.py; here only that the choice reaches the loader, and that a whole ``tunesmith
compose`` on the portable path (forced, so it runs on any CPU) writes a valid tune and says
which path ran.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.cli import _use_cpu_path, build_parser

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command, rest", [
    ("compose", ["a jig", "--out", "o"]),
    ("converse", ["--script", "s.txt", "--out", "o"]),
    ("ui", []),
    ("eval", ["--out", "o"]),
])
def test_every_model_command_takes_a_cpu_path(command, rest):
    parser = build_parser(command)
    assert parser.parse_args([command, *rest]).cpu_path is None
    assert parser.parse_args([command, *rest, "--cpu-path", "portable"]).cpu_path == "portable"
    assert parser.parse_args([command, *rest, "--cpu-path", "ort"]).cpu_path == "ort"
    with pytest.raises(SystemExit):
        parser.parse_args([command, *rest, "--cpu-path", "avx2"])


def test_the_flag_forces_the_path_as_the_environment_variable_does(monkeypatch):
    from agent.model import ModelConfig, resolve_cpu_path

    # setenv (not delenv of an absent variable) so that pytest restores the environment after
    # the flag has written it: later tests must see no forced path
    monkeypatch.setenv("TUNESMITH_CPU_PATH", "auto")
    args = build_parser("compose").parse_args(["compose", "a jig", "--out", "o", "--cpu-path", "float32"])
    _use_cpu_path(args)
    assert os.environ["TUNESMITH_CPU_PATH"] == "float32"
    assert resolve_cpu_path(ModelConfig(quantize="auto"), bfloat16=True) == "float32"
    assert resolve_cpu_path(ModelConfig(cpu_path="portable"), bfloat16=True) == "portable"  # named wins


def test_the_agent_passes_its_cpu_path_to_the_loader():
    from agent.conversation import AgentConfig, Composer

    seen = Composer(AgentConfig(adapter="none", cpu_path="portable"), loader=lambda config: config).loaded
    assert (seen.cpu_path, seen.quantize, seen.dtype) == ("portable", "auto", "auto")
    assert Composer(AgentConfig(adapter="none"), loader=lambda config: config).loaded.cpu_path == "auto"


def test_the_benchmark_has_one_configuration_per_path():
    from finetune.evaluate import CONFIGURATIONS, EvalConfig, agent_config_for

    config = EvalConfig(out="/tmp/unused", configs=("default", "portable", "float32"))
    paths = [agent_config_for(config, CONFIGURATIONS[name]).cpu_path for name in config.configs]
    assert paths == ["auto", "portable", "float32"]


@pytest.mark.parametrize("path, words", [("portable", "portable path (float16 weights"),
                                         ("ort", "ort path (ONNX Runtime, 8-bit weights")])
def test_compose_on_a_forced_path_says_so_and_writes_a_valid_tune(tmp_path, path, words):
    from ui_helpers import tiny_loaded_model

    loaded = tiny_loaded_model()
    base = tmp_path / "tiny-llama"
    loaded.model.save_pretrained(base)
    loaded.tokenizer.save_pretrained(base)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TUNESMITH_CPU_PATH", None)
    result = subprocess.run(
        [sys.executable, "-m", "tunesmith", "compose", "a waltz in D, 4 bars", "--out", str(tmp_path / "out"),
         "--base", str(base), "--adapter", "none", "--cpu-path", path],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "model ready: " in result.stderr and words in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["valid"] is True
