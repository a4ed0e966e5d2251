// Presence and typing against a real relay and database: who is in a room
// (each user once, whatever their devices), rebuilt from a fresh snapshot
// after a reconnect; typing that reaches the other members, throttled on
// the wire, and that goes away after its timeout, on the typist's message
// or when the typist leaves; and a room too large to list, which shows a
// count instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TYPING_INTERVAL, TYPING_TIMEOUT } from '../src/index.js';
import { useRelays } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

/** Every event of `name` about `room` the client emits from now on. */
function events(client, name, room) {
  const seen = [];
  client.on(name, (info) => {
    if (info.room === room) seen.push(info);
  });
  return seen;
}

/** The `typing` frames a client sent to `room`. */
function typingSent(network, room) {
  return network.sent.filter((frame) => frame.type === 'typing' && frame.room === room).length;
}

/** Resolves once the room's member list is exactly `users`. */
function presenceIs(client, room, users) {
  return until(client, 'presence', () => JSON.stringify([...(client.room(room).presence ?? [])]) === JSON.stringify(users) && client.room(room).presence !== undefined, {
    what: `${room} to list ${users.join(', ')}`,
  });
}

test('a join brings the room’s presence, and each user is listed once whatever their devices', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const seen = events(alice, 'presence', 'r');
  assert.equal(alice.room('r').presence, undefined, 'nothing known before the join');
  assert.equal(alice.room('r').occupancy, undefined);
  await alice.join('r');
  assert.equal(typeof alice.room('r').occupancy, 'number', 'the snapshot is in once join() resolves');
  await presenceIs(alice, 'r', ['alice']);
  assert.equal(alice.room('r').occupancy, 1);
  assert.equal(seen[0].joined, undefined, 'the snapshot comes first');
  assert.equal(seen[0].left, undefined);

  const phone = world.client(relay, 'bob');
  await phone.join('r');
  await presenceIs(alice, 'r', ['alice', 'bob']);
  assert.deepEqual(seen.at(-1), { room: 'r', users: ['alice', 'bob'], count: 2, joined: 'bob' });
  const laptop = world.client(relay, 'bob');
  await laptop.join('r');
  await presenceIs(laptop, 'r', ['alice', 'bob']);
  // Presence changes reach a room in order: had bob's second device been
  // announced, it would have come before carol.
  const carol = world.client(relay, 'carol');
  await carol.join('r');
  await presenceIs(alice, 'r', ['alice', 'bob', 'carol']);
  // (alice herself may come as an arrival, when the snapshot was read before her own presence was written.)
  const changes = (info) => info.joined ?? (info.left && `-${info.left}`);
  assert.deepEqual(seen.map(changes).filter((change) => change && change !== 'alice'), ['bob', 'carol']);

  // One of bob's devices leaves (once `left` came, the relay knows): he is
  // still here. carol leaves after it.
  await phone.leave('r');
  assert.equal(phone.room('r').presence, undefined, 'a room left is forgotten');
  await carol.leave('r');
  await presenceIs(alice, 'r', ['alice', 'bob']);
  assert.equal(seen.filter((info) => info.left === 'bob').length, 0, 'bob still has a device in the room');
  assert.deepEqual(seen.at(-1), { room: 'r', users: ['alice', 'bob'], count: 2, left: 'carol' });
  laptop.close();
  await presenceIs(alice, 'r', ['alice']);
  assert.deepEqual(seen.at(-1), { room: 'r', users: ['alice'], count: 1, left: 'bob' });
});

test('after a reconnect, presence starts again from a fresh snapshot', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const bob = world.client(relay, 'bob');
  const dave = world.client(relay, 'dave');
  await Promise.all([alice.join('r'), bob.join('r'), dave.join('r')]);
  await presenceIs(alice, 'r', ['alice', 'bob', 'dave']);
  const seen = events(alice, 'presence', 'r');

  network.offline = true;
  network.current.cut();
  const unknown = seen.at(-1);
  assert.deepEqual(unknown, { room: 'r', users: undefined, count: undefined }, 'what was known is dropped at once');
  assert.equal(alice.room('r').presence, undefined);
  assert.equal(alice.room('r').occupancy, undefined);

  // While alice is away: bob leaves and carol comes, as dave sees it.
  await bob.leave('r');
  const carol = world.client(relay, 'carol');
  await carol.join('r');
  await presenceIs(dave, 'r', ['carol', 'dave']);

  network.offline = false;
  alice.reconnectNow();
  await presenceIs(alice, 'r', ['alice', 'carol', 'dave']);
  const rebuilt = seen.slice(seen.indexOf(unknown) + 1);
  assert.equal(rebuilt[0].joined ?? rebuilt[0].left, undefined, 'a snapshot first');
  assert.deepEqual(rebuilt[0].users.filter((user) => user !== 'alice'), ['carol', 'dave']);
  assert.ok(rebuilt.every((info) => !info.users.includes('bob')), 'bob is not remembered from before');
});

