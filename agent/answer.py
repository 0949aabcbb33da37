"""Answers to questions about the current score, from music21's analysis, never from the model.

"What key is it in?", "what's the time signature?", "how many bars?", "what's the range?",
"what chords fit?", "why does it sound sad?" — each answer reads the score: the key signature
first (what the composer wrote), then music21's key analysis as a second opinion; bars are
counted from the ABC text as written. Asking a question never changes the score.

>>> tune = "X:1\\nT:Scale\\nM:4/4\\nL:1/8\\nQ:1/4=100\\nK:Dm\\nDEFG A2d2|cAGE D4|]\\n"
>>> answer_question(tune, "meter")
'It is in 4/4 (4 quarter-note beats to the bar).'
>>> answer_question(tune, "bars")
'It has 2 bars.'
>>> answer_question(tune, "weather")
Traceback (most recent call last):
...
ValueError: unknown question kind 'weather'
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from agent.abc_reader import read_tune
from agent.abc_text import bar_count, parse_tune, split_bars, tokenize_body
from agent.notation import MINOR_THIRD_MODES

QUESTION_KINDS = ("key", "meter", "bars", "range", "chords", "mood", "tempo", "title", "instrument",
                  "form", "style", "lyrics", "notes")

# Short answers to "what is a ...?" questions, which need no tune.
GLOSSARY = {
    "jig": "A jig is a lively dance tune in 6/8, two groups of three eighth notes to the bar.",
    "slip jig": "A slip jig is a dance tune in 9/8: three groups of three eighth notes to the bar.",
    "reel": "A reel is a fast dance tune in 4/4 (or 2/2), running mostly in eighth notes.",
    "hornpipe": "A hornpipe is a dance tune in 4/4 with a swung, dotted rhythm, slower than a reel.",
    "polka": "A polka is a quick dance tune in 2/4.",
    "waltz": "A waltz is a dance in 3/4 with the weight on the first beat of each bar.",
    "mazurka": "A mazurka is a Polish dance in 3/4, often with the accent on the second or third beat.",
    "march": "A march is a tune for walking in step, in 2/4, 4/4 or 6/8.",
    "strathspey": "A strathspey is a Scottish dance tune in 4/4 full of 'Scotch snaps' (short-long pairs).",
    "air": "An air is a slow, song-like tune, played freely and expressively.",
    "lullaby": "A lullaby is a gentle, slow song to send a child to sleep.",
    "mode": "A mode is a scale with its own pattern of steps: major (ionian), dorian, phrygian, "
            "lydian, mixolydian, minor (aeolian) and locrian start on different degrees of the same notes.",
    "dorian": "Dorian is a minor mode with a raised sixth: D dorian is D E F G A B C.",
    "mixolydian": "Mixolydian is a major mode with a lowered seventh: G mixolydian is G A B C D E F.",
    "lydian": "Lydian is a major mode with a raised fourth: F lydian is F G A B C D E.",
    "phrygian": "Phrygian is a minor mode with a lowered second: E phrygian is E F G A B C D.",
    "locrian": "Locrian is the mode on the seventh degree, with a lowered second and fifth: B C D E F G A.",
    "time signature": "The time signature says how many beats a bar has and which note gets the beat: "
                      "3/4 is three quarter-note beats.",
    "meter": "The meter is the pattern of beats in each bar, written as a time signature like 6/8.",
    "key signature": "The key signature is the set of sharps or flats at the start of each staff.",
    "tempo": "The tempo is the speed of the beat, in beats per minute (bpm).",
    "bar": "A bar (or measure) is one group of beats between two bar lines.",
    "triplet": "A triplet is three notes played in the time of two.",
    "abc": "ABC is a plain-text music notation: letters for notes, | for bar lines, a header with "
           "the title (T:), meter (M:), note length (L:), tempo (Q:) and key (K:).",
    "transpose": "To transpose is to move every note up or down by the same interval, changing the key.",
    "relative minor": "The relative minor shares the major key's signature and starts a sixth above "
                      "its tonic: A minor is the relative minor of C major.",
    "tonic": "The tonic is the home note of a key, where a tune usually ends.",
    "chord": "A chord is three or more notes sounding together; a triad is built of stacked thirds.",
}


def define(topic: str | None) -> str:
    """A short definition of a music word, or an honest 'I don't know that one'.

    >>> define("jig")
    'A jig is a lively dance tune in 6/8, two groups of three eighth notes to the bar.'
    >>> define("zither tuning")
    "I don't have a definition for “zither tuning”."
    """
    key = (topic or "").strip().lower()
    if key in GLOSSARY:
        return GLOSSARY[key]
    for word, text in GLOSSARY.items():
        if word in key.split() or key.endswith(word):
            return text
    return f"I don't have a definition for “{topic}”."

_BEAT_NAMES = {2: "half-note", 4: "quarter-note", 8: "eighth-note", 16: "sixteenth-note"}

# The triads a melody note most often sits in, by scale degree (1-based) of a major or minor key.
_DEGREE_NAMES = ("I", "ii", "iii", "IV", "V", "vi", "vii")


@dataclass(frozen=True)
class ScoreFacts:
    """What the questions need, read once from the ABC."""

    title: str
    key_field: str
    meter: str
    tempo: str
    bars: int
    lowest: str
    highest: str
    span_semitones: int
    analysed_key: str
    analysis_confidence: float
    mode: str
    tonic_name: str
    program: int | None


def score_facts(abc: str) -> ScoreFacts:
    """Read the facts a question may ask about."""
    tune = parse_tune(abc)
    read = read_tune(abc)
    score = read.score
    pitches = [p for n in score.recurse().notes if not _is_chord_symbol(n) for p in n.pitches]
    if not pitches:
        raise ValueError("the score has no notes")
    low = min(pitches, key=lambda p: p.ps)
    high = max(pitches, key=lambda p: p.ps)
    signature = score.recurse().getElementsByClass("Key")
    written = signature[0] if signature else None
    analysed = score.analyze("key")
    program = None
    for line in abc.splitlines():
        if line.replace(" ", "").lower().startswith("%%midiprogram"):
            digits = "".join(ch for ch in line.split("program", 1)[1] if ch.isdigit())
            program = int(digits) if digits else None
    return ScoreFacts(
        title=tune.get("T") or "Untitled",
        key_field=tune.get("K") or "",
        meter=tune.get("M") or "free",
        tempo=tune.get("Q") or "",
        bars=bar_count(tune),
        lowest=low.nameWithOctave,
        highest=high.nameWithOctave,
        span_semitones=int(high.ps - low.ps),
        analysed_key=f"{analysed.tonic.name} {analysed.mode}",
        analysis_confidence=float(analysed.correlationCoefficient or 0.0),
        mode=(written.mode if written is not None and getattr(written, "mode", None) else analysed.mode),
        tonic_name=(written.tonic.name if written is not None and hasattr(written, "tonic") else analysed.tonic.name),
        program=program,
    )


def score_summary(abc: str) -> dict:
    """Title, key, meter, tempo in bpm and bars of a tune, read from its text alone (no music21):
    what the command line prints and the app lists for each version.

    >>> score_summary("X:1\\nT:Air\\nM:3/4\\nL:1/8\\nQ:1/4=90\\nK:D\\nD2 F2 A2|d6|]\\n")
    {'title': 'Air', 'key': 'D', 'meter': '3/4', 'tempo_bpm': 90, 'bars': 2}
    >>> score_summary("T:no X or K")
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: the tune has no K: (key) field; the header must end with K:
    """
    tune = parse_tune(abc)
    tempo = tune.get("Q") or ""
    bpm = int(tempo.split("=")[-1]) if "=" in tempo and tempo.split("=")[-1].strip().isdigit() else None
    return {"title": tune.title or "", "key": tune.get("K") or "", "meter": tune.get("M") or "",
            "tempo_bpm": bpm, "bars": bar_count(tune)}


def _is_chord_symbol(element) -> bool:
    return "ChordSymbol" in element.classes


def _nice(name: str) -> str:
    return name.replace("-", "♭").replace("#", "♯")


def answer_question(abc: str, kind: str) -> str:
    """One or two sentences answering a question of ``kind`` (see QUESTION_KINDS) about ``abc``."""
    if kind not in QUESTION_KINDS:
        raise ValueError(f"unknown question kind {kind!r}")
    if kind == "meter":
        tune = parse_tune(abc)
        meter = tune.get("M") or "free"
        if "/" in meter:
            top, bottom = meter.split("/", 1)
            beat = _BEAT_NAMES.get(int(bottom), f"1/{bottom}")
            return f"It is in {meter} ({top} {beat} beats to the bar)."
        return f"It is in {meter} time."
    if kind == "bars":
        tune = parse_tune(abc)
        return f"It has {bar_count(tune)} bars."
    facts = score_facts(abc)
    if kind == "key":
        agree = facts.analysed_key.split()[0] == facts.tonic_name
        second = (
            "the notes agree" if agree else f"the notes on their own lean towards {_nice(facts.analysed_key)}"
        )
        return (
            f"It is in {_nice(facts.tonic_name)} {facts.mode} (key signature K:{facts.key_field}); "
            f"{second} (music21's key analysis, confidence {facts.analysis_confidence:.2f})."
        )
    if kind == "range":
        return (
            f"It goes from {_nice(facts.lowest)} up to {_nice(facts.highest)}, "
            f"a span of {facts.span_semitones} semitones."
        )
    if kind == "tempo":
        return f"The tempo is {facts.tempo}." if facts.tempo else "No tempo is marked."
    if kind == "title":
        return f"It is called “{facts.title}”."
    if kind == "instrument":
        if facts.program is None:
            return "No instrument is set, so it plays on the piano (General MIDI program 1)."
        return f"It plays on General MIDI program {facts.program + 1}."
    if kind == "chords":  # the tune's own chords, else the harmoniser's suggestion
        from agent.harmony_chat import answer_chords

        return answer_chords(abc)
    if kind in ("form", "style", "lyrics", "notes"):
        return _describe_text(abc, kind)
    return explain_mood(abc, facts)


def _describe_text(abc: str, kind: str) -> str:
    """Answers read straight from the ABC text: form, style, lyrics and notes."""
    from agent.abc_text import Kind

    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    if kind == "style":
        style = tune.get("R")
        return f"It is a {style}." if style else "No style is named (there is no R: field)."
    if kind == "lyrics":
        words = [t.text[2:].strip() for t in tokens if t.kind is Kind.LYRICS]
        return ("The words are: " + " / ".join(words).replace("-", "").replace("_", "")) if words else \
            "It has no lyrics yet; ask me to add some."
    if kind == "notes":
        notes = [t for t in tokens if t.kind is Kind.NOTE or t.kind is Kind.CHORD]
        first, last = notes[0].names[0], notes[-1].names[0]
        return f"It has {len(notes)} notes; it starts on {_nice(first)} and ends on {_nice(last)}."
    repeats = sum(1 for t in tokens if t.kind is Kind.BAR and ":" in t.text)
    bars = bar_count(tune, tokens)
    endings = sum(1 for t in tokens if t.kind is Kind.ENDING)
    if not repeats:
        return f"It is through-composed: {bars} bars played once, with no repeats."
    extra = f" and {endings} first/second endings" if endings else ""
    return f"It has {bars} written bars with {repeats} repeat signs{extra}, so some parts are played twice."


def explain_mood(abc: str, facts: ScoreFacts | None = None) -> str:
    """Why the tune sounds as it does, from the cues listeners hear (mode, tempo against its
    style, register, dynamics, articulation, running notes): :func:`agent.mood.explain_mood`,
    the same cues the mood edits move. ``facts`` is not needed (kept for the callers).

    >>> explain_mood("X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=80\\nK:Am\\n!p!A,4 C2|E6|]\\n")[:40]
    'It sounds sad and melancholy: it is in A'
    >>> explain_mood("")
    Traceback (most recent call last):
    ...
    agent.errors.InputError: there is no tune to measure (the ABC text is empty)
    """
    from agent.mood import explain_mood as from_cues

    return from_cues(abc)


def suggest_chords(abc: str) -> str:
    """A chord per bar that fits the melody: the diatonic triad covering most of the bar's notes.

    Written here because music21 offers chord analysis of harmony already present, not the
    choice of a triad under a bare melody. Each bar's notes are weighted by duration, and the
    tonic, subdominant and dominant win ties, as in folk accompaniment.
    """
    from music21 import key as m21key

    facts = score_facts(abc)
    mode = facts.mode if facts.mode in ("major", "minor") else (
        "minor" if facts.mode in MINOR_THIRD_MODES else "major")
    scale_key = m21key.Key(facts.tonic_name, mode)
    triads = []
    for degree in range(1, 8):
        root = scale_key.pitchFromDegree(degree)
        third = scale_key.pitchFromDegree((degree + 1) % 7 + 1)
        fifth = scale_key.pitchFromDegree((degree + 3) % 7 + 1)
        triads.append((degree, root, {root.pitchClass, third.pitchClass, fifth.pitchClass}, third))
    tune = parse_tune(abc)
    names = []
    for bar in split_bars(tokenize_body(tune.body, tune)):
        weights: Counter[int] = Counter()
        for token in bar.notes:
            for midi in token.pitches or ():
                weights[midi % 12] += Fraction(token.duration or 0)
        if not weights:
            continue
        preference = {1: 0.3, 4: 0.2, 5: 0.25}

        def fit(triad):
            degree, _, members, _ = triad
            return sum(w for pc, w in weights.items() if pc in members) + preference.get(degree, 0)

        degree, root, _, third = max(triads, key=fit)
        quality = "m" if (third.pitchClass - root.pitchClass) % 12 == 3 else ""
        if degree == 7:
            quality = "dim"
        names.append(f"{_nice(root.name)}{quality}")
    if not names:
        return "There are no notes to harmonise yet."
    return "Chords that fit, one per bar: " + " | ".join(names) + "."
