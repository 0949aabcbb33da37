"""Song form: a verse and a chorus marked as ABC parts, two verses under one repeat, and the
chat's edits of one part (new chorus words, a second verse, a catchier chorus), read back with
the lyric reader (per note, verse by verse) and checked against the ABC validator."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent import conversation
from agent import session as sessions
from agent import song_form
from agent.abc_reader import read_tune
from agent.abc_text import parse_tune, tokenize_body
from agent.conversation import AgentConfig, Composer, take_turn
from agent.lyric_fit import read_lyrics
from agent.ops import SetPartWords
from agent.session import Session
from agent.understand import understand
from agent.validate import validate_abc

DATA = Path(__file__).parent / "data" / "abc"
CONFIG = AgentConfig(seed=0, threads=1)
#: Lines a model might propose about "the road home", of 3 to 8 syllables, in rhyming sets.
ROAD_LINES = ["I walk the road back home", "Down the long road I roam",
              "The road will lead me home",
              "I walk the road all day", "The road goes on its way", "Home is not far away",
              "I walk the long road home tonight", "The stars above are shining bright",
              "The road is calling me back home", "No longer will I have to roam",
              "The road home is long today", "I will walk it all the way", "Along the road home",
              "I will not roam", "The road is long", "I sing my song",
              "The river runs beside the road", "I carry home a heavy load",
              "The lights of home are in my sight", "I will be home before the night",
              "My feet are sore my heart is light", "The road home turns by the hill",
              "The evening air is calm and still", "The road home leads me to you",
              "I follow every winding mile along the road back home",
              "And every weary step I take is one more step toward my home",
              "The valley and the river keep me company along the way"]


def _kaisari() -> str:
    """An Icelandic song from the Essen collection (2/4, 22 bars), with the bar lines its lines
    leave out written at their ends."""
    text = (DATA / "essen_kaisari.abc").read_text()
    head, body = text.split("K: G\n")
    lines = [line.rstrip() for line in body.splitlines() if line.strip()]
    lines = [line if line.endswith("|") else line + " |" for line in lines]
    lines[-1] = lines[-1][:-1] + "|]"
    return head + "K: G\n" + "\n".join(lines) + "\n"


def _fake(lines: list[str]):
    def generate(messages, settings):
        return ["\n".join(lines)] * settings.samples

    return generate


def _notes(abc: str) -> list[tuple]:
    tune = parse_tune(abc)
    return [(t.pitches, t.duration) for t in tokenize_body(tune.body, tune) if t.is_timed]


def _lyrics_by_note(abc: str) -> list[dict[int, str]]:
    """Each sung note's syllables by verse number, as the ABC reader attaches them."""
    score = read_tune(abc).score
    return [{lyric.number: lyric.text for lyric in n.lyrics}
            for n in score.recurse().notes if not n.isChord or n.lyrics]


def _letters(words: str) -> str:
    return re.sub(r"[^\w']", "", words)


def _part_notes(abc: str, name: str) -> list[dict[int, str]]:
    part = song_form.find_part(abc, name)
    before = _pitched(abc[:part.start] + "\n")  # notes written before the part
    return _lyrics_by_note(abc)[before:before + _pitched(song_form.part_tune(abc, name))]


def _pitched(abc: str) -> int:
    tune = parse_tune(abc)
    return sum(1 for t in tokenize_body(tune.body, tune) if t.is_note)


@pytest.fixture
def song() -> str:
    """The real song laid out as an 8-bar verse and a 14-bar chorus, two verses and the chorus
    words written by a stand-in model."""
    shaped = song_form.shape_song(_kaisari(), 8, 2)
    words = song_form.write_song_words(shaped, "the road home", _fake(ROAD_LINES))
    assert words.ok, words.problems
    return words.abc


def _with(abc: str) -> Session:
    return sessions.add_version(Session(), abc, "given")


def _chat(session: Session, message: str) -> conversation.Turn:
    return take_turn(session, message, Composer.unavailable(), CONFIG)


