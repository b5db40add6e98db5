//! `freecall` — the daemon and its admin commands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use freecall::config::{ApiListen, Config, WebListen};
use freecall::driver::{self, Stop};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "freecall",
    version,
    about = "SIP softswitch (B2BUA) for calls someone else has paid for"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring the database schema up to date and exit.
    Migrate {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
    },
    /// API keys for the REST API.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Call records.
    Cdr {
        #[command(subcommand)]
        command: CdrCommand,
    },
    /// The rate deck: prices per number prefix, above the tariffs per kind of number.
    Deck {
        #[command(subcommand)]
        command: DeckCommand,
    },
    /// Run the switch.
    Serve {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
        /// Validate the configuration and exit (0 valid, 64 invalid).
        #[arg(long)]
        check_config: bool,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key; it is printed once and stored hashed.
    Create {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
        /// admin (everything), credit (members, purchases, credits) or read (the GETs);
        /// repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A name to recognise the key by (e.g. the shop's name).
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Subcommand)]
enum DeckCommand {
    /// Load a CSV deck (prefix,name,account,per_minute,increment,connection[,minimum]) in
    /// place of the one in force, in one step; running switches price with it from their
    /// next heartbeat, calls in progress keep their price.
    Import {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
        file: PathBuf,
    },
    /// Print the deck in force as CSV (the import format).
    Show {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
    },
    /// Remove the deck: every number is priced by its kind again.
    Remove {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CdrCommand {
    /// Print call records from the switch's database; with -f, follow new ones.
    Tail {
        #[arg(long, default_value = "conf/freecall.toml")]
        config: PathBuf,
        /// Keep printing records as calls end.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Calls from or to this number.
        #[arg(long)]
        number: Option<String>,
        /// Calls paid by this account.
        #[arg(long)]
        account: Option<i64>,
        /// Calls that ended at or after this time: 2026-11-23, 2026-11-23T10:00:00 (UTC).
        #[arg(long)]
        since: Option<String>,
        /// Records after this position (the ID column): resume where you left off.
        #[arg(long)]
        after: Option<i64>,
        /// table (readable columns), json (one record per line) or csv.
        #[arg(long, default_value = "table")]
        format: String,
        /// Without --since/--after: start with this many of the newest records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// With -f: stop after this many seconds.
        #[arg(long = "for")]
        for_secs: Option<u64>,
    },
}

/// SIGHUP: read the configuration again and apply trunks, dial plan, peers, tariffs and
/// prompts together; calls in progress keep what they started with. A configuration
/// that does not validate (or prompts that cannot be read) changes nothing. Settings that
/// need a restart (addresses, ports, database) are reported, not applied.
async fn reload(
    path: &std::path::Path,
    running: &Config,
    handle: &driver::SwitchHandle,
    accounting: &freecall::accounting::Accounting,
) {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(config = %path.display(), "reload refused, nothing changed: {e}");
            return;
        }
    };
    if let Err(e) = handle.reload(&cfg).await {
        error!(config = %path.display(), "reload refused, nothing changed: {e}");
        return;
    }
    accounting.set_tariffs(cfg.tariffs());
    // A renewed certificate: the files were read and checked by Config::load above.
    if running.sip.tls_listen.is_some() {
        match handle.reload_certificate(&cfg.sip.tls_certificate, &cfg.sip.tls_private_key) {
            Ok(()) => info!(
                certificate = %cfg.sip.tls_certificate,
                "TLS certificate read again: new connections present it"
            ),
            Err(e) => error!("TLS certificate not reloaded, the old one stays: {e}"),
        }
    }
    let restart_only = [
        ("sip.listen", running.sip.listen != cfg.sip.listen),
        (
            "sip.tls_listen",
            running.sip.tls_listen != cfg.sip.tls_listen,
        ),
        (
            "media",
            running.media.port_min != cfg.media.port_min
                || running.media.port_max != cfg.media.port_max
                || running.media.address != cfg.media.address
                || running.media.advertised_address != cfg.media.advertised_address,
        ),
        ("database.url", running.database.url != cfg.database.url),
        ("api.listen", running.api.listen != cfg.api.listen),
        (
            "web",
            format!("{:?}", running.web) != format!("{:?}", cfg.web),
        ),
        ("limits", running.limits != cfg.limits),
        (
            "sip.dns_servers",
            running.sip.dns_servers != cfg.sip.dns_servers,
        ),
    ];
    for (key, changed) in restart_only {
        if changed {
            warn!(
                key,
                "changed in the configuration: takes effect at the next restart"
            );
        }
    }
    info!(
        trunks = cfg.trunks.len(),
        routes = cfg.routes.len(),
        tariffs = cfg.tariffs.len(),
        "configuration reloaded"
    );
}

