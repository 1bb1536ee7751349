//! `access:` how people reach the Airflow UI, the REST API and Flower.
//!
//! Three modes (see the README, "Reaching the UI"):
//!
//! - `tunnel` (the default): nothing listens outside the VPC. ECS Exec is on for the
//!   api-server, and `airflow-stack ui` opens a Session Manager port forward to it.
//! - `load_balancer`: an Application Load Balancer, HTTPS only, in front of the
//!   api-server, at `https://<domain>/`.
//! - `in_vpc`: the api-server's Cloud Map name inside the VPC, plus the CIDRs and
//!   security groups (VPN, bastion) allowed to its port 8080.
//!
//! Not offered: a CloudFront distribution with a VPC origin in front of an internal
//! balancer ("HTTPS without a domain"). Its allow-list would be an AWS WAF web ACL,
//! which for CloudFront must live in us-east-1 (a stack in any other region cannot hold
//! it), the edge-to-balancer leg cannot be HTTPS without a certificate for a name you
//! own (no certificate covers `*.elb.amazonaws.com`), and the web ACL alone costs more
//! a month than the balancer's hours. The README says more.

use schemars::JsonSchema;
use serde::Deserialize;

/// How the Airflow UI, the REST API and Flower are reached.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// `tunnel` (default): no listener outside the VPC; `airflow-stack ui` forwards a
    /// local port to the api-server through Session Manager (ECS Exec, no running
    /// cost). `load_balancer`: an HTTPS Application Load Balancer at
    /// `https://<domain>/`. `in_vpc`: `http://api-server.<namespace>:8080/` inside the
    /// VPC, for the CIDRs and security groups listed (VPN, bastion).
    pub mode: AccessMode,
    /// `load_balancer`: `internal` (default; reachable from the VPC and what is routed
    /// into it, such as a VPN) or `internet-facing` (needs `allowed_cidrs`, or
    /// `open_to_the_whole_internet`).
    pub scheme: Option<Scheme>,
    /// `load_balancer`: the DNS name the UI is served at, e.g. `airflow.example.com`
    /// (Airflow's `[api] base_url` is `https://<domain>/`). Required: no certificate
    /// can cover the balancer's own `*.elb.amazonaws.com` name.
    pub domain: Option<String>,
    /// `load_balancer`: the Route 53 hosted zone of `domain` (`Z…`). The stack then
    /// creates an alias record for `domain` and, unless `certificate_arn` is set, an
    /// ACM certificate validated by DNS in that zone. Without it, point `domain` at the
    /// `LoadBalancerDnsName` output yourself.
    pub hosted_zone_id: Option<String>,
    /// `load_balancer`: an ACM certificate for `domain` in the stack's region,
    /// `arn:aws:acm:<region>:<account>:certificate/<id>`. Empty: the stack creates one
    /// (needs `hosted_zone_id`).
    pub certificate_arn: Option<String>,
    /// `load_balancer` and `in_vpc`: IPv4 CIDR blocks allowed in (to the balancer's
    /// ports 443 and 80, or to the api-server's 8080), e.g. `10.8.0.0/16` for a VPN.
    pub allowed_cidrs: Vec<String>,
    /// `load_balancer` and `in_vpc`: security group ids (`sg-…`) whose members are
    /// allowed in, e.g. a bastion's.
    pub allowed_security_groups: Vec<String>,
    /// `load_balancer` with `scheme: internet-facing` only: let every address on the
    /// internet reach the login page (0.0.0.0/0 on 443 and 80). Off by default; an
    /// allow-list is the safer choice.
    pub open_to_the_whole_internet: bool,
    /// `load_balancer` with an existing VPC: the balancer's subnets (at least 2, in
    /// different AZs; public ones for `internet-facing`). Default: `network.subnet_ids`.
    /// A created VPC uses its public subnets (internet-facing) or the task subnets.
    pub subnet_ids: Vec<String>,
}

