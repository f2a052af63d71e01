"""ssbsteps parsing, step orders, S_* detection and the jwst backend's configuration."""

from __future__ import annotations

import logging

import pytest

from daskref.prep import (
    StepNotImplementedError,
    UnknownStepError,
    parse_steps,
    pipeline_steps,
    steps_to_run,
)
from daskref.prep.backend_jwst import DETECTOR1_STEPS, pipeline_config, prep_jwst
from daskref.prep.steps import (
    MIRI_STEPS,
    NIR_STEPS,
    NIRSPEC_STEPS,
    check_implemented,
    completed_steps,
    group_scale_factor,
)


def test_pipeline_steps__orders():
    assert pipeline_steps("NIRCAM") == NIR_STEPS == pipeline_steps("niriss")
    assert pipeline_steps("FGS") == NIR_STEPS
    assert "persistence" not in NIRSPEC_STEPS and len(NIRSPEC_STEPS) == len(NIR_STEPS) - 1
    assert pipeline_steps({"INSTRUME": "MIRI"}) == MIRI_STEPS
    assert MIRI_STEPS.index("dark_current") < MIRI_STEPS.index("refpix")
    assert NIR_STEPS[-2:] == MIRI_STEPS[-2:] == ("jump", "rate")


def test_parse_steps__list_is_order_insensitive():
    assert parse_steps("superbias, DQ_INIT ,saturation") == ("dq_init", "saturation", "superbias")
    assert parse_steps(["jump", "refpix"]) == ("refpix", "jump")
    assert parse_steps("jump,jump") == ("jump",)


def test_parse_steps__minus_and_plus():
    assert parse_steps("saturation-") == ("group_scale", "dq_init", "saturation")
    # Ranges leave out the steps daskref does not implement (ipc, persistence, rscd).
    assert parse_steps("refpix-", "MIRI") == tuple(
        s for s in MIRI_STEPS[: MIRI_STEPS.index("refpix") + 1] if s not in ("ipc", "rscd"))
    assert parse_steps("jump+") == ("jump", "rate")
    assert parse_steps("dark_current+", "NIRCAM") == ("dark_current", "jump", "rate")
    assert parse_steps("linearity+", "MIRI") == ("linearity", "dark_current", "refpix",
                                                  "jump", "rate")
    assert parse_steps(" rate- ") == tuple(s for s in NIR_STEPS
                                           if s not in ("ipc", "persistence"))


def test_parse_steps__aliases():
    assert parse_steps("ramp_fit") == ("rate",)
    assert parse_steps("ramp_fit+") == ("rate",)
    assert parse_steps("dark-") == ("group_scale", "dq_init", "saturation", "superbias",
                                    "refpix", "linearity", "dark_current")


@pytest.mark.parametrize("spec, instrument", [
    ("bogus", "NIRCAM"), ("superbias", "MIRI"), ("firstframe", "NIRCAM"),
    ("persistence", "NIRSPEC"), ("bogus-", None), ("bogus+", None), ("", None), (" , ", None),
])
def test_parse_steps__unknown_lists_the_valid_steps(spec, instrument):
    with pytest.raises(UnknownStepError) as err:
        parse_steps(spec, instrument)
    assert "valid steps" in str(err.value)
    assert "dq_init" in str(err.value)


def test_steps_to_run__from_status_keywords(caplog):
    attrs = {"INSTRUME": "NIRCAM", "S_DQINIT": "COMPLETE", "S_SATURA": "COMPLETE",
             "S_SUPERB": "COMPLETE", "S_REFPIX": "COMPLETE", "S_JUMP": "SKIPPED",
             "inputs": ["x_refpix.fits"]}
    assert completed_steps(attrs) == ("dq_init", "saturation", "superbias", "refpix")
    wanted = "dq_init,saturation,superbias,refpix,linearity,dark_current,jump,rate"
    with caplog.at_level(logging.WARNING, logger="daskref.prep"):
        assert steps_to_run(wanted, attrs) == ("linearity", "dark_current", "jump", "rate")
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="daskref.prep"):
        assert steps_to_run("rate", attrs) == ("rate",)
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "x_refpix.fits" in msg and "dq_init, saturation, superbias, refpix" in msg
    assert steps_to_run("dq_init,refpix", attrs) == ()


