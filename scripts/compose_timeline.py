"""Where the seconds of one ``tunesmith compose`` go: a timeline of the stages of one run.

    .venv/bin/python scripts/compose_timeline.py [--prompt "a waltz in D"] [--out DIR]
    (TUNESMITH_CPU_PATH and the AVX2 variables as for ``tunesmith compose``)

The run is the command line's own (``tunesmith.cli.main``), in this process, with wall-clock
marks around the imports, the model's load (fbgemm's packing, the tokenizer, the token table),
the prompt, the decoding loop, validation and repair, and the renders, each with the thread it
ran in; per-token work (decoder steps, the grammar's choice of a token, validation) is summed
over its calls. As the console script does, a command the command line counts as one-shot runs
without the cycle collector and the process ends without tearing its modules down
(``tunesmith.cli.ONE_SHOT``, where the checkout has it), so the same script times an older
checkout fairly: run it from that checkout's root. Timing the whole process from the shell
(``time``) adds the interpreter's start and, where modules are torn down, the exit.

Why wrap functions rather than profile: a profiler's cost per call distorts the per-token
Python it is meant to measure; a wrapper around each stage costs microseconds.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import collections  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, os.getcwd())  # the checkout being timed

#: (module, attribute, label) of each stage timed on its own
STAGES = (
    ("agent.model", "load_model", "load_model"),
    ("agent.step_decoder", "step_weights_from_state", "weights: fbgemm packing and assembly"),
    ("agent.tokenizer", "FastTokenizer.from_folder", "tokenizer"),
    ("agent.sampler", "token_table", "token table"),
    ("agent.compose", "chat_prompt_ids", "prompt"),
    ("agent.compose", "compose_tune", "compose_tune"),
    ("agent.compose", "decode_body", "decoding loop"),
    ("agent.compose", "repair_tune", "validation and repair"),
    ("agent.render", "warm_up", "renderers warming up"),
    ("agent.conversation", "take_turn", "turn"),
    ("agent.conversation", "render_version", "renders"),
)
#: stages called many times: their seconds are summed
SUMMED = (
    ("agent.step_decoder", "pack_float16", "fbgemm packing (sum over threads)"),
    ("agent.step_decoder", "LlamaStepDecoder.feed", "decoder feeds"),
    ("agent.sampler", "choose_token", "grammar: choose_token"),
    ("agent.sampler", "_viable", "grammar: automaton on candidates"),
    ("agent.sampler", "_refused_mass", "grammar: refused probability"),
    ("agent.validate", "validate_abc", "validate_abc"),
)


class Clock:
    """Marks (start, end, label, thread) and sums (label -> calls, seconds)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, str, str]] = []
        self.sums: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def mark(self, label: str, start: float, end: float) -> None:
        self.marks.append((start - STARTED, end - STARTED, label, threading.current_thread().name))

    def wrap(self, module_name: str, attribute: str, label: str, summed: bool) -> None:
        """Replace ``module.attribute`` (``Class.method`` allowed) by a timed wrapper, also
        where other loaded modules imported it by name. A name the checkout lacks is skipped."""
        owner = sys.modules.get(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            return

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                end = time.perf_counter()
                if summed:
                    self.sums[label][0] += 1
                    self.sums[label][1] += end - start
                else:
                    self.mark(label, start, end)

        setattr(owner, name, timed)
        if not path:
            for module in list(sys.modules.values()):
                if getattr(module, name, None) is original:
                    setattr(module, name, timed)

    def report(self) -> str:
        lines = [f"{a:7.3f} -> {b:7.3f}  {b - a:6.3f} s  {label}  [{thread}]"
                 for a, b, label, thread in sorted(self.marks)]
        lines += [f"   {seconds:6.3f} s in {calls} calls  {label}" for label, (calls, seconds) in self.sums.items()]
        return "\n".join(lines)


def timed_import(clock: Clock, label: str, *names: str) -> None:
    start = time.perf_counter()
    for name in names:
        __import__(name)
    clock.mark(label, start, time.perf_counter())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt", default="a waltz in D")
    parser.add_argument("--out", type=Path, default=Path("/tmp/compose-timeline"))
    args = parser.parse_args()
    clock = Clock()
    timed_import(clock, "import torch", "torch")
    timed_import(clock, "import the command line and the app's modules", "tunesmith.cli", "tunesmith.commands")
    timed_import(clock, "import the model, decoder, composer and renderer", "agent.model", "agent.step_decoder",
                 "agent.tokenizer", "agent.sampler", "agent.compose", "agent.render", "agent.validate")
    for module, attribute, label in STAGES:
        clock.wrap(module, attribute, label, summed=False)
    for module, attribute, label in SUMMED:
        clock.wrap(module, attribute, label, summed=True)
    from tunesmith import cli

    one_shot = "compose" in getattr(cli, "ONE_SHOT", ())
    if one_shot:  # as the console script runs it
        import gc

        gc.disable()
    start = time.perf_counter()
    code = cli.main(["compose", args.prompt, "--out", str(args.out)])
    clock.mark("tunesmith compose (cli.main)", start, time.perf_counter())
    print(clock.report(), file=sys.stderr)
    sys.stderr.flush()
    if one_shot:
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
