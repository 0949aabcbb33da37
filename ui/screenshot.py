"""Take the README's screenshot: the app with the real model, after a real conversation.

Starts the app on a free local port (the model loads in the background), drives a headless
Chromium through a few chat turns, and saves a PNG of the page. Needs Playwright and Debian's
``chromium``; takes a few minutes on a laptop CPU.

    python -m ui.screenshot --out docs/screenshot.png            # the shipped adapter
"""
from __future__ import annotations

import argparse
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass(frozen=True)
class ShotConfig:
    """What to say to the app and how to photograph it."""

    out: Path = field(default=Path("docs/screenshot.png"), metadata={"help": "PNG to write"})
    messages: tuple[str, ...] = field(default=(
        "write a sad waltz in D minor, 8 bars",
        "add lyrics about autumn leaves",
    ), metadata={"help": "chat messages, sent one after another"})
    base: str | None = field(default=None, metadata={"help": "base model (default smollm2-135m)"})
    adapter: str | None = field(default=None, metadata={"help": "adapter folder, or 'none'"})
    temperature: float | None = field(default=None, metadata={
        "help": "set in the page's settings before the first message (None: the app's default)"})
    width: int = field(default=1400, metadata={"help": "window width in CSS pixels"})
    height: int = field(default=900, metadata={"help": "window height in CSS pixels"})
    chromium: str = field(default="/usr/bin/chromium", metadata={"help": "the browser to drive"})
    turn_seconds: float = field(default=900.0, metadata={"help": "longest wait for one turn"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def take(config: ShotConfig) -> Path:
    """Run the conversation in the app and save the screenshot; returns its path."""
    from playwright.sync_api import sync_playwright

    import tempfile

    from agent.store import StoreConfig
    from ui.app import launch

    port = _free_port()
    data = tempfile.mkdtemp(prefix="tunesmith-shot-")  # the photographed song is not kept
    demo = launch(host="127.0.0.1", port=port, base=config.base, adapter=config.adapter, block=False,
                  store_config=StoreConfig(data_dir=data))
    wait_ms = int(config.turn_seconds * 1000)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=config.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": config.width, "height": config.height})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector(".ts-status-ready", timeout=wait_ms)
            if config.temperature is not None:
                page.click('button[role="tab"]:has-text("Settings")')
                page.fill("#ts-temperature input[type=number]", str(config.temperature))
                page.press("#ts-temperature input[type=number]", "Enter")
                page.click('button[role="tab"]:has-text("ABC editor")')
            for message in config.messages:
                started = time.perf_counter()
                replies = page.locator('#ts-chat [data-testid="bot"]').count()
                page.fill("#ts-message textarea", message)
                page.click("#ts-send")
                page.wait_for_function(  # answered: Stop is off again and nothing is queued
                    "n => document.querySelectorAll('#ts-chat [data-testid=\"bot\"]').length > n "
                    "&& document.querySelector('#ts-stop').disabled "
                    "&& !document.querySelector('#ts-chat').innerText.includes('⏳')",
                    arg=replies, timeout=wait_ms)
                reply = page.locator('#ts-chat [data-testid="bot"]').last.inner_text()
                print(f"{time.perf_counter() - started:6.1f} s  {message!r}\n         {reply[:300]!r}")
            page.wait_for_timeout(1500)  # the audio player settles
            config.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(config.out))
            browser.close()
    finally:
        demo.close()
        shutil.rmtree(data, ignore_errors=True)
    return config.out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ui.screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ShotConfig.out)
    parser.add_argument("--base", default=None)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--message", action="append", dest="messages",
                        help="a chat message (repeat for several; default: a waltz, then lyrics)")
    args = parser.parse_args(argv)
    config = ShotConfig(out=args.out, base=args.base, adapter=args.adapter, temperature=args.temperature,
                        **({"messages": tuple(args.messages)} if args.messages else {}))
    print(take(config))


if __name__ == "__main__":
    main()
