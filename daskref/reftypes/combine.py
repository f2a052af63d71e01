"""Final reference files, and comparisons of a file with a previous one.

Several files of one type and detector are combined pixel by pixel.

The value extension (``SCI``, or ``COEFFS``) is combined by ``mean``, ``median`` or
``clipped_mean`` (3-sigma, 3 passes) over the files; ``ERR`` is propagated as the
standard error of that combination (``sqrt(sum err^2) / n`` times the estimator's
efficiency factor); ``DQ`` (and a MASK's only extension) is OR-ed. The header is the
first file's, with HISTORY naming every individual file; the result is validated
with its datamodel before it is renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import dq
from ..io.crds import CrdsMeta, write_reference
from ..kernels.stats import estimator_error_factor, sigma_clip_stats

METHODS = ("mean", "median", "clipped_mean")
VALUE_EXTENSIONS = ("SCI", "COEFFS", "AVDRKCUR")


def _stack(paths, name):
    arrays = []
    for p in paths:
        with fits.open(p, memmap=False) as hdul:
            arrays.append(np.asarray(hdul[name].data))
    return np.stack(arrays, axis=-1)  # files last


def combine_files(paths: Sequence[str | os.PathLike], out: str | os.PathLike, method: str,
                  meta: CrdsMeta | None = None) -> Path:
    """Combine reference files of one type and detector into a final one.

    Parameters
    ----------
    paths : sequence of path-like
        The individual files (same type, shape and detector).
    out : path-like
        The final file.
    method : {'mean', 'median', 'clipped_mean'}
    meta : CrdsMeta, optional
        Replaces AUTHOR/PEDIGREE/USEAFTER/DESCRIP where given.

    Returns
    -------
    pathlib.Path
    """
    if method not in METHODS:
        raise ValueError(f"combine must be one of {', '.join(METHODS)} (or none), not {method!r}")
    paths = [str(p) for p in paths]
    with fits.open(paths[0], memmap=False) as first:
        header = first[0].header.copy()
        names = [h.name for h in first[1:] if h.is_image]
        units = {h.name: h.header.get("BUNIT") for h in first[1:] if h.is_image}
        dq_def = first["DQ_DEF"].data.copy() if "DQ_DEF" in first else None
    for p in paths[1:]:
        if fits.getval(p, "REFTYPE") != header["REFTYPE"]:
            raise ValueError(f"{p}: REFTYPE differs from {paths[0]}'s; cannot combine")
    n = len(paths)
    images = []
    for name in names:
        stack = _stack(paths, name)
        if name in VALUE_EXTENSIONS:
            x = stack.astype(np.float64)
            if method == "median":
                value = sigma_clip_stats(x, sigma=np.inf, maxiters=0).median
            elif method == "clipped_mean":
                value = sigma_clip_stats(x, sigma=3.0, maxiters=3).mean
            else:
                value = np.nanmean(x, axis=-1) if np.isnan(x).any() else x.mean(axis=-1)
            images.append((name, value.astype(stack.dtype), units[name]))
        elif name == "ERR":
            stat = "median" if method == "median" else "mean"
            sigma, iters = (3.0, 3) if method == "clipped_mean" else (np.inf, 0)
            factor = float(estimator_error_factor(n, stat=stat, sigma=sigma, maxiters=iters))
            err = np.sqrt(np.sum(stack.astype(np.float64) ** 2, axis=-1)) / n * factor
            images.append((name, err.astype(stack.dtype), units[name]))
        else:  # DQ and other integer maps
            images.append((name, np.bitwise_or.reduce(stack, axis=-1), units[name]))
    keep = {k: header[k] for k in header if k not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND",
                                                      "HISTORY", "COMMENT", "")}
    keep["FILENAME"] = os.path.basename(str(out))
    keep["DATE"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    if meta is not None:
        keep.update(AUTHOR=meta.author, PEDIGREE=meta.pedigree, USEAFTER=meta.useafter)
        if meta.description:
            keep["DESCRIP"] = meta.description
    history = [f"Final file: {method} of {n} {header['REFTYPE']} files, pixel by pixel "
               "(ERR the standard error of the combination, DQ OR-ed):"]
    history += [os.path.basename(p) for p in paths]
    history += [str(h) for h in header.get("HISTORY", [])]
    dq_image = next((data for name, data, _ in images if name == "DQ"), None)
    if dq_def is not None and dq_image is not None:
        # OR-ing files may add flags the first file's DQ_DEF lacks: list exactly those used
        present = int(np.bitwise_or.reduce(dq_image.ravel().astype(np.uint32))) \
            if dq_image.size else 0
        known = {int(v) for v in dq_def["VALUE"]}
        if any(present & v and v not in known for v in dq.PIXEL.values()):
            dq_def = dq.dq_def(["GOOD"] + [f for f, v in dq.PIXEL.items()
                                           if v and (present & v or v in known)])
    return write_reference(out, keep, history, images, dq_def)


def compare_files(new: str | os.PathLike, previous: str | os.PathLike) -> dict:
    """How a reference file differs from a previous one of the same type.

    Returns
    -------
    dict
        ``median_ratio`` (new / previous value, finite pixels), ``changed_fraction``
        (pixels whose difference exceeds 3 combined sigmas, where both have ERR;
        else beyond 1 % of the value), and for DQ ``flags_added``/``flags_removed``
        (pixels gaining / losing each flag).
    """
    from .. import dq

    report: dict = {"file": str(new), "previous": str(previous)}
    with fits.open(new, memmap=False) as a, fits.open(previous, memmap=False) as b:
        value = next((n for n in VALUE_EXTENSIONS if n in a and n in b), None)
        if value is not None:
            x, y = np.asarray(a[value].data, float), np.asarray(b[value].data, float)
            if x.shape != y.shape:
                raise ValueError(f"{new} {value} {x.shape} and {previous} {y.shape} differ")
            ok = np.isfinite(x) & np.isfinite(y) & (y != 0)
            report["median_ratio"] = float(np.median(x[ok] / y[ok])) if ok.any() else None
            if "ERR" in a and "ERR" in b:
                s = np.hypot(np.asarray(a["ERR"].data, float), np.asarray(b["ERR"].data, float))
                changed = np.abs(x - y) > 3 * s
            else:
                changed = np.abs(x - y) > 0.01 * np.abs(y)
            report["changed_fraction"] = float(np.mean(changed[np.isfinite(x) & np.isfinite(y)]))
        if "DQ" in a and "DQ" in b:
            qa = np.asarray(a["DQ"].data).astype(np.uint32)
            qb = np.asarray(b["DQ"].data).astype(np.uint32)
            while qa.ndim > 2:
                qa = np.bitwise_or.reduce(qa, axis=0)
            while qb.ndim > 2:
                qb = np.bitwise_or.reduce(qb, axis=0)
            added, removed = {}, {}
            for name, bit in dq.PIXEL.items():
                if not bit:
                    continue
                plus = int(np.sum((qa & bit != 0) & (qb & bit == 0)))
                minus = int(np.sum((qa & bit == 0) & (qb & bit != 0)))
                if plus:
                    added[name] = plus
                if minus:
                    removed[name] = minus
            report["flags_added"], report["flags_removed"] = added, removed
    return report
