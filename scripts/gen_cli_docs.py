"""Write docs/cli.md, the command-line reference, from the click commands themselves.

python scripts/gen_cli_docs.py          # rewrite docs/cli.md
python scripts/gen_cli_docs.py --check  # exit 1 if it is out of date (tests/test_docs.py does this)
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

from fhirpipes.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# Command line

`fhirpipes --help` lists the commands, `fhirpipes COMMAND --help` explains one. This page is generated from
the commands themselves (`scripts/gen_cli_docs.py`; a test keeps it current).

## Extras: what each command needs

| extra | brings | for |
| --- | --- | --- |
| (none) | fhir.resources, Jinja, click, rich, ... | `map`, `plugins`, `new`, `conformance`, `package` (runs pip) |
| `aws` | boto3 | `run` and `backfill` against AWS; the sink's `sigv4`/`secret` auth |
| `local` | boto3, moto (server mode) | `demo`, `run --embedded`, `backfill` from the embedded S3 |
| `deploy` | PyYAML | `template` |
| `spark` | pyspark 3.5.4 | `backfill --engine spark`, the Glue entry point |
| `docs` | mkdocs, mkdocs-material | `make docs` |
| `test` | all of the above, pytest, ... | `make test` |

From a checkout, install an extra with the venv's pip: `.venv/bin/python -m pip install -e '.[local]'`
(fhirpipes is not on a package index). A command that lacks one says so in one line, with that exact
command for how fhirpipes was installed.

## Exit status

| status | meaning |
| --- | --- |
| 0 | done: every record mapped or skipped |
| 1 | an error stopped it (one `Error:` line; `FHIRPIPES_DEBUG=1` shows an internal error's traceback) |
| 2 | a usage error (an unknown option, a bad value) |
| 3 | finished, but some records failed: error events (`map`, `backfill`), or dropped with `FHIRPIPES_ON_ERROR=drop` (`map`) |
| 130 | interrupted (Ctrl-C; a second Ctrl-C in `run` aborts at once) |

`fhirpipes conformance` exits 1 when a check fails or when nothing was checked (`-k` matched no check).
`fhirpipes new` run inside a git checkout writes the project beside it, unless `--dir` says otherwise.
On a terminal, long commands show a progress bar on stderr: `fhirpipes package` (its steps: install,
trim, compile, zip), `fhirpipes conformance` (checks done), `fhirpipes backfill` (items, rate, errors,
ETA) and `fhirpipes map` of more than 1,000 records; `--progress/--no-progress` forces it on or off. In a
pipe, a file or CI there is no bar and no escape code. `fhirpipes conformance` prints each check's row as
it finishes, then each cause of failure once (a broken template: one line, "12 checks failed: template
x.json.j2, line 4: ..."), then a summary. `fhirpipes run` and `fhirpipes demo` write log lines for people
on a terminal (time, level, message, the fields as key=value, coloured by level) and JSON lines otherwise;
`--log-format text|json` chooses. Colour follows the terminal and [NO_COLOR](https://no-color.org).

No command prints a traceback: bad input, a missing file or extra, a full disk each give one `Error:`
line that says where and why, never a record value.
"""


def render() -> str:
    """The reference page: every command, its usage, its help and every option."""
    context = click.Context(main, info_name="fhirpipes")
    parts = [INTRO]
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        assert command is not None
        sub = click.Context(command, info_name=name, parent=context)
        parts.append(f"\n## `fhirpipes {name}`\n\n```text\n{command.get_usage(sub)}\n```\n")
        parts.append(f"\n{inspect.cleandoc(command.help or '')}\n")
        rows = []
        for parameter in command.get_params(sub):
            record = parameter.get_help_record(sub)
            if record is None or not isinstance(parameter, click.Option):
                continue
            names, text = record
            cell = text.replace("|", "\\|")
            rows.append(f"| `{names}` | {cell} |")
        if rows:
            parts.append("\n| option | what it does |\n| --- | --- |\n" + "\n".join(rows) + "\n")
    return "".join(parts)


def main_() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        return 0 if DOCS.read_text(encoding="utf-8") == text else 1
    DOCS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
