//! Who is on the other end of a connection, decided before the upgrade.
//! With `auth.mode: jwt` the user is the `sub` of a signed token (HS256,
//! RS256 or ES256, or a JWKS file selected by `kid`), checked for `exp`,
//! `nbf`, `iss` and `aud`. With `auth.mode: none` (local use only, refused in
//! production) the user is the `user` query parameter. Key material is
//! loaded once at start-up and never logged.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::protocol::is_plain_name;
use crate::settings::{AuthMode, AuthSettings, ConfigError, JwtAlgorithm, JwtSettings};

/// The subprotocol a browser offers next to `bearer.<token>`, and that the server answers with.
pub const SUBPROTOCOL: &str = "roomcast.v1";
const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// Why a handshake's credentials were refused (answered 401).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("the `user` query parameter is required")]
    MissingUser,
    #[error("user ids are 1 to 128 characters of A-Z a-z 0-9 . _ : @ -")]
    InvalidUser,
    #[error("a bearer token is required")]
    MissingToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token is invalid")]
    Invalid,
}

impl AuthError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingUser | AuthError::MissingToken => "missing_credentials",
            AuthError::InvalidUser => "invalid_user",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::Invalid => "invalid_token",
        }
    }
}

/// The token or user id of an upgrade request, wherever it came from.
#[derive(Debug, Default)]
pub struct Credentials {
    /// From `Authorization: Bearer <token>`.
    pub header_token: Option<String>,
    /// From `Sec-WebSocket-Protocol: roomcast.v1, bearer.<token>`.
    pub protocol_token: Option<String>,
    /// From `?token=`.
    pub query_token: Option<String>,
    /// From `?user=` (mode `none`).
    pub query_user: Option<String>,
}

impl Credentials {
    /// Reads the token out of a `Sec-WebSocket-Protocol` header value.
    pub fn token_from_protocols(header: &str) -> Option<String> {
        header.split(',').map(str::trim).find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX)).map(str::to_string)
    }

    /// Whether the client offered the `roomcast.v1` subprotocol, which must then be answered.
    pub fn offers_subprotocol(header: &str) -> bool {
        header.split(',').any(|p| p.trim() == SUBPROTOCOL)
    }
}

/// A connection's identity.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user: String,
    /// When the token stops being valid (`exp` plus the leeway); the
    /// connection is closed with 4001 then.
    pub expires_at: Option<SystemTime>,
    /// The `rooms` claim, for `room_policy: claim`.
    pub rooms: Vec<glob::Pattern>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: Option<u64>,
    #[serde(default)]
    rooms: Vec<String>,
}

enum Keys {
    None,
    /// One key per configured algorithm family.
    Static(Vec<(Algorithm, DecodingKey)>),
    /// Keys selected by the token's `kid`.
    Set(Vec<(Option<String>, Algorithm, DecodingKey)>),
}

/// Checks credentials against the configured mode and keys.
pub struct Authenticator {
    mode: AuthMode,
    query_token: bool,
    keys: Keys,
    allowed: HashSet<Algorithm>,
    settings: JwtSettings,
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

fn read_file(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

impl Authenticator {
    /// Loads the keys the settings point at; a missing or unreadable key
    /// stops start-up with the key's setting named.
    pub fn from_settings(settings: &AuthSettings) -> Result<Authenticator, ConfigError> {
        let jwt = &settings.jwt;
        let allowed: HashSet<Algorithm> = jwt.algorithms.iter().copied().map(algorithm).collect();
        let keys = match settings.mode {
            AuthMode::None => Keys::None,
            AuthMode::Jwt if jwt.jwks_file.is_some() => Keys::Set(load_jwks(jwt)?),
            AuthMode::Jwt => Keys::Static(load_static_keys(jwt)?),
        };
        if settings.mode == AuthMode::Jwt && allowed.is_empty() {
            return Err(ConfigError::new("auth.jwt.algorithms", "list at least one of HS256, RS256, ES256"));
        }
        Ok(Authenticator {
            mode: settings.mode,
            query_token: settings.query_token,
            keys,
            allowed,
            settings: jwt.clone(),
        })
    }

    pub fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        match self.mode {
            AuthMode::None => {
                let user = credentials.query_user.as_deref().ok_or(AuthError::MissingUser)?;
                if !valid_local_user(user) {
                    return Err(AuthError::InvalidUser);
                }
                Ok(Identity { user: user.to_string(), expires_at: None, rooms: Vec::new() })
            }
            AuthMode::Jwt => {
                let query = credentials.query_token.as_ref().filter(|_| self.query_token);
                let token = credentials
                    .header_token
                    .as_ref()
                    .or(credentials.protocol_token.as_ref())
                    .or(query)
                    .ok_or(AuthError::MissingToken)?;
                self.verify(token)
            }
        }
    }

    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if !self.allowed.contains(&header.alg) {
            return Err(AuthError::Invalid);
        }
        let key = match &self.keys {
            Keys::None => return Err(AuthError::Invalid),
            Keys::Static(keys) => keys.iter().find(|(alg, _)| family(*alg) == family(header.alg)).map(|(_, k)| k),
            Keys::Set(keys) => keys
                .iter()
                .find(|(kid, alg, _)| *alg == header.alg && (header.kid.is_none() || *kid == header.kid))
                .map(|(_, _, k)| k),
        }
        .ok_or(AuthError::Invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                _ => AuthError::Invalid,
            }
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 256 || claims.sub.chars().any(char::is_control) {
            return Err(AuthError::Invalid);
        }
        let expires_at = claims.exp.map(|exp| UNIX_EPOCH + Duration::from_secs(exp) + self.settings.leeway);
        let rooms = claims.rooms.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
        Ok(Identity { user: claims.sub, expires_at, rooms })
    }
}

