"""The composer: the model writes a tune body under constraints, and what fails is rewritten.

One turn of composing, as :func:`compose_tune` runs it:

1. **Prompt.** The chat from :func:`agent.prompts.compose_messages`, and as the start of the
   answer (the *prefill*) the ABC header the agent built with :func:`agent.prompts.abc_header`.
   Key, meter and tempo are therefore exact by construction; the model writes only the body.
2. **Constrained sampling.** A hand-written loop over the model with its KV cache: at each step
   the logits get a repetition penalty, and :func:`agent.sampler.choose_token` samples among the
   tokens the body automaton accepts (every bar exactly full, the planned bar lines, the
   requested number of bars, repetition rules for bars and notes). The loop stops the moment
   the last bar line is written: the end of the answer is forced there. Slurs, grace notes and
   decorations are allowed only when an adapter is loaded (``ComposeConfig.ornaments``): a
   bare base writes them as noise. Sampling uses its own seeded ``torch.Generator``: the same
   prompt, header, plan and seed give the same tune.
3. **Streaming.** ``on_progress(stage, bars_written, text_so_far)`` is called as each bar is
   completed, and at each stage (``"compose"``, ``"validate"``, ``"repair"``, ``"done"``).
4. **Validation and repair.** :func:`agent.validate.validate_abc` checks the tune. Bars it
   flags are resampled with everything before them as the prefill, exactly as many bars as were
   flagged, and the rest of the tune is appended unchanged; this repeats up to
   ``max_attempts`` decodes in all. A tune that still fails comes back with ``valid=False``
   and the diagnostics: nothing is faked or silently replaced.

:func:`edit_span` regenerates bars ``first..last`` of an existing tune with
:func:`agent.prompts.edit_messages` (the whole tune and the instruction in the user turn, the
tune up to ``first`` as the prefill) and keeps every other byte of the body as it was. ``w:``
lyric lines are removed before an edit, because rewritten bars no longer fit them; the result
says so (``lyrics_removed``) and the lyrics module writes new ones. Edits work on
single-voice tunes.

Why an own loop rather than ``generate()``: the constraint, the stop at the final bar line,
the per-bar progress and the timing of the model and of the constraint separately are all
explicit here, and the loop is as fast (``scripts/bench_decoding.py`` measures both).

torch is imported inside the functions that run the model.

>>> config = ComposeConfig(seed=7, temperature=0.8)
>>> config.sampling().temperature, config.repetition().block_ngram
(0.8, 3)
>>> ComposeConfig(max_attempts=0)
Traceback (most recent call last):
...
agent.decoding.DecodingError: max_attempts must be at least 1
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Sequence

from agent.abc_text import Bar, Kind, TuneText, bar_count, parse_tune, split_bars, tokenize_body
from agent.decoding import (
    BODY_CHARS,
    DECORATIONS,
    ORNAMENT_MARKS,
    Boundary,
    BodySpec,
    BodyState,
    DecodingError,
    FormPlan,
    RepetitionRules,
    body_spec,
    normalize_bar,
    start_state,
)
from agent.errors import AbcError
from agent.notation import NOTE_HEAD_RE
from agent.prompts import chat_prompt_ids, compose_messages, edit_messages, stop_token_ids
from agent.sampler import SamplingSettings, TokenTable, choose_token, token_table
from agent.step_decoder import open_decoder
from agent.validate import short_bars_allowed

__all__ = [
    "ComposeConfig",
    "ComposeResult",
    "DecodeStats",
    "compose_tune",
    "repair_tune",
    "edit_span",
    "decode_body",
    "Decoded",
    "distinct_bar_share",
    "strip_lyrics",
]

Progress = Callable[[str, int, str], None]


@dataclass(frozen=True)
class ComposeConfig:
    """Settings of one composition: sampling, repetition control, repair."""

    temperature: float = field(
        default=1.0,
        metadata={"help": "sampling temperature; 0 is greedy. 1 with top_p 1 samples the model's "
                  "own distribution; sharper sampling settles each tune on one rhythm "
                  "(measured in docs/benchmarks.md)"})
    top_k: int = field(
        default=40, metadata={"help": "candidates checked against the grammar and sampled among"})
    top_p: float = field(
        default=1.0, metadata={"help": "nucleus cut among the viable candidates (1: none)"})
    widen_k: int = field(
        default=512, metadata={"help": "second round of candidates when the top_k has none"})
    max_new_tokens: int = field(
        default=0, metadata={"help": "token budget per decode; 0 means 64 per bar plus 32"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the sampling generator"})
    repetition_penalty: float = field(
        default=1.0,
        metadata={"help": "divides the logits of note tokens seen in the last penalty_window (1: "
                  "off); at temperature 1 the bar rules below keep bars varied without it "
                  "(measured in docs/benchmarks.md)"},
    )
    penalty_window: int = field(
        default=64, metadata={"help": "how many recent tokens the penalty looks at"})
    max_repeats_in_a_row: int = field(
        default=1,
        metadata={"help": "how often in a row a bar may repeat the bar before it (0: no rule)"},
    )
    block_ngram: int = field(
        default=3,
        metadata={"help": "a run of this many bars may not copy an earlier run (0: no rule); 3 "
                  "lets a two-bar motif come back, as it does in real tunes"},
    )
    max_pitch_run: int = field(
        default=4,
        metadata={"help": "most notes in a row on one pitch, tied notes aside (0: no rule)"},
    )
    max_ties_per_bar: int = field(default=1, metadata={"help": "most ties in one bar (0: no rule)"})
    max_attempts: int = field(
        default=3, metadata={"help": "decodes in all: the first plus repairs"})
    bar_retries: int = field(
        default=3,
        metadata={"help": "how often one bar may be taken back and sampled again: a bar is kept "
                  "with the probability the model gave the tokens the grammar allowed (the "
                  "product over its steps), so bars the grammar had to push the model into are "
                  "rewritten; after the last retry the likeliest try is kept; 0 keeps every bar "
                  "(see decode_body)"})
    rhythm_prior: float = field(
        default=0.5,
        metadata={"help": "a new tune's bar that takes its share of notes shorter than L: past "
                  "what its style usually holds (agent.styles.usual_short_notes) is kept with its "
                  "chance times exp(-rhythm_prior x the short notes over that share), so it is "
                  "resampled more often (with bar_retries); 0: no prior"})
    stop_refused_tries: bool = field(
        default=True,
        metadata={"help": "stop a bar's try at the token that already sinks it (the same bars "
                  "kept, fewer tokens written; False writes every try to its bar line)"})
    lazy_checks: bool = field(
        default=True,
        metadata={"help": "run the grammar on the drawn token alone, and whether a bar's try "
                  "sinks by whether the draw landed on a refused token, instead of checking all "
                  "top_k candidates at each step for the refused mass (the same bars, kept with "
                  "the same chance; agent.sampler.choose_token)"})
    guess_ahead: bool = field(
        default=True,
        metadata={"help": "run the model on each token together with a guess of the next (the "
                  "token that followed the same two tokens earlier in the tune); the sampler "
                  "takes the guess with the probability it gives it, so tunes are drawn as "
                  "without, and a taken guess saves a model step (docs/benchmarks.md)"})
    body_vocabulary: bool = field(
        default=True,
        metadata={"help": "where the model has a body output layer (the ort path with an adapter "
                  "that lists its body's tokens), compute only the logits of the tokens tunes "
                  "are written in (agent.sampler.body_vocabulary): 12% less model time a "
                  "token under AVX2; the chance a step leaves a bar moved by 0.03% on average, "
                  "1.5% at most (docs/benchmarks.md)"})
    common_guesses: bool = field(
        default=True,
        metadata={"help": "with guess_ahead, where the tune has no guess of its own, guess the "
                  "token that mostly followed the same two in the training tunes (the model's "
                  "body_tokens.json)"})
    program: int | None = field(
        default=None,
        metadata={"help": "the General MIDI instrument the tune is for, when its header names none "
                  "yet: the notes stay within that instrument's range (agent.validate's table)"})
    short_notes: float | None = field(
        default=None,
        metadata={"help": "the share of notes shorter than L: the rhythm prior allows, in place "
                  "of the style's usual share (a mood's plan: a sad waltz has fewer running "
                  "notes, agent.mood.compose_plan); None: the style's; also used when bars are "
                  "rewritten"})
    subdivision: int = field(
        default=2, metadata={"help": "shortest note as a fraction of L: (2: sixteenths)"})
    allow_pickup: bool = field(
        default=True,
        metadata={"help": "let the tune open with a pickup; each later section then opens with "
                  "one as long, and each section's last bar completes it"}
    )
    ornaments: bool | None = field(
        default=None,
        metadata={"help": "allow slurs, grace notes and decorations (. !trill! ...); None: only "
                  "when an adapter is loaded (a bare base writes them as noise)"},
    )
    max_accidentals_per_bar: int = field(
        default=4, metadata={"help": "accidentals written in one bar (0: no limit)"})
    max_range_steps: int = field(
        default=12,
        metadata={"help": "widest melody of a new tune, lowest to highest note, in diatonic steps "
                  "(12: a thirteenth, about 20 semitones; 95% of the training tunes span at most "
                  "21 semitones); 0: no limit"})
    double_accidentals: bool = field(default=False, metadata={"help": "allow ^^ and __"})
    performance_marks: bool = field(
        default=False,
        metadata={"help": "allow bowing marks and dynamics (!upbow! !f!) besides the ornaments; off: "
                  "in the corpus they come with fiddle studies in sixteenths, and a tune that "
                  "opens with one drifts there"})
    constrained: bool = field(
        default=True,
        metadata={"help": "False samples the raw model (a baseline for the benchmark)"},
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DecodingError("max_attempts must be at least 1")
        if self.top_k < 1 or not 0 < self.top_p <= 1 or self.temperature < 0:
            raise DecodingError("top_k >= 1, 0 < top_p <= 1 and temperature >= 0 are required")
        if self.repetition_penalty <= 0:
            raise DecodingError("repetition_penalty must be positive (1 switches it off)")

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p, self.widen_k)

    def decorations(self) -> frozenset[str]:
        """The ``!...!`` marks a decoded body may carry."""
        return DECORATIONS if self.performance_marks else ORNAMENT_MARKS

    def repetition(self) -> RepetitionRules:
        return RepetitionRules(self.max_repeats_in_a_row, self.block_ngram, self.max_pitch_run,
                               self.max_ties_per_bar)

    def token_budget(self, bars: int) -> int:
        return self.max_new_tokens or 64 * bars + 32

    def ornaments_for(self, loaded: Any) -> bool:
        """Whether ornaments are allowed with this model: as set, or when it has an adapter."""
        if self.ornaments is not None:
            return self.ornaments
        return bool(getattr(getattr(loaded, "config", None), "adapter", None))


@dataclass
class DecodeStats:
    """Where the time of one or more decodes went."""

    tokens: int = 0
    prompt_tokens: int = 0
    forward_seconds: float = 0.0  # the model, prompt included
    constraint_seconds: float = 0.0  # penalty, automaton, sampler (unconstrained: no automaton)
    checked: int = 0  # candidate tokens run through the automaton
    widened: int = 0  # steps where the top_k held no viable token
    relaxed: int = 0  # steps where the repetition rules had to be lifted
    resampled_bars: int = 0  # bars taken back and written again (``bar_retries``)
    guesses: int = 0  # guessed tokens run with the token before them (``guess_ahead``)
    guesses_taken: int = 0  # guesses the sampler took: a model step saved each

    def add(self, other: "DecodeStats") -> None:
        for name in ("tokens", "prompt_tokens", "forward_seconds", "constraint_seconds",
                     "checked", "widened", "relaxed", "resampled_bars", "guesses", "guesses_taken"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ComposeResult:
    """A tune and how it was made. ``diagnostics`` are the validator's findings on ``abc``."""

    abc: str
    valid: bool
    attempts: int
    diagnostics: list
    tokens: int
    seconds: float
    tokens_per_second: float
    bars: int
    stats: DecodeStats = field(default_factory=DecodeStats)
    lyrics_removed: bool = False

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["diagnostics"] = [_diagnostic_dict(d) for d in self.diagnostics]
        return data

    def summary(self) -> dict:
        """The figures a turn reports: attempts, bars, tokens, seconds in all, seconds of
        decoding (model and constraints, without validation and repair checks) and tokens/s."""
        decode = self.stats.forward_seconds + self.stats.constraint_seconds
        return {"attempts": self.attempts, "bars": self.bars, "tokens": self.tokens,
                "seconds": round(self.seconds, 2), "decode_seconds": round(decode, 3),
                "tokens_per_second": round(self.tokens_per_second, 1)}


