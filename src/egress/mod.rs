//! Where the platform's own outgoing connections may go: the guard against server-side request forgery.
//!
//! Participants choose URLs the platform then calls — webhook URLs, their APIs' sandbox and production base URLs —
//! so without a guard a participant could make the platform call its own loopback services, the operator's private
//! network or a cloud metadata endpoint (169.254.169.254), and read the answers or the errors. Every outgoing client
//! that calls a participant's URL (webhook deliveries, the gateway's bank calls, the sandbox's checks) resolves names
//! through one [`Guard`], which drops every address that is not public before anything connects, and refuses IP
//! literals the same way. The check is on the addresses actually connected to, after resolution, so a name that
//! resolves to a public address for a form's check and to a private one later (DNS rebinding) gains nothing.
//!
//! Not public: loopback, unspecified, RFC 1918 private, carrier-grade NAT (100.64.0.0/10), link-local (the metadata
//! address among them), IETF protocol assignments, benchmarking, documentation and reserved ranges, multicast and
//! broadcast; for IPv6 also unique-local (fc00::/7), link-local (fe80::/10), site-local, discard-only and
//! documentation prefixes, and IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) judged as the IPv4 address.
//!
//! The operator may allow networks anyway: banks sit on private networks in national deployments
//! (`gateway.allowed_networks` for bank calls and checks, `webhooks.allowed_networks` for deliveries). In demo mode
//! loopback is allowed as well — the demo's banks and receivers run on the same machine.

pub mod outbound;
pub use outbound::{Outbound, OutboundError};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Uri;
use ipnet::IpNet;

use crate::config::{Config, Mode};

/// The ranges that are never public (IPv4 and IPv6; IPv4 embedded in IPv6 is unwrapped first).
const NOT_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Which outgoing traffic a guard is for: each has its own allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Bank calls and the sandbox's checks of providers' APIs (`gateway.allowed_networks`).
    Banks,
    /// Webhook deliveries to participants (`webhooks.allowed_networks`).
    Webhooks,
}

impl Purpose {
    /// The configuration key of the allow-list, named in refusals so the operator knows what to change.
    pub fn allow_list_key(self) -> &'static str {
        match self {
            Purpose::Banks => "gateway.allowed_networks",
            Purpose::Webhooks => "webhooks.allowed_networks",
        }
    }
}

/// An address the guard will not connect to, and why. The message is for the operator's eyes (logs, console);
/// participants are shown only that the connection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("{address} is not a public address and is not in {key}")]
    NotPublic { address: IpAddr, key: &'static str },
    #[error("{host} resolves only to addresses that are not public and not in {key} ({addresses})")]
    NoPublicAddress { host: String, addresses: String, key: &'static str },
    /// Not a refusal: the name has no address at all.
    #[error("{host} does not resolve: {error}")]
    Unresolved { host: String, error: String },
}

impl Refused {
    /// Whether the guard refused an address (rather than the name not resolving).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Refused::Unresolved { .. })
    }
}

/// The addresses one purpose may reach.
#[derive(Debug, Clone)]
pub struct Policy {
    purpose: Purpose,
    allowed: Vec<IpNet>,
    allow_loopback: bool,
    not_public: Vec<IpNet>,
}

impl Policy {
    pub fn new(config: &Config, purpose: Purpose) -> Policy {
        let allowed = match purpose {
            Purpose::Banks => config.gateway.allowed_networks.clone(),
            Purpose::Webhooks => config.webhooks.allowed_networks.clone(),
        };
        Policy {
            purpose,
            allowed,
            allow_loopback: config.mode == Mode::Demo,
            // The table is constant and checked by a unit test; nothing here depends on input.
            not_public: NOT_PUBLIC.iter().filter_map(|net| net.parse().ok()).collect(),
        }
    }

    /// Whether a connection to `address` may be made.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = unwrap_embedded(address);
        if self.allowed.iter().any(|net| net.contains(&address)) {
            return true;
        }
        if self.allow_loopback && address.is_loopback() {
            return true;
        }
        !self.not_public.iter().any(|net| net.contains(&address))
    }

    fn check(&self, address: IpAddr) -> Result<(), Refused> {
        if self.permits(address) {
            Ok(())
        } else {
            Err(Refused::NotPublic { address, key: self.purpose.allow_list_key() })
        }
    }
}

/// IPv4 carried inside IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) is
/// judged as the IPv4 address it reaches.
fn unwrap_embedded(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else { return address };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::a.b.c.d (deprecated "compatible"), but not :: and ::1 themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => IpAddr::V4(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => IpAddr::V4(low(hi, lo)),
        [0x2002, hi, lo, ..] => IpAddr::V4(low(hi, lo)),
        _ => IpAddr::V6(v6),
    }
}

/// The guards of the running platform, one per purpose, sharing one resolver.
#[derive(Clone)]
pub struct Egress {
    pub banks: Guard,
    pub webhooks: Guard,
}

