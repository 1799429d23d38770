// Atlas search pages: the faceted search, the counts per group and the detail of an image.
// The URL holds the whole query (bookmark it, share it); the page asks the JSON API with it.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const DEFAULT_CONFIDENCE = "0.9";
  const CLASS_FACETS = { class: "Class", label: "Human label", predicted: "Model prediction", status: "Status" };
  const STATUSES = ["labeled", "unlabeled", "disagree"];

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    return body;
  }

  // Where no min_confidence is in the URL the slider starts at 0.9 (the paper's catalog);
  // an empty min_confidence means "no threshold".
  function withDefaultConfidence(params) {
    if (!params.has("min_confidence")) params.set("min_confidence", DEFAULT_CONFIDENCE);
    return params;
  }

  function formatConfidence(value) {
    return value === null || value === undefined ? "" : Number(value).toFixed(2);
  }

  // --- the search page ---------------------------------------------------------------------
  function searchPage(root) {
    let params = withDefaultConfidence(new URLSearchParams(location.search));
    history.replaceState(null, "", `?${params}`);
    let typing = null;
    const classes = JSON.parse(root.dataset.classes);

    function go(change) {
      change(params);
      params.delete("page");
      history.pushState(null, "", `?${params}`);
      run();
    }

    function showControls() {
      $("q").value = params.get("q") || "";
      $("sort").value = params.get("sort") || "confidence_desc";
      const threshold = params.get("min_confidence");
      $("use-confidence").checked = threshold !== "";
      $("min-confidence").value = threshold || DEFAULT_CONFIDENCE;
      $("min-confidence").disabled = threshold === "";
      $("confidence-value").textContent = formatConfidence($("min-confidence").value);
    }

    // The groups page counts one class at a confidence threshold: it keeps the first class
    // ticked here and the threshold, so the user lands where they were.
    function groupsLink() {
      const kept = new URLSearchParams();
      if (params.get("class")) kept.set("class", params.get("class"));
      kept.set("min_confidence", params.get("min_confidence") || "");
      return `${$("groups-link").dataset.base}?${kept}`;
    }

    async function run() {
      showControls();
      $("csv-link").href = `${root.dataset.csv}?${params}`;
      if ($("groups-link")) $("groups-link").href = groupsLink();
      try {
        const answer = await getJSON(`${root.dataset.api}?${params}`);
        $("error").hidden = true;
        showFacets(answer.facets);
        showGrid(answer);
      } catch (error) {
        $("error").textContent = error.message;
        $("error").hidden = false;
      }
    }

    // JSON objects carry no order: classes come in the project's order, statuses in
    // STATUSES, metadata values most frequent first.
    function showFacets(facets) {
      const list = $("facet-list");
      list.replaceChildren();
      const names = [...Object.keys(CLASS_FACETS), ...Object.keys(facets).filter((name) => !(name in CLASS_FACETS))];
      for (const facet of names.filter((name) => name in facets)) {
        const counts = facets[facet];
        const title = CLASS_FACETS[facet] || facet.replace(/^meta\./, "");
        const box = element("fieldset", { class: "facet", "data-facet": facet }, element("legend", { text: title }));
        if ("min" in counts && "max" in counts) box.append(rangeFacet(facet, counts));
        else for (const value of facetOrder(facet, counts)) box.append(valueFacet(facet, value, counts[value]));
        list.append(box);
      }
    }

    function facetOrder(facet, counts) {
      if (facet === "status") return STATUSES;
      if (facet in CLASS_FACETS) return classes;
      return Object.keys(counts).sort((a, b) => counts[b] - counts[a] || a.localeCompare(b));
    }

    function valueFacet(facet, value, count) {
      const box = element("input", { type: "checkbox", value });
      box.checked = params.getAll(facet).includes(value);
      box.addEventListener("change", () => go((p) => {
        const kept = p.getAll(facet).filter((given) => given !== value);
        p.delete(facet);
        for (const given of box.checked ? [...kept, value] : kept) p.append(facet, given);
      }));
      return element("label", { class: count ? "choice" : "choice empty" }, box, ` ${value} `,
        element("span", { class: "count", text: String(count) }));
    }

    function rangeFacet(facet, range) {
      const row = element("div", { class: "range" });
      for (const bound of ["min", "max"]) {
        const name = `${facet}.${bound}`;
        const input = element("input", { type: "number", step: "any", placeholder: range[bound] ?? "", "aria-label": name });
        input.value = params.get(name) || "";
        input.addEventListener("change", () => go((p) => { if (input.value) p.set(name, input.value); else p.delete(name); }));
        row.append(input);
      }
      return row;
    }

    function showGrid(answer) {
      const grid = $("grid");
      grid.replaceChildren();
      for (const item of answer.items) grid.append(card(item));
      const first = (answer.page - 1) * answer.per_page;
      $("summary").textContent = answer.total
        ? `${answer.total} images; ${first + 1}–${first + answer.items.length} shown`
        : "No image matches.";
      const pages = Math.max(1, Math.ceil(answer.total / answer.per_page));
      $("page-number").textContent = `page ${answer.page} of ${pages}`;
      $("previous").disabled = answer.page <= 1;
      $("next").disabled = answer.page >= pages;
    }

    function card(item) {
      const human = item.label ? `human: ${item.label}` : "no human label";
      const model = item.predicted ? `model: ${item.predicted} ${formatConfidence(item.confidence)}` : "no prediction";
      return element("a", { class: "result", href: `${root.dataset.detail}${item.image_id}?${params}`, "data-image-id": String(item.image_id) },
        element("img", { src: item.thumbnail_url, alt: item.filename, loading: "lazy" }),
        element("span", { class: "filename", text: item.filename }),
        element("span", { class: item.label ? "human" : "muted", text: human }),
        element("span", { class: "model", text: model }));
    }

    function turnPage(step) {
      const page = Math.max(1, Number(params.get("page") || 1) + step);
      params.set("page", String(page));
      history.pushState(null, "", `?${params}`);
      run();
      window.scrollTo(0, 0);
    }

    $("q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => go((p) => { if ($("q").value.trim()) p.set("q", $("q").value.trim()); else p.delete("q"); }), 300);
    });
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("sort").addEventListener("change", () => go((p) => p.set("sort", $("sort").value)));
    $("min-confidence").addEventListener("input", () => { $("confidence-value").textContent = formatConfidence($("min-confidence").value); });
    $("min-confidence").addEventListener("change", () => go((p) => p.set("min_confidence", $("min-confidence").value)));
    $("use-confidence").addEventListener("change", () => go((p) => p.set("min_confidence", $("use-confidence").checked ? $("min-confidence").value : "")));
    $("previous").addEventListener("click", () => turnPage(-1));
    $("next").addEventListener("click", () => turnPage(1));
    window.addEventListener("popstate", () => { params = withDefaultConfidence(new URLSearchParams(location.search)); run(); });
    run();
  }

  // --- counts per group ----------------------------------------------------------------------
  function groupsPage(root) {
    let params = withDefaultConfidence(new URLSearchParams(location.search));
    if (!params.has("min_count")) params.set("min_count", "1");
    history.replaceState(null, "", `?${params}`);

    function go(change) {
      change(params);
      history.pushState(null, "", `?${params}`);
      run();
    }

    async function run() {
      $("group-class").value = params.get("class") || "";
      $("group-confidence").value = params.get("min_confidence") || "0";
      $("group-confidence-value").textContent = formatConfidence($("group-confidence").value);
      $("min-count").value = params.get("min_count");
      $("min-count-value").textContent = params.get("min_count");
      try {
        const answer = await getJSON(`${root.dataset.api}?${params}`);
        $("group-error").hidden = true;
        showGroups(answer);
      } catch (error) {
        $("group-error").textContent = error.message;
        $("group-error").hidden = false;
      }
    }

    function showGroups(answer) {
      const rows = $("group-rows");
      rows.replaceChildren();
      for (const group of answer.groups) {
        const search = new URLSearchParams();
        if (params.get("class")) search.set("class", params.get("class"));
        search.set("min_confidence", params.get("min_confidence") || "");
        search.set(`meta.${root.dataset.column}`, group.group);
        const link = element("a", { href: `${root.dataset.search}?${search}`, text: group.group });
        rows.append(element("tr", {}, element("td", {}, link), element("td", { text: String(group.count) }),
          element("td", { text: String(group.images) })));
      }
      const pages = Math.max(1, Math.ceil(answer.total / answer.per_page));
      $("group-summary").textContent = `${answer.total} groups with at least ${params.get("min_count")} such images`;
      $("group-page").textContent = `page ${answer.page} of ${pages}`;
      $("group-previous").disabled = answer.page <= 1;
      $("group-next").disabled = answer.page >= pages;
    }

    function turnPage(step) {
      go((p) => p.set("page", String(Math.max(1, Number(p.get("page") || 1) + step))));
    }

    $("group-class").addEventListener("change", () => go((p) => { p.delete("page"); if ($("group-class").value) p.set("class", $("group-class").value); else p.delete("class"); }));
    $("group-confidence").addEventListener("input", () => { $("group-confidence-value").textContent = formatConfidence($("group-confidence").value); });
    $("group-confidence").addEventListener("change", () => go((p) => { p.delete("page"); p.set("min_confidence", $("group-confidence").value); }));
    $("min-count").addEventListener("input", () => { $("min-count-value").textContent = $("min-count").value; });
    $("min-count").addEventListener("change", () => go((p) => { p.delete("page"); p.set("min_count", $("min-count").value); }));
    $("group-previous").addEventListener("click", () => turnPage(-1));
    $("group-next").addEventListener("click", () => turnPage(1));
    window.addEventListener("popstate", () => { params = withDefaultConfidence(new URLSearchParams(location.search)); run(); });
    run();
  }

  // --- the detail of one image ---------------------------------------------------------------
  function detailPage(canvas) {
    const context = canvas.getContext("2d");
    const picture = new Image();
    const draw = () => {
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
      context.drawImage(picture, 0, 0);
      if ($("detail-stretch").checked) window.stretchContrast(context, canvas.width, canvas.height);
    };
    picture.addEventListener("load", draw);
    picture.src = canvas.dataset.src;
    $("detail-stretch").addEventListener("change", draw);
    if (location.search) $("back-to-search").href += location.search;
    // The arrow keys step through the search's results, as the links above do.
    document.addEventListener("keydown", (event) => {
      if (event.target.matches("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
      const link = { ArrowLeft: $("previous-image"), ArrowRight: $("next-image") }[event.key];
      if (link) { event.preventDefault(); location.href = link.href; }
    });
    for (const button of document.querySelectorAll(".label-button")) {
      button.addEventListener("click", () => submitLabel(button.value));
    }
  }

  function requestId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  async function submitLabel(name) {
    const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
    const response = await fetch($("label-it").dataset.url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({ label: name, request_id: requestId() }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) location.reload();
    else $("label-message").textContent = body.error || `the server answered ${response.status}`;
  }

  if ($("search")) searchPage($("search"));
  if ($("groups")) groupsPage($("groups"));
  if ($("detail-canvas")) detailPage($("detail-canvas"));
})();
