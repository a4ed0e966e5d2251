// Shards roomcast's `messages` collection on {room: 1}, through mongos, once
// setup.js has prepared the database (its indexes support the shard key, and
// it drops `author_client_id`, which a collection sharded on {room: 1} could
// not keep). The other collections stay unsharded; docs/operations.md
// ("Sharding") says why, and what holds on a sharded cluster.
//
//   mongosh "$MONGOS_URI" --eval 'var database = "roomcast"' deploy/mongodb/shard.js
//
// Safe to run again: a collection already sharded on {room: 1} is left as is.

if (typeof database !== "string" || database === "") {
  print('shard.js: name the database first: --eval \'var database = "roomcast"\'');
  quit(2);
}
if (db.hello().msg !== "isdbgrid") {
  print("shard.js: connect to a mongos of a sharded cluster, not to a replica set");
  quit(2);
}
const namespace = `${database}.messages`;
const shardKey = { room: 1 };

const indexes = db.getSiblingDB(database).messages.getIndexes().map((index) => index.name);
for (const needed of ["room_seq", "room_author_client_id"]) {
  if (!indexes.includes(needed)) {
    print(`shard.js: ${namespace} has no ${needed} index: run deploy/mongodb/setup.js first`);
    quit(2);
  }
}
if (indexes.includes("author_client_id")) {
  print(`shard.js: ${namespace} still has author_client_id, which {room: 1} cannot keep unique: run deploy/mongodb/setup.js first`);
  quit(2);
}

const sharded = db.getSiblingDB("config").collections.findOne({ _id: namespace });
if (sharded) {
  if (JSON.stringify(sharded.key) === JSON.stringify(shardKey)) {
    print(`${namespace} is already sharded on {room: 1}`);
    quit(0);
  }
  print(`shard.js: ${namespace} is sharded on ${JSON.stringify(sharded.key)}, not {room: 1}`);
  quit(1);
}

sh.enableSharding(database);
sh.shardCollection(namespace, shardKey);
print(`sharded ${namespace} on {room: 1}`);
