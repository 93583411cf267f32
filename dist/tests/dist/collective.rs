//! The reduction of a data-parallel step: buckets issued as the backward makes them
//! final, over the in-process collective; and NCCL where a GPU is here.

use std::time::Duration;

use hyb_dist::bucket::{Gradient, Location};
use hyb_dist::collective::threads::Threads;
use hyb_dist::{Collective, Reducer, Segment};

/// 24 gradients laid out in two buffers with gaps; the later a parameter is read in
/// the forward, the earlier its gradient is final.
fn gradients() -> (Vec<Gradient>, Vec<Location>, [usize; 2]) {
    let mut next = [0usize; 2];
    let mut gradients = Vec::new();
    let mut at = Vec::new();
    for p in 0..24 {
        let bytes = 4 * (1 + (p * 37) % 50);
        let buffer = p % 3 % 2;
        at.push(Location { buffer, offset: next[buffer] + 4 * (p % 2) });
        next[buffer] = at[p].offset + bytes;
        gradients.push(Gradient { param: p, bytes, final_after: 2 * (24 - p) + p % 2 });
    }
    (gradients, at, [next[0] + 8, next[1] + 8])
}

/// Rank `rank`'s value of element `i` of parameter `p`'s gradient.
fn value(rank: usize, p: usize, i: usize) -> f32 {
    (rank as f32 + 1.0) * 0.37 + p as f32 * 0.011 - i as f32 * 0.003
}

/// One rank's backward: each gradient written when its instruction runs (NaN before:
/// a bucket reduced too early would spread it), the reducer issuing buckets as it goes.
fn backward(mut c: Threads, cap: usize, weight: f32) -> Vec<Vec<f32>> {
    let rank = c.rank();
    let (gradients, at, sizes) = gradients();
    let mut memory: Vec<Vec<f32>> = sizes.iter().map(|n| vec![-(rank as f32); n / 4]).collect();
    for (g, l) in gradients.iter().zip(&at) {
        memory[l.buffer][l.offset / 4..(l.offset + g.bytes) / 4].fill(f32::NAN);
    }
    let mut reducer = Reducer::new(&gradients, cap, |p| at[p]).unwrap();
    reducer.set_weight(weight);
    for instruction in 0..60 {
        for (g, l) in gradients.iter().zip(&at).filter(|(g, _)| g.final_after == instruction) {
            for i in 0..g.bytes / 4 {
                memory[l.buffer][l.offset / 4 + i] = value(rank, g.param, i);
            }
        }
        reducer.after(instruction, &mut c, &mut memory).unwrap();
    }
    reducer.finish().unwrap();
    memory
}

#[test]
fn bucketed_all_reduce_sums_every_gradient_once() {
    let world = 4;
    // Plain sums, and sums weighted by each rank's share of the targets.
    let weight = |rank: usize, weighted: bool| if weighted { (rank as f32 + 1.0) / 10.0 } else { 1.0 };
    for (cap, weighted) in [(4, false), (300, true), (1 << 20, false), (1 << 20, true)] {
        let ranks = Threads::group(world, Duration::from_secs(5));
        let memories: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let w = weight(c.rank(), weighted);
                        backward(c, cap, w)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let (gradients, at, _) = gradients();
        for (rank, memory) in memories.iter().enumerate() {
            let mut expected: Vec<Vec<f32>> = memory.iter().map(|b| vec![-(rank as f32); b.len()]).collect();
            for (g, l) in gradients.iter().zip(&at) {
                for i in 0..g.bytes / 4 {
                    let term =
                        |r: usize| if weighted { value(r, g.param, i) * weight(r, true) } else { value(r, g.param, i) };
                    let mut sum = term(0);
                    (1..world).for_each(|r| sum += term(r));
                    expected[l.buffer][l.offset / 4 + i] = sum;
                }
            }
            assert_eq!(
                memory, &expected,
                "rank {rank}, buckets of {cap} bytes: gradients summed, nothing else touched"
            );
        }
    }
}

#[test]
fn broadcast_copies_the_roots_values() {
    let ranks = Threads::group(3, Duration::from_secs(5));
    let results: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    let mut memory = vec![vec![c.rank() as f32; 6]];
                    let segment = Segment { buffer: 0, offset: 4, bytes: 12 };
                    c.broadcast(&mut memory, &[segment], 2).unwrap();
                    c.barrier().unwrap();
                    memory.remove(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, values) in results.iter().enumerate() {
        let r = rank as f32;
        assert_eq!(values, &[r, 2.0, 2.0, 2.0, r, r]);
    }
}

