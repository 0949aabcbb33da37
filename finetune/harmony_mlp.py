"""A nonlinear chord scorer for the harmoniser, tried against the linear one.

The linear scorer (:mod:`agent.harmony`, weights from :mod:`finetune.harmony_train`) adds one
weight per feature; a feature such as "the slot dwells on degree 5" can only count for a chord
through a weight learnt for that very chord, and never together with another feature. Here a
small multilayer perceptron reads each (slot, chord) node of the lattice as one dense vector:
the node's existing features with the chord label taken off their names (``deg5:major:4M`` ->
``deg5``), the chord label, the meter and whether the slot starts inside the bar, one-hot; it
gives the node a score that is added to the linear scorer's (a residual, on top of the
perceptron weights learnt from the same tunes, which stay fixed, times a learnt scale). The
chord changes keep their linear scores. Decoding is the same Viterbi.

Two losses (the MLP's weights by Adam, one tune a step):

* ``crf``: the negative log-likelihood of the musician's chords under the chain (forward
  algorithm over every path against the paths through the musician's chords; a slot without
  a musician's chord in the vocabulary is free, the last slot is the tonic);
* ``hinge``: the structured hinge (the best path with 1 added to every chord off the
  musician's, against the best path through the musician's chords), the perceptron's
  loss with a margin.

Cross-validation: ``python -m finetune.harmony_mlp --abc-half even $ABC --cv 2 --seed 0
--variant context --variant mlp32-crf ...`` (the same folds as ``finetune.harmony_train``,
``context`` being the linear scorer alone). The variant chosen so, ``mlp32-crf@20`` (one hidden
layer of 32 units, CRF loss, 20 epochs), is trained on the whole even half by ``... --variant
mlp32-crf@20 --out agent/harmony_nodes_weights.py``, which writes only the learnt numbers
and the input features' names, no tune; the harmoniser reads it through
:mod:`agent.harmony_nodes`.
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent import harmony as H
from agent.harmony_nodes import base_name, mlp_scores, node_inputs
from finetune import harmony_train as T

@dataclass(frozen=True)
class MlpConfig:
    """Settings of the nonlinear node scorer and its training."""

    hidden: tuple[int, ...] = field(default=(32,), metadata={
        "help": "sizes of the hidden layers (tanh)"})
    loss: str = field(default="crf", metadata={"help": "'crf' or 'hinge'"})
    epochs: int = field(default=10, metadata={"help": "passes over the tunes"})
    rate: float = field(default=1e-3, metadata={"help": "Adam's step size"})
    decay: float = field(default=1e-4, metadata={"help": "Adam's weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of the tune order and the start"})
    stack: bool = field(default=False, metadata={
        "help": "train the MLP on linear scores each training tune gets from a perceptron "
                "trained on the other half of the training tunes (as a held-out tune gets "
                "them), not from the perceptron trained on it"})
    joint: bool = field(default=False, metadata={
        "help": "train the linear weights (from the perceptron's) together with the MLP"})
    linear_rate: float = field(default=1e-3, metadata={
        "help": "Adam's step size for the linear weights when ``joint``"})
    neighbours: bool = field(default=False, metadata={
        "help": "add the key degrees the previous and the next slot dwell on (weighted, "
                "and weighted by beat strength) to each node's input"})


def node_names(problems: list) -> tuple[list[str], list[str]]:
    """(the de-labelled feature names, the chord labels) seen in the problems' lattices.

    >>> abc = 'X:1\\nM:3/4\\nL:1/4\\nK:D\\n"D"DFA|"G"GBd|"A7"cea|"D"d3|]\\n'
    >>> names, labels = node_names([T.tune_problem(abc)])
    >>> "deg0" in names and "prior" in names and "ct" in names, labels[:2]
    (True, ['major:0M', 'major:1M'])
    """
    names = {f"{kind}{d}" for kind in ("deg", "sdeg") for d in range(12)}
    labels: set[str] = set()
    for lattice, *_ in problems:
        for states, rows in zip(lattice.states, lattice.emissions):
            for (_, label), features in zip(states, rows):
                labels.add(label)
                names.update(base_name(name, label) for name in features)
    return sorted(names), sorted(labels)


def _linear_tables(table: "T.Compiled", w) -> tuple[list, list]:
    """(per slot the linear emission scores, per slot from 1 the change scores) of a
    compiled lattice under weight vector ``w``."""
    emit = table._score(table.emit, w)
    moves = [table._score(packed, w).reshape(a, b) for a, b, packed in table.tables]
    rows = [emit[table.offsets[p]:table.offsets[p + 1]] for p in range(len(table.sizes))]
    return rows, [None] + [moves[t] for t in table.table_of[1:]]


class _Net:
    """The MLP and the scale of the linear scores, as torch modules (built lazily)."""

    def __init__(self, width: int, config: MlpConfig) -> None:
        import torch

        torch.manual_seed(config.seed)
        layers, size = [], width
        for hidden in config.hidden:
            layers += [torch.nn.Linear(size, hidden), torch.nn.Tanh()]
            size = hidden
        last = torch.nn.Linear(size, 1)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        self.mlp = torch.nn.Sequential(*layers, last).double()
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        self.torch = torch

    def parameters(self) -> list:
        return list(self.mlp.parameters()) + [self.scale]

    def arrays(self) -> dict[str, "object"]:
        out = {"scale": self.scale.detach().numpy().copy()}
        for n, layer in enumerate(m for m in self.mlp if hasattr(m, "weight")):
            out[f"w{n}"] = layer.weight.detach().numpy().copy()
            out[f"b{n}"] = layer.bias.detach().numpy().copy()
        return out


def _masks(gold: list, sizes: list[int]) -> list:
    """Per slot, the states allowed on the musician's paths (the last slot: the tonic)."""
    import numpy as np

    out = []
    for p, (allowed, size) in enumerate(zip(gold, sizes)):
        m = np.ones(size, dtype=bool) if allowed is None else np.isin(np.arange(size),
                                                                         list(allowed))
        out.append(m)
    return out


