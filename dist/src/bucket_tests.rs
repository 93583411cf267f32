use super::*;

fn g(param: usize, bytes: usize, final_after: usize) -> Gradient {
    Gradient { param, bytes, final_after }
}

/// A small deterministic stream for the property tests (xorshift64*).
struct Stream(u64);

impl Stream {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// A backward pass of `params` parameters: the later a parameter is read in the
/// forward, the earlier its gradient is final; some share their final instruction.
fn backward(stream: &mut Stream, params: usize) -> Vec<Gradient> {
    (0..params).map(|p| g(p, 4 * (1 + stream.below(5000)), 3 * (params - p) / 2 + 1)).collect()
}

#[test]
fn buckets_group_in_the_order_gradients_become_final() {
    let gradients = [g(0, 8, 9), g(1, 4, 7), g(2, 4, 7), g(3, 16, 3), g(4, 4, 1)];
    let buckets = buckets(&gradients, 8).unwrap();
    let groups: Vec<Vec<usize>> =
        buckets.iter().map(|b| b.gradients.iter().map(|&i| gradients[i].param).collect()).collect();
    assert_eq!(groups, [vec![4], vec![3], vec![2, 1], vec![0]]);
    let finals: Vec<usize> = buckets.iter().map(|b| b.final_after).collect();
    assert_eq!(finals, [1, 3, 7, 9]);
    assert_eq!(buckets.iter().map(|b| b.bytes).collect::<Vec<_>>(), [4, 16, 8, 8]);
}

#[test]
fn every_gradient_in_one_bucket_within_the_cap() {
    let mut stream = Stream(7);
    for cap in [4, 64, 4096, mib(0.01), mib(25.0)] {
        let gradients = backward(&mut stream, 60);
        let buckets = buckets(&gradients, cap).unwrap();
        let mut seen: Vec<usize> = buckets.iter().flat_map(|b| b.gradients.clone()).collect();
        let order: Vec<usize> = seen.iter().map(|&i| gradients[i].final_after).collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "ready order");
        seen.sort();
        assert_eq!(seen, (0..gradients.len()).collect::<Vec<_>>());
        for b in &buckets {
            let bytes: usize = b.gradients.iter().map(|&i| gradients[i].bytes).sum();
            assert_eq!(b.bytes, bytes);
            assert!(b.bytes <= cap || b.gradients.len() == 1, "a bucket over the cap holds one gradient");
            assert_eq!(b.final_after, b.gradients.iter().map(|&i| gradients[i].final_after).max().unwrap());
        }
        // Greedy: no bucket could have taken its successor's first gradient.
        for pair in buckets.windows(2) {
            assert!(pair[0].bytes + gradients[pair[1].gradients[0]].bytes > cap);
        }
    }
}

#[test]
fn the_schedule_issues_each_bucket_once_after_its_last_gradient() {
    let mut stream = Stream(11);
    let gradients = backward(&mut stream, 40);
    let buckets = buckets(&gradients, 20_000).unwrap();
    let schedule = Schedule::new(&buckets);
    let mut issued = Vec::new();
    for instruction in 0..100 {
        for b in schedule.due(instruction) {
            assert_eq!(buckets[b].final_after, instruction, "bucket {b} issued when its last gradient is final");
            issued.push(b);
        }
    }
    assert_eq!(issued, (0..buckets.len()).collect::<Vec<_>>());
}

/// Gradients laid out in two buffers, in forward order with random gaps (some none).
fn layout(stream: &mut Stream, gradients: &[Gradient]) -> Vec<Location> {
    let mut next = [0usize; 2];
    gradients
        .iter()
        .map(|g| {
            let buffer = stream.below(2);
            let offset = next[buffer] + 4 * stream.below(3);
            next[buffer] = offset + g.bytes;
            Location { buffer, offset }
        })
        .collect()
}

#[test]
fn segments_cover_every_gradient_byte_exactly_once() {
    let mut stream = Stream(3);
    for cap in [4, 3000, 50_000, usize::MAX] {
        let gradients = backward(&mut stream, 50);
        let at = layout(&mut stream, &gradients);
        let size = |b: usize| {
            at.iter().zip(&gradients).filter(|(l, _)| l.buffer == b).map(|(l, g)| l.offset + g.bytes).max().unwrap_or(0)
        };
        let mut covered = [vec![0u8; size(0)], vec![0u8; size(1)]];
        for bucket in buckets(&gradients, cap).unwrap() {
            for s in bucket.segments(&gradients, |p| at[p]).unwrap() {
                covered[s.buffer][s.offset..s.offset + s.bytes].iter_mut().for_each(|c| *c += 1);
            }
        }
        let mut expected = [vec![0u8; size(0)], vec![0u8; size(1)]];
        for (l, g) in at.iter().zip(&gradients) {
            expected[l.buffer][l.offset..l.offset + g.bytes].iter_mut().for_each(|c| *c += 1);
        }
        assert_eq!(covered, expected, "cap {cap}");
        assert!(expected.iter().flatten().all(|c| *c <= 1));
    }
}

#[test]
fn adjacent_gradients_merge_into_one_segment() {
    let gradients = [g(0, 8, 2), g(1, 4, 1), g(2, 4, 0)];
    let bucket = Bucket { gradients: vec![2, 1, 0], bytes: 16, final_after: 2 };
    let at =
        [Location { buffer: 0, offset: 100 }, Location { buffer: 0, offset: 108 }, Location { buffer: 1, offset: 0 }];
    let segments = bucket.segments(&gradients, |p| at[p]).unwrap();
    assert_eq!(segments, [Segment { buffer: 0, offset: 100, bytes: 12 }, Segment { buffer: 1, offset: 0, bytes: 4 }]);
}

#[test]
fn mistakes_are_refused() {
    let message = |r: Result<Vec<Bucket>>| r.unwrap_err().to_string();
    assert!(message(buckets(&[g(0, 4, 0)], 0)).starts_with("a bucket size of 0 bytes"));
    assert!(message(buckets(&[g(3, 6, 0)], 8)).starts_with("the gradient of parameter 3 has 6 bytes"));
    assert_eq!(message(buckets(&[g(1, 4, 0), g(1, 4, 2)], 8)), "parameter 1 has two gradients");
    let gradients = [g(0, 8, 0), g(1, 8, 0)];
    let bucket = Bucket { gradients: vec![1, 0], bytes: 16, final_after: 0 };
    let overlap = bucket.segments(&gradients, |p| Location { buffer: 0, offset: 4 * p }).unwrap_err();
    assert_eq!(overlap.to_string(), "the gradients of parameters 0 and 1 overlap in buffer 0");
    let unaligned = bucket.segments(&gradients, |p| Location { buffer: p, offset: 2 }).unwrap_err();
    assert!(unaligned.to_string().contains("lies at byte 2"));
}

#[test]
fn a_gradient_is_final_after_the_last_instruction_touching_it() {
    let seg = |buffer, offset, bytes| Segment { buffer, offset, bytes };
    let writes = vec![
        vec![seg(0, 0, 16)],               // 0: writes gradient a
        vec![seg(0, 16, 8), seg(1, 0, 4)], // 1: writes b, and scratch elsewhere
        vec![seg(0, 12, 8)],               // 2: accumulates into the end of a and start of b
        vec![seg(1, 0, 64)],               // 3: scratch only
    ];
    let gradients = [seg(0, 0, 16), seg(0, 16, 8), seg(0, 24, 4), seg(1, 64, 4)];
    assert_eq!(last_writes(&writes, &gradients), [Some(2), Some(2), None, None]);
}
