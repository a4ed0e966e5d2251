// client_id values: the idempotency keys of sends. They must be unique per
// user across every tab and device, so each client picks a random 64-bit
// prefix and counts from there.

function randomHex(bytes) {
  const values = new Uint8Array(bytes);
  // getRandomValues, unlike randomUUID, also works on plain-http pages.
  globalThis.crypto.getRandomValues(values);
  return Array.from(values, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function clientIdGenerator() {
  const prefix = randomHex(8);
  let count = 0;
  return () => `${prefix}-${(++count).toString(36)}`;
}
