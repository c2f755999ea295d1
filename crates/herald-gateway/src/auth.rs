//! Who may read and write which channels: JWT verification and the grants it yields.
//!
//! A token's claims name the channel globs its holder may subscribe to and publish to;
//! every holder may also read its own notification channel (`notifications:user:<sub>`)
//! and the broadcast channel. Without a verifier configured the gateway is anonymous and
//! every request gets [`Grants::anonymous`] (full access); the CLI refuses that on a
//! non-loopback address unless told otherwise.
//!
//! Pattern subscriptions follow one rule (see [`Grants::may_psubscribe`]): a pattern is
//! allowed only when every channel it can match is readable, which this module decides
//! conservatively from the pattern's text, never by trying channels. So `notifications:*`
//! is refused to a holder of `orders:*`: it could match another user's notifications.
//!
//! This module knows nothing of HTTP; [`crate::api`] maps [`AuthError`] to 401/403.

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_engine::Glob;
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

/// Prefix of every user's private notification channel; the user id follows.
pub const USER_NOTIFICATIONS_PREFIX: &str = "notifications:user:";
/// The channel every authenticated user may read.
pub const BROADCAST_NOTIFICATIONS: &str = "notifications:broadcast";
/// Longest token accepted, in bytes: a bound on work before the signature is checked.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most globs a token may grant per list: matching cost per request is linear in them.
pub const MAX_GRANT_GLOBS: usize = 256;

/// The claims Herald reads from a token. Unknown claims are ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id; names the user's notification channel. A number is taken as its
    /// decimal text (`42` and `"42"` are the same user).
    #[serde(deserialize_with = "string_or_number")]
    pub sub: String,
    /// Channel globs the holder may subscribe to.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Channel globs the holder may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Operator rights: unfiltered channel listings (and, later, the dashboard).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

/// Why a request was not authenticated or not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the request while auth is on.
    #[error("a token is required: send 'Authorization: Bearer <jwt>' or '?token=<jwt>'")]
    MissingToken,
    /// The token's `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The signature does not verify with the configured key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Not a well-formed token, wrong algorithm, or missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Authenticated, but the grants do not cover the channel or pattern.
    #[error("not allowed to {action} '{name}'")]
    Forbidden {
        /// `subscribe to`, `publish to`, ...
        action: &'static str,
        /// The channel or pattern.
        name: String,
    },
}

impl AuthError {
    /// The stable error code of the HTTP body and WebSocket error frame.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "token_required",
            AuthError::Expired => "token_expired",
            AuthError::BadSignature => "token_invalid_signature",
            AuthError::Invalid(_) => "token_invalid",
            AuthError::Forbidden { .. } => "forbidden",
        }
    }

    /// True for 401 (who are you) as opposed to 403 (you may not).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(self, AuthError::Forbidden { .. })
    }
}

/// Failure to set up token verification.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key file could not be read.
    #[error("cannot read the JWT public key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not an RSA or EC public key in PEM form.
    #[error("{path} is not an RSA or EC public key in PEM format")]
    NotAKey {
        /// The file.
        path: String,
    },
    /// An algorithm name jsonwebtoken does not know, or one that does not fit the key.
    #[error("JWT algorithm '{0}' does not fit the key (HS256 for a secret; RS256/RS384/RS512/PS256/PS384/PS512 for RSA; ES256/ES384 for EC)")]
    Algorithm(String),
    /// An empty HS256 secret.
    #[error("the JWT secret must not be empty")]
    EmptySecret,
}

