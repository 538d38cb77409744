"""Pydantic validation errors in callmatch's one error form: `field.path: reason`.

The scenario, the tenants file and the events are pydantic models; their readers
turn a `ValidationError` into our wording here, so every document names the
offending field the same way (`call.participants[0].email: expected a string, got
a number`). A validator whose reason is ours raises `refuse(...)`; pydantic's own
errors (missing, wrong type, unknown key) are worded by `reason`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

REFUSED = "callmatch_refused"
"""The error type of `refuse`: its context holds our reason and, maybe, a path below the validator's field."""

NON_BLANK = r"[^\s\x1c-\x1f]"
"""The pattern of a required string: one character that `str.strip()` keeps (else "must not be empty")."""

ROOT = "(document)"
"""How an error about the whole document names its place."""

Loc = Sequence[str | int]


def refuse(reason: str, at: Loc = ()) -> PydanticCustomError:
    """An error worded by us; `at` extends its location (a model validator naming one of its fields)."""
    return PydanticCustomError(REFUSED, "{reason}", {"reason": reason, "at": tuple(at)})


def type_name(value: object) -> str:
    """A JSON value's kind as a person says it ("a number", "null")."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def join(path: str, key: str | int) -> str:
    """`crm.contacts` + 0 -> `crm.contacts[0]`; `crm` + `users` -> `crm.users`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def field_path(loc: Loc, root: str = "") -> str:
    """A pydantic location as our dotted path below `root` (`root` alone for the object itself)."""
    path = root
    for key in loc:
        path = join(path, key)
    return path


_TYPE_REASONS: dict[str, str] = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "list_type": "expected a list",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "dict_type": "expected an object",
}


def reason(error: ErrorDetails) -> str:
    """One pydantic error in our words (its message as a last resort).

    A null is "absent" in our documents, so a null refused by a type is "missing"
    (a null list item is not absent: it has the wrong type).
    """
    kind = error["type"]
    value = error["input"]
    if kind == REFUSED:
        return str(error.get("ctx", {})["reason"])
    at_a_key = bool(error["loc"]) and isinstance(
        error["loc"][-1], str
    )  # not a list item: null there is a value
    if kind == "missing" or (value is None and at_a_key and (kind in _TYPE_REASONS or kind in _CHOICES)):
        return "missing"
    if kind in _TYPE_REASONS:
        return f"{_TYPE_REASONS[kind]}, got {type_name(value)}"
    if kind in _CHOICES:
        if not isinstance(value, str):
            return f"expected a string, got {type_name(value)}"
        allowed = ", ".join(re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
        return f"unknown value {value!r} (expected one of: {allowed})"
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == NON_BLANK:
        return "must not be empty"
    return error["msg"]


_CHOICES = ("enum", "literal_error")


def location(error: ErrorDetails) -> tuple[str | int, ...]:
    """Where the error is: pydantic's location, extended by `refuse(..., at=...)`."""
    extra: tuple[str | int, ...] = (
        tuple(error.get("ctx", {}).get("at", ())) if error["type"] == REFUSED else ()
    )
    return tuple(error["loc"]) + extra


def first_error(exc: ValidationError, root: str = "") -> tuple[str, str]:
    """(path, reason) of the first error, in the order the model declares its fields.

    Models declare fields in the order the documents were always checked, so the
    first error is the one the hand-written readers reported. An error about the
    object itself is placed at `root`, or at `(document)` when there is none.
    """
    error = exc.errors(include_url=False)[0]
    return field_path(location(error), root) or ROOT, reason(error)


def unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Paths of the keys a lenient model (extra="allow") kept but does not know, its own first."""
    found: list[str] = []
    _unknown(model, path, found)
    return found


def _unknown(model: BaseModel, path: str, found: list[str]) -> None:
    extra = model.__pydantic_extra__
    if extra:
        found += [join(path, key) for key in extra]
    for name in _nested(type(model)):
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _unknown(value, join(path, name), found)
        elif value:  # a list of models
            at = join(path, name)
            for index, item in enumerate(value):
                _unknown(item, f"{at}[{index}]", found)


@cache
def _nested(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model that may hold models (the only ones with keys of their own)."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if any(isinstance(t, type) and issubclass(t, BaseModel) for t in _types(info.annotation))
    )


def _types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in get_args(annotation):
        yield from _types(arg)