/// How the UI is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// Session Manager port forwarding to the api-server (`airflow-stack ui`).
    #[default]
    Tunnel,
    /// An HTTPS Application Load Balancer.
    LoadBalancer,
    /// Inside the VPC only, plus an allow-list.
    InVpc,
}

impl AccessMode {
    /// The name as the stack file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Tunnel => "tunnel",
            AccessMode::LoadBalancer => "load_balancer",
            AccessMode::InVpc => "in_vpc",
        }
    }
}

/// Where the load balancer's addresses are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Private addresses in the VPC.
    #[default]
    Internal,
    /// Public addresses.
    InternetFacing,
}

/// The local port `airflow-stack ui` forwards by default; the tunnel's base URL names it.
pub const TUNNEL_LOCAL_PORT: u16 = 8080;

impl Access {
    /// The balancer's scheme (`internal` unless set).
    pub fn scheme(&self) -> Scheme {
        self.scheme.unwrap_or_default()
    }

    /// The URL Airflow is served at, with the trailing slash Airflow expects of
    /// `[api] base_url` (it appends paths such as `dags/...` without one: `log_url` in
    /// airflow-core's `models/taskinstance.py`).
    pub fn base_url(&self, namespace: &str) -> String {
        match self.mode {
            AccessMode::Tunnel => format!("http://localhost:{TUNNEL_LOCAL_PORT}/"),
            AccessMode::LoadBalancer => {
                format!("https://{}/", self.domain.as_deref().unwrap_or_default())
            }
            AccessMode::InVpc => format!("http://api-server.{namespace}:8080/"),
        }
    }
}

type Problems = Vec<(String, String)>;

fn problem(p: &mut Problems, field: &str, message: impl Into<String>) {
    p.push((format!("access.{field}"), message.into()));
}

/// Cross-field checks of `access:`; `(field path, message)` pairs.
pub(super) fn check(spec: &super::Spec) -> Vec<(String, String)> {
    let a = &spec.access;
    let mut p = Problems::new();
    refuse_fields_of_other_modes(a, &mut p);
    check_allow_list(a, &mut p);
    if a.mode == AccessMode::LoadBalancer {
        check_load_balancer(a, spec, &mut p);
    }
    p
}

/// Each setting applies to some modes only; one set for another mode is a mistake
/// (a reader would believe it takes effect).
fn refuse_fields_of_other_modes(a: &Access, p: &mut Problems) {
    let mode = a.mode.as_str();
    let balancer_only = [
        ("scheme", a.scheme.is_some()),
        ("domain", a.domain.is_some()),
        ("hosted_zone_id", a.hosted_zone_id.is_some()),
        ("certificate_arn", a.certificate_arn.is_some()),
        ("open_to_the_whole_internet", a.open_to_the_whole_internet),
        ("subnet_ids", !a.subnet_ids.is_empty()),
    ];
    if a.mode != AccessMode::LoadBalancer {
        for (field, set) in balancer_only {
            if set {
                problem(
                    p,
                    field,
                    format!("applies to mode load_balancer only, not {mode}; remove it"),
                );
            }
        }
    }
    if a.mode == AccessMode::Tunnel {
        for (field, set) in [
            ("allowed_cidrs", !a.allowed_cidrs.is_empty()),
            (
                "allowed_security_groups",
                !a.allowed_security_groups.is_empty(),
            ),
        ] {
            if set {
                problem(p, field, "the tunnel opens no port: nothing to allow; use mode in_vpc or load_balancer, or remove it");
            }
        }
    }
}

