"""mkrefs config: default, merging, jwst_reffiles compatibility, overrides, types."""

from __future__ import annotations

import re

import pytest
import yaml

from daskref.orchestrate.config import (
    COMBINE_METHODS,
    ENV_CONFIGFILE,
    FRAMEWORK_KEYS,
    METADATA_KEYS,
    REFERENCES,
    ConfigError,
    default_config,
    default_config_text,
    load_config,
)
from daskref.prep.engine import REFTYPES as PREP_REFTYPES
from daskref.reftypes import REGISTRY

LONG_HISTORY = ("This is a long history entry. At the moment, mkrefs is not smart enough to "
                "look for multi-line strings, which means this is going to have to be a "
                "single long string.")

JWST_REFFILES_DARK = """\
instrument: NIRCam
reflabels: [bad_pixel_mask, dark]
reftypes: [bpm, dark, rdnoise, gain, linearity]
default_reflabels:
   bpm: bad_pixel_mask
   dark: dark
inputfiles:
   dark_pattern: Bias|Dark|BIAS|DARK|ZERO
   flat_pattern: GAIN|LIN
   basenamepattern: (.*)\\_uncal\\.fits$
   dateobs_fitskey: DATE-END
   timeobs_fitskey: TIME-END
   mjdobs_fitskey:
   requiredfitskeys: [INSTRUME,DETECTOR,NGROUPS,NINTS,TGROUP,SUBARRAY]
   optionalfitskeys: [FILTER,PUPIL]
output:
   outrootdir: $JWST_MKREFS_OUTDIR
   outsubdir: test1
   runID: AUTO
   runIDNdigits: 3
   addsuffix: bla
   ssbdir:
   skip_runID_ssbdir: True
   ssblogFlag: True
   reflogFlag: True
   pipeline_prod_search_dir:
batch:
   batch_enabled: False
   batchmode: Condor
test1: 4
reffile4ssb:
   gain: CRDS
   bpm: CRDS
   rdnoise: CRDS
   dark: CRDS
test4datamodel: False
validation:
   gainreffile: CRDS
   bpmreffile: CRDS
   darkreffile: CRDS
dark:
    reftype: dark
    imtypes: D+
    ssbsteps: dq_init, saturation, superbias, refpix, linearity, jump
    ssb_save_steps: None
    max_equivalent_groups: 60
    sigma_threshold: 3
    contribution_file: 'good_signals_per_group.pdf'
    pedigree: 'GROUND'
    use_after: 2037-09-30
    author: 'I. C. Nothing'
    descrip: 'New dark current file made using mkrefs'
    history: '@HISTORY@'
bad_pixel_mask:
    reftype: bpm
    imtypes: DF+
    ssbsteps: rate-
    dead_search: True
gain_armin:
    reftype: gain
    imtypes: DDFF
    ssbsteps: superbias-
    reffile4ssb:
        bpmreffile: /bla/bpm.fits
""".replace("@HISTORY@", LONG_HISTORY)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- default


def test_default_text_parses_to_default_config():
    text = default_config_text()
    assert yaml.safe_load(text) == default_config()
    # every key line carries a comment
    for line in text.splitlines():
        if re.match(r"^\s*\w[\w-]*: \S", line):
            assert "  # " in line, line


def test_default_has_every_registered_parameter_with_its_default():
    cfg = default_config()
    assert cfg["reflabels"] == list(REGISTRY)
    for label, rt in REGISTRY.items():
        sec = cfg[label]
        assert sec["reftype"] == rt.reftype
        assert sec["imtypes"] == rt.imtypes
        assert sec["ssbsteps"] == (rt.ssbsteps or "")
        assert ("ssbsteps_miri" in sec) == bool(rt.ssbsteps_miri)
        assert sec["ssb_save_steps"] == ""
        assert sec["combine"] == "mean"
        for name, p in rt.parameters.items():
            default = list(p.default) if isinstance(p.default, tuple) else p.default
            assert sec[name] == default, (label, name)
        assert sec["author"] == "daskref" and sec["pedigree"] == "GROUND"
        assert sec["useafter"] == "2000-01-01T00:00:00"
        assert sec["description"] is None and sec["history"] == []


