"""The editor model, without a browser: edits, round trips, history, clipboard, validation."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from flowengine.logs import MASK
from flowengine.problems import FlowError
from flowengine.ui.model import DiskChanged, EditorModel, flow_files, parse_wire_key, wire_key
from tests.helpers.samples import SAMPLE

#: A flow with comments, several node types and a layout (line3 as it first shipped): the
#: tests edit this, so that they do not change when the demo flow does.


@pytest.fixture
def line3(tmp_path: Path) -> Path:
    path = tmp_path / "line3.yaml"
    path.write_text(SAMPLE)
    return path


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def layout_lines(text: str) -> set[str]:
    lines = text.splitlines()
    return set(lines[lines.index("layout:") :])


def test_move_changes_only_layout_lines_of_the_saved_file(line3: Path) -> None:
    before = line3.read_text()
    model = EditorModel.open(line3)
    assert model.move({"plc": {"x": 100, "y": 220}, "console": {"x": 1000.5, "y": 60}})
    model.save()
    after = line3.read_text()
    changed = changed_lines(before, after)
    assert sorted(changed) == sorted(
        [
            "-  plc: {x: 80, y: 160}",
            "+  plc: {x: 100, y: 220}",
            "-  console: {x: 960, y: 60}",
            "+  console: {x: 1000.5, y: 60}",
        ]
    )
    assert all(line[1:] in layout_lines(before) | layout_lines(after) for line in changed)


def test_comments_kept_through_edits_and_save(line3: Path) -> None:
    before = line3.read_text()
    model = EditorModel.open(line3)
    new = model.add_node("filter", 300, 400)
    model.set_field(new, "query", "value > 3")
    model.wire("plc", "out", new)
    model.save()
    after = line3.read_text()
    for line in before.splitlines():
        if "#" in line:
            assert line in after.splitlines()
    assert "    wires: [furnace, archive, filter1]" in after
    assert "  filter1: {x: 300, y: 400}" in after
    assert EditorModel.open(line3).problems() == []


def test_add_node_ids_are_readable_and_unique(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert model.add_node("filter", 0, 0) == "filter1"
    assert model.add_node("filter", 0, 0) == "filter2"
    assert model.add_node("mqtt_in", 0, 0) == "mqtt_in1"
    with pytest.raises(KeyError, match="did you mean 'filter'"):
        model.add_node("filtr", 0, 0)


def test_undo_redo_walk_the_history_exactly(line3: Path) -> None:
    model = EditorModel.open(line3)
    texts = [model.text]
    model.add_node("debug", 10, 10)
    texts.append(model.text)
    model.wire("too_far", "out", "debug1")
    texts.append(model.text)
    model.delete(["furnace"], [])
    texts.append(model.text)
    assert not model.can_redo
    for expected in reversed(texts[:-1]):
        assert model.undo()
        assert model.text == expected
    assert not model.undo()
    assert not model.dirty
    for expected in texts[1:]:
        assert model.redo()
        assert model.text == expected
    assert model.dirty
    model.undo()
    model.move({"plc": {"x": 1, "y": 2}})  # a new edit drops the redo branch
    assert not model.can_redo


def test_noop_edits_record_no_history(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert not model.move({"plc": {"x": 80, "y": 160}})
    assert not model.set_field("console", "rows", 3)
    assert not model.wire("plc", "out", "furnace")  # already wired
    assert not model.wire("plc", "out", "plc")  # self loop
    assert not model.can_undo and not model.dirty


def test_paste_gives_new_ids_and_keeps_internal_wires_only(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert model.copy(["furnace", "deviation", "nope"]) == 2
    new = model.paste(400, 500)
    assert new == ["filter1", "compute1"]
    nodes = model.flow().nodes
    assert [str(t) for t in nodes["filter1"].wires["out"]] == ["compute1"]
    assert nodes["compute1"].wires == {}  # its wire to too_far left the copy
    assert nodes["filter1"].config == nodes["furnace"].config
    assert model.position("filter1") == (400, 500)
    assert model.position("compute1") == (620, 500)  # offsets kept
    again = model.paste(0, 0)
    assert again == ["filter2", "compute2"]


def test_validation_errors_are_carried_per_node(line3: Path) -> None:
    model = EditorModel.open(line3)
    model.set_field("furnace", "query", None)  # required field removed
    model.set_field("console", "rows", -1)
    model.set_field("console", "colour", "red")  # unknown field
    per_node = model.node_problems()
    assert any("missing required field 'query'" in p.message for p in per_node["furnace"])
    messages = [p.message for p in per_node["console"]]
    assert any("field 'rows'" in m for m in messages)
    assert any("unknown field 'colour'" in m for m in messages)
    nodes, _ = model.to_view()
    errors = {n["id"]: n["error"] for n in nodes}
    assert "query" in (errors["furnace"] or "")
    assert errors["plc"] is None


def test_view_ports_follow_switch_rules_and_wire_keys(line3: Path) -> None:
    model = EditorModel.open(line3)
    sw = model.add_node("switch", 0, 0)
    model.set_field(sw, "rules", {"alarm": "value > 1400", "high": "value > 1250"})
    assert model.wire(sw, "alarm", "console")
    assert model.wire(sw, "high", "alerts")
    nodes, wires = model.to_view()
    view = next(n for n in nodes if n["id"] == sw)
    assert view["outputs"] == ["alarm", "high", "otherwise", "error"]
    assert view["inputs"] == ["in"]
    plc = next(n for n in nodes if n["id"] == "plc")
    assert plc["inputs"] == [] and plc["outputs"] == ["out", "error"]
    keys = {w["key"] for w in wires}
    assert wire_key(sw, "alarm", "console", "in") in keys
    assert parse_wire_key("a:out->b:in") == ("a", "out", "b", "in")


def test_unwire_and_delete_clean_up_wires_and_layout(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert model.delete([], ["too_far:out->console:in"])
    assert [str(t) for t in model.flow().nodes["too_far"].wires["out"]] == ["alerts"]
    model.delete(["alerts"], [])
    assert "wires" not in model.nodes["too_far"]
    assert "alerts" not in model.layout
    model.wire("plc", "error", "console")
    assert "error: [console]" in model.text
    assert model.unwire("plc:error->console:in")
    assert "error:" not in model.text


def test_secret_fields_are_masked_in_the_form_and_never_overwritten_by_the_mask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mq.yaml"
    path.write_text(
        "version: 1\nnodes:\n  src:\n    type: mqtt_in\n    username: u\n"
        "    password: hunter2\n    wires: [out]\n"
        "  other:\n    type: mqtt_in\n    password: ${MQ_PASS}\n    wires: [out]\n"
        "  out:\n    type: debug\n"
    )
    model = EditorModel.open(path)
    assert model.form_values("src")["password"] == MASK
    assert "hunter2" not in str(model.form_values("src"))
    assert model.form_values("other")["password"] == "${MQ_PASS}"
    assert not model.set_field("src", "password", MASK)  # the form sent the mask back
    model.set_field("src", "username", "v")
    model.save()
    assert "password: hunter2" in path.read_text()
    assert model.set_field("src", "password", "${MQ_PASS}")
    model.save()
    assert "hunter2" not in path.read_text()


def test_save_refuses_when_the_file_changed_on_disk(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert not model.changed_on_disk()
    model.move({"plc": {"x": 0, "y": 0}})
    line3.write_text(line3.read_text() + "# edited elsewhere\n")
    assert model.changed_on_disk()
    with pytest.raises(DiskChanged):
        model.save()
    model.save(force=True)
    assert not model.changed_on_disk() and not model.dirty
    model.reload()
    assert model.position("plc") == (0, 0)


def test_set_config_replaces_fields_in_one_undo_step(line3: Path) -> None:
    model = EditorModel.open(line3)
    model.set_config("console", {"name": "Show", "rows": 7, "level": "warning"})
    assert model.form_values("console") == {
        "type": "debug",
        "name": "Show",
        "rows": 7,
        "level": "warning",
    }
    model.undo()
    assert model.form_values("console")["rows"] == 3


def test_rename_rewrites_wires_and_layout(line3: Path) -> None:
    model = EditorModel.open(line3)
    assert model.rename("too_far", "beyond")
    assert "beyond: {x: 740, y: 100}" in model.text
    assert [str(t) for t in model.flow().nodes["deviation"].wires["out"]] == ["beyond"]
    assert model.problems() == []
    assert not model.rename("beyond", "plc")


def test_create_a_new_flow_in_a_folder(tmp_path: Path) -> None:
    model = EditorModel.create(tmp_path / "new.yaml")
    src = model.add_node("simulate", 80, 80)
    dbg = model.add_node("debug", 300, 80)
    model.wire(src, "out", dbg)
    model.save()
    again = EditorModel.open(tmp_path / "new.yaml")
    assert again.problems() == []
    assert list(again.flow().nodes) == ["simulate1", "debug1"]
    assert flow_files(tmp_path) == [tmp_path / "new.yaml"]
    with pytest.raises(FileExistsError):
        EditorModel.create(tmp_path / "new.yaml")


def test_history_is_bounded(line3: Path) -> None:
    model = EditorModel.open(line3)
    for i in range(150):
        model.move({"plc": {"x": i + 1000, "y": 0}})
    steps = 0
    while model.undo():
        steps += 1
    assert steps == 99
    assert os.path.exists(line3)


def test_import_adds_nodes_of_an_exported_flow_under_new_ids(line3: Path) -> None:
    model = EditorModel.open(line3)
    new = model.import_nodes(SAMPLE, 100, 600)
    assert new[:2] == ["simulate1", "filter1"]
    assert len(new) == 7
    nodes = model.flow().nodes
    assert [str(t) for t in nodes["simulate1"].wires["out"]] == [
        "filter1",
        "file2",
    ]  # furnace, archive
    assert model.position("simulate1") == (100, 700)  # offsets from the file's layout kept
    assert model.problems() == []
    model.undo()
    assert "simulate1" not in model.nodes
    with pytest.raises(FlowError):
        model.import_nodes("just text", 0, 0)


def test_import_takes_a_node_red_export_and_lists_what_did_not_map(line3: Path) -> None:
    model = EditorModel.open(line3)
    text = (Path(__file__).resolve().parents[1] / "data" / "nodered" / "flows.json").read_text()
    new, notes = model.import_any(text, 100, 600)
    types = {str(model.flow().nodes[i].type) for i in new}
    assert {"mqtt_in", "switch", "debug"} <= types
    assert any(n.startswith("not imported: ui_gauge") for n in notes)
    assert all(model.position(i)[1] >= 600 for i in new)
    assert model.import_any(SAMPLE, 0, 0)[1] == []  # our own format: nothing to note


def test_revision_moves_on_every_document_change(line3: Path) -> None:
    model = EditorModel.open(line3)
    seen = [model.revision]
    model.add_node("debug", 0, 0)
    seen.append(model.revision)
    model.undo()
    seen.append(model.revision)
    model.reload()
    seen.append(model.revision)
    assert seen == sorted(set(seen))


def test_a_file_without_layout_opens_clean(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text("version: 1\nnodes:\n  a:\n    type: debug\n")
    model = EditorModel.open(path)
    assert not model.dirty
    model.move({"a": {"x": 10, "y": 20}})
    model.save()
    assert path.read_text().endswith("layout:\n  a: {x: 10, y: 20}\n")


def test_create_writes_json_for_a_json_name_and_refuses_other_names(tmp_path: Path) -> None:
    model = EditorModel.create(tmp_path / "pumps.json")
    assert json.loads((tmp_path / "pumps.json").read_text())["nodes"] == {}
    model.add_node("debug", 10, 20)
    model.save()
    saved = json.loads((tmp_path / "pumps.json").read_text())
    assert saved["name"] == "pumps" and saved["nodes"] == {"debug1": {"type": "debug"}}
    assert EditorModel.create(tmp_path / "1.yaml").flow().name == "1"  # quoted: a string
    for name in ("notes.txt", ".yaml", "bare"):
        with pytest.raises(ValueError, match=r"ends in \.yaml, \.yml or \.json"):
            EditorModel.create(tmp_path / name)
    assert not (tmp_path / "notes.txt").exists()


def test_dirty_is_worked_out_once_per_revision(
    line3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = EditorModel.open(line3)
    dumps = 0
    real = model.doc.dumps

    def counted(*args: object) -> str:
        nonlocal dumps
        dumps += 1
        return real(*args)

    monkeypatch.setattr(model.doc, "dumps", counted)
    assert not model.dirty
    assert [model.dirty for _ in range(50)] == [False] * 50
    assert dumps <= 1  # the once-a-second tick costs nothing while nothing changes
    model.move({"plc": {"x": 1, "y": 2}})
    assert model.dirty
    model.save()
    assert not model.dirty
    model.move({"plc": {"x": 3, "y": 4}})
    assert model.dirty
    model.undo()  # back to the saved text
    assert not model.dirty
    model.redo()
    assert model.dirty
    model.reload()
    assert not model.dirty


@pytest.mark.parametrize("wires", ["b", "{out: b}"])
def test_rename_rewrites_a_string_target(tmp_path: Path, wires: str) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "version: 1\nnodes:\n"
        "  a:\n    type: simulate\n    wires: " + wires + "\n"
        "  b:\n    type: debug\n"
    )
    model = EditorModel.open(path)
    assert model.rename("b", "sink")
    model.save()
    saved = EditorModel.open(path)
    assert [str(t) for t in saved.flow().nodes["a"].wires["out"]] == ["sink"]
    assert "b" not in saved.nodes and saved.problems() == []
    assert model.problems() == []


def test_disk_check_goes_by_content_not_by_the_timestamp(line3: Path) -> None:
    model = EditorModel.open(line3)
    stamp = line3.stat().st_mtime_ns
    line3.write_text(SAMPLE)  # same bytes, newer mtime: not a change
    os.utime(line3, ns=(stamp + 10**9, stamp + 10**9))
    assert not model.changed_on_disk()
    line3.write_text(SAMPLE.replace("seed: 3", "seed: 4"))  # same size, other content
    os.utime(line3, ns=(stamp + 2 * 10**9, stamp + 2 * 10**9))
    assert model.changed_on_disk()
