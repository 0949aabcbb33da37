"""Moods in the conversation: a new tune written to a mood's plan, and a tune moved toward one.

:mod:`agent.mood` holds the mood table, the plan for a new tune and the exact edits; this
module joins them to a turn. A new tune takes the plan's tempo (unless a speed was said), its
instrument (unless one was named), its rhythm limit (fewer running notes for a sad tune), and
after composing its dynamics, articulation and, where the melody sits on the wrong side of its
style's usual register, a move by an octave. A mood edit ("sadder", "a bit happier") changes
tempo, dynamics, octave and articulation exactly, and rewrites only the bars with more running
notes than the mood allows, and only in a tune without words (a rewrite would lose them; the
reply says so); the rewritten bars of a tune with chord symbols get chords for their new notes.

>>> from agent.understand import understand, resolve
>>> asked = understand("a sad waltz", has_score=False).attributes
>>> attrs, plan = plan_new_tune(asked, resolve(asked))
>>> attrs.tempo_bpm, attrs.mode, attrs.instrument, plan.dynamics
(88, 'minor', 'cello', 'p')
>>> plan_new_tune(asked, None)
Traceback (most recent call last):
...
TypeError: resolved must be Attributes, not NoneType
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from agent.abc_text import parse_tune, split_bars, tokenize_body
from agent.edits import apply_edits, transpose
from agent.mood import (DEFAULT_MOOD_CONFIG, SHORT_NOTE, CueChange, MoodEdit, MoodPlan,
                        MoodRequest, change_density, compose_plan, cue_directions,
                        density_target, edit_reply, find_mood, measure_cues, mood_edit,
                        register_target, set_articulation, set_dynamics, tempo_limits)
from agent.ops import (Attributes, ChangeMode, MoodChange, Request, SetInstrument, SetTempo,
                       Transpose)
from agent.understand import mood_request, understand

# "louder", "a bit softer", "more quietly": a step of the dynamics said with a mood.
_LOUDNESS = re.compile(r"\b(?:(?:a (?:bit|little|lot|touch) |much |even )?(?P<word>louder|softer|"
                       r"quieter)|more (?P<adverb>loudly|softly|quietly))\b")
# What is left of "make it happier and louder" once the mood and the loudness are taken out.
_FILLER = re.compile(r"\b(?:make|it|the|tune|song|melody|this|and|also|but|a|bit|little|lot|"
                     r"touch|much|even|please|too|as|well|then|more|less|sound|play)\b|[,.;!&+]")
# The exact edits that move a mood's own cues, and can be said with it in one message.
_CUE_EDITS = (SetTempo, Transpose, ChangeMode, SetInstrument)
from agent.validate import instrument_range

# --------------------------------------------------------------------------------------------
# A new tune


def plan_new_tune(asked: Attributes, resolved: Attributes) -> tuple[Attributes, MoodPlan | None]:
    """The resolved attributes of a new tune with its mood's plan applied, and the plan (None
    without a mood): the plan's tempo when no speed was said, its instrument when none was
    named and the tune has no words (both marked inferred). The mode a mood suggests is already set by the understanding.
    """
    if not isinstance(resolved, Attributes):
        raise TypeError(f"resolved must be Attributes, not {type(resolved).__name__}")
    request = mood_request(asked)
    if request is None or request.mood is None:
        return resolved, None
    plan = compose_plan(request, resolved.style, resolved.meter or "4/4")
    filled: dict[str, object] = {}
    if asked.tempo_bpm is None and asked.tempo_word is None:
        filled["tempo_bpm"] = plan.bpm
    if asked.instrument is None and plan.instrument and not (asked.lyrics or asked.lyrics_text):
        filled.update(instrument=plan.instrument, program=plan.program)
    inferred = resolved.inferred + tuple(k for k in filled if k not in resolved.inferred)
    return replace(resolved, **filled, inferred=inferred), plan


def finish_new_tune(abc: str, plan: MoodPlan | None) -> tuple[str, str]:
    """A composed tune with its mood's dynamics and articulation marked and, when its melody
    sits on the wrong side of its style's usual register, moved by an octave (when its notes
    stay in the instrument's range). Returns the tune and a sentence for the reply.

    >>> tune = "X:1\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=88\\nK:Dm\\nd2 f2 a2|d6|]\\n"
    >>> print(finish_new_tune(tune, compose_plan("sad", "waltz", "3/4"))[0], end="")
    X:1
    R:waltz
    M:3/4
    L:1/8
    Q:1/4=88
    K:Dm
    !p!D2 F2 A2|D6|]
    >>> finish_new_tune("X:1\\nK:C\\n", compose_plan("sad", "waltz", "3/4"))
    Traceback (most recent call last):
    ...
    agent.errors.InputError: the tune has no notes to measure
    """
    if plan is None or plan.mood is None:
        return abc, ""
    done: list[str] = []
    way = cue_directions(MoodRequest(plan.mood, plan.intensity))["density"]
    if way:  # the composer's rhythm prior is a pull; whole beats rewritten make sure of it
        style = measure_cues(abc).style
        abc, beats = change_density(abc, way, density_target(style, way))
        if beats:
            done.append(f"written with {'fewer' if way < 0 else 'more'} notes ({beats} beat"
                        f"{'s' if beats != 1 else ''} {'held' if way < 0 else 'played as repeated notes'})")
    cues = measure_cues(abc)
    limits = instrument_range(cues.program) if cues.program is not None else None
    lowest, highest = (limits[0], limits[1]) if limits else (DEFAULT_MOOD_CONFIG.lowest,
                                                             DEFAULT_MOOD_CONFIG.highest)
    shift = register_target(cues.mean_pitch, plan.register, cues.style, lowest, highest,
                            cues.lowest, cues.highest)
    if shift:
        abc = transpose(abc, Transpose(semitones=shift)).abc
        done.append(f"moved an octave {'higher' if shift > 0 else 'lower'}")
    if plan.dynamics != cues.dynamics:
        abc = set_dynamics(abc, level=plan.dynamics)
        done.append(f"marked {plan.dynamics}")
    if plan.articulation:
        abc, changed = set_articulation(abc, plan.articulation)
        if changed and plan.articulation == "staccato":
            done.append("played with staccato on the off-beat notes of its running passages")
    if not done:
        return abc, ""
    listed = done[0] if len(done) == 1 else ", ".join(done[:-1]) + " and " + done[-1]
    return abc, f"To sound {plan.mood} it is {listed}."


# --------------------------------------------------------------------------------------------
# A mood edit


@dataclass(frozen=True)
class MoodTurn:
    """What a mood edit did: the new tune, the reply, the summary for the history and
    ``details`` (the cues before and after, the rewritten bars, the time taken)."""

    abc: str
    reply: str
    summary: str
    details: dict = field(default_factory=dict)


def _short_share(tokens: list[Any]) -> float:
    timed = [t for t in tokens if t.is_timed and t.duration]
    return sum(1 for t in timed if t.duration < SHORT_NOTE) / len(timed) if timed else 0.0


def busy_bars(abc: str, short_notes: float) -> list[tuple[int, int]]:
    """Runs of bars (1-based, as :func:`agent.abc_text.split_bars` counts them) whose share of
    notes shorter than an eighth is over ``short_notes``: the bars a sparser rhythm rewrites.

    >>> busy_bars("X:1\\nM:3/4\\nL:1/8\\nK:G\\nB2 A2 G2|ABcBAG|ABcB A2|G6|]\\n", 0.3)
    []
    >>> busy_bars("X:1\\nM:3/4\\nL:1/8\\nK:G\\nB2 A2 G2|A/B/c/B/ A2 G2|A/B/c/B/A/G/ B2|G6|]\\n", 0.3)
    [(2, 3)]
    """
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    busy = []
    for number, bar in enumerate(split_bars(tokens, tune), start=1):
        inside = [t for t in tokens if bar.start <= t.start < bar.end]
        if _short_share(inside) > short_notes:
            busy.append(number)
    runs: list[tuple[int, int]] = []
    for number in busy:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _run_share(abc: str, first: int, last: int) -> float:
    """The share of notes shorter than an eighth in bars ``first..last`` (1-based)."""
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    bars = split_bars(tokens, tune)[first - 1:last]
    return _short_share([t for t in tokens if any(b.start <= t.start < b.end for b in bars)])


def _keeps_text(abc: str) -> str | None:
    """What a rewrite of bars would lose: "the words" (None: nothing; chord symbols of the
    rewritten bars are chosen again for their new notes)."""
    words = any(line.lstrip().startswith("w:") for line in abc.splitlines())
    return "the words" if words else None


@dataclass(frozen=True)
class Louder:
    """A step of the dynamics said with a mood ("happier and louder": +1; "softer": -1),
    carried in a mood edit's ``Request.edits`` and done by :func:`apply_mood_change`."""

    steps: int


