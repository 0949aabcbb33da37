"""A conversation's memory: the versions of the score, where undo has taken us, and the chat.

A :class:`Session` is plain data that deep-copies and turns into JSON, so the browser app can keep
one per tab in ``gr.State``, the CLI can save it to a file, and any store can keep it. The
functions here never change a session in place: each returns a new one.

>>> s = Session()
>>> s = add_version(s, "X:1\\nK:C\\nCDEF|\\n", "a first tune")
>>> s = add_version(s, "X:1\\nK:D\\nDEFG|\\n", "transposed to D")
>>> current_abc(undo(s))
'X:1\\nK:C\\nCDEF|\\n'
>>> current_abc(redo(undo(s))) == current_abc(s)
True
>>> undo(undo(undo(s)))
Traceback (most recent call last):
...
agent.session.SessionError: there is nothing to undo
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import TunesmithError

SESSION_FORMAT = 1


class SessionError(TunesmithError):
    """An undo, redo or load that cannot be done."""


@dataclass(frozen=True)
class Version:
    """One state of the score: the ABC text and a few words on what made it."""

    abc: str
    summary: str
    created: float = 0.0


@dataclass(frozen=True)
class Session:
    """Versions of the score (``position`` is the one on screen; -1 before the first) and the chat."""

    versions: tuple[Version, ...] = ()
    position: int = -1
    messages: tuple[dict, ...] = ()
    settings: dict = field(default_factory=dict)


def current(session: Session) -> Version | None:
    """The version on screen, or None in an empty session."""
    return session.versions[session.position] if session.position >= 0 else None


def current_abc(session: Session) -> str | None:
    """The ABC on screen, or None in an empty session."""
    version = current(session)
    return version.abc if version else None


def add_version(session: Session, abc: str, summary: str) -> Session:
    """A new version after the one on screen; versions that undo had left behind are dropped."""
    kept = session.versions[: session.position + 1]
    version = Version(abc=abc, summary=summary, created=time.time())
    return dataclasses.replace(session, versions=kept + (version,), position=len(kept))


def undo(session: Session) -> Session:
    """Step back one version (the first version can be undone to an empty score)."""
    if session.position < 0:
        raise SessionError("there is nothing to undo")
    return dataclasses.replace(session, position=session.position - 1)


def redo(session: Session) -> Session:
    """Step forward again after an undo."""
    if session.position + 1 >= len(session.versions):
        raise SessionError("there is nothing to redo")
    return dataclasses.replace(session, position=session.position + 1)


def start_over(session: Session) -> Session:
    """An empty score; the old versions stay reachable with undo."""
    if session.position < 0:
        return session
    return dataclasses.replace(session, position=-1)


def add_message(session: Session, role: str, content: str) -> Session:
    """The chat with one more message (``role`` is ``user`` or ``assistant``)."""
    return dataclasses.replace(
        session, messages=session.messages + ({"role": role, "content": content},)
    )


def to_json(session: Session) -> str:
    """The session as JSON text."""
    data = dataclasses.asdict(session)
    data["format"] = SESSION_FORMAT
    return json.dumps(data, ensure_ascii=False, indent=1)


def from_json(text: str) -> Session:
    """A session from :func:`to_json`'s text; a clear SessionError for anything else."""
    try:
        data = json.loads(text)
        if data.get("format") != SESSION_FORMAT:
            raise SessionError(f"not a tunesmith session file (format {data.get('format')!r})")
        versions = tuple(Version(**v) for v in data["versions"])
        position = int(data["position"])
        if not -1 <= position < len(versions):
            raise SessionError(f"session position {position} is outside its {len(versions)} versions")
        return Session(
            versions=versions,
            position=position,
            messages=tuple(dict(m) for m in data.get("messages", [])),
            settings=dict(data.get("settings", {})),
        )
    except SessionError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SessionError(f"not a tunesmith session file: {exc}") from None


def save(session: Session, path: Path) -> None:
    """Write the session to ``path`` atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(to_json(session))
    os.replace(tmp, path)


def load(path: Path) -> Session:
    """Read a session written by :func:`save`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read session file {path}: {exc}") from None
    return from_json(text)
