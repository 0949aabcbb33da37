"""Set the harmoniser's feature weights from tunes that carry a musician's chords.

The harmoniser (:mod:`agent.harmony`) scores a path of chords by adding weighted features:
how the melody of each slot sits against the chord, how usual the chord is in the key, where
in the 8-bar strain the bar falls, how the root moves at a change. The weights start from
hand-set values (:func:`agent.harmony.hand_weights`) and move toward the chords musicians
wrote, by one of two methods:

* ``perceptron`` (the default, what ``agent/harmony_weights.py`` holds): an averaged
  structured perceptron (Collins, EMNLP 2002): for each tune, the best path with the current
  weights against the best path that agrees with the musician; the harmoniser decodes with
  Viterbi.
* ``crf``: the scores read as a linear-chain conditional random field (Lafferty, McCallum &
  Pereira, ICML 2001); stochastic gradient ascent on the likelihood of the musician's chords,
  with an L2 pull back toward the hand-set weights; decode with
  ``HarmonyConfig(decoding="marginal")`` (per slot, the root likeliest over all paths).
  On two folds of the tuning half it came out behind the perceptron (74.7% against 75.2%
  root agreement, see docs/benchmarks.md).

A musician's chord outside the key's vocabulary leaves that slot free (its chord is summed
over, or chosen freely), and so does the last slot when the musician does not end on the
tonic (the harmoniser always does).

The tunes come from ABC files given on the command line (the Nottingham Music Database,
GPL-3, is kept outside the repository); only the tunes at even positions of each file are used
(``--abc-half even``), so the odd ones stay held out for ``finetune.harmony_eval``. Only the
learned numbers are written (``agent/harmony_weights.py``), never a tune.

Every choice of the model (the scorer's optional feature groups, epochs, rate) is made by
k-fold cross-validation inside the training half (``--cv K --variant GROUPS@EPOCHS@RATE``,
one line per variant: each fold's bar root agreement and the pooled one), never on the
held-out half; ``@SEED`` may be a bag (``0+1+2``: the weights of one run per seed averaged)
and be followed by training options (``@m0.5``: a loss-augmented perceptron, ``@bars``:
learn from the bar-start chords only). Training decodes with the lattices compiled to numpy
arrays (:class:`Compiled`), which gives the same weights as decoding with the scorer's
dictionaries.

Other chord-labelled collections can be added to the training side only (``--extra-abc
FILE``, repeatable; in cross-validation the variant option ``@extra`` or ``@extraWEIGHT``):
their tunes join every training fold and the final training and are never measured. A tune of
theirs is dropped when one of its titles (:func:`normal_title`) or its opening melody
(:func:`melody_intervals`, which a transposition does not change) matches a tune of the
``--abc`` files, either half, so the held-out half stays held out; so is a repeat within the
extra files and a tune with chords on fewer than half its bars.

Run: ``python -m finetune.harmony_train --abc-half even --abc jigs.abc --abc reelsa-c.abc ...
--out agent/harmony_weights.py`` (10 epochs, rate 0.01: 3 minutes on 2 busy cores, most of
it reading the tunes); ``... --cv 2 --variant none --variant context`` to compare variants.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from agent import harmony as H

DUPLICATE_NOTES = 24  # the opening notes compared when looking for the same tune elsewhere
DUPLICATE_LIKENESS = 0.8  # difflib ratio of those steps from which two tunes count as one
MIN_CHORD_SHARE = 0.5  # an extra tune is used when at least this share of its bars has a chord

HEADER = '''"""Learned weights of the harmoniser's chord scorer (see agent.harmony.hand_weights).

{source}
"""

WEIGHTS: dict[str, float] = {{
'''


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the weight training."""

    abc: tuple[str, ...] = field(default=(), metadata={"help": "ABC files with chords"})
    abc_half: str = field(default="even", metadata={
        "help": "which tunes of each file: 'even' or 'odd' positions, or 'all'"})
    method: str = field(default="perceptron", metadata={"help": "'perceptron' or 'crf'"})
    epochs: int = field(default=10, metadata={"help": "passes over the tunes"})
    rate: float = field(default=0.01, metadata={
        "help": "step size (perceptron: each update; CRF: the first epoch's, falling as "
                "1/epoch; 0.1 suits it)"})
    l2: float = field(default=0.01, metadata={
        "help": "CRF: pull of each weight back toward its hand-set value"})
    seed: int = field(default=0, metadata={"help": "seed of the tune order"})
    bag: tuple[int, ...] = field(default=(), metadata={
        "help": "perceptron: train once per seed named here and average the weights "
                "(empty: one model, with ``seed``)"})
    margin: float = field(default=0.0, metadata={
        "help": "perceptron: added, while training, to every bar-start chord whose root is "
                "not the musician's (loss-augmented decoding; 0: plain perceptron)"})
    bar_starts_only: bool = field(default=False, metadata={
        "help": "perceptron: learn only from the musicians' chords at bar starts (what the "
                "benchmark compares); mid-bar slots are left free"})
    features: tuple[str, ...] | None = field(default=None, metadata={
        "help": "optional feature groups of the scorer (agent.harmony.FEATURE_GROUPS_ALL); "
                "None: the ones the harmoniser uses (agent.harmony.FEATURE_GROUPS)"})
    extra_abc: tuple[str, ...] = field(default=(), metadata={
        "help": "more ABC files with chords, used for training only: all their tunes that "
                "are new (no title or opening melody of a tune in ``abc``, either half) join "
                "every training fold and the final training, never a measured fold"})
    extra_weight: float = field(default=1.0, metadata={
        "help": "perceptron: the step size of an update from an extra tune, as a share of "
                "``rate`` (1: the extra tunes count as much as the main ones)"})


