// In Label Studio's Data Manager and labeling view (`/projects/<p>/data`), next to its own header
// buttons: "Task history" while a task is open (`?task=<id>`), opening that task's history in a
// panel beside it, and a "Versions: <Target>" link per Pachyderm Target of the project.
// Loaded on every Label Studio page (data_manager_links.py): the app changes pages without
// reloading, so the script follows the address rather than the page it came with.
(function () {
  "use strict";
  if (window.PachstudioLabelingLinks) return;
  const P = window.Pachstudio;
  const { el, button, linkButton, icon, ICONS } = P;
  const DATA_PAGE = /^\/projects\/(\d+)\/data\/?$/;
  const BOX_ID = "pachstudio-labeling-actions";
  const targets = new Map(); // project id -> [{id, title}] (a promise while asked)
  let panelTask = null; // the task whose history the panel shows, null when closed

  function projectTargets(project) {
    if (!targets.has(project)) {
      targets.set(project, P.api("GET", `/api/storages/export/pachyderm?project=${project}`)
        .then((list) => list.map((t) => ({ id: t.id, title: t.title || `Target ${t.id}` })))
        .catch(() => []) // a project the user may not see, or no answer: no links
        .then((list) => { targets.set(project, list); refresh(); return list; }));
    }
    const known = targets.get(project);
    return Array.isArray(known) ? known : [];
  }

  function openTask() {
    const task = new URLSearchParams(window.location.search).get("task");
    return task && /^[0-9]{1,18}$/.test(task) ? task : null;
  }

  // Where Label Studio keeps the page's own header buttons (the Data Manager's "Settings");
  // without it (another layout), a box in the window's corner
  function place(box) {
    const header = document.querySelector(".lsf-menu-header__context-item_right");
    if (header) {
      if (box.parentElement !== header) header.prepend(box);
      box.classList.remove("ps-corner");
    } else if (box.parentElement !== document.body) {
      document.body.append(box);
      box.classList.add("ps-corner");
    }
  }

  function actions(project, task) {
    let box = document.getElementById(BOX_ID);
    if (!box) box = el("span", { id: BOX_ID, class: "ps-header-extra" });
    place(box);
    const links = projectTargets(project);
    const wanted = JSON.stringify([task, links, panelTask]);
    if (box.dataset.shows === wanted) return;
    box.dataset.shows = wanted;
    const historyButton = task ? button("Task history", { id: "pachstudio-task-history",
      title: "Who labeled this task and when: its label versions in Pachyderm", leading: icon(ICONS.history, 16),
      variant: panelTask ? "primary" : "neutral", look: "outlined", onClick: () => togglePanel(task) }) : null;
    if (historyButton) historyButton.setAttribute("aria-pressed", panelTask ? "true" : "false");
    box.replaceChildren(...[historyButton, links.length ? el("span", { id: "pachstudio-versions-links",
      class: "ps-header-extra" }, ...links.map((t) => linkButton(`Versions: ${t.title}`,
      `/pachyderm/targets/${t.id}/versions`, { cls: "pachstudio-versions-link",
        title: "The label versions this Target synced to Pachyderm: compare, tag, restore" }))) : null]
      .filter(Boolean));
  }

  // The panel beside the task: its history, following the task open in the labeling view
  function togglePanel(task) {
    panelTask = panelTask ? null : task;
    refresh();
  }

  // Over the labeling view's own side panels when it shows them (the editor and its Submit/Update
  // buttons stay in view), else a column at the window's right
  function dock(box) {
    const side = document.querySelector(".lsf-sidepanels__wrapper_align_right");
    const rect = side ? side.getBoundingClientRect() : null;
    const left = rect && rect.width >= 280 ? rect.left : window.innerWidth - Math.min(400, window.innerWidth);
    box.style.left = `${Math.max(0, Math.round(left))}px`;
  }

  function panel(task) {
    let box = document.getElementById("pachstudio-history-panel");
    if (!task) {
      if (box) box.remove();
      return;
    }
    if (box) dock(box);
    if (box && box.dataset.task === task) return;
    if (!box) {
      box = el("aside", { id: "pachstudio-history-panel", class: "ps-panel", role: "complementary",
        "aria-label": "Task history" });
      document.body.append(box);
      dock(box);
    }
    box.dataset.task = task;
    const body = el("div", { class: "ps-panel-body", id: "pachstudio-history-panel-body" });
    box.replaceChildren(el("div", { class: "ps-panel-head" },
      P.typography("h2", "title-medium", `Task ${task} history`),
      linkButton("Open page", `/pachyderm/tasks/${task}/history`, { id: "pachstudio-history-page-link",
        look: "string", title: "The task's history on a page of its own" }),
      el("button", { type: "button", class: "ps-icon-button", id: "pachstudio-history-close", title: "Close",
        "aria-label": "Close the task history", on: { click: () => { panelTask = null; refresh(); } } },
      icon(ICONS.close, 18))), body);
    window.PachstudioHistory.render(body, task, { compact: true });
  }

  let lastPath = null;
  function refresh() {
    if (window.location.pathname !== lastPath) { // a page change: ask for the Targets again when back
      lastPath = window.location.pathname;
      for (const [project, known] of targets) if (Array.isArray(known)) targets.delete(project);
    }
    const page = DATA_PAGE.exec(window.location.pathname);
    const task = page ? openTask() : null;
    if (panelTask && task !== panelTask) panelTask = task; // the panel follows the open task
    if (!page) {
      const box = document.getElementById(BOX_ID);
      if (box) box.remove();
      panelTask = null;
    } else {
      actions(page[1], task);
    }
    panel(panelTask);
  }

  window.PachstudioLabelingLinks = { refresh };
  function start() {
    refresh();
    setInterval(refresh, 400); // the app changes the address without an event we could listen to
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
