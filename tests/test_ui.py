"""The browser app through its API (gradio_client) and its handlers called directly.

The app runs for real on 127.0.0.1 at a free port, with a tiny random model behind the
constrained decoder (tests/ui_helpers.py): the tunes are noise, but valid noise, so a whole
conversation (compose, transpose, question, undo) runs in seconds and every answer can be
checked against what was asked.
"""
from __future__ import annotations

import copy
import doctest
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest
from gradio_client import Client

import ui.app as app_module
from agent import session as sessions
from agent.answer import score_summary
from agent.conversation import AgentConfig, Composer
from agent.errors import ModelError
from agent.session import Session
from agent.validate import validate_abc
from ui_helpers import TEST_CONFIG, running_app, tiny_composer, tiny_loader
from agent.app_state import TabState
from agent.store import Store
from ui.app import (App, Models, UiConfig, apply_edit, ask_delete, chat, chat_api, check_edit,
                    delete_song, model_status, new_song, open_chosen, rename_song, render_files,
                    restore, step, version_file, version_folder)

WALTZ = "write a sad waltz in D minor, 8 bars"
AIR = """X:1
T:Test Air
M:3/4
L:1/8
Q:1/4=90
K:G
D2 | G2 B2 d2 | c2 A2 F2 | G4 B2 | A4 D2 |
G2 B2 d2 | e2 c2 A2 | G2 F2 A2 | G4 |]
"""
# Output positions of the score-changing handlers: chat, message box, stop button, browser key,
# songs list, versions list, then the score side: sheet, audio, five downloads, editor, check
# panel, versions.
CHAT, BOX, STOP, BROWSER, SONGS, VERSION_PICK, SHEET, AUDIO = range(8)
EDITOR, CHECK, VERSIONS = 13, 14, 15


def pitches(abc: str) -> list[int]:
    """The MIDI pitches of a tune's notes as written (chord symbols and grace notes left out)."""
    from music21 import harmony

    from agent.abc_reader import read_tune

    return [p.midi for n in read_tune(abc).score.recurse().notes
            if not isinstance(n, harmony.ChordSymbol) and not n.duration.isGrace for p in n.pitches]


def midi_notes(path: str) -> list[int]:
    return [m.note for m in mido.MidiFile(path) if m.type == "note_on" and m.velocity > 0]


def is_skip(value) -> bool:
    return isinstance(value, dict) and value == {"__type__": "update"}


def settle(outputs) -> list:
    """Run a handler's generator to its end: the last real value of each output."""
    final = None
    for values in outputs:
        final = list(values) if final is None else [old if is_skip(new) else new
                                                    for old, new in zip(final, values)]
    return final


def tab_with(session: Session = Session()) -> TabState:
    tab = TabState()
    tab.session = session
    return tab


def chat_turn(app: App, message, tab: TabState) -> list:
    return settle(chat(app, message, tab, 0.9, 0, True))


def last_title(update: list) -> str:
    """The title of the last chat bubble of an update ("" for none)."""
    chat = update[CHAT]
    return chat[-1].get("metadata", {}).get("title", "") if chat and not is_skip(chat) else ""


def last_reply(history: list) -> str:
    content = history[-1]["content"]
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


@pytest.fixture(scope="module")
def composer():
    return tiny_composer()


@pytest.fixture(scope="module")
def server(composer):
    with running_app(composer) as (url, demo):
        yield url


@pytest.fixture
def app(tmp_path, composer):
    return App(config=TEST_CONFIG, ui=UiConfig(render_root=str(tmp_path)),
               models=Models(TEST_CONFIG, composer))


def test_module_doctests():
    result = doctest.testmod(app_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_import_starts_nothing(tmp_path):
    code = ("import os, sys, tempfile, threading; import ui.app; "
            "print(threading.active_count(), os.listdir(tempfile.gettempdir()), 'torch' in sys.modules)")
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a private temp folder: nothing may appear in it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent, env=env).stdout.split("\n")[-2]
    assert out == "1 [] False"


