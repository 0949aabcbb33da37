"""Activation ranges, and the smoothing that lets the portable path decode with int8 products.

On a CPU without bfloat16 (most laptops: AVX2), the cheapest matrix product torch offers at
one token is fbgemm's dynamic int8 kernel (``agent.step_decoder.DynamicInt8Linear``): int8
weight rows, and each call's input rounded to 8 bits on the fly. Measured on AVX2, the
model's layer products took 5.6 ms a token against 8.0 ms with float16 weights (the portable
path's kernel), and a whole one-token step 1.2x faster. Plain, that rounding costs SmolLM2 with
the shipped adapter 0.017 nats a token on validation tunes: a few input channels carry values
far larger than the rest, and one scale per token flattens the others.

Smoothing moves those outliers from the activations into the weights, where one scale per row
absorbs them. For each product, input channel j is divided by s_j and the weight's column j
multiplied by s_j: the same product in exact arithmetic, with flatter inputs. The factors are
``s_j = a_j ** alpha / w_j ** (1 - alpha)``, a_j being the largest |input| seen on channel j
over calibration tunes and w_j the largest |weight| in column j. The division costs nothing at
run time: it is folded into what writes the input:

- before q/k/v and gate/up: the RMSNorm's weight;
- before the attention's output product: the value rows (the attention output's channels are
  value channels mixed over positions; a value head serves several query heads, so each value
  channel takes the largest factor its query heads ask for);
- before down: the up rows (its input is ``silu(gate) * up``).

The ranges are measured once per adapter (``tunesmith finetune calibrate``, on training tunes)
and kept beside it as :data:`RANGES_FILE`; the factors are computed at load from them and the
merged weights. (One published name for the method: SmoothQuant. Written here because torch has
no version of it for fbgemm's kernels.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

#: the file, beside an adapter (or in a base's folder), holding its activation ranges
RANGES_FILE = "activation_ranges.safetensors"
#: the products of one layer whose inputs are recorded, by the names of ``_Layer``'s fields
PRODUCTS = ("qkv", "out", "gate_up", "down")


@dataclass(frozen=True)
class SmoothingConfig:
    """How far the outliers move from the activations into the weights."""

    alpha: float = field(default=0.7, metadata={
        "help": "0: factors from the weights only; 1: from the activations only (0.7 chosen "
                "among 0.3-0.7 on training tunes held out of the calibration, under AVX2; see "
                "docs/benchmarks.md)"})
    int8: tuple[str, ...] = field(default=("qkv", "out", "gate_up"), metadata={
        "help": "the products (of PRODUCTS) in int8; the others keep float16 and are not smoothed. "
                "down stays float16: in int8 it cost 0.007 nats of 0.0075 on held-out training tunes"})
    smallest: float = field(default=1e-2, metadata={"help": "factors are kept within [smallest, largest]"})
    largest: float = field(default=1e2, metadata={"help": "see smallest"})


def range_name(layer: int | None, product: str) -> str:
    """The key of one product's input range in :data:`RANGES_FILE`.

    >>> range_name(3, "down"), range_name(None, "head")
    ('layers.3.down', 'head')
    >>> range_name(0, "lm_head")
    Traceback (most recent call last):
    ...
    ValueError: unknown product 'lm_head'
    """
    if layer is None and product == "head":
        return "head"
    if product not in PRODUCTS:
        raise ValueError(f"unknown product {product!r}")
    return f"layers.{layer}.{product}"


def smoothing_factors(activation_max: Any, weight: Any, config: SmoothingConfig = SmoothingConfig()) -> Any:
    """One factor per input channel of ``weight`` (out x in): divide the inputs by it and
    multiply the columns by it.

    >>> import torch
    >>> half = SmoothingConfig(alpha=0.5)
    >>> smoothing_factors(torch.tensor([16.0, 1.0]), torch.tensor([[1.0, 1.0]]), half).tolist()
    [4.0, 1.0]
    >>> smoothing_factors(torch.ones(3), torch.ones(2, 2))
    Traceback (most recent call last):
    ...
    ValueError: 3 activation ranges for a weight of 2 input channels
    """
    if activation_max.shape[0] != weight.shape[1]:
        raise ValueError(f"{activation_max.shape[0]} activation ranges for a weight of "
                         f"{weight.shape[1]} input channels")
    activations = activation_max.float().clamp(min=1e-5) ** config.alpha
    columns = weight.float().abs().amax(dim=0).clamp(min=1e-5) ** (1 - config.alpha)
    return (activations / columns).clamp(config.smallest, config.largest)


@dataclass(frozen=True)
class SmoothedLayer:
    """One decoder layer's float32 tensors after smoothing (rows stacked as the decoder fuses
    them: q/k/v, gate/up)."""

    norm_1: Any
    qkv: Any
    out: Any
    norm_2: Any
    gate_up: Any
    down: Any


def smooth_layer(norm_1: Any, qkv: Any, out: Any, norm_2: Any, gate_up: Any, down: Any,
                 ranges: dict[str, Any], layer: int, heads: int, kv_heads: int,
                 config: SmoothingConfig = SmoothingConfig()) -> SmoothedLayer:
    """The tensors of decoder layer ``layer``, smoothed with its entries of ``ranges``: every
    product's output is unchanged in exact arithmetic (see the module's docstring). The down
    product is smoothed only where ``config.int8`` names it.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> t = lambda *shape: torch.randn(*shape, generator=g)
    >>> ranges = {range_name(0, p): t(n).abs() * 10 for p, n in
    ...           (("qkv", 4), ("out", 4), ("gate_up", 4), ("down", 3))}
    >>> layer = smooth_layer(torch.ones(4), t(8, 4), t(4, 4), torch.ones(4), t(6, 4), t(4, 3),
    ...                      ranges, 0, heads=2, kv_heads=1)
    >>> layer.qkv.shape, layer.down.shape
    (torch.Size([8, 4]), torch.Size([4, 3]))
    """
    head_dim = qkv.shape[0] // (heads + 2 * kv_heads)
    value_start = (heads + kv_heads) * head_dim  # q rows, then k rows, then v rows
    qkv, out, gate_up, down = (t.float().clone() for t in (qkv, out, gate_up, down))
    norm_1, norm_2 = norm_1.float().clone(), norm_2.float().clone()

    factors = smoothing_factors(ranges[range_name(layer, "qkv")], qkv, config)
    norm_1, qkv = norm_1 / factors, qkv * factors

    factors = smoothing_factors(ranges[range_name(layer, "gate_up")], gate_up, config)
    norm_2, gate_up = norm_2 / factors, gate_up * factors

    if "down" in config.int8:
        intermediate = down.shape[1]
        factors = smoothing_factors(ranges[range_name(layer, "down")], down, config)
        gate_up[intermediate:] /= factors[:, None]
        down = down * factors

    per_query = smoothing_factors(ranges[range_name(layer, "out")], out, config).view(heads, head_dim)
    per_value = per_query.view(kv_heads, heads // kv_heads, head_dim).amax(dim=1)
    qkv[value_start:] /= per_value.reshape(-1)[:, None]
    out = out * per_value.repeat_interleave(heads // kv_heads, dim=0).reshape(-1)
    return SmoothedLayer(norm_1, qkv, out, norm_2, gate_up, down)


class _Recorder:
    """A linear layer that passes its input on and keeps each input channel's largest |value|."""

    def __init__(self, linear: Any, channels: int) -> None:
        import torch

        self.linear = linear
        self.largest = torch.zeros(channels)

    def __call__(self, x: Any) -> Any:
        import torch

        self.largest = torch.maximum(self.largest, x.detach().float().abs().amax(dim=0))
        return self.linear(x)


