// The labeling page: keyboard-first labeling over the JSON API.
// One key selects a class, Enter submits; every decision carries a request_id that retries
// reuse, so a flaky network or a double press never stores two labels.
(() => {
  "use strict";
  const root = document.getElementById("labeling");
  const projectId = root.dataset.projectId;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const classes = JSON.parse(root.dataset.classes);
  const keyToClass = new Map(classes.filter((c) => c.key).map((c) => [c.key, c.name]));
  const buttons = new Map([...document.querySelectorAll(".class-button")]
    .map((button) => [button.dataset.name, button]));
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const PROGRESS_EVERY = 20;      // refresh the project's counts after this many labels
  const LEASE_MARGIN_MS = 30000;  // a prefetched image this close to its lease end is re-asked

  const state = {
    current: null, picture: null, selected: null, shownAt: 0, busy: false,
    prefetched: null, zoom: 1, stretch: false, sinceProgress: 0, mineToday: 0, done: 0, total: 0,
    labelsPerImage: 0,
  };

  // --- talking to the server ---------------------------------------------------------------

  function uuid4() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // Send a request; retry network failures (same body, so the same request_id) with backoff.
  async function api(method, url, body) {
    const options = { method, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(url, options);
        if (response.status >= 500 && attempt < 4) throw new Error(`server error ${response.status}`);
        const data = response.status === 204 ? null : await response.json().catch(() => null);
        return { status: response.status, data };
      } catch (error) {
        if (attempt >= 5) throw error;
        say(`Connection problem, retrying… (${error.message})`, "error");
        await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** attempt));
      }
    }
  }

  function loadPicture(url) {
    return new Promise((resolve, reject) => {
      const picture = new Image();
      picture.onload = () => resolve(picture);
      picture.onerror = () => reject(new Error("the image could not be loaded"));
      picture.src = url;
    });
  }

  async function askNext(afterImageId) {
    const query = afterImageId ? `?after=${afterImageId}` : "";
    const { status, data } = await api("GET", `/api/projects/${projectId}/next${query}`);
    if (status === 204) return null;
    if (status !== 200) throw new Error(data?.error || `next failed (${status})`);
    return { payload: data, picture: loadPicture(data.image_url) };
  }

  // --- showing an image ----------------------------------------------------------------------

  async function show(item) {
    state.current = item.payload;
    state.selected = null;
    state.picture = await item.picture;
    draw();
    fitZoom();
    $("filename").textContent = item.payload.filename;
    $("pick").textContent = `(${item.payload.pick})`;
    $("pick").title = item.payload.pick_reason || "";
    $("pick-reason").textContent = item.payload.pick_reason || "";
    renderSuggestion(item.payload.suggestion);
    renderMetadata(item.payload);
    renderSelection();
    state.shownAt = performance.now();
  }

  function draw() {
    const picture = state.picture;
    if (!picture) return;
    canvas.width = picture.naturalWidth;
    canvas.height = picture.naturalHeight;
    context.drawImage(picture, 0, 0);
    if (state.stretch) window.stretchContrast(context, canvas.width, canvas.height);
    applyFilters();
  }

  function applyFilters() {
    canvas.style.filter = `contrast(${$("contrast").value}%) brightness(${$("brightness").value}%)`;
  }

  function fitZoom() {
    const viewport = $("viewport");
    if (!state.picture) return;
    const fit = Math.min(viewport.clientWidth / canvas.width, viewport.clientHeight / canvas.height);
    setZoom(Math.max(0.1, Math.min(fit, 8)));
  }

  function setZoom(zoom) {
    state.zoom = Math.max(0.1, Math.min(zoom, 16));
    canvas.style.width = `${canvas.width * state.zoom}px`;
    canvas.style.height = `${canvas.height * state.zoom}px`;
    $("zoom").textContent = Math.round(state.zoom * 100);
  }

  function renderSuggestion(suggestion) {
    const box = $("suggestion");
    for (const button of buttons.values()) {
      button.classList.remove("suggested");
      button.querySelector(".confidence").textContent = "";
    }
    if (!suggestion) { box.hidden = true; return; }
    box.hidden = false;
    box.textContent = `Model v${suggestion.model_version} suggests ${suggestion.label} ` +
      `(${Math.round(suggestion.confidence * 100)} %)`;
    for (const [name, probability] of suggestion.top) {
      const button = buttons.get(name);
      if (button) button.querySelector(".confidence").textContent = `${Math.round(probability * 100)} %`;
    }
    buttons.get(suggestion.label)?.classList.add("suggested");
  }

  function renderMetadata(payload) {
    const table = $("metadata");
    table.replaceChildren();
    const rows = { file: payload.filename, size: `${payload.width} × ${payload.height}`,
      ...payload.metadata };
    for (const [key, value] of Object.entries(rows)) {
      const row = table.insertRow();
      const header = document.createElement("th");
      header.textContent = key;
      row.appendChild(header);
      row.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
  }

  function renderSelection() {
    for (const [name, button] of buttons) button.classList.toggle("selected", name === state.selected);
    $("submit").disabled = !state.selected || !state.current;
  }

  function showEmpty() {
    state.current = null;
    state.picture = null;
    canvas.hidden = true;
    $("empty").hidden = false;
    $("filename").textContent = "";
    $("pick").textContent = "";
    renderSuggestion(null);
    renderSelection();
  }

  function say(text, kind = "info") {
    const box = $("message");
    box.hidden = !text;
    box.textContent = text || "";
    box.className = `flash ${kind}`;
  }

  // --- moving through the queue --------------------------------------------------------------

  async function advance() {
    let item = state.prefetched;
    state.prefetched = null;
    const leaseEnds = item && Date.parse(item.payload.lease_expires_at);
    if (!item || !(leaseEnds - Date.now() > LEASE_MARGIN_MS)) item = await askNext();
    if (!item) { showEmpty(); return; }
    canvas.hidden = false;
    $("empty").hidden = true;
    await show(item);
    prefetch();
  }

  async function prefetch() {
    const shown = state.current?.image_id;
    try {
      const item = await askNext(shown);
      if (state.current?.image_id === shown) state.prefetched = item;
      item?.picture.catch(() => {});
    } catch (error) {
      state.prefetched = null;  // advance() will simply ask again
    }
  }

  async function withBusy(action) {
    if (state.busy) return;  // one decision at a time: a double press does nothing
    state.busy = true;
    try { await action(); } catch (error) { say(error.message, "error"); } finally { state.busy = false; }
  }

  function select(name) {
    if (!state.current || !buttons.has(name)) return;
    state.selected = name;
    renderSelection();
  }

  const submit = () => withBusy(async () => {
    if (!state.current || !state.selected) return;
    const seconds = (performance.now() - state.shownAt) / 1000;
    const decision = { label: state.selected, request_id: uuid4(), seconds_spent: seconds };
    const { status, data } = await api("POST", `/api/images/${state.current.image_id}/labels`, decision);
    if (status === 201 || status === 200) {
      say("");
      countLabel();
    } else if (status === 409) {
      say(`Not stored: ${data?.error}`, "error");
    } else {
      say(data?.error || `submit failed (${status})`, "error");
      return;
    }
    await advance();
  });

  const later = () => withBusy(async () => {
    if (!state.current) return;
    const { status, data } = await api("POST", `/api/images/${state.current.image_id}/later`, {});
    if (status !== 200) { say(data?.error || `later failed (${status})`, "error"); return; }
    say("");
    await advance();
  });

  // "Unsure" counts like Later for assignment, with an optional comment for reviewers.
  function askUnsure() {
    if (!state.current) return;
    $("unsure-form").hidden = false;
    $("unsure-comment").value = "";
    $("unsure-comment").focus();
  }

  function closeUnsure() {
    $("unsure-form").hidden = true;
    $("viewport").focus();
  }

  const unsure = () => withBusy(async () => {
    if (!state.current) return;
    const comment = $("unsure-comment").value;
    const { status, data } = await api("POST", `/api/images/${state.current.image_id}/later`,
                                       { unsure: true, comment });
    if (status !== 200) { say(data?.error || `unsure failed (${status})`, "error"); return; }
    closeUnsure();
    say("Put off as unsure.");
    await advance();
  });

  function toggleGuide() {
    const guide = $("guide");
    if (guide.open) guide.close(); else guide.showModal();
  }

  const undo = () => withBusy(async () => {
    const { status, data } = await api("POST", `/api/projects/${projectId}/undo`, {});
    if (status !== 200) { say(data?.error || `undo failed (${status})`, "error"); return; }
    // The image on screen keeps its lease and comes back with the next "next".
    state.prefetched = null;
    state.mineToday = Math.max(0, state.mineToday - 1);
    $("mine-today").textContent = state.mineToday;
    if (state.labelsPerImage === 1 && state.done > 0) { state.done -= 1; showDone(); }
    canvas.hidden = false;
    $("empty").hidden = true;
    await show({ payload: data, picture: loadPicture(data.image_url) });
    select(data.previous_label);
    say(`Your label "${data.previous_label}" was removed: choose again.`);
  });

  // --- progress ------------------------------------------------------------------------------

  // Each label counts at once on the page (an image with one label per image is done with
  // it); every PROGRESS_EVERY labels the counts are read again, with the other labelers' work.
  function countLabel() {
    state.mineToday += 1;
    $("mine-today").textContent = state.mineToday;
    if (state.labelsPerImage === 1 && state.done < state.total) {
      state.done += 1;
      showDone();
    }
    if (++state.sinceProgress >= PROGRESS_EVERY) refreshProgress();
  }

  function showDone() {
    $("done").textContent = state.done;
    $("total").textContent = state.total;
    $("progress-bar").style.width = `${state.total ? (100 * state.done) / state.total : 0}%`;
  }

  async function refreshProgress() {
    state.sinceProgress = 0;
    const { status, data } = await api("GET", `/api/projects/${projectId}/progress`);
    if (status !== 200) return;
    state.mineToday = data.mine_today;
    $("mine-today").textContent = data.mine_today;
    Object.assign(state, { done: data.done, total: data.total, labelsPerImage: data.labels_per_image });
    showDone();
  }

  // --- keys and controls ---------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("input[type=text], textarea")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if ($("guide").open && key !== "?") return;  // the open guide takes only "?" and Esc
    const actions = {
      Enter: submit, l: later, u: undo, Backspace: undo, n: askUnsure, "?": toggleGuide,
      s: () => { $("stretch").checked = !$("stretch").checked; state.stretch = $("stretch").checked; draw(); },
      "+": () => setZoom(state.zoom * 1.25), "=": () => setZoom(state.zoom * 1.25),
      "-": () => setZoom(state.zoom / 1.25), "0": fitZoom,
    };
    if (keyToClass.has(key)) select(keyToClass.get(key));
    else if (actions[key]) actions[key]();
    else return;
    event.preventDefault();
  });
  for (const [name, button] of buttons) button.addEventListener("click", () => select(name));
  $("submit").addEventListener("click", submit);
  $("later").addEventListener("click", later);
  $("unsure").addEventListener("click", askUnsure);
  $("unsure-form").addEventListener("submit", (event) => { event.preventDefault(); unsure(); });
  $("unsure-cancel").addEventListener("click", closeUnsure);
  $("unsure-comment").addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); closeUnsure(); }
  });
  $("guide-button").addEventListener("click", toggleGuide);
  $("guide-close").addEventListener("click", () => $("guide").close());
  $("undo").addEventListener("click", undo);
  $("stretch").addEventListener("change", () => { state.stretch = $("stretch").checked; draw(); });
  $("contrast").addEventListener("input", applyFilters);
  $("brightness").addEventListener("input", applyFilters);
  $("viewport").addEventListener("wheel", (event) => {
    event.preventDefault();
    setZoom(state.zoom * (event.deltaY < 0 ? 1.15 : 1 / 1.15));
  }, { passive: false });
  window.addEventListener("resize", fitZoom);

  refreshProgress();
  withBusy(advance);
})();
