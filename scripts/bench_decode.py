"""Decode speed, load time and quality of each way of running the model, in one run.

    .venv/bin/python scripts/bench_decode.py [--base smollm2-135m] [--adapter DIR|none]
                                             [--tokens 200] [--runs 3] [--examples 30]
                                             [--variants float32-peft,float32,...]
                                             [--isa native,avx2]

CPU paths (``agent.model``'s ``cpu_path``): ``bf16-path`` (int8 weights, bfloat16 activations),
``portable`` (float16 weights, float32 activations, fbgemm's float16 kernel;
``portable-int8``: its smoothed int8 products, ``ModelConfig.smoothed_int8``) and
``float32-path`` (the merged float32 model), each through the compact decoder of
``agent.step_decoder``; ``int8-dynamic-step`` is the compact decoder with fbgemm's dynamic int8
kernel (int8 rows, activations rounded to 8 bits), the fastest kind on AVX2, measured for its
loss; ``ort`` is the ort path (``agent.ort_decoder``: one ONNX Runtime graph per token, 8-bit
weights in blocks of 32, int8 products). ONNX Runtime picks its kernels from the CPU itself:
the AVX2 environment below does not reach it, so an AVX2 measurement of ``ort`` on an AVX-512
machine needs the CPU's AVX-512 hidden from the process (docs/benchmarks.md says how). ``--isa`` runs the variants once per instruction set, each in a process
of its own: ``native`` as the CPU is, ``avx2`` with torch's kernels forced down to AVX2
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, ``FBGEMM_ENABLE_INSTRUCTIONS=AVX2``),
which is what a laptop without AVX-512 runs; the table says which ISA each row had, as torch reports it. The variants of
``--avx2-variants`` run under avx2 (bf16 needs AVX-512 BF16 and is left out there).

Each variant loads the model its own way (adapter kept as LoRA layers or merged into the base;
float32, bfloat16, int8 weights with bfloat16 inputs run by the int8 Llama decoder of
``agent.step_decoder`` or by transformers, int8 dynamic quantization; with or without the KV
cache) and is timed on the same greedy decode through the decoder the composer uses: ``--tokens``
new tokens after a compose request with its ABC header prefilled, median of ``--runs``. Quality is
the loss (nats per target token, teacher-forced through the same decoder) on the first
``--examples`` compose examples of ``data/build/valid.jsonl``
(the tunes the adapter was validated on), and how many greedy tokens match float32's before the
first difference.

The composer does not decode through ``generate``: its own loop (``agent.compose.decode_body``)
checks every token with the bar-length automaton and samples. For the variants in
``--composer-variants`` that loop is timed too: ``--runs`` 16-bar waltzes with the grammar on
(seeds 0, 1, ...), new tokens per second of the loop, prompt included, validation excluded.

As a yardstick, when ``llama_cpp`` (llama-cpp-python, built from its sdist) is importable, the
same prompt is decoded by llama.cpp on the base's own Q4_1 GGUF (the bare base: llama.cpp does
not run the adapter here). Prints a Markdown table; the load average is recorded with it.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.conversation import resolve_adapter  # noqa: E402
from agent.model import OFFLINE_BASES, ModelConfig, cpu_cores, load_model  # noqa: E402
from agent.prompts import abc_header, chat_prompt_ids, compose_messages, training_ids  # noqa: E402
from agent.step_decoder import open_decoder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: name -> (ModelConfig overrides, use the KV cache)
VARIANTS = {
    "float32-peft": ({"dtype": "float32"}, True),
    "float32": ({"dtype": "float32", "merge_adapter": True}, True),
    "float32-no-cache": ({"dtype": "float32", "merge_adapter": True}, False),
    "bfloat16": ({"dtype": "bfloat16"}, True),
    "int8-weight": ({"quantize": "int8-weight"}, True),
    "int8-weight-transformers": ({"quantize": "int8-weight", "decoder": "transformers"}, True),
    "int8-dynamic": ({"quantize": "int8-dynamic"}, True),
    "bf16-path": ({"cpu_path": "bf16"}, True),
    "portable": ({"cpu_path": "portable"}, True),
    "portable-int8": ({"cpu_path": "portable", "smoothed_int8": True}, True),
    "float32-path": ({"cpu_path": "float32"}, True),
    "int8-dynamic-step": ({"cpu_path": "float32"}, True),
    "ort": ({"cpu_path": "ort"}, True),
}
#: variants whose compact decoder runs another kind of linear than their path's
STEP_KINDS = {"int8-dynamic-step": "int8-dynamic"}
#: the environment that forces torch's kernels down to AVX2: torch's dispatch, oneDNN, and
#: fbgemm (the portable path's kernels), which picks its instructions by itself otherwise
AVX2_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}


def load_variant(name: str, **settings):
    """The model of variant ``name`` (``settings``: the rest of its ModelConfig)."""
    import dataclasses

    from agent.step_decoder import float_llama_weights

    overrides, _ = VARIANTS[name]
    loaded = load_model(ModelConfig(**settings, **overrides))
    if name in STEP_KINDS:
        started = time.perf_counter()
        weights = float_llama_weights(loaded.model, STEP_KINDS[name])
        loaded = dataclasses.replace(loaded, int8_llama=weights, quantize=STEP_KINDS[name],
                                     load_seconds=loaded.load_seconds + time.perf_counter() - started)
    return loaded


def validation_examples(count: int) -> list[dict]:
    path = REPO / "data" / "build" / "valid.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: build the data first (tunesmith finetune data)")
    examples = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [e for e in examples if e["task"] == "compose"][:count]


def loss(loaded, examples: list[dict]) -> float:
    """Mean cross-entropy per target token of the examples' bodies, given request and header."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    for example in examples:
        ids, labels = training_ids(loaded.tokenizer, example["messages"], example["prefill"])
        with torch.inference_mode():
            logits = open_decoder(loaded, len(ids)).feed(ids, every=True)[:-1]
        targets = torch.tensor(labels[1:])
        total += float(F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum"))
        count += int((targets != -100).sum())
    return total / count


def decode(loaded, prompt: list[int], tokens: int, use_cache: bool,
           with_prompt: bool = True) -> tuple[float, list[int]]:
    """Wall seconds for ``tokens`` greedy new tokens, and the tokens: through the decoder the
    composer uses (``agent.step_decoder``), or ``generate`` without a KV cache. The time
    includes feeding the prompt unless ``with_prompt`` is False (the decoder only), which is
    how llama.cpp's ``llama-bench`` counts its generation rate."""
    import torch

    ids = torch.tensor([prompt])
    started = time.perf_counter()
    if use_cache:
        new: list[int] = []
        with torch.inference_mode():
            decoder = open_decoder(loaded, len(prompt) + tokens)
            logits = decoder.feed(prompt)
            if not with_prompt:
                started = time.perf_counter()
            while len(new) < tokens:
                new.append(int(logits.argmax()))
                logits = decoder.feed(new[-1:])
        return time.perf_counter() - started, new
    with torch.inference_mode():
        out = loaded.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
            do_sample=False, use_cache=use_cache, pad_token_id=loaded.tokenizer.pad_token_id,
        )
    return time.perf_counter() - started, out[0, len(prompt):].tolist()


