"""Decoding one token at a time: feed token ids, get the logits of the next one, keep the cache.

The composer's loop checks every token with its automaton, so it drives the model itself, one
token per call. Two decoders offer that one operation, :meth:`StepDecoder.feed`:

- :class:`TransformersDecoder` runs any causal language model transformers loads, through its own
  KV cache (``past_key_values``). It is used for every base, dtype and device.
- :class:`LlamaStepDecoder` runs a Llama-architecture model (SmolLM2, the default base) at
  batch 1 on the CPU, its linear layers in one of three kinds, one per CPU path of
  ``agent.model``: int8 weights with bfloat16 activations (:class:`Int8Bf16Linear`, the bf16
  path, for a CPU that computes in bfloat16), float16 weights with float32 activations through
  fbgemm (:class:`Float16Linear`, the portable path, fast on AVX2), or plain float32
  (:class:`Float32Linear`). A fourth kind, int8 weights with activations rounded to 8 bits by
  fbgemm's dynamic int8 kernel (:class:`DynamicInt8Linear`), is the fastest on AVX2 but costs
  far too much quality on SmolLM2 (see its docstring); it is kept for measurements.

Why a forward pass of our own for the second: at batch 1 on two cores, transformers' decoder
spends most of a step outside its matrix products (thirty layers of module calls, cache objects,
mask building), and its attention runs in bfloat16, where torch's CPU kernel took 106 µs per layer
at 200 cached positions against 22 µs in float32. torch.compile removes the Python but needs
minutes of compilation on a cold start (the app must load in seconds), and llama.cpp, the fast CPU
engine, ships no wheel and cannot take our automaton's per-token choice inside its loop. This
forward is the same arithmetic as transformers' Llama with two changes: the query, key and value
projections are one matrix product, as are the gate and up projections (the int8 weights keep one
scale per output row, so stacking the rows changes no number), and the KV cache and attention are
float32 (keys and values are cast exactly from bfloat16; the softmax is more precise than
transformers' bfloat16 one). Tests check its logits against transformers' on a small random Llama;
``scripts/bench_decode.py`` measures both decoders' speed and loss on the shipped adapter.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

__all__ = [
    "DECODER_CHOICES",
    "DynamicInt8Linear",
    "Float16Linear",
    "Float32Linear",
    "Int8Bf16Linear",
    "Int8LlamaDecoder",
    "Int8LlamaWeights",
    "LlamaStepDecoder",
    "LlamaStepWeights",
    "StepDecoder",
    "TransformersDecoder",
    "float_llama_weights",
    "int8_llama_weights",
    "int8_rows",
    "RotaryTable",
    "TokenInt8Linear",
    "config_fits",
    "open_decoder",
    "pack_dynamic_int8",
    "sample_continuations",
    "pack_float16",
    "step_weights_from_state",
]

#: ``ModelConfig.decoder``: auto uses the int8 Llama decoder where the model allows it.
DECODER_CHOICES = ("auto", "transformers")


class StepDecoder(Protocol):
    """A model with its KV cache, fed a few tokens at a time; ``length`` tokens are cached."""

    length: int

    def feed(self, ids: Sequence[int], every: bool = False) -> Any:
        """Append ``ids`` to the context; return the logits of the token after them (a float32
        tensor of the vocabulary's size, on the CPU), or with ``every`` the logits after each
        of them (one row per id: what a teacher-forced loss needs)."""

    def rewind(self, length: int) -> None:
        """Forget every token after the first ``length`` (to write them again otherwise)."""


class TransformersDecoder:
    """Any causal LM transformers loads, with its own KV cache."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model, self.device, self.past = model, device, None
        self.length = 0

    def feed(self, ids: Sequence[int], every: bool = False) -> Any:
        import torch

        out = self.model(input_ids=torch.tensor([list(ids)], device=self.device),
                         past_key_values=self.past, use_cache=True, logits_to_keep=0 if every else 1)
        self.past = out.past_key_values
        self.length += len(ids)
        return out.logits[0].float().cpu() if every else out.logits[0, -1].float().cpu()

    def rewind(self, length: int) -> None:
        _check_rewind(length, self.length)
        if length < self.length:
            self.past.crop(length - self.length)  # transformers 5: minus the tokens to drop
            self.length = length


def _check_rewind(length: int, cached: int) -> None:
    if not 0 <= length <= cached:
        raise ValueError(f"cannot rewind to {length} tokens: {cached} are cached")


@dataclass(frozen=True)
class Int8Bf16Linear:
    """int8 weight rows, one bfloat16 scale per row, bfloat16 inputs: torch's
    ``_weight_int8pack_mm``, fast where the CPU computes in bfloat16 (oneDNN, AVX-512 BF16)."""

    weight: Any
    scales: Any

    def __call__(self, x: Any) -> Any:
        import torch

        return torch._weight_int8pack_mm(x, self.weight, self.scales)


@dataclass(frozen=True)
class DynamicInt8Linear:
    """int8 weight rows with one float scale per row, float32 inputs and outputs, through
    fbgemm's dynamic int8 kernel (``torch.ops.quantized.linear_dynamic``): each call rounds its
    input to 8 bits with one scale over the call's rows (at batch 1, one per token).

    Why this kernel for CPUs without bfloat16: on AVX2 (torch's dispatch and oneDNN forced down
    to it), a 576 x 3072 product at batch 1 took 31 µs here against 296 µs in float32, 53 µs
    for fbgemm's float16 weights and 5 ms for ``_weight_int8pack_mm`` with float32 inputs (a
    scalar loop); the whole model's products per token: 2.9 ms, float32 22 ms.

    Why it serves only the portable path's one-token steps, on smoothed weights: rounding the
    activations costs SmolLM2 with the shipped adapter 0.56 nats per token on validation tunes
    (1.118 -> 1.676, the prompt fed whole: one scale over all its tokens), +0.24 with the full
    8-bit range (``reduce_range`` off, which AVX2's kernel saturates), while rounding the
    weights alone to int8 rows costs 0.0005 and the output layer alone 0.034: the activations'
    outliers, not the weights, are the cost. One token at a time, with the outliers moved into
    the weights (``agent.activation_ranges``), the cost falls within 0.01 (docs/benchmarks.md)."""

    packed: Any
    rows: int

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.ops.quantized.linear_dynamic(x, self.packed, True)


@dataclass(frozen=True)
class Float16Linear:
    """float16 weights packed by fbgemm, float32 inputs and outputs
    (``torch.ops.quantized.linear_dynamic_fp16``: the weights are widened to float32 inside the
    kernel, so the activations are never rounded): the portable path's kind. On AVX2 the whole
    model's products per token took 8.2 ms against float32's 22.4, and the validation loss of
    the shipped adapter was float32's to four decimals (1.1180)."""

    packed: Any
    rows: int

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)


