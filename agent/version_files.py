"""The files of each version of a score, made once and kept in a folder of their own.

The app shows a version as soon as its quick files exist (the sheet, ABC, MIDI, MusicXML) and
adds the slow ones (PDF, WAV) when they are ready; undo and redo show a version whose files are
already there without rendering it again. Each version's folder is named after its ABC text,
so the same score always finds its files, and a renderer that fails on one format leaves the
others (its problem is kept, to be shown, instead of taking the page down).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import TunesmithError
from agent.render import FILE_NAMES, render_score_text

__all__ = ["QUICK_FORMATS", "SLOW_FORMATS", "FILE_NAMES", "Rendered", "render_files", "version_folder"]

log = logging.getLogger(__name__)

#: The formats shown as soon as they exist (the sheet and the quick files), then the slow ones.
QUICK_FORMATS = ("abc", "midi", "musicxml", "svg")
SLOW_FORMATS = ("pdf", "wav")


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
    """
    rendered = done or Rendered()
    folder = version_folder(tab_folder, abc)
    missing = [name for name in formats if not (folder / FILE_NAMES[name]).is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        # The quick formats share one reading of the score; each slow one is separate, so a
        # failing audio render still leaves the PDF (and the other way round).
        groups = [missing] if set(missing) <= set(QUICK_FORMATS) else [[name] for name in missing]
        for group in groups:
            try:
                render_score_text(abc, folder, formats=group)
            except TunesmithError as err:
                rendered.problems.append(f"{'/'.join(group)}: {err}")
            except Exception as err:  # a renderer bug must not take the page down; say it
                log.error("rendering %s failed: %s: %s", group, type(err).__name__, err)
                rendered.problems.append(f"{'/'.join(group)}: {type(err).__name__}: {err}")
    for name in formats:
        path = folder / FILE_NAMES[name]
        if path.is_file():
            rendered.paths[name] = path
    return rendered
