// The Versions page: the Target's versions, Compare, Tag and Restore over the JSON APIs.
// Everything from the data goes in as text (textContent), never as HTML.
(function () {
  "use strict";
  const api = PACHSTUDIO.api;
  const pageSize = 50;
  let page = 1;
  let shown = [];
  let compared = false; // once a person picked versions, reloads keep their choice

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  async function call(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = PACHSTUDIO.csrf;
      options.body = JSON.stringify(body);
    }
    const response = await fetch(api + path, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const detail = (data && (data.detail || data.message)) || `HTTP ${response.status}`;
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return data;
  }

  const short = (commit) => (commit ? commit.slice(0, 8) : "");
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "open");

  function versionLabel(v) {
    const tags = v.tags.length ? ` [${v.tags.join(", ")}]` : "";
    return `${short(v.commit)} · ${when(v.finished)}${tags}`;
  }

  function fillSelect(select, versions, extra) {
    const keep = select.value;
    select.replaceChildren();
    for (const [value, label] of extra || []) select.append(el("option", { value }, label));
    for (const v of versions) select.append(el("option", { value: v.commit }, versionLabel(v)));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  function row(v) {
    const tags = el("td", { class: "tags" }, ...v.tags.map((t) => el("span", { class: "tag" }, t)));
    const sources = el("td", { class: "sources" },
      ...v.source_commits.map((s) => el("div", { class: "commit" }, s)));
    const restoreButton = el("button", { class: "secondary restore-button", type: "button" }, "Restore");
    restoreButton.addEventListener("click", () => previewRestore(v));
    const first = el("td", {}, el("span", { class: "commit", title: v.commit }, short(v.commit)));
    if (v.restored_from) first.append(el("div", { class: "muted" }, `restored from ${short(v.restored_from)}`));
    const jobsButton = el("button", { class: "secondary jobs-button", type: "button" }, "Jobs");
    const jobs = el("td", { class: "jobs" }, jobsButton);
    jobsButton.addEventListener("click", () => showJobs(v, jobs));
    return el("tr", { "data-commit": v.commit, title: v.description },
      first, el("td", {}, when(v.finished)),
      el("td", { class: "num added" }, v.added), el("td", { class: "num changed" }, v.changed),
      el("td", { class: "num deleted" }, v.deleted),
      el("td", { class: "annotators" }, v.annotators.join(", ") || "none"),
      sources, tags, jobs, ...modelLoopCells(v), el("td", {}, restoreButton));
  }

  // The jobs a version started (the same answer as the Target card's Pipelines item), on demand:
  // one call per version asked, not one per row shown.
  async function showJobs(v, cell) {
    cell.replaceChildren(el("span", { class: "muted" }, "loading…"));
    try {
      const answer = await call("GET", `/jobs?commit=${v.commit}`);
      const lines = answer.state === "jobs" && answer.jobs.length
        ? answer.jobs.map((j) => `${j.pipeline}: ${j.state.replace("JOB_", "").toLowerCase()}` +
            (j.reason ? ` (${j.reason})` : "") +
            `, datums ${j.data_processed} processed, ${j.data_skipped} skipped, ${j.data_failed} failed` +
            (j.output_commit ? `, output ${j.output_commit}` : ""))
        : [answer.message];
      cell.replaceChildren(...lines.map((text) => el("div", { class: "job" }, text)));
    } catch (e) {
      cell.replaceChildren(el("span", { class: "error" }, e.message));
    }
  }

  async function load() {
    const summary = document.getElementById("summary");
    try {
      const data = await call("GET", `/versions?page=${page}&page_size=${pageSize}`);
      shown = data.versions;
      showModelLoop(data);
      document.querySelector("#versions-table tbody").replaceChildren(...shown.map(row));
      const pages = Math.max(1, Math.ceil(data.count / pageSize));
      document.getElementById("page-info").textContent = `page ${page} of ${pages}`;
      document.getElementById("prev-page").disabled = page <= 1;
      document.getElementById("next-page").disabled = page >= pages;
      const staged = data.staged
        ? `${data.staged} change(s) staged since the last Sync (Sync to make them a version)`
        : "nothing staged since the last Sync";
      summary.textContent = `${data.count} version(s); ${staged}.`;
      summary.className = "muted";
      fillSelect(document.getElementById("compare-from"), shown);
      fillSelect(document.getElementById("compare-to"), shown, [["staged", "staged (not synced yet)"]]);
      fillSelect(document.getElementById("tag-commit"), shown);
      const from = document.getElementById("compare-from");
      const to = document.getElementById("compare-to");
      if (!compared && from.options.length > 1) { from.selectedIndex = 1; to.selectedIndex = 1; }
    } catch (e) {
      summary.textContent = `Cannot list the versions: ${e.message}`;
      summary.className = "error";
    }
  }

  function taskList(tasks) {
    return el("ul", { class: "tasks" }, ...tasks.map((t) => {
      const changes = (t.annotations || []).map((a) => `annotation ${a.id} ${a.change} by ${a.by || "unknown"}`);
      return el("li", { class: `task ${t.change}`, "data-task": t.task_id },
        el("a", { href: t.task_url }, `task ${t.task_id}`), ` ${t.change}`,
        changes.length ? ` (${changes.join("; ")})` : "");
    }));
  }

  async function compare(event) {
    event.preventDefault();
    compared = true;
    const from = document.getElementById("compare-from").value;
    const to = document.getElementById("compare-to").value;
    const out = document.getElementById("diff-result");
    out.replaceChildren(el("p", { class: "muted" }, "Comparing…"));
    try {
      const diff = await call("GET", `/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      const c = diff.counts;
      const head = el("p", { id: "diff-counts" },
        `${short(diff.from)} → ${diff.to === "staged" ? "staged" : short(diff.to)}: `,
        el("span", { class: "gained" }, `${c.gained} gained`), ", ",
        el("span", { class: "changed" }, `${c.changed} changed`), ", ",
        el("span", { class: "lost" }, `${c.lost} lost`));
      out.replaceChildren(head, taskList(diff.tasks));
      showMetricChanges(diff.metrics);
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, `Cannot compare: ${e.message}`));
    }
  }

  async function tag(event) {
    event.preventDefault();
    const message = document.getElementById("tag-message");
    const name = document.getElementById("tag-name").value.trim();
    const commit = document.getElementById("tag-commit").value;
    try {
      const made = await call("POST", "/tags", { name, commit });
      message.textContent = `Tagged ${short(made.commit)} as ${made.name}`;
      message.className = "ok";
      await load();
    } catch (e) {
      message.textContent = e.message;
      message.className = "error";
    }
  }

  async function previewRestore(v) {
    const box = document.getElementById("restore-preview");
    document.getElementById("restore-message").replaceChildren();
    box.replaceChildren(el("p", { class: "muted" }, `Working out what restoring ${short(v.commit)} would change…`));
    box.scrollIntoView({ block: "nearest" });
    try {
      const preview = await call("POST", "/restore", { commit: v.commit, confirm: false });
      const c = preview.counts;
      const confirmButton = el("button", { id: "restore-confirm", type: "button" }, `Confirm restore of ${short(v.commit)}`);
      const cancel = el("button", { class: "secondary", type: "button" }, "Cancel");
      cancel.addEventListener("click", () => box.replaceChildren());
      confirmButton.addEventListener("click", () => restore(v, confirmButton));
      box.replaceChildren(
        el("p", { id: "restore-counts" }, `Restoring ${short(v.commit)} (${when(v.finished)}) would create ${c.create}, `
          + `update ${c.update} and delete ${c.delete} annotation(s). What is staged now is committed first.`),
        taskList(preview.tasks), el("p", {}, confirmButton, " ", cancel));
    } catch (e) {
      box.replaceChildren(el("p", { class: "error" }, `Cannot restore ${short(v.commit)}: ${e.message}`));
    }
  }

  async function restore(v, button) {
    button.disabled = true;
    const message = document.getElementById("restore-message");
    try {
      const done = await call("POST", "/restore", { commit: v.commit, confirm: true });
      const c = done.counts;
      const first = done.committed_first ? ` What was staged was committed first as ${short(done.committed_first)}.` : "";
      message.replaceChildren(el("p", { class: "ok" },
        `Restored ${short(done.restored_from)}: ${c.create} created, ${c.update} updated, ${c.delete} deleted.${first} `
        + "The change is staged: the next Sync makes it a version. ",
        el("a", { href: `/projects/${PACHSTUDIO.project}/data` }, "Open the Data Manager")));
      document.getElementById("restore-preview").replaceChildren();
      await load();
    } catch (e) {
      message.replaceChildren(el("p", { class: "error" }, `Restore refused: ${e.message}`));
      button.disabled = false;
    }
  }

  // -- model loop: metric columns, the jobs still running, health, Compare's metric changes and the
  // tag of a job's output. Kept apart from the page's layout code above.
  let metricColumns = [];
  let polling = null;
  const number = (x) => (Number.isInteger(x) ? String(x) : Number(x).toPrecision(4).replace(/\.?0+$/, ""));
  const pipelineName = (p) => p.replace(/^default\//, "");

  function showModelLoop(data) {
    metricColumns = data.metric_columns || [];
    const head = document.getElementById("versions-head");
    head.querySelectorAll(".metric-head").forEach((th) => th.remove());
    const anchor = head.querySelector(".health-head");
    for (const c of metricColumns) {
      anchor.before(el("th", { class: "metric-head", title: c.pipeline }, `${pipelineName(c.pipeline)} · ${c.key}`));
    }
    const running = data.versions.filter((v) => v.jobs && v.jobs.state === "running");
    const note = document.getElementById("jobs-note");
    const state = data.pipelines || { state: "none", message: "" };
    if (running.length) {
      note.textContent = `Jobs still running for ${running.length} version(s): their metrics appear when they end.`;
    } else if (state.state === "hidden" || state.state === "error") {
      note.textContent = state.message;
    } else {
      note.textContent = "";
    }
    note.className = state.state === "error" ? "error" : "muted";
    clearTimeout(polling);
    if (running.length) polling = setTimeout(load, 5000);
    fillJobTagForm(data.versions);
  }

  function modelLoopCells(v) {
    const cells = metricColumns.map((c) => {
      const value = ((v.metrics || {})[c.pipeline] || {})[c.key];
      return el("td", { class: "num metric", "data-pipeline": c.pipeline, "data-key": c.key },
        value === undefined ? "" : number(value));
    });
    const jobsCell = el("td", { class: "health" }, healthText(v.health));
    if (v.jobs && v.jobs.state === "running") {
      jobsCell.prepend(el("div", { class: "running muted" }, `jobs still running: ${v.jobs.running.map(pipelineName).join(", ")}`));
    }
    for (const bad of v.metrics_unreadable || []) {
      jobsCell.append(el("div", { class: "error unreadable" }, `unreadable ${bad.path}: ${bad.reason}`));
    }
    for (const out of (v.jobs && v.jobs.outputs) || []) {
      if (out.tags.length) jobsCell.append(el("div", { class: "output-tags" }, `${pipelineName(out.pipeline)} output: ${out.tags.join(", ")}`));
      if (out.state !== "JOB_SUCCESS") continue;
      const button = el("button", { class: "secondary job-tag-row", type: "button" }, `Tag ${pipelineName(out.pipeline)} output`);
      button.addEventListener("click", () => {
        document.getElementById("job-tag-version").value = v.commit;
        fillPipelines(v);
        document.getElementById("job-tag-pipeline").value = out.pipeline;
        document.getElementById("job-tag-name").focus();
      });
      jobsCell.append(el("div", {}, button));
    }
    return [...cells, jobsCell];
  }

  function healthText(h) {
    if (!h) return "";
    const classes = Object.entries(h.per_class).map(([k, n]) => `${k} ${n}`).join(", ") || "no class";
    const agreement = h.agreement === null ? "" :
      `; agreement ${Math.round(h.agreement * 100)}% (${h.disagreements} of ${h.multi_labeled} multi-labeled tasks disagree)`;
    return `${classes}; ${h.tasks_without_annotation} task(s) unlabeled; ${h.empty_results} empty result(s)${agreement}`;
  }

  function fillPipelines(v) {
    const select = document.getElementById("job-tag-pipeline");
    const outputs = ((v && v.jobs && v.jobs.outputs) || []).filter((o) => o.state === "JOB_SUCCESS");
    select.replaceChildren(...outputs.map((o) => el("option", { value: o.pipeline }, pipelineName(o.pipeline))));
  }

  function fillJobTagForm(versions) {
    const withOutputs = versions.filter((v) => ((v.jobs && v.jobs.outputs) || []).some((o) => o.state === "JOB_SUCCESS"));
    const select = document.getElementById("job-tag-version");
    fillSelect(select, withOutputs);
    fillPipelines(withOutputs.find((v) => v.commit === select.value));
    document.getElementById("job-tag-section").hidden = !withOutputs.length;
  }

  function showMetricChanges(metrics) {
    const box = document.getElementById("metric-changes");
    const rows = [];
    for (const [pipeline, keys] of Object.entries((metrics && metrics.metrics) || {})) {
      for (const [key, m] of Object.entries(keys)) {
        const change = m.change === null ? "" : `${m.change > 0 ? "+" : ""}${number(m.change)}`;
        rows.push(el("tr", { class: "metric-change", "data-pipeline": pipeline, "data-key": key },
          el("td", {}, `${pipelineName(pipeline)} · ${key}`),
          el("td", { class: "num" }, m.from === null ? "none" : number(m.from)),
          el("td", { class: "num" }, m.to === null ? "none" : number(m.to)),
          el("td", { class: `num ${m.change > 0 ? "gained" : m.change < 0 ? "lost" : ""}` }, change)));
      }
    }
    if (!rows.length) {
      box.replaceChildren(metrics && metrics.state !== "jobs" ? el("p", { class: "muted" }, metrics.message) : "");
      return;
    }
    const running = metrics.running.length ? el("p", { class: "muted" }, "jobs of a compared version are still running") : "";
    box.replaceChildren(el("table", { id: "metric-changes-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Metric"), el("th", {}, "From"), el("th", {}, "To"), el("th", {}, "Change"))),
      el("tbody", {}, ...rows)), running);
  }

  async function tagJobOutput(event) {
    event.preventDefault();
    const message = document.getElementById("job-tag-message");
    const body = {
      name: document.getElementById("job-tag-name").value.trim(),
      commit: document.getElementById("job-tag-version").value,
      pipeline: document.getElementById("job-tag-pipeline").value,
    };
    try {
      const made = await call("POST", "/job-tags", body);
      message.textContent = `Tagged ${made.repo}@${short(made.commit)} as ${made.name}`;
      message.className = "ok";
      await load();
    } catch (e) {
      message.textContent = e.message;
      message.className = "error";
    }
  }

  document.getElementById("job-tag-version").addEventListener("change", (e) =>
    fillPipelines(shown.find((v) => v.commit === e.target.value)));
  document.getElementById("job-tag-form").addEventListener("submit", tagJobOutput);

  document.getElementById("prev-page").addEventListener("click", () => { page -= 1; load(); });
  document.getElementById("next-page").addEventListener("click", () => { page += 1; load(); });
  document.getElementById("compare-form").addEventListener("submit", compare);
  document.getElementById("tag-form").addEventListener("submit", tag);
  load();
})();
