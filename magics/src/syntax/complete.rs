//! Completion of magic lines, from the same declarations the parsers read:
//! magic names, the options of `%%asset` and `%materialize` (and the fixed
//! choices of their values), `%config` keys and values, `%help` topics.

use super::magic::{cell_magic_names, help_topics, magic_info, magic_names};
use super::options::{OptionInfo, ASSET_OPTIONS};
use crate::config;

/// What to offer at the end of a magic line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Replace the line from byte `start` on with one of `words`.
    Words { start: usize, words: Vec<String> },
    /// Asset names starting with the line's text from byte `start` on (the
    /// project knows them).
    Assets { start: usize },
}

/// Completion of `line` (the text from the line's start to the cursor);
/// `None` when it is not a magic line (nothing to offer is an empty list).
pub fn complete_line(line: &str) -> Option<Completion> {
    let word_start = line
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &line[word_start..];
    let words = |candidates: Vec<String>| Completion::Words {
        start: word_start,
        words: candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .collect(),
    };
    if let Some(rest) = line.strip_prefix("%%") {
        if word_start == 0 {
            return Some(words(prefixed("%%", cell_magic_names())));
        }
        let name = rest.split_whitespace().next().unwrap_or("");
        let options = if name == "asset" && word.starts_with('-') {
            option_words(ASSET_OPTIONS, word)
        } else {
            Vec::new()
        };
        return Some(words(options));
    }
    let rest = line.strip_prefix('%')?;
    if word_start == 0 {
        return Some(words(prefixed("%", magic_names())));
    }
    let Some(info) = magic_info(rest.split_whitespace().next().unwrap_or("")) else {
        return Some(words(Vec::new()));
    };
    if word.starts_with('-') {
        return Some(words(option_words(info.options, word)));
    }
    Some(words(match info.name {
        "config" => {
            let keys: Vec<&OptionInfo> = config::keys().collect();
            match word.split_once('=') {
                Some((key, _)) => value_words(keys.into_iter().find(|k| k.name == key), key),
                None => keys.iter().map(|k| format!("{}=", k.name)).collect(),
            }
        }
        "help" => help_topics().into_iter().map(String::from).collect(),
        "materialize" | "graph" | "load" | "history" => {
            let start = line
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
                .last()
                .map_or(line.len(), |(i, _)| i);
            return Some(Completion::Assets { start });
        }
        _ => Vec::new(),
    }))
}

fn prefixed(prefix: &str, names: Vec<&str>) -> Vec<String> {
    names.into_iter().map(|n| format!("{prefix}{n}")).collect()
}

/// `--name` for a flag, `--name=` for a valued option; `--name=choice` once
/// the word has the `=`.
fn option_words(options: &[OptionInfo], word: &str) -> Vec<String> {
    match word.split_once('=') {
        Some((name, _)) => {
            let name = name.trim_start_matches('-');
            value_words(
                options.iter().find(|o| o.name == name),
                &format!("--{name}"),
            )
        }
        None => options
            .iter()
            .flat_map(|o| {
                let word = match o.value {
                    Some(_) => format!("--{}=", o.name),
                    None => format!("--{}", o.name),
                };
                let negated = o.negatable.then(|| format!("--no-{}", o.name));
                std::iter::once(word).chain(negated)
            })
            .collect(),
    }
}

