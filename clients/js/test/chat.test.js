// The library against a real relay and database: rooms, writes, and what
// the relay refuses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelays, texts } from './support/fixture.js';
import { until } from './support/wait.js';

const world = useRelays();

test('two users chat in a room, each message once and in seq order', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('lobby', { since: 0 }), bob.join('lobby', { since: 0 })]);
  const ack = await alice.send('lobby', { text: 'hi bob' });
  assert.equal(ack.seq, 1);
  await bob.send('lobby', { text: 'hi alice' });
  for (const client of [alice, bob]) {
    await until(client, 'message', () => client.messages('lobby').length === 2, { what: 'both messages' });
    assert.deepEqual(texts(client, 'lobby'), ['hi bob', 'hi alice']);
    assert.deepEqual(client.messages('lobby').map((m) => m.author), ['alice', 'bob']);
  }
  assert.deepEqual(alice.pending(), []);
});

test('edits and deletions arrive as updates of the same seq', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  const updates = [];
  bob.on('message', (message, { update, previous }) => {
    if (update) updates.push({ seq: message.seq, before: previous.body, after: message.body, deleted: !!message.deleted });
  });
  const { id, seq } = await alice.send('r', { text: 'tpyo' });
  await alice.edit('r', id, { text: 'typo' });
  await until(bob, 'message', () => bob.messages('r')[0]?.edited_at, { what: 'the edit' });
  assert.deepEqual(texts(bob, 'r'), ['typo']);
  await alice.delete('r', id);
  await until(bob, 'message', () => bob.messages('r')[0]?.deleted, { what: 'the deletion' });
  assert.deepEqual(updates, [
    { seq, before: { text: 'tpyo' }, after: { text: 'typo' }, deleted: false },
    { seq, before: { text: 'typo' }, after: null, deleted: true },
  ]);
  assert.equal(bob.messages('r').length, 1);
});

test('history fetches the last messages of a room', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  await alice.join('r');
  for (let n = 1; n <= 8; n += 1) await alice.send('r', { text: `m${n}` });
  const carol = world.client(relay, 'carol');
  const joined = await carol.join('r', { history: 3 });
  assert.equal(joined.seq, 8);
  assert.deepEqual(texts(carol, 'r'), ['m6', 'm7', 'm8'], 'join resolves once the history is in');
  await alice.send('r', { text: 'm9' });
  await until(carol, 'message', () => carol.messages('r').length === 4, { what: 'the live message' });
});

test('refused writes reject with the relay error code and are not retried', async () => {
  const relay = await world.relay({ ROOMCAST__LIMITS__MAX_BODY_BYTES: '100' });
  const alice = world.client(relay, 'alice');
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await assert.rejects(alice.send('elsewhere', 'x'), { code: 'not_joined' });
  await assert.rejects(alice.send('r', 'x'.repeat(200)), { code: 'too_large' });
  await assert.rejects(alice.send('no rooms with spaces', 'x'), { code: 'invalid_room' });
  const { id } = await bob.send('r', { text: 'mine' });
  await assert.rejects(alice.edit('r', id, { text: 'yours now' }), { code: 'forbidden' });
  await assert.rejects(alice.delete('r', '000000000000000000000000'), { code: 'not_found' });
  await assert.rejects(alice.send('r', 'x'.repeat(200_000)), { code: 'too_large' }, 'refused before it is sent');
  assert.deepEqual(alice.pending(), []);
  assert.equal(alice.state, 'open', 'the connection stays up');
});

test('leave stops the room and forgets its history', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice');
  await alice.join('r');
  await alice.send('r', { text: 'one' });
  await until(alice, 'message', () => alice.messages('r').length === 1);
  await alice.leave('r');
  assert.deepEqual(alice.rooms(), []);
  assert.deepEqual(alice.messages('r'), []);
  await alice.join('r', { since: 0 });
  assert.deepEqual(texts(alice, 'r'), ['one']);
});
