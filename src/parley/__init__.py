"""Parley: an OpenAI-compatible LLM gateway and chat platform."""

__version__ = "0.1.0"
