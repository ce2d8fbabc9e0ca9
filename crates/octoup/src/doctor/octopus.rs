//! The checks through the Octopus API before the outage: the System Integrity Check, the
//! host's Windows against the rules, the targets and workers whose OS the target drops,
//! the license's term, grace and node limit, and the task queue. A check that cannot run
//! is a `<id>.unchecked` warning with the reason (the error names the URL).

use jiff::civil::Date;

use crate::doctor::Context;
use crate::doctor::finding::{Finding, Findings};
use crate::doctor::integrity;
use crate::doctor::machines;
use crate::doctor::rules::{Rules, What};
use crate::octopus::api::{LicenseStatus, OctopusApi, TaskResource};
use crate::version::Version;

/// Days after a term license's expiry during which Octopus keeps working (product terms).
pub(crate) const GRACE_DAYS: i64 = 60;
/// A queue longer than this is a backlog worth mentioning.
const BACKLOG: u64 = 20;
/// A task queued longer than this (minutes) has waited long.
const LONG_QUEUED_MINUTES: i64 = 30;

pub(crate) async fn checks(ctx: &Context<'_>) -> Findings {
    let api = &ctx.conn.api;
    let mut f = Findings::default();
    f.extend(
        integrity::check(
            api,
            &ctx.config().doctor,
            "octopus.integrity",
            "before the upgrade",
        )
        .await,
    );
    if let Some(target) = ctx.target {
        f.extend(host(api, ctx.rules, target).await);
        let dropped = ctx.rules.dropped_target_os(target);
        if !dropped.is_empty() {
            match machines::all(api).await {
                Ok((all, errors)) => {
                    for (space, e) in errors {
                        f.push(Finding::unchecked(
                            "targets",
                            &format!("the machines of space {space}"),
                            e,
                        ));
                    }
                    f.extend(machines::dropped_os_findings(target, &dropped, &all));
                }
                Err(e) => f.push(Finding::unchecked(
                    "targets",
                    "the OS of deployment targets and workers",
                    e,
                )),
            }
        }
    }
    let nodes: Vec<String> = ctx
        .facts
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(
            ctx.facts
                .other_nodes
                .iter()
                .filter(|n| !n.is_offline)
                .map(|n| n.name.clone()),
        )
        .collect();
    f.extend(license(api, &nodes, crate::choice::today()).await);
    f.extend(queue(api, "octopus.queue", jiff::Timestamp::now()).await);
    f
}

/// What `OSVersion` says about the host.
#[derive(Debug, PartialEq)]
pub(crate) enum HostOs {
    /// The Windows NT version ("10.0.17763.0").
    Windows(String),
    /// Not Windows (a Linux container reports e.g. "Unix 5.15.0.1052").
    Other(String),
    Unreadable(String),
}

pub(crate) fn parse_host_os(os_version: &str) -> HostOs {
    let text = os_version.trim();
    if text.is_empty() {
        return HostOs::Unreadable("the server reports no OSVersion".into());
    }
    if !text.to_ascii_lowercase().contains("windows") {
        return HostOs::Other(text.to_string());
    }
    match machines::dotted_in(text) {
        Some(v) => HostOs::Windows(v),
        None => HostOs::Unreadable(format!("OSVersion {text:?} has no version number")),
    }
}

async fn host(api: &OctopusApi, rules: &Rules, target: &Version) -> Vec<Finding> {
    let windows = rules.requirements(What::WindowsServer, target);
    let dotnet = rules.requirements(What::Dotnet, target);
    if windows.is_empty() && dotnet.is_empty() {
        return Vec::new();
    }
    let what = "the host's Windows version";
    let info = match api.system_info().await {
        Ok(i) => i,
        Err(e) => return vec![Finding::unchecked("host.windows", what, e)],
    };
    host_findings(rules, target, &info.os_version, &info.clr_version)
}

