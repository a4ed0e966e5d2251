// What every relay test file shares: one database server for the file (each
// relay gets its own database in it), and clients and relays that are
// closed after each test whatever its outcome.

import { after, afterEach, before } from 'node:test';
import { connect } from '../../src/index.js';
import { startDatabase } from './database.js';
import { Relay } from './relay.js';

export function useRelays() {
  let database;
  const relays = [];
  const clients = [];
  before(async () => {
    database = await startDatabase();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(relays.splice(0).map((relay) => relay.close()));
  });
  after(async () => {
    await database?.stop();
  });
  return {
    /** A relay on its own database; `env` overrides ROOMCAST__* settings. */
    async relay(env = {}) {
      const relay = await Relay.start(database.uri, { env });
      relays.push(relay);
      return relay;
    },
    /**
     * A library client of `user` on `relay` (local mode), closed after the
     * test. One given a WebSocket (a Network's) uses nothing else unless
     * told: its SSE fallback would go around the faults the Network makes.
     */
    client(relay, user, options = {}) {
      const transport = options.WebSocket ? 'websocket' : undefined;
      const client = connect(relay.wsUrl(user), { transport, ...options });
      clients.push(client);
      return client;
    },
  };
}

/** The texts of a room's messages as the client holds them, in seq order. */
export function texts(client, room) {
  return client.messages(room).map((message) => message.body?.text ?? null);
}

/** alice, joined to r through `relay`, writes m1…m<count>; resolves with her and the acks. */
export async function conversation(world, relay, count) {
  const alice = world.client(relay, 'alice');
  await alice.join('r');
  const acks = [];
  for (let n = 1; n <= count; n += 1) acks.push(await alice.send('r', { text: `m${n}` }));
  return { alice, acks };
}