impl Egress {
    pub fn new(config: &Config, lookup: Arc<dyn Lookup>) -> Egress {
        Egress {
            banks: Guard::for_purpose(config, Purpose::Banks, lookup.clone()),
            webhooks: Guard::for_purpose(config, Purpose::Webhooks, lookup),
        }
    }
}

/// How names become addresses. The system resolver in service; tests give their own, so that a refusal is proven
/// without a packet leaving the machine.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver (getaddrinfo, on a blocking thread).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// A resolver that gives only the addresses its [`Policy`] permits; plugged into every outgoing client
/// (reqwest's `dns_resolver`, hyper's `HttpConnector::new_with_resolver`), with [`Guard::check_host`] for IP
/// literals, which clients connect to without resolving.
#[derive(Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    lookup: Arc<dyn Lookup>,
}

impl Guard {
    pub fn new(policy: Policy, lookup: Arc<dyn Lookup>) -> Guard {
        Guard { policy: Arc::new(policy), lookup }
    }

    /// A guard that permits every address: for the operator's own command-line runs against a URL they typed
    /// (`kopir conformance` with explicit credentials), never for a participant's URL.
    pub fn unrestricted() -> Guard {
        let policy = Policy {
            purpose: Purpose::Banks,
            allowed: vec![IpNet::V4(ipnet::Ipv4Net::default()), IpNet::V6(ipnet::Ipv6Net::default())],
            allow_loopback: true,
            not_public: Vec::new(),
        };
        Guard::new(policy, Arc::new(SystemLookup))
    }

    /// The guard of `purpose` under `config`, resolving with `lookup`.
    pub fn for_purpose(config: &Config, purpose: Purpose, lookup: Arc<dyn Lookup>) -> Guard {
        Guard::new(Policy::new(config, purpose), lookup)
    }

    /// The permitted addresses of `host` (a name or an IP literal, IPv6 with or without brackets).
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Refused> {
        if let Some(literal) = ip_literal(host) {
            self.policy.check(literal)?;
            return Ok(vec![literal]);
        }
        let found = self
            .lookup
            .lookup(host.to_string())
            .await
            .map_err(|e| Refused::Unresolved { host: host.to_string(), error: e.to_string() })?;
        let permitted: Vec<IpAddr> = found.iter().copied().filter(|a| self.policy.permits(*a)).collect();
        if permitted.is_empty() {
            let addresses = found.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
            return Err(Refused::NoPublicAddress {
                host: host.to_string(),
                addresses,
                key: self.policy.purpose.allow_list_key(),
            });
        }
        Ok(permitted)
    }

    /// Refuses a URL host that is an IP literal the policy does not permit (names are judged when resolved).
    pub fn check_host(&self, host: &str) -> Result<(), Refused> {
        match ip_literal(host) {
            Some(address) => self.policy.check(address),
            None => Ok(()),
        }
    }
}

/// `host` as an IP address, when it is one (`[::1]` as in a URL, or bare).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().ok()
}

