"""Rendering a mapper's Jinja template to a JSON value, safely.

A template is a JSON document with ``{{ expression }}`` placeholders, like a Pipe's
inputTemplate with unquoted ``<$.path>``: every expression renders as a JSON value
(`fhirpipes.jsonvalue.to_json`). That is true by construction, not by a filter authors must
remember:

* ``finalize`` turns every expression's value into JSON text; only `Markup` passes through,
  and only template text can make `Markup` (macro output, ``caller()``, ``{% set %}`` blocks),
  which is what lets the shared macros compose;
* nothing lets a record value become `Markup`: ``~`` always joins as plain text, ``+ * %`` on
  `Markup` operands are done on plain text, `Markup` methods are off limits, and every filter's
  `Markup` result is demoted to plain text (so ``|safe`` is harmless);
* the sandbox (immutable) keeps templates away from Python internals, and undefined names are
  errors (`StrictUndefined`): optional attributes are handled explicitly (``new.get("x")``).

Errors become `RenderError` naming the template (or macro file) and line, never a value.
"""

from __future__ import annotations

import functools
import json
import operator
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    nodes,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from fhirpipes.conversions import FILTERS, ConversionError
from fhirpipes.errors import RenderError
from fhirpipes.jsonvalue import NotJSONError, encode_string, loads, to_json
from fhirpipes.templatecache import TemplateCache

SHARED_TEMPLATES = "fhirpipes.templates"


class _JsonCodeGenerator(CodeGenerator):
    """Jinja's code generator, with two changes for JSON templates.

    ``a ~ b`` joins as plain text even with autoescape on, so it can't smuggle a value into
    Markup; and an expression's output is exactly what ``finalize`` returns (JSON text), with
    no HTML escaping after it (which would also cost two Markup objects per placeholder).
    """

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("(")
        if finalize.src is not None:
            self.write(finalize.src)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("str_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class MissingValueError(UndefinedError):
    """A template used a name or attribute the record (or context) doesn't have."""

    def __init__(self, message: str, missing: str | None) -> None:
        super().__init__(message)
        self.missing = missing


class _StrictUndefined(StrictUndefined):
    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._undefined_exception is SecurityError:  # the sandbox refused an attribute
            raise SecurityError(self._undefined_message)
        name = self._undefined_name
        raise MissingValueError(self._undefined_message, name if isinstance(name, str) else None)

    __str__ = __iter__ = __len__ = __eq__ = __ne__ = __bool__ = __hash__ = __contains__ = (
        _fail_with_undefined_error
    )


# Built-in filters that return Markup only when given Markup (template text), so they can't turn
# a record value into Markup: left unwrapped, they cost nothing extra. Every other filter is
# wrapped by `_demoting`.
_PLAIN_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "bool", "capitalize", "count", "d", "default", "dictsort", "first", "float",
        "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "reverse", "round", "select", "selectattr", "slice", "sort", "string", "sum", "title",
        "trim", "unique", "upper", "wordcount",
    }
)  # fmt: skip


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Markup) else value


