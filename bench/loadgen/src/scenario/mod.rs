//! The benchmark scenarios. Each takes a freshly started server and returns
//! serializable figures; the suite runs every one against both servers.

pub mod fanout;
pub mod floor;
pub mod growth;
pub mod history;
pub mod idle;
pub mod notify;
pub mod presence;
mod producer;
pub mod typing;

use crate::dialect::Target;
use crate::figures::Watched;
use crate::scale::Scale;

/// What a scenario needs to know about the server it drives.
pub struct Ctx<'a> {
    pub target: Target,
    pub port: u16,
    pub watched: Watched,
    pub scale: &'a Scale,
    pub mongo_uri: &'a str,
    pub database: &'a str,
}