def gold_states(lattice: "H._Lattice", bars: list[H.BarChords], bar_starts_only: bool = False
                ) -> list[frozenset[int] | None]:
    """Per slot, the vocabulary chords matching the musician's chord sounding at its onset
    (same root, same kind where the vocabulary has it); None where none matches.

    >>> abc = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A7"cea|"D"d3|]\\n'
    >>> m = H._read(H.strip_chords(abc))
    >>> lat = H._lattice(m.events, Fraction(3, 4), Fraction(1, 4), 1, m.pickups, m.keys)
    >>> [[lat.states[i][s][1] for s in sorted(g)] for i, g in enumerate(gold_states(lat, H.chords_in(abc)))]
    [['major:0M'], ['major:3M'], ['major:47'], ['major:0M']]
    """
    out = []
    for (bar, onset), states in zip(lattice.plan, lattice.states):
        if bar_starts_only and onset:
            out.append(None)
            continue
        name = None
        for index in range(bar, -1, -1):
            found = [n for at, n in bars[index].chords if index < bar or at <= onset]
            if found:
                name = found[-1]
                break
        if name is None:
            out.append(None)
            continue
        chord = H.parse_chord(name)
        kind = chord.kind if chord.kind == "dominant seventh" else H.TRIAD_OF[chord.kind]
        same_root = [i for i, (c, _) in enumerate(states) if c.root == chord.root]
        exact = [i for i in same_root if states[i][0].kind == kind]
        if not exact and kind == "dominant seventh":
            exact = [i for i in same_root if states[i][0].kind == "major"]
        out.append(frozenset(exact or same_root) or None)
    if out and out[-1] is not None and 0 not in out[-1]:
        out[-1] = None  # the harmoniser ends on the tonic whatever the musician wrote
    return out


def bar_roots(lattice: "H._Lattice", bars: list[H.BarChords]) -> list[int | None]:
    """Per slot, the root of the musician's chord sounding at the start of the slot's bar
    when the slot opens the bar (what the benchmark compares), else None.

    >>> abc = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|GBd|"A7"cea|"D"d3|]\\n'
    >>> m = H._read(H.strip_chords(abc))
    >>> lat = H._lattice(m.events, Fraction(3, 4), Fraction(1, 4), 1, m.pickups, m.keys)
    >>> bar_roots(lat, H.chords_in(abc))
    [2, 2, 9, 2]
    """
    sounding = H.chord_in_force(bars)
    return [H.parse_chord(sounding[bar]).root if onset == 0 and sounding[bar] else None
            for bar, onset in lattice.plan]


def tune_problems(config: TrainConfig) -> list[tuple[H._Lattice, list, list]]:
    """(lattice, gold states, the musician's root at each bar start) of every usable tune
    of the chosen half."""
    from agent.abc_text import split_tunebook

    problems = []
    for path in config.abc:
        text = Path(path).read_text(encoding="latin-1")
        for position, abc in enumerate(split_tunebook(text)):
            if config.abc_half != "all" and (position % 2 == 1) != (config.abc_half == "odd"):
                continue
            problem = tune_problem(abc, config.features)
            if problem is not None:
                problems.append(problem)
    return problems


def tune_problem(abc: str, features: tuple[str, ...] | None = None
                 ) -> tuple[H._Lattice, list, list] | None:
    """(lattice, gold states, the musician's root at each bar start) of one tune, or None
    when the harmoniser refuses it (such a tune teaches nothing).

    >>> waltz = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A7"cea|"D"d3|]\\n'
    >>> lattice, gold, roots = tune_problem(waltz)
    >>> roots
    [2, 7, 9, 2]
    >>> tune_problem('X:1\\nK:D\\n') is None
    True
    """
    try:
        theirs = H.chords_in(abc)
        melody = H._read(H.strip_chords(abc))
        tonic, mode = H._check_harmonisable(melody)
        style = H._style_name(melody.tune, H.HarmonyConfig())
        meter = melody.tune.meter
        lattice = H._lattice(melody.events, meter.bar_length, meter.beat_length,
                             H.slots_per_bar(style, str(meter)), melody.pickups,
                             H._usable_keys(melody.keys, (tonic, mode)),
                             groups=None if features is None else frozenset(features),
                             ends=H.section_ends(melody.bars))
    except H.TunesmithError:
        return None
    return lattice, gold_states(lattice, theirs), bar_roots(lattice, theirs)


