"""Quality assessment beside every reference file: a JSON summary and a picture.

:func:`qa` reads a written reference file (any REFTYPE daskref makes, or a previous
file to compare with) and writes beside it

* ``<name>_qa.json``: per image extension and plane, the median, robust sigma
  (1.4826 MAD) and percentiles of the science pixels, per amplifier and over all of
  them; NaN and flagged fractions; the counts of every DQ flag; the inputs, the
  parameters and the daskref version from the HISTORY; with ``compare``, the
  differences from the previous file;
* ``<name>_qa.png`` (with matplotlib, the ``qa`` extra): the image with a robust
  stretch and a colour bar, its histogram and the per-amplifier table; for a MASK the
  flags in colour with their counts; for a DARK the dark-rate image and the mean dark
  signal per group; for LINEARITY the correction of a few typical pixels; for GAIN
  the photon-transfer points and fits; with ``compare`` the difference (or ratio)
  image, and for a MASK the pixels that gained or lost each flag.

:func:`index_page` writes a self-contained HTML page (the PNGs embedded) for a run.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from . import __version__, dq
from .geometry import amplifier_index, reference_pixel_mask
from .io.pictures import pyplot, save_png

log = logging.getLogger("daskref")

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
#: Extensions summarised (those present), by REFTYPE; others: every image extension.
VALUE_EXTENSIONS = ("SCI", "ERR", "COEFFS", "AVDRKCUR")
#: Quantities compared as a ratio (multiplicative); the others as a difference.
RATIO_TYPES = ("READNOISE", "GAIN", "SATURATION")
#: Changed beyond the errors: this many combined sigmas.
CHANGE_SIGMAS = 3.0


def qa_paths(path) -> tuple[Path, Path]:
    """``(<name>_qa.json, <name>_qa.png)`` beside a reference file."""
    path = Path(path)
    stem = path.name.removesuffix(".fits")
    return path.with_name(f"{stem}_qa.json"), path.with_name(f"{stem}_qa.png")


def robust_stats(values: np.ndarray, *, presorted: bool = False) -> dict:
    """Median, robust sigma (1.4826 MAD), mean and percentiles of the finite values.

    The percentiles are numpy's (linear interpolation), taken from one sort of the
    values: a full-frame cube has thousands of (plane, amplifier) sets to summarise.
    """
    v = np.asarray(values)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    if not presorted:
        v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return {"n": 0}

    def quantile(q):
        pos = q * (v.size - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, v.size - 1)
        return float(v[lo]) + (pos - lo) * (float(v[hi]) - float(v[lo]))

    median = quantile(0.5)
    deviation = np.abs(v.astype(np.float64) - median)
    return {"n": int(v.size), "median": median,
            "robust_sigma": float(1.4826 * np.median(deviation)),
            "mean": float(v.mean(dtype=np.float64)),
            "percentiles": {str(p): quantile(p / 100) for p in PERCENTILES}}


def _planes(data: np.ndarray) -> np.ndarray:
    """Any array as (plane, y, x)."""
    return data.reshape((-1,) + data.shape[-2:]) if data.ndim > 2 else data[None]


def _history(header) -> dict:
    """Inputs, call and software from daskref's HISTORY entries."""
    lines = [str(h) for h in header.get("HISTORY", [])]
    text = " ".join(lines)
    out: dict = {"inputs": [], "call": None, "software": None}
    match = re.search(r"Created by daskref [^:]+: (.*?\))\.\s*Software:", text)
    if match:
        out["call"] = match.group(1)
    match = re.search(r"Software: (.*?)\.\s", text + " ")
    if match:
        out["software"] = match.group(1)
    for k, line in enumerate(lines):
        if line.startswith("DATA USED"):
            n = int(re.search(r"\((\d+) files", line).group(1)) if "files" in line else 0
            out["inputs"] = [s.strip() for s in lines[k + 1:k + 1 + n]]
            break
    return out


def _plane_stats(plane: np.ndarray, science: np.ndarray, amps: np.ndarray):
    """(stats of all science pixels, per-amplifier stats) of one plane."""
    groups = []
    for a in np.unique(amps):
        v = plane[:, amps == a][science[:, amps == a]]
        groups.append((int(a), np.sort(v[np.isfinite(v)])))
    # the amplifiers' sorted runs merge quickly in a stable (run-aware) sort
    every = np.sort(np.concatenate([g for _, g in groups]), kind="stable")
    return (robust_stats(every, presorted=True),
            [dict(amp=a, **robust_stats(g, presorted=True)) for a, g in groups])