def _diagnostic_dict(diagnostic: Any) -> dict:
    if hasattr(diagnostic, "to_dict"):
        return diagnostic.to_dict()
    if dataclasses.is_dataclass(diagnostic):
        return dataclasses.asdict(diagnostic)
    return {"message": str(diagnostic)}


# --------------------------------------------------------------------------------------------
# Small text helpers


def strip_lyrics(abc: str) -> tuple[str, bool]:
    """``abc`` without its ``w:`` lyric lines, and whether there were any.

    >>> strip_lyrics("X:1\\nK:C\\nCDEF|\\nw: la la la la\\n")
    ('X:1\\nK:C\\nCDEF|\\n', True)
    >>> strip_lyrics("X:1\\nK:C\\nCDEF|\\n")
    ('X:1\\nK:C\\nCDEF|\\n', False)
    """
    lines = abc.splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith("w:")]
    return "".join(kept), len(kept) != len(lines)


def _bars_of(abc: str) -> tuple[TuneText, list[Bar]]:
    tune = parse_tune(abc)
    return tune, split_bars(tokenize_body(tune.body, tune), tune)


def distinct_bar_share(abc: str) -> float:
    """The share of a tune's bars that are distinct (1.0: no bar written twice).

    >>> distinct_bar_share("X:1\\nM:2/4\\nL:1/8\\nK:C\\nCDEF | CDEF | G4 | CDEF |]\\n")
    0.5
    >>> distinct_bar_share("X:1\\nK:C\\n")
    Traceback (most recent call last):
    ...
    agent.errors.AbcError: the tune has no bars
    """
    tune, bars = _bars_of(abc)
    if not bars:
        raise AbcError("the tune has no bars")
    texts = [normalize_bar(bar.text_in(tune.body)) for bar in bars]
    return len(set(texts)) / len(texts)


