//! GitHub's side of the secret scanning partner program, on loopback: ECDSA
//! P-256 keys made here, the keys document served as GitHub serves
//! `meta/public_keys/secret_scanning`, and reports signed as GitHub signs
//! them (base64 of a DER signature over the raw body).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub const KEYS_PATH: &str = "/meta/public_keys/secret_scanning";

struct Inner {
    /// (identifier, PEM) of each published key.
    published: Vec<(String, String)>,
    requests: usize,
}

pub struct GithubKeys {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    keys: Mutex<Vec<(String, EcdsaKeyPair)>>,
}

fn new_pair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

async fn document(State(inner): State<Arc<Mutex<Inner>>>) -> axum::Json<Value> {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    let keys: Vec<Value> = inner
        .published
        .iter()
        .enumerate()
        .map(|(n, (id, pem))| json!({"key_identifier": id, "key": pem, "is_current": n + 1 == inner.published.len()}))
        .collect();
    axum::Json(json!({"public_keys": keys}))
}

impl GithubKeys {
    /// Serving one key, `key_id`.
    pub fn start(key_id: &str) -> Self {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}{KEYS_PATH}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            published: Vec::new(),
            requests: 0,
        }));
        let app = axum::Router::new()
            .route(KEYS_PATH, get(document))
            .with_state(inner.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            });
        });
        let keys = Self {
            url,
            inner,
            keys: Mutex::new(Vec::new()),
        };
        keys.rotate(key_id);
        keys
    }

    /// Publishes a new key `key_id` (the old ones stay published).
    pub fn rotate(&self, key_id: &str) {
        let pair = new_pair();
        let pem = latchd::p256_pem(pair.public_key().as_ref());
        self.inner.lock().unwrap().published.push((key_id.to_owned(), pem));
        self.keys.lock().unwrap().push((key_id.to_owned(), pair));
    }

    /// The signature header GitHub would send with `body`, by `key_id`.
    pub fn sign(&self, key_id: &str, body: &[u8]) -> String {
        let keys = self.keys.lock().unwrap();
        let (_, pair) = keys.iter().find(|(id, _)| id == key_id).expect("a key of ours");
        let signature = pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
    }

    /// A signature by a key nobody published (a forger's).
    pub fn sign_unpublished(body: &[u8]) -> String {
        let signature = new_pair().sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
    }

    /// How often the keys document was fetched.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }
}
