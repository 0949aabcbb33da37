"""The song store: sessions kept in SQLite, private to their owner, whole after a crash.

Every test works in its own temporary folder; the environment's data folders point there too,
so nothing here touches the real ~/.local/share. The crash test kills a writing process with
SIGKILL at random moments and checks that every save that had returned is still there, exactly.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import session as sessions
from agent.abc_text import parse_tune
from agent.errors import TunesmithError
from agent.session import Session
from agent.store import (MIN_OWNER_CHARS, SCHEMA_VERSION, SongNotFound, Store, StoreConfig,
                         StoreError, browser_secret, migrate, new_owner_key)

ROOT = Path(__file__).resolve().parent.parent
TUNES = sorted((ROOT / "tests" / "data" / "abc").glob("*.abc"))


@pytest.fixture(autouse=True)
def no_real_data_folder(tmp_path, monkeypatch):
    """Point every data-folder variable into the test's folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TUNESMITH_DATA", raising=False)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "songs.sqlite3") as opened:
        yield opened


def conversation(tune_index: int = 0, turns: int = 3) -> Session:
    """A session built as the app builds one: a request, a real tune, edits and replies."""
    abc = TUNES[tune_index % len(TUNES)].read_text(encoding="utf-8")
    session = sessions.add_message(Session(), "user", f"a tune like number {tune_index}")
    for turn in range(turns):
        version = abc.replace("K:", f"N:take {turn}\nK:", 1)
        session = sessions.add_version(session, version, f"take {turn}")
        session = sessions.add_message(session, "assistant", f"Here is take {turn}.")
    return session


# --------------------------------------------------------------------------------------------
# Saving and reading back


def test_a_saved_session_reads_back_equal_and_lists_its_tune(store):
    owner = new_owner_key()
    song = store.create(owner)
    session = sessions.undo(conversation(0, turns=4))  # undo's position must survive too
    store.save(song, owner, session)
    assert store.load(song, owner) == session
    [info] = store.list(owner)
    tune = parse_tune(sessions.current_abc(session))
    assert (info.id, info.title, info.key, info.meter, info.versions) == (
        song, tune.title, tune.get("K"), tune.get("M"), 4)
    assert info.bars > 0 and info.updated >= info.created


def test_songs_survive_a_restart(tmp_path):
    owner, session = new_owner_key(), conversation(1)
    with Store(tmp_path / "songs.sqlite3") as first:
        song = first.create(owner, session)
    with Store(tmp_path / "songs.sqlite3") as second:
        assert second.load(song, owner) == session
        assert [info.id for info in second.list(owner)] == [song]


def test_an_empty_session_lists_under_the_words_asked_for(store):
    owner = new_owner_key()
    song = store.create(owner, sessions.add_message(Session(), "user", "a  lullaby\nin F"))
    assert store.info(song, owner).title == "a lullaby in F"
    assert store.info(song, owner).versions == 0


def test_rename_holds_over_later_saves_and_delete_removes(store):
    owner = new_owner_key()
    song = store.create(owner, conversation(2))
    assert store.rename(song, owner, "  For   Ann ") == "For Ann"
    store.save(song, owner, conversation(3))
    assert store.info(song, owner).title == "For Ann"
    with pytest.raises(StoreError, match="cannot be empty"):
        store.rename(song, owner, "  ")
    store.delete(song, owner)
    assert store.list(owner) == []
    with pytest.raises(SongNotFound):
        store.load(song, owner)


def test_any_version_can_be_read_back(store):
    owner, session = new_owner_key(), conversation(4, turns=3)
    song = store.create(owner, session)
    assert [store.version_abc(song, owner, n) for n in (1, 2, 3)] == [v.abc for v in session.versions]
    with pytest.raises(StoreError, match="has 3 versions; there is no version 4"):
        store.version_abc(song, owner, 4)


def test_list_is_newest_first(store):
    owner = new_owner_key()
    songs = [store.create(owner, conversation(i)) for i in range(3)]
    time.sleep(0.01)
    store.save(songs[0], owner, conversation(5))
    assert [info.id for info in store.list(owner)] == [songs[0], songs[2], songs[1]]


# --------------------------------------------------------------------------------------------
# Privacy


