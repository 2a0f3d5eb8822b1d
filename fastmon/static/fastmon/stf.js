// An STF's page: its samples drawn over it, its metadata pretty-printed (as text). When its
// samples arrive, the page redraws from the server.
import { connectLive, drawRanges } from "./live.js";

drawRanges();
const metadata = JSON.parse(document.getElementById("stf-metadata").textContent);
document.getElementById("stf-metadata-text").textContent = JSON.stringify(metadata, null, 2);
const name = document.querySelector("h1").textContent;
connectLive({
  kinds: ["tf_samples"],
  onEvents(events) {
    if (events.some((event) => event.payload.stf_filename === name)) location.reload();
  },
});