def test_api_conversation_composes_transposes_answers_and_undoes(server, tmp_path):
    client = Client(server, verbose=False, download_files=str(tmp_path))
    assert set(client.view_api(return_format="dict")["named_endpoints"]) == {"/chat", "/chat_stream"}

    reply, first, files = client.predict(WALTZ, api_name="/chat")
    facts = score_summary(first)
    assert (facts["key"], facts["meter"], facts["bars"]) == ("Dm", "3/4", 8), reply
    assert validate_abc(first).valid and "D minor" in reply
    assert sorted(Path(f).suffix for f in files) == [".abc", ".mid", ".musicxml", ".pdf", ".svg", ".wav"]
    by_suffix = {Path(f).suffix: f for f in files}
    assert Path(by_suffix[".abc"]).read_text(encoding="utf-8") == first
    played = midi_notes(by_suffix[".mid"])
    assert played and set(pitches(first)) <= set(played)
    assert Path(by_suffix[".pdf"]).read_bytes().startswith(b"%PDF")
    assert Path(by_suffix[".wav"]).read_bytes()[:4] == b"RIFF"

    reply, second, _ = client.predict("transpose it to E minor", api_name="/chat")
    assert score_summary(second)["key"] == "Em", reply
    assert pitches(second) == [p + 2 for p in pitches(first)]

    reply, third, files = client.predict("what key is it in?", api_name="/chat")
    assert "E minor" in reply and third == second and len(files) == 6

    reply, fourth, _ = client.predict("undo", api_name="/chat")
    assert fourth == first and reply.startswith("Undone")


def test_two_clients_keep_separate_sessions(server, tmp_path):
    one = Client(server, verbose=False, download_files=str(tmp_path / "one"))
    two = Client(server, verbose=False, download_files=str(tmp_path / "two"))
    _, pasted, _ = one.predict(AIR, api_name="/chat")
    assert pasted.strip() == AIR.strip()
    reply, abc, files = two.predict("what key is it in?", api_name="/chat")
    assert abc == "" and files == [] and "no tune" in reply.lower()
    two.predict("write a jig in A dorian, 8 bars", api_name="/chat")
    reply, abc, _ = one.predict("what key is it in?", api_name="/chat")
    assert "G major" in reply and abc.strip() == AIR.strip()


def test_a_long_composition_does_not_block_another_tab(server, tmp_path):
    composing = Client(server, verbose=False, download_files=str(tmp_path / "a"))
    other = Client(server, verbose=False, download_files=str(tmp_path / "b"))
    job = composing.submit("write a reel in D, 32 bars", api_name="/chat")  # then six renders
    time.sleep(1.0)
    started = time.perf_counter()
    answers = [other.predict(message, api_name="/chat")[0] for message in ("hello", "undo", "redo")]
    quick = time.perf_counter() - started
    assert not job.done(), f"the other tab took {quick:.1f} s"
    assert "nothing to undo" in answers[1] and "nothing to redo" in answers[2]
    reply, abc, files = job.result(timeout=120)
    assert validate_abc(abc).valid and len(files) == 6, reply


def test_every_send_click_and_enter_is_an_event_of_its_own(server):
    config = Client(server, verbose=False).config
    turn_events = [d for d in config["dependencies"] if len(d["outputs"]) == app_module.len_turn_outputs()
                   and all(event != "load" for _target, event in d["targets"])]
    assert len(turn_events) >= 7  # send/enter, example, undo, redo, start over, apply, open, new
    assert all(d["trigger_mode"] == "multiple" for d in turn_events)
    sends = [d for d in turn_events if len(d["targets"]) == 2]  # send.click and message.submit as one
    assert len(sends) == 1


