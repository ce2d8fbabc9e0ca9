//! Deployment targets and workers in every space: which run an OS the target version drops
//! (before the outage), and naming machines in findings (lists are capped).

use std::collections::BTreeMap;

use crate::doctor::finding::Finding;
use crate::doctor::rules::{DroppedTargetOs, dotted_cmp};
use crate::octopus::api::{ApiError, MachineResource, OctopusApi, SpaceResource};
use crate::version::Version;

/// At most this many machine names in one finding; the rest are counted.
pub(crate) const MAX_LISTED: usize = 10;

/// A machine and the space it is in.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub space: SpaceResource,
    pub machine: MachineResource,
}

/// Every space's targets and workers. A space that cannot be read is an error in the list
/// (the others are still checked).
pub(crate) async fn all(
    api: &OctopusApi,
) -> Result<(Vec<Placed>, Vec<(String, ApiError)>), ApiError> {
    let spaces = api.spaces().await?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for space in spaces {
        for workers in [false, true] {
            match api.machines(&space.id, workers).await {
                Ok(ms) => out.extend(ms.into_iter().map(|machine| Placed {
                    space: space.clone(),
                    machine,
                })),
                Err(e) => errors.push((space.name.clone(), e)),
            }
        }
    }
    Ok((out, errors))
}

/// "Default: web01, web02; Ops: build01 (and 3 more)".
pub(crate) fn listed<'a>(machines: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut by_space: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut total = 0;
    for (space, name) in machines {
        total += 1;
        if total <= MAX_LISTED {
            by_space.entry(space).or_default().push(name);
        }
    }
    let mut out = by_space
        .iter()
        .map(|(space, names)| format!("{space}: {}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    if total > MAX_LISTED {
        out.push_str(&format!(" (and {} more)", total - MAX_LISTED));
    }
    out
}

/// The machine's OS version: `OperatingSystemVersion`, else the first dotted number in
/// `OperatingSystem` ("Microsoft Windows NT 6.3.9600.0").
pub(crate) fn os_version(m: &MachineResource) -> Option<String> {
    m.operating_system_version
        .as_deref()
        .map(str::trim)
        .filter(|v| dotted_cmp(v, "0").is_some())
        .map(str::to_string)
        .or_else(|| m.operating_system.as_deref().and_then(dotted_in))
}

/// The first token of `text` that is a dotted number with at least two parts.
pub(crate) fn dotted_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .map(|t| t.trim_end_matches('.'))
        .find(|t| t.contains('.') && dotted_cmp(t, "0").is_some())
        .map(str::to_string)
}

/// The findings for the machines whose OS `target` drops, one per rule.
pub(crate) fn dropped_os_findings(
    target: &Version,
    rules: &[&DroppedTargetOs],
    machines: &[Placed],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in rules {
        let hit: Vec<(&str, &str)> = machines
            .iter()
            .filter(|p| {
                let os = p.machine.operating_system.as_deref().unwrap_or("");
                os_version(&p.machine).is_some_and(|v| rule.matches(os, &v))
            })
            .map(|p| (p.space.name.as_str(), p.machine.name.as_str()))
            .collect();
        if hit.is_empty() {
            continue;
        }
        out.push(Finding::new(
            rule.id.clone(),
            rule.severity,
            format!(
                "{} deployment target(s) or worker(s) run {}: {}",
                hit.len(),
                rule.name,
                listed(hit.iter().copied())
            ),
            format!("{} (target {target}; source: {})", rule.why, rule.source),
            rule.fix.clone(),
        ));
    }
    // A Windows machine whose version cannot be read cannot be checked: say so.
    let unknown: Vec<(&str, &str)> = machines
        .iter()
        .filter(|p| {
            p.machine
                .operating_system
                .as_deref()
                .is_some_and(|os| os.to_ascii_lowercase().contains("windows"))
                && os_version(&p.machine).is_none()
        })
        .map(|p| (p.space.name.as_str(), p.machine.name.as_str()))
        .collect();
    if !unknown.is_empty() {
        out.push(Finding::unchecked(
            "targets.os",
            "the Windows version of some machines",
            format!(
                "the API does not report it for {}",
                listed(unknown.iter().copied())
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Rules;

    fn placed(space: &str, name: &str, os: &str, ver: Option<&str>) -> Placed {
        Placed {
            space: SpaceResource {
                id: format!("Spaces-{space}"),
                name: space.into(),
            },
            machine: MachineResource {
                name: name.into(),
                operating_system: Some(os.into()),
                operating_system_version: ver.map(str::to_string),
                ..Default::default()
            },
        }
    }

    #[test]
    fn os_versions_from_either_field() {
        let m = placed("D", "a", "Microsoft Windows NT 6.3.9600.0", None).machine;
        assert_eq!(os_version(&m).as_deref(), Some("6.3.9600.0"));
        let m = placed(
            "D",
            "a",
            "Microsoft Windows Server 2019",
            Some("10.0.17763"),
        )
        .machine;
        assert_eq!(os_version(&m).as_deref(), Some("10.0.17763"));
        let m = placed("D", "a", "Microsoft Windows Server 2019", Some("")).machine;
        assert_eq!(os_version(&m), None);
        assert_eq!(dotted_in("Ubuntu 22.04.3 LTS").as_deref(), Some("22.04.3"));
        assert_eq!(dotted_in("Windows Server 2019"), None);
    }

    #[test]
    fn lists_are_grouped_by_space_and_capped() {
        let names: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
        let list = listed(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (if i < 2 { "Ops" } else { "Default" }, n.as_str())),
        );
        assert!(list.starts_with("Default: m3, m4"), "{list}");
        assert!(list.contains("; Ops: m1, m2"), "{list}");
        assert!(list.ends_with("(and 2 more)"), "{list}");
        assert!(!list.contains("m11"), "{list}");
    }

    #[test]
    fn one_finding_per_rule_naming_the_machines() {
        let target: Version = "2024.1.1".parse().unwrap();
        let rules = Rules::builtin().dropped_target_os(&target);
        let machines = vec![
            placed(
                "Default",
                "old2003",
                "Microsoft Windows Server 2003",
                Some("5.2.3790"),
            ),
            placed(
                "Ops",
                "w2012",
                "Microsoft Windows Server 2012",
                Some("6.2.9200"),
            ),
            placed(
                "Default",
                "fine",
                "Microsoft Windows Server 2019",
                Some("10.0.17763"),
            ),
            placed("Default", "linux", "Ubuntu", Some("22.04")),
            placed("Default", "mystery", "Microsoft Windows", None),
        ];
        let f = dropped_os_findings(&target, &rules, &machines);
        let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "targets.os-dropped",
                "targets.dotnet",
                "targets.os.unchecked"
            ]
        );
        assert!(
            f[0].found.contains("1 deployment target(s)")
                && f[0].found.contains("Default: old2003")
        );
        assert!(
            f[1].found.contains("Default: old2003; Ops: w2012"),
            "{}",
            f[1].found
        );
        assert!(f[2].found.contains("mystery"));
        assert!(
            !f.iter()
                .any(|f| f.found.contains("fine") || f.found.contains("linux"))
        );
    }
}
