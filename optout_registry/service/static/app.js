/*
 * The rights-holder page: search → prove the domain → browse records (chart, rule, evidence) → download the
 * bundle → check a proof here in the browser (verify.js). Everything from the server is shown with textContent,
 * never as HTML: URLs and rules come from crawled sites and must not be able to run script in this page.
 */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const API = "/api/v1";
  const PAGE = 20;
  const state = { domain: null, token: null, cursors: [null], page: 0, next: null, registry: null };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // Text that may wrap only after punctuation (/ . ? & = _ - : ; ,), so a long URL or rule breaks between its
  // parts and never inside a word. Built from text nodes and <wbr> elements: still never parsed as HTML.
  function breakable(text, cls) {
    const e = el("td", null, cls);
    const parts = String(text === undefined || text === null ? "" : text).split(/(?<=[\/.?&=_\-:;,])/);
    parts.forEach((part, i) => {
      if (i) e.appendChild(document.createElement("wbr"));
      e.appendChild(document.createTextNode(part));
    });
    return e;
  }

  // The protocol id and where of a record: what its rule says it was, else what the registry's table maps its
  // mechanism to (records keep the mechanism they were logged with; people read protocol ids). Both the ids and
  // the table come from the server's one vocabulary (optout_registry/vocabulary.py, via the discovery document).
  function describe(r) {
    const rule = r.rule && typeof r.rule === "object" ? r.rule : {};
    const ids = (state.registry && state.registry.protocols) || [];
    const known = (state.registry && state.registry.mechanisms) || {};
    const mapped = known[r.mechanism] || (ids.includes(r.mechanism) ? [r.mechanism, ""] : null);
    if (ids.includes(rule.protocol)) {
      return [rule.protocol, typeof rule.where === "string" ? rule.where : mapped ? mapped[1] : ""];
    }
    return mapped || [String(r.mechanism || "?"), ""];
  }

  function ruleText(r) {
    const rule = r.rule;
    if (!rule || typeof rule !== "object") return rule === undefined || rule === null ? "" : String(rule);
    if (typeof rule.rule === "string" && rule.rule) return rule.rule;
    return Object.entries(rule)
      .filter(([k, v]) => !["protocol", "where", "mode", "source"].includes(k) && v !== "")
      .map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v))
      .join("; ");
  }

  function say(id, text, kind) {
    const e = $(id);
    e.textContent = text;
    e.classList.remove("ok", "bad");
    if (kind) e.classList.add(kind);
  }

  function tokenKey(domain) {
    return "optout-holder-token:" + domain;
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (state.token && !options.anonymous) headers.Authorization = "Bearer " + state.token;
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    });
    if (!resp.ok) {
      let detail = resp.status + " " + resp.statusText;
      try {
        const body = await resp.json();
        if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (e) {
        /* not JSON */
      }
      const err = new Error(detail);
      err.status = resp.status;
      throw err;
    }
    return options.raw ? resp : resp.json();
  }

  // -- registry header ----------------------------------------------------------------------------------------

  async function loadRegistry() {
    try {
      const info = await api("/.well-known/optout-registry", { anonymous: true });
      state.registry = info;
      $("registry-origin").textContent = info.origin;
      $("registry-operator").textContent = info.operator || "—";
      $("registry-contact").textContent = info.contact || "—";
      if (!$("pinned-vkey").value && info.vkey) $("pinned-vkey").value = info.vkey;
      const cp = await api(API + "/checkpoint", { anonymous: true });
      $("registry-size").textContent = cp.size.toLocaleString("en");
    } catch (e) {
      $("registry-size").textContent = "unavailable (" + e.message + ")";
    }
  }

  // -- search and ownership -----------------------------------------------------------------------------------

  async function search(ev) {
    ev.preventDefault();
    const domain = $("domain").value.trim();
    say("site-summary", "Searching…");
    $("records").hidden = true;
    try {
      const summary = await api(API + "/sites/" + encodeURIComponent(domain), { anonymous: true });
      state.domain = summary.site;
      state.token = sessionStorage.getItem(tokenKey(summary.site));
      $("complaint-domain").value = summary.site;
      say(
        "site-summary",
        summary.records.toLocaleString("en") + " record(s) about " + summary.site + " in a log of " +
          summary.checkpoint_size.toLocaleString("en") + " entries.",
        "ok"
      );
      $("ownership").hidden = false;
      $("challenge").hidden = true;
      say("verify-status", "");
      if (state.token) {
        try {
          const who = await api(API + "/session");
          if (who.domain === state.domain) {
            say("verify-status", "You have proven control of " + state.domain + ".", "ok");
            return loadHolderView();
          }
        } catch (e) {
          sessionStorage.removeItem(tokenKey(summary.site));
        }
        state.token = null;
      }
    } catch (e) {
      say("site-summary", e.message, "bad");
    }
  }

  async function startChallenge() {
    try {
      const ch = await api(API + "/ownership/challenges", { method: "POST", json: { domain: state.domain } });
      state.challenge = ch;
      $("challenge-url").textContent = ch.http_url;
      $("challenge-token").textContent = ch.token;
      $("challenge-dns").textContent = ch.dns_name + " TXT " + ch.dns_value;
      $("challenge-expires").textContent = ch.expires_at;
      $("challenge").hidden = false;
      say("verify-status", "");
    } catch (e) {
      say("verify-status", e.message, "bad");
    }
  }

  async function verifyChallenge() {
    const ch = state.challenge;
    if (!ch) return;
    say("verify-status", "Checking " + ch.http_url + " …");
    try {
      const grant = await api(API + "/ownership/challenges/" + encodeURIComponent(ch.challenge_id) + "/verify", {
        method: "POST",
        json: { secret: ch.secret },
        anonymous: true,
      });
      state.token = grant.access_token;
      sessionStorage.setItem(tokenKey(grant.domain), grant.access_token);
      say("verify-status", "Verified: you control " + grant.domain + " (access until " + grant.expires_at + ").", "ok");
      $("challenge").hidden = true;
      await loadHolderView();
    } catch (e) {
      say("verify-status", e.message, "bad");
    }
  }

  // -- the holder's view --------------------------------------------------------------------------------------

  async function loadHolderView() {
    $("records").hidden = false;
    $("records-site").textContent = state.domain;
    state.cursors = [null];
    state.page = 0;
    await Promise.all([loadStats(), loadPage()]);
  }

  const COLOURS = ["#2453a6", "#d2691e", "#2e8b57", "#8b3a8b", "#b8860b", "#4682b4", "#a1261b", "#556b2f"];

  async function loadStats() {
    const stats = await api(API + "/sites/" + encodeURIComponent(state.domain) + "/stats");
    $("stats-line").textContent =
      stats.records + " record(s); first " + (stats.first_observed || "—") + ", last " +
      (stats.last_observed || "—") + "; by decision: " +
      Object.entries(stats.by_decision).map(([k, v]) => k + " " + v).join(", ");
    drawChart(stats);
  }

  function drawChart(stats) {
    const box = $("chart");
    box.replaceChildren();
    const days = stats.by_day;
    if (!days.length) return;
    const mechanisms = Object.keys(stats.by_protocol);
    const colour = (m) => COLOURS[mechanisms.indexOf(m) % COLOURS.length];
    const ns = "http://www.w3.org/2000/svg";
    const W = 1000;
    const H = 160;
    const max = Math.max(...days.map((d) => d.count));
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + 20));
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const bw = W / days.length;
    days.forEach((d, i) => {
      let y = H;
      for (const m of mechanisms) {
        const n = d.by_protocol[m] || 0;
        if (!n) continue;
        const h = (n / max) * (H - 10);
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", String(i * bw + bw * 0.1));
        rect.setAttribute("width", String(Math.max(1, bw * 0.8)));
        rect.setAttribute("y", String(y - h));
        rect.setAttribute("height", String(h));
        rect.setAttribute("fill", colour(m));
        const title = document.createElementNS(ns, "title");
        title.textContent = d.date + ": " + n + " × " + m;
        rect.appendChild(title);
        svg.appendChild(rect);
        y -= h;
      }
    });
    for (const [i, anchor] of [[0, "start"], [days.length - 1, "end"]]) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", String(anchor === "start" ? 0 : W));
      t.setAttribute("y", String(H + 16));
      t.setAttribute("text-anchor", anchor);
      t.setAttribute("font-size", "13");
      t.textContent = days[i].date;
      svg.appendChild(t);
    }
    box.appendChild(svg);
    const legend = el("div", null, "legend");
    legend.appendChild(el("span", "records per day (max " + max + "):"));
    for (const m of mechanisms) {
      const sw = el("span", null, "swatch");
      sw.style.background = colour(m);
      legend.append(sw, el("span", m + " " + stats.by_protocol[m]));
    }
    box.appendChild(legend);
  }

  function filters() {
    const q = new URLSearchParams();
    if ($("since").value) q.set("since", $("since").value);
    if ($("until").value) q.set("until", $("until").value);
    return q;
  }

  async function loadPage() {
    const q = filters();
    q.set("limit", String(PAGE));
    const cursor = state.cursors[state.page];
    if (cursor !== null) q.set("cursor", String(cursor));
    const page = await api(API + "/sites/" + encodeURIComponent(state.domain) + "/records?" + q.toString());
    const body = $("records-table").tBodies[0];
    $("proof-home").after($("proof-result")); // back to its section before the rows it may sit under go
    body.replaceChildren();
    for (const item of page.records) body.appendChild(recordRow(item));
    state.next = page.next_cursor;
    $("prev-page").disabled = state.page === 0;
    $("next-page").disabled = page.next_cursor === null;
    $("page-info").textContent = "page " + (state.page + 1) + " · " + page.records.length + " shown";
  }

  function recordRow(item) {
    const r = item.record;
    const tr = el("tr");
    tr.dataset.index = String(item.index);
    const [protocol, where] = describe(r);
    const protoTd = el("td", null, "protocol");
    protoTd.appendChild(el("span", protocol, "chip"));
    if (where) protoTd.appendChild(el("span", where, "where"));
    protoTd.title = "logged as mechanism " + r.mechanism;
    // observed: the date over the time to the second (the full value as the tooltip)
    const when = String(r.observed_at || "");
    const whenTd = el("td", null, "nowrap");
    whenTd.title = when;
    whenTd.append(el("div", when.slice(0, 10)), el("div", when.slice(11, 19) + (when.length > 19 ? " UTC" : "")));
    tr.append(
      el("td", item.index),
      whenTd,
      protoTd,
      breakable(r.decision),
      breakable(r.target && r.target.url, "url"),
      breakable(ruleText(r), "rule")
    );
    const checkTd = el("td", null, "actions");
    if (r.evidence && r.evidence.sha256) {
      const b = el("button", "evidence", "small evidence-btn");
      b.type = "button";
      b.addEventListener("click", () => showEvidence(item.index, r.evidence));
      checkTd.appendChild(b);
    }
    const v = el("button", "verify", "small verify-btn");
    v.type = "button";
    v.addEventListener("click", () => checkProof(item.index));
    checkTd.appendChild(v);
    tr.append(checkTd);
    return tr;
  }

  async function showEvidence(index, ev) {
    $("evidence-box").hidden = false;
    $("evidence-sha").textContent = ev.sha256 + " · " + ev.url + " · HTTP " + ev.status + " · " + ev.fetched_at;
    try {
      const resp = await api(API + "/sites/" + encodeURIComponent(state.domain) + "/records/" + index + "/evidence", {
        raw: true,
      });
      const bytes = new Uint8Array(await resp.arrayBuffer());
      const digest = OptoutVerify.hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
      const note = digest === ev.sha256 ? "[SHA-256 matches the record]\n" : "[SHA-256 DOES NOT MATCH the record]\n";
      $("evidence-view").textContent = note + new TextDecoder("utf-8", { fatal: false }).decode(bytes.slice(0, 65536));
    } catch (e) {
      $("evidence-view").textContent = e.message;
    }
  }

  // The proof's result is shown right under the record it is about (the same elements, moved there).
  function proofRowFor(index) {
    const row = document.querySelector("#records-table tbody tr[data-index='" + index + "']");
    const result = $("proof-result");
    $("proof-home").after(result); // out of the previous record's row before that row goes
    const old = document.querySelector("#records-table tr.proof-row");
    if (old) old.remove();
    if (!row) return;
    const tr = el("tr", null, "proof-row");
    const td = el("td");
    td.colSpan = row.children.length;
    td.appendChild(result);
    tr.appendChild(td);
    row.after(tr);
  }

  async function checkProof(index) {
    const status = $("proof-status");
    const steps = $("proof-steps");
    proofRowFor(index);
    steps.replaceChildren();
    status.dataset.state = "";
    status.textContent = "Checking record #" + index + " …";
    try {
      const p = await api(API + "/sites/" + encodeURIComponent(state.domain) + "/records/" + index);
      const result = await OptoutVerify.verifyRecord({
        leaf: p.leaf,
        index: p.index,
        tlogProof: p.tlog_proof,
        checkpoint: p.checkpoint.note,
        vkey: $("pinned-vkey").value,
        site: state.domain,
      });
      for (const s of result.steps) {
        const li = el("li", s.name + (s.detail ? ": " + s.detail : ""), s.ok ? "ok" : "bad");
        steps.appendChild(li);
      }
      status.dataset.state = result.ok ? "ok" : "fail";
      status.dataset.index = String(index);
      status.textContent = result.ok
        ? "Verified in your browser: record #" + index + " is in the signed log of " + result.size + " entries."
        : "NOT verified: " + result.steps[result.steps.length - 1].detail;
      status.scrollIntoView({ block: "nearest" });
    } catch (e) {
      status.dataset.state = "fail";
      status.textContent = e.message;
    }
  }

  async function download() {
    say("download-status", "Preparing the bundle…");
    try {
      const q = filters();
      const path = API + "/sites/" + encodeURIComponent(state.domain) + "/export.zip" + (q.toString() ? "?" + q : "");
      const resp = await api(path, { raw: true });
      const blob = await resp.blob();
      const cd = resp.headers.get("Content-Disposition") || "";
      const m = /filename="([^"]+)"/.exec(cd);
      const name = m ? m[1] : "export.zip";
      const a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      say("download-status", "Downloaded " + name + " (" + blob.size.toLocaleString("en") + " bytes).", "ok");
    } catch (e) {
      say("download-status", e.message, "bad");
    }
  }

  async function checkHistory() {
    try {
      const old = $("old-checkpoint").value.replace(/\r\n/g, "\n");
      const vkey = $("pinned-vkey").value;
      const older = await OptoutVerify.openCheckpoint(old.endsWith("\n") ? old : old + "\n", vkey);
      if (older.size === 0n) return say("history-status", "Consistent: every log extends the empty one.", "ok");
      const now = await api(API + "/checkpoint", { anonymous: true });
      const proof = await api(API + "/proofs/consistency?first=" + older.size + "&second=" + now.size, {
        anonymous: true,
      });
      const res = await OptoutVerify.verifyHistory(old, now.note, proof.proof, vkey);
      say("history-status", "Consistent: the log grew from " + res.first + " to " + res.second +
        " entries by appending only.", "ok");
    } catch (e) {
      say("history-status", "Not verified: " + e.message, "bad");
    }
  }

  async function complain(ev) {
    ev.preventDefault();
    try {
      const receipt = await api(API + "/complaints", {
        method: "POST",
        json: {
          domain: $("complaint-domain").value,
          contact: $("complaint-contact").value,
          kind: $("complaint-kind").value,
          message: $("complaint-message").value,
        },
      });
      say("complaint-receipt", "Received as #" + receipt.seq + " at " + receipt.received_at + ". Receipt: " +
        receipt.hash, "ok");
    } catch (e) {
      say("complaint-receipt", e.message, "bad");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", search);
    $("start-challenge").addEventListener("click", startChallenge);
    $("verify-btn").addEventListener("click", verifyChallenge);
    $("filter-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.cursors = [null];
      state.page = 0;
      loadPage().catch((e) => say("page-info", e.message, "bad"));
    });
    $("next-page").addEventListener("click", () => {
      state.cursors[state.page + 1] = state.next;
      state.page += 1;
      loadPage().catch((e) => say("page-info", e.message, "bad"));
    });
    $("prev-page").addEventListener("click", () => {
      state.page = Math.max(0, state.page - 1);
      loadPage().catch((e) => say("page-info", e.message, "bad"));
    });
    $("download-btn").addEventListener("click", download);
    $("check-history").addEventListener("click", checkHistory);
    $("complaint-form").addEventListener("submit", complain);
    loadRegistry();
  });
})();
