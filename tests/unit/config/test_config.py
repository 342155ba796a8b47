"""config.yaml validation: errors name the key and the problem; env overrides apply."""

from pathlib import Path

import pytest

from csms.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_config_is_valid() -> None:
    cfg = load_config(ROOT / "config.yaml", env={})
    assert cfg.server.port == 9000
    assert cfg.database.url.startswith("sqlite+aiosqlite:///")
    assert {c.id for c in cfg.chargers} >= {"SIM-0001", "SIM-0002"}  # the README tour's simulator chargers


def test_empty_config_uses_defaults() -> None:
    cfg = parse_config("", env={})
    assert cfg.server.subprotocols == ["ocpp2.0.1", "ocpp1.6"]
    assert cfg.sites[0].id == "default"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("server: {port: -1}", "server.port: Input should be greater than or equal to 0"),
        ("server: {prot: 1}", "server.prot: Extra inputs are not permitted"),
        ("chargers: [{id: A, max_current_a: 0}]", "chargers[0].max_current_a: Input should be greater than 0"),
        ("chargers: [{id: 'a:b'}]", "chargers[0].id: String should match pattern"),
        ("chargers: [{id: A, site: nowhere}]", "chargers[0].site: unknown site 'nowhere'"),
        ("chargers: [{id: A}, {id: A}]", "chargers: duplicate 'A'"),
        ("id_tokens: [{value: T, group: vip}]", "id_tokens[0].group: unknown group 'vip'"),
        ("sites: [{id: s}]", "sites[0]: set grid_limit_kw or grid_limit_a"),
        ("sites: [{id: s, grid_limit_kw: 10, circuits: [{name: a, parent: b}]}]", "sites[0].circuits[0].parent"),
        ("sites: [{id: s, grid_limit_kw: 10, circuits: [{name: a, parent: b}, {name: b, parent: a}]}]", "cycle"),
        ("server: [1, 2]", "server: Input should be a valid dictionary"),
        ("server: {port: 1", "not valid YAML"),
        ("- a\n- b", "the top level must be a mapping"),
        ("database: {url: '${NOPE_NOT_SET}'}", "database.url: environment variable NOPE_NOT_SET is not set"),
    ],
)
def test_errors_name_the_key(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, env={})
    assert fragment in str(e.value)


def test_environment_overrides() -> None:
    env = {"CSMS_DATABASE_URL": "postgresql+asyncpg://u@h/db", "CSMS_CHARGER_PASSWORD_CP_1": "s3cret",
           "PW": "from-var", "CSMS_MQTT_URL": "mqtt://broker:1884"}
    cfg = parse_config("chargers: [{id: CP-1}, {id: CP-2, password: '${PW}'}]", env=env)
    assert cfg.database.url == "postgresql+asyncpg://u@h/db"
    assert cfg.chargers[0].password == "s3cret"
    assert cfg.chargers[1].password == "from-var"
    assert cfg.mqtt.enabled and cfg.mqtt.url == "mqtt://broker:1884"
