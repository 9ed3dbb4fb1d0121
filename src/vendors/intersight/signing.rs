//! Intersight's HTTP Signature authentication (`hs2019`), signed the way Cisco's `intersight`
//! SDK signs (`intersight/signing.py`, `HttpSigningConfiguration` with the signed headers
//! Cisco's examples configure):
//!
//! ```text
//! (request-target): get /api/v1/compute/PhysicalSummaries?%24filter=…
//! host: intersight.com
//! date: Fri, 04 Dec 2026 12:00:00 GMT
//! digest: SHA-256=<base64 of SHA-256 of the body, the empty string for a GET>
//! ```
//!
//! joined with `\n`, signed with the API key's private key (RSA: PKCS#1 v1.5 over SHA-256,
//! what Cisco's examples select for RSA keys; EC P-256: ECDSA over SHA-256, DER-encoded), and
//! sent as `Authorization: Signature keyId="…",algorithm="hs2019",headers="(request-target)
//! host date digest",signature="…"`.
//!
//! Keys are read from PEM as Intersight hands them out: `RSA PRIVATE KEY` (PKCS#1),
//! `EC PRIVATE KEY` (SEC1) or `PRIVATE KEY` (PKCS#8, RSA or EC). Encrypted keys are refused.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use sha2::{Digest as _, Sha256};

/// The headers signed, in order, as Cisco's examples configure the SDK.
pub const SIGNED_HEADERS: &str = "(request-target) host date digest";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key: {0}")]
    Pem(String),
    #[error("encrypted private keys are not supported; decrypt it into a Secret instead")]
    Encrypted,
    #[error(
        "unsupported PEM block {0:?} (expected RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)"
    )]
    Block(String),
    #[error("the key is neither an RSA key (2048 bits or more) nor an EC key on P-256: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Sign,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// An Intersight API key: its id and the private key that signs requests.
pub struct ApiKey {
    key_id: String,
    signer: Signer,
    rng: SystemRandom,
}

/// A public key as the verifying side holds it (the simulator, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// DER `RSAPublicKey` (PKCS#1).
    Rsa(Vec<u8>),
    /// Uncompressed P-256 point.
    EcP256(Vec<u8>),
}

// Never the key material.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self.signer {
            Signer::Rsa(_) => "rsa",
            Signer::Ec(_) => "ec-p256",
        };
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id)
            .field("algorithm", &alg)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    pub fn from_pem(key_id: &str, pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|e| KeyError::Pem(e.to_string()))?;
        let der = block.contents();
        let rng = SystemRandom::new();
        let signer = match block.tag() {
            "RSA PRIVATE KEY" => Signer::Rsa(
                RsaKeyPair::from_der(der).map_err(|e| KeyError::Rejected(e.to_string()))?,
            ),
            "EC PRIVATE KEY" => Signer::Ec(ec_from_pkcs8(&sec1_to_pkcs8(der), &rng)?),
            "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(der) {
                Ok(k) => Signer::Rsa(k),
                Err(_) => Signer::Ec(ec_from_pkcs8(der, &rng)?),
            },
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            other => return Err(KeyError::Block(other.to_owned())),
        };
        Ok(Self {
            key_id: key_id.to_owned(),
            signer,
            rng,
        })
    }

    /// A fresh P-256 key (the demo's key pair), as PKCS#8 PEM, which Cisco's SDK reads too.
    pub fn generate_ec_pem() -> Result<String, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| KeyError::Sign)?;
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref())))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> PublicKey {
        match &self.signer {
            Signer::Rsa(k) => PublicKey::Rsa(k.public_key().as_ref().to_vec()),
            Signer::Ec(k) => PublicKey::EcP256(k.public_key().as_ref().to_vec()),
        }
    }

    /// The headers to add to a request: `Date`, `Digest`, `Authorization`. `target` is the
    /// path and query exactly as sent; `host` the `Host` header exactly as sent.
    pub fn sign(
        &self,
        method: &str,
        target: &str,
        host: &str,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedHeaders, KeyError> {
        let date = http_date(now);
        let digest = body_digest(body);
        let text = signing_string(method, target, host, &date, &digest);
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut out = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    text.as_bytes(),
                    &mut out,
                )
                .map_err(|_| KeyError::Sign)?;
                out
            }
            Signer::Ec(k) => k
                .sign(&self.rng, text.as_bytes())
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec(),
        };
        let authorization = format!(
            "Signature keyId=\"{}\",algorithm=\"hs2019\",headers=\"{SIGNED_HEADERS}\",signature=\"{}\"",
            self.key_id,
            B64.encode(sig)
        );
        Ok(SignedHeaders {
            date,
            digest,
            authorization,
        })
    }
}

pub struct SignedHeaders {
    pub date: String,
    pub digest: String,
    pub authorization: String,
}

/// The string both sides sign: each signed header as `name: value`, in order, joined by `\n`.
pub fn signing_string(method: &str, target: &str, host: &str, date: &str, digest: &str) -> String {
    format!(
        "(request-target): {} {target}\nhost: {host}\ndate: {date}\ndigest: {digest}",
        method.to_ascii_lowercase()
    )
}

/// RFC 3230 `Digest` of a body, as the SDK computes it (SHA-256, base64).
pub fn body_digest(body: &[u8]) -> String {
    format!("SHA-256={}", B64.encode(Sha256::digest(body)))
}

/// IMF-fixdate, what Python's `formatdate(usegmt=True)` gives.
pub fn http_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

