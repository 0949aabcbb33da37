"""The words people use for music, as tables: intents, modes, styles and their forms,
tempo words, instruments, numbers, intervals, meters, question patterns and greetings.

:mod:`agent.understand` reads chat messages with these tables and its rules; the answers, the
mood stage and the metrics read them too. Tables only: no function here, so a word is added in
one place and every reader sees it. Mood words live with their cues in :mod:`agent.mood`.

>>> MODE_WORDS["aeolian"], INSTRUMENTS["flute"], STYLE_FORMS["reel"]
('aeolian', 73, (16, 'AABB'))
"""
from __future__ import annotations

from agent.mood import MOODS as _MOOD_ROWS

__all__ = [
    "DEFAULT_TONIC", "GLOSSARY_TOPICS", "GREETINGS", "HELP_TEXT", "INSTRUMENTS",
    "INSTRUMENT_EMOJI", "INTENTS", "INTERVALS", "METER_NAMES", "MODE_ABBREVIATIONS", "MODE_WORDS",
    "NEEDS_SCORE", "NEGATED_TEMPO", "NUMBER_WORDS", "ORDINALS",
    "PERFECT_INTERVALS", "QUALITY_SHIFT", "QUESTION_KINDS", "QUESTION_PATTERNS", "STYLE_FORMS",
    "STYLE_WORDS", "SUNG_STYLES", "TEMPO_TERMS", "TEMPO_WORDS",
]

INTENTS = ("compose", "exact_edit", "creative_edit", "lyrics", "question", "undo", "redo",
           "start_over", "help", "chat", "abc_paste", "mood_edit", "harmony")

# Mode names as people and ABC spell them -> the canonical mode.
MODE_WORDS = {
    "major": "major", "maj": "major", "minor": "minor", "min": "minor",
    "dorian": "dorian", "mixolydian": "mixolydian", "lydian": "lydian",
    "phrygian": "phrygian", "aeolian": "aeolian", "ionian": "ionian", "locrian": "locrian",
}
# ABC's three-letter mode abbreviations, accepted only when written against the tonic ("Ador").
MODE_ABBREVIATIONS = {
    "m": "minor", "dor": "dorian", "mix": "mixolydian", "lyd": "lydian", "phr": "phrygian",
    "aeo": "aeolian", "ion": "ionian", "loc": "locrian",
}
# A tonic to use when only the mode is known (keys fiddles, whistles and flutes like).
DEFAULT_TONIC = {
    "major": "D", "ionian": "D", "minor": "E", "aeolian": "E", "dorian": "A",
    "mixolydian": "D", "lydian": "F", "phrygian": "E", "locrian": "B",
}

# Words for styles in a message -> the style's name in ``agent.styles`` (meters and usual
# speed live there, one table shared with the training data).
STYLE_WORDS = {
    "slip jig": "slip jig", "slip-jig": "slip jig", "slipjig": "slip jig", "hop jig": "slip jig",
    "single jig": "single jig", "slide": "single jig",
    "double jig": "jig", "jig": "jig", "gigue": "jig",
    "strathspey": "strathspey", "hornpipe": "hornpipe", "reel": "reel", "polka": "polka",
    "schottische": "schottische", "barn dance": "schottische", "barndance": "schottische",
    "highland fling": "schottische", "fling": "schottische",
    "mazurka": "mazurka", "waltz": "waltz", "valse": "waltz", "march": "march",
    "minuet": "minuet", "menuet": "minuet", "lullaby": "lullaby", "lullabie": "lullaby",
    "cradle song": "lullaby", "berceuse": "lullaby", "ballad": "ballad", "hymn": "hymn",
    "chorale": "hymn", "slow air": "air", "air": "air", "lament": "air", "song": "song",
}
# The usual written length and form of each style: (bars, form). Dance tunes are two 8-bar
# parts, each repeated (AABB: 16 bars written, 32 played); songs and airs two parts, no repeats.
STYLE_FORMS = {
    "slip jig": (16, "AABB"), "single jig": (16, "AABB"), "jig": (16, "AABB"),
    "strathspey": (16, "AABB"), "hornpipe": (16, "AABB"), "reel": (16, "AABB"),
    "polka": (16, "AABB"), "schottische": (16, "AABB"), "mazurka": (16, "AABB"),
    "waltz": (16, "AABB"), "march": (16, "AABB"), "minuet": (16, "AABB"),
    "lullaby": (16, "AB"), "ballad": (16, "AB"), "hymn": (16, "AB"), "song": (16, "AB"),
    "air": (16, "AB"),
}

