//! Percentiles of a run, and what a process used (CPU time, resident memory).

use serde::Serialize;

use crate::load::Sample;

/// The percentiles reported, as fractions.
pub const QUANTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

/// Latency percentiles in microseconds, in the order of [`QUANTILES`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p999: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (nanoseconds), in microseconds.
    pub fn of(mut values: Vec<u64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    /// The values in the order of [`QUANTILES`].
    pub fn values(&self) -> [f64; 4] {
        [self.p50, self.p90, self.p99, self.p999]
    }

    /// `self - other`, percentile by percentile.
    pub fn minus(&self, other: &Percentiles) -> Percentiles {
        Percentiles {
            p50: self.p50 - other.p50,
            p90: self.p90 - other.p90,
            p99: self.p99 - other.p99,
            p999: self.p999 - other.p999,
        }
    }
}

/// What one path did in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// `direct`, `proxy` or `host`.
    pub path: String,
    /// Requests measured.
    pub requests: usize,
    /// Share answered completely with a 200.
    pub success_ratio: f64,
    /// Latency to the last byte, µs, from the intended send time.
    pub latency_us: Percentiles,
    /// Latency to the first body bytes (first chunk of a stream), µs.
    pub first_chunk_us: Percentiles,
    /// CPU time of the server process (host or proxy) per request, µs; for `direct`
    /// the host's idle CPU over the same time, per request.
    pub server_cpu_us_per_request: Option<f64>,
    /// CPU time of the host's worker processes per request, µs (the `isolated` path:
    /// `"isolation": "process"`); `None` on the other paths.
    pub worker_cpu_us_per_request: Option<f64>,
    /// CPU time of the bench process (load generator and fake) per request, µs.
    pub bench_cpu_us_per_request: f64,
    /// The worst lateness of the load generator's sends, µs.
    pub worst_send_lag_us: f64,
}

impl PathResult {
    /// Summarises the samples of one path.
    pub fn new(path: &str, samples: &[Sample]) -> PathResult {
        let ok = samples.iter().filter(|s| s.ok).count();
        PathResult {
            path: path.to_owned(),
            requests: samples.len(),
            success_ratio: if samples.is_empty() {
                0.0
            } else {
                ok as f64 / samples.len() as f64
            },
            latency_us: Percentiles::of(samples.iter().map(|s| s.done).collect()),
            first_chunk_us: Percentiles::of(samples.iter().map(|s| s.first).collect()),
            server_cpu_us_per_request: None,
            worker_cpu_us_per_request: None,
            bench_cpu_us_per_request: 0.0,
            worst_send_lag_us: 0.0,
        }
    }
}

/// CPU time (user + system) of a process so far, in microseconds, from
/// `/proc/<pid>/stat` (clock ticks, 10 ms each on Linux).
pub fn cpu_us(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) * 1e6 / hz)
}

/// CPU time of a process's running children (the host's plugin workers) so far, in
/// microseconds: [`cpu_us`] of each pid in `/proc/<pid>/task/*/children`.
pub fn children_cpu_us(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter_map(cpu_us)
        .sum()
}

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=1000).map(|v| v * 1000).collect());
        assert_eq!(p.values(), [500.0, 900.0, 990.0, 999.0]);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_us(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
    }
}
