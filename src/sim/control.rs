//! The `/_sim/` control plane every simulator serves: counters, faults, inventory, sessions.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{Faults, SimShared};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_sim")
            .route("/inventory", web::get().to(inventory))
            .route("/counters", web::get().to(counters))
            .route("/reset", web::post().to(reset))
            .route("/faults", web::get().to(get_faults))
            .route("/faults", web::put().to(put_faults))
            .route("/faults", web::delete().to(clear_faults))
            .route("/expire-sessions", web::post().to(expire_sessions))
            .route("/ca.pem", web::get().to(ca_pem)),
    );
}

async fn inventory(sim: web::Data<SimShared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "system": sim.kind,
        "servers": *sim.fleet(),
    }))
}

async fn counters(sim: web::Data<SimShared>) -> HttpResponse {
    let endpoints = sim.counters();
    let total: u64 = endpoints.values().sum();
    HttpResponse::Ok().json(json!({ "total": total, "endpoints": endpoints }))
}

async fn reset(sim: web::Data<SimShared>) -> HttpResponse {
    sim.reset();
    HttpResponse::NoContent().finish()
}

async fn get_faults(sim: web::Data<SimShared>) -> HttpResponse {
    let faults = sim.faults.read().map(|f| f.clone()).unwrap_or_default();
    HttpResponse::Ok().json(faults)
}

async fn put_faults(sim: web::Data<SimShared>, body: web::Json<Faults>) -> HttpResponse {
    let faults = body.into_inner();
    let rates = [faults.error_rate, faults.malformed_rate, faults.drop_rate];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) || rates.iter().sum::<f64>() > 1.0 {
        return HttpResponse::BadRequest().body(
            "error_rate, malformed_rate and drop_rate must be within 0..=1 and sum to at most 1",
        );
    }
    sim.set_faults(faults.clone());
    HttpResponse::Ok().json(faults)
}

async fn clear_faults(sim: web::Data<SimShared>) -> HttpResponse {
    sim.set_faults(Faults::default());
    HttpResponse::NoContent().finish()
}

async fn expire_sessions(sim: web::Data<SimShared>) -> HttpResponse {
    sim.expire_sessions();
    HttpResponse::NoContent().finish()
}

async fn ca_pem() -> HttpResponse {
    match super::tls::get() {
        Ok(tls) => HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .body(tls.ca_pem.clone()),
        Err(e) => HttpResponse::InternalServerError().body(e),
    }
}