fn check_allow_list(a: &Access, p: &mut Problems) {
    for (i, cidr) in a.allowed_cidrs.iter().enumerate() {
        let field = format!("allowed_cidrs[{i}]");
        if cidr == "0.0.0.0/0" {
            problem(p, &field, "0.0.0.0/0 is the whole internet: set open_to_the_whole_internet: true instead (load_balancer, internet-facing), so it is a visible decision");
        } else if let Some(why) = cidr_problem(cidr) {
            problem(p, &field, format!("{cidr:?}: {why}"));
        } else if a.mode == AccessMode::InVpc && !is_private(cidr) {
            problem(p, &field, format!("{cidr:?} is not a private block (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10): in_vpc serves plain HTTP, and tasks in public subnets have public addresses; use a VPN's private range, or mode load_balancer (HTTPS) for public addresses"));
        }
    }
    for (i, group) in a.allowed_security_groups.iter().enumerate() {
        if !is_aws_id(group, "sg-") {
            problem(
                p,
                &format!("allowed_security_groups[{i}]"),
                format!("{group:?} is not a security group id such as sg-0a1b2c3d4e5f60718"),
            );
        }
    }
}

fn check_load_balancer(a: &Access, spec: &super::Spec, p: &mut Problems) {
    match &a.domain {
        None => problem(p, "domain", "a load balancer needs the DNS name it is served at, e.g. airflow.example.com: a certificate cannot cover the balancer's own *.elb.amazonaws.com name"),
        Some(d) if !is_domain(d) => problem(p, "domain", format!("{d:?} is not a DNS name such as airflow.example.com (lower-case labels of letters, digits and hyphens, at least two)")),
        Some(_) => {}
    }
    if let Some(zone) = &a.hosted_zone_id {
        // Route 53's ResourceId: at most 32 characters; its ids are upper-case letters
        // and digits (AWS's start with Z; the prefix is not checked, emulators differ).
        let ok = !zone.is_empty()
            && zone.len() <= 32
            && zone
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok {
            problem(
                p,
                "hosted_zone_id",
                format!("{zone:?} is not a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ"),
            );
        }
    }
    match &a.certificate_arn {
        Some(arn) => {
            if let Some(why) = certificate_problem(arn, &spec.region) {
                problem(p, "certificate_arn", format!("{arn:?}: {why}"));
            }
        }
        None if a.hosted_zone_id.is_none() => problem(
            p,
            "certificate_arn",
            "HTTPS needs a certificate: give an ACM certificate ARN for the domain, or hosted_zone_id and the stack creates one validated by DNS",
        ),
        None => {}
    }
    check_reach(a, p);
    check_subnets(a, spec, p);
}

/// Who may reach the balancer: an allow-list always, or (internet-facing only) the
/// loudly named open setting.
fn check_reach(a: &Access, p: &mut Problems) {
    let listed = !a.allowed_cidrs.is_empty() || !a.allowed_security_groups.is_empty();
    match a.scheme() {
        Scheme::InternetFacing if a.open_to_the_whole_internet && listed => problem(
            p,
            "open_to_the_whole_internet",
            "the whole internet includes every allow-list entry: remove allowed_cidrs and allowed_security_groups, or this setting",
        ),
        Scheme::InternetFacing if !a.open_to_the_whole_internet && a.allowed_cidrs.is_empty() => {
            problem(
                p,
                "allowed_cidrs",
                "an internet-facing balancer needs the CIDR blocks allowed in (your office or VPN egress, e.g. 203.0.113.0/24); to open it to everyone, set open_to_the_whole_internet: true",
            )
        }
        Scheme::Internal if a.open_to_the_whole_internet => problem(
            p,
            "open_to_the_whole_internet",
            "applies to scheme internet-facing only: an internal balancer has no public address",
        ),
        Scheme::Internal if !listed => problem(
            p,
            "allowed_cidrs",
            "an internal balancer needs the CIDR blocks or security groups allowed in (allowed_cidrs, allowed_security_groups), e.g. the VPC's or a VPN's CIDR",
        ),
        _ => {}
    }
}

