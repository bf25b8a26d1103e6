"""The one exception type every `hw3` command raises for bad input, and the one way it is printed."""

from __future__ import annotations

PROGRAM = "hw3"


class HW3Error(Exception):
    """A user-facing error: its message is one line that says what is wrong and how to fix it.

    Commands let it propagate; `hw3.cli.main` prints it with `format_error` and exits with its `exit_code`.
    """

    exit_code = 1


class UsageError(HW3Error):
    """A command's options do not make sense together or have a bad value (argparse's exit status)."""

    exit_code = 2


def format_error(command: str | None, message: str) -> str:
    """The error line every command prints: 'hw3 COMMAND: error: MESSAGE' ('hw3: error: MESSAGE' without one).

    It is argparse's own format for usage errors, so bad input and bad usage read alike. Only the first
    line of `message` is kept.
    """
    prog = f"{PROGRAM} {command}" if command else PROGRAM
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return f"{prog}: error: {first}"
