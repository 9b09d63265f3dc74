//! The table the bench prints: each figure with its budget and whether it is
//! met, and, when a baseline binary was measured too, the baseline's figure
//! and the ratio of the two.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::fake::codes_body;
use crate::measure::{Cold, Sequential, Side, Throughput};
use crate::{Plan, LARGE, SMALL};

/// Everything measured of one binary.
pub struct Run {
    pub bin: PathBuf,
    pub size: u64,
    pub cold: Cold,
    pub seq: Sequential,
    pub tp: Throughput,
}

pub struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
    loadavg: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned())
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model,
            kernel: read("/proc/sys/kernel/osrelease"),
            loadavg: read("/proc/loadavg"),
        }
    }
}

fn sorted(samples: &[Duration]) -> Vec<Duration> {
    let mut s = samples.to_vec();
    s.sort();
    s
}

fn median(samples: &[Duration]) -> Duration {
    let s = sorted(samples);
    if s.is_empty() {
        return Duration::ZERO;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

/// Nearest-rank percentile.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    let s = sorted(samples);
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn median_u64(samples: &[u64]) -> u64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb_kb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// One binary's figure: as printed, and the numbers in it that a ratio to
/// the baseline compares (none for text).
struct Cell {
    text: String,
    values: Vec<f64>,
}

impl Cell {
    fn new(text: String, values: impl Into<Vec<f64>>) -> Self {
        Self {
            text,
            values: values.into(),
        }
    }

    fn text(text: String) -> Self {
        Self::new(text, [])
    }
}

enum Row {
    Section(String),
    Figure {
        what: String,
        /// One per binary, the measured one first.
        cells: Vec<Cell>,
        budget: String,
        verdict: String,
    },
}

struct Table<'a> {
    full: bool,
    runs: &'a [Run],
    rows: Vec<Row>,
}

impl<'a> Table<'a> {
    fn section(&mut self, title: &str) {
        self.rows.push(Row::Section(format!("[{title}]")));
    }

    /// A fact of the machine, the same for every binary.
    fn fact(&mut self, what: &str, value: String) {
        self.rows.push(Row::Figure {
            what: format!("  {what}"),
            cells: vec![Cell::text(value)],
            budget: String::new(),
            verdict: String::new(),
        });
    }

    /// A figure without a budget, `cell(run)` for each binary.
    fn info(&mut self, what: &str, cell: impl Fn(&'a Run) -> Cell) {
        let cells = self.runs.iter().map(cell).collect();
        self.rows.push(Row::Figure {
            what: format!("  {what}"),
            cells,
            budget: String::new(),
            verdict: String::new(),
        });
    }

    /// A figure with a budget: met when the first number of the measured
    /// binary's cell is below `limit`.
    fn check(&mut self, what: &str, budget: &str, limit: f64, cell: impl Fn(&'a Run) -> Cell) {
        let cells: Vec<Cell> = self.runs.iter().map(cell).collect();
        let met = cells[0].values.first().is_some_and(|v| *v < limit);
        let verdict = match (self.full, met) {
            (false, _) => "n/a (smoke)",
            (true, true) => "met",
            (true, false) => "MISSED",
        };
        self.rows.push(Row::Figure {
            what: format!("  {what}"),
            cells,
            budget: budget.to_owned(),
            verdict: verdict.to_owned(),
        });
    }

    /// The printed cells of a figure row: figure, measured, [baseline,
    /// ratio,] budget, verdict.
    fn columns(&self, what: &str, cells: &[Cell], budget: &str, verdict: &str) -> Vec<String> {
        let mut out = vec![what.to_owned(), cells[0].text.clone()];
        if self.runs.len() > 1 {
            let baseline = cells.get(1);
            out.push(baseline.map(|c| c.text.clone()).unwrap_or_default());
            out.push(baseline.map(|b| ratio(&cells[0], b)).unwrap_or_default());
        }
        out.push(budget.to_owned());
        out.push(verdict.to_owned());
        out
    }

    /// Prints the figures in aligned columns, each section title on a line
    /// of its own.
    fn print(&self) {
        let mut header = vec!["figure".to_owned(), "measured".to_owned()];
        if self.runs.len() > 1 {
            header.extend(["baseline".to_owned(), "new / baseline".to_owned()]);
        }
        header.extend(["budget".to_owned(), "verdict".to_owned()]);
        let lines: Vec<Option<Vec<String>>> = self
            .rows
            .iter()
            .map(|row| match row {
                Row::Section(_) => None,
                Row::Figure {
                    what,
                    cells,
                    budget,
                    verdict,
                } => Some(self.columns(what, cells, budget, verdict)),
            })
            .collect();
        let mut width: Vec<usize> = header.iter().map(String::len).collect();
        for cells in lines.iter().flatten() {
            for (w, cell) in width.iter_mut().zip(cells) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                out.push_str(&format!("{cell:<w$}"));
            }
            out.trim_end().to_owned()
        };
        let rule = width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line(&header));
        let _ = writeln!(out, "{rule}");
        for (row, cells) in self.rows.iter().zip(&lines) {
            let _ = match (row, cells) {
                (Row::Section(title), _) => writeln!(out, "{title}"),
                (_, Some(cells)) => writeln!(out, "{}", line(cells)),
                (_, None) => Ok(()),
            };
        }
        let _ = out.flush();
    }
}

/// Each number of `new` over the same number of `baseline`.
fn ratio(new: &Cell, baseline: &Cell) -> String {
    new.values
        .iter()
        .zip(&baseline.values)
        .map(|(n, b)| {
            if *b > 0.0 {
                format!("{:.3}x", n / b)
            } else {
                "n/a".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The sequential calls of `count` codes.
fn sequential_side(seq: &Sequential, count: u64) -> &Side {
    if count == SMALL {
        &seq.small
    } else {
        &seq.large
    }
}

/// Budgets.
const COLD_BUDGET_MS: f64 = 8.0;
const OVERHEAD_SMALL_BUDGET_MS: f64 = 0.3;
const OVERHEAD_LARGE_BUDGET_MS: f64 = 1.2;
const THROUGHPUT_BUDGET_RATIO: f64 = 1.25;
const RSS_BUDGET_MB: f64 = 12.0;
const SIZE_BUDGET_MB: f64 = 8.0;

/// Prints the table for `runs`: the measured binary first, then the
/// baseline if there is one.
pub fn print_report(plan: &Plan, machine: &Machine, runs: &[Run]) {
    let full = plan.full;
    let mut t = Table {
        full,
        runs,
        rows: Vec::new(),
    };

    t.section("machine");
    t.fact("nproc", machine.cpus.to_string());
    t.fact("cpu", machine.model.clone());
    t.fact("kernel", machine.kernel.clone());
    t.fact("loadavg at start", machine.loadavg.clone());
    t.info("binary", |r| Cell::text(r.bin.display().to_string()));

    t.section(&format!(
        "cold start: spawn -> tools/list answer, {} spawns",
        runs[0].cold.to_tools.len()
    ));
    t.check(
        "median",
        &format!("< {COLD_BUDGET_MS} ms"),
        COLD_BUDGET_MS,
        |r| {
            let cold_median = ms(median(&r.cold.to_tools));
            Cell::new(format!("{cold_median:.2} ms"), [cold_median])
        },
    );
    t.info("min / max", |r| {
        let to_tools = sorted(&r.cold.to_tools);
        let min = ms(*to_tools.first().unwrap_or(&Duration::ZERO));
        let max = ms(*to_tools.last().unwrap_or(&Duration::ZERO));
        Cell::new(format!("{min:.2} / {max:.2} ms"), [min, max])
    });
    t.info("of which spawn -> initialize answer", |r| {
        let v = ms(median(&r.cold.to_initialize));
        Cell::new(format!("{v:.2} ms"), [v])
    });
    t.info("tools listed", |r| {
        Cell::text(r.cold.tool_count.to_string())
    });

    t.section("stdio round trip (ping), for reference");
    t.info(
        &format!("median / p99 of {}", runs[0].seq.ping.len()),
        |r| {
            let (m, p) = (ms(median(&r.seq.ping)), ms(percentile(&r.seq.ping, 99.0)));
            Cell::new(format!("{m:.3} / {p:.3} ms"), [m, p])
        },
    );

    for (count, budget) in [
        (SMALL, OVERHEAD_SMALL_BUDGET_MS),
        (LARGE, OVERHEAD_LARGE_BUDGET_MS),
    ] {
        t.section(&format!(
            "tools/call list_voucher_codes count={count}: {} sequential calls, each followed by a floor GET",
            sequential_side(&runs[0].seq, count).server.len()
        ));
        let server = move |r: &Run| {
            let s = sequential_side(&r.seq, count);
            (ms(median(&s.server)), ms(percentile(&s.server, 99.0)))
        };
        let floor = move |r: &Run| {
            let s = sequential_side(&r.seq, count);
            (ms(median(&s.floor)), ms(percentile(&s.floor, 99.0)))
        };
        t.info("server median / p99", |r| {
            let (sm, sp) = server(r);
            Cell::new(format!("{sm:.3} / {sp:.3} ms"), [sm, sp])
        });
        t.info("floor (reqwest GET) median / p99", |r| {
            let (fm, fp) = floor(r);
            Cell::new(format!("{fm:.3} / {fp:.3} ms"), [fm, fp])
        });
        t.info("ratio to floor (median / p99)", |r| {
            let ((sm, sp), (fm, fp)) = (server(r), floor(r));
            let (m, p) = (sm / fm.max(1e-9), sp / fp.max(1e-9));
            Cell::new(format!("{m:.2}x / {p:.2}x"), [m, p])
        });
        t.info("server CPU per call (all threads)", |r| {
            let s = sequential_side(&r.seq, count);
            let v = ms(s.server_cpu) / s.server.len().max(1) as f64;
            Cell::new(format!("{v:.3} ms"), [v])
        });
        t.info("API answer body / answer line on stdout", |r| {
            let body = codes_body(0, count).len() as f64 / 1024.0;
            let line = sequential_side(&r.seq, count).answer_bytes as f64 / 1024.0;
            Cell::new(format!("{body:.1} KB / {line:.1} KB"), [body, line])
        });
        t.check(
            "overhead (server median - floor median)",
            &format!("< {budget} ms"),
            budget,
            |r| {
                let overhead = server(r).0 - floor(r).0;
                Cell::new(format!("{overhead:.3} ms"), [overhead])
            },
        );
    }
    t.info("upstream requests / connections of that server", |r| {
        let (req, conn) = (r.seq.upstream_requests, r.seq.upstream_connections);
        Cell::new(format!("{req} / {conn}"), [req as f64, conn as f64])
    });
    if runs.iter().any(|r| r.seq.stray_lines > 0) {
        t.info("stdout lines that answered no request", |r| {
            Cell::text(r.seq.stray_lines.to_string())
        });
    }

    let ideal = plan.tp_ideal();
    let wall = |r: &Run| median(&r.tp.walls);
    t.section(&format!(
        "throughput: {} calls count={SMALL}, {} in flight, fake API answers after {} ms",
        plan.tp_calls,
        plan.tp_in_flight,
        plan.tp_latency.as_millis()
    ));
    t.info(
        &format!("wall time (median of {} rounds)", runs[0].tp.walls.len()),
        |r| {
            let walls_ms: Vec<String> =
                r.tp.walls
                    .iter()
                    .map(|w| format!("{:.0}", ms(*w)))
                    .collect();
            let v = ms(wall(r));
            Cell::new(
                format!("{v:.1} ms  (rounds: {} ms)", walls_ms.join(", ")),
                [v],
            )
        },
    );
    t.check(
        &format!("ratio to ideal {:.0} ms", ms(ideal)),
        &format!("< {THROUGHPUT_BUDGET_RATIO}x"),
        THROUGHPUT_BUDGET_RATIO,
        |r| {
            let ratio = wall(r).as_secs_f64() / ideal.as_secs_f64();
            Cell::new(format!("{ratio:.3}x"), [ratio])
        },
    );
    t.info("floor: same GETs by reqwest, as many in flight", |r| {
        let floor_wall = median(&r.tp.floor_walls);
        let to_ideal = floor_wall.as_secs_f64() / ideal.as_secs_f64();
        let server_to_floor = wall(r).as_secs_f64() / floor_wall.as_secs_f64().max(1e-9);
        Cell::new(
            format!(
                "{:.1} ms = {to_ideal:.3}x ideal; server / floor = {server_to_floor:.3}x",
                ms(floor_wall)
            ),
            [ms(floor_wall), to_ideal, server_to_floor],
        )
    });
    t.info("server CPU per call (all threads)", |r| {
        let v = ms(r.tp.server_cpu) / r.tp.latencies.len().max(1) as f64;
        Cell::new(format!("{v:.3} ms"), [v])
    });
    t.info("per-call latency median / p99", |r| {
        let (m, p) = (
            ms(median(&r.tp.latencies)),
            ms(percentile(&r.tp.latencies, 99.0)),
        );
        Cell::new(format!("{m:.2} / {p:.2} ms"), [m, p])
    });
    t.info("TCP connections the server opened", |r| {
        let v = r.tp.upstream_connections;
        Cell::new(v.to_string(), [v as f64])
    });

    t.section("memory (server process, /proc/<pid>/status)");
    // VmHWM is updated lazily by the kernel (memory the allocator gives
    // back with madvise never raises it), so the peak is the larger of it
    // and the highest VmRSS the sampler saw.
    t.check(
        &format!(
            "peak RSS, first {} calls (max of VmHWM, VmRSS)",
            plan.tp_calls
        ),
        &format!("< {RSS_BUDGET_MB} MB"),
        RSS_BUDGET_MB,
        |r| {
            let v = mb_kb(r.tp.first_round_peak_kb);
            Cell::new(format!("{v:.2} MB"), [v])
        },
    );
    t.info(
        &format!("peak RSS after all {} rounds", runs[0].tp.walls.len()),
        |r| {
            let tp_sampled = r.tp.rss_samples.iter().copied().max().unwrap_or(0);
            let (peak, hwm, sampled) = (
                mb_kb(r.tp.hwm_kb.max(tp_sampled)),
                mb_kb(r.tp.hwm_kb),
                mb_kb(tp_sampled),
            );
            Cell::new(
                format!("{peak:.2} MB  (VmHWM {hwm:.2}, max sampled VmRSS {sampled:.2})"),
                [peak, hwm, sampled],
            )
        },
    );
    t.info("VmRSS idle after initialize / at end", |r| {
        let (idle, end) = (mb_kb(r.seq.rss_idle_kb), mb_kb(r.tp.rss_after_kb));
        Cell::new(format!("{idle:.2} / {end:.2} MB"), [idle, end])
    });
    t.info("RssAnon / RssFile (binary, libs) / threads, at end", |r| {
        let (anon, file) = (mb_kb(r.tp.rss_anon_kb), mb_kb(r.tp.rss_file_kb));
        let threads = r.tp.threads;
        Cell::new(
            format!("{anon:.2} / {file:.2} MB / {threads}"),
            [anon, file, threads as f64],
        )
    });
    t.info(
        &format!(
            "VmRSS serving {LARGE}-code pages, median / max ({} samples)",
            runs[0].seq.rss_large.len()
        ),
        |r| {
            let sampled = r.seq.rss_large.iter().copied().max().unwrap_or(0);
            let (m, max) = (mb_kb(median_u64(&r.seq.rss_large)), mb_kb(sampled));
            Cell::new(format!("{m:.2} / {max:.2} MB"), [m, max])
        },
    );
    t.check(
        &format!("peak RSS over the {LARGE}-code calls"),
        &format!("< {RSS_BUDGET_MB} MB"),
        RSS_BUDGET_MB,
        |r| {
            let sampled = r.seq.rss_large.iter().copied().max().unwrap_or(0);
            let peak = mb_kb(r.seq.hwm_after_large_kb.max(sampled));
            let hwm = mb_kb(r.seq.hwm_after_large_kb);
            Cell::new(format!("{peak:.2} MB  (VmHWM {hwm:.2})"), [peak, hwm])
        },
    );

    t.section("binary");
    t.check(
        "size",
        &format!("< {SIZE_BUDGET_MB} MB"),
        SIZE_BUDGET_MB,
        |r| {
            let size_mb = r.size as f64 / (1024.0 * 1024.0);
            Cell::new(format!("{size_mb:.2} MB ({} bytes)", r.size), [size_mb])
        },
    );

    println!();
    t.print();
    println!(
        "\n(1 MB = 1024*1024 bytes. Ratios and overheads compare medians; p99 is nearest-rank.)"
    );
    if runs.len() > 1 {
        println!(
            "(new / baseline: each number of the measured binary's figure over the same number of the baseline's; below 1 is less time, memory or size.)"
        );
    }
}
