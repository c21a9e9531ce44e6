// The flow canvas (see canvas.py for the contract with Python).
//
// Vue renders only the static shell; nodes and wires are plain DOM/SVG elements kept in
// non-reactive maps and patched by hand, so a drag touches just the moved nodes and their
// wires, and a status or queue-fill update touches just what changed. Python owns the flow:
// gestures are reported as `change` intents and the canvas shows what `flow` says.
import { toRaw } from "vue";

const SVG = "http://www.w3.org/2000/svg";
const PORT_GAP = 20; // px between two ports on one side of a node
const MIN_K = 0.1;
const MAX_K = 3;
const DRAG_PX = 3; // screen px a press must travel before it counts as a drag
const COLORS = ["green", "yellow", "red", "grey", "blue"];
const TIMINGS = 240; // frame timings kept for tests and benchmarks
const GROUP_PAD = 14; // px between a group's box and its nodes
const GROUP_HEAD = 18; // px above the top node for the group's name

function nodeWidth(view, grid) {
  // From the label's length (measuring text would force a layout per node); longer labels
  // are cut with an ellipsis and shown whole in the tooltip.
  const text = Math.max((view.label || view.id).length, (view.type || "").length * 0.8);
  const raw = Math.min(180, Math.max(100, 28 + text * 6.4));
  return Math.max(grid, Math.floor(raw / grid) * grid);
}

function portOffsets(names, height) {
  const out = new Map();
  names.forEach((name, i) => out.set(name, height / 2 + (i - (names.length - 1) / 2) * PORT_GAP));
  return out;
}

function formatRate(rate) {
  if (typeof rate !== "number" || !Number.isFinite(rate)) return "";
  const abs = Math.abs(rate);
  if (abs >= 1e6) return `${(rate / 1e6).toFixed(1)}M rows/s`;
  if (abs >= 1e4) return `${(rate / 1e3).toFixed(0)}k rows/s`;
  if (abs >= 1e3) return `${(rate / 1e3).toFixed(1)}k rows/s`;
  if (abs >= 10 || rate === 0) return `${rate.toFixed(0)} rows/s`;
  return `${rate.toFixed(1)} rows/s`;
}

function wirePath(a, b) {
  const dx = Math.max(30, Math.abs(b.x - a.x) * 0.5);
  return `M${a.x} ${a.y}C${a.x + dx} ${a.y} ${b.x - dx} ${b.y} ${b.x} ${b.y}`;
}

function signature(view) {
  return JSON.stringify([
    view.label,
    view.type,
    view.inputs,
    view.outputs,
    view.color,
    view.icon,
    !!view.disabled,
    view.error || null,
  ]);
}

function el(tag, className, parent) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (parent) parent.appendChild(e);
  return e;
}

function svgEl(tag, className, parent) {
  const e = document.createElementNS(SVG, tag);
  if (className) e.setAttribute("class", className);
  if (parent) parent.appendChild(e);
  return e;
}

