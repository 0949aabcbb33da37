"""Understand one chat message: what the person wants, and the music they describe.

``understand(message, has_score)`` turns a message into a :class:`Request`: an *intent*
(compose a new tune, an exact edit, a creative edit, lyrics, a question, undo, ...), the
musical *attributes* the message states (key, mode, meter, tempo, length, style, mood,
instrument, lyrics, title), and for edits the parsed operations (the dataclasses of
:mod:`agent.ops`). It works by rules and the tables of :mod:`agent.vocabulary`; no model is
involved, so the same message always gives the same request, fast.

Attributes hold what the message says (and the mode a mood implies: "sad" means minor unless a
key is given). :func:`resolve` fills the rest from the style table to get everything a new tune
needs.

Key names here are English words ("in E flat", "B minor", "to F#"), not ABC: the patterns
that find a letter in a sentence stay in this module; how a key is written in ABC (its ``K:``
suffix, its signature) comes from :mod:`agent.notation`.

>>> r = understand("write a sad waltz in D minor", has_score=False)
>>> r.intent, r.attributes.tonic, r.attributes.mode, r.attributes.style
('compose', 'D', 'minor', 'waltz')
>>> resolve(r.attributes).meter
'3/4'
>>> understand("transpose it up a fifth", has_score=True).edits
(Transpose(semitones=7, to_key=None),)
>>> r = understand("make it faster", has_score=False)
>>> r.intent, r.explanation is not None
('chat', True)
>>> understand("what key is this in?", has_score=True).question
Question(kind='key', subject=None)

Whatever the text, ``understand`` returns a request and never raises; text that tries to
smuggle header fields into a title is cleaned:

>>> understand("a jig called T:x\\nK:C", has_score=False).attributes.title
'x'
>>> understand(None, has_score=False)
Traceback (most recent call last):
...
TypeError: message must be a str, not NoneType
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Callable
from fractions import Fraction

from agent.mood import MoodRequest, find_mood, mode_for
from agent.harmony_chat import chord_question, harmony_ops
from agent.notation import MODE_SUFFIX
from agent.ops import (AddVerse, Attributes, ChangeLength, ChangeMode, CreativeEdit, ExactEdit,
                       KeyName, LyricOp, MoodChange, Question, RemoveLyrics, RepeatPart, ReplaceBar,
                       ReplaceLyricLine, ReplaceLyricWord, Request, RewriteLyricLines,
                       SetInstrument, SetLyrics, SetPartWords, SetTempo, SetTitle, Span, Transpose,
                       WriteLyrics)
from agent.song_form import part_words_request, song_request, strip_form_words
from agent.styles import BY_NAME as STYLE_TABLE
from agent.styles import beat_unit, usual_bpm
from agent.vocabulary import (DEFAULT_TONIC, GLOSSARY_TOPICS, GREETINGS, HELP_TEXT, INSTRUMENTS,
                              INSTRUMENT_EMOJI, INTERVALS, METER_NAMES, MODE_ABBREVIATIONS,
                              MODE_WORDS, NEEDS_SCORE, NEGATED_TEMPO,
                              NUMBER_WORDS, ORDINALS, PERFECT_INTERVALS, QUALITY_SHIFT,
                              QUESTION_PATTERNS, STYLE_FORMS, STYLE_WORDS, SUNG_STYLES,
                              TEMPO_TERMS, TEMPO_WORDS)

# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnderstandConfig:
    """Settings of the understanding stage."""

    max_chars: int = field(default=4000, metadata={
        "help": "only this many characters of a message are examined (the rest is ignored)"})
    max_abc_chars: int = field(default=100_000, metadata={
        "help": "pasted ABC longer than this is cut off (and the request marked truncated)"})
    max_title_chars: int = field(default=60, metadata={"help": "longest title kept"})
    max_theme_chars: int = field(default=80, metadata={"help": "longest lyrics theme kept"})
    max_lyrics_chars: int = field(default=2000, metadata={"help": "longest own lyrics kept"})
    faster: float = field(default=1.2, metadata={"help": "tempo factor for 'faster'"})
    a_bit_faster: float = field(default=1.1, metadata={"help": "tempo factor for 'a bit faster'"})
    much_faster: float = field(default=1.4, metadata={"help": "tempo factor for 'much faster'"})
    default_transpose: int = field(default=2, metadata={
        "help": "semitones for 'higher'/'lower' said with no interval"})
    lengthen_bars: int = field(default=8, metadata={"help": "bars added for 'make it longer'"})
    shorten_bars: int = field(default=4, metadata={"help": "bars removed for 'make it shorter'"})
    short_bars: int = field(default=8, metadata={"help": "length of a 'short' tune"})
    long_bars: int = field(default=32, metadata={"help": "length of a 'long' tune"})
    default_bars: int = field(default=16, metadata={"help": "length when nothing says"})
    default_meter: str = field(default="4/4", metadata={"help": "meter when nothing says"})
    default_bpm: int = field(default=100, metadata={
        "help": "speed when neither style nor words say, in quarter notes a minute (a 6/8 "
                "tune gets the same speed in dotted quarters: 67)"})


DEFAULT_CONFIG = UnderstandConfig()

# --------------------------------------------------------------------------------------------
# Preparing the text
# --------------------------------------------------------------------------------------------

_PUNCTUATION_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
    "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2010": "-", "\u2011": "-", "\u266d": "b", "\u266f": "#", "\u266e": "", "\t": " ",
    "\u00a0": " ",
})


def _prepare(message: str, limit: int) -> tuple[str, bool]:
    """NFKC-normalised text with plain quotes and dashes and no control characters, capped."""
    truncated = len(message) > limit
    text = unicodedata.normalize("NFKC", message[: limit * 2])[:limit]
    text = text.translate(_PUNCTUATION_MAP).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c)[0] != "C")
    return text, truncated


def _lower(text: str) -> str:
    """Lower-case text of exactly the same length, so match offsets agree with ``text``."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _mask(text: str, start: int, end: int) -> str:
    """``text`` with ``[start, end)`` blanked (same length, so offsets still agree)."""
    return text[:start] + " " * (end - start) + text[end:]


_UNSAFE_FIELD = re.compile(r"(?:(?<=^)|(?<=[\s\[(]))[A-Za-z]:\s*")


def clean_line(text: str, limit: int) -> str | None:
    """One safe line of text for a header field or a prompt: no '%', no field syntax, capped.

    >>> clean_line('  "The  Rose%" ', 60)
    'The Rose'
    >>> clean_line("T:x", 60)
    'x'
    >>> clean_line("%%%", 60) is None
    True
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = line.replace("%", " ").replace("\\", " ").replace("[", " ").replace("]", " ")
    line = _UNSAFE_FIELD.sub(" ", line)
    line = " ".join(line.split()).strip(" \"'.,;:!?-")
    if len(line) > limit:
        cut = line[:limit].rsplit(" ", 1)[0]
        line = cut if cut else line[:limit]
    return line or None


def _clean_lyrics(text: str, limit: int) -> str | None:
    """The person's own lyrics: lines kept, '%' and field prefixes ("w:") taken out."""
    lines = []
    for raw in text[:limit].splitlines():
        line = re.sub(r"^\s*[A-Za-z]:\s*", "", raw).replace("%", " ").replace("\\", " ")
        line = " ".join(line.split()).strip('"')
        if line:
            lines.append(line)
    return "\n".join(lines) or None


# --------------------------------------------------------------------------------------------
# Finding single facts
# --------------------------------------------------------------------------------------------

_UNIT_WORDS = "one|two|three|four|five|six|seven|eight|nine"
_NUMBER = (r"\d{1,3}|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
           rf"(?:[- ](?:{_UNIT_WORDS}))?|a dozen|a couple of|a few|a single|"
           r"eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|ten|"
           rf"{_UNIT_WORDS}|an?")


def parse_number(word: str) -> int | None:
    """A number written in digits or words ("16", "sixteen", "thirty-two", "a").

    >>> parse_number("thirty-two"), parse_number("16"), parse_number("a")
    (32, 16, 1)
    >>> parse_number("many") is None
    True
    """
    word = word.strip().lower()
    if word.isdigit():
        return int(word)
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    parts = re.split(r"[- ]", word)
    if len(parts) == 2 and parts[0] in NUMBER_WORDS and parts[1] in NUMBER_WORDS:
        tens, units = NUMBER_WORDS[parts[0]], NUMBER_WORDS[parts[1]]
        if tens >= 20 and tens % 10 == 0 and units < 10:
            return tens + units
    return None


_ACCIDENTAL = (r"(?:\s?-?\s?(?:flat|sharp)\b|"
               r"[b#](?=(?:m|maj|min|dor|mix|lyd|phr|aeo|ion|loc)?(?![a-z])))")
_MODE_FULL = r"major|minor|maj|min|dorian|mixolydian|lydian|phrygian|aeolian|ionian|locrian"
_KEY = re.compile(
    r"(?<![\w'#/])(?P<letter>[A-Ga-g])(?P<acc>" + _ACCIDENTAL + r")?"
    r"(?:(?P<abbr>m|dor|mix|lyd|phr|aeo|ion|loc)\b|[\s-]?(?P<mode>" + _MODE_FULL + r")\b)?"
    r"(?![\w#])"
)
_KEY_CONTEXT = re.compile(r"(?:\bin|\bkey of|\bto|\binto|\bfrom|\bkey|\bkey:|\bsignature of)"
                          r"\s+(?:the\s+key\s+of\s+)?$")
