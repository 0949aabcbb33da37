"""Many people at once: drive N simulated users through a running app and measure what they wait.

    # against an app already running on this machine (the real model):
    .venv/bin/tunesmith ui --port 7861 &
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:7861/            # 16 users, 2 turns
    # the CI check: 4 users, one compose each, against the app started here with a tiny model
    .venv/bin/python scripts/load_test.py --tiny --short

Why a script of our own: the figures that matter here are a chat app's (time until a user sees
the first sign of work, time until the tune is there, tunes per minute) and whether every reply
belongs to its own user; generic HTTP load tools know neither Gradio's queue protocol nor ABC.

Each simulated user is its own ``gradio_client.Client`` (so its own server-side session) and
sends, in turn: "write a <style> in <key>, 8 bars", then "transpose it to <another key>". Every
user asks for a different key and a different transposition, so a reply that belongs to someone
else shows: a score whose key is another user's request is counted as cross-talk, one whose key
is nobody's request as an error (a misread request), and so is an exception, a time-out, or a
compose turn that brings back no score.

Measured per turn, from the moment the request is submitted:

* **start**: the server begins the turn (the queue's ``PROCESSING`` status); the wait before it
  is the Gradio queue's, and the highest queue position seen is reported too.
* **first progress**: the first streamed update. Only an endpoint that streams (a generator)
  has one; today's ``/chat`` returns once, when the turn is over, so through it gradio_client
  sees no progress at all and the report says so. When the app offers ``/chat_stream``
  (:data:`STREAM_ENDPOINT`: same inputs as ``/chat``, a generator whose every yield has the
  shape of ``/chat``'s answer, ``(reply or progress line, abc so far, files)``, the first yield
  at once, the last the finished turn), this script uses it and times its first update.
* **finished**: the answer is back.

Throughput is finished compose turns (tunes) per minute of wall time, and all finished turns
per minute. The run is bounded: at most :data:`MAX_USERS` users and :data:`MAX_TURNS` turns
each, every turn with a time-out, and only loopback addresses are accepted (this is a tool for
your own machine, never for someone else's server).
"""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.abc_text import parse_key, parse_tune  # noqa: E402

STREAM_ENDPOINT = "/chat_stream"
CHAT_ENDPOINT = "/chat"
MAX_USERS = 64
MAX_TURNS = 2
#: Compose keys, one per user: each user's transposition target is the next key of the same
#: mode, so within each turn every user's expected key is different (16 users, 16 keys).
MAJOR = ("C", "G", "D", "A", "E", "F", "Bb", "Eb")
MINOR = ("A", "E", "B", "F#", "D", "G", "C", "F")
STYLES = ("reel", "jig", "waltz", "hornpipe", "march", "slow air", "polka", "lullaby")


@dataclass(frozen=True)
class LoadConfig:
    """One load test run."""

    url: str = field(default="", metadata={"help": "the app's address (loopback only)"})
    users: int = field(default=16, metadata={"help": f"simulated users at once (1-{MAX_USERS})"})
    turns: int = field(default=2, metadata={"help": "1: compose only; 2: compose, then transpose"})
    turn_timeout_s: float = field(default=1800.0, metadata={"help": "give up on one turn after this"})
    poll_s: float = field(default=0.05, metadata={"help": "how often each user looks at its job"})
    stagger_s: float = field(default=0.0, metadata={"help": "delay between users' first requests"})


@dataclass
class TurnResult:
    """What one user saw of one turn (seconds from submitting it)."""

    user: int
    turn: int
    message: str
    expected_key: str
    start_s: float | None = None
    first_progress_s: float | None = None
    finished_s: float | None = None
    queue_position: int | None = None
    got_key: str | None = None
    title: str | None = None
    outcome: str = "pending"   # ok, error, cross-talk
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Pure helpers


