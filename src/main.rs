//! Command line: the binary edge, where errors become `anyhow` reports and exit codes.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inventory_gateway::config::{Config, LogFormatConfig};
use inventory_gateway::demo::{self, FleetSpec, TokenSpec};
use inventory_gateway::domain::SystemKind;
use inventory_gateway::http::auth;
use inventory_gateway::sim::{fleet, SimHandle, SimOptions};
use inventory_gateway::startup::Application;
use inventory_gateway::telemetry::{self, LogFormat};
use inventory_gateway::vendors::intersight::signing::PublicKey;
use secrecy::{ExposeSecret, SecretString};

#[derive(Parser)]
#[command(name = "inventory-gateway", version, about)]
struct Cli {
    /// Log output format; defaults to the config's `telemetry.log_format`, else pretty.
    #[arg(long, global = true, value_enum, env = "IGW_LOG_FORMAT")]
    log_format: Option<LogFormat>,
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
    Sim {
        #[command(flatten)]
        args: SimArgs,
        /// Address to listen on. Keep loopback unless the simulators must be reached from
        /// another container (docker-compose binds 0.0.0.0 inside its own network).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
    /// Print the BareMetalHostGenerator CRD (YAML) generated from the controller's Rust types.
    Crd,
    /// Run the BareMetalHostGenerator controller (Kubernetes client from KUBECONFIG or in-cluster).
    Controller(Box<inventory_gateway::controller::run::ControllerArgs>),
    /// Before switching from the kopf operator: list per generator what the controller would
    /// adopt, create, keep, rename on redeploy or refuse. Read-only (GET and LIST).
    MigrateCheck(inventory_gateway::controller::migrate_check::MigrateCheckArgs),
    /// Simulators plus a gateway configured against them, all on loopback.
    Demo {
        /// Gateway port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Bearer token (read + admin) the demo gateway accepts; random when not given.
        #[arg(long, env = "IGW_DEMO_TOKEN")]
        token: Option<String>,
        /// Do not sweep the simulators into the fleet index (`[fleet] enabled = false`), so
        /// that their request counters see lookups only.
        #[arg(long)]
        no_fleet: bool,
        #[command(flatten)]
        sim: SimArgs,
    },
    /// Benchmark the gateway against the simulators on loopback (warm and cold path,
    /// coalescing, fan-out, peak RSS); prints one Markdown table, `--out` writes BENCHMARKS.md.
    Bench(inventory_gateway::bench::BenchArgs),
    /// Print the OpenAPI document (JSON) of the gateway's API.
    Openapi,
    /// Make a tokens-file entry: reads the token from stdin (never from the command line, where
    /// shell history and `ps` would keep it), or generates one with `--generate` and prints it on
    /// stderr. The entry goes to stdout: `... hash-token --generate --name ci >> tokens.toml`.
    HashToken {
        /// Name of the entry (shows in logs instead of the token).
        #[arg(long, default_value = "client")]
        name: String,
        /// Scopes: read, admin (repeatable).
        #[arg(long = "scope", default_value = "read", value_parser = ["read", "admin"])]
        scopes: Vec<String>,
        /// Generate a new random token instead of reading one.
        #[arg(long)]
        generate: bool,
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
    /// UCS Central simulator port (0 = any free port); its UCS Manager domains listen on
    /// 127.0.1.1, 127.0.1.2, … on one free port they share.
    #[arg(long, default_value_t = 9004)]
    ucs_central_port: u16,
    /// Address of the UCS Central simulator, when not the others' (Cisco's ucscsdk connects
    /// to port 443 only: e.g. `--ucs-central-bind 127.0.0.2 --ucs-central-port 443`).
    #[arg(long)]
    ucs_central_bind: Option<std::net::IpAddr>,
    /// Intersight simulator port (0 = any free port).
    #[arg(long, default_value_t = 9005)]
    intersight_port: u16,
    /// Control port of the simulated Redfish BMCs (0 = any free port); the BMCs themselves
    /// listen on 127.0.3.1, 127.0.3.2, … on one free port they share.
    #[arg(long, default_value_t = 9006)]
    redfish_port: u16,
    /// Standalone servers managed only by their own Redfish BMC (at most 64; 0 = none).
    #[arg(long, default_value_t = 12)]
    redfish_bmcs: usize,
    /// An API key the Intersight simulator accepts besides the key pair it generates for the
    /// demo's gateway, as `KEY_ID=PUBLIC_KEY_PEM_FILE` (repeatable; a client such as Cisco's
    /// SDK then signs with the private half).
    #[arg(long, value_name = "KEY_ID=FILE")]
    intersight_public_key: Vec<String>,
    /// Serve HTTPS with a generated CA (its PEM is at /_sim/ca.pem).
    #[arg(long)]
    tls: bool,
    /// Servers per simulated system.
    #[arg(long, default_value_t = 50)]
    servers: usize,
    /// Seed of the generated fleet (same seed, same fleet).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON inventory `{"oneview":[…],"ucsm":[…],"ucs-central":[…],"ome":[…]}` instead of a
    /// generated fleet.
    #[arg(long)]
    inventory: Option<PathBuf>,
}

impl SimArgs {
    fn start(&self, bind: std::net::IpAddr) -> anyhow::Result<Vec<SimHandle>> {
        let fleets = demo::fleets(&FleetSpec {
            seed: self.seed,
            servers: self.servers,
            redfish_bmcs: self.redfish_bmcs,
            inventory: self.inventory.clone(),
        })?;
        let central = [(SystemKind::UcsCentral, self.ucs_central_port)];
        let ports = [
            (SystemKind::Oneview, self.oneview_port),
            (SystemKind::Ucsm, self.ucsm_port),
            (SystemKind::Ome, self.ome_port),
        ];
        let mut sims = demo::start_sims_on(&fleets, &ports, self.tls, bind)?;
        let central_bind = self.ucs_central_bind.unwrap_or(bind);
        let central = demo::start_sims_on(&fleets, &central, self.tls, central_bind)?;
        sims.splice(2..2, central);
        let mut opts = SimOptions::new(
            SystemKind::Intersight,
            fleets
                .get(&SystemKind::Intersight)
                .cloned()
                .unwrap_or_default(),
        );
        opts.port = self.intersight_port;
        opts.tls = self.tls;
        opts.bind = bind;
        for spec in &self.intersight_public_key {
            let (id, file) = spec
                .split_once('=')
                .context("--intersight-public-key takes KEY_ID=FILE")?;
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read public key {file}"))?;
            let key =
                PublicKey::from_spki_pem(&pem).with_context(|| format!("public key {file}"))?;
            opts.api_keys.push((id.to_owned(), key));
        }
        sims.push(
            inventory_gateway::sim::start(opts).context("cannot start the Intersight simulator")?,
        );
        if self.redfish_bmcs > 0 {
            let redfish = [(SystemKind::Redfish, self.redfish_port)];
            sims.extend(demo::start_sims_on(&fleets, &redfish, self.tls, bind)?);
        }
        Ok(sims)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The config (when there is one) chooses format and filter; `--log-format` and `RUST_LOG`
    // win. A config that does not load is reported by the command itself.
    let config_telemetry = match &cli.command {
        Command::Serve { config } | Command::CheckConfig { config } => {
            Config::load(config.as_deref(), std::env::vars())
                .ok()
                .map(|c| c.telemetry)
        }
        _ => None,
    };
    let default_filter = match (&cli.command, &config_telemetry) {
        (_, Some(t)) => t.log_filter.clone(),
        (Command::Sim { .. }, None) => "warn,inventory_gateway=info".to_owned(),
        (Command::Bench(_), None) => "warn".to_owned(),
        (Command::Controller(_), None) => match controller_log_level() {
            Ok(Some(filter)) => filter.to_owned(),
            Ok(None) => "info,kube_runtime=warn".to_owned(),
            Err(e) => anyhow::bail!(e),
        },
        (Command::MigrateCheck(_), None) => "warn".to_owned(),
        _ => "info".to_owned(),
    };
    let format = cli.log_format.unwrap_or(match config_telemetry {
        Some(t) if t.log_format == LogFormatConfig::Json => LogFormat::Json,
        _ => LogFormat::Pretty,
    });
    // Dropped last (after the runtime), which flushes the buffered log lines.
    let _log_guard = telemetry::init(format, &default_filter);
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
            let auth = auth::Authenticator::from_config(&config.auth)?;
            println!("config OK: listen {}", config.server.listen);
            match auth {
                Some(a) => println!("  auth: {} token(s)", a.token_count()),
                None => println!("  auth: DISABLED"),
            }
            for s in &config.systems {
                println!(
                    "  system {:<16} kind {:<8} endpoint {}{}",
                    s.name,
                    s.kind.as_str(),
                    s.endpoint.as_ref().map_or_else(
                        || format!("{} BMCs (inventory)", s.bmcs.len()),
                        |u| u.to_string()
                    ),
                    if s.insecure_skip_verify {
                        "  (TLS verification OFF)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Command::Sim { args, bind } => {
            let sims = args.start(bind)?;
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
        Command::Demo {
            port,
            token,
            no_fleet,
            sim,
        } => run_demo(port, token, no_fleet, &sim).await,
        Command::Bench(args) => {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let argv: Vec<String> = std::env::args().collect();
            Ok(inventory_gateway::bench::run(args, exe, &argv).await?)
        }
        Command::Openapi => {
            print!("{}", inventory_gateway::http::openapi::spec_json());
            Ok(())
        }
        Command::HashToken {
            name,
            scopes,
            generate,
        } => hash_token(&name, &scopes, generate),
        Command::MigrateCheck(args) => {
            print!(
                "{}",
                inventory_gateway::controller::migrate_check::run(args).await?
            );
            Ok(())
        }
        Command::Crd => {
            print!("{}", inventory_gateway::controller::crd::crd_yaml()?);
            Ok(())
        }
        Command::Controller(mut args) => {
            args.flags = std::env::args()
                .filter_map(|a| {
                    a.strip_prefix("--")
                        .map(|f| f.split('=').next().unwrap_or(f).to_owned())
                })
                .collect();
            args.apply_env(&std::env::vars().collect())?;
            inventory_gateway::controller::run::run(*args, wait_for_shutdown_signal()).await?;
            tracing::info!("controller stopped");
            Ok(())
        }
    }
}

/// The old operator's `LOG_LEVEL` (Python level names) as the controller's default filter;
/// `RUST_LOG` beside it is an error naming both.
fn controller_log_level() -> Result<Option<&'static str>, String> {
    use inventory_gateway::controller::legacy;
    let env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k == "RUST_LOG" || k == "LOG_LEVEL")
        .collect();
    Ok(legacy::one_of(&env, "RUST_LOG", "LOG_LEVEL")?
        .filter(|(_, spelling)| *spelling == "old")
        .map(|(v, _)| legacy::log_filter_from_level(&v)))
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Config::load(path, std::env::vars()).context("invalid configuration")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config)?;
    let limits = &config.server.limits;
    tracing::info!(
        port = app.port(),
        systems = config.systems.len(),
        "gateway listening"
    );
    let handle = app.handle();
    let readiness = app.readiness();
    let server = tokio::spawn(app.run_until_stopped());
    wait_for_shutdown_signal().await;
    // Not ready first, still serving: load balancers stop sending before the drain cuts off.
    readiness.begin_shutdown();
    tracing::info!(
        delay_ms = limits.shutdown_delay.as_millis() as u64,
        drain_timeout_s = limits.shutdown_timeout.as_secs(),
        "shutting down: /readyz is 503; serving on for the delay, then draining requests and \
         logging out of every system"
    );
    tokio::time::sleep(limits.shutdown_delay).await;
    handle.stop(true).await;
    server.await??;
    tracing::info!("shutdown complete");
    Ok(())
}

fn hash_token(name: &str, scopes: &[String], generate: bool) -> anyhow::Result<()> {
    let token = if generate {
        let t = auth::generate_token();
        eprintln!(
            "new token (store it now; only its hash is kept): {}",
            t.expose_secret()
        );
        t
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the token from stdin")?;
        let t = line.trim();
        anyhow::ensure!(t.len() >= 16, "a token must be at least 16 characters");
        SecretString::from(t.to_owned())
    };
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    println!(
        "[[tokens]]\nname = \"{name}\"\nhash = \"{}\"\nscopes = [{}]",
        auth::hash_token(token.expose_secret()),
        scopes.join(", ")
    );
    Ok(())
}

async fn run_demo(
    port: u16,
    token: Option<String>,
    no_fleet: bool,
    args: &SimArgs,
) -> anyhow::Result<()> {
    let token = token
        .map(SecretString::from)
        .unwrap_or_else(auth::generate_token);
    let sims = args.start(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))?;
    let dir = std::env::temp_dir().join(format!("inventory-gateway-demo-{}", std::process::id()));
    let tokens = [TokenSpec::new("demo", token.clone(), &["read", "admin"])];
    let fleet = if no_fleet { "enabled = false\n" } else { "" };
    let (_, config_path) = demo::write_gateway_config_with(&dir, &sims, port, &tokens, fleet)?;
    // `IGW__…` overrides apply to the demo's gateway as they do to `serve`.
    let config = load_config(Some(&config_path))?;
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
    // The demo's own token, printed on purpose: it guards loopback simulators only.
    println!("  token        {}", token.expose_secret());
    println!("  page         {gateway}/  (search by name, MAC, serial, BMC; paste the token)");
    println!("  swagger ui   {gateway}/swagger-ui/  (Authorize with the token)");
    let auth = format!("-H 'Authorization: Bearer {}'", token.expose_secret());
    println!("\ntry:");
    for s in &sims {
        let fleet = s.shared.fleet();
        if let Some(first) = fleet.first() {
            println!("  curl -s {auth} {gateway}/servers/{}", first.name);
        }
    }
    println!(
        "  curl -s {auth} {gateway}/servers/{}-does-not-exist",
        fleet::name_prefix(SystemKind::Oneview)
    );
    let first_mac = sims.iter().find_map(|s| {
        let fleet = s.shared.fleet();
        fleet
            .iter()
            .find_map(|server| server.nics.first().map(|n| n.mac.clone()))
    });
    if let Some(mac) = first_mac {
        println!("  curl -s {auth} '{gateway}/servers?mac={mac}'");
    }
    println!("  curl -s {auth} '{gateway}/servers?limit=5'");
    println!("  curl -s {auth} {gateway}/fleet");
    println!("  curl -s {auth} {gateway}/vendors");
    println!("  curl -s {gateway}/metrics");
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
