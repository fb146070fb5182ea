// A task's label history (who labeled it, in which version, what changed since, where the task came
// from) from GET /api/pachyderm/tasks/<id>/history, drawn into an element: the Task history page and
// the labeling view's panel use the same drawing, the panel without the Target column when the
// project has one Target. Also starts the Task history page when it is shown.
(function () {
  "use strict";
  if (window.PachstudioHistory) return;
  const P = window.Pachstudio;
  const { el, badge, userpic, commitId, time, api, state, typography } = P;
  const CHANGE = { added: "kale", changed: "canteloupe", deleted: "persimmon" };

  function source(history) {
    const s = history.source;
    if (!s) {
      return el("p", { id: "source", class: "ps-history-source ps-muted" }, "Source file: not from a Pachyderm Source");
    }
    const path = (s.path || "").replace(/^\/+/, "");
    const full = `${s.repo}@${s.commit || "?"}:/${path}`;
    return el("p", { id: "source", class: "ps-history-source", title: full, "data-full": full },
      el("span", { class: "ps-muted" }, "Source file"), el("strong", {}, path || "?"),
      el("span", { class: "ps-muted" }, "from"), el("span", {}, s.repo.replace(/^default\//, "")),
      el("span", { class: "ps-muted" }, "at"), commitId(s.commit));
  }

  function targetsLine(history) {
    if (!history.targets.length) return null;
    return el("p", { class: "ps-muted", id: "targets" }, "Looked at " + history.targets.map((t) =>
      `${t.commits} version(s) of ${t.title ? `"${t.title}"` : `Target ${t.id}`} (${t.repo})` +
      (t.note ? `: ${t.note}` : "")).join("; ") + ".");
  }

  // A table on the page; in the panel (narrow) two lines per version: the change and when, then
  // the version, who, and the Target when the project has several
  function versionsTable(ann, history, compact) {
    const targets = new Map(history.targets.map((t) => [t.id, t]));
    const targetName = (v) => {
      const target = targets.get(v.target);
      return target ? target.title || `Target ${target.id}` : v.repo;
    };
    const by = (v) => (v.by ? el("span", { title: v.by }, v.by)
      : el("span", { class: "ps-muted", title: "not recorded by Label Studio" }, "unknown"));
    if (compact) {
      return el("ul", { class: "ps-history-list" }, ...ann.versions.map((v) => el("li", { "data-commit": v.commit },
        el("div", {}, badge(v.change, CHANGE[v.change] || "sand", { cls: "change" }),
          time(v.finished, { empty: "open" })),
        el("div", { class: "ps-muted" }, commitId(v.commit), by(v),
          targets.size > 1 ? el("span", { title: v.repo }, targetName(v)) : null))));
    }
    const cols = [["When", 150], ["Version", 130], ["Change", 100], ["By", null], ["Target", null]];
    return el("div", { class: "ps-table-box" }, el("table", { class: "ps-table ps-history-versions" },
      el("colgroup", {}, ...cols.map(([, w]) => el("col", { style: w ? `width:${w}px` : "" }))),
      el("thead", {}, el("tr", {}, ...cols.map(([name]) => el("th", {}, name)))),
      el("tbody", {}, ...ann.versions.map((v) => el("tr", { class: "ps-row", "data-commit": v.commit },
        el("td", {}, time(v.finished, { empty: "open" })),
        el("td", {}, commitId(v.commit)),
        el("td", {}, badge(v.change, CHANGE[v.change] || "sand", { cls: "change" })),
        el("td", {}, by(v)),
        el("td", { title: v.repo }, targetName(v)))))));
  }

  function annotation(ann, history, compact) {
    const by = ann.by || "unknown";
    return el("section", { class: "annotation ps-history-annotation", "data-id": ann.id },
      el("div", { class: "ps-history-annotation-head" }, userpic(by),
        typography(compact ? "h3" : "h2", "title-small", `Annotation ${ann.id} by ${by}`,
          { class: "annotation-title" })),
      el("p", { class: "ps-muted first-version" }, "first in version ",
        ann.first_version ? commitId(ann.first_version) : "none"),
      versionsTable(ann, history, compact));
  }

  function errorAdvice(e) {
    if (e.status === 503 || e.status === 0) {
      return "The mount server or the Pachyderm cluster behind it did not answer. Check that they run, then retry.";
    }
    if (e.status === 404) return "Open a task of a project of your organization.";
    return "Retry; if it persists, ask your Label Studio admin.";
  }

  // Draw task `taskId`'s history into `box`; `compact` for the panel beside the labeling view
  async function render(box, taskId, { compact = false } = {}) {
    const ticket = String(Math.random());
    box.dataset.ticket = ticket; // a later call wins over an answer still on its way
    box.replaceChildren(state("loading", "Loading the task's history…", "Reading its label files in each version."));
    let history;
    try {
      history = await api("GET", `/api/pachyderm/tasks/${taskId}/history`);
    } catch (e) {
      if (box.dataset.ticket !== ticket) return;
      box.replaceChildren(state("error", "The history cannot be read now", el("p", { id: "history-error" }, e.message),
        errorAdvice(e), el("div", { class: "ps-state-actions" },
          P.button("Retry", { variant: "primary", id: "retry-history",
            onClick: () => render(box, taskId, { compact }) }))));
      return;
    }
    if (box.dataset.ticket !== ticket) return;
    const parts = [source(history), targetsLine(history)];
    if (history.message) {
      parts.push(state("empty", "No label version of this task yet", el("p", { id: "message" }, history.message),
        history.targets.length ? "Press Sync on the project's Target to commit its labels as a version."
          : "Add a Pachyderm Target storage to the project (Settings > Cloud Storage), then Sync it."));
    }
    parts.push(...history.annotations.map((a) => annotation(a, history, compact)));
    box.replaceChildren(...parts.filter(Boolean));
  }

  window.PachstudioHistory = { render };

  // The Task history page: drawn by Label Studio's app, maybe more than once (see versions/page.js)
  function watch() {
    const root = document.getElementById("pachstudio-history");
    if (root && !root.dataset.started) {
      root.dataset.started = "1";
      render(root.querySelector("#history-body"), root.dataset.task);
    }
    const header = document.getElementById("pachstudio-header-actions");
    if (header && header.dataset.taskUrl && !header.childElementCount) {
      header.append(P.linkButton("Open the task", header.dataset.taskUrl, { id: "back-to-task" }));
    }
  }
  new MutationObserver(watch).observe(document.documentElement, { childList: true, subtree: true });
  watch();
})();
