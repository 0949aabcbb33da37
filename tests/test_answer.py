"""Questions answered from the score itself (tokenizer counts and music21's analysis)."""
from __future__ import annotations

import pytest

from agent.answer import answer_question
from agent.understand import understand

REEL = """X:1
T:Test Reel
M:4/4
L:1/8
Q:1/4=110
K:D
|:d2 fd A2 FA|d2 f2 e2 d2|c2 e2 A2 ce|d8:|
|:a2 fd g2 ec|d2 f2 e4|a2 fd g2 ec|d8:|
"""


@pytest.mark.parametrize("question,expected", [
    ("how many bars?", "It has 8 bars."),
    ("what key is it in?", "It is in D major (key signature K:D)"),
    ("what's the range?", "It goes from F♯4 up to A5, a span of 15 semitones."),
    ("what's the form?", "8 written bars"),
])
def test_questions_are_answered_from_the_score(question, expected):
    request = understand(question, has_score=True)
    assert request.intent == "question"
    assert expected in answer_question(REEL, request.question.kind)


def test_an_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown question kind"):
        answer_question(REEL, "weather")
