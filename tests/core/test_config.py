"""network.yaml validation: errors name the key and the line."""

import pytest

from stafet.core.config import load_network
from stafet.core.errors import ConfigError

GOOD = """\
network: t
members:
  - id: uu-viborg
    kind: guidance
    name: UU Viborg
    municipality: "791"
    serves: ["791", "787"]
    email: uu@x.dk
    endpoint: folder:inbox/uu
  - id: "779008"
    kind: institution
    name: Mercantec
    municipality: "791"
    email: m@x.dk
    endpoint: sftp://stafet@127.0.0.1:2222/inbox
"""


def test_good_network_loads(tmp_path) -> None:
    p = tmp_path / "network.yaml"
    p.write_text(GOOD)
    net = load_network(p)
    assert set(net.members) == {"uu-viborg", "779008"}
    assert net.guidance_for("787").id == "uu-viborg"
    assert net.guidance_for("779") is None


def test_every_problem_is_reported_with_key_and_line(tmp_path) -> None:
    bad = (GOOD.replace("kind: guidance", "kind: school")
           .replace('municipality: "791"\n    email: m@x.dk', 'municipality: "79"\n    email: m@x.dk')
           .replace("sftp://stafet@127.0.0.1:2222/inbox", "ftp://x") + "colour: blue\n")
    p = tmp_path / "network.yaml"
    p.write_text(bad)
    with pytest.raises(ConfigError) as e:
        load_network(p)
    msg = str(e.value)
    assert "members[0].kind (line 4)" in msg and "'school'" in msg
    assert "members[1].municipality (line 13)" in msg
    assert "members[1].endpoint (line 15)" in msg
    assert "colour (line 16): unknown key" in msg


def test_duplicate_ids_and_missing_fields(tmp_path) -> None:
    p = tmp_path / "n.yaml"
    p.write_text(GOOD + "  - id: uu-viborg\n    kind: guidance\n")
    with pytest.raises(ConfigError) as e:
        load_network(p)
    assert "'name' is required" in str(e.value)
    assert "duplicate organisation id 'uu-viborg'" in str(e.value)


def test_sftp_source_needs_pinned_host_key(tmp_path) -> None:
    p = tmp_path / "n.yaml"
    p.write_text(GOOD + "sources:\n  - name: easy-a\n    location: sftp://u@127.0.0.1:22/drop\n")
    with pytest.raises(ConfigError, match="host_key"):
        load_network(p)


def test_a_sources_organisation_must_be_a_member(tmp_path) -> None:
    p = tmp_path / "n.yaml"
    p.write_text(GOOD + "sources:\n  - name: easy-a\n    location: folder:drop\n    org: \"779008\"\n")
    assert load_network(p).sources[0].org == "779008"
    p.write_text(GOOD + "sources:\n  - name: easy-a\n    location: folder:drop\n    org: mercantec\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.org .*'mercantec' is not a member"):
        load_network(p)


def test_missing_file_says_where_it_looked(tmp_path) -> None:
    with pytest.raises(ConfigError, match="STAFET_NETWORK"):
        load_network(tmp_path / "nope.yaml")


def test_sftp_login_resolves_the_identity_once_for_endpoints_and_sources(tmp_path) -> None:
    """One resolution of the SFTP identity key (and its passphrase) for outlets, inboxes, sources."""
    p = tmp_path / "network.yaml"
    p.write_text(GOOD + """\
endpoints:
  "779008": {host_key: "ssh-ed25519 AAAA", identity: keys/sftp_id, passphrase: hemmelig, timeout: 5}
sources:
  - name: easy-a
    location: sftp://u@127.0.0.1:2222/drop
    host_key: ssh-ed25519 BBBB
    identity: /abs/id_ed25519
""")
    net = load_network(p)
    assert net.sftp_login("779008") == {"host_key": "ssh-ed25519 AAAA",
                                        "identity": str(tmp_path / "keys" / "sftp_id"),
                                        "passphrase": "hemmelig"}
    assert net.sftp_login(net.sources[0]) == {"host_key": "ssh-ed25519 BBBB",
                                              "identity": "/abs/id_ed25519", "passphrase": None}
    assert net.sftp_login("uu-viborg") == {"host_key": "", "identity": "", "passphrase": None}
    key_text = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"
    net.endpoint_options["uu-viborg"] = {"identity": key_text}
    assert net.sftp_login("uu-viborg")["identity"] == key_text  # the key itself, not a path
