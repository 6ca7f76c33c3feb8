"""The two kinds of failure a job tells apart by type, with no imports at all.

Each module of the library raises its own errors (`HubError`, `LoadError`, `ExtractionCancelled`,
...); they derive from these bases so that whoever ends a job (the runner, the CLI) recognises
them with `isinstance` without importing the modules that raise them, which would pull torch in.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure explained for the user: its message is what the card, the page and the CLI say."""


class Cancelled(Exception):
    """The job was asked to stop (or its record went away): it ends as cancelled, not failed."""
