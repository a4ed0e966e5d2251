import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, retryDelay, DEFAULT_BACKOFF } from '../src/backoff.js';

test('reconnect delays are full jitter under an exponential ceiling, capped', () => {
  assert.equal(backoffDelay(0, DEFAULT_BACKOFF, () => 0), 0);
  assert.equal(backoffDelay(0, DEFAULT_BACKOFF, () => 0.999), 249);
  assert.equal(backoffDelay(3, DEFAULT_BACKOFF, () => 0.5), 1000);
  assert.equal(backoffDelay(40, DEFAULT_BACKOFF, () => 0.999), 9990);
});

test('clients restarted together spread their first reconnect over the whole window', () => {
  const delays = Array.from({ length: 1000 }, () => backoffDelay(0));
  const quarters = [0, 1, 2, 3].map((q) => delays.filter((d) => d >= q * 62.5 && d < (q + 1) * 62.5).length);
  for (const count of quarters) assert.ok(count > 150, `uneven spread: ${quarters}`);
});

test('write retries wait at least half the ceiling', () => {
  assert.equal(retryDelay(0, { base: 250, cap: 5000 }, () => 0), 125);
  assert.equal(retryDelay(10, { base: 250, cap: 5000 }, () => 0.999), 4997);
});
