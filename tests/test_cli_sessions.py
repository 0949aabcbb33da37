"""``tunesmith converse`` keeps its session in the song store and ``--session ID`` resumes it.

Runs the command line in a subprocess with ``TUNESMITH_DATA`` in a temporary folder and the tiny
random model saved as a base folder (see tests/ui_helpers.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.answer import score_summary
from agent.store import Store, command_line_owner

ROOT = Path(__file__).resolve().parent.parent


def tunesmith(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TUNESMITH_DATA=str(data))
    env.pop("TUNESMITH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from ui_helpers import save_tiny_base

    return save_tiny_base(tmp_path_factory.mktemp("tiny-llama"))


def test_converse_saves_and_resumes_a_session(tmp_path, tiny_base):
    data = tmp_path / "data"
    first = tmp_path / "first.txt"
    first.write_text("a waltz in G, 8 bars\n")
    result = tunesmith(data, "converse", "--script", str(first), "--out", str(tmp_path / "one"),
                       "--base", str(tiny_base), "--adapter", "none")
    assert result.returncode == 0, result.stderr
    song = json.loads(result.stdout.strip().splitlines()[-1])["session"]
    assert len(song) >= 16

    second = tmp_path / "second.txt"
    second.write_text("transpose it up a whole step\n")
    result = tunesmith(data, "converse", "--script", str(second), "--out", str(tmp_path / "two"),
                       "--base", str(tiny_base), "--adapter", "none", "--session", song)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["session"] == song
    with Store(data / "tunesmith.sqlite3") as store:
        saved = store.load(song, command_line_owner(data))
    assert [m["content"] for m in saved.messages if m["role"] == "user"] == [
        "a waltz in G, 8 bars", "transpose it up a whole step"]
    assert [score_summary(v.abc)["key"] for v in saved.versions] == ["G", "A"]

    missing = tunesmith(data, "converse", "--script", str(second), "--out", str(tmp_path / "three"),
                        "--base", str(tiny_base), "--adapter", "none", "--session", "no-such-song")
    assert missing.returncode != 0 and "no saved song with that id" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