def loopback_url(url: str) -> str:
    """``url`` when every address its host resolves to is a loopback address; else ValueError.

    >>> loopback_url("http://127.0.0.1:7861/")
    'http://127.0.0.1:7861/'
    >>> loopback_url("http://[::1]:7861")
    'http://[::1]:7861'
    >>> loopback_url("https://example.org/")
    Traceback (most recent call last):
    ...
    ValueError: refusing https://example.org/: this load test runs only against this machine (127.0.0.1, ::1, localhost)
    """
    parsed = urlparse(url)
    refusal = ValueError(f"refusing {url}: this load test runs only against this machine "
                         "(127.0.0.1, ::1, localhost)")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise refusal
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or 80)}
    except (socket.gaierror, UnicodeError):
        raise refusal from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise refusal
    return url


def plan(user: int, turns: int) -> list[tuple[str, str]]:
    """The user's messages and the key each should bring back, as ``(message, "D minor")``.

    >>> plan(0, 2)
    [('write a reel in C major, 8 bars', 'C major'), ('transpose it to G major', 'G major')]
    >>> plan(11, 2)[1]
    ('transpose it to D minor', 'D minor')
    """
    tonics, mode = (MAJOR, "major") if user % 16 < 8 else (MINOR, "minor")
    index = user % 8
    first = f"{tonics[index]} {mode}"
    second = f"{tonics[(index + 1) % 8]} {mode}"
    style = STYLES[user % len(STYLES)]
    messages = [(f"write a {style} in {first}, 8 bars", first), (f"transpose it to {second}", second)]
    return messages[:turns]


def key_of(abc: str) -> str | None:
    """The key a score is written in, as ``"D minor"`` (None when it has no readable K:).

    >>> key_of("X:1\\nT:t\\nM:3/4\\nK:Dm\\nDEF|\\n")
    'D minor'
    >>> key_of("no score") is None
    True
    """
    if not isinstance(abc, str) or "K:" not in abc:
        return None
    try:
        key = parse_tune(abc).get("K")
        return str(parse_key(key)) if key else None
    except Exception:
        return None


def abc_in(answer: Any) -> str:
    """The ABC text in an endpoint's answer (the first string holding a ``K:`` line), or "".

    >>> abc_in(("Here it is", "X:1\\nK:G\\nGAB|\\n", []))
    'X:1\\nK:G\\nGAB|\\n'
    >>> abc_in(("I could not do that",  "", []))
    ''
    """
    values = answer if isinstance(answer, (list, tuple)) else [answer]
    return next((v for v in values if isinstance(v, str) and "\nK:" in f"\n{v}"), "")


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
    (2.0, 4.0)
    >>> percentile([], 50) is None
    True
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def judge(results: list[TurnResult]) -> None:
    """Set each finished turn's outcome: ok, cross-talk (another user's key) or error."""
    for result in results:
        if result.outcome != "pending":
            continue
        others = {r.expected_key for r in results if r.turn == result.turn and r.user != result.user}
        if result.got_key == result.expected_key:
            result.outcome = "ok"
        elif result.got_key in others:
            result.outcome, result.detail = "cross-talk", f"got {result.got_key}, another user's key"
        else:
            result.outcome = "error"
            result.detail = result.detail or f"asked for {result.expected_key}, got {result.got_key}"


