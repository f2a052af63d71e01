"""mkrefs on a dask-jobqueue cluster given by the config's ``cluster`` section."""

from __future__ import annotations

import textwrap

from daskref.cli import main
from daskref.testing import assert_same_fits, run_daskref


def test_mkrefs__cluster_section_of_the_config(tiny_darks, tmp_path):
    cfg = tmp_path / "mkrefs.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        output: {{outrootdir: {tmp_path / 'out'}, runID: ''}}
        readnoise: {{imtypes: D+}}
        superbias: {{imtypes: D+}}
        cluster: {{kind: local, adapt: '1:2', cores: 1, memory: 1GB,
                   options: {{scheduler_options: {{dashboard_address: ':0'}}}}}}
        """))
    run = run_daskref("mkrefs", "-c", cfg, "readnoise,superbias", *tiny_darks, "--no-qa",
                      cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "local cluster, adapting 1-2 jobs" in run.stderr
    # the command line's scheduler wins over the config's cluster
    assert main(["mkrefs", "-c", str(cfg), "readnoise,superbias", *map(str, tiny_darks), "--no-qa",
                 "-q", "--scheduler", "threads", "--outrootdir", str(tmp_path / "plain")]) == 0
    made = sorted((tmp_path / "out").rglob("*.fits"))
    assert len(made) == 2
    for path in made:
        assert_same_fits(path, tmp_path / "plain" / path.relative_to(tmp_path / "out"))
