// The live pages' connection. The page's HTML reflects events up to the sequence number in
// the nav bar; the websocket replays anything after it, then pushes live events. Reconnects
// resume from the last sequence seen, so a page that blinks misses nothing.

const nav = document.querySelector("[data-websocket-path]");
const status = document.getElementById("fastmon-live-status");
const notice = document.getElementById("fastmon-live-notice");

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
}

export function connectLive({ run = null, kinds = [], onEvents }) {
  const live = { since: Number(nav.dataset.newestSequence), socket: null, reconnects: 0 };
  let delay = 250;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ since: String(live.since) });
    if (run !== null) params.set("run", String(run));
    if (kinds.length) params.set("kinds", kinds.join(","));
    const socket = new WebSocket(`${scheme}//${location.host}${nav.dataset.websocketPath}?${params}`);
    live.socket = socket;
    socket.onopen = () => {
      status.textContent = "catching up…";
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "events") {
        const fresh = frame.events.filter((event) => event.sequence > live.since);
        if (fresh.length) {
          live.since = fresh[fresh.length - 1].sequence;
          onEvents(fresh);
        }
      } else if (frame.type === "live") {
        delay = 250; // caught up: the next reconnect is quick again (not after a 1011 at once)
        status.dataset.state = "live";
        status.textContent = "live";
      } else if (frame.type === "status") {
        showNotice(`${frame.overflowed} events came faster than this page took them; ` +
          `${frame.read_back} were re-read from the database`);
      } else if (frame.type === "skipped") {
        showNotice(`too much missed to replay (events ${frame.after + 1}–${frame.upto}): reload the page`);
      }
      status.dataset.sequence = String(live.since);
    };
    socket.onclose = (event) => {
      status.dataset.state = "disconnected";
      if (event.code === 4400) {
        status.textContent = "refused: bad query";
        return;
      }
      if (event.code === 4403) {
        status.textContent = "login needed";
        return;
      }
      status.textContent = "reconnecting…";
      live.reconnects += 1;
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  window.fastmonLive = live;
  return live;
}

// TF samples drawn as ranges over their STF (an SVG 100 units wide).
export function drawRanges(root = document) {
  for (const rect of root.querySelectorAll("rect.fastmon-ranges-tf")) {
    const count = Number(rect.dataset.tfCount) || 1000;
    const first = Number(rect.dataset.tfFirst);
    const last = Number(rect.dataset.tfLast);
    rect.setAttribute("x", String((100 * first) / count));
    rect.setAttribute("width", String(Math.max(0.3, (100 * (last - first + 1)) / count)));
  }
}

export function addRange(svg, sample, tfCount) {
  const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  rect.setAttribute("class", "fastmon-ranges-tf");
  rect.setAttribute("y", "0");
  rect.setAttribute("height", "6");
  rect.dataset.tfFirst = String(sample.tf_first);
  rect.dataset.tfLast = String(sample.tf_last);
  rect.dataset.tfCount = String(tfCount || 1000);
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = `${sample.tf_filename}: TFs ${sample.tf_first}–${sample.tf_last}`;
  rect.appendChild(title);
  svg.appendChild(rect);
}

// A link made from a reversed URL in a <template> (so it honours the script prefix).
export function link(templateId, placeholder, value, text) {
  const anchor = document.getElementById(templateId).content.firstElementChild.cloneNode();
  anchor.href = anchor.getAttribute("href").replace(`/${placeholder}/`, `/${encodeURIComponent(value)}/`);
  anchor.textContent = text;
  return anchor;
}

export function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content ?? "";
  return td;
}

// The unit a size calls for (base 1024, as the tables write sizes): its name and its bytes.
export function byteUnit(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (bytes >= 1024 ** (unit + 1) && unit < units.length - 1) unit += 1;
  return { name: units[unit], size: 1024 ** unit };
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const unit = byteUnit(bytes);
  return unit.size > 1 ? `${(bytes / unit.size).toFixed(1)} ${unit.name}` : `${bytes} bytes`;
}

// fn(...args) at most once per `ms`: the last call's arguments win. For figures the database
// computes, asked of the API again when events say they moved.
export function throttled(fn, ms = 1000) {
  let timer = null;
  let latest = [];
  return (...args) => {
    latest = args;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn(...latest);
    }, ms);
  };
}

// A quality as the pages show it: null is "unknown" (ALICE's Unknown).
export function showQuality(element, quality) {
  element.textContent = quality === "null" ? "unknown" : quality;
  element.className = `fastmon-quality fastmon-q-${quality}`;
}
