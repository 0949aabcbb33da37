"""Tests of the benchmark's measures (finetune.metrics) and of ``tunesmith eval``'s plumbing.

The measures are checked on real tunes where the answer is known: a tune scored against the key
it is in and against another; a training tune, a transposed copy, a copy of only four bars and
a different tune; a tune compared with itself; an edit that does or does not move every note.
The real tunes are the repository's test files (tests/data/abc/, from music21's bundled
corpus) and tunes from the corpus itself.

The plumbing test runs the benchmark end to end on a tiny random model over SmolLM2's real
tokenizer (no real weights), in this process, and reads the table it writes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.abc_text import parse_tune, split_bars, tokenize_body
from agent.edits import transpose
from agent.understand import Transpose
from finetune import evaluate, metrics

DATA = Path(__file__).parent / "data" / "abc"
REEL = (DATA / "nottingham_reel.abc").read_text(encoding="utf-8")
JIG = (DATA / "oneills_darby_the_driver.abc").read_text(encoding="utf-8")
HORNPIPE = (DATA / "ryans_ypsilanti_hornpipe.abc").read_text(encoding="utf-8")
SONG = (DATA / "essen_kaisari.abc").read_text(encoding="utf-8")
AIR = (DATA / "airds_braes_of_busbie.abc").read_text(encoding="utf-8")


def key_of(abc: str) -> tuple[str, str]:
    key = parse_tune(abc).key
    return key.tonic, key.mode


def bars_text(abc: str) -> list[str]:
    tune = parse_tune(abc)
    return [bar.text_in(tune.body) for bar in split_bars(tokenize_body(tune.body, tune), tune)]


# --------------------------------------------------------------------------------------------
# Control


@pytest.mark.parametrize("abc", [REEL, JIG, HORNPIPE, SONG, AIR],
                         ids=["reel", "jig", "hornpipe", "song", "air"])
def test_a_tune_honours_its_own_key_and_not_another(abc):
    tonic, mode = key_of(abc)
    assert metrics.attribute_checks(abc, {"tonic": tonic, "mode": mode}) == {"key": True}
    other = "F#" if metrics.pitch_class_of(tonic) != 6 else "C"
    assert metrics.attribute_checks(abc, {"tonic": other, "mode": mode}) == {"key": False}
    wrong_mode = "minor" if mode == "major" else "major"
    assert metrics.attribute_checks(abc, {"tonic": tonic, "mode": wrong_mode}) == {"key": False}


def test_a_tune_in_the_wrong_key_scores_zero_for_key_in_the_summary():
    tonic, mode = key_of(JIG)  # A minor
    record = {"prompts": [{"id": "x", "seed": 0, "prompt": "a jig in G",
                           "expect": {"tonic": "G", "mode": "major"},
                           "intent": "compose", "valid": True, "attempts": 1, "tokens": 10,
                           "compose_seconds": 1.0, "seconds": 1.0, "abc": JIG, "reply": "",
                           "internal_error": False, "direct": False}],
              "scripts": [], "load_seconds": 0.1, "peak_rss_mb": 1.0}
    reference = evaluate.Reference(None, None, None, "none", "none")
    summary = evaluate.summarize(record, reference)
    assert (tonic, mode) == ("A", "minor")
    assert summary["control"]["key"] == {"share": 0.0, "passed": 0, "of": 1}
    assert summary["validity"]["first_try"]["share"] == 1.0


def test_a_three_bar_tune_asked_for_as_sixteen_fails_length():
    tune = "X:1\nT:Short\nM:4/4\nL:1/8\nK:D\nDFAd fdAF|GBdg fdBG|A8|]\n"
    assert metrics.bar_count(tune) == 3
    assert metrics.attribute_checks(tune, {"bars": 16}) == {"bars": False}
    assert metrics.attribute_checks(tune, {"bars": 3}) == {"bars": True}


def test_length_of_a_real_tune_counts_each_pickup_with_the_bar_that_completes_it():
    # Cuckoo's Nest: two parts of 8 bars, each written as a pickup, 7 bars and a short last bar.
    assert len(bars_text(REEL)) == 18
    assert metrics.bar_count(REEL) == 16
    assert metrics.attribute_checks(REEL, {"bars": 16}) == {"bars": True}


def test_meter_tempo_instrument_and_style_checks():
    tune = ("X:1\nT:t\nR:waltz\nM:3/4\nL:1/8\nQ:1/4=84\n%%MIDI program 73\nK:G\n"
            "G2 B2 d2|g6|d2 B2 G2|G6|]\n")
    assert metrics.attribute_checks(tune, {"meter": "3/4", "tempo_range": [40, 90], "instrument": "flute",
                                           "style": "waltz"}) == {
        "meter": True, "tempo": True, "instrument": True, "style": True}
    assert metrics.attribute_checks(tune, {"meter": "6/8", "tempo_bpm": 90, "instrument": "cello",
                                           "style": "jig"}) == {
        "meter": False, "tempo": False, "instrument": False, "style": False}
    assert metrics.attribute_checks(tune.replace("%%MIDI program 73\n", ""), {"instrument": "flute"}) == {
        "instrument": False}


def test_lyrics_on_theme_and_lyrics_measures():
    tune = ("X:1\nT:t\nM:4/4\nL:1/4\nK:C\nC D E F|\nw:the sea is wide\nG A B c|\nw:the waves and tide\n")
    assert metrics.attribute_checks(tune, {"lyrics_theme": "the sea"}) == {"lyrics": True}
    assert metrics.attribute_checks(tune, {"lyrics_theme": "autumn leaves"}) == {"lyrics": False}
    assert metrics.attribute_checks(REEL, {"lyrics_theme": "the sea"}) == {"lyrics": False}
    measured = metrics.lyrics_measures(tune)
    assert measured["syllable_fit"] == 1.0
    assert measured["rhyme_rate"] == 1.0  # wide / tide: the AABB pair rhymes
    assert 0.0 <= measured["stress_on_strong"] <= 1.0


# --------------------------------------------------------------------------------------------
# Edits


def test_transposition_check_on_a_real_transposition():
    up = transpose(JIG, Transpose(semitones=2)).abc
    assert metrics.transposed_by(JIG, up, 2)
    assert not metrics.transposed_by(JIG, up, 1)
    assert not metrics.transposed_by(JIG, JIG, 2)
    wanted = {"transpose_semitones": 2, "tonic": "B", "mode": "minor"}
    checks = metrics.check_turn(wanted, JIG, up, changed=True)
    assert checks == {"transpose_semitones": True, "tonic": True, "mode": True}


def test_undo_check_passes_on_identical_abc_and_fails_otherwise():
    up = transpose(REEL, Transpose(semitones=2)).abc
    assert metrics.check_turn({"undo": True}, up, REEL, changed=True, undo_target=REEL) == {"undo": True}
    extra_newline = REEL + "\n"
    assert metrics.check_turn({"undo": True}, up, extra_newline, changed=True, undo_target=REEL) == {
        "undo": False}
    assert metrics.check_turn({"undo": True}, up, up, changed=False, undo_target=REEL) == {"undo": False}
    assert metrics.check_turn({"undo": True}, up, None, changed=True, undo_target=REEL) == {"undo": False}
    # undoing the first tune brings back the empty score
    assert metrics.check_turn({"undo": True}, REEL, None, changed=True, undo_target=None) == {"undo": True}


def test_lyric_edit_changes_no_note():
    from agent.lyrics import set_words

    tune = "X:1\nT:t\nM:3/4\nL:1/4\nK:D\nD F A|d3|A F D|D3|]\n"
    with_words, _ = set_words(tune, "over the water the gulls")
    checks = metrics.check_turn({"notes_unchanged": True, "no_lyrics": True}, tune, with_words, changed=True)
    assert checks == {"notes_unchanged": True, "no_lyrics": False}
    changed_note = with_words.replace("d3", "e3")
    assert metrics.check_turn({"notes_unchanged": True}, tune, changed_note, changed=True) == {
        "notes_unchanged": False}


def replace_bar_text(abc: str, number: int, new: str) -> str:
    """``abc`` with bar ``number`` (1-based, as written) replaced by ``new``."""
    tune = parse_tune(abc)
    bar = split_bars(tokenize_body(tune.body, tune), tune)[number - 1]
    start, end = tune.body_offset + bar.start, tune.body_offset + bar.end
    return abc[:start] + new + abc[end:]


def test_first_half_and_other_script_checks():
    bars = len(bars_text(JIG))
    late = replace_bar_text(JIG, bars - 1, "e3 a3")
    early = replace_bar_text(JIG, 2, "e3 a3")
    assert metrics.check_turn({"first_half_unchanged": True}, JIG, late, changed=True) == {
        "first_half_unchanged": True}
    assert metrics.check_turn({"first_half_unchanged": True}, JIG, early, changed=True) == {
        "first_half_unchanged": False}
    assert metrics.check_turn({"empty": True, "changed": True}, JIG, None, changed=True) == {
        "empty": True, "changed": True}
    assert metrics.check_turn({"unchanged": True}, JIG, JIG, changed=False) == {"unchanged": True}
    assert metrics.check_turn({"unchanged": True}, JIG, late, changed=True) == {"unchanged": False}
    with pytest.raises(ValueError, match="unknown check"):
        metrics.check_turn({"sparkle": True}, JIG, JIG, changed=False)


def test_every_check_in_the_scripts_is_known():
    _, scripts = evaluate.load_suite(evaluate.EvalConfig(out="unused"))
    names = {name for script in scripts for turn in script["turns"] for name in turn.get("check", {})}
    for name in names:
        metrics.check_turn({name: True}, None, None, changed=False)  # raises for an unknown check


# --------------------------------------------------------------------------------------------
# Copying


@pytest.fixture(scope="module")
def training():
    return [REEL, JIG, HORNPIPE, AIR]


@pytest.fixture(scope="module")
def index(training):
    return metrics.copy_index(training)


def test_a_copied_training_tune_is_flagged(index):
    assert metrics.copied_bars(JIG, index)
    assert metrics.copied_bars(REEL, index)


@pytest.mark.parametrize("semitones", [2, -5, 7])
def test_a_transposed_copy_is_flagged(index, semitones):
    moved = transpose(HORNPIPE, Transpose(semitones=semitones)).abc
    assert parse_tune(moved).key.tonic != parse_tune(HORNPIPE).key.tonic
    assert metrics.copied_bars(moved, index)


def test_a_different_tune_is_not_flagged(index):
    assert not metrics.copied_bars(SONG, index)


def test_four_copied_bars_are_not_a_copy_and_five_are(index):
    """The reel's first bars (its pickup, then full bars), followed by bars of no training tune."""
    reel_bars = bars_text(REEL)
    other = ["DFAd", "f2 e2", "dcBA", "G2 F2", "EDCB,", "A,4"]
    header = "X:1\nT:Patchwork\nM:4/4\nL:1/4\nK:D\n"  # the reel's meter, unit length and key
    four = header + "|".join(reel_bars[:4] + other) + "|]\n"
    five = header + "|".join(reel_bars[:5] + other) + "|]\n"
    assert not metrics.copied_bars(four, index)
    assert metrics.copied_bars(five, index)