test('typing reaches the other members and none of the typist’s own devices', async () => {
  const relay = await world.relay();
  const network = new Network();
  const phone = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const laptop = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  const carol = world.client(relay, 'carol');
  await Promise.all([phone.join('r'), laptop.join('r'), bob.join('r'), carol.join('r')]);
  const laptopSaw = events(laptop, 'typing', 'r');
  const phoneSaw = events(phone, 'typing', 'r');

  const bobSees = next(bob, 'typing', (info) => info.room === 'r');
  phone.typing('r');
  assert.deepEqual(await bobSees, { room: 'r', users: ['alice'] });
  assert.deepEqual(bob.room('r').typists, ['alice']);
  // Typing frames reach a room in the order written: had alice's reached
  // her laptop, it would have come before carol's.
  carol.room('r').typing();
  await until(laptop, 'typing', () => laptop.room('r').typists.length > 0, { what: 'carol typing' });
  assert.deepEqual(laptopSaw, [{ room: 'r', users: ['carol'] }]);
  await until(phone, 'typing', () => phone.room('r').typists.length > 0, { what: 'carol typing' });
  assert.deepEqual(phoneSaw, [{ room: 'r', users: ['carol'] }]);
  await until(bob, 'typing', () => bob.room('r').typists.length === 2, { what: 'two typing' });
  assert.deepEqual(bob.room('r').typists, ['alice', 'carol']);
  await until(carol, 'typing', () => carol.room('r').typists.length > 0, { what: 'alice typing' });
  assert.deepEqual(carol.room('r').typists, ['alice']);

  // Nothing for a room not joined.
  phone.typing('elsewhere');
  assert.equal(typingSent(network, 'elsewhere'), 0);
  assert.throws(() => phone.typing('no spaces'), { code: 'invalid_room' });
});

test('typing on every keystroke sends one frame per interval, and nothing while disconnected', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);

  const bobSees = next(bob, 'typing', (info) => info.room === 'r');
  const first = performance.now();
  for (let key = 0; key < 100; key += 1) alice.typing('r');
  assert.equal(typingSent(network, 'r'), 1, 'the first keystroke goes at once, the rest wait');
  await bobSees;
  assert.equal(typingSent(network, 'r'), 1);

  // A person typing steadily: a keystroke every 50 ms until a second frame goes.
  const second = await new Promise((resolve) => {
    const keys = setInterval(() => {
      alice.typing('r');
      if (typingSent(network, 'r') === 2) {
        clearInterval(keys);
        resolve(performance.now());
      }
    }, 50);
  });
  assert.ok(second - first >= TYPING_INTERVAL, `the second frame went ${Math.round(second - first)} ms after the first`);
  assert.equal(typingSent(network, 'r'), 2);

  // Offline: nothing is sent, and nothing is kept for after the reconnect.
  network.offline = true;
  network.current.cut();
  for (let key = 0; key < 10; key += 1) alice.typing('r');
  network.offline = false;
  alice.reconnectNow();
  await until(alice, 'presence', () => alice.room('r').presence?.has('bob'), { what: 'the room again' });
  await alice.join('r');
  assert.equal(typingSent(network, 'r'), 2);
});

test('typing shows until its timeout after the last typing frame', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob', { typingTimeout: 300 });
  await Promise.all([alice.join('r'), bob.join('r')]);
  assert.equal(TYPING_TIMEOUT, 5000);
  const shown = next(bob, 'typing', (info) => info.users.length > 0);
  alice.typing('r');
  await shown;
  const at = performance.now();
  const hidden = await next(bob, 'typing', (info) => info.room === 'r');
  const after = performance.now() - at;
  assert.deepEqual(hidden, { room: 'r', users: [] });
  assert.deepEqual(bob.room('r').typists, []);
  assert.ok(after >= 250, `hidden after ${Math.round(after)} ms`);
});

test('typing ends with the typist’s message, and when the typist leaves', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const carol = world.client(relay, 'carol');
  // A timeout far beyond the test: only the message or the leave can hide it.
  const bob = world.client(relay, 'bob', { typingTimeout: 600_000 });
  await Promise.all([alice.join('r'), bob.join('r'), carol.join('r')]);
  const seen = events(bob, 'typing', 'r');

  alice.typing('r');
  carol.typing('r');
  await until(bob, 'typing', () => bob.room('r').typists.length === 2, { what: 'two typing' });
  const typingAtMessage = next(bob, 'message').then(() => bob.room('r').typists);
  await alice.send('r', { text: 'done typing' });
  assert.deepEqual(await typingAtMessage, ['carol'], 'alice’s message ends her typing before it is shown');
  assert.deepEqual(seen.at(-1), { room: 'r', users: ['carol'] });

  const typingAtLeave = next(bob, 'presence', (info) => info.left === 'carol').then(() => bob.room('r').typists);
  carol.close();
  assert.deepEqual(await typingAtLeave, []);
  assert.deepEqual(seen.at(-1), { room: 'r', users: [] });

  // A message from someone not typing changes nothing.
  const count = seen.length;
  await bob.send('r', { text: 'anyone?' });
  await until(bob, 'message', () => bob.messages('r').length === 2);
  assert.equal(seen.length, count);
});

test('a room too large to list shows a count, and typing is not sent there', async () => {
  const relay = await world.relay({
    ROOMCAST__LIMITS__PRESENCE_MAX_LISTED: '2',
    ROOMCAST__PRESENCE__HEARTBEAT_INTERVAL: '200ms',
    ROOMCAST__PRESENCE__REPLICA_TIMEOUT: '2s',
  });
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await presenceIs(alice, 'r', ['alice', 'bob']);

  const carol = world.client(relay, 'carol');
  const dave = world.client(relay, 'dave');
  await Promise.all([carol.join('r'), dave.join('r')]);
  for (const client of [alice, dave]) {
    await until(client, 'presence', () => client.room('r').occupancy === 4, { what: 'a count of 4' });
    assert.equal(client.room('r').presence, undefined, 'too many to list');
  }
  const large = events(alice, 'presence', 'r');
  alice.typing('r');
  assert.equal(typingSent(network, 'r'), 0, 'the relay would drop it');

  // Small again: the list comes back, as a snapshot.
  await Promise.all([carol.leave('r'), dave.leave('r')]);
  await presenceIs(alice, 'r', ['alice', 'bob']);
  assert.equal(alice.room('r').occupancy, 2);
  assert.ok(large.every((info) => info.joined === undefined && info.left === undefined));
  alice.typing('r');
  assert.equal(typingSent(network, 'r'), 1);
});