/// `freecall deck …`: the operator's rate deck.
fn deck(command: DeckCommand) -> ExitCode {
    let (DeckCommand::Import { config, .. }
    | DeckCommand::Show { config }
    | DeckCommand::Remove { config }) = &command;
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_migrated(&cfg) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rates = match &command {
        DeckCommand::Show { .. } => {
            return match store.rate_deck() {
                Ok(deck) => {
                    print!("{}", freecall::billing::deck::to_csv(&deck));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("freecall: deck show: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        DeckCommand::Remove { .. } => Vec::new(),
        DeckCommand::Import { file, .. } => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("freecall: {}: {e}", file.display());
                    return ExitCode::from(66);
                }
            };
            match freecall::billing::deck::parse_csv(&text) {
                Ok(rates) => rates,
                Err(errors) => {
                    eprintln!("freecall: {}: nothing was loaded:", file.display());
                    for e in errors {
                        eprintln!("  {e}");
                    }
                    return ExitCode::from(65);
                }
            }
        }
    };
    match store.load_rate_deck(&rates, "cli") {
        Ok(i) if i.rates == 0 => {
            eprintln!(
                "rate deck removed (version {}): every number is priced by its kind",
                i.version
            );
            ExitCode::SUCCESS
        }
        Ok(i) => {
            eprintln!(
                "rate deck version {} in force: {} rates",
                i.version, i.rates
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("freecall: deck: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configured database, brought up to date, for a command that uses it.
fn open_migrated(cfg: &Config) -> Result<freecall::store::Store, ExitCode> {
    freecall::store::Store::open(&cfg.database.url, 1)
        .and_then(|s| s.migrate().map(|_| s))
        .map_err(|e| {
            eprintln!("freecall: database: {e}");
            ExitCode::FAILURE
        })
}

/// The configuration at `path`, or the exit code for a bad one (the reason printed).
fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("freecall: {}: {e}", path.display());
        ExitCode::from(EXIT_CONFIG)
    })
}

/// EX_CONFIG from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { config } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match freecall::store::Store::open(&cfg.database.url, 1).and_then(|s| s.migrate()) {
                Ok(applied) if applied.is_empty() => {
                    println!("database is up to date");
                    ExitCode::SUCCESS
                }
                Ok(applied) => {
                    for m in applied {
                        println!("applied {m}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("freecall: migrate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cdr {
            command:
                CdrCommand::Tail {
                    config,
                    follow,
                    number,
                    account,
                    since,
                    after,
                    format,
                    lines,
                    for_secs,
                },
        } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(format) = freecall::tail::Format::parse(&format) else {
                eprintln!("freecall: --format is table, json or csv");
                return ExitCode::from(EXIT_CONFIG);
            };
            let since_ms = match since.as_deref().map(freecall::cdr::parse_time) {
                Some(None) => {
                    eprintln!("freecall: --since: not a date or time");
                    return ExitCode::from(EXIT_CONFIG);
                }
                Some(t) => t,
                None => None,
            };
            let store = match open_migrated(&cfg) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let tail = freecall::tail::Tail {
                query: freecall::store::cdrs::CdrQuery {
                    after: after.unwrap_or(0),
                    node: None,
                    number: number.map(|n| freecall::routing::normalize_number(&n).unwrap_or(n)),
                    account,
                    card: None,
                    since_ms,
                    until_ms: None,
                    limit: 1000,
                },
                lines,
                follow,
                format,
                for_secs,
            };
            let stdout = std::io::stdout();
            match freecall::tail::run(&store, tail, &mut stdout.lock()) {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is a normal end.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("freecall: cdr tail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Deck { command } => deck(command),
        Command::Apikey {
            command:
                ApikeyCommand::Create {
                    config,
                    scopes,
                    name,
                },
        } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            for s in &scopes {
                if freecall::api::Scope::parse(s).is_none() {
                    eprintln!("freecall: unknown scope '{s}' (admin, credit or read)");
                    return ExitCode::from(64);
                }
            }
            let key = {
                use rand::Rng;
                let mut rng = rand::rng();
                let bytes: Vec<u8> = (0..4).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
                format!("fc_{}", hex_encode(&bytes))
            };
            let result = freecall::store::Store::open(&cfg.database.url, 1).and_then(|s| {
                s.migrate()?;
                s.create_api_key(
                    &name,
                    &freecall::auth::api_key_hash(&key),
                    &scopes.join(" "),
                )
            });
            match result {
                Ok(id) => {
                    eprintln!(
                        "API key {id} created with scopes: {} (it is shown only now)",
                        scopes.join(" ")
                    );
                    println!("{key}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("freecall: apikey create: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            config,
            check_config,
        } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if check_config {
                println!("{}: configuration is valid", config.display());
                return ExitCode::SUCCESS;
            }
            init_logging(&cfg);
            match serve(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("freecall: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    use std::io::IsTerminal;
    // Colours only on a terminal: under systemd the journal would store escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cfg.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Open the configured database and bring its schema up to date.
fn open_store(cfg: &Config) -> anyhow::Result<freecall::store::Store> {
    let store = freecall::store::Store::open(&cfg.database.url, cfg.database.pool_size)
        .with_context(|| format!("opening the database {}", redact(&cfg.database.url)))?;
    let applied = store.migrate().context("migrating the database")?;
    for m in &applied {
        info!(migration = %m, "applied");
    }
    info!(backend = store.backend(), url = %redact(&cfg.database.url), "database ready");
    Ok(store)
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn serve(cfg: Config, path: PathBuf) -> anyhow::Result<()> {
    // Every call holds four RTP sockets; the default limit of 1024 descriptors would cap
    // the switch at a couple of hundred calls.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => info!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "could not raise the open file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let seed = freecall::clock::Clock::system()
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        let store = open_store(&cfg)?;
        let metrics = if cfg.api.metrics {
            freecall::telemetry::install()
        } else {
            None
        };
        let accounting = freecall::accounting::Accounting::new(
            store.clone(),
            cfg.tariffs(),
            cfg.billing.node_id.clone(),
            Duration::from_secs(cfg.billing.heartbeat_secs),
            cfg.billing.spool_file.clone().into(),
        )
        .with_lease(Duration::from_secs(cfg.billing.node_lease_secs));
        let accounting = match cfg.cdr.file.as_str() {
            "" => accounting,
            file => accounting.with_cdr_file(file.into(), cfg.cdr.max_file_bytes.max(1)),
        };
        // Only one process per node id: recovery settles this node's open calls, which
        // must not be another live switch's.
        let _node_lock = store
            .lock_node(&cfg.database.url, &cfg.billing.node_id)
            .with_context(|| format!("taking the lock of node '{}'", cfg.billing.node_id))?;
        let recovered = accounting
            .recover()
            .await
            .context("settling calls left open by the last run")?;
        if recovered > 0 {
            warn!(recovered, "calls left open by the last run were settled");
        }
        let tariffs = accounting.tariffs.clone();
        let reloader = accounting.clone();
        let mut fenced = accounting.fenced();
        let mut fenced_by = None;
        let handle = driver::start(&cfg, seed, Some(accounting)).await?;
        let placing = freecall::placing::Placing::new(
            store.clone(),
            tariffs.clone(),
            cfg.billing.node_id.clone(),
            cfg.billing.home_country.clone(),
            freecall::placing::Rules::from_config(
                &cfg.callbacks,
                &cfg.billing.blocked_destinations,
            ),
            handle.link(),
        );
        let bookings = freecall::placing::bookings::Bookings::new(
            placing.clone(),
            store.clone(),
            cfg.billing.node_id.clone(),
            freecall::placing::bookings::BookingRules::from_config(&cfg.bookings),
        );
        let _scheduler = bookings.spawn();
        let pages = if cfg.web.listen == WebListen::Off {
            None
        } else {
            Some(
                freecall::web::WebState::new(
                    store.clone(),
                    Some(placing.clone()),
                    tariffs.clone(),
                    cfg.web.clone(),
                    cfg.billing.realm.clone(),
                    cfg.billing.signup_bonus_guild,
                    cfg.billing.signup_bonus_mileage,
                    cfg.billing.home_country.clone(),
                )
                .with_context(|| format!("web.data_dir '{}': the session key", cfg.web.data_dir))?
                .with_bookings(bookings.clone()),
            )
        };
        let mut servers = Vec::new();
        if let ApiListen::At(addr) = cfg.api.listen {
            let state = freecall::api::ApiState {
                store: store.clone(),
                tariffs: tariffs.clone(),
                realm: cfg.billing.realm.clone(),
                signup_bonus_mileage: cfg.billing.signup_bonus_mileage,
                signup_bonus_guild: cfg.billing.signup_bonus_guild,
                metrics: metrics.clone(),
                placing: Some(placing.clone()),
                public_url: cfg.web.public_url.clone(),
                numbers: cfg.billing.home_country.clone(),
                bookings: Some(bookings.clone()),
                registrations: Some(handle.registrations()),
                fence: std::sync::Arc::new(freecall::api::fence::Fence::new(
                    cfg.api.requests_per_address,
                    cfg.api.max_concurrent_requests,
                )),
            };
            let same = pages.clone().filter(|_| cfg.web.listen == WebListen::Api);
            let with_pages = same.is_some();
            let (server, addr) =
                freecall::api::serve_with_pages(state, addr, cfg.api.max_body_bytes, same)
                    .with_context(|| format!("cannot listen for the API on {addr}"))?;
            servers.push(server.handle());
            tokio::spawn(server);
            info!(api = %addr, pages = with_pages, "REST API listening");
        }
        if let (Some(state), WebListen::At(addr)) = (pages, cfg.web.listen) {
            let (server, addr) = freecall::web::serve(state, addr)
                .with_context(|| format!("cannot listen for the web pages on {addr}"))?;
            servers.push(server.handle());
            tokio::spawn(server);
            info!(web = %addr, "web pages listening");
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        info!(sip = %handle.sip_addr, trunks = cfg.trunks.len(), "freecall ready");
        let grace = Duration::from_secs(cfg.sip.shutdown_grace_secs);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let how = loop {
            tokio::select! {
                _ = term.recv() => {
                    info!(?grace, "SIGTERM: draining");
                    break Stop::Drain(grace);
                }
                _ = tokio::signal::ctrl_c() => {
                    info!("SIGINT: stopping now");
                    break Stop::Now;
                }
                Ok(()) = fenced.changed() => {
                    let why = fenced.borrow().clone().unwrap_or_default();
                    error!(%why, "this node must stop carrying calls: hanging up and stopping, to start again as a new incarnation");
                    fenced_by = Some(why);
                    break Stop::Now;
                }
                _ = hup.recv() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    reload(&path, &cfg, &handle, &reloader).await;
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
            }
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        handle.stop(how);
        // A second signal during a drain stops at once.
        let stop_now = handle.stopper();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop_now(Stop::Now);
            }
        });
        if let Some(stats) = handle.join().await {
            info!(?stats, "stopped");
        }
        for server in servers {
            server.stop(true).await;
        }
        if let Some(why) = fenced_by {
            // Not a clean stop: systemd (Restart=on-failure) starts the node again.
            anyhow::bail!("node '{}' stopped: {why}", cfg.billing.node_id);
        }
        Ok::<(), anyhow::Error>(())
    })
}
