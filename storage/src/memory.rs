//! How much memory this process may actually use, for sizing in-memory budgets.
//!
//! In a container (ECS Fargate, Docker, Kubernetes) the limit is the cgroup's, not the host's:
//! a 1 GiB Fargate task runs on a host with far more physical memory, and exceeding the cgroup
//! limit gets the process OOM-killed. The limit is the smallest of:
//!
//! * cgroup v2: `memory.max` of the process's cgroup and of each ancestor (`max` = none);
//! * cgroup v1: `memory.limit_in_bytes` of the memory controller's cgroup and its ancestors
//!   (a huge value, page-rounded `i64::MAX`, = none);
//! * physical memory (`MemTotal` of `/proc/meminfo`).
//!
//! The cgroup path comes from `/proc/self/cgroup`; with a private cgroup namespace (the Docker
//! and Fargate default on cgroup v2) it is `/` and `/sys/fs/cgroup` is the container's own
//! cgroup. Parsing is split from reading so it is unit-tested without a container.

use std::path::{Path, PathBuf};

/// Values at or above this mean "no limit" in cgroup v1 (`9223372036854771712` on 4 KiB pages).
const CGROUP_V1_UNLIMITED: u64 = 1 << 62;

/// Memory this process may use, in bytes: the tightest cgroup limit (v2 or v1) on the path of
/// this process, else physical memory. `None` when nothing can be read (not Linux, no /proc).
pub fn process_memory_limit_bytes() -> Option<u64> {
    let proc_self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    memory_limit_in(
        Path::new("/sys/fs/cgroup"),
        &proc_self_cgroup,
        &meminfo,
        |p| std::fs::read_to_string(p).ok(),
    )
}

/// Give memory the process has freed back to the operating system, where the allocator holds
/// on to it (glibc keeps freed heap pages mapped, so a dropped index would not lower RSS).
/// Walks the heap: call it after freeing a lot, not per allocation. A no-op elsewhere.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of glibc's own heap to the kernel; it
    // takes no pointers and is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Cap glibc's malloc arenas at `arenas` unless `MALLOC_ARENA_MAX` is set. glibc gives each
/// thread that contends for the heap its own arena (up to 8 per core), and memory freed on one
/// thread stays in that thread's arena: with rayon, tokio and reader threads sharing batches,
/// RSS ends up several times the live heap. Call first thing in `main`, before any thread
/// starts (arenas already created stay). A no-op elsewhere.
pub fn limit_malloc_arenas(arenas: i32) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; called before other threads
    // exist, it races with no allocation.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// The dedupe key-index budget (MiB) a process with `limit_bytes` of memory should default to:
/// 40 % of it (the rest is for Arrow batches, Parquet encoding, object-store buffers and the
/// rejected table's index), at least 64 MiB; 1024 MiB when the limit is unknown. Terraform
/// passes the same 40 % of the task memory explicitly (`WRITER_DEDUPE_MEMORY_MB`).
pub fn default_dedupe_memory_mb(limit_bytes: Option<u64>) -> usize {
    match limit_bytes {
        None => 1024,
        Some(bytes) => ((bytes >> 20) * 2 / 5).max(64) as usize,
    }
}

/// [`process_memory_limit_bytes`] over a given cgroup mount, `/proc/self/cgroup` and
/// `/proc/meminfo` text, and file reader (for tests).
pub fn memory_limit_in(
    cgroup_root: &Path,
    proc_self_cgroup: &str,
    meminfo: &str,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<u64> {
    let physical = parse_meminfo_total(meminfo);
    let mut limits: Vec<u64> = physical.into_iter().collect();
    let paths = parse_proc_self_cgroup(proc_self_cgroup);
    if let Some(v2) = &paths.v2 {
        for dir in ancestors(cgroup_root, v2) {
            if let Some(l) = read(&dir.join("memory.max")).and_then(|s| parse_cgroup_v2_max(&s)) {
                limits.push(l);
            }
        }
    }
    if let Some(v1) = &paths.v1_memory {
        for dir in ancestors(&cgroup_root.join("memory"), v1) {
            if let Some(l) =
                read(&dir.join("memory.limit_in_bytes")).and_then(|s| parse_cgroup_v1_limit(&s))
            {
                limits.push(l);
            }
        }
    }
    limits.into_iter().min()
}

/// The process's cgroup paths, from `/proc/self/cgroup`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    /// Unified hierarchy (`0::/path`).
    pub v2: Option<String>,
    /// v1 memory controller (`N:memory:/path`, possibly with other controllers: `N:cpu,memory:`).
    pub v1_memory: Option<String>,
}

pub fn parse_proc_self_cgroup(text: &str) -> CgroupPaths {
    let mut out = CgroupPaths::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            out.v1_memory = Some(path.to_string());
        }
    }
    out
}

/// cgroup v2 `memory.max`: bytes, or `max` for no limit.
pub fn parse_cgroup_v2_max(text: &str) -> Option<u64> {
    match text.trim() {
        "max" | "" => None,
        v => v.parse().ok(),
    }
}

/// cgroup v1 `memory.limit_in_bytes`: bytes; values near `i64::MAX` (or `-1`) mean no limit.
pub fn parse_cgroup_v1_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < CGROUP_V1_UNLIMITED).then_some(v)
}