def composer_rate(loaded, header: str, runs: int) -> tuple[float, float]:
    """Tokens/s of the composer's own decoding loop (grammar and sampling included) over
    ``runs`` 16-bar tunes, and the share of that time spent outside the model."""
    from agent.compose import ComposeConfig, compose_tune

    tokens = model_seconds = other_seconds = 0.0
    for seed in range(runs):
        stats = compose_tune(loaded, "a sad waltz in D minor", header, 16, ComposeConfig(seed=seed)).stats
        tokens += stats.tokens
        model_seconds += stats.forward_seconds
        other_seconds += stats.constraint_seconds
    return tokens / (model_seconds + other_seconds), other_seconds / (model_seconds + other_seconds)


def grammar_rate(loaded, header: str, prompt: list[int], with_prompt: bool) -> float:
    """Tokens/s of the composer's loop (grammar, bar checks and sampling included, as
    :func:`composer_rate` times it) on one 16-bar waltz, seed 0, whose prompt is ``prompt``;
    without ``with_prompt`` the prompt's feed, timed on a fresh decoder just before, is taken
    out (llama-bench's generation rate leaves its prompt out too; a repair's prompts count
    in proportion to their tokens)."""
    import torch

    from agent.compose import ComposeConfig, compose_tune

    prompt_seconds = 0.0
    if not with_prompt:
        with torch.inference_mode():
            started = time.perf_counter()
            open_decoder(loaded, len(prompt)).feed(prompt)
            prompt_seconds = time.perf_counter() - started
    stats = compose_tune(loaded, "a sad waltz in D minor", header, 16, ComposeConfig(seed=0)).stats
    prompt_seconds *= stats.prompt_tokens / len(prompt)
    return stats.tokens / (stats.forward_seconds + stats.constraint_seconds - prompt_seconds)