def normal_title(title: str) -> str:
    """A tune title reduced for comparison across collections: lower case, no accents, no
    leading dance-type label ("AIR:"), no article, letters and digits only.

    >>> normal_title("AIR: Inis Oírr"), normal_title("Rakes of Kildare, The")
    ('inisoirr', 'rakesofkildare')
    >>> normal_title("The Rakes Of Kildare") == normal_title("Rakes of Kildare, The")
    True
    >>> normal_title("")
    ''
    """
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"^[a-z ]{2,12}:\s*", "", text.strip())
    text = re.sub(r"(^the\s+)|(,\s*the$)", "", text.strip())
    return re.sub(r"[^a-z0-9]", "", text)


def melody_intervals(abc: str, notes: int = DUPLICATE_NOTES) -> tuple[int, ...]:
    """The steps in semitones between the first ``notes`` notes of a tune's melody (the top
    note of a chord), which do not change when the tune is transposed.

    >>> melody_intervals('X:1\\nL:1/8\\nK:G\\n"G"GAB d2|"D"c3|]\\n')
    (2, 2, 3, -2)
    >>> melody_intervals('X:1\\nL:1/8\\nK:D\\n"D"ABc e2|"A"d3|]\\n')
    (2, 2, 3, -2)
    >>> melody_intervals("X:1\\nK:G\\n")
    ()
    """
    try:
        melody = H._read(H.strip_chords(abc))
    except H.TunesmithError:
        return ()
    pitches = [max(e.pitches) for bar in melody.events for e in bar if e.pitches][:notes]
    return tuple(b - a for a, b in zip(pitches, pitches[1:]))


def _titles(abc: str) -> set[str]:
    titles = {normal_title(line[2:]) for line in abc.splitlines() if line.startswith("T:")}
    return titles - {""}


def duplicate_of(abc: str, titles: set[str], melodies: list[tuple[int, ...]],
                 likeness: float = DUPLICATE_LIKENESS) -> str | None:
    """Why ``abc`` counts as a tune already among the reference tunes (``titles``: their
    :func:`normal_title` values; ``melodies``: their :func:`melody_intervals`): "title" when
    one of its titles is theirs, "melody" when its opening steps match one of theirs at
    least ``likeness`` (difflib's ratio, so an ornament or a varied note still matches);
    None when it is new.

    >>> ref = 'X:1\\nT:Speed the Plough\\nL:1/8\\nK:G\\nGABc dedB|dedB dedB|c2ec B2dB|]\\n'
    >>> titles, melodies = _titles(ref), [melody_intervals(ref)]
    >>> duplicate_of(ref.replace("Speed the Plough", "Plough, The"), titles, melodies)
    'melody'
    >>> duplicate_of('X:1\\nT:Speed The Plough\\nL:1/8\\nK:D\\nD4|]\\n', titles, melodies)
    'title'
    >>> duplicate_of('X:1\\nT:Other\\nL:1/8\\nK:G\\nGFED CB,A,G,|G,A,B,C DEFG|]\\n',
    ...              titles, melodies) is None
    True
    """
    from difflib import SequenceMatcher

    if _titles(abc) & titles:
        return "title"
    mine = melody_intervals(abc)
    if len(mine) < 8:
        return None
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(mine)
    for theirs in melodies:
        if len(theirs) < 8:
            continue
        matcher.set_seq1(theirs)
        if matcher.real_quick_ratio() >= likeness and matcher.quick_ratio() >= likeness \
                and matcher.ratio() >= likeness:
            return "melody"
    return None


def chord_share(abc: str) -> float:
    """The share of a tune's bars that carry a chord symbol (0 for a tune that cannot be read).

    >>> chord_share('X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|GBd|"A7"cea|"D"d3|]\\n')
    0.75
    >>> chord_share("X:1\\nK:D\\n")
    0.0
    """
    try:
        bars = H.chords_in(abc)
    except H.TunesmithError:
        return 0.0
    return sum(bool(bar.chords) for bar in bars) / len(bars) if bars else 0.0


def extra_problems(config: TrainConfig) -> tuple[list, dict[str, int]]:
    """The problems of the tunes in ``config.extra_abc`` that are new: a tune whose title or
    opening melody matches any tune of ``config.abc`` (both halves, so the held-out one stays
    held out) or an extra tune kept before it is dropped. Also the counts: tunes read,
    dropped as duplicates of the main collection (by title, by melody), dropped as repeats
    within the extra files, refused by the harmoniser, kept."""
    from agent.abc_text import split_tunebook

    titles: set[str] = set()
    melodies: list[tuple[int, ...]] = []
    for path in config.abc:
        for abc in split_tunebook(Path(path).read_text(encoding="latin-1")):
            titles |= _titles(abc)
            melodies.append(melody_intervals(abc))
    counts = dict.fromkeys(("read", "title", "melody", "repeat", "no chords", "refused",
                            "kept"), 0)
    kept_titles: set[str] = set()
    kept_melodies: list[tuple[int, ...]] = []
    problems = []
    for path in config.extra_abc:
        for abc in split_tunebook(Path(path).read_text(encoding="utf-8", errors="replace")):
            counts["read"] += 1
            reason = duplicate_of(abc, titles, melodies)
            if reason is not None:
                counts[reason] += 1
                continue
            if duplicate_of(abc, kept_titles, kept_melodies) is not None:
                counts["repeat"] += 1
                continue
            if chord_share(abc) < MIN_CHORD_SHARE:
                counts["no chords"] += 1
                continue
            problem = tune_problem(abc, config.features)
            if problem is None:
                counts["refused"] += 1
                continue
            counts["kept"] += 1
            kept_titles |= _titles(abc)
            kept_melodies.append(melody_intervals(abc))
            problems.append(problem)
    return problems, counts


