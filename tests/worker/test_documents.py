"""worker.config.documents: pydantic's errors in our one form, `field.path: reason`, first error first."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Strict, StringConstraints, ValidationError, model_validator

from worker.config.documents import (
    NON_BLANK,
    ROOT,
    InvalidDocument,
    field_path,
    first_error,
    refuse,
    type_name,
    unknown_keys,
    validate,
)
from worker.core.model import OwnerMode


class Inner(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Annotated[str, Strict(), StringConstraints(pattern=NON_BLANK)]
    tags: Annotated[list[str] | None, Strict()] = None
    count: Annotated[int | None, Strict()] = None
    flag: Annotated[bool | None, Strict()] = None
    owner: OwnerMode | None = None


class Outer(BaseModel):
    model_config = ConfigDict(extra="allow")

    inner: Inner | None = None
    items: list[Inner] | None = None

    @model_validator(mode="after")
    def _no_twins(self) -> Outer:
        ids = [item.id for item in self.items or ()]
        if len(ids) == 2 and ids[0] == ids[1]:
            raise refuse(f"duplicate id {ids[1]!r}", ("items", 1, "id"))
        return self


def error_of(document: object, root: str = "") -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate(document)
    return first_error(raised.value, root)


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        ({"inner": {}}, "inner.id", "missing"),
        ({"inner": {"id": None}}, "inner.id", "missing"),
        ({"inner": {"id": " \t"}}, "inner.id", "must not be empty"),
        ({"inner": {"id": 3}}, "inner.id", "expected a string, got a number"),
        ({"inner": {"id": "a", "tags": "x"}}, "inner.tags", "expected a list, got a string"),
        ({"inner": {"id": "a", "tags": ["x", None]}}, "inner.tags[1]", "expected a string, got null"),
        ({"inner": {"id": "a", "count": 1.0}}, "inner.count", "expected a whole number, got a number"),
        ({"inner": {"id": "a", "count": True}}, "inner.count", "expected a whole number, got a boolean"),
        ({"inner": {"id": "a", "flag": "yes"}}, "inner.flag", "expected true or false, got a string"),
        (
            {"inner": {"id": "a", "owner": "always"}},
            "inner.owner",
            "unknown value 'always' (expected one of: off, filter, prefer)",
        ),
        ({"inner": {"id": "a", "owner": 2}}, "inner.owner", "expected a string, got a number"),
        ({"inner": []}, "inner", "expected an object, got a list"),
        ({"items": [{"id": "a"}, None]}, "items[1]", "expected an object, got null"),
        ({"items": [{"id": "a"}, {"id": "a"}]}, "items[1].id", "duplicate id 'a'"),
        ([1], ROOT, "expected an object, got a list"),
    ],
)
def test_errors_name_the_field_in_our_words(document: object, path: str, reason: str) -> None:
    assert error_of(document) == (path, reason)


def test_the_first_error_is_the_first_declared_field() -> None:
    """Models declare fields in the order documents were always checked: that error is the one named."""
    assert error_of({"inner": {"flag": 1, "id": 5, "count": "x"}}) == (
        "inner.id",
        "expected a string, got a number",
    )


def test_a_root_names_the_object_itself() -> None:
    assert error_of({"inner": {"id": "a", "count": "2"}}, "policy") == (
        "policy.inner.count",
        "expected a whole number, got a string",
    )
    assert error_of(None, "policy") == ("policy", "expected an object, got null")


def test_unknown_keys_are_listed_with_their_paths() -> None:
    outer = Outer.model_validate(
        {"extra": 1, "inner": {"id": "a", "colour": "red"}, "items": [{"id": "b"}, {"id": "c", "x": None}]}
    )
    assert unknown_keys(outer) == ["extra", "inner.colour", "items[1].x"]
    assert unknown_keys(Outer.model_validate({"inner": {"id": "a"}})) == []


def test_helpers() -> None:
    assert field_path(("crm", "contacts", 0, "phones", 2)) == "crm.contacts[0].phones[2]"
    assert field_path((), "policy") == "policy"
    values: list[object] = [None, True, 1, 1.5, "", [], {}]
    assert [type_name(v) for v in values] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "a list",
        "an object",
    ]


def test_lone_surrogates_are_text_like_any_other() -> None:
    """JSON's "\\ud800" escape: pydantic-core cannot read it, the hand-written readers could."""
    outer = validate(Outer, {"inner": {"id": "a\ud800", "tags": ["\udfff"], "k\udc00": "v\ud801"}})
    assert outer.inner is not None and (outer.inner.id, outer.inner.tags) == ("a\ud800", ["\udfff"])
    assert unknown_keys(outer) == ["inner.k\udc00"] and outer.inner.model_extra == {"k\udc00": "v\ud801"}
    with pytest.raises(InvalidDocument) as raised:
        validate(Outer, {"inner": {"id": "a\ud800", "owner": "o\ud800"}}, "root")
    assert (raised.value.path, raised.value.reason) == (
        "root.inner.owner",
        "unknown value 'o\\ud800' (expected one of: off, filter, prefer)",
    )
    with pytest.raises(InvalidDocument, match=r"^inner\.count: expected a whole number, got a string$"):
        validate(Outer, {"inner": {"id": "\ud800", "count": "1"}})
