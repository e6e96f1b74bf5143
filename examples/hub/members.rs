//! Member lists as batched changes: the hub reports each user's first join and
//! last leave ([`ws::Presence`]); the relay turns them into what the rooms'
//! members are told, once per room per tick.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use actix::prelude::*;
use websocket_driver as ws;

use super::{json, policy::Names, ChatOptions, ServerMsg};

/// A connection joined `room`: it gets the member list at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Newcomer {
    pub(super) room: String,
    pub(super) id: ws::ConnId,
}

/// A connection left `room` (or closed): no list for it.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Gone {
    pub(super) room: String,
    pub(super) id: ws::ConnId,
}

/// Send the member changes now.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Flush;

impl Handler<Flush> for MembersRelay {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.flush(Instant::now());
    }
}

/// What the members of a room were last told.
#[derive(Debug)]
struct Told {
    /// The names (`None`: the room was over the list limit: only the count).
    names: Option<BTreeSet<String>>,
    count: usize,
    at: Instant,
}

/// One room, as the relay sees it.
#[derive(Debug)]
struct RoomView {
    /// User key -> nickname, across servers (from the hub's presence).
    users: HashMap<String, String>,
    told: Told,
    /// Joiners waiting for their list.
    newcomers: Vec<ws::ConnId>,
}

/// Turns the hub's presence events into what the rooms' members are told: the
/// whole list once to each joiner, then the changes, batched per room per tick
/// (one `presence` per room per tick, however many came and went), and past the
/// list limit only the count. Members of a room of N cost O(N) messages per tick
/// at most, never O(N) per change.
#[derive(Debug)]
pub struct MembersRelay {
    hub: ws::Hub,
    options: ChatOptions,
    names: Arc<Names>,
    prefix: String,
    rooms: HashMap<String, RoomView>,
    dirty: HashSet<String>,
}

impl Actor for MembersRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.options.tick, |relay, _| relay.flush(Instant::now()));
    }
}

impl MembersRelay {
    /// The relay of `hub`'s rooms (start it, and send it the hub's presence).
    pub(super) fn new(
        hub: ws::Hub,
        options: ChatOptions,
        names: Arc<Names>,
        prefix: String,
    ) -> Self {
        MembersRelay {
            hub,
            options,
            names,
            prefix,
            rooms: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    fn view(&mut self, room: &str) -> &mut RoomView {
        self.dirty.insert(room.to_owned());
        self.rooms
            .entry(room.to_owned())
            .or_insert_with(|| RoomView {
                users: HashMap::new(),
                told: Told {
                    names: Some(BTreeSet::new()),
                    count: 0,
                    at: Instant::now(),
                },
                newcomers: Vec::new(),
            })
    }

    /// For each room that changed: its joiners get the list as the room's members
    /// were last told it, then everyone gets what changed since, in one message.
    fn flush(&mut self, now: Instant) {
        let limit = self.options.list_limit;
        for room in std::mem::take(&mut self.dirty) {
            let Some(view) = self.rooms.get_mut(&room) else {
                continue;
            };
            if !view.newcomers.is_empty() {
                let list = json(&ServerMsg::Members {
                    room: &room,
                    members: view
                        .told
                        .names
                        .as_ref()
                        .map(|names| names.iter().map(String::as_str).collect()),
                    count: view.told.count,
                });
                for id in view.newcomers.drain(..) {
                    self.hub.send_to(id, list.clone());
                }
            }
            let count = view.users.len();
            let names: Option<BTreeSet<&str>> =
                (count <= limit).then(|| view.users.values().map(String::as_str).collect());
            let told = &view.told;
            let update = match (&names, &told.names) {
                (Some(names), Some(before)) => {
                    let joined: Vec<&str> = names
                        .iter()
                        .filter(|n| !before.contains(**n))
                        .copied()
                        .collect();
                    let left: Vec<&str> = before
                        .iter()
                        .map(String::as_str)
                        .filter(|n| !names.contains(n))
                        .collect();
                    (!joined.is_empty() || !left.is_empty()).then(|| {
                        json(&ServerMsg::Presence {
                            room: &room,
                            joined: Some(joined),
                            left: Some(left),
                            count,
                        })
                    })
                }
                // Back under the limit: the whole list again.
                (Some(names), None) => Some(json(&ServerMsg::Members {
                    room: &room,
                    members: Some(names.iter().copied().collect()),
                    count,
                })),
                (None, None) if told.count == count => None,
                (None, None)
                    if now.saturating_duration_since(told.at) < self.options.count_interval =>
                {
                    // Said at a later tick.
                    self.dirty.insert(room.clone());
                    None
                }
                (None, _) => Some(json(&ServerMsg::Presence {
                    room: &room,
                    joined: None,
                    left: None,
                    count,
                })),
            };
            if let Some(update) = update {
                self.hub.publish_transient(&room, update, None);
                view.told = Told {
                    names: names.map(|n| n.into_iter().map(str::to_owned).collect()),
                    count,
                    at: now,
                };
            }
            if view.users.is_empty() && view.told.count == 0 {
                self.rooms.remove(&room);
            }
        }
    }
}

impl Handler<ws::Presence> for MembersRelay {
    type Result = ();
    fn handle(&mut self, presence: ws::Presence, _: &mut Context<Self>) {
        let ws::Presence {
            topic,
            user,
            meta,
            kind,
            ..
        } = presence;
        // A member that joined without a nickname (not through this chat) is
        // shown by its user key.
        let name = meta.unwrap_or_else(|| user.clone());
        match kind {
            ws::PresenceKind::Joined => {
                if !user.starts_with(&self.prefix) {
                    // Another server's member holds its name here too.
                    self.names.claim(&topic, &name, &user);
                }
                self.view(&topic).users.insert(user, name);
            }
            ws::PresenceKind::Left => {
                // Whoever left (here, closed, or on another server) gives the name
                // it joined with back, if it still holds it (a server swept from
                // Redis reports its members' leaves without their nicknames).
                let name = self.view(&topic).users.remove(&user).unwrap_or(name);
                self.names.release(&topic, &name, &user);
            }
        }
    }
}

impl Handler<Newcomer> for MembersRelay {
    type Result = ();
    fn handle(&mut self, msg: Newcomer, _: &mut Context<Self>) {
        self.view(&msg.room).newcomers.push(msg.id);
    }
}

impl Handler<Gone> for MembersRelay {
    type Result = ();
    fn handle(&mut self, msg: Gone, _: &mut Context<Self>) {
        if let Some(view) = self.rooms.get_mut(&msg.room) {
            view.newcomers.retain(|id| *id != msg.id);
        }
    }
}