_ARTICLE_FOLLOWERS = re.compile(r"\s+(?:key|keys|mode|scale|tonality|feel|flavou?r|sound|tune"
                                r"|melody|piece|song|version|third|sixth|seventh|second|chord)")


def _find_keys(text: str) -> list[tuple[int, int, KeyName]]:
    """Every key named in ``text``: (start, end, key). A plain letter counts only where the
    words around it make it a key ("in G", "key of D", "waltz g 3/4"); "a minor tune" is an
    article and a mode, not A minor."""
    low = _lower(text)
    found = []
    for m in _KEY.finditer(text):
        if _names_a_key(text, low, m):
            found.append((m.start(), m.end(), _key_from_match(m)))
    return found


def _names_a_key(text: str, low: str, m: re.Match[str]) -> bool:
    """Whether one match of ``_KEY`` is really a key, judged by the words around it."""
    letter, acc, abbr, mode_word = m.group("letter", "acc", "abbr", "mode")
    after = low[m.end(): m.end() + 16]
    terse = bool(re.match(r"\s+\d{1,2}/\d{1,2}\s*(?:$|[,.;!?]|please|thanks)", low[m.end():]))
    in_context = terse or bool(_KEY_CONTEXT.search(low[max(0, m.start() - 24): m.start()]))
    if abbr and letter.islower() and not in_context:
        return False  # "am", "em": words, not keys
    if abbr == "m" and re.match(r"\s+i\b", after):
        return False  # "Am I ..."
    if not (acc or abbr or mode_word or in_context):
        return False  # a bare letter needs "in", "key of", ...
    if acc and letter.islower() and not (abbr or mode_word or in_context):
        return False  # "b flat" alone in a sentence is too weak
    if mode_word and re.match(r"\s+(?:third|sixth|seventh|second|chord)", after):
        return False  # "a minor third" is an interval
    if letter in "aA" and not acc and not abbr and not terse:
        before = text[: m.start()].rstrip()
        article = letter == "a" or not before or before[-1] in ".!?\n"
        if article and mode_word and (not in_context or _ARTICLE_FOLLOWERS.match(after)):
            return False  # "a minor tune", "A minor waltz please", "in a minor key"
        if not mode_word and letter == "a" and not re.match(
                r"\s*(?:$|[,.;!?)]|\s(?:and|please|at|with|for)\b)", after):
            return False  # "in a slow tempo"; "in a, please" is A
    return True


def _key_from_match(m: re.Match[str]) -> KeyName:
    letter, acc, abbr, mode_word = m.group("letter", "acc", "abbr", "mode")
    accidental = (acc or "").strip(" -").lower()
    tonic = letter.upper() + {"b": "b", "flat": "b", "#": "#", "sharp": "#"}.get(accidental, "")
    if mode_word:
        return KeyName(tonic, MODE_WORDS[mode_word.lower()])
    return KeyName(tonic, MODE_ABBREVIATIONS.get(abbr or ""))


def parse_key(text: str) -> KeyName | None:
    """The first key named in ``text``, or None.

    >>> parse_key("in b-flat major")
    KeyName(tonic='Bb', mode='major')
    >>> parse_key("F# minor"), parse_key("Ador")
    (KeyName(tonic='F#', mode='minor'), KeyName(tonic='A', mode='dorian'))
    >>> parse_key("a minor tune") is None
    True
    """
    text = _prepare(text, 200)[0]
    keys = _find_keys(text)
    if keys:
        return keys[0][2]
    whole = _find_keys("in " + text.strip())
    if whole and whole[0][1] == len(text.strip()) + 3:
        return whole[0][2]
    return None


_LONE_MODE = re.compile(
    r"\b(?P<mode>major|minor|dorian|mixolydian|lydian|phrygian|aeolian|ionian|locrian)\b"
    r"(?!\s+(?:second|third|sixth|seventh|ninth|2nd|3rd|6th|7th|chord|change|problem|issue))"
)


def _find_lone_mode(low: str) -> tuple[int, int, str] | None:
    """A mode named without a tonic: "in a minor key", "something dorian"."""
    m = _LONE_MODE.search(low)
    return (m.start(), m.end(), m.group("mode")) if m else None


_METER_FRACTION = re.compile(r"(?<![\d/=])(?P<n>\d{1,2})\s*/\s*(?P<d>1|2|4|8|16)(?![\d/]|\s*=)")
_METER_DASH = re.compile(
    r"(?<![\d/-])(?P<n>2|3|4|5|6|7|9|12)\s*-\s*(?P<d>2|4|8)(?![\d-])"
    r"(?=\s*(?:time|meter|metre|signature|rhythm|feel)|\s*$|\s*[,.;!?])"
)
_METER_WORDS = re.compile(
    r"\b(?P<n>two|three|four|five|six|seven|nine|twelve)[\s-](?P<d>two|four|eight)"
    r"(?:\s+(?:time|meter|metre|rhythm))?\b"
)


def _find_meter(low: str) -> tuple[int, int, str] | None:
    """The meter a message names: "5/4", "6-8 time", "three-four", "common time"."""
    for name, meter in sorted(METER_NAMES.items(), key=lambda kv: -len(kv[0])):
        m = re.search(rf"\b{name}\b", low)
        if m:
            return m.start(), m.end(), meter
    m = _METER_FRACTION.search(low)
    if m:
        return m.start(), m.end(), f"{int(m.group('n'))}/{m.group('d')}"
    m = _METER_DASH.search(low)
    if m and not re.search(r"\b(?:bars?|measures?)\s*$", low[: m.start()]):
        return m.start(), m.end(), f"{m.group('n')}/{m.group('d')}"
    m = _METER_WORDS.search(low)
    if m and (m.group(0).endswith(("time", "meter", "metre", "rhythm")) or "-" in m.group(0)):
        if not re.match(r"\s*(?:bars?|measures?|beats?|notes?)", low[m.end():]):
            return m.start(), m.end(), f"{NUMBER_WORDS[m.group('n')]}/{NUMBER_WORDS[m.group('d')]}"
    return None


_BPM = (
    re.compile(r"(?P<n>\d{2,3})\s*(?:bpm|b\.p\.m\.?|beats? (?:per|a) minute)"),
    re.compile(r"\btempo\b[^\d\n]{0,20}?(?P<n>\d{2,3})\b(?!\s*(?:%|percent|bars?))"),
    re.compile(r"(?:\bq|♩|\b1/4|\b3/8|\b1/2|\b3/4|\b1/8)\s*=\s*(?P<n>\d{2,3})\b"),
    re.compile(r"\bat\s+(?:about\s+|around\s+)?(?P<n>\d{2,3})\b"
               r"(?!\s*(?:bars?|measures?|%|percent))"),
)


def _find_bpm(low: str) -> tuple[int, int, int] | None:
    """A speed given as a number: "at 90 bpm", "90bpm", "tempo 100", "q=120"."""
    for pattern in _BPM:
        m = pattern.search(low)
        if m and 20 <= int(m.group("n")) <= 400:
            return m.start(), m.end(), int(m.group("n"))
    return None


_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bwithout|\bless)\s+(?:too\s+|so\s+|very\s+|"
                       r"overly\s+|that\s+|particularly\s+)?$")


def _find_tempo_word(low: str) -> tuple[int, int, str] | None:
    """A speed in words: an Italian term ("allegro") or a plain word ("slow", "lively")."""
    for term in TEMPO_TERMS:
        m = re.search(rf"\b{term}\b", low)
        if m:
            return m.start(), m.end(), term
    for word in sorted(TEMPO_WORDS, key=len, reverse=True):
        m = re.search(rf"\b{re.escape(word)}\b(?!-)", low)
        if not m:
            continue
        if word == "slow" and re.match(r"\s+air", low[m.end():]):
            continue  # "slow air" is a style; its usual speed is already slow
        if re.match(r"\s+(?:it\s+|this\s+|things\s+)?down\b", low[m.end():]) or re.search(
                r"\b(?:how|as)\s+$", low[: m.start()]):
            continue  # "slow it down", "twice as fast", "how fast": no speed word
        if _NEGATION.search(low[: m.start()]):
            return m.start(), m.end(), NEGATED_TEMPO.get(word, "moderate")
        return m.start(), m.end(), word
    return None


_BARS = re.compile(rf"(?<![\w-])(?P<n>{_NUMBER})(?:\s*-\s*|\s+)(?:bars?|measures?)\b")
_SPAN_WORDS_BEFORE = re.compile(r"\b(?:first|last|final|opening|closing|next|those|these|the|"
                                r"add|another|more|remove|cut|drop|delete|extra|by)\s+$")


def _find_bars(low: str, config: UnderstandConfig) -> tuple[int, int, int] | None:
    """The length asked for: "16 bars", "a 12 bar tune", "sixteen measures", "short", "long"."""
    for m in _BARS.finditer(low):
        before = low[: m.start()]
        if _SPAN_WORDS_BEFORE.search(before) or re.search(r"\bbars?\s+$", before):
            continue
        n = parse_number(m.group("n"))
        if n and 1 < n <= 256:
            return m.start(), m.end(), n
    m = re.search(r"\b(?:short|shortish|brief)\b(?!\s*(?:er|of|bars?))", low)
    if m and not re.search(r"\b(?:too|not)\s+$", low[: m.start()]):
        return m.start(), m.end(), config.short_bars
    m = re.search(r"\blong\b(?!\s+(?:as|ago|road|way|time|for|journey|notes?|note))", low)
    if m and not re.search(r"\b(?:how|as|so|too|not|all night|day)\s+$", low[: m.start()]):
        return m.start(), m.end(), config.long_bars
    return None


