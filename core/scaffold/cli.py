"""``fhirpipes new NAME --table TABLE --resource TYPE``: start a mapper plugin project."""

from __future__ import annotations

from pathlib import Path

import click

from fhirpipes.mapper import FHIR_VERSIONS


@click.command(short_help="Start a new mapper plugin project.")
@click.argument("name")
@click.option("--table", required=True, help="The DynamoDB table the plugin maps.")
@click.option("--resource", "resource_type", required=True, help="The FHIR resource type it produces.")
@click.option(
    "--fhir-version", type=click.Choice(FHIR_VERSIONS), default="R4B", show_default=True, help="FHIR version."
)
@click.option("--key", default="id", show_default=True, help="The table's partition key attribute.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the project (default: ./NAME with - for _); must not exist or be empty.",
)
def new(
    name: str, table: str, resource_type: str, fhir_version: str, key: str, directory: Path | None
) -> None:
    """Write a new mapper plugin project NAME (its Python package name): pyproject with the
    entry point, mapper module, a template with the resource's required elements, sample
    items, a test module running the conformance kit, and a README."""
    from fhirpipes.scaffold.generate import ScaffoldError, plan, write

    try:
        project = plan(name, table, resource_type, fhir_version=fhir_version, key=key)
        target = directory if directory is not None else Path(project.distribution)
        written = write(project, target)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {project.distribution} to {target}:")
    for path in written:
        click.echo(f"  {path.relative_to(target)}")
    if project.unfilled:
        click.echo(
            f"fill in by hand (required, of types the scaffold doesn't write): {', '.join(project.unfilled)} "
            f"in src/{project.package}/{project.template_name}"
        )
    click.echo(
        f"next: pip install -e '{target}[test]' && (cd {target} && pytest) && "
        f"fhirpipes conformance {project.entry_point}"
    )
