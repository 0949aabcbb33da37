"""The harmoniser's nonlinear node scorer: a small neural network that adds a score to each
(slot, chord) of the lattice, on top of the linear scorer's.

The linear scorer (:mod:`agent.harmony`) gives each feature one weight per chord, so it
cannot weigh two features together ("the slot dwells on the fifth degree AND the bar is the
strain's last"). This network reads each node as one dense vector (the node's own features
with the chord label taken off their names, the label itself, the meter and whether the slot
starts inside the bar) through one hidden layer of tanh units. It was trained as a
conditional random field on the chords musicians wrote over the even half of the Nottingham
Music Database, with the linear weights fixed (:mod:`finetune.harmony_mlp`), and chosen by
cross-validation inside that half (docs/benchmarks.md). Numpy only: a 32-bar tune's nodes go
through it in well under a millisecond.

>>> from agent import harmony as H
>>> m = H._read("X:1\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\n")
>>> lattice = H._lattice(m.events, H.Fraction(3, 4), H.Fraction(1, 4), 1, m.pickups, m.keys)
>>> bonus = node_bonus(lattice)
>>> len(bonus) == len(lattice.plan) and bonus[0].shape == (len(lattice.states[0]),)
True
>>> node_bonus(lattice, {"names": [], "labels": []})
Traceback (most recent call last):
...
ValueError: the node scorer's table lacks w0
"""
from __future__ import annotations

from functools import lru_cache

#: Meters given a one-hot input (the others none).
METERS = ("2/4", "3/4", "4/4", "6/8", "9/8", "3/8", "12/8", "2/2")


def base_name(name: str, label: str) -> str:
    """A feature's name with the chord label taken off (``deg5:major:4M`` -> ``deg5``).

    >>> base_name("deg5:major:4M", "major:4M"), base_name("rel7", "major:4M")
    ('deg5', 'rel7')
    """
    head, _, rest = name.partition(":")
    return head if rest == label else name


def node_inputs(lattice, names: list[str], labels: list[str], neighbours: bool = False) -> list:
    """Per slot, the dense input of each of its chords (rows): the de-labelled features,
    the chord label, the meter and a mid-bar flag, one-hot (names not listed are left out);
    ``neighbours``: then the previous and the next slot's weighted key degrees (``deg``,
    ``sdeg``; zeros at the ends).

    >>> from agent import harmony as H
    >>> m = H._read("X:1\\nM:3/4\\nL:1/4\\nK:D\\nDFA|GBd|cea|d3|]\\n")
    >>> lat = H._lattice(m.events, H.Fraction(3, 4), H.Fraction(1, 4), 1, m.pickups, m.keys)
    >>> x = node_inputs(lat, ["ct", "deg0"], ["major:0M"])
    >>> [round(v, 3) for v in x[0][0].tolist()[:3]], x[0].shape
    ([1.0, 0.441, 1.0], (11, 12))
    >>> node_inputs(lat, ["ct"], [], neighbours=True)
    Traceback (most recent call last):
    ...
    ValueError: no feature deg0 to take the neighbours' degrees from
    """
    import numpy as np

    column = {name: i for i, name in enumerate(names)}
    label_column = {label: len(names) + i for i, label in enumerate(labels)}
    meter_base = len(names) + len(labels)
    width = meter_base + len(METERS) + 1
    out = []
    for (_, onset), states, rows in zip(lattice.plan, lattice.states, lattice.emissions):
        x = np.zeros((len(states), width))
        for i, ((_, label), features) in enumerate(zip(states, rows)):
            for name, value in features.items():
                j = column.get(base_name(name, label))
                if j is not None:
                    x[i, j] = value
            if label in label_column:
                x[i, label_column[label]] = 1.0
            if lattice.meter in METERS:
                x[i, meter_base + METERS.index(lattice.meter)] = 1.0
            x[i, -1] = 1.0 if onset else 0.0
        out.append(x)
    if neighbours:
        wanted = [f"{kind}{d}" for kind in ("deg", "sdeg") for d in range(12)]
        missing = [name for name in wanted if name not in column]
        if missing:
            raise ValueError(f"no feature {missing[0]} to take the neighbours' degrees from")
        profile = [x[0, [column[name] for name in wanted]] for x in out]
        blank = np.zeros(len(wanted))
        out = [np.hstack([x, np.tile(profile[p - 1] if p else blank, (len(x), 1)),
                          np.tile(profile[p + 1] if p + 1 < len(out) else blank,
                                  (len(x), 1))])
               for p, x in enumerate(out)]
    return out


def mlp_scores(arrays: dict, x) -> "object":
    """The network's score of each row of ``x`` from its arrays (``w0``, ``b0``, ...; tanh
    between layers).

    >>> import numpy as np
    >>> a = {"w0": np.ones((2, 3)), "b0": np.zeros(2), "w1": np.ones((1, 2)), "b1": np.zeros(1)}
    >>> mlp_scores(a, np.zeros((4, 3))).tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    import numpy as np

    layers = sum(1 for name in arrays if name[:1] == "w" and name[1:].isdigit())
    if not layers:
        raise ValueError("the node scorer's table lacks w0")
    h = x
    for n in range(layers):
        h = h @ np.asarray(arrays[f"w{n}"]).T + np.asarray(arrays[f"b{n}"])
        if n < layers - 1:
            h = np.tanh(h)
    return h[:, 0]


@lru_cache(maxsize=1)
def shipped_model() -> dict:
    """The trained network (:mod:`agent.harmony_nodes_weights`) as numpy arrays, read once."""
    import numpy as np

    from agent.harmony_nodes_weights import MODEL

    return {name: (np.array(value) if name not in ("names", "labels") else list(value))
            for name, value in MODEL.items()}


def node_bonus(lattice, model: dict | None = None) -> list:
    """Per slot, the network's score of each of its chords (``model``: None for the shipped
    one). A chord label the network never saw (a mode the training tunes lack) gets 0."""
    import numpy as np

    model = shipped_model() if model is None else model
    x = node_inputs(lattice, model["names"], model["labels"], bool(model.get("neighbours")))
    extra = mlp_scores(model, np.concatenate(x))
    known = set(model["labels"])
    out, start = [], 0
    for states, rows in zip(lattice.states, x):
        values = extra[start:start + len(rows)].copy()
        start += len(rows)
        values[[label not in known for _, label in states]] = 0.0
        out.append(values)
    return out
