"""Decoding one token at a time: feed token ids, get the logits of the next one, keep the cache.

The composer's loop checks every token with its automaton, so it drives the model itself, one
token per call. Two decoders offer that one operation, :meth:`StepDecoder.feed`:

- :class:`TransformersDecoder` runs any causal language model transformers loads, through its own
  KV cache (``past_key_values``). It is used for every base, dtype and device.
- :class:`Int8LlamaDecoder` runs a Llama-architecture model (SmolLM2, the default base) whose
  linear layers carry int8 weights (``ModelConfig(quantize="int8-weight")``, the default on a CPU
  that computes in bfloat16), at batch 1, on the CPU.

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

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

__all__ = [
    "DECODER_CHOICES",
    "Int8LlamaDecoder",
    "Int8LlamaWeights",
    "StepDecoder",
    "TransformersDecoder",
    "int8_llama_weights",
    "open_decoder",
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
class _Layer:
    norm_1: Any
    eps_1: float
    qkv: tuple[Any, Any]  # int8 weight rows (q, k, v stacked) and their bfloat16 scales
    out: tuple[Any, Any]
    norm_2: Any
    eps_2: float
    gate_up: tuple[Any, Any]
    down: tuple[Any, Any]


@dataclass(frozen=True)
class Int8LlamaWeights:
    """The tensors :class:`Int8LlamaDecoder` reads, shared by every decoding session of a
    loaded model (never written to)."""

    layers: tuple[_Layer, ...]
    embed: Any
    norm: Any
    eps: float
    head: tuple[Any, Any]
    rotary: Any  # the model's rotary embedding module: cos and sin for any positions
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int


def _fuse(*layers: Any) -> tuple[Any, Any]:
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
    return weight, scales


def int8_llama_weights(model: Any) -> Int8LlamaWeights | None:
    """The weights of ``model`` for :class:`Int8LlamaDecoder`, or None where it does not fit:
    not a Llama architecture, biases in attention or MLP, another activation than SiLU, or any
    linear layer without int8 weights (see ``agent.model``'s ``int8-weight``)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return None
    if (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)
            or getattr(config, "hidden_act", "silu") != "silu"
            or getattr(config, "pretraining_tp", 1) != 1):
        return None
    inner = model.model
    linears = [model.lm_head] + [
        module for layer in inner.layers
        for module in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                       layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj,
                       layer.mlp.down_proj)]
    if not all(hasattr(m, "weight_int8") and getattr(m, "bias", None) is None for m in linears):
        return None
    layers = []
    for layer in inner.layers:
        attention, mlp = layer.self_attn, layer.mlp
        layers.append(_Layer(
            norm_1=layer.input_layernorm.weight, eps_1=layer.input_layernorm.variance_epsilon,
            qkv=_fuse(attention.q_proj, attention.k_proj, attention.v_proj),
            out=(attention.o_proj.weight_int8, attention.o_proj.scales),
            norm_2=layer.post_attention_layernorm.weight,
            eps_2=layer.post_attention_layernorm.variance_epsilon,
            gate_up=_fuse(mlp.gate_proj, mlp.up_proj),
            down=(mlp.down_proj.weight_int8, mlp.down_proj.scales)))
    heads = config.num_attention_heads
    return Int8LlamaWeights(
        layers=tuple(layers), embed=inner.embed_tokens.weight, norm=inner.norm.weight,
        eps=inner.norm.variance_epsilon, head=(model.lm_head.weight_int8, model.lm_head.scales),
        rotary=inner.rotary_emb, heads=heads, kv_heads=config.num_key_value_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        intermediate=config.intermediate_size)


