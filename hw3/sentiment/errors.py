"""The one exception type the sentiment pipeline raises for bad input; the CLI prints it as one line."""


class HW3Error(Exception):
    """A user-facing error: its message is one line that says what is wrong and how to fix it."""
