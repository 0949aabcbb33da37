"""The tunesmith browser app: a chat beside the score it is writing.

Left, the conversation: a chat with example prompts, where a tune being composed shows its
progress (the stage, the bars written so far and the ABC as it grows). Right, the version on
screen: the sheet music with any lyrics under the notes (every page of the engraving), an audio
player, downloads (ABC, MIDI, MusicXML, PDF, WAV), an ABC editor checked as you type with an
Apply button, the list of versions with undo / redo / start over, and the settings
(temperature, seed, fine-tuned adapter on or off).

Every musical decision is the agent's (:mod:`agent.conversation`), and every decision about a
tab's turns and saved songs is :mod:`agent.app_state`'s: this module lays out, wires, renders
files and shows them. Per browser tab, ``gr.State`` holds an :class:`agent.app_state.TabState`
(the session, the chat, the render folder with one subfolder per version, and the tab's line of
waiting turns). A message, undo or edit sent while a tune is being written shows at once as
queued and is answered in order; "Stop" ends a composition at its next bar and keeps the score.
Per process, one :class:`agent.conversation.Composer` holds the model; :class:`Models` loads it
in a background thread at start, while turns that need no model (edits, questions, undo) work.

Songs last: every turn is saved in :class:`agent.store.Store` (the data folder:
``$TUNESMITH_DATA``, else ``~/.local/share/tunesmith``). The browser keeps its owner key and the
open song in ``gr.BrowserState`` under a fixed key, encrypted with a secret kept in the data
folder, so a reload or a server restart brings back the chat, the score and its versions; the
"Your songs" tab opens, starts, renames, deletes and downloads them.

A turn runs in a worker thread; the event handler is a generator that polls a queue fed by the
turn's ``on_progress`` and yields each update, so a long composition never freezes the page.
The model writes one tune at a time; a turn waiting for it says how many are ahead.

Scripts talk to the named endpoints ``/chat`` (a message in; the reply, the current ABC and the
files out) and ``/chat_stream`` (the same, streamed: the place in line at once, then progress,
last the answer). A ``gradio_client.Client`` keeps one session across its calls, and its calls
are answered in the order sent::

    client = Client("http://127.0.0.1:7860/")
    reply, abc, files = client.predict("write a sad waltz in D minor", api_name="/chat")
    reply, abc, files = client.predict("transpose it to E minor", api_name="/chat")

Run it with ``tunesmith ui [--host H] [--port P] [--base B] [--adapter A]`` or
``python -m ui.app``. Importing this module starts nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import html
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from agent import session as sessions
from agent.abc_text import bar_count, parse_tune
from agent.answer import score_summary
from agent.conversation import AgentConfig, Composer, adopt_score, for_next_turn, take_turn
from agent.errors import AbcError, TunesmithError
from agent.model import describe_model
from agent.app_state import (TabState, TurnLine, chat_of, open_song, position_line, run_turn,
                             save_quietly, song_choices, version_choices)
from agent.session import Session
from agent.store import (MIN_OWNER_CHARS, SongNotFound, Store, StoreConfig, StoreError, browser_secret,
                         new_owner_key)
from agent.validate import validate_abc
from agent.version_files import (FILE_NAMES, QUICK_FORMATS, SLOW_FORMATS, Rendered, render_files,
                                 version_folder)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CSS_FILE = HERE / "app.css"

EXAMPLES = (
    "write a sad waltz in D minor",
    "a lively jig in G for fiddle",
    "a slow air in E dorian, 16 bars",
    "a lullaby in F with words about the moon",
    "a march in 2/4 for trumpet",
)

#: Download buttons, in the order they are laid out: (format, label).
DOWNLOADS = (("abc", "ABC"), ("midi", "MIDI"), ("musicxml", "MusicXML"), ("pdf", "PDF"),
             ("wav", "WAV"))
EMPTY_NOTE = "Type a message first: ask for a tune, or say how to change the one on screen."
STEP_WORDS = {"undo": "undo", "redo": "redo", "start_over": "start over"}


@dataclass(frozen=True)
class UiConfig:
    """Settings of the app itself (the agent's are in :class:`agent.conversation.AgentConfig`)."""

    concurrency: int = field(default=8, metadata={
        "help": "events served at once across all tabs (demo.queue default_concurrency_limit)"})
    poll_seconds: float = field(default=0.4, metadata={
        "help": "how often a running turn's progress is sent to the page"})
    status_seconds: float = field(default=1.0, metadata={
        "help": "how often a tab asks whether the model is ready, until it is"})
    render_root: str | None = field(default=None, metadata={
        "help": "folder for the tabs' render folders (default: a new folder under the system temp)"})
    shown_message_chars: int = field(default=1500, metadata={
        "help": "chat messages longer than this are shown cut (the agent reads them whole)"})
    max_editor_chars: int = field(default=100_000, metadata={
        "help": "the ABC editor refuses to check or apply text longer than this"})
    versions_shown: int = field(default=40, metadata={"help": "how many recent versions the list shows"})


# --------------------------------------------------------------------------------------------
# The model, once per process


class Models:
    """The composers of this process.

    The configured one (``config.adapter``) loads in a background thread started by
    :meth:`start`; the bare base (adapter off in the settings) is a second composer, created on
    first use and loaded then. :meth:`status` says where loading stands, for the page.
    """

    def __init__(self, config: AgentConfig, composer: Composer | None = None):
        self.config = config
        self.primary = composer if composer is not None else Composer(config)
        self._bare: Composer | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = ("idle", "The model loads when the app starts.")

    @property
    def has_adapter(self) -> bool:
        """Whether the configured model has an adapter that the settings can switch off."""
        return (self.config.adapter or "").lower() != "none"

    def start(self) -> None:
        """Load the configured model in a background thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._state = ("loading", f"Loading the model ({self._model_name()})…")
            self._thread = threading.Thread(target=self._load, name="tunesmith-model-load", daemon=True)
            self._thread.start()

    def _model_name(self) -> str:
        adapter = self.config.adapter
        if adapter is None:
            return f"{self.config.base} + the tunesmith adapter"
        if adapter.lower() == "none":
            return f"{self.config.base}, no adapter"
        return f"{self.config.base} + {Path(adapter).name}"

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            loaded = self.primary.run(lambda loaded: loaded)
            running = describe_model(loaded)  # base, adapter, CPU path and threads
        except Exception as err:  # shown on the page; turns that need the model say it too
            message = str(err) if isinstance(err, TunesmithError) else f"{type(err).__name__}: {err}"
            log.error("the model could not be loaded: %s", message)
            with self._lock:
                self._state = ("failed", f"The model could not be loaded: {message}")
            return
        seconds = time.perf_counter() - started
        log.info("model ready (%s) in %.1f s", self._model_name(), seconds)
        with self._lock:
            how = running.split(", ", 1)[-1]  # describe_model's first part names the model again
            self._state = ("ready", f"Model ready ({self._model_name()}; {how}), loaded in "
                                    f"{seconds:.0f} s.")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until background loading has finished (ready or failed); True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()[0] in ("ready", "failed")

    def status(self) -> tuple[str, str]:
        """``(state, message)``: state is idle, loading, ready or failed."""
        with self._lock:
            return self._state

    def composer(self, adapter_on: bool = True) -> Composer:
        """The composer for a turn: the configured one, or the bare base when the adapter is off."""
        if adapter_on or not self.has_adapter:
            return self.primary
        with self._lock:
            if self._bare is None:
                self._bare = Composer(dataclasses.replace(self.config, adapter="none"))
            return self._bare


@dataclass
class App:
    """What every handler shares: the agent's settings, the app's, the models, the render root."""

    config: AgentConfig
    ui: UiConfig
    models: Models
    store: Store | None = None
    line: TurnLine = field(default_factory=TurnLine)
    _root: Path | None = None
    _root_lock: threading.Lock = field(default_factory=threading.Lock)

    def render_root(self) -> Path:
        """The folder holding every tab's render folder, made on first use."""
        with self._root_lock:
            if self._root is None:
                if self.ui.render_root:
                    self._root = Path(self.ui.render_root)
                    self._root.mkdir(parents=True, exist_ok=True)
                else:
                    self._root = Path(tempfile.mkdtemp(prefix="tunesmith-ui-"))
            return self._root

    def tab_folder(self, folder: str) -> str:
        """The tab's render folder: ``folder`` when it still exists, else a new one."""
        if folder and Path(folder).is_dir():
            return folder
        return tempfile.mkdtemp(prefix="tab-", dir=self.render_root())


def remove_folder(tab: Any) -> None:
    """A closed tab: its running turn stops, its render folder goes (called by Gradio when the
    tab's state is dropped; the song itself is in the store)."""
    if isinstance(tab, TabState):
        tab.request_stop()
        if tab.folder:
            shutil.rmtree(tab.folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Rendering the version on screen


EMPTY_SHEET = ('<div class="ts-sheet-empty">No score yet. Ask for a tune in the chat, or write ABC '
               'in the editor below and press Apply.</div>')


def sheet_html(rendered: Rendered | None) -> str:
    """The sheet-music panel: every page of the SVG, or a sentence on why there is none."""
    if rendered is None:
        return EMPTY_SHEET
    svg_path = rendered.paths.get("svg")
    if svg_path is None:
        problems = "; ".join(p for p in rendered.problems if p.startswith(("abc", "svg"))) or "unknown"
        return (f'<div class="ts-sheet-empty ts-problem">This version could not be engraved '
                f'({html.escape(problems)}).</div>')
    svg = svg_path.read_text(encoding="utf-8")
    return f'<div class="ts-sheet">{svg}</div>'


def download_updates(rendered: Rendered | None) -> list[dict]:
    """One update per download button, in :data:`DOWNLOADS` order: a file, or disabled."""
    updates = []
    for name, label in DOWNLOADS:
        path = rendered.paths.get(name) if rendered else None
        updates.append(gr.update(value=str(path) if path else None, interactive=path is not None,
                                 label=label))
    return updates


def versions_html(session: Session, shown: int = 40) -> str:
    """The list of versions, newest last, the one on screen marked."""
    if not session.versions:
        return '<p class="ts-muted">No versions yet.</p>'
    first = max(0, len(session.versions) - shown)
    items = []
    for number, version in enumerate(session.versions[first:], start=first):
        try:
            facts = score_summary(version.abc)
            about = f"{facts['key']}, {facts['meter']}, {facts['bars']} bars"
            title = facts["title"] or "Untitled"
        except AbcError:  # an old version the reader now refuses: list it anyway
            about, title = "", "Untitled"
        current = number == session.position
        mark = ' class="ts-current"' if current else ""
        here = " <em>(on screen)</em>" if current else ""
        items.append(f"<li{mark}><strong>{html.escape(title)}</strong> — "
                     f"{html.escape(version.summary)}"
                     f"<span class='ts-muted'> · {html.escape(about)}</span>{here}</li>")
    state = ("The score is empty (start over); undo brings the last version back."
             if session.position < 0 else "")
    start = f' start="{first + 1}"'
    return f'<ol class="ts-versions"{start}>{"".join(items)}</ol>' + (
        f'<p class="ts-muted">{state}</p>' if state else "")


def check_html(text: str, current: str | None, max_chars: int = 100_000) -> str:
    """The editor's check panel: valid or not, then each problem by bar (and line).

    >>> "Valid" in check_html("X:1\\nT:t\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GABc|]\\n", None)
    True
    >>> "bar 2" in check_html("X:1\\nT:t\\nM:2/4\\nL:1/8\\nK:C\\nCDEF|GAB|]\\n", None)
    True
    >>> "Valid, 2 bars." in check_html("X:1\\nT:t\\nM:2/4\\nL:1/8\\nK:C\\nC|DEFG|ABc|]\\n", None)
    True
    """
    text = text if isinstance(text, str) else ""
    if not text.strip():
        return '<p class="ts-muted">The editor is empty: write or paste a tune in ABC.</p>'
    if len(text) > max_chars:
        return (f'<p class="ts-bad">This text is {len(text):,} characters long; the editor checks '
                f'up to {max_chars:,}.</p>')
    try:
        report = validate_abc(text)
    except Exception as err:  # the checker must answer, whatever was typed
        log.error("validating the editor's text failed: %s: %s", type(err).__name__, err)
        name = html.escape(type(err).__name__)
        return f'<p class="ts-bad">This text could not be checked ({name}).</p>'
    same = current is not None and text.strip() == current.strip()
    count = report.bars
    if report.valid and report.tunes == 1:  # as a musician counts (and the chat's replies say):
        count = bar_count(parse_tune(text))  # a pickup and its part's last bar count once
    bars = f"{count} bar{'s' * (count != 1)}"
    if report.valid:
        head = f'<p class="ts-good">✓ Valid, {bars}.'
        head += (" This is the version on screen." if same
                 else " Press <b>Apply</b> to make it the new version.")
    else:
        errors = len(report.errors)
        head = (f'<p class="ts-bad">✗ {errors} error{"s" * (errors != 1)} — '
                f'fix {"it" if errors == 1 else "them"} to apply.')
    ordered = sorted(report.diagnostics, key=lambda d: (d.severity != "error", d.bar or 0, d.line or 0))
    items = []
    for diagnostic in ordered[:30]:
        places = (f"bar {diagnostic.shown_bar}" if diagnostic.shown_bar is not None else "",
                  f"line {diagnostic.line}" if diagnostic.line else "")
        where = ", ".join(place for place in places if place)
        items.append(f'<li class="ts-{diagnostic.severity}"><b>{html.escape(where or "tune")}</b>: '
                     f'{html.escape(diagnostic.message)}</li>')
    more = f"<li>… and {len(ordered) - 30} more</li>" if len(ordered) > 30 else ""
    listing = f'<ul class="ts-diagnostics">{"".join(items)}{more}</ul>' if items else ""
    return head + "</p>" + listing


@dataclass
class View:
    """Everything the score side shows for one state of the session (``gr.skip()`` where a
    part stays as it is)."""

    sheet: Any
    audio: str | None
    downloads: list[dict]
    abc: Any
    check: Any
    versions: Any

    def values(self) -> tuple:
        return (self.sheet, self.audio, *self.downloads, self.abc, self.check, self.versions)

    @staticmethod
    def position(part: str) -> int:
        """Where ``part`` sits in :meth:`values` (the downloads take one place each).

        >>> View.position("sheet"), View.position("check") - View.position("abc")
        (0, 1)
        """
        order = ["sheet", "audio", *(f"download:{name}" for name, _ in DOWNLOADS), "abc", "check",
                 "versions"]
        return order.index(part)


def score_views(app: App, session: Session, folder: str) -> Iterator[View]:
    """The score side for ``session``: once with the sheet and quick files, then with all."""
    abc = sessions.current_abc(session)
    versions = versions_html(session, app.ui.versions_shown)
    if abc is None:
        yield View(EMPTY_SHEET, None, download_updates(None), "", check_html("", None), versions)
        return
    check = check_html(abc, abc, app.ui.max_editor_chars)
    rendered = render_files(abc, folder, QUICK_FORMATS)
    if all((version_folder(folder, abc) / FILE_NAMES[name]).is_file() for name in SLOW_FORMATS):
        rendered = render_files(abc, folder, SLOW_FORMATS, rendered)  # rendered before: undo, redo
        yield View(sheet_html(rendered), str(rendered.paths["wav"]), download_updates(rendered), abc,
                   check, versions)
        return
    yield View(sheet_html(rendered), None, download_updates(rendered), abc, check, versions)
    rendered = render_files(abc, folder, SLOW_FORMATS, rendered)
    audio = str(rendered.paths["wav"]) if "wav" in rendered.paths else None
    skip = gr.skip()  # what the first view showed stays; only the audio and files are new
    yield View(skip, audio, download_updates(rendered), skip, skip, skip)


def unchanged_view() -> tuple:
    """Outputs that leave the score side as it is (while a turn is still running)."""
    return tuple(gr.skip() for _ in range(5 + len(DOWNLOADS)))


# --------------------------------------------------------------------------------------------
# Running a turn in a worker thread


def turn_config(config: AgentConfig, session: Session, temperature: Any, seed: Any) -> AgentConfig:
    """The agent's settings for the next turn: the tab's temperature, and its seed plus the
    number of turns so far (a conversation replays the same; two requests differ).

    >>> turn_config(AgentConfig(), Session(), 0.7, 5).seed
    5
    >>> turn_config(AgentConfig(), Session(), "bad", None).temperature == AgentConfig().temperature
    True
    """
    try:
        temperature = min(max(float(temperature), 0.0), 2.0)
    except (TypeError, ValueError):
        temperature = config.temperature
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        seed = config.seed
    return for_next_turn(dataclasses.replace(config, temperature=temperature, seed=seed), session)


STAGES = {"compose": "Composing", "edit": "Rewriting", "validate": "Checking",
          "repair": "Repairing", "done": "Finishing"}


def progress_message(stage: str, bars: int, text: str, seconds: float, done: bool = False,
                     gave_up: bool = False) -> dict:
    """A chat message showing a composition's progress: stage, bars written, the ABC so far.

    >>> progress_message("compose", 3, "X:1", 4.2)["metadata"]["title"]
    'Composing — 3 bars written'
    >>> progress_message("done", 8, "X:1", 4.2, done=True, gave_up=True)["metadata"]["title"]
    'Not kept (4 s): the last attempt'
    """
    label = STAGES.get(stage, stage.capitalize())
    if gave_up:
        title = f"Not kept ({seconds:.0f} s): the last attempt"
    elif done:
        title = f"Written in {seconds:.0f} s — {bars} bars"
    elif stage in ("compose", "edit"):
        title = f"{label} — {bars} bar{'s' * (bars != 1)} written"
    else:
        title = f"{label}…"
    body = f"```\n{text.strip()}\n```" if text.strip() else "…"
    return {"role": "assistant", "content": body,
            "metadata": {"title": title, "status": "done" if done else "pending",
                         "duration": round(seconds, 1)}}


def waiting_message(seconds: float, model_state: str, ahead: int = 0) -> dict:
    """A chat message for a turn that has not reported progress yet (``ahead``: tunes of other
    people the model writes first).

    >>> waiting_message(3, "ready", 2)["metadata"]["title"]
    'Waiting: 2 tunes ahead of yours. 3 s'
    """
    if model_state == "loading":
        title = f"Waiting for the model to finish loading… {seconds:.0f} s"
    elif ahead > 0:
        title = f"Waiting: {position_line(ahead)[:-1]}. {seconds:.0f} s"
    else:
        title = f"Working… {seconds:.0f} s"
    return {"role": "assistant", "content": "…", "metadata": {"title": title, "status": "pending"}}


def shown_text(text: str, limit: int) -> str:
    """A chat message as displayed: empty ones named, long ones cut.

    >>> shown_text("", 10)
    '*(empty message)*'
    >>> shown_text("x" * 30, 10)
    'xxxxxxxxxx … *(30 characters in all)*'
    """
    if not text.strip():
        return "*(empty message)*"
    if len(text) > limit:
        return f"{text[:limit]} … *({len(text):,} characters in all)*"
    return text


# --------------------------------------------------------------------------------------------
# Event handlers (bound to an App with functools.partial in build_app)
#
# Every event that changes a tab's score (a message, undo / redo / start over, apply edit,
# opening or starting a song) takes a ticket in the tab's line (agent.app_state.TabState) and
# runs when the events before it are done: nothing sent while a tune is being written is
# dropped. They all update the same outputs, in TURN_OUTPUTS order:
# (chat, message box, stop button, browser key, songs list, versions list, *score side).


def _failure(what: str, err: Exception) -> str:
    """Log a handler's unexpected failure as one line, and say it to the person."""
    log.error("%s failed: %s: %s", what, type(err).__name__, err)
    return f"Something went wrong on my side ({type(err).__name__}: {err}). Your score is unchanged."


def _tab(tab: Any) -> TabState:
    if not isinstance(tab, TabState):
        raise TypeError(f"the tab's state must be a TabState, not {type(tab).__name__}")
    return tab


def out(tab: TabState, view: tuple | None = None, *, box: Any = None, browser: Any = None,
        songs: Any = None, version_list: Any = None) -> tuple:
    """One update of the turn outputs: the chat from ``tab``; what is not given stays as it is."""
    skip = gr.skip()
    stop = gr.update(interactive=tab.busy())
    return (tab.display(), skip if box is None else box, stop, skip if browser is None else browser,
            skip if songs is None else songs, skip if version_list is None else version_list,
            *(view if view is not None else unchanged_view()))


def browser_value(tab: TabState) -> dict:
    """What the browser keeps: its owner key and the song on screen."""
    return {"owner": tab.owner, "song": tab.song}


def songs_update(app: App, tab: TabState) -> dict:
    """The "your songs" list, the open song selected."""
    try:
        choices = song_choices(app.store, tab.owner)
    except TunesmithError as err:
        log.error("listing songs failed: %s", err)
        choices = []
    ids = {value for _, value in choices}
    return gr.update(choices=choices, value=tab.song if tab.song in ids else None)


def versions_update(tab: TabState) -> dict:
    return gr.update(choices=version_choices(tab.session), value=None)


def in_line(app: App, tab: TabState, label: str, body: Callable[[], Iterator[tuple]], *,
            box: Any = None, shown: bool = True, ticket: Any = None) -> Iterator[tuple]:
    """Run ``body`` when the tab's earlier events are done; meanwhile the chat shows ``label``
    as queued. ``box`` is what the message box becomes once the event is accepted; ``ticket``
    is the event's place in line where it has joined already."""
    ticket = ticket or tab.join(label if shown else "")
    try:
        yield out(tab, box=box)
        waited = 0.0
        while not tab.wait(ticket, app.ui.poll_seconds):
            waited += app.ui.poll_seconds
            if waited >= 2.0:  # a quiet heartbeat: the chat also shows what was queued since
                waited = 0.0
                yield out(tab)
        try:
            yield from body()
        except Exception as err:  # whatever happens, the page gets a sentence and the score is kept
            tab.history.append({"role": "assistant", "content": _failure(label or "event", err)})
            yield out(tab)
    finally:  # also when the page closes mid-turn (Gradio closes the generator)
        if tab.is_next(ticket):
            tab.stop.set()  # a turn still running for a closed page stops at its next bar
        tab.leave(ticket)
    yield out(tab)  # the stop button follows the line


def persist(app: App, tab: TabState) -> str:
    """Save the tab's song; "" when saved (or nothing to save to), else a note for the reply."""
    if app.store is None or not tab.owner:
        return ""
    tab.song, note = save_quietly(app.store, tab.owner, tab.song, tab.session)
    return note


def shown_views(app: App, tab: TabState) -> Iterator[tuple]:
    """The score side for the tab's session, as :func:`score_views` yields it."""
    tab.folder = app.tab_folder(tab.folder)
    for view in score_views(app, tab.session, tab.folder):
        yield view.values()


def chat(app: App, message: Any, tab: TabState, temperature: Any, seed: Any, adapter_on: Any
         ) -> Iterator[tuple]:
    """Send one chat message: it shows at once (queued while an earlier turn runs), then its
    progress, then the reply and the new score. The message box clears when it is accepted.
    An empty message shows a short note and changes nothing."""
    tab = _tab(tab)
    text = message if isinstance(message, str) else ""
    if not text.strip():  # nothing typed (or the second click of a double click): say so
        gr.Info(EMPTY_NOTE)
        yield (gr.skip(),) * len_turn_outputs()
        return
    shown = shown_text(text, app.ui.shown_message_chars)
    ticket = tab.join_unless_repeat(shown)
    if ticket is None:  # the second click of a double click: the message is already in
        yield (gr.skip(),) * len_turn_outputs()
        return
    yield from in_line(app, tab, shown, lambda: _chat(app, text, shown, tab, temperature, seed,
                                                        adapter_on), box="", ticket=ticket)


def _chat(app: App, text: str, shown: str, tab: TabState, temperature: Any, seed: Any,
          adapter_on: Any) -> Iterator[tuple]:
    asked = {"role": "user", "content": shown}
    tab.running = [asked, waiting_message(0, app.models.status()[0])]
    yield out(tab)
    turn, progress, progress_text, seconds = None, None, None, 0.0
    for kind, value, seconds in turn_events(app, tab, text, temperature, seed, adapter_on):
        if kind == "progress":
            progress_text = value
            progress = progress_message(*value, seconds)
            tab.running = [asked, progress]
        elif kind == "waiting":
            tab.running = [asked, waiting_message(seconds, app.models.status()[0], value)]
        elif kind == "tick" and progress is not None:
            tab.running = [asked, dict(progress, metadata=dict(progress["metadata"],
                                                               duration=round(seconds, 1)))]
        elif kind == "turn":
            turn = value
        if kind != "turn":
            yield out(tab)
    tab.session = turn.session
    note = persist(app, tab)
    finished = [asked]
    if progress is not None and turn.changed:
        final_abc = sessions.current_abc(turn.session) or ""
        finished.append(progress_message("done", _bars_in(final_abc), final_abc, seconds, done=True))
    elif progress is not None:
        finished.append(progress_message(*progress_text, seconds, done=True, gave_up=True))
    finished.append({"role": "assistant", "content": f"{turn.reply} {note}".strip()})
    tab.history += finished
    tab.running = []
    lists = dict(browser=browser_value(tab), songs=songs_update(app, tab), version_list=versions_update(tab))
    if not turn.changed:
        yield out(tab, **lists)
        return
    yield out(tab, **lists)  # the reply, while engraving
    for view in shown_views(app, tab):
        yield out(tab, view)


def turn_events(app: App, tab: TabState, text: str, temperature: Any, seed: Any, adapter_on: Any
                ) -> Iterator[tuple[str, Any, float]]:
    """The running turn as ``(kind, value, seconds)``: ``waiting`` (value: turns ahead of it
    across all tabs) until it reports progress, ``progress`` (stage, bars, text), ``tick``,
    then ``turn`` (the :class:`agent.conversation.Turn`)."""
    config = turn_config(app.config, tab.session, temperature, seed)
    composer = app.models.composer(bool(adapter_on) if adapter_on is not None else True)
    take = functools.partial(take_turn, composer=composer, config=config)
    number = app.line.join()
    started, progressed = time.perf_counter(), False
    try:
        for kind, value in run_turn(take, tab.session, text, tab.stop, app.ui.poll_seconds):
            seconds = time.perf_counter() - started
            progressed = progressed or kind == "progress"
            if kind == "tick" and not progressed:
                yield "waiting", app.line.ahead(number), seconds
            else:
                yield kind, value, seconds
    finally:
        app.line.leave(number)


def _bars_in(abc: str) -> int:
    """Bars of the finished score for the progress line (0 when the reader refuses it)."""
    try:
        return bar_count(parse_tune(abc))
    except AbcError:
        return 0


def _api_files(app: App, tab: TabState, reply: str) -> tuple[str, str, list[str]]:
    """``(reply, abc, files)`` of the tab's current version, every format rendered."""
    abc = sessions.current_abc(tab.session)
    if abc is None:
        return reply, "", []
    tab.folder = app.tab_folder(tab.folder)
    rendered = render_files(abc, tab.folder, QUICK_FORMATS + SLOW_FORMATS)
    if rendered.problems:
        reply += " (Some files could not be made: " + "; ".join(rendered.problems) + ".)"
    files = [str(rendered.paths[name]) for name in ("abc", "midi", "musicxml", "svg", "pdf", "wav")
             if name in rendered.paths]
    return reply, abc, files


def chat_stream(app: App, message: Any, temperature: Any, seed: Any, adapter_on: Any, tab: TabState
                ) -> Iterator[tuple[str, str, list[str]]]:
    """The ``/chat_stream`` endpoint: yields ``(line, abc so far, files)`` — at once the place in
    line, then the progress, last the reply with the score and its files. Messages from one
    client are answered in the order sent."""
    tab = _tab(tab)
    text = message if isinstance(message, str) else ""
    ticket = tab.join(shown_text(text, app.ui.shown_message_chars))
    try:
        current = sessions.current_abc(tab.session) or ""
        ahead = tab.ahead(ticket)
        yield (f"Queued: {ahead} message{'s' * (ahead != 1)} of yours before this one." if ahead
               else "Working…"), current, []
        while not tab.wait(ticket, app.ui.poll_seconds):
            pass
        turn = None
        for kind, value, seconds in turn_events(app, tab, text, temperature, seed, adapter_on):
            if kind == "waiting":
                yield position_line(value), current, []
            elif kind == "progress":
                stage, bars, so_far = value
                yield progress_message(stage, bars, so_far, seconds)["metadata"]["title"], so_far, []
            elif kind == "turn":
                turn = value
        tab.session = turn.session
        tab.history += [{"role": "user", "content": shown_text(text, app.ui.shown_message_chars)},
                        {"role": "assistant", "content": turn.reply}]
        note = persist(app, tab)
        yield _api_files(app, tab, f"{turn.reply} {note}".strip())
    except Exception as err:  # the caller gets a sentence and the score as it was
        yield _failure("chat API", err), sessions.current_abc(tab.session) or "", []
    finally:
        tab.leave(ticket)


def chat_api(app: App, message: Any, temperature: Any, seed: Any, adapter_on: Any, tab: TabState
             ) -> tuple[str, str, list[str]]:
    """The ``/chat`` endpoint: one message in; the reply, the current ABC and its files out
    (the last answer of :func:`chat_stream`)."""
    answer: tuple[str, str, list[str]] = ("", "", [])
    for answer in chat_stream(app, message, temperature, seed, adapter_on, tab):
        pass
    return answer


def step(app: App, action: str, tab: TabState) -> Iterator[tuple]:
    """Undo, redo or start over (the agent's own words for them; no model needed), in line."""
    tab = _tab(tab)
    yield from in_line(app, tab, STEP_WORDS[action], lambda: _step(app, action, tab))


def _step(app: App, action: str, tab: TabState) -> Iterator[tuple]:
    word = STEP_WORDS[action]
    turn = take_turn(tab.session, word, Composer.unavailable(), app.config)
    tab.session = turn.session
    note = persist(app, tab)
    tab.history += [{"role": "user", "content": word},
                    {"role": "assistant", "content": f"{turn.reply} {note}".strip()}]
    lists = dict(browser=browser_value(tab), songs=songs_update(app, tab), version_list=versions_update(tab))
    yield out(tab, **lists)
    if turn.changed:
        for view in shown_views(app, tab):
            yield out(tab, view)


def check_edit(app: App, text: Any, tab: TabState) -> str:
    """The editor's live check (runs as the text changes)."""
    current = sessions.current_abc(tab.session) if isinstance(tab, TabState) else None
    return check_html(text if isinstance(text, str) else "", current, app.ui.max_editor_chars)


def apply_edit(app: App, text: Any, tab: TabState) -> Iterator[tuple]:
    """Make the editor's text the new version when it is valid (in line after running turns);
    otherwise say why not. An edit that is not applied leaves the editor as typed and only
    updates the check panel."""
    tab = _tab(tab)
    text = text if isinstance(text, str) else ""
    yield from in_line(app, tab, "apply my edit", lambda: _apply_edit(app, text, tab))


def _apply_edit(app: App, text: str, tab: TabState) -> Iterator[tuple]:
    current = sessions.current_abc(tab.session)
    skip_score = list(unchanged_view())
    check_index = View.position("check")

    def refused(reason: str) -> tuple:
        skip_score[check_index] = f'<p class="ts-bad">{html.escape(reason)}</p>' + check_html(
            text, current, app.ui.max_editor_chars)
        return out(tab, tuple(skip_score))

    if not text.strip():
        yield refused("Nothing to apply: the editor is empty.")
        return
    if len(text) > app.ui.max_editor_chars:
        yield refused(f"Not applied: the text is longer than {app.ui.max_editor_chars:,} characters.")
        return
    if current is not None and text.strip() == current.strip():
        yield refused("Nothing to apply: the editor holds the version on screen.")
        return
    turn = adopt_score(tab.session, text, summary="edited in the ABC editor",
                       reply_start="Applied your edit: ")
    if not turn.changed:
        yield refused("Not applied: the score has errors (listed below); "
                      "the version on screen is unchanged.")
        return
    tab.session, reply = turn.session, turn.reply
    tab.session = sessions.add_message(tab.session, "assistant", reply)
    note = persist(app, tab)
    tab.history.append({"role": "assistant", "content": f"{reply} {note}".strip()})
    lists = dict(browser=browser_value(tab), songs=songs_update(app, tab), version_list=versions_update(tab))
    first = True
    for view in shown_views(app, tab):
        yield out(tab, view, **(lists if first else {}))
        first = False


def revert_edit(tab: TabState) -> tuple[str, str]:
    """Put the version on screen back into the editor."""
    abc = sessions.current_abc(tab.session) if isinstance(tab, TabState) else None
    return abc or "", check_html(abc or "", abc)


def stop_turn(tab: TabState) -> None:
    """The Stop button: the running turn ends at its next bar; the score stays as it was."""
    if isinstance(tab, TabState) and tab.request_stop():
        gr.Info("Stopping: the score stays as it was before that request.")


# --------------------------------------------------------------------------------------------
# Songs that last: the browser's key, reloads, the "your songs" panel


def restore(app: App, kept: Any, tab: TabState) -> Iterator[tuple]:
    """On page load: the browser's owner key (a new one the first time) and the song it had
    open, with its chat, score and versions. Outputs as :data:`TURN_OUTPUTS`."""
    tab = _tab(tab)
    kept = kept if isinstance(kept, dict) else {}
    owner = kept.get("owner")
    tab.owner = owner if isinstance(owner, str) and len(owner) >= MIN_OWNER_CHARS else new_owner_key()
    song = kept.get("song") if isinstance(kept.get("song"), str) else ""
    session, note = Session(), ""
    if song and app.store is not None:
        try:
            session = open_song(app.store, tab.owner, song)
        except SongNotFound:
            song = ""
        except StoreError as err:  # the store is unreadable now: keep the id for a later reload
            note = f"Your saved song could not be opened ({err})."
    tab.session, tab.song, tab.history = session, song, chat_of(session)
    if note:
        tab.history.append({"role": "assistant", "content": note})
    lists = dict(browser=browser_value(tab), songs=songs_update(app, tab), version_list=versions_update(tab))
    first = True
    for view in shown_views(app, tab):
        yield out(tab, view, **(lists if first else {}))
        first = False


def open_chosen(app: App, song: Any, tab: TabState) -> Iterator[tuple]:
    """"Open": the chosen song replaces the one on screen (which is saved already)."""
    tab = _tab(tab)
    if not isinstance(song, str) or not song:
        gr.Info("Choose a song in the list first.")
        yield (gr.skip(),) * len_turn_outputs()
        return
    yield from in_line(app, tab, "open a saved song", lambda: _switch(app, tab, song), shown=False)


def new_song(app: App, tab: TabState) -> Iterator[tuple]:
    """"New song": an empty score and chat; the song on screen stays in the list."""
    tab = _tab(tab)
    yield from in_line(app, tab, "start a new song", lambda: _switch(app, tab, ""), shown=False)


def _switch(app: App, tab: TabState, song: str) -> Iterator[tuple]:
    if song:
        try:
            session = open_song(app.store, tab.owner, song)
        except StoreError as err:
            tab.history.append({"role": "assistant", "content": f"I could not open that song: {err}."})
            yield out(tab, songs=songs_update(app, tab))
            return
    else:
        session = Session()
    tab.session, tab.song, tab.history = session, song, chat_of(session)
    lists = dict(browser=browser_value(tab), songs=songs_update(app, tab), version_list=versions_update(tab))
    first = True
    for view in shown_views(app, tab):
        yield out(tab, view, **(lists if first else {}))
        first = False


def rename_song(app: App, song: Any, title: Any, tab: TabState) -> tuple[Any, Any]:
    """Rename the chosen song; returns (songs list, name box)."""
    tab = _tab(tab)
    if not isinstance(song, str) or not song or app.store is None:
        gr.Info("Choose a song in the list first.")
        return gr.skip(), gr.skip()
    try:
        app.store.rename(song, tab.owner, title if isinstance(title, str) else "")
    except StoreError as err:
        gr.Warning(f"Not renamed: {err}.")
        return gr.skip(), gr.skip()
    return songs_update(app, tab), ""


def ask_delete(app: App, song: Any, tab: TabState) -> tuple[Any, Any]:
    """"Delete…": asks first (shows the confirmation row naming the song)."""
    tab = _tab(tab)
    if not isinstance(song, str) or not song or app.store is None:
        gr.Info("Choose a song in the list first.")
        return gr.skip(), gr.skip()
    try:
        title = app.store.info(song, tab.owner).title or "Untitled"
    except StoreError as err:
        gr.Warning(str(err))
        return gr.skip(), gr.skip()
    return (gr.update(visible=True),
            f'<p class="ts-bad">Delete “{html.escape(title)}” and all its versions? This cannot be undone.</p>')


def delete_song(app: App, song: Any, tab: TabState) -> tuple[Any, Any, Any]:
    """The confirmed delete; returns (confirmation row, songs list, browser key). The score on
    screen stays; when it was the deleted song, the next change saves it as a new one."""
    tab = _tab(tab)
    hide = gr.update(visible=False)
    if not isinstance(song, str) or not song or app.store is None:
        return hide, gr.skip(), gr.skip()
    try:
        app.store.delete(song, tab.owner)
    except StoreError as err:
        gr.Warning(f"Not deleted: {err}.")
        return hide, gr.skip(), gr.skip()
    if song == tab.song:
        tab.song = ""
        gr.Info("Deleted. The score on screen is no longer saved; your next change saves it as a new song.")
    return hide, songs_update(app, tab), browser_value(tab)


def version_file(app: App, number: Any, tab: TabState) -> dict:
    """The download button for one version's ABC (any version, not only the one on screen)."""
    tab = _tab(tab)
    try:
        version = tab.session.versions[int(number)]
    except (TypeError, ValueError, IndexError):
        return gr.update(value=None, interactive=False)
    tab.folder = app.tab_folder(tab.folder)
    rendered = render_files(version.abc, tab.folder, ("abc",))
    path = rendered.paths.get("abc")
    if path is None:
        return gr.update(value=None, interactive=False)
    named = path.with_name(f"version-{int(number) + 1}.abc")
    shutil.copyfile(path, named)
    return gr.update(value=str(named), interactive=True)


def model_status(app: App) -> tuple[str, Any]:
    """The model's status line, and the timer switched off once loading has settled."""
    app.models.start()
    state, message = app.models.status()
    icon = {"ready": "✓", "failed": "⚠", "loading": "⏳"}.get(state, "")
    extra = ""
    if state == "loading":
        extra = " Edits, questions and undo work meanwhile."
    elif state == "failed" and app.models.has_adapter:
        extra = " Untick “fine-tuned adapter” in Settings to use the bare base model."
    line = f'<div class="ts-status ts-status-{state}">{icon} {html.escape(message)}{extra}</div>'
    return line, gr.Timer(active=state in ("idle", "loading"))


def pick_example(sample: Any) -> str:
    """The text of a clicked example prompt."""
    if isinstance(sample, (list, tuple)):
        sample = sample[0] if sample else ""
    return sample if isinstance(sample, str) else ""


# --------------------------------------------------------------------------------------------
# Layout and wiring


#: Where the browser keeps its owner key and open song (fixed: a new key at every start would
#: leave every saved song unreachable after a restart).
BROWSER_KEY = "tunesmith-songs"


def len_turn_outputs() -> int:
    """How many outputs the score-changing events update (:func:`out`'s tuple)."""
    return 6 + 5 + len(DOWNLOADS)


def build_app(agent_config: AgentConfig, composer: Composer | None = None, *,
              ui_config: UiConfig = UiConfig(), models: Models | None = None,
              store: Store | None = None, secret: str | None = None) -> gr.Blocks:
    """The app's page: lays out the components and wires them to the handlers above.

    ``composer`` replaces the model (tests pass one with a tiny model); ``models`` shares a
    :class:`Models` whose loading :func:`launch` has already started. ``store`` keeps the songs
    (None: nothing is saved) and ``secret`` encrypts the browser's key to them (keep it across
    restarts: :func:`agent.store.browser_secret`).
    """
    models = models or Models(agent_config, composer)
    app = App(config=agent_config, ui=ui_config, models=models, store=store)
    bind: Callable[..., Callable] = lambda fn, *args: functools.partial(fn, app, *args)

    with gr.Blocks(title="tunesmith", analytics_enabled=False, fill_width=True) as demo:
        tab = gr.State(TabState(), delete_callback=remove_folder)  # a new, empty one per page
        kept = gr.BrowserState({"owner": "", "song": ""}, storage_key=BROWSER_KEY, secret=secret)

        with gr.Row(elem_id="ts-header"):
            gr.HTML('<div class="ts-brand"><h1>tunesmith</h1><p>Ask for a tune; keep shaping it '
                    'in words. Sheet music, audio and files follow every change.</p></div>',
                    js_on_load=None, min_width=280)
            status = gr.HTML('<div class="ts-status">…</div>', elem_id="ts-status", js_on_load=None,
                             min_width=280)

        with gr.Row(elem_id="ts-main", equal_height=False):
            with gr.Column(scale=5, min_width=320, elem_id="ts-chat-column"):
                chatbot = gr.Chatbot(label="Conversation", elem_id="ts-chat", height=560,
                                     buttons=["copy"], feedback_options=None,
                                     placeholder="**Ask for a tune** — or pick an example below.")
                with gr.Row(elem_id="ts-input-row"):
                    message = gr.Textbox(show_label=False, lines=1, max_lines=6, scale=6,
                                         placeholder="Ask for a tune, or say how to change it…",
                                         autofocus=True, elem_id="ts-message")
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="ts-send")
                    stop = gr.Button("■ Stop", variant="stop", scale=1, min_width=70, interactive=False,
                                     elem_id="ts-stop")
                examples = gr.Dataset(components=[message], samples=[[p] for p in EXAMPLES],
                                      label="Examples", elem_id="ts-examples", layout="gallery")
                with gr.Row(elem_id="ts-steps"):
                    undo = gr.Button("↶ Undo", size="sm", elem_id="ts-undo")
                    redo = gr.Button("↷ Redo", size="sm", elem_id="ts-redo")
                    start_over = gr.Button("Start over", size="sm", variant="stop",
                                           elem_id="ts-start-over")

            with gr.Column(scale=7, min_width=320, elem_id="ts-score-column"):
                sheet = gr.HTML(EMPTY_SHEET, elem_id="ts-sheet", js_on_load=None)
                audio = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="ts-audio",
                                 buttons=["download"])
                with gr.Row(elem_id="ts-downloads"):
                    downloads = [gr.DownloadButton(label, interactive=False, size="sm", min_width=90,
                                                   elem_id=f"ts-download-{name}")
                                 for name, label in DOWNLOADS]
                with gr.Tabs(elem_id="ts-tabs"):
                    with gr.Tab("ABC editor", elem_id="ts-editor-tab"):
                        editor = gr.Code(language=None, lines=10, max_lines=24, label="ABC",
                                         interactive=True, wrap_lines=True, elem_id="ts-editor")
                        with gr.Row():
                            apply = gr.Button("Apply edit", variant="primary", size="sm",
                                              elem_id="ts-apply")
                            revert = gr.Button("Revert to the version on screen", size="sm",
                                               elem_id="ts-revert")
                        check = gr.HTML(check_html("", None), elem_id="ts-check", js_on_load=None)
                    with gr.Tab("Versions", elem_id="ts-versions-tab"):
                        versions = gr.HTML(versions_html(Session()), elem_id="ts-versions",
                                           js_on_load=None)
                        with gr.Row():
                            version_pick = gr.Dropdown(choices=[], label="Download a version (ABC)",
                                                       elem_id="ts-version-pick", scale=3)
                            version_download = gr.DownloadButton("Download", interactive=False,
                                                                 size="sm", elem_id="ts-version-download")
                    with gr.Tab("Your songs", elem_id="ts-songs-tab"):
                        songs = gr.Dropdown(choices=[], label="Your songs (kept on this server; only "
                                            "this browser can open them)", elem_id="ts-songs")
                        with gr.Row():
                            open_song_button = gr.Button("Open", size="sm", variant="primary",
                                                         elem_id="ts-open-song")
                            new_song_button = gr.Button("New song", size="sm", elem_id="ts-new-song")
                            delete_button = gr.Button("Delete…", size="sm", variant="stop",
                                                      elem_id="ts-delete-song")
                        with gr.Row():
                            new_name = gr.Textbox(show_label=False, placeholder="A new name for it",
                                                  scale=3, elem_id="ts-song-name")
                            rename_button = gr.Button("Rename", size="sm", elem_id="ts-rename-song")
                        with gr.Row(visible=False, elem_id="ts-confirm-delete") as confirm_row:
                            confirm_text = gr.HTML("", js_on_load=None)
                            yes_delete = gr.Button("Yes, delete it", size="sm", variant="stop",
                                                   elem_id="ts-yes-delete")
                            keep_song = gr.Button("Keep it", size="sm", elem_id="ts-keep-song")
                    with gr.Tab("Settings", elem_id="ts-settings-tab"):
                        temperature = gr.Slider(0.0, 1.5, value=agent_config.temperature, step=0.05,
                                                label="Temperature", elem_id="ts-temperature",
                                                info="how adventurous the model's choices are "
                                                     "(0: always the likeliest)")
                        seed = gr.Number(value=agent_config.seed, precision=0, label="Seed",
                                         info="of the first turn; each later turn adds one",
                                         elem_id="ts-seed")
                        adapter = gr.Checkbox(value=models.has_adapter, interactive=models.has_adapter,
                                              elem_id="ts-adapter",
                                              label="Fine-tuned adapter",
                                              info=("off: the bare base model (loaded on first use)"
                                                    if models.has_adapter
                                                    else "this app was started without one"))

        # The /chat and /chat_stream endpoints' own inputs and outputs; never shown on the page.
        with gr.Column(visible=False):
            api_message = gr.Textbox(label="message")
            api_reply = gr.Textbox(label="reply")
            api_abc = gr.Textbox(label="abc")
            api_files = gr.File(label="files", file_count="multiple")
            api_trigger = gr.Button("chat")
            api_stream_trigger = gr.Button("chat_stream")
        timer = gr.Timer(ui_config.status_seconds)

        score_side = [sheet, audio, *downloads, editor, check, versions]
        turn_outputs = [chatbot, message, stop, kept, songs, version_pick, *score_side]
        # Every score-changing event takes its turn in the tab's line (agent.app_state), so
        # they may all run at once: "multiple" lets a second Enter or click through, none is
        # dropped; no concurrency limit, so a waiting event shows itself at once.
        turn = dict(outputs=turn_outputs, show_progress="hidden", trigger_mode="multiple",
                    concurrency_limit=None, api_visibility="private")
        private = {"api_visibility": "private"}

        gr.on([send.click, message.submit], bind(chat),
              [message, tab, temperature, seed, adapter], **turn)
        examples.click(pick_example, examples, message, show_progress="hidden", **private
                       ).then(bind(chat), [message, tab, temperature, seed, adapter], **turn)
        for button, action in ((undo, "undo"), (redo, "redo"), (start_over, "start_over")):
            button.click(bind(step, action), [tab], **turn)
        apply.click(bind(apply_edit), [editor, tab], **turn)
        stop.click(stop_turn, [tab], None, show_progress="hidden", queue=False, **private)
        editor.input(bind(check_edit), [editor, tab], check, trigger_mode="always_last",
                     show_progress="hidden", **private)
        revert.click(revert_edit, tab, [editor, check], show_progress="hidden", **private)

        open_song_button.click(bind(open_chosen), [songs, tab], **turn)
        new_song_button.click(bind(new_song), [tab], **turn)
        rename_button.click(bind(rename_song), [songs, new_name, tab], [songs, new_name],
                            show_progress="hidden", **private)
        delete_button.click(bind(ask_delete), [songs, tab], [confirm_row, confirm_text],
                            show_progress="hidden", **private)
        yes_delete.click(bind(delete_song), [songs, tab], [confirm_row, songs, kept],
                         show_progress="hidden", **private)
        keep_song.click(lambda: gr.update(visible=False), None, confirm_row, show_progress="hidden",
                        **private)
        version_pick.change(bind(version_file), [version_pick, tab], version_download,
                            show_progress="hidden", **private)

        api = dict(inputs=[api_message, temperature, seed, adapter, tab],
                   outputs=[api_reply, api_abc, api_files], trigger_mode="multiple",
                   concurrency_limit=None)
        api_trigger.click(bind(chat_api), api_name="chat",
                          api_description="Send a message; get the reply, the current ABC and its "
                                          "files. Messages from one client are answered in order.",
                          **api)
        api_stream_trigger.click(bind(chat_stream), api_name="chat_stream",
                                 api_description="As /chat, streamed: the place in line at once, "
                                                 "then progress (a line and the ABC so far), last "
                                                 "the reply, the ABC and its files.", **api)
        demo.load(bind(restore), [kept, tab], turn_outputs, show_progress="hidden", **private)
        demo.load(bind(model_status), None, [status, timer], show_progress="hidden", **private)
        timer.tick(bind(model_status), None, [status, timer], show_progress="hidden", **private)
    demo.queue(default_concurrency_limit=ui_config.concurrency)
    return demo