pub(crate) fn host_findings(
    rules: &Rules,
    target: &Version,
    os_version: &str,
    clr_version: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let nt = match parse_host_os(os_version) {
        HostOs::Windows(v) => v,
        HostOs::Other(os) => {
            out.push(Finding::info(
                "host.os",
                format!(
                    "the server runs on {os} (a container, presumably): the Windows Server and .NET rules do not apply"
                ),
            ));
            return out;
        }
        HostOs::Unreadable(reason) => {
            if !rules.requirements(What::WindowsServer, target).is_empty() {
                out.push(Finding::unchecked(
                    "host.windows",
                    "the host's Windows version",
                    reason,
                ));
            }
            return out;
        }
    };
    let release = rules
        .windows_server_release(&nt)
        .map(|r| format!(" (Windows Server {r})"))
        .unwrap_or_default();
    for req in rules.requirements(What::WindowsServer, target) {
        match rules.meets(req, &nt) {
            Some(true) => {}
            Some(false) => out.push(req.unmet(
                target,
                format!("the server's host runs Windows NT {nt}{release}"),
                &format!(
                    "move Octopus to a host with Windows Server {} or later before this upgrade, or choose an older target (--to)",
                    req.needs
                ),
            )),
            None => out.push(Finding::unchecked(
                &req.id,
                "the host's Windows version",
                format!("{nt:?} cannot be compared"),
            )),
        }
    }
    // The API tells the CLR ("4.0.30319.42000"), not the .NET Framework release.
    for req in rules.requirements(What::Dotnet, target) {
        out.push(Finding::unchecked(
            &req.id,
            &format!(".NET Framework {} on the host", req.needs),
            format!(
                "the API reports only the CLR version ({}); check Programs and Features on the host",
                if clr_version.is_empty() { "none" } else { clr_version }
            ),
        ));
    }
    out
}

async fn license(api: &OctopusApi, nodes: &[String], today: Date) -> Vec<Finding> {
    let status = match api.license_status().await {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::unchecked(
                "license",
                "the license's term and node limit",
                e,
            )];
        }
    };
    let mut out = license_term(&status, today);
    let limit = match node_limit(&status) {
        Some(limit) => Some(limit),
        None => match api.license_text().await {
            Ok(xml) => node_limit_in_xml(&xml),
            Err(e) => {
                out.push(Finding::unchecked(
                    "license.nodes",
                    "the license's node limit",
                    e,
                ));
                return out;
            }
        },
    };
    out.extend(license_nodes(limit, nodes));
    out
}

/// `Some(None)`: unlimited; `None`: the status does not say.
fn node_limit(status: &LicenseStatus) -> Option<Option<u64>> {
    let entry = status
        .limits
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case("nodes") || l.name.eq_ignore_ascii_case("node"))?;
    if entry.is_unlimited {
        return Some(None);
    }
    entry
        .effective_limit
        .and_then(|l| u64::try_from(l).ok())
        .map(Some)
}

/// `<NodeLimit>` of the license XML: `Some(None)` for `Unlimited`.
pub(crate) fn node_limit_in_xml(xml: &str) -> Option<Option<u64>> {
    let start = xml.find("<NodeLimit>")? + "<NodeLimit>".len();
    let end = start + xml[start..].find("</NodeLimit>")?;
    let value = xml[start..end].trim();
    if value.eq_ignore_ascii_case("unlimited") {
        return Some(None);
    }
    value.parse().ok().map(Some)
}

pub(crate) fn license_nodes(limit: Option<Option<u64>>, nodes: &[String]) -> Vec<Finding> {
    match limit {
        Some(Some(limit)) if nodes.len() as u64 > limit => vec![Finding::blocker(
            "license.nodes",
            format!(
                "the license allows {limit} node(s) but the cluster has {}: {}",
                nodes.len(),
                nodes.join(", ")
            ),
            "a cluster above its license's node limit is not compliant; Octopus limits what the nodes may do after they start",
            "remove the extra nodes (Configuration → Nodes) or install a license with a higher node limit, then run octoup again",
        )],
        Some(_) => Vec::new(),
        None => vec![Finding::unchecked(
            "license.nodes",
            "the license's node limit",
            "neither licenses-current-status nor the license names one",
        )],
    }
}

pub(crate) fn license_term(status: &LicenseStatus, today: Date) -> Vec<Finding> {
    let date = status.effective_expiry_date.as_deref().map(str::trim);
    let parsed = date.and_then(|d| Date::strptime("%Y-%m-%d", d.get(..10).unwrap_or(d)).ok());
    let days = status.days_to_effective_expiry_date.or_else(|| {
        parsed
            .and_then(|d| today.until(d).ok())
            .map(|s| i64::from(s.get_days()))
    });
    let (Some(days), Some(date)) = (days, date) else {
        return vec![Finding::unchecked(
            "license",
            "the license's term",
            "licenses-current-status has no EffectiveExpiryDate",
        )];
    };
    let grace_end = parsed
        .and_then(|d| d.checked_add(jiff::Span::new().days(GRACE_DAYS)).ok())
        .map(|d| d.to_string())
        .unwrap_or_else(|| format!("{GRACE_DAYS} days after it"));
    if days < -GRACE_DAYS {
        vec![Finding::blocker(
            "license.expired",
            format!(
                "the license expired on {date}, {} days ago, and its {GRACE_DAYS}-day grace ended on {grace_end}",
                -days
            ),
            "past the grace Octopus may limit or stop functionality, and a new version may refuse the license",
            "install a renewed license (Configuration → License) before the upgrade",
        )]
    } else if days < 0 {
        vec![Finding::warning(
            "license.grace",
            format!(
                "the license expired on {date}, {} days ago; the {GRACE_DAYS}-day grace ends on {grace_end}",
                -days
            ),
            "after the grace Octopus may limit or stop functionality",
            "renew the license soon (Configuration → License), or accept this warning",
        )]
    } else if days <= 30 {
        vec![Finding::info(
            "license.expiring",
            format!("the license expires on {date}, in {days} days"),
        )]
    } else {
        Vec::new()
    }
}

