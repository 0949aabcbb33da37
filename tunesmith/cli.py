"""The ``tunesmith`` command line: the project's public face and the benchmark's entry point.

Each sub-command is a thin wrapper over the same functions the app and the tests use. Heavy
libraries are imported inside the handlers, so ``tunesmith validate`` starts in a blink.

Errors a person can act on (a bad file, an empty prompt, a missing model) print as one line on
stderr with a non-zero exit; set ``TUNESMITH_DEBUG=1`` to see the traceback of anything else.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent.errors import InputError, TunesmithError

EXIT_INVALID = 1  # the input was read, and it is not valid (validate) or the turn failed
EXIT_UNREADABLE = 2  # the input could not be read at all, or the command line was wrong


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        default=None,
        help="base model: smollm2-135m (default), gemma3-270m, a Hugging Face id or a local folder",
    )
    parser.add_argument(
        "--adapter",
        default=None,
        help="LoRA adapter folder, or 'none' for the bare base (default: the adapter in models/)",
    )
    _add_cpu_path_argument(parser)


def _add_cpu_path_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cpu-path", choices=("auto", "bf16", "portable", "float32", "ort"), default=None,
        help="how the model runs on the CPU: bf16 (needs AVX-512 BF16 or AMX), portable (any "
             "x86-64 with AVX2), float32, ort (ONNX Runtime, 8-bit weights), or auto (ort; for a "
             "base ort cannot run, bf16 where the CPU has it, else portable); "
             "the same as TUNESMITH_CPU_PATH")


def _use_cpu_path(args: argparse.Namespace) -> None:
    """``--cpu-path``: forces the path (as ``$TUNESMITH_CPU_PATH`` does, for this process and
    its workers) of every model whose configuration leaves it at auto; startup says which
    path runs (agent.model logs "model ready: ... path ...")."""
    import logging

    if getattr(args, "cpu_path", None):
        os.environ["TUNESMITH_CPU_PATH"] = args.cpu_path
    if args.command in ("compose", "converse", "eval"):  # ui configures its own logging
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tunesmith: %(message)s"))
        model_log = logging.getLogger("agent.model")
        model_log.addHandler(handler)
        model_log.setLevel(logging.INFO)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser. The training and benchmark options are only loaded when ``command`` is
    ``finetune`` or ``eval`` (their modules are large), so other commands start fast."""
    parser = argparse.ArgumentParser(
        prog="tunesmith", description="A conversational composer: chat in, sheet music and audio out."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compose = commands.add_parser("compose", help="one turn from an empty session")
    compose.add_argument("prompt", help='what to write, e.g. "a sad waltz in D minor"')
    compose.add_argument("--out", type=Path, required=True, help="folder for the score and renders")
    compose.add_argument("--seed", type=int, default=0)
    compose.add_argument("--no-chords", action="store_true",
                         help="a bare melody: no chord symbols and no accompaniment")
    _add_model_arguments(compose)

    converse = commands.add_parser("converse", help="a scripted conversation, one message per line")
    converse.add_argument("--script", type=Path, required=True, help="text file, one user message per line")
    converse.add_argument("--out", type=Path, required=True)
    converse.add_argument("--score", type=Path, default=None,
                          help="ABC file of a tune to start from (the first message works on it)")
    converse.add_argument("--seed", type=int, default=0)
    converse.add_argument("--session", default=None,
                          help="resume a saved session (its id, printed by an earlier converse); "
                               "every run saves to the song store in $TUNESMITH_DATA")
    _add_model_arguments(converse)

    render = commands.add_parser("render", help="ABC, MIDI, MusicXML, SVG, PDF and WAV from an ABC file")
    render.add_argument("score", type=Path)
    render.add_argument("--out", type=Path, required=True)

    validate = commands.add_parser("validate", help="check an ABC file; exit 0 valid, 1 invalid, 2 unreadable")
    validate.add_argument("score", type=Path)
    validate.add_argument("--json", action="store_true", help="print the diagnostics as JSON")

    ui = commands.add_parser("ui", help="the chat app in the browser")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=7860)
    _add_model_arguments(ui)

    finetune = commands.add_parser("finetune", help="build training data, train an adapter")
    evaluate = commands.add_parser("eval", help="the benchmark: prompt suite in, table out")
    if command == "finetune":
        from finetune import data as data_stage
        from finetune import train as train_stage

        stages = finetune.add_subparsers(dest="stage", required=True, metavar="STAGE")
        data_stage.add_arguments(stages.add_parser("data", help="training data from the bundled corpora"))
        train_stage.add_arguments(stages.add_parser("train", help="LoRA training (CPU or CUDA)"))
        from finetune import calibrate as calibrate_stage

        calibrate_stage.add_arguments(stages.add_parser(
            "calibrate", help="activation ranges beside an adapter (int8 steps on the portable path)"))
        from finetune import body_tokens as body_tokens_stage

        body_tokens_stage.add_arguments(stages.add_parser(
            "body-tokens", help="the tokens an adapter writes tune bodies in (the ort path's fast output layer)"))
    if command == "eval":
        from finetune import evaluate as eval_stage

        eval_stage.add_arguments(evaluate)
    _add_cpu_path_argument(evaluate)
    return parser


