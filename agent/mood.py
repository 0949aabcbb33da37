"""Moods you can hear: one table of moods and the musical cues that carry them.

Listeners read a tune's emotion from a few cues, and agree on them across cultures: sad music is
slow, low, minor, soft, legato and sparse; happy music fast, high, major, louder and detached;
tender music slow, soft and legato; angry music fast, loud, with sharp attacks (Juslin &
Laukka 2003, *Psychological Bulletin* 129(5), table 11; Gabrielsson & Lindström in the *Handbook
of Music and Emotion*). :data:`MOODS` gives each mood the direction and size of every cue:

* **tempo**: a factor on the style's usual speed (:mod:`agent.styles`), kept within the style;
* **mode**: the mode to use when the person named none;
* **register**: semitones to move the melody's centre (an edit moves whole octaves only);
* **density**: a factor on the style's usual share of notes shorter than ``L:`` (running notes);
* **articulation**: legato (no staccato dots) or staccato;
* **dynamics**: steps from *mf* (the ABC decorations ``!pp!`` … ``!ff!``, which
  :mod:`agent.abc_reader` turns into music21 dynamics, so they reach MIDI velocity and MusicXML);
* **instrument**: a General MIDI instrument for a tune where none was asked.

The same table serves four jobs: reading a message (:func:`find_mood`), planning a new tune
(:func:`compose_plan`), changing a tune exactly (:func:`mood_edit`: tempo, dynamics, octave,
articulation and, when allowed, mode; the rhythm is left to a rewrite and reported) and
answering "why does it sound sad?" (:func:`explain_mood`, from :func:`measure_cues`).

>>> request = find_mood("make it a bit sadder")
>>> request.mood, request.intensity, request.comparative
('sad', 0.5, True)
>>> plan = compose_plan("sad", "waltz", "3/4")
>>> plan.bpm, plan.mode, plan.dynamics, plan.articulation
(88, 'minor', 'p', 'legato')
>>> find_mood("make it more jazzy").reply
'I do not know the mood "jazzy" yet. Moods I can hear and make: sad, melancholy, mournful, happy, joyful, cheerful, calm, peaceful, dreamy, angry, fierce, tender, triumphant, mysterious, playful, nostalgic, dramatic.'
>>> compose_plan("funky", "waltz", "3/4")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agent.errors.InputError: unknown mood 'funky': use one of sad, melancholy, ...
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field, replace
from fractions import Fraction

from agent.abc_text import Kind, Token, TuneText, parse_tune, tokenize_body
from agent.errors import AbcError, InputError
from agent.styles import BY_NAME as STYLES
from agent.styles import Style, beat_unit, style_for, usual_bpm, usual_short_notes

# --------------------------------------------------------------------------------------------
# Constants

#: Dynamics marks from softest to loudest; "mf" is where a tune without a mark stands.
DYNAMICS = ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff")
NEUTRAL_DYNAMICS = "mf"
#: MIDI velocity of a note under each mark, as agent.render.to_midi writes it (music21 10.5,
#: measured by rendering one bar under each mark); a tune with no mark plays at 90. "f" and
#: louder saturate at the top of the scale, so louder than f is heard on the score only.
MIDI_VELOCITY = {"ppp": 27, "pp": 45, "p": 63, "mp": 81, "mf": 99, "f": 126, "ff": 127,
                 "fff": 127, None: 90}
#: How people say a dynamic level in words.
DYNAMICS_WORDS = {"ppp": "very, very soft", "pp": "very soft", "p": "soft", "mp": "fairly soft",
                  "mf": "moderately loud", "f": "loud", "ff": "very loud", "fff": "very, very loud"}

#: Running notes are those shorter than an eighth, as :mod:`agent.styles` counts them (its
#: shares were measured on tunes written with ``L:1/8``, the unit the composer writes in).
SHORT_NOTE = Fraction(1, 8)

MINOR_FAMILY = frozenset({"minor", "aeolian", "dorian", "phrygian", "locrian"})

#: Words that scale a mood: "very sad" (1.5), "a bit happier" (0.5).
INTENSIFIERS = {
    "very": 1.5, "really": 1.5, "extremely": 2.0, "incredibly": 2.0, "so": 1.5, "super": 1.5,
    "deeply": 1.5, "truly": 1.5, "utterly": 2.0, "terribly": 1.5, "profoundly": 1.5,
    "much": 1.5, "a lot": 1.5, "lots": 1.5, "far": 1.5, "way": 1.5, "even": 1.0,
    "quite": 1.2, "rather": 1.2, "pretty": 1.2, "fairly": 1.0,
    "a bit": 0.5, "a little": 0.5, "a little bit": 0.5, "a tiny bit": 0.3, "bit": 0.5,
    "slightly": 0.5, "somewhat": 0.5, "a touch": 0.5, "a tad": 0.5, "mildly": 0.5,
    "kind of": 0.5, "kinda": 0.5, "gently": 0.5,
}
# the largest scale intensifiers may reach together ("very, very sad")
MAX_INTENSITY = 2.5

# Words that come where a mood could ("make it X") but ask for something else: tempo,
# loudness, pitch, length and the like are exact edits of their own, not moods.
NOT_MOODS = frozenset("""
    a an the it this that in into for on at to of with by like as and or but so please more less
    faster slower quicker quick fast slow louder softer quieter loud soft quiet higher lower
    high low
    longer shorter long short simpler harder easier better worse different again same sound feel
    major minor dorian mixolydian lydian phrygian aeolian ionian locrian key tempo speed bpm
    swing swung chords chord lyrics words verse repeat repeats bars bar notes note one two three
    four five six seven eight up down sharp flat transposed end ending beginning start longer
    busier sparser smoother louder legato staccato part half section melody tune song
