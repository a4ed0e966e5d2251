// Tokens: passed in Sec-WebSocket-Protocol as the relay expects from
// browsers, refreshed through the token function when one expires (4001).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, SUBPROTOCOL } from '../src/index.js';
import { useRelays } from './support/fixture.js';
import { JWT_ENV, token } from './support/jwt.js';
import { Network } from './support/network.js';
import { next, until } from './support/wait.js';

const world = useRelays();
const jwtRelay = () => world.relay(JWT_ENV);

test('the token travels as a subprotocol and names the user', async () => {
  const relay = await jwtRelay();
  const network = new Network();
  const signed = token('dana', 600);
  const dana = connect(relay.wsUrl(), { token: signed, WebSocket: network.WebSocket });
  try {
    await dana.join('r');
    const ack = await dana.send('r', { text: 'signed' });
    await until(dana, 'message', () => dana.messages('r').length === 1);
    assert.equal(dana.messages('r')[0].author, 'dana');
    assert.equal(ack.seq, 1);
    assert.deepEqual(network.current.protocols, [SUBPROTOCOL, `bearer.${signed}`]);
    assert.equal(network.current.protocol, SUBPROTOCOL, 'the relay answers roomcast.v1');
    assert.ok(!network.urls[0].includes('token'), 'nothing in the query string');
  } finally {
    dana.close();
  }
});

test('an expired token (4001) is reported, refreshed, and the room rejoined', async () => {
  const relay = await jwtRelay();
  let issued = 0;
  // The first token lives two seconds; the ones after, ten minutes.
  const dana = connect(relay.wsUrl(), { token: async () => token('dana', issued++ === 0 ? 2 : 600) });
  try {
    await dana.join('r');
    await dana.send('r', { text: 'before' });
    await until(dana, 'message', () => dana.messages('r').length === 1);
    const expired = next(dana, 'error', (error) => error.code === 'token_expired', { timeout: 10_000 });
    const waiting = next(dana, 'state', ({ state }) => state === 'waiting', { timeout: 10_000 });
    await expired;
    assert.equal((await waiting).code, 4001);
    const rejoined = await next(dana, 'joined', (info) => info.rejoin);
    assert.equal(rejoined.since, 1);
    assert.equal(issued, 2, 'a fresh token for the new connection');
    await dana.send('r', { text: 'after' });
    await until(dana, 'message', () => dana.messages('r').length === 2);
  } finally {
    dana.close();
  }
});

test('a refused token keeps the client backing off until a valid one is set', async () => {
  const relay = await jwtRelay();
  const dana = connect(relay.wsUrl(), { token: 'not-a-jwt', backoff: { base: 50, cap: 200 } });
  try {
    await next(dana, 'state', ({ state, attempt }) => state === 'waiting' && attempt >= 2);
    dana.setToken(token('dana', 600));
    await dana.whenOpen();
    await dana.join('r');
  } finally {
    dana.close();
  }
});
