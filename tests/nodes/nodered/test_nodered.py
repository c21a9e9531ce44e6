"""Node-RED import: mapped configs and wires, what is listed as not imported, validation of the
result, a run of an imported part, export of a selection, and the `flowengine import` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowengine.nodes.nodered.convert import (
    ImportResult,
    NodeRedError,
    import_nodered,
    to_yaml,
)
from flowengine.testing import check_text, run_flow
from flowengine.ui.selection import export_selection
from tests.helpers.cli import flowengine

FLOWS = Path(__file__).resolve().parents[2] / "data" / "nodered" / "flows.json"
SECRETS = ("s3cret-broker-pw", "s3cret-token", "k-123-literal")
TAB = "8f1c2a7b3d4e5f60"


@pytest.fixture(scope="module")
def imported() -> ImportResult:
    return import_nodered(FLOWS.read_text(encoding="utf-8"))


def nodes(result: ImportResult) -> dict[str, Any]:
    return result.flow["nodes"]


def env_for(result: ImportResult) -> dict[str, str]:
    return {name: "set-in-test" for name in result.env}


def tiny(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A one-tab export with the plant broker and the given nodes."""
    data = json.loads(FLOWS.read_text(encoding="utf-8"))
    keep = [n for n in data if n["type"] in ("tab", "mqtt-broker", "tls-config")][:1]
    keep += [n for n in data if n["type"] in ("mqtt-broker", "tls-config")]
    base = {"z": TAB, "x": 100, "y": 100, "wires": []}
    return keep + [n if n["type"] == "mqtt-broker" else {**base, **n} for n in extra]


def test_mqtt_in_takes_the_broker_with_tls_and_credentials_as_references(imported):
    mqtt = nodes(imported)["furnace_readings"]
    assert mqtt == {
        "type": "mqtt_in",
        "name": "Furnace readings",
        "broker_host": "mqtt.plant.local",
        "broker_port": 8883,
        "client_id": "nodered-line3",
        "keep_alive": 30,
        "username": "${PLANT_BROKER_USERNAME}",
        "password": "${PLANT_BROKER_PASSWORD}",
        "tls": True,
        "ca_file": "/etc/flowengine/plant-ca.pem",
        "topic": "plant/line3/furnace/+",
        "qos": 1,
        "wires": ["classify_temperature"],
    }
    out = nodes(imported)["publish_status"]
    assert (out["topic"], out["qos"], out["retain"]) == ("plant/line3/status", 1, True)
    assert out["password"] == "${PLANT_BROKER_PASSWORD}"
    assert set(imported.env) == {
        "PLANT_BROKER_USERNAME",
        "PLANT_BROKER_PASSWORD",
        "QUALITY_API_TOKEN",
        "QUALITY_API_X_API_KEY",
    }
    written = to_yaml(imported) + json.dumps(imported.flow)
    assert not [s for s in SECRETS if s in written]


def test_switch_rules_become_expressions_and_positional_wires_become_rule_ports(imported):
    switch = nodes(imported)["classify_temperature"]
    assert switch["rules"] == {
        "gt_1400": "value > 1400",
        "btwn_1250_1400": "(value >= 1250) and (value <= 1400)",
        "lt_900": "value < 900",
    }
    assert switch["mode"] == "first"  # checkall: "false"
    assert switch["wires"] == {
        "gt_1400": ["mark_alarm"],
        "btwn_1250_1400": ["high"],
        "lt_900": ["cold"],
        "otherwise": ["normal", "compute_oee"],  # the function is a python stub now
    }


def test_change_delay_and_debug_configs(imported):
    flow = nodes(imported)
    assert flow["mark_alarm"]["operations"] == [
        {"op": "set", "column": "topic", "value": "furnace/alarm"},
        {"op": "set", "column": "unit", "value": "degC"},
        {"op": "set", "column": "value", "expr": "value + (value == 9999) * -9999"},
        {"op": "delete", "columns": ["raw"]},
    ]
    assert flow["mark_alarm"]["wires"] == ["one_alarm_per_second"]
    delay = flow["one_alarm_per_second"]
    assert {k: delay[k] for k in ("mode", "rate", "per", "drop", "wires")} == {
        "mode": "rate_limit",
        "rate": 1.0,
        "per": "rows",
        "drop": True,
        "wires": ["alarms"],
    }
    assert flow["alarms"] == {"type": "debug", "name": "Alarms"}
    assert any("flow.lastAlarm is not imported" in w for w in imported.warnings)


