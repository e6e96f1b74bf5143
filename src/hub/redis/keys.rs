//! The names of the backplane's keys and channels.
//!
//! Every key and the channel of a topic carry the topic in braces,
//! `PREFIX:{TOPIC}:...`, so that on a Redis Cluster they hash to one slot (its
//! hash tag: what lies between the first `{` and the first `}` after it) and one
//! script may touch them all. A topic name is escaped into its tag: `%`, `{` and
//! `}` become `%25`, `%7B` and `%7D`, and the empty name becomes `%`, so that any
//! name gives a tag that is not empty and holds no brace (a room named `}x` would
//! otherwise end its tag at once: an empty tag, and its keys spread over slots).
//! Names without those characters are their own tag.

use std::borrow::Cow;

/// The hash tag of `topic` (see the module docs).
pub(super) fn escape(topic: &str) -> Cow<'_, str> {
    if topic.is_empty() {
        return Cow::Borrowed("%");
    }
    if !topic.contains(['%', '{', '}']) {
        return Cow::Borrowed(topic);
    }
    let mut out = String::with_capacity(topic.len() + 8);
    for c in topic.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The topic whose hash tag is `tag`; `None` for a tag [`escape`] never makes.
pub(super) fn unescape(tag: &str) -> Option<Cow<'_, str>> {
    if tag == "%" {
        return Some(Cow::Borrowed(""));
    }
    if tag.is_empty() || tag.contains(['{', '}']) {
        return None;
    }
    if !tag.contains('%') {
        return Some(Cow::Borrowed(tag));
    }
    let mut out = String::with_capacity(tag.len());
    let mut rest = tag;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "7B" => '{',
            "7D" => '}',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

/// The keys and the channel of a topic.
pub(super) struct Keys {
    pub epoch: String,
    pub offset: String,
    pub stream: String,
    pub channel: String,
}

impl Keys {
    pub fn new(prefix: &str, topic: &str) -> Keys {
        let channel = channel(prefix, topic);
        Keys {
            epoch: format!("{channel}:epoch"),
            offset: format!("{channel}:offset"),
            stream: format!("{channel}:history"),
            channel,
        }
    }
}

/// The channel of a topic: `PREFIX:{TAG}`.
pub(super) fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}:{{{}}}", escape(topic))
}

/// The topic a channel is for (`None`: not one of ours).
pub(super) fn topic_of<'a>(prefix: &str, channel: &'a str) -> Option<Cow<'a, str>> {
    let tag = channel
        .strip_prefix(prefix)?
        .strip_prefix(":{")?
        .strip_suffix('}')?;
    unescape(tag)
}

/// The presence keys of a topic for server `origin` (see `presence_lib.lua`):
/// its users there, every server's count per user, each user's metadata, the
/// topic's presence version.
pub(super) fn presence(prefix: &str, topic: &str, origin: u64) -> Vec<String> {
    let channel = channel(prefix, topic);
    vec![
        format!("{channel}:pusers:{origin}"),
        format!("{channel}:pcount"),
        format!("{channel}:pmeta"),
        format!("{channel}:pversion"),
    ]
}

/// The sorted set of live servers (scored by their last refresh).
pub(super) fn servers(prefix: &str) -> String {
    format!("{prefix}:servers")
}

/// The set of servers taken off [`servers`] whose users have not all left yet:
/// `{PREFIX:servers}:unswept`, whose hash tag is the whole name of [`servers`],
/// so that both are in one slot on a cluster and one script updates both.
pub(super) fn unswept(prefix: &str) -> String {
    format!("{{{prefix}:servers}}:unswept")
}

/// The set of topics server `origin` has users in (what a sweep goes through).
pub(super) fn server_topics(prefix: &str, origin: u64) -> String {
    format!("{prefix}:server:{origin}:topics")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hash tag as Redis Cluster takes it: between the first `{` and the
    /// first `}` after it, when that is not empty; otherwise the whole key.
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    #[test]
    fn a_closing_brace_first_gives_a_tag_that_is_not_empty() {
        let k = Keys::new("ws", "}x");
        assert_eq!(k.channel, "ws:{%7Dx}");
        assert_eq!(hash_tag(&k.epoch), "%7Dx");
        assert_eq!(hash_tag(&k.stream), "%7Dx");
        assert_eq!(topic_of("ws", &k.channel).as_deref(), Some("}x"));
    }

    #[test]
    fn plain_names_keep_their_keys_and_the_empty_name_has_a_tag() {
        assert_eq!(Keys::new("ws", "room").epoch, "ws:{room}:epoch");
        assert_eq!(channel("ws", ""), "ws:{%}");
        assert_eq!(topic_of("ws", "ws:{%}").as_deref(), Some(""));
        assert_eq!(topic_of("ws", "ws:{}"), None);
        assert_eq!(topic_of("ws", "ws:{a%zz}"), None);
        assert_eq!(topic_of("ws", "ws:{a%2}"), None);
        assert_eq!(topic_of("other", "ws:{a}"), None);
    }

    proptest! {
        #[test]
        fn every_key_of_a_topic_has_one_tag_that_names_it(topic in ".{0,24}", prefix in "[a-z:]{0,6}") {
            let k = Keys::new(&prefix, &topic);
            let tag = hash_tag(&k.channel);
            prop_assert!(!tag.is_empty());
            let braces = tag.contains(['{', '}']);
            prop_assert!(!braces, "a brace in {:?}", tag);
            for key in [&k.epoch, &k.offset, &k.stream]
                .into_iter()
                .cloned()
                .chain(presence(&prefix, &topic, 7))
            {
                prop_assert_eq!(hash_tag(&key), tag);
            }
            let back = topic_of(&prefix, &k.channel).map(|t| t.into_owned());
            prop_assert_eq!(back, Some(topic));
        }

        #[test]
        fn unescape_never_panics_and_inverts_escape(tag in "[%{}a-zA-Z0-9]{0,12}") {
            if let Some(topic) = unescape(&tag) {
                let again = escape(&topic).into_owned();
                prop_assert_eq!(again, tag);
            }
        }
    }
}
