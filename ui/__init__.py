"""The browser app of tunesmith (Gradio): :mod:`ui.app` lays it out and serves it."""
