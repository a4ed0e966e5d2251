// Reconnection without loss, against a real relay that is restarted,
// crashed, or cut off mid-conversation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays, texts } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

/** Counts the 'message' events that brought a new seq, per client. */
function countNew(client) {
  const seen = [];
  client.on('message', (message, { update }) => {
    if (!update) seen.push(message.seq);
  });
  return seen;
}

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`a relay ${signal === 'SIGTERM' ? 'restart' : 'crash'} mid-conversation loses nothing and duplicates nothing`, async () => {
    const relay = await world.relay();
    const alice = world.client(relay, 'alice');
    const bob = world.client(relay, 'bob');
    await Promise.all([alice.join('lobby'), bob.join('lobby')]);
    const seenByAlice = countNew(alice);
    const seenByBob = countNew(bob);
    const closes = [];
    alice.on('state', ({ state, code }) => state === 'waiting' && closes.push(code));

    const perUser = 20;
    let restarted;
    // Each user sends one message after another, as people chat; the relay
    // goes down after alice's 7th ack, with more sends on their way.
    const conversation = ['alice', 'bob'].map(async (name) => {
      const client = name === 'alice' ? alice : bob;
      const acks = [];
      for (let n = 1; n <= perUser; n += 1) {
        const sending = client.send('lobby', { text: `${name} ${n}` });
        if (name === 'alice' && n === 8) restarted = relay.restart(signal);
        acks.push(await sending);
      }
      return acks;
    });
    const acks = (await Promise.all(conversation)).flat();
    await restarted;

    const total = 2 * perUser;
    for (const [client, seen] of [[alice, seenByAlice], [bob, seenByBob]]) {
      await until(client, 'message', () => client.messages('lobby').length === total, { what: `${total} messages` });
      const held = client.messages('lobby');
      assert.deepEqual(held.map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1), 'no gap');
      assert.deepEqual(seen, held.map((m) => m.seq), 'each message shown once, in seq order');
      assert.equal(new Set(texts(client, 'lobby')).size, total, 'no duplicate text');
    }
    assert.equal(new Set(acks.map((ack) => ack.seq)).size, total, 'every send acked with its own seq');
    assert.equal(await relay.collection('messages').countDocuments({ room: 'lobby' }), total, 'written once each');
    assert.equal(closes[0], signal === 'SIGTERM' ? 1001 : 1006, 'going away, or a broken connection');
    // Alternating users' messages stay in each user's own order.
    for (const name of ['alice', 'bob']) {
      const own = texts(alice, 'lobby').filter((text) => text.startsWith(name));
      assert.deepEqual(own, Array.from({ length: perUser }, (_, i) => `${name} ${i + 1}`));
    }
  });
}

test('a send whose ack was lost is retried with the same client_id and written once', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  await alice.join('r');
  // The write commits, then the connection dies before the ack arrives.
  network.lose = (frame, socket) => {
    if (frame.type !== 'ack' || network.sockets.length > 1) return false;
    socket.cut();
    return true;
  };
  const ack = await alice.send('r', { text: 'once' });
  const sends = network.sent.filter((frame) => frame.type === 'send');
  assert.equal(sends.length, 2, 'sent, then resent after the reconnect');
  assert.equal(sends[0].client_id, sends[1].client_id);
  assert.equal(ack.client_id, sends[0].client_id);
  assert.equal(await relay.collection('messages').countDocuments({ room: 'r' }), 1);
  await until(alice, 'message', () => alice.messages('r').length === 1);
  assert.equal(alice.messages('r')[0].seq, ack.seq);
  assert.equal(alice.messages('r')[0].id, ack.id);
});

test('writes made while the relay is down are sent after the reconnect, in order', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await relay.stop('SIGTERM');
  await until(alice, 'state', () => alice.state === 'waiting');
  const sending = ['one', 'two', 'three'].map((text) => alice.send('r', { text }));
  assert.deepEqual(alice.pending().map((write) => write.state), ['queued', 'queued', 'queued']);
  await relay.start();
  const acks = await Promise.all(sending);
  assert.deepEqual(acks.map((ack) => ack.seq), [1, 2, 3]);
  await until(bob, 'message', () => bob.messages('r').length === 3);
  assert.deepEqual(texts(bob, 'r'), ['one', 'two', 'three']);
});