def test_shape_song_marks_verse_and_chorus_inside_one_repeat() -> None:
    tune = _kaisari()
    shaped = song_form.shape_song(tune, 8, 2)
    assert validate_abc(shaped).valid, [d.message for d in validate_abc(shaped).errors]
    assert _notes(shaped) == _notes(tune)  # not a note changed
    body = shaped.split("K: G\n")[1].splitlines()
    assert body[0] == "P:A" and body[1].startswith("|:") and body[3] == "P:B"
    assert body[-1].endswith(":|")
    parts = song_form.song_parts(shaped)
    assert [(p.label, p.name, p.bars) for p in parts] == [("A", "verse", (1, 8)),
                                                        ("B", "chorus", (9, 22))]
    assert song_form.describe_song(shaped) == ("an 8-bar verse and a 14-bar chorus, sung twice "
                                               "through (verse 1, chorus, verse 2, chorus)")


def test_two_verses_sit_under_the_verse_and_the_chorus_words_repeat(song: str) -> None:
    report = validate_abc(song)
    assert report.valid, [d.message for d in report.errors]
    verse, chorus = _part_notes(song, "verse"), _part_notes(song, "chorus")
    first, second = song_form.part_words(song, "verse")
    assert first != second  # two sets of words, each sung syllable by syllable on the verse
    assert "".join(n.get(1, "") for n in verse) == _letters(first)
    assert "".join(n.get(2, "") for n in verse) == _letters(second)
    sung_chorus = [n for n in chorus if n]
    assert sung_chorus and all(n[1] == n[2] for n in sung_chorus)  # sung again, word for word
    words = read_lyrics(song)
    verse_lines = len(song_form.note_slots(song_form.part_tune(song, "verse")))
    assert all(len(block) == 2 for block in words)
    assert all(block[0] == block[1] for block in words[verse_lines:])
    assert song.count("\nP:A\n") == 1 and song.count("\nP:B\n") == 1


def test_song_form_survives_transpose_and_tempo(song: str) -> None:
    before = read_lyrics(song)
    turn = _chat(_with(song), "transpose it up a fourth")
    assert turn.changed, turn.reply
    turn = _chat(turn.session, "make it faster")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    assert read_lyrics(after) == before
    assert [p.name for p in song_form.song_parts(after)] == ["verse", "chorus"]
    assert _part_notes(after, "verse") == _part_notes(song, "verse")
    assert parse_tune(after).key.tonic == "C"
    assert validate_abc(after).valid


@pytest.mark.parametrize("message", ["make it minor", "put it in E minor", "make it sadder",
                                     "play it on the flute", "add chords"])
def test_other_edits_keep_the_parts_and_the_words(song: str, message: str) -> None:
    turn = _chat(_with(song), message)
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    assert [p.name for p in song_form.song_parts(after)] == ["verse", "chorus"]
    assert read_lyrics(after) == read_lyrics(song) and validate_abc(after).valid


def test_change_the_chorus_words_leaves_the_verse_byte_for_byte(song: str) -> None:
    request = understand("change the chorus to: we are going home / over hill and over dale",
                         has_score=True)
    assert request.lyric_ops == (SetPartWords("chorus", "we are going home / over hill and "
                                                        "over dale"),)
    turn = _chat(_with(song), "change the chorus to: we are going home / over hill and over dale")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    verse_before = song[:song_form.find_part(song, "chorus").start]
    assert after.startswith(verse_before)
    assert song_form.part_words(after, "chorus") == ["we are going home / over hill and over dale"]
    sung = [n for n in _part_notes(after, "chorus") if n]
    assert all(n[1] == n[2] for n in sung)
    assert "".join(n[1] for n in sung).lower().startswith("wearegoinghome")
    assert turn.reply.startswith("I set your words on the chorus")
    answer = _chat(turn.session, "what are the words of the chorus?")
    assert answer.reply == "Chorus: “we are going home / over hill and over dale”."