def app_css() -> str:
    """The page's CSS (responsive: the columns stack on a narrow screen)."""
    return CSS_FILE.read_text(encoding="utf-8")


def app_theme() -> gr.themes.Base:
    """A theme with system fonts only, so the page needs nothing from the internet."""
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system, font_mono=mono)


def launch(host: str = "127.0.0.1", port: int = 7860, base: str | None = None,
           adapter: str | None = None, *, composer: Composer | None = None,
           ui_config: UiConfig = UiConfig(), block: bool = True,
           store_config: StoreConfig = StoreConfig()) -> gr.Blocks:
    """Start the app: the model begins loading in the background, the page is served at once.

    Songs are kept in the store of ``store_config`` (the data folder: ``$TUNESMITH_DATA``, else
    ``~/.local/share/tunesmith``). With ``block=False`` it returns the running app (close it with
    ``demo.close()``); tests use that, with a ``composer`` of their own.
    """
    config = AgentConfig(base=base or "smollm2-135m", adapter=adapter)
    store = Store.from_config(store_config)  # a folder that cannot be written stops the start here
    secret = browser_secret(store_config.folder())
    log.info("songs are kept in %s", store.path)
    models = Models(config, composer)
    models.start()
    own_root = ui_config.render_root is None
    if own_root:
        ui_config = dataclasses.replace(ui_config, render_root=tempfile.mkdtemp(prefix="tunesmith-ui-"))
    demo = build_app(config, composer, ui_config=ui_config, models=models, store=store, secret=secret)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                    show_error=False, allowed_paths=[ui_config.render_root], theme=app_theme(),
                    css=app_css(), footer_links=["api"])
    finally:
        if block and own_root:  # the server has stopped: the rendered files go with it
            shutil.rmtree(ui_config.render_root, ignore_errors=True)
    return demo


def main(argv: list[str] | None = None) -> None:
    """``python -m ui.app``: the same options as ``tunesmith ui``."""
    parser = argparse.ArgumentParser(prog="python -m ui.app", description="tunesmith in the browser")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--base", default=None, help="base model (default smollm2-135m)")
    parser.add_argument("--adapter", default=None, help="adapter folder, or 'none' for the bare base")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    launch(host=args.host, port=args.port, base=args.base, adapter=args.adapter)


if __name__ == "__main__":
    main()
