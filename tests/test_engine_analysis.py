"""What a template reads (`fhirpipes.engine.analysis`), the conformance kit's defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fhirpipes.engine.analysis import template_reads


def test_template_reads_tells_strict_from_optional_reads() -> None:
    strict, optional = template_reads("fhirpipes.templates", "practitioner.json.j2", "new")
    assert strict == ("npi",)
    assert {"lastName", "gender", "qualifications"} <= set(optional)
    assert template_reads("fhirpipes.templates", "practitioner.json.j2", "keys")[0] == ("id",)


@pytest.mark.slow
def test_neither_the_handler_nor_the_kit_imports_it_before_it_is_asked() -> None:
    code = (
        "import sys; import fhirpipes.handler, fhirpipes.testing.conformance;"
        "assert 'fhirpipes.engine.analysis' not in sys.modules;"
        "assert 'jinja2' not in sys.modules, sorted(m for m in sys.modules if m.startswith('jinja2'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
