"""No command ends in a traceback: bad arguments and bad files give one ``Error:`` line, non-zero.

Every command of the group is run (in a subprocess, as a user runs it) with the cases of `CASES`;
a command missing from `CASES` fails `test_every_command_has_bad_input_cases`, so a new command
is covered from its first day. Each is also run with an option that doesn't exist.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from fhirpipes.cli import EXIT_INTERRUPTED, LazyGroup, explain, main
from fhirpipes.extras import checkout, install_command, missing_module_hint

SECRET = "SSN-078-05-1120"  # in every bad file: no message may show it
ROOT = Path(__file__).resolve().parents[1]

# Placeholders in CASES, replaced by paths in the scratch folder.
MISSING, FOLDER, NOT_JSON, DEEP, A_FILE = "<missing>", "<folder>", "<not-json>", "<deep>", "<file>"
EXPORT_NOT_JSON, EXPORT_DEEP = "<export-not-json>", "<export-deep>"  # manifests
UNREADABLE = "<unreadable>"  # chmod 000; root reads anything, so as root: /proc/self/mem (EIO)

CASES: dict[str, list[list[str]]] = {
    "backfill": [
        [],
        [MISSING, "--out", "<out>"],
        [FOLDER, "--out", "<out>"],
        [NOT_JSON, "--out", "<out>"],
        [EXPORT_NOT_JSON, "--out", "<out>"],
        [EXPORT_DEEP, "--out", "<out>"],
        [FOLDER, "--out", "<out>", "--target", "fhir:http://127.0.0.1:9"],
        [FOLDER, "--out", "<out>", "--segments", "0"],
    ],
    "conformance": [["no-such-plugin"], ["-k", "no-check-has-this-name"]],
    "demo": [["--max-seconds", "0"], ["--fhir-url", "ftp://127.0.0.1:9/x"]],
    "map": [[MISSING], [FOLDER], [UNREADABLE], [NOT_JSON], [DEEP], [A_FILE, "--indent", "-1"]],
    "new": [
        ["fhirpipes_", "--table", "Things", "--resource", "Observation", "--dir", "<out>"],
        ["things", "--table", "Things", "--resource", "Resource", "--dir", "<out>"],
        ["things", "--table", "Things", "--resource", "Observation", "--dir", A_FILE],
        ["things", "--table", "Things"],
    ],
    "package": [
        ["--out", A_FILE],
        ["--out", A_FILE + "/sub"],
        ["--plugin", "nope"],
        ["--python", "2.7", "--out", "<out>"],
    ],
    "plugins": [["--json", "extra-argument"]],
    "run": [
        ["--checkpoint", FOLDER],
        ["--checkpoint", NOT_JSON, "--once"],
        ["--checkpoint", DEEP, "--once"],
        ["--input-template", "@" + FOLDER],
        ["--target", "file:" + FOLDER],
        ["--input-template", "@" + MISSING],
        ["--embedded", "--region", "eu-west-1"],
        ["--table", "NoSuchTable", "--embedded", "--max-seconds", "0"],
    ],
    "template": [
        ["--out", "/nonexistent/folder/template.yaml"],
        ["--out", FOLDER],
        ["--package", MISSING],
        ["--package", NOT_JSON],
        ["--package", FOLDER],
        ["--env", "A=1", "--env", "A=2"],
        ["--plugin", "nope"],
    ],
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad-input")
    (root / "folder").mkdir()
    (root / "not.json").write_text(f"{SECRET} is not JSON\n")
    (root / "deep.json").write_text("[" * 3000 + f'"{SECRET}"' + "]" * 3000)
    (root / "file.txt").write_text(SECRET)
    for name, text in (("export-not-json", f"{SECRET}\n"), ("export-deep", (root / "deep.json").read_text())):
        (root / name / "data").mkdir(parents=True)
        (root / name / "manifest-summary.json").write_text(text)
        (root / name / "manifest-files.json").write_text(text)
    unreadable = root / "unreadable.json"
    unreadable.write_text(f'["{SECRET}"]')
    unreadable.chmod(0)
    if os.access(unreadable, os.R_OK):  # root
        unreadable = Path("/proc/self/mem")
    return {
        MISSING: str(root / "missing.json"),
        FOLDER: str(root / "folder"),
        NOT_JSON: str(root / "not.json"),
        DEEP: str(root / "deep.json"),
        A_FILE: str(root / "file.txt"),
        EXPORT_NOT_JSON: str(root / "export-not-json"),
        EXPORT_DEEP: str(root / "export-deep"),
        UNREADABLE: str(unreadable),
        "<out>": str(root / "out"),
        "<cwd>": str(root),
    }


def cli(*args: str, prelude: str = "", cwd: str | None = None, env: dict[str, str] | None = None) -> Any:
    """``fhirpipes ARGS`` in a fresh interpreter (``prelude`` runs first, e.g. an import blocker)."""
    code = f"{prelude}\nimport sys\nsys.argv[0] = 'fhirpipes'\nfrom fhirpipes.cli import main\nmain()\n"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FHIRPIPES_", "AWS_"))}
    environment.update({"AWS_EC2_METADATA_DISABLED": "true", "COLUMNS": "80", **(env or {})})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_one_error_line(result: Any) -> str:
    """The run failed with exactly one ``Error:`` line, no traceback and no record value."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert SECRET not in output
    return errors[0]


def all_cases() -> list[tuple[str, list[str]]]:
    cases = [(command, args) for command, argument_lists in CASES.items() for args in argument_lists]
    cases += [(command, ["--no-such-option"]) for command in CASES]
    return cases


