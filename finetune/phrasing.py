"""Natural-language requests for the training examples, phrased from a tune's attributes.

A person asks for music in many ways: "write a lively reel in D", "a sad air in E minor, about 16
bars", "3/4 tune for fiddle in G, slow", "something melancholy in A dorian". The builder draws one
phrasing per example from these templates, so the model learns to honour the facts (key, mode,
meter, style, length, speed) whatever the wording. Every fact a request states is true of the
target tune; moods follow the mode and the style's character.

>>> import random
>>> attrs = {"tonic": "D", "mode": "major", "meter": "4/4", "style": "reel", "bars": 16,
...          "tempo": "1/4=208", "tempo_bpm": 208, "title": "The Silver Spear"}
>>> text = compose_request(attrs, random.Random(3))
>>> "D" in text
True
>>> key_phrase("F#", "minor"), key_phrase("A", "dorian"), key_phrase("Bb", "major")
('F# minor', 'A dorian', 'B flat')
>>> key_phrase("H", "major")
Traceback (most recent call last):
...
ValueError: not a tonic: 'H'
"""
from __future__ import annotations

import random
import re
from typing import Any, Callable

from agent.styles import BY_NAME, tempo_words

MOODS = {
    "major": ("cheerful", "bright", "happy", "joyful", "sunny", "light-hearted", "carefree"),
    "minor": ("sad", "melancholy", "wistful", "mournful", "dark", "sombre", "haunting"),
    "dorian": ("wistful", "mysterious", "brooding", "earthy", "haunting"),
    "mixolydian": ("bold", "rustic", "bright", "earthy", "swaggering"),
    "lydian": ("dreamy", "floating", "bright"),
    "phrygian": ("dark", "exotic", "brooding"),
    "locrian": ("unsettled", "dark"),
}
SPEED_WORDS = {
    "slow": ("slow", "gentle", "unhurried", "slow-paced"),
    "moderate": ("moderate", "easy", "steady", "walking-pace"),
    "fast": ("fast", "quick", "lively", "brisk", "energetic"),
}
INSTRUMENTS = ("fiddle", "violin", "flute", "tin whistle", "accordion", "mandolin", "piano",
               "recorder", "concertina", "pipes", "guitar", "voice")
TUNE_NOUNS = ("tune", "melody", "piece", "air")
VERBS = ("Write", "Compose", "Make", "Give me", "Can you write", "I'd like", "Please write",
         "Could you compose", "Create", "Let's have", "I need")


def key_phrase(tonic: str, mode: str, style: str = "words") -> str:
    """The key as people say it: "D", "E minor", "B flat", "A dorian"; ``style="abc"`` keeps "Bb"."""
    if not re.fullmatch(r"[A-G][#b]?", tonic):
        raise ValueError(f"not a tonic: {tonic!r}")
    name = tonic
    if style == "words":
        name = tonic[0] + {"#": "#", "b": " flat"}.get(tonic[1:], "")
    return name if mode == "major" else f"{name} {mode}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _with_article(phrase: str) -> str:
    return f"{_article(phrase)} {phrase}"


def _mood(attrs: dict[str, Any], rng: random.Random) -> str:
    style = BY_NAME.get(attrs.get("style") or "")
    choices = list(MOODS.get(attrs["mode"], MOODS["major"]))
    if style and rng.random() < 0.4:
        choices = list(style.feel)
    return rng.choice(choices)


def _speed(attrs: dict[str, Any], rng: random.Random) -> str:
    return rng.choice(SPEED_WORDS[tempo_words(attrs["tempo_bpm"])])


def _length(attrs: dict[str, Any], rng: random.Random) -> str:
    bars = attrs["bars"]
    exact = rng.random() < 0.5
    if exact:
        return rng.choice((f"{bars} bars", f"{bars} bars long", f"in {bars} bars"))
    return rng.choice((f"about {bars} bars", f"around {bars} bars", f"roughly {bars} bars"))


def _noun(attrs: dict[str, Any], rng: random.Random) -> str:
    style = attrs.get("style")
    if style and rng.random() < 0.75:
        return style
    return rng.choice(TUNE_NOUNS)


