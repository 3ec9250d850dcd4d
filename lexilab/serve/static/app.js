// The lexilab serve page: no build step, no dependencies. Reads GET /runs, posts to /predict,
// and draws each task's output per run side by side. User text only ever goes through
// textContent (never innerHTML).
"use strict";

const MAIN_METRICS = {
  multiclass: ["accuracy", "f1_macro"],
  multilabel: ["f1_micro", "f1_macro", "map"],
  seq2seq: ["rouge1", "rouge2", "rougeL"],
};
let RUNS = [];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const fmt = (x) => (typeof x === "number" ? x.toFixed(3) : String(x));

function bar(item, chosen, threshold) {
  const track = el("div", { class: "track" }, el("div", { class: "fill" }));
  track.firstChild.style.width = `${(100 * item.score).toFixed(1)}%`;
  if (threshold !== undefined && threshold !== null) {
    const mark = el("div", { class: "mark", title: `threshold ${fmt(threshold)}` });
    mark.style.left = `${(100 * threshold).toFixed(1)}%`;
    track.append(mark);
  }
  return el("div", { class: `bar${chosen ? " chosen" : ""}`, "data-label": item.label, "data-score": item.score },
    el("span", { class: "name", text: item.label, title: item.label }), track,
    el("span", { class: "value", text: fmt(item.score) }));
}

function renderOutput(kind, out) {
  const box = el("div", { class: "output" });
  if (kind === "seq2seq") {
    box.append(el("p", { class: "summary", text: out.summary || "(empty)" }));
  } else if (kind === "multiclass") {
    for (const item of out.top) box.append(bar(item, item.label === out.label));
  } else {
    const chips = el("div", { class: "chips" });
    for (const item of out.labels) {
      chips.append(el("span", { class: "chip", "data-label": item.label, title: "probability ≥ calibrated threshold" },
        `${item.label} ${fmt(item.score)} `, el("small", { text: `≥ ${fmt(item.threshold)}` })));
    }
    if (!out.labels.length) chips.append(el("span", { class: "none", text: "no label above its threshold" }));
    box.append(chips);
    const chosen = new Set(out.labels.map((x) => x.label));
    for (const item of out.top) box.append(bar(item, chosen.has(item.label), item.threshold));
    box.append(el("div", { class: "legend", text: "dashed line: the run's calibrated threshold for that label" }));
  }
  return box;
}

function metricsTable(run) {
  const wrap = el("div", {}, el("h4", { text: "Test metrics" }));
  const table = el("table");
  for (const [task, values] of Object.entries(run.test_metrics || {})) {
    const kind = (run.tasks[task] || {}).kind;
    for (const key of MAIN_METRICS[kind] || Object.keys(values).slice(0, 3)) {
      if (!(key in values)) continue;
      table.append(el("tr", { "data-task": task, "data-metric": key },
        el("td", { text: `${task}/${key}` }), el("td", { class: "num", text: fmt(values[key]) })));
    }
  }
  wrap.append(table.childElementCount ? table : el("p", { class: "none", text: "no test metrics recorded" }));
  return wrap;
}

function drawRuns() {
  // one column per run, one row per task (a task a run lacks leaves its cell marked), so the
  // same task of two arms or seeds sits side by side
  const results = document.getElementById("results");
  results.replaceChildren();
  results.style.gridTemplateColumns = `repeat(${RUNS.length}, minmax(240px, 1fr))`;
  const tasks = [];
  for (const run of RUNS) for (const task of Object.keys(run.tasks)) if (!tasks.includes(task)) tasks.push(task);
  for (const run of RUNS) {
    results.append(el("header", { class: "cell run", "data-run": run.name }, el("h3", { text: run.name }),
      el("div", { class: "who", text: `${run.experiment} · arm ${run.arm} · seed ${run.seed} · ${run.device}` })));
  }
  for (const task of tasks) {
    for (const run of RUNS) {
      const info = run.tasks[task];
      results.append(info
        ? el("section", { class: "cell task", "data-run": run.name, "data-task": task, "data-kind": info.kind },
          el("h4", { text: task }, el("span", { class: "kind", text: info.kind })),
          el("div", { class: "pending", text: "—" }))
        : el("section", { class: "cell absent" }, el("h4", { text: task }),
          el("div", { class: "none", text: "not a task of this run" })));
    }
  }
  for (const run of RUNS) {
    results.append(el("section", { class: "cell metrics", "data-run": run.name }, metricsTable(run)));
  }
}

function drawExamples() {
  const list = document.getElementById("examples");
  const seen = new Set();
  for (const run of RUNS) {
    for (const example of run.examples) {
      if (seen.has(example.text)) continue;
      seen.add(example.text);
      const reference = Array.isArray(example.reference) ? example.reference.join(", ") : example.reference;
      const button = el("button", { type: "button", class: "example", title: example.id },
        example.text.length > 140 ? `${example.text.slice(0, 140)}…` : example.text,
        el("span", { class: "ref", text: `${example.task} reference: ${reference}` }));
      button.addEventListener("click", () => { document.getElementById("text").value = example.text; });
      list.append(el("li", {}, button));
    }
  }
  if (!seen.size) list.append(el("li", { class: "none", text: "no test-split texts readable here" }));
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function predict(event) {
  event.preventDefault();
  const text = document.getElementById("text").value;
  const button = document.getElementById("submit");
  const labels = Math.max(1, ...RUNS.flatMap((r) => Object.values(r.tasks).map((t) => t.label_names.length)));
  button.disabled = true;
  showError("");
  try {
    const response = await fetch("/predict", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ texts: [text], top_k: Math.min(labels, 10) }),
    });
    const body = await response.json();
    if (!response.ok) { showError(body.detail || `HTTP ${response.status}`); return; }
    const outputs = body.results[0].runs;
    for (const run of RUNS) {
      for (const [task, info] of Object.entries(run.tasks)) {
        const card = document.querySelector(`section.task[data-run="${CSS.escape(run.name)}"][data-task="${CSS.escape(task)}"]`);
        card.replaceChildren(card.firstChild, renderOutput(info.kind, outputs[run.name][task]));
        card.setAttribute("data-done", "1");
      }
    }
  } catch (err) {
    showError(`request failed: ${err}`);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const status = document.getElementById("status");
  for (;;) {  // the weights may still be loading: /runs answers 503 until they are in memory
    const response = await fetch("/runs");
    if (response.ok) {
      const body = await response.json();
      RUNS = body.runs;
      document.getElementById("limits").textContent = `≤ ${body.limits.max_chars} characters`;
      break;
    }
    const health = await (await fetch("/health")).json();
    status.textContent = health.status;
    if (health.status === "error") { status.className = "status failed"; showError(health.error); return; }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  status.textContent = `ready · ${RUNS.length} run${RUNS.length === 1 ? "" : "s"}`;
  status.className = "status ready";
  drawRuns();
  drawExamples();
  document.getElementById("form").addEventListener("submit", predict);
}

start();
