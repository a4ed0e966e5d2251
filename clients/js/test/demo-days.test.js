// The demo page's day separators (web/days.js): what a day is called, seen
// from a given moment. Pure date logic, so it runs here, without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dayKey, dayLabel } from '../../../web/days.js';

test('a day is keyed by its local date, YYYY-MM-DD', () => {
  assert.equal(dayKey(new Date(2026, 0, 5, 23, 59)), '2026-01-05');
  assert.equal(dayKey(new Date(2026, 11, 31, 0, 0)), '2026-12-31');
});

test('today and yesterday by name, from any time of the day', () => {
  const lateAtNight = new Date(2026, 4, 12, 23, 59, 59);
  const justAfterMidnight = new Date(2026, 4, 12, 0, 0, 1);
  for (const now of [lateAtNight, justAfterMidnight]) {
    assert.equal(dayLabel('2026-05-12', now), 'Today');
    assert.equal(dayLabel('2026-05-11', now), 'Yesterday');
  }
  // Across a month and a year.
  assert.equal(dayLabel('2026-02-28', new Date(2026, 2, 1, 9)), 'Yesterday');
  assert.equal(dayLabel('2025-12-31', new Date(2026, 0, 1, 9)), 'Yesterday');
});

test('yesterday across a daylight saving change (a 23- or 25-hour day) is still yesterday', () => {
  // Whatever the zone the test runs in, each of these days is 23 to 25 hours long.
  for (const [key, now] of [
    ['2026-03-29', new Date(2026, 2, 30, 0, 30)],
    ['2026-10-25', new Date(2026, 9, 26, 0, 30)],
    ['2026-03-08', new Date(2026, 2, 9, 0, 30)],
    ['2026-11-01', new Date(2026, 10, 2, 0, 30)],
  ]) {
    assert.equal(dayLabel(key, now), 'Yesterday', key);
  }
});

test('older days are named by their date, with the year only when it is not this one', () => {
  const now = new Date(2026, 4, 12, 12);
  const thisYear = dayLabel('2026-05-10', now);
  assert.notEqual(thisYear, 'Yesterday');
  assert.match(thisYear, /\b10\b/);
  assert.doesNotMatch(thisYear, /2026/);
  const lastYear = dayLabel('2025-05-10', now);
  assert.match(lastYear, /2025/);
  // A message from a clock ahead of this one: a date, never "Today" or a negative day.
  assert.match(dayLabel('2026-05-13', now), /\b13\b/);
});