def _words_pattern(words: list[str] | tuple[str, ...], plural: bool = True) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"[\s-]") for w in
                            sorted(words, key=len, reverse=True))
    suffix = r"(?:e?s)?" if plural else ""
    return re.compile(rf"(?<![\w-])(?P<word>{alternatives}){suffix}(?![\w-])")


_STYLE_RE = _words_pattern(list(STYLE_WORDS))
_INSTRUMENT_RE = _words_pattern(list(INSTRUMENTS))


def _find_style(low: str) -> tuple[int, int, str] | None:
    """The style named: "waltz", "slip jig", "slow air", "hornpipes"."""
    for m in _STYLE_RE.finditer(low):
        word = re.sub(r"[\s-]+", " ", m.group("word"))
        before = low[max(0, m.start() - 12): m.start()]
        if word == "air" and re.search(r"\b(?:the|fresh|open|hot|on|mid)\s+$", before):
            continue
        if word == "march" and re.search(r"\b(?:in|of|since|until|early|late)\s+$", before):
            continue
        if word in ("slide", "fling", "lament") and re.search(r"\b(?:the|a)\s+$", before) is None \
                and not re.search(r"\b(?:an?|slow)\s+$", before):
            continue
        if re.match(r"\s+(?:time|tempo|rhythm)\b", low[m.end():]):
            continue  # "in waltz time" is a meter
        return m.start(), m.end(), STYLE_WORDS.get(word, word)
    return None


def _find_instrument(text: str, low: str) -> tuple[int, int, str] | None:
    """The instrument named ("for fiddle", "on the tin whistle", "a piano piece", an emoji)."""
    for emoji, name in INSTRUMENT_EMOJI.items():
        position = text.find(emoji)
        if position >= 0:
            return position, position + len(emoji), name
    for m in _INSTRUMENT_RE.finditer(low):
        word = re.sub(r"[\s-]+", " ", m.group("word"))
        if word == "voice" and re.search(r"\b(?:v:|second|third|two|inner)\s*$", low[: m.start()]):
            continue
        if word in ("horn", "bells", "brass", "strings", "whistle") and \
                re.match(r"\s+(?:of|ringing|chimed)\b", low[m.end():]):
            continue
        return m.start(), m.end(), word
    return None


def _mood_values(text: str, mode_named: bool) -> dict[str, object]:
    """The mood fields of :class:`Attributes` from :func:`agent.mood.find_mood`, and under
    "mood_mode" the mode the mood suggests when the message named none."""
    request = find_mood(text)
    if request is None or request.word in TEMPO_WORDS and not request.comparative:
        return {}  # "a lively jig" asks for a speed
    values: dict[str, object] = {"mood_unknown": request.unknown or None}
    if request.mood is None:
        return values
    values.update(mood=request.mood if request.comparative else request.word,
                  mood_intensity=request.intensity, mood_comparative=request.comparative)
    if not mode_named:
        values["mood_mode"] = mode_for(request)
    return values


def mood_request(attrs: Attributes) -> MoodRequest | None:
    """The mood a request's attributes ask for, as :mod:`agent.mood` takes it (None: none).

    >>> mood_request(understand("a very sad waltz", has_score=False).attributes).intensity
    1.5
    >>> mood_request(Attributes()) is None
    True
    """
    if attrs.mood is None:
        return None
    return MoodRequest(find_mood(attrs.mood).mood, attrs.mood_intensity or 1.0,
                       attrs.mood_comparative, attrs.mood)


# --------------------------------------------------------------------------------------------
# Free text: titles, lyrics, themes
# --------------------------------------------------------------------------------------------

_TITLE_INTRO = (r"\b(?:called|titled|entitled|named|call(?:ed)? it|title it|name it|"
                r"rename(?: it)?(?: to)?|retitle(?: it)?(?: to)?|"
                r"(?:change|set|make) the (?:title|name)(?: of (?:it|the tune))? to|"
                r"(?:the )?(?:title|name) (?:should be|is|will be|=)|(?:the )?title:|"
                r"with the title|give it the (?:title|name))")
_TITLE_QUOTED = re.compile(_TITLE_INTRO + r"\s*[:\-]?\s*(?P<q>[\"'])(?P<title>.+?)(?P=q)",
                           re.IGNORECASE | re.DOTALL)
_TITLE_PLAIN = re.compile(
    _TITLE_INTRO + r"\s*[:\-]?\s*(?P<title>[^\n,;!?]+?)"
    r"(?=$|\n|[,;!?]|\.(?:\s|$)|\s+(?:and (?:make|put|play|transpose|add|set|change|use|give)|"
    r"with (?:lyrics|words|a |an |repeats|chords)|please|at \d|in (?:the key|[A-G]\b|\d)|"
    r"for (?:the )?(?:" + "|".join(sorted(INSTRUMENTS, key=len, reverse=True)) + r")\b))",
    re.IGNORECASE)

_LYRICS_TEXT = re.compile(
    r"\b(?:(?:use|set|sing|take|put|with|here are|these are)\s+)?(?:these|the following|my|"
    r"following|my own)\s+(?:words|lyrics|verses?|lines)(?:\s+to\s+(?:it|the tune|music))?"
    r"\s*(?:[:\-]|\n)\s*(?P<text>.+)$|\b(?:lyrics|words)\s*:\s*(?P<text2>.+)$",
    re.IGNORECASE | re.DOTALL)
_LYRICS_QUOTED = re.compile(
    r"\b(?:set|use|sing|put)\s+(?:these\s+|the\s+)?(?:words|lyrics)?\s*(?P<q>\")(?P<text>.+?)\"",
    re.IGNORECASE | re.DOTALL)

_THEME = re.compile(
    r"(?<!how )(?<!what )\b(?:about|on the (?:theme|subject) of|celebrating|describing|"
    r"telling of|inspired by)\s+(?!\d|around\b|a minute\b|the same\b)(?P<theme>.+?)"
    r"(?=$|\n|[,;!?()]|\.(?:\s|$)|\s+(?:"
    r"in (?:the key|[A-Ga-g]\b|[A-Ga-g][b#]|\d|a (?:major|minor)\b|"
    r"common|cut|waltz time)|at (?:\d|about \d|a (?:slow|fast|lively|brisk|gentle))|"
    r"with (?:lyrics|words|chords|repeats)|for (?:a |an |the )?(?:solo |two )?(?:"
    + "|".join(sorted(INSTRUMENTS, key=len, reverse=True)) + r")|please|but|using|which|"
    r"that (?:is|isn't)|and (?:make|put|use|add|set|play|in|at|with|call)|called|titled|named)\b)",
    re.IGNORECASE)
_LYRICS_WORD = re.compile(r"\b(?:lyrics?|words|verses?|sung|sing|singing|singable|vocals?|"
                          r"sing-along|singalong)\b")
_NO_LYRICS = re.compile(r"\b(?:no|without|instrumental|w/o)\s+(?:any\s+)?(?:lyrics|words|vocals)\b|"
                        r"\binstrumental\b")


@dataclass(frozen=True)
class _FreeText:
    title: str | None = None
    lyrics_text: str | None = None
    theme: str | None = None
    masked: str = ""


def _free_text(text: str, config: UnderstandConfig) -> _FreeText:
    """Titles, the person's own lyrics and the theme, taken out of the text first so that the
    words in them ("The Long Road in G") are not read as attributes."""
    masked = text
    title = lyrics_text = theme = None
    m = _LYRICS_TEXT.search(masked) or _LYRICS_QUOTED.search(masked)
    if m:
        raw = m.group("text") if m.groupdict().get("text") is not None else m.group("text2")
        lyrics_text = _clean_lyrics(raw, config.max_lyrics_chars)
        masked = _mask(masked, m.start(), m.end())
    m = _TITLE_QUOTED.search(masked) or _TITLE_PLAIN.search(masked)
    if m:
        title = clean_line(m.group("title"), config.max_title_chars)
        closing_quote = 1 if m.groupdict().get("q") else 0
        masked = _mask(masked, m.start("title"), m.end("title") + closing_quote)
    m = _THEME.search(masked)
    if m:
        theme = clean_line(m.group("theme"), config.max_theme_chars)
        masked = _mask(masked, m.start("theme"), m.end("theme"))
    return _FreeText(title, lyrics_text, theme, masked)


# --------------------------------------------------------------------------------------------
# Attributes of a new tune
# --------------------------------------------------------------------------------------------


