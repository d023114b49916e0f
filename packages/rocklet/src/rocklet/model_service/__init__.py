"""ModelService inside the sandbox: an OpenAI-compatible endpoint for agents whose every request the trainer
answers (`local`) or a real model answers (`proxy`). `service` holds one; `agent_api` is what agents call;
`turns` parks requests; `logfile` keeps upstream's request/response markers; `anti_call` is the in-sandbox
client of the file channel."""

from rocklet.model_service.service import ModelService, ModelServiceError

__all__ = ["ModelService", "ModelServiceError"]