def test_two_api_calls_from_one_client_mid_turn_are_answered_in_order(server, tmp_path):
    client = Client(server, verbose=False, download_files=str(tmp_path))
    first = client.submit(WALTZ, api_name="/chat")
    time.sleep(0.3)
    second = client.submit("transpose it to E minor", api_name="/chat")
    time.sleep(0.3)  # sent after it (two requests sent in the same instant may arrive either way)
    third = client.submit("what key is it in?", api_name="/chat")
    (reply1, abc1, _), (reply2, abc2, _), (reply3, abc3, _) = (
        job.result(timeout=120) for job in (first, second, third))
    assert score_summary(abc1)["key"] == "Dm", reply1
    assert score_summary(abc2)["key"] == "Em", reply2  # on the score the first one wrote
    assert pitches(abc2) == [p + 2 for p in pitches(abc1)]
    assert "E minor" in reply3 and abc3 == abc2


def test_the_streaming_endpoint_says_something_at_once_then_progress_then_the_tune(server):
    client = Client(server, verbose=False, download_files=False)
    job = client.submit("write a jig in G, 8 bars", api_name="/chat_stream")
    started, first_seen = time.perf_counter(), None
    while not job.done():
        if first_seen is None and job.outputs():
            first_seen = time.perf_counter() - started
        time.sleep(0.02)
    outputs = job.outputs()
    assert first_seen is not None and first_seen < 5.0
    assert any("bars written" in line for line, _abc, _files in outputs[:-1])
    reply, abc, files = outputs[-1]
    assert score_summary(abc)["key"] == "G" and len(files) == 6 and "G major" in reply


# ------------------------------------------------------------------------------ handlers


@pytest.mark.parametrize("message", ["", "   \n\t ", None])
def test_an_empty_message_gets_a_note_and_changes_nothing(app, message, capsys, caplog):
    caplog.set_level(logging.WARNING)
    session = sessions.add_version(Session(), AIR, "pasted")
    tab = tab_with(session)
    updates = list(chat(app, message, tab, 0.9, 0, True))
    assert len(updates) == 1 and all(is_skip(value) for value in updates[0])
    assert app_module.EMPTY_NOTE in capsys.readouterr().out  # outside a request gr.Info prints
    assert not caplog.records


def test_an_empty_message_through_the_api_gets_the_agents_answer(app):
    reply, abc, files = chat_api(app, "", 0.9, 0, True, TabState())
    assert reply.startswith("Tell me what to write") and abc == "" and files == []


@pytest.mark.parametrize("message", ["a" * 100_000, "write a waltz " * 8000],
                         ids=["100kB", "long-prompt"])
def test_a_huge_message_is_refused_and_the_score_kept(app, message, caplog):
    caplog.set_level(logging.WARNING)
    tab = tab_with(sessions.add_version(Session(), AIR, "pasted"))
    out = chat_turn(app, message, tab)
    reply = last_reply(out[CHAT])
    assert "characters long" in reply and "unchanged" in reply
    assert sessions.current_abc(tab.session) == AIR
    shown = out[CHAT][0]["content"]
    assert len(shown) < 2_000 and "characters in all" in shown
    assert not caplog.records


@pytest.mark.parametrize("message", [
    "\u202e\u0000 \ud800 ﷽ \U0001d11e zwj\u200d\u200d ???",
    "what key is it in? 🎻\u202e\u0000\ud800",
    "Ω≈ç√∫˜µ≤≥÷ 田中さんにあげて下さい",
    "|||::: K: X: [[[ ((( w: - - -",
], ids=["control-and-surrogate", "question-with-odd-characters", "symbols-and-cjk", "abc-like-garbage"])
def test_odd_unicode_and_garbage_get_an_answer(app, message, caplog):
    caplog.set_level(logging.WARNING)
    tab = tab_with(sessions.add_version(Session(), AIR, "pasted"))
    out = chat_turn(app, message, tab)
    assert last_reply(out[CHAT]).strip()
    assert "Something went wrong" not in last_reply(out[CHAT])
    assert validate_abc(sessions.current_abc(tab.session)).valid
    assert not [r for r in caplog.records if r.exc_info]


