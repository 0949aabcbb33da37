"""Test helpers: the tiny random model (composer, app and benchmark tests), the app on a free port.

The tiny model is a two-layer llama with random weights over SmolLM2's real tokenizer: its
preferences are noise, and the constrained decoder still turns them into valid tunes, so the app
can be driven through real turns in seconds without the real weights.
"""
from __future__ import annotations

import contextlib
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from agent.conversation import AgentConfig, Composer

#: The agent settings the app tests run with: no adapter (none may be trained yet).
TEST_CONFIG = AgentConfig(adapter="none")


def tiny_loaded_model(config: Any = None, load_seconds: float = 0.0):
    """A :class:`agent.model.LoadedModel` holding a tiny random llama and the real tokenizer.

    The weights are the same on every call (seed 0), and the global random state is left as it
    was. ``config`` is the :class:`~agent.model.ModelConfig` the model claims to be loaded with.
    Used by the app's, the composer's and the benchmark's tests alike.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agent.model import LoadedModel, ModelConfig, load_tokenizer

    tokenizer = load_tokenizer(ModelConfig())
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(llama).eval()
    torch.random.set_rng_state(generator_state)
    return LoadedModel(model=model, tokenizer=tokenizer, config=config or ModelConfig(),
                       load_seconds=load_seconds)



def save_tiny_base(folder: Path) -> Path:
    """The tiny model of :func:`tiny_loaded_model` written to ``folder`` as a base any command
    loads with ``--base FOLDER`` (weights and tokenizer)."""
    loaded = tiny_loaded_model()
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder

def tiny_loader() -> Callable[[Any], Any]:
    """A model loader for :class:`agent.conversation.Composer` that gives the tiny model (built
    on its first call, then the same one)."""
    built: list = []

    def load(_model_config: Any) -> Any:
        if not built:
            import torch

            torch.set_num_threads(1)  # a tiny model runs fastest on one thread; the CPU is shared
            built.append(tiny_loaded_model())
        return built[0]

    return load


def tiny_composer(config: AgentConfig = TEST_CONFIG) -> Composer:
    """A composer with the tiny model."""
    return Composer(config, loader=tiny_loader())


class _SlowModel:
    """A model that takes at least ``seconds`` per forward call (everything else is the
    model's own): a composition that lasts long enough to send messages while it runs."""

    def __init__(self, model: Any, seconds: float) -> None:
        self._model, self._seconds = model, seconds

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import time

        time.sleep(self._seconds)
        return self._model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def slow_composer(seconds_per_token: float = 0.1, config: AgentConfig = TEST_CONFIG) -> Composer:
    """A composer with the tiny model slowed to ``seconds_per_token`` a model call (a 16-bar
    tune then takes ten seconds or more, whatever the machine's speed: the composer's guesses
    run two tokens in some calls, and at 0.05 s a tune took 6 s)."""
    import dataclasses

    load = tiny_loader()

    def slowed(model_config: Any) -> Any:
        loaded = load(model_config)
        return dataclasses.replace(loaded, model=_SlowModel(loaded.model, seconds_per_token))

    return Composer(config, loader=slowed)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(composer: Composer | None = None, data_dir: str | None = None
                ) -> Iterator[tuple[str, object]]:
    """The real app served on 127.0.0.1 at a free port (in this process's threads), with the
    tiny composer and its song store in ``data_dir`` (default: a temporary folder); yields
    ``(url, demo)`` and stops the server afterwards."""
    from agent.store import StoreConfig
    from ui.app import UiConfig, launch

    with tempfile.TemporaryDirectory(prefix="tunesmith-ui-test-") as root:
        port = free_port()
        data = data_dir or str(Path(root) / "data")
        demo = launch(host="127.0.0.1", port=port, adapter="none",
                      composer=composer or tiny_composer(), block=False,
                      ui_config=UiConfig(render_root=str(Path(root) / "renders")),
                      store_config=StoreConfig(data_dir=data))
        try:
            yield f"http://127.0.0.1:{port}/", demo
        finally:
            demo.close()
