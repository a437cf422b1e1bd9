//! The `fthub` command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// fthub: the Hub/Spoke fine-tuning pipeline for Azure OpenAI.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the custom handler (what the Functions host starts; see host.json).
    Serve,
    /// Run the local Functions host stand-in: the handler, triggers, bus and storage.
    Dev(DevArgs),
    /// Run the Azure OpenAI emulator (Hub and Spoke accounts, data plane and ARM).
    Emulator(EmulatorArgs),
    /// Create an Ed25519 approver key: writes NAME.key (secret) and prints the public key
    /// for the topology.
    Keygen {
        /// Approver name.
        #[arg(long)]
        name: String,
        /// Directory for the key file.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Run the whole story locally: submit, validate, train, evaluate, promote with signed
    /// approvals, keep warm. Exits 0 only if every step happened.
    Demo {
        /// The function app directory (the repository root).
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// State directory (default: a new temporary directory).
        #[arg(long)]
        home: Option<PathBuf>,
        /// Seconds of emulated training.
        #[arg(long, default_value_t = 3)]
        training_seconds: u64,
        /// Inject faults into this share of Azure OpenAI requests on every account
        /// (429, 500 and timeouts in equal parts), e.g. 0.2.
        #[arg(long, default_value_t = 0.0)]
        faults: f64,
    },
    /// Upload a submission directory (data files, then manifest.json) to local storage.
    Submit {
        /// Directory with manifest.json and the data files it names.
        dir: PathBuf,
        /// Project.
        #[arg(long)]
        project: String,
        /// Submission name (default: the directory name).
        #[arg(long)]
        submission: Option<String>,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
        /// Submitter recorded in the run (default: $USER).
        #[arg(long = "as")]
        submitter: Option<String>,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Sign an approval with your key and publish it on the approvals queue.
    Approve {
        /// Run id.
        run: String,
        /// Environment: test or prod.
        #[arg(long)]
        env: String,
        /// Your approver name (as in the topology).
        #[arg(long)]
        approver: String,
        /// Your key file (from `fthub keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Refuse promotion instead.
        #[arg(long, conflicts_with = "rollback")]
        reject: bool,
        /// Roll the environment back to its previous version.
        #[arg(long)]
        rollback: bool,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
        /// Service Bus: a namespace (`sb-fthub` or its host name; Entra ID) or a connection
        /// string; default the local bus of `fthub dev`.
        #[arg(long, env = "FTHUB_SERVICE_BUS", hide_env_values = true)]
        bus: Option<String>,
    },
    /// Show runs, one run, or the environments.
    Status {
        /// Run id, or `projects`, `projects/NAME`, `environments`, `endpoints`, `capacity`,
        /// `audit`.
        what: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Base URL of the host (fthub dev or the function app).
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        url: String,
        /// Function key for a deployed app (the Status function's auth level is `function`).
        #[arg(long, env = "FTHUB_FUNCTION_KEY", hide_env_values = true)]
        code: Option<String>,
        /// Read straight from storage instead of the app (same views as the API).
        #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
        storage: Option<String>,
    },
    /// Print a shell completion script (`fthub completions bash > /etc/bash_completion.d/fthub`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Wait until a run reaches a stage (training, evaluated, dev, test, prod), showing its
    /// progress: the job, then regions verified per environment. Exit 1 if it fails.
    Wait {
        /// Run id.
        run: String,
        /// Stage to wait for.
        #[arg(long = "for", default_value = "prod")]
        target: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Base URL of the host (fthub dev or the function app).
        #[arg(long, default_value = "http://127.0.0.1:7071")]
        url: String,
        /// Function key for a deployed app.
        #[arg(long, env = "FTHUB_FUNCTION_KEY", hide_env_values = true)]
        code: Option<String>,
    },
    /// Inspect the pipeline's blob storage (local, Azurite or Azure).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Operate on runs: list them, retry a stalled or failed step, cancel one.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Messages Service Bus gave up on (local bus of `fthub dev`): list, replay.
    #[command(subcommand)]
    Deadletters(DeadlettersCommand),
    /// Validate fine-tuning datasets (exit 0 accepted, 1 rejected, 2 usage or I/O error).
    Validate(ValidateArgs),
}

#[derive(Debug, clap::Args)]
struct AppArg {
    /// Base URL of the host (fthub dev or the function app).
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    url: String,
    /// Function key for a deployed app.
    #[arg(long, env = "FTHUB_FUNCTION_KEY", hide_env_values = true)]
    code: Option<String>,
}

#[derive(Debug, clap::Args)]
struct WhoWhy {
    /// Who acts (recorded on the run).
    #[arg(long, env = "USER", default_value = "operator")]
    actor: String,
    /// Why (recorded on the run).
    #[arg(long, default_value = "no reason given")]
    reason: String,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
        /// Only runs at this stage (`training`, `evaluating`, `dev`, …).
        #[arg(long)]
        stage: Option<String>,
        /// Only runs created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        app: AppArg,
        /// Read straight from storage instead of the app.
        #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
        storage: Option<String>,
    },
    /// Re-drive a stalled step, or start a failed training or evaluation again.
    Retry {
        /// Run id.
        run: String,
        #[command(flatten)]
        who: WhoWhy,
        #[command(flatten)]
        app: AppArg,
    },
    /// Cancel a run: its Hub job, its evaluation deployment; recorded with who and why.
    Cancel {
        /// Run id.
        run: String,
        #[command(flatten)]
        who: WhoWhy,
        #[command(flatten)]
        app: AppArg,
    },
}

