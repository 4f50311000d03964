//! Pure-Rust core of the event engine: topics (parse, match, format, hash),
//! hook tables, the bounded in-process queue and timers. No Python here.

#![warn(missing_docs)]

pub mod hooks;
pub mod queue;
pub mod timer;
pub mod topic;

pub use hooks::{HookTable, Route, RouteKey};
pub use queue::BoundedQueue;
pub use timer::{Alignment, Tick, Timer};
pub use topic::{
    topic_hash, MatchNode, MatchResult, Pattern, PrehashedHasher, Topic, TopicError, TopicHashMap,
    TopicPart, TopicType,
};
