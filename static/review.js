// The review page: keyboard-first review of the queue over the JSON API.
// A accepts the label under review, a class key fixes the image to that class, R rejects the
// label (with a short reason), K skips to the next image.
(() => {
  "use strict";
  const root = document.getElementById("review");
  const projectId = root.dataset.projectId;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const classes = JSON.parse(root.dataset.classes);
  const keyToClass = new Map(classes.filter((c) => c.key).map((c) => [c.key, c.name]));
  const $ = (id) => document.getElementById(id);
  const state = { item: null, skipped: [], busy: false, reviewed: 0 };

  async function api(method, url, body) {
    const options = { method, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    return { status: response.status, data: await response.json().catch(() => null) };
  }

  function filters() {
    const params = new URLSearchParams();
    if ($("filter-labeler").value.trim()) params.set("labeler", $("filter-labeler").value.trim());
    if ($("filter-class").value) params.set("class", $("filter-class").value);
    if (state.skipped.length) params.set("exclude", state.skipped.join(","));
    return params.toString();
  }

  function show(item) {
    state.item = item;
    $("item").hidden = !item;
    if (!item) {
      $("why").textContent = `Nothing to review${state.reviewed ? ` (${state.reviewed} reviewed here)` : ""}.`;
      return;
    }
    const finder = item.finder
      ? ` The finder ranks it ${item.finder.rank} and suggests ${item.finder.suggested}.` : "";
    $("why").textContent = `Image ${item.image_id}: ${item.why}.${finder}`;
    $("picture").src = item.image_url;
    const consensus = item.consensus;
    $("consensus").textContent = consensus.label || "none (tie)";
    $("posterior").textContent = `(${consensus.method}, posterior ${consensus.posterior}, ` +
      `${consensus.n_labels} label${consensus.n_labels === 1 ? "" : "s"})`;
    $("accepts").textContent = item.accept_settles_to || "nothing: fix it with a class key";
    $("prediction").textContent = item.prediction
      ? `${item.prediction.label} at ${item.prediction.confidence}` : "none";
    const list = $("labels");
    list.replaceChildren(...item.labels.map((label) => {
      const row = document.createElement("li");
      row.textContent = `${label.labeler}: ${label.label}`;
      if (label.label_id === item.focus_label_id) {
        row.className = "focus";
        row.textContent += " ← under review";
      }
      return row;
    }));
  }

  async function makeGold() {
    if (!state.item || !state.item.accept_settles_to) {
      $("status").textContent = "nothing to make gold with: fix the image first";
      return;
    }
    const { status, data } = await api("PUT", `/api/images/${state.item.image_id}/gold`,
      { label: state.item.accept_settles_to });
    $("status").textContent = status === 200
      ? `Image ${data.image_id} is gold: ${data.gold}.` : (data && data.error) || `error ${status}`;
  }
  if ($("make-gold")) $("make-gold").addEventListener("click", makeGold);

  async function next() {
    const { status, data } = await api("GET", `/api/projects/${projectId}/review/next?${filters()}`);
    if (status !== 200) {
      $("why").textContent = (data && data.error) || `error ${status}`;
      return;
    }
    show(data.item);
  }

  async function decide(body) {
    if (!state.item || state.busy) return;
    state.busy = true;
    body.label_id = state.item.focus_label_id;
    const { status, data } = await api("POST", `/api/images/${state.item.image_id}/review`, body);
    state.busy = false;
    if (status !== 201) {
      $("status").textContent = (data && data.error) || `error ${status}`;
      return;
    }
    state.reviewed += 1;
    $("status").textContent = `Image ${data.image_id}: ${data.decision}` +
      (data.label ? ` (${data.label})` : "") + ".";
    await next();
  }

  function openReject() {
    if (!state.item) return;
    $("reject-form").hidden = false;
    $("reject-reason").value = "";
    $("reject-reason").focus();
  }

  $("reject-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = $("reject-reason").value.trim();
    if (!reason) {
      $("status").textContent = "A reject needs a short reason.";
      return;
    }
    $("reject-form").hidden = true;
    await decide({ decision: "reject", reason });
  });
  $("reject-reason").addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("reject-form").hidden = true;
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.skipped = [];
    next();
  });
  for (const button of document.querySelectorAll(".fix-button")) {
    button.addEventListener("click", () => decide({ decision: "fix", label: button.dataset.name }));
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "a") decide({ decision: "accept" });
    else if (key === "r") { event.preventDefault(); openReject(); }
    else if (key === "k" && state.item) { state.skipped.push(state.item.image_id); next(); }
    else if (keyToClass.has(key)) decide({ decision: "fix", label: keyToClass.get(key) });
    else return;
    event.preventDefault();
  });

  next();
})();