def agreement(problems: list, weights: dict[str, float],
              compiled: tuple[list[Compiled], dict[str, int]] | None = None) -> tuple[int, int]:
    """(bars whose chord root agrees with the musician's, bars compared), Viterbi decoding,
    on the bar-start slots of ``problems``."""
    import numpy as np

    if compiled is not None:
        tables, index = compiled
        vector = np.zeros(len(index))
        for name, number in index.items():
            vector[number] = weights.get(name, 0.0)
    agree = total = 0
    for number, (lattice, _, roots) in enumerate(problems):
        path = (H._best_path(lattice, weights) if compiled is None
                else tables[number].best_path(vector))
        for states, state, root in zip(lattice.states, path, roots):
            if root is not None:
                total += 1
                agree += states[state][0].root == root
    return agree, total


def cross_validate(problems: list, config: TrainConfig, folds: int = 4,
                   progress: bool = False, compiled: tuple | None = None,
                   groups: frozenset[str] | None = None,
                   measured: int | None = None) -> list[tuple[int, int]]:
    """Train on all folds but one and measure bar root agreement on that one, for each fold
    (fold ``k`` holds the tunes at positions ``k`` mod ``folds`` of the first ``measured``
    problems; the problems after them, extra tunes, join every training fold and are never
    measured; None: all are measured).
    ``groups``: the optional feature groups the variant uses, when the lattices were built
    with more (the others are masked out)."""
    if compiled is None:
        index = {name: number for number, name in enumerate(H.hand_weights())}
        tables = compile_problems(problems, index)
    else:
        tables, index = compiled
    mask = None if groups is None else group_mask(index, groups)
    measured = len(problems) if measured is None else measured
    out = []
    for fold in range(folds):
        inside = [i for i in range(len(problems)) if i >= measured or i % folds != fold]
        held = [i for i in range(measured) if i % folds == fold]
        if config.method == "crf":
            learned = train_crf([problems[i] for i in inside], config, progress=progress)
        else:
            learned = train_bagged([problems[i] for i in inside], config, progress=progress,
                                   compiled=([tables[i] for i in inside], index), mask=mask,
                                   scales=[config.extra_weight if i >= measured else 1.0
                                           for i in inside])
        weights = {**H.hand_weights(), **learned}
        out.append(agreement([problems[i] for i in held], weights,
                             ([tables[i] for i in held], index)))
    return out


def viterbi(rows: list, moves: list) -> list[int]:
    """The best path of a chain: ``rows[p]`` the scores of slot ``p``'s states (numpy arrays),
    ``moves[p]`` (from 1) the scores of each move from slot ``p - 1``'s states into ``p``'s.

    >>> import numpy as np
    >>> viterbi([np.array([1.0, 0.0]), np.array([0.0, 2.0])], [None, np.array([[0.0, -5.0], [0.0, 0.0]])])
    [1, 1]
    """
    import numpy as np

    best, back = rows[0], []
    for p in range(1, len(rows)):
        scores = best[:, None] + moves[p]
        choice = scores.argmax(axis=0)
        best = scores[choice, np.arange(scores.shape[1])] + rows[p]
        back.append(choice)
    state = int(best.argmax())
    path = [state]
    for choice in reversed(back):
        state = int(choice[state])
        path.append(state)
    return path[::-1]


