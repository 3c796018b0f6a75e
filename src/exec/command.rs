//! Running a scheduler command (`sbatch`, `squeue`, `scancel`, ...) with a time limit: a
//! controller that does not answer must fail one poll, never hang the driver.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one scheduler command may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion and returns its output, or an error when it cannot start or
/// runs longer than `timeout` (then it is killed).
pub fn output(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{name}`: {e}"))?;
    // Read both pipes while waiting, so a chatty command never blocks on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{name}` did not answer within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for `{name}`: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_overruns_is_killed() {
        let e = output(Command::new("sleep").arg("10"), Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        let o = output(Command::new("echo").arg("hi"), COMMAND_TIMEOUT).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    }
}
