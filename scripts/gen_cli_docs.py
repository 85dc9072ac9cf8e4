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
