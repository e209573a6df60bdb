"""``accoil-transform config check``: the effective settings, secrets masked; a bad file
is a usage error (exit 2) that names the setting."""

from accoil_transform.cli import main


def test_config_check_prints_effective_settings_masked(config_file, capsys, monkeypatch):
    monkeypatch.delenv("ACCOIL_API_KEY", raising=False)
    code = main(["config", "check", "--config", str(config_file), "--concurrency", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert "toml-secret-key" not in out
    assert "****" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "4" in rows["concurrency"] and rows["concurrency"].endswith("flag")
    assert "stream" in rows["format"] and rows["format"].endswith(str(config_file))
    assert "a run would be a delivery" in out


def test_config_check_rejects_a_bad_file(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[delivery]\nmax_rate = -1\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    assert "max_rate must be positive" in capsys.readouterr().err
