"""The chat formats the composer model is trained on and prompted with.

Training examples (``finetune/data.py``) and generation (``agent/compose.py``) both build their
token ids here, so what the model sees at run time is exactly what it saw in training.

Every task is a short chat: a system line, one user message, and the assistant's answer. Part of
the answer can be written by the agent before the model starts (the *prefill*): for a new tune
that is the ABC header, built from the request, so the key, meter and tempo the person asked for
are exact by construction; for an edit it is the header plus the bars that stay as they are.
The model's loss in training covers only what comes after the prefill.

>>> messages = compose_messages("a sad waltz in D minor")
>>> [m["role"] for m in messages]
['system', 'user']
>>> abc_header(title="Sad Waltz", meter="3/4", tempo="1/4=96", key="Dm", style="waltz")
'X:1\\nT:Sad Waltz\\nR:waltz\\nM:3/4\\nL:1/8\\nQ:1/4=96\\nK:Dm\\n'
>>> abc_header(title="x\\nK:C", meter="3/4", tempo="1/4=96", key="Dm")
Traceback (most recent call last):
...
ValueError: header value for T must be one line without '%' or field syntax: 'x\\nK:C'
"""
from __future__ import annotations

import re
from typing import Any, Sequence

SYSTEM_PROMPT = "You are tunesmith, a composer. You write tunes in ABC notation."

# The unit note length every generated tune uses; the training targets are written with it too.
UNIT_LENGTH = "1/8"

_UNSAFE_VALUE = re.compile(r"[\n\r%]|\[[A-Za-z]:")

Message = dict[str, str]


def _checked(name: str, value: str) -> str:
    value = value.strip()
    if _UNSAFE_VALUE.search(value):
        raise ValueError(
            f"header value for {name} must be one line without '%' or field syntax: {value!r}"
        )
    return value


def abc_header(
    *, title: str, meter: str, tempo: str, key: str, style: str | None = None, number: int = 1
) -> str:
    """The ABC header the agent writes before the model continues with the body.

    ``tempo`` is the ``Q:`` value (``"1/4=96"``, ``"3/8=116"``); ``key`` the ``K:`` value.
    Values are checked so that user text can never smuggle in another field.
    """
    lines = [f"X:{number}", f"T:{_checked('T', title)}"]
    if style:
        lines.append(f"R:{_checked('R', style)}")
    lines += [
        f"M:{_checked('M', meter)}",
        f"L:{UNIT_LENGTH}",
        f"Q:{_checked('Q', tempo)}",
        f"K:{_checked('K', key)}",
    ]
    return "\n".join(lines) + "\n"


def compose_messages(request: str) -> list[Message]:
    """Messages asking for a new tune; the answer is a whole ABC tune (header prefilled)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": request.strip()},
    ]


def edit_messages(current_abc: str, instruction: str) -> list[Message]:
    """Messages asking for a change to a tune; the answer is the whole edited tune.

    The prefill of an edit is the edited tune's text up to the first bar that changes, so the
    model writes only the span concerned and the agent keeps every other bar byte-identical.
    """
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{current_abc.strip()}\n\n{instruction.strip()}"},
    ]


def lyrics_messages(theme: str, syllables_per_line: Sequence[int], rhyme_scheme: str) -> list[Message]:
    """Messages asking for lyric lines about ``theme`` that fit a syllable budget per line.

    The answer is the lines, one per line of text, with no ABC.

    >>> lyrics_messages("the sea", [8, 6], "AA")[1]["content"]
    'Write 2 lyric lines about the sea. Syllables per line: 8, 6. Rhyme scheme: AA.'
    """
    budgets = ", ".join(str(n) for n in syllables_per_line)
    request = (
        f"Write {len(syllables_per_line)} lyric lines about {theme.strip()}. "
        f"Syllables per line: {budgets}. Rhyme scheme: {rhyme_scheme}."
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": request},
    ]


def chat_prompt_ids(tokenizer: Any, messages: list[Message], prefill: str = "") -> list[int]:
    """Token ids of the chat up to the assistant's turn, followed by the prefill.

    ``messages`` must not contain the assistant's answer. The prefill is encoded on its own (no
    special tokens), exactly as :func:`training_ids` does, so prompts match training.
    """
    if messages and messages[-1]["role"] == "assistant":
        raise ValueError("chat_prompt_ids takes the messages before the assistant's answer")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    ids = list(ids)
    if prefill:
        ids += tokenizer.encode(prefill, add_special_tokens=False)
    return ids


def end_of_turn_text(tokenizer: Any) -> str:
    """The text that closes an assistant turn in this tokenizer's chat template."""
    probe = tokenizer.apply_chat_template(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "MARK"}],
        tokenize=False,
    )
    tail = probe.split("MARK", 1)[1]
    return tail.rstrip("\n") or (tokenizer.eos_token or "")


def stop_token_ids(tokenizer: Any) -> set[int]:
    """The ids that end the assistant's turn: the end-of-turn marker of the chat template (when it
    is one token, like ``<|im_end|>`` or ``<end_of_turn>``) and the tokenizer's end of sequence."""
    ids = {tokenizer.eos_token_id}
    marker = end_of_turn_text(tokenizer).strip()
    if marker:
        encoded = tokenizer.encode(marker, add_special_tokens=False)
        if len(encoded) == 1:
            ids.add(encoded[0])
    return {i for i in ids if isinstance(i, int) and i >= 0}


def training_ids(
    tokenizer: Any, messages: list[Message], prefill: str = ""
) -> tuple[list[int], list[int]]:
    """Input ids and labels for one training example (labels are -100 where no loss is taken).

    ``messages`` ends with the assistant's answer, which starts with ``prefill``. Loss covers the
    answer after the prefill and the end-of-turn marker.
    """
    *context, answer = messages
    if answer["role"] != "assistant":
        raise ValueError("the last message of a training example must be the assistant's answer")
    if not answer["content"].startswith(prefill):
        raise ValueError("the assistant's answer must start with the prefill")
    prompt = chat_prompt_ids(tokenizer, context, prefill)
    target_text = answer["content"][len(prefill):] + end_of_turn_text(tokenizer)
    target = tokenizer.encode(target_text, add_special_tokens=False)
    return prompt + target, [-100] * len(prompt) + target
