"""Replies about words that could not be written: plain words first, the checker's detail last,
through the chat (a stand-in model proposes the lines) and on the problem strings the lyric
writer produces."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent import conversation
from agent import session as sessions
from agent.conversation import AgentConfig, Composer, take_turn
from agent.lyric_replies import plain_reason, refusal, unrhymed_note, words_not_set
from agent.lyrics import write_lyrics
from agent.session import Session
from agent.theme import ThemeLexicon

DATA = Path(__file__).parent / "data" / "abc"
#: A real song: the Icelandic "Kaisari" from the Essen collection (2/4, 22 bars).
KAISARI = (DATA / "essen_kaisari.abc").read_text()
#: Words a singer would not need: checker terms that must not open a reply.
TECHNICAL = re.compile(r"syllables|proposed|usable|line \d|\d+-\d+|notes:")


def _first_sentence(reply: str) -> str:
    return re.split(r"(?<=[.!?])\s", reply, maxsplit=1)[0]


def _fake(lines: list[str]):
    def generate(messages, settings):
        return ["\n".join(lines)] * settings.samples

    return generate


def test_a_refused_lyrics_request_speaks_plainly_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # lines far longer than any phrase of the tune: none can be used
    long_lines = ["The road goes on and on across the hills and far beyond the river's bend"] * 4
    monkeypatch.setattr(conversation, "_generate_text", lambda composer: _fake(long_lines))
    session = sessions.add_version(Session(), KAISARI, "given")
    turn = take_turn(session, "add lyrics about the road home", Composer.unavailable(),
                     AgentConfig(seed=0, threads=1))
    assert not turn.changed
    first = _first_sentence(turn.reply)
    assert first.startswith("I couldn't find words that fit"), turn.reply
    assert not TECHNICAL.search(first), first
    assert "(Details: " in turn.reply and "no usable line" in turn.reply  # kept, but last
    assert turn.reply.index("(Details: ") > turn.reply.index("Ask again")
    assert sessions.current_abc(turn.session) == KAISARI  # the score is kept


@pytest.mark.parametrize("problem, plain", [
    ("line 2: no usable line of 2-3 syllables among 42 proposed (5 syllables, the phrase has 3 notes)",
     "I couldn't find words that fit the short second phrase"),
    ("chorus: line 1: no usable line of 10-13 syllables among 8 proposed",
     "I couldn't find words that fit the long first phrase of the chorus"),
    ("verse 2: line 3: no usable line of 4-6 syllables among 9 proposed",
     "I couldn't find words that fit the third phrase of the second verse"),
    ("line 4: no line in this stanza shows the theme", "None of the lines I found were about the theme"),
    ("no new line is about the sea", "None of the lines I found were about the theme"),
    ("line 1: no usable line of words among 3 proposed", "I couldn't find words that fit the first phrase"),
])
def test_each_problem_of_the_lyric_writer_has_plain_words(problem: str, plain: str) -> None:
    assert plain_reason(problem) == plain
    assert not TECHNICAL.search(plain)
    said = refusal([problem])
    assert said.startswith(plain) and said.endswith(f"(Details: {problem}.)")


def test_the_lyric_writers_own_refusal_reads_plainly() -> None:
    tune = "X:1\nM:3/4\nL:1/4\nK:C\nC D E|F G A|\nG E C|D D C|\n"
    result = write_lyrics(tune, "the moon", lambda m, s: "|: C D E :|",
                          lexicon=ThemeLexicon("the moon", ("moon",)))
    assert not result.ok
    said = refusal(result.reasons)
    assert said.startswith("I couldn't find words that fit the first phrase, so your score")
    assert result.reasons[0] in said


def test_missed_rhymes_are_named_by_their_words() -> None:
    note = unrhymed_note(["line 4: 'day' does not rhyme with 'sea'"])
    assert note == " Not every pair rhymes: “day” and “sea” do not. Ask again for another try or change a line."
    assert unrhymed_note([]) == ""


def test_the_persons_words_that_do_not_fit_are_explained_plainly() -> None:
    said = words_not_set(["music line 3, verse 2: 9 syllables for 7 notes: 2 too many"])
    assert said.startswith("your words for the third line of the tune (verse 2) would not sit")
    assert not TECHNICAL.search(said.split(" (details")[0])
    assert said.endswith("(details: music line 3, verse 2: 9 syllables for 7 notes: 2 too many)")
    assert words_not_set(["a number (1984): write it as words, as it is sung"]).startswith("a number")
