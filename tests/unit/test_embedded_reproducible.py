"""Every embedded artifact is the same, byte for byte, whichever process and $FORGE_HOME
builds it: the README's figures come from the same models and data on every machine."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BUILD = "from forge import embedded\nfor name in embedded.BUILDERS:\n    embedded.ensure(embedded.PREFIX + name)\n"


def fingerprints(home: Path) -> dict[str, str]:
    subprocess.run([sys.executable, "-c", BUILD], env={**os.environ, "FORGE_HOME": str(home)}, check=True, timeout=600)
    root = home / "embedded"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_every_embedded_artifact_builds_byte_identical_in_fresh_homes(tmp_path):
    first, second = fingerprints(tmp_path / "a"), fingerprints(tmp_path / "b")
    assert any(name.endswith("tokenizer.json") for name in first) and any(n.endswith(".parquet") for n in first)
    differ = sorted(name for name in first.keys() | second.keys() if first.get(name) != second.get(name))
    assert not differ, differ
