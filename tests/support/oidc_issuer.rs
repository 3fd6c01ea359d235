//! An OIDC issuer of the tests' own, on loopback: keys made here (ES256
//! with rcgen, RS256 from a fixed test key), its discovery document and
//! JWKS served over HTTP, identity tokens signed as GitHub Actions signs
//! them. It can rotate its keys and go down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A 2048-bit RSA key for the tests only.
pub const RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEA2ztkt8ECJl574MNfnxlaUQK5H0ZYDrPoI2Ktv7N8OvzwskiF
J1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI6+YJISV7wZQUGGPrQYn5YK0fPVi8
fXUd8/ytXBuFlWE2DuqXDd+d850hZNq1lkuH+Evgj6YT72342BYg9dCLThHV/QSA
W93fLPyTLhlndxbhf1KEH77djd/33REkCOSZFIZNOJu4aXgx0ExB8wzUhkF+PAxZ
p6GAspKa7RozLVB9xJfXyrx+JAZqm1yMWuwig5K7zfRmXq84qBTUn05KntyxELZh
fTQyoz7Fu2n6b/Vc+9ngwDbITTaaJnnhqhsNEQIDAQABAoIBAAdDzdfgA735QhIl
70iCqtFF7ZQJfPgJwq7PgZH5dOuwf5ps2ErAReAGcvlm9U0+orlePJQdSxreN0F+
j7WcYKAumI1aZGI7EbpoLz7V/2dSfVdHVkGzDJnN/QGxIMldNhEi+Xv6dc3Bnn5s
1/khyiDyhL/F4WG9C3K/svpqXX9p/Kgp0TeFlnEhVdaJCeVjHzviTCHpiMmUuUV2
yfPu1vGL+qpgm6ReLC2fOrl8ysQqHLterqbTKv76KYyeHkA2s7Ib6xWPnUdiXrqn
kNZVg55ecCxN37dnvx2Nk0SyXCy4rH3YdyAI3d86qtw/UN4RKi4C4fW/UwUgptgB
dRMSF+UCgYEA/bcb0VRJqoXBxMhKDKsCO7cWfJEeSCokW1di5HXgt9K3hryblu4N
UtgNa0hxSTLfQleZLSjP5wL0QBJtC5tl6Sk5lCp9eOIUpeISIOcNQrVq7YanVyMB
8BX0+4vAhvgECijGI3ev5KZhmOJ25eLigkYTD2I9ZDyMlo1VguOk0v0CgYEA3TTK
UKD9Ys5VETDAEXTwD9dv3TboK6PbVnsfoGnuDsVluL02ngW1mYjkTCKTQ07NA3Xz
NymV1ASl+/0qS/wC7s4o7m6+Z+Q+byvkQCT/rd5bX0S7TUM5s83G/VIwvqltkJhv
b3ENJEcBDuqrVqKVG+80egEzYmulJ634ijWwUKUCgYEAhopQLQwWWF+/phtT8S3J
7GKlgP7vYPM//lPztBSySqhp/AAOPdYUqKa7TvXGZTud2q9bIfBvdyBA560duDb6
rs7WorR5ft3cdy7P0DTV+lb70eNC39lHkMoD9FRiju/8LGr8zxgL5SM5w/nrdPKA
jPad6t18kqftIXTnMJaI8/0CgYEAukkVw/b/zHDEtNhgN5NKA51DaIEv3mh8c4T2
qmnq/+d+9afq0gMu3uComfFYIQvAnRR8wUy1D7rmaaLXNuxBMAjP8ZOzp9xQM+E7
tEU0SKEEQ+Om9LcTZfd6h6TqxfX6/hVRawFCtvVQz9YSesAqYD7+62wNcOoESLk6
oHH8TL0CgYEA8Ius00KYz5TciWkZBLln5TfvsNCfsQRjENRxohxlL1JWX4UsqfmV
fj/vej8orCMr/frWV/pBlZR8ae4Xi1ShZ54DcSpzY8+Wh9x3S8WbqRj6k4GZuly/
ME7T2kFJ1U0mqwRUtinIMusDcwhsM03edvqHA+vW2G/Y5h7dx41IhZs=
-----END RSA PRIVATE KEY-----\n";
/// Its public half, as a PEM (what an attacker would use as an HMAC secret).
pub const RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2ztkt8ECJl574MNfnxla
UQK5H0ZYDrPoI2Ktv7N8OvzwskiFJ1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI
6+YJISV7wZQUGGPrQYn5YK0fPVi8fXUd8/ytXBuFlWE2DuqXDd+d850hZNq1lkuH
+Evgj6YT72342BYg9dCLThHV/QSAW93fLPyTLhlndxbhf1KEH77djd/33REkCOSZ
FIZNOJu4aXgx0ExB8wzUhkF+PAxZp6GAspKa7RozLVB9xJfXyrx+JAZqm1yMWuwi
g5K7zfRmXq84qBTUn05KntyxELZhfTQyoz7Fu2n6b/Vc+9ngwDbITTaaJnnhqhsN
EQIDAQAB
-----END PUBLIC KEY-----\n";
/// Its modulus, base64url (the JWK's `n`).
const RSA_N: &str = "2ztkt8ECJl574MNfnxlaUQK5H0ZYDrPoI2Ktv7N8OvzwskiFJ1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI6-YJISV7wZQUGGPrQYn5YK0fPVi8fXUd8_ytXBuFlWE2DuqXDd-d850hZNq1lkuH-Evgj6YT72342BYg9dCLThHV_QSAW93fLPyTLhlndxbhf1KEH77djd_33REkCOSZFIZNOJu4aXgx0ExB8wzUhkF-PAxZp6GAspKa7RozLVB9xJfXyrx-JAZqm1yMWuwig5K7zfRmXq84qBTUn05KntyxELZhfTQyoz7Fu2n6b_Vc-9ngwDbITTaaJnnhqhsNEQ";

struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

struct Inner {
    keys: Vec<Key>,
    down: bool,
    issuer: String,
}

/// Serves from a thread of its own (with its own runtime), so it can be
/// dropped anywhere, async tests included; the thread ends with the test
/// process.
pub struct OidcIssuer {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    Key {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

fn rsa_key(kid: &str) -> Key {
    Key {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap(),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB"}),
    }
}

async fn discovery(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let inner = inner.lock().unwrap();
    if inner.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({"issuer": inner.issuer, "jwks_uri": format!("{}/jwks", inner.issuer)})).into_response()
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let inner = inner.lock().unwrap();
    if inner.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys: Vec<Value> = inner.keys.iter().map(|k| k.jwk.clone()).collect();
    axum::Json(json!({"keys": keys})).into_response()
}

impl OidcIssuer {
    /// Serving an ES256 key `es-1` and an RS256 key `rs-1`.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            keys: vec![ec_key("es-1"), rsa_key("rs-1")],
            down: false,
            issuer: url.clone(),
        }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(inner.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            });
        });
        Self { url, inner }
    }

    /// Claims as GitHub Actions puts them in its tokens, for `sub`.
    pub fn github_claims(&self, sub: &str, audience: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.url, "aud": audience, "sub": sub,
            "jti": uuid::Uuid::now_v7().to_string(),
            "iat": now, "nbf": now - 5, "exp": now + 300,
            "repository": "acme/deploy", "repository_owner": "acme", "ref": "refs/heads/main",
            "ref_protected": true, "workflow": "deploy", "run_id": "4411",
        })
    }

    /// `claims` signed with key `kid` (`es-1`, `rs-1`, or after `rotate`).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let inner = self.inner.lock().unwrap();
        let key = inner.keys.iter().find(|k| k.kid == kid).expect("a key of this issuer");
        let mut header = Header::new(key.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    /// A new ES256 key `kid`, published from now on (the old ones stay).
    pub fn rotate(&self, kid: &str) {
        self.inner.lock().unwrap().keys.push(ec_key(kid));
    }

    /// Signs with a key it does not publish (a forger's).
    pub fn sign_unpublished(&self, kid: &str, claims: &Value) -> String {
        let key = ec_key(kid);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }
}
