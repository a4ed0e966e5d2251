// An HTTP proxy between clients and a relay, as a corporate network puts
// one: plain HTTP requests are forwarded, streamed both ways as they come
// (an SSE stream included), and WebSocket upgrades get what `upgrades`
// says:
//
//   'pass'    forwarded, the socket piped both ways
//   'refuse'  answered 403 by the proxy, as a policy that bans them
//   'strip'   forwarded without Upgrade and Connection, so the relay sees
//             a plain GET and answers 426
//   'cut'     the connection closed without an answer
//   'hang'    never answered
//
// It counts the upgrades asked for and records every plain request, and
// can cut every connection it carries (`cutAll`), or turn every new one
// away (`offline`).

import http from 'node:http';
import net from 'node:net';
import { afterEach } from 'node:test';

/** `proxyTo(relay, upgrades)`: a proxy in front of `relay`, closed after each test. */
export function useProxies() {
  const proxies = [];
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  });
  return async function proxyTo(relay, upgrades = 'pass') {
    const proxy = await HttpProxy.start(relay, { upgrades });
    proxies.push(proxy);
    return proxy;
  };
}

export class HttpProxy {
  upgrades = 'pass';
  offline = false;
  /** Upgrades asked for, whatever became of them. */
  upgradesAsked = 0;
  /** Plain requests forwarded: `{method, path}`. */
  requests = [];
  #server;
  #target;
  #sockets = new Set();

  /** A proxy on a free loopback port in front of `relay`. */
  static async start(relay, { upgrades = 'pass' } = {}) {
    const proxy = new HttpProxy(relay);
    proxy.upgrades = upgrades;
    await new Promise((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  constructor(relay) {
    this.#target = relay;
    this.#server = http.createServer((request, response) => this.#forward(request, response));
    this.#server.on('upgrade', (request, socket, head) => this.#upgrade(request, socket, head));
    this.#server.on('connection', (socket) => {
      if (this.offline) {
        socket.destroy();
        return;
      }
      this.#track(socket);
    });
  }

  get port() {
    return this.#server.address().port;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The relay's WebSocket endpoint through this proxy, as Relay.wsUrl. */
  wsUrl(user) {
    const url = `ws://127.0.0.1:${this.port}/ws`;
    return user === undefined ? url : `${url}?user=${encodeURIComponent(user)}`;
  }

  /** Cuts every connection carried now, both sides, without a word: what a network failure looks like. */
  cutAll() {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  async close() {
    this.cutAll();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #track(socket) {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    // A cut may reset either side; the other side's error is expected.
    socket.on('error', () => {});
  }

  #forward(request, response) {
    this.requests.push({ method: request.method, path: request.url });
    const upstream = http.request(
      { ...this.#upstream(request), headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        // No buffering: an event stream goes on event by event.
        response.flushHeaders();
        answer.pipe(response);
        answer.on('error', () => response.destroy());
      },
    );
    upstream.on('socket', (socket) => this.#track(socket));
    upstream.on('error', () => response.destroy());
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  }

  #upgrade(request, socket, head) {
    this.upgradesAsked += 1;
    switch (this.upgrades) {
      case 'pass':
        return this.#tunnel(request, socket, head);
      case 'refuse':
        return socket.end(answer(403, 'Forbidden', 'text/plain', 'WebSocket is not allowed here'));
      case 'strip':
        return this.#stripped(request, socket);
      case 'cut':
        return socket.destroy();
      default:
        // 'hang': the socket stays open and unanswered until the test ends.
        return undefined;
    }
  }

  #tunnel(request, socket, head) {
    const upstream = net.connect(this.#target.port, '127.0.0.1', () => {
      const lines = [`${request.method} ${request.url} HTTP/1.1`];
      for (let i = 0; i < request.rawHeaders.length; i += 2) lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    this.#track(upstream);
    upstream.on('close', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
  }

  /** The upgrade sent on as a plain GET; the relay's answer goes back, and the connection is closed. */
  #stripped(request, socket) {
    const headers = { ...request.headers };
    for (const name of ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions']) delete headers[name];
    const upstream = http.request({ ...this.#upstream(request), headers }, async (reply) => {
      const chunks = [];
      for await (const chunk of reply) chunks.push(chunk);
      const body = Buffer.concat(chunks).toString();
      socket.end(answer(reply.statusCode, reply.statusMessage, reply.headers['content-type'] ?? 'text/plain', body));
    });
    upstream.on('error', () => socket.destroy());
    upstream.end();
  }

  #upstream(request) {
    // A connection of its own per request, so that cutAll() reaches it.
    return { host: '127.0.0.1', port: this.#target.port, method: request.method, path: request.url, agent: false };
  }
}

/** A whole HTTP/1.1 answer, after which the connection closes. */
function answer(status, text, type, body) {
  const head = [`HTTP/1.1 ${status} ${text}`, `Content-Type: ${type}`, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}
