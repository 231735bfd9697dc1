"""The dev page: one self-contained HTML document with a little plain JavaScript.

No framework and nothing fetched from the internet. The server renders every Slack surface
to HTML (gpulease.dev.render); the script only polls /api/state once a second, swaps in the
sections that changed, and turns clicks and form submissions into calls to /api/*. Imported
by gpulease.dev.server only.
"""

from __future__ import annotations

import html

from gpulease.dev.session import USERS

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d1c1d;background:#f8f8f8}
header{display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center;padding:.6rem 1rem;background:#3f0e40;color:#fff}
header h1{font-size:18px;margin:0} header .muted{color:#ddd}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:1rem;padding:1rem}
section.pane{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.4rem .9rem;min-width:0}
h2{font-size:16px;margin:.4rem 0} h3{margin:.2rem 0 .6rem} h4{margin:.3rem 0}
#bar{display:flex;gap:.5rem;padding:.8rem 1rem 0} #line{flex:1;font:inherit;padding:.35rem}
.msg{margin:.5rem 0;padding:.35rem .6rem;border-left:3px solid #1264a3;background:#fafafa;overflow-wrap:anywhere}
.reply{margin-left:1.6rem;border-left-color:#aaa} .meta{font-size:12px}
.fields{display:grid;grid-template-columns:1fr 1fr;gap:.2rem 1rem;margin:.3rem 0}
.context,.muted,.ts{color:#666;font-size:12px} .error{color:#c01343;font-size:13px}
pre{background:#f1f1f1;padding:.4rem;overflow-x:auto;font-size:12px}
.btn{font:inherit;font-size:13px;border:1px solid #bbb;border-radius:4px;background:#fff;padding:.15rem .6rem;margin:.2rem .3rem .2rem 0;cursor:pointer}
.btn.primary{background:#007a5a;border-color:#007a5a;color:#fff} .btn.danger{color:#c01343;border-color:#c01343}
#modal-panel{margin:1rem;border:2px solid #1264a3;border-radius:8px;background:#fff;padding:.6rem 1rem}
.field{margin:.6rem 0} .label{display:block;font-weight:600} .radio{display:block}
.field input[type=text],.field input[type=number],.field textarea,.field select{font:inherit;width:100%;max-width:32rem;padding:.3rem;box-sizing:border-box}
#status,#capacity{padding:.3rem 1rem;min-height:1.2rem} table{border-collapse:collapse} td,th{padding:.15rem .6rem;text-align:left}
"""

SCRIPT = """
const $ = id => document.getElementById(id);
let version = "";
const shown = {};
const user = () => $("user").value;

async function call(path, body) {
  const init = body ? {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)} : {};
  const r = await fetch(path, init);
  let data;
  try { data = await r.json(); } catch (e) { data = {error: "HTTP " + r.status}; }
  if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
  return data;
}

function say(text, bad) { $("status").textContent = text; $("status").className = bad ? "error" : "muted"; }

async function act(path, body, done) {
  try {
    const data = await call(path, Object.assign({user: user()}, body));
    say(done(data));
  } catch (e) { say(e.message, true); }
  await poll();
}

async function poll() {
  try {
    const s = await call("/api/state?user=" + encodeURIComponent(user()) + "&since=" + version);
    version = s.version;
    if (!s.changed) return;
    $("now").textContent = s.now + (s.ahead ? " (" + s.ahead + " ahead)" : "");
    for (const [key, part] of Object.entries(s.sections)) {
      if (shown[key] !== part) { $(key).innerHTML = part; shown[key] = part; }
    }
    $("modal-panel").hidden = !s.sections.modal;
    document.body.dataset.ready = "yes";
  } catch (e) { say("cannot reach the dev server: " + e.message, true); }
}

document.addEventListener("click", e => {
  const button = e.target.closest("button[data-click]");
  if (button && (!button.dataset.confirm || confirm(button.dataset.confirm))) {
    act("/api/click", JSON.parse(button.dataset.click), d => "clicked; the bot acknowledged in " + d.ms + " ms");
  }
  const closer = e.target.closest("button[data-close]");
  if (closer) act("/api/close", {view_id: closer.dataset.close}, () => "modal closed");
});

document.addEventListener("submit", e => {
  e.preventDefault();
  const form = e.target;
  if (form.id === "bar") {
    act("/api/command", {command: $("line").value}, d => "sent; the bot acknowledged in " + d.ms + " ms");
  } else if (form.dataset.view) {
    const values = {};
    for (const el of form.elements) if (el.name && (el.type !== "radio" || el.checked)) values[el.name] = el.value;
    act("/api/submit", {view_id: form.dataset.view, values}, d => d.ok ? "submitted" : "the form has errors");
  }
});

function advance(by) {
  act("/api/advance", {by}, d => {
    const done = Object.entries(d.sweep).filter(([, v]) => v.length).map(([k, v]) => k + ": " + v.length);
    return "clock moved to " + d.now + "; sweep: " + (done.join(", ") || "nothing was due");
  });
}

async function capacity() {
  try {
    const rows = (await call("/api/capacity")).pools;
    const table = document.createElement("table");
    for (const row of [["cluster", "tier", "capacity", "reserved", "free"], ...rows.map(Object.values)]) {
      const tr = table.insertRow();
      for (const cell of row) tr.insertCell().textContent = cell;
    }
    $("capacity").replaceChildren(rows.length ? table : "No capacity recorded yet: it is synced at the first placement.");
  } catch (e) { say(e.message, true); }
}

const openHome = () => act("/api/home", {}, () => "App Home opened");
$("user").addEventListener("change", () => { version = ""; openHome(); });
openHome();
setInterval(poll, 1000);
"""


def _document() -> str:
    options = "".join(f'<option value="{uid}">{html.escape(name)}</option>' for uid, name in USERS.items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gpulease dev</title>
<style>{CSS}</style></head><body>
<header><h1>gpulease dev</h1>
<label>You are <select id="user" name="user">{options}</select></label>
<span class="muted">clock: <span id="now">…</span></span>
<span><button type="button" class="btn" onclick="advance('1h')">advance time 1h</button>
<button type="button" class="btn" onclick="advance('1d')">advance time 1d</button>
<button type="button" class="btn" onclick="capacity()">show capacity</button></span></header>
<form id="bar"><input id="line" value="/gpu-namespace" aria-label="slash command"
 placeholder="/gpu-namespace, /gpu-namespace list, /gpu-admin capacity"><button class="btn primary">Send</button></form>
<div id="status" class="muted">Type a slash command, or click a button below.</div>
<div id="capacity"></div>
<section id="modal-panel" hidden><div id="modal"></div></section>
<main>
<section class="pane"><h2>Only visible to you</h2><div id="ephemerals"></div>
<h2>App Home <button type="button" class="btn" onclick="openHome()">Open App Home</button></h2><div id="home"></div></section>
<section class="pane"><h2>#gpu-approvals</h2><div id="approvals"></div></section>
<section class="pane"><h2>Direct messages with gpulease</h2><div id="dms"></div></section>
</main>
<script>{SCRIPT}</script></body></html>"""


HTML = _document()