def record_ranges(weights: Any, sequences: Iterable[Sequence[int]], progress: bool = False) -> dict[str, Any]:
    """The largest |input| of every product's input channels while ``weights`` (a
    :class:`agent.step_decoder.LlamaStepWeights`, float32 activations) reads ``sequences`` of
    token ids, each fed whole into a fresh decoder.

    >>> record_ranges(object(), [])
    Traceback (most recent call last):
    ...
    ValueError: no token sequences to measure the ranges on
    """
    import dataclasses

    import torch

    from agent.step_decoder import LlamaStepDecoder

    sequences = [list(s) for s in sequences if len(s)]
    if not sequences:
        raise ValueError("no token sequences to measure the ranges on")
    width = weights.embed.shape[1]
    recorders: dict[str, _Recorder] = {}
    layers = []
    for index, layer in enumerate(weights.layers):
        replaced = {}
        for product in PRODUCTS:
            channels = weights.intermediate if product == "down" else width
            recorder = _Recorder(getattr(layer, product), channels)
            recorders[range_name(index, product)] = replaced[product] = recorder
        layers.append(dataclasses.replace(layer, **replaced))
    recorders["head"] = _Recorder(weights.head, width)
    watched = dataclasses.replace(weights, layers=tuple(layers), head=recorders["head"])
    if progress:
        from tqdm import tqdm

        sequences = tqdm(sequences, desc="activation ranges", unit="tune")
    with torch.inference_mode():
        for ids in sequences:
            LlamaStepDecoder(watched, len(ids)).feed(ids, every=True)
    return {name: recorder.largest for name, recorder in recorders.items()}


def save_ranges(ranges: dict[str, Any], folder: str | Path) -> Path:
    """Write ``ranges`` as :data:`RANGES_FILE` in ``folder``; the file's path."""
    from safetensors.torch import save_file

    path = Path(folder) / RANGES_FILE
    save_file({name: tensor.contiguous() for name, tensor in ranges.items()}, str(path))
    return path


def load_ranges(*folders: str | Path | None) -> dict[str, Any] | None:
    """The ranges kept in the first of ``folders`` that has :data:`RANGES_FILE`, or None.

    >>> load_ranges(None, "/nonexistent") is None
    True
    """
    from safetensors.torch import load_file

    for folder in folders:
        if folder and (Path(folder) / RANGES_FILE).is_file():
            return load_file(str(Path(folder) / RANGES_FILE))
    return None


def ranges_fit(ranges: dict[str, Any], layers: int, width: int, intermediate: int) -> bool:
    """Whether ``ranges`` cover a model of this shape (a file from another model does not).

    >>> import torch
    >>> ranges_fit({"head": torch.ones(4)}, 0, 4, 8)
    True
    >>> ranges_fit({"head": torch.ones(4)}, 1, 4, 8)
    False
    """
    expected = {"head": width}
    for index in range(layers):
        for product in PRODUCTS:
            expected[range_name(index, product)] = intermediate if product == "down" else width
    return all(name in ranges and tuple(ranges[name].shape) == (size,) for name, size in expected.items())
