"""The benchmark: ``tunesmith eval`` runs a fixed prompt suite through the agent and writes a table.

Every prompt of ``finetune/suite/prompts.jsonl`` is sent, for each seed, as the first message of
a fresh session through :func:`agent.conversation.take_turn` (the same turn a person gets), and
every script of ``finetune/suite/scripts.jsonl`` is played turn by turn, each turn's checks
evaluated on the score after it. That is repeated for each *configuration* (the shipped
adapter, the bare base, int8, the unconstrained raw model, greedy decoding, Gemma), each in a
fresh process so its load time and peak memory are its own. The measures are in
:mod:`finetune.metrics`:

- validity: share of prompts with a valid tune on the first decode, and after repair; attempts;
- control: key and mode, meter, tempo, length, instrument, lyrics on theme, per prompt ``expect``;
- lyrics: syllable fit, rhyme rate, stressed syllables on strong beats;
- edits: each scripted check (transposition moves every pitch, lyric edits change no note, undo
  restores the earlier ABC byte for byte, ...);
- music: Jensen-Shannon divergence of pitch-class, interval and note-length histograms from the
  held-out test tunes (``finetune/splits/test.jsonl``), with the training tunes' own divergence
  from them as the yardstick; range, cadential bar endings, distinct bars; copying of more than
  four consecutive bars of a training tune in any key;
- cost: seconds per turn (p50, p90) for composing and each kind of edit, tokens per second, model
  load time, peak resident memory.

``DIR/benchmark.json`` holds everything (each generated tune is in ``DIR/records/``),
``DIR/benchmark.md`` the tables with the date, the machine, the exact command and sample tunes,
and ``DIR/benchmark-sample.png`` one sample's sheet music. ``--reuse-records`` recomputes the
measures and tables from the records of an earlier run (e.g. once the training split exists);
``--threads 1`` keeps torch's threads from waiting on each other on a busy shared machine.

>>> config = EvalConfig(out="/tmp/eval", configs=("no-adapter",), quick=True)
>>> config.seed_list(), len(config.selected_prompt_ids()) == len(QUICK_PROMPTS)
([0], True)
>>> EvalConfig(out="/tmp/eval", configs=("fastest",))
Traceback (most recent call last):
...
ValueError: unknown configuration 'fastest'; choose from default, no-adapter, int8, bfloat16, float32, portable, ort, unconstrained, greedy, sharper, gemma
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from finetune import metrics

__all__ = [
    "CONFIGURATIONS",
    "Configuration",
    "EvalConfig",
    "Reference",
    "add_arguments",
    "config_from_args",
    "load_reference",
    "load_suite",
    "machine_info",
    "markdown_report",
    "run",
    "run_configuration",
    "summarize",
]

REPO = Path(__file__).resolve().parent.parent
SUITE_DIR = Path(__file__).resolve().parent / "suite"
SPLITS_DIR = Path(__file__).resolve().parent / "splits"

#: The subset ``--quick`` runs: a minor waltz, a jig, an 8-bar dorian tune, a tempo, an
#: instrument and a song with words.
QUICK_PROMPTS = ("p01", "p02", "p24", "p43", "p53", "p60")
QUICK_SCRIPTS = ("s01",)
#: The columns of the control table, in order, with their headings.
CONTROL_COLUMNS = (("key", "key+mode"), ("meter", "meter"), ("tempo", "tempo"), ("bars", "length"),
                   ("instrument", "instrument"), ("lyrics", "lyrics on theme"))
#: Turn intents whose seconds the cost table shows (the rest are pooled as "other").
TIMED_INTENTS = (("compose", "compose"), ("exact_edit", "exact edit"),
                 ("creative_edit", "creative edit"), ("lyrics", "lyrics edit"))


@dataclass(frozen=True)
class Configuration:
    """A named set of overrides of :class:`agent.conversation.AgentConfig` (``agent``) and of
    :class:`agent.compose.ComposeConfig` (``compose``)."""

    name: str
    description: str
    agent: dict = field(default_factory=dict)
    compose: dict = field(default_factory=dict)


CONFIGURATIONS = {
    c.name: c for c in (
        Configuration("default", "the shipped adapter (models/tunesmith-smollm2-135m) on SmolLM2-135M, "
                      "merged, on the CPU path `auto` picks (ort: ONNX Runtime, 8-bit weights)"),
        Configuration("no-adapter", "the bare base model, no adapter", agent={"adapter": "none"}),
        Configuration("int8", "the default model with int8 dynamic quantization",
                      agent={"quantize": "int8-dynamic"}),
        Configuration("bfloat16", "the default model in bfloat16 without int8 weights",
                      agent={"quantize": "none"}),
        Configuration("float32", "the default model in float32, not quantized (the float32 CPU path)",
                      agent={"cpu_path": "float32"}),
        Configuration("portable", "the default model on the portable CPU path (no bfloat16 needed: "
                      "float16 weights through fbgemm)", agent={"cpu_path": "portable"}),
        Configuration("ort", "the default model on the ort CPU path (no bfloat16 needed: one ONNX "
                      "Runtime graph a token, 8-bit weights; what a laptop with AVX2 runs)",
                      agent={"cpu_path": "ort"}),
        Configuration("unconstrained", "the default model sampled raw: no grammar, no repair",
                      compose={"constrained": False}),
        Configuration("greedy", "the default model, temperature 0", agent={"temperature": 0.0}),
        Configuration("sharper", "the default model sampled with the earlier, sharper settings: temperature 0.9, "
                      "top-p 0.95, repetition penalty 1.02, no copied run of 2 bars",
                      agent={"temperature": 0.9},
                      compose={"top_p": 0.95, "repetition_penalty": 1.02, "block_ngram": 2}),
        Configuration("gemma", "Gemma 3 270M, no adapter",
                      agent={"base": "gemma3-270m", "adapter": "none"}),
    )
}


@dataclass
class EvalConfig:
    """Settings of the benchmark (``tunesmith eval``)."""

    out: str = field(default="eval", metadata={"help": "folder for benchmark.json, benchmark.md and records"})
    configs: tuple[str, ...] = field(default=tuple(CONFIGURATIONS), metadata={
        "help": "configurations to run: " + ", ".join(CONFIGURATIONS)})
    quick: bool = field(default=False, metadata={
        "help": f"a small subset ({len(QUICK_PROMPTS)} prompts, {len(QUICK_SCRIPTS)} script, 1 seed)"})
    seeds: int | None = field(default=None, metadata={
        "help": "seeds per prompt and script (default 3, or 1 with --quick)"})
    base: str | None = field(default=None, metadata={
        "help": "base model for configurations that do not name their own"})
    adapter: str | None = field(default=None, metadata={
        "help": "adapter folder (or 'none') for configurations that do not name their own"})
    prompts_file: str = field(default=str(SUITE_DIR / "prompts.jsonl"), metadata={"help": "the prompt suite"})
    scripts_file: str = field(default=str(SUITE_DIR / "scripts.jsonl"), metadata={"help": "the edit scripts"})
    prompt_ids: tuple[str, ...] = field(default=(), metadata={
        "help": "run only these prompts (default: all, or the quick subset)"})
    script_ids: tuple[str, ...] | None = field(default=None, metadata={
        "help": "run only these scripts (default: all, or the quick subset; empty for none)"})
    test_split: str = field(default=str(SPLITS_DIR / "test.jsonl"), metadata={
        "help": "held-out test tunes (finetune.data.load_test_split format)"})
    train_data: str = field(default=str(REPO / "data" / "build" / "train.jsonl"), metadata={
        "help": "training examples; without it, finetune/splits/train_ids.txt and the corpus"})
    train_ids: str = field(default=str(SPLITS_DIR / "train_ids.txt"), metadata={
        "help": "ids of the training tunes in the corpus (used when train_data is absent)"})
    isolate: bool = field(default=True, metadata={
        "help": "run each configuration in its own process (its own load time and peak memory)"})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads while the benchmark runs (0: the model loader's choice, one per "
                "core). On a machine shared with other work, 1 avoids threads waiting on each other"})
    reuse_records: bool = field(default=False, metadata={
        "help": "read configurations already run (DIR/records/NAME.json, same prompts and seeds) "
                "instead of running them again; the measures and table are recomputed"})
    samples: int = field(default=3, metadata={"help": "sample tunes shown in the table"})
    mood_prompts: int = field(default=0, metadata={
        "help": "mood prompts composed for the Mood section, spread over moods and styles (0: "
                "only the mood edits, which need no model; -1: all); see finetune.mood_eval"})
    command: str = field(default="", metadata={"help": "the command line, recorded in the table"})

    def __post_init__(self) -> None:
        self.configs = tuple(self.configs)
        for name in self.configs:
            if name not in CONFIGURATIONS:
                raise ValueError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGURATIONS)}")
        if not self.configs:
            raise ValueError("no configuration to run")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError("seeds must be at least 1")
        self.prompt_ids = tuple(self.prompt_ids)
        if self.script_ids is not None:
            self.script_ids = tuple(self.script_ids)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds if self.seeds is not None else (1 if self.quick else 3)))

    def selected_prompt_ids(self) -> tuple[str, ...] | None:
        """The prompt ids to run, or None for all of them."""
        return self.prompt_ids or (QUICK_PROMPTS if self.quick else None)

    def selected_script_ids(self) -> tuple[str, ...] | None:
        if self.script_ids is not None:
            return self.script_ids
        return QUICK_SCRIPTS if self.quick else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``tunesmith eval``."""
    help_of = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(EvalConfig)}
    parser.add_argument("--out", required=True, help=help_of["out"])
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS),
                        help=help_of["configs"] + " (comma-separated; default: all)")
    parser.add_argument("--quick", action="store_true", help=help_of["quick"])
    parser.add_argument("--seeds", type=int, default=None, help=help_of["seeds"])
    parser.add_argument("--base", default=None, help=help_of["base"])
    parser.add_argument("--adapter", default=None, help=help_of["adapter"])
    parser.add_argument("--prompts", default="", help="comma-separated prompt ids: " + help_of["prompt_ids"])
    parser.add_argument("--scripts", default=None,
                        help="comma-separated script ids: " + help_of["script_ids"])
    parser.add_argument("--test-split", default=EvalConfig.test_split, help=help_of["test_split"])
    parser.add_argument("--train-data", default=EvalConfig.train_data, help=help_of["train_data"])
    parser.add_argument("--threads", type=int, default=0, help=help_of["threads"])
    parser.add_argument("--reuse-records", action="store_true", help=help_of["reuse_records"])
    parser.add_argument("--mood-prompts", type=int, default=0, help=help_of["mood_prompts"])
    parser.add_argument("--in-process", action="store_true",
                        help="run the configurations in this process (peak memory is then cumulative)")
    return parser


