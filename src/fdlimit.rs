//! The process's file-descriptor limit. systemd (and several container
//! runtimes) start services with a soft `RLIMIT_NOFILE` of 1,024 for the
//! sake of old `select(2)` code and a much higher hard limit; claudit uses
//! epoll, so, as servers commonly do, it raises the soft limit to the hard
//! one at start-up. Every socket to the API and the destinations, every
//! SQLite connection and every file needs one, and the operations endpoint
//! takes its share from this figure (`server::connection_cap`).

/// The descriptor limit at start-up, and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    pub hard: u64,
}

/// The soft limit a process may set when the hard one is unlimited: the
/// kernel's `fs.nr_open` (1,048,576 by default).
fn kernel_ceiling() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

fn get() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises the soft descriptor limit to the hard one. Makes no system call
/// when they are equal already (a unit's `LimitNOFILE=`), so a system-call
/// filter that forbids `setrlimit` is not tripped. On failure the limit is
/// unchanged and the error says why.
pub fn raise_to_hard_limit() -> Result<DescriptorLimit, (DescriptorLimit, std::io::Error)> {
    let current = match get() {
        Ok(l) => l,
        Err(e) => {
            let unknown = DescriptorLimit {
                before: 0,
                soft: 0,
                hard: 0,
            };
            return Err((unknown, e));
        }
    };
    let hard = if current.rlim_max == libc::RLIM_INFINITY {
        kernel_ceiling()
    } else {
        current.rlim_max
    };
    let unchanged = DescriptorLimit {
        before: current.rlim_cur,
        soft: current.rlim_cur,
        hard,
    };
    if current.rlim_cur >= hard {
        return Ok(unchanged);
    }
    let raised = libc::rlimit {
        rlim_cur: hard,
        rlim_max: current.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err((unchanged, std::io::Error::last_os_error()));
    }
    Ok(DescriptorLimit {
        before: current.rlim_cur,
        soft: hard,
        hard,
    })
}
