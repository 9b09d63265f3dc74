//! [`Id`]: a project or pool id that is safe to put in a request.
//!
//! The rules live here once: an id is not empty or blank, is not a dot
//! segment (`.` or `..`, which a URL would resolve), and is at most
//! [`MAX_ID_CHARS`] characters long. Everything else (slashes, `%`, spaces,
//! any Unicode) is kept as given; each backend encodes it as one segment.
//! A backend method takes `&Id`, so an id that breaks a rule can never
//! reach one.

use std::fmt;

/// The longest id accepted, in characters.
pub const MAX_ID_CHARS: usize = 1024;

/// A checked id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

/// Which rule a would-be id broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdProblem {
    /// Empty, or only white space.
    Blank,
    /// `.` or `..`.
    DotSegment,
    /// Longer than [`MAX_ID_CHARS`].
    TooLong { chars: usize, max: usize },
}

impl Id {
    /// Checks `text` against the id rules.
    pub fn new(text: impl Into<String>) -> Result<Self, IdProblem> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(IdProblem::Blank);
        }
        if text == "." || text == ".." {
            return Err(IdProblem::DotSegment);
        }
        let chars = text.chars().count();
        if chars > MAX_ID_CHARS {
            return Err(IdProblem::TooLong {
                chars,
                max: MAX_ID_CHARS,
            });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_dots_and_long_ids_are_refused() {
        assert_eq!(Id::new(""), Err(IdProblem::Blank));
        assert_eq!(Id::new(" \t"), Err(IdProblem::Blank));
        assert_eq!(Id::new("."), Err(IdProblem::DotSegment));
        assert_eq!(Id::new(".."), Err(IdProblem::DotSegment));
        assert_eq!(
            Id::new("x".repeat(1025)),
            Err(IdProblem::TooLong {
                chars: 1025,
                max: 1024
            })
        );
        assert!(Id::new("é".repeat(1024)).is_ok());
    }

    #[test]
    fn unusual_characters_are_kept_for_the_backend_to_encode() {
        for text in ["a/b", "../x", "a b", "é\r\n", "%2F", "...", " padded "] {
            assert_eq!(Id::new(text).unwrap().as_str(), text);
        }
    }
}