def test_garbage_in_the_editor_is_explained_by_bar_and_not_applied(app):
    session = sessions.add_version(Session(), AIR, "pasted")
    tab = tab_with(session)
    broken = AIR.replace("c2 A2 F2", "c2 A2 F2 G2")  # one beat too many
    check = check_edit(app, broken, tab)
    # the third bar written, bar 2 on the score (the pickup is bar 0)
    assert "1 error" in check and "<b>bar 2, line 7</b>: bar 2 has 4 beats" in check
    out = settle(apply_edit(app, broken, tab))
    assert tab.session is session and "Not applied" in out[CHECK]
    assert "version on screen is unchanged" in out[CHECK]
    garbage = check_edit(app, "\x00💥 lorem ipsum |||: ]]] K:", tab)
    assert "error" in garbage
    assert "empty" in check_edit(app, "", tab)
    assert "characters long" in check_edit(app, "X" * 200_000, tab)


def test_a_valid_edit_becomes_the_new_version_with_its_files(app):
    tab = tab_with(sessions.add_version(Session(), AIR, "pasted"))
    edited = AIR.replace("T:Test Air", "T:Edited Air")
    out = settle(apply_edit(app, edited, tab))
    new_session = tab.session
    assert sessions.current_abc(new_session) == edited and len(new_session.versions) == 2
    assert "Applied your edit" in last_reply(out[CHAT]) and "Edited Air" in out[SHEET]
    assert '<svg' in out[SHEET] and out[AUDIO].endswith("score.wav")
    downloads = out[AUDIO + 1:AUDIO + 6]
    assert all(d["interactive"] for d in downloads)
    assert [Path(d["value"]).name for d in downloads] == [
        "score.abc", "score.mid", "score.musicxml", "score.pdf", "score.wav"]
    assert out[EDITOR] == edited and "version on screen" in out[CHECK] and "Edited Air" in out[VERSIONS]


def test_each_version_keeps_its_own_files_and_undo_reuses_them(app):
    tab = TabState()
    chat_turn(app, AIR, tab)
    folder = tab.folder
    chat_turn(app, "transpose it up a fourth", tab)
    assert score_summary(sessions.current_abc(tab.session))["key"] == "C"
    old_files = version_folder(folder, AIR)
    assert (old_files / "score.mid").is_file() and (old_files / "score.wav").is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in old_files.iterdir()}
    back = settle(step(app, "undo", tab))
    assert sessions.current_abc(tab.session) == AIR and back[SHEET].count("<svg") >= 1
    assert {p.name: p.stat().st_mtime_ns for p in old_files.iterdir()} == stamps
    assert back[CHAT][-2:] == [{"role": "user", "content": "undo"},
                               {"role": "assistant", "content": back[CHAT][-1]["content"]}]
    settle(step(app, "redo", tab))
    assert score_summary(sessions.current_abc(tab.session))["key"] == "C"
    cleared = settle(step(app, "start_over", tab))
    assert sessions.current_abc(tab.session) is None and "No score yet" in cleared[SHEET]


def test_messages_and_an_undo_sent_mid_turn_show_queued_and_are_answered_in_order(app):
    tab = TabState()
    chat_turn(app, AIR, tab)
    compose = chat(app, WALTZ, tab, 0.9, 3, True)
    accepted = next(compose)
    assert accepted[BOX] == "" and accepted[STOP]["interactive"] is True
    next(compose)  # the turn has started and holds the tab
    undo = step(app, "undo", tab)
    transpose = chat(app, "transpose it up a whole step", tab, 0.9, 3, True)
    shown = next(undo)[CHAT]
    shown = next(transpose)[CHAT]  # both show at once, queued, in the order sent
    assert [m["content"] for m in shown[-4:]] == [
        "undo", "⏳ After this tune: undo", "transpose it up a whole step",
        "⏳ Then: transpose it up a whole step"]
    results = {}
    threads = [threading.Thread(target=lambda name=name, gen=gen: results.__setitem__(name, settle(gen)))
               for name, gen in (("undo", undo), ("transpose", transpose))]
    for thread in threads:
        thread.start()
    composed = settle(compose)
    for thread in threads:
        thread.join(60)
    # the waltz, then the undo back to the air, then the air transposed: each on the one before
    users = [m["content"] for m in tab.history if m["role"] == "user"]
    assert users == [AIR, WALTZ, "undo", "transpose it up a whole step"]
    replies = [m["content"] for m in tab.history if m["role"] == "assistant" and not m.get("metadata")]
    assert "D minor" in replies[1] and replies[2].startswith("Undone") and "A major" in replies[3]
    assert pitches(sessions.current_abc(tab.session)) == [p + 2 for p in pitches(AIR)]
    assert composed[STOP]["interactive"] is True  # when the waltz was done, more were waiting
    assert results["transpose"][STOP]["interactive"] is False and not tab.busy()


