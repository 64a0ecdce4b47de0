"""The one exception type for problems a user can fix.

Every error whose message is meant for a person (a bad recipe, corpus, model directory, input or
output path) is a :class:`DiplostanceError`: the CLI prints its message on one line and exits
non-zero, without a traceback unless ``--verbose``; the Python API raises it, so a script can
catch it.  Each module's own error type (``ConfigError``, ``ModelDirError``, ...) subclasses it
and keeps the built-in type it always had (``ValueError``, ``OSError``, ...), so existing
``except`` clauses still work.
"""
from __future__ import annotations


class DiplostanceError(Exception):
    """A problem with what the user gave (file, field, value); the message says what was expected,
    what came, and the fix."""


class OutputExistsError(DiplostanceError, FileExistsError):
    """An output is there already (or another run is writing it) and was left untouched; the
    message says which option replaces or continues it."""
