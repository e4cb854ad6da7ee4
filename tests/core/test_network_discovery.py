"""Which network.yaml a command uses when none is named: the demo's, said on stderr, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stafet.core import config
from stafet.core.errors import ConfigError


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "_announced", set())
    home = tmp_path / ".stafet"
    monkeypatch.setenv("STAFET_HOME", str(home))
    noted = tmp_path / ".stafet-demo" / "network.yaml"
    noted.parent.mkdir()
    noted.write_text("network: demo\n")
    return home, noted


def test_without_a_marker_it_is_the_local_file(place: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert config.network_path() == Path("network.yaml").resolve()
    with pytest.raises(ConfigError, match="network-path"):
        config.load_network()
    assert capsys.readouterr().err == ""


def test_the_demos_marker_is_used_and_said_once(place: tuple[Path, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    home, noted = place
    marker = config.note_network(home, noted)
    assert marker == home / "network-path" and (marker.stat().st_mode & 0o777) == 0o600
    assert config.network_path() == noted.resolve()
    assert config.network_path() == noted.resolve()
    err = capsys.readouterr().err
    assert err.count(f"bruger netværket {noted.resolve()}") == 1 and str(marker) in err


def test_a_named_or_local_network_comes_first(place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    home, noted = place
    config.note_network(home, noted)
    assert config.network_path("other.yaml") == Path("other.yaml").resolve()
    monkeypatch.setenv("STAFET_NETWORK", "env.yaml")
    assert config.network_path() == Path("env.yaml").resolve()
    monkeypatch.delenv("STAFET_NETWORK")
    Path("network.yaml").write_text("network: local\n")
    assert config.network_path() == Path("network.yaml").resolve()
    assert capsys.readouterr().err == ""


def test_a_marker_to_a_removed_network_is_not_followed(place: tuple[Path, Path]) -> None:
    home, noted = place
    config.note_network(home, noted)
    noted.unlink()
    assert config.network_path() == Path("network.yaml").resolve()
