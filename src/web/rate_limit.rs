//! Rate limits, checked by a middleware before a request reaches any extractor or handler — so before any database
//! read or write, password hash or bank call.
//!
//! Four classes, each a keyed GCRA limiter (governor) with a sustained rate and a burst (`[limits]`):
//! - the Open Banking API and the clients' OAuth endpoints, keyed by the SHA-256 thumbprint of the connection's
//!   verified client certificate (many applications may share one address, and one application may call from many);
//! - everything else — pages, assets, and API calls without a verified certificate — keyed by source address (an
//!   IPv6 address by its /64, which one subscriber usually holds whole);
//! - sign-in, second-factor, password-change and registration form posts, keyed by source address again, on top of
//!   the page limit.
//!
//! A refusal is 429 with `Retry-After` (whole seconds) in the endpoint's own shape. Keys not seen for a while are
//! dropped every [`SWEEP_EVERY`], so the limiters' memory follows the number of recently active callers.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::client_cert::{ConnectionInfo, PeerCert};
use super::pages::PageError;
use crate::config::LimitsConfig;
use crate::oauth::metadata::{INTROSPECT, PAR, REVOKE, TOKEN};
use crate::standard::error::{ApiError, ObErrorCode};

/// How often keys idle long enough to be full again are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The form posts that run argon2id or check a second factor.
const SIGN_IN_FORMS: &[&str] = &["/login", "/login/code", "/account/enrol", "/account/password", "/register"];

/// Which limit a request falls under, decided from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `/open-banking/…`: OBIE error body.
    Api,
    /// The clients' OAuth endpoints: RFC 6749 error body.
    Oauth,
    /// Everything else: HTML error page.
    Page,
    /// A sign-in or registration form post: HTML error page; counted as a page too.
    SignIn,
}

impl Class {
    pub fn of(method: &Method, path: &str) -> Class {
        if path.starts_with("/open-banking/") {
            Class::Api
        } else if [PAR, TOKEN, REVOKE, INTROSPECT].contains(&path) {
            Class::Oauth
        } else if method == Method::POST && SIGN_IN_FORMS.contains(&path) {
            Class::SignIn
        } else {
            Class::Page
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Class::Api => "api",
            Class::Oauth => "oauth",
            Class::Page => "page",
            Class::SignIn => "sign_in",
        }
    }
}

/// Who a limit counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    /// SHA-256 of the DER client certificate.
    Certificate([u8; 32]),
    /// A source address; IPv6 cut to its /64.
    Address(IpAddr),
}

impl Caller {
    fn address(ip: IpAddr) -> Caller {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Caller::Address(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Caller::Address(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
            v4 => Caller::Address(v4),
        }
    }

    /// The verified certificate of the connection, if any.
    fn certificate(info: &ConnectionInfo) -> Option<Caller> {
        let PeerCert::Presented(cert) = &info.peer_cert else { return None };
        let mut thumbprint = [0u8; 32];
        hex::decode_to_slice(&cert.sha256, &mut thumbprint).ok()?;
        Some(Caller::Certificate(thumbprint))
    }
}

type Limiter = DefaultKeyedRateLimiter<Caller>;

fn limiter(per_period: Quota, burst: u32) -> Limiter {
    RateLimiter::keyed(per_period.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)))
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The limiters of the running platform (none when `limits.enabled` is false).
pub struct RateLimits {
    limiters: Option<Limiters>,
    clock: DefaultClock,
    started: Instant,
    /// Seconds since `started` at the last sweep of idle keys.
    last_sweep: AtomicU64,
}

struct Limiters {
    api: Limiter,
    oauth: Limiter,
    pages: Limiter,
    sign_in: Limiter,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> Arc<RateLimits> {
        let limiters = config.enabled.then(|| Limiters {
            api: limiter(Quota::per_second(nonzero(config.api_per_second)), config.api_burst),
            oauth: limiter(Quota::per_second(nonzero(config.oauth_per_second)), config.oauth_burst),
            pages: limiter(Quota::per_second(nonzero(config.pages_per_second)), config.pages_burst),
            sign_in: limiter(Quota::per_minute(nonzero(config.sign_in_per_minute)), config.sign_in_burst),
        });
        Arc::new(RateLimits {
            limiters,
            clock: DefaultClock::default(),
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
        })
    }

