"""One browser tab's song, and the turns waiting for it: nothing sent is ever dropped.

A person may send a message, click undo or apply an edit while a tune is still being written.
Each of those becomes a :class:`Ticket` in the tab's first-in-first-out line
(:class:`TabState`): it shows in the chat at once as queued, and is answered in order, on the
score the turn before it produced. The tab's song (session, chat, render folder, saved song id)
lives in the :class:`TabState` itself, not in the page, so a turn that starts later always reads
what the earlier one wrote. A stop request ends the running turn at its next bar (see
:func:`run_turn`) and leaves the score as it was.

Across tabs, :class:`TurnLine` numbers the turns in progress so a page can say how many are
ahead of its own ("2 tunes ahead of yours"): the model writes one tune at a time.

The store helpers (:func:`save_quietly`, :func:`open_song`, :func:`chat_of`, :func:`song_choices`)
keep a tab's song in :class:`agent.store.Store` after every turn; a failed save is said in the
reply and never fails the turn.

Nothing here imports gradio: the app (``ui/app.py``) lays out and wires; this module decides.

>>> tab = TabState()
>>> first, second = tab.join("write a waltz"), tab.join("add lyrics")
>>> tab.is_next(first), tab.is_next(second), tab.ahead(second)
(True, False, 1)
>>> [m["content"] for m in tab.display()][-1]
'⏳ After this tune: add lyrics'
>>> tab.leave(first); tab.is_next(second)
True
>>> tab.is_repeat("add lyrics"), tab.is_repeat("add chords")
(True, False)
>>> tab.join_unless_repeat("add lyrics") is None, tab.join_unless_repeat("add chords") is None
(True, False)
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from agent import session as sessions
from agent.errors import TunesmithError
from agent.session import Session

log = logging.getLogger(__name__)

#: How much of a queued message its bubble repeats.
LABEL_CHARS = 60
#: The same message again within this many seconds is the second click of a double click
#: (on a busy machine the second click's event can reach the server a second or two later).
REPEAT_SECONDS = 3.0
STOPPED_REPLY = "Stopped. The score is as it was before that request."


class Stopped(TunesmithError):
    """A running turn was stopped by the person (raised at the next bar of a composition)."""


@dataclass(frozen=True)
class Ticket:
    """One message or button press waiting for (or having) the tab's turn."""

    number: int
    label: str
    joined: float = 0.0


def short_label(text: str, limit: int = LABEL_CHARS) -> str:
    """A message as its queued bubble names it: one line, cut with an ellipsis.

    >>> short_label("add lyrics about\\na lost love")
    'add lyrics about a lost love'
    >>> short_label("x" * 80, 10)
    'xxxxxxxxx…'
    """
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def queued_bubble(label: str, first: bool) -> dict:
    """The chat note under a queued message.

    >>> queued_bubble("add lyrics", True)["content"]
    '⏳ After this tune: add lyrics'
    >>> queued_bubble("undo", False)["content"]
    '⏳ Then: undo'
    """
    head = "After this tune" if first else "Then"
    return {"role": "assistant", "content": f"⏳ {head}: {short_label(label)}"}


