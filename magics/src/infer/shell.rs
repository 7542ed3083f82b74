//! bash bodies (`%%asset NAME --lang bash`): the `$NAME` and `${NAME...}`
//! references the script does not assign itself before (`NAME=...`,
//! `for NAME in`, `read NAME`, `local`/`export`/`declare NAME=`), outside
//! single quotes, comments and escapes. Upstreams reach the script as
//! environment variables of their names, so these are its dependencies.

use std::collections::{BTreeSet, HashSet};

use super::BodyAnalysis;

fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The name at the start of `chars[i..]`, if one starts there.
fn name_at(chars: &[char], i: usize) -> Option<String> {
    if !chars.get(i).copied().is_some_and(name_start) {
        return None;
    }
    Some(chars[i..].iter().take_while(|c| name_char(**c)).collect())
}

/// Names a line assigns: `NAME=` at the start of a command (after `;`,
/// `&&`, `|`, `(`, `{` or a keyword such as `then`), after `local`,
/// `export`, `declare`, `readonly`, `for` and `read`.
fn assigned(line: &str, out: &mut HashSet<String>) {
    let mut command_start = true;
    let mut after_read = false;
    for word in line.split_whitespace() {
        let bare = word.trim_start_matches(['(', '{', '!']);
        if let Some((name, _)) = bare.split_once('=') {
            if command_start && !name.is_empty() && name.chars().all(name_char) {
                out.insert(name.trim_end_matches('+').to_string());
                continue;
            }
        }
        if after_read && !bare.starts_with('-') && bare.chars().all(name_char) {
            out.insert(bare.to_string());
            continue;
        }
        after_read = false;
        match bare {
            "local" | "export" | "declare" | "readonly" | "typeset" => command_start = true,
            "for" | "select" => command_start = true,
            "read" => after_read = true,
            "then" | "do" | "else" | "elif" | "if" | "while" | "until" | "&&" | "||" | ";"
            | "|" | "" => command_start = true,
            _ if word.ends_with(';') => command_start = true,
            _ => {
                // `for NAME in`: the word after `for` was taken above as a
                // command start only if it had `=`; take it here.
                command_start = false;
            }
        }
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    for w in words.windows(3) {
        if (w[0] == "for" || w[0] == "select") && w[2] == "in" && w[1].chars().all(name_char) {
            out.insert(w[1].to_string());
        }
    }
}

/// Every `$NAME` / `${NAME...}` referenced, with its character offset.
fn references(src: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_double = false;
    let mut at_word_start = true;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                at_word_start = true;
                i += 1;
                continue;
            }
            '\\' => {
                i += 2;
                at_word_start = false;
                continue;
            }
            '\'' if !in_double => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                at_word_start = false;
                continue;
            }
            '"' => in_double = !in_double,
            '#' if !in_double && at_word_start => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '$' => {
                let next = chars.get(i + 1).copied();
                if next == Some('{') {
                    let start = i + 2 + usize::from(matches!(chars.get(i + 2), Some('!' | '#')));
                    if let Some(name) = name_at(&chars, start) {
                        out.push((i, name));
                    }
                    i = start;
                    at_word_start = false;
                    continue;
                } else if let Some(name) = name_at(&chars, i + 1) {
                    let len = name.chars().count();
                    out.push((i, name));
                    i += 1 + len;
                    at_word_start = false;
                    continue;
                }
            }
            _ => {}
        }
        at_word_start = c.is_whitespace() || ";|&(){}".contains(c);
        i += 1;
    }
    out
}

/// The free `$NAME`s of a bash body. The script is taken as segments
/// (lines, split at `;`): a segment's `for`/`read` names bind from its
/// start, its `NAME=` assignments from its end.
pub fn shell_free_names(src: &str) -> BTreeSet<String> {
    let refs = references(src);
    let chars: Vec<char> = src.chars().collect();
    let mut bound: HashSet<String> = HashSet::new();
    let mut free = BTreeSet::new();
    let mut start = 0;
    while start <= chars.len() {
        let end = (start..chars.len())
            .find(|&i| chars[i] == '\n' || chars[i] == ';')
            .unwrap_or(chars.len());
        let segment: String = chars[start..end].iter().collect();
        let words: Vec<&str> = segment.split_whitespace().collect();
        match words.as_slice() {
            ["for" | "select", name, "in", ..] | ["for" | "select", name] => {
                bound.insert(name.to_string());
            }
            ["read", rest @ ..] => {
                for w in rest.iter().filter(|w| !w.starts_with('-')) {
                    bound.insert(w.to_string());
                }
            }
            _ => {}
        }
        for (_, name) in refs.iter().filter(|(at, _)| (start..end).contains(at)) {
            if !bound.contains(name) && name != "OUT" {
                free.insert(name.clone());
            }
        }
        assigned(&segment, &mut bound);
        start = end + 1;
    }
    free
}

/// [`BodyAnalysis`] of a bash body: free `$NAME`s; the normalized text
/// drops full-line comments, trailing whitespace and blank lines.
pub fn analyze_shell(src: &str) -> BodyAnalysis {
    let text: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let normalized = super::normalize_lines(&text);
    BodyAnalysis {
        free: shell_free_names(src),
        mentioned_joined: String::new(),
        digest: crate::model::digest_of(&normalized),
        normalized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(src: &str) -> Vec<String> {
        shell_free_names(src).into_iter().collect()
    }

    #[test]
    fn references_outside_single_quotes_and_comments() {
        assert_eq!(
            free("cp \"$raw/data.csv\" \"$OUT/\"\necho ${summary} ${#items} ${cfg:-x}"),
            ["cfg", "items", "raw", "summary"]
        );
        assert_eq!(
            free("echo '$not_me' \\$nor_me # $comment\necho \"it's $yes\""),
            ["yes"]
        );
        assert_eq!(free("echo $1 $? $$ $@"), Vec::<String>::new());
    }

    #[test]
    fn assignments_before_use_bind() {
        assert_eq!(free("n=3\necho $n $m"), ["m"]);
        assert_eq!(free("echo $n\nn=3"), ["n"]);
        assert_eq!(free("for f in $files; do echo $f; done"), ["files"]);
        assert_eq!(
            free("for f in a b\ndo\n  wc -l $f\ndone"),
            Vec::<String>::new()
        );
        assert_eq!(free("read -r line\necho $line"), Vec::<String>::new());
        assert_eq!(free("export DEST=$OUT/x\nls $DEST"), Vec::<String>::new());
        assert_eq!(free("local a=1 b=$c\necho $a $b"), ["c"]);
    }

    #[test]
    fn comments_do_not_change_the_digest() {
        let a = analyze_shell("# make it\nls $raw   \n\n");
        let b = analyze_shell("ls $raw");
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, analyze_shell("ls -l $raw").digest);
    }
}
