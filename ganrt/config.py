"""Config dataclasses are the single source of command-line flags, presets and saved configs.

A field's metadata holds its flag: `help` (the --help text), `choices`, `metavar` (the name
--help shows for its value), `default_text` (what --help says the default is, for defaults such
as None that mean something the value does not show), `parse` (text -> value, for flags whose
text is not one value of the field's type, raising ValueError or argparse.ArgumentTypeError),
`flag` (a flag name other than the field's) and `positional` (an optional positional argument
instead of a flag); `min`, `max` (both inclusive) and `multiple_of` bound a number. A class may
set `presets`, a ClassVar of named overrides (train's variant configs do). train, export and
infer build their flags here; a config is saved beside what it made (config.json, a generator's
metadata, a manifest) and read back with `from_dict`. `resolve` (and so `from_dict` and
`from_args`) checks every value's type and bounds before anything is built from it, once, for
flags and files alike: a config read from a file is input, not code.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import field
from typing import Any

from ganrt.errors import UsageError


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A config field with its help text (and optional `choices`, `min`, `metavar`, `default_text`; `recorded=True`
    for a field training writes for later stages, which gets no command-line flag)."""
    return field(default=default, metadata={"help": help, **kw})


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _parse_optional(kind: Any) -> tuple[Any, bool]:
    """(inner type, is_optional) of `X | None`."""
    args = typing.get_args(kind)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return kind, False


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One --flag per config field, with its default and help (defaults left unset)."""
    for f in dataclasses.fields(cls):
        kind, _ = _parse_optional(_field_type(cls, f))
        meta = f.metadata
        if meta.get("recorded"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        in_presets = "".join(f"; {name}: {vals[f.name]}" for name, vals in getattr(cls, "presets", {}).items()
                             if f.name in vals)
        bounds = f" [{'; '.join(_bounds(f))}]" if _bounds(f) else ""
        help_text = f"{meta.get('help', '')} (default: {meta.get('default_text', default)}{in_presets}){bounds}"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        if kind is bool:
            parser.add_argument(meta.get("flag", _flag(f)), action=argparse.BooleanOptionalAction, dest=f.name, **kw)
            continue
        tuple_of = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple and "parse" not in meta else None
        parse = meta.get("parse", tuple_of or kind)
        if "metavar" in meta or "choices" not in meta:  # argparse shows choices by themselves
            kw["metavar"] = meta.get("metavar", "X" if tuple_of else f.name.upper())
        if meta.get("positional"):
            parser.add_argument(f.name, nargs="?", type=parse, **kw)
        else:
            parser.add_argument(meta.get("flag", _flag(f)), type=parse, dest=f.name,
                                **({"nargs": "+"} if tuple_of else {}), **kw)


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


def resolve(cls: type, preset: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Defaults, then the preset, then explicit overrides, each value checked against its field."""
    values: dict[str, Any] = {}
    if preset:
        presets = getattr(cls, "presets", {})
        if preset not in presets:
            valid = ", ".join(presets) or "none"
            raise UsageError(f"unknown preset {preset!r}; choose one of: {valid}")
        values.update(presets[preset])
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown setting(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    for f in dataclasses.fields(cls):
        if f.name in values:
            values[f.name] = _checked(f, _field_type(cls, f), values[f.name])
    return cls(**values)


def _bounds(f: dataclasses.Field) -> list[str]:
    """A number field's bounds in words ("1 to 256", "a multiple of 4"), for --help and errors."""
    lo, hi, step = (f.metadata.get(k) for k in ("min", "max", "multiple_of"))
    words = []
    if lo is not None and hi is not None:
        words.append(f"{lo} to {hi}")
    elif lo is not None:
        words.append(f"at least {lo}")
    elif hi is not None:
        words.append(f"at most {hi}")
    if step:
        words.append(f"a multiple of {step}")
    return words


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _checked(f: dataclasses.Field, kind: Any, value: Any) -> Any:
    """`value` for field `f` after its type, choices and bounds are checked (ints widened to float, lists to tuples)."""
    kind, optional = _parse_optional(kind)
    if value is None and optional:
        return None
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"setting {f.name!r}: expected a list, got {value!r}")
        elem = typing.get_args(kind)[0]
        return tuple(_checked_scalar(f, elem, v) for v in value)
    return _checked_scalar(f, kind, value)


def _checked_scalar(f: dataclasses.Field, kind: Any, value: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    # bool is an int to Python, but `true` is no width and 1 is no switch
    is_kind = kind is bool if isinstance(value, bool) else isinstance(value, kind)
    if kind in _KIND_NAMES and not is_kind:
        raise UsageError(f"setting {f.name!r}: expected {_KIND_NAMES[kind]}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise UsageError(f"setting {f.name!r}: expected a finite number, got {value!r}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"setting {f.name!r}: {value!r} is not one of {', '.join(map(str, choices))}")
    lo, hi, step = (f.metadata.get(k) for k in ("min", "max", "multiple_of"))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UsageError(f"setting {f.name!r}: {value!r} is outside its bounds ({'; '.join(_bounds(f))})")
    if step and value % step:
        raise UsageError(f"setting {f.name!r}: {value!r} is not a multiple of {step}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of every setting."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config saved by `to_dict`; settings unknown to this version are an error."""
    if not isinstance(d, dict):
        raise UsageError(f"expected an object of {cls.__name__} settings, got {type(d).__name__}")
    return resolve(cls, None, d)


def diff_from_defaults(cfg: Any) -> dict[str, Any]:
    """Settings that differ from the class defaults (printed at start-up)."""
    default = to_dict(type(cfg)())
    return {k: v for k, v in to_dict(cfg).items() if default.get(k) != v}


def from_args(cls: type, namespace: argparse.Namespace) -> Any:
    """The config a command line parsed with `add_config_flags` asks for (flags not given keep their defaults)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return resolve(cls, None, {k: v for k, v in vars(namespace).items() if k in known})