def _read_abc_file(path: Path) -> str:
    from agent.abc_reader import read_text_file

    return read_text_file(path)


def cmd_validate(args: argparse.Namespace) -> int:
    from agent.validate import validate_abc

    text = _read_abc_file(args.score)
    report = validate_abc(text)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(report.format_text())
    return 0 if report.valid else EXIT_INVALID


def cmd_render(args: argparse.Namespace) -> int:
    from agent.render import render_score_text

    text = _read_abc_file(args.score)
    started = time.perf_counter()
    files = render_score_text(text, args.out)
    summary: dict = {name: str(path) for name, path in files.items()}
    summary["warnings"] = list(files.warnings)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    for warning in files.warnings:
        print(f"tunesmith render: warning: {warning}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from tunesmith.commands import run_compose

    summary = run_compose(args.prompt, args.out, seed=args.seed, base=args.base, adapter=args.adapter,
                          chords=not args.no_chords)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary.get("valid") else EXIT_INVALID


def cmd_converse(args: argparse.Namespace) -> int:
    from tunesmith.commands import run_script

    try:
        lines = args.script.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{args.script} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {args.script}: {exc.strerror}") from None
    messages = [line for line in lines if line.strip()]
    if not messages:
        raise InputError(f"{args.script} has no messages (one user message per line)")
    score = _read_abc_file(args.score) if args.score else None
    from agent.app_state import open_song, save_quietly
    from agent.session import load as load_session
    from agent.store import Store, StoreConfig, command_line_owner

    store_config = StoreConfig()
    with Store.from_config(store_config) as store:
        owner = command_line_owner(store_config.folder())
        resume = open_song(store, owner, args.session) if args.session else None
        transcript = run_script(messages, args.out, seed=args.seed, base=args.base,
                                adapter=args.adapter, score=score, resume=resume)
        song, note = save_quietly(store, owner, args.session or "",
                                  load_session(args.out / "session.json"))
    print(json.dumps({"turns": len(transcript), "transcript": str(args.out / "transcript.json"),
                      "session": song, **({"not_saved": note} if note else {})}))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ui.app import launch

    launch(host=args.host, port=args.port, base=args.base, adapter=args.adapter)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    if args.stage == "data":
        from finetune import data as stage
    elif args.stage == "calibrate":
        from finetune import calibrate as stage
    elif args.stage == "body-tokens":
        from finetune import body_tokens as stage
    else:
        from finetune import train as stage
    return stage.run(stage.config_from_args(args)) or 0


def cmd_eval(args: argparse.Namespace) -> int:
    from finetune import evaluate

    return evaluate.run(evaluate.config_from_args(args)) or 0


HANDLERS = {
    "compose": cmd_compose,
    "converse": cmd_converse,
    "render": cmd_render,
    "validate": cmd_validate,
    "ui": cmd_ui,
    "finetune": cmd_finetune,
    "eval": cmd_eval,
}


#: commands that run once and end. Run as a whole process (the console script), they need no
#: cycle collection (their few cyclic objects go at exit; the collector's full passes over
#: torch's and music21's objects took about 0.3 s of a 7 s ``tunesmith compose`` on 2 cores),
#: and the process ends as soon as the output is flushed: tearing the modules down took 0.3-0.6
#: s more (torch's alone 0.3 s).
ONE_SHOT = ("compose", "render", "validate")


def _end_now(code: int) -> None:
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None means this process's own arguments (the console script),
    and then a one-shot command ends the process itself when done."""
    process = argv is None
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    _use_cpu_path(args)
    one_shot = process and args.command in ONE_SHOT
    if one_shot:
        import gc

        gc.disable()
    code = _run(args)
    if one_shot:
        _end_now(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return HANDLERS[args.command](args)
    except InputError as exc:
        print(f"tunesmith {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except TunesmithError as exc:
        print(f"tunesmith {args.command}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print(f"tunesmith {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the promise is one line, never a traceback; keep it debuggable
        if os.environ.get("TUNESMITH_DEBUG"):
            raise
        print(
            f"tunesmith {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set TUNESMITH_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
