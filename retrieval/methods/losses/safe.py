"""Functions of a loss whose derivative is infinite at 0, made safe there."""

from __future__ import annotations

from typing import Callable

import torch


def where_positive(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn(x)`` where ``x > 0`` and 0 elsewhere, with a zero gradient at those entries.

    For ``fn`` with an infinite derivative at 0 (``pow(p)`` with p < 1, ``sqrt``), ``fn(x)`` alone would
    send inf · 0 = NaN back through an exact zero. ``fn`` here only ever sees positive values (the others
    are replaced by 1 before it, and its output there is discarded), so no inf arises."""
    positive = x > 0
    return torch.where(positive, fn(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))
