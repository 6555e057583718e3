// The modmatch page: ask, browse the module tree, see the model and the recent jobs.
// Plain DOM building with textContent only: nothing from the server is parsed as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

async function api(path, options, retried) {
  // A service that listens beyond loopback asks for a read token: ask once, keep it for this tab only.
  const opts = Object.assign({}, options);
  const token = sessionStorage.getItem("modmatch-token");
  if (token) opts.headers = Object.assign({}, opts.headers, { Authorization: "Bearer " + token });
  const resp = await fetch(path, opts);
  if (resp.status === 401 && !retried) {
    const given = window.prompt("This modmatch service needs a token to show its answers:");
    if (given) { sessionStorage.setItem("modmatch-token", given.trim()); return api(path, options, true); }
  }
  let body = null;
  try { body = await resp.json(); } catch (e) { body = { error: resp.statusText }; }
  if (!resp.ok) throw new Error(body && body.error ? body.error : "HTTP " + resp.status);
  return body;
}

function repo() { return $("#repo").value; }
function q(path) { return path + (path.includes("?") ? "&" : "?") + "repo=" + encodeURIComponent(repo()); }

async function loadRepos() {
  const data = await api("/api/repos");
  const sel = $("#repo");
  sel.replaceChildren(...data.repos.map((r) => el("option", { value: r.name }, r.name)));
  sel.value = data.default || (data.repos[0] && data.repos[0].name) || "";
  showVersions(data.repos.find((r) => r.name === sel.value));
}

function showVersions(r) {
  if (!r) return;
  $("#versions").textContent = r.indexed
    ? `graph ${r.graph_version} · commit ${(r.commit || "").slice(0, 10)} · model ${r.model_version || "none"}` +
      (r.status && r.status !== "ready" ? ` · matcher ${r.status}` : "") +
      (r.reloading ? " · updating the matcher for a new graph (answers come from the previous one)" : "") +
      (r.matcher_build && r.matcher_build.updates
        ? ` · matcher updated ${r.matcher_build.updates}× (${r.matcher_build.changes_learned_online} new changes) ` +
          `since its full build ${r.matcher_build.full_build_age_days} days ago` +
          (r.matcher_build.answers_before_learning
            ? `; ${Math.round(r.matcher_build.answers_before_learning.right * 100)}% of ` +
              `${r.matcher_build.answers_before_learning.n} new changes answered right before they were learned`
            : "")
        : "") +
      (r.operating_point && !r.operating_point.coverage
        ? ` · labels nothing by itself: no threshold reached ${Math.round(r.operating_point.precision_target * 100)}% ` +
          `precision on ${r.operating_point.held_out} held-out changes (set a label threshold to label anyway)`
        : "") +
      (r.operating_point && r.operating_point.coverage
        ? ` · labels at ≥ ${Math.round(r.operating_point.threshold * 100)}% confidence ` +
          `(precision ${Math.round(r.operating_point.precision * 100)}%` +
          (r.operating_point.precision_interval
            ? `, 95% interval ${Math.round(r.operating_point.precision_interval[0] * 100)}–` +
              `${Math.round(r.operating_point.precision_interval[1] * 100)}% over ${r.operating_point.labelled} labels`
            : "") +
          `, coverage ` +
          `${Math.round(r.operating_point.coverage * 100)}% on ${r.operating_point.held_out} held-out changes)` +
          ((r.operating_point.trade || []).length
            ? "; for more labels: " + r.operating_point.trade.map((t) =>
                `${Math.round(t.precision_target * 100)}% at ≥ ${Math.round(t.threshold * 100)}% ` +
                `(${Math.round(t.coverage * 100)}% labelled)`).join(", ")
            : "")
        : "")
    : "not indexed yet";
}

async function ask(event) {
  event.preventDefault();
  const status = $("#ask-status");
  const list = $("#results");
  status.textContent = "asking…";
  status.className = "dim";
  $("#notes").replaceChildren();
  try {
    const k = parseInt($("#k").value, 10) || 5;
    const data = await api("/api/match", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("#question").value, repo: repo(), k: k }),
    });
    list.replaceChildren(...data.matches.map((m) => {
      const pct = Math.round(m.confidence * 100);
      const where = (m.files || []).length ? [el("li", {}, "files: " + m.files.join(", "))] : [];
      const evidence = el("ul", { class: "evidence" }, ...where, ...m.evidence.slice(0, 4).map((e) => el("li", {}, e)));
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.max(2, pct) + "px";  // CSSOM, allowed by the page's CSP (no inline style)
      return el("li", { class: "result" },
        el("span", { class: "module" }, m.module), bar,
        el("span", { class: "dim" }, `${m.percent} confident`), evidence);
    }));
    if (!data.matches.length) list.replaceChildren(el("li", {}, "no module matched"));
    $("#notes").replaceChildren(...(data.notes || []).map((n) => el("li", { class: "note" }, n)));
    status.textContent = `${data.matcher} · graph ${data.graph_version} · ${data.seconds}s`;
  } catch (e) {
    status.textContent = e.message;
    status.className = "error";
  }
}

