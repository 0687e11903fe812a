use crate::daemon;
use crate::exit;
use crate::output::print_json;
use crate::GlobalOpts;
use clap::Subcommand;
use netjes_serve::config::{Config, RawConfig};
use std::io::Read;
use std::path::PathBuf;

pub const SERVE_AFTER_HELP: &str = "\
EXAMPLES:
    netjes serve                                   # ./netjes-data, http://127.0.0.1:8025/, SMTP on 2525
    netjes serve --config /etc/netjes/serve.toml
    swaks --server 127.0.0.1:2525 --from you@your-domain.example --to ID@test.localhost

FIRST START:
    netjes serve makes ./netjes-data (the SQLite store and master.key) and
    prints a one-time password for the user admin. Open http://127.0.0.1:8025/.

TEST INBOX:
    Point the MX of --test-domain at this host and listen on port 25
    (--smtp 0.0.0.0:25). Mail is taken only for open test addresses; all
    else gets 550, and nothing is ever relayed.

SIGNING DOMAINS:
    Private keys are stored sealed with AES-256-GCM under the master key
    (master_key_file, NETJES_MASTER_KEY or DATA_DIR/master.key; back it up).
    `netjes milter --key-store DATA_DIR` signs with the active domains.

API:
    POST /api/tests                 {\"id\", \"address\"}
    GET  /api/tests/ID              {\"status\": \"waiting\"|\"done\", \"report\"}
    POST /api/check {\"domain\"}      the JSON of `netjes check --json`
    POST /api/analyze (a message)   the JSON of `netjes analyze --json`
    GET|POST /api/domains           signing domains (login or API token:
                                    Authorization: Bearer nj_...)

SIGNALS:
    SIGTERM, SIGINT   stop (connections in progress finish)

EXIT CODES:
    0   stopped by a signal
    2   usage error, or a bad configuration (every error is listed)
    4   a port cannot be opened, or the store or master key cannot be read";

/// Run the web UI and JSON API with the SMTP test inbox (a self-hosted
/// mail-tester) and the store of signing domains, on an embedded SQLite
/// store that needs no set-up.
#[derive(clap::Args, Debug)]
#[command(after_long_help = SERVE_AFTER_HELP)]
pub struct ServeArgs {
    /// A TOML configuration file (see samples/serve.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the store lives [default: ./netjes-data].
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The web UI and API [default: 127.0.0.1:8025].
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// The SMTP test inbox [default: 127.0.0.1:2525].
    #[arg(long, value_name = "ADDR:PORT")]
    pub smtp: Option<String>,
    /// The domain of test addresses [default: test.localhost].
    #[arg(long = "test-domain", value_name = "NAME")]
    pub test_domain: Option<String>,
    /// The host name in the SMTP greeting [default: the system's].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Serve Prometheus metrics on HOST:PORT (/metrics).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// Keep the store in PostgreSQL (postgres://USER@HOST/DB, or libpq's
    /// "host=... dbname=..."), shared by several serve instances and the
    /// milters' keys; the same as [store] url.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

fn load(a: &ServeArgs) -> Result<Config, Vec<String>> {
    let mut raw: RawConfig = daemon::read_config(a.config.as_deref())?;
    if let Some(d) = &a.data_dir {
        raw.data_dir = d.clone();
    }
    if let Some(h) = &a.http {
        raw.http = h.clone();
    }
    if let Some(s) = &a.smtp {
        raw.smtp = s.clone();
    }
    if let Some(t) = &a.test_domain {
        raw.test_domain = t.clone();
    }
    if a.hostname.is_some() {
        raw.hostname = a.hostname.clone();
    }
    if a.metrics.is_some() {
        raw.metrics = a.metrics.clone();
    }
    if a.postgres.is_some() {
        raw.store.url = a.postgres.clone();
    }
    Config::validate(raw)
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(exit::Input(format!(
            "cannot listen on {addr} ({what}): {e}"
        )))
    })
}

pub async fn run_serve(a: ServeArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let cfg = load(&a).map_err(daemon::bad_config)?;
    // Uncached: serve keeps a cache of its own and asks afresh for every
    // check a user starts.
    let dns = g.live_resolver()?;
    let parts =
        netjes_serve::build(&cfg, dns).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    // Both ports first: a password shown by a start that then fails to
    // bind would be a password for a server that is not there.
    let http = bind(cfg.http, "http").await?;
    let smtp = bind(cfg.smtp, "smtp").await?;
    if let Some((user, password)) = netjes_serve::first_admin(&parts.store)
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?
    {
        // Shown once: only its hash is stored.
        eprintln!("First start: log in as {user} with the password {password}\n(shown only now; change it with `netjes user password {user}`)");
    }
    tracing::info!(http = %cfg.http, smtp = %cfg.smtp, test_domain = %cfg.test_domain, data_dir = %cfg.data_dir.display(), "netjes serve started: http://{}/", cfg.http);
    let (tx, rx) = tokio::sync::watch::channel(false);
    daemon::serve_metrics(cfg.metrics, parts.metrics.clone(), rx.clone()).await?;
    let retention = cfg.retention;
    let server = tokio::spawn(async move {
        if let Err(e) = netjes_serve::run(http, smtp, &parts, retention, rx).await {
            tracing::error!(error = %e, "the web server stopped");
        }
    });
    daemon::until_stopped(server, tx, || {
        Err(vec![
            "netjes serve does not reload its configuration; restart it".into(),
        ])
    })
    .await
}

/// Users of the web UI and their API tokens.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user. The password is read from standard input (one line),
    /// or made and printed when --generate is given.
    #[command(after_long_help = "EXAMPLES:
    echo 'a long passphrase here' | netjes user add alice --data-dir /var/lib/netjes
    netjes user add bob --generate")]
    Add {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Make a random password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Set a user's password (from standard input, one line) and end the
    /// user's sessions.
    #[command(after_long_help = "EXAMPLES:
    echo 'a new long passphrase' | netjes user password alice")]
    Password {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the users, their live sessions and their API tokens' labels.
    #[command(after_long_help = "EXAMPLES:
    netjes user list --data-dir /var/lib/netjes
    netjes user list --json")]
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user, with its sessions and API tokens (not the last one).
    #[command(after_long_help = "EXAMPLES:
    netjes user delete bob")]
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a user's API tokens: those with --label, or all of them.
    #[command(after_long_help = "EXAMPLES:
    netjes user revoke alice --label ci    # the tokens made with --label ci
    netjes user revoke alice               # all of alice's tokens")]
    Revoke {
        name: String,
        /// Only the tokens made with this label.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make an API token for a user (printed once; only its hash is kept).
    #[command(after_long_help = "EXAMPLES:
    netjes user token alice --label ci
    curl -H \"Authorization: Bearer nj_...\" http://127.0.0.1:8025/api/domains")]
    Token {
        name: String,
        /// What the token is for.
        #[arg(long, default_value = "api")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// netjes serve's data directory.
    #[arg(long = "data-dir", value_name = "DIR", default_value = "./netjes-data")]
    pub data_dir: PathBuf,
    /// The master key file, when not DIR/master.key or NETJES_MASTER_KEY.
    #[arg(long = "master-key-file", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The store is in this PostgreSQL (serve's [store] url), not in
    /// DIR's SQLite. The master key must then be given (--master-key-file
    /// or NETJES_MASTER_KEY): none is made up for a shared database.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// PostgreSQL's password, on the first line of FILE (mode 0600).
    #[arg(long = "postgres-password-file", value_name = "FILE", requires = "postgres")]
    pub postgres_password_file: Option<PathBuf>,
}

impl StoreArgs {
    pub(crate) fn open(&self) -> anyhow::Result<netjes_serve::store::Store> {
        // A first `report import` or `user add` makes the store, as serve does.
        netjes_net::private_dir(&self.data_dir).map_err(|e| {
            anyhow::anyhow!(exit::Input(format!("{}: {e}", self.data_dir.display())))
        })?;
        // A shared PostgreSQL has its master key already (serve's): a new
        // one made here would seal nothing anyone else can open.
        let master = netjes_serve::crypto::MasterKey::load(
            self.master_key_file.as_deref(),
            &self.data_dir,
            self.postgres.is_none(),
        )
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
        let store = match &self.postgres {
            None => netjes_serve::store::Store::open(&self.data_dir, master),
            Some(url) => {
                let raw = netjes_milter::config::RawStore { url: Some(url.clone()), password_file: self.postgres_password_file.clone(), ca_file: None };
                let mut errors = Vec::new();
                let pg = netjes_milter::config::validate_store(&raw, &mut errors).ok_or_else(|| anyhow::anyhow!(exit::Usage(errors.join("; "))))?;
                netjes_serve::store::open_postgres(pg).map(|c| netjes_serve::store::Store::with(c, master))
            }
        }
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
        store.check_master().map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
        Ok(store)
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().take(4096).read_to_string(&mut s)?;
    let p = s.lines().next().unwrap_or("").to_string();
    if p.is_empty() {
        anyhow::bail!(exit::Usage(
            "give the password on standard input (one line), or --generate".into()
        ));
    }
    Ok(p)
}

pub async fn run_user(c: UserCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    let bad = |e: netjes_serve::store::StoreError| anyhow::anyhow!(exit::Usage(e.to_string()));
    match c {
        UserCommand::Add {
            name,
            store,
            generate,
        } => {
            let s = store.open()?;
            let password = if generate {
                netjes_serve::crypto::password()
            } else {
                read_password()?
            };
            s.add_user(&name, &password).map_err(bad)?;
            if g.json {
                print_json(
                    &serde_json::json!({"user": name, "password": generate.then_some(&password)}),
                );
            } else if generate {
                println!("added {name} with the password {password}");
            } else {
                println!("added {name}");
            }
        }
        UserCommand::Password { name, store } => {
            let s = store.open()?;
            s.set_password(&name, &read_password()?).map_err(bad)?;
            if g.json {
                print_json(&serde_json::json!({"user": name, "password": "changed"}));
            } else {
                println!("changed the password of {name}; its sessions have ended");
            }
        }
        UserCommand::List { store } => {
            let users = store.open()?.users().map_err(bad)?;
            if g.json {
                print_json(&users);
            } else {
                for u in users {
                    println!(
                        "{}  sessions: {}  tokens: {}",
                        u.name,
                        u.sessions,
                        if u.tokens.is_empty() { "none".into() } else { u.tokens.join(", ") }
                    );
                }
            }
        }
        UserCommand::Delete { name, store } => {
            store.open()?.delete_user(&name).map_err(bad)?;
            if g.json {
                print_json(&serde_json::json!({"user": name, "deleted": true}));
            } else {
                println!("deleted {name}, with its sessions and API tokens");
            }
        }
        UserCommand::Revoke { name, label, store } => {
            let n = store
                .open()?
                .revoke_api_tokens(&name, label.as_deref())
                .map_err(bad)?;
            if g.json {
                print_json(&serde_json::json!({"user": name, "revoked": n}));
            } else {
                println!("revoked {n} API token(s) of {name}");
            }
        }
        UserCommand::Token { name, label, store } => {
            let s = store.open()?;
            let token = s.add_api_token(&name, &label).map_err(bad)?;
            if g.json {
                print_json(&serde_json::json!({"user": name, "label": label, "token": token}));
            } else {
                println!("{token}");
            }
        }
    }
    Ok(exit::OK)
}