def _attributes(text: str, free: _FreeText, config: UnderstandConfig) -> Attributes:
    """Every musical fact the (masked) text states."""
    low = _lower(text)
    values: dict[str, object] = {"title": free.title, "lyrics_text": free.lyrics_text}
    inferred: list[str] = []
    keys = _find_keys(text)
    if keys:
        # "from D to E minor": the key named last is the one wanted
        key = keys[-1][2] if len(keys) > 1 and re.search(r"\bfrom\b", low) else keys[0][2]
        values["tonic"] = key.tonic
        values["mode"] = key.mode or "major"
        if key.mode is None:
            inferred.append("mode")
    else:
        lone = _find_lone_mode(low)
        if lone:
            values["mode"] = lone[2]
    meter = _find_meter(low)
    if meter:
        values["meter"] = meter[2]
    bpm = _find_bpm(low)
    if bpm:
        values["tempo_bpm"] = bpm[2]
    tempo_word = _find_tempo_word(low)
    if tempo_word:
        values["tempo_word"] = tempo_word[2]
        if tempo_word[2] in TEMPO_TERMS and not bpm:
            values["tempo_bpm"] = TEMPO_TERMS[tempo_word[2]][2]
    bars = _find_bars(low, config)
    if bars:
        values["bars"] = bars[2]
    style = _find_style(low)
    if style:
        values["style"] = style[2]
        values["form"] = STYLE_FORMS.get(style[2], (None, None))[1]
    values.update(_mood_values(text, "mode" in values))
    if "mode" not in values and values.get("mood_mode"):
        inferred.append("mode")
    values["mode"] = values.pop("mood_mode", None) or values.get("mode")
    instrument = _find_instrument(text, low)
    if instrument:
        values["instrument"] = instrument[2]
        values["program"] = INSTRUMENTS[instrument[2]]
    wants_words = bool(_LYRICS_WORD.search(low)) or bool(free.lyrics_text) or bool(
        free.theme and (re.search(r"\bsongs?\b", low) or values.get("style") in SUNG_STYLES))
    if _NO_LYRICS.search(low):
        wants_words = False
    values["lyrics"] = wants_words
    values["lyrics_theme"] = free.theme
    return Attributes(**values, inferred=tuple(inferred))


def resolve(attrs: Attributes, config: UnderstandConfig = DEFAULT_CONFIG) -> Attributes:
    """Everything a new tune needs, from what was asked plus the style table and defaults.

    Speed words scale the style's usual speed and are kept within a range that still means
    the word ("a fast reel" stays a playable reel). Filled fields are added to ``inferred``.

    >>> a = resolve(understand("a slow waltz in C", has_score=False).attributes)
    >>> a.meter, a.tempo_bpm, a.bars, a.form
    ('3/4', 84, 16, 'AABB')
    >>> resolve(Attributes(mode="minor")).tonic
    'E'
    >>> resolve(Attributes(mode="hypodorian"))
    Traceback (most recent call last):
    ...
    ValueError: unknown mode: 'hypodorian'
    """
    if attrs.mode is not None and attrs.mode not in MODE_SUFFIX:
        raise ValueError(f"unknown mode: {attrs.mode!r}")
    style = STYLE_TABLE.get(attrs.style or "")
    filled: dict[str, object] = {}
    if attrs.mode is None:
        filled["mode"] = "major"
    mode = attrs.mode or "major"
    if attrs.tonic is None:
        filled["tonic"] = DEFAULT_TONIC[mode]
    if attrs.meter is None:
        filled["meter"] = style.meters[0] if style else config.default_meter
    meter = attrs.meter or filled["meter"]
    if attrs.tempo_bpm is None:
        try:
            beat = beat_unit(meter)
            base = usual_bpm(style, meter) if style else None
        except ValueError:
            beat, base = Fraction(1, 4), style.bpm if style else None
        base = base or float(config.default_bpm * Fraction(1, 4) / beat)
        if attrs.tempo_word in TEMPO_WORDS:
            factor, low, high = TEMPO_WORDS[attrs.tempo_word]
            base = min(max(base * factor, low), high)
        filled["tempo_bpm"] = int(round(base))
    if attrs.bars is None:
        filled["bars"] = STYLE_FORMS.get(attrs.style or "", (config.default_bars, None))[0]
    if attrs.form is None and attrs.style in STYLE_FORMS:
        filled["form"] = STYLE_FORMS[attrs.style][1]
    if attrs.instrument and attrs.program is None:
        filled["program"] = INSTRUMENTS.get(attrs.instrument)
    if attrs.title is None:
        filled["title"] = _default_title(attrs)
    inferred = attrs.inferred + tuple(k for k in filled if k not in attrs.inferred)
    return replace(attrs, **filled, inferred=inferred)


def _default_title(attrs: Attributes) -> str:
    """A plain title from what the tune is: "The Sad Waltz", "Autumn Leaves", "A Tune in D"."""
    if attrs.lyrics_theme:
        theme = re.sub(r"^(?:the|a|an|my|our)\s+", "", attrs.lyrics_theme, flags=re.IGNORECASE)
        return clean_line(theme.title(), 60) or "A Song"
    words = [w for w in (attrs.mood, attrs.style) if w]
    if words:
        return "The " + " ".join(w.title() for w in words)
    if attrs.tonic:
        return f"A Tune in {attrs.tonic}"
    return "A New Tune"


def tempo_beat(meter: str) -> str:
    """The note value the tempo counts for ``meter``, as a ``Q:`` unit ("1/4", "3/8", "1/2").

    >>> tempo_beat("6/8"), tempo_beat("3/4"), tempo_beat("2/2"), tempo_beat("C|")
    ('3/8', '1/4', '1/2', '1/2')
    >>> tempo_beat("waltz")
    Traceback (most recent call last):
    ...
    ValueError: not a meter: 'waltz'
    """
    unit = beat_unit(meter)
    return f"{unit.numerator}/{unit.denominator}"


# --------------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------------

_UP = r"\b(?:up|upward|upwards|higher|raise|raised|above)\b"
_DOWN = r"\b(?:down|downward|downwards|lower|lowered|drop|below)\b"
_INTERVAL_RE = re.compile(
    rf"\b(?:(?P<count>{_NUMBER})\s+)?(?:(?P<quality>perfect|major|minor|augmented|aug|"
    r"diminished|dim)\s+)?(?P<interval>half[\s-]steps?|half[\s-]?tones?|whole[\s-]steps?|"
    r"whole[\s-]tones?|semi-?tones?|tones?|steps?|seconds?|thirds?|fourths?|tritones?|fifths?|"
    r"sixths?|sevenths?|octaves?|ninths?|unisons?)\b"
)


def _interval(low: str, config: UnderstandConfig) -> int | None:
    """Semitones of a transposition said in words: "up a fifth", "down 3 semitones"."""
    up, down = re.search(_UP, low), re.search(_DOWN, low)
    m = _INTERVAL_RE.search(low)
    if not m:
        if re.search(r"\b(?:higher|lower)\b|\btranspose\b.*\b(?:up|down)\b", low):
            return (-1 if down and not up else 1) * config.default_transpose
        return None
    if not (up or down) and not re.search(r"\btranspos", low):
        return None
    name = re.sub(r"s$", "", re.sub(r"[\s-]+", " ", m.group("interval")))
    name = {"semi tone": "semitone", "halftone": "half tone"}.get(name, name)
    semitones = INTERVALS[name]
    quality = m.group("quality")
    if quality:
        shift = QUALITY_SHIFT[quality]
        if quality in ("diminished", "dim") and name not in PERFECT_INTERVALS:
            shift = -2
        semitones += shift
    if name in ("semitone", "half step", "half tone", "whole step", "whole tone", "tone",
                "step", "octave"):
        semitones *= parse_number(m.group("count") or "") or 1
    sign = -1 if down and (not up or down.start() < up.start()) else 1
    return sign * semitones


_FASTER = re.compile(r"\b(?:faster|quicker|speed (?:it |this |things )?up|speed up|"
                     r"pick up the (?:pace|tempo)|up the tempo|increase the tempo|"
                     r"more up-?tempo|livelier|more lively|hurry it up|less slow)\b")
_SLOWER = re.compile(r"\b(?:slower|slow (?:it |this |things )?down|slow down|"
                     r"decrease the tempo|reduce the tempo|bring the tempo down|calmer tempo|"
                     r"more slowly|less fast|take it easier|relax the tempo)\b")
_A_BIT = re.compile(r"\b(?:a (?:bit|little|touch|tad|little bit)|slightly|somewhat|a bit more|"
                    r"just a bit)\s+$")
_A_BIT_AFTER = re.compile(r"^\s*(?:just\s+)?(?:a (?:bit|little|touch|tad|little bit)|slightly)\b")
_MUCH_AFTER = re.compile(r"^\s*(?:a lot|by a lot|lots|a great deal|considerably)\b")
_MUCH = re.compile(r"\b(?:much|a lot|way|lots|far|a great deal|really|very much|a good deal)\s+$")
_PERCENT = re.compile(r"(?P<n>\d{1,3})\s*(?:%|percent|per cent)\s+(?P<dir>faster|quicker|slower)")


def _tempo_edit(low: str, config: UnderstandConfig) -> SetTempo | None:
    """A change of speed: "faster", "a bit slower", "at 90 bpm", "20% faster", "allegro"."""
    bpm = _find_bpm(low)
    if bpm:
        return SetTempo(bpm=bpm[2])
    m = _PERCENT.search(low)
    if m:
        change = int(m.group("n")) / 100
        factor = 1 + change if m.group("dir") != "slower" else max(0.1, 1 - change)
        return SetTempo(factor=round(factor, 3))
    if re.search(r"\b(?:twice as fast|double (?:the )?(?:tempo|speed)|double[- ]time)\b", low):
        return SetTempo(factor=2.0)
    if re.search(r"\b(?:half (?:the )?(?:speed|tempo)|half as fast|twice as slow|half-time|"
                 r"half time)\b", low):
        return SetTempo(factor=0.5)
    for pattern, up in ((_FASTER, True), (_SLOWER, False)):
        m = pattern.search(low)
        if m:
            factor = config.faster
            if _A_BIT.search(low[: m.start()]) or _A_BIT_AFTER.search(low[m.end():]):
                factor = config.a_bit_faster
            elif _MUCH.search(low[: m.start()]) or _MUCH_AFTER.search(low[m.end():]):
                factor = config.much_faster
            return SetTempo(factor=factor if up else round(1 / factor, 3))
    word = _find_tempo_word(low)
    if word and word[2] in TEMPO_TERMS:
        return SetTempo(bpm=TEMPO_TERMS[word[2]][2])
    if word and re.search(r"\b(?:make|play|take|keep|set|have) (?:it|this|the tune)\b", low):
        factor = TEMPO_WORDS[word[2]][0]
        if factor != 1.0:
            return SetTempo(factor=factor)
    return None


