// A run's detectors, as a shifter looks at them: per detector a panel with its occupancy as a
// heatmap (source x channel), its ADC and bunch-crossing spectra (uPlot) with the reference
// overlaid (both normalised), its checks' colour and reason, and beside each histogram the
// checks' word on that histogram. Over the whole run or the moving window (the page's choice);
// redrawn on each "content" and "quality" event, without a reload. A page fetches the summary
// and, in one request, only the histograms its panels show; a fetch that fails leaves the
// panels marked stale and is tried again shortly.
import { showQuality } from "./live.js";

const SEVERITY = { null: 0, good: 1, medium: 2, bad: 3 };
const SHOWN = ["occupancy", "adc", "bx"];

// The worst of these verdicts ({check, quality, reason}); its reason the first of that
// quality's, the others in `all` (a tooltip).
function worst(verdicts, unjudged = "no check has judged it yet") {
  let found = { quality: "null", reason: unjudged };
  for (const verdict of verdicts) {
    if (SEVERITY[verdict.quality] > SEVERITY[found.quality] || found.check === undefined) found = verdict;
  }
  const all = verdicts.filter((v) => v.quality === found.quality).map((v) => `${v.check}: ${v.reason}`);
  return { ...found, all };
}

function detectorVerdicts(verdicts) {
  return Object.entries(verdicts || {}).map(([check, verdict]) => ({ check, ...verdict }));
}

// The checks' word on one histogram: each check's own verdict on it (ReferenceComparison's
// `histograms`); for the occupancy also the checks that judge the detector as a whole (dead
// and hot channels, missing sources, corrupt TFs: those without a verdict per histogram).
function histogramVerdict(verdicts, name, occupancy) {
  const found = [];
  for (const [check, verdict] of Object.entries(verdicts || {})) {
    if (verdict.histograms) {
      if (verdict.histograms[name]) found.push({ check, ...verdict.histograms[name] });
    } else if (occupancy) found.push({ check, ...verdict });
  }
  return worst(found, occupancy ? "no check has judged it yet" : "not compared with a reference");
}

function showVerdict(element, verdict) {
  element.className = `fastmon-histogram fastmon-q-${verdict.quality}`;
  showQuality(element.querySelector(".fastmon-quality"), verdict.quality);
  const reason = element.querySelector(".fastmon-histogram-reason");
  const more = verdict.all.length > 1 ? ` (and ${verdict.all.length - 1} more)` : "";
  reason.textContent = verdict.reason + more;
  reason.title = verdict.all.join("\n");
}

// A URL of the API with this query: a list as its parameter repeated, a value only when set
// (the window only when it is not the whole run's default).
function withQuery(url, query) {
  const made = new URL(url, document.baseURI);
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) for (const each of value) made.searchParams.append(key, each);
    else if (value) made.searchParams.set(key, value);
  }
  return made.href;
}

