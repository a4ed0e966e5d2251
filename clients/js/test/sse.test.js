// The SSE transport (`transport: 'sse'`) against a real relay and
// database: everything a WebSocket client does (rooms, writes, replay
// after a drop, notification recovery, presence and typing with WebSocket
// users, history, read markers, a relay shutdown, tokens), with frames up
// in one POST at a time, batched, within the relay's limits, and POSTs
// the relay refuses. fallback.test.js has 'auto'.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../src/index.js';
import { conversation, texts, useRelays } from './support/fixture.js';
import { JWT_ENV, token } from './support/jwt.js';
import { useProxies } from './support/proxy.js';
import { next, until } from './support/wait.js';

const world = useRelays();
const proxyTo = useProxies();

/**
 * A fetch that records every request (`{method, url, headers, body,
 * status}`) and the most POSTs it had under way at once. `rewrite(url,
 * init)` may change a request on its way, to make the relay refuse it;
 * `answer(url, init)` may answer it instead of the relay.
 */
function recordingFetch() {
  const record = { requests: [], posting: 0, mostPosting: 0, rewrite: (url) => url, answer: () => undefined };
  record.fetch = async (url, init = {}) => {
    const request = { method: init.method ?? 'GET', url: String(url), headers: { ...init.headers }, body: init.body };
    record.requests.push(request);
    const sent = record.rewrite(request.url, init);
    if (request.method !== 'POST') return fetch(sent, init);
    record.posting += 1;
    record.mostPosting = Math.max(record.mostPosting, record.posting);
    try {
      const response = record.answer(sent, init) ?? (await fetch(sent, init));
      request.status = response.status;
      return response;
    } finally {
      record.posting -= 1;
    }
  };
  record.posts = () => record.requests.filter((request) => request.method === 'POST');
  record.streams = () => record.requests.filter((request) => request.method === 'GET');
  /** Every frame POSTed, in order, whether sent alone or in an array. */
  record.frames = () => record.posts().flatMap((request) => [].concat(JSON.parse(request.body)));
  return record;
}

/** Resolves once the room's member list is exactly `users`. */
function presenceIs(client, room, users) {
  const listed = () => JSON.stringify([...(client.room(room).presence ?? [])]) === JSON.stringify(users);
  return until(client, 'presence', listed, { what: `${room} to list ${users.join(', ')}` });
}

/** `promise`, or a failure as soon as the client's connection drops meanwhile. */
async function withoutDrop(client, promise) {
  let off;
  const dropped = new Promise((resolve, reject) => {
    off = client.on('state', ({ state, code, reason }) => {
      if (state === 'waiting') reject(new Error(`the connection dropped (${code}): ${reason}`));
    });
  });
  try {
    return await Promise.race([promise, dropped]);
  } finally {
    off();
  }
}

const sse = { transport: 'sse' };

test('over SSE: a join, sends acknowledged in order and relayed to a WebSocket user, one POST at a time', async () => {
  const relay = await world.relay();
  const record = recordingFetch();
  const alice = world.client(relay, 'alice', { ...sse, fetch: record.fetch });
  const changes = [];
  alice.on('transport', (name) => changes.push(name));
  const bob = world.client(relay, 'bob');
  assert.equal(alice.transport, null, 'nothing before the first open');
  await Promise.all([alice.join('r'), bob.join('r')]);
  assert.equal(alice.transport, 'sse');
  assert.deepEqual(changes, ['sse']);
  assert.equal(bob.transport, 'websocket');

  // Sent at once: the first goes alone, the rest queue behind it.
  const wanted = Array.from({ length: 20 }, (_, n) => `m${n + 1}`);
  const acks = await withoutDrop(alice, Promise.all(wanted.map((text) => alice.send('r', { text }))));
  assert.deepEqual(acks.map((ack) => ack.seq), wanted.map((_, n) => n + 1), 'committed in the order sent');
  for (const client of [alice, bob]) {
    await until(client, 'message', () => client.messages('r').length === 20, { what: 'the 20 messages' });
    assert.deepEqual(texts(client, 'r'), wanted);
  }

  const [stream] = record.streams();
  assert.equal(record.streams().length, 1);
  assert.equal(new URL(stream.url).pathname, '/sse');
  assert.equal(new URL(stream.url).searchParams.get('user'), 'alice');
  assert.equal(stream.headers.Accept, 'text/event-stream');
  assert.equal(record.mostPosting, 1, 'never two POSTs under way');
  const sessions = new Set(record.posts().map((post) => new URL(post.url).pathname));
  assert.equal(sessions.size, 1, 'one session');
  assert.match([...sessions][0], /^\/sse\/[^/]+$/);
  for (const post of record.posts()) {
    assert.equal(post.headers['Content-Type'], 'application/json');
    assert.equal(new URL(post.url).searchParams.get('user'), 'alice', 'the same identity as the stream');
    assert.equal(post.status, 204);
  }
  assert.ok(record.posts().some((post) => post.body.startsWith('[')), 'frames queued meanwhile went as one array');
  const sentIds = record.frames().filter((frame) => frame.type === 'send').map((frame) => frame.client_id);
  assert.deepEqual(sentIds, acks.map((ack) => ack.client_id), 'each send POSTed once, in order');
});