def _find_span(low: str) -> Span | None:
    """The part of the tune an edit is about: "bars 5-8", "the B part", "the ending"."""
    m = re.search(r"\b(?:bars?|measures?)\s+(?P<a>\d{1,3})\s*(?:-|to|through|thru|and|until)\s*"
                  r"(?P<b>\d{1,3})\b", low)
    if m:
        a, b = int(m.group("a")), int(m.group("b"))
        return Span("bars", min(a, b), max(a, b))
    m = re.search(r"\b(?:bar|measure)\s+(?P<a>\d{1,3})\b|\bthe (?P<o>first|second|third|fourth|"
                  r"fifth|sixth|seventh|eighth|last|final) (?:bar|measure)\b", low)
    if m:
        n = int(m.group("a")) if m.group("a") else ORDINALS[m.group("o")]
        if n < 0:
            return Span("ending", end=1)
        return Span("bars", n, n)
    m = re.search(rf"\b(?P<w>first|opening|last|final|closing)\s+(?P<n>{_NUMBER}|few|couple of)\s+"
                  r"(?:bars|measures)\b", low)
    if m:
        n = parse_number(m.group("n")) or (3 if "few" in m.group("n") else 2)
        if m.group("w") in ("first", "opening"):
            return Span("bars", 1, n)
        return Span("ending", end=n)
    m = re.search(r"\b(?P<w>first|second|last|other)\s+half\b", low)
    if m:
        return Span("half", part="first" if m.group("w") == "first" else "second")
    m = re.search(r"\b(?:the\s+)?(?P<p>[abc])[\s-]+(?:part|section|strain|music)\b|"
                  r"\bpart\s+(?P<q>[abc])\b", low)
    if m:
        return Span("part", part=(m.group("p") or m.group("q")).upper())
    m = re.search(r"\b(?P<o>first|second|third|last) (?:part|section|strain)\b", low)
    if m:
        part = {"first": "A", "second": "B", "third": "C", "last": "last"}[m.group("o")]
        return Span("part", part=part)
    if re.search(r"\bthe turn\b", low):  # in Irish music the B part is "the turn"
        return Span("part", part="B")
    if re.search(r"\b(?:ending|the end|last bars|final bars|finish|cadence|last few bars|"
                 r"close|outro)\b", low):
        return Span("ending")
    if re.search(r"\b(?:beginning|the start|opening|intro|first (?:few )?bars|start of)\b", low):
        return Span("beginning")
    if re.search(r"\bmiddle\b", low):
        return Span("middle")
    return None


_ABC_BAR_CHARS = re.compile(r"^[A-Ga-gzxZ^_=,'0-9/<>()\[\]{}\-.~|:\s]+$")


def _looks_like_abc(text: str) -> bool:
    """Whether the text a person typed for a bar is ABC notes ("A2 Bc d2|"), not words."""
    stripped = re.sub(r'"[^"]*"|![^!]*!', "", text).strip()
    return bool(stripped) and bool(_ABC_BAR_CHARS.match(stripped)) and bool(
        re.search(r"[A-Ga-gzx]", stripped))


_REPLACE_BAR = re.compile(
    r"\b(?:replace|change|set|make|rewrite|swap)\s+(?:the\s+)?(?:bar|measure)\s+(?P<n>\d{1,3})\s+"
    r"(?:with|to|by|into|as|for)\s*:?\s*(?P<abc>.+)$|"
    r"\b(?:bar|measure)\s+(?P<n2>\d{1,3})\s+(?:should be|=|becomes|is now)\s*:?\s*(?P<abc2>.+)$|"
    r"\b(?:bar|measure)\s+(?P<n3>\d{1,3})\s*:\s*(?P<abc3>.+)$",
    re.IGNORECASE | re.DOTALL)


def _replace_bar(text: str) -> ReplaceBar | None:
    m = _REPLACE_BAR.search(text)
    if not m:
        return None
    n = next(int(m.group(g)) for g in ("n", "n2", "n3") if m.group(g))
    abc = next(m.group(g) for g in ("abc", "abc2", "abc3") if m.group(g) is not None)
    abc = abc.strip().strip("`").strip()
    if abc.startswith('"') and abc.endswith('"') and abc.count('"') == 2:
        abc = abc[1:-1]
    if not _looks_like_abc(abc):
        return None
    return ReplaceBar(bar=n, abc=abc.strip().strip("|").strip())


def _length_edit(low: str, config: UnderstandConfig) -> ChangeLength | None:
    m = re.search(rf"\b(?:add|append|another|extra|more|lengthen (?:it )?by|extend (?:it )?by)\s+"
                  rf"(?:another\s+)?(?P<n>{_NUMBER})\s+(?:more\s+|extra\s+)?(?:bars?|measures?)\b|"
                  rf"\b(?P<n2>{_NUMBER})\s+(?:more|extra)\s+(?:bars?|measures?)\b", low)
    if m:
        n = parse_number(m.group("n") or m.group("n2"))
        return ChangeLength(delta=n) if n else None
    m = re.search(rf"\b(?:remove|cut|drop|delete|lose|trim|shorten (?:it )?by)\s+(?:the\s+)?"
                  rf"(?:last\s+|final\s+)?(?P<n>{_NUMBER})\s+(?:bars?|measures?)\b|"
                  rf"\b(?P<n2>{_NUMBER})\s+(?:bars?|measures?)\s+shorter\b", low)
    if m:
        n = parse_number(m.group("n") or m.group("n2"))
        return ChangeLength(delta=-n) if n else None
    m = re.search(rf"\b(?:make (?:it|the tune)|extend (?:it )?to|shorten (?:it )?to|cut (?:it )?"
                  rf"(?:down )?to|trim (?:it )?to|lengthen (?:it )?to)\s+(?:only\s+)?"
                  rf"(?P<n>{_NUMBER})\s*(?:-\s*)?(?:bars?|measures?)\b", low)
    if m:
        n = parse_number(m.group("n"))
        return ChangeLength(bars=n) if n else None
    if re.search(r"\b(?:double (?:the |its )?length|twice as long)\b", low):
        return ChangeLength(factor=2)
    if re.search(r"\blonger\b|\blengthen\b|\bextend\b", low):
        return ChangeLength(delta=config.lengthen_bars)
    if re.search(r"\bshorter\b|\bshorten\b|\bcut it down\b|\btrim it\b", low):
        return ChangeLength(delta=-config.shorten_bars)
    return None


_RELATIVE_MODE = re.compile(r"\b(?:the\s+)?(?P<rel>relative|parallel|tonic)\s+"
                            r"(?P<mode>major|minor)\b")
_MODE_CHANGE = re.compile(
    r"\b(?:make|turn|change|switch|put|convert|transform|try|do|play|have|rewrite|set)\b.*?"
    r"\b(?:in(?:to)?|to|it|the tune|this|as)\s+(?:the\s+|a\s+)?(?P<mode>major|minor|dorian|"
    r"mixolydian|lydian|phrygian|aeolian|ionian|locrian)\b(?!\s+(?:second|third|sixth|seventh))|"
    r"^\s*(?:in\s+)?(?:the\s+)?(?P<mode2>major|minor|dorian|mixolydian|lydian|phrygian|aeolian|"
    r"locrian)(?:\s+(?:key|mode|version|please))?\s*[.!]?\s*$|"
    r"\b(?P<mode3>major|minor|dorian|mixolydian|lydian|phrygian|aeolian)\s+(?:key\s+)?version\b")


def _mode_edit(low: str) -> ChangeMode | None:
    m = _RELATIVE_MODE.search(low)
    if m:
        relation = "relative" if m.group("rel") == "relative" else "parallel"
        return ChangeMode(m.group("mode"), relation)
    m = _MODE_CHANGE.search(low)
    if m:
        return ChangeMode(m.group("mode") or m.group("mode2") or m.group("mode3"), "parallel")
    return None


_INSTRUMENT_EDIT = re.compile(
    r"\b(?:play(?:ed)? (?:it|this|the tune)?\s*(?:on|with|by)|on (?:the|a)|for|switch(?: it)? to|"
    r"change (?:the )?(?:instrument|sound) to|use (?:a |the )?|instrument|make it (?:a |an )?|"
    r"as (?:a |an )?|give it (?:a |an )?|with (?:a |an |the )?|try (?:it on )?(?:a |an |the )?|"
    r"sound like (?:a |an )?|^)\s*(?:the |a |an )?$")


def _instrument_edit(text: str, low: str) -> SetInstrument | None:
    found = _find_instrument(text, low)
    if not found:
        return None
    start, end, name = found
    if not _INSTRUMENT_EDIT.search(low[max(0, start - 40): start]) and not re.match(
            r"\s*(?:instead|please|version|sound|tune|piece|[.!]|$)", low[end:]):
        return None
    return SetInstrument(INSTRUMENTS[name], name)