def _ids(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _command_line(config: EvalConfig) -> str:
    """The ``tunesmith eval`` command that reproduces ``config``."""
    words = ["tunesmith", "eval", "--configs", ",".join(config.configs)]
    if config.quick:
        words.append("--quick")
    if config.seeds is not None:
        words += ["--seeds", str(config.seeds)]
    for flag, value in (("--base", config.base), ("--adapter", config.adapter)):
        if value is not None:
            words += [flag, value]
    if config.prompt_ids:
        words += ["--prompts", ",".join(config.prompt_ids)]
    if config.script_ids is not None:
        words += ["--scripts", ",".join(config.script_ids)]
    if not config.isolate:
        words.append("--in-process")
    if config.threads:
        words += ["--threads", str(config.threads)]
    if config.reuse_records:
        words.append("--reuse-records")
    if config.mood_prompts:
        words += ["--mood-prompts", str(config.mood_prompts)]
    path = os.environ.get("TUNESMITH_CPU_PATH", "").strip()
    if path and path != "auto":  # set by --cpu-path
        words += ["--cpu-path", path]
    words += ["--out", config.out]
    return shlex.join(words)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of parsed arguments.

    >>> parser = add_arguments(argparse.ArgumentParser())
    >>> argv = ["--configs", "no-adapter,greedy", "--quick", "--out", "q"]
    >>> config = config_from_args(parser.parse_args(argv))
    >>> config.configs, config.quick, config.command
    (('no-adapter', 'greedy'), True, 'tunesmith eval --configs no-adapter,greedy --quick --out q')
    """
    from agent.errors import InputError

    try:
        config = _config_of(args)
    except ValueError as err:
        raise InputError(str(err)) from None
    config.command = _command_line(config)
    return config


def _config_of(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        out=args.out, configs=_ids(args.configs), quick=args.quick, seeds=args.seeds, base=args.base,
        adapter=args.adapter, prompt_ids=_ids(args.prompts),
        script_ids=None if args.scripts is None else _ids(args.scripts),
        test_split=args.test_split, train_data=args.train_data, isolate=not args.in_process,
        threads=args.threads, reuse_records=args.reuse_records, mood_prompts=args.mood_prompts,
    )


# --------------------------------------------------------------------------------------------
# The suite


def _read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_suite(config: EvalConfig) -> tuple[list[dict], list[dict]]:
    """The prompts and scripts ``config`` selects, in file order; an id that is not in the suite
    is an error."""
    prompts, scripts = _read_jsonl(config.prompts_file), _read_jsonl(config.scripts_file)
    chosen = []
    for items, wanted, kind in ((prompts, config.selected_prompt_ids(), "prompt"),
                                (scripts, config.selected_script_ids(), "script")):
        if wanted is None:
            chosen.append(items)
            continue
        known = {item["id"] for item in items}
        missing = [i for i in wanted if i not in known]
        if missing:
            from agent.errors import InputError

            raise InputError(f"no {kind} with id {', '.join(missing)} in the suite")
        chosen.append([item for item in items if item["id"] in wanted])
    return chosen[0], chosen[1]


# --------------------------------------------------------------------------------------------
# Running one configuration


def _accepts_compose_settings() -> bool:
    """Whether AgentConfig carries ComposeConfig settings (a ``compose`` field)."""
    from agent.conversation import AgentConfig

    return any(f.name == "compose" for f in dataclasses.fields(AgentConfig))


def agent_config_for(config: EvalConfig, configuration: Configuration) -> Any:
    """The AgentConfig of a configuration: its own overrides, else ``--base``/``--adapter``."""
    from agent.conversation import AgentConfig

    values: dict[str, Any] = {}
    if config.base is not None:
        values["base"] = config.base
    if config.adapter is not None:
        values["adapter"] = config.adapter
    values.update(configuration.agent)
    if configuration.compose and _accepts_compose_settings():
        from agent.compose import ComposeConfig

        values["compose"] = ComposeConfig(**configuration.compose)
    return AgentConfig(**values)


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _compose_direct(prompt: str, composer: Any, agent_config: Any, configuration: Configuration) -> dict:
    """One compose turn with ComposeConfig overrides that AgentConfig cannot carry: the same
    understanding, header and form plan as :func:`agent.conversation.take_turn`, then
    :func:`agent.compose.compose_tune` on them. Instrument and lyrics are not applied."""
    from agent.compose import ComposeConfig, compose_tune
    from agent.conversation import form_plan, header_for
    from agent.understand import resolve, understand

    request = understand(prompt, has_score=False, config=agent_config.understand)
    if request.intent != "compose":
        return {"intent": request.intent, "abc": None, "reply": "", "details": {}}
    attrs = resolve(request.attributes, agent_config.understand)
    compose_config = ComposeConfig(seed=agent_config.seed, temperature=agent_config.temperature,
                                   **configuration.compose)
    result = composer.run(lambda loaded: compose_tune(loaded, request.text, header_for(attrs),
                                                      form_plan(attrs), compose_config))
    details = result.summary()
    return {"intent": "compose", "abc": result.abc if result.valid else None, "details": details,
            "reply": "" if result.valid else "; ".join(getattr(d, "message", str(d))
                                                       for d in result.diagnostics[:3])}


def _prompt_record(item: dict, seed: int, composer: Any, agent_config: Any,
                   configuration: Configuration, direct: bool) -> dict:
    from agent import session as sessions
    from agent.conversation import take_turn
    from agent.validate import validate_abc

    agent_config = dataclasses.replace(agent_config, seed=seed)  # each seed its own sampling
    started = time.perf_counter()
    if direct:
        outcome = _compose_direct(item["prompt"], composer, agent_config, configuration)
        intent, abc, details, reply = outcome["intent"], outcome["abc"], outcome["details"], outcome["reply"]
        internal = False
    else:
        turn = take_turn(sessions.Session(), item["prompt"], composer, agent_config)
        intent, details, reply = turn.intent, dict(turn.details), turn.reply
        abc = sessions.current_abc(turn.session) if turn.changed else None
        internal = bool(details.get("internal_error"))
    seconds = time.perf_counter() - started
    valid = abc is not None and validate_abc(abc).valid
    return {"id": item["id"], "seed": seed, "prompt": item["prompt"], "expect": item["expect"],
            "intent": intent, "valid": valid, "attempts": details.get("attempts"),
            "tokens": details.get("tokens"), "compose_seconds": details.get("seconds"),
            "decode_seconds": details.get("decode_seconds"), "bars": details.get("bars"),
            "seconds": round(seconds, 3), "abc": abc, "reply": reply[:400], "internal_error": internal,
            "direct": direct}


def _script_record(script: dict, seed: int, composer: Any, agent_config: Any,
                   on_turn: Callable[[], None] = lambda: None) -> dict:
    from agent import session as sessions
    from agent.conversation import take_turn
    from finetune.metrics import check_turn

    session = sessions.Session()
    befores: list[str | None] = []
    turns = []
    for number, step in enumerate(script["turns"]):
        before = sessions.current_abc(session)
        started = time.perf_counter()
        turn_config = dataclasses.replace(agent_config, seed=seed + number)
        turn = take_turn(session, step["user"], composer, turn_config)
        seconds = time.perf_counter() - started
        session = turn.session
        after = sessions.current_abc(session)
        undo_target = befores[-1] if befores else None
        befores.append(before)
        checks = check_turn(step.get("check", {}), before, after, changed=turn.changed,
                            undo_target=undo_target)
        turns.append({"user": step["user"], "intent": turn.intent, "changed": turn.changed,
                      "seconds": round(seconds, 3), "checks": checks, "reply": turn.reply[:400],
                      "abc": after, "internal_error": bool(turn.details.get("internal_error"))})
        on_turn()
    return {"id": script["id"], "seed": seed, "turns": turns}


def run_configuration(config: EvalConfig, name: str, loader: Callable[[Any], Any] | None = None,
                      checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Every selected prompt and script, for every seed, under configuration ``name``.

    Returns the raw records: ``prompts`` (one per prompt and seed, with the final ABC),
    ``scripts`` (each turn's intent, seconds and checks), ``load_seconds`` and
    ``peak_rss_mb``; or ``failed`` with the reason when the model cannot be loaded (a missing
    adapter, a base that is not installed). ``loader`` replaces :func:`agent.model.load_model`
    (tests pass a tiny model); ``checkpoint(record)`` is called after each prompt and script
    with the records so far.
    """
    from tqdm import tqdm

    from agent.conversation import Composer
    from agent.errors import TunesmithError

    configuration = CONFIGURATIONS[name]
    agent_config = agent_config_for(config, configuration)
    direct = bool(configuration.compose) and not _accepts_compose_settings()
    prompts, scripts = load_suite(config)
    seeds = config.seed_list()
    record: dict[str, Any] = {"name": name, "agent_config": _jsonable(dataclasses.asdict(agent_config)),
                              "compose_overrides": configuration.compose, "direct_compose": direct,
                              "selection": _selection(config)}
    composer = Composer(agent_config, loader=loader)
    started = time.perf_counter()
    try:
        loaded = composer.loaded
    except TunesmithError as err:
        record["failed"] = str(err)
        return record
    record["load_seconds"] = round(getattr(loaded, "load_seconds", None) or time.perf_counter() - started, 2)
    from agent.model import describe_model

    record["running"] = describe_model(loaded)  # the path it ran on, as "Model ready" says
    if config.threads:  # after loading: the loader sets its own thread count
        import torch

        torch.set_num_threads(config.threads)
    record["threads"] = config.threads or getattr(loaded, "threads", None) or _torch_threads()
    run_scripts = [] if direct else scripts  # the raw baseline is measured on composing only
    total = len(seeds) * (len(prompts) + sum(len(s["turns"]) for s in run_scripts))
    progress = tqdm(total=total, desc=name, unit="turn", dynamic_ncols=True)
    record["prompts"], record["scripts"] = [], []
    for seed in seeds:
        for item in prompts:
            progress.set_postfix_str(item["id"])
            record["prompts"].append(
                _prompt_record(item, seed, composer, agent_config, configuration, direct))
            progress.update()
            if checkpoint:
                checkpoint(record)
        for script in run_scripts:
            progress.set_postfix_str(script["id"])
            record["scripts"].append(_script_record(script, seed, composer, agent_config, progress.update))
            if checkpoint:
                checkpoint(record)
    progress.close()
    record["scripts_skipped"] = "compose only (raw baseline)" if direct and scripts else None
    record["peak_rss_mb"] = _peak_rss_mb()
    return record


def _torch_threads() -> int | None:
    """torch's CPU threads in this process (None when torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _selection(config: EvalConfig) -> dict:
    """What a configuration's records cover: prompt and script ids and seeds."""
    prompts, scripts = load_suite(config)
    return {"prompts": [p["id"] for p in prompts], "scripts": [s["id"] for s in scripts],
            "seeds": config.seed_list()}


def _reused_record(config: EvalConfig, path: Path) -> dict | None:
    """The records of an earlier run that covers exactly the selected prompts, scripts and
    seeds, or None (absent, failed, or another selection)."""
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("failed") or "prompts" not in record:
        return None
    wanted = _selection(config)
    found = {"prompts": list(dict.fromkeys(p["id"] for p in record["prompts"])),
             "scripts": list(dict.fromkeys(s["id"] for s in record["scripts"])),
             "seeds": sorted({p["seed"] for p in record["prompts"]})}
    if record.get("direct_compose"):  # the raw baseline runs no scripts
        found["scripts"] = wanted["scripts"]
    return record if found == wanted else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _configuration_process(config_dict: dict, name: str, path: str) -> None:
    """Entry of the process that runs one configuration (see :func:`run`)."""
    config = EvalConfig(**config_dict)
    partial = Path(path).with_suffix(".partial.json")

    def checkpoint(record: dict) -> None:
        partial.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")

    try:
        record = run_configuration(config, name, checkpoint=checkpoint)
    except Exception as err:  # reported in the table as this configuration's failure
        record = {"name": name, "failed": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc()}
    Path(path).write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    partial.unlink(missing_ok=True)


def _run_isolated(config: EvalConfig, name: str, records_dir: Path) -> dict:
    import multiprocessing

    path = records_dir / f"{name}.json"
    path.unlink(missing_ok=True)
    process = multiprocessing.get_context("spawn").Process(
        target=_configuration_process, args=(config.to_dict(), name, str(path)))
    process.start()
    process.join()
    if not path.exists():
        return {"name": name, "failed": f"the benchmark process ended with exit code {process.exitcode}"}
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# References: held-out and training tunes


@dataclass
class Reference:
    """The tunes generated music is compared with. ``test_note`` / ``train_note`` say where
    they came from, or why they are missing."""

    test: metrics.MusicProfile | None
    train: metrics.MusicProfile | None
    copy_index: set[str] | None
    test_note: str
    train_note: str
    test_by_meter: dict[str, metrics.MusicProfile] | None = None  # the test tunes per meter
    test_by_mode: dict[str, metrics.MusicProfile] | None = None  # per mode class (major, minor)
    train_tunes: list[str] | None = None  # the training tunes' ABC, for the matched yardstick


def _training_tunes(config: EvalConfig) -> tuple[list[str] | None, str, str]:
    """The training tunes' ABC, a note on their source, and a key identifying that source."""
    data = Path(config.train_data)
    if data.exists():
        tunes = []
        for example in _read_jsonl(data):
            if example.get("task") == "compose" and not example.get("augmented"):
                tunes.append(example["messages"][-1]["content"])
        stat = data.stat()
        note = f"{len(tunes)} training tunes from {_shown(data)}"
        return tunes, note, f"{data}:{stat.st_size}:{stat.st_mtime}"
    ids_path = Path(config.train_ids)
    if ids_path.exists():
        from finetune import corpus

        wanted = set(ids_path.read_text(encoding="utf-8").split())
        tunes = [raw.text for raw in corpus.raw_tunes() if raw.tune_id in wanted]
        stat = ids_path.stat()
        return (tunes, f"{len(tunes)} training tunes: the corpus tunes listed in {_shown(ids_path)} "
                f"({_shown(data)} is absent)", f"{ids_path}:{stat.st_size}:{stat.st_mtime}")
    return None, (f"no training split: neither {_shown(data)} nor {_shown(ids_path)} exists "
                  "(run `tunesmith finetune data --write-splits`); copying and the training "
                  "yardstick are not measured"), ""


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _profile_to_dict(profile: metrics.MusicProfile) -> dict:
    # not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting the pairs
    data = {f.name: getattr(profile, f.name) for f in dataclasses.fields(profile)}
    for key in ("pitch_classes", "intervals", "lengths"):
        data[key] = dict(data[key])
    return data


def _profile_from_dict(data: dict) -> metrics.MusicProfile:
    from collections import Counter

    values = dict(data)
    for key in ("pitch_classes", "intervals", "lengths"):
        values[key] = Counter(values[key])
    return metrics.MusicProfile(**values)


def _cache_folder() -> Path:
    from agent.model import default_cache_dir

    return Path(default_cache_dir()) / "eval"


def _training_reference(tunes: list[str], source_key: str) -> tuple[metrics.MusicProfile, set[str]]:
    """The training tunes' profile and copy index, cached by source and metrics code."""
    from tqdm import tqdm

    code = Path(metrics.__file__).read_bytes()
    key = hashlib.sha1(source_key.encode() + code).hexdigest()[:16]
    cache = _cache_folder() / f"train-reference-{key}.json"
    if cache.exists():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return _profile_from_dict(data["profile"]), set(data["index"])
    profile, index = metrics.profile_and_index(tqdm(tunes, desc="training tunes", unit="tune"))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"profile": _profile_to_dict(profile), "index": sorted(index)}, handle)
        os.replace(tmp, cache)
    except OSError:
        pass  # the cache only saves time
    return profile, index


