"""A small, strict subset of CEL (Common Expression Language), enough for the
MutatingAdmissionPolicies the product writes. Anything outside the subset fails to
compile, so a policy the sandbox cannot evaluate is refused when it is created instead of
silently doing nothing.

Supported:
- literals: strings ('x', "x"), integers, true, false, null; lists [a, b]; maps {"k": v}
- variables: object, oldObject, namespaceObject, request, variables.<name>
- field selection a.b, indexing a["k"] / a[0]; a missing field or key is an error
  ("no such key"), as in CEL
- operators: ! && || == != < <= > >= + (numbers, strings, lists), in (map keys, list items),
  c ? a : b, parentheses
- macros and functions: has(a.b), size(x) / x.size(), x.startsWith(s), x.endsWith(s),
  x.contains(s), string(x), int(x)
- object construction for ApplyConfiguration: Object{spec: Object.spec{nodeSelector: {...}}}
  (type names must follow the field path: Object.spec, Object.spec.template, ...)
- JSONPatch{op: ..., path: ..., value: ...} values for JSONPatch mutations, and
  jsonpatch.escapeKey(s) ("~" → "~0", "/" → "~1")

Not supported (compile error): comprehension macros (all, exists, map, filter), optional
syntax (?.), params, authorizer, and every other function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ROOTS = {"object", "oldObject", "namespaceObject", "request", "variables"}
METHODS = {"size", "startsWith", "endsWith", "contains"}
FUNCTIONS = {"has", "size", "string", "int"}


class CelError(Exception):
    """A compile or evaluation error."""


@dataclass(frozen=True)
class ObjectValue:
    """The value of a message construction such as Object.spec{...}."""

    type_name: str
    fields: dict[str, Any]


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]{}])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise CelError(f"Syntax error: unexpected character {text[pos:].strip()[:1]!r} at {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    out.append(("end", ""))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        kind, text = self.tokens[self.i]
        return text == value and kind in ("op", "ident") if value is not None else False

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.i]
        if value is not None and token[1] != value:
            raise CelError(f"Syntax error: expected {value!r}, found {token[1] or 'end of input'!r}")
        self.i += 1
        return token

    def parse(self) -> tuple:
        node = self.expr()
        if self.tokens[self.i][0] != "end":
            raise CelError(f"Syntax error: unexpected {self.tokens[self.i][1]!r}")
        return node

    def expr(self) -> tuple:
        cond = self.binary(0)
        if self.peek("?"):
            self.take("?")
            yes = self.expr()
            self.take(":")
            return ("cond", cond, yes, self.expr())
        return cond

    LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"))

    def binary(self, level: int) -> tuple:
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.tokens[self.i][1] in self.LEVELS[level] and self.tokens[self.i][0] in ("op", "ident"):
            op = self.take()[1]
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self) -> tuple:
        if self.peek("!"):
            self.take()
            return ("not", self.unary())
        if self.peek("-"):
            self.take()
            return ("neg", self.unary())
        return self.member()

    def member(self) -> tuple:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take()
                name = self.take()
                if name[0] != "ident":
                    raise CelError(f"Syntax error: expected a field name, found {name[1]!r}")
                if self.peek("(") and node == ("ident", "jsonpatch"):
                    if name[1] != "escapeKey":
                        raise CelError(
                            f"undeclared reference to 'jsonpatch.{name[1]}' (not in the sandbox's CEL subset)"
                        )
                    node = ("call", "jsonpatch.escapeKey", self.args())
                elif self.peek("("):
                    if name[1] not in METHODS:
                        raise CelError(
                            f"undeclared reference to '{name[1]}' (not in the sandbox's CEL subset)"
                        )
                    node = ("call", name[1], [node, *self.args()])
                else:
                    node = ("select", node, name[1])
            elif self.peek("["):
                self.take()
                index = self.expr()
                self.take("]")
                node = ("index", node, index)
            elif self.peek("{") and _type_name(node) is not None:
                node = ("construct", _type_name(node), self.field_inits())
            else:
                return node

    def args(self) -> list[tuple]:
        self.take("(")
        out = []
        while not self.peek(")"):
            out.append(self.expr())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return out

    def field_inits(self) -> list[tuple[str, tuple]]:
        self.take("{")
        out = []
        while not self.peek("}"):
            kind, name = self.take()
            if kind != "ident":
                raise CelError(f"Syntax error: expected a field name, found {name!r}")
            self.take(":")
            out.append((name, self.expr()))
            if not self.peek("}"):
                self.take(",")
        self.take("}")
        return out

    def primary(self) -> tuple:
        kind, text = self.take()
        if kind == "num":
            return ("lit", int(text))
        if kind == "str":
            return ("lit", bytes(text[1:-1], "utf-8").decode("unicode_escape"))
        if kind == "ident":
            if text in ("true", "false"):
                return ("lit", text == "true")
            if text == "null":
                return ("lit", None)
            if self.peek("("):
                if text not in FUNCTIONS:
                    raise CelError(f"undeclared reference to '{text}' (not in the sandbox's CEL subset)")
                args = self.args()
                if text == "has" and (len(args) != 1 or args[0][0] != "select"):
                    raise CelError("invalid argument to has() macro")
                return ("call", text, args)
            return ("ident", text)
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        if text == "[":
            items = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek("]"):
                    self.take(",")
            self.take("]")
            return ("list", items)
        if text == "{":
            entries = []
            while not self.peek("}"):
                key = self.expr()
                self.take(":")
                entries.append((key, self.expr()))
                if not self.peek("}"):
                    self.take(",")
            self.take("}")
            return ("map", entries)
        raise CelError(f"Syntax error: unexpected {text or 'end of input'!r}")


def _type_name(node: tuple) -> str | None:
    if node[0] == "ident" and node[1] in ("Object", "JSONPatch"):
        return node[1]
    if node[0] == "select":
        parent = _type_name(node[1])
        return f"{parent}.{node[2]}" if parent == "Object" or (parent or "").startswith("Object.") else None
    return None


def _children(node: tuple) -> list[tuple]:
    kind = node[0]
    if kind in ("lit", "ident"):
        return []
    if kind == "select":
        return [node[1]]
    if kind in ("index", "not", "neg", "cond"):
        return list(node[1:])
    if kind == "bin":
        return [node[2], node[3]]
    if kind in ("list", "call"):
        return list(node[-1])
    if kind == "map":
        return [part for entry in node[1] for part in entry]
    if kind == "construct":
        return [value for _, value in node[2]]
    raise CelError(f"cannot check {kind}")


def _check(node: tuple, variables: set[str]) -> None:
    if node[0] == "ident" and node[1] not in ROOTS:
        raise CelError(f"undeclared reference to '{node[1]}' (not in the sandbox's CEL subset)")
    if node[0] == "select" and node[1] == ("ident", "variables") and node[2] not in variables:
        raise CelError(f"undeclared reference to 'variables.{node[2]}'")
    for child in _children(node):
        _check(child, variables)


@dataclass(frozen=True)
class Program:
    """A compiled expression."""

    source: str
    tree: tuple

    def evaluate(self, env: dict[str, Any]) -> Any:
        return _eval(self.tree, env)


def compile_expression(source: str, variables: set[str] | None = None) -> Program:
    """Parse and check an expression; raises CelError outside the subset."""
    tree = _Parser(source).parse()
    _check(tree, variables or set())
    return Program(source, tree)


def _no_key(key: Any) -> CelError:
    return CelError(f"no such key: {key}")


def _eval(node: tuple, env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "ident":
        return env[node[1]]
    if kind == "select":
        base = _eval(node[1], env)
        if isinstance(base, dict) and node[2] in base:
            return base[node[2]]
        raise _no_key(node[2])
    if kind == "index":
        base, key = _eval(node[1], env), _eval(node[2], env)
        if isinstance(base, dict) and key in base:
            return base[key]
        if isinstance(base, list) and isinstance(key, int) and 0 <= key < len(base):
            return base[key]
        raise _no_key(key)
    if kind == "list":
        return [_eval(n, env) for n in node[1]]
    if kind == "map":
        return {_eval(k, env): _eval(v, env) for k, v in node[1]}
    if kind == "construct":
        return ObjectValue(node[1], {name: _eval(value, env) for name, value in node[2]})
    if kind == "not":
        return not _bool(_eval(node[1], env))
    if kind == "neg":
        return -_eval(node[1], env)
    if kind == "cond":
        return _eval(node[2], env) if _bool(_eval(node[1], env)) else _eval(node[3], env)
    if kind == "bin":
        return _binary(node[1], node[2], node[3], env)
    if kind == "call":
        return _call(node[1], node[2], env)
    raise CelError(f"cannot evaluate {kind}")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelError(f"no such overload: expected bool, got {type(value).__name__}")
    return value


def _binary(op: str, left_node: tuple, right_node: tuple, env: dict[str, Any]) -> Any:
    if op == "&&":
        return _bool(_eval(left_node, env)) and _bool(_eval(right_node, env))
    if op == "||":
        return _bool(_eval(left_node, env)) or _bool(_eval(right_node, env))
    left, right = _eval(left_node, env), _eval(right_node, env)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "in":
        if isinstance(right, dict | list):
            return left in right
        raise CelError("no such overload: in")
    try:
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    except TypeError as exc:
        raise CelError(f"no such overload: {op}") from exc


def _call(name: str, args: list[tuple], env: dict[str, Any]) -> Any:
    if name == "has":
        select = args[0]
        base = _eval(select[1], env)
        return isinstance(base, dict) and select[2] in base
    values = [_eval(a, env) for a in args]
    if name == "size":
        return len(values[0])
    if name == "jsonpatch.escapeKey":
        if len(values) != 1 or not isinstance(values[0], str):
            raise CelError("no such overload: jsonpatch.escapeKey")
        return values[0].replace("~", "~0").replace("/", "~1")
    if name == "string":
        value = values[0]
        return (
            value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        )
    if name == "int":
        try:
            return int(values[0])
        except (TypeError, ValueError) as exc:
            raise CelError(f"cannot convert {values[0]!r} to int") from exc
    target, arg = values[0], values[1] if len(values) > 1 else None
    if not isinstance(target, str) or not isinstance(arg, str):
        raise CelError(f"no such overload: {name}")
    if name == "startsWith":
        return target.startswith(arg)
    if name == "endsWith":
        return target.endswith(arg)
    return arg in target
