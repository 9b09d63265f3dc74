//! The stored Loomi login: one JSON file (the MCP URL, the OAuth client, the
//! authorization server's token endpoint, the tokens and their expiry),
//! written atomically (a temporary file in the same folder, then a rename)
//! with mode 0600 in a folder of mode 0700, and an advisory lock beside it
//! that the processes sharing the file take around a refresh.
//!
//! The file is read when a call needs it, never at start; nothing in it is
//! ever printed (`Debug` redacts every secret).

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The version of the file's layout.
pub const FORMAT: u32 = 1;

/// A token is treated as expired this long before its expiry.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// The OAuth client the login used.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Whether this client registered itself (RFC 7591).
    #[serde(default)]
    pub registered: bool,
    /// The redirect URI it was registered with.
    #[serde(default)]
    pub redirect_uri: String,
    /// Whether the secret goes as HTTP Basic (`client_secret_basic`).
    #[serde(default)]
    pub basic_auth: bool,
}

/// Everything a login leaves behind.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogin {
    pub format: u32,
    /// The MCP endpoint this login is for.
    pub mcp_url: String,
    /// The authorization server's issuer and token endpoint (refresh needs
    /// no discovery).
    #[serde(default)]
    pub issuer: Option<String>,
    pub token_endpoint: String,
    /// The `resource` the tokens were asked for (RFC 8707).
    pub resource: String,
    pub client: StoredClient,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds; `None` when the server gave no lifetime.
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Unix seconds of the token response, to tell a newer file apart.
    pub obtained_at: u64,
}

impl StoredLogin {
    /// Whether the access token is expired (or about to be) at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        match self.expires_at {
            Some(at) => unix(now) + EXPIRY_MARGIN.as_secs() >= at,
            None => false,
        }
    }

    /// The secrets of this login, for scrubbing quotes.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.access_token.clone()];
        secrets.extend(self.refresh_token.clone());
        secrets.extend(self.client.client_secret.clone());
        secrets
    }

    pub fn access_token(&self) -> Secret {
        Secret::new(self.access_token.clone())
    }
}

impl fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredLogin")
            .field("mcp_url", &self.mcp_url)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client.client_id)
            .field("access_token", &Secret::REDACTED)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Secret::REDACTED),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| Secret::REDACTED),
            )
            .field("registered", &self.registered)
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why the file could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreProblem {
    /// It could not be read, written or removed.
    Io { path: PathBuf, detail: String },
    /// It is not a login this version understands.
    Unreadable { path: PathBuf, detail: String },
}

/// The credentials file and its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsFile {
    path: PathBuf,
    /// Whether the folder is ours (the default place), so its mode is set.
    own_folder: bool,
}

impl CredentialsFile {
    pub fn new(path: PathBuf, own_folder: bool) -> Self {
        Self { path, own_folder }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: impl fmt::Display) -> StoreProblem {
        StoreProblem::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// The stored login, or `None` when there is none.
    pub fn load(&self) -> Result<Option<StoredLogin>, StoreProblem> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let login: StoredLogin =
            serde_json::from_slice(&bytes).map_err(|e| StoreProblem::Unreadable {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        if login.format != FORMAT {
            return Err(StoreProblem::Unreadable {
                path: self.path.clone(),
                detail: format!("format {} (this version reads {FORMAT})", login.format),
            });
        }
        Ok(Some(login))
    }

    /// Writes `login` atomically: a temporary file of mode 0600 in the same
    /// folder, flushed, then renamed over the file.
    pub fn save(&self, login: &StoredLogin) -> Result<(), StoreProblem> {
        let folder = self.folder();
        self.make_folder(&folder)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".loomi-credentials")
            .suffix(".tmp")
            .tempfile_in(&folder)
            .map_err(|e| self.io(e))?;
        set_private(temp.as_file(), 0o600).map_err(|e| self.io(e))?;
        let json = serde_json::to_vec_pretty(login).map_err(|e| self.io(e))?;
        temp.write_all(&json).map_err(|e| self.io(e))?;
        temp.as_file().sync_all().map_err(|e| self.io(e))?;
        temp.persist(&self.path).map_err(|e| self.io(e.error))?;
        Ok(())
    }

    /// Removes the file; `Ok(false)` when there was none.
    pub fn delete(&self) -> Result<bool, StoreProblem> {
        let removed = match std::fs::remove_file(&self.path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(self.io(e)),
        };
        let _ = std::fs::remove_file(self.lock_path());
        Ok(removed)
    }

    /// Takes the exclusive advisory lock beside the file, waiting for other
    /// processes that hold it; released when the guard drops.
    pub fn lock(&self) -> Result<FileLock, StoreProblem> {
        let folder = self.folder();
        self.make_folder(&folder)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .map_err(|e| self.io(e))?;
        set_private(&file, 0o600).map_err(|e| self.io(e))?;
        file.lock().map_err(|e| self.io(e))?;
        Ok(FileLock { _file: file })
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Creates the folder (mode 0700) where it is missing; the default
    /// folder, which is ours, is made 0700 also when it exists.
    fn make_folder(&self, folder: &Path) -> Result<(), StoreProblem> {
        if !folder.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(folder).map_err(|e| self.io(e))?;
        } else if self.own_folder {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| self.io(e))?;
            }
        }
        Ok(())
    }
}

/// The held lock.
pub struct FileLock {
    _file: File,
}

#[cfg(unix)]
fn set_private(file: &File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_private(_file: &File, _mode: u32) -> std::io::Result<()> {
    // The user's profile folder is private to the user on Windows.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn login(token: &str) -> StoredLogin {
        StoredLogin {
            format: FORMAT,
            mcp_url: "https://eu.connect.loomi.ai/mcp".into(),
            issuer: Some("https://auth.example".into()),
            token_endpoint: "https://auth.example/token".into(),
            resource: "https://eu.connect.loomi.ai/mcp".into(),
            client: StoredClient {
                client_id: "client-1".into(),
                client_secret: Some("client-secret-9".into()),
                registered: true,
                redirect_uri: "http://127.0.0.1:1/callback".into(),
                basic_auth: false,
            },
            access_token: token.into(),
            refresh_token: Some("refresh-7".into()),
            expires_at: Some(2_000_000_000),
            scope: None,
            obtained_at: 1_900_000_000,
        }
    }

    #[test]
    fn saved_logins_load_back_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("a/b/creds.json"), false);
        assert_eq!(file.load().unwrap(), None);
        file.save(&login("tok-1")).unwrap();
        file.save(&login("tok-2")).unwrap();
        assert_eq!(file.load().unwrap(), Some(login("tok-2")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(file.path()), 0o600);
            assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        }
        // Only the file and its lock-free folder: no temporary file left.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["creds.json"]);
        assert!(file.delete().unwrap());
        assert!(!file.delete().unwrap());
    }

    #[test]
    fn debug_never_shows_a_token_or_secret() {
        let shown = format!("{:?}", login("tok-abc"));
        for secret in ["tok-abc", "refresh-7", "client-secret-9"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_file_of_another_shape_is_unreadable_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        std::fs::write(&path, "{\"hello\": 1}").unwrap();
        let file = CredentialsFile::new(path, false);
        assert!(matches!(file.load(), Err(StoreProblem::Unreadable { .. })));
    }

    #[test]
    fn expiry_counts_a_margin() {
        let l = login("t");
        let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert!(l.is_expired(at));
        assert!(l.is_expired(at - Duration::from_secs(29)));
        assert!(!l.is_expired(at - Duration::from_secs(31)));
    }
}
