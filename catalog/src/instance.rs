//! Which process this is, for the rows it holds in a shared state store (idempotency keys,
//! pipeline leases), and whether the process holding such a row is gone.

use std::sync::OnceLock;

/// This machine's name, as the kernel has it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// This process's holder name, `host:pid:id`, the same for its whole life. The random id
/// tells this process from an earlier one that had the same pid (after a restart in a
/// container, the hub is often pid 1 again).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        format!(
            "{}:{}:{}",
            host_name(),
            std::process::id(),
            uuid::Uuid::new_v4()
        )
    })
}

/// Whether a holder (`host:pid:id`) is a process of this host that no longer exists. A
/// holder of another host, or one that cannot be read, is not known to be gone: its lease
/// decides.
pub fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a holder of process-wide rows (named by [`instance_id`]) is gone: a process of
/// this host that no longer exists, or an earlier process with this process's pid.
pub fn instance_is_gone(holder: &str) -> bool {
    if holder == instance_id() {
        return false;
    }
    let mine = instance_id();
    let same_process = |name: &str| {
        name.rsplit_once(':')
            .map(|(process, _)| process.to_string())
    };
    if same_process(holder).is_some() && same_process(holder) == same_process(mine) {
        return true;
    }
    holder_is_gone(holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_only_when_its_process_on_this_host_is() {
        let me = format!("{}:{}:x", host_name(), std::process::id());
        assert!(!holder_is_gone(&me));
        assert!(!holder_is_gone("another-host:1:x"));
        assert!(holder_is_gone(&format!("{}:4294967294:x", host_name())));
        assert!(!holder_is_gone("garbage"));
    }

    #[test]
    fn an_earlier_process_with_this_pid_is_gone_and_this_one_is_not() {
        assert!(!instance_is_gone(instance_id()));
        let earlier = format!("{}:{}:earlier", host_name(), std::process::id());
        assert!(instance_is_gone(&earlier));
        assert!(!instance_is_gone("another-host:1:x"));
    }
}
