"""Reference types: one module per product, each registered in :mod:`.registry`.

Importing this package registers the built-in types; :data:`REGISTRY` maps each
reflabel to its :class:`~.registry.RefType`.
"""

from . import (  # noqa: F401  (register the built-in types)
    bad_pixel_mask,
    dark,
    gain,
    linearity,
    mask,
    mask_flats,
    readnoise,
    saturation,
    superbias,
)
from .registry import REGISTRY, Param, ParameterError, RefType, register

__all__ = ["REGISTRY", "Param", "ParameterError", "RefType", "register"]
