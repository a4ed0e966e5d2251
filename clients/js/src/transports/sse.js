// The SSE transport, for networks whose proxies break WebSocket upgrades:
// frames down come on one long `GET /sse` (Server-Sent Events, read with
// fetch, because EventSource cannot send an Authorization header), frames
// up go in `POST /sse/{session}`. It shows client.js the same interface as
// the WebSocket transport (see websocket.js).
//
// The stream's first event names the session; it is this transport's
// "open", and the application never sees it. A `close` frame is the close
// code a WebSocket would have had; a stream that ends without one is an
// abnormal drop (1006). The relay takes one POST of a session at a time and
// answers it once its frames are handed on, so frames are sent with at most
// one POST in flight, and those queued meanwhile go together, as a JSON
// array, in the next: the order they were sent in is kept.

import { SseParser } from './sse-parser.js';

/** The most frames the relay takes in one POST (its MAX_FRAMES_PER_POST); more are refused with 400. */
const MAX_FRAMES_PER_POST = 100;
/** Retries of a POST answered 429 (the previous one still being answered, or a rate limit). */
const POST_RETRIES = 5;
const POST_RETRY_DELAY = 100;

export class SseTransport {
  name = 'sse';
  onopen = () => {};
  onmessage = () => {};
  onclose = () => {};
  #fetch;
  #streamUrl;
  #postUrl;
  #token;
  #maxBodyBytes;
  #abort = new AbortController();
  #session = null;
  #ended = false;
  /** Frames (JSON texts) not yet POSTed, oldest first. */
  #queue = [];
  #posting = false;
  #retries = 0;
  #retryTimer = null;

