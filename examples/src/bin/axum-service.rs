//! The example routes on axum. `axum-service --help` lists the options and routes.

use clap::Parser;
use examples::{axum_app, setup, shutdown::shutdown_signal, AppState, ServiceArgs};
use xray_tower::XRayLayer;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    setup::init_logging();
    match run(ServiceArgs::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: ServiceArgs) -> Result<(), setup::SetupError> {
    let name = args.name_or("axum-service");
    let recorder = setup::recorder(&args, name)?;

    let mut layer = XRayLayer::new(name).with_recorder(recorder.clone());
    if let Some(pattern) = &args.dynamic_naming {
        layer = layer.with_dynamic_naming(pattern);
    }
    let app = axum_app::router(AppState::new(), layer);

    let listen_error = |source| setup::SetupError::Listen {
        addr: args.listen.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    println!("listening on http://{addr}");

    axum_app::serve(listener, app, shutdown_signal())
        .await
        .map_err(listen_error)?;
    setup::flush(&recorder);
    Ok(())
}
