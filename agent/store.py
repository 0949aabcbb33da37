"""Saved songs: every conversation and its versions, kept in one SQLite file.

A reload, a closed laptop lid or a server restart must not lose a song, and several people may
use one server, so a song lives here rather than in the browser tab. Each row of ``sessions``
holds one :class:`agent.session.Session` as its JSON (:func:`agent.session.to_json`: the
versions, where undo stands, the chat, the settings) plus the columns a "your songs" list shows
without reading the JSON (title, key, meter, bars, times, version count).

Why SQLite through :mod:`sqlite3` (no ORM): one file, atomic transactions, and a write-ahead log
(WAL) in which a crash mid-write leaves the last committed state readable. Every write is one
transaction (``BEGIN IMMEDIATE``, so two writers queue instead of failing half-way). The schema
carries its version in ``PRAGMA user_version``; :func:`migrate` brings an older file up to date.

``synchronous=FULL`` by default: with WAL, NORMAL already survives a killed process, but a power
cut can take back the last commits; FULL syncs the log at every commit so a saved turn stays
saved. A save comes once per turn (turns take seconds to a minute), and FULL's sync costs a few
milliseconds (a 20-version session: 4-6.5 ms per save with FULL, 1.5 ms with NORMAL, median of
100 saves on this project's 2-core machine), so there is nothing to gain from NORMAL here.

Threads: each thread gets its own connection (readers run side by side in WAL), and this
process's writers queue on one lock. Measured with 8 threads each saving, loading and listing
a 20-version session 40 times: 1.1 s this way, 1.3 s with one shared connection behind a lock,
2.0 s with per-thread connections left to SQLite's busy handler.

Privacy: ids are unguessable (:func:`secrets.token_urlsafe`), and every session belongs to an
owner key, a secret the browser keeps. The file stores only the key's SHA-256, and every read,
list, rename or delete matches both id and owner, so another owner's id reads exactly like a
missing one (:class:`SongNotFound`, same message).

>>> import tempfile
>>> from agent.session import Session, add_version
>>> folder = tempfile.mkdtemp()
>>> store = Store(Path(folder) / "songs.sqlite3")
>>> owner = new_owner_key()
>>> song = store.create(owner)
>>> store.save(song, owner, add_version(Session(), "X:1\\nT:Waltz\\nM:3/4\\nL:1/4\\nK:Dm\\nDEF|A2F|]\\n",
...                                            "a waltz"))
>>> [(info.title, info.key, info.meter, info.bars) for info in store.list(owner)]
[('Waltz', 'Dm', '3/4', 2)]
>>> store.load(song, new_owner_key())
Traceback (most recent call last):
...
agent.store.SongNotFound: no saved song with that id (it may have been deleted)
>>> store.close()
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

from agent import session as sessions
from agent.errors import TunesmithError
from agent.session import Session

#: The schema this code writes; older files are migrated, newer ones refused.
SCHEMA_VERSION = 1
DEFAULT_FILE = "tunesmith.sqlite3"
#: The shortest owner key accepted (``new_owner_key`` makes 32 characters).
MIN_OWNER_CHARS = 16
MAX_TITLE_CHARS = 120
#: A saved session larger than this is refused rather than slowing every load (a session of 200
#: versions of a 64-bar tune with its chat is about 1 MB).
MAX_SESSION_BYTES = 20_000_000
NOT_FOUND = "no saved song with that id (it may have been deleted)"


class StoreError(TunesmithError):
    """The song store could not be read or written; the message says what to do."""


class SongNotFound(StoreError):
    """No song with that id for that owner (a wrong owner reads exactly like a missing id)."""


@dataclass(frozen=True)
class StoreConfig:
    """Where the songs are kept and how carefully."""

    data_dir: str | None = field(default=None, metadata={
        "help": "folder of the song store (default: $TUNESMITH_DATA, else "
                "$XDG_DATA_HOME/tunesmith, else ~/.local/share/tunesmith)"})
    file_name: str = field(default=DEFAULT_FILE, metadata={"help": "the SQLite file in that folder"})
    synchronous: str = field(default="FULL", metadata={
        "help": "FULL: a saved turn survives a power cut; NORMAL: survives a crashed process only"})
    busy_timeout_s: float = field(default=10.0, metadata={
        "help": "how long a write waits for another writer before giving up"})
    per_thread: bool = field(default=True, metadata={
        "help": "one connection per thread (readers run side by side); False: one shared "
                "connection behind a lock"})

    def folder(self, environ: Mapping[str, str] | None = None) -> Path:
        """The data folder: ``data_dir``, else resolved from the environment (see
        :func:`data_folder`)."""
        return Path(self.data_dir).expanduser() if self.data_dir else data_folder(environ)

    def path(self, environ: Mapping[str, str] | None = None) -> Path:
        """The SQLite file."""
        return self.folder(environ) / self.file_name


@dataclass(frozen=True)
class SongInfo:
    """One line of the "your songs" list (no JSON read to make it)."""

    id: str
    title: str
    created: float
    updated: float
    versions: int
    key: str
    meter: str
    bars: int


# --------------------------------------------------------------------------------------------
# Pure helpers


def data_folder(environ: Mapping[str, str] | None = None) -> Path:
    """Where tunesmith keeps its data: ``TUNESMITH_DATA``, else ``$XDG_DATA_HOME/tunesmith``,
    else ``~/.local/share/tunesmith``.

    >>> data_folder({"TUNESMITH_DATA": "/srv/songs"})
    PosixPath('/srv/songs')
    >>> data_folder({"XDG_DATA_HOME": "/x"})
    PosixPath('/x/tunesmith')
    >>> data_folder({"TUNESMITH_DATA": "", "HOME": "/home/ann"})
    PosixPath('/home/ann/.local/share/tunesmith')
    """
    environ = os.environ if environ is None else environ
    if environ.get("TUNESMITH_DATA"):
        return Path(environ["TUNESMITH_DATA"]).expanduser()
    if environ.get("XDG_DATA_HOME"):
        return Path(environ["XDG_DATA_HOME"]).expanduser() / "tunesmith"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share" / "tunesmith"


def new_song_id() -> str:
    """A fresh song id: unguessable, and never starting with "-", which a command line would
    read as an option (``--session -x...``).

    >>> all(not new_song_id().startswith("-") for _ in range(200))
    True
    """
    song = secrets.token_urlsafe(18)
    while song.startswith("-"):
        song = secrets.token_urlsafe(18)
    return song


def new_owner_key() -> str:
    """A fresh owner key: the secret a browser keeps to reach its own songs.

    >>> len(new_owner_key()) >= MIN_OWNER_CHARS
    True
    """
    return secrets.token_urlsafe(24)


def browser_secret(folder: str | Path, name: str = "browser-secret") -> str:
    """A secret made once per data folder and read back on every start (file mode 0600).

    ``gr.BrowserState`` picks a new random storage key and secret each time the app is built,
    so after a restart the browser's saved owner key would be unreadable; passing this secret
    (and a fixed ``storage_key``) keeps it readable across restarts.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> browser_secret(folder) == browser_secret(folder) and len(browser_secret(folder)) >= 32
    True
    """
    path = Path(folder) / name
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_urlsafe(32))
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
                    os.link(tmp, path)                      # (a link never shows a half-written file)
            finally:
                os.unlink(tmp)
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise StoreError(f"cannot keep the browser secret at {path} ({exc.strerror}): set "
                         "TUNESMITH_DATA to a writable folder") from None


def command_line_owner(folder: str | Path) -> str:
    """The owner key of the command line's songs in the data folder ``folder`` (made once, kept
    in a 0600 file): ``tunesmith converse`` saves to it and ``--session ID`` resumes from it.
    The browser's songs have their own keys, so neither lists the other's.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> command_line_owner(folder) == command_line_owner(folder) != browser_secret(folder)
    True
    """
    return browser_secret(folder, "command-line-owner")


def owner_hash(owner: str) -> str:
    """What the file keeps of an owner key: its SHA-256 (the key itself never reaches the disk).

    >>> owner_hash("a-browser-secret-key")[:12]
    'b3ffa79ae59c'
    >>> owner_hash("short")
    Traceback (most recent call last):
    ...
    agent.store.StoreError: this browser's key for its songs is missing or too short; reload the page
    """
    if not isinstance(owner, str) or len(owner) < MIN_OWNER_CHARS:
        raise StoreError("this browser's key for its songs is missing or too short; reload the page")
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()


def listing_facts(session: Session) -> dict:
    """Title, key, meter and bars of the version on screen, for the list (empty when none).

    A title the tune does not give comes from the first thing the person asked for.

    >>> from agent.session import add_message, add_version
    >>> s = add_message(Session(), "user", "a jig in G")
    >>> listing_facts(s)["title"]
    'a jig in G'
    >>> listing_facts(add_version(s, "X:1\\nT:Kesh\\nM:6/8\\nK:G\\nGAB|\\n", "a jig"))["key"]
    'G'
    """
    facts = {"title": "", "key": "", "meter": "", "bars": 0}
    abc = sessions.current_abc(session)
    if abc:
        try:
            from agent.abc_text import bar_count, parse_tune

            tune = parse_tune(abc)
            facts.update(title=tune.title or "", key=tune.get("K") or "", meter=tune.get("M") or "",
                         bars=bar_count(tune))
        except Exception:  # a version the reader refuses is still saved; only the list is plainer
            pass
    if not facts["title"]:
        asked = next((m.get("content", "") for m in session.messages if m.get("role") == "user"), "")
        facts["title"] = " ".join(str(asked).split())[:60]
    return facts


def clean_title(title: str) -> str:
    """A title as kept: one line, at most :data:`MAX_TITLE_CHARS` characters, not empty.

    >>> clean_title("  Lament\\nfor  Ann ")
    'Lament for Ann'
    >>> clean_title("   ")
    Traceback (most recent call last):
    ...
    agent.store.StoreError: a song's name cannot be empty
    """
    text = " ".join(str(title).split())
    if not text:
        raise StoreError("a song's name cannot be empty")
    return text[:MAX_TITLE_CHARS]


def explain(err: sqlite3.Error, path: Path) -> StoreError:
    """A :class:`StoreError` that says what went wrong with the file at ``path`` and what to do.

    >>> str(explain(sqlite3.OperationalError("database or disk is full"), Path("/d/s.sqlite3")))
    'the disk holding /d/s.sqlite3 is full: free some space, then try again (nothing saved was lost)'
    >>> "damaged" in str(explain(sqlite3.DatabaseError("file is not a database"), Path("/d/s")))
    True
    """
    text = str(err).lower()
    if "full" in text:
        return StoreError(f"the disk holding {path} is full: free some space, then try again "
                          "(nothing saved was lost)")
    if "locked" in text or "busy" in text:
        return StoreError(f"the song store {path} is busy (another program is writing it): try again; "
                          "if it stays busy, close other tunesmith processes using that folder")
    if "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text:
        return StoreError(f"cannot write the song store {path}: check that its folder exists and is "
                          "writable, or set TUNESMITH_DATA to another folder")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(f"the song store {path} is damaged ({err}): move it aside and restart "
                          "(a new, empty one is made), or run 'sqlite3 FILE .recover' to rescue songs")
    if "disk i/o" in text:
        return StoreError(f"the disk failed while using the song store {path} ({err}): check the "
                          "disk and free space, then try again")
    return StoreError(f"the song store {path} failed: {err}")


# --------------------------------------------------------------------------------------------
# Schema


def _schema_v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE sessions (
            id        TEXT PRIMARY KEY,
            owner     TEXT NOT NULL,              -- SHA-256 of the owner key
            title     TEXT NOT NULL DEFAULT '',
            named     INTEGER NOT NULL DEFAULT 0, -- 1 once the person named it (kept over the tune's T:)
            created   REAL NOT NULL,
            updated   REAL NOT NULL,
            versions  INTEGER NOT NULL DEFAULT 0,
            key       TEXT NOT NULL DEFAULT '',
            meter     TEXT NOT NULL DEFAULT '',
            bars      INTEGER NOT NULL DEFAULT 0,
            data      TEXT NOT NULL               -- agent.session.to_json
        )""")
    conn.execute("CREATE INDEX sessions_by_owner ON sessions (owner, updated DESC)")


