//! The kernel's CPU list format (`0-3,8-11,16`), as in `local_cpulist` and
//! `/sys/devices/system/node/node*/cpulist` (Documentation/admin-guide/cputopology.rst).

/// The largest CPU number accepted: well above the kernel's `NR_CPUS` limit
/// (8192), and small enough that a hostile range cannot exhaust memory.
pub const MAX_CPU: usize = 65_535;

/// Why a CPU list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The list has no entries at all.
    #[error("empty CPU list")]
    Empty,
    /// A comma-separated entry is empty (`0,,2`, a trailing comma).
    #[error("empty entry in CPU list {list:?}")]
    EmptyEntry {
        /// The whole list.
        list: String,
    },
    /// An entry is not `N` or `N-M` with decimal numbers.
    #[error("CPU list entry {entry:?} is not a number or a range N-M")]
    BadEntry {
        /// The offending entry.
        entry: String,
    },
    /// A range whose end is below its start (`3-1`).
    #[error("CPU range {start}-{end} runs backwards")]
    Reversed {
        /// The range's first CPU.
        start: usize,
        /// The range's last CPU.
        end: usize,
    },
    /// A CPU number above [`MAX_CPU`].
    #[error("CPU number {cpu} is above the largest accepted ({MAX_CPU})")]
    TooLarge {
        /// The offending number.
        cpu: usize,
    },
}

/// Parses a kernel CPU list such as `0-3,8-11,16` into sorted, distinct CPU numbers.
pub fn parse_cpulist(s: &str) -> Result<Vec<usize>, ParseError> {
    let list = s.trim();
    if list.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut cpus = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(ParseError::EmptyEntry { list: list.to_owned() });
        }
        let (start, end) = match entry.split_once('-') {
            Some((a, b)) => (cpu_number(a, entry)?, cpu_number(b, entry)?),
            None => {
                let n = cpu_number(entry, entry)?;
                (n, n)
            }
        };
        if end < start {
            return Err(ParseError::Reversed { start, end });
        }
        cpus.extend(start..=end);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Writes sorted, distinct CPU numbers in the kernel's form (`0-3,8,10-11`),
/// the inverse of [`parse_cpulist`]; an empty list is an empty string.
pub fn format_cpulist(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

fn cpu_number(s: &str, entry: &str) -> Result<usize, ParseError> {
    // Only plain decimal digits: `usize::from_str` would also take a leading `+`.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadEntry { entry: entry.to_owned() });
    }
    match s.parse::<usize>() {
        Ok(cpu) if cpu <= MAX_CPU => Ok(cpu),
        Ok(cpu) => Err(ParseError::TooLarge { cpu }),
        Err(_) => Err(ParseError::TooLarge { cpu: usize::MAX }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_singles() {
        assert_eq!(parse_cpulist("0-3,8-11,16\n"), Ok(vec![0, 1, 2, 3, 8, 9, 10, 11, 16]));
        assert_eq!(parse_cpulist("5"), Ok(vec![5]));
        assert_eq!(parse_cpulist("2-2"), Ok(vec![2]));
        // Overlapping and unordered entries come back sorted and distinct.
        assert_eq!(parse_cpulist("4,0-2,1"), Ok(vec![0, 1, 2, 4]));
    }

    #[test]
    fn empty_lists_are_errors() {
        assert_eq!(parse_cpulist(""), Err(ParseError::Empty));
        assert_eq!(parse_cpulist("\n"), Err(ParseError::Empty));
        assert_eq!(parse_cpulist("0,,2"), Err(ParseError::EmptyEntry { list: "0,,2".into() }));
        assert_eq!(parse_cpulist("0-1,"), Err(ParseError::EmptyEntry { list: "0-1,".into() }));
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert_eq!(parse_cpulist("0-"), Err(ParseError::BadEntry { entry: "0-".into() }));
        assert_eq!(parse_cpulist("-3"), Err(ParseError::BadEntry { entry: "-3".into() }));
        assert_eq!(parse_cpulist("a-b"), Err(ParseError::BadEntry { entry: "a-b".into() }));
        assert_eq!(parse_cpulist("1-2-3"), Err(ParseError::BadEntry { entry: "1-2-3".into() }));
        assert_eq!(parse_cpulist("+1"), Err(ParseError::BadEntry { entry: "+1".into() }));
        // The grouped form bitmap_parselist() accepts is never printed by the kernel.
        assert_eq!(parse_cpulist("0-7:2/4"), Err(ParseError::BadEntry { entry: "0-7:2/4".into() }));
    }

    #[test]
    fn reversed_range_is_an_error() {
        assert_eq!(parse_cpulist("3-1"), Err(ParseError::Reversed { start: 3, end: 1 }));
    }

    #[test]
    fn huge_numbers_are_refused_not_allocated() {
        assert_eq!(parse_cpulist("0-4294967295"), Err(ParseError::TooLarge { cpu: 4_294_967_295 }));
        assert_eq!(parse_cpulist("99999999999999999999999"), Err(ParseError::TooLarge { cpu: usize::MAX }));
        assert_eq!(parse_cpulist("65535").map(|v| v.len()), Ok(1));
        assert_eq!(parse_cpulist("65536"), Err(ParseError::TooLarge { cpu: 65_536 }));
    }

    #[test]
    fn format_is_the_inverse_of_parse() {
        assert_eq!(format_cpulist(&[]), "");
        let lists: [&[usize]; 6] =
            [&[0], &[7], &[0, 2, 4], &[0, 1, 2, 3, 8, 9, 10, 11, 16], &[1, 2, 5, 6, 7], &[MAX_CPU]];
        for cpus in lists {
            let text = format_cpulist(cpus);
            assert_eq!(parse_cpulist(&text).as_deref(), Ok(cpus), "{text}");
            assert_eq!(format_cpulist(&parse_cpulist(&text).unwrap()), text);
        }
        let text = "0-3,8-11,16";
        assert_eq!(format_cpulist(&parse_cpulist(text).unwrap()), text);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(ParseError::Reversed { start: 3, end: 1 }.to_string(), "CPU range 3-1 runs backwards");
        assert_eq!(ParseError::Empty.to_string(), "empty CPU list");
    }
}
