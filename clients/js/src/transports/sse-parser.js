// A parser of the text/event-stream format, as the HTML standard's "event
// stream interpretation" reads it, for a stream read with fetch (so that
// headers can be sent, which EventSource cannot do). It takes text in
// chunks cut anywhere, even inside a line or between the CR and LF of one
// line break, and calls back once per event.

export class SseParser {
  /** The text after the last line break, waiting for the rest of its line. */
  #partial = '';
  /** The last chunk ended with CR: an LF starting the next one belongs to that line break. */
  #afterCR = false;
  #started = false;
  #data = [];
  #event = '';
  #id = undefined;
  #onEvent;

  /** `onEvent({event, data, id})` runs for each event; `event` is 'message' unless the stream named it. */
  constructor(onEvent) {
    this.#onEvent = onEvent;
  }

  /** Feeds the next piece of decoded text. */
  push(chunk) {
    let text = chunk;
    if (!this.#started && text.length > 0) {
      this.#started = true;
      // A byte order mark may open the stream and is not part of its first line.
      if (text.startsWith('\uFEFF')) text = text.slice(1);
    }
    if (this.#afterCR && text.length > 0) {
      this.#afterCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    const buffer = this.#partial + text;
    const breaks = /\r\n|\r|\n/g;
    // What was held back holds no line break: the search starts after it.
    breaks.lastIndex = this.#partial.length;
    let start = 0;
    for (let match = breaks.exec(buffer); match; match = breaks.exec(buffer)) {
      if (match[0] === '\r' && breaks.lastIndex === buffer.length) this.#afterCR = true;
      this.#line(buffer.slice(start, match.index));
      start = breaks.lastIndex;
    }
    this.#partial = buffer.slice(start);
  }

  #line(line) {
    if (line === '') return this.#dispatch();
    // A comment: servers send them to keep an idle stream open.
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
    // `retry` and unknown fields: reconnecting is the client's business.
    return undefined;
  }

  /** A blank line ends an event; one without data is no event. */
  #dispatch() {
    const data = this.#data;
    const event = this.#event || 'message';
    this.#data = [];
    this.#event = '';
    if (data.length === 0) return;
    this.#onEvent({ event, data: data.join('\n'), id: this.#id });
  }
}
