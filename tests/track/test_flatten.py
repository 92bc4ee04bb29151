"""What may leave the machine: params flattened with secrets redacted, metrics numeric only."""

from distillery.track.config import TrackingParams
from distillery.track.flatten import REDACTED, flatten_metrics, flatten_params, key_is_secret, redact_text

WORDS = TrackingParams().secret_key_parts


def test_params_are_flattened_and_secret_keys_redacted(monkeypatch):
    monkeypatch.setenv("DISTILLERY_TEST_API_KEY", "live-key-0123456789abcdef")
    params = {"teachers": {"gpt": {"model": "gpt-4o-mini", "api_key_env": "DISTILLERY_TEST_API_KEY",
                                   "api_key": "whatever", "gen": {"max_tokens": 512, "temperature": 0.7}}},
              "hf_token": "abc", "db_password": "hunter2", "threshold": 0.8, "stop": None, "dry": True,
              "note": "uses live-key-0123456789abcdef inline", "endpoint": "https://bob:pw123456@example.com/v1"}
    flat = flatten_params(params, WORDS)
    assert flat["teachers.gpt.model"] == "gpt-4o-mini"
    assert flat["teachers.gpt.gen.max_tokens"] == "512"          # max_tokens is not a secret
    assert flat["teachers.gpt.api_key_env"] == "DISTILLERY_TEST_API_KEY"   # a NAME is fine
    assert flat["teachers.gpt.api_key"] == REDACTED
    assert flat["hf_token"] == REDACTED and flat["db_password"] == REDACTED
    assert flat["threshold"] == "0.8" and flat["stop"] == "null" and flat["dry"] == "true"
    assert "live-key-0123456789abcdef" not in flat["note"]
    assert "pw123456" not in flat["endpoint"] and "example.com" in flat["endpoint"]


def test_env_key_holding_a_value_instead_of_a_name_is_redacted():
    flat = flatten_params({"api_key_env": "sk-abc def"}, WORDS)
    assert flat["api_key_env"] == REDACTED


def test_secret_key_detection_uses_whole_words():
    assert key_is_secret("llm.teachers.x.api_key", WORDS)
    assert key_is_secret("remote.access_token", WORDS)
    assert not key_is_secret("stats.max_tokens", WORDS)
    assert not key_is_secret("llm.teachers.x.api_key_env", WORDS)
    assert not key_is_secret("dedup.author_field", WORDS)


def test_credential_shapes_are_redacted_from_text():
    text = redact_text("key sk-proj-ABCDEFGHIJKLMNOPQRST and hf_abcdefghijklmnopqrstuvwx here", [])
    assert "sk-proj" not in text and "hf_abc" not in text and text.count(REDACTED) == 2


def test_metrics_keep_numbers_under_dotted_keys():
    m = flatten_metrics({"records_in": 10, "rejects": {"too_long": 3, "by": {"x y": 1}}, "ok": True,
                         "teacher": "gpt", "hist": [1, 2.5], "long": list(range(100)), "nan": float("nan"),
                         "judge": {"overall": {"mean": 7.5, "p50": 8}}})
    assert m == {"records_in": 10.0, "rejects.too_long": 3.0, "rejects.by.x y": 1.0, "ok": 1.0,
                 "hist.0": 1.0, "hist.1": 2.5, "judge.overall.mean": 7.5, "judge.overall.p50": 8.0}
