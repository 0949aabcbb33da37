"""The command line as a person uses it: real files in, exit codes, one-line errors, real outputs.

Each command runs in a subprocess, as from a shell, so a traceback anywhere would show up on
stderr. The model commands run on a tiny random llama saved as a local base folder: the
constrained decoder turns its noise into valid tunes, so the whole CLI path is exercised in
seconds without the real weights.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mido
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TUNE = "X:1\nT:Little Air\nM:3/4\nL:1/8\nQ:1/4=100\nK:G\nG2 B2 d2|c2 A2 F2|G6|]\n"


# Songs that `converse` saves go to a data folder of this test run, never the user's own.
_DATA = tempfile.mkdtemp(prefix="tunesmith-cli-data-")


def tunesmith(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TUNESMITH_DATA=_DATA)
    env.pop("TUNESMITH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("tunesmith ")


def test_validate_valid_file_exits_0(tmp_path):
    path = tmp_path / "ok.abc"
    path.write_text(TUNE)
    result = tunesmith("validate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True


def test_validate_names_the_bar_and_meter(tmp_path):
    path = tmp_path / "long.abc"
    path.write_text(TUNE.replace("c2 A2 F2|", "c2 A2 F2 E2|"))
    result = tunesmith("validate", str(path))
    assert result.returncode == 1
    assert "bar 2" in result.stdout and "3/4" in result.stdout


@pytest.mark.parametrize("name, content", [
    ("random.abc", bytes(range(256)) * 4),
    ("latin1.abc", "X:1\nT:Caf\xe9\nK:C\nCDEF|\n".encode("latin-1")),
    ("huge.abc", b"X:1\nK:C\n" + b"CDEF|" * 250_000),
])
def test_unreadable_files_give_one_line_and_exit_2(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert_one_line_error(tunesmith("validate", str(path)), 2)


def test_empty_file_is_invalid_with_a_message(tmp_path):
    path = tmp_path / "empty.abc"
    path.write_bytes(b"")
    result = tunesmith("validate", str(path))
    assert result.returncode == 1 and "empty" in result.stdout and not result.stderr


def test_missing_file_is_a_one_line_error(tmp_path):
    assert_one_line_error(tunesmith("validate", str(tmp_path / "nope.abc")), 2)


def test_tune_without_key_is_invalid_with_a_message(tmp_path):
    path = tmp_path / "nokey.abc"
    path.write_text("X:1\nT:No key\nM:4/4\nCDEF|GABc|\n")
    result = tunesmith("validate", str(path))
    assert result.returncode in (1, 2)
    assert "K:" in (result.stdout + result.stderr)
    assert "Traceback" not in result.stderr


def test_render_writes_every_file_and_midi_reads_back(tmp_path):
    path = tmp_path / "air.abc"
    path.write_text(TUNE)
    result = tunesmith("render", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    names = {Path(summary[key]).name for key in ("abc", "midi", "musicxml", "svg", "pdf", "wav")}
    assert names == {"score.abc", "score.mid", "score.musicxml", "score.svg", "score.pdf", "score.wav"}
    notes = [m.note for m in mido.MidiFile(tmp_path / "out" / "score.mid") if m.type == "note_on" and m.velocity]
    assert notes == [67, 71, 74, 72, 69, 66, 67]


def test_render_of_a_broken_file_writes_nothing(tmp_path):
    path = tmp_path / "broken.abc"
    path.write_text("X:1\nT:Broken\nM:4/4\nK:C\n|: CDEF | GABc\n")
    out = tmp_path / "out"
    result = tunesmith("render", str(path), "--out", str(out))
    if result.returncode != 0:
        assert_one_line_error(result, result.returncode)
        assert not out.exists() or not any(out.iterdir())


def test_empty_prompt_is_refused_without_loading_a_model(tmp_path):
    assert_one_line_error(tunesmith("compose", "   ", "--out", str(tmp_path)), 2)


@pytest.fixture(scope="module")
def tiny_base_folder(tmp_path_factory) -> Path:
    from ui_helpers import save_tiny_base

    return save_tiny_base(tmp_path_factory.mktemp("tiny-llama"))


def test_compose_writes_the_score_and_a_json_summary(tmp_path, tiny_base_folder):
    out = tmp_path / "jig"
    result = tunesmith("compose", "a jig in D, 8 bars", "--out", str(out), "--seed", "3",
                       "--base", str(tiny_base_folder), "--adapter", "none")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["valid"] is True
    assert (summary["key"], summary["meter"], summary["bars"]) == ("D", "6/8", 8)
    for key in ("title", "tempo_bpm", "attempts", "seconds"):
        assert key in summary
    for name in ("score.abc", "score.mid", "score.musicxml", "score.svg", "score.pdf", "score.wav"):
        assert (out / name).stat().st_size > 0, name
    check = tunesmith("validate", str(out / "score.abc"))
    assert check.returncode == 0, check.stdout


def test_converse_writes_turns_and_an_honest_transcript(tmp_path, tiny_base_folder):
    script = tmp_path / "chat.txt"
    script.write_text("a waltz in G, 8 bars\nmake it faster\nwhat key is it in?\nundo\n")
    out = tmp_path / "chat"
    result = tunesmith("converse", "--script", str(script), "--out", str(out), "--base",
                       str(tiny_base_folder), "--adapter", "none")
    assert result.returncode == 0, result.stderr
    transcript = json.loads((out / "transcript.json").read_text())
    assert [turn["changed"] for turn in transcript] == [True, True, False, True]
    first = (out / "turn-01" / "score.abc").read_text()
    faster = (out / "turn-02" / "score.abc").read_text()
    assert first != faster and (out / "turn-04" / "score.abc").read_text() == first
    assert "G" in transcript[2]["assistant"]
