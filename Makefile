# The two commands a new machine needs (both install what is missing first, then run):
#   make app    the chat app on http://127.0.0.1:7860 with the embedded default model, offline
#   make test   the default (fast) test suite
.PHONY: app test test-slow setup setup-dev

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

app: setup
	.venv/bin/tunesmith ui

test: setup-dev
	.venv/bin/python -m pytest -q

test-slow: setup-dev
	.venv/bin/python -m pytest -q -m slow
