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
        ("server: {prot: 1}", "server.prot: unknown key"),
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


@pytest.mark.parametrize(
    "text, fragment",
    [
        # watts typed as kW, kW typed as watts
        ("sites: [{id: s, grid_limit_kw: 100000}]",
         "sites[0].grid_limit_kw: 100000 kW is 100 MW, above any site connection (20000 kW); the value looks "
         "like watts: write 100 for 100 kW"),
        ("sites: [{id: s, grid_limit_kw: 50, circuits: [{name: a, max_power_kw: 22000}]}]",
         "sites[0].circuits[0].max_power_kw: 22000 kW is 22 MW"),
        ("sites: [{id: s, grid_limit_kw: 50, limit_schedule: [{start: '17:00', end: '20:00', limit_kw: 40000}]}]",
         "sites[0].limit_schedule[0].limit_kw: 40000 kW"),
        ("chargers: [{id: A, max_power_w: 22}]", "chargers[0]: max_power_w: 22 W is less than any charger draws; "
                                                  "the value looks like kW: write 22000 for 22 kW"),
        ("server: {port: 9000}\napi: {port: 9000}", "api.port: 9000 is also server.port (the OCPP endpoint)"),
        ("chargers: [{id: A, min_current_a: 40, max_current_a: 32}]",
         "chargers[0]: min_current_a (40 A) is above max_current_a (32 A)"),
        ("sites: [{id: s, grid_limit_kw: 50}]\nsites: [{id: t, grid_limit_kw: 60}]",
         "config: line 2: sites: duplicate key (first at line 1)"),
        ("sites:\n  - id: s\n    grid_limit_kw: 50\n    grid_limit_kw: 60\n",
         "line 4: grid_limit_kw: duplicate key (first at line 3)"),
        # typos name the closest valid key, at any depth (lists, dicts of keys)
        ("server: {prot: 1}", "server.prot: unknown key; did you mean 'port'?"),
        ("sites: [{id: s, grid_limt_kw: 5}]", "sites[0].grid_limt_kw: unknown key; did you mean 'grid_limit_kw'?"),
        ("api: {keys: {ops: {key: abcdefghijklmnopq, rol: admin}}}", "api.keys.ops.rol: unknown key; did you "
                                                                       "mean 'role'?"),
        ("smart_charging: {horizon: 5}", "smart_charging.horizon: unknown key; did you mean 'horizon_h'?"),
        ("mqtt: {zzz: 1}", "mqtt.zzz: unknown key (valid keys: buffer_messages, client_id, enabled"),
        ("billing: {tariff: {demand_tiers: [{name: a, from_utilisation: 0, multiplier: 1}, "
         "{name: b, from_utilisation: 50, multiplier: 2}]}}",
         "billing.tariff.demand_tiers[1].from_utilisation: is a fraction of the site's limit (0.5 for 50 %), not a "
         "percentage: 50 would never be reached; write 0.5 for 50 %"),
    ],
)
def test_likely_mistakes_get_a_message_naming_the_key(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, env={})
    assert fragment in str(e.value)


def test_ports_and_host_from_the_environment() -> None:
    cfg = parse_config("", env={"CSMS_HOST": "0.0.0.0", "CSMS_OCPP_PORT": "9100", "CSMS_API_PORT": "8100"})
    assert (cfg.server.host, cfg.server.port, cfg.api.host, cfg.api.port) == ("0.0.0.0", 9100, "0.0.0.0", 8100)
    with pytest.raises(ConfigError, match="api.port: 9100 is also server.port"):
        parse_config("", env={"CSMS_OCPP_PORT": "9100", "CSMS_API_PORT": "9100"})
    with pytest.raises(ConfigError, match="server.port: Input should be a valid integer"):
        parse_config("", env={"CSMS_OCPP_PORT": "nine"})


def test_charger_and_site_lookups_follow_a_copy_with_other_lists() -> None:
    """`Config.charger`/`site` read an index built on first use (a linear scan per lookup was 8-15 % of the
    CSMS's CPU at 3,000-10,000 chargers); a copy with other chargers or sites must not answer from the old
    one (pydantic's model_copy copies private attributes)."""
    cfg = parse_config("chargers: [{id: A}, {id: B, site: default}]", env={})
    assert cfg.charger("B") is cfg.chargers[1] and cfg.charger("C") is None
    assert cfg.site("default") is cfg.sites[0]
    other = cfg.model_copy(update={"chargers": [cfg.chargers[0].model_copy(update={"id": "C"})],
                                   "sites": [cfg.sites[0].model_copy(update={"id": "north"})]})
    assert other.charger("C") is other.chargers[0] and other.charger("B") is None
    assert other.site("north") is other.sites[0] and other.site("default") is None
    assert cfg.charger("B") is cfg.chargers[1]  # the original still answers from its own lists


def test_a_site_planning_grid_must_fall_on_the_timer_grid() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("smart_charging: {slot_min: 15}\nsites: [{id: s, grid_limit_kw: 10, planning: {slot_min: 20}}]",
                     env={})
    assert "sites[0].planning.slot_min: 20 is not a multiple of smart_charging.slot_min (15)" in str(e.value)
    cfg = parse_config("sites: [{id: s, grid_limit_kw: 10, planning: {slot_min: 30, solver_time_limit_s: 12}}, "
                       "{id: t, grid_limit_kw: 10}]", env={})
    s, t = (cfg.smart_charging.for_site(site) for site in cfg.sites)
    assert (s.slot_min, s.horizon_h, s.solver_time_limit_s) == (30, 24.0, 12.0)
    assert t is cfg.smart_charging