#[test]
fn a_rank_that_does_not_come_is_named() {
    let mut ranks = Threads::group(3, Duration::from_millis(300));
    let _absent = ranks.pop();
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|mut c| {
                s.spawn(move || c.all_reduce_sum(&mut [vec![1.0]], &[Segment { buffer: 0, offset: 0, bytes: 4 }]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap_err().to_string()).collect()
    });
    assert_eq!(errors[0], "collective: rank 0: all_reduce_sum timed out after 0.3 s: rank 2 did not arrive");
    assert_eq!(errors[1], "collective: rank 1: all_reduce_sum timed out after 0.3 s: rank 2 did not arrive");
}

#[test]
fn ranks_that_disagree_all_fail() {
    let ranks = Threads::group(2, Duration::from_secs(5));
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    let bytes = 4 * (1 + c.rank());
                    c.all_reduce_sum(&mut [vec![1.0; 2]], &[Segment { buffer: 0, offset: 0, bytes }])
                        .unwrap_err()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for error in errors {
        assert_eq!(
            error,
            "collective: the ranks disagree: rank 0 called all_reduce_sum on 1 values, rank 1 all_reduce_sum on 2"
        );
    }
}

#[test]
fn a_step_that_skips_a_bucket_is_caught() {
    let (gradients, at, _) = gradients();
    let mut reducer = Reducer::new(&gradients, 64, |p| at[p]).unwrap();
    let message = reducer.finish().unwrap_err().to_string();
    let buckets = reducer.buckets().len();
    assert_eq!(
        message,
        format!(
            "{buckets} of {buckets} gradient buckets were not reduced: the step ended before instruction {}",
            reducer.buckets()[0].final_after
        )
    );
}

/// NCCL with one rank on GPU 0, where there is one; else the reason, printed.
#[test]
fn nccl_runs_one_rank_where_a_gpu_is() {
    use hyb_dist::collective::nccl::{self, DeviceBuffers, Nccl};
    if let Err(reason) = nccl::available() {
        println!("skipping the NCCL run: {reason}");
        // Without NCCL, asking for it is an error, not a panic.
        let error = nccl::unique_id().unwrap_err().to_string();
        assert_eq!(error, format!("collective: {reason}"));
        let error = Nccl::new(&[0; 128], 0, 1, 0).err().unwrap().to_string();
        assert_eq!(error, format!("collective: {reason}"));
        return;
    }
    use cudarc::driver::result as driver;
    let id = nccl::unique_id().unwrap();
    assert_eq!(id.len(), nccl::ID_BYTES);
    // SAFETY: GPU 0's primary context, current on this thread for the test.
    unsafe {
        let device = driver::device::get(0).unwrap();
        driver::ctx::set_current(driver::primary_ctx::retain(device).unwrap()).unwrap();
    }
    let mut comm = Nccl::new(&id, 0, 1, 0).unwrap();
    let values: Vec<f32> = (0..256).map(|i| i as f32 * 0.5).collect();
    // SAFETY: a fresh allocation of 1 KiB, freed below.
    let address = unsafe { driver::malloc_sync(1024).unwrap() };
    unsafe { driver::memcpy_htod_sync(address, &values).unwrap() };
    let mut memory = unsafe { DeviceBuffers::new(vec![(address, 1024)]) };
    let bucket = [Segment { buffer: 0, offset: 0, bytes: 512 }, Segment { buffer: 0, offset: 768, bytes: 256 }];
    comm.all_reduce_sum(&mut memory, &bucket).unwrap();
    comm.broadcast(&mut memory, &bucket, 0).unwrap();
    comm.barrier().unwrap();
    let mut back = vec![0f32; 256];
    unsafe { driver::memcpy_dtoh_sync(&mut back, address).unwrap() };
    assert_eq!(back, values, "one rank's sum is its own values");
    comm.all_reduce_weighted_sum(&mut memory, &bucket, 0.5).unwrap();
    comm.barrier().unwrap();
    unsafe { driver::memcpy_dtoh_sync(&mut back, address).unwrap() };
    let halved: Vec<f32> =
        values.iter().enumerate().map(|(i, v)| if (128..192).contains(&i) { *v } else { v * 0.5 }).collect();
    assert_eq!(back, halved, "the bucket's segments weighted, the gap between them untouched");
    let outside = comm.all_reduce_sum(&mut memory, &[Segment { buffer: 0, offset: 1020, bytes: 8 }]).unwrap_err();
    assert!(outside.to_string().contains("inside its buffer of 1024 bytes"), "{outside}");
    assert!(!comm.any(false).unwrap(), "no rank asked");
    assert!(comm.any(true).unwrap(), "this rank asked");
    comm.join().unwrap();
    let abort = comm.abort_handle();
    abort.abort();
    let aborted = comm.barrier().unwrap_err().to_string();
    assert!(aborted.contains("aborted"), "{aborted}");
    drop(comm);
    unsafe { driver::free_sync(address).unwrap() };
}
