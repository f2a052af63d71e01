"""Reference-type plug-ins: one interface for built-in and external reflabels.

A plug-in is a subclass of :class:`Plugin` naming its reflabel, REFTYPE, datamodel,
default ``imtypes`` and ``ssbsteps``, and its parameters (name, help; the default and
type come from the signature of :meth:`Plugin.make`, as for the built-in types). Its
``make`` receives the set's lazily calibrated stack and returns a lazy Dataset whose
variables are the file's extensions (``sci``, ``err``, ``dq``, ...), or it overrides
:meth:`Plugin.write` to write its file itself. :func:`as_reftype` turns it into the
registry entry that the API, the CLI and mkrefs use.

Plug-ins are found in the ``daskref.reflabels`` entry-point group (the entry point's
name is the reflabel, its value the class) and in ``mkref_<label>.py`` files in the
directories of the mkrefs ``plugin_dirs`` key (the module defines one Plugin subclass).

Example (``mkref_hotcount.py``)::

    import xarray as xr
    from daskref.reftypes.plugins import Plugin
    from daskref.reftypes.registry import Param

    class HotCount(Plugin):
        reflabel, reftype, datamodel = "hotcount", "MASK", "MaskModel"
        imtypes, ssbsteps = "D+", "saturation,superbias,refpix,jump,rate"
        params = [Param("threshold", "DN/s above which a pixel is HOT")]

        def make(self, stack, threshold: float = 1.0):
            hot = stack.rateints.median("integration") > threshold
            return xr.Dataset({"dq": xr.where(hot, 2048, 0).astype("uint32")})
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import xarray as xr

from .. import dq
from ..io.crds import CrdsMeta
from ._base import open_raw, write_product
from ._inputs import gain_map, prepared_stack, split_kwargs
from .registry import REGISTRY, Param, RefType, register

ENTRY_POINT_GROUP = "daskref.reflabels"


class PluginError(RuntimeError):
    """A plug-in that cannot be used (import failure, wrong reflabel, ...)."""


class Plugin:
    """Base class of a reference-type plug-in (see the module docstring)."""

    reflabel: str = ""
    reftype: str = ""
    datamodel: str = ""
    summary: str = ""
    inputs: str = "darks"
    imtypes: str = "D+"
    ssbsteps: str | None = None
    ssbsteps_miri: str | None = None
    requires: tuple[str, ...] = ()
    params: list[Param] = []

    def make(self, stack: xr.Dataset, **params) -> xr.Dataset:
        """Return the lazy product of one image set (override)."""
        raise NotImplementedError

    def write(self, ds: xr.Dataset, path, meta: CrdsMeta) -> Path:
        """Write the computed product: each variable an extension, in order."""
        images = []
        for name, var in ds.data_vars.items():
            values = np.asarray(var.values)
            if name.lower() == "dq":
                values = values.astype(dq.PIXEL_DTYPE)
            images.append((name.upper(), values, var.attrs.get("units")))
        dq_def = None
        if "dq" in ds:
            used = int(np.bitwise_or.reduce(np.asarray(ds["dq"].values, np.uint32).ravel()))
            dq_def = dq.dq_def(["GOOD"] + [n for n, v in dq.PIXEL.items() if v and used & v])
        return write_product(ds, path, meta, reftype=self.reftype, datamodel=self.datamodel,
                             function=f"{type(self).__name__}.make",
                             template=f"{self.reftype} from {{n_inputs}} files (daskref "
                                      f"plug-in {self.reflabel})",
                             images=images, dq_def=dq_def)


def as_reftype(cls: type[Plugin]) -> RefType:
    """The registry entry of a plug-in class."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginError(f"{cls!r} is not a daskref Plugin subclass")
    for attr in ("reflabel", "reftype", "datamodel"):
        if not getattr(cls, attr):
            raise PluginError(f"plug-in {cls.__name__} does not set {attr}")
    plugin = cls()
    rt: RefType

    def build(inputs, *, steps=None, chunk_mb=None, spill_dir=None, **kwargs):
        refs, prep_params, params = split_kwargs(kwargs)
        params = rt.resolve(params)
        if rt.ssbsteps:
            stack = prepared_stack(rt, inputs, steps=steps, refs=refs, prep_params=prep_params,
                                   chunk_mb=chunk_mb, spill_dir=spill_dir)
        else:
            stack = open_raw(inputs, chunk_mb)
        if "gain" in refs and "gain" in params:  # a plug-in parameter named gain gets the map
            params["gain"] = gain_map(refs["gain"], stack)
        product = plugin.make(stack, **params)
        attrs = {k: v for k, v in stack.attrs.items() if k != "parameters"}
        attrs.update(product.attrs)
        attrs.update(reftype=rt.reftype, reflabel=rt.reflabel,
                     parameters={k: v for k, v in params.items()})
        product.attrs = attrs
        return product

    rt = RefType(
        reflabel=cls.reflabel, reftype=cls.reftype, datamodel=cls.datamodel,
        summary=cls.summary or f"{cls.reftype} reference file (plug-in {cls.__name__})",
        inputs=cls.inputs, imtypes=cls.imtypes, ssbsteps=cls.ssbsteps or None,
        ssbsteps_miri=cls.ssbsteps_miri, requires=tuple(cls.requires),
        algorithm=cls.make, params=list(cls.params), build=build, write=plugin.write,
    )
    return rt


