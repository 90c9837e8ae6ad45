"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from vid2mp3.config import Config
from vid2mp3.errors import ConfigError


def test_embedded_defaults_live_under_home_and_keep_a_generated_secret(tmp_path: Path) -> None:
    cfg = Config.from_env({"VID2MP3_HOME": str(tmp_path)})
    assert cfg.embedded
    assert cfg.database_url == f"sqlite:///{tmp_path / 'vid2mp3.db'}"
    assert cfg.storage_url == f"file://{tmp_path / 'blobs'}"
    assert cfg.events_url == "memory://"
    assert len(cfg.jwt_secret) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
    assert Config.from_env({"VID2MP3_HOME": str(tmp_path)}).jwt_secret == cfg.jwt_secret


def test_real_backends_refuse_a_generated_secret(tmp_path: Path) -> None:
    env = {"VID2MP3_HOME": str(tmp_path), "DATABASE_URL": "mysql://root@127.0.0.1/x"}
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Config.from_env(env)
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    assert Config.from_env({**env, "JWT_SECRET_FILE": str(secret)}).jwt_secret == "from-a-file"


def test_k_sink_wins_over_events_url(tmp_path: Path) -> None:
    cfg = Config.from_env(
        {
            "VID2MP3_HOME": str(tmp_path),
            "EVENTS_URL": "amqp://x",
            "K_SINK": "http://broker",
            "JWT_SECRET": "x",
        }
    )
    assert cfg.events_url == "http://broker"


@pytest.mark.parametrize(("key", "value"), [("MAX_UPLOAD_BYTES", "lots"), ("MAX_ATTEMPTS", "0")])
def test_bad_numbers_name_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Config.from_env({"VID2MP3_HOME": str(tmp_path), key: value})