def llama_cpp_rate(base: str, prompt: list[int], tokens: int, runs: int, threads: int) -> float | None:
    """Tokens/s of llama.cpp decoding greedily from ``prompt`` on the base's GGUF, or None."""
    if importlib.util.find_spec("llama_cpp") is None or base not in OFFLINE_BASES:
        return None
    from llama_cpp import Llama

    from agent.model import _gguf_path

    with tempfile.TemporaryDirectory() as scratch:
        gguf = _gguf_path(OFFLINE_BASES[base], Path(scratch))
        llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, verbose=False)
        times = []
        for _ in range(runs):
            llm.reset()
            started = time.perf_counter()
            generated = 0
            for _token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
                generated += 1
                if generated == tokens:
                    break
            times.append(time.perf_counter() - started)
    return tokens / statistics.median(times)


def _same(reference: list[int] | None, out: list[int]) -> int | None:
    """How many greedy tokens equal the reference's before the first difference."""
    if reference is None:
        return None
    return next((i for i, (a, b) in enumerate(zip(reference, out)) if a != b), len(out))


def run_isas(args, argv: list[str]) -> int:
    """Every variant under each of ``--isa``, each ISA in a child process (the kernels are
    chosen when torch loads), then llama.cpp on the same prompt: one table."""
    import subprocess

    base_argv = []
    skip = False
    for item in argv:  # this run's arguments without --isa and its value
        if skip:
            skip = False
            continue
        if item == "--isa":
            skip = True
            continue
        if not item.startswith("--isa="):
            base_argv.append(item)
    records = []
    for isa in args.isa.split(","):
        environment = dict(os.environ)
        extra = []
        if isa == "avx2":
            environment.update(AVX2_ENVIRONMENT)
            extra = ["--variants", args.avx2_variants,
                     "--composer-variants", ",".join(v for v in args.composer_variants.split(",")
                                                     if v in args.avx2_variants.split(","))]
        elif isa != "native":
            raise SystemExit(f"--isa takes native and avx2, not {isa!r}")
        print(f"running the variants with ISA {isa} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, *base_argv, *extra, "--json"], env=environment,
                              stdout=subprocess.PIPE, check=True, text=True)
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    threads = records[0]["threads"]
    yardstick = llama_cpp_rate(args.base, records[0]["prompt"], args.tokens, args.runs, threads)
    loads = ", ".join(f"{record['isa']} {record['load']:.1f}" for record in records)
    print(f"\nbase {args.base}, {threads} threads, {args.tokens} greedy tokens, median of {args.runs} "
          f"runs, loss on {records[0]['examples']} validation tunes, load average at the end of each "
          f"ISA's run: {loads}")
    print("\n| variant | torch's kernels | dtype | quantize | load s | decode tok/s | × llama.cpp "
          "| loss (nats/token) | greedy tokens equal to float32's (same ISA) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for record in records:
        for name, dtype, quantize, load_seconds, rate, value in record["rows"]:
            ratio = f"{rate / yardstick:.2f}" if yardstick else "–"
            same = record["same"].get(name)
            print(f"| {name} | {record['isa']} | {dtype} | {quantize} | {load_seconds:.2f} | {rate:.1f} "
                  f"| {ratio} | {value:.4f} | {'–' if same is None else same} |")
    if yardstick is not None:
        print(f"| llama.cpp (bare base, Q4_1 GGUF, {_llama_build()}) | its own | – | Q4_1 | – "
              f"| {yardstick:.1f} | 1.00 | – | – |")
    else:
        print("\n(llama.cpp not measured: llama_cpp is not importable)")
    print("\nThe composer's own loop, 16-bar waltz with the grammar, sampled, seeds "
          f"0–{args.runs - 1}:\n")
    print("| variant | torch's kernels | tok/s, constraints included | share of the time outside "
          "the model | × llama.cpp |")
    print("|---|---|---|---|---|")
    for record in records:
        for name, rate, outside in record["loops"]:
            ratio = f"{rate / yardstick:.2f}" if yardstick else "–"
            print(f"| {name} | {record['isa']} | {rate:.1f} | {100 * outside:.0f} % | {ratio} |")
    return 0


def _llama_build() -> str:
    """What llama.cpp was built for, as its own system info says."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode()
    except (ImportError, AttributeError):
        return "unknown build"
    flags = [part.split("=")[0].strip() for part in info.split("|") if part.strip().endswith("= 1")]
    return ", ".join(flag for flag in flags if "AVX" in flag or "AMX" in flag) or info.strip()


def llama_bench_rate(binary: Path, gguf: Path, tokens: int, depth: int, threads: int) -> float:
    """Tokens/s of llama.cpp's ``llama-bench`` generating ``tokens`` greedy tokens after a
    context of ``depth`` tokens (its ``-d``: the prompt's length), on ``threads`` threads."""
    import subprocess

    done = subprocess.run(
        [str(binary), "-m", str(gguf), "-p", "0", "-n", str(tokens), "-d", str(depth), "-t", str(threads),
         "-r", "1", "-o", "json"],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, LD_LIBRARY_PATH=str(binary.parent)))
    return float(json.loads(done.stdout)[0]["avg_ts"])


def _torch_threads(loaded, threads: int) -> None:
    """torch's threads as ``loaded``'s load left them when it runs alone: one on the ort path
    (``agent.model.ORT_TORCH_THREADS``), else ``threads``; several models share this process."""
    import torch

    from agent.model import ORT_TORCH_THREADS

    torch.set_num_threads(ORT_TORCH_THREADS if getattr(loaded, "cpu_path", None) == "ort" else threads)


def interleave(args) -> int:
    """Best and median tokens/s of each variant over ``args.interleave`` rounds, the variants
    taking turns (so a burst of load on the machine slows them alike); with ``--llama-bench``,
    llama.cpp on each ``--gguf`` file takes its turn in every round too, and every rate is of
    generation alone (the prompt fed before the clock starts, as llama-bench counts). The
    variants in ``args.grammar`` also take a turn through the composer's loop
    (:func:`grammar_rate`)."""
    import torch

    adapter = resolve_adapter(args.adapter)
    header = abc_header(title="Autumn Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    models, prompt = {}, []
    for name in args.variants.split(","):
        models[name] = load_variant(name, base=args.base, adapter=adapter, threads=args.threads)
        prompt = chat_prompt_ids(models[name].tokenizer, compose_messages("a sad waltz in D minor"), header)
        decode(models[name], prompt, 8, True)  # warm-up
    ggufs = [Path(item) for item in args.gguf.split(",") if item] if args.llama_bench else []
    with_prompt = not ggufs
    rates: dict[str, list[float]] = {name: [] for name in models}
    rates.update({f"llama.cpp {path.stem}": [] for path in ggufs})
    threads = args.threads or cpu_cores()
    grammar = [name for name in args.grammar.split(",") if name in models]
    rates.update({f"{name} + grammar": [] for name in grammar})
    for _ in range(args.interleave):
        for name, loaded in models.items():
            _torch_threads(loaded, threads)
            seconds, _tokens = decode(loaded, prompt, args.tokens, True, with_prompt=with_prompt)
            rates[name].append(args.tokens / seconds)
        for name in grammar:
            _torch_threads(models[name], threads)
            rates[f"{name} + grammar"].append(grammar_rate(models[name], header, prompt, with_prompt))
        _torch_threads(None, threads)
        for path in ggufs:
            rates[f"llama.cpp {path.stem}"].append(
                llama_bench_rate(Path(args.llama_bench), path, args.tokens, len(prompt), threads))
    isa = torch.backends.cpu.get_cpu_capability()
    print(json.dumps({"isa": isa, "threads": threads, "load": os.getloadavg()[0], "prompt_tokens": len(prompt),
                      "with_prompt": with_prompt, "rates": rates}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--adapter", default=None, help="adapter folder, or none (default: shipped)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=30, help="validation examples for the loss")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--composer-variants", default="float32,int8-weight-transformers,int8-weight",
                        help="variants whose composer loop is timed too")
    parser.add_argument("--isa", default="", help="comma-separated: native, avx2; each runs in its "
                        "own process (empty: this process as it is)")
    parser.add_argument("--avx2-variants", default="float32,float32-path,portable,int8-dynamic-step",
                        help="the variants run under --isa avx2")
    parser.add_argument("--json", action="store_true", help="print one JSON record (for --isa)")
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="speed only, for a busy machine: load every variant, then ROUNDS "
                        "rounds of --tokens greedy tokens each, variant after variant; the best "
                        "round's rate is the one least slowed by other processes")
    parser.add_argument("--llama-bench", default="", metavar="BINARY",
                        help="with --interleave: llama.cpp's llama-bench (built from source), run "
                        "on each --gguf file in every round")
    parser.add_argument("--gguf", default="", help="comma-separated GGUF files for --llama-bench "
                        "(scripts/export_gguf.py writes the shipped model's)")
    parser.add_argument("--grammar", default="", metavar="VARIANTS",
                        help="with --interleave: these variants also write a 16-bar waltz (seed 0) "
                        "through the composer's loop in every round (the grammar on; the prompt "
                        "left out where llama-bench runs)")
    args = parser.parse_args(argv)
    if args.isa:
        return run_isas(args, argv if argv is not None else sys.argv[1:])
    if args.interleave:
        return interleave(args)

    adapter = resolve_adapter(args.adapter)
    examples = validation_examples(args.examples)
    header = abc_header(title="Autumn Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    rows, outputs, prompt, loops = [], {}, [], []
    for name in args.variants.split(","):
        use_cache = VARIANTS[name][1]
        loaded = load_variant(name, base=args.base, adapter=adapter, threads=args.threads)
        prompt = chat_prompt_ids(loaded.tokenizer, compose_messages("a sad waltz in D minor"), header)
        decode(loaded, prompt, 8, use_cache)  # warm-up
        runs = [decode(loaded, prompt, args.tokens, use_cache) for _ in range(args.runs)]
        outputs[name] = runs[-1][1]
        rate = args.tokens / statistics.median(seconds for seconds, _ in runs)
        rows.append((name, loaded.dtype, loaded.quantize, loaded.load_seconds, rate, loss(loaded, examples)))
        print(f"{name}: {rate:.1f} tok/s", file=sys.stderr, flush=True)
        if name in args.composer_variants.split(","):
            loops.append((name, *composer_rate(loaded, header, args.runs)))
            print(f"{name} composer loop: {loops[-1][1]:.1f} tok/s", file=sys.stderr, flush=True)

    import torch

    isa = torch.backends.cpu.get_cpu_capability()
    if args.json:
        print(json.dumps({"isa": isa, "threads": torch.get_num_threads(), "prompt": prompt,
                          "rows": rows, "loops": loops, "load": os.getloadavg()[0],
                          "same": {name: _same(outputs.get("float32", outputs.get("float32-path")), out)
                                   for name, out in outputs.items()},
                          "examples": len(examples)}))
        return 0
    yardstick = llama_cpp_rate(args.base, prompt, args.tokens, args.runs, torch.get_num_threads())
    reference = outputs.get("float32", outputs.get("float32-path"))
    print(f"\nbase {args.base}, adapter {adapter or 'none'}, torch's CPU kernels {isa}, "
          f"{torch.get_num_threads()} threads, "
          f"{args.tokens} greedy tokens, median of {args.runs} runs, loss on {len(examples)} "
          f"validation tunes, load average {os.getloadavg()[0]:.1f}")
    print("\n| variant | dtype | quantize | load s | decode tok/s | × float32 | loss (nats/token) "
          "| greedy tokens equal to float32's |")
    print("|---|---|---|---|---|---|---|---|")
    base_rate = next((rate for name, *_, rate, _ in rows if name == "float32"), None)
    for name, dtype, quantize, load_seconds, rate, value in rows:
        same = "–"
        if reference is not None:
            out = outputs[name]
            same = str(next((i for i, (a, b) in enumerate(zip(reference, out)) if a != b), len(out)))
        ratio = f"{rate / base_rate:.2f}" if base_rate else "–"
        print(f"| {name} | {dtype} | {quantize} | {load_seconds:.2f} | {rate:.1f} | {ratio} "
              f"| {value:.4f} | {same} |")
    if yardstick is not None:
        ratio = f"{yardstick / base_rate:.2f}" if base_rate else "–"
        print(f"| llama.cpp (bare base, Q4_1 GGUF) | – | Q4_1 | – | {yardstick:.1f} | {ratio} | – | – |")
    else:
        print("\n(llama.cpp not measured: llama_cpp is not importable)")
    if loops:
        print(f"\nThe composer's own loop, 16-bar waltz with the grammar, sampled, seeds 0–{args.runs - 1}:\n")
        print("| variant | tok/s, constraints included | share of the time outside the model |"
              + (" × llama.cpp |" if yardstick else ""))
        print("|---|---|---|" + ("---|" if yardstick else ""))
        for name, rate, outside in loops:
            print(f"| {name} | {rate:.1f} | {100 * outside:.0f} % |"
                  + (f" {rate / yardstick:.2f} |" if yardstick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
