"""The registry of reference types: every type and its parameters, declared once.

Each :class:`RefType` names its reflabel (the mkrefs section and plug-in name), its
REFTYPE and datamodel, the inputs it takes, its default ``imtypes`` and
``ssbsteps``, and its parameters. A parameter's default and type come from the
signature of the algorithm function that uses it (the one place a Python user
sees them); the registry adds the one-line help and the jwst_reffiles aliases.
The command line (subcommands and flags), the API's parameter checking and the
mkrefs config sections are built from here, so no parameter is written twice.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class ParameterError(TypeError):
    """A parameter that a reference type does not have, or a value of the wrong type."""


@dataclass(frozen=True)
class Param:
    """One parameter of a reference type.

    Attributes
    ----------
    name : str
        The name in the API, the config (``name``) and the CLI (``--name-with-dashes``
        and ``--name_with_underscores``).
    help : str
        One line for ``--help`` and the generated docs.
    aliases : tuple of str
        Other accepted names (jwst_reffiles' where they differ).
    default, kind, choices
        Filled from the algorithm's signature by :class:`RefType`: the default, the
        value kind (``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``) and
        the allowed values of a ``Literal``.
    optional : bool
        None is allowed (an ``X | None`` annotation).
    """

    name: str
    help: str
    aliases: tuple[str, ...] = ()
    default: Any = None
    kind: type = str
    choices: tuple | None = None
    optional: bool = False

    def convert(self, value: Any, where: str = "") -> Any:
        """Check and convert ``value`` to this parameter's kind.

        Strings (from the command line or a config file) are parsed; numbers keep
        their kind (an int parameter refuses 2.5). ``where`` names the source in
        the error message.

        Raises
        ------
        ParameterError
        """
        label = f"{where}: " if where else ""
        if value is None:
            if self.optional or self.default is None:
                return None
            raise ParameterError(f"{label}{self.name} must not be empty")
        try:
            out = _convert(self.kind, value)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"{label}{self.name}={value!r}: expected {self.kind.__name__} ({exc})"
            ) from None
        if self.choices is not None and out not in self.choices:
            raise ParameterError(
                f"{label}{self.name}={value!r}: must be one of {', '.join(map(str, self.choices))}"
            )
        return out


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError("not a boolean")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError("a boolean is not an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("not a whole number")
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return float(value)
    if kind is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return [str(v) for v in value]
    if kind is dict:
        if isinstance(value, str):
            import yaml

            value = yaml.safe_load(value)
        if not isinstance(value, Mapping):
            raise ValueError("not a mapping")
        return {str(k): v for k, v in value.items()}
    return str(value)


def _kind(annotation) -> tuple[type, tuple | None, bool]:
    """(kind, choices, optional) of a resolved annotation."""
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        annotation = rest[0] if len(rest) == 1 else str
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return type(args[0]), tuple(args), optional
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple, Sequence):
        return list, None, optional
    if origin in (dict, Mapping):
        return dict, None, optional
    if origin in (bool, int, float, str):
        return origin, None, optional
    return str, None, optional


@dataclass
class RefType:
    """A reference type daskref (or a plug-in) makes.

    Attributes
    ----------
    reflabel : str
        mkrefs name (config section, plug-in name), e.g. ``readnoise``,
        ``badpix_from_darks``.
    reftype : str
        CRDS REFTYPE (``READNOISE``, ``MASK``, ...).
    datamodel : str
        stdatamodels model of the written file.
    summary : str
        One line for the CLI and the docs.
    inputs : str
        ``darks`` or ``flats``.
    imtypes : str
        Default mkrefs input grouping (``D``, ``D+``, ``DD``, ``FF``, ...).
    ssbsteps : str or None
        Default calibration of the inputs (``None``: raw ramps are used as they are).
    algorithm : callable
        The lazy algorithm; its signature gives each parameter's default and kind.
    params : sequence of Param
        The parameters (name, help, aliases), completed from ``algorithm``.
    build : callable
        ``build(inputs, **params) -> lazy Dataset``: the API function.
    write : callable
        ``write(ds, path, meta) -> Path``: writes the computed product.
    ssbsteps_miri : str or None
        MIRI's default ``ssbsteps`` where it differs.
    command : str
        The CLI subcommand (default the reflabel).
    input_flag : str, tuple of str, or None
        The CLI option(s) that take the input files (``--darks``; the combined MASK
        ``("darks", "flats")``); None: positional.
    requires : tuple of str
        Calibration steps every input must have had (``("jump",)``).
    needs_group_time : bool
        The product depends on the group time: every input must have a positive
        ``TGROUP``, checked with the headers.
    includes : tuple of RefType
        Types whose parameters this one also takes (the combined MASK takes those of
        the MASK from darks and from flats).
    merge_sets : bool
        In mkrefs, every image set of one detector and readout goes into one product
        (GAIN: one photon-transfer fit over all the levels), its members keeping the
        sets' order and pairs, each file once.
    check_set : callable, optional
        ``check_set(flats, darks)`` (paths) raises an ``InputError`` for a set the type
        cannot use, so that mkrefs refuses it while planning, before any work.

    A parameter's default and kind come from the ``algorithm``'s signature or, for
    one the algorithm does not see (a file to read, such as ``manual_flag_file``),
    from ``build``'s.
    """

    reflabel: str
    reftype: str
    datamodel: str
    summary: str
    inputs: str
    imtypes: str
    ssbsteps: str | None
    algorithm: Callable
    params: Sequence[Param]
    build: Callable
    write: Callable
    ssbsteps_miri: str | None = None
    command: str = ""
    input_flag: str | tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()
    needs_group_time: bool = False
    includes: tuple[RefType, ...] = ()
    merge_sets: bool = False
    check_set: Callable | None = None
    parameters: dict[str, Param] = field(init=False, repr=False)

    def __post_init__(self):
        self.command = self.command or self.reflabel
        sources = [(inspect.signature(f), _hints(f)) for f in (self.algorithm, self.build)]
        self.parameters = {}
        for p in self.params:
            found = [(sig, hints) for sig, hints in sources if p.name in sig.parameters]
            if not found:
                raise TypeError(f"{self.reflabel}: {self.algorithm.__name__} has no "
                                f"parameter {p.name!r}")
            signature, hints = found[0]
            kind, choices, optional = _kind(hints.get(p.name, str))
            default = signature.parameters[p.name].default
            self.parameters[p.name] = Param(
                p.name, p.help, tuple(p.aliases), default=default, kind=kind,
                choices=choices, optional=optional or default is None,
            )
        for other in self.includes:
            for name, param in other.parameters.items():
                self.parameters.setdefault(name, param)

    @property
    def input_flags(self) -> tuple[str, ...]:
        """The CLI options that take input files (none: positional)."""
        if not self.input_flag:
            return ()
        return (self.input_flag,) if isinstance(self.input_flag, str) else tuple(self.input_flag)

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default."""
        return {name: p.default for name, p in self.parameters.items()}

    def resolve(self, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Check names (aliases allowed) and convert values; unknown names are errors."""
        lookup = {a: p.name for p in self.parameters.values() for a in (p.name, *p.aliases)}
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in lookup:
                label = f"{where}: " if where else ""
                raise ParameterError(
                    f"{label}{self.reflabel} has no parameter {key!r}; its parameters: "
                    f"{', '.join(self.parameters)}"
                )
            name = lookup[key]
            out[name] = self.parameters[name].convert(value, where)
        return out


def _hints(func) -> dict:
    """Resolved annotations of a function ({} where they cannot be resolved)."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation naming something its module lacks
        return {}


REGISTRY: dict[str, RefType] = {}


def register(reftype: RefType) -> RefType:
    """Add a reference type (a built-in or a plug-in) under its reflabel."""
    if reftype.reflabel in REGISTRY:
        raise ValueError(f"reflabel {reftype.reflabel!r} is registered twice")
    REGISTRY[reftype.reflabel] = reftype
    return reftype


def by_reftype(reftype: str) -> RefType:
    """The registered type that writes products of this REFTYPE (first registered)."""
    for rt in REGISTRY.values():
        if rt.reftype == reftype:
            return rt
    raise KeyError(reftype)
