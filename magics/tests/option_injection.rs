//! Every `%%asset` option and every configuration key, given shell
//! metacharacters: each either refuses the value, naming itself, or is on a
//! reviewed list of options whose values never reach a shell as text (and
//! there only with the characters its own syntax needs). A new option that
//! accepts such a value fails here until it is reviewed.

use slurmbook_magics::config;
use slurmbook_magics::plan::SbatchRequest;
use slurmbook_magics::syntax::args::split_words;
use slurmbook_magics::syntax::options::{parse_asset_options, OptionError, ASSET_OPTIONS};
use slurmbook_magics::AssetOptions;

/// Shell metacharacters and option look-alikes, each as an attacker would
/// write it in a value.
const PAYLOADS: &[&str] = &[
    "$(touch /tmp/sb-pwned)",
    "`touch /tmp/sb-pwned`",
    "a;touch /tmp/sb-pwned",
    "a|b",
    "a&b",
    "a b",
    "a'b",
    "a>b",
    "a<b",
    "$HOME",
    "${HOME}",
    "a\\b",
    "a*",
    "a?",
    "~root",
    "--evil",
    "-x",
    "a\nb",
    "a\tb",
    "a#b",
    "/tmp/$(id)",
    "/tmp/a b",
];

/// `%%asset` options that accept some of [`PAYLOADS`], and which: Slurm's
/// constraint syntax needs `|`, `&` and `*` (it reaches Slurm only as an
/// `#SBATCH` directive, which no shell reads; checked below).
const ASSET_ALLOWED: &[(&str, &[&str])] = &[("constraint", &["a|b", "a&b", "a*"])];

/// Configuration keys that accept some of [`PAYLOADS`], and why that is safe:
/// `identity`, `ssh_config`: local files given to `ssh` as one argv word
/// each (`-i PATH`, `-F PATH`), never to a shell; `notify`: a command split
/// into argv and executed without a shell; `remote_dir`: `$HOME` is a
/// prefix slurmbook itself expands.
const CONFIG_ALLOWED: &[(&str, Option<&[&str]>)] = &[
    ("identity", None),
    ("ssh_config", None),
    ("notify", None),
    ("remote_dir", Some(&["$HOME", "${HOME}"])),
];

fn quoted(value: &str) -> String {
    // The magic line's own quoting: double quotes, no escapes inside.
    if value.contains('"') {
        format!("'{value}'")
    } else {
        format!("\"{value}\"")
    }
}

fn parse_option(name: &str, value: &str) -> Result<AssetOptions, String> {
    let text = format!("--{name}={}", quoted(value));
    let words = split_words(&text, 1).map_err(|e| e.to_string())?;
    parse_asset_options(&words).map_err(|e| {
        match &e {
            OptionError::Invalid { option, .. } => {
                assert_eq!(option, name, "the error names another option: {e}")
            }
            other => panic!("--{name}={value:?}: not a value error: {other}"),
        }
        e.to_string()
    })
}

#[test]
fn every_asset_option_refuses_shell_text_or_is_reviewed() {
    let mut checked = 0;
    for option in ASSET_OPTIONS.iter().filter(|o| o.value.is_some()) {
        let allowed: &[&str] = ASSET_ALLOWED
            .iter()
            .find(|(n, _)| *n == option.name)
            .map_or(&[], |(_, a)| a);
        for payload in PAYLOADS {
            if payload.contains('\n') || payload.contains('\t') {
                // Not writable on one magic line as a value; the splitter
                // itself is fuzzed in properties.rs.
                continue;
            }
            checked += 1;
            match parse_option(option.name, payload) {
                Err(message) => assert!(
                    message.contains(&format!("--{}", option.name)),
                    "--{}: the error does not name the option: {message}",
                    option.name
                ),
                Ok(options) => {
                    assert!(
                        allowed.contains(payload),
                        "--{}={payload:?} is accepted: review where this option's value goes and refuse it, or list it in ASSET_ALLOWED with why it is safe",
                        option.name
                    );
                    // What is accepted reaches Slurm only as one directive line.
                    let sbatch = SbatchRequest::for_asset(&options, &AssetOptions::default());
                    let directives = sbatch.directives().expect("accepted values render");
                    assert_eq!(
                        directives,
                        format!("#SBATCH --{}={payload}\n", option.name),
                        "--{}",
                        option.name
                    );
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} cases");
}

#[test]
fn every_flag_and_toggle_refuses_any_value_but_true_or_false() {
    let mut checked = 0;
    for option in ASSET_OPTIONS.iter().filter(|o| o.value.is_none()) {
        let mut names = vec![option.name.to_string()];
        if option.negatable {
            names.push(format!("no-{}", option.name));
        }
        for name in &names {
            for payload in PAYLOADS.iter().filter(|p| !p.contains(['\n', '\t'])) {
                checked += 1;
                let text = format!("--{name}={}", quoted(payload));
                let words = split_words(&text, 1).unwrap();
                match parse_asset_options(&words) {
                    Err(e @ OptionError::Invalid { .. }) => {
                        assert!(e.to_string().contains(&format!("`--{name}`")), "{e}")
                    }
                    other => panic!("--{name}={payload:?}: {other:?}"),
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} cases");
}

#[test]
fn every_configuration_key_refuses_shell_text_or_is_reviewed() {
    let mut checked = 0;
    for key in config::keys() {
        let allowed = CONFIG_ALLOWED.iter().find(|(n, _)| *n == key.name);
        let asset_allowed: &[&str] = ASSET_ALLOWED
            .iter()
            .find(|(n, _)| *n == key.name)
            .map_or(&[], |(_, a)| a);
        for payload in PAYLOADS {
            checked += 1;
            match config::validate(key.name, payload) {
                Err(e) => assert!(
                    e.to_string().contains(key.name),
                    "{}: the error does not name the key: {e}",
                    key.name
                ),
                Ok(()) => {
                    let ok = asset_allowed.contains(payload)
                        || match allowed {
                            Some((_, None)) => true,
                            Some((_, Some(values))) => values.contains(payload),
                            None => false,
                        };
                    assert!(
                        ok,
                        "{}={payload:?} is accepted: review where this key's value goes and refuse it, or list it in CONFIG_ALLOWED with why it is safe",
                        key.name
                    );
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} cases");
}
