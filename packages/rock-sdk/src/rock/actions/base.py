"""Base classes for the wire models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A request or response body. Unknown fields are ignored, so newer and older peers interoperate."""

    model_config = ConfigDict(extra="ignore")


class SandboxRequest(WireModel):
    """A request body the admin may address to a sandbox.

    Upstream ROCK's rocklet requires a non-blank `sandbox_id` in every body; ours accepts it and never needs it.
    """

    sandbox_id: str | None = None
