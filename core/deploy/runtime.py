"""What AWS Lambda's Python runtimes are: the facts the package and the template both depend on."""

from __future__ import annotations

HANDLER = "fhirpipes.handler.handler"
"""The enrichment function's handler setting."""
PYTHON_VERSIONS: tuple[str, ...] = ("3.11", "3.12", "3.13")
"""The Lambda Python runtimes fhirpipes can be packaged for."""
ARCHITECTURES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
"""Lambda architecture -> the machine name in wheel platform tags."""
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
"""Lambda's limit for a zip uploaded directly (50 MB)."""
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
"""Lambda's limit for the unzipped function and its layers (250 MB; "must be smaller than 262144000")."""


def wheel_platforms(python: str, arch: str) -> list[str]:
    """The wheel platform tags that install on the Lambda runtime ``python`` on ``arch``."""
    machine = ARCHITECTURES[arch]
    platforms = [f"manylinux2014_{machine}"]
    if python != "3.11":
        # python3.12 and later run on Amazon Linux 2023 (glibc 2.34).
        platforms.append(f"manylinux_2_28_{machine}")
    return platforms
