//! `SessionBook`: the web console's sign-in sessions, in memory.
//!
//! A session stands for the token it was opened with: latchd keeps that
//! token's digest (which the signed feed already broadcasts), never its
//! secret, and authenticates every request of the session with
//! `latch_core::authenticate_digest`, exactly as a presented token, so a
//! revoked or expired token, a disabled account or a source outside the
//! token's CIDRs ends the session at once.
//!
//! The browser holds two values: the session id, in an `HttpOnly` cookie
//! script cannot read, and the session's CSRF token, which the console
//! keeps in memory and sends in `X-Latch-Csrf` on every API request (and
//! reads again from `GET /ui/session` after a reload). latchd keeps the
//! session id as a SHA-256 digest only, and compares the CSRF token in
//! constant time. A session ends after `idle` without a request, after
//! `max_age` in any case, at sign-out, or when the book is full and it is
//! the least recently used. One account's tokens hold at most
//! `MAX_SESSIONS_PER_ACCOUNT` sessions together (its oldest go first), so
//! no account, however weak, can sign in often enough, with however many
//! tokens (an account can mint children by token exchange), to push other
//! accounts' sessions out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use latch_core::{AccountId, TokenDigest};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::api::console::session_cookie::{self, SessionCookie};
use subtle::ConstantTimeEq;

/// Sessions the tokens of one account may hold at once.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 32;

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session without a request for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub max_age: Duration,
    /// Most sessions kept at once; the least recently used goes first.
    pub max_sessions: usize,
    /// Mark the cookie `Secure` (latchd serves HTTPS).
    pub secure_cookie: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(30 * 60),
            max_age: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
            secure_cookie: false,
        }
    }
}

/// A new session: its id, given to the browser once as the cookie's value,
/// and the session as requests will find it.
pub struct OpenedSession {
    pub id: String,
    pub session: ActiveSession,
}

/// A live session, as a request finds it.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// The digest of the token the session was opened with.
    pub token: TokenDigest,
    /// When it ends at the latest (`max_age` after sign-in).
    pub ends_at: DateTime<Utc>,
    /// Its CSRF token (for the console's bootstrap).
    pub csrf: String,
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    #[error("the console session has ended (signed out, or latchd restarted); sign in again")]
    Unknown,
    #[error("the console session expired; sign in again")]
    Expired,
    #[error("a console session's request must carry its X-Latch-Csrf header")]
    MissingCsrf,
    #[error("the X-Latch-Csrf header does not match the console session")]
    WrongCsrf,
}

struct Session {
    token: TokenDigest,
    account: AccountId,
    csrf: String,
    opened_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

#[derive(Default)]
pub struct SessionBook {
    settings: Mutex<SessionSettings>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

impl SessionBook {
    pub fn configure(&self, settings: SessionSettings) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn settings(&self) -> SessionSettings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session cookie a request carries, under the name these settings
    /// give it (`__Host-latch_console` when `Secure`).
    pub fn cookie<'a>(&self, headers: &'a axum::http::HeaderMap) -> SessionCookie<'a> {
        session_cookie::session_id(headers, session_cookie::name(self.settings().secure_cookie))
    }