/// A queue backlog or tasks queued long: information (`id` is `octopus.queue` before the
/// outage, `verify.queue` after the start).
pub(crate) async fn queue(api: &OctopusApi, id: &str, now: jiff::Timestamp) -> Option<Finding> {
    match api.tasks("states=Queued").await {
        Ok(page) => {
            let total = page
                .total_counts
                .get("Queued")
                .copied()
                .unwrap_or(page.total_results)
                .max(page.items.len() as u64);
            queue_finding(id, total, &page.items, now)
        }
        Err(e) => Some(Finding::unchecked(id, "the task queue", e)),
    }
}

pub(crate) fn queue_finding(
    id: &str,
    total: u64,
    queued: &[TaskResource],
    now: jiff::Timestamp,
) -> Option<Finding> {
    let oldest = queued
        .iter()
        .filter_map(|t| Some((queued_minutes(t, now)?, t)))
        .max_by_key(|(m, _)| *m);
    let long = oldest.filter(|(m, _)| *m >= LONG_QUEUED_MINUTES);
    if total < BACKLOG && long.is_none() {
        return None;
    }
    let mut found = format!("{total} task(s) are queued");
    if let Some((minutes, t)) = oldest {
        found.push_str(&format!(
            "; the oldest, {} ({}, {}), has waited {minutes} min",
            t.description, t.name, t.id
        ));
    }
    Some(Finding::info(id, found))
}

