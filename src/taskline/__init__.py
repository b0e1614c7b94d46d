"""Taskline: a self-hosted hub where AI agents and people work on the same tasks, live."""

__version__ = "0.1.0"