# --------------------------------------------------------------------------------------------
# Music statistics


def test_histogram_distance_of_a_tune_to_itself_is_zero():
    for abc in (REEL, JIG, SONG):
        profile = metrics.music_profile([abc])
        assert metrics.compare_profiles(profile, profile) == {
            "js_pitch_class": 0.0, "js_interval": 0.0, "js_length": 0.0}


def test_histogram_distance_grows_with_difference():
    reel, song = metrics.music_profile([REEL]), metrics.music_profile([SONG])
    apart = metrics.compare_profiles(reel, song)
    assert all(0.0 < value <= 1.0 for value in apart.values())
    # the same tune in another key has the same pitch classes relative to its tonic
    moved = metrics.music_profile([transpose(REEL, Transpose(semitones=5)).abc])
    assert metrics.compare_profiles(reel, moved)["js_pitch_class"] == 0.0
    assert metrics.jensen_shannon({"a": 1, "b": 3}, {"a": 3, "b": 1}) == metrics.jensen_shannon(
        {"a": 3, "b": 1}, {"a": 1, "b": 3})


def test_same_meter_distance_compares_a_tune_with_its_own_meter():
    """A jig against a reference of the same jig and a 2/4 song: pooled, the song's lengths
    count against it; per meter it is measured against the jig alone. Meters the reference
    lacks are left out."""
    reference = [JIG, SONG]
    pooled = metrics.compare_profiles(metrics.music_profile([JIG]), metrics.music_profile(reference))
    by_meter = metrics.compare_by_meter([JIG, REEL], metrics.profiles_by_meter(reference))
    assert pooled["js_length"] > 0.05
    assert by_meter["js_length_same_meter"] == 0.0 and by_meter["meter_matched_tunes"] == 1
    assert metrics.meter_of(AIR) == "2/2" and metrics.meter_of(SONG) == "2/4"
    apart = metrics.compare_by_meter([HORNPIPE], metrics.profiles_by_meter(reference))
    assert apart["js_length_same_meter"] > 0  # the hornpipe against the 2/4 song
    assert metrics.compare_by_meter([REEL], metrics.profiles_by_meter(reference)) == {
        "js_pitch_class_same_meter": None, "js_interval_same_meter": None,
        "js_length_same_meter": None, "meter_matched_tunes": 0}


