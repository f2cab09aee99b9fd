"""String functions (fhirpath.html#string-manipulation), with the 2.0 additions the R4 suite exercises:
`trim`, `split`, `join`, `encode`/`decode`, `escape`/`unescape`, `matchesFull`, `lastIndexOf`."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re

from . import parser as ast
from .errors import FhirPathError
from .functions import Env, Expr, Run, function, kind_check, scalar
from .model import system_value
from .operators import singleton

_TEXT = (str,)


@scalar("indexOf", _TEXT, 1)
def _index_of(text: str, part: str) -> int:
    return text.find(part)


@scalar("lastIndexOf", _TEXT, 1)
def _last_index_of(text: str, part: str) -> int:
    return text.rfind(part)


@function("substring", 1, 2)
def _substring(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    # Not `scalar`: an empty length argument means "to the end", not an empty result.
    def run(input: list, this: list, env: Env) -> list:
        text = singleton(input, "substring()")
        if text is None:
            return []
        kind_check(text, _TEXT, "substring")
        start = singleton(args[0](this, env), "substring()")
        length = singleton(args[1](this, env), "substring()") if len(args) == 2 else None
        if start is None or start < 0 or start >= len(text):  # type: ignore[operator, arg-type]
            return []
        end = len(text) if length is None else start + max(length, 0)  # type: ignore[operator]
        return [text[start:end]]  # type: ignore[index]
    return run


@scalar("startsWith", _TEXT, 1)
def _starts_with(text: str, prefix: str) -> bool:
    return text.startswith(prefix)


@scalar("endsWith", _TEXT, 1)
def _ends_with(text: str, suffix: str) -> bool:
    return text.endswith(suffix)


@scalar("contains", _TEXT, 1)
def _contains(text: str, part: str) -> bool:
    return part in text


@scalar("upper", _TEXT)
def _upper(text: str) -> str:
    return text.upper()


@scalar("lower", _TEXT)
def _lower(text: str) -> str:
    return text.lower()


@scalar("replace", _TEXT, 2)
def _replace(text: str, pattern: str, substitution: str) -> str:
    return text.replace(pattern, substitution)


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL)  # FHIRPath regexes run in single-line mode
    except re.error as exc:
        raise FhirPathError(f"invalid regular expression {pattern!r}: {exc}") from exc


@scalar("matches", _TEXT, 1)
def _matches(text: str, pattern: str) -> bool:
    return _regex(pattern).search(text) is not None  # a partial match, unlike matchesFull()


@scalar("matchesFull", _TEXT, 1)
def _matches_full(text: str, pattern: str) -> bool:
    return _regex(pattern).fullmatch(text) is not None


@scalar("replaceMatches", _TEXT, 2)
def _replace_matches(text: str, pattern: str, substitution: str) -> str:
    if not pattern:
        return text
    # `$1` names a group, as in the Java and JavaScript engines.
    python_substitution = re.sub(r"\$(\d+)", r"\\g<\1>", substitution.replace("\\", "\\\\"))
    return _regex(pattern).sub(python_substitution, text)


@scalar("length", _TEXT)
def _length(text: str) -> int:
    return len(text)


@function("toChars")
def _to_chars(_args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    def run(input: list, this: list, env: Env) -> list:
        text = singleton(input, "toChars()")
        if text is None:
            return []
        kind_check(text, _TEXT, "toChars")
        return list(text)  # type: ignore[call-overload]
    return run


@scalar("trim", _TEXT)
def _trim(text: str) -> str:
    return text.strip()


@function("split", 1)
def _split(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    def run(input: list, this: list, env: Env) -> list:
        text = singleton(input, "split()")
        separator = singleton(args[0](this, env), "split()")
        if text is None or separator is None:
            return []
        kind_check(text, _TEXT, "split")
        return text.split(separator) if separator else list(text)  # type: ignore[union-attr]
    return run


@function("join", 0, 1)
def _join(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    def run(input: list, this: list, env: Env) -> list:
        separator = singleton(args[0](this, env), "join()") if args else ""
        texts = [system_value(item) for item in input]
        if any(type(t) is not str for t in texts):
            raise FhirPathError("join() expects strings")
        return [(separator or "").join(texts)]  # type: ignore[arg-type]
    return run


_ENCODERS = {
    "base64": (lambda b: base64.b64encode(b).decode(), base64.b64decode),
    "urlbase64": (lambda b: base64.urlsafe_b64encode(b).decode(), base64.urlsafe_b64decode),
    "hex": (lambda b: b.hex(), bytes.fromhex),
}


@scalar("encode", _TEXT, 1)
def _encode(text: str, format: str) -> str | None:
    coder = _ENCODERS.get(format)
    return coder[0](text.encode()) if coder else None


@scalar("decode", _TEXT, 1)
def _decode(text: str, format: str) -> str | None:
    coder = _ENCODERS.get(format)
    try:
        return coder[1](text).decode() if coder else None
    except (binascii.Error, ValueError):
        return None


@scalar("escape", _TEXT, 1)
def _escape(text: str, target: str) -> str | None:
    if target == "html":
        return html.escape(text, quote=True).replace("&#x27;", "&#39;")
    return json.dumps(text)[1:-1] if target == "json" else None


@scalar("unescape", _TEXT, 1)
def _unescape(text: str, target: str) -> str | None:
    if target == "html":
        return html.unescape(text)
    return _JSON_ESCAPE.sub(_json_character, text) if target == "json" else None


_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')


def _json_character(match: re.Match[str]) -> str:
    return json.loads(f'"{match.group()}"')
