//! Ordering of Octopus version strings (`2024.1.10` < `2024.1.9999` < `2024.2.1`).

use std::cmp::Ordering;

/// Compares two dotted versions numerically, part by part. A missing part counts as 0; a
/// part that is not a number compares as text after all numbers, so odd input never panics.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut left = a.trim().split('.');
    let mut right = b.trim().split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (l, r) => {
                let l = l.unwrap_or("0");
                let r = r.unwrap_or("0");
                let ord = match (l.parse::<u64>(), r.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => l.cmp(r),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// True when `version` is a plausible `YYYY.N.BUILD` (or longer) dotted number.
pub fn is_valid(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_not_lexical() {
        assert_eq!(compare("2024.1.10", "2024.1.9"), Ordering::Greater);
        assert_eq!(compare("2024.1.10", "2024.2.1"), Ordering::Less);
        assert_eq!(compare("2024.4.9999", "2025.1.1"), Ordering::Less);
        assert_eq!(compare("2024.1.10", "2024.1.10"), Ordering::Equal);
        assert_eq!(compare("2024.1", "2024.1.0"), Ordering::Equal);
        assert!(is_valid("2024.1.10"));
        assert!(!is_valid("2024.1"));
        assert!(!is_valid("2024.x.1"));
    }
}
