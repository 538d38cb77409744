"""Provider payloads as pydantic models: the field types every webhook and API body is read with.

Each provider declares its bodies (`adapters/providers/<p>/payloads.py`) with
these types and reads them with `parse`, which turns the first validation error
into a `PayloadError` naming the body's field (`data.started_at: not a time`)
through the documents' one error formatter. Bodies are lenient (unknown keys are
ignored: vendors add fields), their strings strict: every text goes through
`check_text` (no lone surrogate, no control character, ids of at most
`MAX_ID_LENGTH`), and reasons name fields, never values.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from worker.config.documents import ROOT, InvalidDocument, refuse, type_name, validate
from worker.ingest.webhook import MAX_ID_LENGTH, PayloadError, parse_iso_reason, text_problem

LATEST_TIME = 253402300800
"""Seconds since the epoch of year 10000: later numbers are no time a call can have."""


class Payload(BaseModel):
    """A provider's JSON object: unknown keys ignored, fields read once, never changed."""

    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: object, root: str = "") -> M:
    """`body` read as `model`, or a PayloadError naming the first offending field below `root`.

    The body itself (not an object, say) is `(body)` when there is no `root`.
    """
    try:
        return validate(model, body, root)
    except InvalidDocument as exc:
        raise PayloadError(exc.reason, "(body)" if exc.path == ROOT else exc.path) from None


def _checked(value: str, max_length: int | None = None) -> str:
    problem = text_problem(value, max_length)
    if problem is not None:
        raise refuse(problem)
    return value


def _text(value: object, max_length: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse(f"expected a string, got {type_name(value)}")
    return _checked(value, max_length)


def _opt_text(value: object) -> str | None:
    return _text(value)


def _opt_id_text(value: object) -> str | None:
    return _text(value, MAX_ID_LENGTH)


def _required(value: object, max_length: int | None = None) -> str:
    text = _text(value, max_length)
    if text is None or not text.strip():
        raise refuse("missing")
    return text


def _required_text(value: object) -> str:
    return _required(value)


def _required_id_text(value: object) -> str:
    return _required(value, MAX_ID_LENGTH)


def _ident(value: object) -> str:
    """An id that providers send as a number or a string (stripped), at most `MAX_ID_LENGTH`."""
    if isinstance(value, bool) or value is None:
        raise refuse("missing" if value is None else "expected an id")
    if isinstance(value, int):
        return _checked(str(value), MAX_ID_LENGTH)
    if isinstance(value, str) and value.strip():
        return _checked(value.strip(), MAX_ID_LENGTH)
    raise refuse(f"expected an id, got {type_name(value)}")


def _opt_ident(value: object) -> str | None:
    return None if value is None else _ident(value)


def _iso_time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse(f"expected a date-time, got {type_name(value)}")
    text = _checked(value).strip()
    parsed = parse_iso_reason(text)
    if isinstance(parsed, str):
        raise refuse(parsed)
    return parsed


def _unix_time(value: object) -> dt.datetime | None:
    """Seconds since the epoch (int, float or digits), as telephony providers send times; else ISO-8601."""
    if isinstance(value, str):
        # str.strip takes \x1c-\x1f as spaces and str.isdigit takes "²" as a digit; float() takes neither.
        text = _checked(value).strip()
        digits = text.replace(".", "", 1)
        if digits.isascii() and digits.isdigit():
            value = float(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _iso_time(value)
    if not 0 <= value < LATEST_TIME:
        raise refuse("not a time")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (ValueError, OverflowError, OSError):  # rounds up into year 10000
        raise refuse("not a time") from None


def _flag(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise refuse(f"expected true or false, got {type_name(value)}")


def _present(value: object) -> object:
    """A required object or time: null is as missing as an absent key."""
    if value is None:
        raise refuse("missing")
    return value


def _empty(value: object) -> object:
    """An absent or null list is an empty one."""
    return [] if value is None else value


Text = Annotated[str | None, BeforeValidator(_opt_text)]
"""An optional string (storable text)."""
IdText = Annotated[str | None, BeforeValidator(_opt_id_text)]
"""An optional string id, at most `MAX_ID_LENGTH` characters."""
RequiredText = Annotated[str, BeforeValidator(_required_text)]
"""A string that must be there and not blank."""
RequiredIdText = Annotated[str, BeforeValidator(_required_id_text)]
"""A string id that must be there, at most `MAX_ID_LENGTH` characters."""
Ident = Annotated[str, BeforeValidator(_ident)]
"""An id sent as a number or a string; required."""
OptIdent = Annotated[str | None, BeforeValidator(_opt_ident)]
"""An id sent as a number or a string; optional."""
UnixTime = Annotated[dt.datetime | None, BeforeValidator(_unix_time)]
"""An optional time in seconds since the epoch (or ISO-8601 text), in UTC."""
RequiredUnixTime = Annotated[dt.datetime, BeforeValidator(_unix_time), BeforeValidator(_present)]
"""A time in seconds since the epoch (or ISO-8601 text) that must be there."""
IsoTime = Annotated[dt.datetime | None, BeforeValidator(_iso_time)]
"""An optional ISO-8601 date-time, in UTC (no offset means UTC)."""
RequiredIsoTime = Annotated[dt.datetime, BeforeValidator(_iso_time), BeforeValidator(_present)]
"""An ISO-8601 date-time that must be there."""
Flag = Annotated[bool | None, BeforeValidator(_flag)]
"""An optional `true` or `false`."""
Items = BeforeValidator(_empty)
"""`Annotated[tuple[X, ...], Items] = ()`: a list that may be absent or null (read as empty)."""
Present = BeforeValidator(_present)
"""`Annotated[X, Present]`: an object that must be there (null is missing)."""
