// The live panel: polls GET /v1/stats (cumulative counters, as /metrics) and shows what changed over the last
// WINDOW_S seconds, as Prometheus' rate() and histogram_quantile() would; idle figures fall back to all time.
import { describeError, getJson } from "./api.js";
import { h, percent, rate, seconds, svg, times } from "./format.js";

const POLL_MS = 2000;
const WINDOW_S = 30;
const HISTORY = 90; // chart points: three minutes

/** Prometheus' histogram_quantile: `buckets` are cumulative [[upper bound, count], ...] without +Inf. */
export function quantile(q, buckets, total) {
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank && cumulative > below) {
      return lower + ((bound - lower) * (rank - below)) / (cumulative - below);
    }
    lower = bound;
    below = cumulative;
  }
  return buckets.length ? buckets[buckets.length - 1][0] : null; // in the +Inf bucket: its lower bound
}

/** A counter's growth since `then` (0 when it did not exist then); one that went down restarted, from 0. */
function since(now, then = 0) {
  return now < then ? now : now - then;
}

function histogramSince(now, then) {
  if (!then || now.count < then.count) return now; // new since then, or restarted
  const base = new Map(then.buckets);
  return { count: now.count - then.count, buckets: now.buckets.map(([le, c]) => [le, c - (base.get(le) ?? 0)]) };
}

function computeFigures(now, then) {
  const windowed = histogramSince(now, then);
  const source = windowed.count > 0 ? windowed : now; // idle in the window: all time
  return {
    p50: quantile(0.5, source.buckets, source.count),
    p99: quantile(0.99, source.buckets, source.count),
    allTime: windowed.count === 0,
  };
}

function share(partNow, partThen, restNow, restThen) {
  const part = since(partNow, partThen);
  const whole = part + since(restNow, restThen);
  if (whole > 0) return { value: part / whole, rows: whole, allTime: false };
  const total = partNow + restNow;
  return { value: total > 0 ? partNow / total : null, rows: total, allTime: true };
}

/** Everything the panel shows, from the newest snapshot and the one WINDOW_S seconds before it (or null). */
export function figures(now, then, pair) {
  const dt = then ? now.time - then.time : null;
  const base = then ?? now; // no earlier snapshot: an empty window, so every figure is all time
  const models = {};
  for (const [name, m] of Object.entries(now.models)) {
    const old = base.models[name];
    models[name] = {
      role: m.role,
      rps: dt ? since(m.requests.success ?? 0, old?.requests.success ?? 0) / dt : null,
      compute: computeFigures(m.compute, old?.compute),
      accuracy: share(m.correct, old?.correct ?? 0, m.labeled - m.correct, (old?.labeled ?? 0) - (old?.correct ?? 0)),
    };
  }
  const answered = (snap) => Object.values(snap.endpoints).reduce((a, b) => a + b, 0);
  const student = models[pair.student]?.compute;
  const teacher = models[pair.teacher]?.compute;
  const agreement = now.agreement.map((entry) => {
    const old = base.agreement.find((o) => JSON.stringify(o.labels) === JSON.stringify(entry.labels));
    return { labels: entry.labels, ...share(entry.agree, old?.agree ?? 0, entry.disagree, old?.disagree ?? 0) };
  });
  const cascade = now.cascade;
  const oldCascade = base.cascade;
  return {
    rps: dt ? since(answered(now), answered(base)) / dt : null,
    models,
    speedup: student?.p50 && teacher?.p50 ? teacher.p50 / student.p50 : null,
    speedupAllTime: Boolean(student?.allTime || teacher?.allTime),
    agreement,
    fallback: share(cascade.teacher ?? 0, oldCascade.teacher ?? 0, cascade.student ?? 0, oldCascade.student ?? 0),
  };
}

function sparkline(values, label) {
  const points = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && Number.isFinite(v));
  const chart = svg("svg", { class: "spark", viewBox: "0 0 120 28", preserveAspectRatio: "none", role: "img", "aria-label": label });
  if (points.length < 2) return chart;
  const max = Math.max(...points.map(([, v]) => v)) || 1;
  const x = (i) => (i / Math.max(values.length - 1, 1)) * 120;
  const y = (v) => 26 - (v / max) * 24;
  const line = points.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  chart.append(svg("polyline", { points: line, fill: "none", "stroke-width": 1.6, "vector-effect": "non-scaling-stroke" }));
  return chart;
}

function plural(n, noun) {
  const rounded = Math.round(n);
  return `${rounded.toLocaleString("en-US")} ${noun}${rounded === 1 ? "" : "s"}`;
}

function note(allTime) {
  return allTime ? h("span", { class: "since", text: " (since start)" }) : null;
}

function tile(key, title, value, detail, chart) {
  return h(
    "div",
    { class: "tile", "data-figure": key },
    h("h3", { text: title }),
    h("p", { class: "value" }, value),
    detail && h("p", { class: "detail" }, detail),
    chart,
  );
}

