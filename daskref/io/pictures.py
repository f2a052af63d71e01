"""PNG pictures beside reference files (matplotlib is an optional extra, ``qa``)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("daskref")


def pyplot(png):
    """``matplotlib.pyplot`` on the file-only Agg backend, or None (logged) without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed (pip install 'daskref[qa]'): no %s", png)
        return None
    return plt


def save_png(fig, png, *, dpi: int = 90) -> Path:
    """Write a figure to ``png`` through a temporary name, and close it."""
    import matplotlib.pyplot as plt

    from .exposure_writer import atomic_path

    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(png)