def test_add_a_second_verse_puts_the_song_under_a_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    one = song_form.shape_song(_kaisari(), 8, 1)
    words = song_form.write_song_words(one, "the road home", _fake(ROAD_LINES))
    assert words.ok and ":|" not in words.abc
    monkeypatch.setattr(conversation, "_generate_text", lambda composer: _fake(ROAD_LINES))
    turn = _chat(_with(words.abc), "add a second verse about the road home")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    assert _notes(after) == _notes(words.abc)  # the notes kept, the repeat added
    music = [line for line in after.splitlines() if "|" in line and not line.startswith("w:")]
    assert music[0].startswith("|:") and music[-1].endswith(":|")
    first, second = song_form.part_words(after, "verse")
    assert first == song_form.part_words(words.abc, "verse")[0] and second != first
    assert "".join(n.get(2, "") for n in _part_notes(after, "verse")) == _letters(second)
    assert all(n[1] == n[2] for n in _part_notes(after, "chorus") if n)
    assert validate_abc(after).valid
    assert "second verse" in turn.reply and "notes are unchanged" in turn.reply
    third = _chat(turn.session, "add another verse")
    assert not third.changed and "already has 2 verses" in third.reply


def test_a_second_verse_on_a_plain_tune_goes_under_a_new_repeat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tune = song_form.add_repeat(_kaisari()).replace("|:", "", 1).replace(":|", "|]")
    assert tune == _kaisari()
    first = song_form.write_song_words(song_form.shape_song(tune, 8, 1), "the road home",
                                       _fake(ROAD_LINES))  # words on a part, then parts dropped
    plain = re.sub(r"^P:[AB]\n", "", first.abc, flags=re.MULTILINE)
    monkeypatch.setattr(conversation, "_generate_text", lambda composer: _fake(ROAD_LINES))
    turn = _chat(_with(plain), "add a second verse about the road home")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    assert _notes(after) == _notes(plain)
    assert all(len(block) == 2 for block in read_lyrics(after))
    assert after.split("K: G\n")[1].startswith("|:") and validate_abc(after).valid


def test_rewriting_the_chorus_keeps_the_verse_and_sets_the_chorus_words_again(song: str) -> None:
    def rewrite(abc: str, first: int, last: int) -> str:
        """A stand-in for the span rewriter: each chorus bar one step higher."""
        assert "w:" not in abc and (first, last) == (9, 22)
        head, chorus = abc.split("P:B\n")
        return head + "P:B\n" + re.sub(r"(?<![_^=])\b([A-Ga-g])", lambda m: {
            "G": "A", "A": "B", "B": "c", "c": "d", "C": "D", "D": "E", "E": "F", "F": "G",
        }.get(m.group(1), m.group(1)), chorus)

    new, said = song_form.rewrite_part(song, "chorus", rewrite)
    chorus_at = song_form.find_part(song, "chorus").start
    assert new[:chorus_at] == song[:chorus_at]
    assert _notes(new) != _notes(song)
    assert song_form.part_words(new, "chorus") == song_form.part_words(song, "chorus")
    assert said == "The chorus words are set again on the new notes."
    assert validate_abc(new).valid


def test_words_answer_names_each_verse_and_the_chorus(song: str) -> None:
    answer = song_form.words_answer(song, "what are the words?")
    assert answer.startswith("Verse 1: “I")
    assert "Verse 2: “" in answer and "Chorus: “" in answer
    assert song_form.words_answer(song, "what are the words of the verse?").count("Verse") == 2


def test_song_requests_are_understood() -> None:
    request = understand("write a song about home with two verses and a chorus", has_score=False)
    assert request.intent == "compose"
    assert request.attributes.verses == 2 and request.attributes.lyrics_theme == "home"
    assert understand("a song about home", has_score=False).attributes.verses is None
    assert understand("make the chorus catchier", has_score=True).intent == "creative_edit"


