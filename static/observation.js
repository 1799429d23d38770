// The observation page: the deep-zoom viewer (OpenSeadragon over the tiles served by id), the
// tiles as work units, the landmark overlay (coloured by class, per-class toggles, a
// confidence slider, counts), latitude and longitude on click, and the crater
// size-frequency plot (server-side numbers, drawn here as SVG).
(() => {
  "use strict";
  const root = document.getElementById("observation");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const page = JSON.parse(root.dataset.page);
  const SVG = "http://www.w3.org/2000/svg";
  const state = { landmarks: [], hidden: new Set(), minConfidence: 0, elements: new Map(),
    tileElements: [], selected: null, viewer: null, ready: false, lastClick: null };
  window.observationPage = state;  // for the browser tests: what the page holds

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin",
      headers: { "Accept": "application/json" } });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error) || `error ${response.status}`);
    return data;
  }

  function colourOf(name) {
    return page.colours[name] || "#bbbbbb";
  }

  function degrees(value, positive, negative) {
    if (value === null || value === undefined) return "";
    return `${Math.abs(value).toFixed(5)}° ${value >= 0 ? positive : negative}`;
  }

  function latlonText(latitude, longitude) {
    if (latitude === null || latitude === undefined) return "no latitude or longitude (no label)";
    return `${degrees(latitude, "N", "S")}, ${longitude.toFixed(5)}° E`;
  }

  // --- tiles (work units) -----------------------------------------------------------------

  function summariseTiles() {
    const finished = page.tiles.filter((tile) => tile.finished).length;
    const mine = page.tiles.filter((tile) => tile.done_by_me).length;
    $("tile-summary").textContent = `${page.tiles.length} tiles of ${page.tile_size} px: ` +
      `${finished} finished (${page.tiles.length ? page.tiles[0].needed : 0} labelers each), ` +
      `${mine} done by you.`;
  }

  function listTiles() {
    const list = $("tile-list");
    list.textContent = "";
    page.tiles.forEach((tile) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `${page.urls.label_tile}${tile.id}/label`;
      link.textContent = `x ${tile.x}, y ${tile.y}`;
      const mine = tile.done_by_me ? ", done by you" : tile.later ? ", put off by you" : "";
      item.append(link, ` ${tile.done} of ${tile.needed} done${mine}`);
      list.append(item);
    });
  }

  function drawTiles(show) {
    state.tileElements.forEach((element) => state.viewer.removeOverlay(element));
    state.tileElements = [];
    if (!show) return;
    page.tiles.forEach((tile) => {
      const element = document.createElement("div");
      element.className = "work-tile" + (tile.finished ? " finished" : "") +
        (tile.done_by_me ? " mine" : "");
      element.title = `tile ${tile.id}: ${tile.done} of ${tile.needed} done`;
      state.viewer.addOverlay({ element, location:
        state.viewer.viewport.imageToViewportRectangle(tile.x, tile.y, tile.width, tile.height) });
      state.tileElements.push(element);
    });
  }

  // --- landmarks ----------------------------------------------------------------------------

  function visible(landmark) {
    if (state.hidden.has(landmark.class)) return false;
    return landmark.class_source !== "prediction" || landmark.confidence >= state.minConfidence;
  }

  function applyFilters() {
    let shown = 0;
    state.landmarks.forEach((landmark) => {
      const show = visible(landmark);
      state.elements.get(landmark.id).hidden = !show;
      if (show) shown += 1;
    });
    $("landmark-count").textContent = `${shown} of ${state.landmarks.length} landmarks shown`;
  }

  function buildToggles(counts) {
    const box = $("class-toggles");
    box.textContent = "";
    const names = Object.keys(counts);
    names.forEach((name) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !state.hidden.has(name);
      input.dataset.className = name;
      input.addEventListener("change", () => {
        if (input.checked) state.hidden.delete(name); else state.hidden.add(name);
        applyFilters();
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colourOf(name);
      const count = document.createElement("span");
      count.className = "class-count";
      count.dataset.className = name;
      count.textContent = ` ${name === "null" ? "no class" : name}: ${counts[name]}`;
      label.append(input, swatch, count);
      box.append(label);
    });
    if (!names.length) box.textContent = "No landmarks yet.";
  }

  function select(landmark) {
    if (state.selected) state.elements.get(state.selected.id).classList.remove("selected");
    state.selected = landmark;
    state.elements.get(landmark.id).classList.add("selected");
    $("landmark-info").hidden = false;
    $("landmark-id").textContent = landmark.id;
    const sure = landmark.class_source === "prediction"
      ? ` (prediction, ${(landmark.confidence * 100).toFixed(0)}% sure)`
      : landmark.class_source === "label" ? " (labeled)" : " (the boxes' class)";
    const size = landmark.diameter_m ? `, ${landmark.diameter_m.toFixed(1)} m across` : "";
    $("landmark-details").textContent = `${landmark.class || "no class"}${sure}; ` +
      `${landmark.votes} votes, ${landmark.status}${size}; ` +
      latlonText(landmark.latitude, landmark.longitude);
    const crop = $("landmark-crop");
    const link = $("landmark-link");
    crop.hidden = link.hidden = landmark.image_id === null;
    if (landmark.image_id !== null) {
      crop.src = `${page.urls.thumbnail}${landmark.image_id}/thumbnail`;
      link.href = `/projects/${page.project_id}/search/images/${landmark.image_id}`;
    }
  }

  function drawLandmarks(data) {
    state.elements.forEach((element) => state.viewer.removeOverlay(element));
    state.elements.clear();
    state.landmarks = data.landmarks.map((landmark) => (
      { ...landmark, class: landmark.class === null ? "null" : landmark.class }));
    state.landmarks.forEach((landmark) => {
      const element = document.createElement("div");
      element.className = "landmark-box";
      element.dataset.landmarkId = landmark.id;
      element.style.borderColor = colourOf(landmark.class);
      element.title = `${landmark.class} (${landmark.votes} votes)`;
      state.viewer.addOverlay({ element, location: state.viewer.viewport.imageToViewportRectangle(
        landmark.x_min, landmark.y_min, landmark.x_max - landmark.x_min,
        landmark.y_max - landmark.y_min) });
      // OpenSeadragon's own tracker sees presses on overlays: it is the click handler that
      // tells a landmark from the image below it (see onCanvasClick).
      state.elements.set(landmark.id, element);
    });
    const counts = {};
    Object.entries(data.counts).forEach(([name, count]) => {
      counts[name === "null" || name === "" ? "null" : name] = count;
    });
    buildToggles(counts);
    applyFilters();
  }

  function landmarkAt(point) {
    const hits = state.landmarks.filter((landmark) => visible(landmark) &&
      point.x >= landmark.x_min && point.x <= landmark.x_max &&
      point.y >= landmark.y_min && point.y <= landmark.y_max);
    hits.sort((a, b) => (a.x_max - a.x_min) - (b.x_max - b.x_min));  // the smallest on top
    return hits[0] || null;
  }

  async function onCanvasClick(event) {
    if (!event.quick) return;  // a drag pans the image
    const point = state.viewer.viewport.viewerElementToImageCoordinates(event.position);
    const landmark = landmarkAt(point);
    if (landmark) {
      select(landmark);
      return;
    }
    if (point.x < 0 || point.y < 0 || point.x > page.width || point.y > page.height) return;
    const where = await getJson(`${page.urls.latlon}?x=${point.x.toFixed(2)}&y=${point.y.toFixed(2)}`);
    state.lastClick = where;
    $("click-info").textContent = `pixel (${where.x.toFixed(0)}, ${where.y.toFixed(0)}): ` +
      latlonText(where.latitude, where.longitude);
  }

  // --- the size-frequency plot ---------------------------------------------------------------

  function svgElement(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function drawSfd(data) {
    const plot = $("sfd-plot");
    plot.textContent = "";
    $("sfd-note").textContent = data.note ||
      `${data.count} landmark${data.count === 1 ? "" : "s"} over ${data.area_km2.toFixed(2)} ` +
      "km²; cumulative number per " +
      "km² at least D across, log-log.";
    if (!data.diameters_m.length) return;
    const width = 280, height = 200, left = 42, bottom = 28, top = 8, right = 8;
    const xs = data.diameters_m.map(Math.log10), ys = data.cumulative_per_km2.map(Math.log10);
    const floor = (values) => Math.floor(Math.min(...values));
    const ceil = (values) => Math.max(Math.ceil(Math.max(...values)), floor(values) + 1);
    const [x0, x1, y0, y1] = [floor(xs), ceil(xs), floor(ys), ceil(ys)];
    const px = (x) => left + (x - x0) / (x1 - x0) * (width - left - right);
    const py = (y) => height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom);
    const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "cumulative size-frequency distribution" });
    svg.append(svgElement("rect", { x: left, y: top, width: width - left - right,
      height: height - top - bottom, fill: "none", stroke: "#999" }));
    for (let decade = x0; decade <= x1; decade += 1) {
      svg.append(svgElement("text", { x: px(decade), y: height - 14, "text-anchor": "middle" },
        `${10 ** decade >= 1 ? 10 ** decade : (10 ** decade).toPrecision(1)}`));
    }
    for (let decade = y0; decade <= y1; decade += 1) {
      svg.append(svgElement("text", { x: left - 4, y: py(decade) + 3, "text-anchor": "end" },
        `1e${decade}`));
    }
    svg.append(svgElement("text", { x: (width + left) / 2, y: height - 2,
      "text-anchor": "middle" }, "diameter D (m)"));
    const path = xs.map((x, index) => `${index ? "L" : "M"}${px(x).toFixed(1)},${py(ys[index]).toFixed(1)}`);
    svg.append(svgElement("path", { d: path.join(" "), fill: "none", stroke: "#0072B2",
      "stroke-width": 1.5 }));
    xs.forEach((x, index) => svg.append(svgElement("circle", { cx: px(x).toFixed(1),
      cy: py(ys[index]).toFixed(1), r: 1.8, fill: "#0072B2" })));
    plot.append(svg);
  }

  async function loadSfd() {
    const choice = $("sfd-class").value;
    const query = choice ? `?class=${encodeURIComponent(choice)}` : "";
    try {
      drawSfd(await getJson(`${page.urls.sfd}${query}`));
    } catch (error) {
      $("sfd-plot").textContent = "";
      $("sfd-note").textContent = `No size-frequency plot: ${error.message}`;
    }
  }

  function fillSfdClasses(classes) {
    const chooser = $("sfd-class");
    chooser.textContent = "";
    chooser.append(new Option("all landmarks", ""));
    classes.forEach((name) => chooser.append(new Option(name, name, false, name === "crater")));
    chooser.addEventListener("change", loadSfd);
  }

  // --- start ----------------------------------------------------------------------------------

  async function start() {
    summariseTiles();
    listTiles();
    if (page.status !== "ready") {
      if (page.status !== "failed") setTimeout(() => window.location.reload(), 3000);
      return;
    }
    state.viewer = OpenSeadragon({
      element: $("observation-viewer"),
      prefixUrl: root.dataset.vendorImages,
      tileSources: { Image: { xmlns: "http://schemas.microsoft.com/deepzoom/2008",
        Url: page.urls.tiles, Format: page.deepzoom.format,
        Overlap: String(page.deepzoom.overlap), TileSize: String(page.deepzoom.tile_size),
        Size: { Width: String(page.width), Height: String(page.height) } } },
      showNavigator: true, maxZoomPixelRatio: 4, gestureSettingsMouse: { clickToZoom: false },
      crossOriginPolicy: false,
    });
    state.viewer.addHandler("canvas-click", onCanvasClick);
    state.viewer.addHandler("open", async () => {
      $("show-tiles").addEventListener("change", (event) => drawTiles(event.target.checked));
      $("confidence").addEventListener("input", (event) => {
        state.minConfidence = Number(event.target.value);
        $("confidence-value").textContent = state.minConfidence.toFixed(2);
        applyFilters();
      });
      const data = await getJson(page.urls.overlay);
      drawLandmarks(data);
      fillSfdClasses(data.classes);
      await loadSfd();
      state.ready = true;
    });
  }

  start();
})();