/// Checks tokens: one key, one algorithm, `exp` required, no leeway.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// RSA or EC public key from a PEM file. The algorithm defaults to RS256 for RSA keys
    /// and ES256 for EC keys.
    pub fn public_key_file(path: &Path, algorithm: Option<&str>) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let algorithm = algorithm
            .map(|name| {
                Algorithm::from_str(&name.to_ascii_uppercase())
                    .map_err(|_| KeyError::Algorithm(name.to_owned()))
            })
            .transpose()?;
        let (key, default) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            (key, Algorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            (key, Algorithm::ES256)
        } else {
            return Err(KeyError::NotAKey { path: shown });
        };
        let algorithm = algorithm.unwrap_or(default);
        let fits = match default {
            Algorithm::RS256 => matches!(
                algorithm,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            _ => matches!(algorithm, Algorithm::ES256 | Algorithm::ES384),
        };
        if !fits {
            return Err(KeyError::Algorithm(format!("{algorithm:?}")));
        }
        Ok(Self::with(key, algorithm))
    }

    fn with(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_exp = true;
        // `sub` is required by `Claims` itself, which also accepts a number there;
        // jsonwebtoken's own check would take a numeric `sub` for a missing one.
        validation.set_required_spec_claims(&["exp"]);
        Verifier { key, validation }
    }

    /// Verifies `token` and returns its grants.
    pub fn verify(&self, token: &str) -> Result<Grants, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Invalid(err.to_string()),
            })?
            .claims;
        Grants::from_claims(claims)
    }
}

/// What one request may do.
#[derive(Debug, Clone)]
pub struct Grants {
    /// `None` for anonymous access.
    user: Option<String>,
    subscribe: Vec<Glob>,
    publish: Vec<Glob>,
    anonymous: bool,
    admin: bool,
    /// Seconds since the epoch after which the grants lapse.
    expires_at: Option<u64>,
}

impl Grants {
    /// Full access: the gateway runs without auth.
    pub fn anonymous() -> Self {
        Grants {
            user: None,
            subscribe: Vec::new(),
            publish: Vec::new(),
            anonymous: true,
            admin: true,
            expires_at: None,
        }
    }

    /// The grants of verified claims.
    pub fn from_claims(claims: Claims) -> Result<Self, AuthError> {
        if claims.subscribe.len() > MAX_GRANT_GLOBS || claims.publish.len() > MAX_GRANT_GLOBS {
            return Err(AuthError::Invalid(format!(
                "more than {MAX_GRANT_GLOBS} globs in 'subscribe' or 'publish'"
            )));
        }
        let compile = |globs: &[String]| -> Vec<Glob> {
            globs
                .iter()
                .map(|glob| Glob::new(glob.as_bytes()))
                .collect()
        };
        Ok(Grants {
            subscribe: compile(&claims.subscribe),
            publish: compile(&claims.publish),
            user: Some(claims.sub),
            anonymous: false,
            admin: claims.admin,
            expires_at: Some(claims.exp),
        })
    }

    /// The user id (`sub`), if authenticated.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// True for operators (and anonymous mode): channel listings are not filtered.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// When the token expires, seconds since the epoch.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The subscribe globs granted, as given in the token.
    pub fn subscribe_globs(&self) -> Vec<String> {
        Self::texts(&self.subscribe)
    }

    /// The publish globs granted, as given in the token.
    pub fn publish_globs(&self) -> Vec<String> {
        Self::texts(&self.publish)
    }

    fn texts(globs: &[Glob]) -> Vec<String> {
        globs
            .iter()
            .map(|glob| String::from_utf8_lossy(glob.pattern()).into_owned())
            .collect()
    }

