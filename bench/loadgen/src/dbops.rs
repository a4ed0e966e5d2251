//! MongoDB's own count of the operations on one database, from the `top`
//! admin command: per collection, the inserts, updates and removes it ran
//! (and reads), counted by the database server itself rather than by either
//! server under test. Each run has a database of its own, so the counts
//! belong to that run alone; the difference of two samples is what a
//! window caused.
//!
//! `top` counts operations attempted, not documents changed: a conditional
//! update that matched nothing and an insert refused as a duplicate count
//! as one each. Change events (what the relays react to) are the subset
//! that changed a document.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, Bson, Document};
use serde::Serialize;

/// Operations on one collection.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct OpCounts {
    pub insert: u64,
    pub update: u64,
    pub remove: u64,
    pub queries: u64,
    pub getmore: u64,
    pub commands: u64,
}

impl OpCounts {
    pub fn writes(&self) -> u64 {
        self.insert + self.update + self.remove
    }

    fn since(&self, earlier: &OpCounts) -> OpCounts {
        OpCounts {
            insert: self.insert.saturating_sub(earlier.insert),
            update: self.update.saturating_sub(earlier.update),
            remove: self.remove.saturating_sub(earlier.remove),
            queries: self.queries.saturating_sub(earlier.queries),
            getmore: self.getmore.saturating_sub(earlier.getmore),
            commands: self.commands.saturating_sub(earlier.commands),
        }
    }
}

/// Operations per collection of one database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbOps {
    pub collections: BTreeMap<String, OpCounts>,
}

impl DbOps {
    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &DbOps) -> DbOps {
        let collections = self
            .collections
            .iter()
            .map(|(name, now)| {
                let before = earlier.collections.get(name).copied().unwrap_or_default();
                (name.clone(), now.since(&before))
            })
            .filter(|(_, counts)| *counts != OpCounts::default())
            .collect();
        DbOps { collections }
    }

    /// Inserts, updates and removes on `collection`.
    pub fn writes_on(&self, collection: &str) -> u64 {
        self.collections.get(collection).map_or(0, OpCounts::writes)
    }

    /// Inserts, updates and removes on every collection of the database.
    pub fn writes(&self) -> u64 {
        self.collections.values().map(OpCounts::writes).sum()
    }
}

/// The counts of `database`'s collections now.
pub async fn sample(client: &mongodb::Client, database: &str) -> Result<DbOps> {
    let reply = client.database("admin").run_command(doc! { "top": 1 }).await.context("the top command")?;
    Ok(parse(reply.get_document("totals").context("top without totals")?, database))
}

fn parse(totals: &Document, database: &str) -> DbOps {
    let prefix = format!("{database}.");
    let collections = totals
        .iter()
        .filter_map(|(namespace, value)| {
            let collection = namespace.strip_prefix(&prefix)?;
            let entry = value.as_document()?;
            let count = |key: &str| entry.get_document(key).ok().and_then(|d| d.get("count")).map_or(0, as_u64);
            let counts = OpCounts {
                insert: count("insert"),
                update: count("update"),
                remove: count("remove"),
                queries: count("queries"),
                getmore: count("getmore"),
                commands: count("commands"),
            };
            Some((collection.to_string(), counts))
        })
        .collect();
    DbOps { collections }
}

fn as_u64(value: &Bson) -> u64 {
    match value {
        Bson::Int32(n) => (*n).max(0) as u64,
        Bson::Int64(n) => (*n).max(0) as u64,
        Bson::Double(n) => n.max(0.0) as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_database_asked_for_and_subtracts() {
        let entry = |insert: i32, update: i64, remove: f64| {
            doc! {
                "total": { "time": 5, "count": 99 },
                "insert": { "time": 1, "count": insert },
                "update": { "time": 1, "count": update },
                "remove": { "time": 1, "count": remove },
                "queries": { "time": 1, "count": 4 },
            }
        };
        let before = doc! { "note": "all times in microseconds", "b_1.presence": entry(2, 0, 1.0) };
        let after = doc! {
            "note": "all times in microseconds",
            "b_1.presence": entry(7, 1, 4.0),
            "b_1.typing": entry(0, 3, 0.0),
            "b_10.presence": entry(50, 50, 50.0),
        };
        let delta = parse(&after, "b_1").since(&parse(&before, "b_1"));
        assert_eq!(delta.writes_on("presence"), 5 + 1 + 3);
        assert_eq!(delta.collections["presence"].queries, 0);
        assert_eq!(delta.writes_on("typing"), 3);
        assert_eq!(delta.writes(), 12);
        assert_eq!(delta.writes_on("messages"), 0);
    }
}
