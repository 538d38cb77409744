"""A real subset of SOQL and SOSL, parsed into trees, so the emulator answers queries it reads.

Supported SOQL: field paths (with parent relationships such as `Contact.Email` and
polymorphic `What.Type`), child subqueries `(SELECT ... FROM OpportunityContactRoles)`,
WHERE with AND / OR / NOT / parentheses, = != <> < <= > >= LIKE IN NOT IN, semi-joins
`Id IN (SELECT ... )`, ORDER BY with ASC / DESC / NULLS FIRST|LAST, LIMIT and OFFSET.
Supported SOSL: `FIND {term} IN ALL|PHONE|EMAIL|NAME FIELDS RETURNING Obj(fields), ...`.
Errors carry the Salesforce error code (MALFORMED_QUERY, MALFORMED_SEARCH).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field


class SoqlError(ValueError):
    """A query Salesforce would refuse; `code` is its errorCode."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY"):
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)

LIKE_ESCAPE = "\x00"
"""Marks `\\_` and `\\%` of a literal: a plain `_` or `%` to LIKE, the character itself elsewhere."""

_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "_": LIKE_ESCAPE + "_",
    "%": LIKE_ESCAPE + "%",
}


def unescape_string(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            if i + 1 >= len(body):
                raise SoqlError("unterminated escape sequence in string literal")
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise SoqlError(f"Invalid string literal '{body}'. Illegal character sequence '\\{nxt}'")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    value: object = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError(f"unexpected token at position {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        raw = match.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(Token("string", raw, unescape_string(raw[1:-1])))
        elif kind == "datetime":
            tokens.append(Token("datetime", raw, dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))))
        elif kind == "date":
            tokens.append(Token("date", raw, dt.date.fromisoformat(raw)))
        elif kind == "number":
            tokens.append(Token("number", raw, float(raw) if "." in raw else int(raw)))
        else:
            tokens.append(Token(kind, raw))
    return tokens


@dataclass(frozen=True)
class Literal:
    value: object
    kind: str  # string, number, boolean, null, date, datetime


@dataclass(frozen=True)
class Comparison:
    path: str
    op: str  # = != < <= > >= LIKE
    literal: Literal


@dataclass(frozen=True)
class InList:
    path: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class SemiJoin:
    path: str
    query: Query
    negated: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Comparison | InList | SemiJoin | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    path: str
    descending: bool = False
    nulls_last: bool | None = None


@dataclass(frozen=True)
class Query:
    sobject: str
    fields: tuple[str, ...]
    children: tuple[Query, ...] = ()
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


