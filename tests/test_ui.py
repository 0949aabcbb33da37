"""The browser app through its API (gradio_client) and its handlers called directly.

The app runs for real on 127.0.0.1 at a free port, with a tiny random model behind the
constrained decoder (tests/ui_helpers.py): the tunes are noise, but valid noise, so a whole
conversation (compose, transpose, question, undo) runs in seconds and every answer can be
checked against what was asked.
"""
from __future__ import annotations

import copy
import doctest
import functools
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
from ui.app import (App, Models, UiConfig, apply_edit, chat, chat_api, check_edit, model_status,
                    render_files, step, version_folder)

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
# Output positions of the chat handler: chat, message box, send button, session, folder, then the
# score side: sheet, audio, five downloads, editor, check panel, versions.
CHAT, BOX, SEND, SESSION, FOLDER, SHEET, AUDIO = range(7)
EDITOR, CHECK, VERSIONS = 12, 13, 14


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


def chat_turn(app: App, message, session: Session, history=None) -> list:
    return settle(chat(app, message, history or [], session, "", 0.9, 0, True))


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
    assert set(client.view_api(return_format="dict")["named_endpoints"]) == {"/chat"}

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


def test_send_and_example_events_ignore_a_second_click_while_running(server):
    config = Client(server, verbose=False).config
    chat_events = [d for d in config["dependencies"]
                   if len(d["outputs"]) == 15 and d.get("trigger_mode") is not None]
    assert chat_events and all(d["trigger_mode"] == "once" for d in chat_events)


# ------------------------------------------------------------------------------ handlers


@pytest.mark.parametrize("message", ["", "   \n\t ", None])
def test_an_empty_message_gets_a_note_and_changes_nothing(app, message, capsys, caplog):
    caplog.set_level(logging.WARNING)
    session = sessions.add_version(Session(), AIR, "pasted")
    updates = list(chat(app, message, [{"role": "user", "content": "hi"}], session, "", 0.9, 0, True))
    assert len(updates) == 1 and all(is_skip(value) for value in updates[0])
    assert app_module.EMPTY_NOTE in capsys.readouterr().out  # outside a request gr.Info prints
    assert not caplog.records


def test_an_empty_message_through_the_api_gets_the_agents_answer(app):
    reply, abc, files, session, _ = chat_api(app, "", 0.9, 0, True, Session(), "")
    assert reply.startswith("Tell me what to write") and abc == "" and files == []


@pytest.mark.parametrize("message", ["a" * 100_000, "write a waltz " * 8000],
                         ids=["100kB", "long-prompt"])
def test_a_huge_message_is_refused_and_the_score_kept(app, message, caplog):
    caplog.set_level(logging.WARNING)
    session = sessions.add_version(Session(), AIR, "pasted")
    out = chat_turn(app, message, session)
    reply = last_reply(out[CHAT])
    assert "characters long" in reply and "unchanged" in reply
    assert sessions.current_abc(out[SESSION]) == AIR
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
    session = sessions.add_version(Session(), AIR, "pasted")
    out = chat_turn(app, message, session)
    assert last_reply(out[CHAT]).strip()
    assert "Something went wrong" not in last_reply(out[CHAT])
    assert validate_abc(sessions.current_abc(out[SESSION])).valid
    assert not [r for r in caplog.records if r.exc_info]


def test_garbage_in_the_editor_is_explained_by_bar_and_not_applied(app):
    session = sessions.add_version(Session(), AIR, "pasted")
    broken = AIR.replace("c2 A2 F2", "c2 A2 F2 G2")  # one beat too many
    check = check_edit(app, broken, session)
    # the third bar written, bar 2 on the score (the pickup is bar 0)
    assert "1 error" in check and "<b>bar 2, line 7</b>: bar 2 has 4 beats" in check
    out = settle(apply_edit(app, broken, [], session, ""))
    assert out[1] is session and "Not applied" in out[11]
    assert "version on screen is unchanged" in out[11]
    garbage = check_edit(app, "\x00💥 lorem ipsum |||: ]]] K:", session)
    assert "error" in garbage
    assert "empty" in check_edit(app, "", session)
    assert "characters long" in check_edit(app, "X" * 200_000, session)


