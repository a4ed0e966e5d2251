// The text/event-stream parser alone: events as the HTML standard reads
// them, whatever the chunks the network cuts the stream into.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../src/transports/sse-parser.js';

/** The events `chunks` make, fed in order. */
function parse(...chunks) {
  const events = [];
  const parser = new SseParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return events;
}

const data = (events) => events.map((event) => event.data);

/** Every way to cut `text` in two, and in single characters. */
function cuts(text) {
  const ways = [[...text]];
  for (let at = 0; at <= text.length; at += 1) ways.push([text.slice(0, at), text.slice(at)]);
  return ways;
}

test('one event per blank line, several in one chunk', () => {
  assert.deepEqual(data(parse('data: {"a":1}\n\ndata: {"b":2}\n\ndata: 3\n\n')), ['{"a":1}', '{"b":2}', '3']);
});

test('an event waits for its blank line', () => {
  assert.deepEqual(parse('data: {"a":1}\n'), []);
  assert.deepEqual(data(parse('data: {"a":1}\n', '\n')), ['{"a":1}']);
});

test('chunks cut anywhere, even mid-line, give the same events', () => {
  const stream = 'data: {"type":"session","session":"s1"}\n\n: keep-alive\n\ndata: {"text":"é ✓ 😀"}\r\n\r\n';
  for (const chunks of cuts(stream)) {
    assert.deepEqual(data(parse(...chunks)), ['{"type":"session","session":"s1"}', '{"text":"é ✓ 😀"}'], JSON.stringify(chunks));
  }
});

test('CRLF, CR and LF all end lines, and a CRLF cut between its CR and LF is one line break', () => {
  assert.deepEqual(data(parse('data: a\r\n\r\ndata: b\r\rdata: c\n\n')), ['a', 'b', 'c']);
  // Had the LF after a chunk's last CR been a line of its own, it would end the event early.
  assert.deepEqual(data(parse('data: x\r', '\ndata: y\r', '\n\r', '\n')), ['x\ny']);
  assert.deepEqual(data(parse('data: x\r', '', '\n\r\n')), ['x']);
});

test('comments are ignored, alone or between the lines of an event', () => {
  assert.deepEqual(parse(':\n\n', ': ping\n\n', ':\r\n\r\n'), []);
  assert.deepEqual(data(parse('data: a\n:comment\ndata: b\n\n')), ['a\nb']);
});

test('data lines join with LF; one space after the colon is dropped, no more', () => {
  assert.deepEqual(data(parse('data:x\ndata:  y\ndata\ndata: \n\n')), ['x\n y\n\n']);
});

test('an event without data is none; event names and ids are read', () => {
  assert.deepEqual(parse('event: ping\n\nid: 7\n\n'), []);
  assert.deepEqual(parse('event: custom\nid: 7\ndata: x\n\ndata: y\n\n'), [
    { event: 'custom', data: 'x', id: '7' },
    { event: 'message', data: 'y', id: '7' },
  ]);
});

test('unknown fields and retry are ignored; a byte order mark opens the stream unseen', () => {
  assert.deepEqual(data(parse('\uFEFFretry: 100\nfoo: bar\ndata: x\n\n')), ['x']);
  assert.deepEqual(data(parse('\uFEFF', 'data: y\n\n')), ['y']);
});

test('an event cut off by the end of the stream is not dispatched', () => {
  const events = [];
  const parser = new SseParser((event) => events.push(event));
  parser.push('data: whole\n\ndata: cut');
  assert.deepEqual(data(events), ['whole']);
});

test('a long line in many chunks arrives whole', () => {
  const body = JSON.stringify({ text: 'x'.repeat(100_000) });
  const stream = `data: ${body}\n\n`;
  const chunks = [];
  for (let at = 0; at < stream.length; at += 997) chunks.push(stream.slice(at, at + 997));
  assert.deepEqual(data(parse(...chunks)), [body]);
});