def load_reference(config: EvalConfig) -> Reference:
    """The held-out test tunes' profile, and the training tunes' profile and copy index."""
    from finetune.data import load_test_split

    test_path = Path(config.test_split)
    if test_path.exists():
        tunes = [item["abc"] for item in load_test_split(test_path)]
        test = metrics.music_profile(tunes)
        test_by_meter = metrics.profiles_by_meter(tunes)
        test_by_mode = metrics.profiles_by_mode(tunes)
        test_note = f"{test.tunes} held-out test tunes from {_shown(test_path)}"
    else:
        test, test_by_meter, test_by_mode = None, None, None
        test_note = (f"no held-out split: {_shown(test_path)} is absent (run `tunesmith finetune data "
                     "--write-splits`); the musical distances are not measured")
    tunes, train_note, source_key = _training_tunes(config)
    train, index = _training_reference(tunes, source_key) if tunes is not None else (None, None)
    return Reference(test, train, index, test_note, train_note, test_by_meter, test_by_mode, tunes)


# --------------------------------------------------------------------------------------------
# From records to measures


def _share(flags: list[bool]) -> dict | None:
    if not flags:
        return None
    return {"share": round(sum(flags) / len(flags), 4), "passed": sum(flags), "of": len(flags)}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(sum(kept) / len(kept), 4) if kept else None