def train_mlp(items: list, width: int, config: MlpConfig, progress: bool = False,
              linear: tuple | None = None) -> dict:
    """Train the node MLP on ``items``: (inputs per slot, linear rows, linear moves, gold)
    per tune; returns its arrays (:func:`mlp_scores`) and the linear scale. ``linear``:
    with ``config.joint``, (each item's :class:`finetune.harmony_train.Compiled`, the
    starting weight vector): the linear weights are then trained too (returned as
    ``linear``), the scale held at 1."""
    import numpy as np
    import torch

    net = _Net(width, config)
    groups = [{"params": list(net.mlp.parameters())}]
    joint = config.joint and linear is not None
    if joint:
        net.scale.requires_grad_(False)
        w = torch.nn.Parameter(torch.from_numpy(np.array(linear[1], dtype=float)))
        groups.append({"params": [w], "lr": config.linear_rate, "weight_decay": 0.0})
        packed = [_torch_tables(table) for table in linear[0]]
    else:
        groups.append({"params": [net.scale]})
    optimiser = torch.optim.Adam(groups, lr=config.rate, weight_decay=config.decay)
    prepared = []
    for number, (x, rows, moves, gold) in enumerate(items):
        sizes = [len(r) for r in rows]
        last = len(rows) - 1
        free = [np.ones(s, dtype=bool) for s in sizes]
        free[last] = np.arange(sizes[last]) == 0
        masks = _masks(gold, sizes)
        masks[last] = masks[last] & free[last]
        if not masks[last].any():
            continue
        prepared.append((torch.from_numpy(np.concatenate(x)), np.cumsum([0] + sizes),
                         [torch.from_numpy(r) for r in rows],
                         [None] + [torch.from_numpy(m) for m in moves[1:]],
                         free, masks, gold, packed[number] if joint else None))
    order = list(range(len(prepared)))
    rng = random.Random(config.seed)
    for epoch in range(config.epochs):
        rng.shuffle(order)
        total = 0.0
        for number in order:
            x, offsets, rows, moves, free, masks, gold, table = prepared[number]
            if table is not None:
                rows, moves = _torch_scores(table, w, offsets)
            extra = net.mlp(x)[:, 0]
            emit = [net.scale * rows[p] + extra[offsets[p]:offsets[p + 1]]
                    for p in range(len(rows))]
            trans = [None] + [net.scale * m for m in moves[1:]]
            if config.loss == "crf":
                loss = _forward(emit, trans, free) - _forward(emit, trans, masks)
            else:
                loss = _hinge(emit, trans, free, masks, gold)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        if progress:
            print(f"epoch {epoch + 1}: loss {total:.1f}", file=sys.stderr)
    out = net.arrays()
    if joint:
        out["linear"] = w.detach().numpy().copy()
    return out