def register_plugin(cls: type[Plugin], expected_label: str | None = None,
                    origin: str = "") -> RefType:
    """Check a plug-in class and add it to the registry (once)."""
    where = f" ({origin})" if origin else ""
    if expected_label is not None and cls.reflabel != expected_label:
        raise PluginError(f"plug-in{where} declares reflabel {cls.reflabel!r} but is named "
                          f"{expected_label!r}")
    if cls.reflabel in REGISTRY:
        existing = REGISTRY[cls.reflabel]
        if getattr(existing, "plugin_class", None) is cls:
            return existing
        raise PluginError(f"plug-in{where}: reflabel {cls.reflabel!r} is already registered")
    rt = as_reftype(cls)
    rt.plugin_class = cls  # type: ignore[attr-defined]
    return register(rt)


def _module_plugin(path: Path) -> type[Plugin]:
    label = path.stem.removeprefix("mkref_")
    spec = importlib.util.spec_from_file_location(f"daskref_plugin_{label}", path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # a plug-in's own error, reported in one line
        raise PluginError(f"{path}: the plug-in raised on import: {type(exc).__name__}: "
                          f"{exc}") from None
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, Plugin) and v is not Plugin
               and v.__module__ == module.__name__]
    if len(classes) != 1:
        raise PluginError(f"{path}: defines {len(classes)} Plugin subclasses; it must define one")
    return classes[0]


def load_plugins(plugin_dirs: Iterable[str | os.PathLike] = (), *,
                 use_entry_points: bool = True) -> list[RefType]:
    """Register the plug-ins of the entry-point group and of ``mkref_<label>.py`` files.

    Raises
    ------
    PluginError
        A plug-in that does not import, defines no or several Plugin classes, or whose
        reflabel does not match its file or entry-point name.
    """
    found = []
    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                cls = ep.load()
            except Exception as exc:
                raise PluginError(f"entry point {ep.name!r} ({ep.value}) raised on import: "
                                  f"{type(exc).__name__}: {exc}") from None
            found.append(register_plugin(cls, ep.name, f"entry point {ep.value}"))
    for directory in plugin_dirs:
        directory = Path(directory)
        if not directory.is_dir():
            raise PluginError(f"{directory}: plugin_dirs entry is not a directory")
        for path in sorted(directory.glob("mkref_*.py")):
            cls = _module_plugin(path)
            found.append(register_plugin(cls, path.stem.removeprefix("mkref_"), str(path)))
    return found
