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

pub use latch_testkit::test_rsa_key::PUBLIC_PEM as RSA_PUBLIC_KEY;
use latch_testkit::test_rsa_key::{MODULUS as RSA_N, PRIVATE_PEM as RSA_KEY};

struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

struct Inner {
    keys: Vec<Key>,
    down: bool,
    /// Requests served (discovery and keys).
    requests: usize,
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
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    if inner.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({"issuer": inner.issuer, "jwks_uri": format!("{}/jwks", inner.issuer)})).into_response()
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
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
            requests: 0,
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

    /// How many requests it has served: latchd must never call an issuer
    /// no trust policy names.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }

    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }
}