def test_same_mode_distance_compares_a_tune_with_its_own_mode_class():
    """An A-minor air against a reference of itself and a D-major reel: pooled, the reel's major
    third counts against it; within its mode class it is measured against the air alone."""
    reference = [AIR, REEL]
    pooled = metrics.compare_profiles(metrics.music_profile([AIR]), metrics.music_profile(reference))
    by_mode = metrics.compare_by_mode([AIR], metrics.profiles_by_mode(reference))
    assert pooled["js_pitch_class"] > 0.05
    assert by_mode["js_pitch_class_same_mode"] == 0.0 and by_mode["mode_matched_tunes"] == 1
    assert [metrics.mode_class_of(t) for t in (AIR, JIG, REEL, SONG)] == ["minor", "minor", "major", "major"]
    assert metrics.mode_class_of("X:1\nK:none\nA4|\n") is None
    assert metrics.mode_class_of("X:1\nK:Dmix\nA4|\n") == "major"
    assert metrics.mode_class_of("X:1\nK:E phrygian\nA4|\n") == "minor"
    assert metrics.compare_by_mode([JIG], metrics.profiles_by_mode([REEL]))["mode_matched_tunes"] == 0


def test_tune_statistics_of_a_real_tune():
    stats = metrics.tune_statistics(JIG)
    assert stats["range"] == max(p for p, _ in metrics.melody(JIG).notes()) - min(
        p for p, _ in metrics.melody(JIG).notes())
    cadences, bars = stats["cadence_bars"]
    assert 0 < cadences <= bars
    assert 0 < stats["distinct_bars"] <= 1
    assert sum(stats["pitch_classes"].values()) == len(metrics.melody(JIG).notes())


