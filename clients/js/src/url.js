// The connection URLs: the user's address plus what the relay needs to know
// at the handshake, which is the only moment it reads the query string.

export function connectionUrl(address, { user, cursors }) {
  const url = new URL(address, globalThis.location?.href);
  // Lets pages pass their own http(s) origin.
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  withIdentity(url, user);
  withCursors(url, cursors);
  return url.toString();
}

/**
 * The SSE endpoints: `stream`, the URL of `GET /sse`, and `post(session)`,
 * that of `POST /sse/{session}`. `sseUrl` names the stream's endpoint;
 * without it, the WebSocket address's `/ws` becomes `/sse` (any other path
 * gets `/sse` appended), over http(s). A POST carries the same identity as
 * its stream, so the same `user` or `token` query parameter, but no cursor.
 */
export function sseUrls(address, { user, cursors, sseUrl }) {
  const url = new URL(sseUrl ?? address, globalThis.location?.href);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  if (sseUrl === undefined) url.pathname = `${url.pathname.replace(/\/ws\/?$/, '').replace(/\/$/, '')}/sse`;
  withIdentity(url, user);
  url.searchParams.delete('since_cursor');
  const identified = url.toString();
  const post = (session) => {
    const target = new URL(identified);
    target.pathname = `${target.pathname.replace(/\/$/, '')}/${encodeURIComponent(session)}`;
    return target.toString();
  };
  withCursors(url, cursors);
  return { stream: url.toString(), post };
}

function withIdentity(url, user) {
  if (user !== undefined && user !== null && user !== '') url.searchParams.set('user', user);
}

function withCursors(url, cursors) {
  // One since_cursor per user route: the last notification cursor received.
  url.searchParams.delete('since_cursor');
  for (const cursor of cursors.values()) url.searchParams.append('since_cursor', cursor);
}
