//! The rendezvous and the group's watchdog between threads.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{config, id, launch, ranks, text};

#[test]
fn every_rank_gets_the_id_and_barriers_meet() {
    let results = ranks(4, &[0, 1, 2, 3], &config(), |rank, joined| {
        let (group, got) = joined.unwrap();
        assert_eq!((group.rank(), group.world()), (rank, 4));
        for _ in 0..3 {
            group.barrier().unwrap();
        }
        group.check().unwrap();
        got
    });
    assert!(results.iter().all(|got| *got == id()));
}

#[test]
fn one_process_needs_no_network() {
    let mut watched = config();
    watched.hang_after = Some(Duration::from_millis(50));
    let (group, got) = hyb_dist::rendezvous(&hyb_dist::Launch::single(), &watched, || Ok(vec![7])).unwrap();
    group.barrier().unwrap();
    // Alone, no progress is no one's hang.
    std::thread::sleep(Duration::from_millis(200));
    group.check().unwrap();
    assert_eq!((group.world(), got), (1, vec![7]));
}

#[test]
fn a_missing_rank_is_named_on_every_rank() {
    let mut short = config();
    short.rendezvous = Duration::from_secs(1);
    let errors = ranks(4, &[0, 1, 2], &short, |_, joined| text(joined));
    for error in &errors {
        assert!(error.starts_with("rendezvous: timed out after 1.0 s at 127.0.0.1:"), "{error}");
        assert!(error.contains(": rank 3 of 4 did not arrive (is every rank started"), "{error}");
    }
}

#[test]
fn an_absent_rank_0_is_reported_with_its_address() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let mut short = config();
    short.rendezvous = Duration::from_millis(500);
    let started = Instant::now();
    let error = text(hyb_dist::rendezvous(&launch(2, 3, port), &short, || Ok(id())));
    assert!(started.elapsed() < Duration::from_secs(3));
    let expected = format!("rendezvous: rank 2 could not reach rank 0 at 127.0.0.1:{port} within 0.5 s (last error: ");
    assert!(error.starts_with(&expected), "{error}");
    assert!(
        error.ends_with("is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same for every rank?"),
        "{error}"
    );
}

#[test]
fn a_rank_launched_into_another_world_is_refused() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::scope(|scope| {
        let lead = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(2);
            text(hyb_dist::rendezvous::lead(&listener, 2, &config(), deadline, || Ok(id())))
        });
        let other = text(hyb_dist::rendezvous(&launch(1, 3, port), &config(), || Ok(id())));
        let lead = lead.join().unwrap();
        assert!(lead.contains("was launched with WORLD_SIZE=3, rank 0 with 2: every rank needs the same"), "{lead}");
        assert_eq!(other, lead);
    });
}

#[test]
fn two_processes_of_one_rank_are_refused() {
    let errors = ranks(3, &[0, 1, 1], &config(), |_, joined| text(joined));
    for error in &errors {
        assert!(error.contains("two processes say they are rank 1"), "{error}");
    }
}

#[test]
fn strangers_on_the_port_are_ignored() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut stranger = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stranger.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::scope(|scope| {
        let lead = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(2);
            hyb_dist::rendezvous::lead(&listener, 2, &config(), deadline, || Ok(id())).map(|(_, id)| id)
        });
        let (_group, got) = hyb_dist::rendezvous(&launch(1, 2, port), &config(), || Ok(id())).unwrap();
        assert_eq!(lead.join().unwrap().unwrap(), got);
    });
}

#[test]
fn a_rank_missing_a_barrier_is_named() {
    let mut short = config();
    short.barrier = Duration::from_millis(500);
    let results = ranks(3, &[0, 1, 2], &short, |rank, joined| {
        let (group, _) = joined.unwrap();
        if rank == 2 {
            std::thread::sleep(Duration::from_millis(1500));
            return group.failure().map(|f| f.to_string()).unwrap_or_default();
        }
        text(group.barrier())
    });
    for result in &results {
        assert_eq!(result, "rank 2 did not reach barrier 0 within 0.5 s");
    }
}

#[test]
fn a_rank_left_behind_is_a_hang_on_every_rank() {
    let mut watched = config();
    watched.hang_after = Some(Duration::from_secs(1));
    let hooks = Arc::new(AtomicUsize::new(0));
    let results = ranks(3, &[0, 1, 2], &watched, |rank, joined| {
        let (group, _) = joined.unwrap();
        let counter = hooks.clone();
        group.on_failure(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        if rank != 1 {
            group.set_progress(1);
        }
        let started = Instant::now();
        while group.check().is_ok() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        (started.elapsed(), text(group.check()))
    });
    for (took, error) in &results {
        assert!(error.starts_with("rank 1 made no progress for 1."), "{error}");
        assert!(error.ends_with("(at step 0; others reached 1): it hangs"), "{error}");
        assert!(*took < Duration::from_secs(4), "{took:?}");
    }
    assert_eq!(hooks.load(Ordering::SeqCst), 3, "each rank's hook ran once");
}

#[test]
fn a_rank_that_fails_stops_every_rank() {
    let results = ranks(3, &[0, 1, 2], &config(), |rank, joined| {
        let (group, _) = joined.unwrap();
        if rank == 2 {
            group.fail("found a non-finite loss at step 4");
        }
        // The others learn it in their next barrier, through rank 0.
        let error = text(group.barrier());
        (error, group.failure().unwrap().ranks)
    });
    for (error, culprits) in &results {
        assert_eq!(error, "rank 2 found a non-finite loss at step 4");
        assert_eq!(culprits, &[2]);
    }
}