# --------------------------------------------------------------------------------------------
# The command line and the run


def test_cli_parses_the_eval_options():
    from tunesmith.cli import build_parser

    argv = ["eval", "--configs", "no-adapter,greedy", "--quick", "--seeds", "2", "--adapter", "none",
            "--out", "/tmp/x"]
    args = build_parser("eval").parse_args(argv)
    config = evaluate.config_from_args(args)
    assert config.configs == ("no-adapter", "greedy") and config.quick and config.seed_list() == [0, 1]
    assert config.adapter == "none"
    assert config.command == ("tunesmith eval --configs no-adapter,greedy --quick --seeds 2 --adapter none "
                              "--out /tmp/x")
    with pytest.raises(ValueError, match="unknown configuration"):
        evaluate.EvalConfig(out="x", configs=("turbo",))


def test_quick_subset_exists_in_the_suite():
    prompts, scripts = evaluate.load_suite(evaluate.EvalConfig(out="x", quick=True))
    assert [p["id"] for p in prompts] == list(evaluate.QUICK_PROMPTS)
    assert [s["id"] for s in scripts] == list(evaluate.QUICK_SCRIPTS)
    all_prompts, _ = evaluate.load_suite(evaluate.EvalConfig(out="x"))
    assert len(all_prompts) >= 60


