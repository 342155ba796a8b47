"""Security profiles in config.yaml: resolution charger > site > server, servability, passwords required."""

from pathlib import Path

import pytest

from csms.config import ConfigError, load_config, parse_config, require_credentials

SITES = "sites: [{id: a, grid_limit_kw: 10, security_profile: 0}, {id: b, grid_limit_kw: 10}]\n"


def test_profile_resolution_charger_then_site_then_server() -> None:
    cfg = parse_config(SITES + """
server: {security_profile: 1}
chargers:
  - {id: OWN, site: a, security_profile: 1, password: "0123456789abcdef"}
  - {id: SITE, site: a}
  - {id: SERVER, site: b, password: "0123456789abcdef"}
""", env={})
    assert [cfg.security_profile(c) for c in cfg.chargers] == [1, 0, 1]
    require_credentials(cfg)  # every charger that needs a password has one


def test_password_is_required_unless_profile_0_or_3(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("chargers: [{id: OPEN}]\n")
    with pytest.raises(ConfigError, match=r"chargers\[0\].password: security profile 1 needs a password"):
        load_config(f, env={})
    f.write_text("chargers: [{id: OPEN, security_profile: 0}]\n")
    assert load_config(f, env={}).chargers[0].security_profile == 0
    # The environment override counts as the password.
    f.write_text("chargers: [{id: CP-1}]\n")
    assert load_config(f, env={"CSMS_CHARGER_PASSWORD_CP_1": "0123456789abcdef"}).chargers[0].password


def test_empty_password_is_no_password() -> None:
    cfg = parse_config('chargers: [{id: X, password: ""}]', env={})
    with pytest.raises(ConfigError, match="needs a password"):
        require_credentials(cfg)


@pytest.mark.parametrize("text, fragment", [
    ("server: {security_profile: 2}", "server.security_profile: security profile 2 needs TLS"),
    ("sites: [{id: s, grid_limit_kw: 1, security_profile: 3}]", "sites[0].security_profile: security profile 3"),
    ("chargers: [{id: X, security_profile: 2, password: p}]", "chargers[0].security_profile: security profile 2"),
    ("server: {security_profile: 4}", "server.security_profile: Input should be 0, 1, 2 or 3"),
    ("server: {tls: {port: 1, cert_file: /nope.pem, key_file: /nope.key}}", "cert_file: no such file"),
])
def test_unservable_profiles_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, env={})
    assert fragment in str(e.value)


def test_profile_3_needs_the_client_ca(tmp_path: Path) -> None:
    for name in ("s.pem", "s.key"):
        (tmp_path / name).write_text("x")
    tls = f"tls: {{cert_file: {tmp_path / 's.pem'}, key_file: {tmp_path / 's.key'}}}"
    with pytest.raises(ConfigError, match="security profile 3 needs server.tls.ca_file"):
        parse_config(f"server: {{security_profile: 3, {tls}}}", env={})
    cfg = parse_config(f"server: {{security_profile: 2, {tls}}}\nchargers: [{{id: X, password: p}}]", env={})
    assert cfg.server.tls is not None and cfg.server.tls.port == 9443
