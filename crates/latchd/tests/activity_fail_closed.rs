//! If the activity record cannot be written, the request is refused (fail
//! closed): a store opened read-only refuses every activity write.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use latch_store::EventStore;
use latchd::api::{AppState, router};
use latchd::{CommandHandler, HandlerConfig, SystemClock, bootstrap};
use tower::ServiceExt;

#[tokio::test]
async fn a_request_whose_audit_record_cannot_be_written_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let store = Arc::new(EventStore::open(dir.path().join("log")).unwrap());
        let (handler, _) =
            CommandHandler::start(store, Arc::new(SystemClock), HandlerConfig::default()).unwrap();
        bootstrap(&handler.handle(), dir.path()).await.unwrap();
        handler.shutdown().await;
        std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    };

    let store = Arc::new(EventStore::open_read_only(dir.path().join("log")).unwrap());
    let (handler, _) =
        CommandHandler::start(store, Arc::new(SystemClock), HandlerConfig::default()).unwrap();
    let app = AppState::new(handler.handle(), Arc::new(SystemClock));
    let request = Request::get("/v1/accounts")
        .header("Authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router(app).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