def test_check_implemented():
    nir = {"INSTRUME": "NIRCAM", "NFRAMES": 1}
    check_implemented(("group_scale", "dq_init", "refpix", "jump", "rate"), nir)
    for step in ("ipc", "persistence", "rscd"):
        with pytest.raises(StepNotImplementedError, match=f"step '{step}' is not implemented"):
            check_implemented(("dq_init", step, "jump"), nir)
    with pytest.raises(StepNotImplementedError) as err:
        check_implemented(steps_to_run("group_scale,dq_init,saturation,ipc,superbias,refpix",
                                       nir), nir)
    assert "--backend jwst" in str(err.value)
    assert "--steps group_scale,dq_init,saturation,superbias,refpix" in str(err.value)
    check_implemented(steps_to_run("refpix-", nir), nir)  # a range leaves ipc out
    # Already COMPLETE on the input: nothing to run, nothing to refuse.
    done = nir | {"S_IPC": "COMPLETE", "S_PERSIS": "COMPLETE"}
    check_implemented(steps_to_run("dark_current-", done), done)


def test_group_scale_factor():
    assert group_scale_factor({"NFRAMES": 1}) == 1.0
    assert group_scale_factor({"NFRAMES": 4}) == 1.0
    assert group_scale_factor({"NFRAMES": 5, "FRMDIVSR": 8}) == 8 / 5
    assert group_scale_factor({"NFRAMES": 4, "FRMDIVSR": 4}) == 1.0
    with pytest.raises(StepNotImplementedError, match="FRMDIVSR"):
        group_scale_factor({"NFRAMES": 5})


def test_pipeline_config__skips_everything_not_run():
    cfg = pipeline_config(["dq_init", "saturation", "superbias", "refpix"],
                          refs={"mask": "m.fits", "superbias": "sb.fits", "readnoise": None},
                          params={"odd_even_rows": False, "rejection_threshold": 100.0},
                          output_dir="out")
    steps = cfg["steps"]
    assert set(steps) == set(DETECTOR1_STEPS)
    ran = {name for name, c in steps.items() if not c["skip"]}
    assert ran == {"dq_init", "saturation", "superbias", "refpix"}
    assert steps["dq_init"]["override_mask"] == "m.fits"
    assert steps["superbias"]["override_superbias"] == "sb.fits"
    assert "override_saturation" not in steps["saturation"]  # left to CRDS
    assert steps["refpix"]["odd_even_rows"] is False
    assert "rejection_threshold" not in steps["jump"]  # jump does not run
    assert steps["refpix"]["save_results"] is True
    assert cfg["save_results"] is False and cfg["output_dir"] == "out"


def test_pipeline_config__ramp_fit_saves_rate_products():
    cfg = pipeline_config(["jump", "rate"], refs={"readnoise": "rn.fits", "gain": "g.fits"},
                          params={"save_opt": True, "rejection_threshold": 5.0})
    steps = cfg["steps"]
    assert not steps["ramp_fit"]["skip"] and not steps["jump"]["skip"]
    assert steps["ramp_fit"]["override_readnoise"] == "rn.fits"
    assert steps["jump"]["override_gain"] == "g.fits"
    assert steps["ramp_fit"]["save_opt"] is True
    assert steps["jump"]["rejection_threshold"] == 5.0
    assert cfg["save_results"] is True  # the pipeline writes _rate and _rateints
    assert steps["gain_scale"]["skip"] and steps["clean_flicker_noise"]["skip"]


def test_pipeline_config__needs_files():
    with pytest.raises(ValueError, match="needs a reference file for readnoise"):
        pipeline_config(["jump"], refs={"readnoise": 5.0})


def test_prep_jwst__not_installed(tmp_path):
    pytest.importorskip("numpy")
    try:
        import jwst  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover
        pytest.skip("jwst is installed")
    with pytest.raises(ImportError, match="needs the 'jwst' package"):
        prep_jwst([tmp_path / "x_uncal.fits"], steps="jump", outdir=tmp_path)
