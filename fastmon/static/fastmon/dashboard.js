// The dashboard: cards, the live TF sample table and three charts (uPlot), fed by live events.
import { byteUnit, cell, connectLive, formatBytes, link, showQuality, throttled } from "./live.js";
import { drawDetectorTiles } from "./content.js";

const WINDOW_S = 600;
const BIN_S = 5;
const CARD_BINS = 2; // the rate card: the mean of the chart's last complete bins
const MAX_POINTS = 2000;
// A lone point (or several at one moment) gets this span around it: uPlot would stretch it to
// a day or more, the point lost at one edge.
const MIN_SPAN_S = 60;

const initial = JSON.parse(document.getElementById("chart-data").textContent);
// Event times are the server's: a browser clock ahead or behind would empty the last bins.
const clockOffset = initial.now - Date.now() / 1000;
const serverNow = () => Date.now() / 1000 + clockOffset;
const stfTimes = initial.stf_received.slice().sort((a, b) => a - b);
const samples = initial.samples.slice();
const table = document.querySelector("#tf-samples tbody");
const maxRows = Number(document.getElementById("tf-samples").dataset.maxRows); // a screenful
const counters = { coalesced: 0, events: 0 };
window.fastmonCounters = counters;

function rateSeries(now) {
  const start = Math.floor((now - WINDOW_S) / BIN_S) * BIN_S;
  const bins = Math.ceil(WINDOW_S / BIN_S) + 1;
  const xs = Array.from({ length: bins }, (_, i) => start + i * BIN_S);
  const ys = new Array(bins).fill(0);
  for (const t of stfTimes) {
    const i = Math.floor((t - start) / BIN_S);
    if (i >= 0 && i < bins) ys[i] += 1 / BIN_S;
  }
  return [xs, ys];
}

// The x range: the data's own (not the range uPlot made up for one moment), at least
// MIN_SPAN_S wide.
function timeRange(chart, min, max) {
  const times = chart.data[0].filter((t) => t !== null);
  if (!times.length) return [min, max];
  const first = Math.min(...times);
  const last = Math.max(...times);
  if (last - first >= MIN_SPAN_S) return [first, last];
  const middle = (first + last) / 2;
  return [middle - MIN_SPAN_S / 2, middle + MIN_SPAN_S / 2];
}

function makeChart(id, label, data, points) {
  if (!window.uPlot) return null; // static files not built: the tables still work
  const element = document.getElementById(id);
  const series = [{}, { label, stroke: "#2c6fbb", width: points ? 0 : 1.5,
    points: { show: points, size: 4, fill: "#2c6fbb" } }];
  const scales = { x: { time: true, range: timeRange } };
  return new window.uPlot({ width: 420, height: 200, series, scales }, data, element);
}

// Sizes in the unit their largest calls for (as the tables write them): a few KB are not
// plotted as thousandths of a MB.
function sizeUnit() {
  const unit = byteUnit(samples.reduce((most, s) => Math.max(most, s.bytes ?? 0), 0));
  document.getElementById("chart-tf-sizes-unit").textContent = unit.name;
  return unit.size;
}

const sampleSeries = (key, scale) => [samples.map((s) => s.at), samples.map((s) => (s[key] === null ? null : s[key] / scale))];
const charts = {
  rate: makeChart("chart-stf-rate", "STF/s", rateSeries(serverNow()), false),
  sizes: makeChart("chart-tf-sizes", "size", sampleSeries("bytes", sizeUnit()), true),
  latency: makeChart("chart-latency", "s", sampleSeries("latency", 1), true),
};
window.fastmonCharts = charts;

let redrawPending = false;
function scheduleRedraw() {
  if (redrawPending) {
    counters.coalesced += 1; // several event batches, one redraw
    return;
  }
  redrawPending = true;
  requestAnimationFrame(() => {
    redrawPending = false;
    const rates = rateSeries(serverNow());
    const complete = rates[1].slice(-1 - CARD_BINS, -1); // the last bin is still filling
    const rate = complete.reduce((sum, value) => sum + value, 0) / CARD_BINS;
    document.getElementById("stf-rate").textContent = rate.toFixed(1);
    charts.rate?.setData(rates);
    charts.sizes?.setData(sampleSeries("bytes", sizeUnit()));
    charts.latency?.setData(sampleSeries("latency", 1));
  });
}

