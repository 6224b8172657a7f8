//! Authentication: who a request is from. In upstream's order: the client certificate (checked
//! against --client-ca-file during the TLS accept), then a bearer token (--token-auth-file,
//! bootstrap tokens from kube-system Secrets, service-account tokens), else anonymous where
//! anonymous requests are allowed.

use std::collections::HashMap;
use std::path::Path;

use crate::Error;
use base64::Engine;
use common::error::Context as _;
use common::tls::PeerIdentity;

use super::UserInfo;
use super::tokens::ServiceAccountTokens;
use crate::cache::Cache;

/// The outcome of authenticating one request.
#[derive(Debug)]
pub enum Authenticated {
    User(UserInfo),
    /// No credentials were presented.
    Anonymous,
    /// Credentials were presented and are not valid: 401, never anonymous.
    Invalid(String),
}

/// The configured authenticators.
#[derive(Default)]
pub struct Authenticators {
    /// --token-auth-file: token -> user.
    static_tokens: HashMap<String, UserInfo>,
    /// --enable-bootstrap-token-auth.
    bootstrap_tokens: bool,
    /// Service-account JWTs (--service-account-key-file).
    pub service_accounts: Option<ServiceAccountTokens>,
}

impl Authenticators {
    pub fn new(
        token_auth_file: Option<&Path>,
        bootstrap_tokens: bool,
        service_accounts: Option<ServiceAccountTokens>,
    ) -> crate::Result<Authenticators> {
        let static_tokens = match token_auth_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .io(|| format!("reading --token-auth-file {}", path.display()))?;
                parse_token_file(&text).map_err(|e| {
                    Error::Invalid(format!("parsing --token-auth-file {}: {e}", path.display()))
                })?
            }
            None => HashMap::new(),
        };
        Ok(Authenticators {
            static_tokens,
            bootstrap_tokens,
            service_accounts,
        })
    }

    /// Authenticates one request from its TLS identity and Authorization header.
    pub fn authenticate(
        &self,
        cache: &Cache,
        peer: Option<&PeerIdentity>,
        authorization: Option<&str>,
    ) -> Authenticated {
        let mut failure = None;
        match peer.map(PeerIdentity::now) {
            Some(Ok((user, groups))) => {
                return Authenticated::User(UserInfo::new(user, groups.to_vec()));
            }
            Some(Err(why)) => failure = Some(why),
            None => {}
        }
        // Other schemes (Basic) are not ours to judge, nor tokens when no token authenticator
        // is configured: the request goes on without them, as upstream's.
        let token_authenticators = !self.static_tokens.is_empty()
            || self.bootstrap_tokens
            || self.service_accounts.is_some();
        if let Some(token) = authorization
            .filter(|_| token_authenticators)
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            return match self.token(cache, token) {
                Ok(user) => Authenticated::User(user),
                Err(why) => Authenticated::Invalid(why),
            };
        }
        match failure {
            Some(why) => Authenticated::Invalid(why),
            None => Authenticated::Anonymous,
        }
    }

    fn token(&self, cache: &Cache, token: &str) -> Result<UserInfo, String> {
        if let Some(user) = self.static_tokens.get(token) {
            return Ok(user.clone());
        }
        if self.bootstrap_tokens
            && let Some((id, secret)) = split_bootstrap_token(token)
        {
            return bootstrap_token_user(cache, id, secret);
        }
        if let Some(sa) = &self.service_accounts
            && token.matches('.').count() == 2
        {
            return sa.authenticate(cache, token);
        }
        Err("invalid bearer token".into())
    }
}

/// Parses upstream's token file: `token,user,uid[,"group1,group2"]` per line.
fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, String> {
    let mut tokens = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line);
        if fields.len() < 3 {
            return Err(format!("line {}: want token,user,uid[,groups]", n + 1));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let mut user = UserInfo::new(&fields[1], groups);
        user.uid = fields[2].clone();
        tokens.insert(fields[0].clone(), user);
    }
    Ok(tokens)
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// `abcdef.0123456789abcdef` -> ("abcdef", "0123456789abcdef"), the bootstrap token format.
pub fn split_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Checks a bootstrap token against its Secret `kube-system/bootstrap-token-ID`, as upstream's
/// bootstrap authenticator: the type, the secret, the authentication usage and the expiry.
fn bootstrap_token_user(cache: &Cache, id: &str, secret: &str) -> Result<UserInfo, String> {
    let invalid = || "invalid bootstrap token".to_owned();
    let secrets = crate::registry::builtin("", "v1", "secrets").expect("secrets are served");
    let key = format!(
        "{}kube-system/bootstrap-token-{id}",
        secrets.key_prefix(cache.root())
    );
    let object = cache.get(secrets, &key).ok_or_else(invalid)?;
    if object.terminating {
        return Err(invalid());
    }
    let value = object.value();
    if value["type"] != "bootstrap.kubernetes.io/token" {
        return Err(invalid());
    }
    let field = |name: &str| -> Option<String> {
        let encoded = value["data"][name].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    if field("token-id").as_deref() != Some(id) || field("token-secret").as_deref() != Some(secret)
    {
        return Err(invalid());
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(invalid());
    }
    if let Some(expiration) = field("expiration") {
        let expires = chrono::DateTime::parse_from_rfc3339(&expiration).map_err(|_| invalid())?;
        if expires < chrono::Utc::now() {
            return Err("the bootstrap token has expired".into());
        }
    }
    let mut groups = vec!["system:bootstrappers".to_owned()];
    for g in field("auth-extra-groups").unwrap_or_default().split(',') {
        let g = g.trim();
        if g.starts_with("system:bootstrappers:") && !groups.iter().any(|x| x == g) {
            groups.push(g.to_owned());
        }
    }
    Ok(UserInfo::new(&format!("system:bootstrap:{id}"), groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let tokens = parse_token_file("# comment\nt1,alice,u1,\"dev,ops\"\nt2,bob,u2\n\n").unwrap();
        assert_eq!(tokens["t1"].name, "alice");
        assert_eq!(tokens["t1"].uid, "u1");
        assert_eq!(tokens["t1"].groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(tokens["t2"].groups, ["system:authenticated"]);
        assert!(parse_token_file("only,two\n").is_err());
    }

    #[test]
    fn bootstrap_token_format() {
        assert_eq!(
            split_bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(split_bootstrap_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(split_bootstrap_token("abcdef.0123"), None);
        assert_eq!(split_bootstrap_token("a.b.c"), None);
    }
}
