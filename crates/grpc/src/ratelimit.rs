//! Method-level rate limits (Layotto's `flowControlFilter`, MOSN's
//! Sentinel rules): token buckets by full gRPC method name or HTTP route,
//! global or per connection (governor's GCRA). A limited call answers
//! RESOURCE_EXHAUSTED (HTTP 429) with Layotto's message, or the rule's own,
//! and is counted in `layotto_rate_limited_total{method}`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

/// Layotto's answer to a limited call.
pub const LIMITED_MESSAGE: &str = "current request is limited";

/// One rule as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// A full method (`/spec.proto.runtime.v1.Runtime/SayHello`), an HTTP
    /// path (`/v1.0/state/store`), or either ending in `*` for a prefix.
    pub method: String,
    /// Calls per second, sustained.
    pub rate: f64,
    /// Calls allowed at once after a quiet spell (default: the rate, at least 1).
    pub burst: Option<u32>,
    /// A bucket per client connection rather than one for all.
    pub per_connection: bool,
    pub message: Option<String>,
}

enum Bucket {
    Global(DefaultDirectRateLimiter),
    PerConnection(DefaultKeyedRateLimiter<SocketAddr>),
}

struct Compiled {
    method: String,
    prefix: bool,
    bucket: Bucket,
    message: String,
}

/// The rules, checked in order; the first whose method matches decides.
#[derive(Default)]
pub struct RateLimits {
    rules: Vec<Compiled>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rules.iter().map(|r| &r.method)).finish()
    }
}

impl RateLimits {
    /// Refuses a rate that is not a positive number and a zero burst, naming the rule.
    pub fn new(rules: &[RateRule]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|rule| {
                let name = &rule.method;
                if !(rule.rate.is_finite() && rule.rate > 0.0) {
                    return Err(format!(
                        "rate limit for '{name}': rate must be a positive number of calls per second, got {}",
                        rule.rate
                    ));
                }
                let burst = rule.burst.unwrap_or(rule.rate.ceil().max(1.0).min(u32::MAX as f64) as u32);
                let burst = NonZeroU32::new(burst)
                    .ok_or_else(|| format!("rate limit for '{name}': burst must be at least 1"))?;
                let period = Duration::from_secs_f64(1.0 / rule.rate).max(Duration::from_nanos(1));
                let quota = Quota::with_period(period)
                    .ok_or_else(|| format!("rate limit for '{name}': rate {} is too high", rule.rate))?
                    .allow_burst(burst);
                let bucket = if rule.per_connection {
                    Bucket::PerConnection(governor::RateLimiter::keyed(quota))
                } else {
                    Bucket::Global(governor::RateLimiter::direct(quota))
                };
                let (method, prefix) = match name.strip_suffix('*') {
                    Some(prefix) => (prefix.to_owned(), true),
                    None => (name.clone(), false),
                };
                Ok(Compiled {
                    method,
                    prefix,
                    bucket,
                    message: rule.message.clone().unwrap_or_else(|| LIMITED_MESSAGE.to_owned()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The configured methods, for checking them against what is served.
    pub fn methods(&self) -> impl Iterator<Item = (&str, bool)> {
        self.rules.iter().map(|r| (r.method.as_str(), r.prefix))
    }

    /// `Err(message)` when `path` is over its limit; counted in metrics.
    pub fn check(&self, path: &str, peer: Option<SocketAddr>) -> Result<(), &str> {
        let Some(rule) =
            self.rules.iter().find(|r| if r.prefix { path.starts_with(&r.method) } else { path == r.method })
        else {
            return Ok(());
        };
        let allowed = match &rule.bucket {
            Bucket::Global(bucket) => bucket.check().is_ok(),
            Bucket::PerConnection(buckets) => {
                let key = peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                // Forget idle connections' buckets now and then, so the map stays small.
                if buckets.len() > 4096 {
                    buckets.retain_recent();
                }
                buckets.check_key(&key).is_ok()
            }
        };
        if allowed {
            return Ok(());
        }
        let label = if rule.prefix { format!("{}*", rule.method) } else { rule.method.clone() };
        layotto_core::metrics::metrics().rate_limited.with_label_values(&[label.as_str()]).inc();
        Err(&rule.message)
    }
}

/// Applies [`RateLimits`] to every gRPC call.
#[derive(Clone, Default)]
pub struct RateLimitLayer {
    limits: Arc<RateLimits>,
}

impl RateLimitLayer {
    pub fn new(limits: Arc<RateLimits>) -> Self {
        Self { limits }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited { inner, limits: self.limits.clone() }
    }
}

#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limits: Arc<RateLimits>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RateLimited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, std::future::Ready<Result<http::Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.limits.is_empty() {
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr());
            if let Err(message) = self.limits.check(request.uri().path(), peer) {
                let status = tonic::Status::resource_exhausted(message);
                return Either::Right(std::future::ready(Ok(status.into_http())));
            }
        }
        Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: &str, rate: f64, burst: Option<u32>, per_connection: bool) -> RateRule {
        RateRule { method: method.into(), rate, burst, per_connection, message: None }
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_exactly() {
        let limits = RateLimits::new(&[
            rule("/svc/Hello", 5.0, None, false),
            rule("/v1.0/state/*", 1.0, Some(2), true),
        ])
        .unwrap();
        let allowed = (0..10).filter(|_| limits.check("/svc/Hello", None).is_ok()).count();
        assert_eq!(allowed, 5);
        assert_eq!(limits.check("/svc/Hello", None), Err(LIMITED_MESSAGE));
        assert!((0..100).all(|_| limits.check("/svc/Other", None).is_ok()), "other methods are not limited");
        let (a, b) = ("127.0.0.1:1".parse().ok(), "127.0.0.1:2".parse().ok());
        assert_eq!((0..5).filter(|_| limits.check("/v1.0/state/s", a).is_ok()).count(), 2);
        assert_eq!((0..5).filter(|_| limits.check("/v1.0/state/t", b).is_ok()).count(), 2, "per connection");
    }

    #[test]
    fn bad_rules_name_themselves() {
        for (bad, says) in
            [(rule("/a", -1.0, None, false), "positive"), (rule("/b", 1.0, Some(0), false), "burst")]
        {
            let err = RateLimits::new(std::slice::from_ref(&bad)).unwrap_err();
            assert!(err.contains(&bad.method) && err.contains(says), "{err}");
        }
        assert!(RateLimits::new(&[rule("/c", f64::NAN, None, false)]).is_err());
    }
}