def summarize(results: list[TurnResult], wall_s: float, endpoint: str, config: LoadConfig) -> dict:
    """The figures of a run: percentiles, throughput, errors and cross-talk."""
    def stats(name: str, turn: int | None = None) -> dict:
        values = [getattr(r, name) for r in results
                  if getattr(r, name) is not None and (turn is None or r.turn == turn)]
        return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
                "max": max(values) if values else None}

    tunes = sum(1 for r in results if r.turn == 0 and r.outcome == "ok")
    finished = sum(1 for r in results if r.finished_s is not None)
    return {
        "url": config.url, "endpoint": endpoint, "streaming": endpoint == STREAM_ENDPOINT,
        "users": config.users, "turns_per_user": config.turns, "wall_s": round(wall_s, 1),
        "start_s": stats("start_s"),
        "first_progress_s": stats("first_progress_s"),
        "finished_compose_s": stats("finished_s", 0),
        "finished_edit_s": stats("finished_s", 1),
        "max_queue_position": max((r.queue_position or 0 for r in results), default=0),
        "tunes_per_minute": round(tunes / wall_s * 60, 2) if wall_s else None,
        "turns_per_minute": round(finished / wall_s * 60, 2) if wall_s else None,
        "errors": sum(1 for r in results if r.outcome == "error"),
        "cross_talk": sum(1 for r in results if r.outcome == "cross-talk"),
        "problems": [f"user {r.user} turn {r.turn + 1}: {r.outcome}: {r.detail}"
                     for r in results if r.outcome != "ok"],
    }


