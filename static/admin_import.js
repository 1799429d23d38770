// Admin import: upload with a progress bar, then poll the import (or classify) job until its report is in.
(function () {
  "use strict";
  const panel = document.getElementById("import-status");
  if (!panel) return;
  const bar = panel.querySelector(".progress > div");
  const message = panel.querySelector(".message");
  const reportBox = panel.querySelector(".report");
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  function show(fraction, text) {
    panel.hidden = false;
    bar.style.width = Math.round(fraction * 100) + "%";
    message.textContent = text;
  }

  function element(tag, text) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showReport(result) {
    const report = result.report || {};
    reportBox.replaceChildren(element("p", result.summary || ""));
    const rejected = report.rejected || [];
    if (rejected.length) {
      const list = element("ul");
      rejected.forEach((item) => list.append(element("li", item.name + ": " + item.reason)));
      reportBox.append(element("h3", "Rejected (" + report.rejected_count + ")"), list);
    }
    const duplicates = report.duplicates || [];
    if (duplicates.length) {
      const details = element("details");
      details.append(element("summary", "Duplicates, not stored twice (" + report.duplicate_count + ")"),
                     element("p", duplicates.join(", ")));
      reportBox.append(details);
    }
  }

  // The counts at the top of the page, read again from the page itself once a job is done.
  function refreshCounts() {
    fetch(window.location.pathname, {credentials: "same-origin"})
      .then((response) => response.text())
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("project-counts");
        const shown = document.getElementById("project-counts");
        if (fresh && shown) shown.replaceWith(fresh);
      })
      .catch(() => {});
  }

  function poll(url) {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then((response) => response.json())
      .then((job) => {
        const what = job.kind === "classify" ? "Classification" : "Import";
        if (job.state === "done") {
          show(1, what + " finished.");
          showReport(job.result || {});
          refreshCounts();
        } else if (job.state === "failed") {
          show(job.progress, what + " failed: " + job.error);
        } else {
          show(job.progress, job.state + ": " + (job.message || "waiting for the worker"));
          setTimeout(() => poll(url), 1000);
        }
      })
      .catch(() => setTimeout(() => poll(url), 3000));
  }

  function statusUrl(jobId) {
    return panel.dataset.statusUrl.replace(/0$/, String(jobId));
  }

  function submitWithProgress(event) {
    event.preventDefault();
    const form = event.target;
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRFToken", csrfToken);
    request.upload.onprogress = (progress) => {
      if (progress.lengthComputable) show(progress.loaded / progress.total * 0.999, "uploading…");
    };
    request.onload = () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (error) { body = {}; }
      if (request.status === 202) {
        reportBox.replaceChildren();
        poll(body.status_url);
      } else {
        show(0, "Import not started: " + (body.error || "HTTP " + request.status));
      }
    };
    request.onerror = () => show(0, "Upload failed: the connection broke. Nothing was imported; try again.");
    show(0, "uploading…");
    request.send(new FormData(form));
  }

  document.querySelectorAll("form.import-form").forEach((form) => {
    form.addEventListener("submit", submitWithProgress);
  });
  if (panel.dataset.watch) poll(statusUrl(panel.dataset.watch));
})();
