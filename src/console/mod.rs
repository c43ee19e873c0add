//! The NOC console: a ratatui terminal UI over the lighting server's streams. One loop owns
//! the state: terminal input first, then network events (drained and coalesced), then a
//! one-second tick; `update` changes state and returns commands; views draw from `&State`,
//! only when something changed and at most 30 times a second.

mod effects;
pub mod filter;
pub mod keymap;
pub mod net;
pub mod state;
pub mod update;
pub mod view;
pub mod views;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use color_eyre::eyre::{Result, eyre};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use keymap::{Key, Keymap};
use state::State;
use update::{Command, Event, NetEvent, update};
use view::Theme;

/// At most this many frames a second.
const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// Network events folded in before the next frame, so a burst is drawn once.
const DRAIN_PER_FRAME: usize = 4_096;

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Server to follow; several separated by commas (one estate on one database): the
    /// console moves to another when one stops serving.
    #[arg(long, env = "SINGULARITY_SERVER", default_value = crate::link::DEFAULT_SERVER)]
    pub server: String,
    /// Ring the terminal bell and flash the window title on each new CRITICAL fault
    /// (`:set bell` and `:set nobell` in the console).
    #[arg(long, env = "SINGULARITY_BELL")]
    pub bell: bool,
    /// The operator's time zone for clocks and Daily Faults (`:tz` changes it).
    #[arg(long, env = "SINGULARITY_TZ", default_value = "Europe/London")]
    pub tz: String,
    /// default, 16 (the ANSI colours) or mono; NO_COLOR selects mono.
    #[arg(long, env = "SINGULARITY_THEME", default_value = "default")]
    pub theme: String,
    /// Keymap overriding assets/keymap.toml [default: keymap.toml in your config directory].
    #[arg(long, env = "SINGULARITY_KEYMAP")]
    pub keymap: Option<PathBuf>,
    /// Where the console logs [default: console.log in your data directory].
    #[arg(long, env = "SINGULARITY_CONSOLE_LOG")]
    pub log_file: Option<PathBuf>,
    #[command(flatten)]
    pub sign_in: crate::sign_in::SignInArgs,
}

/// What the console needs, checked before the terminal is taken over so that a mistake is a
/// plain error message.
pub struct Setup {
    pub state: State,
    pub keymap: Keymap,
    pub theme: Theme,
}

impl ConsoleArgs {
    pub fn setup(&self) -> Result<Setup> {
        let tz: chrono_tz::Tz = self.tz.parse().map_err(|_| {
            eyre!(
                "--tz {:?} is not an IANA time zone (e.g. Europe/London)",
                self.tz
            )
        })?;
        let theme = if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Theme::mono()
        } else {
            Theme::by_name(&self.theme).map_err(|e| eyre!("--theme {e}"))?
        };
        let keymap = match &self.keymap {
            Some(path) => Keymap::load_file(path)?,
            None => match default_keymap_path() {
                Some(path) => Keymap::load_file(&path)?,
                None => Keymap::load(None)?,
            },
        };
        let mut state = State::new(self.server.clone(), String::new(), tz, Utc::now());
        state.bell = self.bell;
        Ok(Setup {
            state,
            keymap,
            theme,
        })
    }
}

pub fn default_keymap_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "singularity")
        .map(|d| d.config_dir().join("keymap.toml"))
}

/// Saved board views (`:view save NAME`).
pub fn default_views_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "singularity").map(|d| d.config_dir().join("views.toml"))
}

pub fn default_log_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "singularity").map(|d| d.data_dir().join("console.log"))
}

