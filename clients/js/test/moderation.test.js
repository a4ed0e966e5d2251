// Moderation done straight in MongoDB by another program, against a real
// relay and database: hard deletes (which leave holes in seq) and replaces.
// The tests write to the relay's `messages` collection themselves, as a
// moderation tool would.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays, texts, conversation } from './support/fixture.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();

const seqs = (messages) => messages.map((message) => message.seq);

/** The seqs of the client's message events that brought a new seq. */
function countNew(client) {
  const seen = [];
  client.on('message', (message, { update }) => {
    if (!update) seen.push(message.seq);
  });
  return seen;
}

/** The `error` events of a client. */
function errorsOf(client) {
  const errors = [];
  client.on('error', (error) => errors.push(error));
  return errors;
}

/** The `since` of every join of room `room` the client sent. */
function joins(network, room = 'r') {
  return network.sent.filter((frame) => frame.type === 'join' && frame.room === room).map((frame) => frame.since);
}

test('a reconnect over a removed seq shows what follows at once, with one join and no error', async () => {
  const relay = await world.relay();
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r');
  const { alice } = await conversation(world, relay, 3);
  await until(bob, 'message', () => bob.messages('r').length === 3, { what: 'm1 to m3' });
  const errors = errorsOf(bob);
  const shown = countNew(bob);

  network.offline = true;
  network.current.cut();
  for (let n = 4; n <= 6; n += 1) await alice.send('r', { text: `m${n}` });
  await relay.collection('messages').deleteOne({ room: 'r', seq: 5 });
  network.offline = false;
  bob.reconnectNow();
  const joined = await next(bob, 'joined', (info) => info.rejoin);
  assert.deepEqual([joined.since, joined.seq, joined.recovered, joined.historyLost], [3, 6, true, false]);
  await until(bob, 'message', () => bob.messages('r').length === 5, { what: 'm4 and m6' });
  assert.deepEqual(shown, [4, 6], 'shown in order, past the hole');
  assert.deepEqual(texts(bob, 'r'), ['m1', 'm2', 'm3', 'm4', 'm6']);

  // A message after them all: every answer to bob's joins is in by then.
  await alice.send('r', { text: 'm7' });
  await until(bob, 'message', () => texts(bob, 'r').at(-1) === 'm7', { what: 'm7' });
  assert.deepEqual(joins(network), [undefined, 3], 'one re-join, none to fill the hole');
  assert.deepEqual(errors, [], 'nothing reported missing');
  assert.equal(bob.room('r').seq, 7);
});

test('frames lost on the way, of a seq removed before the re-join: the re-join accounts for it', async () => {
  const relay = await world.relay();
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r');
  const { alice } = await conversation(world, relay, 2);
  await until(bob, 'message', () => bob.messages('r').length === 2, { what: 'm1 and m2' });
  const errors = errorsOf(bob);
  const shown = countNew(bob);
  // Every live frame of seqs 3 and 4 is lost: their inserts, and the deletion of 3.
  network.lose = (frame) => frame.type === 'message' && [3, 4].includes(frame.seq) && joins(network).length === 1;
  await alice.send('r', { text: 'm3' });
  await alice.send('r', { text: 'm4' });
  await relay.collection('messages').deleteOne({ room: 'r', seq: 3 });
  await until(alice, 'message', () => alice.messages('r')[2]?.deleted, { what: 'alice sees m3 deleted' });
  // m5 shows bob the hole; his re-join finds 3 removed.
  await alice.send('r', { text: 'm5' });
  await until(bob, 'message', () => texts(bob, 'r').at(-1) === 'm5', { what: 'm5' });
  assert.deepEqual(shown, [4, 5]);
  await alice.send('r', { text: 'm6' });
  await until(bob, 'message', () => texts(bob, 'r').at(-1) === 'm6', { what: 'm6' });
  assert.deepEqual(seqs(bob.messages('r')), [1, 2, 4, 5, 6]);
  assert.deepEqual(joins(network), [undefined, 2], 'one re-join for the hole');
  assert.deepEqual(errors, []);
});

