"""Datasets: adapters to the unified {prompt, chosen, rejected} row, splitting and mixing."""

from .adapters import ADAPTERS, register
from .load import DatasetSpec, load_rows, load_step_rows
from .rows import SkipRow
