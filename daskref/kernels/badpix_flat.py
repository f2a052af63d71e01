"""Numpy kernels of the bad-pixel search in flats (no dask, no xarray).

The images are the (y, x) maps of a flat campaign: the clipped mean slope ``M``
(DN/s), the normalising image ``B`` and the normalised image ``N = M / B``, with NaN
on reference pixels and pixels without a usable slope.
"""

from __future__ import annotations

import numpy as np

from .stats import sigma_clip_stats

#: Flat classes in priority order (a pixel gets the first that applies).
FLAT_CLASSES = ("dead", "open", "low_qe", "adj_open")


def clipped_mean_std(slopes: np.ndarray, *, sigma: float, maxiters: int = 5):
    """Clipped mean and standard deviation of each pixel's slopes.

    Parameters
    ----------
    slopes : ndarray, (..., sample)
        Slopes of every integration of every flat (DN/s); NaN marks a missing one.
    sigma : float
        Clipping threshold about the median, in standard deviations.
    maxiters : int
        Clipping passes (jwst_reffiles: 5).

    Returns
    -------
    mean, std : ndarray float32, (...)
        DN/s; ``std`` is the ddof-0 scatter of the survivors (NaN with none).
    n : ndarray int16, (...)
        Survivors.
    """
    st = sigma_clip_stats(slopes, sigma=sigma, maxiters=maxiters, ddof=0)
    return (st.mean.astype(np.float32), np.sqrt(st.var).astype(np.float32),
            st.n.astype(np.int16))


def smooth_image(image: np.ndarray, box: int, kind: str) -> np.ndarray:
    """Local level of a mean flat, ignoring NaN pixels.

    Parameters
    ----------
    image : ndarray (y, x)
        Mean slope image, NaN where undefined.
    box : int
        Box width, pixels.
    kind : {'box2d', 'median'}
        ``box2d``: the mean over the box, NaN pixels interpolated from their
        neighbours (astropy ``convolve`` with ``nan_treatment='interpolate'``);
        ``median``: the median over the box. Outside the array both see the image's
        median (jwst_reffiles' fill value).

    Returns
    -------
    ndarray float64 (y, x)
    """
    from astropy.convolution import Box2DKernel, convolve
    from scipy.ndimage import median_filter

    fill = float(np.nanmedian(image)) if np.isfinite(image).any() else 0.0
    if kind == "median":
        # scipy's filter knows no NaN: the image median stands in for the missing pixels
        filled = np.where(np.isfinite(image), image, fill)
        return median_filter(filled.astype(np.float64), size=int(box), mode="constant",
                             cval=fill)
    return convolve(image.astype(np.float64), Box2DKernel(int(box)), boundary="fill",
                    fill_value=fill, nan_treatment="interpolate", preserve_nan=False)


def fit_surface(image: np.ndarray, degree: int, *, step: int = 4, sigma: float = 3.0
                ) -> np.ndarray:
    """A 2-D polynomial surface fitted to an image, evaluated on every pixel.

    The fit (astropy ``Polynomial2D``, linear least squares) uses every ``step``-th
    finite pixel in each axis, on coordinates scaled to [-1, 1], and rejects
    ``sigma`` outliers (bad pixels, cosmic rays) in three passes.
    """
    from astropy.modeling import fitting, models
    from astropy.stats import sigma_clip

    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    u = 2.0 * xx / max(nx - 1, 1) - 1.0
    v = 2.0 * yy / max(ny - 1, 1) - 1.0
    sub = (slice(None, None, step), slice(None, None, step))
    keep = np.isfinite(image[sub])
    fitter = fitting.FittingWithOutlierRemoval(fitting.LinearLSQFitter(), sigma_clip,
                                               niter=3, sigma=sigma)
    model, _ = fitter(models.Polynomial2D(int(degree)), u[sub][keep], v[sub][keep],
                      image[sub][keep].astype(np.float64))
    return model(u, v)


def flat_classes(norm: np.ndarray, *, dead: np.ndarray, low_limit: float,
                 high_limit: float, adj_limit: float, search_low: bool,
                 halo: int = 0) -> np.ndarray:
    """The flat class of every pixel of a (halo-padded) block of the normalised image.

    Parameters
    ----------
    norm : ndarray (y, x)
        Normalised image, NaN on reference and unusable pixels and outside the
        detector (the halo a ``map_overlap`` adds).
    dead : ndarray of bool (y, x)
        The DEAD pixels (same block and halo).
    low_limit, high_limit : float
        Candidates for LOW_QE and OPEN: ``low_limit <= norm < high_limit``.
    adj_limit : float
        OPEN where every existing 4-connected neighbour (inside the detector, with a
        finite value) is above this; the pixel's 8 neighbours get ADJ_OPEN.
    search_low : bool
        False: only DEAD.
    halo : int
        Rows and columns of halo on each side to drop from the result (2 gives exact
        results at block edges: an ADJ_OPEN decision looks 2 pixels away).

    Returns
    -------
    ndarray int8 (y, x)
        Index in :data:`FLAT_CLASSES`, -1 for none.
    """
    out = np.full(norm.shape, -1, np.int8)
    if search_low:
        finite = np.isfinite(norm)
        with np.errstate(invalid="ignore"):
            candidate = finite & (norm >= low_limit) & (norm < high_limit) & ~dead
            bright = np.where(finite, norm > adj_limit, True)  # a missing one is no veto
        padded_b = np.pad(bright, 1, constant_values=True)
        padded_f = np.pad(finite, 1, constant_values=False)
        shifts = ((0, 1), (2, 1), (1, 0), (1, 2))
        ny, nx = norm.shape
        all_bright = np.ones(norm.shape, bool)
        any_neighbour = np.zeros(norm.shape, bool)
        for dy, dx in shifts:
            all_bright &= padded_b[dy:dy + ny, dx:dx + nx]
            any_neighbour |= padded_f[dy:dy + ny, dx:dx + nx]
        is_open = candidate & all_bright & any_neighbour
        padded_o = np.pad(is_open, 1, constant_values=False)
        adjacent = np.zeros(norm.shape, bool)
        for dy in range(3):
            for dx in range(3):
                if (dy, dx) != (1, 1):
                    adjacent |= padded_o[dy:dy + ny, dx:dx + nx]
        adjacent &= finite | dead  # not on reference pixels or outside the detector
        out[adjacent] = FLAT_CLASSES.index("adj_open")
        out[candidate & ~is_open] = FLAT_CLASSES.index("low_qe")
        out[is_open] = FLAT_CLASSES.index("open")
    out[dead] = FLAT_CLASSES.index("dead")
    if halo:
        out = out[halo:-halo, halo:-halo]
    return out