    fn own_channels(&self) -> impl Iterator<Item = String> + '_ {
        self.user
            .iter()
            .map(|user| format!("{USER_NOTIFICATIONS_PREFIX}{user}"))
            .chain(self.user.iter().map(|_| BROADCAST_NOTIFICATIONS.to_owned()))
    }

    /// May the holder read `channel`?
    pub fn may_subscribe(&self, channel: &[u8]) -> bool {
        self.anonymous
            || self.subscribe.iter().any(|glob| glob.matches(channel))
            || self.own_channels().any(|own| own.as_bytes() == channel)
    }

    /// May the holder subscribe to `pattern`? Only when every channel the pattern can
    /// match is readable: the pattern's text equals a granted glob (Redis ACL's rule for
    /// PSUBSCRIBE), or it is literal and names a readable channel, or a granted glob of
    /// the form `<prefix>*` covers it because the pattern begins with that literal
    /// prefix. Anything else is refused, even if it would match only allowed channels.
    pub fn may_psubscribe(&self, pattern: &[u8]) -> bool {
        if self.anonymous {
            return true;
        }
        let compiled = Glob::new(pattern);
        if compiled.is_literal() {
            return self.may_subscribe(compiled.literal_prefix());
        }
        self.subscribe
            .iter()
            .any(|granted| glob_covers(granted, pattern, &compiled))
    }

    /// May the holder publish to `channel`?
    pub fn may_publish(&self, channel: &[u8]) -> bool {
        self.anonymous || self.publish.iter().any(|glob| glob.matches(channel))
    }

    /// `Ok` or the matching [`AuthError::Forbidden`].
    pub fn check_subscribe(&self, channel: &str) -> Result<(), AuthError> {
        self.check(
            self.may_subscribe(channel.as_bytes()),
            "subscribe to",
            channel,
        )
    }

    /// `Ok` or the matching [`AuthError::Forbidden`].
    pub fn check_psubscribe(&self, pattern: &str) -> Result<(), AuthError> {
        self.check(
            self.may_psubscribe(pattern.as_bytes()),
            "subscribe to pattern",
            pattern,
        )
    }

    /// `Ok` or the matching [`AuthError::Forbidden`].
    pub fn check_publish(&self, channel: &str) -> Result<(), AuthError> {
        self.check(self.may_publish(channel.as_bytes()), "publish to", channel)
    }

    fn check(&self, allowed: bool, action: &'static str, name: &str) -> Result<(), AuthError> {
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                action,
                name: name.to_owned(),
            })
        }
    }
}

/// True when every channel `pattern` can match is matched by `granted`: equal texts, or
/// `granted` is `<literal prefix>*` and `pattern`'s own literal prefix starts with it.
fn glob_covers(granted: &Glob, pattern_text: &[u8], pattern: &Glob) -> bool {
    if granted.pattern() == pattern_text {
        return true;
    }
    let text = granted.pattern();
    let Some(prefix) = text.strip_suffix(b"*") else {
        return false;
    };
    let prefix_is_literal = !prefix
        .iter()
        .any(|byte| matches!(byte, b'*' | b'?' | b'[' | b'\\'));
    prefix_is_literal && pattern.literal_prefix().starts_with(prefix)
}

/// Mints HS256 tokens with the gateway's own secret: the development sign-in of
/// `--gateway-dev-tokens`, never a production login.
pub struct TokenSigner {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(HS256)")
    }
}