@pytest.fixture(scope="module")
def tiny_loader():
    """A loader giving a two-layer llama with random weights over SmolLM2's real tokenizer;
    it refuses Gemma, as a machine without that base would."""
    import torch

    from agent.errors import ModelError
    from ui_helpers import tiny_loaded_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def load(model_config):
        if model_config.base == "gemma3-270m":
            raise ModelError("gemma3-270m is not installed here")
        return tiny_loaded_model(model_config, load_seconds=0.01)

    yield load
    torch.set_num_threads(threads)


def test_quick_run_on_a_tiny_model_writes_the_table(tmp_path, tiny_loader):
    scripts = tmp_path / "scripts.jsonl"
    scripts.write_text(json.dumps({"id": "t1", "turns": [
        {"user": REEL},  # pasted ABC (it validates): no model needed for this script
        {"user": "set the tempo to 90 bpm", "check": {"tempo_bpm": 90}},
        {"user": "make it faster", "check": {"tempo_change": "faster"}},
        {"user": "transpose it up a whole step", "check": {"transpose_semitones": 2, "tonic": "E"}},
        {"user": "undo", "check": {"undo": True}},
        {"user": "what key is it in?", "check": {"unchanged": True}},
    ]}) + "\n")
    prompts = tmp_path / "prompts.jsonl"  # one short tune keeps the tiny model's work small
    prompts.write_text(json.dumps({"id": "t4", "prompt": "a 4 bar tune in G",
                                   "expect": {"tonic": "G", "mode": "major", "bars": 4}}) + "\n")
    config = evaluate.EvalConfig(out=str(tmp_path / "out"), configs=("no-adapter", "unconstrained", "gemma"),
                                 quick=True, adapter="none",
                                 prompts_file=str(prompts), prompt_ids=("t4",),
                                 scripts_file=str(scripts), script_ids=("t1",),
                                 test_split=str(tmp_path / "absent-test.jsonl"),
                                 train_data=str(tmp_path / "absent-train.jsonl"),
                                 train_ids=str(tmp_path / "absent-ids.txt"), isolate=False)
    code = evaluate.run(config, loader=tiny_loader)
    assert code == 1  # gemma could not be loaded: the run says so

    out = tmp_path / "out"
    table = (out / "benchmark.md").read_text()
    result = json.loads((out / "benchmark.json").read_text())
    headings = (
        "| config | tunes | valid, 1st try | valid after repair | mean attempts | key+mode | meter "
        "| tempo | length | instrument | lyrics on theme |",
        "| config | lyrics measured | syllable fit | rhyme | stress on strong | word stress | short "
        "| range | edit turns passed |",
        "| config | tunes | JS pitch class | JS pitch class, same mode | JS interval | JS length "
        "| JS length, same meter | range | cadence | distinct bars | copies |",
        "| config | compose s | exact edit s | creative edit s | lyrics edit s | other turns s "
        "| 16-bar tune s | tokens/s | decoding tok/s | threads | load s | peak RSS MB |",
    )
    for heading in headings:
        assert heading in table
    assert "| *real songs* | 4 | 1.00 |" in table  # the yardstick row of the lyrics table
    assert "| gemma | failed: gemma3-270m is not installed here |" in table
    assert "no held-out split" in table and "no training split" in table
    assert result["against_baseline"] == {} and "Against the bare base" not in table  # nothing to compare with
    assert "- Machine: " in table
    assert "- Command: `tunesmith eval --configs no-adapter,unconstrained,gemma --quick" in table

    row = result["configurations"]["no-adapter"]
    assert row["prompts"] == 1
    assert row["validity"]["after_repair"]["of"] == 1
    assert set(row["control"]) == {"key", "bars"}
    # the pasted tune's exact edits are deterministic: every check passes
    checked = ("tempo_bpm", "tempo_change", "transpose_semitones", "tonic", "undo", "unchanged")
    assert row["edits"]["checks"] == {name: {"share": 1.0, "passed": 1, "of": 1} for name in checked}
    assert row["cost"]["seconds"]["compose"]["n"] == 1
    prompt = json.loads((out / "records" / "no-adapter.json").read_text())["prompts"][0]
    assert prompt["bars"] == 4 and 0 < prompt["decode_seconds"] <= prompt["compose_seconds"]
    # decoding alone is faster than the compose around it; a 4-bar tune gives no 16-bar timing
    assert row["cost"]["decode_tokens_per_second"] >= row["cost"]["tokens_per_second"] > 0
    assert row["cost"]["compose_16_bars"] is None
    assert result["configurations"]["gemma"] == {"failed": "gemma3-270m is not installed here"}
    raw = result["configurations"]["unconstrained"]  # the raw model: composing only
    assert raw["prompts"] == 1 and raw["validity"]["after_repair"]["of"] == 1
    records = json.loads((out / "records" / "no-adapter.json").read_text())
    assert records["prompts"][0]["id"] == "t4"
    if records["prompts"][0]["abc"]:
        assert (out / "benchmark-sample.png").read_bytes()[:4] == b"\x89PNG"

    # Run again reusing the records: no model is loaded for the configurations that ran.
    def refuse(model_config):
        raise AssertionError("a reused configuration loaded a model")

    again = evaluate.EvalConfig(**{**config.to_dict(), "configs": ("no-adapter", "unconstrained"),
                                   "reuse_records": True, "command": ""})
    assert evaluate.run(again, loader=refuse) == 0
    rerun = json.loads((out / "benchmark.json").read_text())
    assert rerun["configurations"]["no-adapter"] == row
    assert "--reuse-records" in rerun["command"]


