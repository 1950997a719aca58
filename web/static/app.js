// otabridge web console. Plain JavaScript, no build step. Every URL is relative, so the page works under
// Home Assistant's ingress path prefix. State comes from the live feed (api/events, Server-Sent Events);
// actions are POST api/request/<path> with the same JSON as the MQTT requests.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  csrf: "",
  values: new Map(), // key -> value from the live feed
  events: [],
  serverOffset: 0, // server clock minus ours, ms
  sort: { key: "name", dir: 1 },
  rows: new Map(), // ieee -> <tr>
  source: null,
};

// ---- formatting ----
function fmtBytes(n) {
  if (n == null) return "";
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(2) + " MiB";
}
function fmtDuration(s) {
  if (s == null || !isFinite(s)) return "";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + sec + "s";
  return sec + "s";
}
function fmtTime(t) {
  const d = new Date(t);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}
function hex(n, digits) {
  return n == null ? "" : "0x" + n.toString(16).padStart(digits, "0");
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

// ---- requests ----
// api runs a bridge request and shows its error sentence in errEl (next to the control that caused it).
async function api(path, body, errEl, button) {
  if (errEl) errEl.textContent = "";
  if (button) button.disabled = true;
  try {
    const r = await fetch("api/request/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let resp;
    try {
      resp = await r.json();
    } catch {
      resp = { status: "error", error: "the bridge answered HTTP " + r.status };
    }
    if (r.status === 401) showSignIn();
    if (resp.status !== "ok" && errEl) errEl.textContent = resp.error || "refused";
    return resp;
  } catch (e) {
    const resp = { status: "error", error: "the bridge is not reachable: " + e.message };
    if (errEl) errEl.textContent = resp.error;
    return resp;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- session and live feed ----
async function start() {
  let info;
  try {
    const r = await fetch("api/session", { credentials: "same-origin" });
    info = await r.json();
  } catch (e) {
    $("live").textContent = "offline";
    setTimeout(start, 3000);
    return;
  }
  if (!info.signed_in) {
    showSignIn();
    return;
  }
  state.csrf = info.csrf || "";
  $("signout").hidden = !info.auth_required || !info.csrf;
  connect();
}

function showSignIn() {
  const d = $("signin");
  if (!d.open) d.showModal();
  $("signin-password").focus();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  const r = await fetch("api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("signin-password").value }),
    credentials: "same-origin",
  });
  const resp = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("signin-error").textContent = resp.error || "sign-in failed";
    return;
  }
  $("signin-password").value = "";
  $("signin").close();
  state.csrf = resp.csrf;
  $("signout").hidden = false;
  connect();
});

$("signout").addEventListener("click", async () => {
  await fetch("api/logout", { method: "POST", headers: { "X-CSRF-Token": state.csrf }, credentials: "same-origin" });
  if (state.source) state.source.close();
  $("signout").hidden = true;
  showSignIn();
});

function connect() {
  if (state.source) state.source.close();
  const es = new EventSource("api/events");
  state.source = es;
  es.addEventListener("snapshot", (m) => {
    const snap = JSON.parse(m.data);
    state.values = new Map(Object.entries(snap.values || {}));
    state.events = (snap.events || []).slice();
    state.serverOffset = Date.parse(snap.server_time) - Date.now();
    setLive(true);
    render();
  });
  es.addEventListener("set", (m) => {
    const u = JSON.parse(m.data);
    if (u.value === null) state.values.delete(u.key);
    else state.values.set(u.key, u.value);
    render();
  });
  es.addEventListener("event", (m) => {
    state.events.push(JSON.parse(m.data));
    if (state.events.length > 50) state.events.shift();
    render();
  });
  es.onerror = () => {
    setLive(false);
    if (es.readyState === EventSource.CLOSED) setTimeout(start, 3000); // e.g. signed out
  };
}

function setLive(on) {
  const p = $("live");
  p.textContent = on ? "live" : "reconnecting…";
  p.className = "pill " + (on ? "ok" : "bad");
}

// ---- model ----
function otaStates() {
  const out = new Map();
  for (const [k, v] of state.values) {
    if (k.endsWith("/ota") && v && v.ieee) out.set(v.ieee, v);
  }
  return out;
}

function deviceList() {
  const devices = state.values.get("bridge/devices") || [];
  const ota = otaStates();
  return devices.map((d) => {
    const o = ota.get(d.ieee) || {};
    const ref = o.target || o.available;
    return {
      ieee: d.ieee,
      name: d.friendly_name,
      model: d.model || "",
      vendor: d.manufacturer || "",
      power: d.power_source || "",
      installed: d.installed_version || o.installed_version || "",
      available: ref && ref.version ? ref.version : "",
      state: o.state || d.ota_state || "idle",
      progress: o.progress,
      rate: o.rate,
      remaining: o.remaining,
      bytes: o.bytes,
      size: o.size,
      position: o.queue_position || 0,
      lastError: o.last_error || "",
      device: d,
      ota: o,
    };
  });
}

const sorters = {
  name: (d) => d.name.toLowerCase(),
  model: (d) => d.model.toLowerCase(),
  vendor: (d) => d.vendor.toLowerCase(),
  power: (d) => d.power,
  installed: (d) => d.installed,
  available: (d) => d.available,
  state: (d) => d.state,
  progress: (d) => (d.progress == null ? -1 : d.progress),
};

// ---- rendering ----
let frame = 0;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    renderHeader();
    renderDevices();
    renderLists();
    renderImages();
    renderEvents();
  });
}