fn check_subnets(a: &Access, spec: &super::Spec, p: &mut Problems) {
    if a.subnet_ids.is_empty() {
        return;
    }
    if spec.network.vpc_id.is_none() {
        problem(p, "subnet_ids", "applies to an existing VPC (network.vpc_id) only: a created VPC places the balancer itself; remove it");
        return;
    }
    if a.subnet_ids.len() < 2 {
        problem(
            p,
            "subnet_ids",
            "an Application Load Balancer needs at least 2 subnets in different AZs",
        );
    }
    for (i, s) in a.subnet_ids.iter().enumerate() {
        if !is_aws_id(s, "subnet-") {
            problem(
                p,
                &format!("subnet_ids[{i}]"),
                format!("{s:?} is not a subnet id such as subnet-0a1b2c3d"),
            );
        }
    }
}

/// Why `s` is not a canonical IPv4 CIDR block (`a.b.c.d/n`, no host bits set).
fn cidr_problem(s: &str) -> Option<String> {
    let form = "use an IPv4 CIDR block such as 10.8.0.0/16";
    let Some((ip, bits)) = s.split_once('/') else {
        return Some(form.into());
    };
    let (Ok(ip), Ok(bits)) = (ip.parse::<std::net::Ipv4Addr>(), bits.parse::<u8>()) else {
        return Some(form.into());
    };
    if bits > 32 {
        return Some(form.into());
    }
    let host_mask = u32::MAX.checked_shr(u32::from(bits)).unwrap_or(0);
    let ip = u32::from(ip);
    (ip & host_mask != 0).then(|| {
        let network = std::net::Ipv4Addr::from(ip & !host_mask);
        format!("host bits are set; the block is {network}/{bits}")
    })
}

