"""Write the shipped model (base + adapter, merged) as GGUF files for llama.cpp, so the speed
benchmark can run llama.cpp on the same weights as tunesmith's CPU paths.

    .venv/bin/python scripts/export_gguf.py --llama-cpp ~/src/llama.cpp --out /tmp/gguf \\
        [--adapter DIR|none] [--types f16,q8_0,q4_1]

The float16 weights are the portable path's own (read from its weight cache, which a first
load writes), written as a Hugging Face folder and converted by llama.cpp's
``convert_hf_to_gguf.py`` (``--outtype f16``); the other types are made from that file by
``llama-quantize``. ``--llama-cpp`` is a llama.cpp source tree built with CMake
(``build/bin/llama-quantize``); llama.cpp is not a dependency of tunesmith, only a yardstick.
Prints the files written.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.conversation import resolve_adapter  # noqa: E402
from agent.model import ModelConfig, _weights_entry, load_model, prepare_base  # noqa: E402

SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja")


def portable_weights(config: ModelConfig) -> Path:
    """The portable path's weight cache file of ``config`` (written by a load if missing)."""
    where = prepare_base(config)
    entry = _weights_entry(config, "portable", where)
    if entry is None:
        raise SystemExit("this base has no weight cache (not a local Llama)")
    if not (entry / "model.safetensors").is_file():
        load_model(config)
    return entry / "model.safetensors"


def hf_folder(config: ModelConfig, folder: Path) -> Path:
    """A Hugging Face folder holding the portable path's float16 weights under their usual
    names (the tied output layer left out, as the base has it)."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(portable_weights(config)))
    renamed = {}
    for name, tensor in state.items():
        if name.startswith("lm_head."):
            continue  # tied to the embedding
        if name.endswith(".weight_fp16"):
            name = name[:-len("_fp16")]
        renamed[name] = tensor.to(torch.float16).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    base = Path(prepare_base(config))
    for name in SMALL_FILES:
        if (base / name).is_file():
            shutil.copy(base / name, folder / name)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-cpp", required=True, type=Path, help="a built llama.cpp source tree")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--adapter", default=None, help="adapter folder, or none (default: shipped)")
    parser.add_argument("--types", default="f16,q8_0,q4_1")
    args = parser.parse_args(argv)
    config = ModelConfig(adapter=resolve_adapter(args.adapter), cpu_path="portable")
    folder = hf_folder(config, args.out / "hf")
    f16 = args.out / "tunesmith-f16.gguf"
    env = dict(os.environ, PYTHONPATH=str(args.llama_cpp / "gguf-py"))
    subprocess.run([sys.executable, str(args.llama_cpp / "convert_hf_to_gguf.py"), str(folder),
                    "--outtype", "f16", "--outfile", str(f16)], check=True, env=env)
    written = [f16]
    for kind in args.types.split(","):
        if kind == "f16":
            continue
        target = args.out / f"tunesmith-{kind}.gguf"
        subprocess.run([str(args.llama_cpp / "build" / "bin" / "llama-quantize"), str(f16), str(target),
                        kind.upper()], check=True)
        written.append(target)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
