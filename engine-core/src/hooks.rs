//! `HookTable`: which hooks receive a published topic.
//!
//! Hooks registered under an exact topic are found by the topic's hash (the literal is
//! compared on a hit, so a hash collision cannot misroute). Hooks registered under a generic
//! topic (wildcards, ranges, patterns) are kept in registration order and tried one by one.
//! Dispatch order for a published topic is: the exact hook first, then every matching generic
//! hook in registration order.
//!
//! Trying every generic hook on every message would cost a regex search per pattern part, so
//! the outcome is cached per published topic (keyed by hash, checked by literal). Any change
//! to the set of topics clears the cache; replacing the hook of a topic keeps it.
//!
//! A caller that decides whether it wants a message before it can call the hooks (a bus
//! receiver deciding without the GIL) keeps the [`RouteKey`] of that one lookup and reads the
//! hooks through it ([`HookTable::route_keyed`]): one lookup per message.

use crate::topic::{Topic, TopicHashMap};

/// Most cached routes kept before the cache is emptied and refilled, so that a stream of
/// ever-new topics cannot grow memory without bound.
const ROUTE_CACHE_LIMIT: usize = 1 << 16;

type HashIndex<V> = TopicHashMap<V>;

/// The routing of one published topic, as positions into the table's lists.
struct CachedRoute {
    literal: Box<str>,
    /// Position in `HookTable::exact`.
    exact: Option<usize>,
    /// Positions in `HookTable::generic`, ascending (registration order).
    generic: Vec<usize>,
}

/// A route found by [`HookTable::find_route`], to be read again ([`HookTable::route_keyed`])
/// without a second lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteKey {
    index: u32,
    hooks: u32,
}

impl RouteKey {
    /// Whether the route has no hook (nobody wants the topic).
    pub fn is_empty(&self) -> bool {
        self.hooks == 0
    }
}

/// Hooks keyed by topic: exact topics by hash (literal compared on hit), generic topics in
/// registration order, with a per-topic route cache for dispatch.
///
/// ```
/// use event_engine_core::{HookTable, Topic};
///
/// let mut table = HookTable::new();
/// table.insert(Topic::parse("Orders.{side}.EU").unwrap(), "generic");
/// table.insert(Topic::parse("Orders.New.EU").unwrap(), "exact");
/// let published = Topic::parse("Orders.New.EU").unwrap();
/// let hooks: Vec<_> = table.route(&published).copied().collect();
/// assert_eq!(hooks, ["exact", "generic"]);
/// ```
pub struct HookTable<H> {
    /// Exact topics and their hooks, in registration order.
    exact: Vec<(Topic, H)>,
    /// Topic hash -> positions in `exact` with that hash (more than one only on a collision).
    exact_index: HashIndex<Vec<usize>>,
    /// Generic topics and their hooks, in registration order.
    generic: Vec<(Topic, H)>,
    /// Routes by topic hash, as positions in `cached`: every topic is routed by its literal
    /// (docs/topic-grammar.md).
    routes: HashIndex<u32>,
    /// Every route here is current: any change to the set of topics empties it. So a
    /// [`RouteKey`] whose position still holds its literal's route reads the right hooks.
    cached: Vec<CachedRoute>,
}

impl<H> Default for HookTable<H> {
    fn default() -> Self {
        HookTable::new()
    }
}

impl<H> HookTable<H> {
    /// An empty table.
    pub fn new() -> Self {
        HookTable {
            exact: Vec::new(),
            exact_index: HashIndex::default(),
            generic: Vec::new(),
            routes: HashIndex::default(),
            cached: Vec::new(),
        }
    }

    fn exact_position(&self, hash: u64, literal: &str) -> Option<usize> {
        self.exact_index
            .get(&hash)?
            .iter()
            .copied()
            .find(|&i| self.exact[i].0.literal() == literal)
    }

    fn generic_position(&self, topic: &Topic) -> Option<usize> {
        self.generic.iter().position(|(t, _)| t == topic)
    }

    fn invalidate_routes(&mut self) {
        self.routes.clear();
        self.cached.clear();
    }

    fn rebuild_exact_index(&mut self) {
        self.exact_index.clear();
        for (i, (topic, _)) in self.exact.iter().enumerate() {
            self.exact_index
                .entry(topic.hash_value())
                .or_default()
                .push(i);
        }
    }

