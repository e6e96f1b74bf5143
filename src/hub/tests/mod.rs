//! The hub's unit tests: a hub without sockets ([`harness`]), membership races
//! with forced interleavings ([`races`]), the topic's life cycle under random
//! operations ([`lifecycle`]).

mod bounds;
mod callbacks;
mod features;
mod harness;
mod lifecycle;
mod listeners;
mod races;
