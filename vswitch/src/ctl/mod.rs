//! The control socket: `hnvctl` talks to a running switch over a Unix socket
//! that only root can open (mode 0600 in a 0700 directory).
//!
//! A thin adapter around the [`PolicyService`](crate::service::PolicyService): [`protocol`] is the line
//! format and its errors (one JSON request per line, one JSON response per
//! line, transactions framed by `begin`/`commit`), [`server`] accepts
//! connections and turns each line into a service call, [`show`] renders the
//! `show` views as JSON, [`state`] is what the control threads share with
//! the daemon, and [`client`] is what `hnvctl` and the tests use.
//! Nothing here validates or publishes a policy itself.
//!
//! Port changes (`add_port`, `remove_port`) need the DPDK runtime, which the
//! main thread owns: they are handed to it as a [`PortJob`] and answered once
//! applied (see `hnv`'s control loop). They are refused while a capture runs
//! (its file names ports by index). With the etcd backend they are allowed:
//! ports are host-local.

pub mod client;
pub mod protocol;
pub mod server;
pub mod show;
pub mod state;

pub use client::Client;
pub use server::{answer_line, respond, serve, Server, Session};
pub use state::{CtlState, PortJob, PortRow};
