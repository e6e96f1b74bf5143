//! Namespaces: topic policies by name. A pattern is an exact topic name or a
//! prefix followed by `*`; a topic takes the namespace that names it exactly,
//! else the one with the longest prefix of its name, else the hub's defaults.
//! The policy is resolved once, when the topic is made: a hub without
//! namespaces, and a topic once made, pay no lookup per publication.

use std::{collections::HashMap, sync::Arc};

use super::types::TopicSettings;
use crate::settings::{HubSettings, NamespaceSettings};

/// A namespace: its name and its topics' settings.
#[derive(Debug, Clone)]
pub(super) struct Namespace {
    pub name: Arc<str>,
    pub settings: TopicSettings,
}

/// The hub's namespaces.
#[derive(Debug, Default)]
pub(super) struct Namespaces {
    exact: HashMap<String, Namespace>,
    /// Prefixes, the longest first.
    prefixes: Vec<(String, Namespace)>,
}

impl Namespaces {
    /// The namespaces of `[hub.namespaces]`, over the hub's defaults.
    pub fn from_settings(hub: &HubSettings) -> Namespaces {
        let mut namespaces = Namespaces::default();
        let defaults = TopicSettings::from(hub);
        for (name, ns) in &hub.namespaces {
            namespaces.set(name, &ns.pattern(name), apply(defaults.clone(), ns));
        }
        namespaces
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Add (or replace) the namespace `name` of the topics `pattern` names.
    pub fn set(&mut self, name: &str, pattern: &str, settings: TopicSettings) {
        let namespace = Namespace {
            name: name.into(),
            settings,
        };
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.retain(|(p, _)| p != prefix);
                self.prefixes.push((prefix.to_owned(), namespace));
                // Stable: of two equal lengths, the earlier stays first.
                self.prefixes
                    .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
            }
            None => {
                self.exact.insert(pattern.to_owned(), namespace);
            }
        }
    }

    /// The namespace of `topic`: the exact one, else the longest prefix.
    pub fn resolve(&self, topic: &str) -> Option<&Namespace> {
        if self.is_empty() {
            return None;
        }
        self.exact.get(topic).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| topic.starts_with(prefix.as_str()))
                .map(|(_, ns)| ns)
        })
    }
}

/// `defaults` with what `ns` sets.
pub(super) fn apply(defaults: TopicSettings, ns: &NamespaceSettings) -> TopicSettings {
    let mut s = defaults;
    let NamespaceSettings {
        topics: _,
        history_size,
        history_ttl,
        history_bytes,
        presence,
        recovery,
        cache,
        slow_consumer,
        conflation_keys,
        slow_close_code,
        send_budget_bytes,
        send_budget_messages,
        max_members,
        max_message_bytes,
        client_publish,
    } = ns.clone();
    s.history_size = history_size.unwrap_or(s.history_size);
    s.history_ttl = history_ttl.unwrap_or(s.history_ttl);
    s.history_bytes = history_bytes.unwrap_or(s.history_bytes);
    s.presence = presence.unwrap_or(s.presence);
    s.recovery = recovery.unwrap_or(s.recovery);
    s.cache = cache.unwrap_or(s.cache);
    s.slow_consumer = slow_consumer.unwrap_or(s.slow_consumer);
    s.conflation_keys = conflation_keys.unwrap_or(s.conflation_keys);
    s.slow_close_code = slow_close_code.unwrap_or(s.slow_close_code);
    s.send_budget_bytes = send_budget_bytes.unwrap_or(s.send_budget_bytes);
    s.send_budget_messages = send_budget_messages.unwrap_or(s.send_budget_messages);
    s.max_members = max_members.unwrap_or(s.max_members);
    s.max_message_bytes = max_message_bytes.or(s.max_message_bytes);
    s.client_publish = client_publish.unwrap_or(s.client_publish);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(history: usize) -> TopicSettings {
        TopicSettings::from(&HubSettings::default()).history_size(history)
    }

    #[test]
    fn an_exact_name_wins_over_prefixes_and_the_longest_prefix_over_shorter_ones() {
        let mut n = Namespaces::default();
        assert!(n.resolve("chat:1").is_none());
        n.set("all", "*", ns(1));
        n.set("chat", "chat:*", ns(2));
        n.set("vip", "chat:vip:*", ns(3));
        n.set("lobby", "chat:lobby", ns(4));
        let of = |t: &str| n.resolve(t).map(|ns| ns.name.to_string());
        assert_eq!(of("chat:1").as_deref(), Some("chat"));
        assert_eq!(of("chat:vip:2").as_deref(), Some("vip"));
        assert_eq!(of("chat:lobby").as_deref(), Some("lobby"));
        assert_eq!(of("chat:lobby2").as_deref(), Some("chat"));
        assert_eq!(of("feed:1").as_deref(), Some("all"));
        assert_eq!(n.resolve("chat:vip:2").unwrap().settings.history_size, 3);
    }

    #[test]
    fn a_namespace_overrides_only_what_it_sets() {
        let hub = HubSettings::default();
        let ns = NamespaceSettings {
            cache: Some(true),
            client_publish: Some(false),
            max_members: Some(3),
            ..NamespaceSettings::default()
        };
        let s = apply(TopicSettings::from(&hub), &ns);
        assert!(s.cache && !s.client_publish);
        assert_eq!(s.max_members, 3);
        assert_eq!(s.kept(), 1);
        assert_eq!(s.history_ttl, hub.history_ttl);
        assert_eq!(s.slow_consumer, hub.slow_consumer);
    }
}
