//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …, as the official client libraries name them), read from
//! Linux's `/proc/self` at scrape time. Parsing is pure ([`Process::parse`]); reading the files is
//! the edge ([`Process::read`]). Elsewhere than Linux there are none.

/// Linux reports `/proc/<pid>/stat` times in USER_HZ ticks, which the kernel ABI fixes at 100.
const TICKS_PER_SECOND: f64 = 100.0;

/// One scrape's worth of process facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

impl Process {
    /// Reads `/proc/self/{stat,status,limits,fd}` and `/proc/stat`; `None` when any is missing or
    /// unparsable (not Linux), so `/metrics` leaves the family out rather than report zeros.
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let system = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Process::parse(&stat, &status, &system, &limits, open_fds)
    }

    /// `stat`: `/proc/self/stat`; `status`: `/proc/self/status`; `system`: `/proc/stat` (for the
    /// boot time); `limits`: `/proc/self/limits`.
    pub fn parse(
        stat: &str,
        status: &str,
        system: &str,
        limits: &str,
        open_fds: u64,
    ) -> Option<Process> {
        // The command name (field 2) is in parentheses and may hold spaces: split after it.
        let (_, rest) = stat.rsplit_once(')')?;
        // `rest` starts at field 3 (state): field n is rest[n - 3].
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let ticks = field(14)? + field(15)?;
        let start_ticks = field(22)?;
        let virtual_bytes = field(23)?;
        let resident_kib: u64 = kib(status, "VmRSS:")?;
        let boot: u64 = system
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
        let max_fds = limits.lines().find_map(|l| {
            l.strip_prefix("Max open files")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Some(Process {
            cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
            resident_bytes: resident_kib * 1024,
            virtual_bytes,
            start_time_seconds: boot as f64 + start_ticks as f64 / TICKS_PER_SECOND,
            open_fds,
            max_fds,
        })
    }
}

/// `Name:   1234 kB` in `/proc/self/status`.
fn kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (config pusher) S 1 4242 4242 0 -1 4194560 2301 0 0 0 \
        150 25 0 0 20 0 9 0 123456 987654321 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    const STATUS: &str =
        "Name:\tconfig-pusher\nVmPeak:\t  999 kB\nVmRSS:\t   12288 kB\nThreads:\t9\n";
    const SYSTEM: &str = "cpu  1 2 3 4\nbtime 1700000000\nprocesses 10\n";
    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max open files            1024                 524288               files     \n";

    #[test]
    fn proc_files_parse_into_the_standard_metrics() {
        let p = Process::parse(STAT, STATUS, SYSTEM, LIMITS, 12).unwrap();
        assert_eq!(
            p,
            Process {
                cpu_seconds: 1.75,
                resident_bytes: 12288 * 1024,
                virtual_bytes: 987654321,
                start_time_seconds: 1700000000.0 + 1234.56,
                open_fds: 12,
                max_fds: Some(1024),
            }
        );
    }

    #[test]
    fn missing_facts_make_no_metrics() {
        assert_eq!(
            Process::parse("4242 (x) S 1", STATUS, SYSTEM, LIMITS, 1),
            None
        );
        assert_eq!(Process::parse(STAT, "Name: x\n", SYSTEM, LIMITS, 1), None);
        assert_eq!(Process::parse(STAT, STATUS, "cpu 1\n", LIMITS, 1), None);
        assert_eq!(
            Process::parse(STAT, STATUS, SYSTEM, "", 1).unwrap().max_fds,
            None
        );
    }

    #[test]
    fn this_process_reads_on_linux() {
        if cfg!(target_os = "linux") {
            let p = Process::read().unwrap();
            assert!(p.resident_bytes > 0 && p.open_fds > 0 && p.start_time_seconds > 1.6e9);
        }
    }
}