def test_against_baseline_pairs_the_prompts_both_configurations_answered():
    """Each configuration's divergence minus the bare base's, over the prompts both answered:
    the point difference is the plain divergences' difference, and a configuration whose tunes
    are the held-out tunes themselves is closer in every draw."""
    held_out = [REEL, JIG, HORNPIPE, SONG, AIR]
    reference = evaluate.Reference(metrics.music_profile(held_out), None, None, "test", "none",
                                   metrics.profiles_by_meter(held_out), metrics.profiles_by_mode(held_out))
    flat = "X:1\nM:4/4\nL:1/8\nK:G\n" + "F2F2 F2F2|" * 8 + "\n"

    def record(tunes: list[str | None]) -> dict:
        return {"prompts": [{"id": f"p{i}", "seed": 0, "abc": abc} for i, abc in enumerate(tunes)]}

    ours = record(held_out + [REEL])  # p5 only ours: left out
    theirs = record([flat, flat, flat, flat, None])  # p4 not answered: left out
    result = evaluate.against_baseline({"default": ours, "no-adapter": theirs, "broken": {"failed": "x"}},
                                       reference, draws=300)
    assert set(result) == {"default"}
    pitch = result["default"]["js_pitch_class"]
    pooled = metrics.compare_profiles(metrics.music_profile(held_out[:4]), reference.test)
    flat_pooled = metrics.compare_profiles(metrics.music_profile([flat] * 4), reference.test)
    assert pitch["pairs"] == 4
    assert abs(pitch["difference"] - (pooled["js_pitch_class"] - flat_pooled["js_pitch_class"])) < 1e-5
    assert pitch["high"] < 0 and pitch["closer_share"] == 1.0
    assert set(result["default"]) == {key for key, _, _ in evaluate.PAIRED_MEASURES}
    assert evaluate.against_baseline({"default": ours}, reference) == {}  # no bare base ran