test('a hard delete of a held message arrives as an update that keeps its author and time', async () => {
  const relay = await world.relay();
  const network = new Network();
  // As relayed from a collection sharded by room and seq without
  // pre-images: the deletion names no author and no sent_at.
  network.rewrite = (frame) => {
    if (frame.type !== 'message' || !frame.deleted) return frame;
    const { sent_at, ...rest } = frame;
    return { ...rest, author: '' };
  };
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  await bob.join('r');
  const { alice } = await conversation(world, relay, 2);
  await until(bob, 'message', () => bob.messages('r').length === 2, { what: 'm1 and m2' });
  const original = bob.messages('r')[0];

  const [byAlice, byBob] = ['alice', 'bob'].map((name) => {
    const client = name === 'alice' ? alice : bob;
    return new Promise((resolve) => {
      const off = client.on('message', (message, info) => {
        if (message.seq !== 1) return;
        off();
        resolve({ message, ...info });
      });
    });
  });
  await relay.collection('messages').deleteOne({ room: 'r', seq: 1 });
  for (const { message, update, previous } of [await byAlice, await byBob]) {
    assert.equal(update, true);
    assert.equal(previous.body.text, 'm1');
    assert.deepEqual(
      [message.deleted, message.body, message.id, message.author, message.sent_at],
      [true, null, original.id, 'alice', original.sent_at],
    );
  }
  assert.ok(network.received.some((frame) => frame.deleted && frame.seq === 1), 'the relay sent the deletion');
  assert.deepEqual(
    bob.messages('r').map((m) => [m.seq, m.author, m.deleted ?? false]),
    [[1, 'alice', true], [2, 'alice', false]],
  );
});

test('deletions of seqs a client does not hold: a late joiner’s tombstone, and one below what it holds', async () => {
  const relay = await world.relay();
  const { alice, acks } = await conversation(world, relay, 3);
  // A client that joined after m2 holds only m3.
  const dave = world.client(relay, 'dave');
  await dave.join('r', { since: 2 });
  assert.deepEqual(seqs(dave.messages('r')), [3]);
  const errors = errorsOf(dave);
  const updates = [];
  dave.on('message', (message, { update }) => updates.push([message.seq, update]));

  // The newest message removed: a tombstone keeps its seq.
  const messages = relay.collection('messages');
  await messages.deleteOne({ room: 'r', seq: 3 });
  await until(alice, 'message', () => alice.messages('r')[2]?.deleted, { what: 'alice sees m3 deleted' });
  await until(dave, 'message', () => dave.messages('r')[0]?.deleted, { what: 'dave sees m3 deleted' });
  await eventually(() => messages.findOne({ room: 'r', seq: 3 }), 'the tombstone of seq 3');
  // And one below what dave holds.
  await messages.deleteOne({ room: 'r', seq: 1 });
  await alice.send('r', { text: 'm4' });
  await until(dave, 'message', () => texts(dave, 'r').at(-1) === 'm4', { what: 'm4' });
  assert.deepEqual(seqs(dave.messages('r')), [3, 4]);
  assert.equal(dave.messages('r')[0].author, 'alice');
  assert.deepEqual(updates.filter(([seq]) => seq !== 3), [[4, false]], 'nothing about seq 1');

  // A late joiner sees the tombstone as a deleted message, and not seq 1.
  const carol = world.client(relay, 'carol');
  await carol.join('r', { since: 0 });
  await until(carol, 'message', () => carol.messages('r').length === 3, { what: 'the replay' });
  assert.deepEqual(
    carol.messages('r').map((m) => [m.seq, m.deleted ?? false, m.id]),
    [[2, false, acks[1].id], [3, true, acks[2].id], [4, false, m4Id(alice)]],
  );
  assert.equal(carol.room('r').hasOlder, false);
  assert.deepEqual([...errors, ...errorsOf(carol)], []);
});

function m4Id(client) {
  return client.messages('r').find((m) => m.seq === 4).id;
}

