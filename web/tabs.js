// The other open tabs of the same person in this browser. Each tab has its
// own connection and its own copy of the saved state, so a room joined in
// one would reach the others only at their next reload (and a tab saving
// its stale copy would even drop it from storage). The tab that joins or
// leaves says so on a BroadcastChannel named after the user; the others
// join or leave too, and the relay's `joined` frame brings them the room's
// unread count. Only what a person did is announced, never what a tab did
// on hearing it, so nothing echoes back and forth.

const PREFIX = 'roomcast.demo.rooms:';

/** `on` gives joined(room) and left(room), called for what another tab announced. */
export function otherTabs(user, on) {
  if (typeof BroadcastChannel === 'undefined') return { joined() {}, left() {}, close() {} };
  const channel = new BroadcastChannel(PREFIX + user);
  channel.addEventListener('message', ({ data }) => {
    if (typeof data?.joined === 'string') on.joined(data.joined);
    else if (typeof data?.left === 'string') on.left(data.left);
  });
  return {
    joined: (room) => channel.postMessage({ joined: room }),
    left: (room) => channel.postMessage({ left: room }),
    close: () => channel.close(),
  };
}