    /// `Ok` when the request may go on, else how long the caller should wait.
    fn check(&self, class: Class, connection: Option<&ConnectionInfo>) -> Result<(), Duration> {
        let Some(limiters) = &self.limiters else { return Ok(()) };
        self.sweep_now_and_then(limiters);
        let certificate = connection.and_then(Caller::certificate);
        let address = connection.map(|c| Caller::address(c.peer_addr.ip()));
        // A request without connection facts (never from the listener) shares one key rather than escaping.
        let address = address.unwrap_or(Caller::Address(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
        let check = |limiter: &Limiter, caller: &Caller| {
            limiter.check_key(caller).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
        };
        match (class, certificate) {
            (Class::Api, Some(cert)) => check(&limiters.api, &cert),
            (Class::Oauth, Some(cert)) => check(&limiters.oauth, &cert),
            (Class::SignIn, _) => {
                check(&limiters.pages, &address)?;
                check(&limiters.sign_in, &address)
            }
            // Pages, and API calls that will be refused for want of a valid certificate: per address.
            _ => check(&limiters.pages, &address),
        }
    }

    /// Drops idle keys at most once per [`SWEEP_EVERY`], on whichever request comes first after that.
    fn sweep_now_and_then(&self, limiters: &Limiters) {
        let now = self.started.elapsed().as_secs();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now < last + SWEEP_EVERY.as_secs() {
            return;
        }
        if self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return; // another request is sweeping
        }
        for limiter in [&limiters.api, &limiters.oauth, &limiters.pages, &limiters.sign_in] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The middleware: classify, check, and either pass the request on or refuse it in the endpoint's shape.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let class = Class::of(request.method(), request.uri().path());
    let connection = request.extensions().get::<Arc<ConnectionInfo>>().map(Arc::as_ref);
    match state.rate_limits.check(class, connection) {
        Ok(()) => next.run(request).await,
        Err(wait) => refusal(class, wait),
    }
}

/// 429 in the shape of the endpoint's class, with `Retry-After` in whole seconds (at least 1).
fn refusal(class: Class, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    metrics::counter!("kopir_rate_limited_total", "class" => class.as_str()).increment(1);
    tracing::info!(class = class.as_str(), retry_after = seconds, "rate limit reached");
    let mut response = match class {
        Class::Api => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ObErrorCode::UnexpectedError,
            format!("Too many requests with this client certificate; retry after {seconds} s"),
        )
        .into_response(),
        Class::Oauth => crate::oauth::error::OauthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!("Too many requests with this client certificate; retry after {seconds} s"),
        )
        .into_response(),
        Class::SignIn => PageError::new(StatusCode::TOO_MANY_REQUESTS, "error.throttled").into_response(),
        Class::Page => PageError::new(StatusCode::TOO_MANY_REQUESTS, "error.too_many_requests").into_response(),
    };
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classes_follow_the_path_and_method() {
        assert_eq!(Class::of(&Method::GET, "/open-banking/v1/aisp/accounts"), Class::Api);
        assert_eq!(Class::of(&Method::POST, "/open-banking/v1/aisp/account-access-consents"), Class::Api);
        assert_eq!(Class::of(&Method::POST, "/oauth/token"), Class::Oauth);
        assert_eq!(Class::of(&Method::POST, "/oauth/par"), Class::Oauth);
        assert_eq!(Class::of(&Method::GET, "/oauth/authorize"), Class::Page);
        assert_eq!(Class::of(&Method::POST, "/login"), Class::SignIn);
        assert_eq!(Class::of(&Method::POST, "/register"), Class::SignIn);
        assert_eq!(Class::of(&Method::GET, "/login"), Class::Page);
        assert_eq!(Class::of(&Method::GET, "/assets/app.css"), Class::Page);
    }

    #[test]
    fn an_ipv6_subscriber_is_one_caller_per_64() {
        let a = Caller::address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Caller::address("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = Caller::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(Caller::address("::ffff:10.0.0.1".parse().unwrap()), Caller::address("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let config = LimitsConfig {
            enabled: true,
            api_per_second: 1,
            api_burst: 3,
            oauth_per_second: 1,
            oauth_burst: 1,
            pages_per_second: 1,
            pages_burst: 2,
            sign_in_per_minute: 1,
            sign_in_burst: 1,
            max_concurrent_password_hashes: 1,
        };
        let limits = RateLimits::new(&config);
        let info = ConnectionInfo { peer_addr: "192.0.2.1:443".parse().unwrap(), peer_cert: PeerCert::Absent };
        assert!(limits.check(Class::Page, Some(&info)).is_ok());
        assert!(limits.check(Class::Page, Some(&info)).is_ok());
        let wait = limits.check(Class::Page, Some(&info)).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        // Another address has its own allowance; an API call without a certificate counts as a page.
        let other = ConnectionInfo { peer_addr: "192.0.2.2:443".parse().unwrap(), peer_cert: PeerCert::Absent };
        assert!(limits.check(Class::Api, Some(&other)).is_ok());
        assert!(limits.check(Class::Api, Some(&other)).is_ok());
        assert!(limits.check(Class::Api, Some(&other)).is_err());
        let off = RateLimits::new(&LimitsConfig { enabled: false, ..config });
        for _ in 0..10 {
            assert!(off.check(Class::SignIn, Some(&info)).is_ok());
        }
    }
}
