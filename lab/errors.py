"""The one error type the lab raises."""


class LabError(Exception):
    """A lab step failed; the message says what failed and how to fix it."""
