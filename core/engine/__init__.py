"""The mapping engine: a mapper's template, compiled to Python, evaluated to the resource's JSON value.

`load` finds a template (in its package, then in the shared ``fhirpipes.templates``), takes its
compiled code from the cache beside it or compiles it (`fhirpipes.engine.compiler`, the only
part that imports Jinja), and keeps it for the life of the process. `Template.render` builds the
value within the record's budget (`fhirpipes.engine.runtime.Limits`). Every failure is a
`RenderError` naming the template and line, never a record value: at compile time (any
exception, of any type, is the template's error, never the batch's) and at render time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import CodeType, TracebackType
from typing import Any

from fhirpipes.conversions import ConversionError
from fhirpipes.engine import cache
from fhirpipes.engine.runtime import (
    BUDGET,
    BudgetExceededError,
    Limits,
    Missing,
    MissingValueError,
    NotJSONError,
    TemplateModule,
    UnsafeError,
    same,
)
from fhirpipes.errors import ErrorCode, RecordError, RenderError

SHARED_TEMPLATES = "fhirpipes.templates"

__all__ = [
    "SHARED_TEMPLATES",
    "Limits",
    "Missing",
    "Template",
    "check_template",
    "from_string",
    "load",
    "precompile",
    "render",
    "same",
    "template_source",
]


class Template:
    """One compiled template, ready to render."""

    __slots__ = ("exports", "lines", "name", "package", "reads", "root", "source")

    def __init__(self, package: str, name: str, source: str, namespace: dict[str, Any]) -> None:
        self.package = package
        self.name = name
        self.source = source
        self.root: Callable[[Mapping[str, Any], dict[str, Any]], Any] = namespace["root"]
        self.reads: frozenset[str] | None = namespace["READS"]
        """The attributes of ``new`` the template reads (None: it can't tell, ``new`` escapes whole)."""
        self.lines: tuple[int, ...] = namespace["__fhirpipes_lines__"]
        self.exports: TemplateModule | None = None

    def render(self, context: Mapping[str, Any], limits: Limits | None = None) -> Any:
        """The template's JSON value for ``context``, pruned; `RenderError` if it fails."""
        BUDGET.start(limits)
        try:
            return self.root(context, {})
        except RecordError as exc:  # raised by a plugin's function: it already says what
            self._locate(exc, exc.__traceback__)
            raise
        except Exception as exc:
            error = self._error(exc)
        # Raised outside the except block, so with no cause or context: their text may quote values.
        raise error

    def module(self) -> TemplateModule:
        """The template as ``{% import %}`` sees it: its macros and top-level variables."""
        if self.exports is None:
            exports: dict[str, Any] = {}
            self.root({}, exports)
            self.exports = TemplateModule(self.name, exports)
        return self.exports

    def _error(self, exc: BaseException) -> RenderError:
        frames = _template_frames(exc.__traceback__)
        own = [frame for frame in frames if frame[0] == self.name]
        template, line = own[-1] if own else frames[-1] if frames else (self.name, None)
        innermost = frames[-1][0] if frames else self.name
        message = _describe(exc, innermost, self.package)
        if frames and innermost != template:
            message += f" (in {innermost} line {frames[-1][1]})"
        return RenderError(message, template=template, line=line, code=_code(exc))

    def _locate(self, exc: RecordError, tb: TracebackType | None) -> None:
        frames = _template_frames(tb)
        if frames and exc.template is None:
            exc.template, exc.line = frames[-1]


_loaded: dict[tuple[str, str], Template | RenderError] = {}


def load(package: str, name: str) -> Template:
    """The compiled template ``name`` of ``package`` (cached for the process); `RenderError` if none."""
    found = _loaded.get((package, name))
    if found is None:
        found = _loaded[(package, name)] = _load(package, name)
    if isinstance(found, RenderError):
        raise found
    return found


def render(package: str, name: str, context: Mapping[str, Any], limits: Limits | None = None) -> Any:
    """Load and render a template (see `Template.render`)."""
    return load(package, name).render(context, limits)


def check_template(package: str, name: str) -> None:
    """Load and compile a template now, so a missing or broken one fails before any record."""
    load(package, name)


def from_string(source: str, package: str = SHARED_TEMPLATES, name: str = "<string>") -> Template:
    """Compile template text that isn't a file (tests, the kit); imports resolve in ``package``."""
    namespace: dict[str, Any] = {"__name__": "fhirpipes.engine.compiled", "IMPORT": _importer(package)}
    exec(_compile(source, name), namespace)
    template = Template(package, name, source, namespace)
    _loaded[(package, name)] = template  # so that its errors can consult its source
    return template


def template_source(package: str, name: str) -> tuple[str, Path]:
    """The template's text and file; `RenderError` (template-missing) if neither package has it."""
    path, _ = _find(package, name)
    return path.read_text(encoding="utf-8"), path


def _load(package: str, name: str) -> Template | RenderError:
    try:
        path, found_in = _find(package, name)
        raw = path.read_bytes()
        source = raw.decode("utf-8")
        root = _package_root(found_in, path, name)
        digest = cache.checksum(raw)
        code = cache.read(root, found_in, name, digest)
        if code is None:
            code = _compile(source, name)
            cache.write(root, found_in, name, digest, code)
        namespace: dict[str, Any] = {"__name__": "fhirpipes.engine.compiled", "IMPORT": _importer(package)}
        exec(code, namespace)
        return Template(package, name, source, namespace)
    except RenderError as exc:
        return exc
    except Exception as exc:  # any failure to compile is the template's, never the batch's
        return RenderError(
            f"the template could not be compiled ({type(exc).__name__})",
            template=name,
            code=ErrorCode.TEMPLATE_COMPILE,
        )


def _compile(source: str, name: str) -> CodeType:
    from fhirpipes.engine.compiler import CompileError, compile_template

    try:
        compiled = compile_template(source, name)
    except CompileError as exc:
        error = RenderError(exc.message, template=name, line=exc.line, code=exc.code)
    else:
        return compile(compiled.source, f"<fhirpipes template {name}>", "exec")
    raise error  # outside the except block: no context (Jinja's may quote the template's text)


def precompile(packages: Iterable[str]) -> int:
    """Compile every template of ``packages`` into the caches beside them (for ``fhirpipes package``).

    Returns the number of templates written; a template that doesn't compile is an error here.
    """
    written = 0
    for package in sorted(set(packages)):
        for root in _roots(package):
            for path in sorted(root.rglob("*.j2")):
                name = path.relative_to(root).as_posix()
                raw = path.read_bytes()
                code = _compile(raw.decode("utf-8"), name)
                if cache.write(root, package, name, cache.checksum(raw), code):
                    written += 1
    return written


def _importer(package: str) -> Callable[[str], TemplateModule]:
    def import_template(name: str) -> TemplateModule:
        return load(package, name).module()

    return import_template


def _roots(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def _find(package: str, name: str) -> tuple[Path, str]:
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise RenderError(
            "a template name must be a relative path", template=name, code=ErrorCode.TEMPLATE_MISSING
        )
    packages = [package] if package == SHARED_TEMPLATES else [package, SHARED_TEMPLATES]
    for candidate in packages:
        try:
            roots = _roots(candidate)
        except (ImportError, ValueError):
            roots = []
        for root in roots:
            path = root.joinpath(*parts)
            if path.is_file():
                return path, candidate
    raise RenderError(
        f"template not found in package {package}", template=name, code=ErrorCode.TEMPLATE_MISSING
    )


def _package_root(package: str, path: Path, name: str) -> Path:
    return path.parents[len(PurePosixPath(name).parts) - 1]


def _template_frames(tb: TracebackType | None) -> list[tuple[str, int]]:
    """The traceback's frames that run compiled template code, outermost first: (template, line)."""
    frames = []
    while tb is not None:
        globals_ = tb.tb_frame.f_globals
        name = globals_.get("__fhirpipes_template__")
        if name is not None:
            lines = globals_["__fhirpipes_lines__"]
            index = tb.tb_lineno - 1
            frames.append((name, lines[index] if 0 <= index < len(lines) else lines[-1]))
        tb = tb.tb_next
    return frames


def _code(exc: BaseException) -> str:
    if isinstance(exc, MissingValueError):
        return ErrorCode.MISSING_VALUE
    if isinstance(exc, ConversionError):
        return ErrorCode.CONVERSION_FAILED
    if isinstance(exc, UnsafeError):
        return ErrorCode.UNSAFE_TEMPLATE
    if isinstance(exc, NotJSONError):
        return ErrorCode.NOT_JSON
    if isinstance(exc, BudgetExceededError | RecursionError | MemoryError):
        return ErrorCode.RENDER_BUDGET_EXCEEDED
    return ErrorCode.RENDER_FAILED


def _describe(exc: BaseException, template: str, package: str) -> str:
    """A message that says what went wrong without quoting record values (PHI)."""
    if isinstance(exc, MissingValueError):
        missing = exc.name
        found = _loaded.get((package, template))
        source = found.source if isinstance(found, Template) else None
        # Name the attribute only when the template itself spells it: then it's schema, not data.
        if missing and source is not None and missing in source:
            return f"undefined: the template uses {missing!r}, which the record or context lacks"
        return "undefined: the template uses a name or attribute the record or context lacks"
    if isinstance(exc, RecursionError):
        return "the render went over its budget: macros or values nest too deeply"
    if isinstance(exc, MemoryError):
        return "the render went over its budget: out of memory"
    if isinstance(exc, ConversionError | NotJSONError | UnsafeError | BudgetExceededError):
        return str(exc)
    return f"{type(exc).__name__} while rendering (details withheld: they may quote record values)"