#: ``MIGRATIONS[n]`` brings a file from schema ``n`` to ``n + 1`` (0 is a new, empty file).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_schema_v1,)


def migrate(conn: sqlite3.Connection, migrations: tuple[Callable[[sqlite3.Connection], None], ...]
            = MIGRATIONS) -> int:
    """Bring the file's schema up to ``len(migrations)``, each step in its own transaction;
    returns the version it started from. A file from a newer tunesmith is refused.

    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> migrate(conn), conn.execute("PRAGMA user_version").fetchone()[0]
    (0, 1)
    >>> conn.execute("PRAGMA user_version = 7") and migrate(conn)
    Traceback (most recent call last):
    ...
    agent.store.StoreError: the song store was written by a newer tunesmith (schema 7, this one reads up to 1): upgrade tunesmith
    """
    start = conn.execute("PRAGMA user_version").fetchone()[0]
    if start > len(migrations):
        raise StoreError(f"the song store was written by a newer tunesmith (schema {start}, this one "
                         f"reads up to {len(migrations)}): upgrade tunesmith")
    for version in range(start, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == version:  # another process may
                migrations[version](conn)                                       # have done it
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return start


# --------------------------------------------------------------------------------------------
# The store


class Store:
    """Songs in one SQLite file, safe to use from many threads (Gradio's workers) at once.

    ``Store(path)`` opens (or makes) the file; ``Store.from_config(StoreConfig())`` finds it
    from the environment. Every method that names a song takes its owner key too.
    """

    def __init__(self, path: str | Path, config: StoreConfig = StoreConfig()):
        self.path = Path(path)
        self.config = config
        if config.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be NORMAL, FULL or EXTRA, not {config.synchronous!r}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()     # guards _all, and the shared connection when not per_thread
        self._open_lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy handler, which sleeps
        # and retries (measured: 8 threads each saving, loading and listing 40 times took 2.0 s
        # without this lock, 1.1 s with it).
        self._write_lock = threading.Lock()
        self._shared: sqlite3.Connection | None = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot make the folder {self.path.parent} for the song store "
                             f"({exc.strerror}): set TUNESMITH_DATA to a writable folder") from None
        with self._connection() as conn:
            self._run(lambda: migrate(conn))

    @classmethod
    def from_config(cls, config: StoreConfig = StoreConfig(),
                    environ: Mapping[str, str] | None = None) -> "Store":
        """The store at the configured (or environment's) data folder."""
        return cls(config.path(environ), config)

    # -- connections

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the song store is closed")
        # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself.
        conn = sqlite3.connect(self.path, timeout=self.config.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"the song store {self.path} cannot use a write-ahead log (journal "
                                 f"mode {mode}): keep it on a local disk, not a network share")
            conn.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
            conn.execute(f"PRAGMA busy_timeout={int(self.config.busy_timeout_s * 1000)}")
        except sqlite3.Error as err:
            conn.close()
            raise explain(err, self.path) from None
        except StoreError:
            conn.close()
            raise
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError("the song store is closed")
        if self.config.per_thread:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._run(self._open)
                self._local.conn = conn
            yield conn
            return
        with self._open_lock:
            if self._shared is None:
                self._shared = self._run(self._open)
        with self._lock:
            yield self._shared

    def _run(self, action: Callable):
        try:
            return action()
        except sqlite3.Error as err:
            raise explain(err, self.path) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole, or rolled back whole."""
        with self._write_lock, self._connection() as conn:
            self._run(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                self._run(lambda: conn.execute("COMMIT"))
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._connection() as conn:
            return self._run(lambda: conn.execute(sql, args).fetchall())

    # -- songs

    def create(self, owner: str, session: Session = Session(), title: str = "") -> str:
        """A new song for ``owner`` (an empty session unless given); returns its id."""
        digest = owner_hash(owner)
        song = new_song_id()
        now = time.time()
        data, facts = self._encode(session)
        named = bool(title.strip())
        shown = clean_title(title) if named else facts["title"]
        with self._write() as conn:
            self._run(lambda: conn.execute(
                "INSERT INTO sessions (id, owner, title, named, created, updated, versions, key, "
                "meter, bars, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (song, digest, shown, int(named), now, now, len(session.versions), facts["key"],
                 facts["meter"], facts["bars"], data)))
        return song

    def save(self, song: str, owner: str, session: Session) -> None:
        """Replace the song's session with ``session`` (one transaction: all of it or none)."""
        digest = owner_hash(owner)
        data, facts = self._encode(session)
        with self._write() as conn:
            cursor = self._run(lambda: conn.execute(
                "UPDATE sessions SET data = ?, updated = ?, versions = ?, key = ?, meter = ?, bars = ?, "
                "title = CASE WHEN named THEN title ELSE ? END WHERE id = ? AND owner = ?",
                (data, time.time(), len(session.versions), facts["key"], facts["meter"],
                 facts["bars"], facts["title"], str(song), digest)))
            if cursor.rowcount != 1:
                raise SongNotFound(NOT_FOUND)

    def load(self, song: str, owner: str) -> Session:
        """The song's session as last saved."""
        rows = self._query("SELECT data FROM sessions WHERE id = ? AND owner = ?",
                           (str(song), owner_hash(owner)))
        if not rows:
            raise SongNotFound(NOT_FOUND)
        try:
            return sessions.from_json(rows[0][0])
        except TunesmithError as err:
            raise StoreError(f"the saved song {song} cannot be read ({err}); the other songs are "
                             "unaffected") from None

    def info(self, song: str, owner: str) -> SongInfo:
        """The list line of one song."""
        rows = self._query(f"SELECT {_INFO_COLUMNS} FROM sessions WHERE id = ? AND owner = ?",
                           (str(song), owner_hash(owner)))
        if not rows:
            raise SongNotFound(NOT_FOUND)
        return SongInfo(*rows[0])

    def list(self, owner: str, limit: int = 200) -> list[SongInfo]:
        """The owner's songs, the most recently changed first (never anyone else's)."""
        rows = self._query(f"SELECT {_INFO_COLUMNS} FROM sessions WHERE owner = ? "
                           "ORDER BY updated DESC, id LIMIT ?", (owner_hash(owner), int(limit)))
        return [SongInfo(*row) for row in rows]

    def rename(self, song: str, owner: str, title: str) -> str:
        """Give the song a name of the person's choosing (kept over the tune's own title);
        returns the name as kept."""
        digest, title = owner_hash(owner), clean_title(title)
        with self._write() as conn:
            cursor = self._run(lambda: conn.execute(
                "UPDATE sessions SET title = ?, named = 1 WHERE id = ? AND owner = ?",
                (title, str(song), digest)))
            if cursor.rowcount != 1:
                raise SongNotFound(NOT_FOUND)
        return title

    def delete(self, song: str, owner: str) -> None:
        """Remove the song and all its versions for good."""
        digest = owner_hash(owner)
        with self._write() as conn:
            cursor = self._run(lambda: conn.execute(
                "DELETE FROM sessions WHERE id = ? AND owner = ?", (str(song), digest)))
            if cursor.rowcount != 1:
                raise SongNotFound(NOT_FOUND)

    def version_abc(self, song: str, owner: str, number: int) -> str:
        """The ABC of one version (1 is the first), for "download any version"."""
        session = self.load(song, owner)
        if not 1 <= number <= len(session.versions):
            raise StoreError(f"this song has {len(session.versions)} versions; there is no version {number}")
        return session.versions[number - 1].abc

    def integrity_check(self) -> str:
        """SQLite's own check of the whole file: ``"ok"`` when sound."""
        rows = self._query("PRAGMA integrity_check", ())
        return "; ".join(str(row[0]) for row in rows)

    def settings(self) -> dict:
        """The file's journal mode, sync level and schema version as this thread's connection
        sees them (for diagnostics and tests)."""
        with self._connection() as conn:
            pragma = lambda name: self._run(lambda: conn.execute(f"PRAGMA {name}").fetchone()[0])
            return {"journal_mode": pragma("journal_mode"),
                    "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[pragma("synchronous")],
                    "schema": pragma("user_version")}

    def close(self) -> None:
        """Close every connection (the file stays; reopen with a new Store)."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encoding

    @staticmethod
    def _encode(session: Session) -> tuple[str, dict]:
        if not isinstance(session, Session):
            raise StoreError(f"only a Session can be saved, not {type(session).__name__}")
        data = sessions.to_json(session)
        if len(data) > MAX_SESSION_BYTES:
            raise StoreError(f"this song's history is too large to save ({len(data):,} characters); "
                             "start a new song")
        return data, listing_facts(session)


_INFO_COLUMNS = "id, title, created, updated, versions, key, meter, bars"
__all__ = ["Store", "StoreConfig", "StoreError", "SongNotFound", "SongInfo", "data_folder",
           "browser_secret",
           "new_owner_key", "owner_hash", "migrate", "SCHEMA_VERSION"]