    /// Registers `hook` under `topic`. When an equal topic (same literal) is already there,
    /// its hook is replaced, it keeps its place in the order, and the old hook is returned.
    pub fn insert(&mut self, topic: Topic, hook: H) -> Option<H> {
        if topic.is_exact() {
            if let Some(i) = self.exact_position(topic.hash_value(), topic.literal()) {
                return Some(std::mem::replace(&mut self.exact[i].1, hook));
            }
            self.exact_index
                .entry(topic.hash_value())
                .or_default()
                .push(self.exact.len());
            self.exact.push((topic, hook));
        } else {
            if let Some(i) = self.generic_position(&topic) {
                return Some(std::mem::replace(&mut self.generic[i].1, hook));
            }
            self.generic.push((topic, hook));
        }
        self.invalidate_routes();
        None
    }

    /// The hook registered under a topic equal to `topic`.
    pub fn get(&self, topic: &Topic) -> Option<&H> {
        if topic.is_exact() {
            let i = self.exact_position(topic.hash_value(), topic.literal())?;
            Some(&self.exact[i].1)
        } else {
            let i = self.generic_position(topic)?;
            Some(&self.generic[i].1)
        }
    }

    /// The hook registered under a topic equal to `topic`, for changing it in place.
    pub fn get_mut(&mut self, topic: &Topic) -> Option<&mut H> {
        if topic.is_exact() {
            let i = self.exact_position(topic.hash_value(), topic.literal())?;
            Some(&mut self.exact[i].1)
        } else {
            let i = self.generic_position(topic)?;
            Some(&mut self.generic[i].1)
        }
    }

    /// Unregisters the topic equal to `topic`; returns the registered topic and its hook.
    /// The other hooks keep their order.
    pub fn remove(&mut self, topic: &Topic) -> Option<(Topic, H)> {
        let removed = if topic.is_exact() {
            let i = self.exact_position(topic.hash_value(), topic.literal())?;
            let removed = self.exact.remove(i);
            self.rebuild_exact_index();
            removed
        } else {
            let i = self.generic_position(topic)?;
            self.generic.remove(i)
        };
        self.invalidate_routes();
        Some(removed)
    }

    /// Unregisters everything.
    pub fn clear(&mut self) {
        self.exact.clear();
        self.exact_index.clear();
        self.generic.clear();
        self.invalidate_routes();
    }

    /// The number of registered topics.
    pub fn len(&self) -> usize {
        self.exact.len() + self.generic.len()
    }

    /// Whether no topic is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exact topics and their hooks, in registration order.
    pub fn exact(&self) -> impl Iterator<Item = (&Topic, &H)> {
        self.exact.iter().map(|(topic, hook)| (topic, hook))
    }

    /// Generic topics and their hooks, in registration order.
    pub fn generic(&self) -> impl Iterator<Item = (&Topic, &H)> {
        self.generic.iter().map(|(topic, hook)| (topic, hook))
    }

    /// All topics and their hooks: the exact ones, then the generic ones.
    pub fn iter(&self) -> impl Iterator<Item = (&Topic, &H)> {
        self.exact().chain(self.generic())
    }