function renderHeader() {
  const info = state.values.get("bridge/info") || {};
  const status = state.values.get("web/status") || {};
  const radio = info.radio || {};
  const rp = $("radio");
  rp.textContent = "radio " + (info.radio_state || "…") + (radio.channel ? " · ch " + radio.channel : "");
  rp.className = "pill " + (info.radio_state === "online" ? "ok" : "bad");
  rp.title = [radio.type, radio.port, radio.firmware].filter(Boolean).join(" · ");
  const mp = $("mqtt");
  mp.textContent = "MQTT " + (status.mqtt_connected ? "connected" : "disconnected");
  mp.className = "pill " + (status.mqtt_connected ? "ok" : "bad");
  mp.title = status.mqtt_server || "";
  $("counts").textContent = (info.active_transfers || 0) + " running · " + (info.queue_length || 0) + " queued";
  $("version").textContent = info.version ? "version " + info.version : "";
  renderPermitJoin();
}

function permitRemaining() {
  const info = state.values.get("bridge/info") || {};
  if (!info.permit_join || !info.permit_join_end) return 0;
  return Math.max(0, (Date.parse(info.permit_join_end) - (Date.now() + state.serverOffset)) / 1000);
}

function renderPermitJoin() {
  const left = permitRemaining();
  const b = $("permit-join");
  const c = $("permit-countdown");
  if (left > 0) {
    b.textContent = "Stop joining";
    b.dataset.open = "1";
    c.hidden = false;
    c.textContent = "joining open · " + fmtDuration(left) + " left";
  } else {
    b.textContent = "Permit join";
    b.dataset.open = "";
    c.hidden = true;
  }
}
setInterval(renderPermitJoin, 1000);

