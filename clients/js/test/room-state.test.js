// RoomState on its own: seq order, duplicates, updates, holes (lost frames
// and removed seqs), capped replays. No relay needed; the relay tests cover
// the same paths end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomState } from '../src/room.js';

const message = (seq, extra = {}) => ({ room: 'r', seq, id: `m${seq}`, author: 'a', body: { n: seq }, ...extra });
const seqs = (result) => result.emitted.map(({ message }) => message.seq);
const seqsOf = (emitted) => emitted.map(({ message }) => message.seq);

/** A room joined with since 0 on an empty room, its (empty) replay complete. */
function joinedEmpty() {
  const room = new RoomState('r');
  room.joined(0, true, 0);
  room.settled();
  return room;
}

test('messages after the join are shown in seq order, duplicates dropped', () => {
  const room = joinedEmpty();
  assert.deepEqual(seqs(room.accept(message(1))), [1]);
  assert.deepEqual(seqs(room.accept(message(2))), [2]);
  assert.deepEqual(seqs(room.accept(message(1))), [], 'a replayed duplicate');
  assert.deepEqual(room.list().map((m) => m.seq), [1, 2]);
  assert.equal(room.since, 2);
});

test('a live frame with a held seq replaces the message, but nothing un-deletes it', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  const edited = room.accept(message(1, { body: { n: 'x' }, edited_at: '2026-01-01T00:00:01.000Z' }));
  assert.equal(edited.emitted[0].previous.body.n, 1);
  assert.deepEqual(seqs(room.accept(message(1, { body: { n: 'x' }, edited_at: '2026-01-01T00:00:01.000Z' }))), [], 'the same state again');
  // Replaced by another program: a new body, no edited_at.
  const replaced = room.accept(message(1, { body: { n: 'replaced' } }));
  assert.deepEqual(replaced.emitted.map(({ message }) => message.body.n), ['replaced']);
  // Edited on a replica whose clock is behind: still the latest state.
  const behind = room.accept(message(1, { body: { n: 'y' }, edited_at: '2026-01-01T00:00:00.500Z' }));
  assert.deepEqual(behind.emitted.map(({ message }) => message.body.n), ['y']);
  const deleted = room.accept(message(1, { body: null, deleted: true }));
  assert.equal(deleted.emitted[0].message.deleted, true);
  assert.deepEqual(seqs(room.accept(message(1, { edited_at: '2026-01-01T00:00:02.000Z' }))), [], 'deletion is final');
});

test('a replayed frame replaces a held message only with a state certainly newer', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  room.accept(message(2, { body: { n: 'edited' }, edited_at: '2026-01-01T00:00:02.000Z' }));
  // A join with a lower since replays 1 and 2 as read before that edit.
  room.joined(2, true, 0);
  assert.deepEqual(seqs(room.accept(message(1))), []);
  assert.deepEqual(seqs(room.accept(message(2, { body: { n: 'older' }, edited_at: '2026-01-01T00:00:01.000Z' }))), []);
  assert.equal(room.list()[1].body.n, 'edited');
  room.settled();
  room.joined(2, true, 0);
  const deleted = room.accept(message(1, { body: null, deleted: true }));
  assert.equal(deleted.emitted[0].message.deleted, true, 'a deletion is newer than any state');
});

test('a deletion without author or sent_at keeps those of the message held', () => {
  const room = joinedEmpty();
  room.accept(message(1, { sent_at: '2026-01-01T00:00:00.000Z' }));
  room.accept(message(3, { sent_at: '2026-01-01T00:00:03.000Z' }));
  // As relayed from a collection sharded by room and seq.
  const gone = { room: 'r', seq: 1, id: 'm1', author: '', body: null, deleted: true };
  const [{ message: deleted, previous }] = room.accept(gone).emitted;
  assert.deepEqual(
    [deleted.deleted, deleted.body, deleted.author, deleted.sent_at],
    [true, null, 'a', '2026-01-01T00:00:00.000Z'],
  );
  assert.equal(previous.body.n, 1);
  // Held back too: the deletion of 3 arrives before 2 is filled.
  room.accept({ ...gone, seq: 3, id: 'm3' });
  assert.deepEqual(room.ahead.get(3).author, 'a');
  // A deletion of a seq never held shows as a deleted message where it is in order.
  assert.deepEqual(seqs(room.accept({ ...gone, seq: 2, id: 'm2' })), [2, 3]);
  assert.equal(room.list()[2].sent_at, '2026-01-01T00:00:03.000Z');
});