def test_default_top_level_keys():
    cfg = default_config()
    assert cfg["inputfiles"]["dark_pattern"] == "Bias|Dark|BIAS|DARK|ZERO"
    assert cfg["inputfiles"]["requiredfitskeys"] == ["INSTRUME", "DETECTOR", "NGROUPS",
                                                     "NINTS", "SUBARRAY"]
    assert cfg["DD"] == {"max_Delta_MJD": 2.0} and cfg["DDFF"] == {"max_Delta_MJD": 10.0}
    assert cfg["output"]["runID"] == "AUTO" and cfg["output"]["skip_runID_ssbdir"] is True
    assert list(cfg["reffile4ssb"]) == list(REFERENCES) == list(cfg["validation"])
    assert set(REFERENCES) == set(PREP_REFTYPES)
    assert cfg["plugin_dirs"] == []


def test_default_loads_typed():
    cfg = load_config(environ={})
    assert cfg.sources == [] and cfg.notes == []
    assert cfg.reflabels == list(REGISTRY)
    assert cfg.data["output"]["pipeline_prod_search_dir"] == []
    assert cfg.data["reffile4ssb"] == dict.fromkeys(REFERENCES)
    for label, rt in REGISTRY.items():
        assert cfg.parameters(label) == rt.resolve(rt.defaults())
        fw = cfg.framework(label)
        assert list(fw) == list(FRAMEWORK_KEYS)
        assert fw["ssbsteps"] == rt.ssbsteps and fw["ssbsteps_miri"] == rt.ssbsteps_miri
        assert fw["ssb_save_steps"] == [] and fw["combine"] in COMBINE_METHODS
        assert list(cfg.metadata(label)) == list(METADATA_KEYS)
    assert yaml.safe_load(cfg.to_yaml()) == cfg.data


# --------------------------------------------------------------------------- main file


def test_user_file_overrides(tmp_path):
    path = write(tmp_path, "my.cfg", """
reflabels: [readnoise, dark]
output:
  outrootdir: /data/out
  runID: 7
DD:
  max_Delta_MJD:
readnoise:
  imtypes: DD
  method: ramp
  max_clipping_iters: 5
  combine: median
  history: [one, two]
badpix_from_darks:
  noisy_threshold: 4
  dark_do_not_use: hot, rc
  ssb_save_steps: jump, rate
""")
    cfg = load_config(path, environ={})
    assert cfg.sources == [str(path)]
    assert cfg.reflabels == ["readnoise", "dark"]
    out = cfg.data["output"]
    assert out["outrootdir"] == "/data/out" and out["runID"] == 7
    assert out["runIDNdigits"] == 3  # the default stays
    assert cfg.data["DD"]["max_Delta_MJD"] is None
    p = cfg.parameters("readnoise")
    assert p["method"] == "ramp" and p["max_clipping_iters"] == 5
    assert p["clipping_sigma"] == 3.0
    assert cfg.framework("readnoise")["imtypes"] == "DD"
    assert cfg.framework("readnoise")["combine"] == "median"
    assert cfg.metadata("readnoise")["history"] == ["one", "two"]
    b = cfg.parameters("badpix_from_darks")
    assert b["dark_noisy_threshold"] == 4.0 and isinstance(b["dark_noisy_threshold"], float)
    assert b["dark_do_not_use"] == ["hot", "rc"]
    assert cfg.framework("badpix_from_darks")["ssb_save_steps"] == ["jump", "rate"]


