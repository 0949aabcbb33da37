"""Song-form requests through the chat, measured: "a song with two verses and a chorus about …".

Each prompt is one turn from an empty session with the real model (the shipped adapter by
default). A row says whether the score is valid, whether its verse and chorus are marked as
parts, whether it holds two different verses and one chorus sung twice, whether every ``w:``
line fits its notes (:func:`agent.lyrics.syllable_fit`), and how the words sing
(:func:`agent.prosody.stress_alignment`: stress on strong beats, syllables on notes too short to
sing, the melody's range). Kept small on purpose: a song costs a compose and three parts'
lyrics: 3 to 10 minutes a song on two busy CPU cores.

Usage: ``nice -n 5 .venv/bin/python -m finetune.song_form_eval --limit 3 --out DIR``
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agent import session as sessions
from agent import song_form
from agent.conversation import AgentConfig, Composer, take_turn
from agent.lyrics import syllable_fit
from agent.prosody import stress_alignment
from agent.session import Session
from agent.validate import validate_abc

#: The prompts, in the words a person would use.
PROMPTS = (
    "write a song with two verses and a chorus about the sea",
    "a song about going home with two verses and a chorus",
    "write a slow song in G with two verses and a chorus about the winter night",
    "a lullaby with two verses and a chorus about the moon",
    "write a song with a verse and a chorus about the river",
)


@dataclass(frozen=True)
class SongRow:
    """One prompt's outcome (see the module's description)."""

    prompt: str
    valid: bool
    parts: bool
    verses: int
    verses_differ: bool
    chorus_repeats: bool
    words_fit: float | None
    stress: float | None
    short: float | None
    range_semitones: int | None
    seconds: float
    reply: str
    abc: str


def measure(prompt: str, composer: Composer, config: AgentConfig) -> SongRow:
    """One song-form request from an empty session, measured."""
    started = time.perf_counter()
    turn = take_turn(Session(), prompt, composer, config)
    seconds = time.perf_counter() - started
    abc = sessions.current_abc(turn.session) or ""
    names = [p.name for p in song_form.song_parts(abc)] if abc else []
    has_parts = names == ["verse", "chorus"]
    verses = song_form.part_words(abc, "verse") if has_parts else []
    chorus = song_form.part_words(abc, "chorus") if has_parts else []
    prosody = stress_alignment(abc) if abc else None
    return SongRow(
        prompt=prompt, valid=bool(abc) and validate_abc(abc).valid, parts=has_parts,
        verses=len(verses), verses_differ=len(set(verses)) == len(verses) > 0,
        chorus_repeats=len(chorus) == 1, words_fit=syllable_fit(abc).rate if abc else None,
        stress=prosody.stress_share if prosody else None,
        short=prosody.short_share if prosody else None,
        range_semitones=prosody.range_semitones if prosody else None,
        seconds=round(seconds, 1), reply=turn.reply, abc=abc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=3, help="how many prompts to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of each turn")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True, help="folder for rows.json and songs")
    args = parser.parse_args(argv)
    config = AgentConfig(seed=args.seed, threads=args.threads)
    composer = Composer(config)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for prompt in PROMPTS[:args.limit]:
        row = measure(prompt, composer, config)
        rows.append(asdict(row))
        shown = {k: v for k, v in asdict(row).items() if k not in ("reply", "abc")}
        print(json.dumps(shown), flush=True)
        (args.out / "rows.json").write_text(json.dumps(rows, indent=1))  # kept row by row


if __name__ == "__main__":
    main()