/// `lead=choice` for each fixed choice of the option's value.
fn value_words(option: Option<&OptionInfo>, lead: &str) -> Vec<String> {
    option
        .map(|o| {
            o.choices()
                .into_iter()
                .map(|c| format!("{lead}={c}"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, ConfigError};
    use crate::model::{AssetOptions, Options};
    use crate::syntax::args::split_words;
    use crate::syntax::line::MaterializeArgs;
    use crate::syntax::magic::{help_text, lsmagic_text, LINE_MAGICS};
    use crate::syntax::options::{parse_options, OptionError};

    fn offered(line: &str) -> Vec<String> {
        match complete_line(line) {
            Some(Completion::Words { words, .. }) => words,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Parses `--name=x` (or `--name` for a flag) as options of `T`: the
    /// option must be known, its value checked by its own parser.
    fn recognized<T: Options>(o: &OptionInfo) -> bool {
        let text = match o.value {
            Some(_) => format!("--{}=x", o.name),
            None => format!("--{}", o.name),
        };
        let words = split_words(&text, 1).unwrap();
        match parse_options::<T>(&words, |_| Ok(())) {
            Ok(_) => true,
            Err(OptionError::Invalid { option, .. }) => option == o.name,
            Err(_) => false,
        }
    }

    #[test]
    fn a_toggle_completes_both_ways() {
        let words = offered("%%asset x: u64 --");
        assert!(words.contains(&"--requeue".to_string()), "{words:?}");
        assert!(words.contains(&"--no-requeue".to_string()), "{words:?}");
        assert!(!words.contains(&"--no-own-job".to_string()), "{words:?}");
    }

    #[test]
    fn every_declared_option_is_in_help_completion_and_parsing() {
        let asset_help = help_text("asset").unwrap();
        let asset_offered = offered("%%asset x: u64 --");
        for o in AssetOptions::OPTIONS {
            assert!(
                asset_help.contains(&o.usage()),
                "{} not in %help asset",
                o.name
            );
            assert!(
                asset_offered
                    .iter()
                    .any(|w| w.trim_end_matches('=') == format!("--{}", o.name)),
                "{} not completed: {asset_offered:?}",
                o.name
            );
            assert!(recognized::<AssetOptions>(o), "{} not parsed", o.name);
        }
        let help = help_text("materialize").unwrap();
        let offered_options = offered("%materialize +a --");
        for o in MaterializeArgs::OPTIONS {
            assert!(
                help.contains(&o.usage()),
                "{} not in %help materialize",
                o.name
            );
            assert!(
                offered_options
                    .iter()
                    .any(|w| w.trim_end_matches('=') == format!("--{}", o.name)),
                "{} not completed",
                o.name
            );
            assert!(recognized::<MaterializeArgs>(o), "{} not parsed", o.name);
        }
        let help = help_text("config").unwrap();
        let offered_keys = offered("%config ");
        for k in config::keys() {
            assert!(
                help.contains(&format!("{}=", k.name)),
                "{} not in %help config",
                k.name
            );
            assert!(
                offered_keys.contains(&format!("{}=", k.name)),
                "{} not completed",
                k.name
            );
            let checked = validate(k.name, "x\u{7}");
            assert!(
                matches!(&checked, Err(ConfigError::Invalid { key, .. }) if key == k.name),
                "{}: {checked:?}",
                k.name
            );
        }
        for m in LINE_MAGICS {
            assert!(offered("%").contains(&format!("%{}", m.name)));
            assert!(lsmagic_text().contains(&format!("%{}", m.name)));
            assert!(help_text(m.name).unwrap().starts_with(&m.usage()));
        }
    }

    #[test]
    fn magic_names_options_and_values() {
        assert_eq!(offered("%ma"), ["%materialize"]);
        assert_eq!(offered("%%c"), ["%%check"]);
        assert_eq!(offered("%%asset x --own"), ["--own-job"]);
        assert_eq!(offered("%%asset x --cp"), ["--cpus="]);
        assert_eq!(offered("%%asset x --target=s"), ["--target=slurm"]);
        assert!(offered("%%asset x --mem=").is_empty());
        assert_eq!(offered("%materialize --jobs=p"), ["--jobs=per-asset"]);
        assert_eq!(offered("%materialize a --dr"), ["--dry-run"]);
        assert_eq!(offered("%config bu"), ["build="]);
        assert_eq!(offered("%config build=r"), ["build=remote"]);
        assert_eq!(offered("%help sel"), ["selection"]);
        assert!(offered("%runs x").is_empty());
        assert!(offered("%%check a").is_empty());
        let Some(Completion::Words { start, .. }) = complete_line("%config host=a bu") else {
            panic!()
        };
        assert_eq!(start, 15);
    }

    #[test]
    fn asset_names_after_selection_operators() {
        assert_eq!(
            complete_line("%materialize +summ"),
            Some(Completion::Assets { start: 14 })
        );
        assert_eq!(
            complete_line("%load "),
            Some(Completion::Assets { start: 6 })
        );
        assert_eq!(complete_line("let x = 1;"), None);
    }
}