class TabState:
    """One tab's song and its line of waiting turns (thread-safe; one per tab).

    ``gr.State(TabState())`` deep-copies its value for each new page, and a copy is a new, empty
    tab (:meth:`__deepcopy__`); every event of one tab gets the same object, so what a turn
    writes here is what the next one reads.
    """

    def __init__(self) -> None:
        self.session = Session()
        self.history: list[dict] = []      # the chat as shown, finished turns only
        self.running: list[dict] = []      # the running turn's bubbles (its message, its progress)
        self.folder = ""                   # the render folder (made on first render)
        self.owner = ""                    # the browser's owner key for the store
        self.song = ""                     # the saved song's id ("" until the first save)
        self.stop = threading.Event()      # set: the running turn stops at its next bar
        self._cond = threading.Condition()
        self._line: deque[Ticket] = deque()
        self._numbers = itertools.count(1)
        self._last: Ticket | None = None

    def __deepcopy__(self, memo: dict) -> "TabState":  # a new page gets a new, empty tab
        return TabState()

    def join(self, label: str) -> Ticket:
        """Put a message (or button) in the line; it is answered after those before it."""
        with self._cond:
            ticket = Ticket(next(self._numbers), label, time.monotonic())
            self._line.append(ticket)
            self._last = ticket
            return ticket

    def join_unless_repeat(self, label: str, within: float = REPEAT_SECONDS) -> Ticket | None:
        """:meth:`join`, or None where ``label`` repeats the last message (:meth:`is_repeat`):
        checked and joined at once, so two clicks handled side by side cannot both join."""
        with self._cond:
            if self.is_repeat(label, within):
                return None
            return self.join(label)

    def is_repeat(self, label: str, within: float = REPEAT_SECONDS) -> bool:
        """Whether ``label`` is what the last ticket said, under ``within`` seconds ago (the
        second click of a double click, sent before the box was cleared)."""
        with self._cond:
            last = self._last
            return last is not None and last.label == label and time.monotonic() - last.joined < within

    def is_next(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` has the tab now."""
        with self._cond:
            return bool(self._line) and self._line[0] is ticket

    def wait(self, ticket: Ticket, timeout: float | None = None) -> bool:
        """Wait until ``ticket`` has the tab (True), or ``timeout`` seconds passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._line) and self._line[0] is ticket, timeout)

    def ahead(self, ticket: Ticket) -> int:
        """How many tickets of this tab come before ``ticket``."""
        with self._cond:
            return next((i for i, t in enumerate(self._line) if t is ticket), len(self._line))

    def leave(self, ticket: Ticket) -> None:
        """Take ``ticket`` out of the line (done, or its page went away); wakes the next one."""
        with self._cond:
            was_first = bool(self._line) and self._line[0] is ticket
            if ticket in self._line:
                self._line.remove(ticket)
            if was_first:
                self.stop.clear()
                self.running = []
            self._cond.notify_all()

    def busy(self) -> bool:
        """Whether a turn has the tab."""
        with self._cond:
            return bool(self._line)

    def request_stop(self) -> bool:
        """Ask the running turn to stop; False when nothing runs."""
        with self._cond:
            if not self._line:
                return False
            self.stop.set()
            return True

    def display(self) -> list[dict]:
        """The chat as it should look now: finished turns, the running one, the queued ones."""
        with self._cond:
            waiting = list(self._line)[1:]
        shown = list(self.history) + list(self.running)
        for index, ticket in enumerate(waiting):
            shown += [{"role": "user", "content": ticket.label}, queued_bubble(ticket.label, index == 0)]
        return shown


class TurnLine:
    """The turns in progress across all tabs, in the order they began (for "N ahead of yours").

    >>> line = TurnLine()
    >>> a, b = line.join(), line.join()
    >>> line.ahead(b), line.ahead(a)
    (1, 0)
    >>> line.leave(a); line.ahead(b)
    0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[int] = set()
        self._numbers = itertools.count(1)

    def join(self) -> int:
        with self._lock:
            number = next(self._numbers)
            self._active.add(number)
            return number

    def ahead(self, number: int) -> int:
        with self._lock:
            return sum(1 for other in self._active if other < number)

    def leave(self, number: int) -> None:
        with self._lock:
            self._active.discard(number)


def position_line(ahead: int) -> str:
    """What a waiting turn says about its place.

    >>> position_line(0)
    'Starting…'
    >>> position_line(1), position_line(2)
    ('1 tune ahead of yours: yours is next.', '2 tunes ahead of yours.')
    """
    if ahead <= 0:
        return "Starting…"
    if ahead == 1:
        return "1 tune ahead of yours: yours is next."
    return f"{ahead} tunes ahead of yours."


def run_turn(take: Callable[..., Any], session: Session, message: str, stop: threading.Event | None = None,
             poll_seconds: float = 0.4) -> Iterator[tuple[str, Any]]:
    """Run ``take(session, message, on_progress=…)`` (a bound :func:`agent.conversation.take_turn`)
    in a worker thread; yield ``("progress", (stage, bars, text))`` for its newest progress,
    ``("tick", seconds)`` while it works quietly, then ``("turn", Turn)``.

    When ``stop`` is set, the next progress report raises :class:`Stopped` inside the turn (a
    composition reports every bar), the turn ends without a new version, and the final Turn's
    ``intent`` is ``"stopped"`` with :data:`STOPPED_REPLY`; the session is the one given, plus the
    message and that reply.
    """
    from agent.conversation import Turn

    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def on_progress(*event: Any) -> None:
        if stop is not None and stop.is_set():
            raise Stopped("stopped")
        events.put(("progress", event))

    def work() -> None:
        try:
            outcome["turn"] = take(session, message, on_progress=on_progress)
        except BaseException as err:  # take_turn promises not to raise; if it does, report it
            outcome["error"] = err
        finally:
            events.put(("end", None))

    started = time.perf_counter()
    threading.Thread(target=work, name="tunesmith-turn", daemon=True).start()
    while True:
        try:
            kind, value = events.get(timeout=poll_seconds)
        except queue.Empty:
            yield "tick", time.perf_counter() - started
            continue
        latest = None
        while kind == "progress":  # several bars since the last look: show only the newest
            latest = value
            try:
                kind, value = events.get_nowait()
            except queue.Empty:
                break
        if latest is not None:
            yield "progress", latest
        if kind == "end":
            break
    if stop is not None and stop.is_set() and not (outcome.get("turn") and outcome["turn"].changed):
        stopped = sessions.add_message(sessions.add_message(session, "user", message), "assistant",
                                       STOPPED_REPLY)
        yield "turn", Turn(session=stopped, reply=STOPPED_REPLY, changed=False, intent="stopped")
    elif "error" in outcome:
        error = outcome["error"]
        log.error("a turn failed: %s: %s", type(error).__name__, error)
        reply = (f"Something went wrong on my side ({type(error).__name__}: {error}). "
                 "Your score is unchanged.")
        yield "turn", Turn(session=session, reply=reply, changed=False, intent="error")
    else:
        yield "turn", outcome["turn"]


# --------------------------------------------------------------------------------------------
# Keeping a tab's song in the store


def chat_of(session: Session) -> list[dict]:
    """The chat of a saved session as the page shows it.

    >>> from agent.session import add_message
    >>> chat_of(add_message(Session(), "user", "a jig"))
    [{'role': 'user', 'content': 'a jig'}]
    """
    return [{"role": m.get("role", "assistant"), "content": str(m.get("content", ""))}
            for m in session.messages if m.get("role") in ("user", "assistant")]


def save_quietly(store: Any, owner: str, song: str, session: Session) -> tuple[str, str]:
    """Save ``session`` as ``song`` (a new song when ``song`` is empty or gone).

    Returns ``(song id, note)``: the note is "" when saved, else "(Not saved: …)" for the reply;
    a store that cannot be written never fails the turn.

    >>> save_quietly(None, "k" * 20, "", Session())
    ('', '')
    """
    from agent.store import SongNotFound, StoreError

    if store is None:
        return song, ""
    try:
        if song:
            try:
                store.save(song, owner, session)
                return song, ""
            except SongNotFound:  # deleted in another tab meanwhile: keep the work as a new song
                pass
        return store.create(owner, session), ""
    except StoreError as err:
        log.error("saving a song failed: %s", err)
        return song, f"(Not saved: {err}.)"
    except Exception as err:  # a store bug must not lose the turn either
        log.error("saving a song failed: %s: %s", type(err).__name__, err)
        return song, f"(Not saved: {type(err).__name__}: {err}.)"


def open_song(store: Any, owner: str, song: str) -> Session:
    """The saved session ``song`` of ``owner`` (:class:`agent.store.SongNotFound` when it is
    not theirs or gone)."""
    return store.load(song, owner)


def song_choices(store: Any, owner: str) -> list[tuple[str, str]]:
    """``(label, id)`` for each of the owner's songs, newest first ([] without a store).

    >>> song_choices(None, "k" * 20)
    []
    """
    if store is None or not owner:
        return []
    labels = []
    for info in store.list(owner):
        about = ", ".join(part for part in (info.key, info.meter, f"{info.bars} bars" if info.bars else "")
                          if part)
        stamp = time.strftime("%d %b %H:%M", time.localtime(info.updated))
        labels.append((f"{info.title or 'Untitled'} — {about or 'no score yet'} · {stamp}", info.id))
    return labels


def version_choices(session: Session) -> list[tuple[str, int]]:
    """``(label, number)`` for each version of a session, the newest first.

    >>> from agent.session import add_version
    >>> version_choices(add_version(Session(), "X:1\\nK:C\\nC|\\n", "a tune"))
    [('1. a tune (on screen)', 0)]
    """
    items = []
    for number, version in enumerate(session.versions):
        here = " (on screen)" if number == session.position else ""
        items.append((f"{number + 1}. {short_label(version.summary, 50)}{here}", number))
    return items[::-1]