def _torch_tables(table: "T.Compiled") -> tuple:
    """A compiled lattice's index arrays as torch tensors (for :func:`_torch_scores`)."""
    import torch

    def convert(packed: tuple) -> tuple:
        idx, val, row, _, cells = packed
        return torch.from_numpy(idx), torch.from_numpy(val), torch.from_numpy(row), cells

    return (convert(table.emit), [(a, b, convert(p)) for a, b, p in table.tables],
            table.table_of)


def _torch_scores(packed: tuple, w, offsets) -> tuple[list, list]:
    """Per slot the linear emission scores and the change scores, differentiable in ``w``."""
    import torch

    def score(part: tuple) -> "object":
        idx, val, row, cells = part
        return torch.zeros(cells, dtype=torch.float64).index_add(0, row, w[idx] * val)

    emit_part, changes, table_of = packed
    emit = score(emit_part)
    moves = [score(p).reshape(a, b) for a, b, p in changes]
    rows = [emit[offsets[p]:offsets[p + 1]] for p in range(len(offsets) - 1)]
    return rows, [None] + [moves[t] for t in table_of[1:]]


def _forward(emit: list, trans: list, masks: list) -> "object":
    """Log of the summed exponentiated scores of every path through the allowed states."""
    import torch

    neg = torch.tensor(-1e9, dtype=torch.float64)
    alpha = torch.where(torch.from_numpy(masks[0]), emit[0], neg)
    for p in range(1, len(emit)):
        alpha = torch.logsumexp(alpha[:, None] + trans[p], dim=0) + emit[p]
        alpha = torch.where(torch.from_numpy(masks[p]), alpha, neg)
    return torch.logsumexp(alpha, dim=0)


def _hinge(emit: list, trans: list, free: list, masks: list, gold: list) -> "object":
    """Structured hinge: the best path with a cost of 1 on every state off the gold, less
    the best gold path (both found on the detached scores, scored with gradients)."""
    import numpy as np

    e = [t.detach().numpy() for t in emit]
    m = [None] + [t.detach().numpy() for t in trans[1:]]
    bad_rows, good_rows = [], []
    for p, row in enumerate(e):
        cost = np.zeros(len(row)) if gold[p] is None else (~masks[p]).astype(float)
        bad_rows.append(np.where(free[p], row + cost, -np.inf))
        good_rows.append(np.where(masks[p], row, -np.inf))
    bad, good = T.viterbi(bad_rows, m), T.viterbi(good_rows, m)
    cost = sum(1.0 for p, s in enumerate(bad) if gold[p] is not None and not masks[p][s])
    return cost + _path_score(emit, trans, bad) - _path_score(emit, trans, good)


def _path_score(emit: list, trans: list, path: list[int]) -> "object":
    total = emit[0][path[0]]
    for p in range(1, len(path)):
        total = total + trans[p][path[p - 1], path[p]] + emit[p][path[p]]
    return total


def decode(x: list, rows: list, moves: list, arrays: dict) -> list[int]:
    """Viterbi over the linear scores (times the learnt scale) plus the MLP's node scores;
    the last slot takes the tonic."""
    import numpy as np

    scale = float(arrays["scale"])
    extra = mlp_scores(arrays, np.concatenate(x))
    out, start = [], 0
    for p, row in enumerate(rows):
        values = scale * row + extra[start:start + len(row)]
        start += len(row)
        if p == len(rows) - 1:
            values = np.where(np.arange(len(values)) == 0, values, -np.inf)
        out.append(values)
    return T.viterbi(out, [None] + [scale * m for m in moves[1:]])


def parse_variant(text: str) -> MlpConfig | None:
    """``context`` (None: the linear scorer alone) or
    ``mlpW[xLAYERS]-LOSS[-OPTION...][@EPOCHS[@RATE]]``: LAYERS hidden layers of W units,
    LOSS ``crf`` or ``hinge``, OPTION ``stack``, ``nb`` (neighbours) or ``joint``.

    >>> parse_variant("mlp32x2-crf@5")
    MlpConfig(hidden=(32, 32), loss='crf', epochs=5, rate=0.001, decay=0.0001, seed=0, \
stack=False, joint=False, linear_rate=0.001, neighbours=False)
    >>> parse_variant("mlp-crf")
    Traceback (most recent call last):
    ...
    ValueError: a variant is 'context' or mlpW[xLAYERS]-LOSS[-OPTION][@EPOCHS[@RATE]], not 'mlp-crf'
    """
    if text == "context":
        return None
    head, *rest = text.split("@")
    try:
        shape, loss, *option = head.split("-")
        if not set(option) <= {"stack", "nb", "joint"}:
            raise ValueError
        width, _, layers = shape[3:].partition("x")
        hidden = (int(width),) * int(layers or 1)
        if not shape.startswith("mlp") or loss not in ("crf", "hinge"):
            raise ValueError
    except ValueError:
        raise ValueError("a variant is 'context' or "
                         f"mlpW[xLAYERS]-LOSS[-OPTION][@EPOCHS[@RATE]], not {text!r}") from None
    config = MlpConfig(hidden=hidden, loss=loss, stack="stack" in option,
                       neighbours="nb" in option, joint="joint" in option)
    if rest:
        config = replace(config, epochs=int(rest[0]))
    if len(rest) > 1:
        config = replace(config, rate=float(rest[1]))
    return config


