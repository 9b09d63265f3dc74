//! The stored Loomi login: one JSON file written atomically (a temporary
//! file in the same folder, then a rename) with mode 0600 in a folder of
//! mode 0700, and an advisory lock beside it that the processes sharing the
//! file take around a refresh. It is read when a call needs it, never at
//! start; nothing in it is ever printed (`Debug` redacts every secret).

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oauth2::TokenResponse;
use rmcp::transport::auth::{
    AuthError, AuthorizationMetadata, CredentialRefreshGuard, CredentialStore, StoredCredentials,
};
use serde::{Deserialize, Serialize};

pub use crate::backend::error::StoreProblem;
use crate::backend::Secret;

pub const FORMAT: u32 = 2;

/// A token is treated as expired this long before its expiry.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Everything a login leaves behind: the endpoint it is for, what the
/// authorization server published, the client, and rmcp's credentials
/// (tokens, when they were received, the scopes granted, the issuer).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    pub format: u32,
    /// The MCP endpoint this login is for: it serves no other.
    pub mcp_url: String,
    /// The authorization server's metadata, so a refresh needs no discovery.
    pub metadata: AuthorizationMetadata,
    /// The redirect URI the client was registered with.
    pub redirect_uri: String,
    /// The secret of a confidential client, registered or preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub credentials: StoredCredentials,
}

impl StoredLogin {
    pub fn client_id(&self) -> &str {
        &self.credentials.client_id
    }

    pub fn access_token(&self) -> Option<&str> {
        self.credentials
            .token_response
            .as_ref()
            .map(|t| t.access_token().secret().as_str())
    }

    pub fn refresh_token(&self) -> Option<&str> {
        self.credentials
            .token_response
            .as_ref()
            .and_then(|t| t.refresh_token())
            .map(|t| t.secret().as_str())
    }

    /// Unix seconds when the access token expires; `None` without a lifetime.
    pub fn expires_at(&self) -> Option<u64> {
        let lifetime = self.credentials.token_response.as_ref()?.expires_in()?;
        Some(self.credentials.token_received_at? + lifetime.as_secs())
    }

    /// Whether the access token is missing, or expired (or about to be) at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        let soon = unix(now) + EXPIRY_MARGIN.as_secs();
        self.access_token().is_none() || self.expires_at().is_some_and(|at| soon >= at)
    }

    /// Whether this login can serve `url` at `now`: made for it, and not
    /// expired or renewable.
    pub fn serves(&self, url: &str, now: SystemTime) -> bool {
        self.mcp_url == url && (!self.is_expired(now) || self.refresh_token().is_some())
    }

    /// The secrets of this login, for scrubbing quotes.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.access_token().map(str::to_owned).into_iter().collect();
        secrets.extend(self.refresh_token().map(str::to_owned));
        secrets.extend(self.client_secret.clone());
        secrets
    }

    pub fn bearer(&self) -> Option<Secret> {
        self.access_token().map(|t| Secret::new(t.to_owned()))
    }
}

