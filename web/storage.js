// What the demo remembers across page reloads: who you are, your rooms (and
// those you left, so the relay's list of your rooms does not bring them
// back), the last notification cursor (so a reload recovers what arrived meanwhile),
// recent notifications, and writes not acknowledged yet (resent with their
// original client_id, so a reload never posts a message twice).
// The token stays in sessionStorage: it is not kept beyond this tab.

const KEY = 'roomcast.demo';
const TOKEN_KEY = 'roomcast.demo.token';
const KEPT_NOTIFICATIONS = 50;

const blank = () => ({ mode: 'user', user: '', rooms: [], left: [], current: null, cursors: {}, notifications: [], pending: [] });

export function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY));
    return { ...blank(), ...saved, token: sessionStorage.getItem(TOKEN_KEY) ?? '' };
  } catch {
    return { ...blank(), token: '' };
  }
}

export function save(state) {
  const { token, ...rest } = state;
  rest.notifications = rest.notifications.slice(0, KEPT_NOTIFICATIONS);
  localStorage.setItem(KEY, JSON.stringify(rest));
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function forget() {
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(TOKEN_KEY);
}
