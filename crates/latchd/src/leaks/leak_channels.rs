//! `LeakChannels`: the ways leak reports come in, as latchd was started
//! with them. GitHub's secret scanning partner endpoint exists only with
//! `--github-secret-scanning-keys`; GitLab's token revocation API only with
//! `--gitlab-revocation-token-file`. The internal `POST /v1/leaks` is
//! always served (it needs a token with `leaks:report`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::github_keys::{GithubKeySource, GithubKeys};
use super::report_budget::ReportBudget;

/// What latchd is started with (flags, `NodeConfig::leaks`).
#[derive(Debug, Clone)]
pub struct LeakConfig {
    /// GitHub's secret scanning keys document: a URL or a file.
    pub github_keys: Option<GithubKeySource>,
    /// A file holding the token GitLab presents (`Authorization: Bearer`)
    /// to the token revocation API.
    pub gitlab_token_file: Option<PathBuf>,
    /// Least time between two fetches of GitHub's keys document
    /// (`github_keys::MIN_REFETCH` by default).
    pub github_keys_min_refetch: std::time::Duration,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            github_keys: None,
            gitlab_token_file: None,
            github_keys_min_refetch: super::github_keys::MIN_REFETCH,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeakConfigError {
    #[error("reading the GitLab revocation token {}", .0.display())]
    GitlabToken(PathBuf, #[source] std::io::Error),
    #[error("the GitLab revocation token in {} is shorter than 32 characters: make one with `openssl rand -hex 32`", .0.display())]
    WeakGitlabToken(PathBuf),
}

/// The channels, ready to serve.
pub struct LeakChannels {
    pub github: Option<GithubKeys>,
    /// SHA-256 of GitLab's pre-shared token (compared in constant time).
    gitlab_token: Option<[u8; 32]>,
    /// Reported tokens per channel per minute.
    pub budget: ReportBudget,
}

impl Default for LeakChannels {
    fn default() -> Self {
        Self {
            github: None,
            gitlab_token: None,
            budget: ReportBudget::default(),
        }
    }
}

impl LeakChannels {
    pub fn open(config: &LeakConfig) -> Result<Self, LeakConfigError> {
        let gitlab_token = match &config.gitlab_token_file {
            None => None,
            Some(path) => Some(read_gitlab_token(path)?),
        };
        Ok(Self {
            github: config
                .github_keys
                .clone()
                .map(|source| GithubKeys::new(source, config.github_keys_min_refetch)),
            gitlab_token,
            budget: ReportBudget::default(),
        })
    }

    /// Whether `Authorization: Bearer <presented>` is GitLab's token.
    pub fn is_gitlab(&self, presented: &str) -> bool {
        let Some(expected) = &self.gitlab_token else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(expected))
    }
}

fn read_gitlab_token(path: &Path) -> Result<[u8; 32], LeakConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LeakConfigError::GitlabToken(path.to_owned(), e))?;
    let token = text.trim();
    if token.len() < 32 {
        return Err(LeakConfigError::WeakGitlabToken(path.to_owned()));
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}
