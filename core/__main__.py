"""``python -m fhirpipes``: the same command line as ``fhirpipes``."""

from fhirpipes.cli import main

main()
