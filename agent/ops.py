"""What a request is made of: the key a person names, a new tune's attributes, the exact edits,
the creative edit, the lyric operations, a question, and the request that carries them.

:mod:`agent.understand` makes these from a chat message; :mod:`agent.edits`,
:mod:`agent.lyrics` and :mod:`agent.conversation` carry them out. They are plain frozen
dataclasses, with no rules in them, so the parser and the editors meet only here.

>>> Transpose(semitones=7)
Transpose(semitones=7, to_key=None)
>>> KeyName("Bb", "minor").abc, KeyName("D").abc
('Bbm', 'D')
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from agent.notation import MODE_SUFFIX

__all__ = [
    "KeyName", "Attributes", "Span", "Transpose", "SetTempo", "ChangeMode", "SetInstrument",
    "SetTitle", "RepeatPart", "ChangeLength", "ReplaceBar", "CreativeEdit", "WriteLyrics",
    "SetLyrics", "ReplaceLyricLine", "RewriteLyricLines", "ReplaceLyricWord", "RemoveLyrics",
    "AddVerse", "SetPartWords", "ExactEdit", "LyricOp", "Question", "Request", "MoodChange",
    "AddChords", "SetChord", "SimplerChords", "JazzierChords", "RemoveChords",
    "SetAccompaniment", "HarmonyOp",
]

@dataclass(frozen=True)
class KeyName:
    """A key as a person names it: tonic ("Bb", "F#") and mode (None when not said)."""

    tonic: str
    mode: str | None = None

    @property
    def abc(self) -> str:
        """The key as an ABC ``K:`` value ("Bbm", "Ddor", "G"); major when no mode is given."""
        return self.tonic + MODE_SUFFIX[self.mode or "major"]


@dataclass(frozen=True)
class Attributes:
    """The music a message describes; None (or False) where it says nothing.

    ``tempo_bpm`` counts the meter's natural beat (a dotted quarter in 6/8); ``tempo_word`` is
    a speed word ("slow", "lively", "allegro"). ``lyrics_theme`` is what the tune is about,
    ``lyrics_text`` the person's own words. ``inferred`` names the fields that were not said
    outright (the mode a mood suggests, or what :func:`resolve` filled in). ``mood`` is the mood
    word as said ("wistful"; a comparative as its mood, "sadder" is "sad"), ``mood_intensity``
    its scale (0.5 "a bit", negative "less sad"), ``mood_comparative`` True for "sadder",
    ``mood_unknown`` mood-like words :mod:`agent.mood` does not know ("funkier").
    """

    tonic: str | None = None
    mode: str | None = None
    meter: str | None = None
    tempo_bpm: int | None = None
    tempo_word: str | None = None
    bars: int | None = None
    style: str | None = None
    form: str | None = None
    mood: str | None = None
    mood_intensity: float | None = None
    mood_comparative: bool = False
    mood_unknown: tuple[str, ...] | None = None
    instrument: str | None = None
    program: int | None = None
    lyrics: bool = False
    lyrics_theme: str | None = None
    lyrics_text: str | None = None
    title: str | None = None
    inferred: tuple[str, ...] = ()
    verses: int | None = None  # a song with a chorus and this many verses (agent.song_form)

    @property
    def key(self) -> KeyName | None:
        """The key, when a tonic is known."""
        return KeyName(self.tonic, self.mode) if self.tonic else None

    def stated(self) -> dict[str, object]:
        """The fields the message gave a value for, as a dict (``inferred`` left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "inferred" and getattr(self, f.name) not in (None, False)}


@dataclass(frozen=True)
class Span:
    """A part of a tune an edit is about.

    ``kind`` is "bars" (``start``..``end``, 1-based, inclusive), "part" (``part`` "A", "B"...),
    "half" (``part`` "first" or "second"), "beginning" or "ending" (``end`` = how many bars,
    None for the usual four), or "middle".
    """

    kind: str
    start: int | None = None
    end: int | None = None
    part: str | None = None


@dataclass(frozen=True)
class Transpose:
    """Move every note by ``semitones``, or to ``to_key`` (its mode None: keep the mode)."""

    semitones: int | None = None
    to_key: KeyName | None = None


@dataclass(frozen=True)
class SetTempo:
    """Set the tempo to ``bpm``, or multiply it by ``factor``."""

    bpm: int | None = None
    factor: float | None = None


@dataclass(frozen=True)
class ChangeMode:
    """Change the mode to ``target``, keeping the tonic ("parallel") or the notes ("relative")."""

    target: str
    relation: str = "parallel"


@dataclass(frozen=True)
class SetInstrument:
    """Play the tune on General MIDI program ``program`` (0-127), named ``name``."""

    program: int
    name: str


@dataclass(frozen=True)
class SetTitle:
    """Give the tune a new title."""

    title: str


@dataclass(frozen=True)
class RepeatPart:
    """Put repeat signs around ``span`` (None: each part of the tune)."""

    span: Span | None = None