export class LivePanel {
  constructor(container, windowLabel) {
    this.container = container;
    this.windowLabel = windowLabel;
    this.snapshots = [];
    this.series = new Map(); // chart key -> values, one per poll
    this.overview = { pair: {}, models: [] };
    this.timer = null;
  }

  start(overview) {
    this.overview = overview;
    if (this.timer === null) this.poll();
  }

  async poll() {
    if (document.hidden) {
      this.timer = setTimeout(() => this.poll(), POLL_MS); // nobody looking: no scrapes
      return;
    }
    try {
      const snap = await getJson("v1/stats");
      this.snapshots.push(snap);
      this.snapshots = this.snapshots.filter((s) => s.time >= snap.time - WINDOW_S - POLL_MS / 1000);
      const then = this.snapshots.find((s) => s !== snap && s.time >= snap.time - WINDOW_S) ?? null;
      this.render(figures(snap, then, this.overview.pair), then ? snap.time - then.time : 0);
    } catch (err) {
      this.container.replaceChildren(h("p", { class: "error", text: describeError(err) }));
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  record(key, value) {
    const values = this.series.get(key) ?? [];
    values.push(value);
    if (values.length > HISTORY) values.shift();
    this.series.set(key, values);
    return values;
  }

  render(f, windowS) {
    this.windowLabel.textContent = windowS ? `last ${Math.round(windowS)} s, every ${POLL_MS / 1000} s` : "measuring…";
    const { student, teacher } = this.overview.pair;
    const tiles = [
      tile("rps", "Requests/s", rate(f.rps), "answered, all endpoints", sparkline(this.record("rps", f.rps), "requests per second")),
      tile(
        "speedup",
        "Live speedup",
        [times(f.speedup), note(f.speedupAllTime)],
        student && teacher ? `p50 compute of ${teacher} over ${student}` : "needs a student and a teacher",
        sparkline(this.record("speedup", f.speedup), "speedup over time"),
      ),
      this.computeTile(f),
      ...this.agreementTiles(f),
      tile(
        "fallback",
        "Cascade fallback",
        [percent(f.fallback.value), note(f.fallback.allTime)],
        `of ${plural(f.fallback.rows, "cascade row")} went to the teacher`,
        sparkline(this.record("fallback", f.fallback.allTime ? null : f.fallback.value), "fallback rate"),
      ),
      this.accuracyTile(f),
    ];
    this.container.replaceChildren(...tiles);
  }

  orderedModels(f) {
    const { student, teacher } = this.overview.pair;
    const rank = (name) => (name === student ? 0 : name === teacher ? 1 : 2);
    return Object.keys(f.models).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  }

  computeTile(f) {
    const rows = this.orderedModels(f).map((name) => {
      const m = f.models[name];
      const values = this.record(`p50:${name}`, m.compute.allTime ? null : m.compute.p50);
      return h(
        "tr",
        { class: `role-${m.role}` },
        h("th", { scope: "row", text: name }),
        h("td", { "data-stat": "p50", text: seconds(m.compute.p50) }),
        h("td", { "data-stat": "p99", text: seconds(m.compute.p99) }),
        h("td", {}, sparkline(values, `p50 compute of ${name}`)),
      );
    });
    const head = h("tr", {}, h("th", { text: "model" }), h("th", { text: "p50" }), h("th", { text: "p99" }), h("th", { text: "p50 trend" }));
    const table = h("table", { class: "compute" }, h("thead", {}, head), h("tbody", {}, rows));
    const idle = Object.values(f.models).some((m) => m.compute.allTime);
    const detail = !rows.length ? "no model is served" : idle ? "a model idle in the window shows its figures since start" : null;
    return tile("compute", "Compute per model", rows.length ? table : "—", detail);
  }

  agreementTiles(f) {
    if (!f.agreement.length) return [tile("agreement", "Agreement", "—", "no student/teacher pair compared yet")];
    return f.agreement.map((entry) => {
      const { student, teacher, ...rest } = entry.labels;
      const source = Object.values(rest).join(", ");
      const key = `agreement:${JSON.stringify(entry.labels)}`;
      return tile(
        "agreement",
        source ? `Agreement (${source})` : "Agreement",
        [percent(entry.value), note(entry.allTime)],
        `${student} and ${teacher} on ${plural(entry.rows, "row")}`,
        sparkline(this.record(key, entry.allTime ? null : entry.value), "agreement over time"),
      );
    });
  }

  accuracyTile(f) {
    const exported = new Map(this.overview.models.map((m) => [m.name, m.test_accuracy]));
    const rows = this.orderedModels(f)
      .filter((name) => f.models[name].accuracy.rows > 0)
      .map((name) => {
        const a = f.models[name].accuracy;
        return h(
          "li",
          {},
          h("strong", { text: name }),
          ` ${percent(a.value)}`,
          note(a.allTime),
          h("span", { class: "muted", text: ` on ${plural(a.rows, "labelled row")}; ${percent(exported.get(name))} at export` }),
        );
      });
    return tile("accuracy", "Online accuracy", rows.length ? h("ul", { class: "plain" }, rows) : "—", rows.length ? null : "from requests that carry true labels (the sample images do)");
  }
}
