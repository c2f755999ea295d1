//! [`ConnectOptions`]: what [`crate::Herald::connect_with`] takes besides the URL: the TLS
//! trust anchors and client identity of `rediss://` connections, and a password asked for
//! at every connection instead of the URL's. It only carries them; `remote` applies them.

use std::sync::Arc;

#[cfg(feature = "tls")]
use crate::error::Error;

/// Where [`ConnectOptions::password_from`] reads the password.
pub(crate) type PasswordSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Options for [`crate::Herald::connect_with`]. [`ConnectOptions::default`] is what
/// [`crate::Herald::connect`] uses.
///
/// With feature `tls` (on by default), a `rediss://` connection trusts the system's root
/// certificates unless [`ConnectOptions::tls_root_certificates`] names others, and sends no
/// client certificate unless [`ConnectOptions::tls_client_identity`] gives one (for servers
/// started with `tls-auth-clients yes`).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use herald_client::{ConnectOptions, Herald};
///
/// let ca = std::fs::read("ca.pem")?;
/// let options = ConnectOptions::default().tls_root_certificates(ca);
/// let herald = Herald::connect_with("rediss://redis.internal:6380/", &options).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ConnectOptions {
    password: Option<PasswordSource>,
    #[cfg(feature = "tls")]
    root_certificates: Option<Vec<u8>>,
    #[cfg(feature = "tls")]
    client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ConnectOptions");
        debug.field("password_from", &self.password.is_some());
        // Certificates are long and keys secret: say only whether they are set.
        #[cfg(feature = "tls")]
        debug
            .field("root_certificates", &self.root_certificates.is_some())
            .field("client_identity", &self.client_identity.is_some());
        debug.finish()
    }
}

impl ConnectOptions {
    /// Asks `current` for the password at every connection and reconnection, instead of
    /// using the URL's: for a password that changes while the client runs (a secret
    /// rotated by the application, a server's own `requirepass` read by a process that
    /// embeds it). The user is the URL's, else `default`; `None` authenticates with an
    /// empty password, which a server without a password accepts for `default`
    /// (Redis's `nopass`). Connections already open stay as they are: a server keeps a
    /// connection authenticated when its password changes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald_client::{ConnectOptions, Herald};
    ///
    /// let options = ConnectOptions::default()
    ///     .password_from(|| std::fs::read_to_string("/run/secrets/redis").ok());
    /// let herald = Herald::connect_with("redis://cache.internal:6379/", &options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn password_from(
        mut self,
        current: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.password = Some(Arc::new(current));
        self
    }

    /// The source given to [`ConnectOptions::password_from`].
    pub(crate) fn password_source(&self) -> Option<PasswordSource> {
        self.password.clone()
    }

    /// Trusts only the CA certificates in `pem` (one or more PEM blocks) for the server's
    /// certificate, instead of the system's roots. Needs a `rediss://` URL.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Presents the client certificate chain `certificate_pem` with its private key
    /// `key_pem` (mutual TLS). Needs a `rediss://` URL.
    #[cfg(feature = "tls")]
    pub fn tls_client_identity(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// The certificates to hand the `redis` crate, when any were given. The crate parses
    /// them again; this only refuses a root PEM without any certificate in it, which the
    /// crate would take for an empty trust store.
    #[cfg(feature = "tls")]
    pub(crate) fn certificates(&self) -> Result<Option<redis::TlsCertificates>, Error> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};

        if self.root_certificates.is_none() && self.client_identity.is_none() {
            return Ok(None);
        }
        if let Some(pem) = &self.root_certificates {
            let mut count = 0;
            for certificate in CertificateDer::pem_slice_iter(pem) {
                certificate.map_err(|err| {
                    Error::InvalidTls(format!("root certificates: malformed PEM: {err}"))
                })?;
                count += 1;
            }
            if count == 0 {
                return Err(Error::InvalidTls(
                    "root certificates: no PEM certificate found".into(),
                ));
            }
        }
        Ok(Some(redis::TlsCertificates {
            client_tls: self
                .client_identity
                .clone()
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.root_certificates.clone(),
        }))
    }
}
