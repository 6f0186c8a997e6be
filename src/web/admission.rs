//! Which connections are let in: at most `server.max_connections` open at once, and at most
//! `server.max_connections_per_address` from one source. A connection over either limit is closed as soon as it is
//! accepted, before any TLS work, and counted in `kopir_connections_refused_total{reason}`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    PerAddress,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::PerAddress => "per_address",
        }
    }
}

/// The open connections, counted in all and by source.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_source: usize,
    /// Whether the count is the platform's `kopir_connections_open` (not another loop's, e.g. a reference bank's).
    metered: bool,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// An admitted connection; its slot is given back when this is dropped.
pub struct Admitted {
    inner: Arc<Inner>,
    source: IpAddr,
}

/// The unit a per-address limit counts: an IPv4 address (also when mapped into IPv6), or an IPv6 /64 — one host
/// commonly holds a whole /64, so counting single IPv6 addresses would be no limit at all.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Admission {
    /// `metered`: whether the count is reported as the platform's open connections (not for a reference bank's loop).
    pub fn new(max_total: usize, max_per_source: usize, metered: bool) -> Admission {
        Admission { inner: Arc::new(Inner { max_total, max_per_source, metered, open: Mutex::new(Open::default()) }) }
    }

    /// Takes a slot for a connection from `peer`, or says why there is none.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let source = source_of(peer);
        let mut open = self.inner.lock();
        if open.total >= self.inner.max_total {
            return Err(Refusal::MaxConnections);
        }
        let from_source = open.by_source.entry(source).or_insert(0);
        if *from_source >= self.inner.max_per_source {
            return Err(Refusal::PerAddress);
        }
        *from_source += 1;
        open.total += 1;
        if self.inner.metered {
            super::metrics::record_open_connections(open.total);
        }
        Ok(Admitted { inner: self.inner.clone(), source })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: every update is a single step.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.inner.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_source.remove(&self.source);
            }
        }
        if self.inner.metered {
            super::metrics::record_open_connections(open.total);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_hold_and_slots_come_back() {
        let admission = Admission::new(3, 2, false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Refusal::PerAddress));
        let _third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).err(), Some(Refusal::MaxConnections));
        drop(first);
        assert!(admission.admit(a).is_ok());
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(10, 1, false);
        let _one = admission.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(admission.admit("2001:db8::2".parse().unwrap()).err(), Some(Refusal::PerAddress));
        assert!(admission.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let _v4 = admission.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert_eq!(admission.admit("::ffff:192.0.2.7".parse().unwrap()).err(), Some(Refusal::PerAddress));
    }
}