function renderDevices() {
  const all = deviceList();
  const q = $("filter").value.trim().toLowerCase();
  const shown = all.filter((d) =>
    !q || [d.name, d.ieee, d.model, d.vendor, d.state, d.power, d.installed, d.available].some((s) => s.toLowerCase().includes(q)));
  const key = sorters[state.sort.key] || sorters.name;
  shown.sort((a, b) => {
    const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : a.name.localeCompare(b.name)) * state.sort.dir;
  });
  $("device-count").textContent = q ? "(" + shown.length + " of " + all.length + ")" : "(" + all.length + ")";
  $("no-devices").hidden = all.length > 0;
  for (const th of document.querySelectorAll("#devices th button")) {
    th.parentElement.ariaSort = th.dataset.sort === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none";
  }
  const body = $("device-rows");
  const seen = new Set();
  const versions = versionsByDevice();
  shown.forEach((d, i) => {
    seen.add(d.ieee);
    let tr = state.rows.get(d.ieee);
    if (!tr) {
      tr = makeRow(d.ieee);
      state.rows.set(d.ieee, tr);
    }
    fillRow(tr, d, versions.get(d.ieee) || []);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  for (const [ieee, tr] of state.rows) {
    if (!seen.has(ieee)) {
      tr.remove();
      if (!all.some((d) => d.ieee === ieee)) state.rows.delete(ieee);
    }
  }
}

function makeRow(ieee) {
  const tr = $("device-row").content.firstElementChild.cloneNode(true);
  tr.dataset.ieee = ieee;
  const err = tr.querySelector(".actions .err");
  const note = tr.querySelector(".actions .note");
  const version = () => tr.querySelector("[data-field=version]").value;
  const run = async (button, path, body, done) => {
    note.textContent = "";
    const resp = await api(path, body, err, button);
    if (resp.status === "ok" && done) note.textContent = done(resp.data || {});
  };
  tr.querySelector(".actions").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (!b) return;
    const id = { id: ieee };
    switch (b.dataset.act) {
      case "check":
        return run(b, "device/ota_update/check", id, (d) => (d.update_available ? "update available: " + d.latest_version : "up to date"));
      case "update":
        return run(b, "device/ota_update/update", id, (d) => "updating to " + d.to);
      case "update-version":
        return run(b, "device/ota_update/update", version() ? { id: ieee, version: version() } : id, (d) => "updating to " + d.to);
      case "schedule":
        return run(b, "device/ota_update/schedule", version() ? { id: ieee, version: version() } : id, (d) => "scheduled: " + d.to + " at the next query");
      case "unschedule":
        return run(b, "device/ota_update/unschedule", id, () => "unscheduled");
      case "approve":
        return run(b, "device/ota_update/approve", id, (d) => "approved: " + d.to);
      case "reject":
        return run(b, "device/ota_update/reject", id, () => "rejected");
      case "abort":
        return run(b, "device/ota_update/abort", id, () => "aborted");
      case "interview":
        return run(b, "device/interview", id, () => "interviewed");
      case "rename": {
        const name = tr.querySelector("[data-field=name]");
        return run(b, "device/rename", { id: ieee, name: name.value }, (d) => {
          delete name.dataset.touched; // follow the device's name again
          return "renamed to " + d.to;
        });
      }
    }
  });
  return tr;
}

const busyStates = new Set(["updating", "queued", "scheduled", "waiting_reboot", "verifying"]);

function fillRow(tr, d, versions) {
  const q = (s) => tr.querySelector(s);
  q(".fname").textContent = d.name;
  q(".ieee").textContent = d.name === d.ieee ? "" : d.ieee;
  q(".model").textContent = d.model;
  q(".vendor").textContent = d.vendor;
  q(".power").textContent = d.power;
  q(".installed").textContent = d.installed;
  q(".available").textContent = d.available && d.available !== d.installed ? d.available : "";
  const badge = q(".badge");
  badge.textContent = d.state.replace("_", " ") + (d.position ? " #" + d.position : "");
  badge.className = "badge s-" + d.state;
  q(".lasterror").textContent = d.lastError;
  const bar = q("progress");
  const showBar = d.progress != null && (d.state === "updating" || d.state === "queued");
  bar.hidden = !showBar;
  if (showBar) bar.value = d.progress;
  const parts = [];
  if (showBar) parts.push(d.progress.toFixed(1) + "%");
  if (d.state === "updating" && d.rate) parts.push(fmtBytes(Math.round(d.rate)) + "/s");
  if (d.state === "updating" && d.remaining != null) parts.push(fmtDuration(d.remaining) + " left");
  q(".rate").textContent = parts.join(" · ");
  tr.classList.toggle("no-progress", !showBar && parts.length === 0);
  const show = (act, on) => { q("[data-act=" + act + "]").hidden = !on; };
  show("update", d.state === "available" || d.state === "failed" && !!d.available);
  show("approve", d.state === "approval_pending");
  show("reject", d.state === "approval_pending");
  show("unschedule", d.state === "scheduled");
  show("abort", busyStates.has(d.state) && d.state !== "scheduled");
  const name = q("[data-field=name]");
  if (document.activeElement !== name && !name.dataset.touched) name.value = d.name;
  name.oninput = () => { name.dataset.touched = "1"; };
  const sel = q("[data-field=version]");
  const want = versions.map((v) => v.file_version + "|" + v.label).join(",");
  if (sel.dataset.options !== want) {
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "newest"),
      ...versions.map((v) => el("option", { value: String(v.file_version) }, v.label)));
    sel.value = keep;
    sel.dataset.options = want;
  }
}

