"""Teacher params: list or mapping, validated on load with one line naming the key."""

from __future__ import annotations

import pytest

from distillery.core.errors import ParamsError
from distillery.core.params import load_params


def load(**llm):
    return load_params(None, sections=("llm", "engine"), extra={f"llm.{k}": v for k, v in llm.items()})


def test_shipped_default_is_the_offline_local_teacher(repo_root):
    p = load_params(repo_root / "params.yaml")
    t = p.llm.teachers[p.llm.default_teacher]
    assert t.provider == "local" and t.model == "smollm2"
    assert str(p.llm.cache_path) == "data/llm_cache/responses.sqlite"


def test_teachers_as_list_or_mapping():
    a = load(teachers=[{"name": "x", "provider": "openai", "model": "m", "base_url": "http://h/v1"}],
             default_teacher="x")
    b = load(teachers={"x": {"provider": "openai", "model": "m", "base_url": "http://h/v1"}}, default_teacher="x")
    assert a.llm.teachers == b.llm.teachers and a.llm.teachers["x"].name == "x"


@pytest.mark.parametrize("teachers,default,match", [
    ([{"name": "x", "provider": "openai", "model": "m"}], "x", "needs base_url"),
    ([{"name": "x", "provider": "openai", "model": "m", "base_url": "ftp://h"}], "x", "base_url must be"),
    ([{"name": "x", "provider": "local", "model": "m", "gen": {"temprature": 1}}], "x", "unknown generation key"),
    ([{"name": "x", "provider": "local", "model": "m"}, {"name": "x", "provider": "local", "model": "n"}], "x",
     "duplicate teacher"),
    ([{"provider": "local", "model": "m"}], "x", "needs a name"),
    ([{"name": "x", "provider": "local", "model": "m"}], "y", "default_teacher 'y'"),
    ([{"name": "x", "provider": "openai", "model": "m", "base_url": "http://h", "api_key_env": "sk-abc def"}],
     "x", "NAME of an env var"),
    ([{"name": "x", "provider": "local", "model": "m", "rpm": 0}], "x", "rpm"),
    ([{"name": "x", "provider": "local", "model": "m", "price": 1}], "x", "unknown key"),
])
def test_bad_teacher_params_are_one_line(teachers, default, match):
    with pytest.raises(ParamsError, match=match) as ei:
        load(teachers=teachers, default_teacher=default)
    assert "\n" not in str(ei.value)
