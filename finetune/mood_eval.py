"""The mood benchmark: do moods change the cues listeners hear?

Three parts, all measured with :func:`agent.mood.measure_cues` (text only, no music21):

* **Held-out medians.** For each style, the median tempo (quarter notes a minute), mean pitch
  and notes per beat of the held-out tunes (``finetune/splits/test.jsonl``). A tune composed
  with a mood passes when each cue the mood moves lies on the asked side of its style's median
  (a sad waltz slower, lower and sparser than the median waltz) and its mode is the mood's
  when the prompt named none (:func:`judge_composed`).
* **Mood edits.** An edit passes when at least two cues moved the asked way and none moved
  against it (:func:`judge_edit`).
* **The suite** ``finetune/suite/moods.jsonl``: mood prompts for new tunes (17 moods x waltz
  and jig) and ten mood edits of held-out tunes, each with the cue directions it expects.

:func:`main` runs the edits (exact edits need no model) with the renders the app makes first
(ABC, MIDI, MusicXML, SVG) and prints a Markdown table; composing with a mood needs the model
and is judged by :func:`judge_composed` once the composer follows :func:`agent.mood.compose_plan`.

    .venv/bin/python -m finetune.mood_eval            # the edits table
    .venv/bin/python -m finetune.mood_eval --medians  # the held-out medians by style

>>> judge_edit("X:1\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\nB2 A2 G2|\\n",
...            "X:1\\nM:3/4\\nL:1/8\\nQ:1/4=88\\nK:G\\n!p!B2 A2 G2|\\n", "sad").passed
True
>>> judge_edit("X:1\\nK:G\\nB2 A2 G2|\\n", "X:1\\nK:G\\nB2 A2 G2|\\n", "sad").passed
False
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.mood import (
    DYNAMICS, MINOR_FAMILY, Cues, MoodRequest, compose_plan, cue_directions, find_mood,
    measure_cues, mood_edit,
)

SUITE = Path(__file__).parent / "suite" / "moods.jsonl"
#: The cues judged against the held-out medians.
MEDIAN_CUES = ("tempo", "register", "density")
#: The renders the app shows first after an edit (ui.app.QUICK_FORMATS).
QUICK_FORMATS = ("abc", "midi", "musicxml", "svg")


@dataclass(frozen=True)
class MoodEvalConfig:
    """Settings of the mood benchmark."""

    suite: Path = field(default=SUITE, metadata={"help": "the mood prompts (JSONL)"})
    split: Path | None = field(default=None, metadata={
        "help": "held-out tunes (JSONL); None: finetune/splits/test.jsonl"})
    formats: tuple[str, ...] = field(default=QUICK_FORMATS, metadata={
        "help": "renders timed with each edit (the app's quick formats)"})
    min_moved: int = field(default=2, metadata={
        "help": "cues an edit must move the asked way to pass (and none against)"})
    repeat: int = field(default=3, metadata={
        "help": "times each edit and its renders are timed; the median counts (the machine "
                "may be busy with other work)"})


# --------------------------------------------------------------------------------------------
# Held-out medians


def _cue_values(cues: Cues) -> dict[str, float]:
    return {"tempo": cues.quarter_bpm, "register": cues.mean_pitch,
            "density": cues.notes_per_beat}


def style_medians(tunes: list[dict] | None = None) -> dict[str, dict[str, float]]:
    """Per style (and ``"all"``), the median of each cue over the held-out tunes, with
    ``count``. ``tunes`` are rows of the test split (``abc`` and ``attributes.style``).

    >>> rows = [{"abc": "X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\nB2 A2 G2|\\n",
    ...          "attributes": {"style": "waltz"}}]
    >>> style_medians(rows)["waltz"]
    {'tempo': 120.0, 'register': 69.0, 'density': 1.0, 'count': 1}
    >>> style_medians([])
    Traceback (most recent call last):
    ...
    ValueError: no held-out tunes to take medians of
    """
    if tunes is None:
        from finetune.data import load_test_split

        tunes = load_test_split()
    if not tunes:
        raise ValueError("no held-out tunes to take medians of")
    groups: dict[str, list[dict[str, float]]] = {}
    for row in tunes:
        values = _cue_values(measure_cues(row["abc"]))
        groups.setdefault(row["attributes"].get("style") or "none", []).append(values)
        groups.setdefault("all", []).append(values)
    return {style: {**{cue: round(statistics.median(v[cue] for v in values), 2)
                       for cue in MEDIAN_CUES}, "count": len(values)}
            for style, values in groups.items()}


@dataclass(frozen=True)
class ComposeJudgement:
    """A composed tune against its style's held-out medians: per cue, True (asked side), False
    (not) or None (the mood does not move it); ``mode_ok`` None when the mood names no mode
    or the prompt named one."""

    cues: dict[str, bool | None]
    values: dict[str, float]
    medians: dict[str, float]
    mode_ok: bool | None

    @property
    def passed(self) -> bool:
        return all(ok is not False for ok in self.cues.values()) and self.mode_ok is not False


def judge_composed(abc: str, mood: "str | MoodRequest", style: str,
                   medians: dict[str, dict[str, float]], mode_named: bool = False
                   ) -> ComposeJudgement:
    """Whether a tune composed with ``mood`` lies on the asked side of its style's medians.

    >>> medians = {"waltz": {"tempo": 120.0, "register": 70.0, "density": 1.3}}
    >>> sad = "X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=88\\nK:Am\\nA,4 C2|E6|]\\n"
    >>> judge_composed(sad, "sad", "waltz", medians).passed
    True
    >>> judge_composed(sad, "joyful", "waltz", medians).cues
    {'tempo': False, 'register': False, 'density': False}
    """
    ways = cue_directions(mood)
    median = medians.get(style) or medians["all"]
    cues = measure_cues(abc)
    values = _cue_values(cues)
    verdicts: dict[str, bool | None] = {}
    for cue in MEDIAN_CUES:
        way = ways[cue]
        verdicts[cue] = None if way == 0 else (values[cue] - median[cue]) * way > 0
    plan_mode = compose_plan(mood, style, cues.meter).mode
    mode_ok = None
    if plan_mode and not mode_named and cues.mode:
        mode_ok = (cues.mode in MINOR_FAMILY) == (plan_mode in MINOR_FAMILY)
    return ComposeJudgement(verdicts, values, {c: median[c] for c in MEDIAN_CUES}, mode_ok)


# --------------------------------------------------------------------------------------------
# Edits


def _moves(before: Cues, after: Cues) -> dict[str, int]:
    """Which way each cue moved from ``before`` to ``after`` (+1, -1, 0)."""
    def sign(delta: float, tolerance: float = 1e-9) -> int:
        return 0 if abs(delta) <= tolerance else (1 if delta > 0 else -1)

    # staccato marks up or slurs down both make a tune more detached
    detached = sign(after.staccato - before.staccato) or -sign(after.slurred - before.slurred)
    mode = 0
    if (before.mode in MINOR_FAMILY) != (after.mode in MINOR_FAMILY):
        mode = -1 if after.mode in MINOR_FAMILY else 1
    return {
        "tempo": sign(after.quarter_bpm - before.quarter_bpm),
        "register": sign((after.mean_pitch or 0) - (before.mean_pitch or 0), 0.01),
        "density": sign(after.notes_per_beat - before.notes_per_beat, 0.01),
        "dynamics": sign(DYNAMICS.index(after.dynamics) - DYNAMICS.index(before.dynamics)),
        "articulation": detached,
        "mode": mode,
    }


@dataclass(frozen=True)
class EditJudgement:
    """The cues an edit moved the asked way and against it."""

    right: tuple[str, ...]
    wrong: tuple[str, ...]
    min_moved: int = 2

    @property
    def passed(self) -> bool:
        return len(self.right) >= self.min_moved and not self.wrong


def judge_edit(before_abc: str, after_abc: str, mood: "str | MoodRequest",
               min_moved: int = 2) -> EditJudgement:
    """At least ``min_moved`` cues moved the way ``mood`` asks and none against it.

    >>> j = judge_edit("X:1\\nM:2/4\\nL:1/8\\nQ:1/4=100\\nK:G\\nGABc|\\n",
    ...                "X:1\\nM:2/4\\nL:1/8\\nQ:1/4=120\\nK:G\\n!pp!GABc|\\n", "happy")
    >>> j.right, j.wrong, j.passed
    (('tempo',), ('dynamics',), False)
    """
    ways = cue_directions(mood)
    moved = _moves(measure_cues(before_abc), measure_cues(after_abc))
    right = tuple(c for c, way in ways.items() if way and moved[c] == way)
    wrong = tuple(c for c, way in ways.items() if way and moved[c] == -way)
    return EditJudgement(right, wrong, min_moved)


# --------------------------------------------------------------------------------------------
# The suite


def load_suite(path: Path = SUITE) -> list[dict]:
    """The mood prompts: dicts with ``id``, ``kind`` ("compose" or "edit"), ``prompt``,
    ``mood``, ``expect`` and, for compose, ``style`` and ``meter``; for edits, ``tune`` (a
    held-out tune's id)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class EditRow:
    """One mood edit of the suite, run and judged."""

    id: str
    prompt: str
    tune: str
    reply: str
    right: tuple[str, ...]
    wrong: tuple[str, ...]
    passed: bool
    edit_seconds: float
    render_seconds: float
    format_seconds: dict[str, float]


def run_edits(config: MoodEvalConfig = MoodEvalConfig()) -> list[EditRow]:
    """Run every mood edit of the suite on its held-out tune, timed with the renders (after
    one untimed edit and render, as in the running app)."""
    from agent.render import render_score_text
    from finetune.data import load_test_split

    tunes = {row["id"]: row["abc"] for row in load_test_split(config.split)}
    items = [item for item in load_suite(config.suite) if item["kind"] == "edit"]
    if items:  # the app has music21, verovio and the edit modules loaded: time them warm
        warm = tunes[items[0]["tune"]]
        mood_edit(warm, "sad")
        with tempfile.TemporaryDirectory() as folder:
            render_score_text(warm, Path(folder), formats=config.formats)
    rows = []
    for item in items:
        before = tunes[item["tune"]]
        request = find_mood(item["prompt"])
        if request is None or request.mood is None:
            raise ValueError(f"{item['id']}: no known mood in {item['prompt']!r}")
        edit_times, render_times, by_format = [], [], {}
        for _ in range(max(1, config.repeat)):
            started = time.perf_counter()
            edit = mood_edit(before, request)
            edited = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                files = render_score_text(edit.abc, Path(folder), formats=config.formats)
            render_times.append(time.perf_counter() - edited)
            edit_times.append(edited - started)
            for name, seconds in files.seconds.items():
                by_format.setdefault(name, []).append(seconds)
        judged = judge_edit(before, edit.abc, request, config.min_moved)
        rows.append(EditRow(item["id"], item["prompt"], item["tune"], edit.reply, judged.right,
                            judged.wrong, judged.passed, statistics.median(edit_times),
                            statistics.median(render_times),
                            {name: statistics.median(v) for name, v in by_format.items()}))
    return rows


def edits_table(rows: list[EditRow]) -> str:
    """A Markdown table of the edits and a line with the pass rate and times."""
    lines = ["| id | prompt | held-out tune | moved the asked way | against | pass | edit s | "
             "with renders s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.id} | {r.prompt} | {r.tune} | {', '.join(r.right) or '-'} | "
                     f"{', '.join(r.wrong) or '-'} | {'yes' if r.passed else 'no'} | "
                     f"{r.edit_seconds:.3f} | {r.edit_seconds + r.render_seconds:.3f} |")
    passed = sum(r.passed for r in rows)
    totals = [r.edit_seconds + r.render_seconds for r in rows]
    lines.append("")
    lines.append(f"Passed {passed}/{len(rows)} ({100 * passed / max(1, len(rows)):.0f} %); "
                 f"per edit with renders: median {statistics.median(totals):.3f} s, "
                 f"max {max(totals):.3f} s; the edit alone: median "
                 f"{statistics.median(r.edit_seconds for r in rows):.3f} s.")
    names = sorted({name for r in rows for name in r.format_seconds})
    if names:
        lines.append("Median seconds by step of the render: " + ", ".join(
            f"{name} {statistics.median(r.format_seconds.get(name, 0.0) for r in rows):.3f}"
            for name in names) + ".")
    return "\n".join(lines)


def medians_table(medians: dict[str, dict[str, float]]) -> str:
    """The held-out medians as a Markdown table, largest styles first."""
    lines = ["| style | tunes | tempo (quarters a minute) | mean pitch (MIDI) | notes per beat |",
             "|---|---|---|---|---|"]
    for style, m in sorted(medians.items(), key=lambda item: -item[1]["count"]):
        lines.append(f"| {style} | {m['count']} | {m['tempo']:g} | {m['register']:g} | "
                     f"{m['density']:g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the mood edits table (or, with ``--medians``, the held-out medians)."""
    parser = argparse.ArgumentParser(prog="python -m finetune.mood_eval", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--suite", type=Path, default=SUITE, help="the mood prompts (JSONL)")
    parser.add_argument("--medians", action="store_true", help="print the held-out medians")
    parser.add_argument("--repeat", type=int, default=3, help="timings per edit (median)")
    args = parser.parse_args(argv)
    if args.medians:
        print(medians_table(style_medians()))
        return 0
    rows = run_edits(MoodEvalConfig(suite=args.suite, repeat=args.repeat))
    print(edits_table(rows))
    compose = [item for item in load_suite(args.suite) if item["kind"] == "compose"]
    moods = sorted({item["mood"] for item in compose})
    styles = sorted({item["style"] for item in compose})
    print(f"\n{len(compose)} compose prompts ({len(moods)} moods x {', '.join(styles)}) wait for "
          "the composer to follow agent.mood.compose_plan; judge_composed judges them.")
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