def test_another_owner_reads_exactly_like_a_missing_id(store):
    alice, bob = new_owner_key(), new_owner_key()
    original = conversation(0)
    song = store.create(alice, original)
    missing = "x" * len(song)
    for action in (lambda s, o: store.load(s, o), lambda s, o: store.info(s, o),
                   lambda s, o: store.save(s, o, conversation(1)),
                   lambda s, o: store.rename(s, o, "mine now"), lambda s, o: store.delete(s, o)):
        with pytest.raises(SongNotFound) as wrong_owner:
            action(song, bob)
        with pytest.raises(SongNotFound) as no_such_id:
            action(missing, alice)
        assert str(wrong_owner.value) == str(no_such_id.value)
    assert store.list(bob) == []
    assert store.load(song, alice) == original  # untouched by bob's attempts


def test_ids_are_unguessable_and_owner_keys_are_not_stored(store, tmp_path):
    owner = new_owner_key()
    songs = {store.create(owner) for _ in range(50)}
    assert len(songs) == 50 and min(len(s) for s in songs) >= 24
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("songs.sqlite3*"))  # file and log
    assert owner.encode() not in raw
    assert hashlib.sha256(owner.encode()).hexdigest().encode() in raw


def test_a_short_or_missing_owner_key_is_refused(store):
    for owner in ("", "x" * (MIN_OWNER_CHARS - 1), None):
        with pytest.raises(StoreError, match="too short; reload the page"):
            store.create(owner)


# --------------------------------------------------------------------------------------------
# The file: location, modes, schema, damage


def test_the_data_folder_comes_from_the_environment(tmp_path):
    environ = {"TUNESMITH_DATA": str(tmp_path / "data"), "HOME": "/nonexistent"}
    with Store.from_config(StoreConfig(), environ) as store:
        assert store.path == tmp_path / "data" / "tunesmith.sqlite3"
        assert store.path.is_file()
    assert StoreConfig().path({"XDG_DATA_HOME": "/x"}) == Path("/x/tunesmith/tunesmith.sqlite3")
    assert StoreConfig(data_dir=str(tmp_path)).path({"TUNESMITH_DATA": "/elsewhere"}) == (
        tmp_path / "tunesmith.sqlite3")


def test_the_file_is_in_wal_mode_with_full_sync_and_the_current_schema(store):
    assert store.settings() == {"journal_mode": "wal", "synchronous": "FULL", "schema": SCHEMA_VERSION}
    normal = Store(store.path, StoreConfig(synchronous="NORMAL"))
    assert normal.settings()["synchronous"] == "NORMAL"
    normal.close()
    with pytest.raises(StoreError, match="NORMAL, FULL or EXTRA"):
        Store(store.path, StoreConfig(synchronous="OFF"))


def test_migrations_run_in_order_once_and_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    steps = []
    two_steps = (lambda c: steps.append(1) or c.execute("CREATE TABLE a (x)"),
                 lambda c: steps.append(2) or c.execute("ALTER TABLE a ADD COLUMN y"))
    assert migrate(conn, two_steps[:1]) == 0
    assert migrate(conn, two_steps) == 1
    assert migrate(conn, two_steps) == 2
    assert steps == [1, 2]
    assert [row[1] for row in conn.execute("PRAGMA table_info(a)")] == ["x", "y"]
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer tunesmith .schema 99"):
        Store(path)


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path):
    conn = sqlite3.connect(tmp_path / "f.sqlite3", isolation_level=None)

    def broken(c):
        c.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (broken,))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_damaged_file_gets_a_message_saying_what_to_do(tmp_path):
    path = tmp_path / "songs.sqlite3"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match="is damaged .* move it aside"):
        Store(path)


def test_a_locked_file_says_busy_and_loses_nothing(store):
    owner, before, after = new_owner_key(), conversation(0), conversation(1)
    song = store.create(owner, before)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    impatient = Store(store.path, StoreConfig(busy_timeout_s=0.2))
    try:
        with pytest.raises(StoreError, match="busy .* try again"):
            impatient.save(song, owner, after)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert impatient.load(song, owner) == before
    impatient.save(song, owner, after)
    assert store.load(song, owner) == after
    impatient.close()


def test_store_errors_are_tunesmith_errors(store):
    assert issubclass(SongNotFound, StoreError) and issubclass(StoreError, TunesmithError)
    with pytest.raises(StoreError, match="only a Session can be saved"):
        store.create(new_owner_key(), {"versions": []})
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list(new_owner_key())


