// What the client reads from the relay's database on request, against a
// real relay and database: the user's room list with unread counts, pages
// of notifications, the refusals of each, and documents too large to relay,
// which arrive as stubs everywhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

test('listRooms gives the user’s rooms with unread counts, newest activity first', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all(['a', 'b', 'c', 'quiet'].map((room) => alice.join(room)));
  await Promise.all(['a', 'b', 'c'].map((room) => bob.join(room)));
  await bob.send('b', { text: 'b1' });
  await bob.send('a', { text: 'a1' });
  await bob.send('a', { text: 'a2' });
  await bob.send('c', { text: 'c1' });
  await until(alice, 'unread', () => alice.room('c').seq === 1 && alice.room('a').seq === 2, { what: 'every message' });
  // Only rooms the user has read are the user's rooms (room_policy: open):
  // not 'quiet', where the marker is still at 0.
  for (const [room, seq] of [['a', 1], ['b', 1], ['c', 1], ['quiet', 0]]) alice.markRead(room, seq);
  await until(alice, 'unread', () => alice.room('a').lastRead === 1 && alice.room('c').lastRead === 1, { what: 'the markers' });
  await until(alice, 'unread', () => alice.room('b').lastRead === 1, { what: 'b’s marker' });
  await bob.send('b', { text: 'b2' });

  // Another device knows nothing yet: the list teaches it the counts.
  const laptop = world.client(relay, 'alice');
  const counted = [];
  laptop.on('unread', (info) => counted.push(info.room));
  const rooms = await laptop.listRooms();
  assert.deepEqual(
    rooms.map(({ room, seq, lastRead, unread, lastMessage }) => ({ room, seq, lastRead, unread, text: lastMessage?.body.text })),
    [
      { room: 'b', seq: 2, lastRead: 1, unread: 1, text: 'b2' },
      { room: 'c', seq: 1, lastRead: 1, unread: 0, text: 'c1' },
      { room: 'a', seq: 2, lastRead: 1, unread: 1, text: 'a2' },
    ],
  );
  assert.equal(rooms[0].lastMessage.author, 'bob');
  assert.equal(rooms[0].lastMessage.type, undefined);
  assert.equal(laptop.room('a').unread, 1);
  assert.deepEqual(counted.sort(), ['a', 'b', 'c']);
  assert.deepEqual(laptop.rooms(), [], 'listing joins nothing');
  assert.deepEqual(await world.client(relay, 'bob').listRooms(), [], 'bob read nothing');
});

test('notificationsPage pages back through the user’s documents, newest first', async () => {
  const relay = await world.relay();
  const notifications = relay.collection('notifications');
  await notifications.insertMany(Array.from({ length: 12 }, (_, i) => ({ user: 'bob', n: i + 1 })));
  await notifications.insertOne({ user: 'alice', n: 100 });
  const bob = world.client(relay, 'bob');
  const numbers = ({ items }) => items.map((item) => item.data.n);

  const first = await bob.notificationsPage({ limit: 5 });
  assert.deepEqual(numbers(first), [12, 11, 10, 9, 8]);
  assert.equal(first.more, true);
  assert.deepEqual(Object.keys(first.items[0]).sort(), ['data', 'id', 'route']);
  assert.equal(first.items[0].route, 'notifications');
  assert.equal(first.items[0].id, first.items[0].data._id);
  const second = await bob.notificationsPage({ before: first.items.at(-1).id, limit: 5 });
  assert.deepEqual(numbers(second), [7, 6, 5, 4, 3]);
  const last = await bob.notificationsPage({ route: 'notifications', before: second.items.at(-1).id, limit: 5 });
  assert.deepEqual(numbers(last), [2, 1]);
  assert.equal(last.more, false);
  assert.deepEqual(bob.cursors, {}, 'pages move no cursor');
});

