// The live map: a snapshot then deltas from /events (Server-Sent Events), drawn on a canvas.
// Once a frame with entities is drawn, document.title reads
// "entities: N players: P updates: U" (the readiness signal the Chromium test waits for).
"use strict";

const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
const statusLine = document.getElementById("status");
const totals = document.getElementById("totals");
const regionRows = document.getElementById("regions");

const STYLE = {
  tree: { color: "#3c9a45", r: 2.5, round: true },
  rock: { color: "#9e9e9e", r: 2.5, round: true },
  wood: { color: "#c58b4a", r: 1.8, round: false },
  stone: { color: "#e0e0e0", r: 1.8, round: false },
  wall: { color: "#ff7043", r: 3, round: false },
  player: { color: "#4fc3f7", r: 4, round: true },
};
const ORDER = ["tree", "rock", "wood", "stone", "wall", "player"];

let world = null;            // { regions, region_size, cell_size, area }
const entities = new Map();  // id -> { k, x, z, hp, o }
let updates = 0;
let dirty = false;
let bounds = null;           // { x0, z0, x1, z1, scale }

function layout() {
  if (!world || world.regions.length === 0) return;
  let x0 = Infinity, z0 = Infinity, x1 = -Infinity, z1 = -Infinity;
  for (const [rx, rz] of world.regions) {
    x0 = Math.min(x0, rx); z0 = Math.min(z0, rz);
    x1 = Math.max(x1, rx + 1); z1 = Math.max(z1, rz + 1);
  }
  const size = world.region_size;
  const side = Math.max(200, Math.min(window.innerWidth - 360, window.innerHeight - 30));
  canvas.width = side;
  canvas.height = side;
  const span = Math.max(x1 - x0, z1 - z0) * size;
  bounds = { x0: x0 * size, z0: z0 * size, x1: x1 * size, z1: z1 * size, scale: side / span };
}

function toCanvas(x, z) {
  return [(x - bounds.x0) * bounds.scale, (z - bounds.z0) * bounds.scale];
}

function drawGrid() {
  const { x0, z0, x1, z1 } = bounds;
  ctx.lineWidth = 1;
  ctx.strokeStyle = "rgba(255,255,255,0.05)";
  ctx.beginPath();
  for (let x = x0; x <= x1; x += world.cell_size) {
    const [px] = toCanvas(x, z0);
    ctx.moveTo(px + 0.5, 0); ctx.lineTo(px + 0.5, canvas.height);
  }
  for (let z = z0; z <= z1; z += world.cell_size) {
    const [, pz] = toCanvas(x0, z);
    ctx.moveTo(0, pz + 0.5); ctx.lineTo(canvas.width, pz + 0.5);
  }
  ctx.stroke();
  ctx.strokeStyle = "rgba(255,255,255,0.45)";
  ctx.lineWidth = 2;
  ctx.font = "12px sans-serif";
  ctx.fillStyle = "rgba(255,255,255,0.6)";
  for (const [rx, rz] of world.regions) {
    const [px, pz] = toCanvas(rx * world.region_size, rz * world.region_size);
    const side = world.region_size * bounds.scale;
    ctx.strokeRect(px + 1, pz + 1, side - 2, side - 2);
    ctx.fillText(`region (${rx}, ${rz})`, px + 6, pz + 16);
  }
}

function draw() {
  dirty = false;
  if (!bounds) return;
  ctx.fillStyle = "#1b261d";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawGrid();
  const byKind = {};
  for (const e of entities.values()) (byKind[e.k] ||= []).push(e);
  let players = 0;
  for (const kind of ORDER) {
    const list = byKind[kind] || [];
    const style = STYLE[kind];
    ctx.fillStyle = style.color;
    for (const e of list) {
      const [px, pz] = toCanvas(e.x, e.z);
      if (style.round) {
        ctx.beginPath();
        ctx.arc(px, pz, style.r, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.fillRect(px - style.r, pz - style.r, 2 * style.r, 2 * style.r);
      }
    }
    if (kind === "player") players = list.length;
  }
  totals.textContent = `${entities.size} entities, ${players} players, ${updates} updates`;
  if (entities.size > 0) {
    document.title = `entities: ${entities.size} players: ${players} updates: ${updates}`;
  }
}

function markDirty() {
  if (!dirty) {
    dirty = true;
    requestAnimationFrame(draw);
  }
}

function fmt(v) {
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : "";
}

function showStats(regions) {
  const rows = [];
  for (const r of regions || []) {
    const cells = [`(${r.x}, ${r.z})`, r.frame, r.frames_per_sec, r.inputs_per_sec,
      r.players, r.resources, r.items, r.structures];
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = typeof c === "string" ? c : fmt(c);
      tr.appendChild(td);
    }
    rows.push(tr);
  }
  regionRows.replaceChildren(...rows);
}

function onMessage(message) {
  let m;
  try { m = JSON.parse(message.data); } catch (_) { return; }
  if (m.type === "snapshot") {
    world = m.world;
    entities.clear();
    for (const e of m.entities) entities.set(e.i, e);
    updates = m.updates;
    layout();
    showStats(m.stats);
    markDirty();
  } else if (m.type === "delta") {
    for (const e of m.upserts) entities.set(e.i, e);
    for (const id of m.removes) entities.delete(id);
    updates += m.upserts.length + m.removes.length;
    markDirty();
  } else if (m.type === "stats") {
    showStats(m.regions);
  }
}

const events = new EventSource("/events");
events.onopen = () => { statusLine.textContent = "live"; };
events.onerror = () => { statusLine.textContent = "disconnected; reconnecting…"; };
events.onmessage = onMessage;
window.addEventListener("resize", () => { layout(); markDirty(); });
