//! Numbers for people: bytes in human units, counts with thousands separators, plurals.

/// Bytes in human units (powers of 1000, as Finder and iOS Settings show them).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        value /= 1000.0;
        unit = u;
        if value < 1000.0 {
            break;
        }
    }
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// A count with thousands separators: 250000 -> "250,000".
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1 file", "1,089 files".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", human_count(n), if n == 1 { one } else { many })
}

/// A span of time as people say it: "12 minutes", "3 hours", "30 days" (negative spans, from a
/// clock that is off, count as none).
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0) as u64;
    match s {
        0..60 => "less than a minute".to_string(),
        60..3_600 => plural(s / 60, "minute", "minutes"),
        3_600..172_800 => plural(s / 3_600, "hour", "hours"),
        _ => plural(s / 86_400, "day", "days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1_500), "1.5 KB");
        assert_eq!(human_bytes(182_028_381), "182 MB");
        assert_eq!(human_bytes(5_000_000_000), "5.0 GB");
        assert_eq!(human_count(1_089), "1,089");
        assert_eq!(human_count(250_000), "250,000");
        assert_eq!(human_count(12), "12");
        assert_eq!(plural(1, "file", "files"), "1 file");
        assert_eq!(plural(1_089, "file", "files"), "1,089 files");
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(-5), "less than a minute");
        assert_eq!(human_age(59), "less than a minute");
        assert_eq!(human_age(60), "1 minute");
        assert_eq!(human_age(3 * 3_600 + 59), "3 hours");
        assert_eq!(human_age(47 * 3_600), "47 hours");
        assert_eq!(human_age(30 * 86_400 + 5), "30 days");
    }
}