/// `singularity console`: the console against a running server, signed in before the
/// terminal is taken over (so a password prompt or a refusal is plain text).
pub async fn run(args: ConsoleArgs) -> Result<()> {
    let mut setup = args.setup()?;
    let log = args.log_file.clone().or_else(default_log_path);
    crate::logging::log_to_file(log.as_deref(), "info")?;
    let ca = args.sign_in.ca_pem().map_err(|e| eyre!(e))?;
    let channel = net::channel(&args.server, ca.as_deref()).map_err(|e| eyre!(e))?;
    let (link, session) = args
        .sign_in
        .link(channel.clone())
        .await
        .map_err(|e| eyre!(e))?;
    let token = session
        .as_ref()
        .map(|s| s.token.clone())
        .or_else(|| args.sign_in.token.clone())
        .unwrap_or_default();
    let sign_in = net::SignIn {
        slot: crate::link::TokenSlot::new(Some(&token)).map_err(|e| eyre!("{e}"))?,
        renewed: Default::default(),
    };
    let session = match session {
        Some(session) => session,
        None => crate::proto::auth_client::AuthClient::new(link.clone())
            .who_am_i(crate::proto::WhoAmIRequest {})
            .await
            .map_err(|e| eyre!("the token was not accepted: {}", e.message()))?
            .into_inner(),
    };
    signed_in_as(&mut setup.state, &session);
    attach(channel, sign_in, setup).await
}

/// Shows who is signed in, and with which role, on the status bar.
pub fn signed_in_as(state: &mut State, session: &crate::proto::LoginResponse) {
    if let Some(user) = &session.user {
        state.user = user.username.clone();
        state.role = crate::wire::role_field("role", user.role).ok().flatten();
    }
}

/// Takes over the terminal and runs the console until the operator quits or the session
/// ends (SIGTERM, SIGHUP); the terminal is restored on every way out, panics included.
/// Every call carries the token in `sign_in`, which signing in again from the console renews.
pub async fn attach(
    channel: tonic::transport::Channel,
    sign_in: net::SignIn,
    setup: Setup,
) -> Result<()> {
    let (mut commands, net_rx) = net::start(channel, sign_in, setup.state.user.clone());
    commands.views_path = default_views_path();
    let mut terminal = ratatui::try_init()?;
    let input = crossterm::event::EventStream::new().filter_map(|event| async move {
        match event {
            Ok(crossterm::event::Event::Key(key)) => Key::from_event(&key).map(Event::Key),
            Ok(crossterm::event::Event::Resize(_, height)) => {
                Some(Event::Resize(view::board_rows(height)))
            }
            _ => None,
        }
    });
    let result = run_loop(
        &mut terminal,
        input,
        net_rx,
        Some(commands),
        setup,
        hang_up(),
        FrameWatcher::terminal(),
    )
    .await;
    ratatui::restore();
    result.map(|_| ())
}

/// Resolves on SIGTERM or SIGHUP (the SSH session went away).
async fn hang_up() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut terminate), Ok(mut hangup)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = hangup.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// What happens around each frame: synchronized output on a real terminal (so an SSH client
/// never shows half a frame), or a copy of the frame's text for tests and benchmarks.
pub struct FrameWatcher {
    sync: bool,
    on_frame: Option<Box<dyn FnMut(String) + Send>>,
}

impl FrameWatcher {
    pub fn terminal() -> Self {
        Self {
            sync: true,
            on_frame: None,
        }
    }

    pub fn new(on_frame: impl FnMut(String) + Send + 'static) -> Self {
        Self {
            sync: false,
            on_frame: Some(Box::new(on_frame)),
        }
    }

    /// Neither: frames are drawn and nothing else happens.
    pub fn quiet() -> Self {
        Self {
            sync: false,
            on_frame: None,
        }
    }
}