def test_stop_ends_a_composition_and_keeps_the_score(app):
    tab = tab_with(sessions.add_version(Session(), AIR, "pasted"))
    compose = chat(app, "write a reel in D, 32 bars", tab, 0.9, 3, True)
    for update in compose:
        if "bars written" in last_title(update):
            break
    assert tab.request_stop()
    settle(compose)
    assert sessions.current_abc(tab.session) == AIR and len(tab.session.versions) == 1
    assert tab.history[-1]["content"].startswith("Stopped") and not tab.busy()
    chat_turn(app, "transpose it up a whole step", tab)  # the tab works on after a stop
    assert score_summary(sessions.current_abc(tab.session))["key"] == "A"


def test_a_closed_page_frees_its_tab_and_a_copy_is_a_new_tab(app):
    tab = TabState()
    other = chat(app, WALTZ, tab, 0.9, 3, True)
    next(other)
    next(other)
    other.close()
    assert not tab.busy()
    assert isinstance(copy.deepcopy(tab), TabState) and copy.deepcopy(tab) is not tab


def test_every_turn_is_saved_and_a_reload_brings_it_back(tmp_path, composer):
    store = Store(tmp_path / "songs.sqlite3")
    app = App(config=TEST_CONFIG, ui=UiConfig(render_root=str(tmp_path / "r")),
              models=Models(TEST_CONFIG, composer), store=store)
    tab = TabState()
    first = settle(restore(app, None, tab))  # a browser seen for the first time gets a key
    owner = first[BROWSER]["owner"]
    assert len(owner) >= 16 and first[BROWSER]["song"] == ""
    chat_turn(app, AIR, tab)
    out = chat_turn(app, "transpose it up a whole step", tab)
    kept = out[BROWSER]
    assert kept["owner"] == owner and kept["song"]
    reloaded = TabState()
    back = settle(restore(app, kept, reloaded))
    assert reloaded.session == tab.session and sessions.current_abc(reloaded.session) == back[EDITOR]
    assert [m["content"] for m in back[CHAT]] == [m["content"] for m in tab.session.messages]
    assert "<svg" in back[SHEET] and len(back[VERSION_PICK]["choices"]) == 2
    stranger = settle(restore(app, {"owner": "x" * 20, "song": kept["song"]}, TabState()))
    assert stranger[CHAT] == [] and stranger[BROWSER]["song"] == ""  # not theirs: nothing shown
    store.close()


def test_a_store_that_cannot_save_says_so_and_the_turn_stands(tmp_path, composer):
    store = Store(tmp_path / "songs.sqlite3")
    app = App(config=TEST_CONFIG, ui=UiConfig(render_root=str(tmp_path / "r")),
              models=Models(TEST_CONFIG, composer), store=store)
    tab = TabState()
    settle(restore(app, None, tab))
    store.close()  # every later save fails
    out = chat_turn(app, AIR, tab)
    assert "(Not saved:" in last_reply(out[CHAT]) and sessions.current_abc(tab.session) == AIR


