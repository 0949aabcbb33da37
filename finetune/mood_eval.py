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
(ABC, MIDI, MusicXML, SVG) and prints a Markdown table; with ``--compose N`` it also composes N
of the mood prompts (spread over moods and styles) through the chat's own path
(:func:`agent.conversation.take_turn`, which follows :func:`agent.mood.compose_plan`) and judges
them with :func:`judge_composed`. ``tunesmith eval --mood-prompts N`` adds the same as the
report's Mood section (:func:`benchmark_section`).

    .venv/bin/python -m finetune.mood_eval              # the edits table
    .venv/bin/python -m finetune.mood_eval --medians    # the held-out medians by style
    .venv/bin/python -m finetune.mood_eval --compose 8  # and 8 composed mood prompts

>>> judge_edit("X:1\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\nB2 A2 G2|\\n",
...            "X:1\\nM:3/4\\nL:1/8\\nQ:1/4=88\\nK:G\\n!p!B2 A2 G2|\\n", "sad").passed
True
>>> judge_edit("X:1\\nK:G\\nB2 A2 G2|\\n", "X:1\\nK:G\\nB2 A2 G2|\\n", "sad").passed
False
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.mood import (
    DYNAMICS, MINOR_FAMILY, Cues, MoodRequest, compose_plan, cue_directions, find_mood,
    measure_cues,
)

from agent.styles import BY_NAME as STYLES
from agent.styles import usual_tempo
from agent.version_files import QUICK_FORMATS  # the renders the app shows first after an edit

SUITE = Path(__file__).parent / "suite" / "moods.jsonl"
#: The cues judged against the held-out medians.
MEDIAN_CUES = ("tempo", "register", "density")


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


def _with_usual_tempo(row: dict) -> str:
    """A held-out tune whose ``Q:`` the data builder took from its style's usual speed
    (``attributes.tempo_from == "style"``) with that speed as :func:`agent.styles.usual_tempo`
    gives it now: the split was built when a reel in cut time got ``Q:1/2=208``.

    >>> row = {"abc": "X:1\\nR:reel\\nM:2/2\\nL:1/8\\nQ:1/2=208\\nK:D\\nABcd|\\n",
    ...        "attributes": {"style": "reel", "tempo_from": "style"}}
    >>> _with_usual_tempo(row).splitlines()[4]
    'Q:1/2=104'
    """
    attributes = row.get("attributes") or {}
    if attributes.get("tempo_from") != "style":
        return row["abc"]
    cues = measure_cues(row["abc"])
    style = STYLES.get(attributes.get("style") or "")
    try:
        tempo = usual_tempo(style, cues.meter)
    except ValueError:
        return row["abc"]
    return re.sub(r"(?m)^Q:.*$", lambda _: f"Q:{tempo}", row["abc"], count=1)


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
        values = _cue_values(measure_cues(_with_usual_tempo(row)))
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
    """Run every mood edit of the suite on its held-out tune the way the app does, timed: the
    turn (:func:`agent.conversation.take_turn` without a model, so the exact edits only), then
    the files the app shows first (:func:`agent.version_files.render_files` of
    ``config.formats`` into a new folder), after one untimed turn and render, as in the
    running app."""
    from agent.conversation import Composer, take_turn
    from agent.session import Session, add_version, current_abc
    from agent.version_files import render_files
    from finetune.data import load_test_split

    tunes = {row["id"]: row["abc"] for row in load_test_split(config.split)}
    items = [item for item in load_suite(config.suite) if item["kind"] == "edit"]
    composer = Composer.unavailable()

    def turn_and_render(before: str, prompt: str) -> tuple[str, str, float, float]:
        session = add_version(Session(), before, "the held-out tune")
        started = time.perf_counter()
        turn = take_turn(session, prompt, composer)
        edited = time.perf_counter()
        after = current_abc(turn.session)
        with tempfile.TemporaryDirectory() as folder:
            files = render_files(after, folder, tuple(config.formats))
        if files.problems:
            raise ValueError(f"{prompt!r}: the renders failed: {'; '.join(files.problems)}")
        return after, turn.reply, edited - started, time.perf_counter() - edited

    if items:  # the app has music21, verovio and the edit modules loaded: time them warm
        turn_and_render(tunes[items[0]["tune"]], items[0]["prompt"])
    rows = []
    for item in items:
        before = tunes[item["tune"]]
        request = find_mood(item["prompt"])
        if request is None or request.mood is None:
            raise ValueError(f"{item['id']}: no known mood in {item['prompt']!r}")
        edit_times, render_times = [], []
        for _ in range(max(1, config.repeat)):
            after, reply, edit_s, render_s = turn_and_render(before, item["prompt"])
            edit_times.append(edit_s)
            render_times.append(render_s)
        judged = judge_edit(before, after, request, config.min_moved)
        rows.append(EditRow(item["id"], item["prompt"], item["tune"], reply, judged.right,
                            judged.wrong, judged.passed, statistics.median(edit_times),
                            statistics.median(render_times), {}))
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


