"""The `fhirpipes` command line: plugins, map, and the lazily loaded subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpipes.cli import LAZY_COMMANDS, main
from fhirpipes.testing.stream import make_record

ITEM = {"id": "abc", "firstName": "John", "lastName": "Smith", "birthDate": "07-13-1991"}


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_plugins_lists_the_builtins_as_json() -> None:
    code, out, _ = run("plugins", "--json")
    assert code == 0
    listing = {plugin["name"]: plugin for plugin in json.loads(out)}
    [patients] = listing["patient"]["mappers"]
    assert patients["table"] == "Patients"
    assert patients["resourceType"] == "Patient"
    assert patients["fhirVersion"] == "R4B"
    assert patients["pipe"]["filters"] == [{"eventName": ["INSERT", "MODIFY", "REMOVE"]}]
    assert listing["practitioner"]["mappers"][0]["table"] == "Practitioners"


def test_plugins_prints_a_table() -> None:
    code, out, _ = run("plugins")
    assert code == 0
    assert "Patients" in out and "-> Patient (R4B)" in out


def test_map_reads_a_file(tmp_path: Path) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([make_record("Patients", ITEM)]))
    code, out, _ = run("map", str(batch))
    assert code == 0
    [event] = json.loads(out)
    assert event["details"]["entity"]["birthDate"] == "1991-07-13"


def test_map_reads_stdin_in_any_accepted_shape() -> None:
    code, out, _ = run("map", "-", input=json.dumps({"Records": [make_record("Patients", ITEM)]}))
    assert code == 0
    assert json.loads(out)[0]["eventType"] == "PatientChange"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "is not JSON"),
        ('"a string"', "must be a list of DynamoDB stream records"),
        ("\udcff", "can't read"),
    ],
)
def test_unreadable_input_exits_non_zero_with_one_line(text: str, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = run("map", str(path))
    assert code == 1
    assert out == ""
    assert reason in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_file_is_refused() -> None:
    code, _, err = run("map", "/no/such/file.json")
    assert code == 2
    assert "No such file" in err or "does not exist" in err


def test_map_never_echoes_record_values_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('{"eventID": "x", "SECRET-PHI-VALUE": ')
    code, _, err = run("map", str(path))
    assert code == 1
    assert "SECRET-PHI-VALUE" not in err


def test_every_lazy_command_resolves() -> None:
    for name in LAZY_COMMANDS:
        code, out, _ = run(name, "--help")
        assert code == 0, name
        assert "Usage:" in out


def test_map_writes_a_record_holding_a_lone_surrogate(tmp_path: Path) -> None:
    record = make_record("Patients", {"id": "abc", "lastName": "\ud800"})
    source = tmp_path / "batch.json"
    source.write_text(json.dumps([record]))  # ASCII: json writes the surrogate as its escape
    result = CliRunner().invoke(main, ["map", str(source)])
    assert result.exit_code == 3, result.output  # the surrogate is no FHIR string: an error event
    [event] = json.loads(result.stdout)
    assert event["details"]["record"]["dynamodb"]["NewImage"]["lastName"] == {"S": "\ud800"}


BROKEN = {"id": "p-2", "birthDate": "31-31-1990"}  # not a date: an error event


@pytest.mark.parametrize(
    ("items", "on_error", "code", "summary"),
    [
        ([ITEM], "emit", 0, None),
        ([ITEM, BROKEN], "emit", 3, "1 of 2 records failed (exit status 3)"),
        ([BROKEN], "emit", 3, "1 of 1 record failed (exit status 3)"),
        ([ITEM, BROKEN], "drop", 3, "1 of 2 records failed (exit status 3)"),  # no event says so
        ([ITEM, BROKEN], "raise", 1, None),
    ],
)
def test_map_exits_3_when_some_records_failed(
    items: list[dict[str, str]],
    on_error: str,
    code: int,
    summary: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fhirpipes.handler
    from fhirpipes.dispatch import Dispatcher
    from fhirpipes.plugins import load_registry
    from fhirpipes.settings import Settings

    settings = Settings.from_env({"FHIRPIPES_ON_ERROR": on_error})
    monkeypatch.setattr(fhirpipes.handler, "dispatcher", Dispatcher(load_registry(), settings))
    batch = json.dumps([make_record("Patients", item) for item in items])
    exit_code, out, err = run("map", "-", "--indent", "0", input=batch)
    assert exit_code == code, err
    lines = [line for line in err.splitlines() if not line.startswith("{")]  # the JSON log lines aside
    if summary is not None:
        assert lines == [summary]
        assert len(json.loads(out)) == (len(items) if on_error == "emit" else len(items) - 1)
    elif code == 1:
        assert len(lines) == 1 and lines[0].startswith("Error: ")
    else:
        assert lines == []
