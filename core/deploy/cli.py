"""The ``fhirpipes package`` and ``fhirpipes template`` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from fhirpipes.deploy import DeployError
from fhirpipes.deploy.runtime import ARCHITECTURES, PYTHON_VERSIONS
from fhirpipes.errors import FhirpipesError
from fhirpipes.fhirversion import FHIR_VERSIONS


def _fail(message: str) -> None:
    """Exit non-zero with a one-line reason."""
    raise click.ClickException(" ".join(message.split()))


def _check_plugins(names: tuple[str, ...]) -> None:
    """Refuse a ``--plugin`` that is not installed (before load_registry blames FHIRPIPES_PLUGINS)."""
    from fhirpipes.plugins import entry_points

    installed = [ep.name for ep in entry_points()]
    unknown = sorted(set(names) - set(installed))
    if unknown:
        raise click.ClickException(
            f"--plugin {', '.join(unknown)}: no such plugin is installed "
            f"(installed: {', '.join(installed) or 'none'})"
        )


def _check_out_folder(out_dir: Path) -> None:
    """Refuse an ``--out`` folder that can't be created or written, before building anything."""
    ancestor = out_dir
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise click.ClickException(f"--out {out_dir}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise click.ClickException(f"--out {out_dir}: {ancestor} is not writable")


# The build's steps, told by the log line each begins with (`build_package` says what it does).
PACKAGE_STEPS = ("install", "trim", "compile", "zip")
_STEP_LINES = {
    "building a wheel": "install",
    "installing": "install",
    "left out": "trim",
    "compiling bytecode": "compile",
    "compiling templates": "zip",
}


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


@click.command(short_help="Build the Lambda deployment zip.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder to write the zip into.",
)
@click.option(
    "--python",
    "python",
    default="3.11",
    show_default=True,
    help=f"Lambda runtime: {', '.join(PYTHON_VERSIONS)}.",
)
@click.option(
    "--arch", default="x86_64", show_default=True, help=f"Lambda architecture: {', '.join(ARCHITECTURES)}."
)
@click.option(
    "--fhir-versions",
    default=None,
    help=f"Comma-separated FHIR versions of fhir.resources to keep ({', '.join(FHIR_VERSIONS)}); "
    "default: the ones the registered mappers declare.",
)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    help="Entry-point name of a plugin to ship (repeatable; default: every installed plugin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--progress/--no-progress", default=None, help="A progress bar [default: when stderr is a terminal]."
)
def package(
    out_dir: Path,
    python: str,
    arch: str,
    fhir_versions: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
    progress: bool | None,
) -> None:
    """Build the Lambda deployment zip: fhirpipes, the installed plugins and their dependencies,
    for the Lambda runtime's Python and architecture. Its handler is fhirpipes.handler.handler."""
    from fhirpipes.deploy.package import build_package
    from fhirpipes.progress import ProgressBar, show_bar

    _check_out_folder(out_dir)  # (build_package checks --plugin before any work)
    with ProgressBar("package", len(PACKAGE_STEPS), enabled=show_bar(progress), unit="steps") as bar:

        def log(line: str) -> None:
            bar.echo(line)
            step = next((step for start, step in _STEP_LINES.items() if line.startswith(start)), None)
            if step is not None and PACKAGE_STEPS.index(step) > bar.done:
                bar.advance(PACKAGE_STEPS.index(step) - bar.done)
            if step is not None:
                bar.describe(f"package: {step}")

        try:
            result = build_package(
                out_dir,
                python=python,
                arch=arch,
                fhir_versions=_csv(fhir_versions),
                plugins=list(plugins) or None,
                log=log,
            )
        except FhirpipesError as exc:
            _fail(str(exc))
        bar.advance(len(PACKAGE_STEPS) - bar.done)
    if as_json:  # the summary lists them; JSON readers get them on stderr too
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else result.summary())


