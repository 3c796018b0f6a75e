//! CWE-732 (incorrect permission assignment), an opt-in family of [`super::vuln`]: a file
//! made writable by every user. Judged by rule only where the mode is a literal or a union
//! of `stat` constants:
//!
//! - `os.chmod`/`os.lchmod`/`os.fchmod(target, mode)` and `Path.chmod(mode)` with the
//!   others-write bit (`0o777`, `0o666`, `stat.S_IWOTH`, `stat.S_IRWXO`);
//! - `os.umask(mask)` whose mask leaves others-write on (`os.umask(0)`).
//!
//! The modes of `os.mkdir`, `os.makedirs` and `os.open` are left alone: they are filtered
//! by the umask, and `0o777` is their default. A mode computed at run time is not judged.

use regex::Regex;
use std::sync::OnceLock;

/// The others-write bit (`stat.S_IWOTH`).
const OTHERS_WRITE: u32 = 0o002;

fn call_re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // Constants of this file, covered by the unit tests.
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern: {e}")))
}

/// The top-level arguments of the first call matching `call` in `line` (without the
/// closing parenthesis), split at commas outside brackets and strings.
fn call_args(line: &str, call: &Regex) -> Option<Vec<String>> {
    let m = call.find(line)?;
    let rest = &line[m.end()..];
    let mut args = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote, mut prev) = (0i32, None::<char>, '\0');
    for c in rest.chars() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if "([{".contains(c) => depth += 1,
            None if ")]}".contains(c) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            None if c == ',' && depth == 0 => {
                args.push(std::mem::take(&mut cur).trim().to_string());
                prev = c;
                continue;
            }
            None => {}
        }
        cur.push(c);
        prev = c;
    }
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    Some(args)
}

/// Argument `index` or keyword `kw` of a call.
fn arg(args: &[String], index: usize, kw: &str) -> Option<String> {
    let keyword = args.iter().find_map(|a| {
        let (k, v) = a.split_once('=')?;
        (k.trim() == kw).then(|| v.trim().to_string())
    });
    keyword.or_else(|| args.get(index).filter(|a| !a.contains('=')).cloned())
}

/// The value of a mode made of integer literals and `stat` constants joined by `|`;
/// `None` when any part is something else (a variable, arithmetic).
fn mode_value(expr: &str) -> Option<u32> {
    expr.split('|').try_fold(0u32, |acc, part| {
        let p = part
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let p = p.strip_prefix("stat.").unwrap_or(p);
        let v = match p {
            "S_IRWXU" => 0o700,
            "S_IRUSR" => 0o400,
            "S_IWUSR" => 0o200,
            "S_IXUSR" => 0o100,
            "S_IRWXG" => 0o070,
            "S_IRGRP" => 0o040,
            "S_IWGRP" => 0o020,
            "S_IXGRP" => 0o010,
            "S_IRWXO" => 0o007,
            "S_IROTH" => 0o004,
            "S_IWOTH" => 0o002,
            "S_IXOTH" => 0o001,
            _ => int_literal(p)?,
        };
        Some(acc | v)
    })
}

/// `0o777`, `0777` (Python 2's octal), `0x1ff`, `511`.
fn int_literal(s: &str) -> Option<u32> {
    let s = s.replace('_', "").to_ascii_lowercase();
    if let Some(o) = s.strip_prefix("0o") {
        u32::from_str_radix(o, 8).ok()
    } else if let Some(x) = s.strip_prefix("0x") {
        u32::from_str_radix(x, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

pub(super) fn incorrect_permissions(lines: &[String]) -> bool {
    static OS_CHMOD: OnceLock<Regex> = OnceLock::new();
    static PATH_CHMOD: OnceLock<Regex> = OnceLock::new();
    static UMASK: OnceLock<Regex> = OnceLock::new();
    let os_chmod = call_re(&OS_CHMOD, r"\bos\.(chmod|lchmod|fchmod)\(");
    // `Path(...).chmod(mode)`, `p.chmod(mode)`: a method call not on the `os` module.
    let path_chmod = call_re(&PATH_CHMOD, r"[\w)\]]\.chmod\(");
    let umask = call_re(&UMASK, r"\bos\.umask\(");
    let writable = |mode: Option<String>| {
        mode.and_then(|m| mode_value(&m))
            .is_some_and(|v| v & OTHERS_WRITE != 0)
    };
    lines.iter().any(|l| {
        if let Some(a) = call_args(l, os_chmod) {
            if writable(arg(&a, 1, "mode")) {
                return true;
            }
        } else if let Some(a) = call_args(l, path_chmod) {
            if writable(arg(&a, 0, "mode")) {
                return true;
            }
        }
        call_args(l, umask)
            .and_then(|a| arg(&a, 0, "mask"))
            .and_then(|m| mode_value(&m))
            .is_some_and(|v| v & OTHERS_WRITE == 0)
    })
}

#[cfg(test)]
mod tests {
    use crate::data::vuln::{check, check_families, Cwe};

    fn flagged(code: &str) -> bool {
        check_families(code, &[Cwe::IncorrectPermissions]) == vec![Cwe::IncorrectPermissions]
    }

    #[test]
    fn flags_world_writable_modes() {
        for code in [
            "import os\nos.chmod(path, 0o777)",
            "os.chmod('/srv/data.db', 0o666)",
            "os.chmod(p, 0777)",
            "os.chmod(p, 511)",
            "os.chmod(p, mode=0o757)",
            "os.fchmod(fd, 0o646)",
            "import stat\nos.chmod(p, stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)",
            "os.chmod(p, stat.S_IRUSR | stat.S_IWOTH)",
            "Path(log_file).chmod(0o777)",
            "target.chmod(\n    0o666,\n)",
            "old = os.umask(0)",
            "os.umask(0o000)",
            "os.umask(0o020)",
        ] {
            assert!(flagged(code), "missed: {code}");
        }
    }

    #[test]
    fn leaves_safe_idioms_alone() {
        for code in [
            "os.chmod(path, 0o600)",
            "os.chmod(path, 0o755)",
            "os.chmod(path, 0o640)",
            "os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)",
            "Path(key_file).chmod(0o400)",
            "os.umask(0o022)",
            "os.umask(0o077)",
            // Filtered by the umask: 0o777 is the default.
            "os.makedirs(d, mode=0o777, exist_ok=True)",
            "os.mkdir(d, 0o777)",
            "fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o666)",
            // A mode computed at run time is not judged.
            "os.chmod(p, mode)",
            "os.chmod(p, st.st_mode | stat.S_IEXEC)",
            "# os.chmod(p, 0o777)",
        ] {
            assert!(!flagged(code), "flagged: {code}");
        }
    }

    #[test]
    fn is_not_in_the_default_set() {
        // `check` (what the eval uses) keeps the six families: existing results keep their bits.
        assert_eq!(check("os.chmod(p, 0o777)"), vec![]);
        assert!(!Cwe::ALL.contains(&Cwe::IncorrectPermissions));
        assert_eq!(Cwe::IncorrectPermissions.name(), "CWE-732");
    }
}
