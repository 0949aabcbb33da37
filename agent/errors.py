"""The exceptions tunesmith raises, under one base class.

The CLI turns any :class:`TunesmithError` into a one-line message and a non-zero exit;
the agent turns them into repair prompts or a reply. Messages name the line and bar
where they can, in words a musician understands.

>>> err = AbcError("bar 3 has 5 beats, the meter is 3/4", line=7, bar=3)
>>> str(err)
'line 7, bar 3: bar 3 has 5 beats, the meter is 3/4'
>>> isinstance(err, TunesmithError)
True
"""
from __future__ import annotations


class TunesmithError(Exception):
    """Base of every error tunesmith raises on purpose."""


class AbcError(TunesmithError):
    """ABC text that cannot be read; ``line`` (1-based, in the tune text) and ``bar`` when known."""

    def __init__(self, message: str, line: int | None = None, bar: int | None = None):
        self.message = message
        self.line = line
        self.bar = bar
        where = ", ".join(
            part for part in (f"line {line}" if line else "", f"bar {bar}" if bar else "") if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class RenderError(TunesmithError):
    """A score that could not be turned into one of the output files."""


class ModelError(TunesmithError):
    """A base model or adapter that cannot be found or loaded."""


class InputError(TunesmithError):
    """A message or file the user gave that cannot be used as it is (empty, too large, not text)."""