#[derive(Debug, Subcommand)]
enum DeadlettersCommand {
    /// Dead-lettered pipeline messages, with the host's reason, the last error and replays:
    /// the dead-letter book in storage, and what still sits in a local subqueue.
    List {
        /// Only this queue's (`training-completed`, `evaluation-completed`, `approvals`).
        #[arg(long)]
        queue: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Send dead letters back to their queue as new messages: one by its sequence number
    /// (or book key), or every one not replayed yet.
    Replay {
        /// The message's sequence number or book key.
        key: Option<String>,
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// Who asks (recorded with the replay; default $USER).
        #[arg(long = "as")]
        actor: Option<String>,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
        #[command(flatten)]
        storage: StorageArg,
        /// Service Bus: a namespace (Entra ID) or a connection string; default the local bus.
        #[arg(long, env = "FTHUB_SERVICE_BUS", hide_env_values = true)]
        bus: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct StorageArg {
    /// Blob storage: a connection string (Azurite: `UseDevelopmentStorage=true`), a blob
    /// service URL or an account name (Entra ID: `az login`); default the local store.
    #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
    storage: Option<String>,
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Check that the store answers and this identity may read and write each container.
    Check {
        #[command(flatten)]
        storage: StorageArg,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
    },
    /// List blobs: `CONTAINER[/PREFIX]`.
    Ls {
        /// Container and optional prefix.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArg,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
    },
    /// Stream a blob to a file or stdout (bounded memory); prints its size and SHA-256 to
    /// stderr.
    Get {
        /// `CONTAINER/NAME`.
        path: String,
        /// Output file (default stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Base64 AES-256 key file, for a blob stored with a customer-provided key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArg,
        /// Local state directory.
        #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
        home: PathBuf,
    },
}

#[cfg(feature = "emulator")]
async fn run_emulator(a: EmulatorArgs) -> anyhow::Result<()> {
    let accounts = match a.accounts {
        Some(p) => {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => fthub::local::emulator::builtin_accounts(),
    };
    let emu = fthub::local::emulator::Emulator::new(accounts, Default::default());
    fthub::local::emulator::serve(a.port, emu)
        .await
        .context("running the emulator")
}

#[cfg(not(feature = "emulator"))]
async fn run_emulator(_: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this fthub was built without the Azure OpenAI emulator (cargo feature `emulator`)"
    )
}

#[derive(Debug, clap::Args)]
struct EmulatorArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 7072)]
    port: u16,
    /// JSON file with the accounts (`[{name, region, subscription, resource_group, tenant}]`);
    /// default: the built-in local topology.
    #[arg(long)]
    accounts: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// JSONL files; several are validated as one submission (train, validation, eval).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Base model (decides the encoding and the context length).
    #[arg(long, default_value = fthub::domain::validation::tokens::DEFAULT_MODEL)]
    model: String,
    /// Training method.
    #[arg(long, value_enum, default_value_t = MethodArg::Supervised)]
    method: MethodArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = fthub::commands::validate::Format::Text)]
    format: fthub::commands::validate::Format,
    /// Write validation.json and validation.md into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Policy file (JSON): compliance actions, BOM, limits.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Epochs, as the manifest's n_epochs (default: the cookbook's rule).
    #[arg(long)]
    epochs: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Supervised,
    Dpo,
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// The function app directory (host.json, functions/*/function.json).
    #[arg(long, default_value = ".")]
    app: PathBuf,
    /// Local state directory (storage, bus, host bookkeeping).
    #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
    home: PathBuf,
    /// Port for HTTP triggers (`http://127.0.0.1:PORT/api/...`).
    #[arg(long, default_value_t = 7071)]
    port: u16,
    /// Service Bus lock duration in seconds (the queue's `LockDuration`).
    #[arg(long, default_value_t = 60)]
    lock_duration: u64,
    /// How often watched containers are scanned for new blobs, in milliseconds.
    #[arg(long, default_value_t = 500)]
    scan_interval_ms: u64,
    /// Port of the built-in Azure OpenAI emulator (0 picks a free one).
    #[arg(long, default_value_t = 7072)]
    emulator_port: u16,
    /// Use an emulator (or endpoint) already running at this URL instead of starting one,
    /// so it outlives restarts of the host (`fthub emulator` in another terminal).
    #[arg(long)]
    emulator_url: Option<String>,
    /// Blob storage instead of the local directory: a connection string (Azurite:
    /// `UseDevelopmentStorage=true`), a blob service URL or an account name (Entra ID).
    #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
    storage: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `validate` writes its report to stdout; only the long-running commands log there.
    if matches!(
        cli.command,
        Command::Serve | Command::Dev(_) | Command::Emulator(_)
    ) {
        fthub::telemetry::init();
    }
    match cli.command {
        Command::Serve => {
            let settings = fthub::app::Settings::from_env().context("reading settings")?;
            fthub::server::serve(settings)
                .await
                .context("serving the handler")
        }
        Command::Validate(a) => {
            let code = fthub::commands::validate::run(fthub::commands::validate::Args {
                files: a.files,
                model: a.model,
                method: match a.method {
                    MethodArg::Supervised => fthub::domain::validation::Method::Supervised,
                    MethodArg::Dpo => fthub::domain::validation::Method::Dpo,
                },
                format: a.format,
                report: a.report,
                policy: a.policy,
                epochs: a.epochs,
                threads: a.threads,
            });
            std::process::exit(code)
        }
        Command::Demo {
            app,
            home,
            training_seconds,
            faults,
        } => {
            match fthub::commands::demo::run(fthub::commands::demo::DemoOptions {
                app,
                home,
                training_seconds,
                faults,
            })
            .await
            {
                Ok(()) => Ok(()),
                Err(step) => {
                    eprintln!("\nfthub demo FAILED: {step}");
                    std::process::exit(1)
                }
            }
        }
        Command::Submit {
            dir,
            project,
            submission,
            home,
            submitter,
            storage,
        } => {
            let submission = submission
                .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
                .context("name the submission with --submission")?;
            let who = submitter
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let store = open_store(storage.storage.as_deref(), &home)?;
            let written =
                fthub::commands::ops::submit(store.as_ref(), &dir, &project, &submission, &who)
                    .await?;
            for w in written {
                println!("uploaded datasets/{w}");
            }
            Ok(())
        }
        Command::Approve {
            run,
            env,
            approver,
            key,
            reason,
            reject,
            rollback,
            home,
            bus,
        } => {
            let decision = if reject {
                fthub::domain::approval::Decision::Reject
            } else if rollback {
                fthub::domain::approval::Decision::Rollback
            } else {
                fthub::domain::approval::Decision::Approve
            };
            let publisher = fthub::commands::ops::Publisher::from_setting(bus.as_deref(), &home)?;
            let a = fthub::commands::ops::approve(
                &publisher, &run, &env, decision, &approver, &key, &reason,
            )
            .await?;
            println!(
                "published {:?} of {} for {} (nonce {})",
                a.decision, a.run_id, a.environment, a.nonce
            );
            Ok(())
        }
        Command::Status {
            what,
            json,
            url,
            code,
            storage,
        } => {
            let path = match what.as_deref() {
                None => "runs".to_owned(),
                Some(w @ ("environments" | "endpoints" | "audit" | "projects" | "capacity")) => {
                    w.to_owned()
                }
                Some(p) if p.starts_with("projects/") => p.to_owned(),
                Some(id) => format!("runs/{id}"),
            };
            let v = match storage {
                Some(s) => {
                    let store = open_store(Some(&s), std::path::Path::new("."))?;
                    fthub::services::status::view(store.as_ref(), None, &path, &Default::default())
                        .await
                        .context("reading status from storage")?
                        .1
                }
                None => fthub::commands::ops::status_with_key(&url, &path, code.as_deref()).await?,
            };
            use fthub::commands::tables;
            match (json, what.as_deref()) {
                (false, None) => print!("{}", fthub::commands::ops::runs_table(&v)),
                (false, Some("projects")) => print!("{}", tables::projects(&v)),
                (false, Some("environments")) => print!("{}", tables::environments(&v)),
                (false, Some("capacity")) => print!("{}", tables::capacity(&v)),
                _ => println!("{}", serde_json::to_string_pretty(&v)?),
            }
            Ok(())
        }
        Command::Storage(cmd) => fthub::commands::storage::run(match cmd {
            StorageCommand::Check { storage, home } => fthub::commands::storage::Action::Check {
                store: open_store(storage.storage.as_deref(), &home)?,
            },
            StorageCommand::Ls {
                path,
                json,
                storage,
                home,
            } => fthub::commands::storage::Action::List {
                store: open_store(storage.storage.as_deref(), &home)?,
                path,
                json,
            },
            StorageCommand::Get {
                path,
                output,
                key_file,
                storage,
                home,
            } => fthub::commands::storage::Action::Get {
                store: open_store(storage.storage.as_deref(), &home)?,
                path,
                output,
                key_file,
            },
        })
        .await
        .map_err(anyhow::Error::from),
        Command::Runs(cmd) => runs_command(cmd).await,
        Command::Deadletters(cmd) => {
            use fthub::commands::runs;
            let (out, listing) = match cmd {
                DeadlettersCommand::List {
                    queue,
                    json,
                    home,
                    storage,
                } => {
                    let store = open_store(storage.storage.as_deref(), &home)?;
                    // The local bus only in local mode: against Azure the book is the record.
                    let bus = storage
                        .storage
                        .is_none()
                        .then(|| fthub::adapters::local::bus::LocalBus::new(home.join("bus")));
                    let list = runs::list(store.as_ref(), bus.as_ref(), queue.as_deref()).await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&list)?);
                        return Ok(());
                    }
                    (list, true)
                }
                DeadlettersCommand::Replay {
                    key,
                    queue,
                    actor,
                    home,
                    storage,
                    bus,
                } => {
                    let store = open_store(storage.storage.as_deref(), &home)?;
                    let publisher =
                        fthub::commands::ops::Publisher::from_setting(bus.as_deref(), &home)?;
                    let local = match &publisher {
                        fthub::commands::ops::Publisher::Local(b) => Some(b),
                        fthub::commands::ops::Publisher::Azure(_) => None,
                    };
                    let by = actor
                        .or_else(|| std::env::var("USER").ok())
                        .unwrap_or_else(|| "operator".into());
                    let list = runs::replay(
                        store.as_ref(),
                        &publisher,
                        local,
                        queue.as_deref(),
                        key.as_deref(),
                        &by,
                    )
                    .await?;
                    (list, false)
                }
            };
            if out.is_empty() {
                println!(
                    "{}",
                    if listing {
                        "no dead letters"
                    } else {
                        "nothing to replay: every dead letter was replayed already (name one to replay it again)"
                    }
                );
            }
            for d in out {
                let replays = d["replays"].as_array().map_or(0, Vec::len);
                println!(
                    "{} {} run {} — {}: {}{}",
                    d["queue"].as_str().unwrap_or(""),
                    d["sequence"].as_i64().map_or_else(
                        || d["key"].as_str().unwrap_or("").to_owned(),
                        |n| format!("#{n}")
                    ),
                    d["run_id"].as_str().unwrap_or("?"),
                    d["reason"].as_str().unwrap_or("?"),
                    d["description"].as_str().unwrap_or(""),
                    if let Some(n) = d.get("replayed_as") {
                        format!(" → replayed as #{n}")
                    } else if d["replayed"] == true {
                        " → replayed".to_owned()
                    } else if replays > 0 {
                        format!(" (replayed {replays}×)")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(())
        }
        Command::Wait {
            run,
            target,
            timeout,
            url,
            code,
        } => {
            let v = fthub::commands::ops::wait(
                &url,
                code.as_deref(),
                &run,
                &target,
                std::time::Duration::from_secs(timeout),
            )
            .await?;
            println!("{}", fthub::commands::ops::progress_line(&v["run"]));
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "fthub", &mut std::io::stdout());
            Ok(())
        }
        Command::Keygen { name, out } => {
            let (secret, public) = fthub::domain::approval::generate_key()
                .map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let path = out.join(format!("{name}.key"));
            write_secret(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
            println!("{{\"name\": \"{name}\", \"public_key\": \"{public}\"}}");
            eprintln!(
                "Secret key written to {} — keep it private; add the line above to the approvers of an environment.",
                path.display()
            );
            Ok(())
        }
        Command::Emulator(a) => run_emulator(a).await,
        Command::Dev(a) => {
            let opts = fthub::local::DevOptions {
                app: a.app,
                home: a.home,
                http_port: a.port,
                lock_duration: std::time::Duration::from_secs(a.lock_duration.max(1)),
                scan_interval: std::time::Duration::from_millis(a.scan_interval_ms.max(10)),
                emulator_port: a.emulator_url.is_none().then_some(a.emulator_port),
                emulator_url: a.emulator_url,
                storage: a.storage,
            };
            fthub::local::run(opts)
                .await
                .context("running the local host")
        }
    }
}

