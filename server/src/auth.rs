//! Authentication and authorization: bearer tokens mapped to roles per project.
//!
//! Off by default (Feast's `auth: {type: no_auth}`). With
//!
//! ```yaml
//! auth:
//!   type: token
//!   tokens:                       # and/or tokens_file: auth_tokens.yaml (same list, relative to the repo)
//!     - name: training-pipeline   # for logs
//!       token: ${TRAINING_TOKEN}  # the secret itself, from the environment
//!       roles: [read_offline]     # or {driver_demo: [read_offline], "*": [read_online]}
//! ```
//!
//! every route but `/health`, `/docs` and `/openapi.json` needs `Authorization: Bearer <token>`
//! (Flight: the same gRPC metadata). Roles: `read_online` (`/get-online-features`, `/registry`),
//! `read_offline` (training sets, `/registry`), `write` (`/push`, `/write-to-online-store`),
//! `admin` (everything, incl. `/apply`, `/materialize`, `/teardown`, `/metrics`). A missing or unknown
//! token is 401, a token without the role 403; both are decided before the body is read, so
//! neither tells which features exist. Tokens are compared as SHA-256 digests in constant time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Online feature reads.
    ReadOnline,
    /// Training sets.
    ReadOffline,
    /// Push and write-to-online-store.
    Write,
    /// Everything.
    Admin,
}

/// Roles of a token: for every project, or per project (`"*"` = any).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RoleGrant {
    /// The same roles in every project.
    All(Vec<Role>),
    /// Roles per project name (`"*"`: any project).
    PerProject(BTreeMap<String, Vec<Role>>),
}

/// One configured token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs.
    pub name: String,
    /// The secret.
    pub token: String,
    /// Its roles.
    pub roles: RoleGrant,
}

/// `auth:` in `feature_store.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    /// No authentication (Feast's default).
    NoAuth,
    /// Bearer tokens.
    Token {
        /// Tokens given inline.
        #[serde(default)]
        tokens: Vec<TokenConfig>,
        /// A YAML file holding a list of tokens (relative to the repo).
        #[serde(default)]
        tokens_file: Option<String>,
    },
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or an unknown one (401).
    Unauthenticated,
    /// A valid token without the role (403); the token's name.
    Forbidden(String),
}

struct Entry {
    name: String,
    digest: [u8; 32],
    roles: RoleGrant,
}

/// The tokens a server accepts.
pub struct Authenticator {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal digests, compared in constant time (`subtle`, so the optimizer cannot shortcut it).
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

impl Authenticator {
    /// Builds the authenticator of a configuration (`None`: authentication is off).
    pub fn from_config(config: &AuthConfig, repo_dir: &Path) -> Result<Option<Self>, String> {
        let Some(all) = tokens(config, repo_dir)? else {
            return Ok(None);
        };
        if all.is_empty() {
            return Err("auth: type `token` needs at least one token (tokens or tokens_file)".into());
        }
        let mut entries = Vec::with_capacity(all.len());
        for t in all {
            if t.token.len() < 16 {
                return Err(format!("auth: the token of `{}` is shorter than 16 characters", t.name));
            }
            entries.push(Entry {
                name: t.name,
                digest: digest(&t.token),
                roles: t.roles,
            });
        }
        Ok(Some(Authenticator { entries }))
    }

    /// Checks an `Authorization` header value for one of `allowed` in `project` (`admin`
    /// always passes); on success, the token's name.
    pub fn check(&self, authorization: Option<&str>, project: &str, allowed: &[Role]) -> Result<String, Denied> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        let d = digest(token);
        // Compare with every entry (no early exit), in constant time each.
        let mut found = None;
        for e in &self.entries {
            if same(&e.digest, &d) {
                found = Some(e);
            }
        }
        let e = found.ok_or(Denied::Unauthenticated)?;
        let roles: Vec<Role> = match &e.roles {
            RoleGrant::All(r) => r.clone(),
            RoleGrant::PerProject(m) => m
                .get(project)
                .into_iter()
                .chain(m.get("*"))
                .flatten()
                .copied()
                .collect(),
        };
        if roles.contains(&Role::Admin) || allowed.iter().any(|r| roles.contains(r)) {
            Ok(e.name.clone())
        } else {
            Err(Denied::Forbidden(e.name.clone()))
        }
    }
}

/// Every token of a configuration, inline and from `tokens_file` (`None`: authentication is
/// off).
#[allow(clippy::disallowed_methods, reason = "read once, at start-up")]
fn tokens(config: &AuthConfig, repo_dir: &Path) -> Result<Option<Vec<TokenConfig>>, String> {
    let (inline, file) = match config {
        AuthConfig::NoAuth => return Ok(None),
        AuthConfig::Token { tokens, tokens_file } => (tokens, tokens_file),
    };
    let mut all = inline.clone();
    if let Some(f) = file {
        let path = repo_dir.join(f);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
        let text = crate::config::expand_env(&text).map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
        let more: Vec<TokenConfig> =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
        all.extend(more);
    }
    Ok(Some(all))
}

