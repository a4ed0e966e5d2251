// Prepares a database for roomcast: its collections, every index the relay
// creates at start-up with mongo.create_indexes: true (the same names and
// definitions: src/store/schema.rs), and change-stream pre-images on
// `messages`; then drops `author_client_id`, which `room_author_client_id`
// replaced, once the new index exists. Safe to run again, and while relays
// run. The relay can then start with mongo.create_indexes: false, with only
// readWrite (deploy/mongodb/README.md).
//
//   mongosh "$MONGODB_URI" --eval 'var database = "roomcast"' deploy/mongodb/setup.js
//
// Set before the script, the same way, when your configuration differs:
//   userRoutes  the `user` routes of `routes`, as [{collection, key}];
//               default [{collection: "notifications", key: "user"}]
//   membership  true under auth.room_policy: membership (the unique
//               {room, user} and the {user, room} indexes of room_members);
//               default false

if (typeof database !== "string" || database === "") {
  print('setup.js: name the database first: --eval \'var database = "roomcast"\'');
  quit(2);
}
const target = db.getSiblingDB(database);
const routes = typeof userRoutes === "undefined" ? [{ collection: "notifications", key: "user" }] : userRoutes;
const withMembership = typeof membership !== "undefined" && membership === true;

const indexes = [
  // Arbitrates every seq; serves history and the room's current seq.
  { collection: "messages", name: "room_seq", key: { room: 1, seq: 1 }, options: { unique: true } },
  // Idempotent sends, per room; partial, so documents without a client_id never collide.
  {
    collection: "messages",
    name: "room_author_client_id",
    key: { room: 1, author: 1, client_id: 1 },
    options: { unique: true, partialFilterExpression: { client_id: { $type: "string" } } },
  },
  // A user's read markers, most recently raised first (the room list).
  { collection: "read_markers", name: "user_at", key: { user: 1, at: -1 } },
  // Pages of a user's documents of each user route.
  ...routes.map((route) => ({
    collection: route.collection,
    name: `${route.key}_1__id_-1`,
    key: { [route.key]: 1, _id: -1 },
  })),
  ...(withMembership
    ? [
        // A join's membership lookup, unique per (room, user).
        { collection: "room_members", name: "room_user", key: { room: 1, user: 1 }, options: { unique: true } },
        // A user's memberships, for the room list.
        { collection: "room_members", name: "user_room", key: { user: 1, room: 1 } },
      ]
    : []),
  // Presence: a room's snapshot, a dead replica's sweep, and clean-ups.
  { collection: "presence", name: "room", key: { room: 1 } },
  { collection: "presence", name: "replica", key: { replica: 1 } },
  { collection: "presence_replicas", name: "at_ttl", key: { at: 1 }, options: { expireAfterSeconds: 86400 } },
  { collection: "typing", name: "at_ttl", key: { at: 1 }, options: { expireAfterSeconds: 60 } },
];

const NAMESPACE_EXISTS = 48;
const INDEX_NOT_FOUND = 27;

const existing = new Set(target.getCollectionNames());
for (const name of new Set(indexes.map((index) => index.collection))) {
  if (existing.has(name)) continue;
  try {
    target.createCollection(name);
    print(`created collection ${database}.${name}`);
  } catch (error) {
    if (error.code !== NAMESPACE_EXISTS) throw error;
  }
}

// createIndex does nothing for an index that exists with this definition,
// and fails, naming it, for one in its way.
for (const index of indexes) {
  target.getCollection(index.collection).createIndex(index.key, { name: index.name, ...(index.options || {}) });
}
print(`indexes: ${indexes.map((index) => `${index.collection}.${index.name}`).join(", ")}`);

// The document as it was before a change or delete, so a hard delete names its room.
const preImages = target.runCommand({ collMod: "messages", changeStreamPreAndPostImages: { enabled: true } });
if (preImages.ok !== 1) throw new Error(`cannot turn on pre-images of ${database}.messages: ${tojson(preImages)}`);
print(`pre-images: on for ${database}.messages`);

// Only once its replacement is listed, so sends stay idempotent throughout.
const listed = target.messages.getIndexes().map((index) => index.name);
if (listed.includes("author_client_id")) {
  if (!listed.includes("room_author_client_id")) throw new Error("room_author_client_id is missing; not dropping author_client_id");
  try {
    target.messages.dropIndex("author_client_id");
    print(`dropped the obsolete index ${database}.messages author_client_id`);
  } catch (error) {
    if (error.code !== INDEX_NOT_FOUND) throw error;
  }
}
print(`${database} is ready for roomcast with mongo.create_indexes: false`);
