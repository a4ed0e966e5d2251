// The one error type of the library: `code` is the relay's error code
// (docs/protocol.md, "Error codes") or one of the client's own, and `ref`
// names what it is about (a room, a write's client_id, a route).

export class RoomcastError extends Error {
  constructor(code, message, ref) {
    super(message);
    this.name = 'RoomcastError';
    this.code = code;
    if (ref !== undefined) this.ref = ref;
  }
}
