// The MongoDB-compatible server the tests run against: the one named by
// ROOMCAST_TEST_MONGO_URI, or a process started here, as the Rust tests do:
// a mongod on PATH, else SecantusDB from .dev/ (scripts/install-db), with its
// own temporary storage that is removed when it stops.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { repoRoot } from './paths.js';
import { startProcess } from './processes.js';

function onPath(name) {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .map((dir) => path.join(dir, name))
    .find((file) => existsSync(file));
}

function secantusBinary() {
  const builds = {
    rs: ['.dev/secantus/bin/secantusd-rs'],
    py: ['.dev/venv/bin/secantusd-py'],
  }[process.env.ROOMCAST_DB] ?? ['.dev/secantus/bin/secantusd-rs', '.dev/venv/bin/secantusd-py'];
  const found = builds.map((build) => path.join(repoRoot, build)).find((file) => existsSync(file));
  if (!found) throw new Error('no database server: run scripts/install-db (scripts/test-js does)');
  return found;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts (or names) a database server: `{ uri, stop() }`. */
export async function startDatabase() {
  if (process.env.ROOMCAST_TEST_MONGO_URI) return { uri: process.env.ROOMCAST_TEST_MONGO_URI, stop: async () => {} };
  const storage = mkdtempSync(path.join(tmpdir(), 'roomcast-js-db-'));
  const removeStorage = () => rmSync(storage, { recursive: true, force: true });
  process.once('exit', removeStorage);
  const mongod = onPath('mongod');
  let server;
  let uri;
  try {
    if (mongod) {
      const port = await freePort();
      const args = ['--replSet', 'rs0', '--bind_ip', '127.0.0.1', '--port', String(port), '--dbpath', storage];
      server = startProcess(mongod, args, { ready: /Waiting for connections/, name: 'mongod' });
      await server.started;
      uri = `mongodb://127.0.0.1:${port}/?directConnection=true`;
      await initiateReplicaSet(uri, port);
    } else {
      const binary = secantusBinary();
      const args = ['--host', '127.0.0.1', '--port', '0', '--storage-path', storage];
      // Its WiredTiger log otherwise preallocates 128 MB per server.
      if (binary.endsWith('secantusd-rs')) args.push('--log-file-max', '16MB');
      server = startProcess(binary, args, { ready: /listening on (127\.0\.0\.1:\d+)/, name: 'db' });
      const [, address] = await server.started;
      uri = `mongodb://${address}/?directConnection=true`;
    }
  } catch (error) {
    await server?.stop('SIGKILL');
    removeStorage();
    throw error;
  }
  return {
    uri,
    async stop() {
      await server.stop('SIGTERM');
      process.off('exit', removeStorage);
      removeStorage();
    },
  };
}

async function initiateReplicaSet(uri, port) {
  const client = new MongoClient(uri);
  try {
    await client.db('admin').command({ replSetInitiate: { _id: 'rs0', members: [{ _id: 0, host: `127.0.0.1:${port}` }] } });
    // A fresh replica set takes a moment to elect itself primary.
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      const hello = await client.db('admin').command({ hello: 1 });
      if (hello.isWritablePrimary) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('mongod did not become primary');
  } finally {
    await client.close();
  }
}
