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

Run: ``python -m finetune.harmony_train --abc-half even --abc jigs.abc --abc reelsa-c.abc ...
--out agent/harmony_weights.py`` (10 epochs, rate 0.01: 3 minutes on 2 busy cores).
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


def tune_problems(config: TrainConfig) -> list[tuple[H._Lattice, list]]:
    """(lattice, gold states) of every usable tune of the chosen half."""
    from agent.abc_text import split_tunebook

    problems = []
    for path in config.abc:
        text = Path(path).read_text(encoding="latin-1")
        for position, abc in enumerate(split_tunebook(text)):
            if config.abc_half != "all" and (position % 2 == 1) != (config.abc_half == "odd"):
                continue
            try:
                theirs = H.chords_in(abc)
                melody = H._read(H.strip_chords(abc))
                tonic, mode = H._check_harmonisable(melody)
                style = H._style_name(melody.tune, H.HarmonyConfig())
                meter = melody.tune.meter
                lattice = H._lattice(melody.events, meter.bar_length, meter.beat_length,
                                     H.slots_per_bar(style, str(meter)), melody.pickups,
                                     H._usable_keys(melody.keys, (tonic, mode)))
            except H.TunesmithError:  # a tune the harmoniser refuses teaches nothing
                continue
            problems.append((lattice, gold_states(lattice, theirs)))
    return problems


def train(problems: list, config: TrainConfig, progress: bool = True) -> dict[str, float]:
    """Averaged perceptron from the hand-set weights; returns the averaged weights."""
    weights = H.hand_weights()
    start = dict(weights)
    summed = {name: 0.0 for name in weights}
    steps = 0
    order = list(range(len(problems)))
    rng = random.Random(config.seed)
    for epoch in range(config.epochs):
        rng.shuffle(order)
        wrong = 0
        for index in order:
            lattice, gold = problems[index]
            predicted = H._best_path(lattice, weights)
            target = H._best_path(lattice, weights, gold)
            if predicted != target:
                wrong += sum(a != b for a, b in zip(predicted, target))
                good = H._path_features(lattice, target)
                bad = H._path_features(lattice, predicted)
                for name in set(good) | set(bad):
                    step = config.rate * (good.get(name, 0.0) - bad.get(name, 0.0))
                    if step:
                        weights[name] = weights.get(name, 0.0) + step
                        summed.setdefault(name, 0.0)
            steps += 1
            for name, value in weights.items():
                summed[name] = summed.get(name, 0.0) + value
        if progress:
            print(f"epoch {epoch + 1}: {wrong} slots off", file=sys.stderr)
    averaged = {name: total / steps for name, total in summed.items()}
    return {name: value for name, value in averaged.items()
            if abs(value - start.get(name, 0.0)) >= 5e-4}


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
            lattice, gold = problems[index]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fields = TrainConfig.__dataclass_fields__
    parser.add_argument("--abc", action="append", default=[], help=fields["abc"].metadata["help"])
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
    parser.add_argument("--out", type=Path, default=Path(H.__file__).with_name("harmony_weights.py"))
    args = parser.parse_args(argv)
    config = TrainConfig(tuple(args.abc), args.abc_half, args.method, args.epochs, args.rate,
                         seed=args.seed)
    problems = tune_problems(config)
    weights = (train_crf if config.method == "crf" else train)(problems, config)
    files = ", ".join(Path(p).name for p in config.abc)
    write_weights(weights, args.out, f"{config.method}, {len(problems)} tunes: the "
                  f"{config.abc_half} half of {files}; {config.epochs} epochs, rate "
                  f"{config.rate}")
    print(f"{len(weights)} weights from {len(problems)} tunes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
