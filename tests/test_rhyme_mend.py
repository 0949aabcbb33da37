"""Mending missed rhymes: CMUdict candidates that rhyme and sing like the word they replace, the
model's judgement of which reads best, and the lyric writer using it only where no proposed line
rhymes."""
from __future__ import annotations

import math

import pytest

from agent.lyrics import LyricsConfig, write_lyrics
from agent.rhyme_mend import MendConfig, mend_line, rhyme_candidates
from agent.syllables import last_word, rhymes, split_word
from agent.theme import ThemeLexicon

MOON = ThemeLexicon("the moon", ("moon",), ("sky", "night", "silver", "stars"))
TUNE = ("X:1\nT:Night Song\nM:4/4\nL:1/4\nQ:1/4=80\nK:G\n"
        "G A B c|d B G2|\nc B A G|F2 D2|\nG A B c|d B G2|\nc A F D|G2 G2|]\n")
# Lines 1 and 2 should rhyme (AABB) but "high" and "night" do not.
MISSED = ["The moon is rising high", "A lantern in the night",
          "She sings the night to sleep", "Above the valley deep"]


def everything(word: str) -> bool:
    return True


@pytest.mark.parametrize("replaced, partner", [("sky", "night"), ("away", "heart"),
                                                ("river", "forever"), ("home", "alone")])
def test_candidates_rhyme_with_the_partner_and_sing_like_the_word_they_replace(replaced, partner):
    found = rhyme_candidates(replaced, partner, everything)
    assert found, "CMUdict has rhymes for each of these"
    for word in found:
        assert rhymes(word, partner), word
        assert split_word(word).sung_stress == split_word(replaced).sung_stress, word


def test_no_candidate_is_the_partner_or_an_identical_rhyme():
    found = rhyme_candidates("sky", "night", everything)
    assert {"light", "bright", "sight"} <= set(found)
    assert "night" not in found and "knight" not in found  # the same sound before the rhyme
    assert "tonight" not in rhyme_candidates("above", "night", everything)


class Scripted:
    """A stand-in model: the same answer to every request, and endings scored from a table
    (words not in it score ``rest``)."""

    def __init__(self, lines: list[str], table: dict[str, float], rest: float = -12.0):
        self.lines, self.table, self.rest = lines, table, rest
        self.requests = 0
        self.scored: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, messages, settings):
        self.requests += 1
        return "\n".join(self.lines)

    def knows_word(self, word: str) -> bool:
        return word in self.table or word in {"sky", "light", "bright", "nigh", "fly", "sigh"}

    def score_endings(self, messages, prefix, own, words, keep):
        self.scored.append((prefix, own, tuple(words)))
        return self.table.get(own, self.rest), [self.table.get(w, self.rest) for w in words]


def test_a_missed_rhyme_is_mended_with_the_word_the_model_finds_natural():
    model = Scripted(MISSED, {"high": -1.0, "night": -1.5, "sky": -2.0, "bright": -6.0})
    result = write_lyrics(TUNE, "the moon", model, lexicon=MOON)
    assert result.ok, result.reasons
    # the writer pairs "deep" with "sleep" itself, then mends the other pair
    assert sorted(result.lines) == sorted(MISSED[:1] + ["A lantern in the sky"] + MISSED[2:])
    assert result.report.unrhymed == () and result.report.rhyme_rate == 1.0
    assert model.requests == 1  # mended at once: nothing else was wrong
    # the model judged the ending in its context: the lines before, then the line up to its end
    assert any(prefix.endswith("The moon is rising high\nA lantern in the") and own == "night"
               and words == ("fly", "nigh", "sigh", "sky") for prefix, own, words in model.scored)


def test_a_swap_that_reads_badly_is_not_made_and_the_miss_is_reported():
    model = Scripted(MISSED, {"high": -1.0, "night": -1.5}, rest=-1.0 - 2 * MendConfig().max_surprise)
    result = write_lyrics(TUNE, "the moon", model, lexicon=MOON)
    assert result.ok
    assert sorted(result.lines) == sorted(MISSED)
    assert result.report.unrhymed and "does not rhyme" in result.report.unrhymed[0]
    assert model.requests == LyricsConfig().requests_per_stanza


def test_without_a_scorer_the_writer_asks_again_and_reports_the_miss():
    def plain(messages, settings):
        return "\n".join(MISSED)

    result = write_lyrics(TUNE, "the moon", plain, lexicon=MOON)
    assert result.ok and sorted(result.lines) == sorted(MISSED)
    assert result.report.rhyme_rate == 0.5 and len(result.report.unrhymed) == 1


def test_mend_line_keeps_the_rest_of_the_line_and_orders_by_surprise():
    model = Scripted([], {"sky": -2.0, "light": -3.0, "bright": -4.5, "sight": -20.0})
    mends = mend_line("The moon is shining in the sky.", "all through the night", model, [], "")
    assert [m.text for m in mends] == ["The moon is shining in the light.",
                                       "The moon is shining in the bright."]
    assert [m.surprise for m in mends] == [1.0, 2.5]
    assert all(m.replaced == "sky" for m in mends)


@pytest.mark.slow
def test_the_shipped_model_mends_sky_to_light_after_night():
    from agent.conversation import DEFAULT_ADAPTER
    from agent.lyrics import ModelText
    from agent.model import ModelConfig, load_model
    from agent.prompts import lyrics_messages

    if not (DEFAULT_ADAPTER / "adapter_config.json").is_file():
        pytest.skip("no adapter in models/")
    model = ModelText(load_model(ModelConfig(adapter=str(DEFAULT_ADAPTER), threads=1)))
    partner = "I hold you close all through the night"
    mends = mend_line("The moon is shining in the sky", partner, model,
                      lyrics_messages("the moon", [9, 7], "AA"), partner + "\n")
    assert mends and last_word(mends[0].text) == "light"
    assert all(math.isfinite(m.surprise) and m.surprise <= MendConfig().max_surprise for m in mends)


def test_a_rewritten_line_that_misses_its_rhyme_is_mended_too():
    from agent.lyrics import rewrite_lines

    good = ["The moon is rising high", "A lantern in the sky",
            "She sings the night to sleep", "Above the valley deep"]
    song = write_lyrics(TUNE, "the moon", Scripted(good, {}), lexicon=MOON).abc
    sea = ThemeLexicon("the sea", ("sea",), ("waves", "shore", "tide"))
    # the new last line must rhyme with "sleep"; the model's line ends on "home"
    model = Scripted(["The sea will take us home"], {"home": -1.0, "deep": -1.5, "keep": -6.0})
    result = rewrite_lines(song, [-1], "the sea", model, lexicon=sea,
                           config=LyricsConfig(requests_per_stanza=2))
    assert result.ok and result.texts == ("The sea will take us deep",)
    assert result.unrhymed == () and result.requests == 1
    plain = rewrite_lines(song, [-1], "the sea", lambda m, s: "The sea will take us home",
                          lexicon=sea, config=LyricsConfig(requests_per_stanza=2))
    assert plain.texts == ("The sea will take us home",) and plain.unrhymed