def test_inject_rows_and_schedules(imported):
    flow = nodes(imported)
    test = flow["test_readings"]
    assert [r["value"] for r in test["rows"]] == [1500, 1300, 800, 1000, 9999]
    assert (test["topic"], "interval" in test, "cron" in test) == ("furnace", False, False)
    heartbeat = flow["heartbeat"]
    # msg.topic is a column, so a `{topic}` template in mqtt_out finds it
    assert heartbeat["rows"] == [{"sensor": "heartbeat", "value": 1, "topic": "heartbeat"}]
    assert (heartbeat["cron"], heartbeat["once"]) == ("*/5 * * * *", False)
    assert any("Heartbeat" in w and "UTC" in w for w in imported.warnings)


def test_a_get_polled_by_an_inject_becomes_rest_in_on_its_schedule(imported):
    flow = nodes(imported)
    assert flow["quality_api"] == {
        "type": "rest_in",
        "name": "Quality API",
        "base_url": "https://quality.plant.local/api/v1",
        "endpoints": ["latest"],
        "poll_interval": 10.0,
        "token": "${QUALITY_API_TOKEN}",
        "headers": {"Accept": "application/json", "X-Api-Key": "${QUALITY_API_X_API_KEY}"},
        "wires": ["quality"],
    }
    assert "every_10_s" not in flow  # the inject is the poll schedule now
    assert "a10000000000000c" not in imported.ids
    assert imported.ids["a10000000000000d"] == "quality_api"


def test_unmapped_nodes_are_listed_with_reasons_and_not_in_the_flow(imported):
    listed = {(u.id, u.type, u.name) for u in imported.unmapped}
    assert listed == {("a10000000000000b", "ui_gauge", "Furnace gauge")}
    assert all(u.reason for u in imported.unmapped)
    assert "dropped" in imported.unmapped[0].reason
    assert any("unmapped ui_gauge 'Furnace gauge' dropped" in w for w in imported.warnings)
    types = {n["type"] for n in nodes(imported).values()}
    assert types == {
        "mqtt_in",
        "inject",
        "switch",
        "change",
        "delay",
        "debug",
        "rest_in",
        "mqtt_out",
        "python",  # the function node, holding its JavaScript until translated
    }
    header = to_yaml(imported).split("version: 1")[0]
    assert "ui_gauge 'Furnace gauge' (a10000000000000b)" in header
    assert "compute_oee (was function 'Compute OEE')" in header
    assert "PLANT_BROKER_PASSWORD" in header


def test_the_imported_flow_validates(imported):
    code = {**imported.flow, "settings": {"allow_code": True}}  # the function's python stub
    checked = check_text(code, env=env_for(imported))
    assert checked.errors == []
    assert [p.message for p in checked.problems] == []
    text = to_yaml(imported) + "settings: {allow_code: true}\n"
    reread = check_text(text, env=env_for(imported))  # the YAML says the same
    assert reread.errors == [] and set(reread.flow.nodes) == set(nodes(imported))


def test_names_become_unique_readable_ids_and_positions_the_layout(imported):
    assert set(nodes(imported)) == set(imported.flow["layout"])
    assert imported.flow["layout"]["classify_temperature"] == {"x": 360, "y": 140}
    assert imported.flow["layout"]["heartbeat"]["y"] > 420  # the second tab sits below
    assert imported.flow["name"] == "Line 3 furnace, Status"
    assert "Alarms above 1400 C" in imported.flow["description"]
    twins = tiny(
        {"id": "x1", "type": "debug", "name": "Log"},
        {"id": "x2", "type": "debug", "name": "Log"},
        {"id": "x3", "type": "debug", "name": "2nd log!"},
    )
    result = import_nodered(twins)
    assert list(nodes(result)) == ["log", "log_2", "n_2nd_log"]


def test_one_tab_can_be_picked(imported):
    result = import_nodered(FLOWS.read_text(encoding="utf-8"), tab="Status")
    assert set(nodes(result)) == {"heartbeat", "publish_status"}
    assert result.unmapped == [] and result.flow["name"] == "Status"
    assert result.flow["layout"]["heartbeat"] == {"x": 130, "y": 60}
    by_id = import_nodered(FLOWS.read_text(encoding="utf-8"), tab=TAB)
    assert "classify_temperature" in nodes(by_id) and "heartbeat" not in nodes(by_id)
    with pytest.raises(NodeRedError, match=r"no tab 'Nope'.*'Line 3 furnace', 'Status'"):
        import_nodered(FLOWS.read_text(encoding="utf-8"), tab="Nope")


