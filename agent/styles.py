"""Dance and song styles: one table, and the rules that name a tune's style and tempo.

The table is the single place that says which meters a style uses, how fast it usually goes,
which words in a title or ``R:`` field point to it, and how people describe it. The agent reads
requests with it (a "jig" is 6/8 at its usual speed), the training data builder labels every
tune with it, and training requests are phrased with its words.

>>> style_for(rhythm="Reel", title="The Silver Spear", meter="4/4").name
'reel'
>>> style_for(rhythm="", title="Miss McLeod's Strathspey", meter="4/4").name
'strathspey'
>>> style_for(rhythm="", title="Untitled", meter="9/8").name
'slip jig'
>>> usual_tempo(style_for(rhythm="jig", title="", meter="6/8"), "6/8")
'3/8=116'
>>> style_for(rhythm="", title="", meter="7/8") is None
True
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Style:
    """One style of tune: its name, meters, usual speed and the words that describe it."""

    name: str
    meters: tuple[str, ...]
    #: usual speed: quarter notes a minute in simple meters, dotted quarters in compound ones
    #: (a reel's 208 is 104 half notes in cut time); usual_bpm counts it in a meter's beat
    bpm: int
    keywords: tuple[str, ...]  # words in an R: field or a title that name the style
    feel: tuple[str, ...]  # how a person might describe its character
    #: most notes shorter than the unit length (L:1/8: sixteenths) a tune of the style has,
    #: as a share of its notes: the 90th percentile over the training tunes (see
    #: SHORT_NOTES_BY_METER)
    short_notes: float = 0.15


# The first matching keyword wins, so more specific styles come first ("slip jig" before "jig").
STYLES: tuple[Style, ...] = (
    Style("slip jig", ("9/8",), 116, ("slip jig", "slipjig", "slip-jig", "hop jig"),
          ("lilting", "graceful", "flowing"), 0.18),
    Style("single jig", ("6/8", "12/8"), 120, ("single jig", "slide"), ("bouncy", "lively"), 0.12),
    Style("jig", ("6/8", "12/8"), 116, ("double jig", "jig", "gigue"),
          ("lively", "bouncy", "merry"), 0.12),
    Style("strathspey", ("4/4", "C"), 128, ("strathspey", "strath"),
          ("stately", "snappy", "proud"), 0.37),
    Style("hornpipe", ("4/4", "2/4", "C", "C|", "3/2"), 168, ("hornpipe", "clog"),
          ("swinging", "sturdy", "rollicking"), 0.93),
    Style("reel", ("4/4", "2/2", "C|", "C"), 208, ("reel",), ("fast", "lively", "driving"), 0.83),
    Style("polka", ("2/4",), 132, ("polka",), ("bouncy", "cheerful", "quick"), 0.68),
    Style("schottische", ("4/4", "2/4", "C"), 120, ("schottische", "highland fling", "barn dance"),
          ("bouncy", "easy-going"), 0.37),
    Style("mazurka", ("3/4",), 132, ("mazurka", "varsovienne"), ("lilting", "spirited"), 0.27),
    Style("waltz", ("3/4",), 120, ("waltz", "valse", "walzer", "ländler", "landler"),
          ("swaying", "graceful", "gentle"), 0.27),
    Style("march", ("2/4", "6/8", "4/4", "C", "C|", "2/2"), 112,
          ("march", "quick step", "quickstep", "marsch", "retreat", "parade"),
          ("stirring", "brisk", "proud"), 0.37),
    Style("minuet", ("3/4", "3/8"), 108, ("minuet", "menuet", "minuetto"),
          ("courtly", "elegant"), 0.27),
    Style("lullaby", ("3/4", "6/8", "4/4", "2/4"), 66,
          ("lullaby", "cradle", "wiegen", "berceuse", "sleep"),
          ("gentle", "soothing", "tender"), 0.18),
    Style("ballad", ("3/4", "4/4", "6/8", "2/4", "C"), 84,
          ("ballad", "ballade", "romanze", "erzaehl", "sage"),
          ("story-telling", "plain", "earnest"), 0.16),
    Style("hymn", ("4/4", "3/4", "3/2", "4/2", "2/2", "C", "C|"), 76,
          ("hymn", "chorale", "choral", "psalm", "geistlich", "religi"),
          ("solemn", "devout", "calm"), 0.05),
    Style("song", ("2/4", "3/4", "4/4", "6/8", "3/8", "C"), 96,
          ("lied", "song", "xiaodiao", "shange", "canzone", "chanson"),
          ("singable", "simple"), 0.41),
    Style("air", ("3/4", "4/4", "6/8", "2/4", "3/8", "C", "C|", "9/8"), 80,
          ("air", "lament", "slow", "planxty", "aria"), ("slow", "tender", "expressive"), 0.33),
)

BY_NAME = {style.name: style for style in STYLES}

# Measured on 8,000 compose examples of the training data (all written with L:1/8) by
# ``scripts/measure_short_notes.py``: the share of each tune's notes, rests and chords written
# shorter than L:, 90th percentile by ``R:`` style (the values in STYLES; single jig, schottische,
# mazurka and minuet, under 20 tunes there, take jig's, strathspey's and waltz's) and by meter
# for tunes without a style (below; meters with no short notes at all get 0.05). A 2/4 reel or a
# hornpipe may run in sixteenths from end to end; an air, a waltz or a jig rarely has a third.
SHORT_NOTES_BY_METER = {
    "2/4": 0.89, "4/4": 0.17, "C": 0.17, "6/8": 0.14, "3/4": 0.13, "2/2": 0.10, "C|": 0.10,
    "3/8": 0.48, "9/8": 0.17, "4/2": 0.05, "3/2": 0.05, "6/4": 0.05,
}

# When nothing names the style, the meter suggests one (dance music is by far the largest part).
METER_DEFAULTS = {
    "9/8": "slip jig", "6/8": "jig", "12/8": "jig", "3/4": "waltz", "2/4": "polka",
    "4/4": "reel", "C": "reel", "C|": "reel", "2/2": "reel", "3/8": "waltz",
}

def _mentions(text: str, keyword: str) -> bool:
    """Whether ``keyword`` occurs in ``text`` as a word (or at the start of a compound word)."""
    pattern = r"(?<![a-z])" + re.escape(keyword)
    if len(keyword) <= 4:
        pattern += r"(?![a-z])"
    return re.search(pattern, text.lower()) is not None


def style_for(*, rhythm: str, title: str, meter: str) -> Style | None:
    """The style named by the ``R:`` field, else by the title, else suggested by the meter.

    A named style whose meters do not include ``meter`` is still taken when it comes from the
    ``R:`` field (a hornpipe in 2/4 is still a hornpipe); from the title only when it fits.
    """
    for source, strict in ((rhythm, False), (title, True)):
        if not source:
            continue
        for style in STYLES:
            if any(_mentions(source, word) for word in style.keywords):
                if not strict or meter in style.meters:
                    return style
    default = METER_DEFAULTS.get(meter)
    return BY_NAME[default] if default else None


def usual_short_notes(style: Style | None, meter: str) -> float:
    """The most a tune of ``style`` (or, without one, in ``meter``) usually writes of its notes
    shorter than the unit length: the 90th percentile of the training tunes.

    >>> usual_short_notes(BY_NAME["air"], "3/4"), usual_short_notes(None, "2/4")
    (0.33, 0.89)
    """
    if style is not None:
        return style.short_notes
    return SHORT_NOTES_BY_METER.get(meter.strip(), 0.15)


def beat_unit(meter: str) -> Fraction:
    """The note value of one beat: a dotted quarter in compound meters, else the lower number.

    >>> beat_unit("6/8"), beat_unit("3/4"), beat_unit("C|")
    (Fraction(3, 8), Fraction(1, 4), Fraction(1, 2))
    >>> beat_unit("none")
    Traceback (most recent call last):
    ...
    ValueError: not a meter: 'none'
    """
    if meter == "C":
        return Fraction(1, 4)
    if meter == "C|":
        return Fraction(1, 2)
    match = re.fullmatch(r"(\d+)/(\d+)", meter)
    if not match:
        raise ValueError(f"not a meter: {meter!r}")
    top, bottom = int(match.group(1)), int(match.group(2))
    if top % 3 == 0 and top > 3 and bottom >= 8:
        return Fraction(3, bottom)
    return Fraction(1, bottom)


def usual_bpm(style: Style | None, meter: str) -> int:
    """A style's usual speed counted in the beat of ``meter`` (:func:`beat_unit`): the table's
    quarter notes (dotted quarters in compound meters) become half notes in cut time and
    eighths in 3/8. Without a style, 100 quarter notes a minute.

    >>> reel = BY_NAME["reel"]
    >>> usual_bpm(reel, "4/4"), usual_bpm(reel, "2/2"), usual_bpm(BY_NAME["waltz"], "3/8")
    (208, 104, 240)
    >>> usual_bpm(reel, "free")
    Traceback (most recent call last):
    ...
    ValueError: not a meter: 'free'
    """
    unit = beat_unit(meter)
    counted = Fraction(3, 8) if unit.numerator == 3 else Fraction(1, 4)
    return int(round((style.bpm if style else 100) * counted / unit))


def usual_tempo(style: Style | None, meter: str) -> str:
    """A ``Q:`` value for a tune of this style and meter when the tune gives none.

    >>> usual_tempo(BY_NAME["reel"], "C|"), usual_tempo(BY_NAME["hornpipe"], "4/4")
    ('1/2=104', '1/4=168')
    """
    unit = beat_unit(meter)
    return f"{unit.numerator}/{unit.denominator}={usual_bpm(style, meter)}"


def tempo_words(bpm_quarter: float) -> str:
    """Plain words for a speed, given in quarter notes per minute.

    >>> tempo_words(60), tempo_words(110), tempo_words(200)
    ('slow', 'moderate', 'fast')
    """
    if bpm_quarter < 80:
        return "slow"
    if bpm_quarter < 140:
        return "moderate"
    return "fast"
