"""Model aliases resolve to paths that work from any folder."""


def test_smollm2_alias_resolves_to_an_absolute_prepared_dir(tmp_path, monkeypatch):
    from distillery.models import resolve_model_path

    prepared = tmp_path / "data" / "models" / "smollm2"
    prepared.mkdir(parents=True)
    (prepared / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    p = resolve_model_path("smollm2")
    assert p.is_absolute() and p == prepared.resolve()
