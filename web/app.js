// The roomcast demo: a chat page on the roomcast-client library, with no
// build step. The library does the hard part (reconnects, rejoins from the
// last seq, resends with the same client_id, recovers notifications); this
// file turns its events into a page: signing in, joining and leaving
// rooms, and the wiring of rooms.js (the room list), conversation.js (the
// room shown), members.js (who is in it), typing.js (who is typing there),
// notifications.js, views.js (one section at a time on a phone) and
// tabs.js (the same person's other tabs).

import { connect } from './roomcast-client/index.js';
import { conversation } from './conversation.js';
import { membersPanel } from './members.js';
import { notificationsPanel } from './notifications.js';
import { roomList, roomNameProblem } from './rooms.js';
import * as storage from './storage.js';
import { failureToast, toast } from './render.js';
import { otherTabs } from './tabs.js';
import { typingLine } from './typing.js';
import { sectionViews } from './views.js';

const $ = (id) => document.getElementById(id);
/** Messages fetched when a room is joined (or re-joined after a reload). */
const HISTORY = 100;
const USER_NAME = /^[A-Za-z0-9._:@-]{1,128}$/;
/** The library picks WebSocket, or SSE where WebSocket does not get through; `?transport=sse` forces one, to try it. */
const TRANSPORT = ['auto', 'websocket', 'sse'].find((name) => name === new URLSearchParams(location.search).get('transport')) ?? 'auto';
const TRANSPORT_LABELS = { websocket: 'via WebSocket', sse: 'via SSE' };

let saved = storage.load();
let client = null;
let me = null;
/** Tells the same person's other tabs about the rooms joined and left here. */
let tabs = null;
/** room → a warning about its history, shown above its messages. */
const roomNotes = new Map();
let countdown = null;
const shown = conversation({
  client: () => client,
  me: () => me,
  room: () => saved.current,
  note: (room) => roomNotes.get(room),
});
const members = membersPanel({ client: () => client, me: () => me, room: () => saved.current });
const typing = typingLine({ client: () => client, room: () => saved.current });
const views = sectionViews();
const notifications = notificationsPanel({
  client: () => client,
  saved: () => saved,
  save: () => storage.save(saved),
});
const rooms = roomList({
  client: () => client,
  saved: () => saved,
  select: (room) => {
    selectRoom(room);
    views.showConversation();
  },
  leave: (room) => {
    leaveRoom(room);
    tabs?.left(room);
  },
  unreadElsewhere: views.roomsUnread,
});

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
    transport: TRANSPORT,
    // A reload recovers the notifications that arrived in between.
    cursors: saved.cursors,
  });
  wire(client);
  tabs = otherTabs(me ?? 'token user', {
    joined: (room) => saved.rooms.includes(room) || joinRoom(room, { select: false }),
    left: (room) => saved.rooms.includes(room) && leaveRoom(room),
  });
  for (const room of saved.rooms) joinRoom(room, { select: false });
  selectRoom(saved.current ?? saved.rooms[0] ?? null);
  views.show('conversation');
  notifications.render();
  notifications.checkOlder();
  // The rooms read on other devices (or in other tabs) are this page's too,
  // unless you left them here.
  client
    .listRooms()
    .then((rooms) => {
      for (const { room } of rooms) {
        if (!saved.rooms.includes(room) && !saved.left.includes(room)) joinRoom(room, { select: !saved.current });
      }
    })
    .catch(failureToast($('toasts'), 'Cannot list your rooms'));
  // Writes a reload interrupted: the same client_id makes the relay answer
  // with the original ack if the write had already been committed.
  const interrupted = saved.pending;
  saved.pending = [];
  for (const write of interrupted) submit(write);
}

function signOut() {
  client?.close();
  client = null;
  tabs?.close();
  tabs = null;
  storage.forget();
  saved = storage.load();
  roomNotes.clear();
  shown.clear();
  notifications.reset();
  showSignIn();
}

// ---- the client's events ----

