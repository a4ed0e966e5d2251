// The roomcast demo: a chat page on the roomcast-client library, with no
// build step. The library does the hard part (reconnects, rejoins from the
// last seq, resends with the same client_id, recovers notifications); this
// file only turns its events into a page.

import { connect } from './roomcast-client/index.js';
import * as storage from './storage.js';
import { bodyText, editForm, element, messageItem, notificationItem, pendingItem, toast } from './render.js';

const $ = (id) => document.getElementById(id);
/** Messages fetched when a room is joined (or re-joined after a reload). */
const HISTORY = 100;
const ROOM_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
const USER_NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

let saved = storage.load();
let client = null;
let me = null;
/** room → highest seq the person has had on screen, for unread counts. */
const lastSeen = new Map();
/** room → a warning about its history, shown above its messages. */
const roomNotes = new Map();
let countdown = null;

// ---- signing in and out ----

function userFromToken(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub ?? null;
  } catch {
    return null;
  }
}

function showSignIn() {
  $('chat').hidden = true;
  $('identity').hidden = true;
  $('signin').hidden = false;
  $('user').value = saved.user;
  $('token').value = saved.token;
  document.querySelector(`input[name=mode][value=${saved.mode}]`).checked = true;
  showMode(saved.mode);
  setConnection({ state: 'idle' });
  (saved.mode === 'token' ? $('token') : $('user')).focus();
}

function showMode(mode) {
  $('user-field').hidden = mode !== 'user';
  $('token-field').hidden = mode !== 'token';
}

function signIn() {
  me = saved.mode === 'token' ? userFromToken(saved.token) : saved.user;
  $('identity-name').textContent = me ?? 'token user';
  for (const node of document.querySelectorAll('.me')) node.textContent = me ?? 'you';
  $('signin').hidden = true;
  $('identity').hidden = false;
  $('chat').hidden = false;

  client = connect(new URL('/ws', location.href).href, {
    user: saved.mode === 'user' ? saved.user : undefined,
    token: saved.mode === 'token' ? saved.token : undefined,
    // A reload recovers the notifications that arrived in between.
    cursors: saved.cursors,
  });
  wire(client);
  for (const room of saved.rooms) joinRoom(room, { select: false });
  selectRoom(saved.current ?? saved.rooms[0] ?? null);
  renderNotifications();
  // Writes a reload interrupted: the same client_id makes the relay answer
  // with the original ack if the write had already been committed.
  const interrupted = saved.pending;
  saved.pending = [];
  for (const write of interrupted) submit(write);
}

function signOut() {
  client?.close();
  client = null;
  storage.forget();
  saved = storage.load();
  lastSeen.clear();
  roomNotes.clear();
  $('messages').replaceChildren();
  $('notification-list').replaceChildren();
  $('notification-notice').hidden = true;
  showSignIn();
}

// ---- the client's events ----

function wire(client) {
  client.on('state', setConnection);
  client.on('message', (message, { update }) => {
    if (message.room === saved.current) {
      renderMessage(message);
      lastSeen.set(message.room, Math.max(lastSeen.get(message.room) ?? 0, message.seq));
    } else if (!update) {
      renderRooms();
    }
  });
  client.on('joined', ({ room, seq, rejoin, historyLost, reset }) => {
    if (!lastSeen.has(room)) lastSeen.set(room, seq);
    if (historyLost) roomNotes.set(room, 'Some older messages are not shown: more were sent while you were away than the relay replays.');
    if (reset) roomNotes.set(room, 'This room’s history changed on the server, so it was reloaded.');
    if (room === saved.current && (reset || historyLost || !rejoin)) renderRoom();
  });
  client.on('pending', ({ room }) => {
    saved.pending = client.pending().map(({ kind, room, clientId, id, body }) => ({ kind, room, clientId, id, body }));
    storage.save(saved);
    if (room === saved.current) renderPending();
  });
  client.on('notification', (notification) => {
    saved.notifications.unshift(notification);
    saved.cursors = client.cursors;
    storage.save(saved);
    renderNotifications();
  });
  client.on('recovery', ({ recovered }) => {
    if (!recovered) {
      notice('Notifications sent while you were away could not all be recovered (the relay restarted, or you were away too long). Some may be missing.');
    }
  });
  client.on('resync', () => {
    saved.cursors = client.cursors;
    storage.save(saved);
    notice('The relay lost part of its notification history. Some notifications may be missing.');
  });
  client.on('left', ({ room, reason }) => {
    if (reason === 'revoked') {
      toast($('toasts'), `You no longer have access to ${room}.`);
      dropRoom(room);
    }
  });
  client.on('error', (error) => {
    if (error.code === 'token_expired') toast($('toasts'), 'Your token expired. Sign out and in again with a fresh one.');
    else if (error.code === 'gap') roomNotes.set(error.ref.room, `Messages ${error.ref.from}–${error.ref.to} could not be loaded.`);
    else toast($('toasts'), error.message);
  });
}