    /// Opens a session for the token of `account` with `token` as its
    /// digest.
    pub fn open(&self, token: TokenDigest, account: AccountId, now: DateTime<Utc>) -> OpenedSession {
        let settings = self.settings();
        let id = random_text();
        let csrf = random_text();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| live(s, &settings, now));
        let mut own: Vec<([u8; 32], DateTime<Utc>)> = sessions
            .iter()
            .filter(|(_, s)| s.account == account)
            .map(|(key, s)| (*key, s.opened_at))
            .collect();
        own.sort_by_key(|(_, opened_at)| *opened_at);
        let excess = (own.len() + 1).saturating_sub(MAX_SESSIONS_PER_ACCOUNT);
        for (key, _) in own.into_iter().take(excess) {
            sessions.remove(&key);
        }
        while sessions.len() >= settings.max_sessions.max(1) {
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(key, _)| *key)
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(&id),
            Session {
                token,
                account,
                csrf: csrf.clone(),
                opened_at: now,
                last_seen: now,
            },
        );
        OpenedSession {
            id,
            session: ActiveSession {
                token,
                ends_at: now + chrono_of(settings.max_age),
                csrf,
            },
        }
    }

    /// The session `id` names, if it is live, counting this as a request
    /// (which keeps it from idling out). An API request must also carry
    /// the session's CSRF token (`CsrfCheck::Presented`); only the
    /// console's bootstrap, `GET /ui/session`, which answers with the CSRF
    /// token and changes nothing, is `CsrfCheck::NotRequired`.
    pub fn touch(
        &self,
        id: &str,
        csrf: CsrfCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<ActiveSession, SessionRefusal> {
        let settings = self.settings();
        let key = digest(id);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get_mut(&key).ok_or(SessionRefusal::Unknown)?;
        if !live(session, &settings, now) {
            // Left for the next sign-in's sweep, so that every request in
            // flight hears "expired", not "unknown".
            return Err(SessionRefusal::Expired);
        }
        if let CsrfCheck::Presented(presented) = csrf {
            let presented = presented.ok_or(SessionRefusal::MissingCsrf)?;
            if !bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
                return Err(SessionRefusal::WrongCsrf);
            }
        }
        session.last_seen = now;
        Ok(ActiveSession {
            token: session.token,
            ends_at: session.opened_at + chrono_of(settings.max_age),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends session `id` (sign-out). `true` if it was open.
    pub fn close(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(id))
            .is_some()
    }

    /// Sessions open now (for metrics and tests).
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a request must prove its CSRF token.
#[derive(Debug, Clone, Copy)]
pub enum CsrfCheck<'a> {
    /// An API request: the value of its `X-Latch-Csrf` header, if any.
    Presented(Option<&'a str>),
    /// The console's bootstrap, which only reads the session.
    NotRequired,
}

fn live(session: &Session, settings: &SessionSettings, now: DateTime<Utc>) -> bool {
    now < session.last_seen + chrono_of(settings.idle)
        && now < session.opened_at + chrono_of(settings.max_age)
}

fn chrono_of(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

/// 256 random bits, URL-safe base64 (43 characters).
fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(idle: u64, max_age: u64, max_sessions: usize) -> SessionBook {
        let book = SessionBook::default();
        book.configure(SessionSettings {
            idle: Duration::from_secs(idle),
            max_age: Duration::from_secs(max_age),
            max_sessions,
            secure_cookie: false,
        });
        book
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn token() -> TokenDigest {
        TokenDigest::of("latch_example")
    }

    fn account(n: u128) -> AccountId {
        AccountId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_request_needs_the_sessions_own_csrf_token() {
        let book = book(60, 600, 10);
        let opened = book.open(token(), account(1), at(0));
        let other = book.open(token(), account(1), at(0));
        let check = |csrf| book.touch(&opened.id, CsrfCheck::Presented(csrf), at(1));
        assert_eq!(check(None).unwrap_err(), SessionRefusal::MissingCsrf);
        assert_eq!(check(Some(&other.session.csrf)).unwrap_err(), SessionRefusal::WrongCsrf);
        assert_eq!(check(Some("")).unwrap_err(), SessionRefusal::WrongCsrf);
        assert!(check(Some(&opened.session.csrf)).is_ok());
        assert_eq!(
            book.touch("not-a-session", CsrfCheck::NotRequired, at(1))
                .unwrap_err(),
            SessionRefusal::Unknown
        );
    }

    #[test]
    fn sessions_end_when_idle_at_their_age_and_at_sign_out() {
        // (An expired session stays expired for every later request.)
        let book = book(60, 100, 10);
        let opened = book.open(token(), account(1), at(0));
        // Requests keep it alive past the idle time...
        for t in [50, 100 - 1] {
            assert!(book.touch(&opened.id, CsrfCheck::NotRequired, at(t)).is_ok());
        }
        // ...but not past its age.
        assert_eq!(
            book.touch(&opened.id, CsrfCheck::NotRequired, at(100))
                .unwrap_err(),
            SessionRefusal::Expired
        );
        let idle = book.open(token(), account(1), at(0));
        assert_eq!(
            book.touch(&idle.id, CsrfCheck::NotRequired, at(60)).unwrap_err(),
            SessionRefusal::Expired
        );
        let closed = book.open(token(), account(1), at(0));
        assert!(book.close(&closed.id));
        assert_eq!(
            book.touch(&closed.id, CsrfCheck::NotRequired, at(1)).unwrap_err(),
            SessionRefusal::Unknown
        );
    }

    #[test]
    fn one_account_cannot_crowd_out_the_others() {
        let book = book(600, 6000, 100);
        let admin = book.open(TokenDigest::of("latch_admin"), account(1), at(0));
        // Many tokens of one account (children minted by token exchange).
        let flood: Vec<OpenedSession> = (0..200)
            .map(|i| book.open(TokenDigest::of(&format!("latch_child{i}")), account(2), at(1 + i)))
            .collect();
        assert_eq!(book.len(), MAX_SESSIONS_PER_ACCOUNT + 1);
        assert!(book.touch(&admin.id, CsrfCheck::NotRequired, at(300)).is_ok());
        // The flooding token keeps its newest sessions.
        assert!(book.touch(&flood[199].id, CsrfCheck::NotRequired, at(300)).is_ok());
        assert!(book.touch(&flood[0].id, CsrfCheck::NotRequired, at(300)).is_err());
    }

    #[test]
    fn a_full_book_lets_the_least_recently_used_go() {
        let book = book(600, 6000, 2);
        let first = book.open(token(), account(1), at(0));
        let second = book.open(token(), account(2), at(1));
        book.touch(&first.id, CsrfCheck::NotRequired, at(2)).unwrap();
        let third = book.open(token(), account(3), at(3));
        assert_eq!(book.len(), 2);
        assert!(book.touch(&second.id, CsrfCheck::NotRequired, at(4)).is_err());
        assert!(book.touch(&first.id, CsrfCheck::NotRequired, at(4)).is_ok());
        assert!(book.touch(&third.id, CsrfCheck::NotRequired, at(4)).is_ok());
        assert_ne!(first.id, second.id);
        assert_eq!(first.id.len(), 43);
    }
}
