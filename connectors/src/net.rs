//! Outbound requests to addresses that data or a member chose: webhook targets, and the
//! pages of an API source (a next-page URL comes from the API's own answer).
//!
//! Left open, such a request is a way into the hub's own network: a webhook to
//! `169.254.169.254` reads the cloud's metadata, one to `127.0.0.1:5432` probes the state
//! store, and the delivery log says what answered. So once [`restrict_outbound`] is called
//! (the `simpul` binary does, from `outbound.allow_hosts`), these requests go only to
//! public addresses, unless their host is on the allow-list: a deployment opens its own
//! internal systems (an OPD's server at `10.x`) by name, on purpose.
//!
//! Every address is checked when the connection is made, not only when the URL is
//! accepted: the requests resolve names through [`GuardedResolver`], so a name that
//! resolves to a public address when a webhook is created and to `127.0.0.1` when it is
//! delivered (DNS rebinding) is refused at delivery. A URL whose host is an IP address is
//! checked by [`OutboundPolicy::check_url`], since no name is resolved for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use url::Url;

/// Which internal hosts outbound requests may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Host names and IP addresses (lowercase) reachable even when internal.
    allowed: Vec<String>,
}

static POLICY: OnceLock<OutboundPolicy> = OnceLock::new();

/// Restricts this process's outbound requests (webhooks, API sources) to public addresses
/// and `policy`'s hosts. The first call wins; without one, nothing is restricted.
pub fn restrict_outbound(policy: OutboundPolicy) {
    let _ = POLICY.set(policy);
}

/// The installed policy, if any.
pub fn outbound_policy() -> Option<&'static OutboundPolicy> {
    POLICY.get()
}

/// A client builder for requests to addresses data or a member chose: with the installed
/// policy's resolver, or plain without one.
pub fn guarded_client() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match outbound_policy() {
        Some(policy) => builder.dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
            lookup: Arc::new(SystemLookup),
        })),
        None => builder,
    }
}

/// Checks `url` against the installed policy (any URL passes without one).
pub fn check_outbound_url(url: &Url) -> Result<(), String> {
    match outbound_policy() {
        Some(policy) => policy.check_url(url),
        None => Ok(()),
    }
}

/// Checks `url` as [`check_outbound_url`] does, and, for a host name that is not allowed,
/// that it resolves to a public address now: for refusing a URL when it is given, with a
/// reason, rather than at its first use. Each request is still checked when it connects.
pub async fn check_outbound_target(url: &Url) -> Result<(), String> {
    let Some(policy) = outbound_policy() else {
        return Ok(());
    };
    policy.check_url(url)?;
    match url.host() {
        Some(url::Host::Domain(host)) if !policy.allows_host(host) => {
            GuardedResolver::new(policy.clone(), Arc::new(SystemLookup))
                .admitted(host)
                .await
                .map(drop)
        }
        _ => Ok(()),
    }
}

impl OutboundPolicy {
    /// A policy that allows these hosts (names or addresses; `*.example.go.id` allows the
    /// subdomains of a name).
    pub fn allowing<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>) -> Self {
        Self {
            allowed: hosts
                .into_iter()
                .map(|h| {
                    h.as_ref()
                        .trim()
                        .trim_matches(['[', ']'])
                        .to_ascii_lowercase()
                })
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `host` is on the allow-list.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.')),
                None => *allowed == host,
            })
    }

    /// Refuses a URL that is not `http(s)`, and one whose host is an internal IP address
    /// that is not allowed. Names are checked when they are resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url}: only http and https URLs are allowed"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{url}: the URL has no host"))?;
        if self.allows_host(host) {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        match internal_kind(ip) {
            Some(kind) => Err(refusal(host, &[ip], kind)),
            None => Ok(()),
        }
    }

    /// The addresses of `host` that may be reached: all of them for an allowed host, else
    /// only the public ones; an error when none is left.
    fn admit(&self, host: &str, addresses: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        if self.allows_host(host) {
            return Ok(addresses);
        }
        let (public, internal): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
            .into_iter()
            .partition(|a| internal_kind(a.ip()).is_none());
        if public.is_empty() {
            let ips: Vec<IpAddr> = internal.iter().map(SocketAddr::ip).collect();
            let kind = ips
                .first()
                .and_then(|ip| internal_kind(*ip))
                .unwrap_or("no");
            return Err(refusal(host, &ips, kind));
        }
        Ok(public)
    }
}