/// HS256, RS256 and ES256 each need a different kind of key.
fn family(alg: Algorithm) -> u8 {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => 0,
        Algorithm::ES256 | Algorithm::ES384 => 2,
        _ => 1,
    }
}

fn load_static_keys(jwt: &JwtSettings) -> Result<Vec<(Algorithm, DecodingKey)>, ConfigError> {
    let mut keys = Vec::new();
    for alg in jwt.algorithms.iter().copied().map(algorithm) {
        let key = match alg {
            Algorithm::HS256 => {
                let secret = match (&jwt.secret_file, &jwt.secret_env) {
                    (Some(path), _) => read_file("auth.jwt.secret_file", path)?,
                    (None, Some(name)) => std::env::var(name)
                        .map_err(|_| ConfigError::new("auth.jwt.secret_env", format!("{name} is not set")))?
                        .into_bytes(),
                    (None, None) => {
                        return Err(ConfigError::new("auth.jwt.secret_file", "HS256 needs secret_file or secret_env"))
                    }
                };
                let secret: Vec<u8> = secret.trim_ascii().to_vec();
                if secret.len() < 32 {
                    return Err(ConfigError::new("auth.jwt.secret_file", "an HS256 secret needs at least 32 bytes"));
                }
                DecodingKey::from_secret(&secret)
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let path = jwt
                    .key_file
                    .as_ref()
                    .ok_or_else(|| ConfigError::new("auth.jwt.key_file", "RS256 and ES256 need a PEM public key"))?;
                let pem = read_file("auth.jwt.key_file", path)?;
                let key = if alg == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                };
                key.map_err(|e| ConfigError::new("auth.jwt.key_file", format!("not a usable PEM key: {e}")))?
            }
            _ => unreachable!("only HS256, RS256 and ES256 are configurable"),
        };
        keys.push((alg, key));
    }
    Ok(keys)
}

fn load_jwks(jwt: &JwtSettings) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, ConfigError> {
    let path = jwt.jwks_file.as_ref().expect("checked by the caller");
    let set: JwkSet = serde_json::from_slice(&read_file("auth.jwt.jwks_file", path)?)
        .map_err(|e| ConfigError::new("auth.jwt.jwks_file", format!("not a JWK set: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let alg = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
            Some("HS256") => Algorithm::HS256,
            Some("RS256") | None if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)) => {
                Algorithm::RS256
            }
            Some("ES256") | None
                if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)) =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| ConfigError::new("auth.jwt.jwks_file", format!("unusable key: {e}")))?;
        keys.push((jwk.common.key_id.clone(), alg, key));
    }
    if keys.is_empty() {
        return Err(ConfigError::new("auth.jwt.jwks_file", "holds no HS256, RS256 or ES256 key"));
    }
    Ok(keys)
}

/// Local user ids: letters, digits and `. _ : @ -`.
fn valid_local_user(user: &str) -> bool {
    is_plain_name(user, b"._:@-")
}

/// Whether a room is allowed by the token's `rooms` claim.
pub fn claim_allows(identity: &Identity, room: &str) -> bool {
    identity.rooms.iter().any(|pattern| pattern.matches(room))
}