test('rate-limited sends are retried until each is acknowledged once', async () => {
  const relay = await world.relay({ ROOMCAST__LIMITS__SENDS_PER_SECOND: '10', ROOMCAST__LIMITS__SEND_BURST: '3' });
  const network = new Network();
  const alice = world.client(relay, 'alice', { WebSocket: network.WebSocket });
  await alice.join('r');
  const acks = await Promise.all(Array.from({ length: 12 }, (_, n) => alice.send('r', { text: `m${n}` })));
  const refused = network.received.filter((frame) => frame.type === 'error' && frame.code === 'rate_limited');
  assert.ok(refused.length > 0, 'the limit was met');
  assert.equal(new Set(acks.map((ack) => ack.seq)).size, 12);
  assert.equal(await relay.collection('messages').countDocuments({ room: 'r' }), 12);
});

test('a message lost on the way opens a hole that a re-join fills, in order', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await Promise.all([alice.join('r'), bob.join('r')]);
  let lost = false;
  network.lose = (frame) => {
    if (lost || frame.type !== 'message' || frame.seq !== 3) return false;
    lost = true;
    return true;
  };
  const shown = countNew(bob);
  for (let n = 1; n <= 5; n += 1) await alice.send('r', { text: `m${n}` });
  await until(bob, 'message', () => bob.messages('r').length === 5, { what: 'all five' });
  assert.ok(lost);
  assert.deepEqual(shown, [1, 2, 3, 4, 5], 'held back until the hole was filled');
  assert.ok(network.sent.some((frame) => frame.type === 'join' && frame.since === 2), 're-joined from seq 2');
});

test('a reconnect past the replay cap reports the lost history and goes on', async () => {
  const relay = await world.relay({ ROOMCAST__LIMITS__MAX_REPLAY: '3' });
  const network = new Network();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await Promise.all([alice.join('r'), bob.join('r')]);
  await alice.send('r', { text: 'm1' });
  await until(bob, 'message', () => bob.messages('r').length === 1);
  network.offline = true;
  network.current.cut();
  for (let n = 2; n <= 8; n += 1) await alice.send('r', { text: `m${n}` });
  network.offline = false;
  bob.reconnectNow();
  const joined = await next(bob, 'joined', (info) => info.rejoin);
  assert.deepEqual([joined.since, joined.recovered, joined.historyLost], [1, false, true]);
  await until(bob, 'message', () => bob.messages('r').length === 4, { what: 'the newest three' });
  assert.deepEqual(texts(bob, 'r'), ['m1', 'm6', 'm7', 'm8']);
  await alice.send('r', { text: 'm9' });
  await until(bob, 'message', () => texts(bob, 'r').at(-1) === 'm9');
});

test('a connection that stops answering is noticed by the heartbeat and the room rejoined from the last seq', async () => {
  const relay = await world.relay();
  const network = new Network();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob', {
    WebSocket: network.WebSocket,
    heartbeatInterval: 200,
    heartbeatTimeout: 300,
  });
  await Promise.all([alice.join('r'), bob.join('r')]);
  await alice.send('r', { text: 'm1' });
  await until(bob, 'message', () => bob.messages('r').length === 1);
  // A relay that stops answering: frames are lost, the heartbeat notices.
  network.lose = (frame, socket) => socket === network.sockets[0];
  const waiting = await next(bob, 'state', ({ state }) => state === 'waiting');
  assert.equal(waiting.reason, 'heartbeat timeout');
  network.lose = () => false;
  await alice.send('r', { text: 'm2' });
  await until(bob, 'message', () => bob.messages('r').length === 2, { what: 'm2 after the rejoin' });
  assert.deepEqual(network.sent.filter((f) => f.type === 'join').map((f) => f.since), [undefined, 1]);
});