@dataclass
class ReferenceFile:
    """A reference file read once: its primary header and image extensions."""

    path: Path
    header: fits.Header
    exts: dict
    units: dict


def read_reference(path) -> ReferenceFile:
    """Read a file's primary header and image data (a ReferenceFile passes through)."""
    if isinstance(path, ReferenceFile):
        return path
    with fits.open(path, memmap=False) as hdul:
        return ReferenceFile(
            path=Path(path), header=hdul[0].header.copy(),
            exts={h.name: np.asarray(h.data) for h in hdul[1:]
                  if h.is_image and h.data is not None},
            units={h.name: h.header.get("BUNIT") for h in hdul[1:] if h.is_image})


def summarize(path) -> dict:
    """The QA summary of a reference file (what ``_qa.json`` holds).

    ``path`` may be a :class:`ReferenceFile` already read.
    """
    f = read_reference(path)
    primary, exts, units = f.header, f.exts, f.units
    header = dict(primary)
    reftype = str(primary.get("REFTYPE", ""))
    attrs = {k: header[k] for k in ("INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1",
                                    "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "NOUTPUTS")
             if k in header}
    dq_map = exts.get("DQ")
    shape = next(iter(exts.values())).shape[-2:] if exts else (0, 0)
    science = ~reference_pixel_mask(attrs, shape) if attrs.get("INSTRUME") else np.ones(
        shape, bool)
    amps = amplifier_index(attrs, shape) if attrs.get("INSTRUME") else np.zeros(shape[1], int)
    flagged2d = None
    if dq_map is not None:
        pixel_dq = dq_map.reshape((-1,) + shape)
        flagged2d = np.bitwise_or.reduce(pixel_dq, axis=0) & ~np.uint32(dq.REFERENCE_PIXEL)
    summary = {
        "file": f.path.name, "reftype": reftype,
        **{k.lower(): attrs.get(k) for k in ("INSTRUME", "DETECTOR", "SUBARRAY")},
        "daskref_version": __version__,
        "qa_pixels": "science pixels (reference pixels left out); amplifiers by column",
        **_history(primary),
        "keywords": {k: header[k] for k in header
                     if re.match(r"^(BP[MFD][A-Z]+|AVDRKCUR|NFRAMES|NGROUPS|READPATT)$", k)},
        "extensions": {},
    }
    for name, data in exts.items():
        if name == "DQ" or (name not in VALUE_EXTENSIONS and data.dtype.kind not in "fiu"):
            continue
        planes = _planes(np.asarray(data))

        def plane_entry(k, planes=planes):
            p = planes[k] if planes.dtype.kind == "f" else planes[k].astype(np.float64)
            every, per_amp = _plane_stats(p, science, amps)
            entry = {"plane": k, "nan_fraction": float(np.mean(~np.isfinite(p[science]))),
                     "all": every, "amplifiers": per_amp}
            if flagged2d is not None:
                entry["flagged_fraction"] = float(np.mean(flagged2d[science] != 0))
            return entry

        # numpy's sorts release the GIL: the planes of a cube in parallel
        with ThreadPoolExecutor(max_workers=min(len(planes), os.cpu_count() or 1)) as pool:
            entries = list(pool.map(plane_entry, range(len(planes))))
        summary["extensions"][name] = {"shape": list(data.shape), "unit": units.get(name),
                                       "planes": entries}
    if dq_map is not None:
        combined = np.bitwise_or.reduce(dq_map.reshape((-1,) + shape), axis=0)
        summary["dq"] = {
            "counts": {n: int(np.count_nonzero(combined & v)) for n, v in dq.PIXEL.items()
                       if v and np.any(combined & v)},
            "flagged_fraction": float(np.mean(combined[science] != 0)),
            "do_not_use_fraction": float(np.mean((combined[science] & dq.DO_NOT_USE) != 0)),
        }
    return summary


def _values(f: ReferenceFile, name="SCI") -> tuple[np.ndarray | None, np.ndarray | None]:
    names = f.exts
    pick = name if name in names else next(
        (n for n in VALUE_EXTENSIONS if n in names), "DQ" if "DQ" in names else None)
    data = None if pick is None else names[pick]
    err = names["ERR"] if "ERR" in names and pick == "SCI" else None
    return data, err


def compare_files(path, previous) -> dict:
    """How a reference file differs from a previous one of the same type.

    Value types: the median and robust sigma of the difference (ratio for
    :data:`RATIO_TYPES`) over science pixels, and the fraction of pixels changed by
    more than :data:`CHANGE_SIGMAS` combined errors (ERR where both files have it,
    else the robust sigma of the difference). MASK: per flag, pixels gained and lost.

    Raises
    ------
    ValueError
        Files of different REFTYPEs or shapes.
    """
    f1, f0 = read_reference(path), read_reference(previous)
    h1, h0 = f1.header, f0.header
    if str(h1.get("REFTYPE")) != str(h0.get("REFTYPE")):
        raise ValueError(f"{previous}: REFTYPE {h0.get('REFTYPE')} is not {h1.get('REFTYPE')}")
    reftype = str(h1.get("REFTYPE"))
    out: dict = {"previous": f0.path.name, "reftype": reftype}
    if reftype == "MASK":
        new, old = f1.exts["DQ"], f0.exts["DQ"]
        if new.shape != old.shape:
            raise ValueError(f"{previous}: DQ shape {old.shape} is not {new.shape}")
        out["flags"] = {n: {"gained": int(np.count_nonzero((new & v) & ~(old & v))),
                            "lost": int(np.count_nonzero((old & v) & ~(new & v)))}
                        for n, v in dq.PIXEL.items() if v and np.any((new | old) & v)}
        out["changed_fraction"] = float(np.mean(new != old))
        return out
    (new, err1), (old, err0) = _values(f1), _values(f0)
    if new.shape != old.shape:
        raise ValueError(f"{previous}: shape {old.shape} is not {new.shape}")
    attrs = dict(h1)
    science = ~reference_pixel_mask(attrs, new.shape[-2:])
    science = np.broadcast_to(science, new.shape)
    ratio = reftype in RATIO_TYPES
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = new / old if ratio else new.astype(np.float64) - old
        if err1 is not None and err0 is not None:
            sigma = np.hypot(err1, err0) / (np.abs(old) if ratio else 1.0)
            how = "ERR of both files"
        else:
            d = delta[science & np.isfinite(delta)]
            sigma = 1.4826 * np.median(np.abs(d - np.median(d))) if d.size else np.nan
            how = "robust sigma of the difference"
        centre = 1.0 if ratio else 0.0
        changed = np.abs(delta - centre) > CHANGE_SIGMAS * sigma
    out.update({"kind": "ratio" if ratio else "difference",
                "stats": robust_stats(delta[science]),
                "changed_fraction": float(np.mean(changed[science & np.isfinite(delta)])),
                "change_threshold": f"{CHANGE_SIGMAS:g} sigma ({how})"})
    return out


def qa(path, *, compare=None, picture: bool = True) -> list[Path]:
    """Write ``<name>_qa.json`` (and ``_qa.png``) beside a reference file.

    Parameters
    ----------
    path : path-like
        The reference file.
    compare : path-like, optional
        A previous file of the same type (the one in use): adds the comparison.
    picture : bool
        Also draw the PNG (needs matplotlib; skipped with a log line without it).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from .io.exposure_writer import atomic_path

    f = read_reference(path)  # read once for the summary, the comparison and the picture
    previous = None if compare is None else read_reference(compare)
    summary = summarize(f)
    if previous is not None:
        summary["compare"] = compare_files(f, previous)
    json_path, png_path = qa_paths(path)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=float))
    out = [json_path]
    if picture and draw(f, png_path, summary, compare=previous) is not None:
        out.append(png_path)
    return out


def _stretch(image: np.ndarray) -> tuple[float, float]:
    v = image[np.isfinite(image)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


#: Colours of the MASK flags drawn (the most frequent ones get the first colours).
FLAG_COLOURS = ("red", "orange", "gold", "limegreen", "cyan", "royalblue", "magenta",
                "black", "saddlebrown", "grey", "pink", "teal")


def draw(path, png, summary: dict | None = None, *, compare=None):
    """The QA picture of a reference file; its path, or None without matplotlib."""
    plt = pyplot(png)
    if plt is None:
        return None
    ref = read_reference(path)
    summary = summary or summarize(ref)
    reftype = summary["reftype"]
    rows = 2 if compare is not None else 1
    fig, axes = plt.subplots(rows, 3, figsize=(17, 5.2 * rows), squeeze=False)
    title = (f"{summary['file']}: {reftype} {summary.get('instrume') or ''} "
             f"{summary.get('detector') or ''} {summary.get('subarray') or ''}")
    fig.suptitle(title)
    if reftype == "MASK":
        _draw_mask(fig, axes[0], ref.exts["DQ"])
    else:
        _draw_values(fig, axes[0], ref, summary)
    if compare is not None:
        _draw_compare(fig, axes[1], ref, read_reference(compare), summary["compare"])
    fig.tight_layout()
    return save_png(fig, png, dpi=80)


def _image_panel(fig, ax, image, label, cmap="viridis"):
    lo, hi = _stretch(image)
    im = ax.imshow(image, origin="lower", cmap=cmap, vmin=lo, vmax=hi,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label=label)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")


def _table_panel(ax, stats: dict, unit: str):
    ax.axis("off")
    cells = [[str(a["amp"]), f"{a.get('median', np.nan):.4g}",
              f"{a.get('robust_sigma', np.nan):.3g}",
              f"{a.get('percentiles', {}).get('1', np.nan):.4g}",
              f"{a.get('percentiles', {}).get('99', np.nan):.4g}", str(a["n"])]
             for a in stats["amplifiers"]]
    all_ = stats["all"]
    cells.append(["all", f"{all_.get('median', np.nan):.4g}",
                  f"{all_.get('robust_sigma', np.nan):.3g}",
                  f"{all_.get('percentiles', {}).get('1', np.nan):.4g}",
                  f"{all_.get('percentiles', {}).get('99', np.nan):.4g}", str(all_["n"])])
    table = ax.table(cellText=cells, colLabels=["amp", f"median {unit}", "robust sigma",
                                                "1 %", "99 %", "pixels"], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.1, 1.6)
    ax.set_title(f"per amplifier (NaN {stats['nan_fraction']:.2%}"
                 + (f", flagged {stats['flagged_fraction']:.2%}" if "flagged_fraction" in stats
                    else "") + ")")


def _draw_values(fig, axes, ref, summary):
    ext = next((n for n in VALUE_EXTENSIONS if n in summary["extensions"]), None)
    if ext is None:
        for ax in axes:
            ax.axis("off")
        return
    data = ref.exts[ext]
    unit = summary["extensions"][ext]["unit"] or ""
    planes = _planes(np.asarray(data, np.float64))
    index = 0
    label = f"{ext} ({unit})"
    if summary["reftype"] == "DARK":
        from .reftypes._base import ancillary_path

        rate_file = ancillary_path(ref.path, "darkrate")
        if rate_file.exists():
            image, label = fits.getdata(rate_file).astype(np.float64), "dark rate (DN/s)"
        else:
            index = planes.shape[0] - 1
            image, label = planes[index], f"last group of SCI ({unit})"
    elif summary["reftype"] == "LINEARITY" and planes.shape[0] > 2:
        index = 2  # the quadratic term: where the non-linearity shows
        image, label = planes[2], "COEFFS[2] (1/DN)"
    else:
        image = planes[index]
    _image_panel(fig, axes[0], image, label)
    axes[0].set_title(label)
    stats = summary["extensions"][ext]["planes"][index]
    if summary["reftype"] == "LINEARITY" and planes.shape[0] > 2:
        _linearity_curves(axes[1], planes, ref)
    elif summary["reftype"] == "GAIN" and _ptc_curves(axes[1], ref):
        pass
    elif summary["reftype"] == "DARK" and planes.shape[0] > 1:
        science = np.isfinite(planes[0])
        means = [float(np.nanmean(p[science])) for p in planes]
        axes[1].plot(np.arange(len(means)), means, "o-")
        axes[1].set_xlabel("group (plane)")
        axes[1].set_ylabel(f"mean dark signal ({unit})")
        axes[1].set_title("mean dark signal per group")
    else:
        v = image[np.isfinite(image)]
        lo, hi = _stretch(image)
        axes[1].hist(v, bins=np.linspace(lo, hi, 200), color="steelblue", log=True)
        axes[1].set_xlabel(label)
        axes[1].set_ylabel("pixels")
        axes[1].set_title("histogram (0.5-99.5 %)")
    _table_panel(axes[2], stats, unit)


def _linearity_curves(ax, coeffs: np.ndarray, ref):
    """The correction (linear / measured - 1) of a few typical pixels against the signal.

    Typical: the pixels at the 5, 25, 50, 75 and 95 % points of the quadratic term, among
    those the file corrects (no NO_LIN_CORR).
    """
    flags = ref.exts["DQ"]
    usable = ((flags & dq.NO_LIN_CORR) == 0) & np.all(np.isfinite(coeffs), axis=0)
    c2 = coeffs[2][usable]
    if c2.size == 0:
        ax.axis("off")
        return
    order = np.argsort(c2)
    ys, xs = np.nonzero(usable)
    measured = np.linspace(100.0, 50000.0, 200)
    for q in (5, 25, 50, 75, 95):
        k = order[min(int(q / 100 * (c2.size - 1)), c2.size - 1)]
        c = coeffs[:, ys[k], xs[k]].astype(np.float64)
        linear = sum(c[j] * measured**j for j in range(c.size))
        ax.plot(measured, 100 * (linear / measured - 1), label=f"({xs[k]}, {ys[k]}), {q} %")
    ax.set_xlabel("measured signal above the zero level (DN)")
    ax.set_ylabel("correction (linear / measured - 1, %)")
    ax.set_title("correction of typical pixels (by quadratic term)")
    ax.legend(fontsize=8)


def _ptc_curves(ax, ref) -> bool:
    """Variance against mean per amplifier with the fits, from ``<name>_ptc.fits``."""
    from .reftypes._base import ancillary_path

    table_path = ancillary_path(ref.path, "ptc")
    if not table_path.exists():
        return False
    table = fits.getdata(table_path, "PTC")
    names = table.columns.names
    if not {"amplifier", "mean", "variance"} <= set(names):
        return False
    for a in np.unique(table["amplifier"]):
        rows = table[table["amplifier"] == a]
        order = np.argsort(rows["mean"])
        ax.plot(rows["mean"][order], rows["variance"][order], ".", ms=3, label=f"amp {a}")
        if "fit" in names:
            ax.plot(rows["mean"][order], rows["fit"][order], "-", lw=1)
    ax.set_xlabel("mean signal (DN)")
    ax.set_ylabel("variance of the pair difference / 2 (DN^2)")
    ax.set_title("photon transfer: points and fits")
    ax.legend(fontsize=8)
    return True


def _mask_layers(mask: np.ndarray):
    """(flag names by count, an index image: 1 + the rarest flag of each pixel, 0 none)."""
    counts = {n: int(np.count_nonzero(mask & v)) for n, v in dq.PIXEL.items()
              if v and v != dq.DO_NOT_USE and np.any(mask & v)}
    names = sorted(counts, key=counts.get, reverse=True)[:len(FLAG_COLOURS)]
    index = np.zeros(mask.shape, np.int16)
    for k, name in enumerate(names):  # most common first: a rarer flag is drawn on top
        index[(mask & dq.PIXEL[name]) != 0] = k + 1
    return names, counts, index


def _draw_mask(fig, axes, mask):
    from matplotlib.colors import ListedColormap

    mask = mask.reshape((-1,) + mask.shape[-2:])
    mask = np.bitwise_or.reduce(mask, axis=0)
    names, counts, index = _mask_layers(mask)
    cmap = ListedColormap(["white", *FLAG_COLOURS[:len(names)]])
    axes[0].imshow(index, origin="lower", cmap=cmap, vmin=-0.5, vmax=len(names) + 0.5,
                   interpolation="nearest")
    from matplotlib.patches import Patch

    axes[0].legend(handles=[Patch(color=FLAG_COLOURS[k], label=f"{n} ({counts[n]})")
                            for k, n in enumerate(names)], fontsize=7, loc="upper right",
                   framealpha=0.85)
    axes[0].set_title("flags (the rarest on top)")
    axes[1].barh(names[::-1], [counts[n] for n in names[::-1]],
                 color=[FLAG_COLOURS[k] for k in range(len(names))][::-1])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("pixels")
    axes[1].set_title(f"pixels per flag (DO_NOT_USE: "
                      f"{int(np.count_nonzero(mask & dq.DO_NOT_USE))})")
    axes[2].axis("off")
    cells = [[n, str(counts[n]), f"{counts[n] / mask.size:.3%}"] for n in names]
    table = axes[2].table(cellText=cells, colLabels=["flag", "pixels", "fraction"],
                          loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)


def _draw_compare(fig, axes, ref, previous, result):
    if result["reftype"] == "MASK":
        new, old = ref.exts["DQ"], previous.exts["DQ"]
        change = np.zeros(new.shape, np.int8)
        change[(new & ~old) != 0] = 1
        change[(old & ~new) != 0] = -1
        from matplotlib.colors import ListedColormap

        axes[0].imshow(change, origin="lower", interpolation="nearest", vmin=-1, vmax=1,
                       cmap=ListedColormap(["royalblue", "white", "red"]))
        axes[0].set_title(f"flags gained (red) and lost (blue) since {result['previous']}")
        flags = result["flags"]
        names = list(flags)
        y = np.arange(len(names))
        axes[1].barh(y - 0.2, [flags[n]["gained"] for n in names], 0.4, color="red",
                     label="gained")
        axes[1].barh(y + 0.2, [flags[n]["lost"] for n in names], 0.4, color="royalblue",
                     label="lost")
        axes[1].set_yticks(y, names)
        axes[1].legend()
        axes[1].set_title("pixels that gained or lost each flag")
        axes[2].axis("off")
        return
    (new, _), (old, _) = _values(ref), _values(previous)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = new / old if result["kind"] == "ratio" else new.astype(np.float64) - old
    image = _planes(delta)[-1]
    _image_panel(fig, axes[0], image, result["kind"], cmap="coolwarm")
    axes[0].set_title(f"{result['kind']} to {result['previous']}")
    v = image[np.isfinite(image)]
    lo, hi = _stretch(image)
    axes[1].hist(v, bins=np.linspace(lo, hi, 200), color="grey", log=True)
    axes[1].set_title(f"changed beyond {result['change_threshold']}: "
                      f"{result['changed_fraction']:.2%}")
    axes[2].axis("off")


def index_page(paths, out) -> Path:
    """A self-contained HTML page of the QA of several files (PNGs embedded)."""
    from .io.exposure_writer import atomic_path

    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>daskref QA</title>"
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style>"
             "</head><body><h1>daskref QA</h1><table><tr><th>file</th><th>REFTYPE</th>"
             "<th>detector</th><th>median (SCI, all)</th><th>flagged</th></tr>"]
    sections = []
    for path in paths:
        json_path, png_path = qa_paths(path)
        if not json_path.exists():
            continue
        s = json.loads(json_path.read_text())
        ext = next((e for e in VALUE_EXTENSIONS if e in s["extensions"]), None)
        median = (s["extensions"][ext]["planes"][-1]["all"].get("median")
                  if ext else None)
        flagged = s.get("dq", {}).get("flagged_fraction")
        anchor = html.escape(s["file"])
        parts.append(f"<tr><td><a href='#{anchor}'>{anchor}</a></td><td>{s['reftype']}</td>"
                     f"<td>{html.escape(str(s.get('detector')))}</td>"
                     f"<td>{'' if median is None else f'{median:.5g}'}</td>"
                     f"<td>{'' if flagged is None else f'{flagged:.3%}'}</td></tr>")
        img = ""
        if png_path.exists():
            data = base64.b64encode(png_path.read_bytes()).decode()
            img = f"<img alt='{anchor}' src='data:image/png;base64,{data}'>"
        sections.append(f"<h2 id='{anchor}'>{anchor}</h2><p>{html.escape(str(s.get('call')))}"
                        f"</p>{img}")
    parts.append("</table>")
    parts += sections
    parts.append("</body></html>")
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(parts))
    return Path(out)