@dataclass(frozen=True)
class TokenInt8Linear:
    """fbgemm's dynamic int8 kernel (:class:`DynamicInt8Linear`) with each token's activations
    rounded on a scale of their own: the portable path's kind where the adapter has activation
    ranges (``agent.activation_ranges``, whose smoothing makes that rounding cheap). The kernel
    takes one scale per call; one token is one call. Several rows at once (a prompt fed whole)
    are each mapped onto [-1, 1] first (``x = center + half * unit``) and mapped back after
    (``W x = half * (W unit) + center * (W 1)``, the last from the rows' sums), so every row
    uses the whole 8-bit range, as a lone token does: one scale over a whole prompt cost 0.56
    nats.

    >>> import torch
    >>> layer = TokenInt8Linear.of(torch.tensor([[127, 0], [0, -127]], dtype=torch.int8),
    ...                            torch.tensor([0.01, 0.02]))
    >>> [round(v, 2) for v in layer(torch.tensor([[1.0, 1.0]]))[0].tolist()]  # one token
    [1.27, -2.54]
    >>> x = torch.tensor([[1.0, 1.0], [100.0, 0.5]])  # two rows of very different sizes
    >>> exact = x @ torch.tensor([[1.27, 0.0], [0.0, -2.54]])
    >>> bool((layer(x) - exact).abs().max() < 0.01 * exact.abs().max())  # within 7-bit rounding
    True
    """

    packed: Any
    row_sums: Any  # of the int8 rows times their scales: W 1
    rows: int

    @classmethod
    def of(cls, weight_int8: Any, scales: Any) -> "TokenInt8Linear":
        sums = weight_int8.float().sum(dim=1) * scales.float()
        return cls(pack_dynamic_int8(weight_int8, scales).packed, sums, weight_int8.shape[0])

    def __call__(self, x: Any) -> Any:
        import torch

        if x.shape[0] == 1:
            return torch.ops.quantized.linear_dynamic(x, self.packed, True)
        low, high = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
        center, half = (high + low) / 2, ((high - low) / 2).clamp(min=1e-12)
        unit = torch.ops.quantized.linear_dynamic((x - center) / half, self.packed, True)
        return torch.addcmul(center * self.row_sums, unit, half)


@dataclass(frozen=True)
class Float32Linear:
    """Plain float32 weights (``torch.nn.functional.linear``): the reference path."""

    weight: Any

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.nn.functional.linear(x, self.weight)


def pack_dynamic_int8(weight_int8: Any, scales: Any) -> DynamicInt8Linear:
    """fbgemm's packed form of int8 rows with one scale per row (symmetric, zero point 0).

    >>> import torch
    >>> layer = pack_dynamic_int8(torch.tensor([[127, 0], [0, -127]], dtype=torch.int8),
    ...                           torch.tensor([0.01, 0.02]))
    >>> [round(value, 2) for value in layer(torch.tensor([[1.0, 1.0]]))[0].tolist()]
    [1.27, -2.54]
    >>> pack_dynamic_int8(torch.zeros(2, 2), torch.ones(2))
    Traceback (most recent call last):
    ...
    ValueError: int8 rows expected, not torch.float32
    """
    import torch

    import warnings

    if weight_int8.dtype != torch.int8:
        raise ValueError(f"int8 rows expected, not {weight_int8.dtype}")
    rows = weight_int8.shape[0]
    with warnings.catch_warnings():  # torch calls quantized tensors deprecated; fbgemm takes them
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch._make_per_channel_quantized_tensor(
            weight_int8.contiguous(), scales.double().contiguous(), torch.zeros(rows, dtype=torch.long), 0)
    return DynamicInt8Linear(torch.ops.quantized.linear_prepack(quantized, None), rows)