""".split())

# --------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Mood:
    """One mood and its cues at full strength (intensity 1).

    ``tempo`` multiplies the style's usual speed; ``register`` moves the melody's centre in
    semitones; ``density`` multiplies the share of running notes (shorter than ``L:``) the
    style usually allows; ``dynamics`` counts steps from *mf* (-2 is *p*); ``instrument`` is a
    name from :data:`agent.understand.INSTRUMENTS` and ``program`` its General MIDI number.
    ``cues`` says the profile in a listener's words.
    """

    name: str
    words: tuple[str, ...]
    comparatives: tuple[str, ...]
    tempo: float
    mode: str | None
    register: int
    density: float
    articulation: str | None
    dynamics: int
    instrument: str
    program: int
    cues: str


# One row per mood. Directions follow Juslin & Laukka's table of cues (sadness, happiness,
# anger, fear, tenderness) and Gabrielsson & Lindström's review (solemnity, serenity, triumph);
# sizes are chosen so a sad waltz lands well under a waltz's usual 120 (at 0.75: 88) and an
# edit moves each cue by a step a listener hears (a metronome mark or more, one dynamics level).
MOODS: tuple[Mood, ...] = (
    Mood("sad", ("sad", "unhappy", "heartbroken", "forlorn", "gloomy", "sorrowful", "blue",
                 "downcast", "despairing", "miserable"),
         ("sadder", "gloomier", "unhappier"),
         0.75, "minor", -6, 0.5, "legato", -2, "cello", 42,
         "slow, low, minor, soft, smooth, few running notes"),
    # the clarinet's dark low register reaches D3, where a rather low melody sits (an oboe,
    # tried first, stops at B-flat 3 and kept melancholy tunes high)
    Mood("melancholy", ("melancholy", "melancholic", "wistful", "lonely", "lonesome",
                        "plaintive", "pensive", "reflective", "dark", "brooding", "somber",
                        "sombre"),
         ("lonelier", "darker", "more wistful"),
         0.82, "minor", -4, 0.6, "legato", -1, "clarinet", 71,
         "rather slow, rather low, minor, fairly soft, smooth"),
    Mood("mournful", ("mournful", "grieving", "doleful", "tragic", "bleak", "funereal",
                      "lamenting", "grief-stricken", "desolate"),
         (),
         0.65, "minor", -7, 0.4, "legato", -3, "cello", 42,
         "very slow, low, minor, very soft, smooth, very few running notes"),
    Mood("happy", ("happy", "glad", "sunny", "upbeat", "uplifting", "carefree", "bright",
                   "light-hearted", "lighthearted", "hopeful", "optimistic"),
         ("happier", "brighter", "sunnier"),
         1.15, "major", 4, 1.0, "staccato", 1, "flute", 73,
         "fast, high, major, loud, detached"),
    Mood("joyful", ("joyful", "joyous", "jubilant", "ecstatic", "elated", "exuberant",
                    "festive", "celebratory"),
         (),
         1.2, "major", 5, 1.1, "staccato", 1, "fiddle", 40,
         "fast, high, major, loud, detached, busy"),
    Mood("cheerful", ("cheerful", "merry", "jolly", "jaunty", "lively", "bouncy", "spirited",
                      "sprightly", "energetic"),
         ("merrier", "jollier", "livelier", "bouncier"),
         1.1, "major", 3, 1.0, "staccato", 1, "tin whistle", 78,
         "brisk, rather high, major, detached"),
    Mood("calm", ("calm", "serene", "tranquil", "relaxed", "soothing", "restful", "still",
                  "mellow", "solemn"),
         ("calmer", "more relaxed", "mellower"),
         0.8, None, -2, 0.5, "legato", -2, "flute", 73,
         "slow, a little low, soft, smooth, few running notes"),
    Mood("peaceful", ("peaceful", "quiet-hearted", "placid", "pastoral", "idyllic"),
         (),
         0.75, "major", -2, 0.4, "legato", -2, "harp", 46,
         "slow, a little low, major, soft, smooth, very few running notes"),
    Mood("dreamy", ("dreamy", "dreamlike", "ethereal", "floating", "hazy", "hypnotic"),
         ("dreamier",),
         0.75, None, 3, 0.5, "legato", -3, "harp", 46,
         "slow, rather high, very soft, smooth, few running notes"),
    Mood("angry", ("angry", "furious", "raging", "rage", "aggressive", "violent", "stormy",
                   "wild", "harsh"),
         ("angrier", "wilder", "harsher", "stormier"),
         1.25, "minor", 0, 1.2, "staccato", 2, "electric guitar", 27,
         "fast, very loud, minor, sharp and detached, busy"),
    Mood("fierce", ("fierce", "ferocious", "intense", "driving", "relentless", "savage"),
         ("fiercer",),
         1.3, "minor", 2, 1.2, "staccato", 2, "fiddle", 40,
         "very fast, very loud, minor, detached, busy"),
    Mood("tender", ("tender", "gentle", "sweet", "loving", "affectionate", "warm", "romantic",
                    "intimate", "graceful", "elegant"),
         ("gentler", "sweeter", "warmer", "more tender", "more romantic"),
         0.8, "major", -2, 0.5, "legato", -2, "classical guitar", 24,
         "slow, a little low, soft, smooth, few running notes"),
    Mood("triumphant", ("triumphant", "heroic", "victorious", "majestic", "epic", "glorious",
                        "proud", "stately", "grand", "anthemic"),
         ("grander", "prouder"),
         1.05, "major", 4, 0.9, None, 2, "trumpet", 56,
         "steady to quick, high, major, very loud"),
    Mood("mysterious", ("mysterious", "eerie", "spooky", "haunting", "ghostly", "enigmatic",
                        "uncanny", "creepy", "ominous", "suspenseful"),
         ("spookier", "eerier", "creepier"),
         0.85, "dorian", -4, 0.6, "legato", -3, "clarinet", 71,
         "rather slow, low, modal, very soft, smooth"),
    Mood("playful", ("playful", "cheeky", "mischievous", "whimsical", "quirky", "teasing",
                     "silly", "fun", "light"),
         ("cheekier", "sillier", "lighter"),
         1.15, "major", 5, 1.0, "staccato", 0, "mandolin", 25,
         "quick, high, major, detached, light"),
    Mood("nostalgic", ("nostalgic", "bittersweet", "yearning", "longing", "sentimental",
                       "homesick", "reminiscent"),
         (),
         0.85, None, -2, 0.7, "legato", -1, "accordion", 21,
         "rather slow, a little low, fairly soft, smooth"),
    Mood("dramatic", ("dramatic", "passionate", "turbulent", "urgent", "tense", "powerful",
                      "tempestuous"),
         ("tenser",),
         0.9, "minor", -4, 1.0, None, 2, "strings", 48,
         "broad, minor, rather low, very loud"),
)

BY_MOOD = {mood.name: mood for mood in MOODS}
MOOD_NAMES = tuple(BY_MOOD)
# every word (and comparative) -> (mood, said as a comparative)
_WORDS: dict[str, tuple[str, bool]] = {}
for _mood in MOODS:
    for _word in _mood.words:
        _WORDS.setdefault(_word, (_mood.name, False))
    for _word in _mood.comparatives:
        _WORDS.setdefault(_word, (_mood.name, True))
del _mood, _word


@dataclass(frozen=True)
class MoodConfig:
    """Settings of the mood model: how far cues may go and when an octave is worth moving."""

    slowest: float = field(default=0.55, metadata={
        "help": "a mood never takes a tune below this share of its style's usual speed"})
    fastest: float = field(default=1.4, metadata={
        "help": "a mood never takes a tune above this multiple of its style's usual speed"})
    default_bpm: int = field(default=100, metadata={
        "help": "usual speed in quarter notes a minute of a tune whose style is unknown"})
    unmarked_quarter_bpm: int = field(default=120, metadata={
        "help": "speed of a tune without Q: (what music21 and abc2midi play it at)"})
    octave_at: int = field(default=6, metadata={
        "help": "semitones of register shift (cue x intensity) from which an edit moves the "
                "melody an octave"})
    lowest: int = field(default=55, metadata={
        "help": "lowest MIDI note an octave move may reach when the tune names no instrument "
                "(G3, the fiddle's open string: the score stays readable on one staff)"})
    highest: int = field(default=96, metadata={
        "help": "highest MIDI note an octave move may reach when the tune names no instrument"})
    sung_lowest: int = field(default=52, metadata={
        "help": "lowest MIDI note an octave move may reach when the tune has words (E3: a "
                "middle voice's A3 less a fourth, which men and low voices still sing)"})
    sung_highest: int = field(default=79, metadata={
        "help": "highest MIDI note an octave move may reach when the tune has words (G5)"})
    least_short_share: float = field(default=0.02, metadata={
        "help": "the smallest share of running notes a plan asks for (0 would forbid them)"})
    sparse_notes_per_beat: float = field(default=1.2, metadata={
        "help": "a tune with at most this many notes a beat has few running notes (held-out "
                "medians: 1.1 for hymns, 1.3 for waltzes, 3.6 for reels)"})
    tempo_step: float = field(default=0.02, metadata={
        "help": "tempo factors closer to 1 than this are not worth an edit"})


DEFAULT_MOOD_CONFIG = MoodConfig()

# --------------------------------------------------------------------------------------------
# Reading a message


@dataclass(frozen=True)
class MoodRequest:
    """A mood a message asks for.

    ``mood`` is a name in :data:`MOODS` (None when only unknown mood words were said);
    ``intensity`` scales every cue (0.5 "a bit", 1.5 "very"; negative for "less sad");
    ``comparative`` is True for a change of the current tune ("sadder", "more joyful");
    ``word`` is the word as said; ``unknown`` holds mood-like words the table lacks; ``start``
    and ``end`` locate the known mood in the text.
    """

    mood: str | None
    intensity: float = 1.0
    comparative: bool = False
    word: str = ""
    unknown: tuple[str, ...] = ()
    start: int = -1
    end: int = -1

    @property
    def reply(self) -> str | None:
        """What to tell the person about mood words the table lacks (None when all known)."""
        if not self.unknown:
            return None
        said = ", ".join(f'"{w}"' for w in self.unknown)
        plural = "moods" if len(self.unknown) > 1 else "mood"
        return (f"I do not know the {plural} {said} yet. Moods I can hear and make: "
                + ", ".join(MOOD_NAMES) + ".")


def _lower(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


_ALL_WORDS = sorted(_WORDS, key=len, reverse=True)
_MOOD_RE = re.compile(r"(?<![a-z'-])(?P<more>(?:more|less)\s+)?(?P<word>"
                      + "|".join(re.escape(w) for w in _ALL_WORDS) + r")(?![a-z'-])")
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bwithout|\bnothing)\s+(?:too\s+|so\s+|very\s+|"
                      r"overly\s+|that\s+|particularly\s+|at all\s+)?$")
_INTENSIFIER_RE = re.compile(r"(?:^|\s)(?P<word>" + "|".join(
    re.escape(w) for w in sorted(INTENSIFIERS, key=len, reverse=True)) + r")\s*$")
_MODIFIERS = r"(?:(?:a bit|a little|a lot|much|way|far|slightly|even|very|really|somewhat|" \
             r"more|less|quite|rather|a touch|a tad|so)\s+)*"
_UNKNOWN_RE = re.compile(
    r"\b(?:make|making|makes|made|turn|get)\s+(?:it|this|that|the (?:tune|melody|song|piece))\s+"
    r"(?:sound\s+|feel\s+)?" + _MODIFIERS + r"(?P<w>[a-z][a-z'-]+)"
    r"|\b(?:sounds?|feels?|sounding|feeling)\s+" + _MODIFIERS + r"(?P<w2>[a-z][a-z'-]+)"
    r"|\b(?:more|less)\s+(?P<w3>[a-z][a-z'-]+)\s*(?:[.!?,]|$)"
    r"|\b(?:a|an)\s+(?P<w4>[a-z][a-z'-]+)\s+(?:mood|feel|feeling|character|vibe|atmosphere)\b")


def _intensity(before: str) -> float:
    """The product of the intensifiers said just before a mood word ("really very")."""
    factor, text = 1.0, before.rstrip()
    for _ in range(3):
        m = _INTENSIFIER_RE.search(text)
        if not m:
            break
        factor *= INTENSIFIERS[m.group("word")]
        text = text[:m.start()].rstrip(" ,")
    return min(factor, MAX_INTENSITY)


def _unknown_words(low: str, known_spans: list[tuple[int, int]]) -> tuple[str, ...]:
    """Mood-like words the table lacks: "make it spookier" style phrases whose word is not a
    mood, a tempo, a length or anything else :data:`NOT_MOODS` names."""
    found: list[str] = []
    styles = {word for style in STYLES.values() for word in (style.name, *style.keywords)}
    for m in _UNKNOWN_RE.finditer(low):
        name = next(g for g in ("w", "w2", "w3", "w4") if m.group(g))
        word, start = m.group(name), m.start(name)
        if any(a <= start < b for a, b in known_spans) or word in _WORDS:
            continue
        if word in NOT_MOODS or word in styles or word.rstrip("s") in styles or word.isdigit():
            continue
        if word not in found:
            found.append(word)
    return tuple(found)


def find_mood(text: str) -> MoodRequest | None:
    """The mood a message asks for, with its intensity; None when it names none.

    The first mood said and not negated wins. "sadder", "more sad" and "less happy" are
    comparatives (a change of the current tune); intensifiers before the word scale it.
    Mood-like words the table lacks come back in ``unknown`` so the reply can name the moods
    it knows instead of ignoring them.

    >>> find_mood("write a very sad waltz in D minor")
    MoodRequest(mood='sad', intensity=1.5, comparative=False, word='sad', unknown=(), start=13, end=16)
    >>> r = find_mood("make it less happy")
    >>> r.mood, r.intensity, r.comparative
    ('happy', -1.0, True)
    >>> find_mood("a waltz that is not sad") is None
    True
    >>> find_mood("make it spookier").mood, find_mood("make it more funky").unknown
    ('mysterious', ('funky',))
    >>> find_mood(None)
    Traceback (most recent call last):
    ...
    TypeError: text must be a str, not NoneType
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    low = _lower(text)
    chosen = None
    spans = []
    for m in _MOOD_RE.finditer(low):
        spans.append((m.start(), m.end()))
        if chosen is not None or _NEGATED.search(low[:m.start()]):
            continue
        name, comparative = _WORDS[m.group("word")]
        sign = 1.0
        if m.group("more"):
            comparative = True
            sign = -1.0 if m.group("more").startswith("less") else 1.0
        chosen = (name, round(sign * _intensity(low[:m.start()]), 3), comparative,
                  m.group("word"), m.start("word"), m.end())
    unknown = _unknown_words(low, spans)
    if chosen is None:
        return MoodRequest(None, 1.0, True, unknown[0], unknown) if unknown else None
    name, intensity, comparative, word, start, end = chosen
    return MoodRequest(name, intensity, comparative, word, unknown, start, end)


