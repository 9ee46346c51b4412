"""Every embedded artifact is the same, byte for byte, whichever process and $FORGE_HOME
builds it: the README's figures come from the same models and data on every machine."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forge import embedded
from forge.home import forge_home
from tests.conftest import require_pretrained

BUILD = (
    "import sys\nfrom forge import embedded\nfor name in sys.argv[1:]:\n    embedded.ensure(embedded.PREFIX + name)\n"
)
GENERATED = sorted(set(embedded.BUILDERS) - embedded.PRETRAINED)


def fingerprints(names: list[str], home: Path | None = None) -> dict[str, str]:
    """sha256 of every file of the artifacts `names`, built in a fresh process in the fresh
    FORGE_HOME `home`, or (None) as this test session's FORGE_HOME has them: built by
    whichever process of the session needed them first (this one, for those still missing)."""
    if home is None:
        home = forge_home()
        for name in names:
            embedded.ensure(embedded.PREFIX + name)
    else:
        env = {**os.environ, "FORGE_HOME": str(home)}
        subprocess.run([sys.executable, "-c", BUILD, *names], env=env, check=True, timeout=600)
    found = {}
    for name in names:
        root = home / "embedded" / f"{name}-v{embedded.VERSION}"
        found.update({str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")})  # fmt: skip
    return found


def test_every_generated_artifact_builds_byte_identical_in_fresh_homes(tmp_path):
    first, second = fingerprints(GENERATED, tmp_path / "fresh"), fingerprints(GENERATED)
    assert any(name.endswith("tokenizer.json") for name in first) and any(n.endswith(".parquet") for n in first)
    differ = sorted(name for name in first.keys() | second.keys() if first.get(name) != second.get(name))
    assert not differ, differ


@pytest.mark.heavy  # SmolLM2's dequantization: ~20 s per build
@pytest.mark.parametrize("name", sorted(embedded.PRETRAINED))
def test_each_pretrained_model_builds_byte_identical_in_fresh_homes(tmp_path, name):
    require_pretrained(name)
    first, second = fingerprints([name], tmp_path / "fresh"), fingerprints([name])
    assert any(n.endswith("model.safetensors") for n in first) and any(n.endswith("tokenizer.json") for n in first)
    differ = sorted(n for n in first.keys() | second.keys() if first.get(n) != second.get(n))
    assert not differ, differ
