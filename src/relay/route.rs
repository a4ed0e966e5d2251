//! A route as it runs: built from its `routes` entry, or the internal watch
//! of `room_members` under `room_policy: membership`. Its pipeline is one
//! leading `$match` that MongoDB pushes down into the oplog scan.

use bson::{doc, Document};

use crate::collections::{PRESENCE, READ_MARKERS, READ_MARKERS_ROUTE, ROOM_MEMBERS, TYPING};
use crate::settings::{Channel, KeyType, Operation, RouteSettings};

/// Whom a running route's events go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every member of the document's `room`.
    Room,
    /// Every connection of the user named by the document's `key` field,
    /// when that field has the route's key type.
    User { key: String, key_type: KeyType },
    /// Live joins backed by a `room_members` document, revoked when it changes.
    Membership,
    /// Every connection of a `read_markers` document's user.
    ReadMarkers,
    /// The presence tracker: who is present in which room, on any replica.
    Presence,
    /// The members of a `typing` document's room, but its user.
    Typing,
}

/// One running route: one change stream per process.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub collection: String,
    pub audience: Audience,
    operations: Vec<&'static str>,
    filter: Option<Document>,
    /// Whether update events need the document looked up (they carry only the change).
    pub lookup: bool,
    /// Whether deletes and replaces need the document as it was before
    /// (`fullDocumentBeforeChange`): a delete event carries only the `_id`.
    pub pre_images: bool,
}

/// The collection's lifecycle events always pass the filter: a `$match` may
/// otherwise hide the invalidation that ends a stream, and the relay must see
/// it to re-fill rooms and tell user channels to resync.
const LIFECYCLE: [&str; 4] = ["drop", "rename", "dropDatabase", "invalidate"];

impl Route {
    /// The route a `routes` entry describes (already validated).
    pub fn from_settings(settings: &RouteSettings) -> Route {
        let audience = match settings.channel {
            Channel::Room => Audience::Room,
            Channel::User => Audience::User { key: settings.key.clone(), key_type: settings.key_type },
        };
        let own =
            settings.filter.as_ref().map(|f| bson::to_document(f).expect("route filters are checked at start-up"));
        // The key's type is part of the route: documents with another type
        // are filtered out by the database, in the pushed-down `$match`.
        let key_type = match &audience {
            Audience::User { key, key_type } => {
                let bson_type = match key_type {
                    KeyType::String => "string",
                    KeyType::ObjectId => "objectId",
                };
                Some(doc! { format!("fullDocument.{key}"): { "$type": bson_type } })
            }
            _ => None,
        };
        let filter = match (own, key_type) {
            (Some(own), Some(key_type)) => Some(doc! { "$and": [own, key_type] }),
            (one, other) => one.or(other),
        };
        Route {
            name: settings.name.clone(),
            collection: settings.collection.clone(),
            audience,
            operations: settings.operations.iter().map(|op| op.as_str()).collect(),
            filter,
            lookup: settings.operations.contains(&Operation::Update),
            pre_images: settings.channel == Channel::Room
                && (settings.operations.contains(&Operation::Delete)
                    || settings.operations.contains(&Operation::Replace)),
        }
    }

    /// The watch of `room_members`: deletes carry no document, so they are
    /// matched by the `_id` of each membership that backs a live join.
    pub fn membership() -> Route {
        Route {
            name: ROOM_MEMBERS.to_string(),
            collection: ROOM_MEMBERS.to_string(),
            audience: Audience::Membership,
            operations: vec!["update", "replace", "delete"],
            filter: None,
            lookup: true,
            pre_images: false,
        }
    }

    /// The watch of `presence`: inserts and deletes, whose `_id` says the
    /// room, the user and the replica.
    pub fn presence() -> Route {
        Route::keyed(PRESENCE, Audience::Presence, vec!["insert", "delete"])
    }

    /// The watch of `typing`: inserts and raises, whose `_id` says the room
    /// and the user.
    pub fn typing() -> Route {
        Route::keyed(TYPING, Audience::Typing, vec!["insert", "update", "replace"])
    }

    /// An internal route whose events are routed by their `_id` alone.
    fn keyed(collection: &str, audience: Audience, operations: Vec<&'static str>) -> Route {
        Route {
            name: collection.to_string(),
            collection: collection.to_string(),
            audience,
            operations,
            filter: None,
            lookup: false,
            pre_images: false,
        }
    }

    /// The watch of `read_markers`: an update carries its new `seq`, and
    /// the `_id` names the user and the room, so nothing is looked up.
    pub fn read_markers() -> Route {
        Route {
            name: READ_MARKERS_ROUTE.to_string(),
            collection: READ_MARKERS.to_string(),
            audience: Audience::ReadMarkers,
            operations: vec!["insert", "update", "replace"],
            filter: None,
            lookup: false,
            pre_images: false,
        }
    }

    /// A leading `$match` on `operationType` (and the route's own filter),
    /// which the collection's lifecycle events always pass.
    pub fn pipeline(&self) -> Vec<Document> {
        let mut relayed = vec![doc! { "operationType": { "$in": &self.operations } }];
        relayed.extend(self.filter.clone());
        let relayed = if relayed.len() == 1 {
            relayed.remove(0)
        } else {
            doc! { "$and": relayed }
        };
        let lifecycle = doc! { "operationType": { "$in": LIFECYCLE.to_vec() } };
        let mut pipeline = vec![doc! { "$match": { "$or": [relayed, lifecycle] } }];
        if self.pre_images {
            pipeline.push(before_change_fields());
        }
        pipeline
    }
}

impl Route {
    /// The pipeline that reads one user's events of a user route back from
    /// the route's history: the route's own `$match`, narrowed to the user.
    /// Events of transactions pass too, and so does any event after
    /// `until`: the first tells where each of the user's events stands
    /// among its transaction's (as the route's stream numbers them), the
    /// second that the history was read up to `until`.
    pub fn history_pipeline(&self, user: bson::Bson, until: bson::Timestamp) -> Option<Vec<Document>> {
        let Audience::User { key, .. } = &self.audience else { return None };
        let mut relayed = vec![doc! { "operationType": { "$in": &self.operations } }];
        relayed.extend(self.filter.clone());
        relayed.push(doc! { "$or": [
            { format!("fullDocument.{key}"): user },
            { "txnNumber": { "$exists": true } },
            { "clusterTime": { "$gt": until } },
        ] });
        Some(vec![doc! { "$match": { "$and": relayed } }])
    }
}

/// Keeps of the document before the change only what routes a delete or a
/// replace and what a removed message's frame shows, and nothing on other
/// events: an update event would otherwise carry the document twice (as it
/// was, and as looked up), and two large documents in one event can pass
/// the 16 MB a change event may hold, which breaks the stream for good.
fn before_change_fields() -> Document {
    let kept = doc! {
        "room": "$fullDocumentBeforeChange.room",
        "seq": "$fullDocumentBeforeChange.seq",
        "author": "$fullDocumentBeforeChange.author",
        "sent_at": "$fullDocumentBeforeChange.sent_at",
    };
    let routed_by_it = doc! { "$in": ["$operationType", ["delete", "replace"]] };
    doc! { "$set": { "fullDocumentBeforeChange": { "$cond": [routed_by_it, kept, "$$REMOVE"] } } }
}
