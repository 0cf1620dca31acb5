// The page's start: the model cards (GET /v1/models, again until every model has loaded), the sample images,
// then the live panel. Nothing here changes the service's state.
import { describeError, getJson } from "./api.js";
import { renderCards } from "./cards.js";
import { LivePanel } from "./live.js";
import { TryPanel } from "./try.js";

const RETRY_MS = 1000;
const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `pill pill-${kind}`;
}

function showBanner(message) {
  const banner = $("banner");
  banner.textContent = message;
  banner.hidden = !message;
}

async function start() {
  const tryPanel = new TryPanel({
    results: $("results"),
    a: $("model-a"),
    b: $("model-b"),
    threshold: $("threshold"),
    thresholdValue: $("threshold-value"),
    files: $("files"),
    dropzone: $("dropzone"),
    samples: $("samples"),
    allSamples: $("all-samples"),
  });
  const live = new LivePanel($("live"), $("live-window"));
  tryPanel.loadSamples();
  for (;;) {
    try {
      const overview = await getJson("v1/models");
      renderCards($("models"), overview);
      tryPanel.setModels(overview);
      live.start(overview);
      if (overview.loaded) {
        const failed = Object.keys(overview.failed).length;
        setStatus(failed ? `ready, ${failed} model(s) failed` : "ready", failed ? "warn" : "ok");
        showBanner("");
        return;
      }
      setStatus(overview.loading.length ? `loading ${overview.loading.join(", ")}` : "loading models", "wait");
    } catch (err) {
      setStatus("unreachable", "bad");
      showBanner(describeError(err));
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

start();