def pack_float16(weight: Any) -> Float16Linear:
    """fbgemm's packed float16 form of ``weight`` (out x in, any float dtype).

    >>> import torch
    >>> layer = pack_float16(torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float16))
    >>> layer(torch.tensor([[1.0, 2.0]])).tolist()
    [[-1.5, 2.5]]
    >>> pack_float16(torch.zeros(2, dtype=torch.float16))
    Traceback (most recent call last):
    ...
    ValueError: a weight matrix (out x in) expected, not shape (2,)
    """
    import torch

    if weight.dim() != 2:
        raise ValueError(f"a weight matrix (out x in) expected, not shape {tuple(weight.shape)}")
    packed = torch.ops.quantized.linear_prepack_fp16(weight.float().contiguous(), None)
    return Float16Linear(packed, weight.shape[0])


@dataclass(frozen=True)
class _Layer:
    norm_1: Any
    eps_1: float
    qkv: Any  # one of the linear kinds above: q, k and v rows stacked
    out: Any
    norm_2: Any
    eps_2: float
    gate_up: Any  # gate and up rows stacked
    down: Any


@dataclass(frozen=True)
class LlamaStepWeights:
    """The tensors :class:`LlamaStepDecoder` reads, shared by every decoding session of a
    loaded model (never written to). ``embed``'s dtype is the dtype of the residual stream
    (bfloat16 on the bf16 path, float32 elsewhere); every linear takes and gives that dtype."""

    layers: tuple[_Layer, ...]
    embed: Any
    norm: Any
    eps: float
    head: Any
    rotary: Any  # the model's rotary embedding module: cos and sin for any positions
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int


#: the earlier name, kept for callers and pickles of the bf16 path
Int8LlamaWeights = LlamaStepWeights


def _fuse(*layers: Any) -> Int8Bf16Linear:
    """One int8 weight of the stacked rows of ``layers``; each layer's buffers become views
    of it, so the model keeps working and no weight is held twice."""
    import torch

    weight = torch.cat([layer.weight_int8 for layer in layers]).contiguous()
    scales = torch.cat([layer.scales for layer in layers]).contiguous()
    row = 0
    for layer in layers:
        rows = layer.weight_int8.shape[0]
        layer.weight_int8, layer.scales = weight[row:row + rows], scales[row:row + rows]
        row += rows
    return Int8Bf16Linear(weight, scales)


