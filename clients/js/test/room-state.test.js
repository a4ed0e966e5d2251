// RoomState on its own: seq order, duplicates, updates, holes, capped
// replays. No relay needed; the relay tests cover the same paths end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomState } from '../src/room.js';

const message = (seq, extra = {}) => ({ room: 'r', seq, id: `m${seq}`, author: 'a', body: { n: seq }, ...extra });
const seqs = (result) => result.emitted.map(({ message }) => message.seq);

test('messages after the join are shown in seq order, duplicates dropped', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  assert.deepEqual(seqs(room.accept(message(1))), [1]);
  assert.deepEqual(seqs(room.accept(message(2))), [2]);
  assert.deepEqual(seqs(room.accept(message(1))), [], 'a replayed duplicate');
  assert.deepEqual(room.list().map((m) => m.seq), [1, 2]);
  assert.equal(room.since, 2);
});

test('a frame with a held seq replaces the message when it is an edit or a deletion', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.accept(message(1));
  const edited = room.accept(message(1, { body: { n: 'x' }, edited_at: '2026-01-01T00:00:01.000Z' }));
  assert.equal(edited.emitted[0].previous.body.n, 1);
  assert.deepEqual(seqs(room.accept(message(1))), [], 'the original, replayed again, is older');
  const deleted = room.accept(message(1, { body: null, deleted: true }));
  assert.equal(deleted.emitted[0].message.deleted, true);
  assert.deepEqual(seqs(room.accept(message(1, { edited_at: '2026-01-01T00:00:02.000Z' }))), [], 'deletion is final');
});

test('messages past a hole are held back until it is filled', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.accept(message(1));
  const early = room.accept(message(3));
  assert.deepEqual(seqs(early), []);
  assert.equal(early.gap, true);
  assert.equal(room.since, 1, 'a re-join asks from the last seq held without a hole');
  const filled = room.accept(message(2));
  assert.deepEqual(seqs(filled), [2, 3]);
  assert.equal(filled.gap, false);
});

test('a hole that cannot be filled is skipped and reported', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.accept(message(1));
  room.accept(message(4));
  room.accept(message(5));
  const skipped = room.skipHole();
  assert.deepEqual(skipped.lost, { from: 2, to: 3 });
  assert.deepEqual(seqs(skipped), [4, 5]);
  assert.equal(room.skipHole(), null);
});

test('a join without since starts at the room seq', () => {
  const room = new RoomState('r');
  room.joined(7, false, undefined);
  assert.deepEqual(seqs(room.accept(message(3, { edited_at: 't' }))), [], 'an edit of a message never asked for');
  assert.deepEqual(seqs(room.accept(message(8))), [8]);
});

test('a lower since fills older history in', () => {
  const room = new RoomState('r');
  room.joined(5, false, undefined);
  room.accept(message(6));
  room.joined(6, true, 3);
  assert.deepEqual(seqs(room.accept(message(4))), [4]);
  assert.deepEqual(seqs(room.accept(message(5))), [5]);
  assert.deepEqual(seqs(room.accept(message(6))), [], 'already held');
  assert.deepEqual(room.list().map((m) => m.seq), [4, 5, 6]);
});

test('a capped replay restarts the known history at its first message', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.accept(message(1));
  const info = room.joined(10, false, 1);
  assert.deepEqual(info, { historyLost: true, reset: false });
  assert.deepEqual(seqs(room.accept(message(8))), [8]);
  assert.deepEqual(seqs(room.accept(message(9))), [9]);
  assert.equal(room.since, 9);
});

test('a since beyond the room seq discards what the database does not have', () => {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.accept(message(1));
  room.accept(message(2));
  assert.deepEqual(room.joined(0, false, 2), { historyLost: true, reset: true });
  assert.deepEqual(room.list(), []);
  assert.deepEqual(seqs(room.accept(message(1))), [1]);
});

test('the oldest messages are pruned past the limit and not taken back', () => {
  const room = new RoomState('r', { maxMessages: 10 });
  room.joined(0, true, 0);
  for (let seq = 1; seq <= 11; seq += 1) room.accept(message(seq));
  assert.equal(room.list().length, 9);
  assert.equal(room.list()[0].seq, 3);
  assert.deepEqual(seqs(room.accept(message(2, { edited_at: 't' }))), []);
});

test('a page of older messages is merged below what is held and lowers the floor', () => {
  const room = new RoomState('r');
  room.joined(10, false, undefined);
  room.accept(message(11));
  assert.equal(room.olderBefore, 11);
  const { page, emitted } = room.older([message(8), message(9), message(10)], { before: 11, more: true });
  assert.deepEqual(page.map((m) => m.seq), [8, 9, 10]);
  assert.deepEqual(emitted, [], 'nothing held was replaced');
  assert.deepEqual(room.list().map((m) => m.seq), [8, 9, 10, 11]);
  assert.equal(room.olderBefore, 8);
  assert.deepEqual(seqs(room.accept(message(9, { edited_at: 't' }))), [9], 'an edit of a loaded message is an update');
  room.older([message(1), message(3)], { before: 8, more: false });
  assert.equal(room.olderBefore, 1, 'nothing older exists (2 and 4 to 7 were removed)');
});

test('an edit relayed while a page is on its way wins over the page', () => {
  const room = new RoomState('r');
  room.joined(5, false, undefined);
  room.expectOlder();
  const edit = message(4, { body: { n: 'edited' }, edited_at: '2026-01-01T00:00:01.000Z' });
  assert.deepEqual(seqs(room.accept(edit)), [], 'below the floor: kept for the page');
  const { page } = room.older([message(3), message(4), message(5)], { before: 6, more: true });
  assert.deepEqual(page.map((m) => m.body.n), [3, 'edited', 5]);
  assert.equal(room.olderUpdates, null);
});

test('a held message newer than the page is kept, an older one replaced', () => {
  const room = new RoomState('r');
  room.joined(2, true, 0);
  room.accept(message(1, { body: { n: 'new' }, edited_at: '2026-01-01T00:00:02.000Z' }));
  room.accept(message(2));
  const deleted = message(2, { body: null, deleted: true });
  const { page, emitted } = room.older([message(1), deleted], { before: 3, more: false });
  assert.deepEqual(page.map((m) => m.body?.n ?? null), ['new', null]);
  assert.deepEqual(emitted.map(({ message, previous }) => [message.seq, previous.body.n]), [[2, 2]]);
});

test('a page that does not reach down from what is held is left out', () => {
  const room = new RoomState('r');
  room.joined(20, false, undefined);
  const { page } = room.older([message(5)], { before: 6, more: true });
  assert.deepEqual(page, []);
  assert.deepEqual(room.list(), []);
  assert.equal(room.olderBefore, 21);
});
