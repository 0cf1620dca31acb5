// Pick images (upload, drop or a sample), ask models A and B (POST /v1/compare?a=&b=) and the cascade
// (POST /v1/classify?route=cascade&threshold=), and show both answers side by side.
import { describeError, getBlob, getJson, imagesForm, postForm } from "./api.js";
import { h, millis, percent, times } from "./format.js";

const SLIDER_SETTLE_MS = 200; // ask the cascade again once the slider rests

function bars(prediction, truth) {
  return h(
    "ol",
    { class: "bars" },
    prediction.top.map((t) => {
      const fill = h("span", { class: "fill" });
      fill.style.width = `${(t.probability * 100).toFixed(1)}%`;
      const right = truth !== null && t.label === truth.label;
      return h(
        "li",
        { class: right ? "truth" : null },
        h("span", { class: "bar-label", text: t.label }),
        h("span", { class: "bar", "aria-hidden": "true" }, fill),
        h("span", { class: "bar-value", text: percent(t.probability) }),
      );
    }),
  );
}

function verdict(prediction, truth) {
  if (truth === null) return null;
  const right = prediction.label === truth.label;
  return h("span", { class: `mark ${right ? "right" : "wrong"}`, text: right ? "✓ right" : "✗ wrong" });
}

function side(result, index, truth, batch) {
  const prediction = result.predictions[index];
  return h(
    "div",
    { class: `side role-${result.role}`, "data-model": result.model },
    h(
      "h4",
      {},
      h("span", { class: "model-name", text: result.model }),
      h("span", { class: `badge ${result.role}`, text: result.role }),
    ),
    h("p", { class: "answer" }, h("strong", { class: "label", text: prediction.label }), " ", verdict(prediction, truth)),
    bars(prediction, truth),
    batch === 1 && h("p", { class: "compute muted small", text: `compute ${millis(result.compute_ms)}` }),
  );
}

function cascadeLine(cascade, index, threshold, pair) {
  if (!cascade) return null;
  if (cascade.error) return h("p", { class: "cascade error", text: `Cascade: ${cascade.error}` });
  const p = cascade.predictions[index];
  const who = p.answered_by === pair.student ? "the student answers" : "the student is unsure, the teacher answers";
  return h(
    "p",
    { class: `cascade by-${p.answered_by === pair.student ? "student" : "teacher"}` },
    h("span", { class: "muted", text: `Cascade at ${threshold.toFixed(2)}: ` }),
    `${who} (${p.answered_by}): `,
    h("strong", { text: p.label }),
    ` ${percent(p.probability)}`,
  );
}

function speed(compared) {
  const { a, b, speedup } = compared;
  if (!speedup) return "compute too short to compare";
  return speedup >= 1 ? `${a.model} ${times(speedup)} faster` : `${b.model} ${times(1 / speedup)} faster`;
}

function summary(compared, count) {
  const agreeing = compared.agree.filter(Boolean).length;
  return h(
    "p",
    { class: "run-summary" },
    h("span", { class: `chip ${agreeing === count ? "agree" : "disagree"}`, text: `agree on ${agreeing} of ${count}` }),
    h("span", { class: "chip", text: `${compared.a.model} ${millis(compared.a.compute_ms)}` }),
    h("span", { class: "chip", text: `${compared.b.model} ${millis(compared.b.compute_ms)}` }),
    h("span", { class: "chip speed", text: speed(compared) }),
  );
}

// Relative to the page, as every URL here: the page works behind a proxy that serves it under a path prefix.
function sampleUrl(sample) {
  return `v1/samples/${encodeURIComponent(sample.file)}`;
}

export class TryPanel {
  constructor(elements) {
    this.el = elements; // results, a, b, threshold, thresholdValue, files, dropzone, samples, allSamples
    this.pair = {};
    this.images = [];
    this.compared = null;
    this.cascade = null;
    this.run = 0; // answers to an older run are dropped
    this.settle = null;
    this.bind();
  }

  bind() {
    const { a, b, threshold, files, dropzone, allSamples } = this.el;
    a.addEventListener("change", () => this.ask());
    b.addEventListener("change", () => this.ask());
    threshold.addEventListener("input", () => {
      this.el.thresholdValue.textContent = this.threshold.toFixed(2);
      clearTimeout(this.settle);
      this.settle = setTimeout(() => this.askCascade(), SLIDER_SETTLE_MS);
    });
    files.addEventListener("change", () => this.useFiles(files.files));
    for (const type of ["dragenter", "dragover"]) {
      dropzone.addEventListener(type, (e) => (e.preventDefault(), dropzone.classList.add("over")));
    }
    dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
    dropzone.addEventListener("drop", (e) => {
      e.preventDefault();
      dropzone.classList.remove("over");
      this.useFiles(e.dataTransfer.files);
    });
    allSamples.addEventListener("click", () => this.useSamples(this.samples));
  }

