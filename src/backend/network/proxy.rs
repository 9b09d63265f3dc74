//! Which proxy, if any, a request goes through: `HTTPS_PROXY` for `https://`
//! URLs, `HTTP_PROXY` for `http://` ones, `ALL_PROXY` for either when the
//! scheme's own variable is not set, and `NO_PROXY` for the hosts that are
//! reached directly. Each variable is read in lower case first, then upper
//! case, as curl does. The decision is made here, once, so that a failure
//! can name the proxy the request really went through.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// The names of the variables read, each in the spellings looked up (the
/// first found wins) and, last, the spelling a message shows. The names
/// are the configuration's to give.
#[derive(Clone, Copy, Debug)]
pub struct ProxyVariables {
    pub https: [&'static str; 2],
    pub http: [&'static str; 2],
    pub all: [&'static str; 2],
    pub no: [&'static str; 2],
}

/// One proxy server, as a proxy variable gives it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyServer {
    /// The proxy URL, credentials included: for the HTTP client only.
    url: Url,
    /// `host:port` of the proxy, for messages: never the credentials.
    shown: String,
    /// The variable it came from, spelled as it was set.
    variable: &'static str,
}

impl ProxyServer {
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The variable that set it, e.g. `HTTPS_PROXY`.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    pub(super) fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyServer({} from {})", self.shown, self.variable)
    }
}

/// A proxy variable that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyProblem {
    pub variable: &'static str,
    /// What is wrong, without the value's credentials.
    pub detail: String,
}

/// The proxies of the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    https: Option<ProxyServer>,
    http: Option<ProxyServer>,
    all: Option<ProxyServer>,
    bypass: Bypass,
}

