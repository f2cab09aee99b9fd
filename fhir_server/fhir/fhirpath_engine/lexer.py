"""Tokens of FHIRPath N1 (fhirpath.html#grammar, the lexer rules of the ANTLR grammar in its appendix)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FhirPathError

# Date/time literals are lexed whole so that `.123` of `@T10:30:00.123` is not read as a member access.
_DATE = r"\d{4}(?:-\d{2}(?:-\d{2})?)?"
_TIME = r"\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_TOKEN = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<open_comment>/\*)
  | (?P<time>@T{_TIME})
  | (?P<datetime>@{_DATE}T(?:{_TIME}(?:Z|[+-]\d{{2}}:\d{{2}})?)?)
  | (?P<date>@{_DATE})
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<delimited>`(?:[^`\\]|\\.)*`)
  | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<special>\$(?:this|index|total))
  | (?P<op><=|>=|!=|!~|[-+*/&|=~<>()\[\]{{}},.%])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind (a `_TOKEN` group name, or "end"), its text (unescaped for strings) and offset."""

    kind: str
    text: str
    pos: int


def _unescape(body: str, pos: int) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "u" and len(code) == 5:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise FhirPathError(f"syntax error at {pos}: unknown escape '\\{code}'")
    return _ESCAPE.sub(replace, body)


def tokenize(text: str) -> list[Token]:
    """The tokens of an expression, comments and whitespace left out, ending with an "end" token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FhirPathError(f"syntax error at {pos}: unexpected character {text[pos]!r}")
        kind = match.lastgroup
        if kind == "open_comment":
            raise FhirPathError(f"syntax error at {pos}: unterminated comment")
        value = match.group()
        if kind in ("string", "delimited"):
            value = _unescape(value[1:-1], pos)
        if kind not in ("ws", "line_comment", "block_comment"):
            tokens.append(Token(kind, value, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens
