"""The training data builder on a slice of music21's corpus: outputs, splits, dedup, lyrics."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.abc_text import length_in_bars, parse_tune
from agent.prompts import abc_header
from agent.syllables import syllable_count
from finetune import corpus
from finetune.data import (DataConfig, build, cut_points, deduplicate, header_of,
                           is_near_duplicate, load_test_split, split_of)
from finetune.fingerprint import bar_fingerprints, melody_fingerprint, melody_notes, parse_abc
from finetune.lyrics import rhyme_scheme
from finetune.transpose import semitone_shift, transpose_abc

LIMIT = 40


def _config(out: Path, splits: Path) -> DataConfig:
    return DataConfig(out=str(out), limit=LIMIT, seed=3, workers=1, test_fraction=0.2,
                      valid_fraction=0.1, splits_dir=str(splits), write_splits=True,
                      common_bar_tunes=10**6)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    stats = build(_config(out, out / "splits"))
    return out, stats


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_outputs_exist_and_parse(built):
    out, stats = built
    for name in ("train", "valid", "test"):
        for example in _read(out / f"{name}.jsonl"):
            assert example["task"] in ("compose", "edit", "lyrics")
            assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
            assert example["messages"][2]["content"].startswith(example["prefill"])
            assert example["augmented"] is None or name == "train"
    written = json.loads((out / "stats.json").read_text())
    assert written["corpus_tunes"] == LIMIT
    assert json.loads((out / "config.json").read_text())["limit"] == LIMIT
    train_tasks = written["task"]["train"]
    assert train_tasks.get("compose", 0) > 0 and train_tasks.get("edit", 0) > 0
    assert train_tasks.get("lyrics", 0) > 0
    assert written["tokens"]["compose"]["max"] <= 512


def test_compose_targets_validate_and_start_with_their_header(built):
    out, _ = built
    examples = [e for name in ("train", "test") for e in _read(out / f"{name}.jsonl")
                if e["task"] == "compose"]
    assert examples
    for example in examples:
        target = example["messages"][2]["content"]
        assert example["prefill"] == header_of(example["attributes"])
        assert example["prefill"].splitlines()[-2:] == [
            "Q:" + example["attributes"]["tempo"], "K:" + example["attributes"]["key"]]
        assert "L:1/8" in example["prefill"]
        assert corpus.validate_problems(target) == [], example["id"]


def test_transposed_copies_are_in_the_key_they_claim(built):
    out, _ = built
    copies = [e for e in _read(out / "train.jsonl")
              if e["task"] == "compose" and e["augmented"]]
    assert copies
    for example in copies[:10]:
        target = example["messages"][2]["content"]
        assert f"K:{example['attributes']['key']}\n" in target


def test_test_tunes_never_appear_in_train_in_any_key(built):
    out, _ = built
    test_tunes = load_test_split(out / "splits" / "test.jsonl")
    assert test_tunes
    test_prints = {t["fingerprint"] for t in test_tunes}
    test_bars = {bar for t in test_tunes for bar in t["bar_fingerprints"]}
    common = set()  # with 40 tunes no bar is common; every shared bar counts
    test_ids = {t["id"] for t in test_tunes}
    for example in _read(out / "train.jsonl"):
        if example["task"] == "lyrics":
            continue
        assert example["tune_id"] not in test_ids
        target = example["messages"][2]["content"]
        assert melody_fingerprint(melody_notes(parse_abc(target))) not in test_prints
        assert not is_near_duplicate(bar_fingerprints(target), test_bars, common, 0.5)


def test_edit_examples_are_honest_pairs(built):
    out, stats = built
    edits = [e for e in _read(out / "train.jsonl") if e["task"] == "edit"]
    assert edits
    for example in edits:
        source = example["messages"][1]["content"].rsplit("\n\n", 1)[0]
        target = example["messages"][2]["content"]
        assert source != target.strip()
        assert source.startswith(example["prefill"].rstrip("\n")) or example["prefill"].startswith(
            source)
        assert corpus.validate_problems(target) == []


def test_lyrics_lines_have_the_syllables_and_rhymes_they_claim(built):
    out, _ = built
    examples = [e for e in _read(out / "train.jsonl") if e["task"] == "lyrics"]
    assert examples
    for example in examples:
        lines = example["messages"][2]["content"].split("\n")
        claimed = example["attributes"]["syllables"]
        assert [syllable_count(line) for line in lines] == claimed
        assert rhyme_scheme(lines) == example["attributes"]["scheme"]
        request = example["messages"][1]["content"]
        assert ", ".join(map(str, claimed)) in request and example["attributes"]["theme"] in request


def test_the_build_is_deterministic_and_cached(built, tmp_path):
    out, _ = built
    shutil.copytree(out / "cache", tmp_path / "cache")
    build(_config(tmp_path, tmp_path / "splits"))
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert (tmp_path / "splits" / "test.jsonl").read_bytes() == (
        out / "splits" / "test.jsonl").read_bytes()


def _real_tune(tune_id: str) -> corpus.RawTune:
    return next(t for t in corpus.raw_tunes() if t.tune_id == tune_id)


def test_dedup_merges_a_transposed_duplicate():
    raw = _real_tune("oneills1850/0001-0050.abc#3")
    other = _real_tune("oneills1850/0001-0050.abc#4")
    first = corpus.analyse_tune(raw)
    assert "rejected" not in first, first
    moved = transpose_abc(first["abc"], "F", first["attributes"]["mode"])
    copy = corpus.analyse_tune(corpus.RawTune("elsewhere#1", "elsewhere", moved))
    assert copy["attributes"]["tonic"] == "F" and copy["fingerprint"] == first["fingerprint"]
    unrelated = corpus.analyse_tune(other)
    kept, merged = deduplicate([first, copy, unrelated])
    assert merged == 1 and len(kept) == 2
    group = next(t for t in kept if t["duplicates"])
    assert {group["id"], *group["duplicates"]} == {raw.tune_id, "elsewhere#1"}


def test_transposing_moves_every_pitch_by_the_same_interval():
    tune = corpus.analyse_tune(_real_tune("oneills1850/0001-0050.abc#3"))
    before = [p for p, _ in melody_notes(parse_abc(tune["abc"]))]
    moved = transpose_abc(tune["abc"], "Bb", tune["attributes"]["mode"])
    after = [p for p, _ in melody_notes(parse_abc(moved))]
    assert len(before) == len(after)
    assert {b - a for a, b in zip(before, after)} == {semitone_shift(tune["attributes"]["tonic"], "Bb")}
    lower = transpose_abc(tune["abc"], "E", tune["attributes"]["mode"])  # G minor -> E minor
    assert {b - a for a, b in zip(before, [p for p, _ in melody_notes(parse_abc(lower))])} == {-3}
    assert corpus.validate_problems(moved) == []


def test_cut_points_give_valid_shorter_tunes():
    tune = corpus.analyse_tune(_real_tune("oneills1850/0001-0050.abc#3"))
    points = cut_points(tune["abc"])
    assert points and all(kept < tune["attributes"]["bars"] for kept, _ in points)
    for kept, text in points:
        assert length_in_bars(parse_tune(text)) <= kept
        assert corpus.validate_problems(text) == []
        assert text.startswith(abc_header(
            title=tune["attributes"]["title"], meter=tune["attributes"]["meter"],
            tempo=tune["attributes"]["tempo"], key=tune["attributes"]["key"],
            style=tune["attributes"]["style"]))


def test_split_depends_only_on_the_tune_and_the_seed():
    assert split_of("f00d", seed=1, test_fraction=0.5, valid_fraction=0.1) == split_of(
        "f00d", seed=1, test_fraction=0.5, valid_fraction=0.1)
    names = [split_of(f"{i:x}", seed=0, test_fraction=0.2, valid_fraction=0.2) for i in range(2000)]
    assert 300 < names.count("test") < 500 and 300 < names.count("valid") < 500


def test_the_repository_test_split_is_large_enough_and_valid():
    path = Path(__file__).resolve().parent.parent / "finetune" / "splits" / "test.jsonl"
    if not path.exists():
        pytest.fail("finetune/splits/test.jsonl is missing: run `tunesmith finetune data --write-splits`")
    tunes = load_test_split()
    assert len(tunes) >= 300
    assert len({t["id"] for t in tunes}) == len(tunes)
    train_ids = set((path.parent / "train_ids.txt").read_text().split())
    assert not train_ids & {t["id"] for t in tunes}
    for tune in tunes[::40]:
        assert corpus.validate_problems(tune["abc"]) == [], tune["id"]
