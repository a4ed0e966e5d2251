// The connection URL: the user's address plus what the relay needs to know
// at the handshake, which is the only moment it reads the query string.

export function connectionUrl(address, { user, cursors }) {
  const url = new URL(address, globalThis.location?.href);
  // Lets pages pass their own http(s) origin.
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (user !== undefined && user !== null && user !== '') url.searchParams.set('user', user);
  // One since_cursor per user route: the last notification cursor received.
  url.searchParams.delete('since_cursor');
  for (const cursor of cursors.values()) url.searchParams.append('since_cursor', cursor);
  return url.toString();
}