_REPEAT = re.compile(r"\b(?:repeat|repeats|repeat signs|repeat marks|"
                     r"play (?:it|the \w+ part) twice)\b")


def _repeat_edit(low: str) -> RepeatPart | None:
    if not _REPEAT.search(low) or re.search(
            r"\b(?:less|not|no|remove|without)\s+(?:the\s+)?repe", low):
        return None
    if re.search(r"\brepetitive\b", low):
        return None
    return RepeatPart(_find_span(low))


_TRANSPOSE_VERB = re.compile(r"\b(?:transpose|transposed|move|shift|put|change|switch|take|"
                             r"bring|modulate|set|make|turn|convert|key|play|raise|lower|drop|"
                             r"try|do|have|rewrite|go|want|prefer|need)\b|\bit\s+in\b|"
                             r"^\s*(?:in|into|to)\b|^\s*[A-Ga-g]")


def _key_edit(text: str, low: str) -> Transpose | None:
    keys = _find_keys(text)
    if not keys:
        whole = parse_key(text.strip().rstrip(".!?")) if len(text.strip()) <= 12 else None
        return Transpose(to_key=whole) if whole else None
    if not _TRANSPOSE_VERB.search(low) and not re.match(r"\s*[A-G]", text):
        return None
    # "from D to E minor": the key named last is the target
    key = keys[-1][2] if len(keys) > 1 and re.search(r"\bfrom\b", low) else keys[0][2]
    return Transpose(to_key=key)


_CLAUSE_SPLIT = re.compile(r"\s*(?:[,;]|\band then\b|\bthen\b|\band also\b|\balso\b|\band\b|"
                           r"\bplus\b)\s*")


def _clause_edits(text: str, low: str, config: UnderstandConfig) -> list[ExactEdit]:
    """The exact edits one clause asks for ("transpose it up a fifth", "faster")."""
    found: list[ExactEdit] = []
    interval = _interval(low, config)
    if interval and re.search(r"\b(?:transpos|up|down|higher|lower|raise|drop|shift|move|"
                              r"octave)\w*", low):
        found.append(Transpose(semitones=interval))
    else:
        mode = _mode_edit(low)
        key = _key_edit(text, low)
        if key and key.to_key and not (mode and mode.relation == "relative"):
            found.append(key)
        elif mode:
            found.append(mode)
    for detector in (_tempo_edit, _length_edit):
        op = detector(low, config)
        if op is not None:
            found.append(op)
    instrument = _instrument_edit(text, low)
    if instrument:
        found.append(instrument)
    repeat = _repeat_edit(low)
    if repeat:
        found.append(repeat)
    if re.search(r"\b(?:longer|shorter)\s+(?:notes?|phrases?)\b", low):
        found = [op for op in found if not isinstance(op, ChangeLength)]
    return found


def _exact_edits(text: str, low: str, config: UnderstandConfig, title: str | None
                 ) -> list[ExactEdit]:
    """The exact edits a message asks for, in the order said (clause by clause)."""
    replace_bar = _replace_bar(text)
    if replace_bar:
        return [replace_bar]
    found: list[ExactEdit] = []
    if title is not None:
        found.append(SetTitle(title))
    position = 0
    for clause in _CLAUSE_SPLIT.split(text):
        start = text.find(clause, position) if clause else -1
        if not clause.strip() or start < 0:
            continue
        position = start + len(clause)
        found += _clause_edits(clause, low[start:start + len(clause)], config)
    return found


_CREATIVE_WORDS = re.compile(
    r"\b(?:more|less)\s+\w+|\b(?:sadder|happier|brighter|darker|calmer|gentler|jollier|merrier|"
    r"simpler|busier|smoother|bouncier|prettier|richer|sweeter|stronger|bolder|wilder|"
    r"catchier|livelier)\b|\b(?:rewrite|re-write|redo|rework|vary|variation|ornament\w*|"
    r"embellish\w*|decorat\w*|improve|fix|reharmoni[sz]e|harmoni[sz]e|develop|elaborate|"
    r"simplify|spice|jazz|syncopat\w*|swing|grace notes?|rolls?|triplets?|cuts?|trills?|"
    r"chords?|bass ?line|counter-?melody|second voice|harmony|descant|bridge|coda|intro|"
    r"modulat\w*|key change)\b|\badd (?:a |an )?(?:b|c|third|second|new) (?:part|section)\b|"
    r"\b(?:make|turn) (?:it|this|the tune) (?:into )?(?:a|an)\b(?!\s+(?:bit|little|lot|touch|tad|"
    r"few|couple|semitone|tone|step|half|whole|third|fourth|fifth|sixth|octave))|"
    r"\b(?:sound|feel) (?:more )?like\b"
    r"|\bchange (?:the )?(?:rhythm|melody|ending|beginning|notes|time signature|meter|metre)\b"
    r"|\bdifferent\b|\binteresting\b|\bexciting\b|\bboring\b|\brepetitive\b|\bplain\b")

_REFERS_TO_TUNE = re.compile(
    r"\b(?:it|it's|its|this|that|the (?:tune|melody|song|piece|score|music|ending|beginning|"
    r"tempo|key|title|bars?|notes?|rhythm|[ab] part|first part|second part|harmony|chords|"
    r"lyrics|words)|faster|slower|higher|lower|longer|shorter|quicker|transpose|"
    r"instead|now|again)\b")

_NEW_TUNE = re.compile(
    r"\b(?:write|compose|create|generate|make|give|produce|invent|improvise|come up with|"
    r"let'?s have|i(?:'d| would)? (?:like|want|need)|how about|can i (?:get|have)|"
    r"could i (?:get|have)|can you do|do you have|play)\s+(?:me\s+|us\s+)?"
    r"(?:a|an|another|one more|some|something|new|a new|a different|another new|one)\b|"
    r"\b(?:another|a new|a different|new)\s+(?:one|tune|melody|song|piece)\b|"
    r"^\s*(?:please\s+)?(?:an?|some|something)\s+(?:[\w'-]+\s+){0,5}?(?:tune|melody|song|"
    r"piece|ditty|" + "|".join(re.escape(w) for w in STYLE_WORDS) + r")s?\b|"
    r"^\s*(?:please\s+)?something\b|\bsurprise me\b")


# --------------------------------------------------------------------------------------------
# Lyric operations
# --------------------------------------------------------------------------------------------

_LINE_REPLACE = re.compile(
    r"\b(?:replace|change|rewrite|make)\s+(?:the\s+)?(?:(?P<ord>first|second|third|fourth|fifth|"
    r"sixth|seventh|eighth|last|final|1st|2nd|3rd|4th)\s+(?:lyric\s+)?line|(?:lyric\s+)?line\s+"
    r"(?P<num>\d{1,2}))(?:\s+of\s+(?:the\s+)?(?:lyrics|words))?(?:\s+(?:with|to|into|so it "
    r"(?:says|reads))\s*:?\s*(?P<text>.+))?$|"
    r"\b(?:the\s+)?(?:(?P<ord2>first|second|third|fourth|last|final)\s+line|"
    r"line\s+(?P<num2>\d{1,2}))"
    r"\s+(?:should (?:be|say|read)|=)\s*:?\s*(?P<text2>.+)$",
    re.IGNORECASE | re.DOTALL)
_LINE_ORDINAL = r"first|second|third|fourth|fifth|sixth|seventh|eighth|last|final|1st|2nd|3rd|4th"
_LINE_THEME = re.compile(
    r"\b(?P<verb>make|rewrite|change|redo|write new words for|new words for|give new words to)\s+"
    r"(?:the\s+)?(?:words\s+(?:of|in|for)\s+(?:the\s+)?)?"
    r"(?:(?P<chorus>chorus|refrain)|(?P<ord>" + _LINE_ORDINAL + r")\s+(?:lyric\s+)?line|"
    r"(?:lyric\s+)?line\s+(?P<num>\d{1,2})|lines\s+(?P<a>\d{1,2})\s*(?:-|–|to|and|&)\s*"
    r"(?P<b>\d{1,2})|(?P<end>first|last)\s+(?P<count>two|three|four|2|3|4)\s+lines)"
    r"(?:\s+of\s+(?:the\s+)?(?:lyrics|words|song))?"
    r"(?:\s+(?:to\s+be\s+|so\s+(?:it|they)\s+(?:is|are)\s+)?(?:about|on the theme of)\s+"
    r"(?P<theme>[^.!?\n]+?))?\s*[.!]*\s*$",
    re.IGNORECASE)
_COUNTS = {"two": 2, "three": 3, "four": 4, "2": 2, "3": 3, "4": 4}


