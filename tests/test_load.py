"""The load test's short run: 4 users at once against the app with the tiny model, through the
streaming endpoint; nothing lost, nobody's tune in another's reply, progress seen at once.

The long run (16 users, the real model) is a documented command: see scripts/load_test.py and
docs/benchmarks.md, "Many users".
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import load_test  # noqa: E402

# 32 s on the project's 2-core machine (load average 13 from other work), 95 s under heavier
# load: the four tunes and all their renders at once.


def test_four_users_at_once_get_their_own_tunes_with_progress_at_once():
    with load_test.tiny_app() as url:
        summary = load_test.run(load_test.LoadConfig(url=url, users=4, turns=1, turn_timeout_s=240))
    assert summary["endpoint"] == load_test.STREAM_ENDPOINT, summary["endpoint"]
    assert summary["errors"] == 0 and summary["cross_talk"] == 0, summary["problems"]
    assert summary["finished_compose_s"]["n"] == 4 and summary["first_progress_s"]["n"] == 4
    assert summary["first_progress_s"]["p95"] < 5.0, summary["first_progress_s"]
    assert summary["tunes_per_minute"] > 0
