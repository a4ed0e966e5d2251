// The peer roomcast is benchmarked against: the design a Node.js team would
// usually pick for the same job. express serves HTTP, socket.io 4 carries the
// sockets, and the official mongodb driver writes messages and watches ONE
// change stream per collection, relaying each inserted document to a
// socket.io room. History pages are one indexed find per request. No
// handicaps: default socket.io settings, inserts with the same write concern
// as roomcast (majority), one process as usually deployed.
//
// Presence and typing live in this one process's memory, as a single-process
// socket.io app would keep them: no MongoDB, and nothing across processes
// (roomcast keeps them in MongoDB across replicas). The semantics match
// roomcast's below its presence listing limit: a snapshot after a join,
// `presence_join` for a user's first socket in a room, `presence_leave` for
// the last; `typing` relayed to the room but the typist's sockets, at most
// once per user and room per TYPING_INTERVAL_MS, extra ones dropped.
//
// Env: PORT (0 picks a free one), MONGO_URI, MONGO_DB, TYPING_INTERVAL_MS.
// Prints `listening on PORT` once the change streams are open and the port is bound.
'use strict';

const http = require('node:http');
const express = require('express');
const { Server } = require('socket.io');
const { MongoClient } = require('mongodb');

const port = Number(process.env.PORT ?? 3000);
const uri = process.env.MONGO_URI ?? 'mongodb://127.0.0.1:27217/?directConnection=true';
const dbName = process.env.MONGO_DB ?? 'peer';
// As roomcast's defaults: 50 messages per page unless asked, at most 200.
const DEFAULT_PAGE = 50;
const MAX_HISTORY_PAGE = 200;
// As roomcast's limits.typing_interval.
const typingInterval = Number(process.env.TYPING_INTERVAL_MS ?? 2000);

// room -> (user -> that user's sockets in the room).
const present = new Map();
// `${room}\n${user}` -> when that user's last `typing` was relayed (ms).
const typed = new Map();

// True when this is the user's first socket in the room.
function arrive(room, user) {
  let users = present.get(room);
  if (!users) present.set(room, (users = new Map()));
  const sockets = (users.get(user) ?? 0) + 1;
  users.set(user, sockets);
  return sockets === 1;
}

// True when that was the user's last socket in the room.
function depart(room, user) {
  const users = present.get(room);
  const sockets = (users?.get(user) ?? 0) - 1;
  if (!users || sockets < 0) return false;
  if (sockets > 0) {
    users.set(user, sockets);
    return false;
  }
  users.delete(user);
  if (users.size === 0) present.delete(room);
  return true;
}

async function main() {
  const client = new MongoClient(uri, { writeConcern: { w: 'majority' } });
  await client.connect();
  const db = client.db(dbName);
  const messages = db.collection('messages');
  const notifications = db.collection('notifications');
  // The index history pages read, the same keys as roomcast's own.
  await messages.createIndex({ room: 1, seq: 1 });

  const app = express();
  app.get('/health', (_req, res) => res.json({ ok: true }));
  const server = http.createServer(app);
  const io = new Server(server, { serveClient: false });

  io.on('connection', (socket) => {
    const user = String(socket.handshake.query.user ?? '');
    if (!user) {
      socket.disconnect(true);
      return;
    }
    // Every connection of a user sits in that user's room, so one emit
    // reaches all of them.
    socket.join(`user:${user}`);

    socket.on('join', (room, ack) => {
      if (typeof room !== 'string' || room.startsWith('user:')) {
        ack?.({ error: 'invalid_room' });
        return;
      }
      const rejoin = socket.rooms.has(room);
      socket.join(room);
      ack?.({ room });
      // A re-join keeps the presence it has, as in roomcast.
      if (rejoin) return;
      const first = arrive(room, user);
      const users = [...present.get(room).keys()];
      socket.emit('presence', { room, users, count: users.length });
      if (first) io.to(room).emit('presence_join', { room, user });
    });

    // Rooms are still listed while disconnecting; the leave goes to the others.
    socket.on('disconnecting', () => {
      for (const room of socket.rooms) {
        if (room !== socket.id && !room.startsWith('user:') && depart(room, user)) {
          socket.to(room).emit('presence_leave', { room, user });
        }
      }
    });

    socket.on('typing', (room) => {
      if (typeof room !== 'string' || !socket.rooms.has(room)) return;
      const key = `${room}\n${user}`;
      const now = Date.now();
      if (now - (typed.get(key) ?? -Infinity) < typingInterval) return;
      typed.set(key, now);
      io.to(room).except(`user:${user}`).emit('typing', { room, user });
    });

    socket.on('send_message', async (msg, ack) => {
      const { room, client_id: clientId, body } = msg ?? {};
      if (typeof room !== 'string' || !socket.rooms.has(room)) {
        ack?.({ error: 'not_joined' });
        return;
      }
      try {
        const result = await messages.insertOne(
          { room, author: user, client_id: clientId, body, sent_at: new Date() },
          { writeConcern: { w: 'majority' } },
        );
        ack?.({ id: result.insertedId });
      } catch (error) {
        ack?.({ error: error.message });
      }
    });

    // A page of a room's history, as roomcast's `history`: the newest
    // `limit` messages before `before`, oldest first, and whether older ones
    // exist (one more is read to know). Majority reads, as roomcast's, so a
    // page never shows a message that could be rolled back.
    socket.on('history', async (req, ack) => {
      const { room, before, limit = DEFAULT_PAGE } = req ?? {};
      if (typeof room !== 'string' || room.startsWith('user:')) {
        ack?.({ error: 'invalid_room' });
        return;
      }
      const beforeOk = before === undefined || (Number.isInteger(before) && before >= 1);
      if (!Number.isInteger(limit) || limit < 1 || !beforeOk) {
        ack?.({ error: 'invalid_field' });
        return;
      }
      const size = Math.min(limit, MAX_HISTORY_PAGE);
      const filter = before === undefined ? { room } : { room, seq: { $lt: before } };
      try {
        const newest = await messages
          .find(filter, { readConcern: { level: 'majority' } })
          .sort({ seq: -1 })
          .limit(size + 1)
          .toArray();
        ack?.({ messages: newest.slice(0, size).reverse(), more: newest.length > size });
      } catch (error) {
        ack?.({ error: error.message });
      }
    });
  });

  // Delivery comes only from the committed change, as in roomcast: one
  // stream per collection, filtered on the server by $match.
  relay(messages.watch([{ $match: { operationType: 'insert' } }]), (doc) =>
    io.to(doc.room).emit('message', doc),
  );
  relay(notifications.watch([{ $match: { operationType: 'insert' } }]), (doc) =>
    io.to(`user:${doc.user}`).emit('notification', doc),
  );

  // Forgets typists quiet for an interval, as roomcast's throttle does.
  setInterval(() => {
    const now = Date.now();
    for (const [key, at] of typed) if (now - at >= typingInterval) typed.delete(key);
  }, 10_000).unref();

  server.listen(port, '127.0.0.1', () => {
    console.log(`listening on ${server.address().port}`);
  });

  const stop = () => {
    io.close();
    client.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function relay(stream, emit) {
  stream.on('change', (event) => emit(event.fullDocument));
  stream.on('error', (error) => {
    console.error(`change stream failed: ${error.message}`);
    process.exit(1);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