test('over SSE: a POST body stays within the relay’s frame limit, so a large batch is split', async () => {
  const relay = await world.relay();
  const record = recordingFetch();
  const alice = world.client(relay, 'alice', { ...sse, fetch: record.fetch });
  await alice.join('r');
  const large = 'x'.repeat(30_000);
  const acks = await withoutDrop(alice, Promise.all(Array.from({ length: 8 }, (_, n) => alice.send('r', { text: `${n} ${large}` }))));
  assert.deepEqual(acks.map((ack) => ack.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  const sizes = record.posts().map((post) => Buffer.byteLength(post.body));
  assert.ok(sizes.every((size) => size <= 81_920), `bodies of ${sizes.join(', ')} bytes`);
  assert.ok(record.posts().some((post) => post.body.startsWith('[') && JSON.parse(post.body).length > 1), 'batched where they fit');
  assert.ok(record.posts().every((post) => post.status === 204));
});

test('over SSE: a burst goes in POSTs of at most 100 frames, the most the relay takes in one', async () => {
  const relay = await world.relay();
  const record = recordingFetch();
  const alice = world.client(relay, 'alice', { ...sse, fetch: record.fetch });
  await alice.join('r');
  const acks = await withoutDrop(alice, Promise.all(Array.from({ length: 250 }, (_, n) => alice.send('r', { n }))));
  assert.deepEqual(acks.map((ack) => ack.seq), Array.from({ length: 250 }, (_, n) => n + 1));
  const counts = record.posts().map((post) => [].concat(JSON.parse(post.body)).length);
  assert.ok(Math.max(...counts) === 100, `frames per POST: ${counts.join(', ')}`);
  assert.ok(record.posts().every((post) => post.status === 204));
});

test('over SSE: a dropped stream reconnects, and the re-join replays what was missed', async () => {
  const relay = await world.relay();
  const proxy = await proxyTo(relay);
  const alice = world.client(proxy, 'alice', sse);
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await bob.send('r', { text: 'm1' });
  await until(alice, 'message', () => alice.messages('r').length === 1);

  proxy.offline = true;
  const waiting = next(alice, 'state', ({ state }) => state === 'waiting');
  proxy.cutAll();
  assert.equal((await waiting).code, 1006, 'a stream that ends without a close frame');
  for (const text of ['m2', 'm3', 'm4']) await bob.send('r', { text });
  proxy.offline = false;
  const rejoined = next(alice, 'joined', (info) => info.rejoin);
  alice.reconnectNow();
  const { since, recovered } = await rejoined;
  assert.deepEqual([since, recovered], [1, true]);
  await until(alice, 'message', () => alice.messages('r').length === 4, { what: 'the replay' });
  assert.deepEqual(texts(alice, 'r'), ['m1', 'm2', 'm3', 'm4']);
  assert.equal(alice.transport, 'sse');
  const streams = proxy.requests.filter(({ method, path }) => method === 'GET' && path.startsWith('/sse'));
  assert.ok(streams.length >= 2, 'a new stream');
});

test('over SSE: notifications missed during a drop are recovered from the cursor', async () => {
  const relay = await world.relay();
  const proxy = await proxyTo(relay);
  const bob = world.client(proxy, 'bob', sse);
  const notes = [];
  bob.on('notification', (notification) => notes.push(notification.data.n));
  await bob.whenOpen();
  await relay.collection('notifications').insertOne({ user: 'bob', n: 1 });
  await until(bob, 'notification', () => notes.length === 1);
  const { notifications: cursor } = bob.cursors;

  proxy.offline = true;
  const waiting = next(bob, 'state', ({ state }) => state === 'waiting');
  proxy.cutAll();
  await waiting;
  await relay.collection('notifications').insertMany([{ user: 'bob', n: 2 }, { user: 'bob', n: 3 }]);
  proxy.offline = false;
  const recovery = next(bob, 'recovery');
  bob.reconnectNow();
  assert.deepEqual(await recovery, { route: 'notifications', recovered: true });
  await until(bob, 'notification', () => notes.length === 3);
  assert.deepEqual(notes, [1, 2, 3], 'each once, in commit order');
  const stream = proxy.requests.filter(({ method, path }) => method === 'GET' && path.startsWith('/sse')).at(-1);
  assert.deepEqual(new URL(stream.path, proxy.httpUrl).searchParams.getAll('since_cursor'), [cursor]);
});

test('presence and typing pass between an SSE user and a WebSocket user', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice', sse);
  const bob = world.client(relay, 'bob');
  await Promise.all([alice.join('r'), bob.join('r')]);
  await Promise.all([presenceIs(alice, 'r', ['alice', 'bob']), presenceIs(bob, 'r', ['alice', 'bob'])]);

  const aliceSeesBob = until(alice, 'typing', () => alice.room('r').typists.includes('bob'), { what: 'bob typing' });
  bob.typing('r');
  await aliceSeesBob;
  const bobSeesAlice = until(bob, 'typing', () => bob.room('r').typists.includes('alice'), { what: 'alice typing' });
  alice.typing('r');
  await bobSeesAlice;
  // Her message ends her typing on bob's side.
  await alice.send('r', { text: 'done typing' });
  await until(bob, 'typing', () => bob.room('r').typists.length === 0);

  await alice.leave('r');
  await presenceIs(bob, 'r', ['bob']);
});

test('over SSE: history, older pages, read markers across devices and the room list', async () => {
  const relay = await world.relay();
  await conversation(world, relay, 5);
  const carol = world.client(relay, 'carol', sse);
  await carol.join('r', { history: 3 });
  await until(carol, 'message', () => carol.messages('r').length === 3, { what: 'the last three' });
  assert.deepEqual(texts(carol, 'r'), ['m3', 'm4', 'm5']);
  const page = await carol.room('r').loadOlder({ limit: 2 });
  assert.deepEqual(page.messages.map((message) => message.body.text), ['m1', 'm2']);
  assert.deepEqual(texts(carol, 'r'), ['m1', 'm2', 'm3', 'm4', 'm5']);

  // A mark made over SSE reaches carol's other device, and one made there comes back over SSE.
  const phone = world.client(relay, 'carol');
  await phone.join('r');
  const phoneSees = until(phone, 'unread', () => phone.room('r').lastRead === 4, { what: 'the mark at 4' });
  carol.markRead('r', 4);
  await phoneSees;
  assert.equal(phone.room('r').unread, 1);
  const carolSees = until(carol, 'unread', () => carol.room('r').lastRead === 5, { what: 'the mark at 5' });
  phone.markRead('r', 5);
  await carolSees;
  assert.equal(carol.room('r').unread, 0);
  const [listed] = await carol.listRooms();
  assert.deepEqual([listed.room, listed.seq, listed.lastRead, listed.unread], ['r', 5, 5, 0]);
});

test('over SSE: a relay shutdown is close 1001, and the client comes back and goes on', async () => {
  const relay = await world.relay();
  const alice = world.client(relay, 'alice', sse);
  await alice.join('r');
  await alice.send('r', { text: 'before' });
  // A re-join asks from the last message held, not the last ack: wait for the relayed copy.
  await until(alice, 'message', () => alice.messages('r').length === 1);
  const waiting = next(alice, 'state', ({ state }) => state === 'waiting');
  const rejoined = next(alice, 'joined', (info) => info.rejoin, { timeout: 60_000 });
  await relay.restart('SIGTERM');
  const { code } = await waiting;
  assert.equal(code, 1001, 'going away, from the stream’s close frame');
  assert.equal((await rejoined).since, 1);
  const ack = await alice.send('r', { text: 'after' });
  assert.equal(ack.seq, 2);
  await until(alice, 'message', () => alice.messages('r').length === 2);
  assert.deepEqual(texts(alice, 'r'), ['before', 'after']);
  assert.equal(alice.transport, 'sse');
});

for (const { refusal, status, rewrite } of [
  { refusal: 'an unknown session', status: 404, rewrite: (url) => url.replace(/\/sse\/[^?]+/, '/sse/no-such-session') },
  { refusal: 'another user', status: 403, rewrite: (url) => url.replace('user=alice', 'user=mallory') },
]) {
  test(`over SSE: a POST refused for ${refusal} (${status}) starts the connection over, and the write goes once`, async () => {
    const relay = await world.relay();
    const record = recordingFetch();
    let refused = false;
    record.rewrite = (url, init) => {
      if (refused || init.method !== 'POST' || !init.body.includes('"type":"send"')) return url;
      refused = true;
      return rewrite(url);
    };
    const alice = world.client(relay, 'alice', { ...sse, fetch: record.fetch });
    await alice.join('r');
    const waiting = next(alice, 'state', ({ state }) => state === 'waiting');
    const ack = await alice.send('r', { text: 'once' });
    const { code, reason } = await waiting;
    assert.equal(code, 1006);
    assert.match(reason, new RegExp(`^POST answered ${status}\\b`));
    const sends = record.frames().filter((frame) => frame.type === 'send');
    assert.equal(sends.length, 2, 'sent, refused, sent again on the new session');
    assert.equal(sends[1].client_id, sends[0].client_id);
    assert.equal(ack.seq, 1);
    assert.equal(await relay.collection('messages').countDocuments({ room: 'r' }), 1);
    assert.equal(record.streams().length, 2);
  });
}

test('over SSE: a POST answered 429 is sent again, ahead of the frames queued behind it', async () => {
  const relay = await world.relay();
  const record = recordingFetch();
  let busy = 0;
  // As the relay answers a POST that comes while the one before is still being answered.
  record.answer = (url, init) => {
    if (busy >= 2 || init.method !== 'POST' || !init.body.includes('"type":"send"')) return undefined;
    busy += 1;
    const refusal = { error: 'post_in_progress', message: 'another POST for this session is being answered' };
    return new Response(JSON.stringify(refusal), { status: 429, headers: { 'Content-Type': 'application/json' } });
  };
  const alice = world.client(relay, 'alice', { ...sse, fetch: record.fetch });
  await alice.join('r');
  const wanted = ['one', 'two', 'three', 'four'];
  const acks = await withoutDrop(alice, Promise.all(wanted.map((text) => alice.send('r', { text }))));
  assert.deepEqual(acks.map((ack) => ack.seq), [1, 2, 3, 4], 'in the order sent');
  assert.equal(busy, 2);
  const statuses = record.posts().filter((post) => post.body.includes('"type":"send"')).map((post) => post.status);
  assert.deepEqual(statuses.slice(0, 3), [429, 429, 204], 'the same frames twice refused, then taken');
  assert.equal(await relay.collection('messages').countDocuments({ room: 'r' }), 4);
  assert.equal(record.mostPosting, 1);
});

test('over SSE: the token travels in Authorization, never in a URL, and an expired one (4001) is replaced', async () => {
  const relay = await world.relay(JWT_ENV);
  const record = recordingFetch();
  const tokens = [];
  // The first token lives two seconds; the ones after, ten minutes.
  const issue = async () => {
    tokens.push(token('dana', tokens.length === 0 ? 2 : 600));
    return tokens.at(-1);
  };
  const dana = connect(relay.wsUrl(), { ...sse, fetch: record.fetch, token: issue });
  try {
    await dana.join('r');
    await dana.send('r', { text: 'signed' });
    await until(dana, 'message', () => dana.messages('r').length === 1);
    assert.equal(dana.messages('r')[0].author, 'dana');
    const expired = next(dana, 'error', (error) => error.code === 'token_expired', { timeout: 10_000 });
    const waiting = next(dana, 'state', ({ state }) => state === 'waiting', { timeout: 10_000 });
    const rejoined = next(dana, 'joined', (info) => info.rejoin);
    await expired;
    assert.equal((await waiting).code, 4001, 'from the stream’s close frame');
    assert.equal((await rejoined).since, 1);
    await dana.send('r', { text: 'after' });
    assert.equal(tokens.length, 2, 'a fresh token for the new stream');
    for (const request of record.requests) {
      assert.ok(!request.url.includes('token'), `no token in ${request.url}`);
      assert.ok(tokens.some((t) => request.headers.Authorization === `Bearer ${t}`), `${request.method} ${request.url} carries a token`);
    }
    const [first, second] = record.streams();
    assert.equal(first.headers.Authorization, `Bearer ${tokens[0]}`);
    assert.equal(second.headers.Authorization, `Bearer ${tokens[1]}`);
    assert.equal(record.posts().at(-1).headers.Authorization, `Bearer ${tokens[1]}`, 'POSTs carry their stream’s token');
  } finally {
    dana.close();
  }
});
