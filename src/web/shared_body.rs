//! Response bodies that send shared bytes as they are: actix copies each
//! body chunk into the connection's write buffer, so a body of one 300 KB
//! chunk is copied once per client in flight, and a page that holds a
//! shared render (`render_memo`) would copy it once more into its own text.

use std::convert::Infallible;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use askama::filters::HtmlSafe;
use askama::Template;
use futures_util::Stream;

use super::render_memo::Rendered;

/// The chunks actix is handed: small enough that it copies little at once.
const SLICE: usize = 64 * 1024;

/// A body that hands out `bytes` in zero-copy slices, with its length known.
pub fn shared_body(bytes: Bytes) -> SizedStream<impl Stream<Item = Result<Bytes, Infallible>>> {
    sliced(vec![bytes])
}

fn sliced(parts: Vec<Bytes>) -> SizedStream<impl Stream<Item = Result<Bytes, Infallible>>> {
    let len: usize = parts.iter().map(Bytes::len).sum();
    let slices = parts.into_iter().flat_map(|part| {
        let n = part.len();
        (0..n)
            .step_by(SLICE)
            .map(move |start| Ok(part.slice(start..(start + SLICE).min(n))))
    });
    SizedStream::new(len as u64, futures_util::stream::iter(slices))
}

/// Where a page's shared part goes: its template writes this marker there
/// (`{{ slot }}`), and `spliced` sends the page around it with the shared
/// part in its place. Nothing else can write the marker: every text a page
/// shows is escaped, so no `<` of its own reaches the page.
pub struct Slot;

const MARK: &str = "<!--exapp-janitor:shared-->";

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MARK)
    }
}

impl HtmlSafe for Slot {}

/// `template` as an HTML response, `shared` sent where it wrote its `Slot`
/// (at the end when it wrote none).
pub fn spliced<T: Template>(status: StatusCode, template: &T, shared: &Rendered) -> HttpResponse {
    let page = match template.render() {
        Ok(page) => Bytes::from(page),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            return HttpResponse::InternalServerError().body("internal error");
        }
    };
    let at = page
        .windows(MARK.len())
        .position(|w| w == MARK.as_bytes())
        .unwrap_or(page.len());
    let rest = (at + MARK.len()).min(page.len());
    let parts = vec![page.slice(..at), shared.bytes(), page.slice(rest..)];
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(sliced(parts))
}

/// A shared render alone, as an HTML response.
pub fn shared_html(status: StatusCode, shared: &Rendered) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(sliced(vec![shared.bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[derive(Template)]
    #[template(source = "<p>{{ before }}</p>{{ slot }}<p>after</p>", ext = "html")]
    struct Page<'a> {
        before: &'a str,
        slot: Slot,
    }

    #[actix_web::test]
    async fn the_shared_part_is_sent_where_the_page_put_its_slot() {
        let shared = Rendered::new("<tr>shared</tr>".repeat(10_000));
        let page = Page {
            before: "<!--exapp-janitor:shared-->",
            slot: Slot,
        };
        let response = spliced(StatusCode::OK, &page, &shared);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        // The marker in a text the page shows is escaped, not taken for the slot.
        assert_eq!(
            text,
            format!(
                "<p>&#60;!--exapp-janitor:shared--&#62;</p>{}<p>after</p>",
                "<tr>shared</tr>".repeat(10_000)
            )
        );
    }

    #[actix_web::test]
    async fn a_shared_body_says_its_length_and_sends_every_byte() {
        let bytes = Bytes::from("x".repeat(3 * SLICE + 5));
        let body = shared_body(bytes.clone());
        assert_eq!(
            body.size(),
            actix_web::body::BodySize::Sized(bytes.len() as u64)
        );
        assert_eq!(actix_web::body::to_bytes(body).await.unwrap(), bytes);
    }
}
