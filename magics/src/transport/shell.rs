//! Shell words and remote paths: [`quote`] and [`command_line`] turn an
//! argv into one POSIX sh command line whose words arrive verbatim;
//! [`check_abs_path`] and [`split_dir_var`] admit only the paths slurmbook
//! builds on (no whitespace, quotes, `$`, `%`, `~` or globs).
//!
//! A leaf: it imports nothing else of the crate but the error type.

use std::borrow::Cow;

use super::error::{Result, TransportError};

/// Quote one word for a POSIX shell: returned as is when it consists only of
/// characters no shell treats specially, else in single quotes with each `'`
/// written as `'\''`.
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        let mut s = String::with_capacity(word.len() + 2);
        s.push('\'');
        for c in word.chars() {
            if c == '\'' {
                s.push_str("'\\''");
            } else {
                s.push(c);
            }
        }
        s.push('\'');
        Cow::Owned(s)
    }
}

/// One command line from an argv, every word quoted. Rejects NUL bytes,
/// which no argv can carry.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> Result<String> {
    if argv.is_empty() {
        return Err(TransportError::BadArgument("empty command".into()));
    }
    let mut line = String::new();
    for (i, a) in argv.iter().enumerate() {
        let a = a.as_ref();
        if a.contains('\0') {
            return Err(TransportError::BadArgument(format!(
                "argument {i} contains a NUL byte"
            )));
        }
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&quote(a));
    }
    Ok(line)
}

/// The words of an owned argv, for [`super::Transport::run`] and friends.
pub fn words<S: AsRef<str>>(argv: &[S]) -> Vec<&str> {
    argv.iter().map(AsRef::as_ref).collect()
}

/// True for characters allowed in remote paths slurmbook builds on: no
/// whitespace, quotes, `$`, `%` (sbatch's filename patterns), `~` or globs.
pub fn is_safe_path(p: &str) -> bool {
    p.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
}

/// An absolute remote path made only of [`is_safe_path`] characters.
pub fn check_abs_path(p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(TransportError::BadPath {
            path: p.into(),
            why: "not absolute (expand `$SCRATCH`/`$HOME`/`~` with Remote::expand_dir first)"
                .into(),
        });
    }
    if !is_safe_path(p) {
        return Err(TransportError::BadPath {
            path: p.into(),
            why: "only letters, digits and `_./-` are allowed".into(),
        });
    }
    Ok(())
}

/// Split a leading `$HOME`/`${HOME}`/`$SCRATCH`/`${SCRATCH}`/`~` off `dir`.
/// A relative path is relative to `$HOME`. The remainder is validated.
pub fn split_dir_var(dir: &str) -> Result<(Option<&'static str>, &str)> {
    let bad = |why: &str| TransportError::BadPath {
        path: dir.into(),
        why: why.into(),
    };
    let candidates: [(&str, &'static str); 5] = [
        ("${HOME}", "HOME"),
        ("$HOME", "HOME"),
        ("${SCRATCH}", "SCRATCH"),
        ("$SCRATCH", "SCRATCH"),
        ("~", "HOME"),
    ];
    let mut found = None;
    for (prefix, var) in candidates {
        if let Some(rest) = dir.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                found = Some((var, rest.trim_start_matches('/')));
                break;
            }
        }
    }
    let (var, rest) = match found {
        Some((v, r)) => (Some(v), r),
        None if dir.starts_with('/') => (None, dir),
        None if dir.starts_with('$') || dir.starts_with('~') => {
            return Err(bad(
                "only a leading $HOME, $SCRATCH or ~ is expanded (~user is not)",
            ))
        }
        None if dir.is_empty() => return Err(bad("empty")),
        None => (Some("HOME"), dir),
    };
    if !is_safe_path(rest) {
        return Err(bad(
            "after a leading $HOME/$SCRATCH/~ only letters, digits and `_./-` are allowed",
        ));
    }
    Ok((var, rest))
}

/// Collapse `//` and trailing `/` (keeps `/` itself).
pub fn normalize(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for part in p.split('/').filter(|x| !x.is_empty() && *x != ".") {
        s.push('/');
        s.push_str(part);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The directory `dir` names once its variable (see [`split_dir_var`]) is
/// `value` on the cluster: absolute, normalized and checked.
pub fn join_dir_var(dir: &str, var: &str, value: &str, rest: &str) -> Result<String> {
    let full = format!("{}/{}", value.trim_end_matches('/'), rest);
    if let Err(TransportError::BadPath { why, .. }) = check_abs_path(&full) {
        return Err(TransportError::BadPath {
            path: dir.into(),
            why: format!("${var} is `{value}` on the cluster, which is unusable: {why}"),
        });
    }
    Ok(normalize(&full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_verbatim_for_sh() {
        assert_eq!(quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(touch /tmp/x)"), "'$(touch /tmp/x)'");
        assert_eq!(quote("`id`"), "'`id`'");
        assert_eq!(quote("~"), "'~'");
        assert!(command_line(&["a\0b"]).is_err());
        assert!(command_line::<&str>(&[]).is_err());
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let words = [
            "plain",
            "with space",
            "it's",
            "$(touch /tmp/slurmbook-quote-test)",
            "`id`",
            "a\nb",
            "\"dq\" \\ back",
            "*",
            "~",
            "",
            "ünïcode",
        ];
        let line = command_line(&words).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut expect: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        expect.push(String::new()); // after the last NUL
        assert_eq!(got, expect);
        assert!(!std::path::Path::new("/tmp/slurmbook-quote-test").exists());
    }

    #[test]
    fn dir_variables() {
        assert_eq!(
            split_dir_var("$SCRATCH/slurmbook").unwrap(),
            (Some("SCRATCH"), "slurmbook")
        );
        assert_eq!(split_dir_var("${HOME}").unwrap(), (Some("HOME"), ""));
        assert_eq!(split_dir_var("~/x/y").unwrap(), (Some("HOME"), "x/y"));
        assert_eq!(split_dir_var("rel/dir").unwrap(), (Some("HOME"), "rel/dir"));
        assert_eq!(split_dir_var("/abs/dir").unwrap(), (None, "/abs/dir"));
        for bad in [
            "$SCRATCHX/a",
            "$SCRATCH/a b",
            "$SCRATCH/$(id)",
            "~root/x",
            "$OTHER/x",
            "/a;b",
            "/x/%j",
            "",
        ] {
            assert!(split_dir_var(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize("/a//b/./c/"), "/a/b/c");
    }
}
