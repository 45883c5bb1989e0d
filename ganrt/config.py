"""Config dataclasses are the single source of command-line flags, presets and saved configs.

A field's `metadata["help"]` is its --help text; `metadata["choices"]` its choices. Flags
whose text is not one value of the field's type set `metadata["parse"]` (text -> value,
raising ValueError or argparse.ArgumentTypeError), `metadata["metavar"]` and
`metadata["show"]` (value -> how --help writes the default); `metadata["flag"]` names a flag
other than the field's name, `metadata["positional"]` makes it an optional positional
argument, and a help text that says "default:" itself gets none appended. A class may set
`presets`, a ClassVar of named overrides (train's variant configs do). train, export
and infer build their flags here; a config is saved beside what it made (config.json, a
generator's metadata, a manifest) and read back with `from_dict`.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import field
from typing import Any

from ganrt.errors import UsageError


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A config field with its help text (and optional `choices`)."""
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
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = meta.get("help", "")
        if "default:" not in help_text:
            in_presets = "".join(f"; {name}: {vals[f.name]}" for name, vals in getattr(cls, "presets", {}).items()
                                 if f.name in vals)
            help_text += f" (default: {meta.get('show', str)(default)}{in_presets})"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        if meta.get("positional"):
            parser.add_argument(f.name, nargs="?", type=meta.get("parse", kind), metavar=meta.get("metavar"), **kw)
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kw["dest"] = f.name
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif "parse" in meta:
            parser.add_argument(flag, type=meta["parse"], metavar=meta.get("metavar"), **kw)
        elif typing.get_origin(kind) is tuple:
            elem = typing.get_args(kind)[0]
            parser.add_argument(flag, type=elem, nargs="+", metavar=meta.get("metavar", "X"), **kw)
        else:
            metavar = meta.get("metavar", None if "choices" in meta else f.name.upper())
            parser.add_argument(flag, type=kind, metavar=metavar, **kw)


def resolve(cls: type, preset: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Defaults, then the preset, then explicit overrides."""
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
        if f.name in values and typing.get_origin(_field_type(cls, f)) is tuple:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def from_args(cls: type, namespace: argparse.Namespace) -> Any:
    """The config a command line parsed with `add_config_flags` asks for (flags not given keep their defaults)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return resolve(cls, None, {k: v for k, v in vars(namespace).items() if k in known})


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of every setting."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config saved by `to_dict`; settings unknown to this version are an error."""
    return resolve(cls, None, d)


def diff_from_defaults(cfg: Any) -> dict[str, Any]:
    """Settings that differ from the class defaults (printed at start-up)."""
    default = to_dict(type(cfg)())
    return {k: v for k, v in to_dict(cfg).items() if default.get(k) != v}