  /**
   * Opens the stream. `post(session)` is the URL frames go to;
   * `maxBodyBytes` bounds a POST's body as the relay bounds a WebSocket
   * message (limits.max_frame_bytes).
   */
  constructor({ url, post, token, fetch, maxBodyBytes }) {
    this.#fetch = fetch;
    this.#streamUrl = url;
    this.#postUrl = post;
    this.#token = token;
    this.#maxBodyBytes = maxBodyBytes;
    this.#stream().catch((error) => {
      // A bug in a handler, not the network: the connection is started
      // over, and the error still surfaces.
      this.#end(1006, 'internal error');
      queueMicrotask(() => {
        throw error;
      });
    });
  }

  get isOpen() {
    return !this.#ended && this.#session !== null;
  }

  send(text) {
    if (this.#ended) return;
    this.#queue.push(text);
    if (!this.#posting) this.#post();
  }

  close() {
    if (this.#ended) return;
    this.#ended = true;
    this.#stop();
  }

  // ---- the stream ----

  async #stream() {
    let response;
    try {
      response = await this.#fetch(this.#streamUrl, {
        headers: this.#headers({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        signal: this.#abort.signal,
      });
    } catch {
      return this.#end(1006, 'connection error');
    }
    if (this.#ended) return undefined;
    if (!response.ok) return this.#end(1006, await refusal('GET', response));
    if (!/^text\/event-stream\b/i.test(response.headers.get('content-type') ?? '')) {
      response.body?.cancel().catch(() => {});
      return this.#end(1006, 'the answer is not an event stream');
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser(({ event, data }) => {
      if (event === 'message') this.#event(data);
    });
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        return this.#end(1006, 'connection error');
      }
      if (this.#ended) return undefined;
      if (chunk.done) break;
      parser.push(decoder.decode(chunk.value, { stream: true }));
    }
    return this.#end(1006, 'the stream ended without a close frame');
  }

  /** One event's data: a frame of the relay's, or the session and close frames, which are this transport's. */
  #event(data) {
    if (this.#ended) return;
    if (this.#session === null) return this.#started(data);
    // Parsed here only when it may be one of ours; client.js parses the rest.
    if (data.includes('"close"') || data.includes('"session"')) {
      const frame = parse(data);
      if (frame?.type === 'close') {
        const code = Number.isInteger(frame.code) ? frame.code : 1006;
        return this.#end(code, typeof frame.reason === 'string' ? frame.reason : '');
      }
      if (frame?.type === 'session') return undefined;
    }
    return this.onmessage(data);
  }

  #started(data) {
    const frame = parse(data);
    if (frame?.type !== 'session' || typeof frame.session !== 'string' || frame.session === '') {
      return this.#end(1006, 'the stream did not start with a session');
    }
    this.#session = frame.session;
    this.onopen();
    // Frames sent before the session was known.
    if (!this.#posting) this.#post();
    return undefined;
  }

  // ---- frames up ----

  async #post() {
    if (this.#ended || this.#session === null || this.#queue.length === 0) return;
    this.#posting = true;
    const count = this.#batchSize();
    const frames = this.#queue.splice(0, count);
    const body = frames.length === 1 ? frames[0] : `[${frames.join(',')}]`;
    let response;
    try {
      response = await this.#fetch(this.#postUrl(this.#session), {
        method: 'POST',
        headers: this.#headers({ 'Content-Type': 'application/json' }),
        body,
        cache: 'no-store',
        signal: this.#abort.signal,
      });
    } catch {
      return this.#end(1006, 'connection error');
    }
    if (this.#ended) return undefined;
    if (response.ok) {
      response.body?.cancel().catch(() => {});
      this.#posting = false;
      this.#retries = 0;
      return this.#post();
    }
    const reason = await refusal('POST', response);
    if (response.status === 429 && this.#retries < POST_RETRIES) {
      // Not handed on: they go again, still ahead of what came after them.
      this.#queue.unshift(...frames);
      const delay = POST_RETRY_DELAY * 2 ** this.#retries;
      this.#retries += 1;
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null;
        this.#posting = false;
        this.#post();
      }, delay);
      return undefined;
    }
    // 413 is what a WebSocket message over the limit gets: close 1009. 404:
    // the session ended (its stream too, or soon); 401 and 403: this is not
    // the stream's user. Either way the connection is started over.
    return this.#end(response.status === 413 ? 1009 : 1006, reason);
  }

  /**
   * How many queued frames the next POST takes: as many as fit
   * maxBodyBytes, up to MAX_FRAMES_PER_POST, and at least one. (One frame
   * over the limit goes alone, and is refused as a WebSocket message over
   * it would be.)
   */
  #batchSize() {
    // A body of several frames is `[a,b,…]`: brackets, and a comma between two.
    let bytes = 1;
    let count = 0;
    for (const frame of this.#queue) {
      bytes += utf8Length(frame) + 1;
      if (count > 0 && (bytes > this.#maxBodyBytes || count === MAX_FRAMES_PER_POST)) break;
      count += 1;
    }
    return count;
  }

  #headers(headers) {
    // The stream and every POST carry the same identity, or the relay refuses the POST (403).
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    return headers;
  }

  #end(code, reason) {
    if (this.#ended) return;
    this.#ended = true;
    this.#stop();
    this.onclose(code, reason);
  }

  #stop() {
    clearTimeout(this.#retryTimer);
    this.#queue = [];
    // Ends the stream and any POST under way, so the relay sees the session go.
    this.#abort.abort();
  }
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The reason of a refused request, from the relay's `{"error", "message"}` body when it has one. */
async function refusal(method, response) {
  let detail = '';
  try {
    const { error, message } = JSON.parse(await response.text());
    detail = [error, message].filter((part) => typeof part === 'string').join(': ');
  } catch {
    // Not the relay's JSON: a proxy's page, or nothing.
  }
  return `${method} answered ${response.status}${detail ? ` (${detail})` : ''}`;
}

/** Bytes of `text` in UTF-8, without encoding it. */
function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    // A surrogate pair is four bytes: two for each half.
    else if (unit >= 0xd800 && unit <= 0xdfff) bytes += 2;
    else bytes += 3;
  }
  return bytes;
}
