//! What the backends are given to reach the data: secrets that never show
//! themselves, an API key, and the projects a server is configured for.

use std::fmt;

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub const REDACTED: &'static str = "[redacted]";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

/// An API key: its ID and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    pub secret: Secret,
}

/// One project the server is configured for, as listed by `list_projects`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectEntry {
    pub id: String,
    pub name: String,
    /// The organization's name, where the backend gives one (Loomi Connect).
    pub organization: Option<String>,
    /// The workspace's name, where the backend gives one (Loomi Connect).
    pub workspace: Option<String>,
}

impl ProjectEntry {
    /// A project known by id and name alone (configuration, demo data).
    pub fn named(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            organization: None,
            workspace: None,
        }
    }
}
