"""The one way every stage calls a model: `Engine` (this package's engine module), `ChatRequest`,
`ChatResult`. Build requests from here and the engine with `Engine.from_params(params, stage)`.

The package itself imports only the request types, so a stage that reads `llm.config` (prepare_model)
does not depend on the engine's code. See docs/llm.md.
"""

from .types import ChatRequest, ChatResult

__all__ = ["ChatRequest", "ChatResult"]
