"""One chat message in, one new version of the score and a reply out.

:func:`take_turn` is the whole flow of a turn (see the design notes): *understand* the message
(:mod:`agent.understand`), then *compose* (:mod:`agent.compose`), *edit* exactly
(:mod:`agent.edits`), rewrite a span, write or revise *lyrics* (:mod:`agent.lyrics`), *answer* a
question (:mod:`agent.answer`) or move through the *session*'s versions (:mod:`agent.session`);
every new score is *validated* (:mod:`agent.validate`) before it becomes a version. Rendering is
left to the caller (:func:`render_version`), so the CLI, the app and the benchmark choose which
files they need.

Only composing, creative edits and lyric writing need the model; :class:`Composer` loads it
once, on first use, and serialises calls to it. Everything else is rules, tables and music21.

>>> from agent.session import Session
>>> turn = take_turn(Session(), "", Composer.unavailable())
>>> turn.changed, turn.reply.startswith("Tell me")
(False, True)
>>> tune = "X:1\\nT:Air\\nM:3/4\\nL:1/8\\nQ:1/4=90\\nK:D\\nD2 F2 A2|d6|]\\n"
>>> turn = take_turn(Session(), tune, Composer.unavailable())
>>> turn.changed, turn.session.versions[-1].abc == tune
(True, True)
>>> turn = take_turn(turn.session, "transpose it up a whole step", Composer.unavailable())
>>> turn.session.versions[-1].abc.splitlines()[-2:]
['K:E', 'E2 G2 B2|e6|]']
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from agent import lyric_replies
from agent import lyrics as lyric_ops
from agent import session as sessions
from agent import song_form
from agent.abc_text import Kind, bar_count, parse_tune, sounding_bars, tokenize_body
from agent.answer import QUESTION_KINDS, answer_question, define
from agent.compose import ComposeConfig, compose_tune, edit_span
from agent.decoding import FormPlan
from agent.edits import apply_edits, resolve_span, set_instrument, shown_bars, transpose
from agent.errors import InputError, ModelError, TunesmithError
from agent.harmony_chat import answer_chords, apply_harmony_ops, carry_chords, chords_for_new_tune
from agent.lyrics import (LyricsConfig, SharedModelText, chorus_lines, rewrite_lines, set_words,
                          write_lyrics)
from agent.mood_turn import apply_mood_change, finish_new_tune, mood_with_edits, plan_new_tune
from agent.notation import MODE_SUFFIX
from agent.ops import (AddVerse, Attributes, RemoveLyrics, ReplaceLyricLine, ReplaceLyricWord, Request,
                       RewriteLyricLines, SetInstrument, SetLyrics, SetPartWords, Transpose,
                       WriteLyrics)
from agent.prompts import abc_header
from agent.render import render_score_text, warm_up_in_background
from agent.session import Session
from agent.singable import singable_for_words
from agent.understand import UnderstandConfig, resolve, understand
from agent.validate import validate_abc

Progress = Callable[[str, int, str], None]

HELP_TEXT = (
    "Ask me for a tune — for example “a sad waltz in D minor”, “a lively jig in G for fiddle”, "
    "“a lullaby with words about the moon”. Then keep shaping it: “faster”, “put it in E minor”, "
    "“up a fifth”, “make it major”, “call it The Long Road”, “play it on the flute”, “replace bar 3 "
    "with |A2 B2 c2|”, “make the second half livelier”, “add lyrics about autumn”, “change the "
    "first line to …”, “remove the lyrics”. Ask “what key is it in?”, “how many bars?”, “what "
    "chords fit?”. Say “undo”, “redo” or “start over” at any time. You can also paste ABC."
)

DEFAULT_ADAPTER = Path(__file__).resolve().parent.parent / "models" / "tunesmith-smollm2-135m"


@dataclass(frozen=True)
class AgentConfig:
    """Settings of the agent: which model, and each stage's own settings."""

    base: str = field(default="smollm2-135m", metadata={"help": "base model name, HF id or folder"})
    adapter: str | None = field(
        default=None, metadata={"help": "adapter folder; None: the shipped adapter; 'none': bare base"}
    )
    quantize: str = field(
        default="auto",
        metadata={"help": "auto (the CPU path agent.model.resolve_cpu_path picks: ort, 8-bit "
                  "weights), none, int8-weight or int8-dynamic (CPU)"},
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "auto (bfloat16 where the CPU computes in it, else float32), float32, bfloat16"},
    )
    threads: int = field(
        default=0, metadata={"help": "torch CPU threads; 0 = one per core (use 1 on a busy machine)"}
    )
    cpu_path: str = field(
        default="auto", metadata={"help": "auto, bf16, portable or float32: how the model runs on the "
                                          "CPU (agent.model.ModelConfig.cpu_path)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every sampling in the turn"})
    temperature: float = field(
        default=ComposeConfig.temperature,
        metadata={"help": "model sampling temperature (the composer's default: see ComposeConfig)"})
    max_message_chars: int = field(
        default=20_000, metadata={"help": "longer chat messages are refused (pasted ABC: 100 kB)"}
    )
    understand: UnderstandConfig = field(default_factory=UnderstandConfig)
    chords: bool = field(default=True, metadata={
        "help": "give every composed tune chord symbols and its style's accompaniment"})