def _header_spec(header: str, plan: FormPlan, config: ComposeConfig, ornaments: bool) -> BodySpec:
    """The decoding spec for a header (``M:`` and ``L:`` read from it) and a plan."""
    tune = parse_tune(header if header.endswith("\n") else header + "\n")
    meter, unit = tune.get("M"), tune.get("L")
    if meter is None:
        raise AbcError("the header has no M: (meter) field")
    return body_spec(meter, unit or str(tune.unit_length), plan, subdivision=config.subdivision,
                     allow_pickup=config.allow_pickup, repetition=config.repetition(),
                     ornaments=ornaments, max_accidentals_per_bar=config.max_accidentals_per_bar,
                     double_accidentals=config.double_accidentals,
                     max_range_steps=config.max_range_steps, decorations=config.decorations(),
                     pitch_steps=_instrument_steps(tune, config.program))


def _instrument_steps(tune: TuneText, program: int | None = None) -> tuple[int, int] | None:
    """The staff steps the tune's instrument (its header's ``%%MIDI program``, else ``program``)
    can play in its key, or None when neither names one the validator knows: the grammar keeps
    the notes there, as the validator asks.

    >>> _instrument_steps(parse_tune("X:1\\n%%MIDI program 73\\nM:3/4\\nK:D\\n")), _instrument_steps(parse_tune("X:1\\nK:D\\n"))
    ((28, 48), None)
    """
    from agent.decoding import playable_steps
    from agent.notation import midi_program
    from agent.validate import instrument_range

    named = midi_program("\n".join(text for text, _ in tune.directives))
    program = named if named is not None else program
    listed = instrument_range(program) if program is not None else None
    if not listed:
        return None
    return playable_steps(listed[0], listed[1], tune.key.alterations)


# --------------------------------------------------------------------------------------------
# The decoding loop


def _penalize(logits: Any, recent: list[int], table: TokenTable, penalty: float) -> Any:
    """CTRL-style repetition penalty on note tokens seen recently (bar lines and blanks are
    left alone: every bar needs them)."""
    if penalty == 1.0 or not recent:
        return logits
    import torch

    ids = sorted({t for t in recent if t in table.musical})
    if not ids:
        return logits
    index = torch.tensor(ids, dtype=torch.long, device=logits.device)
    picked = logits[index]
    scores = logits.clone()
    scores[index] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return scores


def _usual_short_notes(header: str, config: ComposeConfig) -> float | None:
    """The share of notes shorter than L: a tune of the header's style (or meter) usually holds
    at most, or None without a rhythm prior."""
    if not config.rhythm_prior:
        return None
    from agent.styles import BY_NAME, usual_short_notes

    tune = parse_tune(header)
    return usual_short_notes(BY_NAME.get((tune.get("R") or "").strip().lower()), tune.get("M") or "")


def _rhythm_prior(before: BodyState, after: BodyState, share: float, strength: float) -> float:
    """exp(-strength x the notes shorter than L: that a bar adds beyond ``share`` of the tune's
    notes so far): 1 for a bar that keeps the tune within its style's usual share.

    >>> from agent.decoding import FormPlan, body_spec, start_state
    >>> start = start_state(body_spec("3/4", "1/8", FormPlan.through(2)))
    >>> _rhythm_prior(start, start.feed("A2 B2 c2 |"), 0.25, 0.5)
    1.0
    >>> round(_rhythm_prior(start, start.feed("A/B/c/d/ e/f/g/a/ b/a/g/f/ |"), 0.25, 0.5), 3)
    0.011
    """
    import math

    def over(state: BodyState) -> float:
        return max(0.0, state.short_elements - share * state.elements)

    return math.exp(-strength * max(0.0, over(after) - over(before)))


def _draw(generator: Any) -> float:
    import torch

    return torch.rand((), generator=generator, dtype=torch.float64).item()


