// The Versions page: a Target's versions newest first (50 a page), Compare, Tag, Restore and the jobs
// of a version, over the JSON APIs; built with ls_pages.js (Label Studio's own classes).
// The table fits the window: fixed column widths where the content has a known size, the rest shared,
// a long value ends in "…" with all of it on hover. Model metrics (a version's `metrics`:
// {pipeline: {key: number}}) get a compact column; up to MAX_PINNED of them a column each (the
// API's first `metric_columns` until a person chooses). A version whose jobs still run says so, and
// the page reloads until they end; Compare shows each metric's change; a row's menu tags a job's
// output commit (`/job-tags`).
//
// Label Studio's app draws the page's content itself (and may draw it again, fresh, when it
// re-renders), so this script is loaded in the page's head and starts on each new copy it sees.
(function () {
  "use strict";
  if (window.PachstudioVersionsPage) return;
  const P = window.Pachstudio;
  const { el, button, linkButton, badge, userpic, commitId, commitRef, time, api, state, modal, short } = P;
  const readConfig = () => JSON.parse(document.getElementById("pachstudio-versions-config").textContent);

  function watch() {
    const root = document.getElementById("pachstudio-versions");
    if (root && !root.dataset.started) {
      root.dataset.started = "1";
      start(root, readConfig());
    }
    const header = document.getElementById("pachstudio-header-actions");
    if (header && !header.childElementCount && document.getElementById("pachstudio-versions-config")) {
      const config = readConfig();
      header.append(linkButton("Data Manager", config.data_manager, { id: "data-manager-link" }),
        linkButton("Cloud Storage", config.storage_settings, { id: "storage-link" }));
    }
  }
  window.PachstudioVersionsPage = { watch };
  new MutationObserver(watch).observe(document.documentElement, { childList: true, subtree: true });
  watch();

  // One copy of the page: its own state, its own elements
  function start(root, config) {
    const base = config.api;
    const pageSize = 50;
    const MAX_PINNED = 3;
    const pinnedKey = `pachstudio:metric-columns:${config.storage}`;
    let page = 1;
    let count = 0;
    let shown = [];
    let compared = false; // once a person picked versions, reloads keep their choice
    const openJobs = new Set(); // commits whose jobs are shown
    let pinned = [];
    let chosen = false; // a person picked the metric columns (else the API's first ones are shown)
    try {
      const stored = localStorage.getItem(pinnedKey);
      chosen = stored !== null;
      pinned = JSON.parse(stored || "[]").slice(0, MAX_PINNED);
    } catch (e) {
      pinned = [];
    }
    let reload = null; // the timer that reloads while jobs run

    const find = (id) => root.querySelector(`#${id}`);
    const table = find("versions-table");
    const box = find("versions-box");
    const toolbar = find("compare-form");
    const pager = find("pager");
    const summary = find("summary");
    const stateBox = find("versions-state");
    const jobsNote = find("jobs-note");

    // --- cells ----------------------------------------------------------------------------------------
    const when = (v) => (v.finished ? P.ago(v.finished) : "open");
    const label = (v) => [short(v.commit), when(v), ...v.tags].join(" · ");

    // The short id; under it the version's tags (the first, and how many more: all on hover) and
    // where a restore came from, or that no Sync made it
    function versionCell(v) {
      const notes = [];
      if (v.tags.length) {
        notes.push(el("span", { class: "tags ps-tags", title: v.tags.join("\n") },
          badge(el("span", { class: "ps-ellipsis" }, v.tags[0]), "grape"),
          v.tags.length > 1 ? badge(`+${v.tags.length - 1}`, "sand") : null));
      }
      const tagged = outputsOf(v).filter((o) => o.tags.length);
      if (tagged.length) {
        const names = tagged.flatMap((o) => o.tags.map((t) => `${pipelineName(o.pipeline)}: ${t}`));
        notes.push(el("span", { class: "output-tags ps-tags", title: tagged.map((o) =>
          `${o.pipeline}'s output ${short(o.output_commit)} is tagged ${o.tags.join(", ")}`).join("\n") },
        badge(el("span", { class: "ps-ellipsis" }, names[0]), "kale"),
        names.length > 1 ? badge(`+${names.length - 1}`, "sand") : null));
      }
      if (v.restored_from) {
        notes.push(el("span", { class: "ps-ellipsis", title: `restored from ${v.restored_from}` },
          `restored from ${short(v.restored_from)}`));
      } else if (!v.description) {
        notes.push(el("span", { class: "ps-ellipsis", title: "a commit made outside Label Studio: no Sync wrote it" },
          "not a Sync"));
      }
      return [commitId(v.commit), notes.length ? el("span", { class: "ps-sub" }, ...notes) : null];
    }

    function count3(kind, cls, sign, n) {
      return el("span", { class: n ? `ps-${kind}` : "ps-zero", title: `${n} ${cls}` }, sign,
        el("span", { class: cls }, n));
    }

    function changesCell(v) {
      return el("span", { class: "ps-counts" }, count3("add", "added", "+", v.added),
        count3("change", "changed", "~", v.changed), count3("del", "deleted", "−", v.deleted));
    }

    function annotatorsCell(v) {
      if (!v.annotators.length) return el("span", { class: "annotators ps-muted" }, "none");
      return el("span", { class: "annotators ps-people", title: v.annotators.join("\n") },
        userpic(v.annotators[0]), el("span", {}, v.annotators.join(", ")));
    }

    function sourcesCell(v) {
      const sources = v.source_commits;
      if (!sources.length) return el("span", { class: "sources ps-muted" }, "none");
      return el("span", { class: "sources ps-people", title: sources.join("\n") }, commitRef(sources[0]),
        sources.length > 1 ? badge(`+${sources.length - 1}`, "sand", { title: sources.slice(1).join("\n") }) : null);
    }

    // --- model metrics and health (present when the API gives them) -----------------------------------
    const metricId = (pipeline, key) => `${pipeline}\u0000${key}`;
    const metricName = (id) => id.split("\u0000");
    function formatValue(value) {
      if (typeof value === "number") {
        return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(3)));
      }
      if (value === null || value === undefined) return "–";
      return typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    function metricsOf(v) {
      return v.metrics && typeof v.metrics === "object" ? v.metrics : {};
    }
    const pipelineName = (p) => p.replace(/^default\//, "");
    const outputsOf = (v) => (v.jobs && v.jobs.outputs) || [];
    const runningOf = (v) => (v.jobs && v.jobs.state === "running" && v.jobs.running) || [];
    const unreadableOf = (v) => v.metrics_unreadable || [];
    // what the Metrics cell says besides numbers: jobs still running, a metrics.json it cannot read
    const jobNotes = (v) => [
      ...runningOf(v).map((p) => ({ line: `${p}: job still running`, part: `${pipelineName(p)} running` })),
      ...unreadableOf(v).map((u) => ({ line: `${u.pipeline}: unreadable ${u.path}: ${u.reason}`,
        part: `${pipelineName(u.pipeline)}: unreadable metrics.json` })),
    ];
    // The chosen metric columns this page's versions have (a choice outlives pages without metrics)
    const shownPins = (metrics) => pinned.filter((id) => metrics.includes(id));
    function allMetrics(versions) {
      const seen = new Map();
      for (const v of versions) {
        for (const [pipeline, values] of Object.entries(metricsOf(v))) {
          if (!values || typeof values !== "object") continue;
          for (const key of Object.keys(values)) seen.set(metricId(pipeline, key), true);
        }
      }
      return [...seen.keys()];
    }
    function metricCell(v, id) {
      const [pipeline, key] = metricName(id);
      const value = (metricsOf(v)[pipeline] || {})[key];
      if (value === undefined && runningOf(v).includes(pipeline)) {
        return el("span", { class: "metric ps-muted", "data-metric": id, title: `${pipeline}: job still running` },
          "running");
      }
      return el("span", { class: "metric", "data-metric": id, title: `${pipeline}: ${key} = ${formatValue(value)}` },
        formatValue(value));
    }
    // One line of "key value" pairs ending in "…" where the cell ends; all of them on hover
    function metricsCell(v) {
      const lines = [];
      const parts = [];
      const pipelines = Object.entries(metricsOf(v));
      const keys = pipelines.flatMap(([, values]) => Object.keys(values));
      const shared = new Set(keys.filter((k, i) => keys.indexOf(k) !== i)); // named by pipeline only when ambiguous
      for (const [pipeline, values] of pipelines) {
        for (const [key, value] of Object.entries(values)) {
          lines.push(`${pipeline}: ${key} = ${formatValue(value)}`);
          if (pinned.includes(metricId(pipeline, key))) continue;
          parts.push(`${shared.has(key) ? `${pipeline.split("/").pop()}.${key}` : key} ${formatValue(value)}`);
        }
      }
      for (const note of jobNotes(v)) {
        lines.push(note.line);
        parts.push(note.part);
      }
      if (!lines.length) return el("span", { class: "metrics ps-muted" }, "none");
      return el("span", { class: "metrics ps-line", title: lines.join("\n") }, parts.join(" · "));
    }
    // A version's health (worked out at its Sync): annotations per class, tasks with no annotation,
    // empty results, and the agreement of tasks labeled by more than one person
    function healthCell(v) {
      const h = v.health;
      if (!h) return el("span", { class: "health ps-muted", title: "a version no Sync of this Target made" }, "–");
      const classes = Object.entries(h.per_class || {});
      const agreement = h.agreement === null ? null : `${Number((h.agreement * 100).toPrecision(3))}%`;
      const parts = [
        ...(classes.length ? classes.map(([k, n]) => `${k} ${n}`) : ["no class"]),
        `${h.tasks_without_annotation} unlabeled`, `${h.empty_results} empty`,
        agreement && `agreement ${agreement} (${h.disagreements} of ${h.multi_labeled} disagree)`,
      ];
      const lines = [
        `annotations: ${h.annotations}` + (h.skipped ? ` (${h.skipped} skipped not counted)` : ""),
        `per class: ${classes.map(([k, n]) => `${k} ${n}`).join(", ") || "none"}`,
        `tasks without annotation: ${h.tasks_without_annotation}`,
        `annotations with an empty result: ${h.empty_results}`,
        `tasks labeled by more than one person: ${h.multi_labeled}, of which disagreeing: ${h.disagreements}`,
        `agreement: ${agreement || "none (no task labeled by more than one person)"}`,
      ];
      return el("span", { class: "health ps-line", title: lines.join("\n") }, parts.filter(Boolean).join(" · "));
    }

    // --- jobs of a version: one line per job, asked on demand (one call per version asked, not per row)
    const STATES = {
      JOB_SUCCESS: "kale", JOB_FAILURE: "persimmon", JOB_KILLED: "persimmon", JOB_UNRUNNABLE: "persimmon",
    };
    function jobLine(j) {
      const name = j.state.replace("JOB_", "").toLowerCase();
      const datums = `${j.data_processed} processed · ${j.data_skipped} skipped · ${j.data_failed} failed` +
        (j.data_total ? ` of ${j.data_total}` : "");
      return el("div", { class: "ps-job job", "data-pipeline": j.pipeline },
        badge(name, STATES[j.state] || "canteloupe", { cls: "job-state", title: j.state }),
        el("span", { class: "ps-job-name", title: j.pipeline }, j.pipeline),
        el("span", { class: "job-datums", title: "datums" }, datums),
        j.output_commit ? el("span", { class: "job-output" }, el("span", { class: "ps-muted" }, "output "),
          commitRef(j.output_commit)) : null,
        j.reason ? el("span", { class: "ps-job-reason", title: j.reason }, j.reason) : null);
    }

    async function fillJobs(v, cell) {
      cell.replaceChildren(el("div", { class: "ps-job ps-muted" }, P.spinner(16),
        "Asking the cluster for the jobs…"));
      try {
        const answer = await api("GET", `${base}/jobs?commit=${v.commit}`);
        if (answer.state === "hidden") {
          cell.replaceChildren(state("warning", "Your Pachyderm token may not see the pipelines",
            `The cluster answered: ${answer.message.replace(/\.+$/, "")}.`,
            "Labels and versions still work. To see the jobs here, ask your Pachyderm admin to let this token " +
            "read the pipelines' repos (repoReader)."));
        } else if (answer.jobs && answer.jobs.length) {
          cell.replaceChildren(el("div", { class: "ps-jobs" }, ...answer.jobs.map(jobLine)));
        } else {
          cell.replaceChildren(el("div", { class: "ps-job ps-muted" }, answer.message || "no jobs"));
        }
      } catch (e) {
        cell.replaceChildren(el("div", { class: "ps-job ps-job-reason", role: "alert" },
          `Cannot list the jobs: ${e.message}`));
      }
    }

    function toggleJobs(v) {
      if (openJobs.has(v.commit)) openJobs.delete(v.commit);
      else openJobs.add(v.commit);
      render();
    }

    // --- the table ----------------------------------------------------------------------------------
    function columns(versions) {
      const metrics = allMetrics(versions);
      const pins = shownPins(metrics);
      const cols = [
        { title: "Version", hint: "its commit, its tags", width: 124, cell: versionCell },
        { title: "Synced", width: 112, cell: (v) => time(v.finished, { empty: "open" }) },
        { title: "Changes", hint: "annotations added, changed and deleted", width: 118, cell: changesCell },
        { title: "Annotators", cell: annotatorsCell },
        { title: "Source commits", cell: sourcesCell },
      ];
      for (const id of pins) {
        const [pipeline, key] = metricName(id);
        cols.push({ title: key, hint: `${pipeline}: ${key}`, width: 84, cls: "ps-num",
          cell: (v) => metricCell(v, id) });
      }
      if (metrics.length > pins.length || versions.some((v) => jobNotes(v).length)) {
        cols.push({ title: "Metrics", hint: "model metrics of the jobs this version started", cell: metricsCell });
      }
      if (versions.some((v) => v.health !== undefined && v.health !== null)) {
        cols.push({ title: "Health", hint: "what the labels of this version look like", cell: healthCell });
      }
      cols.push({ title: "Jobs", width: 68, cls: "jobs", cell: (v) => button(openJobs.has(v.commit) ? "Hide" : "Show",
        { size: "smaller", cls: "jobs-button", title: "The pipeline jobs this version started",
          onClick: () => toggleJobs(v) }) });
      cols.push({ title: "", width: 44, cls: "ps-menu-cell", cell: (v) => P.menuButton(`Actions for ${short(v.commit)}`,
        () => rowMenu(v), { cls: "row-menu" }) });
      return cols;
    }

    function rowMenu(v) {
      const at = shown.indexOf(v);
      const older = shown[at + 1];
      return [
        older && { label: `Compare with the version before (${short(older.commit)})`,
          onClick: () => compare(older.commit, v.commit) },
        { label: "Compare with what is staged", onClick: () => compare(v.commit, "staged") },
        { label: "Tag this version…", cls: "tag-menu-item", onClick: () => tagDialog(v) },
        ...succeeded(v).map((o) => ({ label: `Tag ${pipelineName(o.pipeline)}'s output…`, cls: "job-tag-menu-item",
          onClick: () => jobTagDialog(v, o.pipeline) })),
        { label: openJobs.has(v.commit) ? "Hide jobs" : "Show jobs", onClick: () => toggleJobs(v) },
        { label: "Copy commit id", onClick: () => P.copy(v.commit) },
        { label: "Restore this version…", cls: "restore-button", onClick: () => previewRestore(v) },
      ];
    }

    function render() {
      const cols = columns(shown);
      table.querySelector("colgroup").replaceChildren(...cols.map((c) =>
        el("col", { style: c.width ? `width:${c.width}px` : "" })));
      table.querySelector("thead tr").replaceChildren(...cols.map((c) =>
        el("th", { class: c.cls, title: c.hint || c.title }, c.title)));
      const rows = [];
      shown.forEach((v, i) => {
        rows.push(el("tr", { class: "ps-row", "data-commit": v.commit, title: v.description || undefined },
          ...cols.map((c) => el("td", { class: c.cls }, c.cell(v, i)))));
        if (openJobs.has(v.commit)) {
          const cell = el("td", { colSpan: cols.length, class: "jobs-detail" });
          rows.push(el("tr", { class: "ps-detail", "data-jobs-for": v.commit }, cell));
          fillJobs(v, cell);
        }
      });
      table.querySelector("tbody").replaceChildren(...rows);
      metricsButton(allMetrics(shown));
    }

    function metricsButton(metrics) {
      const slot = find("metrics-button-slot");
      if (!metrics.length) return slot.replaceChildren();
      const trigger = button(`Metric columns (${shownPins(metrics).length}/${MAX_PINNED})`, { id: "metric-columns" });
      P.attachMenu(trigger, () => metrics.map((id) => {
        const [pipeline, key] = metricName(id);
        const on = pinned.includes(id);
        return { label: `${on ? "✓ " : ""}${pipeline}: ${key}`, cls: "metric-choice", onClick: () => {
          const others = shownPins(metrics).filter((p) => p !== id);
          pinned = on ? others : [...others, id].slice(-MAX_PINNED);
          localStorage.setItem(pinnedKey, JSON.stringify(pinned));
          render();
        } };
      }));
      slot.replaceChildren(trigger);
    }

    function fillSelect(select, versions, extra) {
      const keep = select.value;
      select.replaceChildren(...(extra || []).map(([value, text]) => el("option", { value }, text)),
        ...versions.map((v) => el("option", { value: v.commit, title: v.commit }, label(v))));
      if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    }

    function pagerButtons(pages) {
      const info = el("span", { id: "page-info", class: "ps-muted" },
        `${(page - 1) * pageSize + 1}–${(page - 1) * pageSize + shown.length} of ${count} · ` +
        `page ${page} of ${pages}`);
      pager.replaceChildren(info,
        button("Newer", { id: "prev-page", disabled: page <= 1, onClick: () => { page -= 1; load(); } }),
        button("Older", { id: "next-page", disabled: page >= pages, onClick: () => { page += 1; load(); } }));
    }

    function showParts(on) {
      for (const part of [toolbar, box, pager]) part.hidden = !on;
    }

    // --- loading, empty and error states --------------------------------------------------------------
    function errorAdvice(e) {
      if (e.status === 503 || e.status === 0) {
        return "The mount server or the Pachyderm cluster behind it did not answer. Check that they run " +
          "(`pachstudio status` in the container, or the cluster's own status), then retry.";
      }
      if (e.status === 404) {
        return "This Target is gone, or belongs to another organization: open the project's Cloud Storage.";
      }
      return "Retry; if it persists, the Target's settings may need fixing in Cloud Storage.";
    }

    async function load() {
      if (!shown.length) {
        showParts(false);
        stateBox.replaceChildren(state("loading", "Loading versions…",
          "Reading the Target's branch from Pachyderm."));
      }
      summary.textContent = "Loading versions…";
      let data;
      try {
        data = await api("GET", `${base}/versions?page=${page}&page_size=${pageSize}`);
      } catch (e) {
        showParts(false);
        summary.textContent = "";
        stateBox.replaceChildren(state("error", "The versions cannot be listed now",
          el("p", { id: "versions-error" }, e.message), errorAdvice(e),
          el("div", { class: "ps-state-actions" },
            button("Retry", { variant: "primary", id: "retry-versions", onClick: load }),
            linkButton("Cloud Storage", config.storage_settings))));
        return;
      }
      shown = data.versions;
      count = data.count;
      if (!chosen) {
        pinned = (data.metric_columns || []).slice(0, MAX_PINNED).map((c) => metricId(c.pipeline, c.key));
      }
      showJobsNote(data);
      const staged = data.staged
        ? `${data.staged} change(s) staged since the last Sync: press Sync on the Target to make them a version`
        : "nothing staged since the last Sync";
      summary.textContent = `${count} version(s); ${staged}.`;
      const onlyStart = count === 1 && !shown[0].description; // the commit that started the branch, no Sync yet
      if (count === 0 || onlyStart) {
        showParts(false);
        summary.textContent = "";
        stateBox.replaceChildren(state("empty", "No versions yet",
          `A version is a commit a Sync of "${config.title}" makes. Press Sync on the Target (the project's ` +
          "Settings > Cloud Storage) to commit its labels as the first version." +
          (data.staged ? ` ${data.staged} change(s) are staged and wait for it.` : ""),
          el("div", { class: "ps-state-actions" }, linkButton("Open Cloud Storage", config.storage_settings,
            { variant: "primary", id: "open-storage" }))));
        return;
      }
      stateBox.replaceChildren();
      showParts(true);
      render();
      const pages = Math.max(1, Math.ceil(count / pageSize));
      pagerButtons(pages);
      const from = find("compare-from");
      const to = find("compare-to");
      fillSelect(from, shown);
      fillSelect(to, shown, [["staged", "staged (not synced yet)"]]);
      if (!compared && from.options.length > 1) { from.selectedIndex = 1; to.selectedIndex = 1; }
    }

    // While a version's jobs run, say so and look again every 5 s (not once the page is gone)
    function showJobsNote(data) {
      const running = data.versions.filter((v) => runningOf(v).length);
      const pipelines = data.pipelines || { state: "none", message: "" };
      let text = "";
      if (running.length) {
        text = `Jobs still running for ${running.length} version(s): their metrics appear when they end.`;
      } else if (pipelines.state === "hidden" || pipelines.state === "error") {
        text = pipelines.message;
      }
      jobsNote.textContent = text;
      jobsNote.className = pipelines.state === "error" ? "ps-summary ps-form-error" : "ps-summary";
      jobsNote.hidden = !text;
      clearTimeout(reload);
      if (running.length || awaitingJobs(data, pipelines)) reload = setTimeout(() => root.isConnected && load(), 5000);
    }

    // A version synced in the last two minutes, on a branch pipelines read, whose jobs are not listed
    // yet: they are listed a moment after its commit, so look again as while jobs run
    function awaitingJobs(data, pipelines) {
      const newest = data.versions[0];
      if (pipelines.state !== "jobs" || !newest || !newest.finished) return false;
      const fresh = Date.now() - Date.parse(newest.finished) < 120000;
      return fresh && (!newest.jobs || newest.jobs.state === "none");
    }

    // --- compare ------------------------------------------------------------------------------------
    function taskList(tasks, id) {
      if (!tasks.length) return el("p", { class: "ps-muted" }, "No task differs.");
      return el("ul", { class: "ps-task-list", id }, ...tasks.map((t) => {
        const changes = (t.annotations || []).map((a) => `annotation ${a.id} ${a.change} by ${a.by || "unknown"}`);
        return el("li", { class: `task ${t.change}`, "data-task": t.task_id },
          el("a", { href: t.task_url }, `Task ${t.task_id}`),
          badge(t.change, { gained: "kale", changed: "canteloupe", lost: "persimmon" }[t.change] || "sand"),
          el("span", { class: "ps-task-detail", title: changes.join("\n") }, changes.join("; ")));
      }));
    }

    // Each metric of the two versions' jobs: from, to and the change (none for a side without it)
    function metricChanges(metrics) {
      if (!metrics) return null; // compared with what is staged: no jobs yet
      const rows = [];
      for (const [pipeline, keys] of Object.entries(metrics.metrics || {})) {
        for (const [key, m] of Object.entries(keys)) {
          const change = m.change === null ? "–" : `${m.change > 0 ? "+" : ""}${formatValue(m.change)}`;
          const tone = m.change > 0 ? "ps-gained" : m.change < 0 ? "ps-lost" : "";
          rows.push(el("tr", { class: "ps-row metric-change", "data-pipeline": pipeline, "data-key": key },
            el("td", { title: `${pipeline}: ${key}` }, `${pipelineName(pipeline)} · ${key}`),
            el("td", { class: "ps-num" }, formatValue(m.from)), el("td", { class: "ps-num" }, formatValue(m.to)),
            el("td", { class: `ps-num ${tone}` }, change)));
        }
      }
      if (!rows.length) {
        const why = metrics.state === "jobs" ? "The jobs of these versions wrote no metrics." : metrics.message;
        return el("p", { class: "ps-muted", id: "metric-changes" }, why);
      }
      return el("div", { id: "metric-changes" },
        el("table", { class: "ps-table", id: "metric-changes-table", style: "margin-top:12px" },
          el("colgroup", {}, el("col"), ...[1, 2, 3].map(() => el("col", { style: "width:96px" }))),
          el("thead", {}, el("tr", {}, el("th", {}, "Metric"), el("th", { class: "ps-num" }, "From"),
            el("th", { class: "ps-num" }, "To"), el("th", { class: "ps-num" }, "Change"))),
          el("tbody", {}, ...rows)),
        metrics.running.length ? el("p", { class: "ps-muted" }, "Jobs of a compared version are still running.")
          : null);
    }

    async function compare(from, to) {
      const name = (c) => (c === "staged" ? "staged" : short(c));
      const dialog = modal({ title: `Compare ${name(from)} with ${name(to)}`, id: "diff-dialog",
        body: state("loading", "Comparing…", "Reading the label files that differ between the two versions.") });
      dialog.body.id = "diff-result";
      try {
        const diff = await api("GET", `${base}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
        const c = diff.counts;
        dialog.body.replaceChildren(
          el("p", { id: "diff-counts", class: "ps-diff-counts" },
            el("span", {}, `${name(diff.from)} → ${diff.to === "staged" ? "staged" : name(diff.to)}:`),
            el("span", { class: "ps-gained" }, `${c.gained} gained`),
            el("span", { class: "ps-changed" }, `${c.changed} changed`),
            el("span", { class: "ps-lost" }, `${c.lost} lost`)),
          taskList(diff.tasks), metricChanges(diff.metrics));
      } catch (e) {
        dialog.body.replaceChildren(state("error", "Cannot compare", el("p", {}, e.message), errorAdvice(e)));
      }
    }

    find("compare-button-slot").replaceChildren(
      button("Compare", { id: "compare-button", type: "submit", variant: "primary", look: "outlined" }),
      button("Refresh", { id: "refresh-button", look: "string", onClick: () => load() }));
    toolbar.addEventListener("submit", (event) => {
      event.preventDefault();
      compared = true;
      compare(find("compare-from").value, find("compare-to").value);
    });

    // --- tag --------------------------------------------------------------------------------------
    function tagDialog(v) {
      const select = el("select", { id: "tag-commit", name: "tag-commit", class: "ps-select" });
      fillSelect(select, shown);
      select.value = v.commit;
      const name = el("input", { id: "tag-name", name: "tag-name", type: "text", class: "ps-input", placeholder: "v3",
        maxLength: 63 });
      const message = el("div", { id: "tag-message", role: "status" });
      const form = el("form", { class: "ps-form" }, el("label", { for: "tag-commit" }, "Version"), select,
        el("label", { for: "tag-name" }, "Name"), name,
        button("Tag", { id: "tag-button", type: "submit", variant: "primary" }));
      const dialog = modal({ title: "Tag a version", id: "tag-dialog", width: 640, body: [form, message,
        el("p", { class: "ps-muted", style: "margin-top:12px" },
          "A tag is a Pachyderm branch at that commit: pipelines and pachctl see it too.")] });
      onSubmit(form, message, () => api("POST", `${base}/tags`, { name: name.value.trim(), commit: select.value }),
        (made) => `Tagged ${short(made.commit)} as ${made.name}`);
      name.focus();
      return dialog;
    }

    // A tag dialog's form: post, say what was made (or why not) below it, list the versions again
    function onSubmit(form, message, post, said) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const made = await post();
          message.className = "ps-message";
          message.textContent = said(made);
          await load();
        } catch (e) {
          message.className = "ps-form-error";
          message.textContent = e.message;
        }
      });
    }

    // --- tag a job's output: a branch of the pipeline's output repo at the commit the job wrote -----
    const succeeded = (v) => outputsOf(v).filter((o) => o.state === "JOB_SUCCESS");

    function jobTagDialog(v, pipeline) {
      const select = el("select", { id: "job-tag-pipeline", name: "job-tag-pipeline", class: "ps-select" },
        ...succeeded(v).map((o) => el("option", { value: o.pipeline, title: o.pipeline }, pipelineName(o.pipeline))));
      select.value = pipeline;
      const name = el("input", { id: "job-tag-name", name: "job-tag-name", type: "text", class: "ps-input",
        placeholder: "best-model", maxLength: 63 });
      const message = el("div", { id: "job-tag-message", role: "status" });
      const form = el("form", { class: "ps-form" }, el("label", { for: "job-tag-pipeline" }, "Pipeline"), select,
        el("label", { for: "job-tag-name" }, "Name"), name,
        button("Tag output", { id: "job-tag-button", type: "submit", variant: "primary" }));
      const dialog = modal({ title: `Tag the output of version ${short(v.commit)}'s job`, id: "job-tag-dialog",
        width: 640, body: [form, message, el("p", { class: "ps-muted", style: "margin-top:12px" },
          "Names the output commit of the pipeline's job for this version: a branch of the pipeline's output " +
          "repo a deployment can point to.")] });
      onSubmit(form, message,
        () => api("POST", `${base}/job-tags`, { name: name.value.trim(), commit: v.commit, pipeline: select.value }),
        (made) => `Tagged ${made.repo}@${short(made.commit)} as ${made.name}`);
      name.focus();
      return dialog;
    }

    // --- restore ----------------------------------------------------------------------------------
    async function previewRestore(v) {
      const pageMessage = find("restore-message");
      pageMessage.replaceChildren();
      const dialog = modal({ title: `Restore ${short(v.commit)}?`, id: "restore-preview",
        body: state("loading", `Working out what restoring ${short(v.commit)} would change…`,
          "Nothing changes until you confirm.") });
      try {
        const preview = await api("POST", `${base}/restore`, { commit: v.commit, confirm: false });
        const c = preview.counts;
        const error = el("div", { id: "restore-error", class: "ps-form-error", role: "alert" });
        const confirmButton = button(`Restore ${short(v.commit)}`, { id: "restore-confirm", variant: "primary" });
        confirmButton.addEventListener("click", () => restore(v, confirmButton, error, dialog));
        dialog.body.replaceChildren(
          el("p", { id: "restore-counts" }, `Restoring ${short(v.commit)} (synced ${when(v)}) would create ` +
            `${c.create}, update ${c.update} and delete ${c.delete} annotation(s). What is staged now is ` +
            "committed first."),
          taskList(preview.tasks), error,
          el("div", { class: "ps-state-actions" }, confirmButton, button("Cancel", { onClick: dialog.close })));
      } catch (e) {
        dialog.body.replaceChildren(state("error", `Cannot restore ${short(v.commit)}`, el("p", {}, e.message),
          errorAdvice(e)));
      }
    }

    async function restore(v, confirmButton, error, dialog) {
      confirmButton.disabled = true;
      error.textContent = "";
      try {
        const done = await api("POST", `${base}/restore`, { commit: v.commit, confirm: true });
        const c = done.counts;
        const first = done.committed_first
          ? ` What was staged was committed first as ${short(done.committed_first)}.` : "";
        dialog.close();
        find("restore-message").replaceChildren(el("p", { class: "ps-message", role: "status" },
          `Restored ${short(done.restored_from)}: ${c.create} created, ${c.update} updated, ` +
          `${c.delete} deleted.${first} ` +
          "The change is staged: the next Sync makes it a version. ",
          el("a", { href: config.data_manager }, "Open the Data Manager")));
        await load();
      } catch (e) {
        error.textContent = `Restore refused: ${e.message}`;
        confirmButton.disabled = false;
      }
    }

    load();
  }
})();
