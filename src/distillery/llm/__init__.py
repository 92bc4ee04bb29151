"""The one way every stage calls a model: `Engine`, `ChatRequest`, `ChatResult`.

    from distillery.llm import Engine, ChatRequest
    engine = Engine.from_params(params, stage="distill")
    results = engine.run([ChatRequest(teacher="local-smollm2", messages=[...])])

See docs/llm.md. `Engine` is imported lazily so importing the request types stays cheap.
"""

from .types import ChatRequest, ChatResult

__all__ = ["Engine", "ChatRequest", "ChatResult"]


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)
