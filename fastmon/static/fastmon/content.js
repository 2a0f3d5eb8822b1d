// A run's detectors, as a shifter looks at them: per detector a panel with its occupancy as a
// heatmap (source x channel), its ADC and bunch-crossing spectra (uPlot) with the reference
// overlaid (both normalised), and its checks' colour and reason. Redrawn on each "content" and
// "quality" event, without a reload; a panel fetches only the histograms it shows.
import { showQuality, throttled } from "./live.js";

const SEVERITY = { null: 0, good: 1, medium: 2, bad: 3 };
const SHOWN = ["adc", "bx"];

function worst(verdicts) {
  let found = { quality: "null", reason: "no check has judged it yet" };
  for (const [check, verdict] of Object.entries(verdicts || {})) {
    if (SEVERITY[verdict.quality] > SEVERITY[found.quality]) found = { ...verdict, check };
  }
  return found;
}

async function json(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  return response.ok ? response.json() : null;
}

// UHI's JSON (flow bins included where the axis has them): the bins' values, and each bin's
// lower edge.
function bins(uhi) {
  const axis = uhi.axes[0];
  const first = axis.underflow ? 1 : 0;
  const count = axis.edges ? axis.edges.length - 1 : axis.bins;
  const values = uhi.storage.values.slice(first, first + count);
  const width = (axis.upper - axis.lower) / count;
  const edges = axis.edges ? axis.edges.slice(0, count) : values.map((_, i) => axis.lower + i * width);
  return { edges, values };
}

function normalised(values) {
  const total = values.reduce((a, b) => a + b, 0);
  return total ? values.map((v) => v / total) : values;
}

function drawHeatmap(canvas, uhi) {
  const rows = uhi.storage.values; // [source][channel]
  const sources = rows.length;
  const channels = sources ? rows[0].length : 0;
  canvas.width = Math.min(channels, 1024) || 1;
  canvas.height = sources || 1;
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  const step = channels / canvas.width;
  let peak = 0;
  for (const row of rows) for (const v of row) peak = Math.max(peak, v);
  for (let s = 0; s < sources; s++) {
    for (let x = 0; x < canvas.width; x++) {
      let value = 0;
      for (let c = Math.floor(x * step); c < Math.floor((x + 1) * step); c++) value = Math.max(value, rows[s][c]);
      const level = peak ? Math.sqrt(value / peak) : 0; // sqrt: a hot cell stands out, the rest stays visible
      const at = 4 * (s * canvas.width + x);
      image.data[at] = 255 * level;
      image.data[at + 1] = 80 * level;
      image.data[at + 2] = 255 * (1 - level) * (value > 0 ? 1 : 0.3);
      image.data[at + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
  canvas.dataset.peak = String(peak);
}

function drawSpectrum(holder, name, ours, reference) {
  const data = [ours.edges, normalised(ours.values)];
  if (reference) data.push(normalised(reference.values));
  // A chart is made once and given new data after (uPlot's way); a reference that comes or
  // goes changes the series, so the chart is made again.
  if (holder.plot && holder.plot.series.length === data.length) {
    holder.plot.setData(data);
    return;
  }
  if (holder.plot) holder.plot.destroy();
  const stepped = uPlot.paths.stepped({ align: 1 });
  const series = [{}, { label: "this run", stroke: "#1f5fbf", paths: stepped }];
  if (reference) series.push({ label: "reference", stroke: "#888", dash: [4, 3], paths: stepped });
  holder.plot = new uPlot({ width: 320, height: 150, title: name, series,
    scales: { x: { time: false } } }, data, holder);
}

function panelFor(section, detector) {
  let panel = section.querySelector(`[data-detector="${detector}"]`);
  if (panel) return panel;
  panel = document.getElementById("detector-panel").content.firstElementChild.cloneNode(true);
  panel.dataset.detector = detector;
  panel.querySelector(".fastmon-detector-name").textContent = detector;
  section.appendChild(panel);
  return panel;
}

async function drawDetector(panel, detector, summary, urls) {
  const verdict = worst((summary.quality || {})[detector]);
  const badge = panel.querySelector("h3 .fastmon-quality"); // showQuality sets its classes
  showQuality(badge, verdict.quality);
  panel.className = `fastmon-detector fastmon-q-${verdict.quality}`;
  panel.querySelector(".fastmon-detector-reason").textContent = verdict.reason || "";
  const figures = summary.detectors[detector] || { hits: 0, tfs: 0 };
  panel.querySelector(".fastmon-detector-hits").textContent = `${figures.hits} hits in ${figures.tfs} TFs`;
  const occupancy = urls[`${detector}/occupancy`];
  if (occupancy) {
    panel.querySelector(".fastmon-download").href = `${occupancy}?format=root`;
    const uhi = await json(occupancy);
    if (uhi) drawHeatmap(panel.querySelector("canvas"), uhi);
  }
  const references = (summary.references || {})[detector] || {};
  for (const name of SHOWN) {
    const url = urls[`${detector}/${name}`];
    if (!url) continue;
    const [ours, theirs] = await Promise.all([json(url), references[name] ? json(references[name]) : null]);
    if (ours) drawSpectrum(panel.querySelector(`.fastmon-${name}`), name, bins(ours), theirs && bins(theirs));
  }
}

export function contentPanels(section) {
  // One drawing at a time: an event during one asks for one more after it.
  let drawing = false;
  let again = false;
  const draw = async () => {
    if (drawing) {
      again = true;
      return;
    }
    drawing = true;
    try {
      do {
        again = false;
        await drawOnce();
      } while (again);
    } finally {
      drawing = false;
    }
  };
  const drawOnce = async () => {
    const summary = await json(section.dataset.api);
    if (!summary) return;
    section.dataset.cycle = String(summary.cycle);
    document.getElementById("content-cycle").textContent = summary.cycle
      ? `cycle ${summary.cycle}, ${summary.tfs_decoded} TFs decoded, ${summary.corrupt_tfs} corrupt`
      : "no content merged yet";
    const urls = Object.fromEntries(summary.histograms.map((h) => [h.name, h.url]));
    document.getElementById("content-root").href = summary.root_url;
    const detectors = Object.keys(summary.detectors).sort();
    await Promise.all(detectors.map((d) => drawDetector(panelFor(section, d), d, summary, urls)));
    section.dataset.drawnCycle = String(summary.cycle); // every panel drawn for this cycle
  };
  draw();
  return throttled(draw, 1000);
}

// The dashboard's summary of a run's detectors: a tile each, in its worst quality.
export async function drawDetectorTiles(section, run) {
  const summary = run ? await json(section.dataset.api.replace("/0/", `/${run}/`)) : null;
  section.replaceChildren();
  if (!summary) return;
  for (const detector of Object.keys(summary.detectors).sort()) {
    const verdict = worst((summary.quality || {})[detector]);
    const tile = document.createElement("div");
    tile.className = `fastmon-card fastmon-q-${verdict.quality}`;
    tile.dataset.detector = detector;
    tile.title = verdict.reason || "";
    const name = document.createElement("h3");
    name.textContent = detector;
    const state = document.createElement("p");
    state.textContent = verdict.quality === "null" ? "unknown" : verdict.quality;
    tile.append(name, state);
    section.appendChild(tile);
  }
}
