"""$FORGE_HOME: forge's per-user folder (default ~/.cache/forge), outside any run directory.

embedded/         the embedded artifacts, built once (forge/embedded/)
teacher_logits/   the KD teacher-logit cache, shared by runs with the same teacher and data
runs/             the registry of incomplete runs, for `forge status`
"""

from __future__ import annotations

import os
from pathlib import Path


def forge_home() -> Path:
    return Path(os.environ.get("FORGE_HOME", Path.home() / ".cache" / "forge"))
