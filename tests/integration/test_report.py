"""`forge report` over two completed offline runs: the table holds their real metrics and
the figure really shows both runs' curves."""

from __future__ import annotations

import json

import pytest

from tests.conftest import forge_here, run_dir, short_config, write_config

pytestmark = pytest.mark.integration

C0, C1 = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's first two line colours


def test_a_report_over_two_runs_has_their_metrics_and_draws_both_curves(tmp_path, reference):
    import numpy as np
    from PIL import Image

    body = f"base: {short_config(tmp_path)}\ntraining:\n  learning_rate: 3.0e-4\n"
    other = write_config(tmp_path, "faster.yaml", body)
    assert forge_here("--config", str(other), cwd=tmp_path).returncode == 0
    faster = run_dir(tmp_path, "faster")

    result = forge_here("report", str(reference.root), str(faster.root), "--out", "rep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "rep"
    markdown = (out / "report.md").read_text()
    for run in (reference, faster):
        pre = json.loads((run.metrics / "pre_eval.json").read_text())["validation_matched"]["accuracy"]
        post = json.loads((run.metrics / "post_eval.json").read_text())["validation_matched"]["accuracy"]
        row = next(line for line in markdown.splitlines() if f"/{run.root.name} |" in line)
        assert f"| {pre:.4f} | {post:.4f} |" in row and "| sft | mnli | tiny | complete | 120 | accuracy |" in row
        assert run.root.name in result.stdout
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and html.count("<tr>") == 3

    image = np.asarray(Image.open(out / "curves.png").convert("RGB")).astype(int)
    assert image.shape[1] >= 1000 and image.shape[0] >= 300
    for colour in (C0, C1):  # each run's lines, well beyond its legend swatch (~100 pixels)
        assert (np.abs(image - colour).max(axis=-1) < 30).sum() > 1500
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # a drawn figure, not a blank canvas


def test_report_refuses_a_folder_without_runs(tmp_path):
    result = forge_here("report", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "no runs found" in result.stderr
