"""The base of params.yaml's section models (synthtext/ops/config.py): a frozen pydantic model that
refuses unknown keys and checks types strictly, and the translation of pydantic's errors into the one
line a user reads (a SynthTextError naming the key), never a validation trace."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from synthtext.ops.errors import SynthTextError

FILE = "params.yaml"

_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
_BOUNDS = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than",
           "less_than_equal": "at most"}
_BOUND_KEYS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def listed(choices: tuple) -> str:
    return ", ".join("null" if c is None else str(c) for c in choices)


def unknown(what: str, name: str, valid: list[str]) -> SynthTextError:
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(valid)}"
    return SynthTextError(f"{FILE}: unknown {what} {name} ({hint})")


def _choices(kind: Any) -> tuple | None:
    """The values a ``Literal[...]`` (or ``Literal[...] | None``) field allows; None: not a choice."""
    args = typing.get_args(kind) if typing.get_origin(kind) in (types.UnionType, typing.Union) else (kind,)
    literal = [a for a in args if typing.get_origin(a) is Literal]
    if not literal:
        return None
    return (*typing.get_args(literal[0]), *((None,) if type(None) in args else ()))


def _wanted(kind: Any) -> str:
    """What a field of type ``kind`` takes, in words (bool, int, float, str, ``X | None``, ``tuple[X, ...]``)."""
    optional = typing.get_origin(kind) in (types.UnionType, typing.Union)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    wanted = f"a list of {_KINDS[typing.get_args(kind)[0]]}" if typing.get_origin(kind) is tuple else _KINDS[kind]
    return wanted + (" or null" if optional else "")


def _got(value: Any) -> str:
    return f"the text {value!r}" if isinstance(value, str) else f"{value!r}"


class _Invalid(SynthTextError):
    """A section built with a mistake; ``from_dict`` (which pydantic validates through ``__init__``) words it
    again with the section's name in params.yaml."""

    def __init__(self, message: str, error: ValidationError | None = None):  # one argument: picklable
        super().__init__(message)
        self.error = error


class Section(BaseModel):
    """What every section's model shares: frozen, unknown keys refused, types checked strictly (YAML's
    ``"32"`` is not 32), choices as ``Literal`` and ranges as bounds; any mistake is one SynthTextError."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    SECTION: ClassVar[str]
    SET_ELSEWHERE: ClassVar[dict[str, str]] = {}
    """Fields that params.yaml sets in another section (field -> where, in words): not keys of this section."""
    CHOICES: ClassVar[dict[str, tuple]] = {}
    """Each field with a fixed set of values -> those values (from its ``Literal`` type)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        hints = typing.get_type_hints(cls)
        cls.CHOICES = {name: c for name in cls.model_fields if (c := _choices(hints[name])) is not None}

    def __init__(self, **values: Any) -> None:
        """A section built in code: the same checks, the same one-line message (without the file's name)."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            message = explain(exc, type(self), self.SECTION, list(type(self).model_fields))
            raise _Invalid(str(message), exc) from None

    @classmethod
    def file_keys(cls) -> list[str]:
        """The keys this section may have in params.yaml."""
        return [name for name in cls.model_fields if name not in cls.SET_ELSEWHERE]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default (None where a field has none)."""
        return {name: f.get_default(call_default_factory=True) for name, f in cls.model_fields.items()}

    def as_dict(self) -> dict[str, Any]:
        """The section as plain values, in field order: what crosses Prefect and torchrun (``from_dict`` on
        the way back in) and what cache keys and MLflow params are made of."""
        return self.model_dump()

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, checked like a new section (``dataclasses.replace`` for a model)."""
        return type(self)(**{**self.as_dict(), **changes})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], section: str | None = None, *, in_file: bool = False) -> Self:
        """A section from a mapping (params.yaml's, or ``as_dict`` of one that crossed a process or Prefect);
        any mistake stops with a SynthTextError that names the key. ``in_file``: the keys params.yaml sets
        elsewhere (``SET_ELSEWHERE``) are refused too, and the message starts with the file's name."""
        section = section or cls.SECTION
        valid = cls.file_keys() if in_file else list(cls.model_fields)
        if in_file:
            for key in values:
                if key in cls.SET_ELSEWHERE:
                    raise SynthTextError(f"{FILE}: {section}.{key} is not a key of {section}: "
                                         f"{cls.SET_ELSEWHERE[key]}")
        try:
            return cls.model_validate(dict(values))
        except (ValidationError, _Invalid) as exc:
            error = exc.error if isinstance(exc, _Invalid) else exc
            if error is None:
                raise
            message = explain(error, cls, section, valid)
            if isinstance(message, SynthTextError):
                raise message from None
            raise SynthTextError(f"{FILE}: {message}") from None


def explain(exc: ValidationError, cls: type[Section], section: str, valid: list[str]) -> Any:
    """pydantic's first error as one line naming ``section.key`` (an unknown key: a SynthTextError that
    already names the file)."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    key = loc[0] if loc else ""
    where = f"{section}.{key}"
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        return unknown("key", where, valid)
    if key not in cls.model_fields:  # a model validator's own message, which starts with the key
        return f"{section}.{error.get('ctx', {}).get('error', error['msg'])}"
    if kind == "literal_error":
        return f"{where} must be one of {listed(cls.CHOICES[key])}, not {value!r}"
    if kind in _BOUNDS:
        bound = error["ctx"][_BOUND_KEYS[kind]]
        return f"{where} must be {_BOUNDS[kind]} {bound}, not {value!r}"
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    hint = ""
    hints = typing.get_type_hints(cls)
    if _wanted(hints[key]).startswith("a number") and isinstance(value, str) and "e" in value.lower():
        try:
            float(value)
            hint = " (YAML reads an exponent without a dot as text: write 1.0e-4, not 1e-4)"
        except ValueError:
            pass
    if len(loc) > 1:  # an item of a list: name the list as it was given
        return f"{where} must be {_wanted(hints[key])}, not a list holding {_got(value)}"
    return f"{where} must be {_wanted(hints[key])}, not {_got(value)}{hint}"