// versionsByDevice lists, per device, the images that may be installed on it (newest first).
function versionsByDevice() {
  const out = new Map();
  for (const img of state.values.get("web/images") || []) {
    for (const m of img.matches || []) {
      if (!out.has(m.ieee)) out.set(m.ieee, []);
      out.get(m.ieee).push({ file_version: img.file_version, label: (img.version || hex(img.file_version, 8)) + (m.upgrade ? "" : " (not newer)") });
    }
  }
  for (const list of out.values()) list.sort((a, b) => b.file_version - a.file_version);
  return out;
}

function renderLists() {
  const devices = deviceList();
  const approvals = devices.filter((d) => d.state === "approval_pending");
  const sig = JSON.stringify(devices.map((d) => [d.ieee, d.name, d.state, d.position, d.available, d.installed,
    d.state === "updating" ? [d.progress, d.rate, d.remaining] : 0]));
  if (sig === state.shownLists) return; // unchanged: keep the buttons
  state.shownLists = sig;
  $("approvals").replaceChildren(...approvals.map((d) => {
    const err = el("output", { class: "err", role: "alert" });
    const approve = el("button", { type: "button", class: "primary" }, "Approve");
    const reject = el("button", { type: "button" }, "Reject");
    approve.addEventListener("click", () => api("device/ota_update/approve", { id: d.ieee }, err, approve));
    reject.addEventListener("click", () => api("device/ota_update/reject", { id: d.ieee }, err, reject));
    return el("li", {}, el("span", { class: "grow" }, el("strong", {}, d.name), " asks for ", d.available || "an image",
      el("small", {}, " (installed " + d.installed + ")")), approve, reject, err);
  }));
  $("no-approvals").hidden = approvals.length > 0;

  const running = devices.filter((d) => d.state === "updating" || d.state === "waiting_reboot" || d.state === "verifying");
  const queued = devices.filter((d) => d.state === "queued").sort((a, b) => (a.position || 1e9) - (b.position || 1e9));
  const items = [
    ...running.map((d) => el("li", { class: "running" },
      el("span", { class: "grow" }, el("strong", {}, d.name), " → " + (d.available || ""), " · " + d.state.replace("_", " ")),
      d.state === "updating" ? el("progress", { max: 100, value: d.progress || 0 }) : "",
      el("small", {}, d.state === "updating" ? [(d.progress || 0).toFixed(1) + "%", d.rate ? fmtBytes(Math.round(d.rate)) + "/s" : "", d.remaining != null ? fmtDuration(d.remaining) + " left" : ""].filter(Boolean).join(" · ") : ""))),
    ...queued.map((d) => el("li", {}, el("span", { class: "pos" }, "#" + (d.position || "?")),
      el("span", { class: "grow" }, el("strong", {}, d.name), " → " + (d.available || "")))),
  ];
  $("queue").replaceChildren(...items);
  $("no-queue").hidden = items.length > 0;
}

