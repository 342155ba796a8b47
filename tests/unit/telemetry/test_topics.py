"""Topic builders and escaping (pure)."""

from __future__ import annotations

import pytest

from csms.telemetry import topics


def test_outbound_topics_are_relative_to_the_prefix() -> None:
    assert topics.station_status("CP01") == "station/CP01/status"
    assert topics.evse_status("CP01", 2) == "station/CP01/evse/2/status"
    assert topics.evse_meter("CP01", 0) == "station/CP01/evse/0/meter"
    assert topics.session_event("CP01/42") == "session/CP01%2F42/event"
    assert topics.site_load("depot") == "site/depot/load"
    assert topics.site_plan("depot") == "site/depot/plan"
    assert topics.site_limit_set("depot") == "site/depot/limit/set"
    assert topics.csms_status() == "status"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("csms", "csms/site/a/load"),
        ("csms/", "csms/site/a/load"),
        ("/acme/depot-3/csms/", "acme/depot-3/csms/site/a/load"),
        ("", "site/a/load"),
    ],
)
def test_full_topic(prefix: str, expected: str) -> None:
    assert topics.full_topic(prefix, topics.site_load("a")) == expected


@pytest.mark.parametrize("bad", ["csms/+", "csms/#", "a\x00b"])
def test_prefix_rejects_wildcards(bad: str) -> None:
    with pytest.raises(ValueError):
        topics.normalize_prefix(bad)


@pytest.mark.parametrize(
    "value",
    [
        "CP01/42",
        "a+b",
        "x#y",
        "100%",
        "%2F",
        "plain",
        "ümlaut/€",
        "a/b/c",
        "\x00",
        "%",
        "%%25",
    ],
)
def test_escape_round_trips_and_leaves_no_topic_metacharacters(value: str) -> None:
    seg = topics.escape_segment(value)
    assert not set(seg) & {"/", "+", "#", "\x00"}
    assert topics.unescape_segment(seg) == value


def test_escape_is_readable_for_transaction_keys() -> None:
    assert topics.escape_segment("CP01/tx-7") == "CP01%2Ftx-7"
    assert topics.escape_segment("100%") == "100%25"


def test_empty_segment_is_refused() -> None:
    with pytest.raises(ValueError):
        topics.escape_segment("")


def test_limit_set_filter_and_parse() -> None:
    assert topics.site_limit_set_filter("csms") == "csms/site/+/limit/set"
    assert topics.site_limit_set_filter("") == "site/+/limit/set"
    assert topics.parse_site_limit_set("csms", "csms/site/depot/limit/set") == "depot"
    assert topics.parse_site_limit_set("csms/", "csms/site/a%2Bb/limit/set") == "a+b"
    assert topics.parse_site_limit_set("acme/csms", "acme/csms/site/x/limit/set") == "x"
    assert topics.parse_site_limit_set("", "site/x/limit/set") == "x"


@pytest.mark.parametrize(
    "topic",
    [
        "other/site/depot/limit/set",
        "csms/site/depot/limit",
        "csms/site/depot/limit/set/x",
        "csms/site//limit/set",
        "csms/station/depot/limit/set",
        "csmsx/site/depot/limit/set",
    ],
)
def test_parse_limit_set_rejects_other_topics(topic: str) -> None:
    assert topics.parse_site_limit_set("csms", topic) is None


def test_no_topic_strings_outside_topics_module() -> None:
    """topics.py is the only module whose code spells topic levels (docstrings may mention them)."""
    import ast
    import pathlib

    import csms.telemetry as pkg

    root = pathlib.Path(pkg.__file__).parent
    for path in root.glob("*.py"):
        if path.name == "topics.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for level in ("station/", "site/", "session/", "limit/set", "/evse/", "/status"):
                    assert level not in node.value, (
                        f"{path.name} spells {node.value!r}: use csms.telemetry.topics"
                    )
