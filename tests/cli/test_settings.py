"""Settings: TOML file < ACCOIL_* environment < flags, validated, secrets masked.

The ``config_file`` fixture is in ``tests/cli/conftest.py``.
"""

import pytest

from accoil_transform.cli._settings import SETTINGS, Settings
from accoil_transform.errors import ConfigError


def test_defaults_mirror_the_destination():
    s = Settings.load(env={})
    cfg = s.transform_config()
    assert str(cfg.user_id) == "user_id"
    assert cfg.user_traits is None and cfg.exclude_user_traits == ()  # every trait, as peers do
    assert cfg.include_events == () and cfg.exclude_events == ()
    assert s["format"] == "v2" and s["api_key"] is None
    assert all(s.origin(x.name) == "default" for x in SETTINGS)


def test_file_then_env_then_flags(config_file):
    s = Settings.load(
        config_file,
        env={"ACCOIL_CONCURRENCY": "12", "ACCOIL_FORMAT": "v1"},
        flags={"format": "segment", "properties": ["plan"]},
    )
    assert s["concurrency"] == 12 and s.origin("concurrency") == "$ACCOIL_CONCURRENCY"
    assert s["format"] == "segment" and s.origin("format") == "flag"
    assert s["properties"] == ["plan"]
    assert s["exclude_events"] == ["session_start"] and s.origin("exclude_events") == str(
        config_file
    )
    cfg = s.transform_config()
    assert cfg.user_id_ref.scope == "user_properties" and cfg.user_id_ref.name == "email"
    assert cfg.event_rename == {"Report Created": "Report_Created"}


def test_env_lists_are_comma_separated():
    s = Settings.load(env={"ACCOIL_PROPERTIES": "plan, trial_end ,", "ACCOIL_STRICT": "true"})
    assert s["properties"] == ["plan", "trial_end"]
    assert s["strict"] is True


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[delivery]\nconcurrency = "many"\n', "concurrency must be an integer"),
        ("[delivery]\nconcurrency = 0\n", "concurrency must be at least 1"),
        ('[output]\nformat = "v3"\n', "format must be one of"),
        ("[output]\nuser_id = 'x'\n", "it belongs in [transform]"),
        ("[transform]\nnope = 1\n", "unknown setting [transform] nope"),
        ("[transform\n", "not valid TOML"),
        (
            '[transform]\ninclude_events = ["a"]\nexclude_events = ["a"]\n',
            "both included and excluded",
        ),
    ],
)
def test_bad_files_name_the_file_and_the_setting(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as info:
        Settings.load(path, env={})
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        Settings.load(tmp_path / "absent.toml", env={})


def test_secrets_are_masked_everywhere(config_file):
    s = Settings.load(config_file, env={"AMPLITUDE_SECRET_KEY": "amp-secret-value"})
    text = repr(s) + str(s.effective())
    assert "toml-secret-key" not in text and "amp-secret-value" not in text
    assert s["api_key"] == "toml-secret-key"
    assert s.origin("amplitude_secret_key") == "$AMPLITUDE_SECRET_KEY"


def test_user_traits_narrow_from_toml_env_and_flags(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[transform]\nuser_traits = ["email", "role"]\nexclude_user_traits = ["ssn"]\n')
    cfg = Settings.load(path, env={}).transform_config()
    assert cfg.user_traits == ("email", "role") and cfg.exclude_user_traits == ("ssn",)
    env = {"ACCOIL_USER_TRAITS": "name", "ACCOIL_EXCLUDE_USER_TRAITS": "ip,geo"}
    cfg = Settings.load(path, env=env).transform_config()
    assert cfg.user_traits == ("name",) and cfg.exclude_user_traits == ("ip", "geo")
    flags = {"exclude_user_traits": ["password"]}
    cfg = Settings.load(path, env=env, flags=flags).transform_config()
    assert cfg.exclude_user_traits == ("password",)