export default {
  template: `
    <div class="fe-canvas" tabindex="0"
         @pointerdown="onPointerDown" @pointermove="onHover" @wheel.prevent="onWheel"
         @dblclick="onDblClick" @keydown="onKeyDown" @keyup="onKeyUp" @blur="onBlur"
         @dragover="onDragOver" @drop="onDrop" @contextmenu.prevent="onContextMenu">
      <div ref="view" class="fe-view">
        <div ref="groups" class="fe-groups"></div>
        <svg ref="svg" class="fe-wires"><g ref="wires"></g><path ref="ghost" class="fe-ghost"></path></svg>
        <div ref="nodes" class="fe-nodes"></div>
      </div>
      <div ref="band" class="fe-band"></div>
      <div ref="menu" class="fe-menu" @pointerdown.stop @dblclick.stop @contextmenu.prevent.stop @click="onMenuClick"></div>
      <div ref="search" class="fe-search" @pointerdown.stop @dblclick.stop>
        <input ref="query" type="text" placeholder="Find nodes (id, name, type)" @input="onSearch" @keydown="onSearchKey" @change.stop>
        <span ref="hits" class="fe-hits"></span>
      </div>
      <div class="fe-tools" @pointerdown.stop @dblclick.stop>
        <button type="button" data-action="zoom-out" title="Zoom out" @click="zoomBy(1 / 1.25)">&minus;</button>
        <span ref="zoom" class="fe-zoom">100%</span>
        <button type="button" data-action="zoom-in" title="Zoom in" @click="zoomBy(1.25)">+</button>
        <button type="button" data-action="fit" title="Fit to screen" @click="fit()">&#x2922;</button>
      </div>
    </div>`,
  props: {
    grid: { type: Number, default: 20 },
    flow: { type: Object, default: null },
    status: { type: Object, default: null },
    fill: { type: Object, default: null },
    selection: { type: Object, default: null },
    fireTypes: { type: Array, default: () => [] }, // types with a "fire once" button
    toggleTypes: { type: Array, default: () => [] }, // types with an on/off toggle (debug)
  },
  created() {
    // Plain, non-reactive state: Vue never tracks the flow's nodes and wires.
    this.st = {
      nodes: new Map(), // id -> {view, sig, x, y, w, h, ins, outs, el, dot, text, rate, disk, diskRows, status, wires:Set}
      wires: new Map(), // key -> {view, g, hit, line, fill, title}
      groups: new Map(), // id -> {view, el, label}
      nodeGroup: new Map(), // node id -> group id
      debugOff: new Set(), // nodes whose toggle is off
      search: { hits: [], at: -1 },
      selNodes: new Set(),
      selWires: new Set(),
      view: { x: 0, y: 0, k: 1 },
      version: null,
      fitted: false,
      status: {},
      fill: {},
      gesture: null,
      raf: 0,
      space: false,
      hover: null, // last pointer position over the canvas (client coordinates): paste goes there
      timings: [],
      sent: 0, // change events emitted (tests wait until Python has received as many)
    };
    this.onGestureMove = (e) => this.gestureMove(e);
    this.onGestureUp = (e) => this.gestureUp(e);
  },
  mounted() {
    // After a reload or re-render Python's props hold the latest status and fill.
    Object.assign(this.st.status, toRaw(this.status) || {});
    Object.assign(this.st.fill, toRaw(this.fill) || {});
    this.applyView();
    this.loadFlow(this.flow);
    // The first flow is fitted once the canvas has a size (it may mount hidden or unsized).
    this.resizer = new ResizeObserver(() => this.autoFit());
    this.resizer.observe(this.$el);
    if (this.selection) this.setSelection(this.selection.nodes || [], this.selection.wires || []);
  },
  beforeUnmount() {
    this.resizer?.disconnect();
    this.endGesture();
    if (this.st.raf) cancelAnimationFrame(this.st.raf);
  },
  watch: {
    flow(value) {
      this.loadFlow(value);
    },
  },
  methods: {
    // ---- public methods (FlowCanvas.run_method) --------------------------------------
    setStatus(status) {
      for (const [id, s] of Object.entries(status || {})) {
        this.st.status[id] = s;
        const node = this.st.nodes.get(id);
        if (node) this.patchStatus(node, s);
      }
    },
    setFill(fill) {
      for (const [key, f] of Object.entries(fill || {})) {
        this.st.fill[key] = f;
        const wire = this.st.wires.get(key);
        if (wire) this.patchFill(wire, f);
      }
    },
    setSelection(nodes, wires) {
      this.select(new Set(nodes), new Set(wires), false);
    },
    setToggles(states) {
      // Python tells which toggles are on (id -> bool), e.g. after a reload.
      for (const [id, on] of Object.entries(states || {})) {
        if (on) this.st.debugOff.delete(id);
        else this.st.debugOff.add(id);
        const node = this.st.nodes.get(id);
        if (node?.toggle) this.patchToggle(node);
      }
    },
    fit() {
      const { nodes } = this.st;
      const width = this.$el.clientWidth;
      const height = this.$el.clientHeight;
      if (!nodes.size || !width || !height) return;
      let x0 = Infinity;
      let y0 = Infinity;
      let x1 = -Infinity;
      let y1 = -Infinity;
      for (const n of nodes.values()) {
        x0 = Math.min(x0, n.x - 10);
        y0 = Math.min(y0, n.y - 10);
        x1 = Math.max(x1, n.x + n.w + 10);
        y1 = Math.max(y1, n.y + n.h + 24); // the status line below the node
      }
      const pad = 30;
      const k = Math.max(MIN_K, Math.min(1, (width - 2 * pad) / (x1 - x0), (height - 2 * pad) / (y1 - y0)));
      this.st.view = { k, x: (width - (x1 - x0) * k) / 2 - x0 * k, y: (height - (y1 - y0) * k) / 2 - y0 * k };
      this.applyView();
    },
    zoomBy(factor) {
      this.zoomAt(this.$el.clientWidth / 2, this.$el.clientHeight / 2, this.st.view.k * factor);
    },
    viewState() {
      return { ...this.st.view };
    },
    timings() {
      return this.st.timings.slice();
    },
    sentCount() {
      return this.st.sent;
    },
    flushFrame() {
      // Run a pending animation frame now (tests measure the work of one pointer move).
      if (!this.st.raf) return;
      cancelAnimationFrame(this.st.raf);
      this.st.raf = 0;
      this.frame();
    },

    // ---- building and patching the DOM -----------------------------------------------
    loadFlow(flow) {
      const raw = toRaw(flow);
      if (!raw || raw.version === this.st.version) return;
      this.st.version = raw.version;
      const { nodes, wires } = this.st;
      const seen = new Set();
      const fragment = document.createDocumentFragment();
      for (const view of raw.nodes || []) {
        seen.add(view.id);
        const sig = signature(view);
        let node = nodes.get(view.id);
        if (node && node.sig !== sig) {
          const fresh = this.makeNode(view, sig, node.wires);
          node.el.replaceWith(fresh.el);
          nodes.set(view.id, fresh);
          if (this.st.selNodes.has(view.id)) fresh.el.classList.add("fe-selected");
          node = fresh;
        } else if (!node) {
          node = this.makeNode(view, sig, new Set());
          nodes.set(view.id, node);
          fragment.appendChild(node.el);
        }
        node.view = view;
        const x = Number(view.x) || 0;
        const y = Number(view.y) || 0;
        if (node.x !== x || node.y !== y) this.placeNode(node, x, y);
        const status = this.st.status[view.id];
        if (status && !node.status) this.patchStatus(node, status);
        this.patchError(node);
      }
      this.$refs.nodes.appendChild(fragment);
      for (const [id, node] of nodes) {
        if (seen.has(id)) continue;
        node.el.remove();
        nodes.delete(id);
        this.st.selNodes.delete(id);
      }

      const keys = new Set();
      const layer = this.$refs.wires;
      for (const view of raw.wires || []) {
        keys.add(view.key);
        let wire = wires.get(view.key);
        if (!wire) {
          wire = this.makeWire(view);
          wires.set(view.key, wire);
          layer.appendChild(wire.g);
        }
        wire.view = view;
        const fill = this.st.fill[view.key];
        if (fill !== undefined && wire.fill !== fill) this.patchFill(wire, fill);
      }
      for (const [key, wire] of wires) {
        if (keys.has(key)) continue;
        wire.g.remove();
        wires.delete(key);
        this.st.selWires.delete(key);
      }
      for (const node of nodes.values()) node.wires.clear();
      const errorWired = new Set();
      for (const wire of wires.values()) {
        nodes.get(wire.view.source)?.wires.add(wire);
        nodes.get(wire.view.target)?.wires.add(wire);
        if (wire.view.port === "error") errorWired.add(wire.view.source);
        this.routeWire(wire);
      }
      // The error port shows only when wired (or on hover): an unwired one is not a failure.
      for (const [id, node] of nodes) node.errPort?.classList.toggle("fe-wired", errorWired.has(id));
      this.loadGroups(raw.groups || []);
      this.st.loaded = raw.version > 0;
      this.autoFit();
    },
    autoFit() {
      // The first flow Python gives is fitted once the canvas has a size. An empty one counts:
      // fitting later, on the first drop, would move the view under the user's pointer.
      if (this.st.fitted || !this.$el.clientWidth) return;
      if (!this.st.nodes.size) {
        if (this.st.loaded) this.st.fitted = true;
        return;
      }
      this.st.fitted = true;
      this.fit();
    },
    loadGroups(views) {
      const { groups, nodeGroup } = this.st;
      const seen = new Set();
      nodeGroup.clear();
      for (const view of views) {
        seen.add(view.id);
        let group = groups.get(view.id);
        if (!group) {
          const box = el("div", "fe-group");
          box.dataset.groupId = view.id;
          group = { el: box, label: el("div", "fe-group-label", box) };
          groups.set(view.id, group);
          this.$refs.groups.appendChild(box);
        }
        group.view = view;
        group.label.textContent = view.name || view.id;
        group.label.title = view.name || view.id;
        group.el.style.setProperty("--fe-group-color", view.color || "#ffe0b2");
        for (const id of view.nodes) nodeGroup.set(id, view.id);
        this.layoutGroup(group);
      }
      for (const [id, group] of groups) {
        if (seen.has(id)) continue;
        group.el.remove();
        groups.delete(id);
      }
    },
    layoutGroup(group) {
      let x0 = Infinity;
      let y0 = Infinity;
      let x1 = -Infinity;
      let y1 = -Infinity;
      for (const id of group.view.nodes) {
        const n = this.st.nodes.get(id);
        if (!n) continue;
        x0 = Math.min(x0, n.x);
        y0 = Math.min(y0, n.y);
        x1 = Math.max(x1, n.x + n.w);
        y1 = Math.max(y1, n.y + n.h);
      }
      if (x0 === Infinity) return (group.el.style.display = "none");
      const left = x0 - GROUP_PAD;
      const top = y0 - GROUP_PAD - GROUP_HEAD;
      Object.assign(group.el.style, {
        display: "",
        transform: `translate(${left}px,${top}px)`,
        width: `${x1 - x0 + 2 * GROUP_PAD}px`,
        height: `${y1 - y0 + 2 * GROUP_PAD + GROUP_HEAD + 14}px`, // and the status line
      });
    },
    makeNode(view, sig, wires) {
      const grid = this.grid || 20;
      const ins = view.inputs || [];
      const outs = view.outputs || [];
      const w = nodeWidth(view, grid);
      const h = Math.max(2 * PORT_GAP, PORT_GAP * Math.max(ins.length, outs.length));
      const root = el("div", "fe-node");
      root.dataset.nodeId = view.id;
      root.style.width = `${w}px`;
      root.style.height = `${h}px`;
      if (view.disabled) root.classList.add("fe-disabled");
      // Several inputs or outputs: their names are written beside the ports, not only on hover.
      if (ins.length > 1) root.classList.add("fe-multi-in");
      if (outs.filter((p) => p !== "error").length > 1) root.classList.add("fe-multi-out");
      const body = el("div", "fe-node-body", root);
      body.style.background = view.color || "#e0e0e0";
      if (view.icon) {
        const icon = el("i", "material-icons fe-icon", body);
        icon.textContent = view.icon;
      }
      const names = el("div", "fe-names", body);
      const label = el("div", "fe-label", names);
      label.textContent = label.title = view.label || view.id;
      if (view.type && view.type !== view.label) {
        const type = el("div", "fe-type", names);
        type.textContent = type.title = view.type;
      }
      const insAt = portOffsets(ins, h);
      const outsAt = portOffsets(outs, h);
      let errPort = null;
      for (const [kind, at] of [
        ["in", insAt],
        ["out", outsAt],
      ]) {
        for (const [name, y] of at) {
          const isError = name === "error" && kind === "out";
          const port = el("div", `fe-port fe-port-${kind}${isError ? " fe-port-error" : ""}`, root);
          port.dataset.port = name;
          port.dataset.kind = kind;
          port.title = name;
          port.style.top = `${y - 6}px`;
          el("span", "fe-port-label", port).textContent = name;
          if (isError) errPort = port;
        }
      }
      let toggle = null;
      if ((this.fireTypes || []).includes(view.type)) {
        const fire = el("button", "fe-node-button fe-fire", root);
        fire.type = "button";
        fire.dataset.nodeAction = "fire";
        fire.title = "Fire once";
        el("i", "material-icons", fire).textContent = "play_arrow";
      }
      if ((this.toggleTypes || []).includes(view.type)) {
        toggle = el("button", "fe-node-button fe-toggle", root);
        toggle.type = "button";
        toggle.dataset.nodeAction = "toggle";
        el("i", "material-icons", toggle);
      }
      const line = el("div", "fe-status", root);
      const dot = el("span", "fe-dot", line);
      const text = el("span", "fe-status-text", line);
      const rate = el("span", "fe-rate", line);
      const disk = el("span", "fe-disk", root); // shown while the node holds data on disk
      el("i", "material-icons", disk).textContent = "save";
      const diskRows = el("span", null, disk);
      const node = { view, sig, x: NaN, y: NaN, w, h, ins: insAt, outs: outsAt, el: root, line, dot, text, rate, disk, diskRows, status: null, wires, errPort, toggle };
      if (toggle) this.patchToggle(node);
      return node;
    },
    patchToggle(node) {
      const on = !this.st.debugOff.has(node.view.id);
      node.toggle.classList.toggle("fe-on", on);
      node.toggle.title = on ? "Output on: click to turn off" : "Output off: click to turn on";
      node.toggle.firstChild.textContent = on ? "toggle_on" : "toggle_off";
    },
    makeWire(view) {
      const g = svgEl("g", "fe-wire");
      if (view.port === "error") g.classList.add("fe-wire-error");
      const hit = svgEl("path", "fe-wire-hit", g);
      hit.dataset.wireKey = view.key;
      const line = svgEl("path", "fe-wire-line", g);
      return { view, g, hit, line, fill: 0, title: null };
    },
    placeNode(node, x, y) {
      node.x = x;
      node.y = y;
      node.el.style.transform = `translate(${x}px,${y}px)`;
    },
    portPoint(nodeId, port, kind) {
      const node = this.st.nodes.get(nodeId);
      if (!node) return null;
      const dy = (kind === "in" ? node.ins : node.outs).get(port);
      if (dy === undefined) return null;
      return { x: kind === "in" ? node.x : node.x + node.w, y: node.y + dy };
    },
    routeWire(wire) {
      const v = wire.view;
      const a = this.portPoint(v.source, v.port, "out");
      const b = this.portPoint(v.target, v.target_port, "in");
      const d = a && b ? wirePath(a, b) : "";
      wire.hit.setAttribute("d", d);
      wire.line.setAttribute("d", d);
    },
    patchStatus(node, s) {
      const prev = node.status || {};
      if (s.color !== prev.color) {
        node.dot.className = `fe-dot fe-${COLORS.includes(s.color) ? s.color : "grey"}`;
      }
      if (s.text !== prev.text) {
        // Long text is clipped to the node's width (CSS); the whole of it is the tooltip.
        node.text.textContent = s.text || "";
        node.line.title = s.text || "";
      }
      if (s.rate !== prev.rate) node.rate.textContent = formatRate(s.rate);
      this.patchDisk(node, s.disk || null, prev.disk || null);
      node.status = s;
      if ((s.error || null) !== (prev.error || null)) this.patchError(node);
    },
    patchDisk(node, d, prev) {
      // The on-disk badge (a sink's buffer, a source's journal): rows, amber when it warns.
      node.disk.classList.toggle("fe-disk-on", !!d);
      if (!d) return;
      if (d.label !== prev?.label) node.diskRows.textContent = d.label;
      if (d.title !== prev?.title) node.disk.title = d.title;
      if (d.warn !== prev?.warn) node.disk.classList.toggle("fe-disk-warn", !!d.warn);
    },
    patchError(node) {
      const error = node.view.error || node.status?.error || null;
      node.el.classList.toggle("fe-error", !!error);
      const title = error || `${node.view.label || node.view.id} (${node.view.type})`;
      if (node.el.title !== title) node.el.title = title;
    },
    patchFill(wire, f) {
      const fill = Math.max(0, Math.min(1, Number(f) || 0));
      wire.fill = fill;
      wire.line.style.strokeWidth = fill > 0 ? `${2 + 5 * fill}px` : "";
      wire.line.classList.toggle("fe-fill-mid", fill >= 0.5 && fill < 0.9);
      wire.line.classList.toggle("fe-fill-high", fill >= 0.9);
      if (!wire.title) wire.title = svgEl("title", null, wire.hit);
      wire.title.textContent = `queue ${Math.round(fill * 100)}% full`;
    },
    select(nodes, wires, emit) {
      const { st } = this;
      for (const id of st.selNodes) if (!nodes.has(id)) st.nodes.get(id)?.el.classList.remove("fe-selected");
      for (const id of nodes) if (!st.selNodes.has(id)) st.nodes.get(id)?.el.classList.add("fe-selected");
      for (const key of st.selWires) if (!wires.has(key)) st.wires.get(key)?.g.classList.remove("fe-selected");
      for (const key of wires) if (!st.selWires.has(key)) st.wires.get(key)?.g.classList.add("fe-selected");
      const changed =
        nodes.size !== st.selNodes.size ||
        wires.size !== st.selWires.size ||
        [...nodes].some((id) => !st.selNodes.has(id)) ||
        [...wires].some((key) => !st.selWires.has(key));
      st.selNodes = new Set([...nodes].filter((id) => st.nodes.has(id)));
      st.selWires = new Set([...wires].filter((key) => st.wires.has(key)));
      if (emit && changed) this.send({ op: "select", nodes: [...st.selNodes], wires: [...st.selWires] });
    },
    applyView() {
      const { x, y, k } = this.st.view;
      this.$refs.view.style.transform = `translate(${x}px,${y}px) scale(${k})`;
      const g = (this.grid || 20) * k;
      this.$el.style.backgroundSize = `${g}px ${g}px`;
      this.$el.style.backgroundPosition = `${x}px ${y}px`;
      this.$refs.zoom.textContent = `${Math.round(k * 100)}%`;
    },
    zoomAt(px, py, k) {
      const v = this.st.view;
      k = Math.max(MIN_K, Math.min(MAX_K, k));
      const fx = (px - v.x) / v.k;
      const fy = (py - v.y) / v.k;
      this.st.view = { k, x: px - fx * k, y: py - fy * k };
      this.applyView();
    },
    toFlow(clientX, clientY, rect = this.$el.getBoundingClientRect()) {
      const v = this.st.view;
      return { x: (clientX - rect.left - v.x) / v.k, y: (clientY - rect.top - v.y) / v.k };
    },
    snap(value) {
      const grid = this.grid || 1;
      return Math.round(value / grid) * grid;
    },
    send(payload) {
      this.st.sent += 1;
      this.$emit("change", payload);
    },

    // ---- gestures --------------------------------------------------------------------
    onPointerDown(e) {
      this.$el.focus({ preventScroll: true });
      this.hideMenu();
      if (this.st.gesture) return;
      if (e.button === 1 || (e.button === 0 && this.st.space)) {
        e.preventDefault();
        return this.beginGesture(e, { kind: "pan", clear: false });
      }
      if (e.button !== 0) return;
      e.preventDefault();
      const port = e.target.closest("[data-port]");
      const node = e.target.closest("[data-node-id]");
      const wire = e.target.closest("[data-wire-key]");
      const action = e.target.closest("[data-node-action]");
      if (action && node) return this.nodeAction(node.dataset.nodeId, action.dataset.nodeAction);
      if (port && node) return this.beginWire(e, node.dataset.nodeId, port);
      if (node) return this.beginNodeDrag(e, node.dataset.nodeId);
      if (wire) return this.clickWire(e, wire.dataset.wireKey);
      if (e.shiftKey) return this.beginBand(e);
      const group = e.target.closest("[data-group-id]");
      if (group) return this.beginGroupDrag(e, group.dataset.groupId);
      this.beginGesture(e, { kind: "pan", clear: true });
    },
    beginGesture(e, gesture) {
      const rect = this.$el.getBoundingClientRect();
      this.st.gesture = { ...gesture, rect, sx: e.clientX, sy: e.clientY, cx: e.clientX, cy: e.clientY, moved: false, view: { ...this.st.view } };
      try {
        this.$el.setPointerCapture(e.pointerId); // keep the gesture when the pointer leaves the page
      } catch {
        // a synthetic event's pointer cannot be captured; the window listeners still see it
      }
      window.addEventListener("pointermove", this.onGestureMove);
      window.addEventListener("pointerup", this.onGestureUp);
      window.addEventListener("pointercancel", this.onGestureUp);
      this.st.gesture.cls = gesture.kind === "pan" ? "fe-panning" : gesture.kind === "wire" ? `fe-wiring-${gesture.from.kind}` : null;
      if (this.st.gesture.cls) this.$el.classList.add(this.st.gesture.cls);
    },
    endGesture() {
      window.removeEventListener("pointermove", this.onGestureMove);
      window.removeEventListener("pointerup", this.onGestureUp);
      window.removeEventListener("pointercancel", this.onGestureUp);
      const cls = this.st.gesture?.cls;
      if (cls) this.$el.classList.remove(cls);
      this.st.gesture = null;
    },
    nodeAction(id, action) {
      // The buttons on a node: fire an inject/simulate once, turn a debug node's output on/off.
      if (action === "fire") return this.send({ op: "fire", id });
      const node = this.st.nodes.get(id);
      const on = this.st.debugOff.has(id);
      if (on) this.st.debugOff.delete(id);
      else this.st.debugOff.add(id);
      if (node?.toggle) this.patchToggle(node);
      this.send({ op: "debug_toggle", id, on });
    },
    beginGroupDrag(e, gid) {
      // A press in a group selects its nodes; a drag moves them as one.
      const group = this.st.groups.get(gid);
      const members = new Set(group.view.nodes.filter((id) => this.st.nodes.has(id)));
      if (!members.size) return this.beginGesture(e, { kind: "pan", clear: true });
      this.select(members, new Set(), true);
      this.dragSelection(e, [...members][0], { toggle: false, group: gid });
    },
    beginNodeDrag(e, id) {
      const { st } = this;
      const toggle = e.shiftKey || e.ctrlKey || e.metaKey;
      let nodes = st.selNodes;
      let wires = st.selWires;
      if (toggle) {
        nodes = new Set(nodes);
        if (nodes.has(id)) nodes.delete(id);
        else nodes.add(id);
      } else if (!nodes.has(id)) {
        nodes = new Set([id]);
        wires = new Set();
      }
      this.select(nodes, wires, true);
      if (!st.selNodes.has(id)) return;
      this.dragSelection(e, id, { toggle });
    },
    dragSelection(e, id, extra) {
      const { st } = this;
      const moving = [...st.selNodes].map((n) => st.nodes.get(n)).filter(Boolean);
      const origin = new Map(moving.map((n) => [n, { x: n.x, y: n.y }]));
      const touched = new Set();
      const groups = new Set();
      for (const n of moving) {
        for (const w of n.wires) touched.add(w);
        const gid = st.nodeGroup.get(n.view.id);
        if (gid && st.groups.has(gid)) groups.add(st.groups.get(gid));
      }
      // One node with no wires, an input and an output can be dropped onto a wire (spliced in).
      const only = moving.length === 1 ? moving[0] : null;
      const splice = !!only && !only.wires.size && this.canSplice(only.view);
      this.beginGesture(e, { kind: "node", id, origin, touched, groups, splice, spliceKey: null, ...extra });
    },
    canSplice(view) {
      return (view.inputs || []).length > 0 && (view.outputs || []).some((p) => p !== "error");
    },
    wireAt(clientX, clientY, except) {
      // The wire under a point (the dragged node may be on top of it), not one of `except`.
      for (const hit of document.elementsFromPoint(clientX, clientY)) {
        const key = hit.dataset?.wireKey;
        if (key && this.$el.contains(hit) && !except?.has(key)) return key;
      }
      return null;
    },
    markSplice(g, key) {
      if (g.spliceKey === key) return;
      if (g.spliceKey) this.st.wires.get(g.spliceKey)?.g.classList.remove("fe-splice");
      g.spliceKey = key;
      if (key) this.st.wires.get(key)?.g.classList.add("fe-splice");
    },
    beginBand(e) {
      // Shift+drag selects the nodes the band touches; with Ctrl/Cmd too it adds to the selection.
      const { st } = this;
      const add = e.ctrlKey || e.metaKey;
      const before = { nodes: new Set(st.selNodes), wires: new Set(st.selWires) };
      const base = add ? before : { nodes: new Set(), wires: new Set() };
      this.beginGesture(e, { kind: "band", before, base });
    },
    beginWire(e, nodeId, port) {
      const from = { node: nodeId, port: port.dataset.port, kind: port.dataset.kind };
      const anchor = this.portPoint(nodeId, from.port, from.kind);
      if (!anchor) return;
      this.beginGesture(e, { kind: "wire", from, anchor });
    },
    clickWire(e, key) {
      const { st } = this;
      if (e.shiftKey || e.ctrlKey || e.metaKey) {
        const wires = new Set(st.selWires);
        if (wires.has(key)) wires.delete(key);
        else wires.add(key);
        this.select(st.selNodes, wires, true);
      } else {
        this.select(new Set(), new Set([key]), true);
      }
    },
    gestureMove(e) {
      const g = this.st.gesture;
      if (!g) return;
      if (e.pointerType === "mouse" && e.buttons === 0) return this.gestureUp(e); // released elsewhere
      g.cx = e.clientX;
      g.cy = e.clientY;
      if (!g.moved && Math.hypot(g.cx - g.sx, g.cy - g.sy) < DRAG_PX) return;
      g.moved = true;
      if (!this.st.raf) {
        this.st.raf = requestAnimationFrame(() => {
          this.st.raf = 0;
          this.frame();
        });
      }
    },
    frame() {
      const g = this.st.gesture;
      if (!g || !g.moved) return;
      const start = performance.now();
      const k = this.st.view.k;
      const dx = (g.cx - g.sx) / k;
      const dy = (g.cy - g.sy) / k;
      if (g.kind === "node") {
        for (const [node, o] of g.origin) this.placeNode(node, o.x + dx, o.y + dy);
        for (const wire of g.touched) this.routeWire(wire);
        for (const group of g.groups) this.layoutGroup(group);
        if (g.splice) this.markSplice(g, this.wireAt(g.cx, g.cy));
      } else if (g.kind === "pan") {
        this.st.view = { k, x: g.view.x + g.cx - g.sx, y: g.view.y + g.cy - g.sy };
        this.applyView();
      } else if (g.kind === "wire") {
        const p = this.toFlow(g.cx, g.cy, g.rect);
        const [a, b] = g.from.kind === "out" ? [g.anchor, p] : [p, g.anchor];
        this.$refs.ghost.setAttribute("d", wirePath(a, b));
      } else if (g.kind === "band") {
        this.frameBand(g);
      }
      const timings = this.st.timings;
      timings.push(performance.now() - start);
      if (timings.length > TIMINGS) timings.splice(0, timings.length - TIMINGS);
    },
    frameBand(g) {
      const r = g.rect;
      const left = Math.min(g.sx, g.cx) - r.left;
      const top = Math.min(g.sy, g.cy) - r.top;
      const width = Math.abs(g.cx - g.sx);
      const height = Math.abs(g.cy - g.sy);
      Object.assign(this.$refs.band.style, { display: "block", left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px` });
      const v = this.st.view;
      const x0 = (left - v.x) / v.k;
      const y0 = (top - v.y) / v.k;
      const x1 = x0 + width / v.k;
      const y1 = y0 + height / v.k;
      const picked = new Set(g.base.nodes);
      for (const [id, n] of this.st.nodes) {
        if (n.x < x1 && n.x + n.w > x0 && n.y < y1 && n.y + n.h > y0) picked.add(id);
      }
      this.select(picked, g.base.wires, false);
    },
    gestureUp(e) {
      const g = this.st.gesture;
      if (!g) return;
      g.cx = e.clientX;
      g.cy = e.clientY;
      if (!g.moved && Math.hypot(g.cx - g.sx, g.cy - g.sy) >= DRAG_PX) g.moved = true;
      if (this.st.raf) cancelAnimationFrame(this.st.raf);
      this.st.raf = 0;
      this.frame();
      this.endGesture();
      if (g.kind === "node") this.endNodeDrag(g);
      else if (g.kind === "wire") this.endWire(g, e);
      else if (g.kind === "band") this.endBand(g);
      else if (g.kind === "pan" && !g.moved && g.clear) this.select(new Set(), new Set(), true);
    },
    endNodeDrag(g) {
      const splice = g.spliceKey;
      if (splice) this.markSplice(g, null);
      if (!g.moved) {
        // A plain click on one node of a multi-selection selects just that node.
        if (!g.toggle && !g.group && this.st.selNodes.size > 1) this.select(new Set([g.id]), new Set(), true);
        return;
      }
      const positions = {};
      let changed = false;
      for (const [node, o] of g.origin) {
        this.placeNode(node, this.snap(node.x), this.snap(node.y));
        positions[node.view.id] = { x: node.x, y: node.y };
        changed ||= node.x !== o.x || node.y !== o.y;
      }
      for (const wire of g.touched) this.routeWire(wire);
      for (const group of g.groups) this.layoutGroup(group);
      if (changed) this.send({ op: "move", positions });
      if (splice) this.send({ op: "splice", node: g.id, wire: splice });
    },
    endWire(g, e) {
      this.$refs.ghost.setAttribute("d", "");
      const hit = document.elementFromPoint(e.clientX, e.clientY);
      const port = hit && this.$el.contains(hit) ? hit.closest("[data-port]") : null;
      const node = port?.closest("[data-node-id]");
      if (!port || !node || port.dataset.kind === g.from.kind) return;
      const to = { node: node.dataset.nodeId, port: port.dataset.port };
      const [src, dst] = g.from.kind === "out" ? [g.from, to] : [to, g.from];
      this.send({ op: "wire", source: src.node, port: src.port, target: dst.node, target_port: dst.port });
    },
    endBand(g) {
      this.$refs.band.style.display = "none";
      const { st } = this;
      const same = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));
      if (same(st.selNodes, g.before.nodes) && same(st.selWires, g.before.wires)) return;
      this.send({ op: "select", nodes: [...st.selNodes], wires: [...st.selWires] });
    },
    onHover(e) {
      if (this.st.gesture) return;
      this.st.hover = { clientX: e.clientX, clientY: e.clientY };
    },
    onWheel(e) {
      const rect = this.$el.getBoundingClientRect();
      const scale = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
      this.zoomAt(e.clientX - rect.left, e.clientY - rect.top, this.st.view.k * Math.exp(-e.deltaY * scale));
    },
    onDblClick(e) {
      // The pointer was captured by the canvas, so the event's target is the canvas itself.
      const hit = document.elementFromPoint(e.clientX, e.clientY);
      const node = hit?.closest("[data-node-id]");
      if (node && this.$el.contains(node) && !hit.closest("[data-port], [data-node-action]")) {
        this.send({ op: "open", node: node.dataset.nodeId });
        return;
      }
      const group = hit?.closest("[data-group-id]");
      if (group && this.$el.contains(group)) this.send({ op: "group_edit", group: group.dataset.groupId });
    },

    // ---- keyboard and palette drops --------------------------------------------------
    onKeyDown(e) {
      const tag = e.target.tagName;
      if (e.target !== this.$el && (tag === "INPUT" || tag === "TEXTAREA" || e.target.isContentEditable)) return;
      const { st } = this;
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
      let handled = true;
      if (key === " ") st.space = true;
      else if (key === "Delete" || key === "Backspace") {
        if (st.selNodes.size || st.selWires.size) this.send({ op: "delete", nodes: [...st.selNodes], wires: [...st.selWires] });
      } else if (mod && key === "z") this.send({ op: e.shiftKey ? "redo" : "undo" });
      else if (mod && key === "y") this.send({ op: "redo" });
      else if (mod && key === "c") {
        if (st.selNodes.size) this.send({ op: "copy", nodes: [...st.selNodes] });
      } else if (mod && key === "x") {
        if (st.selNodes.size) this.send({ op: "cut", nodes: [...st.selNodes] });
      } else if (mod && key === "d") {
        if (st.selNodes.size) this.send({ op: "duplicate", nodes: [...st.selNodes] });
      } else if (mod && key === "f") this.openSearch();
      else if (mod && key === "v") this.send({ op: "paste", ...this.pastePoint() });
      else if (mod && key === "a") this.select(new Set(st.nodes.keys()), new Set(), true);
      else if (key === "Escape") {
        if (!this.hideMenu()) this.select(new Set(), new Set(), true);
      } else if (key.startsWith("Arrow") && !mod) this.nudge(key, e.shiftKey);
      else if (key === "Enter" && st.selNodes.size === 1) this.send({ op: "open", node: [...st.selNodes][0] });
      else handled = false;
      if (handled) e.preventDefault();
    },
    nudge(key, big) {
      // Arrow keys move the selection by a pixel, Shift+arrow by a grid step (as in Node-RED).
      const { st } = this;
      if (!st.selNodes.size) return;
      const step = big ? this.grid || 20 : 1;
      const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key] || [0, 0];
      const positions = {};
      const touched = new Set();
      const groups = new Set();
      for (const id of st.selNodes) {
        const n = st.nodes.get(id);
        this.placeNode(n, n.x + dx, n.y + dy);
        positions[id] = { x: n.x, y: n.y };
        for (const w of n.wires) touched.add(w);
        const gid = st.nodeGroup.get(id);
        if (gid && st.groups.has(gid)) groups.add(st.groups.get(gid));
      }
      for (const wire of touched) this.routeWire(wire);
      for (const group of groups) this.layoutGroup(group);
      this.send({ op: "move", positions });
    },
    onKeyUp(e) {
      if (e.key === " ") this.st.space = false;
    },
    onBlur() {
      this.st.space = false;
    },
    pastePoint() {
      const rect = this.$el.getBoundingClientRect();
      const h = this.st.hover;
      const p = h ? this.toFlow(h.clientX, h.clientY, rect) : this.toFlow(rect.left + rect.width / 2, rect.top + rect.height / 2, rect);
      return { x: this.snap(p.x), y: this.snap(p.y) };
    },
    onDragOver(e) {
      if (!e.dataTransfer?.types.includes("application/x-flowengine-type")) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    },
    onDrop(e) {
      const type = e.dataTransfer?.getData("application/x-flowengine-type");
      if (!type) return;
      e.preventDefault();
      const p = this.toFlow(e.clientX, e.clientY);
      const wire = this.wireAt(e.clientX, e.clientY);
      // Dropped onto a wire: Python splices the new node in when its ports fit.
      this.send({ op: "drop", type, x: this.snap(p.x), y: this.snap(p.y), ...(wire ? { wire } : {}) });
    },

    // ---- context menu ----------------------------------------------------------------
    onContextMenu(e) {
      if (this.st.gesture) return;
      const hit = e.target;
      const node = hit.closest("[data-node-id]");
      const group = !node && hit.closest("[data-group-id]");
      const { st } = this;
      if (node && !st.selNodes.has(node.dataset.nodeId)) this.select(new Set([node.dataset.nodeId]), new Set(), true);
      const rect = this.$el.getBoundingClientRect();
      const at = this.toFlow(e.clientX, e.clientY, rect);
      const ids = node ? [...st.selNodes] : [];
      const items = [];
      if (ids.length) {
        const views = ids.map((id) => st.nodes.get(id).view);
        const off = views.every((v) => v.disabled);
        if (ids.length === 1) items.push(["edit", "Edit", "Enter"]);
        items.push(["cut", "Cut", "Ctrl+X"], ["copy", "Copy", "Ctrl+C"], ["duplicate", "Duplicate", "Ctrl+D"]);
        items.push(["delete", "Delete", "Del"], ["disable", off ? "Enable" : "Disable", ""]);
        items.push(["group", "Group", ""], ["make_subflow", "Make subflow", ""]);
        if (ids.length === 1) items.push(["help", "Help", ""]);
        this.st.menuFor = { nodes: ids, disabled: !off, type: views[0].type };
      } else if (group) {
        items.push(["group_edit", "Rename group…", ""], ["ungroup", "Ungroup", ""]);
        this.st.menuFor = { group: group.dataset.groupId };
      } else {
        items.push(["paste", "Paste", "Ctrl+V"], ["select_all", "Select all", "Ctrl+A"], ["find", "Find…", "Ctrl+F"]);
        this.st.menuFor = { x: this.snap(at.x), y: this.snap(at.y) };
      }
      const menu = this.$refs.menu;
      menu.replaceChildren();
      for (const [action, text, keys] of items) {
        const item = el("div", "fe-menu-item", menu);
        item.dataset.menu = action;
        el("span", null, item).textContent = text;
        if (keys) el("span", "fe-menu-keys", item).textContent = keys;
      }
      menu.style.display = "block"; // then kept inside the canvas
      const left = Math.max(0, Math.min(e.clientX - rect.left, rect.width - menu.offsetWidth - 4));
      const top = Math.max(0, Math.min(e.clientY - rect.top, rect.height - menu.offsetHeight - 4));
      Object.assign(menu.style, { left: `${left}px`, top: `${top}px` });
    },
    hideMenu() {
      const shown = this.$refs.menu.style.display === "block";
      if (shown) this.$refs.menu.style.display = "none";
      return shown;
    },
    onMenuClick(e) {
      const item = e.target.closest("[data-menu]");
      if (!item) return;
      this.hideMenu();
      this.$el.focus({ preventScroll: true });
      const f = this.st.menuFor || {};
      const action = item.dataset.menu;
      const nodes = f.nodes || [];
      const ops = {
        edit: () => this.send({ op: "open", node: nodes[0] }),
        cut: () => this.send({ op: "cut", nodes }),
        copy: () => this.send({ op: "copy", nodes }),
        duplicate: () => this.send({ op: "duplicate", nodes }),
        delete: () => this.send({ op: "delete", nodes, wires: [] }),
        disable: () => this.send({ op: "disable", nodes, disabled: f.disabled }),
        group: () => this.send({ op: "group", nodes }),
        make_subflow: () => this.send({ op: "make_subflow", nodes }),
        help: () => this.send({ op: "help", type: f.type }),
        group_edit: () => this.send({ op: "group_edit", group: f.group }),
        ungroup: () => this.send({ op: "ungroup", group: f.group }),
        paste: () => this.send({ op: "paste", x: f.x, y: f.y }),
        select_all: () => this.select(new Set(this.st.nodes.keys()), new Set(), true),
        find: () => this.openSearch(),
      };
      ops[action]?.();
    },

    // ---- search (Ctrl+F) ---------------------------------------------------------------
    openSearch() {
      this.$refs.search.style.display = "flex";
      this.$refs.query.focus();
      this.$refs.query.select();
    },
    closeSearch() {
      this.$refs.search.style.display = "none";
      this.$el.focus({ preventScroll: true });
    },
    onSearch() {
      const q = this.$refs.query.value.trim().toLowerCase();
      const hits = [];
      if (q) {
        for (const [id, n] of this.st.nodes) {
          const text = `${id}\n${n.view.label || ""}\n${n.view.type || ""}`.toLowerCase();
          if (text.includes(q)) hits.push(id);
        }
      }
      this.st.search = { hits, at: hits.length ? 0 : -1 };
      this.select(new Set(hits), new Set(), true);
      this.showHit();
    },
    onSearchKey(e) {
      const s = this.st.search;
      if (e.key === "Escape") this.closeSearch();
      else if (e.key === "Enter" && s.hits.length) {
        s.at = (s.at + (e.shiftKey ? s.hits.length - 1 : 1)) % s.hits.length;
        this.showHit();
      } else return;
      e.preventDefault();
      e.stopPropagation();
    },
    showHit() {
      const { hits, at } = this.st.search;
      this.$refs.hits.textContent = hits.length ? `${at + 1}/${hits.length}` : this.$refs.query.value ? "no match" : "";
      const n = hits.length ? this.st.nodes.get(hits[at]) : null;
      if (!n) return;
      const { k } = this.st.view;
      this.st.view = { k, x: this.$el.clientWidth / 2 - (n.x + n.w / 2) * k, y: this.$el.clientHeight / 2 - (n.y + n.h / 2) * k };
      this.applyView();
    },
  },
};