    /// Works out the route of a topic with the given hash, literal and (parsed) parts.
    fn compute_route(&self, hash: u64, literal: &str, parsed: Option<&Topic>) -> CachedRoute {
        CachedRoute {
            literal: literal.into(),
            exact: self.exact_position(hash, literal),
            generic: match parsed {
                Some(published) => self
                    .generic
                    .iter()
                    .enumerate()
                    .filter(|(_, (topic, _))| topic.matches(published))
                    .map(|(i, _)| i)
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    fn make_route<'a>(&'a self, cached: &'a CachedRoute) -> Route<'a, H> {
        Route {
            exact: cached.exact.map(|i| &self.exact[i].1),
            generic: cached.generic.iter(),
            hooks: &self.generic,
        }
    }

    /// The position in `cached` of the route of `literal` under `hash`, computed if needed;
    /// `parsed` supplies the parsed literal when the caller has it.
    fn cache_literal_route(&mut self, hash: u64, literal: &str, parsed: Option<&Topic>) -> u32 {
        let found = self.routes.get(&hash).copied();
        if let Some(i) = found {
            if &*self.cached[i as usize].literal == literal {
                return i;
            }
        }
        let route = match parsed {
            Some(topic) => self.compute_route(hash, literal, Some(topic)),
            // An unparsable literal cannot match a generic topic; the exact hook is still
            // found by literal.
            None => {
                let topic = Topic::parse(literal).ok();
                self.compute_route(hash, literal, topic.as_ref())
            }
        };
        if let Some(i) = found {
            // Another literal with this hash (a collision): its position now routes this one.
            self.cached[i as usize] = route;
            return i;
        }
        if self.cached.len() >= ROUTE_CACHE_LIMIT {
            self.routes.clear();
            self.cached.clear();
        }
        let i = self.cached.len() as u32;
        self.cached.push(route);
        self.routes.insert(hash, i);
        i
    }

    /// Hooks for a published (exact) topic: the exact hook first, then every generic hook
    /// whose topic matches it, in registration order.
    ///
    /// The topic is routed by its literal, as [`route_literal`](Self::route_literal) routes it
    /// (a part holding `.` is as many parts as the literal reads: the one rule that holds across
    /// processes too). Generic matching results are cached per topic hash (the cache is
    /// invalidated by insert/remove/clear), so a topic seen before costs one hash lookup.
    pub fn route(&mut self, topic: &Topic) -> Route<'_, H> {
        let hash = topic.hash_value();
        // A canonical topic's parts are what its literal parses to: no need to parse it again.
        let parsed = topic.is_canonical().then_some(topic);
        let i = self.cache_literal_route(hash, topic.literal(), parsed);
        self.make_route(&self.cached[i as usize])
    }

    /// Hooks for a topic known only by hash and literal (messages arriving from shared
    /// memory), in the same order as [`route`](Self::route); parses the literal at most once
    /// per hash while the cache holds it.
    ///
    /// A literal that does not parse reaches no generic hook; its exact hook, if any, is
    /// still found by literal. `hash` must be [`topic_hash`](crate::topic_hash)`(literal)`.
    pub fn route_literal(&mut self, hash: u64, literal: &str) -> Route<'_, H> {
        let i = self.cache_literal_route(hash, literal, None);
        self.make_route(&self.cached[i as usize])
    }

    /// Looks the route of a topic up as [`route_literal`](Self::route_literal) does, and
    /// returns a key to read it by ([`route_keyed`](Self::route_keyed)) without a second
    /// lookup; [`RouteKey::is_empty`] says whether any hook would receive the topic.
    pub fn find_route(&mut self, hash: u64, literal: &str) -> RouteKey {
        let index = self.cache_literal_route(hash, literal, None);
        let hooks = self.make_route(&self.cached[index as usize]).len() as u32;
        RouteKey { index, hooks }
    }

    /// [`route_literal`](Self::route_literal), read through `key` (found by
    /// [`find_route`](Self::find_route)) when its position still holds this literal's route
    /// (the cache was not emptied, nor the position taken by a colliding literal, since);
    /// looked up otherwise. Never another topic's hooks, never stale ones.
    pub fn route_keyed(&mut self, key: Option<RouteKey>, hash: u64, literal: &str) -> Route<'_, H> {
        let good = key.filter(|k| {
            self.cached
                .get(k.index as usize)
                .is_some_and(|c| &*c.literal == literal)
        });
        let index = match good {
            Some(k) => k.index,
            None => self.cache_literal_route(hash, literal, None),
        };
        self.make_route(&self.cached[index as usize])
    }
}

/// The hooks a published topic goes to, in dispatch order (see [`HookTable::route`]).
pub struct Route<'a, H> {
    exact: Option<&'a H>,
    generic: std::slice::Iter<'a, usize>,
    hooks: &'a [(Topic, H)],
}

impl<'a, H> Iterator for Route<'a, H> {
    type Item = &'a H;

    fn next(&mut self) -> Option<&'a H> {
        if let Some(hook) = self.exact.take() {
            return Some(hook);
        }
        self.generic.next().map(|&i| &self.hooks[i].1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.exact.is_some()) + self.generic.len();
        (n, Some(n))
    }
}