def mood_with_edits(request: Request) -> Request | None:
    """A creative edit that is really a mood said with exact edits of its own cues ("make it
    sadder and slower", "happier, faster and louder", "calmer and an octave lower"), as one mood
    edit carrying those edits (a loudness step as :class:`Louder`); None for anything else (a
    mood with new notes asked for, a part of the tune, a new meter or style).

    >>> mood_with_edits(understand("make it sadder and slower", has_score=True)).edits
    (SetTempo(bpm=None, factor=0.833),)
    >>> change = mood_with_edits(understand("happier and louder", has_score=True))
    >>> change.intent, change.mood_change.mood, change.edits
    ('mood_edit', 'happy', (Louder(steps=1),))
    >>> mood_with_edits(understand("make it sadder and add a counter-melody", has_score=True)) is None
    True
    """
    attrs = request.attributes
    if request.intent == "mood_edit" and request.mood_change is not None:  # "sadder and softer"
        steps = _loudness(request.text.lower())[0]
        if not steps or any(isinstance(op, Louder) for op in request.edits):
            return None
        return replace(request, edits=request.edits + (Louder(steps),))
    if request.intent != "creative_edit" or (request.creative and request.creative.span) or (
            attrs.meter is not None or attrs.style is not None or attrs.mood is None):
        return None
    said = find_mood(request.text)
    if said is None or said.mood is None or said.start < 0:
        return None
    low = request.text.lower()
    before = re.search(r"(?:\b(?:more|less)\s+)?$", low[:said.start])
    steps, rest = _loudness(low[:before.start()] + " " + low[said.end:])
    plain = understand(rest, has_score=True)
    edits = tuple(op for op in plain.edits)
    if not all(isinstance(op, _CUE_EDITS) for op in edits) or plain.intent in (
            "lyrics", "harmony", "compose", "question"):
        return None
    if plain.intent != "exact_edit" and (edits or _FILLER.sub(" ", rest).strip()):
        return None  # something else was asked besides the mood and its cues
    if not edits and not steps:
        return None
    change = MoodChange(said.mood, attrs.mood_intensity or said.intensity, True,
                        allow_mode_change=any(isinstance(op, ChangeMode) for op in edits))
    return replace(request, intent="mood_edit", creative=None, mood_change=change,
                   edits=edits + ((Louder(steps),) if steps else ()))