def _sample_free(scores: Any, settings: SamplingSettings, generator: Any) -> int:
    """Unconstrained top-k / top-p sampling (the baseline without the grammar)."""
    import torch

    if settings.temperature <= 0:
        return int(torch.argmax(scores).item())
    values, ids = torch.topk(scores.double() / settings.temperature, settings.top_k)
    probs = torch.softmax(values, dim=0)
    cumulative = torch.cumsum(probs, dim=0)
    keep = int((cumulative < settings.top_p).sum().item()) + 1
    probs = probs[:keep] / probs[:keep].sum()
    pick = torch.multinomial(probs.float(), 1, generator=generator).item()
    return int(ids[pick].item())


@dataclass
class Decoded:
    """What :func:`decode_body` wrote: the text after the prompt, the automaton at its end
    (None without constraints), whether the text reached its end, and the timings."""

    text: str
    state: BodyState | None
    complete: bool
    stats: DecodeStats


@dataclass(frozen=True)
class _BarStart:
    """Where the bar being written began: enough to take it back."""

    cached: int  # tokens in the decoder's cache
    logits: Any
    state: BodyState
    written: int  # tokens of the body


@dataclass(frozen=True)
class _BarTry:
    """One written try of a bar: its tokens and texts, the automaton after it, and the chance
    the model would have written it without the grammar's help (``kept``: the rhythm prior's
    ``prior`` times 1 minus the refused mass at each of its ``steps``, worked out by
    :func:`_with_chances` only when every try of a bar was refused)."""

    tokens: tuple[int, ...]
    texts: tuple[str, ...]
    state: BodyState
    kept: float | None = None
    steps: tuple = ()  # (scores, automaton before) of each step
    prior: float = 1.0


def _with_chances(tries: list[_BarTry], table: TokenTable, settings: SamplingSettings) -> list[_BarTry]:
    """``tries`` with their chances worked out from their steps."""
    from agent.sampler import refused_mass

    return [t if t.kept is not None else dataclasses.replace(t, kept=t.prior * math.prod(
        1.0 - refused_mass(scores, before, table, settings) for scores, before in t.steps))
        for t in tries]


def _likelier_unfinished(unfinished: list[_BarTry], finished: list[_BarTry]) -> _BarTry | None:
    """The stopped try with the highest chance so far, if that beats every finished try's: a
    try's chance only shrinks as it goes on, so a stopped try below the best finished one can
    never be the likeliest, and one above it must be written to its bar line to know.

    >>> done = [_BarTry((1,), ("A",), None, 0.2)]
    >>> stopped = [_BarTry((2,), ("B",), None, 0.1), _BarTry((3,), ("c",), None, 0.3)]
    >>> _likelier_unfinished(stopped, done).tokens, _likelier_unfinished(stopped[:1], done)
    ((3,), None)
    """
    best = max((t.kept for t in finished), default=0.0)
    candidates = [t for t in unfinished if t.kept > best]
    return max(candidates, key=lambda t: t.kept) if candidates else None


class _Guesses:
    """Guesses of the next token: the one that followed the same two tokens the last time
    they came (tunes repeat their figures; 57% of such guesses were right in the suite's
    tunes), else, where the tune has none yet, the one that mostly followed them in the
    training tunes (``common``: 50% right). Entries from bars taken back stay: a stale guess
    only costs its share of a step."""

    def __init__(self, common: dict[tuple[int, int], int] | None = None) -> None:
        self.after: dict[tuple[int, int], int] = {}
        self.common = common or {}

    def learn(self, tokens: list[int]) -> None:
        """Note what followed the two tokens before the last of ``tokens``. (Measured, not
        taken: guessing from one token alone doubled the guesses but took fewer, no faster;
        guessing only what had followed twice took 64% of its guesses but saved 1% of the
        model's time against 7%.)"""
        if len(tokens) >= 3:
            self.after[(tokens[-3], tokens[-2])] = tokens[-1]

    def next(self, tokens: list[int]) -> int | None:
        """The guess for the token after ``tokens``, or None.

        >>> guesses = _Guesses()
        >>> for end in range(1, 6):
        ...     guesses.learn([7, 8, 9, 7, 8][:end])
        >>> guesses.next([7, 8, 9, 7, 8]), guesses.next([1, 2])
        (9, None)
        >>> _Guesses({(1, 2): 3, (7, 8): 4}).next([1, 2]), guesses.next([7, 8])
        (3, 9)
        """
        if len(tokens) < 2:
            return None
        key = (tokens[-2], tokens[-1])
        return self.after.get(key, self.common.get(key))


class _Feeder:
    """The decoder as the composer's loop runs it: tokens are ids of the loop's token table,
    which with a body ``vocabulary`` (the decoder's body output layer) are positions in it; the
    logits come back over the same table."""

    def __init__(self, decoder: Any, vocabulary: Sequence[int] | None = None) -> None:
        self.decoder, self.vocabulary = decoder, vocabulary

    @property
    def length(self) -> int:
        return self.decoder.length

    def rewind(self, length: int) -> None:
        self.decoder.rewind(length)

    def prompt(self, ids: list[int]) -> Any:
        """Run the prompt (ids of the whole vocabulary); the logits after it."""
        if self.vocabulary is None:
            return self.decoder.feed(ids)
        return self.decoder.feed(ids, body=True)

    def feed(self, tokens: Sequence[int], every: bool = False) -> Any:
        if self.vocabulary is None:
            return self.decoder.feed(list(tokens), every)
        return self.decoder.feed([self.vocabulary[t] for t in tokens], every, body=True)


def _body_vocabulary(decoder: Any, config: ComposeConfig) -> tuple[int, ...] | None:
    """The decoder's body vocabulary where the composer may use it."""
    return getattr(decoder, "body_ids", None) if config.body_vocabulary else None


def _common_follows(loaded: Any, vocabulary: Sequence[int] | None) -> dict[tuple[int, int], int]:
    """The model's common follows (``LoadedModel.body_follows``) in the ids the loop writes:
    positions in ``vocabulary`` where it has one.

    >>> from types import SimpleNamespace
    >>> _common_follows(SimpleNamespace(body_follows={(10, 11): 12, (10, 13): 14}), (10, 11, 12))
    {(0, 1): 2}
    """
    follows = getattr(loaded, "body_follows", None) or {}
    if vocabulary is None:
        return dict(follows)
    position = {token: index for index, token in enumerate(vocabulary)}
    return {(position[a], position[b]): position[c] for (a, b), c in follows.items()
            if a in position and b in position and c in position}


