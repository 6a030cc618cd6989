//! Paging helpers for the tests: walk a list endpoint page by page with `limit` and
//! `cursor`, as a client would, and check what every list answers to malformed pages.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::TestStack;

impl TestStack {
    /// Every item of the list at `path` (which may carry a query already) under `field`,
    /// fetched `limit` at a time through the edge, and the number of pages it took. Asserts
    /// that each page is a 200 holding at most `limit` items and that the cursor ends.
    pub async fn page_through(
        &self,
        token: &str,
        path: &str,
        field: &str,
        limit: u32,
    ) -> (Vec<Value>, usize) {
        let join = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                None => format!("{path}{join}limit={limit}"),
                Some(cursor) => format!("{path}{join}limit={limit}&cursor={cursor}"),
            };
            let (status, page) = self.call(Method::GET, &url, token, None).await;
            assert_eq!(status, StatusCode::OK, "{url}: {page}");
            let batch = page[field]
                .as_array()
                .unwrap_or_else(|| panic!("{url}: no {field}: {page}"));
            assert!(batch.len() <= limit as usize, "{url}: {page}");
            items.extend(batch.iter().cloned());
            pages += 1;
            assert!(pages < 1000, "{path}: the cursor never ends");
            match &page["next_cursor"] {
                Value::String(next) => cursor = Some(next.clone()),
                Value::Null => break,
                other => panic!("{url}: next_cursor is {other}"),
            }
        }
        (items, pages)
    }

    /// Asserts that the list at `path` answers a 400 problem body to a zero, too large or
    /// non-numeric `limit` and to a cursor that no page handed out.
    pub async fn assert_bad_pages_refused(&self, token: &str, path: &str) {
        let join = if path.contains('?') { '&' } else { '?' };
        for query in [
            "limit=0",
            "limit=201",
            "limit=ten",
            "limit=-1",
            "cursor=not-a-cursor",
            // Tampered: base64url of "t:abc", a creation-order key without its time and id.
            "cursor=dDphYmM",
        ] {
            let url = format!("{path}{join}{query}");
            let response = self
                .request(Method::GET, &url, token)
                .send()
                .await
                .expect("list request");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                content_type.starts_with("application/problem+json"),
                "{url}: {content_type}"
            );
            let body: Value = response.json().await.expect("problem body");
            assert_eq!(body["status"], 400, "{url}: {body}");
        }
    }
}