def test_matched_yardstick_picks_training_tunes_of_the_kinds_asked():
    """Real tunes of the kind each generated tune was asked to be: a jig asked for is matched by
    the training jig, not the reel, so against a held-out set of that jig it is at 0; a kind no
    training tune has (by meter and mode either) is left out."""
    held_out = [JIG]
    reference = evaluate.Reference(metrics.music_profile(held_out), None, None, "test", "none",
                                   metrics.profiles_by_meter(held_out), metrics.profiles_by_mode(held_out),
                                   train_tunes=[JIG, REEL])
    assert metrics.tune_kind(JIG) != metrics.tune_kind(REEL)
    five_four = "X:1\nM:5/4\nL:1/8\nK:C\nCDEFG ABcde|]\n"
    records = {"default": {"prompts": [{"abc": JIG}, {"abc": five_four}, {"abc": None}]},
               "broken": {"failed": "x"}}
    matched = evaluate.matched_reference(records, reference, draws=3)
    assert matched["tunes"] == 1 and matched["draws"] == 3
    assert matched["js_pitch_class"] == 0.0 and matched["js_length_same_meter"] == 0.0
    assert evaluate.matched_reference({"default": {"prompts": [{"abc": five_four}]}}, reference) is None
    assert evaluate.matched_reference(records, evaluate.Reference(None, None, None, "", "")) is None


def test_music_profile_survives_the_json_cache():
    profile = metrics.music_profile([REEL, JIG, HORNPIPE])
    text = json.dumps(evaluate._profile_to_dict(profile))
    assert evaluate._profile_from_dict(json.loads(text)) == profile


def test_sixteen_bar_timing_takes_plain_sixteen_bar_tunes_only():
    """The 16-bar figure is the composer's time for 16-bar tunes without lyrics; the decoding
    rate counts the decoding loop's seconds only."""
    def prompt(bars: int, seconds: float, expect: dict) -> dict:
        return {"id": f"p{bars}-{seconds}", "prompt": "", "expect": expect, "intent": "compose",
                "valid": False, "attempts": 1, "tokens": 100, "compose_seconds": seconds,
                "decode_seconds": seconds / 2, "bars": bars, "seconds": seconds + 1, "abc": None,
                "reply": "", "internal_error": False, "direct": False}

    jig = prompt(18, 4.0, {})  # 16 bars as written with two pickups: 18 bar lines' worth
    jig["abc"] = "X:1\nT:t\nM:6/8\nL:1/8\nK:G\n" + ("|: F | " + "GGF DEG | " * 7 + "A3 G2 :|\n") * 2
    prompts = [prompt(16, 3.0, {}), prompt(16, 5.0, {}), jig, prompt(32, 9.0, {}),
               prompt(16, 20.0, {"lyrics_theme": "moon"})]
    reference = evaluate.Reference(None, None, None, "none", "none")
    cost = evaluate.summarize({"prompts": prompts, "scripts": []}, reference)["cost"]
    assert cost["compose_16_bars"]["n"] == 3 and cost["compose_16_bars"]["p50"] == 4.0
    assert cost["decode_tokens_per_second"] == round(500 / 20.5, 1)
    assert cost["tokens_per_second"] == round(500 / 41.0, 1)


def test_each_seed_of_a_prompt_samples_with_that_seed(monkeypatch):
    """A prompt asked under seeds 0, 1, 2 is three samplings, not one sampling three times."""
    import types

    from agent import conversation
    from agent.session import Session

    seen = []

    def fake_turn(session, message, composer, config):
        seen.append(config.seed)
        return types.SimpleNamespace(intent="compose", details={}, reply="(none)", changed=False,
                                     session=Session())

    monkeypatch.setattr(conversation, "take_turn", fake_turn)
    item = {"id": "t", "prompt": "a jig in G", "expect": {}}
    for seed in (0, 1, 2):
        record = evaluate._prompt_record(item, seed, None, conversation.AgentConfig(), None, False)
        assert record["seed"] == seed
    assert seen == [0, 1, 2]