def _feed_with_guess(decoder: _Feeder, token: int, ahead: tuple[int, Any] | None, guess: int | None,
                     stats: DecodeStats) -> tuple[Any, tuple[int, Any] | None]:
    """Run the model on ``token`` (and ``guess`` after it, in the same step) and return the
    logits after ``token`` and the pending guess with its logits. When ``token`` is the guess
    already run (``ahead``), its logits are at hand and no step is needed; a guess not taken is
    dropped from the cache first."""
    if ahead is not None and ahead[0] == token:
        stats.guesses_taken += 1
        return ahead[1], None
    if ahead is not None:
        decoder.rewind(decoder.length - 1)
    if guess is None:
        return decoder.feed([token]), None
    stats.guesses += 1
    both = decoder.feed([token, guess], every=True)
    return both[0], (guess, both[1])


def _judged_at_bar_line(state: BodyState) -> bool:
    """Whether the bar begun at ``state`` ends with a bar line, where its try is judged: not
    the last bar of an edited span, which ends without one and is kept as written, nor what
    follows the body's last bar line (the rest of a final ``|]``).

    >>> from agent.decoding import FormPlan, body_spec, start_state
    >>> start = start_state(body_spec("3/4", "1/8", FormPlan.through(2)))
    >>> _judged_at_bar_line(start), _judged_at_bar_line(start.feed("A6 | A6 |"))
    (True, False)
    """
    last = state.spec.last_bar - (1 if state.spec.span_end else 0)
    return state.bars_done < last


def decode_body(
    loaded: Any,
    prompt_ids: list[int],
    state: BodyState | None,
    config: ComposeConfig,
    generator: Any,
    *,
    budget: int,
    on_bar: Callable[[int, str], None] | None = None,
    short_notes: float | None = None,
) -> Decoded:
    """Run the model from ``prompt_ids`` and return the text it writes after them.

    With a ``state`` every token is checked by the automaton and decoding stops when the body
    (or span) is complete; with ``state=None`` the raw model runs until its end-of-turn token.
    ``budget`` caps the new tokens; ``complete`` says whether the text got to its end.
    ``on_bar(bars_done, text)`` is called each time a bar is finished.

    Bars are sampled again where the grammar bent them. Masking the tokens the automaton
    refuses, step by step, does not sample from the model's own distribution over valid bars:
    each refusal hands the refused probability to what is left, and a model that wants to end a
    bar early gets pushed into filling it with short notes, which it then copies (a tune in
    sixteenths). The product of the allowed mass over a bar's steps is the chance the model
    would have written that bar unaided, so keeping the bar with that probability, and else
    writing it again from its start, is rejection sampling from the model's distribution over
    valid bars. After ``config.bar_retries`` rejected tries the try with the highest chance is
    kept. A bar is judged at its bar line (a pickup's too); the last bar of an edited span,
    which ends without one, is kept as written.

    A try is judged step by step instead of by its product: at each step a draw lands on a
    refused candidate with the refused mass's probability (``Choice.sank``), so a try survives
    its steps with exactly the product's probability, and a try that sinks before its bar line
    is stopped there (the same decision, without writing the rest of the bar; about a sixth of
    the tokens of a 16-bar tune, docs/benchmarks.md). With ``config.lazy_checks`` the draw is
    the sampler's own, so a step runs the grammar on one token instead of every candidate.
    Only when every try of a bar is refused are the tries' chances worked out from their
    steps, and the likeliest is kept; a stopped try that could still be the likeliest is
    first written on to its bar line.

    With ``short_notes`` (the share of notes shorter than ``L:`` a tune of its style usually
    holds at most), a bar's chance is also multiplied by :func:`_rhythm_prior`: the model alone,
    even unconstrained, writes airs and waltzes in sixteenths far more often than the corpus.
    """
    import torch

    tokenizer = loaded.tokenizer
    settings = config.sampling()
    stops = stop_token_ids(tokenizer)
    stats = DecodeStats(prompt_tokens=len(prompt_ids))
    retries = config.bar_retries if settings.temperature > 0 else 0  # greedy: the same bar again
    pieces: list[str] = []
    generated: list[int] = []
    complete = False
    with torch.inference_mode():
        clock = time.perf_counter()
        opened = open_decoder(loaded, capacity=len(prompt_ids) + budget)
        vocabulary = _body_vocabulary(opened, config) if state is not None else None
        table = token_table(tokenizer, vocabulary)  # ids of this table are what the loop writes
        decoder = _Feeder(opened, vocabulary)
        logits = decoder.prompt(prompt_ids)
        stats.forward_seconds += time.perf_counter() - clock
        bar_start = _BarStart(decoder.length, logits, state, 0)

        def back_to_bar_start() -> None:
            """Take the bar being written back: its cache, its tokens, a pending guess."""
            nonlocal ahead
            decoder.rewind(bar_start.cached)
            ahead = None
            del generated[bar_start.written:], pieces[bar_start.written:]

        tries: list[_BarTry] = []
        unfinished: list[_BarTry] = []  # tries stopped before their bar line, as far as written
        steps: list[tuple[Any, BodyState]] = []  # this try's scores and states, for its chance
        guesses = (_Guesses(_common_follows(loaded, vocabulary) if config.common_guesses else None)
                   if config.guess_ahead and state is not None else None)
        ahead: tuple[int, Any] | None = None  # a guess fed after the last token, its logits
        sank, taken_back = False, 0
        lazy = config.lazy_checks and retries > 0
        while len(generated) < budget and stats.tokens < budget * (1 + retries):
            clock = time.perf_counter()
            recent = generated[-config.penalty_window:]
            scores = _penalize(logits, recent, table, config.repetition_penalty)
            closed = False
            if state is not None:
                guess = ahead[0] if ahead is not None else None
                choice = choose_token(scores, state, table, settings, generator, guess, lazy=lazy)
                if retries and not lazy:  # the refused mass at hand: the sink drawn from it
                    choice = choice._replace(sank=_draw(generator) < choice.refused_mass)
                if retries:
                    steps.append((scores, state))
                closed = choice.state.bar_lines > state.bar_lines
                token, state = choice.token_id, choice.state
                stats.checked += choice.checked
                stats.widened += bool(choice.widened)
                stats.relaxed += choice.relaxed
                sank = sank or choice.sank
                if (not closed and choice.sank and taken_back < retries
                        and config.stop_refused_tries
                        and _judged_at_bar_line(bar_start.state)):  # refused already
                    stats.tokens += 1
                    stats.resampled_bars += 1
                    taken_back += 1
                    unfinished.append(_BarTry(tuple(generated[bar_start.written:]) + (token,),
                                              tuple(pieces[bar_start.written:]) + (table.texts[token],),
                                              state, steps=tuple(steps)))
                    back_to_bar_start()
                    logits, state, steps, sank = bar_start.logits, bar_start.state, [], False
                    stats.constraint_seconds += time.perf_counter() - clock
                    continue
                pieces.append(table.texts[token])
                complete = state.is_complete
            else:
                token = _sample_free(scores, settings, generator)
                complete = token in stops
            generated.append(token)
            stats.tokens += 1
            if guesses is not None:
                guesses.learn(generated)
            fed = False
            if closed and retries:
                prior = (_rhythm_prior(bar_start.state, state, short_notes, config.rhythm_prior)
                         if short_notes is not None else 1.0)
                tries.append(_BarTry(tuple(generated[bar_start.written:]),
                                     tuple(pieces[bar_start.written:]), state, steps=tuple(steps),
                                     prior=prior))
                accepted = not sank and _draw(generator) < prior
                steps, sank = [], False
                if not accepted and taken_back < retries:  # take the bar back, write it again
                    stats.resampled_bars += 1
                    taken_back += 1
                    back_to_bar_start()
                    logits, state, complete = bar_start.logits, bar_start.state, False
                    stats.constraint_seconds += time.perf_counter() - clock
                    continue
                if not accepted:  # every try refused: the likeliest is kept
                    tries = _with_chances(tries, table, settings)
                    unfinished = _with_chances(unfinished, table, settings)
                resumed = None if accepted else _likelier_unfinished(unfinished, tries)
                if resumed is not None:  # it may yet be the likeliest: write it to its bar line
                    unfinished.remove(resumed)
                    back_to_bar_start()
                    generated.extend(resumed.tokens)
                    pieces.extend(resumed.texts)
                    state, complete = resumed.state, False
                    steps, sank = list(resumed.steps), True  # never accepted: compared at its bar line
                    started = time.perf_counter()
                    logits = decoder.feed(resumed.tokens)
                    stats.forward_seconds += time.perf_counter() - started
                    stats.constraint_seconds += started - clock
                    continue
                best = tries[-1] if accepted else max(tries, key=lambda t: t.kept)
                if best is not tries[-1]:  # an earlier try was likelier: write it back
                    back_to_bar_start()
                    generated.extend(best.tokens)
                    pieces.extend(best.texts)
                    state, complete = best.state, best.state.is_complete
                    if not complete:
                        started = time.perf_counter()
                        logits, fed = decoder.feed(best.tokens), True
                        spent = time.perf_counter() - started
                        stats.forward_seconds += spent
                        clock += spent  # model time, not the constraints
                tries, unfinished, taken_back = [], [], 0
            if closed:
                if on_bar is not None and state.bars_done > bar_start.state.bars_done:
                    on_bar(state.bars_done, "".join(pieces))
            stats.constraint_seconds += time.perf_counter() - clock
            if complete:
                break
            if not fed:
                clock = time.perf_counter()
                logits, ahead = _feed_with_guess(decoder, token, ahead,
                                                 guesses.next(generated) if guesses else None, stats)
                stats.forward_seconds += time.perf_counter() - clock
            if closed:
                bar_start = _BarStart(decoder.length - (ahead is not None), logits, state, len(generated))
    if state is None:  # decode at once: a character may span several byte-level tokens
        pieces = [tokenizer.decode([t for t in generated if t not in stops],
                                   clean_up_tokenization_spaces=False)]
    return Decoded("".join(pieces), state, complete, stats)