def cross_validate(problems: list, variants: list[str], folds: int, seed: int,
                   progress: bool = False) -> list[tuple[str, list[tuple[int, int]]]]:
    """Per variant, (agreeing bars, bars) of each fold: the perceptron (``context``, the
    shipped settings, ``seed``) trained on the other folds, then each MLP variant on top of
    it on the same tunes."""
    import numpy as np

    configs = [(text, parse_variant(text)) for text in variants]
    index = {name: number for number, name in enumerate(H.hand_weights())}
    tables = T.compile_problems(problems, index)
    results: dict[str, list] = {text: [] for text in variants}
    for fold in range(folds):
        inside = [i for i in range(len(problems)) if i % folds != fold]
        held = [i for i in range(len(problems)) if i % folds == fold]
        linear = T.TrainConfig(seed=seed)
        learned = T.train([problems[i] for i in inside], linear, progress=False,
                          compiled=([tables[i] for i in inside], index))
        weights = {**H.hand_weights(), **learned}
        w = np.array([weights.get(name, 0.0) for name in sorted(index, key=index.get)])
        names, labels = node_names([problems[i] for i in inside])
        cache, wide = {}, {}
        need_wide = any(config is not None and config.neighbours for _, config in configs)
        for i in range(len(problems)):
            rows, moves = _linear_tables(tables[i], w)
            cache[i] = (node_inputs(problems[i][0], names, labels), rows, moves)
            if need_wide:
                wide[i] = (node_inputs(problems[i][0], names, labels, True), rows, moves)
        stacked = {}
        if any(config is not None and config.stack for _, config in configs):
            for part in range(2):
                train_on = [i for j, i in enumerate(inside) if j % 2 != part]
                inner = T.train([problems[i] for i in train_on], linear, progress=False,
                                compiled=([tables[i] for i in train_on], index))
                inner = {**H.hand_weights(), **inner}
                v = np.array([inner.get(name, 0.0) for name in sorted(index, key=index.get)])
                for j, i in enumerate(inside):
                    if j % 2 == part:
                        stacked[i] = (*_linear_tables(tables[i], v),)
        for text, config in configs:
            inputs = wide if config is not None and config.neighbours else cache
            if config is None:
                arrays = {"scale": np.array(1.0), "w0": np.zeros((1, cache[0][0][0].shape[1])),
                          "b0": np.zeros(1)}
            else:
                items = [(inputs[i][0], *(stacked[i] if config.stack else inputs[i][1:]),
                          problems[i][1]) for i in inside]
                arrays = train_mlp(items, items[0][0][0].shape[1], replace(config, seed=seed),
                                   progress, linear=([tables[i] for i in inside], w))
            agree = total = 0
            for i in held:
                if "linear" in arrays:
                    path = decode(inputs[i][0], *_linear_tables(tables[i], arrays["linear"]),
                                  arrays)
                else:
                    path = decode(*inputs[i], arrays)
                for states, state, root in zip(problems[i][0].states, path, problems[i][2]):
                    if root is not None:
                        total += 1
                        agree += states[state][0].root == root
            results[text].append((agree, total))
            print(f"fold {fold} {text}: {agree / total:.2%}", file=sys.stderr, flush=True)
    return list(results.items())


def train_final(problems: list, config: MlpConfig, progress: bool = False
                ) -> tuple[dict, list[str], list[str]]:
    """The network trained on every problem on top of the shipped linear weights
    (:func:`agent.harmony._weights`); returns (arrays, feature names, chord labels)."""
    import numpy as np

    index = {name: number for number, name in enumerate(H.hand_weights())}
    tables = T.compile_problems(problems, index)
    weights = H._weights(H.HarmonyConfig())
    w = np.array([weights.get(name, 0.0) for name in sorted(index, key=index.get)])
    names, labels = node_names(problems)
    items = [(node_inputs(problem[0], names, labels, config.neighbours),
              *_linear_tables(table, w), problem[1])
             for problem, table in zip(problems, tables)]
    arrays = train_mlp(items, items[0][0][0].shape[1], config, progress)
    return arrays, names, labels