impl TokenSigner {
    /// A signer for `secret`, the same secret [`Verifier::hs256`] verifies with.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(TokenSigner {
            key: EncodingKey::from_secret(secret),
        })
    }

    /// The signed token of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|err| AuthError::Invalid(format!("cannot sign: {err}")))
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grants(subscribe: &[&str], publish: &[&str]) -> Grants {
        Grants::from_claims(Claims {
            sub: "42".to_owned(),
            subscribe: subscribe.iter().map(|s| (*s).to_owned()).collect(),
            publish: publish.iter().map(|s| (*s).to_owned()).collect(),
            exp: now_secs() + 60,
            admin: false,
        })
        .expect("valid claims")
    }

    #[test]
    fn own_notifications_and_broadcast_are_implicit_others_are_not() {
        let user = grants(&["orders:*"], &[]);
        assert!(user.may_subscribe(b"orders:1"));
        assert!(user.may_subscribe(b"notifications:user:42"));
        assert!(user.may_subscribe(b"notifications:broadcast"));
        assert!(!user.may_subscribe(b"notifications:user:43"));
        assert!(!user.may_subscribe(b"notifications:user:420"));
        assert!(!user.may_subscribe(b"payments:1"));
        assert!(!user.may_publish(b"orders:1"));
    }

    #[test]
    fn patterns_need_a_covering_grant() {
        let user = grants(&["orders:*", "chat:room?"], &[]);
        assert!(user.may_psubscribe(b"orders:*"));
        assert!(user.may_psubscribe(b"orders:eu:*"));
        assert!(user.may_psubscribe(b"orders:?"));
        assert!(user.may_psubscribe(b"chat:room?"));
        assert!(!user.may_psubscribe(b"chat:room*"));
        assert!(!user.may_psubscribe(b"order*"));
        assert!(!user.may_psubscribe(b"*"));
        assert!(!user.may_psubscribe(b"notifications:*"));
        assert!(!user.may_psubscribe(b"notifications:user:*"));
        assert!(!user.may_psubscribe(b"notifications:user:4?"));
        // A literal pattern is its one channel.
        assert!(user.may_psubscribe(b"notifications:user:42"));
        assert!(!user.may_psubscribe(b"notifications:user:43"));
    }

    #[test]
    fn escapes_in_a_grant_prefix_are_not_trusted_as_literals() {
        let user = grants(&["a\\*b*"], &[]);
        assert!(!user.may_psubscribe(b"a\\*bc*"));
        assert!(user.may_psubscribe(b"a\\*b*"));
    }

    #[test]
    fn anonymous_may_do_anything() {
        let anonymous = Grants::anonymous();
        assert!(anonymous.may_psubscribe(b"*"));
        assert!(anonymous.may_publish(b"x"));
        assert!(anonymous.is_admin());
    }

    #[test]
    fn hs256_round_trip_expiry_and_signature() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let verifier = Verifier::hs256(b"secret").expect("key");
        let claims = Claims {
            sub: "7".to_owned(),
            subscribe: vec!["a:*".to_owned()],
            publish: vec![],
            exp: now_secs() + 60,
            admin: false,
        };
        let sign = |claims: &Claims, secret: &[u8]| {
            encode(
                &Header::default(),
                claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("encode")
        };
        let granted = verifier.verify(&sign(&claims, b"secret")).expect("valid");
        assert_eq!(granted.user(), Some("7"));
        assert!(granted.may_subscribe(b"a:1"));
        assert_eq!(
            verifier.verify(&sign(&claims, b"other")).unwrap_err(),
            AuthError::BadSignature
        );
        let expired = Claims {
            exp: now_secs() - 10,
            ..claims
        };
        assert_eq!(
            verifier.verify(&sign(&expired, b"secret")).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verifier.verify("nonsense").unwrap_err().code(),
            "token_invalid"
        );
        assert!(Verifier::hs256(b"").is_err());
        let numeric = serde_json::json!({"sub": 42, "exp": now_secs() + 60});
        let token = encode(
            &Header::default(),
            &numeric,
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        let granted = verifier.verify(&token).expect("numeric sub");
        assert!(granted.may_subscribe(b"notifications:user:42"));
        let anonymous = serde_json::json!({"exp": now_secs() + 60});
        let token = encode(
            &Header::default(),
            &anonymous,
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encode");
        assert_eq!(verifier.verify(&token).unwrap_err().code(), "token_invalid");
    }

    fn literal_char() -> impl Strategy<Value = u8> {
        prop::sample::select(b"ab:".to_vec())
    }

    proptest! {
        /// Soundness of the pattern rule: when a pattern is allowed, no channel it matches
        /// is unreadable.
        #[test]
        fn an_allowed_pattern_matches_only_readable_channels(
            grant in prop::collection::vec(prop::sample::select(b"ab:*?".to_vec()), 0..5),
            pattern in prop::collection::vec(prop::sample::select(b"ab:*?".to_vec()), 0..6),
            channels in prop::collection::vec(prop::collection::vec(literal_char(), 0..7), 1..40),
        ) {
            let grant = String::from_utf8(grant).expect("ascii");
            let user = grants(&[grant.as_str()], &[]);
            if user.may_psubscribe(&pattern) {
                let compiled = Glob::new(&pattern);
                for channel in channels {
                    if compiled.matches(&channel) {
                        prop_assert!(user.may_subscribe(&channel),
                            "grant {grant:?} pattern {:?} channel {:?}",
                            String::from_utf8_lossy(&pattern), String::from_utf8_lossy(&channel));
                    }
                }
            }
        }
    }
}
