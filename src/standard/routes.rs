//! Public routes of the standard: the OpenAPI document for machines and a page that explains it to people.

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Permission;
use super::{
    AIS_BASE_PATH, AIS_V1_DOCUMENT_PATH, AIS_V1_JSON, PLATFORM_V1_DOCUMENT_PATH, PLATFORM_V1_JSON, SANDBOX_CUSTOMERS,
    SandboxCustomer,
};
use crate::web::AppState;
use crate::web::pages::{Texts, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AIS_V1_DOCUMENT_PATH, get(ais_v1_document))
        .route(PLATFORM_V1_DOCUMENT_PATH, get(platform_v1_document))
        .route("/standard", get(page))
}

/// A document's ETag: it is embedded, so it changes only with the binary.
fn etag(document: &str) -> String {
    format!("\"{}\"", &crate::digest::sha256_hex(document.as_bytes())[..32])
}

/// Public: the AIS v1 OpenAPI document, cacheable.
async fn ais_v1_document(headers: HeaderMap) -> Response {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    serve_document(&headers, AIS_V1_JSON, ETAG.get_or_init(|| etag(AIS_V1_JSON)))
}

/// Public: the platform's OpenAPI document for API users (consents and OAuth), cacheable.
async fn platform_v1_document(headers: HeaderMap) -> Response {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    serve_document(&headers, PLATFORM_V1_JSON, ETAG.get_or_init(|| etag(PLATFORM_V1_JSON)))
}

fn serve_document(headers: &HeaderMap, document: &'static str, etag: &str) -> Response {
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = document.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// One row of the endpoint table. The permissions needed come as short lines, so that the long codes wrap between
/// words rather than inside them.
struct Endpoint {
    path: &'static str,
    needs: &'static [&'static str],
    text_key: &'static str,
}

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint {
        path: "/accounts",
        needs: &["ReadAccountsBasic |", "ReadAccountsDetail"],
        text_key: "standard.ep_accounts",
    },
    Endpoint {
        path: "/accounts/{AccountId}",
        needs: &["ReadAccountsBasic |", "ReadAccountsDetail"],
        text_key: "standard.ep_account",
    },
    Endpoint { path: "/accounts/{AccountId}/balances", needs: &["ReadBalances"], text_key: "standard.ep_balances" },
    Endpoint {
        path: "/accounts/{AccountId}/transactions",
        needs: &[
            "ReadTransactionsBasic |",
            "ReadTransactionsDetail",
            "+ ReadTransactionsCredits |",
            "ReadTransactionsDebits",
        ],
        text_key: "standard.ep_transactions",
    },
];

#[derive(Template)]
#[template(path = "standard.html")]
struct StandardPage {
    t: Texts,
    document: &'static str,
    platform_document: &'static str,
    base: &'static str,
    endpoints: &'static [Endpoint],
    permissions: &'static [Permission],
    customers: &'static [SandboxCustomer],
}

/// Public: what the standard is, its endpoints, permissions and sandbox customers.
async fn page(t: Texts, _who: Option<crate::web::session::SignedIn>) -> Response {
    render(&StandardPage {
        t,
        document: AIS_V1_DOCUMENT_PATH,
        platform_document: PLATFORM_V1_DOCUMENT_PATH,
        base: AIS_BASE_PATH,
        endpoints: &ENDPOINTS,
        permissions: Permission::ALL,
        customers: SANDBOX_CUSTOMERS,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::web::pages::Lang;

    #[test]
    fn page_renders_in_every_language_with_every_text() {
        for lang in Lang::ALL {
            let html = StandardPage {
                t: Texts { lang },
                document: AIS_V1_DOCUMENT_PATH,
                platform_document: PLATFORM_V1_DOCUMENT_PATH,
                base: AIS_BASE_PATH,
                endpoints: &ENDPOINTS,
                permissions: Permission::ALL,
                customers: SANDBOX_CUSTOMERS,
            }
            .render()
            .unwrap();
            // A missing text shows as its bare key.
            for key in [
                "standard.title",
                "standard.platform_document",
                "standard.ep_accounts",
                "standard.sandbox_lead",
                "consent.perm_balances",
            ] {
                assert!(!html.contains(key), "{lang:?}: {key} is missing");
            }
            assert!(html.contains(AIS_V1_DOCUMENT_PATH) && html.contains(PLATFORM_V1_DOCUMENT_PATH));
            for customer in SANDBOX_CUSTOMERS {
                assert!(html.contains(customer.iin));
            }
        }
    }

    #[test]
    fn every_language_has_every_standard_key() {
        let sources = [
            include_str!("../../assets/i18n/en.toml"),
            include_str!("../../assets/i18n/ru.toml"),
            include_str!("../../assets/i18n/kk.toml"),
        ];
        let keys: Vec<Vec<String>> = sources
            .iter()
            .map(|s| {
                let table: toml::Table = toml::from_str(s).unwrap();
                let mut keys: Vec<String> = table["standard"].as_table().unwrap().keys().cloned().collect();
                keys.sort();
                keys
            })
            .collect();
        assert!(keys[0].len() > 15);
        assert_eq!(keys[0], keys[1], "ru differs from en");
        assert_eq!(keys[0], keys[2], "kk differs from en");
    }
}
