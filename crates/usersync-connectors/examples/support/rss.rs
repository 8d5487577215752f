//! Peak memory of the running benchmark, shared by the example binaries.

/// Peak resident set size of the process (`VmHWM` from `/proc/self/status`), e.g. `123456 kB`.
pub fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "?".into())
}
