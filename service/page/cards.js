// The model cards in plain words (GET /v1/models), and what a student gives up and gains against its teacher.
import { bytes, compact, h, percent, times } from "./format.js";

function fact(term, value, wide = false) {
  return h("div", { class: wide ? "fact wide" : "fact" }, h("dt", { text: term }), h("dd", { text: value }));
}

function againstTeacher(model, byName) {
  const teacher = model.role === "student" ? byName.get(model.teacher) : undefined;
  if (!teacher) return null;
  const points = (model.test_accuracy - teacher.test_accuracy) * 100;
  const sign = points >= 0 ? "+" : "−";
  return h(
    "p",
    { class: "versus" },
    h("strong", { text: `${sign}${Math.abs(points).toFixed(1)} pts` }),
    ` accuracy, ${times(teacher.parameters / model.parameters)} fewer parameters and `,
    `${times(teacher.size_bytes / model.size_bytes)} smaller than ${teacher.name}`,
  );
}

function card(model, byName) {
  const quantized = model.quantization ? `INT8 (${model.quantization.method}) of ${model.quantization.fp32_model}` : null;
  return h(
    "article",
    { class: `card role-${model.role}`, "aria-label": `Model card: ${model.name}` },
    h("header", {}, h("h3", { text: model.name }), h("span", { class: `badge ${model.role}`, text: model.role })),
    againstTeacher(model, byName),
    h(
      "dl",
      {},
      fact("Test accuracy", `${percent(model.test_accuracy, 2)} at export`),
      fact("Parameters", `${compact(model.parameters)} (${model.parameters.toLocaleString("en-US")})`),
      fact("Size", bytes(model.size_bytes)),
      fact("Architecture", model.architecture_words),
      fact("Method", model.method_words, true),
      model.role === "student" && fact("Teacher", model.teacher),
      quantized && fact("Quantization", quantized),
      model.ensemble && fact("Members", model.ensemble.join(", "), true),
      fact("Version", `${model.version} (${model.platform}), input ${model.input.shape.join("×")}`, true),
    ),
  );
}

export function renderCards(container, overview) {
  const byName = new Map(overview.models.map((m) => [m.name, m]));
  const failed = Object.entries(overview.failed).map(([name, why]) =>
    h("p", { class: "card failed", role: "note" }, h("strong", { text: `${name} is not served: ` }), why),
  );
  const cards = overview.models.map((m) => card(m, byName));
  if (!cards.length && !failed.length) cards.push(h("p", { class: "muted", text: "No model is served yet." }));
  container.replaceChildren(h("h2", { id: "models-title", class: "visually-hidden", text: "The served models" }), ...cards, ...failed);
}
