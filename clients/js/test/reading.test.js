// Read markers against a real relay and database: a mark made on one
// device reaches every connection of the user (and nobody else's), the
// unread counts follow, and a client marking every message stays within the
// relay's token bucket for markers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

/** The `read` frames a client sent, as seqs, in order. */
function readsSent(network, room) {
  return network.sent.filter((frame) => frame.type === 'read' && frame.room === room).map((frame) => frame.seq);
}

/** Every `unread` event of `room` the client emits from now on. */
function unreadEvents(client, room) {
  const events = [];
  client.on('unread', (info) => {
    if (info.room === room) events.push(info);
  });
  return events;
}

test('a mark on one device clears the count on every device of the user, and on nobody else’s', async () => {
  const relay = await world.relay();
  const phone = world.client(relay, 'alice');
  const laptop = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([phone.join('r'), laptop.join('r'), bob.join('r')]);
  for (let n = 1; n <= 3; n += 1) await bob.send('r', { text: `m${n}` });
  for (const client of [phone, laptop]) {
    await until(client, 'unread', () => client.room('r').unread === 3, { what: 'three unread' });
    assert.equal(client.room('r').lastRead, 0, 'joined.last_read: no marker yet');
  }
  const bobsMarkers = unreadEvents(bob, 'r');

  phone.markRead('r', 2);
  for (const client of [phone, laptop]) {
    const info = await until(client, 'unread', () => client.room('r').lastRead === 2 && client.room('r'), { what: 'the marker' });
    assert.equal(info.unread, 1);
    assert.equal(info.seq, 3);
  }

  // Markers come from one change stream in commit order: had alice's reached
  // bob, it would have come before his own.
  bob.markRead('r', 3);
  await until(bob, 'unread', () => bob.room('r').lastRead === 3, { what: 'bob’s own marker' });
  assert.deepEqual([...new Set(bobsMarkers.map((info) => info.lastRead))].filter((seq) => seq > 0), [3]);
  assert.equal(phone.room('r').lastRead, 2);
});

test('a marker reaches rooms a device has not joined, and a later join carries it', async () => {
  const relay = await world.relay();
  const phone = world.client(relay, 'alice');
  const laptop = world.client(relay, 'alice');
  await Promise.all([phone.join('r'), laptop.whenOpen()]);
  for (let n = 1; n <= 4; n += 1) await phone.send('r', { text: `m${n}` });
  const marker = next(laptop, 'unread', (info) => info.room === 'r');
  phone.markRead('r', 4);
  assert.deepEqual(await marker, { room: 'r', seq: 4, lastRead: 4, unread: 0 });

  const tablet = world.client(relay, 'alice');
  const joined = await tablet.join('r');
  assert.equal(joined.lastRead, 4);
  assert.equal(tablet.room('r').unread, 0);
  await phone.send('r', { text: 'm5' });
  await until(tablet, 'unread', () => tablet.room('r').unread === 1, { what: 'one new message unread' });
});

test('marking every message sends one read per 250 ms with the highest seq, never a lower one', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  const errors = [];
  alice.on('error', (error) => errors.push(error.code));
  for (let n = 1; n <= 30; n += 1) await bob.send('r', { text: `m${n}` });
  await until(alice, 'message', () => alice.messages('r').length === 30, { what: 'thirty messages' });

  // More marks than the relay's bucket holds (burst 20), all at once.
  for (const message of alice.messages('r')) alice.markRead('r', message.seq);
  assert.deepEqual(readsSent(network, 'r'), [1], 'the first goes at once');
  await until(alice, 'unread', () => alice.room('r').lastRead === 30, { what: 'the marker at 30' });
  assert.deepEqual(readsSent(network, 'r'), [1, 30], 'the rest as one, with the highest seq');

  alice.markRead('r', 5);
  alice.room('r').markRead(12);
  await bob.send('r', { text: 'm31' });
  await until(alice, 'message', () => alice.messages('r').length === 31);
  alice.room('r').markRead();
  await until(alice, 'unread', () => alice.room('r').lastRead === 31, { what: 'the marker at 31' });
  assert.deepEqual(readsSent(network, 'r'), [1, 30, 31], 'nothing at or below the known marker');
  assert.deepEqual(errors, []);
});

test('a refused mark is reported and does not pass for the refusal of a join', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  await alice.whenOpen();
  const refused = next(alice, 'error');
  // Sent before the join: its error comes while the join waits for its
  // answer, and must not be taken for that answer.
  alice.markRead('r', 99);
  const joined = await alice.join('r');
  assert.equal(joined.seq, 0);
  const error = await refused;
  assert.equal(error.code, 'invalid_field');
  assert.deepEqual(error.ref, { room: 'r' });
  await alice.send('r', { text: 'still joined' });
  assert.throws(() => alice.markRead('r', -1), TypeError);
  assert.throws(() => alice.markRead('no spaces', 1), { code: 'invalid_room' });
});

test('marks made while offline go once the connection is back', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await bob.send('r', { text: 'm1' });
  await bob.send('r', { text: 'm2' });
  await until(alice, 'message', () => alice.messages('r').length === 2);
  network.offline = true;
  network.current.cut();
  alice.markRead('r', 2);
  assert.deepEqual(readsSent(network, 'r'), [], 'nothing sent while offline');
  network.offline = false;
  alice.reconnectNow();
  await until(alice, 'unread', () => alice.room('r').lastRead === 2, { what: 'the marker after the reconnect' });
  assert.deepEqual(readsSent(network, 'r'), [2]);
});