def test_a_valid_edit_becomes_the_new_version_with_its_files(app):
    session = sessions.add_version(Session(), AIR, "pasted")
    edited = AIR.replace("T:Test Air", "T:Edited Air")
    out = settle(apply_edit(app, edited, [], session, ""))
    new_session = out[1]
    assert sessions.current_abc(new_session) == edited and len(new_session.versions) == 2
    assert "Applied your edit" in last_reply(out[0]) and "Edited Air" in out[3]
    assert '<svg' in out[3] and out[4].endswith("score.wav")
    downloads = out[5:10]
    assert all(d["interactive"] for d in downloads)
    assert [Path(d["value"]).name for d in downloads] == [
        "score.abc", "score.mid", "score.musicxml", "score.pdf", "score.wav"]
    assert out[10] == edited and "version on screen" in out[11] and "Edited Air" in out[12]


def test_each_version_keeps_its_own_files_and_undo_reuses_them(app):
    first = chat_turn(app, AIR, Session())
    session, folder = first[SESSION], first[FOLDER]
    second = chat_turn(app, "transpose it up a fourth", session)
    second_session = second[SESSION]
    assert score_summary(sessions.current_abc(second_session))["key"] == "C"
    old_files = version_folder(folder, AIR)
    assert (old_files / "score.mid").is_file() and (old_files / "score.wav").is_file()
    stamps = {p.name: p.stat().st_mtime_ns for p in old_files.iterdir()}
    back = settle(step(app, "undo", second[CHAT], second_session, folder))
    assert sessions.current_abc(back[1]) == AIR and back[3].count("<svg") >= 1
    assert {p.name: p.stat().st_mtime_ns for p in old_files.iterdir()} == stamps
    assert back[0][-2:] == [{"role": "user", "content": "undo"},
                            {"role": "assistant", "content": back[0][-1]["content"]}]
    again = settle(step(app, "redo", back[0], back[1], folder))
    assert score_summary(sessions.current_abc(again[1]))["key"] == "C"
    cleared = settle(step(app, "start_over", again[0], again[1], folder))
    assert sessions.current_abc(cleared[1]) is None and "No score yet" in cleared[3]


def test_an_undo_while_a_turn_runs_in_the_tab_waits_its_turn(app):
    first = chat_turn(app, AIR, Session())
    guard = app_module.TurnGuard()
    compose = app_module.guarded(functools.partial(chat, app), 15)(
        WALTZ, first[CHAT], first[SESSION], first[FOLDER], 0.9, 3, True, guard)
    undo = app_module.guarded(functools.partial(step, app, "undo"), 3 + 12)
    next(compose)  # the turn has started and holds the tab
    with pytest.warns(UserWarning, match="still being worked on"):  # outside a request gr.Warning warns
        busy = list(undo(first[CHAT], first[SESSION], first[FOLDER], guard))
    assert len(busy) == 1 and all(is_skip(value) for value in busy[0])
    composed = settle(compose)
    assert score_summary(sessions.current_abc(composed[SESSION]))["key"] == "Dm"
    back = settle(undo(composed[CHAT], composed[SESSION], composed[FOLDER], guard))  # free again
    assert sessions.current_abc(back[1]) == AIR
    # a tab closed in the middle of a turn frees its guard too
    other = app_module.guarded(functools.partial(chat, app), 15)(
        WALTZ, [], Session(), "", 0.9, 3, True, guard)
    next(other)
    other.close()
    assert guard.try_hold()
    assert isinstance(copy.deepcopy(guard), app_module.TurnGuard) and copy.deepcopy(guard).try_hold()


def test_a_composition_streams_its_progress(app):
    updates = list(chat(app, WALTZ, [], Session(), "", 0.9, 3, True))
    titles = [u[CHAT][-1].get("metadata", {}).get("title", "") for u in updates]
    assert any("bars written" in t for t in titles), titles
    counts = [int(t.split("— ")[1].split()[0]) for t in titles if "bars written" in t]
    assert counts == sorted(counts) and max(counts) >= 4
    streamed = [u[CHAT][-1]["content"] for u in updates if "bars written" in
                u[CHAT][-1].get("metadata", {}).get("title", "")]
    assert streamed[-1].startswith("```\nX:1") and "K:Dm" in streamed[-1]
    assert updates[0][SEND]["interactive"] is False and updates[-1][SEND]["interactive"] is True
    final = settle(iter(updates))
    assert final[EDITOR] == sessions.current_abc(final[SESSION]) and "<svg" in final[SHEET]


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
    out = chat_turn(app, AIR, Session())
    out = chat_turn(app, "transpose it up a whole step", out[SESSION], out[CHAT])
    assert score_summary(sessions.current_abc(out[SESSION]))["key"] == "A"
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