# --------------------------------------------------------------------------------------------
# Composing


def _validate(abc: str) -> tuple[bool, list]:
    from agent.validate import validate_abc

    report = validate_abc(abc)
    return bool(report.valid), list(report.diagnostics)


def _diagnostic(message: str, bar: int | None = None) -> Any:
    """A decoding failure as a validator diagnostic (code ``decoding``), so callers read one
    kind of finding."""
    from agent.validate import Diagnostic

    return Diagnostic("error", "decoding", message, bar=bar)


def _errors(diagnostics: list) -> list:
    return [d for d in diagnostics if getattr(d, "severity", "error") == "error"]


def _generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


def _finish(abc: str, valid: bool, attempts: int, diagnostics: list, stats: DecodeStats,
            started: float, lyrics_removed: bool = False) -> ComposeResult:
    seconds = time.perf_counter() - started
    try:
        bars = bar_count(parse_tune(abc))  # as a musician counts them: a pickup with its closing bar
    except AbcError:
        bars = 0
    return ComposeResult(
        abc=abc, valid=valid, attempts=attempts, diagnostics=diagnostics, tokens=stats.tokens,
        seconds=seconds, tokens_per_second=stats.tokens / seconds if seconds else 0.0,
        bars=bars, stats=stats, lyrics_removed=lyrics_removed,
    )


def _plan_of(plan: FormPlan | int) -> FormPlan:
    return FormPlan.through(plan) if isinstance(plan, int) else plan