class Compiled:
    """One lattice's features as index arrays (feature numbers from a shared ``index``), so
    that every (slot, chord) and every change is scored at once with numpy: training decodes
    each tune twice an epoch, and the scorer's dictionaries were 20 times slower."""

    def __init__(self, lattice: "H._Lattice", index: dict[str, int]) -> None:
        import numpy as np

        self.sizes = [len(states) for states in lattice.states]
        self.offsets = [0]
        for size in self.sizes:
            self.offsets.append(self.offsets[-1] + size)
        self.emit = self._pack([f for rows in lattice.emissions for f in rows], index)
        self.tables: list[tuple] = []        # distinct change tables: (rows, cols, packed)
        self.table_of: list[int] = [-1]      # per slot, its table's number
        seen: dict[int, int] = {}
        for position in range(1, len(lattice.plan)):
            table = lattice.change_table(position)
            if id(table) not in seen:
                seen[id(table)] = len(self.tables)
                cells = [features for row in table for features in row]
                self.tables.append((len(table), len(table[0]), self._pack(cells, index)))
            self.table_of.append(seen[id(table)])
        self.triples: list[tuple] = []       # distinct second-order tables: (a, b, c, packed)
        self.triple_of: list[int] = [-1, -1]  # per slot, its second-order table's number
        if lattice.second_order:
            seen = {}
            for position in range(2, len(lattice.plan)):
                table = lattice.triple_table(position)
                if id(table) not in seen:
                    seen[id(table)] = len(self.triples)
                    cells = [f for plane in table for row in plane for f in row]
                    self.triples.append((len(table), len(table[0]), len(table[0][0]),
                                         self._pack(cells, index)))
                self.triple_of.append(seen[id(table)])
        self._np = np

    @staticmethod
    def _pack(cells: list[dict[str, float]], index: dict[str, int]) -> tuple:
        import numpy as np

        idx, val, row, starts = [], [], [], [0]
        for number, features in enumerate(cells):
            for name, value in features.items():
                idx.append(index.setdefault(name, len(index)))
                val.append(value)
                row.append(number)
            starts.append(len(idx))
        return (np.array(idx, dtype=np.int64), np.array(val, dtype=float),
                np.array(row, dtype=np.int64), starts, len(cells))

    def _score(self, packed: tuple, w) -> "object":
        idx, val, row, _, cells = packed
        return self._np.bincount(row, weights=w[idx] * val, minlength=cells) if len(idx) \
            else self._np.zeros(cells)

    def best_path(self, w, fixed: list | None = None, bonus: list | None = None) -> list[int]:
        """As :func:`agent.harmony._best_path`, with the weights as a vector; ``bonus``: per
        slot, None or an array added to its chords' scores (loss-augmented training)."""
        np = self._np
        emit = self._score(self.emit, w)
        moves = [self._score(packed, w).reshape(a, b) for a, b, packed in self.tables]
        last = len(self.sizes) - 1
        rows = []
        for position in range(last + 1):
            row = emit[self.offsets[position]:self.offsets[position + 1]].copy()
            if position == last:
                row[1:] = -np.inf
            if fixed is not None and fixed[position] is not None:
                keep = row[list(fixed[position])]
                row[:] = -np.inf
                row[list(fixed[position])] = keep
            if bonus is not None and bonus[position] is not None:
                row += bonus[position]
            rows.append(row)
        if self.triples:
            cubes = [self._score(packed, w).reshape(a, b, c) for a, b, c, packed in self.triples]
            return H.pair_viterbi(rows, [None] + [moves[t] for t in self.table_of[1:]],
                                  [None, None] + [cubes[t] for t in self.triple_of[2:]])
        return viterbi(rows, [None] + [moves[t] for t in self.table_of[1:]])

    def path_entries(self, path: list[int]) -> tuple:
        """(feature numbers, values) of the features along a path."""
        np = self._np
        idx, val, _, starts, _ = self.emit
        parts_i, parts_v = [], []
        for position, state in enumerate(path):
            cell = self.offsets[position] + state
            parts_i.append(idx[starts[cell]:starts[cell + 1]])
            parts_v.append(val[starts[cell]:starts[cell + 1]])
            if position:
                _, cols, (t_idx, t_val, _, t_starts, _) = self.tables[self.table_of[position]]
                cell = path[position - 1] * cols + state
                parts_i.append(t_idx[t_starts[cell]:t_starts[cell + 1]])
                parts_v.append(t_val[t_starts[cell]:t_starts[cell + 1]])
            if position > 1 and self.triples:
                _, b, c, (t_idx, t_val, _, t_starts, _) = self.triples[self.triple_of[position]]
                cell = (path[position - 2] * b + path[position - 1]) * c + state
                parts_i.append(t_idx[t_starts[cell]:t_starts[cell + 1]])
                parts_v.append(t_val[t_starts[cell]:t_starts[cell + 1]])
        return np.concatenate(parts_i), np.concatenate(parts_v)


#: The name prefixes of each optional feature group's features (agent.harmony
#: FEATURE_GROUPS_ALL), so one set of lattices built with every group serves each
#: cross-validated variant: a group left out keeps its features at weight 0 (as if absent).
GROUP_PREFIXES = {"meter": ("meter",), "context": ("nextdeg", "prevdeg"), "last": ("lastdeg",),
                  "stay": ("stay",), "mid": ("mid:",), "strain": ("strain", "penult"),
                  "beats": ("beat",), "second": ("tri:",), "motion2": ("m2:",),
                  "bar": ("bdeg", "barct"), "cadence": ("endbar:", "end:", "preend:"),
                  "ahead": ("next2deg", "prev2deg")}


def group_mask(index: dict[str, int], groups: frozenset[str]) -> "object":
    """1 for each numbered feature the variant may move, 0 for those of groups left out.

    >>> group_mask({"ct": 0, "meter3/4:major:0M": 1, "mid_change": 2, "mid:major:0M": 3},
    ...            frozenset({"meter"})).tolist()
    [1.0, 1.0, 1.0, 0.0]
    """
    import numpy as np

    out = np.ones(len(index))
    for group, prefixes in GROUP_PREFIXES.items():
        if group not in groups:
            for name, number in index.items():
                if name.startswith(prefixes):
                    out[number] = 0.0
    return out


