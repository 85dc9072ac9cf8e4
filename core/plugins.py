"""Loading plugins from the ``fhirpipes`` entry-point group and building the mapper registry.

The built-in Patient and Practitioner mappers are found here exactly like a third-party plugin:
through their entry points, so a package built without its metadata fails loudly at startup
("no mapper registered") instead of mapping nothing. ``FHIRPIPES_PLUGINS=patient,practitioner``
loads only the named entry points. The registry is built once per cold start, never per record.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, NamedTuple

import pluggy

from fhirpipes import hookspecs
from fhirpipes.errors import PluginError, UnknownTableError
from fhirpipes.mapper import Mapper
from fhirpipes.records import StreamRecord
from fhirpipes.resource import has_resource_type

ENTRY_POINT_GROUP = "fhirpipes"
"""The entry-point group plugins register in (``[project.entry-points.fhirpipes]``); `fhirpipes package`
ships the distributions that provide one."""
PLUGINS_ENV = "FHIRPIPES_PLUGINS"


class RegisteredMapper(NamedTuple):
    """A mapper and the plugin (entry-point name) that registered it."""

    plugin: str
    mapper: Mapper


class PluginInfo(NamedTuple):
    """A loaded plugin: its entry-point name, module, what it registered, and its distribution."""

    name: str
    module: str
    mappers: tuple[Mapper, ...]
    entry_point: importlib.metadata.EntryPoint | None = None

    # Read on demand: a distribution's metadata is parsed from its METADATA file, which a
    # Lambda's cold start has no use for.
    @property
    def distribution(self) -> str | None:
        """The name of the distribution that installed the plugin (None when given as a module)."""
        dist = self.entry_point.dist if self.entry_point else None
        return dist.name if dist else None

    @property
    def version(self) -> str | None:
        """The version of that distribution."""
        dist = self.entry_point.dist if self.entry_point else None
        return dist.version if dist else None


class Registry:
    """The mappers of the loaded plugins, by table; answers "which mapper takes this record?"."""

    def __init__(self, registered: Iterable[RegisteredMapper], plugins: Iterable[PluginInfo] = ()) -> None:
        self.plugins = tuple(plugins)
        self._by_table: dict[str, list[RegisteredMapper]] = {}
        for entry in registered:
            self._add(entry)
        if not self._by_table:
            raise PluginError(
                f"no mapper registered: no plugin in the {ENTRY_POINT_GROUP!r} entry-point group registered "
                "one (is the package installed with its metadata? is FHIRPIPES_PLUGINS right?)"
            )

    def _add(self, entry: RegisteredMapper) -> None:
        mapper = entry.mapper
        if not has_resource_type(mapper.resource_type, mapper.fhir_version):
            raise PluginError(
                f"plugin {entry.plugin!r} maps table {mapper.table!r} to {mapper.resource_type}, "
                f"which is not a FHIR {mapper.fhir_version} resource type"
            )
        claims = self._by_table.setdefault(mapper.table, [])
        for other in claims:
            # Several mappers may share a table only when every one of them can tell its records apart.
            if other.mapper.match is None or entry.mapper.match is None:
                raise PluginError(
                    f"table {entry.mapper.table!r} is claimed by plugin {other.plugin!r} and by plugin "
                    f"{entry.plugin!r}; give each mapper a `match` to tell their records apart, or load "
                    f"only one of them with {PLUGINS_ENV}"
                )
        claims.append(entry)

    @property
    def mappers(self) -> list[Mapper]:
        """Every registered mapper, in registration order."""
        return [entry.mapper for claims in self._by_table.values() for entry in claims]

    @property
    def tables(self) -> list[str]:
        """The tables that have a mapper."""
        return list(self._by_table)

    def plugin_of(self, mapper: Mapper) -> str:
        """The name of the plugin that registered ``mapper``."""
        for claims in self._by_table.values():
            for entry in claims:
                if entry.mapper is mapper:
                    return entry.plugin
        raise KeyError(mapper.table)

    def mapper_for(self, record: StreamRecord) -> Mapper:
        """The one mapper that takes ``record``; `UnknownTableError` if none or several do."""
        claims = self._by_table.get(record.table)
        if not claims:
            raise UnknownTableError("no mapper is registered for the record's table")
        if len(claims) == 1 and claims[0].mapper.match is None:
            return claims[0].mapper
        matching = [
            entry.mapper for entry in claims if entry.mapper.match is None or entry.mapper.match(record)
        ]
        if len(matching) != 1:
            reason = "no mapper's match takes" if not matching else f"{len(matching)} mappers' matches take"
            raise UnknownTableError(f"{reason} the record (exactly one must)", path="dynamodb.Keys")
        return matching[0]


def selected_plugins(environ: Mapping[str, str] = os.environ) -> set[str] | None:
    """The entry-point names FHIRPIPES_PLUGINS asks for, or None for all."""
    raw = environ.get(PLUGINS_ENV, "").strip()
    if not raw:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of the ``fhirpipes`` group, sorted by name for a stable load order."""
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_registry(
    only: Iterable[str] | None = None,
    *,
    modules: Mapping[str, ModuleType | object] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Registry:
    """Load plugins and build the `Registry`.

    Args:
        only: entry-point names to load (default: ``FHIRPIPES_PLUGINS`` of ``environ``, else all installed).
        modules: plugin objects by name to register instead of entry points (tests, embedding).
        environ: where ``FHIRPIPES_PLUGINS`` is read.
    """
    manager = pluggy.PluginManager(hookspecs.hookspec.project_name)
    manager.add_hookspecs(hookspecs)
    infos: dict[str, tuple[str, importlib.metadata.EntryPoint | None]] = {}
    if modules is None:
        wanted = set(only) if only is not None else selected_plugins(environ)
        found = entry_points()
        if wanted is not None:
            unknown = wanted - {ep.name for ep in found}
            if unknown:
                raise PluginError(
                    f"{PLUGINS_ENV} names plugins that are not installed: {', '.join(sorted(unknown))} "
                    f"(installed: {', '.join(ep.name for ep in found) or 'none'})"
                )
        for ep in found:
            if wanted is not None and ep.name not in wanted:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
            _register(manager, plugin, ep.name)
            infos[ep.name] = (ep.value, ep)
    else:
        for name, plugin in modules.items():
            _register(manager, plugin, name)
            infos[name] = (getattr(plugin, "__name__", repr(plugin)), None)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook fhirpipes doesn't define: {exc}") from exc

    registered: list[RegisteredMapper] = []
    by_plugin: dict[str, list[Mapper]] = {name: [] for name in infos}
    for impl in manager.hook.register_mappers.get_hookimpls():
        name = manager.get_name(impl.plugin) or impl.plugin_name

        def register(mapper: Mapper, _plugin: str = name) -> None:
            if not isinstance(mapper, Mapper):
                raise PluginError(
                    f"plugin {_plugin!r} registered {type(mapper).__name__}, not a fhirpipes Mapper"
                )
            registered.append(RegisteredMapper(_plugin, mapper))
            by_plugin.setdefault(_plugin, []).append(mapper)

        impl.function(register=register)
    plugins = [
        PluginInfo(name, module, tuple(by_plugin.get(name, ())), entry_point)
        for name, (module, entry_point) in infos.items()
    ]
    # Registration order follows the sorted entry points, not pluggy's LIFO call order.
    order = list(infos)
    registered.sort(key=lambda entry: order.index(entry.plugin) if entry.plugin in order else len(order))
    return Registry(registered, plugins)


def _register(manager: pluggy.PluginManager, plugin: Any, name: str) -> None:
    try:
        manager.register(plugin, name=name)
    except ValueError as exc:
        raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} has an invalid hook implementation: {exc}") from exc