def _line_theme_op(text: str, config_chars: int = 80) -> RewriteLyricLines | None:
    """ "make the chorus about leaving home", "rewrite line 2 about the sea", "new words for the
    last line": lines the model rewrites. "make/change line 2" without a theme is not one (it
    asks for the words instead).

    >>> _line_theme_op("make the chorus about leaving home")
    RewriteLyricLines(lines=(), theme='leaving home', chorus=True)
    >>> _line_theme_op("Rewrite lines 3-4 about the sea.")
    RewriteLyricLines(lines=(3, 4), theme='the sea', chorus=False)
    >>> _line_theme_op("new words for the last line")
    RewriteLyricLines(lines=(-1,), theme=None, chorus=False)
    >>> _line_theme_op("change line 2") is None
    True
    """
    m = _LINE_THEME.search(text.strip())
    if not m:
        return None
    theme = clean_line(m.group("theme"), config_chars) if m.group("theme") else None
    if theme is None and m.group("verb").lower() in ("make", "change"):
        return None
    if m.group("chorus"):
        return RewriteLyricLines((), theme, chorus=True)
    if m.group("ord"):
        lines: tuple[int, ...] = (ORDINALS[m.group("ord").lower()],)
    elif m.group("num"):
        lines = (int(m.group("num")),)
    elif m.group("a"):
        low, high = sorted((int(m.group("a")), int(m.group("b"))))
        lines = tuple(range(low, high + 1))
    else:
        count = _COUNTS[m.group("count").lower()]
        lines = tuple(range(1, count + 1)) if m.group("end").lower() == "first" else \
            tuple(range(-count, 0))
    if any(n == 0 for n in lines):
        return None
    return RewriteLyricLines(lines, theme)


_WORD_REPLACE = re.compile(
    r"\b(?:replace|change|swap)\s+(?:the\s+word\s+)?(?P<q>[\"'])(?P<old>[^\"']+)(?P=q)\s+"
    r"(?:with|to|for|into|by)\s+(?P<q2>[\"'])(?P<new>[^\"']+)(?P=q2)|"
    r"\b(?:replace|change|swap)\s+the\s+word\s+(?P<old2>[\w'-]+)\s+(?:with|to|for|into|by)\s+"
    r"(?:the\s+word\s+)?(?P<new2>[\w'-]+)", re.IGNORECASE)
_REMOVE_LYRICS = re.compile(r"\b(?:remove|delete|drop|take (?:off|out|away)|clear|get rid of|"
                            r"strip|lose)\s+(?:all\s+)?(?:the\s+|its\s+)?(?:lyrics|words|verses)\b|"
                            r"\b(?:no|without)\s+(?:lyrics|words)\b|\bmake it instrumental\b|"
                            r"\binstrumental (?:only|version)\b")
_ADD_VERSE = re.compile(r"\b(?:add|write|give it)\s+(?:a|another|one more|an extra|a second|"
                        r"a third|a new)\s+verse\b|\banother verse\b|\bsecond verse\b")
_WRITE_LYRICS = re.compile(r"\b(?:add|write|give it|put|compose|make up|come up with|set|need|"
                           r"want|with)\s+(?:some\s+|new\s+|the\s+|its\s+|a\s+set\s+of\s+)?"
                           r"(?:lyrics|words|a poem|text)\b|\b(?:lyrics|words)\s+(?:about|for it|"
                           r"to it|on)\b|\brewrite the (?:lyrics|words)\b")


def _lyric_ops(text: str, low: str, free: _FreeText) -> list[LyricOp]:
    """Operations on the words of a tune that has one."""
    ops: list[LyricOp] = []
    part_words = part_words_request(text)  # "change the chorus to: ..."
    if part_words:
        return [SetPartWords(*part_words)]
    rewrite = _line_theme_op(text)
    if rewrite is not None:
        return [rewrite]
    m = _LINE_REPLACE.search(text)
    if m and re.search(r"\bline\b", low):
        number = m.group("num") or m.group("num2")
        ordinal = m.group("ord") or m.group("ord2")
        line = int(number) if number else ORDINALS[ordinal.lower()]
        raw = m.group("text") if m.group("text") is not None else m.group("text2")
        new = _clean_lyrics(raw.strip().strip('"'), 400) if raw else None
        return [ReplaceLyricLine(line, new)]
    m = _WORD_REPLACE.search(text)
    if m:
        old = m.group("old") or m.group("old2")
        new = m.group("new") or m.group("new2")
        return [ReplaceLyricWord(old.strip(), new.strip())]
    if _REMOVE_LYRICS.search(low):
        return [RemoveLyrics()]
    if free.lyrics_text:
        return [SetLyrics(free.lyrics_text)]
    if _ADD_VERSE.search(low):
        return [AddVerse(free.theme)]
    if _WRITE_LYRICS.search(low):
        ops.append(WriteLyrics(free.theme))
    return ops


# --------------------------------------------------------------------------------------------
# Questions, control words, pasted ABC
# --------------------------------------------------------------------------------------------

_POLITE_REQUEST = re.compile(r"^\s*(?:can|could|would|will)\s+(?:you|we|i)\s+(?!tell|explain|"
                             r"show|say|describe)|^\s*please\b|\bplease\s*[.!?]?\s*$")
_QUESTION_FORM = re.compile(r"\?\s*$|^\s*(?:what|which|why|how|is|are|does|do|can you tell|"
                            r"could you tell|tell me|explain|who|where|when)\b")
_DEFINE = re.compile(r"^\s*(?:what(?:'s| is| are)|what does|explain|define|tell me about)\s+"
                     r"(?:an?\s+)?(?!the\b|this\b|it\b)(?P<subject>[\w /#-]+?)"
                     r"(?:\s+mean)?\s*\??\s*$")


def _question(low: str) -> Question | None:
    if not _QUESTION_FORM.search(low) or _POLITE_REQUEST.search(low):
        return None
    m = _DEFINE.match(low)
    if m:
        subject = m.group("subject").strip()
        singular = re.sub(r"(?<=[a-z])e?s$", "", subject)
        for topic in (subject, singular):
            if topic in GLOSSARY_TOPICS:
                return Question("define", topic)
    for kind, pattern in QUESTION_PATTERNS:
        if re.search(pattern, low):
            return Question(kind)
    return None


_UNDO = re.compile(r"^(?:please\s+)?(?:undo|go back|revert|take (?:that|it) back|back|"
                   r"undo (?:that|it|this|the last (?:change|edit|step))|"
                   r"go back (?:one|a step|one step|to the (?:previous|last|old) (?:version|one))|"
                   r"(?:revert|go back) to (?:the )?(?:previous|last|old|earlier) (?:version|one)|"
                   r"previous version|i liked it better before|put it back the way it was|"
                   r"change it back|undo last)(?:\s+please)?\s*[.!]*$")
_REDO = re.compile(r"^(?:please\s+)?(?:redo|redo (?:that|it|the last (?:change|edit))|"
                   r"go forward|undo (?:the|that) undo|forward|re-do)(?:\s+please)?\s*[.!]*$")
_START_OVER = re.compile(r"^(?:please\s+|let'?s\s+|ok,?\s+|okay,?\s+)?"
                         r"(?:start (?:over|again|afresh|"
                         r"from scratch|a new (?:tune|one|song))|begin again|new (?:tune|song|"
                         r"piece|melody)|a new (?:tune|one)|reset|clear(?: (?:it|all|everything))?|"
                         r"scrap (?:it|that|this)|throw (?:it|this) away|from scratch|"
                         r"forget (?:it|this|that)|restart)(?:\s+please)?\s*[.!]*$")
_HELP = re.compile(r"^(?:please\s+)?(?:help|help me|help please|\?+|what can you do|"
                   r"what do you do|how does (?:this|it) work|how do i use (?:this|you|it)|"
                   r"how do i (?:start|begin)|commands|instructions|usage|what are the commands|"
                   r"what can i (?:say|ask|do)|who are you|what are you)\s*[?.!]*$")
_CHAT = re.compile(rf"^(?:{GREETINGS})(?:[\s,!.]+(?:{GREETINGS}|there|you|very much|a lot|"
                   r"tunesmith|!))*\s*[!.?]*$")