def compile_problems(problems: list, index: dict[str, int]) -> list[Compiled]:
    """Each problem's lattice compiled against one feature numbering (extended in place)."""
    return [Compiled(problem[0], index) for problem in problems]


def train(problems: list, config: TrainConfig, progress: bool = True,
          compiled: tuple[list[Compiled], dict[str, int]] | None = None,
          mask: "object | None" = None, scales: list[float] | None = None) -> dict[str, float]:
    """Averaged perceptron from the hand-set weights; returns the averaged weights (those
    that moved). ``compiled``: the problems already compiled, with their numbering;
    ``mask``: per feature number, 0 to keep that feature out (see :func:`group_mask`);
    ``scales``: per problem, a factor on the step size of its updates (None: all 1).

    The average over every step is kept lazily (Daume's trick): an update ``d`` at step
    ``s`` of ``T`` counts in ``T - s + 1`` of the ``T`` weight vectors averaged.
    """
    import numpy as np

    start = H.hand_weights()
    if compiled is None:
        index = {name: number for number, name in enumerate(start)}
        tables = compile_problems(problems, index)
    else:
        tables, index = compiled
        for name in start:
            index.setdefault(name, len(index))
    names = sorted(index, key=index.get)
    weights = np.array([start.get(name, 0.0) for name in names])
    first = weights.copy()
    late = np.zeros_like(weights)
    order = list(range(len(problems)))
    rng = random.Random(config.seed)
    steps = 0
    golds = [_training_gold(problem, config.bar_starts_only) for problem in problems]
    bonuses = [_margins(problem, config.margin) for problem in problems]
    for epoch in range(config.epochs):
        rng.shuffle(order)
        wrong = 0
        for number in order:
            steps += 1
            table, gold = tables[number], golds[number]
            predicted = table.best_path(weights, bonus=bonuses[number])
            target = table.best_path(weights, gold)
            if predicted != target:
                wrong += sum(a != b for a, b in zip(predicted, target))
                step = np.zeros_like(weights)
                good, good_values = table.path_entries(target)
                bad, bad_values = table.path_entries(predicted)
                rate = config.rate * (1.0 if scales is None else scales[number])
                np.add.at(step, good, rate * good_values)
                np.add.at(step, bad, -rate * bad_values)
                if mask is not None:
                    step *= mask[:len(step)]
                weights += step
                late += (steps - 1) * step
        if progress:
            print(f"epoch {epoch + 1}: {wrong} slots off", file=sys.stderr)
    averaged = weights - late / max(steps, 1)
    return {name: float(value) for name, value, before in zip(names, averaged, first)
            if abs(value - before) >= 5e-4}


def _training_gold(problem: tuple, bar_starts_only: bool) -> list:
    """The problem's gold states, the mid-bar ones left free when ``bar_starts_only``."""
    lattice, gold = problem[:2]
    if not bar_starts_only:
        return gold
    return [None if onset else allowed for (_, onset), allowed in zip(lattice.plan, gold)]


def _margins(problem: tuple, margin: float) -> list | None:
    """Per slot, ``margin`` on each chord whose root is not the musician's at a bar start
    (None where the slot is not compared), or None for no margin.

    >>> abc = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A7"cea|"D"d3|]\\n'
    >>> m = H._read(H.strip_chords(abc))
    >>> lat = H._lattice(m.events, Fraction(3, 4), Fraction(1, 4), 1, m.pickups, m.keys)
    >>> cost = _margins((lat, None, bar_roots(lat, H.chords_in(abc))), 0.5)
    >>> [float(cost[1][i]) for i, (c, _) in enumerate(lat.states[1]) if c.name in ("G", "A")]
    [0.0, 0.5]
    >>> _margins((lat, None, [None] * 4), 0.0) is None
    True
    """
    import numpy as np

    if not margin:
        return None
    lattice, _, roots = problem[:3]
    return [None if root is None else
            np.array([0.0 if chord.root == root else margin for chord, _ in states])
            for states, root in zip(lattice.states, roots)]


def train_bagged(problems: list, config: TrainConfig, progress: bool = True,
                 compiled: tuple[list[Compiled], dict[str, int]] | None = None,
                 mask: "object | None" = None, scales: list[float] | None = None
                 ) -> dict[str, float]:
    """:func:`train` once per seed of ``config.bag`` (the tunes visited in another order
    each time), the learned weights averaged; with no bag, :func:`train` with
    ``config.seed``."""
    from dataclasses import replace

    if not config.bag:
        return train(problems, config, progress, compiled, mask, scales)
    start = H.hand_weights()
    runs = [train(problems, replace(config, seed=seed), progress, compiled, mask, scales)
            for seed in config.bag]
    names = set().union(*runs)
    return {name: sum(run.get(name, start.get(name, 0.0)) for run in runs) / len(runs)
            for name in sorted(names)}


