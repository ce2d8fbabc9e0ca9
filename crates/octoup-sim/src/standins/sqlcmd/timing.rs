//! How long the simulated SQL Server takes (contract "Sizes and durations"; reference §4):
//! a backup moves the used pages at `throughput_mb_s` (MB = 2^20 B, as SQL Server's
//! "MB/sec" counts), ×2 with COMPRESSION (148 vs 75 MB/s measured), ×1.25 with two or more
//! stripes (148 → 186 MB/s) and ×1.25 with MAXTRANSFERSIZE/BUFFERCOUNT set (~25 %,
//! dba-datascience). Verify re-reads the file at the backup's pace; a restore takes as long
//! plus the zero-fill of the data files without instant file initialization (written at
//! twice the plain rate, an inference). An explicit `[durations]` value wins.

use super::parse::Options;
use crate::spec::DatabaseSpec;

pub(super) const PAGE: f64 = 8192.0;
pub(super) const MB: f64 = 1_048_576.0;

/// Used pages of the Octopus database.
pub(super) fn used_pages(sql: &DatabaseSpec) -> u64 {
    (sql.size_gb * 1e9 / PAGE).ceil() as u64
}

/// The backup rate in MB/s for these options and stripes.
pub(super) fn backup_rate(sql: &DatabaseSpec, options: &Options, stripes: usize) -> f64 {
    let mut rate = sql.throughput_mb_s;
    if options.has("COMPRESSION") {
        rate *= 2.0;
    }
    if stripes >= 2 {
        rate *= 1.25;
    }
    if options.has("MAXTRANSFERSIZE") || options.has("BUFFERCOUNT") {
        rate *= 1.25;
    }
    rate
}

/// Simulated seconds to move `pages` at `rate` MB/s.
pub(super) fn seconds(pages: u64, rate: f64) -> f64 {
    pages as f64 * PAGE / MB / rate.max(1e-9)
}

/// Seconds a restore spends zero-filling the data files (none with IFI).
pub(super) fn zero_fill(sql: &DatabaseSpec) -> f64 {
    if sql.ifi {
        0.0
    } else {
        // The data files are 1.25× the used size (as `sys.master_files` reports them).
        sql.size_gb * 1.25 * 1e9 / MB / (sql.throughput_mb_s * 2.0)
    }
}

/// The `n percent processed.` steps for `STATS = n` (10 when STATS has no value), ending
/// at 100 as SQL Server does.
pub(super) fn percent_steps(options: &Options) -> Vec<u32> {
    if !options.has("STATS") {
        return Vec::new();
    }
    let n = options.number("STATS").unwrap_or(10).clamp(1, 100) as u32;
    let mut steps: Vec<u32> = (1..=100 / n).map(|k| k * n).collect();
    if steps.last() != Some(&100) {
        steps.push(100);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(names: &[&str]) -> Options {
        Options(names.iter().map(|n| (n.to_string(), None)).collect())
    }

    #[test]
    fn rates_follow_the_options_and_stripes() {
        let sql = DatabaseSpec::default();
        assert_eq!(backup_rate(&sql, &opts(&[]), 1), 75.0);
        assert_eq!(backup_rate(&sql, &opts(&["COMPRESSION"]), 1), 150.0);
        assert_eq!(backup_rate(&sql, &opts(&["COMPRESSION"]), 2), 187.5);
        assert_eq!(
            backup_rate(&sql, &opts(&["COMPRESSION", "MAXTRANSFERSIZE"]), 2),
            234.375
        );
        // 240 GB plain at 75 MB/s ≈ 51 minutes, the reference's measured 52.
        let big = DatabaseSpec {
            size_gb: 240.0,
            ..DatabaseSpec::default()
        };
        let t = seconds(used_pages(&big), 75.0);
        assert!((3000.0..3100.0).contains(&t), "{t}");
        assert_eq!(zero_fill(&sql), 0.0);
        assert!(zero_fill(&DatabaseSpec { ifi: false, ..big }) > 1000.0);
    }

    #[test]
    fn stats_steps() {
        let mut o = opts(&[]);
        assert!(percent_steps(&o).is_empty());
        o.0.push(("STATS".into(), Some("30".into())));
        assert_eq!(percent_steps(&o), vec![30, 60, 90, 100]);
        assert_eq!(percent_steps(&opts(&["STATS"])).len(), 10);
    }
}
