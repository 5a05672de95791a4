// The live page of `diffcli serve`: shows the server's snapshots as they come (server-sent events).
// File text only ever goes into the page as text (textContent), never as markup; the SVG comes
// from diffcli's own renderers.
"use strict";

const $ = (id) => document.getElementById(id);
let good = null;      // the last snapshot of a program that ran
let picked = null;    // the row name picked by a click on the graph

function sourceLines(text, span, cls) {
  // the source as numbered lines, with `span` ([start, end] offsets) marked
  const list = $("source");
  list.replaceChildren();
  if (text == null) return;
  const [start, end] = span || [-1, -1];
  let offset = 0;
  for (const written of text.split("\n")) {
    const line = Array.from(written);  // code points, as the server's offsets count them
    const item = document.createElement("li");
    const lineEnd = offset + line.length;
    // the span's part on this line (a place of no width, or one at a line's end, marks one blank)
    const from = Math.max(start, offset), to = Math.min(Math.max(end, start + 1), lineEnd + 1);
    if (span && from < to) {
      const mark = document.createElement("mark");
      mark.className = cls;
      mark.textContent = line.slice(from - offset, to - offset).join("") || " ";
      item.append(line.slice(0, from - offset).join(""), mark, line.slice(Math.min(to - offset, line.length)).join(""));
    } else {
      item.textContent = written;
    }
    list.append(item);
    offset = lineEnd + 1;
  }
}

function table(state, moved) {
  const head = document.createElement("tr");
  for (const column of state.columns) {
    const th = document.createElement("th");
    th.textContent = column;
    head.append(th);
  }
  $("table").tHead.replaceChildren(head);
  const body = $("table").tBodies[0];
  body.replaceChildren();
  const movedCells = new Set(moved.map((m) => m.name + "\u0000" + m.column));
  for (const row of state.rows) {
    const tr = document.createElement("tr");
    tr.dataset.name = row.name;
    if (row.name === state.output) tr.classList.add("output");
    else if (row.input) tr.classList.add("input");
    row.cells.forEach((cell, i) => {
      const td = document.createElement("td");
      td.textContent = cell;
      td.className = i === 0 ? "name" : i === 1 ? "definition" : "number";
      td.dataset.column = state.columns[i];
      if (movedCells.has(row.name + "\u0000" + state.columns[i])) {
        td.classList.add("moved");
        tr.classList.add("moved");
      }
      tr.append(td);
    });
    tr.addEventListener("click", () => pick(row.name, row.span));
    body.append(tr);
  }
  $("caption").textContent = state.caption || "";
  $("notes").textContent = (state.notes || []).join("\n");
}

function graph(state) {
  $("graph").innerHTML = state.svg || "";
  $("graph-note").textContent = state.graph_note || "";
  for (const node of $("graph").querySelectorAll("g.node")) {
    const title = node.querySelector("title");
    const place = title && state.nodes[title.textContent];
    if (!place) continue;
    node.dataset.row = place.row || "";
    node.addEventListener("click", () => pick(place.row, place.span, node));
  }
  const box = $("plot-box");
  box.hidden = !state.plot;
  $("plot").innerHTML = state.plot || "";
  $("plot-note").textContent = state.plot_note || "";
}

function pick(name, span, node) {
  // remembered by the row's name and the node's title, to pick them again in the next snapshot
  picked = { name, title: node ? node.querySelector("title").textContent : null };
  for (const tr of $("table").tBodies[0].rows) tr.classList.toggle("picked", tr.dataset.name === name);
  for (const g of $("graph").querySelectorAll("g.node")) g.classList.toggle("picked", g === node);
  if (good) sourceLines(good.source, span, "pick");
}

function pickAgain(state) {
  if (!picked) return;
  const node = [...$("graph").querySelectorAll("g.node")].find(
    (g) => picked.title && g.querySelector("title").textContent === picked.title);
  const row = state.rows.find((r) => r.name === picked.name);
  if (node && state.nodes[picked.title]) pick(state.nodes[picked.title].row, state.nodes[picked.title].span, node);
  else if (row) pick(row.name, row.span);
  else picked = null;
}

function inputs(state) {
  const form = $("inputs");
  const names = Object.keys(state.inputs);
  if (form.dataset.names !== names.join(",")) {
    form.replaceChildren();
    for (const name of names) {
      const label = document.createElement("label");
      const text = document.createElement("span");
      text.textContent = name;
      const field = document.createElement("input");
      field.type = "number"; field.step = "any"; field.name = name;
      const slider = document.createElement("input");
      slider.type = "range"; slider.step = "any"; slider.name = name + ".slider";
      field.addEventListener("change", () => send(name, field.value));
      slider.addEventListener("input", () => { field.value = slider.value; send(name, slider.value); });
      label.append(text, field, slider);
      form.append(label);
    }
    form.dataset.names = names.join(",");
  }
  for (const name of names) {
    const value = state.inputs[name];
    const field = form.elements.namedItem(name), slider = form.elements.namedItem(name + ".slider");
    if (document.activeElement !== field) field.value = String(value);
    if (document.activeElement !== slider) {
      const reach = Math.max(1, Math.abs(value));
      slider.min = String(value - reach); slider.max = String(value + reach); slider.value = String(value);
    }
  }
}

let sending = null, queued = null;
function send(name, text) {
  const value = Number(text);
  if (text === "" || !Number.isFinite(value) || (good && good.inputs[name] === value)) return;
  queued = Object.assign(queued || {}, { [name]: value });
  if (sending) return;  // one request at a time; the latest values go next
  const go = () => {
    const body = JSON.stringify(queued);
    queued = null;
    sending = fetch("/inputs", { method: "POST", headers: { "Content-Type": "application/json" }, body })
      .finally(() => { sending = null; if (queued) go(); });
  };
  go();
}

function changedNote(moved) {
  const box = $("changed");
  const numbers = moved.filter((m) => m.column);
  box.hidden = moved.length === 0;
  if (!moved.length) return;
  const shown = numbers.slice(0, 8).map((m) => `${m.name} ${m.column}: ${m.before} → ${m.after}`);
  const added = moved.filter((m) => !m.column).map((m) => m.name);
  let text = "changed: " + (shown.join("; ") || "");
  if (numbers.length > 8) text += `; and ${numbers.length - 8} more`;
  if (added.length) text += (shown.length ? "; " : "") + "new: " + added.join(", ");
  box.textContent = text;
}

function show(message) {
  const state = message.state;
  document.body.dataset.version = String(message.version);
  $("title").textContent = "diffcli serve " + state.file;
  if (state.ok) {
    good = state;
    $("error").hidden = true;
    $("results").classList.remove("stale");
    sourceLines(state.source, null, "pick");
    table(state, message.changes || []);
    graph(state);
    inputs(state);
    pickAgain(state);
    changedNote(message.changes || []);
    document.body.dataset.ok = "true";
  } else {
    $("error").hidden = false;
    $("diagnostic").textContent = state.diagnostic;
    $("results").classList.toggle("stale", good !== null);
    sourceLines(state.source, state.span, "wrong");
    document.body.dataset.ok = "false";
  }
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("state", (event) => show(JSON.parse(event.data)));
  events.addEventListener("open", () => { $("status").textContent = "live"; $("status").className = "status live"; });
  events.addEventListener("error", () => { $("status").textContent = "reconnecting…"; $("status").className = "status lost"; });
}

connect();
