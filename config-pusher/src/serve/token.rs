//! `--token-file`: the server secret `/v1/*` tokens are checked against (e.g. a mounted Secret):
//! the secret itself, or a role token derived from it ([`crate::auth`]). The file is re-read when
//! its modification time changes, so a rotated Secret applies without a restart; if a re-read
//! fails or yields an empty secret, the previous one stays.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::auth::{Access, Secret};

/// Why the token file is unusable at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("--token-file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--token-file {path}: the file is empty")]
    Empty { path: PathBuf },
}

#[derive(Debug)]
struct Loaded {
    modified: Option<SystemTime>,
    secret: Secret,
}

/// The expected token, kept in sync with its file.
#[derive(Debug)]
pub struct Token {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

fn read(path: &Path) -> Result<Loaded, TokenError> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let secret = Secret::new(text.trim().as_bytes()).ok_or_else(|| TokenError::Empty {
        path: path.to_path_buf(),
    })?;
    Ok(Loaded { modified, secret })
}

impl Token {
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        Ok(Token {
            path: path.to_path_buf(),
            loaded: Mutex::new(read(path)?),
        })
    }

    /// The secret as it is now (re-read if its file changed).
    pub fn secret(&self) -> Secret {
        self.current().secret.clone()
    }

    /// What the bearer token of an `Authorization` header value grants.
    pub fn access(&self, authorization: Option<&[u8]>) -> Access {
        let Some(given) = authorization.and_then(|a| a.strip_prefix(b"Bearer ")) else {
            return Access::Denied;
        };
        self.current().secret.access(given.trim_ascii())
    }

    /// Whether an `Authorization` header value carries the secret itself (the operator's token).
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        self.access(authorization) == Access::Operator
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut loaded = match self.loaded.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified != loaded.modified {
            match read(&self.path) {
                Ok(fresh) => {
                    tracing::info!(path = %self.path.display(), "token file re-read");
                    *loaded = fresh;
                }
                Err(e) => {
                    tracing::warn!("{e}; keeping the previous token");
                    loaded.modified = modified;
                }
            }
        }
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_rotation() {
        let path = std::env::temp_dir().join(format!("gammaroute-token-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let t = Token::load(&path).unwrap();
        assert!(t.allows(Some(b"Bearer s3cret")));
        assert!(!t.allows(Some(b"Bearer s3cre")));
        assert!(!t.allows(Some(b"Basic s3cret")));
        assert!(!t.allows(Some(b"s3cret")));
        assert!(!t.allows(None));
        // Rotated: a different length changes the content even within one mtime tick only if
        // the mtime moves; force it.
        std::fs::write(&path, "n3w").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(t.allows(Some(b"Bearer n3w")));
        assert!(!t.allows(Some(b"Bearer s3cret")));
        std::fs::write(&path, "").unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(10))
            .unwrap();
        assert!(
            t.allows(Some(b"Bearer n3w")),
            "an empty file keeps the old token"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        assert!(matches!(Token::load(&path), Err(TokenError::Empty { .. })));
        std::fs::remove_file(&path).unwrap();
    }
}
