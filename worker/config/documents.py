"""Pydantic validation errors in callmatch's one error form: `field.path: reason`.

The scenario, the tenants file and the events are pydantic models; their readers
turn a `ValidationError` into our wording here, so every document names the
offending field the same way (`call.participants[0].email: expected a string, got
a number`). A validator whose reason is ours raises `refuse(...)`; pydantic's own
errors (missing, wrong type, unknown key) are worded by `reason`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from functools import cache
from typing import Any, TypeVar, get_args

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
    "tuple_type": "expected a list",
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


class InvalidDocument(ValueError):
    """A document its model refuses: the first error as `path` and `reason` (str: `path: reason`)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], document: object, root: str = "") -> M:
    """`model.model_validate(document)`, or InvalidDocument naming the first error below `root`.

    JSON may carry lone surrogates (`"\\ud800"`), which pydantic-core cannot read as
    text; the hand-written readers took them as any other character. Such a document
    is validated with them stood in for by private-use characters, then given back.
    """
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        if not any(error["type"] == "string_unicode" for error in exc.errors()) or _STAND_INS.search(
            repr(document)
        ):
            raise InvalidDocument(*first_error(exc, root)) from None
    try:
        validated = model.model_validate(_swap(document, _hide))
    except ValidationError as exc:
        path, reason = first_error(exc, root)
        raise InvalidDocument(_shown(path), _shown(reason)) from None
    _restore(validated)
    return validated


_SURROGATES = re.compile("[\ud800-\udfff]")
_STAND_INS = re.compile("[\U0010f000-\U0010f7ff]")
_OFFSET = 0x10F000 - 0xD800


def _hide(text: str) -> str:
    return _SURROGATES.sub(lambda m: chr(ord(m.group()) + _OFFSET), text)


def _show(text: str) -> str:
    return _STAND_INS.sub(lambda m: chr(ord(m.group()) - _OFFSET), text)


def _shown(text: str) -> str:
    """An error's text as for the document itself: stand-ins back, also where a value was repr()'d."""
    return _ESCAPED.sub(lambda m: f"\\u{int(m.group(1), 16) - _OFFSET:04x}", _show(text))


_ESCAPED = re.compile(r"\\U(0010f[0-7][0-9a-f]{2})")


def _swap(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {_swap(k, change): _swap(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(item, change) for item in value]
    return value


def _restore(value: Any) -> Any:
    """A validated model's text as it was in the document (in place: models may be frozen)."""
    if isinstance(value, BaseModel):
        for name, item in value.__dict__.items():
            value.__dict__[name] = _restore(item)
        if value.__pydantic_extra__:
            value.__pydantic_extra__ = _swap(value.__pydantic_extra__, _show)
        return value
    if isinstance(value, list):
        return [_restore(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_restore(item) for item in value)
    if isinstance(value, dict):
        return {_restore(k): _restore(v) for k, v in value.items()}
    if isinstance(value, str) and not isinstance(value, Enum):
        return _show(value)
    return value


def unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Paths of the keys a lenient model (extra="allow") kept but does not know, its own first."""
    found: list[str] = []
    _unknown(model, path, found)
    return found


def _unknown(model: BaseModel, path: str, found: list[str]) -> None:
    extra = model.__pydantic_extra__
    if extra:
        found += [join(path, key) for key in extra]
    values = model.__dict__
    for name in _nested(type(model)):
        value = values[name]
        if isinstance(value, BaseModel):
            _unknown(value, join(path, name), found)
        elif value:  # a list of models: most have no models inside, so only their own keys are looked at
            at = join(path, name)
            first: BaseModel = value[0]
            deep = bool(_nested(type(first)))
            for index, item in enumerate(value):
                if deep:
                    _unknown(item, f"{at}[{index}]", found)
                elif item.__pydantic_extra__:
                    found += [join(f"{at}[{index}]", key) for key in item.__pydantic_extra__]


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
