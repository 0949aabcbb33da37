"""Questions answered from the score itself (tokenizer counts and music21's analysis)."""
from __future__ import annotations

import pytest

from agent.answer import answer_question, score_facts
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


def test_a_tune_with_pickups_is_counted_as_a_musician_counts_it():
    # each part: a pickup, seven full bars and a closing bar that completes the pickup
    jig = ("X:1\nT:The Jig\nM:6/8\nL:1/8\nK:G\n"
           "F | GGF DEG | FED DEG | FDF FGA | B3 A2f |\ngfe dfe | dcB cAG | FEF DFG | A3 G2 :|\n"
           "|: F | GAG ege | fdB agf | efd efe | dff gfe |\nfdA d3 | gec d2f | fdB agf | efd d2 :|\n")
    assert answer_question(jig, "bars") == "It has 16 bars."
    assert score_facts(jig).bars == 16
