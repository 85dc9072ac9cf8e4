"""Compile a mapper's Jinja template to Python that builds the JSON value directly.

Authors write a JSON document with Jinja in it, like a Pipe's inputTemplate. The compiler reads
the template's Jinja AST and the JSON text between its tags together, and emits one Python
function that builds the document: constant parts become literals, each ``{{ }}`` slot becomes
one value (normalised and pruned by `fhirpipes.engine.runtime.value`), ``{% if %}`` and
``{% for %}`` become Python ``if`` and ``for`` adding members or items, macros become functions
that return values. Record text is never parsed: only template text makes structure, so no
record value can add a member, close a string or rewrite the resource.

Commas follow JSON inside a stretch of plain template text; next to an ``{% if %}`` or
``{% for %}`` block (and at its edges) they may lead, trail or be left out, since the template
can't know whether an item comes next. An ``{% if %}`` without ``{% else %}`` in a value position
gives null (pruned). Constructs that can't keep that guarantee are refused here, with the line:
``{% filter %}`` blocks, dynamic object keys, a ``{{ }}`` inside a JSON string, ``{% include %}``,
``{% extends %}``, imports with context, recursive loops.

Only this module imports Jinja, and only to parse; the compiled code runs without it.
"""

from __future__ import annotations

import functools
import json
import keyword
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.tests import TESTS as JINJA_TESTS

from fhirpipes.engine import runtime
from fhirpipes.errors import ErrorCode


class CompileError(Exception):
    """The template can't be compiled; ``line`` is the template line, ``code`` the error code."""

    def __init__(self, message: str, line: int | None, code: str = ErrorCode.TEMPLATE_UNSUPPORTED) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.code = code


@dataclass(frozen=True)
class Compiled:
    """A compiled template: Python source defining ``root(ctx, exports)`` and its metadata."""

    source: str
    reads: frozenset[str] | None
    """The attributes of ``new`` the template reads; None when it can't tell (``new`` escapes whole)."""


@functools.cache
def _parser() -> Environment:
    # Parsing only: the same syntax and whitespace rules the templates were written for.
    return Environment(keep_trailing_newline=True, autoescape=False)


def parse(source: str, name: str) -> nodes.Template:
    """The template's Jinja AST; `CompileError` (template-syntax) if Jinja can't parse it."""
    try:
        return _parser().parse(source, name=name)
    except TemplateSyntaxError as exc:
        raise CompileError(
            f"template syntax error: {exc.message}", exc.lineno, ErrorCode.TEMPLATE_SYNTAX
        ) from None


def compile_template(source: str, name: str) -> Compiled:
    """Compile template text to Python source (see the module docstring)."""
    tree = parse(source, name)
    try:
        document = _Parser().document(_tokens(tree.body), in_body=False)
        python = _Generator(name).module(document)
    except RecursionError:
        raise CompileError("the template nests too deeply to compile", None) from None
    reads = reads_of(tree, "new")
    # Sorted: the generated code (and so the package's cache entries) must not depend on hashing.
    listed = "None" if reads is None else f"frozenset({tuple(sorted(reads))!r})"
    return Compiled(python + f"READS = {listed}\n", reads)


# ---------------------------------------------------------------- tokens: JSON text, slots, blocks


@dataclass
class _Token:
    kind: str  # "punct", "literal", "slot", "call", "block", "statement"
    value: Any
    line: int


