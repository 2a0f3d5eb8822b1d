// A run's page: new STFs join the table, samples are drawn over their STF as they arrive,
// fast-processing figures follow the slices' results, alarms stay until a person acknowledges them.
import { addRange, cell, connectLive, drawRanges, formatBytes, link, throttled } from "./live.js";
import { contentPanels } from "./content.js";
import { drawAlarms, drawQuality } from "./quality.js";

const table = document.getElementById("stfs");
const runNumber = Number(table.dataset.runNumber);
const body = table.tBodies[0];

function rowOf(name) {
  return [...body.rows].find((row) => row.dataset.stf === name);
}

function addStf(stf) {
  if (rowOf(stf.stf_filename)) return;
  const row = body.insertRow(0);
  row.dataset.stf = stf.stf_filename;
  cell(row, stf.sequence);
  cell(row, link("stf-link", "STF", stf.stf_filename, stf.stf_filename));
  cell(row, stf.msg_type === "stf_ready" ? "ready" : "announced").className = "status";
  cell(row, `${stf.state || ""} / ${stf.substate || ""}`);
  cell(row, formatBytes(stf.size_bytes));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "fastmon-ranges");
  svg.setAttribute("viewBox", "0 0 100 6");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.innerHTML = '<rect class="fastmon-ranges-stf" x="0" y="0" width="100" height="6"></rect>';
  cell(row, svg);
  document.getElementById("stf-count").textContent = String(body.rows.length);
}

// Fast processing: the figures are the database's (percentiles, distinct workers), so a
// "processing" event makes the page ask the API again, at most once a second.
const processing = document.getElementById("processing");

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function seconds(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)} s`;
}

const refreshProcessing = throttled(async () => {
  const response = await fetch(processing.dataset.api, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const figures = await response.json();
  for (const status of ["total", "queued", "done", "failed"]) text(`slices-${status}`, figures.slices[status]);
  const time = figures.processing_seconds;
  text("slices-seconds", time.count ? `${seconds(time.p50)} / ${seconds(time.p95)}` : "—");
  text("slices-retries", figures.retries);
  text("slices-workers", `${figures.workers.seen} / ${figures.workers.targeted ?? "—"}`);
  const latency = figures.latency_seconds.stf_to_result;
  text("slices-latency", latency.count ? seconds(latency.p50) : "—");
});

// Quality: drawn from the API, again when a check's verdict on this run changes.
const quality = document.getElementById("quality");
const refreshQuality = throttled(() => drawQuality(quality), 500);
drawQuality(quality);

// Alarms: drawn from the API, again when one of this run's is raised, cleared or acknowledged.
const alarms = document.getElementById("run-alarms");
const refreshAlarms = throttled(() => drawAlarms(alarms), 500);
drawAlarms(alarms);

// Detectors: redrawn when the run's histograms are merged or a check's verdict moves.
const refreshContent = contentPanels(document.getElementById("detectors"));

drawRanges();
connectLive({
  run: runNumber,
  onEvents(events) {
    for (const event of events) {
      if (event.kind === "stf") event.payload.stfs.forEach(addStf);
      else if (event.kind === "processing") refreshProcessing();
      else if (event.kind === "quality") {
        refreshQuality();
        refreshContent();
      } else if (event.kind === "alarm") refreshAlarms();
      else if (event.kind === "content") refreshContent();
      else if (event.kind === "run") {
        refreshQuality(); // an end closes the flags
        document.getElementById("run-state").textContent = `${event.payload.state || "—"} / ${event.payload.substate || "—"}`;
      } else if (event.kind === "tf_samples") {
        const row = rowOf(event.payload.stf_filename);
        if (!row) continue;
        row.querySelector(".status").textContent = "sampled";
        const svg = row.querySelector("svg");
        for (const sample of event.payload.samples) addRange(svg, sample, event.payload.tf_count);
        const count = document.getElementById("sample-count");
        count.textContent = String(Number(count.textContent) + event.payload.samples.length);
        drawRanges(row);
      }
    }
  },
});
