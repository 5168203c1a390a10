//! Micro-benchmarks of the wire codec, in memory.
//!
//! Workload: `encode_data` writes one DATA frame (topic "bench/topic", 64 B or
//! 4 KiB payload) into a reused buffer; `decode_client` walks a buffer of
//! 1,000 back-to-back PUBLISH frames (same topic and payload sizes) one frame
//! at a time, as a connection's read loop would. Throughput is frame bytes.
//!
//! Run: `cargo bench --bench codec`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringcast_proto::native::{
    data_frame_len, decode_client, encode_data, ClientFrame, Decoded, DEFAULT_MAX_FRAME,
};

const TOPIC: &str = "bench/topic";
const PAYLOADS: [(&str, usize); 2] = [("64B", 64), ("4KiB", 4096)];
const FRAMES: usize = 1000;

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_data");
    for (name, size) in PAYLOADS {
        let payload = vec![0x5Au8; size];
        let n = data_frame_len(TOPIC.len(), size);
        let mut out = vec![0u8; n];
        group.throughput(Throughput::Bytes(n as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let mut seq = 0u64;
            b.iter(|| {
                seq += 1;
                encode_data(
                    black_box(&mut out),
                    seq,
                    black_box(1_700_000_000_000_000_000),
                    black_box(TOPIC.as_bytes()),
                    black_box(&payload),
                )
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_client");
    for (name, size) in PAYLOADS {
        let payload = vec![0x5Au8; size];
        let mut buf = Vec::new();
        for _ in 0..FRAMES {
            ClientFrame::Publish {
                topic: TOPIC,
                payload: &payload,
            }
            .encode(&mut buf);
        }
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(BenchmarkId::new("publish", name), |b| {
            b.iter(|| {
                let mut at = 0;
                let mut frames = 0usize;
                while let Ok(Decoded::Frame { frame, consumed }) =
                    decode_client(black_box(&buf[at..]), DEFAULT_MAX_FRAME)
                {
                    black_box(frame);
                    at += consumed;
                    frames += 1;
                }
                assert_eq!(frames, FRAMES);
                at
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