@pytest.fixture(scope="module")
def results(scratch: dict[str, str]) -> dict[str, Any]:
    """Every case, run a few at a time (each is a fresh interpreter: ~0.3 s)."""

    def run(number: int, case: tuple[str, list[str]]) -> Any:
        command, args = case
        paths = {**scratch, "<out>": f"{scratch['<out>']}-{number}"}  # one each: they run at once
        return cli(command, *(fill(arg, paths) for arg in args), cwd=scratch["<cwd>"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(run, *zip(*enumerate(all_cases()), strict=True))
        return {case_id(case): result for case, result in zip(all_cases(), done, strict=True)}


def fill(arg: str, scratch: dict[str, str]) -> str:
    for placeholder, path in scratch.items():
        arg = arg.replace(placeholder, path)
    return arg


def case_id(case: tuple[str, list[str]]) -> str:
    return " ".join([case[0], *case[1]])


def test_every_command_has_bad_input_cases() -> None:
    with click.Context(main) as ctx:
        assert sorted(CASES) == main.list_commands(ctx)


@pytest.mark.slow
@pytest.mark.parametrize("case", all_cases(), ids=case_id)
def test_bad_input_gives_one_error_line(case: tuple[str, list[str]], results: dict[str, Any]) -> None:
    assert_one_error_line(results[case_id(case)])


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ({"boto3", "botocore"}, ["run", "--once", "--region", "us-east-1"], "aws"),
        ({"yaml"}, ["template"], "deploy"),
        ({"moto"}, ["demo"], "local"),
        ({"moto"}, ["run", "--embedded", "--once"], "local"),
    ],
)
def test_a_missing_extra_names_the_exact_install_command(
    blocked: set[str], args: list[str], extra: str, tmp_path: Path
) -> None:
    result = cli(*args, prelude=BLOCKER.format(blocked=blocked), cwd=str(tmp_path))
    line = assert_one_error_line(result)
    module = sorted(blocked)[0]
    assert line == f"Error: {missing_module_hint(module)}"
    assert line.endswith(install_command(extra))
    assert f"-m pip install -e '{ROOT}[{extra}]'" in line  # this test runs from the checkout


@pytest.mark.slow
def test_template_needs_only_the_deploy_extra(tmp_path: Path) -> None:
    result = cli("template", prelude=BLOCKER.format(blocked={"boto3", "botocore", "moto"}), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "AWSTemplateFormatVersion" in result.stdout


@pytest.mark.slow
def test_a_second_ctrl_c_exits_130(tmp_path: Path) -> None:
    prelude = textwrap.dedent(
        """
        import os, signal, click
        from fhirpipes.cli import main as group
        from fhirpipes.pipes.cli import stop_on_interrupt

        class Runner:
            stopping = False
            class status:
                clear = staticmethod(lambda: None)
            def stop(self):
                self.stopping = True

        @group.command("interrupt-twice")
        def interrupt_twice():
            with stop_on_interrupt(Runner()):
                os.kill(os.getpid(), signal.SIGINT)  # asks the run to stop
                os.kill(os.getpid(), signal.SIGINT)  # aborts
                signal.pause()  # not reached: the handler raised
        """
    )
    result = cli("interrupt-twice", prelude=prelude, cwd=str(tmp_path))
    assert result.returncode == EXIT_INTERRUPTED, result.stderr
    assert result.stderr.splitlines()[-1] == "interrupted"
    assert "Traceback" not in result.stderr


def failing_group(exc: BaseException) -> click.Group:
    group = LazyGroup()

    @group.command()
    def boom() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            ValueError(SECRET),
            "Error: internal error (ValueError); rerun with FHIRPIPES_DEBUG=1 for the traceback",
        ),
        (
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.ndjson"),
            "Error: /data/out.ndjson: No space left on device",
        ),
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/a", None, "/b"),
            "Error: /a -> /b: Permission denied",
        ),
        (OSError(SECRET), "Error: OSError"),
        (TimeoutError(errno.ETIMEDOUT, None), "Error: TimeoutError (ETIMEDOUT)"),
        (RecursionError(SECRET), "Error: the input is nested too deeply to process"),
        (
            ModuleNotFoundError("No module named 'pyspark'", name="pyspark"),
            "Error: this needs the 'spark' extra",
        ),
    ],
)
def test_what_escapes_a_command_is_one_line_without_its_message(exc: BaseException, line: str) -> None:
    result = CliRunner().invoke(failing_group(exc), ["boom"])
    assert result.exit_code == 1
    assert result.stderr.startswith(line)
    assert result.stderr.count("\n") == 1
    assert SECRET not in result.output


def test_fhirpipes_debug_shows_the_traceback() -> None:
    result = CliRunner(env={"FHIRPIPES_DEBUG": "1"}).invoke(failing_group(ValueError("why")), ["boom"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ValueError: why" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: internal error (ValueError)")


def test_ctrl_c_exits_130_with_one_line() -> None:
    result = CliRunner().invoke(failing_group(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr == "interrupted\n"


def test_the_install_command_follows_how_fhirpipes_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert checkout() == ROOT  # the test environment is an editable install of this checkout
    assert install_command("aws") == f"{sys.executable} -m pip install -e '{ROOT}[aws]'"
    assert install_command(None) == f"{sys.executable} -m pip install -e {ROOT}"
    monkeypatch.setattr("fhirpipes.extras.checkout", lambda: None)
    assert install_command("local") == f"{sys.executable} -m pip install 'fhirpipes[local]'"
    assert explain(ModuleNotFoundError(name="yaml")).endswith("pip install 'fhirpipes[deploy]'")


def test_the_extras_table_names_only_extras_that_exist() -> None:
    import tomllib

    from fhirpipes.extras import MODULE_EXTRAS

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert {extra for extra in MODULE_EXTRAS.values() if extra} <= extras