fn refusal(host: &str, ips: &[IpAddr], kind: &str) -> String {
    let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    format!(
        "{host} resolves to {kind} address {}, which the hub does not call for data or \
         members; to reach it on purpose, add {host} to outbound.allow_hosts",
        list.join(", ")
    )
}

/// What kind of internal address `ip` is, or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_private() {
        Some("a private")
    } else if ip.is_link_local() {
        Some("a link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a reserved")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_unspecified() {
        Some("an unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique-local")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local")
    } else if ip.is_multicast() {
        Some("a reserved")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible and NAT64-style forms of an internal IPv4 address.
        internal_v4(v4)
    } else {
        None
    }
}

/// Resolves names: the system's resolver, or a scripted one in tests.
pub trait Lookup: Send + Sync {
    /// The addresses of `host`.
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    }
}

/// A resolver that hands the connector only the addresses the policy admits, at every
/// connection.
pub struct GuardedResolver {
    policy: OutboundPolicy,
    lookup: Arc<dyn Lookup>,
}

impl GuardedResolver {
    /// A resolver applying `policy` to `lookup`'s answers.
    pub fn new(policy: OutboundPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// The admitted addresses of `host`.
    pub async fn admitted(&self, host: &str) -> Result<Vec<SocketAddr>, String> {
        let addresses = self
            .lookup
            .lookup(host.to_string())
            .await
            .map_err(|e| format!("{host} cannot be resolved: {e}"))?;
        self.policy.admit(host, addresses)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let resolver = GuardedResolver { policy, lookup };
            match resolver.admitted(&host).await {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs),
                Err(reason) => Err(reason.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn internal_addresses_are_told_apart_from_public_ones() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(internal_kind(ip).is_some(), "{internal} is internal");
        }
        for public in ["103.10.20.30", "8.8.8.8", "2001:4860:4860::8888"] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(internal_kind(ip), None, "{public} is public");
        }
    }

    #[test]
    fn urls_naming_internal_addresses_are_refused_unless_allowed() {
        let policy = OutboundPolicy::allowing(["simpus.dinkes.local", "10.0.0.7", "*.opd.local"]);
        let check = |u: &str| policy.check_url(&Url::parse(u).unwrap());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check("http://127.0.0.1:5432/").is_err());
        assert!(check("http://[::1]:8080/").is_err());
        assert!(check("http://[::ffff:7f00:1]/").is_err());
        assert!(check("file:///etc/passwd").is_err());
        assert!(check("http://10.0.0.7/api").is_ok(), "allowed by address");
        assert!(check("https://103.10.20.30/hook").is_ok(), "public");
        assert!(
            check("https://example.go.id/hook").is_ok(),
            "names are checked at resolution"
        );
        assert!(policy.allows_host("SIMPUS.dinkes.local"));
        assert!(policy.allows_host("sipd.opd.local"));
        assert!(
            !policy.allows_host("opd.local"),
            "a wildcard allows subdomains only"
        );
        assert!(!policy.allows_host("evilopd.local"));
    }

    /// Answers each lookup with the next scripted address.
    struct Scripted(Mutex<Vec<IpAddr>>);

    impl Lookup for Scripted {
        fn lookup(
            &self,
            _host: String,
        ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { Ok(vec![SocketAddr::new(next, 443)]) })
        }
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_an_internal_address_is_refused_at_the_next_lookup() {
        let lookup = Arc::new(Scripted(Mutex::new(vec![
            "103.10.20.30".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ])));
        let resolver = GuardedResolver::new(OutboundPolicy::default(), lookup);
        let first = resolver.admitted("hooks.example.id").await.unwrap();
        assert_eq!(first[0].ip().to_string(), "103.10.20.30");
        let second = resolver.admitted("hooks.example.id").await.unwrap_err();
        assert!(
            second.contains("loopback") && second.contains("outbound.allow_hosts"),
            "{second}"
        );
    }

    #[tokio::test]
    async fn an_allowed_name_may_resolve_to_an_internal_address() {
        let lookup = Arc::new(Scripted(Mutex::new(vec!["10.0.0.7".parse().unwrap()])));
        let resolver =
            GuardedResolver::new(OutboundPolicy::allowing(["simpus.dinkes.local"]), lookup);
        assert!(resolver.admitted("simpus.dinkes.local").await.is_ok());
    }
}
