/* The storage card's "Pipelines" (Target) or "Provenance" (Source) line: a ref callback, no React
   hooks. It fetches the storage's /jobs or /provenance answer and writes it into its element; a
   Target polls every 2 s until every job of its last Sync commit has ended. React gives the element
   no children, so it never overwrites them; a new commit is a new key, so a new element and poll.
   Joined into one line by apply_frontend.py: only block comments, every statement ends with ; */
function (el, storage) {
  if (!el || el.__pachstudioPoll) { return; }
  el.__pachstudioPoll = true;
  var target = "last_commit" in storage;
  var url = "/api/storages/" + (target ? "export/" : "") + "pachyderm/" + storage.id + (target ? "/jobs" : "/provenance");
  var polls = 0;
  var line = function (text, state) {
    var row = document.createElement("div");
    row.textContent = text;
    row.className = "pachstudio-pipeline" + (state ? " pachstudio-pipeline-" + state : "");
    if (state) { row.setAttribute("data-state", state); }
    return row;
  };
  var jobLine = function (j) {
    var state = j.state.replace("JOB_", "").toLowerCase();
    var text = j.pipeline + ": " + state + (j.reason ? " (" + j.reason + ")" : "")
      + ", datums " + j.data_processed + " processed, " + j.data_skipped + " skipped, "
      + j.data_failed + " failed of " + j.data_total
      + (j.output_commit ? ", output " + j.output_commit : "");
    return line(text, state);
  };
  var show = function (answer) {
    var rows = [];
    if (target && answer.state === "jobs" && answer.jobs.length) {
      rows = answer.jobs.map(jobLine);
      if (!answer.ended) { rows.push(line("updating every 2 s until every job has ended", "")); }
    } else {
      rows.push(line(answer.message, answer.state));
    }
    el.replaceChildren.apply(el, rows);
  };
  var poll = function () {
    if (!el.isConnected) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (r) {
        if (r.ok) { show(r.body); } else { el.replaceChildren(line((r.body && (r.body.detail || r.body.message)) || "cannot read the pipelines", "error")); }
        if (target && r.ok && !r.body.ended && polls++ < 1800) { setTimeout(poll, 2000); }
      })
      .catch(function () { if (polls++ < 1800) { setTimeout(poll, 2000); } });
  };
  el.replaceChildren(line("reading the cluster...", ""));
  poll();
}
