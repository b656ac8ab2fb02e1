// Admin page of a vcsledger node: reads the node's own JSON API and shows
// it. Everything is written with textContent, never as HTML, since keys and
// error messages come from the network.
"use strict";

const $ = (id) => document.getElementById(id);

async function get(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await resp.json();
  if (!resp.ok) {
    const e = body && body.error ? body.error.code + ": " + body.error.message : resp.statusText;
    throw new Error(path + ": " + e);
  }
  return body;
}

function short(hex) {
  return hex ? hex.slice(0, 16) + "…" : "";
}

function time(ms) {
  return ms ? new Date(ms).toISOString().replace(".000Z", "Z") : "";
}

function fill(id, rows) {
  const tbody = $(id);
  tbody.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const v of row) {
      const td = document.createElement("td");
      td.textContent = v === undefined || v === null ? "" : String(v);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = tbody.parentElement.querySelectorAll("th").length;
    td.className = "empty";
    td.textContent = "none";
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
}

function list(id, pairs) {
  const dl = $(id);
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v === undefined || v === null ? "" : String(v);
    dl.append(dt, dd);
  }
}

async function refresh() {
  try {
    const st = await get("/v1/status");
    $("chain").textContent = st.chain + " (" + st.engine + ")";
    const m = st.mining;
    list("status", [
      ["height", st.height],
      ["records", st.log_size],
      ["genesis", st.genesis],
      ["node", st.node_id],
      ...(m ? [
        ["mining", !m.miner ? "off (replica)" : (m.active ? "on" : "idle") + ", " + m.workers + " workers"],
        ["hash rate", m.miner ? Math.round(m.hash_rate).toLocaleString() + " hashes/s" : ""],
        ["blocks mined", m.blocks_mined],
        ["difficulty", m.bits + " bits"],
        ["chain work", m.chain_work],
        ["side blocks", m.side_blocks],
      ] : [
        ["validator key", st.validator_key || "not a validator"],
        ["consensus", "round " + st.round + (st.step ? " " + st.step : "")],
      ]),
      ["syncing", st.syncing],
      ["peers", st.peers],
      ["mempool", st.mempool + " records, " + st.mempool_bytes + " bytes"],
      ["fetch errors", st.fetch_errors],
      ["invalid messages", st.invalid_messages],
      ["version", st.version],
    ]);
    const cp = await get("/v1/checkpoint");
    list("head", [
      ["height", cp.height],
      ["hash", cp.hash],
      ["time", time(cp.time)],
      ["log", cp.log_size + " " + cp.log_root],
      ["certificate", cp.certificate ? (cp.certificate.match(/^sig /gm) || []).length + " signatures" : "none"],
    ]);
    const from = Math.max(0, st.height - 19);
    const blocks = await get("/v1/blocks?from=" + from + "&limit=20");
    fill("blocks", blocks.blocks.reverse().map((b) =>
      [b.height, short(b.hash), time(b.time), b.records, b.log_size, short(b.log_root)]));
    const mp = await get("/v1/mempool?limit=100");
    fill("mempool", mp.pending.map((p) => [
      p.key, p.added, p.attestations + " / " + p.attestations_needed,
      p.attested ? p.attested.tree : "", p.last_error || ""]));
    const vs = await get("/v1/validators");
    $("quorum").textContent = m ? "proof of work: anyone mines; a record needs " + vs.attestations_needed + " attestations" :
      vs.validators.length + " validators; a block needs " + vs.quorum +
      " precommits, a record " + vs.attestations_needed + " attestations";
    fill("validators", vs.validators.map((v) => [v.name + (v.self ? " (this node)" : ""), v.key, v.online]));
    const peers = await get("/v1/peers");
    fill("peers", peers.peers.map((p) => [
      p.id, p.name || short(p.validator_key), p.direction,
      p.latency_ms ? p.latency_ms.toFixed(1) + " ms" : "", (p.addrs || []).join(" ")]));
    const ev = await get("/v1/evidence?limit=50");
    fill("evidence", ev.evidence.map((e) => [e.kind, short(e.validator), e.height, e.added, e.data]));
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = String(err.message || err);
  }
}

$("lookup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("key").value.trim();
  const out = $("record");
  try {
    const resp = await fetch("/v1/records/" + encodeURIComponent(key), { headers: { Accept: "application/json" } });
    const body = await resp.json();
    out.textContent = resp.status + "\n" + JSON.stringify(body, null, 2);
  } catch (err) {
    out.textContent = String(err.message || err);
  }
});

refresh();
setInterval(refresh, 5000);