impl fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = self.client_secret.as_ref().map(|_| Secret::REDACTED);
        f.debug_struct("StoredLogin")
            .field("mcp_url", &self.mcp_url)
            .field("issuer", &self.metadata.issuer)
            .field("client_id", &self.credentials.client_id)
            .field("client_secret", &secret)
            .field("credentials", &self.credentials)
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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

    pub(super) fn io(&self, e: impl fmt::Display) -> StoreProblem {
        StoreProblem::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// The stored login, or `None` when there is none.
    pub fn load(&self) -> Result<Option<StoredLogin>, StoreProblem> {
        self.check_private()?;
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        #[derive(Deserialize)]
        struct Layout {
            format: u32,
        }
        match self.parse::<Layout>(&bytes)?.format {
            // A login of an earlier version (its own OAuth client) is not
            // used: the next login replaces it.
            1 => Ok(None),
            FORMAT => self.parse(&bytes).map(Some),
            other => Err(self.unreadable(format!("format {other} (this version reads {FORMAT})"))),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, StoreProblem> {
        serde_json::from_slice(bytes).map_err(|e| self.unreadable(e))
    }

    fn unreadable(&self, e: impl fmt::Display) -> StoreProblem {
        StoreProblem::Unreadable {
            path: self.path.clone(),
            detail: e.to_string(),
        }
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

    /// Takes the exclusive advisory lock beside the file, waiting at most
    /// `waited` for another process that holds it; released when the guard
    /// drops. The lock file is never followed through a symbolic link.
    pub fn lock(&self, waited: Duration) -> Result<FileLock, StoreProblem> {
        let folder = self.folder();
        self.make_folder(&folder)?;
        let path = self.lock_path();
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        options.custom_flags(libc::O_NOFOLLOW);
        let file = options.open(&path).map_err(|e| self.io(e))?;
        set_private(&file, 0o600).map_err(|e| self.io(e))?;
        let deadline = Instant::now() + waited;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(TryLockError::WouldBlock) => return Err(StoreProblem::Locked { path, waited }),
                Err(TryLockError::Error(e)) => return Err(self.io(e)),
            }
        }
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
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
            builder.mode(0o700);
            builder.create(folder).map_err(|e| self.io(e))?;
        } else if self.own_folder {
            #[cfg(unix)]
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| self.io(e))?;
        }
        self.check_private()
    }

    /// A login where anyone can write is no login of ours: a folder open to
    /// every user (anyone could put a file of their own in its place) or a
    /// file another user owns is refused, naming the fix.
    fn check_private(&self) -> Result<(), StoreProblem> {
        #[cfg(unix)]
        {
            let folder = self.folder();
            if let Ok(meta) = std::fs::metadata(&folder) {
                let mode = meta.mode() & 0o7777;
                if mode & 0o002 != 0 && self.own_folder {
                    // Ours: made private again rather than refused.
                    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| self.io(e))?;
                } else if mode & 0o002 != 0 {
                    return Err(self.io(format!(
                        "its folder {} can be written by other users (mode {:o}); keep the login in a folder only you can write to (chmod 700 it, or choose another place)",
                        folder.display(),
                        mode
                    )));
                }
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if std::fs::metadata(&self.path).is_ok_and(|meta| meta.uid() != me) {
                return Err(self.io("it belongs to another user; remove it and log in again"));
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
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_private(_file: &File, _mode: u32) -> std::io::Result<()> {
    // The user's profile folder is private to the user on Windows.
    Ok(())
}

/// rmcp's credential store over the credentials file, for one MCP URL: a
/// login stored for another URL is not seen, and is never overwritten by a
/// refresh. What rmcp does not keep (the metadata, the redirect URI and a
/// client secret) comes from the login the store was made with.
#[derive(Clone)]
pub struct FileStore {
    file: CredentialsFile,
    template: std::sync::Arc<std::sync::Mutex<StoredLogin>>,
}

impl FileStore {
    pub fn new(file: CredentialsFile, template: StoredLogin) -> Self {
        Self {
            file,
            template: std::sync::Arc::new(std::sync::Mutex::new(template)),
        }
    }

    /// The secret of the client the login is made with.
    pub fn set_client_secret(&self, secret: Option<String>) {
        self.template().client_secret = secret;
    }

    fn template(&self) -> std::sync::MutexGuard<'_, StoredLogin> {
        self.template.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The login as stored now, if it is for this store's URL.
    pub fn current(&self) -> Result<Option<StoredLogin>, StoreProblem> {
        let url = self.template().mcp_url.clone();
        Ok(self.file.load()?.filter(|l| l.mcp_url == url))
    }

    async fn off_thread<T: Send + 'static>(
        work: impl FnOnce() -> Result<T, StoreProblem> + Send + 'static,
    ) -> Result<T, AuthError> {
        let done = tokio::task::spawn_blocking(work).await;
        let done = done.map_err(|e| AuthError::CredentialStoreError(e.to_string()))?;
        done.map_err(|p| AuthError::CredentialStoreError(store_detail(p, "the login's")))
    }
}

/// A store problem in a few words, its lock named as `lock`.
pub fn store_detail(p: StoreProblem, lock: &str) -> String {
    match p {
        StoreProblem::Io { detail, .. } | StoreProblem::Unreadable { detail, .. } => detail,
        StoreProblem::Locked { waited, .. } => {
            format!("{lock} lock was held for over {} s", waited.as_secs())
        }
    }
}

#[async_trait::async_trait]
impl CredentialStore for FileStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let store = self.clone();
        let login = Self::off_thread(move || store.current()).await?;
        Ok(login.map(|l| l.credentials))
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        self.template().credentials = credentials;
        let (login, file) = (self.template().clone(), self.file.clone());
        Self::off_thread(move || file.save(&login)).await
    }

    async fn clear(&self) -> Result<(), AuthError> {
        let (file, url) = (self.file.clone(), self.template().mcp_url.clone());
        Self::off_thread(move || match file.load() {
            Ok(Some(l)) if l.mcp_url == url => file.delete().map(|_| ()),
            _ => Ok(()),
        })
        .await
    }

    /// No guard here: the backend holds the file's lock around every
    /// refresh itself, re-reading the file first (see `auth::Auth`).
    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn login(token: &str) -> StoredLogin {
        let credentials: StoredCredentials = serde_json::from_value(serde_json::json!({
            "client_id": "client-1",
            "token_response": {
                "access_token": token, "token_type": "bearer", "expires_in": 3600,
                "refresh_token": "refresh-7"
            },
            "granted_scopes": [],
            "token_received_at": 1_999_996_400u64,
            "issuer": "https://auth.example"
        }))
        .unwrap();
        StoredLogin {
            format: FORMAT,
            mcp_url: "https://eu.connect.loomi.ai/mcp".into(),
            metadata: serde_json::from_value(serde_json::json!({
                "authorization_endpoint": "https://auth.example/authorize",
                "token_endpoint": "https://auth.example/token",
                "issuer": "https://auth.example"
            }))
            .unwrap(),
            redirect_uri: "http://127.0.0.1:1/callback".into(),
            client_secret: Some("client-secret-9".into()),
            credentials,
        }
    }

    fn json(l: &StoredLogin) -> String {
        serde_json::to_string(l).unwrap()
    }

    #[test]
    fn saved_logins_load_back_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("a/b/creds.json"), false);
        assert!(file.load().unwrap().is_none());
        file.save(&login("tok-1")).unwrap();
        file.save(&login("tok-2")).unwrap();
        assert_eq!(json(&file.load().unwrap().unwrap()), json(&login("tok-2")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(file.path()), 0o600);
            assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["creds.json"]);
        assert!(file.delete().unwrap());
        assert!(!file.delete().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_open_to_everyone_is_refused_for_loading_saving_and_locking() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        let file = CredentialsFile::new(open.join("creds.json"), false);
        file.save(&login("tok-1")).unwrap();
        for mode in [0o777, 0o1777, 0o703] {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            for e in [
                file.load().map(|_| ()).unwrap_err(),
                file.save(&login("tok-2")).unwrap_err(),
                file.lock(Duration::from_millis(10))
                    .map(|_| ())
                    .unwrap_err(),
            ] {
                let StoreProblem::Io { detail, .. } = e else {
                    panic!("{e:?}")
                };
                assert!(detail.contains("can be written by other users"), "{detail}");
            }
        }
        // Group-writable (a user private group) and private folders serve.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(file.load().unwrap().is_some());
        // The default folder, ours, is made private instead of refused.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let ours = CredentialsFile::new(open.join("creds.json"), true);
        ours.save(&login("tok-3")).unwrap();
        assert_eq!(
            std::fs::metadata(&open).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn debug_never_shows_a_token_or_secret() {
        let shown = format!("{:?}", login("tok-abc"));
        for secret in ["tok-abc", "refresh-7", "client-secret-9"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_login_of_the_earlier_layout_is_no_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        std::fs::write(
            &path,
            r#"{"format": 1, "mcp_url": "https://eu.connect.loomi.ai/mcp", "access_token": "t"}"#,
        )
        .unwrap();
        assert!(CredentialsFile::new(path, false).load().unwrap().is_none());
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
    fn expiry_counts_a_margin_and_the_url_is_part_of_serving() {
        let l = login("t");
        let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(l.expires_at(), Some(2_000_000_000));
        assert!(l.is_expired(at));
        assert!(l.is_expired(at - Duration::from_secs(29)));
        assert!(!l.is_expired(at - Duration::from_secs(31)));
        assert!(l.serves("https://eu.connect.loomi.ai/mcp", at));
        assert!(!l.serves(
            "https://us.connect.loomi.ai/mcp",
            at - Duration::from_secs(60)
        ));
    }

    #[test]
    fn a_held_lock_is_waited_for_only_as_long_as_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("creds.json"), false);
        let held = file.lock(Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        assert!(matches!(
            file.lock(Duration::from_millis(200)),
            Err(StoreProblem::Locked { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(held);
        assert!(file.lock(Duration::from_millis(200)).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_at_the_lock_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("creds.json.lock")).unwrap();
        let file = CredentialsFile::new(dir.path().join("creds.json"), false);
        assert!(matches!(
            file.lock(Duration::from_millis(100)),
            Err(StoreProblem::Io { .. })
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[tokio::test]
    async fn the_store_sees_only_the_login_of_its_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("creds.json"), false);
        let mut other = login("tok-other");
        other.mcp_url = "https://us.connect.loomi.ai/mcp".into();
        file.save(&other).unwrap();
        let store = FileStore::new(file.clone(), login("template"));
        assert!(store.load().await.unwrap().is_none());
        store.clear().await.unwrap();
        assert!(
            file.load().unwrap().is_some(),
            "another URL's login is kept"
        );
    }
}