test('after a restart that could not recover notifications, a page brings back what was missed', async () => {
  // A relay that may not read MongoDB's history cannot recover across its restart.
  const relay = await world.relay({ ROOMCAST__RECOVERY__MAX_SCANS: '0' });
  const bob = world.client(relay, 'bob');
  const live = [];
  bob.on('notification', (notification) => live.push(notification.data.n));
  await bob.whenOpen();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 1 });
  await until(bob, 'notification', () => live.length === 1);
  await relay.stop();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 2 });
  const recovery = next(bob, 'recovery');
  await relay.start();
  assert.equal((await recovery).recovered, false);
  const { items } = await bob.notificationsPage();
  assert.deepEqual(items.map((item) => item.data.n), [2, 1]);
  assert.deepEqual(live, [1], 'n: 2 was missed live');
});

test('refusals reject with the relay’s code, and retryable ones are retried', async () => {
  const relay = await world.relay({
    ROOMCAST__AUTH__ROOM_POLICY: 'membership',
    ROOMCAST__LIMITS__JOINS_PER_SECOND: '1',
    ROOMCAST__LIMITS__JOIN_BURST: '2',
  });
  await relay.collection('room_members').insertOne({ room: 'club', user: 'alice' });
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const errors = [];
  alice.on('error', (error) => errors.push(error));

  await assert.rejects(alice.room('secret').loadOlder(), { code: 'forbidden', ref: { room: 'secret' } });
  await assert.rejects(alice.notificationsPage({ route: 'messages' }), { code: 'invalid_field', ref: { route: 'messages' } });
  alice.markRead('secret', 0);
  const refused = await until(alice, 'error', () => errors[0]);
  assert.equal(refused.code, 'forbidden');
  assert.deepEqual(refused.ref, { room: 'secret' });

  // Requests share the join bucket, which those two emptied: these are
  // refused with rate_limited at first, then retried until they pass.
  const [page, rooms] = await Promise.all([alice.room('club').loadOlder(), alice.listRooms()]);
  assert.deepEqual(page, { messages: [], more: false });
  assert.deepEqual(rooms.map((entry) => entry.room), ['club'], 'memberships are the user’s rooms too');
  const asked = (type) => network.sent.filter((frame) => frame.type === type).length;
  assert.ok(asked('rooms') >= 2, 'the room list was asked again');
  assert.ok(asked('history') >= 3, 'the page was asked again');
  assert.equal(errors.length, 1);
  assert.throws(() => alice.room('no spaces'), { code: 'invalid_room' });
});

test('documents too large to relay arrive as stubs, live and in every page', async () => {
  const relay = await world.relay({ ROOMCAST__LIMITS__MAX_DOCUMENT_BYTES: '4096', ROOMCAST__LIMITS__MAX_BODY_BYTES: '1024' });
  const alice = world.client(relay, 'alice');
  await alice.join('r');
  await alice.send('r', { text: 'small' });
  // Over limits.max_document_bytes, and over the share of one room in a
  // room list (limits.max_replay_bytes / limits.max_rooms_listed, 10 KiB).
  const big = 'x'.repeat(12_000);
  const stub = next(alice, 'message', (message) => message.seq === 2);
  // Written by another program, as the protocol allows.
  await relay.collection('messages').insertOne({ room: 'r', seq: 2, author: 'bot', body: { text: big }, sent_at: new Date() });
  const message = await stub;
  assert.equal(message.too_large, true);
  assert.equal('body' in message, false);
  assert.equal(message.author, 'bot');
  alice.markRead('r', 2);
  await until(alice, 'unread', () => alice.room('r').lastRead === 2);

  const note = next(alice, 'notification');
  await relay.collection('notifications').insertOne({ user: 'alice', text: big });
  const notification = await note;
  assert.equal(notification.too_large, true);
  assert.equal('data' in notification, false);
  assert.ok(notification.cursor, 'a stub keeps its cursor');

  const other = world.client(relay, 'alice');
  const [page, rooms, notifications] = await Promise.all([
    other.room('r').loadOlder(),
    other.listRooms(),
    other.notificationsPage(),
  ]);
  assert.deepEqual(page.messages.map((m) => [m.seq, m.too_large ?? false, 'body' in m]), [[1, false, true], [2, true, false]]);
  assert.equal(rooms[0].lastMessage.too_large, true);
  assert.equal('body' in rooms[0].lastMessage, false);
  assert.equal(notifications.items[0].too_large, true);
  assert.equal('data' in notifications.items[0], false);
});
