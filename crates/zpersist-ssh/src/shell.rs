//! The one POSIX shell quoting in zpersist: how a remote shell receives an
//! argv over ssh, and how messages show a command (so what a message shows
//! can be pasted into a shell and means the same argv).
//!
//! A word made only of characters no shell treats specially stays as it
//! is; anything else is put in single quotes, inside which every byte but
//! `'` is literal in every POSIX shell (spaces, `$`, backquotes, `\`,
//! newlines, non-ASCII, bytes that are not UTF-8), and `'` becomes `'\''`.
//! Nothing else (no `$'...'`, which dash and older shells lack) is used.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Bytes that never need quoting.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_./:,=@+".contains(&byte)
}

/// Appends `word`, quoted for a POSIX shell, to `out`.
fn quote_into(word: &[u8], out: &mut Vec<u8>) {
    if !word.is_empty() && word.iter().copied().all(is_plain) {
        out.extend_from_slice(word);
        return;
    }
    out.push(b'\'');
    for &byte in word {
        if byte == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(byte);
        }
    }
    out.push(b'\'');
}

/// `argv` as one command line for a POSIX shell, each word quoted: what
/// ssh hands the remote shell, byte for byte.
pub fn command_line<S: AsRef<OsStr>>(argv: &[S]) -> OsString {
    let mut out = Vec::new();
    for (i, word) in argv.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        quote_into(word.as_ref().as_bytes(), &mut out);
    }
    OsString::from_vec(out)
}

/// [`command_line`] as text, for messages: bytes that are not UTF-8 are
/// shown as U+FFFD (a message is text; the argv itself is not changed).
pub fn remote_command<S: AsRef<OsStr>>(argv: &[S]) -> String {
    command_line(argv).to_string_lossy().into_owned()
}

/// Single-quotes `word` for a POSIX shell unless it is plainly safe.
pub fn shell_quote(word: &str) -> Cow<'_, str> {
    if !word.is_empty() && word.bytes().all(is_plain) {
        return Cow::Borrowed(word);
    }
    let mut out = Vec::with_capacity(word.len() + 2);
    quote_into(word.as_bytes(), &mut out);
    Cow::Owned(String::from_utf8(out).expect("quoting adds ASCII only"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Splits a line as a POSIX shell does for single quotes, backslashes
    /// and plain words (all [`command_line`] produces), so the tests check
    /// what the remote side receives, not just the text.
    pub(crate) fn split_like_sh(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quoted = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' if quoted => quoted = false,
                '\'' => {
                    quoted = true;
                    in_word = true;
                }
                '\\' if !quoted => {
                    word.extend(chars.next());
                    in_word = true;
                }
                ' ' if !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        assert!(!quoted, "unbalanced quote in {line:?}");
        if in_word {
            words.push(word);
        }
        words
    }

    #[test]
    fn plain_words_stay_unquoted_and_the_rest_is_single_quoted() {
        assert_eq!(shell_quote("name,property,value"), "name,property,value");
        assert_eq!(shell_quote("tank/a@b"), "tank/a@b");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
        assert_eq!(shell_quote("Séries"), "'Séries'");
    }

    #[test]
    fn every_word_survives_a_shell_split() {
        let words = [
            "zfs",
            "tank/my data",
            "it's",
            "\"q\"",
            "$HOME",
            "`id`",
            "a\nb",
            "tab\there",
            "Séries TV ☃",
            "*",
            "'",
            "''",
            "\\",
            "",
        ];
        let line = command_line(&words);
        assert_eq!(split_like_sh(line.to_str().unwrap()), words);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_byte_for_byte() {
        let word = OsStr::from_bytes(b"tank/\xff\xfe x");
        let line = command_line(&[OsStr::new("printf"), word]);
        assert_eq!(line.as_bytes(), b"printf 'tank/\xff\xfe x'");
        assert_eq!(remote_command(&[word]), "'tank/\u{fffd}\u{fffd} x'");
    }
}