# --------------------------------------------------------------------------------------------
# Threads


@pytest.mark.parametrize("per_thread", [True, False])
def test_eight_threads_saving_and_loading_never_cross(tmp_path, per_thread):
    store = Store(tmp_path / "songs.sqlite3", StoreConfig(per_thread=per_thread))
    owners = [new_owner_key() for _ in range(8)]
    problems: list[str] = []
    start = threading.Barrier(8)

    def user(number: int) -> None:
        owner = owners[number]
        song = store.create(owner)
        start.wait()
        session = Session()
        for turn in range(15):
            abc = f"X:{number}\nT:User {number} take {turn}\nM:4/4\nL:1/8\nK:C\nCDEF GABc|]\n"
            session = sessions.add_message(sessions.add_version(session, abc, f"take {turn}"),
                                           "assistant", f"user {number}, turn {turn}")
            store.save(song, owner, session)
            back = store.load(song, owner)
            if back != session:
                problems.append(f"user {number} turn {turn} read back something else")
            listed = store.list(owner)
            if [info.id for info in listed] != [song] or listed[0].title != f"User {number} take {turn}":
                problems.append(f"user {number} turn {turn} listed {listed}")

    threads = [threading.Thread(target=user, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert store.integrity_check() == "ok"
    store.close()


# --------------------------------------------------------------------------------------------
# Crash safety

WRITER = r'''
import hashlib, json, random, sys
from agent import session as sessions
from agent.session import Session
from agent.store import Store

path, seed, tune_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tune = open(tune_path, encoding="utf-8").read()
rng = random.Random(seed)
store = Store(path)
owner = "crash-test-owner-key-0123456789"
songs = [store.create(owner) for _ in range(4)]
kept = {song: Session() for song in songs}
def say(*words):
    sys.stdout.write(" ".join(words) + "\n"); sys.stdout.flush()
say("ready")
turn = 0
while True:
    song = rng.choice(songs)
    session = kept[song]
    for _ in range(rng.randint(1, 8)):  # sessions grow large, so kills land inside long writes
        turn += 1
        session = sessions.add_version(session, tune.replace("K:", f"N:turn {turn}\nK:", 1), f"turn {turn}")
        session = sessions.add_message(session, "assistant", "x" * rng.randint(10, 4000))
    text = sessions.to_json(session)
    digest = hashlib.sha256(text.encode()).hexdigest()
    say("begin", song, digest)
    store.save(song, owner, session)
    say("done", song, digest)
    kept[song] = session
'''


def test_a_process_killed_mid_write_loses_nothing_it_saved(tmp_path):
    path, script = tmp_path / "songs.sqlite3", tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    owner = "crash-test-owner-key-0123456789"
    rng = random.Random(2026)
    acknowledged: dict[str, str] = {}   # song -> digest of the last save that returned
    kills, saves = 0, 0
    for round_ in range(6):
        child = subprocess.Popen([sys.executable, str(script), str(path), str(round_), str(TUNES[0])],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert child.stdout.readline().strip() == "ready"
        threading.Timer(rng.uniform(0.2, 1.5), child.send_signal, [signal.SIGKILL]).start()
        pending: dict[str, str] = {}
        for line in child.stdout:
            word, song, digest = line.split()
            if word == "begin":
                pending[song] = digest
            else:
                acknowledged[song] = digest
                pending.pop(song, None)
                saves += 1
        assert child.wait() == -signal.SIGKILL
        kills += 1
        with Store(path) as store:
            assert store.integrity_check() == "ok"
            for song, digest in acknowledged.items():
                stored = hashlib.sha256(sessions.to_json(store.load(song, owner)).encode()).hexdigest()
                # The save under way when the kill came may have committed or not; nothing else.
                assert stored in {digest, pending.get(song)}, f"round {round_}: song {song} changed"
                acknowledged[song] = stored  # a save that committed just before the kill stays
    assert kills == 6 and saves > 20, f"only {saves} saves acknowledged in {kills} rounds"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_the_browser_secret_is_made_once_private_and_kept(tmp_path):
    first = browser_secret(tmp_path / "data")
    assert browser_secret(tmp_path / "data") == first and len(first) >= 32
    assert (tmp_path / "data" / "browser-secret").stat().st_mode & 0o777 == 0o600
    assert browser_secret(tmp_path / "other") != first
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["browser-secret"]  # no temp left
