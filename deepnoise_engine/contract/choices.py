"""Closed sets of values the CLI, the protocol and the steps share (no pydantic import:
the CLI builds its parser from them at start-up)."""

from __future__ import annotations

from typing import Literal, get_args

Device = Literal["cpu", "cuda", "auto"]
Balance = Literal["assignment", "paper", "none"]
#: The balancing methods, as ``score --balance`` and ``balance.methods`` offer them.
BALANCE_METHODS: tuple[str, ...] = get_args(Balance)
#: Test-time augmentation: 1 (none) or 8 (flips and rotations).
TTA = Literal[1, 8]