def _timing(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"p50": round(_percentile(values, 0.5), 2), "p90": round(_percentile(values, 0.9), 2),
            "n": len(values)}


def summarize(record: dict, reference: Reference) -> dict:
    """The measures of one configuration from its raw records (see :func:`run_configuration`)."""
    if record.get("failed"):
        return {"failed": record["failed"]}
    prompts = record["prompts"]
    attempts = [p["attempts"] for p in prompts if p["attempts"] is not None]
    validity = {
        "first_try": _share([p["valid"] and p["attempts"] == 1 for p in prompts]),
        "after_repair": _share([p["valid"] for p in prompts]),
        "mean_attempts": _mean(attempts),
        "attempts": {str(a): attempts.count(a) for a in sorted(set(attempts))},
        "understood_as_compose": _share([p["intent"] == "compose" for p in prompts]),
    }
    control: dict[str, list[bool]] = {}
    lyric_values: dict[str, list[float | None]] = {
        "syllable_fit": [], "rhyme_rate": [], "stress_on_strong": [], "stress_alignment": [],
        "short_syllables": [], "song_range": []}
    for p in prompts:
        checks = (metrics.attribute_checks(p["abc"], p["expect"]) if p["abc"]
                  else dict.fromkeys(metrics.requested_attributes(p["expect"]), False))
        if p.get("direct"):  # the raw baseline adds no instrument or lyrics: not measured
            checks.pop("instrument", None)
            checks.pop("lyrics", None)
        for name, ok in checks.items():
            control.setdefault(name, []).append(ok)
        if "lyrics_theme" in p["expect"] and p["abc"] and not p.get("direct"):
            for name, value in metrics.lyrics_measures(p["abc"]).items():
                lyric_values[name].append(value)
    edits: dict[str, list[bool]] = {}
    turn_passes: list[bool] = []
    seconds: dict[str, list[float]] = {}
    for p in prompts:
        seconds.setdefault(p["intent"], []).append(p["seconds"])
    for script in record["scripts"]:
        for turn in script["turns"]:
            if turn["checks"]:
                turn_passes.append(all(turn["checks"].values()))
            for name, ok in turn["checks"].items():
                edits.setdefault(name, []).append(ok)
            seconds.setdefault(turn["intent"], []).append(turn["seconds"])
    tunes = [p["abc"] for p in prompts if p["abc"]]
    generated = metrics.music_profile(tunes)
    music: dict[str, Any] = dict(generated.summary())
    if reference.test is not None and generated.tunes:
        music.update(metrics.compare_profiles(generated, reference.test))
    if reference.test_by_meter and generated.tunes:
        music.update(metrics.compare_by_meter(tunes, reference.test_by_meter))
    if reference.test_by_mode and generated.tunes:
        music.update(metrics.compare_by_mode(tunes, reference.test_by_mode))
    if reference.copy_index is not None:
        music["copies"] = _share([metrics.copied_bars(abc, reference.copy_index) for abc in tunes])
    tokens = sum(p["tokens"] or 0 for p in prompts if p["compose_seconds"])
    compose_seconds = sum(p["compose_seconds"] or 0 for p in prompts)
    decoded = [p for p in prompts if p.get("decode_seconds")]
    decode_seconds = sum(p["decode_seconds"] for p in decoded)
    # the composer's own time for a 16-bar tune: decoding, validation and repair (no lyrics, no render)
    sixteen = [p["compose_seconds"] for p in prompts
               if (metrics.bar_count(p["abc"]) if p["abc"] else p.get("bars")) == 16
               and p["compose_seconds"] and "lyrics_theme" not in p["expect"]]
    return {
        "prompts": len(prompts), "tunes": len(tunes), "running": record.get("running"),
        "validity": validity,
        "control": {name: _share(flags) for name, flags in control.items()},
        "lyrics": {name: _mean(values) for name, values in lyric_values.items()}
        | {"measured": sum(v is not None for v in lyric_values["syllable_fit"])},
        "edits": {"turns": _share(turn_passes), "checks": {n: _share(f) for n, f in edits.items()},
                  "skipped": record.get("scripts_skipped")},
        "music": music,
        "cost": {"seconds": {intent: _timing(values) for intent, values in seconds.items()},
                 "tokens_per_second": round(tokens / compose_seconds, 1) if compose_seconds else None,
                 "decode_tokens_per_second": round(sum(p["tokens"] or 0 for p in decoded) / decode_seconds, 1)
                 if decode_seconds else None,
                 "compose_16_bars": _timing(sixteen) if sixteen else None,
                 "load_seconds": record.get("load_seconds"), "peak_rss_mb": record.get("peak_rss_mb"),
                 "threads": record.get("threads"),
                 "internal_errors": sum(p["internal_error"] for p in prompts)
                 + sum(t["internal_error"] for s in record["scripts"] for t in s["turns"])},
    }


