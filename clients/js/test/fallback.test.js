// transport: 'auto' behind an HTTP proxy that breaks WebSocket upgrades as
// corporate networks do (refuses them, strips them, cuts them, or never
// answers): the client falls back to SSE within its bounds, says so with
// `transport`, and stays there; through a proxy that passes upgrades it
// keeps WebSocket; and once a WebSocket has worked, every drop tries
// WebSocket first again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_FALLBACK } from '../src/index.js';
import { useRelays } from './support/fixture.js';
import { useProxies } from './support/proxy.js';
import { next, until } from './support/wait.js';

const world = useRelays();
const proxyTo = useProxies();

/** Resolves once the client is open, failing after `timeout` ms. */
function opened(client, timeout = 10_000) {
  return until(client, 'state', () => client.state === 'open', { timeout, what: 'an open connection' });
}

/** The client's transport names as the `transport` event gives them. */
function transportEvents(client) {
  const names = [];
  client.on('transport', (name) => names.push(name));
  return names;
}

for (const upgrades of ['refuse', 'strip', 'cut']) {
  test(`auto: a proxy that ${upgrades === 'strip' ? 'strips the upgrade' : `${upgrades}s upgrades`} gets SSE after two WebSocket tries, and keeps it`, async () => {
    const relay = await world.relay();
    const proxy = await proxyTo(relay, upgrades);
    const started = Date.now();
    const alice = world.client(proxy, 'alice');
    const changes = transportEvents(alice);
    await opened(alice);
    const elapsed = Date.now() - started;
    assert.equal(alice.transport, 'sse');
    assert.deepEqual(changes, ['sse']);
    assert.equal(proxy.upgradesAsked, DEFAULT_FALLBACK.tries);
    assert.ok(elapsed < DEFAULT_FALLBACK.after, `open after ${elapsed} ms`);
    await alice.join('r');
    assert.equal((await alice.send('r', { text: 'through the proxy' })).seq, 1);
    assert.ok(proxy.requests.some(({ method, path }) => method === 'POST' && path.startsWith('/sse/')));

    // SSE worked where WebSocket never did: after a drop, straight back to SSE.
    const rejoined = next(alice, 'joined', (info) => info.rejoin);
    proxy.cutAll();
    await rejoined;
    assert.equal(proxy.upgradesAsked, DEFAULT_FALLBACK.tries, 'WebSocket not tried again');
    assert.deepEqual(changes, ['sse']);
  });
}

test('auto: a proxy that never answers the upgrade gets SSE once the fallback time is up, before the connect timeout', async () => {
  const relay = await world.relay();
  const proxy = await proxyTo(relay, 'hang');
  const started = Date.now();
  const alice = world.client(proxy, 'alice');
  const changes = transportEvents(alice);
  await opened(alice, 15_000);
  const elapsed = Date.now() - started;
  assert.equal(proxy.upgradesAsked, 1, 'one WebSocket, left hanging');
  assert.deepEqual(changes, ['sse']);
  assert.ok(elapsed >= DEFAULT_FALLBACK.after - 100 && elapsed < 10_000, `open after ${elapsed} ms`);
});

test('auto: a proxy that passes upgrades gets a WebSocket, and SSE is never asked for', async () => {
  const relay = await world.relay();
  const proxy = await proxyTo(relay, 'pass');
  const alice = world.client(proxy, 'alice');
  const changes = transportEvents(alice);
  await alice.join('r');
  await alice.send('r', { text: 'over a WebSocket' });
  assert.equal(alice.transport, 'websocket');
  assert.deepEqual(changes, ['websocket']);
  assert.equal(proxy.upgradesAsked, 1);
  assert.ok(!proxy.requests.some(({ path }) => path.startsWith('/sse')), 'no SSE request');
});

test('auto: once a WebSocket opened, each drop tries WebSocket first, falling back and coming back', async () => {
  const relay = await world.relay();
  const proxy = await proxyTo(relay, 'pass');
  const alice = world.client(proxy, 'alice');
  const changes = transportEvents(alice);
  await alice.join('r');
  assert.equal(alice.transport, 'websocket');

  // The laptop moves to a network that refuses upgrades.
  proxy.upgrades = 'refuse';
  const overSse = next(alice, 'joined', (info) => info.rejoin && alice.transport === 'sse');
  proxy.cutAll();
  await overSse;
  assert.equal(proxy.upgradesAsked, 1 + DEFAULT_FALLBACK.tries, 'WebSocket tried first, twice');
  assert.equal((await alice.send('r', { text: 'over SSE' })).seq, 1);

  // And back: after the next drop, WebSocket first, and it opens.
  proxy.upgrades = 'pass';
  const overWebSocket = next(alice, 'joined', (info) => info.rejoin && alice.transport === 'websocket');
  proxy.cutAll();
  await overWebSocket;
  assert.equal(proxy.upgradesAsked, 2 + DEFAULT_FALLBACK.tries);
  assert.deepEqual(changes, ['websocket', 'sse', 'websocket']);
  assert.equal((await alice.send('r', { text: 'over a WebSocket again' })).seq, 2);
});
