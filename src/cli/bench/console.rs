//! `singularity bench console`: the console measured in-process, without a server: the cost of
//! a Faults frame with many faults in state, keeping up with a flood of fault events while
//! keys still get through, CPU when the feed is quiet, and bytes written to the terminal.

use crate::cli::output::outln;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use color_eyre::eyre::{Result, eyre};
use ratatui::Terminal;
use ratatui::backend::{CrosstermBackend, TestBackend};
use tokio::sync::mpsc;

use super::measure::percentile;
use crate::console::keymap::{Key, Keymap};
use crate::console::state::{Link, State, StreamName};
use crate::console::update::{Event, NetEvent, update};
use crate::console::view::{self, Theme};
use crate::console::{FrameWatcher, Setup, run_loop};
use crate::proto;

fn fault(id: i64) -> proto::Fault {
    proto::Fault {
        id,
        r#type: (id % 18 + 1) as i32,
        severity: (id % 4 + 1) as i32,
        state: (id % 3 + 1) as i32,
        lamp_id: id,
        zone_id: id % 16 + 1,
        count: (id % 50) as u32,
        version: 1,
        first_seen: Some(prost_types::Timestamp {
            seconds: Utc::now().timestamp() - id % 86_400,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn state_with(faults: i64) -> (State, Keymap) {
    let keymap = Keymap::load(None).unwrap_or_else(|_| unreachable!());
    let mut state = State::new(
        "bench".into(),
        "bench".into(),
        chrono_tz::Europe::London,
        Utc::now(),
    );
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Link(StreamName::Faults, Link::Live)),
    );
    update(
        &mut state,
        &keymap,
        Event::Net(NetEvent::Snapshot {
            faults: (1..=faults).map(fault).collect(),
            seq: faults as u64,
        }),
    );
    (state, keymap)
}

/// Frame cost with `faults` in state, at 160x48.
pub fn render(faults: i64, frames: usize) -> Result<()> {
    let (mut state, keymap) = state_with(faults);
    let theme = Theme::colour();
    let started = Instant::now();
    state.refresh_view();
    let ordering = started.elapsed();
    let mut terminal = Terminal::new(TestBackend::new(160, 48))?;
    let mut timings = Vec::with_capacity(frames);
    for i in 0..frames {
        // Move the cursor, so each frame differs.
        update(
            &mut state,
            &keymap,
            Event::Key(Key::parse(if i % 2 == 0 { "j" } else { "k" }).map_err(|e| eyre!(e))?),
        );
        let started = Instant::now();
        terminal.draw(|frame| view::draw(frame, &state, &keymap, &theme))?;
        timings.push(started.elapsed());
    }
    timings.sort_unstable();
    outln!(
        "Faults frame, 160x48, {faults} faults in state: p50 {:.3} ms, p99 {:.3} ms ({frames} frames); ordering the board once: {:.1} ms",
        percentile(&timings, 0.5),
        percentile(&timings, 0.99),
        ordering.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// The loop fed `rate` fault events a second for `seconds` on a board of `faults`, with a key
/// every 100 ms: the queue of unread events, and how long a key takes to show on screen.
pub async fn flood(faults: i64, rate: u64, seconds: u64) -> Result<()> {
    let (state, keymap) = state_with(faults);
    let (events, net_rx) = mpsc::channel(8_192);
    let (keys, key_rx) = mpsc::channel(16);
    let pressed: Arc<Mutex<Option<(Instant, bool)>>> = Arc::new(Mutex::new(None));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let frames = Arc::new(Mutex::new(0usize));
    let watcher = {
        let (pressed, latencies, frames) = (pressed.clone(), latencies.clone(), frames.clone());
        FrameWatcher::new(move |text: String| {
            if let Ok(mut n) = frames.lock() {
                *n += 1;
            }
            let Ok(mut pressed) = pressed.lock() else {
                return;
            };
            if let Some((at, descending)) = *pressed
                && text.contains(" desc ") == descending
            {
                if let Ok(mut l) = latencies.lock() {
                    l.push(at.elapsed());
                }
                *pressed = None;
            }
        })
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let console = tokio::spawn(async move {
        let mut terminal = Terminal::new(TestBackend::new(160, 48))?;
        let setup = Setup {
            state,
            keymap,
            theme: Theme::colour(),
        };
        let input = tokio_stream::wrappers::ReceiverStream::new(key_rx);
        run_loop(
            &mut terminal,
            input,
            net_rx,
            None,
            setup,
            async move {
                let _ = stopped.await;
            },
            watcher,
        )
        .await
    });
    let started = Instant::now();
    let mut sent = 0u64;
    let mut max_queued = 0usize;
    let mut descending = true;
    let mut next_key = Instant::now();
    let mut seq = faults as u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            seq += 1;
            let id = (seq as i64 * 7_919) % (faults + 10_000) + 1;
            let mut changed = fault(id);
            changed.version = seq as i64;
            events
                .send(NetEvent::Fault(proto::FaultEvent {
                    seq,
                    fault: Some(changed),
                    ..Default::default()
                }))
                .await
                .map_err(|_| eyre!("the console stopped"))?;
            sent += 1;
        }
        max_queued = max_queued.max(8_192 - events.capacity());
        if Instant::now() >= next_key {
            let waiting = pressed.lock().map(|p| p.is_some()).unwrap_or(true);
            if !waiting {
                descending = !descending;
                if let Ok(mut p) = pressed.lock() {
                    *p = Some((Instant::now(), descending));
                }
                keys.send(Event::Key(Key::parse("S").map_err(|e| eyre!(e))?))
                    .await
                    .map_err(|_| eyre!("the console stopped"))?;
            }
            next_key = Instant::now() + Duration::from_millis(100);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop.send(());
    console.await??;
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    let frames = frames.lock().map(|n| *n).unwrap_or(0);
    outln!(
        "{sent} fault events in {seconds} s ({rate}/s) on {faults} faults: at most {max_queued} queued; {frames} frames ({:.0}/s); key to screen p50 {:.1} ms, p99 {:.1} ms ({} keys)",
        frames as f64 / seconds as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    Ok(())
}

/// Counts the bytes a real terminal backend writes.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<usize>>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut n) = self.0.lock() {
            *n += buf.len();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes to the terminal per fault event and per idle second (the clock), and CPU while idle.
pub async fn bytes_and_idle(idle_seconds: u64) -> Result<()> {
    let (mut state, keymap) = state_with(200);
    let theme = Theme::colour();
    let counter = Counter::default();
    let backend = CrosstermBackend::new(counter.clone());
    let mut terminal = Terminal::with_options(
        backend,
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 160, 48)),
        },
    )?;
    let count = || counter.0.lock().map(|n| *n).unwrap_or(0);
    state.refresh_view();
    terminal.draw(|frame| view::draw(frame, &state, &keymap, &theme))?;
    let before = count();
    let events = 500;
    for seq in 0..events {
        let mut f = fault(1_000 + seq);
        f.version = 2;
        update(
            &mut state,
            &keymap,
            Event::Net(NetEvent::Fault(proto::FaultEvent {
                seq: 10_000 + seq as u64,
                fault: Some(f),
                ..Default::default()
            })),
        );
        state.refresh_view();
        terminal.draw(|frame| view::draw(frame, &state, &keymap, &theme))?;
    }
    let per_event = (count() - before) as f64 / events as f64;
    let before = count();
    let start = state.now;
    for second in 1..=60 {
        update(
            &mut state,
            &keymap,
            Event::Tick(start + chrono::Duration::seconds(second)),
        );
        terminal.draw(|frame| view::draw(frame, &state, &keymap, &theme))?;
    }
    let per_tick = (count() - before) as f64 / 60.0;
    outln!(
        "bytes to the terminal: {per_event:.0} per fault event (one frame each, worst case), {per_tick:.0} per idle second (the clock)"
    );

    // CPU of the whole loop over a quiet feed.
    let (state, keymap) = state_with(2_000);
    let (_events, net_rx) = mpsc::channel::<NetEvent>(16);
    let (_keys, key_rx) = mpsc::channel::<Event>(16);
    let cpu_before = cpu_seconds();
    let wall = Instant::now();
    let mut terminal = Terminal::new(TestBackend::new(160, 48))?;
    let setup = Setup {
        state,
        keymap,
        theme,
    };
    run_loop(
        &mut terminal,
        tokio_stream::wrappers::ReceiverStream::new(key_rx),
        net_rx,
        None,
        setup,
        tokio::time::sleep(Duration::from_secs(idle_seconds)),
        FrameWatcher::quiet(),
    )
    .await?;
    let cpu = cpu_seconds() - cpu_before;
    outln!(
        "idle: {:.2}% of one core over {:.0} s with a quiet feed (2,000 faults on the board)",
        cpu * 100.0 / wall.elapsed().as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}

/// User plus system CPU time of this process, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