impl Proxies {
    /// Reads the proxy variables named by `names` through `lookup` (a name
    /// to its value).
    pub fn from_lookup(
        names: &ProxyVariables,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProxyProblem> {
        let read = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                lookup(name)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        let server =
            |names: [&'static str; 2]| read(names).map(|v| parse_server(names[1], &v)).transpose();
        Ok(Self {
            https: server(names.https)?,
            http: server(names.http)?,
            all: server(names.all)?,
            bypass: read(names.no)
                .map(|v| Bypass::parse(&v))
                .unwrap_or_default(),
        })
    }

    pub fn any(&self) -> bool {
        self.https.is_some() || self.http.is_some() || self.all.is_some()
    }

    /// The proxy a request to `url` goes through, or `None` when it goes
    /// directly.
    pub fn for_url(&self, url: &Url) -> Option<&ProxyServer> {
        let own = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        };
        let server = own.or(self.all.as_ref())?;
        let host = url.host_str()?;
        (!self.bypass.matches(host)).then_some(server)
    }
}

fn parse_server(variable: &'static str, raw: &str) -> Result<ProxyServer, ProxyProblem> {
    let problem = |detail: String| ProxyProblem { variable, detail };
    // `proxy.example.com:3128` is an HTTP proxy, as curl reads it.
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| {
        problem(format!(
            "is not a proxy URL ({e}); give it as http://host:port"
        ))
    })?;
    let scheme = url.scheme();
    if !matches!(
        scheme,
        "http" | "https" | "socks5" | "socks5h" | "socks4" | "socks4a"
    ) {
        return Err(problem(format!(
            "has the scheme {scheme}://, which is not a proxy this server speaks (http, https, socks5, socks5h, socks4, socks4a)"
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(problem("has no host".to_owned()));
    };
    // Without a port, an HTTPS proxy listens on 443 and any other on
    // 1080, as curl assumes.
    let port = url
        .port()
        .unwrap_or(if url.scheme() == "https" { 443 } else { 1080 });
    let shown = format!("{host}:{port}");
    let _ = url.set_port(Some(port));
    Ok(ProxyServer {
        shown,
        url,
        variable,
    })
}

/// The hosts of `NO_PROXY`: `*` for every host, a domain (with or without a
/// leading `.` or `*.`) for itself and its subdomains, an IP address, or a
/// network in CIDR form. A port after a host is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Bypass {
    everything: bool,
    domains: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl Bypass {
    fn parse(raw: &str) -> Self {
        let mut bypass = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                bypass.everything = true;
                continue;
            }
            if let Some((ip, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    bypass.networks.push((ip, bits.min(max)));
                }
                continue;
            }
            let bare = entry.trim_start_matches('[');
            if let Some(ip) = bare
                .split_once(']')
                .map_or(bare, |(ip, _)| ip)
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<IpAddr>().ok())
            {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                bypass.networks.push((ip, bits));
                continue;
            }
            let host = match entry.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                _ => entry,
            };
            let domain = host
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if !domain.is_empty() {
                bypass.domains.push(domain);
            }
        }
        bypass
    }

    fn matches(&self, host: &str) -> bool {
        if self.everything {
            return true;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self
                .networks
                .iter()
                .any(|(net, bits)| in_network(ip, *net, *bits));
        }
        let host = bare.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Result<Proxies, ProxyProblem> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let names = ProxyVariables {
            https: ["https_proxy", "HTTPS_PROXY"],
            http: ["http_proxy", "HTTP_PROXY"],
            all: ["all_proxy", "ALL_PROXY"],
            no: ["no_proxy", "NO_PROXY"],
        };
        Proxies::from_lookup(&names, move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(&Url::parse(url).unwrap())
            .map(|s| format!("{} {}", s.shown(), s.variable()))
    }

    #[test]
    fn each_scheme_takes_its_own_variable_then_all_proxy() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://secure.proxy:3128"),
            ("ALL_PROXY", "socks5h://all.proxy"),
        ])
        .unwrap();
        assert_eq!(
            via(&p, "https://api.exponea.com/x").as_deref(),
            Some("secure.proxy:3128 HTTPS_PROXY")
        );
        assert_eq!(
            via(&p, "http://127.0.0.1:8080/").as_deref(),
            Some("all.proxy:1080 ALL_PROXY")
        );
        assert_eq!(via(&proxies(&[]).unwrap(), "https://a.example"), None);
        assert!(!proxies(&[]).unwrap().any());
    }

    #[test]
    fn lower_case_wins_and_blank_means_unset() {
        let p = proxies(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("http_proxy", "  "),
            ("HTTP_PROXY", "upper-http:8080"),
        ])
        .unwrap();
        assert_eq!(
            via(&p, "https://x.example").as_deref(),
            Some("lower:1 HTTPS_PROXY")
        );
        assert_eq!(
            via(&p, "http://x.example").as_deref(),
            Some("upper-http:8080 HTTP_PROXY")
        );
    }

    #[test]
    fn no_proxy_matches_domains_ips_networks_and_star() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://p:3128"),
            (
                "NO_PROXY",
                "internal.example, .corp.example,*.lan, 10.0.0.0/8, 192.168.1.7, [::1], gw.example:8443",
            ),
        ])
        .unwrap();
        for direct in [
            "https://internal.example/",
            "https://api.internal.example/",
            "https://x.corp.example/",
            "https://corp.example/",
            "https://printer.lan/",
            "https://10.2.3.4/",
            "https://192.168.1.7/",
            "https://[::1]:9000/",
            "https://GW.example/",
        ] {
            assert_eq!(via(&p, direct), None, "{direct}");
        }
        for proxied in [
            "https://notinternal.example/",
            "https://11.0.0.1/",
            "https://192.168.1.8/",
            "https://api.exponea.com/",
        ] {
            assert!(via(&p, proxied).is_some(), "{proxied}");
        }
        let all = proxies(&[("HTTPS_PROXY", "http://p:3128"), ("no_proxy", "*")]).unwrap();
        assert_eq!(via(&all, "https://api.exponea.com/"), None);
    }

    #[test]
    fn credentials_are_kept_for_the_client_and_never_shown() {
        let p = proxies(&[("HTTPS_PROXY", "http://user:pa%40ss@proxy.corp:8080")]).unwrap();
        let server = p
            .for_url(&Url::parse("https://a.example").unwrap())
            .unwrap();
        assert_eq!(server.url().password(), Some("pa%40ss"));
        assert_eq!(server.shown(), "proxy.corp:8080");
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("pa%40ss") && !debug.contains("user"),
            "{debug}"
        );
    }

    #[test]
    fn unusable_values_name_the_variable_without_the_value() {
        let e = proxies(&[("HTTPS_PROXY", "ftp://user:secret@x:21")]).unwrap_err();
        assert_eq!(e.variable, "HTTPS_PROXY");
        assert!(!e.detail.contains("secret"), "{}", e.detail);
        let e = proxies(&[("all_proxy", "http://[bad")]).unwrap_err();
        assert_eq!(e.variable, "ALL_PROXY");
    }
}