# Styles that are sung: "a ballad about the sea" wants words.
SUNG_STYLES = ("ballad", "lullaby", "hymn", "song")

# Italian tempo terms -> (lowest, highest, the bpm we use).
TEMPO_TERMS = {
    "grave": (35, 45, 40), "largo": (40, 60, 50), "lento": (45, 60, 54),
    "larghetto": (60, 66, 63), "adagio": (66, 76, 72), "adagietto": (70, 80, 76),
    "andante": (76, 108, 92), "andantino": (80, 108, 96), "moderato": (108, 120, 112),
    "allegretto": (112, 120, 116), "allegro": (120, 156, 132), "vivace": (156, 176, 160),
    "presto": (168, 200, 180), "prestissimo": (200, 220, 208),
}
# Plain speed words -> (factor on the style's usual speed, lowest bpm, highest bpm).
TEMPO_WORDS = {
    "very slow": (0.6, 36, 66), "slow": (0.75, 40, 84), "slowly": (0.75, 40, 84),
    "leisurely": (0.85, 40, 180), "relaxed": (0.85, 40, 180), "unhurried": (0.85, 40, 180),
    "moderate": (1.0, 72, 144), "medium": (1.0, 72, 144), "steady": (1.0, 60, 160),
    "lively": (1.1, 100, 216), "brisk": (1.1, 100, 216), "spirited": (1.1, 100, 216),
    "upbeat": (1.1, 100, 216), "uptempo": (1.15, 110, 216), "up-tempo": (1.15, 110, 216),
    "quick": (1.15, 120, 216), "fast": (1.15, 120, 216), "rapid": (1.2, 132, 224),
    "driving": (1.1, 110, 216), "very fast": (1.3, 144, 240),
}
# A speed word said with "not" ("a reel that isn't too fast") -> the word that means instead.
NEGATED_TEMPO = {"fast": "relaxed", "quick": "relaxed", "rapid": "relaxed", "very fast": "relaxed",
                 "lively": "relaxed", "slow": "steady", "very slow": "steady", "slowly": "steady"}