def _loudness(low: str) -> tuple[int, str]:
    """Steps of dynamics said in ``low`` ("louder": +1, "softer": -1) and the text without them.

    >>> _loudness("happier and a bit louder")
    (1, 'happier and  ')
    """
    steps = sum(1 if (m.group("word") or m.group("adverb")).startswith("loud") else -1
                for m in _LOUDNESS.finditer(low))
    return steps, _LOUDNESS.sub(" ", low)


def mood_request_of(change: MoodChange) -> MoodRequest:
    """The :class:`agent.mood.MoodRequest` a :class:`agent.ops.MoodChange` stands for."""
    return MoodRequest(change.mood, change.intensity, change.comparative, change.mood)


def apply_mood_change(current: str, request: Request,
                      rewrite: Callable[[str, int, int, float], Any] | None) -> MoodTurn:
    """Move ``current`` toward ``request.mood_change``: the mode edits said with it first, then
    the exact mood edits, then, where the mood wants fewer (or more) running notes, a rewrite
    of the bars past the mood's share by ``rewrite(abc, first, last, short_notes)`` (a function
    returning an :class:`agent.compose.ComposeResult`; None: no model, so no rewrite). A tune
    with words is not rewritten (the reply says so); rewritten bars that had chords get new
    ones (:func:`agent.harmony_chat.carry_chords`).

    >>> from agent.understand import understand
    >>> tune = "X:1\\nT:Air\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=120\\nK:G\\n\\"G\\"B2 A2 G2|\\"D\\"A6|]\\n"
    >>> turn = apply_mood_change(tune, understand("make it sadder", has_score=True), None)
    >>> turn.reply
    'Sadder: slower (120 → 88), softer (mf → p), down an octave. It stays in G major (say "in minor" to change the mode).'
    >>> apply_mood_change(tune, understand("transpose it up", has_score=True), None)
    Traceback (most recent call last):
    ...
    agent.errors.InputError: that message asks for no mood
    """
    from agent.errors import InputError

    change = request.mood_change
    if change is None:
        raise InputError("that message asks for no mood")
    wanted = mood_request_of(change)
    ops = [op for op in request.edits if not isinstance(op, Louder)]
    louder = sum(op.steps for op in request.edits if isinstance(op, Louder))
    ways = cue_directions(wanted)
    # a tempo said the mood's way goes further after the mood's own move ("sadder and
    # slower"); any other tempo, octave or loudness said with it wins over the mood's
    after_mood = [op for op in ops if isinstance(op, SetTempo) and op.factor is not None
                  and (op.factor > 1) == (ways["tempo"] > 0) and ways["tempo"] != 0]
    ops = [op for op in ops if op not in after_mood]
    keep = frozenset(cue for cue, said in (
        ("tempo", any(isinstance(op, SetTempo) for op in ops)),
        ("register", any(isinstance(op, Transpose) for op in ops)),
        ("dynamics", louder * ways["dynamics"] < 0)) if said)
    text, said = current, ""
    mode_named = any(isinstance(op, ChangeMode) for op in ops)
    if ops:
        edited = apply_edits(current, tuple(ops))
        text, said = edited.abc, edited.summary + " "
    edit = mood_edit(text, wanted, allow_mode_change=False, mode_named=mode_named, keep=keep)
    if after_mood or louder:
        edit = _said_with_mood(edit, after_mood, louder, keep)
    details: dict = {"cues_before": edit.before.__dict__}
    note = None
    if "density" in edit.pending:
        # the notes first, in the tune's own register; then the exact edits move every bar alike
        sparser, note, rewritten = _rewrite_density(text, edit, rewrite)
        details["rewritten_bars"] = rewritten
        if rewritten:
            before = edit.before
            if before.dynamics_marked and measure_cues(sparser).dynamics != before.dynamics:
                sparser = set_dynamics(sparser, level=before.dynamics)  # a rewritten first bar
            edit = mood_edit(sparser, wanted, allow_mode_change=False, mode_named=mode_named)
    reply, abc = edit.reply, edit.abc
    if note is not None:
        reply = (_without_pending_sentence(reply) + " " + note).strip()
    details["cues_after"] = edit.after.__dict__
    moved = ", ".join(c.words for c in edit.changes) or "no cue moved"
    return MoodTurn(abc, (said + reply).strip(), f"{edit.mood}: {moved}", details)


