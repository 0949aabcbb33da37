"""The ort CPU path: a whole decoding step of a Llama as one ONNX Runtime graph, 8-bit weights.

Why a second engine: on a CPU without bfloat16 (most laptops: AVX2, no AVX-512) the portable
path's products go through fbgemm's float16 kernel, one torch call per product. ONNX Runtime's
``MatMulNBits`` with 8-bit weights in blocks of 32 and ``accuracy_level`` 4 (activations rounded
to int8 per block of 32 along each row, products in int8) read half the bytes and ran a
SmolLM2-135M step 1.4x faster under AVX2 on the machine measured, and one graph per token (no
Python between the layers) ran it at about 1.2x llama.cpp's Q8_0 (docs/benchmarks.md). The
validation loss stayed within 0.004 nats of float32, unlike round-to-nearest 4-bit (+0.14).

What the graph computes, per layer: RMSNorm (``SimplifiedLayerNormalization``, float32), the
fused q/k/v product, ``com.microsoft.GroupQueryAttention`` (rotary embedding inside, float32,
its KV cache one buffer bound as both past and present, so a step writes in place and a rewind
only moves the length), the output product, RMSNorm with the residual add
(``SkipSimplifiedLayerNormalization``), the fused gate/up product, SiLU times up, the down
product and the residual add; then the final norm and the output layer for the rows asked for.
The embedding is a row lookup in numpy (float32, memory-mapped). Only the 121 products are
quantized; norms, rotary and attention stay float32.

The quantization is written here in numpy (symmetric, one float32 scale per block of 32 inputs,
the zero point MatMulNBits assumes when none is given: 128) rather than with onnxruntime's
quantizer, which imports the undeclared ``onnx_ir`` and builds one node at a time.

The built graph and its weights are kept as ``decoder.onnx`` + ``decoder.onnx.data`` and the
embedding as ``embed.npy`` in a folder (``agent.model`` puts it in the weight cache), so a
second start only creates the session (about 0.2 s for SmolLM2-135M). ``onnx`` is imported only
to build the graph.

>>> quantize_blocks(__import__("numpy").ones((2, 40), "float32"))[0].shape
(2, 2, 32)
>>> quantize_blocks(__import__("numpy").ones(4, "float32"))
Traceback (most recent call last):
...
ValueError: a weight matrix (out x in) expected, not shape (4,)
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "ORT_FILES",
    "OrtConfig",
    "OrtStepDecoder",
    "OrtStepWeights",
    "build_decoder_model",
    "ort_files_ready",
    "quantize_blocks",
    "write_ort_files",
]

#: what a folder of the ort path holds
ORT_FILES = ("decoder.onnx", "decoder.onnx.data", "embed.npy", "shape.json")
#: ``$TUNESMITH_ORT_SPINNING=0`` turns ONNX Runtime's spinning threads off
SPINNING_VARIABLE = "TUNESMITH_ORT_SPINNING"


@dataclass(frozen=True)
class OrtConfig:
    """How the ort path's graph is quantized and run."""

    block_size: int = field(default=32, metadata={"help": "inputs per 8-bit block (one scale each)"})
    accuracy_level: int = field(
        default=4, metadata={"help": "MatMulNBits accuracy_level: 4 computes in int8 (fast); 0 "
                                     "dequantizes the weights at every run (about 30x slower)"})
    spinning: bool = field(
        default=True, metadata={"help": "ONNX Runtime's worker threads spin between runs; on 2 "
                                        "busy cores off lost most of the speed-up (docs/benchmarks.md)"})
    max_positions: int = field(default=8192, metadata={"help": "most tokens a session can hold"})


