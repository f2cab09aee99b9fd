"""FHIRPath N1 parser (fhirpath.html#grammar): tokens to a small AST, by precedence climbing.

Operator precedence is the grammar's (fhirpath.html#operator-precedence), highest first: `.` and `[]`, unary
`+`/`-`, `* / div mod`, `+ - &`, `is as`, `|`, `< > <= >=`, `= ~ != !~`, `in contains`, `and`, `or xor`,
`implies`. All binary operators associate to the left.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from .errors import FhirPathError
from .lexer import Token, tokenize
from .quantity import CALENDAR_UNITS, Quantity
from .temporal import parse_literal


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal; `value` None stands for `{}`, the empty collection."""

    value: object
    pos: int


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier that starts a path: an element of the focus, or the focus's own type name."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Member:
    target: Node
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; `target` None when the function starts a path (its input is then the focus)."""

    target: Node | None
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Indexer:
    target: Node
    index: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Special:
    """`$this`, `$index` or `$total` (fhirpath.html#functions)."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Variable:
    """An environment variable `%name` (fhirpath.html#environment-variables)."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class TypeName:
    """A type specifier: `Quantity`, `FHIR.Patient`, `System.Boolean`."""

    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class TypeOperation:
    """The `is` and `as` operators (fhirpath.html#types)."""

    op: str
    operand: Node
    type: TypeName
    pos: int


Node = Literal | Identifier | Member | Call | Indexer | Special | Variable | Unary | Binary | TypeOperation

SUBEXPRESSION_FIELDS = frozenset({"target", "index", "operand", "left", "right", "args"})


def subexpressions(node: Node) -> list[Node]:
    """The direct subexpressions of a node."""
    out: list[Node] = []
    for field in fields(node):  # type: ignore[arg-type]
        if field.name in SUBEXPRESSION_FIELDS:
            value = getattr(node, field.name)
            if isinstance(value, tuple):
                out.extend(value)
            elif value is not None:
                out.append(value)
    return out


def reads(node: Node, specials: tuple[str, ...]) -> bool:
    """Whether a node reads any of `$this`, `$index`, `$total` named, outside or inside its subexpressions."""
    if isinstance(node, Special):
        return node.name in specials
    return any(reads(child, specials) for child in subexpressions(node))


_BINARY = {
    "implies": 1, "or": 2, "xor": 2, "and": 3, "in": 4, "contains": 4,
    "=": 5, "~": 5, "!=": 5, "!~": 5, "<": 6, ">": 6, "<=": 6, ">=": 6, "|": 7, "is": 8, "as": 8,
    "+": 9, "-": 9, "&": 9, "*": 10, "/": 10, "div": 10, "mod": 10,
}
# Word operators are names too where an operator cannot stand: `.is()`, `.contains()`, and FHIR's `text.div`.
_WORD_OPERATORS = frozenset(op for op in _BINARY if op.isalpha())


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, expected: str) -> FhirPathError:
        token = self.token
        found = "end of expression" if token.kind == "end" else repr(token.text)
        return FhirPathError(f"syntax error at {token.pos}: expected {expected}, found {found}")

    def expect(self, text: str) -> Token:
        if self.token.kind != "op" or self.token.text != text:
            raise self.error(repr(text))
        return self.advance()

    def at(self, text: str) -> bool:
        return self.token.kind == "op" and self.token.text == text

    def binary_operator(self) -> str | None:
        token = self.token
        if token.kind == "op" and token.text in _BINARY:
            return token.text
        if token.kind == "identifier" and token.text in _WORD_OPERATORS:
            return token.text
        return None

    def expression(self, min_power: int = 0) -> Node:
        left = self.unary()
        while (op := self.binary_operator()) is not None and _BINARY[op] > min_power:
            pos = self.advance().pos
            if op in ("is", "as"):
                left = TypeOperation(op, left, self.type_name(), pos)
            else:
                left = Binary(op, left, self.expression(_BINARY[op]), pos)
        return left

    def unary(self) -> Node:
        if self.at("+") or self.at("-"):
            token = self.advance()
            return Unary(token.text, self.unary(), token.pos)
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("."):
                self.advance()
                token = self.token
                name = self.identifier()
                if self.at("("):
                    node = Call(node, name, self.arguments(), token.pos)
                else:
                    node = Member(node, name, token.pos)
            elif self.at("["):
                pos = self.advance().pos
                index = self.expression()
                self.expect("]")
                node = Indexer(node, index, pos)
            else:
                return node

    def identifier(self) -> str:
        token = self.token
        if token.kind in ("identifier", "delimited"):
            self.advance()
            return token.text
        raise self.error("an identifier")

    def arguments(self) -> tuple[Node, ...]:
        self.expect("(")
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.expression())
            while self.at(","):
                self.advance()
                args.append(self.expression())
        self.expect(")")
        return tuple(args)

    def type_name(self) -> TypeName:
        first = self.identifier()
        if first in ("FHIR", "System") and self.at("."):
            self.advance()
            return TypeName(first, self.identifier())
        return TypeName(None, first)

    def term(self) -> Node:
        token = self.token
        kind = token.kind
        if kind == "number":
            self.advance()
            number: int | Decimal = Decimal(token.text) if "." in token.text else int(token.text)
            unit = self.token
            if unit.kind == "string" or (unit.kind == "identifier" and unit.text in CALENDAR_UNITS):
                self.advance()
                return Literal(Quantity(Decimal(number), unit.text, unit.kind == "identifier"), token.pos)
            return Literal(number, token.pos)
        if kind == "string":
            self.advance()
            return Literal(token.text, token.pos)
        if kind in ("date", "datetime", "time"):
            self.advance()
            return Literal(parse_literal(kind, token.text[1:]), token.pos)
        if kind == "special":
            self.advance()
            return Special(token.text, token.pos)
        if kind == "identifier" and token.text in ("true", "false"):
            self.advance()
            return Literal(token.text == "true", token.pos)
        if kind in ("identifier", "delimited"):
            name = self.identifier()
            if self.at("("):
                return Call(None, name, self.arguments(), token.pos)
            return Identifier(name, token.pos)
        if self.at("%"):
            self.advance()
            name_token = self.token
            if name_token.kind not in ("identifier", "delimited", "string"):
                raise self.error("a variable name")
            self.advance()
            return Variable(name_token.text, token.pos)
        if self.at("("):
            self.advance()
            inner = self.expression()
            self.expect(")")
            return inner
        if self.at("{"):
            self.advance()
            self.expect("}")
            return Literal(None, token.pos)
        raise self.error("an expression")


def parse(text: str) -> Node:
    """The AST of an expression; FhirPathError on a syntax error."""
    parser = _Parser(text)
    node = parser.expression()
    if parser.token.kind != "end":
        raise parser.error("an operator or the end of the expression")
    return node