def expected_features(lattice: "H._Lattice", weights: dict[str, float],
                      fixed: list | None = None) -> tuple[dict[str, float], float]:
    """The features' expected counts under the chain's distribution (restricted to
    ``fixed``), and its log normaliser."""
    import math

    probs, total, (alpha, beta, emit, moves) = H._marginals(lattice, weights, 1.0, fixed)
    out: dict[str, float] = {}

    def add(features: dict[str, float], p: float) -> None:
        for name, value in features.items():
            out[name] = out.get(name, 0.0) + p * value

    for position, row in enumerate(probs):
        for state, p in enumerate(row):
            if p > 1e-9:
                add(lattice.emissions[position][state], p)
        if position:
            table = lattice.change_table(position)
            for q, a in enumerate(alpha[position - 1]):
                if a == -math.inf:
                    continue
                for state, features in enumerate(table[q]):
                    if not features:
                        continue
                    log_p = (a + moves[position][q][state] + emit[position][state]
                             + beta[position][state] - total)
                    if log_p > -20:
                        add(features, math.exp(log_p))
    return out, total


def train_crf(problems: list, config: TrainConfig, progress: bool = True) -> dict[str, float]:
    """A linear-chain CRF (the same features) by stochastic gradient ascent on the
    likelihood of the musician's chords (slots without one left free), from the hand-set
    weights and pulled toward them (L2)."""
    weights = H.hand_weights()
    start = dict(weights)
    order = list(range(len(problems)))
    rng = random.Random(config.seed)
    for epoch in range(config.epochs):
        rng.shuffle(order)
        rate = config.rate / (1 + epoch)
        loss = 0.0
        for index in order:
            lattice, gold = problems[index][:2]
            model, log_z = expected_features(lattice, weights)
            target, log_gold = expected_features(lattice, weights, gold)
            if log_gold == -math.inf:
                continue
            loss += log_z - log_gold
            for name in set(model) | set(target):
                grad = target.get(name, 0.0) - model.get(name, 0.0)
                grad -= config.l2 * (weights.get(name, 0.0) - start.get(name, 0.0))
                weights[name] = weights.get(name, 0.0) + rate * grad
        if progress:
            print(f"epoch {epoch + 1}: loss {loss:.0f}", file=sys.stderr)
    return {name: value for name, value in weights.items()
            if abs(value - start.get(name, 0.0)) >= 5e-4}


def write_weights(weights: dict[str, float], path: Path, source: str) -> None:
    """Write the learned weights as a Python module (numbers only, no tune)."""
    import textwrap

    text = (f"Written by ``python -m finetune.harmony_train`` ({source}); features not listed "
            "keep their hand-set values. Numbers only: no tune of the collection (the "
            "Nottingham Music Database's cleaned ABC files, GPL-3, kept outside the repository) "
            "is stored here.")
    lines = [HEADER.format(source=textwrap.fill(text, 95))]
    lines += [f"    {name!r}: {value:.3f},\n" for name, value in sorted(weights.items())]
    lines.append("}\n")
    path.write_text("".join(lines))