# Instruments -> General MIDI program (0-based, as ``%%MIDI program`` takes it). GM has no
# mandolin or tin whistle: the nearest sounds are the steel-string guitar and the GM whistle.
INSTRUMENTS = {
    "piano": 0, "grand piano": 0, "electric piano": 4, "harpsichord": 6, "celesta": 8,
    "glockenspiel": 9, "music box": 10, "vibraphone": 11, "marimba": 12, "xylophone": 13,
    "tubular bells": 14, "bells": 14, "hammered dulcimer": 15, "dulcimer": 15,
    "organ": 19, "church organ": 19, "pipe organ": 19, "harmonium": 20,
    "accordion": 21, "button accordion": 21, "piano accordion": 21, "melodeon": 21,
    "concertina": 21, "squeezebox": 21, "harmonica": 22, "mouth organ": 22, "bandoneon": 23,
    "guitar": 24, "classical guitar": 24, "nylon guitar": 24, "ukulele": 24, "lute": 24,
    "acoustic guitar": 25, "steel guitar": 25, "mandolin": 25, "bouzouki": 25,
    "electric guitar": 27, "double bass": 43, "contrabass": 43, "upright bass": 43,
    "fiddle": 40, "violin": 40, "viola": 41, "cello": 42, "violoncello": 42,
    "strings": 48, "string quartet": 48, "string orchestra": 48, "harp": 46, "celtic harp": 46,
    "timpani": 47, "choir": 52, "voice": 53, "trumpet": 56, "trombone": 57, "tuba": 58,
    "french horn": 60, "horn": 60, "brass band": 61, "brass": 61,
    "soprano sax": 64, "alto sax": 65, "saxophone": 65, "sax": 65, "tenor sax": 66,
    "baritone sax": 67, "oboe": 68, "cor anglais": 69, "english horn": 69, "bassoon": 70,
    "clarinet": 71, "piccolo": 72, "flute": 73, "wooden flute": 73, "irish flute": 73,
    "recorder": 74, "pan flute": 75, "pan pipes": 75, "panpipes": 75, "shakuhachi": 77,
    "tin whistle": 78, "penny whistle": 78, "whistle": 78, "low whistle": 78, "ocarina": 79,
    "sitar": 104, "banjo": 105, "shamisen": 106, "koto": 107, "kalimba": 108,
    "bagpipes": 109, "bagpipe": 109, "pipes": 109, "uilleann pipes": 109, "highland pipes": 109,
    "steel drums": 114,
}
# Emoji people use for instruments -> the instrument's name.
INSTRUMENT_EMOJI = {"🎻": "violin", "🎹": "piano", "🎸": "guitar", "🎺": "trumpet",
                    "🎷": "saxophone", "🪕": "banjo", "🪗": "accordion", "🪈": "flute"}

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "a": 1, "an": 1, "a single": 1, "a couple of": 2, "a few": 3,
    "a dozen": 12,
}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "last": -1, "final": -1,
            "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8}

# Intervals -> semitones; "minor" takes one off a major interval, "augmented" adds one,
# "diminished" takes one off a perfect interval (two off a major one).
INTERVALS = {
    "unison": 0, "semitone": 1, "half step": 1, "half tone": 1, "whole step": 2,
    "whole tone": 2, "tone": 2, "step": 2, "second": 2, "third": 4, "fourth": 5, "tritone": 6,
    "fifth": 7, "sixth": 9, "seventh": 11, "octave": 12, "ninth": 14,
}
PERFECT_INTERVALS = {"unison", "fourth", "fifth", "octave"}
QUALITY_SHIFT = {"major": 0, "perfect": 0, "minor": -1, "augmented": 1, "aug": 1,
                 "diminished": -1, "dim": -1}

# Meters people name in words.
METER_NAMES = {
    "common time": "4/4", "cut time": "2/2", "cut common time": "2/2", "alla breve": "2/2",
    "waltz time": "3/4", "triple time": "3/4", "triple meter": "3/4", "duple time": "2/4",
    "duple meter": "2/4", "quadruple time": "4/4", "compound duple": "6/8",
    "compound time": "6/8", "jig time": "6/8", "march time": "2/4", "reel time": "4/4",
}

