"""``fhirpipes new NAME --table TABLE --resource TYPE``: start a mapper plugin project."""

from __future__ import annotations

import shlex
import sys
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
    help="Where to write the project (default: ./NAME with - for _, or beside the git checkout "
    "the current folder is in); must not exist or be empty.",
)
def new(
    name: str, table: str, resource_type: str, fhir_version: str, key: str, directory: Path | None
) -> None:
    """Write a new mapper plugin project NAME (its Python package name): pyproject with the
    entry point, mapper module, a template with the resource's required elements, sample
    items, a test module running the conformance kit, and a README.

    Without --dir it writes ./NAME (with - for _), or, when the current folder is inside a git
    checkout, beside that checkout: a plugin is a project of its own, and inside another one
    it would be linted and tested as part of it."""
    from fhirpipes.scaffold.generate import ScaffoldError, plan, write

    try:
        project = plan(name, table, resource_type, fhir_version=fhir_version, key=key)
        if directory is not None:
            target = directory
        else:
            target = Path(project.distribution)
            checkout = git_work_tree(Path.cwd())
            if checkout is not None:
                target = outside_git(checkout) / project.distribution
                click.echo(
                    f"the current folder is inside the git checkout {checkout}: writing beside it, "
                    "to a folder of its own (--dir chooses another)",
                    err=True,
                )
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
    # This interpreter's pip and pytest: the plugin must land where fhirpipes is installed.
    python = shlex.quote(sys.executable)
    folder = shlex.quote(str(target))
    click.echo(
        f"next: {python} -m pip install -e {shlex.quote(f'{target}[test]')} && "
        f"(cd {folder} && {python} -m pytest) && {python} -m fhirpipes conformance {project.entry_point}"
    )


def git_work_tree(folder: Path) -> Path | None:
    """The top folder of the git work tree ``folder`` is in (a ``.git`` folder or file), or None."""
    for candidate in (folder.resolve(), *folder.resolve().parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def outside_git(checkout: Path) -> Path:
    """The nearest folder above ``checkout`` that no git work tree holds."""
    folder = checkout.parent
    while (above := git_work_tree(folder)) is not None and above != above.parent:
        folder = above.parent
    return folder
