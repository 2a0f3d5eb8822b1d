// Dead letters arrive live; replay or discard one through the API (session login, CSRF).
import { cell, connectLive } from "./live.js";

const table = document.getElementById("letters");
const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;

table.addEventListener("click", async (click) => {
  const button = click.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr");
  const response = await fetch(`${table.dataset.api}dead-letters/${row.dataset.id}/${button.dataset.action}/`, {
    method: "POST",
    headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    credentials: "same-origin",
  });
  const result = await response.json();
  row.lastElementChild.textContent = result.detail || result.outcome || response.statusText;
});

connectLive({
  kinds: ["dead_letter"],
  onEvents(events) {
    for (const event of events) {
      const row = table.tBodies[0].insertRow(0);
      row.dataset.id = String(event.payload.id);
      for (const value of [event.payload.id, event.created_at, 1,
        `${event.payload.reason_code} ${event.payload.reason}`, event.payload.msg_type,
        event.payload.destination, "", ""]) cell(row, value);
    }
  },
});