def test_typo_in_known_section_names_key_section_and_file(tmp_path):
    path = write(tmp_path, "typo.cfg", "dark:\n  sigma_treshold: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    msg = str(exc.value)
    assert "sigma_treshold" in msg and "'dark'" in msg and str(path) in msg
    assert "did you mean 'sigma_threshold'" in msg


def test_typo_in_framework_section(tmp_path):
    path = write(tmp_path, "typo.cfg", "output:\n  outroot: x\n")
    with pytest.raises(ConfigError, match=r"typo.cfg: section 'output' has no key 'outroot'"):
        load_config(path, environ={})


def test_unknown_sections_and_test1_are_notes(tmp_path):
    path = write(tmp_path, "extra.cfg", """
test1: 4
gain_armin:
  reftype: gain
  imtypes: DDFF
  ssbsteps: superbias-
batch:
  batch_enabled: false
""")
    cfg = load_config(path, environ={})
    notes = "\n".join(cfg.notes)
    assert f"{path}: section 'gain_armin' is not a reflabel daskref has (no plug-in); ignored" \
        in cfg.notes
    assert "'test1'" in notes and "'batch'" in notes
    assert "gain_armin" not in cfg.data and "test1" not in cfg.data
    assert cfg.ignored["test1"] == 4 and cfg.ignored["gain_armin"]["imtypes"] == "DDFF"


def test_jwst_reffiles_dark_config_loads(tmp_path):
    path = write(tmp_path, "mkrefs.cfg", JWST_REFFILES_DARK)
    cfg = load_config(path, environ={"JWST_MKREFS_OUTDIR": "/scratch/refs"})
    # bad_pixel_mask is daskref's combined MASK; the section keeps jwst_reffiles' imtypes
    assert cfg.reflabels == ["bad_pixel_mask", "dark"]
    assert cfg.framework("bad_pixel_mask")["imtypes"] == "DF+"
    fw = cfg.framework("dark")
    assert fw["reftype"] == "DARK" and fw["imtypes"] == "D+"
    assert fw["ssbsteps"] == "dq_init, saturation, superbias, refpix, linearity, jump"
    assert fw["ssb_save_steps"] == []
    p = cfg.parameters("dark")
    assert p["sigma_threshold"] == 3.0 and isinstance(p["sigma_threshold"], float)
    meta = cfg.metadata("dark")
    assert meta["useafter"] == "2037-09-30T00:00:00"
    assert meta["author"] == "I. C. Nothing" and meta["pedigree"] == "GROUND"
    assert meta["description"] == "New dark current file made using mkrefs"
    assert meta["history"] == [LONG_HISTORY]
    assert "use_after" not in cfg.section("dark") and "descrip" not in cfg.section("dark")
    notes = "\n".join(cfg.notes)
    for word in ("max_equivalent_groups", "contribution_file", "ssblogFlag", "reflogFlag",
                 "'instrument'", "'reftypes'", "'default_reflabels'", "'batch'", "'test1'",
                 "'test4datamodel'", "'gain_armin'"):
        assert word in notes, word
    assert "section 'gain_armin' is not a reflabel daskref has (no plug-in)" in notes
    assert cfg.ignored["dark"]["max_equivalent_groups"] == 60
    out = cfg.data["output"]
    assert out["outrootdir"] == "/scratch/refs" and out["addsuffix"] == "bla"
    assert out["pipeline_prod_search_dir"] == [] and out["ssbdir"] == ""
    assert cfg.data["inputfiles"]["mjdobs_fitskey"] == ""
    # jwst_reffiles' reference names map to the CRDS types
    refs = cfg.data["reffile4ssb"]
    assert refs["mask"] == refs["readnoise"] == refs["gain"] == refs["dark"] == "CRDS"
    assert refs["superbias"] is None
    assert cfg.data["validation"]["mask"] == "CRDS"


def test_reftype_abbreviation_and_mismatch(tmp_path):
    ok = write(tmp_path, "ok.cfg", "badpix_from_darks:\n  reftype: bpm\nreadnoise:\n"
                                   "  reftype: rdnoise\n")
    cfg = load_config(ok, environ={})
    assert cfg.framework("badpix_from_darks")["reftype"] == "MASK"
    assert cfg.framework("readnoise")["reftype"] == "READNOISE"
    bad = write(tmp_path, "bad.cfg", "dark:\n  reftype: gain\n")
    with pytest.raises(ConfigError, match="dark makes DARK files"):
        load_config(bad, environ={})


def test_section_reffile4ssb_override(tmp_path):
    path = write(tmp_path, "o.cfg", "reffile4ssb:\n  gain: /refs/gain.fits\n"
                                    "dark:\n  reffile4ssb:\n    bpmreffile: /refs/bpm.fits\n")
    cfg = load_config(path, environ={})
    refs = cfg.references("dark")
    assert refs["mask"] == "/refs/bpm.fits" and refs["gain"] == "/refs/gain.fits"
    assert cfg.references("readnoise")["mask"] is None


@pytest.mark.parametrize("text, match", [
    ("dark:\n  combine: average\n", "combine"),
    ("dark:\n  ssbsteps: dq_init, satur\n", "satur"),
    ("dark:\n  stat_to_use: mode\n", "stat_to_use"),
    ("dark:\n  useafter: yesterday\n", "useafter"),
    ("dark:\n  pedigree: FLIGHT\n", "pedigree"),
    ("dark:\n  description: " + "x" * 70 + "\n", "65"),
    ("output:\n  runID: latest\n", "runID"),
    ("output: here\n", "is a section"),
    ("DD:\n  max_Delta_MJD: soon\n", "max_Delta_MJD"),
    ("inputfiles:\n  dark_pattern: '(['\n", "regular expression"),
    ("dark:\n  sigma_threshold: 3\n  max_clipping_iters: 2\n  sigma_clip_inputs: 3\n",
     "sigma_clip_inputs"),
])
def test_bad_values(tmp_path, text, match):
    path = write(tmp_path, "bad.cfg", text)
    with pytest.raises(ConfigError, match=match):
        load_config(path, environ={})


def test_string_for_int_parameter_is_an_error(tmp_path):
    path = write(tmp_path, "bad.cfg", "readnoise:\n  max_clipping_iters: '2.5'\n")
    with pytest.raises(ConfigError, match=r"bad.cfg: section 'readnoise'.*max_clipping_iters"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="max_clipping_iters"):
        load_config(pp=[("readnoise", "max_clipping_iters", "2.5")], environ={})


def test_alias_given_twice(tmp_path):
    path = write(tmp_path, "twice.cfg", "dark:\n  useafter: 2020-01-01\n  use_after: 2021-01-01\n")
    with pytest.raises(ConfigError, match="twice"):
        load_config(path, environ={})


def test_ssbsteps_none_string_means_no_prep(tmp_path):
    path = write(tmp_path, "n.cfg", "dark:\n  ssbsteps: None\n  ssbsteps_miri: ''\n")
    fw = load_config(path, environ={}).framework("dark")
    assert fw["ssbsteps"] is None and fw["ssbsteps_miri"] is None
    path = write(tmp_path, "r.cfg", "superbias:\n  ssbsteps: refpix-\n")
    assert load_config(path, environ={}).framework("superbias")["ssbsteps"] == "refpix-"


# --------------------------------------------------------------------------- overlays


def test_extra_file_changes_existing_keys(tmp_path):
    main = write(tmp_path, "main.cfg", "dark:\n  sigma_threshold: 4\n")
    extra = write(tmp_path, "extra.cfg", "dark:\n  sigma_threshold: 5\n  use_after: 2030-01-01\n"
                                         "output:\n  outsubdir: trial\n")
    cfg = load_config(main, [extra], environ={})
    assert cfg.sources == [str(main), str(extra)]
    assert cfg.parameters("dark")["sigma_threshold"] == 5.0
    assert cfg.metadata("dark")["useafter"] == "2030-01-01T00:00:00"
    assert cfg.data["output"]["outsubdir"] == "trial"


@pytest.mark.parametrize("text, key", [
    ("dark:\n  new_key: 1\n", "new_key"),
    ("newsection:\n  a: 1\n", "newsection"),
    ("test1: 5\n", "test1"),
])
def test_extra_file_new_key_is_an_error(tmp_path, text, key):
    extra = write(tmp_path, "extra.cfg", text)
    with pytest.raises(ConfigError) as exc:
        load_config(None, [extra], environ={})
    assert key in str(exc.value) and str(extra) in str(exc.value)


def test_extra_file_may_change_set_aside_keys(tmp_path):
    main = write(tmp_path, "main.cfg", "test1: 4\n")
    extra = write(tmp_path, "extra.cfg", "test1: 5\n")
    cfg = load_config(main, [extra], environ={})
    assert cfg.ignored["test1"] == 5


# --------------------------------------------------------------------------- options


def test_command_line_values_are_typed_by_the_registry():
    cfg = load_config(pp=[("dark", "sigma_threshold", "4"),
                          ("badpix_from_darks", "max_jump_limit", "3"),
                          ("readnoise", "single_value", "true"),
                          ("output", "runID", "12")],
                      pall=[("clipping_sigma", "4")],
                      params=[("reflabels", "[dark, readnoise]")], environ={})
    s = cfg.parameters("dark")["sigma_threshold"]
    assert s == 4.0 and isinstance(s, float)
    j = cfg.parameters("badpix_from_darks")["max_jump_limit"]
    assert j == 3 and isinstance(j, int)
    assert cfg.parameters("readnoise")["single_value"] is True
    assert cfg.data["output"]["runID"] == 12
    assert cfg.parameters("readnoise")["clipping_sigma"] == 4.0
    assert cfg.parameters("superbias")["clipping_sigma"] == 4.0
    assert cfg.parameters("badpix_from_darks")["dark_stdev_clipping_sigma"] == 5.0
    assert cfg.reflabels == ["dark", "readnoise"]


def test_option_order_and_aliases():
    cfg = load_config(pall=[("use_after", "2024-05-01"), ("max_clipping_iters", "4")],
                      pp=[("dark", "max_clipping_iters", "9"),
                          ("badpix_from_darks", "noisy_threshold", "6")], environ={})
    for label in REGISTRY:
        assert cfg.metadata(label)["useafter"] == "2024-05-01T00:00:00"
    assert cfg.parameters("readnoise")["max_clipping_iters"] == 4
    assert cfg.parameters("dark")["max_clipping_iters"] == 9  # --pp after --pall
    assert cfg.parameters("badpix_from_darks")["dark_noisy_threshold"] == 6.0


@pytest.mark.parametrize("kwargs, match", [
    ({"params": [("nothing", "1")]}, "nothing"),
    ({"params": [("output", "1")]}, "is a section"),
    ({"pp": [("dark", "clipping_sigma", "4")]}, "clipping_sigma"),
    ({"pp": [("nosection", "a", "4")]}, "nosection"),
    ({"pp": [("output", "nokey", "4")]}, "nokey"),
    ({"pall": [("nowhere", "1")]}, "nowhere"),
])
def test_options_for_keys_that_exist_nowhere(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_config(environ={}, **kwargs)


def test_unparsable_yaml_option_stays_a_string():
    cfg = load_config(pp=[("reffile4ssb", "mask", "*mask.fits")], environ={})
    assert cfg.data["reffile4ssb"]["mask"] == "*mask.fits"


# --------------------------------------------------------------------------- environment


def test_environment_variables(tmp_path):
    path = write(tmp_path, "env.cfg", """
output:
  outrootdir: $ROOT/refs
  outsubdir: ${SUB}x
  ssbdir: cost$$
plugin_dirs: [$ROOT/plugins]
dark:
  sigma_threshold: $SIG
""")
    cfg = load_config(path, environ={"ROOT": "/data", "SUB": "trial", "SIG": "2.5"})
    out = cfg.data["output"]
    assert out["outrootdir"] == "/data/refs" and out["outsubdir"] == "trialx"
    assert out["ssbdir"] == "cost$"
    assert cfg.data["plugin_dirs"] == ["/data/plugins"]
    assert cfg.parameters("dark")["sigma_threshold"] == 2.5
    # a regex ending with $ is left alone
    assert load_config(environ={}).data["inputfiles"]["dark_pattern"].endswith("ZERO")


def test_unset_variable_names_key_and_variable(tmp_path):
    path = write(tmp_path, "env.cfg", "output:\n  outrootdir: $JWST_MKREFS_OUTDIR\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ={})
    msg = str(exc.value)
    assert "output.outrootdir" in msg and "JWST_MKREFS_OUTDIR" in msg and str(path) in msg
    # a value replaced on the command line needs no variable
    cfg = load_config(path, pp=[("output", "outrootdir", "/tmp/x")], environ={})
    assert cfg.data["output"]["outrootdir"] == "/tmp/x"


def test_configfile_from_environment(tmp_path):
    path = write(tmp_path, "env_default.cfg", "readnoise:\n  method: ramp\n")
    cfg = load_config(environ={ENV_CONFIGFILE: str(path)})
    assert cfg.sources == [str(path)]
    assert cfg.parameters("readnoise")["method"] == "ramp"
    # an explicit file wins over the variable
    other = write(tmp_path, "other.cfg", "readnoise:\n  method: stack\n")
    cfg = load_config(other, environ={ENV_CONFIGFILE: str(path)})
    assert cfg.sources == [str(other)]


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.cfg", environ={})
    bad = write(tmp_path, "list.cfg", "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad, environ={})
    empty = write(tmp_path, "empty.cfg", "")
    assert load_config(empty, environ={}).data == load_config(environ={}).data


def test_section_of_unknown_reflabel():
    cfg = load_config(environ={})
    with pytest.raises(KeyError):
        cfg.section("photom")  # no such reflabel (GAIN now has one)


def test_sections_come_from_the_registry_given():
    from daskref.reftypes import Param, RefType

    def algorithm(stack, *, box: int = 3, names: tuple[str, ...] = ("a", "b"),
                  scale: float | None = None):
        return stack

    rt = RefType(reflabel="gain_plugin", reftype="GAIN", datamodel="GainModel",
                 summary="a plug-in", inputs="flats", imtypes="FF", ssbsteps="rate-",
                 algorithm=algorithm, build=algorithm, write=algorithm,
                 params=[Param("box", "box size", aliases=("box_width",)),
                         Param("names", "names"), Param("scale", "scale")])
    registry = {"gain_plugin": rt}
    assert default_config(registry)["gain_plugin"]["names"] == ["a", "b"]
    cfg = load_config(pp=[("gain_plugin", "box_width", "5"), ("gain_plugin", "scale", "None")],
                      registry=registry, environ={})
    assert cfg.reflabels == ["gain_plugin"]
    assert cfg.parameters("gain_plugin") == {"box": 5, "names": ["a", "b"], "scale": None}
    assert cfg.framework("gain_plugin")["ssbsteps"] == "rate-"
    assert "dark" not in cfg.data