def _reference_summary(reference: Reference) -> dict:
    out: dict[str, Any] = {"test": None, "train": None, "yardstick": None,
                           "test_note": reference.test_note, "train_note": reference.train_note}
    if reference.test is not None:
        out["test"] = reference.test.summary()
    if reference.train is not None:
        out["train"] = reference.train.summary()
        if reference.test is not None:
            out["yardstick"] = metrics.compare_profiles(reference.train, reference.test)
    return out


# --------------------------------------------------------------------------------------------
# Across configurations: each against the bare base, and the yardstick on the suite's mix


#: The configuration every other one is compared with, prompt by prompt.
BASELINE = "no-adapter"
#: The divergences compared with the baseline: (key in the report, histogram, grouping).
PAIRED_MEASURES = (("js_pitch_class", "pitch_classes", None),
                   ("js_pitch_class_same_mode", "pitch_classes", metrics.mode_class_of),
                   ("js_interval", "intervals", None),
                   ("js_length", "lengths", None),
                   ("js_length_same_meter", "lengths", metrics.meter_of))


def matched_reference(records: dict[str, dict], reference: Reference, draws: int = 20) -> dict | None:
    """:func:`finetune.metrics.matched_yardstick` for the suite's requests: training tunes of
    the style, meter and mode class of each tune of the configuration that wrote the most
    (every configuration is asked the same), against the held-out tunes."""
    if reference.test is None or not reference.train_tunes:
        return None
    written = [[p["abc"] for p in r["prompts"] if p["abc"]] for r in records.values() if not r.get("failed")]
    if not any(written):
        return None
    return metrics.matched_yardstick(max(written, key=len), reference.train_tunes, reference.test,
                                     reference.test_by_mode or {}, reference.test_by_meter or {}, draws=draws)


