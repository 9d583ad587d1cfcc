//! Advice: what a valid policy may say but probably should not. Never an
//! error; `hnvswitch check` prints each line as a warning and `hnvswitch run`
//! logs it.
//!
//! - A vhost-user port (`net_vhost…`/`eth_vhost…` devargs) without
//!   `client=1`: in server mode the switch owns the socket, so after the switch
//!   restarts every VM must reconnect by itself. In client mode (like Open
//!   vSwitch's `dpdkvhostuserclient`) the VM's side (QEMU `server=on`) owns
//!   the socket and DPDK reconnects to it, every second until it succeeds,
//!   whenever the connection is lost (the switch restarted, or the VM's side).

use crate::model::Policy;

/// One line per piece of advice, naming the record and field.
pub fn advice(policy: &Policy) -> Vec<String> {
    policy
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| vhost_server_mode(&p.devargs))
        .map(|(i, p)| {
            format!(
                "ports[{i}] ({}): field 'devargs': vhost-user port in server mode; after a switch restart the VM \
                 must reconnect by itself: add client=1 (the VM's side then listens, e.g. QEMU \
                 `-chardev socket,path=...,server=on`, and the switch reconnects to it)",
                p.name
            )
        })
        .collect()
}

/// Whether `devargs` open a vhost-user port as the socket's server, DPDK's
/// default: `client` absent, or not a non-zero integer (DPDK reads it with
/// `strtol`, so `client=yes` is 0).
pub fn vhost_server_mode(devargs: &str) -> bool {
    let mut parts = devargs.split(',');
    let name = parts.next().unwrap_or("").trim();
    if !(name.starts_with("net_vhost") || name.starts_with("eth_vhost")) {
        return false;
    }
    let client = parts.filter_map(|kv| kv.split_once('=')).filter(|(k, _)| k.trim() == "client").map(|(_, v)| strtol(v.trim())).next_back().unwrap_or(0);
    client == 0
}

/// C `strtol(s, NULL, 0)` for what devargs hold: optional sign, then decimal,
/// `0x` hex or leading-0 octal digits, stopping at the first other character.
fn strtol(s: &str) -> i64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let mut v: i64 = 0;
    for c in digits.chars() {
        match c.to_digit(radix) {
            Some(d) => v = v.saturating_mul(i64::from(radix)).saturating_add(i64::from(d)),
            None => break,
        }
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_modes() {
        assert!(vhost_server_mode("net_vhost0,iface=/run/vm.sock"));
        assert!(vhost_server_mode("net_vhost0,iface=/run/vm.sock,client=0"));
        assert!(vhost_server_mode("eth_vhost1,iface=/run/vm.sock,client=yes"));
        assert!(vhost_server_mode("net_vhost0,iface=/run/vm.sock,client=1,client=0"));
        assert!(!vhost_server_mode("net_vhost0,iface=/run/vm.sock,client=1"));
        assert!(!vhost_server_mode("net_vhost0,client=1,iface=/run/vm.sock,queues=2"));
        assert!(!vhost_server_mode("net_vhost3,iface=/run/vm.sock, client = 0x1"));
        assert!(!vhost_server_mode("net_tap0,iface=t0"));
        assert!(!vhost_server_mode("net_virtio_user0,path=/run/vm.sock"));
        assert!(!vhost_server_mode("0000:03:00.0"));
        assert!(!vhost_server_mode(""));
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol("1"), 1);
        assert_eq!(strtol("010"), 8);
        assert_eq!(strtol("0x1f"), 31);
        assert_eq!(strtol("-2"), -2);
        assert_eq!(strtol("1abc"), 1);
        assert_eq!(strtol("yes"), 0);
        assert_eq!(strtol(""), 0);
        assert_eq!(strtol("99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn example_policies_need_no_advice() {
        for text in [crate::example::BLUE_RED_HOST1, crate::example::BLUE_RED_HOST2] {
            let p = crate::parse(text, "example").expect("valid example");
            assert!(advice(&p).is_empty());
        }
    }

    #[test]
    fn server_mode_vhost_port_is_named() {
        let text = crate::example::BLUE_RED_HOST1.replace("net_ring_h1blue1", "net_vhost0,iface=/run/blue1.sock");
        let p = crate::parse(&text, "t").expect("valid");
        let a = advice(&p);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].starts_with("ports[1] (blue1): field 'devargs': vhost-user port in server mode"), "{}", a[0]);
        let text = text.replace("iface=/run/blue1.sock", "iface=/run/blue1.sock,client=1");
        assert!(advice(&crate::parse(&text, "t").expect("valid")).is_empty());
    }
}
