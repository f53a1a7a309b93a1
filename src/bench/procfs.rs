//! Readings of another process from `/proc` (Linux): resident memory and CPU time. The bench
//! measures the daemon as a separate process, so these are the operator's view (what `top` and
//! systemd's `MemoryPeak` would show), not allocator statistics.

use std::time::Duration;

/// Memory of a process, in KiB, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` when the process is gone or the file is unreadable.
pub fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// Parses the `VmRSS` / `VmHWM` lines of a `/proc/PID/status` text.
fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// CPU time (user + system) consumed so far by `pid`, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// CPU time (user + system) consumed so far by every live process named `comm` (for example
/// all `postgres` backends). Processes that exited in between are not counted, so use it over
/// a window in which the processes of interest stay alive (pooled connections do).
pub fn cpu_time_of_command(comm: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let is_it = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == comm);
        if is_it && let Some(t) = cpu_time(pid) {
            total += t;
        }
    }
    total
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 -> index 11, stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let text = "Name:\tretailcrm-sync\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 40000,
                peak_kib: 51234
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 10 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let mem = memory(me).expect("own /proc status");
        assert!(mem.peak_kib >= mem.rss_kib && mem.rss_kib > 0);
        assert!(cpu_time(me).is_some());
    }
}