def _pasted_abc(message: str, limit: int) -> str | None:
    """The ABC tune in a message, when it holds one: a K: line after an X: line or with a bar
    line below it. One header-looking line inside a sentence is not a tune."""
    text = message[:limit]
    lines = text.splitlines()
    k_lines = [i for i, line in enumerate(lines) if re.match(r"\s*K:\s*\S", line)]
    if not k_lines:
        return None
    x_lines = [i for i, line in enumerate(lines) if re.match(r"\s*X:\s*\d*\s*$", line)]
    after_k = any("|" in line for line in lines[k_lines[0] + 1:])
    header_lines = sum(1 for line in lines if re.match(r"\s*[TMLQR]:", line))
    if not (x_lines or (after_k and header_lines)):
        return None
    start = x_lines[0] if x_lines and x_lines[0] < k_lines[0] else \
        next(i for i, line in enumerate(lines) if re.match(r"\s*[A-Za-z]:", line))
    tune = "\n".join(line.strip("\ufeff") for line in lines[start:]).strip()
    return tune + "\n"


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def understand(message: str, has_score: bool, config: UnderstandConfig = DEFAULT_CONFIG) -> Request:
    """What ``message`` asks for, given whether there is a tune to work on (``has_score``).

    Never raises on text: empty, huge, emoji-laden or hostile messages give a chat request
    (with ``explanation`` when something is wrong) or whatever intent the words support.
    """
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    text, truncated = _prepare(message, config.max_chars)
    if not text.strip():
        return Request("chat", "", explanation="The message is empty: tell me what tune you "
                       "would like, for example \"a jig in G\".", truncated=truncated)
    abc = _pasted_abc(unicodedata.normalize("NFC", message), config.max_abc_chars)
    if abc is not None:
        return Request("abc_paste", text, abc=abc,
                       truncated=len(message) > config.max_abc_chars)
    low = _lower(text).strip()
    simple = " ".join(re.sub(r"[^\w\s'?.!,-]", " ", low).split())
    base = Request("chat", text, truncated=truncated)
    for intent, pattern in (("undo", _UNDO), ("redo", _REDO), ("start_over", _START_OVER),
                            ("help", _HELP)):
        if pattern.match(simple):
            if intent in NEEDS_SCORE and not has_score:
                return replace(base, explanation=NEEDS_SCORE[intent])
            return replace(base, intent=intent, explanation=HELP_TEXT if intent == "help" else None)
    if _CHAT.match(simple):
        return base
    free = _free_text(text, config)
    attrs = _attributes(free.masked, free, config)
    masked_low = _lower(free.masked)
    question = chord_question(text) or _question(low)
    if question:
        if question.kind != "define" and not has_score:
            return replace(base, attributes=attrs, question=question,
                           explanation=NEEDS_SCORE["question"])
        return replace(base, intent="question", attributes=attrs, question=question)
    wants_new = bool(_NEW_TUNE.search(masked_low)) and not re.search(
        r"\b(?:make|turn)\s+(?:it|this|the tune)\b", masked_low) and not (
        has_score and _line_theme_op(text))  # "write new words for line 2"
    chords = harmony_ops(text, new_tune=wants_new)  # chords and backing: agent.harmony_chat
    if chords:
        return replace(base, intent="harmony", attributes=attrs, harmony_ops=tuple(chords),
                       explanation=None if has_score else NEEDS_SCORE["harmony"])
    if has_score and not wants_new:
        return _edit_request(base, text, free, attrs, config)
    if not has_score and not wants_new:
        edit = _edit_request(base, text, free, attrs, config)
        writes_words = any(isinstance(op, WriteLyrics) for op in edit.lyric_ops)
        relative = edit.intent in ("exact_edit", "creative_edit", "mood_edit") or (
            edit.intent == "lyrics" and not writes_words) or bool(attrs.mood_unknown)
        if relative and (_REFERS_TO_TUNE.search(masked_low) or _EDIT_VERB.search(masked_low)) \
                and not _standalone(attrs):
            return replace(base, attributes=attrs,
                           explanation=NEEDS_SCORE.get(edit.intent, NEEDS_SCORE["creative_edit"]))
    unknown = _unknown_key(low)
    if unknown:
        return replace(base, attributes=attrs, explanation=unknown)
    if wants_new or bool(attrs.stated()) or re.search(
            r"\b(?:tune|melody|song|piece|music|something|compose|write)\b", masked_low):
        if free.theme and not attrs.lyrics and re.search(r"\b(?:lyrics|words|song)\b", masked_low):
            attrs = replace(attrs, lyrics=True)
        if song_request(low):  # "two verses and a chorus": agent.song_form
            attrs = replace(attrs, lyrics=True, verses=song_request(low),
                            lyrics_theme=strip_form_words(attrs.lyrics_theme))
        return replace(base, intent="compose", attributes=attrs)
    return replace(base, attributes=attrs)


_EDIT_VERB = re.compile(r"\b(?:transpose|replace|change|rename|repeat|shorten|lengthen|remove|"
                        r"delete|rewrite|vary|speed|slow|swap|drop|raise|lower)\b")


_UNKNOWN_KEY = re.compile(
    r"\b(?:(?:transpose|transposed|move|shift|put|modulate|change|take|bring)\b[\w\s]{0,12}?"
    r"\b(?:to|into|in)|key\s+of|in\s+the\s+key)\s+([h-z])(?:\s*(?:#|b|sharp|flat))?"
    r"(?:\s+(?:major|minor|dorian|mixolydian|lydian|phrygian|aeolian|ionian|locrian))?\s*[.!?]?\s*$"
    r"|\bin\s+([h-z])(?:\s*(?:#|b|sharp|flat))?\s+(?:major|minor|dorian|mixolydian|lydian|phrygian|"
    r"aeolian|ionian|locrian)\b")


def _unknown_key(low: str) -> str | None:
    """A clear reply when a key is named with a letter outside A-G ("transpose to H major").

    >>> _unknown_key("transpose to h major")[:28]
    'There is no key called "H": '
    >>> _unknown_key("transpose to b major") is None
    True
    """
    m = _UNKNOWN_KEY.search(low)
    if not m:
        return None
    letter = (m.group(1) or m.group(2)).upper()
    german = " (the German H is B: ask for \"B major\")" if letter == "H" else ""
    return (f'There is no key called "{letter}": key names use the letters A to G, with sharp '
            f'or flat, for example "B flat major" or "F# minor"{german}. Nothing was changed.')


def _standalone(attrs: Attributes) -> bool:
    """Whether attributes describe a tune on their own ("a jig in G"), not a change."""
    return bool(attrs.style or (attrs.tonic and attrs.meter))


_MORE_OR_LESS = re.compile(r"\b(?:more|less)\s+$")


def _without_words(low: str, words: tuple[str, ...], keep_words: bool = False) -> str:
    """``low`` with each word and a "more"/"less" before it blanked out (only the "more"
    with ``keep_words``: "more interesting" is still a creative word, "more funky" is not)."""
    for word in words:
        for m in reversed(list(re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", low))):
            before = _MORE_OR_LESS.search(low[:m.start()])
            start = before.start() if before else m.start()
            end = m.start() if keep_words else m.end()
            low = low[:start] + " " * (end - start) + low[end:]
    return low


def _mood_edit(base: Request, low: str, attrs: Attributes, edits: tuple[ExactEdit, ...],
               span: Span | None, edits_of: Callable[[str], tuple[ExactEdit, ...]]
               ) -> Request | None:
    """A mood change of the whole tune ("sadder", "a bit happier", "make it calm"), done by
    exact edits, or the reply for a mood word the table lacks ("funkier") when nothing else
    in the message applies; None when the message asks for more than a mood. ``edits_of``
    reads the exact edits of a text: those the mood word alone gave ("livelier": faster) are
    the mood's own."""
    if edits and _mood_words(low):
        edits = edits_of(_without_words(low, _mood_words(low)))
    if attrs.meter is not None or attrs.style is not None or span is not None or any(
            not isinstance(op, ChangeMode) for op in edits):
        return None
    rest = _without_words(_without_words(low, _mood_words(low)), attrs.mood_unknown or (),
                          keep_words=True)
    if _CREATIVE_WORDS.search(rest):
        return None
    if attrs.mood is None:
        if attrs.mood_unknown and not edits:
            request = MoodRequest(None, unknown=attrs.mood_unknown)
            return replace(base, attributes=attrs, explanation=request.reply + " Nothing was changed.")
        return None
    change = MoodChange(mood_request(attrs).mood, attrs.mood_intensity or 1.0,
                        attrs.mood_comparative, allow_mode_change=bool(edits))
    return replace(base, intent="mood_edit", attributes=attrs, edits=edits, mood_change=change)


def _mood_words(low: str) -> tuple[str, ...]:
    """The mood word said in ``low`` ("sadder", "wistful"), as found by :func:`find_mood`."""
    request = find_mood(low)
    if request is None or request.start < 0:
        return ()
    return (low[request.start:request.end],)


def _edit_request(base: Request, text: str, free: _FreeText, attrs: Attributes,
                  config: UnderstandConfig) -> Request:
    """The request for a message about the current tune."""
    masked, low = free.masked, _lower(free.masked)
    lyric_ops = _lyric_ops(text, _lower(text), free)
    if lyric_ops:
        return replace(base, intent="lyrics", attributes=attrs, lyric_ops=tuple(lyric_ops))
    unknown = _unknown_key(low)
    if unknown:
        return replace(base, attributes=attrs, explanation=unknown)
    edits = tuple(_exact_edits(masked, low, config, free.title))
    span = _find_span(low)
    mood = _mood_edit(base, low, attrs, edits, span, lambda plain: tuple(
        _exact_edits(plain, _lower(plain), config, free.title)))
    if mood is not None:
        return mood
    # a new meter, style or mood needs the notes rewritten; exact edits said with it come along
    creative = bool(_CREATIVE_WORDS.search(low)) or attrs.meter is not None or (
        attrs.style is not None) or (attrs.mood is not None and not edits)
    if span and not any(isinstance(op, (RepeatPart, ReplaceBar, ChangeLength)) for op in edits):
        creative = True
        # "make the second half livelier", "the B part higher": about those notes only
        edits = tuple(op for op in edits if isinstance(op, (SetTitle, SetInstrument)) or (
            isinstance(op, SetTempo) and op.bpm is not None))
    if creative and not any(isinstance(op, ReplaceBar) for op in edits):
        edits = tuple(op for op in edits if not isinstance(op, ChangeLength) or not re.search(
            r"\badd (?:a |an )?(?:b|c|third|second|new) (?:part|section)\b", low))
        return replace(base, intent="creative_edit", attributes=attrs, edits=edits,
                       creative=CreativeEdit(clean_line(text, 400) or "", span))
    if edits:
        return replace(base, intent="exact_edit", attributes=attrs, edits=edits)
    if _REFERS_TO_TUNE.search(low) and re.search(
            r"\b(?:make|change|turn|give|add|put|rewrite|let|could|can|try|improve|fix)\b", low):
        return replace(base, intent="creative_edit", attributes=attrs,
                       creative=CreativeEdit(clean_line(text, 400) or "", span))
    if bool(attrs.stated()):
        if _REFERS_TO_TUNE.search(low):  # "I want it in 6/8": about this tune
            return replace(base, intent="creative_edit", attributes=attrs,
                           creative=CreativeEdit(clean_line(text, 400) or "", span))
        return replace(base, intent="compose", attributes=attrs)
    return replace(base, attributes=attrs)