  get threshold() {
    return Number(this.el.threshold.value);
  }

  setModels(overview) {
    this.pair = overview.pair;
    const names = overview.models.map((m) => m.name);
    for (const [select, wanted] of [[this.el.a, overview.pair.student], [this.el.b, overview.pair.teacher]]) {
      const roleOf = new Map(overview.models.map((m) => [m.name, m.role]));
      select.replaceChildren(...names.map((n) => h("option", { value: n, text: `${n} (${roleOf.get(n)})` })));
      select.value = names.includes(wanted) ? wanted : names[0] ?? "";
    }
    this.el.threshold.value = String(overview.cascade_threshold);
    this.el.thresholdValue.textContent = this.threshold.toFixed(2);
  }

  async loadSamples() {
    try {
      const listed = await getJson("v1/samples");
      this.samples = listed.samples;
      const buttons = listed.samples.map((s) =>
        h(
          "button",
          { type: "button", class: "sample", "aria-label": `Test image ${s.file}, true label ${s.label}`, onclick: () => this.useSamples([s]) },
          h("img", { src: sampleUrl(s), alt: "", width: 48, height: 48 }),
          h("span", { text: s.label }),
        ),
      );
      this.el.samples.replaceChildren(...(buttons.length ? buttons : [h("p", { class: "muted", text: listed.note })]));
      this.el.allSamples.disabled = !buttons.length;
    } catch (err) {
      this.el.samples.replaceChildren(h("p", { class: "error", text: describeError(err) }));
    }
  }

  useFiles(fileList) {
    const files = Array.from(fileList);
    if (!files.length) return;
    this.setImages(files.map((f) => ({ name: f.name, blob: f, truth: null })));
  }

  async useSamples(samples) {
    try {
      const blobs = await Promise.all(samples.map((s) => getBlob(sampleUrl(s))));
      const truth = (s) => ({ label: s.label, class_index: s.class_index });
      this.setImages(samples.map((s, i) => ({ name: s.file, blob: blobs[i], truth: truth(s) })));
    } catch (err) {
      this.showError(describeError(err));
    }
  }

  setImages(images) {
    for (const old of this.images) URL.revokeObjectURL(old.url);
    this.images = images.map((image) => ({ ...image, url: URL.createObjectURL(image.blob) }));
    this.ask();
  }

  async ask() {
    if (!this.images.length) return;
    const run = ++this.run;
    this.compared = null;
    this.cascade = null;
    this.el.results.setAttribute("aria-busy", "true");
    const query = new URLSearchParams({ a: this.el.a.value, b: this.el.b.value });
    const [compared] = await Promise.allSettled([
      postForm(`v1/compare?${query}`, imagesForm(this.images, true)),
      this.askCascade(run),
    ]);
    if (run !== this.run) return;
    this.compared = compared.status === "fulfilled" ? compared.value : { error: describeError(compared.reason) };
    this.render();
  }

  async askCascade(run = this.run) {
    if (!this.images.length) return;
    const query = new URLSearchParams({ route: "cascade", threshold: this.threshold.toFixed(2) });
    let cascade;
    try {
      cascade = await postForm(`v1/classify?${query}`, imagesForm(this.images, false));
    } catch (err) {
      cascade = { error: describeError(err) };
    }
    if (run !== this.run) return;
    this.cascade = { ...cascade, threshold: this.threshold };
    if (this.compared) this.render();
  }

  showError(message) {
    this.el.results.replaceChildren(h("p", { class: "error", role: "alert", text: message }));
    this.el.results.removeAttribute("aria-busy");
  }

  render() {
    if (this.compared.error) {
      this.showError(this.compared.error);
      return;
    }
    const { compared, cascade, images } = this;
    const cards = images.map((image, i) =>
      h(
        "article",
        { class: "result", "aria-label": `Answers for ${image.name}` },
        h(
          "figure",
          { class: "thumb" },
          h("img", { src: image.url, alt: `the image ${image.name}` }),
          h(
            "figcaption",
            {},
            h("span", { class: "file", text: image.name }),
            image.truth && h("span", { class: "true-label", text: `true: ${image.truth.label}` }),
          ),
        ),
        side(compared.a, i, image.truth, images.length),
        side(compared.b, i, image.truth, images.length),
        h(
          "div",
          { class: "row-verdict" },
          h("span", { class: `chip ${compared.agree[i] ? "agree" : "disagree"}`, text: compared.agree[i] ? "A and B agree" : "A and B disagree" }),
          cascadeLine(cascade, i, cascade?.threshold ?? this.threshold, this.pair),
        ),
      ),
    );
    this.el.results.replaceChildren(summary(compared, images.length), ...cards);
    this.el.results.removeAttribute("aria-busy");
    const top = this.el.results.getBoundingClientRect().top;
    if (top > window.innerHeight - 120) this.el.results.scrollIntoView({ block: "start" }); // answers below the fold
  }
}
