"""The files of each version of a score, made once and kept in a folder of their own.

The app shows a version as soon as its quick files exist (the sheet, ABC, MusicXML: the sheet
is engraved from the MusicXML, so that file costs nothing more) and adds the slow ones (MIDI,
PDF, WAV) when they are ready; undo and redo show a version whose files are already there
without rendering it again. Each version's folder is named after its ABC text, so the same
score always finds its files, and a renderer that fails on one format leaves the others (its
problem is kept, to be shown, instead of taking the page down). The score is read once per
call; the WAV plays the MIDI file already there.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import TunesmithError
from agent.render import FILE_NAMES, render_all

__all__ = ["QUICK_FORMATS", "SLOW_FORMATS", "FILE_NAMES", "Rendered", "render_files", "version_folder"]

log = logging.getLogger(__name__)

#: The formats shown as soon as they exist (the sheet and the quick files), then the slow ones.
#: MIDI is slow: music21 expands the repeats of a copy of the score to play it.
QUICK_FORMATS = ("abc", "musicxml", "svg")
SLOW_FORMATS = ("midi", "pdf", "wav")


@dataclass
class Rendered:
    """The files of one version that exist so far, and what could not be made."""

    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def version_folder(tab_folder: str, abc: str) -> Path:
    """The subfolder of a tab's folder that holds the files of one version of the score.

    >>> version_folder("/tmp/tab", "X:1\\nK:C\\nC|\\n").name
    'v-26b445527bc6a9ea'
    """
    digest = hashlib.sha256(abc.encode("utf-8")).hexdigest()[:16]
    return Path(tab_folder) / f"v-{digest}"


def render_files(abc: str, tab_folder: str, formats: tuple[str, ...], done: Rendered | None = None
                 ) -> Rendered:
    """Make the files of ``formats`` for ``abc`` (those already there are kept, not redone).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> sorted(render_files("X:1\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|]\\n", folder, ("abc", "midi")).paths)
    ['abc', 'midi']
    >>> render_files("X:1\\nK:C\\nC|\\n", folder, ("svg",)).problems == []
    True
    >>> render_files("X:1\\nK:C\\n", folder, ("abc", "svg")).problems
    ['abc/svg: line 3: the tune has no notes']
    """
    rendered = done or Rendered()
    folder = version_folder(tab_folder, abc)
    missing = [name for name in formats if not (folder / FILE_NAMES[name]).is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        rendered.problems.extend(_render_missing(abc, folder, missing))
    for name in formats:
        path = folder / FILE_NAMES[name]
        if path.is_file():
            rendered.paths[name] = path
    return rendered


def _render_missing(abc: str, folder: Path, missing: list[str]) -> list[str]:
    """Render ``missing`` formats of ``abc`` into ``folder``: one reading of the score, each
    format on its own (a failing audio render still leaves the PDF); the problems, in words."""
    from agent.abc_reader import read_tune  # music21 loads with the first render

    midi_file = folder / FILE_NAMES["midi"]
    midi_data = midi_file.read_bytes() if "wav" in missing and "midi" not in missing \
        and midi_file.is_file() else None
    try:
        files = render_all(abc, read_tune(abc).score, folder, formats=missing,
                           midi_data=midi_data, partial=True)
    except TunesmithError as err:
        return [f"{'/'.join(missing)}: {err}"]
    except Exception as err:  # a renderer bug must not take the page down; say it
        log.error("rendering %s failed: %s: %s", missing, type(err).__name__, err)
        return [f"{'/'.join(missing)}: {type(err).__name__}: {err}"]
    return [f"{name}: {problem}" for name, problem in files.problems.items()]
