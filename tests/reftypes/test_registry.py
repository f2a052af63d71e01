"""The registry: parameters declared once, typed, and everything generated from it."""

from __future__ import annotations

import inspect

import pytest

import daskref
from daskref.cli import build_parser
from daskref.reftypes import REGISTRY, ParameterError


def test_builtin_types_are_registered():
    assert {"readnoise", "superbias", "dark", "badpix_from_darks"} <= set(REGISTRY)
    assert REGISTRY["badpix_from_darks"].reftype == "MASK"
    assert REGISTRY["dark"].ssbsteps_miri.startswith("dq_init,saturation,firstframe")


@pytest.mark.parametrize("label", sorted(REGISTRY))
def test_defaults_and_kinds_come_from_the_algorithm(label):
    """From the algorithm's signature; else (files it cannot read) the build's; the
    combined MASK takes those of its halves."""
    rt = REGISTRY[label]
    signatures = [inspect.signature(f).parameters
                  for t in (rt, *rt.includes) for f in (t.algorithm, t.build)]
    for name, param in rt.parameters.items():
        where = next(s for s in signatures if name in s)
        assert param.default == where[name].default
        assert param.help


def test_the_combined_mask_takes_both_halves_parameters():
    combined = REGISTRY["bad_pixel_mask"]
    for half in ("badpix_from_darks", "badpix_from_flats"):
        for name, param in REGISTRY[half].parameters.items():
            assert combined.parameters[name] is param
    assert combined.resolve({"hot_threshold": "2", "smoothing_box_width": "9"}) == {
        "hot_threshold": 2.0, "smoothing_box_width": 9}
    # a file to read is a parameter of the build, not of the algorithm
    assert REGISTRY["badpix_from_flats"].parameters["manual_flag_file"].default == "default"


@pytest.mark.parametrize("label", sorted(REGISTRY))
def test_every_parameter_is_a_cli_flag_with_the_same_name(label):
    rt = REGISTRY[label]
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[rt.command]
    dests = {a.dest: a for a in sub._actions}
    for name, param in rt.parameters.items():
        assert name in dests, name
        flags = dests[name].option_strings
        assert f"--{name.replace('_', '-')}" in flags
        for alias in param.aliases:
            assert f"--{alias}" in flags or f"--{alias.replace('_', '-')}" in flags


def test_values_are_converted_to_their_declared_kind():
    rt = REGISTRY["badpix_from_darks"]
    out = rt.resolve({"max_jump_limit": "3", "hot_threshold": "2", "noisy_threshold": 4,
                      "dark_do_not_use": "hot, rc", "flag_values": "{hot: [HOT]}"})
    assert out == {"max_jump_limit": 3, "hot_threshold": 2.0, "dark_noisy_threshold": 4.0,
                   "dark_do_not_use": ["hot", "rc"], "flag_values": {"hot": ["HOT"]}}
    assert isinstance(out["max_jump_limit"], int)
    dark = REGISTRY["dark"]
    assert dark.resolve({"sigma_clip_inputs": "false"}) == {"sigma_clip_inputs": False}
    with pytest.raises(ParameterError, match="max_clipping_iters=2.5: expected int"):
        dark.resolve({"max_clipping_iters": 2.5})
    with pytest.raises(ParameterError, match="stat_to_use='mode': must be one of mean, median"):
        dark.resolve({"stat_to_use": "mode"})
    with pytest.raises(ParameterError, match="dark has no parameter 'sigma_treshold'"):
        dark.resolve({"sigma_treshold": 3})


def test_api_refuses_unknown_parameters(nircam_darks):
    with pytest.raises(ParameterError, match="readnoise has no parameter 'clip_sigma'"):
        daskref.readnoise(nircam_darks.paths, clip_sigma=3)