def _said_with_mood(edit: MoodEdit, tempo_ops: list[SetTempo], louder: int,
                    keep: frozenset[str]) -> MoodEdit:
    """``edit`` with a tempo (said the mood's way) and a loudness step said with the mood
    done after it, each reported as one move from where the tune was."""
    from agent.edits import set_tempo

    text, changes = edit.abc, list(edit.changes)

    def moved(cue: str, before: object, after: object, word: str, unit: str) -> None:
        old = next((c for c in changes if c.cue == cue), None)
        start = old.before if old else before
        entry = CueChange(cue, start, after, f"{word} ({start:{unit}} → {after:{unit}})")
        if old:
            changes[changes.index(old)] = entry
        else:
            changes.append(entry)

    for op in tempo_ops:  # within the speeds a mood takes the style to
        cues = measure_cues(text)
        slowest, fastest = tempo_limits(cues)
        goal = min(max(cues.quarter_bpm * op.factor, slowest), fastest)
        if (goal - cues.quarter_bpm) * (op.factor - 1) <= 0:
            continue
        text = set_tempo(text, SetTempo(factor=goal / cues.quarter_bpm)).abc
        new = measure_cues(text).bpm
        if new != cues.bpm:
            moved("tempo", cues.bpm, new, "slower" if new < cues.bpm else "faster", "g")
    if louder:
        level = measure_cues(text).dynamics
        text = set_dynamics(text, steps=louder)
        new = measure_cues(text).dynamics
        if new != level:
            moved("dynamics", level, new, "louder" if louder > 0 else "softer", "")
    done = replace(edit, abc=text, changes=tuple(changes), after=measure_cues(text),
                   kept=tuple(k for k in edit.kept if "dynamics" not in keep
                              or not k.startswith("it is already")))
    return replace(done, reply=edit_reply(done))


def _without_pending_sentence(reply: str) -> str:
    return reply.split(" For fewer running notes")[0].split(" For more running notes")[0]


def _rewrite_density(abc: str, edit: MoodEdit, rewrite: Callable[[str, int, int, float], Any]
                     | None) -> tuple[str, str, list[tuple[int, int]]]:
    """Bars with too many running notes rewritten with the mood's share, where allowed."""
    fewer = "fewer" if "fewer running notes" in edit.pending_words else "more"
    lost = _keeps_text(abc)
    if lost:
        return abc, (f"I left the rhythm as it is: {fewer} running notes would mean rewriting "
                     f"bars, and that would lose {lost}."), []
    if rewrite is None:
        return abc, f"For {fewer} running notes the bars need rewriting, and no model is loaded.", []
    runs = busy_bars(abc, edit.short_notes) if fewer == "fewer" else []
    if not runs:
        return abc, "", []
    from agent.harmony_chat import carry_chords  # lazily: harmony reads the conversation's ops

    done, original = [], abc
    for first, last in runs:
        result = rewrite(abc, first, last, edit.short_notes)
        # kept only when valid and sparser than before: the rhythm prior is a pull, not a rule
        if result.valid and _run_share(result.abc, first, last) < _run_share(abc, first, last):
            abc = result.abc
            done.append((first, last))
    if not done:
        return abc, (f"I tried rewriting the busy bars, but no try came out valid with {fewer} "
                     "running notes, so the rhythm is as it was."), []
    abc, chords_said = carry_chords(original, abc)  # rewritten bars get chords again
    shown = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in done)
    plural = "s" if len(done) > 1 or done[0][0] != done[0][1] else ""
    return abc, (f"I rewrote bar{plural} {shown} with {fewer} running notes; the rest is as it "
                 f"was.{chords_said}"), done

