// A relay process for one test: target/debug/roomcast (built by
// scripts/test-js) with the local config, on a free loopback port, and its
// own database, so tests never see each other's rooms. It can be stopped and
// started again on the same port, which is what a client sees as a restart.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { repoRoot } from './paths.js';
import { startProcess } from './processes.js';

const binary = process.env.ROOMCAST_BIN ?? path.join(repoRoot, 'target/debug/roomcast');

/** Limits high enough that only tests about limits meet them. */
const GENEROUS_LIMITS = {
  ROOMCAST__LIMITS__SENDS_PER_SECOND: '1000',
  ROOMCAST__LIMITS__SEND_BURST: '1000',
  ROOMCAST__LIMITS__JOINS_PER_SECOND: '1000',
  ROOMCAST__LIMITS__JOIN_BURST: '1000',
  ROOMCAST__LIMITS__HANDSHAKES_PER_SECOND_PER_IP: '1000',
  ROOMCAST__LIMITS__HANDSHAKE_BURST_PER_IP: '1000',
};

export class Relay {
  #process = null;

  constructor(mongoUri, env = {}) {
    this.mongoUri = mongoUri;
    this.database = `js_${randomBytes(6).toString('hex')}`;
    this.env = env;
    this.port = 0;
    this.mongo = new MongoClient(mongoUri);
  }

  /** Starts a relay; `{ env }` adds or overrides ROOMCAST__* settings. */
  static async start(mongoUri, { env } = {}) {
    const relay = new Relay(mongoUri, env);
    await relay.start();
    return relay;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The WebSocket endpoint; in local mode `user` names the connection's user. */
  wsUrl(user) {
    const url = `ws://127.0.0.1:${this.port}/ws`;
    return user === undefined ? url : `${url}?user=${encodeURIComponent(user)}`;
  }

  collection(name) {
    return this.mongo.db(this.database).collection(name);
  }

  async start() {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run cargo build --bin roomcast (scripts/test-js does)`);
    const env = {
      ...process.env,
      ROOMCAST_ENV: 'local',
      ROOMCAST__SERVER__PORT: String(this.port),
      ROOMCAST__MONGO__URI: this.mongoUri,
      ROOMCAST__MONGO__DATABASE: this.database,
      // A broken change stream is reopened quickly, so outage tests stay short.
      ROOMCAST__RELAY__MAX_BACKOFF: '200ms',
      ...GENEROUS_LIMITS,
      ...this.env,
    };
    this.#process = startProcess(binary, [], {
      cwd: repoRoot,
      env,
      ready: /listening addr=127\.0\.0\.1:(\d+)/,
      name: 'relay',
    });
    const [, port] = await this.#process.started;
    this.port = Number(port);
  }

  /** Stops the relay: SIGTERM is a graceful shutdown (close 1001), SIGKILL a crash. */
  async stop(signal = 'SIGTERM') {
    await this.#process?.stop(signal);
    this.#process = null;
  }

  /** Stops it and starts it again on the same port and database. */
  async restart(signal = 'SIGTERM') {
    await this.stop(signal);
    await this.start();
  }

  async close() {
    await this.stop('SIGKILL');
    await this.mongo.close();
  }
}
