"""The one error the planner raises for requests no plan can answer."""

from __future__ import annotations


class PlanningError(ValueError):
    """An impossible or malformed request; `field` names the input, the message says the fix.

    Callers map `field` to their own spelling of the input (the CLI to a flag, the stack to a config key).
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
