"""The `engine:` section, the install hint and the unreachable-address line (no cluster started)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from distillery.distributed import engine_for
from distillery.distributed.runtime import INSTALL_HINT, EngineError
from distillery.core.errors import DistilleryError, ParamsError
from distillery.testing.testserver import free_port
from distillery.core.params import load_params


def test_defaults_are_local_and_stage_override_applies_only_to_that_stage():
    p = load_params(None, ["engine.stages={dedup: {engine: ray, num_cpus: 4}}"])
    assert p.engine.engine == "local"
    assert engine_for(p, "distill").engine == "local"
    d = engine_for(p, "dedup")
    assert (d.engine, d.num_cpus, d.address) == ("ray", 4, None)


def test_unknown_engine_and_secret_in_runtime_env_are_one_line_errors():
    with pytest.raises(ParamsError, match=r"engine\.engine"):
        load_params(None, ["engine.engine=spark"])
    with pytest.raises(ParamsError, match="secrets never go in params"):
        load_params(None, ["engine.runtime_env={env_vars: {OPENAI_API_KEY: x}}"])


_NO_RAY = textwrap.dedent("""
    import sys, json
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ImportError("No module named 'ray'")
    sys.meta_path.insert(0, Block())
    from distillery.core.params import load_params
    from distillery.distributed.dedup import run_dedup
    from distillery.core.errors import DistilleryError
    p = load_params(None, ["engine.engine=ray", "dedup.decontaminate.enabled=false"])
    try:
        run_dedup(p, [sys.argv[1]], sys.argv[2])
    except DistilleryError as e:
        print(json.dumps({"msg": str(e)}))
""")


def test_engine_ray_without_ray_installed_says_how_to_install(tmp_path):
    f = tmp_path / "records.jsonl"
    f.write_text('{"id": "a", "kind": "sft", "source": {"dataset": "t"}, "messages": [{"role": "user", "content": "hi there"}]}\n')
    out = subprocess.run([sys.executable, "-c", _NO_RAY, str(f), str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=120)
    msg = json.loads(out.stdout.strip().splitlines()[-1])["msg"]
    assert msg == INSTALL_HINT and "\n" not in msg
    assert "pip install 'distillery[ray]'" in msg


def test_local_engine_and_import_never_load_ray(tmp_path):
    f = tmp_path / "records.jsonl"
    f.write_text("".join(json.dumps({"id": f"r{i}", "kind": "sft", "source": {"dataset": "t"},
                                     "messages": [{"role": "user", "content": f"question {i} " * 8},
                                                  {"role": "assistant", "content": "answer"}]}) + "\n"
                         for i in range(20)))
    code = ("import sys; import distillery, distillery.distributed\n"
            "from distillery.core.params import load_params\n"
            "from distillery.distributed.dedup import run_dedup\n"
            "p = load_params(None, ['dedup.decontaminate.enabled=false', 'dedup.workers=1'])\n"
            f"r = run_dedup(p, [{str(f)!r}], {str(tmp_path / 'o')!r})\n"
            "from distillery.distributed.generate import make_engine\n"
            f"p2 = load_params(None, ['llm.cache_path={tmp_path / 'c.sqlite'}', 'engine.stages={{distill: {{engine: ray}}}}'])\n"
            "e1 = make_engine(p2, 'score'); e2 = make_engine(p2, 'distill', dry_run=True)\n"
            "print(r.metrics['records_out'], type(e1).__name__, type(e2).__name__, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["20", "Engine", "Engine", "False"], out.stderr[-2000:]


def test_unreachable_cluster_address_is_one_clear_line(tmp_path):
    pytest.importorskip("ray")
    from distillery.distributed.runtime import ray_session

    p = load_params(None, [f"engine.address=127.0.0.1:{free_port()}", "engine.engine=ray"])
    with pytest.raises(EngineError) as e:
        with ray_session(p.engine):
            pass
    msg = str(e.value)
    assert isinstance(e.value, DistilleryError) and "\n" not in msg
    assert "cannot reach a Ray cluster" in msg and "engine.address" in msg
    with pytest.raises(EngineError, match="expected host:port"):
        with ray_session(load_params(None, ["engine.address=nonsense"]).engine):
            pass
