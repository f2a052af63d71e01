"""Synthetic JWST ramp exposures with known truth.

The simulator writes level-1b ``uncal`` files (primary header + uint16 ``SCI``
``(integration, group, y, x)``) with the real keywords, for near-IR (NIRCam-like,
2048 x 2048 with a 4-pixel reference border, and subarrays) and MIRI-like
(1024 x 1032) detectors. The detector's properties (the *truth*) are drawn once
from ``seed`` and shared by every exposure of a campaign; each exposure has its own
noise, cosmic rays and observation time.

Signal model of integration ``i``, group ``g`` of pixel ``(y, x)``, in DN::

    ramp = bias + ktc_i + amp_offset[i, g, amp, parity] + row_noise[i, g, y]
           + accumulated(dark + flux) + cosmic rays + read noise / sqrt(NFRAMES)

* ``bias`` (DN, per pixel) is the mean reset level; ``ktc_i`` a per-integration
  reset offset (kTC noise); ``amp_offset`` a per-group offset of each amplifier,
  separate for odd and even columns; ``row_noise`` a slowly varying (1/f-like)
  offset common to a whole row; all three are seen by the reference pixels too.
* ``accumulated`` is a Poisson count of electrons from dark current and
  illumination, divided by the gain, at the group's mean frame time; reference
  pixels collect nothing.
* ``readnoise_cds`` (truth, DN) is the CDS noise, the JWST READNOISE convention:
  the noise of one read is ``readnoise_cds / sqrt(2)``.
* Cosmic rays add a step at a random group; their positions and amplitudes are
  recorded in :attr:`Exposure.cosmic_rays`.
* With ``ipc_alpha`` (default 0: none) inter-pixel capacitance couples every science
  pixel's collected signal (charge, cosmic rays included, over the gain) to its 4
  nearest neighbours: the read signal is the convolution with the kernel
  ``[[0, a, 0], [a, 1 - 4a, a], [0, a, 0]]`` (:meth:`DetectorTruth.ipc`). It acts after
  the shot noise, so neighbours' noise is correlated and a flat's variance is
  ``(1 - 4a)^2 + 4a^2`` of the Poisson one, and before the non-linearity and the well.
* Values are clipped at ``saturation`` (DN) and at 65535.

Optionally (all fractions default to 0) pixels are given one bad-pixel class each,
recorded in :attr:`DetectorTruth.pixel_class` (codes :data:`PIXEL_CLASSES`): hot and
warm (high dark current), noisy (larger read noise), RC and inverse RC (a signed
``A (1 - exp(-t / tau))`` added to every group), random telegraph (``state x A`` with
a two-level state that flips between groups), low pedestal (reset level lowered by an
offset in most integrations) and always saturated. :data:`BAD_PIXEL_DEFAULTS` injects
them all at a small fraction each.

Flats (:func:`simulate_flats`) see a smooth lamp pattern through each pixel's response
to light (``response``: QE scatter, and the DEAD, LOW_QE and OPEN pixels of
:data:`FLAT_DEFECT_DEFAULTS`; an open pixel's charge lands on its neighbours, which
are ``adj_open`` in the truth). Darks and flats of one truth share every pixel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time, TimeDelta

from .geometry import (
    MIRI_FULL,
    NIR_FULL,
    amplifier_index,
    reference_pixel_mask,
)
from .io.exposure_writer import write_exposure

#: Near-IR readout patterns: (NFRAMES, GROUPGAP).
NIR_READPATT = {
    "RAPID": (1, 0), "BRIGHT1": (1, 1), "BRIGHT2": (2, 0), "SHALLOW2": (2, 3),
    "SHALLOW4": (4, 1), "MEDIUM2": (2, 8), "MEDIUM8": (8, 2), "DEEP2": (2, 18),
    "DEEP8": (8, 12),
}
MIRI_TFRAME_FULL = 2.77504  # s, FAST mode full frame

#: Codes of :attr:`DetectorTruth.pixel_class` (a pixel has at most one class): the
#: classes seen in darks (1-8) and those seen only under light (9-12).
PIXEL_CLASSES: dict[str, int] = {
    "normal": 0, "hot": 1, "warm": 2, "noisy": 3, "rc": 4, "inverse_rc": 5,
    "telegraph": 6, "low_pedestal": 7, "saturated": 8,
    "dead": 9, "low_qe": 10, "open": 11, "adj_open": 12,
}
#: The classes only illumination shows (their dark signal is that of a normal pixel).
FLAT_CLASSES = ("dead", "low_qe", "open", "adj_open")

#: ``make_truth`` fractions of a bad-pixel test campaign (``make_truth(**BAD_PIXEL_DEFAULTS)``
#: or ``simulate_campaign(..., **BAD_PIXEL_DEFAULTS)``): every class but ``hot`` (whose
#: own default is already non-zero) at 0.2 % of the pixels.
BAD_PIXEL_DEFAULTS: dict[str, float] = {
    "warm_fraction": 0.002, "noisy_fraction": 0.002, "rc_fraction": 0.002,
    "inverse_rc_fraction": 0.002, "telegraph_fraction": 0.002,
    "low_pedestal_fraction": 0.002, "saturated_fraction": 0.002,
}

#: ``make_truth`` fractions of the flat defects (``dead_fraction``, ``low_qe_fraction``,
#: ``open_fraction``); each open pixel also makes its 8 neighbours ``adj_open``.
FLAT_DEFECT_DEFAULTS: dict[str, float] = {
    "dead_fraction": 0.002, "low_qe_fraction": 0.002, "open_fraction": 0.0005,
}

#: Bad-pixel classes drawn by ``make_truth`` from its own stream, in draw order.
_DRAWN_CLASSES = ("warm", "noisy", "rc", "inverse_rc", "telegraph", "low_pedestal",
                  "saturated")


@dataclass
class DetectorTruth:
    """Per-pixel properties of a simulated detector (the truth to recover).

    All maps have dims (y, x) of the simulated (sub)array.

    Attributes
    ----------
    attrs : dict
        Header keywords of the detector and readout (INSTRUME, DETECTOR, SUBARRAY,
        SUBSTRT1/2, SUBSIZE1/2, FASTAXIS, SLOWAXIS, NOUTPUTS, READPATT, NFRAMES,
        GROUPGAP, TFRAME, TGROUP).
    bias : ndarray
        Mean reset level, DN.
    readnoise_cds : ndarray
        CDS noise, DN (noise of one read is this / sqrt(2)).
    dark_current : ndarray
        True dark current, DN/s (hot and warm pixels included; zero on reference
        pixels and always-saturated pixels).
    hot : ndarray of bool
        Pixels given a high dark current (``class_mask("hot")``).
    gain : float
        e-/DN.
    flux : ndarray
        Illumination, DN/s (zero for darks).
    reference : ndarray of bool
        Reference pixels.
    pixel_class : ndarray of uint8, optional
        Bad-pixel class of every pixel, codes :data:`PIXEL_CLASSES` (default: 0, and
        ``hot`` where ``hot``).
    noise_factor : ndarray, optional
        Factor included in ``readnoise_cds`` (noisy pixels; 1 elsewhere).
    rc_amplitude : ndarray, optional
        Signed amplitude ``A`` of the RC (> 0) and inverse-RC (< 0) pixels, DN; 0
        elsewhere. Every group at time ``t`` since reset gets ``A (1 - exp(-t / tau))``.
    rc_tau : ndarray, optional
        Time constant ``tau`` of the RC and inverse-RC pixels, s; 0 elsewhere.
    telegraph_amplitude : ndarray, optional
        Step of the random-telegraph pixels, DN (the signal is ``state x A`` with state
        0 or 1); 0 elsewhere.
    telegraph_switch_probability : float
        Probability that the telegraph state flips before each group after the first.
    low_pedestal_offset : ndarray, optional
        Amount the reset level of a low-pedestal pixel is lowered by, DN; 0 elsewhere.
    low_pedestal_int_fraction : float
        Probability that a low-pedestal pixel is low in an integration.
    response : ndarray, optional
        Relative response to light (QE x fill factor) of every pixel: ``1 +
        qe_scatter x N(0, 1)`` for normal pixels, the drawn response of the DEAD,
        LOW_QE and OPEN pixels, 0 on reference pixels (default 1 on science pixels).
        An OPEN pixel's missing charge lands on its 4 nearest neighbours
        (:func:`flat_rate`).
    full_well : ndarray, optional
        Saturation onset of every pixel: the linear signal above the mean reset level
        at which the well is full, DN (None: no well, only the hard ``saturation``
        clip). A full well reads the absolute level :meth:`saturation_level`
        whatever the integration's reset offset (its ramp stops rising there).
    nonlin_quadratic, nonlin_cubic : ndarray, optional
        Per-pixel non-linearity ``q``, ``c``: a linear signal ``s`` (DN above the
        reset) reads ``f(s) = s (1 - q u - c u**2)`` with ``u = s / full_well``, so
        the deficit at the onset is ``q + c`` (:meth:`measured_signal`).
    gain_map : ndarray, optional
        Per-pixel gain, e-/DN (per amplifier plus pixel scatter); None: ``gain``
        everywhere.
    ipc_alpha : float
        Nearest-neighbour inter-pixel capacitance coupling ``a`` (:meth:`ipc`; 0: none).

    The other attributes (``ktc_noise`` ... ``seed``) are the scalar settings of
    :func:`make_truth`.
    """

    attrs: dict
    bias: np.ndarray
    readnoise_cds: np.ndarray
    dark_current: np.ndarray
    hot: np.ndarray
    gain: float
    flux: np.ndarray
    reference: np.ndarray
    ktc_noise: float = 30.0
    amp_offset_sigma: float = 0.0
    odd_even_offset: float = 0.0
    row_noise: float = 0.0
    row_noise_scale: float = 30.0
    saturation: float = 65535.0
    cosmic_ray_rate: float = 0.0
    seed: int = 0
    pixel_class: np.ndarray | None = field(default=None, repr=False)
    noise_factor: np.ndarray | None = field(default=None, repr=False)
    rc_amplitude: np.ndarray | None = field(default=None, repr=False)
    rc_tau: np.ndarray | None = field(default=None, repr=False)
    telegraph_amplitude: np.ndarray | None = field(default=None, repr=False)
    telegraph_switch_probability: float = 0.35
    low_pedestal_offset: np.ndarray | None = field(default=None, repr=False)
    low_pedestal_int_fraction: float = 0.95
    response: np.ndarray | None = field(default=None, repr=False)
    full_well: np.ndarray | None = field(default=None, repr=False)
    nonlin_quadratic: np.ndarray | None = field(default=None, repr=False)
    nonlin_cubic: np.ndarray | None = field(default=None, repr=False)
    gain_map: np.ndarray | None = field(default=None, repr=False)
    ipc_alpha: float = 0.0

    def __post_init__(self):
        shape = self.bias.shape
        if self.pixel_class is None:
            self.pixel_class = np.where(self.hot, PIXEL_CLASSES["hot"], 0).astype(np.uint8)
        else:
            self.pixel_class = np.asarray(self.pixel_class, np.uint8)
        if self.noise_factor is None:
            self.noise_factor = np.ones(shape)
        for name in ("rc_amplitude", "rc_tau", "telegraph_amplitude", "low_pedestal_offset"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(shape))
        if self.response is None:
            self.response = np.where(self.reference, 0.0, 1.0)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.bias.shape

    def class_mask(self, name: str) -> np.ndarray:
        """Boolean (y, x) map of the pixels of one class.

        Parameters
        ----------
        name : str
            A key of :data:`PIXEL_CLASSES` (``"hot"`` gives ``hot``).

        Returns
        -------
        numpy.ndarray of bool, dims (y, x)

        Raises
        ------
        KeyError
            An unknown class name.
        """
        if name not in PIXEL_CLASSES:
            raise KeyError(f"unknown pixel class {name!r}; known: {list(PIXEL_CLASSES)}")
        return self.pixel_class == PIXEL_CLASSES[name]

    def expected_group0(self) -> np.ndarray:
        """Expected value of group 0 (the superbias), DN."""
        return self.bias + (self.dark_current + self.flux) * group_times(self.attrs, 1)[0]

    @property
    def pixel_gain(self) -> np.ndarray | float:
        """Gain of every pixel, e-/DN: ``gain_map`` where drawn, else ``gain``."""
        return self.gain if self.gain_map is None else self.gain_map

    def measured_signal(self, linear) -> np.ndarray:
        """What the pixels read for a linear signal above the reset, DN.

        ``f(s) = s (1 - q u - c u**2)``, ``u = s / full_well`` (the identity
        without a well); the well itself caps the raw level at
        :meth:`saturation_level`.

        Parameters
        ----------
        linear : array_like, DN, broadcastable to (..., y, x)
        """
        s = np.asarray(linear, np.float64)
        if self.full_well is None:
            return s
        u = s / self.full_well
        return s * (1.0 - self.nonlin_quadratic * u - self.nonlin_cubic * u * u)

    def linear_signal(self, measured) -> np.ndarray:
        """Inverse of :meth:`measured_signal` below the onset, DN (Newton iterations)."""
        m = np.asarray(measured, np.float64)
        if self.full_well is None:
            return m
        w, q, c = self.full_well, self.nonlin_quadratic, self.nonlin_cubic
        s = m.copy()
        for _ in range(30):
            u = s / w
            f = s * (1.0 - q * u - c * u * u) - m
            s = s - f / (1.0 - 2.0 * q * u - 3.0 * c * u * u)
        return s

    @property
    def ipc_kernel(self) -> np.ndarray:
        """The 3 x 3 IPC kernel ``[[0, a, 0], [a, 1 - 4a, a], [0, a, 0]]``, a = ``ipc_alpha``."""
        a = float(self.ipc_alpha)
        return np.array([[0.0, a, 0.0], [a, 1.0 - 4.0 * a, a], [0.0, a, 0.0]])

    def ipc(self, signal: np.ndarray) -> np.ndarray:
        """The signal read through the IPC kernel, DN (``signal`` itself without IPC).

        Every science pixel gives ``a`` of its signal to each science neighbour (up,
        down, left, right) and receives ``a`` of theirs: inside the array that is the
        convolution with :attr:`ipc_kernel`; at the edges of the array and beside
        reference pixels (which neither give nor receive) a pixel keeps what it has no
        neighbour to give to, so no signal is lost.

        Parameters
        ----------
        signal : ndarray, (y, x), DN
            Collected signal (charge over gain) of every pixel.

        Returns
        -------
        ndarray float64, (y, x), DN
        """
        s = np.asarray(signal, np.float64)
        a = float(self.ipc_alpha)
        if a == 0.0:
            return s
        sci = ~self.reference
        s = np.where(sci, s, 0.0)
        flow = np.zeros_like(s)  # what each pixel gains from its neighbours, net
        for axis in (0, 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(None, -1), slice(1, None)
            lo, hi = tuple(lo), tuple(hi)
            both = sci[lo] & sci[hi]  # a coupled pair of neighbours
            step = np.where(both, a * (s[hi] - s[lo]), 0.0)
            flow[lo] += step
            flow[hi] -= step
        return s + flow

    def saturation_level(self) -> np.ndarray:
        """Raw level (reset level included) at which every pixel's ramp stops, DN.

        ``bias + f(full_well)``, at most ``saturation`` and 65535; the hard limit
        alone without a well.
        """
        hard = min(float(self.saturation), 65535.0)
        if self.full_well is None:
            return np.full(self.shape, hard)
        return np.minimum(self.bias + self.measured_signal(self.full_well), hard)


@dataclass
class Exposure:
    """One simulated file: its path, header and the cosmic rays injected.

    ``cosmic_rays`` is a structured array with fields ``integration``, ``group``
    (first group that contains the hit), ``y``, ``x`` and ``amplitude`` (DN).
    """

    path: Path
    header: dict
    cosmic_rays: np.ndarray = field(repr=False)


@dataclass
class Campaign:
    """Simulated exposures sharing one :class:`DetectorTruth`."""

    truth: DetectorTruth
    exposures: list[Exposure]
    flux: np.ndarray | None = field(default=None, repr=False)
    fluxes: list | None = field(default=None, repr=False)

    @property
    def paths(self) -> list[Path]:
        """Paths of the files, in observation order."""
        return [e.path for e in self.exposures]


def frame_time(instrument: str, nx: int, ny: int, noutputs: int) -> float:
    """Frame time in seconds: NIR ``(nx/noutputs + 12) * (ny + 1) * 10 us``."""
    if instrument.upper() == "MIRI":
        return MIRI_TFRAME_FULL * (nx * ny) / (MIRI_FULL[0] * MIRI_FULL[1])
    return (nx / noutputs + 12) * (ny + 1) * 10e-6


def group_times(attrs: dict, ngroups: int) -> np.ndarray:
    """Mean time since reset of the frames in each group, seconds."""
    nframes, groupgap = int(attrs["NFRAMES"]), int(attrs["GROUPGAP"])
    tframe = float(attrs["TFRAME"])
    g = np.arange(ngroups)
    return tframe * (g * (nframes + groupgap) + (nframes + 1) / 2.0)


def make_truth(
    *,
    instrument: str = "NIRCAM",
    detector: str | None = None,
    subarray: str = "FULL",
    substrt: tuple[int, int] = (1, 1),
    subsize: tuple[int, int] | None = None,
    readpatt: str | None = None,
    bias: float = 12000.0,
    bias_scatter: float = 800.0,
    readnoise: float = 14.0,
    readnoise_scatter: float = 0.1,
    dark_current: float = 0.005,
    hot_fraction: float = 0.001,
    hot_rate: float = 2.0,
    gain: float = 2.0,
    flux: float = 0.0,
    ktc_noise: float = 30.0,
    amp_offset_sigma: float = 0.0,
    odd_even_offset: float = 0.0,
    row_noise: float = 0.0,
    cosmic_ray_rate: float = 0.0,
    saturation: float = 65535.0,
    tframe: float | None = None,
    seed: int = 0,
    warm_fraction: float = 0.0,
    warm_rate_range: tuple[float, float] = (0.1, 0.25),
    noisy_fraction: float = 0.0,
    noisy_factor_range: tuple[float, float] = (2.5, 4.0),
    rc_fraction: float = 0.0,
    inverse_rc_fraction: float = 0.0,
    rc_amplitude_range: tuple[float, float] = (300.0, 1000.0),
    rc_tau_range: tuple[float, float] = (1.0, 3.0),
    telegraph_fraction: float = 0.0,
    telegraph_amplitude_range: tuple[float, float] = (150.0, 400.0),
    telegraph_switch_probability: float = 0.35,
    low_pedestal_fraction: float = 0.0,
    low_pedestal_range: tuple[float, float] = (250.0, 600.0),
    low_pedestal_int_fraction: float = 0.95,
    saturated_fraction: float = 0.0,
    qe_scatter: float = 0.02,
    dead_fraction: float = 0.0,
    dead_response_range: tuple[float, float] = (0.0, 0.02),
    low_qe_fraction: float = 0.0,
    low_qe_range: tuple[float, float] = (0.1, 0.45),
    open_fraction: float = 0.0,
    open_response_range: tuple[float, float] = (0.1, 0.45),
    full_well: float = 0.0,
    full_well_scatter: float = 0.03,
    nonlin_quadratic: float = 0.0,
    nonlin_cubic: float = 0.0,
    nonlin_scatter: float = 0.1,
    amp_gains: Sequence[float] | None = None,
    gain_scatter: float = 0.0,
    ipc_alpha: float = 0.0,
) -> DetectorTruth:
    """Draw the properties of a simulated detector.

    Parameters
    ----------
    instrument : {'NIRCAM', 'NIRISS', 'NIRSPEC', 'FGS', 'MIRI'}
        Near-IR instruments use the 2048 x 2048 geometry, MIRI 1024 x 1032.
    detector : str, optional
        DETECTOR keyword (default NRCA1 for NIRCam, MIRIMAGE for MIRI).
    subarray, substrt, subsize : optional
        Subarray name, 1-based full-frame origin (x, y) and size (x, y); default the
        full frame.
    readpatt : str, optional
        Readout pattern (default RAPID for near-IR, FAST for MIRI).
    bias, bias_scatter : float
        Mean and pixel-to-pixel scatter of the reset level, DN.
    readnoise : float
        Mean CDS noise, DN; ``readnoise_scatter`` is its fractional pixel scatter.
    dark_current : float
        Dark current of normal pixels, DN/s (exponentially distributed).
    hot_fraction, hot_rate : float
        Fraction of hot pixels and their mean dark current, DN/s.
    gain : float
        e-/DN, for the Poisson noise.
    flux : float
        Uniform illumination, DN/s (0 for darks), seen through the pixels'
        ``response``; flats with a lamp pattern come from :func:`simulate_flats`.
    ktc_noise : float
        Per-integration reset-level scatter, DN.
    amp_offset_sigma : float
        Scatter of the per-group amplifier offsets, DN.
    odd_even_offset : float
        Scatter of the extra offset of odd vs even columns per amplifier and group, DN.
    row_noise : float
        Amplitude of the row-correlated (1/f-like) noise, DN.
    cosmic_ray_rate : float
        Cosmic-ray hits per pixel per second.
    saturation : float
        Saturation level, DN.
    tframe : float, optional
        Frame time in seconds; default the detector's for this window size (a small
        test window can be given full-frame timing to accumulate measurable dark).
    seed : int
        Seed of the truth draw.
    warm_fraction, warm_rate_range : float, (float, float)
        Fraction of warm pixels and the range of their (uniform) dark current, DN/s.
    noisy_fraction, noisy_factor_range : float, (float, float)
        Fraction of noisy pixels and the range of the (uniform) factor their
        ``readnoise_cds`` is multiplied by.
    rc_fraction, inverse_rc_fraction : float
        Fractions of RC pixels (``+A (1 - exp(-t / tau))`` added to every group, ``t``
        the group's time since reset, :func:`group_times`) and inverse-RC pixels
        (``-A (1 - exp(-t / tau))``).
    rc_amplitude_range : (float, float)
        Range of ``A``, DN (uniform).
    rc_tau_range : (float, float)
        Range of ``tau`` in units of the group time TGROUP (uniform).
    telegraph_fraction, telegraph_amplitude_range : float, (float, float)
        Fraction of random-telegraph pixels and the range of their step ``A``, DN: in
        each integration the state starts at 0 or 1 at random, flips before every
        later group with probability ``telegraph_switch_probability``, and the pixel
        adds ``state x A``.
    low_pedestal_fraction, low_pedestal_range : float, (float, float)
        Fraction of low-pedestal pixels and the range of their offset, DN: in each
        integration, with probability ``low_pedestal_int_fraction``, the reset level
        is lowered by the offset for the whole integration (not part of ``bias``).
    saturated_fraction : float
        Fraction of always-saturated pixels: their ``bias`` is ``min(saturation,
        65535)`` and every group reads exactly that level.
    qe_scatter : float
        Fractional pixel-to-pixel scatter of the response to light.
    dead_fraction, dead_response_range : float, (float, float)
        Fraction of DEAD pixels and the range of their (uniform) response.
    low_qe_fraction, low_qe_range : float, (float, float)
        Fraction of LOW_QE pixels and the range of their response.
    open_fraction, open_response_range : float, (float, float)
        Fraction of OPEN pixels and the range of their own response; the charge they
        miss lands on their 4 nearest neighbours, and their 8 neighbours are
        ``adj_open`` in the truth. An open pixel is kept only where those 8 are
        normal science pixels, so the fraction is slightly below the one asked.
    full_well, full_well_scatter : float
        Mean saturation onset (linear signal above the reset, DN; 0: no well) and
        its fractional pixel scatter (normal).
    nonlin_quadratic, nonlin_cubic, nonlin_scatter : float
        Mean non-linearity ``q`` and ``c`` (:attr:`DetectorTruth.nonlin_quadratic`;
        e.g. 0.03 and 0.02 read 5 % low at the onset) and their fractional pixel
        scatter; they need ``full_well``.
    amp_gains : sequence of float, optional
        Gain of each amplifier, e-/DN (``NOUTPUTS`` values; default ``gain`` for
        all); with ``gain_scatter`` (fractional pixel scatter) they make
        :attr:`DetectorTruth.gain_map`.
    ipc_alpha : float
        Inter-pixel capacitance: the coupling ``a`` of every science pixel to each of
        its 4 nearest neighbours (:meth:`DetectorTruth.ipc`), in [0, 0.25); 0 (the
        default) leaves every simulation as it was without IPC.

    Returns
    -------
    DetectorTruth

    Raises
    ------
    ValueError
        A window that does not fit, class fractions outside [0, 1] or summing
        (with ``hot_fraction``) to more than 1, or an ``ipc_alpha`` outside [0, 0.25).

    Notes
    -----
    Bad-pixel classes are mutually exclusive and never on reference pixels; each
    fraction is the expected fraction of the non-reference pixels. They are drawn
    from a stream of their own, so with all their fractions 0 the truth (and every
    exposure) is the same as without them; the flat defects come from another
    stream, among the pixels left normal by the dark classes. The well, the
    non-linearity and the gain map come from streams of their own too.
    """
    fractions = {"warm": warm_fraction, "noisy": noisy_fraction, "rc": rc_fraction,
                 "inverse_rc": inverse_rc_fraction, "telegraph": telegraph_fraction,
                 "low_pedestal": low_pedestal_fraction, "saturated": saturated_fraction}
    for name, value in {"hot": hot_fraction, **fractions}.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}_fraction must be in [0, 1], not {value}")
    if sum(fractions.values()) + hot_fraction > 1.0:
        raise ValueError("the bad-pixel fractions (hot included) sum to more than 1")
    if not 0.0 <= float(ipc_alpha) < 0.25:
        raise ValueError(f"ipc_alpha must be in [0, 0.25), not {ipc_alpha}")
    instrument = instrument.upper()
    miri = instrument == "MIRI"
    full = MIRI_FULL if miri else NIR_FULL
    if subsize is None:
        subsize = (full[1], full[0]) if subarray.upper() == "FULL" else None
    if subsize is None:
        raise ValueError(f"subarray {subarray!r} needs subsize=(nx, ny)")
    nx, ny = int(subsize[0]), int(subsize[1])
    x0, y0 = int(substrt[0]), int(substrt[1])
    if x0 < 1 or y0 < 1 or x0 - 1 + nx > full[1] or y0 - 1 + ny > full[0]:
        raise ValueError(f"subarray origin {substrt} size {subsize} does not fit in {full[::-1]}")
    is_full = (nx, ny) == (full[1], full[0])
    # full-width near-IR subarrays (e.g. NIRCam SUBGRISM*) are read through 4 outputs
    noutputs = 4 if (is_full or miri or nx == full[1]) else 1
    readpatt = (readpatt or ("FAST" if miri else "RAPID")).upper()
    nframes, groupgap = (1, 0) if miri else NIR_READPATT[readpatt]
    tframe = frame_time(instrument, nx, ny, noutputs) if tframe is None else float(tframe)
    attrs = {
        "TELESCOP": "JWST",
        "INSTRUME": instrument,
        "DETECTOR": (detector or ("MIRIMAGE" if miri else "NRCA1")).upper(),
        "SUBARRAY": subarray.upper(),
        "SUBSTRT1": x0, "SUBSTRT2": y0, "SUBSIZE1": nx, "SUBSIZE2": ny,
        "FASTAXIS": 1 if miri else -1, "SLOWAXIS": 2,
        "NOUTPUTS": noutputs, "READPATT": readpatt,
        "NFRAMES": nframes, "GROUPGAP": groupgap,
        "TFRAME": round(tframe, 5), "TGROUP": round(tframe * (nframes + groupgap), 5),
    }
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    streams = rng.spawn(5)
    shape = (ny, nx)
    ref = reference_pixel_mask(attrs, shape)
    bias_map = bias + bias_scatter * streams[0].standard_normal(shape)
    rn = readnoise * np.exp(readnoise_scatter * streams[1].standard_normal(shape))
    dark = streams[2].exponential(dark_current, shape) if dark_current > 0 else np.zeros(shape)
    hot = (streams[3].random(shape) < hot_fraction) & ~ref
    dark[hot] = streams[3].exponential(hot_rate, int(hot.sum())) + hot_rate / 2
    dark[ref] = 0.0
    response = 1.0 + qe_scatter * streams[4].standard_normal(shape)
    response[ref] = 0.0
    pixel_class = np.where(hot, PIXEL_CLASSES["hot"], 0).astype(np.uint8)
    noise_factor = np.ones(shape)
    rc_amp, rc_tau = np.zeros(shape), np.zeros(shape)
    tel_amp, low_offset = np.zeros(shape), np.zeros(shape)
    if any(v > 0 for v in fractions.values()):
        # A new child of the truth seed: the streams above are not touched.
        bad = rng.spawn(1)[0]
        # One uniform per pixel picks at most one class among the non-hot pixels;
        # dividing by P(not hot) makes each fraction that of all non-reference pixels.
        u = bad.random(shape) * (1.0 - hot_fraction)
        edges = np.cumsum([fractions[name] for name in _DRAWN_CLASSES])
        code = np.searchsorted(edges, u, side="right")
        eligible = ~ref & ~hot
        for k, name in enumerate(_DRAWN_CLASSES):
            pixel_class[eligible & (code == k)] = PIXEL_CLASSES[name]

        def pick(name):
            mask = pixel_class == PIXEL_CLASSES[name]
            return mask, int(mask.sum())

        def uniform(bounds, n):
            return bad.uniform(float(bounds[0]), float(bounds[1]), n)

        m, n = pick("warm")
        dark[m] = uniform(warm_rate_range, n)
        m, n = pick("noisy")
        noise_factor[m] = uniform(noisy_factor_range, n)
        rn = rn * noise_factor
        tgroup = float(attrs["TGROUP"])
        for name, sign in (("rc", 1.0), ("inverse_rc", -1.0)):
            m, n = pick(name)
            rc_amp[m] = sign * uniform(rc_amplitude_range, n)
            rc_tau[m] = tgroup * uniform(rc_tau_range, n)
        m, n = pick("telegraph")
        tel_amp[m] = uniform(telegraph_amplitude_range, n)
        m, n = pick("low_pedestal")
        low_offset[m] = uniform(low_pedestal_range, n)
        m, _ = pick("saturated")
        bias_map[m] = min(float(saturation), 65535.0)
        dark[m] = 0.0
    flat_fractions = {"dead": dead_fraction, "low_qe": low_qe_fraction,
                      "open": open_fraction}
    for name, value in flat_fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}_fraction must be in [0, 1], not {value}")
    if any(v > 0 for v in flat_fractions.values()):
        _draw_flat_defects(np.random.default_rng(np.random.SeedSequence([seed, 3])),
                           pixel_class, response, ref, flat_fractions,
                           {"dead": dead_response_range, "low_qe": low_qe_range,
                            "open": open_response_range})
    truth = DetectorTruth(
        attrs=attrs, bias=bias_map, readnoise_cds=rn, dark_current=dark, hot=hot,
        gain=gain, flux=np.zeros(shape), reference=ref, ktc_noise=ktc_noise,
        amp_offset_sigma=amp_offset_sigma, odd_even_offset=odd_even_offset,
        row_noise=row_noise, cosmic_ray_rate=cosmic_ray_rate,
        saturation=saturation, seed=seed, pixel_class=pixel_class,
        noise_factor=noise_factor, rc_amplitude=rc_amp, rc_tau=rc_tau,
        telegraph_amplitude=tel_amp,
        telegraph_switch_probability=float(telegraph_switch_probability),
        low_pedestal_offset=low_offset,
        low_pedestal_int_fraction=float(low_pedestal_int_fraction),
        response=response, ipc_alpha=float(ipc_alpha),
    )
    _draw_well_and_gain(truth, seed, full_well, full_well_scatter, nonlin_quadratic,
                        nonlin_cubic, nonlin_scatter, amp_gains, gain_scatter)
    if flux > 0:
        truth.flux = flat_rate(truth, flux, pattern_amplitude=0.0)
    return truth


def _draw_well_and_gain(truth, seed, full_well, full_well_scatter, quadratic, cubic,
                        scatter, amp_gains, gain_scatter) -> None:
    """Give ``truth`` its well, non-linearity and gain map (in place), when asked.

    Each comes from a stream of its own (``SeedSequence([seed, 4])`` and ``[seed,
    5]``), so a truth without them is the one drawn before they existed.
    """
    shape = truth.shape
    if (quadratic or cubic) and full_well <= 0:
        raise ValueError("nonlin_quadratic and nonlin_cubic need a full_well")
    if full_well > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
        truth.full_well = full_well * (1.0 + full_well_scatter * rng.standard_normal(shape))
        truth.nonlin_quadratic = quadratic * (1.0 + scatter * rng.standard_normal(shape))
        truth.nonlin_cubic = cubic * (1.0 + scatter * rng.standard_normal(shape))
    if amp_gains is not None or gain_scatter > 0:
        noutputs = int(truth.attrs["NOUTPUTS"])
        gains = np.full(noutputs, truth.gain) if amp_gains is None else np.asarray(
            amp_gains, np.float64)
        if gains.size != noutputs:
            raise ValueError(f"amp_gains needs {noutputs} values (NOUTPUTS), not {gains.size}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
        amps = amplifier_index(truth.attrs, shape)
        truth.gain_map = gains[amps] * (1.0 + gain_scatter * rng.standard_normal(shape))


def _draw_flat_defects(rng, pixel_class, response, ref, fractions, ranges) -> None:
    """Give some normal science pixels a flat class (in place): DEAD, LOW_QE, OPEN.

    An OPEN pixel is kept only where its 8 neighbours are normal science pixels and
    no other open pixel; they become ``adj_open``. Rejected candidates stay normal.
    """
    from scipy.ndimage import convolve

    shape = pixel_class.shape
    u = rng.random(shape)
    normal = (pixel_class == 0) & ~ref
    edges = np.cumsum([fractions["dead"], fractions["low_qe"], fractions["open"]])
    code = np.searchsorted(edges, u, side="right")
    for k, name in enumerate(("dead", "low_qe")):
        m = normal & (code == k)
        pixel_class[m] = PIXEL_CLASSES[name]
        response[m] = rng.uniform(*ranges[name], int(m.sum()))
    candidate = normal & (code == 2)
    # a neighbour that is not a normal science pixel, or is another candidate, or lies
    # outside the array (cval 1) rejects the candidate
    blocked = (~((pixel_class == 0) & ~ref) | candidate).astype(np.int32)
    ring = np.ones((3, 3), np.int32)
    ring[1, 1] = 0
    crowded = convolve(blocked, ring, mode="constant", cval=1) > 0
    is_open = candidate & ~crowded
    around = convolve(is_open.astype(np.int32), ring, mode="constant", cval=0) > 0
    pixel_class[around] = PIXEL_CLASSES["adj_open"]
    pixel_class[is_open] = PIXEL_CLASSES["open"]
    response[is_open] = rng.uniform(*ranges["open"], int(is_open.sum()))


def illumination_pattern(attrs: dict, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """A smooth lamp pattern (vignetting and a gradient) over the full detector.

    ``1 - amplitude (u^2 + v^2) / 2 + 0.3 amplitude u``, with ``u, v`` the full-frame
    column and row coordinates scaled to [-1, 1]: a subarray sees its own part.
    """
    miri = str(attrs.get("INSTRUME", "")).upper() == "MIRI"
    full = MIRI_FULL if miri else NIR_FULL
    ny, nx = shape
    x = int(attrs.get("SUBSTRT1", 1)) - 1 + np.arange(nx)
    y = int(attrs.get("SUBSTRT2", 1)) - 1 + np.arange(ny)
    u = 2.0 * x / (full[1] - 1) - 1.0
    v = 2.0 * y / (full[0] - 1) - 1.0
    return (1.0 - amplitude * (u[None, :] ** 2 + v[:, None] ** 2) / 2
            + 0.3 * amplitude * u[None, :])


def flat_rate(truth: DetectorTruth, level: float, *, pattern_amplitude: float = 0.15
              ) -> np.ndarray:
    """Illumination rate of every pixel under a lamp, DN/s, dims (y, x).

    ``level x pattern x response``, where the pattern is
    :func:`illumination_pattern`; an OPEN pixel's missing charge, ``level x
    pattern x (1 - response)``, is shared equally by its 4 nearest neighbours.
    Reference pixels get nothing.
    """
    ideal = float(level) * illumination_pattern(truth.attrs, truth.shape, pattern_amplitude)
    ideal = np.where(truth.reference, 0.0, ideal)
    rate = ideal * truth.response
    lost = np.where(truth.class_mask("open"), ideal * (1.0 - truth.response), 0.0) / 4.0
    spread = np.zeros_like(lost)
    spread[1:, :] += lost[:-1, :]
    spread[:-1, :] += lost[1:, :]
    spread[:, 1:] += lost[:, :-1]
    spread[:, :-1] += lost[:, 1:]
    return rate + np.where(truth.reference, 0.0, spread)


def _row_noise(rng: np.random.Generator, ny: int, amplitude: float, scale: float) -> np.ndarray:
    """Smooth random series over rows with standard deviation ``amplitude``."""
    if amplitude <= 0:
        return np.zeros(ny)
    half = int(3 * scale)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / scale) ** 2)
    white = rng.standard_normal(ny + 2 * half)
    series = np.convolve(white, kernel / np.sqrt((kernel**2).sum()), mode="valid")
    return amplitude * series


class _ClassSignals:
    """Per-group additions of the RC, telegraph, low-pedestal and saturated pixels.

    Works on the flat indices of the (few) pixels of each class. The telegraph states
    and the low-pedestal integrations are drawn from ``rng``, a stream of the
    exposure's own, so every exposure differs and the other draws are unchanged.
    """

    def __init__(self, truth: DetectorTruth, t: np.ndarray, rng: np.random.Generator | None):
        pc = truth.pixel_class.ravel()
        self.rng = rng
        self.p_switch = float(truth.telegraph_switch_probability)
        self.p_low = float(truth.low_pedestal_int_fraction)
        rc = np.flatnonzero((pc == PIXEL_CLASSES["rc"]) | (pc == PIXEL_CLASSES["inverse_rc"]))
        self.rc = rc
        # (group, pixel) float32 RC signal, DN
        self.rc_signal = (truth.rc_amplitude.ravel()[rc][None, :]
                          * -np.expm1(-t[:, None] / truth.rc_tau.ravel()[rc][None, :])
                          ).astype(np.float32)
        self.tel = np.flatnonzero(pc == PIXEL_CLASSES["telegraph"])
        self.tel_amp = truth.telegraph_amplitude.ravel()[self.tel].astype(np.float32)
        self.low = np.flatnonzero(pc == PIXEL_CLASSES["low_pedestal"])
        self.low_offset = truth.low_pedestal_offset.ravel()[self.low].astype(np.float32)
        self.sat = np.flatnonzero(pc == PIXEL_CLASSES["saturated"])
        self.active = bool(rc.size or self.tel.size or self.low.size or self.sat.size)
        if self.active and self.rng is None:
            raise ValueError("bad-pixel classes need an rng for the exposure")
        self.tel_state = np.zeros((t.size, 0), np.float32)

    def start_integration(self, reset: np.ndarray) -> None:
        """Draw this integration's telegraph states and lower the low-pedestal resets."""
        ngroups = self.rc_signal.shape[0]
        if self.tel.size:
            first = self.rng.integers(0, 2, self.tel.size)
            flips = self.rng.random((ngroups - 1, self.tel.size)) < self.p_switch
            n_flips = np.zeros((ngroups, self.tel.size), np.int64)
            np.cumsum(flips, axis=0, out=n_flips[1:])
            state = (first[None, :] + n_flips) % 2
            self.tel_state = state.astype(np.float32) * self.tel_amp[None, :]
        if self.low.size:
            low = self.rng.random(self.low.size) < self.p_low
            reset.reshape(-1)[self.low[low]] -= self.low_offset[low]

    def apply(self, plane: np.ndarray, g: int, level: np.float32) -> None:
        """Add group ``g``'s class signals to ``plane`` (float32, before clipping)."""
        flat = plane.reshape(-1)
        if self.rc.size:
            flat[self.rc] += self.rc_signal[g]
        if self.tel.size:
            flat[self.tel] += self.tel_state[g]
        if self.sat.size:
            flat[self.sat] = level


def _planes(truth: DetectorTruth, nints: int, ngroups: int, rng: np.random.Generator,
            crs: list, class_rng: np.random.Generator | None = None,
            flux: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield the uint16 ``(y, x)`` planes of one exposure in file order.

    ``class_rng`` draws the per-integration states of the bad-pixel classes (default a
    new child of ``rng``, which leaves ``rng``'s own draws unchanged); ``flux`` (DN/s,
    (y, x)) replaces ``truth.flux``.
    """
    ny, nx = truth.shape
    attrs = truth.attrs
    t = group_times(attrs, ngroups)
    dt = np.diff(np.concatenate([[0.0], t]))
    nframes = int(attrs["NFRAMES"])
    read_sigma = (truth.readnoise_cds / np.sqrt(2.0) / np.sqrt(nframes)).astype(np.float32)
    amps = amplifier_index(attrs, (ny, nx))
    parity = np.arange(int(attrs["SUBSTRT1"]) - 1, int(attrs["SUBSTRT1"]) - 1 + nx) % 2
    col_group = amps * 2 + parity  # 8 (amplifier, parity) classes
    gain = truth.pixel_gain
    e_rate = (truth.dark_current + (truth.flux if flux is None else flux)) * gain  # e-/s
    # with a well (and non-linearity) the read signal is f(linear); the plain sum else,
    # unchanged in every operation so existing simulations stay bit-identical
    nonlinear = truth.full_well is not None
    coupled = float(truth.ipc_alpha) > 0.0
    if nonlinear:
        well_level = (truth.bias + truth.measured_signal(truth.full_well)).astype(np.float32)
    bias = truth.bias.astype(np.float32)
    cr_prob = 1.0 - np.exp(-truth.cosmic_ray_rate * t[-1]) if truth.cosmic_ray_rate > 0 else 0.0
    sat = np.float32(min(truth.saturation, 65535.0))
    if class_rng is None and np.any(truth.pixel_class > PIXEL_CLASSES["hot"]):
        class_rng = rng.spawn(1)[0]
    classes = _ClassSignals(truth, t, class_rng)
    for i in range(nints):
        reset = bias + np.float32(truth.ktc_noise) * rng.standard_normal((ny, nx), np.float32)
        if classes.active:
            classes.start_integration(reset)
        electrons = np.zeros((ny, nx), np.float64)
        cr_signal = np.zeros((ny, nx), np.float32)
        # Cosmic rays of this integration: at most one per pixel, uniform in time.
        hit = np.zeros((ny, nx), bool)
        if cr_prob > 0:
            hit = (rng.random((ny, nx)) < cr_prob) & ~truth.reference
        hy, hx = np.nonzero(hit)
        hit_group = rng.integers(1, ngroups, hy.size) if ngroups > 1 else np.zeros(hy.size, int)
        hit_amp = np.exp(rng.uniform(np.log(50.0), np.log(3000.0), hy.size)).astype(np.float32)
        for y, x, g, a in zip(hy, hx, hit_group, hit_amp, strict=True):
            crs.append((i, g, y, x, a))
        for g in range(ngroups):
            electrons += rng.poisson(e_rate * dt[g]) if e_rate.any() else 0.0
            now = hit_group == g
            if now.any():
                cr_signal[hy[now], hx[now]] += hit_amp[now]
            offsets = np.zeros(8, np.float32)
            if truth.amp_offset_sigma > 0:
                offsets += np.repeat(truth.amp_offset_sigma * rng.standard_normal(4), 2)
            if truth.odd_even_offset > 0:
                offsets += truth.odd_even_offset * rng.standard_normal(8)
            rows = _row_noise(rng, ny, truth.row_noise, truth.row_noise_scale).astype(np.float32)
            if coupled:
                # IPC couples the collected signal (after its shot noise), before the
                # non-linearity; without IPC the expressions below are untouched, so
                # every other simulation stays bit-identical
                signal = truth.ipc(electrons / gain + cr_signal)
            if nonlinear:
                linear = signal if coupled else electrons / gain + cr_signal
                # a full well reads one absolute level, whatever the reset offset was
                plane = (np.minimum(reset + truth.measured_signal(linear)
                                    .astype(np.float32), well_level)
                         + offsets[col_group][None, :] + rows[:, None]
                         + read_sigma * rng.standard_normal((ny, nx), np.float32))
            elif coupled:
                plane = (reset + signal.astype(np.float32)
                         + offsets[col_group][None, :] + rows[:, None]
                         + read_sigma * rng.standard_normal((ny, nx), np.float32))
            else:
                plane = (reset + (electrons / gain).astype(np.float32) + cr_signal
                         + offsets[col_group][None, :] + rows[:, None]
                         + read_sigma * rng.standard_normal((ny, nx), np.float32))
            if classes.active:
                classes.apply(plane, g, sat)
            np.clip(np.rint(plane), 0, sat, out=plane)
            yield plane.astype(np.uint16)


def simulate_exposure(
    path: str | os.PathLike,
    truth: DetectorTruth,
    *,
    nints: int = 2,
    ngroups: int = 10,
    seed: int = 0,
    start: str | Time = "2026-01-01T00:00:00",
    exp_type: str | None = None,
    flux: np.ndarray | float | None = None,
) -> Exposure:
    """Write one simulated ``uncal`` exposure of the detector ``truth``.

    Parameters
    ----------
    path : path-like
        Output FITS file.
    truth : DetectorTruth
        From :func:`make_truth`.
    nints, ngroups : int
        Integrations and groups.
    seed : int
        Seed of this exposure's noise and cosmic rays.
    start : str or astropy.time.Time
        Exposure start (UTC).
    exp_type : str, optional
        EXP_TYPE (default: a dark, ``NRC_DARK``, ``MIR_DARKIMG``, ``NIS_DARK``,
        ``NRS_DARK`` or ``FGS_DARK``; with flux a flat or lamp exposure, ``NRC_FLAT``,
        ``MIR_FLATIMAGE``, ``NIS_LAMP``, ``NRS_LAMP`` or ``FGS_INTFLAT``: values the
        datamodel schemas accept).
    flux : ndarray (y, x) or float, optional
        Illumination of this exposure, DN/s (default ``truth.flux``), e.g. from
        :func:`flat_rate`.
    """
    attrs = truth.attrs
    if flux is not None:
        flux = np.broadcast_to(np.asarray(flux, np.float64), truth.shape)
    ny, nx = truth.shape
    start = Time(start, scale="utc")
    duration = float(group_times(attrs, ngroups)[-1]) * nints
    end = start + TimeDelta(duration, format="sec")
    if exp_type is None:
        darks = {"NIRCAM": "NRC_DARK", "MIRI": "MIR_DARKIMG", "NIRISS": "NIS_DARK",
                 "NIRSPEC": "NRS_DARK", "FGS": "FGS_DARK"}
        flats = {"NIRCAM": "NRC_FLAT", "MIRI": "MIR_FLATIMAGE", "NIRISS": "NIS_LAMP",
                 "NIRSPEC": "NRS_LAMP", "FGS": "FGS_INTFLAT"}
        lit = (truth.flux if flux is None else flux).any()
        exp_type = (flats if lit else darks).get(attrs["INSTRUME"], "NRC_DARK")
    s_iso, e_iso = start.isot.split("T"), end.isot.split("T")
    header = dict(attrs)
    header.update({
        "ORIGIN": "daskref", "FILETYPE": "UNCALIBRATED", "DATAMODL": "Level1bModel",
        "EXP_TYPE": exp_type, "NINTS": nints, "NGROUPS": ngroups,
        "EFFINTTM": float(group_times(attrs, ngroups)[-1] - group_times(attrs, 1)[0]),
        "DATE-OBS": s_iso[0], "TIME-OBS": s_iso[1], "DATE-END": e_iso[0], "TIME-END": e_iso[1],
        "EXPSTART": start.mjd, "EXPEND": end.mjd,
        "FILENAME": Path(path).name, "SIMULATD": (True, "daskref.simulate"),
    })
    seq = np.random.SeedSequence([truth.seed, 2, seed])
    rng = np.random.default_rng(seq)
    # bad-pixel states: a child of the exposure's seed (the noise draws are unchanged)
    class_rng = np.random.default_rng(seq.spawn(1)[0])
    crs: list = []
    planes = _planes(truth, nints, ngroups, rng, crs, class_rng, flux)
    write_exposure(path, header, [("SCI", (nints, ngroups, ny, nx), np.uint16, planes)],
                   ext_headers={"SCI": {"BUNIT": "DN"}})
    cr_dtype = [("integration", "i4"), ("group", "i4"), ("y", "i4"), ("x", "i4"),
                ("amplitude", "f4")]
    return Exposure(path=Path(path), header=header,
                    cosmic_rays=np.array(crs, dtype=cr_dtype))


def simulate_campaign(
    outdir: str | os.PathLike,
    n_files: int = 5,
    *,
    nints: int = 2,
    ngroups: int = 10,
    seed: int = 0,
    prefix: str = "dark",
    start: str = "2026-01-01T00:00:00",
    cadence: float = 3600.0,
    ngroups_each: Sequence[int] | None = None,
    **truth_kwargs,
) -> Campaign:
    """Simulate ``n_files`` exposures of one detector, one every ``cadence`` seconds.

    Parameters
    ----------
    outdir : path-like
        Directory for ``<prefix>_NNN_uncal.fits``.
    n_files, nints, ngroups : int
        Number of exposures, integrations and groups.
    seed : int
        Seed of the detector truth and of every exposure.
    start, cadence : str, float
        Time of the first exposure (UTC) and spacing in seconds.
    ngroups_each : sequence of int, optional
        Per-file group counts, overriding ``ngroups``.
    **truth_kwargs
        Passed to :func:`make_truth`.

    Returns
    -------
    Campaign
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    truth = make_truth(seed=seed, **truth_kwargs)
    t0 = Time(start, scale="utc")
    exposures = []
    for k in range(n_files):
        g = ngroups if ngroups_each is None else ngroups_each[k]
        path = outdir / f"{prefix}_{k:03d}_uncal.fits"
        exposures.append(simulate_exposure(
            path, truth, nints=nints, ngroups=g, seed=k,
            start=t0 + TimeDelta(k * cadence, format="sec"),
        ))
    return Campaign(truth=truth, exposures=exposures)


def flat_level(truth: DetectorTruth, ngroups: int, fill_fraction: float) -> float:
    """Lamp level (DN/s) that fills a typical pixel to ``fill_fraction`` of its well.

    The well is the saturation level (at most 65535) less the median reset level; a
    pixel of response 1 at pattern 1 reaches that fraction in its last group.
    """
    if not 0.0 < fill_fraction <= 1.0:
        raise ValueError(f"fill_fraction must be in (0, 1], not {fill_fraction}")
    well = min(float(truth.saturation), 65535.0) - float(np.median(truth.bias))
    return fill_fraction * well / float(group_times(truth.attrs, ngroups)[-1])


def _exposure_series(truth: DetectorTruth, files, *, nints: int, ngroups: int, seed: int,
                     start: str, cadence: float, exp_type: str | None = None) -> list:
    """Simulate ``files``, ``(path, flux)`` pairs, in order.

    File ``k`` gets the noise seed ``seed + k`` and starts ``k * cadence`` seconds
    after ``start`` (UTC).
    """
    t0 = Time(start, scale="utc")
    return [simulate_exposure(path, truth, nints=nints, ngroups=ngroups, seed=seed + k,
                              exp_type=exp_type, flux=flux,
                              start=t0 + TimeDelta(k * cadence, format="sec"))
            for k, (path, flux) in enumerate(files)]


def _median_well(truth: DetectorTruth) -> float:
    """Median full well of the science pixels, DN."""
    return float(np.median(truth.full_well[~truth.reference]))


def simulate_flats(
    outdir: str | os.PathLike,
    truth: DetectorTruth,
    n_files: int = 3,
    *,
    nints: int = 1,
    ngroups: int = 10,
    fill_fraction: float = 0.5,
    pattern_amplitude: float = 0.15,
    seed: int = 1000,
    prefix: str = "flat",
    start: str = "2026-01-01T12:00:00",
    cadence: float = 3600.0,
    exp_type: str | None = None,
) -> Campaign:
    """Simulate lamp flats of the detector ``truth`` (the same one as its darks).

    Every file sees the same illumination, :func:`flat_rate` at the level of
    :func:`flat_level`, with Poisson noise, the dark current, cosmic rays and every
    class of ``truth`` (its DEAD, LOW_QE and OPEN pixels show here).

    Parameters
    ----------
    outdir : path-like
        Directory for ``<prefix>_NNN_uncal.fits``.
    truth : DetectorTruth
        From :func:`make_truth`, e.g. with :data:`FLAT_DEFECT_DEFAULTS`.
    n_files, nints, ngroups : int
        Exposures, integrations and groups.
    fill_fraction : float
        Fraction of the well a typical pixel reaches in its last group.
    pattern_amplitude : float
        Depth of the lamp pattern (:func:`illumination_pattern`).
    seed : int
        Seed of the first exposure's noise (then ``seed + k``); keep it apart from
        the darks' seeds.
    start, cadence : str, float
        Time of the first flat (UTC) and spacing, s.
    exp_type : str, optional
        Default ``NRC_FLAT``, ``MIR_FLATIMAGE``, ``NIS_LAMP``, ``NRS_LAMP``,
        ``FGS_INTFLAT`` by instrument (``NRC_LED`` is also a flat type).

    Returns
    -------
    Campaign
        ``flux`` holds the illumination (DN/s, (y, x)).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rate = flat_rate(truth, flat_level(truth, ngroups, fill_fraction),
                     pattern_amplitude=pattern_amplitude)
    exposures = _exposure_series(
        truth, [(outdir / f"{prefix}_{k:03d}_uncal.fits", rate) for k in range(n_files)],
        nints=nints, ngroups=ngroups, seed=seed, start=start, cadence=cadence,
        exp_type=exp_type)
    return Campaign(truth=truth, exposures=exposures, flux=rate)


def simulate_ramps(
    outdir: str | os.PathLike,
    truth: DetectorTruth,
    fill_fractions: Sequence[float] = (0.6, 1.5, 3.0),
    *,
    n_per_level: int = 1,
    nints: int = 2,
    ngroups: int = 20,
    pattern_amplitude: float = 0.1,
    seed: int = 2000,
    prefix: str = "lin",
    start: str = "2026-01-02T00:00:00",
    cadence: float = 600.0,
    exp_type: str | None = None,
) -> Campaign:
    """Simulate a linearity campaign: lamp ramps at several fluxes, into saturation.

    Each level's illumination is :func:`flat_rate` at a level where a typical pixel
    (response 1, pattern 1) collects ``fill_fraction`` times the median
    ``full_well`` by its last group: fractions above 1 saturate part-way up the
    ramp (at about group ``ngroups / fill_fraction``), those below stay unsaturated.

    Parameters
    ----------
    outdir : path-like
        Directory for ``<prefix>_NNN_uncal.fits`` (levels in the order given).
    truth : DetectorTruth
        From :func:`make_truth` with a ``full_well`` (and usually a non-linearity).
    fill_fractions : sequence of float
        Linear signal of the last group over the median onset, one per level.
    n_per_level, nints, ngroups : int
        Exposures per level, integrations and groups of each.
    pattern_amplitude : float
        Depth of the lamp pattern.
    seed : int
        Seed of the first exposure's noise (then ``seed + k``).
    start, cadence : str, float
        Time of the first exposure (UTC) and spacing, s.
    exp_type : str, optional
        As in :func:`simulate_flats`.

    Returns
    -------
    Campaign
        ``fluxes`` holds each exposure's illumination (DN/s, (y, x)).

    Raises
    ------
    ValueError
        A truth without a well, or a fill fraction that is not positive.
    """
    if truth.full_well is None:
        raise ValueError("simulate_ramps needs a truth with a full_well "
                         "(make_truth(full_well=...))")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    well = _median_well(truth)
    t_last = float(group_times(truth.attrs, ngroups)[-1])
    fluxes = []
    for fill in fill_fractions:
        if not fill > 0:
            raise ValueError(f"fill fractions must be positive, not {fill}")
        rate = flat_rate(truth, fill * well / t_last, pattern_amplitude=pattern_amplitude)
        fluxes += [rate] * int(n_per_level)
    exposures = _exposure_series(
        truth, [(outdir / f"{prefix}_{k:03d}_uncal.fits", f) for k, f in enumerate(fluxes)],
        nints=nints, ngroups=ngroups, seed=seed, start=start, cadence=cadence,
        exp_type=exp_type)
    return Campaign(truth=truth, exposures=exposures, fluxes=fluxes)


def simulate_ptc(
    outdir: str | os.PathLike,
    truth: DetectorTruth,
    fill_fractions: Sequence[float] = (0.1, 0.25, 0.4, 0.55, 0.7),
    *,
    n_pairs: int = 1,
    n_dark_pairs: int = 1,
    nints: int = 1,
    ngroups: int = 5,
    pattern_amplitude: float = 0.1,
    seed: int = 4000,
    start: str = "2026-01-03T00:00:00",
    cadence: float = 600.0,
) -> Campaign:
    """Simulate a photon-transfer campaign: pairs of flats at several levels, dark pairs.

    Parameters
    ----------
    outdir : path-like
        Directory for ``ptc_dark_NNN_uncal.fits`` and ``ptc_flat_NNN_uncal.fits``
        (the two files of a pair are consecutive).
    truth : DetectorTruth
        From :func:`make_truth` (a gain map via ``amp_gains``/``gain_scatter``).
    fill_fractions : sequence of float
        Level of each flat pair: the signal of a typical pixel in the last group, as
        a fraction of the median ``full_well`` (or of the well of :func:`flat_level`
        without one).
    n_pairs, n_dark_pairs, nints, ngroups : int
        Flat pairs per level, dark pairs, and integrations and groups of every file.
    pattern_amplitude : float
        Depth of the lamp pattern.
    seed : int
        Seed of the first file's noise (then ``seed + k``).
    start, cadence : str, float
        Time of the first file (UTC) and spacing, s.

    Returns
    -------
    Campaign
        Darks first, then the flats pair by pair; ``fluxes`` holds each file's
        illumination (DN/s, (y, x); zeros for the darks).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t_last = float(group_times(truth.attrs, ngroups)[-1])
    if truth.full_well is not None:
        well = _median_well(truth)
    else:
        well = flat_level(truth, ngroups, 1.0) * t_last
    plan = [("dark", np.zeros(truth.shape))] * (2 * int(n_dark_pairs))
    for fill in fill_fractions:
        rate = flat_rate(truth, float(fill) * well / t_last, pattern_amplitude=pattern_amplitude)
        plan += [("flat", rate), ("flat", rate)] * int(n_pairs)
    files, count = [], {"dark": 0, "flat": 0}
    for kind, flux in plan:
        files.append((outdir / f"ptc_{kind}_{count[kind]:03d}_uncal.fits", flux))
        count[kind] += 1
    exposures = _exposure_series(truth, files, nints=nints, ngroups=ngroups, seed=seed,
                                 start=start, cadence=cadence)
    return Campaign(truth=truth, exposures=exposures, fluxes=[f for _, f in files])


def write_truth(truth: DetectorTruth, path: str | os.PathLike) -> Path:
    """Write the truth maps to FITS.

    Extensions: BIAS, GROUP0, READNOISE_CDS (DN), DARK_CURRENT (DN/s), HOT (uint8),
    FLUX (DN/s), PIXEL_CLASS (uint8, codes :data:`PIXEL_CLASSES`, listed as
    ``CLASSn`` keywords of its header), NOISE_FACTOR, RC_AMPLITUDE (signed DN),
    RC_TAU (s), TELEGRAPH_AMPLITUDE (DN), LOW_PEDESTAL_OFFSET (DN) and RESPONSE
    (relative response to light); the primary header has the detector keywords, GAIN,
    IPCALPHA (with IPC), KTCNOISE, TELPSWIT (telegraph switch probability) and LOWPFRAC
    (fraction of low-pedestal integrations).

    Parameters
    ----------
    truth : DetectorTruth
        From :func:`make_truth`.
    path : path-like
        Output file (replaced atomically).

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    from .io.exposure_writer import atomic_path

    primary = fits.PrimaryHDU()
    for key, value in truth.attrs.items():
        primary.header[key] = value
    primary.header["GAIN"] = (truth.gain, "e-/DN")
    if truth.ipc_alpha:  # (absent without IPC: those truth files are as they were)
        primary.header["IPCALPHA"] = (float(truth.ipc_alpha), "nearest-neighbour IPC coupling")
    primary.header["KTCNOISE"] = (truth.ktc_noise, "DN")
    primary.header["TELPSWIT"] = (truth.telegraph_switch_probability,
                                  "telegraph flip probability per group")
    primary.header["LOWPFRAC"] = (truth.low_pedestal_int_fraction,
                                  "fraction of low-pedestal integrations")
    hdus = [primary]
    u8, f32 = np.uint8, np.float32
    for name, data, dtype, unit in (
        ("BIAS", truth.bias, f32, "DN"), ("GROUP0", truth.expected_group0(), f32, "DN"),
        ("READNOISE_CDS", truth.readnoise_cds, f32, "DN"),
        ("DARK_CURRENT", truth.dark_current, f32, "DN/s"),
        ("HOT", truth.hot, u8, None), ("FLUX", truth.flux, f32, "DN/s"),
        ("PIXEL_CLASS", truth.pixel_class, u8, None),
        ("NOISE_FACTOR", truth.noise_factor, f32, None),
        ("RC_AMPLITUDE", truth.rc_amplitude, f32, "DN"), ("RC_TAU", truth.rc_tau, f32, "s"),
        ("TELEGRAPH_AMPLITUDE", truth.telegraph_amplitude, f32, "DN"),
        ("LOW_PEDESTAL_OFFSET", truth.low_pedestal_offset, f32, "DN"),
        ("RESPONSE", truth.response, f32, None),
    ):
        hdu = fits.ImageHDU(np.asarray(data, dtype=dtype), name=name)
        if unit:
            hdu.header["BUNIT"] = unit
        if name == "PIXEL_CLASS":
            for cls, code in PIXEL_CLASSES.items():
                hdu.header[f"CLASS{code}"] = cls
        hdus.append(hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return Path(path)


#: ``write_references`` keys (the ``prep`` reference arguments) -> (REFTYPE, DATAMODL).
REFERENCE_TYPES: dict[str, tuple[str, str]] = {
    "mask": ("MASK", "MaskModel"),
    "saturation": ("SATURATION", "SaturationModel"),
    "superbias": ("SUPERBIAS", "SuperBiasModel"),
    "linearity": ("LINEARITY", "LinearityModel"),
    "dark": ("DARK", "DarkModel"),
    "readnoise": ("READNOISE", "ReadnoiseModel"),
    "gain": ("GAIN", "GainModel"),
}


def write_references(
    truth: DetectorTruth,
    outdir: str | os.PathLike,
    ngroups: int,
    *,
    saturation: float | None = None,
    kinds: Sequence[str] | None = None,
    author: str = "daskref.simulate",
    useafter: str = "2000-01-01T00:00:00",
) -> dict[str, Path]:
    """Write CRDS-format reference files that match a simulated detector exactly.

    The files are those calwebb_detector1 (and :func:`daskref.prep.prep`) need up to
    ramp fitting, for the (sub)array of ``truth``, with the CRDS selection and
    provenance keywords (PEDIGREE ``SIMULATION``). They are written with astropy
    only; where ``stdatamodels`` is installed each is validated with its model
    before it is renamed into place (:func:`daskref.io.crds.write_reference`).

    ========== ====================== =================================================
    key        DATAMODL               content
    ========== ====================== =================================================
    mask       ``MaskModel``          DQ (y, x) uint32: ``REFERENCE_PIXEL`` on the
                                      reference pixels, 0 elsewhere
    saturation ``SaturationModel``    SCI (y, x) float32, DN: ``saturation``
                                      everywhere; DQ 0
    superbias  ``SuperBiasModel``     SCI (y, x) float32, DN: ``truth.bias`` (the
                                      reset level without any accumulated signal);
                                      ERR 0; DQ 0
    linearity  ``LinearityModel``     COEFFS (3, y, x) float32: identity (0, 1, 0);
                                      DQ 0
    dark       ``DarkModel``          SCI (frame, y, x) float32, DN: frame-resolved
                                      (NFRAMES 1, GROUPGAP 0) ``dark_current x
                                      TFRAME x (k + 1)`` for frames k = 0 ...
                                      ``ngroups x (NFRAMES + GROUPGAP) - 1``; DQ 0.
                                      MIRI: ``DarkMIRIModel``, SCI (1, frame, y, x),
                                      DQ (1, 1, y, x)
    readnoise  ``ReadnoiseModel``     SCI (y, x) float32, DN: ``truth.readnoise_cds``
                                      (CDS noise, the JWST convention)
    gain       ``GainModel``          SCI (y, x) float32, e-/DN: ``truth.gain``
    ========== ====================== =================================================

    With these, the superbias- and dark-subtracted ramp of a simulated exposure is
    the per-integration reset offset (kTC), the amplifier/row offsets (removed by
    refpix), the illumination and the noise: exactly what the rate should recover.

    Parameters
    ----------
    truth : DetectorTruth
        From :func:`make_truth` (or ``Campaign.truth``).
    outdir : path-like
        Output directory (created); files are named ``<key>.fits`` and replaced when
        they exist.
    ngroups : int
        Groups of the science exposures the DARK must cover.
    saturation : float, optional
        Saturation level, DN (default ``truth.saturation``, at most 65535).
    kinds : sequence of str, optional
        Subset of the keys above to write (default all).
    author, useafter : str
        AUTHOR and USEAFTER keywords.

    Returns
    -------
    dict of str to pathlib.Path
        ``{key: path}``, the keys being :func:`daskref.prep.prep`'s reference
        arguments (so ``prep(path, steps=..., **refs)`` works).

    Raises
    ------
    ValueError
        An unknown ``kinds`` entry, or ``ngroups`` < 1.
    daskref.io.crds.MetadataError
        A file its stdatamodels model rejects (only where stdatamodels is installed).
    """
    from . import dq
    from .io.crds import CrdsMeta, crds_header, write_reference

    kinds = list(REFERENCE_TYPES) if kinds is None else list(kinds)
    unknown = sorted(set(kinds) - set(REFERENCE_TYPES))
    if unknown:
        raise ValueError(f"unknown reference kind(s) {unknown}; known: {list(REFERENCE_TYPES)}")
    if int(ngroups) < 1:
        raise ValueError(f"ngroups must be at least 1, not {ngroups}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    attrs = truth.attrs
    shape = truth.shape
    miri = attrs["INSTRUME"] == "MIRI"
    level = min(float(truth.saturation if saturation is None else saturation), 65535.0)
    nframes, groupgap = int(attrs["NFRAMES"]), int(attrs["GROUPGAP"])
    n_dark = int(ngroups) * (nframes + groupgap)
    zero_dq = np.zeros(shape, dq.PIXEL_DTYPE)
    good = dq.dq_def(["GOOD"])
    history = [f"Simulated with daskref.simulate (truth seed {truth.seed}); "
               f"write_references(ngroups={int(ngroups)}, saturation={level:g})."]

    def image_data(kind):
        """(images, dq_def, extra header, READPATT or None) of one reference type."""
        if kind == "mask":
            mask = np.where(truth.reference, dq.REFERENCE_PIXEL, 0).astype(dq.PIXEL_DTYPE)
            return ([("DQ", mask, None)], dq.dq_def(["GOOD", "REFERENCE_PIXEL"]), {}, "ANY")
        if kind == "saturation":
            return ([("SCI", np.full(shape, level, np.float32), "DN"), ("DQ", zero_dq, None)],
                    good, {}, None)
        if kind == "superbias":
            return ([("SCI", truth.bias.astype(np.float32), "DN"),
                     ("ERR", np.zeros(shape, np.float32), "DN"), ("DQ", zero_dq, None)],
                    good, {}, "ANY")
        if kind == "linearity":
            coeffs = np.zeros((3,) + shape, np.float32)
            coeffs[1] = 1.0
            return [("COEFFS", coeffs, None), ("DQ", zero_dq, None)], good, {}, None
        if kind == "dark":
            t = float(attrs["TFRAME"]) * np.arange(1, n_dark + 1, dtype=np.float64)
            frames = (truth.dark_current[None] * t[:, None, None]).astype(np.float32)
            dark_dq = zero_dq
            if miri:
                frames, dark_dq = frames[None], zero_dq[None, None]
            extra = {"NFRAMES": 1, "GROUPGAP": 0, "NGROUPS": n_dark, "NINTS": 1}
            return ([("SCI", frames, "DN"), ("DQ", dark_dq, None)], good, extra,
                    "FAST" if miri else "RAPID")
        if kind == "readnoise":
            return [("SCI", truth.readnoise_cds.astype(np.float32), "DN")], None, {}, "ANY"
        return ([("SCI", np.full(shape, truth.gain, np.float32), "electrons/DN")], None, {},
                None)

    out: dict[str, Path] = {}
    for kind in kinds:
        reftype, datamodel = REFERENCE_TYPES[kind]
        if kind == "dark" and miri:
            datamodel = "DarkMIRIModel"
        images, dq_def, extra, readpatt = image_data(kind)
        path = outdir / f"{kind}.fits"
        meta = CrdsMeta(author=author, pedigree="SIMULATION", useafter=useafter,
                        readpatt=readpatt)
        header = crds_header(
            attrs, reftype=reftype, datamodel=datamodel, meta=meta,
            description=f"Simulated {reftype} matching a daskref.simulate truth",
            shape=shape, use_readpatt=readpatt is not None, filename=path.name,
        )
        header["NOUTPUTS"] = int(attrs.get("NOUTPUTS", 4))
        header.update(extra)
        out[kind] = write_reference(path, header, history, images, dq_def)
    return out