/// Whether `error`, or anything in its chain of causes, is the guard's refusal; the refusal when it is.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        if let Some(refused) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
        {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

/// reqwest's resolver hook.
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addresses = guard.resolve(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// hyper-util's resolver hook (a `Service` of names).
impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for Guard {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Refused;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Refused>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let guard = self.clone();
        Box::pin(async move {
            let addresses = guard.resolve(name.as_str()).await?;
            Ok(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect::<Vec<_>>().into_iter())
        })
    }
}

/// A connector that refuses IP-literal hosts the guard does not permit before its inner connector (which resolves
/// names through the same guard) is asked to connect: hyper's `HttpConnector` connects to IP literals without
/// consulting its resolver.
#[derive(Clone)]
pub struct GuardedConnector<C> {
    inner: C,
    guard: Guard,
}

impl<C> GuardedConnector<C> {
    pub fn new(inner: C, guard: Guard) -> GuardedConnector<C> {
        GuardedConnector { inner, guard }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for GuardedConnector<C>
where
    C: tower::Service<Uri> + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Err(refused) = self.guard.check_host(uri.host().unwrap_or_default()) {
            return Box::pin(async move { Err(Box::new(refused) as BoxError) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// An HTTPS client for participants' URLs: reqwest resolving through the guard, and every request's host checked
/// when it is an IP literal. The inner client is private, so nothing sends around the guard.
#[derive(Clone)]
pub struct GuardedClient {
    inner: reqwest::Client,
    guard: Guard,
}

/// Why a request through a [`GuardedClient`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

impl SendError {
    /// The guard's refusal, wherever it was found (the URL's host, or resolution inside the client).
    pub fn refusal(&self) -> Option<&Refused> {
        match self {
            SendError::Refused(refused) => Some(refused),
            SendError::Http(error) => refusal(error),
        }
    }
}

impl GuardedClient {
    /// Builds `builder` with the guard as its resolver.
    pub fn build(builder: reqwest::ClientBuilder, guard: Guard) -> reqwest::Result<GuardedClient> {
        // No proxy from the environment: a proxy would resolve and connect on the platform's behalf, out of the
        // guard's sight.
        let inner = builder.no_proxy().dns_resolver(guard.clone()).build()?;
        Ok(GuardedClient { inner, guard })
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.post(url)
    }

    /// Sends a request made by [`get`](Self::get) or [`post`](Self::post) once its host passes the guard.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        let request = request.build()?;
        self.guard.check_host(request.url().host_str().unwrap_or_default())?;
        Ok(self.inner.execute(request).await?)
    }
}

/// A URL a participant gives the platform (a redirect URI, a webhook, an API's base URL, a website): an absolute
/// `https://` URL with a host (a DNS name or a bracketed IPv6 address, optionally a numeric port), no fragment, no
/// wildcard, no user information, no spaces. Where it may then be called is the [`Guard`]'s to judge.
pub fn https_url_acceptable(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("https://") else { return false };
    if uri.len() > 2000
        || uri.contains('#')
        || uri.contains('*')
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else { return false };
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        (None, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    });
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn policy(mode: Mode, allowed: &[&str]) -> Policy {
        let mut config = Config::defaults().unwrap();
        config.mode = mode;
        config.webhooks.allowed_networks = allowed.iter().map(|n| n.parse().unwrap()).collect();
        Policy::new(&config, Purpose::Webhooks)
    }

    #[test]
    fn the_table_parses_whole() {
        assert_eq!(policy(Mode::Production, &[]).not_public.len(), NOT_PUBLIC.len());
    }

    #[test]
    fn production_refuses_every_address_that_is_not_public() {
        let p = policy(Mode::Production, &[]);
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
        ] {
            assert!(!p.permits(refused.parse().unwrap()), "{refused} was permitted");
        }
        for public in ["8.8.8.8", "195.210.46.1", "172.32.0.1", "100.128.0.1", "2a00:1450:4001::1", "::ffff:8.8.4.4"] {
            assert!(p.permits(public.parse().unwrap()), "{public} was refused");
        }
    }

    #[test]
    fn allowed_networks_and_demo_loopback_are_let_through() {
        let p = policy(Mode::Production, &["10.20.0.0/16", "fd00:1::/32"]);
        assert!(p.permits("10.20.3.4".parse().unwrap()));
        assert!(p.permits("::ffff:10.20.3.4".parse().unwrap()));
        assert!(p.permits("fd00:1::5".parse().unwrap()));
        assert!(!p.permits("10.21.0.1".parse().unwrap()));
        let demo = policy(Mode::Demo, &[]);
        assert!(demo.permits("127.0.0.1".parse().unwrap()) && demo.permits("::1".parse().unwrap()));
        assert!(!demo.permits("169.254.169.254".parse().unwrap()) && !demo.permits("10.0.0.1".parse().unwrap()));
        assert!(!demo.permits("0.0.0.0".parse().unwrap()));
    }

    struct Fixed(Vec<IpAddr>);

    impl Lookup for Fixed {
        fn lookup(&self, _: String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let found = self.0.clone();
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn resolution_keeps_only_permitted_addresses_and_literals_are_judged_too() {
        let both = vec!["10.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap()];
        let guard = Guard::new(policy(Mode::Production, &[]), Arc::new(Fixed(both)));
        assert_eq!(guard.resolve("mixed.example").await.unwrap(), vec!["8.8.8.8".parse::<IpAddr>().unwrap()]);
        let guard =
            Guard::new(policy(Mode::Production, &[]), Arc::new(Fixed(vec!["169.254.169.254".parse().unwrap()])));
        let refused = guard.resolve("metadata.example").await.unwrap_err().to_string();
        assert!(refused.contains("169.254.169.254") && refused.contains("webhooks.allowed_networks"), "{refused}");
        assert!(guard.resolve("[::1]").await.is_err());
        assert!(guard.check_host("[fe80::1]").is_err() && guard.check_host("10.0.0.1").is_err());
        assert!(guard.check_host("hooks.bank.kz").is_ok());
    }

    #[test]
    fn participants_urls_are_absolute_https_without_fragments_or_wildcards() {
        assert!(https_url_acceptable("https://app.example.kz/callback"));
        assert!(https_url_acceptable("https://app.example.kz:8443/cb?x=1"));
        assert!(!https_url_acceptable("http://app.example.kz/callback"));
        assert!(!https_url_acceptable("https://app.example.kz/cb#frag"));
        assert!(!https_url_acceptable("https://*.example.kz/cb"));
        assert!(!https_url_acceptable("https:///cb"));
        assert!(!https_url_acceptable("https://user@example.kz/cb"));
        assert!(!https_url_acceptable("/relative"));
        assert!(!https_url_acceptable("https://exa mple.kz/"));
        assert!(!https_url_acceptable("https://app.kz:abc/cb"));
        assert!(!https_url_acceptable("https://app..kz/cb"));
        assert!(!https_url_acceptable("HTTPS://app.kz/cb"));
        assert!(https_url_acceptable("https://[::1]:8443/cb"));
        assert!(https_url_acceptable("https://localhost/cb"));
    }
}
