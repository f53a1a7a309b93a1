//! Throughput of the Redis job queue on the local Redis: `cargo bench --bench queue`.
//!
//! Prints jobs/s for (1) a single worker doing enqueue -> reserve -> ack one job at a time
//! (round-trip latency bound), (2) concurrent enqueue across projects, and (3) concurrent
//! reserve + ack draining them. Settings: `RCSYNC_BENCH_REDIS_URL` (default
//! redis://127.0.0.1:6379/), `RCSYNC_BENCH_PROJECTS` (10), `RCSYNC_BENCH_JOBS` per project
//! (2000), `RCSYNC_BENCH_WORKERS` (8). Keys live under a random prefix and are purged at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use retailcrm_sync::clock;
use retailcrm_sync::queue::{JobKind, JobQueue, NewJob, QueueOptions, Trigger};
use serde_json::json;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn new_job(project_id: i64, i: i64) -> NewJob {
    NewJob {
        project_id,
        kind: JobKind::SyncOrder { id: i },
        since_id: None,
        trigger: Trigger::Schedule,
    }
}

fn rate(n: usize, secs: f64) -> String {
    format!(
        "{n:>7} jobs in {secs:>6.2} s = {:>8.0} jobs/s",
        n as f64 / secs
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("RCSYNC_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let projects = env_num("RCSYNC_BENCH_PROJECTS", 10) as i64;
    let per_project = env_num("RCSYNC_BENCH_JOBS", 2000) as i64;
    let workers = env_num("RCSYNC_BENCH_WORKERS", 8);
    let opts = QueueOptions {
        key_prefix: format!("rcsync-bench-{}", uuid::Uuid::new_v4().simple()),
        ..QueueOptions::default()
    };
    let q = JobQueue::connect(&url, opts, clock::system()).await?;
    println!("queue bench: {projects} projects x {per_project} jobs, {workers} workers");

    // 1. One worker, one job at a time: enqueue + reserve + ack.
    let n = (per_project as usize).min(2000);
    let t = Instant::now();
    for i in 0..n as i64 {
        q.enqueue(&new_job(0, i)).await?;
        let lease = q.reserve(0, "bench-seq").await?.ok_or("job not reserved")?;
        q.ack(&lease, &json!({})).await?;
    }
    println!(
        "sequential enqueue+reserve+ack (1 worker):   {}",
        rate(n, t.elapsed().as_secs_f64())
    );

    // 2. Concurrent enqueue, one producer per project.
    let total = (projects * per_project) as usize;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for p in 1..=projects {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_project {
                q.enqueue(&new_job(p, i)).await?;
            }
            Ok::<_, retailcrm_sync::queue::QueueError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let enqueue_secs = t.elapsed().as_secs_f64();
    println!(
        "concurrent enqueue ({projects} producers):     {}",
        rate(total, enqueue_secs)
    );

    // 3. Concurrent reserve + ack, workers round-robin over projects.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-w{w}");
            let mut done = 0usize;
            let mut p = w as i64 % projects;
            loop {
                let mut got = false;
                for _ in 0..projects {
                    p = p % projects + 1;
                    if let Some(lease) = q.reserve(p, &id).await? {
                        q.ack(&lease, &json!({})).await?;
                        done += 1;
                        got = true;
                    }
                }
                // Nothing reservable: stop once no project has waiting or running jobs.
                if !got {
                    if q.projects_with_jobs().await?.is_empty() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, retailcrm_sync::queue::QueueError>(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    let drain_secs = t.elapsed().as_secs_f64();
    println!(
        "concurrent reserve+ack ({workers} workers):      {}",
        rate(done, drain_secs)
    );
    println!(
        "concurrent enqueue+reserve+ack end to end:  {}",
        rate(done, enqueue_secs + drain_secs)
    );
    if done != total {
        return Err(format!("drained {done} of {total} jobs").into());
    }

    for p in 0..=projects {
        q.purge(p).await?;
    }
    Ok(())
}
