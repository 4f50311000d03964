//! The interning map: topic string -> parsed topic, shared by every `Topic`
//! built from that string, so a topic string is parsed once per process.
//! Python sees it through `init_internal_map`, `get_internal_topic`,
//! `get_internal_map` and `clear_internal_map` (defined with `Topic`, in `topic.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use engine_core::Topic;

static MAP: Mutex<Option<HashMap<String, Arc<Topic>>>> = Mutex::new(None);

fn map() -> MutexGuard<'static, Option<HashMap<String, Arc<Topic>>>> {
    // A panic while holding this lock cannot leave the map half-updated
    // (single insert/remove calls), so a poisoned lock is still usable.
    MAP.lock().unwrap_or_else(|e| e.into_inner())
}

/// The interned topic for `literal`, if any.
pub(crate) fn lookup(literal: &str) -> Option<Arc<Topic>> {
    map().as_ref()?.get(literal).cloned()
}

/// Most topics interned; past it, new topics work as usual but are not interned, so a program
/// that builds a topic per order id cannot grow the map without bound.
pub(crate) const MAX_INTERNED: usize = 1 << 17;

/// Interns `topic` unless its string is interned already (or the map holds [`MAX_INTERNED`]
/// topics); returns the interned one, or `topic` itself when it was not interned.
pub(crate) fn insert_if_absent(topic: Arc<Topic>) -> Arc<Topic> {
    let mut guard = map();
    let m = guard.get_or_insert_with(HashMap::new);
    if m.len() >= MAX_INTERNED && !m.contains_key(topic.literal()) {
        return topic;
    }
    m.entry(topic.literal().to_owned()).or_insert(topic).clone()
}

/// Creates the map if needed, sized for `capacity` topics.
pub(crate) fn init(capacity: usize) {
    map().get_or_insert_with(|| HashMap::with_capacity(capacity));
}

/// Forgets every interned topic (topics already handed out keep working).
pub(crate) fn clear() {
    if let Some(m) = map().as_mut() {
        m.clear();
    }
}

/// A copy of every entry: `(topic string, topic)`.
pub(crate) fn entries() -> Vec<(String, Arc<Topic>)> {
    map()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}