def quantize_blocks(weight: Any, block_size: int = 32) -> tuple[Any, Any]:
    """MatMulNBits' 8-bit form of a float32 ``weight`` (out x in): codes ``(out, blocks,
    block_size)`` as uint8 around 128, and one scale per block ``(out * blocks,)``, symmetric:
    the largest magnitude of a block maps to 127. Inputs past the last full block are padded
    with zeros.

    >>> import numpy as np
    >>> codes, scales = quantize_blocks(np.array([[0.5, -1.0] + [0.0] * 30], np.float32))
    >>> codes[0, 0, :3].tolist(), round(float(scales[0]) * 127, 6)
    ([192, 1, 128], 1.0)
    """
    import numpy as np

    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim != 2:
        raise ValueError(f"a weight matrix (out x in) expected, not shape {weight.shape}")
    rows, inputs = weight.shape
    blocks = -(-inputs // block_size)
    padded = np.zeros((rows, blocks * block_size), np.float32)
    padded[:, :inputs] = weight
    padded = padded.reshape(rows, blocks, block_size)
    scales = np.abs(padded).max(axis=2) / 127.0
    scales[scales == 0] = 1.0  # an all-zero block: any scale gives zeros
    codes = np.clip(np.rint(padded / scales[..., None]), -127, 127).astype(np.int16) + 128
    return codes.astype(np.uint8), scales.astype(np.float32).reshape(-1)


def _shape(config: dict[str, Any], body_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """The numbers of a Llama ``config.json`` the graph needs (and the body's tokens, where its
    output layer has a body part)."""
    heads = int(config["num_attention_heads"])
    body = {} if body_ids is None else {"body_ids": [int(i) for i in body_ids]}
    return body | {
        "hidden": int(config["hidden_size"]), "intermediate": int(config["intermediate_size"]),
        "layers": int(config["num_hidden_layers"]), "heads": heads,
        "kv_heads": int(config.get("num_key_value_heads") or heads),
        "head_dim": int(config.get("head_dim") or int(config["hidden_size"]) // heads),
        "eps": float(config.get("rms_norm_eps", 1e-6)), "vocab": int(config["vocab_size"]),
    }


def _rotary_tables(head_dim: int, theta: float, positions: int) -> tuple[Any, Any]:
    """cos and sin of every position, half a head wide (what GroupQueryAttention reads), in
    float32 as ``agent.step_decoder.RotaryTable`` computes them."""
    import numpy as np

    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    inverse = (np.float32(1.0) / (np.float32(theta) ** exponents)).astype(np.float32)
    angles = np.arange(positions, dtype=np.float32)[:, None] * inverse[None]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def build_decoder_model(state: dict[str, Any], config: dict[str, Any],
                        ort_config: OrtConfig | None = None,
                        body_ids: Sequence[int] | None = None) -> Any:
    """The decoder graph (an ``onnx.ModelProto``) of a Llama's merged float32 weights ``state``
    (transformers' names; torch tensors or arrays) and its ``config.json``.

    Inputs: ``x`` (1, S, hidden) embedded tokens, ``seqlens_k`` (1,) = cached + S - 1,
    ``total_len`` = cached + S, ``rows`` (R,) the rows whose logits to give, and per layer
    ``past_k{i}``/``past_v{i}`` (1, kv_heads, capacity, head_dim), the caches, bound again as
    ``present_k{i}``/``present_v{i}``. Output ``logits`` (1, R, vocab).

    With ``body_ids`` (the tokens a tune body is written in, ``agent.sampler.body_vocabulary``)
    the output layer is an ``If`` on a further input ``whole`` (a bool): true gives the whole
    vocabulary's logits, false only those of ``body_ids``, in their order (the same rows of the
    same 8-bit output layer, so the same numbers). The composer asks for the body's: its rows
    are about 1.5% of the vocabulary, and the whole output layer was about a tenth of a step.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from agent.step_decoder import _rope_theta, config_fits

    if not config_fits(config):
        raise ValueError(f"the ort path cannot run this model ({config.get('model_type')})")
    ort_config = ort_config or OrtConfig()
    s = _shape(config)
    hidden, inter, heads = s["hidden"], s["intermediate"], s["heads"]
    kv_heads, head_dim = s["kv_heads"], s["head_dim"]

    def array(name: str) -> Any:
        tensor = state[name]
        return (tensor.float().numpy() if hasattr(tensor, "numpy") else np.asarray(tensor, np.float32))

    initializers, nodes = [], []

    def product(source: str, target: str, names: list[str], rows: Sequence[int] | None = None,
                into: list | None = None) -> None:
        weight = np.concatenate([array(f"{name}.weight" if name != "lm_head" else _head_name(state))
                                 for name in names])
        if rows is not None:
            weight = weight[np.asarray(rows, np.int64)]
        codes, scales = quantize_blocks(weight, ort_config.block_size)
        initializers.extend([numpy_helper.from_array(codes, f"{target}_B"),
                             numpy_helper.from_array(scales, f"{target}_scales")])
        (nodes if into is None else into).append(helper.make_node(
            "MatMulNBits", [source, f"{target}_B", f"{target}_scales"], [target], domain="com.microsoft",
            K=weight.shape[1], N=weight.shape[0], bits=8, block_size=ort_config.block_size,
            accuracy_level=ort_config.accuracy_level))

    cos, sin = _rotary_tables(head_dim, _rope_theta(config), ort_config.max_positions)
    initializers += [numpy_helper.from_array(cos, "cos"), numpy_helper.from_array(sin, "sin"),
                     numpy_helper.from_array(np.array([heads * head_dim, kv_heads * head_dim,
                                                       kv_heads * head_dim], np.int64), "split_qkv"),
                     numpy_helper.from_array(np.array([inter, inter], np.int64), "split_gu")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "S", hidden]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
              helper.make_tensor_value_info("total_len", TensorProto.INT32, []),
              helper.make_tensor_value_info("rows", TensorProto.INT64, ["R"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                             [1, "R", s["vocab"] if body_ids is None else "V"])]
    x = "x"
    for index in range(s["layers"]):
        prefix, i = f"model.layers.{index}", index
        attention, mlp = f"{prefix}.self_attn", f"{prefix}.mlp"
        initializers += [
            numpy_helper.from_array(array(f"{prefix}.input_layernorm.weight"), f"norm1_{i}"),
            numpy_helper.from_array(array(f"{prefix}.post_attention_layernorm.weight"), f"norm2_{i}")]
        for kv in ("k", "v"):
            inputs.append(helper.make_tensor_value_info(f"past_{kv}{i}", TensorProto.FLOAT,
                                                        [1, kv_heads, "capacity", head_dim]))
            outputs.append(helper.make_tensor_value_info(f"present_{kv}{i}", TensorProto.FLOAT,
                                                         [1, kv_heads, "capacity", head_dim]))
        nodes.append(helper.make_node("SimplifiedLayerNormalization", [x, f"norm1_{i}"], [f"n1_{i}"],
                                      axis=-1, epsilon=s["eps"]))
        product(f"n1_{i}", f"qkv{i}", [f"{attention}.{p}_proj" for p in "qkv"])
        nodes += [
            helper.make_node("Split", [f"qkv{i}", "split_qkv"], [f"q{i}", f"k{i}", f"v{i}"], axis=-1),
            helper.make_node("GroupQueryAttention", [f"q{i}", f"k{i}", f"v{i}", f"past_k{i}", f"past_v{i}",
                                                     "seqlens_k", "total_len", "cos", "sin"],
                             [f"att{i}", f"present_k{i}", f"present_v{i}"], domain="com.microsoft",
                             num_heads=heads, kv_num_heads=kv_heads, do_rotary=1, scale=head_dim ** -0.5)]
        product(f"att{i}", f"o{i}", [f"{attention}.o_proj"])
        nodes.append(helper.make_node("SkipSimplifiedLayerNormalization", [f"o{i}", x, f"norm2_{i}"],
                                      [f"n2_{i}", "", "", f"r{i}"], domain="com.microsoft", epsilon=s["eps"]))
        product(f"n2_{i}", f"gu{i}", [f"{mlp}.gate_proj", f"{mlp}.up_proj"])
        nodes += [helper.make_node("Split", [f"gu{i}", "split_gu"], [f"g{i}", f"u{i}"], axis=-1),
                  helper.make_node("Sigmoid", [f"g{i}"], [f"sg{i}"]),
                  helper.make_node("Mul", [f"g{i}", f"sg{i}"], [f"silu{i}"]),
                  helper.make_node("Mul", [f"silu{i}", f"u{i}"], [f"h{i}"])]
        product(f"h{i}", f"d{i}", [f"{mlp}.down_proj"])
        nodes.append(helper.make_node("Add", [f"r{i}", f"d{i}"], [f"x{i + 1}"]))
        x = f"x{i + 1}"
    initializers.append(numpy_helper.from_array(array("model.norm.weight"), "norm_final"))
    nodes += [helper.make_node("Gather", [x, "rows"], ["picked"], axis=1),
              helper.make_node("SimplifiedLayerNormalization", ["picked", "norm_final"], ["normed"],
                               axis=-1, epsilon=s["eps"])]
    if body_ids is None:
        product("normed", "logits", ["lm_head"])
    else:  # one output layer or the other, chosen per run (an unbound output is still computed)
        inputs.append(helper.make_tensor_value_info("whole", TensorProto.BOOL, []))
        branches = {}
        for name, rows in (("whole", None), ("body", body_ids)):
            branch: list = []
            product("normed", f"logits_{name}", ["lm_head"], rows, branch)
            branches[name] = helper.make_graph(branch, f"head_{name}", [], [
                helper.make_tensor_value_info(f"logits_{name}", TensorProto.FLOAT, None)])
        nodes.append(helper.make_node("If", ["whole"], ["logits"], then_branch=branches["whole"],
                                      else_branch=branches["body"]))
    graph = helper.make_graph(nodes, "llama_step", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _head_name(state: dict[str, Any]) -> str:
    """The output layer's weight: its own, or the embedding where the two are tied."""
    return "lm_head.weight" if "lm_head.weight" in state else "model.embed_tokens.weight"


def ort_files_ready(folder: str | Path) -> bool:
    """Whether ``folder`` holds a built decoder (:func:`write_ort_files`).

    >>> ort_files_ready("/nonexistent")
    False
    """
    return all((Path(folder) / name).is_file() for name in ORT_FILES)


def write_ort_files(state: dict[str, Any], config: dict[str, Any], folder: str | Path,
                    ort_config: OrtConfig | None = None,
                    body_ids: Sequence[int] | None = None) -> Path:
    """Build the decoder of ``state`` and keep it in ``folder`` (the graph with its weights in
    one external file, the float32 embedding as ``embed.npy``), written under a temporary name
    and renamed when complete; returns ``folder``. Another process finishing first wins."""
    import json

    import numpy as np
    import onnx

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        model = build_decoder_model(state, config, ort_config, body_ids)
        onnx.save_model(model, str(scratch / "decoder.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="decoder.onnx.data")
        embed = state["model.embed_tokens.weight"]
        np.save(scratch / "embed.npy", embed.float().numpy() if hasattr(embed, "numpy") else
                np.asarray(embed, np.float32))
        (scratch / "shape.json").write_text(json.dumps(_shape(config, body_ids)), encoding="utf-8")
        try:
            os.rename(scratch, folder)
        except OSError:
            if not ort_files_ready(folder):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


@dataclass(frozen=True)
class OrtStepWeights:
    """A loaded decoder graph (one ONNX Runtime session, shared by every decoding session of a
    model; ``run_with_iobinding`` is safe from one thread at a time per binding) and the
    embedding it reads."""

    session: Any
    embed: Any  # (vocab, hidden) float32, memory-mapped
    shape: dict[str, Any]
    max_positions: int

    @property
    def body_ids(self) -> tuple[int, ...] | None:
        """The tokens whose logits ``feed(..., body=True)`` gives, in that order; None where
        the graph has only the whole output layer."""
        ids = self.shape.get("body_ids")
        return None if ids is None else tuple(ids)

    @classmethod
    def open(cls, folder: str | Path, threads: int, ort_config: OrtConfig | None = None) -> "OrtStepWeights":
        """The decoder kept in ``folder``, run on ``threads`` threads."""
        import json

        import numpy as np

        folder = Path(folder)
        ort_config = ort_config or OrtConfig()
        session = _session(str(folder / "decoder.onnx"), threads, ort_config)
        return cls(session, np.load(folder / "embed.npy", mmap_mode="r"),
                   json.loads((folder / "shape.json").read_text(encoding="utf-8")), ort_config.max_positions)

    @classmethod
    def build(cls, state: dict[str, Any], config: dict[str, Any], threads: int,
              ort_config: OrtConfig | None = None,
              body_ids: Sequence[int] | None = None) -> "OrtStepWeights":
        """The decoder of ``state`` built in memory, kept nowhere (a base with no weight cache)."""
        import numpy as np

        ort_config = ort_config or OrtConfig()
        model = build_decoder_model(state, config, ort_config, body_ids)
        embed = state["model.embed_tokens.weight"]
        embed = embed.float().numpy() if hasattr(embed, "numpy") else np.asarray(embed, np.float32)
        return cls(_session(model.SerializeToString(), threads, ort_config), embed,
                   _shape(config, body_ids), ort_config.max_positions)

    def decoder(self, capacity: int = 512) -> "OrtStepDecoder":
        """A fresh decoding session (what ``agent.step_decoder.open_decoder`` returns)."""
        return OrtStepDecoder(self, capacity)


def _session(model: Any, threads: int, ort_config: OrtConfig) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spinning = ort_config.spinning and os.environ.get(SPINNING_VARIABLE, "1").strip() != "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # warnings about unused initializers are not the user's
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OrtStepDecoder:
    """One decoding session on an :class:`OrtStepWeights`: its KV cache (float32, one buffer
    per layer for keys and one for values, written in place by the graph), ``length`` tokens
    cached. The same contract as ``agent.step_decoder.LlamaStepDecoder``: ``feed`` returns a
    float32 torch tensor of logits."""

    def __init__(self, weights: OrtStepWeights, capacity: int = 512) -> None:
        self.weights = weights
        self.length = 0
        self.capacity = 0
        self._caches: list[Any] = []
        self._binding = weights.session.io_binding()
        self._allocate(max(capacity, 1))

    def _allocate(self, capacity: int) -> None:
        import numpy as np
        import onnxruntime as ort

        if capacity > self.weights.max_positions:
            raise ValueError(f"the ort decoder holds at most {self.weights.max_positions} tokens, "
                             f"not {capacity}")
        s = self.weights.shape
        caches = []
        for index in range(s["layers"]):
            for kv in range(2):
                buffer = np.zeros((1, s["kv_heads"], capacity, s["head_dim"]), np.float32)
                if self.length:
                    buffer[:, :, :self.length] = self._caches[2 * index + kv].numpy()[:, :, :self.length]
                caches.append(ort.OrtValue.ortvalue_from_numpy(buffer))
        self._caches, self.capacity = caches, capacity
        for index in range(s["layers"]):
            for kv, name in enumerate("kv"):
                value = caches[2 * index + kv]
                self._binding.bind_ortvalue_input(f"past_{name}{index}", value)
                self._binding.bind_ortvalue_output(f"present_{name}{index}", value)

    @property
    def body_ids(self) -> tuple[int, ...] | None:
        """What ``feed(..., body=True)`` gives the logits of (see :class:`OrtStepWeights`)."""
        return self.weights.body_ids

    def feed(self, ids: Sequence[int], every: bool = False, body: bool = False) -> Any:
        """Run ``ids`` (after the cached tokens) and return the logits after the last of them,
        or after each with ``every``: over the whole vocabulary, or with ``body`` over
        :attr:`body_ids` only (in their order)."""
        import numpy as np
        import onnxruntime as ort
        import torch

        count = len(ids)
        if count == 0:
            raise ValueError("feed needs at least one token")
        body_ids = self.weights.body_ids
        if body and body_ids is None:
            raise ValueError("this decoder's graph has no body output layer")
        end = self.length + count
        if end > self.capacity:
            self._allocate(min(max(end, 2 * self.capacity), max(end, self.weights.max_positions)))
        binding = self._binding
        binding.bind_cpu_input("x", np.ascontiguousarray(self.weights.embed[np.asarray(ids, np.int64)])[None])
        binding.bind_cpu_input("seqlens_k", np.array([end - 1], np.int32))
        binding.bind_cpu_input("total_len", np.array(end, np.int32))
        rows = np.arange(count, dtype=np.int64) if every else np.array([count - 1], np.int64)
        binding.bind_cpu_input("rows", rows)
        if body_ids is not None:
            binding.bind_cpu_input("whole", np.array(not body))
        width = len(body_ids) if body else self.weights.shape["vocab"]
        logits = np.empty((1, len(rows), width), np.float32)
        binding.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(logits))
        self.weights.session.run_with_iobinding(binding)
        self.length = end
        logits = torch.from_numpy(logits[0])  # the graph wrote into this array
        return logits if every else logits[0]

    def rewind(self, length: int) -> None:
        from agent.step_decoder import _check_rewind

        _check_rewind(length, self.length)
        self.length = length  # later feeds overwrite the cache from there