def against_baseline(records: dict[str, dict], reference: Reference, draws: int = 2000) -> dict:
    """For each configuration other than :data:`BASELINE` that ran beside it: how surely its
    tunes are closer to the held-out tunes than the baseline's, per divergence, by
    :func:`finetune.metrics.paired_bootstrap` over the prompts (and seeds) both answered."""
    baseline = records.get(BASELINE)
    if reference.test is None or not baseline or baseline.get("failed"):
        return {}
    references = {None: {"all": reference.test}, metrics.mode_class_of: reference.test_by_mode or {},
                  metrics.meter_of: reference.test_by_meter or {}}
    theirs = {(p["id"], p["seed"]): p["abc"] for p in baseline["prompts"] if p["abc"]}
    result = {}
    for name, record in records.items():
        if name == BASELINE or record.get("failed"):
            continue
        ours = {(p["id"], p["seed"]): p["abc"] for p in record["prompts"] if p["abc"]}
        both = sorted(set(ours) & set(theirs))
        if not both:
            continue
        first, second = [ours[k] for k in both], [theirs[k] for k in both]
        result[name] = {key: metrics.paired_bootstrap(first, second, references[kind_of], histogram,
                                                      kind_of, draws=draws)
                        for key, histogram, kind_of in PAIRED_MEASURES}
    return result


# --------------------------------------------------------------------------------------------
# The report


def machine_info() -> dict:
    """Cores, CPU model, memory, OS and library versions of this machine."""
    cpu_model = platform.processor() or ""
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    versions = {}
    for package in ("torch", "transformers", "peft", "music21"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # not installed: left out
            continue
    return {"cores": os.cpu_count(), "cpu": cpu_model, "memory_gib": memory_gib,
            "os": platform.platform(), "python": platform.python_version(), "versions": versions}


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + (" (with uncommitted changes)" if dirty else "")) if head else None


def _pct(item: dict | None) -> str:
    if not item:
        return "–"
    return f"{100 * item['share']:.0f}% ({item['passed']}/{item['of']})"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _timing_text(item: dict | None) -> str:
    return "–" if not item else f"{item['p50']:.1f} / {item['p90']:.1f}"