@click.command(short_help="Print the CloudFormation template (YAML).")
@click.option(
    "--target",
    default="logs",
    show_default=True,
    help="Where each Pipe sends the FHIR events: logs (a CloudWatch Logs group per Pipe, as the "
    "original implementation does: the AWS blog article this project grows from), sqs (a queue per Pipe), eventbridge (one event bus) or fhir (the sink: a second "
    "function that writes them into a FHIR store; see --fhir-auth).",
)
@click.option(
    "--fhir-auth",
    default="sigv4",
    show_default=True,
    help="With --target fhir: sigv4 (AWS HealthLake: a HealthLakeDatastoreId parameter), secret (any "
    "FHIR server: FhirUrl and FhirSecretArn parameters) or none (FhirUrl only).",
)
@click.option(
    "--sink-timeout",
    "sink_timeout_seconds",
    type=int,
    default=60,
    show_default=True,
    help="With --target fhir: the sink's timeout (seconds; it retries 429 and 5xx within it).",
)
@click.option(
    "--package",
    "package_zip",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A zip built by `fhirpipes package`: take the runtime and architecture from it "
    "(and check it maps every table).",
)
@click.option(
    "--python",
    "python",
    default=None,
    help=f"Lambda runtime: {', '.join(PYTHON_VERSIONS)} (default 3.11, or the package's).",
)
@click.option(
    "--arch",
    default=None,
    help=f"Lambda architecture: {', '.join(ARCHITECTURES)} (default x86_64, or the package's).",
)
@click.option("--memory", "memory_mb", type=int, default=512, show_default=True, help="Function memory (MB).")
@click.option(
    "--timeout",
    "timeout_seconds",
    type=int,
    default=30,
    show_default=True,
    help="Function timeout (seconds).",
)
@click.option(
    "--max-retries",
    type=int,
    default=3,
    show_default=True,
    help="Retries of a failed batch before it goes to the dead-letter queue (-1: until it expires).",
)
@click.option(
    "--max-record-age",
    type=int,
    default=3600,
    show_default=True,
    help="Seconds after which a failing record goes to the dead-letter queue "
    "(-1: until the stream drops it, after 24 hours).",
)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    help="Entry-point name of a plugin to deploy (repeatable; default: every installed plugin).",
)
@click.option(
    "--env",
    "environment",
    multiple=True,
    metavar="NAME=VALUE",
    help="An extra environment variable of the function, e.g. a plugin's setting (repeatable).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the template to this file instead of standard output.",
)
def template(
    target: str,
    fhir_auth: str,
    sink_timeout_seconds: int,
    package_zip: Path | None,
    python: str | None,
    arch: str | None,
    memory_mb: int,
    timeout_seconds: int,
    max_retries: int,
    max_record_age: int,
    plugins: tuple[str, ...],
    environment: tuple[str, ...],
    out_file: Path | None,
) -> None:
    """Print the CloudFormation template (YAML): the shared enrichment function and one EventBridge
    Pipe per source table of the registered mappers, with least-privilege roles."""
    from fhirpipes.deploy.cloudformation import TemplateOptions, build_template, to_yaml
    from fhirpipes.deploy.package import read_manifest
    from fhirpipes.plugins import load_registry

    # The arguments first: a typo costs no registry load and no template build.
    variables = _assignments(environment)
    _check_plugins(plugins)
    if out_file is not None:
        _check_out_file(out_file)
    try:
        registry = load_registry(only=list(plugins) or None)
        if package_zip is not None:
            manifest = read_manifest(package_zip)
            for option, key, given in (("--python", "python", python), ("--arch", "architecture", arch)):
                if given is not None and given != manifest.get(key):
                    raise DeployError(f"{option} {given} differs from the package's {manifest.get(key)}")
            python = python or str(manifest.get("python"))
            arch = arch or str(manifest.get("architecture"))
            shipped = manifest.get("tables")
            shipped_tables = {str(t) for t in shipped} if isinstance(shipped, list) else set()
            missing = sorted(set(registry.tables) - shipped_tables)
            if missing:
                raise DeployError(f"the package has no mapper for table {', '.join(missing)}: rebuild it")
        options = TemplateOptions(
            python=python or "3.11",
            arch=arch or "x86_64",
            target=target,
            fhir_auth=fhir_auth,
            sink_timeout_seconds=sink_timeout_seconds,
            memory_mb=memory_mb,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_record_age_seconds=max_record_age,
            plugins=tuple(plugins),
            environment=variables,
        )
        text = to_yaml(build_template(registry.mappers, options))
    except FhirpipesError as exc:
        _fail(str(exc))
    if out_file is None:
        click.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out_file}", err=True)


def _check_out_file(out_file: Path) -> None:
    from fhirpipes.pipes.appendfile import check_writable

    try:
        check_writable(out_file, "--out")
        if not out_file.parent.is_dir():
            raise DeployError(f"--out {out_file}: the folder {out_file.parent} does not exist")
    except FhirpipesError as exc:
        raise click.ClickException(str(exc)) from exc


def _assignments(items: tuple[str, ...]) -> dict[str, str]:
    """``--env NAME=VALUE`` options as a dict; a name given twice is refused (which one was meant?)."""
    variables: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            # Only the name: the value may be a secret.
            raise click.ClickException("--env takes NAME=VALUE (no '=' found, or no name before it)")
        if name in variables:
            raise click.ClickException(f"--env {name} is given twice; give it once")
        variables[name] = value
    return variables