def report(summary: dict) -> str:
    """The summary as a few lines of text for a person."""
    def line(name: str, key: str) -> str:
        s = summary[key]
        if not s["n"]:
            return f"{name}: none measured"
        return f"{name}: p50 {s['p50']:.2f} s, p95 {s['p95']:.2f} s, max {s['max']:.2f} s (n={s['n']})"

    lines = [f"{summary['users']} users x {summary['turns_per_user']} turns via {summary['endpoint']} "
             f"at {summary['url']} in {summary['wall_s']} s",
             line("time to start (server began the turn)", "start_s")]
    if summary["streaming"]:
        lines.append(line("time to first progress", "first_progress_s"))
    else:
        lines.append("time to first progress: not visible (the endpoint does not stream: "
                     f"the app offers no {STREAM_ENDPOINT})")
    lines += [line("time to finished tune (compose)", "finished_compose_s"),
              line("time to finished edit (transpose)", "finished_edit_s"),
              f"highest queue position seen: {summary['max_queue_position']}",
              f"throughput: {summary['tunes_per_minute']} tunes/min, "
              f"{summary['turns_per_minute']} turns/min",
              f"errors: {summary['errors']}, cross-talk: {summary['cross_talk']}"]
    lines += [f"  {problem}" for problem in summary["problems"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Driving the app


def pick_endpoint(client: Any) -> str:
    """The streaming endpoint when the app offers it, else ``/chat``."""
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    if STREAM_ENDPOINT in named:
        return STREAM_ENDPOINT
    if CHAT_ENDPOINT in named:
        return CHAT_ENDPOINT
    raise RuntimeError(f"the app at this address has neither {STREAM_ENDPOINT} nor {CHAT_ENDPOINT} "
                       f"(it offers {sorted(named)})")


def run_turn(client: Any, endpoint: str, result: TurnResult, config: LoadConfig) -> str:
    """Send one message, watch its job until done, fill in ``result``; returns the ABC back."""
    from gradio_client.utils import Status

    started = time.perf_counter()
    job = client.submit(result.message, api_name=endpoint)
    deadline = started + config.turn_timeout_s
    while not job.done():
        now = time.perf_counter()
        if now > deadline:
            job.cancel()
            raise TimeoutError(f"no answer in {config.turn_timeout_s:.0f} s")
        status = job.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            result.queue_position = max(result.queue_position or 0, status.rank + 1)
        if result.start_s is None and status.code in (Status.PROCESSING, Status.PROGRESS,
                                                      Status.ITERATING):
            result.start_s = now - started
        if result.first_progress_s is None and endpoint == STREAM_ENDPOINT and job.outputs():
            result.first_progress_s = now - started
        time.sleep(config.poll_s)
    answer = job.result(timeout=5)
    result.finished_s = time.perf_counter() - started
    if result.start_s is None:  # the job went from queue to done between two looks
        result.start_s = result.finished_s
    if result.first_progress_s is None and endpoint == STREAM_ENDPOINT:
        result.first_progress_s = result.finished_s
    return abc_in(answer)


def run_user(user: int, config: LoadConfig, endpoint: str, results: list[TurnResult],
             lock: threading.Lock) -> None:
    """One simulated user: its own client (own session), its turns in order."""
    from gradio_client import Client

    time.sleep(user * config.stagger_s)
    mine = [TurnResult(user=user, turn=turn, message=message, expected_key=key)
            for turn, (message, key) in enumerate(plan(user, config.turns))]
    with lock:
        results.extend(mine)
    try:
        client = Client(config.url, verbose=False, download_files=False)
    except Exception as err:
        for result in mine:
            result.outcome, result.detail = "error", f"could not connect: {type(err).__name__}: {err}"
        return
    first_title = None
    for result in mine:
        try:
            abc = run_turn(client, endpoint, result, config)
        except Exception as err:
            result.outcome, result.detail = "error", f"{type(err).__name__}: {err}"
            for later in mine[result.turn + 1:]:
                later.outcome, later.detail = "error", "not sent: the turn before it failed"
            break
        if not abc:
            result.outcome, result.detail = "error", "no score came back"
            continue
        result.got_key = key_of(abc)
        result.title = parse_tune(abc).title
        if result.turn == 0:
            first_title = result.title
        elif first_title and result.title != first_title:
            result.outcome = "cross-talk"
            result.detail = f"the edit came back titled {result.title!r}, this user's tune is {first_title!r}"
    with contextlib.suppress(Exception):
        client.close()


def run(config: LoadConfig) -> dict:
    """The whole load test against ``config.url``; returns :func:`summarize`'s figures."""
    from gradio_client import Client

    loopback_url(config.url)
    if not 1 <= config.users <= MAX_USERS or not 1 <= config.turns <= MAX_TURNS:
        raise ValueError(f"users must be 1-{MAX_USERS} and turns 1-{MAX_TURNS}")
    probe = Client(config.url, verbose=False, download_files=False)
    endpoint = pick_endpoint(probe)
    with contextlib.suppress(Exception):
        probe.close()
    results: list[TurnResult] = []
    lock = threading.Lock()
    threads = [threading.Thread(target=run_user, args=(user, config, endpoint, results, lock),
                                name=f"load-user-{user}") for user in range(config.users)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    judge(results)
    results.sort(key=lambda r: (r.user, r.turn))
    summary = summarize(results, wall, endpoint, config)
    summary["turns"] = [asdict(r) for r in results]
    return summary


@contextlib.contextmanager
def tiny_app() -> Iterator[str]:
    """The app served on a free loopback port in this process, with the tiny random model of
    the tests (valid tunes in seconds, no weights needed); yields its URL."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ui_helpers import running_app

    with running_app() as (url, _demo):
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running app on this machine, e.g. http://127.0.0.1:7861/")
    where.add_argument("--tiny", action="store_true",
                       help="start the app here with the tests' tiny random model")
    parser.add_argument("--users", type=int, default=None, help="simulated users (default 16; --short 4)")
    parser.add_argument("--turns", type=int, default=None, help="1 or 2 (default 2; --short 1)")
    parser.add_argument("--short", action="store_true", help="the CI run: 4 users, 1 turn each")
    parser.add_argument("--timeout", type=float, default=LoadConfig.turn_timeout_s,
                        help="seconds before one turn counts as failed")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between users' starts")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    users = args.users or (4 if args.short else 16)
    turns = args.turns or (1 if args.short else 2)
    try:
        if args.url:
            loopback_url(args.url)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    with (tiny_app() if args.tiny else contextlib.nullcontext(args.url)) as url:
        config = LoadConfig(url=url, users=users, turns=turns, turn_timeout_s=args.timeout,
                            stagger_s=args.stagger)
        summary = run(config)
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 0 if summary["errors"] == 0 and summary["cross_talk"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