function addSampleRows(event) {
  const payload = event.payload;
  const received = payload.stf_received_at ? Date.parse(payload.stf_received_at) : null;
  for (const sample of payload.samples) {
    const row = table.insertRow(0);
    row.dataset.sequence = String(event.sequence);
    cell(row, sample.tf_filename);
    cell(row, link("stf-link", "STF", payload.stf_filename, payload.stf_filename));
    cell(row, event.run_number);
    cell(row, `${sample.tf_first}–${sample.tf_last}`);
    cell(row, formatBytes(sample.file_size_bytes));
    cell(row, sample.status);
    cell(row, new Date(sample.created_at).toLocaleTimeString());
    const at = Date.parse(sample.created_at);
    samples.push({ at: at / 1000, bytes: sample.file_size_bytes, latency: received ? (at - received) / 1000 : null });
  }
  while (table.rows.length > maxRows) table.deleteRow(-1);
  if (samples.length > MAX_POINTS) samples.splice(0, samples.length - MAX_POINTS);
}

// The current run's fast processing, asked of the API again (at most once a second) when its
// slices move on.
const processing = document.getElementById("processing");
const refreshProcessing = throttled(async (run) => {
  const response = await fetch(processing.dataset.api.replace("/0/", `/${run}/`));
  if (!response.ok) return;
  const figures = await response.json();
  for (const status of ["done", "total", "failed"]) {
    document.getElementById(`slices-${status}`).textContent = String(figures.slices[status]);
  }
});

function currentRun() {
  return Number(document.getElementById("current-run").textContent);
}

function showRun(event) {
  // A new run: no check has judged it yet.
  if (event.run_number !== currentRun()) {
    for (const id of ["run-quality", "run-quality-now"]) showQuality(document.getElementById(id), "null");
  }
  const current = document.getElementById("current-run");
  current.replaceChildren(link("run-link", "0", event.run_number, String(event.run_number)));
  document.getElementById("daq-state").textContent = `${event.payload.state || "—"} / ${event.payload.substate || "—"}`;
}

// The current run's detectors, a tile each in its worst quality: redrawn when its histograms
// are merged or a verdict moves.
const tiles = document.getElementById("detector-tiles");
const refreshTiles = throttled((run) => drawDetectorTiles(tiles, run), 1000);
drawDetectorTiles(tiles, currentRun());

connectLive({
  onEvents(events) {
    counters.events += events.length;
    for (const event of events) {
      if (event.kind === "tf_samples") addSampleRows(event);
      else if (event.kind === "stf") {
        const at = Date.parse(event.created_at) / 1000;
        for (const _ of event.payload.stfs) stfTimes.push(at);
      } else if (event.kind === "run") showRun(event);
      else if (event.kind === "processing" && event.run_number === currentRun()) {
        refreshProcessing(event.run_number);
      }
      else if (event.kind === "quality" && event.run_number === currentRun()) {
        showQuality(document.getElementById("run-quality"), event.payload.overall);
        showQuality(document.getElementById("run-quality-now"), event.payload.current);
        refreshTiles(event.run_number);
      } else if (event.kind === "content" && event.run_number === currentRun()) {
        refreshTiles(event.run_number);
      }
      else if (event.kind === "dead_letter") {
        const count = document.getElementById("dead-letters");
        count.textContent = String(Number(count.textContent) + 1);
      } else if (event.kind === "alarm") {
        const item = document.createElement("li");
        item.textContent = event.payload.message;
        document.getElementById("alarms").appendChild(item);
      }
    }
    const cutoff = serverNow() - WINDOW_S;
    while (stfTimes.length && stfTimes[0] < cutoff) stfTimes.shift();
    scheduleRedraw();
  },
});
setInterval(scheduleRedraw, 2000); // the rate decays when STFs stop coming
