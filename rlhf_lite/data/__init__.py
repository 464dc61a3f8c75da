"""Datasets: adapters to the unified {prompt, chosen, rejected} row, splitting and mixing."""

from .adapters import ADAPTERS, Adapter, get_adapter, load_plugins, register
from .load import DatasetSpec, load_rows, load_step_rows
from .rows import Report, SkipRow

__all__ = [
    "ADAPTERS",
    "Adapter",
    "DatasetSpec",
    "Report",
    "SkipRow",
    "get_adapter",
    "load_plugins",
    "load_rows",
    "load_step_rows",
    "register",
]