/// Whether a valid CIDR block lies inside the private (RFC 1918) or shared (RFC 6598)
/// address space, which the internet does not route.
fn is_private(cidr: &str) -> bool {
    let Some((ip, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(ip), Ok(bits)) = (ip.parse::<std::net::Ipv4Addr>(), bits.parse::<u8>()) else {
        return false;
    };
    let inside = |net: [u8; 4], len: u8| {
        let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
        bits >= len && u32::from(ip) & mask == u32::from(std::net::Ipv4Addr::from(net))
    };
    inside([10, 0, 0, 0], 8)
        || inside([172, 16, 0, 0], 12)
        || inside([192, 168, 0, 0], 16)
        || inside([100, 64, 0, 0], 10)
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

fn is_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Why `arn` is not an ACM certificate ARN in `region` (an Application Load
/// Balancer takes certificates of its own region only).
fn certificate_problem(arn: &str, region: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let shape_ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("certificate/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        });
    if !shape_ok {
        return Some("not an ACM certificate ARN such as arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab".into());
    }
    (parts[3] != region).then(|| {
        format!(
            "the certificate is in {}, the stack in {region}: a load balancer takes certificates of its own region only",
            parts[3]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn problems(access: &str) -> Vec<String> {
        problems_with("", access)
    }

    fn problems_with(extra: &str, access: &str) -> Vec<String> {
        let text = format!("name: a\nregion: us-east-1\n{extra}access:\n{access}");
        match crate::spec::parse(&text, Path::new("s.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
        }
    }

    const BALANCER: &str = "  mode: load_balancer\n  domain: airflow.example.com\n  hosted_zone_id: Z0123456789ABCDEFGHIJ\n";

    #[test]
    fn the_default_is_the_tunnel_at_localhost() {
        let spec = crate::spec::parse("name: a\nregion: us-east-1\n", Path::new("s.yaml")).unwrap();
        assert_eq!(spec.access.mode, AccessMode::Tunnel);
        assert_eq!(spec.access.base_url("airflow"), "http://localhost:8080/");
    }

    #[test]
    fn valid_modes_pass() {
        assert_eq!(
            problems(&format!("{BALANCER}  allowed_cidrs: [10.8.0.0/16]\n")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("  mode: load_balancer\n  scheme: internet-facing\n  domain: a.example.org\n  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/1234abcd-12ab\n  allowed_cidrs: [203.0.113.0/24]\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("  mode: in_vpc\n  allowed_cidrs: [10.8.0.0/16]\n  allowed_security_groups: [sg-0a1b2c3d]\n"),
            Vec::<String>::new()
        );
        assert_eq!(problems("  mode: in_vpc\n"), Vec::<String>::new());
    }

    #[test]
    fn an_internet_facing_balancer_needs_an_allow_list_or_the_loud_setting() {
        let open = format!("{BALANCER}  scheme: internet-facing\n");
        let found = problems(&open);
        assert!(
            found[0].starts_with("access.allowed_cidrs: an internet-facing balancer needs"),
            "{found:?}"
        );
        assert_eq!(
            problems(&format!("{open}  open_to_the_whole_internet: true\n")),
            Vec::<String>::new()
        );
        let found = problems(&format!("{open}  allowed_cidrs: [0.0.0.0/0]\n"));
        assert!(
            found
                .iter()
                .any(|f| f.contains("set open_to_the_whole_internet: true instead")),
            "{found:?}"
        );
        let found = problems(&format!("{BALANCER}  open_to_the_whole_internet: true\n"));
        assert!(
            found.iter().any(|f| f.starts_with(
                "access.open_to_the_whole_internet: applies to scheme internet-facing"
            )),
            "{found:?}"
        );
    }

    #[test]
    fn a_balancer_needs_a_domain_and_a_certificate_source() {
        let found = problems("  mode: load_balancer\n  allowed_cidrs: [10.0.0.0/8]\n");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("access.domain: a load balancer needs")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("access.certificate_arn: HTTPS needs a certificate")),
            "{found:?}"
        );
        let found = problems("  mode: load_balancer\n  domain: a.example.org\n  certificate_arn: arn:aws:acm:eu-west-1:123456789012:certificate/abc\n  allowed_cidrs: [10.0.0.0/8]\n");
        assert!(
            found
                .iter()
                .any(|f| f.contains("the certificate is in eu-west-1, the stack in us-east-1")),
            "{found:?}"
        );
    }

    #[test]
    fn settings_of_another_mode_are_refused() {
        let found = problems("  allowed_cidrs: [10.0.0.0/8]\n  domain: a.example.org\n");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("access.allowed_cidrs: the tunnel opens no port")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f
                    .starts_with("access.domain: applies to mode load_balancer only, not tunnel")),
            "{found:?}"
        );
        let found = problems("  mode: balancer\n");
        assert!(found[0].contains("unknown variant `balancer`"), "{found:?}");
    }

    #[test]
    fn cidrs_and_ids_are_checked() {
        assert_eq!(cidr_problem("10.8.0.0/16"), None);
        assert_eq!(cidr_problem("192.0.2.7/32"), None);
        assert_eq!(
            cidr_problem("10.8.1.0/16").as_deref(),
            Some("host bits are set; the block is 10.8.0.0/16")
        );
        assert!(cidr_problem("10.8.0.0/33").is_some());
        assert!(cidr_problem("10.8.0.0").is_some());
        assert!(
            is_private("10.8.0.0/16") && is_private("172.20.0.0/16") && is_private("100.64.0.0/10")
        );
        assert!(
            !is_private("203.0.113.0/24")
                && !is_private("172.32.0.0/16")
                && !is_private("10.0.0.0/7")
        );
        let found = problems("  mode: in_vpc\n  allowed_cidrs: [203.0.113.0/24]\n");
        assert!(
            found[0]
                .starts_with("access.allowed_cidrs[0]: \"203.0.113.0/24\" is not a private block"),
            "{found:?}"
        );
        let found = problems("  mode: in_vpc\n  allowed_security_groups: [sg-XYZ]\n");
        assert!(
            found[0].starts_with(
                "access.allowed_security_groups[0]: \"sg-XYZ\" is not a security group id"
            ),
            "{found:?}"
        );
        let found = problems_with("", &format!("{BALANCER}  allowed_cidrs: [10.0.0.0/8]\n  subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]\n"));
        assert!(
            found[0].starts_with("access.subnet_ids: applies to an existing VPC"),
            "{found:?}"
        );
    }
}
