"""The optional dependencies: which pyproject extra brings which module, and how to install it.

`MODULE_EXTRAS` is the one table of it (the CLI's missing-module hint and the embedded server's
hint read it); `install_command` writes the command for how fhirpipes itself was installed:

* from a checkout (an editable install, PEP 610's ``direct_url.json`` says ``dir_info.editable``):
  this interpreter's pip with the checkout's extra, ``/venv/bin/python -m pip install -e '/src[aws]'``
  (fhirpipes is not on a package index, so ``pip install 'fhirpipes[aws]'`` would fail there);
* otherwise: this interpreter's pip with the extra, ``/venv/bin/python -m pip install 'fhirpipes[aws]'``.
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import sys
import urllib.parse
import urllib.request
from pathlib import Path

DISTRIBUTION = "fhirpipes"

MODULE_EXTRAS: dict[str, str | None] = {
    # aws: the AWS SDK (on the Lambda runtime already): run, backfill, the sink's queue and SigV4.
    "boto3": "aws",
    "botocore": "aws",
    "s3transfer": "aws",
    # local: the embedded DynamoDB, Streams, S3 and CloudWatch Logs (moto's server mode): demo, run --embedded.
    "moto": "local",
    "flask": "local",
    "werkzeug": "local",
    # deploy: template writes YAML.
    "yaml": "deploy",
    # spark: backfill --engine spark.
    "pyspark": "spark",
    # docs: the documentation site (make docs).
    "mkdocs": "docs",
    # test: the kit's independent checks and the test suite.
    "cfnlint": "test",
    "jsonschema": "test",
    "fhirpathpy": "test",
    "pytest": "test",
    "hypothesis": "test",
    "awslambdaric": "test",
    # fhirpipes' own dependencies (None: reinstalling fhirpipes brings them back).
    "click": None,
    "fhir": None,
    "jinja2": None,
    "orjson": None,
    "pluggy": None,
    "pydantic": None,
    "rich": None,
}
"""Top-level module -> the extra that installs it (None: fhirpipes' required dependencies)."""


def extra_of(module: str) -> str | None:
    """The extra that installs ``module`` (a dotted name is looked up by its top level).

    Raises:
        KeyError: for a module no extra of fhirpipes installs (a plugin's own dependency).
    """
    return MODULE_EXTRAS[module.partition(".")[0]]


def checkout() -> Path | None:
    """The source folder fhirpipes is installed from in editable mode, or None (a wheel, an index)."""
    # Every match, not distribution(): from the checkout's folder, its build's egg-info (which
    # has no direct_url.json) can come first on sys.path.
    texts = [d.read_text("direct_url.json") for d in importlib.metadata.distributions(name=DISTRIBUTION)]
    text = next((t for t in texts if t), None)
    try:
        direct = json.loads(text) if text else {}
    except ValueError:
        return None
    url = direct.get("url", "") if isinstance(direct, dict) else ""
    editable = isinstance(direct, dict) and direct.get("dir_info", {}).get("editable", False)
    if not editable or not isinstance(url, str) or not url.startswith("file:"):
        return None
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def install_command(extra: str | None) -> str:
    """The shell command that installs ``extra`` (None: fhirpipes itself) for this installation."""
    python = shlex.quote(sys.executable)
    suffix = f"[{extra}]" if extra else ""
    source = checkout()
    if source is not None:
        return f"{python} -m pip install -e {shlex.quote(f'{source}{suffix}')}"
    return f"{python} -m pip install {shlex.quote(f'{DISTRIBUTION}{suffix}')}"


def missing_module_hint(module: str) -> str:
    """One line for a ModuleNotFoundError of ``module``: what is missing and the install command."""
    top = module.partition(".")[0]
    try:
        extra = extra_of(top)
    except KeyError:
        return f"the module {top} is not installed (a plugin's dependency? install it with pip)"
    if extra is None:
        return f"the module {top}, which fhirpipes requires, is not installed: {install_command(None)}"
    return f"this needs the '{extra}' extra (the module {top} is not installed): {install_command(extra)}"
