"""The runs behind ``tunesmith compose`` and ``tunesmith converse``: a session driven from the
command line, its files rendered into a folder and a summary returned for JSON output.

Each run is a loop over :func:`agent.conversation.take_turn`, the same turn the app takes; the
seed of turn ``n`` is ``seed + n - 1`` (:func:`agent.conversation.for_next_turn`), as in the app.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent import session as sessions
from agent.answer import score_summary
from agent.conversation import AgentConfig, Composer, render_version, for_next_turn, take_turn
from agent.errors import InputError, TunesmithError
from agent.session import Session
from agent.validate import validate_abc

__all__ = ["run_compose", "run_script"]


def run_compose(prompt: str, out: Path, *, seed: int = 0, base: str | None = None,
                adapter: str | None = None, chords: bool = True) -> dict:
    """``tunesmith compose``: one turn from an empty session; renders into ``out``.

    >>> run_compose("  ", Path("unused"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the prompt is empty; say what to write, e.g. "a sad waltz in D minor"
    """
    if not prompt.strip():
        raise InputError("the prompt is empty; say what to write, e.g. \"a sad waltz in D minor\"")
    config = AgentConfig(base=base or "smollm2-135m", adapter=adapter, seed=seed, chords=chords)
    composer = Composer(config)
    started = time.perf_counter()
    turn = take_turn(Session(), prompt, composer, for_next_turn(config, Session()))
    abc = sessions.current_abc(turn.session)
    summary: dict[str, Any] = {"reply": turn.reply, "valid": bool(turn.changed and abc),
                               "attempts": turn.details.get("attempts", 0)}
    if turn.details.get("internal_error"):
        raise TunesmithError(turn.reply)
    if abc:
        render_version(abc, out)
        summary.update(score_summary(abc))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["tokens_per_second"] = turn.details.get("tokens_per_second")
    return summary


def start_from(abc: str | None) -> Session:
    """A session whose current tune is ``abc`` (a given melody), or an empty one.

    >>> start_from("X:1\\nK:G\\nGABc|d4|]\\n").versions[-1].summary
    'the given tune'
    >>> start_from("X:1\\nM:4/4\\nK:G\\nGABc|d|]\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the given tune has problems: ...
    """
    if abc is None:
        return Session()
    report = validate_abc(abc)
    if not report.valid:
        raise InputError("the given tune has problems: "
                         + "; ".join(d.message for d in report.errors[:3]))
    return sessions.add_version(Session(), abc, "the given tune")


def run_script(messages: list[str], out: Path, *, seed: int = 0, base: str | None = None,
               adapter: str | None = None, score: str | None = None,
               resume: Session | None = None) -> list[dict]:
    """``tunesmith converse``: each message a turn; files per turn and ``transcript.json``.
    ``score``: the ABC of a tune to start from (the first message then works on it);
    ``resume``: a saved session to go on with instead."""
    config = AgentConfig(base=base or "smollm2-135m", adapter=adapter, seed=seed)
    composer = Composer(config)
    session, transcript = (resume if resume is not None else start_from(score)), []
    out = Path(out)
    for number, message in enumerate(messages, start=1):
        turn = take_turn(session, message, composer, for_next_turn(config, session))
        session = turn.session
        abc = sessions.current_abc(session)
        folder = out / f"turn-{number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if abc:
            render_version(abc, folder)
        transcript.append({"user": message, "assistant": turn.reply, "changed": turn.changed})
    sessions.save(session, out / "session.json")
    (out / "transcript.json").write_text(json.dumps(transcript, ensure_ascii=False, indent=1),
                                         encoding="utf-8")
    return transcript