function renderImages() {
  const images = state.values.get("web/images") || [];
  if (images === state.shownImages) return; // unchanged: keep the rows (and a half-done click)
  state.shownImages = images;
  $("image-count").textContent = "(" + images.length + ")";
  const rows = images.map((img) => {
    const err = el("output", { class: "err", role: "alert" });
    const remove = el("button", { type: "button", class: "danger" }, "Remove");
    remove.addEventListener("click", () => {
      if (confirm("Remove image " + img.id + "?")) api("image/remove", { id: img.id }, err, remove);
    });
    const matches = (img.matches || []).map((m) => m.friendly_name + (m.upgrade ? " ↑" : ""));
    return el("tr", { "data-id": img.id },
      el("td", { class: "mono" }, img.version || hex(img.file_version, 8),
        img.version ? el("small", {}, hex(img.file_version, 8)) : ""),
      el("td", {}, fmtBytes(img.size)),
      el("td", {}, img.header_string || img.file_name || img.id, el("small", {}, hex(img.manufacturer_code, 4) + " / " + hex(img.image_type, 4))),
      el("td", { class: "matches" }, matches.length ? matches.join(", ") : el("span", { class: "muted" }, "none")),
      el("td", {}, img.source + (img.local ? "" : " (remote)")),
      el("td", {}, remove, err));
  });
  $("image-rows").replaceChildren(...rows);
}

function renderEvents() {
  const list = state.events.slice().reverse();
  $("events").replaceChildren(...list.map((ev) => {
    const d = ev.data || {};
    const detail = [d.to || d.version || "", d.reason || d.error || ""].filter(Boolean).join(" · ");
    return el("li", { class: "ev-" + ev.type },
      el("time", {}, fmtTime(ev.time)), " ", el("strong", {}, ev.type.replaceAll("_", " ")),
      " ", d.friendly_name || d.id || "", detail ? el("small", {}, " " + detail) : "");
  }));
}

// ---- controls ----
for (const b of document.querySelectorAll("#devices th button")) {
  b.addEventListener("click", () => {
    const k = b.dataset.sort;
    state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 };
    render();
  });
}
$("filter").addEventListener("input", render);

$("check-all").addEventListener("click", async (ev) => {
  const r = await api("ota/check_all", {}, $("check-all-error"), ev.currentTarget);
  if (r.status === "ok") $("network-note").textContent = "Checked " + r.data.checked + " devices: " + r.data.available.length + " with an update.";
});
$("update-all").addEventListener("click", async (ev) => {
  const r = await api("ota/update_all", {}, $("update-all-error"), ev.currentTarget);
  if (r.status === "ok") $("network-note").textContent = "Queued " + r.data.queued.length + ", skipped " + r.data.skipped.length + ".";
});
$("permit-join").addEventListener("click", (ev) => {
  const open = ev.currentTarget.dataset.open === "1";
  api("permit_join", { time: open ? 0 : 254 }, $("permit-join-error"), ev.currentTarget);
});
$("refresh-images").addEventListener("click", (ev) => api("image/refresh", {}, $("refresh-images-error"), ev.currentTarget));

// Uploads: the file goes base64 in image/add, exactly as over MQTT (same size limit and checks).
async function upload(file) {
  $("upload-result").textContent = "Uploading " + file.name + "…";
  $("upload-error").textContent = "";
  const buf = new Uint8Array(await file.arrayBuffer());
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
  const r = await api("image/add", { data: btoa(bin), file_name: file.name }, $("upload-error"));
  $("upload-result").textContent = r.status === "ok" ? "Added " + (r.data.id || file.name) + "." : "";
}
$("upload").addEventListener("change", (ev) => {
  const f = ev.target.files[0];
  if (f) upload(f).finally(() => { ev.target.value = ""; });
});
const drop = $("drop");
for (const t of ["dragenter", "dragover"]) drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
for (const t of ["dragleave", "drop"]) drop.addEventListener(t, () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  const f = ev.dataTransfer.files[0];
  if (f) upload(f);
});

start();