def compose_tune(
    loaded: Any,
    request: str,
    header: str,
    plan: FormPlan | int,
    config: ComposeConfig = ComposeConfig(),
    on_progress: Progress | None = None,
) -> ComposeResult:
    """Write a new tune: ``header`` (from :func:`agent.prompts.abc_header`) as the prefill, a
    body of ``plan`` (a :class:`~agent.decoding.FormPlan`, or a number of bars in one section)
    by the model ``loaded`` (an :class:`agent.model.LoadedModel`), then validation and repair.

    With ``config.constrained=False`` the raw model writes the body (no grammar, no repair):
    the baseline the benchmark compares with.
    """
    started = time.perf_counter()
    plan = _plan_of(plan)
    header = header if header.endswith("\n") else header + "\n"
    spec = _header_spec(header, plan, config, config.ornaments_for(loaded))
    generator = _generator(config.seed)
    messages = compose_messages(request)
    prompt = chat_prompt_ids(loaded.tokenizer, messages, prefill=header)
    budget = config.token_budget(plan.total_bars)
    report = on_progress or (lambda stage, bars, text: None)
    report("compose", 0, header)

    def on_bar(bars: int, text: str) -> None:
        report("compose", bars, header + text)

    short_notes = _usual_short_notes(header, config)
    if config.short_notes is not None and config.rhythm_prior:
        short_notes = config.short_notes
    stats, attempts = DecodeStats(), 0
    while True:  # a decode that runs out of tokens is sampled again, while attempts are left
        attempts += 1
        state = start_state(spec) if config.constrained else None
        decoded = decode_body(loaded, prompt, state, config, generator, budget=budget, on_bar=on_bar,
                              short_notes=short_notes)
        stats.add(decoded.stats)
        abc = header + decoded.text.rstrip("\n") + "\n"
        if not config.constrained:
            report("validate", 0, abc)
            valid, diagnostics = _validate(abc)
            report("done", plan.total_bars, abc)
            return _finish(abc, valid, 1, diagnostics, stats, started)
        if decoded.complete:
            break
        if attempts >= config.max_attempts:
            report("done", decoded.state.bars_done, abc)
            message = (f"the token budget ({budget}) ran out at bar {decoded.state.bar_number} "
                       f"of {plan.total_bars}, {attempts} times")
            failure = _diagnostic(message, decoded.state.bar_number)
            return _finish(abc, False, attempts, [failure], stats, started)
        report("compose", 0, header)  # starting over: progress goes back to the first bar
    result = repair_tune(loaded, abc, request, config, on_progress=on_progress,
                         generator=generator, attempts_used=attempts)
    stats.add(result.stats)
    return _finish(result.abc, result.valid, result.attempts, result.diagnostics, stats, started)


