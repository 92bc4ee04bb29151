"""distillery: a reproducible dataset factory for LLM fine-tuning."""

__version__ = "0.1.0"
