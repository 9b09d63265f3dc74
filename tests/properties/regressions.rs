//! Regressions for faults the properties found.

use super::*;

/// Calls `tool` once against a mock that answers `status` with `body`.
pub(crate) async fn answer_once(tool: &str, status: u16, body: Value) -> ToolOutcome {
    let mock = MockServer::start().await;
    Mock::given(any_request())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&mock)
        .await;
    let args = json!({"project_id": "proj", "pool_id": "p1"});
    api_server(&mock, 0)
        .call(tool, args.as_object().cloned(), &quiet)
        .await
        .expect("a tool")
}

#[tokio::test]
pub(crate) async fn regression_a_long_wrongly_typed_value_gives_a_short_error() {
    let body = json!({"success": true, "data": [
        {"id": "p1", "name": "SUMMER20", "total": "x".repeat(5000), "available": 742}
    ]});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 200, body).await;
    let error = outcome.error().expect("a failure");
    assert!(
        error.chars().count() <= MAX_ERROR_CHARS,
        "error of {} characters",
        error.chars().count()
    );
}

#[tokio::test]
pub(crate) async fn regression_a_wrongly_typed_secret_is_not_quoted() {
    let body = json!({"success": true, "data": [
        {"id": "p1", "name": "SUMMER20", "total": SECRET, "available": 742}
    ]});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 200, body).await;
    let error = outcome.error().expect("a failure");
    assert!(!error.contains(SECRET), "{error}");
}

#[tokio::test]
pub(crate) async fn regression_a_secret_cut_by_the_shortening_is_not_quoted_in_part() {
    let body = json!({"success": false, "error": format!("{} {SECRET}", "y".repeat(295))});
    let outcome = answer_once(LIST_VOUCHER_POOLS, 400, body).await;
    let error = outcome.error().expect("a failure");
    assert!(!quotes_credential(error), "{error}");
}