function wire(client) {
  client.on('state', (change) => {
    setConnection(change);
    members.render();
  });
  // Who is here and who is typing, for the room shown.
  client.on('presence', ({ room }) => room === saved.current && members.render());
  client.on('typing', ({ room }) => room === saved.current && typing.render());
  // Every room's: a body that changes in a room not shown is marked when it is.
  client.on('message', (message, { previous }) => shown.renderMessage(message, { previous }));
  // Unread counts follow the read markers the relay keeps for every device.
  client.on('unread', ({ room }) => rooms.renderBadge(room));
  client.on('joined', ({ room, rejoin, historyLost, reset }) => {
    if (historyLost) roomNotes.set(room, 'Some older messages are not shown: more were sent while you were away than the relay replays.');
    if (reset) roomNotes.set(room, 'This room’s history changed on the server, so it was reloaded.');
    if (room === saved.current && (reset || historyLost || !rejoin)) shown.render();
  });
  client.on('pending', ({ room }) => {
    saved.pending = client.pending().map(({ kind, room, clientId, id, body }) => ({ kind, room, clientId, id, body }));
    storage.save(saved);
    if (room === saved.current) shown.renderPending();
  });
  client.on('notification', (notification) => {
    saved.cursors = client.cursors;
    notifications.received(notification);
    views.notificationArrived();
  });
  // Notifications the relay could not replay are still in the collection.
  client.on('recovery', ({ recovered }) => {
    if (!recovered) {
      notifications.refetch('Notifications sent while you were away could not all be recovered (the relay restarted, or you were away too long)');
    }
  });
  client.on('resync', () => {
    saved.cursors = client.cursors;
    storage.save(saved);
    notifications.refetch('The relay lost part of its notification history');
  });
  client.on('left', ({ room, reason }) => {
    if (reason === 'revoked') {
      toast($('toasts'), `You no longer have access to ${room}.`);
      dropRoom(room);
    }
  });
  client.on('error', (error) => {
    if (error.code === 'token_expired') toast($('toasts'), 'Your token expired. Sign out and in again with a fresh one.');
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
  // The client says which transport before it says `open`.
  const transport = state === 'open' ? client?.transport : null;
  box.dataset.transport = transport ?? '';
  $('connection-transport').hidden = !transport;
  $('connection-transport').textContent = TRANSPORT_LABELS[transport] ?? '';
  $('connection-transport').title = transport === 'sse' ? 'Server-Sent Events: WebSocket does not get through this network' : '';
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

// ---- rooms ----

function joinRoom(room, { select = true } = {}) {
  if (!saved.rooms.includes(room)) saved.rooms.push(room);
  saved.left = saved.left.filter((name) => name !== room);
  storage.save(saved);
  client.join(room, { history: HISTORY }).then(
    // Whether older messages exist is known once the history is in.
    () => room === saved.current && shown.renderEdges(),
    (error) => {
      if (error.code === 'closed' || error.code === 'left') return;
      toast($('toasts'), `Cannot join ${room}: ${error.message}`);
      dropRoom(room);
    },
  );
  if (select) selectRoom(room);
  else rooms.render();
}

function dropRoom(room) {
  saved.rooms = saved.rooms.filter((name) => name !== room);
  roomNotes.delete(room);
  if (saved.current === room) saved.current = saved.rooms[0] ?? null;
  storage.save(saved);
  selectRoom(saved.current);
}

function leaveRoom(room) {
  client.leave(room);
  // Your read marker stays on the relay: remember not to list the room again.
  if (!saved.left.includes(room)) saved.left.push(room);
  dropRoom(room);
}

function selectRoom(room) {
  saved.current = room;
  storage.save(saved);
  document.title = room ? `#${room} · roomcast` : 'roomcast';
  $('room-title').textContent = room ? `#${room}` : 'No room';
  $('draft').placeholder = room ? `Message #${room}` : 'Join a room first';
  $('composer').querySelector('button').disabled = !room;
  $('draft').disabled = !room;
  rooms.render();
  shown.render();
  members.render();
  typing.render({ quietly: true });
}

function submit({ kind, room, clientId, id, body }) {
  const options = { clientId };
  const written =
    kind === 'send' ? client.send(room, body, options) : kind === 'edit' ? client.edit(room, id, body, options) : client.delete(room, id, options);
  written.catch(failureToast($('toasts'), 'Not sent'));
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
  const problem = room ? roomNameProblem(room) : null;
  if (problem) {
    error.textContent = problem;
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
// On a phone the message box is in the Chat section, which may not be the one shown.
document.querySelector('.skip-link').addEventListener('click', () => views.show('conversation'));
$('retry-now').addEventListener('click', () => client?.reconnectNow());
// Back online: no reason to wait for the backoff.
window.addEventListener('online', () => client?.reconnectNow());

/** Shows (or, with null, clears) what is wrong with the name typed in the join form, next to it. */
function joinError(problem) {
  $('room-name-error').textContent = problem ?? '';
  if (problem) $('room-name').setAttribute('aria-invalid', 'true');
  else $('room-name').removeAttribute('aria-invalid');
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const room = $('room-name').value.trim();
  const problem = roomNameProblem(room);
  joinError(problem);
  if (problem) {
    $('room-name').focus();
    return;
  }
  $('room-name').value = '';
  if (saved.rooms.includes(room)) {
    selectRoom(room);
  } else {
    joinRoom(room);
    tabs?.joined(room);
  }
  views.showConversation();
  $('draft').focus();
});
// Typing again clears a complaint about what was there.
$('room-name').addEventListener('input', () => joinError(null));

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('draft').value.trim();
  if (!text || !saved.current) return;
  $('draft').value = '';
  submit({ kind: 'send', room: saved.current, body: { text } });
});

// Every keystroke tells the others you are typing: the library sends at
// most one frame every 2 s, and nothing while offline.
$('draft').addEventListener('input', () => {
  if (client && saved.current && $('draft').value.trim()) client.typing(saved.current);
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
