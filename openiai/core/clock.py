"""Timestamps as stored in the database and returned on the wire (milliseconds)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
