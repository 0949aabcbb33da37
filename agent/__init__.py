"""The composer: one chat message in, a checked score and a reply out.

A turn (:mod:`agent.conversation`) reads the message (:mod:`agent.understand`, with the words of
:mod:`agent.vocabulary`, into the operations of :mod:`agent.ops`), then composes
(:mod:`agent.compose`: the model under the bar grammar of :mod:`agent.decoding`, its tokens chosen by
:mod:`agent.sampler`), edits (:mod:`agent.edits`), writes words (:mod:`agent.lyrics`,
:mod:`agent.lyric_fit`, :mod:`agent.theme`), answers (:mod:`agent.answer`) or moves through the
versions (:mod:`agent.session`); every new score is validated (:mod:`agent.validate`) and can be
rendered (:mod:`agent.render`). ABC notation itself is :mod:`agent.notation` (notes, lengths,
modes, ``%%MIDI``) and :mod:`agent.abc_text` (tunes, tokens, bars); music21 scores are read and
written by :mod:`agent.abc_reader` and :mod:`agent.abc_writer`. The package depends on neither
the app (:mod:`ui`) nor training (:mod:`finetune`); the command line (:mod:`tunesmith`) sits above
all three.
"""

__all__ = [
    "abc_lyrics", "abc_reader", "abc_text", "abc_writer", "accompaniment", "answer", "compose",
    "conversation", "decoding", "edits", "errors", "harmony", "lyric_fit", "lyrics", "model",
    "mood", "notation", "ops", "prompts", "prosody", "render", "sampler", "session", "singable",
    "step_decoder", "store", "styles", "syllables", "theme", "understand", "validate",
    "vocabulary",
]
