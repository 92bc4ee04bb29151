"""LLM generation stages: distill, multiturn, scenarios, completion, preferences, score (and the judge)."""