def _rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """Llama's RMSNorm, as transformers computes it: in float32, scaled in the model's dtype."""
    import torch

    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate(x: Any, cos: Any, sin: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Int8LlamaDecoder:
    """A batch-1 Llama forward on int8 weights with a float32 KV cache of its own
    (one per decoding session; the weights are shared)."""

    def __init__(self, weights: Int8LlamaWeights, capacity: int = 512) -> None:
        self.weights = weights
        self.length = 0
        self._allocate(max(capacity, 1))

    def _allocate(self, capacity: int) -> None:
        import torch

        w = self.weights
        shape = (len(w.layers), w.kv_heads, capacity, w.head_dim)
        keys, values = torch.empty(shape), torch.empty(shape)
        if self.length:
            keys[:, :, :self.length] = self.keys[:, :, :self.length]
            values[:, :, :self.length] = self.values[:, :, :self.length]
        self.keys, self.values, self.capacity = keys, values, capacity
        positions = torch.arange(capacity)[None]
        probe = torch.zeros(1, 1, w.head_dim, dtype=w.embed.dtype)
        cos, sin = w.rotary(probe, positions)
        self.cos, self.sin = cos[0], sin[0]

    def feed(self, ids: Sequence[int], every: bool = False) -> Any:
        import torch

        count = len(ids)
        if count == 0:
            raise ValueError("feed needs at least one token")
        start, end = self.length, self.length + count
        if end > self.capacity:
            self._allocate(max(end, 2 * self.capacity))
        w = self.weights
        matmul = torch._weight_int8pack_mm
        attend = torch.nn.functional.scaled_dot_product_attention
        q_size, kv_size = w.heads * w.head_dim, w.kv_heads * w.head_dim
        cos, sin = self.cos[start:end], self.sin[start:end]
        mask = None
        if count > 1 and start > 0:  # new tokens see the whole cache and each other causally
            mask = torch.ones(count, end, dtype=torch.bool).tril(start)
        x = w.embed[torch.tensor(list(ids))]
        for index, layer in enumerate(w.layers):
            qkv = matmul(_rms_norm(x, layer.norm_1, layer.eps_1), *layer.qkv)
            q = _rotate(qkv[:, :q_size].view(count, w.heads, w.head_dim).transpose(0, 1), cos, sin)
            k = _rotate(qkv[:, q_size:q_size + kv_size].view(count, w.kv_heads, w.head_dim)
                        .transpose(0, 1), cos, sin)
            v = qkv[:, q_size + kv_size:].view(count, w.kv_heads, w.head_dim).transpose(0, 1)
            self.keys[index, :, start:end] = k
            self.values[index, :, start:end] = v
            attention = attend(q.float()[None], self.keys[index, None, :, :end],
                               self.values[index, None, :, :end], attn_mask=mask,
                               is_causal=count > 1 and start == 0, enable_gqa=True)
            attention = attention[0].transpose(0, 1).reshape(count, q_size).to(x.dtype)
            x = x + matmul(attention, *layer.out)
            gate_up = matmul(_rms_norm(x, layer.norm_2, layer.eps_2), *layer.gate_up)
            gate, up = gate_up[:, :w.intermediate], gate_up[:, w.intermediate:]
            x = x + matmul(torch.nn.functional.silu(gate) * up, *layer.down)
        self.length = end
        logits = matmul(_rms_norm(x if every else x[-1:], w.norm, w.eps), *w.head).float()
        return logits if every else logits[0]

    def rewind(self, length: int) -> None:
        _check_rewind(length, self.length)
        self.length = length  # later feeds overwrite the cache from there


def open_decoder(loaded: Any, capacity: int = 512) -> StepDecoder:
    """A fresh decoding session on ``loaded`` (an ``agent.model.LoadedModel``): the int8 Llama
    decoder where the model was prepared for it, else transformers' own. ``capacity`` is how
    many tokens the session expects (the cache grows past it if needed)."""
    weights = getattr(loaded, "int8_llama", None)
    if weights is not None:
        return Int8LlamaDecoder(weights, capacity)
    return TransformersDecoder(loaded.model, getattr(loaded, "device", "cpu"))