_JSON_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<punct>[{}\[\]:,])
      | (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
      | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
      | (?P<word>true|false|null)""",
    re.VERBOSE,
)
_WORDS = {"true": True, "false": False, "null": None}

_STATEMENTS = (nodes.Assign, nodes.AssignBlock, nodes.Macro, nodes.Import, nodes.FromImport)
_BLOCKS = (nodes.If, nodes.For, nodes.With, nodes.Scope)


def _tokens(body: list[nodes.Node]) -> list[_Token]:
    tokens: list[_Token] = []
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    tokens.extend(_lex(child.data, child.lineno))
                else:
                    tokens.append(_Token("slot", child, child.lineno))
        elif isinstance(node, _STATEMENTS):
            tokens.append(_Token("statement", node, node.lineno))
        elif isinstance(node, _BLOCKS):
            tokens.append(_Token("block", node, node.lineno))
        elif isinstance(node, nodes.CallBlock):
            tokens.append(_Token("call", node, node.lineno))
        else:
            raise CompileError(_refusal(node), node.lineno)
    return tokens


def _refusal(node: nodes.Node) -> str:
    if isinstance(node, nodes.FilterBlock):
        return (
            "{% filter %} blocks are not supported (their output would be text, not a value): "
            "apply the filter to the expression, {{ value | filter }}"
        )
    if isinstance(node, nodes.Include | nodes.Extends | nodes.Block):
        return f"{{% {type(node).__name__.lower()} %}} is not supported: import macros instead"
    return f"{type(node).__name__} is not supported in fhirpipes templates"


def _lex(text: str, line: int) -> Iterator[_Token]:
    position = 0
    while position < len(text):
        match = _JSON_TOKEN.match(text, position)
        if match is None:
            here = line + text.count("\n", 0, position)
            if text[position] == '"':
                raise CompileError(
                    "a JSON string is not closed in the template text (a {{ }} can't go inside a "
                    'string: write "key": {{ a ~ " " ~ b }})',
                    here,
                    ErrorCode.INVALID_JSON,
                )
            raise CompileError("the template text is not JSON here", here, ErrorCode.INVALID_JSON)
        kind = match.lastgroup
        token_line = line + text.count("\n", 0, position)
        position = match.end()
        if kind == "space":
            continue
        raw = match.group()
        if kind == "punct":
            yield _Token("punct", raw, token_line)
        elif kind == "string":
            yield _Token("literal", json.loads(raw), token_line)
        elif kind == "number":
            yield _Token("literal", runtime.value(json.loads(raw, parse_float=Decimal)), token_line)
        else:
            yield _Token("literal", _WORDS[raw], token_line)


# ---------------------------------------------------------------- the document's structure


@dataclass
class _Literal:
    value: Any


@dataclass
class _Slot:
    expr: nodes.Expr
    line: int


@dataclass
class _Call:
    node: nodes.CallBlock
    line: int


@dataclass
class _Object:
    items: list[Any]
    line: int


@dataclass
class _Array:
    items: list[Any]
    line: int


@dataclass
class _Member:
    key: str
    value: Any
    line: int


@dataclass
class _Statement:
    node: nodes.Node


@dataclass
class _Choice:
    """An ``{% if %}`` (or with/scope) in a value position: each branch is a document."""

    node: nodes.Node
    branches: list[tuple[nodes.Expr | None, _Document]]


@dataclass
class _BlockItems:
    """An ``{% if %}``/``{% for %}``/``{% with %}`` inside an object or list: bodies of members or items."""

    node: nodes.Node
    bodies: dict[str, list[Any]]
    branches: list[tuple[nodes.Expr | None, list[Any]]] = field(default_factory=list)


@dataclass
class _Document:
    """Statements and at most one value, in template order."""

    items: list[Any]


class _Parser:
    def document(self, tokens: list[_Token], in_body: bool) -> _Document:
        items: list[Any] = []
        has_value = False
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.kind == "statement":
                items.append(_Statement(token.value))
                index += 1
                continue
            if has_value:
                raise CompileError(
                    "the template has more than one JSON value here", token.line, ErrorCode.INVALID_JSON
                )
            value, index = self.value(tokens, index)
            items.append(value)
            has_value = True
        return _Document(items)

    def value(self, tokens: list[_Token], index: int) -> tuple[Any, int]:
        token = tokens[index]
        if token.kind == "literal":
            return _Literal(token.value), index + 1
        if token.kind == "slot":
            return _Slot(token.value, token.line), index + 1
        if token.kind == "call":
            return _Call(token.value, token.line), index + 1
        if token.kind == "block":
            return self.choice(token), index + 1
        if token.kind == "punct" and token.value == "{":
            return self.container(tokens, index, "}")
        if token.kind == "punct" and token.value == "[":
            return self.container(tokens, index, "]")
        raise CompileError(
            f"expected a JSON value, found {token.value!r}", token.line, ErrorCode.INVALID_JSON
        )

    def choice(self, token: _Token) -> _Choice:
        node = token.value
        if isinstance(node, nodes.If):
            branches: list[tuple[nodes.Expr | None, _Document]] = []
            for test, body in _if_branches(node):
                branches.append((test, self.document(_tokens(body), in_body=True)))
            return _Choice(node, branches)
        if isinstance(node, nodes.With | nodes.Scope):
            return _Choice(node, [(None, self.document(_tokens(node.body), in_body=True))])
        raise CompileError(
            "a {% for %} can only give the items of a list or the members of an object", token.line
        )

    def container(self, tokens: list[_Token], index: int, closer: str) -> tuple[Any, int]:
        opening = tokens[index]
        end = _matching(tokens, index, closer)
        items = self.sequence(tokens[index + 1 : end], "members" if closer == "}" else "elements", False)
        node = _Object(items, opening.line) if closer == "}" else _Array(items, opening.line)
        return node, end + 1

    def sequence(self, tokens: list[_Token], kind: str, in_body: bool) -> list[Any]:
        """The members or items between braces (or in a block's body), with JSON's commas checked."""
        items: list[Any] = []
        previous = "start"  # start, item, comma, block
        before_comma = "start"
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.kind == "statement":
                items.append(_Statement(token.value))
                index += 1
            elif token.kind == "block":
                items.append(self.block_items(token, kind))
                previous = "block"
                index += 1
            elif token.kind == "punct" and token.value == ",":
                if previous == "comma" or (previous == "start" and not in_body):
                    raise CompileError("a comma with no item before it", token.line, ErrorCode.INVALID_JSON)
                before_comma, previous = previous, "comma"
                index += 1
            else:
                if previous == "item":
                    raise CompileError(
                        "a comma is missing between two items", token.line, ErrorCode.INVALID_JSON
                    )
                item, index = self.member(tokens, index) if kind == "members" else self.value(tokens, index)
                items.append(item)
                previous = "item"
        if previous == "comma" and before_comma == "item" and not in_body:
            raise CompileError("a comma with no item after it", tokens[-1].line, ErrorCode.INVALID_JSON)
        return items

    def member(self, tokens: list[_Token], index: int) -> tuple[_Member, int]:
        key = tokens[index]
        if key.kind != "literal" or not isinstance(key.value, str):
            if key.kind in ("slot", "call"):
                raise CompileError(
                    "object keys must be written in the template: a value can't name a member", key.line
                )
            raise CompileError("expected a member name (a JSON string)", key.line, ErrorCode.INVALID_JSON)
        if index + 1 >= len(tokens) or tokens[index + 1].value != ":" or tokens[index + 1].kind != "punct":
            raise CompileError(
                f"expected ':' after the member name {key.value!r}", key.line, ErrorCode.INVALID_JSON
            )
        if index + 2 >= len(tokens):
            raise CompileError(f"the member {key.value!r} has no value", key.line, ErrorCode.INVALID_JSON)
        value, index = self.value(tokens, index + 2)
        return _Member(key.value, value, key.line), index

    def block_items(self, token: _Token, kind: str) -> _BlockItems:
        node = token.value
        if isinstance(node, nodes.If):
            branches = [(test, self.sequence(_tokens(body), kind, True)) for test, body in _if_branches(node)]
            return _BlockItems(node, {}, branches)
        if isinstance(node, nodes.For):
            if node.recursive:
                raise CompileError("recursive loops are not supported", node.lineno)
            bodies = {"body": self.sequence(_tokens(node.body), kind, True)}
            if node.else_:
                bodies["else"] = self.sequence(_tokens(node.else_), kind, True)
            return _BlockItems(node, bodies)
        return _BlockItems(node, {"body": self.sequence(_tokens(node.body), kind, True)})


def _if_branches(node: nodes.If) -> list[tuple[nodes.Expr | None, list[nodes.Node]]]:
    branches: list[tuple[nodes.Expr | None, list[nodes.Node]]] = [(node.test, node.body)]  # type: ignore[list-item]
    branches.extend((elif_.test, elif_.body) for elif_ in node.elif_)  # type: ignore[misc]
    if node.else_:
        branches.append((None, node.else_))
    return branches


def _matching(tokens: list[_Token], index: int, closer: str) -> int:
    opener = tokens[index].value
    depth = 0
    for position in range(index, len(tokens)):
        token = tokens[position]
        if token.kind != "punct":
            continue
        if token.value in "{[":
            depth += 1
        elif token.value in "}]":
            depth -= 1
            if depth == 0:
                if token.value != closer:
                    raise CompileError(
                        f"{opener!r} closed by {token.value!r}", token.line, ErrorCode.INVALID_JSON
                    )
                return position
    raise CompileError(
        f"{opener!r} is not closed (a container must open and close in the same block)",
        tokens[index].line,
        ErrorCode.INVALID_JSON,
    )


# ---------------------------------------------------------------- Python code


class _Scope:
    def __init__(self, generator: _Generator, parent: _Scope | None, loop: str | None = None) -> None:
        self.generator = generator
        self.parent = parent
        self.names: dict[str, str] = {}
        self.loop: str | None = loop if loop is not None else (parent.loop if parent else None)

    def resolve(self, name: str) -> str:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return self.generator.free(name)

    def assign(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = self.generator.identifier(name)
        return self.names[name]


_OPERATORS = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in"}
_OPERATORS["notin"] = "not in"
_UNARY = {"Not": "not ", "Neg": "-", "Pos": "+"}
_BINARY = {"And": "and", "Or": "or", "Sub": "-", "Div": "/", "FloorDiv": "//"}  # Python's own: nothing grows
_GROWING = {"Add": "add", "Mul": "multiply", "Mod": "modulo", "Pow": "power"}


class _Generator:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.line_map: list[int] = []
        self.indent = 0
        self.counter = 0
        self.free_names: dict[str, str] = {}
        self.filters: dict[str, str] = {}
        self.tests: dict[str, str] = {}
        self.root = _Scope(self, None)
        self.in_loop = 0

    # -- writing

    def write(self, text: str, line: int | None) -> None:
        self.lines.append("    " * self.indent + text)
        self.line_map.append(line or (self.line_map[-1] if self.line_map else 1))

    def identifier(self, name: str) -> str:
        self.counter += 1
        return f"l_{name}_{self.counter}" if name.isidentifier() else f"l_{self.counter}"

    def temporary(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"

    def free(self, name: str) -> str:
        if name not in self.free_names:
            self.free_names[name] = f"g_{name}" if name.isidentifier() else f"g_{len(self.free_names)}"
        return self.free_names[name]

    def module(self, document: _Document) -> str:
        body_start = len(self.lines)
        self.indent = 1
        result = self.document(document, self.root, exports=True)
        self.write(f"return {result}", None)
        body = self.lines[body_start:]
        body_map = self.line_map[body_start:]
        self.lines, self.line_map = [], []
        self.indent = 0
        self.write("from fhirpipes.engine.runtime import *  # noqa", 1)
        self.write("from fhirpipes.engine.runtime import value as V, value_in_loop as VL", 1)
        for name, variable in sorted(self.filters.items()):
            self.write(f"{variable} = filter_function({name!r})", 1)
        for name, variable in sorted(self.tests.items()):
            self.write(f"{variable} = test_function({name!r})", 1)
        self.write("def root(ctx, exports):", 1)
        self.indent = 1
        for name, variable in self.free_names.items():
            self.write(f"{variable} = lookup(ctx, {name!r})", 1)
        self.lines.extend(body)
        self.line_map.extend(body_map)
        self.indent = 0
        self.write(f"__fhirpipes_template__ = {self.name!r}", None)
        self.write(f"__fhirpipes_lines__ = {tuple(self.line_map)!r}", None)
        return "\n".join(self.lines) + "\n"

    # -- documents, values, items

    def document(self, document: _Document, scope: _Scope, exports: bool = False) -> str:
        result = "None"
        for item in document.items:
            if isinstance(item, _Statement):
                self.statement(item.node, scope, exports)
            else:
                result = self.value(item, scope)
                if not _is_simple(result):
                    variable = self.temporary("r")
                    self.write(f"{variable} = {result}", _line_of(item))
                    result = variable
        return result

    def value(self, item: Any, scope: _Scope) -> str:
        """Emit what builds ``item``; returns a Python expression of its (pruned) value."""
        if isinstance(item, _Literal):
            return repr(runtime.value(item.value))
        if isinstance(item, _Slot):
            wrap = "VL" if self.in_loop else "V"
            return f"{wrap}({self.expr(item.expr, scope)})"
        if isinstance(item, _Call):
            return self.call_block(item, scope)
        if isinstance(item, _Object | _Array):
            constant = _constant(item)
            if constant is not _NOT_CONSTANT:
                return repr(runtime.value(constant))
            variable = self.temporary("d" if isinstance(item, _Object) else "l")
            self.write(f"{variable} = {{}}" if isinstance(item, _Object) else f"{variable} = []", item.line)
            self.items(item.items, variable, isinstance(item, _Object), scope)
            return f"({variable} or None)"
        if isinstance(item, _Choice):
            return self.choice(item, scope)
        raise AssertionError(f"unexpected {item!r}")

    def choice(self, item: _Choice, scope: _Scope) -> str:
        variable = self.temporary("v")
        node = item.node
        if isinstance(node, nodes.If):
            has_else = False
            for position, (test, document) in enumerate(item.branches):
                if test is None:
                    self.write("else:", node.lineno)
                    has_else = True
                else:
                    keyword_ = "if" if position == 0 else "elif"
                    self.write(f"{keyword_} {self.expr(test, scope)}:", test.lineno)
                self.indent += 1
                self.write(f"{variable} = {self.document(document, scope)}", node.lineno)
                self.indent -= 1
            if not has_else:
                self.write("else:", node.lineno)
                self.write(f"    {variable} = None", node.lineno)
            return variable
        inner = self.with_scope(node, scope)
        self.write(f"{variable} = {self.document(item.branches[0][1], inner)}", node.lineno)
        return variable

    def items(self, items: list[Any], target: str, members: bool, scope: _Scope) -> None:
        for item in items:
            if isinstance(item, _Statement):
                self.statement(item.node, scope, exports=False)
            elif isinstance(item, _BlockItems):
                self.block_items(item, target, members, scope)
            elif members:
                self.add(item.value, f"{target}[{item.key!r}] = ", scope, item.line)
            else:
                self.add(item, f"{target}.append(", scope, _line_of(item))

    def add(self, item: Any, assignment: str, scope: _Scope, line: int | None) -> None:
        close = ")" if assignment.endswith("(") else ""
        if isinstance(item, _Slot) and not self.in_loop:
            # The hot path, inline: a slot's value is usually a record's string.
            variable = self.temporary("v")
            self.write(f"{variable} = {self.expr(item.expr, scope)}", line)
            self.write(f"if type({variable}) is str:", line)
            self.write(f"    if {variable} and not {variable}.isspace(): {assignment}{variable}{close}", line)
            self.write(f"elif ({variable} := V({variable})) is not None: {assignment}{variable}{close}", line)
            return
        result = self.value(item, scope)
        if result == "None":
            return
        if isinstance(item, _Literal | _Object | _Array) and _constant(item) is not _NOT_CONSTANT:
            self.write(f"{assignment}{result}{close}", line)
            return
        variable = self.temporary("v")
        self.write(f"{variable} = {result}", line)
        self.write(f"if {variable} is not None: {assignment}{variable}{close}", line)

    def block_items(self, item: _BlockItems, target: str, members: bool, scope: _Scope) -> None:
        node = item.node
        if isinstance(node, nodes.If):
            for position, (test, body) in enumerate(item.branches):
                if test is None:
                    self.write("else:", node.lineno)
                else:
                    self.write(f"{'if' if position == 0 else 'elif'} {self.expr(test, scope)}:", test.lineno)
                self.indent += 1
                self.write("pass", node.lineno)
                self.items(body, target, members, scope)
                self.indent -= 1
        elif isinstance(node, nodes.For):
            self.for_loop(node, item, target, members, scope)
        else:
            self.items(item.bodies["body"], target, members, self.with_scope(node, scope))

    def for_loop(self, node: nodes.For, item: _BlockItems, target: str, members: bool, scope: _Scope) -> None:
        sequence = self.temporary("it")
        self.write(f"{sequence} = iterate({self.expr(node.iter, scope)})", node.lineno)
        uses_loop = any(name.name == "loop" for name in node.find_all(nodes.Name))
        loop = self.temporary("loop") if uses_loop else None
        inner = _Scope(self, scope, loop)
        targets = self.targets(node.target, inner)
        if node.test is not None:
            self.write(
                f"{sequence} = [{targets} for {targets} in {sequence} if {self.expr(node.test, inner)}]",
                node.lineno,
            )
        if loop is not None:
            self.write(f"{loop} = Loop({sequence})", node.lineno)
            self.write(f"for {loop}.index0, {targets} in enumerate({sequence}):", node.lineno)
        else:
            self.write(f"for {targets} in {sequence}:", node.lineno)
        self.indent += 1
        self.write("tick()", node.lineno)
        self.in_loop += 1
        self.items(item.bodies["body"], target, members, inner)
        self.in_loop -= 1
        self.indent -= 1
        if "else" in item.bodies:
            self.write(f"if not {sequence}:", node.lineno)
            self.indent += 1
            self.write("pass", node.lineno)
            self.items(item.bodies["else"], target, members, _Scope(self, scope))
            self.indent -= 1

    def with_scope(self, node: nodes.Node, scope: _Scope) -> _Scope:
        inner = _Scope(self, scope)
        if isinstance(node, nodes.With):
            values = [self.expr(value, scope) for value in node.values]
            for target, value in zip(node.targets, values, strict=True):
                self.write(f"{self.targets(target, inner)} = {value}", node.lineno)
        return inner

    def targets(self, target: nodes.Node, scope: _Scope) -> str:
        if isinstance(target, nodes.Name):
            return scope.assign(target.name)
        if isinstance(target, nodes.Tuple):
            return "(" + ", ".join(self.targets(item, scope) for item in target.items) + ",)"
        raise CompileError("only names and tuples of names can be assigned here", target.lineno)

    # -- statements

    def statement(self, node: nodes.Node, scope: _Scope, exports: bool) -> None:
        line = node.lineno
        if isinstance(node, nodes.Assign):
            value = self.expr(node.node, scope)
            if isinstance(node.target, nodes.NSRef):
                namespace = scope.resolve(node.target.name)
                self.write(f"set_attribute({namespace}, {node.target.attr!r}, {value})", line)
                return
            self.write(f"{self.targets(node.target, scope)} = {value}", line)
            self.export(node.target, scope, exports, line)
        elif isinstance(node, nodes.AssignBlock):
            if node.filter is not None:
                raise CompileError("a filter on a {% set %} block is not supported", line)
            document = _Parser().document(_tokens(node.body), in_body=True)
            value = self.document(document, _Scope(self, scope))
            self.write(f"{self.targets(node.target, scope)} = {value}", line)
            self.export(node.target, scope, exports, line)
        elif isinstance(node, nodes.Macro):
            variable = scope.assign(node.name)  # first: a macro may call itself
            self.write(f"{variable} = {self.macro(node.name, node, scope)}", line)
            if exports:
                self.write(f"exports[{node.name!r}] = {scope.resolve(node.name)}", line)
        elif isinstance(node, nodes.Import):
            self.write(f"{scope.assign(node.target)} = {self.import_(node)}", line)
        elif isinstance(node, nodes.FromImport):
            module = self.temporary("m")
            self.write(f"{module} = {self.import_(node)}", line)
            for name in node.names:
                source, alias = name if isinstance(name, tuple) else (name, name)
                self.write(f"{scope.assign(alias)} = {module}.attribute({source!r})", line)
        else:
            raise CompileError(_refusal(node), line)

    def export(self, target: nodes.Node, scope: _Scope, exports: bool, line: int) -> None:
        if exports:
            for name in target.find_all(nodes.Name) if not isinstance(target, nodes.Name) else [target]:
                if not name.name.startswith("_"):
                    self.write(f"exports[{name.name!r}] = {scope.resolve(name.name)}", line)

    def import_(self, node: nodes.Import | nodes.FromImport) -> str:
        if node.with_context:
            raise CompileError(
                "imports with context are not supported: pass values as macro arguments", node.lineno
            )
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            raise CompileError("the imported template must be named by a string", node.lineno)
        return f"IMPORT({node.template.value!r})"

    def macro(self, name: str, node: nodes.Macro | nodes.CallBlock, scope: _Scope) -> str:
        function = self.temporary(f"macro_{name}_" if name.isidentifier() else "macro")
        inner = _Scope(self, scope, loop=None)
        inner.loop = None
        parameters = [inner.assign(argument.name) for argument in node.args]
        body_names = {found.name for found in node.find_all(nodes.Name)}
        # Arguments arrive as *_a, **_k and are bound here: Jinja names can't become Python
        # parameters (they could be keywords, or shadow what the generated code uses).
        self.write(f"def {function}(*_a, **_k):", node.lineno)
        self.indent += 1
        self.in_loop += 1  # a macro can be called from a loop: its values count against the budget
        self.write("tick()", node.lineno)
        self.write("_n = len(_a)", node.lineno)
        first_default = len(node.args) - len(node.defaults)
        for position, (argument, parameter) in enumerate(zip(node.args, parameters, strict=True)):
            default = (
                self.expr(node.defaults[position - first_default], inner)
                if position >= first_default
                else f"Missing({argument.name!r})"
            )
            self.write(
                f"{parameter} = _a[{position}] if _n > {position} else _k.pop({argument.name!r}, NA)",
                node.lineno,
            )
            self.write(f"if {parameter} is NA: {parameter} = {default}", node.lineno)
        self.write(f"{inner.assign('caller')} = _k.pop('caller', None)", node.lineno)
        if "varargs" in body_names:
            self.write(f"{inner.assign('varargs')} = _a[{len(parameters)}:]", node.lineno)
        else:
            self.write(f"if _n > {len(parameters)}: macro_arguments({name!r}, _n, None)", node.lineno)
        if "kwargs" in body_names:
            self.write(f"{inner.assign('kwargs')} = _k", node.lineno)
        else:
            self.write(f"if _k: macro_arguments({name!r}, None, _k)", node.lineno)
        document = _Parser().document(_tokens(node.body), in_body=True)
        self.write(f"return {self.document(document, inner)}", node.lineno)
        self.in_loop -= 1
        self.indent -= 1
        return function

    def call_block(self, item: _Call, scope: _Scope) -> str:
        node = item.node
        caller = self.macro("caller", node, scope)
        call = node.call
        if not isinstance(call, nodes.Call):
            raise CompileError("{% call %} needs a macro call", item.line)
        wrap = "VL" if self.in_loop else "V"
        return f"{wrap}({self.call(call, scope, extra=f'caller={caller}')})"

    # -- expressions

    def expr(self, node: nodes.Node, scope: _Scope) -> str:
        if isinstance(node, nodes.Const):
            return repr(node.value)
        if isinstance(node, nodes.Name):
            if node.name == "loop" and scope.loop is not None:
                return scope.loop
            return scope.resolve(node.name)
        if isinstance(node, nodes.Getattr):
            return f"getattr_({self.expr(node.node, scope)}, {node.attr!r})"
        if isinstance(node, nodes.Getitem):
            return f"getitem({self.expr(node.node, scope)}, {self.expr(node.arg, scope)})"
        if isinstance(node, nodes.Slice):
            parts = [
                self.expr(part, scope) if part is not None else "None"
                for part in (node.start, node.stop, node.step)
            ]
            return f"slice({', '.join(parts)})"
        if isinstance(node, nodes.Call):
            return self.call(node, scope)
        if isinstance(node, nodes.Filter):
            return self.filter(node, scope)
        if isinstance(node, nodes.Test):
            return self.test(node, scope)
        if isinstance(node, nodes.CondExpr):
            otherwise = self.expr(node.expr2, scope) if node.expr2 is not None else "Missing(None)"
            return f"({self.expr(node.expr1, scope)} if {self.expr(node.test, scope)} else {otherwise})"
        kind = type(node).__name__
        if kind in _UNARY:
            return f"({_UNARY[kind]}{self.expr(node.node, scope)})"  # type: ignore[attr-defined]
        if kind in _BINARY:
            return f"({self.expr(node.left, scope)} {_BINARY[kind]} {self.expr(node.right, scope)})"  # type: ignore[attr-defined]
        if kind in _GROWING:
            return f"{_GROWING[kind]}({self.expr(node.left, scope)}, {self.expr(node.right, scope)})"  # type: ignore[attr-defined]
        if isinstance(node, nodes.Compare):
            text = self.expr(node.expr, scope)
            for operand in node.ops:
                text += f" {_OPERATORS[operand.op]} {self.expr(operand.expr, scope)}"
            return f"({text})"
        if isinstance(node, nodes.Concat):
            return f"concat({', '.join(self.expr(part, scope) for part in node.nodes)})"
        if isinstance(node, nodes.List):
            return f"[{', '.join(self.expr(item, scope) for item in node.items)}]"
        if isinstance(node, nodes.Tuple):
            return f"({''.join(self.expr(item, scope) + ', ' for item in node.items)})"
        if isinstance(node, nodes.Dict):
            pairs = ", ".join(
                f"{self.expr(pair.key, scope)}: {self.expr(pair.value, scope)}" for pair in node.items
            )
            return f"{{{pairs}}}"
        raise CompileError(f"the expression {kind} is not supported in fhirpipes templates", node.lineno)

    def call(self, node: nodes.Call, scope: _Scope, extra: str | None = None) -> str:
        arguments = self.arguments(node, scope)
        if extra:
            arguments.append(extra)
        return f"{self.expr(node.node, scope)}({', '.join(arguments)})"

    def arguments(self, node: nodes.Call | nodes.Filter, scope: _Scope) -> list[str]:
        arguments = [self.expr(argument, scope) for argument in node.args]
        for keyword_argument in node.kwargs:
            value = self.expr(keyword_argument.value, scope)
            name = str(keyword_argument.key)
            if name.isidentifier() and not keyword.iskeyword(name):
                arguments.append(f"{name}={value}")
            else:
                arguments.append(f"**{{{name!r}: {value}}}")
        if node.dyn_args is not None:
            arguments.append(f"*{self.expr(node.dyn_args, scope)}")
        if node.dyn_kwargs is not None:
            arguments.append(f"**{self.expr(node.dyn_kwargs, scope)}")
        return arguments

    def filter(self, node: nodes.Filter, scope: _Scope) -> str:
        if node.node is None:
            raise CompileError("{% filter %} blocks are not supported", node.lineno)
        subject = self.expr(node.node, scope)
        if node.name in ("default", "d"):
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                raise CompileError("default() takes plain arguments here", node.lineno)
            arguments: dict[str, nodes.Expr] = dict(
                zip(("default_value", "boolean"), node.args, strict=False)
            )
            arguments.update({str(keyword_.key): keyword_.value for keyword_ in node.kwargs})
            fallback = self.expr(arguments["default_value"], scope) if "default_value" in arguments else "''"
            boolean = arguments.get("boolean")
            constant = "default_value" not in arguments or isinstance(arguments["default_value"], nodes.Const)
            if boolean is None and constant and isinstance(node.node, nodes.Getattr):
                # The hot case (``new.x | default(none)``): one call, no Missing made when x is absent.
                target = self.expr(node.node.node, scope)
                attribute = node.node.attr
                if target.isidentifier() and not hasattr(dict, attribute):
                    # A record's attribute (a plain dict key): dict.get, no call of ours.
                    call = f"getattr_or({target}, {attribute!r}, {fallback})"
                    return f"({target}.get({attribute!r}, {fallback}) if type({target}) is dict else {call})"
                return f"getattr_or({target}, {attribute!r}, {fallback})"
            temporary = self.temporary("t")
            if boolean is not None and not (isinstance(boolean, nodes.Const) and not boolean.value):
                return f"(({temporary} := {subject}) if type({temporary}) is not Missing and {temporary} else {fallback})"
            return f"({fallback} if type({temporary} := {subject}) is Missing else {temporary})"
        if node.name in runtime.REFUSED_FILTERS:
            raise CompileError(f"the filter {node.name!r} is not allowed in fhirpipes templates", node.lineno)
        if node.name not in runtime.NATIVE_FILTERS and node.name not in JINJA_FILTERS:
            raise CompileError(f"no filter named {node.name!r}", node.lineno)
        variable = self.filters.setdefault(node.name, f"F_{len(self.filters)}")
        return f"{variable}({', '.join([subject, *self.arguments(node, scope)])})"

    def test(self, node: nodes.Test, scope: _Scope) -> str:
        if node.name in ("defined", "undefined") and isinstance(node.node, nodes.Getattr):
            target = self.expr(node.node.node, scope)
            attribute = node.node.attr
            if target.isidentifier() and not hasattr(dict, attribute):
                # ``new.x is defined`` on a record: a key lookup, no Missing made when it is absent.
                test = f"({attribute!r} in {target} if type({target}) is dict else type(getattr_({target}, {attribute!r})) is not Missing)"
                return f"({test})" if node.name == "defined" else f"(not {test})"
        subject = self.expr(node.node, scope)
        if node.name == "defined":
            return f"(type({subject}) is not Missing)"
        if node.name == "undefined":
            return f"(type({subject}) is Missing)"
        if node.name not in runtime.NATIVE_TESTS and node.name not in JINJA_TESTS:
            raise CompileError(f"no test named {node.name!r}", node.lineno)
        variable = self.tests.setdefault(node.name, f"T_{len(self.tests)}")
        arguments = [self.expr(argument, scope) for argument in node.args]
        return f"{variable}({', '.join([subject, *arguments])})"


def _is_simple(expression: str) -> bool:
    return expression.isidentifier() or expression == "None"


def _line_of(item: Any) -> int | None:
    return getattr(item, "line", None)


_NOT_CONSTANT = object()


def _constant(item: Any) -> Any:
    """The Python value of a container written entirely in template text, else ``_NOT_CONSTANT``."""
    if isinstance(item, _Literal):
        return item.value
    if isinstance(item, _Object):
        result = {}
        for member in item.items:
            if not isinstance(member, _Member):
                return _NOT_CONSTANT
            value = _constant(member.value)
            if value is _NOT_CONSTANT:
                return _NOT_CONSTANT
            result[member.key] = value
        return result
    if isinstance(item, _Array):
        values = [_constant(element) for element in item.items]
        return _NOT_CONSTANT if any(value is _NOT_CONSTANT for value in values) else values
    return _NOT_CONSTANT


# ---------------------------------------------------------------- what a template reads


def reads_of(tree: nodes.Template, variable: str) -> frozenset[str] | None:
    """The attributes of ``variable`` the template reads, or None if it uses ``variable`` otherwise
    (passes it whole, iterates it, assigns it, reads a computed key)."""
    reads: set[str] = set()
    accounted: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Compare)):
        if isinstance(node, nodes.Getattr) and _is_name(node.node, variable):
            accounted.add(id(node.node))
            reads.add(node.attr)  # an attribute named like a dict method is data too (record first)
        elif isinstance(node, nodes.Getitem) and _is_name(node.node, variable):
            if not (isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
                return None
            accounted.add(id(node.node))
            reads.add(node.arg.value)
        elif isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const):
            for operand in node.ops:
                if operand.op in ("in", "notin") and _is_name(operand.expr, variable):
                    accounted.add(id(operand.expr))
                    reads.add(str(node.expr.value))
    for call in tree.find_all(nodes.Call):
        method = call.node
        if isinstance(method, nodes.Getattr) and _is_name(method.node, variable):
            argument = call.args[0] if call.args else None
            if method.attr != "get" or not isinstance(argument, nodes.Const):
                return None
            reads.add(str(argument.value))
    for name in tree.find_all(nodes.Name):
        if name.name == variable and (name.ctx != "load" or id(name) not in accounted):
            return None
    return frozenset(reads)


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name