def _llama_fits(model: Any) -> bool:
    """Whether the compact decoder computes exactly what ``model``'s own forward does."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    return not (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)
                or getattr(config, "hidden_act", "silu") != "silu"
                or getattr(config, "pretraining_tp", 1) != 1)


def _projections(layer: Any) -> list[Any]:
    attention, mlp = layer.self_attn, layer.mlp
    return [attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj,
            mlp.gate_proj, mlp.up_proj, mlp.down_proj]


def _assemble(model: Any, layers: list[_Layer], embed: Any, head: Any) -> LlamaStepWeights:
    config, inner = model.config, model.model
    heads = config.num_attention_heads
    return LlamaStepWeights(
        layers=tuple(layers), embed=embed, norm=inner.norm.weight.to(embed.dtype),
        eps=inner.norm.variance_epsilon, head=head, rotary=inner.rotary_emb, heads=heads,
        kv_heads=config.num_key_value_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        intermediate=config.intermediate_size)


def int8_llama_weights(model: Any) -> LlamaStepWeights | None:
    """The weights of ``model`` for the bf16 path of :class:`LlamaStepDecoder`, or None where
    it does not fit: not a Llama architecture, biases in attention or MLP, another activation
    than SiLU, or any linear layer without int8 weights (see ``agent.model``'s ``int8-weight``)."""
    if not _llama_fits(model):
        return None
    inner = model.model
    linears = [model.lm_head] + [m for layer in inner.layers for m in _projections(layer)]
    if not all(hasattr(m, "weight_int8") and getattr(m, "bias", None) is None for m in linears):
        return None
    layers = []
    for layer in inner.layers:
        attention, mlp = layer.self_attn, layer.mlp
        layers.append(_Layer(
            norm_1=layer.input_layernorm.weight, eps_1=layer.input_layernorm.variance_epsilon,
            qkv=_fuse(attention.q_proj, attention.k_proj, attention.v_proj),
            out=Int8Bf16Linear(attention.o_proj.weight_int8, attention.o_proj.scales),
            norm_2=layer.post_attention_layernorm.weight,
            eps_2=layer.post_attention_layernorm.variance_epsilon,
            gate_up=_fuse(mlp.gate_proj, mlp.up_proj),
            down=Int8Bf16Linear(mlp.down_proj.weight_int8, mlp.down_proj.scales)))
    head = Int8Bf16Linear(model.lm_head.weight_int8, model.lm_head.scales)
    return _assemble(model, layers, inner.embed_tokens.weight, head)


def int8_rows(weight: Any) -> tuple[Any, Any]:
    """``weight`` (float, out x in) as int8 rows and one float32 scale per row (symmetric,
    the largest magnitude of each row maps to 127): the rounding every int8 path shares.

    >>> import torch
    >>> rows, scales = int8_rows(torch.tensor([[0.5, -1.0], [2.0, 0.0]]))
    >>> rows.tolist(), scales.mul(127).tolist()
    ([[64, -127], [127, 0]], [1.0, 2.0])
    """
    import torch

    weight = weight.detach().float()
    scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
    rounded = torch.round(weight / scales[:, None]).clamp(-128, 127)
    return rounded.to(torch.int8), scales


#: the kinds of :func:`float_llama_weights`: the portable path's, the float32 path's, and the
#: dynamic int8 kind kept for measurements
FLOAT_KINDS = ("portable", "float32", "int8-dynamic")


def _weight_of(module: Any) -> Any:
    """A linear layer's weight as it is stored: float16 (``weight_fp16``, the portable path's
    layers of ``agent.model``), else its ordinary ``weight``."""
    stored = getattr(module, "weight_fp16", None)
    return (stored if stored is not None else module.weight).detach()


def float_llama_weights(model: Any, kind: str = "portable") -> LlamaStepWeights | None:
    """The weights of a Llama ``model`` for :class:`LlamaStepDecoder` with float32 activations:
    ``kind`` "portable" (float16 weights through fbgemm, :class:`Float16Linear`), "float32"
    (the weights as they are) or "int8-dynamic" (int8 rows through fbgemm's dynamic int8
    kernel, :class:`DynamicInt8Linear`: fast, but see its cost there). None where the model
    does not fit (see :func:`int8_llama_weights`). A layer holding ``weight_fp16`` (the
    portable path's, as the weight cache stores it) is read from there. With "float32" the
    model's own projections become views of the fused weights (same numbers, no weight held
    twice); otherwise the model is left as it is.

    >>> float_llama_weights(object(), "int4")
    Traceback (most recent call last):
    ...
    ValueError: kind must be one of portable, float32, int8-dynamic, not 'int4'
    """
    import torch

    if kind not in FLOAT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FLOAT_KINDS)}, not {kind!r}")
    if not _llama_fits(model):
        return None
    inner = model.model
    if any(getattr(m, "bias", None) is not None for layer in inner.layers for m in _projections(layer)):
        return None

    def linear(modules: list[Any]) -> Any:
        if kind == "float32":  # one fused weight; the model's layers become views of it
            fused = torch.cat([m.weight.detach().float() for m in modules]).contiguous()
            start = 0
            for module in modules:
                count = module.weight.shape[0]
                module.weight = torch.nn.Parameter(fused[start:start + count], requires_grad=False)
                start += count
            return Float32Linear(fused)
        fused = torch.cat([_weight_of(m) for m in modules])
        if kind == "portable":
            return pack_float16(fused)
        return pack_dynamic_int8(*int8_rows(fused))  # rows: stacking them changes no scale

    layers = []
    for layer in inner.layers:
        q, k, v, o, gate, up, down = _projections(layer)

        def of(*modules: Any) -> Any:
            return linear(list(modules))

        layers.append(_Layer(
            norm_1=layer.input_layernorm.weight.float(), eps_1=layer.input_layernorm.variance_epsilon,
            qkv=of(q, k, v), out=of(o), norm_2=layer.post_attention_layernorm.weight.float(),
            eps_2=layer.post_attention_layernorm.variance_epsilon, gate_up=of(gate, up), down=of(down)))
    embed = inner.embed_tokens.weight.detach().float()
    if kind == "float32" and model.lm_head.weight is inner.embed_tokens.weight:
        head = Float32Linear(embed)  # tied: one tensor for both
    else:
        head = linear([model.lm_head])
    return _assemble(model, layers, embed, head)


@dataclass(frozen=True)
class RotaryTable:
    """Llama's default rotary embedding (no scaling): cos and sin for any positions, computed
    as transformers computes them (float32, then cast to the probe's dtype), for weights built
    without transformers' model (:func:`step_weights_from_state`).

    >>> import torch
    >>> cos, sin = RotaryTable(head_dim=4, theta=10000.0)(torch.zeros(1), torch.arange(2)[None])
    >>> cos.shape, [round(v, 4) for v in cos[0, 1].tolist()]
    (torch.Size([1, 2, 4]), [0.5403, 0.9999, 0.5403, 0.9999])
    """

    head_dim: int
    theta: float
    #: the model's dtype: a model cast to bfloat16 holds its inverse frequencies rounded to it
    #: (transformers casts that buffer with the weights), and the bf16 path computes with those
    dtype_name: str = "float32"

    def __call__(self, probe: Any, positions: Any) -> tuple[Any, Any]:
        import torch

        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim
        inverse = (1.0 / (self.theta ** exponents)).to(getattr(torch, self.dtype_name)).float()
        angles = positions[..., None].float() * inverse
        both = torch.cat((angles, angles), dim=-1)
        return both.cos().to(probe.dtype), both.sin().to(probe.dtype)


