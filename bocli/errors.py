"""The one base class for a user's mistake: the CLI prints its message on one line, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a row, a column or an option); never shown as a traceback."""
