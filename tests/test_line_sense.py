"""Lines that stand on their own: the checks of :mod:`agent.line_sense` on lines the shipped
model really proposed for song requests, and the lyric writer refusing or ranking them."""
from __future__ import annotations

import pytest

from agent.line_sense import old_forms, sense_problems, sense_score
from agent.lyrics import check_line, write_lyrics
from agent.theme import ThemeLexicon

# Lines the shipped adapter proposed for "a lullaby with words about the moon" (tunesmith eval).
FRAGMENTS = ["And eke out life so well in the land where", "From which star to sail:",
             "To whom I would give the moon", "Not quite. The sun and moon have played."]
WHOLE = ["The moon is bent, the sun is bent,", "And the moon is bright,",
         "I am in the shadow of the moon.", "The moon was full and the stars do shine,"]


@pytest.mark.parametrize("line", WHOLE)
def test_whole_lines_pass_and_score_zero(line):
    assert sense_problems(line) == ()
    assert sense_score(line) == 0.0
    assert old_forms(line) == []


@pytest.mark.parametrize("line", FRAGMENTS)
def test_fragments_are_refused_or_ranked_lower(line):
    assert sense_problems(line) or sense_score(line) < 0 or old_forms(line)


@pytest.mark.parametrize("line, word", [("The night is dark and the", "the"),
                                        ("I gave my heart to my", "my"),
                                        ("She walked along the shore and", "and")])
def test_a_line_ending_on_an_article_or_conjunction_cannot_be_sung_alone(line, word):
    assert sense_problems(line) == (f"ends on {word!r}, which needs more words after it",)
    assert not check_line(line, len(line.split()) + 2).ok


def test_old_verb_forms_are_old_fashioned_unless_asked():
    problems = check_line("The moon cometh and wouldst shine", 8).problems
    assert problems == ("old-fashioned words: cometh, wouldst",)
    assert old_forms("Beneath her teeth the breath of death") == []  # -eath, teeth: modern


def test_the_writer_prefers_the_whole_line_to_a_fragment():
    # Two answers for the same line: both name the theme, take the six notes and sing their
    # stresses alike (they score the same but for sense); only the second is one sentence.
    tune = "X:1\nM:3/4\nL:1/4\nK:C\nC D E|F G A|\n"
    lexicon = ThemeLexicon("the moon", ("moon",))
    answers = ["Of which the moon is near", "The moon is up so near"]
    result = write_lyrics(tune, "the moon", lambda m, s: answers, lexicon=lexicon)
    assert result.ok and result.lines == ("The moon is up so near",)
    fragment = write_lyrics(tune, "the moon", lambda m, s: "The moon is bright above the",
                            lexicon=lexicon)
    assert not fragment.ok and "needs more words after it" in fragment.reasons[0]
