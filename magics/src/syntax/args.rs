//! Splitting a magic's argument text into words.
//!
//! Words are separated by whitespace; single and double quotes group text
//! (the quotes are removed). There is no escaping and no expansion: the
//! words are validated afterwards by whoever consumes them, so a quoted
//! value such as `"cpu; touch /tmp/x"` still fails validation.

use thiserror::Error;

/// One word of a magic line, with the 1-based column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub column: usize,
}

/// An unterminated quote.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unterminated {quote} quote starting at column {column}")]
pub struct ArgsError {
    pub quote: char,
    pub column: usize,
}

/// Split `text` into words; `first_column` is the column of `text`'s first
/// character in the line it came from.
pub fn split_words(text: &str, first_column: usize) -> Result<Vec<Word>, ArgsError> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quote: Option<(char, usize)> = None;
    for (i, ch) in text.chars().enumerate() {
        let column = first_column + i;
        if let Some((q, _)) = quote {
            if ch == q {
                quote = None;
            } else {
                current
                    .get_or_insert_with(|| Word {
                        text: String::new(),
                        column,
                    })
                    .text
                    .push(ch);
            }
            continue;
        }
        match ch {
            '"' | '\'' => {
                quote = Some((ch, column));
                current.get_or_insert_with(|| Word {
                    text: String::new(),
                    column,
                });
            }
            c if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            c => current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    column,
                })
                .text
                .push(c),
        }
    }
    if let Some((quote, column)) = quote {
        return Err(ArgsError { quote, column });
    }
    if let Some(word) = current {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        split_words(s, 1)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn splits_on_whitespace_and_keeps_quoted_text_together() {
        assert_eq!(texts("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(texts(r#"--p="x y" 'z w'"#), ["--p=x y", "z w"]);
        assert_eq!(texts(r#""""#), [""]);
    }

    #[test]
    fn columns_are_one_based_and_offset() {
        let words = split_words("ab  cd", 10).unwrap();
        assert_eq!(words[0].column, 10);
        assert_eq!(words[1].column, 14);
    }

    #[test]
    fn unterminated_quote_is_an_error_with_column() {
        let err = split_words("a \"b c", 1).unwrap_err();
        assert_eq!(err.column, 3);
        assert_eq!(err.quote, '"');
    }
}
