//! The live page served at `/` on the WebSocket port: one self-contained
//! HTML file (inline CSS and JavaScript, nothing fetched from elsewhere) that
//! speaks the native protocol over `/ws` and charts `/metrics`.

/// The page, verbatim.
pub const INDEX_HTML: &str = include_str!("index.html");

/// The `Content-Type` of [`INDEX_HTML`].
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        let page = INDEX_HTML.to_ascii_lowercase();
        for banned in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "//cdn",
            "@import",
            "url(http",
        ] {
            assert!(!page.contains(banned), "page references {banned:?}");
        }
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
    }

    #[test]
    fn page_speaks_the_protocol_and_reads_metrics() {
        for needle in [
            "ringcast.v1",
            "/metrics",
            "'/ws'",
            "'use strict'",
            "id=\"status\"",
            "id=\"events\"",
            "ringcast_publish_to_send_seconds_bucket",
            // Every server-to-client kind of revision 3, GAP included.
            "DATA: 0x10",
            "GAP: 0x16",
            "0x16: 0,",
        ] {
            assert!(INDEX_HTML.contains(needle), "page lacks {needle:?}");
        }
    }

    #[test]
    fn page_never_evaluates_or_injects_html() {
        for banned in [
            "eval(",
            "innerHTML",
            "outerHTML",
            "document.write",
            "new Function",
        ] {
            assert!(!INDEX_HTML.contains(banned), "page uses {banned:?}");
        }
    }
}
