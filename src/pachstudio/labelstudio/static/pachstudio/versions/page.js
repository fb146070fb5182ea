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
      sources, tags, jobs, el("td", {}, restoreButton));
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

  document.getElementById("prev-page").addEventListener("click", () => { page -= 1; load(); });
  document.getElementById("next-page").addEventListener("click", () => { page += 1; load(); });
  document.getElementById("compare-form").addEventListener("submit", compare);
  document.getElementById("tag-form").addEventListener("submit", tag);
  load();
})();
