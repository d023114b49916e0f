"""`sandbox.agent.model_service`: the sandbox's OpenAI-compatible endpoint and the trainer's channel to it."""

from rock.actions import SESSION_END, ModelServiceConfig, ModelServiceStatus, ModelTurn
from rock.sdk.sandbox.model_service.base import ModelService, chat_completion

__all__ = [
    "SESSION_END",
    "ModelService",
    "ModelServiceConfig",
    "ModelServiceStatus",
    "ModelTurn",
    "chat_completion",
]
