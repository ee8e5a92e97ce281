//! The route map: one page that draws every proxy role's table — parents (Gateway listeners,
//! mesh Services) → HTTPRoutes → rules → backends with their weights — with the status problems
//! in place and, under `serve`, which version each connected proxy runs.
//!
//! The page (`map/page.html`: HTML, CSS and script in one file, nothing from a CDN) draws from
//! one JSON [`document`]: the tables in their JSON form — the same documents the filter reads —
//! and the status report of `check -o json`. `serve` hands the page out at `/ui` and the document
//! at `/v1/map` (behind the API's token, with the publication generation as `ETag`, so the page
//! can poll cheaply), the proxies at `/v1/proxies`; `render --graph` writes the page with the
//! document inside ([`static_page`]) for offline use.

use std::fmt::Write as _;

/// The page, served as is at `/ui`.
pub const PAGE: &str = include_str!("map/page.html");

/// Where [`static_page`] puts the document; the page reads it when present instead of polling.
const DATA_SLOT: &str = "<!--gammaroute-map-data-->";

/// The map document: `{"generation": N, "tables": {role: table}, "status": report}`.
///
/// `tables` are each role's table as JSON text (as encoded for proxies, so nothing is converted
/// twice) and `status` the report as JSON text; both are embedded verbatim.
pub fn document<'a>(
    generation: u64,
    tables: impl IntoIterator<Item = (&'a str, &'a str)>,
    status: &str,
) -> String {
    let mut out = format!("{{\"generation\":{generation},\"tables\":{{");
    for (i, (role, json)) in tables.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A role is plain text; serde_json quotes and escapes it.
        let key = serde_json::to_string(role).unwrap_or_else(|_| "\"?\"".into());
        let _ = write!(out, "{key}:{}", json.trim_end());
    }
    let _ = write!(out, "}},\"status\":{}}}", status.trim_end());
    out
}

/// The page with `document` inside, for a file that opens without a server (`render --graph`).
/// `</` is escaped in the JSON (`<\/`, the same string to a JSON parser) so no value can close
/// the script element.
pub fn static_page(document: &str) -> String {
    let data = format!(
        "<script id=\"map-data\" type=\"application/json\">{}</script>",
        document.replace("</", "<\\/")
    );
    PAGE.replacen(DATA_SLOT, &data, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_embeds_tables_and_status_verbatim() {
        let doc = document(
            7,
            [
                ("gateway/demo/gw", "{\"role\":\"gateway/demo/gw\"}\n"),
                ("mesh/x", "{}"),
            ],
            "{\"ok\":true}\n",
        );
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["generation"], 7);
        assert_eq!(v["tables"]["gateway/demo/gw"]["role"], "gateway/demo/gw");
        assert_eq!(v["tables"]["mesh/x"], serde_json::json!({}));
        assert_eq!(v["status"]["ok"], true);
    }

    #[test]
    fn static_page_embeds_the_document_where_no_value_can_close_the_script() {
        assert!(PAGE.contains(DATA_SLOT), "the page has the data slot");
        let doc = document(1, [], "{\"message\":\"</script><b>x\"}");
        let page = static_page(&doc);
        assert!(!page.contains(DATA_SLOT));
        let start = page.find("<script id=\"map-data\"").unwrap();
        let end = start + page[start..].find("</script>").unwrap();
        let json = &page[start..end];
        let json = &json[json.find('>').unwrap() + 1..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["status"]["message"], "</script><b>x");
    }
}