/// `MemTotal` of `/proc/meminfo` in bytes (the file gives kB).
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut fields = rest.split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// `root/a/b/c`, `root/a/b`, `root/a`, `root` for the cgroup path `/a/b/c` (never leaving root).
fn ancestors(root: &Path, cgroup_path: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = cgroup_path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    (0..=parts.len())
        .rev()
        .map(|n| parts[..n].iter().fold(root.to_path_buf(), |p, c| p.join(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MEMINFO_16G: &str = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n";

    fn reader(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect();
        move |p: &Path| files.get(p).cloned()
    }

    #[test]
    fn v2_max_parsing() {
        assert_eq!(parse_cgroup_v2_max("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_cgroup_v2_max("max\n"), None);
        assert_eq!(parse_cgroup_v2_max(""), None);
        assert_eq!(parse_cgroup_v2_max("garbage"), None);
    }

    #[test]
    fn v1_limit_parsing() {
        assert_eq!(parse_cgroup_v1_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_v1_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_v1_limit("-1"), None);
    }

    #[test]
    fn meminfo_parsing() {
        assert_eq!(parse_meminfo_total(MEMINFO_16G), Some(16_384_000 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: 12 MB\n"), None);
    }

    #[test]
    fn proc_self_cgroup_parsing() {
        assert_eq!(
            parse_proc_self_cgroup("0::/ecs/task-1/container-2\n"),
            CgroupPaths {
                v2: Some("/ecs/task-1/container-2".into()),
                v1_memory: None
            }
        );
        let v1 = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(
            parse_proc_self_cgroup(v1),
            CgroupPaths {
                v2: None,
                v1_memory: Some("/docker/abc".into())
            }
        );
        assert_eq!(parse_proc_self_cgroup("garbage\n"), CgroupPaths::default());
    }

    #[test]
    fn v2_container_with_private_namespace() {
        // Fargate / Docker on cgroup v2: the process sees its own cgroup as /.
        let read = reader(&[("/sys/fs/cgroup/memory.max", "1073741824\n")]);
        let limit = memory_limit_in(Path::new("/sys/fs/cgroup"), "0::/\n", MEMINFO_16G, read);
        assert_eq!(limit, Some(1 << 30));
    }

    #[test]
    fn v2_tightest_ancestor_wins() {
        // The task's limit is on a parent of the container's cgroup.
        let read = reader(&[
            ("/sys/fs/cgroup/ecs/task/memory.max", "2147483648\n"),
            ("/sys/fs/cgroup/ecs/task/app/memory.max", "max\n"),
        ]);
        let limit = memory_limit_in(
            Path::new("/sys/fs/cgroup"),
            "0::/ecs/task/app\n",
            MEMINFO_16G,
            read,
        );
        assert_eq!(limit, Some(2 << 30));
    }

    #[test]
    fn v1_memory_controller() {
        let read = reader(&[(
            "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "536870912\n",
        )]);
        let limit = memory_limit_in(
            Path::new("/sys/fs/cgroup"),
            "9:memory:/docker/abc\n",
            MEMINFO_16G,
            read,
        );
        assert_eq!(limit, Some(512 << 20));
    }

    #[test]
    fn no_cgroup_limit_means_physical_memory() {
        let read = reader(&[
            ("/sys/fs/cgroup/memory.max", "max\n"),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        let limit = memory_limit_in(
            Path::new("/sys/fs/cgroup"),
            "0::/\n5:memory:/\n",
            MEMINFO_16G,
            read,
        );
        assert_eq!(limit, Some(16_384_000 * 1024));
    }

    #[test]
    fn a_limit_above_physical_memory_is_capped() {
        let read = reader(&[("/sys/fs/cgroup/memory.max", "1099511627776\n")]);
        let limit = memory_limit_in(Path::new("/sys/fs/cgroup"), "0::/\n", MEMINFO_16G, read);
        assert_eq!(limit, Some(16_384_000 * 1024));
    }

    #[test]
    fn nothing_readable() {
        assert_eq!(
            memory_limit_in(Path::new("/nonexistent"), "", "", |_| None),
            None
        );
    }

    #[test]
    fn ancestors_never_leave_the_root() {
        assert_eq!(
            ancestors(Path::new("/r"), "/a/../b"),
            vec![
                PathBuf::from("/r/a/b"),
                PathBuf::from("/r/a"),
                PathBuf::from("/r")
            ]
        );
    }

    #[test]
    fn default_budget_is_40_percent() {
        assert_eq!(default_dedupe_memory_mb(Some(1 << 30)), 409);
        assert_eq!(default_dedupe_memory_mb(Some(2 << 30)), 819);
        assert_eq!(default_dedupe_memory_mb(Some(100 << 20)), 64);
        assert_eq!(default_dedupe_memory_mb(None), 1024);
    }

    #[test]
    fn this_process_has_a_limit() {
        // On Linux there is always at least MemTotal.
        if cfg!(target_os = "linux") {
            assert!(process_memory_limit_bytes().is_some_and(|b| b > 0));
        }
    }
}