def mood_named(mood: "str | MoodRequest") -> tuple[Mood, float]:
    """The table row and intensity for a mood name or request.

    >>> mood_named("calm")[0].tempo
    0.8
    >>> mood_named(MoodRequest(None, unknown=("funky",)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: unknown mood 'funky': use one of sad, melancholy, ...
    """
    if isinstance(mood, MoodRequest):
        name, intensity = mood.mood, mood.intensity
        word = name or (mood.unknown[0] if mood.unknown else mood.word)
    else:
        name, intensity, word = mood, 1.0, mood
        if isinstance(mood, str) and mood.lower() in _WORDS:
            name = _WORDS[mood.lower()][0]
    if name not in BY_MOOD:
        raise InputError(f"unknown mood {word!r}: use one of " + ", ".join(MOOD_NAMES))
    return BY_MOOD[name], intensity


# --------------------------------------------------------------------------------------------
# Directions of the cues


def cue_directions(mood: "str | MoodRequest") -> dict[str, int]:
    """Which way each cue moves for a mood: +1 up (faster, higher, denser, louder, more
    staccato), -1 down, 0 not at all; ``mode`` is +1 for major, -1 for minor or a minor-like
    mode, 0 for none. "less sad" turns every direction round.

    >>> cue_directions("sad")
    {'tempo': -1, 'register': -1, 'density': -1, 'dynamics': -1, 'articulation': -1, 'mode': -1}
    >>> cue_directions(find_mood("a bit less joyful"))["tempo"]
    -1
    """
    row, intensity = mood_named(mood)
    sign = 1 if intensity >= 0 else -1

    def way(value: float, neutral: float) -> int:
        return 0 if abs(value - neutral) < 1e-9 else (1 if value > neutral else -1) * sign

    articulation = {"staccato": 1, "legato": -1, None: 0}[row.articulation] * sign
    mode = 0 if row.mode is None else (-1 if row.mode in MINOR_FAMILY else 1) * sign
    return {"tempo": way(row.tempo, 1.0), "register": way(row.register, 0),
            "density": way(row.density, 1.0), "dynamics": way(row.dynamics, 0),
            "articulation": articulation, "mode": mode}


def mode_for(mood: "str | MoodRequest") -> str | None:
    """The mode a mood suggests when the person named none ("less sad" suggests major).

    >>> mode_for("sad"), mode_for(find_mood("less sad")), mode_for("calm")
    ('minor', 'major', None)
    >>> mode_for("funky")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: unknown mood 'funky': use one of sad, melancholy, ...
    """
    row, intensity = mood_named(mood)
    return row.mode if intensity >= 0 else _opposite_mode(row.mode)


# --------------------------------------------------------------------------------------------
# Planning a new tune


@dataclass(frozen=True)
class MoodPlan:
    """What a mood asks of a new tune of a style and meter.

    ``bpm`` counts the meter's natural beat (as :func:`agent.understand.resolve` does) and
    ``tempo`` is the matching ``Q:`` value; ``mode`` is for when the person named none;
    ``register`` (semitones) and ``octave`` say where the melody should sit; ``short_notes`` is
    the most of its notes a tune may write shorter than ``L:`` (the composer's rhythm prior);
    ``dynamics`` the opening mark and ``velocity`` its MIDI velocity.
    """

    mood: str | None
    intensity: float
    bpm: int
    tempo: str
    mode: str | None
    register: int
    octave: int
    short_notes: float
    dynamics: str
    velocity: int
    articulation: str | None
    instrument: str | None
    program: int | None


def _beat_counts(meter: str) -> tuple[Fraction, int]:
    """The Q: beat of a meter and how many of the style table's beats make one (2 for 3/8)."""
    try:
        unit = beat_unit(meter)
    except ValueError:
        return Fraction(1, 4), 1
    return unit, 2 if unit == Fraction(1, 8) else 1


def _style_bpm(style: Style | None, meter: str, config: MoodConfig) -> float:
    """A style's usual speed in the meter's beats (what ``agent.styles.usual_tempo`` writes)."""
    unit, _ = _beat_counts(meter)
    if style is None:
        return float(config.default_bpm * Fraction(1, 4) / unit)
    try:
        return float(usual_bpm(style, meter))
    except ValueError:
        return float(style.bpm)


def _metronome(bpm: float) -> int:
    """The nearest metronome mark (the marks the exact tempo edit lands on)."""
    from agent.edits import METRONOME_MARKS  # lazily: agent.edits reads agent.understand

    if not METRONOME_MARKS[0] <= bpm <= METRONOME_MARKS[-1]:
        return int(round(bpm))
    return min(METRONOME_MARKS, key=lambda mark: abs(mark - bpm))