def test_a_song_request_through_the_chat_with_the_tiny_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ui_helpers import tiny_composer

    monkeypatch.setattr(conversation, "_generate_text", lambda composer: _fake(ROAD_LINES))
    turn = take_turn(Session(), "write a song with two verses and a chorus about the road home",
                     tiny_composer(AgentConfig(adapter="none", seed=3, threads=1)), CONFIG)
    assert turn.changed, turn.reply
    abc = sessions.current_abc(turn.session)
    assert [p.bars for p in song_form.song_parts(abc)] == [(1, 8), (9, 16)]
    assert "Your song has an 8-bar verse and an 8-bar chorus, sung twice through" in turn.reply
    assert all(f"{name}: “" in turn.reply for name in ("Verse 1", "Verse 2", "Chorus"))
    assert turn.reply.index("Your song has") < turn.reply.index("Verse 1: “")  # form, then words
    assert all(len(block) == 2 for block in read_lyrics(abc))
    first, second = song_form.part_words(abc, "verse")
    assert first != second and len(song_form.part_words(abc, "chorus")) == 1
    assert validate_abc(abc).valid


def test_make_the_chorus_catchier_rewrites_the_chorus_only(song: str) -> None:
    from ui_helpers import tiny_composer

    turn = take_turn(_with(song), "make the chorus catchier",
                     tiny_composer(AgentConfig(adapter="none", seed=3, threads=1)), CONFIG)
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    verse_end = song_form.find_part(song, "chorus").start
    assert after[:verse_end] == song[:verse_end]  # the verse, its words and P:B, byte for byte
    assert _notes(after) != _notes(song)
    assert turn.reply.startswith("I rewrote the chorus (bars 9–22); the other part is as it was.")
    if "are set again" in turn.reply:
        assert song_form.part_words(after, "chorus") == song_form.part_words(song, "chorus")
    else:
        assert "did not fit the new notes" in turn.reply
    assert validate_abc(after).valid


def test_new_chorus_words_on_a_theme_keep_the_verses(song: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sea = ["The sea is calling me", "I sail upon the sea", "Over the waves so free",
           "The sea will set me free", "The tide comes in tonight", "The sea is shining bright",
           "The waves roll on and on", "I sail until the dawn", "The wind is in the sails",
           "The sea has many tales", "The gulls are crying out", "The sea is all about",
           "I hear the sea calling me home tonight", "The waves are breaking in the silver light"]
    monkeypatch.setattr(conversation, "_generate_text", lambda composer: _fake(sea))
    turn = _chat(_with(song), "make the chorus about the sea")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    chorus_at = song_form.find_part(song, "chorus").start
    assert after[:chorus_at] == song[:chorus_at] and _notes(after) == _notes(song)
    (words,) = song_form.part_words(after, "chorus")
    assert "sea" in words and words != song_form.part_words(song, "chorus")[0]
    assert all(n[1] == n[2] for n in _part_notes(after, "chorus") if n)
    assert turn.reply.startswith("The chorus is now about the sea: “")


#: What the shipped model wrote for "write a song with two verses and a chorus about the sea"
#: (seed 1): a pickup, and an 8-bar verse closed by a short bar that completes it.
PICKUP_SONG = ("X:1\nT:Sea\nR:song\nM:2/4\nL:1/8\nQ:1/4=96\nK:D\n"
               "A | Fc d>e | dc/B/ A2 | AB cA | F4- |\nF4 | F>e ce | f>g f2 | eg f/a/ ||\n"
               ".a/ .g/ | ec/A/ A2 | AB cA | F4- | F>A fe/c/ |\n"
               "d2 d>e | f>g f2 | ed ce | fd B/A/ |]\n")


def test_a_verse_that_starts_with_a_pickup_ends_where_its_section_ends() -> None:
    shaped = song_form.shape_song(PICKUP_SONG, 8, 2)
    assert validate_abc(shaped).valid, [d.message for d in validate_abc(shaped).errors]
    assert _notes(shaped) == _notes(PICKUP_SONG)
    verse = song_form.part_tune(shaped, "verse")
    chorus = song_form.part_tune(shaped, "chorus").split("K:D\n")[1]
    assert verse.rstrip().endswith("eg f/a/ ||")  # the short bar that completes the pickup
    assert chorus.startswith(".a/ .g/ |")  # the chorus starts on its own pickup
    assert song_form.describe_song(shaped).startswith("an 8-bar verse and an 8-bar chorus")
