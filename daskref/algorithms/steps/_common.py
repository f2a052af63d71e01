"""What every calibration-prep step shares: step names, status keywords."""

from __future__ import annotations

import xarray as xr

#: Status keyword written by each step (level-1b / stage-1 ``S_*`` header keys).
STEP_KEYWORDS: dict[str, str] = {
    "group_scale": "S_GRPSCL",
    "dq_init": "S_DQINIT",
    "saturation": "S_SATURA",
    "ipc": "S_IPC",
    "superbias": "S_SUPERB",
    "refpix": "S_REFPIX",
    "linearity": "S_LINEAR",
    "persistence": "S_PERSIS",
    "dark_current": "S_DARK",
    "firstframe": "S_FRSTFR",
    "lastframe": "S_LASTFR",
    "rscd": "S_RSCD",
    "jump": "S_JUMP",
    "rate": "S_RAMP",
}


def mark_done(ds: xr.Dataset, step: str) -> xr.Dataset:
    """Return ``ds`` with the step's ``S_*`` status attribute set to ``COMPLETE``."""
    out = ds.copy()
    out.attrs = dict(ds.attrs)
    out.attrs[STEP_KEYWORDS[step]] = "COMPLETE"
    return out


def is_done(attrs, step: str) -> bool:
    """True when the header attributes say ``step`` already ran."""
    return str(attrs.get(STEP_KEYWORDS[step], "")).strip().upper() == "COMPLETE"