impl<H> ExactSizeIterator for Route<'_, H> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_hash;

    fn t(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    fn routed(table: &mut HookTable<&'static str>, topic: &str) -> Vec<&'static str> {
        let by_topic: Vec<_> = table.route(&t(topic)).copied().collect();
        let by_literal: Vec<_> = table
            .route_literal(topic_hash(topic), topic)
            .copied()
            .collect();
        assert_eq!(by_topic, by_literal, "route and route_literal disagree");
        assert_eq!(
            table.find_route(topic_hash(topic), topic).is_empty(),
            by_topic.is_empty()
        );
        by_topic
    }

    #[test]
    fn exact_hook_first_then_generic_in_registration_order() {
        let mut table = HookTable::new();
        table.insert(t("Orders.+side.EU"), "g1");
        table.insert(t("Orders.New.EU"), "exact");
        table.insert(t("Orders.(New|Cancel).+region"), "g2");
        table.insert(t("Orders./^N/.EU"), "g3");
        table.insert(t("Orders.Cancel.{r}"), "g4");
        assert_eq!(
            routed(&mut table, "Orders.New.EU"),
            ["exact", "g1", "g2", "g3"]
        );
        assert_eq!(routed(&mut table, "Orders.Cancel.EU"), ["g1", "g2", "g4"]);
        assert_eq!(routed(&mut table, "Orders.Amend.US"), Vec::<&str>::new());
        assert_eq!(routed(&mut table, "Orders.New"), Vec::<&str>::new());
    }

    #[test]
    fn insert_replaces_in_place_and_returns_the_old_hook() {
        let mut table = HookTable::new();
        assert_eq!(table.insert(t("a.{x}"), 1), None);
        assert_eq!(table.insert(t("a.b"), 2), None);
        assert_eq!(table.insert(t("c.{x}"), 3), None);
        assert_eq!(table.insert(t("a.{x}"), 10), Some(1));
        assert_eq!(table.insert(t("a.b"), 20), Some(2));
        assert_eq!(table.len(), 3);
        let order: Vec<_> = table
            .iter()
            .map(|(topic, &h)| (topic.literal(), h))
            .collect();
        assert_eq!(order, [("a.b", 20), ("a.{x}", 10), ("c.{x}", 3)]);
        assert_eq!(
            table.route(&t("a.b")).copied().collect::<Vec<_>>(),
            [20, 10]
        );
    }

    #[test]
    fn get_get_mut_remove_clear() {
        let mut table = HookTable::new();
        table.insert(t("a.b"), 1);
        table.insert(t("a.{x}"), 2);
        table.insert(t("a.c"), 3);
        assert_eq!(table.get(&t("a.b")), Some(&1));
        assert_eq!(table.get(&t("a.{x}")), Some(&2));
        assert_eq!(table.get(&t("a.+x")), None, "topics are equal by literal");
        assert_eq!(table.get(&t("a.d")), None);
        *table.get_mut(&t("a.{x}")).unwrap() = 22;
        *table.get_mut(&t("a.c")).unwrap() = 33;
        assert_eq!(
            table.route(&t("a.c")).copied().collect::<Vec<_>>(),
            [33, 22]
        );

        let (topic, hook) = table.remove(&t("a.b")).unwrap();
        assert_eq!((topic.literal(), hook), ("a.b", 1));
        assert_eq!(table.remove(&t("a.b")), None::<(Topic, i32)>);
        assert_eq!(
            table.get(&t("a.c")),
            Some(&33),
            "index rebuilt after removal"
        );
        assert_eq!(table.route(&t("a.b")).copied().collect::<Vec<_>>(), [22]);
        assert_eq!(table.remove(&t("a.{x}")).map(|(_, h)| h), Some(22));
        assert_eq!(table.route(&t("a.b")).count(), 0, "cache invalidated");
        assert_eq!(table.len(), 1);
        table.clear();
        assert!(table.is_empty());
        assert_eq!(table.route(&t("a.c")).count(), 0);
    }

    #[test]
    fn exact_and_generic_listings() {
        let mut table = HookTable::new();
        table.insert(t("g.{a}"), 'a');
        table.insert(t("e.1"), 'b');
        table.insert(t("g.(x|y)"), 'c');
        table.insert(t("e.2"), 'd');
        let exact: Vec<_> = table.exact().map(|(_, &h)| h).collect();
        let generic: Vec<_> = table.generic().map(|(_, &h)| h).collect();
        let all: Vec<_> = table.iter().map(|(_, &h)| h).collect();
        assert_eq!(exact, ['b', 'd']);
        assert_eq!(generic, ['a', 'c']);
        assert_eq!(all, ['b', 'd', 'a', 'c']);
    }

    #[test]
    fn the_cache_follows_registration_changes() {
        let mut table = HookTable::new();
        assert_eq!(routed(&mut table, "x.y"), Vec::<&str>::new());
        table.insert(t("x.{a}"), "g");
        assert_eq!(routed(&mut table, "x.y"), ["g"]);
        table.insert(t("x.y"), "e");
        assert_eq!(routed(&mut table, "x.y"), ["e", "g"]);
        table.insert(t("+a.y"), "g2");
        assert_eq!(routed(&mut table, "x.y"), ["e", "g", "g2"]);
        table.remove(&t("x.{a}"));
        assert_eq!(routed(&mut table, "x.y"), ["e", "g2"]);
        table.remove(&t("x.y"));
        assert_eq!(routed(&mut table, "x.y"), ["g2"]);
    }

    #[test]
    fn unparsable_literals_reach_only_their_exact_hook() {
        let mut table = HookTable::new();
        table.insert(t("{a}"), "generic");
        assert_eq!(table.route_literal(topic_hash("/x"), "/x").count(), 0);
        assert!(table.find_route(topic_hash("/x"), "/x").is_empty());
        // An exact topic built from a part that does not parse back still gets its messages.
        table.insert(Topic::join(["/x"]), "exact");
        let hooks: Vec<_> = table
            .route_literal(topic_hash("/x"), "/x")
            .copied()
            .collect();
        assert_eq!(hooks, ["exact"]);
    }

    #[test]
    fn hash_collisions_do_not_misroute() {
        let mut table = HookTable::new();
        table.insert(t("a.b"), "ab");
        table.insert(t("{x}.c"), "generic");
        // Pretend "z.c" collides with "a.b": the literal check must keep them apart.
        let hash = topic_hash("a.b");
        assert_eq!(
            table
                .route_literal(hash, "a.b")
                .copied()
                .collect::<Vec<_>>(),
            ["ab"]
        );
        assert_eq!(
            table
                .route_literal(hash, "z.c")
                .copied()
                .collect::<Vec<_>>(),
            ["generic"]
        );
        assert_eq!(
            table
                .route_literal(hash, "a.b")
                .copied()
                .collect::<Vec<_>>(),
            ["ab"]
        );
    }

    #[test]
    fn non_canonical_topics_are_routed_by_their_literal() {
        let mut table = HookTable::new();
        table.insert(t("Data.{code}"), "one part");
        table.insert(t("Data.{code}.{exchange}"), "two parts");
        table.insert(Topic::join(["Data", "600010.SH"]), "exact");
        // The joined topic has two parts, but its literal reads as three, and that is what
        // another process receives: every split of the literal routes the same way.
        for topic in [
            Topic::join(["Data", "600010.SH"]),
            t("Data.600010.SH"),
            Topic::join(["Data.600010", "SH"]),
            Topic::join(["Data.600010.SH"]),
        ] {
            let hooks: Vec<_> = table.route(&topic).copied().collect();
            assert_eq!(hooks, ["exact", "two parts"], "{topic:?}");
        }
        let by_literal: Vec<_> = table
            .route_literal(topic_hash("Data.600010.SH"), "Data.600010.SH")
            .copied()
            .collect();
        assert_eq!(by_literal, ["exact", "two parts"]);
    }

    #[test]
    fn route_reports_its_length() {
        let mut table = HookTable::new();
        table.insert(t("a"), 1);
        table.insert(t("{x}"), 2);
        table.insert(t("(a|b)"), 3);
        let route = table.route(&t("a"));
        assert_eq!(route.len(), 3);
        assert_eq!(route.copied().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut table = HookTable::new();
        table.insert(t("{x}"), ());
        for i in 0..ROUTE_CACHE_LIMIT + 10 {
            let literal = i.to_string();
            assert_eq!(
                table.route_literal(topic_hash(&literal), &literal).count(),
                1
            );
        }
        assert!(table.routes.len() <= ROUTE_CACHE_LIMIT);
    }
}