@dataclass(frozen=True)
class ChangeLength:
    """Make the tune ``bars`` long, ``delta`` bars longer (negative: shorter), or ``factor``
    times as long."""

    bars: int | None = None
    delta: int | None = None
    factor: int | None = None


@dataclass(frozen=True)
class ReplaceBar:
    """Replace bar ``bar`` (1-based, as written) with the ABC ``abc``."""

    bar: int
    abc: str


@dataclass(frozen=True)
class MoodChange:
    """Move the tune toward ``mood`` (a name in :data:`agent.mood.MOODS`) by exact edits, at
    ``intensity`` (negative: "less sad"); ``comparative`` moves from where the tune stands
    ("sadder"), else to the mood's level ("make it sad"). The mode changes only with
    ``allow_mode_change`` (the message named a mode)."""

    mood: str
    intensity: float = 1.0
    comparative: bool = True
    allow_mode_change: bool = False


@dataclass(frozen=True)
class CreativeEdit:
    """A change the composer model makes: ``instruction`` in the person's words, on ``span``."""

    instruction: str
    span: Span | None = None


@dataclass(frozen=True)
class WriteLyrics:
    """Write lyrics for the tune, about ``theme`` when given."""

    theme: str | None = None


@dataclass(frozen=True)
class SetLyrics:
    """Set the person's own words to the tune."""

    text: str


@dataclass(frozen=True)
class ReplaceLyricLine:
    """Replace lyric line ``line`` (1-based; -1 the last) with ``text`` (None: write a new one)."""

    line: int
    text: str | None = None


@dataclass(frozen=True)
class RewriteLyricLines:
    """The model writes new words for some lyric lines, about ``theme`` (None: the song's own
    theme). ``lines`` are 1-based music line numbers (-1 the last); empty with ``chorus``: the
    song's last stanza. Every other line and every note stays as it is."""

    lines: tuple[int, ...] = ()
    theme: str | None = None
    chorus: bool = False


@dataclass(frozen=True)
class ReplaceLyricWord:
    """Replace the word ``old`` with ``new`` in the lyrics."""

    old: str
    new: str


@dataclass(frozen=True)
class RemoveLyrics:
    """Take the lyrics off the tune."""


@dataclass(frozen=True)
class AddVerse:
    """Add a verse of lyrics, about ``theme`` when given."""

    theme: str | None = None


@dataclass(frozen=True)
class SetPartWords:
    """Set the person's words on one part of a song: ``part`` "verse" or "chorus"."""

    part: str
    text: str


ExactEdit = Transpose | SetTempo | ChangeMode | SetInstrument | SetTitle | RepeatPart | \
    ChangeLength | ReplaceBar
LyricOp = (WriteLyrics | SetLyrics | ReplaceLyricLine | RewriteLyricLines | ReplaceLyricWord
           | RemoveLyrics | AddVerse | SetPartWords)


@dataclass(frozen=True)
class AddChords:
    """Put chord symbols over the melody; ``replace`` re-harmonises a tune that has some."""

    replace: bool = False


@dataclass(frozen=True)
class SetChord:
    """Put chord ``name`` on bar ``bar`` (as the score numbers it: an upbeat is bar 0)."""

    bar: int
    name: str


@dataclass(frozen=True)
class SimplerChords:
    """Plain triads, one a bar."""


@dataclass(frozen=True)
class JazzierChords:
    """Sevenths and secondary dominants where the melody allows."""


@dataclass(frozen=True)
class RemoveChords:
    """Take the chord symbols (and so the backing) off the tune."""


@dataclass(frozen=True)
class SetAccompaniment:
    """The backing part's settings; None where the message says nothing. ``volume`` is
    "quieter", "louder" or a level; ``on`` False silences it; ``show`` puts its staff on the
    sheet (True) or takes it off (False)."""

    style: str | None = None
    instrument: str | None = None
    volume: str | int | None = None
    on: bool | None = None
    show: bool | None = None


HarmonyOp = AddChords | SetChord | SimplerChords | JazzierChords | RemoveChords | SetAccompaniment


@dataclass(frozen=True)
class Question:
    """A question about the tune (``kind``: key, meter, bars, ...) or, for ``kind="define"``,
    about a musical word (``subject``)."""

    kind: str
    subject: str | None = None


@dataclass(frozen=True)
class Request:
    """What one message asks for.

    ``edits`` are exact edits (in the order said); a creative edit may come with some.
    ``explanation`` is set when the message cannot be done as asked (an edit with no tune yet,
    an empty message) and says why, for the reply. ``abc`` is the pasted tune for
    ``abc_paste``. ``truncated`` is True when the message was longer than the text examined.
    """

    intent: str
    text: str = ""
    attributes: Attributes = field(default_factory=Attributes)
    edits: tuple[ExactEdit, ...] = ()
    creative: CreativeEdit | None = None
    lyric_ops: tuple[LyricOp, ...] = ()
    question: Question | None = None
    explanation: str | None = None
    abc: str | None = None
    truncated: bool = False
    mood_change: MoodChange | None = None
    harmony_ops: tuple[HarmonyOp, ...] = ()
