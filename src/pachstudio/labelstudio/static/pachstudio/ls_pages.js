// Helpers for the pages we add to Label Studio (Versions, Task history, the labeling view's panel).
// Elements are Label Studio's own: its button, badge and user-picture classes (window
// PACHSTUDIO_LS_CLASSES, read from its bundle by ls_look.py), its dialog and menu classes; colours and
// fonts are its CSS variables. Everything from the data goes in as text, never as HTML.
(function () {
  "use strict";
  if (window.Pachstudio) return; // Label Studio may run a page's scripts again when it re-renders it

  const LS = window.PACHSTUDIO_LS_CLASSES || {};
  const pick = (map, names) => names.filter(Boolean).map((n) => (map || {})[n]).filter(Boolean);
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = Array.isArray(v) ? v.filter(Boolean).join(" ") : v;
      else if (k === "on") for (const [event, fn] of Object.entries(v)) node.addEventListener(event, fn);
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function icon(path, size = 16) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", size);
    svg.setAttribute("height", size);
    svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "currentColor");
    svg.append(p);
    return svg;
  }
  const ICONS = {
    copy: "M8 3h10a2 2 0 0 1 2 2v10h-2V5H8V3zm-3 4h10a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V9a2 2 0 0 1 " +
      "2-2zm0 2v10h10V9H5z",
    check: "M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z",
    more: "M12 8a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 6a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 6a2 2 0 1 1 0-4 2 2 0 0 1 0 4z",
    close: "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
    history: "M13 3a9 9 0 0 0-9 9H1l3.9 3.9L9 12H6a7 7 0 1 1 2.05 4.95l-1.42 1.42A9 9 0 1 0 13 3zm-1 5v5l4.25 " +
      "2.52.77-1.28-3.52-2.09V8z",
  };

  // Label Studio's Button: buttonVariant()'s utility classes and its CSS module's classes.
  function buttonClass({ variant = "neutral", look = "outlined", size = "small" } = {}) {
    return [LS.button_utilities || "",
      ...pick(LS.button, ["base", `variant-${variant}`, look !== "filled" && `look-${look}`, `size-${size}`,
        "align-default"])].join(" ").trim();
  }

  // a primary button is filled unless told otherwise, as Label Studio's own
  const lookOf = (variant, look) => look || (variant === "primary" ? "filled" : "outlined");

  function button(text, { variant, look, size, id, cls, title, onClick, type = "button", disabled, leading } = {}) {
    look = lookOf(variant, look);
    return el("button", { type, id, title, disabled, class: [buttonClass({ variant, look, size }), "ps-button", cls],
      on: onClick ? { click: onClick } : undefined }, leading, text);
  }

  function linkButton(text, href, { variant, look, size, id, cls, title } = {}) {
    look = lookOf(variant, look);
    return el("a", { href, id, title, class: [buttonClass({ variant, look, size }), "ps-button", cls] }, text);
  }

  // Label Studio's Badge; variant: kale (success), persimmon (failure), canteloupe (running), sand, grape, plum
  function badge(text, variant = "sand", { cls, title } = {}) {
    const classes = pick(LS.badge, ["badge", `variant-${variant}`, "style-filled", "shape-squared", "size-small"]);
    return el("span", { title, class: [...classes, "ps-badge", cls] }, text);
  }

  function userpic(email) {
    const name = String(email || "?");
    return el("span", { class: [...pick(LS.userpic, ["userpic"]), "ps-userpic"], title: name },
      el("span", { class: pick(LS.userpic, ["username"]) }, name.slice(0, 2).toUpperCase()));
  }

  function typography(tag, kind, text, attrs = {}) {
    return el(tag, { ...attrs, class: [...pick(LS.typography, [`typography-${kind}`]), attrs.class] }, text);
  }

  const short = (id) => (id ? String(id).slice(0, 8) : "");

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) { // no clipboard API (plain http): the older way still works in a user's click
      const area = el("textarea", { value: text, class: "ps-offscreen" });
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      return done;
    }
  }

  // A commit id as people read it: 8 characters, the whole id on hover and in the copy button.
  function commitId(id, { cls, prefix, title } = {}) {
    if (!id) return el("span", { class: "ps-muted" }, "none");
    const copyButton = el("button", { type: "button", class: "ps-copy", title: `Copy ${id}`,
      "aria-label": `Copy ${id}`, "data-copy": id }, icon(ICONS.copy, 14));
    copyButton.addEventListener("click", async (event) => {
      event.stopPropagation();
      if (await copy(id)) {
        copyButton.replaceChildren(icon(ICONS.check, 14));
        copyButton.title = "Copied";
        setTimeout(() => { copyButton.replaceChildren(icon(ICONS.copy, 14)); copyButton.title = `Copy ${id}`; }, 1500);
      }
    });
    // a prefix (a repo) gives way first when the column is narrow: the short id stays readable
    const text = prefix ? [el("span", { class: "ps-ellipsis" }, prefix), el("span", {}, `@${short(id)}`)]
      : [short(id)];
    return el("span", { class: ["ps-id", cls], "data-full": id }, el("code", { title: title || id }, ...text),
      copyButton);
  }

  // "project/repo@<commit>" shortened to "repo@8bfc06e3", the whole reference on hover
  function commitRef(ref) {
    const at = String(ref || "").lastIndexOf("@");
    if (at < 0) return el("span", { title: ref }, ref);
    const repo = ref.slice(0, at).replace(/^default\//, "");
    return commitId(ref.slice(at + 1), { prefix: repo, cls: "ps-ref", title: ref });
  }

  const pad = (n) => String(n).padStart(2, "0");
  function utc(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  const UNITS = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  function ago(iso, now = Date.now()) {
    const seconds = Math.round((now - new Date(iso).getTime()) / 1000);
    if (Number.isNaN(seconds)) return String(iso);
    if (Math.abs(seconds) < 45) return "just now";
    for (const [unit, size] of UNITS) {
      const n = Math.round(Math.abs(seconds) / size);
      if (n >= 1) {
        const text = `${n} ${unit}${n === 1 ? "" : "s"}`;
        return seconds >= 0 ? `${text} ago` : `in ${text}`;
      }
    }
    return "just now";
  }

  // "3 minutes ago", the exact UTC time on hover; kept current while the page stays open
  function time(iso, { empty = "not finished" } = {}) {
    if (!iso) return el("span", { class: "ps-muted" }, empty);
    return el("time", { class: "ps-time", dateTime: iso, title: utc(iso) }, ago(iso));
  }
  setInterval(() => {
    for (const node of document.querySelectorAll("time.ps-time")) node.textContent = ago(node.dateTime);
  }, 30000);

  function csrf() {
    const found = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    return found ? decodeURIComponent(found.slice("csrftoken=".length)) : "";
  }

  // JSON in, JSON out; a refusal throws an Error carrying the API's own words and the HTTP status
  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrf();
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await window.fetch(url, options);
    } catch (e) {
      const error = new Error(`Label Studio did not answer (${e.message}): check that it is running, then retry`);
      error.status = 0;
      throw error;
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      let detail = (data && (data.detail || data.message)) || `HTTP ${response.status} ${response.statusText}`;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      const error = new Error(detail);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // Loading, empty and error states: what happened, in the server's words, and what to do about it
  function spinner(size = 24) {
    return el("div", { class: "lsf-spinner-ls", style: `--spinner-size:${size}px` },
      el("div", { class: "lsf-spinner-ls__body" }, el("span"), el("span"), el("span"), el("span")));
  }

  function state(kind, title, ...body) {
    return el("div", { class: ["ps-state", `ps-state-${kind}`], role: kind === "error" ? "alert" : "status" },
      kind === "loading" ? spinner() : null,
      el("div", { class: "ps-state-text" }, typography("div", "title-small", title, { class: "ps-state-title" }),
        ...body.map((b) => (typeof b === "string" ? el("p", {}, b) : b))));
  }

  // Label Studio's dialog (its modal classes): Escape, the close button or a click outside closes it
  function modal({ title, body, footer, width = 720, id, onClose }) {
    const close = () => {
      root.remove();
      document.removeEventListener("keydown", onKey);
      if (onClose) onClose();
    };
    const onKey = (event) => { if (event.key === "Escape") close(); };
    const content = el("div", { class: "lsf-modal-ls__content", style: `width:min(${width}px, calc(100vw - 48px))` },
      el("div", { class: "lsf-modal-ls__header" },
        el("div", { class: "lsf-modal-ls__title" }, title),
        el("button", { type: "button", class: "ps-icon-button", title: "Close", "aria-label": "Close",
          on: { click: close } }, icon(ICONS.close, 20))),
      el("div", { class: "lsf-modal-ls__body ps-modal-body" }, body),
      footer ? el("div", { class: "lsf-modal-ls__footer ps-modal-footer" }, footer) : null);
    const root = el("div", { id, class: "lsf-modal-ls lsf-modal-ls_visible lsf-visible ps-modal", role: "dialog",
      "aria-modal": "true" }, el("div", { class: "lsf-modal-ls__wrapper" }, content));
    root.addEventListener("mousedown", (event) => { if (!content.contains(event.target)) close(); });
    document.addEventListener("keydown", onKey);
    document.body.append(root);
    return { root, body: content.querySelector(".ps-modal-body"), close };
  }

  // A row's menu: Label Studio's dropdown and menu classes, anchored to its trigger (CSS anchors, as
  // Label Studio's own dropdowns are)
  let openMenu = null;
  function closeMenu() {
    if (!openMenu) return;
    openMenu.menu.remove();
    openMenu.trigger.style.removeProperty("anchor-name");
    openMenu.trigger.setAttribute("aria-expanded", "false");
    openMenu = null;
  }
  document.addEventListener("mousedown", (event) => {
    if (openMenu && !openMenu.menu.contains(event.target) && !openMenu.trigger.contains(event.target)) closeMenu();
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeMenu(); });

  // Open `items()` ([{label, onClick | href, cls, danger}]) under `trigger` on each click
  function attachMenu(trigger, items) {
    trigger.setAttribute("aria-haspopup", "menu");
    trigger.setAttribute("aria-expanded", "false");
    trigger.addEventListener("click", (event) => {
      event.preventDefault();
      event.stopPropagation();
      const wasOpen = openMenu && openMenu.trigger === trigger;
      closeMenu();
      if (wasOpen) return;
      const list = el("ul", { class: "lsf-main-menu lsf-main-menu_collapsed", role: "menu" },
        ...items().filter(Boolean).map((item) => el("li", { role: "none" },
          el("a", { href: item.href || "#", role: "menuitem", class: ["lsf-main-menu__item", item.cls,
            item.danger && "lsf-main-menu__item_look_danger"], on: { click: (e) => {
            if (!item.href) e.preventDefault();
            closeMenu();
            if (item.onClick) item.onClick(e);
          } } }, item.label))));
      // placed as Label Studio places its own right-aligned dropdowns: below the trigger, flipped when
      // the window has no room under it
      const menu = el("div", { class: "lsf-dropdown lsf-dropdown_align_right lsf-visible ps-menu",
        style: "position-anchor: --ps-menu-anchor; inset: anchor(bottom) anchor(right) auto auto; " +
          "position-try-fallbacks: flip-block; z-index: 2001" }, list);
      trigger.style.setProperty("anchor-name", "--ps-menu-anchor");
      trigger.setAttribute("aria-expanded", "true");
      document.body.append(menu);
      openMenu = { trigger, menu };
    });
    return trigger;
  }

  // The "⋮" button of a table row
  function menuButton(label, items, { cls } = {}) {
    return attachMenu(el("button", { type: "button", class: ["ps-icon-button", "ps-menu-trigger", cls], title: label,
      "aria-label": label }, icon(ICONS.more, 18)), items);
  }

  window.Pachstudio = {
    el, icon, ICONS, button, buttonClass, linkButton, badge, userpic, typography, short, commitId, commitRef,
    utc, ago, time, api, state, spinner, modal, attachMenu, menuButton, closeMenu, copy,
  };
})();