def _table(headings: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _config_rows(rows: dict[str, dict], width: int, row_of: Callable[[str, dict], list[str]]
                 ) -> list[list[str]]:
    """One table row per configuration: ``row_of(name, summary)``, or a note that it failed."""
    return [[name, f"failed: {s['failed']}"] + [""] * (width - 2) if "failed" in s else row_of(name, s)
            for name, s in rows.items()]


def markdown_report(result: dict) -> str:
    """The Markdown page of a benchmark result (what :func:`run` writes to ``benchmark.md``)."""
    sections = (_report_header, _validity_section, _lyrics_and_edits_section, _music_section,
                _against_baseline_section, _cost_section, _samples_section)
    return "\n".join(line for section in sections for line in section(result))


def _report_header(result: dict) -> list[str]:
    machine = result["machine"]
    suite = result["suite"]
    ref = result["reference"]
    out = ["# tunesmith benchmark", ""]
    out += [f"- Date: {result['date']}",
            f"- Machine: {machine['cores']} cores, {machine['cpu'] or 'unknown CPU'}, "
            f"{machine['memory_gib']} GiB; {machine['os']}; Python {machine['python']}; "
            + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
            "- Load average (1 min) at the start and end: "
            + " and ".join(_num(v, 1) for v in result["load_average"])
            + " — other work on the machine slows every timing below",
            f"- Command: `{result['command']}`"
            + (f" (commit {result['commit']})" if result.get("commit") else ""),
            f"- Suite: {suite['prompts']} prompts × {len(suite['seeds'])} seed(s) "
            f"({', '.join(map(str, suite['seeds']))}); {suite['scripts']} edit script(s) "
            f"({suite['script_turns']} turns) per seed" + (" — the quick subset" if suite["quick"] else ""),
            f"- Held-out reference: {ref['test_note']}",
            f"- Training reference: {ref['train_note']}",
            f"- Full run: `{result['full_command']}`", ""]
    for name, summary in result["configurations"].items():
        note = result["descriptions"][name]
        if summary.get("running"):
            note += f"; ran as: {summary['running']}"
        failure = f" — **failed**: {summary['failed']}" if "failed" in summary else ""
        out.append(f"- **{name}**: {note}{failure}")
    out.append("")
    return out


def _validity_section(result: dict) -> list[str]:
    rows = result["configurations"]
    out = ["## Validity and control", "",
           "Valid = the agent returned a score and the validator accepts it; first try = valid on the "
           "first decode (no repair). Control columns: the share of prompts asking for that attribute "
           "whose final score has it (a prompt with no score counts as not honoured).", ""]
    headings = ["config", "tunes", "valid, 1st try", "valid after repair", "mean attempts"]
    headings += [label for _, label in CONTROL_COLUMNS]

    def row(name: str, s: dict) -> list[str]:
        v = s["validity"]
        return ([name, f"{s['tunes']}/{s['prompts']}", _pct(v["first_try"]), _pct(v["after_repair"]),
                 _num(v["mean_attempts"])]
                + [_pct(s["control"].get(key)) for key, _ in CONTROL_COLUMNS])

    return out + _table(headings, _config_rows(rows, len(headings), row))


def _lyrics_and_edits_section(result: dict) -> list[str]:
    rows = result["configurations"]
    out = ["## Lyrics and edits", "",
           "Lyrics (prompts asking for words): syllable fit = share of `w:` lines whose syllables take "
           "exactly their notes; rhyme = share of the line pairs the scheme (AABB) asks to rhyme that "
           "do; stress = share of stressed syllables on a strong beat; word stress = share of words of "
           "two or more syllables whose stressed syllable is on the word's strongest beat "
           "(agent.prosody); short = share of sung syllables on notes under 0.15 s at the tempo; "
           "range = the song melody's range in semitones. *real songs*: the same measures on the "
           "songs with words in tests/data/songs (finetune.prosody_eval). Edits: share of scripted "
           "turns whose checks all pass, then each check.", ""]
    check_names = sorted({n for s in rows.values() if "failed" not in s for n in s["edits"]["checks"]})
    headings = ["config", "lyrics measured", "syllable fit", "rhyme", "stress on strong",
                "word stress", "short", "range", "edit turns passed"] + check_names

    def row(name: str, s: dict) -> list[str]:
        lyr, ed = s["lyrics"], s["edits"]
        return ([name, str(lyr["measured"]), _num(lyr["syllable_fit"]), _num(lyr["rhyme_rate"]),
                 _num(lyr["stress_on_strong"]), _num(lyr.get("stress_alignment")),
                 _num(lyr.get("short_syllables")), _num(lyr.get("song_range"), 1),
                 ed["skipped"] or _pct(ed["turns"])]
                + [_pct(ed["checks"].get(n)) for n in check_names])

    from finetune.prosody_eval import real_song_measures  # the yardstick row

    real = real_song_measures()
    real_row = (["*real songs*", str(real["measured"])]
                + [_num(real.get(k)) for k in ("syllable_fit", "rhyme_rate", "stress_on_strong",
                                               "stress_alignment", "short_syllables")]
                + [_num(real.get("song_range"), 1)] + [""] * (len(headings) - 8))
    return out + _table(headings, _config_rows(rows, len(headings), row) + [real_row])


def _music_section(result: dict) -> list[str]:
    rows, ref = result["configurations"], result["reference"]
    out = ["## Music against the held-out tunes", "",
           "JS = Jensen-Shannon divergence (base 2; 0 = same distribution, 1 = disjoint) of the pooled "
           "histograms of pitch class relative to the tonic, melodic interval and note length, from "
           "the held-out test tunes. The *training tunes* row is the yardstick: how far real tunes of "
           "the same corpora are from the held-out ones. The *kinds asked* row is the yardstick on "
           "this suite: for each generated tune a training tune of the same style, meter and mode "
           "class; the suite's mix is not the held-out mix, and a few dozen tunes are a small "
           "sample, so even real tunes are not at 0 there. Range = mean highest minus lowest note "
           "(semitones); cadence = share of bars ending on a note of the tonic triad or of the "
           "bar's implied triad; distinct = mean share of distinct bars in a tune; copies = share of "
           f"tunes holding more than {metrics.COPY_BARS - 1} consecutive bars of a training tune in "
           "any key. *Same meter*: each tune's histograms against the held-out tunes of its own "
           "meter (a jig against jigs), averaged over meters by notes; the suite asks for more "
           "hornpipes, strathspeys and 2/4 tunes, which run in sixteenths, than the held-out mix "
           "holds. *Same mode*: likewise each tune's pitch classes against the held-out tunes of its "
           "mode class (a minor or a major third above the tonic); the suite asks for a larger share "
           "of minor and modal tunes than the held-out mix holds.", ""]
    headings = ["config", "tunes", "JS pitch class", "JS pitch class, same mode", "JS interval",
                "JS length", "JS length, same meter",
                "range", "cadence", "distinct bars", "copies"]
    table = []
    for label, summary, divergence in (("held-out test tunes", ref["test"], None),
                                       ("training tunes (yardstick)", ref["train"], ref["yardstick"])):
        if summary is None:
            table.append([label, "not available"] + [""] * (len(headings) - 2))
            continue
        divergence = divergence or {}
        table.append([label, str(summary["tunes"]), _num(divergence.get("js_pitch_class"), 3), "–",
                      _num(divergence.get("js_interval"), 3), _num(divergence.get("js_length"), 3),
                      "–", _num(summary["range_semitones"], 1), _num(summary["cadence_share"]),
                      _num(summary["distinct_bar_share"]), "–"])
    matched = result.get("matched_reference")
    if matched:
        table.append([f"training tunes of the kinds asked (yardstick on this suite, mean of {matched['draws']} draws)",
                      str(matched["tunes"]), _num(matched.get("js_pitch_class"), 3),
                      _num(matched.get("js_pitch_class_same_mode"), 3), _num(matched.get("js_interval"), 3),
                      _num(matched.get("js_length"), 3), _num(matched.get("js_length_same_meter"), 3),
                      "–", "–", "–", "–"])

    def row(name: str, s: dict) -> list[str]:
        m = s["music"]
        copies = _pct(m.get("copies")) if "copies" in m else "not measured"
        return [name, str(m["tunes"]), _num(m.get("js_pitch_class"), 3),
                _num(m.get("js_pitch_class_same_mode"), 3), _num(m.get("js_interval"), 3),
                _num(m.get("js_length"), 3), _num(m.get("js_length_same_meter"), 3),
                _num(m["range_semitones"], 1), _num(m["cadence_share"]),
                _num(m["distinct_bar_share"]), copies]

    return out + _table(headings, table + _config_rows(rows, len(headings), row))


def _against_baseline_section(result: dict) -> list[str]:
    if not result.get("against_baseline"):
        return []
    out = [f"### Against the bare base ({BASELINE}), prompt by prompt", "",
           "Each divergence of a configuration minus the bare base's over the same prompts and "
           "seeds (below 0: closer to the held-out tunes), with the 5th–95th percentiles of that "
           "difference when the pairs are drawn again with replacement 2000 times, and the share of "
           "those draws where the configuration is closer. A difference whose interval holds 0 is "
           "not clearly a difference on this many prompts.", ""]
    names = [key for key, _, _ in PAIRED_MEASURES]
    table = []
    for name, measures in result["against_baseline"].items():
        cells = []
        for key in names:
            item = measures.get(key)
            cells.append("–" if item is None else
                         f"{item['difference']:+.3f} ({item['low']:+.3f} … {item['high']:+.3f}), "
                         f"{item['closer_share']:.0%}")
        table.append([name] + cells)
    return out + _table(["config"] + [key.replace("js_", "JS ").replace("_", " ") for key in names], table)


def _cost_section(result: dict) -> list[str]:
    rows = result["configurations"]
    out = ["## Cost", "",
           "Seconds per turn, p50 / p90, measured around the whole turn (understanding, model, "
           "validation, repair, lyrics). 16-bar tune: the composer's seconds (decoding, validation, "
           "repair) for the prompts that got 16 bars without lyrics. Tokens per second: tokens "
           "decoded while composing over the composing time (validation and repair included); "
           "decoding tok/s: over the decoding loop's time only (model, grammar and sampler). "
           "Load = model load time; peak memory = peak resident set of the process that ran the "
           "configuration.", ""]
    headings = ["config"] + [f"{label} s" for _, label in TIMED_INTENTS] + [
        "other turns s", "16-bar tune s", "tokens/s", "decoding tok/s", "threads", "load s", "peak RSS MB"]

    def row(name: str, s: dict) -> list[str]:
        c = s["cost"]
        timed = c["seconds"]
        others = [i for i in timed if i not in dict(TIMED_INTENTS)]
        other_text = ", ".join(f"{i} {_timing_text(timed[i])}" for i in sorted(others)) or "–"
        return ([name] + [_timing_text(timed.get(i)) for i, _ in TIMED_INTENTS]
                + [other_text, _timing_text(c.get("compose_16_bars")), _num(c["tokens_per_second"], 1),
                   _num(c.get("decode_tokens_per_second"), 1), str(c.get("threads") or "–"),
                   _num(c["load_seconds"], 1), _num(c["peak_rss_mb"], 0)])

    return out + _table(headings, _config_rows(rows, len(headings), row))


def _samples_section(result: dict) -> list[str]:
    if not result.get("samples"):
        return []
    out = ["## Sample tunes", ""]
    for sample in result["samples"]:
        out += [f"**{sample['config']}**, seed {sample['seed']}: “{sample['prompt']}”", "",
                "```abc", sample["abc"].rstrip("\n"), "```", ""]
    if result.get("sample_image"):
        out += [f"![sheet music of the first sample]({result['sample_image']})", ""]
    return out


def _samples(records: dict[str, dict], count: int) -> list[dict]:
    """A few valid tunes of seed 0 from the first configuration that has some: a song with
    words first when there is one, then other prompts in suite order."""
    for name, record in records.items():
        tunes = [p for p in record.get("prompts", []) if p["abc"] and p["seed"] == 0]
        if not tunes:
            continue
        tunes.sort(key=lambda p: "lyrics_theme" not in p["expect"])
        return [{"config": name, "id": p["id"], "seed": p["seed"], "prompt": p["prompt"], "abc": p["abc"]}
                for p in tunes[:count]]
    return []


def _render_png(abc: str, path: Path) -> None:
    """Write ``abc``'s sheet music (verovio's SVG, drawn by cairosvg) to ``path`` as a PNG."""
    from agent.render import RenderConfig, render_score_text, to_png

    with tempfile.TemporaryDirectory() as folder:  # text in Times, which cairo finds (see to_png)
        files = render_score_text(abc, Path(folder), RenderConfig(embed_text_font=False), formats=["svg"])
        svg = Path(files["svg"]).read_text(encoding="utf-8")
    path.write_bytes(to_png(svg, width=1200))


def _full_command(config: EvalConfig) -> str:
    full = dataclasses.replace(config, configs=tuple(CONFIGURATIONS), quick=False, seeds=None,
                               prompt_ids=(), script_ids=None, isolate=True, out="bench-full")
    return _command_line(full)


def run(config: EvalConfig, loader: Callable[[Any], Any] | None = None) -> int:
    """Run the benchmark and write ``benchmark.json``, ``benchmark.md`` and the records into
    ``config.out``. Returns 0 when every configuration ran, 1 when one failed (its row says why).
    ``loader`` (tests) replaces the model loader and implies running in this process."""
    from tqdm import tqdm

    prompts, scripts = load_suite(config)  # an unknown id stops the run before anything is written
    out = Path(config.out)
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    config.command = config.command or _command_line(config)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    tqdm.write(f"benchmark: {len(config.configs)} configuration(s), {len(prompts)} prompts, "
               f"{len(scripts)} scripts, seeds {config.seed_list()}")
    reference = load_reference(config)
    tqdm.write(f"held-out: {reference.test_note}\ntraining: {reference.train_note}")
    load_at_start = os.getloadavg()[0]
    records: dict[str, dict] = {}
    for name in config.configs:
        reused = _reused_record(config, records_dir / f"{name}.json") if config.reuse_records else None
        if reused is not None:
            tqdm.write(f"{name}: records of an earlier run reused")
            records[name] = reused
            continue
        if config.isolate and loader is None:
            record = _run_isolated(config, name, records_dir)
        else:
            try:
                record = run_configuration(config, name, loader=loader)
            except Exception as err:  # reported in the table as this configuration's failure
                record = {"name": name, "failed": f"{type(err).__name__}: {err}",
                          "traceback": traceback.format_exc()}
        (records_dir / f"{name}.json").write_text(json.dumps(record, ensure_ascii=False, indent=1),
                                                  encoding="utf-8")
        records[name] = record
        if record.get("failed"):
            tqdm.write(f"{name}: failed: {record['failed']}")
    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "command": config.command, "full_command": _full_command(config),
        "commit": _commit(), "settings": config.to_dict(),
        "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        "suite": {"prompts": len(prompts), "scripts": len(scripts), "seeds": config.seed_list(),
                  "script_turns": sum(len(s["turns"]) for s in scripts), "quick": config.quick},
        "reference": _reference_summary(reference),
        "descriptions": {name: CONFIGURATIONS[name].description for name in config.configs},
        "configurations": {name: summarize(record, reference) for name, record in records.items()},
        "against_baseline": against_baseline(records, reference),
        "matched_reference": matched_reference(records, reference),
        "samples": _samples(records, config.samples),
        "sample_image": None,
    }
    if result["samples"]:
        image = out / "benchmark-sample.png"
        try:
            _render_png(result["samples"][0]["abc"], image)
            result["sample_image"] = image.name
        except Exception as err:  # the table is still worth writing; say why there is no picture
            result["sample_image_error"] = f"{type(err).__name__}: {err}"
            tqdm.write(f"no sample picture: {result['sample_image_error']}")
    (out / "benchmark.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")
    (out / "benchmark.md").write_text(markdown_report(result) + "\n", encoding="utf-8")
    _add_mood_section(config, out / "benchmark.md", loader)
    _add_harmony_section(records, out / "benchmark.md")
    tqdm.write(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.json'}")
    return 1 if any(r.get("failed") for r in records.values()) else 0


def _add_mood_section(config: EvalConfig, report: Path, loader: Callable[[Any], Any] | None) -> None:
    """Append the mood benchmark (finetune.mood_eval) to the report."""
    from finetune.mood_eval import benchmark_section

    section = benchmark_section(config.mood_prompts, config.adapter, config.threads,
                                config.test_split, loader)
    with report.open("a", encoding="utf-8") as handle:
        handle.write("\n" + section + "\n")


def _add_harmony_section(records: dict[str, dict], report: Path) -> None:
    """Append the harmony benchmark (finetune.harmony_eval) over each configuration's tunes."""
    from finetune.harmony_eval import benchmark_section

    composed = {name: [p["abc"] for p in record.get("prompts", []) if p.get("valid") and p.get("abc")]
                for name, record in records.items() if not record.get("failed")}
    with report.open("a", encoding="utf-8") as handle:
        handle.write("\n" + benchmark_section(composed) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m finetune.evaluate``: the same as ``tunesmith eval``."""
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    return run(config_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