async fn runs_command(cmd: RunsCommand) -> anyhow::Result<()> {
    use fthub::commands::runs;
    let (app, run, action, who) = match cmd {
        RunsCommand::List {
            project,
            stage,
            since,
            limit,
            json,
            app,
            storage,
        } => {
            let query: std::collections::BTreeMap<String, String> = [
                ("project", project),
                ("stage", stage),
                ("since", since),
                ("limit", Some(limit.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            let v = match storage {
                Some(s) => {
                    let store = open_store(Some(&s), std::path::Path::new("."))?;
                    fthub::services::status::view(store.as_ref(), None, "runs", &query)
                        .await
                        .context("reading runs from storage")?
                        .1
                }
                None => {
                    let qs = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&query)
                        .finish();
                    fthub::commands::ops::status_with_key(
                        &app.url,
                        &format!("runs?{qs}"),
                        app.code.as_deref(),
                    )
                    .await?
                }
            };
            if let Some(e) = v["detail"].as_str().filter(|_| v["error"].is_string()) {
                anyhow::bail!("{e}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", fthub::commands::ops::runs_table(&v));
                if let Some(c) = v["continuation"].as_str() {
                    println!("(more: the API's continuation token is {c})");
                }
            }
            return Ok(());
        }
        RunsCommand::Retry { run, who, app } => (app, run, "retry", who),
        RunsCommand::Cancel { run, who, app } => (app, run, "cancel", who),
    };
    let v = runs::act(
        &app.url,
        app.code.as_deref(),
        &run,
        action,
        &who.actor,
        &who.reason,
    )
    .await?;
    match action {
        "retry" => println!(
            "{run}: {} scheduled; the reconciler acts within a minute (follow with `fthub wait {run}`)",
            v["scheduled"].as_str().unwrap_or("the step")
        ),
        _ => println!("{run}: cancelled by {}", who.actor),
    }
    Ok(())
}

/// The store a CLI command works on: `--storage` or the local store under `home`.
fn open_store(
    storage: Option<&str>,
    home: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn fthub::ports::BlobStore>> {
    let spec = fthub::adapters::StoreSpec::parse(storage.unwrap_or("local"), home)?;
    let version = std::env::var("FTHUB_STORAGE_API_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fthub::adapters::azure::storage::DEFAULT_API_VERSION.to_owned());
    Ok(spec.open(
        &version,
        fthub::adapters::azure::credential::Entra::from_env,
    )?)
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}
