// Model page: poll the queued and running retrain jobs and move their progress bars;
// reload the page once one finishes so that the new version and its metrics appear.
(function () {
  "use strict";
  const POLL_MS = 2000;

  function activeRows() {
    return Array.from(document.querySelectorAll("tr.job")).filter(
      (row) => row.dataset.state === "queued" || row.dataset.state === "running");
  }

  function show(row, job) {
    const percent = Math.round(job.progress * 1000) / 10;
    const bar = row.querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    bar.firstElementChild.style.width = percent + "%";
    row.querySelector(".job-state").textContent = job.state;
    row.querySelector(".job-message").textContent = job.message || "";
    if (job.error) {
      const result = row.querySelector(".job-result");
      result.textContent = "";
      const span = document.createElement("span");
      span.className = "error-text";
      span.textContent = job.error;
      result.appendChild(span);
    }
    row.dataset.state = job.state;
  }

  async function poll() {
    const rows = activeRows();
    if (!rows.length) return;
    let finished = false;
    for (const row of rows) {
      try {
        const response = await fetch("/api/jobs/" + row.dataset.jobId,
                                     {headers: {"Accept": "application/json"}});
        if (!response.ok) continue;
        const job = await response.json();
        show(row, job);
        if (job.state === "done" || job.state === "failed") finished = true;
      } catch (error) {
        // The server may be restarting: try again at the next tick.
      }
    }
    if (finished) {
      window.location.reload();
    } else {
      window.setTimeout(poll, POLL_MS);
    }
  }

  // Admins cancel a queued or running job; the page shows its end when the poll sees it.
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  document.querySelectorAll("button.cancel-job").forEach((button) => {
    button.addEventListener("click", async () => {
      button.disabled = true;
      const response = await fetch(`/api/jobs/${button.dataset.jobId}/cancel`, {
        method: "POST", headers: {"Accept": "application/json", "X-CSRFToken": csrfToken}});
      const answer = await response.json().catch(() => ({}));
      const row = button.closest("tr.job");
      row.querySelector(".job-message").textContent =
        response.ok ? (answer.message || "cancelled") : (answer.error || `cancel failed (${response.status})`);
      if (response.ok && answer.state === "failed") window.location.reload();
    });
  });

  // The server writes each bar's width as data-percent (no style attributes under the CSP).
  document.querySelectorAll(".progress[data-percent]").forEach((bar) => {
    bar.firstElementChild.style.width = bar.dataset.percent + "%";
  });
  // The drift panel's confidence histogram: bar heights, written the same way.
  document.querySelectorAll(".histogram .bar[data-percent]").forEach((bar) => {
    bar.style.height = bar.dataset.percent + "%";
  });
  window.setTimeout(poll, POLL_MS);
})();
