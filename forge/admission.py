"""One way in: a validated config becomes a run once, here.

`admit(cfg, config_path)` says what the run is: its directory, whether it is new, and the runs
it builds on (teacher.run, student.run: each one's record and config, loaded once). A new
run's needs are checked here, once, before anything is created (forge/preflight.py).
forge.py, a sweep's points, `forge stage` (Snakemake's jobs) and the session all take what
`admit` returns; none of them checks or loads again.
"""

from __future__ import annotations

from dataclasses import dataclass

from forge.config import ForgeConfig
from forge.run import upstream
from forge.run.layout import RunDir, run_dir_of


@dataclass(frozen=True)
class Admitted:
    cfg: ForgeConfig
    config_path: str | None
    run: RunDir
    new: bool  # no config.yaml yet: nothing of the run exists
    # role -> (its record, its config), for a run that has no upstream.json yet; None for a
    # run whose upstream runs were recorded when it was created (their configs are not read)
    upstream: dict[str, tuple[upstream.Upstream, ForgeConfig]] | None

    @property
    def links(self) -> dict[str, upstream.Upstream] | None:
        return None if self.upstream is None else {role: link for role, (link, _) in self.upstream.items()}


def admit(cfg: ForgeConfig, config_path: str | None = None, run: RunDir | None = None) -> Admitted:
    """What the run of `cfg` is; a ConfigError (one line per problem) when a new run would
    fail for a reason known now."""
    from forge import preflight

    run = run or run_dir_of(cfg)
    new = not run.config.is_file()
    loaded = upstream.load(cfg, run) if upstream.recorded(run) is None else None
    if new:
        preflight.require(cfg, config_path or str(run.config))
    return Admitted(cfg, config_path, run, new, loaded)


def findings(cfg: ForgeConfig):
    """What `forge check` says of `cfg`: preflight's findings, and the runs it builds on (a
    file that is not there, a run that names itself) as problems of their own."""
    from forge import preflight
    from forge.errors import ConfigError

    found = preflight.check(cfg)
    try:
        upstream.load(cfg, run_dir_of(cfg))
    except ConfigError as exc:
        found.problems.extend(("run", line.split(": ", 1)[-1]) for line in str(exc).splitlines())
    return found
