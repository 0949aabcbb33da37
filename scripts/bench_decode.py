"""Decode speed and load times of the base model: float32 against int8 dynamic quantization.

    .venv/bin/python scripts/bench_decode.py [--base smollm2-135m] [--adapter DIR] [--tokens 200]
                                             [--runs 3] [--fresh-cache]

Prints a Markdown table: load seconds, greedy decode tokens/s (median of the runs, the prompt
being a compose request with its ABC header prefilled), the loss of each variant on real tunes
from music21's corpus (teacher-forced, the body after the header), and how many of the int8
model's greedy tokens match the float32 model's before they first differ.
``--fresh-cache`` converts the GGUF into an empty temporary cache first, to time a first start.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.model import ModelConfig, load_model  # noqa: E402
from agent.prompts import abc_header, chat_prompt_ids, compose_messages, training_ids  # noqa: E402


def corpus_tunes(count: int) -> list[str]:
    """Real tunes from O'Neill's collection as music21 ships it (header lines up to K: first)."""
    import music21

    folder = Path(music21.__file__).parent / "corpus" / "oneills1850"
    tunes = []
    for path in sorted(folder.glob("*.abc"))[-3:]:
        for chunk in re.split(r"\n(?=X:)", path.read_text(encoding="latin-1")):
            if chunk.strip().startswith("X:") and "\nK:" in chunk:
                tunes.append(chunk.strip() + "\n")
    return tunes[:count]


def tune_loss(loaded, tunes: list[str]) -> float:
    """Mean cross-entropy per target token of the tunes' bodies, given request and header."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    for tune in tunes:
        header = tune[: tune.index("\nK:") + 1]
        header += tune[len(header):].split("\n", 1)[0] + "\n"
        messages = compose_messages("an Irish tune") + [{"role": "assistant", "content": tune}]
        ids, labels = training_ids(loaded.tokenizer, messages, header)
        with torch.no_grad():
            logits = loaded.model(torch.tensor([ids])).logits[0, :-1]
        targets = torch.tensor(labels[1:])
        total += float(F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum"))
        count += int((targets != -100).sum())
    return total / count


def decode(loaded, prompt: list[int], tokens: int) -> tuple[float, float, list[int]]:
    """Wall seconds and CPU seconds for ``tokens`` greedy new tokens, and the tokens."""
    import torch

    ids = torch.tensor([prompt])
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = loaded.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
            do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id,
        )
    return time.perf_counter() - started, time.process_time() - cpu, out[0, len(prompt):].tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tunes", type=int, default=8, help="corpus tunes for the loss column")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    parser.add_argument("--fresh-cache", action="store_true", help="time the GGUF conversion too")
    args = parser.parse_args(argv)

    cache = tempfile.mkdtemp(prefix="tunesmith-bench-") if args.fresh_cache else None
    rows, outputs = [], {}
    header = abc_header(title="Autumn Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
    tunes = corpus_tunes(args.tunes)
    first_load = load_model(ModelConfig(base=args.base, cache_dir=cache)).load_seconds
    cached_load = load_model(ModelConfig(base=args.base, cache_dir=cache)).load_seconds
    for quantize in ("none", "int8-dynamic"):
        config = ModelConfig(base=args.base, adapter=args.adapter, cache_dir=cache, quantize=quantize,
                             threads=args.threads)
        loaded = load_model(config)
        prompt = chat_prompt_ids(loaded.tokenizer, compose_messages("a sad waltz in D minor"), header)
        decode(loaded, prompt, 8)  # warm-up
        times, cpu_times = [], []
        for _ in range(args.runs):
            seconds, cpu_seconds, tokens = decode(loaded, prompt, args.tokens)
            times.append(seconds)
            cpu_times.append(cpu_seconds)
        outputs[quantize] = tokens
        rows.append((quantize, loaded.load_seconds, args.tokens / statistics.median(times),
                     args.tokens / statistics.median(cpu_times), tune_loss(loaded, tunes)))
    a, b = outputs["none"], outputs["int8-dynamic"]
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))

    import torch

    print(f"\nbase {args.base}, adapter {args.adapter or 'none'}, {torch.get_num_threads()} threads, "
          f"{args.tokens} greedy tokens, median of {args.runs} runs"
          + (" (first load = GGUF conversion into an empty cache)" if args.fresh_cache else ""))
    print(f"\nbase load: first {first_load:.2f} s, from the cache {cached_load:.2f} s")
    print("\n| weights | load s | decode tok/s | tok per CPU-second | loss on corpus tunes |")
    print("|---|---|---|---|---|")
    for quantize, load_seconds, rate, cpu_rate, loss in rows:
        name = "float32" if quantize == "none" else quantize
        print(f"| {name} | {load_seconds:.2f} | {rate:.1f} | {cpu_rate:.1f} | {loss:.3f} |")
    print(f"\nint8 greedy output matches float32 for the first {same} of {len(a)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
