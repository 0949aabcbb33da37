"""Songs through the chat: words set so they sing, a fiddle tune made singable before words go
on it (and undo bringing it back), and words that cannot be set refused with the reason while
the score and its earlier words stay."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent import conversation
from agent import session as sessions
from agent.conversation import AgentConfig, Composer, take_turn
from agent.lyric_fit import read_lyrics
from agent.prosody import beat_strength, stress_alignment, sung_notes
from agent.session import Session
from agent.singable import singing_problems

DATA = Path(__file__).parent / "data"
CONFIG = AgentConfig(seed=0, threads=1)
#: "Over the hills and far away" as the tune is usually sung: a 6/8 march, four bars a line.
HILLS = ("X:1\nT:Over the Hills\nM:6/8\nL:1/8\nQ:3/8=90\nK:G\n"
         "G2A B2G|d3 B2d|e2d B2G|A6|]\n")


def _with(abc: str) -> Session:
    return sessions.add_version(Session(), abc, "given")


def _chat(session: Session, message: str) -> conversation.Turn:
    return take_turn(session, message, Composer.unavailable(), CONFIG)


def test_set_words_puts_the_stresses_on_strong_beats() -> None:
    turn = _chat(_with(HILLS), 'set these words: "over the hills and far away"')
    assert turn.changed, turn.reply
    abc = sessions.current_abc(turn.session)
    notes = sung_notes(abc)
    sung = {n.lyrics[0][0].strip("-").lower(): n for n in notes if n.lyrics and n.lyrics[0]}
    # "O-" of over on the first downbeat, "far" on the downbeat of bar 3, "way" on the last
    for syllable in ("o", "far", "way"):
        assert sung[syllable].strength == 1.0, (syllable, abc)
    assert stress_alignment(abc).stressed_right == stress_alignment(abc).words == 2
    assert turn.reply.startswith("I set your words under the melody")


def _reel() -> str:
    return (DATA / "abc" / "ryans_acacia_reel.abc").read_text()


#: Lines a model might propose about "the road home", of 4 to 8 syllables, in rhyming sets.
ROAD_LINES = ["I walk the road back home", "Down the long road I roam", "The road will lead me home",
              "I walk the road all day", "The road goes on its way", "Home is not far away",
              "I walk the long road home tonight", "The stars above are shining bright",
              "The road is calling me back home", "No longer will I have to roam",
              "The road home is long today", "I will walk it all the way", "Along the road home",
              "I will not roam", "The road is long", "I sing my song"]


def _fake_lines(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    def generate(messages, settings):
        return ["\n".join(lines)] * settings.samples

    monkeypatch.setattr(conversation, "_generate_text", lambda composer: generate)


def test_add_lyrics_to_a_reel_makes_it_singable_first_and_undo_brings_the_reel_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reel = _reel()
    assert singing_problems(reel)  # sixteenth notes at a reel's speed, 22 semitones
    _fake_lines(monkeypatch, ROAD_LINES)
    turn = _chat(_with(reel), "add lyrics about the road home")
    assert turn.changed, turn.reply
    after = sessions.current_abc(turn.session)
    # the reply leads with what changed in the melody, in words, then gives the words
    first, words = turn.reply.split(" Here are words about the road home: ")
    assert first.startswith("I ") and "long enough to sing" in first
    assert words.startswith("“I walk the road")
    bare = "".join(line for line in after.splitlines(keepends=True) if not line.startswith("w:"))
    assert len(singing_problems(bare)) < len(singing_problems(reel))  # the range is fixed
    report = stress_alignment(after)
    assert report.syllables >= 20 and report.short_syllables == 0
    assert report.range_semitones <= 16
    back = _chat(turn.session, "undo")
    assert sessions.current_abc(back.session) == reel


@pytest.mark.parametrize("words, why", [
    ("Привет мой друг как ты", "Cyrillic"),
    ("in 1984 we sang", "1984"),
    (" ".join(["love"] * 2000), "send fewer words"),
])
def test_words_that_cannot_be_set_keep_the_score_and_its_words(words: str, why: str) -> None:
    first = _chat(_with(HILLS), 'set these words: "over the hills and far away"')
    before = sessions.current_abc(first.session)
    turn = _chat(first.session, f'set these words: "{words}"')
    assert not turn.changed and why in turn.reply and "unchanged" in turn.reply
    assert sessions.current_abc(turn.session) == before
    assert read_lyrics(before) == [["over the hills and far away"]]


@pytest.mark.parametrize("words, sung", [
    ("happy 🎵 days are here", "happy days are here"),  # the emoji is left out, and said so
    ("brr psst hmm", "brr psst hmm"),                    # no vowels: one syllable a word
])
def test_odd_words_are_set_and_what_was_left_out_is_said(words: str, sung: str) -> None:
    turn = _chat(_with(HILLS), f'set these words: "{words}"')
    assert turn.changed, turn.reply
    assert read_lyrics(sessions.current_abc(turn.session)) == [[sung]]
    if "🎵" in words:
        assert "left out '🎵'" in turn.reply


def test_words_much_shorter_than_the_music_are_said_so() -> None:
    turn = _chat(_with(HILLS), 'set these words: "home"')
    assert turn.changed
    assert "I can set them on fewer bars" in turn.reply


def test_strength_helper_agrees_with_the_meter() -> None:
    from fractions import Fraction

    assert beat_strength(Fraction(3, 8), "6/8") == 0.5
