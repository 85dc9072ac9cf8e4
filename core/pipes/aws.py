"""Where the local Pipe's AWS clients point: the embedded server, another endpoint, or AWS itself.

Nothing but boto3 talks to AWS, and boto3 is imported inside the functions that need it: the
Lambda handler never imports this module, and ``fhirpipes map`` doesn't pay for boto3.

With the embedded server, clients get dummy credentials and ``us-east-1`` explicitly, and a
botocore session that reads neither ``~/.aws/config`` nor ``~/.aws/credentials`` nor
``AWS_PROFILE``: a demo on a laptop never picks up (or needs) the user's real account.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any

from fhirpipes.errors import ConfigurationError

EMBEDDED_REGION = "us-east-1"
# moto accepts any keys; these only have to be well-formed.
_DUMMY_KEY_ID = "AKIAFHIRPIPESLOCAL00"
_DUMMY_SECRET = "fhirpipes-embedded-dummy-secret"


@dataclasses.dataclass(frozen=True)
class AwsConfig:
    """How to build boto3 clients.

    Args:
        endpoint_url: the endpoint for every client (``None``: boto3's own resolution, which
            also honours ``AWS_ENDPOINT_URL``).
        region: the region (``None``: boto3's resolution: ``AWS_REGION``, the profile, ...).
        profile: a named profile of the user's AWS configuration.
        isolated: use dummy credentials and ignore the user's AWS configuration (the embedded
            server).
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    isolated: bool = False

    @classmethod
    def embedded(cls, endpoint_url: str) -> AwsConfig:
        """Clients for the embedded server: its endpoint, dummy credentials, ``us-east-1``."""
        return cls(endpoint_url=endpoint_url, region=EMBEDDED_REGION, isolated=True)

    def with_endpoint(self, endpoint_url: str | None) -> AwsConfig:
        """The same settings with another endpoint (``None`` keeps this one)."""
        return self if endpoint_url is None else dataclasses.replace(self, endpoint_url=endpoint_url)

    def session(self) -> Any:
        """A `boto3.session.Session` for these settings."""
        # Lazy (see the module docstring), and through importlib: boto3 ships no type hints.
        boto3 = importlib.import_module("boto3")
        botocore_session = importlib.import_module("botocore.session")

        if self.isolated:
            # session_vars replace where botocore looks: no env var, no file, no profile.
            isolated = botocore_session.Session(
                session_vars={
                    "profile": (None, None, None, None),
                    "config_file": (None, None, os.devnull, None),
                    "credentials_file": (None, None, os.devnull, None),
                }
            )
            return boto3.session.Session(
                botocore_session=isolated,
                aws_access_key_id=_DUMMY_KEY_ID,
                aws_secret_access_key=_DUMMY_SECRET,
                region_name=self.region or EMBEDDED_REGION,
            )
        try:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
            raise ConfigurationError(f"can't use the AWS profile: {type(exc).__name__}") from exc

    def client(self, service: str, session: Any = None) -> Any:
        """A boto3 client for ``service`` (``dynamodb``, ``dynamodbstreams``, ``logs``, ``sqs``)."""
        session = session or self.session()
        if not session.region_name:
            raise ConfigurationError(
                "no AWS region: pass --region, set AWS_REGION, or configure one in your profile"
            )
        return session.client(service, endpoint_url=self.endpoint_url)
