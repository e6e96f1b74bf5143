// The chat page of examples/hub.rs: plain JavaScript, no build step.
//
// It keeps, per nickname, the rooms it is in, their last messages and the position
// (epoch, offset) of the last one received, in localStorage; after a reconnect (or
// a reload) it joins each room again with `since`, and the server sends exactly
// what was missed, before any new message.
//
// Members: a room's list comes once (`members`), then only what changed
// (`presence`: names that came and went, and the count); a big room sends only its
// count. Changes that come before the list are already in it.
"use strict";

const $ = (id) => document.getElementById(id);
const KEEP = 200; // messages kept per room
const params = new URLSearchParams(location.search);

const RETRIES = 45; // a taken name is asked again every 2 s for so long after a reconnect

let ws = null;
let attempt = 0;
let state = { rooms: {}, active: null }; // rooms: name -> {epoch, offset, messages, unread}
let live = {}; // room -> {names: Set or null (a big room: the count only), count}, this connection's
let retries = {}; // room -> joins asked again for a name still held by our previous connection
let name = params.get("name") || localStorage.getItem("wsd-chat:last-name") || "";

function storageKey() { return `wsd-chat:${name}`; }

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey()) || "null");
    if (saved && saved.rooms) state = saved;
  } catch (e) { /* a damaged entry starts afresh */ }
  for (const room of Object.values(state.rooms)) room.unread = 0;
}

function save() {
  if (!name) return;
  const rooms = {};
  for (const [r, room] of Object.entries(state.rooms)) {
    rooms[r] = { epoch: room.epoch, offset: room.offset, messages: room.messages.slice(-KEEP) };
  }
  localStorage.setItem(storageKey(), JSON.stringify({ rooms, active: state.active }));
  localStorage.setItem("wsd-chat:last-name", name);
}

function setStatus(text) {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${text}`;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function join(room) {
  const known = state.rooms[room];
  const msg = { type: "join", room, name };
  if (known && known.epoch) msg.since = { epoch: known.epoch, offset: known.offset };
  send(msg);
}

function connect() {
  setStatus(attempt === 0 ? "connecting" : "reconnecting");
  // The server's WebSocket listener: this page's host, or its own port there.
  const port = document.querySelector('meta[name="ws-port"]').content;
  const host = port ? `${location.hostname}:${port}` : location.host;
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${host}/ws`);
  ws.onopen = () => {
    attempt = 0;
    live = {};
    retries = {};
    setStatus("open");
    for (const room of Object.keys(state.rooms)) join(room);
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    receive(msg);
  };
  ws.onclose = () => {
    ws = null;
    attempt += 1;
    setStatus("reconnecting");
    // Exponential back-off with jitter: 0.5 s, 1 s, 2 s ... 10 s.
    const delay = Math.min(10000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    setTimeout(connect, delay);
  };
}

function receive(msg) {
  switch (msg.type) {
    case "joined": {
      const asked = state.rooms[msg.room] && state.rooms[msg.room].epoch;
      const room = state.rooms[msg.room] || (state.rooms[msg.room] = { messages: [], unread: 0 });
      delete retries[msg.room];
      if (!msg.recovered) {
        // Nothing replayed: continue from the server's position.
        if (asked) showNotice(`Some messages of ${msg.room} could not be recovered.`);
        room.epoch = msg.epoch;
        room.offset = msg.offset;
      }
      if (!state.active) state.active = msg.room;
      save();
      render();
      break;
    }
    case "message": {
      const room = state.rooms[msg.room];
      if (!room) return;
      if (msg.epoch !== room.epoch) {
        // A new epoch (the server's history was lost): its offsets start afresh.
        room.epoch = msg.epoch;
      } else if (msg.offset <= room.offset) {
        return; // never twice
      }
      room.offset = msg.offset;
      room.messages.push({ from: msg.from, text: msg.text, time: msg.time, offset: msg.offset });
      if (room.messages.length > KEEP) room.messages.splice(0, room.messages.length - KEEP);
      if (msg.room !== state.active) room.unread += 1;
      save();
      render();
      break;
    }
    case "members":
      live[msg.room] = { names: msg.members ? new Set(msg.members) : null, count: msg.count };
      render();
      break;
    case "presence": {
      const view = live[msg.room];
      if (!view) return; // before the list: already in it
      if (msg.joined && msg.left) {
        if (!view.names) view.names = new Set();
        for (const n of msg.joined) view.names.add(n);
        for (const n of msg.left) view.names.delete(n);
      } else {
        view.names = null;
      }
      view.count = msg.count;
      render();
      break;
    }
    case "error":
      if (msg.code === "name-taken" && state.rooms[msg.room] && !state.rooms[msg.room].epoch) {
        // Never joined: the name is someone else's.
        delete state.rooms[msg.room];
        if (state.active === msg.room) state.active = Object.keys(state.rooms)[0] || null;
        render();
      } else if (msg.code === "name-taken" && state.rooms[msg.room] && (retries[msg.room] || 0) < RETRIES) {
        // Back after a reconnect: the server may not know yet that our previous
        // connection is gone (it finds out within its idle timeout).
        retries[msg.room] = (retries[msg.room] || 0) + 1;
        setTimeout(() => { if (state.rooms[msg.room]) join(msg.room); }, 2000);
        showNotice(`${name} is still in ${msg.room} from a previous connection: trying again`);
        break;
      }
      showNotice(msg.reason);
      break;
  }
}

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => { notice.hidden = true; }, 6000);
}

