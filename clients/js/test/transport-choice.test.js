// Which transport 'auto' picks for each connection, on a clock the test
// moves: WebSocket first, SSE at once after two WebSockets that did not
// open or five seconds spent waiting for them, back to WebSocket when SSE
// does not open either, and for good once SSE opened where no WebSocket
// ever did.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_FALLBACK, TransportChoice, transportMode } from '../src/transports/choice.js';

function auto(fallback) {
  const clock = { now: 0 };
  const choice = new TransportChoice('auto', { fallback, now: () => clock.now });
  return { choice, clock };
}

/** Connections that do not open, one after another: the kinds tried. */
function failing(choice, count) {
  const tried = [];
  for (let n = 0; n < count; n += 1) {
    const kind = choice.next();
    tried.push(kind);
    choice.failed(kind);
  }
  return tried;
}

test('the bounds are two tries or five seconds', () => {
  assert.deepEqual(DEFAULT_FALLBACK, { tries: 2, after: 5000 });
});

test('two WebSockets that do not open, then SSE; SSE not opening either starts over', () => {
  const { choice } = auto();
  assert.deepEqual(failing(choice, 7), ['websocket', 'websocket', 'sse', 'websocket', 'websocket', 'sse', 'websocket']);
});

test('SSE is tried at once after the WebSocket that used up the bounds, and only then', () => {
  const { choice } = auto();
  const now = [];
  for (let n = 0; n < 6; n += 1) now.push(choice.failed(choice.next()));
  assert.deepEqual(now, [false, true, false, false, true, false]);
});

test('a WebSocket still opening when the fallback time runs out is given up then, and SSE tried', () => {
  const { choice, clock } = auto();
  assert.equal(choice.next(), 'websocket');
  assert.equal(choice.connectTimeout('websocket', 10_000), 5_000, 'less than the connect timeout');
  assert.equal(choice.connectTimeout('sse', 10_000), 10_000, 'SSE keeps the connect timeout');
  clock.now = 5_000;
  assert.equal(choice.failed('websocket'), true, 'one try, but the time is up');
  assert.equal(choice.next(), 'sse');
});

test('the time is what the tries took together, not the waits between them', () => {
  const { choice, clock } = auto({ tries: 10 });
  choice.next();
  clock.now = 3_000;
  assert.equal(choice.failed('websocket'), false);
  // A backoff wait of a minute.
  clock.now = 63_000;
  assert.equal(choice.next(), 'websocket');
  assert.equal(choice.connectTimeout('websocket', 10_000), 2_000, 'what is left of the five seconds');
  clock.now = 64_000;
  assert.equal(choice.failed('websocket'), false);
  clock.now = 70_000;
  choice.next();
  clock.now = 71_000;
  assert.equal(choice.failed('websocket'), true, '3 + 1 + 1 s');
  assert.equal(choice.next(), 'sse');
});

test('once SSE opened and no WebSocket ever did, every later connection is SSE', () => {
  const { choice } = auto();
  failing(choice, 2);
  choice.opened(choice.next());
  assert.deepEqual(failing(choice, 5), ['sse', 'sse', 'sse', 'sse', 'sse']);
});

test('once a WebSocket opened, each drop tries WebSocket first, and falls back the same way', () => {
  const { choice } = auto();
  choice.opened(choice.next());
  assert.deepEqual(failing(choice, 2), ['websocket', 'websocket']);
  assert.equal(choice.next(), 'sse');
  choice.opened('sse');
  assert.equal(choice.next(), 'websocket', 'after a drop of SSE, WebSocket first again');
});

test('an open connection resets the count', () => {
  const { choice } = auto();
  failing(choice, 1);
  choice.opened(choice.next());
  assert.deepEqual(failing(choice, 3), ['websocket', 'websocket', 'sse']);
});

test('the bounds can be set', () => {
  const { choice } = auto({ tries: 1 });
  assert.deepEqual(failing(choice, 2), ['websocket', 'sse']);
});

test('a fixed transport is never changed, and has no fallback time', () => {
  for (const mode of ['websocket', 'sse']) {
    const choice = new TransportChoice(mode);
    const kinds = failing(choice, 4);
    assert.deepEqual(kinds, [mode, mode, mode, mode]);
    assert.equal(choice.connectTimeout(mode, 10_000), 10_000);
  }
});

test('the mode follows what the platform has', () => {
  const WebSocket = class {};
  const fetch = () => {};
  assert.equal(transportMode(undefined, { WebSocket, fetch }), 'auto');
  assert.equal(transportMode('auto', { fetch }), 'sse');
  assert.equal(transportMode('auto', { WebSocket }), 'websocket');
  assert.throws(() => transportMode('auto', {}), /no WebSocket implementation.*or no fetch/);
  assert.throws(() => transportMode('sse', { WebSocket }), /no fetch/);
  assert.throws(() => transportMode('websocket', { fetch }), /no WebSocket/);
  assert.throws(() => transportMode('polling', { WebSocket, fetch }), /transport must be one of/);
});
