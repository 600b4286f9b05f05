//! `marketplace-stub [ADDR]`: the marketplace connector stand-in for `make dev`
//! (default 127.0.0.1:5056). The bearer token it expects is `MARKETPLACE_API_TOKEN`.

use relance_tests::marketplace_stub::Stub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5056".to_owned());
    let token = std::env::var("MARKETPLACE_API_TOKEN").unwrap_or_else(|_| "dev-token".to_owned());
    let stub = Stub::new(&token);
    let local = stub.spawn(&addr).await?;
    println!("marketplace stub on http://{local} (GET /messages lists what it received)");
    tokio::signal::ctrl_c().await
}
