"""The global random states (Python's, NumPy's, torch's CPU and CUDA): kept across work that
must not draw from what training draws (an evaluation in a training loop, lm-eval, the
on-policy samples)."""

from __future__ import annotations

import contextlib
import random


@contextlib.contextmanager
def random_state_kept():
    """Restore Python's, numpy's and torch's (CPU and CUDA) random states on the way out."""
    import numpy as np
    import torch

    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
