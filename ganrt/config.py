"""Config dataclasses are the single source of command-line flags, presets and saved configs.

A field's metadata holds its flag: `help` (the --help text), `choices`, `min` (the smallest
value its flag accepts), `metavar` (the name --help shows for its value), `default_text` (what
--help says the default is, for defaults such as None that mean something the value does not
show), `parse` (text -> value, for flags whose text is not one value of the field's type,
raising ValueError or argparse.ArgumentTypeError), `flag` (a flag name other than the field's)
and `positional` (an optional positional argument instead of a flag). A class may set
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
    """A config field with its help text (and optional `choices`, `min`, `metavar`, `default_text`)."""
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


def _at_least(kind: type, minimum: float) -> Any:
    """An argparse type: `kind(text)`, at least `minimum`, else a usage error saying what was expected."""
    what = "a positive integer" if kind is int and minimum == 1 else f"a number >= {minimum:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One --flag per config field, with its default and help (defaults left unset)."""
    for f in dataclasses.fields(cls):
        kind, _ = _parse_optional(_field_type(cls, f))
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        in_presets = "".join(f"; {name}: {vals[f.name]}" for name, vals in getattr(cls, "presets", {}).items()
                             if f.name in vals)
        help_text = f"{meta.get('help', '')} (default: {meta.get('default_text', default)}{in_presets})"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        if kind is bool:
            parser.add_argument(meta.get("flag", _flag(f)), action=argparse.BooleanOptionalAction, dest=f.name, **kw)
            continue
        tuple_of = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple and "parse" not in meta else None
        parse = meta.get("parse", tuple_of or kind)
        if "min" in meta:
            parse = _at_least(parse, meta["min"])
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
        kind, _ = _parse_optional(_field_type(cls, f))
        if values.get(f.name) is not None and typing.get_origin(kind) is tuple:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


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


def from_args(cls: type, namespace: argparse.Namespace) -> Any:
    """The config a command line parsed with `add_config_flags` asks for (flags not given keep their defaults)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return resolve(cls, None, {k: v for k, v in vars(namespace).items() if k in known})