def _rope_theta(config: dict[str, Any]) -> float | None:
    """The rotary base of a Llama ``config.json`` whose rotary embedding is the default one
    (transformers 5 writes ``rope_parameters``, older versions ``rope_theta``/``rope_scaling``);
    None for any scaled kind, which :class:`RotaryTable` does not compute."""
    parameters = config.get("rope_parameters")
    if isinstance(parameters, dict):
        if parameters.get("rope_type", "default") != "default":
            return None
        return float(parameters.get("rope_theta", 10000.0))
    if config.get("rope_scaling"):
        return None
    return float(config.get("rope_theta", 10000.0))


def config_fits(config: dict[str, Any]) -> bool:
    """Whether :func:`step_weights_from_state` can run a model of this ``config.json``: a Llama
    without biases, with SiLU, one tensor-parallel rank and the default rotary embedding.

    >>> config_fits({"model_type": "llama", "rope_theta": 10000.0})
    True
    >>> config_fits({"model_type": "llama", "rope_scaling": {"rope_type": "llama3"}})
    False
    """
    return (config.get("model_type") == "llama" and not config.get("attention_bias")
            and not config.get("mlp_bias") and config.get("hidden_act", "silu") == "silu"
            and config.get("pretraining_tp", 1) == 1 and _rope_theta(config) is not None)


def step_weights_from_state(state: dict[str, Any], config: dict[str, Any], path: str,
                            ranges: dict[str, Any] | None = None, smoothing: Any = None) -> LlamaStepWeights:
    """:class:`LlamaStepWeights` straight from a weight cache's tensors (``agent.model`` keeps
    one per CPU path: ``path`` "bf16" with int8 rows and scales, "portable" with float16
    weights, "float32" plain) and the base's ``config.json``, without building transformers'
    model: the same tensors, fused and packed as :func:`int8_llama_weights` and
    :func:`float_llama_weights` do from a model (tests compare the logits of both).

    On the portable path, ``ranges`` (the adapter's activation ranges, see
    ``agent.activation_ranges``) smooth the weights, and the layers' products become int8
    (:class:`TokenInt8Linear`); ``smoothing`` is its ``SmoothingConfig``.

    >>> step_weights_from_state({}, {"model_type": "gpt2"}, "portable")
    Traceback (most recent call last):
    ...
    ValueError: the compact decoder cannot run this model (gpt2)
    """
    import torch

    if not config_fits(config):
        raise ValueError(f"the compact decoder cannot run this model ({config.get('model_type')})")
    if path not in ("bf16", "portable", "float32"):
        raise ValueError(f"no weight cache for the {path!r} path")

    def linear(names: list[str]) -> Any:
        if path == "bf16":  # copies: torch's int8 kernel crashed on the file's own memory
            return Int8Bf16Linear(torch.cat([state[f"{n}.weight_int8"] for n in names]).contiguous(),
                                  torch.cat([state[f"{n}.scales"] for n in names]).contiguous())
        if path == "portable":  # one matrix is widened straight from the file (no copy first)
            halves = [state[f"{n}.weight_fp16"] for n in names]
            return pack_float16(halves[0] if len(halves) == 1 else torch.cat(halves))
        return Float32Linear(torch.cat([state[f"{n}.weight"].float() for n in names]).contiguous())

    embed = state["model.embed_tokens.weight"]
    embed = embed.clone() if path == "bf16" else embed.float()
    norm_of = (lambda name: state[name].to(embed.dtype))
    eps = float(config.get("rms_norm_eps", 1e-6))
    count = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    if path == "portable" and ranges is not None:
        layers, head = _smoothed_portable(state, config, ranges, smoothing)
    else:
        groups = []  # per layer: q/k/v, o, gate/up, down
        for index in range(count):
            attention, mlp = f"model.layers.{index}.self_attn", f"model.layers.{index}.mlp"
            groups += [[f"{attention}.q_proj", f"{attention}.k_proj", f"{attention}.v_proj"],
                       [f"{attention}.o_proj"], [f"{mlp}.gate_proj", f"{mlp}.up_proj"], [f"{mlp}.down_proj"]]
        tied = path == "float32" and "lm_head.weight" not in state
        if not tied:
            groups.append(["lm_head"])
        linears = _in_threads(linear, groups, [sum(_numel(state, name) for name in names) for names in groups])
        head = Float32Linear(embed) if tied else linears[-1]  # tied: one tensor for both
        layers = []
        for index in range(count):
            prefix = f"model.layers.{index}"
            qkv, out, gate_up, down = linears[4 * index:4 * index + 4]
            layers.append(_Layer(
                norm_1=norm_of(f"{prefix}.input_layernorm.weight"), eps_1=eps, qkv=qkv, out=out,
                norm_2=norm_of(f"{prefix}.post_attention_layernorm.weight"), eps_2=eps, gate_up=gate_up,
                down=down))
    return LlamaStepWeights(
        layers=tuple(layers), embed=embed, norm=norm_of("model.norm.weight"), eps=eps, head=head,
        rotary=RotaryTable(head_dim, _rope_theta(config), str(embed.dtype).removeprefix("torch.")),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads), head_dim=head_dim,
        intermediate=int(config["intermediate_size"]))