def _demoting(filter_function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that it neither receives nor returns Markup (keeps Jinja's pass_* marks)."""

    @functools.wraps(filter_function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_plain(arg) for arg in args)
        return _plain(filter_function(*args, **{key: _plain(value) for key, value in kwargs.items()}))

    return wrapper


def _finalize(value: Any) -> str:
    """The text an expression outputs: JSON for every value; a macro's output (Markup) as it is."""
    kind = type(value)
    if kind is str:  # the common case first: a record's string
        return encode_string(value)
    if kind is Markup:
        return value  # type: ignore[no-any-return]
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return to_json(value)


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed Jinja environment for one template package (plus the shared macros)."""

    code_generator_class = _JsonCodeGenerator
    intercepted_binops = frozenset({"+", "*", "%"})
    _BINOPS = {"+": operator.add, "*": operator.mul, "%": operator.mod}

    def __init__(self, package: str) -> None:
        packages = [package] if package == SHARED_TEMPLATES else [package, SHARED_TEMPLATES]
        loaders = [PackageLoader(name, "") for name in packages]
        roots = [Path(loader._template_root) for loader in loaders]
        super().__init__(
            bytecode_cache=TemplateCache(package, roots[:1]),
            loader=ChoiceLoader(loaders),
            autoescape=True,
            finalize=_finalize,
            undefined=_StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self.roots = roots
        self.compiled: dict[str, Template] = {}
        self.filters = {
            name: function if name in _PLAIN_FILTERS else _demoting(function)
            for name, function in self.filters.items()
        }
        self.filters.update(FILTERS)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Record data is plain dicts: an item's attribute wins over a dict method of the same
        # name (an attribute called "items" or "keys" is data), and skips the sandbox's
        # attribute checks, which cost more than the rest of a lookup.
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, Markup):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # A template's own macros are safe to call: skip the sandbox's checks on this hot path.
        if type(__obj) is Macro:
            # As jinja2.runtime.Context.call does: loop and block variables aren't macro arguments.
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return self._BINOPS[operator](_plain(left), _plain(right))

    def template_name_of(self, filename: str) -> str:
        """The loader name (e.g. ``_macros/fhir.j2``) of a template file, for error reports."""
        path = Path(filename)
        for root in self.roots:
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return path.name


@functools.cache
def environment(package: str) -> TemplateEnvironment:
    """The (cached, one per cold start) environment for templates shipped in ``package``."""
    return TemplateEnvironment(package)


def check_template(package: str, name: str) -> None:
    """Load and compile a template now, so a missing or broken one fails before any record."""
    _load(environment(package), package, name)


def _load(env: TemplateEnvironment, package: str, name: str) -> Template:
    """The compiled template, or a `RenderError` saying why there is none."""
    try:
        # Kept in a plain dict: templates never change in a running process, and Jinja's own
        # cache checks up-to-dateness on every lookup.
        template = env.compiled[name] = env.get_template(name)
        return template
    except TemplateSyntaxError as exc:
        raise RenderError(
            f"template syntax error: {exc.message}",
            template=exc.name or name,
            line=exc.lineno,
            code="template-syntax",
        ) from exc
    except TemplateError as exc:
        raise RenderError(
            f"template not found in package {package}", template=name, code="template-missing"
        ) from exc


def render(package: str, name: str, context: Mapping[str, Any]) -> Any:
    """Render template ``name`` of ``package`` with ``context`` and parse the result as JSON."""
    env = environment(package)
    template = env.compiled.get(name) or _load(env, package, name)
    try:
        text = template.render(context)
    except Exception as exc:
        frames = _template_frames(env, exc.__traceback__)
        # The line to fix is usually in the mapper's own template (the call that passed a
        # missing value into a macro); where the macro failed is named in the message.
        own = [frame for frame in frames if frame[0] == name]
        template_name, line = own[-1] if own else frames[-1] if frames else (name, None)
        message = _describe(exc, env, frames[-1][0] if frames else name)
        if frames and frames[-1][0] != template_name:
            message += f" (in {frames[-1][0]} line {frames[-1][1]})"
        raise RenderError(message, template=template_name, line=line, code=_code(exc)) from exc
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        source_lines = (template.filename and Path(template.filename).read_text().count("\n")) or None
        # Rendered lines map 1:1 to template lines unless a loop or macro added lines.
        same_shape = source_lines == text.count("\n")
        where = "" if same_shape else f" (line {exc.lineno} of the rendered output)"
        raise RenderError(
            f"the template did not render valid JSON: {exc.msg}{where}",
            template=name,
            line=exc.lineno if same_shape else None,
            code="invalid-json",
        ) from None


def _template_frames(env: TemplateEnvironment, tb: types.TracebackType | None) -> list[tuple[str, int]]:
    """The traceback's frames that run template code, outermost first: (template name, line)."""
    frames = []
    while tb is not None:
        # Jinja rewrites the traceback so that template code shows as frames of the template
        # file, at the template's line; they are the frames with Jinja's marker in their globals.
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            frames.append((env.template_name_of(tb.tb_frame.f_code.co_filename), tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _code(exc: BaseException) -> str:
    if isinstance(exc, MissingValueError):
        return "missing-value"
    if isinstance(exc, ConversionError):
        return "conversion-failed"
    if isinstance(exc, SecurityError):
        return "unsafe-template"
    if isinstance(exc, NotJSONError):
        return "not-json"
    return "render-failed"


def _describe(exc: BaseException, env: TemplateEnvironment, template_name: str) -> str:
    """A message that says what went wrong without quoting record values (PHI)."""
    if isinstance(exc, MissingValueError):
        missing = exc.missing
        source = _source(env, template_name)
        # Name the attribute only when the template itself spells it: then it's schema, not data.
        if missing and source is not None and missing in source:
            return f"undefined: the template uses {missing!r}, which the record or context lacks"
        return "undefined: the template uses a name or attribute the record or context lacks"
    if isinstance(exc, ConversionError | NotJSONError | SecurityError):
        return str(exc)
    return f"{type(exc).__name__} while rendering (details withheld: they may quote record values)"


def _source(env: TemplateEnvironment, name: str) -> str | None:
    try:
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    except TemplateError:
        return None
    return source