const CLOSE_REASONS = {
  1001: 'the relay is restarting',
  1006: 'connection lost',
  4000: 'idle for too long',
  4001: 'token expired',
  4008: 'the connection fell behind',
};

function setConnection({ state, attempt, delay, code }) {
  const box = $('connection');
  box.dataset.state = state;
  clearInterval(countdown);
  $('retry-now').hidden = state !== 'waiting';
  const text = $('connection-text');
  if (state === 'open') text.textContent = 'Connected';
  else if (state === 'connecting') text.textContent = attempt ? `Reconnecting… (attempt ${attempt})` : 'Connecting…';
  else if (state === 'closed' || state === 'idle') text.textContent = 'Not connected';
  else if (state === 'waiting') {
    const why = CLOSE_REASONS[code] ?? 'connection lost';
    const until = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      text.textContent = `Offline (${why}), retrying in ${seconds} s`;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
}

function notice(text) {
  const box = $('notification-notice');
  box.replaceChildren(
    element('span', {}, text),
    element('button', { type: 'button', class: 'link', onclick: () => (box.hidden = true) }, 'Dismiss'),
  );
  box.hidden = false;
}

// ---- rooms ----

function joinRoom(room, { select = true } = {}) {
  if (!saved.rooms.includes(room)) saved.rooms.push(room);
  storage.save(saved);
  client.join(room, { history: HISTORY }).catch((error) => {
    if (error.code === 'closed' || error.code === 'left') return;
    toast($('toasts'), `Cannot join ${room}: ${error.message}`);
    dropRoom(room);
  });
  if (select) selectRoom(room);
  else renderRooms();
}

function dropRoom(room) {
  saved.rooms = saved.rooms.filter((name) => name !== room);
  roomNotes.delete(room);
  lastSeen.delete(room);
  if (saved.current === room) saved.current = saved.rooms[0] ?? null;
  storage.save(saved);
  selectRoom(saved.current);
}

function leaveRoom(room) {
  client.leave(room);
  dropRoom(room);
}

function selectRoom(room) {
  saved.current = room;
  storage.save(saved);
  const held = room ? client.messages(room) : [];
  if (room && held.length) lastSeen.set(room, held.at(-1).seq);
  document.title = room ? `#${room} · roomcast` : 'roomcast';
  $('room-title').textContent = room ? `#${room}` : 'No room';
  $('draft').placeholder = room ? `Message #${room}` : 'Join a room first';
  $('composer').querySelector('button').disabled = !room;
  $('draft').disabled = !room;
  renderRooms();
  renderRoom();
}

function unreadCount(room) {
  const seen = lastSeen.get(room);
  if (seen === undefined) return 0;
  return client.messages(room).filter((message) => message.seq > seen && message.author !== me).length;
}

function renderRooms() {
  const items = saved.rooms.map((room) => {
    const unread = room === saved.current ? 0 : unreadCount(room);
    return element(
      'li',
      { class: room === saved.current ? 'current' : '' },
      element(
        'button',
        { type: 'button', class: 'room', 'aria-current': room === saved.current ? 'page' : null, onclick: () => selectRoom(room) },
        element('span', { class: 'hash', 'aria-hidden': 'true' }, '#'),
        element('span', { class: 'room-name' }, room),
        unread ? element('span', { class: 'unread', 'aria-label': `${unread} unread` }, String(unread)) : null,
      ),
      element('button', { type: 'button', class: 'leave', 'aria-label': `Leave ${room}`, title: `Leave ${room}`, onclick: () => leaveRoom(room) }, '×'),
    );
  });
  $('room-list').replaceChildren(...items);
}

// ---- messages ----

function messageNode(message) {
  const mine = message.author === me;
  const node = messageItem(message, {
    mine,
    onEdit: () => startEdit(message),
    onDelete: () => client.delete(message.room, message.id).catch((error) => toast($('toasts'), error.message)),
  });
  return node;
}

function renderRoom() {
  const room = saved.current;
  const note = roomNotes.get(room);
  $('room-note').hidden = !note;
  $('room-note').textContent = note ?? '';
  const list = $('messages');
  list.replaceChildren(...(room ? client.messages(room).map(messageNode) : []));
  renderPending();
  scrollToEnd(true);
}

/** Inserts or replaces one message, keeping seq order. */
function renderMessage(message) {
  const list = $('messages');
  const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const node = messageNode(message);
  const existing = list.querySelector(`li[data-seq="${message.seq}"]`);
  if (existing) {
    existing.replaceWith(node);
  } else {
    const after = [...list.querySelectorAll('li[data-seq]')].find((item) => Number(item.dataset.seq) > message.seq);
    list.insertBefore(node, after ?? list.querySelector('li.pending'));
  }
  updateEmpty();
  scrollToEnd(nearEnd || message.author === me);
}

function renderPending() {
  const list = $('messages');
  for (const node of list.querySelectorAll('li.pending')) node.remove();
  if (saved.current) {
    for (const write of client.pending(saved.current)) {
      if (write.kind === 'send') list.append(pendingItem(write, me));
    }
  }
  updateEmpty();
}

function updateEmpty() {
  $('messages-empty').hidden = $('messages').children.length > 0 || !saved.current;
}

function scrollToEnd(really) {
  if (really) $('messages').scrollTop = $('messages').scrollHeight;
}

function startEdit(message) {
  const node = $('messages').querySelector(`li[data-seq="${message.seq}"]`);
  if (!node) return;
  const restore = () => node.replaceWith(messageNode(client.messages(message.room).find((m) => m.seq === message.seq) ?? message));
  const { form, input } = editForm(bodyText(message.body), {
    onSave: (text) => {
      if (!text.trim()) return;
      client.edit(message.room, message.id, { text: text.trim() }).catch((error) => {
        toast($('toasts'), error.message);
        restore();
      });
      // The edited message comes back from the relay and replaces the form.
      form.querySelectorAll('button, input').forEach((control) => (control.disabled = true));
    },
    onCancel: restore,
  });
  node.querySelector('.body').replaceWith(form);
  node.querySelector('.actions')?.remove();
  input.focus();
  input.select();
}

function submit({ kind, room, clientId, id, body }) {
  const options = { clientId };
  const written =
    kind === 'send' ? client.send(room, body, options) : kind === 'edit' ? client.edit(room, id, body, options) : client.delete(room, id, options);
  written.catch((error) => {
    if (error.code !== 'closed') toast($('toasts'), `Not sent: ${error.message}`);
  });
}

// ---- notifications ----

function renderNotifications() {
  const items = saved.notifications.map(notificationItem);
  $('notification-list').replaceChildren(...items);
  $('notifications-empty').hidden = items.length > 0;
  $('notification-count').textContent = items.length ? `(${items.length})` : '';
}

// ---- controls ----

$('signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const mode = new FormData(event.target).get('mode');
  const user = $('user').value.trim();
  const token = $('token').value.trim();
  const room = $('first-room').value.trim();
  const error = $('signin-error');
  if (mode === 'user' && !USER_NAME.test(user)) {
    error.textContent = 'Pick a user name: letters, digits and . _ : @ - only.';
    $('user').focus();
    return;
  }
  if (mode === 'token' && token.split('.').length !== 3) {
    error.textContent = 'Paste a JWT: three parts separated by dots.';
    $('token').focus();
    return;
  }
  if (room && !ROOM_NAME.test(room)) {
    error.textContent = 'Room names are letters, digits and . _ : - only.';
    $('first-room').focus();
    return;
  }
  error.textContent = '';
  saved = { ...storage.load(), mode, user: mode === 'user' ? user : '', token: mode === 'token' ? token : '' };
  if (room && !saved.rooms.includes(room)) saved.rooms.push(room);
  saved.current = room || saved.rooms[0] || null;
  storage.save(saved);
  signIn();
  $('draft').focus();
});

for (const radio of document.querySelectorAll('input[name=mode]')) {
  radio.addEventListener('change', () => showMode(radio.value));
}

$('sign-out').addEventListener('click', signOut);
$('retry-now').addEventListener('click', () => client?.reconnectNow());
// Back online: no reason to wait for the backoff.
window.addEventListener('online', () => client?.reconnectNow());

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const room = $('room-name').value.trim();
  if (!ROOM_NAME.test(room)) {
    toast($('toasts'), 'Room names are 1 to 128 letters, digits and . _ : - only.');
    return;
  }
  $('room-name').value = '';
  if (saved.rooms.includes(room)) selectRoom(room);
  else joinRoom(room);
  $('draft').focus();
});

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('draft').value.trim();
  if (!text || !saved.current) return;
  $('draft').value = '';
  submit({ kind: 'send', room: saved.current, body: { text } });
});

$('draft').addEventListener('keydown', (event) => {
  // Enter sends; Shift+Enter starts a new line.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
});

if ((saved.mode === 'user' && saved.user) || (saved.mode === 'token' && saved.token)) signIn();
else showSignIn();
