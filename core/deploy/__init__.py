"""Deploying the shared enrichment Lambda: ``fhirpipes package`` and ``fhirpipes template``.

`fhirpipes.deploy.package` builds the deployment zip (fhirpipes, the installed plugins and
their dependencies, for the Lambda runtime's Python and architecture; its steps are `contents`,
`install`, `bytecode`, `distinfo` and `archive`; the Lambda facts, `runtime`);
`fhirpipes.deploy.cloudformation` writes the CloudFormation template (the function and one
EventBridge Pipe per source table). Neither is imported by the Lambda handler.
"""

from __future__ import annotations

from fhirpipes.errors import DeployError

__all__ = ["DeployError"]