def _rounded(value: float) -> int:
    """Half away from zero: "a bit happier" (half a dynamics step) still moves one step."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _dynamics_step(level: str, steps: int) -> str:
    index = DYNAMICS.index(level) + steps
    return DYNAMICS[min(max(index, 0), len(DYNAMICS) - 1)]


def compose_plan(mood: "str | MoodRequest | None", style: str | None, meter: str,
                 config: MoodConfig = DEFAULT_MOOD_CONFIG) -> MoodPlan:
    """The header and rhythm a new tune of ``style`` in ``meter`` needs to sound ``mood``.

    Without a mood the plan is the style's own (its usual speed and share of running notes).

    >>> sad, happy = compose_plan("sad", "waltz", "3/4"), compose_plan("happy", "waltz", "3/4")
    >>> (sad.bpm, sad.tempo, sad.register), (happy.bpm, happy.tempo, happy.register)
    ((88, '1/4=88', -6), (138, '1/4=138', 4))
    >>> sad.short_notes < happy.short_notes, sad.velocity < happy.velocity
    (True, True)
    >>> compose_plan(find_mood("very sad"), "jig", "6/8").tempo
    '3/8=76'
    >>> compose_plan(None, "reel", "4/4").bpm
    208
    """
    style_row = STYLES.get(style or "") or style_for(rhythm="", title="", meter=meter)
    usual = _style_bpm(style_row, meter, config)
    unit, _ = _beat_counts(meter)
    share = usual_short_notes(style_row, meter)
    if mood is None:
        return MoodPlan(None, 0.0, _metronome(usual), f"{unit.numerator}/{unit.denominator}="
                        f"{_metronome(usual)}", None, 0, 0, share, NEUTRAL_DYNAMICS,
                        MIDI_VELOCITY[NEUTRAL_DYNAMICS], None, None, None)
    row, k = mood_named(mood)
    factor = min(max(row.tempo ** k, config.slowest), config.fastest)
    bpm = _metronome(usual * factor)
    register = _rounded(row.register * k)
    octave = 0 if abs(register) < config.octave_at else int(math.copysign(
        max(1, round(abs(register) / 12)), register))
    short = min(max(share * row.density ** k, config.least_short_share), 0.95)
    dynamics = _dynamics_step(NEUTRAL_DYNAMICS, _rounded(row.dynamics * k))
    mode = row.mode if k > 0 else _opposite_mode(row.mode)
    articulation = row.articulation if k > 0 else _opposite_articulation(row.articulation)
    return MoodPlan(row.name, k, bpm, f"{unit.numerator}/{unit.denominator}={bpm}", mode,
                    register, octave, round(short, 3), dynamics, MIDI_VELOCITY[dynamics],
                    articulation, row.instrument, row.program)


def _opposite_mode(mode: str | None) -> str | None:
    if mode is None:
        return None
    return "major" if mode in MINOR_FAMILY else "minor"


def _opposite_articulation(articulation: str | None) -> str | None:
    return {"legato": "staccato", "staccato": "legato", None: None}[articulation]


# --------------------------------------------------------------------------------------------
# Measuring a tune


@dataclass(frozen=True)
class Cues:
    """The mood cues of a tune as written.

    ``quarter_bpm`` is the speed in quarter notes a minute (``tempo_marked`` False: no ``Q:``,
    so the player's default); ``bpm`` and ``beat`` are the ``Q:`` numbers as written.
    ``mean_pitch`` is the mean MIDI pitch of the melody's notes (a chord counts its top note),
    ``notes_per_beat`` its notes and chords per beat of the meter, ``short_share`` the share of
    its notes, chords and rests shorter than an eighth (:data:`SHORT_NOTE`). ``dynamics`` is
    the opening mark ("mf" when none, ``dynamics_marked`` False) and ``velocity`` its MIDI
    velocity. ``staccato`` and ``slurred`` are shares of notes with a staccato mark or under
    a slur. The melody is the first voice.
    """

    quarter_bpm: float
    bpm: float
    beat: str
    tempo_marked: bool
    mean_pitch: float | None
    lowest: int | None
    highest: int | None
    notes: int
    notes_per_beat: float
    short_share: float
    tonic: str | None
    mode: str | None
    dynamics: str
    dynamics_marked: bool
    velocity: int
    staccato: float
    slurred: float
    style: str | None
    meter: str
    program: int | None

    @property
    def minor(self) -> bool:
        return self.mode in MINOR_FAMILY


def _decoration_name(token: Token) -> str:
    text = token.text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "!+":
        return text[1:-1]
    return text


def _melody_tokens(tune: TuneText) -> list[Token]:
    tokens = tokenize_body(tune.body, tune)
    voice = next((t.voice for t in tokens if t.is_timed), "")
    return [t for t in tokens if t.voice == voice]


def _program(tune: TuneText, tokens: list[Token]) -> int | None:
    texts = [text for text, _ in tune.directives]
    texts += [t.text for t in tokens if t.kind is Kind.COMMENT]
    for text in texts:
        m = re.match(r"%%MIDI\s+program\s+(?:\d+\s+)?(\d+)", text)
        if m:
            return int(m.group(1))
    return None


def measure_cues(abc: str, config: MoodConfig = DEFAULT_MOOD_CONFIG) -> Cues:
    """Tempo, register, density, mode, dynamics and articulation of a tune, from its text.

    Pure text reading through :mod:`agent.abc_text` (3 ms a tune on the held-out split; no
    music21).

    >>> c = measure_cues("X:1\\nM:3/4\\nL:1/8\\nQ:1/4=84\\nK:Am\\n!p!A4 (cB)|A6|]\\n")
    >>> c.quarter_bpm, c.mean_pitch, c.notes_per_beat, c.mode, c.dynamics, c.velocity, c.slurred
    (84.0, 70.25, 0.67, 'minor', 'p', 63, 0.5)
    >>> measure_cues("X:1\\nT:no body\\n")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune has no notes to measure
    """
    if not isinstance(abc, str) or not abc.strip():
        raise InputError("there is no tune to measure (the ABC text is empty)")
    try:
        tune = parse_tune(abc)
    except AbcError as err:
        if "K:" in str(err) or "key" in str(err):
            raise InputError("the tune has no notes to measure") from err
        raise
    tokens = _melody_tokens(tune)
    notes = [t for t in tokens if t.kind in (Kind.NOTE, Kind.CHORD) and t.pitches]
    if not notes:
        raise InputError("the tune has no notes to measure")
    timed = [t for t in tokens if t.is_timed and t.duration]
    meter = tune.meter
    meter_text = tune.get("M") or "4/4"
    beat = meter.beat_length if meter.bar_length is not None else Fraction(1, 4)
    total = sum((t.duration for t in timed), Fraction(0))
    tempo = tune.tempo
    if tempo is not None and tempo.beat and tempo.bpm:
        quarter = float(tempo.bpm * tempo.beat * 4)
        bpm, q_beat, marked = float(tempo.bpm), tempo.beat, True
    else:
        quarter, marked = float(config.unmarked_quarter_bpm), False
        q_beat = beat
        bpm = float(Fraction(config.unmarked_quarter_bpm) / 4 / beat)
    tops = [max(t.pitches) for t in notes]
    dynamics, staccato, slurred = None, 0, 0
    depth, pending_staccato = 0, False
    for token in tokens:
        if token.kind is Kind.DECORATION:
            name = _decoration_name(token)
            if name in DYNAMICS and dynamics is None and not any(
                    n.start < token.start for n in notes):
                dynamics = name
            if name in (".", "staccato"):
                pending_staccato = True
        elif token.kind is Kind.SLUR:
            depth = depth + 1 if token.text == "(" else max(0, depth - 1)
        elif token.kind in (Kind.NOTE, Kind.CHORD):
            staccato += pending_staccato
            slurred += depth > 0
            pending_staccato = False
        elif token.kind is Kind.REST:
            pending_staccato = False
    style = style_for(rhythm=tune.get("R") or "", title=tune.title or "", meter=meter_text.strip())
    return Cues(
        quarter_bpm=round(quarter, 2), bpm=bpm, beat=f"{q_beat.numerator}/{q_beat.denominator}",
        tempo_marked=marked, mean_pitch=round(statistics.fmean(tops), 2), lowest=min(
            min(t.pitches) for t in notes), highest=max(tops), notes=len(notes),
        notes_per_beat=round(len(notes) / float(total / beat), 2) if total else 0.0,
        short_share=round(sum(1 for t in timed if t.duration < SHORT_NOTE) / len(timed), 3),
        tonic=tune.key.tonic, mode=tune.key.mode, dynamics=dynamics or NEUTRAL_DYNAMICS,
        dynamics_marked=dynamics is not None, velocity=MIDI_VELOCITY[dynamics],
        staccato=round(staccato / len(notes), 3), slurred=round(slurred / len(notes), 3),
        style=style.name if style else None, meter=meter_text.strip(),
        program=_program(tune, tokens))


# --------------------------------------------------------------------------------------------
# Exact edits toward a mood


@dataclass(frozen=True)
class CueChange:
    """One cue an edit moved: ``cue`` (tempo, dynamics, register, mode, articulation), the
    values before and after, and the words for the reply ("slower (120 → 92)")."""

    cue: str
    before: object
    after: object
    words: str


@dataclass(frozen=True)
class MoodEdit:
    """A tune moved toward a mood by exact edits.

    ``changes`` are the cues moved; ``pending`` the cues that need the notes rewritten
    (``density``: a rewrite of the bars with at most ``short_notes`` of their notes shorter
    than ``L:``; ``mode`` when a mode change was not allowed); ``pending_words`` say those in
    a musician's words; ``kept`` says why a cue could not move ("already as slow as a waltz
    goes"). ``reply`` is the sentence for the person.
    """

    abc: str
    mood: str
    intensity: float
    changes: tuple[CueChange, ...]
    pending: tuple[str, ...]
    pending_words: tuple[str, ...]
    kept: tuple[str, ...]
    short_notes: float | None
    reply: str
    before: Cues
    after: Cues


def set_dynamics(abc: str, steps: int = 0, level: str | None = None) -> str:
    """Move every dynamics mark of the melody ``steps`` levels (``!p!`` one softer is
    ``!pp!``), or set the opening one to ``level`` and move the others by as much. A tune with
    no opening mark gets one before its first note. Everything else stays byte for byte.

    >>> set_dynamics("X:1\\nK:G\\n\\"G\\"GAB|!f!c4|]\\nw:la la la la\\n", -2)
    'X:1\\nK:G\\n!p!"G"GAB|!mp!c4|]\\nw:la la la la\\n'
    >>> set_dynamics("X:1\\nK:G\\nGAB|\\n", level="loud")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: not a dynamics mark: 'loud' (use ppp, pp, p, mp, mf, f, ff or fff)
    """
    if level is not None and level not in DYNAMICS:
        raise InputError(f"not a dynamics mark: {level!r} (use " + ", ".join(DYNAMICS[:-1])
                         + f" or {DYNAMICS[-1]})")
    tune = parse_tune(abc)
    tokens = _melody_tokens(tune)
    first = next((i for i, t in enumerate(tokens) if t.kind in (Kind.NOTE, Kind.CHORD, Kind.REST)),
                 None)
    if first is None:
        raise InputError("the tune has no notes to mark")
    marks = [t for t in tokens if t.kind is Kind.DECORATION and _decoration_name(t) in DYNAMICS]
    opening = next((t for t in marks if t.start < tokens[first].start), None)
    current = _decoration_name(opening) if opening else NEUTRAL_DYNAMICS
    if level is not None:
        steps = DYNAMICS.index(level) - DYNAMICS.index(current)
    changes: list[tuple[int, int, str]] = []
    for mark in marks:
        name = _decoration_name(mark)
        new = _dynamics_step(name, steps)
        if new != name:
            changes.append((mark.start, mark.end, mark.text.replace(name, new, 1)))
    if opening is None:
        new = _dynamics_step(NEUTRAL_DYNAMICS, steps)
        if new != NEUTRAL_DYNAMICS:
            changes.append((_note_group_start(tokens, first), _note_group_start(tokens, first),
                            f"!{new}!"))
    return _splice(abc, tune, changes)


_NOTE_GROUP = (Kind.DECORATION, Kind.CHORD_SYMBOL, Kind.ANNOTATION, Kind.SLUR, Kind.TUPLET,
               Kind.GRACE)


def _note_group_start(tokens: list[Token], index: int) -> int:
    """Where the first note's group starts: before the chord symbol, decorations, grace
    notes, slur or tuplet sign written right against it (a mark before them is read as
    the note's by every ABC reader)."""
    start = tokens[index].start
    at = index - 1
    while at >= 0 and tokens[at].end == start and tokens[at].kind in _NOTE_GROUP:
        start = tokens[at].start
        at -= 1
    return start


def _splice(abc: str, tune: TuneText, changes: list[tuple[int, int, str]]) -> str:
    """The tune's text with body spans replaced (offsets into the body); nothing else moves."""
    body = tune.body
    for start, end, new in sorted(changes, key=lambda c: (c[0], c[1]), reverse=True):
        body = body[:start] + new + body[end:]
    return abc[:tune.body_offset] + body + abc[tune.body_offset + len(tune.body):]


def _remove_staccato(abc: str) -> tuple[str, int]:
    tune = parse_tune(abc)
    marks = [t for t in _melody_tokens(tune)
             if t.kind is Kind.DECORATION and _decoration_name(t) in (".", "staccato")]
    return _splice(abc, tune, [(t.start, t.end, "") for t in marks]), len(marks)


def _bar_positions(tokens: list[Token], bar_length: Fraction | None) -> dict[int, Fraction]:
    """Where each timed token (by index) starts within its bar; a short first bar is a pickup,
    so its notes are counted back from the bar's end."""
    positions: dict[int, Fraction] = {}
    bar: list[int] = []
    at, first = Fraction(0), True

    def close() -> None:
        nonlocal at, first
        shift = bar_length - at if first and bar_length is not None and 0 < at < bar_length \
            else Fraction(0)
        for index in bar:
            positions[index] += shift
        bar.clear()
        first = first and not positions
        at = Fraction(0)

    for index, token in enumerate(tokens):
        if token.kind is Kind.BAR:
            close()
        elif token.is_timed:
            positions[index] = at
            bar.append(index)
            at += token.duration or 0
    close()
    return positions


def _add_staccato(abc: str) -> tuple[str, int]:
    """Staccato dots on the light notes of running passages: a plain note an eighth long (half
    a beat of 2/2 or 4/4, a third of 6/8's) that has another such note right before or after
    it, and that leads into the next beat (starts off the beat and ends on one: the second
    eighth of a 3/4 beat, the third of a 6/8 one). Not under a slur, not tied, not in a
    broken pair, a tuplet or after a grace group, and without a decoration already. A dot on
    every note reads heavily and plays choppily; the note on the beat keeps its weight and
    long notes stay as they are, as a player lightening a tune would play it.

    >>> print(_add_staccato("X:1\\nM:6/8\\nL:1/8\\nK:G\\nGAB c2B|A3 d3|]\\n")[0], end="")
    X:1
    M:6/8
    L:1/8
    K:G
    GA.B c2B|A3 d3|]
    >>> _add_staccato("X:1\\nM:3/4\\nL:1/8\\nK:G\\nB2 A2 G2|G6|]\\n")[1]  # no running notes
    0
    """
    tune = parse_tune(abc)
    tokens = _melody_tokens(tune)
    meter = tune.meter
    beat = meter.beat_length if meter.bar_length is not None else Fraction(1, 4)
    positions = _bar_positions(tokens, meter.bar_length)
    timed = [i for i, t in enumerate(tokens) if t.is_timed]
    longest = beat / 3 if beat.numerator == 3 else beat / 2  # a beat's eighths, 6/8 or 3/4
    running = {i for i in timed if tokens[i].kind is Kind.NOTE and tokens[i].duration
               and SHORT_NOTE <= tokens[i].duration <= longest}
    neighbours = {i: (a, b) for a, i, b in zip([None] + timed, timed, timed[1:] + [None])}
    depth, tuplet_left, changes = 0, 0, []
    for i, token in enumerate(tokens):
        if token.kind is Kind.SLUR:
            depth = depth + 1 if token.text == "(" else max(0, depth - 1)
        elif token.kind is Kind.TUPLET:
            m = re.match(r"\((\d+)", token.text)
            tuplet_left = int(m.group(1)) if m else 3
        elif token.kind in (Kind.NOTE, Kind.CHORD, Kind.REST):
            in_tuplet = tuplet_left > 0
            tuplet_left = max(0, tuplet_left - 1)
            if token.kind is not Kind.NOTE or depth or in_tuplet or i not in running:
                continue
            if not any(n in running for n in neighbours[i]) or positions[i] % beat == 0 or (
                    positions[i] + token.duration) % beat:
                continue
            before = tokens[i - 1] if i else None
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            if before is not None and before.end == token.start and before.kind in (
                    Kind.DECORATION, Kind.GRACE, Kind.BROKEN, Kind.TIE):
                continue
            if after is not None and after.kind in (Kind.TIE, Kind.BROKEN):
                continue
            changes.append((token.start, token.start, "."))
    return _splice(abc, tune, changes), len(changes)


def set_articulation(abc: str, articulation: str) -> tuple[str, int]:
    """Make a tune "legato" (take off its staccato dots) or "staccato" (dots on its plain
    notes, see :func:`mood_edit`); returns the text and how many marks changed. Every other
    byte stays as it was.

    >>> set_articulation("X:1\\nM:4/4\\nL:1/8\\nK:D\\nDEFG (FA) d2|]\\n", "staccato")
    ('X:1\\nM:4/4\\nL:1/8\\nK:D\\nD.EF.G (FA) d2|]\\n', 2)
    >>> set_articulation("X:1\\nK:D\\nD|]\\n", "marcato")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: articulation is 'legato' or 'staccato', not 'marcato'
    """
    if articulation == "legato":
        return _remove_staccato(abc)
    if articulation == "staccato":
        return _add_staccato(abc)
    raise InputError(f"articulation is 'legato' or 'staccato', not {articulation!r}")


_HAS_WORDS = re.compile(r"(?m)^w:\s*\S")


def _range_limits(cues: Cues, config: MoodConfig, sung: bool = False) -> tuple[int, int, str]:
    """Where an octave move may take the melody: a singer's range when the tune has words
    (the words are sung, whatever plays them), else its instrument's, else the usual range."""
    from agent.validate import instrument_range

    if sung:
        return config.sung_lowest, config.sung_highest, "a singer's range"
    listed = instrument_range(cues.program) if cues.program is not None else None
    if listed:
        return listed
    return config.lowest, config.highest, "the melody's usual range"


def _tempo_target(cues: Cues, row: Mood, k: float, comparative: bool,
                  config: MoodConfig) -> tuple[float, str | None]:
    """The new speed in the tune's Q: beats (or the current one) and why it cannot move."""
    style = STYLES.get(cues.style or "")
    usual = _usual_quarter_bpm(style, cues.meter, config)
    factor = row.tempo ** k
    if abs(factor - 1) < config.tempo_step:
        return cues.bpm, None
    target = (cues.quarter_bpm if comparative else usual) * factor
    target = min(max(target, usual * config.slowest), usual * config.fastest)
    slower = factor < 1
    if (slower and target >= cues.quarter_bpm) or (not slower and target <= cues.quarter_bpm):
        name = f"a {style.name}" if style else "a tune like this"
        return cues.bpm, f"it is already as {'slow' if slower else 'fast'} as {name} goes"
    return cues.bpm * target / cues.quarter_bpm, None


def mood_edit(abc: str, request: "MoodRequest | str", allow_mode_change: bool = False,
              config: MoodConfig = DEFAULT_MOOD_CONFIG, mode_named: bool = False,
              keep: frozenset[str] = frozenset()) -> MoodEdit:
    """Move a tune toward a mood by exact edits, and say what still needs the notes rewritten.

    Tempo (:func:`agent.edits.set_tempo`), dynamics (:func:`set_dynamics`), register by whole
    octaves (:func:`agent.edits.transpose`, when the melody stays in its instrument's range),
    articulation (staccato dots taken off for legato moods, put on the plain notes for
    staccato moods) and, with ``allow_mode_change``, the mode (:func:`agent.edits.change_mode`,
    parallel). A comparative ("sadder") moves each cue from where the tune stands; a plain mood
    ("make it sad") moves each cue to the mood's level unless the tune is already past it.
    Words, chord symbols and every other byte stay as they were. The share of running notes
    cannot change without new notes: it is reported in ``pending`` with the target share.
    ``mode_named``: the person chose the mode in the same message, so the mode is not a cue.
    ``keep``: cues ("tempo", "dynamics", "register") the person set in the same message
    ("happier but slower"), left as they are.

    >>> tune = "X:1\\nT:Air\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\n\\"G\\"B2 A/B/c/B/ A2|\\"D\\"G6|]\\nw:la la la la\\n"
    >>> result = mood_edit(tune, find_mood("make it sadder"))
    >>> print(result.abc, end="")
    X:1
    T:Air
    R:waltz
    M:3/4
    L:1/8
    Q:1/4=88
    K:G
    !p!"G"B,2 A,/B,/C/B,/ A,2|"D"G,6|]
    w:la la la la
    >>> result.reply
    'Sadder: slower (120 → 88), softer (mf → p), down an octave. It stays in G major (say "in minor" to change the mode). For fewer running notes the bars need rewriting.'
    >>> mood_edit(tune, "funky")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agent.errors.InputError: unknown mood 'funky': use one of sad, melancholy, ...
    """
    from agent.edits import change_mode, set_tempo, transpose
    from agent.understand import ChangeMode, SetTempo, Transpose

    row, k = mood_named(request)
    comparative = request.comparative if isinstance(request, MoodRequest) else False
    before = measure_cues(abc, config)
    ways = cue_directions(request)
    text, changes, kept, pending, pending_words = abc, [], [], [], []

    target, why = _tempo_target(before, row, k, comparative, config)
    if "tempo" in keep:
        pass
    elif why:
        kept.append(why)
    elif target != before.bpm:
        new_text = set_tempo(text, SetTempo(factor=target / before.bpm)).abc
        new_bpm = measure_cues(new_text, config).bpm
        if new_bpm != before.bpm:
            text = new_text
            word = "slower" if new_bpm < before.bpm else "faster"
            changes.append(CueChange("tempo", before.bpm, new_bpm,
                                     f"{word} ({before.bpm:g} → {new_bpm:g})"))

    steps = 0 if "dynamics" in keep else _rounded(row.dynamics * k)
    if steps:
        current = before.dynamics
        if comparative:
            new_level = _dynamics_step(current, steps)
        else:
            goal = _dynamics_step(NEUTRAL_DYNAMICS, steps)
            moved = DYNAMICS.index(goal) - DYNAMICS.index(current)
            new_level = goal if moved * steps > 0 else current
        if new_level != current:
            text = set_dynamics(text, level=new_level)
            word = "softer" if DYNAMICS.index(new_level) < DYNAMICS.index(current) else "louder"
            changes.append(CueChange("dynamics", current, new_level,
                                     f"{word} ({current} → {new_level})"))
        else:
            kept.append(f"it is already {DYNAMICS_WORDS[current]} ({current})")

    register = 0 if "register" in keep else row.register * k
    if abs(register) >= config.octave_at:
        octaves = int(math.copysign(max(1, round(abs(register) / 12)), register))
        low, high, name = _range_limits(before, config, sung=_HAS_WORDS.search(abc) is not None)
        if low <= before.lowest + 12 * octaves and before.highest + 12 * octaves <= high:
            text = transpose(text, Transpose(semitones=12 * octaves)).abc
            count = "an octave" if abs(octaves) == 1 else f"{abs(octaves)} octaves"
            changes.append(CueChange("register", before.mean_pitch,
                                     before.mean_pitch + 12 * octaves,
                                     f"{'up' if octaves > 0 else 'down'} {count}"))
        else:
            kept.append(f"it stays at its pitch, since an octave {'up' if octaves > 0 else 'down'} "
                        f"would leave {name}")

    wanted_mode = row.mode if k > 0 else _opposite_mode(row.mode)
    if wanted_mode and before.mode and (wanted_mode in MINOR_FAMILY) != before.minor and (
            not mode_named):
        if allow_mode_change:
            text = change_mode(text, ChangeMode(wanted_mode, "parallel")).abc
            changes.append(CueChange("mode", before.mode, wanted_mode,
                                     f"in {before.tonic} {wanted_mode} now"))
        else:
            pending.append("mode")
            kept.append(f'It stays in {before.tonic} {before.mode} (say "in {wanted_mode}" '
                        f'to change the mode)')

    if ways["articulation"] < 0 and before.staccato > 0:
        text, removed = _remove_staccato(text)
        dots = f"{removed} staccato dot" + "s" * (removed != 1)
        changes.append(CueChange("articulation", before.staccato, 0.0,
                                 f"smoother (took off {dots})"))
    elif ways["articulation"] > 0 and before.staccato == 0:
        text, added = _add_staccato(text)
        if added:
            notes = f"{added} off-beat running note" + "s" * (added != 1)
            changes.append(CueChange("articulation", 0.0, None, f"lighter (staccato on {notes})"))

    style = STYLES.get(before.style or "")
    short_notes = None
    if ways["density"]:
        usual = usual_short_notes(style, before.meter)
        short_notes = round(min(max(usual * row.density ** k, config.least_short_share), 0.95), 3)
        if ways["density"] < 0 and before.short_share > short_notes or ways["density"] > 0 and (
                before.short_share < short_notes):
            pending.append("density")
            pending_words.append("fewer running notes" if ways["density"] < 0 else
                                 "more running notes")
    after = measure_cues(text, config)
    edit = MoodEdit(text, row.name, k, tuple(changes), tuple(pending), tuple(pending_words),
                    tuple(kept), short_notes, "", before, after)
    return replace(edit, reply=edit_reply(edit))


# How a reply names the move toward a mood ("make it sad" and "sadder" alike).
_COMPARATIVE_WORDS = {"sad": "Sadder", "happy": "Happier", "calm": "Calmer", "angry": "Angrier",
                      "tender": "Gentler", "dreamy": "Dreamier", "fierce": "Fiercer"}


def edit_reply(edit: MoodEdit) -> str:
    """ "Sadder: slower (120 → 92), down an octave, softer (mf → p). ..." """
    if edit.intensity < 0:
        head = f"Less {edit.mood}"
    else:
        head = _COMPARATIVE_WORDS.get(edit.mood, f"More {edit.mood}")
    moved = ", ".join(change.words for change in edit.changes)
    parts = [f"{head}: {moved}." if moved else f"{head}: there is nothing more I can change."]
    notes = [k for k in edit.kept if k.startswith("It stays")]
    limits = [k for k in edit.kept if not k.startswith("It stays")]
    if limits:
        parts.append("; ".join(limits)[:1].upper() + "; ".join(limits)[1:] + ".")
    parts += [n + "." for n in notes]
    if edit.pending_words:
        parts.append("For " + " and ".join(edit.pending_words) + " the bars need rewriting.")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Explaining a tune's mood


def tempo_limits(cues: Cues, config: MoodConfig = DEFAULT_MOOD_CONFIG) -> tuple[float, float]:
    """The slowest and fastest speed (quarter notes a minute) a mood takes a tune of this
    style and meter to: the style's usual speed times ``config.slowest`` and ``fastest``.

    >>> tempo_limits(measure_cues("X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nK:G\\nB2 A2 G2|\\n"))
    (66.0, 168.0)
    """
    usual = _usual_quarter_bpm(STYLES.get(cues.style or ""), cues.meter, config)
    return usual * config.slowest, usual * config.fastest


def _usual_quarter_bpm(style: Style | None, meter: str, config: MoodConfig) -> float:
    if style is None:
        return float(config.default_bpm)
    unit, _ = _beat_counts(meter)
    return float(_style_bpm(style, meter, config) * unit * 4)


# Mean MIDI pitch of the melody in held-out tunes (finetune/splits/test.jsonl, 406 tunes;
# ``python -m finetune.mood_eval --medians``): the middle of where a folk melody sits. Below
# it a tune sounds low, above it high.
HELD_OUT_MEAN_PITCH = 70.2
#: The same by style (styles with at least 12 held-out tunes; the rest use the overall one).
HELD_OUT_MEAN_PITCH_BY_STYLE = {
    "song": 69.31, "ballad": 69.08, "reel": 72.26, "jig": 71.86, "polka": 70.31,
    "waltz": 70.66, "hornpipe": 72.34, "air": 70.85, "hymn": 67.84,
}


# Median notes a beat of the held-out tunes of each style (``python -m finetune.mood_eval
# --medians``): below it a tune sounds sparse for its style, above it busy.
HELD_OUT_NOTES_PER_BEAT_BY_STYLE = {
    "song": 1.47, "ballad": 1.32, "reel": 3.62, "jig": 2.67, "polka": 1.92, "waltz": 1.33,
    "hornpipe": 3.74, "air": 1.65, "hymn": 1.08,
}
HELD_OUT_NOTES_PER_BEAT = 1.75
# How far past the style's median a new tune's notes a beat are taken (a sad waltz at 0.9 of
# the median waltz's, a joyful one at 1.1).
_DENSITY_MARGIN = 0.1
_NOTE_TEXT = re.compile(r"^(?P<pitch>[_^=]*[A-Ga-g][,']*)(?P<length>[\d/]*)$")


def _length_text(duration: Fraction, unit: Fraction) -> str:
    """The ABC length of ``duration`` (a fraction of a whole note) with ``L:`` = ``unit``.

    >>> [_length_text(Fraction(n, 8), Fraction(1, 8)) for n in (1, 2, 3)], _length_text(Fraction(1, 16), Fraction(1, 8))
    (['', '2', '3'], '/2')
    """
    ratio = duration / unit
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    return f"{ratio.numerator if ratio.numerator != 1 else ''}/{ratio.denominator}"


def _beat_groups(tokens: list[Token], beat: Fraction, bar_length: Fraction | None
                 ) -> list[list[int]]:
    """The beats of the melody (token indexes of their timed tokens) that are plain notes
    (no chords or rests), start and end on the beat, and have nothing inside them that ties
    notes together (ties, tuplets, grace notes, slurs)."""
    positions = _bar_positions(tokens, bar_length)
    groups: list[list[int]] = []
    current: list[int] = []
    blocked = pending = False  # pending: a sign before the next note (a slur, a tuplet...)
    depth = 0
    for index, token in enumerate(tokens):
        if token.kind is Kind.SLUR:
            depth = depth + 1 if token.text == "(" else max(0, depth - 1)
            pending = True
        elif token.kind in (Kind.TIE, Kind.TUPLET, Kind.GRACE, Kind.OVERLAY):
            pending = True  # (broken rhythm inside a beat is rewritten with the beat)
        elif token.kind is Kind.BAR:
            current, blocked = [], False
        elif token.is_timed:
            if positions[index] % beat == 0:
                current, blocked = [], depth > 0 or pending
            else:
                blocked = blocked or pending
            pending = False
            current.append(index)
            if token.kind is not Kind.NOTE or not token.duration or not _NOTE_TEXT.match(
                    token.text):
                blocked = True
            end = positions[index] + (token.duration or 0)
            if end % beat == 0 and not blocked and sum(
                    tokens[i].duration for i in current) == beat:
                groups.append(current)
                current = []
    return groups


def _respelled(token: Token, duration: Fraction, unit: Fraction) -> str:
    return _NOTE_TEXT.match(token.text).group("pitch") + _length_text(duration, unit)


def change_density(abc: str, way: int, target: float) -> tuple[str, int]:
    """Fewer (``way`` -1) or more (+1) notes a beat, toward ``target`` notes a beat, by
    rewriting whole beats of plain notes in the tune's own pitches: the running notes of a
    beat become its first note held (four even sixteenths: the first and third as eighths), a
    6/8 beat of three or more notes its first as a quarter and its last as an eighth (the
    jig's lilt); the other way a note held for a beat is played
    twice (a 6/8 beat as a quarter and an eighth; its quarter and eighth as three eighths).
    Beats are taken spread evenly over the
    tune; bar lengths stay right; everything else stays byte for byte. Returns the text and
    how many beats changed. A new tune only: words would lose their notes.

    >>> tune = "X:1\\nM:3/4\\nL:1/8\\nK:G\\nBA GA B2|d2 cB A2|G6|]\\n"
    >>> change_density(tune, -1, 0.7)
    ('X:1\\nM:3/4\\nL:1/8\\nK:G\\nB2 G2 B2|d2 c2 A2|G6|]\\n', 3)
    >>> change_density("X:1\\nM:6/8\\nL:1/8\\nK:D\\nd3 A2B|]\\n", 1, 3.0)[0].splitlines()[-1]
    'd2d AAB|]'
    >>> change_density(tune, 0, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: way is -1 (fewer notes) or 1 (more), not 0
    """
    if way not in (-1, 1):
        raise ValueError(f"way is -1 (fewer notes) or 1 (more), not {way}")
    tune = parse_tune(abc)
    if tune.meter.bar_length is None:
        return abc, 0
    tokens = _melody_tokens(tune)
    beat = tune.meter.beat_length
    unit = tune.unit_length
    compound = beat.numerator == 3
    plans: list[tuple[int, int, str]] = []
    for group in _beat_groups(tokens, beat, tune.meter.bar_length):
        notes = [tokens[i] for i in group]
        lengths = {t.duration for t in notes}
        kept: list = []
        if way < 0 and len(notes) >= (3 if compound else 2):
            if compound:  # the first note long, the last short
                kept = [(notes[0], beat * 2 / 3), (notes[-1], beat / 3)]
            elif len(notes) == 4 and len(lengths) == 1:
                kept = [(notes[0], beat / 2), (notes[2], beat / 2)]
            else:
                kept = [(notes[0], beat)]
            dropped = [t for t in notes if all(t is not k for k, _ in kept)]
            if any(t.text[0] in "^_=" for t in dropped):
                continue  # its accidental holds to the bar's end: later notes would change
            text = "".join(_respelled(t, d, unit) for t, d in kept)
        elif way > 0 and len(notes) == 1 and notes[0].duration == beat:
            first, second = (beat * 2 / 3, beat / 3) if compound else (beat / 2, beat / 2)
            text = _respelled(notes[0], first, unit) + _respelled(notes[0], second, unit)
        elif way > 0 and compound and len(notes) == 2 and notes[0].duration == beat * 2 / 3:
            third = beat / 3  # the lilt's long note played twice: A2B -> AAB
            text = _respelled(notes[0], third, unit) * 2 + _respelled(notes[1], third, unit)
        else:
            continue
        plans.append((notes[0].start, notes[-1].end, text, len(notes) - len(kept) if way < 0
                      else 1))
    before = measure_cues(abc)
    beats = before.notes / before.notes_per_beat if before.notes_per_beat else 0
    needed = (before.notes - target * beats) * -way  # notes to take away (or add)
    if needed <= 0 or not plans:
        return abc, 0
    each = statistics.fmean(plan[3] for plan in plans)
    count = min(len(plans), math.ceil(needed / each))
    chosen = [plans[i * len(plans) // count][:3] for i in range(count)]
    return _splice(abc, tune, chosen), count


def density_target(style: str | None, way: int) -> float:
    """Notes a beat a new tune of ``style`` is taken to for a mood that wants fewer (-1) or
    more (+1) notes: a tenth past the style's held-out median.

    >>> density_target("waltz", -1), density_target(None, 1)
    (1.197, 1.925)
    """
    median = HELD_OUT_NOTES_PER_BEAT_BY_STYLE.get(style or "", HELD_OUT_NOTES_PER_BEAT)
    return round(median * (1 + _DENSITY_MARGIN * way), 3)


def register_target(mean_pitch: float, register: int, style: str | None,
                    lowest: int, highest: int, low_note: int, high_note: int) -> int:
    """Semitones (a whole number of octaves, or 0) to move a new tune so its mean pitch lies on
    the side of its style's held-out median a mood's ``register`` asks for, keeping its notes
    (``low_note``..``high_note``) within ``lowest``..``highest``.

    >>> register_target(72.0, -6, "waltz", 55, 96, 68, 79)  # a sad waltz sitting high
    -12
    >>> register_target(66.0, -6, "waltz", 55, 96, 58, 74)  # already low
    0
    >>> register_target(72.0, -6, "waltz", 60, 96, 68, 79)  # an octave down leaves the range
    0
    """
    median = HELD_OUT_MEAN_PITCH_BY_STYLE.get(style or "", HELD_OUT_MEAN_PITCH)
    way = (register > 0) - (register < 0)
    if not way or (mean_pitch - median) * way > 0:
        return 0
    shift = 12 * way
    if lowest <= low_note + shift and high_note + shift <= highest:
        return shift
    return 0


def tune_cue_directions(cues: Cues, config: MoodConfig = DEFAULT_MOOD_CONFIG,
                        reference_pitch: float = HELD_OUT_MEAN_PITCH) -> dict[str, int]:
    """Where a tune stands on each cue against its style's usual: +1 above, -1 below, 0 near.

    >>> tune_cue_directions(measure_cues("X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=80\\nK:Am\\n!p!A,4 C2|E6|]\\n"))
    {'tempo': -1, 'register': -1, 'density': -1, 'dynamics': -1, 'articulation': 0, 'mode': -1}
    """
    style = STYLES.get(cues.style or "")
    usual = _usual_quarter_bpm(style, cues.meter, config)
    usual_short = usual_short_notes(style, cues.meter)

    def side(value: float, reference: float, margin: float) -> int:
        return 0 if abs(value - reference) <= margin else (1 if value > reference else -1)

    level = DYNAMICS.index(cues.dynamics) - DYNAMICS.index(NEUTRAL_DYNAMICS)
    return {
        "tempo": side(cues.quarter_bpm, usual, usual * 0.08),
        "register": side(cues.mean_pitch or reference_pitch, reference_pitch, 2.0),
        # many running notes: more than the style's 90th percentile; few: about a note a beat
        "density": 1 if cues.short_share > usual_short else (
            -1 if cues.notes_per_beat <= config.sparse_notes_per_beat else 0),
        "dynamics": 0 if level == 0 else (1 if level > 0 else -1),
        "articulation": 1 if cues.staccato >= 0.2 else (-1 if cues.slurred >= 0.4 else 0),
        "mode": -1 if cues.minor else (1 if cues.mode else 0),
    }


def closest_moods(cues: Cues, count: int = 2, config: MoodConfig = DEFAULT_MOOD_CONFIG
                  ) -> list[tuple[str, int]]:
    """The moods whose cue directions agree most with where the tune stands (agreements
    minus disagreements), best first.

    >>> closest_moods(measure_cues("X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=80\\nK:Am\\n!p!A,4 C2|E6|]\\n"), 1)
    [('sad', 5)]
    """
    stands = tune_cue_directions(cues, config)
    scores = []
    for mood in MOODS:
        ways = cue_directions(mood.name)
        score = sum(1 if ways[c] == stands[c] else -1 for c in ways if ways[c] and stands[c])
        scores.append((mood.name, score))
    return sorted(scores, key=lambda item: -item[1])[:count]


def explain_mood(abc: str, config: MoodConfig = DEFAULT_MOOD_CONFIG) -> str:
    """Why a tune sounds as it does, from its measured cues against its style's usual.

    >>> print(explain_mood("X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=80\\nK:Am\\n!p!A,4 C2|E6|]\\n"))
    It sounds sad and melancholy: it is in A minor, whose lowered third sounds dark; it is slow for a waltz (80 beats a minute, where waltzes usually go at 120); it sits low (its notes centre on C4); it is soft (p); it has few running notes.
    >>> explain_mood("")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: there is no tune to measure (the ABC text is empty)
    """
    cues = measure_cues(abc, config)
    stands = tune_cue_directions(cues, config)
    style = STYLES.get(cues.style or "")
    usual = _usual_quarter_bpm(style, cues.meter, config)
    reasons = []
    if cues.mode:
        third = "lowered third sounds dark" if cues.minor else "major third sounds bright"
        reasons.append(f"it is in {cues.tonic} {cues.mode}, whose {third}")
    plural = (style.name + ("es" if style.name.endswith(("s", "z", "ch", "sh")) else "s")
              if style else "tunes like it")
    speed = {-1: "slow", 1: "quick", 0: "at an ordinary speed"}[stands["tempo"]]
    unmarked = "" if cues.tempo_marked else "no tempo is marked, so it plays at "
    reasons.append(f"it is {speed} for a {style.name if style else 'tune'} ({unmarked}"
                   f"{cues.quarter_bpm:g} beats a minute, where {plural} usually go at {usual:g})")
    if stands["register"]:
        reasons.append(f"it sits {'high' if stands['register'] > 0 else 'low'} (its notes "
                       f"centre {_pitch_name(cues.mean_pitch)})")
    if cues.dynamics_marked or stands["dynamics"]:
        reasons.append(f"it is {DYNAMICS_WORDS[cues.dynamics]} ({cues.dynamics})")
    if stands["articulation"] > 0:
        reasons.append("many notes are detached (staccato)")
    elif stands["articulation"] < 0:
        reasons.append("it is played smoothly (slurred)")
    if stands["density"]:
        reasons.append("it has " + ("few running notes" if stands["density"] < 0 else
                                    "many running notes"))
    ranked = [name for name, score in closest_moods(cues, 2, config) if score > 0]
    best = ranked[:1] + [name for name in ranked[1:] if not _conflict(ranked[0], name)]
    head = f"It sounds {' and '.join(best)}" if best else "Its mood is mixed"
    return head + ": " + "; ".join(reasons) + "."


def _conflict(first: str, second: str) -> bool:
    """Whether two moods pull a cue opposite ways (then only the first is named)."""
    a, b = cue_directions(first), cue_directions(second)
    return any(a[cue] * b[cue] < 0 for cue in a)


def _pitch_name(midi: float) -> str:
    """ "on D4", or "between F4 and G4" for a pitch that is no natural note."""
    names = {0: "C", 2: "D", 4: "E", 5: "F", 7: "G", 9: "A", 11: "B"}
    near = int(round(midi))
    if near % 12 in names:
        return f"on {names[near % 12]}{near // 12 - 1}"
    below, above = near - 1, near + 1
    return (f"between {names[below % 12]}{below // 12 - 1} and "
            f"{names[above % 12]}{above // 12 - 1}")
