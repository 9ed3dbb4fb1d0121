//! Command line: the binary edge, where errors become `anyhow` reports and exit codes.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inventory_gateway::config::Config;
use inventory_gateway::demo::{self, FleetSpec};
use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::{fleet, SimHandle};
use inventory_gateway::startup::Application;
use inventory_gateway::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "inventory-gateway", version, about)]
struct Cli {
    /// Log output format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "pretty",
        env = "IGW_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// TOML config file; `IGW__…` environment variables override it.
        #[arg(long, short, env = "IGW_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load and validate the config, print a summary, and exit (non-zero on error).
    CheckConfig {
        #[arg(long, short, env = "IGW_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the OneView, UCS Manager and OME simulators.
    Sim(SimArgs),
    /// Print the BareMetalHostGenerator CRD (YAML) generated from the controller's Rust types.
    Crd,
    /// Simulators plus a gateway configured against them, all on loopback.
    Demo {
        /// Gateway port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        sim: SimArgs,
    },
}

#[derive(Args, Clone)]
struct SimArgs {
    /// OneView simulator port (0 = any free port).
    #[arg(long, default_value_t = 9001)]
    oneview_port: u16,
    /// UCS Manager simulator port (0 = any free port).
    #[arg(long, default_value_t = 9002)]
    ucsm_port: u16,
    /// OME simulator port (0 = any free port).
    #[arg(long, default_value_t = 9003)]
    ome_port: u16,
    /// Serve HTTPS with a generated CA (its PEM is at /_sim/ca.pem).
    #[arg(long)]
    tls: bool,
    /// Servers per simulated system.
    #[arg(long, default_value_t = 50)]
    servers: usize,
    /// Seed of the generated fleet (same seed, same fleet).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON inventory `{"oneview":[…],"ucsm":[…],"ome":[…]}` instead of a generated fleet.
    #[arg(long)]
    inventory: Option<PathBuf>,
}

impl SimArgs {
    fn start(&self) -> anyhow::Result<Vec<SimHandle>> {
        let fleets = demo::fleets(&FleetSpec {
            seed: self.seed,
            servers: self.servers,
            inventory: self.inventory.clone(),
        })?;
        let ports = [
            (SystemKind::Oneview, self.oneview_port),
            (SystemKind::Ucsm, self.ucsm_port),
            (SystemKind::Ome, self.ome_port),
        ];
        Ok(demo::start_sims(&fleets, &ports, self.tls)?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Sim(_) => "warn,inventory_gateway=info",
        _ => "info",
    };
    telemetry::init(cli.log_format, default_filter);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => serve(load_config(config.as_deref())?).await,
        Command::CheckConfig { config } => {
            let config = load_config(config.as_deref())?;
            println!("config OK: listen {}", config.server.listen);
            for s in &config.systems {
                println!(
                    "  system {:<16} kind {:<8} endpoint {}{}",
                    s.name,
                    s.kind.as_str(),
                    s.endpoint,
                    if s.insecure_skip_verify {
                        "  (TLS verification OFF)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Command::Sim(args) => {
            let sims = args.start()?;
            for s in &sims {
                println!("{:<8} {}", s.kind.as_str(), s.base_url);
            }
            println!(
                "control plane: <url>/_sim/inventory, /_sim/counters, /_sim/faults; Ctrl-C stops"
            );
            wait_for_shutdown_signal().await;
            for s in &sims {
                s.stop().await;
            }
            Ok(())
        }
        Command::Demo { port, sim } => run_demo(port, &sim).await,
        Command::Crd => {
            print!("{}", inventory_gateway::controller::crd::crd_yaml()?);
            Ok(())
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Config::load(path, std::env::vars()).context("invalid configuration")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config)?;
    tracing::info!(
        port = app.port(),
        systems = config.systems.len(),
        "gateway listening"
    );
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    wait_for_shutdown_signal().await;
    tracing::info!("shutting down: draining requests, then logging out of every system");
    handle.stop(true).await;
    server.await??;
    Ok(())
}

async fn run_demo(port: u16, args: &SimArgs) -> anyhow::Result<()> {
    let sims = args.start()?;
    let dir = std::env::temp_dir().join(format!("inventory-gateway-demo-{}", std::process::id()));
    let (config, config_path) = demo::write_gateway_config(&dir, &sims, port)?;
    let app = Application::build(&config)?;
    let gateway = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());

    println!("inventory-gateway demo");
    println!("  gateway      {gateway}");
    println!("  config       {}", config_path.display());
    for s in &sims {
        println!(
            "  {:<12} {} ({} servers)",
            s.kind.as_str(),
            s.base_url,
            s.shared.fleet().len()
        );
    }
    println!("\ntry:");
    for s in &sims {
        let fleet = s.shared.fleet();
        if let Some(first) = fleet.first() {
            println!("  curl -s {gateway}/servers/{}", first.name);
        }
    }
    println!(
        "  curl -s {gateway}/servers/{}-does-not-exist",
        fleet::name_prefix(SystemKind::Oneview)
    );
    println!("  curl -s {gateway}/vendors");
    println!("\nCtrl-C stops everything.");

    wait_for_shutdown_signal().await;
    handle.stop(true).await;
    server.await??;
    for s in &sims {
        s.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
