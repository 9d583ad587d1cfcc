//! Built-in and example extensions, one per file (VPP: one node per file).
//!
//! - [`acl`]: the VSID ACL filter;
//! - [`capture`]: pcapng capture through a ring, written off the hot path;
//! - [`live_capture`]: starting and stopping a capture on a running switch;
//! - [`example`]: a documented example filter showing how to add one.

pub mod acl;
pub mod capture;
pub mod example;
pub mod live_capture;
