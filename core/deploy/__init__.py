"""Deploying the shared enrichment Lambda: ``fhirpipes package`` and ``fhirpipes template``.

`fhirpipes.deploy.package` builds the deployment zip (fhirpipes, the installed plugins and
their dependencies, for the Lambda runtime's Python and architecture);
`fhirpipes.deploy.cloudformation` writes the CloudFormation template (the function and one
EventBridge Pipe per source table). Neither is imported by the Lambda handler.
"""

from __future__ import annotations

from fhirpipes.errors import FhirpipesError


class DeployError(FhirpipesError):
    """The package or template can't be built as asked; the message is one line saying why."""


__all__ = ["DeployError"]
