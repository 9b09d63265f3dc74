//! Small text helpers shared by every layer that shows someone else's text:
//! cutting it short and folding it onto one line.

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Folds white space and control characters into single spaces, so that
/// quoted text stays on one line.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shows control characters (a terminal's escape sequences among them) as
/// `\u{..}` escapes, so stored or remote text cannot drive a terminal.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls_shows_escapes_as_text() {
        assert_eq!(escape_controls("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\u{a}");
        assert_eq!(escape_controls("plain é"), "plain é");
    }

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ééé", 2), "éé…");
    }

    #[test]
    fn one_line_folds_controls_and_runs_of_space() {
        assert_eq!(one_line(" a\r\n\tb \u{1b}c  "), "a b c");
    }
}
