//! A request body must arrive within `BODY_TIMEOUT` of its headers.
//! actix-web's own timeouts cover only the head, so a body sent a byte a
//! second held a connection (and a worker's attention) for as long as the
//! client liked.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::Stream;

/// Ample for the 64 KiB a body may have, even over a slow link.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps every request's body in the deadline. Whatever a handler (or an
/// extractor: Form, Json, Bytes, each with its own error) made of a body
/// that timed out, the answer is 408, and it closes the connection: the
/// rest of the body would otherwise be read as the next request.
pub async fn limit_body_time(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let expired = Arc::new(AtomicBool::new(false));
    match req.take_payload() {
        Payload::None => {}
        payload => {
            let stream = Deadline {
                inner: payload,
                sleep: Box::pin(tokio::time::sleep(BODY_TIMEOUT)),
                expired: expired.clone(),
            };
            let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
            req.set_payload(Payload::from(boxed));
        }
    }
    let is_api = req.path().starts_with("/api/");
    let response = next.call(req).await;
    if !expired.load(Ordering::Relaxed) {
        return response.map(ServiceResponse::map_into_boxed_body);
    }
    let message = format!(
        "the request body did not arrive within {} s",
        BODY_TIMEOUT.as_secs()
    );
    let mut timeout = if is_api {
        HttpResponse::RequestTimeout().json(serde_json::json!({ "error": message }))
    } else {
        HttpResponse::RequestTimeout()
            .content_type("text/plain; charset=utf-8")
            .body(message)
    };
    timeout
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    match response {
        Ok(response) => Ok(response.into_response(timeout)),
        // An inner middleware (the guard, reading a form for its CSRF
        // token) gave up with an error: answered the same way.
        Err(e) => Err(actix_web::error::InternalError::from_response(e, timeout).into()),
    }
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )))));
        }
        Poll::Pending
    }
}