def resolve_adapter(adapter: str | None) -> str | None:
    """The adapter folder to load: ``None`` means the shipped one, ``'none'`` the bare base."""
    if adapter is None:
        if not (DEFAULT_ADAPTER / "adapter_config.json").is_file():
            raise ModelError(
                f"the shipped adapter is missing ({DEFAULT_ADAPTER}); pass --adapter none for the bare base"
            )
        return str(DEFAULT_ADAPTER)
    if adapter.lower() == "none":
        return None
    return adapter


class Composer:
    """The language model, loaded once on first use; one generation at a time.

    ``Composer.unavailable()`` gives one that refuses politely: turns that need no model
    (edits, questions, undo) work without loading anything.
    """

    def __init__(self, config: AgentConfig | None, loader: Callable[[Any], Any] | None = None):
        self.config = config
        self._loader = loader
        self._loaded: Any = None
        self._lock = threading.Lock()

    @classmethod
    def unavailable(cls) -> "Composer":
        return cls(None)

    @property
    def loaded(self) -> Any:
        """The :class:`agent.model.LoadedModel`, loading it on first use."""
        if self.config is None:
            raise ModelError("no model is loaded in this context")
        if self._loaded is None:
            from agent.model import ModelConfig, load_model  # torch loads only with a model

            model_config = ModelConfig(
                base=self.config.base,
                adapter=resolve_adapter(self.config.adapter),
                quantize=self.config.quantize,
                dtype=self.config.dtype,
                threads=self.config.threads,
                cpu_path=self.config.cpu_path,
            )
            self._loaded = (self._loader or load_model)(model_config)
        return self._loaded

    def run(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(loaded_model)`` with the model to itself."""
        with self._lock:
            return work(self.loaded)


@dataclass
class Turn:
    """What a turn did: the new session, the reply, whether the score changed and why not."""

    session: Session
    reply: str
    changed: bool
    intent: str
    diagnostics: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Headers and plans for new tunes


def tempo_field(meter: str, bpm: int) -> str:
    """The ``Q:`` value for ``bpm`` beats a minute, the beat being the meter's natural beat.

    >>> tempo_field("6/8", 116), tempo_field("3/4", 90), tempo_field("2/2", 100)
    ('3/8=116', '1/4=90', '1/2=100')
    """
    top, _, bottom = meter.partition("/")
    if not top.isdigit() or not bottom.isdigit():
        return f"1/4={bpm}"
    numerator, denominator = int(top), int(bottom)
    if denominator >= 8 and numerator % 3 == 0 and numerator > 3:
        return f"3/{denominator}={bpm}"
    return f"1/{denominator}={bpm}"


def form_plan(attrs: Attributes) -> Any:
    """The bars and sections to write: dance tunes are two repeated parts, others one section."""
    bars = attrs.bars or 16
    if attrs.form == "AABB" and bars % 2 == 0 and bars >= 4:
        return FormPlan.dance(bars // 2)
    return FormPlan.through(bars)


def header_for(attrs: Attributes) -> str:
    """The ABC header of a new tune, from fully resolved attributes."""
    key = attrs.tonic + _mode_suffix(attrs.mode)
    return abc_header(
        title=attrs.title or "Untitled",
        meter=attrs.meter or "4/4",
        tempo=tempo_field(attrs.meter or "4/4", attrs.tempo_bpm or 100),
        key=key,
        style=attrs.style,
    )


def _mode_suffix(mode: str | None) -> str:
    return MODE_SUFFIX[mode or "major"]


def describe(abc: str) -> str:
    """One sentence on a tune: title, key, meter, tempo, bars, form."""
    tune = parse_tune(abc)
    tokens = tokenize_body(tune.body, tune)
    bars = bar_count(tune, tokens)
    repeats = sum(1 for t in tokens if t.kind is Kind.BAR and ":" in t.text)
    key = tune.key
    mode = "" if key.mode == "major" else f" {key.mode}"
    if key.mode == "major":
        mode = " major"
    form = ", with repeats" if repeats else ""
    tempo = tune.get("Q")
    tempo_text = f" at {tempo.split('=')[-1]} beats a minute" if tempo and "=" in tempo else ""
    return (
        f"“{tune.title or 'Untitled'}”: {key.tonic}{mode}, {tune.get('M') or 'free meter'}"
        f"{tempo_text}, {bars} bars{form}."
    )


# --------------------------------------------------------------------------------------------
# The turn


def for_next_turn(config: AgentConfig, session: Session) -> AgentConfig:
    """``config`` for the next turn of ``session``: its seed plus the number of turns taken so
    far, so a conversation replayed with the same seed gives the same scores and no two turns
    of one conversation sample alike. The command line and the app both seed turns this way.

    >>> from agent.session import add_message
    >>> for_next_turn(AgentConfig(seed=5), Session()).seed
    5
    >>> for_next_turn(AgentConfig(seed=5), add_message(Session(), "user", "a jig")).seed
    6
    """
    turns = sum(1 for message in session.messages if message.get("role") == "user")
    return dataclasses.replace(config, seed=config.seed + turns)


def take_turn(
    session: Session,
    message: str,
    composer: Composer,
    config: AgentConfig = AgentConfig(),
    on_progress: Progress | None = None,
) -> Turn:
    """Answer ``message`` in ``session``: never raises for anything the person typed."""
    text = message if isinstance(message, str) else ""
    limit = config.understand.max_abc_chars if "K:" in text else config.max_message_chars
    if len(text) > limit:
        reply = (f"That message is {len(text):,} characters long; I can read up to {limit:,}. "
                 "Your score is unchanged.")
        return _reply_only(session, message, reply, "too_long")
    if not text.strip():
        return _reply_only(session, message, "Tell me what to write — " + HELP_TEXT[len("Ask me for a tune — "):],
                           "empty")
    current = sessions.current_abc(session)
    request = understand(text, has_score=current is not None, config=config.understand)
    try:
        turn = _dispatch(session, request, current, composer, config, on_progress)
    except TunesmithError as err:
        turn = _reply_only(session, None, f"I could not do that: {err}. Your score is unchanged.",
                           request.intent)
    except Exception as err:  # a bug must not lose the person's score; say what happened
        turn = _reply_only(session, None, f"Something went wrong on my side ({type(err).__name__}: "
                           f"{err}). Your score is unchanged.", request.intent)
        turn.details["internal_error"] = True
    turn.session = sessions.add_message(sessions.add_message(turn.session, "user", text), "assistant",
                                        turn.reply)
    return turn


def _reply_only(session: Session, message: str | None, reply: str, intent: str) -> Turn:
    if message is not None:
        session = sessions.add_message(sessions.add_message(session, "user", message), "assistant", reply)
    return Turn(session=session, reply=reply, changed=False, intent=intent)


def _new_version(session: Session, abc: str, summary: str, reply: str, intent: str,
                 details: dict | None = None) -> Turn:
    """Validate ``abc`` and make it the current version, or explain why not."""
    report = validate_abc(abc)
    if not report.valid:
        problems = "; ".join(d.message for d in report.errors[:3])
        if all(d.code == "range" for d in report.errors):  # e.g. a transposition past the top
            reply = (f"That would take notes out of the playable range ({problems}), so I kept "
                     "your score as it was. Try the other direction, or an octave lower or higher.")
        else:
            reply = ("That came out with a mistake in its notation, so I kept your score as it "
                     f"was; ask again for another try. (The checker said: {problems}.)")
        return Turn(session=session, changed=False, intent=intent, reply=reply,
                    diagnostics=[d.to_dict() for d in report.diagnostics])
    session = sessions.add_version(session, abc, summary)
    return Turn(session=session, reply=reply, changed=True, intent=intent,
                diagnostics=[d.to_dict() for d in report.diagnostics], details=details or {})


def _dispatch(session: Session, request: Request, current: str | None, composer: Composer,
              config: AgentConfig, on_progress: Progress | None) -> Turn:
    intent = request.intent
    if intent == "undo":
        try:
            session = sessions.undo(session)
        except sessions.SessionError:
            return Turn(session, "There is nothing to undo.", False, intent)
        abc = sessions.current_abc(session)
        return Turn(session, "Undone. " + (f"Back to {describe(abc)}" if abc else "The score is empty again."),
                    True, intent)
    if intent == "redo":
        try:
            session = sessions.redo(session)
        except sessions.SessionError:
            return Turn(session, "There is nothing to redo.", False, intent)
        return Turn(session, "Redone: " + describe(sessions.current_abc(session)), True, intent)
    if intent == "start_over":
        if current is None:
            return Turn(session, "The score is already empty. " + HELP_TEXT, False, intent)
        return Turn(sessions.start_over(session),
                    "Starting over with an empty score (say “undo” to get the last one back).", True, intent)
    if intent == "help":
        return Turn(session, HELP_TEXT, False, intent)
    if intent == "chat":
        reply = request.explanation or ("I write and edit tunes. " + HELP_TEXT)
        return Turn(session, reply, False, intent)
    if intent == "abc_paste":
        return _adopt_pasted(session, request)
    if intent == "question":
        return _answer(session, request, current)
    if intent == "compose":
        return _compose(session, request, composer, config, on_progress)
    if intent == "harmony":
        return _harmony(session, request, current)
    if current is None:
        return Turn(session, "There is no tune yet to change. " + HELP_TEXT, False, intent)
    if intent == "exact_edit":
        return _exact_edit(session, request, current)
    if intent == "creative_edit":
        combined = mood_with_edits(request)  # "sadder and slower": one exact edit, no rewrite
        if combined is not None:
            return _mood_edit(session, combined, current, composer, config, on_progress)
        return _creative_edit(session, request, current, composer, config, on_progress)
    if intent == "lyrics":
        return _lyrics(session, request, current, composer, config)
    if intent == "mood_edit":  # with "louder"/"softer" said with the mood done too
        return _mood_edit(session, mood_with_edits(request) or request, current, composer, config,
                          on_progress)
    return Turn(session, "I am not sure what to do with that. " + HELP_TEXT, False, intent)


def _mood_edit(session: Session, request: Request, current: str, composer: Composer,
               config: AgentConfig, on_progress: Progress | None) -> Turn:
    """ "sadder", "a bit happier": exact edits, and busy bars rewritten when a model is here."""
    def rewrite(abc: str, first: int, last: int, share: float) -> Any:
        settings = ComposeConfig(seed=config.seed, temperature=config.temperature, short_notes=share)
        return composer.run(lambda loaded: edit_span(loaded, abc, request.text, first, last,
                                                     settings, on_progress))

    done = apply_mood_change(current, request, rewrite if composer.config is not None else None)
    return _new_version(session, done.abc, done.summary, done.reply, "mood_edit", done.details)


def _harmony(session: Session, request: Request, current: str | None) -> Turn:
    """Chords and accompaniment (agent.harmony_chat): the melody and words never change."""
    if current is None:
        return Turn(session, request.explanation or HELP_TEXT, False, "harmony")
    outcome = apply_harmony_ops(current, request.harmony_ops)
    if not outcome.changed:
        return Turn(session, outcome.reply, False, "harmony")
    return _new_version(session, outcome.abc, outcome.reply[:60], outcome.reply, "harmony")


def adopt_score(session: Session, text: str, summary: str = "pasted ABC",
                reply_start: str = "Got it: ") -> Turn:
    """Make ABC the person wrote (pasted in the chat or typed in the editor) the current
    version when it is valid; otherwise keep the score and list the problems, line by line.

    >>> turn = adopt_score(Session(), "X:1\\nT:Hop\\nM:2/4\\nL:1/8\\nK:G\\nGABc|d4|]")
    >>> turn.changed, turn.reply
    (True, 'Got it: “Hop”: G major, 2/4, 2 bars.')
    >>> turn = adopt_score(turn.session, "X:1\\nM:2/4\\nL:1/8\\nK:G\\nGABcd|]")
    >>> turn.changed, sessions.current_abc(turn.session).splitlines()[1]
    (False, 'T:Hop')
    """
    abc = text.strip() + "\n"
    report = validate_abc(abc)
    if not report.valid:
        listing = "\n".join(f"- {d.message}" + (f" (line {d.line})" if d.line else "")
                            for d in report.errors[:8])
        return Turn(session, f"That ABC has problems, so I kept your score:\n{listing}", False,
                    "abc_paste", diagnostics=[d.to_dict() for d in report.diagnostics])
    return _new_version(session, abc, summary, reply_start + describe(abc), "abc_paste")


def _adopt_pasted(session: Session, request: Request) -> Turn:
    return adopt_score(session, request.abc or "")


def _answer(session: Session, request: Request, current: str | None) -> Turn:
    kind = request.question.kind if request.question else "key"
    if kind == "define":
        return Turn(session, define(request.question.subject), False, "question")
    if current is None:
        return Turn(session, "There is no tune yet to ask about. " + HELP_TEXT, False, "question")
    if kind == "chords":
        return Turn(session, answer_chords(current, request.question.subject), False, "question")
    if kind == "lyrics" and song_form.song_parts(current):  # "the words of the chorus?"
        return Turn(session, song_form.words_answer(current, request.text), False, "question")
    kind = {"time": "meter", "length": "bars", "sad": "mood", "why": "mood"}.get(kind, kind)
    if kind not in QUESTION_KINDS:
        return Turn(session, describe(current), False, "question")
    return Turn(session, answer_question(current, kind), False, "question")


def _compose(session: Session, request: Request, composer: Composer, config: AgentConfig,
             on_progress: Progress | None) -> Turn:
    attrs, mood_plan = plan_new_tune(request.attributes, resolve(request.attributes, config.understand))
    header = header_for(attrs)
    plan = song_form.song_plan(attrs.bars) if attrs.verses else form_plan(attrs)
    compose_config = ComposeConfig(seed=config.seed, temperature=config.temperature, program=attrs.program,
                                   short_notes=mood_plan.short_notes if mood_plan else None)
    warm_up_in_background()  # the renderers load while the model writes (about 1 s, once)
    result = composer.run(lambda loaded: compose_tune(loaded, request.text, header, plan,
                                                      compose_config, on_progress))
    details = result.summary()
    if not result.valid:
        problems = "; ".join(getattr(d, "message", str(d)) for d in result.diagnostics[:3])
        return Turn(session, f"I could not write a valid tune in {result.attempts} attempts "
                    f"({problems}). Try again or rephrase; your score is unchanged.", False, "compose",
                    diagnostics=[_as_dict(d) for d in result.diagnostics], details=details)
    abc = result.abc
    notes = []
    if attrs.verses:  # verse and chorus marked as parts, inside a repeat for two verses
        abc = song_form.shape_song(abc, plan.parts[0].bars, attrs.verses)
        notes.append(f"Your song has {song_form.describe_song(abc)}.")
    if attrs.program is not None:
        abc, octave_note = _fit_instrument(
            set_instrument(abc, SetInstrument(program=attrs.program, name=attrs.instrument or "")).abc)
        notes.append(octave_note)
    sung = bool(attrs.lyrics_text or attrs.lyrics or attrs.verses)
    if sung and mood_plan is not None:  # a voice's range places a song, not the mood's octave
        mood_plan = dataclasses.replace(mood_plan, register=0)
    abc, mood_note = finish_new_tune(abc, mood_plan)  # dynamics, articulation, register
    notes.append(mood_note)
    if attrs.lyrics_text or attrs.lyrics:  # words need a melody a voice can sing
        abc, sing_note = singable_for_words(abc)
        notes.append(sing_note)
    if attrs.lyrics_text:
        try:
            abc, words_note = _set_words(abc, attrs.lyrics_text)
        except InputError as err:  # keep the new tune; say why the words are missing
            words_note = f"I could not set your words ({err.args[0]})."
        notes.append(words_note)
    elif attrs.verses:
        abc, words_note = _song_words(abc, attrs.lyrics_theme or attrs.mood or "the song",
                                      composer, config)
        notes.append(words_note)
    elif attrs.lyrics:
        lyrics = _write_lyrics(abc, attrs.lyrics_theme or attrs.mood or "the tune", composer, config)
        if lyrics.ok:
            abc = lyrics.abc
            notes.append(f"Words about {attrs.lyrics_theme or 'it'} are under the notes: "
                         f"{lyric_ops.quote_lines(lyrics.lines)}.{_unrhymed_note(lyrics)}")
        else:
            notes.append(lyric_replies.refusal(lyrics.reasons, lyric_replies.NO_WORDS_YET))
    if config.chords:  # after the words: chord symbols leave the melody and w: lines as they are
        abc, chords_note = chords_for_new_tune(abc, attrs.style)
        notes.append(f"It comes {chords_note}.")
    reply = f"Here is {describe(abc)} " + " ".join(note for note in notes if note)
    reply += " You can ask me to change the key or tempo, add lyrics, or rewrite a part."
    return _new_version(session, abc, f"composed: {request.text[:60]}", reply.strip(), "compose", details)


def _fit_instrument(abc: str) -> tuple[str, str]:
    """Move a tune by whole octaves into its instrument's range when it lies outside it.

    The melody is composed before the instrument is known to the validator; an octave shift
    keeps every note's name and the key, and is what a player would do. Returns the tune and a
    sentence for the reply ('' when nothing moved).
    """

    if not any(d.code == "range" for d in validate_abc(abc).errors):
        return abc, ""
    for shift in (12, -12, 24, -24):
        moved = transpose(abc, Transpose(semitones=shift)).abc
        if not any(d.code == "range" for d in validate_abc(moved).errors):
            direction = "up" if shift > 0 else "down"
            count = "an octave" if abs(shift) == 12 else "two octaves"
            return moved, f"I moved it {direction} {count} to suit the instrument's range."
    return abc, ""


def _as_dict(diagnostic: Any) -> dict:
    if hasattr(diagnostic, "to_dict"):
        return diagnostic.to_dict()
    return {"message": str(diagnostic)}


def _exact_edit(session: Session, request: Request, current: str) -> Turn:
    if not request.edits:
        return Turn(session, "I understood that as an edit, but not which one. " + HELP_TEXT, False,
                    "exact_edit")
    result = apply_edits(current, request.edits)
    return _new_version(session, result.abc, result.summary, result.summary + " " + describe(result.abc),
                        "exact_edit")


def _creative_edit(session: Session, request: Request, current: str, composer: Composer,
                   config: AgentConfig, on_progress: Progress | None) -> Turn:
    creative = request.creative
    if creative is None:
        return Turn(session, "Which part should I change?", False, "creative_edit")
    part = song_form.named_part(creative.instruction) if creative.span is None else None
    if part and song_form.song_parts(current):  # "make the chorus catchier": that part only
        return _song_part_edit(session, current, part, creative.instruction, composer, config,
                               on_progress)
    first, last = resolve_span(current, creative.span) if creative.span else _whole_tune(current)
    shown = "–".join(map(str, shown_bars(current, first, last)))  # as the score numbers them
    compose_config = ComposeConfig(seed=config.seed, temperature=config.temperature)
    result = composer.run(lambda loaded: edit_span(loaded, current, creative.instruction, first, last,
                                                   compose_config, on_progress))
    if not result.valid:
        return Turn(session, f"I could not rewrite bars {shown} validly in {result.attempts} "
                    "attempts; your score is unchanged.", False, "creative_edit",
                    diagnostics=[_as_dict(d) for d in result.diagnostics])
    abc, extra = carry_chords(current, result.abc)  # rewritten bars get chords again
    if request.edits:  # "make it sadder and slower": the exact part of the request too

        edited = apply_edits(abc, request.edits)
        abc, extra = edited.abc, extra + " " + edited.summary
    note = " (the lyrics were removed, since the notes changed)" if result.lyrics_removed else ""
    return _new_version(session, abc, f"rewrote bars {shown}",
                        f"I rewrote bars {shown}{note}; the rest is as it was.{extra}",
                        "creative_edit")


def _song_part_edit(session: Session, current: str, part: str, instruction: str,
                    composer: Composer, config: AgentConfig, on_progress: Progress | None) -> Turn:
    """One part of a song rewritten by the model, made singable, its words set again."""
    settings = ComposeConfig(seed=config.seed, temperature=config.temperature)

    def rewrite(abc: str, first: int, last: int) -> str:
        result = composer.run(lambda loaded: edit_span(loaded, abc, instruction, first, last,
                                                       settings, on_progress))
        if not result.valid:
            raise InputError(f"the {part} could not be rewritten validly in {result.attempts} attempts")
        return result.abc

    abc, words_said = song_form.rewrite_part(current, part, rewrite, singable_for_words)
    abc, extra = carry_chords(current, abc)
    first, last = song_form.find_part(abc, part).bars
    return _new_version(session, abc, f"rewrote the {part}",
                        f"I rewrote the {part} (bars {first}–{last}); the other part is as it was. "
                        f"{words_said}{extra}".strip(), "creative_edit")


def _whole_tune(abc: str) -> tuple[int, int]:
    return 1, len(sounding_bars(parse_tune(abc)))


def _generate_text(composer: Composer) -> Callable:
    return SharedModelText(composer.run)  # writes lines and judges rhyme swaps


def _lyrics_config(config: AgentConfig) -> Any:
    return LyricsConfig(seed=config.seed)


def _write_lyrics(abc: str, theme: str, composer: Composer, config: AgentConfig) -> Any:
    return write_lyrics(abc, theme, _generate_text(composer), _lyrics_config(config))


def _rewrite_lines(abc: str, op: Any, composer: Composer, config: AgentConfig) -> tuple[Any, str]:
    """New words for the lines ``op`` names (the chorus: the last stanza), and how to say which."""
    lines = chorus_lines(abc) if op.chorus else op.lines
    if not lines:
        raise InputError("the tune has no words yet: ask for lyrics first")
    span = (f"line {lines[0]}" if len(lines) == 1 and lines[0] > 0 else "the last line"
            if lines == (-1,) else f"lines {lines[0]}–{lines[-1]}")
    said = f"the chorus (taken as the last stanza: {span})" if op.chorus else span
    theme = op.theme or parse_tune(abc).get("T") or "the song"
    result = rewrite_lines(abc, lines, theme, _generate_text(composer), _lyrics_config(config))
    return result, said


def _words_refused(session: Session, what: str, problems: Sequence[str]) -> Turn:
    """A lyrics turn that changes nothing: what went wrong in plain words first ("I couldn't
    find words that fit the short second phrase"), the checker's words for it last."""
    return Turn(session, lyric_replies.refusal(problems, what=what), False, "lyrics")


def _unrhymed_note(result: Any) -> str:
    """A sentence naming the rhymes the lyrics miss ("" when every pair rhymes)."""
    misses = result.unrhymed if hasattr(result, "unrhymed") else result.report.unrhymed
    return lyric_replies.unrhymed_note(misses)


def _song_words(abc: str, theme: str, composer: Composer, config: AgentConfig) -> tuple[str, str]:
    """Words for each verse and the chorus of a new song (agent.song_form), and the reply."""
    words = song_form.write_song_words(abc, theme, _generate_text(composer), _song_config(config))
    if not words.ok:
        return abc, lyric_replies.refusal(words.problems, lyric_replies.NO_WORDS_YET)
    return words.abc, song_form.words_note(words)


def _song_config(config: AgentConfig) -> Any:
    return song_form.SongFormConfig(lyrics=_lyrics_config(config))


def _set_words(abc: str, text: str) -> tuple[str, str]:
    new_abc, report = set_words(abc, text)
    if not report.ok:
        raise InputError(lyric_replies.words_not_set(report.problems))
    note = report.summary()
    return new_abc, note


def _lyrics(session: Session, request: Request, current: str, composer: Composer,
            config: AgentConfig) -> Turn:
    if not request.lyric_ops:
        return Turn(session, "What should the words be about?", False, "lyrics")
    abc, notes = current, []
    for op in request.lyric_ops:
        if isinstance(op, WriteLyrics):  # on a melody a voice can sing, first made so if need be
            bare, sing_note = singable_for_words(lyric_ops.remove_lyrics(abc)[0])
            result = _write_lyrics(bare, op.theme or "the tune", composer, config)
            if not result.ok:
                return _words_refused(session, "write lyrics that fit", result.reasons)
            abc = result.abc
            notes += [sing_note] if sing_note else []
            notes.append(f"Here are words about {op.theme or 'the tune'}: "
                         f"{lyric_ops.quote_lines(result.lines)}.{_unrhymed_note(result)}")
        elif isinstance(op, AddVerse) and song_form.takes_verse(abc):  # under a repeat
            theme = op.theme or parse_tune(abc).get("T") or "the song"
            result = song_form.add_song_verse(abc, theme, _generate_text(composer),
                                              _song_config(config))
            if not result.ok:
                return _words_refused(session, "write a second verse that fits", result.problems)
            abc = result.abc
            notes.append(song_form.verse_reply(result, theme))
        elif isinstance(op, SetPartWords):  # "change the chorus to: ...": that part only
            abc, report = song_form.set_part_words(abc, op.part, op.text)
            if not report.ok:
                raise InputError(lyric_replies.words_not_set(report.problems).replace(
                    "of the tune", f"of the {op.part}"))
            notes.append(report.summary().replace("under the melody", f"on the {op.part}", 1))
        elif isinstance(op, AddVerse):
            result = lyric_ops.add_verse(abc, op.theme or "the tune", _generate_text(composer),
                                         _lyrics_config(config))
            if not result.ok:
                return _words_refused(session, "write a verse that fits", result.reasons)
            abc = result.abc
            notes.append(f"A new verse about {op.theme or 'the tune'} is under the first."
                         f"{_unrhymed_note(result)}")
        elif isinstance(op, SetLyrics):
            sung, sing_note = singable_for_words(lyric_ops.remove_lyrics(abc)[0])
            abc, summary = _set_words(sung if sing_note else abc, op.text)
            notes += [sing_note, summary] if sing_note else [summary]
        elif isinstance(op, ReplaceLyricLine):
            if not op.text:
                return Turn(session, f"What should line {op.line} say? For example: “change line "
                            f"{op.line} to …”.", False, "lyrics")
            abc, _ = lyric_ops.replace_line(abc, op.line, op.text)
            notes.append(f"Line {op.line} now reads “{op.text}”.")
        elif isinstance(op, RewriteLyricLines) and op.chorus and song_form.song_parts(abc):
            theme = op.theme or parse_tune(abc).get("T") or "the song"
            result = song_form.write_chorus_words(abc, theme, _generate_text(composer),
                                                  _song_config(config))
            if not result.ok:
                return _words_refused(session, "write a chorus that fits", result.problems)
            abc = result.abc
            notes.append(f"The chorus is now about {theme}: {lyric_ops.quote_lines(result.chorus)}"
                         ". The verses are as they were.")
        elif isinstance(op, RewriteLyricLines):
            result, said = _rewrite_lines(abc, op, composer, config)
            if not result.ok:
                return _words_refused(session, f"rewrite {said}", result.problems)
            abc = result.abc
            notes.append(f"I rewrote {said} about {op.theme or 'the song'}; the other lines are as "
                         f"they were.{_unrhymed_note(result)}")
        elif isinstance(op, ReplaceLyricWord):
            abc, _ = lyric_ops.replace_word(abc, op.old, op.new)
            notes.append(f"“{op.old}” is now “{op.new}”.")
        elif isinstance(op, RemoveLyrics):
            abc, removed = lyric_ops.remove_lyrics(abc)
            notes.append("The lyrics are gone." if removed else "There were no lyrics to remove.")
    if abc == current:
        return Turn(session, " ".join(notes) or "Nothing changed.", False, "lyrics")
    if _note_tokens(abc) == _note_tokens(current):
        notes.append("The notes are unchanged.")
    return _new_version(session, abc, "lyrics", " ".join(notes), "lyrics")


def _note_tokens(abc: str) -> list[tuple]:
    """The notes of a tune as (text, pitches, duration), to tell whether an edit touched them."""
    tune = parse_tune(abc)
    return [(t.text, t.pitches, t.duration) for t in tokenize_body(tune.body, tune) if t.is_timed]


# --------------------------------------------------------------------------------------------
# Rendering


def render_version(abc: str, out_dir: Path, formats: Any = None) -> dict:
    """Write the score's files (ABC, MIDI, MusicXML, SVG, PDF, WAV) into ``out_dir``."""
    return dict(render_score_text(abc, Path(out_dir), formats=formats))