impl PublicKey {
    /// Verifies a base64 signature over `text`: RSA as PKCS#1 v1.5 or PSS (the SDK's default
    /// for RSA keys when no algorithm is chosen), EC as DER ECDSA, all over SHA-256.
    pub fn verify(&self, text: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = B64.decode(signature_b64) else {
            return false;
        };
        match self {
            Self::Rsa(der) => [
                &signature::RSA_PKCS1_2048_8192_SHA256 as &dyn signature::VerificationAlgorithm,
                &signature::RSA_PSS_2048_8192_SHA256,
            ]
            .into_iter()
            .any(|alg| {
                signature::UnparsedPublicKey::new(alg, der)
                    .verify(text, &sig)
                    .is_ok()
            }),
            Self::EcP256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(text, &sig)
                    .is_ok()
            }
        }
    }

    /// Reads a `PUBLIC KEY` (SubjectPublicKeyInfo) PEM, as `openssl pkey -pubout` or
    /// pycryptodome's `export_key()` writes it.
    pub fn from_spki_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text.trim()).map_err(|e| KeyError::Pem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::Block(block.tag().to_owned()));
        }
        let rejected = || KeyError::Rejected("malformed SubjectPublicKeyInfo".into());
        let (spki, _) = der_item(block.contents(), 0x30).ok_or_else(rejected)?;
        let (alg, rest) = der_item(spki, 0x30).ok_or_else(rejected)?;
        let (oid, params) = der_item(alg, 0x06).ok_or_else(rejected)?;
        let (bits, _) = der_item(rest, 0x03).ok_or_else(rejected)?;
        let key = bits.strip_prefix(&[0u8]).ok_or_else(rejected)?.to_vec();
        match oid {
            OID_RSA => Ok(Self::Rsa(key)),
            OID_EC if der_item(params, 0x06).map(|(c, _)| c) == Some(OID_P256) => {
                Ok(Self::EcP256(key))
            }
            _ => Err(KeyError::Rejected(
                "only RSA and EC P-256 public keys".into(),
            )),
        }
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn ec_from_pkcs8(der: &[u8], rng: &SystemRandom) -> Result<EcdsaKeyPair, KeyError> {
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, rng)
        .map_err(|e| KeyError::Rejected(e.to_string()))
}

/// Wraps a SEC1 `ECPrivateKey` in a PKCS#8 `PrivateKeyInfo` for P-256 (ring reads only the
/// latter). A key on another curve names that curve inside and is then rejected by ring.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut alg = der_tlv(0x06, OID_EC);
    alg.extend(der_tlv(0x06, OID_P256));
    let mut body = der_tlv(0x02, &[0]);
    body.extend(der_tlv(0x30, &alg));
    body.extend(der_tlv(0x04, sec1));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The content of the DER item at the start of `input` if its tag is `tag`, and what follows.
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PEM: &str = include_str!("../../../tests/fixtures/intersight/rsa-pkcs1.pem");
    const RSA_PUB: &str = include_str!("../../../tests/fixtures/intersight/rsa-public.pem");
    const EC_SEC1_PEM: &str = include_str!("../../../tests/fixtures/intersight/ec-sec1.pem");
    const EC_PUB: &str = include_str!("../../../tests/fixtures/intersight/ec-public.pem");

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    }

    fn roundtrip(key: &ApiKey, public: &PublicKey) {
        let target = "/api/v1/compute/PhysicalSummaries?%24filter=Name%20eq%20%27a%27";
        let h = key
            .sign("GET", target, "intersight.com", b"", now())
            .unwrap();
        assert_eq!(h.date, "Fri, 04 Dec 2026 12:00:00 GMT");
        assert_eq!(
            h.digest,
            "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        let sig = h
            .authorization
            .split("signature=\"")
            .nth(1)
            .and_then(|s| s.strip_suffix('"'))
            .unwrap();
        assert!(h.authorization.starts_with(
            "Signature keyId=\"kid/1\",algorithm=\"hs2019\",headers=\"(request-target) host date digest\","
        ));
        let text = signing_string("GET", target, "intersight.com", &h.date, &h.digest);
        assert!(public.verify(text.as_bytes(), sig));
        let tampered = signing_string("GET", target, "evil.example", &h.date, &h.digest);
        assert!(!public.verify(tampered.as_bytes(), sig));
    }

    #[test]
    fn rsa_pkcs1_keys_sign_what_their_public_key_verifies() {
        let key = ApiKey::from_pem("kid/1", RSA_PEM).unwrap();
        let public = PublicKey::from_spki_pem(RSA_PUB).unwrap();
        assert_eq!(key.public_key(), public);
        roundtrip(&key, &public);
    }

    #[test]
    fn ec_sec1_and_generated_pkcs8_keys_sign() {
        let key = ApiKey::from_pem("kid/1", EC_SEC1_PEM).unwrap();
        let public = PublicKey::from_spki_pem(EC_PUB).unwrap();
        assert_eq!(key.public_key(), public);
        roundtrip(&key, &public);
        let generated = ApiKey::from_pem("kid/1", &ApiKey::generate_ec_pem().unwrap()).unwrap();
        roundtrip(&generated, &generated.public_key());
    }

    #[test]
    fn wrong_blocks_and_garbage_are_refused_without_echoing_the_key() {
        assert!(matches!(
            ApiKey::from_pem(
                "k",
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
            ),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(
            ApiKey::from_pem("k", RSA_PUB),
            Err(KeyError::Block(_))
        ));
        assert!(ApiKey::from_pem("k", "not a key").is_err());
        let key = ApiKey::from_pem("kid/1", RSA_PEM).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("kid/1") && !debug.contains("MII"), "{debug}");
    }
}
