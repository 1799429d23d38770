// The tile labeling page: draw, move, resize and delete boxes or circles with a class on one
// tile of an observation, over the box API (supervising_ui/boxes/views.py).
// OpenSeadragon shows the tile's picture (the tile and a margin); Annotorious draws on it.
// Picture pixels + the picture's offset = observation pixels, which the API speaks.
(() => {
  "use strict";
  const root = document.getElementById("tile-labeling");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const tile = JSON.parse(root.dataset.tile);
  const picture = JSON.parse(root.dataset.picture);
  const classes = JSON.parse(root.dataset.classes);
  const urls = JSON.parse(root.dataset.urls);
  const classIndex = new Map(classes.map((item, index) => [item.name, index]));
  const SAVE_AFTER_MS = 400;  // a move or resize is saved once the handles rest this long

  const state = {
    label: classes.length ? classes[0].name : null, tool: "rect", boxes: new Map(),
    proposals: new Map(), showProposals: true, selected: null, undo: [], saveTimer: null,
    busy: 0,
  };
  window.boxesPage = state;  // for the browser tests: what the page holds

  function say(text, kind) {
    const message = $("tile-message");
    message.textContent = text;
    message.className = `flash ${kind || ""}`;
    message.hidden = !text;
  }

  async function api(method, url, body) {
    const options = { method, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    state.busy += 1;
    try {
      const response = await fetch(url, options);
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new Error((data && data.error) || `error ${response.status}`);
      return data;
    } finally {
      state.busy -= 1;
    }
  }

  // --- geometry: Annotorious selectors <-> observation boxes ---------------------------------

  function boxOfSelector(selector) {
    if (selector.type === "SvgSelector") {
      const circle = new DOMParser().parseFromString(selector.value, "image/svg+xml")
        .querySelector("circle");
      const x = Number(circle.getAttribute("cx")) + picture.x;
      const y = Number(circle.getAttribute("cy")) + picture.y;
      const r = Number(circle.getAttribute("r"));
      return { shape: "circle", x_min: x - r, y_min: y - r, x_max: x + r, y_max: y + r };
    }
    const [x, y, w, h] = selector.value.replace("xywh=pixel:", "").split(",").map(Number);
    return { shape: "box", x_min: x + picture.x, y_min: y + picture.y,
      x_max: x + w + picture.x, y_max: y + h + picture.y };
  }

  function selectorOfBox(box) {
    const x = box.x_min - picture.x;
    const y = box.y_min - picture.y;
    const w = box.x_max - box.x_min;
    const h = box.y_max - box.y_min;
    if (box.shape === "circle") {
      const r = (w + h) / 4;
      return { type: "SvgSelector",
        value: `<svg><circle cx="${x + w / 2}" cy="${y + h / 2}" r="${r}"></circle></svg>` };
    }
    return { type: "FragmentSelector", conformsTo: "http://www.w3.org/TR/media-frags/",
      value: `xywh=pixel:${x},${y},${w},${h}` };
  }

  function annotationOf(box, kind) {
    return { "@context": "http://www.w3.org/ns/anno.jsonld", type: "Annotation",
      id: `#${kind}-${box.id}`,
      body: [{ type: "TextualBody", purpose: "tagging", value: kind === "proposal" ? "proposal" : box.label }],
      target: { source: urls.picture, selector: selectorOfBox(box) } };
  }

  function parseId(annotationId) {
    const match = /^#(box|proposal)-(\d+)$/.exec(annotationId || "");
    return match ? { kind: match[1], id: Number(match[2]) } : null;
  }

  // --- the viewer ----------------------------------------------------------------------------

  const viewer = OpenSeadragon({
    id: "tile-viewer", prefixUrl: urls.vendorImages, showNavigator: false,
    tileSources: { type: "image", url: urls.picture },
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false },
  });
  // Annotorious' formatter option breaks the selector pack's circle tool (2.7.19), so shapes
  // get their class colour here, whenever Annotorious (re)draws one.
  const anno = OpenSeadragon.Annotorious(viewer, { disableEditor: true });
  function paint() {
    document.querySelectorAll("#tile-viewer g.a9s-annotation[data-id]").forEach((shape) => {
      const parsed = parseId(shape.getAttribute("data-id"));
      let name = "";
      if (parsed && parsed.kind === "proposal") name = "proposal";
      else if (parsed && state.boxes.has(parsed.id)) {
        name = `class-${(classIndex.get(state.boxes.get(parsed.id).label) || 0) % 8}`;
      }
      if (name && !shape.classList.contains(name)) {
        shape.classList.remove(...[...shape.classList].filter((c) => c.startsWith("class-")));
        shape.classList.add(name);
      }
    });
  }
  new MutationObserver(paint).observe(document.getElementById("tile-viewer"),
    { childList: true, subtree: true });
  Annotorious.SelectorPack(anno, { tools: ["circle"] });
  state.viewer = viewer;
  anno.setDrawingTool("rect");

  function show(box) {
    state.boxes.set(box.id, box);
    anno.addAnnotation(annotationOf(box, "box"));
    counts();
  }

  function unshow(boxId) {
    state.boxes.delete(boxId);
    anno.removeAnnotation(`#box-${boxId}`);
    counts();
  }

  function counts() {
    $("box-count").textContent = String(state.boxes.size);
    $("proposal-count").textContent = String(state.proposals.size);
  }

  async function load() {
    const data = await api("GET", urls.boxes);
    anno.clearAnnotations();
    state.boxes.clear();
    state.proposals.clear();
    data.boxes.forEach(show);
    data.proposals.forEach((box) => state.proposals.set(box.id, box));
    if (state.showProposals) state.proposals.forEach((box) => anno.addAnnotation(annotationOf(box, "proposal")));
    counts();
    root.dataset.ready = "1";
  }

  // --- the box API, each change remembered for undo ----------------------------------------------

  async function create(box, remember = true) {
    const stored = await api("POST", urls.boxes, box);
    show(stored);
    if (remember) state.undo.push({ op: "create", id: stored.id });
    return stored;
  }

  async function update(boxId, change, remember = true) {
    const before = state.boxes.get(boxId);
    const stored = await api("PATCH", `${urls.box}${boxId}`, change);
    if (remember && before) state.undo.push({ op: "update", id: boxId, before: { ...before } });
    anno.removeAnnotation(`#box-${boxId}`);
    show(stored);
    return stored;
  }

  async function remove(boxId, remember = true) {
    const before = state.boxes.get(boxId);
    await api("DELETE", `${urls.box}${boxId}`);
    unshow(boxId);
    if (remember && before) state.undo.push({ op: "delete", box: before });
  }

  async function undo() {
    const last = state.undo.pop();
    if (!last) { say("Nothing to undo.", ""); return; }
    try {
      if (last.op === "create") await remove(last.id, false);
      if (last.op === "update") {
        const { shape, label, x_min, y_min, x_max, y_max } = last.before;
        await update(last.id, { shape, label, x_min, y_min, x_max, y_max }, false);
      }
      if (last.op === "delete") {
        const { shape, label, x_min, y_min, x_max, y_max } = last.box;
        const again = await create({ shape, label, x_min, y_min, x_max, y_max }, false);
        state.undo.forEach((step) => { if (step.id === last.box.id) step.id = again.id; });
      }
      say("Undone.", "");
    } catch (error) {
      say(`Could not undo: ${error.message}`, "error");
    }
  }

  function failed(error) {
    say(error.message, "error");
    load().catch(() => {});  // show what the server holds
  }

  anno.on("createSelection", (selection) => {
    const box = { ...boxOfSelector(selection.target.selector), label: state.label };
    anno.cancelSelected();
    create(box).then(() => say("", "")).catch(failed);
  });

  anno.on("selectAnnotation", (annotation) => {
    const parsed = parseId(annotation.id);
    state.selected = parsed;
    if (parsed && parsed.kind === "box") {
      const box = state.boxes.get(parsed.id);
      if (box) say(`Selected: ${box.label} (${box.shape}). Drag to move, handles to resize, Delete to delete, a number to change its class.`, "");
    } else if (parsed) {
      say("A machine proposal: A takes it as your box.", "");
    }
  });

  anno.on("cancelSelected", () => { state.selected = null; });

  // Moving or resizing: save once the handles rest (saveSelected fires updateAnnotation).
  anno.on("changeSelectionTarget", () => {
    clearTimeout(state.saveTimer);
    state.saveTimer = setTimeout(() => anno.saveSelected(), SAVE_AFTER_MS);
  });

  anno.on("updateAnnotation", (annotation) => {
    const parsed = parseId(annotation.id);
    state.selected = null;
    if (!parsed) return;
    if (parsed.kind === "proposal") { load().catch(failed); return; }  // proposals stay put
    const box = boxOfSelector(annotation.target.selector);
    update(parsed.id, box).catch(failed);
  });

  // --- actions and keys ------------------------------------------------------------------------

  function chooseClass(name) {
    state.label = name;
    document.querySelectorAll(".box-class").forEach((button) => {
      button.classList.toggle("selected", button.dataset.name === name);
    });
    const chosen = state.selected;
    if (chosen && chosen.kind === "box" && state.boxes.get(chosen.id)
        && state.boxes.get(chosen.id).label !== name) {
      anno.cancelSelected();
      state.selected = null;
      update(chosen.id, { label: name }).catch(failed);
    }
  }

  // Annotorious 2.7: Shift + drag draws with the current tool; a plain drag pans and a click
  // selects. Choosing a tool (B, C) also arms it: the next plain drag draws one shape.
  function chooseTool(tool) {
    state.tool = tool;
    anno.setDrawingTool(tool);
    anno.setDrawingEnabled(true);
    $("tool-rect").classList.toggle("selected", tool === "rect");
    $("tool-circle").classList.toggle("selected", tool === "circle");
  }

  function deleteSelected() {
    const chosen = state.selected;
    if (!chosen || chosen.kind !== "box") { say("Select one of your boxes first.", ""); return; }
    anno.cancelSelected();
    state.selected = null;
    remove(chosen.id).catch(failed);
  }

  function acceptProposal() {
    const chosen = state.selected;
    if (!chosen || chosen.kind !== "proposal") { say("Select a machine proposal first.", ""); return; }
    const proposal = state.proposals.get(chosen.id);
    anno.cancelSelected();
    state.selected = null;
    if (!proposal) return;
    const { x_min, y_min, x_max, y_max } = proposal;
    create({ shape: "box", label: state.label, x_min, y_min, x_max, y_max }).catch(failed);
  }

  function toggleProposals() {
    state.showProposals = !state.showProposals;
    state.proposals.forEach((box) => {
      if (state.showProposals) anno.addAnnotation(annotationOf(box, "proposal"));
      else anno.removeAnnotation(`#proposal-${box.id}`);
    });
    $("toggle-proposals").textContent = state.showProposals ? "Hide proposals" : "Show proposals";
  }

  async function finish(kind) {
    try {
      const data = await api("POST", kind === "done" ? urls.done : urls.later, {});
      say(kind === "done" ? "Done: thank you." : "Put off for later.", "");
      window.location.assign((data && data.next_url) || urls.back);
    } catch (error) {
      say(error.message, "error");
    }
  }

  document.querySelectorAll(".box-class").forEach((button) => {
    button.addEventListener("click", () => chooseClass(button.dataset.name));
  });
  $("tool-rect").addEventListener("click", () => chooseTool("rect"));
  $("tool-circle").addEventListener("click", () => chooseTool("circle"));
  $("delete-box").addEventListener("click", deleteSelected);
  $("undo-box").addEventListener("click", undo);
  $("accept-proposal").addEventListener("click", acceptProposal);
  $("toggle-proposals").addEventListener("click", toggleProposals);
  $("tile-done").addEventListener("click", () => finish("done"));
  $("tile-later").addEventListener("click", () => finish("later"));

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") { event.preventDefault(); undo(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const byKey = classes.find((item) => item.key === key);
    if (byKey) { chooseClass(byKey.name); return; }
    switch (key.toLowerCase()) {
      case "b": chooseTool("rect"); break;
      case "c": chooseTool("circle"); break;
      case "delete": case "backspace": event.preventDefault(); deleteSelected(); break;
      case "u": undo(); break;
      case "a": acceptProposal(); break;
      case "p": toggleProposals(); break;
      case "d": finish("done"); break;
      case "l": finish("later"); break;
      case "escape": anno.cancelSelected(); state.selected = null; break;
      default: return;
    }
  });

  chooseClass(state.label);
  $("tool-rect").classList.add("selected");
  viewer.addHandler("open", () => { load().catch(failed); });
})();