function render() {
  const tabs = $("rooms");
  tabs.replaceChildren();
  for (const [r, room] of Object.entries(state.rooms)) {
    const tab = document.createElement("button");
    tab.className = `room-tab${r === state.active ? " active" : ""}`;
    tab.dataset.room = r;
    tab.textContent = r;
    if (room.unread) {
      const unread = document.createElement("span");
      unread.className = "unread";
      unread.textContent = `(${room.unread})`;
      tab.append(unread);
    }
    const leave = document.createElement("span");
    leave.className = "leave";
    leave.title = `leave ${r}`;
    leave.textContent = "×";
    leave.onclick = (e) => { e.stopPropagation(); leaveRoom(r); };
    tab.append(leave);
    tab.onclick = () => { state.active = r; room.unread = 0; save(); render(); };
    tabs.append(tab);
  }
  const room = state.rooms[state.active];
  const list = $("messages");
  list.replaceChildren();
  for (const m of room ? room.messages : []) {
    const item = document.createElement("li");
    item.className = `msg${m.from === name ? " mine" : ""}`;
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = m.from;
    const time = document.createElement("time");
    const at = new Date(m.time);
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    item.append(from, time, text);
    list.append(item);
  }
  list.scrollTop = list.scrollHeight;
  const members = $("members");
  members.replaceChildren();
  const view = live[state.active];
  $("member-count").textContent = view ? `(${view.count})` : "";
  if (view && view.names) {
    for (const member of [...view.names].sort()) {
      const item = document.createElement("li");
      item.textContent = member;
      members.append(item);
    }
  } else if (view) {
    const item = document.createElement("li");
    item.className = "count";
    item.textContent = `${view.count} members`;
    members.append(item);
  }
  const usable = Boolean(room);
  $("text").disabled = !usable;
  $("send").disabled = !usable;
}

function leaveRoom(r) {
  send({ type: "leave", room: r });
  delete state.rooms[r];
  delete live[r];
  if (state.active === r) state.active = Object.keys(state.rooms)[0] || null;
  save();
  render();
}

$("join-form").onsubmit = (e) => {
  e.preventDefault();
  const newName = $("name").value.trim();
  const room = $("room").value.trim();
  if (!newName || !room) return;
  if (newName !== name) {
    name = newName;
    load();
    render();
  }
  state.active = room;
  if (state.rooms[room] && live[room]) render(); // joined already: show it
  else join(room);
};

$("say-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text || !state.active) return;
  send({ type: "say", room: state.active, text });
  $("text").value = "";
};

$("name").value = name;
if (params.get("room")) $("room").value = params.get("room");
if (name) {
  load();
  if (params.get("room") && !state.rooms[params.get("room")]) {
    state.rooms[params.get("room")] = { messages: [], unread: 0 };
    state.active = params.get("room");
  }
}
render();
connect();