@dataclass(frozen=True)
class ComposeRow:
    """One mood prompt composed through the conversation and judged against its style's
    held-out medians."""

    id: str
    prompt: str
    mood: str
    style: str
    tempo: str
    values: dict[str, float]
    medians: dict[str, float]
    cues: dict[str, bool | None]
    mode: str | None
    mode_ok: bool | None
    passed: bool
    seconds: float
    abc: str


def pick(items: list[dict], limit: int | None) -> list[dict]:
    """``limit`` items spread evenly over the list (every mood and style get their turn).

    >>> [item["id"] for item in pick([{"id": n} for n in range(6)], 3)]
    [0, 2, 4]
    >>> pick([{"id": 1}], -1)
    Traceback (most recent call last):
    ...
    ValueError: limit must be positive or None, not -1
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive or None, not {limit}")
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def run_compose(composer: object, agent_config: object, limit: int | None = None,
                config: MoodEvalConfig = MoodEvalConfig(), bars: int | None = None,
                on_row: "Callable[[ComposeRow], None] | None" = None) -> list[ComposeRow]:
    """Compose the suite's mood prompts (``limit`` of them, spread evenly) through
    :func:`agent.conversation.take_turn`, the app's own path, each from an empty session with
    the seed of ``agent_config``, and judge each against its style's held-out medians.
    ``bars`` asks for that many bars ("a sad waltz in 8 bars": shorter runs on a slow
    machine); ``on_row`` hears of each row as it is judged."""
    from agent.conversation import take_turn
    from agent.session import Session, current_abc
    from agent.understand import understand
    from finetune.data import load_test_split

    medians = style_medians(load_test_split(config.split))
    items = pick([item for item in load_suite(config.suite) if item["kind"] == "compose"], limit)
    rows = []
    for item in items:
        started = time.perf_counter()
        prompt = item["prompt"] + (f" in {bars} bars" if bars else "")
        turn = take_turn(Session(), prompt, composer, agent_config)
        seconds = time.perf_counter() - started
        abc = current_abc(turn.session)
        if not turn.changed or abc is None:
            rows.append(ComposeRow(item["id"], item["prompt"], item["mood"], item["style"], "",
                                   {}, {}, {}, None, None, False, seconds, turn.reply))
            continue
        attrs = understand(item["prompt"], has_score=False).attributes
        mode_named = attrs.mode is not None and "mode" not in attrs.inferred
        request = find_mood(item["prompt"])
        judged = judge_composed(abc, request, item["style"], medians, mode_named)
        cues = measure_cues(abc)
        rows.append(ComposeRow(item["id"], prompt, request.mood, item["style"],
                               f"{cues.beat}={cues.bpm:g}", judged.values, judged.medians,
                               judged.cues, cues.mode, judged.mode_ok, judged.passed, seconds,
                               abc))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def compose_table(rows: list[ComposeRow]) -> str:
    """A Markdown table of the composed mood prompts and the pass rate of each cue."""
    mark = {True: "yes", False: "no", None: "-"}
    lines = ["| id | prompt | Q: | tempo (median) | mean pitch (median) | notes a beat (median) | "
             "mode | on the asked side (tempo, register, density, mode) | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.values:
            lines.append(f"| {r.id} | {r.prompt} | - | - | - | - | - | not composed: "
                         f"{r.abc[:60]} | {r.seconds:.0f} |")
            continue
        sides = ", ".join(mark[r.cues.get(c)] for c in MEDIAN_CUES) + ", " + mark[r.mode_ok]
        lines.append(
            f"| {r.id} | {r.prompt} | {r.tempo} | {r.values['tempo']:g} ({r.medians['tempo']:g}) | "
            f"{r.values['register']:g} ({r.medians['register']:g}) | {r.values['density']:g} "
            f"({r.medians['density']:g}) | {r.mode} | {sides} | {r.seconds:.0f} |")
    lines.append("")
    rates = []
    for cue in (*MEDIAN_CUES, "mode"):
        judged = [(r.mode_ok if cue == "mode" else r.cues.get(cue)) for r in rows]
        asked = [ok for ok in judged if ok is not None]
        if asked:
            rates.append(f"{cue} {sum(asked)}/{len(asked)} ({100 * sum(asked) / len(asked):.0f} %)")
    passed = sum(r.passed for r in rows)
    lines.append(f"On the asked side of the style's held-out median: {', '.join(rates)}; every "
                 f"cue: {passed}/{len(rows)} prompts. Median {statistics.median(r.seconds for r in rows):.0f} s "
                 "a tune." if rows else "No prompts composed.")
    return "\n".join(lines)


def _split(config: MoodEvalConfig) -> list[dict]:
    from finetune.data import load_test_split

    return load_test_split(config.split)


def mood_section(composer: object | None, agent_config: object | None, limit: int | None,
                 config: MoodEvalConfig = MoodEvalConfig()) -> str:
    """The "Mood" section of the benchmark report: the held-out medians, the mood edits and,
    with a composer, ``limit`` composed mood prompts (None: all)."""
    parts = ["## Mood", "", "Held-out medians by style (finetune/splits/test.jsonl):", "",
             medians_table(style_medians(_split(config))), "",
             "Mood edits (exact; with the app's renders):",
             "", edits_table(run_edits(config))]
    if composer is not None:
        parts += ["", "Composed with a mood (the chat's path):", "",
                  compose_table(run_compose(composer, agent_config, limit, config))]
    return "\n".join(parts)


def benchmark_section(limit: int, adapter: str | None, threads: int, split: str | Path | None,
                      loader: object | None = None) -> str:
    """The Mood section of ``tunesmith eval``: the mood edits always; ``limit`` composed mood
    prompts (0: none, -1: all) with the model ``adapter`` (None: the shipped one; ``loader``
    replaces the model loader in tests), one seed (0)."""
    config = MoodEvalConfig(split=Path(split) if split else None, repeat=1)
    if config.split is not None and not config.split.exists():
        return f"## Mood\n\nNot measured: the held-out split {config.split} is missing."
    composer = agent_config = None
    if limit:
        from agent.conversation import AgentConfig, Composer

        agent_config = AgentConfig(seed=0, threads=threads, adapter=adapter)
        composer = Composer(agent_config, loader=loader)
    return mood_section(composer, agent_config, None if limit < 0 else limit, config)


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
    parser.add_argument("--compose", type=int, default=0, help="compose this many of the mood "
                        "prompts (spread over moods and styles) with the model; 0: none, -1: all")
    parser.add_argument("--seed", type=int, default=0, help="seed of each composed prompt")
    parser.add_argument("--bars", type=int, default=None, help="ask each composed prompt for "
                        "this many bars (default: the style's usual length)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--formats", default=",".join(QUICK_FORMATS), help="the files timed "
                        "with each edit, comma-separated (default: what the app shows first)")
    args = parser.parse_args(argv)
    if args.medians:
        print(medians_table(style_medians()))
        return 0
    config = MoodEvalConfig(suite=args.suite, repeat=args.repeat,
                            formats=tuple(name.strip() for name in args.formats.split(",")))
    rows = run_edits(config)
    print(edits_table(rows))
    passed = all(r.passed for r in rows)
    if args.compose:
        from agent.conversation import AgentConfig, Composer

        agent_config = AgentConfig(seed=args.seed, threads=args.threads)
        composed = run_compose(Composer(agent_config), agent_config,
                               None if args.compose < 0 else args.compose, config, args.bars,
                               on_row=lambda row: print(compose_table([row]).splitlines()[2],
                                                        flush=True))
        print("\n" + compose_table(composed))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