def test_the_songs_panel_opens_renames_deletes_and_downloads(tmp_path, composer):
    store = Store(tmp_path / "songs.sqlite3")
    app = App(config=TEST_CONFIG, ui=UiConfig(render_root=str(tmp_path / "r")),
              models=Models(TEST_CONFIG, composer), store=store)
    tab = TabState()
    settle(restore(app, None, tab))
    chat_turn(app, AIR, tab)
    air = tab.song
    settle(new_song(app, tab))
    assert tab.session == Session() and tab.song == ""
    chat_turn(app, "write a jig in A dorian, 8 bars", tab)
    assert tab.song and tab.song != air and len(store.list(tab.owner)) == 2
    opened = settle(open_chosen(app, air, tab))
    assert tab.song == air and opened[EDITOR].strip() == AIR.strip()
    songs, name = rename_song(app, air, "My Air", tab)
    assert name == "" and ("My Air" in songs["choices"][0][0] or "My Air" in songs["choices"][1][0])
    download = version_file(app, 0, tab)
    assert Path(download["value"]).read_text(encoding="utf-8").strip() == AIR.strip()
    row, text = ask_delete(app, air, tab)
    assert row["visible"] and "My Air" in text
    row, songs, kept = delete_song(app, air, tab)
    assert [label for label, _ in songs["choices"]] and len(store.list(tab.owner)) == 1
    assert kept["song"] == "" and tab.song == "" and tab.session.versions  # the score stays on screen
    store.close()


def test_a_composition_streams_its_progress(app):
    tab = TabState()
    updates = list(chat(app, WALTZ, tab, 0.9, 3, True))
    titles = [last_title(u) for u in updates]
    assert any("bars written" in t for t in titles), titles
    counts = [int(t.split("— ")[1].split()[0]) for t in titles if "bars written" in t]
    assert counts == sorted(counts) and max(counts) >= 4
    streamed = [u[CHAT][-1]["content"] for u in updates if "bars written" in last_title(u)]
    assert streamed[-1].startswith("```\nX:1") and "K:Dm" in streamed[-1]
    assert updates[0][STOP]["interactive"] is True and updates[-1][STOP]["interactive"] is False
    final = settle(iter(updates))
    assert final[EDITOR] == sessions.current_abc(tab.session) and "<svg" in final[SHEET]


def test_the_model_loads_in_the_background_while_edits_work(tmp_path):
    release = threading.Event()
    load_tiny = tiny_loader()

    def slow_loader(model_config):
        release.wait(60)
        return load_tiny(model_config)

    composer = Composer(TEST_CONFIG, loader=slow_loader)
    models = Models(TEST_CONFIG, composer)
    app = App(config=TEST_CONFIG, ui=UiConfig(render_root=str(tmp_path)), models=models)
    line, timer = model_status(app)  # the page's first look starts the loading
    assert "Loading the model" in line and "work meanwhile" in line and timer.active
    tab = TabState()
    chat_turn(app, AIR, tab)
    chat_turn(app, "transpose it up a whole step", tab)
    assert score_summary(sessions.current_abc(tab.session))["key"] == "A"
    assert models.status()[0] == "loading"
    release.set()
    assert models.wait(60)
    line, timer = model_status(app)
    assert "Model ready" in line and not timer.active


def test_a_model_that_cannot_load_is_said_on_the_page(tmp_path):
    config = AgentConfig(adapter="/nonexistent/adapter")

    def failing_loader(model_config):
        raise ModelError(f"no LoRA adapter at {model_config.adapter} (adapter_config.json missing)")

    models = Models(config, Composer(config, loader=failing_loader))
    app = App(config=config, ui=UiConfig(render_root=str(tmp_path)), models=models)
    model_status(app)
    assert models.wait(30)
    line, timer = model_status(app)
    assert "could not be loaded" in line and "/nonexistent/adapter" in line and not timer.active
    assert "Untick" in line


def test_adapter_off_is_a_second_composer_made_on_first_use(composer):
    with_adapter = Models(AgentConfig(adapter="models/some-adapter"), composer)
    assert with_adapter.has_adapter and with_adapter.composer(True) is composer
    bare = with_adapter.composer(False)
    assert bare is not composer and bare.config.adapter == "none"
    assert with_adapter.composer(False) is bare
    without = Models(TEST_CONFIG, composer)
    assert not without.has_adapter and without.composer(False) is composer


def test_render_failures_are_reported_not_raised(tmp_path):
    rendered = render_files("X:1\nK:C\n", str(tmp_path), ("abc", "svg"))
    assert rendered.problems and "svg" not in rendered.paths
