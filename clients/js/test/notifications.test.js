// Notifications: documents any program inserts into `notifications` reach
// every connection of their user, and recovery after a reconnect follows
// the cursor, or says it cannot.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

function received(client) {
  const notes = [];
  client.on('notification', (notification) => notes.push(notification.data.n));
  return notes;
}

/** bob, connected, once his first notification (n: 1) has arrived. */
async function bobWithANotification(relay, options = {}) {
  const bob = world.client(relay, 'bob', options);
  const notes = received(bob);
  await bob.whenOpen();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 1 });
  await until(bob, 'notification', () => notes.length === 1);
  return { bob, notes };
}

test('a notification reaches its user only', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.whenOpen(), bob.whenOpen()]);
  const [forAlice, forBob] = [received(alice), received(bob)];
  const notification = next(bob, 'notification');
  await relay.collection('notifications').insertOne({ user: 'bob', n: 1, kind: 'mention' });
  const { route, id, cursor, data } = await notification;
  assert.equal(route, 'notifications');
  assert.equal(data._id, id);
  assert.equal(data.kind, 'mention');
  assert.deepEqual(bob.cursors, { notifications: cursor });
  // Inserted after bob's: once alice has hers, bob's would have reached her too.
  await relay.collection('notifications').insertOne({ user: 'alice', n: 2 });
  await until(alice, 'notification', () => forAlice.length === 1);
  assert.deepEqual(forAlice, [2]);
  assert.deepEqual(forBob, [1]);
});

test('after a network drop the cursor recovers exactly what was missed', async () => {
  const relay = await world.relay();
  const network = new Network();
  const { bob, notes } = await bobWithANotification(relay, { WebSocket: network.WebSocket });
  const { notifications: cursor } = bob.cursors;

  network.offline = true;
  network.current.cut();
  await relay.collection('notifications').insertMany([{ user: 'bob', n: 2 }, { user: 'bob', n: 3 }]);
  network.offline = false;
  bob.reconnectNow();
  const recovery = await next(bob, 'recovery');
  assert.deepEqual(recovery, { route: 'notifications', recovered: true });
  await until(bob, 'notification', () => notes.length === 3);
  assert.deepEqual(notes, [1, 2, 3], 'each once, in commit order');
  const reconnectUrl = new URL(network.urls.at(-1));
  assert.deepEqual(reconnectUrl.searchParams.getAll('since_cursor'), [cursor]);
});

test('after a relay restart, what was missed meanwhile is recovered from the database, and live notifications go on', async () => {
  const relay = await world.relay();
  const { bob, notes } = await bobWithANotification(relay);
  const recovery = next(bob, 'recovery');
  await relay.stop();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 2 });
  await relay.start();
  // The new process reads MongoDB's own history from the cursor on.
  assert.deepEqual(await recovery, { route: 'notifications', recovered: true });
  await until(bob, 'notification', () => notes.length === 2);
  await relay.collection('notifications').insertOne({ user: 'bob', n: 3 });
  await until(bob, 'notification', () => notes.length === 3);
  assert.deepEqual(notes, [1, 2, 3], 'each once, in commit order');
});

test('a relay that may not read the history says it cannot recover, and live notifications go on', async () => {
  const relay = await world.relay({ ROOMCAST__RECOVERY__MAX_SCANS: '0' });
  const { bob, notes } = await bobWithANotification(relay);
  const recovery = next(bob, 'recovery');
  await relay.restart();
  assert.deepEqual(await recovery, { route: 'notifications', recovered: false });
  await relay.collection('notifications').insertOne({ user: 'bob', n: 2 });
  await until(bob, 'notification', () => notes.length === 2);
});

test('a lost route history is surfaced as resync and the old cursor is dropped', async () => {
  const relay = await world.relay();
  const { bob, notes } = await bobWithANotification(relay);
  const resync = next(bob, 'resync');
  await relay.collection('notifications').drop();
  assert.deepEqual(await resync, { route: 'notifications' });
  assert.deepEqual(bob.cursors, {});
  await relay.collection('notifications').insertOne({ user: 'bob', n: 2 });
  await until(bob, 'notification', () => notes.length === 2);
});

test('a cursor saved by an earlier client recovers across a page reload', async () => {
  const relay = await world.relay();
  const { bob: first } = await bobWithANotification(relay);
  const saved = first.cursors;
  first.close();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 2 });
  const second = world.client(relay, 'bob', { cursors: saved });
  const notesAfter = received(second);
  const recovery = await next(second, 'recovery');
  assert.equal(recovery.recovered, true);
  await until(second, 'notification', () => notesAfter.length === 1);
  assert.deepEqual(notesAfter, [2]);
});