def test_an_imported_inject_switch_change_part_routes_rows(imported):
    part = export_selection(
        imported.flow, ["test_readings", "classify_temperature", "mark_alarm", "high", "cold"]
    )
    assert part["nodes"]["classify_temperature"]["wires"] == {
        "gt_1400": ["mark_alarm"],
        "btwn_1250_1400": ["high"],
        "lt_900": ["cold"],
    }
    assert "wires" not in part["nodes"]["mark_alarm"]  # its delay was not selected
    for sink in ("high", "cold", "alarms", "normal"):
        part["nodes"][sink] = {"type": "capture"}
    part["nodes"]["mark_alarm"]["wires"] = ["alarms"]
    part["nodes"]["classify_temperature"]["wires"]["otherwise"] = ["normal"]
    result = run_flow(part)
    assert result.frame("high")["value"].tolist() == [1300]
    assert result.frame("cold")["value"].tolist() == [800]
    assert result.frame("normal")["value"].tolist() == [1000]
    alarms = result.frame("alarms")
    assert alarms["value"].tolist() == [1500, 0]  # the 9999 fault code became 0
    assert set(alarms["topic"]) == {"furnace/alarm"} and set(alarms["unit"]) == {"degC"}


def test_switch_operators_and_what_does_not_map():
    def switch(rules: list[dict[str, Any]], **extra: Any) -> Any:
        node = {"id": "s", "type": "switch", "name": "S", "property": "payload", "rules": rules}
        return import_nodered(tiny({**node, **extra}))

    result = switch(
        [
            {"t": "eq", "v": "run", "vt": "str"},
            {"t": "neq", "v": "LIMIT", "vt": "env"},
            {"t": "regex", "v": "^(idle|stop)$", "vt": "str", "case": False},
            {"t": "null"},
            {"t": "nnull"},
            {"t": "true"},
            {"t": "btwn", "v": "9", "vt": "num", "v2": "2.5", "v2t": "num"},
        ],
        outputLabels=["Running", "", "", "", "", "", ""],
    )
    assert nodes(result)["s"]["rules"] == {
        "running": "value == 'run'",
        "neq_limit": "value != ${LIMIT}",
        "match_idle_stop": "value in ['idle', 'stop']",
        "is_null": "value != value",
        "not_null": "value == value",
        "is_true": "value == True",
        "btwn_2_5_9": "(value >= 2.5) and (value <= 9)",
    }
    assert nodes(result)["s"]["mode"] == "all"
    assert check_text(result.flow, env={"LIMIT": "3"}).errors == []
    for rules, why in (
        ([{"t": "regex", "v": "fault.*", "vt": "str"}], "no regular expressions"),
        ([{"t": "cont", "v": "x", "vt": "str"}], "rule 'cont'"),
        ([{"t": "gt", "v": "limit", "vt": "flow"}], "compares with a flow value"),
        ([{"t": "else"}, {"t": "gt", "v": "1", "vt": "num"}], "not the last rule"),
    ):
        [unmapped] = switch(rules).unmapped
        assert unmapped.type == "switch" and why in unmapped.reason


def test_delay_http_and_mqtt_variants():
    result = import_nodered(
        tiny(
            {"id": "d1", "type": "delay", "name": "Hold", "pauseType": "delay",
             "timeout": "2", "timeoutUnits": "minutes"},
            {"id": "d2", "type": "delay", "name": "Per topic", "pauseType": "queue"},
            {"id": "p", "type": "http request", "name": "Hook", "method": "POST",
             "url": "https://hooks.local/x", "authType": "basic", "ret": "txt",
             "credentials": {"user": "u", "password": "literal-pw"}, "wires": [["dbg"]]},
            {"id": "dbg", "type": "debug"},
            {"id": "g", "type": "http request", "name": "Lone GET", "method": "GET",
             "url": "https://x.local/a", "ret": "obj"},
            {"id": "m", "type": "mqtt in", "name": "WS", "topic": "a", "broker": "ws1"},
            {"id": "ws1", "type": "mqtt-broker", "broker": "wss://cloud.local", "port": "443"},
            {"id": "u", "type": "mqtt out", "name": "To topic", "broker": "c0ffee0000000001"},
        )
    )  # fmt: skip
    flow = nodes(result)
    assert flow["hold"]["mode"] == "delay" and flow["hold"]["delay"] == 120
    assert flow["hook"] == {
        "type": "rest_out",
        "name": "Hook",
        "url": "https://hooks.local/x",
        "username": "${HOOK_USERNAME}",
        "password": "${HOOK_PASSWORD}",
    }
    assert flow["to_topic"]["topic"] == "{topic}"
    reasons = {u.id: u.reason for u in result.unmapped}
    assert set(reasons) == {"d2", "g", "m"}
    assert "per msg.topic" in reasons["d2"]
    assert "not triggered by one inject" in reasons["g"]
    assert "WebSockets" in reasons["m"]
    assert any("output 1 is not imported" in w for w in result.warnings)
    assert check_text(result.flow, env=env_for(result)).errors == []