/// A token of the configuration with the `admin` role in `project`, for the CLI to call the
/// repo's own server with (`Ok(None)`: authentication is off, or no token has the role).
pub fn admin_token(config: &AuthConfig, repo_dir: &Path, project: &str) -> Result<Option<String>, String> {
    let Some(all) = tokens(config, repo_dir)? else {
        return Ok(None);
    };
    Ok(all
        .into_iter()
        .find(|t| match &t.roles {
            RoleGrant::All(r) => r.contains(&Role::Admin),
            RoleGrant::PerProject(m) => m
                .get(project)
                .into_iter()
                .chain(m.get("*"))
                .any(|r| r.contains(&Role::Admin)),
        })
        .map(|t| t.token))
}

/// The roles that may use a route (any one of them; `admin` always may); `None`: public.
pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    match path {
        "/health" | "/openapi.json" | "/ui" | "/ui/" => None,
        p if p == "/docs" || p.starts_with("/docs/") => None,
        "/get-online-features" => Some(&[Role::ReadOnline]),
        "/get-historical-features" => Some(&[Role::ReadOffline]),
        "/registry" | "/registry/history" | "/freshness" => Some(&[Role::ReadOnline, Role::ReadOffline, Role::Write]),
        "/push" | "/write-to-online-store" => Some(&[Role::Write]),
        _ => Some(&[Role::Admin]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let yaml = r#"
type: token
tokens:
  - {name: reader, token: reader-token-0123456789, roles: [read_online]}
  - {name: trainer, token: trainer-token-0123456789, roles: {p: [read_offline], other: [admin]}}
  - {name: root, token: admin-token-0123456789ab, roles: {"*": [admin]}}
"#;
        let c: AuthConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Authenticator::from_config(&c, Path::new("/")).unwrap().unwrap()
    }

    #[test]
    fn tokens_map_to_roles_per_project() {
        let a = auth();
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            a.check(Some(&bearer("reader-token-0123456789")), "p", &[Role::ReadOnline]),
            Ok("reader".into())
        );
        assert_eq!(
            a.check(Some(&bearer("reader-token-0123456789")), "p", &[Role::Write]),
            Err(Denied::Forbidden("reader".into()))
        );
        assert_eq!(
            a.check(Some(&bearer("trainer-token-0123456789")), "p", &[Role::ReadOffline]),
            Ok("trainer".into())
        );
        assert!(a
            .check(Some(&bearer("trainer-token-0123456789")), "p", &[Role::Admin])
            .is_err());
        assert!(a
            .check(Some(&bearer("trainer-token-0123456789")), "other", &[Role::Write])
            .is_ok());
        assert!(a
            .check(Some(&bearer("admin-token-0123456789ab")), "any", &[Role::Write])
            .is_ok());
        assert_eq!(
            a.check(Some(&bearer("nope-nope-nope-nope")), "p", &[Role::ReadOnline]),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(a.check(None, "p", &[Role::ReadOnline]), Err(Denied::Unauthenticated));
        assert_eq!(
            a.check(Some("Basic abc"), "p", &[Role::ReadOnline]),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn short_tokens_and_empty_lists_are_refused() {
        let c: AuthConfig =
            serde_yaml_ng::from_str("type: token\ntokens: [{name: a, token: short, roles: [admin]}]").unwrap();
        assert!(Authenticator::from_config(&c, Path::new("/"))
            .unwrap_err()
            .contains("16"));
        let c: AuthConfig = serde_yaml_ng::from_str("type: token").unwrap();
        assert!(Authenticator::from_config(&c, Path::new("/")).is_err());
        let c: AuthConfig = serde_yaml_ng::from_str("type: no_auth").unwrap();
        assert!(Authenticator::from_config(&c, Path::new("/")).unwrap().is_none());
    }

    #[test]
    fn routes_need_roles() {
        assert_eq!(roles_for("/health"), None);
        assert_eq!(roles_for("/docs/index.html"), None);
        assert_eq!(roles_for("/get-online-features"), Some(&[Role::ReadOnline][..]));
        assert_eq!(roles_for("/push"), Some(&[Role::Write][..]));
        assert_eq!(roles_for("/apply"), Some(&[Role::Admin][..]));
        assert_eq!(roles_for("/metrics"), Some(&[Role::Admin][..]));
        assert!(roles_for("/registry").unwrap().contains(&Role::ReadOffline));
    }
}