/// A frame's text, line by line.
pub fn buffer_text(buffer: &ratatui::buffer::Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in area.top()..area.bottom() {
        let line: String = (area.left()..area.right())
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The loop. `commands` runs what `update` asks for (None: dropped, for benchmarks).
pub async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    input: impl Stream<Item = Event>,
    mut net: mpsc::Receiver<NetEvent>,
    mut commands: Option<net::Commands>,
    setup: Setup,
    stop: impl std::future::Future<Output = ()>,
    mut frames: FrameWatcher,
) -> Result<State>
where
    B::Error: Send + Sync + 'static,
{
    let Setup {
        mut state,
        keymap,
        theme,
    } = setup;
    let mut input = std::pin::pin!(input);
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let today = state.now.with_timezone(&state.tz).date_naive();
    let mut pending = vec![Command::Daily {
        date: today,
        tz: state.tz.name().to_owned(),
    }];
    let mut dirty = true;
    let mut last_frame = Instant::now() - FRAME_INTERVAL;
    let mut last_daily = Instant::now();
    state.page_rows = view::board_rows(terminal.size().map_err(|e| eyre!("{e}"))?.height);
    if frames.sync {
        state.effects.push(state::Effect::Title(state.title()));
    }
    loop {
        for command in pending.drain(..) {
            if let Some(runner) = &mut commands {
                runner.run(command);
            }
        }
        // Only a real terminal gets bells and escape sequences.
        let due = std::mem::take(&mut state.effects);
        if frames.sync && !due.is_empty() {
            effects::perform(&mut std::io::stdout(), due)?;
        }
        if state.quit {
            return Ok(state);
        }
        if dirty && last_frame.elapsed() >= FRAME_INTERVAL {
            state.refresh_view();
            draw(terminal, &state, &keymap, &theme, &mut frames)?;
            dirty = false;
            last_frame = Instant::now();
        }
        let frame_due = tokio::time::sleep(if dirty {
            FRAME_INTERVAL.saturating_sub(last_frame.elapsed())
        } else {
            Duration::from_secs(3600)
        });
        tokio::select! {
            biased;
            event = input.next() => {
                let Some(event) = event else { return Ok(state) };
                pending.extend(update(&mut state, &keymap, event));
                dirty = true;
            }
            event = net.recv() => {
                let Some(event) = event else {
                    // No network tasks left (a benchmark's feed ended): keep serving input.
                    net = mpsc::channel(1).1;
                    continue;
                };
                let mut next = Some(event);
                let mut drained = 0;
                while let Some(event) = next.take() {
                    if let (NetEvent::Zones(zones), Some(runner)) = (&event, &mut commands) {
                        runner.set_zones(zones);
                    }
                    pending.extend(update(&mut state, &keymap, Event::Net(event)));
                    drained += 1;
                    if drained < DRAIN_PER_FRAME {
                        next = net.try_recv().ok();
                    }
                }
                dirty = true;
            }
            _ = tick.tick() => {
                pending.extend(update(&mut state, &keymap, Event::Tick(Utc::now())));
                // Daily Faults again every minute, or sooner when faults have been arriving.
                let due = if state.arrivals.is_empty() { 60 } else { 10 };
                if last_daily.elapsed() >= Duration::from_secs(due) {
                    last_daily = Instant::now();
                    let day = state
                        .daily_date
                        .unwrap_or_else(|| state.now.with_timezone(&state.tz).date_naive());
                    pending.push(Command::Daily {
                        date: day,
                        tz: state.tz.name().to_owned(),
                    });
                }
                dirty = true;
            }
            () = frame_due => {}
            () = &mut stop => return Ok(state),
        }
    }
}

fn draw<B: Backend>(
    terminal: &mut Terminal<B>,
    state: &State,
    keymap: &Keymap,
    theme: &Theme,
    frames: &mut FrameWatcher,
) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
    if frames.sync {
        crossterm::execute!(std::io::stdout(), BeginSynchronizedUpdate)?;
    }
    let frame = terminal
        .draw(|frame| view::draw(frame, state, keymap, theme))
        .map_err(|e| eyre!("cannot draw: {e}"))?;
    if let Some(on_frame) = &mut frames.on_frame {
        on_frame(buffer_text(frame.buffer));
    }
    if frames.sync {
        crossterm::execute!(std::io::stdout(), EndSynchronizedUpdate)?;
    }
    Ok(())
}
