//! The example routes on actix-web. `actix-service --help` lists the options and routes.

use clap::Parser;
use examples::{actix_app, setup, shutdown::shutdown_signal, AppState, ServiceArgs};
use xray_actix::XRay;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    setup::init_logging();
    match run(ServiceArgs::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actix-service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: ServiceArgs) -> Result<(), setup::SetupError> {
    let name = args.name_or("actix-service");
    let recorder = setup::recorder(&args, name)?;

    let mut xray = XRay::new(name).with_recorder(recorder.clone());
    if let Some(pattern) = &args.dynamic_naming {
        xray = xray.with_dynamic_naming(pattern);
    }

    let listen_error = |source| setup::SetupError::Listen {
        addr: args.listen.clone(),
        source,
    };
    let listener = std::net::TcpListener::bind(&args.listen).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let server =
        actix_app::server(listener, AppState::new(), xray, workers).map_err(listen_error)?;
    println!("listening on http://{addr}");

    actix_app::stop_on(server.handle(), shutdown_signal());
    server.await.map_err(listen_error)?;
    setup::flush(&recorder);
    Ok(())
}
