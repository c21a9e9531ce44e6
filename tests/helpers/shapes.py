"""A source of batches of columns whose names change between batches (for nodes that plan
their work once per set of columns)."""

from __future__ import annotations

import numpy as np

from flowengine.columns import Columns
from flowengine.node import Done, Source
from flowengine.types import Batch

ABC, AC = ("a", "b", "c"), ("a", "c")


class Shapes(Source):
    """Batches of columns whose names change between batches: a, b, c; then a, c; then a, b, c
    again (the same names tuple as the first, as a source reuses its own)."""

    async def start(self) -> None:
        self.sent = 0

    async def read(self) -> Batch:
        if self.sent == 3:
            raise Done
        names = (ABC, AC, ABC)[self.sent]
        self.sent += 1
        arrays = tuple(np.array([float(self.sent)]) for _ in names)
        return Batch(None, columns=Columns(names, arrays, 1))