/** Resolves with what `read()` resolves to once it is truthy, asking every 20 ms for at most 10 s. */
async function eventually(read, what) {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const value = await read();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a replace by another program shows the new body, with or without edited_at', async () => {
  const relay = await world.relay();
  const bob = world.client(relay, 'bob');
  await bob.join('r');
  const { alice } = await conversation(world, relay, 2);
  await until(bob, 'message', () => bob.messages('r').length === 2, { what: 'm1 and m2' });
  const original = bob.messages('r')[0];
  const messages = relay.collection('messages');

  const replaced = next(bob, 'message', (message, { update }) => update && message.seq === 1);
  const sentAt = new Date(original.sent_at);
  await messages.replaceOne(
    { room: 'r', seq: 1 },
    { room: 'r', seq: 1, author: 'alice', body: { text: '[removed by a moderator]' }, sent_at: sentAt },
  );
  const first = await replaced;
  assert.deepEqual([first.id, first.body, first.edited_at], [original.id, { text: '[removed by a moderator]' }, undefined]);
  assert.deepEqual(texts(bob, 'r'), ['[removed by a moderator]', 'm2']);

  // alice edits m2, then a program replaces it with an edited_at older
  // than hers: the latest change wins all the same.
  await alice.edit('r', bob.messages('r')[1].id, { text: 'm2 edited' });
  await until(bob, 'message', () => texts(bob, 'r')[1] === 'm2 edited', { what: 'the edit' });
  const again = next(bob, 'message', (message) => message.seq === 2 && message.body?.text === 'm2 (moderated)');
  await messages.replaceOne(
    { room: 'r', seq: 2 },
    { room: 'r', seq: 2, author: 'alice', body: { text: 'm2 (moderated)' }, sent_at: sentAt, edited_at: new Date(0) },
  );
  await again;
  assert.deepEqual(texts(bob, 'r'), ['[removed by a moderator]', 'm2 (moderated)']);
  await until(alice, 'message', () => texts(alice, 'r')[1] === 'm2 (moderated)', { what: 'alice sees it too' });
  assert.deepEqual(texts(alice, 'r'), texts(bob, 'r'));
});

test('loadOlder pages over removed seqs, and ends where the removed first message was', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 8);
  await relay.collection('messages').deleteMany({ room: 'r', seq: { $in: [1, 4, 5] } });
  const network = new Network();
  const bob = world.client(relay, 'bob', { WebSocket: network.WebSocket });
  const errors = errorsOf(bob);
  await bob.join('r');
  const room = bob.room('r');
  assert.equal(room.hasOlder, true);

  const first = await room.loadOlder({ limit: 2 });
  assert.deepEqual([seqs(first.messages), first.more], [[7, 8], true]);
  const second = await room.loadOlder({ limit: 2 });
  assert.deepEqual([seqs(second.messages), second.more], [[3, 6], true], 'over the hole of 4 and 5');
  assert.equal(room.hasOlder, true);
  const third = await room.loadOlder({ limit: 2 });
  assert.deepEqual([seqs(third.messages), third.more], [[2], false], 'seq 1 was removed: nothing older');
  assert.equal(room.hasOlder, false);
  assert.deepEqual(await room.loadOlder(), { messages: [], more: false });
  assert.deepEqual(
    network.sent.filter((frame) => frame.type === 'history').map((frame) => frame.before),
    [9, 7, 3],
    'nothing asked once a page said nothing older exists',
  );
  assert.deepEqual(seqs(bob.messages('r')), [2, 3, 6, 7, 8]);
  assert.deepEqual(joins(network), [undefined], 'no re-join for the holes');
  assert.deepEqual(errors, []);

  // A room not joined pages the same way.
  const carol = world.client(relay, 'carol');
  const unjoined = carol.room('r');
  assert.deepEqual(seqs((await unjoined.loadOlder({ limit: 4 })).messages), [3, 6, 7, 8]);
  const rest = await unjoined.loadOlder({ limit: 4 });
  assert.deepEqual([seqs(rest.messages), rest.more, unjoined.hasOlder], [[2], false, false]);
});
