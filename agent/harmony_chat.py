"""Chords and accompaniment in the conversation: the words people use for them, what each
request does to the tune, and the answers to questions about its chords.

:mod:`agent.understand` asks :func:`harmony_ops` whether a message is about chords or the
backing and :func:`chord_question` whether it asks about them; :mod:`agent.conversation` hands
the operations to :func:`apply_harmony_ops` and a composed tune to :func:`chords_for_new_tune`.
Every operation changes only chord symbols and header directives: :func:`apply_harmony_ops`
checks that the melody and its ``w:`` lines read byte for byte as before, and refuses the
result otherwise (the words always survive a chord edit).

>>> harmony_ops("add chords please")
[AddChords(replace=False)]
>>> harmony_ops("change the chord in bar 5 to G7")
[SetChord(bar=5, name='G7')]
>>> harmony_ops("make it sadder")
[]
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.abc_text import parse_tune
from agent.accompaniment import (
    INSTRUMENTS, PATTERNS, accompaniment_of, describe_backing, set_accompaniment,
    show_accompaniment,
)
from agent.errors import InputError
from agent.harmony import (
    HarmonyConfig, HarmonyError, chords_in, enrich, harmonise, parse_chord, progression,
    set_chord, simplify, strip_chords,
)
from agent.ops import (
    AddChords, HarmonyOp, JazzierChords, Question, RemoveChords, SetAccompaniment, SetChord,
    SimplerChords,
)

__all__ = ["HarmonyOutcome", "harmony_ops", "chord_question", "apply_harmony_ops",
           "answer_chords", "chords_for_new_tune", "melody_text", "carry_chords"]

# --------------------------------------------------------------------------------------------
# Words

_BACKING = r"(?:accompaniment|accompanying|backing(?: part| track)?|oom-?pah(?:-pah)?)"
_CHORDS = r"(?:chords?|chord symbols|harmony|harmonies)"
_SHOW = re.compile(rf"\b(show|display|see|hide|don'?t show|do not show)\b.{{0,30}}\b{_BACKING}"
                   rf"(?:'s)?(?: staff| part| notes)?\b")
_OFF = re.compile(rf"\b(?:no|without|remove|delete|drop|mute|silence|turn off|switch off|stop)"
                  rf"\b(?: the| its| any)?(?: \w+)?\s{_BACKING}\b|\b{_BACKING}\s+off\b")
_ON = re.compile(rf"\b(?:turn on|switch on|bring back|restore|unmute)\b(?: the)? {_BACKING}\b|"
                 rf"\b{_BACKING}\s+(?:back )?on\b")
_REMOVE = re.compile(rf"\b(?:remove|delete|drop|take (?:off|out|away)|strip|get rid of|no more|"
                     rf"no|without)\b(?: all)?(?: the| its| any)? {_CHORDS}\b")
_REHARMONISE = re.compile(r"\bre-?harmoni[sz]e\b|\b(?:new|different|other|fresh) chords\b|"
                          r"\bharmoni[sz]e (?:it )?again\b|\breplace the chords\b")
_ADD = re.compile(rf"\b(?:add|put|give|write|with|need|want)\b.{{0,25}}\b(?:chords|chord symbols)"
                  rf"\b|\bharmoni[sz]e\b|\bchord (?:it|the tune|this)\b")
_SIMPLER = re.compile(rf"\b(?:simpler|simple|easier|plainer|basic|fewer)\s+{_CHORDS}\b|"
                      rf"\bsimplify\b.{{0,12}}\b{_CHORDS}\b|\b{_CHORDS}\b.{{0,12}}\bsimpler\b")
_JAZZIER = re.compile(rf"\b(?:jazzier|jazzy|jazz|richer|fancier|more colou?rful|spicier|"
                      rf"seventh)\s+{_CHORDS}\b|\bjazz up\b.{{0,12}}\b{_CHORDS}\b|"
                      rf"\b{_CHORDS}\b.{{0,12}}\b(?:jazzier|richer)\b")
_NAME = r"(?P<name>[A-Ha-h][^\s,.;!?\"']*)"
_SET_CHORD = (
    re.compile(rf"\bchord (?:in|of|at|on|for) (?:bar|measure) (?P<bar>\d+)\s+(?:to|into|"
               rf"should be|as|=)\s+(?:an? )?{_NAME}", re.I),
    re.compile(rf"\b(?:bar|measure) (?P<bar>\d+)(?:'s)? chord (?:to|into|should be|as)\s+"
               rf"(?:an? )?{_NAME}", re.I),
    re.compile(rf"\b(?:put|use|make it|make)\s+(?:an? )?{_NAME}(?: chord)? (?:in|on|at|for) "
               rf"(?:bar|measure) (?P<bar>\d+)\b", re.I),
    re.compile(rf"\b(?:make|set|change) (?:bar|measure) (?P<bar>\d+)(?: into| to)?\s+(?:an? )?"
               rf"{_NAME} chord\b", re.I),
)
_INSTRUMENT = re.compile(r"\b(" + "|".join(INSTRUMENTS) + r")\b")
_STYLE_NAMES = {**{name: name for name in PATTERNS}, "arpeggio": "air", "arpeggiated": "air",
                "slow air": "air", "ballad": "air", "block chord": "block", "block-chord": "block",
                "plain": "block", "oom-pah": "waltz", "oompah": "waltz"}
_STYLE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _STYLE_NAMES), key=len, reverse=True))
                    + r")\b")
_VOLUME = re.compile(r"\b(quieter|softer|less loud|louder|stronger|more prominent)\b")
_CHORD_QUESTION = re.compile(rf"\b(?:what|which)\b.{{0,30}}\b{_CHORDS}\b.{{0,25}}"
                             rf"\b(?:bar|measure) (?P<bar>\d+)\b|\b(?:bar|measure) (?P<bar2>\d+)"
                             rf"\b.{{0,20}}\bwhat {_CHORDS}\b")
_PROGRESSION_QUESTION = re.compile(rf"\b(?:what|which|tell me|show me)\b.{{0,30}}\b(?:progression|"
                                   rf"{_CHORDS})\b")


# --------------------------------------------------------------------------------------------
# Reading a message


def harmony_ops(text: str, new_tune: bool = False) -> list[HarmonyOp]:
    """The chord and accompaniment operations a message asks for (empty when none).
    ``new_tune``: the message also reads as asking for a new tune ("a waltz accompaniment");
    then only a message about the backing alone counts ("write a new waltz with chords" is a
    new tune).

    >>> harmony_ops("Give it a guitar accompaniment")
    [SetAccompaniment(style=None, instrument='guitar', volume=None, on=True, show=None)]
    >>> harmony_ops("accompaniment on piano, quieter")
    [SetAccompaniment(style=None, instrument='piano', volume='quieter', on=True, show=None)]
    >>> harmony_ops("remove the chords"), harmony_ops("simpler chords"), harmony_ops("re-harmonise")
    ([RemoveChords()], [SimplerChords()], [AddChords(replace=True)])
    >>> harmony_ops("hide the accompaniment")
    [SetAccompaniment(style=None, instrument=None, volume=None, on=None, show=False)]
    >>> harmony_ops("add lyrics about the sea")
    []
    >>> harmony_ops("a waltz accompaniment", new_tune=True)[0].style
    'waltz'
    >>> harmony_ops("write a new waltz with chords", new_tune=True)
    []
    """
    low = " ".join(text.lower().replace("’", "'").split())
    if new_tune:
        if re.search(r"\b(?:write|compose|create|new|another|tune|melody|song|piece)\b", low):
            return []
        return [op for op in harmony_ops(text) if isinstance(op, SetAccompaniment)]
    for pattern in _SET_CHORD:
        m = pattern.search(text)
        if m:
            return [SetChord(int(m.group("bar")), m.group("name"))]
    m = _SHOW.search(low)
    if m:
        return [SetAccompaniment(show=not re.match(r"hide|don'?t|do not", m.group(1)))]
    if _OFF.search(low):
        return [SetAccompaniment(on=False)]
    if _REMOVE.search(low):
        return [RemoveChords()]
    if _SIMPLER.search(low):
        return [SimplerChords()]
    if _JAZZIER.search(low):
        return [JazzierChords()]
    if _REHARMONISE.search(low):
        return [AddChords(replace=True)]
    if re.search(rf"\b{_BACKING}\b", low) or (_ON.search(low)):
        style = _STYLE.search(low)
        instrument = _INSTRUMENT.search(low)
        volume = _VOLUME.search(low)
        level = None if volume is None else (
            "quieter" if volume.group(1) in ("quieter", "softer", "less loud") else "louder")
        return [SetAccompaniment(style=_STYLE_NAMES[style.group(1)] if style else None,
                                 instrument=instrument.group(1) if instrument else None,
                                 volume=level, on=True)]
    if _ADD.search(low):
        return [AddChords()]
    return []


def chord_question(text: str) -> Question | None:
    """A question about the tune's chords: in one bar (``subject`` the bar number) or all.

    >>> chord_question("what chords are in bar 5?")
    Question(kind='chords', subject='5')
    >>> chord_question("What's the progression?")
    Question(kind='chords', subject=None)
    >>> chord_question("add chords") is None
    True
    """
    low = " ".join(text.lower().replace("’", "'").split())
    if not re.search(r"\?|^(?:what|which|tell me|show me)\b", low):
        return None
    m = _CHORD_QUESTION.search(low)
    if m:
        return Question("chords", m.group("bar") or m.group("bar2"))
    if _PROGRESSION_QUESTION.search(low):
        return Question("chords")
    return None


# --------------------------------------------------------------------------------------------
# Doing it


@dataclass(frozen=True)
class HarmonyOutcome:
    """The tune after a chord request, the reply, and whether anything changed."""

    abc: str
    reply: str
    changed: bool


def melody_text(abc: str) -> str:
    """The tune's body with its chord symbols taken out: the melody and the words, which no
    chord or accompaniment request may change.

    >>> melody_text('X:1\\nK:G\\n"G"GABc|\\nw:la la la la\\n')
    'GABc|\\nw:la la la la\\n'
    """
    plain = strip_chords(abc)
    return plain[parse_tune(plain).body_offset:]


def _has_chords(abc: str) -> bool:
    return any(bar.chords for bar in chords_in(abc))


def _harmonised(abc: str, replace: bool, style: str | None = None) -> tuple[str, str]:
    result = harmonise(abc, HarmonyConfig(style=style, replace=replace))
    return result.abc, result.summary


def _one(abc: str, op: HarmonyOp) -> HarmonyOutcome:
    if isinstance(op, AddChords):
        if not op.replace and _has_chords(abc):
            return HarmonyOutcome(abc, "The tune already has chords (" + progression(abc) + "). "
                                  "Say “re-harmonise” for new ones.", False)
        new, summary = _harmonised(abc, op.replace)
        if op.replace:
            summary = summary.replace("I added chords", "I re-harmonised it")
        backing = describe_backing(new)
        return HarmonyOutcome(new, f"{summary[:-1]}, with {backing}.", True)
    if isinstance(op, SetChord):
        chord = parse_chord(op.name)
        new = set_chord(abc, op.bar, op.name)
        return HarmonyOutcome(new, f"Bar {op.bar} now has {chord.name} ({chord.words()}).", True)
    if isinstance(op, RemoveChords):
        if not _has_chords(abc):
            return HarmonyOutcome(abc, "The tune has no chords to remove.", False)
        return HarmonyOutcome(strip_chords(abc), "I took the chords off (and with them the "
                              "accompaniment); the melody and words are as they were.", True)
    if isinstance(op, (SimplerChords, JazzierChords)):
        prefix, base = "", abc
        if not _has_chords(abc):
            base, _ = _harmonised(abc, False)
            prefix = "I added chords first. "
        new = simplify(base) if isinstance(op, SimplerChords) else enrich(base)
        word = "simpler" if isinstance(op, SimplerChords) else "jazzier"
        if new == base:
            return HarmonyOutcome(base, f"{prefix}The chords are as {word[:-2]} as the melody "
                                  f"allows: {progression(base)}.", base != abc)
        return HarmonyOutcome(new, f"{prefix}The chords are {word} now: {progression(new)}.",
                              True)
    return _accompaniment(abc, op)


def _accompaniment(abc: str, op: SetAccompaniment) -> HarmonyOutcome:
    prefix, new = "", abc
    wants_sound = op.on is not False and op.show is not False
    if wants_sound and not _has_chords(abc):
        new, summary = _harmonised(abc, False)
        prefix = summary[:-1].replace("I added chords", "I added chords for it") + ". "
    if op.show is not None:
        new = show_accompaniment(new, op.show)
        if op.show and not accompaniment_of(new).on:
            new = set_accompaniment(new, on=True)
        said = ("The accompaniment's staff is on the sheet now, under the melody."
                if op.show else "The sheet shows the melody with its chord names; the "
                "accompaniment still plays.")
        return HarmonyOutcome(new, prefix + said, new != abc)
    new = set_accompaniment(new, style=op.style, instrument=op.instrument, volume=op.volume,
                            on=op.on)
    if op.on is False:
        return HarmonyOutcome(new, "No accompaniment now: the chord names stay on the sheet, "
                              "the backing is silent (say “accompaniment on” to hear it again).",
                              new != abc)
    got = accompaniment_of(new).style
    if op.style is not None and got != op.style:  # the style has no pattern in this meter
        meter = str(parse_tune(new).meter)
        prefix += f"The {op.style} pattern does not fit {meter}, so I used {got} chords. "
    return HarmonyOutcome(new, f"{prefix}Now with {describe_backing(new)}.", new != abc)


def apply_harmony_ops(abc: str, ops: tuple[HarmonyOp, ...] | list[HarmonyOp]) -> HarmonyOutcome:
    """Carry out chord and accompaniment operations on ``abc``; the melody and words stay.

    Raises :class:`agent.errors.InputError` (a bar that does not exist, a chord name not
    understood) or :class:`agent.harmony.HarmonyError` (a melody that cannot be harmonised);
    the tune is then unchanged.

    >>> abc = "X:1\\nT:Air\\nR:waltz\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\nw:one two three\\n"
    >>> out = apply_harmony_ops(abc, [AddChords()])
    >>> out.reply
    'I added chords: one a bar, ending on D major, with a waltz (oom-pah-pah) accompaniment on piano.'
    >>> melody_text(out.abc) == melody_text(abc)
    True
    >>> apply_harmony_ops(out.abc, [SetChord(99, "G")])
    Traceback (most recent call last):
    ...
    agent.errors.InputError: there is no bar 99: the tune has bars 1 to 4
    """
    current, replies, changed = abc, [], False
    for op in ops:
        outcome = _one(current, op)
        current, changed = outcome.abc, changed or outcome.changed
        replies.append(outcome.reply)
    if melody_text(current) != melody_text(abc):  # a guard: chords never change the melody
        raise HarmonyError("changing the chords would have changed the melody or the words, "
                           "so I left the tune as it was")
    return HarmonyOutcome(current, " ".join(replies), changed and current != abc)


# --------------------------------------------------------------------------------------------
# Questions and new tunes


def answer_chords(abc: str, bar: str | None = None) -> str:
    """The chords of bar ``bar`` (as the score numbers it), or the whole progression; a tune
    without chords gets the chords the harmoniser would choose, as a suggestion.

    >>> abc = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A7"cea|"D"d3|]\\n'
    >>> answer_chords(abc, "3")
    'Bar 3 has A7 (A seventh).'
    >>> answer_chords(abc)
    'The progression, bar by bar: D | G | A7 | D.'
    >>> answer_chords(abc, "9")
    'There is no bar 9: the tune has bars 1 to 4.'
    """
    if not _has_chords(abc):
        try:
            suggested, _ = _harmonised(abc, False)
        except HarmonyError as err:
            return f"The tune has no chords, and I cannot suggest any: {err}."
        return ("The tune has no chords yet. These would fit: " + progression(suggested)
                + " (say “add chords” to put them on the score).")
    if bar is None:
        return f"The progression, bar by bar: {progression(abc)}."
    bars = chords_in(abc)
    wanted = [b for b in bars if b.bar == int(bar)]
    if not wanted:
        return f"There is no bar {bar}: the tune has bars {bars[0].bar} to {bars[-1].bar}."
    if not wanted[0].chords:
        from agent.harmony import chord_in_force

        held = chord_in_force(bars)[bars.index(wanted[0])]
        return (f"Bar {bar} has no chord of its own; {held} carries on from before." if held
                else f"Bar {bar} has no chord.")
    named = [f"{name} ({parse_chord(name).words()})" for _, name in wanted[0].chords]
    return f"Bar {bar} has " + " then ".join(named) + "."


def chords_for_new_tune(abc: str, style: str | None = None) -> tuple[str, str]:
    """A newly composed tune with chords and its style's accompaniment written in its header,
    and a phrase for the reply; the tune unchanged (and why) when it cannot be harmonised.

    >>> abc = "X:1\\nT:Air\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\n"
    >>> new, said = chords_for_new_tune(abc, "waltz")
    >>> said
    'with chords, one a bar, ending on D major, and a waltz (oom-pah-pah) accompaniment on piano'
    >>> new.splitlines()[4]
    '%%MIDI gchord fcc'

    Chord symbols the model wrote itself are replaced: the harmoniser's chords are the ones
    measured against musicians' (docs/benchmarks.md), and the model's may cover a few bars only.

    >>> chords_for_new_tune(abc.replace("GBd", '"Em"GBd'), "waltz")[1] == said
    True
    """
    try:
        result = harmonise(abc, HarmonyConfig(style=style, replace=True))
    except HarmonyError as err:
        return abc, f"without chords ({err})"
    try:
        new = set_accompaniment(result.abc, style=style or accompaniment_of(result.abc).style)
    except InputError:  # a style with no backing pattern of its own: the meter's default
        new = set_accompaniment(result.abc, style=accompaniment_of(result.abc).style)
    rate = result.summary.replace("I added chords: ", "").rstrip(".")
    return new, f"with chords, {rate}, and {describe_backing(new)}"


def carry_chords(old: str, new: str) -> tuple[str, str]:
    """After some bars' notes were rewritten (``old`` -> ``new``): each bar that had chords
    and lost them gets the harmoniser's chord for its new notes; other bars keep theirs. Returns
    the tune and a sentence for the reply ('' when nothing was needed or possible).

    >>> old = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A"cea|"D"d3|]\\n'
    >>> new, said = carry_chords(old, 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|GBG|"A"cea|"D"d3|]\\n')
    >>> new.splitlines()[-1], said
    ('"D"DFA|"G"GBG|"A"cea|"D"d3|]', ' New chords for the rewritten bar 2.')
    >>> carry_chords(old, old)
    ('X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A"cea|"D"d3|]\\n', '')
    """
    try:
        before, after = chords_in(old), chords_in(new)
        lost = [a.bar for b, a in zip(before, after) if b.chords and not a.chords]
        if not lost:
            return new, ""
        fresh = {b.bar: b.chords for b in
                 chords_in(harmonise(strip_chords(new), HarmonyConfig(replace=True)).abc)}
    except (HarmonyError, InputError):  # the new notes cannot be harmonised: say nothing
        return new, ""
    out = new
    for bar in lost:
        if fresh.get(bar):
            out = set_chord(out, bar, fresh[bar][0][1])
    said = ", ".join(map(str, lost))
    return out, f" New chords for the rewritten bar{'s' if len(lost) > 1 else ''} {said}."
