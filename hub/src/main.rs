//! `simpul`: the Purwakarta regency data hub.

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|first| first == simpul_connectors::file::SPREADSHEET_CHILD_COMMAND)
    {
        // The hub started itself to read one spreadsheet under limits (see the sandbox in
        // `simpul_connectors::file`); nothing else runs in this process.
        return simpul_connectors::file::run_spreadsheet_child(args);
    }
    simpul_hub::cli::main()
}

/// Lets glibc's allocator keep what it frees for reuse instead of handing it straight back
/// to the kernel. Its default trims the heap as soon as 128 KiB at the top are free and
/// maps blocks of 128 KiB and more one by one (raising both limits only after the fact),
/// so the Parquet encoder's page buffers of about 1 MiB, allocated and freed for every
/// page, were faulted in afresh each time: page faults and cross-core TLB flushes were a
/// tenth of an ingest's CPU. Blocks up to 4 MiB now come from the heap, and a heap keeps up
/// to 32 MiB free at its top, both within the bounds glibc's own adaptive limits reach.
/// `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` in the environment win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let settings = [
        (libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 4 << 20),
        (libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 32 << 20),
    ];
    for (parameter, variable, bytes) in settings {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mallopt` only changes allocator parameters, and this runs first in
            // `main`, before any other thread exists.
            unsafe {
                libc::mallopt(parameter, bytes);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