def _numel(state: dict[str, Any], name: str) -> int:
    """How many weights the layer ``name`` holds in a weight cache's ``state``, in whichever form."""
    for suffix in (".weight_fp16", ".weight_int8", ".weight"):
        if name + suffix in state:
            return state[name + suffix].numel()
    return 0


def _in_threads(work: Any, items: list[Any], sizes: list[int]) -> list[Any]:
    """``[work(item) for item in items]`` on one thread per core, the largest ``sizes`` first.

    fbgemm's packing and the copies around it release the GIL, so threads share the work: on
    two cores they halved the portable path's load. Largest first, because in the weights'
    own order the output layer (a fifth of the model) came last and was packed by one thread
    while the other sat idle (0.71-0.77 s against 0.56-0.65 s for the model's 121 matrices
    under AVX2, 2 threads, 3 fresh processes each).

    >>> _in_threads(lambda x: x * 10, [1, 2, 3], [1, 3, 2])
    [10, 20, 30]
    """
    import torch

    order = sorted(range(len(items)), key=lambda index: -sizes[index])
    results: list[Any] = [None] * len(items)
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        for index, result in zip(order, pool.map(work, [items[index] for index in order])):
            results[index] = result
    return results


def _token_int8(weight: Any) -> TokenInt8Linear:
    """The portable path's int8 kind of one smoothed float32 weight."""
    return TokenInt8Linear.of(*int8_rows(weight))


def _smoothed_portable(state: dict[str, Any], config: dict[str, Any], ranges: dict[str, Any],
                       smoothing: Any = None) -> tuple[list[_Layer], Any]:
    """The layers and output layer of :func:`step_weights_from_state` on the portable path with
    activation ranges: each layer's weights smoothed (``agent.activation_ranges.smooth_layer``)
    and packed as int8 rows (:class:`TokenInt8Linear`), except the products ``smoothing.int8``
    leaves out (down), which stay float16. The output layer stays float16 too: rounding its
    input to 8 bits cost 0.003-0.004 nats more on held-out training tunes under AVX2, smoothed
    or not, for about 1 ms of the ~13 ms step (docs/benchmarks.md)."""
    import torch

    from agent.activation_ranges import SmoothingConfig, ranges_fit, smooth_layer

    smoothing = smoothing or SmoothingConfig()
    count, width = int(config["num_hidden_layers"]), int(config["hidden_size"])
    if not ranges_fit(ranges, count, width, int(config["intermediate_size"])):
        raise ValueError("the activation ranges do not fit this model")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    eps = float(config.get("rms_norm_eps", 1e-6))

    def weight(name: str) -> Any:
        return state[f"{name}.weight_fp16"].float()

    def layer(index: int) -> _Layer:
        prefix = f"model.layers.{index}"
        attention, mlp = f"{prefix}.self_attn", f"{prefix}.mlp"
        smoothed = smooth_layer(
            state[f"{prefix}.input_layernorm.weight"],
            torch.cat([weight(f"{attention}.{n}_proj") for n in "qkv"]), weight(f"{attention}.o_proj"),
            state[f"{prefix}.post_attention_layernorm.weight"],
            torch.cat([weight(f"{mlp}.gate_proj"), weight(f"{mlp}.up_proj")]), weight(f"{mlp}.down_proj"),
            ranges, index, heads, kv_heads, smoothing)
        kinds = {name: _token_int8(getattr(smoothed, name)) if name in smoothing.int8
                 else pack_float16(getattr(smoothed, name)) for name in ("qkv", "out", "gate_up", "down")}
        return _Layer(norm_1=smoothed.norm_1, eps_1=eps, norm_2=smoothed.norm_2, eps_2=eps, **kinds)

    # fbgemm's packing releases the GIL: one thread per core
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        head = pool.submit(pack_float16, state["lm_head.weight_fp16"])
        layers = list(pool.map(layer, range(count)))
        return layers, head.result()


def _rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """Llama's RMSNorm, as transformers computes it: in float32, scaled in the model's dtype."""
    import torch

    if x.dtype == torch.float32 and weight.dtype == torch.float32:  # one fused op, same numbers
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _step_rotary(cos: Any, sin: Any, heads: int, kv_heads: int) -> tuple[Any, Any, Any]:
    """Rotary tables for one token's query, key and value rows at once (``heads + 2 *
    kv_heads`` rows of ``head_dim``): ``rows * cos_rows[p] + rows[:, swap] * sin_rows[p]`` is
    :func:`_rotate` of the query and key rows at position ``p`` bit for bit (the sign of
    ``-x[half:] * sin`` moves into the table, which changes no product) and leaves the value
    rows as they are (times 1, plus 0).

    >>> import torch
    >>> cos, sin = RotaryTable(head_dim=4, theta=10000.0)(torch.zeros(1), torch.arange(3)[None])
    >>> cos_rows, sin_rows, swap = _step_rotary(cos[0], sin[0], heads=2, kv_heads=1)
    >>> rows = torch.randn(4, 4)
    >>> turned = rows * cos_rows[2] + rows[:, swap] * sin_rows[2]
    >>> torch.equal(turned[:3], _rotate(rows[:3], cos[0, 2], sin[0, 2])), torch.equal(turned[3], rows[3])
    (True, True)
    >>> _step_rotary(cos[0], sin[0][:, :3], heads=2, kv_heads=1)
    Traceback (most recent call last):
    ...
    ValueError: cos and sin of one shape expected, not (3, 4) and (3, 3)
    """
    import torch

    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin of one shape expected, not {tuple(cos.shape)} and {tuple(sin.shape)}")
    positions, head_dim = cos.shape
    half, rotated = head_dim // 2, heads + kv_heads
    rows_cos = torch.ones(positions, rotated + kv_heads, head_dim, dtype=cos.dtype)
    rows_sin = torch.zeros(positions, rotated + kv_heads, head_dim, dtype=sin.dtype)
    rows_cos[:, :rotated] = cos[:, None]
    rows_sin[:, :rotated] = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)[:, None]
    swap = torch.cat((torch.arange(half, head_dim), torch.arange(half)))
    return rows_cos, rows_sin, swap