def repair_tune(
    loaded: Any,
    abc: str,
    request: str,
    config: ComposeConfig = ComposeConfig(),
    on_progress: Progress | None = None,
    *,
    generator: Any = None,
    attempts_used: int = 0,
) -> ComposeResult:
    """Validate ``abc``; while it fails and attempts are left, resample the bars the validator
    flags (each run of flagged bars: the tune before it as the prefill, as many bars as the
    run, the rest appended unchanged). A diagnostic without a bar number cannot be localized:
    then the whole body is resampled. ``attempts`` counts decodes, ``attempts_used`` included.
    """
    started = time.perf_counter()
    generator = generator if generator is not None else _generator(config.seed)
    report = on_progress or (lambda stage, bars, text: None)
    stats = DecodeStats()
    attempts = attempts_used
    report("validate", 0, abc)
    valid, diagnostics = _validate(abc)
    while not valid and attempts < config.max_attempts:
        tune, bars = _bars_of(abc)
        flagged = sorted({d.bar for d in _errors(diagnostics) if getattr(d, "bar", None)})
        unplaced = any(not getattr(d, "bar", None) for d in _errors(diagnostics))
        if unplaced or not flagged or flagged[-1] > len(bars):
            flagged = list(range(1, len(bars) + 1))
        attempts += 1
        messages = compose_messages(request)
        for first, last in _runs(flagged):
            report("repair", first - 1, abc)
            abc, decoded_stats, _ = _regenerate(loaded, abc, first, last, messages, config,
                                                generator, keep_partial=True)
            stats.add(decoded_stats)
        report("validate", 0, abc)
        valid, diagnostics = _validate(abc)
    report("done", bar_count(_bars_of(abc)[0]), abc)
    return _finish(abc, valid, attempts, diagnostics, stats, started)


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs in a sorted list: [2, 3, 7] -> [(2, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


# --------------------------------------------------------------------------------------------
# Spans: regenerating some bars of an existing tune


def _tie_into(bar: Bar, body: str) -> str | None:
    """The pitch (or chord) a tie at the end of ``bar`` asks the next bar to begin with.

    A note is spelled with the accidental it sounds with (its own, or one written earlier in
    the bar on the same letter), as :class:`~agent.decoding.BodyState` requires; a chord as
    its bracket.
    """
    tail = [t for t in bar.tokens if t.kind not in (Kind.SPACE, Kind.SLUR, Kind.GRACE)]
    if len(tail) < 2 or tail[-1].kind is not Kind.TIE:
        return None
    element = tail[-2]
    if element.kind is Kind.CHORD and "]" in element.text:
        return element.text[:element.text.index("]") + 1]
    match = NOTE_HEAD_RE.match(element.text) if element.kind is Kind.NOTE else None
    if not match:
        return None
    accidental, letter, marks = match.groups()
    if not accidental:
        for token in tail[:-2]:
            if token.kind in (Kind.NOTE, Kind.CHORD):
                for found in NOTE_HEAD_RE.finditer(token.text):
                    if found.group(2).upper() == letter.upper() and found.group(1):
                        accidental = found.group(1)
    return (accidental or "") + letter + marks


def _ticks(duration: Fraction, unit: Fraction, subdivision: int) -> int | None:
    ticks = duration / unit * subdivision
    return int(ticks) if ticks.denominator == 1 and ticks > 0 else None


def _span_spec(tune: TuneText, bars: list[Bar], first: int, last: int, config: ComposeConfig,
               keep_partial: bool, ornaments: bool) -> tuple[BodySpec, str, str]:
    """The spec for regenerating bars ``first..last``, the blank cut from the end of the
    prompt (the model writes it again), and slur starts the new bars must begin with."""
    unit, sub = tune.unit_length, config.subdivision
    expected = [b.expected for b in bars]
    if any(expected[i] is None for i in range(first - 1, last)):
        raise DecodingError("bars in free meter cannot be regenerated under constraints")
    full = [_ticks(e, unit, sub) for e in expected]
    if any(full[i] is None for i in range(first - 1, last)):
        raise DecodingError(f"the meter is not a whole number of 1/{sub} units of L:{unit}")
    capacities = []
    partial = short_bars_allowed(bars) if keep_partial else set()  # pickups and their closings
    for number in range(first, last + 1):
        ticks = full[number - 1]
        if number in partial:
            ticks = _ticks(bars[number - 1].duration, unit, sub) or ticks
        capacities.append((number, ticks))
    body = tune.body
    boundaries: list[Boundary] = [Boundary(("",))] * (last + 1)
    for number in range(first, last):
        between = body[bars[number - 1].end:bars[number].start].lstrip(" ")
        if not set(between) <= BODY_CHARS:
            raise DecodingError(
                f"the bar line after bar {number} holds text the model cannot write")
        boundaries[number] = Boundary((between,), plain=between.strip() == "|")
    before = body[:bars[first - 1].start]
    lead = before[len(before.rstrip(" ")):]
    slurs_in = _slur_depth(tune, bars[first - 1].start)
    slurs_out = _slur_depth(tune, bars[last - 1].end)
    opens = ""
    if slurs_out > slurs_in:  # the old bars opened slurs the rest closes: open them up front
        opens = "(" * (slurs_out - slurs_in)
        slurs_in = slurs_out
    spec = BodySpec(
        bar_ticks=max(t for _, t in capacities), subdivision=sub, unit_length=unit,
        boundaries=tuple(boundaries), first_bar=first, last_bar=last, span_end=True,
        capacities=tuple(capacities), repetition=config.repetition(), ornaments=ornaments,
        max_accidentals_per_bar=config.max_accidentals_per_bar,
        double_accidentals=config.double_accidentals, decorations=config.decorations(),
        history=tuple(normalize_bar(b.text_in(body)) for b in bars[:first - 1]),
        tie_in=_tie_into(bars[first - 2], body) if first > 1 else None,
        slurs_in=slurs_in, slurs_out=slurs_out,
        pitch_steps=_instrument_steps(tune),
    )
    return spec, lead, opens


def _slur_depth(tune: TuneText, offset: int) -> int:
    """How many slurs are open at ``offset`` of the body."""
    depth = 0
    for token in tokenize_body(tune.body, tune):
        if token.start >= offset:
            break
        if token.kind is Kind.SLUR:
            depth += 1 if token.text == "(" else -1
    return max(depth, 0)


def _regenerate(
    loaded: Any,
    abc: str,
    first: int,
    last: int,
    messages: list,
    config: ComposeConfig,
    generator: Any,
    *,
    keep_partial: bool,
    on_bar: Callable[[int, str], None] | None = None,
) -> tuple[str, DecodeStats, bool]:
    """``abc`` with bars ``first..last`` rewritten by the model, every other byte kept, and
    whether that worked (False: the token budget ran out, and ``abc`` comes back unchanged)."""
    tune, bars = _bars_of(abc)
    if not 1 <= first <= last <= len(bars):
        raise DecodingError(f"bars {first}..{last} are not in a tune of {len(bars)} bars")
    if len({bar.voice for bar in bars}) > 1:
        raise DecodingError("bars can be rewritten in single-voice tunes only")
    spec, lead, opens = _span_spec(tune, bars, first, last, config, keep_partial,
                                   config.ornaments_for(loaded))
    body = tune.body
    cut = bars[first - 1].start - len(lead)
    prefill = abc[:tune.body_offset] + body[:cut]
    prompt = chat_prompt_ids(loaded.tokenizer, messages, prefill=prefill)
    state = start_state(spec, leading=(lead + opens,))
    budget = config.token_budget(last - first + 1)
    progress = None if on_bar is None else (lambda bars, text: on_bar(bars, prefill + text))
    decoded = decode_body(loaded, prompt, state, config, generator, budget=budget, on_bar=progress,
                          short_notes=config.short_notes if config.rhythm_prior else None)
    if not decoded.complete:
        return abc, decoded.stats, False
    new_body = body[:cut] + decoded.text + body[bars[last - 1].end:]
    rewritten = abc[:tune.body_offset] + new_body + abc[tune.body_offset + len(body):]
    return rewritten, decoded.stats, True


def edit_span(
    loaded: Any,
    current_abc: str,
    instruction: str,
    first_bar: int,
    last_bar: int,
    config: ComposeConfig = ComposeConfig(),
    on_progress: Progress | None = None,
) -> ComposeResult:
    """Rewrite bars ``first_bar..last_bar`` (1-based, as :func:`agent.abc_text.split_bars`
    counts them) following ``instruction``; every other bar stays byte-identical.

    The prompt is :func:`agent.prompts.edit_messages` with the tune up to ``first_bar`` as the
    prefill. Each bar keeps its length (a pickup stays a pickup) and the bar lines between the
    rewritten bars stay as they were. ``w:`` lines are removed first (``lyrics_removed``). If
    the result fails validation inside the span, the span is rewritten again, up to
    ``max_attempts`` times.
    """
    started = time.perf_counter()
    abc, lyrics_removed = strip_lyrics(current_abc)
    messages = edit_messages(abc, instruction)
    generator = _generator(config.seed)
    report = on_progress or (lambda stage, bars, text: None)
    stats = DecodeStats()
    attempts, valid, result, diagnostics = 0, False, abc, []
    while attempts < config.max_attempts:
        attempts += 1
        report("edit", first_bar - 1, abc)
        result, decoded_stats, done = _regenerate(
            loaded, abc, first_bar, last_bar, messages, config, generator, keep_partial=True,
            on_bar=lambda bars, text: report("edit", bars, text))
        stats.add(decoded_stats)
        if not done:  # out of tokens: the span was left as it was; try again
            valid = False
            diagnostics = [_diagnostic(f"bars {first_bar}..{last_bar} could not be rewritten "
                                       "within the token budget", first_bar)]
            continue
        report("validate", last_bar, result)
        valid, diagnostics = _validate(result)
        inside = [d for d in _errors(diagnostics)
                  if not getattr(d, "bar", None) or first_bar <= d.bar <= last_bar]
        if valid or not inside:
            break
    report("done", last_bar, result)
    return _finish(result, valid, attempts, diagnostics, stats, started, lyrics_removed)
