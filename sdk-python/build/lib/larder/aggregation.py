"""``Aggregation`` (Feast's ``feast.aggregation.Aggregation``): a windowed aggregate of a
stream feature view.

Window semantics (the same online and offline): with window ``W`` and slide ``S`` (``S``
divides ``W``; default ``S = W``, a tumbling window), the value at time ``T`` aggregates the
events with ``floor(T / S) * S - W + S <= event_time <= T``. An empty window gives count 0 and
null for sum, mean, min and max. The output feature is ``name`` or
``<function>_<column>_<window>`` (``sum_amount_10m``).
"""

from datetime import timedelta
from typing import Optional

FUNCTIONS = ("sum", "count", "mean", "min", "max")


def _window_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds > 0 and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Aggregation:
    """``function`` of ``column`` over ``time_window``, advancing by ``slide_interval``."""

    def __init__(self, column: str = "", function: str = "", time_window: Optional[timedelta] = None,
                 slide_interval: Optional[timedelta] = None, name: Optional[str] = None):
        if function not in FUNCTIONS:
            raise ValueError(f"Aggregation function {function!r} is not one of {', '.join(FUNCTIONS)}")
        if not column:
            raise ValueError("Aggregation needs a column")
        if not isinstance(time_window, timedelta) or time_window.total_seconds() <= 0:
            raise ValueError(f"Aggregation of {column!r}: time_window must be a positive timedelta")
        self.column = column
        self.function = function
        self.time_window = time_window
        self.slide_interval = slide_interval
        self.name = name

    @property
    def output_name(self) -> str:
        return self.name or f"{self.function}_{self.column}_{_window_text(int(self.time_window.total_seconds()))}"

    def to_dict(self) -> dict:
        slide = self.slide_interval
        return {
            "column": self.column,
            "function": self.function,
            "time_window_seconds": int(self.time_window.total_seconds()),
            "slide_interval_seconds": int(slide.total_seconds()) if slide else None,
            "name": self.name,
        }