def _templates() -> list[Callable[[dict[str, Any], random.Random], str]]:
    """Request builders; each uses only facts that hold for the tune it is given."""

    def plain(a, r):
        return f"{r.choice(VERBS)} {_with_article(_noun(a, r))} in {key_phrase(a['tonic'], a['mode'])}"

    def moody(a, r):
        return f"{r.choice(VERBS)} {_with_article(_mood(a, r) + ' ' + _noun(a, r))} in {key_phrase(a['tonic'], a['mode'])}"

    def with_length(a, r):
        return f"{_with_article(_mood(a, r) + ' ' + _noun(a, r))} in {key_phrase(a['tonic'], a['mode'])}, {_length(a, r)}"

    def meter_first(a, r):
        return (f"{a['meter']} {_noun(a, r)} for {r.choice(INSTRUMENTS)} in "
                f"{key_phrase(a['tonic'], a['mode'])}, {_speed(a, r)}")

    def something(a, r):
        return f"something {_mood(a, r)} in {key_phrase(a['tonic'], a['mode'])}"

    def speed_first(a, r):
        return f"{r.choice(VERBS)} {_with_article(_speed(a, r) + ' ' + _noun(a, r))} in {key_phrase(a['tonic'], a['mode'])}"

    def detailed(a, r):
        return (f"{r.choice(VERBS)} {_with_article(_noun(a, r))} in {a['meter']}, key of "
                f"{key_phrase(a['tonic'], a['mode'])}, {_length(a, r)}, {_speed(a, r)} tempo")

    def tempo_number(a, r):
        return (f"{_with_article(_noun(a, r))} in {key_phrase(a['tonic'], a['mode'])} at "
                f"{a['tempo'].split('=')[1]} bpm")

    def titled(a, r):
        return f"{r.choice(VERBS)} {_with_article(_noun(a, r))} called \"{a['title']}\" in {key_phrase(a['tonic'], a['mode'])}"

    def lowercase_terse(a, r):
        return f"{_mood(a, r)} {_noun(a, r)} {key_phrase(a['tonic'], a['mode'], 'abc').lower()} {a['meter']}"

    def instrument(a, r):
        return (f"I play the {r.choice(INSTRUMENTS)}. {r.choice(('Can you write', 'Could you compose', 'Would you make'))} me {_with_article(_mood(a, r) + ' ' + _noun(a, r))} "
                f"in {key_phrase(a['tonic'], a['mode'])}?")

    return [plain, moody, with_length, meter_first, something, speed_first, detailed,
            tempo_number, titled, lowercase_terse, instrument]


TEMPLATES = _templates()


def compose_request(attrs: dict[str, Any], rng: random.Random) -> str:
    """One request for a new tune with these attributes (``tonic``, ``mode``, ``meter``,
    ``style``, ``bars``, ``tempo`` (the Q: value), ``tempo_bpm`` (quarter notes per minute),
    ``title``)."""
    template = rng.choice(TEMPLATES)
    text = template(attrs, rng).strip()
    if rng.random() < 0.3 and not text.endswith("?"):
        text += rng.choice((".", "!", " please", ", thanks"))
    return text[0].upper() + text[1:] if rng.random() < 0.7 else text


EDIT_INSTRUCTIONS = {
    "add_part": ("Write a B part for this tune.", "Add a second part.", "Continue it with a B part.",
                 "Now write the second half.", "Add a contrasting B part that fits."),
    "end_on_tonic": ("Make it end on the tonic.", "The ending sounds unfinished: end on the home note.",
                     "Fix the last note so it resolves to {tonic}.", "End the tune on {tonic}."),
    "vary_bar": ("Vary bar {bar}.", "Make bar {bar} more interesting.", "Add some movement to bar {bar}.",
                 "Bar {bar} is too plain, liven it up.", "Ornament bar {bar} a little."),
    "livelier_half": ("Make the second half livelier.", "The second half is too plain: add more notes.",
                      "Give the second half more movement.", "Make the ending section busier."),
}


def edit_instruction(kind: str, rng: random.Random, **facts: Any) -> str:
    """One instruction for an edit of ``kind`` (see ``EDIT_INSTRUCTIONS``), facts filled in.

    >>> edit_instruction("vary_bar", random.Random(0), bar=5)
    'Bar 5 is too plain, liven it up.'
    >>> edit_instruction("split", random.Random(0))
    Traceback (most recent call last):
    ...
    KeyError: 'split'
    """
    return rng.choice(EDIT_INSTRUCTIONS[kind]).format(**facts)