async function loadTree() {
  const box = $("#tree");
  try {
    const data = await api(q("/api/modules"));
    const byId = new Map(data.modules.map((m) => [m.id, m]));
    const roots = data.modules.filter((m) => !m.parent || !byId.has(m.parent));
    const render = (m) => {
      const kids = m.children.map((c) => byId.get(c)).filter(Boolean);
      const label = el("span", {}, el("span", { class: "module" }, m.id), " ",
        el("span", { class: "dim" }, `${m.files} files — ${(m.description || "").slice(0, 90)}`));
      if (!kids.length) return el("li", {}, label);
      const det = el("details", {}, el("summary", {}, label), el("ul", {}, ...kids.map(render)));
      if (!m.parent) det.open = true;
      return el("li", {}, det);
    };
    box.replaceChildren(el("ul", {}, ...roots.map(render)));
  } catch (e) {
    box.replaceChildren(el("span", { class: "error" }, e.message));
  }
}

async function loadModel() {
  const box = $("#model");
  const plots = $("#plots");
  try {
    const data = await api(q("/api/model"));
    if (!data.model) {
      box.replaceChildren(el("p", {}, "No model yet: answers come from the ",
        el("b", {}, data.matcher === "auto" ? "hybrid" : data.matcher), " retrieval matcher."));
    } else {
      const m = data.model;
      const rows = [["run", m.run], ["published", m.published_at], ["base model", m.base_model],
        ["graph version", m.graph_version]];
      for (const [k, v] of Object.entries(m.metrics || {})) {
        rows.push([k, typeof v === "number" ? Math.round(v * 1000) / 1000 : JSON.stringify(v)]);
      }
      box.replaceChildren(el("table", {}, el("tbody", {}, ...rows.filter((r) => r[1] != null)
        .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))));
    }
    plots.replaceChildren(...data.plots.map((p) => el("img", {
      src: q("/api/model/plots/" + encodeURIComponent(p)), alt: p, title: p })));
  } catch (e) {
    box.replaceChildren(el("span", { class: "error" }, e.message));
  }
}

function when(iso) { return iso ? iso.replace("T", " ").replace("+00:00", "Z") : ""; }
function brief(o) {
  if (!o || typeof o !== "object") return o || "";
  if (o.error) return "error: " + o.error;
  const parts = [];
  for (const k of ["modules", "version", "parsed", "changed_modules", "model_version", "published", "note", "returncode"]) {
    if (o[k] != null) parts.push(`${k}=${Array.isArray(o[k]) ? o[k].length : o[k]}`);
  }
  return parts.join(" ");
}

async function loadActivity() {
  try {
    const jobs = await api(q("/api/jobs?limit=30"));
    $("#jobs tbody").replaceChildren(...jobs.pending.map((p) =>
      el("tr", {}, el("td", {}, ""), el("td", {}, p.id), el("td", {}, ""), el("td", { class: "state-running" }, "pending"),
        el("td", {}, when(p.next_run)), el("td", {}, ""), el("td", {}, ""))),
    ...jobs.jobs.map((j) => el("tr", {}, el("td", {}, j.id), el("td", {}, j.job_id),
      el("td", {}, j.reason + (j.triggers > 1 ? ` (+${j.triggers - 1})` : "")),
      el("td", { class: "state-" + j.state }, j.state), el("td", {}, when(j.queued_at)),
      el("td", {}, j.duration == null ? "" : j.duration + "s"), el("td", { class: "outcome" }, brief(j.outcome)))));
    const runs = await api(q("/api/runs"));
    $("#runs tbody").replaceChildren(...runs.runs.map((r) => el("tr", {}, el("td", {}, r.id), el("td", {}, r.kind),
      el("td", {}, r.started_at), el("td", {}, r.finished_at || ""),
      el("td", { class: "state-" + r.status }, r.status), el("td", { class: "outcome" }, brief(r.detail)))));
  } catch (e) {
    $("#jobs tbody").replaceChildren(el("tr", {}, el("td", { class: "error", colspan: "7" }, e.message)));
  }
}

async function loadAll() {
  await Promise.all([loadTree(), loadModel(), loadActivity()]);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#ask-form").addEventListener("submit", ask);
  $("#repo").addEventListener("change", async () => {
    const data = await api("/api/repos");
    showVersions(data.repos.find((r) => r.name === repo()));
    $("#results").replaceChildren();
    loadAll();
  });
  try { await loadRepos(); } catch (e) { $("#versions").textContent = e.message; }
  await loadAll();
  setInterval(loadActivity, 15000);
});
