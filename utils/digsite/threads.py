"""CPU threads for the course's small models.

Matrices 128 wide gain little from a second thread, and on a busy or 2-core machine
(Colab, a laptop running JupyterLab) the threads wait on each other and everything runs
many times slower. Training loops and probe fits run inside `one_thread()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread, then restore the previous thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
