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

/// Where a page's shared part number `n` goes: its template writes this
/// marker there (`{{ slot }}`), and `spliced` sends the page around it with
/// that part in its place. Nothing else can write a marker: every text a
/// page shows is escaped, so no `<` of its own reaches the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub usize);

const MARK: &[u8] = b"<!--exapp-janitor:shared:";
const MARK_END: &[u8] = b"-->";

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}{}",
            std::str::from_utf8(MARK).expect("ASCII"),
            self.0,
            std::str::from_utf8(MARK_END).expect("ASCII")
        )
    }
}

impl HtmlSafe for Slot {}

/// `template` as an HTML response, each of its `Slot(n)` replaced by
/// `shared[n]`, sent uncopied.
pub fn spliced<T: Template>(status: StatusCode, template: &T, shared: &[Rendered]) -> HttpResponse {
    let page = match template.render() {
        Ok(page) => Bytes::from(page),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            return HttpResponse::InternalServerError().body("internal error");
        }
    };
    let mut parts = Vec::with_capacity(2 * shared.len() + 1);
    let mut from = 0;
    while let Some((start, n, end)) = next_slot(&page, from) {
        parts.push(page.slice(from..start));
        match shared.get(n) {
            Some(part) => parts.push(part.bytes()),
            None => tracing::error!(slot = n, "a page has a slot for a part it was not given"),
        }
        from = end;
    }
    parts.push(page.slice(from..));
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(sliced(parts))
}

/// The next slot in `page` from `from` on: where its marker starts, its
/// number, and where the marker ends.
fn next_slot(page: &[u8], from: usize) -> Option<(usize, usize, usize)> {
    let rest = page.get(from..)?;
    let start = from + rest.windows(MARK.len()).position(|w| w == MARK)?;
    let digits = &page[start + MARK.len()..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
    let end = start + MARK.len() + len;
    page[end..]
        .starts_with(MARK_END)
        .then_some((start, n, end + MARK_END.len()))
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
    #[template(
        source = "<p>{{ before }}</p>{{ one }}<p>between</p>{{ zero }}<p>after</p>",
        ext = "html"
    )]
    struct Page<'a> {
        before: &'a str,
        one: Slot,
        zero: Slot,
    }

    #[actix_web::test]
    async fn each_shared_part_is_sent_where_the_page_put_its_slot() {
        let shared = [
            Rendered::new("<tr>zero</tr>".repeat(10_000)),
            Rendered::new("<tr>one</tr>".into()),
        ];
        let page = Page {
            before: "<!--exapp-janitor:shared:0-->",
            one: Slot(1),
            zero: Slot(0),
        };
        let response = spliced(StatusCode::OK, &page, &shared);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        // The marker in a text the page shows is escaped, not taken for a slot.
        assert_eq!(
            text,
            format!(
                "<p>&#60;!--exapp-janitor:shared:0--&#62;</p><tr>one</tr><p>between</p>{}<p>after</p>",
                "<tr>zero</tr>".repeat(10_000)
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
