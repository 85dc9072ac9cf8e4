"""What a template reads, found from its syntax tree: the conformance kit's defaults.

`template_reads` tells which attributes of ``new`` (or ``keys``) a template reads strictly (a
missing one is an error) and which optionally; the kit derives its required and key attributes
from it. Never imported by the Lambda: it parses with Jinja (through `fhirpipes.engine.compiler`,
the one module that parses templates), and the handler's cold start must not import Jinja.
"""

from __future__ import annotations

from jinja2 import nodes

from fhirpipes.engine import template_source
from fhirpipes.engine.compiler import parse

_DICT_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))


def template_reads(package: str, name: str, variable: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The attributes of ``variable`` the template reads: (strictly, optionally), each sorted.

    Strictly: ``new.x`` or ``new["x"]`` with no ``| default``, and never tested with ``is defined``,
    ``"x" in new`` or read with ``new.get("x")``. Only the template itself is read, not its macros.
    """
    source, _ = template_source(package, name)
    strict: set[str] = set()
    optional: set[str] = set()

    def attribute(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Getattr) and _is_name(node.node, variable):
            return None if node.attr in _DICT_METHODS else node.attr
        if (
            isinstance(node, nodes.Getitem)
            and _is_name(node.node, variable)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            return node.arg.value
        return None

    def visit(node: nodes.Node, guarded: bool) -> None:
        name = attribute(node)
        if name is not None:
            (optional if guarded else strict).add(name)
        if isinstance(node, nodes.Filter) and node.name == "default" and node.node is not None:
            visit(node.node, True)
            for argument in node.args:
                visit(argument, False)
            return
        if isinstance(node, nodes.Test) and node.name in ("defined", "undefined", "none"):
            visit(node.node, True)
            return
        if (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr == "get"
            and _is_name(node.node.node, variable)
            and node.args
            and isinstance(node.args[0], nodes.Const)
        ):
            optional.add(str(node.args[0].value))
        if isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const):
            for operand in node.ops:
                if operand.op in ("in", "notin") and _is_name(operand.expr, variable):
                    optional.add(str(node.expr.value))
        for child in node.iter_child_nodes():
            visit(child, False)

    visit(parse(source, name), False)
    return tuple(sorted(strict - optional)), tuple(sorted(optional))


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name