def write_model(arrays: dict, names: list[str], labels: list[str], config: MlpConfig,
                path: Path, source: str) -> None:
    """Write the network as a Python module of numbers (no tune): its arrays, the input
    feature names and chord labels, whether it reads the neighbours.

    >>> import numpy as np, tempfile
    >>> out = Path(tempfile.mkdtemp()) / "m.py"
    >>> write_model({"scale": np.array(1.0), "w0": np.ones((1, 2)), "b0": np.zeros(1)},
    ...             ["ct"], [], MlpConfig(), out, "a test")
    >>> ns = {}; exec(out.read_text(), ns); ns["MODEL"]["w0"], ns["MODEL"]["names"]
    ([[1.0, 1.0]], ['ct'])
    """
    def numbers(value) -> object:
        return float(f"{value:.5g}") if not isinstance(value, list) else [
            numbers(v) for v in value]

    import textwrap

    text = (f"Written by ``python -m finetune.harmony_mlp --out`` ({source}; {config}). "
            "Numbers only: no tune of the collection (the Nottingham Music Database's cleaned "
            "ABC files, GPL-3, kept outside the repository) is stored here.")
    lines = ['"""The harmoniser\'s node scorer network (see agent.harmony_nodes).\n\n',
             textwrap.fill(text, 95), '\n"""\n\n', "MODEL: dict = {\n",
             f"    'names': {names!r},\n", f"    'labels': {labels!r},\n",
             f"    'neighbours': {config.neighbours!r},\n"]
    for name in sorted(arrays):
        value = numbers(arrays[name].tolist())
        if isinstance(value, list) and value and isinstance(value[0], list):
            rows = "".join(f"        {row!r},\n" for row in value)
            lines.append(f"    {name!r}: [\n{rows}    ],\n")
        else:
            lines.append(f"    {name!r}: {value!r},\n")
    lines.append("}\n")
    path.write_text("".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--abc", action="append", default=[], help="ABC files with chords")
    parser.add_argument("--abc-half", choices=("all", "odd", "even"), default="even")
    parser.add_argument("--cv", type=int, default=2, metavar="K", help="folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of both trainings")
    parser.add_argument("--variant", action="append", default=[],
                        help="'context' or mlpW[xLAYERS]-LOSS[-OPTION][@EPOCHS[@RATE]]")
    parser.add_argument("--problems", type=Path, default=None,
                        help="a pickle of the tunes' lattices to read instead of --abc "
                             "(written there when missing)")
    parser.add_argument("--out", type=Path, default=None,
                        help="train one --variant on all the chosen tunes, on top of the "
                             "shipped linear weights, and write it here "
                             "(agent/harmony_nodes_weights.py) instead of cross-validating")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one small tune a step: more threads only wait on each other
    if args.problems is not None and args.problems.exists():
        import pickle

        problems = pickle.loads(args.problems.read_bytes())
    else:
        problems = T.tune_problems(T.TrainConfig(tuple(args.abc), args.abc_half,
                                                 features=("context",)))
        if args.problems is not None:
            import pickle

            args.problems.write_bytes(pickle.dumps(problems))
    if args.out is not None:
        if len(args.variant) != 1 or parse_variant(args.variant[0]) is None:
            raise SystemExit("--out needs one MLP variant (--variant mlp32-crf@20)")
        config = replace(parse_variant(args.variant[0]), seed=args.seed)
        arrays, names, labels = train_final(problems, config, progress=True)
        write_model(arrays, names, labels, config, args.out,
                    f"{len(problems)} tunes, the {args.abc_half} half of "
                    + ", ".join(Path(p).name for p in args.abc))
        print(f"node scorer from {len(problems)} tunes -> {args.out}")
        return 0
    print(f"{len(problems)} tunes, {args.cv} folds, seed {args.seed}", flush=True)
    for text, folds in cross_validate(problems, args.variant, args.cv, args.seed):
        agree, bars = sum(a for a, _ in folds), sum(b for _, b in folds)
        shares = " / ".join(f"{a / b:.2%}" for a, b in folds)
        print(f"| {text} | {shares} | {agree / bars:.2%} ({agree}/{bars}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
