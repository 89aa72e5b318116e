"""The one error type of user-written files (specs and their constructs)."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec that cannot be loaded or derived; the message names file and line."""