async function json(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return response.json();
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

// The heatmap, and where its hottest cell is (data-peak-source, data-peak-channel: from the
// bins). A pixel a channel, or the hottest of the channels that share one where there are more
// than the screen's pixels: a hot channel is never dropped by scaling.
function drawHeatmap(canvas, uhi) {
  const rows = uhi.storage.values; // [source][channel]
  const sources = rows.length;
  const channels = sources ? rows[0].length : 0;
  canvas.width = Math.min(channels, Math.floor(canvas.clientWidth * devicePixelRatio) || 1024) || 1;
  canvas.height = sources || 1;
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  const step = channels / canvas.width;
  let peak = 0;
  let hottest = [0, 0];
  rows.forEach((row, s) => row.forEach((v, c) => {
    if (v > peak) [peak, hottest] = [v, [s, c]];
  }));
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
  const source = uhi.axes[0].lower + hottest[0];
  Object.assign(canvas.dataset, { peak: String(peak), peakSource: String(source), peakChannel: String(hottest[1]) });
  const cell = peak ? `the hottest: source ${source} channel ${hottest[1]}, ${peak} hits` : "no hits";
  canvas.title = `occupancy: source (rows) x channel (columns); ${cell}`;
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

function drawDetector(panel, detector, summary, urls, view, shown) {
  const verdicts = (summary.quality || {})[detector];
  const verdict = worst(detectorVerdicts(verdicts));
  const badge = panel.querySelector("h3 .fastmon-quality"); // showQuality sets its classes
  showQuality(badge, verdict.quality);
  panel.className = `fastmon-detector fastmon-q-${verdict.quality}`;
  panel.querySelector(".fastmon-detector-reason").textContent = verdict.reason || "";
  const figures = summary.detectors[detector] || { hits: 0, tfs: 0 };
  const whole = view ? " (whole run)" : "";
  panel.querySelector(".fastmon-detector-hits").textContent = `${figures.hits} hits in ${figures.tfs} TFs${whole}`;
  for (const name of SHOWN) {
    const figure = panel.querySelector(`[data-histogram="${name}"]`);
    showVerdict(figure, histogramVerdict(verdicts, `${detector}/${name}`, name === "occupancy"));
    const url = urls[`${detector}/${name}`];
    const ours = shown.histograms[`${detector}/${name}`];
    if (!url || !ours) continue;
    figure.querySelector(".fastmon-download").href = withQuery(url, { window: view, format: "root" });
    const theirs = shown.references[`${detector}/${name}`];
    if (name === "occupancy") drawHeatmap(figure.querySelector("canvas"), ours);
    else drawSpectrum(figure.querySelector(`.fastmon-${name}`), name, bins(ours), theirs && bins(theirs));
  }
}

// What the panels show, fetched: the summary, then the histograms it lists in one request.
async function fetchShown(section, view) {
  const summary = await json(section.dataset.api);
  const detectors = Object.keys(summary.detectors).sort();
  const listed = new Set(summary.histograms.map((h) => h.name));
  const names = detectors.flatMap((d) => SHOWN.map((n) => `${d}/${n}`)).filter((n) => listed.has(n));
  const references = Object.entries(summary.references || {}).flatMap(([d, spectra]) =>
    Object.keys(spectra).filter((n) => n !== "occupancy" && SHOWN.includes(n)).map((n) => `${d}/${n}`));
  const shown = names.length
    ? await json(withQuery(summary.histograms_url, { name: names, reference: references, window: view }))
    : { histograms: {}, references: {} };
  return { summary, detectors, shown };
}

export function contentPanels(section) {
  const choice = document.getElementById("content-window"); // the whole run or the moving window
  const cycleText = document.getElementById("content-cycle");
  // One drawing at a time: an event during one asks for one more right after it (so a burst
  // of events is drawn at once, then once more). A failed fetch is tried again, later each time.
  let drawing = false;
  let again = false;
  let retry = null;
  let delay = 1000;
  const draw = async () => {
    clearTimeout(retry);
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
      delay = 1000;
    } catch (error) {
      section.dataset.stale = "true"; // what is drawn is an older cycle's
      cycleText.textContent = `${cycleText.dataset.drawn || ""} (not updated: ${error.message}; trying again)`;
      retry = setTimeout(draw, delay);
      delay = Math.min(2 * delay, 10000);
    } finally {
      drawing = false;
    }
  };
  const drawOnce = async () => {
    const view = choice.value === "last" ? "last" : null; // null: the whole run, the API's default
    const { summary, detectors, shown } = await fetchShown(section, view);
    section.dataset.cycle = String(summary.cycle);
    cycleText.dataset.drawn = summary.cycle
      ? `cycle ${summary.cycle}, ${summary.tfs_decoded} TFs decoded, ${summary.corrupt_tfs} corrupt`
      : "no content merged yet";
    cycleText.textContent = cycleText.dataset.drawn;
    const urls = Object.fromEntries(summary.histograms.map((h) => [h.name, h.url]));
    document.getElementById("content-root").href = withQuery(summary.root_url, { window: view });
    for (const d of detectors) drawDetector(panelFor(section, d), d, summary, urls, view, shown);
    delete section.dataset.stale;
    section.dataset.drawnCycle = String(summary.cycle); // every panel drawn for this cycle
  };
  choice.addEventListener("change", draw);
  draw();
  return draw;
}

// The dashboard's summary of a run's detectors: a tile each, in its worst quality.
export async function drawDetectorTiles(section, run) {
  const summary = run ? await json(section.dataset.api.replace("/0/", `/${run}/`)).catch(() => null) : null;
  section.replaceChildren();
  if (!summary) return;
  for (const detector of Object.keys(summary.detectors).sort()) {
    const verdict = worst(detectorVerdicts((summary.quality || {})[detector]));
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