def _cv_variants(config: TrainConfig, folds: int, variants: list[str]) -> int:
    """Cross-validate each variant on one set of lattices; one line per variant."""
    from dataclasses import replace

    parsed = []
    for text in variants:
        parts = text.split("@")
        groups = frozenset(g for g in parts[0].split(",") if g and g != "none")
        epochs = int(parts[1]) if len(parts) > 1 else config.epochs
        rate = float(parts[2]) if len(parts) > 2 else config.rate
        seeds = tuple(int(n) for n in parts[3].split("+")) if len(parts) > 3 else (config.seed,)
        extra = {}
        for part in parts[4:]:
            if part == "bars":
                extra["bar_starts_only"] = True
            elif part.startswith("extra"):
                if not config.extra_abc:
                    raise ValueError("the variant option extra needs --extra-abc FILE")
                extra["extra_abc"] = config.extra_abc
                extra["extra_weight"] = float(part[5:] or 1.0)
            elif part.startswith("m"):
                extra["margin"] = float(part[1:])
            else:
                raise ValueError(f"unknown variant option {part!r} (mMARGIN, bars or "
                                 "extra[WEIGHT])")
        parsed.append((text, groups, epochs, rate, seeds, extra))
    union = frozenset().union(*(groups for _, groups, *_ in parsed))
    problems = tune_problems(replace(config, features=tuple(sorted(union))))
    measured = len(problems)
    if any("extra_abc" in extra for *_, extra in parsed):
        extras, counts = extra_problems(replace(config, features=tuple(sorted(union))))
        problems = problems + extras
        print("extra tunes: " + ", ".join(f"{n} {what}" for what, n in counts.items()),
              flush=True)
    index = {name: number for number, name in enumerate(H.hand_weights())}
    tables = compile_problems(problems, index)
    print(f"{measured} tunes, {folds} folds", flush=True)
    for text, groups, epochs, rate, seeds, extra in parsed:
        run = replace(config, epochs=epochs, rate=rate, seed=seeds[0],
                      bag=seeds if len(seeds) > 1 else (), **{"extra_abc": (), **extra})
        used = len(problems) if run.extra_abc else measured
        results = cross_validate(problems[:used], run, folds,
                                 compiled=(tables[:used], index), groups=groups,
                                 measured=measured)
        agree, bars = sum(a for a, _ in results), sum(b for _, b in results)
        shares = " / ".join(f"{a / b:.2%}" for a, b in results)
        print(f"| {text} | {shares} | {agree / bars:.2%} ({agree}/{bars}) |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fields = TrainConfig.__dataclass_fields__
    parser.add_argument("--abc", action="append", default=[], help=fields["abc"].metadata["help"])
    parser.add_argument("--extra-abc", action="append", default=[], metavar="FILE",
                        help=fields["extra_abc"].metadata["help"] + " (with --cv and "
                        "--variant: only the variants with the option @extra use them)")
    parser.add_argument("--extra-weight", type=float, default=TrainConfig.extra_weight,
                        help=fields["extra_weight"].metadata["help"])
    parser.add_argument("--abc-half", choices=("all", "odd", "even"), default="even",
                        help=fields["abc_half"].metadata["help"])
    parser.add_argument("--method", choices=("crf", "perceptron"), default=TrainConfig.method,
                        help=fields["method"].metadata["help"])
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs,
                        help=fields["epochs"].metadata["help"])
    parser.add_argument("--rate", type=float, default=TrainConfig.rate,
                        help=fields["rate"].metadata["help"])
    parser.add_argument("--seed", type=int, default=TrainConfig.seed,
                        help=fields["seed"].metadata["help"])
    parser.add_argument("--bag", default="", metavar="SEEDS",
                        help=fields["bag"].metadata["help"] + " (as 0+1+2)")
    parser.add_argument("--features", default=None,
                        help=fields["features"].metadata["help"] + " (comma-separated; "
                        "'none' for the base set)")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="cross-validate in K folds of the chosen tunes and print the "
                             "bar root agreement of each fold instead of writing weights")
    parser.add_argument("--variant", action="append", default=[],
                        help="with --cv: a variant to cross-validate, as "
                             "GROUPS[@EPOCHS[@RATE[@SEED[@OPTION...]]]] (SEED may be a "
                             "bag, 0+1+2: the weights of one run per seed averaged; "
                             "OPTION mMARGIN for a training margin, bars for bar-start "
                             "chords only, extra[WEIGHT] to train with the --extra-abc tunes too, "
                             "their updates scaled by WEIGHT, 1 if not given) "
                             "(GROUPS comma-separated or 'none'); several allowed, one line "
                             "each (the lattices are built once with every group named)")
    parser.add_argument("--out", type=Path, default=Path(H.__file__).with_name("harmony_weights.py"))
    args = parser.parse_args(argv)
    features = None if args.features is None else tuple(
        g for g in args.features.split(",") if g and g != "none")
    config = TrainConfig(tuple(args.abc), args.abc_half, args.method, args.epochs, args.rate,
                         seed=args.seed, features=features,
                         bag=tuple(int(n) for n in args.bag.split("+") if n),
                         extra_abc=tuple(args.extra_abc), extra_weight=args.extra_weight)
    if args.cv and args.variant:
        return _cv_variants(config, args.cv, args.variant)
    groups = H.FEATURE_GROUPS if features is None else frozenset(features)
    problems = tune_problems(config)
    measured = len(problems)
    if config.extra_abc:
        extras, counts = extra_problems(config)
        problems = problems + extras
        print("extra tunes: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    if args.cv:
        folds = cross_validate(problems, config, args.cv, measured=measured)
        agree, bars = sum(a for a, _ in folds), sum(b for _, b in folds)
        shares = " / ".join(f"{a / b:.2%}" for a, b in folds)
        print(f"{config.method} features={','.join(features or ()) if features is not None else 'default'} "
              f"epochs={config.epochs} rate={config.rate}: folds {shares}; pooled "
              f"{agree / bars:.2%} ({agree}/{bars} bars, {measured} tunes)")
        return 0
    if config.method == "crf":
        weights = train_crf(problems, config)
    else:
        weights = train_bagged(problems, config, scales=[
            1.0 if i < measured else config.extra_weight for i in range(len(problems))])
    files = ", ".join(Path(p).name for p in config.abc)
    extra_files = ", ".join(Path(p).name for p in config.extra_abc)
    more = f" and {len(problems) - measured} new tunes of {extra_files}" if extra_files else ""
    write_weights(weights, args.out, f"{config.method}, {len(problems)} tunes: the "
                  f"{config.abc_half} half of {files}{more}; {config.epochs} epochs, rate "
                  f"{config.rate}; feature groups: {', '.join(sorted(groups)) or 'none'}"
                  + (f"; averaged over seeds {', '.join(map(str, config.bag))}" if config.bag
                     else ""))
    print(f"{len(weights)} weights from {len(problems)} tunes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
