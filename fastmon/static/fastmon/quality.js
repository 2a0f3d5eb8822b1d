// A run's quality flags as a timeline: a row per check, each flag a bar over its time range,
// coloured by quality; time no flag covers is left blank (Unknown).
import { showQuality } from "./live.js";

const SVG = "http://www.w3.org/2000/svg";

export async function drawQuality(section) {
  const response = await fetch(section.dataset.api, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const quality = await response.json();
  showQuality(document.getElementById("run-quality"), quality.overall);
  showQuality(document.getElementById("run-quality-now"), quality.current);
  const flags = quality.flags.map((flag) => ({
    ...flag, from: Date.parse(flag.start), to: flag.end ? Date.parse(flag.end) : Date.now(),
  }));
  const rows = section.querySelector("tbody");
  rows.replaceChildren();
  if (!flags.length) return;
  const first = Math.min(...flags.map((f) => f.from));
  const span = Math.max(1, Math.max(...flags.map((f) => f.to)) - first);
  for (const check of [...new Set(flags.map((f) => f.check))].sort()) {
    const row = rows.insertRow();
    row.dataset.check = check;
    row.insertCell().textContent = check;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "fastmon-timeline");
    svg.setAttribute("viewBox", "0 0 100 6");
    svg.setAttribute("preserveAspectRatio", "none");
    for (const flag of flags.filter((f) => f.check === check)) {
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("class", `fastmon-q-${flag.quality}`);
      bar.setAttribute("x", String((100 * (flag.from - first)) / span));
      bar.setAttribute("width", String(Math.max(0.3, (100 * (flag.to - flag.from)) / span)));
      bar.setAttribute("height", "6");
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${flag.quality}: ${flag.reason}`;
      bar.appendChild(title);
      svg.appendChild(bar);
    }
    row.insertCell().appendChild(svg);
    const last = flags.filter((f) => f.check === check).at(-1);
    row.insertCell().textContent = last.reason;
  }
}

// A run's alarms, newest first: each shown until a person acknowledges it, a cleared one
// that no one has acknowledged set apart. Logged in, a button acknowledges one (session and
// CSRF) and its row is redrawn from the answer.
const STATE_CLASS = {
  active: "fastmon-alarm-active",
  "cleared, unacknowledged": "fastmon-alarm-unacknowledged",
  acknowledged: "fastmon-alarm-acknowledged",
};

function alarmRow(table, row, alarm) {
  row.replaceChildren();
  row.dataset.id = String(alarm.id);
  row.className = STATE_CLASS[alarm.state];
  for (const value of [alarm.raised_at, alarm.check, alarm.quality, alarm.reason]) row.insertCell().textContent = value;
  const state = row.insertCell();
  state.className = "fastmon-alarm-state";
  state.textContent = alarm.acknowledged_by ? `${alarm.state} by ${alarm.acknowledged_by}` : alarm.state;
  const action = row.insertCell();
  if (alarm.state !== "acknowledged" && "mayAcknowledge" in table.dataset) {
    const button = document.createElement("button");
    button.textContent = "acknowledge";
    button.addEventListener("click", () => acknowledge(table, row, button));
    action.appendChild(button);
  }
}

async function acknowledge(table, row, button) {
  button.disabled = true;
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const response = await fetch(`${table.dataset.api}${row.dataset.id}/acknowledge/`, {
    method: "POST",
    headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    credentials: "same-origin",
  });
  if (response.ok) alarmRow(table, row, await response.json());
  else button.replaceWith(response.statusText || String(response.status));
}

export async function drawAlarms(table) {
  const url = `${table.dataset.api}?run_number=${table.dataset.runNumber}`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const rows = table.tBodies[0];
  rows.replaceChildren();
  for (const alarm of (await response.json()).results) alarmRow(table, rows.insertRow(), alarm);
}
