"""The base's tokenizer for a fast start: its ``tokenizer.json`` read by the ``tokenizers``
library, its chat template rendered by jinja2.

Why not transformers' ``AutoTokenizer`` here: on the CPU paths, with the merged weights already
in the cache, nothing else of transformers is needed to compose, and importing it costs about
2.5 s of every cold start (on 2 cores, ``import torch`` took 1.8 s and ``import torch; from
transformers import AutoTokenizer`` 4.2 s). transformers' own fast tokenizer is this same
``tokenizers.Tokenizer``; :class:`FastTokenizer` offers the few methods the agent calls, with
the same results (``tests/test_tokenizer.py`` compares both on corpus tunes and chat prompts).
Training and the other loaders keep ``AutoTokenizer``.

>>> FastTokenizer.from_folder("/no/such/folder")
Traceback (most recent call last):
...
agent.errors.ModelError: no tokenizer.json in /no/such/folder
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from agent.errors import ModelError


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _compile_template(source: str) -> Any:
    """A chat template compiled as transformers compiles it: jinja2's sandbox, blocks trimmed,
    loop controls, ``tojson`` and ``raise_exception``."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ModelError(f"the chat template refused the messages: {message}")

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[loopcontrols])
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source)


class FastTokenizer:
    """The methods of a Hugging Face tokenizer that the agent uses, on ``tokenizers`` alone."""

    def __init__(self, backend: Any, settings: dict[str, Any], chat_template: str | None) -> None:
        self.backend = backend
        self.eos_token = _token_text(settings.get("eos_token"))
        self.bos_token = _token_text(settings.get("bos_token"))
        self.pad_token = _token_text(settings.get("pad_token"))
        self.unk_token = _token_text(settings.get("unk_token"))
        self.eos_token_id = self._id_of(self.eos_token)
        self.pad_token_id = self._id_of(self.pad_token)
        self.chat_template = chat_template
        self._template: Any = None
        named = [self.bos_token, self.eos_token, self.unk_token, self.pad_token,
                 *(_token_text(token) for token in settings.get("additional_special_tokens") or ())]
        # as transformers counts them: the named special tokens, not every added one
        self.all_special_ids = list(dict.fromkeys(
            index for index in map(self._id_of, named) if index is not None))

    @classmethod
    def from_folder(cls, folder: str | Path, chat_template: str | None = None) -> "FastTokenizer":
        """The tokenizer of a model folder (``tokenizer.json``, ``tokenizer_config.json`` and
        ``chat_template.jinja`` where there is one); ``chat_template`` where the folder has none."""
        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise ModelError(f"no tokenizer.json in {folder}")
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        settings_file = folder / "tokenizer_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        template_file = folder / "chat_template.jinja"
        if template_file.is_file():
            template = template_file.read_text(encoding="utf-8")
        else:
            template = settings.get("chat_template") or chat_template
        return cls(backend, settings, template)

    def _id_of(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = False) -> str:
        # transformers cleans "a ." into "a." only when asked; the agent never asks (ABC text)
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows: Sequence[Sequence[int]], skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool = False) -> list[str]:
        return self.backend.decode_batch([list(row) for row in rows],
                                         skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = False,
                            tokenize: bool = True) -> Any:
        """The chat as text (``tokenize=False``) or as ids, the way transformers renders it."""
        if not self.chat_template:
            raise ModelError("this tokenizer has no chat template")
        if self._template is None:
            self._template = _compile_template(self.chat_template)
        text = self._template.render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=self.bos_token,
            eos_token=self.eos_token, pad_token=self.pad_token, unk_token=self.unk_token)
        return self.encode(text, add_special_tokens=False) if tokenize else text
