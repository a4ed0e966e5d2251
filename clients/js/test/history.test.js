// Older messages, a page at a time, against a real relay and database:
// room.loadOlder() pages back to a room's first message and merges each
// page into what the client holds, edits and deletions included.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays, texts, conversation } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

const seqs = (messages) => messages.map((message) => message.seq);

function historyRequests(network) {
  return network.sent.filter((frame) => frame.type === 'history');
}

test('loadOlder pages back to the first message, edits and deletions included', async () => {
  const relay = await world.relay();
  const { alice, acks } = await conversation(world, relay, 12);
  await alice.edit('r', acks[4].id, { text: 'm5 edited' });
  await alice.delete('r', acks[6].id);
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r', { history: 3 });
  const room = bob.room('r');
  assert.deepEqual(seqs(room.messages), [10, 11, 12]);
  assert.equal(room.hasOlder, true);
  const updates = [];
  bob.on('message', (message, { update }) => updates.push({ seq: message.seq, update }));

  const first = await room.loadOlder({ limit: 4 });
  assert.deepEqual(seqs(first.messages), [6, 7, 8, 9]);
  assert.equal(first.more, true);
  assert.equal(first.messages[1].deleted, true, 'm7 as deleted');
  assert.equal(first.messages[1].body, null);
  assert.deepEqual(texts(bob, 'r'), ['m6', null, 'm8', 'm9', 'm10', 'm11', 'm12']);

  const second = await room.loadOlder({ limit: 4 });
  assert.deepEqual(seqs(second.messages), [2, 3, 4, 5]);
  assert.equal(second.messages[3].body.text, 'm5 edited');
  assert.ok(second.messages[3].edited_at);
  const last = await room.loadOlder({ limit: 4 });
  assert.deepEqual(seqs(last.messages), [1]);
  assert.equal(last.more, false, 'the first message reached');
  assert.equal(room.hasOlder, false);
  assert.deepEqual(seqs(room.messages), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(historyRequests(network).map(({ before, limit }) => ({ before, limit })), [
    { before: 10, limit: 4 },
    { before: 6, limit: 4 },
    { before: 2, limit: 4 },
  ]);

  assert.deepEqual(await room.loadOlder(), { messages: [], more: false });
  assert.equal(historyRequests(network).length, 3, 'nothing to ask once the first message is held');
  assert.deepEqual(updates, [], 'pages are not emitted as messages');

  // A loaded message is held like any other: its edits arrive as updates.
  const edit = next(bob, 'message', (message) => message.seq === 2);
  await alice.edit('r', acks[1].id, { text: 'm2 edited' });
  assert.equal((await edit).body.text, 'm2 edited');
  assert.equal(texts(bob, 'r')[1], 'm2 edited');
});

test('calls while a page is on its way share it', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 6);
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r');
  const room = bob.room('r');
  const [a, b] = [room.loadOlder({ limit: 2 }), room.loadOlder({ limit: 2 })];
  assert.equal(a, b);
  assert.deepEqual(seqs((await a).messages), [5, 6], 'holding nothing, the newest page');
  assert.equal(historyRequests(network).length, 1);
  assert.deepEqual(seqs((await room.loadOlder({ limit: 2 })).messages), [3, 4]);
  assert.deepEqual(seqs(room.messages), [3, 4, 5, 6]);
});

test('loadOlder right after join waits for the join’s replay instead of fetching it again', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 8);
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  const joined = bob.join('r', { history: 4 });
  const page = await bob.room('r').loadOlder({ limit: 2 });
  await joined;
  assert.deepEqual(seqs(page.messages), [3, 4]);
  assert.deepEqual(seqs(bob.messages('r')), [3, 4, 5, 6, 7, 8]);
  assert.deepEqual(historyRequests(network).map((frame) => frame.before), [5]);
});

test('a room not joined pages by what it fetched and holds nothing', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 5);
  const carol = world.client(relay, 'carol');
  const room = carol.room('r');
  assert.deepEqual(seqs((await room.loadOlder({ limit: 3 })).messages), [3, 4, 5]);
  assert.equal(room.seq, 5, 'a page tells the room’s newest seq');
  const rest = await room.loadOlder({ limit: 3 });
  assert.deepEqual(seqs(rest.messages), [1, 2]);
  assert.equal(rest.more, false);
  assert.equal(room.hasOlder, false);
  assert.deepEqual(carol.messages('r'), []);
  assert.deepEqual(carol.rooms(), [], 'reading history joins nothing');
});

test('a page lost to a dropped connection is asked again after the reconnect', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 4);
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r');
  // The answer is lost with the connection it came on.
  network.lose = (frame, socket) => {
    if (frame.type !== 'history') return false;
    network.lose = () => false;
    queueMicrotask(() => socket.cut());
    return true;
  };
  const page = await bob.room('r').loadOlder({ limit: 2 });
  assert.deepEqual(seqs(page.messages), [3, 4]);
  assert.equal(historyRequests(network).length, 2);
  assert.equal(new Set(network.sockets).size, 2, 'on a second connection');
});