def _rotate(x: Any, cos: Any, sin: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class LlamaStepDecoder:
    """A batch-1 Llama forward with a float32 KV cache of its own (one per decoding session;
    the weights, of any of the linear kinds above, are shared)."""

    def __init__(self, weights: LlamaStepWeights, capacity: int = 512) -> None:
        self.weights = weights
        self.length = 0
        self._allocate(max(capacity, 1))

    def _allocate(self, capacity: int) -> None:
        import torch

        w = self.weights
        # keys then values, one tensor per layer: a step writes both in one copy
        cache = torch.empty(len(w.layers), 2 * w.kv_heads, capacity, w.head_dim)
        if self.length:
            cache[:, :, :self.length] = self.cache[:, :, :self.length]
        self.cache, self.capacity = cache, capacity
        self.keys, self.values = cache[:, :w.kv_heads], cache[:, w.kv_heads:]
        self._caches = [(layer, layer_cache, layer_cache[None, :w.kv_heads], layer_cache[None, w.kv_heads:])
                        for layer, layer_cache in zip(w.layers, cache.unbind(0))]  # per-layer views
        positions = torch.arange(capacity)[None]
        probe = torch.zeros(1, 1, w.head_dim, dtype=w.embed.dtype)
        cos, sin = w.rotary(probe, positions)
        self.cos, self.sin = cos[0], sin[0]
        self._rows_cos, self._rows_sin, self._swap = _step_rotary(self.cos, self.sin, w.heads, w.kv_heads)

    def feed(self, ids: Sequence[int], every: bool = False) -> Any:
        import torch

        count = len(ids)
        if count == 0:
            raise ValueError("feed needs at least one token")
        start, end = self.length, self.length + count
        if end > self.capacity:
            self._allocate(max(end, 2 * self.capacity))
        if count == 1 and start > 0:
            logits = self._step(ids[0])
            return logits[None] if every else logits
        w = self.weights
        attend = torch.nn.functional.scaled_dot_product_attention
        q_size, kv_size = w.heads * w.head_dim, w.kv_heads * w.head_dim
        cos, sin = self.cos[start:end], self.sin[start:end]
        mask = None
        if count > 1 and start > 0:  # new tokens see the whole cache and each other causally
            mask = torch.ones(count, end, dtype=torch.bool).tril(start)
        x = w.embed[torch.tensor(list(ids))]
        for index, layer in enumerate(w.layers):
            qkv = layer.qkv(_rms_norm(x, layer.norm_1, layer.eps_1))
            # queries and keys rotated in one go: they are neighbours in the fused product
            rotated = _rotate(qkv[:, :q_size + kv_size].view(count, w.heads + w.kv_heads, w.head_dim)
                              .transpose(0, 1), cos, sin)
            q, k = rotated[:w.heads], rotated[w.heads:]
            v = qkv[:, q_size + kv_size:].view(count, w.kv_heads, w.head_dim).transpose(0, 1)
            self.keys[index, :, start:end] = k
            self.values[index, :, start:end] = v
            attention = attend(q.float()[None], self.keys[index, None, :, :end],
                               self.values[index, None, :, :end], attn_mask=mask,
                               is_causal=count > 1 and start == 0, enable_gqa=True)
            attention = attention[0].transpose(0, 1).reshape(count, q_size).to(x.dtype)
            x = x + layer.out(attention)
            gate_up = layer.gate_up(_rms_norm(x, layer.norm_2, layer.eps_2))
            gate, up = gate_up[:, :w.intermediate], gate_up[:, w.intermediate:]
            x = x + layer.down(torch.nn.functional.silu(gate) * up)
        self.length = end
        logits = w.head(_rms_norm(x if every else x[-1:], w.norm, w.eps)).float()
        return logits if every else logits[0]

    def _step(self, token: int) -> Any:
        """:meth:`feed` of one token after others: the same arithmetic in the same order (the
        logits are equal bit for bit), in about two thirds of the tensor calls per layer. At
        one token the reshapes around the attention are views; the queries, keys and values
        are rotated in one go by tables laid out per row (:func:`_step_rotary`: the values'
        rows pass unchanged), so the keys and values reach the cache in one copy. At batch 1
        on two cores the calls, not the products, were a third of a token's time."""
        import torch

        w = self.weights
        position, end = self.length, self.length + 1
        heads, head_dim, width, intermediate = w.heads, w.head_dim, w.heads * w.head_dim, w.intermediate
        split = (heads, 2 * w.kv_heads)
        cos, sin, swap = self._rows_cos[position], self._rows_sin[position], self._swap
        attend, silu = torch.nn.functional.scaled_dot_product_attention, torch.nn.functional.silu
        floating = w.embed.dtype == torch.float32
        x = w.embed[token:token + 1]
        for layer, cache, keys, values in self._caches:
            rows = layer.qkv(_rms_norm(x, layer.norm_1, layer.eps_1)).view(-1, head_dim)
            query, keys_values = (rows * cos + rows.index_select(1, swap) * sin).split(split)
            cache.select(1, position).copy_(keys_values)
            query = query.view(1, heads, 1, head_dim)
            attention = attend(query if floating else query.float(), keys.narrow(2, 0, end),
                               values.narrow(2, 0, end), enable_gqa=True).view(1, width)
            x = x + layer.out(attention if floating else attention.to(x.dtype))
            gate, up = layer.gate_up(_rms_norm(x, layer.norm_2, layer.eps_2)).split(intermediate, 1)
            x = x + layer.down(silu(gate) * up)
        self.length = end
        return w.head(_rms_norm(x, w.norm, w.eps)).float()[0]

    def rewind(self, length: int) -> None:
        _check_rewind(length, self.length)
        self.length = length  # later feeds overwrite the cache from there


#: the earlier name of :class:`LlamaStepDecoder`
Int8LlamaDecoder = LlamaStepDecoder


def open_decoder(loaded: Any, capacity: int = 512) -> StepDecoder:
    """A fresh decoding session on ``loaded`` (an ``agent.model.LoadedModel``): the ort path's
    graph (``agent.ort_decoder.OrtStepDecoder``), else the compact Llama decoder where the model
    was prepared for it (``loaded.int8_llama``, any other path), else transformers' own.
    ``capacity`` is how many tokens the session expects (the cache grows past it if needed)."""
    weights = getattr(loaded, "int8_llama", None)
    if weights is not None and hasattr(weights, "decoder"):  # the ort path's graph
        return weights.decoder(capacity)
    if weights is not None:
        return LlamaStepDecoder(weights, capacity)
    return TransformersDecoder(loaded.model, getattr(loaded, "device", "cpu"))


def _next_token(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    """The greedy token (``temperature`` 0), else one sampled from the smallest set of tokens
    whose probabilities reach ``top_p``."""
    import torch

    if temperature <= 0:
        return int(logits.argmax())
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    ordered, order = probabilities.sort(descending=True)
    keep = ordered.cumsum(0) - ordered < top_p  # the best token always stays
    ordered = ordered * keep
    return int(order[torch.multinomial(ordered / ordered.sum(), 1, generator=generator)])


def _stop_tokens(loaded: Any) -> set[int]:
    """The tokens ``generate`` stops at: the generation config's end tokens and the tokenizer's."""
    ends = getattr(loaded, "end_token_ids", None)  # known without building the model
    if ends is None:
        config = getattr(getattr(loaded, "model", None), "generation_config", None)
        ends = getattr(config, "eos_token_id", None)
    tokens = set(ends if isinstance(ends, (list, tuple)) else [ends])
    tokens.add(getattr(loaded.tokenizer, "eos_token_id", None))
    return {token for token in tokens if token is not None}


def sample_continuations(loaded: Any, prompt: Sequence[int], *, samples: int = 1, temperature: float = 0.8,
                         top_p: float = 0.95, max_new_tokens: int = 160, seed: int = 0,
                         stop: Sequence[int] | None = None) -> list[list[int]]:
    """``samples`` continuations of ``prompt`` (token ids) through :func:`open_decoder`: the
    prompt is fed once, each sample starts from it again (rewound), and ends at a token of
    ``stop`` (left out; default: the model's end-of-turn tokens, as ``generate`` stops) or after
    ``max_new_tokens``. Temperature 0 is greedy (one sample).
    Seeded by ``seed`` alone: the same call gives the same tokens on the same path. What
    ``generate`` gives with batched sampling, for the compact decoder that runs one sequence.

    >>> sample_continuations(None, [], samples=1)
    Traceback (most recent call last):
    ...
    ValueError: an empty prompt has nothing to continue
    """
    import torch

    if not prompt:
        raise ValueError("an empty prompt has nothing to continue")
    stop = set(_stop_tokens(loaded) if stop is None else stop)
    generator = torch.Generator().manual_seed(seed)
    decoder = open_decoder(loaded, len(prompt) + max_new_tokens)
    rows: list[list[int]] = []
    with torch.inference_mode():
        first = decoder.feed(list(prompt))
        for _ in range(samples if temperature > 0 else 1):
            decoder.rewind(len(prompt))
            logits, row = first, []
            while len(row) < max_new_tokens:
                token = _next_token(logits, temperature, top_p, generator)
                if token in stop:
                    break
                row.append(token)
                logits = decoder.feed([token])
            rows.append(row)
    return rows