test('messages past a hole are held back until it is filled', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  const early = room.accept(message(3));
  assert.deepEqual(seqs(early), []);
  assert.equal(early.gap, true);
  assert.equal(room.since, 1, 'a re-join asks from the last seq held without a hole');
  const filled = room.accept(message(2));
  assert.deepEqual(seqs(filled), [2, 3]);
  assert.equal(filled.gap, false);
});

test('a live hole waits while a join is answered, and is asked for once the answer is complete', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  assert.equal(room.accept(message(3)).gap, true);
  // The re-join is answered: no second re-join while its replay arrives.
  room.joined(3, true, 1);
  assert.deepEqual(seqs(room.accept(message(2))), [2, 3]);
  assert.equal(room.accept(message(3)).gap, false, 'replayed again: a duplicate');
  assert.deepEqual(seqsOf(room.settled()), []);
  assert.equal(room.since, 3);
});

test('a replay past a removed seq shows what follows at once', () => {
  const room = joinedEmpty();
  for (let seq = 1; seq <= 3; seq += 1) room.accept(message(seq));
  // Reconnected: 4 to 6 were sent meanwhile, and 5 removed.
  room.joined(6, true, 3);
  const four = room.accept(message(4));
  const six = room.accept(message(6));
  assert.deepEqual([seqs(four), seqs(six)], [[4], [6]]);
  assert.equal(six.gap, false);
  assert.deepEqual(room.settled(), []);
  assert.equal(room.since, 6);
  assert.deepEqual(seqs(room.accept(message(7))), [7], 'live messages follow');
  assert.deepEqual(room.list().map((m) => m.seq), [1, 2, 3, 4, 6, 7]);
});

test('messages held back below the joined seq are shown when the replay skips or ends', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  // 2 lost on the way, 3 and 4 held back; by the re-join, 2 and 3 were removed.
  room.accept(message(3));
  room.accept(message(4));
  room.joined(5, true, 1);
  assert.deepEqual(seqs(room.accept(message(4))), [3, 4], 'the replay reached a message held back');
  assert.deepEqual(seqs(room.accept(message(5))), [5]);
  assert.equal(room.since, 5);

  // A replay that ends below what was held back (2 to 4 removed since):
  // everything received before joined was committed, so the holes below it
  // were removed too, settled once the replay is complete.
  const late = joinedEmpty();
  late.accept(message(1));
  late.accept(message(4));
  late.joined(1, true, 1);
  assert.deepEqual(seqsOf(late.settled()), [4]);
  assert.equal(late.since, 4);
});

test('a hole above the joined seq is a live one: settled replays leave it for a re-join', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  room.joined(3, true, 1);
  room.accept(message(3));
  // Live after the replay: 4 was lost, 5 arrived, before the pong.
  assert.equal(room.accept(message(5)).gap, false, 'not before the answer is complete');
  assert.deepEqual(seqsOf(room.settled()), []);
  assert.equal(room.since, 3);
  assert.equal(room.accept(message(6)).gap, true, 'then a re-join fills it');
  room.joined(6, true, 3);
  assert.deepEqual(seqs(room.accept(message(4))), [4, 5, 6]);
});

test('a replay that brought nothing up to the joined seq settles the range at once', () => {
  const room = joinedEmpty();
  room.accept(message(1));
  room.joined(4, true, 1);
  // 2 to 4 removed, and the tombstone of 4 not written yet when read.
  assert.deepEqual(seqsOf(room.settled()), []);
  assert.equal(room.since, 4);
  assert.deepEqual(seqs(room.accept(message(4, { body: null, deleted: true }))), [], 'a removed seq has nothing to update');
  assert.deepEqual(seqs(room.accept(message(5))), [5]);
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
  const room = joinedEmpty();
  room.accept(message(1));
  const info = room.joined(10, false, 1);
  assert.deepEqual(info, { historyLost: true, reset: false });
  assert.deepEqual(seqs(room.accept(message(8))), [8]);
  assert.deepEqual(seqs(room.accept(message(9))), [9]);
  assert.equal(room.since, 9);
});

test('a since beyond the room seq discards what the database does not have', () => {
  const room = joinedEmpty();
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
