//! The hub's table of connections: each one's shard, user and topics, and the
//! connections of each user (at most
//! [`max_connections_per_user`](crate::settings::HubSettings::max_connections_per_user)).

use std::{collections::HashMap, sync::Arc};

use super::topic::Topic;
use crate::actor::{Conn, ConnId};

/// A connection of the hub.
pub(super) struct ConnEntry {
    /// `None` for an event stream (and the unit tests' connections without a
    /// socket).
    pub conn: Option<Conn>,
    pub shard: usize,
    /// Its user: the one it was registered with, or the user key of its first
    /// join that had one; until then, its id.
    pub user: Arc<str>,
    /// Whether `user` was given (not its id).
    pub named: bool,
    /// The topics it is a member of (live ones: a topic with members is never
    /// removed).
    pub topics: Vec<Arc<Topic>>,
    /// What the application registered with it (`Hub::register_with_claims`).
    pub claims: Option<super::access::Claims>,
}

/// The connections, by id and by user.
#[derive(Default)]
pub(super) struct Conns {
    by_id: HashMap<ConnId, ConnEntry>,
    by_user: HashMap<Arc<str>, Vec<ConnId>>,
}

/// A user with `limit` connections already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UserFull {
    pub limit: usize,
}

impl Conns {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn get(&self, id: &ConnId) -> Option<&ConnEntry> {
        self.by_id.get(id)
    }

    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut ConnEntry> {
        self.by_id.get_mut(id)
    }

    pub fn values(&self) -> impl Iterator<Item = &ConnEntry> {
        self.by_id.values()
    }

    /// The connections of `user`, in the order they got it.
    pub fn of_user(&self, user: &str) -> &[ConnId] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// Add connection `id` on `shard`, as `user` (`None`: its id), unless that
    /// user has `max_per_user` connections already.
    pub fn insert(
        &mut self,
        id: ConnId,
        conn: Option<Conn>,
        shard: usize,
        user: Option<Arc<str>>,
        max_per_user: usize,
    ) -> Result<(), UserFull> {
        let named = user.is_some();
        let user = user.unwrap_or_else(|| id.to_string().into());
        self.add_to_user(id, &user, max_per_user)?;
        self.by_id.insert(
            id,
            ConnEntry {
                conn,
                shard,
                user,
                named,
                topics: Vec::new(),
                claims: None,
            },
        );
        Ok(())
    }

    /// Make `user` the user of connection `id` (in the table), unless that user
    /// has `max_per_user` connections already (then nothing changes).
    pub fn set_user(
        &mut self,
        id: ConnId,
        user: Arc<str>,
        max_per_user: usize,
    ) -> Result<(), UserFull> {
        let Some(entry) = self.by_id.get(&id) else {
            return Ok(());
        };
        if entry.user == user {
            if let Some(entry) = self.by_id.get_mut(&id) {
                entry.named = true;
            }
            return Ok(());
        }
        let before = entry.user.clone();
        self.add_to_user(id, &user, max_per_user)?;
        self.remove_from_user(id, &before);
        if let Some(entry) = self.by_id.get_mut(&id) {
            entry.user = user;
            entry.named = true;
        }
        Ok(())
    }

    /// Take connection `id` out of the table.
    pub fn remove(&mut self, id: &ConnId) -> Option<ConnEntry> {
        let entry = self.by_id.remove(id)?;
        self.remove_from_user(*id, &entry.user);
        Some(entry)
    }

    fn add_to_user(&mut self, id: ConnId, user: &Arc<str>, max: usize) -> Result<(), UserFull> {
        let ids = self.by_user.entry(user.clone()).or_default();
        if ids.len() >= max {
            if ids.is_empty() {
                self.by_user.remove(user);
            }
            return Err(UserFull { limit: max });
        }
        ids.push(id);
        Ok(())
    }

    fn remove_from_user(&mut self, id: ConnId, user: &str) {
        if let Some(ids) = self.by_user.get_mut(user) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_user.remove(user);
            }
        }
    }
}

impl Conns {
    /// The entries without a connection: event streams.
    pub(super) fn event_streams(&self) -> usize {
        self.values().filter(|entry| entry.conn.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnId {
        ConnId::from_raw(n)
    }

    #[test]
    fn a_user_holds_at_most_its_bound_and_a_freed_place_is_taken_again() {
        let mut conns = Conns::default();
        let alice: Arc<str> = "alice".into();
        for n in 1..=3 {
            conns
                .insert(id(n), None, 0, Some(alice.clone()), 3)
                .unwrap();
        }
        assert_eq!(
            conns.insert(id(4), None, 0, Some(alice.clone()), 3),
            Err(UserFull { limit: 3 })
        );
        assert!(conns.get(&id(4)).is_none());
        assert_eq!(conns.of_user("alice"), [id(1), id(2), id(3)]);
        conns.remove(&id(2));
        conns.insert(id(4), None, 0, Some(alice), 3).unwrap();
        assert_eq!(conns.of_user("alice"), [id(1), id(3), id(4)]);
        assert_eq!(conns.len(), 3);
    }

    #[test]
    fn a_connection_without_a_user_is_its_own_and_can_be_named_later() {
        let mut conns = Conns::default();
        conns.insert(id(7), None, 0, None, 2).unwrap();
        assert_eq!(conns.of_user("conn-7"), [id(7)]);
        conns.set_user(id(7), "bob".into(), 2).unwrap();
        assert!(conns.of_user("conn-7").is_empty());
        assert_eq!(conns.of_user("bob"), [id(7)]);
        conns.insert(id(8), None, 0, Some("bob".into()), 2).unwrap();
        conns.insert(id(9), None, 0, None, 2).unwrap();
        // Bob is full: the connection keeps its own key.
        assert_eq!(
            conns.set_user(id(9), "bob".into(), 2),
            Err(UserFull { limit: 2 })
        );
        assert_eq!(conns.of_user("conn-9"), [id(9)]);
        conns.remove(&id(7));
        conns.remove(&id(8));
        assert!(conns.of_user("bob").is_empty());
        assert!(conns.by_user.keys().all(|u| &**u == "conn-9"));
    }
}
