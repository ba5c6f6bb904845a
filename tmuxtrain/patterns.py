"""User-written patterns (`metrics:`, `retry_on:`) run by the scheduler."""

from __future__ import annotations

import re
from collections.abc import Sequence


def search_any(patterns: Sequence[str], text: str) -> bool:
    """Whether any pattern matches somewhere in `text`."""
    return any(re.search(p, text) for p in patterns)