/// Minutes since the task was queued, when its `QueueTime` reads.
pub(crate) fn queued_minutes(t: &TaskResource, now: jiff::Timestamp) -> Option<i64> {
    let queued: jiff::Timestamp = t.queue_time.as_deref()?.parse().ok()?;
    Some(now.duration_since(queued).as_secs() / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::finding::Severity;
    use crate::octopus::api::LicenseLimit;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn host_os_strings() {
        assert_eq!(
            parse_host_os("Microsoft Windows NT 10.0.17763.0"),
            HostOs::Windows("10.0.17763.0".into())
        );
        assert_eq!(
            parse_host_os("Microsoft Windows 6.3.9600"),
            HostOs::Windows("6.3.9600".into())
        );
        assert!(matches!(
            parse_host_os("Unix 5.15.0.1052"),
            HostOs::Other(_)
        ));
        assert!(matches!(
            parse_host_os("Linux 5.15.0-1052-azure #60-Ubuntu SMP"),
            HostOs::Other(_)
        ));
        assert!(matches!(parse_host_os(""), HostOs::Unreadable(_)));
        assert!(matches!(
            parse_host_os("Microsoft Windows"),
            HostOs::Unreadable(_)
        ));
    }

    #[test]
    fn host_rules_as_a_table() {
        let rules = Rules::builtin();
        // (target, OSVersion, ids found)
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "2024.1.1",
                "Microsoft Windows NT 6.2.9200.0",
                &["host.windows"],
            ),
            ("2024.1.1", "Microsoft Windows NT 6.3.9600.0", &[]),
            ("2024.1.1", "Microsoft Windows NT 10.0.20348.0", &[]),
            (
                "2019.5.0",
                "Microsoft Windows NT 6.0.6002.0",
                &["host.windows", "host.dotnet.unchecked"],
            ),
            // A rule for .NET applies, and the API cannot tell it.
            (
                "2019.8.0",
                "Microsoft Windows NT 10.0.17763.0",
                &["host.dotnet.unchecked"],
            ),
            ("2024.1.1", "Unix 5.15.0.1052", &["host.os"]),
            ("2024.1.1", "Microsoft Windows", &["host.windows.unchecked"]),
        ];
        for (target, os, ids) in cases {
            let f = host_findings(rules, &v(target), os, "4.0.30319.42000");
            let got: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(&got, ids, "{target} on {os}");
        }
        let f = host_findings(rules, &v("2024.1.1"), "Microsoft Windows NT 6.2.9200.0", "");
        assert_eq!(f[0].severity, Severity::Blocker);
        assert!(f[0].found.contains("Windows Server 2012"), "{}", f[0].found);
        assert!(f[0].fix.contains("2012 R2"), "{}", f[0].fix);
        assert_eq!(f.len(), 1);
    }

    fn status(date: &str, days: Option<i64>) -> LicenseStatus {
        LicenseStatus {
            effective_expiry_date: Some(date.into()),
            days_to_effective_expiry_date: days,
            ..Default::default()
        }
    }

    #[test]
    fn license_term_and_grace() {
        let today = Date::constant(2026, 12, 2);
        let ids = |s: LicenseStatus| -> Vec<String> {
            license_term(&s, today).into_iter().map(|f| f.id).collect()
        };
        assert!(ids(status("2027-06-30", None)).is_empty());
        assert_eq!(ids(status("2026-12-20", None)), ["license.expiring"]);
        assert_eq!(ids(status("2026-11-22", None)), ["license.grace"]);
        // Exactly 60 days ago is the grace's last day.
        assert_eq!(ids(status("2026-10-03", None)), ["license.grace"]);
        assert_eq!(ids(status("2026-10-02", None)), ["license.expired"]);
        // The server's own count wins over the local date.
        assert_eq!(ids(status("2026-11-22", Some(-61))), ["license.expired"]);
        assert_eq!(ids(LicenseStatus::default()), ["license.unchecked"]);
        let f = &license_term(&status("2026-11-22", None), today)[0];
        assert!(
            f.found.contains("10 days ago") && f.found.contains("2027-01-21"),
            "{}",
            f.found
        );
    }

    #[test]
    fn node_limits() {
        let nodes: Vec<String> = vec!["A".into(), "B".into(), "C".into()];
        assert_eq!(license_nodes(Some(Some(2)), &nodes)[0].id, "license.nodes");
        assert!(license_nodes(Some(Some(3)), &nodes).is_empty());
        assert!(license_nodes(Some(None), &nodes).is_empty());
        assert_eq!(license_nodes(None, &nodes)[0].id, "license.nodes.unchecked");
        let s = LicenseStatus {
            limits: vec![LicenseLimit {
                name: "Nodes".into(),
                effective_limit: Some(2),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(node_limit(&s), Some(Some(2)));
        assert_eq!(node_limit(&LicenseStatus::default()), None);
        assert_eq!(
            node_limit_in_xml("<License><NodeLimit>4</NodeLimit></License>"),
            Some(Some(4))
        );
        assert_eq!(
            node_limit_in_xml("<NodeLimit>Unlimited</NodeLimit>"),
            Some(None)
        );
        assert_eq!(node_limit_in_xml("<License/>"), None);
    }

    /// Every finding id these checks use is in docs/preflight.md.
    #[test]
    fn every_id_is_documented() {
        let docs = include_str!("../../../../docs/preflight.md");
        let sources = [
            include_str!("octopus.rs"),
            include_str!("integrity.rs"),
            include_str!("machines.rs"),
            include_str!("verify.rs"),
            include_str!("tentacles.rs"),
        ];
        let prefixes = ["octopus.", "host.", "license.", "targets.", "verify."];
        let mut ids = Vec::new();
        for source in sources {
            for quoted in source.split('"').skip(1).step_by(2) {
                let is_id = prefixes.iter().any(|p| quoted.starts_with(p))
                    && quoted
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '-');
                if is_id && !quoted.ends_with('.') && !quoted.ends_with(".rs") {
                    ids.push(quoted);
                }
            }
        }
        assert!(ids.len() > 15, "{ids:?}");
        // A check's id also names its `<id>.unchecked` warning.
        for id in ids {
            assert!(
                docs.contains(&format!("`{id}`")) || docs.contains(&format!("`{id}.unchecked`")),
                "{id} is not in docs/preflight.md"
            );
        }
    }

    #[test]
    fn queue_backlog_and_long_waits() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let task = |id: &str, queued: &str| TaskResource {
            id: id.into(),
            name: "Deploy".into(),
            description: "Deploy Web".into(),
            queue_time: Some(queued.into()),
            ..Default::default()
        };
        let fresh = [task("ServerTasks-1", "2026-12-02T11:58:00.000+00:00")];
        assert!(queue_finding("octopus.queue", 1, &fresh, now).is_none());
        assert!(queue_finding("octopus.queue", 25, &fresh, now).is_some());
        let old = [task("ServerTasks-2", "2026-12-02T10:00:00.000+00:00")];
        let f = queue_finding("octopus.queue", 1, &old, now).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.found.contains("has waited 120 min") && f.found.contains("ServerTasks-2"),
            "{}",
            f.found
        );
    }
}
