// The landmark review page: accept, fix the class of, or reject each landmark (reviewers).
(() => {
  "use strict";
  const table = document.getElementById("landmark-review");
  if (!table) return;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const message = document.getElementById("review-message");

  function say(text, kind) {
    message.textContent = text;
    message.className = `flash ${kind || ""}`;
    message.hidden = !text;
  }

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button.decide");
    if (!button) return;
    const row = button.closest("tr");
    const body = { decision: button.dataset.decision };
    if (body.decision === "fix") body.label = row.querySelector(".fix-class").value;
    const response = await fetch(`/api/landmarks/${row.dataset.id}/review`, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) { say((data && data.error) || `error ${response.status}`, "error"); return; }
    row.className = data.status;
    row.querySelector(".status").textContent = data.status;
    say(`Landmark ${data.id}: ${data.status}.`, "");
  });
})();
