"""Figures as people read them."""
from __future__ import annotations


def percent(part: int, whole: int) -> float:
    """part out of whole, in percent to two decimals; 0.0 out of nothing (no sample is no failure rate)."""
    return round(100.0 * part / whole, 2) if whole else 0.0
