"""scripts/prepare_model.py: the GGUF SmolLM2 becomes a loadable safetensors directory."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_prepare_model_writes_safetensors_in_the_params_dtype(run_script, tmp_path):
    out = tmp_path / "models" / "smollm2"
    proc = run_script("prepare_model", "--output", out, "--set", "prepare_model.dtype=bfloat16", cwd=tmp_path,
                      env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16"
    assert "quantization_config" not in cfg
    assert (out / "model.safetensors").stat().st_size > 200e6
    assert (out / "tokenizer.json").exists() or (out / "tokenizer_config.json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_prepare_model_bad_dtype_is_one_line(run_script, tmp_path):
    proc = run_script("prepare_model", "--output", tmp_path / "m", "--set", "prepare_model.dtype=int3",
                      cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "prepare_model.dtype" in proc.stderr
    assert "Traceback" not in proc.stderr