def test_change_variants_old_style_rules_and_malformed_nodes():
    result = import_nodered(
        tiny(
            {"id": "c", "type": "change", "name": "To F", "rules": [
                {"t": "set", "p": "payload", "pt": "msg", "to": "payload * 9 / 5 + 32",
                 "tot": "jsonata"},
                {"t": "move", "p": "payload.temp", "pt": "msg", "to": "reading", "tot": "msg"},
                {"t": "set", "p": "payload", "pt": "msg", "to": "$now()", "tot": "jsonata"},
                {"t": "change", "p": "payload", "pt": "msg", "from": "a", "fromt": "str",
                 "to": "b", "tot": "str"},
            ]},
            {"id": "s", "type": "switch", "name": "Old", "rules": [{"t": "gt", "v": "5"}]},
            {"id": "bad", "type": "switch", "name": "Bad", "rules": ["not a rule"]},
            {"id": "none", "type": "change", "name": "None", "rules": [
                {"t": "set", "p": "x", "pt": "global", "to": "1", "tot": "num"}]},
        )
    )  # fmt: skip
    assert nodes(result)["to_f"]["operations"] == [
        {"op": "set", "column": "value", "expr": "value * 9 / 5 + 32"},
        {"op": "move", "column": "temp", "to": "reading"},
    ]
    assert sum("To F" in w and "not imported" in w for w in result.warnings) == 2
    assert nodes(result)["old"]["rules"] == {"gt_5": "value > 5"}
    reasons = {u.id: u.reason for u in result.unmapped}
    assert set(reasons) == {"bad", "none"} and reasons["bad"].startswith("malformed switch")
    assert check_text(result.flow).errors == []


def test_an_inject_that_also_feeds_others_stays_beside_the_rest_in():
    result = import_nodered(
        tiny(
            {"id": "i", "type": "inject", "name": "Tick", "repeat": "30", "once": True,
             "wires": [["g", "d"]]},
            {"id": "g", "type": "http request", "name": "API", "method": "GET",
             "url": "http://api.local:8080", "ret": "obj", "wires": [["d"]]},
            {"id": "d", "type": "debug", "name": "Log"},
        )
    )  # fmt: skip
    flow = nodes(result)
    assert flow["tick"]["wires"] == ["log"] and flow["tick"]["interval"] == 30
    assert flow["api"]["base_url"] == "http://api.local:8080" and "endpoints" not in flow["api"]
    assert flow["api"]["poll_interval"] == 30 and flow["api"]["wires"] == ["log"]
    assert check_text(result.flow).errors == []


def test_junctions_and_links_are_followed_through():
    result = import_nodered(
        tiny(
            {"id": "i", "type": "inject", "name": "Go", "wires": [["j"]]},
            {"id": "j", "type": "junction", "wires": [["lo"]]},
            {"id": "lo", "type": "link out", "mode": "link", "links": ["li"]},
            {"id": "li", "type": "link in", "links": ["lo"], "wires": [["out"]]},
            {"id": "out", "type": "debug", "name": "Seen"},
        )
    )
    assert nodes(result)["go"]["wires"] == ["seen"]
    assert result.unmapped == []


def test_input_that_is_no_flow_export_is_refused():
    for bad in ("{not json", '{"a": 1}', "[1, 2]"):
        with pytest.raises(NodeRedError):
            import_nodered(bad)
    wrapped = {"rev": "abc", "flows": json.loads(FLOWS.read_text(encoding="utf-8"))}
    assert "classify_temperature" in nodes(import_nodered(json.dumps(wrapped)))


def test_cli_import_writes_yaml_and_exit_codes(cli_env, tmp_path):
    out = tmp_path / "line3.yaml"
    partial = flowengine("import", str(FLOWS), "-o", str(out), env=cli_env)
    assert partial.returncode == 1, partial.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Imported from Node-RED (flows.json)")
    assert "function 'Compute OEE'" in text.split("version: 1")[0]
    assert "compute_oee (was function 'Compute OEE')" in partial.stderr
    assert "  ui_gauge 'Furnace gauge' (a10000000000000b): dashboard widget" in partial.stderr
    assert "invalid:" in partial.stderr and "--allow-code" in partial.stderr
    assert not [s for s in SECRETS if s in text]
    valid = flowengine(
        "validate",
        str(out),
        "--allow-code",
        env={**cli_env, **env_for(import_nodered(FLOWS.read_text()))},
    )
    assert valid.returncode == 0, valid.stderr

    whole = flowengine("import", str(FLOWS), "--tab", "Status", env=cli_env)
    assert whole.returncode == 3, whole.stderr  # all imported and valid, but not the same
    assert "publish_status:" in whole.stdout and "Not imported" not in whole.stderr
    assert "publish_status (was mqtt out 'Publish status'):" in whole.stderr

    bad = tmp_path / "flows.json"
    bad.write_text("[{oops", encoding="utf-8")
    for args in ([str(bad)], [str(tmp_path / "missing.json")], [str(FLOWS), "--tab", "Nope"]):
        refused = flowengine("import", *args, env=cli_env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error:") and "Traceback" not in refused.stderr
