"""The property panel: a form generated from a node type's config JSON Schema.

One control per field type (text, number, switch, select for enums, chips for lists, key/value
rows for mappings, monospace text for code and expressions, YAML for anything nested), required
marks and defaults from the schema, secrets masked, advanced fields folded, and each field's
problems from the validator shown under it. Edits go to the model on blur or Enter (one undo
step each), and :meth:`PropertyPanel.flush` commits what is typed but not yet applied, so an action
(Deploy, Export) never reads the model before the field the user is still in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.value_element import ValueElement
from ruamel.yaml.error import YAMLError

from flowengine.envsubst import has_reference
from flowengine.model import NODE_KEYS
from flowengine.ui.fields import FieldSpec, field_errors, field_specs, from_yaml, to_yaml
from flowengine.ui.model import EditorModel
from flowengine.ui.palette import summary

#: Builds one field's control: (node id, spec, label, value).
_Builder = Callable[[str, FieldSpec, str, Any], None]


class PropertyPanel:
    """The form of the selected node. ``on_edit()`` is called after every change to the model."""

    def __init__(self, model: EditorModel, on_edit: Callable[[], Any]) -> None:
        self.model = model
        self.on_edit = on_edit
        self.node_id: str | None = None
        self.error_labels: dict[str, ui.label] = {}
        #: Each text-like control's "apply what it shows" (blur, Enter and :meth:`flush` call it);
        #: False when its text cannot be applied (invalid YAML).
        self.commits: list[Callable[[], bool]] = []
        self.rename_commit: Callable[[], None] = lambda: None
        self.container = ui.column().classes("w-full gap-1").mark("properties")
        self.show(None)

    # ---- building ----------------------------------------------------------------------
    def show(self, node_id: str | None) -> None:
        """Build the form of ``node_id`` (or a hint when nothing is selected)."""
        self.node_id = node_id if node_id in self.model.nodes else None
        self.error_labels = {}
        self.commits = []
        self.rename_commit = lambda: None
        self.container.clear()
        with self.container:
            if self.node_id is None:
                ui.label("Select a node to edit it (double-click on the canvas).").classes(
                    "text-grey-7"
                )
                return
            self._build(self.node_id)
        self.refresh_errors()

    def _build(self, node_id: str) -> None:
        type_name = self.model.node_type(node_id)
        info = self.model.describe_node(node_id)  # a subflow instance: its params
        values = self.model.form_values(node_id)
        with ui.row().classes("items-center w-full"):
            ui.label(type_name).classes("text-h6")
            ui.space()
            # a title, not a tooltip: a tooltip built while this tab is hidden has no anchor
            ui.button(icon="delete", on_click=lambda: self._delete(node_id)).props(
                'flat dense round title="Delete node"'
            )
        if info and info["description"]:
            ui.label(summary(info["description"])).classes("text-caption text-grey-8")
        self.error_labels[""] = self._error_label()
        ident = ui.input("Id", value=node_id).props("dense").classes("w-full").mark("prop-id")
        ident.on("blur", lambda: self._rename(node_id, ident.value))
        ident.on("keydown.enter", lambda: self._rename(node_id, ident.value))
        self.rename_commit = lambda: self._rename(node_id, ident.value)
        self._text(node_id, "name", "Name", values.get("name"), required=False)
        disabled = ui.switch("Disabled", value=bool(values.get("disabled", False)))
        disabled.on_value_change(lambda e: self._set(node_id, "disabled", e.value or None))
        if info is None:
            ui.label(f"unknown type '{type_name}'").classes("text-negative")
            return
        specs = field_specs(info["schema"])
        known = {s.name for s in specs} | set(NODE_KEYS)
        for spec in [s for s in specs if not s.advanced]:
            self._field(node_id, spec, values)
        advanced = [s for s in specs if s.advanced]
        if advanced:
            with ui.expansion("Advanced").classes("w-full").props("dense").mark("advanced"):
                for spec in advanced:
                    self._field(node_id, spec, values)
        for name in [k for k in values if k not in known]:  # unknown keys: show to fix
            spec = FieldSpec(name, "yaml", name, "not a field of this type", False, None)
            self._field(node_id, spec, values)

    def _error_label(self) -> ui.label:
        label = ui.label("").classes("text-negative text-caption whitespace-pre-line")
        label.visible = False
        return label

    def _field(self, node_id: str, spec: FieldSpec, values: dict[str, Any]) -> None:
        """One field: its control (by kind), its hint with the default, its error line."""
        value = values.get(spec.name)
        label = spec.title + (" *" if spec.required else "")
        hint = spec.description
        if spec.default not in (None, "", [], {}) and not spec.required:
            hint += f" (default: {spec.default})"
        kind = spec.kind
        if isinstance(value, str) and kind in ("number", "integer", "bool", "choice", "list"):
            kind = "text"  # a ${VAR} reference where a number or choice goes
        builders: dict[str, _Builder] = {
            "text": self._text_field,
            "code": self._code_field,
            "number": self._number_field,
            "integer": self._number_field,
            "bool": self._bool_field,
            "choice": self._choice_field,
            "list": self._list_field,
            "dict": self._dict_field,
        }
        box = ui.column().classes("w-full gap-0").mark(f"field-{spec.name}")
        with box.props(f"data-field={spec.name}"):
            builders.get(kind, self._yaml_field)(node_id, spec, label, value)
            if hint:
                ui.label(hint).classes("text-caption text-grey-7")
            self.error_labels[spec.name] = self._error_label()

    def _text_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        default = "" if spec.default is None else str(spec.default)
        self._text(node_id, spec.name, label, value, spec.required, spec.secret, default)

    def _code_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        area = (
            ui.textarea(label, value=value or "")
            .props("dense autogrow input-class=font-mono")
            .classes("w-full")
            .mark(f"prop-{spec.name}")
        )
        self._commit_on(area, lambda: self._set_text(node_id, spec.name, area.value), enter=False)

    def _number_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        num = (
            ui.number(
                label,
                value=value,
                min=spec.minimum,
                max=spec.maximum,
                placeholder=str(spec.default) if spec.default is not None else None,
            )
            .props("dense")
            .classes("w-full")
            .mark(f"prop-{spec.name}")
        )
        cast = int if spec.kind == "integer" else float
        self._commit_on(
            num,
            lambda: self._set(node_id, spec.name, None if num.value is None else cast(num.value)),
        )

    def _bool_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        switch = ui.switch(label, value=bool(spec.default if value is None else value))
        switch.mark(f"prop-{spec.name}")
        switch.on_value_change(lambda e: self._set(node_id, spec.name, e.value))

    def _choice_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        options = list(spec.choices)
        shown = value if value in options else spec.default  # the default, as Node-RED
        select = (
            ui.select(options, label=label, value=shown if shown in options else None)
            .props("dense" + (" clearable" if not spec.required else ""))
            .classes("w-full")
            .mark(f"prop-{spec.name}")
        )
        select.on_value_change(lambda e: self._set(node_id, spec.name, e.value))

    def _list_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        chips = (
            ui.input_chips(label, value=[str(v) for v in value or []])
            .props("dense")
            .classes("w-full")
            .mark(f"prop-{spec.name}")
        )
        cast_item: Callable[[str], Any] = {"integer": int, "number": float}.get(spec.item_type, str)
        chips.on_value_change(lambda e: self._set_list(node_id, spec.name, e.value, cast_item))

    def _dict_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        self._mapping(node_id, spec, label, value if isinstance(value, dict) else {})

    def _yaml_field(self, node_id: str, spec: FieldSpec, label: str, value: Any) -> None:
        """Anything the other controls do not fit (nested values, unknown keys), as YAML."""
        area = (
            ui.textarea(f"{label} (YAML)", value=to_yaml(value))
            .props("dense autogrow input-class=font-mono")
            .classes("w-full")
            .mark(f"prop-{spec.name}")
        )
        self._commit_on(area, lambda: self._set_yaml(node_id, spec.name, area.value), enter=False)

    def _text(
        self,
        node_id: str,
        name: str,
        label: str,
        value: Any,
        required: bool,
        secret: bool = False,
        placeholder: str = "",
    ) -> None:
        masked = secret and not has_reference(value)
        field = (
            ui.input(
                label,
                value="" if value is None else str(value),
                password=masked,
                placeholder=placeholder or None,  # the default, greyed in the empty field
            )
            .props("dense")
            .classes("w-full")
            .mark(f"prop-{name}")
        )
        self._commit_on(field, lambda: self._set_text(node_id, name, field.value))

    def _mapping(self, node_id: str, spec: FieldSpec, label: str, value: dict[str, Any]) -> None:
        rows: list[tuple[ui.input, ui.input]] = []
        cast: Callable[[str], Any] = float if spec.item_type == "number" else str

        def collect() -> bool:
            out: dict[str, Any] = {}
            for key, val in rows:
                if key.value:
                    try:
                        out[key.value] = cast(val.value)
                    except ValueError:
                        out[key.value] = val.value
            return self._set(node_id, spec.name, out or None)

        def add_row(k: str = "", v: Any = "") -> None:
            with box, ui.row().classes("w-full no-wrap items-center gap-1") as row:
                key = ui.input(value=k, placeholder="name").props("dense").classes("w-1/3")
                val = (
                    ui.input(value=str(v), placeholder="value")
                    .props("dense input-class=font-mono")
                    .classes("grow")
                )
                key.mark(f"{spec.name}-key")
                val.mark(f"{spec.name}-value")
                pair = (key, val)
                rows.append(pair)
                for control in pair:
                    control.on("blur", collect)
                    control.on("keydown.enter", collect)

                def remove() -> None:
                    rows.remove(pair)
                    row.delete()
                    collect()

                ui.button(icon="close", on_click=remove).props("flat dense round size=sm").mark(
                    f"{spec.name}-remove"
                )

        ui.label(label).classes("text-caption")
        box = ui.column().classes("w-full gap-0").mark(f"prop-{spec.name}")
        for k, v in value.items():
            add_row(k, v)
        shown = [(k.value, v.value) for k, v in rows]
        self.commits.append(lambda: [(k.value, v.value) for k, v in rows] == shown or collect())
        ui.button("add", icon="add", on_click=lambda: add_row()).props("flat dense size=sm").mark(
            f"{spec.name}-add"
        )

    # ---- applying ----------------------------------------------------------------------
    def _commit_on(
        self, control: ValueElement[Any], commit: Callable[[], bool], enter: bool = True
    ) -> None:
        """Apply ``control`` on blur, on Enter (single-line controls), and on :meth:`flush` once
        its text differs from what the form showed (a field never touched stays as it is)."""
        control.on("blur", commit)
        if enter:
            control.on("keydown.enter", commit)
        shown = control.value
        self.commits.append(lambda: control.value == shown or commit())

    def flush(self) -> bool:
        """Apply what every field shows (the one being typed in has had no blur yet); False
        when a field's text cannot be applied (its error is shown under it).

        The browser sends a field's text on every keystroke, in order on the one websocket, so
        the text an action (a Deploy click) reads here is what the user typed before clicking.
        """
        ok = all([commit() for commit in list(self.commits)])  # every one, even after a failure
        if self.node_id is not None and ok:
            self.rename_commit()  # last: a rename rebuilds the form
        return ok

    def _set(self, node_id: str, name: str, value: Any) -> bool:
        if self.model.set_field(node_id, name, value):
            self.on_edit()
            self.refresh_errors()
        return True

    def _set_text(self, node_id: str, name: str, text: str | None) -> bool:
        return self._set(node_id, name, text if text else None)

    def _set_list(
        self, node_id: str, name: str, items: list[str], cast: Callable[[str], Any]
    ) -> None:
        try:
            values = [cast(v) for v in items]
        except ValueError:
            self._show_error(name, f"'{name}': every item must be a {cast.__name__}")
            return
        self._set(node_id, name, values or None)

    def _set_yaml(self, node_id: str, name: str, text: str) -> bool:
        try:
            value = from_yaml(text)
        except YAMLError as exc:
            self._show_error(name, f"invalid YAML: {exc}")
            return False
        return self._set(node_id, name, value)

    def _rename(self, node_id: str, new: str) -> None:
        if new != node_id and self.model.rename(node_id, new):
            self.on_edit()
            self.show(new)
        elif new != node_id:
            self._show_error("", f"cannot rename to '{new}' (taken or invalid)")

    def _delete(self, node_id: str) -> None:
        self.model.delete([node_id], [])
        self.on_edit()
        self.show(None)

    def _show_error(self, name: str, text: str) -> None:
        label = self.error_labels.get(name) or self.error_labels.get("")
        if label is not None:
            label.text = text
            label.visible = True

    def refresh_errors(self) -> None:
        """Show the validator's current problems of the node under their fields."""
        if self.node_id is None:
            return
        problems = self.model.node_problems().get(self.node_id, [])
        by_field, general = field_errors(problems)
        for name, label in self.error_labels.items():
            messages = general if name == "" else by_field.pop(name, [])
            label.text = "\n".join(messages)
            label.visible = bool(messages)
        leftover = [m for ms in by_field.values() for m in ms]
        if leftover and "" in self.error_labels:
            top = self.error_labels[""]
            top.text = "\n".join([*filter(None, [top.text]), *leftover])
            top.visible = True