@dataclass
class _Parser:
    tokens: list[Token]
    pos: int = 0
    semi_joins: list[SemiJoin] = field(default_factory=list)

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """True (and consumed) when the next tokens are these keywords."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token.kind != "ident" or token.text.upper() != word:
                return False
        self.pos += len(words)
        return True

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            token = self.peek()
            raise SoqlError(f"expected {word} but found {token.text if token else 'end of query'!r}")

    def expect(self, text: str) -> None:
        token = self.peek()
        if token is None or token.text != text:
            raise SoqlError(f"expected {text!r} but found {token.text if token else 'end of query'!r}")
        self.pos += 1

    def ident(self) -> str:
        token = self.peek()
        if token is None or token.kind != "ident":
            raise SoqlError(f"expected a field or object name, found {token.text if token else 'end'!r}")
        self.pos += 1
        return token.text

    def query(self, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        children: list[Query] = []
        while True:
            token = self.peek()
            if token is not None and token.text == "(":
                if nested:
                    raise SoqlError("Nesting of semi join sub-selects is not supported")
                self.pos += 1
                children.append(self.query(nested=True))
                self.expect(")")
            else:
                fields.append(self.ident())
            token = self.peek()
            if token is not None and token.text == ",":
                self.pos += 1
                continue
            break
        self.expect_keyword("FROM")
        sobject = self.ident()
        where = None
        if self.keyword("WHERE"):
            where = self.condition(nested)
        order_by: list[OrderItem] = []
        if self.keyword("ORDER", "BY"):
            while True:
                path = self.ident()
                descending = False
                if self.keyword("DESC"):
                    descending = True
                else:
                    self.keyword("ASC")
                nulls_last: bool | None = None
                if self.keyword("NULLS", "LAST"):
                    nulls_last = True
                elif self.keyword("NULLS", "FIRST"):
                    nulls_last = False
                order_by.append(OrderItem(path, descending, nulls_last))
                token = self.peek()
                if token is not None and token.text == ",":
                    self.pos += 1
                    continue
                break
        limit = offset = None
        if self.keyword("LIMIT"):
            limit = self.integer()
        if self.keyword("OFFSET"):
            offset = self.integer()
        return Query(sobject, tuple(fields), tuple(children), where, tuple(order_by), limit, offset)

    def integer(self) -> int:
        token = self.peek()
        if token is None or token.kind != "number" or not isinstance(token.value, int):
            raise SoqlError("expected an integer")
        self.pos += 1
        return token.value

    def condition(self, nested: bool) -> Condition:
        parts = [self.conjunction(nested)]
        while self.keyword("OR"):
            parts.append(self.conjunction(nested))
        if len(parts) == 1:
            return parts[0]
        if any(_has_semi_join(part) for part in parts):
            raise SoqlError("Semi join sub-selects are not allowed with the 'OR' operator")
        return BoolOp("OR", tuple(parts))

    def conjunction(self, nested: bool) -> Condition:
        parts = [self.negation(nested)]
        while self.keyword("AND"):
            parts.append(self.negation(nested))
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def negation(self, nested: bool) -> Condition:
        if self.keyword("NOT"):
            return Not(self.negation(nested))
        token = self.peek()
        if token is not None and token.text == "(":
            self.pos += 1
            inner = self.condition(nested)
            self.expect(")")
            return inner
        return self.predicate(nested)

    def predicate(self, nested: bool) -> Condition:
        path = self.ident()
        negated = self.keyword("NOT", "IN")
        if negated or self.keyword("IN"):
            self.expect("(")
            token = self.peek()
            if token is not None and token.kind == "ident" and token.text.upper() == "SELECT":
                if nested:
                    raise SoqlError("Nesting of semi join sub-selects is not supported")
                sub = self.query(nested=True)
                self.expect(")")
                if len(sub.fields) != 1 or sub.children:
                    raise SoqlError(
                        "The selected field in a semi join sub-select must be a single Id or reference"
                    )
                semi = SemiJoin(path, sub, negated)
                self.semi_joins.append(semi)
                if len(self.semi_joins) > 2:
                    raise SoqlError("Maximum of 2 semi join sub-selects are allowed")
                return semi
            values = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.pos += 1
                values.append(self.literal())
            self.expect(")")
            return InList(path, tuple(values), negated)
        if self.keyword("LIKE"):
            return Comparison(path, "LIKE", self.literal())
        token = self.peek()
        if token is None or token.kind != "op":
            raise SoqlError(f"unexpected token: {token.text if token else 'end of query'!r}")
        self.pos += 1
        op = "!=" if token.text == "<>" else token.text
        return Comparison(path, op, self.literal())

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            raise SoqlError("expected a value, found end of query")
        self.pos += 1
        if token.kind in ("string", "date", "datetime", "number"):
            return Literal(token.value, token.kind)
        if token.kind == "ident" and token.text.lower() in ("true", "false"):
            return Literal(token.text.lower() == "true", "boolean")
        if token.kind == "ident" and token.text.lower() == "null":
            return Literal(None, "null")
        raise SoqlError(f"unexpected token: {token.text!r}")


def _has_semi_join(condition: Condition) -> bool:
    if isinstance(condition, SemiJoin):
        return True
    if isinstance(condition, BoolOp):
        return any(_has_semi_join(part) for part in condition.parts)
    if isinstance(condition, Not):
        return _has_semi_join(condition.part)
    return False


def parse_soql(text: str) -> Query:
    parser = _Parser(tokenize(text))
    query = parser.query()
    if parser.peek() is not None:
        raise SoqlError(f"unexpected token: {parser.peek().text!r}")  # type: ignore[union-attr]
    return query


@dataclass(frozen=True)
class SoslReturning:
    sobject: str
    fields: tuple[str, ...]
    where: Condition | None = None
    limit: int | None = None


@dataclass(frozen=True)
class SoslQuery:
    term: str
    scope: str  # ALL, PHONE, EMAIL, NAME
    returning: tuple[SoslReturning, ...]
    limit: int | None = None


_SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")


def _sosl_term(raw: str) -> str:
    """The search term with its backslash escapes resolved; an unescaped reserved character is an error."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\":
            if i + 1 >= len(raw):
                raise SoqlError("dangling backslash in search term", "MALFORMED_SEARCH")
            out.append(raw[i + 1])
            i += 2
            continue
        if char in "{}":
            raise SoqlError(f"unescaped {char!r} in search term", "MALFORMED_SEARCH")
        out.append(char)
        i += 1
    return "".join(out)


def parse_sosl(text: str) -> SoslQuery:
    match = re.match(r"\s*FIND\s*\{((?:\\.|[^\\}])*)\}\s*(.*)$", text, re.IGNORECASE | re.DOTALL)
    if match is None:
        raise SoqlError("expected FIND {term}", "MALFORMED_SEARCH")
    term = _sosl_term(match.group(1))
    if len(term.replace("*", "").strip()) < 2:
        raise SoqlError("search term must be longer than one character", "MALFORMED_SEARCH")
    rest = match.group(2)
    try:
        parser = _Parser(tokenize(rest))
    except SoqlError as error:
        raise SoqlError(str(error), "MALFORMED_SEARCH") from error
    scope = "ALL"
    if parser.keyword("IN"):
        scope = parser.ident().upper()
        if scope not in ("ALL", "PHONE", "EMAIL", "NAME"):
            raise SoqlError(f"unknown search group {scope}", "MALFORMED_SEARCH")
        parser.expect_keyword("FIELDS")
    returning: list[SoslReturning] = []
    if parser.keyword("RETURNING"):
        while True:
            sobject = parser.ident()
            fields: list[str] = ["Id"]
            where = None
            limit = None
            token = parser.peek()
            if token is not None and token.text == "(":
                parser.pos += 1
                fields = [parser.ident()]
                while parser.peek() is not None and parser.peek().text == ",":  # type: ignore[union-attr]
                    parser.pos += 1
                    fields.append(parser.ident())
                if parser.keyword("WHERE"):
                    where = parser.condition(nested=True)
                if parser.keyword("LIMIT"):
                    limit = parser.integer()
                parser.expect(")")
            returning.append(SoslReturning(sobject, tuple(fields), where, limit))
            token = parser.peek()
            if token is not None and token.text == ",":
                parser.pos += 1
                continue
            break
    limit = parser.integer() if parser.keyword("LIMIT") else None
    if parser.peek() is not None:
        raise SoqlError(f"unexpected token: {parser.peek().text!r}", "MALFORMED_SEARCH")  # type: ignore[union-attr]
    return SoslQuery(term, scope, tuple(returning), limit)