# Questions about a tune: (kind, pattern on the lower-cased message). The first match wins.
QUESTION_PATTERNS = (
    ("mood", r"\bwhy\b.*\b(minor|major|sound|feel|" + "|".join(  # the mood table's words
        sorted({w for row in _MOOD_ROWS for w in (row.name, *row.words, *row.comparatives)},
               key=len, reverse=True)) + ")"),
    ("key", r"\b(what|which)(?:'s| is)?\b.*\b(key|scale|tonic|key signature)\b|"
            r"\bkey signature\b|\bis (it|this|the tune) (in )?(major|minor)\b"),
    ("meter", r"\btime signature\b|\b(what|which)\b.*\b(meter|metre|time is)\b|"
              r"\bhow many beats\b"),
    ("bars", r"\bhow many (bars|measures)\b|\bhow long is\b|\b(what|what's) the length\b"),
    ("range", r"\brange\b|\b(lowest|highest) note\b|\bhow (high|low)\b|\bambitus\b"),
    ("chords", r"\bchords?\b|\bharmon(y|ies|ise|ize)\b|\bprogression\b"),
    ("tempo", r"\bhow fast\b|\b(what|which)\b.*\b(tempo|speed|bpm)\b|\bhow quick\b"),
    ("instrument", r"\b(what|which)\b.*\binstrument\b"),
    ("title", r"\b(what|what's)\b.*\b(title|called|name)\b"),
    ("form", r"\b(what|what's)\b.*\b(form|structure)\b|\bhow many parts\b"),
    ("style", r"\b(what|which)\b.*\b(kind|type|style|sort) of (tune|dance|music|piece)\b|"
              r"\bis (it|this) an? (\w+ )?(jig|reel|waltz|hornpipe|polka|march|air)\b"),
    ("lyrics", r"\b(what|what're|what are)\b.*\b(lyrics|words)\b"),
    ("key", r"\b(the|its|this) key\b"),
    ("tempo", r"\b(the|its) (tempo|speed)\b"),
    ("meter", r"\b(the|its) (meter|metre)\b"),
    ("title", r"\b(the|its) (title|name)\b"),
    ("bars", r"\bhow long\b"),
    ("notes", r"\b(what|which)\b.*\bnotes?\b|\bfirst note\b|\blast note\b"),
)
# Every question kind a request can carry ("define" is about a word, not the tune).
QUESTION_KINDS = tuple(dict.fromkeys(kind for kind, _ in QUESTION_PATTERNS)) + ("define",)
# Topics a "what is a ..." question can be about without any tune.
GLOSSARY_TOPICS = tuple(STYLE_WORDS) + tuple(MODE_WORDS) + tuple(TEMPO_TERMS) + (
    "abc", "abc notation", "mode", "meter", "metre", "time signature", "key signature",
    "tempo", "bpm", "bar", "measure", "repeat", "triplet", "roll", "cut", "ornament",
    "grace note", "tonic", "interval", "octave", "fifth", "chord", "cadence", "relative minor",
    "relative major", "parallel minor", "parallel major", "transpose", "transposition",
)

GREETINGS = r"(hi|hello|hey|hiya|thanks|thank you|thank you very much|thx|cheers|great|" \
            r"nice|cool|lovely|wonderful|awesome|ok|okay|good|perfect|yes|no|sure|bye|goodbye|" \
            r"i like it|i love it|that'?s (great|nice|lovely|good|perfect|beautiful))"

# What to say when a message needs a tune and there is none yet, by what it asked for.
NEEDS_SCORE = {
    "exact_edit": "There is no tune yet to change. Ask for one first, for example "
                  "\"a lively jig in D\", and then tell me what to change.",
    "creative_edit": "There is no tune yet to rework. Ask for one first, for example "
                     "\"a slow air in E minor\".",
    "mood_edit": "There is no tune yet to change the mood of. Ask for one first, for example "
                 "\"a sad waltz in D minor\".",
    "lyrics": "There is no tune yet to put words to. Ask for a song, for example "
              "\"a ballad in G with lyrics about the sea\".",
    "question": "There is no tune yet to answer that about. Ask for one first, for example "
                "\"a waltz in A minor\".",
    "undo": "There is nothing to undo yet.",
    "redo": "There is nothing to redo.",
    "harmony": "There is no tune yet to put chords to. Ask for one first, for example "
               "\"a waltz in D\", or paste a melody in ABC.",
}
HELP_TEXT = (
    "Ask for a tune in your own words: \"a sad waltz in D minor\", \"a reel for fiddle at 110 "
    "bpm\", \"a lullaby with lyrics about the moon\". Then keep talking: \"make it faster\", "
    "\"transpose it up a fifth\", \"put it in E minor\", \"play it on the flute\", \"call it "
    "The Long Road\", \"rewrite the second half\", \"add words about autumn\", \"undo\", "
    "\"start over\". You can also paste ABC notation to work on your own tune."
)
