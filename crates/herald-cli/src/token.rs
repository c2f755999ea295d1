//! `herald token`: mints a gateway JWT for development and tests.
//!
//! HS256 with the same secret the server is given (flag or `HERALD_GATEWAY_JWT_SECRET`),
//! or RS256/ES256 with a private key file. Production tokens come from the application's
//! own login service; this helper exists so a README example and a test can get one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use herald_gateway::auth::now_secs;
use herald_gateway::Claims;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

/// Flags of `herald token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// User id (`sub`): the holder may read `notifications:user:<sub>`.
    #[arg(long)]
    pub sub: String,
    /// Channel glob the holder may subscribe to (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub subscribe: Vec<String>,
    /// Channel glob the holder may publish to (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub publish: Vec<String>,
    /// Lifetime: seconds, or a number with s, m, h or d (default 1h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Mark the holder as an operator (unfiltered channel listings).
    #[arg(long)]
    pub admin: bool,
    /// HS256 secret (the server's --gateway-jwt-secret).
    #[arg(
        long,
        value_name = "SECRET",
        env = "HERALD_GATEWAY_JWT_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// PEM private key (RSA or EC) instead of a secret.
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    pub private_key: Option<PathBuf>,
    /// Algorithm for --private-key (default RS256 for RSA keys, ES256 for EC keys).
    #[arg(long, value_name = "ALG", requires = "private_key")]
    pub algorithm: Option<String>,
}

/// Parses `90`, `90s`, `15m`, `2h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 3600, 30s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        "d" => value.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("'{text}' is not a duration like 3600, 30s, 15m, 1h or 7d"))?;
    if seconds == 0 {
        return Err("the ttl must be at least one second".to_owned());
    }
    Ok(Duration::from_secs(seconds))
}

/// The signed token.
pub fn mint(args: TokenArgs) -> anyhow::Result<String> {
    let claims = Claims {
        sub: args.sub,
        subscribe: args.subscribe,
        publish: args.publish,
        exp: now_secs().saturating_add(args.ttl.as_secs()),
        admin: args.admin,
    };
    let (key, algorithm) = match (&args.secret, &args.private_key) {
        (Some(secret), None) => {
            if secret.is_empty() {
                bail!("the secret must not be empty");
            }
            (
                EncodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            )
        }
        (None, Some(path)) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
                (key, Algorithm::RS256)
            } else if let Ok(key) = EncodingKey::from_ec_pem(&pem) {
                (key, Algorithm::ES256)
            } else {
                bail!(
                    "{} is not an RSA or EC private key in PEM format (PKCS#8 for EC)",
                    path.display()
                );
            }
        }
        _ => bail!("give --secret (or HERALD_GATEWAY_JWT_SECRET) or --private-key"),
    };
    let algorithm = match &args.algorithm {
        Some(name) => name
            .to_ascii_uppercase()
            .parse::<Algorithm>()
            .map_err(|_| anyhow::anyhow!("unknown JWT algorithm '{name}'"))?,
        None => algorithm,
    };
    encode(&Header::new(algorithm), &claims, &key).context("cannot sign the token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("99999999999999999d").is_err());
    }
}
