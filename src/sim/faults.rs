//! Faults that change a response after the vendor handler produced it: a truncated (malformed)
//! body, or a connection dropped half-way through the body. The handler's `enter` call decides
//! (it knows the endpoint key); this middleware, wrapped around the vendor routes, carries it out.

use std::cell::Cell;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpResponse};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PostFault {
    #[default]
    None,
    Truncate,
    Drop,
}

tokio::task_local! {
    static POST_FAULT: Cell<PostFault>;
}

/// Asks the middleware to spoil the response of the request being handled.
pub fn request(fault: PostFault) {
    let _ = POST_FAULT.try_with(|slot| slot.set(fault));
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (res, fault) = POST_FAULT
        .scope(Cell::new(PostFault::None), async move {
            let res = next.call(req).await;
            (res, POST_FAULT.with(Cell::get))
        })
        .await;
    let res = res?.map_into_boxed_body();
    if fault == PostFault::None {
        return Ok(res);
    }
    let (req, resp) = res.into_parts();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .unwrap_or_default();
    let half = body.slice(..body.len() / 2);
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if name != actix_web::http::header::CONTENT_LENGTH {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
    let spoiled = match fault {
        // A complete HTTP message whose payload stops mid-document.
        PostFault::Truncate | PostFault::None => builder.body(half),
        // Half the payload, then the stream fails: the server aborts the connection.
        PostFault::Drop => builder.streaming(futures::stream::iter(vec![
            Ok::<Bytes, std::io::Error>(half),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated connection drop",
            )),
        ])),
    };
    Ok(ServiceResponse::new(req, spoiled))
}
